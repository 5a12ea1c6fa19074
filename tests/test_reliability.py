"""Reliability: bad input, extreme ELRs, non-finite runs, faithful tiny angles, atomic and
resumable outputs, and properties that hold for any input (hypothesis)."""

import json
import signal
import subprocess
import sys
import time
import warnings

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toymodel import NonFiniteTrajectoryWarning, ToyProblem, regimes, simulate
from toymodel import phase_diagram as PD

# ----------------------------------------------------------------------------- bad input
BAD = [
    (["--alphas", "1,0,4"], "--alphas"), (["--alphas", "1,-2"], "--alphas"), (["--alphas", "1,inf"], "--alphas"),
    (["--alphas", "nan,1"], "--alphas"), (["--alphas", "one,two"], "--alphas"), (["--alphas", ""], "--alphas"),
    (["--elr-min", "1", "--elr-max", "0.5"], "--elr-min"), (["--elr-min", "-1"], "--elr-min"),
    (["--elr-min", "0"], "--elr-min"), (["--elr-max", "inf"], "--elr-max"), (["--elr-min", "nan"], "--elr-min"),
    (["--num", "1"], "--num"), (["--num", "0"], "--num"), (["--steps", "0"], "--steps"),
    (["--steps", "100", "--burn-in", "100"], "--burn-in"), (["--burn-in", "-5"], "--burn-in"),
    (["--seeds", "0"], "--seeds"), (["--format", "jpeg"], "--format"), (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "4", "--mask-prob", "0"], "--mask-prob"),
    (["--batch-size", "4", "--mask-prob", "1.5"], "--mask-prob"),
    (["--mask-prob", "0.5"], "--mask-prob"), (["--threads", "0"], "--threads"),
]


@pytest.mark.parametrize("flags, word", BAD)
def test_every_bad_input_is_refused_in_one_line_and_writes_nothing(flags, word, tmp_path, capsys):
    out = tmp_path / "out"
    code = PD.main(flags + ["--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and word in lines[0] and "Traceback" not in err
    assert not out.exists()


def test_unwritable_out_is_refused(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):
        code = PD.main(["--num", "2", "--steps", "10", "--burn-in", "5", "--out", str(out), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and "out" in err
    assert blocker.read_text() == "x"


def test_cli_errors_in_a_real_process_have_no_traceback(tmp_path):
    for mod, args in (("toymodel.phase_diagram", ["--seeds", "-3"]), ("toymodel.figures", ["--format", "bmp"]),
                      ("toymodel.theory", ["--write", str(tmp_path / "f" / "x"), "--only", "nope"]),
                      ("toymodel.findings", [])):
        proc = subprocess.run([sys.executable, "-m", mod, *args], capture_output=True, text=True)
        assert proc.returncode == 2, (mod, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------- extreme ELRs
def test_extreme_elrs_give_finite_statistics_and_sensible_regimes():
    a = np.array([1.0, 2.0, 4.0])
    p = ToyProblem(a)
    res = simulate(p, [1e-12, 1e12], 5000, seeds=4, burn_in=1000, lyapunov=True)
    for name in ("mean_loss", "std_loss", "mean_cosine", "mean_angle", "mean_eff_grad_norm", "lyapunov",
                 "lyapunov_angle", "mean_group_elrs", "final_theta"):
        assert np.all(np.isfinite(getattr(res, name))), name
    assert res.nonfinite.tolist() == [0, 0]
    reg, _ = regimes.classify_runs(a, res.mean_loss, res.mean_cosine, res.std_loss, res.first_loss, res.final_loss,
                                   res.final_group_elrs, res.lyapunov)
    # 1e-12: a convergent run (it would need ~1e12 steps to reach the minimum, but the minimum is
    # linearly stable at its split and the loss falls); 1e12: random-walk-like statistics
    assert np.all(reg[0] == "convergence") and np.all(reg[1] == "divergence")
    # the angular update stays exact for tiny steps: arctan(elr g), ~1e-12, not arccos(1) = 0
    assert np.all((res.mean_angle[0] > 1e-13) & (res.mean_angle[0] < 1e-10))
    assert np.all(res.mean_cosine <= 1.0)


def test_a_nonfinite_trajectory_is_flagged_and_excluded():
    p = ToyProblem([1.0, 2.0, 4.0])
    with pytest.warns(NonFiniteTrajectoryWarning, match="non-finite"):
        res = simulate(p, [0.05, 1e300], 20, seeds=3)
    assert res.nonfinite.tolist() == [0, 3]
    assert np.all(np.isnan(res.mean_loss[1])) and np.all(np.isfinite(res.mean_loss[0]))
    assert res.nonfinite_step[1].tolist() == [0, 0, 0] and res.nonfinite_step[0].tolist() == [-1, -1, -1]
    # the per-ELR table averages finite seeds only and reports the count
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonFiniteTrajectoryWarning)
        cols, table = PD.phase_table(simulate(p, [0.05, 0.1, 1e300], 20, seeds=3))
    assert table["nonfinite"].tolist() == [0, 0, 3]
    assert table["regime"][2] == "nonfinite" and np.isfinite(table["mean_loss"][:2]).all()


def _mp_trajectory(alphas, elr, theta_mp, steps):
    """Exact-arithmetic reference (60 digits, unbounded exponent): tan(phi_1) after ``steps``."""
    mp.mp.dps = 60
    X, Y = theta_mp
    eta = mp.mpf(elr)
    for _ in range(steps):
        Xn, Yn = [], []
        for i in range(len(X)):
            r2 = X[i] ** 2 + Y[i] ** 2
            k = eta * alphas[i] / r2
            Xn.append(X[i] * (1 - 2 * k * Y[i] ** 2 / r2))
            Yn.append(Y[i] * (1 + 2 * k * X[i] ** 2 / r2))
        N = mp.sqrt(sum(x * x + y * y for x, y in zip(Xn, Yn, strict=False)))
        X, Y = [x / N for x in Xn], [y / N for y in Yn]
    return X[0] / Y[0]


def test_tiny_angles_stay_faithful_to_the_exact_map():
    """A stable group dips to tan(phi) = 8e-324 (below every normal float64) before its rising
    ELR re-excites it. The kernel's extended exponent follows the 60-digit reference; the plain
    float64 map loses the angle in subnormals and ends 10% off."""
    a = [1.0, 4.0]
    eta = 1.0 / (1 / 0.49 + 4 / 1.5)  # k_1 = 0.49 (strongly contracting), k_2 = 1.5 (unstable)
    w1 = eta / 0.49
    mp.mp.dps = 60
    phi = [mp.mpf("1e-307"), mp.mpf("1e-3")]
    X = [mp.sqrt(mp.mpf(w1)) * mp.sin(phi[0]), mp.sqrt(mp.mpf(1 - w1)) * mp.sin(phi[1])]
    Y = [mp.sqrt(mp.mpf(w1)) * mp.cos(phi[0]), mp.sqrt(mp.mpf(1 - w1)) * mp.cos(phi[1])]
    th = np.array([float(X[0]), float(Y[0]), float(X[1]), float(Y[1])])
    steps = 3000
    exact = float(_mp_trajectory(a, eta, (X, Y), steps))
    p = ToyProblem(a)
    ker = simulate(p, [eta], steps, init=th).final_theta[0, 0]
    # kernel vs exact after 3000 steps of a non-chaotic run: 1e-9 relative (measured 1e-12)
    assert ker[0] / ker[1] == pytest.approx(exact, rel=1e-9)
    plain = th.copy()
    for _ in range(steps):
        plain = p.step(plain, eta)
    assert abs(plain[0] / plain[1] / exact - 1) > 1e-3


@pytest.mark.slow
def test_sgd_norm_split_runaway_is_the_exact_map():
    """(b, p) = (1, 0.5) at 1.5x the SGD threshold, 10^6 steps: every seed leaves the finite
    numbers (flagged, with the step). Not rounding: from the last state before the burst, an
    80-digit reference with the kernel's own masks runs away too (group ELR beyond 1e150), and
    float64 agrees with it until float64 overflows."""
    from toymodel import theory as T
    from toymodel._kernels import uniform_hash
    from toymodel.simulate import sgd_keys, sgd_tables

    a = [1.0, 2.0, 4.0]
    p = ToyProblem(a)
    e = 1.5 * T.sgd_threshold_elr(a, 1, 0.5)
    with pytest.warns(NonFiniteTrajectoryWarning):
        res = simulate(p, [e], 1_000_000, seeds=16, batch_size=1, mask_prob=0.5)
    assert res.nonfinite[0] == 16 and np.all(res.nonfinite_step[0] > 0)
    t_bad = int(res.nonfinite_step[0, 0])
    t0 = t_bad - 70
    state = simulate(p, [e], t0, seeds=[0], batch_size=1, mask_prob=0.5).final_theta[0, 0]
    key = sgd_keys([0])[0]
    cdf, coef, mlo, mhi = sgd_tables(1, 0.5)
    mp.mp.dps = 80
    X = [mp.mpf(v) for v in state[0::2]]
    Y = [mp.mpf(v) for v in state[1::2]]
    flo = state.copy()
    max_elr = 0.0
    for t in range(t0, t_bad + 20):
        M = [mlo + sum(uniform_hash(key, np.uint64(t * 3 + i)) >= cdf[q] for q in range(mlo, mhi)) for i in range(3)]
        w = [a[i] * float(coef[M[i]]) for i in range(3)]
        Xn, Yn = [], []
        for i in range(3):
            r2 = X[i] ** 2 + Y[i] ** 2
            k = mp.mpf(e) * w[i] / r2
            Xn.append(X[i] * (1 - 2 * k * Y[i] ** 2 / r2))
            Yn.append(Y[i] * (1 + 2 * k * X[i] ** 2 / r2))
        N = mp.sqrt(sum(x * x + y * y for x, y in zip(Xn, Yn, strict=False)))
        X, Y = [x / N for x in Xn], [y / N for y in Yn]
        with np.errstate(all="ignore"):
            flo = p.step(flo, e, weights=np.array(w))
        exact_elrs = [mp.mpf(e) / (X[i] ** 2 + Y[i] ** 2) for i in range(3)]
        max_elr = max(max_elr, float(max(mp.log10(v) for v in exact_elrs)))
        if np.all(np.isfinite(flo)) and max(float(v) for v in exact_elrs) < 1e100:
            got = p.group_elrs(flo, e)
            assert np.allclose(got, [float(v) for v in exact_elrs], rtol=1e-6)
    assert max_elr > 150


# ------------------------------------------------------------------ atomic, interrupt, resume
def _run_pd(out, extra=(), **popen):
    args = [sys.executable, "-m", "toymodel.phase_diagram", "--num", "48", "--seeds", "16", "--steps", "600000",
            "--burn-in", "300000", "--no-plot", "--out", str(out), *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


@pytest.mark.slow  # ~40 s: a real sweep killed and resumed in subprocesses
def test_kill_and_resume_gives_the_clean_result(tmp_path):
    clean = tmp_path / "clean"
    proc = _run_pd(clean, ["--quiet"])
    assert proc.wait() == 0, proc.stderr.read()
    out = tmp_path / "run"
    proc = _run_pd(out, ["--resume", "--quiet"])
    cache = out / PD.CACHE_DIRNAME
    deadline = time.time() + 120
    while time.time() < deadline and not list(cache.glob("*/chunk_*.npz")):
        time.sleep(0.2)
    assert list(cache.glob("*/chunk_*.npz")), "no chunk finished in time"
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=120)
    err = proc.stderr.read()
    assert code == 130 and err.strip().splitlines() == ["python -m toymodel.phase_diagram: interrupted"]
    # no partial file anywhere, and no output yet
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert not (out / "phase_diagram.csv").exists() and not (out / "phase_diagram.json").exists()
    done = len(list(cache.glob("*/chunk_*.npz")))
    proc = _run_pd(out, ["--resume"])
    assert proc.wait() == 0
    err = proc.stderr.read()
    assert f"({done} of 3 chunks reused)" in err
    assert (out / "phase_diagram.csv").read_bytes() == (clean / "phase_diagram.csv").read_bytes()
    j1 = json.loads((out / "phase_diagram.json").read_text())
    j2 = json.loads((clean / "phase_diagram.json").read_text())
    j1.pop("timing"), j2.pop("timing")
    assert j1 == j2


def test_sigterm_exits_143_and_keeps_previous_files(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "phase_diagram.csv").write_text("previous complete file\n")
    proc = _run_pd(out, ["--quiet"])
    time.sleep(3.0)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=120)
    err = proc.stderr.read()
    assert code == 143 and err.strip().splitlines() == ["python -m toymodel.phase_diagram: terminated"]
    assert (out / "phase_diagram.csv").read_text() == "previous complete file\n"
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_cache_key_changes_with_every_parameter(tmp_path):
    from toymodel.sweep import SweepTask

    base = dict(alphas=(1.0, 2.0), elrs=(0.1, 0.2), seeds=(0, 1))
    k0 = SweepTask.make(**base, steps=100, burn_in=10).key()
    assert SweepTask.make(**base, steps=100, burn_in=10).key() == k0
    variants = [dict(base, alphas=(1.0, 2.5)), dict(base, elrs=(0.1, 0.2000000001)), dict(base, seeds=(0, 2))]
    for v in variants:
        assert SweepTask.make(**v, steps=100, burn_in=10).key() != k0
    for opt in (dict(steps=101, burn_in=10), dict(steps=100, burn_in=11), dict(steps=100, burn_in=10, lyapunov=True),
                dict(steps=100, burn_in=10, batch_size=4, mask_prob=0.5)):
        assert SweepTask.make(**base, **opt).key() != k0


def test_resume_from_cache_is_identical_in_python(tmp_path):
    from toymodel.sweep import SweepStats, run_sweep

    p = ToyProblem([1.0, 2.0, 4.0])
    elrs = np.geomspace(0.05, 5, 40)
    fresh = run_sweep(p, elrs, 2000, seeds=8, burn_in=1000, chunk_trajectories=64)
    st1 = SweepStats()
    first = run_sweep(p, elrs, 2000, seeds=8, burn_in=1000, chunk_trajectories=64, cache_dir=tmp_path, stats=st1)
    chunks = sorted(tmp_path.glob("*/chunk_*.npz"))
    assert st1.reused == 0 and len(chunks) == st1.chunks == 5
    for c in chunks[1::2]:  # lose some chunks, and corrupt one
        c.unlink()
    chunks[0].write_bytes(b"garbage")
    st2 = SweepStats()
    again = run_sweep(p, elrs, 2000, seeds=8, burn_in=1000, chunk_trajectories=64, cache_dir=tmp_path, stats=st2)
    assert st2.reused == 2
    for res in (first, again):
        assert np.array_equal(res.mean_loss, fresh.mean_loss) and np.array_equal(res.final_theta, fresh.final_theta)


# ----------------------------------------------------------------------- properties
@settings(max_examples=25, deadline=None)
@given(alphas=st.lists(st.floats(0.05, 20.0), min_size=1, max_size=5), log_elr=st.floats(-6, 4),
       seed=st.integers(0, 2**31), steps=st.integers(1, 60), burn_frac=st.floats(0, 0.99),
       record_every=st.integers(0, 7), scale=st.floats(1e-3, 1e3))
def test_properties_for_any_input(alphas, log_elr, seed, steps, burn_frac, record_every, scale):
    p = ToyProblem(alphas)
    elr = 10.0**log_elr
    burn_in = min(int(burn_frac * steps), steps - 1)
    kw = dict(seeds=[seed], burn_in=burn_in, record_every=record_every)
    r = simulate(p, [elr], steps, **kw)
    # the map stays on the sphere (a normalisation per step: 1e-14)
    assert np.allclose(np.linalg.norm(r.final_theta, axis=-1), 1.0, atol=1e-14)
    # statistics lie within their range (rounding of a mean of <= 60 terms: 1e-12 relative)
    tol = 1e-12 * max(1.0, abs(r.max_loss[0, 0]))
    assert r.min_loss[0, 0] - tol <= r.mean_loss[0, 0] <= r.max_loss[0, 0] + tol
    assert -1.0 <= r.mean_cosine[0, 0] <= 1.0
    if record_every:
        assert np.all(np.abs(r.cosine_trace) <= 1.0)
    # deterministic for a seed
    r2 = simulate(p, [elr], steps, **kw)
    assert np.array_equal(r.final_theta, r2.final_theta) and np.array_equal(r.mean_loss, r2.mean_loss)
    # group scale invariance: rescaling one group of the start leaves the initial loss unchanged
    th0 = p.initial_point(seed)
    scaled = th0.copy()
    scaled[0:2] *= scale
    l0 = simulate(p, [elr], 1, init=th0, record_every=1).loss_trace[0, 0, 0]
    l1 = simulate(p, [elr], 1, init=scaled, record_every=1).loss_trace[0, 0, 0]
    assert l1 == pytest.approx(l0, rel=1e-12, abs=1e-300)


# ------------------------------------------------------------- integer ranges and memory
@pytest.mark.parametrize("flags, word", [
    (["--steps", "100000000000000000000"], "--steps"),
    (["--num", "10000000000000"], "--num"),
    (["--num", "100000000"], "memory"),
    (["--seeds", "1000000000"], "memory"),
    (["--batch-size", "10000000000"], "--batch-size"),
])
def test_counts_beyond_what_the_kernel_or_memory_can_hold_are_refused(flags, word, tmp_path, capsys):
    out = tmp_path / "out"
    code = PD.main(flags + ["--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and word in err and "Traceback" not in err
    assert not out.exists()


def test_huge_steps_in_a_real_process_is_one_line():
    proc = subprocess.run([sys.executable, "-m", "toymodel.phase_diagram", "--steps", "100000000000000000000"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "steps" in proc.stderr


def test_memory_estimate_bounds_what_simulate_allocates():
    """The refusal uses simulate.estimate_result_bytes; it must not undercount what a call really
    allocates (measured with tracemalloc, which sees NumPy's buffers), nor overcount wildly."""
    import tracemalloc

    from toymodel.simulate import estimate_result_bytes

    p = ToyProblem([1.0, 2.0, 4.0])
    simulate(p, [0.1], 10, seeds=2, lyapunov=True, record_every=5)  # compile and warm up first
    for K, S, rec, ly in ((200, 50, 0, False), (100, 40, 10, True), (64, 16, 3, False)):
        tracemalloc.start()
        simulate(p, np.geomspace(0.01, 10, K), 30, seeds=S, record_every=rec, lyapunov=ly)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        est = estimate_result_bytes(K * S, 3, 30, rec, ly)
        # a single call holds one copy; the estimate includes a second one for merging chunks
        assert peak <= est, (K, S, rec, ly, peak, est)
        assert est <= 6 * peak, (K, S, rec, ly, peak, est)


def test_check_memory_refuses_with_the_estimate():
    from toymodel._validate import check_memory

    check_memory(10, "tiny", limit=100)
    with pytest.raises(ValueError, match=r"about .* GiB"):
        check_memory(2**40, "the sweep", limit=2**30)
