"""The training loop of the paper on the sphere, evaluation with exact BatchNorm statistics, and
the random-guess level."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import _streams
from .data import Data
from .monitor import RegimeMonitor, TrainResult
from .optim import SphereSGD

__all__ = ["evaluate", "random_guess_level", "train_on_sphere", "EVAL_BATCH"]

#: examples per forward pass when evaluating (the digits' training set fits in one)
EVAL_BATCH = 4096
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _batches(n: int, size: int):
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


@torch.no_grad()
def evaluate(model: nn.Module, sets, X_fit, batch_size: int = EVAL_BATCH):
    """Mean cross-entropy and classification error on each ``(X, y)`` of ``sets``, with every
    BatchNorm's running statistics first set to those of ``X_fit`` ("precise BN": the running
    statistics are reset and accumulated as a plain average over ``X_fit`` in batches of
    ``batch_size``; exact when ``X_fit`` fits in one batch, as the digits do). The statistics
    stay set afterwards; the model's train/eval mode is restored.
    """
    bns = [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]
    was_training = model.training
    momenta = [m.momentum for m in bns]
    try:
        if bns:
            for m in bns:
                m.reset_running_stats()
                m.momentum = None  # cumulative average
            model.train()
            for s in _batches(len(X_fit), batch_size):
                model(X_fit[s])
        model.eval()
        out = []
        for X, y in sets:
            loss = err = 0.0
            for s in _batches(len(X), batch_size):
                logits = model(X[s])
                loss += float(F.cross_entropy(logits, y[s], reduction="sum"))
                err += float((logits.argmax(dim=1) != y[s]).sum())
            out.append((loss / len(X), err / len(X)))
        return out
    finally:
        for m, mom in zip(bns, momenta, strict=True):
            m.momentum = mom
        model.train(was_training)


@torch.no_grad()
def random_guess_level(model: nn.Module, params, X, y, radius: float = 1.0, points: int = 64, seed: int = 0) -> float:
    """Mean training loss at ``points`` points drawn uniformly on the sphere of ``params`` (of
    norm ``radius``; stream ``RANDOM_GUESS`` of ``seed``), with BatchNorm statistics of ``X``: the
    level the toy calls random guess. The parameters are restored afterwards."""
    params = list(params)
    saved = [p.detach().clone() for p in params]
    rng = _streams.rng(seed, _streams.RANDOM_GUESS)
    sizes = [p.numel() for p in params]
    vals = []
    try:
        for _ in range(int(points)):
            v = rng.standard_normal(sum(sizes))
            v *= radius / np.linalg.norm(v)
            for p, part in zip(params, np.split(v, np.cumsum(sizes)[:-1]), strict=True):
                p.copy_(torch.from_numpy(part).reshape(p.shape))
            vals.append(evaluate(model, [(X, y)], X)[0][0])
    finally:
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)
    return float(np.mean(vals))


def as_tensors(data: Data, dtype=torch.float32, device="cpu"):
    """The data set's arrays as tensors (inputs in ``dtype``, labels int64) on ``device``."""
    return (torch.as_tensor(data.X_train, dtype=dtype, device=device),
            torch.as_tensor(data.y_train, device=device),
            torch.as_tensor(data.X_test, dtype=dtype, device=device),
            torch.as_tensor(data.y_test, device=device))


def train_on_sphere(model: nn.Module, tensors, elr: float, epochs: int, batch_size: int, *, seed: int = 0,
                    radius: float = 1.0, params=None) -> TrainResult:
    """Mini-batch SGD on the sphere of the model's scale-invariant parameters at a fixed total ELR.

    ``tensors`` is ``(X_train, y_train, X_test, y_test)`` (see :func:`as_tensors`), already on the
    model's device and dtype. Batches are drawn without replacement each epoch (order from stream
    ``BATCH_ORDER`` of ``seed``); BatchNorm uses the batch's statistics. After each epoch the
    train loss and test error are measured by :func:`evaluate` with the training set's statistics.
    The scale-invariant parameters are found by :meth:`SphereSGD.for_model` (or checked, when
    ``params`` names them) and put on the sphere of ``radius``; every other parameter is frozen.
    """
    Xtr, ytr, Xte, yte = tensors
    n = len(ytr)
    if not (isinstance(batch_size, int) and 2 <= batch_size <= n):
        raise ValueError(f"batch_size must be an integer from 2 to the training set size {n}, got {batch_size!r}")
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    model.train()
    opt = SphereSGD.for_model(model, Xtr[:min(n, 256)], elr, params, radius=radius)
    mon = RegimeMonitor(opt)
    rng = _streams.rng(seed, _streams.BATCH_ORDER)
    n_batches = n // batch_size
    try:
        for _ in range(epochs):
            perm = torch.from_numpy(rng.permutation(n)).to(Xtr.device)
            for b in range(n_batches):
                idx = perm[b * batch_size:(b + 1) * batch_size]
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(Xtr[idx]), ytr[idx])
                loss.backward()
                opt.step()
            (tr_loss, _), (_, te_err) = evaluate(model, [(Xtr, ytr), (Xte, yte)], Xtr)
            mon.end_epoch(train_loss=tr_loss if math.isfinite(tr_loss) else math.inf, test_error=te_err)
    finally:
        mon.close()
    return mon.result(elr, seed)
