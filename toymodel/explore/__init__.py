"""The toy in the browser: an interactive explorer (extra ``toymodel[explore]``, Bokeh).

``python -m toymodel.explore`` starts a local web app (Bokeh server) and prints its URL;
``python -m toymodel.explore --write explorer.html`` writes a self-contained page over a
precomputed grid of ELRs. The compute layer, :mod:`toymodel.explore.compute`, turns control values
into the data of every view and imports no Bokeh; this package re-exports it. The views
(:mod:`~toymodel.explore.views`), the app (:mod:`~toymodel.explore.app`) and the static page
(:mod:`~toymodel.explore.static`) are the only modules of the package that import Bokeh.
"""

from .compute import (
    DEFAULTS,
    MODES,
    PRESETS,
    Control,
    ExploreData,
    Mode,
    explore_data,
    preset_alphas,
    readout_rows,
    verdict_text,
)

__all__ = ["DEFAULTS", "MODES", "PRESETS", "Control", "Mode", "ExploreData", "explore_data", "preset_alphas",
           "readout_rows", "verdict_text"]
