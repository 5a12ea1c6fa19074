"""Every plot of the package (the only package that imports matplotlib), by topic.

Plots are a leaf: each function takes data that :mod:`toymodel.simulate`, the analyses and the
jobs have computed, and returns a :class:`Plot` ``(fig, axes)``; it never simulates. Curves and
values that theory gives are evaluated from :mod:`toymodel.theory`, never retyped. Pass
``ax=None`` (or ``axes=None``) for a new figure. :mod:`toymodel.figures` holds the recipes that
compute the data of every committed figure and the command that regenerates them.

The library never chooses matplotlib's backend: the command-line jobs call
:func:`use_file_backend` at the start of their ``main``, and in a notebook a :class:`Plot` that
ends a cell displays inline, once.

Modules: ``common`` (``Plot``, :func:`figure_and_axes`, saving, colours, regime bands, the c
axis), ``toy`` (phase diagram, toy loss and group ELRs, SGD threshold), ``dynamics`` (orbit
diagram, Lyapunov exponents, basins, regime maps), ``conventional`` (conventional training of the
toy) and ``networks`` (the bridge's networks). This package re-exports their public names.
"""

from .common import GROUP_COLORS, REGIME_COLORS, REGIME_LABELS, Plot, figure_and_axes, save_figure, use_file_backend
from .conventional import plot_conventional_momentum, plot_conventional_phase, plot_conventional_trajectories
from .dynamics import (
    ATTRACTOR_COLORS,
    REGIME_MAP_COLORS,
    plot_basins,
    plot_lyapunov,
    plot_orbit_diagram,
    plot_regime_map,
)
from .networks import (
    plot_bridge_conventional,
    plot_bridge_ess,
    plot_bridge_finetune,
    plot_bridge_periodic,
    plot_bridge_regimes,
    plot_bridge_sharpness,
)
from .toy import plot_phase_diagram, plot_sgd_threshold, plot_toy_group_elrs, plot_toy_loss

__all__ = [
    "Plot",
    "REGIME_COLORS",
    "plot_orbit_diagram",
    "plot_lyapunov",
    "plot_basins",
    "plot_regime_map",
    "plot_sgd_threshold",
    "plot_bridge_regimes",
    "plot_bridge_ess",
    "plot_bridge_sharpness",
    "plot_bridge_conventional",
    "plot_bridge_finetune",
    "plot_bridge_periodic",
    "save_figure",
    "plot_phase_diagram",
    "plot_toy_loss",
    "plot_toy_group_elrs",
    "plot_conventional_phase",
    "plot_conventional_trajectories",
    "plot_conventional_momentum",
    "figure_and_axes",
    "use_file_backend",
    "REGIME_LABELS",
    "GROUP_COLORS",
    "REGIME_MAP_COLORS",
    "ATTRACTOR_COLORS",
]
