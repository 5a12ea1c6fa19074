"""The explorer's views in Bokeh: figures over named data sources, filled from an ExploreData.

:func:`view_data` shapes an :class:`~toymodel.explore.compute.ExploreData` into the columns of
every source, readouts included (plain dicts, no Bokeh); :class:`Views` builds the
figures over those sources and :meth:`Views.update` refills them. The web app calls
:meth:`Views.update` on the server; the static page stores :func:`view_data` of every grid point
and swaps it in the browser. Both draw the same figures.
"""

from __future__ import annotations

import textwrap

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, CustomJS, HoverTool, Legend, LegendItem, Range1d
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from .compute import MODES, REGIME_LABELS, TAIL_STEPS, ExploreData, readout_rows, verdict_text

__all__ = ["REGIME_COLORS", "SOURCES", "SWAP_JS", "Views", "view_data", "page_state", "slider_label"]

#: colours of the regimes on the phase strip (equilibrium split by subtype)
REGIME_COLORS = {"convergence": "#4c78a8", "chaotic_equilibrium/periodic": "#f2b447",
                 "chaotic_equilibrium/chaotic": "#e45756", "chaotic_equilibrium": "#f58518",
                 "divergence": "#9d9d9d", "nonfinite": "#222222"}
#: the data sources of the views, by name
SOURCES = ("trace", "groups", "group_theory", "levels", "tail", "orbit", "strip", "marks", "mark_labels",
           "readouts")
#: the marks of the phase strip: label, colour, and whether it is the run (solid) or theory (dashed)
_MARKS = {"threshold": ("threshold", "#1f3b73", False), "instability": ("√3: orbit unstable", "#7a3e9d", False),
          "crossover": ("random-walk criterion", "#555555", False), "point": ("this run", "#d62728", True),
          "landing": ("landing c = 1/(1−ηλ)", "#2ca02c", False), "effective": ("measured c", "#d62728", True)}
FIG_W, FIG_H, READOUT_H = 470, 290, 400
READOUT_LINES = 25.0
_LEGEND = dict(orientation="horizontal", label_text_font_size="8pt", spacing=4, padding=2, margin=2,
               glyph_width=14, label_standoff=3, border_line_alpha=0)


def _group_colors(n: int) -> list:
    return list(Category10_10[:n])


def _readout_columns(data: ExploreData) -> dict:
    """The readouts as rows of text drawn on a canvas (a Div would make the browser lay the whole page
    out again at every update): the verdict, then ``section / label / value`` rows, then the notes."""
    x, y, text, size, style, color = [], [], [], [], [], []

    def add(col, line, t, sz="12px", st="normal", c="#222222"):
        x.append(col), y.append(line), text.append(t), size.append(sz), style.append(st), color.append(c)

    add(0.0, 0.0, verdict_text(data), "16px", "bold", REGIME_COLORS.get(data.measured["regime"], "#222222"))
    line, last = 0.6, None
    for section, label, value in readout_rows(data):
        if section != last:
            line += 1.3
            add(0.0, line, section, "12px", "bold", "#555555")
            last = section
        line += 1.0
        add(0.03, line, label, "11px")
        add(0.47, line, value, "11px")
    for note in data.notes:
        for part in textwrap.wrap(note, 75):
            line += 1.0
            add(0.0, line, part, "11px", "italic", "#8a6d3b")
    return {"x": x, "y": y, "text": text, "size": size, "style": style, "color": color}


def slider_label(params: dict) -> str:
    """What the ELR slider shows beside its title: the ELR (learning rate) and c = elr * sum(alpha)."""
    if MODES[params["mode"]].conventional:
        return f"lr η = {params['elr']:.3g} · initial c = {params['c']:.3g}"
    return f"η̃ = {params['elr']:.3g} · c = η̃Σα = {params['c']:.3g}"


def view_data(data: ExploreData) -> dict:
    """The columns of every source (``SOURCES``) for one ExploreData, the axes' ranges, the verdict's
    text and the ELR slider's label: ``{"sources": {name: columns}, "ranges": {name: (start, end)},
    "verdict": text, "slider_label": text}`` (ranges: ``t``, ``loss``, ``elrs``, ``angles``)."""
    p, th, st = data.params, data.theory, data.strip
    n = data.n_groups
    colors = _group_colors(n)
    labels = [f"group {i + 1} (α={a:g})" for i, a in enumerate(p["alphas"])]
    tr = data.trace
    t_ends = [0.0, float(p["steps"])]
    conventional = MODES[p["mode"]].conventional
    A = float(np.sum(p["alphas"]))

    def nan_if_none(v):
        return np.nan if v is None else float(v)

    fstar = nan_if_none(th["equilibrium_loss"])
    if not conventional and p["c"] <= 1:
        fstar = np.nan  # no orbit: the attracting set is the minimum
    landing_elr = th["landing_c"] / A if th["landing_c"] is not None else np.nan
    g_star = np.asarray(th["group_elrs"], dtype=float)
    sources = {
        "trace": {"t_loss": _f32(tr["t_loss"]), "loss": _f32(tr["loss"]), "t_total": _f32(tr["t_total"]),
                  "total_elr": _f32(tr["total_elr"])},
        "groups": {"xs": [_f32(t) for t in tr["t_groups"]], "ys": [_f32(g) for g in tr["group_elrs"]],
                   "color": colors, "label": labels},
        "group_theory": {"xs": [t_ends] * n, "ys": [[float(g), float(g)] for g in g_star], "color": colors,
                         "label": [f"η̃{i + 1}* (theory)" for i in range(n)]},
        "levels": {"t": t_ends, "fstar": [fstar, fstar], "rg": [th["random_guess_loss"]] * 2,
                   "landing": [landing_elr, landing_elr]},
        "tail": {"phi": _f32(np.concatenate(list(data.tail["phi"]))),
                 "gelr": _f32(np.concatenate(list(data.tail["group_elrs"]))),
                 "color": np.repeat(colors, data.tail["phi"].shape[1]).tolist()},
    }
    amp = nan_if_none(th["equilibrium_amplitude"])
    has_orbit = np.all(np.isfinite(g_star)) and amp > 0
    sources["orbit"] = {"phi": [amp, -amp] * n if has_orbit else [],
                        "gelr": np.repeat(g_star, 2).tolist() if has_orbit else [],
                        "color": np.repeat(colors, 2).tolist() if has_orbit else []}
    # the strip: theory bands on top (y in [1, 2]), the quick sweep below (y in [0, 1])
    left, right, bottom, top, color, label = [], [], [], [], [], []
    for lo, hi, reg in st["bands"]:
        left.append(lo), right.append(hi), bottom.append(1.05), top.append(2.0)
        color.append(REGIME_COLORS[reg]), label.append("theory: " + REGIME_LABELS[reg])
    sc = np.asarray(st["sweep_c"], dtype=float)
    edges = np.sqrt(sc[1:] * sc[:-1])
    lo_e = np.concatenate([[sc[0] ** 1.5 / sc[1] ** 0.5], edges])
    hi_e = np.concatenate([edges, [sc[-1] ** 1.5 / sc[-2] ** 0.5]])
    for i, (reg, sub) in enumerate(zip(st["sweep_regime"], st["sweep_subtype"], strict=True)):
        key = f"{reg}/{sub}" if sub else str(reg)
        left.append(float(lo_e[i])), right.append(float(hi_e[i])), bottom.append(0.0), top.append(0.95)
        color.append(REGIME_COLORS.get(key, REGIME_COLORS.get(str(reg), "#000000")))
        label.append(f"sweep ({st['sweep_steps']:,} steps): " + REGIME_LABELS.get(str(reg), str(reg))
                     + (f" ({sub})" if sub else ""))
    sources["strip"] = {"left": left, "right": right, "bottom": bottom, "top": top, "color": color, "label": label}
    mx, mcol, mlab, mwidth = [], [], [], []
    for key, c in sorted(((k, v) for k, v in st["marks"].items() if v is not None), key=lambda kv: kv[1]):
        if not np.isfinite(c):
            continue
        name, col, run = _MARKS[key]
        mx.append(float(c)), mcol.append(col), mwidth.append(4 if run else 1.5)
        mlab.append(f"{name}: c = {c:.4g}")
    sources["marks"] = {"x": mx, "y0": [0.0] * len(mx), "y1": [2.0] * len(mx), "color": mcol, "width": mwidth,
                        "label": mlab}
    # labels on the lowest free line above the strip (a label takes about 0.02 decades per character)
    ys, ends = [], []
    for x, lab in zip(mx, mlab, strict=True):
        lx = float(np.log10(x))
        level = next((i for i, end in enumerate(ends) if lx > end), len(ends))
        if level == len(ends):
            ends.append(0.0)
        ends[level] = lx + 0.021 * len(lab.split(":")[0]) + 0.03
        ys.append(2.15 + 0.32 * min(level, 3))
    sources["mark_labels"] = {"x": mx, "y": ys,
                              "text": [lab.split(":")[0] for lab in mlab], "color": mcol}
    sources["readouts"] = _readout_columns(data)
    ranges = {"t": (0.0, float(p["steps"])),
              "loss": _log_range(sources["trace"]["loss"], [fstar, th["random_guess_loss"]]),
              "elrs": _log_range(np.concatenate([np.ravel(tr["group_elrs"]), np.ravel(tr["total_elr"])]),
                                 [*g_star.tolist(), landing_elr]),
              "angles": _log_range(sources["tail"]["gelr"], g_star.tolist() if has_orbit else []),
              # rows keep their spacing unless there are more than fit; one more line for the app's status
              "readouts": (max(READOUT_LINES, max(sources["readouts"]["y"]) + 2.4), -0.8)}
    return {"sources": sources, "ranges": ranges, "verdict": verdict_text(data), "slider_label": slider_label(p)}


def _f32(a) -> np.ndarray:
    """Arrays go to the page in float32 (half the bytes; plenty for pixels), clipped to its range."""
    lim = float(np.finfo(np.float32).max)
    return np.clip(np.asarray(a, dtype=float), -lim, lim).astype(np.float32)


def _log_range(values, extra=()) -> tuple:
    """A log axis's (start, end) over the finite positive values and the theory levels, with a margin.
    Ranges are set with the data (not found by the page from it), so the page sends nothing back."""
    v = np.concatenate([np.ravel(np.asarray(values, dtype=float)), np.asarray(list(extra), dtype=float)])
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return (1e-3, 10.0)
    lo, hi = float(v.min()), float(v.max())
    pad = max(np.log10(hi / lo) * 0.06, 0.05)
    return (lo / 10**pad, hi * 10**pad)


#: the one way new data enter the page, in the app and in the static page alike: a state (the sources'
#: columns and the axes' ranges of view_data) is put into ``payload.tags``, and this script hands it
#: to the sources and ranges in the browser. One model change per update: one message from the server.
SWAP_JS = """
const get = (o, k) => (o instanceof Map ? o.get(k) : o[k]);
const plain = (o) => (o instanceof Map ? Object.fromEntries(o) : o);
const state = payload.tags[0];
if (state === undefined) { return; }
const srcs = get(state, "sources");
for (const [name, src] of Object.entries(sources)) {
  src.data = plain(get(srcs, name));
}
const rgs = get(state, "ranges");
for (const [name, range] of Object.entries(ranges)) {
  const [start, end] = get(rgs, name);
  range.setv({start: start, end: end, reset_start: start, reset_end: end});
}
"""


def page_state(vd: dict) -> dict:
    """The part of :func:`view_data` that goes into the page at an update (sources and ranges)."""
    return {"sources": vd["sources"], "ranges": {k: [float(a), float(b)] for k, (a, b) in vd["ranges"].items()}}


class Views:
    """The figures of the explorer over one set of named sources.

    Attributes: ``sources`` (name -> ColumnDataSource, named ``src_<name>`` in the page), ``ranges``,
    ``loss``, ``elrs``, ``angles``, ``strip``, ``readouts`` (figures), ``layout`` (all of them), and
    ``payload``, the model whose ``tags`` carry a new state into the page (:data:`SWAP_JS`).

    The sources and ranges are filled in the browser and not synchronised back (``syncable=False``):
    after the first state the server only ever sends the payload.
    """

    def __init__(self, first: dict):
        s = first["sources"]
        self.sources = {name: ColumnDataSource(s[name], name=f"src_{name}", syncable=False) for name in SOURCES}
        src = self.sources
        tools = "pan,wheel_zoom,box_zoom,reset,save"

        rg = first["ranges"]
        self.ranges = {name: Range1d(*rg[name], name=f"range_{name}", syncable=False)
                       for name in ("t", "loss", "elrs", "angles", "readouts")}
        fixed = dict(min_border_left=75, min_border_right=20)  # the axes' labels never resize a plot
        loss = figure(width=FIG_W, height=FIG_H, y_axis_type="log", title="loss F(θₜ)", tools=tools,
                      x_range=self.ranges["t"], y_range=self.ranges["loss"], **fixed,
                      x_axis_label="step t", y_axis_label="F (floored at 1e-16·Σα)")
        r_loss = loss.line("t_loss", "loss", source=src["trace"], color="#1f77b4", line_width=1)
        r_f = loss.line("t", "fstar", source=src["levels"], color="#d62728", line_dash="dashed", line_width=2)
        r_rg = loss.line("t", "rg", source=src["levels"], color="#555555", line_dash="dotted", line_width=2)
        loss.add_layout(Legend(items=[LegendItem(label="F(θₜ)", renderers=[r_loss]),
                                      LegendItem(label="F* (theory)", renderers=[r_f]),
                                      LegendItem(label="random guess", renderers=[r_rg])],
                               **_LEGEND), "below")

        elrs = figure(width=FIG_W, height=FIG_H, y_axis_type="log", title="group ELRs η̃ᵢ(t) against theory",
                      tools=tools, x_axis_label="step t", y_axis_label="η̃ᵢ", x_range=self.ranges["t"],
                      y_range=self.ranges["elrs"], **fixed)
        elrs.multi_line("xs", "ys", source=src["groups"], color="color", line_width=1, legend_field="label")
        r_theory = elrs.multi_line("xs", "ys", source=src["group_theory"], color="black", line_dash="dashed",
                                   line_width=1.5)
        r_tot = elrs.line("t_total", "total_elr", source=src["trace"], color="black", line_width=1, alpha=0.6)
        r_land = elrs.line("t", "landing", source=src["levels"], color="#2ca02c", line_dash="dashed", line_width=2)
        groups_legend = elrs.legend[0]
        elrs.center.remove(groups_legend)
        items = [*groups_legend.items, LegendItem(label="total ELR", renderers=[r_tot]),
                 LegendItem(label="η̃ᵢ* (theory)", renderers=[r_theory]),
                 LegendItem(label="landing (weight decay)", renderers=[r_land])]
        elrs.add_layout(Legend(items=items, nrows=2, **_LEGEND), "below")

        angles = figure(width=FIG_W, height=READOUT_H, y_axis_type="log", tools=tools,
                        title=f"group angles, {TAIL_STEPS} steps after the run, and the orbit (×)",
                        x_axis_label="group angle φᵢ (folded to [−π/2, π/2))", y_axis_label="group ELR η̃ᵢ",
                        x_range=Range1d(-np.pi / 2, np.pi / 2), y_range=self.ranges["angles"], **fixed)
        angles.scatter("phi", "gelr", source=src["tail"], color="color", size=4, alpha=0.7)
        angles.scatter("phi", "gelr", source=src["orbit"], color="color", marker="x", size=16, line_width=3)
        angles.add_tools(HoverTool(tooltips=[("φ", "@phi{0.0000}"), ("η̃ᵢ", "@gelr{0.0000}")]))

        strip = figure(width=2 * FIG_W, height=205, x_axis_type="log", tools="pan,wheel_zoom,reset,save",
                       title="phase strip: regime bands from theory (top) and a quick sweep (bottom)",
                       x_axis_label="c = η̃Σα", x_range=Range1d(0.1, 100.0), y_range=Range1d(-0.05, 3.35), **fixed)
        strip.quad(left="left", right="right", bottom="bottom", top="top", color="color", source=src["strip"],
                   alpha=0.85, line_color=None)
        strip.segment(x0="x", x1="x", y0="y0", y1="y1", color="color", line_width="width", source=src["marks"])
        strip.text(x="x", y="y", text="text", color="color", source=src["mark_labels"], text_font_size="9pt",
                   angle=0.0, x_offset=3, text_baseline="middle")
        strip.yaxis.ticker = [0.5, 1.5]
        strip.yaxis.major_label_overrides = {0.5: "sweep", 1.5: "theory"}
        strip.ygrid.visible = False
        strip.add_tools(HoverTool(tooltips=[("", "@label")]))

        self.loss, self.elrs, self.angles, self.strip = loss, elrs, angles, strip
        readouts = figure(width=FIG_W, height=READOUT_H, toolbar_location=None, x_range=Range1d(0, 1),
                          y_range=self.ranges["readouts"], name="readouts_figure",
                          title="derived (toymodel.theory) and measured")
        readouts.text(x="x", y="y", text="text", text_font_size="size", text_font_style="style", text_color="color",
                      source=src["readouts"], text_baseline="middle")
        readouts.axis.visible = False
        readouts.grid.visible = False
        readouts.outline_line_color = None
        self.loss, self.elrs, self.angles, self.strip, self.readouts = loss, elrs, angles, strip, readouts
        self.layout = column(row(loss, elrs), row(angles, readouts), strip)

        self.payload = ColumnDataSource(name="payload")
        self.payload.js_on_change("tags", CustomJS(args={"payload": self.payload, "sources": self.sources,
                                                         "ranges": self.ranges}, code=SWAP_JS))

    def update(self, vd: dict) -> None:
        """Send a new state (:func:`view_data`) into the page: one change of ``payload.tags`` (no layout
        change: the page is only redrawn)."""
        self.payload.tags = [page_state(vd)]
