"""The explorer's views in Bokeh: figures over named data sources, filled from an ExploreData.

:func:`view_data` shapes an :class:`~toymodel.explore.compute.ExploreData` into the columns of
every source and the HTML of the readouts (plain dicts, no Bokeh); :class:`Views` builds the
figures over those sources and :meth:`Views.update` refills them. The web app calls
:meth:`Views.update` on the server; the static page stores :func:`view_data` of every grid point
and swaps it in the browser. Both draw the same figures.
"""

from __future__ import annotations

import html

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, Div, HoverTool, Legend, LegendItem, Range1d
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from .compute import MODES, REGIME_LABELS, TAIL_STEPS, ExploreData, readout_rows, verdict_text

__all__ = ["REGIME_COLORS", "SOURCES", "Views", "view_data"]

#: colours of the regimes on the phase strip (equilibrium split by subtype)
REGIME_COLORS = {"convergence": "#4c78a8", "chaotic_equilibrium/periodic": "#f2b447",
                 "chaotic_equilibrium/chaotic": "#e45756", "chaotic_equilibrium": "#f58518",
                 "divergence": "#9d9d9d", "nonfinite": "#222222"}
#: the data sources of the views, by name
SOURCES = ("trace", "groups", "group_theory", "levels", "tail", "orbit", "strip", "marks", "mark_labels")
#: the marks of the phase strip: label, colour, and whether it is the run (solid) or theory (dashed)
_MARKS = {"threshold": ("threshold", "#1f3b73", False), "instability": ("√3: orbit unstable", "#7a3e9d", False),
          "crossover": ("random-walk criterion", "#555555", False), "point": ("this run", "#d62728", True),
          "landing": ("landing c = 1/(1−ηλ)", "#2ca02c", False), "effective": ("measured c", "#d62728", True)}
FIG_W, FIG_H = 470, 290
_LEGEND = dict(orientation="horizontal", label_text_font_size="8pt", spacing=4, padding=2, margin=2,
               glyph_width=14, label_standoff=3, border_line_alpha=0)


def _group_colors(n: int) -> list:
    return list(Category10_10[:n])


def _readouts_html(data: ExploreData) -> str:
    rows, last = [], None
    for section, label, value in readout_rows(data):
        if section != last:
            rows.append(f'<tr><th colspan="2" style="text-align:left;padding-top:4px">{section}</th></tr>')
            last = section
        rows.append(f'<tr><td style="padding-right:10px">{html.escape(label)}</td>'
                    f'<td>{html.escape(value)}</td></tr>')
    return '<table style="font-size:12px;border-collapse:collapse">' + "".join(rows) + "</table>"


def view_data(data: ExploreData) -> dict:
    """The columns of every source (``SOURCES``) and the texts of the page for one ExploreData:
    ``{"sources": {name: columns}, "readouts": html, "verdict": text, "c_text": text, "notes": text}``."""
    p, th, st = data.params, data.theory, data.strip
    n = data.n_groups
    colors = _group_colors(n)
    labels = [f"group {i + 1} (α = {a:g})" for i, a in enumerate(p["alphas"])]
    tr = data.trace
    t = np.asarray(tr["t"], dtype=float)
    t_ends = [float(t[0]), float(p["steps"])]
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
        "trace": {"t": t, "loss": np.asarray(tr["loss"], dtype=float), "total_elr": np.asarray(tr["total_elr"])},
        "groups": {"xs": [t] * n, "ys": [np.asarray(g) for g in tr["group_elrs"]], "color": colors, "label": labels},
        "group_theory": {"xs": [t_ends] * n, "ys": [[float(g), float(g)] for g in g_star], "color": colors,
                         "label": [f"η̃{i + 1}* (theory)" for i in range(n)]},
        "levels": {"t": t_ends, "fstar": [fstar, fstar], "rg": [th["random_guess_loss"]] * 2,
                   "landing": [landing_elr, landing_elr]},
        "tail": {"phi": np.concatenate(list(data.tail["phi"])), "gelr": np.concatenate(list(data.tail["group_elrs"])),
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
    for key, c in st["marks"].items():
        if c is None or not np.isfinite(c):
            continue
        name, col, run = _MARKS[key]
        mx.append(float(c)), mcol.append(col), mwidth.append(4 if run else 1.5)
        mlab.append(f"{name}: c = {c:.4g}")
    sources["marks"] = {"x": mx, "y0": [0.0] * len(mx), "y1": [2.0] * len(mx), "color": mcol, "width": mwidth,
                        "label": mlab}
    sources["mark_labels"] = {"x": mx, "y": [2.05 + 0.0 * i for i in range(len(mx))],
                              "text": [lab.split(":")[0] for lab in mlab], "color": mcol}
    mode = MODES[p["mode"]]
    c_text = (f"<b>η̃ = {p['elr']:.4g}</b>, c = η̃Σα = <b>{p['c']:.4g}</b>" if not mode.conventional else
              f"<b>lr η = {p['elr']:.4g}</b> (initial c = {p['c']:.4g}); lands at c = {th['landing_c']:.4g}")
    notes = "; ".join(data.notes)
    return {"sources": sources, "readouts": _readouts_html(data), "verdict": verdict_text(data), "c_text": c_text,
            "notes": html.escape(notes)}


class Views:
    """The figures of the explorer over one set of named sources.

    Attributes: ``sources`` (name -> ColumnDataSource), ``loss``, ``elrs``, ``angles``, ``strip``
    (figures), ``readouts``, ``verdict``, ``notes`` (Divs), ``layout`` (all of them).
    """

    def __init__(self, first: dict):
        s = first["sources"]
        self.sources = {name: ColumnDataSource(s[name], name=f"src_{name}") for name in SOURCES}
        src = self.sources
        tools = "pan,wheel_zoom,box_zoom,reset,save"

        loss = figure(width=FIG_W, height=FIG_H, y_axis_type="log", title="loss F(θₜ)", tools=tools,
                      x_axis_label="step t", y_axis_label="F (floored at 1e-16·Σα)")
        r_loss = loss.line("t", "loss", source=src["trace"], color="#1f77b4", line_width=1)
        r_f = loss.line("t", "fstar", source=src["levels"], color="#d62728", line_dash="dashed", line_width=2)
        r_rg = loss.line("t", "rg", source=src["levels"], color="#555555", line_dash="dotted", line_width=2)
        loss.add_layout(Legend(items=[LegendItem(label="F(θₜ)", renderers=[r_loss]),
                                      LegendItem(label="F* (theory)", renderers=[r_f]),
                                      LegendItem(label="random guess (theory)", renderers=[r_rg])],
                               **_LEGEND), "below")

        elrs = figure(width=FIG_W, height=FIG_H, y_axis_type="log", title="group ELRs η̃ᵢ(t) against theory",
                      tools=tools, x_axis_label="step t", y_axis_label="η̃ᵢ", x_range=loss.x_range)
        elrs.multi_line("xs", "ys", source=src["groups"], color="color", line_width=1, legend_field="label")
        elrs.multi_line("xs", "ys", source=src["group_theory"], color="color", line_dash="dashed", line_width=2)
        r_tot = elrs.line("t", "total_elr", source=src["trace"], color="black", line_width=1, alpha=0.6)
        r_land = elrs.line("t", "landing", source=src["levels"], color="#2ca02c", line_dash="dashed", line_width=2)
        groups_legend = elrs.legend[0]
        elrs.center.remove(groups_legend)
        items = [*groups_legend.items, LegendItem(label="total ELR", renderers=[r_tot]),
                 LegendItem(label="landing ELR (conventional)", renderers=[r_land])]
        elrs.add_layout(Legend(items=items, **_LEGEND), "below")

        angles = figure(width=FIG_W, height=FIG_H, y_axis_type="log", tools=tools,
                        title=f"group angles after the run ({TAIL_STEPS} steps of the NumPy map) and the orbit (×)",
                        x_axis_label="group angle φᵢ (folded to [−π/2, π/2))", y_axis_label="group ELR η̃ᵢ",
                        x_range=Range1d(-np.pi / 2, np.pi / 2))
        angles.scatter("phi", "gelr", source=src["tail"], color="color", size=4, alpha=0.7)
        angles.scatter("phi", "gelr", source=src["orbit"], color="color", marker="x", size=16, line_width=3)
        angles.add_tools(HoverTool(tooltips=[("φ", "@phi{0.0000}"), ("η̃ᵢ", "@gelr{0.0000}")]))

        strip = figure(width=2 * FIG_W, height=165, x_axis_type="log", tools="pan,wheel_zoom,reset,save",
                       title="phase strip: regime bands from theory (top) and a quick sweep (bottom)",
                       x_axis_label="c = η̃Σα", x_range=Range1d(0.1, 100.0), y_range=Range1d(-0.05, 2.45))
        strip.quad(left="left", right="right", bottom="bottom", top="top", color="color", source=src["strip"],
                   alpha=0.85, line_color=None)
        strip.segment(x0="x", x1="x", y0="y0", y1="y1", color="color", line_width="width", source=src["marks"])
        strip.text(x="x", y="y", text="text", color="color", source=src["mark_labels"], text_font_size="9pt",
                   angle=0.0, x_offset=3)
        strip.yaxis.ticker = [0.5, 1.5]
        strip.yaxis.major_label_overrides = {0.5: "sweep", 1.5: "theory"}
        strip.ygrid.visible = False
        strip.add_tools(HoverTool(tooltips=[("", "@label")]))

        self.loss, self.elrs, self.angles, self.strip = loss, elrs, angles, strip
        self.readouts = Div(text=first["readouts"], width=FIG_W, name="readouts")
        self.verdict = Div(text=first["verdict"], name="verdict",
                           styles={"font-size": "16px", "font-weight": "bold", "color": "#333"})
        self.notes = Div(text=first["notes"], name="notes", styles={"font-size": "11px", "color": "#8a6d3b"})
        self.layout = column(row(loss, elrs), row(angles, column(self.verdict, self.readouts, self.notes)), strip)

    def update(self, vd: dict) -> None:
        """Refill every source and text from :func:`view_data`."""
        for name, columns in vd["sources"].items():
            self.sources[name].data = columns
        self.readouts.text = vd["readouts"]
        self.verdict.text = vd["verdict"]
        self.notes.text = vd["notes"]
