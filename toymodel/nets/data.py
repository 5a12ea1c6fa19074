"""Data for the network experiments: scikit-learn's digits (bundled, nothing is downloaded), any
classification set in an ``.npz`` file, or a folder of IDX files (MNIST, Fashion-MNIST, KMNIST),
found by name for the sets a system package installs. NumPy only; the models get tensors later."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .. import _streams

__all__ = ["Data", "load_digits_split", "load_npz", "load_idx", "read_idx", "load_data", "resolve_data",
           "train_subset", "SKLEARN_HINT", "IDX_FILES", "NAMED_DATASETS", "DATA_ENV", "SYSTEM_DATA_DIR"]

SKLEARN_HINT = "the digits data need scikit-learn: pip install 'toymodel[torch]'"

#: the four files of an IDX set, each plain or gzipped (``.gz``): (role, file name, dimensions)
IDX_FILES = (("train images", "train-images-idx3-ubyte", 3), ("train labels", "train-labels-idx1-ubyte", 1),
             ("test images", "t10k-images-idx3-ubyte", 3), ("test labels", "t10k-labels-idx1-ubyte", 1))
#: the IDX type code of unsigned bytes, the only one these sets use
_IDX_UBYTE = 0x08
#: data sets known by name: the Debian package that installs each under :data:`SYSTEM_DATA_DIR`
NAMED_DATASETS = {"fashion-mnist": "dataset-fashion-mnist"}
#: the environment variable naming a folder with one sub-folder per named set (searched first)
DATA_ENV = "TOYMODEL_DATA"
#: where the Debian dataset packages install (searched after ``$TOYMODEL_DATA``)
SYSTEM_DATA_DIR = Path("/usr/share/datasets")


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


def _idx_bytes(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as e:  # not gzip, truncated stream, corrupt data
        raise ValueError(f"{path}: cannot decompress: {e}") from None


def read_idx(path, ndim: int) -> np.ndarray:
    """The unsigned-byte array of one IDX file (plain or ``.gz``) of ``ndim`` dimensions.

    The header is checked: the magic number (two zero bytes, the type code 0x08 for unsigned bytes,
    the number of dimensions), then the file's length against the sizes it announces (a truncated
    file or trailing bytes). Anything else is a ``ValueError`` naming the file and what is wrong.
    """
    path = Path(path)
    raw = _idx_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file: {len(raw)} bytes, shorter than the 4-byte magic number")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: bad magic number 0x{raw[:4].hex()}: an IDX file starts with two zero bytes")
    if raw[2] != _IDX_UBYTE:
        raise ValueError(f"{path}: type code 0x{raw[2]:02x} in the magic number, expected 0x08 (unsigned bytes)")
    if raw[3] != ndim:
        raise ValueError(f"{path}: {raw[3]} dimensions in the magic number, expected {ndim} "
                         f"({'images N x rows x columns' if ndim == 3 else 'labels N'})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated: {len(raw)} bytes, shorter than its {header}-byte header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "trailing bytes"
        raise ValueError(f"{path}: {what}: the header announces {' x '.join(map(str, dims))} = {expected} bytes "
                         f"of data, the file has {got}")
    if dims[0] == 0:
        raise ValueError(f"{path}: no examples (the header announces 0)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _idx_path(folder: Path, name: str) -> Path:
    for p in (folder / name, folder / f"{name}.gz"):
        if p.is_file():
            return p
    raise ValueError(f"IDX file missing: {folder / name} (or {name}.gz)")


def load_idx(folder) -> Data:
    """A classification set from a folder of IDX files (MNIST, Fashion-MNIST, KMNIST format).

    The folder holds :data:`IDX_FILES` (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``), each plain or gzipped (the plain file
    is read when both exist). Images become N x 1 x rows x columns, standardised with the training
    set's mean and standard deviation (one channel, as :func:`load_npz` does for images); labels
    int64 from 0, ``n_classes`` the largest training label plus one. The files' split is used as it
    is. ``source`` is the SHA-256 of the four files' decompressed contents (the same for the plain
    and the gzipped set). Every check of :func:`read_idx`, and images and labels that disagree in
    count, images of different sizes, or test labels outside the training labels' range, is a
    ``ValueError`` naming the file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"IDX data folder not found: {folder}")
    paths = [_idx_path(folder, name) for _, name, _ in IDX_FILES]
    digest = hashlib.sha256()
    arrays = []
    for path, (_, name, ndim) in zip(paths, IDX_FILES, strict=True):
        a = read_idx(path, ndim)
        digest.update(f"{name}:{a.shape}".encode())
        digest.update(a.tobytes())
        arrays.append(a)
    Xtr, ytr, Xte, yte = arrays
    for (Xp, X), (yp, y) in (((paths[0], Xtr), (paths[1], ytr)), ((paths[2], Xte), (paths[3], yte))):
        if len(X) != len(y):
            raise ValueError(f"{Xp} has {len(X)} images but {yp} has {len(y)} labels")
    if Xtr.shape[1:] != Xte.shape[1:]:
        raise ValueError(f"{paths[2]}: images of {Xte.shape[1]} x {Xte.shape[2]}, the training images "
                         f"({paths[0]}) are {Xtr.shape[1]} x {Xtr.shape[2]}")
    n_classes = int(ytr.max()) + 1
    if n_classes < 2:
        raise ValueError(f"{paths[1]}: a single class (every label is 0)")
    if int(yte.max()) >= n_classes:
        raise ValueError(f"{paths[3]}: label {int(yte.max())} outside the training labels' range 0..{n_classes - 1}")
    # the training mean and standard deviation from the 256-bin histogram (exact sums), applied as a
    # table of the 256 standardised values: the same numbers as _standardise, without the
    # temporaries of a 60000-image float64 array
    hist = np.bincount(Xtr.reshape(-1), minlength=256).astype(float)
    values = np.arange(256.0)
    mu = hist @ values / hist.sum()
    sd = np.sqrt(hist @ (values - mu) ** 2 / hist.sum())
    table = (values - mu) / (sd if sd > 0 else 1.0)
    return Data(table[Xtr[:, None]], ytr.astype(np.int64), table[Xte[:, None]], yte.astype(np.int64), n_classes,
                f"idx-sha256:{digest.hexdigest()}")


def _named_folder(name: str) -> Path:
    """The folder of a named data set: ``$TOYMODEL_DATA/<name>``, then ``SYSTEM_DATA_DIR/<name>``."""
    tried = []
    env = os.environ.get(DATA_ENV)
    if env:
        tried.append(Path(env) / name)
    tried.append(SYSTEM_DATA_DIR / name)
    for folder in tried:
        if folder.is_dir():
            return folder
    package = NAMED_DATASETS[name]
    raise ValueError(f"data set {name} not found (looked in {', '.join(str(t) for t in tried)}): install the Debian "
                     f"package {package} (sudo apt-get install {package}) or put its IDX files in "
                     f"${DATA_ENV}/{name}")


def resolve_data(data) -> str | None:
    """Where the data of a ``--data`` value are, without reading them: ``None`` (or ``"digits"``)
    for scikit-learn's digits; otherwise an absolute path, of a file (read as ``.npz``) or of a
    folder of IDX files. A name of :data:`NAMED_DATASETS` (``fashion-mnist``) is looked up in
    ``$TOYMODEL_DATA/<name>`` and then ``/usr/share/datasets/<name>``, where its Debian package
    installs it; when it is in neither, the ``ValueError`` names the package and how to install it.
    """
    if data is None or str(data) == "digits":
        return None
    text = str(data)
    path = Path(text).expanduser()
    if path.is_file():  # read by load_npz, which says what is wrong with a file that is not one
        return str(path.resolve())
    if path.is_dir():
        return str(path.resolve())
    if text in NAMED_DATASETS:
        return str(_named_folder(text).resolve())
    raise ValueError(f"data not found: {text!r} is neither a file nor a folder, nor one of digits, "
                     f"{', '.join(NAMED_DATASETS)}")


def load_data(seed: int, data=None) -> Data:
    """The data of a ``--data`` value (see :func:`resolve_data`): the digits split by ``seed`` when
    ``data`` is None or ``"digits"``; otherwise the same for every seed: :func:`load_npz` of a file,
    :func:`load_idx` of a folder or of a named set."""
    where = resolve_data(data)
    if where is None:
        return load_digits_split(seed)
    return load_npz(where) if Path(where).is_file() else load_idx(where)


def train_subset(data: Data, n: int, seed: int) -> Data:
    """A stratified subset of ``n`` training examples, chosen by stream ``TRAIN_SUBSET`` of ``seed``;
    the test set stays whole.

    Each class keeps its share of the training set: class c gets ``floor(n N_c / N)`` examples and
    the ones left over go to the classes with the largest remainders (ties to the smaller class
    label), so the counts sum to ``n`` exactly. Within a class the examples are drawn without
    replacement; the subset keeps the training set's order. Inputs keep the standardisation of the
    whole training set. ``source`` gains ``subset n seed``, so cache keys tell subsets apart.
    """
    import numbers

    N = len(data.y_train)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not 1 <= int(n) <= N:
        raise ValueError(f"n must be an integer from 1 to the training set size {N}, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    n = int(n)
    counts = np.bincount(data.y_train, minlength=data.n_classes)
    quota = n * counts / N
    take = np.floor(quota).astype(np.int64)
    left = n - int(take.sum())
    order = np.lexsort((np.arange(len(counts)), -(quota - take)))  # largest remainder, then class label
    take[order[:left]] += 1
    rng = _streams.rng(seed, _streams.TRAIN_SUBSET)
    chosen = [rng.choice(np.flatnonzero(data.y_train == c), size=int(k), replace=False)
              for c, k in enumerate(take) if k]
    idx = np.sort(np.concatenate(chosen))
    return Data(data.X_train[idx], data.y_train[idx], data.X_test, data.y_test, data.n_classes,
                f"{data.source}|subset {n} seed {int(seed)}")
