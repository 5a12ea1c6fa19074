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

import datetime as _dt
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import plots
from .._cli import ArgumentParser, int_arg, output_dir, plural, run_cli
from .._records import CACHE_DIRNAME, atomic_write_text, content_key, csv_text, json_text, versions
from .._validate import as_elr_range, as_int, as_positive_float
from ..netrecords import TrainResult
from ..sweep import SweepStats, check_dask_choice, execute
from . import DEFAULTS as NET_DEFAULTS
from . import (
    BridgeSpec,
    add_network_arguments,
    check_setup,
    compute_bridge,
    default_workers,
    import_torch,
    run_network,
    validate_network,
)
from .conventional import compute_conventional

__all__ = ["DEFAULTS", "compute_finetune", "write_outputs", "main"]

DEFAULT_OUT = "runs/bridge_finetune"
DEFAULTS = dict(NET_DEFAULTS, elr_min=1e-4, elr_max=1.0, num=9, finetune_elr=3e-4, finetune_epochs=20,
                conventional_lr_wd=0.01, weight_decay=0.01)


@dataclass(frozen=True)
class FinetuneUnit:
    """Fine-tune (or, with ``start`` None, train from scratch) with seed ``seed``; ``k`` indexes the
    pre-training ELR (-1: scratch, -2: the conventional endpoint)."""

    index: int
    k: int
    seed: int
    start: object = None  # flat weights (NumPy) or None

    @property
    def name(self) -> str:
        return f"finetune_{self.k + 2:04d}_{self.seed:04d}"


@dataclass(frozen=True)
class FinetuneTask:
    """Fine-tuning runs at ``elr`` for ``epochs`` (and scratch runs for ``scratch_epochs``), with
    sharpness measured at the end; the key covers what the starting points came from."""

    spec: BridgeSpec
    elr: float
    epochs: int
    scratch_epochs: int
    sources: str  # content key of the pre-training runs
    threads: int = 1
    record_type = TrainResult

    def run_unit(self, unit: FinetuneUnit, threads=None) -> TrainResult:
        if unit.start is None:
            return run_network(self.spec, self.elr, unit.seed, self.threads, epochs=self.scratch_epochs)
        return run_network(self.spec, self.elr, unit.seed, self.threads, start=unit.start, epochs=self.epochs)

    def key(self) -> str:
        return content_key({"job": "bridge.finetune", "elr": repr(float(self.elr)), "epochs": self.epochs,
                            "scratch_epochs": self.scratch_epochs, "sources": self.sources, **self.spec.payload()})


def compute_finetune(elr_min=DEFAULTS["elr_min"], elr_max=DEFAULTS["elr_max"], num=DEFAULTS["num"],
                     seeds=DEFAULTS["seeds"], epochs=DEFAULTS["epochs"], finetune_elr=DEFAULTS["finetune_elr"],
                     finetune_epochs=DEFAULTS["finetune_epochs"], conventional_lr_wd=DEFAULTS["conventional_lr_wd"],
                     weight_decay=DEFAULTS["weight_decay"], batch_size=DEFAULTS["batch_size"],
                     hidden=DEFAULTS["hidden"], out_norm=DEFAULTS["out_norm"], *, model=DEFAULTS["model"],
                     width=DEFAULTS["width"], dtype=DEFAULTS["dtype"], device=DEFAULTS["device"], data=None,
                     threads=None, workers=1, scheduler=None, dask_local=None, progress: bool = False,
                     cache_dir=None) -> dict:
    """Pre-train, fine-tune and compare (see the module's notes). Returns a dict with the table
    (``columns``, ``table``), the pre-training sweep, the conventional sweep, every fine-tuned run
    and the parameters."""
    elr_min, elr_max, num = as_elr_range(elr_min, elr_max, num)
    finetune_elr = as_positive_float(finetune_elr, "finetune_elr")
    finetune_epochs = as_int(finetune_epochs, "finetune_epochs", minimum=2)
    _, _, _, seeds, spec, threads, workers = validate_network(
        1.0, 2.0, 2, seeds, epochs, batch_size, hidden, out_norm, model, width, dtype, device, data, threads, workers,
        sharpness=True)
    check_dask_choice(scheduler, dask_local)
    check_setup(spec)
    where = dict(workers=workers, scheduler=scheduler, dask_local=dask_local, progress=progress, threads=threads)
    net = dict(model=model, width=width, dtype=dtype, device=device, data=data)
    pre = compute_bridge(elr_min, elr_max, num, seeds, epochs, batch_size, hidden, out_norm, sharpness=True,
                         cache_dir=cache_dir, **net, **where)
    conv = compute_conventional(seeds=seeds, epochs=epochs, batch_size=batch_size, hidden=hidden, out_norm=out_norm,
                                weight_decay=weight_decay, lr_wds=[conventional_lr_wd], cache_dir=cache_dir,
                                **net, **where)
    units = [FinetuneUnit(k * seeds + s, k, s, pre.runs[k][s].final_weights)
             for k in range(num) for s in range(seeds)]
    units += [FinetuneUnit(num * seeds + s, -2, s, conv.runs[0][s].final_weights) for s in range(seeds)]
    units += [FinetuneUnit((num + 1) * seeds + s, -1, s, None) for s in range(seeds)]
    sources = content_key({"pre": [repr(float(e)) for e in pre.elrs], "seeds": seeds, "epochs": spec.epochs,
                           "conv": repr(float(conventional_lr_wd)), "wd": repr(float(weight_decay))})
    task = FinetuneTask(spec, finetune_elr, finetune_epochs, spec.epochs + finetune_epochs, sources, threads or 1)
    stats = SweepStats()
    parts = execute([task], [(0, u) for u in units], desc="bridge.finetune", unit="run", cache_dir=cache_dir,
                    stats=stats, **{k: v for k, v in where.items() if k != "threads"})[0]
    done = {(u.k, u.seed): r for u, r in parts}
    rgs = pre.random_guess
    rows = []
    for k in range(num):
        for s in range(seeds):
            ft, scratch, cv = done[(k, s)], done[(-1, s)], done[(-2, s)]
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
                  scratch_epochs=spec.epochs + finetune_epochs, conventional_lr_wd=conventional_lr_wd,
                  weight_decay=weight_decay)
    return {"columns": names, "table": table, "pretrain": pre, "conventional": conv, "runs": done,
            "params": params, "reused": stats.reused}


def summary(res) -> dict:
    """Per pre-training ELR: mean and std over seeds of the fine-tuned test error (and the baselines)."""
    t = res["table"]
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


def write_outputs(res, out, fmt: str = "png", plot: bool = True, wall_time_s=None, started=None):
    """``bridge_finetune.csv``, ``.json`` and (unless ``plot=False``) ``bridge_finetune.<fmt>``."""
    out = Path(out)
    names = ["bridge_finetune.csv", "bridge_finetune.json"]
    atomic_write_text(out / names[0], csv_text(res["columns"], res["table"]))
    if plot:
        pre = res["pretrain"]
        fig, _ = plots.plot_bridge_finetune(res["table"], pre.table, res["params"])
        plots.save_figure(fig, out / f"bridge_finetune.{fmt}", fmt)
        names.append(f"bridge_finetune.{fmt}")
    rec = {"job": "bridge.finetune", "parameters": res["params"], "columns": list(res["columns"]),
           "summary": summary(res), "pretrain_regimes": list(res["pretrain"].table["regime"]),
           "outputs": names, "versions": dict(versions(), torch=import_torch().__version__),
           "timing": {"started": started, "wall_time_s": wall_time_s, "runs_reused": res["reused"]}}
    atomic_write_text(out / names[1], json_text(rec, indent=None))
    return [out / n for n in names]


def _main(argv=None) -> int:
    d = DEFAULTS
    ap = ArgumentParser(prog="python -m toymodel.bridge.finetune",
                        description="Pre-train the bridge's network on the sphere at fixed ELRs (every regime), "
                                    "fine-tune each end point at a small ELR, and compare with training from scratch "
                                    "and with fine-tuned conventional training.")
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
    args = ap.parse_args(argv)
    as_elr_range(args.elr_min, args.elr_max, args.num)
    as_positive_float(args.finetune_elr, "finetune_elr")
    as_int(args.finetune_epochs, "finetune_epochs", minimum=2)
    validate_network(1.0, 2.0, 2, args.seeds, args.epochs, args.batch_size, args.hidden, args.out_norm, args.model,
                     args.width, args.dtype, args.device, args.data, args.threads, args.workers)
    check_dask_choice(args.scheduler, args.dask_local)
    import_torch()
    with output_dir(args.out, "out") as out:
        started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        t0 = time.perf_counter()
        res = compute_finetune(args.elr_min, args.elr_max, args.num, args.seeds, args.epochs, args.finetune_elr,
                               args.finetune_epochs, args.conventional_lr_wd, args.weight_decay, args.batch_size,
                               args.hidden, args.out_norm, model=args.model, width=args.width, dtype=args.dtype,
                               device=args.device, data=args.data, threads=args.threads,
                               workers=args.workers if args.workers is not None else default_workers(),
                               scheduler=args.scheduler, dask_local=args.dask_local, progress=not args.quiet,
                               cache_dir=(out / CACHE_DIRNAME) if args.resume else None)
        wall = time.perf_counter() - t0
        paths = write_outputs(res, out, args.format, plot=not args.no_plot, wall_time_s=wall, started=started)
    if not args.quiet:
        print(f"bridge.finetune: {plural(args.num, 'pre-training ELR')} x {plural(args.seeds, 'seed')} in "
              f"{wall:.1f} s; wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


def main(argv=None) -> int:
    plots.use_file_backend()  # a job writes files: no display
    return run_cli(_main, argv, prog="python -m toymodel.bridge.finetune")


if __name__ == "__main__":  # not when a worker process re-imports this module
    raise SystemExit(main())
