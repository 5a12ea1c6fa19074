"""Plots in a real notebook kernel: the library leaves the backend alone, so a cell that ends in a
plot shows its figure inline, exactly once."""

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SETUP = """\
import sys
import matplotlib
import toymodel
from toymodel import ToyProblem, plots, simulate
res = simulate(ToyProblem([1.0, 2.0]), [0.1, 0.5], 30, seeds=[0], record_every=1)
print(sys.executable)
print(toymodel.__file__)
print(matplotlib.get_backend())
"""


def _images(cell) -> int:
    return sum("image/png" in out.get("data", {}) for out in cell.outputs)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The cells below, run in an IPython kernel started with this interpreter (sys.executable, through
    a kernel spec of our own: no installed kernel, activated environment or PATH is assumed), with
    this checkout first on its path and no MPLBACKEND (a notebook's own default: the inline backend)."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    kernels = tmp_path_factory.mktemp("kernels")
    (kernels / "toymodel-test").mkdir()
    (kernels / "toymodel-test" / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "toymodel tests", "language": "python"}))
    km = AsyncKernelManager(kernel_name="toymodel-test",
                            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # conftest sets Agg for the tests
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in (
        SETUP,
        "plots.plot_toy_loss(res)",  # the Plot is the cell's value
        "fig, axes = plots.plot_toy_loss(res)",  # no value: the inline backend shows the open figure
        "plots.plot_toy_loss(res);",  # value suppressed: likewise
    )])
    NotebookClient(nb, km=km, timeout=120).execute(env=env, cwd=str(ROOT), cleanup_kc=True)
    return nb


def test_the_kernel_runs_this_interpreter_and_checkout_with_its_own_backend(executed):
    exe, init, backend = executed.cells[0].outputs[0]["text"].split("\n")[:3]
    assert os.path.samefile(exe, sys.executable)
    assert Path(init).resolve() == ROOT / "toymodel" / "__init__.py"
    assert "inline" in backend  # importing toymodel.plots did not choose a backend


def test_a_cell_ending_in_a_plot_shows_exactly_one_inline_image(executed):
    cell = executed.cells[1]
    assert _images(cell) == 1, cell.outputs
    assert [o["output_type"] for o in cell.outputs] == ["execute_result"]


@pytest.mark.parametrize("index", [2, 3])
def test_a_plot_without_a_display_value_still_shows_one_image(executed, index):
    assert _images(executed.cells[index]) == 1, executed.cells[index].outputs
