"""Run sweep chunks on a Dask cluster (optional extra ``toymodel[distributed]``).

The core package never imports this module unless ``scheduler`` or ``dask_local`` is given.
Chunks come from the one chunking layer (:mod:`toymodel.sweep`); every chunk carries its
ELRs and seeds, so where and when it runs cannot change its numbers. Workers import
``toymodel`` and load the compiled kernels from Numba's on-disk cache (compiling once per
machine). If a worker dies, the scheduler reschedules its chunks on the remaining workers.
"""

from __future__ import annotations

import os

__all__ = ["EXTRA_HINT", "dask_client", "run_on_dask"]

EXTRA_HINT = "distributed runs need the optional extra: pip install 'toymodel[distributed]'"


def _import():
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ValueError(EXTRA_HINT) from None
    import distributed

    return distributed


def dask_client(scheduler=None, dask_local=None):
    """A connected ``distributed.Client`` and the ``LocalCluster`` it owns (or None).

    ``scheduler``: address of a running ``dask scheduler``; ``dask_local``: start a
    ``LocalCluster`` with that many single-threaded worker processes on 127.0.0.1.
    """
    distributed = _import()
    if (scheduler is None) == (dask_local is None):
        raise ValueError("give exactly one of scheduler and dask_local")
    if scheduler is not None:
        try:
            return distributed.Client(str(scheduler), timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"cannot connect to the Dask scheduler at {scheduler!r}: {exc}") from None
    from ._validate import as_int

    import logging

    n = as_int(dask_local, "dask_local", minimum=1)
    try:
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                           dashboard_address=None, silence_logs=logging.ERROR)
    except (RuntimeError, OSError) as exc:
        raise ValueError(f"cannot start a Dask LocalCluster with {n} workers: {exc}") from None
    return distributed.Client(cluster), cluster


def _run_chunk_remote(task, chunk, threads):
    return task.run_chunk(chunk, threads=threads)


def run_on_dask(tasks, todo, finished, bar, *, scheduler=None, dask_local=None, threads=None):
    """Submit the ``todo`` chunks ``[(task index, chunk)]``; call ``finished(ti, chunk, result)``
    as they complete (in any order) and advance ``bar``."""
    distributed = _import()
    client, cluster = dask_client(scheduler, dask_local)
    try:
        if threads is None and cluster is not None:
            # one Numba thread per worker process unless asked otherwise: the workers already
            # share the cores
            threads = max(1, (os.cpu_count() or 1) // max(1, len(cluster.workers)))
        futures = {}
        for ti, ch in todo:
            fut = client.submit(_run_chunk_remote, tasks[ti], ch, threads, pure=False,
                                key=f"toymodel-chunk-{tasks[ti].key()}-{ch.index}")
            futures[fut] = (ti, ch)
        for fut in distributed.as_completed(futures):
            ti, ch = futures[fut]
            finished(ti, ch, fut.result())
            bar.update(1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
