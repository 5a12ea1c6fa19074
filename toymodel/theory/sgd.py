r"""Mini-batch SGD on the sphere: the almost-sure convergence threshold (derivation 10).

The mask noise model (example j gives group i the weight :math:`\alpha_i m_{ji}/p`) makes the
minimum's angle multiplier random; the threshold is where the top Lyapunov exponent
:math:`h(k) = \mathbb E\log|1 - 2kM/(bp)|` of that random product changes sign. Numeric versions:
:func:`sgd_stability_exponent`, :func:`sgd_stability_edge`, :func:`sgd_threshold_elr` and the
large-batch expansion :func:`sgd_stability_edge_large_batch` (lambdified once per process).
"""

from __future__ import annotations

import functools

import numpy as np
import sympy as sp

from .._validate import as_alphas, as_batch_size, as_mask_prob
from .core import Derivation, Step, k, lambdified_once, phi
from .sphere import derive_one_step_map, threshold_elr

__all__ = [
    "derive_sgd_threshold",
    "sgd_stability_exponent",
    "sgd_stability_edge",
    "sgd_threshold_elr",
    "sgd_stability_edge_large_batch",
]

_B, _P = sp.symbols("b p", positive=True)  # the batch size and the mask probability


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
    (derived in ``derive_sgd_threshold``).

    Parameters
    ----------
    k : float or array_like
        :math:`k = \tilde\eta_i\alpha_i`, the group ELR times the group weight.
    batch_size : int
        The batch size b.
    mask_prob : float
        The mask probability p, in (0, 1].

    Returns
    -------
    float or ndarray
        The growth rate h at every k (a float for a scalar ``k``, else of ``k``'s shape); ``-inf``
        exactly at the points k = bp/(2m).
    """
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

    Parameters
    ----------
    batch_size : int
        The batch size b.
    mask_prob : float
        The mask probability p, in (0, 1].

    Returns
    -------
    float
        k*(b, p), to Brent's tolerance (1e-15); the last 256 results are cached.

    Notes
    -----
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
    r"""The almost-sure convergence threshold of mini-batch SGD on the toy.

    Returns
    -------
    Derivation
        Key ``10_sgd_threshold``; results ``h`` (the growth rate as a sum over the binomial), ``k_b1``,
        ``k_p1``, ``k_large`` (the edge for b = 1, p = 1 and large b, in ``b``, ``p``) and ``EA`` (the
        mean batch factor).
    """
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

    Parameters
    ----------
    alphas : array_like, shape (n,)
        The group weights, all positive.
    batch_size : int or None
        The batch size b; None for full-batch GD.
    mask_prob : float
        The mask probability p, in (0, 1].

    Returns
    -------
    float
        The total ELR below which the minimum is almost surely stable (with a free norm split);
        ``batch_size=None`` or ``mask_prob=1`` give the GD threshold exactly.
    """
    alphas = as_alphas(alphas)
    b = as_batch_size(batch_size)
    p = as_mask_prob(mask_prob)
    if b is None or p == 1.0:
        return threshold_elr(alphas)
    return sgd_stability_edge(b, p) / float(alphas.sum())


# ================================================================ numeric versions
#: the lambdified large-batch edge, built on first use
_numeric = lambdified_once({
    "k_large": lambda: sp.lambdify((_B, _P), derive_sgd_threshold().results["k_large"], "numpy"),
})


def sgd_stability_edge_large_batch(batch_size, mask_prob):
    r"""The large-batch expansion of the SGD edge, :math:`k^* \approx 1 + (1-p)/(bp)` (derived in
    ``derive_sgd_threshold``).

    Parameters
    ----------
    batch_size : float or array_like
        The batch size b.
    mask_prob : float or array_like
        The mask probability p; broadcasts with ``batch_size``.

    Returns
    -------
    float or ndarray
        The expansion, of the broadcast shape.
    """
    return _numeric("k_large")(np.asarray(batch_size, dtype=float), np.asarray(mask_prob, dtype=float))

