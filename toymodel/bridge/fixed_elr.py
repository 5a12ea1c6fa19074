"""The fixed-ELR sweep: a scale-invariant network trained on the sphere at a sweep of total ELRs,
every ELR classified into a regime.

``python -m toymodel.bridge`` trains a fully scale-invariant network (``--model mlp``: the MLP
64 -> 64 -> 64 -> 10 of :class:`toymodel.nets.MLPSI`; ``--model convnet``: the paper's ConvNet
family, :class:`toymodel.nets.ConvNetSI`) with :class:`toymodel.nets.SphereSGD` at a sweep of
fixed total ELRs, records every run with :class:`toymodel.nets.RegimeMonitor`, classifies every
ELR with the criteria of :mod:`toymodel.regimes`, and writes ``bridge.csv`` and ``bridge.json``
(and the figures). The data are scikit-learn's digits (bundled: nothing is downloaded) or any
``--data FILE.npz``. Each run is one unit of :func:`toymodel.sweep.execute`: local worker
processes, a Dask cluster, and ``--resume`` all give identical results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import plots, regimes
from .._cli import Job, int_arg, note, plural
from .._records import atomic_write_text, json_text
from .._validate import as_elr_range, as_elrs, as_int
from ._runner import (
    NET_DEFAULTS,
    RADIUS,
    SHARPNESS_EXAMPLES,
    SHARPNESS_K,
    SHARPNESS_PROBES,
    BridgeSpec,
    NetSweep,
    Runner,
    SphereRun,
    add_network_arguments,
    classify_runs,
    import_torch,
    job_record,
    runner_from_args,
    seed_grid,
    spec_from_args,
)

__all__ = ["DEFAULTS", "BridgeSweep", "compute_bridge", "elr_grid", "bridge_json_record", "write_bridge_outputs",
           "figure_names", "main"]

#: where the command line writes unless told otherwise (git-ignored)
DEFAULT_OUT = "runs/bridge"

DEFAULTS = dict(NET_DEFAULTS, elr_min=1e-4, elr_max=10.0, num=21)


@dataclass(frozen=True, repr=False)
class BridgeSweep(NetSweep):
    """A classified ELR sweep of the network: one row per ELR in ``table``, per-run records in
    ``runs`` (index [elr][seed]), and the parameters.

    Attributes
    ----------
    columns, table, params, random_guess, reused
        As in :class:`NetSweep`; ``table`` has one row per ELR.
    runs : list of list of TrainResult
        ``runs[k][j]``: the run at ELR ``k`` with seed index ``j``.
    """

    @property
    def elrs(self) -> np.ndarray:
        """The sweep's ELRs, shape (K,)."""
        return np.asarray(self.table["elr"])

    def long_table(self) -> dict:
        """One row per (ELR, seed): final train loss, test error and window statistics.

        Returns
        -------
        dict of str to numpy.ndarray
            Columns ``elr``, ``seed``, ``final_train_loss``, ``final_test_error``, ``mean_loss``
            and ``mean_cosine`` (over the window), each of shape (K * S,), ELR-major.
        """
        rows = [(r.elr, r.seed, r.train_loss[-1], r.test_error[-1], r.train_loss[self.window].mean(),
                 r.step_cosine[self.window].mean()) for row in self.runs for r in row]
        names = ("elr", "seed", "final_train_loss", "final_test_error", "mean_loss", "mean_cosine")
        return {nm: np.array([r[i] for r in rows]) for i, nm in enumerate(names)}


def elr_grid(elr_min=DEFAULTS["elr_min"], elr_max=DEFAULTS["elr_max"], num=DEFAULTS["num"]) -> np.ndarray:
    """``num`` log-spaced ELRs from ``elr_min`` to ``elr_max``.

    Parameters
    ----------
    elr_min, elr_max : float, optional
        The smallest and largest ELR, ``0 < elr_min < elr_max``, finite (default 1e-4 and 10).
    num : int, optional
        The number of ELRs, >= 2 (default 21).

    Returns
    -------
    numpy.ndarray, shape (num,)
        Increasing.

    Raises
    ------
    ValueError
        If the bounds or ``num`` are not valid.
    """
    elr_min, elr_max, num = as_elr_range(elr_min, elr_max, num)
    return np.geomspace(elr_min, elr_max, num)


def compute_bridge(elrs=None, seeds: int = DEFAULTS["seeds"], spec: BridgeSpec | None = None,
                   runner: Runner | None = None) -> BridgeSweep:
    """Train the network at every ELR for ``seeds`` seeds and classify every ELR.

    Parameters
    ----------
    elrs : array_like, shape (K,), optional
        Total ELRs (positive, increasing); default :func:`elr_grid` (21 from 1e-4 to 10).
    seeds : int, optional
        Seeds 0 .. seeds-1 at every ELR. Seed s fixes the data split (digits), the output layer,
        the initial weights and the batch order.
    spec : BridgeSpec, optional
        The network, data and training (default :meth:`BridgeSpec.make`). With
        ``spec.sharpness`` the tangent Hessian's top eigenvalues and trace are measured at the end
        of every run and summarised per ELR.
    runner : Runner, optional
        Where the runs go and the resume cache (default: one process). The results do not depend
        on it.

    Returns
    -------
    BridgeSweep

    Raises
    ------
    ValueError
        If ``elrs`` or ``seeds`` is not valid, the records would not fit in memory, or the setup
        fails :meth:`BridgeSpec.check_setup` (torch missing, no CUDA device, data that do not fit
        the model or the batch size).
    """
    elrs = elr_grid() if elrs is None else as_elrs(elrs)
    seeds = as_int(seeds, "seeds", minimum=1)
    spec = spec or BridgeSpec.make()
    runner = runner or Runner()
    spec.check_memory(elrs.size * seeds)
    spec.check_setup()
    task = runner.task("bridge", spec, [SphereRun(float(e)) for e in elrs], range(seeds))
    runs, reused = runner.run(task, "bridge")
    rgs = runner.random_guess(spec, task.seeds)
    columns, table = _summarise(runs, rgs, elrs, spec.epochs)
    params = dict(elr_min=float(elrs[0]), elr_max=float(elrs[-1]), num=int(elrs.size), seeds=list(task.seeds),
                  **spec.params(), sharpness=spec.sharpness)
    return BridgeSweep(columns, table, params, runs, rgs, reused)


def _summarise(runs, rgs, elrs, epochs):
    """One row per ELR: window statistics of every seed, classified, averaged over seeds."""
    w = regimes.training_window(epochs)
    K_, S_ = len(runs), len(runs[0])
    loss_w, cos_w, regime, subtype, frac = classify_runs(runs, rgs, w)
    t = {"elr": np.asarray(elrs), "regime": regime, "subtype": subtype, "n_seeds": np.full(K_, S_)}
    for name in regimes.REGIMES + regimes.SUBTYPES:
        t[f"frac_{name}"] = frac[name]
    cols = {
        "mean_loss": loss_w.mean(axis=-1), "std_loss": loss_w.std(axis=-1),
        "final_train_loss": seed_grid(runs, lambda r: r.train_loss[-1]),
        "final_test_error": seed_grid(runs, lambda r: r.test_error[-1]),
        "mean_cosine": cos_w.mean(axis=-1),
        "mean_angle": seed_grid(runs, lambda r: r.step_angle[w].mean()),
        # the median over the window's epochs: a diverging run's norm split makes single epochs huge
        "median_eff_grad_norm": seed_grid(runs, lambda r: np.median(r.eff_grad_norm[w])),
        "epoch_cosine": seed_grid(runs, lambda r: r.epoch_cosine[w].mean()),
        "ess_dispersion": seed_grid(runs, lambda r: _ess_dispersion(r, w)),
        # the landing rule's reading (derivation 16): the window's time mean of log(1 + ESS_i^2), channel mean
        "mean_log1p_ess2": seed_grid(runs, lambda r: float(np.mean(r.channel_log1p_ess2[w]))),
    }
    for name, arr in cols.items():
        t[name] = arr.mean(axis=1)
        t[f"std_{name}"] = arr.std(axis=1)
    t["random_guess_loss"] = np.full(K_, float(np.mean(rgs)))
    if runs[0][0].sharpness_top is not None:
        top = seed_grid(runs, lambda r: r.sharpness_top[0])
        tr = seed_grid(runs, lambda r: r.sharpness_trace)
        se = seed_grid(runs, lambda r: r.sharpness_trace_se)
        elrs_ = np.asarray(elrs)[:, None]
        t["sharpness_top"], t["std_sharpness_top"] = top.mean(axis=1), top.std(axis=1)
        t["sharpness_trace"], t["std_sharpness_trace"] = tr.mean(axis=1), tr.std(axis=1)
        # the standard error of the seed mean from the probes alone (the seeds' spread is std_)
        t["sharpness_trace_se"] = np.sqrt((se**2).sum(axis=1)) / S_
        t["elr_x_sharpness"], t["std_elr_x_sharpness"] = (elrs_ * top).mean(axis=1), (elrs_ * top).std(axis=1)
    return tuple(t), t


def _ess_dispersion(r, w: slice) -> float:
    """Spread of the per-channel ESS (window means): standard deviation of log ESS over channels."""
    ess = r.channel_ess[w].mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.std(np.log(ess)))


def bridge_json_record(bs: BridgeSweep, wall_time_s=None, started=None, outputs=()) -> dict:
    """Parameters, versions, classification constants, timing, the random-guess level per seed,
    per-ELR seed-averaged learning curves, and the per-channel data of seed 0 for the ESS figure.

    With sharpness measured, also every run's top eigenvalues and the check of the sphere's
    stability bound on the runs that converged.

    Parameters
    ----------
    bs : BridgeSweep
    wall_time_s : float, optional
        The job's wall time in seconds.
    started : str, optional
        When the job started (ISO 8601).
    outputs : iterable of str, optional
        The names of the files written.

    Returns
    -------
    dict
        JSON-able (:func:`job_record`).
    """
    w = bs.window
    curves = {name: [np.mean([getattr(r, name) for r in row], axis=0).tolist() for row in bs.runs]
              for name in ("train_loss", "test_error", "eff_grad_norm", "step_cosine", "epoch_cosine")}
    channels = [{"elr": float(row[0].elr), "channel_elr": row[0].channel_elr[w].mean(axis=0).tolist(),
                 "channel_eff_grad_norm": row[0].channel_egn[w].mean(axis=0).tolist()} for row in bs.runs]
    return job_record(
        "bridge", bs.params, outputs, wall_time_s, started, bs.reused,
        seeds=bs.params["seeds"],
        random_guess_loss=bs.random_guess.tolist(),
        window_epochs=[w.start, w.stop],
        window_too_short=bs.window_too_short,
        classification={"RANDOM_WALK_COSINE_TOL": regimes.RANDOM_WALK_COSINE_TOL,
                        "RANDOM_WALK_LOSS_TOL": regimes.RANDOM_WALK_LOSS_TOL,
                        "NETWORK_CONVERGED_LOSS_FRACTION": regimes.NETWORK_CONVERGED_LOSS_FRACTION,
                        "PERIODIC_STD_TOL": regimes.PERIODIC_STD_TOL,
                        "WINDOW_FRACTION": regimes.TRAINING_WINDOW_FRACTION,
                        "MIN_WINDOW_EPOCHS": regimes.MIN_WINDOW_EPOCHS},
        columns=list(bs.columns),
        curves=curves,
        channels_seed0=channels,
        max_norm_drift=max(r.norm_drift for row in bs.runs for r in row),
        **(_sharpness_record(bs) if bs.params.get("sharpness") else {}))


def _sharpness_record(bs: BridgeSweep) -> dict:
    """The sharpness settings, every run's top eigenvalues, and the check of the sphere's stability
    bound (derivation 15) on the runs that converged."""
    from .. import theory

    bound = theory.sphere_stability_bound()
    rg = bs.random_guess
    conv = [(r.elr, float(r.elr * r.sharpness_top[0] * RADIUS**2)) for row in bs.runs for j, r in enumerate(row)
            if r.classify(float(rg[j]), bs.window)[0] == "convergence"]
    return {"sharpness": {
        "examples": SHARPNESS_EXAMPLES, "top_k": SHARPNESS_K, "probes": SHARPNESS_PROBES, "precision": "float64",
        "top": [[r.sharpness_top.tolist() for r in row] for row in bs.runs],
        "stability_bound": bound,
        "converged_runs": len(conv),
        "converged_max_elr_x_sharpness": max((v for _, v in conv), default=None),
        "converged_within_bound": all(v < bound for _, v in conv)}}


def write_bridge_outputs(bs: BridgeSweep, out, fmt: str = "png", plot: bool = True, wall_time_s=None, started=None,
                         records: str = "bridge"):
    """Write ``<records>.csv``, ``<records>.json`` and the figures, each atomically.

    The figures (unless ``plot=False``) are those of :func:`figure_names`, and the sharpness
    figure when the sharpness was measured.

    Parameters
    ----------
    bs : BridgeSweep
    out : str or path-like
        The output folder.
    fmt : str, optional
        The figures' format: png (default), svg or pdf.
    plot : bool, optional
        Write the figures (default True).
    wall_time_s : float, optional
        The job's wall time in seconds, for the JSON record.
    started : str, optional
        When the job started (ISO 8601), for the JSON record.
    records : str, optional
        The CSV and JSON files' stem (default ``"bridge"``: ``bridge.csv``, ``bridge.json``).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    out = Path(out)
    names = [f"{records}.csv", f"{records}.json"]
    atomic_write_text(out / names[0], bs.csv_text())
    if plot:
        regimes_name, ess_name = figure_names(bs.params["model"], fmt)
        plots.plot_bridge_regimes(bs).save(out / regimes_name, fmt)
        plots.plot_bridge_ess(bs).save(out / ess_name, fmt)
        names += [regimes_name, ess_name]
        if bs.params.get("sharpness"):
            sharp_name = regimes_name.replace("bridge_regimes", "bridge_sharpness")
            plots.plot_bridge_sharpness(bs).save(out / sharp_name, fmt)
            names.append(sharp_name)
    atomic_write_text(out / names[1], json_text(bridge_json_record(bs, wall_time_s, started, names), indent=None))
    return [out / n for n in names]


def figure_names(model: str, fmt: str = "png") -> tuple[str, str]:
    """The two figure file names of a sweep of ``model``.

    Parameters
    ----------
    model : {"mlp", "convnet"}
    fmt : str, optional
        The file extension (default ``"png"``).

    Returns
    -------
    regimes_name : str
        ``bridge_regimes.<fmt>`` for the MLP, ``bridge_regimes_convnet.<fmt>`` for the ConvNet.
    ess_name : str
        ``bridge_ess.<fmt>``, with the same suffix.
    """
    suffix = "" if model == "mlp" else f"_{model}"
    return f"bridge_regimes{suffix}.{fmt}", f"bridge_ess{suffix}.{fmt}"


# ------------------------------------------------------------------------------ command line
def _add_arguments(ap) -> None:
    d = DEFAULTS
    ap.add_argument("--elr-min", type=float, default=d["elr_min"], help="smallest ELR (default: %(default)g)")
    ap.add_argument("--elr-max", type=float, default=d["elr_max"], help="largest ELR (default: %(default)g)")
    ap.add_argument("--num", type=int_arg, default=d["num"], help="number of log-spaced ELRs (default: %(default)s)")
    add_network_arguments(ap, out=DEFAULT_OUT)
    ap.add_argument("--sharpness", action="store_true",
                    help=f"at the end of every run, the tangent Hessian's top {SHARPNESS_K} eigenvalues (Lanczos) and "
                         f"trace (Hutchinson, {SHARPNESS_PROBES} probes) on {SHARPNESS_EXAMPLES} training examples; "
                         "adds columns and bridge_sharpness.png")


def _prepare(args):
    elrs = elr_grid(args.elr_min, args.elr_max, args.num)
    seeds = as_int(args.seeds, "seeds", minimum=1)
    spec = spec_from_args(args, sharpness=args.sharpness)
    spec.check_memory(elrs.size * seeds)
    runner_from_args(args)  # validates --workers, --threads, --scheduler, --dask-local
    import_torch()
    return args, elrs, seeds, spec


def _compute(plan, out):
    args, elrs, seeds, spec = plan
    bs = compute_bridge(elrs, seeds, spec, runner_from_args(args, out))
    if bs.window_too_short:
        w = bs.window
        note(f"bridge: warning: the classification window (epochs {w.start}-{w.stop}) has fewer than "
             f"{regimes.MIN_WINDOW_EPOCHS} epochs, too few for the regimes to mean anything; use --epochs "
             f"{int(math.ceil(regimes.MIN_WINDOW_EPOCHS / regimes.TRAINING_WINDOW_FRACTION))} or more", args.quiet)
    return bs


def _summary(bs: BridgeSweep, wall: float) -> str:
    p = bs.params
    return (f"bridge: {p['model']}, {plural(p['num'], 'ELR')} x {plural(len(p['seeds']), 'seed')} x "
            f"{plural(p['epochs'], 'epoch')} in {wall:.1f} s")


DESCRIPTION = ("Train a fully scale-invariant network (BN without affine, fixed output layer) on the sphere at a "
               "sweep of fixed total ELRs, classify every ELR into a regime, and write bridge.csv, bridge.json "
               "and two figures.")
#: ``python -m toymodel.bridge``; ``main(argv)`` runs it and returns the exit code
JOB = Job(prog="python -m toymodel.bridge", description=DESCRIPTION, add_arguments=_add_arguments,
          prepare=_prepare, compute=_compute, write=write_bridge_outputs, summary=_summary,
          setup=lambda: plots.use_file_backend())
main = JOB.run
