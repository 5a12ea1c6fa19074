"""The main job: sweep the total ELR, classify every ELR into a regime, overlay theory.

``python -m toymodel.phase_diagram`` writes ``phase_diagram.csv`` (one row per ELR),
``phase_diagram.json`` (every parameter, the seeds, versions, wall time) and
``phase_diagram.png`` (or svg/pdf) into ``--out`` (default ``figures/``).
"""

from __future__ import annotations

import datetime as _dt
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _records, plots, regimes, theory
from ._cli import ArgumentParser, add_sweep_arguments, int_arg, output_dir, plural, quiet_warnings, run_cli
from ._records import CACHE_DIRNAME, atomic_write_text, json_text, versions
from ._validate import (
    BURN_IN_FRACTION,
    FORMATS,
    as_alphas,
    as_elr_range,
    as_format,
    as_int,
    as_refine_tol,
    as_sgd,
    as_steps_burn_in,
    as_threads,
    default_burn_in,
)
from .model import PAPER_ALPHAS, ToyProblem
from .simulate import SimulationResult, check_memory, estimate_result_bytes, seed_stats
from .sweep import ClassifiedSweep, SweepStats, check_dask_choice, concat_results, run_sweep

__all__ = ["DEFAULTS", "FORMATS", "PhaseDiagram", "Boundary", "compute_phase_diagram", "refine", "phase_table",
           "csv_text", "json_record", "write_outputs", "main"]

#: the defaults of the main job; ``burn_in=None`` means BURN_IN_FRACTION of the steps
DEFAULTS = dict(alphas=PAPER_ALPHAS, elr_min=1e-3, elr_max=1e2, num=300, steps=1_000_000, burn_in=None, seeds=8)
#: where the command line writes unless told otherwise (git-ignored; ``python -m toymodel.figures``
#: is the one command that writes the committed ``figures/``)
DEFAULT_OUT = "runs/phase_diagram"

#: SimulationResult statistics tabulated per ELR (seed mean, and their spread over seeds as std_*)
_STATS = ("mean_loss", "std_loss", "mean_cosine", "mean_angle", "mean_eff_grad_norm")


@dataclass(frozen=True, repr=False)
class PhaseDiagram(ClassifiedSweep):
    """A classified ELR sweep: one row per ELR in ``table`` (columns in ``columns`` order).

    After ``refine``, ``table`` also holds the bisection points (column ``refined`` True), sorted
    by ELR with the grid, and ``refinement`` describes the boundaries (:func:`refinement_record`).
    """

    refinement: dict | None = field(default=None)

    def summary_lines(self) -> list:
        reg = list(self.table["regime"])
        counts = {r: reg.count(r) for r in dict.fromkeys(reg)}
        return ["rows per regime: " + ", ".join(f"{r} {n}" for r, n in counts.items())]

    def long_table(self) -> dict:
        """One row per (ELR, seed): the run's statistics and its own regime and subtype."""
        cols = self.result.long_table()
        reg, sub = regimes.classify_result(self.result)
        cols["regime"] = np.asarray(reg).reshape(-1)
        cols["subtype"] = np.asarray(sub).reshape(-1)
        return cols


def _validate(alphas, elr_min, elr_max, num, steps, burn_in, seeds, lyapunov=True):
    alphas = as_alphas(alphas)
    elr_min, elr_max, num = as_elr_range(elr_min, elr_max, num)
    steps, burn_in = as_steps_burn_in(steps, burn_in)
    seeds = as_int(seeds, "seeds", minimum=1)
    check_memory(estimate_result_bytes(num * seeds, alphas.size, steps, 0, lyapunov), "the phase diagram's results")
    return alphas, elr_min, elr_max, num, steps, burn_in, seeds


def phase_table(result: SimulationResult):
    """Aggregate a sweep into one row per ELR: classification, statistics and theory.

    When the result has Lyapunov exponents they decide the subtype and are tabulated
    (``mean_lyapunov``, ``std_lyapunov``, ``mean_lyapunov_angle``).
    Returns ``(columns, table)``; ``table[col]`` has one entry per ELR.
    """
    a = np.asarray(result.alphas, dtype=float)
    n = a.size
    elrs = result.elrs
    regime, subtype, frac = regimes.classify_result_elrs(result)
    t = {
        "elr": elrs,
        "c": elrs * a.sum(),
        "regime": regime,
        "subtype": subtype,
        "theory_regime": regimes.theory_regime(a, elrs, threshold_c=regimes.result_stability_edge(result)),
        "n_seeds": np.full(elrs.size, result.seeds.size),
        "nonfinite": result.nonfinite,
    }
    for name in regimes.REGIMES + regimes.SUBTYPES:
        t[f"frac_{name}"] = frac[name]
    for col in _STATS:
        t[col], t[f"std_{col}"] = seed_stats(getattr(result, col))
    if result.lyapunov is not None:
        t["mean_lyapunov"], t["std_lyapunov"] = seed_stats(result.lyapunov)
        t["mean_lyapunov_angle"], t["std_lyapunov_angle"] = seed_stats(result.lyapunov_angle)
    t["theory_loss"] = theory.equilibrium_loss(a, elrs)
    t["theory_cosine"] = theory.equilibrium_cosine(a, elrs)
    t["theory_angle"] = theory.equilibrium_angle(a, elrs)
    t["theory_eff_grad_norm"] = theory.equilibrium_eff_grad_norm(a, elrs)
    gm, gs = seed_stats(result.mean_group_elrs)
    tg = theory.equilibrium_group_elrs(a, elrs)
    for i in range(n):
        t[f"group_elr_{i + 1}"] = gm[:, i]
    for i in range(n):
        t[f"std_group_elr_{i + 1}"] = gs[:, i]
    for i in range(n):
        t[f"theory_group_elr_{i + 1}"] = tg[:, i]
    # harmonic time-mean of each group ELR, elr / <omega_i>, seed-averaged
    hm, _ = seed_stats(elrs[:, None, None] / result.mean_group_shares)
    for i in range(n):
        t[f"hm_group_elr_{i + 1}"] = hm[:, i]
    return tuple(t), t


@dataclass
class Boundary:
    """A boundary between two per-ELR verdicts (``"regime"`` or ``"regime/subtype"``), bracketed
    by the ELRs ``lo`` (verdict ``below``) and ``hi`` (verdict ``above``); ``points`` is the number
    of bisection points it has taken."""

    lo: float
    hi: float
    below: str
    above: str
    points: int = 0

    @property
    def relative_width(self) -> float:
        """hi / lo - 1: the bracket's relative width in ELR, and so in c = ELR * sum(alpha)."""
        return self.hi / self.lo - 1.0


def elr_verdicts(result) -> list:
    """The verdict of every ELR of ``result``: its regime, with ``/periodic`` or ``/chaotic`` in
    the equilibrium (majority over seeds, :func:`toymodel.regimes.classify_result_elrs`)."""
    regime, subtype, _ = regimes.classify_result_elrs(result)
    return regimes.verdict_labels(regime, subtype)


def refine(result: SimulationResult, tol: float, run):
    """Bisect every boundary of a classified ELR sweep to relative width ``tol`` in c.

    Neighbouring ELRs of ``result`` whose verdicts (:func:`elr_verdicts`) differ bracket a
    boundary. Each round evaluates the geometric midpoint of every bracket still wider than ``tol``
    with ``run(elrs, round_index) -> SimulationResult`` (the same seeds and options as the grid)
    and keeps the half whose ends still differ; a midpoint with a third verdict splits its bracket
    in two, so every boundary the grid hid between two points is followed too. Returns ``(joined
    result sorted by ELR, boundaries sorted by ELR, rounds, whether each ELR of the joined result
    is a bisection point)``.
    """
    tol = as_refine_tol(tol)
    elrs = np.asarray(result.elrs, dtype=float)
    if np.any(np.diff(elrs) <= 0):
        raise ValueError("refine needs a sweep with increasing ELRs")
    v = elr_verdicts(result)
    brackets = [Boundary(float(elrs[k]), float(elrs[k + 1]), v[k], v[k + 1]) for k in range(elrs.size - 1)
                if v[k] != v[k + 1]]
    parts, rounds = [result], 0
    while True:
        # the midpoint of a bracket at the resolution of doubles can equal an end: stop there
        active = [(b, math.sqrt(b.lo * b.hi)) for b in brackets if b.relative_width > tol]
        active = [(b, m) for b, m in active if b.lo < m < b.hi]
        if not active:
            break
        res = run(np.array([m for _, m in active]), rounds)
        for (b, mid), verdict in zip(active, elr_verdicts(res), strict=True):
            b.points += 1
            if verdict == b.below:
                b.lo = mid
            elif verdict == b.above:
                b.hi = mid
            else:
                brackets.append(Boundary(mid, b.hi, verdict, b.above))
                b.hi, b.above = mid, verdict
        brackets.sort(key=lambda b: b.lo)
        parts.append(res)
        rounds += 1
    joined = concat_results(parts)
    # a midpoint lies strictly inside a bracket of neighbours, so it never equals a grid ELR
    return joined, brackets, rounds, ~np.isin(joined.elrs, elrs)


def uniform_grid_size(elr_min: float, elr_max: float, tol: float) -> int:
    """Points of a log grid over [elr_min, elr_max] whose neighbours are ``tol`` apart relative in
    c: the uniform grid of the resolution ``refine`` reaches."""
    return int(math.ceil(math.log(elr_max / elr_min) / math.log1p(tol))) + 1


def refinement_record(boundaries, rounds: int, tol: float, grid_points: int, refined_points: int, seeds: int,
                      elr_min: float, elr_max: float, alphas, k_edge: float) -> dict:
    """What ``refine`` found and what it cost, for the JSON: every boundary with its bracket in ELR
    and in c, the convergence threshold (beside its derived value) and the onset of chaos (the first
    periodic -> chaotic boundary above it), and the trajectories against a uniform grid of the same
    resolution."""
    A = float(np.sum(alphas))
    rows = [{"below": b.below, "above": b.above, "elr_lo": b.lo, "elr_hi": b.hi, "c_lo": b.lo * A, "c_hi": b.hi * A,
             "relative_width": b.relative_width, "points": b.points} for b in boundaries]
    conv = next((r for r in rows if r["below"] == "convergence"), None)
    if conv is not None:
        conv = dict(conv, theory_c=k_edge, brackets_theory=bool(conv["c_lo"] <= k_edge <= conv["c_hi"]))
    onset = next((r for r in rows if r["below"] == "chaotic_equilibrium/periodic"
                  and r["above"] == "chaotic_equilibrium/chaotic"), None)
    uniform = uniform_grid_size(elr_min, elr_max, tol)
    used = (grid_points + refined_points) * seeds
    return {"tol": tol, "rounds": rounds, "boundaries": rows, "convergence_threshold": conv, "chaos_onset": onset,
            "trajectories": {"grid": grid_points * seeds, "refinement": refined_points * seeds, "total": used,
                             "uniform_grid_same_resolution": uniform * seeds,
                             "fraction_of_uniform": used / (uniform * seeds)}}


def compute_phase_diagram(alphas=DEFAULTS["alphas"], elr_min=DEFAULTS["elr_min"], elr_max=DEFAULTS["elr_max"],
                          num=DEFAULTS["num"], steps=DEFAULTS["steps"], burn_in=DEFAULTS["burn_in"],
                          seeds=DEFAULTS["seeds"], threads=None, progress: bool = False,
                          lyapunov: bool = True, batch_size=None, mask_prob=1.0, cache_dir=None,
                          scheduler=None, dask_local=None, refine_tol=None) -> PhaseDiagram:
    """Sweep ``num`` log-spaced ELRs in [elr_min, elr_max] with seeds 0..seeds-1 and classify.

    With ``lyapunov`` (the default) every run also computes its largest Lyapunov exponent,
    which decides periodic vs chaotic and fills the Lyapunov panel. ``batch_size`` and
    ``mask_prob`` switch to mini-batch SGD (see :func:`toymodel.simulate`); convergence is then
    judged against the SGD stability edge. ``cache_dir`` keeps finished chunks so that an
    interrupted sweep resumes where it stopped (:func:`toymodel.sweep.run_sweeps`);
    ``scheduler``/``dask_local`` run the chunks on a Dask cluster. ``refine_tol`` then bisects every
    boundary between neighbouring verdicts to that relative width in c (:func:`refine`), with the
    same seeds, options, chunking, cache and runner; the bisection points join the table (column
    ``refined``) and ``refinement`` holds the boundaries.
    Raises ValueError for bad parameters (see :mod:`toymodel._validate`).
    """
    burn_in = default_burn_in(steps, burn_in)
    alphas, elr_min, elr_max, num, steps, burn_in, seeds = _validate(alphas, elr_min, elr_max, num, steps, burn_in,
                                                                     seeds, bool(lyapunov))
    threads = as_threads(threads)
    batch_size, mask_prob = as_sgd(batch_size, mask_prob)
    if refine_tol is not None:
        refine_tol = as_refine_tol(refine_tol)
    elrs = np.geomspace(elr_min, elr_max, num)
    problem = ToyProblem(alphas)
    sweep_stats = SweepStats()

    def run(grid, desc):
        st = SweepStats()
        res = run_sweep(problem, grid, steps, seeds=seeds, burn_in=burn_in, threads=threads, progress=progress,
                        desc=desc, lyapunov=bool(lyapunov), batch_size=batch_size, mask_prob=mask_prob,
                        cache_dir=cache_dir, scheduler=scheduler, dask_local=dask_local, stats=st)
        sweep_stats.chunks += st.chunks
        sweep_stats.reused += st.reused
        return res

    result = run(elrs, "phase diagram")
    refinement = None
    if refine_tol is not None:
        coarse = result
        result, bounds, rounds, refined = refine(coarse, refine_tol, lambda g, r: run(g, f"refining (round {r + 1})"))
        refinement = refinement_record(bounds, rounds, refine_tol, num, int(refined.sum()), seeds, elr_min, elr_max,
                                       alphas, regimes.result_stability_edge(coarse))
    columns, table = phase_table(result)
    if refinement is not None:
        columns, table["refined"] = columns + ("refined",), refined
    params = dict(alphas=alphas.tolist(), elr_min=elr_min, elr_max=elr_max, num=num, steps=steps, burn_in=burn_in,
                  seeds=result.seeds.tolist(), lyapunov=bool(lyapunov), batch_size=batch_size, mask_prob=mask_prob,
                  threads=threads, refine=refine_tol)
    return PhaseDiagram(columns, table, params, result, sweep_stats, refinement)


def csv_text(pd: PhaseDiagram) -> str:
    """The CSV text: a header and one row per ELR (floats in shortest round-trip form)."""
    return _records.csv_text(pd.columns, pd.table)


def json_record(pd: PhaseDiagram, wall_time_s: float | None = None, started: str | None = None,
                outputs=()) -> dict:
    a = pd.alphas
    return {
        "job": "phase_diagram",
        "parameters": pd.params,
        "seeds": pd.params["seeds"],
        "theory": {
            "threshold_elr": theory.threshold_elr(a),
            "sgd_threshold_elr": (theory.sgd_threshold_elr(a, pd.params["batch_size"], pd.params["mask_prob"])
                                  if pd.params.get("batch_size") is not None else None),
            "random_guess_loss": theory.random_guess_loss(a),
            "crossover_c": regimes.crossover_c(),
            "crossover_elr": regimes.crossover_c() / a.sum(),
        },
        "classification": {
            "CONVERGED_LOSS_TOL": regimes.CONVERGED_LOSS_TOL,
            "RANDOM_WALK_COSINE_TOL": regimes.RANDOM_WALK_COSINE_TOL,
            "RANDOM_WALK_LOSS_TOL": regimes.RANDOM_WALK_LOSS_TOL,
            "PERIODIC_STD_TOL": regimes.PERIODIC_STD_TOL,
            "CHAOS_LYAPUNOV_TOL": regimes.CHAOS_LYAPUNOV_TOL,
        },
        "refinement": pd.refinement,
        "nonfinite_runs": int(np.sum(pd.table["nonfinite"])),
        "columns": list(pd.columns),
        "outputs": list(outputs),
        "versions": versions(),
        "timing": {"started": started, "wall_time_s": wall_time_s, "chunks": pd.sweep.chunks,
                   "chunks_reused": pd.sweep.reused},
    }


def write_outputs(pd: PhaseDiagram, out, fmt: str = "png", plot: bool = True, wall_time_s=None, started=None):
    """Write CSV, JSON and (unless ``plot=False``) the figure into ``out``, each atomically."""
    out = Path(out)
    names = ["phase_diagram.csv", "phase_diagram.json"] + ([f"phase_diagram.{fmt}"] if plot else [])
    atomic_write_text(out / "phase_diagram.csv", csv_text(pd))
    if plot:
        fig, _ = plots.plot_phase_diagram(pd)
        plots.save_figure(fig, out / f"phase_diagram.{fmt}", fmt)
    rec = json_record(pd, wall_time_s=wall_time_s, started=started, outputs=names)
    atomic_write_text(out / "phase_diagram.json", json_text(rec))
    return [out / n for n in names]


def build_parser() -> ArgumentParser:
    d = DEFAULTS
    ap = ArgumentParser(prog="python -m toymodel.phase_diagram",
                        description="Sweep the total effective learning rate (ELR) of the toy model on a log grid, "
                                    "classify every ELR into a regime (convergence, chaotic equilibrium, divergence) "
                                    "and overlay the derived theory. Writes phase_diagram.csv, .json and a figure.")
    ap.add_argument("--alphas", default=",".join(f"{v:g}" for v in d["alphas"]),
                    help="group weights, comma-separated (default: %(default)s, the paper's toy)")
    ap.add_argument("--elr-min", type=float, default=d["elr_min"], help="smallest ELR (default: %(default)g)")
    ap.add_argument("--elr-max", type=float, default=d["elr_max"], help="largest ELR (default: %(default)g)")
    ap.add_argument("--num", type=int_arg, default=d["num"],
                    help="number of log-spaced ELRs, >= 2 (default: %(default)s)")
    ap.add_argument("--refine", metavar="TOL", type=float, default=None,
                    help="after the grid, bisect (in log ELR) between neighbouring ELRs whose regime or subtype "
                         "differs until every boundary is bracketed to relative width TOL in c, e.g. 1e-3; the "
                         "points join the CSV (column refined) and the brackets the JSON (default: no refinement)")
    return add_sweep_arguments(ap, steps=d["steps"], seeds=d["seeds"], out=DEFAULT_OUT,
                               burn_in_fraction=BURN_IN_FRACTION)


def _main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    burn_in = default_burn_in(args.steps, args.burn_in)
    # validate everything before touching the file system
    _validate(args.alphas, args.elr_min, args.elr_max, args.num, args.steps, burn_in, args.seeds,
              not args.no_lyapunov)
    as_threads(args.threads)
    as_sgd(args.batch_size, args.mask_prob)
    if args.refine is not None:
        as_refine_tol(args.refine)
    check_dask_choice(args.scheduler, args.dask_local)
    fmt = as_format(args.format)
    with output_dir(args.out, "out") as out, quiet_warnings(args.quiet):
        started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        t0 = time.perf_counter()
        pd = compute_phase_diagram(args.alphas, args.elr_min, args.elr_max, args.num, args.steps, burn_in,
                                   args.seeds, threads=args.threads, progress=not args.quiet,
                                   lyapunov=not args.no_lyapunov, batch_size=args.batch_size,
                                   mask_prob=args.mask_prob, cache_dir=(out / CACHE_DIRNAME) if args.resume else None,
                                   scheduler=args.scheduler, dask_local=args.dask_local, refine_tol=args.refine)
        wall = time.perf_counter() - t0
        paths = write_outputs(pd, out, fmt, plot=not args.no_plot, wall_time_s=wall, started=started)
    if not args.quiet:
        reused = f" ({pd.sweep.reused} of {plural(pd.sweep.chunks, 'chunk')} reused)" if args.resume else ""
        print(f"phase diagram: {plural(len(pd.table['elr']), 'ELR')} x {plural(args.seeds, 'seed')} in {wall:.1f} s"
              f"{reused}; wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


def main(argv=None) -> int:
    plots.use_file_backend()  # a job writes files: no display
    return run_cli(_main, argv, prog="python -m toymodel.phase_diagram")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
