"""The explorer as one self-contained HTML page over a precomputed grid of ELRs (no server).

:func:`static_states` runs :func:`~toymodel.explore.compute.explore_data` at every ELR of the grid
and shapes each with :func:`~toymodel.explore.views.view_data`; :func:`static_page` builds the
same views as the web app with a slider over the grid, stores every state in the page, and swaps
them in the browser with a few lines of JavaScript. BokehJS and the data are inline: the page
loads nothing from anywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from bokeh.embed import file_html
from bokeh.layouts import column, row
from bokeh.models import CustomJS, CustomJSTickFormatter, Div, Slider
from bokeh.resources import INLINE

from .._records import atomic_write_text
from ..model import PAPER_ALPHAS
from .compute import MODES, explore_data
from .views import Views, page_state, view_data

__all__ = ["STATIC_C", "STATIC_STEPS", "STATIC_TRACE_POINTS", "static_states", "static_page", "write_static_page"]

#: the grid of the static page: c = elr * sum(alpha) from 0.35 to 35 (convergence, the periodic and
#: chaotic equilibrium, the random-walk regime), log-spaced
STATIC_C = np.geomspace(0.35, 35.0, 49)
STATIC_STEPS = 10_000
#: points per trace in the page: the envelope (minimum and maximum) of 250 bins of the recorded steps
STATIC_TRACE_POINTS = 500

_TICK = "const v = labels[Math.round(tick)]; return v === undefined ? '' : v;"
#: the slider hands the state of its grid point to the views' payload (views.SWAP_JS does the rest)
_PICK = "payload.tags = [states[slider.value]];"


def _compact(obj):
    """Float arrays as float32 (the page's size halves; values beyond float32 are clipped)."""
    if isinstance(obj, dict):
        return {k: _compact(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_compact(v) for v in obj]
    if isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
        lim = np.finfo(np.float32).max
        return np.clip(obj, -lim, lim).astype(np.float32)
    return obj


def static_states(alphas=PAPER_ALPHAS, cs=STATIC_C, steps: int = STATIC_STEPS, seed: int = 0, mode: str = "gd",
                  max_trace_points: int = STATIC_TRACE_POINTS, progress=None, **mode_values) -> list:
    """:func:`view_data` at every c of ``cs`` (ELR c / sum(alpha)), float arrays as float32."""
    a = np.asarray(alphas, dtype=float)
    out = []
    for i, c in enumerate(np.asarray(cs, dtype=float)):
        data = explore_data(list(a), float(c) / a.sum(), steps, seed, mode, max_trace_points=max_trace_points,
                            **mode_values)
        out.append(_compact(view_data(data)))
        if progress is not None:
            progress(i + 1, len(cs))
    return out


def static_page(alphas=PAPER_ALPHAS, cs=STATIC_C, steps: int = STATIC_STEPS, seed: int = 0, mode: str = "gd",
                start_c: float = 1.4, progress=None) -> str:
    """The HTML text of the self-contained page: the app's views with a slider over ``cs``."""
    cs = np.asarray(cs, dtype=float)
    a = np.asarray(alphas, dtype=float)
    states = static_states(a, cs, steps, seed, mode, progress=progress)
    k0 = int(np.argmin(np.abs(np.log(cs / start_c))))
    views = Views(states[k0])
    labels = [st["slider_label"] for st in states]
    slider = Slider(start=0, end=len(cs) - 1, step=1, value=k0, title="ELR (log scale)", name="elr", width=260,
                    format=CustomJSTickFormatter(args={"labels": labels}, code=_TICK))
    slider.js_on_change("value", CustomJS(args={"states": [page_state(st) for st in states], "slider": slider,
                                                "payload": views.payload}, code=_PICK))
    alist = ", ".join(f"{v:g}" for v in a)
    about = Div(width=260, text=(
        "<h2 style='margin:0'>toymodel explorer</h2>"
        "<div style='font-size:12px;color:#555'>the toy of Kodryan et al. (NeurIPS 2022): "
        "F(θ) = Σ αᵢ xᵢ²/(xᵢ² + yᵢ²) trained on the unit sphere</div>"
        f"<p style='font-size:12px'>A static page over {len(cs)} precomputed ELRs (c from {cs[0]:.3g} to "
        f"{cs[-1]:.3g}): α = ({alist}), {MODES[mode].label}, {steps:,} steps, seed {seed}; the traces show "
        f"the minimum and maximum of every {-(-steps // (STATIC_TRACE_POINTS // 2))} steps. Every control "
        "(α, steps, seed, SGD, weight decay) is in the live app: <code>pip install 'toymodel[explore]'</code>, then "
        "<code>python -m toymodel.explore</code>.</p>"))
    layout = row(column(about, slider, width=280), views.layout)
    return file_html(layout, resources=INLINE, title="toymodel explorer (static)")


def write_static_page(path, progress=None, **kwargs) -> Path:
    """Write :func:`static_page` to ``path`` (atomically) and return the path."""
    path = Path(path)
    atomic_write_text(path, static_page(progress=progress, **kwargs))
    return path
