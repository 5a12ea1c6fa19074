r"""What every derivation stands on: the SymPy symbols, the :class:`Step` and :class:`Derivation`
records, and the helpers that more than one topic uses (proved steps, the group loss, Kuznetsov's
normal-form coefficient, the cache of lambdified functions).

Notation (``docs/theory.md``): weights :math:`\alpha_i`, :math:`A=\sum_i\alpha_i`; total ELR
:math:`\tilde\eta`; the dimensionless ELR :math:`c=\tilde\eta A`; group angle
:math:`\varphi_i` with :math:`x_i=r_i\sin\varphi_i,\ y_i=r_i\cos\varphi_i`; norm shares
:math:`\omega_i=r_i^2` on the unit sphere; group ELR :math:`\tilde\eta_i=\tilde\eta/\omega_i`
and :math:`k_i=\tilde\eta_i\alpha_i`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

__all__ = [
    "Step",
    "Derivation",
    "identity",
    "is_zero",
    "group_loss",
    "group_grad",
    "decade_bound",
    "kuznetsov_coefficient",
    "lambdified_once",
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


@dataclass(frozen=True)
class Step:
    """One step of a derivation: an explanation and the expression SymPy computed.

    ``lhs`` and ``rhs`` are shown as ``lhs = rhs`` (each a SymPy object, or a LaTeX string for
    display only); with ``check`` set, SymPy simplified ``check`` to zero, which proves the step
    (``verified`` records it).

    Parameters
    ----------
    text : str
        The explanation.
    lhs, rhs : sympy.Basic or str, optional
        The two sides shown (a str is LaTeX); neither for a step of text alone.
    check : sympy.Expr, optional
        The expression SymPy simplified to zero, for a proved identity.
    verified : bool, optional
        True once ``check`` was simplified to zero (see :func:`identity`).
    """

    text: str
    lhs: object = None
    rhs: object = None
    check: object = None
    verified: bool | None = None


@dataclass(frozen=True)
class Derivation:
    """A derived result: claim, assumptions, steps and named SymPy results.

    Parameters
    ----------
    key : str
        The file stem in ``derivations/``, such as ``"05_equilibrium"``.
    title : str
        One line.
    claim : str
        What is derived, in words.
    assumptions : tuple of str
        Under which conditions it holds.
    steps : tuple of Step
        The derivation, in order.
    results : dict
        Named SymPy results, for the numeric versions and the checks.
    """

    key: str
    title: str
    claim: str
    assumptions: tuple[str, ...]
    steps: tuple[Step, ...]
    results: dict = field(default_factory=dict)


def decade_bound(value: float) -> str:
    """The smallest power of ten above a residual, as text.

    Parameters
    ----------
    value : float
        A positive residual.

    Returns
    -------
    str
        ``"1e-k"``: the residual shown without the digits that depend on the machine's rounding.
    """
    return f"1e{int(np.floor(np.log10(float(value)))) + 1}"


def is_zero(expr) -> bool:
    """Whether SymPy simplifies an expression to zero.

    Parameters
    ----------
    expr : sympy.Expr
        The expression (a difference that should vanish).

    Returns
    -------
    bool
        True if ``simplify(trigsimp(simplify(expr)))`` is exactly 0.
    """
    expr = sp.simplify(sp.trigsimp(sp.simplify(expr)))
    return bool(expr == 0)


def identity(text, lhs, rhs, difference=None, show=None) -> Step:
    """A step asserting ``lhs == rhs``, proved by simplifying ``difference`` to zero.

    Parameters
    ----------
    text : str
        The explanation shown before the identity.
    lhs, rhs : sympy.Expr
        The two sides.
    difference : sympy.Expr, optional
        What SymPy must simplify to zero; default ``lhs - rhs``.
    show : tuple of (object, object), optional
        ``(lhs, rhs)`` to display instead (e.g. a LaTeX label for an expression that SymPy
        already evaluated).

    Returns
    -------
    Step
        The step, with ``check`` the difference and ``verified=True``.

    Raises
    ------
    AssertionError
        If the difference does not simplify to zero.
    """
    diff = (lhs - rhs) if difference is None else difference
    ok = is_zero(diff)
    if not ok:
        raise AssertionError(f"derivation step failed to verify: {text}")
    if show is not None:
        lhs, rhs = show
    return Step(text, lhs, rhs, diff, True)


def group_loss():
    r"""One group's term of the loss in the symbols ``alpha``, ``x``, ``y``.

    Returns
    -------
    sympy.Expr
        :math:`\alpha x^2/(x^2 + y^2)`.
    """
    return alpha * x**2 / (x**2 + y**2)


def group_grad():
    """The gradient of :func:`group_loss` in ``(x, y)``.

    Returns
    -------
    tuple of sympy.Expr
        ``(df/dx, df/dy)``.
    """
    f = group_loss()
    return sp.diff(f, x), sp.diff(f, y)


def kuznetsov_coefficient(Am, Bt, Ct) -> float:
    r"""Kuznetsov's first normal-form coefficient of the neutral pair of a map at a fixed point.

    Parameters
    ----------
    Am : ndarray, shape (m, m)
        The Jacobian at the fixed point; it must have a complex pair on the unit circle.
    Bt : ndarray, shape (m, m, m)
        The second derivatives, ``Bt[i, a, b]`` = d²G_i/dv_a dv_b.
    Ct : ndarray, shape (m, m, m, m)
        The third derivatives, ``Ct[i, a, b, q]``.

    Returns
    -------
    float
        :math:`\operatorname{Re}(e^{-i\vartheta} c_1)` with the eigenvector ``q`` of
        :math:`e^{i\vartheta}` normalised to unit length: negative where the pair attracts
        nonlinearly, positive where it repels.

    Notes
    -----
    Kuznetsov, *Elements of Applied Bifurcation Theory*, the Neimark-Sacker coefficient:
    :math:`c_1 = \tfrac12[\langle p,C(q,q,\bar q)\rangle + 2\langle p,B(q,(I-J)^{-1}B(q,\bar q))\rangle
    + \langle p,B(\bar q,(e^{2i\vartheta}I-J)^{-1}B(q,q))\rangle]` with :math:`\langle p,q\rangle=1`.
    """
    ev, vec = np.linalg.eig(Am)
    i = int(np.argmax(ev.imag))
    lam_ = ev[i]
    q = vec[:, i] / np.linalg.norm(vec[:, i])
    evT, vecT = np.linalg.eig(Am.T)
    p = vecT[:, int(np.argmin(np.abs(evT - np.conj(lam_))))]
    p = p / np.conj(np.vdot(p, q))  # <p, q> = conj(p) . q = 1

    def Bf(x_, y_):
        return np.einsum("ijk,j,k->i", Bt, x_, y_)

    eye = np.eye(Am.shape[0])
    h11 = np.linalg.solve(eye - Am, Bf(q, np.conj(q)))
    h20 = np.linalg.solve(lam_**2 * eye - Am, Bf(q, q))
    c1 = 0.5 * (np.vdot(p, np.einsum("ijkl,j,k,l->i", Ct, q, q, np.conj(q))) + 2 * np.vdot(p, Bf(q, h11))
                + np.vdot(p, Bf(np.conj(q), h20)))
    return float((np.conj(lam_) * c1).real)


def lambdified_once(builders: dict[str, Callable[[], object]]) -> Callable[[str], object]:
    """A lookup that builds each numeric function on first use and keeps it for the process.

    Parameters
    ----------
    builders : dict of str to callable
        ``name -> builder``; a builder takes no arguments and returns the numeric version of a
        derived result (usually ``sympy.lambdify`` of it), running only the derivation it needs.

    Returns
    -------
    callable
        ``numeric(name)``: ``builders[name]()``, called once per name (``functools.cache``).
        Each theory module keeps its own.
    """

    @functools.cache
    def numeric(name: str):
        return builders[name]()

    return numeric
