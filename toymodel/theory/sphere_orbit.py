r"""The stability of the sphere's equilibrium orbit (derivations 08 and 09).

Every multiplier of the period-2 orbit of :mod:`toymodel.theory.sphere`, the norm-split directions
included (08: neutral for every c > 1), and the first normal-form coefficient that decides its
stability where the linearisation cannot (09: the orbit attracts for 1 < c < sqrt 3 when n = 2);
with their numeric versions (:func:`cycle_multipliers`, :func:`orbit_stability_coefficient`,
:func:`resonance_c`, :func:`orbit_instability_c`). Apart from the orbit's existence and quantities
because this is where the heavy SymPy work is (full symbolic Jacobians, third-derivative tensors),
and nothing else in the sphere's theory needs it.
"""

from __future__ import annotations

import functools

import numpy as np
import sympy as sp

from .._validate import as_alphas, as_elrs
from .core import (
    Derivation,
    Step,
    c,
    decade_bound,
    identity,
    k,
    kuznetsov_coefficient,
    lambdified_once,
    phi,
)
from .sphere import derive_one_step_map, threshold_elr

__all__ = [
    "derive_cycle_linearisation",
    "derive_orbit_nonlinear_stability",
    "cycle_multipliers",
    "orbit_stability_coefficient",
    "resonance_c",
    "orbit_instability_c",
]


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
    r"""Every multiplier of the equilibrium orbit, including the norm-split directions.

    Returns
    -------
    Derivation
        Key ``08_cycle_linearisation``; results ``common`` and ``pair`` (the multipliers over one
        period, in ``c``), ``one_step_common``, ``M`` (the 2x2 block), ``rotation``, ``trace`` and
        ``det``.
    """
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
        identity("each of modulus 1:", sp.simplify(eig_s[0] * sp.conjugate(eig_s[0])), sp.Integer(1),
                  show=(r"\lambda_\pm \overline{\lambda_\pm}", 1)),
        identity("with real part tr M / 2 = 2/c^2 - 1:", sp.simplify(sp.re(sp.expand_complex(eig_s[0]))),
                  (trM / 2).subs(to_s)),
        Step("det M = 1 and |tr M| < 2 for every c > 1: the eigenvalues are a complex pair on the unit circle, "
             "e^{+-i theta}, rotating by theta = 2 arctan(s) = 2 arccos(1/c), twice the angular update:",
             r"\vartheta", theta_rot),
        identity("Cross-check with the full symbolic Jacobian for n = 2 (symbolic alphas): the characteristic "
                  "polynomial is (lambda - lambda_0)(lambda^2 - tr M lambda + 1)",
                  sp.expand(cp2 / sp.LC(sp.Poly(cp2, lm2))), sp.expand(target(2, lm2)),
                  show=(sp.Symbol(r"\chi_{n=2}(\lambda)"), cp2)),
        identity("and for n = 3, where the pair appears twice:",
                  sp.expand(cp3 / sp.LC(sp.Poly(cp3, lm3))), sp.expand(target(3, lm3)),
                  show=(sp.Symbol(r"\chi_{n=3}(\lambda)"), cp3)),
        Step("Multipliers over one period (squares): the common swing", r"\mu_0", mu0),
        Step("and n-1 copies of the neutral pair (s = sqrt(c^2 - 1)), e^{+-2 i theta}:", r"\mu_\pm",
             sp.Tuple(*mus_s)),
        identity("whose modulus is exactly 1:", sp.simplify(mus_s[0] * sp.conjugate(mus_s[0])), sp.Integer(1),
                  show=(r"\mu_\pm \overline{\mu_\pm}", 1)),
        identity("The rotation angle is twice the orbit's angular update arccos(1/c): cos theta = cos(2 arccos(1/c))",
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
    """Kuznetsov's first normal-form coefficient of the neutral pair of G (n = 2) at c = ``cv``,
    weight ratio ``rv``, with the eigenvector q normalised to unit length."""
    _, fJ, fB, fC, _ = _normal_form_forms()
    sv = np.sqrt(cv * cv - 1.0)
    return kuznetsov_coefficient(np.array(fJ(sv, rv), dtype=float), np.array(fB(sv, rv), dtype=float),
                                 np.array(fC(sv, rv), dtype=float))


@functools.lru_cache(maxsize=None)
def derive_orbit_nonlinear_stability() -> Derivation:
    r"""Nonlinear stability of the neutral equilibrium orbit (n = 2): the first normal-form
    coefficient of its neutral pair, and the c at which it changes sign.

    Returns
    -------
    Derivation
        Key ``09_orbit_nonlinear_stability``; results ``root`` (the c at which the coefficient
        changes sign, identified exactly), ``roots`` (one per weight ratio tried) and
        ``root_float``.
    """
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
        Step(f"They agree to better than {decade_bound(max(spread, 1e-11))}; SymPy identifies the common root as",
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



# ================================================================ numeric versions
#: the lambdified multipliers, from the cheap per-group block of derivation 08 (its full-Jacobian
#: cross-checks are not needed here), built on first use
_numeric = lambdified_once({
    "mu0": lambda: sp.lambdify(c, _cycle_block()["mu0"], "numpy"),
    "mu_pair": lambda: sp.lambdify(c, sp.Tuple(*_cycle_block()["mus"]), "numpy"),
})


def cycle_multipliers(alphas, elr) -> np.ndarray:
    r"""Every multiplier of the map linearised over one period of the equilibrium orbit.

    Parameters
    ----------
    alphas : array_like, shape (n,)
        The group weights, all positive.
    elr : float
        The total ELR, above ``threshold_elr(alphas)``.

    Returns
    -------
    ndarray of complex, shape (2n - 1,)
        First the common swing :math:`(1-2/c^2)^2`, then ``n - 1`` copies of the neutral pair
        :math:`e^{\pm 2i\vartheta}`, :math:`\cos\vartheta = 2/c^2 - 1` (derivation 08).

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

    Parameters
    ----------
    alphas : array_like, shape (2,)
        The two group weights, positive.
    elr : float
        The total ELR, above ``threshold_elr(alphas)``.

    Returns
    -------
    float
        Negative: the orbit attracts nonlinearly (algebraically); positive: it repels. Normalised
        with a unit eigenvector, so only its sign and relative size are meaningful (derivation 09).

    Raises
    ------
    ValueError
        If there are not two groups, or ``elr`` is at or below the threshold (no orbit).
    """
    alphas = as_alphas(alphas)
    if alphas.size != 2:
        raise ValueError(f"alphas must have two groups for the normal-form coefficient, got {alphas.size}")
    e = float(as_elrs(elr, "elr")[0])
    cv = e * alphas.sum()
    if not cv > 1:
        raise ValueError(f"elr must exceed threshold_elr(alphas) = {threshold_elr(alphas)!r}, got {elr!r}")
    return _nf_coefficient(cv, alphas[1] / alphas[0])


@functools.lru_cache(maxsize=None)
def resonance_c(q: int) -> float:
    r"""The c > 1 at which the neutral pair of the orbit's one-step map is a 1:q resonance,
    :math:`e^{i\vartheta}` with :math:`\vartheta = 2\pi/q`, from the derived trace
    :math:`\cos\vartheta = \mathrm{tr}\,M/2 = 2/c^2 - 1` (q = 3: c = 2; q = 4: c = sqrt 2).

    Parameters
    ----------
    q : int
        The order of the resonance, at least 3.

    Returns
    -------
    float
        The dimensionless ELR c of the resonance.

    Raises
    ------
    ValueError
        If ``q < 3``.
    """
    q = int(q)
    if q < 3:
        raise ValueError(f"q must be >= 3 (strong resonances are q = 3, 4), got {q}")
    half_trace = _cycle_block()["trM"] / 2
    roots = [r_ for r_ in sp.solve(sp.Eq(half_trace, sp.cos(2 * sp.pi / q)), c) if r_.is_real and r_ > 1]
    return float(roots[0])


def orbit_instability_c() -> float:
    r"""The c = elr * sum(alpha) above which the equilibrium orbit is nonlinearly unstable (n = 2):
    the root of :func:`orbit_stability_coefficient`, identified as :math:`\sqrt 3`.

    Returns
    -------
    float
        :math:`\sqrt 3` (derivation 09), as a float.
    """
    return float(derive_orbit_nonlinear_stability().results["root"])

