"""The network jobs beyond the sweep: conventional training (and the per-channel law of
derivation 12 on a network) and fine-tuning."""

import csv
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from toymodel import nets  # noqa: E402
from toymodel.bridge import conventional as BC  # noqa: E402
from toymodel.bridge import finetune as BF  # noqa: E402


def test_the_log_ess_law_holds_on_every_channel_of_a_network():
    d = nets.load_digits_split(0)
    torch.manual_seed(0)
    m = nets.MLPSI((64, 32, 24, 10)).double()
    r = nets.train_conventional(m, nets.as_tensors(d, torch.float64), 2.0, 0.01, 3, 32, seed=0)
    T = 3 * (len(d.y_train) // 32)
    assert r.mean_log1p_ess2.shape == (56,)
    # exact with the boundary term: float64 sums of T logarithms (1e-12)
    assert np.max(np.abs(r.mean_log1p_ess2 - r.law_theory - r.law_boundary)) < 1e-12
    # without it, within the O(1/T) that the boundary term allows: |log k_i(T) - log k_i(0)| / T
    assert np.all(np.abs(r.mean_log1p_ess2 - r.law_theory) <= np.abs(r.law_boundary) + 1e-12)
    assert np.all(np.abs(r.law_boundary) * T < 20)  # the channel ELRs moved by less than e^20 over the run
    assert r.law_theory == pytest.approx(-2 * np.log(1 - 0.02), rel=1e-12)


def test_conventional_cli(tmp_path):
    out = tmp_path / "c"
    assert BC.main(["--num", "3", "--seeds", "1", "--epochs", "3", "--hidden", "16,16", "--workers", "1", "--quiet",
                    "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["bridge_conventional.csv", "bridge_conventional.json",
                                                     "bridge_conventional.png"]
    rows = list(csv.DictReader(open(out / "bridge_conventional.csv")))
    for col in ("lr", "weight_decay", "lr_wd", "hm_elr", "mean_log1p_ess2", "theory_log1p_ess2", "regime",
                "frac_converged", "final_train_loss", "final_test_error", "std_hm_elr", "law_error"):
        assert col in rows[0]
    for r in rows:
        assert float(r["lr"]) * float(r["weight_decay"]) == pytest.approx(float(r["lr_wd"]), rel=1e-12)
        # float32 training, float64 bookkeeping: the law with its boundary term to float32 rounding
        assert float(r["law_error"]) < 1e-6
    rec = json.loads((out / "bridge_conventional.json").read_text())
    assert rec["job"] == "bridge.conventional" and len(rec["total_elr_per_epoch"]) == 3
    assert BC.main(["--lr-wd-max", "1.5", "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert not (tmp_path / "bad").exists()


def test_finetune_cli(tmp_path):
    out = tmp_path / "f"
    assert BF.main(["--num", "2", "--seeds", "1", "--epochs", "3", "--finetune-epochs", "2", "--hidden", "16",
                    "--workers", "1", "--quiet", "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "bridge_finetune.csv")))
    assert len(rows) == 2
    for col in ("pretrain_elr", "pretrain_regime", "seed", "finetuned_train_loss", "finetuned_test_error",
                "finetuned_sharpness", "scratch_test_error", "conventional_test_error"):
        assert col in rows[0]
    assert float(rows[0]["finetuned_sharpness"]) > 0
    rec = json.loads((out / "bridge_finetune.json").read_text())
    assert rec["parameters"]["scratch_epochs"] == 5 and len(rec["summary"]["per_pretrain_elr"]) == 2
    assert (out / "bridge_finetune.png").exists()
    assert BF.main(["--finetune-epochs", "1", "--out", str(tmp_path / "bad"), "--quiet"]) == 2


# ----------------------------------------------------------------- defects a review found (issue 24)
TINY_NET = ["--seeds", "1", "--epochs", "3", "--hidden", "16", "--workers", "1", "--quiet"]


@pytest.mark.parametrize("job", [BC, BF], ids=["conventional", "finetune"])
def test_a_bad_format_is_refused_before_any_work(job, tmp_path, capsys):
    out = tmp_path / "o"
    # (it used to fail after the whole sweep, with the CSV written and the JSON not)
    assert job.main(["--num", "2", *TINY_NET, "--format", "bmp", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--format" in err, err
    assert not out.exists()


@pytest.mark.parametrize("job", [BC, BF], ids=["conventional", "finetune"])
def test_the_memory_check_counts_every_run(job, tmp_path, capsys, monkeypatch):
    from toymodel import _validate

    # records of one run: 3 epochs x (6 + 3 x 16 channels) x 8 bytes = 1296 bytes; room for 4 runs
    monkeypatch.setattr(_validate, "available_memory", lambda: 4 * 1296 + 100)
    out = tmp_path / "o"
    # 9 settings do not fit (the check used to count 2, so the sweep started)
    assert job.main(["--num", "9", *TINY_NET, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "the sweep's records would need" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_network_units_are_hashable_and_compare_equal():
    from toymodel import bridge

    spec = bridge.BridgeSpec.make(hidden=(16,), epochs=3)
    task = bridge.NetTask("x", spec, (bridge.SphereRun(1e-3), bridge.SphereRun(1e-3, 2, "scratch")), (0, 1),
                          starts={(0, 0): np.zeros(3)})
    units = task.units()
    # fine-tuning's units held their start weights (an ndarray), so hash and == raised
    assert len({*units, *task.units()}) == 4 and units == task.units()
    with pytest.raises(ValueError, match="one kind"):
        bridge.NetTask("x", spec, (bridge.SphereRun(1e-3), bridge.ConventionalRun(0.1, 0.01)), (0,))


def test_fine_tuning_measures_sharpness_after_fine_tuning_only(tmp_path):
    from toymodel import bridge

    res = BF.compute_finetune([1e-3, 1e-1], 1, bridge.BridgeSpec.make(hidden=(16,), epochs=3), finetune_epochs=2)
    # pre-training used to measure a sharpness that nothing read
    assert res.pretrain.params["sharpness"] is False
    assert all(r.sharpness_top is None for row in res.pretrain.runs for r in row)
    assert np.all(res.table["finetuned_sharpness"] > 0)
    # every fine-tuning setting says where it starts (the unit's index used to be -1 or -2 for that)
    assert [r[0].elr for r in res.runs] == [3e-4] * 4
    assert len(res.runs) == 4 and res.params["scratch_epochs"] == 5


def test_reading_the_regime_bands_closes_its_file(tmp_path, monkeypatch):
    path = tmp_path / "bridge.csv"
    path.write_text("elr,regime,subtype\n0.001,convergence,periodic\n0.1,divergence,none\n")
    opened = []

    def tracking_open(*args, **kwargs):
        fh = open(*args, **kwargs)
        opened.append(fh)
        return fh

    monkeypatch.setattr(BC, "open", tracking_open, raising=False)
    elrs, reg, sub = BC.read_regime_bands(path)
    assert list(elrs) == [0.001, 0.1] and list(reg) == ["convergence", "divergence"]
    # the file was opened and closed (csv.DictReader(open(path)) left it to the garbage collector)
    assert opened and all(fh.closed for fh in opened)
    assert BC.read_regime_bands(tmp_path / "missing.csv") is None


# ------------------------------------------------------------------ the landing rule, engines, data
def _sweep_csv(path, elrs, means, regimes_):
    rows = ["elr,regime,subtype,mean_log1p_ess2"]
    rows += [f"{float(e)!r},{r},{'periodic' if r == 'chaotic_equilibrium' else ''},{float(m)!r}"
             for e, r, m in zip(elrs, regimes_, means, strict=True)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_predict_landing_on_a_made_up_sweep(tmp_path):
    from toymodel.bridge import predict as P

    elrs = np.geomspace(1e-4, 1, 9)
    means = 0.05 * np.log(elrs / 1e-4) + 1e-3  # increasing, linear in log ELR: interpolation is exact
    regs = ["convergence"] * 3 + ["chaotic_equilibrium"] * 4 + ["divergence"] * 2
    path = _sweep_csv(tmp_path / "bridge.csv", elrs, means, regs)
    lw = 0.1
    target = -2 * np.log(1 - lw)
    p = P.predict_landing(path, lw)
    expect = 1e-4 * np.exp((target - 1e-3) / 0.05)
    assert p.target == pytest.approx(target, rel=1e-12) and p.elr == pytest.approx(expect, rel=1e-12)
    assert p.interval[0] <= p.elr <= p.interval[1] and p.regime == "chaotic_equilibrium"
    # with momentum the target is derivation 17's -2 log(1 - eta lambda/(1 + mu)): lower, so it lands lower
    pm = P.predict_landing(path, lw, momentum=0.9)
    assert pm.target == pytest.approx(-2 * np.log(1 - lw / 1.9), rel=1e-12) and pm.elr < p.elr
    # a computed sweep's table works as well as its file
    subs = ["periodic" if r == "chaotic_equilibrium" else "" for r in regs]
    assert P.predict_landing({"elr": elrs, "regime": regs, "subtype": subs, "mean_log1p_ess2": means}, lw) == p


def test_predict_cli_prints_the_rule_and_refuses_bad_input(tmp_path, capsys):
    from toymodel.bridge import predict as P

    elrs = np.geomspace(1e-4, 1, 5)
    path = _sweep_csv(tmp_path / "bridge.csv", elrs, np.linspace(0.01, 0.5, 5), ["chaotic_equilibrium"] * 5)
    assert P.main(["--bands", str(path), "--lr", "1.0", "--weight-decay", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "lands at effective ELR" in out and "rule:" in out and "derivation 16" in out
    (tmp_path / "old.csv").write_text("elr,regime,subtype\n0.1,convergence,\n1,divergence,\n")
    for argv, word in ((["--lr", "20", "--weight-decay", "0.05"], "must be below 1"),
                       (["--lr", "1.0", "--weight-decay", "0.9", "--momentum", "0.5"], "above the sweep's range"),
                       (["--lr", "1e-9", "--weight-decay", "1e-9"], "below the sweep's range"),
                       (["--lr", "0.1", "--weight-decay", "0.1", "--momentum", "1.2"], "momentum")):
        assert P.main(["--bands", str(path), *argv]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and word in err, err
    assert P.main(["--bands", str(tmp_path / "old.csv"), "--lr", "0.1", "--weight-decay", "0.1"]) == 2
    assert "no column mean_log1p_ess2" in capsys.readouterr().err


def test_the_engines_agree(tmp_path):
    from toymodel import bridge

    spec = bridge.BridgeSpec.make(hidden=(16,), epochs=6, dtype="float64")
    elrs = [3e-4, 3e-2, 3.0]
    a = bridge.compute_bridge(elrs, 2, spec, bridge.Runner(engine="runs"))
    b = bridge.compute_bridge(elrs, 2, spec, bridge.Runner(engine="ensemble"))
    assert list(a.table["regime"]) == list(b.table["regime"])
    for ra, rb in zip([r for row in a.runs for r in row], [r for row in b.runs for r in row], strict=True):
        # float64: the first epoch agrees to rounding grown by at most a few hundred steps of a chaotic map (the
        # library's own tests bound a step at 1e-14 and ten steps at 1e-10)
        assert ra.train_loss[0] == pytest.approx(rb.train_loss[0], rel=1e-6)
    assert np.allclose(a.table["mean_log1p_ess2"][:2], b.table["mean_log1p_ess2"][:2], rtol=1e-3)


def test_idx_data_and_a_training_subset_through_the_bridge(tmp_path):
    import gzip
    import struct

    rng = np.random.default_rng(0)
    folder = tmp_path / "idx"
    folder.mkdir()
    for name, a in (("train-images-idx3-ubyte", rng.integers(0, 256, (90, 6, 6))),
                    ("train-labels-idx1-ubyte", np.arange(90) % 3),
                    ("t10k-images-idx3-ubyte", rng.integers(0, 256, (30, 6, 6))),
                    ("t10k-labels-idx1-ubyte", np.arange(30) % 3)):
        a = np.asarray(a, dtype=np.uint8)
        with gzip.open(folder / f"{name}.gz", "wb") as fh:
            fh.write(bytes([0, 0, 8, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes())
    out = tmp_path / "o"
    assert BC.main(["--num", "2", *TINY_NET, "--data", str(folder), "--train-subset", "45", "--batch-size", "8",
                    "--no-plot", "--out", str(out)]) == 0
    rec = json.loads((out / "bridge_conventional.json").read_text())
    assert rec["parameters"]["train_subset"] == 45 and rec["parameters"]["n_train"] == 45
    assert rec["parameters"]["data"] == str(folder.resolve())


def test_conventional_with_momentum_predictions_and_transient_rows(tmp_path):
    from toymodel import bridge

    spec = bridge.BridgeSpec.make(hidden=(16,), epochs=8)
    bands = bridge.compute_bridge(bridge.elr_grid(1e-4, 10, 9), 1, spec)
    cs = BC.compute_conventional([1e-3, 0.3], 0.01, 1, spec, momentum=0.5, bands=bands)
    t = cs.table
    assert {"predicted_elr", "predicted_regime", "target_log1p_ess2", "dead_channel_share", "momentum"} <= set(t)
    assert np.all(t["momentum"] == 0.5) and cs.runs[0][0].momentum == 0.5
    # 8 epochs of 44 steps: the window (2 epochs, 88 steps) is shorter than (1 + mu)/(2 eta lambda) = 750 steps
    # at eta lambda = 1e-3 (transient) and longer than 2.5 steps at 0.3
    assert list(t["regime"][:1]) == ["transient"] and t["regime"][1] != "transient"


def test_paired_statistics_match_scipy():
    from scipy import stats

    rng = np.random.default_rng(5)
    n = 10
    ft = rng.uniform(0.1, 0.2, 2 * n)
    regs = np.array(["convergence"] * n + ["divergence"] * n, dtype=object)
    table = {"pretrain_elr": np.repeat([1e-3, 1e-1], n), "pretrain_regime": regs,
             "finetuned_test_error": ft, "scratch_test_error": ft + rng.normal(0.01, 0.005, 2 * n),
             "conventional_test_error": ft + rng.normal(0.0, 0.02, 2 * n)}
    s = BF.paired_summary(table)
    for i, sl in enumerate((slice(0, n), slice(n, 2 * n))):
        for other, lo, hi, pv, diff in (("scratch", "ci95_low", "ci95_high", "p_value_vs_scratch",
                                         "mean_diff_vs_scratch"),
                                        ("conventional", "ci95_low_vs_conventional", "ci95_high_vs_conventional",
                                         "p_value_vs_conventional", "mean_diff_vs_conventional")):
            ref = stats.ttest_rel(ft[sl], table[f"{other}_test_error"][sl])
            ci = ref.confidence_interval(0.95)
            d = ft[sl] - table[f"{other}_test_error"][sl]
            # the same computation through scipy (1e-12); the interval by hand: mean +- t_{0.975, n-1} s/sqrt(n)
            assert s[diff][i] == pytest.approx(d.mean(), rel=1e-12)
            assert (s[lo][i], s[hi][i]) == (pytest.approx(ci.low, rel=1e-12), pytest.approx(ci.high, rel=1e-12))
            half = stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / np.sqrt(n)
            assert s[hi][i] - d.mean() == pytest.approx(half, rel=1e-10)
            assert s[pv][i] == pytest.approx(ref.pvalue, rel=1e-12)
    assert list(s["n_seeds"]) == [n, n] and list(s["pretrain_regime"]) == ["convergence", "divergence"]
    # scratch is worse by 0.01 +- 0.0016: the interval excludes 0
    assert s["ci95_high"][0] < 0
