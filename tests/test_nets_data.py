"""toymodel.nets.data: the IDX reader and its checks, the ``--data`` resolver, stratified subsets,
and the real Fashion-MNIST when its package is installed."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # toymodel.nets imports torch

from toymodel import _streams, nets  # noqa: E402
from toymodel.nets import data as nd  # noqa: E402


def _idx(array, type_code=0x08, ndim=None, extra=b"", cut=0):
    """The bytes of an IDX file holding ``array`` (uint8), with optional defects."""
    a = np.asarray(array, dtype=np.uint8)
    ndim = a.ndim if ndim is None else ndim
    head = bytes([0, 0, type_code, ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    raw = head + a.tobytes() + extra
    return raw[:len(raw) - cut]


def _write_set(folder: Path, gz: bool, rng, n_train=30, n_test=12, size=(5, 4), classes=3, **override):
    """Four small IDX files in ``folder`` (gzipped or plain); ``override`` replaces a file's bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, *size)),
              "train-labels-idx1-ubyte": np.arange(n_train) % classes,
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, *size)),
              "t10k-labels-idx1-ubyte": np.arange(n_test) % classes}
    for name, a in arrays.items():
        raw = override.get(name, _idx(a))
        if gz:
            with gzip.open(folder / f"{name}.gz", "wb") as f:
                f.write(raw)
        else:
            (folder / name).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_reads_and_standardises(tmp_path, rng, gz):
    arrays = _write_set(tmp_path / "set", gz, rng)
    d = nets.load_idx(tmp_path / "set")
    assert d.is_image and d.input_shape == (1, 5, 4) and d.X_test.shape == (12, 1, 5, 4) and d.n_classes == 3
    assert d.X_train.dtype == np.float64 and d.y_train.dtype == np.int64
    assert np.array_equal(d.y_train, arrays["train-labels-idx1-ubyte"])
    # standardised with the training statistics (float64 rounding of sums over 600 pixels: 1e-12)
    raw_tr = arrays["train-images-idx3-ubyte"].astype(float)
    mu, sd = raw_tr.mean(), raw_tr.std()
    assert np.allclose(d.X_train[:, 0], (raw_tr - mu) / sd, rtol=0, atol=1e-12)
    assert np.allclose(d.X_test[:, 0], (arrays["t10k-images-idx3-ubyte"] - mu) / sd, rtol=0, atol=1e-12)
    assert abs(d.X_train.mean()) < 1e-12 and abs(d.X_train.std() - 1) < 1e-12
    assert d.source.startswith("idx-sha256:")
    # the identity is the decompressed content: the same for plain and gzipped files, another for other data
    other = "plain" if gz else "gz"
    _write_set(tmp_path / other, not gz, np.random.default_rng(20221128))
    assert nets.load_idx(tmp_path / other).source == d.source
    _write_set(tmp_path / "third", gz, np.random.default_rng(1))
    assert nets.load_idx(tmp_path / "third").source != d.source


def test_read_idx_names_the_file_and_the_defect(tmp_path):
    a = np.arange(24).reshape(2, 3, 4)
    cases = [(b"\x08\x03" + _idx(a)[2:], "bad magic number 0x08030803"),
             (b"\x00\x00", "shorter than the 4-byte magic"),
             (_idx(a, type_code=0x0D), r"type code 0x0d .*expected 0x08"),
             (_idx(a.reshape(6, 4), ndim=2), "2 dimensions in the magic number, expected 3"),
             (_idx(a, cut=1), r"truncated: the header announces 2 x 3 x 4 = 24 bytes of data, the file has 23"),
             (_idx(a, extra=b"\x00\x00"), "trailing bytes: .* the file has 26"),
             (_idx(a)[:10], "shorter than its 16-byte header")]
    for raw, message in cases:
        p = tmp_path / "f-idx3-ubyte"
        p.write_bytes(raw)
        with pytest.raises(ValueError, match=message) as e:
            nets.read_idx(p, 3)
        assert str(p) in str(e.value)
    p = tmp_path / "f.gz"
    p.write_bytes(gzip.compress(_idx(a))[:-12])  # a cut gzip stream
    with pytest.raises(ValueError, match="cannot decompress"):
        nets.read_idx(p, 3)
    # and a sound file reads back as it was written, plain or gzipped
    (tmp_path / "ok").write_bytes(_idx(a))
    (tmp_path / "ok.gz").write_bytes(gzip.compress(_idx(a)))
    for p in (tmp_path / "ok", tmp_path / "ok.gz"):
        assert np.array_equal(nets.read_idx(p, 3), a)


def test_load_idx_checks_the_set_as_a_whole(tmp_path, rng):
    short = _idx(np.zeros(29))
    for name, kw, message in [
            ("count", dict(override={"train-labels-idx1-ubyte": short}),
             r"train-images-idx3-ubyte has 30 images but .*train-labels-idx1-ubyte has 29 labels"),
            ("size", dict(override={"t10k-images-idx3-ubyte": _idx(np.zeros((12, 4, 4)))}),
             r"t10k-images-idx3-ubyte: images of 4 x 4, the training images .* are 5 x 4"),
            ("range", dict(override={"t10k-labels-idx1-ubyte": _idx(np.full(12, 7))}),
             r"t10k-labels-idx1-ubyte: label 7 outside the training labels' range 0..2"),
            ("dims", dict(override={"train-labels-idx1-ubyte": _idx(np.zeros((30, 1)))}),
             r"train-labels-idx1-ubyte: 2 dimensions in the magic number, expected 1")]:
        _write_set(tmp_path / name, False, rng, **kw["override"])
        with pytest.raises(ValueError, match=message):
            nets.load_idx(tmp_path / name)
    _write_set(tmp_path / "missing", True, rng)
    (tmp_path / "missing" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ValueError, match=r"IDX file missing: .*t10k-labels-idx1-ubyte \(or t10k-labels-idx1-ubyte.gz"):
        nets.load_idx(tmp_path / "missing")
    with pytest.raises(ValueError, match="folder not found"):
        nets.load_idx(tmp_path / "nowhere")


def test_the_data_resolver(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(nd, "SYSTEM_DATA_DIR", tmp_path / "system")
    monkeypatch.delenv(nd.DATA_ENV, raising=False)
    assert nets.resolve_data(None) is None and nets.resolve_data("digits") is None
    # a named set missing everywhere: one line naming the Debian package and the install command
    with pytest.raises(ValueError) as e:
        nets.resolve_data("fashion-mnist")
    msg = str(e.value)
    assert "\n" not in msg and "apt-get install dataset-fashion-mnist" in msg and str(tmp_path / "system") in msg
    # the system folder, then $TOYMODEL_DATA first when it has the set
    _write_set(tmp_path / "system" / "fashion-mnist", True, rng)
    assert nets.resolve_data("fashion-mnist") == str((tmp_path / "system" / "fashion-mnist").resolve())
    _write_set(tmp_path / "mine" / "fashion-mnist", False, rng)
    monkeypatch.setenv(nd.DATA_ENV, str(tmp_path / "mine"))
    assert nets.resolve_data("fashion-mnist") == str((tmp_path / "mine" / "fashion-mnist").resolve())
    d = nets.load_data(3, "fashion-mnist")
    assert d.X_train.shape == (30, 1, 5, 4) and d.source.startswith("idx-sha256:")
    # a folder and an .npz file by path; the same data for every seed
    assert nets.load_data(0, tmp_path / "mine" / "fashion-mnist").source == d.source
    np.savez(tmp_path / "x.npz", X_train=np.eye(4), y_train=np.array([0, 1, 0, 1]), X_test=np.eye(4),
             y_test=np.array([1, 0, 1, 0]))
    assert nets.resolve_data(tmp_path / "x.npz") == str(tmp_path / "x.npz")
    assert nets.load_data(5, str(tmp_path / "x.npz")).source.startswith("sha256:")
    assert nets.load_data(1, None).source == "digits"
    # any other file is read as .npz, as before, and says what is wrong with it; an unknown name is refused
    (tmp_path / "x.csv").write_text("1,2")
    assert nets.resolve_data(tmp_path / "x.csv") == str(tmp_path / "x.csv")
    with pytest.raises(ValueError, match="cannot read data file"):
        nets.load_data(0, tmp_path / "x.csv")
    with pytest.raises(ValueError, match="neither a file nor a folder, nor one of digits, fashion-mnist"):
        nets.resolve_data("cifar-7")


def test_train_subset_is_stratified_and_seeded(rng):
    y = np.repeat(np.arange(4), [50, 30, 15, 5])  # class shares 0.5, 0.3, 0.15, 0.05
    d = nets.Data(rng.standard_normal((100, 1, 2, 2)), y, np.zeros((7, 1, 2, 2)), np.arange(7) % 4, 4, "src")
    s = nets.train_subset(d, 30, seed=0)
    # shares of 30: 15, 9, 4.5, 1.5 -> floors 15, 9, 4, 1; the one left over goes to the largest remainder,
    # a tie of classes 2 and 3 broken towards the smaller label
    assert np.array_equal(np.bincount(s.y_train, minlength=4), [15, 9, 5, 1])
    # every subset size: the counts sum to n and each is within 1 of its exact share
    for n in range(1, 101):
        c = np.bincount(nets.train_subset(d, n, seed=n).y_train, minlength=4)
        assert c.sum() == n and np.all(np.abs(c - n * np.array([50, 30, 15, 5]) / 100) < 1)
    # rows are examples of the set (in its order), the test set is untouched, the source says which subset
    idx = [int(np.flatnonzero((d.X_train == row).all(axis=(1, 2, 3)))[0]) for row in s.X_train]
    assert idx == sorted(idx) and np.array_equal(d.y_train[idx], s.y_train)
    assert s.X_test is d.X_test and s.source == "src|subset 30 seed 0" and s.n_classes == 4
    # reproducible by seed; another seed draws other examples (same counts)
    again, other = nets.train_subset(d, 30, seed=0), nets.train_subset(d, 30, seed=1)
    assert np.array_equal(again.X_train, s.X_train) and not np.array_equal(other.X_train, s.X_train)
    assert np.array_equal(np.bincount(other.y_train), np.bincount(s.y_train))
    assert _streams.TRAIN_SUBSET not in (_streams.NET_INIT, _streams.BATCH_ORDER, _streams.DATA_SPLIT)
    for bad in (0, 101, 2.5, True, "10"):
        with pytest.raises(ValueError, match="n must be an integer from 1 to the training set size 100"):
            nets.train_subset(d, bad, seed=0)
    with pytest.raises(ValueError, match="seed"):
        nets.train_subset(d, 10, seed=-1)


@pytest.mark.slow
def test_the_real_fashion_mnist():
    try:
        where = nets.resolve_data("fashion-mnist")
    except ValueError as e:
        pytest.skip(str(e))
    d = nets.load_idx(where)
    assert d.X_train.shape == (60000, 1, 28, 28) and d.X_test.shape == (10000, 1, 28, 28) and d.n_classes == 10
    # Fashion-MNIST is balanced: 6000 and 1000 images per class
    assert np.all(np.bincount(d.y_train) == 6000) and np.all(np.bincount(d.y_test) == 1000)
    # standardised with the training statistics: mean 0, std 1 up to float64 sums over 4.7e7 pixels (1e-9)
    assert abs(d.X_train.mean()) < 1e-9 and abs(d.X_train.std() - 1) < 1e-9
    s = nets.train_subset(d, 5000, seed=0)
    assert np.array_equal(np.bincount(s.y_train), np.full(10, 500))
