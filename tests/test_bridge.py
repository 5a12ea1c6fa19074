"""Bridge: the network sweep on toymodel.nets, its CLI, its runners and its figures."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from toymodel import bridge as B  # noqa: E402

TINY = ["--num", "3", "--elr-min", "1e-3", "--elr-max", "1", "--seeds", "1", "--epochs", "3", "--hidden", "16,16",
        "--width", "2", "--workers", "1", "--quiet"]


# the ConvNet's quick sweep (~8 s) runs with the slow tests
@pytest.mark.parametrize("model", ["mlp", pytest.param("convnet", marks=pytest.mark.slow)])
def test_quick_sweep_writes_every_file(model, tmp_path):
    assert B.main(TINY + ["--model", model, "--out", str(tmp_path)]) == 0
    suffix = "" if model == "mlp" else "_convnet"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["bridge.csv", "bridge.json", f"bridge_ess{suffix}.png", f"bridge_regimes{suffix}.png"])
    rows = list(csv.DictReader(open(tmp_path / "bridge.csv")))
    assert len(rows) == 3
    for col in ("elr", "regime", "subtype", "mean_loss", "final_train_loss", "final_test_error", "mean_cosine",
                "median_eff_grad_norm", "epoch_cosine", "ess_dispersion", "random_guess_loss", "frac_convergence"):
        assert col in rows[0]
    rec = json.loads((tmp_path / "bridge.json").read_text())
    assert json.loads(json.dumps(rec)) == rec and rec["job"] == "bridge"
    assert rec["parameters"]["model"] == model and rec["parameters"]["dtype"] == "float32"
    assert "torch" in rec["versions"]
    assert len(rec["curves"]["train_loss"]) == 3 and len(rec["curves"]["train_loss"][0]) == 3
    # float32 training projected every step: the norm stays on the sphere to float32 rounding
    assert rec["max_norm_drift"] < 1e-6


@pytest.mark.slow  # ~15 s: torch in worker processes, twice
def test_resume_and_worker_processes_give_identical_results(tmp_path):
    args = TINY[:-5] + ["--quiet", "--no-plot", "--dtype", "float64"]
    assert B.main(args + ["--workers", "1", "--out", str(tmp_path / "a"), "--resume"]) == 0
    assert B.main(args + ["--workers", "2", "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "bridge.csv").read_bytes() == (tmp_path / "b" / "bridge.csv").read_bytes()
    again = B.compute_bridge(B.elr_grid(1e-3, 1, 3), 1, B.BridgeSpec.make(epochs=3, hidden=(16, 16), dtype="float64"),
                             B.Runner(cache_dir=tmp_path / "a" / ".toymodel-cache"))
    assert again.reused == 3
    assert again.csv_text() == (tmp_path / "a" / "bridge.csv").read_text()


def test_data_file(tmp_path):
    rng = np.random.default_rng(0)
    n, m = 60, 20
    imgs = dict(X_train=rng.normal(size=(n, 2, 8, 8)), y_train=rng.integers(0, 3, n),
                X_test=rng.normal(size=(m, 2, 8, 8)), y_test=rng.integers(0, 3, m))
    np.savez(tmp_path / "img.npz", **imgs)
    for model in ("mlp", "convnet"):
        out = tmp_path / model
        assert B.main(TINY + ["--model", model, "--data", str(tmp_path / "img.npz"), "--batch-size", "16",
                              "--no-plot", "--out", str(out)]) == 0
        rec = json.loads((out / "bridge.json").read_text())
        assert rec["parameters"]["data_source"].startswith("sha256:")
    flat = dict(imgs, X_train=imgs["X_train"].reshape(n, -1), X_test=imgs["X_test"].reshape(m, -1))
    np.savez(tmp_path / "flat.npz", **flat)
    assert B.main(TINY + ["--data", str(tmp_path / "flat.npz"), "--batch-size", "16", "--no-plot", "--out",
                          str(tmp_path / "flat")]) == 0


@pytest.mark.parametrize("flags, word", [(["--epochs", "1"], "--epochs"), (["--batch-size", "1"], "--batch-size"),
                                         (["--hidden", "16,x"], "--hidden"), (["--out-norm", "0"], "--out-norm"),
                                         (["--elr-min", "1", "--elr-max", "0.1"], "--elr-min"),
                                         (["--num", "1"], "--num"), (["--model", "resnet"], "--model"),
                                         (["--dtype", "float16"], "--dtype"), (["--workers", "0"], "--workers"),
                                         (["--threads", "0"], "--threads"), (["--width", "0"], "--width"),
                                         (["--data", "/nonexistent.npz"], "not found"),
                                         (["--batch-size", "5000"], "--batch-size"),
                                         (["--scheduler", "tcp://1.2.3.4:1", "--dask-local", "2"], "not both")])
def test_bridge_bad_flags(flags, word, tmp_path, capsys):
    assert B.main(flags + ["--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and word in err, err
    assert not (tmp_path / "o").exists()


def test_a_convnet_on_flat_data_is_refused_in_one_line(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "flat.npz", X_train=rng.normal(size=(40, 5)), y_train=rng.integers(0, 2, 40),
             X_test=rng.normal(size=(10, 5)), y_test=rng.integers(0, 2, 10))
    assert B.main(["--model", "convnet", "--data", str(tmp_path / "flat.npz"), "--out", str(tmp_path / "o"),
                   "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "images" in err


def test_without_torch_the_bridge_names_its_extra(tmp_path):
    code = ("import sys; sys.modules['torch'] = None; from toymodel.bridge import main;"
            f"raise SystemExit(main(['--out', {str(tmp_path / 'o')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2 and "toymodel[torch]" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_core_does_not_import_torch_or_scikit_learn():
    out = subprocess.run([sys.executable, "-c", "import sys, toymodel, toymodel.phase_diagram, toymodel.figures,"
                          " toymodel.bridge; print('torch' in sys.modules, 'sklearn' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def _in_order(bs):
    order = {"convergence": 0, "chaotic_equilibrium": 1, "divergence": 2}
    seq = [order[r] for r in bs.table["regime"]]
    return seq == sorted(seq) and set(seq) == {0, 1, 2}


@pytest.mark.slow  # ~2 min: the default MLP sweep on two worker processes
def test_default_mlp_sweep_shows_the_three_regimes_in_order():
    bs = B.compute_bridge(runner=B.Runner(workers=B.default_workers()))
    assert _in_order(bs), list(bs.table["regime"])
    eq = bs.table["regime"] == "chaotic_equilibrium"
    # equal ESS across channels in the equilibrium regime: std of log ESS below 0.3 (measured
    # 0.01-0.1), against 0.17-0.42 when converging and up to ~30 in divergence
    assert np.median(bs.table["ess_dispersion"][eq]) < 0.3


@pytest.mark.slow  # ~3 min: the default ConvNet at every other ELR of the default grid, one seed
def test_convnet_sweep_shows_the_three_regimes_in_order():
    # (a shorter or narrower ConvNet does not converge at 1e-4 within its epochs, and is then, rightly,
    # not classified as converged)
    bs = B.compute_bridge(B.elr_grid(num=11), 1, B.BridgeSpec.make(model="convnet"),
                          B.Runner(workers=B.default_workers()))
    assert _in_order(bs), list(bs.table["regime"])
    eq = bs.table["regime"] == "chaotic_equilibrium"
    assert np.median(bs.table["ess_dispersion"][eq]) < 0.3


def test_a_too_short_run_is_flagged_and_bands_stay_over_the_data(tmp_path, capsys):
    out = tmp_path / "o"
    assert B.main(["--num", "3", "--seeds", "1", "--epochs", "5", "--elr-min", "1e-4", "--elr-max", "10",
                   "--hidden", "16", "--workers", "1", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "too few for the regimes to mean anything" in err
    rec = json.loads((out / "bridge.json").read_text())
    assert rec["window_too_short"] is True and rec["window_epochs"] == [3, 5]
    from matplotlib.patches import Rectangle

    from toymodel import plots

    res = B.compute_bridge(B.elr_grid(1e-4, 10, 3), 1, B.BridgeSpec.make(epochs=5, hidden=(16,)))
    assert res.window_too_short
    fig, axes = plots.plot_bridge_regimes(res)
    spans = [p for p in axes[0].patches if isinstance(p, Rectangle)]
    assert spans
    xs = [x for p in spans for x in (p.get_x(), p.get_x() + p.get_width())]
    # the regime bands cover the data and nothing beyond it (they used to reach 1.25 decades past it)
    assert min(xs) == pytest.approx(1e-4, rel=1e-9) and max(xs) == pytest.approx(10, rel=1e-9)


def test_sharpness_columns_and_the_stability_bound(tmp_path):
    out = tmp_path / "s"
    assert B.main(["--num", "3", "--elr-min", "1e-3", "--elr-max", "1", "--seeds", "1", "--epochs", "4", "--hidden",
                   "16,16", "--workers", "1", "--sharpness", "--quiet", "--out", str(out)]) == 0
    assert (out / "bridge_sharpness.png").exists()
    rows = list(csv.DictReader(open(out / "bridge.csv")))
    for r in rows:
        top, elr = float(r["sharpness_top"]), float(r["elr"])
        assert top > 0 and float(r["sharpness_trace_se"]) >= 0
        assert float(r["elr_x_sharpness"]) == pytest.approx(elr * top, rel=1e-12)
    rec = json.loads((out / "bridge.json").read_text())["sharpness"]
    assert rec["stability_bound"] == 2.0 and len(rec["top"][0][0]) == 3
    # the eigenvalues come out largest first
    assert all(t[0] >= t[1] >= t[2] for row in rec["top"] for t in row)
    assert rec["converged_within_bound"] is True
