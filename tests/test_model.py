"""ToyProblem: invariances, derivatives and the map, checked on random points (hypothesis)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toymodel import ToyProblem

alphas_st = st.lists(st.floats(0.05, 20.0), min_size=1, max_size=6)
seed_st = st.integers(0, 2**32 - 1)


def _point(problem, seed):
    return problem.random_points(np.random.default_rng(seed))


@settings(max_examples=60, deadline=None)
@given(alphas=alphas_st, seed=seed_st, scale=st.floats(1e-3, 1e3))
def test_each_group_is_scale_invariant(alphas, seed, scale):
    p = ToyProblem(alphas)
    th = _point(p, seed)
    base = p.loss(th)
    for i in range(p.n_groups):
        scaled = th.copy()
        scaled[2 * i : 2 * i + 2] *= scale
        # exact algebra up to rounding of a few operations: 1e-12 relative
        assert p.loss(scaled) == pytest.approx(base, rel=1e-12, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(alphas=alphas_st, seed=seed_st)
def test_gradient_orthogonal_to_every_group(alphas, seed):
    p = ToyProblem(alphas)
    th = _point(p, seed)
    g = p.gradient(th)
    for i in range(p.n_groups):
        gi, ti = g[2 * i : 2 * i + 2], th[2 * i : 2 * i + 2]
        # <grad_i, theta_i> = 0 exactly in exact arithmetic; rounding of two products
        scale = np.linalg.norm(gi) * np.linalg.norm(ti) + 1e-300
        assert abs(gi @ ti) <= 1e-14 * scale


@settings(max_examples=30, deadline=None)
@given(alphas=alphas_st, seed=seed_st)
def test_gradient_and_hessian_match_finite_differences(alphas, seed):
    p = ToyProblem(alphas)
    rng = np.random.default_rng(seed)
    th = p.random_points(rng)
    # keep away from the y_i = 0 poles where curvature blows up
    th[1::2] = np.where(np.abs(th[1::2]) < 0.05, 0.05, th[1::2])
    h = 1e-6
    fd = np.array([(p.loss(th + h * e) - p.loss(th - h * e)) / (2 * h) for e in np.eye(p.dim)])
    scale = 1 + np.abs(fd).max()
    # central differences: truncation O(h^2 F''') ~ 1e-10, rounding O(eps/h) ~ 1e-10
    assert np.allclose(p.gradient(th), fd, atol=1e-7 * scale)
    v = rng.standard_normal(p.dim)
    fdh = (p.gradient(th + h * v) - p.gradient(th - h * v)) / (2 * h)
    assert np.allclose(p.hessian_vector_product(th, v), fdh, atol=1e-6 * (1 + np.abs(fdh).max()))


@settings(max_examples=40, deadline=None)
@given(alphas=alphas_st, seed=seed_st, log_elr=st.floats(-3, 3))
def test_step_stays_on_sphere_and_moves_by_arctan_of_ess(alphas, seed, log_elr):
    p = ToyProblem(alphas)
    th = _point(p, seed)
    elr = 10.0**log_elr
    new = p.step(th, elr)
    assert np.linalg.norm(new) == pytest.approx(1.0, abs=1e-14)
    # the gradient is orthogonal to theta, so the step rotates theta by arctan(elr * g)
    ess = elr * p.effective_gradient_norm(th)
    assert new @ th == pytest.approx(1.0 / np.sqrt(1.0 + ess * ess), abs=1e-13)


@settings(max_examples=40, deadline=None)
@given(alphas=alphas_st, seed=seed_st, log_elr=st.floats(-3, 3))
def test_group_elrs_harmonic_sum_and_ess_relation(alphas, seed, log_elr):
    p = ToyProblem(alphas)
    th = _point(p, seed)
    elr = 10.0**log_elr
    ge = p.group_elrs(th, elr)
    # sum_i 1/elr_i = sum_i omega_i / elr = 1/elr exactly up to rounding
    assert np.sum(1.0 / ge) == pytest.approx(1.0 / elr, rel=1e-12)
    # (g elr)^2 = sum_i omega_i (g_i elr_i)^2
    lhs = (p.effective_gradient_norm(th) * elr) ** 2
    rhs = np.sum(p.norm_shares(th) * (p.group_effective_gradient_norms(th) * ge) ** 2)
    assert lhs == pytest.approx(rhs, rel=1e-11, abs=1e-300)


def test_group_effective_gradient_norm_is_alpha_sin_2phi(rng):
    p = ToyProblem([1.0, 2.0, 4.0])
    th = p.random_points(rng, 50)
    phi = p.group_angles(th)
    # exact identity g_i = alpha_i |sin 2 phi_i|; 1e-12 covers rounding
    assert np.allclose(p.group_effective_gradient_norms(th), p.alphas * np.abs(np.sin(2 * phi)), atol=1e-12)


def test_angle_split_round_trip(rng):
    p = ToyProblem([0.5, 1.0, 3.0, 2.0])
    th = p.random_points(rng, 20)
    phi, omega = p.to_angle_split(th)
    assert np.allclose(omega.sum(-1), 1.0, atol=1e-14)
    assert np.allclose(p.from_angle_split(phi, omega), th, atol=1e-14)


def test_initial_points_are_deterministic_and_uniform():
    p = ToyProblem([1.0, 2.0])
    a = p.initial_points(10)
    b = p.initial_points(range(10))
    assert np.array_equal(a, b)
    assert np.array_equal(p.initial_point(3), a[3])
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-15)
    # uniformity: the mean of each coordinate over many seeds is 0 and E[x^2] = 1/dim
    many = p.initial_points(4000)
    # standard error of a coordinate mean is sqrt(1/(dim*4000)) ~ 0.008; allow 5 sigma
    assert np.all(np.abs(many.mean(0)) < 0.04)
    assert np.all(np.abs((many**2).mean(0) - 0.25) < 0.03)


@pytest.mark.parametrize(
    "alphas",
    [[], [1.0, -1.0], [0.0], [np.inf], [np.nan, 1.0], [[1.0, 2.0]], "1,x", "abc"],
)
def test_bad_alphas_raise(alphas):
    with pytest.raises(ValueError, match="alphas"):
        ToyProblem(alphas)


def test_alphas_from_string():
    assert ToyProblem("1, 2,4").alphas.tolist() == [1.0, 2.0, 4.0]


def test_check_points_refuses_bad_points():
    p = ToyProblem([1.0, 2.0])
    with pytest.raises(ValueError, match="last axis"):
        p.check_points(np.ones(3))
    with pytest.raises(ValueError, match="finite"):
        p.check_points([1.0, np.nan, 1.0, 1.0])
    with pytest.raises(ValueError, match="zero-norm group"):
        p.check_points([1.0, 1.0, 0.0, 0.0])
