"""SGD on the sphere at a fixed total effective learning rate (ELR)."""

from __future__ import annotations

import math

import torch

from . import sphere

__all__ = ["SphereSGD"]


def _momentum(value) -> float:
    try:
        m = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"momentum must be in [0, 1), got {value!r}") from None
    if not (0.0 <= m < 1.0):
        raise ValueError(f"momentum must be in [0, 1), got {value!r}")
    return m


def _positive(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


class SphereSGD(torch.optim.Optimizer):
    r"""Projected SGD on the sphere of the parameters' total norm, at a fixed total ELR.

    Each parameter group is one sphere: its tensors together keep the norm ``radius`` (default:
    their norm at construction; given, they are rescaled onto it at construction). A step is

    .. math::

        g_t = g - \frac{\langle g, \theta\rangle}{\lVert\theta\rVert^2}\,\theta, \qquad
        \theta \leftarrow \rho\,\frac{\theta - \eta g_t}{\lVert\theta - \eta g_t\rVert}, \qquad
        \eta = \tilde\eta \rho^2,

    so the total ELR is ``elr`` (:math:`\tilde\eta`) and the step turns θ by exactly
    :math:`\arctan(\tilde\eta\,\tilde g)` with :math:`\tilde g = \lVert g_t\rVert\,\rho` the
    effective gradient norm.

    **The gradient is projected onto the sphere's tangent space** (``project_gradient=True``).
    For an exactly scale-invariant loss the gradient is already tangent (⟨∇F, θ⟩ = 0 per group),
    and the projection removes only rounding. With BatchNorm's ``eps`` > 0 the invariance is
    approximate and the gradient has a small radial part; projecting it makes the step a true
    Riemannian step, so the angle law above holds exactly whatever the layers, and the update
    does not depend on how far from exact the invariance is. ``project_gradient=False`` is the
    paper's code (plain step, then rescale).

    ``momentum`` (default 0: the paper uses plain SGD) keeps a heavy-ball buffer ``v <- μ v + g_t``
    that is projected onto the current tangent space before each use (vector transport by
    projection), so every step stays tangent; the ELR then scales the buffer, whose size grows to
    about 1/(1 - μ) gradients, so the effective ELR is about ``elr / (1 - momentum)``.

    State (the momentum buffers) and every hyper-parameter, ``radius`` included, round-trip
    through ``state_dict``/``load_state_dict``.

    Args:
        params (iterable):
            tensors, or dicts defining parameter groups (torch.optim's convention);
            each group is one sphere.
        elr (float):
            total effective learning rate η̃ > 0 (default for every group).
        radius (float, optional):
            the sphere's radius ρ > 0. Default: each group's norm when it
            is added. Given, the group's tensors are rescaled onto it when the group is added.
        momentum (float, optional):
            heavy-ball momentum μ in [0, 1) (default: 0).
        project_gradient (bool, optional):
            project the gradient onto the tangent space first
            (default: True; False is the paper's code).

    Per-group options (``elr``, ``radius``, ``momentum``, ``project_gradient``) may be set in a
    group's dict; :meth:`add_param_group` validates them and puts the group's tensors on its
    sphere, for the groups given here and for any added later.

    Raises:
        ValueError:
            if ``elr``, ``radius`` or ``momentum`` is out of range, or a group's tensors
            do not have a positive finite total norm.
    """

    def __init__(self, params, elr, *, radius=None, momentum: float = 0.0, project_gradient: bool = True):
        elr = _positive(elr, "elr")
        if radius is not None:
            radius = _positive(radius, "radius")
        super().__init__(params, dict(elr=elr, radius=radius, momentum=_momentum(momentum),
                                      project_gradient=bool(project_gradient)))

    def add_param_group(self, param_group: dict) -> None:
        """Add a group (one sphere), as ``torch.optim.Optimizer.add_param_group``: its options are
        validated, a missing ``radius`` becomes the group's current norm, and a given one rescales
        the group's tensors onto that sphere (so the first step already runs at the group's ELR).

        Args:
            param_group (dict):
                ``params`` (the sphere's tensors) and optionally ``elr``,
                ``radius``, ``momentum`` and ``project_gradient`` (default: the constructor's).

        Raises:
            ValueError:
                if an option is out of range, or the group's tensors do not have a positive
                finite total norm.
        """
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group["elr"] = _positive(group["elr"], "elr")
        group["momentum"] = _momentum(group["momentum"])
        group["project_gradient"] = bool(group["project_gradient"])
        with torch.no_grad():
            norm = math.sqrt(float(sum(p.detach().square().sum() for p in group["params"])))
            if not (math.isfinite(norm) and norm > 0):
                raise ValueError(f"SphereSGD needs tensors of positive finite total norm, got {norm!r}")
            if group["radius"] is None:
                group["radius"] = norm
            else:
                group["radius"] = _positive(group["radius"], "radius")
                for p in group["params"]:
                    p.mul_(group["radius"] / norm)

    @classmethod
    def for_model(cls, model, example_input, elr, params=None, *, freeze_others: bool = True, **kw) -> SphereSGD:
        """The optimizer for a model's scale-invariant parameters.

        Args:
            model (torch.nn.Module):
                the model.
            example_input (torch.Tensor):
                a batch on which invariance is checked (train mode).
            elr (float):
                the total ELR.
            params (sequence, optional):
                the parameters to use (names as in ``named_parameters()``,
                or the tensors themselves), each checked to be scale-invariant by
                :func:`~toymodel.nets.scale_invariance_report`; a ``ValueError`` names any that is
                not. Default: :func:`~toymodel.nets.find_scale_invariant` finds them.
            freeze_others (bool, optional):
                freeze every other parameter (``requires_grad_(False)``;
                default True). False is for a caller who trains them with an optimizer of their own.
            ``**kw``:
                ``radius``, ``momentum``, ``project_gradient`` as for the constructor.

        Returns:
            SphereSGD:
                one parameter group, the model's scale-invariant tensors.

        Raises:
            ValueError:
                if a named parameter is not scale-invariant, the model has none, or an
                option is out of range.

        The names are kept in ``optimizer.param_names``.
        """
        names, tensors = sphere.scale_invariant_parameters(model, example_input, params)
        if freeze_others:
            for n, p in model.named_parameters():
                p.requires_grad_(n in names)
        opt = cls(tensors, elr, **kw)
        opt.param_names = list(names)
        return opt

    def last_step(self, group: int = 0) -> dict | None:
        """What the last :meth:`step` measured on parameter group ``group`` (None before the first).

        ``pair``, a 2 x N tensor: θ and the raw gradient g, flat over the group's parameters in their
        order, at the point before the step; ``sizes`` and ``shapes`` of the parameters. Python
        floats: ``lr`` (= elr ρ²), ``sq_norm`` ||θ||², ``grad_sq_norm`` ||g||², ``tangent_sq_norm`` ||g_t||², ``cosine``
        cos(θ_t, θ_t+1) and ``angle``, the angle turned (radians); ``loss``: what the step's
        ``closure`` returned (a float), or None without one. :class:`~toymodel.nets.RegimeMonitor`
        reads it.

        Args:
            group (int, optional):
                the parameter group's index (default: 0).

        Returns:
            dict or None: the measurements above; None before the first step, for a group without
            gradients at the last step, or for an index past the groups.
        """
        last = getattr(self, "_last", [])
        return last[group] if group < len(last) else None

    @torch.no_grad()
    def step(self, closure=None):
        """One step of every group (see the class notes); a group without gradients is skipped.

        Args:
            closure (callable, optional):
                re-evaluates the model and returns the loss, as for any
                optimizer (run with gradients enabled).

        Returns:
            what ``closure`` returned, or None without one.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._last = [None] * len(self.param_groups)
        for gi, group in enumerate(self.param_groups):
            params = group["params"]
            if all(p.grad is None for p in params):
                continue
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            # the group as one flat vector: ||θ||², <g, θ>, ||g||² from one 2 x 2 Gram matrix
            theta = sphere.flatten(params)
            g = sphere.flatten(grads)
            pair = torch.stack((theta, g))
            (sq, gw), (_, g2) = (pair @ pair.T).tolist()
            rho = float(group["radius"])
            lr = float(group["elr"]) * rho * rho
            coef = gw / sq if group["project_gradient"] else 0.0
            t_sq = max(g2 - 2 * coef * gw + coef * coef * sq, 0.0)  # ||g_t||²
            if group["momentum"]:
                beta, d_theta, d_sq = self._momentum_direction(group, params, theta, g, sq, coef, lr)
            else:
                # θ - lr (g - coef θ) = (1 + lr coef) (θ - beta g): the same point after rescaling
                beta = lr / (1.0 + lr * coef)
                torch._foreach_add_(params, grads, alpha=-beta)
                d_theta, d_sq = gw, g2
            # ||θ - beta d||² from the Gram entries (no pass over the parameters); the sums are
            # recomputed from θ itself every step, so rounding does not accumulate
            new_sq = max(sq - 2 * beta * d_theta + beta * beta * d_sq, 1e-300)
            torch._foreach_mul_(params, rho / math.sqrt(new_sq))
            # the angle turned, from the step's radial and tangential parts (accurate when tiny)
            d_perp = math.sqrt(max(d_sq - d_theta * d_theta / sq, 0.0))
            angle = math.atan2(beta * d_perp, math.sqrt(sq) - beta * d_theta / math.sqrt(sq))
            self._last[gi] = dict(pair=pair, sizes=[p.numel() for p in params], shapes=[p.shape for p in params],
                                  lr=lr, sq_norm=sq, grad_sq_norm=g2, tangent_sq_norm=t_sq, cosine=math.cos(angle),
                                  angle=angle, loss=None if loss is None else float(loss))
        return loss

    def _momentum_direction(self, group, params, theta, g, sq, coef, lr):
        """Update the heavy-ball buffers (projected onto the tangent space), step the parameters
        along them, and return (beta, <d, θ>, ||d||²) of the step θ - beta d."""
        sizes = [p.numel() for p in params]
        bufs = []
        for p in params:
            st = self.state[p]
            if "momentum_buffer" not in st:
                st["momentum_buffer"] = torch.zeros_like(p)
            bufs.append(st["momentum_buffer"])
        b = sphere.flatten(bufs)
        if group["project_gradient"]:
            b = sphere.project(theta, b, sq)
        b = b.mul_(group["momentum"]).add_(g).sub_(coef * theta)
        for v, part in zip(bufs, torch.split(b, sizes), strict=True):
            v.copy_(part.view_as(v))
        torch._foreach_add_(params, bufs, alpha=-lr)
        d_theta, d_sq = torch.stack((b @ theta, b @ b)).tolist()
        return lr, d_theta, d_sq
