r"""Training on the sphere: the map, the minimum and the equilibrium orbit (derivations 01-07, 15).

The derivations of the toy's projected GD on the unit sphere: scale invariance (01), the exact
one-step map (02), the group-ELR dynamics (03), the minimum's stability and the threshold (04),
the equal-ESS equilibrium orbit (05), the random-guess level (06), the orbit's limits (07) and the
minimum's stability in tangent-Hessian terms (15); and their numeric versions
(:func:`threshold_elr`, :func:`equilibrium_loss`, ...), each ``sympy.lambdify`` of a derived result,
built once per process on first use. The stability of the orbit itself is in
:mod:`toymodel.theory.sphere_orbit`.
"""

from __future__ import annotations

import functools

import numpy as np
import sympy as sp

from .._validate import as_alphas, as_elrs
from .core import (
    A,
    Derivation,
    Step,
    alpha,
    c,
    elr,
    eta,
    group_grad,
    group_loss,
    identity,
    is_zero,
    k,
    lam,
    lambdified_once,
    phi,
    r,
    tt,
    x,
    y,
)

__all__ = [
    "derive_scale_invariance",
    "derive_one_step_map",
    "derive_group_elr_dynamics",
    "derive_minimum_stability",
    "derive_equilibrium",
    "derive_random_guess",
    "derive_equilibrium_limits",
    "derive_sphere_stability_hessian",
    "threshold_elr",
    "sphere_stability_bound",
    "tangent_hessian_eigenvalues",
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
    "one_step_map",
    "group_elr_next",
]

# a group's ELR, the total ESS g*elr and the group's ESS g_i*elr_i (the group-ELR recursion)
_ELR_I = sp.Symbol(r"\tilde{\eta}_i", positive=True)
_ESS_TOTAL = sp.Symbol("G", positive=True)
_ESS_GROUP = sp.Symbol("S_i", positive=True)
# the weight of one group, and the sphere's radius and a group's norm share (derivation 15)
_ALPHA_I = sp.Symbol("alpha_i", positive=True)
_RHO, _OMEGA_I = sp.symbols("rho omega_i", positive=True)


# ------------------------------------------------------------------ derivation 1
@functools.lru_cache(maxsize=None)
def derive_scale_invariance() -> Derivation:
    r"""Scale invariance of each group and orthogonality of the gradient to every group.

    Returns
    -------
    Derivation
        Key ``01_scale_invariance``; results ``grad_x``, ``grad_y`` (the gradient of one group's term in
        ``x``, ``y``) and ``hessian`` (its 2x2 Hessian).
    """
    f = group_loss()
    fx, fy = group_grad()
    H = sp.hessian(f, (x, y))
    steps = (
        Step("The loss of group i (F is the sum of these over groups, each in its own variables):",
             sp.Symbol("f_i"), f),
        identity("Rescaling the group by any lambda > 0 leaves it unchanged:",
                  f.subs({x: lam * x, y: lam * y}, simultaneous=True), f),
        Step("Its gradient:", r"\nabla_{\theta_i} f_i",
             sp.Matrix([sp.factor(fx), sp.factor(fy)])),
        identity("The gradient is orthogonal to the group, <grad_i F, theta_i> = 0:",
                  x * fx + y * fy, sp.Integer(0)),
        identity("The gradient scales inversely, grad f(lambda theta) = grad f(theta) / lambda (x-component):",
                  fx.subs({x: lam * x, y: lam * y}, simultaneous=True), fx / lam),
        identity("and y-component:", fy.subs({x: lam * x, y: lam * y}, simultaneous=True), fy / lam),
        identity("Euler's identity for degree -1: the Hessian maps theta_i to -grad_i F (x-component):",
                  (H * sp.Matrix([x, y]))[0], -fx),
        identity("and y-component:", (H * sp.Matrix([x, y]))[1], -fy),
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
    r"""The exact one-step map of a group in angle/norm coordinates.

    Returns
    -------
    Derivation
        Key ``02_one_step_map``; results ``phi_new`` (the new angle in ``k``, ``phi``), ``growth`` (the
        squared-norm growth factor), ``ess`` (the group ESS), ``x_factor`` and ``y_factor`` (the factors
        of the step).
    """
    fx, fy = group_grad()
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
        identity("The gradient step multiplies x_i and y_i by simple factors (x-component):",
                  xn, xn_closed.subs(k, kk)),
        identity("(y-component; y_i keeps its sign since the factor is > 0):", yn, yn_closed.subs(k, kk)),
        identity("The squared group norm grows by the factor 1 + (k_i sin 2phi_i)^2 = 1 + (eta_i g_i)^2:",
                  (xn_closed**2 + yn_closed**2) / r**2, growth),
        identity("The angle turns by arctan(k_i sin 2phi_i): with t = tan(phi_i), tan(phi_i') equals",
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
    r"""Group-ELR dynamics and the two sum rules (harmonic ELRs, ESS).

    Returns
    -------
    Derivation
        Key ``03_group_elr_dynamics``; results ``elr_next`` (the group-ELR recursion in the group ELR,
        the total ESS and the group ESS).
    """
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
        identity("Group ELRs are elr_i = elr / omega_i, so their harmonic sum is fixed (omega on the simplex):",
                  sum(1 / e for e in elr_i).subs(constraint), 1 / elr),
        identity("The total ESS squared is the omega-weighted mean of the group ESS squared, "
                  "(g elr)^2 = sum_i omega_i (g_i elr_i)^2:", elr**2 * g2,
                  sum(om[i] * ess_i[i] ** 2 for i in range(n))),
        Step("so the projection normaliser is D = 1 + (g elr)^2, and the new shares are "
             "omega_i' = omega_i (1 + (g_i elr_i)^2) / (1 + (g elr)^2)."),
        identity("The group ELR therefore evolves as elr_i' = elr_i (1 + (g elr)^2) / (1 + (g_i elr_i)^2) "
                  "(shown for group 1):",
                  elr_new_0, elr_i[0] * (1 + elr**2 * g2) / (1 + ess_i[0] ** 2)),
        identity("The shares stay on the simplex:", sum(om_new).subs(constraint), sp.Integer(1)),
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
    r"""Linear stability of the minimum, per group and for the whole system.

    Returns
    -------
    Derivation
        Key ``04_minimum_stability``; results ``multiplier`` (of a group's angle at its minimum, in
        ``k``), ``k_edge`` (1), ``threshold_elr`` (in ``A``) and ``threshold_c`` (1).
    """
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
        identity("At the minimum the norm shares are frozen to first order: the growth factor is flat in phi_i,",
                  dgrowth_dphi, sp.Integer(0),
                  show=(r"\left.\frac{\partial (1 + k^2\sin^2 2\varphi)}{\partial \varphi}\right|_{\varphi=0}", 0)),
        identity("and the angle does not respond to its ELR (so the Jacobian is block diagonal):",
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
    r"""The equal-ESS equilibrium orbit above the threshold.

    Returns
    -------
    Derivation
        Key ``05_equilibrium``; results in ``c`` (and ``A``, ``alpha_i``): ``phi_star``, ``loss``,
        ``cosine``, ``angle``, ``eff_grad_norm``, ``group_elr``, ``ess``, ``tan2_phi_star``,
        ``sin2_phi_star``, ``share``.
    """
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
    if not is_zero(gbar_raw - gbar):
        raise AssertionError("effective gradient norm on the orbit")
    group_elr = elr * A / al_i
    steps = (
        Step("Look for an orbit on which every group flips its angle each step, phi_i' = -phi_i. With the angle "
             "map of the one-step derivation this means", flip.lhs, flip.rhs),
        Step("For phi_i != 0 that is cos 2phi_i = 1/k_i, which has a solution iff k_i > 1:",
             r"\varphi^*", phi_star),
        identity("Check: at phi*, tan 2phi - k sin 2phi vanishes, so the angle map sends phi* to -phi*:",
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
        identity("equivalently", tan2_check, sp.Integer(0), show=(r"\tan^2\varphi^*", tan2)),
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
    r"""Mean (and spread) of F at a uniform random point on the sphere.

    Returns
    -------
    Derivation
        Key ``06_random_guess``; results ``mean_term`` and ``var_term`` (of one group's sin^2) and
        ``loss`` (the mean of F, in ``A``).
    """
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
    r"""Limits of the equilibrium as c -> 1+ and c -> infinity.

    Returns
    -------
    Derivation
        Key ``07_equilibrium_limits``; results ``limits`` (name -> (c -> 1+, c -> oo) of the orbit
        quantities), ``near`` and ``far`` (the loss's expansions at the threshold and, in 1/c, at
        infinity).
    """
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
    steps.append(identity("The large-ELR limit of the loss is the random-guess level:", lim["loss"][1], rg))
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



# ----------------------------------------------------------------- derivation 15
@functools.lru_cache(maxsize=None)
def derive_sphere_stability_hessian() -> Derivation:
    r"""The minimum's stability in terms of the tangent Hessian's eigenvalues and the total ELR.

    Returns
    -------
    Derivation
        Key ``15_sphere_stability_hessian``; results ``hessian_at_min``, ``tangent_eigenvalue`` (in
        ``alpha``, ``rho``, ``omega_i``), ``multiplier``, ``bound`` (2) and ``radial_derivative`` (0).
    """
    f = group_loss()
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
        identity("The radial derivative of f vanishes identically (scale invariance, derivation 01), so the "
                  "sphere's curvature term -<grad F, theta>/rho^2 of the Riemannian Hessian is zero:",
                  grad_dot_theta, sp.Integer(0), show=(r"\langle \nabla f, \theta\rangle", 0)),
        Step("At a minimum every x_i = 0, so each x_i direction is tangent to the sphere and the projected Hessian "
             "P H P is diagonal: eigenvalue lambda_i = 2 alpha_i / r_i^2 along x_i, with r_i^2 = omega_i rho^2, "
             "and 0 along the n - 1 norm-split directions:", r"\lambda_i", lam_i),
        Step("Projected GD theta' = rho (theta - eta grad F)/||theta - eta grad F|| moves a point delta off the "
             "minimum to (I - eta H_t) delta + O(delta^2): the gradient is O(delta) and orthogonal to theta, so the "
             "normalisation is second order. Along eigenvector i the multiplier is", r"1 - \eta\lambda_i", mult),
        identity("With eta = elr rho^2 (total ELR elr on the sphere of radius rho) this is derivation 04's "
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



# ================================================================ numeric versions
#: every lambdified result of this module, built on first use (each builder runs only the
#: derivation it needs, so cheap results stay cheap)
_numeric = lambdified_once({
    "threshold_elr": lambda: sp.lambdify(A, derive_minimum_stability().results["threshold_elr"], "numpy"),
    "min_multiplier": lambda: sp.lambdify(k, derive_minimum_stability().results["multiplier"], "numpy"),
    "loss": lambda: sp.lambdify((c, A), derive_equilibrium().results["loss"], "numpy"),
    "eff_grad_norm": lambda: sp.lambdify((c, A), derive_equilibrium().results["eff_grad_norm"], "numpy"),
    "cosine": lambda: sp.lambdify(c, derive_equilibrium().results["cosine"], "numpy"),
    "angle": lambda: sp.lambdify(c, derive_equilibrium().results["angle"], "numpy"),
    "phi_star": lambda: sp.lambdify(c, derive_equilibrium().results["phi_star"], "numpy"),
    "share": lambda: sp.lambdify((A, _ALPHA_I), derive_equilibrium().results["share"], "numpy"),
    "group_elr": lambda: sp.lambdify((elr, A, _ALPHA_I), derive_equilibrium().results["group_elr"], "numpy"),
    "rg_mean": lambda: sp.lambdify(A, derive_random_guess().results["loss"], "numpy"),
    "rg_var_term": lambda: float(derive_random_guess().results["var_term"]),
    "phi_new": lambda: sp.lambdify((k, phi), derive_one_step_map().results["phi_new"], "numpy"),
    "growth": lambda: sp.lambdify((k, phi), derive_one_step_map().results["growth"], "numpy"),
    "elr_next": lambda: sp.lambdify((_ELR_I, _ESS_TOTAL, _ESS_GROUP),
                                    derive_group_elr_dynamics().results["elr_next"], "numpy"),
    "tangent_eigenvalue": lambda: sp.lambdify(
        (alpha, _RHO, _OMEGA_I), derive_sphere_stability_hessian().results["tangent_eigenvalue"], "numpy"),
})


def _c(alphas, elr):
    alphas = as_alphas(alphas)
    e = as_elrs(elr, "elr")
    scalar = np.ndim(elr) == 0
    return alphas, e, e * alphas.sum(), scalar


def _out(arr, scalar):
    return float(arr[0]) if scalar else arr


def threshold_elr(alphas) -> float:
    r"""The total-ELR boundary of convergence, :math:`1/\sum_i\alpha_i` (derived).

    Parameters
    ----------
    alphas : array_like, shape (n,)
        The group weights, all positive.

    Returns
    -------
    float
        The total ELR below which some norm split makes the minimum stable (derivation 04).
    """
    alphas = as_alphas(alphas)
    return float(_numeric("threshold_elr")(alphas.sum()))


def sphere_stability_bound() -> float:
    r"""The bound on :math:`\tilde\eta\rho^2\lambda_{\max}` of the tangent Hessian at a linearly stable
    minimum: 2 (derivation 15).

    Returns
    -------
    float
        2.0: a minimum is linearly stable iff the total ELR times :math:`\rho^2` times the tangent
        Hessian's top eigenvalue is below it.
    """
    return float(derive_sphere_stability_hessian().results["bound"])


def tangent_hessian_eigenvalues(alphas, shares, radius: float = 1.0) -> np.ndarray:
    r"""The tangent Hessian's eigenvalues :math:`2\alpha_i/(\rho^2\omega_i)` along the groups' angle
    directions at a minimum with norm shares ``shares`` (derivation 15; the n - 1 norm-split directions
    have eigenvalue 0).

    Parameters
    ----------
    alphas : array_like, shape (n,)
        The group weights, all positive.
    shares : array_like, shape (n,) or broadcastable with it
        The norm shares :math:`\omega_i` of the minimum (summing to 1).
    radius : float, default 1.0
        The sphere's radius :math:`\rho`.

    Returns
    -------
    ndarray, shape (n,) (the broadcast shape of ``alphas`` and ``shares``)
        One eigenvalue per group's angle direction.
    """
    alphas = as_alphas(alphas)
    om = np.asarray(shares, dtype=float)
    return _numeric("tangent_eigenvalue")(alphas, float(radius), om)


def minimum_multipliers(alphas, group_elrs) -> tuple[np.ndarray, int]:
    r"""Multipliers of the minimum for given group ELRs.

    Parameters
    ----------
    alphas : array_like, shape (n,)
        The group weights, all positive.
    group_elrs : array_like, shape (..., n)
        The group ELRs :math:`\tilde\eta_i` of the minimum.

    Returns
    -------
    angle_multipliers : ndarray, shape (..., n)
        The multipliers :math:`1 - 2\tilde\eta_i\alpha_i` of the angle directions.
    n_neutral : int
        ``n - 1``: the norm-split directions, neutral (multiplier exactly 1) at every minimum.
    """
    alphas = as_alphas(alphas)
    ge = np.asarray(group_elrs, dtype=float)
    return _numeric("min_multiplier")(ge * alphas), alphas.size - 1


def equilibrium_group_elrs(alphas, elr) -> np.ndarray:
    r"""Group ELRs on the equilibrium orbit, :math:`\tilde\eta\sum\alpha/\alpha_i`.

    Parameters
    ----------
    alphas : array_like, shape (n,)
        The group weights, all positive.
    elr : float or array_like, shape (K,)
        Total ELRs.

    Returns
    -------
    ndarray, shape (n,) for a scalar ``elr``, else (K, n)
        The group ELRs; NaN where ``elr <= threshold_elr(alphas)`` (no equilibrium orbit; every
        split with :math:`\tilde\eta_i\alpha_i<1` is a stable minimum).
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
    (the attracting set is then the minimum).

    Parameters
    ----------
    alphas : array_like, shape (n,)
        The group weights, all positive.
    elr : float or array_like, shape (K,)
        Total ELRs.

    Returns
    -------
    float or ndarray, shape (K,)
        A float for a scalar ``elr``.
    """
    return _eq_value("loss", alphas, elr, 0.0, True)


def equilibrium_cosine(alphas, elr):
    r"""Cosine between consecutive iterates on the equilibrium orbit, :math:`1/c`; 1 at and below
    the threshold (the iterates stop moving at the minimum).

    Parameters
    ----------
    alphas : array_like, shape (n,)
        The group weights, all positive.
    elr : float or array_like, shape (K,)
        Total ELRs.

    Returns
    -------
    float or ndarray, shape (K,)
        A float for a scalar ``elr``.
    """
    return _eq_value("cosine", alphas, elr, 1.0, False)


def equilibrium_angle(alphas, elr):
    r"""Angular update on the orbit, :math:`\arccos(1/c)`; 0 at and below the threshold.

    Parameters
    ----------
    alphas : array_like, shape (n,)
        The group weights, all positive.
    elr : float or array_like, shape (K,)
        Total ELRs.

    Returns
    -------
    float or ndarray, shape (K,)
        The angle in radians; a float for a scalar ``elr``.
    """
    return _eq_value("angle", alphas, elr, 0.0, False)


def equilibrium_eff_grad_norm(alphas, elr):
    r"""Effective gradient norm on the orbit, :math:`A\sqrt{c^2-1}/c`; 0 at and below the threshold.

    Parameters
    ----------
    alphas : array_like, shape (n,)
        The group weights, all positive.
    elr : float or array_like, shape (K,)
        Total ELRs.

    Returns
    -------
    float or ndarray, shape (K,)
        A float for a scalar ``elr``.
    """
    return _eq_value("eff_grad_norm", alphas, elr, 0.0, True)


def equilibrium_amplitude(alphas, elr):
    r"""Angle :math:`\varphi^* = \tfrac12\arccos(1/c)` of every group on the orbit; 0 at and below.

    Parameters
    ----------
    alphas : array_like, shape (n,)
        The group weights, all positive.
    elr : float or array_like, shape (K,)
        Total ELRs.

    Returns
    -------
    float or ndarray, shape (K,)
        The angle in radians; a float for a scalar ``elr``.
    """
    return _eq_value("phi_star", alphas, elr, 0.0, False)


def equilibrium_point(alphas, elr) -> np.ndarray:
    r"""A point of the equilibrium orbit: :math:`x_i = \sqrt{\omega_i^*}\sin\varphi^*`,
    :math:`y_i = \sqrt{\omega_i^*}\cos\varphi^*` with :math:`\omega_i^* = \alpha_i/A` (derived).

    Parameters
    ----------
    alphas : array_like, shape (n,)
        The group weights, all positive.
    elr : float
        The total ELR, above ``threshold_elr(alphas)``.

    Returns
    -------
    ndarray, shape (2n,)
        :math:`\theta = (x_1, y_1, \dots, x_n, y_n)` on the unit sphere.

    Raises
    ------
    ValueError
        If ``elr`` is not a scalar, or at or below the threshold (no orbit).
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
    r"""Mean of F over uniform points of the sphere, :math:`\sum_i\alpha_i/2` (derived).

    Parameters
    ----------
    alphas : array_like, shape (n,)
        The group weights, all positive.

    Returns
    -------
    float
        The random-guess level (derivation 06).
    """
    alphas = as_alphas(alphas)
    return float(_numeric("rg_mean")(alphas.sum()))


def random_guess_loss_std(alphas) -> float:
    r"""Standard deviation of F over uniform points, :math:`\sqrt{\sum_i\alpha_i^2/8}` (derived).

    Parameters
    ----------
    alphas : array_like, shape (n,)
        The group weights, all positive.

    Returns
    -------
    float
        The spread of F over uniform points of the sphere (derivation 06).
    """
    alphas = as_alphas(alphas)
    return float(np.sqrt(_numeric("rg_var_term") * np.sum(alphas**2)))


def one_step_map(k_i, phi_i):
    r"""The derived one-step map of a group in angle coordinates, :math:`\varphi_i' = \varphi_i -
    \arctan(k_i\sin 2\varphi_i)`, and its squared-norm growth factor :math:`1 + (k_i\sin 2\varphi_i)^2`.

    Parameters
    ----------
    k_i : float or array_like
        :math:`k_i = \tilde\eta_i\alpha_i`, the group ELR times the group weight.
    phi_i : float or array_like
        The group angle :math:`\varphi_i`; broadcasts with ``k_i``.

    Returns
    -------
    phi_next : float or ndarray
        The new angle, of the broadcast shape.
    growth : float or ndarray
        The factor by which the group's squared norm grows (before the projection).
    """
    return _numeric("phi_new")(k_i, phi_i), _numeric("growth")(k_i, phi_i)


def group_elr_next(group_elr, total_ess, group_ess):
    r"""The derived group-ELR recursion :math:`\tilde\eta_i' = \tilde\eta_i(1 + (\tilde g\tilde\eta)^2)
    /(1 + (\tilde g_i\tilde\eta_i)^2)`.

    Parameters
    ----------
    group_elr : float or array_like
        The group ELR :math:`\tilde\eta_i`.
    total_ess : float or array_like
        The total ESS :math:`\tilde g\tilde\eta`.
    group_ess : float or array_like
        The group's ESS :math:`\tilde g_i\tilde\eta_i`; the three broadcast.

    Returns
    -------
    float or ndarray
        The group ELR after the step, of the broadcast shape.
    """
    return _numeric("elr_next")(group_elr, total_ess, group_ess)
