"""theory: the SymPy derivations, their numeric versions, and agreement with the simulator."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from toymodel import ToyProblem, simulate
from toymodel import theory as T
from toymodel.dynamics import map_jacobian_fd

REPO = Path(__file__).resolve().parents[1]


# both derive every derivation (about 20 s, cached per process): one worker does it once for both (--dist loadgroup)
@pytest.mark.xdist_group("derivations")
def test_every_identity_step_is_verified_by_sympy():
    for d in T.derivations():
        checked = [s for s in d.steps if s.check is not None]
        assert all(s.verified for s in checked), d.key
        assert d.claim and d.assumptions and d.steps
    # the derivations that rest on identities do prove some
    assert sum(s.verified is True for s in T.derive_one_step_map().steps) >= 4
    assert sum(s.verified is True for s in T.derive_cycle_linearisation().steps) >= 5


def test_derived_closed_forms_are_the_known_ones():
    # analytic values (THEORY.md section 3): threshold 1/sum(alpha), equilibrium group ELRs
    c, A = T.c, T.A
    assert sp.simplify(T.derive_minimum_stability().results["threshold_elr"] - 1 / A) == 0
    eq = T.derive_equilibrium().results
    assert sp.simplify(eq["loss"] - A * (c - 1) / (2 * c)) == 0
    assert sp.simplify(eq["cosine"] - 1 / c) == 0
    assert sp.simplify(T.derive_random_guess().results["loss"] - A / 2) == 0


def test_paper_numbers_for_alpha_124():
    a = [1.0, 2.0, 4.0]
    # exact algebra, rounding only: 1e-12
    assert T.threshold_elr(a) == pytest.approx(1 / 7, rel=1e-12)
    assert np.allclose(T.equilibrium_group_elrs(a, 0.2), [1.4, 0.7, 0.35], rtol=1e-12)
    assert T.equilibrium_loss(a, 0.2) == pytest.approx(1.0, rel=1e-12)  # "settles near 1"
    assert T.random_guess_loss(a) == pytest.approx(3.5, rel=1e-12)


def test_numeric_functions_vectorise_and_handle_the_threshold():
    a = [1.0, 2.0, 4.0]
    elrs = np.array([0.05, 1 / 7, 0.2, 1.0])
    loss = T.equilibrium_loss(a, elrs)
    assert loss.shape == (4,) and loss[0] == 0.0 and loss[1] == 0.0 and loss[2] > 0
    assert T.equilibrium_cosine(a, elrs)[0] == 1.0
    ge = T.equilibrium_group_elrs(a, elrs)
    assert ge.shape == (4, 3) and np.all(np.isnan(ge[:2])) and np.all(np.isfinite(ge[2:]))
    # harmonic sum rule holds on the equilibrium too
    assert np.allclose(np.sum(1 / ge[2:], axis=1), 1 / elrs[2:], rtol=1e-12)
    with pytest.raises(ValueError, match="threshold"):
        T.cycle_multipliers(a, 0.1)
    with pytest.raises(ValueError, match="alphas"):
        T.threshold_elr([1.0, -2.0])
    with pytest.raises(ValueError, match="elr"):
        T.equilibrium_loss(a, -1.0)



def test_the_package_re_exports_every_topic_module_and_defines_nothing_itself():
    import ast

    from toymodel.theory import catalogue, conventional, core, sgd, sphere, sphere_orbit

    topics = (sphere, sphere_orbit, sgd, conventional, catalogue)
    assert set(T.__all__) == set().union(*(m.__all__ for m in topics)) | {"Step", "Derivation"}
    for m in topics + (core,):
        for name in set(m.__all__) & set(T.__all__):
            assert getattr(T, name) is getattr(m, name), (m.__name__, name)
    # only imports and __all__ (the docstring aside): no function, class or table of its own
    body = ast.parse(Path(T.__file__).read_text()).body[1:]
    assert all(isinstance(n, ast.ImportFrom) for n in body[:-1]), [type(n).__name__ for n in body]
    assert isinstance(body[-1], ast.Assign) and body[-1].targets[0].id == "__all__"


def test_numeric_functions_lambdify_once_per_process(monkeypatch):
    a = [1.0, 2.0, 4.0]
    calls = [
        lambda: T.threshold_elr(a), lambda: T.minimum_multipliers(a, [0.1, 0.1, 0.1]),
        lambda: T.tangent_hessian_eigenvalues(a, [0.2, 0.3, 0.5]), lambda: T.equilibrium_point(a, 0.2),
        lambda: T.equilibrium_group_elrs(a, 0.2), lambda: T.equilibrium_loss(a, 0.2),
        lambda: T.equilibrium_cosine(a, 0.2), lambda: T.equilibrium_angle(a, 0.2),
        lambda: T.equilibrium_eff_grad_norm(a, 0.2), lambda: T.random_guess_loss_std(a),
        lambda: T.one_step_map(0.5, 0.1), lambda: T.group_elr_next(0.5, 0.2, 0.1),
        lambda: T.cycle_multipliers(a, 0.2), lambda: T.sgd_stability_edge_large_batch(8, 0.5),
        lambda: T.conventional_equilibrium_c(0.1, 0.1), lambda: T.conventional_equilibrium_loss(a, 0.1, 0.1),
        lambda: T.conventional_equilibrium_group_elrs(a, 0.1, 0.1), lambda: T.conventional_ess_law(0.1, 0.1),
        lambda: T.conventional_quiet_steps(0.1, 0.01, 0.3),
    ]
    first = [f() for f in calls]
    built = []
    real = sp.lambdify
    monkeypatch.setattr(sp, "lambdify", lambda *args, **kw: built.append(args) or real(*args, **kw))
    again = [f() for f in calls]
    assert built == []  # the second round used the functions built in the first
    assert repr(again) == repr(first)


def _separated_alphas(rng, n):
    """Random weights whose ratios are at least 1.3: near-equal weights approach the orbit
    much more slowly (near-degenerate neutral modes), and exactly equal ones for n >= 3 have
    other attractors (see the chaos findings)."""
    while True:
        a = rng.uniform(0.3, 3.0, n)
        s = np.sort(a)
        if np.all(s[1:] / s[:-1] > 1.3):
            return a


@pytest.mark.parametrize("which", ["paper", "random2", "random3"])
def test_equilibrium_closed_forms_match_random_starts(which):
    rng = np.random.default_rng(7)
    a = {"paper": np.array([1.0, 2.0, 4.0]), "random2": _separated_alphas(rng, 2),
         "random3": _separated_alphas(np.random.default_rng(8), 3)}[which]
    p = ToyProblem(a)
    cs = np.array([1.05, 1.2, 1.4])
    elrs = cs * T.threshold_elr(a)
    steps = 10_000_000
    res = simulate(p, elrs, steps, seeds=3, burn_in=steps // 2)
    # the orbit is reached: F is constant on it, and the remaining wobble is small
    assert np.all(res.std_loss < 1e-5)
    # Random starts approach the orbit algebraically (its norm-split directions are neutral),
    # so time averages over [steps/2, steps) deviate like 1/steps: measured ~1e-11 for loss
    # and cosine, 0.3e-6 to 3.6e-6 (depending on alpha) for the group ELRs at 10^7 steps.
    # Tolerances: 1e-8 and 5e-6.
    assert np.allclose(res.mean_loss, T.equilibrium_loss(a, elrs)[:, None], rtol=1e-8)
    assert np.allclose(res.mean_cosine, T.equilibrium_cosine(a, elrs)[:, None], rtol=1e-8)
    assert np.allclose(res.mean_angle, T.equilibrium_angle(a, elrs)[:, None], rtol=1e-8)
    assert np.allclose(res.mean_eff_grad_norm, T.equilibrium_eff_grad_norm(a, elrs)[:, None], rtol=1e-8)
    assert np.allclose(res.mean_group_elrs, T.equilibrium_group_elrs(a, elrs)[:, None, :], rtol=5e-6)


def test_threshold_separates_convergence_within_five_percent():
    rng = np.random.default_rng(11)
    for n in (1, 2, 3, 5):
        a = rng.uniform(0.2, 4.0, n)
        p = ToyProblem(a)
        thr = T.threshold_elr(a)
        res = simulate(p, [0.95 * thr, 1.05 * thr], 40_000, seeds=12, burn_in=39_000)
        assert np.all(res.final_loss[0] < 1e-12), (n, a)
        # above: the loss stays near the orbit's value 0.0238 * sum(alpha), far from 0
        assert np.all(res.min_loss[1] > 1e-3 * a.sum()), (n, a)


@pytest.mark.parametrize("alphas, c", [([1.0, 2.0, 4.0], 1.1), ([1.0, 2.0, 4.0], 2.5), ([0.4, 2.2], 1.7),
                                       ([1.3, 0.5, 2.9, 0.8], 1.3), ([2.0], 4.0), ([1.0, 2.0, 4.0], 30.0)])
def test_cycle_multipliers_match_finite_difference_jacobian(alphas, c):
    from scipy.optimize import linear_sum_assignment

    p = ToyProblem(alphas)
    e = c * T.threshold_elr(alphas)
    J = map_jacobian_fd(p, e, T.equilibrium_point(alphas, e), steps=2)
    ev = np.linalg.eigvals(J)
    mu = T.cycle_multipliers(alphas, e)
    assert mu.shape == (2 * p.n_groups - 1,)
    cost = np.abs(ev[:, None] - mu[None, :])
    i, j = linear_sum_assignment(cost)
    # central differences with h = 1e-6: ~1e-10 measured; 1e-6 asked
    assert cost[i, j].max() < 1e-6
    assert np.allclose(np.abs(mu[1:]), 1.0, atol=1e-12)  # the neutral pairs


def test_equilibrium_point_is_a_period_two_orbit_of_the_kernel():
    a = [0.7, 1.9, 3.1]
    e = 1.3 * T.threshold_elr(a)
    th = T.equilibrium_point(a, e)
    p = ToyProblem(a)
    res = simulate(p, [e], 2, init=th, record_every=1)
    assert np.allclose(res.final_theta[0, 0], th, atol=1e-14)
    one = simulate(p, [e], 1, init=th)
    flipped = th.copy()
    flipped[0::2] *= -1
    assert np.allclose(one.final_theta[0, 0], flipped, atol=1e-14)
    assert np.allclose(res.loss_trace[0, 0], T.equilibrium_loss(a, e), rtol=1e-13)
    assert np.allclose(res.cosine_trace[0, 0], T.equilibrium_cosine(a, e), rtol=1e-13)


def test_large_elr_limit_is_the_random_guess_level_symbolically_and_by_monte_carlo(rng):
    lim = T.derive_equilibrium_limits().results["limits"]["loss"][1]
    assert sp.simplify(lim - T.derive_random_guess().results["loss"]) == 0
    a = rng.uniform(0.5, 3.0, 4)
    p = ToyProblem(a)
    f = p.loss(p.random_points(rng, 400_000))
    se = f.std() / np.sqrt(f.size)
    # Monte Carlo: within 5 standard errors
    assert abs(f.mean() - T.random_guess_loss(a)) < 5 * se
    assert f.std() == pytest.approx(T.random_guess_loss_std(a), rel=0.01)  # ~0.1% sampling error on a std
    assert T.equilibrium_loss(a, 1e12) == pytest.approx(T.random_guess_loss(a), rel=1e-10)


def test_minimum_multipliers_match_a_converged_run():
    a = np.array([1.0, 2.0, 4.0])
    p = ToyProblem(a)
    e = 0.6 * T.threshold_elr(a)
    r1 = simulate(p, [e], 100, seeds=[5])
    r2 = simulate(p, [e], 1, seeds=[5], init=r1.final_theta)
    mult, n_neutral = T.minimum_multipliers(a, r1.final_group_elrs[0, 0])
    assert n_neutral == 2
    ratio = r2.final_theta[0, 0, 0::2] / r1.final_theta[0, 0, 0::2]
    # near the minimum the map is linear up to O(tan^2 phi) ~ 1e-20 here
    assert np.allclose(ratio, mult, atol=1e-12)


@pytest.mark.xdist_group("derivations")
def test_derivations_are_fresh(tmp_path):
    """The committed derivations/ is exactly what the code renders now."""
    from toymodel.derivation_checks import write_derivations

    write_derivations(tmp_path)
    committed = sorted(p.name for p in (REPO / "derivations").glob("*.md"))
    fresh = sorted(p.name for p in tmp_path.glob("*.md"))
    assert committed == fresh
    for name in fresh:
        assert (tmp_path / name).read_bytes() == (REPO / "derivations" / name).read_bytes(), (
            f"derivations/{name} is stale: run python -m toymodel.theory --write derivations")


def test_theory_cli(tmp_path):
    out = subprocess.run([sys.executable, "-m", "toymodel.theory", "--write", str(tmp_path), "--only",
                          "06_random_guess", "--quiet"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "06_random_guess.md").read_text().startswith("# The random-guess level")
    bad = subprocess.run([sys.executable, "-m", "toymodel.theory", "--write", str(tmp_path), "--only", "nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_derivations_render_the_same_with_other_blas_kernels_and_thread_counts(tmp_path):
    """The files compared byte for byte must not depend on the machine's floating-point path: render the
    two derivations whose checks use linear algebra in processes with other OpenBLAS kernels and one
    Numba thread, and compare with the committed files."""
    import os

    # an OpenBLAS kernel the CPU cannot run stops the process (SkylakeX needs AVX-512)
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    coretypes = ("Haswell", "Zen") + (("SkylakeX",) if "avx512f" in flags else ())
    for coretype in coretypes:
        out = tmp_path / coretype
        env = dict(os.environ, OPENBLAS_CORETYPE=coretype, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
        proc = subprocess.run([sys.executable, "-m", "toymodel.theory", "--write", str(out), "--quiet",
                               "--only", "08_cycle_linearisation", "--only", "09_orbit_nonlinear_stability"],
                              capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        for name in ("08_cycle_linearisation.md", "09_orbit_nonlinear_stability.md"):
            assert (out / name).read_bytes() == (REPO / "derivations" / name).read_bytes(), (coretype, name)
