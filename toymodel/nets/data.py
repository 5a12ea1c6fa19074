"""Data for the network experiments: scikit-learn's digits (bundled, nothing is downloaded) or
any classification set in an ``.npz`` file. NumPy only; the models get tensors later."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import _streams

__all__ = ["Data", "load_digits_split", "load_npz", "load_data", "SKLEARN_HINT"]

SKLEARN_HINT = "the digits data need scikit-learn: pip install 'toymodel[torch]'"


class Data(NamedTuple):
    """A standardised classification set: inputs ``X_*`` as float64 arrays (images N x C x H x W,
    or flat N x D), labels ``y_*`` as int64 in ``0 .. n_classes - 1``, and where it came from
    (``source``: ``"digits"`` or the file's SHA-256, part of the bridge's cache key)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    source: str

    @property
    def is_image(self) -> bool:
        return self.X_train.ndim == 4

    @property
    def input_shape(self) -> tuple:
        return tuple(self.X_train.shape[1:])


def _standardise(X_train, X_test, axes):
    """Subtract the training mean and divide by the training std over ``axes`` (constant
    features, such as the always-blank border pixels of the digits, stay 0)."""
    mu = X_train.mean(axis=axes, keepdims=True)
    sd = X_train.std(axis=axes, keepdims=True)
    sd[sd == 0] = 1.0
    return (X_train - mu) / sd, (X_test - mu) / sd


def load_digits_split(seed: int, test_fraction: float = 0.2) -> Data:
    """scikit-learn's 8x8 digits as 1 x 8 x 8 images, split by ``seed`` (stream ``DATA_SPLIT``)
    and standardised per pixel with the training statistics."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ValueError(SKLEARN_HINT) from None
    if not 0 < float(test_fraction) < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    d = load_digits()
    X = d.data.astype(float)
    y = d.target.astype(np.int64)
    perm = _streams.rng(seed, _streams.DATA_SPLIT).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, tr = perm[:n_test], perm[n_test:]
    Xtr, Xte = _standardise(X[tr], X[test], axes=0)
    return Data(Xtr.reshape(-1, 1, 8, 8), y[tr], Xte.reshape(-1, 1, 8, 8), y[test], 10, "digits")


def load_npz(path) -> Data:
    """A classification set from an ``.npz`` file with ``X_train``, ``y_train``, ``X_test`` and
    ``y_test``.

    Inputs are images N x C x H x W (standardised per channel) or flat N x D (per feature), of any
    real or integer dtype (uint8 CIFAR-10 works); labels are integers from 0. The file's split is
    used as it is (seeds then change only the initialisation and the batch order).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data file not found: {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in ("X_train", "y_train", "X_test", "y_test") if k in f.files}
    except (OSError, EOFError, ValueError) as e:  # not an npz, truncated, pickled objects...
        raise ValueError(f"cannot read data file {path}: {e}") from None
    missing = [k for k in ("X_train", "y_train", "X_test", "y_test") if k not in arrays]
    if missing:
        raise ValueError(f"data file {path} lacks {', '.join(missing)} (it needs X_train, y_train, X_test, y_test)")
    Xtr, ytr, Xte, yte = (arrays[k] for k in ("X_train", "y_train", "X_test", "y_test"))
    for name, X in (("X_train", Xtr), ("X_test", Xte)):
        if X.ndim not in (2, 4) or X.shape[0] == 0 or not np.issubdtype(X.dtype, np.number):
            raise ValueError(f"{name} must be a non-empty numeric array N x D or N x C x H x W, got shape "
                             f"{X.shape} of {X.dtype}")
    if Xtr.shape[1:] != Xte.shape[1:]:
        raise ValueError(f"X_train and X_test must have the same example shape, got {Xtr.shape[1:]} and "
                         f"{Xte.shape[1:]}")
    for name, y, X in (("y_train", ytr, Xtr), ("y_test", yte, Xte)):
        if y.shape != (X.shape[0],) or not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
            raise ValueError(f"{name} must hold one non-negative integer label per example, got shape {y.shape} "
                             f"of {y.dtype}")
    Xtr, Xte = Xtr.astype(float), Xte.astype(float)
    if not (np.isfinite(Xtr).all() and np.isfinite(Xte).all()):
        raise ValueError(f"data file {path} has non-finite inputs")
    n_classes = int(max(ytr.max(), yte.max())) + 1
    if n_classes < 2:
        raise ValueError(f"data file {path} has a single class")
    Xtr, Xte = _standardise(Xtr, Xte, axes=(0, 2, 3) if Xtr.ndim == 4 else 0)
    return Data(Xtr, ytr.astype(np.int64), Xte, yte.astype(np.int64), n_classes, f"sha256:{digest}")


def load_data(seed: int, data=None) -> Data:
    """``load_npz(data)`` when a file is given (the same for every seed), else the digits split by
    ``seed``."""
    return load_digits_split(seed) if data is None else load_npz(data)
