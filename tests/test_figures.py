"""figures: plot functions return (fig, ax); the CLI regenerates files."""

import matplotlib

matplotlib.use("Agg")

import numpy as np

from toymodel import ToyProblem, figures, plots, simulate


def test_toy_figures_cli(tmp_path):
    assert figures.main(["--only", "toy", "--out", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "toy_loss.png").stat().st_size > 10_000
    assert (tmp_path / "toy_group_elrs.png").stat().st_size > 10_000


def test_plot_functions_return_fig_and_axes():
    res = simulate(ToyProblem([1.0, 2.0]), [0.1, 0.5], 50, seeds=[0], record_every=1)
    fig, axes = plots.plot_toy_loss(res)
    assert len(axes) == 2 and axes[0].get_yscale() == "log"
    fig, axes = plots.plot_toy_group_elrs(res)
    assert np.shape(axes) == (2, 2)


def test_unknown_figure_is_refused(tmp_path, capsys):
    assert figures.main(["--only", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown figure" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
