r"""K training runs of one network as one batched computation.

A run of :func:`~toymodel.nets.train_on_sphere` or :func:`~toymodel.nets.train_conventional` on
the bridge's small networks spends most of a step dispatching operations on 32 x 64 matrices. Here
K runs of one architecture (:class:`~toymodel.nets.MLPSI` or :class:`~toymodel.nets.ConvNetSI`,
any dtype) are stacked along a leading run axis and trained together: every operation of the
forward pass, of the backward pass, of the optimizer's step and of the monitor acts on all K runs
at once, and returns, run by run, what the one-run function returns (a list of
:class:`~toymodel.nets.TrainResult` or :class:`~toymodel.netrecords.ConventionalResult`).

Notes
-----
**Batching.** The trained weights of the K runs are stacked, ``(K, C_out, fan_in)`` per layer
(``(K, C_out, C_in, 3, 3)`` for a convolution), and the frozen output layers ``(K, classes, F)``.
The MLP keeps its activations as ``(K, features, batch)``: a layer is one batched matrix product
(``bmm``, one GEMM per run) and BatchNorm normalises each (run, channel) row over the batch (the
native kernel on a ``(1, K C, B)`` view). The ConvNet keeps them as ``(K, C, H, W, batch)``, the
batch innermost: a 3 x 3 convolution is the unfolded input (im2col, one strided copy in runs of
W x batch entries) times the weights, again one GEMM per run, and its input gradient the adjoint
(col2im: nine shifted sums); max-pooling works on the same memory seen as channels-last planes.
The backward pass is written out layer by layer with the native kernels (``bmm``,
``native_batch_norm_backward``, ``threshold_backward``, the max-pool backward), not by autograd
or ``torch.func.vmap``: at these sizes a step of K = 64 MLP runs is a few dozen kernels on arrays
of some 10^5 entries, and autograd's graph, its per-node temporaries and the layouts ``vmap``
chooses (BatchNorm over a non-contiguous axis, softmax over the class axis in the middle) cost
about 1.5-2 times the hand-written pass; a grouped convolution (``groups=K``) was 1.3-1.6 times
slower than the batch-innermost GEMMs and rounds differently for one run than for several. The
per-epoch evaluation is not batched: it runs :func:`~toymodel.nets.evaluate` on each run's
model with the run's current weights, because a chunk of ``EVAL_BATCH`` examples already keeps
the kernels busy (one run at a time measured as fast or faster, for both networks and both data
sets), and so it is the one-run evaluation exactly. ``eval_epochs`` thins it out where it
dominates (Fashion-MNIST's 70,000 evaluated images per 1,875 steps).

**Independence of runs.** No operation mixes runs: every matrix product is one run's, BatchNorm's
statistics and every reduction of the step and the monitor are along one run's own rows, and the
runs' losses are summed only as bookkeeping, never differentiated. Each run draws its own
mini-batches from its own stream ``BATCH_ORDER`` (gathered from its own training set) and starts
from its own model (initialised by the caller, e.g. from stream ``NET_INIT``). A run's arithmetic
is therefore the same whichever runs share its ensemble: the tests find a run alone and among
others identical bit for bit, in float32 and float64, for both networks.

**What is the same as one run.** The sphere step is :class:`~toymodel.nets.SphereSGD`'s: the
gradient projected on the tangent space, the step θ - β g with β = η/(1 + η⟨g, θ⟩/‖θ‖²) and
η = elr ρ², the retraction to the radius ρ from the Gram entries, the angle from the step's
radial and tangential parts. The conventional step is ``torch.optim.SGD``'s: d = g + λθ, with
momentum μ the buffer v ← μ v + d (v = d at the first step), then θ ← θ - η v. The statistics
are :class:`~toymodel.nets.RegimeMonitor`'s and :class:`~toymodel.nets.ConventionalMonitor`'s
(the step cosine of conventional training from the Gram entries, ⟨θ, θ'⟩ = ‖θ‖² - η⟨θ, v⟩,
‖θ'‖² = ‖θ‖² - 2η⟨θ, v⟩ + η²‖v‖², instead of a copy of the weights). Evaluation is
:func:`~toymodel.nets.evaluate`'s: BatchNorm statistics averaged over chunks of ``EVAL_BATCH``
training examples as BatchNorm's cumulative average does (unbiased variances), then the mean
cross-entropy and error with those statistics.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import _streams
from .._validate import check_memory
from ..netrecords import ConventionalResult, TrainResult
from .invariance import scale_invariance_report
from .models import MLPSI, ConvNetSI
from .optim import SphereSGD
from .training import EVAL_BATCH, evaluate

__all__ = ["train_ensemble_on_sphere", "train_ensemble_conventional", "ensemble_memory", "EnsembleMemory"]

_aten = torch.ops.aten


# ------------------------------------------------------------------------------ architecture
class _Arch(NamedTuple):
    """What fixes a batched network: ``kind`` ("mlp" or "convnet"), the trained weights' names (as
    in ``named_parameters``) and shapes, the BatchNorm eps of each layer, where max-pooling
    follows (ConvNet), the head's shape, the dtype and the device."""

    kind: str
    names: tuple
    shapes: tuple
    eps: tuple
    pool_after: tuple
    head_shape: tuple
    dtype: torch.dtype
    device: torch.device

    @property
    def channels(self) -> int:
        return sum(s[0] for s in self.shapes)

    @property
    def n_params(self) -> int:
        return sum(math.prod(s) for s in self.shapes)


def _arch(model: nn.Module) -> _Arch:
    """The architecture of an MLPSI or ConvNetSI (ValueError for anything else, or a layer that
    differs from what these classes build)."""
    head = getattr(model, "head", None)
    if isinstance(model, MLPSI):
        mods, prefix = list(model.body), "body"
        if len(mods) % 3:
            raise ValueError("models: an MLPSI body must be blocks of Linear, BatchNorm1d, ReLU")
        blocks = [mods[i:i + 3] for i in range(0, len(mods), 3)]
        want = (nn.Linear, nn.BatchNorm1d, nn.ReLU)
        pool_after = ()
    elif isinstance(model, ConvNetSI):
        mods, prefix = list(model.features), "features"
        blocks, pool_after, i = [], [], 0
        while i < len(mods):
            blocks.append(mods[i:i + 3])
            i += 3
            pooled = i < len(mods) and isinstance(mods[i], nn.MaxPool2d)
            pool_after.append(pooled)
            if pooled:
                m = mods[i]
                if not (m.kernel_size in (2, (2, 2)) and m.stride in (2, (2, 2)) and m.padding in (0, (0, 0))
                        and m.dilation in (1, (1, 1)) and not m.ceil_mode):
                    raise ValueError("models: the ConvNetSI max-pooling must be 2 x 2 with stride 2")
                i += 1
        want = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU)
        if not (isinstance(model.pool, nn.AdaptiveMaxPool2d) and model.pool.output_size in (1, (1, 1))):
            raise ValueError("models: the ConvNetSI must end in a global max pool")
        pool_after = tuple(pool_after)
    else:
        raise ValueError(f"models must be MLPSI or ConvNetSI, got {type(model).__name__}")
    names, shapes, eps = [], [], []
    for b, block in enumerate(blocks):
        if len(block) != 3 or not all(isinstance(m, t) for m, t in zip(block, want, strict=True)):
            raise ValueError(f"models: block {b} of the {type(model).__name__} is not "
                             f"{', '.join(t.__name__ for t in want)}")
        layer, bn = block[0], block[1]
        if layer.bias is not None or bn.affine or not bn.track_running_stats:
            raise ValueError("models: the ensemble trains layers without bias into BatchNorm without affine "
                             "parameters, with running statistics")
        if isinstance(layer, nn.Conv2d) and not (layer.kernel_size == (3, 3) and layer.stride == (1, 1)
                                                 and layer.padding == (1, 1) and layer.dilation == (1, 1)
                                                 and layer.groups == 1 and layer.padding_mode == "zeros"):
            raise ValueError("models: the ConvNetSI convolutions must be 3 x 3, stride 1, padding 1")
        names.append(f"{prefix}.{mods.index(layer)}.weight")
        shapes.append(tuple(layer.weight.shape))
        eps.append(float(bn.eps))
    if not isinstance(head, nn.Linear) or head.bias is not None or head.weight.requires_grad:
        raise ValueError("models: the output layer must be the frozen head of MLPSI/ConvNetSI")
    w = head.weight
    return _Arch("mlp" if isinstance(model, MLPSI) else "convnet", tuple(names), tuple(shapes), tuple(eps),
                 pool_after, tuple(w.shape), w.dtype, w.device)


# ------------------------------------------------------------------------------ data
class _Data:
    """The runs' data: one ``(X_train, y_train, X_test, y_test)`` shared by every run, or one per run.
    The distinct training sets (told apart by identity: runs given the same tensors share them) are
    stacked once, and rows are addressed flat: run k's example i is row ``offsets[k] + i`` of
    :meth:`rows`. Evaluation uses each run's own tuple, ``per_run[k]``."""

    def __init__(self, tensors, K: int, arch: _Arch):
        if isinstance(tensors, tuple) and len(tensors) == 4 and all(isinstance(t, torch.Tensor) for t in tensors):
            per_run = [tensors] * K
        else:
            try:
                per_run = [tuple(t) for t in tensors]
            except TypeError:
                raise ValueError("tensors must be (X_train, y_train, X_test, y_test) or one such tuple per "
                                 "run") from None
            if len(per_run) != K or not all(len(t) == 4 and all(isinstance(a, torch.Tensor) for a in t)
                                            for t in per_run):
                raise ValueError(f"tensors must be (X_train, y_train, X_test, y_test) or {K} such tuples, one per "
                                 f"run, got {len(per_run)} entries")
        first = per_run[0]
        for t in per_run:
            _check_tensors(t, first, arch)
        self.per_run = per_run
        self.n = len(first[1])
        self.example_shape = tuple(first[0].shape[1:])
        which = {}
        self._index = [which.setdefault((id(t[0]), id(t[1])), len(which)) for t in per_run]
        self.sets = len(which)

    def stack(self) -> None:
        """Stack the distinct training sets (called after the memory check) and set the rows' offsets."""
        sets = [self.per_run[self._index.index(u)] for u in range(self.sets)]
        if len(sets) == 1:
            self.X_train, self.y_train = sets[0][:2]
        else:
            self.X_train = torch.stack([t[0] for t in sets])
            self.y_train = torch.stack([t[1] for t in sets])
        self.offsets = torch.as_tensor(self._index, device=sets[0][0].device)[:, None] * self.n

    def rows(self):
        """The training inputs and labels with one example per row (every distinct set in turn)."""
        return self.X_train.reshape((-1,) + self.example_shape), self.y_train.reshape(-1)


def _check_tensors(t, first, arch: _Arch) -> None:
    Xtr, ytr, Xte, yte = t
    for name, X in (("X_train", Xtr), ("X_test", Xte)):
        if X.dtype != arch.dtype or X.device != arch.device:
            raise ValueError(f"tensors: {name} is {X.dtype} on {X.device}, the models {arch.dtype} on {arch.device}")
    for name, y in (("y_train", ytr), ("y_test", yte)):
        if y.dtype != torch.int64 or y.dim() != 1 or y.device != arch.device:
            raise ValueError(f"tensors: {name} must be int64 labels, one per example, on {arch.device}")
    if len(Xtr) != len(ytr) or len(Xte) != len(yte) or len(Xte) == 0:
        raise ValueError("tensors: every set needs one label per example and the test set an example")
    if Xtr.shape != first[0].shape or Xte.shape[1:] != Xtr.shape[1:]:
        raise ValueError(f"tensors: the runs' training sets must have the same shape, and their test examples "
                         f"too, got {tuple(Xtr.shape)}, {tuple(Xte.shape)} against {tuple(first[0].shape)}")
    if arch.kind == "mlp":
        if math.prod(Xtr.shape[1:]) != arch.shapes[0][1]:
            raise ValueError(f"tensors: examples of {math.prod(Xtr.shape[1:])} features, the MLP takes "
                             f"{arch.shapes[0][1]}")
    elif Xtr.dim() != 4 or Xtr.shape[1] != arch.shapes[0][1]:
        raise ValueError(f"tensors: the ConvNet takes images N x {arch.shapes[0][1]} x H x W, got {tuple(Xtr.shape)}")
    classes = arch.head_shape[0]
    for name, y in (("y_train", ytr), ("y_test", yte)):
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
            raise ValueError(f"tensors: {name} has labels outside 0..{classes - 1}")


def _planes(x):
    """(K, C, H, W, B) as the channels-last (K C, B, H, W) that max-pooling works on."""
    K, C, H, W, B = x.shape
    return x.reshape(K * C, H, W, B).permute(0, 3, 1, 2)


def _unplanes(x, K: int):
    """The inverse of :func:`_planes`: (K C, B, H, W) back to (K, C, H, W, B)."""
    N, B, H, W = x.shape
    return x.permute(0, 2, 3, 1).reshape(K, N // K, H, W, B)


# ------------------------------------------------------------------------------ batched network
class _Batched:
    """K runs of one architecture: stacked weights, gradients and frozen heads, and the forward and
    backward pass on a mini-batch of every run, its large temporaries in a workspace."""

    def __init__(self, arch: _Arch, weights, heads):
        self.arch = arch
        self.K = heads.shape[0]
        self.weights = weights  # per layer (K, *shape)
        self.grads = [torch.empty_like(w) for w in weights]
        self.heads = heads  # (K, classes, F)
        self.heads_t = heads.transpose(1, 2).contiguous()  # (K, F, classes)
        self._neg_ones = None
        self._ws = {}

    @classmethod
    def from_models(cls, arch: _Arch, models):
        named = [dict(m.named_parameters()) for m in models]
        weights = [torch.stack([nd[n].detach() for nd in named]).contiguous() for n in arch.names]
        heads = torch.stack([m.head.weight.detach() for m in models]).contiguous()
        return cls(arch, weights, heads)

    def flat_views(self):
        """Per layer ``(weights, gradients)`` as (K, C_out, fan_in) views."""
        return [(w.view(self.K, w.shape[1], -1), g.view(self.K, g.shape[1], -1))
                for w, g in zip(self.weights, self.grads, strict=True)]

    def _buf(self, name: str, shape, dtype=None):
        """A workspace tensor of ``name``, shape and dtype, kept from step to step: the step's large
        temporaries are written into these instead of fresh memory, whose page faults cost as much
        as the arithmetic at these sizes."""
        key = (name, tuple(shape), dtype or self.arch.dtype)
        b = self._ws.get(key)
        if b is None:
            b = self._ws[key] = torch.zeros(key[1], dtype=key[2], device=self.arch.device)
        return b

    def _im2col(self, x, name: str):
        """The 3 x 3 patches (padding 1) of ``x`` (K, C, H, W, B) as (K, 9 C, H W B), in the order of
        a convolution weight (C, 3, 3): a convolution is then one matrix product per run. The batch
        is the innermost axis, so the patches are copied in runs of W B entries."""
        K, C, H, W, B = x.shape
        pad = self._buf("pad", (K, C, H + 2, W + 2, B))  # the border stays 0
        pad[:, :, 1:H + 1, 1:W + 1] = x
        s = pad.stride()
        cols = self._buf(f"{name}.cols", (K, 9 * C, H * W * B))
        cols.view(K, C, 3, 3, H, W, B).copy_(pad.as_strided((K, C, 3, 3, H, W, B),
                                                             (s[0], s[1], s[2], s[3], s[2], s[3], s[4])))
        return cols

    def _col2im(self, cols, shape):
        """The adjoint of :meth:`_im2col`: patches (K, 9 C, H W B) summed back onto (K, C, H, W, B)."""
        K, C, H, W, B = shape
        d = cols.view(K, C, 3, 3, H, W, B)
        out = self._buf("col2im", (K, C, H + 2, W + 2, B)).zero_()
        for dy in range(3):
            for dx in range(3):
                out[:, :, dy:dy + H, dx:dx + W] += d[:, :, dy, dx]
        return out[:, :, 1:H + 1, 1:W + 1]

    # ---------------------------------------------------------------- BatchNorm
    def _bn_relu(self, z, eps: float, name: str):
        """BatchNorm (batch statistics, no affine) of every row of ``z`` (K, C, L), in place (``z``
        becomes the normalised ẑ), then ReLU into a workspace tensor; returns (ReLU output, 1/σ)."""
        mean = z.mean(dim=2, keepdim=True)
        z.sub_(mean)
        tmp = torch.mul(z, z, out=self._buf("tmp", z.shape))
        invstd = tmp.mean(dim=2, keepdim=True).add_(eps).rsqrt_()  # 1/sqrt(biased variance + eps)
        z.mul_(invstd)
        return torch.clamp_min(z, 0, out=self._buf(f"{name}.act", z.shape)), invstd

    def _bn_relu_backward(self, da, act, zhat, invstd):
        """The gradient with respect to BatchNorm's input from the gradient ``da`` with respect to the
        ReLU's output ``act``: PyTorch's batch-statistics formula (dy - mean(dy) - ẑ mean(dy ẑ)) / σ
        with dy = da where the ReLU passed, else 0. Returns a workspace tensor."""
        dy = _aten.threshold_backward.grad_input(da, act, 0, grad_input=self._buf("dy", zhat.shape))
        m1 = dy.mean(dim=2, keepdim=True)
        tmp = torch.mul(dy, zhat, out=self._buf("tmp", zhat.shape))
        m2 = tmp.mean(dim=2, keepdim=True)
        torch.mul(zhat, m2, out=tmp)
        return dy.sub_(m1).sub_(tmp).mul_(invstd)

    # ---------------------------------------------------------------- loss head
    def _head_loss(self, feats):
        """Mean cross-entropy per run and its gradient with respect to the logits (K, B, classes),
        from features ``feats`` (K, F, B) and the labels set by :meth:`loss_and_grad`."""
        yb = self._yb
        K, B = yb.shape
        # the product as classes x F times F x B (a shape matrix products do well), then transposed
        logits = torch.bmm(self.heads, feats).transpose(1, 2).contiguous()
        logp = torch.log_softmax(logits, dim=2)  # (K, B, classes)
        loss = logp.gather(2, yb[:, :, None]).sum(dim=(1, 2)).neg_().div_(B)
        if self._neg_ones is None or self._neg_ones.shape != (K, B, 1):
            self._neg_ones = torch.full((K, B, 1), -1.0, dtype=logp.dtype, device=logp.device)
        d = logp.exp_().scatter_add_(2, yb[:, :, None], self._neg_ones).div_(B)  # (softmax - onehot) / B
        return loss, d

    # ----------------------------------------------------------------- training
    def loss_and_grad(self, X_rows, y_rows, rows):
        """The mean loss of every run's mini-batch (K,) and its gradient in ``self.grads``; ``rows``
        (K x B) are the examples' rows in ``X_rows``."""
        self._yb = y_rows[rows]
        flat = rows.reshape(-1)
        x = torch.index_select(X_rows, 0, flat, out=self._buf("x", (len(flat),) + tuple(X_rows.shape[1:])))
        if self.arch.kind == "mlp":
            return self._mlp_train(x.view(*rows.shape, -1))
        return self._conv_train(x.view(*rows.shape, *X_rows.shape[1:]))

    def _mlp_train(self, x):
        K, B = x.shape[:2]
        a = x.transpose(1, 2)  # (K, D, B)
        saved = []
        for i, (W, eps) in enumerate(zip(self.weights, self.arch.eps, strict=True)):
            z = torch.bmm(W, a, out=self._buf(f"{i}.z", (K, W.shape[1], B)))  # (K, C, B)
            act, invstd = self._bn_relu(z, eps, str(i))
            saved.append((a, z, invstd))
            a = act
        loss, d = self._head_loss(a)
        L = len(self.weights)
        da = torch.bmm(self.heads_t, d.transpose(1, 2), out=self._buf(f"{L - 1}.da", a.shape))  # (K, F, B)
        for i in reversed(range(L)):
            a_prev, zhat, invstd = saved[i]
            dz = self._bn_relu_backward(da, a if i == L - 1 else saved[i + 1][0], zhat, invstd)
            torch.bmm(dz, a_prev.transpose(1, 2), out=self.grads[i])
            if i:
                da = torch.bmm(self.weights[i].transpose(1, 2), dz, out=self._buf(f"{i - 1}.da", a_prev.shape))
        return loss

    def _conv_train(self, x):
        K, B = x.shape[:2]
        x = x.permute(0, 2, 3, 4, 1)  # (K, C_in, H, W, B), copied into place by the unfolding
        saved = []
        for i, (W, eps, pool) in enumerate(zip(self.weights, self.arch.eps, self.arch.pool_after, strict=True)):
            cols = self._im2col(x, str(i))
            C = W.shape[1]
            z = torch.bmm(W.view(K, C, -1), cols, out=self._buf(f"{i}.z", (K, C, cols.shape[2])))  # (K, C, H W B)
            act, invstd = self._bn_relu(z, eps, str(i))
            act = act.view(K, C, *x.shape[2:])
            ind = None
            nxt = act
            if pool:
                nxt, ind = F.max_pool2d(_planes(act), 2, return_indices=True)
                nxt = _unplanes(nxt, K)
            saved.append((x.shape, cols, z, act, invstd, ind))
            x = nxt
        C = x.shape[1]
        feat, gind = x.view(K, C, -1, B).max(dim=2)  # the global max pool: (K, C, B)
        loss, d = self._head_loss(feat)
        dfeat = torch.bmm(d, self.heads).transpose(1, 2)  # (K, C, B)
        dx = torch.zeros(K, C, x.shape[2] * x.shape[3], B, dtype=x.dtype, device=x.device)
        dx = dx.scatter_(2, gind[:, :, None], dfeat[:, :, None]).view(x.shape)
        for i in reversed(range(len(self.weights))):
            shape, cols, zhat, act, invstd, ind = saved[i]
            C = zhat.shape[1]
            if ind is not None:
                dx = _aten.max_pool2d_with_indices_backward(_planes(dx), _planes(act), [2, 2], [2, 2], [0, 0],
                                                            [1, 1], False, ind)
                dx = _unplanes(dx, K)
            dz = self._bn_relu_backward(dx.reshape(zhat.shape), act.view(zhat.shape), zhat, invstd)
            W = self.weights[i].view(K, C, -1)
            torch.bmm(dz, cols.transpose(1, 2), out=self.grads[i].view(K, C, -1))
            if i:
                dcols = torch.bmm(W.transpose(1, 2), dz, out=self._buf("dcols", cols.shape))
                dx = self._col2im(dcols, shape)
        return loss

    @torch.no_grad()
    def write_back(self, models) -> None:
        """Copy every run's weights into its model."""
        for k, m in enumerate(models):
            named = dict(m.named_parameters())
            for name, W in zip(self.arch.names, self.weights, strict=True):
                named[name].copy_(W[k])


# ------------------------------------------------------------------------------ steps and records
def _rowsums(net: _Batched, A, B, dims=2):
    """Sums of A * B over ``dims``, the product formed in a workspace tensor."""
    return torch.mul(A, B, out=net._buf("prod", A.shape)).sum(dim=dims)


def _channel_sums(net: _Batched, views):
    """Per (run, channel) ||θ_i||² and ||g_i||² in the weights' dtype (K x C), and <θ, g> per run (K,
    float64, summed over the layers in float64)."""
    w2 = torch.cat([_rowsums(net, W, W) for W, _ in views], dim=1)
    g2 = torch.cat([_rowsums(net, G, G) for _, G in views], dim=1)
    wg = sum(_rowsums(net, W, G, (1, 2)).double() for W, G in views)
    return w2, g2, wg


def _dot(net: _Batched, views_a, views_b):
    """<a, b> per run (K, float64) over every layer."""
    return sum(_rowsums(net, A, B, (1, 2)).double() for A, B in zip(views_a, views_b, strict=True))


def _col(values, dtype):
    """A float64 vector of K as a (K, 1, 1) tensor of ``dtype`` that broadcasts over a layer."""
    return values.to(dtype).view(-1, 1, 1)


class _SphereRun:
    """:class:`SphereSGD` (projected gradient, default settings) and :class:`RegimeMonitor` for K runs."""

    def __init__(self, net: _Batched, elrs, radius: float, steps_per_epoch: int):
        K, dev = net.K, net.arch.device
        self.rho = float(radius)
        self.elrs = elrs
        self.lr = torch.as_tensor(elrs, dtype=torch.float64, device=dev) * (self.rho * self.rho)
        # per step of the epoch, run-major so that each run's means are its own reductions: egn, cosine, angle
        self.per_step = torch.zeros(3, K, steps_per_epoch, dtype=torch.float64, device=dev)
        # sums over the epoch's steps of EGN_i, ESS_i and log(1 + ESS_i^2)
        self.chan = torch.zeros(3, K, net.arch.channels, dtype=torch.float64, device=dev)
        self.start = [w.clone() for w in net.weights]
        self.epochs = {k: [] for k in ("train_loss", "test_error", "eff_grad_norm", "step_cosine", "step_angle",
                                       "epoch_cosine", "channel_elr", "channel_egn", "channel_ess",
                                       "channel_log1p_ess2")}
        self.harmonic = torch.zeros(K, dtype=torch.float64, device=dev)

    @torch.no_grad()
    def step(self, net: _Batched, b: int) -> None:
        views = net.flat_views()
        w2c, g2c, gw = _channel_sums(net, views)
        w2d, g2d = w2c.double(), g2c.double()
        sq, g2 = w2d.sum(dim=1), g2d.sum(dim=1)
        lr = self.lr
        coef = gw / sq
        # θ - lr (g - coef θ) = (1 + lr coef)(θ - beta g): the same point after rescaling (SphereSGD.step)
        beta = lr / (1.0 + lr * coef)
        nbeta = _col(-beta, net.arch.dtype)
        for W, G in views:
            W.addcmul_(G, nbeta)
        new_sq = (sq - 2 * beta * gw + beta * beta * g2).clamp_min(1e-300)
        scale = _col(self.rho / new_sq.sqrt(), net.arch.dtype)
        for W, _ in views:
            W.mul_(scale)
        d_perp = (g2 - gw * gw / sq).clamp_min(0.0).sqrt()
        root = sq.sqrt()
        angle = torch.atan2(beta * d_perp, root - beta * gw / root)
        rec = self.per_step[:, :, b]
        rec[0] = (g2 * sq).sqrt()
        rec[1] = torch.cos(angle)
        rec[2] = angle
        egn = (w2d * g2d).sqrt()
        ess = egn * lr[:, None] / w2d
        self.chan[0] += egn
        self.chan[1] += ess
        self.chan[2] += torch.log1p(ess * ess)

    @torch.no_grad()
    def end_epoch(self, net: _Batched, steps: int, train_loss, test_error) -> None:
        ep = self.epochs
        ep["train_loss"].append(train_loss)
        ep["test_error"].append(test_error)
        means = self.per_step[:, :, :steps].mean(dim=2).cpu().numpy()
        ep["eff_grad_norm"].append(means[0])
        ep["step_cosine"].append(means[1])
        ep["step_angle"].append(means[2])
        views = [w.view(net.K, w.shape[1], -1) for w in net.weights]
        start = [s.view(net.K, s.shape[1], -1) for s in self.start]
        cos = _dot(net, start, views) / (_dot(net, start, start) * _dot(net, views, views)).sqrt()
        ep["epoch_cosine"].append(cos.clamp_max(1.0).cpu().numpy())
        w2 = torch.cat([_rowsums(net, W, W) for W in views], dim=1).double()
        ep["channel_elr"].append((self.lr[:, None] / w2).cpu().numpy())
        chan = (self.chan / steps).cpu().numpy()
        ep["channel_egn"].append(chan[0])
        ep["channel_ess"].append(chan[1])
        ep["channel_log1p_ess2"].append(chan[2])
        self.harmonic = torch.maximum(self.harmonic, (w2.sum(dim=1) / (self.rho * self.rho) - 1.0).abs())
        self.chan.zero_()
        for s, w in zip(self.start, net.weights, strict=True):
            s.copy_(w)

    def results(self, net: _Batched, seeds) -> list[TrainResult]:
        ep = {k: np.stack(v, axis=-1 if np.ndim(v[0]) == 1 else 1) for k, v in self.epochs.items()}
        flat = torch.cat([w.reshape(net.K, -1) for w in net.weights], dim=1).double().cpu().numpy()
        harmonic = self.harmonic.cpu().numpy()
        out = []
        for k, seed in enumerate(seeds):
            out.append(TrainResult(float(self.elrs[k]), int(seed), train_loss=ep["train_loss"][k],
                                   test_error=ep["test_error"][k], eff_grad_norm=ep["eff_grad_norm"][k],
                                   step_cosine=ep["step_cosine"][k], step_angle=ep["step_angle"][k],
                                   epoch_cosine=ep["epoch_cosine"][k], channel_elr=ep["channel_elr"][k],
                                   channel_egn=ep["channel_egn"][k], channel_ess=ep["channel_ess"][k],
                                   norm_drift=float(harmonic[k]), final_norm=float(np.linalg.norm(flat[k])),
                                   final_weights=flat[k].copy(), channel_log1p_ess2=ep["channel_log1p_ess2"][k]))
        return out


class _ConventionalRun:
    """``torch.optim.SGD`` (learning rate, weight decay, momentum) and :class:`ConventionalMonitor` for K runs."""

    def __init__(self, net: _Batched, lrs, weight_decays, momentum: float, steps_per_epoch: int, total_steps: int):
        K, dev = net.K, net.arch.device
        self.lrs, self.wds, self.momentum = lrs, weight_decays, float(momentum)
        self.lr = torch.as_tensor(lrs, dtype=torch.float64, device=dev)
        self.wd = torch.as_tensor(weight_decays, dtype=torch.float64, device=dev)
        self.decay = 1.0 - self.lr * self.wd
        self.buffers = None
        self.per_step = torch.zeros(2, K, steps_per_epoch, dtype=torch.float64, device=dev)  # total ELR, cosine
        self.total_elr = torch.zeros(total_steps, K, dtype=torch.float64, device=dev)
        self.chan = torch.zeros(2, K, net.arch.channels, dtype=torch.float64, device=dev)  # sums of ELR_i, ESS_i
        self.sum_log1p = torch.zeros(K, net.arch.channels, dtype=torch.float64, device=dev)
        self.log_w2_0 = None
        self.steps = 0
        self.epochs = {k: [] for k in ("train_loss", "test_error", "total_elr", "step_cosine", "channel_elr",
                                       "channel_ess")}

    @torch.no_grad()
    def step(self, net: _Batched, b: int) -> None:
        views = net.flat_views()
        w2c, g2c, _ = _channel_sums(net, views)
        w2d, g2d = w2c.double(), g2c.double()
        lr, decay = self.lr, self.decay
        # the monitor, before the step: channel ELR and ESS (derivation 11), the law's sums; with momentum
        # the ESS is the tangent of each channel's turn, measured after the step
        elr_c = lr[:, None] / (decay[:, None] * w2d)
        if self.log_w2_0 is None:
            self.log_w2_0 = w2d.log()
        self.chan[0] += elr_c
        if not self.momentum:
            ess = elr_c * (g2d * w2d).sqrt()
            self.sum_log1p += torch.log1p(ess * ess)
            self.chan[1] += ess
        else:
            before = [W.clone() for W, _ in views]
        sq = w2d.sum(dim=1)
        self.total_elr[self.steps] = lr / (decay * sq)
        self.per_step[0, :, b] = self.total_elr[self.steps]
        # torch.optim.SGD: d = g + λθ; with momentum v <- μ v + d (v = d at the first step); θ <- θ - η v
        dtype = net.arch.dtype
        if bool((self.wd != 0).any()):
            wd = _col(self.wd, dtype)
            for W, G in views:
                G.addcmul_(W, wd)
        if self.momentum:
            if self.buffers is None:
                self.buffers = [G.clone() for _, G in views]
            else:
                for v, (_, G) in zip(self.buffers, views, strict=True):
                    v.mul_(self.momentum).add_(G)
            dirs = self.buffers
        else:
            dirs = [G for _, G in views]
        wd_dot = _dot(net, [W for W, _ in views], dirs)
        dd = _dot(net, dirs, dirs)
        nlr = _col(-lr, dtype)
        for (W, _), d in zip(views, dirs, strict=True):
            W.addcmul_(d, nlr)
        if self.momentum:
            dot = torch.cat([_rowsums(net, B, W) for B, (W, _) in zip(before, views, strict=True)], dim=1).double()
            n2 = torch.cat([_rowsums(net, W, W) for W, _ in views], dim=1).double()
            ess2 = ((w2d * n2 - dot * dot).clamp_min(0.0)) / (dot * dot)
            self.sum_log1p += torch.log1p(ess2)
            self.chan[1] += ess2.sqrt()
        # cos(θ, θ - η d) from the Gram entries
        new_sq = (sq - 2 * lr * wd_dot + lr * lr * dd).clamp_min(0.0)
        self.per_step[1, :, b] = ((sq - lr * wd_dot) / (sq * new_sq).sqrt()).clamp_max(1.0)
        self.steps += 1

    @torch.no_grad()
    def end_epoch(self, net: _Batched, steps: int, train_loss, test_error) -> None:
        ep = self.epochs
        ep["train_loss"].append(train_loss)
        ep["test_error"].append(test_error)
        means = self.per_step[:, :, :steps].mean(dim=2).cpu().numpy()
        ep["total_elr"].append(means[0])
        ep["step_cosine"].append(means[1])
        chan = (self.chan / steps).cpu().numpy()
        ep["channel_elr"].append(chan[0])
        ep["channel_ess"].append(chan[1])
        self.chan.zero_()

    def results(self, net: _Batched, seeds) -> list[ConventionalResult]:
        ep = {k: np.stack(v, axis=-1 if np.ndim(v[0]) == 1 else 1) for k, v in self.epochs.items()}
        views = [w.view(net.K, w.shape[1], -1) for w in net.weights]
        w2 = torch.cat([_rowsums(net, W, W) for W in views], dim=1).double()
        boundary = ((w2.log() - self.log_w2_0) / self.steps).cpu().numpy()
        mean_log1p = (self.sum_log1p / self.steps).cpu().numpy()
        total_elr = self.total_elr[:self.steps].t().cpu().numpy()
        flat = torch.cat([w.reshape(net.K, -1) for w in net.weights], dim=1).double().cpu().numpy()
        out = []
        for k, seed in enumerate(seeds):
            lr, wd = float(self.lrs[k]), float(self.wds[k])
            out.append(ConventionalResult(lr, wd, int(seed), ep["train_loss"][k], ep["test_error"][k],
                                          ep["total_elr"][k], ep["step_cosine"][k], total_elr[k].copy(),
                                          ep["channel_elr"][k], ep["channel_ess"][k], mean_log1p[k], boundary[k],
                                          -2.0 * math.log(1.0 - lr * wd), flat[k].copy(), self.momentum))
        return out


# ------------------------------------------------------------------------------ memory
class EnsembleMemory(NamedTuple):
    """Bytes an ensemble of ``runs`` runs needs beyond the caller's data and models: ``parameters``
    (weights, gradients, the epoch's starting point, momentum buffers and the step's temporaries),
    ``batch`` (the activations of one mini-batch of every run, forward and backward),
    ``evaluation`` (one evaluation chunk of one run; the runs are evaluated one after the other),
    ``records``, and ``data`` (the copy of the training sets stacked when the runs have more than
    one); ``total`` is their sum. ``parameters``, ``batch`` and ``records`` grow linearly in the
    runs, so a caller can split an ensemble."""

    runs: int
    parameters: int
    batch: int
    evaluation: int
    records: int
    data: int = 0

    @property
    def total(self) -> int:
        return self.parameters + self.batch + self.evaluation + self.records + self.data


def _layers(arch: _Arch, example_shape) -> list[tuple[int, int, int]]:
    """Per layer and example: the entries of its input, of its output, and of its pooled output (0
    without pooling)."""
    if arch.kind == "mlp":
        return [(s[1], s[0], 0) for s in arch.shapes]
    h, w = example_shape[1:]
    out = []
    for shape, pool in zip(arch.shapes, arch.pool_after, strict=True):
        size = shape[0] * h * w
        if pool:
            h, w = h // 2, w // 2
        out.append((shape[1] * (size // shape[0]), size, shape[0] * h * w if pool else 0))
    return out


def _train_entries(arch: _Arch, example_shape) -> int:
    """Entries per example of a mini-batch's forward and backward pass: the input; per layer what the
    backward pass keeps (the unfolded input of a convolution, BatchNorm's input and output, the
    pooled output and its int64 indices as two entries each); the largest layer's backward
    temporaries (the unfolded gradient, three of its output's size)."""
    conv = arch.kind == "convnet"
    kept = sum(9 * i * conv + 2 * o + 3 * p for i, o, p in _layers(arch, example_shape))
    temp = max(9 * i * conv + 2 * i + 3 * o for i, o, _ in _layers(arch, example_shape))
    return math.prod(example_shape) + kept + temp


def _eval_chunk_bytes(arch: _Arch, example_shape) -> int:
    """One evaluation chunk of one run: the largest layer's input, output and BatchNorm output."""
    item = torch.empty((), dtype=arch.dtype).element_size()
    return EVAL_BATCH * max(i + 2 * o for i, o, _ in _layers(arch, example_shape)) * item


def ensemble_memory(model: nn.Module, runs: int, batch_size: int, epochs: int, example_shape, n_train: int, *,
                    conventional: bool = False, momentum: bool = False, train_sets: int = 1) -> EnsembleMemory:
    """The memory of an ensemble of ``runs`` copies of ``model`` (an MLPSI or ConvNetSI in its dtype)
    trained for ``epochs`` on ``n_train`` examples of shape ``example_shape`` in mini-batches of
    ``batch_size``, so that a caller can split the runs or refuse (the training functions refuse
    an ensemble that exceeds the available memory).

    Notes
    -----
    For K runs of P trained weights and C channels, s bytes per entry, mini-batches of B examples
    of D entries, layer l taking i_l and giving o_l entries per example (p_l after pooling):

    * parameters = K P s (6 + momentum): weights, gradients, the epoch's starting point and the
      step's products (one more copy for the momentum buffer);
    * batch = K B s (D + sum_l (9 i_l [conv] + 2 o_l + 3 p_l) + max_l (9 i_l [conv] + 2 i_l + 3 o_l)):
      what the backward pass keeps, and the largest layer's backward temporaries;
    * evaluation = s ``EVAL_BATCH`` max_l (i_l + 2 o_l): one run's chunk, as for one run;
    * records = 8 K (E (6 + 3 C) + 3 S / E) bytes for E epochs of S steps in all, plus 8 K S for
      conventional training's total ELR per step;
    * data = U N D s + 8 U N for U > 1 distinct training sets of N examples (``train_sets``: runs
      given the same tensors share one), stacked once; none for one set.

    Measured against the peak resident memory of ensembles of MLPs and ConvNets on digits and
    Fashion-MNIST subsets, the estimate was within a factor 1.5 either way.
    """
    arch = _arch(model)
    runs = _count(runs, "runs")
    example_shape = tuple(int(s) for s in example_shape)
    item = torch.empty((), dtype=arch.dtype).element_size()
    steps = (int(n_train) // int(batch_size)) * int(epochs)
    records = 8 * runs * (epochs * (6 + 3 * arch.channels) + 3 * steps // max(epochs, 1))
    if conventional:
        records += 8 * runs * steps
    sets = _count(train_sets, "train_sets")
    data = sets * int(n_train) * (math.prod(example_shape) * item + 8) if sets > 1 else 0
    return EnsembleMemory(runs, runs * arch.n_params * item * (6 + bool(momentum)),
                          runs * int(batch_size) * _train_entries(arch, example_shape) * item,
                          _eval_chunk_bytes(arch, example_shape), records, data)


# ------------------------------------------------------------------------------ validation
def _count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _per_run(values, K: int, name: str, *, allow_zero: bool = False) -> np.ndarray:
    """K floats (a scalar is repeated), positive (or >= 0) and finite."""
    try:
        arr = np.array(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or one number per run, got {values!r}") from None
    if arr.ndim == 0:
        arr = np.full(K, float(arr))
    if arr.shape != (K,):
        raise ValueError(f"{name} must be a number or {K} numbers (one per run), got shape {arr.shape}")
    bad = ~np.isfinite(arr) | ((arr < 0) if allow_zero else (arr <= 0))
    if bad.any():
        sign = ">= 0" if allow_zero else "positive"
        raise ValueError(f"{name} must be {sign} and finite, got {float(arr[bad][0])!r}")
    return arr


def _check_models(models) -> tuple[list, _Arch]:
    try:
        models = list(models)
    except TypeError:
        raise ValueError(f"models must be a sequence of MLPSI or ConvNetSI, got {type(models).__name__}") from None
    if not models:
        raise ValueError("models must not be empty")
    if len({id(m) for m in models}) != len(models):
        raise ValueError("models must be distinct objects (each run trains its own model)")
    arch = _arch(models[0])
    for m in models[1:]:
        other = _arch(m)
        if other != arch:
            raise ValueError(f"models must share one architecture, dtype and device: {type(m).__name__} with "
                             f"weights {other.shapes} ({other.dtype}, {other.device}) against {arch.shapes} "
                             f"({arch.dtype}, {arch.device})")
    return models, arch


def _check_seeds(seeds, K: int) -> list[int]:
    try:
        seeds = list(seeds)
    except TypeError:
        raise ValueError(f"seeds must be one non-negative integer per run, got {seeds!r}") from None
    if len(seeds) != K:
        raise ValueError(f"seeds must be one non-negative integer per run ({K}), got {len(seeds)}")
    return [_count(s, "seeds", 0) for s in seeds]


def _eval_set(eval_epochs, epochs: int) -> set:
    """The epochs (0-based) after which the runs are evaluated; the last always is."""
    if eval_epochs is None:
        return set(range(epochs))
    if isinstance(eval_epochs, numbers.Integral) and not isinstance(eval_epochs, bool):
        every = _count(eval_epochs, "eval_epochs")
        chosen = set(range(every - 1, epochs, every))
    else:
        try:
            chosen = {_count(e, "eval_epochs", 0) for e in eval_epochs}
        except TypeError:
            raise ValueError(f"eval_epochs must be None, a positive integer or epoch indices, got {eval_epochs!r}") \
                from None
        if any(e >= epochs for e in chosen):
            raise ValueError(f"eval_epochs must be epoch indices below {epochs}, got {max(chosen)}")
    return chosen | {epochs - 1}


def _setup(models, tensors, seeds, epochs, batch_size, eval_epochs, conventional, momentum):
    models, arch = _check_models(models)
    K = len(models)
    seeds = _check_seeds(seeds, K)
    epochs = _count(epochs, "epochs")
    data = _Data(tensors, K, arch)
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or not 2 <= batch_size <= data.n:
        raise ValueError(f"batch_size must be an integer from 2 to the training set size {data.n}, got {batch_size!r}")
    batch_size = int(batch_size)
    evals = _eval_set(eval_epochs, epochs)
    mem = ensemble_memory(models[0], K, batch_size, epochs, data.example_shape, data.n, conventional=conventional,
                          momentum=momentum, train_sets=data.sets)
    check_memory(mem.total, f"an ensemble of {K} runs")
    data.stack()
    return models, arch, K, seeds, epochs, data, batch_size, evals


def _example(data: _Data, k: int):
    X = data.per_run[k][0]
    return X[:min(len(X), 256)]


def _check_invariance(model, example, arch: _Arch) -> None:
    """The numerical check of :func:`find_scale_invariant` on one model. Every layer weight of an
    MLPSI or ConvNetSI feeds a BatchNorm without affine parameters (``_arch`` checks the structure of
    every model), so the weights the one-run functions find are these layers', in this order; the
    check on the first model guards the premise (the other models share its architecture)."""
    model.train()
    bad = [c for c in scale_invariance_report(model, example, arch.names) if not c.invariant]
    if bad:
        raise ValueError("models: not scale-invariant: " + ", ".join(
            f"{c.name} (output changes by {c.deviation:.2g} > {c.tolerance:.2g})" for c in bad))


def _freeze_others(model, arch: _Arch) -> None:
    model.train()
    for n, p in model.named_parameters():
        p.requires_grad_(n in arch.names)


# ------------------------------------------------------------------------------ the loop
def _loop(net: _Batched, run, models, data: _Data, seeds, epochs: int, batch_size: int, evals, on_step, progress):
    """Mini-batches without replacement (each run's order from its stream ``BATCH_ORDER``), a step
    of every run, and after the epochs in ``evals`` each run's evaluation (NaN records otherwise)."""
    K = net.K
    rngs = [_streams.rng(s, _streams.BATCH_ORDER) for s in seeds]
    X_rows, y_rows = data.rows()
    nb = data.n // batch_size
    nan = np.full(K, np.nan)
    t = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc=f"ensemble of {K}", unit="epoch")
    try:
        for epoch in range(epochs):
            perm = torch.from_numpy(np.stack([r.permutation(data.n) for r in rngs])).to(X_rows.device)
            rows_all = perm[:, :nb * batch_size] + data.offsets
            for b in range(nb):
                rows = rows_all[:, b * batch_size:(b + 1) * batch_size]
                loss = net.loss_and_grad(X_rows, y_rows, rows)
                run.step(net, b)
                if on_step is not None:
                    on_step(t, loss.double().cpu().numpy())
                t += 1
            if epoch in evals:
                tr, te = _evaluate(net, models, data)
            else:
                tr, te = nan, nan
            run.end_epoch(net, nb, tr, te)
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()


def _evaluate(net: _Batched, models, data: _Data):
    """Every run's train loss and test error, by :func:`evaluate` on its own model with the run's
    current weights: exactly the one-run evaluation (the BatchNorm statistics of the training set
    stay set in the model). Evaluating the runs together would gain nothing: a chunk of
    ``EVAL_BATCH`` examples already keeps the kernels busy (measured: as fast or faster one run at
    a time, for both models and both data sets)."""
    net.write_back(models)
    train_loss, test_error = np.empty(net.K), np.empty(net.K)
    for k, m in enumerate(models):
        Xtr, ytr, Xte, yte = data.per_run[k]
        (tr, _), (_, te) = evaluate(m, [(Xtr, ytr), (Xte, yte)], Xtr)
        train_loss[k] = tr if math.isfinite(tr) else math.inf
        test_error[k] = te
    return train_loss, test_error


# ------------------------------------------------------------------------------ public
def train_ensemble_on_sphere(models, tensors, elrs, epochs: int, batch_size: int, *, seeds, radius: float = 1.0,
                             eval_epochs=None, on_step=None, progress: bool = False) -> list[TrainResult]:
    """Train K runs of one network on the sphere at fixed total ELRs as one batched computation.

    Run k is what ``train_on_sphere(models[k], tensors_k, elrs[k], epochs, batch_size,
    seed=seeds[k], radius=radius)`` does and returns: its model's scale-invariant weights found
    and put on the sphere by :meth:`SphereSGD.for_model`, mini-batches in the order of stream
    ``BATCH_ORDER`` of its seed, the projected sphere step, :class:`RegimeMonitor`'s records and
    :func:`evaluate` after every epoch. Each model is left trained, with the BatchNorm statistics
    of the last evaluation, as the one-run function leaves it.

    Parameters
    ----------
    models : sequence of K MLPSI or ConvNetSI
        Distinct models of one architecture, dtype and device, each initialised for its run.
    tensors : (X_train, y_train, X_test, y_test), or K such tuples
        Shared by every run, or one per run (e.g. the digits split by each seed): training sets of
        one shape, in the models' dtype and device. Runs given the same tensors share them; distinct
        training sets are stacked into one copy (see :func:`ensemble_memory`).
    elrs : float or K floats
        Total ELR of each run.
    epochs, batch_size : int
        As for :func:`train_on_sphere`.
    seeds : K non-negative ints
        Each run's seed (its batch order).
    radius : float
        The sphere's radius, as for :func:`train_on_sphere`.
    eval_epochs : None, int or epoch indices
        When to evaluate: after every epoch (None, the one-run behaviour), after every n-th epoch
        (an int n), or after the given epochs (0-based); always after the last. Epochs not
        evaluated record NaN train loss and test error.
    on_step : callable, optional
        Called after every step with the step's index and the K mini-batch losses (float64).
    progress : bool
        Show a progress bar over the epochs.

    Returns
    -------
    list of K TrainResult
    """
    models, arch, K, seeds, epochs, data, batch_size, evals = _setup(
        models, tensors, seeds, epochs, batch_size, eval_epochs, False, False)
    elrs = _per_run(elrs, K, "elrs")
    radius = float(_per_run(radius, 1, "radius")[0])
    _check_invariance(models[0], _example(data, 0), arch)
    for k, m in enumerate(models):
        # what train_on_sphere does with SphereSGD.for_model: freeze all but the scale-invariant
        # weights and rescale these onto the sphere (the optimizer's constructor, so the same numbers)
        _freeze_others(m, arch)
        SphereSGD([dict(m.named_parameters())[n] for n in arch.names], float(elrs[k]), radius=radius)
    net = _Batched.from_models(arch, models)
    run = _SphereRun(net, elrs, radius, data.n // batch_size)
    _loop(net, run, models, data, seeds, epochs, batch_size, evals, on_step, progress)
    net.write_back(models)
    return run.results(net, seeds)


def train_ensemble_conventional(models, tensors, lrs, weight_decays, epochs: int, batch_size: int, *, seeds,
                                momentum: float = 0.0, eval_epochs=None, on_step=None, progress: bool = False
                                ) -> list[ConventionalResult]:
    """Train K runs of one network conventionally (SGD with weight decay) as one batched computation.

    Run k is what ``train_conventional(models[k], tensors_k, lrs[k], weight_decays[k], epochs,
    batch_size, seed=seeds[k])`` does and returns, with ``torch.optim.SGD(momentum=momentum)``
    (PyTorch's convention: v ← μ v + ∇F + λθ, θ ← θ - η v; no dampening, no Nesterov; μ = 0 is
    plain SGD): the scale-invariant weights found by :func:`find_scale_invariant` (the others
    frozen), :class:`ConventionalMonitor`'s records. With momentum the monitor's channel ELR and
    ESS keep their plain-SGD definitions (derivation 11), as :class:`ConventionalMonitor` on such
    an optimizer would report them; the law of derivation 12 is for μ = 0.

    ``lrs`` and ``weight_decays`` are numbers or one per run, with lr·weight_decay < 1;
    ``momentum`` in [0, 1). Every other parameter is as for :func:`train_ensemble_on_sphere`.
    Returns a list of K :class:`~toymodel.netrecords.ConventionalResult`.
    """
    mom = float(momentum) if isinstance(momentum, numbers.Real) and not isinstance(momentum, bool) else math.nan
    if not 0.0 <= mom < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    models, arch, K, seeds, epochs, data, batch_size, evals = _setup(
        models, tensors, seeds, epochs, batch_size, eval_epochs, True, mom > 0)
    lrs = _per_run(lrs, K, "lrs")
    wds = _per_run(weight_decays, K, "weight_decays", allow_zero=True)
    bad = lrs * wds >= 1
    if bad.any():
        raise ValueError(f"lrs * weight_decays must be below 1, got {float((lrs * wds)[bad][0])!r}")
    _check_invariance(models[0], _example(data, 0), arch)
    for m in models:
        _freeze_others(m, arch)  # what train_conventional does after find_scale_invariant
    net = _Batched.from_models(arch, models)
    steps = data.n // batch_size
    run = _ConventionalRun(net, lrs, wds, mom, steps, steps * epochs)
    _loop(net, run, models, data, seeds, epochs, batch_size, evals, on_step, progress)
    net.write_back(models)
    return run.results(net, seeds)
