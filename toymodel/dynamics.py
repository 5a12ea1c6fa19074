"""Dynamics of the toy map beyond single runs: Jacobians, attractors, orbit diagrams, basins.

Keyword names follow :func:`toymodel.simulate` (``elrs``, ``steps``, ``burn_in``, ``seeds``,
``threads``).
"""

from __future__ import annotations

import numpy as np

from ._validate import as_elrs, as_int, as_positive_float
from .model import ToyProblem
from .simulate import simulate

__all__ = ["intrinsic_coordinates", "from_intrinsic_coordinates", "map_jacobian_fd"]


def intrinsic_coordinates(problem: ToyProblem, theta) -> np.ndarray:
    r"""Coordinates ``(phi_1..phi_n, omega_1..omega_{n-1})`` of points on the sphere, (..., 2n-1).

    The angles and the free part of the norm split; ``omega_n = 1 - sum`` is implied.
    """
    phi, omega = problem.to_angle_split(theta)
    return np.concatenate([phi, omega[..., :-1]], axis=-1)


def from_intrinsic_coordinates(problem: ToyProblem, z) -> np.ndarray:
    """Inverse of :func:`intrinsic_coordinates` (points on the unit sphere)."""
    z = np.asarray(z, dtype=float)
    n = problem.n_groups
    phi = z[..., :n]
    om = z[..., n:]
    omega = np.concatenate([om, 1.0 - om.sum(axis=-1, keepdims=True)], axis=-1)
    return problem.from_angle_split(phi, omega)


def map_jacobian_fd(problem: ToyProblem, elr: float, theta, steps: int = 1, h: float = 1e-6) -> np.ndarray:
    r"""Central finite-difference Jacobian of ``steps`` iterations of the simulator's own map.

    The map is run by the Numba kernel (:func:`toymodel.simulate`); the Jacobian is taken in
    the intrinsic coordinates of :func:`intrinsic_coordinates`, so it is ``(2n-1, 2n-1)`` and
    has no direction the dynamics ignores.

    Notes
    -----
    Truncation error is :math:`O(h^2)` and rounding error :math:`O(\epsilon/h)`; with the
    default ``h = 1e-6`` both are around 1e-10 for O(1) derivatives.
    """
    if not isinstance(problem, ToyProblem):
        raise ValueError(f"problem must be a ToyProblem, got {type(problem).__name__}")
    elr = float(as_elrs(elr, "elr")[0])
    steps = as_int(steps, "steps", minimum=1)
    h = as_positive_float(h, "h")
    theta = problem.check_points(theta, "theta")
    if theta.shape != (problem.dim,):
        raise ValueError(f"theta must have shape ({problem.dim},), got {theta.shape}")
    z0 = intrinsic_coordinates(problem, theta / np.linalg.norm(theta))
    d = z0.size
    pts = np.concatenate([z0 + h * np.eye(d), z0 - h * np.eye(d)])
    init = from_intrinsic_coordinates(problem, pts)[:, None, :]
    res = simulate(problem, np.full(2 * d, elr), steps, init=init)
    zn = intrinsic_coordinates(problem, res.final_theta[:, 0, :])
    return ((zn[:d] - zn[d:]) / (2 * h)).T
