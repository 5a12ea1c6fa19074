"""The JAX peer: what an ML researcher would write instead of our kernel, and how it compares.

    pip install -e '.[bench]' && python benchmarks/bench_jax.py [--quick]

The same map and default statistics as the plain GD kernel (mean loss, cosine, angle and effective
gradient norm, and the mean group ELRs after the burn-in; the final point), written as a good JAX
user would: float64, ``jax.jit`` around ``lax.scan`` over the steps, vectorised over trajectories.
Both layouts are tried, trajectories outermost (M, n) and innermost (n, M), and the faster is
reported. ``check_agrees`` compares its statistics with ``toymodel.simulate``. Timings are
medians of interleaved repeats (kernel, then JAX, alternately) after a warm-up that includes
JAX's compilation; ns per trajectory-step and the ratio to the kernel in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from toymodel import ToyProblem, simulate

jax.config.update("jax_enable_x64", True)


def make_peer(steps: int, burn_in: int, innermost: bool):
    """A jitted function (alphas (n,), elrs (M,), x0, y0) -> statistics, for one layout:
    ``innermost=True`` holds the state as (n, M) (trajectories innermost), else (M, n)."""
    ax = 0 if innermost else 1  # the group axis

    def run(alphas, elrs, x0, y0):
        a = alphas[:, None] if innermost else alphas[None, :]
        eta = elrs[None, :] if innermost else elrs[:, None]

        def step(carry, t):
            x, y, s_loss, s_cos, s_ang, s_g, s_inv = carry
            x2, y2 = x * x, y * y
            inv = 1.0 / (x2 + y2)
            k = eta * a * inv
            c2, s2 = y2 * inv, x2 * inv
            loss = jnp.sum(a * s2, axis=ax)
            g2 = jnp.sum(4.0 * a * a * s2 * c2 * inv, axis=ax)
            x = x * (1.0 - 2.0 * k * c2)
            y = y * (1.0 + 2.0 * k * s2)
            nrm = jnp.sqrt(jnp.sum(x * x, axis=ax) + jnp.sum(y * y, axis=ax))
            nb = nrm[None, :] if innermost else nrm[:, None]
            x, y = x / nb, y / nb
            on = (t >= burn_in).astype(x.dtype)
            gn = jnp.sqrt(g2)
            e1 = eta[0] if innermost else eta[:, 0]
            return (x, y, s_loss + on * loss, s_cos + on / nrm, s_ang + on * jnp.arctan(e1 * gn), s_g + on * gn,
                    s_inv + on * inv), None

        M = elrs.shape[0]
        z = jnp.zeros(M, dtype=x0.dtype)
        init = (x0, y0, z, z, z, z, jnp.zeros_like(x0))
        (x, y, s_loss, s_cos, s_ang, s_g, s_inv), _ = lax.scan(step, init, jnp.arange(steps))
        T = steps - burn_in
        return s_loss / T, s_cos / T, s_ang / T, s_g / T, eta * s_inv / T, x, y

    return jax.jit(run)


def run_peer(alphas, elrs, theta0, steps, burn_in, innermost: bool):
    """The peer's statistics as NumPy arrays (mean_loss, mean_cos, mean_angle, mean_g, mean group
    ELRs (M, n), final theta (M, 2n)) for ``theta0`` (M, 2n) on the unit sphere."""
    fn = make_peer(steps, burn_in, innermost)
    x0, y0 = theta0[:, 0::2], theta0[:, 1::2]
    if innermost:
        x0, y0 = x0.T, y0.T
    out = fn(jnp.asarray(alphas), jnp.asarray(elrs), jnp.asarray(x0), jnp.asarray(y0))
    ml, mc, ma, mg, me, x, y = (np.asarray(v) for v in out)
    if innermost:
        me, x, y = me.T, x.T, y.T
    th = np.empty_like(theta0)
    th[:, 0::2], th[:, 1::2] = x, y
    return ml, mc, ma, mg, me, th


def check_agrees(innermost: bool, steps: int = 60, burn_in: int = 10) -> float:
    """Largest relative difference between the peer's statistics and the kernel's (both float64,
    the same operations up to association: rounding level). Non-chaotic ELRs (c = 0.35 to 1.26), so
    that the two roundings do not separate the trajectories."""
    p = ToyProblem([1.0, 2.0, 4.0])
    elrs = np.array([0.05, 0.1, 0.13, 0.18])
    th0 = np.repeat(p.initial_points([0]), elrs.size, axis=0)
    ml, mc, ma, mg, me, ft = run_peer(p.alphas, elrs, th0, steps, burn_in, innermost)
    r = simulate(p, elrs, steps, seeds=[0], burn_in=burn_in)
    pairs = [(ml, r.mean_loss[:, 0]), (mc, r.mean_cosine[:, 0]), (ma, r.mean_angle[:, 0]),
             (mg, r.mean_eff_grad_norm[:, 0]), (me, r.mean_group_elrs[:, 0])]
    return float(max(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)) for a, b in pairs))


def _time(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compare(M: int, steps: int, n: int = 3, repeats: int = 5, layouts=("outermost", "innermost")) -> dict:
    """ns per trajectory-step of the kernel (all threads) and of the peer in the given layouts
    (default both), interleaved, medians over ``repeats`` after a warm-up."""
    p = ToyProblem(np.linspace(1.0, 4.0, n))
    elrs = np.geomspace(1e-3, 1e2, M) / p.total_alpha * 7.0
    th0 = p.random_points(np.random.default_rng(0), M)
    burn = steps // 2
    x0, y0 = th0[:, 0::2], th0[:, 1::2]
    peers = {}
    for inner in (False, True):
        if ("innermost" if inner else "outermost") not in layouts:
            continue
        fn = make_peer(steps, burn, inner)
        args = (jnp.asarray(p.alphas), jnp.asarray(elrs), jnp.asarray(x0.T if inner else x0),
                jnp.asarray(y0.T if inner else y0))
        peers["innermost" if inner else "outermost"] = (fn, args)
        jax.block_until_ready(fn(*args))  # compile

    def kernel():
        simulate(p, elrs, steps, seeds=[0], burn_in=burn)

    kernel()
    times = {"kernel": [], **{f"jax_{name}": [] for name in peers}}
    for _ in range(repeats):
        times["kernel"].append(_time(kernel))
        for name, (fn, args) in peers.items():
            times[f"jax_{name}"].append(_time(lambda fn=fn, args=args: jax.block_until_ready(fn(*args))))
    ns = {k: 1e9 * float(np.median(v)) / (M * steps) for k, v in times.items()}
    best = min((k for k in ns if k.startswith("jax_")), key=ns.get)
    return {"M": M, "steps": steps, "n": n, "ns_per_traj_step": ns, "jax_best_layout": best,
            "jax_over_kernel": ns[best] / ns["kernel"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="The toy map in JAX against the Numba kernel.")
    ap.add_argument("--quick", action="store_true", help="K = 4096, T = 10^4 only")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    res = {"jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
           "agreement": {lay: check_agrees(lay == "innermost") for lay in ("outermost", "innermost")}, "runs": []}
    print(f"JAX {jax.__version__}; largest relative difference from the kernel's statistics: "
          + ", ".join(f"{k} {v:.1e}" for k, v in res["agreement"].items()))
    sizes = [(4096, 10_000)] if args.quick else [(4096, 10_000), (65536, 10_000)]
    layouts = ("outermost", "innermost")
    for M, T in sizes:
        r = compare(M, T, repeats=args.repeats, layouts=layouts)
        res["runs"].append(r)
        ns = r["ns_per_traj_step"]
        print(f"K = {M}, T = {T}, n = 3: kernel {ns['kernel']:.2f} ns, "
              + ", ".join(f"JAX {k[4:]} {v:.2f} ns" for k, v in ns.items() if k.startswith("jax_"))
              + f" per trajectory-step; kernel {r['jax_over_kernel']:.1f}x faster than the best JAX layout "
              f"({r['jax_best_layout'][4:]})", flush=True)
        # the larger size runs the faster layout only (the slower one takes minutes per call there)
        layouts = (r["jax_best_layout"][4:],)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
