"""Lyapunov exponents from the kernel's tangent dynamics, against exactly known exponents."""

import numpy as np
import pytest

from toymodel import NonFiniteTrajectoryWarning, ToyProblem, regimes, simulate
from toymodel import theory as T
from toymodel.dynamics import benettin_lyapunov


@pytest.mark.parametrize("c", [0.2, 0.45, 0.8, 1.2, 2.0, 5.0])
def test_one_group_toy_has_its_derived_exponent(c):
    """n = 1: the sphere is a circle, the map is phi -> phi - arctan(c sin 2phi). The minimum
    has multiplier 1 - 2c; above c = 1 the 2-cycle has (1 - 2/c^2)^2 per period (derived)."""
    a = [1.7]
    p = ToyProblem(a)
    e = c / 1.7
    res = simulate(p, [e], 20_000, seeds=3, burn_in=10_000, lyapunov=True)
    if c < 1:
        expect = np.log(abs(T.minimum_multipliers(a, [e / 1.0])[0][0]))  # one group: elr_1 = elr
    else:
        expect = 0.5 * np.log(T.cycle_multipliers(a, e)[0].real)
    # on the attractor every step contributes the same log-multiplier: exact to rounding
    assert np.allclose(res.lyapunov, expect, rtol=1e-9, atol=1e-12)
    assert np.allclose(res.lyapunov_angle, expect, rtol=1e-9, atol=1e-12)


def test_converged_run_angle_exponent_is_the_minimum_multiplier_and_neutral_directions_are_zero():
    a = np.array([1.0, 2.0, 4.0])
    p = ToyProblem(a)
    elrs = np.array([0.3, 0.6, 0.9]) * T.threshold_elr(a)
    res = simulate(p, elrs, 4000, seeds=4, burn_in=2000, lyapunov=True)
    mult, n_neutral = T.minimum_multipliers(a, res.final_group_elrs)
    assert n_neutral == 2
    # the shares are frozen at the minimum, so every step has the same multipliers
    assert np.allclose(res.lyapunov_angle, np.log(np.abs(mult)).max(axis=-1), rtol=1e-9)
    # along the manifold of minima the multiplier is exactly 1: the full exponent is 0, not chaos
    assert np.all(np.abs(res.lyapunov) < 1e-12)
    reg, sub = regimes.classify_runs(a, res.mean_loss, res.mean_cosine, res.std_loss, res.first_loss,
                                     res.final_loss, res.final_group_elrs, res.lyapunov)
    assert np.all(reg == "convergence")


def test_equilibrium_orbit_exponents_match_the_cycle_multipliers():
    a = np.array([1.0, 2.0, 4.0])
    p = ToyProblem(a)
    cs = np.array([1.1, 1.3, 1.6])
    res = simulate(p, cs * T.threshold_elr(a), 400_000, seeds=3, burn_in=200_000, lyapunov=True)
    mu = [T.cycle_multipliers(a, c * T.threshold_elr(a)) for c in cs]
    common = np.array([0.5 * np.log(m[0].real) for m in mu])
    neutral = np.array([0.5 * np.log(np.abs(m[1:])).max() for m in mu])
    assert np.allclose(neutral, 0.0, atol=1e-12)
    # the run is still approaching the orbit (algebraically), so allow 1e-3 relative
    assert np.allclose(res.lyapunov_angle, common[:, None], rtol=1e-3)
    # the largest exponent is that of the neutral pairs, 0; finite-time bias ~1e-5 measured
    assert np.all(np.abs(res.lyapunov) < 0.1 * regimes.CHAOS_LYAPUNOV_TOL)


@pytest.mark.slow  # ~10 s of long trajectories
def test_kernel_exponent_agrees_with_two_trajectory_estimate():
    a = [1.0, 2.0, 4.0]
    p = ToyProblem(a)
    e = 3.0 * T.threshold_elr(a)
    ker = simulate(p, [e], 60_000, seeds=16, burn_in=10_000, lyapunov=True).lyapunov[0]
    ben = benettin_lyapunov(p, e, 60_000, seeds=4, burn_in=10_000)
    # statistical bound: 4 standard errors of the difference of the two seed means, each
    # estimated from the spread over seeds (the runs are independent chaotic samples)
    se = np.sqrt(ker.var(ddof=1) / ker.size + ben.exponent.var(ddof=1) / ben.exponent.size)
    assert ker.mean() > 0.1
    assert abs(ker.mean() - ben.exponent.mean()) < 4 * se + 1e-3


def test_periodic_and_chaotic_runs_are_told_apart_consistently_with_the_exponent():
    a = np.array([1.0, 2.0, 4.0])
    p = ToyProblem(a)
    cs = np.array([1.2, 1.5, 2.8, 6.0])
    res = simulate(p, cs * T.threshold_elr(a), 200_000, seeds=4, burn_in=100_000, lyapunov=True)
    reg, sub = regimes.classify_runs(a, res.mean_loss, res.mean_cosine, res.std_loss, res.first_loss,
                                     res.final_loss, res.final_group_elrs, res.lyapunov)
    assert np.all(reg == "chaotic_equilibrium")
    assert np.all(sub[:2] == "periodic") and np.all(sub[2:] == "chaotic")
    assert np.all((sub == "chaotic") == (res.lyapunov > regimes.CHAOS_LYAPUNOV_TOL))
    # the loss-fluctuation criterion used without exponents agrees on these runs
    _, sub2 = regimes.classify_runs(a, res.mean_loss, res.mean_cosine, res.std_loss, res.first_loss,
                                    res.final_loss, res.final_group_elrs)
    assert np.array_equal(sub, sub2)


def test_lyapunov_is_nan_for_a_run_that_leaves_the_finite_numbers():
    p = ToyProblem([1.0, 2.0])
    with pytest.warns(NonFiniteTrajectoryWarning):
        res = simulate(p, [0.5, 1e300], 50, seeds=2, lyapunov=True)
    assert np.all(np.isfinite(res.lyapunov[0])) and np.all(np.isnan(res.lyapunov[1]))
    assert res.nonfinite.tolist() == [0, 2]


def test_lyapunov_off_adds_nothing_and_on_is_thread_independent():
    import numba

    p = ToyProblem([1.0, 2.0, 4.0])
    elrs = np.geomspace(0.05, 5, 19)
    assert simulate(p, elrs, 100, seeds=2).lyapunov is None
    r1 = simulate(p, elrs, 2000, seeds=3, burn_in=500, lyapunov=True, threads=1)
    r2 = simulate(p, elrs, 2000, seeds=3, burn_in=500, lyapunov=True, threads=min(2, numba.config.NUMBA_NUM_THREADS))
    assert np.array_equal(r1.lyapunov, r2.lyapunov)
    assert np.array_equal(r1.lyapunov_angle, r2.lyapunov_angle)
    # the exponent does not change the trajectory
    r0 = simulate(p, elrs, 2000, seeds=3, burn_in=500)
    assert np.array_equal(r0.final_theta, r1.final_theta)


def test_orbit_instability_is_sqrt3_and_the_coefficient_changes_sign_there():
    assert T.orbit_instability_c() == pytest.approx(np.sqrt(3.0), rel=1e-15)
    import sympy as sp

    assert T.derive_orbit_nonlinear_stability().results["root"] == sp.sqrt(3)
    for r in (1.0, 3.0, 50.0):
        a = (1.0, r)
        assert T.orbit_stability_coefficient(a, 1.6 / sum(a)) < 0
        assert T.orbit_stability_coefficient(a, 1.85 / sum(a)) > 0
    with pytest.raises(ValueError, match="two groups"):
        T.orbit_stability_coefficient([1.0, 2.0, 4.0], 0.3)


def test_super_stable_step_is_counted_as_the_documented_floor():
    """n = 1 at c = 1/2: the multiplier 1 - 2c is exactly 0 (super-stable). The exponent is
    -infinity in exact arithmetic; the kernel stays finite: the angle estimate counts each step
    as a contraction by _MIN_FACTOR, and the tangent estimate restarts a collapsed vector in
    place of a step, so it counts _MIN_FACTOR every other step."""
    from toymodel._kernels import _MIN_FACTOR

    res = simulate(ToyProblem([1.0]), [0.5], 2000, seeds=2, burn_in=1000, lyapunov=True)
    assert np.allclose(res.lyapunov_angle, np.log(_MIN_FACTOR), rtol=1e-12)
    assert np.all(np.isfinite(res.lyapunov))
    assert np.allclose(res.lyapunov, 0.5 * np.log(_MIN_FACTOR), rtol=1e-2)
