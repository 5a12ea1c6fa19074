"""What the paper measures while training, recorded per step and per epoch by hooks on an optimizer.

:class:`Monitor` holds what every monitor does (the hooks and their removal, the context-manager
protocol, the loss logged per step and counted per epoch, the export of the records);
:class:`RegimeMonitor` records training on the sphere (:class:`~toymodel.nets.SphereSGD`),
:class:`ConventionalMonitor` conventional training (``torch.optim.SGD`` with weight decay).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..netrecords import ConventionalResult, TrainResult
from . import sphere
from .invariance import channel_dots, channel_sq_norms

__all__ = ["Monitor", "RegimeMonitor", "ConventionalMonitor", "TrainResult"]


def _per_channel(values: torch.Tensor, sizes, shapes) -> torch.Tensor:
    """Sums of the rows of a (rows x N) tensor, flat over the parameters, over every output channel
    (dim-0 slice) of each parameter: (rows x channels)."""
    rows = values.shape[0]
    return torch.cat([v.reshape(rows, shape[0], -1).sum(dim=2)
                      for v, shape in zip(torch.split(values, sizes, dim=1), shapes, strict=True)], dim=1)


class Monitor:
    """The base of the monitors: hooks on an optimizer's ``step``, per-step and per-epoch records.

    Subclasses name their records (``STEP_RECORDS``, ``EPOCH_RECORDS``), register their hooks with
    :meth:`_hook`, count each recorded step with :meth:`_count_step`, and add their epoch
    statistics in :meth:`_close_epoch`. The loss of a step is whatever :meth:`log_loss` was given
    during it; an epoch's default train loss is the mean of the losses logged during that epoch
    (all steps or some), NaN if none was.

    A monitor is a context manager: ``with RegimeMonitor(opt) as mon: ...`` removes its hooks at
    the end, as :meth:`close` does.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        The optimizer whose steps are recorded.

    Attributes
    ----------
    steps : int
        The number of optimizer steps recorded so far.
    """

    STEP_RECORDS: tuple = ()
    EPOCH_RECORDS: tuple = ()

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self._step = {k: [] for k in ("loss", *self.STEP_RECORDS)}
        self._epochs = {k: [] for k in ("train_loss", "test_error", *self.EPOCH_RECORDS)}
        self._epoch_losses = []
        self._epoch_steps = 0
        self.steps = 0
        self._handles = []

    def _hook(self, pre=None, post=None) -> None:
        if pre is not None:
            self._handles.append(self.optimizer.register_step_pre_hook(pre))
        if post is not None:
            self._handles.append(self.optimizer.register_step_post_hook(post))

    def _count_step(self) -> None:
        self._epoch_steps += 1
        self.steps += 1

    # ------------------------------------------------------------- user calls
    def log_loss(self, loss) -> None:
        """Record the training loss of the current step.

        Parameters
        ----------
        loss : torch.Tensor or float
            A scalar (a tensor is detached).
        """
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        self._step["loss"].append(value)
        self._epoch_losses.append(value)

    @torch.no_grad()
    def end_epoch(self, train_loss=None, test_error=None) -> None:
        """Close an epoch.

        Parameters
        ----------
        train_loss : float, optional
            Default: the mean of the losses logged during this epoch (NaN if none was).
        test_error : float, optional
            Default: NaN.

        Raises
        ------
        ValueError
            If no optimizer step was recorded since the last epoch.
        """
        n = self._epoch_steps
        if n == 0:
            raise ValueError("end_epoch called before any optimizer step of the epoch")
        if train_loss is None:
            train_loss = float(np.mean(self._epoch_losses)) if self._epoch_losses else math.nan
        self._epochs["train_loss"].append(float(train_loss))
        self._epochs["test_error"].append(math.nan if test_error is None else float(test_error))
        self._close_epoch(n)
        self._epoch_losses = []
        self._epoch_steps = 0

    def _close_epoch(self, n: int) -> None:  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    def close(self) -> None:
        """Remove the hooks from the optimizer."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------------- export
    def records(self) -> dict:
        """Every record as NumPy arrays.

        Returns
        -------
        dict of str to numpy.ndarray
            ``<name>_per_step`` per optimizer step (``loss_per_step`` holds only the logged
            losses), the rest per epoch, shape (E,) (``channel_*``: (E, C), epochs x channels).
        """
        out = {f"{k}_per_step": np.array(v, dtype=float) for k, v in self._step.items()}
        out.update({k: np.array(v, dtype=float) if v else np.zeros(0) for k, v in self._epochs.items()})
        return out


class RegimeMonitor(Monitor):
    """Record a :class:`~toymodel.nets.SphereSGD` run, by a hook after the optimizer's ``step``.

    Per step (reading :meth:`SphereSGD.last_step`): cos(θ_t, θ_t+1), the angle turned, the
    effective gradient norm ||g|| ||θ||, each channel's effective gradient norm ||g_i|| ||θ_i|| and
    effective step size ESS_i = ELR_i ||g_i|| ||θ_i|| with ELR_i = η/||θ_i||² (η = elr ρ²); the loss
    if the step had a closure (:class:`SphereSGD` keeps what it returned), or as given to
    :meth:`log_loss`. Per epoch (:meth:`end_epoch`): the train loss and test error if given, the
    cosine between the weights at consecutive epoch ends, every channel's ELR at the epoch's end,
    and the epoch means of the per-step values (log(1 + ESS_i²) too: the mean the landing rule
    reads). :meth:`records` exports everything as arrays, :meth:`result` as a :class:`TrainResult`,
    :meth:`classify` gives the regime.

    Parameters
    ----------
    optimizer : SphereSGD
        The optimizer whose steps are recorded (anything with ``last_step``).
    group : int, optional
        The optimizer's parameter group (sphere) to record (default 0). The group is looked up at
        every step, so hyper-parameters restored by ``load_state_dict`` are the ones recorded.

    Raises
    ------
    ValueError
        If ``optimizer`` has no ``last_step`` or ``group`` indexes none of its parameter groups.
    """

    STEP_RECORDS = ("cosine", "angle", "eff_grad_norm")
    EPOCH_RECORDS = ("eff_grad_norm", "step_cosine", "step_angle", "epoch_cosine", "channel_elr", "channel_egn",
                     "channel_ess", "channel_log1p_ess2")

    def __init__(self, optimizer, group: int = 0):
        if not hasattr(optimizer, "last_step"):
            raise ValueError("RegimeMonitor records a SphereSGD optimizer (it reads SphereSGD.last_step)")
        super().__init__(optimizer)
        self._gi = int(group)
        if not 0 <= self._gi < len(optimizer.param_groups):
            raise ValueError(f"group must index one of the optimizer's {len(optimizer.param_groups)} parameter "
                             f"groups, got {group!r}")
        self._epoch_start = sphere.flatten(self.params)
        self._sums = []  # per step of the epoch: (2, channels) squared norms of θ_i and g_i, and lr
        self._norm_drift = 0.0
        self._hook(post=self._after)

    @property
    def group(self) -> dict:
        """The recorded parameter group, as the optimizer has it now."""
        return self.optimizer.param_groups[self._gi]

    @property
    def params(self) -> list:
        """The recorded group's tensors, as the optimizer has them now."""
        return list(self.group["params"])

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
        if st.get("loss") is not None:
            self.log_loss(st["loss"])
        self._count_step()

    def _close_epoch(self, n: int) -> None:
        params = self.params
        theta = sphere.flatten(params)
        w2 = channel_sq_norms(params).double()
        rho = self.group["radius"]
        lr = self.group["elr"] * rho * rho
        ep = self._epochs
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
        ep["channel_log1p_ess2"].append(torch.log1p(ess * ess).mean(dim=0).cpu().numpy())
        self._norm_drift = max(self._norm_drift, abs(float(w2.double().sum()) / (rho * rho) - 1.0))
        self._sums = []
        self._epoch_start = theta

    def result(self, elr: float | None = None, seed: int = 0) -> TrainResult:
        """The per-epoch records as a :class:`TrainResult`.

        Parameters
        ----------
        elr : float, optional
            Default: the group's ELR.
        seed : int, optional
            Recorded with the result (default 0).

        Returns
        -------
        TrainResult

        Raises
        ------
        ValueError
            If no epoch was recorded.
        """
        r = self.records()
        if not len(r["train_loss"]):
            raise ValueError("no epoch recorded yet: call end_epoch() after each epoch")
        flat = sphere.flatten(self.params).double()
        return TrainResult(float(self.group["elr"] if elr is None else elr), int(seed),
                           train_loss=r["train_loss"], test_error=r["test_error"], eff_grad_norm=r["eff_grad_norm"],
                           step_cosine=r["step_cosine"], step_angle=r["step_angle"], epoch_cosine=r["epoch_cosine"],
                           channel_elr=r["channel_elr"], channel_egn=r["channel_egn"], channel_ess=r["channel_ess"],
                           norm_drift=self._norm_drift, final_norm=float(flat.norm()),
                           final_weights=flat.cpu().numpy(), channel_log1p_ess2=r["channel_log1p_ess2"])

    def classify(self, random_guess: float, window: slice | None = None):
        """``(regime, subtype)`` of the run so far; see :meth:`TrainResult.classify`.

        Parameters
        ----------
        random_guess : float
            The loss level of random guessing (:func:`~toymodel.nets.random_guess_level`).
        window : slice, optional
            The epochs classified; default: the last ``regimes.TRAINING_WINDOW_FRACTION`` of them,
            at least two.

        Returns
        -------
        regime : str
        subtype : str

        Raises
        ------
        ValueError
            If no epoch was recorded.
        """
        return self.result().classify(random_guess, window)


class ConventionalMonitor(Monitor):
    """Record conventional training of scale-invariant tensors: ``torch.optim.SGD`` with learning rate
    η and weight decay λ, no projection, by hooks before and after the optimizer's ``step``.

    For every output channel i with weights w_i (norm r_i) and gradient g_i, the direction moves as on
    the sphere with the channel ELR η̃_i = η/((1 - ηλ) r_i²) and ESS_i = η̃_i ||g_i|| r_i (derivation
    11); the total ELR is η/((1 - ηλ) ||θ||²). Per step: the total ELR, the direction cosine
    cos(θ_t, θ_t+1), and (if logged) the loss; per epoch: train loss and test error if given, the
    epoch means of the channels' ELR and ESS. For the law of derivation 12 it also keeps, per
    channel, the sum over steps of log(1 + ESS_i²) and of -2 log(1 - η_t λ), and the log squared
    channel norms at the first step and after the last.

    η, λ and the momentum μ are read from the optimizer's parameter group at every step, so a
    learning-rate scheduler is followed. With momentum (PyTorch's heavy ball) the step is not
    orthogonal to the weights and the formulas above do not hold: ESS_i is then measured as the
    tangent of the angle between channel i's weights before and after the step (the definition that
    equals the formula for plain SGD; computed from the Gram entries, so to about 1e-16/ESS_i² relative),
    the ELRs stay the nominal η/((1 - ηλ) r_i²), and the law's value -2 log(1 - ηλ) is plain SGD's,
    a reference rather than an identity. What this cannot measure is refused with a ValueError: an
    optimizer other than ``torch.optim.SGD``, dampening or Nesterov, and ``params`` that are not all
    in one of the optimizer's groups.

    Parameters
    ----------
    optimizer : torch.optim.SGD
        The optimizer whose steps are recorded (plain SGD with weight decay).
    params : sequence of torch.Tensor
        The scale-invariant tensors (one parameter group of ``optimizer``, or part of one).

    Raises
    ------
    ValueError
        For what this cannot measure (above), or if ``lr * weight_decay`` >= 1: at construction,
        and from ``step`` when the group's hyper-parameters have since become so.
    """

    STEP_RECORDS = ("total_elr", "cosine")
    EPOCH_RECORDS = ("total_elr", "step_cosine", "channel_elr", "channel_ess")

    def __init__(self, optimizer, params):
        if not isinstance(optimizer, torch.optim.SGD):
            raise ValueError(f"ConventionalMonitor measures torch.optim.SGD; got {type(optimizer).__name__}")
        super().__init__(optimizer)
        self.params = list(params)
        ids = {id(p) for p in self.params}
        groups = [i for i, g in enumerate(optimizer.param_groups) if ids <= {id(p) for p in g["params"]}]
        if not self.params or not groups:
            raise ValueError("ConventionalMonitor: params must all belong to one parameter group of the optimizer")
        self._gi = groups[0]
        self.lr, self.weight_decay, self.decay = self._hyper()
        self._chan = []
        self._sum_log1p = None
        self._sum_law = 0.0
        self._constant_decay = True
        self._log_w2_0 = None
        self._theta = None
        self._hook(pre=self._before, post=self._after)

    def _hyper(self):
        g = self.optimizer.param_groups[self._gi]
        for name, bad in (("dampening", g.get("dampening", 0.0)), ("nesterov", g.get("nesterov", False))):
            if bad:
                raise ValueError(f"ConventionalMonitor measures SGD with weight decay and heavy-ball momentum; the "
                                 f"optimizer has {name}={bad!r}")
        self.momentum = float(g.get("momentum", 0.0))
        lr, wd = float(g["lr"]), float(g.get("weight_decay", 0.0))
        decay = 1.0 - lr * wd
        if not decay > 0:
            raise ValueError(f"lr * weight_decay must be below 1, got {lr * wd!r}")
        return lr, wd, decay

    @torch.no_grad()
    def _before(self, opt, args, kwargs):
        previous = self.decay
        self.lr, self.weight_decay, self.decay = self._hyper()
        self._constant_decay &= self.decay == previous
        ps = self.params
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in ps]
        w2 = channel_sq_norms(ps).double()
        g2 = channel_sq_norms(grads).double()
        elr_c = self.lr / (self.decay * w2)
        if self._sum_log1p is None:
            self._sum_log1p = torch.zeros_like(elr_c)
            self._log_w2_0 = w2.log()
        self._sum_law += -2.0 * math.log(self.decay)
        self._theta = sphere.flatten(ps)
        self._step["total_elr"].append(self.lr / (self.decay * float(w2.sum())))
        if self.momentum:  # the ESS is measured after the step, from the turn of each channel
            self._w2, self._elr_c = w2, elr_c
            self._prev = [p.detach().clone() for p in ps]
            return
        ess = elr_c * (g2 * w2).sqrt()
        self._sum_log1p += torch.log1p(ess * ess)
        self._chan.append(torch.stack((elr_c, ess)))

    @torch.no_grad()
    def _after(self, opt, args, kwargs):
        if self.momentum:
            dot = channel_dots(self._prev, self.params).double()
            n2 = channel_sq_norms(self.params).double()
            ess2 = (self._w2 * n2 - dot * dot).clamp_min(0.0) / (dot * dot)
            self._sum_log1p += torch.log1p(ess2)
            self._chan.append(torch.stack((self._elr_c, ess2.sqrt())))
            self._prev = None
        new = sphere.flatten(self.params)
        old = self._theta
        self._step["cosine"].append(min(1.0, float((old @ new) / (old.norm() * new.norm()))))
        self._count_step()

    def _close_epoch(self, n: int) -> None:
        ep = self._epochs
        ep["total_elr"].append(float(np.mean(self._step["total_elr"][-n:])))
        ep["step_cosine"].append(float(np.mean(self._step["cosine"][-n:])))
        chan = torch.stack(self._chan).mean(dim=0).cpu().numpy()
        ep["channel_elr"].append(chan[0])
        ep["channel_ess"].append(chan[1])
        self._chan = []

    def law(self) -> dict:
        """Derivation 12 on every channel.

        Returns
        -------
        dict
            ``mean_log1p_ess2`` (channels,): the measured time mean of log(1 + ESS_i²); ``theory``:
            the time mean of -2 log(1 - η_t λ) (-2 log(1 - ηλ) at a constant rate); ``boundary``
            (channels,): (log r_i²(T) - log r_i²(0))/T; ``steps``: T. The measured mean equals
            theory + boundary exactly (up to rounding) in every regime.

        Raises
        ------
        ValueError
            If no step was recorded.
        """
        if not self.steps:
            raise ValueError("no step recorded yet")
        log_w2_t = channel_sq_norms(self.params).double().log()
        boundary = (log_w2_t - self._log_w2_0) / self.steps
        # at a constant rate the law's value exactly, not a mean of equal terms
        theory = -2.0 * math.log(self.decay) if self._constant_decay else self._sum_law / self.steps
        return {"mean_log1p_ess2": (self._sum_log1p / self.steps).cpu().numpy(),
                "theory": theory, "boundary": boundary.cpu().numpy(), "steps": self.steps}

    def result(self, seed: int = 0) -> ConventionalResult:
        """The records as a :class:`ConventionalResult` (learning rate and weight decay: the last
        step's).

        Parameters
        ----------
        seed : int, optional
            Recorded with the result (default 0).

        Returns
        -------
        ConventionalResult

        Raises
        ------
        ValueError
            If no step was recorded.
        """
        r, law = self.records(), self.law()
        return ConventionalResult(self.lr, self.weight_decay, int(seed), r["train_loss"], r["test_error"],
                                  r["total_elr"], r["step_cosine"], r["total_elr_per_step"], r["channel_elr"],
                                  r["channel_ess"], law["mean_log1p_ess2"], law["boundary"], law["theory"],
                                  sphere.flatten(self.params).double().cpu().numpy(), self.momentum)
