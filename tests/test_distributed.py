"""Sweeps on Dask: identical results on a LocalCluster, on a separately started scheduler with
two workers, and after a worker is killed mid-sweep; a clear message without the extra."""

import os
import signal
import socket
import subprocess
import sys
import time

import _launch as launch
import numpy as np
import pytest

from toymodel import phase_diagram as PD

pytest.importorskip("distributed")

SMALL = dict(alphas=(1.0, 2.0, 4.0), elr_min=1e-2, elr_max=10.0, num=40, steps=20_000, burn_in=10_000, seeds=8)


def test_core_package_does_not_import_dask():
    code = ("import sys, toymodel, toymodel.phase_diagram, toymodel.figures, toymodel.dynamics, toymodel.sweep;"
            "print(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_local_cluster_gives_the_same_csv_as_local_threads():
    local = PD.compute_phase_diagram(**SMALL)
    dask = PD.compute_phase_diagram(**SMALL, dask_local=2)
    assert PD.csv_text(dask) == PD.csv_text(local)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster():
    """A `dask scheduler` and two `dask worker` processes on 127.0.0.1, stopped afterwards."""
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen(launch.dask("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    time.sleep(1.0)
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    for _ in range(2):
        argv = launch.dask("worker", addr, "--nworkers", "1", "--nthreads", "1", "--no-dashboard")
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                      start_new_session=True))
    from distributed import Client

    with Client(addr, timeout="30s") as c:
        c.wait_for_workers(2, timeout=60)
    yield addr, procs
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def _cli(out, *extra, quiet=True):
    args = [sys.executable, "-m", "toymodel.phase_diagram", "--num", "40", "--seeds", "8", "--elr-min", "0.01",
            "--elr-max", "10", "--steps", "20000", "--burn-in", "10000", "--no-plot", "--out", str(out), *extra]
    return args + (["--quiet"] if quiet else [])


@pytest.mark.slow  # ~15 s: a scheduler and two workers started as processes
def test_separately_started_scheduler_and_workers_give_the_same_csv(cluster, tmp_path):
    addr, _ = cluster
    subprocess.run(_cli(tmp_path / "local"), check=True)
    proc = subprocess.run(_cli(tmp_path / "remote", "--scheduler", addr), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    remote = (tmp_path / "remote" / "phase_diagram.csv").read_bytes()
    assert remote == (tmp_path / "local" / "phase_diagram.csv").read_bytes()


@pytest.mark.slow  # ~40 s: a real sweep on a real cluster, killed mid-way
def test_a_killed_worker_has_its_chunks_retried(cluster, tmp_path):
    addr, procs = cluster
    args = [sys.executable, "-m", "toymodel.phase_diagram", "--num", "160", "--seeds", "16", "--elr-min", "0.01",
            "--elr-max", "10", "--steps", "150000", "--burn-in", "75000", "--no-plot", "--quiet"]
    subprocess.run(args + ["--out", str(tmp_path / "local")], check=True)
    out = tmp_path / "remote"
    run = subprocess.Popen(args + ["--out", str(out), "--scheduler", addr, "--resume"], stderr=subprocess.PIPE,
                           text=True)
    cache = out / PD.CACHE_DIRNAME
    deadline = time.time() + 180
    while time.time() < deadline and not list(cache.glob("*/chunk_*.npz")):
        time.sleep(0.1)
    done = len(list(cache.glob("*/chunk_*.npz")))
    assert 0 < done < 10, "the sweep must be killed mid-way"
    os.killpg(procs[1].pid, signal.SIGKILL)  # the worker and its nanny: no restart
    assert run.wait(timeout=300) == 0, run.stderr.read()
    assert (out / "phase_diagram.csv").read_bytes() == (tmp_path / "local" / "phase_diagram.csv").read_bytes()


def test_without_the_extra_the_flags_fail_with_one_line_naming_it(tmp_path):
    code = ("import sys; sys.modules['distributed'] = None; sys.modules['dask'] = None;"
            "from toymodel.phase_diagram import main;"
            "raise SystemExit(main(['--dask-local', '2', '--num', '2', '--steps', '10', '--burn-in', '5', '--out', "
            f"{str(tmp_path / 'o')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "toymodel[distributed]" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()
    code2 = code.replace("'--dask-local', '2'", "'--scheduler', 'tcp://127.0.0.1:1'")
    proc = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True)
    assert proc.returncode == 2 and "toymodel[distributed]" in proc.stderr


def test_regime_map_runs_on_a_local_cluster():
    from toymodel.dynamics import regime_map

    cs = np.array([0.5, 1.5, 3.0])
    a = regime_map("ratio", [1.0, 4.0], cs, 20_000, seeds=2)
    b = regime_map("ratio", [1.0, 4.0], cs, 20_000, seeds=2, dask_local=2)
    assert np.array_equal(a.regime, b.regime) and np.array_equal(a.lyapunov, b.lyapunov)


def test_a_unit_larger_than_the_workers_memory_limit_is_refused():
    from toymodel import _distributed
    from toymodel.sweep import SweepTask

    class FakeClient:
        def scheduler_info(self):
            return {"workers": {"a": {"memory_limit": 2**20}, "b": {"memory_limit": 2**30}}}

    task = SweepTask.make([1.0, 2.0], np.geomspace(0.1, 1, 64), 64, steps=10_000, burn_in=0, record_every=1)
    todo = [(0, ch) for ch in task.chunks()]
    with pytest.raises(ValueError, match="memory limit"):
        _distributed._check_worker_memory(FakeClient(), [task], todo)
    small = SweepTask.make([1.0, 2.0], [0.1], 1, steps=10, burn_in=0)
    _distributed._check_worker_memory(FakeClient(), [small], [(0, ch) for ch in small.chunks()])


@pytest.mark.slow  # ~20 s: starts a LocalCluster in a subprocess
def test_ctrl_c_during_a_local_cluster_run_is_one_line_and_exit_130(tmp_path):
    """The worker processes ignore SIGINT (the client shuts them down), so only our own line is printed."""
    out = tmp_path / "o"
    args = [sys.executable, "-m", "toymodel.phase_diagram", "--num", "160", "--seeds", "16", "--elr-min", "0.01",
            "--elr-max", "10", "--steps", "300000", "--no-plot", "--dask-local", "2", "--resume", "--quiet", "--out",
            str(out)]
    run = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    cache = out / PD.CACHE_DIRNAME
    deadline = time.time() + 180
    while time.time() < deadline and not list(cache.glob("*/chunk_*.npz")):
        time.sleep(0.1)
    assert list(cache.glob("*/chunk_*.npz")), "the cluster never finished a chunk"
    run.send_signal(signal.SIGINT)
    code = run.wait(timeout=120)
    err = run.stderr.read()
    assert code == 130
    # --quiet: nothing but our own line (the runs printed 34-67 lines of worker tracebacks)
    assert err.strip().splitlines() == ["python -m toymodel.phase_diagram: interrupted"], err[-3000:]


# ------------------------------------------------------------------------- networks
BRIDGE = ["--num", "8", "--seeds", "1", "--epochs", "12", "--hidden", "16,16", "--elr-min", "1e-3", "--elr-max", "3",
          "--no-plot", "--quiet"]


@pytest.mark.slow  # ~30 s: torch in two Dask worker processes
def test_bridge_on_a_local_cluster_gives_the_same_csv(tmp_path):
    pytest.importorskip("torch")
    from toymodel import bridge

    assert bridge.main(BRIDGE + ["--workers", "1", "--out", str(tmp_path / "local")]) == 0
    assert bridge.main(BRIDGE + ["--dask-local", "2", "--out", str(tmp_path / "dask")]) == 0
    assert (tmp_path / "dask" / "bridge.csv").read_bytes() == (tmp_path / "local" / "bridge.csv").read_bytes()


@pytest.mark.slow  # ~1 min: a network sweep on a real cluster, one worker killed mid-way
def test_a_killed_worker_has_its_bridge_runs_retried(cluster, tmp_path):
    pytest.importorskip("torch")
    addr, procs = cluster
    # One run per task (the reference engine), so that the sweep can be caught mid-way: the ensemble engine
    # trains these 12 runs as two chunks, one per worker, which finish together.
    args = [sys.executable, "-m", "toymodel.bridge", *BRIDGE, "--num", "12", "--epochs", "30", "--engine", "runs"]
    subprocess.run(args + ["--workers", "1", "--out", str(tmp_path / "local")], check=True)
    out = tmp_path / "remote"
    run = subprocess.Popen(args + ["--out", str(out), "--scheduler", addr, "--resume"], stderr=subprocess.PIPE,
                           text=True)
    cache = out / PD.CACHE_DIRNAME
    deadline = time.time() + 180
    while time.time() < deadline and not list(cache.glob("*/run_*.npz")):
        time.sleep(0.05)
    done = len(list(cache.glob("*/run_*.npz")))
    assert 0 < done < 12, "the sweep must be killed mid-way"
    os.killpg(procs[1].pid, signal.SIGKILL)  # the worker and its nanny: no restart
    assert run.wait(timeout=300) == 0, run.stderr.read()
    assert (out / "bridge.csv").read_bytes() == (tmp_path / "local" / "bridge.csv").read_bytes()
