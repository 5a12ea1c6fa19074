"""Bridge: the scale-invariant MLP, its hand-written backprop, training on the sphere, the CLI."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from toymodel import bridge as B  # noqa: E402


@pytest.fixture(scope="module")
def small():
    data = B.load_digits_split(0)
    model = B.SIMLP((64, 12, 9, 10), out_norm=5.0, seed=3)
    return model, data


def test_backprop_matches_finite_differences(small):
    model, data = small
    X, y = data[0][:50], data[1][:50]
    th = model.initial_theta()
    _, g = model.loss_and_grad(th, X, y)
    rng = np.random.default_rng(1)
    h = 1e-6
    for _ in range(5):
        v = rng.standard_normal(model.dim)
        fd = (model.loss(th + h * v, X, y) - model.loss(th - h * v, X, y)) / (2 * h)
        # central differences: O(h^2) truncation and O(eps/h) rounding, ~1e-9 on O(1) slopes
        assert g @ v == pytest.approx(fd, rel=1e-6, abs=1e-8)
    # every coordinate of one layer (the first rows), one at a time
    for i in range(0, model.dim, 97):
        e = np.zeros(model.dim)
        e[i] = 1.0
        fd = (model.loss(th + h * e, X, y) - model.loss(th - h * e, X, y)) / (2 * h)
        assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_each_channel_is_scale_invariant_and_orthogonal_to_its_gradient(small):
    model, data = small
    X, y = data[0][:64], data[1][:64]
    th = model.initial_theta()
    base = model.loss(th, X, y)
    _, g = model.loss_and_grad(th, X, y)
    rng = np.random.default_rng(2)
    for layer, (W, G) in enumerate(zip(model.layers(th), model.layers(g), strict=False)):
        # <grad_j, w_j> = 0 for every unit j (exact up to rounding)
        assert np.abs(np.sum(W * G, axis=1)).max() < 1e-12 * (1 + np.abs(G).max())
        for j in rng.choice(W.shape[0], 3, replace=False):
            scaled = th.copy()
            start = model.offsets[layer] + j * W.shape[1]
            scaled[start:start + W.shape[1]] *= rng.uniform(0.01, 100)
            # BN without epsilon: exact invariance up to rounding
            assert model.loss(scaled, X, y) == pytest.approx(base, rel=1e-12)


def test_training_keeps_the_norm_and_the_harmonic_sum_of_channel_elrs(small):
    model, data = small
    for elr in (1e-3, 0.05, 3.0):
        r = B.train(model, data, elr, 3, 32, 0)
        assert r.final_norm == pytest.approx(1.0, abs=1e-12)
        # sum_i 1/elr_i = 1/elr at the end of every epoch (shares sum to one): 1e-12
        assert r.harmonic_error < 1e-12
        assert r.channel_elr.shape == (3, model.n_channels)
        assert np.all(np.abs(r.step_cosine) <= 1.0) and np.all(np.isfinite(r.train_loss))


def test_quick_sweep_writes_every_file(tmp_path):
    code = B.main(["--num", "3", "--elr-min", "1e-3", "--elr-max", "1", "--seeds", "1", "--epochs", "3",
                   "--hidden", "16,16", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["bridge.csv", "bridge.json", "bridge_ess.png", "bridge_regimes.png"]
    rows = list(csv.DictReader(open(tmp_path / "bridge.csv")))
    assert len(rows) == 3
    for col in ("elr", "regime", "subtype", "mean_loss", "final_train_loss", "final_test_error", "mean_cosine",
                "mean_eff_grad_norm", "epoch_cosine", "ess_dispersion", "random_guess_loss", "frac_convergence"):
        assert col in rows[0]
    rec = json.loads((tmp_path / "bridge.json").read_text())
    assert json.loads(json.dumps(rec)) == rec and rec["job"] == "bridge"
    assert len(rec["curves"]["train_loss"]) == 3 and len(rec["curves"]["train_loss"][0]) == 3
    # resume: every run reused, identical CSV
    assert B.main(["--num", "3", "--elr-min", "1e-3", "--elr-max", "1", "--seeds", "1", "--epochs", "3",
                   "--hidden", "16,16", "--out", str(tmp_path / "r"), "--quiet", "--resume", "--no-plot"]) == 0
    again = B.compute_bridge(1e-3, 1, 3, 1, 3, hidden=(16, 16), cache_dir=tmp_path / "r" / ".toymodel-cache")
    assert again.reused == 3
    assert B.bridge_csv_text(again) == (tmp_path / "r" / "bridge.csv").read_text()


@pytest.mark.parametrize("flags, word", [(["--epochs", "1"], "--epochs"), (["--batch-size", "1"], "--batch-size"),
                                         (["--hidden", "16,x"], "--hidden"), (["--out-norm", "0"], "--out-norm"),
                                         (["--elr-min", "1", "--elr-max", "0.1"], "--elr-min"),
                                         (["--num", "1"], "--num")])
def test_bridge_bad_flags(flags, word, tmp_path, capsys):
    assert B.main(flags + ["--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and word in err
    assert not (tmp_path / "o").exists()


def test_without_scikit_learn_the_bridge_names_its_extra(tmp_path):
    code = ("import sys; sys.modules['sklearn'] = None; from toymodel.bridge import main;"
            f"raise SystemExit(main(['--out', {str(tmp_path / 'o')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2 and "toymodel[bridge]" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_core_does_not_import_scikit_learn():
    out = subprocess.run([sys.executable, "-c", "import sys, toymodel, toymodel.phase_diagram, toymodel.figures;"
                          "print('sklearn' in sys.modules)"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_default_sweep_shows_the_three_regimes_in_order():
    bs = B.compute_bridge()
    order = {"convergence": 0, "chaotic_equilibrium": 1, "divergence": 2}
    seq = [order[r] for r in bs.table["regime"]]
    assert seq == sorted(seq) and set(seq) == {0, 1, 2}
    eq = bs.table["regime"] == "chaotic_equilibrium"
    # equal ESS across channels in the equilibrium regime: std of log ESS below 0.3 (measured
    # 0.01-0.1), against 0.17-0.42 when converging and up to ~30 in divergence
    assert np.median(bs.table["ess_dispersion"][eq]) < 0.3


def test_a_too_short_run_is_flagged_and_bands_stay_over_the_data(tmp_path, capsys):
    import json

    out = tmp_path / "o"
    assert B.main(["--num", "3", "--seeds", "1", "--epochs", "5", "--elr-min", "1e-4", "--elr-max", "10", "--out",
                   str(out)]) == 0
    err = capsys.readouterr().err
    assert "too few for the regimes to mean anything" in err
    rec = json.loads((out / "bridge.json").read_text())
    assert rec["window_too_short"] is True and rec["window_epochs"] == [3, 5]
    from matplotlib.patches import Rectangle

    from toymodel import plots

    res = B.compute_bridge(elr_min=1e-4, elr_max=10, num=3, seeds=1, epochs=5)
    assert res.window_too_short
    fig, axes = plots.plot_bridge_regimes(res)
    spans = [p for p in axes[0].patches if isinstance(p, Rectangle)]
    assert spans
    xs = [x for p in spans for x in (p.get_x(), p.get_x() + p.get_width())]
    # the regime bands cover the data and nothing beyond it (they used to reach 1.25 decades past it)
    assert min(xs) == pytest.approx(1e-4, rel=1e-9) and max(xs) == pytest.approx(10, rel=1e-9)
