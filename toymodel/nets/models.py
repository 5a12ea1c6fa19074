"""Fully scale-invariant models, written as ordinary ``nn.Module``\\ s a user could have written.

In both, every trained weight tensor feeds a BatchNorm without affine parameters, so the output
is invariant to rescaling any output channel of any of them; the output layer is a fixed random
linear map of a set norm (it bounds the logits, hence how low the cross-entropy can go), frozen
with ``requires_grad_(False)``. BatchNorm's ``eps`` is 1e-12: PyTorch refuses 0 in training, and
against the channel variances met here (1e-6 and up) it changes the output by about
eps/variance, below float32 rounding and, for all but the smallest channels, float64's.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLPSI", "ConvNetSI", "BN_EPS"]

#: BatchNorm epsilon of the models (see the module's notes)
BN_EPS = 1e-12


def _fixed_head(n_in: int, n_out: int, out_norm: float) -> nn.Linear:
    if not (out_norm > 0 and out_norm < float("inf")):
        raise ValueError(f"out_norm must be positive and finite, got {out_norm!r}")
    head = nn.Linear(n_in, n_out, bias=False)
    with torch.no_grad():
        nn.init.normal_(head.weight)
        head.weight.mul_(out_norm / head.weight.norm())
    head.requires_grad_(False)
    return head


class MLPSI(nn.Module):
    """The bridge's MLP: hidden layers Linear (no bias) -> BatchNorm1d (no affine) -> ReLU, then a
    fixed random output layer of Frobenius norm ``out_norm``.

    Images are flattened. Hidden weights start Gaussian (i.i.d. N(0, 1); the sphere's radius is
    the optimizer's business).

    Parameters
    ----------
    sizes : sequence of int, optional
        ``(d_in, h_1, ..., h_L, n_classes)``: at least three entries, all >= 1 (default
        ``(64, 64, 64, 10)``).
    out_norm : float, optional
        The Frobenius norm of the fixed output layer, positive and finite (default 10).

    Raises
    ------
    ValueError
        If ``sizes`` or ``out_norm`` is not valid.
    """

    def __init__(self, sizes=(64, 64, 64, 10), out_norm: float = 10.0):
        super().__init__()
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 3 or min(sizes) < 1:
            raise ValueError(f"sizes must be (d_in, hidden..., n_classes) with positive entries, got {sizes}")
        self.sizes = sizes
        layers = []
        for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):
            lin = nn.Linear(a, b, bias=False)
            nn.init.normal_(lin.weight)
            layers += [lin, nn.BatchNorm1d(b, affine=False, eps=BN_EPS), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = _fixed_head(sizes[-2], sizes[-1], out_norm)

    def forward(self, x):
        """The logits.

        Parameters
        ----------
        x : torch.Tensor, shape (N, ...)
            Inputs of ``d_in`` entries each, flattened to (N, d_in).

        Returns
        -------
        torch.Tensor, shape (N, n_classes)
        """
        return self.head(self.body(x.flatten(1)))


class ConvNetSI(nn.Module):
    """The paper's ConvNet family (its ``ConvNetSI``, depth 3) scaled to small images.

    Four blocks conv 3x3 (no bias) -> BatchNorm2d (no affine) -> ReLU with ``width``, 2, 4 and 8
    times ``width`` channels, max-pooling by 2 after the last three (8x8 -> 1x1), a global max
    pool, and a fixed random output layer of norm ``out_norm``. On 32x32 images (CIFAR-10, with
    ``width=64`` and ``in_channels=3``) it is the paper's network up to the frozen head's bias.

    Parameters
    ----------
    in_channels : int, optional
        The images' channels (default 1).
    width : int, optional
        The first block's channels (default 8).
    n_classes : int, optional
        Default 10.
    out_norm : float, optional
        The Frobenius norm of the fixed output layer, positive and finite (default 10).

    Raises
    ------
    ValueError
        If ``in_channels``, ``width`` or ``n_classes`` is below 1, or ``out_norm`` is not valid.
    """

    def __init__(self, in_channels: int = 1, width: int = 8, n_classes: int = 10, out_norm: float = 10.0):
        super().__init__()
        if min(int(in_channels), int(width), int(n_classes)) < 1:
            raise ValueError("in_channels, width and n_classes must be positive")
        c = int(width)
        chans = [int(in_channels), c, 2 * c, 4 * c, 8 * c]
        layers = []
        for i in range(4):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=False),
                       nn.BatchNorm2d(chans[i + 1], affine=False, eps=BN_EPS), nn.ReLU()]
            if i > 0:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = _fixed_head(8 * c, int(n_classes), out_norm)

    def forward(self, x):
        """The logits.

        Parameters
        ----------
        x : torch.Tensor, shape (N, in_channels, H, W)
            Images (H, W >= 8: three poolings by 2).

        Returns
        -------
        torch.Tensor, shape (N, n_classes)
        """
        return self.head(self.pool(self.features(x)).flatten(1))
