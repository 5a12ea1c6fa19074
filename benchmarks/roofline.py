"""A roofline for the plain kernel: its arithmetic, this CPU's throughput for that mix, and the share of it
that the kernel reaches.

    python benchmarks/roofline.py            # n = 3, 4096 trajectories, 10^4 steps, 2 threads

1. ``KERNEL_COUNTS`` counts the floating-point operations of the plain GD kernel
   (``toymodel._kernels._step_block`` with ``lyap = sgd = wd = False``), per group-step (the step's
   loop and the rescaling loop over ``i, j``) and per trajectory-step (the per-lane loops; the
   window's statistics, with the arctan's rational approximation, only on window steps).
2. :func:`mix_kernel` performs exactly that mix on independent lanes laid out as the kernel's
   (blocks of 64 lanes, ``n`` groups, the same ``prange`` over blocks) with nothing else: no
   statistics arrays, no rescaling branches, values kept in [1, 2] so that no operand is ever
   subnormal. Its time per trajectory-step is what this CPU needs for the kernel's arithmetic
   alone: the roofline.
3. The kernel's fraction of the roofline is (mix time) / (kernel time), measured interleaved.

Divisions and square roots are counted apart from multiplies and adds because they run on the
divider, at a fraction of the multiply rate: on this machine one vector division costs about as
much as ten multiplies (see ``unit_rates``).
"""

from __future__ import annotations

import argparse
import json
import time

import numba
import numpy as np
from numba import njit, prange

from toymodel import ToyProblem, simulate

#: operations of the plain GD kernel, counted from toymodel/_kernels.py (_step_block). "cmp" counts
#: compares, selects and abs (cheap, but they take issue slots).
KERNEL_COUNTS = {
    "per group-step": {
        # step loop: x2, y2, c2, s2, k (2), 2k, 2k c2, 2k s2, y(..), xn, X, nrm (2), loss, g2 (3)
        # = 17; rescale loop: xs, y (x sc), TINY ay, HUGE ay, X x factor = 5
        "mul": 22,
        # step loop: x2 + y2, d - .., d + .., nrm (2), loss, g2, SINV, SR2 = 9; rescale: XE = 1
        "add": 10,
        "div": 1,  # inv = 1 / (x2 + y2)
        "sqrt": 0,
        "cmp": 10,  # xt select; rescale: 2 abs, 3 compares, 2 selects, e > 0, and
    },
    "per trajectory-step": {  # every step: N = 1 / sqrt(sum), the cosine, the first-bad test
        "mul": 0, "add": 0, "div": 1, "sqrt": 1, "cmp": 4,
    },
    "per window trajectory-step": {
        # |grad| = sqrt(g2); arctan(eta |grad|): eta g, xr = num / den, z, P (4 mul, 4 add),
        # Q (4 mul, 5 add), z p / q, xr (..) + xr + corr + y0, x -+ 1; statistics: d, d^2, 5 sums
        "mul": 13, "add": 20, "div": 2, "sqrt": 1, "cmp": 8,
    },
}


@njit(cache=True, parallel=True)
def mix_kernel(P, U, steps, burn_in):
    """The kernel's operation mix (KERNEL_COUNTS) on P (blocks, n, 64) and U (blocks, 2, 64) in
    [1, 2]; every lane of every group is an independent chain, as in the kernel."""
    nb, n, m = P.shape
    for b in prange(nb):
        p_ = P[b]
        u_ = U[b]
        for t in range(steps):
            for i in range(n):
                for j in range(m):
                    p = p_[i, j]
                    # as in the kernel's step, short independent chains (its longest is about 8
                    # operations deep), so the CPU can overlap lanes and operations
                    r = 1.0 / (p + 1.0)                                   # 1 add, 1 div
                    a = p * r
                    b = r * r
                    c = p * p
                    d = a * b                                             # 4 mul
                    e1 = a * 0.9 + 0.1
                    e2 = b * 0.8 + 0.2
                    e3 = c * 0.1 + 0.3
                    e4 = d * 0.7 + 0.05                                   # 4 mul, 4 add
                    f1 = (e1 * e2) * 0.9
                    f2 = (e3 * e4) * 1.1
                    f3 = (e1 * e3) * 0.95
                    f4 = (e2 * e4) * 1.05                                 # 8 mul
                    s = ((f1 * f2) + (f3 * f4)) + ((f1 * f3) + (f2 * f4))  # 4 mul, 3 add
                    q = 0.75 + (0.25 + 0.5 * (s * 0.99))                  # 2 mul, 2 add
                    q = q if q < 2.0 else 1.5                 # cmp, select
                    p_[i, j] = q if q > 1.0 else 1.25         # cmp, select
            for j in range(m):
                u = u_[0, j]
                v = 1.0 / np.sqrt(u)                          # 1 sqrt, 1 div
                u_[0, j] = 1.0 + v if v < 1.0 else 1.5        # (the add is the cmp's slot)
            if t >= burn_in:
                for j in range(m):
                    w = u_[1, j]
                    g = np.sqrt(w)                            # 1 sqrt
                    x = g * 0.7                               # 1 mul
                    xr = (x - 1.0) / (x + 1.0)                # 2 add, 1 div
                    z = xr * xr                               # 1 mul
                    pp = (((-0.875 * z - 16.1) * z - 75.0) * z - 122.8) * z - 64.8   # 4 mul, 4 add
                    qq = ((((z + 24.8) * z + 165.0) * z + 432.9) * z + 485.4) * z + 194.5  # 4 mul, 5 add
                    y = 0.785 + ((xr * (z * pp / qq) + xr) + 6e-17)  # 2 mul, 1 div, 3 add
                    d = y - 0.5                               # 1 add
                    s = ((d + d * d) + y) + (g + x)           # 1 mul, 4 add
                    s = (s + 1.0) + (s + 2.0)                 # 3 add (sums of the statistics)
                    u_[1, j] = 1.0 + (s - np.floor(s)) if s > 0.0 else 1.5


def kernel_ns(K, steps, threads, n=3):
    p = ToyProblem(np.linspace(1.0, 4.0, n))
    elrs = np.geomspace(1e-3, 1e2, K) / p.total_alpha * 7.0

    def run():
        simulate(p, elrs, steps, seeds=1, burn_in=steps // 2, threads=threads)
    return run


def mix_ns(K, steps, threads, n=3):
    nb = K // 64
    rng = np.random.default_rng(0)
    P = 1.0 + rng.random((nb, n, 64))
    U = 1.0 + rng.random((nb, 2, 64))

    def run():
        numba.set_num_threads(threads)
        mix_kernel(P, U, steps, steps // 2)
    return run


@njit(cache=True, parallel=True)
def _rate_loop(A, steps, kind):
    nb, m = A.shape
    for b in prange(nb):
        a = A[b]
        for _ in range(steps):
            for j in range(m):
                x = a[j]
                if kind == 0:    # 8 mul + 8 add
                    y = ((((((((x * 0.9 + 0.1) * 0.9 + 0.1) * 0.9 + 0.1) * 0.9 + 0.1) * 0.9 + 0.1) * 0.9 + 0.1)
                           * 0.9 + 0.1) * 0.9 + 0.1)
                elif kind == 1:  # 1 div
                    y = 1.0 / x + 0.5
                else:            # 1 sqrt
                    y = np.sqrt(x) + 0.25
                a[j] = y


def unit_rates(threads, lanes=4096, steps=20000):
    """ns per lane-operation of a multiply-add pair, a division and a square root (with an add
    each), vectorised over independent lanes."""
    A = 1.0 + np.random.default_rng(1).random((lanes // 64, 64))
    out = {}
    for kind, name, ops in ((0, "mul+add", 8), (1, "div", 1), (2, "sqrt", 1)):
        numba.set_num_threads(threads)
        _rate_loop(A, 10, kind)
        t0 = time.perf_counter()
        _rate_loop(A, steps, kind)
        out[name] = 1e9 * (time.perf_counter() - t0) / (lanes * steps * ops)
    return out


def measure(K=4096, steps=10_000, threads=2, rounds=5):
    runs = {"kernel": kernel_ns(K, steps, threads), "mix": mix_ns(K, steps, threads)}
    for fn in runs.values():
        fn()
    times = {k: [] for k in runs}
    for _ in range(rounds):
        for k, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(1e9 * (time.perf_counter() - t0) / (K * steps))
    frac = float(np.median(np.asarray(times["mix"]) / np.asarray(times["kernel"])))
    return {k: {"median_ns": float(np.median(v)), "min_ns": float(np.min(v))} for k, v in times.items()} | {
        "fraction_of_roofline": frac}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trajectories", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=min(2, numba.config.NUMBA_NUM_THREADS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args(argv)
    n = 3
    c = KERNEL_COUNTS
    per_traj = {k: n * c["per group-step"][k] + c["per trajectory-step"][k] + 0.5 * c["per window trajectory-step"][k]
                for k in c["per group-step"]}
    print("operations of the plain kernel (n = 3, window = second half):")
    for k, v in c.items():
        print(f"  {k:28s} " + ", ".join(f"{op} {cnt}" for op, cnt in v.items()))
    print("  per trajectory-step (mean)  " + ", ".join(f"{op} {cnt:g}" for op, cnt in per_traj.items()))
    rates = unit_rates(args.threads)
    print(f"unit rates ({args.threads} threads, ns per lane-op): "
          + ", ".join(f"{k} {v:.3f}" for k, v in rates.items()))
    res = measure(args.trajectories, args.steps, args.threads, args.rounds)
    # the same limit from the unit rates, operations not overlapping across units (cmp not counted)
    bound = (0.5 * (per_traj["mul"] + per_traj["add"]) * rates["mul+add"] + per_traj["div"] * rates["div"]
             + per_traj["sqrt"] * rates["sqrt"])
    res["unit_rate_bound_ns"] = bound
    res["fraction_of_unit_rate_bound"] = bound / res["kernel"]["median_ns"]
    print(f"n = 3, K = {args.trajectories}, T = {args.steps}, {args.threads} threads, {args.rounds} interleaved rounds")
    print(f"  kernel       : {res['kernel']['median_ns']:.2f} ns/traj-step (min {res['kernel']['min_ns']:.2f})")
    print(f"  roofline mix : {res['mix']['median_ns']:.2f} ns/traj-step (min {res['mix']['min_ns']:.2f})")
    print(f"  fraction of the roofline reached by the kernel: {res['fraction_of_roofline']:.0%}")
    print(f"  unit-rate bound: {bound:.2f} ns/traj-step (the counts at the unit rates, added): "
          f"{res['fraction_of_unit_rate_bound']:.0%} of it")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"counts": c, "per_trajectory_step": per_traj, "unit_rates": rates, **res}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
