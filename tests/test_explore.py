"""toymodel.explore without a browser: the compute layer (controls -> data of the views), the views'
data shaping, and the command line's refusals. Browser tests are in test_explore_browser.py."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from toymodel import PAPER_ALPHAS, ToyProblem, regimes, simulate, theory
from toymodel.explore import compute as C
from toymodel.explore import explore_data, preset_alphas, readout_rows, verdict_text

A = np.array(PAPER_ALPHAS)
REPO = Path(__file__).resolve().parents[1]
QUICK = dict(steps=2000, tail_steps=8)


@pytest.mark.parametrize("elr, regime", [(0.1, "convergence"), (0.2, "chaotic_equilibrium"), (5.0, "divergence")])
def test_the_verdict_is_the_phase_diagrams_classification_of_the_same_run(elr, regime):
    d = explore_data("1,2,4", elr, **QUICK)
    assert d.measured["regime"] == regime
    # the same run through simulate and regimes directly gives the same verdict and statistics
    res = simulate(ToyProblem(A), [elr], 2000, seeds=[0], burn_in=1000, lyapunov=True)
    reg, sub, _ = regimes.classify_result_elrs(res)
    assert (d.measured["regime"], d.measured["subtype"]) == (reg[0], sub[0])
    assert d.measured["lyapunov"] == res.lyapunov[0, 0]
    assert d.measured["mean_loss"] == res.mean_loss[0, 0]
    assert d.params["burn_in"] == 1000 and d.params["c"] == pytest.approx(7 * elr)


def test_every_theory_number_is_toymodel_theorys():
    d = explore_data("1,2,4", 0.2, **QUICK)
    th = d.theory
    assert th["threshold_elr"] == theory.threshold_elr(A) == pytest.approx(1 / 7)
    assert th["equilibrium_loss"] == theory.equilibrium_loss(A, 0.2) == pytest.approx(1.0)
    assert th["equilibrium_cosine"] == theory.equilibrium_cosine(A, 0.2)
    assert th["equilibrium_amplitude"] == theory.equilibrium_amplitude(A, 0.2)
    np.testing.assert_array_equal(th["group_elrs"], theory.equilibrium_group_elrs(A, 0.2))
    np.testing.assert_array_equal(th["multipliers"], theory.cycle_multipliers(A, 0.2))
    assert th["random_guess_loss"] == theory.random_guess_loss(A) == 3.5
    assert th["instability_c"] == theory.orbit_instability_c() == pytest.approx(np.sqrt(3))
    assert th["crossover_c"] == regimes.crossover_c()
    # below the threshold there is no orbit
    d = explore_data("1,2,4", 0.1, **QUICK)
    assert d.theory["multipliers"] is None and np.all(np.isnan(d.theory["group_elrs"]))


def test_traces_are_envelopes_that_keep_the_extremes():
    d = explore_data("1,2,4", 0.5, steps=3000, max_trace_points=200, tail_steps=40)
    assert d.params["record_every"] == 1
    res = simulate(ToyProblem(A), [0.5], 3000, seeds=[0], burn_in=1500, lyapunov=True, record_every=1)
    full = res.loss_trace[0, 0]
    t, y = d.trace["t_loss"], d.trace["loss"]
    assert t.size == y.size == 200 and np.all(np.diff(t) > 0)
    # every point is a recorded step, and each bin of 30 steps gives its minimum and maximum
    np.testing.assert_array_equal(y, full[t.astype(int)])
    assert y.max() == full.max() and y.min() == full.min()
    np.testing.assert_array_equal(np.sort(y[:2]), [full[:30].min(), full[:30].max()])
    assert d.trace["group_elrs"].shape == d.trace["t_groups"].shape == (3, 200)
    # short traces are kept whole
    tt, yy = C.envelope(np.arange(10), np.arange(10.0), 100)
    assert tt.size == 10 and yy.tolist() == list(range(10))


def test_traces_and_the_angle_continuation():
    d = explore_data("1,2,4", 0.2, steps=3000, max_trace_points=1000, tail_steps=40)
    # the group ELRs obey the sum rule sum 1/elr_i = 1/elr at every recorded step, so the total is the ELR
    np.testing.assert_allclose(d.trace["total_elr"], 0.2, rtol=1e-12)
    # the continuation starts at the run's final point and follows the NumPy map
    res = simulate(ToyProblem(A), [0.2], 3000, seeds=[0], burn_in=1500, lyapunov=True)
    prob = ToyProblem(A)
    theta = res.final_theta[0, 0]
    assert d.tail["t"][0] == 3000 and d.tail["phi"].shape == (3, 40)
    phi0 = (prob.group_angles(theta) + np.pi / 2) % np.pi - np.pi / 2
    np.testing.assert_allclose(d.tail["phi"][:, 0], phi0, atol=1e-12)
    np.testing.assert_allclose(d.tail["phi"][:, 1], (prob.group_angles(prob.step(theta, 0.2)) + np.pi / 2) % np.pi
                               - np.pi / 2, atol=1e-12)
    # folded into [-pi/2, pi/2) and near the orbit's +-phi* after 3000 steps at c = 1.4
    assert np.all(np.abs(d.tail["phi"]) <= np.pi / 2)
    np.testing.assert_allclose(np.abs(d.tail["phi"]), theory.equilibrium_amplitude(A, 0.2), atol=0.05)
    # a converging run's loss reaches the floor of the log axis, not zero
    d = explore_data("1,2,4", 0.1, **QUICK)
    assert d.trace["loss"].min() == pytest.approx(C.LOSS_FLOOR * 7)


def test_the_phase_strip():
    d = explore_data("1,2,4", 0.2, **QUICK)
    st = d.strip
    # theory bands: convergence up to the derived threshold, the random-walk criterion from crossover_c
    assert st["bands"] == [(0.1, 1.0, "convergence"), (1.0, 20.0, "chaotic_equilibrium"), (20.0, 100.0, "divergence")]
    # the quick sweep is classified by the same function as the point: every verdict is the one a run at
    # that c gives on its own
    assert st["sweep_c"].size == C.SWEEP_C.size and st["sweep_steps"] == 2000
    k = int(np.argmin(np.abs(st["sweep_c"] - 5.0)))
    alone = explore_data("1,2,4", float(st["sweep_c"][k]) / 7, **QUICK)
    assert (st["sweep_regime"][k], st["sweep_subtype"][k]) == (alone.measured["regime"], alone.measured["subtype"])
    assert st["sweep_regime"][0] == "convergence" and st["sweep_regime"][-1] == "divergence"
    assert st["marks"]["point"] == pytest.approx(1.4) and st["marks"]["threshold"] == 1.0


@pytest.mark.slow  # runs the Lyapunov variant of SGD, compiled in slow tests only (conftest.py)
def test_sgd_mode_moves_the_threshold():
    d = explore_data("1,2,4", 0.15, mode="sgd", batch_size="4", mask_prob="0.5", **QUICK)
    assert d.params["batch_size"] == 4 and d.params["mask_prob"] == 0.5
    assert d.theory["threshold_elr"] == theory.sgd_threshold_elr(A, 4, 0.5)
    assert d.theory["threshold_c"] == pytest.approx(theory.sgd_stability_edge(4, 0.5))
    assert d.strip["bands"][0][1] == pytest.approx(theory.sgd_stability_edge(4, 0.5))
    # c = 1.05: above GD's threshold, below SGD's (1.18): the noise lets the run converge
    assert d.measured["regime"] == "convergence"
    assert explore_data("1,2,4", 0.15, **QUICK).measured["regime"] == "chaotic_equilibrium"


@pytest.mark.slow  # runs the Lyapunov variant of weight decay, compiled in slow tests only (conftest.py)
def test_conventional_mode_lands_where_the_rule_says():
    d = explore_data("1,2,4", 0.5, mode="conventional", lr_wd="0.2", steps=20_000, tail_steps=8)
    assert d.params["lr_wd"] == 0.2
    assert d.theory["landing_c"] == theory.conventional_equilibrium_c(0.5, 0.4) == pytest.approx(1.25)
    assert d.theory["equilibrium_loss"] == theory.conventional_equilibrium_loss(A, 0.5, 0.4)
    assert d.measured["effective_c"] == pytest.approx(1.25, rel=0.03)
    np.testing.assert_allclose(d.measured["mean_log1p_ess2"], theory.conventional_ess_law(0.5, 0.4), rtol=0.05)
    assert d.strip["marks"]["landing"] == d.theory["landing_c"] and d.strip["marks"]["point"] is None
    # the total ELR of the direction map settles near landing_c / A
    assert np.median(d.trace["total_elr"][-1000:]) * 7 == pytest.approx(1.25, rel=0.1)


@pytest.mark.slow  # runs the Lyapunov variant of weight decay, compiled in slow tests only (conftest.py)
def test_momentum_is_a_control_of_conventional_training():
    # one Control line: its value reaches simulate_conventional, and the readouts say that the derived
    # orbit values are those of plain SGD
    d = explore_data("1,2,4", 0.5, mode="conventional", lr_wd="0.2", momentum="0.9", **QUICK)
    assert d.params["momentum"] == 0.9 and d.measured["lyapunov"] is None  # no tangent map with momentum
    plain = explore_data("1,2,4", 0.5, mode="conventional", lr_wd="0.2", momentum="0", **QUICK)
    assert not np.allclose(d.measured["mean_log1p_ess2"], plain.measured["mean_log1p_ess2"])
    assert any("μ = 0" in row[0] for row in C.readout_rows(d))
    with pytest.raises(ValueError, match="momentum"):
        explore_data("1,2,4", 0.5, mode="conventional", lr_wd="0.2", momentum="1.5", **QUICK)


@pytest.mark.parametrize("kwargs, match", [
    (dict(alphas="1,-2,4"), "alphas must be positive"),
    (dict(alphas="abc"), "alphas must be comma-separated numbers"),
    (dict(alphas=",".join(["1"] * 11)), "at most 10 groups"),
    (dict(elr="fast"), "elr must be a number"),
    (dict(elr=-0.1), "elr must be positive"),
    (dict(steps="many"), "steps must be an integer"),
    (dict(steps="0"), "steps must be >= 1"),
    (dict(steps=10**7), "steps must be <= 1000000"),
    (dict(seed="-1"), "seed must be >= 0"),
    (dict(mode="adam"), "mode must be one of"),
    (dict(mode="sgd", batch_size="0"), "batch_size must be >= 1"),
    (dict(mode="sgd", batch_size="4", mask_prob="1.5"), r"mask_prob must be in \(0, 1\]"),
    (dict(mode="conventional", lr_wd="1"), r"lr_wd \(ηλ\) must be in \(0, 1\)"),
    (dict(mode="conventional", lr_wd="x"), "lr_wd must be a number"),
    (dict(nesterov="1"), "unknown control 'nesterov'"),
])
def test_bad_input_raises_the_librarys_valueerror(kwargs, match):
    with pytest.raises(ValueError, match=match):
        explore_data(**{**QUICK, **kwargs})


def test_presets():
    assert preset_alphas("paper") == PAPER_ALPHAS
    assert preset_alphas("equal", 4) == (1.0, 1.0, 1.0, 1.0)
    r = preset_alphas("random", 3, seed=7)
    assert r == preset_alphas("random", 3, seed=7) != preset_alphas("random", 3, seed=8)
    assert len(r) == 3 and all(0.5 <= v <= 8 for v in r)
    with pytest.raises(ValueError, match="preset must be one of"):
        preset_alphas("golden")


def test_readouts():
    d = explore_data("1,2,4", 0.2, **QUICK)
    rows = readout_rows(d)
    text = {label: value for _, label, value in rows}
    assert text["threshold η̃* (c = 1)"] == "0.1429 (c = 1)"
    assert text["F* on the orbit"] == "1"
    assert text["orbit group ELRs η̃ᵢ*"] == "(1.4, 0.7, 0.35)"
    assert text["orbit multipliers per period"] == "0.000416 (swing); 2× e^(±3.1i), |μ| = 1"  # (1 - 2/c²)², pairs
    assert text["regime"] == verdict_text(d) == "chaotic equilibrium (periodic)"
    assert {s for s, _, _ in rows} == {"point", "theory", "measured"}


def test_view_data_shapes_every_source():
    pytest.importorskip("bokeh")
    from toymodel.explore.views import SOURCES, Views, view_data

    d = explore_data("1,2,4,8", 0.1, **QUICK)
    vd = view_data(d)
    assert set(vd["sources"]) == set(SOURCES)
    for name, cols in vd["sources"].items():  # every column of a source has the same length
        assert len({len(v) for v in cols.values()}) == 1, name
    assert len(vd["sources"]["groups"]["ys"]) == 4
    assert vd["verdict"] == verdict_text(d) == vd["sources"]["readouts"]["text"][0]
    assert vd["slider_label"] == "η̃ = 0.1 · c = η̃Σα = 1.5"
    views = Views(vd)
    views.update(view_data(explore_data("1,2", 0.5, **QUICK)))  # one change: the payload the page unpacks
    state = views.payload.tags[0]
    assert set(state) == {"sources", "ranges"} and len(state["sources"]["groups"]["ys"]) == 2
    assert all(not src.syncable for src in views.sources.values())


def test_the_static_page_is_self_contained(tmp_path):
    pytest.importorskip("bokeh")
    from toymodel.explore.static import write_static_page

    path = write_static_page(tmp_path / "explorer.html", cs=[0.5, 1.4, 5.0], steps=1000)
    text = path.read_text()
    assert "<script type=\"text/javascript\" src=" not in text and "<link " not in text  # nothing loaded
    assert "Bokeh" in text and text.count("chaotic equilibrium") >= 1


def test_cli_bad_flags_are_one_line_and_exit_2(capsys):
    from toymodel.explore.__main__ import main

    cases = ((["--port", "x"], "--port: must be an integer"), (["--port", "70000"], "port must be in"),
             (["--prot", "1"], "unrecognized arguments"), (["--host", " "], "host must not be empty"),
             (["--write", str(REPO)], "--write must be a file"),
             (["--write", "/proc/no/such/x.html"], "--write is not writable"))
    # the first in a real process (exit code, stderr, no traceback), the others through main() in this one
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "toymodel.explore", *cases[0][0]], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and cases[0][1] in lines[0] and "Traceback" not in out.stderr, out.stderr
    for args, msg in cases[1:]:
        try:
            code = main(args)
        except SystemExit as e:  # argparse's own errors leave by SystemExit(2)
            code = e.code
        assert code == 2, args
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and msg in lines[0], (args, lines)


def test_cli_port_in_use_is_one_line_and_exit_1_at_once():
    import socket

    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "toymodel.explore", "--no-browser", "--port", str(port)],
                             capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1 and out.stderr.strip().splitlines() == [
        "python -m toymodel.explore: error: Address already in use"], out.stderr
