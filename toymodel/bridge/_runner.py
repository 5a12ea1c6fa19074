"""The network runner that every bridge job uses.

One place for what the jobs share: the network *spec* (model, data, sizes, precision, device:
everything that fixes a run but its setting and seed), the data and model construction, the
torch settings under which every network computation runs, one training run (on the sphere or
conventional, from scratch or from given weights), the sharpness at its end, the random-guess
level, the sweep task that :func:`toymodel.sweep.execute` runs (one task type for every job), the
*runner* (where the runs go: worker processes, Dask, the resume cache), the sweep-result base,
and the command-line flags with their validation. The jobs (:mod:`.fixed_elr`,
:mod:`.conventional`, :mod:`.finetune`) are thin: a setting per row, a summary, their files.

torch is imported inside functions only, so that results load and the flags validate without it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import _streams, regimes
from .._cli import int_arg
from .._records import CACHE_DIRNAME, ResultType, content_key, csv_text, versions
from .._validate import MAX_BATCH_SIZE, MAX_STEPS, as_int, as_positive_float, check_memory
from ..netrecords import ConventionalResult, TrainResult
from ..sweep import SweepStats, check_dask_choice, execute

__all__ = ["TORCH_HINT", "MODELS", "DTYPES", "DEVICES", "NET_DEFAULTS", "RADIUS", "SHARPNESS_EXAMPLES",
           "SHARPNESS_K", "SHARPNESS_PROBES", "import_torch", "default_workers", "torch_settings", "dataset",
           "tensors_for", "BridgeSpec", "build_model", "SphereRun", "ConventionalRun", "train", "measure_sharpness",
           "random_guess", "NetUnit", "NetTask", "Runner", "NetSweep", "classify_runs", "seed_grid",
           "add_network_arguments", "spec_from_args", "runner_from_args", "job_record"]

TORCH_HINT = "the networks need the optional extra: pip install 'toymodel[torch]'"

MODELS = ("mlp", "convnet")
DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda")

#: the defaults every network job shares (the jobs add their own)
NET_DEFAULTS = dict(seeds=3, epochs=60, batch_size=32, hidden=(64, 64), out_norm=10.0, model="mlp", width=8,
                    dtype="float32", device="cpu", data=None)

#: the total norm of the scale-invariant parameters (the sphere's radius) in every run
RADIUS = 1.0

#: sharpness: the first training examples used (a fixed subset, one batch, BN in train mode), the
#: number of top eigenvalues (Lanczos) and of Hutchinson probes; the standard error of the trace
#: is reported with it
SHARPNESS_EXAMPLES = 512
SHARPNESS_K = 3
SHARPNESS_PROBES = 32


def import_torch():
    """``torch``, or a ValueError naming the optional extra.

    Returns
    -------
    module
        The ``torch`` module.

    Raises
    ------
    ValueError
        If torch is not installed (the message names the extra ``toymodel[torch]``).
    """
    try:
        import torch
    except ImportError:
        raise ValueError(TORCH_HINT) from None
    return torch


def default_workers() -> int:
    """Worker processes for a local sweep: the cores this process may use (each run is too small
    to use more than one thread well).

    Returns
    -------
    int
        At least 1.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def torch_settings(threads=None):
    """Every network computation of the jobs runs inside this: a fixed number of torch threads and
    deterministic algorithms, both restored afterwards.

    With several threads torch may sum in another order, so the same count everywhere (worker
    processes, Dask, this process) keeps the results identical.

    Parameters
    ----------
    threads : int, optional
        The number of torch threads (default None: 1).

    Yields
    ------
    module
        The ``torch`` module.

    Raises
    ------
    ValueError
        If torch is not installed.
    """
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


# ------------------------------------------------------------------------------------ data, model
@functools.lru_cache(maxsize=8)
def dataset(seed: int, data):
    """The data set of ``data`` (None: the digits, split by ``seed``), cached per process.

    Parameters
    ----------
    seed : int
        Splits the digits (the same file for every seed).
    data : str or None
        What ``--data`` names (see :func:`toymodel.nets.load_data`).

    Returns
    -------
    toymodel.nets.Data
    """
    from ..nets import load_data

    return load_data(seed, data)


@functools.lru_cache(maxsize=8)
def tensors_for(seed: int, data, dtype: str, device: str):
    """``(X_train, y_train, X_test, y_test)`` of :func:`dataset` as tensors of ``dtype`` on ``device``.

    Cached per process, as :func:`dataset` is.

    Parameters
    ----------
    seed : int
        Splits the digits (as in :func:`dataset`).
    data : str or None
        A resolved ``.npz`` path, or None for the digits.
    dtype : {"float32", "float64"}
        The inputs' dtype, by name (labels are int64).
    device : {"cpu", "cuda"}

    Returns
    -------
    tuple of torch.Tensor
        ``(X_train, y_train, X_test, y_test)``.
    """
    torch = import_torch()
    from ..nets import as_tensors

    return as_tensors(dataset(seed, data), getattr(torch, dtype), device)


@dataclass(frozen=True)
class BridgeSpec:
    """Everything that fixes one network run but its setting (ELR, or learning rate and weight
    decay) and its seed. Build it with :meth:`make`, which validates every field.

    Attributes
    ----------
    model : {"mlp", "convnet"}
    hidden : tuple of int
        The MLP's hidden widths.
    width : int
        The ConvNet's first width (then 2, 4, 8 times as many channels).
    out_norm : float
        The norm of the fixed output layer.
    epochs, batch_size : int
    dtype : {"float32", "float64"}
    device : {"cpu", "cuda"}
    data : str or None
        A resolved path of an ``.npz`` file, or None for the digits.
    sharpness : bool
        Measure the tangent Hessian at the end of every run on the sphere.
    """

    model: str
    hidden: tuple
    width: int
    out_norm: float
    epochs: int
    batch_size: int
    dtype: str
    device: str
    data: str | None
    sharpness: bool = False

    @classmethod
    def make(cls, *, model=NET_DEFAULTS["model"], hidden=NET_DEFAULTS["hidden"], width=NET_DEFAULTS["width"],
             out_norm=NET_DEFAULTS["out_norm"], epochs=NET_DEFAULTS["epochs"], batch_size=NET_DEFAULTS["batch_size"],
             dtype=NET_DEFAULTS["dtype"], device=NET_DEFAULTS["device"], data=None,
             sharpness: bool = False) -> BridgeSpec:
        """A validated spec. Nothing here needs torch or reads the data (see :meth:`check_setup`).

        Defaults are those of :data:`NET_DEFAULTS`.

        Parameters
        ----------
        model : {"mlp", "convnet"}, optional
        hidden : sequence of int or str, optional
            The MLP's hidden widths, each >= 1 (at least one), or a comma-separated string such as
            ``"64,64"``.
        width : int, optional
            The ConvNet's first width, >= 1.
        out_norm : float, optional
            The norm of the fixed output layer, positive and finite.
        epochs : int, optional
            Epochs per run, >= 2.
        batch_size : int, optional
            >= 2 (at most the training set size, checked by :meth:`check_setup`).
        dtype : {"float32", "float64"}, optional
        device : {"cpu", "cuda"}, optional
        data : str or path-like, optional
            An existing ``.npz`` file (resolved to an absolute path); None for the digits.
        sharpness : bool, optional
            Measure the tangent Hessian at the end of every run on the sphere (default False).

        Returns
        -------
        BridgeSpec

        Raises
        ------
        ValueError
            Naming the first bad parameter.
        """
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
        if data is not None:
            data = str(Path(data).resolve())
            if not Path(data).is_file():
                raise ValueError(f"data file not found: {data}")
        return cls(model, hidden, width, out_norm, epochs, batch_size, dtype, device, data, bool(sharpness))

    @property
    def channels(self) -> int:
        """The number of scale-invariant channels (groups) of the network."""
        return sum(self.hidden) if self.model == "mlp" else 15 * self.width

    def check_memory(self, runs: int, epochs: int | None = None) -> None:
        """Refuse a sweep of ``runs`` runs whose records would not fit in memory: per run and epoch
        six scalars and three values per channel (ELR, effective gradient norm, ESS).

        Parameters
        ----------
        runs : int
            The number of runs of the sweep.
        epochs : int, optional
            Epochs per run (default: the spec's).

        Raises
        ------
        ValueError
            If the records would need more memory than this machine has (giving the estimate).
        """
        epochs = self.epochs if epochs is None else epochs
        check_memory(int(runs) * epochs * (6 + 3 * self.channels) * 8, "the sweep's records")

    def check_setup(self) -> None:
        """What can only be checked with torch and the data: the extra, the device, the data's shape.

        Raises
        ------
        ValueError
            If torch is not installed, the device is ``cuda`` and torch sees none, the model is the
            ConvNet and the data are flat, or ``batch_size`` exceeds the training set.
        """
        torch = import_torch()
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device cuda: this machine's torch sees no CUDA device (use --device cpu)")
        d = dataset(0, self.data)
        if self.model == "convnet" and not d.is_image:
            raise ValueError("--model convnet needs images (X_train of shape N x C x H x W); the data are flat")
        if self.batch_size > len(d.y_train):
            raise ValueError(f"batch_size must be at most the training set size {len(d.y_train)}, "
                             f"got {self.batch_size}")

    def payload(self) -> dict:
        """The JSON-able form (floats as ``repr``) for cache keys and records.

        Returns
        -------
        dict
            Including the data's source and torch's version (so it imports torch and reads the data).
        """
        return {"model": self.model, "hidden": list(self.hidden) if self.model == "mlp" else None,
                "width": self.width if self.model == "convnet" else None, "out_norm": repr(float(self.out_norm)),
                "epochs": self.epochs, "batch_size": self.batch_size, "dtype": self.dtype, "device": self.device,
                "data": dataset(0, self.data).source, "torch": import_torch().__version__,
                **({"sharpness": [SHARPNESS_EXAMPLES, SHARPNESS_K, SHARPNESS_PROBES]} if self.sharpness else {})}

    def params(self) -> dict:
        """The spec's part of a job's recorded parameters (with what the data turned out to be).

        Returns
        -------
        dict
            The fields but ``sharpness``, the data's source, number of classes and input size,
            and the sphere's radius.
        """
        d = dataset(0, self.data)
        return dict(epochs=self.epochs, batch_size=self.batch_size, hidden=list(self.hidden), out_norm=self.out_norm,
                    model=self.model, width=self.width, dtype=self.dtype, device=self.device, data=self.data,
                    data_source=d.source, n_classes=d.n_classes, input_dim=int(np.prod(d.input_shape)),
                    radius=RADIUS)


def build_model(spec: BridgeSpec, seed: int):
    """The network of ``spec`` for ``seed``, in the spec's dtype and on its device.

    Parameters
    ----------
    spec : BridgeSpec
    seed : int
        Fixes the data (hence the input and output sizes) and the initialisation (stream
        ``NET_INIT``; the global torch RNG is left as it was).

    Returns
    -------
    toymodel.nets.MLPSI or toymodel.nets.ConvNetSI

    Raises
    ------
    ValueError
        If torch is not installed, or the model is the ConvNet and the data are flat.
    """
    torch = import_torch()
    from .. import nets

    d = dataset(seed, spec.data)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(_streams.rng(seed, _streams.NET_INIT).integers(2**63)))
        if spec.model == "mlp":
            net = nets.MLPSI((int(np.prod(d.input_shape)),) + tuple(spec.hidden) + (d.n_classes,), spec.out_norm)
        else:
            if not d.is_image:
                raise ValueError("--model convnet needs images (X_train of shape N x C x H x W); the data are flat")
            net = nets.ConvNetSI(d.input_shape[0], spec.width, d.n_classes, spec.out_norm)
    return net.to(device=spec.device, dtype=getattr(torch, spec.dtype))


# ------------------------------------------------------------------------------------- one run
@dataclass(frozen=True)
class SphereRun:
    """A run on the sphere at a fixed total ELR.

    Attributes
    ----------
    elr : float
        The total ELR.
    epochs : int or None
        Epochs of the run (default None: the spec's).
    label : str
        What the row is where a job mixes kinds of runs (fine-tuning: "pretrain", "scratch", ...).
    record_type : type
        :class:`~toymodel.netrecords.TrainResult`, the run's record (a class attribute).
    """

    elr: float
    epochs: int | None = None
    label: str = ""
    record_type = TrainResult

    def payload(self) -> dict:
        """The JSON-able form (floats as ``repr``) for cache keys.

        Returns
        -------
        dict
        """
        return {"elr": repr(float(self.elr)), "epochs": self.epochs, "label": self.label}


@dataclass(frozen=True)
class ConventionalRun:
    """A conventional run: ``torch.optim.SGD`` with learning rate and weight decay, no projection.

    Attributes
    ----------
    lr : float
        The learning rate η.
    weight_decay : float
        The weight decay λ.
    epochs : int or None
        Epochs of the run (default None: the spec's).
    label : str
        What the row is where a job mixes kinds of runs.
    record_type : type
        :class:`~toymodel.netrecords.ConventionalResult`, the run's record (a class attribute).
    """

    lr: float
    weight_decay: float
    epochs: int | None = None
    label: str = ""
    record_type = ConventionalResult

    def payload(self) -> dict:
        """The JSON-able form (floats as ``repr``) for cache keys.

        Returns
        -------
        dict
        """
        return {"lr": repr(float(self.lr)), "weight_decay": repr(float(self.weight_decay)), "epochs": self.epochs,
                "label": self.label}


def train(spec: BridgeSpec, setting, seed: int, threads=None, start=None):
    """One run of the network of ``spec`` with ``seed`` (deterministic algorithms, ``threads`` torch
    threads, default 1).

    Parameters
    ----------
    spec : BridgeSpec
        The network, data and training.
    setting : SphereRun or ConventionalRun
        The run's kind and setting; its ``epochs``, if not None, replace the spec's.
    seed : int
        Fixes the data split (digits), the output layer, the initial weights and the batch order.
    threads : int, optional
        The number of torch threads (default None: 1).
    start : numpy.ndarray, optional
        Flat scale-invariant weights to start from (another run's ``final_weights``: fine-tuning).

    Returns
    -------
    TrainResult or ConventionalResult
        With the sharpness at the end for a run on the sphere when ``spec.sharpness``.
    """
    from .. import nets

    epochs = setting.epochs or spec.epochs
    with torch_settings(threads):
        net = build_model(spec, seed)
        tensors = tensors_for(seed, spec.data, spec.dtype, spec.device)
        if start is not None:
            nets.sphere.assign(nets.scale_invariant_parameters(net, tensors[0][:256])[1], start)
        if isinstance(setting, ConventionalRun):
            return nets.train_conventional(net, tensors, setting.lr, setting.weight_decay, epochs, spec.batch_size,
                                           seed=seed)
        res = nets.train_on_sphere(net, tensors, setting.elr, epochs, spec.batch_size, seed=seed, radius=RADIUS)
        if spec.sharpness:
            s = measure_sharpness(net, tensors[0], tensors[1], seed)
            res = dataclasses.replace(res, sharpness_top=s.top, sharpness_trace=s.trace, sharpness_trace_se=s.trace_se)
        return res


def measure_sharpness(net, X, y, seed: int):
    """The tangent Hessian's top eigenvalues and trace at the network's current point, in float64
    on the first ``SHARPNESS_EXAMPLES`` training examples (a copy of the network is used).

    Parameters
    ----------
    net : torch.nn.Module
        The trained network; the parameters that require gradients form the sphere.
    X : torch.Tensor, shape (N, ...)
        The training inputs.
    y : torch.Tensor, shape (N,)
        The training labels.
    seed : int
        Seeds the Lanczos start vector and the Hutchinson probes.

    Returns
    -------
    toymodel.nets.hessian.Sharpness
        ``SHARPNESS_K`` top eigenvalues, the trace from ``SHARPNESS_PROBES`` probes.
    """
    import copy

    torch = import_torch()
    from ..nets.hessian import sharpness

    m = copy.deepcopy(net).double()
    params = [p for p in m.parameters() if p.requires_grad]
    n = min(len(y), SHARPNESS_EXAMPLES)
    return sharpness(m, params, X[:n].to(torch.float64), y[:n], k=SHARPNESS_K, probes=SHARPNESS_PROBES, seed=seed)


def random_guess(spec: BridgeSpec, seed: int, points: int = 64, threads=None) -> float:
    """The random-guess level of seed ``seed``'s network and training set
    (:func:`toymodel.nets.random_guess_level`), with the runs' torch settings.

    Parameters
    ----------
    spec : BridgeSpec
    seed : int
        Fixes the network, the data split and the random points.
    points : int, optional
        The number of random points of the sphere (default 64).
    threads : int, optional
        The number of torch threads (default None: 1).

    Returns
    -------
    float
        The mean training loss at the random points.
    """
    from .. import nets

    with torch_settings(threads) as torch:
        net = build_model(spec, seed)
        Xtr, ytr = tensors_for(seed, spec.data, spec.dtype, spec.device)[:2]
        _, params = nets.scale_invariant_parameters(net, Xtr[:256])
        with torch.no_grad():
            return nets.random_guess_level(net, params, Xtr, ytr, radius=RADIUS, points=points, seed=seed)


# ------------------------------------------------------------------------------- sweep task
@dataclass(frozen=True)
class NetUnit:
    """One unit of a network sweep: the run of setting ``k`` with seed ``seed``.

    Attributes
    ----------
    index : int
        The unit's position in its task (``k * len(seeds) + j``).
    k : int
        The setting's index in the task's ``settings``.
    seed : int
        The seed itself (not its index).
    """

    index: int
    k: int
    seed: int

    @property
    def name(self) -> str:
        """The file name of the run's cached record, ``run_<k>_<seed>``."""
        return f"run_{self.k:04d}_{self.seed:04d}"


@dataclass(frozen=True, eq=False)
class NetTask:
    """A network sweep as a task of :func:`toymodel.sweep.execute`: every setting with every seed,
    one run per unit. One type serves every job.

    Attributes
    ----------
    job : str
        The job's name (part of the cache key).
    spec : BridgeSpec
    settings : tuple of SphereRun or of ConventionalRun
        One kind per task.
    seeds : tuple of int
    threads : int
        torch threads per run, whatever the runner offers: with several threads torch may sum in
        another order, so a fixed count keeps local, worker-process and Dask runs identical.
    starts : dict, optional
        ``{(k, seed): flat weights}``: runs that start from given weights (fine-tuning).
    sources : str
        What the starting weights came from (a content key; part of the cache key).
    """

    job: str
    spec: BridgeSpec
    settings: tuple
    seeds: tuple
    threads: int = 1
    starts: dict | None = field(default=None, repr=False)
    sources: str = ""

    def __post_init__(self):
        kinds = {type(s) for s in self.settings}
        if len(kinds) != 1:
            raise ValueError(f"a task's settings must be of one kind, got {sorted(k.__name__ for k in kinds)}")

    @property
    def record_type(self):
        """The type of the runs' records: that of the settings' kind."""
        return type(self.settings[0]).record_type

    def units(self) -> list[NetUnit]:
        """Every setting with every seed, setting-major.

        Returns
        -------
        list of NetUnit
        """
        return [NetUnit(k * len(self.seeds) + j, k, s) for k in range(len(self.settings))
                for j, s in enumerate(self.seeds)]

    def run_unit(self, unit: NetUnit, threads=None):
        """One run (:func:`train`), from its given weights if ``starts`` has them.

        Parameters
        ----------
        unit : NetUnit
        threads : int, optional
            Ignored: the run uses the task's ``threads``, so that results never depend on the
            runner.

        Returns
        -------
        TrainResult or ConventionalResult
        """
        start = None if self.starts is None else self.starts.get((unit.k, unit.seed))
        return train(self.spec, self.settings[unit.k], unit.seed, self.threads, start=start)

    def key(self) -> str:
        """Hash of everything that changes the runs (job, settings, seeds, sources, the spec with
        the data's source and torch's version, the package version).

        Returns
        -------
        str
            The cache key.
        """
        return content_key({"job": self.job, "settings": [s.payload() for s in self.settings],
                            "seeds": [int(s) for s in self.seeds], "sources": self.sources, **self.spec.payload()})


@dataclass(frozen=True)
class Runner:
    """Where a sweep's runs go, and what is kept. The results do not depend on any of these.

    Attributes
    ----------
    workers : int
        Local worker processes, >= 1 (default 1: this process).
    scheduler : str or None
        The address of a running Dask scheduler to run the runs on.
    dask_local : int or None
        Or the number of worker processes of a local Dask cluster (at most one of the two).
    threads : int
        The number of torch threads per run, >= 1 (default 1).
    progress : bool
        Show progress bars (default False).
    cache_dir : pathlib.Path or None
        Where finished runs are kept and reused (default None: nowhere).

    Raises
    ------
    ValueError
        If ``workers`` or ``threads`` is not an integer >= 1, or for the reasons of
        :func:`toymodel.sweep.check_dask_choice`.
    """

    workers: int = 1
    scheduler: str | None = None
    dask_local: int | None = None
    threads: int = 1
    progress: bool = False
    cache_dir: Path | None = None

    def __post_init__(self):
        object.__setattr__(self, "workers", as_int(self.workers, "workers", minimum=1))
        object.__setattr__(self, "threads", as_int(self.threads, "threads", minimum=1))
        check_dask_choice(self.scheduler, self.dask_local)

    def run(self, task: NetTask, desc: str) -> tuple[list, int]:
        """Run every unit of ``task``, reusing cached ones.

        Parameters
        ----------
        task : NetTask
        desc : str
            The progress bar's label.

        Returns
        -------
        runs : list of list of record
            ``runs[k][j]``: the run of setting ``k`` with seed ``task.seeds[j]``.
        reused : int
            How many runs came from the cache.
        """
        stats = SweepStats()
        parts = execute([task], [(0, u) for u in task.units()], progress=self.progress, desc=desc, unit="run",
                        cache_dir=self.cache_dir, scheduler=self.scheduler, dask_local=self.dask_local,
                        workers=self.workers, stats=stats)[0]
        col = {s: j for j, s in enumerate(task.seeds)}
        runs = [[None] * len(task.seeds) for _ in task.settings]
        for u, rec in parts:
            runs[u.k][col[u.seed]] = rec
        return runs, stats.reused

    def random_guess(self, spec: BridgeSpec, seeds) -> np.ndarray:
        """The random-guess level of every seed (:func:`random_guess`), with the runs' threads.

        Parameters
        ----------
        spec : BridgeSpec
        seeds : iterable of int

        Returns
        -------
        numpy.ndarray, shape (S,)
        """
        return np.array([random_guess(spec, int(s), threads=self.threads) for s in seeds])


# ------------------------------------------------------------------------------- sweep results
@dataclass(frozen=True, repr=False)
class NetSweep(ResultType):
    """The base of the network jobs' results.

    Attributes
    ----------
    columns : tuple of str
        The table's column names, in order.
    table : dict of str to numpy.ndarray
        One array per column, one entry per row (one row per setting, unless a job says otherwise).
    params : dict
        The job's parameters (``seeds`` and ``epochs`` among them).
    runs : list of list of record
        ``runs[k][j]``: the run of setting ``k`` with seed index ``j``.
    random_guess : numpy.ndarray, shape (S,)
        The random-guess level per seed.
    reused : int
        How many runs came from the cache.
    """

    columns: tuple
    table: dict
    params: dict
    runs: list = field(repr=False)
    random_guess: np.ndarray = field(repr=False)
    reused: int = 0

    @property
    def window(self) -> slice:
        """The epochs over which runs are summarised and classified (the last
        ``regimes.TRAINING_WINDOW_FRACTION`` of them, at least two)."""
        return regimes.training_window(self.params["epochs"])

    @property
    def window_too_short(self) -> bool:
        """Whether the window has fewer than ``regimes.MIN_WINDOW_EPOCHS`` epochs (the regimes are
        then unreliable)."""
        w = self.window
        return (w.stop - w.start) < regimes.MIN_WINDOW_EPOCHS

    @property
    def seeds(self) -> np.ndarray:
        """The seeds, shape (S,)."""
        return np.asarray(self.params["seeds"])

    def csv_text(self) -> str:
        """The table as CSV text (one row per setting).

        Returns
        -------
        str
        """
        return csv_text(self.columns, self.table)


def seed_grid(runs, fn) -> np.ndarray:
    """``fn(run)`` for every run, as a (settings x seeds) array.

    Parameters
    ----------
    runs : list of list of record
        ``runs[k][j]``, as in :class:`NetSweep`.
    fn : callable
        ``fn(run)``: a number or an array of the same shape for every run.

    Returns
    -------
    numpy.ndarray, shape (K, S, ...)
    """
    return np.array([[fn(r) for r in row] for row in runs])


def classify_runs(runs, random_guess, window: slice):
    """Classify every run over ``window`` and every setting over its seeds.

    Parameters
    ----------
    runs : list of list of record
        ``runs[k][j]`` (K settings x S seeds), each with ``train_loss`` and ``step_cosine`` per epoch.
    random_guess : array_like, shape (S,)
        The random-guess level per seed.
    window : slice
        The epochs classified.

    Returns
    -------
    loss_w, cos_w : numpy.ndarray, (K, S, W)
        The train loss and the step cosine over the window.
    regime, subtype : numpy.ndarray of str, (K,)
        Per setting (:func:`toymodel.regimes.classify_elrs`).
    frac : dict
        The share of seeds in each regime and subtype, per setting.
    """
    loss_w = seed_grid(runs, lambda r: r.train_loss[window])
    cos_w = seed_grid(runs, lambda r: r.step_cosine[window])
    reg, sub = regimes.classify_training(loss_w, cos_w, np.asarray(random_guess)[None, :])
    regime, subtype, frac = regimes.classify_elrs(reg, sub)
    return loss_w, cos_w, regime, subtype, frac


def job_record(job: str, params: dict, outputs, wall_time_s=None, started=None, reused: int = 0, **rest) -> dict:
    """The JSON record every network job writes: its name and parameters, what it adds, the files
    written, the versions (torch's included, when installed) and the timing.

    Parameters
    ----------
    job : str
        The job's name.
    params : dict
        The job's parameters.
    outputs : iterable of str
        The names of the files written.
    wall_time_s : float, optional
        The job's wall time in seconds.
    started : str, optional
        When the job started (ISO 8601).
    reused : int, optional
        How many runs came from the cache (default 0).
    **rest
        What the job adds, after the parameters.

    Returns
    -------
    dict
        JSON-able.
    """
    vers = versions()
    with contextlib.suppress(ValueError):  # a record rebuilt where torch is missing
        vers["torch"] = import_torch().__version__
    return {"job": job, "parameters": params, **rest, "outputs": list(outputs), "versions": vers,
            "timing": {"started": started, "wall_time_s": wall_time_s, "runs_reused": reused}}


# ------------------------------------------------------------------------------------- flags
def add_network_arguments(ap, *, out: str, defaults: dict = NET_DEFAULTS, seeds: int | None = None,
                          epochs: int | None = None) -> None:
    """The flags every network job shares: model, data, sizes, precision, device, where the runs
    go, and the output conventions.

    Parameters
    ----------
    ap : argparse.ArgumentParser
        Gets the flags.
    out : str
        The default output folder (``--out``).
    defaults : dict, optional
        The flags' defaults (default :data:`NET_DEFAULTS`).
    seeds, epochs : int, optional
        Defaults of ``--seeds`` and ``--epochs`` that replace those of ``defaults``.
    """
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


def spec_from_args(args, sharpness: bool = False) -> BridgeSpec:
    """The validated spec of the shared flags.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed with the flags of :func:`add_network_arguments`.
    sharpness : bool, optional
        The spec's ``sharpness`` (default False).

    Returns
    -------
    BridgeSpec

    Raises
    ------
    ValueError
        As :meth:`BridgeSpec.make`.
    """
    return BridgeSpec.make(model=args.model, hidden=args.hidden, width=args.width, out_norm=args.out_norm,
                           epochs=args.epochs, batch_size=args.batch_size, dtype=args.dtype, device=args.device,
                           data=args.data, sharpness=sharpness)


def runner_from_args(args, out=None) -> Runner:
    """The validated runner of the shared flags.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed with the flags of :func:`add_network_arguments`.
    out : str or path-like, optional
        The output folder, whose cache ``--resume`` uses (default None: no cache).

    Returns
    -------
    Runner
        ``--workers`` defaults to :func:`default_workers`, ``--threads`` to 1.

    Raises
    ------
    ValueError
        As :class:`Runner`.
    """
    return Runner(workers=args.workers if args.workers is not None else default_workers(),
                  scheduler=args.scheduler, dask_local=args.dask_local,
                  threads=args.threads if args.threads is not None else 1, progress=not args.quiet,
                  cache_dir=(Path(out) / CACHE_DIRNAME) if (args.resume and out is not None) else None)
