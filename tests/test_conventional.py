"""Conventional training (learning rate + weight decay, no projection): the kernel against the NumPy
map and mpmath, the reduction, the exact log-ESS law, the orbit, the periodic behaviour, the job."""

import json

import mpmath as mp
import numpy as np
import pytest

from toymodel import ToyProblem, simulate_conventional, theory
from toymodel import conventional as CV
from toymodel.dynamics import quiet_phases


def _numpy_run(p, theta, lr, wd, steps):
    out = [theta]
    for _ in range(steps):
        out.append(p.conventional_step(out[-1], lr, wd))
    return np.array(out)


@pytest.mark.parametrize("lr, wd, alphas", [(0.1, 0.01, [1.0, 2.0, 4.0]), (0.5, 0.4, [1.0, 3.0]),
                                            (3.0, 0.2, [0.7, 1.3, 2.0, 0.4])])
def test_kernel_equals_the_numpy_map(lr, wd, alphas):
    p = ToyProblem(alphas)
    theta0 = p.initial_point(3) * 0.7  # the norm is free here
    ref = _numpy_run(p, theta0, lr, wd, 20)
    # re-synchronised: one kernel step from every NumPy state is the next NumPy state (rounding only)
    one = simulate_conventional(p, [lr] * 20, wd, 1, seeds=[3], init=ref[:20, None, :], record_every=1)
    assert np.allclose(one.final_theta[:, 0], ref[1:], rtol=1e-13, atol=1e-15)
    # free-running for 5 steps: the chaotic range (lr wd = 0.6) amplifies rounding only to ~1e-14
    res = simulate_conventional(p, [lr], wd, 5, seeds=[3], init=theta0)
    assert np.allclose(res.final_theta[0, 0], ref[5], rtol=1e-12, atol=1e-14)
    ge = p.direction_group_elrs(ref[:20], lr, wd)
    assert np.allclose(one.group_elr_trace[:, 0, 0], ge, rtol=1e-12)
    assert np.allclose(one.loss_trace[:, 0, 0], p.loss(ref[:20]), rtol=1e-12, atol=1e-15)


def test_kernel_follows_mpmath_through_a_quiet_phase_and_a_burst():
    """At small lr*wd the angle falls far below the smallest float during a quiet phase (x ~ 1e-400 and
    beyond) and is re-excited by the growing ELR: the kernel's extended exponent keeps it exact."""
    p = ToyProblem([1.0])
    lr, wd = 0.05, 0.01  # lr * wd = 5e-4: a first quiet phase of ~3000 steps, x down to ~1e-1029
    theta0 = p.initial_point(0)
    mp.mp.dps = 60
    x, y = mp.mpf(theta0[0]), mp.mpf(theta0[1])
    d = 1 - mp.mpf(lr) * mp.mpf(wd)
    states, min_x = [], mp.mpf(1)
    for _ in range(6000):
        r2 = x * x + y * y
        gx, gy = 2 * x * y * y / r2**2, -2 * x * x * y / r2**2
        x, y = d * x - lr * gx, d * y - lr * gy
        states.append((x, y))
        min_x = min(min_x, abs(x))
    assert min_x < mp.mpf("1e-320")  # the reference really goes below float64's range
    # end just after the first burst, where the state is O(1) again
    steps = 1 + max(t for t, (xx, yy) in enumerate(states) if abs(xx) > 0.1 * abs(yy) and t < 5000)
    x, y = states[steps - 1]
    res = simulate_conventional(p, [lr], wd, steps, seeds=[0], init=theta0)
    fx, fy = res.final_theta[0, 0]
    # after the burst the state is O(1) again and agrees with the 60-digit reference to ~1e-10
    # (rounding of ~1500 float64 steps, amplified by the burst's expanding steps)
    assert abs(fx - float(x)) < 1e-8 * abs(float(x)) + 1e-300 and abs(fy - float(y)) < 1e-8 * abs(float(y))
    assert res.quiet_phases[0, 0, 0] >= 1
    # plain float64 NumPy loses the angle in the quiet phase (x underflows) and ends elsewhere
    ref = _numpy_run(p, theta0, lr, wd, steps)[-1]
    assert not np.allclose(ref, [float(x), float(y)], rtol=1e-3)


def test_only_lr_times_wd_matters_for_the_direction():
    """Two (lr, wd) pairs with the same product, started from points whose norms give the same initial
    group ELRs, have the same direction dynamics: the same (phi, k) at every step up to rounding."""
    p = ToyProblem([1.0, 2.0])
    lw = 0.02
    theta = p.initial_point(1)
    a = simulate_conventional(p, [0.1], lw / 0.1, 300, seeds=[1], init=theta, record_every=1)
    b = simulate_conventional(p, [0.4], lw / 0.4, 300, seeds=[1], init=theta * 2.0, record_every=1)
    # r^2 scales with lr: the group ELRs lr / ((1 - lr wd) r^2) agree, so do the losses (directions)
    assert np.allclose(a.group_elr_trace, b.group_elr_trace, rtol=1e-9)
    assert np.allclose(a.loss_trace, b.loss_trace, rtol=1e-9, atol=1e-12)
    # and from unrelated norms the statistics agree after the transient (here: the exact law)
    c = simulate_conventional(p, [0.4], lw / 0.4, 200_000, seeds=[1], burn_in=100_000)
    d = simulate_conventional(p, [0.1], lw / 0.1, 200_000, seeds=[1], burn_in=100_000)
    law = theory.conventional_ess_law(0.1, lw / 0.1)
    # 2%: the boundary term |log k(T)/k(0)| / T over 10^5 steps is below ~1e-4 absolute (0.3% of the law
    # here) unless a window ends mid-burst, where log k can jump by ~2
    assert np.allclose(c.mean_log1p_ess2, law, rtol=0.02) and np.allclose(d.mean_log1p_ess2, law, rtol=0.02)


@pytest.mark.parametrize("alphas, sgd", [([1.0], None), ([1.0, 2.0], None), (None, None), (None, (4, 0.5)),
                                         ([1.0, 2.0, 4.0], (1, 0.5))])
def test_the_log_ess_law_holds_exactly_up_to_the_boundary_term(alphas, sgd):
    rng = np.random.default_rng(11)
    a = alphas if alphas is not None else list(rng.uniform(0.3, 3.0, 3))
    p = ToyProblem(a)
    lrs, wd, T = np.array([0.05, 0.3, 2.0]), 0.05, 20_000
    kw = dict(batch_size=sgd[0], mask_prob=sgd[1]) if sgd else {}
    res = simulate_conventional(p, lrs, wd, 2 * T, seeds=2, burn_in=T, record_every=T, **kw)
    law = theory.conventional_ess_law(lrs, wd)[:, None, None]
    k_start = res.group_elr_trace[:, :, 1, :]  # at t = burn_in
    k_end = res.final_group_elrs
    exact = law - (np.log(k_end) - np.log(k_start)) / T
    # exact identity: only rounding of 2e4 log1p terms and of the ELR recursion (~1e-12 relative)
    assert np.allclose(res.mean_log1p_ess2, exact, rtol=1e-9, atol=1e-12)
    # and the law itself up to the O(1/T) boundary term, whatever the regime
    assert np.all(np.abs(res.mean_log1p_ess2 - law) <= np.abs(np.log(k_end / k_start)) / T + 1e-9)


def test_the_derived_orbit_is_a_period_two_orbit_of_the_kernel():
    a = np.array([1.0, 2.0, 4.0])
    p = ToyProblem(a)
    for lw in (0.05, 0.3, 0.7):
        lr, wd = 0.5, lw / 0.5
        c = theory.conventional_equilibrium_c(lr, wd)
        phi = theory.equilibrium_amplitude([1.0], c)  # the flip angle of a group with k = c
        ge = theory.conventional_equilibrium_group_elrs(a, lr, wd)
        r2 = lr / ((1 - lr * wd) * ge)  # group norms that give those ELRs
        theta = p.from_angle_split(np.full(3, phi), r2)
        res = simulate_conventional(p, [lr], wd, 40, seeds=[0], init=theta, record_every=1)
        # neutral, not unstable: rounding stays at ~1e-15 over 40 steps
        assert np.allclose(res.loss_trace[0, 0], theory.conventional_equilibrium_loss(a, lr, wd), rtol=1e-10)
        assert np.allclose(res.group_elr_trace[0, 0], ge, rtol=1e-10)
        assert theory.conventional_equilibrium_loss(a, lr, wd) == pytest.approx(a.sum() / 2 * lw, rel=1e-12)
        assert abs(theory.conventional_orbit_stability_coefficient(c)) < 1e-12


def test_the_orbit_c_inverts_to_eta_lambda():
    # c = 1/(1 - eta lambda) (derivation 13) solved for eta lambda: 1 - 1/c, and back again
    cs = np.array([1.01, np.sqrt(3), 2.0, 50.0])
    lw = theory.conventional_lr_wd_at_c(cs)
    assert np.allclose(lw, 1 - 1 / cs, rtol=1e-14, atol=0)
    assert np.allclose(theory.conventional_equilibrium_c(lw / 0.1, 0.1), cs, rtol=1e-12)
    assert theory.conventional_lr_wd_at_c(2.0) == pytest.approx(0.5, rel=1e-15)
    with pytest.raises(ValueError, match="c_value"):
        theory.conventional_lr_wd_at_c(1.0)


def test_periodic_behaviour_follows_the_derived_quiet_phases_and_scaling():
    p = ToyProblem([1.0])
    wd = 0.01
    lws = np.array([5e-4, 1e-3, 2e-3, 5e-3])
    periods = []
    for lw in lws:
        lr = lw / wd
        res = simulate_conventional(p, [lr], wd, int(40 / lw), seeds=[0], record_every=1)  # ~40 cycles
        k = res.group_elr_trace[0, 0, :, 0]
        loss = res.loss_trace[0, 0]
        ess = k * 2 * np.sqrt(np.clip(loss * (1 - loss), 0, None))
        ph = quiet_phases(ess, k, lr, wd)
        assert len(ph) >= 30
        meas = np.array([u - t for t, u, _ in ph])
        pred = np.array([q - t for t, _, q in ph])
        # every quiet phase has the derived length for the k_a it started from; the linearised angle is
        # not exact at the two ends of a phase (ESS ~ 1e-3), which costs a few steps whatever the length
        # (measured at most 7.6 steps, of 170-5000; derivation 14's check)
        assert np.all(np.abs(meas - pred) < 12), np.abs(meas - pred).max()
        periods.append(np.mean(np.diff([t for t, _, _ in ph])[1:]))  # the first phase is a transient
    # the period grows like 1/(lr wd): the log-log slope over a decade of lr wd is -1. Cycle means scatter
    # by ~10% (the ELR each burst leaves drifts slowly), which moves the slope by up to ~0.1
    slope = np.polyfit(np.log(lws), np.log(periods), 1)[0]
    assert abs(slope + 1) < 0.12, slope


BAD = [(dict(lrs=[0.0], weight_decay=0.1), "lrs"), (dict(lrs=[-1.0], weight_decay=0.1), "lrs"),
       (dict(lrs=[np.nan], weight_decay=0.1), "lrs"), (dict(lrs=[0.1], weight_decay=-0.1), "weight_decay"),
       (dict(lrs=[0.1], weight_decay=np.inf), "weight_decay"), (dict(lrs=[2.0], weight_decay=0.5), "below 1")]


@pytest.mark.parametrize("kwargs, word", BAD)
def test_bad_input_is_refused(kwargs, word):
    with pytest.raises(ValueError, match=word):
        simulate_conventional(ToyProblem([1.0, 2.0]), kwargs["lrs"], kwargs["weight_decay"], 10)


@pytest.mark.parametrize("lyapunov", [False, pytest.param(True, marks=pytest.mark.slow)])  # compiling: ~40 s
def test_results_do_not_depend_on_threads(lyapunov):
    p = ToyProblem([1.0, 2.0, 4.0])
    lrs = np.geomspace(0.01, 5, 200)
    a = simulate_conventional(p, lrs, 0.1, 3000, seeds=2, threads=1, lyapunov=lyapunov)
    b = simulate_conventional(p, lrs, 0.1, 3000, seeds=2, threads=2, lyapunov=lyapunov)
    names = ("mean_loss", "mean_log1p_ess2", "hm_elr", "final_theta", "quiet_phases") + (("lyapunov",) if lyapunov
                                                                                        else ())
    for name in names:
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name


def test_cli_smoke(tmp_path):
    out = tmp_path / "o"
    # --no-lyapunov: the Lyapunov variant of the weight-decay kernel is compiled in the slow tests only
    assert CV.main(["--num", "6", "--steps", "4000", "--seeds", "2", "--out", str(out), "--quiet",
                    "--no-lyapunov"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["conventional.csv", "conventional.json", "conventional.png"]
    rows = (out / "conventional.csv").read_text().splitlines()
    header = rows[0].split(",")
    for col in ("lr_wd", "regime", "subtype", "mean_loss", "theory_loss", "hm_c", "theory_c", "mean_log1p_ess2",
                "theory_log1p_ess2", "frac_converged", "period", "nonfinite"):
        assert col in header, col
    assert len(rows) == 7
    rec = json.loads((out / "conventional.json").read_text())
    assert rec["parameters"]["weight_decay"] == 0.01 and rec["job"] == "conventional"
    assert CV.main(["--lr-wd-max", "1.5", "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert not (tmp_path / "bad").exists()
    # with momentum: the momentum orbit's theory columns (derivation 17), Lyapunov exponents off by itself
    mom = tmp_path / "m"
    assert CV.main(["--num", "3", "--steps", "4000", "--seeds", "1", "--out", str(mom), "--quiet", "--momentum",
                    "0.9"]) == 0
    rows = (mom / "conventional.csv").read_text().splitlines()
    head = rows[0].split(",")
    first = dict(zip(head, rows[1].split(","), strict=True))
    assert float(first["momentum"]) == 0.9 and "mean_lyapunov" not in head
    lw = float(first["lr_wd"])
    assert float(first["theory_cosine"]) == pytest.approx(1 - lw / 1.9, rel=1e-12)
    assert CV.main(["--momentum", "1", "--out", str(tmp_path / "bad2"), "--quiet"]) == 2


@pytest.mark.slow  # compiles the Lyapunov variant of the weight-decay kernel (~40 s)
def test_cli_with_lyapunov_exponents(tmp_path):
    out = tmp_path / "o"
    assert CV.main(["--num", "4", "--steps", "4000", "--seeds", "2", "--out", str(out), "--quiet", "--no-plot"]) == 0
    header = (out / "conventional.csv").read_text().splitlines()[0].split(",")
    assert "mean_lyapunov" in header


# ------------------------------------------------------------------------- the landing rule (16)
def test_the_landing_rule_on_the_toy_is_derivation_13s_orbit():
    lw = np.array([0.001, 0.05, 0.3, 0.9])
    # exact algebra: the same rational function, evaluated twice (1e-12)
    assert np.allclose(theory.conventional_landing_c(lw), theory.conventional_equilibrium_c(lw / 0.1, 0.1),
                       rtol=1e-12)
    assert np.allclose(theory.conventional_landing_target(lw), theory.conventional_ess_law(lw / 0.1, 0.1), rtol=1e-12)
    # the root solves the landing equation with the orbit's mean 2 log c (rounding of two logarithms: 1e-12)
    assert np.allclose(2 * np.log(theory.conventional_landing_c(lw)), theory.conventional_landing_target(lw),
                       rtol=1e-12)
    # and it moves like 1 + eta lambda at small eta lambda: finite difference at 0 (slope 1; O(h) error)
    h = 1e-6
    assert (theory.conventional_landing_c(h) - 1) / h == pytest.approx(1.0, abs=1e-5)
    for bad in (0.0, 1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="lr_wd"):
            theory.conventional_landing_c(bad)


def test_landing_interpolates_a_measured_curve():
    from toymodel import regimes

    elrs = np.geomspace(1e-3, 1, 7)
    m = 2 * np.log(elrs / 1e-3)  # linear in log ELR: interpolation is exact
    target = 2 * np.log(0.0457 / 1e-3)
    elr, (k0, k1) = regimes.landing(elrs, m, target)
    assert elr == pytest.approx(0.0457, rel=1e-12) and elrs[k0] <= elr <= elrs[k1] and k1 == k0 + 1
    # non-finite points are skipped; the first crossing from below is taken
    m2 = m.copy()
    m2[3] = np.nan  # the target lies between points 3 and 4: now bracketed by 2 and 4, still on the line
    elr2, br = regimes.landing(elrs, m2, target)
    assert br == (2, 4) and elr2 == pytest.approx(0.0457, rel=1e-12)
    bumpy = np.array([0.0, 1.0, 0.5, 2.0, 3.0, 4.0, 5.0])  # crosses 0.75 once going up (0-1) and again later
    assert regimes.landing(elrs, bumpy, 0.75)[1] == (0, 1)
    with pytest.raises(ValueError, match="below the sweep's range"):
        regimes.landing(elrs, m + 1, 0.5)
    with pytest.raises(ValueError, match="above the sweep's range"):
        regimes.landing(elrs, m, 100.0)
    with pytest.raises(ValueError, match="same length"):
        regimes.landing(elrs, m[:3], 1.0)


def test_the_landing_rule_on_a_toy_sweep_predicts_where_conventional_training_sits():
    from toymodel import PAPER_ALPHAS, regimes, simulate

    p = ToyProblem(PAPER_ALPHAS)
    A = float(np.sum(PAPER_ALPHAS))
    cs = np.geomspace(0.98, 3.0, 40)
    sweep = simulate(p, cs / A, 10_000, seeds=2, record_every=1)
    M = np.mean(-2 * np.log(sweep.cosine_trace[:, :, 5_000:]), axis=(1, 2))
    for lw, tol in ((0.05, 0.04), (0.2, 0.02)):
        c_rule, _ = regimes.landing(cs, M, theory.conventional_landing_target(lw))
        # below c = sqrt 3 the sweep sits on the orbit, so the rule gives derivation 16's c* (interpolating
        # 2 log c linearly in log c is exact; what the runs have not yet forgotten of their start after
        # 5*10^3 steps, t^(-1/2) from the neutral split, leaves 1.1e-3 here)
        assert c_rule == pytest.approx(theory.conventional_landing_c(lw), rel=3e-3)
        res = simulate_conventional(p, [0.5], lw / 0.5, 200_000, seeds=2, burn_in=100_000)
        c_sim = float(np.mean(res.hm_elr[0])) * A
        # conventional training sits 2.2% (0.05) and 0.5% (0.2) above the rule (derivation 16's table: its
        # orbit is neutral, so runs circle it at a slightly larger harmonic-mean c; bursts at small eta lambda)
        assert c_rule < c_sim < c_rule * (1 + tol)


# --------------------------------------------------------------------------------- momentum
def _numpy_momentum(problem, theta, lr, wd, mu, steps):
    """PyTorch's SGD with momentum on the toy, as plain NumPy: v <- mu v + grad F + wd theta,
    theta <- theta - lr v (v starts at 0); returns the point before every step and after the last."""
    a = np.asarray(problem.alphas, dtype=float)
    th, v = np.array(theta, dtype=float), np.zeros(len(theta))
    out = [th.copy()]
    for _ in range(steps):
        x, y = th[0::2], th[1::2]
        r2 = x * x + y * y
        g = np.empty_like(th)
        g[0::2], g[1::2] = 2 * a * x * y * y / r2**2, -2 * a * x * x * y / r2**2
        v = mu * v + g + wd * th
        th = th - lr * v
        out.append(th.copy())
    return np.array(out)


@pytest.mark.parametrize("lr, wd, mu, steps", [(0.5, 0.02, 0.9, 60), (2.0, 0.05, 0.5, 30)])
def test_the_momentum_kernel_equals_the_numpy_step(lr, wd, mu, steps):
    p = ToyProblem([1.0, 2.0, 4.0])
    theta0 = p.initial_point(3) * 1.7
    res = simulate_conventional(p, [lr], wd, steps, seeds=[3], init=theta0, record_every=1, momentum=mu)
    ref = _numpy_momentum(p, theta0, lr, wd, mu, steps)
    x, y = ref[:-1, 0::2], ref[:-1, 1::2]
    r2 = x * x + y * y
    loss = (p.alphas * x * x / r2).sum(axis=1)
    # the same operations up to association: rounding (1e-16) grows to 8e-14 over these steps (measured; the
    # second case is chaotic, and its relative difference reaches 1e-11 at step 40 and 4e-10 at step 60)
    assert np.allclose(res.loss_trace[0, 0], loss, rtol=1e-11, atol=1e-14)
    assert np.allclose(res.group_elr_trace[0, 0], lr / ((1 - lr * wd) * r2), rtol=1e-11)
    assert np.allclose(res.final_theta[0, 0], ref[-1], rtol=1e-10, atol=1e-13)
    # ESS_i: the tangent of the angle between consecutive points of group i; its window mean of log(1 + ESS^2)
    x1, y1 = ref[1:, 0::2], ref[1:, 1::2]
    ess2 = ((x * y1 - y * x1) / (x * x1 + y * y1)) ** 2
    assert np.allclose(res.mean_log1p_ess2[0, 0], np.log1p(ess2).mean(axis=0), rtol=1e-9)
    cos = (ref[:-1] * ref[1:]).sum(axis=1) / np.linalg.norm(ref[:-1], axis=1) / np.linalg.norm(ref[1:], axis=1)
    assert np.allclose(res.cosine_trace[0, 0], np.minimum(cos, 1.0), rtol=1e-11)


def test_momentum_zero_is_plain_sgd_and_small_momentum_is_close():
    p = ToyProblem([1.0, 2.0, 4.0])
    plain = simulate_conventional(p, [0.3, 1.0], 0.05, 3000, seeds=2, burn_in=1000, record_every=7)
    zero = simulate_conventional(p, [0.3, 1.0], 0.05, 3000, seeds=2, burn_in=1000, record_every=7, momentum=0.0)
    for f in ("mean_loss", "mean_cosine", "mean_angle", "mean_log1p_ess2", "hm_elr", "loss_trace", "final_theta"):
        assert np.array_equal(getattr(plain, f), getattr(zero, f)), f
    assert zero.momentum == 0.0
    # the momentum kernel at mu = 1e-12 follows the plain one to about 1e-12 relative over the first steps (its
    # cosine, angle and ESS are computed from the points, not from the gradient: equal in exact arithmetic)
    tiny = simulate_conventional(p, [0.3], 0.05, 40, seeds=[0], record_every=1, momentum=1e-12)
    ref = simulate_conventional(p, [0.3], 0.05, 40, seeds=[0], record_every=1)
    assert np.allclose(tiny.loss_trace, ref.loss_trace, rtol=1e-9)
    assert np.allclose(tiny.mean_log1p_ess2, ref.mean_log1p_ess2, rtol=1e-7)
    assert np.allclose(tiny.cosine_trace, ref.cosine_trace, rtol=1e-12)


def test_with_momentum_only_lr_times_wd_and_mu_matter():
    # theta -> s theta with lr -> s^2 lr and wd -> wd / s^2 maps the momentum recursion onto itself (the velocity
    # times lr scales like theta): the directions and the group ELRs are the same up to rounding
    p = ToyProblem([1.0, 2.0])
    theta = p.initial_point(1)
    a = simulate_conventional(p, [0.1], 0.2, 400, seeds=[1], init=theta, record_every=1, momentum=0.8)
    b = simulate_conventional(p, [0.4], 0.05, 400, seeds=[1], init=theta * 2.0, record_every=1, momentum=0.8)
    assert np.allclose(a.group_elr_trace, b.group_elr_trace, rtol=1e-9)
    assert np.allclose(a.loss_trace, b.loss_trace, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kwargs, word", [(dict(momentum=1.0), "momentum"), (dict(momentum=-0.1), "momentum"),
                                          (dict(momentum="x"), "momentum"),
                                          (dict(momentum=0.5, lyapunov=True), "lyapunov")])
def test_bad_momentum_is_refused(kwargs, word):
    with pytest.raises(ValueError, match=word):
        simulate_conventional(ToyProblem([1.0]), [0.1], 0.1, 10, **kwargs)


def test_the_momentum_orbit_reduces_to_the_plain_one_and_gives_the_rotational_equilibrium_angle():
    lw = np.array([0.01, 0.2, 0.6])
    plain = theory.conventional_momentum_orbit(lw, 0.0)
    # exact algebra (1e-12): mu = 0 is derivation 13's orbit and derivation 16's landing c
    assert np.allclose(7 * plain["loss_per_alpha"], theory.conventional_equilibrium_loss([1, 2, 4], lw / 0.5, 0.5),
                       rtol=1e-12)
    assert np.allclose(plain["c_equiv"], theory.conventional_landing_c(lw), rtol=1e-12)
    orb = theory.conventional_momentum_orbit(lw, 0.9)
    assert np.allclose(orb["cos_step"], 1 - lw / 1.9, rtol=1e-12)
    assert np.allclose(orb["log1p_ess2"], -2 * np.log(orb["cos_step"]), rtol=1e-12)
    # the orbit's point is a period-2 point of the NumPy statement of the step (rounding: 1e-13)
    lr, mu, l_w = 0.5, 0.9, 0.2
    o = theory.conventional_momentum_orbit(l_w, mu)
    r = np.sqrt(lr * 2.0 / (1 + mu))
    x, y = r * np.sqrt(o["loss_per_alpha"]), r * np.sqrt(1 - o["loss_per_alpha"])
    th, v = np.array([x, y]), np.array([-2 * x / lr, 0.0])
    for _ in range(2):
        r2 = th @ th
        g = np.array([2 * 2.0 * th[0] * th[1] ** 2 / r2**2, -2 * 2.0 * th[0] ** 2 * th[1] / r2**2])
        v = mu * v + g + (l_w / lr) * th
        th = th - lr * v
    assert np.allclose(th, [x, y], rtol=1e-13) and np.allclose(v, [-2 * x / lr, 0.0], rtol=1e-12, atol=1e-15)


def test_the_burst_detector_on_a_synthetic_trace():
    from toymodel.dynamics import elr_bursts

    lr, wd = 0.5, 0.002
    d = 1 - lr * wd
    # quiet phases of 200, 300 and 150 steps at exactly d^-2 per step, each ended by a burst that divides the
    # ELR by e^2 over 5 steps (ESS^2 about e^(2/5)/d^2 - 1 = 0.5 there); the first phase is open (not counted)
    elr, phases = [1e-3], []
    for length in (120, 200, 300, 150, 80):
        start = len(elr) - 1
        for _ in range(length):
            elr.append(elr[-1] / d**2)
        phases.append((start, len(elr) - 1))
        for _ in range(5):
            elr.append(elr[-1] / np.exp(2 / 5) / d**2 * d**2)
    found = elr_bursts(elr, lr, wd)
    assert [(a, b) for a, b, _ in found] == phases[1:]
    # the growth rate of log ELR in a quiet phase is derivation 14's -2 log(1 - eta lambda) (float rounding)
    assert np.allclose([g for *_, g in found], -2 * np.log(d), rtol=1e-9)
    # noise above the threshold ends a phase
    noisy = np.array(elr)
    noisy[400] *= 0.999
    assert len(elr_bursts(noisy, lr, wd)) == len(found) + 1
    # the open first phase is counted on request
    assert [(a, b) for a, b, _ in elr_bursts(elr, lr, wd, include_start=True)] == phases
    # mini-batch-like noise: every quiet step's ESS^2 at 10% of the law's d^-2 - 1 hides every phase from the
    # fixed threshold (ESS^2 > 1e-6 everywhere) but not from the relative one at 25% of the law
    rng = np.random.default_rng(0)
    ratios = np.array(elr[1:]) / np.array(elr[:-1])
    law = 1 / d**2 - 1
    ratios = np.where(ratios > 1, ratios / (1 + 0.1 * law * rng.uniform(0.5, 1.5, ratios.size)), ratios)
    jittered = elr[0] * np.r_[1.0, np.cumprod(ratios)]
    assert elr_bursts(jittered, lr, wd) == []
    rel = elr_bursts(jittered, lr, wd, relative=0.25, include_start=True)
    assert [(a, b) for a, b, _ in rel] == phases
    # their growth is the law's rate less the noise's mean log(1 + ESS^2): 0.9 of it to within the jitter's mean
    assert np.allclose([g for *_, g in rel], -2 * np.log(d) - np.log1p(0.1 * law), rtol=0.02)
    with pytest.raises(ValueError, match="relative"):
        elr_bursts(elr, lr, wd, relative=1.5)
