"""The sphere of a group of tensors: the one place where its geometry is written out.

A *group* is a list of tensors (the scale-invariant parameters of a model, or one parameter
group of :class:`~toymodel.nets.SphereSGD`) seen as one flat vector θ of norm ρ. Everything the
library does on that sphere goes through these functions, in the style of pymanopt's ``Sphere``:

* :func:`flatten` and :func:`assign`: the group as one vector, and back;
* :func:`project`: the tangent-space projection v - (<v, θ>/‖θ‖²) θ;
* :func:`retract`: back onto the sphere of radius ρ by rescaling;
* :func:`random_point`: a uniformly distributed point of the sphere;
* :func:`scale_invariant_parameters`: which tensors of a model form its sphere (found or checked).

The functions accept torch tensors (and :func:`project`/:func:`retract` NumPy arrays too).
"""

from __future__ import annotations

import numpy as np
import torch

from .invariance import find_scale_invariant, scale_invariance_report

__all__ = ["flatten", "assign", "project", "retract", "random_point", "scale_invariant_parameters"]


def flatten(tensors) -> torch.Tensor:
    """The tensors of a group as one flat vector, in order (detached; a new tensor).

    Parameters
    ----------
    tensors : sequence of torch.Tensor

    Returns
    -------
    torch.Tensor, shape (N,)
        N = the total number of entries.
    """
    return torch.cat([t.detach().reshape(-1) for t in tensors])


@torch.no_grad()
def assign(tensors, flat) -> None:
    """Copy a flat vector (NumPy array or tensor) into the tensors of a group, in order.

    Parameters
    ----------
    tensors : sequence of torch.Tensor
        Written in place (their dtype and device are kept).
    flat : array_like, shape (N,)
        N must equal the total number of entries of ``tensors``.

    Raises
    ------
    ValueError
        If the sizes differ.
    """
    tensors = list(tensors)
    flat = torch.as_tensor(np.asarray(flat) if not isinstance(flat, torch.Tensor) else flat)
    sizes = [t.numel() for t in tensors]
    if flat.numel() != sum(sizes):
        raise ValueError(f"the flat vector has {flat.numel()} entries, the parameters {sum(sizes)}")
    for t, part in zip(tensors, torch.split(flat.reshape(-1), sizes), strict=True):
        t.copy_(part.view_as(t))


def project(theta, v, sq_norm: float | None = None):
    """The tangent part of ``v`` at the point ``theta``: v - (<v, θ>/‖θ‖²) θ.

    Parameters
    ----------
    theta, v : torch.Tensor or numpy.ndarray, shape (N,)
        Flat vectors of the same kind.
    sq_norm : float, optional
        ‖θ‖², when the caller has it already.

    Returns
    -------
    Same type and shape as ``v``. The coefficient <v, θ>/‖θ‖² is formed in double precision
    (a Python float), whatever the tensors' dtype.
    """
    sq = float(theta @ theta) if sq_norm is None else float(sq_norm)
    return v - (float(v @ theta) / sq) * theta


def retract(x, radius: float):
    """``x`` rescaled onto the sphere of radius ``radius``: ρ x/‖x‖.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray, shape (N,)
        A nonzero flat vector.
    radius : float

    Returns
    -------
    Same type and shape as ``x``.
    """
    norm = x.norm() if isinstance(x, torch.Tensor) else np.linalg.norm(x)
    return x * (radius / norm)


def random_point(dim: int, radius: float, rng: np.random.Generator) -> np.ndarray:
    """A point drawn uniformly on the sphere of radius ``radius`` in R^dim (a normalised Gaussian).

    Parameters
    ----------
    dim : int
    radius : float
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray, shape (dim,), float64
    """
    v = rng.standard_normal(int(dim))
    return v * (radius / np.linalg.norm(v))


def scale_invariant_parameters(model, example_input, names=None) -> tuple[list[str], list[torch.Tensor]]:
    """The tensors of ``model`` that form its sphere: found, or checked when named.

    Parameters
    ----------
    model : torch.nn.Module
    example_input : torch.Tensor
        A batch on which the invariance is checked numerically (train mode; see
        :func:`~toymodel.nets.scale_invariance_report`).
    names : sequence of str or of torch.Tensor, optional
        The parameters to use (names as in ``named_parameters()``, or the tensors themselves);
        each is checked. Without it, :func:`~toymodel.nets.find_scale_invariant` finds them.

    Returns
    -------
    names : list of str
    tensors : list of torch.Tensor
        The model's parameters, in the same order.

    Raises
    ------
    ValueError
        If a named tensor is not a parameter of the model or not scale-invariant (the message
        gives its measured deviation and tolerance), or if the model has none.
    """
    named = dict(model.named_parameters())
    if names is None:
        found = find_scale_invariant(model, example_input)
        if not found:
            raise ValueError("the model has no scale-invariant parameters (weights feeding a BatchNorm)")
        return found, [named[n] for n in found]
    ids = {id(p): n for n, p in named.items()}
    out = []
    for p in names:
        if isinstance(p, str):
            if p not in named:
                raise ValueError(f"{p} is not a parameter of the model")
            out.append(p)
        elif id(p) in ids:
            out.append(ids[id(p)])
        else:
            raise ValueError(f"a tensor of shape {tuple(p.shape)} is not a parameter of the model")
    bad = [c for c in scale_invariance_report(model, example_input, out) if not c.invariant]
    if bad:
        raise ValueError("not scale-invariant: " + ", ".join(
            f"{c.name} (output changes by {c.deviation:.2g} > {c.tolerance:.2g})" for c in bad))
    return out, [named[n] for n in out]
