"""The command lines behave the same way everywhere: abbreviations refused, integers in scientific
notation, flags named in errors, outputs checked before work, no clobbering, clean failures."""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from toymodel import figures, findings
from toymodel import phase_diagram as PD
from toymodel._cli import int_arg

REPO = Path(__file__).resolve().parents[1]
QUICK = ["--num", "3", "--steps", "400", "--seeds", "2", "--no-lyapunov"]


def _one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("flags", [["--seed", "3"], ["--alpha", "1,2"], ["--step", "100"]])
def test_abbreviated_flags_are_refused(flags, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        PD.main(flags + ["--out", str(tmp_path / "o"), "--quiet"])
    assert exc.value.code == 2
    assert "unrecognized arguments" in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


def test_integer_flags_take_scientific_notation_and_steps_alone_work(tmp_path):
    assert int_arg("1e6") == 10**6 and int_arg("1e20") == 10**20 and int_arg("2_000") == 2000
    with pytest.raises(argparse.ArgumentTypeError):
        int_arg("1.5")
    out = tmp_path / "o"
    # --steps alone (the burn-in follows it) and 1e3 for an integer, PNG in capitals
    assert PD.main(["--steps", "1e3", "--num", "3", "--seeds", "1", "--no-lyapunov", "--format", "PNG", "--out",
                    str(out), "--quiet"]) == 0
    rec = json.loads((out / "phase_diagram.json").read_text())
    assert rec["parameters"]["steps"] == 1000 and rec["parameters"]["burn_in"] == 500
    assert (out / "phase_diagram.png").exists()


@pytest.mark.parametrize("flags, text", [
    (["--elr-min", "-1"], "--elr-min must be positive"),
    (["--mask-prob", "0.5"], "needs a --batch-size"),
    (["--steps", "100", "--burn-in", "100"], "--burn-in must be smaller than --steps"),
])
def test_errors_name_the_flag_as_typed(flags, text, tmp_path, capsys):
    assert PD.main(flags + ["--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert text in _one_line(capsys.readouterr().err)


def test_findings_checks_its_output_path_before_any_work(tmp_path, monkeypatch, capsys):
    def boom(**kw):
        raise AssertionError("the work started before the output path was checked")

    monkeypatch.setattr(findings, "findings_markdown", boom)
    assert findings.main(["--write", str(tmp_path), "--quiet"]) == 2
    assert "--write must be a file" in _one_line(capsys.readouterr().err)


def test_an_interrupted_run_leaves_no_new_empty_folder(tmp_path, monkeypatch, capsys):
    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(PD, "compute_phase_diagram", interrupted)
    out = tmp_path / "new" / "deeper"
    assert PD.main(QUICK + ["--out", str(out)]) == 130
    assert _one_line(capsys.readouterr().err).endswith("interrupted")
    assert not (tmp_path / "new").exists()


def test_a_write_error_is_one_line_naming_the_file_and_keeps_the_cache(tmp_path, monkeypatch, capsys):
    import toymodel._records as R

    out = tmp_path / "o"
    real = R.os.fsync

    def full(fd):
        if ".phase_diagram.csv." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(28, "No space left on device")
        return real(fd)

    monkeypatch.setattr(R.os, "fsync", full)
    code = PD.main(QUICK + ["--out", str(out), "--quiet", "--resume"])
    line = _one_line(capsys.readouterr().err)
    assert code == 1 and "phase_diagram.csv" in line and "No space left on device" in line
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert list((out / PD.CACHE_DIRNAME).glob("*/chunk_*.npz"))  # a rerun with --resume recomputes nothing
    monkeypatch.setattr(R.os, "fsync", real)
    assert PD.main(QUICK + ["--out", str(out), "--resume"]) == 0
    assert "(1 of 1 chunk reused)" in capsys.readouterr().err


def test_plurals_and_nonfinite_runs_are_reported_in_one_line_of_our_own(tmp_path, capsys):
    out = tmp_path / "o"
    assert PD.main(["--num", "2", "--elr-min", "1e299", "--elr-max", "1e300", "--steps", "10", "--seeds", "1",
                    "--no-plot", "--no-lyapunov", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "became non-finite" in err and err.count("non-finite") == 1
    assert "Warning" not in err and "sweep.py" not in err
    assert "x 1 seed in" in err and "2 ELRs" in err
    rec = json.loads((out / "phase_diagram.json").read_text())
    assert rec["nonfinite_runs"] >= 1
    proc = subprocess.run([sys.executable, "-m", "toymodel.phase_diagram", "--num", "2", "--elr-min", "1e299",
                           "--elr-max", "1e300", "--steps", "10", "--seeds", "1", "--no-plot", "--no-lyapunov",
                           "--out", str(out), "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == ""


def test_compile_note_appears_when_a_kernel_is_compiled(tmp_path, monkeypatch, capsys):
    from toymodel import _kernels

    monkeypatch.setattr(_kernels, "needs_compiling", lambda *variant: True)
    assert PD.main(QUICK + ["--out", str(tmp_path / "o"), "--no-plot"]) == 0
    assert "compiling kernels (first run on this machine" in capsys.readouterr().err
    monkeypatch.undo()
    assert not _kernels.needs_compiling(False, False)  # compiled by now


def test_a_run_without_out_leaves_the_repository_clean(tmp_path):
    repo = tmp_path / "clone"
    repo.mkdir()
    shutil.copy(REPO / ".gitignore", repo / ".gitignore")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", ".gitignore"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x"], cwd=repo, check=True)
    proc = subprocess.run([sys.executable, "-m", "toymodel.phase_diagram", *QUICK, "--quiet", "--resume"], cwd=repo,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (repo / PD.DEFAULT_OUT / "phase_diagram.csv").exists()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert status == ""


def test_theory_prints_its_quantities_and_lists_keys_in_help():
    proc = subprocess.run([sys.executable, "-m", "toymodel.theory", "--alphas", "1,2,4", "--elr", "0.2"],
                          capture_output=True, text=True)
    assert proc.returncode == 0
    assert "orbit group ELRs" in proc.stdout and "1.4, 0.7, 0.35" in proc.stdout
    assert "threshold ELR" in proc.stdout and "0.1428571429" in proc.stdout
    helptext = subprocess.run([sys.executable, "-m", "toymodel.theory", "--help"], capture_output=True,
                              text=True).stdout
    assert "08_cycle_linearisation" in helptext


def test_figures_only_takes_file_stems_listed_in_help(tmp_path):
    assert figures.recipes_for(["toy_loss", "toy_group_elrs", "bridge_ess"]) == ["toy", "bridge"]
    with pytest.raises(ValueError, match="unknown figure"):
        figures.recipes_for(["nope"])
    proc = subprocess.run([sys.executable, "-m", "toymodel.figures", "--help"], capture_output=True, text=True)
    for stem in figures.FIGURES:
        assert stem in proc.stdout.replace("\n", " ").replace("  ", " ")
    assert figures.main(["--only", "toy_loss", "--out", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "toy_loss.png").exists()
    assert np.all([p.suffix == ".png" for p in tmp_path.iterdir()])


@pytest.mark.parametrize("job", ["phase_diagram", "conventional", "figures", "bridge", "bridge.conventional",
                                 "bridge.finetune"])
def test_every_job_that_plots_chooses_the_file_backend_first(job, monkeypatch, capsys):
    # the library never chooses matplotlib's backend; each job's main does, before anything else
    import importlib

    from toymodel import plots

    calls = []
    monkeypatch.setattr(plots, "use_file_backend", lambda: calls.append(job))
    mod = importlib.import_module(f"toymodel.{job}")
    with pytest.raises(SystemExit) as exc:
        mod.main(["--help"])
    assert exc.value.code == 0 and calls == [job]
