"""Records of network training runs (NumPy only, so that the bridge's results load without torch)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import regimes

__all__ = ["TrainResult", "ConventionalResult"]


@dataclass(frozen=True)
class TrainResult:
    """Per-epoch records of one training run (arrays over epochs ``E`` and channels ``C``).

    ``step_cosine`` and ``step_angle`` average cos(θ_t, θ_t+1) and the angular update over the
    steps of each epoch; ``epoch_cosine`` is the cosine between the weights at the ends of
    consecutive epochs (the first against the initial weights); ``eff_grad_norm`` averages the
    effective gradient norm ||g|| ||θ|| of the mini-batch gradients; ``channel_elr`` is each
    channel's ELR at the end of the epoch, ``channel_egn`` and ``channel_ess`` each channel's
    effective gradient norm and effective step size averaged over the epoch's steps;
    ``norm_drift`` the largest ``| ||θ||²/ρ² - 1 |`` over the epoch ends (how far the weights left
    the sphere; equivalently the error of the channel ELRs' harmonic sum, ``sum_i 1/elr_i * elr - 1``),
    ``final_norm`` the total norm at the end.
    With sharpness measured (``toymodel.bridge --sharpness``): ``sharpness_top``, the top eigenvalues
    of the tangent Hessian at the end (largest first), ``sharpness_trace`` and
    ``sharpness_trace_se``, its Hutchinson trace and standard error. ``final_weights``: the
    scale-invariant weights at the end (flat, float64), from which fine-tuning starts.
    ``channel_log1p_ess2`` (E x C): each channel's epoch mean of log(1 + ESS_i²) over the steps, the
    time mean the landing rule of derivation 16 reads from a fixed-ELR sweep.
    """

    elr: float
    seed: int
    train_loss: np.ndarray
    test_error: np.ndarray
    eff_grad_norm: np.ndarray
    step_cosine: np.ndarray
    step_angle: np.ndarray
    epoch_cosine: np.ndarray
    channel_elr: np.ndarray
    channel_egn: np.ndarray
    channel_ess: np.ndarray
    norm_drift: float
    final_norm: float
    sharpness_top: np.ndarray | None = None
    sharpness_trace: float | None = None
    sharpness_trace_se: float | None = None
    final_weights: np.ndarray | None = None
    channel_log1p_ess2: np.ndarray | None = None

    def classify(self, random_guess: float, window: slice | None = None):
        """``(regime, subtype)`` of this run over ``window`` (default: the last quarter of the
        epochs, at least two), by :func:`toymodel.regimes.classify_training`."""
        w = window if window is not None else regimes.training_window(len(self.train_loss))
        reg, sub = regimes.classify_training(self.train_loss[w], self.step_cosine[w], random_guess)
        return str(reg), str(sub)


@dataclass(frozen=True)
class ConventionalResult:
    """Records of one conventional-training run (learning rate ``lr``, weight decay
    ``weight_decay``, no projection): per epoch ``E`` the train loss, test error, mean total ELR and
    mean direction cosine per step, the channels' mean ELR and ESS (E x C); per step the total ELR;
    per channel the law of derivation 12 (``mean_log1p_ess2``, its ``law_boundary`` term
    (log r_i²(T) - log r_i²(0))/T, and the value ``law_theory`` = -2 log(1 - lr weight_decay), the
    time mean of its per-step values under a schedule); and the final scale-invariant weights
    (flat, float64) for fine-tuning. With ``momentum`` > 0 (PyTorch's heavy ball) ESS_i is the tangent
    of the angle between consecutive weights of channel i, the ELRs are the nominal lr / ((1 - lr wd)
    r_i^2), and ``law_theory`` stays plain SGD's -2 log(1 - lr wd), a reference rather than an identity."""

    lr: float
    weight_decay: float
    seed: int
    train_loss: np.ndarray
    test_error: np.ndarray
    total_elr: np.ndarray
    step_cosine: np.ndarray
    total_elr_per_step: np.ndarray
    channel_elr: np.ndarray
    channel_ess: np.ndarray
    mean_log1p_ess2: np.ndarray
    law_boundary: np.ndarray
    law_theory: float
    final_weights: np.ndarray
    momentum: float = 0.0

    @property
    def lr_wd(self) -> float:
        return self.lr * self.weight_decay

    def classify(self, random_guess: float, window: slice | None = None):
        """``(regime, subtype)`` over ``window`` (default: the last quarter of the epochs)."""
        w = window if window is not None else regimes.training_window(len(self.train_loss))
        reg, sub = regimes.classify_training(self.train_loss[w], self.step_cosine[w], random_guess)
        return str(reg), str(sub)
