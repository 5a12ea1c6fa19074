"""The network runner that every bridge job uses.

One place for what the jobs share: the network *spec* (model, data, sizes, precision, device:
everything that fixes a run but its setting and seed), the data and model construction, the
torch settings under which every network computation runs, one training run (on the sphere or
conventional, from scratch or from given weights), the sharpness at its end, the random-guess
level, the sweep task that :func:`toymodel.sweep.execute` runs (one task type for every job), the
*runner* (where the runs go: worker processes, Dask, the resume cache), the sweep-result base,
and the command-line flags with their validation. The jobs (:mod:`toymodel.bridge.fixed_elr`,
:mod:`toymodel.bridge.conventional`, :mod:`toymodel.bridge.finetune`) are thin: a setting per row, a
summary, their files.

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
from .._validate import MAX_BATCH_SIZE, MAX_STEPS, as_int, as_positive_float, available_memory, check_memory
from ..netrecords import ConventionalResult, TrainResult
from ..sweep import SweepStats, check_dask_choice, execute

__all__ = ["TORCH_HINT", "MODELS", "DTYPES", "DEVICES", "ENGINES", "MAX_ENSEMBLE", "NET_DEFAULTS", "RADIUS",
           "SHARPNESS_EXAMPLES", "SHARPNESS_K", "SHARPNESS_PROBES", "import_torch", "default_workers", "torch_settings",
           "dataset",
           "tensors_for", "spec_tensors", "spec_dataset", "resolve_data", "data_seed", "BridgeSpec", "build_model",
           "SphereRun", "ConventionalRun", "train", "train_ensemble", "NetChunk", "RunBatch", "measure_sharpness",
           "random_guess", "NetUnit", "NetTask", "Runner", "NetSweep", "classify_runs", "seed_grid",
           "add_network_arguments", "spec_from_args", "runner_from_args", "job_record"]

TORCH_HINT = "the networks need the optional extra: pip install 'toymodel[torch]'"

MODELS = ("mlp", "convnet")
DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda")
#: how a sweep's runs are trained: as ensembles (K runs of one network as one batched computation,
#: :func:`toymodel.nets.train_ensemble_on_sphere`) or one run at a time (the reference)
ENGINES = ("ensemble", "runs")
#: the most runs in one ensemble (beyond about 32 the batched computation gains little; memory is
#: checked as well)
MAX_ENSEMBLE = 64

#: the defaults every network job shares (the jobs add their own)
NET_DEFAULTS = dict(seeds=3, epochs=60, batch_size=32, hidden=(64, 64), out_norm=10.0, model="mlp", width=8,
                    dtype="float32", device="cpu", data=None, train_subset=None, engine="ensemble")

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
def _nets():
    """``toymodel.nets`` (importing it imports torch), or a ValueError naming the optional extra."""
    import_torch()
    from .. import nets

    return nets


def resolve_data(data) -> str | None:
    """What ``--data`` names, resolved (:func:`toymodel.nets.resolve_data`): None for the digits,
    else an absolute path of an ``.npz`` file or of a folder of IDX files (``fashion-mnist`` by name)."""
    return None if data is None else _nets().resolve_data(data)


def data_seed(seed: int, data, train_subset) -> int:
    """The seed a run's data depend on: its own for the digits (split by seed) or a training subset
    (drawn by seed), 0 for a fixed data set, so that every run shares one copy of it."""
    return int(seed) if (data is None or train_subset) else 0


@functools.lru_cache(maxsize=8)
def dataset(seed: int, data, train_subset=None):
    """The data set of ``data`` (None: the digits, split by ``seed``), with a stratified training
    subset of ``train_subset`` examples drawn by ``seed`` when given; cached per process.

    Parameters
    ----------
    seed : int
    data : str or None
        A resolved ``--data`` value (see :func:`resolve_data`).
    train_subset : int, optional

    Returns
    -------
    toymodel.nets.Data
    """
    nets = _nets()
    d = nets.load_data(seed, data)
    return nets.train_subset(d, int(train_subset), seed) if train_subset else d


@functools.lru_cache(maxsize=8)
def tensors_for(seed: int, data, dtype: str, device: str, train_subset=None):
    """``(X_train, y_train, X_test, y_test)`` of :func:`dataset` as tensors of ``dtype`` on ``device``."""
    torch = import_torch()
    return _nets().as_tensors(dataset(seed, data, train_subset), getattr(torch, dtype), device)


def spec_tensors(spec, seed: int):
    """The tensors a run of ``spec`` with ``seed`` trains on (shared by every run of a fixed data set)."""
    return tensors_for(data_seed(seed, spec.data, spec.train_subset), spec.data, spec.dtype, spec.device,
                       spec.train_subset)


def spec_dataset(spec, seed: int):
    """The data set a run of ``spec`` with ``seed`` trains on."""
    return dataset(data_seed(seed, spec.data, spec.train_subset), spec.data, spec.train_subset)


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
        A resolved path (an ``.npz`` file, or a folder of IDX files such as Fashion-MNIST's), or None
        for the digits.
    sharpness : bool
        Measure the tangent Hessian at the end of every run on the sphere.
    train_subset : int or None
        Train on a stratified subset of this many training examples, drawn by each run's seed (the
        test set stays whole); None for the whole training set.
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
    train_subset: int | None = None

    @classmethod
    def make(cls, *, model=NET_DEFAULTS["model"], hidden=NET_DEFAULTS["hidden"], width=NET_DEFAULTS["width"],
             out_norm=NET_DEFAULTS["out_norm"], epochs=NET_DEFAULTS["epochs"], batch_size=NET_DEFAULTS["batch_size"],
             dtype=NET_DEFAULTS["dtype"], device=NET_DEFAULTS["device"], data=None,
             sharpness: bool = False, train_subset=None) -> BridgeSpec:
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
        data = resolve_data(data)
        if train_subset is not None:
            train_subset = as_int(train_subset, "train_subset", minimum=2)
        return cls(model, hidden, width, out_norm, epochs, batch_size, dtype, device, data, bool(sharpness),
                   train_subset)

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
        d = spec_dataset(self, 0)
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
                **({"sharpness": [SHARPNESS_EXAMPLES, SHARPNESS_K, SHARPNESS_PROBES]} if self.sharpness else {}),
                **({"train_subset": self.train_subset} if self.train_subset else {})}

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
                    radius=RADIUS, train_subset=self.train_subset, n_train=len(spec_dataset(self, 0).y_train))


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

    d = spec_dataset(spec, seed)
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
    momentum : float
        ``torch.optim.SGD``'s heavy-ball momentum μ (default 0).
    record_type : type
        :class:`~toymodel.netrecords.ConventionalResult`, the run's record (a class attribute).
    """

    lr: float
    weight_decay: float
    epochs: int | None = None
    label: str = ""
    momentum: float = 0.0
    record_type = ConventionalResult

    def payload(self) -> dict:
        """The JSON-able form (floats as ``repr``) for cache keys.

        Returns
        -------
        dict
        """
        return {"lr": repr(float(self.lr)), "weight_decay": repr(float(self.weight_decay)), "epochs": self.epochs,
                "label": self.label, **({"momentum": repr(float(self.momentum))} if self.momentum else {})}


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
        tensors = spec_tensors(spec, seed)
        if start is not None:
            nets.sphere.assign(nets.scale_invariant_parameters(net, tensors[0][:256])[1], start)
        if isinstance(setting, ConventionalRun):
            return nets.train_conventional(net, tensors, setting.lr, setting.weight_decay, epochs, spec.batch_size,
                                           seed=seed, momentum=setting.momentum)
        res = nets.train_on_sphere(net, tensors, setting.elr, epochs, spec.batch_size, seed=seed, radius=RADIUS)
        return _with_sharpness(spec, res, net, tensors, seed)


def train_ensemble(spec: BridgeSpec, settings, runs, threads=None, starts=None) -> list:
    """Runs of ``spec`` trained as one ensemble (:func:`toymodel.nets.train_ensemble_on_sphere` or
    :func:`~toymodel.nets.train_ensemble_conventional`): each is the run :func:`train` gives, to
    rounding, whatever else shares its ensemble.

    Parameters
    ----------
    spec : BridgeSpec
    settings : sequence of SphereRun or of ConventionalRun
        One kind, one number of epochs and (conventional) one momentum.
    runs : sequence of (int, int)
        ``(k, seed)``: the setting's index and the seed of every run.
    threads : int, optional
        The number of torch threads (default None: 1).
    starts : dict, optional
        ``{(k, seed): flat weights}`` to start from.

    Returns
    -------
    list of TrainResult or ConventionalResult
        In the order of ``runs``.
    """
    nets = _nets()
    chosen = [settings[k] for k, _ in runs]
    first = chosen[0]
    epochs = first.epochs or spec.epochs
    seeds = [int(seed) for _, seed in runs]
    with torch_settings(threads):
        models, tensors = [], []
        for (k, seed), setting in zip(runs, chosen, strict=True):
            if type(setting) is not type(first) or (setting.epochs or spec.epochs) != epochs:
                raise ValueError("an ensemble's runs must be of one kind and one number of epochs")
            net = build_model(spec, seed)
            t = spec_tensors(spec, seed)
            start = None if starts is None else starts.get((k, seed))
            if start is not None:
                nets.sphere.assign(nets.scale_invariant_parameters(net, t[0][:256])[1], start)
            models.append(net)
            tensors.append(t)
        if isinstance(first, ConventionalRun):
            if len({s.momentum for s in chosen}) != 1:
                raise ValueError("an ensemble's conventional runs must share one momentum")
            return nets.train_ensemble_conventional(models, tensors, [s.lr for s in chosen],
                                                    [s.weight_decay for s in chosen], epochs, spec.batch_size,
                                                    seeds=seeds, momentum=first.momentum)
        res = nets.train_ensemble_on_sphere(models, tensors, [s.elr for s in chosen], epochs, spec.batch_size,
                                            seeds=seeds, radius=RADIUS)
        return [_with_sharpness(spec, r, m, t, seed) for r, m, t, seed in zip(res, models, tensors, seeds, strict=True)]


def _with_sharpness(spec: BridgeSpec, res, net, tensors, seed: int):
    """``res`` with the sharpness at the network's end point when the spec asks for it."""
    if not spec.sharpness:
        return res
    s = measure_sharpness(net, tensors[0], tensors[1], seed)
    return dataclasses.replace(res, sharpness_top=s.top, sharpness_trace=s.trace, sharpness_trace_se=s.trace_se)


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
        Xtr, ytr = spec_tensors(spec, seed)[:2]
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


@dataclass(frozen=True)
class NetChunk:
    """One unit of a network sweep trained as an ensemble: the runs ``runs``, each ``(k, seed)``.

    Attributes
    ----------
    index : int
        The chunk's position in its task.
    runs : tuple of (int, int)
        The setting's index and the seed of every run of the ensemble.
    """

    index: int
    runs: tuple

    @property
    def name(self) -> str:
        """The file name of the chunk's cached records, ``runs_<index>_<first k>_<first seed>_<count>``."""
        k, seed = self.runs[0]
        return f"runs_{self.index:05d}_{k:04d}_{seed:04d}_{len(self.runs):03d}"


@dataclass(frozen=True)
class RunBatch:
    """The records of a :class:`NetChunk`'s runs, in its order (one cached file per chunk)."""

    records: list


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
    ensemble : int
        0: one run per unit (``NetUnit``, the engine "runs"); else up to this many runs per unit,
        trained as one ensemble (``NetChunk``). Part of the cache key (the engines agree to rounding).
    """

    job: str
    spec: BridgeSpec
    settings: tuple
    seeds: tuple
    threads: int = 1
    starts: dict | None = field(default=None, repr=False)
    sources: str = ""
    ensemble: int = 0

    def __post_init__(self):
        kinds = {type(s) for s in self.settings}
        if len(kinds) != 1:
            raise ValueError(f"a task's settings must be of one kind, got {sorted(k.__name__ for k in kinds)}")

    @property
    def record_type(self):
        """The type of a unit's record: that of the settings' kind, or :class:`RunBatch` for ensembles."""
        return RunBatch if self.ensemble else type(self.settings[0]).record_type

    def runs(self) -> list[tuple[int, int]]:
        """Every ``(k, seed)``, setting-major."""
        return [(k, int(s)) for k in range(len(self.settings)) for s in self.seeds]

    def units(self) -> list:
        """The units of work: every run alone (``ensemble`` 0), or ensembles of up to ``ensemble`` runs
        that share their number of epochs (and, for conventional runs, their momentum).

        Returns
        -------
        list of NetUnit or of NetChunk
        """
        if not self.ensemble:
            return [NetUnit(i, k, s) for i, (k, s) in enumerate(self.runs())]
        groups = {}
        for k, s in self.runs():
            st = self.settings[k]
            groups.setdefault((st.epochs or self.spec.epochs, getattr(st, "momentum", 0.0)), []).append((k, s))
        out = []
        for runs in groups.values():
            n = -(-len(runs) // self.ensemble)  # as few ensembles as the size allows, balanced
            size = -(-len(runs) // n)
            for i in range(0, len(runs), size):
                out.append(NetChunk(len(out), tuple(runs[i:i + size])))
        return out

    def run_unit(self, unit, threads=None):
        """One run (:func:`train`) or one ensemble (:func:`train_ensemble`), from given weights where
        ``starts`` has them.

        Parameters
        ----------
        unit : NetUnit or NetChunk
        threads : int, optional
            Ignored: the runs use the task's ``threads``, so that results never depend on the runner.

        Returns
        -------
        TrainResult, ConventionalResult or RunBatch
        """
        if isinstance(unit, NetChunk):
            return RunBatch(train_ensemble(self.spec, self.settings, unit.runs, self.threads, self.starts))
        start = None if self.starts is None else self.starts.get((unit.k, unit.seed))
        return train(self.spec, self.settings[unit.k], unit.seed, self.threads, start=start)

    def key(self) -> str:
        """Hash of everything that changes the runs (job, settings, seeds, sources, engine, the spec
        with the data's source and torch's version, the package version).

        Returns
        -------
        str
            The cache key.
        """
        return content_key({"job": self.job, "settings": [s.payload() for s in self.settings],
                            "seeds": [int(s) for s in self.seeds], "sources": self.sources,
                            "engine": f"ensemble-{self.ensemble}" if self.ensemble else "runs", **self.spec.payload()})


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
    engine : {"ensemble", "runs"}
        Train the runs of a sweep as ensembles (default: as few as keep every worker busy, at most
        ``MAX_ENSEMBLE`` runs each and what memory allows) or one at a time (the reference). The two
        agree to rounding (float64: 1e-12 over the first steps; chaotic runs then part).

    Raises
    ------
    ValueError
        If ``workers`` or ``threads`` is not an integer >= 1, ``engine`` is not one of ``ENGINES``, or
        for the reasons of :func:`toymodel.sweep.check_dask_choice`.
    """

    workers: int = 1
    scheduler: str | None = None
    dask_local: int | None = None
    threads: int = 1
    progress: bool = False
    cache_dir: Path | None = None
    engine: str = "ensemble"

    def __post_init__(self):
        object.__setattr__(self, "workers", as_int(self.workers, "workers", minimum=1))
        object.__setattr__(self, "threads", as_int(self.threads, "threads", minimum=1))
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        check_dask_choice(self.scheduler, self.dask_local)

    def task(self, job: str, spec: BridgeSpec, settings, seeds, starts=None, sources: str = "") -> NetTask:
        """The task of a sweep under this runner: with the ensemble engine, ensembles of as many runs
        as keep every worker busy (``ceil(runs / workers)``), at most ``MAX_ENSEMBLE``, and no more
        than 40% of the available memory holds (:func:`toymodel.nets.ensemble_memory`).

        Parameters
        ----------
        job : str
        spec : BridgeSpec
        settings : sequence of SphereRun or of ConventionalRun
        seeds : sequence of int
        starts : dict, optional
        sources : str, optional

        Returns
        -------
        NetTask
        """
        settings, seeds = tuple(settings), tuple(int(s) for s in seeds)
        size = 0
        if self.engine == "ensemble":
            places = self.workers if self.scheduler is None and self.dask_local is None else 2 * max(
                1, self.dask_local or 1)
            size = min(MAX_ENSEMBLE, -(-len(settings) * len(seeds) // places))
            size = _fit_in_memory(spec, settings, size)
        return NetTask(job, spec, settings, seeds, self.threads, starts, sources, size)

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
        units = task.units()
        parts = execute([task], [(0, u) for u in units], progress=self.progress, desc=desc,
                        unit="ensemble" if task.ensemble else "run", cache_dir=self.cache_dir,
                        scheduler=self.scheduler, dask_local=self.dask_local, workers=min(self.workers, len(units)),
                        stats=stats)[0]
        col = {s: j for j, s in enumerate(task.seeds)}
        runs = [[None] * len(task.seeds) for _ in task.settings]
        for u, rec in parts:
            pairs = zip(u.runs, rec.records, strict=True) if isinstance(u, NetChunk) else [((u.k, u.seed), rec)]
            for (k, seed), r in pairs:
                runs[k][col[seed]] = r
        reused = sum(len(u.runs) if isinstance(u, NetChunk) else 1 for u in stats.reused_units)
        return runs, reused

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


def _fit_in_memory(spec: BridgeSpec, settings, size: int) -> int:
    """The largest ensemble size up to ``size`` whose estimate (:func:`toymodel.nets.ensemble_memory`)
    fits in 40% of the available memory (the rest for the data, the workers and the records)."""
    nets = _nets()
    d = spec_dataset(spec, 0)
    model = build_model(spec, 0)
    conv = isinstance(settings[0], ConventionalRun)
    mom = conv and any(s.momentum for s in settings)
    epochs = max(s.epochs or spec.epochs for s in settings)
    limit = 0.4 * available_memory()
    while size > 1 and nets.ensemble_memory(model, size, spec.batch_size, epochs, d.input_shape, len(d.y_train),
                                            conventional=conv, momentum=mom).total > limit:
        size //= 2
    return max(1, size)


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
    ap.add_argument("--data", metavar="DATA", default=None,
                    help="an .npz file (X_train, y_train, X_test, y_test; images N x C x H x W or flat N x D), a "
                         "folder of IDX files (MNIST's format), or fashion-mnist (Debian's dataset-fashion-mnist, or "
                         "$TOYMODEL_DATA/fashion-mnist); default: scikit-learn's digits, split by seed")
    ap.add_argument("--train-subset", metavar="N", type=int_arg, default=None,
                    help="train on a stratified subset of N training examples, drawn by each run's seed (the test "
                         "set stays whole); for configurations too slow on CPUs")
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
    ap.add_argument("--engine", default=d.get("engine", "ensemble"),
                    help="ensemble: the runs of a sweep trained as ensembles, one batched computation each (default); "
                         "runs: one run at a time, the reference")
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
                           data=args.data, sharpness=sharpness, train_subset=args.train_subset)


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
                  cache_dir=(Path(out) / CACHE_DIRNAME) if (args.resume and out is not None) else None,
                  engine=args.engine)
