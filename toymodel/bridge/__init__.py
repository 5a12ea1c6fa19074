"""Bridge to real networks: scale-invariant PyTorch models on real data, trained on the sphere.

``python -m toymodel.bridge`` trains a fully scale-invariant network (``--model mlp``: the MLP
64 -> 64 -> 64 -> 10 of :class:`toymodel.nets.MLPSI`; ``--model convnet``: the paper's ConvNet
family, :class:`toymodel.nets.ConvNetSI`) with :class:`toymodel.nets.SphereSGD` at a sweep of
fixed total ELRs, records every run with :class:`toymodel.nets.RegimeMonitor`, classifies every
ELR with the criteria of :mod:`toymodel.regimes`, and writes ``bridge.csv`` and ``bridge.json``
(and the figures). The data are scikit-learn's digits (bundled: nothing is downloaded) or any
``--data FILE.npz``. Each run is one unit of :func:`toymodel.sweep.execute`: local worker
processes, a Dask cluster, and ``--resume`` all give identical results.

The network code needs the optional extra ``toymodel[torch]``; this module imports torch only
inside the functions that train, so the rest of the package (and reading results) never needs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import functools
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import _streams, plots, regimes
from .._cli import ArgumentParser, int_arg, note, output_dir, plural, run_cli
from .._records import (
    CACHE_DIRNAME,
    ResultType,
    atomic_write_text,
    content_key,
    csv_text,
    json_text,
    versions,
)
from .._validate import MAX_BATCH_SIZE, MAX_STEPS, as_elr_range, as_format, as_int, as_positive_float, check_memory
from ..netrecords import TrainResult
from ..sweep import SweepStats, check_dask_choice, execute

__all__ = ["TORCH_HINT", "DEFAULTS", "MODELS", "DTYPES", "TrainResult", "BridgeSweep", "BridgeTask", "BridgeRun",
           "measure_sharpness", "compute_bridge", "bridge_csv_text", "bridge_json_record", "write_bridge_outputs",
           "default_workers", "add_network_arguments", "torch_settings", "validate_network", "check_setup",
           "tensors_for", "main"]

TORCH_HINT = "the networks need the optional extra: pip install 'toymodel[torch]'"

#: where the command line writes unless told otherwise (git-ignored)
DEFAULT_OUT = "runs/bridge"

MODELS = ("mlp", "convnet")
DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda")

DEFAULTS = dict(elr_min=1e-4, elr_max=10.0, num=21, seeds=3, epochs=60, batch_size=32, hidden=(64, 64),
                out_norm=10.0, model="mlp", width=8, dtype="float32", device="cpu", data=None)

#: the total norm of the scale-invariant parameters (the sphere's radius) in every run
RADIUS = 1.0


def import_torch():
    """``torch``, or a ValueError naming the optional extra."""
    try:
        import torch
    except ImportError:
        raise ValueError(TORCH_HINT) from None
    return torch


def default_workers() -> int:
    """Worker processes for a local sweep: the cores this process may use (each run is too small
    to use more than one thread well)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


# ------------------------------------------------------------------------------ sweep
#: the classification window and its minimum length (defined with the criteria in regimes)
WINDOW_FRACTION = regimes.TRAINING_WINDOW_FRACTION
MIN_WINDOW_EPOCHS = regimes.MIN_WINDOW_EPOCHS


@dataclass(frozen=True, repr=False)
class BridgeSweep(ResultType):
    """A classified ELR sweep of the network: one row per ELR in ``table``, per-run records in
    ``runs`` (index [elr][seed]), and the parameters."""

    columns: tuple
    table: dict
    params: dict
    runs: list = field(repr=False)
    random_guess: np.ndarray = field(repr=False)
    reused: int = 0

    @property
    def window(self) -> slice:
        """The epochs over which runs are summarised and classified (the last WINDOW_FRACTION)."""
        return regimes.training_window(self.params["epochs"])

    @property
    def window_too_short(self) -> bool:
        """Whether the window has fewer than MIN_WINDOW_EPOCHS epochs (the regimes are then unreliable)."""
        w = self.window
        return (w.stop - w.start) < MIN_WINDOW_EPOCHS

    @property
    def elrs(self) -> np.ndarray:
        return np.asarray(self.table["elr"])

    @property
    def seeds(self) -> np.ndarray:
        return np.asarray(self.params["seeds"])

    def long_table(self) -> dict:
        """One row per (ELR, seed): final train loss, test error and window statistics."""
        rows = [(r.elr, r.seed, r.train_loss[-1], r.test_error[-1], r.train_loss[self.window].mean(),
                 r.step_cosine[self.window].mean()) for row in self.runs for r in row]
        names = ("elr", "seed", "final_train_loss", "final_test_error", "mean_loss", "mean_cosine")
        return {nm: np.array([r[i] for r in rows]) for i, nm in enumerate(names)}


# ------------------------------------------------------------------ one run (torch)
@functools.lru_cache(maxsize=8)
def _data(seed: int, data):
    from ..nets import load_data

    return load_data(seed, data)


@functools.lru_cache(maxsize=8)
def tensors_for(seed: int, data, dtype: str, device: str):
    torch = import_torch()
    from ..nets import as_tensors

    return as_tensors(_data(seed, data), getattr(torch, dtype), device)


def build_model(spec: BridgeSpec, seed: int):
    """The network of ``spec`` for ``seed`` (initialisation from stream ``NET_INIT``; the global
    torch RNG is left as it was), in the spec's dtype and on its device."""
    torch = import_torch()
    from .. import nets

    d = _data(seed, spec.data)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(_streams.rng(seed, _streams.NET_INIT).integers(2**63)))
        if spec.model == "mlp":
            net = nets.MLPSI((int(np.prod(d.input_shape)),) + tuple(spec.hidden) + (d.n_classes,), spec.out_norm)
        else:
            if not d.is_image:
                raise ValueError("--model convnet needs images (X_train of shape N x C x H x W); the data are flat")
            net = nets.ConvNetSI(d.input_shape[0], spec.width, d.n_classes, spec.out_norm)
    return net.to(device=spec.device, dtype=getattr(torch, spec.dtype))


@dataclass(frozen=True)
class BridgeSpec:
    """Everything that fixes one network run but its ELR and seed."""

    model: str
    hidden: tuple
    width: int
    out_norm: float
    epochs: int
    batch_size: int
    dtype: str
    device: str
    data: str | None
    #: measure the tangent Hessian at the end of every run (top eigenvalues and trace)
    sharpness: bool = False

    def payload(self) -> dict:
        """The JSON-able form (floats as ``repr``) for cache keys and records."""
        torch_version = import_torch().__version__
        return {"model": self.model, "hidden": list(self.hidden) if self.model == "mlp" else None,
                "width": self.width if self.model == "convnet" else None, "out_norm": repr(float(self.out_norm)),
                "epochs": self.epochs, "batch_size": self.batch_size, "dtype": self.dtype, "device": self.device,
                "data": _data(0, self.data).source, "torch": torch_version,
                **({"sharpness": [SHARPNESS_EXAMPLES, SHARPNESS_K, SHARPNESS_PROBES]} if self.sharpness else {})}


@contextlib.contextmanager
def torch_settings(threads=None):
    """Every network computation of the jobs runs inside this: ``threads`` torch threads (default 1)
    and deterministic algorithms, restored afterwards. With several threads torch may sum in
    another order, so the same count everywhere (worker processes, Dask, this process) keeps the
    results identical."""
    torch = import_torch()
    old_threads = torch.get_num_threads()
    previous = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(int(threads) if threads else 1)
    torch.use_deterministic_algorithms(True)
    try:
        yield torch
    finally:
        torch.use_deterministic_algorithms(previous)
        torch.set_num_threads(old_threads)


def run_network(spec: BridgeSpec, elr: float, seed: int, threads=None, start=None, epochs=None) -> TrainResult:
    """Train the network of ``spec`` at total ELR ``elr`` with ``seed`` (deterministic algorithms,
    ``threads`` torch threads, default 1) for ``epochs`` (default: the spec's). ``start``: flat
    scale-invariant weights to start from (another run's ``final_weights``; fine-tuning)."""
    from .. import nets

    with torch_settings(threads):
        net = build_model(spec, seed)
        tensors = tensors_for(seed, spec.data, spec.dtype, spec.device)
        if start is not None:
            named = dict(net.named_parameters())
            nets.set_flat_weights([named[n] for n in nets.find_scale_invariant(net, tensors[0][:256])], start)
        res = nets.train_on_sphere(net, tensors, elr, epochs or spec.epochs, spec.batch_size, seed=seed,
                                   radius=RADIUS)
        if spec.sharpness:
            s = measure_sharpness(net, tensors[0], tensors[1], seed)
            res = dataclasses.replace(res, sharpness_top=s.top, sharpness_trace=s.trace, sharpness_trace_se=s.trace_se)
        return res


#: sharpness: the first training examples used (a fixed subset, one batch, BN in train mode), the
#: number of top eigenvalues (Lanczos) and of Hutchinson probes; the standard error of the trace
#: is reported with it
SHARPNESS_EXAMPLES = 512
SHARPNESS_K = 3
SHARPNESS_PROBES = 32


def measure_sharpness(net, X, y, seed: int):
    """The tangent Hessian's top eigenvalues and trace at the network's current point, in float64
    on the first ``SHARPNESS_EXAMPLES`` training examples (a copy of the network is used)."""
    import copy

    torch = import_torch()
    from ..nets.hessian import sharpness

    m = copy.deepcopy(net).double()
    params = [p for p in m.parameters() if p.requires_grad]
    n = min(len(y), SHARPNESS_EXAMPLES)
    return sharpness(m, params, X[:n].to(torch.float64), y[:n], k=SHARPNESS_K, probes=SHARPNESS_PROBES, seed=seed)


def random_guess(spec: BridgeSpec, seed: int, points: int = 64, threads=None) -> float:
    """The random-guess level of seed ``seed``'s network and training set
    (:func:`toymodel.nets.random_guess_level`), with the runs' torch settings."""
    from .. import nets

    with torch_settings(threads) as torch:
        net = build_model(spec, seed)
        Xtr, ytr = tensors_for(seed, spec.data, spec.dtype, spec.device)[:2]
        names = nets.find_scale_invariant(net, Xtr[:256])
        named = dict(net.named_parameters())
        with torch.no_grad():
            return nets.random_guess_level(net, [named[n] for n in names], Xtr, ytr, radius=RADIUS, points=points,
                                           seed=seed)


@dataclass(frozen=True)
class BridgeRun:
    """One unit of a network sweep: the run at ELR index ``k`` with seed ``seed``."""

    index: int
    k: int
    seed: int

    @property
    def name(self) -> str:
        return f"run_{self.k:04d}_{self.seed:04d}"


@dataclass(frozen=True)
class BridgeTask:
    """A network ELR sweep as a task of :func:`toymodel.sweep.execute` (one run per unit)."""

    elrs: tuple
    seeds: tuple
    spec: BridgeSpec
    #: torch threads per run, whatever the runner offers: with several threads torch may sum in
    #: another order, so a fixed count keeps local, worker-process and Dask runs identical
    threads: int = 1
    record_type = TrainResult

    def units(self) -> list[BridgeRun]:
        return [BridgeRun(k * len(self.seeds) + j, k, s) for k in range(len(self.elrs))
                for j, s in enumerate(self.seeds)]

    def run_unit(self, unit: BridgeRun, threads=None) -> TrainResult:
        return run_network(self.spec, self.elrs[unit.k], unit.seed, self.threads)

    def key(self) -> str:
        return content_key({"job": "bridge", "elrs": [repr(float(e)) for e in self.elrs],
                            "seeds": [int(s) for s in self.seeds], **self.spec.payload()})


def validate_network(elr_min, elr_max, num, seeds, epochs, batch_size, hidden, out_norm, model="mlp", width=8,
              dtype="float32", device="cpu", data=None, threads=None, workers=None, sharpness=False):
    elr_min, elr_max, num = as_elr_range(elr_min, elr_max, num)
    seeds = as_int(seeds, "seeds", minimum=1)
    epochs = as_int(epochs, "epochs", minimum=2, maximum=MAX_STEPS)
    batch_size = as_int(batch_size, "batch_size", minimum=2, maximum=MAX_BATCH_SIZE)
    if isinstance(hidden, str):
        try:
            hidden = tuple(int(h) for h in hidden.split(","))
        except ValueError:
            raise ValueError(f"hidden must be comma-separated layer widths, got {hidden!r}") from None
    hidden = tuple(as_int(h, "hidden", minimum=1) for h in hidden)
    if not hidden:
        raise ValueError("hidden must list at least one hidden layer width")
    out_norm = as_positive_float(out_norm, "out_norm")
    for value, name, choices in ((model, "model", MODELS), (dtype, "dtype", DTYPES), (device, "device", DEVICES)):
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    width = as_int(width, "width", minimum=1)
    if threads is not None:
        threads = as_int(threads, "threads", minimum=1)
    if workers is not None:
        workers = as_int(workers, "workers", minimum=1)
    if data is not None:
        data = str(Path(data).resolve())
        if not Path(data).is_file():
            raise ValueError(f"data file not found: {data}")
    # per run and epoch: six scalars and three values per channel (ELR, gradient norm, ESS)
    channels = sum(hidden) if model == "mlp" else 15 * width
    check_memory(num * seeds * epochs * (6 + 3 * channels) * 8, "the sweep's records")
    spec = BridgeSpec(model, hidden, width, out_norm, epochs, batch_size, dtype, device, data, bool(sharpness))
    return elr_min, elr_max, num, seeds, spec, threads, workers


def check_setup(spec: BridgeSpec) -> None:
    """What can only be checked with torch and the data: the extra, the device, the data's shape."""
    torch = import_torch()
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda: this machine's torch sees no CUDA device (use --device cpu)")
    d = _data(0, spec.data)
    if spec.model == "convnet" and not d.is_image:
        raise ValueError("--model convnet needs images (X_train of shape N x C x H x W); the data are flat")
    if spec.batch_size > len(d.y_train):
        raise ValueError(f"batch_size must be at most the training set size {len(d.y_train)}, got {spec.batch_size}")


def _summarise(runs, rgs, elrs, epochs):
    """One row per ELR: window statistics of every seed, classified, averaged over seeds."""
    w = regimes.training_window(epochs)
    K_, S_ = len(runs), len(runs[0])

    def grid(fn):
        return np.array([[fn(runs[k][s]) for s in range(S_)] for k in range(K_)])

    loss_w = np.array([[runs[k][s].train_loss[w] for s in range(S_)] for k in range(K_)])
    cos_w = np.array([[runs[k][s].step_cosine[w] for s in range(S_)] for k in range(K_)])
    reg, sub = regimes.classify_training(loss_w, cos_w, np.asarray(rgs)[None, :])
    regime, subtype, frac = regimes.classify_elrs(reg, sub)
    t = {"elr": np.asarray(elrs), "regime": regime, "subtype": subtype, "n_seeds": np.full(K_, S_)}
    for name in regimes.REGIMES + regimes.SUBTYPES:
        t[f"frac_{name}"] = frac[name]
    cols = {
        "mean_loss": loss_w.mean(axis=-1), "std_loss": loss_w.std(axis=-1),
        "final_train_loss": grid(lambda r: r.train_loss[-1]),
        "final_test_error": grid(lambda r: r.test_error[-1]),
        "mean_cosine": cos_w.mean(axis=-1),
        "mean_angle": grid(lambda r: r.step_angle[w].mean()),
        "mean_eff_grad_norm": grid(lambda r: np.median(r.eff_grad_norm[w])),
        "epoch_cosine": grid(lambda r: r.epoch_cosine[w].mean()),
        "ess_dispersion": grid(lambda r: _ess_dispersion(r, w)),
    }
    for name, arr in cols.items():
        t[name] = arr.mean(axis=1)
        t[f"std_{name}"] = arr.std(axis=1)
    t["random_guess_loss"] = np.full(K_, float(np.mean(rgs)))
    if runs[0][0].sharpness_top is not None:
        top = grid(lambda r: r.sharpness_top[0])
        tr = grid(lambda r: r.sharpness_trace)
        se = grid(lambda r: r.sharpness_trace_se)
        elrs_ = np.asarray(elrs)[:, None]
        t["sharpness_top"], t["std_sharpness_top"] = top.mean(axis=1), top.std(axis=1)
        t["sharpness_trace"], t["std_sharpness_trace"] = tr.mean(axis=1), tr.std(axis=1)
        # the standard error of the seed mean from the probes alone (the seeds' spread is std_)
        t["sharpness_trace_se"] = np.sqrt((se**2).sum(axis=1)) / S_
        t["elr_x_sharpness"], t["std_elr_x_sharpness"] = (elrs_ * top).mean(axis=1), (elrs_ * top).std(axis=1)
    return tuple(t), t


def _ess_dispersion(r: TrainResult, w: slice) -> float:
    """Spread of the per-channel ESS (window means): standard deviation of log ESS over channels."""
    ess = r.channel_ess[w].mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.std(np.log(ess)))


def compute_bridge(elr_min=DEFAULTS["elr_min"], elr_max=DEFAULTS["elr_max"], num=DEFAULTS["num"],
                   seeds=DEFAULTS["seeds"], epochs=DEFAULTS["epochs"], batch_size=DEFAULTS["batch_size"],
                   hidden=DEFAULTS["hidden"], out_norm=DEFAULTS["out_norm"], *, model=DEFAULTS["model"],
                   width=DEFAULTS["width"], dtype=DEFAULTS["dtype"], device=DEFAULTS["device"], data=None,
                   threads=None, workers=1, scheduler=None, dask_local=None, sharpness: bool = False,
                   progress: bool = False, cache_dir=None) -> BridgeSweep:
    """Train the network at ``num`` log-spaced ELRs for ``seeds`` seeds each and classify.

    Seed s fixes the data split (digits), the output layer, the initial weights and the batch
    order, and is the same at every ELR. Runs go through :func:`toymodel.sweep.execute`:
    ``workers`` local processes, or a Dask cluster (``scheduler``/``dask_local``); with
    ``cache_dir`` each finished run is kept there and reused. The results do not depend on any of
    these. Each run uses ``threads`` torch threads (default 1; the same count gives the same
    numbers everywhere). With ``sharpness``, the tangent Hessian's top eigenvalues and trace are
    measured at the end of every run (:func:`measure_sharpness`) and summarised per ELR.
    """
    elr_min, elr_max, num, seeds, spec, threads, workers = validate_network(
        elr_min, elr_max, num, seeds, epochs, batch_size, hidden, out_norm, model, width, dtype, device, data,
        threads, workers, sharpness)
    check_dask_choice(scheduler, dask_local)
    check_setup(spec)
    elrs = np.geomspace(elr_min, elr_max, num)
    params = dict(elr_min=elr_min, elr_max=elr_max, num=num, seeds=list(range(seeds)), epochs=spec.epochs,
                  batch_size=spec.batch_size, hidden=list(spec.hidden), out_norm=spec.out_norm, model=spec.model,
                  width=spec.width, dtype=spec.dtype, device=spec.device, data=spec.data,
                  data_source=_data(0, spec.data).source, n_classes=_data(0, spec.data).n_classes,
                  input_dim=int(np.prod(_data(0, spec.data).input_shape)), radius=RADIUS,
                  sharpness=spec.sharpness)
    task = BridgeTask(tuple(elrs.tolist()), tuple(range(seeds)), spec, threads or 1)
    stats = SweepStats()
    parts = execute([task], [(0, u) for u in task.units()], progress=progress, desc="bridge",
                    unit="run", cache_dir=cache_dir, scheduler=scheduler, dask_local=dask_local, workers=workers,
                    stats=stats)[0]
    rgs = [random_guess(spec, s, threads=task.threads) for s in task.seeds]
    runs = [[None] * seeds for _ in range(num)]
    for u, run in parts:
        runs[u.k][u.seed] = run
    columns, table = _summarise(runs, rgs, elrs, spec.epochs)
    return BridgeSweep(columns, table, params, runs, np.array(rgs), stats.reused)


def bridge_csv_text(bs: BridgeSweep) -> str:
    return csv_text(bs.columns, bs.table)


def bridge_json_record(bs: BridgeSweep, wall_time_s=None, started=None, outputs=()) -> dict:
    """Parameters, versions, classification constants, timing, the random-guess level per seed,
    per-ELR seed-averaged learning curves, and the per-channel data of seed 0 for the ESS figure."""
    w = bs.window
    curves = {name: [np.mean([getattr(r, name) for r in row], axis=0).tolist() for row in bs.runs]
              for name in ("train_loss", "test_error", "eff_grad_norm", "step_cosine", "epoch_cosine")}
    channels = [{"elr": float(row[0].elr), "channel_elr": row[0].channel_elr[w].mean(axis=0).tolist(),
                 "channel_eff_grad_norm": row[0].channel_egn[w].mean(axis=0).tolist()} for row in bs.runs]
    vers = versions()
    try:
        vers["torch"] = import_torch().__version__
    except ValueError:  # a record rebuilt where torch is missing
        pass
    return {
        "job": "bridge",
        "parameters": bs.params,
        "seeds": bs.params["seeds"],
        "random_guess_loss": bs.random_guess.tolist(),
        "window_epochs": [w.start, w.stop],
        "window_too_short": bs.window_too_short,
        "classification": {"RANDOM_WALK_COSINE_TOL": regimes.RANDOM_WALK_COSINE_TOL,
                           "RANDOM_WALK_LOSS_TOL": regimes.RANDOM_WALK_LOSS_TOL,
                           "NETWORK_CONVERGED_LOSS_FRACTION": regimes.NETWORK_CONVERGED_LOSS_FRACTION,
                           "PERIODIC_STD_TOL": regimes.PERIODIC_STD_TOL, "WINDOW_FRACTION": WINDOW_FRACTION,
                           "MIN_WINDOW_EPOCHS": MIN_WINDOW_EPOCHS},
        "columns": list(bs.columns),
        "curves": curves,
        "channels_seed0": channels,
        "max_harmonic_error": max(r.harmonic_error for row in bs.runs for r in row),
        **(_sharpness_record(bs) if bs.params.get("sharpness") else {}),
        "outputs": list(outputs),
        "versions": vers,
        "timing": {"started": started, "wall_time_s": wall_time_s, "runs_reused": bs.reused},
    }


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
    """``<records>.csv``, ``<records>.json`` (default ``bridge.csv``, ``bridge.json``) and (unless
    ``plot=False``) the two figures of :func:`figure_names`, atomically."""
    out = Path(out)
    names = [f"{records}.csv", f"{records}.json"]
    atomic_write_text(out / names[0], bridge_csv_text(bs))
    if plot:
        regimes_name, ess_name = figure_names(bs.params["model"], fmt)
        fig, _ = plots.plot_bridge_regimes(bs)
        plots.save_figure(fig, out / regimes_name, fmt)
        fig, _ = plots.plot_bridge_ess(bs)
        plots.save_figure(fig, out / ess_name, fmt)
        names += [regimes_name, ess_name]
        if bs.params.get("sharpness"):
            sharp_name = regimes_name.replace("bridge_regimes", "bridge_sharpness")
            fig, _ = plots.plot_bridge_sharpness(bs)
            plots.save_figure(fig, out / sharp_name, fmt)
            names.append(sharp_name)
    atomic_write_text(out / names[1], json_text(bridge_json_record(bs, wall_time_s, started, names), indent=None))
    return [out / n for n in names]


def figure_names(model: str, fmt: str = "png") -> tuple[str, str]:
    """The two figure file names of a sweep of ``model``: ``bridge_regimes.png`` and
    ``bridge_ess.png`` for the MLP, with a ``_convnet`` suffix for the ConvNet."""
    suffix = "" if model == "mlp" else f"_{model}"
    return f"bridge_regimes{suffix}.{fmt}", f"bridge_ess{suffix}.{fmt}"


def add_network_arguments(ap, *, out: str, defaults: dict = DEFAULTS, seeds: int | None = None,
                          epochs: int | None = None) -> None:
    """The flags every network job shares: model, data, sizes, precision, device, where the runs
    go, and the output conventions."""
    d = defaults
    ap.add_argument("--model", default=d["model"],
                    help="mlp (MLPSI) or convnet (ConvNetSI, images only) (default: %(default)s)")
    ap.add_argument("--data", metavar="FILE.npz", default=None,
                    help="X_train, y_train, X_test, y_test (images N x C x H x W or flat N x D); default: "
                         "scikit-learn's digits, split by seed")
    ap.add_argument("--seeds", type=int_arg, default=seeds or d["seeds"],
                    help="runs per setting, seeds 0..N-1 (default: %(default)s)")
    ap.add_argument("--epochs", type=int_arg, default=epochs or d["epochs"],
                    help="epochs per run (default: %(default)s)")
    ap.add_argument("--batch-size", type=int_arg, default=d["batch_size"],
                    help="mini-batch size (default: %(default)s)")
    ap.add_argument("--hidden", default=",".join(str(h) for h in d["hidden"]),
                    help="MLP hidden layer widths (default: %(default)s)")
    ap.add_argument("--width", type=int_arg, default=d["width"],
                    help="ConvNet channels of the first block; the others have 2, 4, 8 times as many "
                         "(default: %(default)s)")
    ap.add_argument("--out-norm", type=float, default=d["out_norm"],
                    help="norm of the fixed output layer (default: %(default)g)")
    ap.add_argument("--dtype", default=d["dtype"], help="float32 or float64 (default: %(default)s)")
    ap.add_argument("--device", default=d["device"],
                    help="cpu or cuda: where the networks train (default: %(default)s; cuda is untested here)")
    ap.add_argument("--threads", type=int_arg, default=None, help="torch threads per run (default: 1)")
    ap.add_argument("--workers", type=int_arg, default=None,
                    help="local worker processes, one run each at a time (default: the usable cores, here "
                         f"{default_workers()})")
    ap.add_argument("--scheduler", metavar="ADDRESS", default=None,
                    help="run the runs on a running Dask scheduler, e.g. tcp://127.0.0.1:8786 "
                         "(extra toymodel[distributed])")
    ap.add_argument("--dask-local", metavar="N", type=int_arg, default=None,
                    help="run the runs on a local Dask cluster of N worker processes")
    ap.add_argument("--out", default=out, help="output folder (default: %(default)s, git-ignored)")
    ap.add_argument("--format", default="png", help="figure format: png, svg or pdf (default: %(default)s)")
    ap.add_argument("--no-plot", action="store_true", help="write CSV and JSON only")
    ap.add_argument("--resume", action="store_true", help="keep finished runs in OUT/.toymodel-cache and reuse them")
    ap.add_argument("--quiet", action="store_true", help="no progress bar or messages")


def _main(argv=None) -> int:
    d = DEFAULTS
    ap = ArgumentParser(prog="python -m toymodel.bridge",
                        description="Train a fully scale-invariant network (BN without affine, fixed output layer) "
                                    "on the sphere at a sweep of fixed total ELRs, classify every ELR into a regime, "
                                    "and write bridge.csv, bridge.json and two figures.")
    ap.add_argument("--elr-min", type=float, default=d["elr_min"], help="smallest ELR (default: %(default)g)")
    ap.add_argument("--elr-max", type=float, default=d["elr_max"], help="largest ELR (default: %(default)g)")
    ap.add_argument("--num", type=int_arg, default=d["num"], help="number of log-spaced ELRs (default: %(default)s)")
    add_network_arguments(ap, out=DEFAULT_OUT)
    ap.add_argument("--sharpness", action="store_true",
                    help=f"at the end of every run, the tangent Hessian's top {SHARPNESS_K} eigenvalues (Lanczos) and "
                         f"trace (Hutchinson, {SHARPNESS_PROBES} probes) on {SHARPNESS_EXAMPLES} training examples; "
                         "adds columns and bridge_sharpness.png")
    args = ap.parse_args(argv)
    validate_network(args.elr_min, args.elr_max, args.num, args.seeds, args.epochs, args.batch_size, args.hidden,
              args.out_norm, args.model, args.width, args.dtype, args.device, args.data, args.threads, args.workers,
              args.sharpness)
    fmt = as_format(args.format)
    check_dask_choice(args.scheduler, args.dask_local)
    import_torch()
    workers = args.workers if args.workers is not None else default_workers()
    with output_dir(args.out, "out") as out:
        started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        t0 = time.perf_counter()
        bs = compute_bridge(args.elr_min, args.elr_max, args.num, args.seeds, args.epochs, args.batch_size,
                            args.hidden, args.out_norm, model=args.model, width=args.width, dtype=args.dtype,
                            device=args.device, data=args.data, threads=args.threads, workers=workers,
                            scheduler=args.scheduler, dask_local=args.dask_local, sharpness=args.sharpness,
                            progress=not args.quiet,
                            cache_dir=(out / CACHE_DIRNAME) if args.resume else None)
        if bs.window_too_short:
            w = bs.window
            note(f"bridge: warning: the classification window (epochs {w.start}-{w.stop}) has fewer than "
                 f"{MIN_WINDOW_EPOCHS} epochs, too few for the regimes to mean anything; use --epochs "
                 f"{int(math.ceil(MIN_WINDOW_EPOCHS / WINDOW_FRACTION))} or more", args.quiet)
        wall = time.perf_counter() - t0
        paths = write_bridge_outputs(bs, out, fmt, plot=not args.no_plot, wall_time_s=wall, started=started)
    if not args.quiet:
        print(f"bridge: {args.model}, {plural(args.num, 'ELR')} x {plural(args.seeds, 'seed')} x "
              f"{plural(args.epochs, 'epoch')} in {wall:.1f} s; wrote " + ", ".join(str(p) for p in paths),
              file=sys.stderr)
    return 0


def main(argv=None) -> int:
    plots.use_file_backend()  # a job writes files: no display
    return run_cli(_main, argv, prog="python -m toymodel.bridge")
