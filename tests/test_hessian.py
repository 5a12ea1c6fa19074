"""The tangent-space Hessian: products against finite differences, the sphere's radial kernel,
Lanczos against a dense eigendecomposition, and Hutchinson's estimator."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from toymodel import nets  # noqa: E402
from toymodel.nets import hessian as H  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    """A tiny float64 MLP (64 -> 4 -> 3 -> 10: 268 scale-invariant weights) on 96 digits."""
    d = nets.load_digits_split(0)
    torch.manual_seed(0)
    m = nets.MLPSI((64, 4, 3, 10)).double()
    X = torch.as_tensor(d.X_train[:96])
    y = torch.as_tensor(d.y_train[:96])
    params = [m.body[0].weight, m.body[3].weight]
    return m, params, X, y


@pytest.fixture(scope="module")
def dense_op(tiny):
    """The operator at the tiny model's point and its dense matrix (one product per column)."""
    m, params, X, y = tiny
    op = H.TangentHessian(m, params, X, y)
    return op, op.dense()


def _grad(m, params, X, y):
    m.train()
    loss = F.cross_entropy(m(X), y)
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]).numpy()


def test_hessian_vector_products_match_finite_differences_of_the_gradient(tiny):
    m, params, X, y = tiny
    op = H.TangentHessian(m, params, X, y)
    rng = np.random.default_rng(1)
    theta0 = [p.detach().clone() for p in params]
    vs = [rng.standard_normal(op.dim) for _ in range(3)]
    hvs = [op.euclidean_hvp(v) for v in vs]  # before the weights are moved: the operator is for this point
    for v, hv in zip(vs, hvs, strict=True):
        h = 1e-5
        out = []
        for s in (1, -1):
            with torch.no_grad():
                for p, p0, part in zip(params, theta0, np.split(v, np.cumsum(op.sizes)[:-1]), strict=True):
                    p.copy_(p0 + s * h * torch.as_tensor(part).view_as(p))
            out.append(_grad(m, params, X, y))
        with torch.no_grad():
            for p, p0 in zip(params, theta0, strict=True):
                p.copy_(p0)
        fd = (out[0] - out[1]) / (2 * h)
        # central differences: O(h^2) truncation, O(eps/h) ~ 1e-11 rounding, relative to |Hv|
        assert np.max(np.abs(fd - hv)) < 1e-6 * np.max(np.abs(hv))


def test_the_tangent_hessian_has_the_radial_direction_in_its_kernel(dense_op):
    op, dense = dense_op
    scale = np.abs(dense).max()
    # exact up to rounding: the operator projects before and after
    assert np.linalg.norm(op.matvec(op.theta)) < 1e-12 * scale * np.linalg.norm(op.theta)
    # the Euclidean Hessian does not vanish radially: H theta = -grad (degree-0 homogeneity), so the
    # projection is what removes it
    assert np.allclose(op.euclidean_hvp(op.theta), -op.gradient, atol=1e-9 * scale)
    # and the sphere's curvature term vanishes for a scale-invariant loss (BN eps 1e-12)
    assert abs(op.radial_coefficient) < 1e-10 * np.abs(op.gradient).max()


def test_lanczos_agrees_with_a_dense_eigendecomposition(dense_op):
    op, dense = dense_op
    # symmetric to rounding (double backprop is exact up to float64 rounding)
    assert np.abs(dense - dense.T).max() < 1e-10 * np.abs(dense).max()
    exact = np.sort(np.linalg.eigvalsh((dense + dense.T) / 2))[::-1]
    top = H.top_eigenvalues(op, 4, tol=1e-10)
    # ARPACK to its tolerance 1e-10 relative to the largest eigenvalue
    assert np.allclose(top, exact[:4], rtol=0, atol=1e-8 * exact[0])
    assert np.trace(dense) == pytest.approx(np.sum(exact), rel=1e-10)


class _Matrix:
    """A symmetric test operator with a known trace."""

    def __init__(self, A):
        self.A, self.dim = A, A.shape[0]

    def matvec(self, v):
        return self.A @ v


def test_hutchinson_is_unbiased_within_its_standard_error():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((200, 200)))
    A = (Q * rng.uniform(-1, 3, 200)) @ Q.T
    # many independent estimates: their z-scores against the true trace are ~N(0, 1)
    z = []
    for seed in range(40):
        est, se = H.hutchinson_trace(_Matrix(A), probes=32, seed=seed)
        z.append((est - np.trace(A)) / se)
    z = np.array(z)
    # mean of 40 z-scores: std 1/sqrt(40) ~ 0.16; 4 sigma. Spread near 1 (t with 31 dof, ~1.03)
    assert abs(z.mean()) < 4 / np.sqrt(40)
    assert 0.6 < z.std() < 1.5
    # a diagonal matrix: Rademacher probes give the trace exactly (zero variance)
    est, se = H.hutchinson_trace(_Matrix(np.diag(np.arange(5.0))), probes=4)
    assert est == pytest.approx(10.0, abs=1e-12) and se == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="probes"):
        H.hutchinson_trace(_Matrix(A), probes=1)


def test_sharpness_restores_the_model_and_bounds_converged_training():
    d = nets.load_digits_split(0)
    torch.manual_seed(0)
    m = nets.MLPSI((64, 16, 16, 10)).double()
    tensors = nets.as_tensors(d, torch.float64)
    elr = 2e-3
    nets.train_on_sphere(m, tensors, elr, 8, 32, seed=0)
    params = [m.body[0].weight, m.body[3].weight]
    before = {k: v.clone() for k, v in m.state_dict().items()}
    s = H.sharpness(m, params, tensors[0][:512], tensors[1][:512], k=2, probes=8)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert s.top[0] >= s.top[1] and s.trace_se >= 0 and s.sq_radius == pytest.approx(1.0)
    # a run that has converged stays inside the sphere's stability bound elr * lambda_max < 2
    # (derivation 15); mini-batch noise keeps it well inside here
    assert elr * s.top[0] < 2
