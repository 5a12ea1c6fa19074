"""Conventional training of the toy: a sweep of eta * lambda, classified, with the derived theory.

``python -m toymodel.conventional`` runs plain (S)GD with weight decay in the full space (no
projection) at a log grid of ``eta * lambda`` (the only combination that matters for the direction
dynamics, derivation 11), with a fixed weight decay and learning rates ``eta = (eta lambda) / lambda``,
and writes ``conventional.csv`` (one row per eta * lambda), ``conventional.json`` and
``conventional.png`` into ``--out`` (default ``runs/conventional``).
"""

from __future__ import annotations

import datetime as _dt
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _records, plots, regimes, theory
from ._cli import ArgumentParser, add_sweep_arguments, int_arg, output_dir, plural, quiet_warnings, run_cli
from ._records import CACHE_DIRNAME, atomic_write_text, json_text, versions
from ._validate import (
    BURN_IN_FRACTION,
    MAX_COUNT,
    as_alphas,
    as_format,
    as_int,
    as_lr_wd,
    as_momentum,
    as_positive_float,
    as_sgd,
    as_steps_burn_in,
    as_threads,
    check_memory,
    default_burn_in,
)
from .model import PAPER_ALPHAS, ToyProblem
from .simulate import SimulationResult, estimate_result_bytes, seed_stats
from .sweep import ClassifiedSweep, SweepStats, check_dask_choice, run_sweep

__all__ = ["DEFAULTS", "DEFAULT_OUT", "ConventionalSweep", "compute_conventional", "conventional_table", "csv_text",
           "write_outputs", "main"]

#: the defaults of the job; ``burn_in=None`` means BURN_IN_FRACTION of the steps
DEFAULTS = dict(alphas=PAPER_ALPHAS, lr_wd_min=1e-4, lr_wd_max=0.9, num=60, weight_decay=0.01, steps=1_000_000,
                burn_in=None, seeds=4)
DEFAULT_OUT = "runs/conventional"


@dataclass(frozen=True, repr=False)
class ConventionalSweep(ClassifiedSweep):
    """A classified sweep of eta * lambda: one row per value in ``table``, the runs in ``result``
    (whose ``elrs`` are the learning rates)."""

    def long_table(self) -> dict:
        cols = self.result.long_table()
        cols["lr_wd"] = cols["elr"] * self.params["weight_decay"]
        return cols


def _validate(alphas, lr_wd_min, lr_wd_max, num, weight_decay, steps, burn_in, seeds, lyapunov):
    alphas = as_alphas(alphas)
    lo = as_positive_float(lr_wd_min, "lr_wd_min")
    hi = as_positive_float(lr_wd_max, "lr_wd_max")
    if not lo < hi:
        raise ValueError(f"lr_wd_min must be smaller than lr_wd_max, got lr_wd_min={lo!r}, lr_wd_max={hi!r}")
    if not hi < 1:
        raise ValueError(f"lr_wd_max must be below 1 (the decay factor 1 - lr * wd must be positive), got {hi!r}")
    num = as_int(num, "num", minimum=2, maximum=MAX_COUNT)
    wd = as_positive_float(weight_decay, "weight_decay")
    steps, burn_in = as_steps_burn_in(steps, burn_in)
    seeds = as_int(seeds, "seeds", minimum=1, maximum=MAX_COUNT)
    check_memory(estimate_result_bytes(num * seeds, alphas.size, steps, 0, lyapunov), "the sweep's results")
    return alphas, lo, hi, num, wd, steps, burn_in, seeds


def conventional_table(result: SimulationResult):
    """One row per eta * lambda: classification (as the phase diagram's, on the run's direction-map
    ELRs), statistics and theory. Returns ``(columns, table)``."""
    a = np.asarray(result.alphas, dtype=float)
    wd = float(result.weight_decay)
    lw = result.elrs * wd
    regime, subtype, frac = regimes.classify_result_elrs(result)
    T = result.steps - result.burn_in
    # each group cycles on its own (derivation 11): its period is the window over its quiet phases
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no group with two quiet phases: NaN
        period = np.nanmean(np.where(result.quiet_phases >= 2, T / result.quiet_phases, np.nan), axis=-1)
    t = {"lr_wd": lw, "lr": result.elrs, "weight_decay": np.full(lw.size, wd), "regime": regime, "subtype": subtype,
         "n_seeds": np.full(lw.size, result.seeds.size), "nonfinite": result.nonfinite}
    for name in regimes.REGIMES + regimes.SUBTYPES:
        t[f"frac_{name}"] = frac[name]
    for col, arr in (("mean_loss", result.mean_loss), ("std_loss", result.std_loss),
                     ("mean_cosine", result.mean_cosine), ("hm_c", result.hm_elr * a.sum()),
                     ("mean_log1p_ess2", np.nanmean(result.mean_log1p_ess2, axis=-1)),
                     ("frac_converged", result.frac_converged), ("period", period)):
        t[col], t[f"std_{col}"] = seed_stats(arr)
    mu = float(result.momentum or 0.0)
    if mu:
        # the momentum orbit (derivation 17): its loss, the sphere's c with the same step, its log(1 + ESS^2)
        orbit = theory.conventional_momentum_orbit(lw, mu)
        t["momentum"] = np.full(lw.size, mu)
        t["theory_loss"] = a.sum() * orbit["loss_per_alpha"]
        t["theory_c"] = orbit["c_equiv"]
        t["theory_log1p_ess2"] = orbit["log1p_ess2"]
        t["theory_cosine"] = orbit["cos_step"]
    else:
        t["theory_loss"] = theory.conventional_equilibrium_loss(a, result.elrs, wd)
        t["theory_c"] = theory.conventional_equilibrium_c(result.elrs, wd)
        t["theory_log1p_ess2"] = theory.conventional_ess_law(result.elrs, wd)
    t["periodic_behaviour"] = np.mean(np.all(result.quiet_phases >= 2, axis=-1), axis=1)
    if result.lyapunov is not None:
        t["mean_lyapunov"], t["std_lyapunov"] = seed_stats(result.lyapunov)
    return tuple(t), t


def compute_conventional(alphas=DEFAULTS["alphas"], lr_wd_min=DEFAULTS["lr_wd_min"], lr_wd_max=DEFAULTS["lr_wd_max"],
                         num=DEFAULTS["num"], weight_decay=DEFAULTS["weight_decay"], steps=DEFAULTS["steps"],
                         burn_in=DEFAULTS["burn_in"], seeds=DEFAULTS["seeds"], threads=None, progress=False,
                         lyapunov=True, batch_size=None, mask_prob=1.0, cache_dir=None, scheduler=None,
                         dask_local=None, momentum=0.0) -> ConventionalSweep:
    """Sweep ``num`` log-spaced values of eta * lambda in [lr_wd_min, lr_wd_max] at the fixed
    ``weight_decay`` (learning rates eta = value / weight_decay) with seeds 0..seeds-1, classify,
    and tabulate with the derived orbit, law and c (derivations 11-14). With ``momentum`` mu > 0
    (PyTorch's heavy ball) the theory columns are the momentum orbit's (derivation 17) and there
    are no Lyapunov exponents (``lyapunov`` is ignored: the momentum kernels have no tangent map)."""
    burn_in = default_burn_in(steps, burn_in)
    alphas, lo, hi, num, wd, steps, burn_in, seeds = _validate(alphas, lr_wd_min, lr_wd_max, num, weight_decay,
                                                               steps, burn_in, seeds, bool(lyapunov))
    threads = as_threads(threads)
    batch_size, mask_prob = as_sgd(batch_size, mask_prob)
    momentum = as_momentum(momentum)
    lyapunov = bool(lyapunov) and not momentum
    lrs, _ = as_lr_wd(np.geomspace(lo, hi, num) / wd, wd)
    stats = SweepStats()
    result = run_sweep(ToyProblem(alphas), lrs, steps, seeds=seeds, burn_in=burn_in, threads=threads,
                       progress=progress, desc="conventional", lyapunov=bool(lyapunov), batch_size=batch_size,
                       mask_prob=mask_prob, weight_decay=wd, cache_dir=cache_dir, scheduler=scheduler,
                       dask_local=dask_local, stats=stats, **({"momentum": momentum} if momentum else {}))
    columns, table = conventional_table(result)
    params = dict(alphas=alphas.tolist(), lr_wd_min=lo, lr_wd_max=hi, num=num, weight_decay=wd, steps=steps,
                  burn_in=burn_in, seeds=result.seeds.tolist(), lyapunov=bool(lyapunov), batch_size=batch_size,
                  mask_prob=mask_prob, threads=threads, momentum=momentum)
    return ConventionalSweep(columns, table, params, result, stats)


def csv_text(cs: ConventionalSweep) -> str:
    return _records.csv_text(cs.columns, cs.table)


def json_record(cs: ConventionalSweep, wall_time_s=None, started=None, outputs=()) -> dict:
    a = cs.alphas
    return {"job": "conventional", "parameters": cs.params, "seeds": cs.params["seeds"],
            "theory": {"c": "1/(1 - lr wd)", "loss": "(A/2) lr wd", "log1p_ess2_law": "-2 log(1 - lr wd)",
                       "orbit_instability_c_on_the_sphere": theory.orbit_instability_c(),
                       "random_guess_loss": theory.random_guess_loss(a)},
            "classification": {"CONVERGED_LOSS_TOL": regimes.CONVERGED_LOSS_TOL,
                               "RANDOM_WALK_COSINE_TOL": regimes.RANDOM_WALK_COSINE_TOL,
                               "RANDOM_WALK_LOSS_TOL": regimes.RANDOM_WALK_LOSS_TOL,
                               "CHAOS_LYAPUNOV_TOL": regimes.CHAOS_LYAPUNOV_TOL},
            "nonfinite_runs": int(np.sum(cs.table["nonfinite"])), "columns": list(cs.columns),
            "outputs": list(outputs), "versions": versions(),
            "timing": {"started": started, "wall_time_s": wall_time_s, "chunks": cs.sweep.chunks,
                       "chunks_reused": cs.sweep.reused}}


def write_outputs(cs: ConventionalSweep, out, fmt: str = "png", plot: bool = True, wall_time_s=None, started=None):
    """``conventional.csv``, ``conventional.json`` and (unless ``plot=False``) the figure, atomically."""
    out = Path(out)
    names = ["conventional.csv", "conventional.json"] + ([f"conventional.{fmt}"] if plot else [])
    atomic_write_text(out / "conventional.csv", csv_text(cs))
    if plot:
        plots.plot_conventional_phase(cs).save(out / f"conventional.{fmt}", fmt)
    atomic_write_text(out / "conventional.json", json_text(json_record(cs, wall_time_s, started, names)))
    return [out / n for n in names]


def build_parser() -> ArgumentParser:
    d = DEFAULTS
    ap = ArgumentParser(prog="python -m toymodel.conventional",
                        description="Conventional training of the toy (plain (S)GD with weight decay, no projection) "
                                    "over a log grid of lr * wd: classify, compare with the derived orbit and law, and "
                                    "write conventional.csv, .json and a figure.")
    ap.add_argument("--alphas", default=",".join(f"{v:g}" for v in d["alphas"]),
                    help="group weights, comma-separated (default: %(default)s)")
    ap.add_argument("--lr-wd-min", type=float, default=d["lr_wd_min"], help="smallest lr * wd (default: %(default)g)")
    ap.add_argument("--lr-wd-max", type=float, default=d["lr_wd_max"],
                    help="largest lr * wd, below 1 (default: %(default)g)")
    ap.add_argument("--num", type=int_arg, default=d["num"], help="number of log-spaced values (default: %(default)s)")
    ap.add_argument("--weight-decay", type=float, default=d["weight_decay"],
                    help="the weight decay; learning rates are (lr * wd) / wd (default: %(default)g)")
    ap.add_argument("--momentum", type=float, default=0.0,
                    help="heavy-ball momentum mu in [0, 1), PyTorch's convention (default: 0); with momentum there are "
                         "no Lyapunov exponents")
    return add_sweep_arguments(ap, steps=d["steps"], seeds=d["seeds"], out=DEFAULT_OUT,
                               burn_in_fraction=BURN_IN_FRACTION)


def _main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    burn_in = default_burn_in(args.steps, args.burn_in)
    _validate(args.alphas, args.lr_wd_min, args.lr_wd_max, args.num, args.weight_decay, args.steps, burn_in,
              args.seeds, not args.no_lyapunov)
    as_threads(args.threads)
    as_sgd(args.batch_size, args.mask_prob)
    as_momentum(args.momentum)
    check_dask_choice(args.scheduler, args.dask_local)
    fmt = as_format(args.format)
    with output_dir(args.out, "out") as out, quiet_warnings(args.quiet):
        started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        t0 = time.perf_counter()
        cs = compute_conventional(args.alphas, args.lr_wd_min, args.lr_wd_max, args.num, args.weight_decay,
                                  args.steps, burn_in, args.seeds, threads=args.threads, progress=not args.quiet,
                                  lyapunov=not args.no_lyapunov, batch_size=args.batch_size, mask_prob=args.mask_prob,
                                  cache_dir=(out / CACHE_DIRNAME) if args.resume else None, scheduler=args.scheduler,
                                  dask_local=args.dask_local, momentum=args.momentum)
        wall = time.perf_counter() - t0
        paths = write_outputs(cs, out, fmt, plot=not args.no_plot, wall_time_s=wall, started=started)
    if not args.quiet:
        print(f"conventional: {plural(args.num, 'value')} of lr * wd x {plural(args.seeds, 'seed')} in {wall:.1f} s; "
              "wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


def main(argv=None) -> int:
    plots.use_file_backend()  # a job writes files: no display
    return run_cli(_main, argv, prog="python -m toymodel.conventional")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
