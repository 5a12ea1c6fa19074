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
