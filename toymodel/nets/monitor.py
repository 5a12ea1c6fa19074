"""What the paper measures while training on the sphere, recorded per step and per epoch."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..netrecords import ConventionalResult, TrainResult
from .invariance import channel_sq_norms

__all__ = ["RegimeMonitor", "ConventionalMonitor", "TrainResult"]


def _per_channel(values: torch.Tensor, sizes, shapes) -> torch.Tensor:
    """Sums of the rows of a (rows x N) tensor, flat over the parameters, over every output channel
    (dim-0 slice) of each parameter: (rows x channels)."""
    rows = values.shape[0]
    return torch.cat([v.reshape(rows, shape[0], -1).sum(dim=2)
                      for v, shape in zip(torch.split(values, sizes, dim=1), shapes, strict=True)], dim=1)


def _flat(params) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


class RegimeMonitor:
    """Record a :class:`~toymodel.nets.SphereSGD` run, by hooks on the optimizer's ``step``.

    Per step (a hook after the optimizer's ``step``, reading :meth:`SphereSGD.last_step`):
    cos(θ_t, θ_t+1), the angle turned, the effective gradient norm
    ||g|| ||θ||, each channel's effective gradient norm ||g_i|| ||θ_i|| and effective step size
    ESS_i = ELR_i ||g_i|| ||θ_i|| with ELR_i = η/||θ_i||² (η = elr ρ²); and the loss if the caller
    passes it to :meth:`log_loss`. Per epoch (:meth:`end_epoch`): the train loss and test error
    if given (otherwise the mean logged loss), the cosine between the weights at consecutive
    epoch ends, every channel's ELR at the epoch's end, and the epoch means of the per-step
    values. :meth:`records` exports everything as arrays, :meth:`result` as a
    :class:`TrainResult`, :meth:`classify` gives the regime. ``group`` selects the optimizer's
    parameter group (sphere).
    """

    def __init__(self, optimizer, group: int = 0):
        self.optimizer = optimizer
        if not hasattr(optimizer, "last_step"):
            raise ValueError("RegimeMonitor records a SphereSGD optimizer (it reads SphereSGD.last_step)")
        self._gi = int(group)
        self._group = optimizer.param_groups[group]
        self.params = list(self._group["params"])
        self._epoch_start = _flat(self.params)
        self._step = {k: [] for k in ("loss", "cosine", "angle", "eff_grad_norm")}
        self._sums = []  # per step of the epoch: (2, channels) squared norms of θ_i and g_i, and lr
        self._epoch_steps = 0
        self._epochs = {k: [] for k in ("train_loss", "test_error", "eff_grad_norm", "step_cosine", "step_angle",
                                        "epoch_cosine", "channel_elr", "channel_egn", "channel_ess")}
        self._harmonic = 0.0
        self._handles = [optimizer.register_step_post_hook(self._after)]

    # ------------------------------------------------------------------ hooks
    @torch.no_grad()
    def _after(self, opt, args, kwargs):
        st = opt.last_step(self._gi)
        if st is None:
            return
        # per-channel sums only; the channel statistics are formed once per epoch in end_epoch
        self._sums.append((_per_channel(st["pair"] * st["pair"], st["sizes"], st["shapes"]), st["lr"]))
        self._step["eff_grad_norm"].append(math.sqrt(st["grad_sq_norm"] * st["sq_norm"]))
        self._step["angle"].append(st["angle"])
        self._step["cosine"].append(st["cosine"])
        self._epoch_steps += 1

    # ------------------------------------------------------------- user calls
    def log_loss(self, loss) -> None:
        """Record the training loss of the current step (a tensor or a float)."""
        self._step["loss"].append(float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss))

    @torch.no_grad()
    def end_epoch(self, train_loss=None, test_error=None) -> None:
        """Close an epoch: ``train_loss`` (default: the mean loss logged during the epoch) and
        ``test_error`` (default: NaN) are recorded with the epoch's statistics."""
        n = self._epoch_steps
        if n == 0:
            raise ValueError("end_epoch called before any optimizer step of the epoch")
        theta = _flat(self.params)
        w2 = channel_sq_norms(self.params).double()
        rho = self._group["radius"]
        lr = self._group["elr"] * rho * rho
        ep = self._epochs
        if train_loss is None:
            logged = self._step["loss"][-n:]
            train_loss = float(np.mean(logged)) if len(logged) == n else math.nan
        ep["train_loss"].append(float(train_loss))
        ep["test_error"].append(math.nan if test_error is None else float(test_error))
        for key, src in (("eff_grad_norm", "eff_grad_norm"), ("step_cosine", "cosine"), ("step_angle", "angle")):
            ep[key].append(float(np.mean(self._step[src][-n:])))
        ep["epoch_cosine"].append(min(1.0, float((self._epoch_start @ theta)
                                                 / (self._epoch_start.norm() * theta.norm()))))
        ep["channel_elr"].append((lr / w2).double().cpu().numpy())
        sums = torch.stack([v for v, _ in self._sums]).double()  # (steps, 2, channels)
        lrs = torch.tensor([lr_ for _, lr_ in self._sums], dtype=torch.float64, device=sums.device)
        egn = (sums[:, 0] * sums[:, 1]).sqrt()  # ||θ_i|| ||g_i|| per step
        ess = egn * lrs[:, None] / sums[:, 0]  # ELR_i ||θ_i|| ||g_i|| with ELR_i = lr / ||θ_i||²
        ep["channel_egn"].append(egn.mean(dim=0).cpu().numpy())
        ep["channel_ess"].append(ess.mean(dim=0).cpu().numpy())
        self._harmonic = max(self._harmonic, abs(float(w2.double().sum()) / (rho * rho) - 1.0))
        self._sums = []
        self._epoch_steps = 0
        self._epoch_start = theta

    def close(self) -> None:
        """Remove the hooks from the optimizer."""
        for h in self._handles:
            h.remove()
        self._handles = []

    # ----------------------------------------------------------------- export
    def records(self) -> dict:
        """Every record as NumPy arrays: ``*_per_step`` per optimizer step (``loss_per_step`` only
        if logged), the rest per epoch (``channel_*`` epochs x channels)."""
        out = {}
        for k, v in self._step.items():
            out[f"{k}_per_step"] = np.array(v, dtype=float)
        for k, v in self._epochs.items():
            out[k] = np.array(v, dtype=float) if v else np.zeros(0)
        return out

    def result(self, elr: float | None = None, seed: int = 0) -> TrainResult:
        """The per-epoch records as a :class:`TrainResult`."""
        r = self.records()
        if not len(r["train_loss"]):
            raise ValueError("no epoch recorded yet: call end_epoch() after each epoch")
        return TrainResult(float(self._group["elr"] if elr is None else elr), int(seed),
                           train_loss=r["train_loss"], test_error=r["test_error"], eff_grad_norm=r["eff_grad_norm"],
                           step_cosine=r["step_cosine"], step_angle=r["step_angle"], epoch_cosine=r["epoch_cosine"],
                           channel_elr=r["channel_elr"], channel_egn=r["channel_egn"], channel_ess=r["channel_ess"],
                           harmonic_error=self._harmonic, final_norm=float(_flat(self.params).double().norm()),
                           final_weights=_flat(self.params).double().cpu().numpy())

    def classify(self, random_guess: float, window: slice | None = None):
        """``(regime, subtype)`` of the run so far; see :meth:`TrainResult.classify`."""
        return self.result().classify(random_guess, window)


class ConventionalMonitor:
    """Record conventional training (plain SGD with learning rate η and weight decay λ, no
    projection) of scale-invariant tensors, by hooks on any optimizer's ``step``.

    For every output channel i with weights w_i (norm r_i) and gradient g_i, the direction moves as on
    the sphere with the channel ELR η̃_i = η/((1 - ηλ) r_i²) and ESS_i = η̃_i ||g_i|| r_i (derivation
    11); the total ELR is η/((1 - ηλ) ||θ||²). Per step: the total ELR, the direction cosine
    cos(θ_t, θ_t+1), and (if logged) the loss; per epoch: train loss and test error if given, the
    epoch means of the channels' ELR and ESS. For the law of derivation 12 it also keeps, per
    channel, the sum over steps of log(1 + ESS_i²) and the log channel ELRs at the first step and
    after the last. ``lr`` and ``weight_decay`` are read from the optimizer's first parameter group.
    """

    def __init__(self, optimizer, params):
        self.optimizer = optimizer
        self.params = list(params)
        group = optimizer.param_groups[0]
        self.lr = float(group["lr"])
        self.weight_decay = float(group.get("weight_decay", 0.0))
        self.decay = 1.0 - self.lr * self.weight_decay
        if not self.decay > 0:
            raise ValueError(f"lr * weight_decay must be below 1, got {self.lr * self.weight_decay!r}")
        self._step = {k: [] for k in ("loss", "total_elr", "cosine")}
        self._epoch_steps = 0
        self._chan = []
        self._sum_log1p = None
        self._log_elr0 = None
        self._theta = None
        self.steps = 0
        self._epochs = {k: [] for k in ("train_loss", "test_error", "total_elr", "step_cosine", "channel_elr",
                                        "channel_ess")}
        self._handles = [optimizer.register_step_pre_hook(self._before),
                         optimizer.register_step_post_hook(self._after)]

    @torch.no_grad()
    def _before(self, opt, args, kwargs):
        ps = self.params
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in ps]
        w2 = channel_sq_norms(ps).double()
        g2 = channel_sq_norms(grads).double()
        elr_c = self.lr / (self.decay * w2)
        ess = elr_c * (g2 * w2).sqrt()
        if self._sum_log1p is None:
            self._sum_log1p = torch.zeros_like(ess)
            self._log_elr0 = elr_c.log()
        self._sum_log1p += torch.log1p(ess * ess)
        self._chan.append(torch.stack((elr_c, ess)))
        self._theta = _flat(ps)
        self._step["total_elr"].append(self.lr / (self.decay * float(w2.sum())))

    @torch.no_grad()
    def _after(self, opt, args, kwargs):
        new = _flat(self.params)
        old = self._theta
        self._step["cosine"].append(min(1.0, float((old @ new) / (old.norm() * new.norm()))))
        self._epoch_steps += 1
        self.steps += 1

    def log_loss(self, loss) -> None:
        """Record the training loss of the current step (a tensor or a float)."""
        self._step["loss"].append(float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss))

    @torch.no_grad()
    def end_epoch(self, train_loss=None, test_error=None) -> None:
        """Close an epoch (as :meth:`RegimeMonitor.end_epoch`)."""
        n = self._epoch_steps
        if n == 0:
            raise ValueError("end_epoch called before any optimizer step of the epoch")
        ep = self._epochs
        if train_loss is None:
            logged = self._step["loss"][-n:]
            train_loss = float(np.mean(logged)) if len(logged) == n else math.nan
        ep["train_loss"].append(float(train_loss))
        ep["test_error"].append(math.nan if test_error is None else float(test_error))
        ep["total_elr"].append(float(np.mean(self._step["total_elr"][-n:])))
        ep["step_cosine"].append(float(np.mean(self._step["cosine"][-n:])))
        chan = torch.stack(self._chan).mean(dim=0).cpu().numpy()
        ep["channel_elr"].append(chan[0])
        ep["channel_ess"].append(chan[1])
        self._chan = []
        self._epoch_steps = 0

    def law(self) -> dict:
        """Derivation 12 on every channel: the measured time mean of log(1 + ESS_i²), the law's value
        -2 log(1 - ηλ), and the boundary term -(log η̃_i(T) - log η̃_i(0))/T; their sum equals the
        measured mean exactly (up to rounding) in every regime."""
        if not self.steps:
            raise ValueError("no step recorded yet")
        w2 = channel_sq_norms(self.params).double()
        log_elr_t = (self.lr / (self.decay * w2)).log()
        boundary = -(log_elr_t - self._log_elr0) / self.steps
        return {"mean_log1p_ess2": (self._sum_log1p / self.steps).cpu().numpy(),
                "theory": -2.0 * math.log(self.decay), "boundary": boundary.cpu().numpy(), "steps": self.steps}

    def close(self) -> None:
        """Remove the hooks from the optimizer."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def result(self, seed: int = 0) -> ConventionalResult:
        """The records as a :class:`ConventionalResult`."""
        r, law = self.records(), self.law()
        return ConventionalResult(self.lr, self.weight_decay, int(seed), r["train_loss"], r["test_error"],
                                  r["total_elr"], r["step_cosine"], r["total_elr_per_step"], r["channel_elr"],
                                  r["channel_ess"], law["mean_log1p_ess2"], law["boundary"], law["theory"],
                                  _flat(self.params).double().cpu().numpy())

    def records(self) -> dict:
        """Per-step (``*_per_step``) and per-epoch records as arrays."""
        out = {f"{k}_per_step": np.array(v, dtype=float) for k, v in self._step.items()}
        out.update({k: np.array(v, dtype=float) for k, v in self._epochs.items()})
        return out
