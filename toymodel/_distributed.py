"""Run sweep chunks on a Dask cluster (optional extra ``toymodel[distributed]``).

The core package never imports this module unless ``scheduler`` or ``dask_local`` is given.
Chunks come from the one chunking layer (:mod:`toymodel.sweep`); every chunk carries its
ELRs and seeds, so where and when it runs cannot change its numbers. Workers import
``toymodel`` and load the compiled kernels from Numba's on-disk cache (compiling once per
machine). If a worker dies, the scheduler reschedules its chunks on the remaining workers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading

__all__ = ["EXTRA_HINT", "import_distributed", "dask_client", "run_on_dask"]

EXTRA_HINT = "distributed runs need the optional extra: pip install 'toymodel[distributed]'"


def import_distributed():
    """The ``distributed`` module, or a ValueError naming the optional extra."""
    try:
        import distributed
    except ImportError:
        raise ValueError(EXTRA_HINT) from None
    return distributed


def dask_client(scheduler=None, dask_local=None):
    """A connected ``distributed.Client`` and the ``LocalCluster`` it owns (or None).

    ``scheduler``: address of a running ``dask scheduler``; ``dask_local``: start a
    ``LocalCluster`` with that many single-threaded worker processes on 127.0.0.1.
    """
    distributed = import_distributed()
    if (scheduler is None) == (dask_local is None):
        raise ValueError("give exactly one of scheduler and dask_local")
    if scheduler is not None:
        try:
            return distributed.Client(str(scheduler), timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"cannot connect to the Dask scheduler at {scheduler!r}: {exc}") from None
    import logging

    from ._validate import as_int

    n = as_int(dask_local, "dask_local", minimum=1)
    # the worker processes inherit an ignored SIGINT, so Ctrl-C reaches only this process, which
    # shuts the cluster down itself (otherwise every worker prints its own traceback)
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                           dashboard_address=None, silence_logs=logging.CRITICAL)
    except (RuntimeError, OSError) as exc:
        raise ValueError(f"cannot start a Dask LocalCluster with {n} workers: {exc}") from None
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
    return distributed.Client(cluster), cluster


def _run_unit_remote(task, unit, threads):
    return task.run_unit(unit, threads=threads)


def _check_worker_memory(client, tasks, todo):
    """Refuse (ValueError with the estimate) a unit larger than the smallest worker's memory limit."""
    limits = [w.get("memory_limit") or 0 for w in client.scheduler_info().get("workers", {}).values()]
    limits = [m for m in limits if m > 0]
    if not limits:
        return
    need = max((tasks[ti].estimate_unit_bytes(u) for ti, u in todo if hasattr(tasks[ti], "estimate_unit_bytes")),
               default=0)
    if need > min(limits):
        raise ValueError(f"one unit of work needs about {need / 2**20:.0f} MiB, more than the Dask workers' memory "
                         f"limit of {min(limits) / 2**20:.0f} MiB; use smaller chunks")


def run_on_dask(tasks, todo, finished, bar, *, scheduler=None, dask_local=None, threads=None):
    """Submit the ``todo`` units ``[(task index, unit)]``; call ``finished(ti, unit, record)``
    as they complete (in any order) and advance ``bar``."""
    distributed = import_distributed()
    client, cluster = dask_client(scheduler, dask_local)
    try:
        if threads is None and cluster is not None:
            # one Numba thread per worker process unless asked otherwise: the workers already
            # share the cores
            threads = max(1, (os.cpu_count() or 1) // max(1, len(cluster.workers)))
        _check_worker_memory(client, tasks, todo)
        futures = {}
        for ti, u in todo:
            fut = client.submit(_run_unit_remote, tasks[ti], u, threads, pure=False,
                                key=f"toymodel-{tasks[ti].key()}-{u.name}")
            futures[fut] = (ti, u)
        for fut in distributed.as_completed(futures):
            ti, u = futures[fut]
            finished(ti, u, fut.result())
            bar.update(1)
    except KeyboardInterrupt:
        _quiet_shutdown(client, cluster)
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _quiet_shutdown(client, cluster):
    """After Ctrl-C: cancel the work and close without the logs and tracebacks of the shutdown."""
    logging.disable(logging.CRITICAL)
    try:
        with contextlib.suppress(Exception):
            client.close(timeout=5)
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close(timeout=5)
    finally:
        logging.disable(logging.NOTSET)
