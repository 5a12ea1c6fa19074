"""What every plot module shares: the :class:`Plot` they return, the one helper that makes or
takes their figure and axes, saving, the file backend of the jobs, colours, regime bands and the
c axis.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import NamedTuple

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from .. import theory
from .._records import atomic_path

__all__ = [
    "Plot",
    "save_figure",
    "use_file_backend",
    "figure_and_axes",
    "REGIME_COLORS",
    "REGIME_LABELS",
    "GROUP_COLORS",
    "c_axis",
    "format_alphas",
    "segments",
    "regime_bands",
    "regime_legend_patches",
    "threshold_c",
]


class Plot(NamedTuple):
    """What every plot function returns: the figure and its axes (one Axes or an array of them).
    It unpacks like a tuple: ``fig, ax = plot_toy_loss(result)``.

    In a notebook, a cell that ends in a plot call shows the figure once: the ``Plot`` displays as
    a PNG (``_repr_png_``) and closes its figure in pyplot, so that the inline backend does not
    show it a second time at the end of the cell. ``fig, ax = plot_...(...)`` displays nothing
    itself; the inline backend shows the open figure, once.
    """

    fig: object
    axes: object

    def save(self, path, fmt: str | None = None, dpi: int = 150) -> Path:
        """Save the figure atomically (see :func:`save_figure`) and close it."""
        return save_figure(self.fig, path, fmt, dpi)

    def _repr_png_(self) -> bytes:
        """The figure as PNG bytes, for IPython's rich display; closes the figure in pyplot."""
        buf = io.BytesIO()
        self.fig.savefig(buf, format="png", bbox_inches="tight")
        plt.close(self.fig)
        return buf.getvalue()


def save_figure(fig, path, fmt: str | None = None, dpi: int = 150) -> Path:
    """Save atomically (temporary name, then rename) without timestamps, then close."""
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".")
    meta = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None},
            "svg": {"Date": None}}.get(fmt, {})
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata=meta, bbox_inches="tight")
    plt.close(fig)
    return path


def use_file_backend() -> None:
    """Draw into files only: matplotlib's Agg backend, for the command-line jobs.

    The library never chooses the backend (importing :mod:`toymodel.plots` leaves a notebook's
    inline figures alone); each job that plots calls this at the start of its ``main``.
    """
    matplotlib.use("Agg")


def figure_and_axes(axes=None, nrows: int | None = None, ncols: int | None = None, *, figsize=None,
                    sharex: bool = False):
    """``(fig, axes)`` of a plot: a new figure unless ``axes`` are given. Every plot calls this.

    Parameters
    ----------
    axes : Axes, sequence or array of Axes, optional
        The caller's axes, ``None`` for a new figure.
    nrows, ncols : int, optional
        The layout. Neither: one Axes. Only ``nrows``: a column of ``nrows`` Axes, as a 1-D array
        (also when ``nrows`` is 1). Only ``ncols``: a row, as a 1-D array. Both: a grid, as an
        array of shape ``(nrows, ncols)``.
    figsize : (float, float)
        Size of a new figure, in inches.
    sharex : bool
        Whether the Axes of a new figure share their x axis.

    Returns
    -------
    fig : Figure
        The new figure, or that of the first of the given axes.
    axes : Axes or ndarray of Axes
        The new axes in the layout's shape; given axes as they were passed (one Axes or a
        sequence), a grid reshaped to ``(nrows, ncols)``.

    Raises
    ------
    ValueError
        If the given axes are not as many as the layout needs.
    """
    n_wanted = (nrows or 1) * (ncols or 1)
    if axes is None:
        fig, grid = plt.subplots(nrows or 1, ncols or 1, figsize=figsize, sharex=sharex, squeeze=False)
        if nrows is None and ncols is None:
            return fig, grid[0, 0]
        return fig, (grid if nrows is not None and ncols is not None else grid.ravel())
    flat = np.asarray(axes, dtype=object).reshape(-1)
    if flat.size != n_wanted:
        raise ValueError(f"axes must hold {n_wanted} Axes for this plot, got {flat.size}")
    if nrows is not None and ncols is not None:
        return flat[0].figure, flat.reshape(nrows, ncols)
    return flat[0].figure, axes


REGIME_COLORS = {
    "convergence": "#cfe3f7",
    "chaotic_equilibrium": "#fde3c0",
    "chaotic_equilibrium/chaotic": "#f9c98f",
    "divergence": "#e6e6e6",
    "nonfinite": "#f4b6b6",
}
REGIME_LABELS = {
    "convergence": "convergence",
    "chaotic_equilibrium": "equilibrium",
    "divergence": "divergence",
    "nonfinite": "non-finite",
}
GROUP_COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def threshold_c() -> float:
    """The c = elr * sum(alpha) of the convergence threshold, the same for every alphas:
    ``theory.threshold_elr(alphas) * sum(alphas)`` (it is 1)."""
    one = np.ones(1)
    return theory.threshold_elr(one) * one.sum()


def c_axis(ax, A: float):
    """A secondary top axis showing c = elr * sum(alpha) (``A``)."""
    sec = ax.secondary_xaxis("top", functions=(lambda e: e * A, lambda cc: cc / A))
    sec.set_xlabel(r"$c=\tilde\eta\sum_i\alpha_i$", fontsize=9)
    return sec


def format_alphas(a) -> str:
    """E.g. "(1, 2, 4)"."""
    return "(" + ", ".join(f"{v:g}" for v in np.asarray(a, dtype=float)) + ")"


def segments(labels):
    """Contiguous runs [(start, stop, label)] of a label sequence."""
    out = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            out.append((start, i, labels[start]))
            start = i
    return out


def regime_bands(axes, elrs, regime, subtype, label_ax=None, horizontal: bool = False):
    """Shade contiguous regime ranges of a sweep over ``elrs`` on every Axes of ``axes``: edges
    half-way between grid points (in log space), and the outer edges at the first and last point,
    so bands never extend past the data.

    Vertical bands over an ELR x axis, or horizontal ones over an ELR y axis (``horizontal``).
    With ``label_ax``, the regimes wide enough (three points or more) are named at its top.
    """
    elrs = np.asarray(elrs, dtype=float)
    lg = np.log(elrs)
    edges = np.exp(np.concatenate([[lg[0]], (lg[1:] + lg[:-1]) / 2, [lg[-1]]]))
    keys = [r + ("/chaotic" if s == "chaotic" else "") for r, s in zip(regime, subtype, strict=True)]
    for start, stop, key in segments(keys):
        color = REGIME_COLORS.get(key, "#ffffff")
        for ax in axes:
            span = ax.axhspan if horizontal else ax.axvspan
            span(edges[start], edges[stop], color=color, lw=0, zorder=0)
    if label_ax is not None:
        for start, stop, reg in segments(list(regime)):
            if stop - start < 3:  # too narrow to label
                continue
            mid = np.sqrt(edges[start] * edges[stop])
            label_ax.text(mid, 0.97, REGIME_LABELS.get(reg, reg), transform=label_ax.get_xaxis_transform(),
                          ha="center", va="top", fontsize=8, color="0.2", fontweight="bold")


def regime_legend_patches(regime=None, subtype=None):
    """Legend patches of the regime bands; only those that are drawn when the verdicts are given."""
    from matplotlib.patches import Patch

    entries = [("convergence", "convergence"), ("chaotic_equilibrium", "equilibrium: periodic"),
               ("chaotic_equilibrium/chaotic", "equilibrium: chaotic"),
               ("divergence", "divergence (random-walk criterion)"), ("nonfinite", "non-finite (all seeds)")]
    if regime is not None:
        present = {r + ("/chaotic" if s == "chaotic" else "") for r, s in zip(regime, subtype, strict=True)}
        entries = [(k, lab) for k, lab in entries if k in present]
    else:
        entries = entries[:4]
    return [Patch(color=REGIME_COLORS[k], label=lab) for k, lab in entries]
