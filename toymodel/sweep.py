"""The one chunking layer: split an ELR x seed sweep into chunks, run them, merge the results.

Every sweep in the package (the phase diagram, the regime maps, the local runner, the resume
cache and the distributed runner) goes through :func:`plan_chunks` and :func:`merge_results`.
Because each trajectory performs the same floating-point operations whatever else is in its
kernel call, a chunked sweep is bit-identical to a single :func:`toymodel.simulate` call.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ._validate import as_int
from .model import ToyProblem
from .simulate import SimulationResult, simulate

__all__ = ["Chunk", "SweepTask", "plan_chunks", "run_chunk", "merge_results", "run_sweep", "run_sweeps",
           "DEFAULT_CHUNK_TRAJECTORIES"]

#: trajectories per chunk: enough blocks (of up to 64) to keep two threads busy, small enough
#: that progress and resume are fine-grained
DEFAULT_CHUNK_TRAJECTORIES = 512


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


def run_sweeps(tasks, *, threads=None, progress=False, chunk_trajectories: int = DEFAULT_CHUNK_TRAJECTORIES,
               desc: str = "sweep", scheduler=None, dask_local=None) -> list[SimulationResult]:
    """Run several sweep tasks chunk by chunk (one progress bar over all chunks); return one
    merged :class:`SimulationResult` per task, each identical to a single ``simulate`` call."""
    tasks = list(tasks)
    if scheduler is not None or dask_local is not None:
        raise ValueError("distributed runs (scheduler, dask_local) are not available yet")
    plan = [(ti, ch) for ti, task in enumerate(tasks) for ch in task.chunks(chunk_trajectories)]
    parts = [[] for _ in tasks]
    bar = _progress(len(plan), desc, progress)
    try:
        for ti, ch in plan:
            parts[ti].append((ch, tasks[ti].run_chunk(ch, threads=threads)))
            bar.update(1)
    finally:
        bar.close()
    return [merge_results(parts[ti], np.asarray(t.elrs), np.asarray(t.seeds)) for ti, t in enumerate(tasks)]


def run_sweep(problem: ToyProblem, elrs, steps, *, seeds=1, burn_in=0, threads=None, progress=False,
              chunk_trajectories: int = DEFAULT_CHUNK_TRAJECTORIES, desc: str = "sweep", **simulate_kwargs):
    """Run ``simulate`` over the ELR x seed grid chunk by chunk, with a progress bar.

    Returns the same :class:`SimulationResult` as one ``simulate`` call on the whole grid.
    """
    task = SweepTask.make(problem.alphas, elrs, seeds, steps=steps, burn_in=burn_in, **simulate_kwargs)
    return run_sweeps([task], threads=threads, progress=progress, chunk_trajectories=chunk_trajectories,
                      desc=desc)[0]


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="chunk", disable=not enabled, leave=False, dynamic_ncols=True)
