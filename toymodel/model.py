"""The toy problem of Kodryan et al. (2022), section on the toy example, in plain NumPy.

This module is the readable statement of the dynamics. The Numba kernels in
:mod:`toymodel._kernels` implement the same map and are tested against it.
"""

from __future__ import annotations

import numpy as np

from . import _streams
from ._validate import as_alphas, as_seeds

__all__ = ["ToyProblem", "PAPER_ALPHAS"]

#: the weights of the paper's toy figures (three groups; they fit the reported threshold and
#: equilibrium group ELRs)
PAPER_ALPHAS = (1.0, 2.0, 4.0)


class ToyProblem:
    r"""The scale-invariant toy loss with ``n`` two-dimensional groups.

    .. math::

        F(\theta) = \sum_{i=1}^n \alpha_i \frac{x_i^2}{x_i^2 + y_i^2},
        \qquad \theta = (x_1, y_1, \dots, x_n, y_n) \in \mathbb{R}^{2n}.

    Parameters
    ----------
    alphas : sequence of float, shape (n,)
        Positive, finite group weights. A string ``"1,2,4"`` is accepted too.

    Notes
    -----
    Points are arrays whose last axis has length ``2n`` and holds ``x_1, y_1, x_2, ...``.
    Every method is vectorised over leading axes. The training map on the unit sphere
    with total effective learning rate (ELR) :math:`\tilde\eta` is

    .. math::

        \theta \leftarrow \frac{\theta - \tilde\eta \nabla F(\theta)}
                               {\lVert \theta - \tilde\eta \nabla F(\theta) \rVert}

    (radius 1, so the learning rate equals the ELR). Group ``i`` has norm share
    :math:`\omega_i = \lVert\theta_i\rVert^2/\lVert\theta\rVert^2` and group ELR
    :math:`\tilde\eta_i = \tilde\eta / \omega_i`.
    """

    def __init__(self, alphas):
        self._alphas = as_alphas(alphas)

    # ------------------------------------------------------------------ basics
    @property
    def alphas(self) -> np.ndarray:
        """Group weights, shape (n,), read-only."""
        return self._alphas

    @property
    def n_groups(self) -> int:
        return int(self._alphas.size)

    @property
    def dim(self) -> int:
        """Dimension of the ambient space, ``2n``."""
        return 2 * self.n_groups

    @property
    def total_alpha(self) -> float:
        return float(self._alphas.sum())

    def __repr__(self) -> str:
        return f"ToyProblem(alphas={self._alphas.tolist()})"

    def __eq__(self, other) -> bool:
        return isinstance(other, ToyProblem) and np.array_equal(self._alphas, other._alphas)

    def __hash__(self) -> int:
        return hash(tuple(self._alphas.tolist()))

    # ---------------------------------------------------------------- checking
    def check_points(self, theta, name: str = "theta") -> np.ndarray:
        """Return ``theta`` as float64 after checking shape, finiteness and group norms.

        Raises
        ------
        ValueError
            If the last axis is not ``2n``, a value is not finite, or a group has zero norm
            (the loss is undefined there).
        """
        arr = np.asarray(theta, dtype=float)
        if arr.ndim == 0 or arr.shape[-1] != self.dim:
            raise ValueError(f"{name} must have last axis of length {self.dim} (2n), got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite")
        sq = self.group_squared_norms(arr)
        if np.any(sq == 0):
            where = np.argwhere(sq == 0)[0]
            raise ValueError(f"{name} has a zero-norm group (group {int(where[-1]) + 1}); the loss is undefined there")
        return arr

    # ------------------------------------------------------------ group views
    def split(self, theta):
        """Return views ``(x, y)`` of shape (..., n)."""
        theta = np.asarray(theta, dtype=float)
        return theta[..., 0::2], theta[..., 1::2]

    def group_squared_norms(self, theta) -> np.ndarray:
        x, y = self.split(theta)
        return x * x + y * y

    def group_norms(self, theta) -> np.ndarray:
        """Norms ``||theta_i||``, shape (..., n)."""
        return np.sqrt(self.group_squared_norms(theta))

    def norm_shares(self, theta) -> np.ndarray:
        """Norm split ``omega_i = ||theta_i||^2 / ||theta||^2`` (a point of the simplex)."""
        sq = self.group_squared_norms(theta)
        return sq / sq.sum(axis=-1, keepdims=True)

    def group_elrs(self, theta, elr) -> np.ndarray:
        r"""Group ELRs :math:`\tilde\eta_i = \eta / \lVert\theta_i\rVert^2` with
        :math:`\eta = \tilde\eta \lVert\theta\rVert^2`, i.e. :math:`\tilde\eta/\omega_i`."""
        elr = np.asarray(elr, dtype=float)[..., None]
        return elr / self.norm_shares(theta)

    def group_angles(self, theta) -> np.ndarray:
        r"""Angle :math:`\varphi_i` of each group from its minimiser: ``x = r sin(phi)``,
        ``y = r cos(phi)``, in :math:`(-\pi, \pi]`."""
        x, y = self.split(theta)
        return np.arctan2(x, y)

    # ------------------------------------------------------------ loss & grad
    def group_losses(self, theta, weights=None) -> np.ndarray:
        """Per-group terms ``alpha_i x_i^2 / (x_i^2 + y_i^2)``, shape (..., n)."""
        x, y = self.split(theta)
        w = self._alphas if weights is None else np.asarray(weights, dtype=float)
        return w * x * x / (x * x + y * y)

    def loss(self, theta, weights=None) -> np.ndarray:
        """F(theta), shape (...). ``weights`` replaces ``alphas`` (used for mini-batches)."""
        return self.group_losses(theta, weights).sum(axis=-1)

    def gradient(self, theta, weights=None) -> np.ndarray:
        r"""Euclidean gradient, shape (..., 2n).

        :math:`\partial F/\partial x_i = 2\alpha_i x_i y_i^2/r_i^4`,
        :math:`\partial F/\partial y_i = -2\alpha_i x_i^2 y_i/r_i^4`.
        """
        x, y = self.split(theta)
        w = self._alphas if weights is None else np.asarray(weights, dtype=float)
        r4 = (x * x + y * y) ** 2
        g = np.empty(np.broadcast_shapes(np.shape(theta), (self.dim,)), dtype=float)
        g[..., 0::2] = 2.0 * w * x * y * y / r4
        g[..., 1::2] = -2.0 * w * x * x * y / r4
        return g

    def hessian_vector_product(self, theta, v, weights=None) -> np.ndarray:
        """Hessian of F at ``theta`` applied to ``v`` (block diagonal over groups)."""
        x, y = self.split(theta)
        vx, vy = self.split(v)
        w = self._alphas if weights is None else np.asarray(weights, dtype=float)
        r2 = x * x + y * y
        r6 = r2 ** 3
        hxx = 2.0 * w * y * y * (y * y - 3.0 * x * x) / r6
        hxy = 4.0 * w * x * y * (x * x - y * y) / r6
        hyy = 2.0 * w * x * x * (3.0 * y * y - x * x) / r6
        out = np.empty(np.broadcast_shapes(np.shape(theta), np.shape(v)), dtype=float)
        out[..., 0::2] = hxx * vx + hxy * vy
        out[..., 1::2] = hxy * vx + hyy * vy
        return out

    def effective_gradient_norm(self, theta) -> np.ndarray:
        r"""Scale-free gradient norm :math:`\tilde g = \lVert\nabla F(\theta)\rVert \lVert\theta\rVert`."""
        theta = np.asarray(theta, dtype=float)
        return np.linalg.norm(self.gradient(theta), axis=-1) * np.linalg.norm(theta, axis=-1)

    def group_effective_gradient_norms(self, theta) -> np.ndarray:
        r""":math:`\tilde g_i = \lVert\nabla_{\theta_i} F\rVert \lVert\theta_i\rVert = \alpha_i |\sin 2\varphi_i|`."""
        g = self.gradient(theta)
        gn = np.sqrt(g[..., 0::2] ** 2 + g[..., 1::2] ** 2)
        return gn * self.group_norms(theta)

    # ----------------------------------------------------------------- the map
    def step(self, theta, elr, weights=None) -> np.ndarray:
        r"""One step of projected gradient descent on the sphere of radius ``||theta||``.

        Parameters
        ----------
        theta : array (..., 2n)
        elr : float or array broadcastable to ``theta.shape[:-1]``
            Total effective learning rate :math:`\tilde\eta`.
        weights : array (..., n), optional
            Group weights of the loss that is descended (default ``alphas``); mini-batch
            SGD passes the batch weights here.

        Returns
        -------
        array (..., 2n)
            :math:`\rho\,(\theta - \eta\nabla F)/\lVert\theta - \eta\nabla F\rVert` with
            :math:`\rho = \lVert\theta\rVert` and :math:`\eta = \tilde\eta\rho^2`.
        """
        theta = np.asarray(theta, dtype=float)
        rho2 = np.sum(theta * theta, axis=-1, keepdims=True)
        eta = np.asarray(elr, dtype=float)[..., None] * rho2
        new = theta - eta * self.gradient(theta, weights)
        return new * (np.sqrt(rho2) / np.linalg.norm(new, axis=-1, keepdims=True))

    def conventional_step(self, theta, lr, weight_decay, weights=None) -> np.ndarray:
        r"""One step of conventional training: :math:`(1-\eta\lambda)\theta - \eta\nabla F(\theta)`,
        no projection (``lr`` broadcastable to ``theta.shape[:-1]``)."""
        theta = np.asarray(theta, dtype=float)
        lr = np.asarray(lr, dtype=float)[..., None]
        return (1.0 - lr * weight_decay) * theta - lr * self.gradient(theta, weights)

    def direction_group_elrs(self, theta, lr, weight_decay) -> np.ndarray:
        r"""Group ELRs of the direction map under conventional training,
        :math:`\eta/((1-\eta\lambda)\lVert\theta_i\rVert^2)` (derivation 11), shape (..., n)."""
        lr = np.asarray(lr, dtype=float)[..., None]
        return lr / ((1.0 - lr * weight_decay) * self.group_squared_norms(theta))

    def iterate(self, theta, elr, steps: int) -> np.ndarray:
        """Apply :meth:`step` ``steps`` times and return every iterate, shape (steps+1, ..., 2n).

        Leading axes are those of ``theta`` broadcast against ``elr``.
        """
        theta = np.asarray(theta, dtype=float)
        lead = np.broadcast_shapes(theta.shape[:-1], np.shape(elr))
        out = np.empty((steps + 1,) + lead + (self.dim,))
        out[0] = theta
        for t in range(steps):
            out[t + 1] = self.step(out[t], elr)
        return out

    # ------------------------------------------------------------ coordinates
    def to_angle_split(self, theta):
        r"""Intrinsic coordinates ``(phi, omega)``: group angles and norm shares, each (..., n)."""
        return self.group_angles(theta), self.norm_shares(theta)

    def from_angle_split(self, phi, omega, radius: float = 1.0) -> np.ndarray:
        r"""Inverse of :meth:`to_angle_split`: :math:`x_i = \sqrt{\omega_i}\sin\varphi_i`,
        :math:`y_i = \sqrt{\omega_i}\cos\varphi_i` (times ``radius``)."""
        phi = np.asarray(phi, dtype=float)
        omega = np.asarray(omega, dtype=float)
        shape = np.broadcast_shapes(phi.shape, omega.shape)
        r = radius * np.sqrt(omega)
        out = np.empty(shape[:-1] + (self.dim,))
        out[..., 0::2] = r * np.sin(phi)
        out[..., 1::2] = r * np.cos(phi)
        return out

    # ------------------------------------------------------------- randomness
    def initial_point(self, seed: int) -> np.ndarray:
        """The initial point of seed ``seed``: uniform on the unit sphere of R^{2n}.

        Drawn as a normalised standard normal vector from ``numpy.random.default_rng(seed)``,
        so it is the same point at every ELR of a sweep.
        """
        return self.initial_points([seed])[0]

    def initial_points(self, seeds) -> np.ndarray:
        """Initial points of several seeds, shape (S, 2n). ``seeds`` as in :func:`simulate`."""
        seeds = as_seeds(seeds)
        out = np.empty((seeds.size, self.dim))
        for s, seed in enumerate(seeds):
            out[s] = self.random_points(_streams.rng(seed, _streams.INITIAL_POINT))
        return out

    def random_points(self, rng, size=None) -> np.ndarray:
        """Points uniform on the unit sphere, shape ``size + (2n,)``, from a Generator."""
        shape = (() if size is None else tuple(np.atleast_1d(size))) + (self.dim,)
        while True:
            z = rng.standard_normal(shape)
            nrm = np.linalg.norm(z, axis=-1, keepdims=True)
            # a zero-norm group has probability zero; redraw if it ever happens
            if np.all(self.group_squared_norms(z) > 0):
                return z / nrm
