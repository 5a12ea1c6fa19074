"""The suite's own machinery: subprocesses started without PATH, and skips that CI forbids."""

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import _launch as launch
import pytest

TESTS = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
_STARTERS = {"run", "Popen", "check_call", "check_output", "call"}


def _no_path_env():
    env = dict(os.environ)
    env["PATH"] = ""  # nothing is found by name: neither the environment's scripts nor the system's
    return env


@pytest.mark.parametrize("argv", [
    launch.python("-c", "import toymodel; print('ok')"),
    launch.module("toymodel.theory", "--help"),
    launch.dask("scheduler", "--help"),
], ids=["python", "module", "dask"])
def test_every_launcher_works_with_path_stripped(argv):
    if argv[2:3] == ["dask"]:
        pytest.importorskip("distributed")
    proc = subprocess.run(argv, capture_output=True, text=True, env=_no_path_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _started_by_name(path: Path):
    """(line, name) of every subprocess call in ``path`` whose argv is a list literal starting with a
    string that names a script of the running environment (``dask``, ``pytest``, ``python`` ...)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _STARTERS
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "subprocess" and node.args):
            continue
        argv = node.args[0]
        if isinstance(argv, ast.List) and argv.elts and isinstance(argv.elts[0], ast.Constant):
            name = argv.elts[0].value
            if isinstance(name, str) and (BIN / name).exists():
                out.append((node.lineno, name))
    return out


def test_no_test_starts_an_environment_script_by_name(tmp_path):
    found = {p.name: _started_by_name(p) for p in sorted(TESTS.glob("*.py"))}
    assert {k: v for k, v in found.items() if v} == {}
    # the check itself can fail: a bare "python" is caught
    probe = tmp_path / "probe_launch.py"
    probe.write_text("import subprocess\nsubprocess.run(['python', '-c', 'pass'])\n")
    assert _started_by_name(probe) == [(2, "python")]


_SKIPPING = textwrap.dedent('''
    import pytest

    def test_needs_torch():
        pytest.skip("torch is not installed")

    def test_needs_jax():
        pytest.skip("jax is not installed")

    @pytest.mark.xfail(reason="torch: a known failure", strict=True)
    def test_expected_failure():
        assert False
''')


def _run_pytest(tmp_path, require):
    (tmp_path / "test_skipping.py").write_text(_SKIPPING)
    env = dict(os.environ, PYTHONPATH=str(TESTS), TOYMODEL_REQUIRE=require)
    return subprocess.run(launch.module("pytest", "-p", "_strict_skips", "-q", "-rfsx", "-p", "no:cacheprovider",
                                        "test_skipping.py"), cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_required_skip_fails_the_run(tmp_path):
    proc = _run_pytest(tmp_path, "torch")
    assert proc.returncode == 1, proc.stdout
    assert "1 failed, 1 skipped, 1 xfailed" in proc.stdout
    assert "TOYMODEL_REQUIRE requires torch" in proc.stdout


def test_skips_pass_when_nothing_is_required(tmp_path):
    proc = _run_pytest(tmp_path, "")
    assert proc.returncode == 0, proc.stdout
    assert "2 skipped, 1 xfailed" in proc.stdout


def test_a_required_module_level_skip_fails_collection(tmp_path):
    (tmp_path / "test_module_skip.py").write_text("import pytest\npytest.importorskip('torch_is_not_here')\n"
                                                  "def test_x():\n    pass\n")
    env = dict(os.environ, PYTHONPATH=str(TESTS), TOYMODEL_REQUIRE="torch")
    proc = subprocess.run(launch.module("pytest", "-p", "_strict_skips", "-q", "-p", "no:cacheprovider",
                                        "test_module_skip.py"), cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode != 0 and "requires torch" in proc.stdout, proc.stdout
