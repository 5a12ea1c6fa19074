"""The training loop of the paper on the sphere, evaluation with exact BatchNorm statistics, and
the random-guess level."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import _streams
from ..netrecords import ConventionalResult
from . import sphere
from .data import Data
from .monitor import ConventionalMonitor, RegimeMonitor, TrainResult
from .optim import SphereSGD

__all__ = ["evaluate", "random_guess_level", "train_on_sphere", "train_conventional", "as_tensors", "EVAL_BATCH"]

#: examples per forward pass when evaluating (the digits' training set fits in one)
EVAL_BATCH = 4096
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _batches(n: int, size: int):
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


@torch.no_grad()
def evaluate(model: nn.Module, sets, X_fit, batch_size: int = EVAL_BATCH):
    """Mean cross-entropy and classification error on each ``(X, y)`` of ``sets``, with every
    BatchNorm's running statistics first set to those of ``X_fit``.

    "Precise BN": the running statistics are reset and accumulated as a plain average over
    ``X_fit`` in batches of ``batch_size`` (exact when ``X_fit`` fits in one batch, as the digits
    do); the sets are then evaluated in eval mode. The statistics stay set afterwards; the model's
    train/eval mode is restored.

    Parameters
    ----------
    model : torch.nn.Module
    sets : iterable of (torch.Tensor, torch.Tensor)
        ``(X, y)`` pairs: inputs of shape (N, ...) and int64 labels of shape (N,).
    X_fit : torch.Tensor, shape (M, ...)
        The inputs whose statistics BatchNorm uses (the training set).
    batch_size : int, optional
        Examples per forward pass (default :data:`EVAL_BATCH`).

    Returns
    -------
    list of (float, float)
        ``(mean loss, error rate)`` of each set, in order.
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
    """Mean training loss at points drawn uniformly on the sphere of ``params``, with BatchNorm
    statistics of ``X``: the level the toy calls random guess.

    The parameters are restored afterwards.

    Parameters
    ----------
    model : torch.nn.Module
    params : iterable of torch.Tensor
        The tensors of the sphere (the model's scale-invariant parameters).
    X : torch.Tensor, shape (N, ...)
        The training inputs (also BatchNorm's statistics, as in :func:`evaluate`).
    y : torch.Tensor, shape (N,)
        The training labels (int64).
    radius : float, optional
        The sphere's radius, the points' total norm (default 1).
    points : int, optional
        The number of random points (default 64).
    seed : int, optional
        The points come from stream ``RANDOM_GUESS`` of ``seed`` (default 0).

    Returns
    -------
    float
        The mean over the points of the mean cross-entropy on ``(X, y)``.
    """
    params = list(params)
    saved = [p.detach().clone() for p in params]
    rng = _streams.rng(seed, _streams.RANDOM_GUESS)
    dim = sum(p.numel() for p in params)
    vals = []
    try:
        for _ in range(int(points)):
            sphere.assign(params, sphere.random_point(dim, radius, rng))
            vals.append(evaluate(model, [(X, y)], X)[0][0])
    finally:
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)
    return float(np.mean(vals))


def as_tensors(data: Data, dtype=torch.float32, device="cpu"):
    """The data set's arrays as tensors (inputs in ``dtype``, labels int64) on ``device``.

    Parameters
    ----------
    data : Data
    dtype : torch.dtype, optional
        The inputs' dtype (default ``torch.float32``).
    device : str or torch.device, optional
        Default ``"cpu"``.

    Returns
    -------
    tuple of torch.Tensor
        ``(X_train, y_train, X_test, y_test)``.
    """
    return (torch.as_tensor(data.X_train, dtype=dtype, device=device),
            torch.as_tensor(data.y_train, device=device),
            torch.as_tensor(data.X_test, dtype=dtype, device=device),
            torch.as_tensor(data.y_test, device=device))


def train_on_sphere(model: nn.Module, tensors, elr: float, epochs: int, batch_size: int, *, seed: int = 0,
                    radius: float = 1.0, params=None) -> TrainResult:
    """Mini-batch SGD on the sphere of the model's scale-invariant parameters at a fixed total ELR.

    Batches are drawn without replacement each epoch (order from stream ``BATCH_ORDER`` of
    ``seed``); BatchNorm uses the batch's statistics. After each epoch the train loss and test
    error are measured by :func:`evaluate` with the training set's statistics. The scale-invariant
    parameters are found by :meth:`SphereSGD.for_model` (or checked, when ``params`` names them)
    and put on the sphere of ``radius``; every other parameter is frozen.

    Parameters
    ----------
    model : torch.nn.Module
        Trained in place (left in train mode).
    tensors : tuple of torch.Tensor
        ``(X_train, y_train, X_test, y_test)`` (see :func:`as_tensors`), already on the model's
        device and dtype.
    elr : float
        The total effective learning rate, > 0.
    epochs, batch_size : int
        Epochs (>= 1) and the mini-batch size (from 2 to the training set size); each epoch
        takes ``N // batch_size`` steps.
    seed : int, optional
        The batch order (stream ``BATCH_ORDER``; default 0).
    radius : float, optional
        The sphere's radius (default 1).
    params : sequence of str or torch.Tensor, optional
        The scale-invariant parameters (checked); default: found.

    Returns
    -------
    TrainResult
        The run's per-epoch records (:meth:`RegimeMonitor.result`).

    Raises
    ------
    ValueError
        If ``epochs``, ``batch_size`` or ``elr`` is out of range, or a named parameter is not
        scale-invariant (or none is found).
    """
    n = _check_loop(tensors, epochs, batch_size)
    model.train()
    opt = SphereSGD.for_model(model, tensors[0][:min(n, 256)], elr, params, radius=radius)
    with RegimeMonitor(opt) as mon:
        _loop(model, opt, mon, tensors, epochs, batch_size, seed)
    return mon.result(elr, seed)


def train_conventional(model: nn.Module, tensors, lr: float, weight_decay: float, epochs: int, batch_size: int, *,
                       seed: int = 0, params=None, momentum: float = 0.0) -> ConventionalResult:
    """Conventional training: ``torch.optim.SGD`` with learning rate ``lr`` and weight decay
    ``weight_decay`` (no projection; heavy-ball ``momentum`` as in torch) on the model's scale-invariant parameters,
    recorded by :class:`ConventionalMonitor`. Batches, evaluation and seeds as in
    :func:`train_on_sphere`.

    Parameters
    ----------
    model : torch.nn.Module
        Trained in place (left in train mode).
    tensors : tuple of torch.Tensor
        ``(X_train, y_train, X_test, y_test)`` on the model's device and dtype (:func:`as_tensors`).
    lr, weight_decay : float
        Learning rate η > 0 and weight decay λ >= 0, with ηλ < 1.
    epochs, batch_size : int
        Epochs (>= 1) and the mini-batch size (from 2 to the training set size).
    seed : int, optional
        The batch order (stream ``BATCH_ORDER``; default 0).
    params : sequence of str or torch.Tensor, optional
        The scale-invariant parameters, each checked as in :meth:`SphereSGD.for_model`; default:
        found by :func:`~toymodel.nets.find_scale_invariant`. Every other parameter is frozen.
    momentum : float, optional
        ``torch.optim.SGD``'s momentum μ in [0, 1) (default 0; no dampening, no Nesterov).

    Returns
    -------
    ConventionalResult
        The run's records (:meth:`ConventionalMonitor.result`).

    Raises
    ------
    ValueError
        If ``epochs``, ``batch_size``, ``lr`` or ``weight_decay`` is out of range (ηλ >= 1 included),
        or a named parameter is not scale-invariant (or none is found).
    """
    n = _check_loop(tensors, epochs, batch_size)
    if not (lr > 0 and math.isfinite(lr)) or not (weight_decay >= 0 and math.isfinite(weight_decay)):
        raise ValueError(f"lr must be positive and weight_decay >= 0, both finite, got {lr!r}, {weight_decay!r}")
    model.train()
    names, si = sphere.scale_invariant_parameters(model, tensors[0][:min(n, 256)], params)
    for nm, p in model.named_parameters():
        p.requires_grad_(nm in names)
    if not (0.0 <= float(momentum) < 1.0):
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    opt = torch.optim.SGD(si, lr=lr, weight_decay=weight_decay, momentum=float(momentum))
    with ConventionalMonitor(opt, si) as mon:
        _loop(model, opt, mon, tensors, epochs, batch_size, seed)
    return mon.result(seed)


def _check_loop(tensors, epochs, batch_size) -> int:
    n = len(tensors[1])
    if not (isinstance(batch_size, int) and 2 <= batch_size <= n):
        raise ValueError(f"batch_size must be an integer from 2 to the training set size {n}, got {batch_size!r}")
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    return n


def _loop(model, opt, mon, tensors, epochs: int, batch_size: int, seed: int) -> None:
    """The epochs of mini-batch training shared by both procedures: batches without replacement
    (order from stream ``BATCH_ORDER`` of ``seed``), evaluation after every epoch."""
    Xtr, ytr, Xte, yte = tensors
    n = len(ytr)
    rng = _streams.rng(seed, _streams.BATCH_ORDER)
    for _ in range(epochs):
        perm = torch.from_numpy(rng.permutation(n)).to(Xtr.device)
        for b in range(n // batch_size):
            idx = perm[b * batch_size:(b + 1) * batch_size]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(Xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
        (tr_loss, _), (_, te_err) = evaluate(model, [(Xtr, ytr), (Xte, yte)], Xtr)
        mon.end_epoch(train_loss=tr_loss if math.isfinite(tr_loss) else math.inf, test_error=te_err)
