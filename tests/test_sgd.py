"""Mini-batch SGD: the stochastic map, its derived threshold, and agreement with simulation."""

import numpy as np
import pytest
import sympy as sp

from toymodel import ToyProblem, simulate
from toymodel import theory as T
from toymodel._kernels import uniform_hash
from toymodel.simulate import sgd_keys, sgd_tables


def test_sgd_threshold_reduces_to_gd():
    a = [1.0, 2.0, 4.0]
    assert T.sgd_threshold_elr(a, None, 1.0) == T.threshold_elr(a)
    assert T.sgd_threshold_elr(a, 7, 1.0) == T.threshold_elr(a)
    # the generic root finder, not the shortcut: p = 1 has A = 1 surely, so k* = 1 (root to 1e-12)
    assert T.sgd_stability_edge(7, 1.0) == pytest.approx(1.0, abs=1e-12)
    # b -> oo: k* -> 1, and the large-b expansion 1 + (1-p)/(bp) is right to O(1/b^2)
    for b in (10**3, 10**5):
        ks = T.sgd_stability_edge(b, 0.5)
        assert abs(ks - 1) < 2.0 / b
        assert ks == pytest.approx(1 + 0.5 / (b * 0.5), abs=10.0 / b**2)


def test_sgd_threshold_closed_forms_from_sympy():
    d = T.derive_sgd_threshold().results
    b, p = sp.symbols("b p", positive=True)
    assert sp.simplify(d["k_b1"] - p) == 0
    assert d["k_p1"] == 1
    assert sp.simplify(d["k_large"] - (1 + (1 - p) / (b * p))) == 0
    assert d["EA"] == 1
    # b = 1: k* = p exactly (root finder against the closed form, 1e-12)
    for pp in (0.1, 0.5, 0.9):
        assert T.sgd_stability_edge(1, pp) == pytest.approx(pp, abs=1e-12)


def test_threshold_factorises_into_alpha_part_and_noise_part():
    rng = np.random.default_rng(4)
    for _ in range(3):
        a = rng.uniform(0.2, 5, rng.integers(1, 6))
        for b, p in ((1, 0.5), (4, 0.5), (16, 0.25)):
            assert T.sgd_threshold_elr(a, b, p) * a.sum() == pytest.approx(T.sgd_stability_edge(b, p), rel=1e-15)


CASES = [(1, 0.5), (4, 0.5), (16, 0.25)]


@pytest.mark.parametrize("alphas", [(1.0, 2.0, 4.0), tuple(np.round(np.random.default_rng(9).uniform(0.3, 3.0, 3), 3))])
@pytest.mark.parametrize("b, p", CASES)
def test_sgd_threshold_matches_simulation(alphas, b, p):
    prob = ToyProblem(alphas)
    thr = T.sgd_threshold_elr(alphas, b, p)
    A = prob.total_alpha
    res = simulate(prob, [0.9 * thr, 1.1 * thr], 100_000, seeds=16, burn_in=99_000, batch_size=b, mask_prob=p)
    assert res.nonfinite.tolist() == [0, 0]
    # 0.9x: every seed at the minimum (the whole last 1000 steps below 1e-12 * A)
    assert np.all(res.max_loss[0] < 1e-12 * A)
    # 1.1x: no seed converges; the noisy equilibrium keeps a time-averaged loss far above 0
    # (measured 1e-3 .. 1e-1 of A; a dip below 1e-12 at single steps is possible, its mean is not)
    assert np.all(res.mean_loss[1] > 1e-6 * A)


# the Lyapunov variant of SGD is compiled in the slow tests only (tests/conftest.py)
@pytest.mark.parametrize("lyap", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_sgd_with_p_one_is_gd_bit_for_bit(lyap):
    prob = ToyProblem([1.0, 2.0, 4.0])
    elrs = np.geomspace(0.02, 2, 11)
    g = simulate(prob, elrs, 3000, seeds=3, burn_in=1000, record_every=7, lyapunov=lyap)
    s = simulate(prob, elrs, 3000, seeds=3, burn_in=1000, record_every=7, lyapunov=lyap, batch_size=5,
                 mask_prob=1.0)
    for name in ("mean_loss", "std_loss", "min_loss", "max_loss", "mean_cosine", "mean_angle",
                 "mean_eff_grad_norm", "final_theta", "mean_group_elrs", "loss_trace", "group_elr_trace",
                 "lyapunov"):
        x, y = getattr(g, name), getattr(s, name)
        assert (x is None and y is None) or np.array_equal(x, y, equal_nan=True), name


def test_sgd_results_do_not_depend_on_threads_or_on_the_rest_of_the_sweep():
    import numba

    prob = ToyProblem([1.0, 2.0, 4.0])
    elrs = np.geomspace(0.02, 0.5, 13)
    kw = dict(burn_in=500, batch_size=4, mask_prob=0.5, record_every=50)
    r1 = simulate(prob, elrs, 3000, seeds=[0, 1, 2], threads=1, **kw)
    r2 = simulate(prob, elrs, 3000, seeds=[0, 1, 2], threads=min(2, numba.config.NUMBA_NUM_THREADS), **kw)
    assert np.array_equal(r1.final_theta, r2.final_theta, equal_nan=True)
    assert np.array_equal(r1.loss_trace, r2.loss_trace, equal_nan=True)
    big = simulate(prob, np.concatenate([[0.3], elrs]), 3000, seeds=[5, 0, 1, 2, 7], **kw)
    assert np.array_equal(big.final_theta[1:, 1:4], r1.final_theta, equal_nan=True)
    # reproducible for a seed, and different seeds get different noise
    again = simulate(prob, elrs, 3000, seeds=[0, 1, 2], **kw)
    assert np.array_equal(again.mean_loss, r1.mean_loss, equal_nan=True)
    k = sgd_keys([0, 1, 2])
    assert len(set(k.tolist())) == 3


def test_batch_counts_follow_the_binomial_law():
    """The kernel's hashed uniforms are uniform, and the inverse-CDF count is Binomial(b, p)."""
    from scipy.stats import binom, chisquare

    key = sgd_keys([11])[0]
    N = 60_000
    u = np.array([uniform_hash(key, np.uint64(c)) for c in range(N)])
    assert 0.0 <= u.min() and u.max() < 1.0
    # uniformity: chi-square over 20 bins at the 1e-4 level
    assert chisquare(np.histogram(u, bins=20, range=(0, 1))[0]).pvalue > 1e-4
    for b, p in CASES:
        cdf, coef, mlo, mhi = sgd_tables(b, p)
        counts = mlo + np.sum(u[:, None] >= cdf[None, mlo:mhi], axis=1)
        obs = np.bincount(counts, minlength=b + 1)
        exp = binom.pmf(np.arange(b + 1), b, p) * N
        keep = exp > 5
        obs_k = np.append(obs[keep], obs[~keep].sum())
        exp_k = np.append(exp[keep], exp[~keep].sum())
        if exp_k[-1] == 0:
            obs_k, exp_k = obs_k[:-1], exp_k[:-1]
        assert chisquare(obs_k, exp_k * obs_k.sum() / exp_k.sum()).pvalue > 1e-4, (b, p)
        assert coef[b] == 1.0 / p and coef[0] == 0.0


@pytest.mark.parametrize("kwargs, match", [(dict(batch_size=0), "batch_size"), (dict(batch_size=2.5), "batch_size"),
                                           (dict(batch_size=4, mask_prob=0.0), "mask_prob"),
                                           (dict(batch_size=4, mask_prob=1.5), "mask_prob"),
                                           (dict(mask_prob=0.5), "mask_prob")])
def test_sgd_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate(ToyProblem([1.0, 2.0]), [0.1], 10, **kwargs)
