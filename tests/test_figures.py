"""figures: plot functions return (fig, ax); the CLI regenerates files."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

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


def test_figure_and_axes_makes_or_takes_the_layout():
    import matplotlib.pyplot as plt

    from toymodel.plots import figure_and_axes

    fig, ax = figure_and_axes(figsize=(2, 2))
    assert ax.figure is fig and not isinstance(ax, np.ndarray)
    fig, col = figure_and_axes(nrows=1, figsize=(2, 2))
    assert col.shape == (1,)
    fig, row = figure_and_axes(ncols=3, figsize=(3, 2))
    assert row.shape == (3,)
    fig, grid = figure_and_axes(nrows=2, ncols=3, figsize=(3, 2))
    assert grid.shape == (2, 3)
    assert figure_and_axes(ax) == (ax.figure, ax)  # given axes are returned as they are
    given = list(row)
    assert figure_and_axes(given, ncols=3)[1] is given
    fig2, again = figure_and_axes(list(grid.ravel()), nrows=2, ncols=3)
    assert fig2 is fig and again.shape == (2, 3) and again[1, 2] is grid[1, 2]
    with pytest.raises(ValueError, match="axes must hold 4 Axes"):
        figure_and_axes(given, nrows=4)
    plt.close("all")


def test_a_plot_draws_into_given_axes():
    import matplotlib.pyplot as plt

    res = simulate(ToyProblem([1.0, 2.0]), [0.1, 0.5], 50, seeds=[0], record_every=1)
    fig, axes = plt.subplots(2, 2)
    out = plots.plot_toy_group_elrs(res, axes=axes.ravel())
    assert out.fig is fig and out.axes.shape == (2, 2) and axes[1, 1].lines
    plt.close("all")


def test_the_package_re_exports_every_plot_of_its_topic_modules():
    import importlib

    for topic in ("toy", "dynamics", "conventional", "networks"):
        mod = importlib.import_module(f"toymodel.plots.{topic}")
        for name in mod.__all__:
            assert name in plots.__all__ and getattr(plots, name) is getattr(mod, name), (topic, name)
    for name in plots.__all__:
        assert getattr(plots, name) is not None


def test_every_committed_fixed_elr_network_job_has_a_window_long_enough_to_classify():
    # The fixed-ELR network jobs classify each run over the last quarter of its epochs; a window
    # shorter than regimes.MIN_WINDOW_EPOCHS makes the job warn that its regimes mean nothing (the
    # Fashion-MNIST ConvNet recipe once had 15 epochs: a 4-epoch window).
    from toymodel import bridge, regimes

    for kwargs in ({}, dict(model="convnet"), figures.FASHION, figures.FASHION_CONVNET):
        epochs = bridge.BridgeSpec.make(**kwargs).epochs
        w = regimes.training_window(epochs)
        assert w.stop - w.start >= regimes.MIN_WINDOW_EPOCHS, (kwargs, epochs)
