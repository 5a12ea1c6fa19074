"""Render every derivation of :mod:`toymodel.theory` to Markdown, each with a numeric check that
evaluates the derived (lambdified) expressions and compares them with the simulator's kernel
(``python -m toymodel.theory --write DIR``).

Output is the same byte for byte on any IEEE-754 machine, so the committed ``derivations/`` can
be checked for staleness by regenerating it and comparing bytes: seeds are fixed, the kernel does
the same floating-point operations everywhere, and every residual that passes through a
machine-dependent path (NumPy's vectorised transcendental functions, LAPACK) is shown as a bound
(``< 1e-13``) against a stated tolerance, never with its last digits. A residual above its
tolerance stops the render with an error, so a rendered bound is always a passed check.
Eigenvalues are computed with mpmath (pure Python, 30 digits), which is deterministic.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import sympy as sp

from . import regimes
from . import theory as T
from ._cli import ArgumentParser, output_dir, plural, run_cli
from ._records import atomic_write_text, check_writable_dir
from ._validate import as_alphas, as_elrs
from .dynamics import map_jacobian_fd
from .model import PAPER_ALPHAS, ToyProblem
from .simulate import simulate, simulate_conventional

__all__ = ["render_derivation", "write_derivations", "numeric_checks", "quantities", "main"]


def _within(x, tol: float) -> str:
    """A residual shown as the tolerance it meets (``< 1e-13``); an error if it does not."""
    x = float(x)
    if not x < tol:
        raise AssertionError(f"numeric check failed: residual {x!r} is not below its tolerance {tol:g}")
    return f"< {tol:.0e}"


def _decade(x) -> str:
    """A residual computed deterministically (kernel arithmetic, mpmath), shown as the decade it
    lies in (``< 1e-11``): the same on every machine."""
    x = float(x)
    return "0" if x == 0 else f"< 1e{int(np.floor(np.log10(x))) + 1}"


def _g(x, digits: int = 6) -> str:
    return f"{float(x):.{digits}g}"


def _table(header, rows) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return out


def _latex(expr) -> str:
    """LaTeX of a SymPy object; a str is taken as LaTeX already."""
    if isinstance(expr, str):
        return expr
    if isinstance(expr, tuple):
        expr = sp.Tuple(*expr)
    return sp.latex(expr)


def _random_alphas(seed: int, n: int) -> np.ndarray:
    return np.round(np.random.default_rng(seed).uniform(0.3, 3.0, n), 3)


# ---------------------------------------------------------------- numeric checks
# Tolerances: residuals at rounding level (a few ulp of O(1) values, summed over <= 6 groups) are
# shown against 1e-13; those that pass through a long recursion or a finite difference get their
# own tolerance, stated in the table's text.
ROUNDING_TOL = 1e-13
HESSIAN_TOL = 1e-11
FD_TOL = 1e-8


def _check_scale_invariance():
    lines = ["Random points and weights; the loss as computed by the simulator's kernel (first recorded "
             "loss) before and after rescaling one group by lambda, and the derived gradient identities "
             f"evaluated on the same points. Residuals are shown against a tolerance of {ROUNDING_TOL:g} "
             f"(rounding), {HESSIAN_TOL:g} for the Hessian identity (its terms grow like alpha_i / r_i).", ""]
    rows = []
    rng = np.random.default_rng(1)
    gx = sp.lambdify((T.alpha, T.x, T.y), T.derive_scale_invariance().results["grad_x"])
    gy = sp.lambdify((T.alpha, T.x, T.y), T.derive_scale_invariance().results["grad_y"])
    for n in (1, 3, 6):
        p = ToyProblem(_random_alphas(10 + n, n))
        th = p.random_points(rng, 64)
        lam_ = 10.0 ** rng.uniform(-3, 3, 64)
        i = rng.integers(0, n, 64)
        scaled = th.copy()
        for s in range(64):
            scaled[s, 2 * i[s] : 2 * i[s] + 2] *= lam_[s]
        both = np.stack([th, scaled])  # (2, 64, 2n): treat as (K, S)
        res = simulate(p, [0.1, 0.1], 1, seeds=list(range(64)), init=both, record_every=1)
        d_loss = np.abs(res.loss_trace[0, :, 0] - res.loss_trace[1, :, 0]).max()
        xs, ys = th[:, 0::2], th[:, 1::2]
        g = np.empty_like(th)
        g[:, 0::2] = gx(p.alphas, xs, ys)
        g[:, 1::2] = gy(p.alphas, xs, ys)
        orth = np.abs(xs * g[:, 0::2] + ys * g[:, 1::2]).max()
        hv = p.hessian_vector_product(th, th) + g
        # H theta has terms of size alpha_i / r_i (up to ~1e3 for the smallest groups here), so its
        # rounding is that much larger than that of O(1) values
        rows.append((n, _within(d_loss, ROUNDING_TOL), _within(orth, ROUNDING_TOL),
                     _within(np.abs(hv).max(), HESSIAN_TOL)))
    lines += _table(["n", "max abs F(scaled) - F (kernel)", "max abs <grad_i F, theta_i> (derived gradient)",
                     "max abs H theta + grad F"], rows)
    return lines


def _check_one_step():
    lines = ["One kernel step from random points, compared with the derived map in (phi, omega): "
             "`theory.one_step_map` (the lambdified phi_i' and growth factor) and the renormalisation by "
             f"D = sum_j omega_j growth_j. Residuals against a tolerance of {ROUNDING_TOL:g} (rounding).", ""]
    rows = []
    rng = np.random.default_rng(2)
    for n in (1, 3, 5):
        a = _random_alphas(20 + n, n)
        p = ToyProblem(a)
        for elr_ in (0.01, 0.3, 10.0):
            th = p.random_points(rng, 50)
            res = simulate(p, [elr_], 1, seeds=list(range(50)), init=th[None])
            phi0, om0 = p.to_angle_split(th)
            phi_pred, growth = T.one_step_map(elr_ * a / om0, phi0)
            om_pred = om0 * growth / np.sum(om0 * growth, axis=1, keepdims=True)
            phi1, om1 = p.to_angle_split(res.final_theta[0])
            dphi = np.abs(np.angle(np.exp(1j * (phi1 - phi_pred)))).max()
            rows.append((n, _g(elr_), _within(dphi, ROUNDING_TOL), _within(np.abs(om1 - om_pred).max(), ROUNDING_TOL)))
    lines += _table(["n", "elr", "max angle error", "max share error"], rows)
    return lines


def _check_group_elr_dynamics():
    lines = ["The kernel is run one step at a time (each step restarted from the kernel's previous state); the "
             "group ELRs it reports are compared with `theory.group_elr_next` (the lambdified recursion) applied to "
             "the previous state's group ELRs and ESS, and with the harmonic sum rule. Tolerance 1e-12 relative "
             "(rounding in a ratio of sums).", ""]
    rows = []
    for n, elr_ in ((3, 0.2), (3, 0.5), (5, 0.4)):
        a = np.array(PAPER_ALPHAS) if n == 3 else _random_alphas(33, n)
        p = ToyProblem(a)
        steps = 40
        th = p.initial_point(0)
        rel = harm = 0.0
        for _ in range(steps):
            res = simulate(p, [elr_], 1, seeds=[0], init=th, record_every=1)
            ge0 = res.group_elr_trace[0, 0, 0]  # at the state the step started from
            pred = T.group_elr_next(ge0, elr_ * p.effective_gradient_norm(th),
                                    ge0 * p.group_effective_gradient_norms(th))
            th = res.final_theta[0, 0]
            ge1 = p.group_elrs(th, elr_)
            rel = max(rel, float(np.abs(pred / ge1 - 1).max()))
            harm = max(harm, float(abs(np.sum(elr_ / ge1) - 1)))
        rows.append((n, _g(elr_), steps, _within(rel, 1e-12), _within(harm, ROUNDING_TOL)))
    lines += _table(["n", "elr", "steps", "max rel. error of recursion", "max abs sum(elr/elr_i) - 1"], rows)
    return lines


def _check_minimum_stability():
    a = np.array(PAPER_ALPHAS)
    p = ToyProblem(a)
    thr = T.threshold_elr(a)
    lines = [f"alpha = {a.tolist()}, derived threshold elr* = {_g(thr)}.", "",
             "(a) Contraction at the minimum: per-step ratio x_i(t+1)/x_i(t) of a converged kernel run against "
             "1 - 2 elr_i alpha_i from the run's own group ELRs.", ""]
    rows = []
    for cc in (0.3, 0.6, 0.9):
        e = cc * thr
        r1 = simulate(p, [e], 100, seeds=[1, 2])
        r2 = simulate(p, [e], 1, seeds=[1, 2], init=r1.final_theta)
        ratio = r2.final_theta[0, :, 0::2] / r1.final_theta[0, :, 0::2]
        mult, _ = T.minimum_multipliers(a, r1.final_group_elrs[0])
        rows.append((_g(cc), _decade(np.abs(ratio - mult).max())))
    lines += _table(["elr / elr*", "max abs ratio - (1 - 2 elr_i alpha_i)"], rows)
    lines += ["", "(b) The threshold: share of 16 random starts that reach the minimum (final loss at most "
              f"{regimes.CONVERGED_LOSS_TOL:g} sum(alpha), `regimes.CONVERGED_LOSS_TOL`) after 30000 steps.", ""]
    rows = []
    for n, seed in ((3, None), (2, 41), (4, 42)):
        aa = a if seed is None else _random_alphas(seed, n)
        pp = ToyProblem(aa)
        t_ = T.threshold_elr(aa)
        res = simulate(pp, [0.95 * t_, 1.05 * t_], 30_000, seeds=16)
        conv = (res.final_loss <= regimes.CONVERGED_LOSS_TOL * aa.sum()).mean(axis=1)
        rows.append((str(aa.tolist()), _g(t_), _g(conv[0], 3), _g(conv[1], 3)))
    lines += _table(["alpha", "elr*", "converged at 0.95 elr*", "converged at 1.05 elr*"], rows)
    return lines


def _check_equilibrium():
    lines = ["Random starts, 10^7 steps, statistics over the second half, 4 seeds; largest relative deviation "
             "from the derived values over seeds (and groups). The orbit is neutral in the norm-split directions "
             "(see the cycle linearisation), so random starts approach it only algebraically: the deviations "
             "shrink like 1/steps.", ""]
    rows = []
    steps = 10_000_000
    for a in (np.array(PAPER_ALPHAS), _random_alphas(51, 2), _random_alphas(52, 3)):
        p = ToyProblem(a)
        thr = T.threshold_elr(a)
        cs = np.array([1.05, 1.2, 1.5])
        res = simulate(p, cs * thr, steps, seeds=4, burn_in=steps // 2)
        for kq, cc in enumerate(cs):
            e = cc * thr
            rl = np.abs(res.mean_loss[kq] / T.equilibrium_loss(a, e) - 1).max()
            rc = np.abs(res.mean_cosine[kq] / T.equilibrium_cosine(a, e) - 1).max()
            ra = np.abs(res.mean_angle[kq] / T.equilibrium_angle(a, e) - 1).max()
            rg = np.abs(res.mean_eff_grad_norm[kq] / T.equilibrium_eff_grad_norm(a, e) - 1).max()
            re_ = np.abs(res.mean_group_elrs[kq] / T.equilibrium_group_elrs(a, e) - 1).max()
            rows.append((str(a.tolist()), _g(cc), _g(T.equilibrium_loss(a, e)), _decade(rl), _decade(rc), _decade(ra),
                         _decade(rg), _decade(re_)))
    lines += _table(["alpha", "c", "F*", "loss", "cosine", "angle", "eff. grad norm", "group ELRs"], rows)
    return lines


def _check_random_guess():
    rng = np.random.default_rng(6)
    rows = []
    for a in (np.array(PAPER_ALPHAS), _random_alphas(61, 5)):
        p = ToyProblem(a)
        pts = p.random_points(rng, 200_000)
        f = p.loss(pts)
        se = f.std() / np.sqrt(f.size)
        rows.append((str(a.tolist()), _g(T.random_guess_loss(a)), _g(f.mean()), _g(se, 2),
                     _g(T.random_guess_loss_std(a)), _g(f.std())))
    return ["Monte Carlo over 200000 uniform points per row (standard error shown).", ""] + _table(
        ["alpha", "derived mean", "MC mean", "MC std. error", "derived std", "MC std"], rows)


def _check_limits():
    a = np.array(PAPER_ALPHAS)
    p = ToyProblem(a)
    thr = T.threshold_elr(a)
    cs = np.array([1.01, 1.1, 10.0, 100.0, 1000.0, 10000.0])
    res = simulate(p, cs * thr, 200_000, seeds=4, burn_in=100_000)
    rows = []
    for kq, cc in enumerate(cs):
        e = cc * thr
        rows.append((_g(cc), _g(T.equilibrium_loss(a, e)), _g(res.mean_loss[kq].mean()),
                     _g(T.equilibrium_cosine(a, e)), _g(res.mean_cosine[kq].mean(), 4)))
    lines = [f"alpha = {a.tolist()}, random-guess level {_g(T.random_guess_loss(a))}; random starts, "
             "2*10^5 steps, means over the second half and 4 seeds. Near the threshold the simulation sits on "
             "the orbit; in the chaotic range (c around 10 to 100) the time-averaged loss differs from the orbit's; "
             "at very large c the loss is at the random-guess level and the cosine near 0, as derived.", ""]
    return lines + _table(["c", "F* derived", "mean loss (sim.)", "cos* derived", "mean cosine (sim.)"], rows)


def _check_cycle():
    from scipy.optimize import linear_sum_assignment

    rows = []
    for a, cc in ((np.array(PAPER_ALPHAS), 1.2), (np.array(PAPER_ALPHAS), 3.0), (_random_alphas(81, 2), 1.5),
                  (_random_alphas(82, 4), 2.0), (np.array([1.0]), 1.7)):
        p = ToyProblem(a)
        e = cc * T.threshold_elr(a)
        J = map_jacobian_fd(p, e, T.equilibrium_point(a, e), steps=2)
        ev = _eigvals_mp(J)
        mu = T.cycle_multipliers(a, e)
        cost = np.abs(ev[:, None] - mu[None, :])
        i, j = linear_sum_assignment(cost)
        rows.append((str(a.tolist()), _g(cc), _g(mu[0].real), "yes" if a.size > 1 else "none",
                     _within(cost[i, j].max(), FD_TOL)))
    lines = ["Jacobian of two kernel steps by central finite differences (h = 1e-6) in the same coordinates, at "
             "the derived orbit point; its eigenvalues (mpmath, 30 digits) matched one-to-one with the derived "
             "multipliers. The differences are the finite-difference error (O(h^2) truncation, O(eps/h) rounding, "
             "amplified near the repeated neutral pairs: about 1e-10); they are shown against a tolerance of "
             f"{FD_TOL:g}, since the coordinate changes (NumPy's vectorised sin, cos and arctan2) round differently "
             "on different CPUs.", ""]
    return lines + _table(["alpha", "c", "mu_0", "neutral pairs", "max abs eigenvalue difference"], rows)


def _eigvals_mp(J) -> np.ndarray:
    """Eigenvalues of a float64 matrix computed by mpmath at 30 digits: deterministic on every machine,
    unlike LAPACK, whose rounding depends on the CPU kernel it picks."""
    import mpmath

    with mpmath.workdps(30):
        ev = mpmath.eig(mpmath.matrix(np.asarray(J, dtype=float).tolist()), left=False, right=False)
        if isinstance(ev, tuple):  # mpmath returns (E, ER, EL) for a 1 x 1 matrix whatever it is asked
            ev = ev[0]
        return np.array([complex(v) for v in ev])


def _check_orbit_stability():
    from .dynamics import basin_fractions

    lines = ["Random starts for alpha = (1, nu), nu = alpha_2/alpha_1: share that ends on the equilibrium orbit "
             "(basin_fractions, 64 seeds, "
             "2*10^5 steps) below and above the derived c* = sqrt(3), with the sign of the coefficient.", ""]
    rows = []
    cstar = T.orbit_instability_c()
    for rv in (1.5, 4.0, 20.0):
        for cc in (1.6, 0.98 * cstar, 1.02 * cstar, 1.85):
            a = (1.0, rv)
            e = cc / sum(a)
            b = basin_fractions(ToyProblem(a), e, 200_000, seeds=64)
            other = 1 - b.fractions["equilibrium_orbit"] - b.fractions["chaotic"]
            rows.append((_g(rv), _g(cc, 4), "+" if T.orbit_stability_coefficient(a, e) > 0 else "-",
                         _g(b.fractions["equilibrium_orbit"], 3), _g(b.fractions["chaotic"], 3), _g(other, 3)))
    return lines + _table(["nu", "c", "sign of Re d", "share on the orbit", "share chaotic",
                           "share periodic / quasi-periodic"], rows)


def _check_sgd_threshold():
    rows = []
    for a in (np.array(PAPER_ALPHAS), _random_alphas(101, 3)):
        p = ToyProblem(a)
        for b, q in ((1, 0.5), (4, 0.5), (5, 0.5), (16, 0.25)):
            thr = T.sgd_threshold_elr(a, b, q)
            res = simulate(p, [0.9 * thr, 1.1 * thr], 100_000, seeds=16, burn_in=99_000, batch_size=b, mask_prob=q)
            conv = (res.max_loss <= regimes.CONVERGED_LOSS_TOL * a.sum()).mean(axis=1)
            rows.append((str(a.tolist()), b, _g(q), _g(T.sgd_stability_edge(b, q), 6), _g(conv[0], 3), _g(conv[1], 3)))
    return ["Random starts (16 seeds, 10^5 steps): share whose loss stays at most "
            f"{regimes.CONVERGED_LOSS_TOL:g} sum(alpha) (`regimes.CONVERGED_LOSS_TOL`) over the last "
            "1000 steps, at 0.9 and 1.1 times the derived SGD threshold.", ""] + _table(
        ["alpha", "b", "p", "k* = SGD/GD ratio", "converged at 0.9x", "converged at 1.1x"], rows)


def _check_conventional_reduction():
    lines = ["One step of the weight-decay kernel from random points (norms between 0.3 and 3), compared with the "
             "derived reduction: the direction by `theory.one_step_map` with "
             "k_i = eta alpha_i/((1 - eta lambda) r_i^2) and the squared norm by the derived factor "
             "(1 - eta lambda)^2 (1 + (k_i sin 2phi_i)^2). Tolerance "
             f"{ROUNDING_TOL:g} (rounding).", ""]
    rows = []
    rng = np.random.default_rng(12)
    growth_f = sp.lambdify((T.lr, T.alpha, T.r, T.phi, T.dec), T.derive_conventional_reduction().results["growth"])
    for n in (1, 3):
        a = _random_alphas(120 + n, n)
        p = ToyProblem(a)
        for lr, wd in ((0.05, 0.1), (0.5, 1.0), (4.0, 0.2)):
            th = p.random_points(rng, 40) * rng.uniform(0.3, 3.0, (40, 1))
            res = simulate_conventional(p, [lr], wd, 1, seeds=list(range(40)), init=th[None])
            phi0 = p.group_angles(th)
            r2 = p.group_squared_norms(th)
            d = 1 - lr * wd
            kk = lr * a / (d * r2)
            phi_pred, _ = T.one_step_map(kk, phi0)
            r2_pred = r2 * growth_f(lr, a, np.sqrt(r2), phi0, d)
            th1 = res.final_theta[0]
            dphi = np.abs(np.angle(np.exp(1j * (p.group_angles(th1) - phi_pred)))).max()
            dr2 = np.abs(p.group_squared_norms(th1) / r2_pred - 1).max()
            rows.append((n, _g(lr), _g(wd), _within(dphi, ROUNDING_TOL), _within(dr2, ROUNDING_TOL)))
    return lines + _table(["n", "lr", "wd", "max angle error", "max rel. error of r_i^2"], rows)


def _check_conventional_law():
    lines = ["Random starts, GD and SGD, window [T, 2T] with T = 2*10^4; per group, the time mean of log(1 + ESS_i^2) "
             "against the law -2 log(1 - eta lambda) (`theory.conventional_ess_law`), and against the exact identity "
             "with its boundary term. The first difference is O(1/T) and depends on the regime; the second is rounding "
             "(tolerance 1e-9, for sums of 2*10^4 terms).", ""]
    rows = []
    T_ = 20_000
    for a, sgd in ((np.array([1.0]), None), (np.array(PAPER_ALPHAS), None), (_random_alphas(130, 3), (4, 0.5))):
        p = ToyProblem(a)
        wd = 0.05
        lrs = np.array([0.02, 0.3, 2.0, 10.0])
        kw = dict(batch_size=sgd[0], mask_prob=sgd[1]) if sgd else {}
        res = simulate_conventional(p, lrs, wd, 2 * T_, seeds=2, burn_in=T_, record_every=T_, **kw)
        law = T.conventional_ess_law(lrs, wd)
        k0 = res.group_elr_trace[:, :, 1, :]
        exact = law[:, None, None] - (np.log(res.final_group_elrs) - np.log(k0)) / T_
        for q, lr in enumerate(lrs):
            dev = np.abs(res.mean_log1p_ess2[q] - law[q]).max()
            ex = np.abs(res.mean_log1p_ess2[q] - exact[q]).max()
            rows.append((str(a.tolist()), "GD" if sgd is None else f"SGD b={sgd[0]}, p={sgd[1]:g}", _g(lr * wd, 3),
                         _g(law[q], 6), _g(res.mean_log1p_ess2[q].mean(), 6), _g(dev, 2), _within(ex, 1e-9)))
    return lines + _table(["alpha", "mode", "eta lambda", "law", "measured (mean)", "max |measured - law|",
                           "max |measured - exact identity|"], rows)


def _check_conventional_equilibrium():
    lines = ["(a) Started on the derived orbit (angles +-phi*, norms giving the derived group ELRs), the weight-decay "
             "kernel stays on it: largest relative deviation of the loss and of the group ELRs over 1000 steps "
             "(neutral, so rounding is not amplified exponentially).", ""]
    rows = []
    a = np.array(PAPER_ALPHAS)
    p = ToyProblem(a)
    for lw in (0.01, 0.2, 0.6):
        lr, wd = 0.5, lw / 0.5
        c = T.conventional_equilibrium_c(lr, wd)
        ge = T.conventional_equilibrium_group_elrs(a, lr, wd)
        theta = p.from_angle_split(np.full(a.size, T.equilibrium_amplitude([1.0], c)), lr / ((1 - lr * wd) * ge))
        res = simulate_conventional(p, [lr], wd, 1000, seeds=[0], init=theta, record_every=1)
        dl = np.abs(res.loss_trace[0, 0] / T.conventional_equilibrium_loss(a, lr, wd) - 1).max()
        dg = np.abs(res.group_elr_trace[0, 0] / ge - 1).max()
        rows.append((_g(lw), _g(c), _g(T.conventional_equilibrium_loss(a, lr, wd)), _within(dl, 1e-9),
                     _within(dg, 1e-9)))
    lines += _table(["eta lambda", "c = 1/(1 - eta lambda)", "F* = (A/2) eta lambda", "loss deviation",
                     "group-ELR deviation"], rows)
    lines += ["", "(b) Random starts (8 seeds, 4*10^5 steps, second half): the effective c (harmonic time mean of A "
              "times the total ELR) and the time-averaged loss, against the orbit, and the share of runs that end "
              "within 5% of it (none would if the orbit does not attract).", ""]
    rows = []
    for lw in (0.01, 0.2, 0.6):
        lr, wd = 0.5, lw / 0.5
        res = simulate_conventional(p, [lr], wd, 400_000, seeds=8, burn_in=200_000, record_every=1000)
        ge = T.conventional_equilibrium_group_elrs(a, lr, wd)
        near = np.all(np.abs(res.group_elr_trace[0, :, -50:, :] / ge - 1) < 0.05, axis=(1, 2))
        rows.append((_g(lw), _g(T.conventional_equilibrium_c(lr, wd), 4), _g(np.mean(res.hm_elr[0]) * a.sum(), 4),
                     _g(T.conventional_equilibrium_loss(a, lr, wd), 4), _g(np.mean(res.mean_loss[0]), 4),
                     _g(near.mean(), 2)))
    return lines + _table(["eta lambda", "orbit c", "effective c (sim.)", "orbit loss", "mean loss (sim.)",
                           "share on the orbit at the end"], rows)


def _check_conventional_periodic():
    from .dynamics import quiet_phases

    lines = ["One group, weight decay 0.01, about 40 cycles per row: every quiet phase (ESS < 1e-3) is timed and its "
             "length compared with the derived log(k_b/k_a)/(-2 log(1 - eta lambda)) for the k_a it started from, "
             "with k_b from `theory.conventional_burst_k`; the period and the share of steps in quiet phases as "
             "eta lambda decreases.", ""]
    rows = []
    p = ToyProblem([1.0])
    wd = 0.01
    for lw in (5e-4, 1e-3, 2e-3, 5e-3):
        lr = lw / wd
        res = simulate_conventional(p, [lr], wd, int(40 / lw), seeds=[0], record_every=1)
        k = res.group_elr_trace[0, 0, :, 0]
        loss = res.loss_trace[0, 0]
        ess = k * 2 * np.sqrt(np.clip(loss * (1 - loss), 0, None))
        ph = quiet_phases(ess, k, lr, wd)
        meas = np.array([u - t for t, u, _ in ph])
        pred = np.array([q - t for t, _, q in ph])
        kb_meas = np.array([k[u] for _, u, _ in ph])
        kb_pred = np.array([T.conventional_burst_k(float(k[t])) for t, _, _ in ph])
        period = np.mean(np.diff([t for t, _, _ in ph])[1:])
        rows.append((_g(lw), len(ph), _g(np.abs(meas - pred).max(), 3), _g(np.mean(np.abs(kb_meas / kb_pred - 1)), 2),
                     _g(period, 5), _g(period * lw, 3), _g(np.mean(ess < 1e-3), 3)))
    return lines + _table(["eta lambda", "quiet phases", "max |measured - derived| length (steps)",
                           "mean rel. error of k_b", "mean period (steps)", "period x eta lambda",
                           "share of steps quiet"], rows)



def _fd_tangent_hessian(p: ToyProblem, theta, h: float = 1e-6) -> np.ndarray:
    """P H P at ``theta`` on the unit sphere, H by central differences of the gradient."""
    n = theta.size
    H = np.empty((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = h
        H[:, j] = (p.gradient(theta + e) - p.gradient(theta - e)) / (2 * h)
    P = np.eye(n) - np.outer(theta, theta) / (theta @ theta)
    return P @ ((H + H.T) / 2) @ P


def _check_sphere_stability_hessian():
    bound = T.sphere_stability_bound()
    lines = ["(a) At minima with random norm shares (x_i = 0), the top eigenvalues of the tangent Hessian "
             "P H P, H by central differences of the gradient (h = 1e-6: error O(h^2) + O(1e-16/h)), against the "
             "derived 2 alpha_i / omega_i (unit sphere); the other eigenvalues vanish. Relative tolerance "
             f"{FD_TOL:g}.", ""]
    rows = []
    for n, seed in ((3, None), (2, 51), (4, 52)):
        aa = np.array(PAPER_ALPHAS) if seed is None else _random_alphas(seed, n)
        pp = ToyProblem(aa)
        om = np.random.default_rng(60 + n).dirichlet(np.ones(n))
        theta = pp.from_angle_split(np.zeros(n), om)
        ev = np.sort(np.linalg.eigvalsh(_fd_tangent_hessian(pp, theta)))[::-1]
        pred = np.sort(T.tangent_hessian_eigenvalues(aa, om))[::-1]
        err = np.abs(ev[:n] / pred - 1).max()
        zero = np.abs(ev[n:]).max() / pred[0]
        rows.append((str(aa.tolist()), _within(err, FD_TOL), _within(zero, FD_TOL)))
    lines += _table(["alpha", "max rel. error of the n non-zero eigenvalues", "largest other |eigenvalue| / top"],
                    rows)
    lines += ["", f"(b) The bound elr lambda_max < {bound:g} is sharp: kernel runs started at a minimum whose top "
              "direction has elr lambda_max = z, with the angle of that group moved off by 1e-8; the per-step "
              "ratio of that angle over 20 steps against 1 - z.", ""]
    a = np.array(PAPER_ALPHAS)
    p = ToyProblem(a)
    rows = []
    for zz in (1.5, 1.9, 2.1, 2.5):
        elr_ = 0.05
        om = np.array([0.3, 0.3, 0.4])
        om[2] = elr_ * 2 * a[2] / zz  # elr * 2 alpha_3 / omega_3 = z
        om[:2] = (1 - om[2]) / 2
        phi0 = np.array([0.0, 0.0, 1e-8])
        res = simulate(p, [elr_], 20, seeds=[0], init=p.from_angle_split(phi0, om))
        th = res.final_theta[0, 0]
        phi_end = np.arctan2(th[4], th[5])
        rate = (phi_end / 1e-8) ** (1 / 20)
        lam = T.tangent_hessian_eigenvalues(a, om)
        rows.append((_g(zz, 3), _g(elr_ * lam.max(), 4), _g(abs(rate), 4), _g(abs(1 - zz), 4),
                     "grows" if abs(rate) > 1 else "decays"))
    lines += _table(["z = elr lambda_max", "elr lambda_max (derived, from the shares)",
                     "|angle ratio| per step (kernel)", "|1 - z|", "perturbation"], rows)
    return lines

def _check_conventional_landing():
    lines = ["The rule as a procedure on the toy, alpha = (1, 2, 4): a fixed-ELR sweep on the sphere (64 values of c "
             "from 0.98 to 12, 4 seeds, 2*10^4 steps; statistics over the second half) measures M(c), the time mean "
             "of log(1 + ESS^2) = -2 log cos(theta_t, theta_t+1), and `regimes.landing` solves "
             "M(c) = -2 log(1 - eta lambda) by interpolation between the sweep's points. Against it: the derived "
             "c* = 1/(1 - eta lambda) (`theory.conventional_landing_c`), and where conventional training sits "
             "(`simulate_conventional`, eta = 0.5, 4 seeds, 4*10^5 steps, second half: the harmonic time mean of A "
             "times the total ELR of the direction map). Where the sweep is chaotic M(c) is not the orbit's "
             "2 log c, and the rule follows the measured curve.", ""]
    a = np.array(PAPER_ALPHAS)
    p = ToyProblem(a)
    A = float(a.sum())
    cs = np.geomspace(0.98, 12.0, 64)
    T_ = 20_000
    sweep = simulate(p, cs / A, T_, seeds=4, record_every=1)
    M = np.mean(-2.0 * np.log(sweep.cosine_trace[:, :, T_ // 2:]), axis=(1, 2))
    rows = []
    for lw in (0.01, 0.05, 0.2, 0.5):
        c_star = T.conventional_landing_c(lw)
        c_rule, (k0, k1) = regimes.landing(cs, M, T.conventional_landing_target(lw))
        conv = simulate_conventional(p, [0.5], lw / 0.5, 400_000, seeds=4, burn_in=200_000)
        c_sim = float(np.mean(conv.hm_elr[0])) * A
        rows.append((_g(lw), _g(c_star, 5), f"{_g(c_rule, 4)} ({_g(cs[k0], 3)}-{_g(cs[k1], 3)})", _g(c_sim, 4),
                     _g(abs(c_rule / c_star - 1), 2), _g(abs(c_sim / c_rule - 1), 2)))
    return lines + _table(["eta lambda", "c* (derived)", "rule on the sweep (bracket)", "conventional (sim.)",
                           "rule vs c*", "sim. vs rule"], rows)


def _check_conventional_momentum():
    lines = ["(a) The orbit is an orbit of the map, and unstable as derived: the map (NumPy, float64, PyTorch's "
             "convention) started on it (angles +-phi*, velocity (a, 0) with a = -2x/eta before the first step); the "
             "largest relative deviation of the loss from (A/2) eta lambda/(1 + mu) over the first 4 steps "
             "(rounding: tolerance 1e-13), and the growth factor per step of the deviation of the state from the "
             "orbit over steps 6-30, against the largest root modulus of the derived characteristic polynomial "
             "(`numpy.roots`; 1 without momentum: the deviation stays at rounding).", ""]
    a = np.array(PAPER_ALPHAS)
    p = ToyProblem(a)
    A = float(a.sum())
    zz = sp.Symbol("z")
    poly = sp.Poly(T.derive_conventional_momentum().results["charpoly"], zz)
    rows = []
    for lw, mu in ((0.01, 0.9), (0.2, 0.5), (0.6, 0.9), (0.2, 0.0)):
        lr, wd = 0.5, lw / 0.5
        orb = T.conventional_momentum_orbit(lw, mu)
        r = np.sqrt(lr * a / (1 + mu))
        phi = np.arcsin(np.sqrt(orb["loss_per_alpha"]))  # sin^2 phi* = F*/A
        th = np.empty(2 * a.size)
        th[0::2], th[1::2] = r * np.sin(phi), r * np.cos(phi)
        v = np.zeros_like(th)
        v[0::2] = -2.0 * th[0::2] / lr  # the buffer before the first step: (a, 0), a = -2x/eta
        start = np.concatenate([th, v])
        dl, dev = 0.0, []
        for t in range(31):
            x, y = th[0::2], th[1::2]
            r2 = x * x + y * y
            if t < 4:
                dl = max(dl, abs((a * x * x / r2).sum() / (A * orb["loss_per_alpha"]) - 1))
            sign = np.ones(2 * a.size)
            sign[0::2] = (-1.0) ** t  # the orbit's state at step t: x and v_x flipped t times
            dev.append(np.linalg.norm(np.concatenate([th, v]) - start * np.concatenate([sign, sign])))
            g = np.empty_like(th)
            g[0::2], g[1::2] = 2 * a * x * y * y / r2**2, -2 * a * x * x * y / r2**2
            v = mu * v + g + wd * th
            th = th - lr * v
        rate = (dev[30] / dev[6]) ** (1 / 24) if dev[6] > 0 else 1.0
        roots = np.roots(np.array([complex(cf.subs({T.lrwd: lw, T.mom: mu})) for cf in poly.all_coeffs()]))
        rows.append((_g(lw), _g(mu), _g(A * orb["loss_per_alpha"], 5), _g(orb["cos_step"], 6), _within(dl, 1e-13),
                     _g(rate, 3), _g(np.max(np.abs(roots)), 3)))
    lines += _table(["eta lambda", "mu", "F* (derived)", "cos (derived)", "loss deviation (4 steps)",
                     "growth per step (map)", "largest root modulus (derived)"], rows)
    lines += ["", "(b) Random starts in the kernel (`simulate_conventional(..., momentum=mu)`, 4 seeds, 4*10^5 steps, "
              "the second half; the velocity starts at 0): the time means of the loss, of the cosine and of "
              "log(1 + ESS_i^2) (over groups), against the orbit's values, and the plain-SGD law -2 log(1 - eta "
              "lambda) for comparison.", ""]
    rows = []
    for lw in (0.01, 0.1, 0.5):
        for mu in (0.0, 0.5, 0.9):
            res = simulate_conventional(p, [0.5], lw / 0.5, 400_000, seeds=4, burn_in=200_000, momentum=mu)
            orb = T.conventional_momentum_orbit(lw, mu)
            rows.append((_g(lw), _g(mu), _g(A * orb["loss_per_alpha"], 4), _g(np.mean(res.mean_loss), 4),
                         _g(orb["cos_step"], 5), _g(np.mean(res.mean_cosine), 5), _g(orb["log1p_ess2"], 4),
                         _g(np.mean(res.mean_log1p_ess2), 4), _g(T.conventional_landing_target(lw), 4)))
    return lines + _table(["eta lambda", "mu", "orbit loss", "mean loss (sim.)", "orbit cos", "mean cos (sim.)",
                           "orbit log(1+ESS^2)", "mean log(1+ESS^2) (sim.)", "plain law"], rows)


_CHECKS = {
    "01_scale_invariance": _check_scale_invariance,
    "02_one_step_map": _check_one_step,
    "03_group_elr_dynamics": _check_group_elr_dynamics,
    "04_minimum_stability": _check_minimum_stability,
    "05_equilibrium": _check_equilibrium,
    "06_random_guess": _check_random_guess,
    "07_equilibrium_limits": _check_limits,
    "08_cycle_linearisation": _check_cycle,
    "09_orbit_nonlinear_stability": _check_orbit_stability,
    "10_sgd_threshold": _check_sgd_threshold,
    "11_conventional_reduction": _check_conventional_reduction,
    "12_conventional_ess_law": _check_conventional_law,
    "13_conventional_equilibrium": _check_conventional_equilibrium,
    "14_conventional_periodic": _check_conventional_periodic,
    "15_sphere_stability_hessian": _check_sphere_stability_hessian,
    "16_conventional_landing": _check_conventional_landing,
    "17_conventional_momentum": _check_conventional_momentum,
}


def numeric_checks(key: str) -> list[str]:
    """Markdown lines of the numeric check for derivation ``key``."""
    return _CHECKS[key]()


# ---------------------------------------------------------------------- rendering
def render_derivation(d: T.Derivation, with_check: bool = True) -> str:
    """The Markdown text of one derivation."""
    out = [f"# {d.title}", "", f"**Claim.** {d.claim}", "", "**Assumptions.**", ""]
    out += [f"- {a}" for a in d.assumptions]
    out += ["", "## Derivation", ""]
    for i, st in enumerate(d.steps, 1):
        mark = " *(verified by SymPy: the difference simplifies to 0)*" if st.verified else ""
        out.append(f"{i}. {st.text}{mark}")
        if st.rhs is not None:
            rhs = _latex(st.rhs)
            eq = f"{_latex(st.lhs)} = {rhs}" if st.lhs is not None else rhs
            out += ["", f"   $$ {eq} $$", ""]
    if with_check and d.key in _CHECKS:
        out += ["", "## Numeric check against the simulator", ""]
        out += numeric_checks(d.key)
    out += ["", "---", "Generated by `python -m toymodel.theory --write derivations` from "
                       f"`toymodel.theory.{_fn_name(d)}`; "
            "do not edit by hand.", ""]
    return "\n".join(out)


def _fn_name(d: T.Derivation) -> str:
    return dict(T.DERIVATIONS)[d.key].__name__


def _index(ds) -> str:
    out = ["# Derivations", "", "Generated from `toymodel.theory` (SymPy) with numeric checks against the simulator. "
           "Regenerate with `python -m toymodel.theory --write derivations`.", ""]
    out += [f"- [{d.title}]({d.key}.md): {d.claim}" for d in ds]
    out.append("")
    return "\n".join(out)


def write_derivations(directory, keys=None, progress: bool = False) -> list[Path]:
    """Write one Markdown file per derivation (and ``README.md``) into ``directory``."""
    directory = check_writable_dir(directory, "write")
    written = []
    for d in T.derivations(keys):
        if progress:
            print(f"  {d.key} ...", file=sys.stderr, flush=True)
        path = directory / f"{d.key}.md"
        atomic_write_text(path, render_derivation(d))
        written.append(path)
    if keys is None:
        path = directory / "README.md"
        atomic_write_text(path, _index(T.derivations()))
        written.append(path)
    return written


def quantities(alphas, elr) -> list[tuple[str, str]]:
    """The derived quantities at one ``(alphas, elr)``, as (name, value) text pairs."""
    a = np.asarray(as_alphas(alphas))
    e = float(as_elrs(elr, "elr")[0])
    cc = e * a.sum()
    out = [("alphas", str(a.tolist())), ("A = sum(alpha)", _g(a.sum(), 10)),
           ("threshold ELR 1/A", _g(T.threshold_elr(a), 10)), ("elr", _g(e, 10)), ("c = elr A", _g(cc, 10)),
           ("random-guess level A/2", _g(T.random_guess_loss(a), 10))]
    if cc > 1:
        mult = T.cycle_multipliers(a, e)
        out += [("regime by theory", "above the threshold: equilibrium orbit (period 2)"),
                ("orbit loss F*", _g(T.equilibrium_loss(a, e), 10)),
                ("orbit cosine 1/c", _g(T.equilibrium_cosine(a, e), 10)),
                ("orbit angular update", _g(T.equilibrium_angle(a, e), 10)),
                ("orbit effective gradient norm", _g(T.equilibrium_eff_grad_norm(a, e), 10)),
                ("orbit group ELRs elr A/alpha_i", ", ".join(_g(v, 8) for v in T.equilibrium_group_elrs(a, e))),
                ("cycle multipliers (per period)", ", ".join(f"{v.real:.6g}{v.imag:+.6g}i" for v in mult))]
        if a.size == 2:
            coef = T.orbit_stability_coefficient(a, e)
            out.append(("normal-form coefficient Re d (n = 2)",
                        f"{coef:.4g} ({'attracting' if coef < 0 else 'repelling'}; derivation 09)"))
    else:
        mult, neutral = T.minimum_multipliers(a, np.full(a.size, e * a.sum()) / a)
        out += [("regime by theory", "at or below the threshold: convergence"),
                ("minimum multipliers at the split omega_i = alpha_i/A", ", ".join(_g(v, 8) for v in mult)
                 + f" (and {plural(neutral, 'neutral split direction')})")]
    return out


def _main(argv=None) -> int:
    keys = [key for key, _ in T.DERIVATIONS]
    ap = ArgumentParser(prog="python -m toymodel.theory",
                        description="Print the derived quantities of the toy model at one (alphas, elr), or, with "
                                    "--write, render the SymPy derivations with numeric checks against the simulator "
                                    "as Markdown + LaTeX files.")
    ap.add_argument("--alphas", default=",".join(f"{v:g}" for v in PAPER_ALPHAS),
                    help="group weights, comma-separated (default: %(default)s, the paper's toy)")
    ap.add_argument("--elr", type=float, default=0.2, help="total ELR (default: %(default)g)")
    ap.add_argument("--write", metavar="DIR", default=None,
                    help="render the derivations into this folder instead (the repository keeps derivations/)")
    ap.add_argument("--only", metavar="KEY", action="append",
                    help="with --write: render only this derivation (repeatable): " + ", ".join(keys))
    ap.add_argument("--quiet", action="store_true", help="no progress messages")
    args = ap.parse_args(argv)
    if args.write is None:
        if args.only:
            raise ValueError("only needs --write")
        rows = quantities(args.alphas, args.elr)
        width = max(len(k) for k, _ in rows)
        print("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))
        return 0
    only = None
    if args.only:
        bad = [k_ for k_ in args.only if k_ not in keys]
        if bad:
            raise ValueError(f"unknown derivation {bad[0]!r}; known: {', '.join(keys)}")
        only = set(args.only)
    with output_dir(args.write, "write"):
        paths = write_derivations(args.write, only, progress=not args.quiet)
    if not args.quiet:
        print(f"wrote {plural(len(paths), 'file')} to {args.write}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    return run_cli(_main, argv, prog="python -m toymodel.theory")
