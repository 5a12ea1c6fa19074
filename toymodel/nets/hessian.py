"""Curvature of the loss on the sphere: the Riemannian Hessian of the training loss restricted to
the tangent space, its top eigenvalues by Lanczos and its trace by Hutchinson's estimator.

For a loss F on the sphere of radius ρ through θ, the Riemannian Hessian acting on a tangent
vector v is

    Hess F(θ)[v] = P (∇²F(θ) v) - (<∇F(θ), θ> / ρ²) v,        P = I - θθᵀ/ρ²,

the projected Euclidean Hessian plus the sphere's curvature term (Absil, Mahony & Sepulchre,
*Optimization Algorithms on Matrix Manifolds*, 2008, eq. 5.15 and example 5.4.1). As an operator
on the whole space we use P Hess F(θ) P, which has the radial direction θ in its kernel. For a
scale-invariant F, <∇F(θ), θ> = 0 and the curvature term vanishes exactly; it is kept so that the
operator is right for any loss, and its size is reported. Hessian-vector products come from
double backpropagation (autograd); Lanczos is SciPy's ``eigsh`` (ARPACK) on a ``LinearOperator``;
everything is evaluated on one fixed batch in train mode (BatchNorm with that batch's statistics,
as in training), with the BatchNorm buffers restored afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import sphere

__all__ = ["TangentHessian", "top_eigenvalues", "hutchinson_trace", "Sharpness", "sharpness"]


class TangentHessian:
    """The Riemannian Hessian of ``loss_fn(model(X), y)`` in the tensors ``params`` (one sphere),
    as a symmetric operator on flat float64 vectors (``matvec``, ``as_linear_operator``).

    The gradient and its graph are computed once, at construction (in train mode, the BatchNorm
    buffers and the model's mode restored afterwards); every product is one more backward pass
    through that graph.

    Parameters
    ----------
    model : torch.nn.Module
    params : iterable of torch.Tensor
        The tensors of the sphere (parameters of ``model`` that require gradients), of D entries
        in all.
    X : torch.Tensor, shape (N, ...)
        The batch's inputs.
    y : torch.Tensor, shape (N,)
        Its labels (int64).
    loss_fn : callable, optional
        ``loss_fn(model(X), y)``, a scalar tensor. Default (None): the mean cross-entropy.

    Attributes
    ----------
    dim : int
        D, the dimension of the operator.
    theta, gradient : numpy.ndarray, shape (D,)
        θ and ∇F(θ), flat, in float64.
    sq_norm : float
        ρ² = ||θ||².
    radial_coefficient : float
        <∇F(θ), θ>/ρ², the curvature term's coefficient (0 for an exactly scale-invariant loss).
    n_products : int
        The number of Hessian-vector products so far.
    """

    def __init__(self, model, params, X, y, loss_fn=None):
        self.model = model
        self.params = list(params)
        self.sizes = [p.numel() for p in self.params]
        self.dim = sum(self.sizes)
        loss_fn = loss_fn or F.cross_entropy
        # the forward pass in train mode updates BatchNorm's running statistics in place; it gets
        # copies, and the model gets its own tensors back afterwards (the graph keeps the copies)
        saved = [(mod, name, buf) for mod in model.modules() for name, buf in mod.named_buffers(recurse=False)]
        was_training = model.training
        model.train()
        try:
            for mod, name, buf in saved:
                setattr(mod, name, buf.clone())
            with torch.enable_grad():
                self.loss = loss_fn(model(X), y)
                self.grads = torch.autograd.grad(self.loss, self.params, create_graph=True)
        finally:
            for mod, name, buf in saved:
                setattr(mod, name, buf)
            model.train(was_training)
        theta = sphere.flatten(self.params).double()
        g = sphere.flatten(self.grads).double()
        self.theta = theta.cpu().numpy()
        self.sq_norm = float(theta @ theta)
        self.gradient = g.cpu().numpy()
        #: <∇F, θ>/ρ²: the curvature term's coefficient (0 for an exactly scale-invariant loss)
        self.radial_coefficient = float(g @ theta) / self.sq_norm
        self.n_products = 0

    def project(self, v: np.ndarray) -> np.ndarray:
        """v minus its component along θ.

        Parameters
        ----------
        v : numpy.ndarray, shape (D,)

        Returns
        -------
        numpy.ndarray, shape (D,)
        """
        return sphere.project(self.theta, v, self.sq_norm)

    def euclidean_hvp(self, v: np.ndarray) -> np.ndarray:
        """∇²F(θ) v by double backpropagation (float64 result).

        Parameters
        ----------
        v : numpy.ndarray, shape (D,)
            Cast to the parameters' dtype and device for the product.

        Returns
        -------
        numpy.ndarray, shape (D,)
            The Euclidean Hessian-vector product, in float64.
        """
        p0 = self.params[0]
        vt = torch.as_tensor(np.ascontiguousarray(v), dtype=p0.dtype, device=p0.device)
        parts = [t.view_as(p) for t, p in zip(torch.split(vt, self.sizes), self.params, strict=True)]
        hv = torch.autograd.grad(self.grads, self.params, grad_outputs=parts, retain_graph=True)
        self.n_products += 1
        return sphere.flatten(hv).double().cpu().numpy()

    def matvec(self, v) -> np.ndarray:
        """P Hess F(θ) P v.

        Parameters
        ----------
        v : array_like, shape (D,)

        Returns
        -------
        numpy.ndarray, shape (D,)
            In float64; tangent at θ.
        """
        v = np.asarray(v, dtype=float).reshape(-1)
        vt = self.project(v)
        return self.project(self.euclidean_hvp(vt)) - self.radial_coefficient * vt

    def as_linear_operator(self):
        """The operator as a SciPy ``LinearOperator`` (for ``eigsh``).

        Returns
        -------
        scipy.sparse.linalg.LinearOperator
            Of shape (D, D), float64, symmetric (``rmatvec`` is ``matvec``).
        """
        from scipy.sparse.linalg import LinearOperator

        return LinearOperator((self.dim, self.dim), matvec=self.matvec, rmatvec=self.matvec, dtype=float)

    def dense(self) -> np.ndarray:
        """The whole operator as a matrix (for checks on tiny models only).

        Returns
        -------
        numpy.ndarray, shape (D, D)
            One product per column.
        """
        return np.column_stack([self.matvec(e) for e in np.eye(self.dim)])


def top_eigenvalues(op, k: int = 3, tol: float = 1e-6, seed: int = 0) -> np.ndarray:
    """The ``k`` algebraically largest eigenvalues of a symmetric operator, by Lanczos.

    Parameters
    ----------
    op : TangentHessian or similar
        A symmetric operator with ``dim`` and ``as_linear_operator()``.
    k : int, optional
        How many eigenvalues, from 1 to ``op.dim - 1`` (default 3).
    tol : float, optional
        The relative tolerance of ``scipy.sparse.linalg.eigsh`` (default 1e-6).
    seed : int, optional
        Seeds the random start vector (default 0).

    Returns
    -------
    numpy.ndarray, shape (k,)
        Largest first.

    Raises
    ------
    ValueError
        If ``k`` is not from 1 to ``op.dim - 1``.
    """
    from scipy.sparse.linalg import eigsh

    k = int(k)
    if not 1 <= k < op.dim:
        raise ValueError(f"k must be from 1 to the dimension - 1 = {op.dim - 1}, got {k}")
    v0 = np.random.default_rng(seed).standard_normal(op.dim)
    vals = eigsh(op.as_linear_operator(), k=k, which="LA", tol=tol, v0=v0, return_eigenvectors=False)
    return np.sort(vals)[::-1]


def hutchinson_trace(op, probes: int = 64, seed: int = 0) -> tuple[float, float]:
    """Hutchinson's estimate of tr(op) with ``probes`` Rademacher vectors, and its standard error.

    Unbiased: E[zᵀAz] = tr A for z with independent ±1 entries.

    Parameters
    ----------
    op : TangentHessian or similar
        A symmetric operator with ``dim`` and ``matvec``.
    probes : int, optional
        The number of probe vectors, >= 2 (default 64).
    seed : int, optional
        Seeds the probes (default 0).

    Returns
    -------
    trace : float
        The mean of zᵀ op z over the probes.
    standard_error : float
        The sample standard deviation of zᵀ op z / sqrt(probes).

    Raises
    ------
    ValueError
        If ``probes`` < 2.
    """
    probes = int(probes)
    if probes < 2:
        raise ValueError(f"probes must be at least 2 (for a standard error), got {probes}")
    rng = np.random.default_rng(seed)
    vals = np.empty(probes)
    for i in range(probes):
        z = rng.choice((-1.0, 1.0), size=op.dim)
        vals[i] = z @ op.matvec(z)
    return float(vals.mean()), float(vals.std(ddof=1) / math.sqrt(probes))


@dataclass(frozen=True)
class Sharpness:
    """Curvature at one point, as :func:`sharpness` measures it.

    Attributes
    ----------
    top : numpy.ndarray, shape (k,)
        The top eigenvalues of the tangent Hessian, largest first.
    trace, trace_se : float
        The Hutchinson trace and its standard error.
    radial_coefficient : float
        The curvature term's coefficient <∇F, θ>/ρ².
    sq_radius : float
        The squared radius ρ².
    products : int
        The number of Hessian-vector products used.
    """

    top: np.ndarray
    trace: float
    trace_se: float
    radial_coefficient: float
    sq_radius: float
    products: int


def sharpness(model, params, X, y, k: int = 3, probes: int = 64, seed: int = 0) -> Sharpness:
    """Top eigenvalues and Hutchinson trace of the tangent Hessian of the mean cross-entropy on
    the batch ``(X, y)``, in train mode.

    Parameters
    ----------
    model : torch.nn.Module
    params : iterable of torch.Tensor
        The tensors of the sphere (:class:`TangentHessian`).
    X : torch.Tensor, shape (N, ...)
    y : torch.Tensor, shape (N,)
    k : int, optional
        The number of top eigenvalues (:func:`top_eigenvalues`; default 3).
    probes : int, optional
        Hutchinson probes (:func:`hutchinson_trace`; default 64).
    seed : int, optional
        Seeds the Lanczos start vector and the probes (default 0).

    Returns
    -------
    Sharpness

    Raises
    ------
    ValueError
        If ``k`` or ``probes`` is out of range.
    """
    op = TangentHessian(model, params, X, y)
    top = top_eigenvalues(op, k, seed=seed)
    tr, se = hutchinson_trace(op, probes, seed=seed)
    return Sharpness(top, tr, se, op.radial_coefficient, op.sq_norm, op.n_products)
