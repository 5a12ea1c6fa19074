"""simulate(): the Numba kernel against the NumPy map, invariants, thresholds, validation."""

import numpy as np
import pytest

import toymodel as tm
from toymodel import ToyProblem, simulate
from toymodel._kernels import atan_nonneg


def test_atan_matches_math_atan():
    xs = np.concatenate([[0.0, 1e-300, 1e-20, 0.66, np.nextafter(0.66, 1), 2.414213562373095, 1e300, np.inf],
                         np.geomspace(1e-12, 1e12, 2001)])
    ref = np.arctan(xs)
    got = np.array([atan_nonneg(x) for x in xs])
    # Cephes' atan is accurate to about 1 ulp; allow 4 ulp relative
    assert np.all(np.abs(got - ref) <= 4 * np.finfo(float).eps * np.abs(ref))


def _random_alphas(rng):
    return rng.uniform(0.1, 3.0, size=rng.integers(1, 6))


@pytest.mark.parametrize("trial", range(3))
def test_kernel_equals_numpy_map_one_step_along_1000_steps(trial):
    """Re-synchronised comparison: the kernel applied to each state of a 1000-step NumPy
    trajectory reproduces the NumPy next state. This tests the map at every step, at any ELR,
    without chaotic amplification of rounding differences."""
    rng = np.random.default_rng(100 + trial)
    p = ToyProblem(_random_alphas(rng))
    for elr in np.geomspace(1e-3, 1e3, 7):
        traj = p.iterate(p.initial_point(trial), elr, 1000)
        res = simulate(p, np.full(1000, elr), 1, init=traj[:-1, None, :])
        # one step of rounding (a handful of ulp) on O(1) coordinates
        assert np.abs(res.final_theta[:, 0, :] - traj[1:]).max() < 1e-12


@pytest.mark.parametrize("trial", range(3))
def test_kernel_equals_numpy_map_free_running(trial):
    """Free-running comparison over 1000 steps where the dynamics does not amplify rounding
    (convergent runs, c = elr * sum(alpha) < 1, and nearly rotational runs, c > 1000), and over
    the first 20 steps everywhere. In the chaotic range the kernel and NumPy differ by rounding
    at 1e-16, and nearby trajectories separate like exp(lambda t) with lambda up to ~0.6 per
    step (measured), so beyond ~20 steps a 1e-12 comparison would test chaos, not the kernel."""
    rng = np.random.default_rng(200 + trial)
    p = ToyProblem(_random_alphas(rng))
    elrs = np.geomspace(1e-3, 1e3, 13)
    th0 = p.initial_point(trial)
    ref = np.broadcast_to(th0, (elrs.size, p.dim)).copy()
    for t in range(1, 1001):
        ref = p.step(ref, elrs)
        if t in (20, 1000):
            res = simulate(p, elrs, t, init=th0)
            err = np.abs(res.final_theta[:, 0, :] - ref).max(axis=-1)
            c = elrs * p.total_alpha
            check = np.ones_like(c, bool) if t == 20 else (c < 1.0) | (c > 1000.0)
            assert np.all(err[check] < 1e-12), (t, c[check], err[check])


def test_statistics_match_numpy_trajectory():
    p = ToyProblem([1.0, 2.0, 4.0])
    elrs = np.array([0.05, 0.2, 0.6])
    steps, burn_in = 300, 100
    res = simulate(p, elrs, steps, seeds=[7], burn_in=burn_in, record_every=1)
    th = p.iterate(p.initial_point(7), elrs, steps)  # (steps+1, K, 2n)
    loss = p.loss(th)
    cos = np.sum(th[:-1] * th[1:], axis=-1)
    g = p.effective_gradient_norm(th)
    w = slice(burn_in, steps)
    # sums of a few hundred rounded terms: 1e-12 relative; the 0.6 run is chaotic, so only
    # compare it over the record that is still synchronised (see the free-running test)
    for k in range(2):
        assert res.mean_loss[k, 0] == pytest.approx(loss[w, k].mean(), rel=1e-12, abs=1e-14)
        assert res.std_loss[k, 0] == pytest.approx(loss[w, k].std(), rel=1e-7, abs=1e-12)
        assert res.min_loss[k, 0] == pytest.approx(loss[w, k].min(), rel=1e-12, abs=1e-14)
        assert res.max_loss[k, 0] == pytest.approx(loss[w, k].max(), rel=1e-12, abs=1e-14)
        assert res.mean_cosine[k, 0] == pytest.approx(cos[w, k].mean(), rel=1e-12)
        assert res.mean_angle[k, 0] == pytest.approx(np.arctan(elrs[k] * g[w, k]).mean(), rel=1e-12, abs=1e-300)
        assert res.mean_eff_grad_norm[k, 0] == pytest.approx(g[w, k].mean(), rel=1e-12, abs=1e-300)
        assert np.allclose(res.mean_group_elrs[k, 0], p.group_elrs(th[w, k], elrs[k]).mean(0), rtol=1e-12)
    assert np.allclose(res.loss_trace[:, 0, :20].T, loss[:20], rtol=1e-12, atol=1e-14)
    assert np.allclose(res.cosine_trace[:, 0, :20].T, cos[:20], rtol=1e-12)


def test_mean_angle_keeps_precision_for_tiny_steps():
    p = ToyProblem([1.0, 2.0, 4.0])
    res = simulate(p, [1e-9], 50, seeds=[3])
    th = p.initial_point(3)
    expected = np.arctan(1e-9 * p.effective_gradient_norm(th))
    # the state barely moves in 50 steps at ELR 1e-9, so the mean angle equals the first one
    # to ~1e-7 relative; arccos of the cosine would have no correct digit here
    assert res.mean_angle[0, 0] == pytest.approx(expected, rel=1e-6)


def test_norm_stays_one_after_a_million_steps():
    p = ToyProblem([1.0, 2.0, 4.0])
    elrs = np.array([0.05, 0.2, 0.5, 3.0])  # convergent, equilibrium, chaotic, chaotic
    res = simulate(p, elrs, 1_000_000, seeds=2)
    norms = np.linalg.norm(res.final_theta, axis=-1)
    assert np.all(np.abs(norms - 1.0) < 1e-12)


def test_paper_threshold_for_alpha_124():
    p = ToyProblem([1.0, 2.0, 4.0])
    thr = 1.0 / p.total_alpha  # the paper's threshold, checked here by simulation only
    res = simulate(p, [0.9 * thr, 1.1 * thr], 30_000, seeds=8, burn_in=29_000)
    assert np.all(res.final_loss[0] < 1e-12)
    assert np.all(res.max_loss[0] < 1e-12)
    # above the threshold the loss settles at a positive level (theory: 0.318 at c = 1.1)
    assert np.all(res.min_loss[1] > 0.1)


def test_harmonic_sum_of_group_elrs_at_every_recorded_step():
    rng = np.random.default_rng(3)
    p = ToyProblem(rng.uniform(0.2, 5, 4))
    elrs = np.geomspace(1e-3, 1e2, 9)
    res = simulate(p, elrs, 2000, seeds=3, record_every=7)
    inv_sum = np.sum(1.0 / res.group_elr_trace, axis=-1)  # (K, S, T')
    # sum_i omega_i = 1 to rounding of a normalisation: 1e-12 relative
    assert np.allclose(inv_sum * elrs[:, None, None], 1.0, rtol=0, atol=1e-12)
    assert res.trace_steps.tolist() == list(range(0, 2000, 7))


def test_results_identical_across_thread_counts_and_sweep_growth():
    import numba

    p = ToyProblem([1.0, 2.0, 4.0])
    elrs = np.geomspace(1e-2, 10, 37)
    kw = dict(burn_in=100, record_every=50)
    r1 = simulate(p, elrs, 500, seeds=5, threads=1, **kw)
    r2 = simulate(p, elrs, 500, seeds=5, threads=min(2, numba.config.NUMBA_NUM_THREADS), **kw)
    for name in ("mean_loss", "std_loss", "mean_cosine", "mean_angle", "final_theta", "mean_group_elrs",
                 "loss_trace", "group_elr_trace"):
        assert np.array_equal(getattr(r1, name), getattr(r2, name)), name
    # a bigger sweep containing the same (elr, seed) pairs gives the same numbers
    big = simulate(p, np.concatenate([elrs, [0.33, 7.0]]), 500, seeds=[0, 1, 2, 3, 4, 9], **kw)
    assert np.array_equal(big.mean_loss[:37, :5], r1.mean_loss)
    assert np.array_equal(big.final_theta[:37, :5], r1.final_theta)


def test_seed_gives_same_initial_point_at_every_elr():
    p = ToyProblem([1.0, 3.0])
    res = simulate(p, [0.01, 0.1, 1.0], 1, seeds=[4, 5], record_every=1)
    th0 = p.initial_points([4, 5])
    assert np.allclose(res.loss_trace[:, :, 0], p.loss(th0)[None, :], rtol=1e-15)


def test_init_forms():
    p = ToyProblem([1.0, 2.0])
    pt = np.array([3.0, 4.0, 0.0, 5.0])  # not unit norm: projected onto the sphere
    r = simulate(p, [0.1, 0.2], 1, seeds=3, init=pt, record_every=1)
    assert np.allclose(r.loss_trace[..., 0], p.loss(pt))
    full = np.broadcast_to(pt / np.linalg.norm(pt), (2, 3, 4))
    r2 = simulate(p, [0.1, 0.2], 1, seeds=3, init=full)
    # the point is normalised once more here: equal to a couple of ulp
    assert np.allclose(r.final_theta, r2.final_theta, rtol=0, atol=1e-15)


def test_result_echoes_inputs():
    p = ToyProblem([1.0, 2.0, 4.0])
    r = simulate(p, 0.1, 10, seeds=[3, 8], burn_in=4)
    assert r.elrs.tolist() == [0.1]
    assert r.seeds.tolist() == [3, 8]
    assert r.alphas.tolist() == [1.0, 2.0, 4.0]
    assert (r.steps, r.burn_in, r.record_every) == (10, 4, 0)
    assert r.version == tm.__version__
    assert r.mean_loss.shape == (1, 2) and r.final_theta.shape == (1, 2, 6)
    assert r.loss_trace is None
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        r.steps = 3  # frozen


P = ToyProblem([1.0, 2.0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(elrs=[0.1, -1.0]), "elrs"),
        (dict(elrs=[0.0]), "elrs"),
        (dict(elrs=[np.nan]), "elrs"),
        (dict(elrs=[np.inf]), "elrs"),
        (dict(elrs=[]), "elrs"),
        (dict(steps=0), "steps"),
        (dict(steps=2.5), "steps"),
        (dict(steps=10, burn_in=10), "burn_in"),
        (dict(burn_in=-1), "burn_in"),
        (dict(seeds=0), "seeds"),
        (dict(seeds=[]), "seeds"),
        (dict(seeds=[-1]), "seeds"),
        (dict(seeds=1.5), "seeds"),
        (dict(init=np.ones(3)), "init"),
        (dict(init=np.ones((2, 2, 4))), "init"),
        (dict(init=[1.0, 1.0, 0.0, 0.0]), "zero-norm"),
        (dict(init=[1.0, np.nan, 1.0, 1.0]), "init"),
        (dict(record_every=-1), "record_every"),
        (dict(threads=0), "threads"),
    ],
)
def test_validation_errors(kwargs, match):
    args = dict(elrs=[0.1], steps=10)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        simulate(P, args.pop("elrs"), args.pop("steps"), **args)


def test_problem_must_be_a_toyproblem():
    with pytest.raises(ValueError, match="problem"):
        simulate([1.0, 2.0], 0.1, 10)


#: the kernel variants the default suite compiles anyway (tests/conftest.py); the three Lyapunov variants of SGD
#: and of weight decay are compiled (and fingerprinted) in the slow tests only
_SLOW_FINGERPRINTS = ("sgd+lyapunov", "gd+lyapunov+wd", "sgd+lyapunov+wd")


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=[pytest.mark.slow] if n in _SLOW_FINGERPRINTS else [])
    for n in ("gd", "gd+lyapunov", "gd+traces", "gd+wd", "sgd", "sgd+wd", *_SLOW_FINGERPRINTS)])
def test_kernels_bit_identical_to_the_reference(name):
    """Every variant's every output, bit for bit, against fingerprints written by the kernels before
    their performance rewrites (tests/kernel_reference.py): restructuring loops must not change one
    bit. The fingerprints cover log() results too (Lyapunov sums), which come from the C library:
    regenerate them on a platform whose libm differs."""
    import json
    import warnings

    import kernel_reference as ref

    want = json.loads(ref.PATH.read_text())
    assert set(want) == set(ref.configurations())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = ref.compute([name])[name]
    bad = [f for f in want[name] if got.get(f) != want[name][f]]
    assert not bad and set(got) == set(want[name]), f"{name}: outputs changed: {bad}"


def test_the_kernel_factory_documents_its_three_flags():
    # its docstring once said "(lyapunov, sgd)" after the weight-decay flag was added
    from toymodel import _kernels

    first = _kernels.kernel.__doc__.splitlines()[0]
    assert all(flag in first for flag in ("lyapunov", "sgd", "weight_decay")), first
