"""Conventional training of the networks: plain SGD with learning rate η and weight decay λ in the
full parameter space (no projection, no momentum), swept over ηλ.

``python -m toymodel.bridge.conventional`` trains the bridge's models with ``torch.optim.SGD``
(recorded by :class:`toymodel.nets.ConventionalMonitor`), and writes ``bridge_conventional.csv``
(one row per ηλ, seeds aggregated with ``std_`` columns), ``bridge_conventional.json`` and
``bridge_conventional.png``. It tests the toy's law of derivation 12 on every channel of the
network: the time mean of log(1 + ESS_i²) is -2 log(1 - ηλ) up to the boundary term
-(log η̃_i(T) - log η̃_i(0))/T, whatever F is (the norm recursion only needs g_i ⊥ w_i).
"""

from __future__ import annotations

import datetime as _dt
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import plots, regimes
from .._cli import ArgumentParser, int_arg, output_dir, plural, run_cli
from .._records import CACHE_DIRNAME, ResultType, atomic_write_text, content_key, csv_text, json_text, versions
from .._validate import as_elr_range, as_elrs, as_positive_float
from ..netrecords import ConventionalResult
from ..sweep import SweepStats, check_dask_choice, execute
from . import DEFAULTS as NET_DEFAULTS
from . import (
    BridgeRun,
    BridgeSpec,
    add_network_arguments,
    build_model,
    check_setup,
    default_workers,
    import_torch,
    random_guess,
    tensors_for,
    torch_settings,
    validate_network,
)

__all__ = ["DEFAULTS", "ConventionalNetSweep", "compute_conventional", "write_outputs", "main"]

DEFAULT_OUT = "runs/bridge_conventional"
DEFAULTS = dict(NET_DEFAULTS, lr_wd_min=1e-4, lr_wd_max=0.3, num=9, weight_decay=0.01)


def run_conventional(spec: BridgeSpec, lr: float, weight_decay: float, seed: int, threads=None) -> ConventionalResult:
    """One conventional run of the network of ``spec`` (deterministic, ``threads`` torch threads)."""
    from .. import nets

    with torch_settings(threads):
        net = build_model(spec, seed)
        return nets.train_conventional(net, tensors_for(seed, spec.data, spec.dtype, spec.device), lr, weight_decay,
                                       spec.epochs, spec.batch_size, seed=seed)


@dataclass(frozen=True)
class ConventionalTask:
    """A conventional-training sweep as a task of :func:`toymodel.sweep.execute` (one run per unit)."""

    lrs: tuple
    seeds: tuple
    spec: BridgeSpec
    weight_decay: float
    threads: int = 1
    record_type = ConventionalResult

    def units(self) -> list[BridgeRun]:
        return [BridgeRun(k * len(self.seeds) + j, k, s) for k in range(len(self.lrs))
                for j, s in enumerate(self.seeds)]

    def run_unit(self, unit: BridgeRun, threads=None) -> ConventionalResult:
        return run_conventional(self.spec, self.lrs[unit.k], self.weight_decay, unit.seed, self.threads)

    def key(self) -> str:
        return content_key({"job": "bridge.conventional", "lrs": [repr(float(v)) for v in self.lrs],
                            "weight_decay": repr(float(self.weight_decay)), "seeds": [int(s) for s in self.seeds],
                            **self.spec.payload()})


@dataclass(frozen=True, repr=False)
class ConventionalNetSweep(ResultType):
    """A classified ηλ sweep of conventional training: ``table`` one row per ηλ, ``runs[k][s]``."""

    columns: tuple
    table: dict
    params: dict
    runs: list = field(repr=False)
    random_guess: np.ndarray = field(repr=False)
    reused: int = 0

    @property
    def window(self) -> slice:
        return regimes.training_window(self.params["epochs"])

    def long_table(self) -> dict:
        rows = [(r.lr, r.weight_decay, r.lr_wd, r.seed, r.train_loss[-1], r.test_error[-1]) for row in self.runs
                for r in row]
        names = ("lr", "weight_decay", "lr_wd", "seed", "final_train_loss", "final_test_error")
        return {nm: np.array([r[i] for r in rows]) for i, nm in enumerate(names)}


def _summarise(runs, rgs, lrs, weight_decay, epochs):
    w = regimes.training_window(epochs)
    K_, S_ = len(runs), len(runs[0])

    def grid(fn):
        return np.array([[fn(runs[k][s]) for s in range(S_)] for k in range(K_)])

    loss_w = np.array([[runs[k][s].train_loss[w] for s in range(S_)] for k in range(K_)])
    cos_w = np.array([[runs[k][s].step_cosine[w] for s in range(S_)] for k in range(K_)])
    rg = np.asarray(rgs)[None, :]
    reg, sub = regimes.classify_training(loss_w, cos_w, rg)
    regime, subtype, frac = regimes.classify_elrs(reg, sub)
    lrs = np.asarray(lrs)
    t = {"lr": lrs, "weight_decay": np.full(K_, weight_decay), "lr_wd": lrs * weight_decay, "regime": regime,
         "subtype": subtype, "n_seeds": np.full(K_, S_)}
    for name in regimes.REGIMES:
        t[f"frac_{name}"] = frac[name]
    n_steps = len(runs[0][0].total_elr_per_step)
    w_steps = slice(n_steps * w.start // epochs, n_steps)
    cols = {
        # harmonic mean over the window's steps of the total ELR (the sphere's ELR of the direction)
        "hm_elr": grid(lambda r: 1.0 / np.mean(1.0 / r.total_elr_per_step[w_steps])),
        "mean_log1p_ess2": grid(lambda r: float(np.mean(r.mean_log1p_ess2))),
        # derivation 12 on every channel: |measured - law - boundary| (exact) and without the boundary term
        "law_error": grid(lambda r: float(np.max(np.abs(r.mean_log1p_ess2 - r.law_theory - r.law_boundary)))),
        "law_error_without_boundary": grid(lambda r: float(np.max(np.abs(r.mean_log1p_ess2 - r.law_theory)))),
        "frac_converged": (loss_w <= regimes.NETWORK_CONVERGED_LOSS_FRACTION * rg[..., None]).mean(axis=-1),
        "final_train_loss": grid(lambda r: r.train_loss[-1]),
        "final_test_error": grid(lambda r: r.test_error[-1]),
        "mean_cosine": cos_w.mean(axis=-1),
    }
    t["theory_log1p_ess2"] = np.array([runs[k][0].law_theory for k in range(K_)])
    for name, arr in cols.items():
        t[name] = arr.mean(axis=1)
        t[f"std_{name}"] = arr.std(axis=1)
    t["random_guess_loss"] = np.full(K_, float(np.mean(rgs)))
    return tuple(t), t


def compute_conventional(lr_wd_min=DEFAULTS["lr_wd_min"], lr_wd_max=DEFAULTS["lr_wd_max"], num=DEFAULTS["num"],
                         weight_decay=DEFAULTS["weight_decay"], seeds=DEFAULTS["seeds"], epochs=DEFAULTS["epochs"],
                         batch_size=DEFAULTS["batch_size"], hidden=DEFAULTS["hidden"], out_norm=DEFAULTS["out_norm"],
                         *, model=DEFAULTS["model"], width=DEFAULTS["width"], dtype=DEFAULTS["dtype"],
                         device=DEFAULTS["device"], data=None, threads=None, workers=1, scheduler=None,
                         dask_local=None, lr_wds=None, progress: bool = False,
                         cache_dir=None) -> ConventionalNetSweep:
    """Train the network conventionally at ``num`` log-spaced values of ηλ (η = ηλ/λ), or at the
    values ``lr_wds`` when given, for ``seeds`` seeds each, and classify; runners and cache as
    :func:`toymodel.bridge.compute_bridge`."""
    if lr_wds is not None:
        lr_wds = as_elrs(lr_wds, "lr_wds")
        lr_wd_min, lr_wd_max, num = float(lr_wds.min()), float(lr_wds.max()), int(lr_wds.size)
    else:
        lr_wd_min, lr_wd_max, num = as_elr_range(lr_wd_min, lr_wd_max, num)
    if lr_wd_max >= 1:
        raise ValueError(f"lr_wd_max must be below 1 (the decay factor 1 - lr * wd must be positive), got {lr_wd_max}")
    weight_decay = as_positive_float(weight_decay, "weight_decay")
    _, _, _, seeds, spec, threads, workers = validate_network(
        1.0, 2.0, 2, seeds, epochs, batch_size, hidden, out_norm, model, width, dtype, device, data, threads, workers)
    check_dask_choice(scheduler, dask_local)
    check_setup(spec)
    lws = np.geomspace(lr_wd_min, lr_wd_max, num) if lr_wds is None else lr_wds
    lrs = lws / weight_decay
    task = ConventionalTask(tuple(lrs.tolist()), tuple(range(seeds)), spec, weight_decay, threads or 1)
    stats = SweepStats()
    parts = execute([task], [(0, u) for u in task.units()], progress=progress, desc="bridge.conventional",
                    unit="run", cache_dir=cache_dir, scheduler=scheduler, dask_local=dask_local, workers=workers,
                    stats=stats)[0]
    rgs = [random_guess(spec, s, threads=task.threads) for s in task.seeds]
    runs = [[None] * seeds for _ in range(num)]
    for u, run in parts:
        runs[u.k][u.seed] = run
    columns, table = _summarise(runs, rgs, lrs, weight_decay, spec.epochs)
    params = dict(lr_wd_min=lr_wd_min, lr_wd_max=lr_wd_max, num=num, weight_decay=weight_decay,
                  seeds=list(range(seeds)), epochs=spec.epochs, batch_size=spec.batch_size, hidden=list(spec.hidden),
                  out_norm=spec.out_norm, model=spec.model, width=spec.width, dtype=spec.dtype, device=spec.device,
                  data=spec.data)
    return ConventionalNetSweep(columns, table, params, runs, np.array(rgs), stats.reused)


def _fixed_elr_bands(path):
    """(elrs, regimes, subtypes) of a fixed-ELR ``bridge.csv``, or None."""
    if path is None or not Path(path).is_file():
        return None
    import csv

    rows = list(csv.DictReader(open(path)))
    return (np.array([float(r["elr"]) for r in rows]), np.array([r["regime"] for r in rows], dtype=object),
            np.array([r["subtype"] for r in rows], dtype=object))


def write_outputs(cs: ConventionalNetSweep, out, fmt: str = "png", plot: bool = True, bands=None, wall_time_s=None,
                  started=None):
    """``bridge_conventional.csv``, ``.json`` and (unless ``plot=False``) ``bridge_conventional.<fmt>``,
    the effective ELR over the fixed-ELR regime bands of the ``bridge.csv`` at ``bands`` (if given)."""
    out = Path(out)
    names = ["bridge_conventional.csv", "bridge_conventional.json"]
    atomic_write_text(out / names[0], csv_text(cs.columns, cs.table))
    if plot:
        fig, _ = plots.plot_bridge_conventional(cs, _fixed_elr_bands(bands))
        plots.save_figure(fig, out / f"bridge_conventional.{fmt}", fmt)
        names.append(f"bridge_conventional.{fmt}")
    rec = {"job": "bridge.conventional", "parameters": cs.params, "random_guess_loss": cs.random_guess.tolist(),
           "window_epochs": [cs.window.start, cs.window.stop], "columns": list(cs.columns),
           "total_elr_per_epoch": [[r.total_elr.tolist() for r in row] for row in cs.runs],
           "law_per_channel_seed0": [{"lr_wd": row[0].lr_wd, "measured": row[0].mean_log1p_ess2.tolist(),
                                      "boundary": row[0].law_boundary.tolist(), "theory": row[0].law_theory}
                                     for row in cs.runs],
           "fixed_elr_bands": str(bands) if bands is not None else None, "outputs": names,
           "versions": dict(versions(), torch=import_torch().__version__),
           "timing": {"started": started, "wall_time_s": wall_time_s, "runs_reused": cs.reused}}
    atomic_write_text(out / names[1], json_text(rec, indent=None))
    return [out / n for n in names]


def _main(argv=None) -> int:
    d = DEFAULTS
    ap = ArgumentParser(prog="python -m toymodel.bridge.conventional",
                        description="Train the bridge's networks conventionally (SGD with learning rate and weight "
                                    "decay, no projection) over a sweep of eta*lambda; test the per-channel log-ESS "
                                    "law; write bridge_conventional.csv, .json and a figure.")
    ap.add_argument("--lr-wd-min", type=float, default=d["lr_wd_min"],
                    help="smallest eta*lambda (default: %(default)g)")
    ap.add_argument("--lr-wd-max", type=float, default=d["lr_wd_max"],
                    help="largest eta*lambda (default: %(default)g)")
    ap.add_argument("--num", type=int_arg, default=d["num"],
                    help="number of log-spaced eta*lambda (default: %(default)s)")
    ap.add_argument("--weight-decay", type=float, default=d["weight_decay"],
                    help="lambda; the learning rate is eta*lambda / lambda (default: %(default)g)")
    ap.add_argument("--bands", metavar="BRIDGE_CSV", default=None,
                    help="a fixed-ELR bridge.csv whose regime bands the figure shows under the effective ELR")
    add_network_arguments(ap, out=DEFAULT_OUT)
    args = ap.parse_args(argv)
    as_elr_range(args.lr_wd_min, args.lr_wd_max, args.num)
    validate_network(1.0, 2.0, 2, args.seeds, args.epochs, args.batch_size, args.hidden, args.out_norm, args.model,
                     args.width, args.dtype, args.device, args.data, args.threads, args.workers)
    check_dask_choice(args.scheduler, args.dask_local)
    import_torch()
    with output_dir(args.out, "out") as out:
        started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        t0 = time.perf_counter()
        cs = compute_conventional(args.lr_wd_min, args.lr_wd_max, args.num, args.weight_decay, args.seeds,
                                  args.epochs, args.batch_size, args.hidden, args.out_norm, model=args.model,
                                  width=args.width, dtype=args.dtype, device=args.device, data=args.data,
                                  threads=args.threads,
                                  workers=args.workers if args.workers is not None else default_workers(),
                                  scheduler=args.scheduler, dask_local=args.dask_local, progress=not args.quiet,
                                  cache_dir=(out / CACHE_DIRNAME) if args.resume else None)
        wall = time.perf_counter() - t0
        paths = write_outputs(cs, out, args.format, plot=not args.no_plot, bands=args.bands, wall_time_s=wall,
                              started=started)
    if not args.quiet:
        print(f"bridge.conventional: {plural(args.num, 'value')} of eta*lambda x {plural(args.seeds, 'seed')} in "
              f"{wall:.1f} s; wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


def main(argv=None) -> int:
    plots.use_file_backend()  # a job writes files: no display
    return run_cli(_main, argv, prog="python -m toymodel.bridge.conventional")


if __name__ == "__main__":  # not when a worker process re-imports this module
    raise SystemExit(main())
