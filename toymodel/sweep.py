"""The one chunking layer: split work into units, run them (locally or on Dask), keep finished
units for resume, and merge the results.

Every sweep in the package goes through :func:`execute`: the toy's ELR x seed sweeps (the phase
diagram, the regime maps, the Lyapunov figure), cut into chunks by :func:`plan_chunks`, and the
network sweeps of :mod:`toymodel.bridge`, one run per unit. A *task* is anything with

* ``key() -> str``: a hash of everything that changes its results (the cache key);
* ``run_unit(unit, threads=None)``: compute one unit, returning a dataclass record;
* ``record_type``: that dataclass (to load cached units);

and a *unit* anything with ``index`` and ``name`` (the file name of its cached record).

Because each trajectory performs the same floating-point operations whatever else is in its
kernel call, a chunked toy sweep is bit-identical to a single :func:`toymodel.simulate` call,
whatever the chunking, the number of Dask workers or the order in which chunks finish.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field, fields

import numpy as np

from . import _kernels
from ._cli import note, plural
from ._records import ResultCache, ResultType, content_key
from ._validate import as_alphas, as_elrs, as_int, as_seeds
from .model import ToyProblem
from .simulate import (
    NonFiniteTrajectoryWarning,
    SimulationResult,
    check_memory,
    estimate_result_bytes,
    simulate,
    simulate_conventional,
)

__all__ = ["Chunk", "SweepTask", "SweepStats", "ClassifiedSweep", "plan_chunks", "run_chunk", "merge_results",
           "concat_results", "execute", "run_sweep", "run_sweeps", "check_dask_choice", "DEFAULT_CHUNK_TRAJECTORIES"]

#: trajectories per chunk: enough blocks (of up to 64) to keep two threads busy, small enough
#: that progress and resume are fine-grained
DEFAULT_CHUNK_TRAJECTORIES = 256


@dataclass(frozen=True)
class Chunk:
    """A rectangle of the sweep grid: ELR indices [elr_start, elr_stop) x seed indices.

    Attributes
    ----------
    index : int
        The chunk's position in its plan (:func:`plan_chunks`).
    elr_start, elr_stop : int
        The ELR indices ``elr_start <= k < elr_stop``.
    seed_start, seed_stop : int
        The seed indices ``seed_start <= s < seed_stop``.
    """

    index: int
    elr_start: int
    elr_stop: int
    seed_start: int
    seed_stop: int

    @property
    def n_trajectories(self) -> int:
        """The number of (ELR, seed) pairs in the chunk."""
        return (self.elr_stop - self.elr_start) * (self.seed_stop - self.seed_start)

    @property
    def name(self) -> str:
        """The file name of the chunk's cached record, ``chunk_<index>_<elrs>x<seeds>``."""
        return (f"chunk_{self.index:06d}_{self.elr_start}-{self.elr_stop}x{self.seed_start}-{self.seed_stop}")


def plan_chunks(n_elrs: int, n_seeds: int, chunk_trajectories: int = DEFAULT_CHUNK_TRAJECTORIES) -> list[Chunk]:
    """Split an ``n_elrs x n_seeds`` grid into chunks of about ``chunk_trajectories``.

    Chunks hold whole rows of seeds when a row fits, otherwise they split the seeds too. The
    plan depends only on its arguments, so a resumed or distributed run sees the same chunks.

    Parameters
    ----------
    n_elrs, n_seeds : int
        The grid's size K x S, each >= 1.
    chunk_trajectories : int, optional
        The target number of trajectories per chunk, >= 1 (default
        :data:`DEFAULT_CHUNK_TRAJECTORIES`).

    Returns
    -------
    list of Chunk
        Indexed 0, 1, ... in plan order (ELR-major); together they cover the grid exactly once.

    Raises
    ------
    ValueError
        If ``n_elrs``, ``n_seeds`` or ``chunk_trajectories`` is not an integer >= 1.
    """
    n_elrs = as_int(n_elrs, "n_elrs", minimum=1)
    n_seeds = as_int(n_seeds, "n_seeds", minimum=1)
    target = as_int(chunk_trajectories, "chunk_trajectories", minimum=1)
    if n_seeds <= target:
        rows = max(1, target // n_seeds)
        seed_blocks = [(0, n_seeds)]
    else:
        rows = 1
        seed_blocks = [(s, min(n_seeds, s + target)) for s in range(0, n_seeds, target)]
    out = []
    for e0 in range(0, n_elrs, rows):
        for s0, s1 in seed_blocks:
            out.append(Chunk(len(out), e0, min(n_elrs, e0 + rows), s0, s1))
    return out


def run_chunk(problem: ToyProblem, elrs, seeds, chunk: Chunk, **simulate_kwargs) -> SimulationResult:
    """Simulate one chunk of the grid.

    Parameters
    ----------
    problem : ToyProblem
    elrs : array_like, shape (K,)
        The whole grid's ELRs; the chunk's slice ``elrs[chunk.elr_start:chunk.elr_stop]`` is
        simulated.
    seeds : array_like of int, shape (S,)
        The whole grid's seeds; the chunk's slice ``seeds[chunk.seed_start:chunk.seed_stop]`` is
        simulated.
    chunk : Chunk
    **simulate_kwargs
        As for :func:`simulate` (``steps`` at least). With a ``weight_decay`` keyword that is not
        None, conventional training by :func:`simulate_conventional`, ``elrs`` then being the
        learning rates.

    Returns
    -------
    SimulationResult
        The chunk's part of the grid, of shape ``(elr_stop - elr_start, seed_stop - seed_start)``.
    """
    part = np.asarray(elrs)[chunk.elr_start:chunk.elr_stop]
    seeds = np.asarray(seeds)[chunk.seed_start:chunk.seed_stop]
    wd = simulate_kwargs.pop("weight_decay", None)
    if wd is not None:
        return simulate_conventional(problem, part, wd, seeds=seeds, **simulate_kwargs)
    return simulate(problem, part, seeds=seeds, **simulate_kwargs)


def merge_results(parts, elrs, seeds) -> SimulationResult:
    """Assemble chunk results covering the whole grid into one result.

    Parameters
    ----------
    parts : iterable of (Chunk, SimulationResult)
        ``[(chunk, result), ...]``, in any order; together the chunks must cover the grid.
    elrs : array_like, shape (K,)
        The whole grid's ELRs, as the chunks were given them.
    seeds : array_like of int, shape (S,)
        The whole grid's seeds.

    Returns
    -------
    SimulationResult
        Of shape (K, S): the per-trajectory arrays assembled, ``nonfinite`` summed per ELR, and
        the fields that do not depend on the chunk (``alphas``, ``steps``, ``trace_steps``, ...)
        from the first part.

    Raises
    ------
    ValueError
        If ``parts`` is empty, a chunk's ELRs or seeds differ from the grid's at its indices, or
        the chunks do not cover the grid.
    """
    parts = list(parts)
    if not parts:
        raise ValueError("no chunks to merge")
    elrs = np.asarray(elrs, dtype=float)
    seeds = np.asarray(seeds, dtype=np.int64)
    K_, S_ = elrs.size, seeds.size
    first = parts[0][1]
    values = {}
    covered = np.zeros((K_, S_), dtype=bool)
    for f in fields(SimulationResult):
        v = getattr(first, f.name)
        if isinstance(v, np.ndarray) and f.name not in ("alphas", "elrs", "seeds", "trace_steps", "nonfinite"):
            values[f.name] = np.empty((K_, S_) + v.shape[2:], dtype=v.dtype)
    for chunk, res in parts:
        es, ss = slice(chunk.elr_start, chunk.elr_stop), slice(chunk.seed_start, chunk.seed_stop)
        if not (np.array_equal(res.elrs, elrs[es]) and np.array_equal(res.seeds, seeds[ss])):
            raise ValueError(f"chunk {chunk.index} does not match the grid")
        covered[es, ss] = True
        for name, arr in values.items():
            arr[es, ss] = getattr(res, name)
    if not covered.all():
        raise ValueError("chunks do not cover the grid")
    nonfinite = np.zeros(K_, dtype=np.int64)
    for chunk, res in parts:
        nonfinite[chunk.elr_start:chunk.elr_stop] += res.nonfinite
    rest = {f.name: getattr(first, f.name) for f in fields(SimulationResult) if f.name not in values}
    rest.update(elrs=elrs, seeds=seeds, nonfinite=nonfinite)
    return SimulationResult(**rest, **values)


def concat_results(results) -> SimulationResult:
    """Join sweeps of the same problem, options and seeds along the ELR axis, sorted by ELR.

    This joins the coarse grid and the refinement rounds of :func:`toymodel.phase_diagram.refine`.

    Parameters
    ----------
    results : iterable of SimulationResult
        Sweeps of shapes (K_i, S), with the same problem, options and seeds (the first one's are
        kept).

    Returns
    -------
    SimulationResult
        Of shape (sum of K_i, S), its ELRs in increasing order (a stable sort: equal ELRs keep
        their order).

    Raises
    ------
    ValueError
        If ``results`` is empty or their seeds differ.
    """
    results = list(results)
    if not results:
        raise ValueError("no results to join")
    elrs = np.concatenate([np.asarray(r.elrs, dtype=float) for r in results])
    parts, start = [], 0
    for i, res in enumerate(results):
        parts.append((Chunk(i, start, start + res.elrs.size, 0, res.seeds.size), res))
        start += res.elrs.size
    merged = merge_results(parts, elrs, results[0].seeds)
    order = np.argsort(elrs, kind="stable")
    per_elr = {f.name: getattr(merged, f.name)[order] for f in fields(SimulationResult)
               if isinstance(getattr(merged, f.name), np.ndarray) and f.name not in ("alphas", "seeds", "trace_steps")}
    return dataclasses.replace(merged, **per_elr)


@dataclass(frozen=True)
class SweepTask:
    """One ELR x seed grid for one problem (a row of a regime map, or a whole phase diagram).

    Build it with :meth:`make`, which validates the grid.

    Attributes
    ----------
    alphas : tuple of float
        The problem's group weights (n).
    elrs : tuple of float
        The grid's ELRs (K); the learning rates when ``options`` has a ``weight_decay``.
    seeds : tuple of int
        The grid's seeds (S).
    options : tuple of (str, object)
        The remaining :func:`simulate` keywords (``steps``, ``burn_in``, ``lyapunov``,
        ``batch_size``, ...) as ``(name, value)`` pairs, sorted by name; a ``weight_decay`` makes
        the task conventional training (:func:`run_chunk`).
    record_type : type
        :class:`SimulationResult`, the type of a chunk's record (a class attribute).
    """

    alphas: tuple
    elrs: tuple
    seeds: tuple
    options: tuple
    record_type = SimulationResult

    @classmethod
    def make(cls, alphas, elrs, seeds, **options) -> SweepTask:
        """A validated task.

        Parameters
        ----------
        alphas : array_like, shape (n,), or str
            Positive, finite group weights, or a comma-separated string such as ``"1,2,4"``.
        elrs : float or array_like, shape (K,)
            Positive, finite ELRs (learning rates for conventional training).
        seeds : int or sequence of int
            A count S (seeds ``0..S-1``) or explicit non-negative seeds.
        **options
            The remaining keywords of :func:`simulate` (``steps`` at least), or ``weight_decay``
            and those of :func:`simulate_conventional`; checked when a chunk runs.

        Returns
        -------
        SweepTask

        Raises
        ------
        ValueError
            If ``alphas``, ``elrs`` or ``seeds`` is not valid.
        """
        return cls(tuple(as_alphas(alphas).tolist()), tuple(as_elrs(elrs).tolist()), tuple(as_seeds(seeds).tolist()),
                   tuple(sorted(options.items())))

    @property
    def problem(self) -> ToyProblem:
        """The :class:`ToyProblem` of ``alphas``."""
        return ToyProblem(self.alphas)

    def chunks(self, chunk_trajectories: int = DEFAULT_CHUNK_TRAJECTORIES) -> list[Chunk]:
        """The task's units: :func:`plan_chunks` on its K x S grid.

        Parameters
        ----------
        chunk_trajectories : int, optional
            The target number of trajectories per chunk (default
            :data:`DEFAULT_CHUNK_TRAJECTORIES`).

        Returns
        -------
        list of Chunk
        """
        return plan_chunks(len(self.elrs), len(self.seeds), chunk_trajectories)

    def run_unit(self, chunk: Chunk, threads=None) -> SimulationResult:
        """Simulate one chunk of the task (:func:`run_chunk` with the task's options).

        Parameters
        ----------
        chunk : Chunk
        threads : int, optional
            Numba threads (default: Numba's setting); the results do not depend on it.

        Returns
        -------
        SimulationResult
            The chunk's part of the grid.
        """
        return run_chunk(self.problem, self.elrs, self.seeds, chunk, threads=threads, **dict(self.options))

    def estimate_bytes(self) -> int:
        """Memory that the merged result of this task needs (see :func:`estimate_result_bytes`).

        Returns
        -------
        int
            Bytes.
        """
        opts = dict(self.options)
        return estimate_result_bytes(len(self.elrs) * len(self.seeds), len(self.alphas), opts.get("steps", 1),
                                     opts.get("record_every", 0), opts.get("lyapunov", False))

    def kernel_variant(self) -> tuple[bool, bool, bool, bool]:
        """Which compiled kernel the task's chunks call.

        Returns
        -------
        tuple of bool
            ``(lyapunov, sgd, weight_decay, momentum)``: whether the options ask for Lyapunov
            exponents, mini-batch SGD (a ``batch_size``), conventional training (a ``weight_decay``)
            and momentum (a nonzero ``momentum``).
        """
        opts = dict(self.options)
        return (bool(opts.get("lyapunov", False)), opts.get("batch_size") is not None,
                opts.get("weight_decay") is not None, bool(opts.get("momentum", 0.0)))

    def estimate_unit_bytes(self, chunk: Chunk) -> int:
        """Memory that one chunk's computation needs.

        Parameters
        ----------
        chunk : Chunk

        Returns
        -------
        int
            Bytes: the chunk's share, by trajectories, of :meth:`estimate_bytes`.
        """
        return self.estimate_bytes() * chunk.n_trajectories // max(1, len(self.elrs) * len(self.seeds))

    def key(self) -> str:
        """Hash of everything that changes results (weights, exact ELRs and seeds, options, the
        package version); a cache is never reused across a change of any of them.

        Returns
        -------
        str
            The cache key: 24 hexadecimal digits of a SHA-256 hash.
        """
        return content_key({"alphas": [repr(float(a)) for a in self.alphas],
                            "elrs": [repr(float(e)) for e in self.elrs], "seeds": [int(s) for s in self.seeds],
                            "options": [[k, repr(v)] for k, v in self.options]})


@dataclass
class SweepStats:
    """What a sweep did: units in the plan, and how many came from the cache.

    Attributes
    ----------
    chunks : int
        The number of units in the plan (chunks of a toy sweep, runs of a network sweep).
    reused : int
        How many of them were loaded from the cache instead of computed.
    reused_units : list
        Those units themselves.
    """

    chunks: int = 0
    reused: int = 0
    reused_units: list = field(default_factory=list)


@dataclass(frozen=True, repr=False)
class ClassifiedSweep(ResultType):
    """A job's classified sweep: the table, the job's parameters, the merged runs and what the
    sweep did.

    The phase diagram and conventional training's sweep are both of this shape.

    Attributes
    ----------
    columns : tuple of str
        The table's column names, in order.
    table : dict of str to numpy.ndarray
        One array per column, one entry per grid value (row).
    params : dict
        The job's parameters (``alphas`` among them).
    result : SimulationResult
        The merged runs, of shape (K, S).
    sweep : SweepStats
        What the sweep did (units, and how many came from the cache).
    """

    columns: tuple
    table: dict
    params: dict
    result: SimulationResult
    sweep: SweepStats = field(default_factory=SweepStats)

    @property
    def alphas(self) -> np.ndarray:
        """The group weights, shape (n,)."""
        return np.asarray(self.params["alphas"], dtype=float)

    @property
    def elrs(self) -> np.ndarray:
        """The runs' ELRs (learning rates for conventional training), shape (K,)."""
        return self.result.elrs

    @property
    def seeds(self) -> np.ndarray:
        """The runs' seeds, shape (S,)."""
        return self.result.seeds


def execute(tasks, plan, *, threads=None, progress=False, desc: str = "sweep", unit: str = "chunk",
            cache_dir=None, scheduler=None, dask_local=None, workers: int = 1, stats: SweepStats | None = None):
    """Run the units of ``plan``; return, per task, the list of ``(unit, record)`` in plan order.

    With ``cache_dir`` every finished unit is stored there (:class:`toymodel._records.ResultCache`)
    and units already stored are loaded instead of recomputed: an interrupted sweep, run again,
    computes only what is missing and returns identical results.

    The missing units run in this process, on Dask (``scheduler`` or ``dask_local``) or in local
    worker processes (``workers``); the results are identical wherever they run.

    Parameters
    ----------
    tasks : sequence of task
        Objects with ``key()``, ``run_unit(unit, threads=None)`` and ``record_type`` (see the
        module's notes); a ``kernel_variant()`` lets a toy task announce kernel compilation.
    plan : sequence of (int, unit)
        ``[(task index, unit), ...]``; a unit has an ``index`` (unique within its task) and a
        ``name`` (its file name in the cache).
    threads : int, optional
        Passed to every ``run_unit`` (default None: the task's own default).
    progress : bool, optional
        Show a progress bar over the plan's units, and notes on stderr (default False).
    desc, unit : str, optional
        The progress bar's label and unit (default ``"sweep"`` and ``"chunk"``).
    cache_dir : str or path-like, optional
        Where finished units are kept and reused (default None: no cache).
    scheduler : str, optional
        The address of a running Dask scheduler, such as ``"tcp://127.0.0.1:8786"`` (extra
        ``toymodel[distributed]``).
    dask_local : int, optional
        The number of worker processes of a Dask ``LocalCluster`` on loopback (extra
        ``toymodel[distributed]``). At most one of ``scheduler`` and ``dask_local``.
    workers : int, optional
        Without Dask, ``workers > 1`` runs the missing units in that many spawned local processes
        (no extra needed; for units that cannot use several threads each, such as small
        networks). Default 1: in this process.
    stats : SweepStats, optional
        Filled with the number of units in the plan and of units reused from the cache.

    Returns
    -------
    list of list of (unit, record)
        ``out[i]``: the units of task ``i`` in plan order, each with its record (of the task's
        ``record_type``).

    Raises
    ------
    ValueError
        If both ``scheduler`` and ``dask_local`` are given, ``dask_local`` or ``workers`` is not an
        integer >= 1, ``scheduler`` is blank, or Dask is asked for without the extra.

    Warns
    -----
    NonFiniteTrajectoryWarning
        Once, when records count non-finite trajectories and ``progress`` is off (with
        ``progress``, a note on stderr says the same).
    """
    tasks = list(tasks)
    check_dask_choice(scheduler, dask_local)
    workers = as_int(workers, "workers", minimum=1)
    cache = ResultCache(cache_dir) if cache_dir is not None else None
    stats = stats if stats is not None else SweepStats()
    stats.chunks = len(plan)
    done = {}
    todo = []
    for ti, u in plan:
        rec = cache.load(tasks[ti].key(), u.name, tasks[ti].record_type) if cache is not None else None
        if rec is None:
            todo.append((ti, u))
        else:
            stats.reused += 1
            stats.reused_units.append(u)
            done[(ti, u.index)] = rec

    def finished(ti, u, rec):
        """Keep a finished unit's record, and store it in the cache if there is one.

        Parameters
        ----------
        ti : int
            The task's index in ``tasks``.
        u : unit
            The finished unit.
        rec : record
            Its record (of ``tasks[ti].record_type``).
        """
        if cache is not None:
            cache.save(tasks[ti].key(), u.name, rec)
        done[(ti, u.index)] = rec

    if progress and todo and scheduler is None and dask_local is None:
        variants = {tasks[ti].kernel_variant() for ti, _ in todo if hasattr(tasks[ti], "kernel_variant")}
        if any(_kernels.needs_compiling(*v) for v in variants):
            note("compiling kernels (first run on this machine: 15-45 s per kernel variant)")
    bar = _progress(len(plan), desc, progress, unit, initial=stats.reused)
    try:
        with warnings.catch_warnings():
            # reported once below, from the records, instead of once per chunk
            warnings.simplefilter("ignore", NonFiniteTrajectoryWarning)
            if scheduler is not None or dask_local is not None:
                from ._distributed import run_on_dask

                run_on_dask(tasks, todo, finished, bar, scheduler=scheduler, dask_local=dask_local,
                            threads=threads)
            elif workers > 1 and len(todo) > 1:
                _run_in_processes(tasks, todo, finished, bar, min(workers, len(todo)), threads)
            else:
                for ti, u in todo:
                    finished(ti, u, tasks[ti].run_unit(u, threads=threads))
                    bar.update(1)
    finally:
        bar.close()
    out = [[] for _ in tasks]
    for ti, u in plan:
        out[ti].append((u, done[(ti, u.index)]))
    bad = sum(int(np.sum(getattr(rec, "nonfinite", 0))) for parts in out for _, rec in parts)
    if bad:
        total = sum(getattr(u, "n_trajectories", 1) for _, u in plan)
        msg = (f"{plural(bad, 'trajectory', 'trajectories')} of {total} became non-finite; they are excluded "
               "(NaN) from the statistics and counted in the nonfinite column")
        if progress:
            note(f"{desc}: {msg}")
        else:
            warnings.warn(msg, NonFiniteTrajectoryWarning, stacklevel=2)
    return out


def _run_unit(task, unit, threads):
    return task.run_unit(unit, threads=threads)


def _ignore_sigint():  # pragma: no cover - runs in the worker processes
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_in_processes(tasks, todo, finished, bar, workers: int, threads):
    """Run ``todo`` in ``workers`` fresh (spawned) processes; ``finished`` is called in this
    process as units complete. Ctrl-C reaches only this process, which stops the workers."""
    import concurrent.futures as cf
    import multiprocessing as mp

    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                  initializer=_ignore_sigint)
    try:
        futures = {pool.submit(_run_unit, tasks[ti], u, threads): (ti, u) for ti, u in todo}
        for fut in cf.as_completed(futures):
            ti, u = futures[fut]
            finished(ti, u, fut.result())
            bar.update(1)
    except BaseException:
        # stop at once: cancel what has not started and end the running workers (a finished unit
        # is already in the cache)
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
        raise
    finally:
        pool.shutdown(wait=True)


def run_sweeps(tasks, *, threads=None, progress=False, chunk_trajectories: int = DEFAULT_CHUNK_TRAJECTORIES,
               desc: str = "sweep", cache_dir=None, scheduler=None, dask_local=None,
               stats: SweepStats | None = None) -> list[SimulationResult]:
    """Run several toy sweep tasks chunk by chunk (one progress bar over all chunks); return one
    merged :class:`SimulationResult` per task, each identical to a single ``simulate`` call.

    Before any work, the memory of the merged results is estimated and the sweep refused if it
    exceeds what this machine has (:func:`toymodel.simulate.check_memory`).

    Parameters
    ----------
    tasks : iterable of SweepTask
    threads : int, optional
        Numba threads per chunk (default: Numba's setting); the results do not depend on it.
    progress : bool, optional
        Show one progress bar over all chunks (default False).
    chunk_trajectories : int, optional
        The target number of trajectories per chunk (:func:`plan_chunks`; default
        :data:`DEFAULT_CHUNK_TRAJECTORIES`); the results do not depend on it.
    desc : str, optional
        The progress bar's label.
    cache_dir, scheduler, dask_local, stats : optional
        As in :func:`execute`.

    Returns
    -------
    list of SimulationResult
        One per task, of that task's shape (K, S).

    Raises
    ------
    ValueError
        If the merged results would not fit in memory (giving the estimate), or for the reasons
        of :func:`plan_chunks` and :func:`execute`.
    """
    tasks = list(tasks)
    check_memory(sum(t.estimate_bytes() for t in tasks), "the sweep's results")
    plan = [(ti, ch) for ti, task in enumerate(tasks) for ch in task.chunks(chunk_trajectories)]
    parts = execute(tasks, plan, threads=threads, progress=progress, desc=desc, cache_dir=cache_dir,
                    scheduler=scheduler, dask_local=dask_local, stats=stats)
    return [merge_results(parts[ti], np.asarray(t.elrs), np.asarray(t.seeds)) for ti, t in enumerate(tasks)]


def run_sweep(problem: ToyProblem, elrs, steps, *, seeds=1, burn_in=0, threads=None, progress=False,
              chunk_trajectories: int = DEFAULT_CHUNK_TRAJECTORIES, desc: str = "sweep", cache_dir=None,
              scheduler=None, dask_local=None, stats: SweepStats | None = None, **simulate_kwargs):
    """Run ``simulate`` over the ELR x seed grid chunk by chunk, with a progress bar.

    Parameters
    ----------
    problem : ToyProblem
    elrs : float or sequence of float, shape (K,)
        Positive, finite ELRs (learning rates with ``weight_decay``).
    steps : int
        Steps per trajectory, as for :func:`simulate`.
    seeds : int or sequence of int, optional
        A count S (seeds ``0..S-1``; default 1) or explicit non-negative seeds.
    burn_in : int, optional
        Steps excluded from the statistics, as for :func:`simulate` (default 0).
    threads, progress, chunk_trajectories, desc : optional
        As in :func:`run_sweeps`.
    cache_dir, scheduler, dask_local, stats : optional
        As in :func:`execute`.
    **simulate_kwargs
        The other keywords of :func:`simulate` (``lyapunov``, ``record_every``, ``batch_size``,
        ``mask_prob``), or ``weight_decay`` for conventional training by
        :func:`simulate_conventional`.

    Returns
    -------
    SimulationResult
        Of shape (K, S): the same as one ``simulate`` call on the whole grid.

    Raises
    ------
    ValueError
        If the weights, ELRs or seeds are not valid, or for the reasons of :func:`run_sweeps`.
    """
    task = SweepTask.make(problem.alphas, elrs, seeds, steps=steps, burn_in=burn_in, **simulate_kwargs)
    return run_sweeps([task], threads=threads, progress=progress, chunk_trajectories=chunk_trajectories,
                      desc=desc, cache_dir=cache_dir, scheduler=scheduler, dask_local=dask_local, stats=stats)[0]


def check_dask_choice(scheduler, dask_local) -> None:
    """Validate the choice of where to run, before any work.

    Parameters
    ----------
    scheduler : str or None
        The address of a running Dask scheduler.
    dask_local : int or None
        The number of worker processes of a local Dask cluster.

    Raises
    ------
    ValueError
        If both are given, ``dask_local`` is not an integer >= 1, ``scheduler`` is blank, or
        either is given without the optional extra ``toymodel[distributed]`` installed (the
        message names it).
    """
    if scheduler is None and dask_local is None:
        return
    if scheduler is not None and dask_local is not None:
        raise ValueError("give either scheduler or dask_local, not both")
    if dask_local is not None:
        as_int(dask_local, "dask_local", minimum=1)
    if scheduler is not None and not str(scheduler).strip():
        raise ValueError("scheduler must be an address such as tcp://127.0.0.1:8786, got ''")
    from ._distributed import import_distributed

    import_distributed()


def _progress(total: int, desc: str, enabled: bool, unit: str, initial: int = 0):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False, dynamic_ncols=True,
                initial=initial)
