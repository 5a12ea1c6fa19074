"""The one chunking layer: split an ELR x seed sweep into chunks, run them, merge the results.

Every sweep in the package (the phase diagram, the regime maps, the local runner, the resume
cache and the distributed runner) goes through :func:`plan_chunks` and :func:`merge_results`.
Because each trajectory performs the same floating-point operations whatever else is in its
kernel call, a chunked sweep is bit-identical to a single :func:`toymodel.simulate` call.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from ._io import load_record, save_record
from ._validate import as_int
from .model import ToyProblem
from .simulate import SimulationResult, simulate

__all__ = ["Chunk", "SweepTask", "ChunkCache", "SweepStats", "plan_chunks", "run_chunk", "merge_results",
           "run_sweep", "run_sweeps", "check_dask_choice", "DEFAULT_CHUNK_TRAJECTORIES"]

#: trajectories per chunk: enough blocks (of up to 64) to keep two threads busy, small enough
#: that progress and resume are fine-grained
DEFAULT_CHUNK_TRAJECTORIES = 256


@dataclass(frozen=True)
class Chunk:
    """A rectangle of the sweep grid: ELR indices [elr_start, elr_stop) x seed indices."""

    index: int
    elr_start: int
    elr_stop: int
    seed_start: int
    seed_stop: int

    @property
    def n_trajectories(self) -> int:
        return (self.elr_stop - self.elr_start) * (self.seed_stop - self.seed_start)


def plan_chunks(n_elrs: int, n_seeds: int, chunk_trajectories: int = DEFAULT_CHUNK_TRAJECTORIES) -> list[Chunk]:
    """Split an ``n_elrs x n_seeds`` grid into chunks of about ``chunk_trajectories``.

    Chunks hold whole rows of seeds when a row fits, otherwise they split the seeds too. The
    plan depends only on its arguments, so a resumed or distributed run sees the same chunks.
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
    """Simulate one chunk of the grid (``simulate_kwargs`` as for :func:`simulate`)."""
    return simulate(problem, np.asarray(elrs)[chunk.elr_start:chunk.elr_stop], seeds=np.asarray(seeds)[chunk.seed_start:chunk.seed_stop],
                    **simulate_kwargs)


def merge_results(parts, elrs, seeds) -> SimulationResult:
    """Assemble chunk results ``[(chunk, result), ...]`` covering the whole grid into one result."""
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


@dataclass(frozen=True)
class SweepTask:
    """One ELR x seed grid for one problem (a row of a regime map, or a whole phase diagram).

    ``options`` holds the remaining :func:`simulate` keywords (``steps``, ``burn_in``,
    ``lyapunov``, ``batch_size``, ...) as a tuple of ``(name, value)`` pairs.
    """

    alphas: tuple
    elrs: tuple
    seeds: tuple
    options: tuple

    @classmethod
    def make(cls, alphas, elrs, seeds, **options) -> "SweepTask":
        from ._validate import as_alphas, as_elrs, as_seeds

        return cls(tuple(as_alphas(alphas).tolist()), tuple(as_elrs(elrs).tolist()), tuple(as_seeds(seeds).tolist()),
                   tuple(sorted(options.items())))

    @property
    def problem(self) -> ToyProblem:
        return ToyProblem(self.alphas)

    def chunks(self, chunk_trajectories: int = DEFAULT_CHUNK_TRAJECTORIES) -> list[Chunk]:
        return plan_chunks(len(self.elrs), len(self.seeds), chunk_trajectories)

    def run_chunk(self, chunk: Chunk, threads=None) -> SimulationResult:
        return run_chunk(self.problem, self.elrs, self.seeds, chunk, threads=threads, **dict(self.options))

    def key(self) -> str:
        """Hash of everything that changes results (weights, exact ELRs and seeds, options, the
        package version); a cache is never reused across a change of any of them."""
        from . import __version__

        blob = json.dumps({"alphas": [repr(float(a)) for a in self.alphas], "elrs": [repr(float(e)) for e in self.elrs],
                           "seeds": [int(s) for s in self.seeds], "options": [[k, repr(v)] for k, v in self.options],
                           "version": __version__}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


# ----------------------------------------------------------------------- chunk cache
class ChunkCache:
    """Finished chunks of sweeps on disk, so an interrupted sweep recomputes only what is missing.

    Layout: ``<directory>/<task key>/chunk_<index>_<chunking>.npz``, each written atomically.
    """

    def __init__(self, directory):
        self.directory = Path(directory)

    def _path(self, task: SweepTask, chunk: Chunk) -> Path:
        tag = f"{chunk.elr_start}-{chunk.elr_stop}x{chunk.seed_start}-{chunk.seed_stop}"
        return self.directory / task.key() / f"chunk_{chunk.index:06d}_{tag}.npz"

    def load(self, task: SweepTask, chunk: Chunk) -> SimulationResult | None:
        """The stored chunk, or None if missing or unreadable (then it is recomputed)."""
        return load_record(self._path(task, chunk), SimulationResult)

    def save(self, task: SweepTask, chunk: Chunk, res: SimulationResult) -> None:
        save_record(self._path(task, chunk), res)


@dataclass
class SweepStats:
    """What a sweep did: chunks in the plan, and how many came from the cache."""

    chunks: int = 0
    reused: int = 0


def run_sweeps(tasks, *, threads=None, progress=False, chunk_trajectories: int = DEFAULT_CHUNK_TRAJECTORIES,
               desc: str = "sweep", cache_dir=None, scheduler=None, dask_local=None,
               stats: SweepStats | None = None) -> list[SimulationResult]:
    """Run several sweep tasks chunk by chunk (one progress bar over all chunks); return one
    merged :class:`SimulationResult` per task, each identical to a single ``simulate`` call.

    With ``cache_dir`` every finished chunk is stored there (:class:`ChunkCache`) and chunks
    already stored are loaded instead of recomputed: an interrupted sweep, run again, computes
    only what is missing and returns identical results. ``stats`` (optional) is filled with
    the number of chunks and of reused chunks.

    ``scheduler`` (an address such as ``"tcp://127.0.0.1:8786"``) or ``dask_local`` (a number
    of worker processes for a ``LocalCluster`` on loopback) run the missing chunks on Dask
    (extra ``toymodel[distributed]``); results are identical to a local run, whatever the
    number of workers or the order in which chunks finish.
    """
    tasks = list(tasks)
    check_dask_choice(scheduler, dask_local)
    plan = [(ti, ch) for ti, task in enumerate(tasks) for ch in task.chunks(chunk_trajectories)]
    cache = ChunkCache(cache_dir) if cache_dir is not None else None
    stats = stats if stats is not None else SweepStats()
    stats.chunks = len(plan)
    parts = [[] for _ in tasks]
    todo = []
    for ti, ch in plan:
        res = cache.load(tasks[ti], ch) if cache is not None else None
        if res is None:
            todo.append((ti, ch))
        else:
            stats.reused += 1
            parts[ti].append((ch, res))

    def finished(ti, ch, res):
        if cache is not None:
            cache.save(tasks[ti], ch, res)
        parts[ti].append((ch, res))

    bar = _progress(len(plan), desc, progress, initial=stats.reused)
    try:
        if scheduler is not None or dask_local is not None:
            from ._distributed import run_on_dask

            run_on_dask(tasks, todo, finished, bar, scheduler=scheduler, dask_local=dask_local, threads=threads)
        else:
            for ti, ch in todo:
                finished(ti, ch, tasks[ti].run_chunk(ch, threads=threads))
                bar.update(1)
    finally:
        bar.close()
    return [merge_results(parts[ti], np.asarray(t.elrs), np.asarray(t.seeds)) for ti, t in enumerate(tasks)]


def run_sweep(problem: ToyProblem, elrs, steps, *, seeds=1, burn_in=0, threads=None, progress=False,
              chunk_trajectories: int = DEFAULT_CHUNK_TRAJECTORIES, desc: str = "sweep", cache_dir=None,
              scheduler=None, dask_local=None, stats: SweepStats | None = None, **simulate_kwargs):
    """Run ``simulate`` over the ELR x seed grid chunk by chunk, with a progress bar.

    Returns the same :class:`SimulationResult` as one ``simulate`` call on the whole grid.
    ``cache_dir``, ``scheduler``, ``dask_local`` and ``stats`` as in :func:`run_sweeps`.
    """
    task = SweepTask.make(problem.alphas, elrs, seeds, steps=steps, burn_in=burn_in, **simulate_kwargs)
    return run_sweeps([task], threads=threads, progress=progress, chunk_trajectories=chunk_trajectories,
                      desc=desc, cache_dir=cache_dir, scheduler=scheduler, dask_local=dask_local, stats=stats)[0]


def check_dask_choice(scheduler, dask_local) -> None:
    """Validate the choice of where to run before any work: at most one of the two, a worker
    count >= 1, and the optional extra installed (else one clear ValueError naming it)."""
    if scheduler is None and dask_local is None:
        return
    if scheduler is not None and dask_local is not None:
        raise ValueError("give either scheduler or dask_local, not both")
    if dask_local is not None:
        as_int(dask_local, "dask_local", minimum=1)
    if scheduler is not None and not str(scheduler).strip():
        raise ValueError("scheduler must be an address such as tcp://127.0.0.1:8786, got ''")
    from ._distributed import _import

    _import()


def _progress(total: int, desc: str, enabled: bool, initial: int = 0):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="chunk", disable=not enabled, leave=False, dynamic_ncols=True,
                initial=initial)
