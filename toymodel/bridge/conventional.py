"""Conventional training of the networks: plain SGD with learning rate η and weight decay λ in the
full parameter space (no projection, no momentum), swept over ηλ.

``python -m toymodel.bridge.conventional`` trains the bridge's models with ``torch.optim.SGD``
(recorded by :class:`toymodel.nets.ConventionalMonitor`), and writes ``bridge_conventional.csv``
(one row per ηλ, seeds aggregated with ``std_`` columns), ``bridge_conventional.json`` and
``bridge_conventional.png``. It tests the toy's law of derivation 12 on every channel of the
network: the time mean of log(1 + ESS_i²) is -2 log(1 - ηλ) up to the boundary term
(log r_i(T)² - log r_i(0)²)/T, whatever F is (the norm recursion only needs g_i ⊥ w_i).
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import plots, regimes
from .._cli import Job, int_arg, plural
from .._records import atomic_write_text, json_text
from .._validate import as_elr_range, as_elrs, as_int, as_momentum, as_positive_float
from ._runner import (
    NET_DEFAULTS,
    BridgeSpec,
    ConventionalRun,
    NetSweep,
    Runner,
    add_network_arguments,
    classify_runs,
    import_torch,
    job_record,
    runner_from_args,
    seed_grid,
    spec_from_args,
)
from .predict import predict_landing

__all__ = ["DEFAULTS", "ConventionalNetSweep", "compute_conventional", "lr_wd_grid", "read_regime_bands",
           "write_outputs", "compute_periodic", "write_periodic_outputs", "main"]

DEFAULT_OUT = "runs/bridge_conventional"
DEFAULTS = dict(NET_DEFAULTS, lr_wd_min=1e-4, lr_wd_max=0.3, num=9, weight_decay=0.01)


@dataclass(frozen=True, repr=False)
class ConventionalNetSweep(NetSweep):
    """A classified ηλ sweep of conventional training: ``table`` one row per ηλ, ``runs[k][s]``.

    Attributes
    ----------
    columns, table, params, random_guess, reused
        As in :class:`NetSweep`; ``table`` has one row per ηλ.
    runs : list of list of ConventionalResult
        ``runs[k][j]``: the run at the ``k``-th ηλ with seed index ``j``.
    """

    def long_table(self) -> dict:
        """One row per (ηλ, seed): the setting and the final train loss and test error.

        Returns
        -------
        dict of str to numpy.ndarray
            Columns ``lr``, ``weight_decay``, ``lr_wd``, ``seed``, ``final_train_loss`` and
            ``final_test_error``, each of shape (K * S,), setting-major.
        """
        rows = [(r.lr, r.weight_decay, r.lr_wd, r.seed, r.train_loss[-1], r.test_error[-1]) for row in self.runs
                for r in row]
        names = ("lr", "weight_decay", "lr_wd", "seed", "final_train_loss", "final_test_error")
        return {nm: np.array([r[i] for r in rows]) for i, nm in enumerate(names)}


def lr_wd_grid(lr_wd_min=DEFAULTS["lr_wd_min"], lr_wd_max=DEFAULTS["lr_wd_max"], num=DEFAULTS["num"]) -> np.ndarray:
    """``num`` log-spaced values of ηλ from ``lr_wd_min`` to ``lr_wd_max`` < 1.

    Parameters
    ----------
    lr_wd_min, lr_wd_max : float, optional
        The smallest and largest ηλ, ``0 < lr_wd_min < lr_wd_max < 1`` (default 1e-4 and 0.3).
    num : int, optional
        The number of values, >= 2 (default 9).

    Returns
    -------
    numpy.ndarray, shape (num,)
        Increasing.

    Raises
    ------
    ValueError
        If the bounds or ``num`` are not valid.
    """
    lr_wd_min, lr_wd_max, num = as_elr_range(lr_wd_min, lr_wd_max, num)
    return _below_one(np.geomspace(lr_wd_min, lr_wd_max, num), "lr_wd_max")


def _below_one(lws, name: str) -> np.ndarray:
    if lws.max() >= 1:
        raise ValueError(f"{name} must be below 1 (the decay factor 1 - lr * wd must be positive), got {lws.max()}")
    return lws


def compute_conventional(lr_wds=None, weight_decay: float = DEFAULTS["weight_decay"], seeds: int = DEFAULTS["seeds"],
                         spec: BridgeSpec | None = None, runner: Runner | None = None, *, momentum=0.0,
                         bands=None) -> ConventionalNetSweep:
    """Train the network conventionally at every ηλ (η = ηλ/λ) for ``seeds`` seeds and classify.

    Parameters
    ----------
    lr_wds : array_like, shape (K,), optional
        Values of ηλ (positive, increasing, below 1); default :func:`lr_wd_grid` (9 from 1e-4 to 0.3).
    weight_decay : float, optional
        The weight decay λ > 0 (default 0.01).
    seeds : int, optional
        Seeds 0 .. seeds-1 (as in :func:`toymodel.bridge.compute_bridge`).
    spec : BridgeSpec, optional
        The network, data and training (default :meth:`BridgeSpec.make`).
    runner : Runner, optional
        Where the runs go and the resume cache (default: one process).

    Returns
    -------
    ConventionalNetSweep

    Raises
    ------
    ValueError
        If ``lr_wds``, ``weight_decay`` or ``seeds`` is not valid, the records would not fit in
        memory, or the setup fails :meth:`BridgeSpec.check_setup`.
    """
    lws = lr_wd_grid() if lr_wds is None else _below_one(as_elrs(lr_wds, "lr_wds"), "lr_wds")
    weight_decay = as_positive_float(weight_decay, "weight_decay")
    seeds = as_int(seeds, "seeds", minimum=1)
    momenta = [as_momentum(m) for m in np.atleast_1d(np.asarray(momentum, dtype=object))]
    spec = spec or BridgeSpec.make()
    runner = runner or Runner()
    spec.check_memory(lws.size * seeds)
    spec.check_setup()
    rows = [(m, lw) for m in momenta for lw in lws]
    predictions = [predict_landing(bands, lw, m) for m, lw in rows] if bands is not None else None
    task = runner.task("bridge.conventional", spec, [ConventionalRun(float(lw / weight_decay), weight_decay,
                                                                     momentum=m) for m, lw in rows], range(seeds))
    runs, reused = runner.run(task, "bridge.conventional")
    rgs = runner.random_guess(spec, task.seeds)
    columns, table = _summarise(runs, rgs, np.array([lw / weight_decay for _, lw in rows]), weight_decay, spec.epochs,
                                np.array([m for m, _ in rows]), predictions)
    params = dict(lr_wd_min=float(lws.min()), lr_wd_max=float(lws.max()), num=int(lws.size), weight_decay=weight_decay,
                  momentum=momenta, seeds=list(task.seeds), **spec.params(),
                  predictions_from=None if bands is None else str(bands) if isinstance(bands, (str, Path))
                  else "a computed sweep")
    return ConventionalNetSweep(columns, table, params, runs, rgs, reused)


#: a channel is dead when its ESS stays below this over the whole window (no gradient reaches it, so
#: weight decay only shrinks it): it holds its log(1 + ESS^2) at 0, below the law
DEAD_ESS = 1e-12


def _summarise(runs, rgs, lrs, weight_decay, epochs, momentum=0.0, predictions=None):
    w = regimes.training_window(epochs)
    K_, S_ = len(runs), len(runs[0])
    loss_w, cos_w, regime, subtype, frac = classify_runs(runs, rgs, w)
    rg = np.asarray(rgs)[None, :]
    lrs = np.asarray(lrs)
    lws = lrs * weight_decay
    n_steps = len(runs[0][0].total_elr_per_step)
    w_steps = slice(n_steps * w.start // epochs, n_steps)
    # not equilibrated: a window shorter than the norms' time scale (1 + mu)/(2 eta lambda) steps, or a total
    # ELR still drifting across the window at more than half the law's rate -2 log(1 - eta lambda) per step
    # (in equilibrium the norms are stationary: the drift is the boundary term of derivation 12)
    n_w = w_steps.stop - w_steps.start
    drift = seed_grid(runs, lambda r: abs(np.log(r.total_elr_per_step[-1] / r.total_elr_per_step[w_steps.start]))
                      / n_w).mean(axis=1)
    transient = (n_w < (1.0 + momentum) / (2.0 * lws)) | (drift > 0.5 * -2.0 * np.log1p(-lws))
    regime = np.where(transient, "transient", regime).astype(object)
    subtype = np.where(transient, "", subtype).astype(object)
    t = {"lr": lrs, "weight_decay": np.full(K_, weight_decay), "lr_wd": lws,
         "momentum": np.broadcast_to(np.asarray(momentum, dtype=float), (K_,)).copy(),
         "regime": regime, "subtype": subtype, "n_seeds": np.full(K_, S_)}
    for name in regimes.REGIMES:
        t[f"frac_{name}"] = frac[name]
    t["window_elr_drift"] = drift
    if predictions is not None:
        t["predicted_elr"] = np.array([p.elr for p in predictions])
        t["predicted_regime"] = np.array([p.regime for p in predictions], dtype=object)
        t["target_log1p_ess2"] = np.array([p.target for p in predictions])

    def dead(r):
        return np.all(r.channel_ess[w] < DEAD_ESS, axis=0)

    cols = {
        # harmonic mean over the window's steps of the total ELR (the sphere's ELR of the direction)
        "hm_elr": seed_grid(runs, lambda r: 1.0 / np.mean(1.0 / r.total_elr_per_step[w_steps])),
        "mean_log1p_ess2": seed_grid(runs, lambda r: float(np.mean(r.mean_log1p_ess2))),
        # the same over the channels that are alive (some gradient reaches them)
        "mean_log1p_ess2_live": seed_grid(runs, lambda r: float(np.mean(r.mean_log1p_ess2[~dead(r)]))
                                          if np.any(~dead(r)) else np.nan),
        "dead_channel_share": seed_grid(runs, lambda r: float(np.mean(dead(r)))),
        # derivation 12 on every channel: |measured - law - boundary| (exact for plain SGD) and without the
        # boundary term, absolute and relative to the law
        "law_error": seed_grid(runs, lambda r: float(np.max(np.abs(r.mean_log1p_ess2 - r.law_theory
                                                                   - r.law_boundary)))),
        "law_error_without_boundary": seed_grid(runs, lambda r: float(np.max(np.abs(r.mean_log1p_ess2
                                                                                    - r.law_theory)))),
        "rel_law_error_without_boundary": seed_grid(runs, lambda r: float(
            np.abs(np.mean(r.mean_log1p_ess2) / r.law_theory - 1))),
        "frac_converged": (loss_w <= regimes.NETWORK_CONVERGED_LOSS_FRACTION * rg[..., None]).mean(axis=-1),
        "final_train_loss": seed_grid(runs, lambda r: r.train_loss[-1]),
        "final_test_error": seed_grid(runs, lambda r: r.test_error[-1]),
        "mean_cosine": cos_w.mean(axis=-1),
    }
    t["theory_log1p_ess2"] = np.array([row[0].law_theory for row in runs])
    for name, arr in cols.items():
        t[name] = arr.mean(axis=1)
        t[f"std_{name}"] = arr.std(axis=1)
    t["random_guess_loss"] = np.full(K_, float(np.mean(rgs)))
    return tuple(t), t


def read_regime_bands(path):
    """The regime of every ELR of a fixed-ELR sweep's CSV (``bridge.csv``).

    Parameters
    ----------
    path : str or Path or None
        The CSV of :func:`toymodel.bridge.write_bridge_outputs`.

    Returns
    -------
    tuple of numpy.ndarray or None
        ``(elrs, regimes, subtypes)``, or None when ``path`` is None or not a file.
    """
    if path is None or not Path(path).is_file():
        return None
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return (np.array([float(r["elr"]) for r in rows]), np.array([r["regime"] for r in rows], dtype=object),
            np.array([r["subtype"] for r in rows], dtype=object))


def write_outputs(cs: ConventionalNetSweep, out, fmt: str = "png", plot: bool = True, wall_time_s=None, started=None,
                  bands=None):
    """Write ``bridge_conventional.csv``, ``.json`` and (unless ``plot=False``)
    ``bridge_conventional.<fmt>``, each atomically.

    The figure shows the effective ELR over the fixed-ELR regime bands of the ``bridge.csv`` at
    ``bands`` (if given).

    Parameters
    ----------
    cs : ConventionalNetSweep
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
    bands : str or path-like, optional
        A fixed-ELR sweep's ``bridge.csv`` (:func:`read_regime_bands`; no bands are drawn if it
        is not a file). Its path is recorded in the JSON.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    out = Path(out)
    names = ["bridge_conventional.csv", "bridge_conventional.json"]
    atomic_write_text(out / names[0], cs.csv_text())
    if plot:
        plots.plot_bridge_conventional(cs, read_regime_bands(bands)).save(out / f"bridge_conventional.{fmt}", fmt)
        names.append(f"bridge_conventional.{fmt}")
    rec = job_record(
        "bridge.conventional", cs.params, names, wall_time_s, started, cs.reused,
        random_guess_loss=cs.random_guess.tolist(), window_epochs=[cs.window.start, cs.window.stop],
        columns=list(cs.columns), total_elr_per_epoch=[[r.total_elr.tolist() for r in row] for row in cs.runs],
        law_per_channel_seed0=[{"lr_wd": row[0].lr_wd, "measured": row[0].mean_log1p_ess2.tolist(),
                                "boundary": row[0].law_boundary.tolist(), "theory": row[0].law_theory}
                               for row in cs.runs],
        predictions_from=str(bands) if bands is not None else None)
    atomic_write_text(out / names[1], json_text(rec, indent=None))
    return [out / n for n in names]


# ------------------------------------------------------------------------------ command line
def _add_arguments(ap) -> None:
    d = DEFAULTS
    ap.add_argument("--lr-wd-min", type=float, default=d["lr_wd_min"],
                    help="smallest eta*lambda (default: %(default)g)")
    ap.add_argument("--lr-wd-max", type=float, default=d["lr_wd_max"],
                    help="largest eta*lambda (default: %(default)g)")
    ap.add_argument("--num", type=int_arg, default=d["num"],
                    help="number of log-spaced eta*lambda (default: %(default)s)")
    ap.add_argument("--weight-decay", type=float, default=d["weight_decay"],
                    help="lambda; the learning rate is eta*lambda / lambda (default: %(default)g)")
    ap.add_argument("--momentum", default="0",
                    help="heavy-ball momentum mu of torch.optim.SGD, in [0, 1), or several comma-separated, each run "
                         "at every eta*lambda (default: 0)")
    ap.add_argument("--bands", metavar="BRIDGE_CSV", default=None,
                    help="a fixed-ELR bridge.csv: its regime bands under the effective ELR in the figure, and the "
                         "landing rule's predicted ELR and regime in every row")
    add_network_arguments(ap, out=DEFAULT_OUT)


def _prepare(args):
    lws = lr_wd_grid(args.lr_wd_min, args.lr_wd_max, args.num)
    weight_decay = as_positive_float(args.weight_decay, "weight_decay")
    seeds = as_int(args.seeds, "seeds", minimum=1)
    momenta = _momenta(args.momentum)
    spec = spec_from_args(args)
    spec.check_memory(lws.size * seeds * len(momenta))
    runner_from_args(args)
    import_torch()
    if args.bands is not None:  # the sweep must serve every row: checked before any training
        for m in momenta:
            for lw in lws:
                predict_landing(args.bands, lw, m)
    return args, lws, weight_decay, seeds, spec, momenta


def _momenta(text) -> list[float]:
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise ValueError(f"momentum must be comma-separated numbers in [0, 1), got {text!r}") from None
    return [as_momentum(v) for v in values]


def _compute(plan, out):
    args, lws, weight_decay, seeds, spec, momenta = plan
    return compute_conventional(lws, weight_decay, seeds, spec, runner_from_args(args, out), momentum=momenta,
                                bands=args.bands), args.bands


def _write(result, out, fmt, plot, wall, started):
    cs, bands = result
    return write_outputs(cs, out, fmt, plot, wall, started, bands=bands)


def _summary(result, wall: float) -> str:
    p = result[0].params
    return (f"bridge.conventional: {plural(p['num'], 'value')} of eta*lambda x {plural(len(p['seeds']), 'seed')} in "
            f"{wall:.1f} s")


DESCRIPTION = ("Train the bridge's networks conventionally (SGD with learning rate and weight decay, no "
               "projection) over a sweep of eta*lambda; test the per-channel log-ESS law; write "
               "bridge_conventional.csv, .json and a figure.")
#: ``python -m toymodel.bridge.conventional``; ``main(argv)`` runs it and returns the exit code
JOB = Job(prog="python -m toymodel.bridge.conventional", description=DESCRIPTION, add_arguments=_add_arguments,
          prepare=_prepare, compute=_compute, write=_write, summary=_summary,
          setup=lambda: plots.use_file_backend())
main = JOB.run


if __name__ == "__main__":  # not when a worker process re-imports this module
    raise SystemExit(main())


# ------------------------------------------------------------------------------ periodic behaviour
QUIET_FRACTION_OF_LAW = 0.25
"""A network's step is quiet when its epoch-smoothed ESS^2 is under this fraction of d^-2 - 1."""


def compute_periodic(lr_wds=(1e-3, 3e-3, 1e-2), weight_decay: float = 0.01, epochs: int = 300, seed: int = 0,
                     spec: BridgeSpec | None = None, threads=None) -> dict:
    """Long conventional runs (plain SGD with weight decay) with the loss of every step, and their
    quiet phases and bursts (:func:`toymodel.dynamics.elr_bursts`): the periodic behaviour of
    networks with BatchNorm and weight decay (Lobacheva et al. 2021), against derivation 14.

    Parameters
    ----------
    lr_wds : sequence of float
        Values of ηλ, each one run (trained together as one ensemble).
    weight_decay : float, optional
    epochs : int, optional
        Long enough for several periods (about 1/(ηλ) steps each).
    seed : int, optional
    spec : BridgeSpec, optional
        The network and data (default: the bridge's MLP on the digits); its ``epochs`` is replaced.
    threads : int, optional

    Returns
    -------
    dict
        ``lr_wds``, ``weight_decay``, ``steps_per_epoch``, and per run ``loss`` (per step, the
        mini-batch loss), ``total_elr`` (per step), ``phases`` ([(start, end, growth per step)]),
        ``periods`` (steps between consecutive bursts), and the run's ``result``.
    """
    from .. import nets
    from ..dynamics import elr_bursts
    from ._runner import build_model, spec_tensors, torch_settings

    lws = as_elrs(lr_wds, "lr_wds")
    spec = dataclasses.replace(spec or BridgeSpec.make(), epochs=as_int(epochs, "epochs", minimum=2))
    spec.check_setup()
    losses = []
    with torch_settings(threads):
        models = [build_model(spec, seed) for _ in lws]
        tensors = spec_tensors(spec, seed)
        res = nets.train_ensemble_conventional(models, tensors, list(lws / weight_decay), [weight_decay] * lws.size,
                                               spec.epochs, spec.batch_size, seeds=[seed] * lws.size,
                                               on_step=lambda t, loss: losses.append(loss))
    loss = np.array(losses).T
    steps_per_epoch = len(tensors[1]) // spec.batch_size
    runs = []
    for k, r in enumerate(res):
        # mini-batch noise: ESS^2 averaged over one epoch's steps before the phases are read, and a step is
        # quiet when its ESS^2 is under a quarter of the law's d^-2 - 1 (log ELR grows at >= ~3/4 of the
        # law's rate); the phase from the initialisation counts too
        phases = elr_bursts(r.total_elr_per_step, r.lr, weight_decay, smooth=steps_per_epoch,
                            relative=QUIET_FRACTION_OF_LAW, include_start=True)
        ends = np.array([b for _, b, _ in phases])
        runs.append({"loss": loss[k], "total_elr": r.total_elr_per_step, "phases": phases,
                     "periods": np.diff(ends), "result": r})
    return {"lr_wds": lws, "weight_decay": weight_decay, "epochs": spec.epochs, "steps_per_epoch": steps_per_epoch,
            "runs": runs, "params": spec.params()}


def write_periodic_outputs(pr: dict, out, fmt: str = "png") -> list:
    """``bridge_periodic.json`` (per run: the quiet phases, periods and their product with ηλ) and
    ``bridge_periodic.<fmt>``."""
    out = Path(out)
    rec = job_record("bridge.periodic", dict(pr["params"], weight_decay=pr["weight_decay"]),
                     ["bridge_periodic.json", f"bridge_periodic.{fmt}"],
                     runs=[{"lr_wd": float(lw), "quiet_phases": [list(p) for p in r["phases"]],
                            "periods": r["periods"].tolist(),
                            "median_period_x_lr_wd": float(np.median(r["periods"]) * lw) if r["periods"].size else None,
                            "median_growth_over_law": float(np.median([g for *_, g in r["phases"]])
                                                            / (-2 * np.log1p(-lw))) if r["phases"] else None,
                            "longest_later_quiet_phase": max([b - a for a, b, _ in r["phases"] if a > 0],
                                                             default=0)}
                           for lw, r in zip(pr["lr_wds"], pr["runs"], strict=True)])
    atomic_write_text(out / "bridge_periodic.json", json_text(rec, indent=None))
    plots.plot_bridge_periodic(pr).save(out / f"bridge_periodic.{fmt}", fmt)
    return [out / "bridge_periodic.json", out / f"bridge_periodic.{fmt}"]
