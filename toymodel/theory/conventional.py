r"""Conventional training: learning rate and weight decay, no projection (derivations 11-14).

Every group evolves on its own, its direction by the sphere's one-step map with a group ELR that
the weight decay drives (11); the mean log-ESS law that holds in every regime (12); the
equilibrium orbit, neutral rather than attracting (13); and the periodic quiet phases and bursts
of small weight decay (14). Numeric versions (:func:`conventional_equilibrium_c`,
:func:`conventional_ess_law`, ...) are ``sympy.lambdify`` of the derived results, built once per
process on first use.
"""

from __future__ import annotations

import functools

import numpy as np
import sympy as sp

from .._validate import as_alphas, as_lr_wd
from .core import (
    A,
    Derivation,
    Step,
    alpha,
    c,
    decade_bound,
    group_grad,
    identity,
    is_zero,
    k,
    kuznetsov_coefficient,
    lambdified_once,
    phi,
    r,
    x,
    y,
)
from .sphere import derive_equilibrium, derive_one_step_map

__all__ = [
    "derive_conventional_reduction",
    "derive_conventional_ess_law",
    "derive_conventional_equilibrium",
    "derive_conventional_periodic",
    "conventional_equilibrium_c",
    "conventional_lr_wd_at_c",
    "conventional_equilibrium_loss",
    "conventional_equilibrium_group_elrs",
    "conventional_ess_law",
    "conventional_burst_k",
    "conventional_quiet_steps",
    "conventional_orbit_stability_coefficient",
    "derive_conventional_landing",
    "derive_conventional_momentum",
    "conventional_momentum_orbit",
    "conventional_landing_target",
    "conventional_landing_c",
]

# ----------------------------------------------------------------------------- symbols
lr = sp.Symbol("eta", positive=True)  # the learning rate of conventional training
wdc = sp.Symbol("lambda", positive=True)  # the weight decay
dec = sp.Symbol("d", positive=True)  # the decay factor 1 - eta * lambda
kg = sp.Symbol("k_i", positive=True)  # a group's ELR of the direction map times its weight
essg = sp.Symbol(r"\mathrm{ESS}_i", positive=True)
tsteps = sp.Symbol("T", positive=True, integer=True)
lrwd = sp.Symbol(r"\eta\lambda", positive=True)  # the product of learning rate and weight decay
mom = sp.Symbol(r"\mu", nonnegative=True)  # heavy-ball momentum


# ------------------------------------------------------------------ derivation 11
@functools.lru_cache(maxsize=None)
def derive_conventional_reduction() -> Derivation:
    r"""Conventional training: the direction dynamics, its ELR, and which combination of (eta, lambda)
    matters.

    Returns
    -------
    Derivation
        Key ``11_conventional_reduction``; results ``k_dir`` (a group's k of the direction map),
        ``elr_next`` (the ELR recursion) and ``growth``.
    """
    fx, fy = group_grad()
    polar = {x: r * sp.sin(phi), y: r * sp.cos(phi)}
    k_dir = lr * alpha / (dec * r**2)  # group ELR of the direction map, eta / (d r^2), times alpha
    xn = (dec * x - lr * fx).subs(polar)
    yn = (dec * y - lr * fy).subs(polar)
    one = derive_one_step_map().results
    xn_closed = dec * (r * sp.sin(phi) * one["x_factor"]).subs(k, k_dir)
    yn_closed = dec * (r * sp.cos(phi) * one["y_factor"]).subs(k, k_dir)
    growth = sp.simplify((xn_closed**2 + yn_closed**2) / r**2)
    growth_target = dec**2 * one["growth"].subs(k, k_dir)
    elr_i = lr / (dec * r**2)
    elr_next = lr / (dec * r**2 * growth_target)
    ess = one["ess"].subs(k, k_dir)
    steps = (
        Step("One step of conventional training (learning rate eta, weight decay lambda, no projection) on "
             "group i: theta_i' = d theta_i - eta grad_i F with d = 1 - eta lambda. F is a sum of group terms, so "
             "grad_i F depends on theta_i alone: the groups evolve independently."),
        identity("In polar form the step is d times the step of the sphere map with k_i = eta alpha_i/(d r_i^2) "
                  "(x-component):", xn, xn_closed),
        identity("(y-component):", yn, yn_closed),
        Step("So the direction of group i follows the one-step map of derivation 02, phi_i' = phi_i - "
             "arctan(k_i sin 2phi_i), with the group ELR of the direction map", r"\tilde\eta_i", elr_i),
        identity("and its squared norm is multiplied by d^2 (1 + (k_i sin 2phi_i)^2):", growth, growth_target),
        identity("Hence the group ELR (and k_i) obeys eta_i' = eta_i / (d^2 (1 + ESS_i^2)), ESS_i = k_i |sin 2phi_i|:",
                  elr_next, elr_i / (dec**2 * (1 + ess**2))),
        Step("In the coordinates (phi_i, k_i) each group's map is phi' = phi - arctan(k sin 2phi), "
             "k' = k / (d^2 (1 + k^2 sin^2 2phi)): the learning rate and the weight decay enter only through "
             "d = 1 - eta lambda, i.e. through the product eta lambda, and alpha_i not at all (it only weighs the "
             "loss). The initial norm enters only through the initial k_i = eta alpha_i / (d r_i(0)^2), a transient."),
        Step("The total ELR of the direction map (the ELR the sphere map would need to take the same step) is "
             "eta/(d |theta|^2), the harmonic sum of the group ELRs:", r"\tilde\eta",
             sp.Symbol(r"\left(\sum_i 1/\tilde\eta_i\right)^{-1}")),
    )
    return Derivation(
        key="11_conventional_reduction",
        title="Conventional training: reduction to the direction map",
        claim=("With learning rate eta and weight decay lambda and no projection, every group evolves on its own: "
               "its direction follows the sphere's one-step map with group ELR eta_i = eta/((1 - eta lambda) r_i^2), "
               "and that ELR obeys eta_i' = eta_i / ((1 - eta lambda)^2 (1 + ESS_i^2)). Only the product eta lambda "
               "matters; the initial norm only sets the initial ELRs, and alpha_i drops out of each group's "
               "(phi_i, k_i) dynamics."),
        assumptions=("0 < eta lambda < 1 (the decay factor is positive)", "alpha_i > 0, r_i > 0"),
        steps=steps,
        results={"k_dir": k_dir, "elr_next": elr_i / (dec**2 * (1 + essg**2)), "growth": growth_target},
    )


# ------------------------------------------------------------------ derivation 12
@functools.lru_cache(maxsize=None)
def derive_conventional_ess_law() -> Derivation:
    r"""The law that holds in every regime: the time mean of log(1 + ESS_i^2).

    Returns
    -------
    Derivation
        Key ``12_conventional_ess_law``; results ``law`` (-2 log(1 - eta lambda)) and ``mean_exact``
        (the telescoped mean over T steps).
    """
    log_step = sp.expand_log(sp.log(kg / (dec**2 * (1 + essg**2))), force=True) - sp.log(kg)
    law = -2 * sp.log(dec)
    if not is_zero(log_step - (law - sp.log(1 + essg**2))):
        raise AssertionError("the log-ELR step of conventional training")
    lk0, lkT = sp.symbols(r"\log{k_i(0)} \log{k_i(T)}", real=True)
    mean_exact = law - (lkT - lk0) / tsteps
    small = sp.series(law.subs(dec, 1 - lr * wdc), lr, 0, 3).removeO()
    steps = (
        identity("From the reduction (derivation 11), one step changes log k_i by -2 log d - log(1 + ESS_i^2):",
                  log_step, law - sp.log(1 + essg**2), show=(r"\log k_i' - \log k_i", log_step)),
        Step("a per-step identity that holds for any gradient (GD, or the masked batch gradient of SGD, with "
             "ESS_i the step actually taken). Summed over T steps it telescopes:",
             r"\frac{1}{T}\sum_{t<T}\log(1+\mathrm{ESS}_i(t)^2)", mean_exact),
        Step("When the norms stay bounded (a stationary run: converged, periodic, or chaotic) the boundary term "
             "is O(1/T), so every group's time mean tends to the same value", r"\langle\log(1+\mathrm{ESS}_i^2)\rangle",
             law),
        Step("For small eta lambda it is", r"-2\log(1-\eta\lambda)", small),
        Step("It is the counterpart of the sphere's equal mean log-ESS across groups: with weight decay the common "
             "value is fixed by eta lambda. A run cannot stay at the minimum (ESS = 0) for ever: there log k_i "
             "grows by -2 log(1 - eta lambda) per step until the minimum destabilises (derivation 14)."),
    )
    return Derivation(
        key="12_conventional_ess_law",
        title="Conventional training: the mean log-ESS law (every regime, chaos included)",
        claim=("For every group and any gradient noise, (1/T) sum_t log(1 + ESS_i(t)^2) = -2 log(1 - eta lambda) "
               "- (log k_i(T) - log k_i(0))/T exactly, so in any run whose norms stay bounded the time mean of "
               "log(1 + ESS_i^2) equals -2 log(1 - eta lambda) up to O(1/T)."),
        assumptions=("conventional training with 0 < eta lambda < 1", "GD or mini-batch SGD"),
        steps=steps,
        results={"law": law.subs(dec, 1 - lr * wdc), "mean_exact": mean_exact},
    )


# ------------------------------------------------------------------ derivation 13
@functools.lru_cache(maxsize=None)
def _conventional_orbit_jacobian():
    """Jacobian of one group's sign-adjusted map in (u = 2 phi, w = log k) at the orbit, with
    s = sqrt(c^2 - 1), and its 2nd/3rd derivative tensors (lambdified)."""
    u_, w_ = sp.symbols("u w", real=True)
    s_ = sp.Symbol("s", positive=True)
    cc = sp.sqrt(1 + s_**2)
    kk = sp.exp(w_)
    # d = 1/c on the orbit: w' = w - 2 log d - log(1 + k^2 sin^2 u) = w + 2 log c - ...
    G = [-(u_ - 2 * sp.atan(kk * sp.sin(u_))), w_ + 2 * sp.log(cc) - sp.log(1 + kk**2 * sp.sin(u_) ** 2)]
    V = [u_, w_]
    u0 = sp.Symbol("u0")

    def at(e):
        e = e.subs({w_: sp.log(cc), u_: u0})
        return sp.simplify(e.subs({sp.sin(u0): s_ / cc, sp.cos(u0): 1 / cc}))

    J = sp.Matrix(2, 2, lambda i, j: at(sp.diff(G[i], V[j])))
    B = [[[at(sp.diff(G[i], V[a], V[b])) for b in range(2)] for a in range(2)] for i in range(2)]
    C = [[[[at(sp.diff(G[i], V[a], V[b], V[q])) for q in range(2)] for b in range(2)] for a in range(2)]
         for i in range(2)]
    return J, s_, sp.lambdify(s_, J, "numpy"), sp.lambdify(s_, B, "numpy"), sp.lambdify(s_, C, "numpy")


@functools.lru_cache(maxsize=None)
def derive_conventional_equilibrium() -> Derivation:
    r"""The equilibrium orbit of conventional training and its stability as a fixed point of the
    joint (direction, norm) map.

    Returns
    -------
    Derivation
        Key ``13_conventional_equilibrium``; results ``k_star``, ``c`` (in ``eta``, ``lambda``),
        ``loss``, ``group_elr``, and the ``det`` and ``trace`` of one group's Jacobian at the orbit.
    """
    # period-2 flip orbit of one group: cos 2 phi = 1/k (derivation 05) and k' = k:
    # d^2 (1 + ESS^2) = 1 with ESS^2 = k^2 - 1
    ess2 = derive_equilibrium().results["ess"].subs(c, kg) ** 2
    k_star = [s_ for s_ in sp.solve(sp.Eq(dec**2 * (1 + ess2), 1), kg) if s_.is_positive][0]
    c_star = k_star.subs(dec, 1 - lr * wdc)
    eq = derive_equilibrium().results
    loss = sp.simplify(eq["loss"].subs(c, c_star))
    group_elr = sp.simplify(k_star.subs(dec, 1 - lr * wdc) / sp.Symbol("alpha_i", positive=True))
    J, s_, _, _, _ = _conventional_orbit_jacobian()
    flip_check = (dec**2 * (1 + ess2)).subs(kg, k_star) - 1
    detJ = sp.simplify(J.det())
    trJ = sp.simplify(J.trace())
    cs_ = (1.05, 1.3, 1.6, 1.8, 2.5, 5.0)
    coefs = [abs(conventional_orbit_stability_coefficient(cv)) for cv in cs_]
    worst = max(coefs)
    steps = (
        Step("A group flips between +-phi* with cos 2phi* = 1/k (derivation 05) and keeps its ELR iff "
             "d^2 (1 + ESS^2) = 1 (derivation 11), with ESS^2 = k^2 - 1 on the flip orbit. So", r"k^*", k_star),
        identity("Check: at k* the ELR is unchanged,", flip_check, sp.Integer(0),
                  show=(r"d^2(1+\mathrm{ESS}^2) - 1", 0)),
        Step("for every group, whatever alpha_i: the orbit's c = elr A (every group has k_i = c, as on the sphere) is",
             "c", c_star),
        Step("It exists for every 0 < eta lambda < 1 (c > 1 always: with weight decay the minimum is never a "
             "fixed point). Loss on the orbit, (A/2)(1 - 1/c):", "F^*", loss),
        Step("Group ELRs of the direction map:", r"\tilde\eta_i^*", group_elr),
        Step("Linearise one group's map (sign-adjusted, u = 2phi, w = log k) at the orbit point, s = sqrt(c^2 - 1) "
             "(groups are independent, so the joint Jacobian is block diagonal with one such block per group):",
             "J", J),
        Step("a rotation: determinant and trace", r"(\det J,\ \mathrm{tr}\,J)", sp.Tuple(detJ, trJ)),
        identity("Its determinant is exactly 1:", detJ, sp.Integer(1), show=(r"\det J", 1)),
        Step("so both multipliers have modulus exactly 1 (cos theta = 2/c^2 - 1, as for the sphere's neutral pair) "
             "and, unlike the sphere's orbit, there is no contracting common-swing mode: every direction is "
             "neutral. The first normal-form coefficient (Kuznetsov's formula, derivation 09) then decides; "
             f"evaluated at c = {', '.join(f'{cv:g}' for cv in cs_)} it vanishes to rounding (all below "
             f"{decade_bound(max(worst, 1e-14))}): the cubic order does not decide either."),
        Step("Compared with training on the sphere (threshold c = 1, orbit attracting for 1 < c < sqrt 3): with "
             "weight decay there is no threshold (c > 1 for every eta lambda) and no range in which the orbit "
             "attracts at cubic order; runs circulate around it (quasi-periodic motion, periodic bursts at small "
             "eta lambda, chaos) instead of settling on it. The sphere's orbit attracted through the coupling of "
             "the groups by the global projection, which conventional training does not have."),
    )
    return Derivation(
        key="13_conventional_equilibrium",
        title="Conventional training: the equilibrium orbit and why runs do not settle on it",
        claim=("With weight decay every group has a period-2 orbit with k_i = 1/(1 - eta lambda), i.e. "
               "c = 1/(1 - eta lambda), loss (A/2) eta lambda and group ELRs 1/(alpha_i (1 - eta lambda)); it exists "
               "for every 0 < eta lambda < 1. Linearised with the norm as a variable, each group's block is a "
               "rotation (both multipliers of modulus 1) and the first normal-form coefficient vanishes: the orbit "
               "is neutral, not attracting, at every eta lambda."),
        assumptions=("0 < eta lambda < 1", "each group on its own (groups are independent)",
                     "normal-form coefficient evaluated numerically (float64)"),
        steps=steps,
        results={"k_star": k_star, "c": c_star, "loss": loss, "group_elr": group_elr, "det": detJ, "trace": trJ},
    )


# ------------------------------------------------------------------ derivation 14
@functools.lru_cache(maxsize=None)
def derive_conventional_periodic() -> Derivation:
    r"""Small weight decay: quiet phases at the minimum and bursts, their length and scaling.

    Returns
    -------
    Derivation
        Key ``14_conventional_periodic``; results ``total`` (the equation for k_b in ``k_a``, ``k_b``),
        ``quiet`` (the quiet phase's length) and ``antiderivative``.
    """
    ka, kb, kap = sp.symbols("k_a k_b kappa", positive=True)
    gamma = -2 * sp.log(dec)
    t_ = sp.Symbol("t", nonnegative=True)
    k_t = ka * sp.exp(gamma * t_)
    integrand = sp.log(1 - 2 * kap) / kap
    antider = -sp.polylog(2, 2 * kap)
    total = sp.re(antider.subs(kap, kb) - antider.subs(kap, ka))
    quiet = sp.log(kb / ka) / gamma
    small = sp.series(quiet.subs(dec, 1 - lr * wdc), lr, 0, 1).removeO()
    steps = (
        Step("Near the minimum (phi_i -> 0, ESS_i -> 0) the ELR recursion of derivation 11 becomes k_i' = k_i / d^2, "
             "so a group that starts a quiet phase at k_a has", "k_i(t)", k_t),
        identity("and its angle is multiplied by 1 - 2k_i(t) per step (derivation 04). It shrinks while k_i < 1 and "
                  "grows once k_i > 1; the burst comes when log|phi| has climbed back to where it started, at k_b "
                  "with sum_t log|1 - 2 k_i(t)| = 0. With dk = gamma k dt, gamma = -2 log d, the sum is "
                  "(1/gamma) times the integral of log|1 - 2 kappa|/kappa from k_a to k_b; its antiderivative is "
                  "minus the dilogarithm (differentiate to check):",
                  sp.expand_func(sp.diff(antider, kap)), integrand,
                  show=(r"\int \frac{\log(1-2\kappa)}{\kappa}d\kappa", antider)),
        Step("(its real part gives log|1 - 2kappa| on both sides of kappa = 1/2). So k_b solves", "0", total),
        Step("an equation in k_a and k_b alone: where a burst starts depends on the ELR left by the previous burst, "
             "not on eta lambda. The quiet phase lasts", r"T_{\mathrm{quiet}}", quiet),
        Step("which for small eta lambda is", r"T_{\mathrm{quiet}}", small),
        Step("so the period grows like 1/(eta lambda) as eta lambda -> 0 while a burst takes a number of steps that "
             "does not grow: the share of time spent converged tends to 1. Averaged over a cycle, the bursts carry "
             "all of the mean log-ESS of derivation 12: the sum of log(1 + ESS^2) over a burst is about "
             "log(k_b/k_a) = gamma T_quiet."),
    )
    return Derivation(
        key="14_conventional_periodic",
        title="Conventional training with small weight decay: periodic convergence and bursts",
        claim=("While a run sits at the minimum its group ELRs grow like (1 - eta lambda)^(-2t), so the minimum "
               "destabilises; the burst starts at the k_b that solves Re[Li_2(2 k_a) - Li_2(2 k_b)] = 0 for the k_a "
               "the previous burst left (independent of eta lambda), after a quiet phase of "
               "log(k_b/k_a)/(-2 log(1 - eta lambda)) ~ log(k_b/k_a)/(2 eta lambda) steps. The period grows like "
               "1/(eta lambda) and the share of time converged tends to 1 as eta lambda -> 0."),
        assumptions=("conventional training, small eta lambda", "one group (groups are independent)",
                     "the angle linearised at the minimum during the quiet phase; the burst itself is nonlinear and "
                     "k_a is measured, not derived"),
        steps=steps,
        results={"total": total, "quiet": quiet, "antiderivative": antider},
    )


# ------------------------------------------------------------------ derivation 16
@functools.lru_cache(maxsize=None)
def derive_conventional_landing() -> Derivation:
    r"""Where conventional training lands: the landing rule, and its value on the toy.

    Returns
    -------
    Derivation
        Key ``16_conventional_landing``; results ``target`` (the mean log(1 + ESS^2) that conventional
        training must reach, in ``eta lambda``), ``orbit_mean`` (that mean on the sphere's orbit at c)
        and ``landing_c`` (the toy's landing c, in ``eta lambda``).
    """
    target = sp.simplify(derive_conventional_ess_law().results["law"].subs(lr, lrwd / wdc))
    ess = derive_equilibrium().results["ess"]
    orbit_mean = sp.expand_log(sp.simplify(sp.log(1 + ess**2)), force=True)
    # the root that is positive for 0 < eta lambda < 1 (checked at eta lambda = 1/2)
    sols = [s_ for s_ in sp.solve(sp.Eq(orbit_mean, target), c) if s_.subs(lrwd, sp.Rational(1, 2)).is_positive]
    if len(sols) != 1:  # pragma: no cover - the derivation's own check
        raise AssertionError(f"the landing equation on the toy has {len(sols)} positive roots")
    landing_c = 1 / sp.simplify(1 / sols[0])
    orbit_c = derive_conventional_equilibrium().results["c"].subs(lr, lrwd / wdc)
    small = sp.series(landing_c, lrwd, 0, 3).removeO()
    steps = (
        Step("Conventional training moves each group's direction as the sphere does at the group ELR "
             "eta/((1 - eta lambda) r_i^2) (derivation 11): its state is a point of the fixed-ELR sphere's phase "
             "space at the total ELR eta/((1 - eta lambda) |theta|^2), which drifts on the norms' slow time scale "
             "(about 1/(2 eta lambda) steps)."),
        Step("Stationary norms need every group's time mean of log(1 + ESS_i^2) to equal the law of derivation "
             "12, which depends on eta lambda alone:", r"\langle\log(1+\mathrm{ESS}^2)\rangle_{\mathrm{target}}",
             target),
        Step("A fixed-ELR sweep on the sphere measures the same time mean, M(elr), at every ELR. The landing "
             "rule: conventional training settles at the ELR where the sphere's mean equals the target, "
             "M(elr*) = -2 log(1 - eta lambda), and in the regime the sweep finds there. It assumes that the "
             "sphere's statistics at a slowly drifting ELR are those of the fixed ELR (adiabatic), and it needs "
             "no model of F: the sweep measures M, on a toy or on a network."),
        Step("On the toy's orbit every group has ESS^2 = c^2 - 1 (derivation 05), so the sphere's mean is",
             r"M(c)", orbit_mean),
        Step("and the landing equation M(c) = -2 log(1 - eta lambda) has the one positive root", r"c^*", landing_c),
        identity("which is derivation 13's orbit of conventional training:", landing_c - orbit_c, sp.Integer(0),
                 show=(r"c^* - c_{13}", 0)),
        Step("For small eta lambda conventional training lands just above the sphere's threshold c = 1, in the "
             "equilibrium (on the toy, periodic up to c = sqrt 3, i.e. eta lambda < 1 - 1/sqrt 3):", r"c^*",
             small),
    )
    return Derivation(
        key="16_conventional_landing",
        title="Where conventional training lands: the landing rule",
        claim=("Plain (S)GD with weight decay settles at the total ELR where a fixed-ELR sweep's time mean of "
               "log(1 + ESS^2) equals -2 log(1 - eta lambda), in the regime the sweep has there. On the toy the "
               "sweep's mean on the orbit is 2 log c, so conventional training lands at c = 1/(1 - eta lambda), "
               "derivation 13's orbit."),
        assumptions=("plain SGD with weight decay (no momentum), 0 < eta lambda < 1",
                     "stationary norms (derivation 12)",
                     "the sphere's statistics at the slowly drifting total ELR are those of a fixed-ELR run "
                     "(adiabatic); on the toy, the orbit's mean 2 log c"),
        steps=steps,
        results={"target": target, "orbit_mean": orbit_mean, "landing_c": landing_c},
    )


# ------------------------------------------------------------------ derivation 17
@functools.lru_cache(maxsize=None)
def _momentum_orbit_charpoly():
    """det(M - z I) for one group's reflected step at the momentum orbit, in z, eta lambda and mu."""
    xx, yy, uu, ww = sp.symbols("x y u w", real=True)
    al_i = sp.Symbol("alpha_i", positive=True)
    f = al_i * xx**2 / (xx**2 + yy**2)
    un = mom * uu + sp.diff(f, xx) + wdc * xx
    wn = mom * ww + sp.diff(f, yy) + wdc * yy
    reflected = sp.Matrix([-(xx - lr * un), yy - lr * wn, -un, wn])
    J = reflected.jacobian([xx, yy, uu, ww])
    r2 = lr * al_i / (1 + mom)
    s2 = lrwd / (2 * (1 + mom))
    xs_, ys_ = sp.sqrt(s2 * r2), sp.sqrt((1 - s2) * r2)
    # cancel, not simplify, on the entries, and the Berkowitz characteristic polynomial (det(zI - M), equal to
    # det(M - zI) for a 4 x 4 matrix): the same polynomial, term for term, in 2 s instead of 28
    M = J.subs({xx: xs_, yy: ys_, uu: -2 * xs_ / lr, ww: 0}).subs(wdc, lrwd / lr).applyfunc(sp.cancel)
    zz = sp.Symbol("z")
    poly = sp.Poly(sp.cancel(M.charpoly(zz).as_expr()), zz)
    return sp.Add(*[sp.factor(cf) * zz**k for (k,), cf in poly.terms()])


@functools.lru_cache(maxsize=None)
def _momentum_orbit_excess() -> tuple[int, int, float]:
    """Over a 40 x 40 grid of (eta lambda, mu > 0): how many points, how many of them have a root of
    the momentum orbit's characteristic polynomial outside the unit circle (by more than 1e-12), and
    the smallest excess of the largest root modulus over 1 (numpy.roots)."""
    zz = sp.Symbol("z")
    coeffs = sp.lambdify((lrwd, mom), sp.Poly(_momentum_orbit_charpoly(), zz).all_coeffs(), "numpy")
    excess = [float(np.max(np.abs(np.roots(np.array(coeffs(lw, m), dtype=float))))) - 1.0
              for lw in np.geomspace(1e-3, 0.99, 40) for m in np.linspace(0.01, 0.99, 40)]
    return len(excess), int(np.sum(np.array(excess) > 1e-12)), float(np.min(excess))


@functools.lru_cache(maxsize=None)
def _momentum_orbit() -> dict:
    """Derivation 17's orbit (without its stability analysis, which takes far longer): the flip orbit of
    one group under heavy-ball momentum, solved by SymPy. Shared by the derivation and the numeric
    functions."""
    fx, fy = group_grad()
    ax, bv, xs, ys = sp.symbols("a b x_* y_*", real=True)
    al_i = sp.Symbol("alpha_i", positive=True)
    gx = fx.subs({x: xs, y: ys, alpha: al_i})
    gy = fy.subs({x: xs, y: ys, alpha: al_i})
    # period 2: theta_t = (s x*, y*), v_t = (s a, b) with s = (-1)^t; one step of v <- mu v + g + wd theta,
    # theta <- theta - eta v must give s -> -s
    eqs = [sp.Eq(-ax, mom * ax + gx + wdc * xs),  # v_x flips
           sp.Eq(xs + lr * ax, -xs),  # x flips: x - eta (-a) = -x
           sp.Eq(bv, mom * bv + gy + wdc * ys),  # v_y returns
           sp.Eq(ys - lr * bv, ys)]  # y returns
    a_sol = sp.solve(eqs[1], ax)[0]
    b_sol = sp.solve(eqs[3], bv)[0]
    cond_x = sp.simplify((eqs[0].lhs - eqs[0].rhs).subs(ax, a_sol) / xs)
    cond_y = sp.simplify((eqs[2].lhs - eqs[2].rhs).subs(bv, b_sol) / ys)
    R2, S2 = sp.symbols("R^2 S^2", positive=True)  # r^2 and sin^2 phi
    in_rs = {xs: sp.sqrt(S2 * R2), ys: sp.sqrt((1 - S2) * R2)}
    sol = sp.solve([sp.simplify(cond_x.subs(in_rs)), sp.simplify(cond_y.subs(in_rs))], [R2, S2], dict=True)
    sol = [s_ for s_ in sol if all(v.subs({lr: 1, wdc: sp.Rational(1, 5), mom: sp.Rational(1, 2), al_i: 2})
                                   .is_positive for v in s_.values())]
    if len(sol) != 1:  # pragma: no cover - the derivation's own check
        raise AssertionError(f"the momentum orbit has {len(sol)} positive solutions")
    r2, sin2 = sp.simplify(sol[0][R2]), sp.simplify(sol[0][S2])
    k_orb = sp.simplify(lr * al_i / r2)
    lw_form = {lr: lrwd / wdc}
    loss_per_alpha = sp.simplify(sin2.subs(lw_form))  # alpha_i sin^2 phi per group: F* = A sin^2 phi*
    cos_step = sp.simplify(1 - 2 * sin2)  # the angle flips from phi to -phi: cos 2 phi
    cos_lw = sp.simplify(cos_step.subs(lw_form))
    log1p = sp.simplify(-2 * sp.log(cos_lw))
    c_equiv = sp.simplify(1 / cos_lw)  # the sphere's orbit has cos = 1/c
    c_nominal = sp.simplify((lr / ((1 - lr * wdc) * r2) * al_i).subs(lw_form))
    return dict(a_sol=a_sol, b_sol=b_sol, cond_x=cond_x, cond_y=cond_y, r2=r2, sin2=sin2, k_orb=k_orb,
                lw_form=lw_form, loss_per_alpha=loss_per_alpha, cos_lw=cos_lw, log1p=log1p, c_equiv=c_equiv,
                c_nominal=c_nominal)


@functools.lru_cache(maxsize=None)
def derive_conventional_momentum() -> Derivation:
    r"""Conventional training with heavy-ball momentum: the period-2 orbit, its loss and angle.

    Returns
    -------
    Derivation
        Key ``17_conventional_momentum``; results (in ``eta``, ``lambda``, ``mu``, ``alpha_i``)
        ``r2`` (a group's squared norm on the orbit), ``sin2`` (sin^2 of its angle), ``k`` (eta alpha_i/r^2),
        ``loss_per_alpha`` (the orbit's loss over A), ``cos_step`` (the cosine between consecutive points),
        ``log1p_ess2`` (log(1 + ESS^2) per step), ``c_equiv`` (the sphere's c with the same step) and
        ``c_nominal`` (A times the direction map's ELR eta/((1 - eta lambda) r^2)).
    """
    o = _momentum_orbit()
    a_sol, b_sol, cond_x, cond_y = o["a_sol"], o["b_sol"], o["cond_x"], o["cond_y"]
    r2, sin2, k_orb, lw_form = o["r2"], o["sin2"], o["k_orb"], o["lw_form"]
    loss_per_alpha, cos_lw, log1p, c_equiv, c_nominal = (o["loss_per_alpha"], o["cos_lw"], o["log1p"], o["c_equiv"],
                                                         o["c_nominal"])
    plain = derive_conventional_equilibrium().results
    charpoly = _momentum_orbit_charpoly()
    zz = sp.Symbol("z")
    plain_poly = sp.factor(charpoly.subs(mom, 0))
    n_grid, n_out, min_excess = _momentum_orbit_excess()
    steps = (
        Step("PyTorch's SGD with momentum mu (no dampening, no Nesterov), v <- mu v + grad F + lambda theta, "
             "theta <- theta - eta v, acts on each group alone (nothing couples them without a projection). Look "
             "for the flip orbit of one group, theta_t = (s x*, y*), v_t = (s a, b), s = (-1)^t. The x "
             "components flip and the y components return iff"),
        Step("", r"a, b", sp.Tuple(a_sol, b_sol)),
        Step("and, with the gradient of alpha_i x^2/(x^2 + y^2), the two remaining conditions are",
             r"(\mathrm{flip}_x,\ \mathrm{return}_y)", sp.Tuple(cond_x, cond_y)),
        Step("In the group's squared norm r^2 and sin^2 phi they have the one positive solution",
             r"(r^2,\ \sin^2\phi^*)", sp.Tuple(r2, sin2)),
        Step("so the orbit exists for every 0 < eta lambda < 1 and 0 <= mu < 1, with k = eta alpha_i/r^2 =",
             "k", k_orb),
        Step("Its loss is A sin^2 phi* (every group has the same angle):", r"F^*/A", loss_per_alpha),
        identity("which for mu = 0 is derivation 13's (A/2) eta lambda:",
                 loss_per_alpha.subs(mom, 0) - plain["loss"].subs(A, 1).subs(lw_form), sp.Integer(0),
                 show=(r"F^*/A|_{\mu=0} - \eta\lambda/2", 0)),
        Step("The cosine between consecutive points (each group, hence the whole point, turns by 2 phi*):",
             r"\cos\Delta^*", cos_lw),
        Step("exactly the rotational-equilibrium formula E cos Delta* = 1 - eta lambda/(1 + mu) that Wan et al. "
             "and Kosson et al. derive for gradients uncorrelated from step to step, although the toy's gradient "
             "flips every step. Per step, with ESS = tan Delta*:", r"\log(1+\mathrm{ESS}^2)", log1p),
        Step("For mu = 0 it is the law of derivation 12; with momentum the law's value on the orbit is "
             "-2 log(1 - eta lambda/(1 + mu)), about 2 eta lambda/(1 + mu). The sphere's orbit turns by the same "
             "angle at", r"c_{\mathrm{equiv}}", c_equiv),
        Step("while A times the direction map's nominal ELR eta/((1 - eta lambda) r^2) is", r"c_{\mathrm{nominal}}",
             c_nominal),
        Step("larger by about 1 + mu: against the flipping gradient, momentum damps the step by 1/(1 + mu) "
             "(v = g - mu g + mu^2 g - ...), where for a constant gradient it would amplify it by 1/(1 - mu). "
             "With momentum, the landing rule (derivation 16) takes the target -2 log(1 - eta lambda/(1 + mu)) and "
             "lands, on the toy, at c_equiv."),
        Step("Stability: the step commutes with the reflection R: (x, v_x) -> (-x, -v_x), so the orbit's two-step "
             "Jacobian is M^2 with M = R J at the orbit point, J the one-step Jacobian in (x, y, v_x, v_y). M's "
             "characteristic polynomial depends on eta lambda and mu alone (not on eta, lambda or alpha_i apart):",
             r"\det(M - z I)", charpoly),
        identity("For mu = 0 it is z^2 times the neutral rotation of derivation 13 (both roots of modulus 1):",
                 sp.expand(plain_poly - zz**2 * (zz**2 - 2 * (1 - 4 * lrwd + 2 * lrwd**2) * zz + 1)), sp.Integer(0),
                 show=(r"\det(M - zI)|_{\mu=0}", plain_poly)),
        Step("For mu > 0 the product of the roots is mu^2 < 1, yet one complex pair leaves the unit circle: on a "
             f"grid of {n_grid} points (eta lambda from 1e-3 to 0.99, mu from 0.01 to 0.99) it does at {n_out}, the "
             f"smallest excess of the largest root modulus over 1 being about {min_excess:.0e} (near mu = 0.01, "
             "eta lambda = 1e-3; the excess grows with mu and eta lambda). The momentum orbit is linearly unstable: "
             "runs circulate around it instead of settling on it (without momentum it is neutral)."),
    )
    return Derivation(
        key="17_conventional_momentum",
        title="Conventional training with momentum: the orbit, and the rotational-equilibrium angle",
        claim=("With heavy-ball momentum mu every group of the toy has a period-2 flip orbit with r_i^2 = "
               "eta alpha_i/(1 + mu) and sin^2 phi* = eta lambda/(2(1 + mu)); its loss is (A/2) eta lambda/(1 + mu) "
               "and consecutive points have cosine 1 - eta lambda/(1 + mu), the rotational-equilibrium formula of "
               "uncorrelated gradients, exactly. The time mean of log(1 + ESS^2) on it is "
               "-2 log(1 - eta lambda/(1 + mu)), and the sphere turns by the same angle at "
               "c = 1/(1 - eta lambda/(1 + mu)). Unlike the plain orbit (neutral), the momentum orbit is linearly "
               "unstable for mu > 0."),
        assumptions=("PyTorch's SGD with momentum: no dampening, no Nesterov", "0 < eta lambda < 1, 0 <= mu < 1",
                     "instability for mu > 0 shown on a grid of (eta lambda, mu), not proved for every point"),
        steps=steps,
        results={"r2": r2, "sin2": sin2, "k": k_orb, "loss_per_alpha": loss_per_alpha, "cos_step": cos_lw,
                 "log1p_ess2": log1p, "c_equiv": c_equiv, "c_nominal": c_nominal, "charpoly": charpoly},
    )


# ================================================================ numeric versions
_K_A, _K_B = sp.symbols("k_a k_b", positive=True)  # k where a quiet phase starts and where it ends
_ALPHA_I = sp.Symbol("alpha_i", positive=True)

#: every lambdified result of this module, built on first use
_numeric = lambdified_once({
    "c": lambda: sp.lambdify((lr, wdc), derive_conventional_equilibrium().results["c"], "numpy"),
    "lr_wd_at_c": lambda: sp.lambdify(c, _lr_wd_of_c(), "numpy"),
    "loss": lambda: sp.lambdify((A, lr, wdc), derive_conventional_equilibrium().results["loss"], "numpy"),
    "group_elr": lambda: sp.lambdify((lr, wdc, _ALPHA_I), derive_conventional_equilibrium().results["group_elr"],
                                     "numpy"),
    "law": lambda: sp.lambdify((lr, wdc), derive_conventional_ess_law().results["law"], "numpy"),
    "burst": lambda: sp.lambdify((_K_A, _K_B), derive_conventional_periodic().results["total"], "mpmath"),
    "quiet": lambda: sp.lambdify((_K_A, _K_B, dec), derive_conventional_periodic().results["quiet"], "numpy"),
    "landing_target": lambda: sp.lambdify(lrwd, derive_conventional_landing().results["target"], "numpy"),
    "landing_c": lambda: sp.lambdify(lrwd, derive_conventional_landing().results["landing_c"], "numpy"),
    # the orbit alone: derivation 17's stability analysis is not needed for the numbers
    "momentum": lambda: sp.lambdify((lrwd, mom), [_momentum_orbit()[k] for k in
                                                  ("loss_per_alpha", "cos_lw", "log1p", "c_equiv", "c_nominal")],
                                    "numpy"),
})


def conventional_equilibrium_c(lr_value, weight_decay):
    r"""The c of the conventional-training orbit, :math:`1/(1-\eta\lambda)` (derived in
    ``derive_conventional_equilibrium``).

    Parameters
    ----------
    lr_value : float or array_like, shape (K,)
        Learning rates :math:`\eta`.
    weight_decay : float
        The weight decay :math:`\lambda`, with :math:`0 < \eta\lambda < 1`.

    Returns
    -------
    float or ndarray, shape (K,)
        A float for a scalar ``lr_value``.
    """
    lrs, wd = as_lr_wd(lr_value, weight_decay)
    out = np.asarray(_numeric("c")(lrs, wd), dtype=float)
    return float(out[0]) if np.ndim(lr_value) == 0 else out


def _lr_wd_of_c():
    """Derivation 13's c = 1/(1 - eta lambda) solved for eta lambda (SymPy)."""
    lw = sp.Symbol("eta_lambda", positive=True)
    c_of_lw = derive_conventional_equilibrium().results["c"].subs(lr, lw / wdc)
    (sol,) = sp.solve(sp.Eq(c, c_of_lw), lw)
    return sol


def conventional_lr_wd_at_c(c_value):
    r"""The :math:`\eta\lambda` at which the conventional-training orbit has the given c: the
    orbit's :math:`c = 1/(1-\eta\lambda)` (``derive_conventional_equilibrium``) solved for
    :math:`\eta\lambda` by SymPy, i.e. :math:`1 - 1/c`.

    Parameters
    ----------
    c_value : float or array_like
        Values of c > 1 (the conventional orbit has c > 1 for every :math:`\eta\lambda`).

    Returns
    -------
    float or ndarray
        A float for a scalar ``c_value``.
    """
    cv = np.asarray(c_value, dtype=float)
    if not np.all(cv > 1):  # also refuses NaN
        raise ValueError(f"c_value must be > 1 (the conventional orbit has c > 1 for every eta lambda), "
                         f"got {c_value!r}")
    out = np.asarray(_numeric("lr_wd_at_c")(cv), dtype=float)
    return float(out) if np.ndim(c_value) == 0 else out


def conventional_equilibrium_loss(alphas, lr_value, weight_decay):
    r"""Loss on the conventional-training orbit, :math:`\tfrac{A}{2}\eta\lambda` (derived).

    Parameters
    ----------
    alphas : array_like, shape (n,)
        The group weights, all positive.
    lr_value : float or array_like, shape (K,)
        Learning rates :math:`\eta`.
    weight_decay : float
        The weight decay :math:`\lambda`, with :math:`0 < \eta\lambda < 1`.

    Returns
    -------
    float or ndarray, shape (K,)
        A float for a scalar ``lr_value``.
    """
    a = as_alphas(alphas)
    lrs, wd = as_lr_wd(lr_value, weight_decay)
    out = np.asarray(_numeric("loss")(a.sum(), lrs, wd), dtype=float) * np.ones_like(lrs)
    return float(out[0]) if np.ndim(lr_value) == 0 else out


def conventional_equilibrium_group_elrs(alphas, lr_value, weight_decay) -> np.ndarray:
    r"""Group ELRs of the direction map on the orbit, :math:`1/(\alpha_i(1-\eta\lambda))`.

    Parameters
    ----------
    alphas : array_like, shape (n,)
        The group weights, all positive.
    lr_value : float or array_like, shape (K,)
        Learning rates :math:`\eta`.
    weight_decay : float
        The weight decay :math:`\lambda`, with :math:`0 < \eta\lambda < 1`.

    Returns
    -------
    ndarray, shape (n,) for a scalar ``lr_value``, else (K, n)
        One group ELR per group (and learning rate).
    """
    a = as_alphas(alphas)
    lrs, wd = as_lr_wd(lr_value, weight_decay)
    out = np.asarray(_numeric("group_elr")(lrs[:, None], wd, a[None, :]), dtype=float)
    return out[0] if np.ndim(lr_value) == 0 else out


def conventional_ess_law(lr_value, weight_decay):
    r"""The value of the time mean of :math:`\log(1+\mathrm{ESS}_i^2)` in every stationary run,
    :math:`-2\log(1-\eta\lambda)` (derivation 12).

    Parameters
    ----------
    lr_value : float or array_like, shape (K,)
        Learning rates :math:`\eta`.
    weight_decay : float
        The weight decay :math:`\lambda`, with :math:`0 < \eta\lambda < 1`.

    Returns
    -------
    float or ndarray, shape (K,)
        A float for a scalar ``lr_value``.
    """
    lrs, wd = as_lr_wd(lr_value, weight_decay)
    out = np.asarray(_numeric("law")(lrs, wd), dtype=float) * np.ones_like(lrs)
    return float(out[0]) if np.ndim(lr_value) == 0 else out


def _as_lr_wd_product(lr_wd) -> np.ndarray:
    v = np.asarray(lr_wd, dtype=float)
    if not np.all((v > 0) & (v < 1)):  # also refuses NaN
        raise ValueError(f"lr_wd must be in (0, 1) (eta * lambda, with a positive decay factor), got {lr_wd!r}")
    return v


def conventional_landing_target(lr_wd):
    r"""The time mean of :math:`\log(1+\mathrm{ESS}^2)` that conventional training must reach,
    :math:`-2\log(1-\eta\lambda)` (derivation 16, from derivation 12).

    Parameters
    ----------
    lr_wd : float or array_like
        The product :math:`\eta\lambda` of learning rate and weight decay, in (0, 1).

    Returns
    -------
    float or ndarray
        A float for a scalar ``lr_wd``.
    """
    v = _as_lr_wd_product(lr_wd)
    out = np.asarray(_numeric("landing_target")(v), dtype=float)
    return float(out) if np.ndim(lr_wd) == 0 else out


def conventional_landing_c(lr_wd):
    r"""Where conventional training lands on the toy, :math:`c^* = 1/(1-\eta\lambda)`: the root of the
    landing rule with the sphere's orbit mean :math:`2\log c` (derivation 16).

    Parameters
    ----------
    lr_wd : float or array_like
        The product :math:`\eta\lambda`, in (0, 1).

    Returns
    -------
    float or ndarray
        A float for a scalar ``lr_wd``.
    """
    v = _as_lr_wd_product(lr_wd)
    out = np.asarray(_numeric("landing_c")(v), dtype=float)
    return float(out) if np.ndim(lr_wd) == 0 else out


def conventional_momentum_orbit(lr_wd, momentum) -> dict:
    r"""The period-2 orbit of conventional training with momentum (derivation 17).

    Parameters
    ----------
    lr_wd : float or array_like
        :math:`\eta\lambda`, in (0, 1).
    momentum : float or array_like
        :math:`\mu` in [0, 1) (broadcast against ``lr_wd``).

    Returns
    -------
    dict of float or ndarray
        ``loss_per_alpha`` (the orbit's loss over :math:`A = \sum\alpha_i`,
        :math:`\eta\lambda/(2(1+\mu))`), ``cos_step`` (:math:`1-\eta\lambda/(1+\mu)`),
        ``log1p_ess2`` (log(1 + ESS^2) per step), ``c_equiv`` (the sphere's c with the same step,
        the landing c with momentum) and ``c_nominal`` (A times the direction map's ELR).
    """
    v = _as_lr_wd_product(lr_wd)
    mu = np.asarray(momentum, dtype=float)
    if not np.all((mu >= 0) & (mu < 1)):
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    vals = _numeric("momentum")(v, mu)
    names = ("loss_per_alpha", "cos_step", "log1p_ess2", "c_equiv", "c_nominal")
    scalar = np.ndim(lr_wd) == 0 and np.ndim(momentum) == 0
    shape = np.broadcast(v, mu).shape
    return {n: (float(np.asarray(val)) if scalar else np.broadcast_to(np.asarray(val, dtype=float), shape).copy())
            for n, val in zip(names, vals, strict=True)}


def conventional_burst_k(k_after: float) -> float:
    r"""Where a quiet phase that started at :math:`k_a` ends: the :math:`k_b > 1` with
    :math:`\mathrm{Re}[\mathrm{Li}_2(2k_a) - \mathrm{Li}_2(2k_b)] = 0` (derivation 14).

    Parameters
    ----------
    k_after : float
        :math:`k_a`, a group's k when the quiet phase starts (left by the previous burst), in (0, 1).

    Returns
    -------
    float
        :math:`k_b`, found by Brent's method on the derived equation (evaluated with mpmath).

    Raises
    ------
    ValueError
        If ``k_after`` is not in (0, 1).
    """
    import mpmath
    from scipy.optimize import brentq

    ka = float(k_after)
    if not 0 < ka < 1:
        raise ValueError(f"k_after must be in (0, 1), got {k_after!r}")
    f = _numeric("burst")

    def g(kb):
        return float(mpmath.re(f(ka, kb)))

    hi = 2.0
    while g(hi) < 0:
        hi *= 2
    return float(brentq(g, 1.0, hi, xtol=1e-14, rtol=1e-14))


def conventional_quiet_steps(lr_value, weight_decay, k_after: float, k_burst: float | None = None):
    r"""Length of a quiet phase, :math:`\log(k_b/k_a)/(-2\log(1-\eta\lambda))` (derivation 14).

    Parameters
    ----------
    lr_value : float or array_like, shape (K,)
        Learning rates :math:`\eta`.
    weight_decay : float
        The weight decay :math:`\lambda`, with :math:`0 < \eta\lambda < 1`.
    k_after : float
        :math:`k_a`, a group's k when the quiet phase starts.
    k_burst : float, optional
        :math:`k_b`, where it ends; by default :func:`conventional_burst_k` of ``k_after``.

    Returns
    -------
    float or ndarray, shape (K,)
        The number of steps (not rounded); a float for a scalar ``lr_value``.
    """
    lrs, wd = as_lr_wd(lr_value, weight_decay)
    kb = conventional_burst_k(k_after) if k_burst is None else float(k_burst)
    out = np.asarray(_numeric("quiet")(float(k_after), kb, 1 - lrs * wd), dtype=float)
    return float(out[0]) if np.ndim(lr_value) == 0 else out


def conventional_orbit_stability_coefficient(c_value: float) -> float:
    r"""First normal-form coefficient of the conventional-training orbit's neutral pair at
    :math:`c = 1/(1-\eta\lambda)` (one group; groups are independent). It vanishes for every c.

    Parameters
    ----------
    c_value : float
        The orbit's c, above 1.

    Returns
    -------
    float
        Kuznetsov's coefficient (unit eigenvector; derivation 13): zero to rounding.

    Raises
    ------
    ValueError
        If ``c_value <= 1``.
    """
    cv = float(c_value)
    if not cv > 1:
        raise ValueError(f"c must exceed 1, got {c_value!r}")
    _, _, fJ, fB, fC = _conventional_orbit_jacobian()
    sv = np.sqrt(cv * cv - 1.0)
    return kuznetsov_coefficient(np.array(fJ(sv), float), np.array(fB(sv), float), np.array(fC(sv), float))
