"""The cost of every kernel option against the plain GD kernel, measured in one interleaved run.

    python benchmarks/bench_options.py                 # K = 4096, T = 1e4, n = 3, 2 threads
    python benchmarks/bench_options.py --json out.json

Each round times every configuration once, in a fixed order, so that load from other processes
falls on all of them alike; the table gives the median over rounds (and the minimum, the least
disturbed run) in ns per trajectory-step, and each option's ratio to the plain kernel of the same
round (median over rounds). Pieces are isolated by switching them off:

* ``stats``: the window's statistics, from a run whose window is its last step only (``burn_in =
  steps - 1``) against one whose window is its second half (the default);
* ``lyapunov``: the tangent map and the angle products;
* ``sgd``: the batch weights (hash and inverse CDF) and the batch gradient; ``sgd b=1 p=1``
  draws the same hashes but every count is 1 (no comparisons depend on the uniform);
* ``weight decay``: conventional training, with and without its window statistics.
"""

from __future__ import annotations

import argparse
import json
import time

import numba
import numpy as np

from toymodel import ToyProblem, simulate, simulate_conventional

#: weight decay of the conventional-training configurations (lr * wd <= 0.1 over the grid)
WD = 1e-3


def configurations(steps: int) -> dict:
    """name -> keyword arguments of ``run``; ``plain`` is the reference."""
    half = steps // 2
    return {
        "plain": dict(burn_in=half),
        "plain, no stats": dict(burn_in=steps - 1),
        "lyapunov": dict(burn_in=half, lyapunov=True),
        "sgd b=4 p=0.5": dict(burn_in=half, batch_size=4, mask_prob=0.5),
        "sgd b=1 p=1": dict(burn_in=half, batch_size=1, mask_prob=1.0),
        "weight decay": dict(burn_in=half, weight_decay=WD),
        "weight decay, no stats": dict(burn_in=steps - 1, weight_decay=WD),
    }


def run(problem, elrs, steps, threads, weight_decay=None, **kw):
    if weight_decay is not None:
        return simulate_conventional(problem, elrs, weight_decay, steps, seeds=1, threads=threads, **kw)
    return simulate(problem, elrs, steps, seeds=1, threads=threads, **kw)


def measure(n=3, K=4096, steps=10_000, threads=2, rounds=7, names=None) -> dict:
    """ns per trajectory-step of each configuration (median and minimum over interleaved rounds)
    and its ratio to ``plain`` (median over rounds of the same-round ratio)."""
    p = ToyProblem(np.linspace(1.0, 4.0, n))
    elrs = np.geomspace(1e-3, 1e2, K) / p.total_alpha * 7.0
    confs = configurations(steps)
    if names is not None:
        confs = {k: v for k, v in confs.items() if k in names or k == "plain"}
    for kw in confs.values():  # warm-up: compilation, first touch
        run(p, elrs, min(steps, 200), threads, **{**kw, "burn_in": min(kw["burn_in"], 100)})
    times = {name: [] for name in confs}
    for _ in range(rounds):
        for name, kw in confs.items():
            t0 = time.perf_counter()
            run(p, elrs, steps, threads, **kw)
            times[name].append(1e9 * (time.perf_counter() - t0) / (K * steps))
    base = np.asarray(times["plain"])
    return {name: {"median_ns": float(np.median(v)), "min_ns": float(np.min(v)),
                   "ratio": float(np.median(np.asarray(v) / base))} for name, v in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--trajectories", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=min(2, numba.config.NUMBA_NUM_THREADS))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args(argv)
    res = measure(args.n, args.trajectories, args.steps, args.threads, args.rounds)
    print(f"n = {args.n}, K = {args.trajectories}, T = {args.steps}, {args.threads} threads, "
          f"{args.rounds} interleaved rounds")
    print(f"  {'configuration':24s} {'median ns':>10s} {'min ns':>8s} {'x plain':>8s}")
    for name, r in res.items():
        print(f"  {name:24s} {r['median_ns']:10.2f} {r['min_ns']:8.2f} {r['ratio']:8.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"parameters": vars(args), "results": res}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
