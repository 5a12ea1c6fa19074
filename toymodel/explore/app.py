"""The explorer's web app: widgets, layout and a Bokeh server around the compute layer.

Every change of a control schedules one update (changes that arrive while one is pending are
merged into it): :func:`toymodel.explore.compute.explore_data` runs with the values of all
controls, :class:`~toymodel.explore.views.Views` refills its sources, and the page redraws. Bad
input (the library's ValueError) is shown in the page, the views keep the last good data, and the
server logs nothing: a session never takes the server down.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import time

from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, CustomJSTickFormatter, Div, Select, Slider, TextInput

from .._validate import as_alphas
from .compute import DEFAULTS, MAX_GROUPS, MODES, explore_data, preset_alphas
from .views import Views, view_data

__all__ = ["ExplorerApp", "make_document", "serve", "check_port", "free_port", "ELR_RANGE"]

#: the ELR slider's range (log10 of the ELR)
ELR_RANGE = (-3.0, 2.0)
_log = logging.getLogger("toymodel.explore")
#: the ELR slider's label, as views.slider_label writes it, in the browser
_SLIDER_LABEL = """
const v = 10 ** tick;
const p = (x) => x.toPrecision(3);
return conventional ? `lr η = ${p(v)} · initial c = ${p(v * A)}` : `η̃ = ${p(v)} · c = η̃Σα = ${p(v * A)}`;
"""


class ExplorerApp:
    """One browser session: the controls, the views and the update loop on a Bokeh document."""

    def __init__(self, doc):
        self.doc = doc
        self.pending = False
        self.updates = 0
        self._from_preset = False
        first = view_data(explore_data())
        self.views = Views(first)

        self.preset = Select(title="α preset", value="paper", options=[("custom", "custom (as typed)"),
                                                                        ("paper", "paper's (1, 2, 4)"),
                                                                        ("equal", "equal weights"),
                                                                        ("random", "random (from the seed)")],
                             name="preset", width=260)
        self.alphas = TextInput(title="α (group weights, comma-separated)", value=DEFAULTS["alphas"], name="alphas",
                                width=260)
        self._scale = None
        self.elr = Slider(title="ELR (log scale)", start=ELR_RANGE[0], end=ELR_RANGE[1], step=0.005,
                          value=math.log10(DEFAULTS["elr"]), name="elr", width=260)
        self.steps = TextInput(title="steps", value=f"{DEFAULTS['steps']}", name="steps", width=125)
        self.seed = TextInput(title="seed", value=f"{DEFAULTS['seed']}", name="seed", width=125)
        self.mode = Select(title="mode", value=DEFAULTS["mode"], options=[(k, m.label) for k, m in MODES.items()],
                           name="mode", width=260)
        # one widget per control of any mode, shown with its mode
        self.mode_inputs = {c.name: TextInput(title=c.label, value=c.default, name=c.name, width=260,
                                              visible=(key == DEFAULTS["mode"]))
                            for key, m in MODES.items() for c in m.controls}
        self.message = Div(text="", name="message", visible=False, width=260,
                           styles={"color": "#a94442", "background": "#f2dede", "padding": "6px",
                                   "border-radius": "4px"})
        # the update counter and what it did, for the page's scripts (tests, the benchmark); no view, so
        # changing it costs no layout
        self.status = ColumnDataSource({"update": [0], "text": [""]}, name="status")

        self.preset.on_change("value", self._on_preset)
        self.alphas.on_change("value", self._on_alphas)
        for w in (self.elr, self.steps, self.seed, self.mode, *self.mode_inputs.values()):
            w.on_change("value", self._changed)

        title = Div(text="<h2 style='margin:0'>toymodel explorer</h2>"
                         "<div style='font-size:12px;color:#555'>the toy of Kodryan et al. (NeurIPS 2022): "
                         "F(θ) = Σ αᵢ xᵢ²/(xᵢ² + yᵢ²) trained on the unit sphere</div>", width=260)
        controls = column(title, self.preset, self.alphas, self.elr, row(self.steps, self.seed),
                          self.mode, *self.mode_inputs.values(), self.message, width=280)
        doc.add_root(row(controls, self.views.layout))
        doc.add_root(self.status)
        doc.add_root(self.views.payload)
        doc.title = "toymodel explorer"
        self._show(first, explore_seconds=None, alphas=DEFAULTS["alphas"], mode=DEFAULTS["mode"])

    # ------------------------------------------------------------------------------ callbacks
    def _on_preset(self, attr, old, new):
        if new == "custom":
            return
        try:
            n = len([p for p in self.alphas.value.split(",") if p.strip()]) or 3
            seed = int(self.seed.value) if self.seed.value.strip().isdigit() else 0
            values = preset_alphas(new, min(n, MAX_GROUPS), seed)
        except ValueError as exc:
            self._error(exc)
            return
        self._from_preset = True
        try:
            self.alphas.value = ",".join(f"{v:g}" for v in values)  # runs _on_alphas, which updates
        finally:
            self._from_preset = False

    def _on_alphas(self, attr, old, new):
        if not self._from_preset:
            self.preset.value = "custom"  # typed by hand
        self._changed(attr, old, new)

    def _changed(self, attr, old, new):
        for key, m in MODES.items():
            for c in m.controls:
                self.mode_inputs[c.name].visible = key == self.mode.value
        if not self.pending:  # merge the changes that arrive before the update runs
            self.pending = True
            self.doc.add_next_tick_callback(self.update)

    # -------------------------------------------------------------------------------- update
    def values(self) -> dict:
        """The control values as :func:`explore_data` takes them (text as typed)."""
        mode = self.mode.value
        kw = {c.name: self.mode_inputs[c.name].value for c in MODES[mode].controls} if mode in MODES else {}
        return dict(alphas=self.alphas.value, elr=10 ** float(self.elr.value), steps=self.steps.value,
                    seed=self.seed.value, mode=mode, **kw)

    def update(self) -> None:
        self.pending = False
        t0 = time.perf_counter()
        try:
            data = explore_data(**self.values())
        except ValueError as exc:  # bad input: the library's message, in the page
            self._error(exc)
            return
        except Exception as exc:  # noqa: BLE001 - a session must not take the server down
            _log.warning("toymodel explorer: update failed: %s: %s", type(exc).__name__, exc)
            self._error(f"internal error: {type(exc).__name__}: {exc}")
            return
        self._show(view_data(data), time.perf_counter() - t0, data.params["alphas"], data.params["mode"])

    def _show(self, vd: dict, explore_seconds, alphas, mode):
        self.updates += 1
        took = "" if explore_seconds is None else f" in {1e3 * explore_seconds:.0f} ms"
        status = f"update {self.updates}: computed{took}"
        ro = vd["sources"]["readouts"]
        ro = {k: list(v) for k, v in ro.items()}
        for k, v in dict(x=0.0, y=max(ro["y"]) + 1.4, text=status, size="10px", style="normal",
                         color="#999999").items():
            ro[k].append(v)
        vd["sources"]["readouts"] = ro
        # every change of the update in one message: the page applies them together
        self.doc.hold("combine")
        try:
            self._set_scale(alphas, mode)
            self.views.update(vd)
            self.message.visible = False
            self.status.data = {"update": [self.updates], "text": [status]}
        finally:
            self.doc.unhold()

    def _set_scale(self, alphas, mode) -> None:
        """The slider shows the ELR and c = ELR * sum(alpha) as it moves, computed in the browser."""
        A = float(sum(as_alphas(alphas)))
        conventional = MODES[mode].conventional
        if self._scale == (A, conventional):
            return
        self._scale = (A, conventional)
        self.elr.format = CustomJSTickFormatter(args={"A": A, "conventional": conventional}, code=_SLIDER_LABEL)

    def _error(self, exc) -> None:
        self.updates += 1
        self.message.text = "⚠ " + " ".join(str(exc).split())
        self.message.visible = True
        status = f"update {self.updates}: input refused; the views show the last valid input"
        self.status.data = {"update": [self.updates], "text": [status]}


def make_document(doc) -> None:
    """The Bokeh application's entry: one :class:`ExplorerApp` per browser session."""
    ExplorerApp(doc)


def free_port(host: str) -> int:
    """A port that is free on ``host`` now (for ``--port 0``)."""
    with contextlib.closing(socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_port(host: str, port: int) -> None:
    """Raise OSError now if ``host:port`` cannot be listened on (before a minute of warming up)."""
    if port == 0:
        return
    with contextlib.closing(socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))


def serve(host: str = "127.0.0.1", port: int = 5006, browser: bool = True, ready=None):
    """Start the Bokeh server on ``host:port`` and run until interrupted.

    ``ready(url)`` is called once the server listens (the command line prints the URL there).
    """
    from bokeh.application import Application
    from bokeh.application.handlers.function import FunctionHandler
    from bokeh.server.server import Server

    # tracebacks of a session (if any slipped through) are not the user's business: one line each
    for name in ("bokeh", "tornado"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if port == 0:
        port = free_port(host)
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::", ""):  # every interface: pages come from whatever address reached it
        origins = ["*"]
    else:
        origins = [f"{shown}:{port}"] + ([f"localhost:{port}"] if host in ("127.0.0.1", "::1", "localhost") else [])
    server = Server({"/": Application(FunctionHandler(make_document))}, address=host, port=port,
                    allow_websocket_origin=origins, num_procs=1)
    server.start()
    url = f"http://{shown}:{port}/"
    if ready is not None:
        ready(url)
    if browser:
        server.io_loop.add_callback(server.show, "/")
    try:
        server.io_loop.start()
    finally:
        server.stop()
