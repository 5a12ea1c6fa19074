r"""Derivations of the toy dynamics with SymPy, and numeric versions for the rest of the package.

Every closed form that :mod:`toymodel` uses is produced here by SymPy, never typed in. Each
``derive_*`` function returns a :class:`Derivation`: the claim, its assumptions, the steps
(each a SymPy expression that was computed, and where it is an identity, simplified to 0 by
SymPy), and named results. The public numeric functions (:func:`threshold_elr`,
:func:`equilibrium_loss`, ...) are ``sympy.lambdify`` of those results.

``python -m toymodel.theory --write DIR`` renders one Markdown file per derivation, with a
numeric check against the simulator, into ``DIR`` (the committed ``derivations/``); the renderer
and its checks live in :mod:`toymodel.derivation_checks`, so this module computes and never
writes.

Notation (``docs/theory.md``): weights :math:`\alpha_i`, :math:`A=\sum_i\alpha_i`; total ELR
:math:`\tilde\eta`; the dimensionless ELR :math:`c=\tilde\eta A`; group angle
:math:`\varphi_i` with :math:`x_i=r_i\sin\varphi_i,\ y_i=r_i\cos\varphi_i`; norm shares
:math:`\omega_i=r_i^2` on the unit sphere; group ELR :math:`\tilde\eta_i=\tilde\eta/\omega_i`
and :math:`k_i=\tilde\eta_i\alpha_i`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from .._validate import as_alphas, as_elrs

__all__ = [
    "Derivation",
    "Step",
    "derivations",
    "DERIVATIONS",
    "derive_scale_invariance",
    "derive_one_step_map",
    "derive_group_elr_dynamics",
    "derive_minimum_stability",
    "derive_sphere_stability_hessian",
    "sphere_stability_bound",
    "tangent_hessian_eigenvalues",
    "derive_equilibrium",
    "derive_equilibrium_limits",
    "derive_random_guess",
    "derive_cycle_linearisation",
    "threshold_elr",
    "minimum_multipliers",
    "equilibrium_group_elrs",
    "equilibrium_loss",
    "equilibrium_cosine",
    "equilibrium_angle",
    "equilibrium_eff_grad_norm",
    "equilibrium_amplitude",
    "equilibrium_point",
    "random_guess_loss",
    "random_guess_loss_std",
    "cycle_multipliers",
    "derive_orbit_nonlinear_stability",
    "orbit_stability_coefficient",
    "orbit_instability_c",
    "derive_sgd_threshold",
    "sgd_stability_exponent",
    "sgd_stability_edge",
    "sgd_threshold_elr",
    "sgd_stability_edge_large_batch",
    "one_step_map",
    "group_elr_next",
    "resonance_c",
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
]

# ----------------------------------------------------------------------------- symbols
x, y = sp.symbols("x y", real=True)
lam = sp.Symbol("lambda", positive=True)
alpha = sp.Symbol("alpha", positive=True)
eta = sp.Symbol("eta", positive=True)
r = sp.Symbol("r", positive=True)
phi = sp.Symbol("varphi", real=True)
k = sp.Symbol("k", positive=True)
c = sp.Symbol("c", positive=True)
A = sp.Symbol("A", positive=True)  # sum of alphas
elr = sp.Symbol(r"\tilde{\eta}", positive=True)
mu = sp.Symbol("mu")
tt = sp.Symbol("t", real=True)
# a group's ELR, the total ESS g*elr and the group's ESS g_i*elr_i (the group-ELR recursion)
_ELR_I = sp.Symbol(r"\tilde{\eta}_i", positive=True)
_ESS_TOTAL = sp.Symbol("G", positive=True)
_ESS_GROUP = sp.Symbol("S_i", positive=True)


@dataclass(frozen=True)
class Step:
    """One step of a derivation: an explanation and the expression SymPy computed.

    ``lhs`` and ``rhs`` are shown as ``lhs = rhs`` (each a SymPy object, or a LaTeX string for
    display only); with ``check`` set, SymPy simplified ``check`` to zero, which proves the step
    (``verified`` records it).
    """

    text: str
    lhs: object = None
    rhs: object = None
    check: object = None
    verified: bool | None = None


@dataclass(frozen=True)
class Derivation:
    """A derived result: claim, assumptions, steps and named SymPy results."""

    key: str
    title: str
    claim: str
    assumptions: tuple[str, ...]
    steps: tuple[Step, ...]
    results: dict = field(default_factory=dict)


def _decade_bound(x: float) -> str:
    """``"1e-k"``, the smallest power of ten above ``x`` (a residual shown without the digits that
    depend on the machine's rounding)."""
    return f"1e{int(np.floor(np.log10(float(x)))) + 1}"


def _is_zero(expr) -> bool:
    expr = sp.simplify(sp.trigsimp(sp.simplify(expr)))
    return bool(expr == 0)


def _identity(text, lhs, rhs, difference=None, show=None) -> Step:
    """A step asserting ``lhs == rhs``, proved by simplifying ``difference`` (default lhs-rhs).

    ``show = (lhs, rhs)`` overrides what is displayed (e.g. a LaTeX label for an expression
    that SymPy already evaluated).
    """
    diff = (lhs - rhs) if difference is None else difference
    ok = _is_zero(diff)
    if not ok:
        raise AssertionError(f"derivation step failed to verify: {text}")
    if show is not None:
        lhs, rhs = show
    return Step(text, lhs, rhs, diff, True)


def _group_loss():
    return alpha * x**2 / (x**2 + y**2)


def _group_grad():
    f = _group_loss()
    return sp.diff(f, x), sp.diff(f, y)


# ------------------------------------------------------------------ derivation 1
@functools.lru_cache(maxsize=None)
def derive_scale_invariance() -> Derivation:
    r"""Scale invariance of each group and orthogonality of the gradient to every group."""
    f = _group_loss()
    fx, fy = _group_grad()
    H = sp.hessian(f, (x, y))
    steps = (
        Step("The loss of group i (F is the sum of these over groups, each in its own variables):",
             sp.Symbol("f_i"), f),
        _identity("Rescaling the group by any lambda > 0 leaves it unchanged:",
                  f.subs({x: lam * x, y: lam * y}, simultaneous=True), f),
        Step("Its gradient:", r"\nabla_{\theta_i} f_i",
             sp.Matrix([sp.factor(fx), sp.factor(fy)])),
        _identity("The gradient is orthogonal to the group, <grad_i F, theta_i> = 0:",
                  x * fx + y * fy, sp.Integer(0)),
        _identity("The gradient scales inversely, grad f(lambda theta) = grad f(theta) / lambda (x-component):",
                  fx.subs({x: lam * x, y: lam * y}, simultaneous=True), fx / lam),
        _identity("and y-component:", fy.subs({x: lam * x, y: lam * y}, simultaneous=True), fy / lam),
        _identity("Euler's identity for degree -1: the Hessian maps theta_i to -grad_i F (x-component):",
                  (H * sp.Matrix([x, y]))[0], -fx),
        _identity("and y-component:", (H * sp.Matrix([x, y]))[1], -fy),
        Step("Hence, for the whole parameter vector, ||theta - eta grad F||^2 = ||theta||^2 + eta^2 ||grad F||^2 "
             "(Pythagoras), the step norm grows, and only the direction of theta matters."),
    )
    return Derivation(
        key="01_scale_invariance",
        title="Scale invariance of every group and orthogonality of the gradient",
        claim=("Each group term is invariant under rescaling of its own group, so F is scale-invariant group by "
               "group; the gradient is orthogonal to every group, scales like 1/lambda, and the Hessian maps "
               "theta_i to -grad_i F."),
        assumptions=("alpha_i > 0", "(x_i, y_i) != (0, 0) for every group"),
        steps=steps,
        results={"grad_x": fx, "grad_y": fy, "hessian": H},
    )


# ------------------------------------------------------------------ derivation 2
@functools.lru_cache(maxsize=None)
def derive_one_step_map() -> Derivation:
    r"""The exact one-step map of a group in angle/norm coordinates."""
    fx, fy = _group_grad()
    polar = {x: r * sp.sin(phi), y: r * sp.cos(phi)}
    kk = eta * alpha / r**2  # k_i = eta_i alpha_i with eta_i = eta / r_i^2
    xn = (x - eta * fx).subs(polar)
    yn = (y - eta * fy).subs(polar)
    xn_closed = r * sp.sin(phi) * (1 - 2 * k * sp.cos(phi) ** 2)
    yn_closed = r * sp.cos(phi) * (1 + 2 * k * sp.sin(phi) ** 2)
    growth = 1 + k**2 * sp.sin(2 * phi) ** 2
    phi_new = phi - sp.atan(k * sp.sin(2 * phi))
    # tan(phi') in terms of t = tan(phi): a rational identity SymPy can prove
    tan_ratio = sp.simplify((xn_closed / yn_closed).subs(phi, sp.atan(tt)))
    tan_target = sp.expand_trig(sp.tan(phi_new)).subs(phi, sp.atan(tt))
    ess = k * sp.Abs(sp.sin(2 * phi))
    steps = (
        Step("Write group i in polar form x_i = r_i sin(phi_i), y_i = r_i cos(phi_i) (phi_i = 0 is the minimiser) "
             "and let k_i = eta_i alpha_i, where eta_i = eta / r_i^2 is the group ELR (eta = elr on the unit sphere)."),
        _identity("The gradient step multiplies x_i and y_i by simple factors (x-component):",
                  xn, xn_closed.subs(k, kk)),
        _identity("(y-component; y_i keeps its sign since the factor is > 0):", yn, yn_closed.subs(k, kk)),
        _identity("The squared group norm grows by the factor 1 + (k_i sin 2phi_i)^2 = 1 + (eta_i g_i)^2:",
                  (xn_closed**2 + yn_closed**2) / r**2, growth),
        _identity("The angle turns by arctan(k_i sin 2phi_i): with t = tan(phi_i), tan(phi_i') equals",
                  tan_ratio, tan_target),
        Step("Since y_i keeps its sign and the turn is below pi/2, the angle map is exact (not only mod pi):",
             r"\varphi_i'", phi_new),
        Step("The group effective gradient norm is g_i = ||grad_i F|| r_i = alpha_i |sin 2 phi_i|, so the group "
             "ESS (and the tangent of the group's turn) is", r"\tilde\eta_i \tilde g_i", ess),
        Step("After the global projection onto the unit sphere, with D = 1 + sum_j omega_j (eta_j g_j)^2, the "
             "norm shares move as", r"\omega_i'",
             sp.Symbol("omega_i") * growth / sp.Symbol("D")),
    )
    return Derivation(
        key="02_one_step_map",
        title="The exact one-step map in angle / norm-split coordinates",
        claim=("In coordinates (phi_i, omega_i), one step of projected GD is: every group turns by "
               "phi_i' = phi_i - arctan(k_i sin 2phi_i) with k_i = elr_i alpha_i, its squared norm grows by "
               "1 + (k_i sin 2phi_i)^2, and the norm shares are renormalised by "
               "D = 1 + sum_j omega_j (k_j sin 2phi_j)^2. A group's angle depends on the others only through its "
               "own ELR."),
        assumptions=("unit total norm (rho = 1), so the learning rate equals the total ELR",
                     "alpha_i > 0, r_i > 0"),
        steps=steps,
        results={"phi_new": phi_new, "growth": growth, "ess": ess,
                 "x_factor": 1 - 2 * k * sp.cos(phi) ** 2, "y_factor": 1 + 2 * k * sp.sin(phi) ** 2},
    )


# ------------------------------------------------------------------ derivation 3
@functools.lru_cache(maxsize=None)
def derive_group_elr_dynamics() -> Derivation:
    r"""Group-ELR dynamics and the two sum rules (harmonic ELRs, ESS)."""
    n = 3  # the identities are proved for three symbolic groups; the algebra is the same for any n
    om = sp.symbols(f"omega_1:{n + 1}", positive=True)
    al = sp.symbols(f"alpha_1:{n + 1}", positive=True)
    ph = sp.symbols(f"varphi_1:{n + 1}", real=True)
    constraint = {om[-1]: 1 - sum(om[:-1])}
    elr_i = [elr / o for o in om]
    # on the unit sphere the gradient norm is sum_i ||grad_i F||^2 = sum_i alpha_i^2 sin^2(2phi_i) / omega_i
    g2 = sum(al[i] ** 2 * sp.sin(2 * ph[i]) ** 2 / om[i] for i in range(n))
    ess_i = [elr_i[i] * al[i] * sp.sin(2 * ph[i]) for i in range(n)]  # signed; squares below
    D = 1 + sum(om[i] * ess_i[i] ** 2 for i in range(n))
    om_new = [om[i] * (1 + ess_i[i] ** 2) / D for i in range(n)]
    elr_new_0 = elr / om_new[0]
    steps = (
        _identity("Group ELRs are elr_i = elr / omega_i, so their harmonic sum is fixed (omega on the simplex):",
                  sum(1 / e for e in elr_i).subs(constraint), 1 / elr),
        _identity("The total ESS squared is the omega-weighted mean of the group ESS squared, "
                  "(g elr)^2 = sum_i omega_i (g_i elr_i)^2:", elr**2 * g2,
                  sum(om[i] * ess_i[i] ** 2 for i in range(n))),
        Step("so the projection normaliser is D = 1 + (g elr)^2, and the new shares are "
             "omega_i' = omega_i (1 + (g_i elr_i)^2) / (1 + (g elr)^2)."),
        _identity("The group ELR therefore evolves as elr_i' = elr_i (1 + (g elr)^2) / (1 + (g_i elr_i)^2) "
                  "(shown for group 1):",
                  elr_new_0, elr_i[0] * (1 + elr**2 * g2) / (1 + ess_i[0] ** 2)),
        _identity("The shares stay on the simplex:", sum(om_new).subs(constraint), sp.Integer(1)),
    )
    return Derivation(
        key="03_group_elr_dynamics",
        title="Group-ELR dynamics and the sum rules",
        claim=("sum_i 1/elr_i = 1/elr at every step; (g elr)^2 = sum_i omega_i (g_i elr_i)^2; and "
               "elr_i(t+1) = elr_i(t) (1 + (g(t) elr)^2) / (1 + (g_i(t) elr_i(t))^2): a group whose ESS is above "
               "the weighted mean loses ELR, one below it gains."),
        assumptions=("unit total norm", "proved symbolically for three groups; every step is a per-group identity "
                     "or a sum over groups, so it holds for any n"),
        steps=steps,
        results={"elr_next": _ELR_I * (1 + _ESS_TOTAL**2) / (1 + _ESS_GROUP**2)},
    )


# ------------------------------------------------------------------ derivation 4
@functools.lru_cache(maxsize=None)
def derive_minimum_stability() -> Derivation:
    r"""Linear stability of the minimum, per group and for the whole system."""
    phi_new = derive_one_step_map().results["phi_new"]
    mult = sp.simplify(sp.diff(phi_new, phi).subs(phi, 0))
    stable_k = sp.solve_univariate_inequality(sp.Abs(mult) < 1, k, relational=False)
    k_edge = stable_k.sup  # = 1
    # with k_i = elr alpha_i / omega_i, stability of every group needs omega_i > elr alpha_i / k_edge,
    # possible on the simplex iff sum_i elr alpha_i / k_edge < 1
    thr_elr = sp.solve(sp.Eq(elr * A / k_edge, 1), elr)[0]
    growth = derive_one_step_map().results["growth"]
    dgrowth_dphi = sp.diff(growth, phi).subs(phi, 0)
    dphi_dk = sp.diff(phi_new, k).subs(phi, 0)
    steps = (
        Step("Linearise the angle map of one group at its minimiser phi_i = 0:",
             r"\left.\frac{\partial \varphi_i'}{\partial \varphi_i}\right|_{\varphi_i=0}", mult),
        Step("It is stable iff |1 - 2k_i| < 1, i.e. for k_i = elr_i alpha_i in", sp.Symbol("k_i"), stable_k),
        _identity("At the minimum the norm shares are frozen to first order: the growth factor is flat in phi_i,",
                  dgrowth_dphi, sp.Integer(0),
                  show=(r"\left.\frac{\partial (1 + k^2\sin^2 2\varphi)}{\partial \varphi}\right|_{\varphi=0}", 0)),
        _identity("and the angle does not respond to its ELR (so the Jacobian is block diagonal):",
                  dphi_dk, sp.Integer(0),
                  show=(r"\left.\frac{\partial \varphi'}{\partial k}\right|_{\varphi=0}", 0)),
        Step("Hence the Jacobian at a minimum is diag(1 - 2k_1, ..., 1 - 2k_n) on the angles and the identity on the "
             "n-1 norm-split directions: the minima form a manifold (the simplex of splits), and the n-1 directions "
             "along it are neutral (multiplier exactly 1)."),
        Step("Every group is stable iff omega_i > elr alpha_i for all i. Such a split exists on the simplex "
             "(sum omega_i = 1) iff sum_i elr alpha_i < 1, i.e. iff elr is below", r"\tilde\eta^*", thr_elr),
    )
    return Derivation(
        key="04_minimum_stability",
        title="Linear stability of the minimum and the convergence threshold",
        claim=("Group i is linearly stable at its minimum iff its ELR satisfies elr_i alpha_i < 1 (multiplier "
               "1 - 2 elr_i alpha_i). Because the norm split is free and sum_i omega_i = 1, some split makes every "
               "group stable iff elr < 1 / sum_i alpha_i: the paper's threshold. The n-1 norm-split directions are "
               "neutral at every minimum."),
        assumptions=("unit total norm", "alpha_i > 0"),
        steps=steps,
        results={"multiplier": mult, "k_edge": k_edge, "threshold_elr": thr_elr, "threshold_c": sp.Integer(1)},
    )


# ------------------------------------------------------------------ derivation 5
@functools.lru_cache(maxsize=None)
def derive_equilibrium() -> Derivation:
    r"""The equal-ESS equilibrium orbit above the threshold."""
    # a period-2 orbit that flips the angle: phi' = -phi  <=>  tan(2phi) = k sin(2phi)  <=>  cos(2phi) = 1/k
    flip = sp.Eq(sp.tan(2 * phi), k * sp.sin(2 * phi))
    cos2phi = 1 / k
    phi_star = sp.acos(cos2phi) / 2
    # phi' = -phi  <=>  arctan(k sin 2phi) = 2phi  <=>  tan 2phi = k sin 2phi (both angles in (0, pi/2))
    check_flip = (sp.tan(2 * phi) - k * sp.sin(2 * phi)).subs(phi, phi_star)
    ess_star = sp.simplify((k * sp.sin(2 * phi)).subs(phi, phi_star))
    al_i = sp.Symbol("alpha_i", positive=True)
    # equal ESS <=> equal k_i = elr alpha_i / omega_i =: kappa; simplex => kappa = elr A
    kappa = sp.solve(sp.Eq(elr * A / k, 1), k)[0]
    c_of = {k: c}
    sin2 = sp.simplify(sp.sin(phi_star) ** 2)
    loss = sp.simplify(A * sin2.subs(c_of))
    tan2 = (c - 1) / (c + 1)
    tan2_check = (sp.tan(phi_star.subs(k, c)) ** 2 - tan2).rewrite(sp.cos)
    cosine = sp.simplify(1 / sp.sqrt(1 + ess_star.subs(c_of) ** 2))
    angle = sp.acos(cosine)
    gbar_raw = sp.simplify(ess_star.subs(c_of) / elr).subs(elr, c / A)
    gbar = A * sp.sqrt(1 - 1 / c**2)  # the same for c > 0, and free of overflow for huge c
    if not _is_zero(gbar_raw - gbar):
        raise AssertionError("effective gradient norm on the orbit")
    group_elr = elr * A / al_i
    steps = (
        Step("Look for an orbit on which every group flips its angle each step, phi_i' = -phi_i. With the angle "
             "map of the one-step derivation this means", flip.lhs, flip.rhs),
        Step("For phi_i != 0 that is cos 2phi_i = 1/k_i, which has a solution iff k_i > 1:",
             r"\varphi^*", phi_star),
        _identity("Check: at phi*, tan 2phi - k sin 2phi vanishes, so the angle map sends phi* to -phi*:",
                  check_flip, sp.Integer(0), show=(r"\tan 2\varphi^* - k \sin 2\varphi^*", 0)),
        Step("On it the group ESS is", r"\tilde\eta_i \tilde g_i", ess_star),
        Step("The norm split is fixed iff every group has the same growth factor 1 + ESS^2, i.e. the same k_i "
             "(equal ESS). With k_i = elr alpha_i / omega_i = kappa and sum omega_i = 1:",
             r"\kappa", kappa),
        Step("So the orbit exists iff c = elr * sum(alpha) > 1, with shares omega_i* = alpha_i / A and group ELRs",
             r"\tilde\eta_i^*", group_elr),
        Step("Period: 2 in theta (x_i -> -x_i each step); the loss is the same at both points, so F is constant "
             "on the orbit. Amplitude (angle of every group from its minimiser):",
             r"\varphi^*", phi_star.subs(c_of)),
        _identity("equivalently", tan2_check, sp.Integer(0), show=(r"\tan^2\varphi^*", tan2)),
        Step("Loss on the orbit, A sin^2 phi*:", sp.Symbol("F^*"), loss),
        Step("Cosine between consecutive iterates, 1/sqrt(1 + ESS^2) (the gradient is orthogonal to theta):",
             r"\cos^*", cosine),
        Step("Angular update:", r"\Delta^*", angle),
        Step("Effective gradient norm, ESS / elr:", r"\tilde g^*", gbar),
    )
    return Derivation(
        key="05_equilibrium",
        title="The equal-ESS equilibrium orbit above the threshold",
        claim=("For c = elr * sum(alpha) > 1 there is a period-2 orbit on which every group has the same ESS "
               "sqrt(c^2-1), its angle flips between +-phi* with cos 2phi* = 1/c, the shares are "
               "omega_i = alpha_i/A, the group ELRs are elr A/alpha_i, the loss is (A/2)(1 - 1/c) at every step, "
               "and consecutive iterates have cosine 1/c."),
        assumptions=("unit total norm", "c > 1 (otherwise cos 2phi* = 1/c has no solution with phi* != 0)"),
        steps=steps,
        results={"phi_star": phi_star.subs(c_of), "loss": loss, "cosine": cosine, "angle": angle,
                 "eff_grad_norm": gbar, "group_elr": group_elr, "ess": ess_star.subs(c_of),
                 "tan2_phi_star": tan2, "sin2_phi_star": sin2.subs(c_of), "share": al_i / A},
    )


# ------------------------------------------------------------------ derivation 6
@functools.lru_cache(maxsize=None)
def derive_random_guess() -> Derivation:
    r"""Mean (and spread) of F at a uniform random point on the sphere."""
    u = sp.Symbol("u", real=True)
    mean_sin2 = sp.integrate(sp.sin(u) ** 2, (u, 0, 2 * sp.pi)) / (2 * sp.pi)
    var_sin2 = sp.simplify(sp.integrate(sp.sin(u) ** 4, (u, 0, 2 * sp.pi)) / (2 * sp.pi) - mean_sin2**2)
    steps = (
        Step("A uniform point on the unit sphere of R^{2n} is a normalised standard Gaussian vector. The pair "
             "(x_i, y_i) is rotation-invariant in its plane and independent of the other pairs, so the group "
             "angles phi_i are i.i.d. uniform on [0, 2pi), and x_i^2/(x_i^2+y_i^2) = sin^2 phi_i."),
        Step("Mean of one group term:", r"\mathbb{E}\,\sin^2\varphi", mean_sin2),
        Step("Variance of one group term:", r"\mathrm{Var}\,\sin^2\varphi", var_sin2),
        Step("So the random-guess level is", r"\mathbb{E} F", A * mean_sin2),
        Step("and the spread of F over random points is sqrt(sum_i alpha_i^2 / 8)."),
    )
    return Derivation(
        key="06_random_guess",
        title="The random-guess level",
        claim="The mean of F over uniform points of the sphere is sum(alpha)/2; its standard deviation is "
              "sqrt(sum alpha_i^2 / 8).",
        assumptions=("uniform distribution on the unit sphere of R^{2n}",),
        steps=steps,
        results={"mean_term": mean_sin2, "var_term": var_sin2, "loss": A * mean_sin2},
    )


# ------------------------------------------------------------------ derivation 7
@functools.lru_cache(maxsize=None)
def derive_equilibrium_limits() -> Derivation:
    r"""Limits of the equilibrium as c -> 1+ and c -> infinity."""
    eq = derive_equilibrium().results
    rg = derive_random_guess().results["loss"]
    lim = {}
    steps = [Step("Take the orbit quantities of the equilibrium derivation to the two ends of their range.")]
    for name, label in (("loss", "F^*"), ("cosine", r"\cos^*"), ("angle", r"\Delta^*"),
                        ("eff_grad_norm", r"\tilde g^*"), ("phi_star", r"\varphi^*")):
        lo = sp.limit(eq[name], c, 1, dir="+")
        hi = sp.limit(eq[name], c, sp.oo)
        lim[name] = (lo, hi)
        steps.append(Step(f"c -> 1+ and c -> oo of {name}:", label,
                          sp.Tuple(sp.simplify(lo), sp.simplify(hi))))
    near = sp.series(eq["loss"], c, 1, 2).removeO()
    epsilon = sp.Symbol("epsilon", positive=True)
    far = sp.series(eq["loss"].subs(c, 1 / epsilon), epsilon, 0, 2).removeO()
    steps.append(Step("Near the threshold the loss rises linearly (a continuous transition):", "F^*", near))
    steps.append(Step("For large c it approaches its limit like 1/c (epsilon = 1/c):", "F^*", far))
    steps.append(_identity("The large-ELR limit of the loss is the random-guess level:", lim["loss"][1], rg))
    return Derivation(
        key="07_equilibrium_limits",
        title="Limits of the equilibrium at the threshold and at infinite ELR",
        claim=("As c -> 1+ the orbit shrinks onto the minimum (loss -> 0, cosine -> 1, angular update -> 0): the "
               "transition is continuous. As c -> oo the loss tends to the random-guess level sum(alpha)/2 and "
               "consecutive iterates become orthogonal (cosine -> 0, update -> pi/2), like a random walk."),
        assumptions=("c > 1",),
        steps=tuple(steps),
        results={"limits": lim, "near": near, "far": far},
    )


# ------------------------------------------------------------------ derivation 8
@functools.lru_cache(maxsize=None)
def _cycle_jacobian_charpoly(n: int):
    """Characteristic polynomial of the sign-adjusted one-step Jacobian at the orbit, n symbolic groups."""
    al = sp.symbols(f"alpha_1:{n + 1}", positive=True)
    ph = sp.symbols(f"varphi_1:{n + 1}", real=True)
    ws = sp.symbols(f"omega_1:{n}", real=True)
    tot = sum(al)
    e = c / tot
    w = list(ws) + [1 - sum(ws)]
    kk = [e * al[i] / w[i] for i in range(n)]
    s2 = [kk[i] ** 2 * sp.sin(2 * ph[i]) ** 2 for i in range(n)]
    D = 1 + sum(w[i] * s2[i] for i in range(n))
    # the map followed by the symmetry x_i -> -x_i (phi_i -> -phi_i), which fixes the orbit point
    G = ([-(ph[i] - sp.atan(kk[i] * sp.sin(2 * ph[i]))) for i in range(n)]
         + [w[i] * (1 + s2[i]) / D for i in range(n - 1)])
    J = sp.Matrix(G).jacobian(list(ph) + list(ws))
    ps = sp.acos(1 / c) / 2
    sub = {**{p: ps for p in ph}, **{ws[i]: al[i] / tot for i in range(n - 1)}}
    Jn = J.subs(sub).applyfunc(sp.simplify)
    lm = sp.Symbol("lambda")
    return sp.factor(sp.simplify(Jn.charpoly(lm).as_expr())), lm


@functools.lru_cache(maxsize=None)
def _cycle_block():
    """The per-group 2x2 block of the orbit's linearisation and its multipliers (the cheap part of
    derivation 08, without the full-Jacobian cross-checks)."""
    phi_new = derive_one_step_map().results["phi_new"]
    S_ = (k * sp.sin(2 * phi)) ** 2  # squared group ESS
    ps = sp.acos(1 / k) / 2  # orbit angle for group ELR*alpha = k
    on = {phi: ps}
    # per-group partial derivatives on the orbit, in sign-adjusted variables xi = sign(phi) dphi and
    # v = domega/omega; d k / d v = -k (k = elr alpha / omega)
    a = sp.simplify(-sp.diff(phi_new, phi).subs(on))
    b = sp.simplify(k * sp.diff(phi_new, k).subs(on))  # -(d phi'/d k)(d k/d v) with d k/d v = -k
    p = sp.simplify(sp.diff(S_, phi).subs(on))
    q = sp.simplify((-k) * sp.diff(S_, k).subs(on))
    one_plus_S = sp.simplify((1 + S_).subs(on))
    M = sp.Matrix([[a, b], [p / one_plus_S, 1 + q / one_plus_S]]).subs(k, c).applyfunc(sp.simplify)
    lm = sp.Symbol("lambda")
    common = a.subs(k, c)
    detM = sp.simplify(M.det())
    trM = sp.simplify(M.trace())
    # c > 1 is easiest for SymPy as c = sqrt(1 + s^2) with s > 0 (s is the orbit's ESS)
    s_ess = sp.Symbol("s", positive=True)
    to_s = {c: sp.sqrt(1 + s_ess**2)}
    eig_s = [sp.factor(sp.simplify(ev)) for ev in sp.solve(sp.Eq(lm**2 - (trM * lm).subs(to_s) + detM, 0), lm)]
    eig_s = sorted(eig_s, key=lambda e: sp.default_sort_key(e))
    mu0 = sp.simplify(common**2)
    theta_rot = sp.acos(trM / 2)
    mus_s = [sp.factor(sp.simplify(e**2)) for e in eig_s]
    mus = [m.subs(s_ess, sp.sqrt(c**2 - 1)) for m in mus_s]
    return dict(a=a, b=b, p=p, q=q, M=M, lm=lm, common=common, detM=detM, trM=trM, s_ess=s_ess, to_s=to_s,
                eig_s=eig_s, mu0=mu0, theta_rot=theta_rot, mus_s=mus_s, mus=mus)


@functools.lru_cache(maxsize=None)
def derive_cycle_linearisation() -> Derivation:
    r"""Every multiplier of the equilibrium orbit, including the norm-split directions."""
    blk = _cycle_block()
    a, b, p, q, M, common = blk["a"], blk["b"], blk["p"], blk["q"], blk["M"], blk["common"]
    detM, trM, to_s, eig_s = blk["detM"], blk["trM"], blk["to_s"], blk["eig_s"]
    mu0, theta_rot, mus_s, mus = blk["mu0"], blk["theta_rot"], blk["mus_s"], blk["mus"]
    cp2, lm2 = _cycle_jacobian_charpoly(2)
    cp3, lm3 = _cycle_jacobian_charpoly(3)
    target = lambda n, lm_: (lm_ - common) * (lm_**2 - trM * lm_ + detM) ** (n - 1)  # noqa: E731
    steps = (
        Step("Coordinates: the n angles phi_i and n-1 shares omega_i (omega_n = 1 - sum). On the orbit "
             "phi_i alternates in sign, so compose the map with the symmetry phi -> -phi, which fixes the orbit "
             "point; the period-2 multipliers are the squares of the multipliers of that composite map."),
        Step("Use per-group variables xi_i = sign(phi_i) dphi_i and v_i = d omega_i / omega_i (with "
             "sum omega_i v_i = 0). On the orbit every group has k_i = c, so each group contributes the same "
             "partial derivatives: xi_i' = a xi_i + b v_i with", r"(a,\ b)",
             sp.Tuple(a.subs(k, c), b.subs(k, c))),
        Step("and the squared ESS S_i moves by dS_i = p xi_i + q v_i with", r"(p,\ q)",
             sp.Tuple(p.subs(k, c), q.subs(k, c))),
        Step("The shares obey v_i' = v_i + (dS_i - sum_j omega_j dS_j) / (1 + S), 1 + S = c^2. The omega-weighted "
             "mean of xi is a mode of its own (all groups swinging together, shares unchanged), with multiplier",
             r"\lambda_0", common),
        Step("The n-1 deviations from the mean each evolve by the same 2x2 matrix (swing and share exchange):",
             sp.Symbol("M"), M),
        Step("Its determinant and trace:", r"\left(\det M,\ \mathrm{tr}\,M\right)",
             sp.Tuple(detM, trM)),
        Step("With c = sqrt(1 + s^2), s = sqrt(c^2 - 1) the orbit's ESS, the eigenvalues of M are",
             r"\lambda_\pm", sp.Tuple(*eig_s)),
        _identity("each of modulus 1:", sp.simplify(eig_s[0] * sp.conjugate(eig_s[0])), sp.Integer(1),
                  show=(r"\lambda_\pm \overline{\lambda_\pm}", 1)),
        _identity("with real part tr M / 2 = 2/c^2 - 1:", sp.simplify(sp.re(sp.expand_complex(eig_s[0]))),
                  (trM / 2).subs(to_s)),
        Step("det M = 1 and |tr M| < 2 for every c > 1: the eigenvalues are a complex pair on the unit circle, "
             "e^{+-i theta}, rotating by theta = 2 arctan(s) = 2 arccos(1/c), twice the angular update:",
             r"\vartheta", theta_rot),
        _identity("Cross-check with the full symbolic Jacobian for n = 2 (symbolic alphas): the characteristic "
                  "polynomial is (lambda - lambda_0)(lambda^2 - tr M lambda + 1)",
                  sp.expand(cp2 / sp.LC(sp.Poly(cp2, lm2))), sp.expand(target(2, lm2)),
                  show=(sp.Symbol(r"\chi_{n=2}(\lambda)"), cp2)),
        _identity("and for n = 3, where the pair appears twice:",
                  sp.expand(cp3 / sp.LC(sp.Poly(cp3, lm3))), sp.expand(target(3, lm3)),
                  show=(sp.Symbol(r"\chi_{n=3}(\lambda)"), cp3)),
        Step("Multipliers over one period (squares): the common swing", r"\mu_0", mu0),
        Step("and n-1 copies of the neutral pair (s = sqrt(c^2 - 1)), e^{+-2 i theta}:", r"\mu_\pm",
             sp.Tuple(*mus_s)),
        _identity("whose modulus is exactly 1:", sp.simplify(mus_s[0] * sp.conjugate(mus_s[0])), sp.Integer(1),
                  show=(r"\mu_\pm \overline{\mu_\pm}", 1)),
        _identity("The rotation angle is twice the orbit's angular update arccos(1/c): cos theta = cos(2 arccos(1/c))",
                  sp.cos(theta_rot), sp.expand_trig(sp.cos(2 * sp.acos(1 / c)))),
    )
    return Derivation(
        key="08_cycle_linearisation",
        title="Linear stability of the equilibrium orbit, including the norm split",
        claim=("Over one period (2 steps) the linearised map of the equilibrium orbit has 2n-1 multipliers: "
               "(1 - 2/c^2)^2, inside the unit circle for every c > 1 (the groups' common swing), and n-1 copies of "
               "a complex pair of modulus exactly 1, e^{+-2i theta} with cos theta = 2/c^2 - 1 (swing and share "
               "exchange between groups). None depends on alpha. The orbit is therefore linearly neutral in the "
               "norm-split directions for every c > 1: linearisation cannot decide its stability, which is set by "
               "nonlinear terms (see the chaos findings)."),
        assumptions=("c > 1", "coordinates (phi_1..phi_n, omega_1..omega_{n-1})",
                     "general n from the per-group block structure; verified on full symbolic Jacobians for n = 2, 3"),
        steps=steps,
        results={"common": mu0, "pair": tuple(mus), "one_step_common": common, "M": M, "rotation": theta_rot,
                 "trace": trM, "det": detM},
    )


# ------------------------------------------------------------------ derivation 9
@functools.lru_cache(maxsize=None)
def _normal_form_forms():
    """Lambdified Jacobian and 2nd/3rd derivative tensors of the sign-adjusted one-step map for
    n = 2 at the orbit point, as functions of (c, r = alpha_2/alpha_1); coordinates
    (u_1, u_2, omega_1) with u_i = 2 phi_i, in which every derivative is rational in c and
    s = sqrt(c^2 - 1)."""
    rr = sp.Symbol("nu", positive=True)  # the weight ratio alpha_2 / alpha_1
    s_ = sp.Symbol("s", positive=True)
    u1, u2, w1 = sp.symbols("u_1 u_2 omega_1", real=True)
    cc = sp.sqrt(1 + s_**2)
    al = [sp.Integer(1), rr]
    e = cc / (1 + rr)
    w = [w1, 1 - w1]
    U = [u1, u2]
    kk = [e * al[i] / w[i] for i in range(2)]
    S2 = [kk[i] ** 2 * sp.sin(U[i]) ** 2 for i in range(2)]
    D = 1 + sum(w[i] * S2[i] for i in range(2))
    G = [-(U[i] - 2 * sp.atan(kk[i] * sp.sin(U[i]))) for i in range(2)] + [w[0] * (1 + S2[0]) / D]
    V = [u1, u2, w1]
    u0 = sp.Symbol("u0")
    on = {u1: u0, u2: u0, w1: 1 / (1 + rr)}

    def at(expr):
        return expr.subs(on).subs({sp.sin(u0): s_ / cc, sp.cos(u0): 1 / cc})

    J = sp.Matrix(3, 3, lambda i, j: sp.simplify(at(sp.diff(G[i], V[j]))))
    B = [[[at(sp.diff(G[i], V[a], V[b])) for b in range(3)] for a in range(3)] for i in range(3)]
    C = [[[[at(sp.diff(G[i], V[a], V[b], V[q])) for q in range(3)] for b in range(3)] for a in range(3)]
         for i in range(3)]
    args = (s_, rr)
    return (J, sp.lambdify(args, J, "numpy"), sp.lambdify(args, B, "numpy"), sp.lambdify(args, C, "numpy"), G)


def _nf_coefficient(cv: float, rv: float) -> float:
    """Kuznetsov's first normal-form coefficient of the neutral pair of G (n = 2), with the
    eigenvector q normalised to unit length."""
    _, fJ, fB, fC, _ = _normal_form_forms()
    sv = np.sqrt(cv * cv - 1.0)
    Am = np.array(fJ(sv, rv), dtype=float)
    Bt = np.array(fB(sv, rv), dtype=float)
    Ct = np.array(fC(sv, rv), dtype=float)
    ev, vec = np.linalg.eig(Am)
    i = int(np.argmax(ev.imag))
    lam_ = ev[i]
    q = vec[:, i] / np.linalg.norm(vec[:, i])
    evT, vecT = np.linalg.eig(Am.T)
    p = vecT[:, int(np.argmin(np.abs(evT - np.conj(lam_))))]
    p = p / np.conj(np.vdot(p, q))  # <p, q> = conj(p) . q = 1

    def Bf(x_, y_):
        return np.einsum("ijk,j,k->i", Bt, x_, y_)

    I3 = np.eye(3)
    h11 = np.linalg.solve(I3 - Am, Bf(q, np.conj(q)))
    h20 = np.linalg.solve(lam_**2 * I3 - Am, Bf(q, q))
    c1 = 0.5 * (np.vdot(p, np.einsum("ijkl,j,k,l->i", Ct, q, q, np.conj(q))) + 2 * np.vdot(p, Bf(q, h11))
                + np.vdot(p, Bf(np.conj(q), h20)))
    return float((np.conj(lam_) * c1).real)


@functools.lru_cache(maxsize=None)
def derive_orbit_nonlinear_stability() -> Derivation:
    r"""Nonlinear stability of the neutral equilibrium orbit (n = 2): the first normal-form
    coefficient of its neutral pair, and the c at which it changes sign."""
    from scipy.optimize import brentq

    J, _, _, _, G = _normal_form_forms()
    ratios = (1.0, 1.5, 2.0, 4.0, 10.0, 100.0, 1000.0)
    # bracket between the 1:4 (c = sqrt 2) and 1:3 (c = 2) resonances of the one-step map,
    # where the formula does not apply
    roots = [brentq(lambda cv, rv=rv: _nf_coefficient(cv, rv), 1.5, 1.95, xtol=1e-15, rtol=1e-15)
             for rv in ratios]
    root = float(np.mean(roots))
    exact = sp.nsimplify(root, [sp.sqrt(3)], tolerance=1e-12)
    spread = max(abs(x - root) for x in roots)
    # roots to 10 significant digits: Brent's method and the eigenvectors leave ~1e-13 of noise that
    # depends on the machine's linear-algebra kernels, far below the last digit shown
    table = sp.Matrix([[sp.Float(rv, 4), sp.Float(x, 10)] for rv, x in zip(ratios, roots, strict=False)])
    samples = [(cv, _nf_coefficient(cv, 2.0)) for cv in (1.1, 1.3, 1.6, 1.7, 1.76, 1.8, 2.2, 3.0)]
    sign_table = sp.Matrix([[sp.Float(cv, 3), sp.Float(dv, 4)] for cv, dv in samples])
    steps = (
        Step("Take n = 2 with alpha = (1, nu), nu = alpha_2/alpha_1 the weight ratio, and the map G (one step "
             "followed by the symmetry phi -> -phi) in coordinates (u_1, u_2, omega_1), u_i = 2phi_i. Its Jacobian "
             "at the orbit point, with s = sqrt(c^2 - 1) (the orbit's ESS):",
             "J", J),
        Step("J has the real multiplier (2 - c^2)/c^2 and the neutral pair e^{+-i theta} of the cycle derivation. "
             "Near a fixed point with multipliers on the unit circle, the amplitude z of the neutral mode obeys the "
             "normal form z' = e^{i theta} z (1 + d |z|^2) + O(|z|^4), so |z'|^2 = |z|^2 |1 + d |z|^2|^2 and "
             "|z|^2 changes per step by 2 Re(d) |z|^4 + O(|z|^6) (no linear part: the approach is algebraic, "
             "|z| ~ t^{-1/2}, when Re d < 0)."),
        Step("Re d is given by Kuznetsov's formula (Elements of Applied Bifurcation Theory, Neimark-Sacker "
             "coefficient) from the second and third derivatives B, C of G, derived here by SymPy:",
             r"\operatorname{Re} d",
             sp.Symbol(r"\tfrac12\operatorname{Re}\{e^{-i\theta}[\langle p,C(q,q,\bar q)\rangle"
                       r"+2\langle p,B(q,(I-J)^{-1}B(q,\bar q))\rangle"
                       r"+\langle p,B(\bar q,(e^{2i\theta}I-J)^{-1}B(q,q))\rangle]\}")),
        Step("Evaluated numerically (q of unit length) for nu = 2, Re d is negative up to a zero near c = 1.73 and "
             "positive after it (the 1:3 resonance at c = 2 excluded):", r"(c,\ \operatorname{Re} d)", sign_table),
        Step("The zero, found by Brent's method for seven weight ratios nu, is the same for all of them:",
             r"(\nu,\ c^*)", table),
        Step(f"They agree to better than {_decade_bound(max(spread, 1e-11))}; SymPy identifies the common root as",
             "c^*", exact),
    )
    return Derivation(
        key="09_orbit_nonlinear_stability",
        title="Nonlinear stability of the equilibrium orbit (n = 2): loss of stability at c = sqrt(3)",
        claim=("The equilibrium orbit is linearly neutral, so its stability is decided by the first normal-form "
               "coefficient of the neutral pair. For n = 2 that coefficient is negative (the orbit attracts "
               "nonlinearly, with the distance shrinking like t^(-1/2)) for 1 < c < sqrt(3), and positive (the orbit "
               "repels) for c > sqrt(3), whatever the weights: the zero is at c = sqrt(3) for every ratio "
               "alpha_2/alpha_1 tried. The 1:4 and 1:3 resonances of the one-step map (c = sqrt(2), c = 2) are "
               "excluded from the formula."),
        assumptions=("n = 2 (for n >= 3 the neutral pairs are repeated and this formula does not apply)",
                     "c > 1, c not at a strong resonance", "derivatives exact (SymPy); eigenvectors and the root "
                     "numeric (float64, Brent's method)"),
        steps=steps,
        results={"root": exact, "roots": roots, "root_float": root},
    )


# ------------------------------------------------------------------ derivation 10
def _sgd_h_terms(batch_size: int, mask_prob: float):
    """Support, probabilities and batch factors A = m/(b p) of M ~ Binomial(b, p), restricted to
    the m whose probability exceeds 1e-20 of the largest: the dropped terms change h by less
    than 1e-17 except within 1e-17 of a singular point."""
    from scipy.stats import binom

    m = np.arange(batch_size + 1)
    pm = binom.pmf(m, batch_size, mask_prob)
    keep = pm > 1e-20 * pm.max()
    return m[keep], pm[keep], m[keep] / (batch_size * mask_prob)


def sgd_stability_exponent(k, batch_size: int, mask_prob: float):
    r"""Almost-sure growth rate of a group's angle at the minimum under SGD,
    :math:`h(k) = \mathbb E \log|1 - 2kA|` with :math:`A = M/(bp)`, :math:`M\sim\mathrm{Bin}(b,p)`
    (derived in ``derive_sgd_threshold``); ``k`` = group ELR times alpha, scalar or array.
    ``-inf`` exactly at the points k = bp/(2m)."""
    m, pm, Av = _sgd_h_terms(batch_size, mask_prob)
    k = np.asarray(k, dtype=float)
    flat = k.reshape(-1)
    out = np.empty(flat.size)
    step = max(1, 2_000_000 // max(1, Av.size))  # bounded memory
    with np.errstate(divide="ignore"):
        for i in range(0, flat.size, step):
            out[i:i + step] = np.log(np.abs(1.0 - 2.0 * flat[i:i + step, None] * Av)) @ pm
    return out.reshape(k.shape) if k.ndim else float(out[0])


@functools.lru_cache(maxsize=256)
def sgd_stability_edge(batch_size: int, mask_prob: float) -> float:
    r"""The edge k* of the interval (0, k*) of a.s. stable k = elr_i alpha_i: the first positive
    root of :func:`sgd_stability_exponent` (GD: k* = 1).

    h(0) = 0, h'(0) = -2 and h -> +inf: a grid of 20000 points finds the first k with h >= 0
    (positive excursions narrower than the grid spacing before it would be missed), then Brent's
    method refines the root; singular points (h = -inf) are never roots.
    """
    from scipy.optimize import brentq

    _, _, Av = _sgd_h_terms(batch_size, mask_prob)
    hi = 4.0
    while True:
        ks = np.linspace(hi / 20_000, hi, 20_000)
        hv = sgd_stability_exponent(ks, batch_size, mask_prob)
        pos = np.flatnonzero(hv >= 0)
        if pos.size:
            break
        hi *= 2
    i = int(pos[0])
    lo = ks[i - 1] if i > 0 else 1e-12
    sing = Av[Av > 0]
    sing = 0.5 / sing[(0.5 / sing > lo) & (0.5 / sing < ks[i])]
    if sing.size:  # h is continuous only to the right of a singular point inside the bracket
        lo = np.nextafter(sing.max(), np.inf)
    return float(brentq(lambda kk: sgd_stability_exponent(kk, batch_size, mask_prob), lo, ks[i], xtol=1e-15,
                        rtol=1e-15))


@functools.lru_cache(maxsize=None)
def derive_sgd_threshold() -> Derivation:
    r"""The almost-sure convergence threshold of mini-batch SGD on the toy."""
    b_, p_, m_ = sp.symbols("b p m", positive=True)
    Aq = sp.Symbol("A", positive=True)  # batch factor of a group
    eps = sp.Symbol("epsilon", real=True)
    dl = sp.Symbol("delta", real=True)
    # the linearised angle factor at the minimum: weight alpha A instead of alpha
    phi_new = derive_one_step_map().results["phi_new"]
    lin = sp.simplify(sp.diff(phi_new.subs(k, k * Aq), phi).subs(phi, 0))
    hsym = sp.Sum(sp.binomial(b_, m_) * p_**m_ * (1 - p_) ** (b_ - m_) * sp.log(sp.Abs(1 - 2 * k * m_ / (b_ * p_))),
                  (m_, 0, b_))
    # slope at k = 0: -2 E[A] = -2
    h_term = sp.log(1 - 2 * k * Aq)
    slope0 = sp.diff(h_term, k).subs(k, 0)
    # moments of M from its generating function: b independent Bernoulli(p) masks, G(z) = (1 - p + p z)^b
    zz = sp.Symbol("z")
    pgf = (1 - p_ + p_ * zz) ** b_
    g1 = sp.diff(pgf, zz).subs(zz, 1)
    g2 = sp.diff(pgf, zz, 2).subs(zz, 1)
    EA = sp.simplify(g1 / (b_ * p_))
    # p = 1: A = 1 surely, h = log|1 - 2k|, zero at k = 1 (the GD edge)
    h_p1 = sp.log(sp.Abs(1 - 2 * k))
    k_p1 = [r_ for r_ in sp.solve(sp.Eq(sp.Abs(1 - 2 * k), 1), k) if r_ != 0][0]
    # b = 1: A in {0, 1/p}: h = p log|1 - 2k/p|, zero at k = p
    h_b1 = p_ * sp.log(sp.Abs(1 - 2 * k / p_))
    k_b1 = [r_ for r_ in sp.solve(sp.Eq(sp.Abs(1 - 2 * k / p_), 1), k) if r_ != 0][0]
    # large b: A = 1 + eps with E eps = 0, Var eps = (1-p)/(bp); expand near k = 1 + delta
    var_eps = sp.simplify((g2 + g1 - g1**2) / (b_ * p_) ** 2)
    # |1 - 2kA| = 2kA - 1 near k = A = 1
    expansion = sp.series(sp.log(2 * (1 + dl) * (1 + eps) - 1), eps, 0, 3).removeO()
    expansion = sp.expand(sp.series(expansion, dl, 0, 2).removeO())
    mean_exp = expansion.subs(eps**2, sp.Symbol("V")).subs(eps, 0)
    mean_exp = sp.expand(mean_exp)
    mean_lin = sum(t_ for t_ in mean_exp.as_ordered_terms() if sp.degree(t_, dl) <= 1 and
                   sp.Poly(t_, dl, sp.Symbol("V")).total_degree() <= 1)
    delta_star = sp.solve(sp.Eq(mean_lin, 0), dl)[0]
    k_large = sp.simplify(1 + delta_star.subs(sp.Symbol("V"), var_eps))
    examples = [(1, 0.5), (2, 0.5), (4, 0.5), (16, 0.25), (64, 0.5), (1, 0.9), (1000, 0.5)]
    table = sp.Matrix([[b0, sp.Float(p0, 3), sp.Float(sgd_stability_edge(b0, p0), 10),
                        sp.Float(float(k_large.subs({b_: b0, p_: p0})), 10)] for b0, p0 in examples])
    steps = (
        Step("A step descends the batch mean: group i has weight alpha_i A_i with A_i = M_i/(b p), "
             "M_i ~ Binomial(b, p), independent over groups and steps (example j contributes alpha_i m_ji/p). "
             "Linearised at the minimum, the angle factor of the one-step map becomes",
             r"\partial\varphi_i'/\partial\varphi_i",
             lin),
        Step("and, as for GD, the norm shares are frozen to first order, so the split omega (hence k_i = elr "
             "alpha_i/omega_i) "
             "is a fixed, free parameter of the linearisation. By the law of large numbers, "
             "(1/T) log|phi_i(T)/phi_i(0)| tends almost surely to", "h(k_i)", hsym),
        Step("h(0) = 0, and the slope of each term at k = 0 is", r"\left.\frac{d}{dk}\log|1-2kA|\right|_{k=0}",
             slope0),
        Step("so h'(0) = -2 E[A]; from the generating function (1 - p + pz)^b of the b masks,", r"\mathbb E[A]", EA),
        Step("so h < 0 on an interval (0, k*(b, p)); the group is a.s. stable iff k_i < k*. With a free split, some "
             "omega "
             "makes every group stable iff sum_i elr alpha_i < k*: the threshold factorises into an alpha part and a "
             "(b, p) part,", r"\tilde\eta^*_{\mathrm{SGD}}", r"\frac{k^*(b,p)}{A}"),
        Step("p = 1: A = 1 surely and h reduces to GD's", "h", h_p1),
        Step("whose edge (|1 - 2k| = 1, k > 0) is", "k^*", k_p1),
        Step("b = 1: A is 0 (probability 1 - p) or 1/p, so", "h", h_b1),
        Step("whose edge is", "k^*", k_b1),
        Step("Large b: A = 1 + epsilon with Var(epsilon) =", r"\mathrm{Var}\,\epsilon", var_eps),
        Step("Expanding h near k = 1 + delta to first order in delta and in V = Var(epsilon) (E epsilon = 0):",
             r"h", mean_lin),
        Step("so the edge moves up: SGD noise raises the threshold for large batches (Jensen: fluctuating multipliers "
             "of mean modulus 1 contract almost surely); as b -> oo it tends to GD's 1:", "k^*", k_large),
        Step("In general h is a finite sum over m, evaluated exactly (scipy binomial pmf), and k* its first positive "
             "root (Brent's method). Columns: b, p, k* (exact), 1 + (1-p)/(bp) (large-b expansion):",
             r"\left(b,\ p,\ k^*,\ 1+\tfrac{1-p}{bp}\right)", table),
        Step("h = -infinity at the points k = bp/(2m) (a batch that cancels the step exactly), so above k* there are "
             "also extremely narrow windows of a.s. stability around them; the norm split would have to be tuned "
             "into them and the dynamics does not find them. The threshold is the edge of the interval (0, k*)."),
    )
    return Derivation(
        key="10_sgd_threshold",
        title="Convergence threshold of mini-batch SGD (almost-sure stability of the minimum)",
        claim=("Under the mask noise model, the minimum is almost surely linearly stable (with the norm split free) "
               "iff "
               "elr < k*(b, p) / sum(alpha), where k*(b, p) is the first positive root of "
               "h(k) = E log|1 - 2kM/(bp)|, M ~ Binomial(b, p). It reduces to GD's 1/sum(alpha) for p = 1 and as "
               "b -> oo; for b = 1 it is p/sum(alpha); for large b it is (1 + (1-p)/(bp) + ...)/sum(alpha), i.e. above "
               "the GD threshold: noise can raise it."),
        assumptions=("online mini-batches: fresh examples every step",
                     "masks independent across examples and groups",
                     "linear stability of the minimum, almost-sure sense "
                     "(top Lyapunov exponent of the random product)"),
        steps=steps,
        results={"h": hsym, "k_b1": k_b1, "k_p1": k_p1, "k_large": k_large, "EA": EA},
    )


def sgd_threshold_elr(alphas, batch_size, mask_prob) -> float:
    r"""The total-ELR convergence threshold of mini-batch SGD, :math:`k^*(b,p)/\sum_i\alpha_i`.

    ``batch_size=None`` or ``mask_prob=1`` give the GD threshold exactly.
    """
    from .._validate import as_batch_size, as_mask_prob

    alphas = as_alphas(alphas)
    b = as_batch_size(batch_size)
    p = as_mask_prob(mask_prob)
    if b is None or p == 1.0:
        return threshold_elr(alphas)
    return sgd_stability_edge(b, p) / float(alphas.sum())


# ============================================================ conventional training (weight decay)
lr = sp.Symbol("eta", positive=True)  # the learning rate of conventional training
wdc = sp.Symbol("lambda", positive=True)  # the weight decay
dec = sp.Symbol("d", positive=True)  # the decay factor 1 - eta * lambda
kg = sp.Symbol("k_i", positive=True)  # a group's ELR of the direction map times its weight
essg = sp.Symbol(r"\mathrm{ESS}_i", positive=True)
tsteps = sp.Symbol("T", positive=True, integer=True)


# ------------------------------------------------------------------ derivation 11
@functools.lru_cache(maxsize=None)
def derive_conventional_reduction() -> Derivation:
    r"""Conventional training: the direction dynamics, its ELR, and which combination of (eta, lambda)
    matters."""
    fx, fy = _group_grad()
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
        _identity("In polar form the step is d times the step of the sphere map with k_i = eta alpha_i/(d r_i^2) "
                  "(x-component):", xn, xn_closed),
        _identity("(y-component):", yn, yn_closed),
        Step("So the direction of group i follows the one-step map of derivation 02, phi_i' = phi_i - "
             "arctan(k_i sin 2phi_i), with the group ELR of the direction map", r"\tilde\eta_i", elr_i),
        _identity("and its squared norm is multiplied by d^2 (1 + (k_i sin 2phi_i)^2):", growth, growth_target),
        _identity("Hence the group ELR (and k_i) obeys eta_i' = eta_i / (d^2 (1 + ESS_i^2)), ESS_i = k_i |sin 2phi_i|:",
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
    r"""The law that holds in every regime: the time mean of log(1 + ESS_i^2)."""
    log_step = sp.expand_log(sp.log(kg / (dec**2 * (1 + essg**2))), force=True) - sp.log(kg)
    law = -2 * sp.log(dec)
    if not _is_zero(log_step - (law - sp.log(1 + essg**2))):
        raise AssertionError("the log-ELR step of conventional training")
    lk0, lkT = sp.symbols(r"\log{k_i(0)} \log{k_i(T)}", real=True)
    mean_exact = law - (lkT - lk0) / tsteps
    small = sp.series(law.subs(dec, 1 - lr * wdc), lr, 0, 3).removeO()
    steps = (
        _identity("From the reduction (derivation 11), one step changes log k_i by -2 log d - log(1 + ESS_i^2):",
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


def _kuznetsov_coefficient(Am, Bt, Ct) -> float:
    """Kuznetsov's first normal-form coefficient Re(e^{-i theta} c_1) of the neutral pair of a map
    with Jacobian ``Am`` and derivative tensors ``Bt``, ``Ct`` (unit eigenvector)."""
    ev, vec = np.linalg.eig(Am)
    i = int(np.argmax(ev.imag))
    lam_ = ev[i]
    q = vec[:, i] / np.linalg.norm(vec[:, i])
    evT, vecT = np.linalg.eig(Am.T)
    p = vecT[:, int(np.argmin(np.abs(evT - np.conj(lam_))))]
    p = p / np.conj(np.vdot(p, q))

    def Bf(x_, y_):
        return np.einsum("ijk,j,k->i", Bt, x_, y_)

    eye = np.eye(Am.shape[0])
    h11 = np.linalg.solve(eye - Am, Bf(q, np.conj(q)))
    h20 = np.linalg.solve(lam_**2 * eye - Am, Bf(q, q))
    c1 = 0.5 * (np.vdot(p, np.einsum("ijkl,j,k,l->i", Ct, q, q, np.conj(q))) + 2 * np.vdot(p, Bf(q, h11))
                + np.vdot(p, Bf(np.conj(q), h20)))
    return float((np.conj(lam_) * c1).real)


def conventional_orbit_stability_coefficient(c_value: float) -> float:
    r"""First normal-form coefficient of the conventional-training orbit's neutral pair at
    :math:`c = 1/(1-\eta\lambda)` (one group; groups are independent). It vanishes for every c."""
    cv = float(c_value)
    if not cv > 1:
        raise ValueError(f"c must exceed 1, got {c_value!r}")
    _, _, fJ, fB, fC = _conventional_orbit_jacobian()
    sv = np.sqrt(cv * cv - 1.0)
    return _kuznetsov_coefficient(np.array(fJ(sv), float), np.array(fB(sv), float), np.array(fC(sv), float))


@functools.lru_cache(maxsize=None)
def derive_conventional_equilibrium() -> Derivation:
    r"""The equilibrium orbit of conventional training and its stability as a fixed point of the
    joint (direction, norm) map."""
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
        _identity("Check: at k* the ELR is unchanged,", flip_check, sp.Integer(0),
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
        _identity("Its determinant is exactly 1:", detJ, sp.Integer(1), show=(r"\det J", 1)),
        Step("so both multipliers have modulus exactly 1 (cos theta = 2/c^2 - 1, as for the sphere's neutral pair) "
             "and, unlike the sphere's orbit, there is no contracting common-swing mode: every direction is "
             "neutral. The first normal-form coefficient (Kuznetsov's formula, derivation 09) then decides; "
             f"evaluated at c = {', '.join(f'{cv:g}' for cv in cs_)} it vanishes to rounding (all below "
             f"{_decade_bound(max(worst, 1e-14))}): the cubic order does not decide either."),
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
    r"""Small weight decay: quiet phases at the minimum and bursts, their length and scaling."""
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
        _identity("and its angle is multiplied by 1 - 2k_i(t) per step (derivation 04). It shrinks while k_i < 1 and "
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


#: every derivation's key and function, in the order of ``docs/theory.md`` (the keys are known
#: without running SymPy)

# ----------------------------------------------------------------- derivation 15
@functools.lru_cache(maxsize=None)
def derive_sphere_stability_hessian() -> Derivation:
    r"""The minimum's stability in terms of the tangent Hessian's eigenvalues and the total ELR."""
    f = _group_loss()
    hess = sp.hessian(f, (x, y))
    at_min = {x: 0, y: r}
    h_min = sp.simplify(hess.subs(at_min))
    grad_dot_theta = sp.simplify(x * sp.diff(f, x) + y * sp.diff(f, y))
    lam = h_min[0, 0]  # the tangent direction x of the group (theta = (0, r) is radial)
    rho, om, eta_lr = sp.symbols(r"rho omega_i eta", positive=True)
    lam_i = lam.subs(r, rho * sp.sqrt(om))  # r_i^2 = omega_i rho^2
    mult = 1 - eta_lr * lam_i
    mult_elr = mult.subs(eta_lr, elr * rho**2)  # eta = elr rho^2 (the ELR of the whole sphere)
    k_i = elr * alpha / om  # k_i = elr_i alpha_i with elr_i = elr / omega_i (derivation 03)
    z = sp.Symbol("z", positive=True)  # eta lambda_j = elr rho^2 lambda_j
    stable = sp.solve_univariate_inequality(sp.Abs(1 - z) < 1, z, relational=False)
    bound = stable.sup  # = 2
    steps = (
        Step("The Euclidean Hessian of one group's loss f = alpha x^2/(x^2 + y^2) at its minimiser (0, r):",
             r"\nabla^2 f(0, r)", h_min),
        _identity("The radial derivative of f vanishes identically (scale invariance, derivation 01), so the "
                  "sphere's curvature term -<grad F, theta>/rho^2 of the Riemannian Hessian is zero:",
                  grad_dot_theta, sp.Integer(0), show=(r"\langle \nabla f, \theta\rangle", 0)),
        Step("At a minimum every x_i = 0, so each x_i direction is tangent to the sphere and the projected Hessian "
             "P H P is diagonal: eigenvalue lambda_i = 2 alpha_i / r_i^2 along x_i, with r_i^2 = omega_i rho^2, "
             "and 0 along the n - 1 norm-split directions:", r"\lambda_i", lam_i),
        Step("Projected GD theta' = rho (theta - eta grad F)/||theta - eta grad F|| moves a point delta off the "
             "minimum to (I - eta H_t) delta + O(delta^2): the gradient is O(delta) and orthogonal to theta, so the "
             "normalisation is second order. Along eigenvector i the multiplier is", r"1 - \eta\lambda_i", mult),
        _identity("With eta = elr rho^2 (total ELR elr on the sphere of radius rho) this is derivation 04's "
                  "multiplier 1 - 2 elr_i alpha_i:", mult_elr, 1 - 2 * k_i),
        Step("A direction with lambda_j > 0 contracts iff |1 - z| < 1 for z = eta lambda_j = elr rho^2 lambda_j, i.e. "
             "for z in", r"\tilde\eta\,\rho^2\lambda_j", stable),
        Step("so the minimum is linearly stable iff the total ELR times the tangent Hessian's top eigenvalue stays "
             "below the bound (directions with lambda_j = 0 are neutral):",
             r"\sup\,\tilde\eta\,\rho^2\lambda_{\max}", bound),
        Step("For the toy, elr rho^2 lambda_max = 2 max_i k_i, so the bound is derivation 04's condition "
             "max_i elr_i alpha_i < 1; for any scale-invariant network, a run converging at total ELR elr on the "
             "unit sphere must sit where elr lambda_max(tangent Hessian) <= 2."),
    )
    return Derivation(
        key="15_sphere_stability_hessian",
        title="The stability of a minimum on the sphere in terms of the tangent Hessian",
        claim=("At a minimum, projected GD on the sphere of radius rho multiplies each eigendirection of the "
               "Riemannian (tangent) Hessian by 1 - elr rho^2 lambda_j. A minimum is linearly stable iff "
               "elr rho^2 lambda_max < 2: for the toy, lambda_i = 2 alpha_i/(rho^2 omega_i) and this is "
               "elr_i alpha_i < 1 for every group; for a network it bounds the sharpness a converged run can have."),
        assumptions=("a minimum of a scale-invariant loss (gradient zero, Hessian positive semi-definite on the "
                     "tangent space)", "plain projected GD (for SGD, the batch Hessians enter; see derivation 10)"),
        steps=steps,
        results={"hessian_at_min": h_min, "tangent_eigenvalue": lam_i, "multiplier": mult, "bound": bound,
                 "radial_derivative": grad_dot_theta},
    )

DERIVATIONS = (
    ("01_scale_invariance", derive_scale_invariance),
    ("02_one_step_map", derive_one_step_map),
    ("03_group_elr_dynamics", derive_group_elr_dynamics),
    ("04_minimum_stability", derive_minimum_stability),
    ("05_equilibrium", derive_equilibrium),
    ("06_random_guess", derive_random_guess),
    ("07_equilibrium_limits", derive_equilibrium_limits),
    ("08_cycle_linearisation", derive_cycle_linearisation),
    ("09_orbit_nonlinear_stability", derive_orbit_nonlinear_stability),
    ("10_sgd_threshold", derive_sgd_threshold),
    ("11_conventional_reduction", derive_conventional_reduction),
    ("12_conventional_ess_law", derive_conventional_ess_law),
    ("13_conventional_equilibrium", derive_conventional_equilibrium),
    ("14_conventional_periodic", derive_conventional_periodic),
    ("15_sphere_stability_hessian", derive_sphere_stability_hessian),
)


def derivations(keys=None) -> list[Derivation]:
    """Every derivation (or those whose key is in ``keys``), in the order of ``docs/theory.md``."""
    out = []
    for key, fn in DERIVATIONS:
        if keys is None or key in keys:
            d = fn()
            if d.key != key:  # pragma: no cover - a renamed derivation must be renamed here too
                raise AssertionError(f"derivation {fn.__name__} has key {d.key!r}, listed as {key!r}")
            out.append(d)
    return out


# ================================================================ numeric versions
@functools.lru_cache(maxsize=None)
def _numeric(name: str):
    """Lambdified numeric function ``name`` of a derived result (built once, on first use).

    Each entry only triggers the derivation it needs, so cheap results stay cheap.
    """
    al_i = sp.Symbol("alpha_i", positive=True)
    if name in ("threshold_elr", "min_multiplier"):
        ms = derive_minimum_stability().results
        return {"threshold_elr": lambda: sp.lambdify(A, ms["threshold_elr"], "numpy"),
                "min_multiplier": lambda: sp.lambdify(k, ms["multiplier"], "numpy")}[name]()
    if name in ("loss", "eff_grad_norm"):
        return sp.lambdify((c, A), derive_equilibrium().results[name], "numpy")
    if name in ("cosine", "angle", "phi_star"):
        return sp.lambdify(c, derive_equilibrium().results[name], "numpy")
    if name == "share":
        return sp.lambdify((A, al_i), derive_equilibrium().results["share"], "numpy")
    if name == "group_elr":
        return sp.lambdify((elr, A, al_i), derive_equilibrium().results["group_elr"], "numpy")
    if name == "rg_mean":
        return sp.lambdify(A, derive_random_guess().results["loss"], "numpy")
    if name == "rg_var_term":
        return float(derive_random_guess().results["var_term"])
    if name == "mu0":  # the cheap part of derivation 08 (its full-Jacobian cross-checks are not needed here)
        return sp.lambdify(c, _cycle_block()["mu0"], "numpy")
    if name == "mu_pair":
        return sp.lambdify(c, sp.Tuple(*_cycle_block()["mus"]), "numpy")
    if name in ("phi_new", "growth"):
        return sp.lambdify((k, phi), derive_one_step_map().results[name], "numpy")
    if name == "elr_next":
        return sp.lambdify((_ELR_I, _ESS_TOTAL, _ESS_GROUP), derive_group_elr_dynamics().results["elr_next"], "numpy")
    if name == "k_large":
        bb, pp = sp.symbols("b p", positive=True)
        return sp.lambdify((bb, pp), derive_sgd_threshold().results["k_large"], "numpy")
    raise KeyError(name)


def _c(alphas, elr):
    alphas = as_alphas(alphas)
    e = as_elrs(elr, "elr")
    scalar = np.ndim(elr) == 0
    return alphas, e, e * alphas.sum(), scalar


def _out(arr, scalar):
    return float(arr[0]) if scalar else arr


def threshold_elr(alphas) -> float:
    r"""The total-ELR boundary of convergence, :math:`1/\sum_i\alpha_i` (derived)."""
    alphas = as_alphas(alphas)
    return float(_numeric("threshold_elr")(alphas.sum()))


def sphere_stability_bound() -> float:
    r"""The bound on :math:`\tilde\eta\rho^2\lambda_{\max}` of the tangent Hessian at a linearly stable
    minimum: 2 (derivation 15)."""
    return float(derive_sphere_stability_hessian().results["bound"])


def tangent_hessian_eigenvalues(alphas, shares, radius: float = 1.0) -> np.ndarray:
    r"""The tangent Hessian's eigenvalues :math:`2\alpha_i/(\rho^2\omega_i)` along the groups' angle
    directions at a minimum with norm shares ``shares`` (derivation 15; the n - 1 norm-split directions
    have eigenvalue 0)."""
    alphas = as_alphas(alphas)
    om = np.asarray(shares, dtype=float)
    res = derive_sphere_stability_hessian().results
    rho, om_s = sp.symbols("rho omega_i", positive=True)
    fn = sp.lambdify((alpha, rho, om_s), res["tangent_eigenvalue"], "numpy")
    return fn(alphas, float(radius), om)


def minimum_multipliers(alphas, group_elrs) -> tuple[np.ndarray, int]:
    r"""Multipliers of the minimum for given group ELRs.

    Returns ``(angle_multipliers, n_neutral)``: the angle directions have multipliers
    :math:`1 - 2\tilde\eta_i\alpha_i` (shape (..., n)); the remaining ``n - 1`` norm-split
    directions are neutral (multiplier exactly 1) at every minimum.
    """
    alphas = as_alphas(alphas)
    ge = np.asarray(group_elrs, dtype=float)
    return _numeric("min_multiplier")(ge * alphas), alphas.size - 1


def equilibrium_group_elrs(alphas, elr) -> np.ndarray:
    r"""Group ELRs on the equilibrium orbit, :math:`\tilde\eta\sum\alpha/\alpha_i`, shape (n,) or (K, n).

    NaN where ``elr <= threshold_elr(alphas)`` (no equilibrium orbit; every split with
    :math:`\tilde\eta_i\alpha_i<1` is a stable minimum).
    """
    alphas, e, cc, scalar = _c(alphas, elr)
    out = _numeric("group_elr")(e[:, None], alphas.sum(), alphas[None, :])
    out = np.where((cc > 1)[:, None], out, np.nan)
    return out[0] if scalar else out


def _eq_value(name, alphas, elr, below, needs_A):
    alphas, e, cc, scalar = _c(alphas, elr)
    fn = _numeric(name)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # c**2 overflows harmlessly to inf
        val = fn(np.maximum(cc, 1.0), alphas.sum()) if needs_A else fn(np.maximum(cc, 1.0))
    val = np.where(cc > 1, np.broadcast_to(val, cc.shape), below)
    return _out(np.asarray(val, dtype=float), scalar)


def equilibrium_loss(alphas, elr):
    r"""Loss on the equilibrium orbit, :math:`\tfrac{A}{2}(1 - 1/c)`; 0 at and below the threshold
    (the attracting set is then the minimum)."""
    return _eq_value("loss", alphas, elr, 0.0, True)


def equilibrium_cosine(alphas, elr):
    r"""Cosine between consecutive iterates on the equilibrium orbit, :math:`1/c`; 1 at and below
    the threshold (the iterates stop moving at the minimum)."""
    return _eq_value("cosine", alphas, elr, 1.0, False)


def equilibrium_angle(alphas, elr):
    r"""Angular update on the orbit, :math:`\arccos(1/c)`; 0 at and below the threshold."""
    return _eq_value("angle", alphas, elr, 0.0, False)


def equilibrium_eff_grad_norm(alphas, elr):
    r"""Effective gradient norm on the orbit, :math:`A\sqrt{c^2-1}/c`; 0 at and below the threshold."""
    return _eq_value("eff_grad_norm", alphas, elr, 0.0, True)


def equilibrium_amplitude(alphas, elr):
    r"""Angle :math:`\varphi^* = \tfrac12\arccos(1/c)` of every group on the orbit; 0 at and below."""
    return _eq_value("phi_star", alphas, elr, 0.0, False)


def equilibrium_point(alphas, elr) -> np.ndarray:
    r"""A point of the equilibrium orbit, shape (2n,): :math:`x_i = \sqrt{\omega_i^*}\sin\varphi^*`,
    :math:`y_i = \sqrt{\omega_i^*}\cos\varphi^*` with :math:`\omega_i^* = \alpha_i/A` (derived).

    Raises ValueError at or below the threshold (no orbit).
    """
    alphas = as_alphas(alphas)
    if np.ndim(elr) != 0:
        raise ValueError(f"elr must be a scalar, got shape {np.shape(elr)}")
    e = float(as_elrs(elr, "elr")[0])
    if not e * alphas.sum() > 1:
        raise ValueError(f"elr must exceed threshold_elr(alphas) = {threshold_elr(alphas)!r} for the orbit to exist, "
                         f"got {elr!r}")
    amp = equilibrium_amplitude(alphas, e)
    share = _numeric("share")(alphas.sum(), alphas)
    out = np.empty(2 * alphas.size)
    out[0::2] = np.sqrt(share) * np.sin(amp)
    out[1::2] = np.sqrt(share) * np.cos(amp)
    return out


def random_guess_loss(alphas) -> float:
    r"""Mean of F over uniform points of the sphere, :math:`\sum_i\alpha_i/2` (derived)."""
    alphas = as_alphas(alphas)
    return float(_numeric("rg_mean")(alphas.sum()))


def random_guess_loss_std(alphas) -> float:
    r"""Standard deviation of F over uniform points, :math:`\sqrt{\sum_i\alpha_i^2/8}` (derived)."""
    alphas = as_alphas(alphas)
    return float(np.sqrt(_numeric("rg_var_term") * np.sum(alphas**2)))


def cycle_multipliers(alphas, elr) -> np.ndarray:
    r"""Every multiplier of the map linearised over one period of the equilibrium orbit.

    Returns a complex array of length ``2n - 1``: first the common swing
    :math:`(1-2/c^2)^2`, then ``n - 1`` copies of the neutral pair
    :math:`e^{\pm 2i\vartheta}`, :math:`\cos\vartheta = 2/c^2 - 1`.

    Raises
    ------
    ValueError
        If ``elr <= threshold_elr(alphas)``: there is no equilibrium orbit.
    """
    alphas = as_alphas(alphas)
    if np.ndim(elr) != 0:
        raise ValueError(f"elr must be a scalar, got shape {np.shape(elr)}")
    e = as_elrs(elr, "elr")[0]
    cc = e * alphas.sum()
    if not cc > 1:
        raise ValueError(f"elr must exceed threshold_elr(alphas) = {threshold_elr(alphas)!r} for the orbit to exist, "
                         f"got {elr!r}")
    mu0 = complex(_numeric("mu0")(cc))
    mp, mm = (complex(v) for v in _numeric("mu_pair")(cc))
    out = [mu0] + [mp, mm] * (alphas.size - 1)
    return np.array(out, dtype=complex)


def orbit_stability_coefficient(alphas, elr) -> float:
    r"""First normal-form coefficient Re d of the equilibrium orbit's neutral pair (n = 2 only).

    Negative: the orbit attracts nonlinearly (algebraically); positive: it repels. Normalised
    with a unit eigenvector, so only its sign and relative size are meaningful.
    """
    alphas = as_alphas(alphas)
    if alphas.size != 2:
        raise ValueError(f"alphas must have two groups for the normal-form coefficient, got {alphas.size}")
    e = float(as_elrs(elr, "elr")[0])
    cv = e * alphas.sum()
    if not cv > 1:
        raise ValueError(f"elr must exceed threshold_elr(alphas) = {threshold_elr(alphas)!r}, got {elr!r}")
    return _nf_coefficient(cv, alphas[1] / alphas[0])


def one_step_map(k_i, phi_i):
    r"""The derived one-step map of a group in angle coordinates: ``(phi_i', growth_i)`` with
    :math:`\varphi_i' = \varphi_i - \arctan(k_i\sin 2\varphi_i)` and the squared-norm growth
    factor :math:`1 + (k_i\sin 2\varphi_i)^2`, for :math:`k_i = \tilde\eta_i\alpha_i` (arrays broadcast)."""
    return _numeric("phi_new")(k_i, phi_i), _numeric("growth")(k_i, phi_i)


def group_elr_next(group_elr, total_ess, group_ess):
    r"""The derived group-ELR recursion :math:`\tilde\eta_i' = \tilde\eta_i(1 + (\tilde g\tilde\eta)^2)
    /(1 + (\tilde g_i\tilde\eta_i)^2)` (arrays broadcast)."""
    return _numeric("elr_next")(group_elr, total_ess, group_ess)


def sgd_stability_edge_large_batch(batch_size, mask_prob):
    r"""The large-batch expansion of the SGD edge, :math:`k^* \approx 1 + (1-p)/(bp)` (derived in
    ``derive_sgd_threshold``); arrays broadcast."""
    return _numeric("k_large")(np.asarray(batch_size, dtype=float), np.asarray(mask_prob, dtype=float))


@functools.lru_cache(maxsize=None)
def resonance_c(q: int) -> float:
    r"""The c > 1 at which the neutral pair of the orbit's one-step map is a 1:q resonance,
    :math:`e^{i\vartheta}` with :math:`\vartheta = 2\pi/q`, from the derived trace
    :math:`\cos\vartheta = \mathrm{tr}\,M/2 = 2/c^2 - 1` (q = 3: c = 2; q = 4: c = sqrt 2)."""
    q = int(q)
    if q < 3:
        raise ValueError(f"q must be >= 3 (strong resonances are q = 3, 4), got {q}")
    half_trace = _cycle_block()["trM"] / 2
    roots = [r_ for r_ in sp.solve(sp.Eq(half_trace, sp.cos(2 * sp.pi / q)), c) if r_.is_real and r_ > 1]
    return float(roots[0])


def orbit_instability_c() -> float:
    r"""The c = elr * sum(alpha) above which the equilibrium orbit is nonlinearly unstable (n = 2):
    the root of :func:`orbit_stability_coefficient`, identified as :math:`\sqrt 3`."""
    return float(derive_orbit_nonlinear_stability().results["root"])


# ------------------------------------------------------------ conventional training (numeric)
def _lr_wd(lr_value, weight_decay):
    from .._validate import as_lr_wd

    return as_lr_wd(lr_value, weight_decay)


def conventional_equilibrium_c(lr_value, weight_decay):
    r"""The c of the conventional-training orbit, :math:`1/(1-\eta\lambda)` (derived in
    ``derive_conventional_equilibrium``); ``lr_value`` scalar or array."""
    lrs, wd = _lr_wd(lr_value, weight_decay)
    f = sp.lambdify((lr, wdc), derive_conventional_equilibrium().results["c"], "numpy")
    out = np.asarray(f(lrs, wd), dtype=float)
    return float(out[0]) if np.ndim(lr_value) == 0 else out


@functools.lru_cache(maxsize=None)
def _conventional_lr_wd_of_c():
    lw = sp.Symbol("eta_lambda", positive=True)
    c_of_lw = derive_conventional_equilibrium().results["c"].subs(lr, lw / wdc)
    (sol,) = sp.solve(sp.Eq(c, c_of_lw), lw)
    return sp.lambdify(c, sol, "numpy")


def conventional_lr_wd_at_c(c_value):
    r"""The :math:`\eta\lambda` at which the conventional-training orbit has the given c (> 1): the
    orbit's :math:`c = 1/(1-\eta\lambda)` (``derive_conventional_equilibrium``) solved for
    :math:`\eta\lambda`, i.e. :math:`1 - 1/c`; scalar or array."""
    cv = np.asarray(c_value, dtype=float)
    if not np.all(cv > 1):  # also refuses NaN
        raise ValueError(f"c_value must be > 1 (the conventional orbit has c > 1 for every eta lambda), "
                         f"got {c_value!r}")
    out = np.asarray(_conventional_lr_wd_of_c()(cv), dtype=float)
    return float(out) if np.ndim(c_value) == 0 else out


def conventional_equilibrium_loss(alphas, lr_value, weight_decay):
    r"""Loss on the conventional-training orbit, :math:`\tfrac{A}{2}\eta\lambda` (derived)."""
    a = as_alphas(alphas)
    lrs, wd = _lr_wd(lr_value, weight_decay)
    f = sp.lambdify((A, lr, wdc), derive_conventional_equilibrium().results["loss"], "numpy")
    out = np.asarray(f(a.sum(), lrs, wd), dtype=float) * np.ones_like(lrs)
    return float(out[0]) if np.ndim(lr_value) == 0 else out


def conventional_equilibrium_group_elrs(alphas, lr_value, weight_decay) -> np.ndarray:
    r"""Group ELRs of the direction map on the orbit, :math:`1/(\alpha_i(1-\eta\lambda))`, (n,) or (K, n)."""
    a = as_alphas(alphas)
    lrs, wd = _lr_wd(lr_value, weight_decay)
    f = sp.lambdify((lr, wdc, sp.Symbol("alpha_i", positive=True)),
                    derive_conventional_equilibrium().results["group_elr"], "numpy")
    out = np.asarray(f(lrs[:, None], wd, a[None, :]), dtype=float)
    return out[0] if np.ndim(lr_value) == 0 else out


def conventional_ess_law(lr_value, weight_decay):
    r"""The value of the time mean of :math:`\log(1+\mathrm{ESS}_i^2)` in every stationary run,
    :math:`-2\log(1-\eta\lambda)` (derivation 12); scalar or array."""
    lrs, wd = _lr_wd(lr_value, weight_decay)
    f = sp.lambdify((lr, wdc), derive_conventional_ess_law().results["law"], "numpy")
    out = np.asarray(f(lrs, wd), dtype=float) * np.ones_like(lrs)
    return float(out[0]) if np.ndim(lr_value) == 0 else out


def conventional_burst_k(k_after: float) -> float:
    r"""Where a quiet phase that started at :math:`k_a` ends: the :math:`k_b > 1` with
    :math:`\mathrm{Re}[\mathrm{Li}_2(2k_a) - \mathrm{Li}_2(2k_b)] = 0` (derivation 14)."""
    import mpmath
    from scipy.optimize import brentq

    ka = float(k_after)
    if not 0 < ka < 1:
        raise ValueError(f"k_after must be in (0, 1), got {k_after!r}")
    expr = derive_conventional_periodic().results["total"]
    kas, kbs = sp.Symbol("k_a", positive=True), sp.Symbol("k_b", positive=True)
    f = sp.lambdify((kas, kbs), expr, "mpmath")

    def g(kb):
        return float(mpmath.re(f(ka, kb)))

    hi = 2.0
    while g(hi) < 0:
        hi *= 2
    return float(brentq(g, 1.0, hi, xtol=1e-14, rtol=1e-14))


def conventional_quiet_steps(lr_value, weight_decay, k_after: float, k_burst: float | None = None):
    r"""Length of a quiet phase, :math:`\log(k_b/k_a)/(-2\log(1-\eta\lambda))` (derivation 14), with
    :math:`k_b` from :func:`conventional_burst_k` unless given."""
    lrs, wd = _lr_wd(lr_value, weight_decay)
    kb = conventional_burst_k(k_after) if k_burst is None else float(k_burst)
    kas, kbs = sp.Symbol("k_a", positive=True), sp.Symbol("k_b", positive=True)
    f = sp.lambdify((kas, kbs, dec), derive_conventional_periodic().results["quiet"], "numpy")
    out = np.asarray(f(float(k_after), kb, 1 - lrs * wd), dtype=float)
    return float(out[0]) if np.ndim(lr_value) == 0 else out
