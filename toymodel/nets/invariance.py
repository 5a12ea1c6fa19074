"""Which parameters of a model is its output invariant to rescaling, channel by channel?

Candidates come from the structure: the weights of Linear and Conv layers whose output feeds,
directly or through ``nn.Identity``, only per-channel normalisations with batch statistics
(BatchNorm, InstanceNorm; with or without affine parameters, which act after the normalisation).
The model is traced with ``torch.fx``; a model that cannot be traced has every Linear/Conv
weight as a candidate. Each candidate is then checked numerically, in train mode on the example
batch: every output channel of the tensor is multiplied by its own random factor in [1/2, 2]
and the model's output must not change by more than the tolerance (relative to the output's
largest entry):

    tol = DTYPE_RTOL[dtype] + 10 * max(eps / var)

where the second term is BatchNorm's own deviation from exact invariance (its ``eps`` against
the smallest channel variance it normalises, measured in the check; the factor 10 covers
|1/c^2 - 1| <= 3 for c in [1/2, 2] and its propagation to the output) and the first covers
rounding (float64: 1e-10; float32: 1e-4, a few hundred ulps through a deep network). Standard
layers (eps = 1e-5) pass this as long as their channel variances exceed about 1e-4, and are
reported with that tolerance; :func:`scale_invariance_report` gives every number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["find_scale_invariant", "scale_invariance_report", "InvarianceCheck", "channel_sq_norms", "channel_dots",
           "DTYPE_RTOL"]

#: rounding allowance of the numerical check, relative to the output's largest entry
DTYPE_RTOL = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 1e-2}

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


@dataclass(frozen=True)
class InvarianceCheck:
    """The numerical check of one tensor, and the verdict (:attr:`invariant`).

    Attributes
    ----------
    name : str
        The tensor's name, as in ``named_parameters()``.
    deviation : float
        The largest relative output change under random per-channel rescaling (relative to the
        output's largest entry; inf for a tensor without channels or a non-finite output).
    tolerance : float
        What it was held to (see the module's notes).
    channels : int
        The number of output channels (dim-0 slices) rescaled.
    """

    name: str
    deviation: float
    tolerance: float
    channels: int

    @property
    def invariant(self) -> bool:
        """Whether ``deviation <= tolerance``."""
        return self.deviation <= self.tolerance


def channel_sq_norms(tensors) -> torch.Tensor:
    """Squared norm of every output channel (dim 0 slice) of each tensor, concatenated: one value
    per scale-invariant group.

    Parameters
    ----------
    tensors : sequence of torch.Tensor
        Each of shape (C_i, ...), output channels along dim 0.

    Returns
    -------
    torch.Tensor, shape (sum of C_i,)
        Detached, in the tensors' dtype and on their device.
    """
    return torch.cat([t.detach().reshape(t.shape[0], -1).square().sum(dim=1) for t in tensors])


def channel_dots(tensors_a, tensors_b) -> torch.Tensor:
    """The inner product of every output channel (dim 0 slice) of two lists of tensors of the same
    shapes, concatenated: one value per scale-invariant group.

    Parameters
    ----------
    tensors_a, tensors_b : sequence of torch.Tensor
        Pairwise of the same shape (C_i, ...).

    Returns
    -------
    torch.Tensor, shape (sum of C_i,)
        Detached, in the tensors' dtype and on their device.
    """
    return torch.cat([(a.detach() * b.detach()).reshape(a.shape[0], -1).sum(dim=1)
                      for a, b in zip(tensors_a, tensors_b, strict=True)])


def _structural_candidates(model: nn.Module) -> list[str] | None:
    """Weights of Linear/Conv modules whose output reaches only per-channel norms (torch.fx), or
    None when the model cannot be traced."""
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception:  # noqa: BLE001 - any tracing failure means "use the fallback"
        return None
    mods = dict(gm.named_modules())

    def reaches_norm_only(node) -> bool:
        """Whether every use of ``node``'s output is a per-channel norm, directly or through Identity.

        Parameters
        ----------
        node : torch.fx.Node

        Returns
        -------
        bool
            False for a node without users.
        """
        users = list(node.users)
        if not users:
            return False
        for u in users:
            m = mods.get(u.target) if u.op == "call_module" else None
            if isinstance(m, nn.Identity):
                if not reaches_norm_only(u):
                    return False
            elif not isinstance(m, _NORMS):
                return False
        return True

    out = []
    for node in gm.graph.nodes:
        if node.op == "call_module" and isinstance(mods.get(node.target), _LAYERS) and reaches_norm_only(node):
            out.append(f"{node.target}.weight")
    return out


def _all_layer_weights(model: nn.Module) -> list[str]:
    return [f"{n}.weight" if n else "weight" for n, m in model.named_modules() if isinstance(m, _LAYERS)]


def scale_invariance_report(model: nn.Module, example_input, names=None, *, seed: int = 0) -> list[InvarianceCheck]:
    """Check each tensor in ``names`` numerically.

    The model is run in train mode on ``example_input``; its parameters, buffers and mode are
    restored afterwards.

    Parameters
    ----------
    model : torch.nn.Module
        A model whose output is one tensor.
    example_input : torch.Tensor, shape (N, ...)
        A batch of at least two examples, so that BatchNorm has batch statistics.
    names : sequence of str, optional
        Parameter names as in ``named_parameters()``. Default: the structural candidates (every
        Linear/Conv weight when the model cannot be traced).
    seed : int, optional
        Seeds the random per-channel factors (default 0).

    Returns
    -------
    list of InvarianceCheck
        One per name, in order; empty when there is no name to check.

    Raises
    ------
    ValueError
        If a name is not a parameter of the model, or the model's output is not one tensor.
    """
    params = dict(model.named_parameters())
    if names is None:
        names = _structural_candidates(model)
        if names is None:
            names = _all_layer_weights(model)
    names = [str(n) for n in names]
    unknown = [n for n in names if n not in params]
    if unknown:
        raise ValueError(f"not parameters of the model: {', '.join(unknown)}")
    if not names:
        return []
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    was_training = model.training
    variances = []

    def hook(mod, inp, out):
        """Record the norm's ``eps`` over the smallest channel variance of its input.

        Parameters
        ----------
        mod : torch.nn.Module
            The normalisation layer.
        inp : tuple of torch.Tensor
            Its inputs; channels along dim 1.
        out : torch.Tensor
            Its output (unused).
        """
        x = inp[0].detach()
        dims = [d for d in range(x.dim()) if d != 1]
        variances.append(float(mod.eps) / max(float(x.var(dim=dims, unbiased=False).min()), 1e-300))

    norms = [m for m in model.modules() if isinstance(m, _NORMS)]
    handles = [m.register_forward_hook(hook) for m in norms]
    gen = torch.Generator().manual_seed(int(seed))
    checks = []
    try:
        model.train()
        with torch.no_grad():
            base = model(example_input)
            if not isinstance(base, torch.Tensor):
                raise ValueError("find_scale_invariant needs a model whose output is one tensor")
            scale = float(base.abs().max()) or 1.0
            rtol = DTYPE_RTOL.get(base.dtype, 1e-4)
            for name in names:
                p = params[name]
                if p.dim() == 0 or p.numel() == 0:
                    checks.append(InvarianceCheck(name, math.inf, 0.0, 0))
                    continue
                orig = p.detach().clone()
                logf = (torch.rand(p.shape[0], generator=gen, dtype=torch.float64) * 2 - 1) * math.log(2.0)
                factors = logf.exp().to(p.dtype).reshape((-1,) + (1,) * (p.dim() - 1))
                variances.clear()
                p.mul_(factors.to(p.device))
                out = model(example_input)
                p.copy_(orig)
                dev = float((out - base).abs().max()) / scale
                if not math.isfinite(dev):
                    dev = math.inf
                eps_term = 10.0 * max(variances, default=0.0)
                checks.append(InvarianceCheck(name, dev, rtol + eps_term, int(p.shape[0])))
    finally:
        for h in handles:
            h.remove()
        model.load_state_dict(saved)
        model.train(was_training)
    return checks


def find_scale_invariant(model: nn.Module, example_input, *, seed: int = 0) -> list[str]:
    """Names of the tensors the model's output is invariant to rescaling, each output channel
    separately: the structural candidates that pass the numerical check of
    :func:`scale_invariance_report` (see the module's notes for the tolerance).

    Parameters
    ----------
    model : torch.nn.Module
        A model whose output is one tensor.
    example_input : torch.Tensor, shape (N, ...)
        A batch of at least two examples (train mode; see :func:`scale_invariance_report`).
    seed : int, optional
        Seeds the random per-channel factors (default 0).

    Returns
    -------
    list of str
        Names as in ``named_parameters()``, in the order of the candidates.

    Raises
    ------
    ValueError
        If the model's output is not one tensor.
    """
    return [c.name for c in scale_invariance_report(model, example_input, seed=seed) if c.invariant]
