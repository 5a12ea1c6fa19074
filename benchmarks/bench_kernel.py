"""Throughput of the Numba kernel against a batched NumPy baseline of the same map.

    python benchmarks/bench_kernel.py            # full table (a few minutes)
    python benchmarks/bench_kernel.py --quick    # a smaller table

Reports ns per trajectory-step (median of repeated runs after a warm-up, time.perf_counter),
for the kernel at 1 and 2 threads and for the NumPy baseline, across the number of
trajectories, steps and groups; the cost of the Lyapunov and SGD options; peak memory; and the
cold and warm start of ``python -m toymodel.phase_diagram``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numba
import numpy as np

from toymodel import ToyProblem, simulate


# --------------------------------------------------------------------------- baseline
def numpy_baseline(alphas, elrs, theta0, steps, burn_in):
    """The same map and statistics as the default kernel, vectorised over trajectories in NumPy.

    theta0 (M, 2n) on the unit sphere. Returns (mean_loss, mean_cos, mean_angle, mean_grad,
    mean_group_elrs, final_theta). In-place operations throughout, to be a fair baseline.
    """
    a = np.asarray(alphas, dtype=float)[None, :]
    eta = np.asarray(elrs, dtype=float)[:, None]
    x = np.ascontiguousarray(theta0[:, 0::2])
    y = np.ascontiguousarray(theta0[:, 1::2])
    M = x.shape[0]
    s_loss = np.zeros(M)
    s_cos = np.zeros(M)
    s_ang = np.zeros(M)
    s_g = np.zeros(M)
    s_inv = np.zeros_like(x)
    x2 = np.empty_like(x)
    y2 = np.empty_like(x)
    inv = np.empty_like(x)
    k = np.empty_like(x)
    tmp = np.empty_like(x)
    for t in range(steps):
        np.multiply(x, x, out=x2)
        np.multiply(y, y, out=y2)
        np.add(x2, y2, out=inv)
        np.divide(1.0, inv, out=inv)
        np.multiply(inv, eta, out=k)
        k *= a
        c2 = y2 * inv
        s2 = x2 * inv
        # loss and gradient norm at theta_t
        loss = (a * s2).sum(axis=1)
        g2 = (4.0 * a * a * s2 * c2 * inv).sum(axis=1)
        # the step
        np.multiply(k, c2, out=tmp)
        tmp *= -2.0
        tmp += 1.0
        x *= tmp
        np.multiply(k, s2, out=tmp)
        tmp *= 2.0
        tmp += 1.0
        y *= tmp
        nrm = np.sqrt((x * x).sum(axis=1) + (y * y).sum(axis=1))
        x /= nrm[:, None]
        y /= nrm[:, None]
        if t >= burn_in:
            gn = np.sqrt(g2)
            s_loss += loss
            s_cos += 1.0 / nrm
            s_ang += np.arctan(eta[:, 0] * gn)
            s_g += gn
            s_inv += inv
    T = steps - burn_in
    out = np.empty_like(theta0)
    out[:, 0::2] = x
    out[:, 1::2] = y
    return s_loss / T, s_cos / T, s_ang / T, s_g / T, eta * s_inv / T, out


# ---------------------------------------------------------------------------- timing
def _median_time(fn, repeats):
    fn()  # warm-up (compilation, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench_kernel(n, M, steps, threads, repeats=3, **kw):
    p = ToyProblem(np.linspace(1.0, 4.0, n) if n > 1 else [1.0])
    elrs = np.geomspace(1e-3, 1e2, M) / p.total_alpha * 7.0
    t = _median_time(lambda: simulate(p, elrs, steps, seeds=1, burn_in=steps // 2, threads=threads, **kw), repeats)
    return 1e9 * t / (M * steps)


def bench_numpy(n, M, steps, repeats=3):
    p = ToyProblem(np.linspace(1.0, 4.0, n) if n > 1 else [1.0])
    elrs = np.geomspace(1e-3, 1e2, M) / p.total_alpha * 7.0
    th0 = p.random_points(np.random.default_rng(0), M)
    t = _median_time(lambda: numpy_baseline(p.alphas, elrs, th0, steps, steps // 2), repeats)
    return 1e9 * t / (M * steps)


def check_baseline_agrees():
    """The baseline computes the same numbers as the kernel (so the comparison is fair)."""
    p = ToyProblem([1.0, 2.0, 4.0])
    elrs = np.array([0.05, 0.2, 0.3])
    th0 = p.initial_points([0])
    th0 = np.repeat(th0, 3, axis=0)
    ml, mc, ma, mg, me, ft = numpy_baseline(p.alphas, elrs, th0, 50, 10)
    r = simulate(p, elrs, 50, seeds=[0], burn_in=10)
    ok = (np.allclose(ml, r.mean_loss[:, 0], rtol=1e-10) and np.allclose(mc, r.mean_cosine[:, 0], rtol=1e-10)
          and np.allclose(ft, r.final_theta[:, 0], atol=1e-10))
    return bool(ok)


def peak_rss_mb(M, steps=1000):
    """Peak resident memory (MB) of a fresh process: after importing and loading the kernel
    (a tiny run), and after simulating M trajectories of n = 3 with nothing recorded."""
    code = ("import resource, numpy as np; from toymodel import ToyProblem, simulate;"
            "p=ToyProblem([1.0,2.0,4.0]); simulate(p, [0.1], 10);"
            "a=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
            f"simulate(p, np.full({M}, 0.1), {steps});"
            "print(a, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    base, peak = (int(v) / 1024.0 for v in out.stdout.split())
    return base, peak


def start_times():
    """Wall time of `python -m toymodel.phase_diagram --quiet --no-plot` (small grid) with a cold
    Numba cache (fresh NUMBA_CACHE_DIR) and then warm (the same cache again)."""
    args = [sys.executable, "-m", "toymodel.phase_diagram", "--quiet", "--no-plot", "--num", "4", "--steps", "100",
            "--burn-in", "50", "--seeds", "2"]
    out = {}
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as outdir:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold", "warm"):
            t0 = time.perf_counter()
            subprocess.run(args + ["--out", outdir], env=env, check=True)
            out[label] = time.perf_counter() - t0
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller grid")
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args(argv)
    maxthr = numba.config.NUMBA_NUM_THREADS
    res = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "numba_threads": maxthr, "python": platform.python_version(), "numba": numba.__version__,
                       "numpy": np.__version__}}
    print(f"machine: {os.cpu_count()} cores, Numba {numba.__version__}, NumPy {np.__version__}, "
          f"Python {platform.python_version()}")
    print(f"baseline agrees with the kernel: {check_baseline_agrees()}")
    steps = 2000 if args.quick else 10_000

    print(f"\n== headline: n = 3, 4096 trajectories, {steps} steps, default statistics, nothing recorded")
    k1 = bench_kernel(3, 4096, steps, 1)
    k2 = bench_kernel(3, 4096, steps, min(2, maxthr))
    nb = bench_numpy(3, 4096, min(steps, 2000), repeats=2)
    print(f"  kernel 1 thread : {k1:7.2f} ns/traj-step")
    print(f"  kernel 2 threads: {k2:7.2f} ns/traj-step   (thread speed-up {k1 / k2:.2f}x)")
    print(f"  NumPy baseline  : {nb:7.2f} ns/traj-step   (kernel speed-up {nb / k2:.1f}x at 2 threads, "
          f"{nb / k1:.1f}x at 1 thread)")
    res["headline"] = dict(kernel_1=k1, kernel_2=k2, numpy=nb)

    print("\n== options (n = 3, 4096 trajectories, 2 threads)")
    ly = bench_kernel(3, 4096, steps, min(2, maxthr), lyapunov=True)
    sg = bench_kernel(3, 4096, steps, min(2, maxthr), batch_size=4, mask_prob=0.5)
    sgl = bench_kernel(3, 4096, steps, min(2, maxthr), batch_size=4, mask_prob=0.5, lyapunov=True)
    print(f"  lyapunov=True    : {ly:7.2f} ns/traj-step  ({ly / k2:.2f}x plain)")
    print(f"  SGD b=4, p=0.5   : {sg:7.2f} ns/traj-step  ({sg / k2:.2f}x GD)")
    print(f"  SGD + lyapunov   : {sgl:7.2f} ns/traj-step  ({sgl / k2:.2f}x GD)")
    res["options"] = dict(lyapunov=ly, sgd_b4=sg, sgd_b4_lyapunov=sgl)

    print("\n== scaling in trajectories (n = 3, 2 threads)")
    rows = []
    for M in ((256, 1024, 4096) if args.quick else (256, 1024, 4096, 16384, 65536)):
        v = bench_kernel(3, M, steps, min(2, maxthr))
        rows.append((M, v))
        print(f"  M = {M:6d}: {v:7.2f} ns/traj-step")
    res["scaling_trajectories"] = rows

    print("\n== scaling in steps (n = 3, 4096 trajectories, 2 threads)")
    rows = []
    for s in ((500, 2000, 8000) if args.quick else (1000, 10_000, 100_000)):
        v = bench_kernel(3, 4096, s, min(2, maxthr), repeats=2)
        rows.append((s, v))
        print(f"  steps = {s:6d}: {v:7.2f} ns/traj-step")
    res["scaling_steps"] = rows

    print("\n== scaling in groups n (2 threads; ns per trajectory-step and per group-step)")
    rows = []
    for n in ((1, 3, 30, 300) if args.quick else (1, 3, 10, 30, 100, 300, 1000)):
        M = max(256, 8192 // n)
        s = max(200, 20000 // max(1, n // 3))
        v = bench_kernel(n, M, s if not args.quick else s // 5, min(2, maxthr), repeats=2)
        vb = bench_numpy(n, M, 200, repeats=1) if n <= 300 else float("nan")
        rows.append((n, M, v, v / n, vb))
        print(f"  n = {n:5d} (M = {M:5d}): {v:9.2f} ns/traj-step = {v / n:6.2f} ns/group-step;"
              f" NumPy {vb:9.2f} ns/traj-step")
    res["scaling_groups"] = rows

    print("\n== memory (peak RSS of a fresh process, n = 3, 1000 steps, nothing recorded)")
    for M in ((10_000, 100_000, 1_000_000) if not args.quick else (10_000, 100_000)):
        base, peak = peak_rss_mb(M)
        print(f"  M = {M:8d}: {peak:8.1f} MB peak ({base:.1f} MB after import and kernel load; "
              f"+{peak - base:.1f} MB for the sweep = {1e6 * (peak - base) / M:.0f} bytes per trajectory)")
        res.setdefault("peak_rss_mb", []).append((M, base, peak))

    print("\n== start-up of python -m toymodel.phase_diagram (tiny grid)")
    st = start_times()
    print(f"  cold cache: {st['cold']:.1f} s   warm cache: {st['warm']:.1f} s")
    res["start"] = st
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
