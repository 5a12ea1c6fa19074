"""regimes: the documented criteria on synthetic statistics with known answers."""

import numpy as np
import pytest

from toymodel import regimes, theory

A = np.array([1.0, 2.0, 4.0])


def _one(mean_loss, mean_cos, std_loss=0.0, first=1.0, final=None, kmax=0.5, lyap=None):
    final = mean_loss if final is None else final
    ge = np.full((1, 1, 3), kmax) / A  # alpha_i * elr_i = kmax for every group
    return regimes.classify_runs(A, [[mean_loss]], [[mean_cos]], [[std_loss]], [[first]], [[final]], ge,
                                 None if lyap is None else [[lyap]])


def test_zero_final_loss_is_convergence():
    reg, sub = _one(1e-3, 0.99, final=0.0, kmax=3.0)
    assert reg[0, 0] == "convergence" and sub[0, 0] == ""


def test_slow_convergence_at_tiny_elr_uses_the_minimum_stability_condition():
    # still far from 0, but every group is linearly stable at the final split and the loss fell
    reg, _ = _one(1.2, 1.0, first=1.3, final=1.29999, kmax=1e-9)
    assert reg[0, 0] == "convergence"
    # a loss that did not fall is not convergence, even with stable groups
    reg, _ = _one(1.2, 1.0, first=1.3, final=1.31, kmax=1e-9)
    assert reg[0, 0] == "chaotic_equilibrium"
    # one unstable group (alpha_i elr_i > 1): not convergence
    reg, _ = _one(1.2, 0.9, first=1.3, final=1.0, kmax=1.5)
    assert reg[0, 0] == "chaotic_equilibrium"


def test_random_walk_criterion():
    rg = theory.random_guess_loss(A)
    reg, _ = _one(rg * 1.02, 0.01, std_loss=0.8, kmax=50)
    assert reg[0, 0] == "divergence"
    reg, _ = _one(rg * 0.9, 0.01, std_loss=0.8, kmax=50)  # loss too low
    assert reg[0, 0] == "chaotic_equilibrium"
    reg, _ = _one(rg, 0.2, std_loss=0.8, kmax=50)  # iterates not orthogonal
    assert reg[0, 0] == "chaotic_equilibrium"


def test_subtype_from_std_or_lyapunov():
    _, sub = _one(1.0, 0.7, std_loss=1e-6, kmax=1.4)
    assert sub[0, 0] == "periodic"
    _, sub = _one(1.0, 0.7, std_loss=0.3, kmax=1.4)
    assert sub[0, 0] == "chaotic"
    _, sub = _one(1.0, 0.7, std_loss=0.3, kmax=1.4, lyap=1e-5)  # the exponent decides
    assert sub[0, 0] == "periodic"
    _, sub = _one(1.0, 0.7, std_loss=1e-6, kmax=1.4, lyap=0.2)
    assert sub[0, 0] == "chaotic"


def test_nonfinite_runs_are_labelled():
    reg, _ = _one(np.nan, np.nan, kmax=1.0)
    assert reg[0, 0] == "nonfinite"


def test_per_elr_majority_and_fractions():
    reg = np.array([["convergence", "convergence", "chaotic_equilibrium"],
                    ["divergence", "chaotic_equilibrium", "chaotic_equilibrium"],
                    ["nonfinite", "nonfinite", "nonfinite"]], dtype=object)
    sub = np.array([["", "", "chaotic"], ["", "periodic", "chaotic"], ["", "", ""]], dtype=object)
    best, bsub, fr = regimes.classify_elrs(reg, sub)
    assert best.tolist() == ["convergence", "chaotic_equilibrium", "nonfinite"]
    assert fr["convergence"][0] == pytest.approx(2 / 3)
    assert fr["periodic"][1] == pytest.approx(1 / 3) and fr["chaotic"][1] == pytest.approx(1 / 3)
    # a tie between subtypes goes to periodic
    assert bsub.tolist() == ["", "periodic", ""]


def test_theory_regime_and_crossover():
    thr = theory.threshold_elr(A)
    cross = regimes.crossover_c()
    # the orbit's cosine 1/c and loss deficit 1/c meet the 5% tolerances at c = 20
    assert cross == pytest.approx(20.0)
    assert theory.equilibrium_cosine(A, cross / A.sum()) == pytest.approx(regimes.RANDOM_WALK_COSINE_TOL)
    r = regimes.theory_regime(A, [0.5 * thr, 2 * thr, 1.01 * cross / A.sum()])
    assert r.tolist() == ["convergence", "chaotic_equilibrium", "divergence"]


def test_generic_core_counts_loss_above_random_guess_as_divergence():
    """A network can do worse than random guessing at huge ELRs: still nothing learned."""
    reg, sub = regimes.classify([4.8, 3.7, 3.0, 0.001], [0.0, 0.01, 0.0, 0.99], 3.83,
                                converged=[False, False, False, True], chaotic=[True, True, True, False])
    assert reg.tolist() == ["divergence", "divergence", "chaotic_equilibrium", "convergence"]
    assert sub.tolist() == ["", "", "chaotic", ""]


def test_network_runs_are_random_walks_by_their_cosine_alone():
    from toymodel import regimes as R

    W = 15
    rng = np.random.default_rng(0)
    loss = 5.0 + 0.5 * rng.standard_normal((3, W))  # fluctuating, below the random-guess level 6.5
    cos = np.stack([np.full(W, 0.001), np.full(W, 0.2), np.full(W, -0.04)])
    reg, sub = R.classify_training(loss, cos, 6.5)
    assert list(reg) == ["divergence", "chaotic_equilibrium", "divergence"] and sub[1] == "chaotic"
    # a run whose loss stays below 1% of the level and falls across the window has converged
    conv = np.geomspace(1e-2, 1e-3, W)[None, :]
    assert R.classify_training(conv, np.ones((1, W)), 6.5)[0][0] == "convergence"
    # the same runs under the toy's full criterion (loss within 5% of the level) are not random walks
    assert R.classify(loss.mean(axis=1), cos.mean(axis=1), 6.5, np.zeros(3, bool), np.ones(3, bool))[0][0] \
        == "chaotic_equilibrium"
