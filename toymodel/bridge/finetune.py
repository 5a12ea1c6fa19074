"""Better optima by fine-tuning? Pre-train on the sphere at a fixed ELR (every regime), then
fine-tune at a small ELR inside the convergence regime, and compare.

``python -m toymodel.bridge.finetune`` pre-trains the bridge's network at ``--num`` ELRs (the
fixed-ELR sweep of :mod:`toymodel.bridge`), fine-tunes the end of every run at ``--finetune-elr``
for ``--finetune-epochs`` and measures train loss, test error and sharpness after fine-tuning.
Baselines, per seed: training from scratch at the fine-tuning ELR for the same total number of
epochs, and the end of conventional training (SGD with weight decay, :mod:`toymodel.bridge.conventional`)
fine-tuned the same way. It writes ``bridge_finetune.csv`` (one row per pre-training ELR and seed),
``bridge_finetune.json`` and ``bridge_finetune.png``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import plots
from .._cli import Job, int_arg, plural
from .._records import atomic_write_text, content_key, csv_text, json_text
from .._validate import as_int, as_positive_float
from ._runner import (
    NET_DEFAULTS,
    BridgeSpec,
    NetSweep,
    Runner,
    SphereRun,
    add_network_arguments,
    import_torch,
    job_record,
    runner_from_args,
    spec_from_args,
)
from .conventional import ConventionalNetSweep, compute_conventional
from .fixed_elr import BridgeSweep, compute_bridge, elr_grid

__all__ = ["DEFAULTS", "FinetuneResult", "compute_finetune", "summary", "paired_summary", "write_outputs", "main"]

DEFAULT_OUT = "runs/bridge_finetune"
DEFAULTS = dict(NET_DEFAULTS, elr_min=1e-4, elr_max=1.0, num=9, finetune_elr=3e-4, finetune_epochs=20,
                conventional_lr_wd=0.01, weight_decay=0.01)

#: the labels of the fine-tuning runs' settings: from a pre-training end point, from the end of
#: conventional training, and from scratch
FROM_PRETRAIN, FROM_CONVENTIONAL, FROM_SCRATCH = "pretrain", "conventional", "scratch"


@dataclass(frozen=True, repr=False)
class FinetuneResult(NetSweep):
    """Fine-tuning from every pre-training ELR: ``table`` one row per (pre-training ELR, seed);
    ``runs[k][j]`` the fine-tuning runs (settings: one per pre-training ELR, then the conventional
    end point, then from scratch); ``pretrain`` and ``conventional`` the sweeps they started from.

    Attributes
    ----------
    columns, table, params, random_guess, reused
        As in :class:`NetSweep`; ``table`` has one row per (pre-training ELR, seed), and
        ``random_guess`` is that of the pre-training.
    runs : list of list of TrainResult
        ``runs[k][j]``: the fine-tuning run of setting ``k`` with seed index ``j``.
    pretrain : BridgeSweep
        The pre-training sweep.
    conventional : ConventionalNetSweep
        The conventional baseline's sweep (one ηλ).
    """

    pretrain: BridgeSweep | None = field(default=None, repr=False)
    conventional: ConventionalNetSweep | None = field(default=None, repr=False)

    def long_table(self) -> dict:
        """The table itself (already one row per pre-training ELR and seed).

        Returns
        -------
        dict of str to numpy.ndarray
        """
        return dict(self.table)


def compute_finetune(pretrain_elrs=None, seeds: int = DEFAULTS["seeds"], spec: BridgeSpec | None = None,
                     runner: Runner | None = None, *, finetune_elr: float = DEFAULTS["finetune_elr"],
                     finetune_epochs: int = DEFAULTS["finetune_epochs"],
                     conventional_lr_wd: float = DEFAULTS["conventional_lr_wd"],
                     weight_decay: float = DEFAULTS["weight_decay"]) -> FinetuneResult:
    """Pre-train, fine-tune and compare (see the module's notes).

    Parameters
    ----------
    pretrain_elrs : array_like, shape (K,), optional
        The pre-training ELRs; default 9 from 1e-4 to 1.
    seeds : int, optional
        Seeds 0 .. seeds-1 (default 3), as in :func:`toymodel.bridge.compute_bridge`.
    spec : BridgeSpec, optional
        The network and the pre-training (its ``epochs``); the sharpness is measured at the end
        of every fine-tuning run whatever ``spec.sharpness`` says, and not in pre-training.
    runner : Runner, optional
        Where the runs go and the resume cache (default: one process).
    finetune_elr : float, optional
        The ELR of fine-tuning (inside the convergence regime; default 3e-4).
    finetune_epochs : int, optional
        Epochs of fine-tuning, >= 2 (default 20); the runs from scratch take the pre-training's
        epochs plus these.
    conventional_lr_wd, weight_decay : float, optional
        The values ηλ (< 1) and λ of the conventional baseline (default 0.01 and 0.01).

    Returns
    -------
    FinetuneResult

    Raises
    ------
    ValueError
        If a setting is not valid, the records would not fit in memory, or the setup fails
        :meth:`BridgeSpec.check_setup`.
    """
    pre_elrs = elr_grid(DEFAULTS["elr_min"], DEFAULTS["elr_max"], DEFAULTS["num"]) if pretrain_elrs is None \
        else pretrain_elrs
    finetune_elr = as_positive_float(finetune_elr, "finetune_elr")
    finetune_epochs = as_int(finetune_epochs, "finetune_epochs", minimum=2)
    seeds = as_int(seeds, "seeds", minimum=1)
    spec = spec or BridgeSpec.make()
    runner = runner or Runner()
    base = dataclasses.replace(spec, sharpness=False)
    pre = compute_bridge(pre_elrs, seeds, base, runner)
    conv = compute_conventional([conventional_lr_wd], weight_decay, seeds, base, runner)
    num = len(pre.elrs)
    scratch_epochs = spec.epochs + finetune_epochs
    settings = tuple([SphereRun(finetune_elr, finetune_epochs, FROM_PRETRAIN)] * num
                     + [SphereRun(finetune_elr, finetune_epochs, FROM_CONVENTIONAL),
                        SphereRun(finetune_elr, scratch_epochs, FROM_SCRATCH)])
    starts = {(k, s): pre.runs[k][s].final_weights for k in range(num) for s in range(seeds)}
    starts.update({(num, s): conv.runs[0][s].final_weights for s in range(seeds)})
    sources = content_key({"pre": [repr(float(e)) for e in pre.elrs], "seeds": seeds, "epochs": spec.epochs,
                           "conv": repr(float(conventional_lr_wd)), "wd": repr(float(weight_decay))})
    task = runner.task("bridge.finetune", dataclasses.replace(spec, sharpness=True), settings, range(seeds), starts,
                       sources)
    runs, reused = runner.run(task, "bridge.finetune")
    rgs = pre.random_guess
    rows = []
    for k in range(num):
        for s in range(seeds):
            ft, cv, scratch = runs[k][s], runs[num][s], runs[num + 1][s]
            rows.append((pre.elrs[k], pre.table["regime"][k], s, pre.runs[k][s].test_error[-1], ft.train_loss[-1],
                         ft.test_error[-1], ft.sharpness_top[0], scratch.test_error[-1], scratch.train_loss[-1],
                         cv.test_error[-1], cv.train_loss[-1], ft.classify(float(rgs[s]))[0]))
    names = ("pretrain_elr", "pretrain_regime", "seed", "pretrain_test_error", "finetuned_train_loss",
             "finetuned_test_error", "finetuned_sharpness", "scratch_test_error", "scratch_train_loss",
             "conventional_test_error", "conventional_train_loss", "finetuned_regime")
    table = {nm: np.array([r[i] for r in rows], dtype=object if nm.endswith("regime") else float)
             for i, nm in enumerate(names)}
    table["seed"] = table["seed"].astype(int)
    params = dict(pre.params, finetune_elr=finetune_elr, finetune_epochs=finetune_epochs,
                  scratch_epochs=scratch_epochs, conventional_lr_wd=conventional_lr_wd, weight_decay=weight_decay)
    return FinetuneResult(names, table, params, runs, rgs, reused, pre, conv)


def summary(res: FinetuneResult) -> dict:
    """Per pre-training ELR: mean and std over seeds of the fine-tuned test error (and the baselines).

    Parameters
    ----------
    res : FinetuneResult

    Returns
    -------
    dict
        JSON-able: ``per_pretrain_elr``, a list of one dict per pre-training ELR (its regime, the
        means of the fine-tuned test error, train loss and sharpness and of the pre-training test
        error, the stds of the fine-tuned test error and sharpness); ``scratch_test_error`` and
        ``conventional_test_error``, ``[mean, std]`` over seeds.
    """
    t = res.table
    out = []
    for e in np.unique(t["pretrain_elr"]):
        m = t["pretrain_elr"] == e
        out.append({"pretrain_elr": float(e), "pretrain_regime": str(t["pretrain_regime"][m][0]),
                    **{f"{c}_mean": float(np.mean(t[c][m])) for c in ("finetuned_test_error", "finetuned_train_loss",
                                                                        "finetuned_sharpness", "pretrain_test_error")},
                    **{f"{c}_std": float(np.std(t[c][m])) for c in ("finetuned_test_error", "finetuned_sharpness")}})
    return {"per_pretrain_elr": out,
            "scratch_test_error": [float(np.mean(t["scratch_test_error"])), float(np.std(t["scratch_test_error"]))],
            "conventional_test_error": [float(np.mean(t["conventional_test_error"])),
                                        float(np.std(t["conventional_test_error"]))]}


#: the columns of ``bridge_finetune_summary.csv``
SUMMARY_COLUMNS = ("pretrain_elr", "pretrain_regime", "n_seeds", "mean_test_error", "mean_diff_vs_scratch", "ci95_low",
                   "ci95_high", "p_value_vs_scratch", "mean_diff_vs_conventional", "ci95_low_vs_conventional",
                   "ci95_high_vs_conventional", "p_value_vs_conventional")


def _paired(a, b):
    """Mean of a - b, the 95% t interval of the paired differences and the two-sided p value
    (``scipy.stats.ttest_rel``); NaN with fewer than two pairs."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size < 2:
        return float(np.mean(a - b)), np.nan, np.nan, np.nan
    res = stats.ttest_rel(a, b)
    ci = res.confidence_interval(0.95)
    return float(np.mean(a - b)), float(ci.low), float(ci.high), float(res.pvalue)


def paired_summary(table) -> dict:
    """Per pre-training ELR, the fine-tuned test error against training from scratch and against
    fine-tuned conventional training, paired by seed (the same seed fixes data split, initial
    network and batch order of all three).

    Parameters
    ----------
    table : dict
        A :class:`FinetuneResult`'s table (one row per pre-training ELR and seed).

    Returns
    -------
    dict of numpy.ndarray
        The columns :data:`SUMMARY_COLUMNS`: ``mean_diff_vs_scratch`` is the mean over seeds of
        fine-tuned minus scratch test error, ``ci95_low``/``ci95_high`` the 95% t interval of those
        paired differences and ``p_value_vs_scratch`` the paired t test's two-sided p value
        (``scipy.stats.ttest_rel``); the same against conventional training.
    """
    pe = np.asarray(table["pretrain_elr"], dtype=float)
    out = {c: [] for c in SUMMARY_COLUMNS}
    for e in np.unique(pe):
        m = pe == e
        ft = np.asarray(table["finetuned_test_error"], dtype=float)[m]
        vs_s = _paired(ft, np.asarray(table["scratch_test_error"], dtype=float)[m])
        vs_c = _paired(ft, np.asarray(table["conventional_test_error"], dtype=float)[m])
        for c, v in zip(SUMMARY_COLUMNS, (float(e), str(np.asarray(table["pretrain_regime"])[m][0]), int(m.sum()),
                                          float(ft.mean()), *vs_s, *vs_c), strict=True):
            out[c].append(v)
    return {c: np.asarray(v, dtype=object if c == "pretrain_regime" else None) for c, v in out.items()}


def write_outputs(res: FinetuneResult, out, fmt: str = "png", plot: bool = True, wall_time_s=None, started=None):
    """Write ``bridge_finetune.csv``, ``.json``, ``bridge_finetune_summary.csv`` (the paired
    comparisons of :func:`paired_summary`) and (unless ``plot=False``) ``bridge_finetune.<fmt>``, each
    atomically.

    Parameters
    ----------
    res : FinetuneResult
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

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    out = Path(out)
    names = ["bridge_finetune.csv", "bridge_finetune.json", "bridge_finetune_summary.csv"]
    atomic_write_text(out / names[0], res.csv_text())
    atomic_write_text(out / names[2], csv_text(SUMMARY_COLUMNS, paired_summary(res.table)))
    if plot:
        plots.plot_bridge_finetune(res.table, res.pretrain.table, res.params).save(out / f"bridge_finetune.{fmt}", fmt)
        names.append(f"bridge_finetune.{fmt}")
    rec = job_record("bridge.finetune", res.params, names, wall_time_s, started, res.reused,
                     columns=list(res.columns), summary=summary(res),
                     pretrain_regimes=list(res.pretrain.table["regime"]))
    atomic_write_text(out / names[1], json_text(rec, indent=None))
    return [out / n for n in names]


# ------------------------------------------------------------------------------ command line
def _add_arguments(ap) -> None:
    d = DEFAULTS
    ap.add_argument("--elr-min", type=float, default=d["elr_min"],
                    help="smallest pre-training ELR (default: %(default)g)")
    ap.add_argument("--elr-max", type=float, default=d["elr_max"],
                    help="largest pre-training ELR (default: %(default)g)")
    ap.add_argument("--num", type=int_arg, default=d["num"],
                    help="number of pre-training ELRs (default: %(default)s)")
    ap.add_argument("--finetune-elr", type=float, default=d["finetune_elr"],
                    help="ELR of fine-tuning, inside the convergence regime (default: %(default)g)")
    ap.add_argument("--finetune-epochs", type=int_arg, default=d["finetune_epochs"],
                    help="epochs of fine-tuning (default: %(default)s)")
    ap.add_argument("--conventional-lr-wd", type=float, default=d["conventional_lr_wd"],
                    help="eta*lambda of the conventional baseline (default: %(default)g)")
    ap.add_argument("--weight-decay", type=float, default=d["weight_decay"],
                    help="lambda of the conventional baseline (default: %(default)g)")
    add_network_arguments(ap, out=DEFAULT_OUT)


def _prepare(args):
    elrs = elr_grid(args.elr_min, args.elr_max, args.num)
    seeds = as_int(args.seeds, "seeds", minimum=1)
    kw = dict(finetune_elr=as_positive_float(args.finetune_elr, "finetune_elr"),
              finetune_epochs=as_int(args.finetune_epochs, "finetune_epochs", minimum=2),
              conventional_lr_wd=as_positive_float(args.conventional_lr_wd, "conventional_lr_wd"),
              weight_decay=as_positive_float(args.weight_decay, "weight_decay"))
    if kw["conventional_lr_wd"] >= 1:
        raise ValueError(f"conventional_lr_wd must be below 1, got {kw['conventional_lr_wd']}")
    spec = spec_from_args(args)
    # pre-training, conventional and fine-tuning runs (the scratch runs are the longest)
    spec.check_memory(seeds * (2 * elrs.size + 3), spec.epochs + kw["finetune_epochs"])
    runner_from_args(args)
    import_torch()
    return args, elrs, seeds, spec, kw


def _compute(plan, out):
    args, elrs, seeds, spec, kw = plan
    return compute_finetune(elrs, seeds, spec, runner_from_args(args, out), **kw)


def _summary(res: FinetuneResult, wall: float) -> str:
    p = res.params
    return (f"bridge.finetune: {plural(p['num'], 'pre-training ELR')} x {plural(len(p['seeds']), 'seed')} in "
            f"{wall:.1f} s")


DESCRIPTION = ("Pre-train the bridge's network on the sphere at fixed ELRs (every regime), fine-tune each end "
               "point at a small ELR, and compare with training from scratch and with fine-tuned conventional "
               "training.")
#: ``python -m toymodel.bridge.finetune``; ``main(argv)`` runs it and returns the exit code
JOB = Job(prog="python -m toymodel.bridge.finetune", description=DESCRIPTION, add_arguments=_add_arguments,
          prepare=_prepare, compute=_compute, write=write_outputs, summary=_summary,
          setup=lambda: plots.use_file_backend())
main = JOB.run


if __name__ == "__main__":  # not when a worker process re-imports this module
    raise SystemExit(main())
