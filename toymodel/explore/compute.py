"""The explorer's compute layer: control values in, the data of every view out.

Pure functions of the controls (no Bokeh, no widgets, no files): :func:`explore_data` runs the
toy at one point with the library's public functions and returns an :class:`ExploreData` that
holds everything the views draw and the readouts print. The web app (:mod:`toymodel.explore.app`)
and the static page (:mod:`toymodel.explore.static`) both draw from it, so what the page shows is
testable without a browser.

Where the numbers come from:

* the run: :func:`toymodel.simulate` (GD on the sphere, mini-batch SGD) or
  :func:`toymodel.simulate_conventional` (weight decay), with ``lyapunov=True`` and traces;
* the verdict of the run and of the phase strip's quick sweep: one function,
  :func:`toymodel.regimes.classify_result_elrs`, the classification of the phase diagram;
* every derived value (threshold, F*, cos*, the orbit's angle, group ELRs and multipliers, the
  random-guess level, the landing c of conventional training): :mod:`toymodel.theory`;
* the group angles: the kernel records no positions, so the view continues the run from its final
  point with the NumPy reference map (:meth:`ToyProblem.step`, :meth:`ToyProblem.conventional_step`)
  for :data:`TAIL_STEPS` steps; under SGD with fresh batch noise of the same law.
"""

from __future__ import annotations

import argparse
import functools
import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import _streams, regimes, theory
from .._cli import int_arg
from .._validate import MAX_STEPS, as_alphas, as_elrs, as_int, default_burn_in
from ..model import PAPER_ALPHAS, ToyProblem
from ..simulate import SimulationResult, simulate, simulate_conventional

__all__ = ["Control", "Mode", "MODES", "PRESETS", "DEFAULTS", "MAX_GROUPS", "MAX_EXPLORE_STEPS", "MAX_TRACE_POINTS",
           "MAX_RECORDED", "TAIL_STEPS", "SWEEP_C", "SWEEP_MAX_STEPS", "LOSS_FLOOR", "ExploreData", "explore_data",
           "preset_alphas", "readout_rows", "verdict_text", "envelope", "warm_up", "kernel_variants", "REGIME_LABELS"]


@dataclass(frozen=True)
class Control:
    """A control that one mode adds to the common ones (alphas, ELR, steps, seed).

    ``name`` is its keyword in :func:`explore_data`, ``label`` the widget's title, ``default`` the
    text it starts with, ``integer`` whether it is a count. ``kwarg`` names the keyword of the
    mode's simulate function that receives the value unchanged; ``None`` means the mode's run
    turns it into something else (``lr_wd`` becomes the weight decay ``lr_wd / lr``).
    """

    name: str
    label: str
    default: str
    kwarg: str | None = None
    integer: bool = False


@dataclass(frozen=True)
class Mode:
    """A way of training the toy: its label, the controls it adds, and whether it is conventional
    training (``simulate_conventional``; the ELR control is then the learning rate, which with the
    default initial norm 1 is also the initial ELR)."""

    key: str
    label: str
    controls: tuple = ()
    conventional: bool = False


MODES = {
    "gd": Mode("gd", "GD on the sphere"),
    "sgd": Mode("sgd", "mini-batch SGD on the sphere", (
        Control("batch_size", "batch size b", "4", kwarg="batch_size", integer=True),
        Control("mask_prob", "mask probability p", "0.5", kwarg="mask_prob"),
    )),
    "conventional": Mode("conventional", "conventional training (weight decay)", (
        Control("lr_wd", "ηλ (learning rate × weight decay)", "0.01"),
        Control("momentum", "momentum μ", "0", kwarg="momentum"),
    ), conventional=True),
}

#: the presets of the group weights: the paper's, equal weights, random (from the seed)
PRESETS = ("paper", "equal", "random")
#: the explorer's starting point: the paper's toy in its chaotic equilibrium
DEFAULTS = dict(alphas=",".join(f"{a:g}" for a in PAPER_ALPHAS), elr=0.2, steps=10_000, seed=0, mode="gd")
#: the groups a page draws at most (one colour each)
MAX_GROUPS = 10
#: the longest run the explorer takes (a page update stays interactive up to here)
MAX_EXPLORE_STEPS = 10**6
#: traces are recorded at every step up to MAX_RECORDED steps (every ``ceil(steps / MAX_RECORDED)``
#: beyond) and drawn as their envelope: the minimum and the maximum of each of MAX_TRACE_POINTS / 2
#: bins, so that a burst of one step still shows (the page never needs more points than pixels)
MAX_RECORDED = 100_000
MAX_TRACE_POINTS = 1_000
#: steps of the NumPy continuation drawn in the group-angle view
TAIL_STEPS = 160
#: the phase strip's quick sweep: c = elr * sum(alpha) on this grid, one seed, at most
#: SWEEP_MAX_STEPS steps (the run's own steps if fewer)
SWEEP_C = np.geomspace(0.1, 100.0, 40)
SWEEP_MAX_STEPS = 10_000
#: the strip's extent in c and the resolution of its theory bands
STRIP_C = (0.1, 100.0)
#: losses are drawn on a log axis, floored at LOSS_FLOOR * sum(alpha) (a run at the minimum reaches 0)
LOSS_FLOOR = 1e-16
#: how verdicts read on the page
REGIME_LABELS = {"convergence": "convergence", "chaotic_equilibrium": "chaotic equilibrium",
                 "divergence": "divergence (random walk)", "nonfinite": "non-finite (the norm split ran away)"}


@dataclass(frozen=True)
class ExploreData:
    """Everything the views draw for one setting of the controls.

    Attributes
    ----------
    params : dict
        The validated controls: ``alphas`` (list), ``elr``, ``c`` (elr * sum alpha), ``steps``,
        ``burn_in``, ``seed``, ``mode``, the mode's values, ``record_every``.
    trace : dict of arrays
        Envelopes (:func:`envelope`) of the recorded traces, at most ``max_trace_points`` each:
        ``t_loss`` and ``loss`` (floored at LOSS_FLOOR * sum alpha), ``t_total`` and ``total_elr``,
        ``t_groups`` and ``group_elrs`` (n, P).
    tail : dict of arrays
        The NumPy continuation from the final point: ``t`` (W,), ``phi`` and ``group_elrs`` (n, W).
    theory : dict
        Derived values (None where they do not apply): ``threshold_elr``, ``threshold_c``,
        ``equilibrium_loss``, ``equilibrium_cosine``, ``equilibrium_amplitude``, ``group_elrs``
        (n,), ``multipliers`` (complex, or None without an orbit), ``random_guess_loss``,
        ``instability_c``, ``crossover_c``, and for conventional training ``landing_c`` and
        ``ess_law``.
    measured : dict
        ``regime``, ``subtype``, ``lyapunov``, ``lyapunov_angle``, ``mean_loss``, ``mean_cosine``,
        ``effective_c`` (conventional: A times the harmonic mean of the total ELR), ``mean_log1p_ess2``.
    strip : dict
        ``bands``: (c_lo, c_hi, regime) from theory; ``sweep_c``, ``sweep_regime``,
        ``sweep_subtype``: the quick sweep's verdicts; ``sweep_steps``; ``marks``: name -> c.
    notes : list of str
        Warnings of the run (non-finite trajectories) in one line each.
    seconds : float
        Wall time of :func:`explore_data`.
    """

    params: dict
    trace: dict
    tail: dict
    theory: dict
    measured: dict
    strip: dict
    notes: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_groups(self) -> int:
        return len(self.params["alphas"])


# ------------------------------------------------------------------------------------------ input
def _number(value, name: str, integer: bool = False):
    """A control's value: numbers pass through (the library validates them); text is parsed, and
    text that is no number raises a ValueError naming the control."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if integer:
        try:
            return int_arg(text)
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"{name} {exc}") from None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def _alphas(alphas) -> np.ndarray:
    a = as_alphas(alphas)
    if a.size > MAX_GROUPS:
        raise ValueError(f"alphas: the explorer draws at most {MAX_GROUPS} groups, got {a.size}")
    return a


def preset_alphas(preset: str, n_groups: int = 3, seed: int = 0) -> tuple:
    """The group weights of a preset: ``"paper"`` (1, 2, 4), ``"equal"`` (n ones) or ``"random"``
    (n weights log-uniform in [0.5, 8], rounded to 2 digits, from the seed's stream
    ``RANDOM_ALPHAS``)."""
    n = as_int(n_groups, "n_groups", minimum=1, maximum=MAX_GROUPS)
    if preset == "paper":
        return tuple(PAPER_ALPHAS)
    if preset == "equal":
        return (1.0,) * n
    if preset == "random":
        seed = as_int(seed, "seed", minimum=0)
        w = np.exp(_streams.rng(seed, _streams.RANDOM_ALPHAS).uniform(math.log(0.5), math.log(8.0), n))
        return tuple(float(f"{v:.2g}") for v in w)
    raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")


def _mode(mode) -> Mode:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return MODES[mode]


def _mode_values(mode: Mode, values: dict) -> dict:
    extra = sorted(set(values) - {c.name for m in MODES.values() for c in m.controls})
    if extra:
        raise ValueError(f"unknown control {extra[0]!r}")
    out = {c.name: _number(values.get(c.name, c.default), c.name, c.integer) for c in mode.controls}
    if "lr_wd" in out:
        lr_wd = out["lr_wd"]
        if not (isinstance(lr_wd, (int, float)) and 0 < lr_wd < 1):
            raise ValueError(f"lr_wd (ηλ) must be in (0, 1): the decay factor 1 − ηλ must be positive, got {lr_wd!r}")
    return out


def envelope(t, y, points: int):
    """A trace reduced to at most ``points`` points that keep its extremes: the steps are cut into
    ``points // 2`` bins of equal size and each bin gives its minimum and its maximum, in the order
    they occur. Returns ``(t, y)``; a trace that is short enough is returned as it is. NaN (a
    non-finite run) stays NaN."""
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    bins = max(1, int(points) // 2)
    if y.size <= 2 * bins:
        return t, y
    width = -(-y.size // bins)
    pad = bins * width - y.size
    yp = np.concatenate([y, np.full(pad, np.nan)]).reshape(bins, width)
    lo = np.argmin(np.where(np.isnan(yp), np.inf, yp), axis=1)
    hi = np.argmax(np.where(np.isnan(yp), -np.inf, yp), axis=1)
    first, second = np.minimum(lo, hi), np.maximum(lo, hi)
    idx = np.stack([first, second], axis=1) + (np.arange(bins) * width)[:, None]
    idx = np.minimum(idx, y.size - 1).reshape(-1)
    return t[idx], y[idx]


# ------------------------------------------------------------------------------------------- runs
def _run(mode: Mode, problem: ToyProblem, elrs, steps: int, seed: int, values: dict, record_every: int = 0):
    """One call of the mode's simulate function (Lyapunov exponents on), and its per-ELR verdicts.

    The single path of both the current point and the phase strip's sweep: the same run options
    and the same classification (:func:`toymodel.regimes.classify_result_elrs`). One trajectory runs
    on one thread (results never depend on it): a second would only wait, and its spinning would take
    the core the web server and the browser need.
    """
    kw = {c.kwarg: values[c.name] for c in mode.controls if c.kwarg}
    kw["threads"] = 1 if np.size(elrs) == 1 else None
    burn_in = default_burn_in(steps)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if mode.conventional:
            lrs = as_elrs(elrs, "elr")
            # the momentum kernels have no tangent map: no Lyapunov exponent with momentum
            res = simulate_conventional(problem, lrs, values["lr_wd"] / lrs[0], steps, seeds=[seed], burn_in=burn_in,
                                        record_every=record_every, lyapunov=not kw.get("momentum"), **kw)
        else:
            res = simulate(problem, elrs, steps, seeds=[seed], burn_in=burn_in, record_every=record_every,
                           lyapunov=True, **kw)
    notes = [" ".join(str(w.message).split()) for w in caught if issubclass(w.category, RuntimeWarning)]
    regime, subtype, _ = regimes.classify_result_elrs(res)
    return res, regime, subtype, notes


@functools.lru_cache(maxsize=32)
def _sweep(alphas: tuple, steps: int, seed: int, mode_key: str, values: tuple):
    """The phase strip's quick sweep (cached: it does not depend on the ELR)."""
    mode = MODES[mode_key]
    problem = ToyProblem(alphas)
    res, regime, subtype, notes = _run(mode, problem, SWEEP_C / problem.total_alpha, steps, seed, dict(values))
    return regime, subtype, notes, regimes.result_stability_edge(res)


def _tail(problem: ToyProblem, res: SimulationResult, steps: int = TAIL_STEPS):
    """The group angles (folded into [-pi/2, pi/2): phi and phi + pi give the same loss) and group
    ELRs of ``steps`` steps of the NumPy map from the run's final point."""
    n = problem.n_groups
    t = np.arange(res.steps, res.steps + steps)
    thetas = np.full((steps, problem.dim), np.nan)
    theta = np.asarray(res.final_theta[0, 0], dtype=float)
    if np.all(np.isfinite(theta)):
        elr, wd = float(res.elrs[0]), res.weight_decay
        weights = [None] * steps
        if res.batch_size is not None:  # the batch mean of b masked examples: alpha_i M_i / (b p)
            b, p = res.batch_size, res.mask_prob
            counts = _streams.rng(int(res.seeds[0]), _streams.CONTINUATION_NOISE).binomial(b, p, (steps, n))
            weights = problem.alphas * counts / (b * p)
        with np.errstate(all="ignore"):
            for i in range(steps):
                thetas[i] = theta
                theta = (problem.step(theta, elr, weights[i]) if wd is None
                         else problem.conventional_step(theta, elr, wd, weights[i]))
    with np.errstate(all="ignore"):
        phi = (problem.group_angles(thetas) + np.pi / 2) % np.pi - np.pi / 2
        if res.weight_decay is None:
            gelr = problem.group_elrs(thetas, float(res.elrs[0]))
        else:
            gelr = problem.direction_group_elrs(thetas, float(res.elrs[0]), res.weight_decay)
    return {"t": t, "phi": phi.T, "group_elrs": gelr.T}


def _bands(alphas, threshold_c: float) -> list:
    """Contiguous (c_lo, c_hi, regime) intervals of :func:`toymodel.regimes.theory_regime` over the strip."""
    a = np.asarray(alphas, dtype=float)
    cs = np.geomspace(*STRIP_C, 2001)
    reg = regimes.theory_regime(a, cs / a.sum(), threshold_c=threshold_c)
    edges = [0] + [i for i in range(1, cs.size) if reg[i] != reg[i - 1]] + [cs.size - 1]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        # a band ends where the next begins: at the derived edge where theory has one
        out.append([float(cs[lo]), float(cs[hi]), str(reg[lo])])
    for i in range(len(out) - 1):
        edge = threshold_c if out[i][2] == "convergence" else regimes.crossover_c()
        out[i][1] = out[i + 1][0] = float(edge)
    return [tuple(b) for b in out]


def _theory(problem: ToyProblem, elr: float, mode: Mode, values: dict, threshold_c: float) -> dict:
    a = problem.alphas
    A = problem.total_alpha
    out = {"random_guess_loss": theory.random_guess_loss(a), "crossover_c": regimes.crossover_c(),
           "instability_c": theory.orbit_instability_c(), "threshold_c": threshold_c, "landing_c": None,
           "ess_law": None, "multipliers": None}
    if mode.key == "sgd":
        out["threshold_elr"] = theory.sgd_threshold_elr(a, values["batch_size"], values["mask_prob"])
    else:
        out["threshold_elr"] = theory.threshold_elr(a)
    if mode.conventional:
        wd = values["lr_wd"] / elr
        c_orbit = theory.conventional_equilibrium_c(elr, wd)
        out["landing_c"] = theory.conventional_landing_c(values["lr_wd"])
        out["equilibrium_loss"] = theory.conventional_equilibrium_loss(a, elr, wd)
        out["group_elrs"] = np.asarray(theory.conventional_equilibrium_group_elrs(a, elr, wd), dtype=float)
        out["ess_law"] = theory.conventional_ess_law(elr, wd)
        # every group's orbit is the sphere's one-step orbit at k_i = c (derivation 13): its cosine and
        # angle are those of the sphere's orbit at that c
        orbit_elr = c_orbit / A
    else:
        orbit_elr = elr
        out["equilibrium_loss"] = theory.equilibrium_loss(a, elr)
        out["group_elrs"] = np.asarray(theory.equilibrium_group_elrs(a, elr), dtype=float)
        if elr * A > 1:
            out["multipliers"] = theory.cycle_multipliers(a, elr)
    out["equilibrium_cosine"] = theory.equilibrium_cosine(a, orbit_elr)
    out["equilibrium_amplitude"] = theory.equilibrium_amplitude(a, orbit_elr)
    return out


# ---------------------------------------------------------------------------------- the one entry
def explore_data(alphas=DEFAULTS["alphas"], elr=DEFAULTS["elr"], steps=DEFAULTS["steps"], seed=DEFAULTS["seed"],
                 mode=DEFAULTS["mode"], *, max_trace_points: int = MAX_TRACE_POINTS, tail_steps: int = TAIL_STEPS,
                 **mode_values) -> ExploreData:
    """Run the toy at one setting of the controls and return the data of every view.

    Parameters
    ----------
    alphas : str or sequence of float
        Group weights, e.g. ``"1,2,4"``; at most :data:`MAX_GROUPS`.
    elr : float or str
        The total ELR (for conventional training: the learning rate, which with the initial norm 1
        is the initial ELR).
    steps : int or str
        Steps of the run, at most :data:`MAX_EXPLORE_STEPS`; the statistics and the verdict use the
        second half (the jobs' default burn-in).
    seed : int or str
        The initial point (and the SGD noise).
    mode : str
        A key of :data:`MODES`: ``"gd"``, ``"sgd"`` or ``"conventional"``.
    max_trace_points, tail_steps : int
        Points of each trace's envelope (at most), steps of the group-angle continuation.
    **mode_values
        The controls of the mode (:attr:`Mode.controls`), numbers or text: ``batch_size`` and
        ``mask_prob`` for SGD, ``lr_wd`` for conventional training. Values of other modes' controls
        are ignored.

    Returns
    -------
    ExploreData

    Raises
    ------
    ValueError
        For bad input, with the library's message naming the parameter (e.g. ``alphas must be
        positive``, ``lrs * weight_decay must be below 1``).
    """
    t0 = time.perf_counter()
    a = _alphas(alphas)
    elr = float(as_elrs(_number(elr, "elr"), "elr")[0])
    steps = as_int(_number(steps, "steps", integer=True), "steps", minimum=1, maximum=min(MAX_EXPLORE_STEPS,
                                                                                            MAX_STEPS))
    seed = as_int(_number(seed, "seed", integer=True), "seed", minimum=0)
    m = _mode(mode)
    values = _mode_values(m, mode_values)
    max_trace_points = as_int(max_trace_points, "max_trace_points", minimum=2)
    problem = ToyProblem(a)
    A = problem.total_alpha
    record_every = -(-steps // MAX_RECORDED)

    res, regime, subtype, notes = _run(m, problem, [elr], steps, seed, values, record_every)
    sweep_steps = min(steps, SWEEP_MAX_STEPS)
    # conventional training is placed on the sphere's diagram: its strip is GD's
    sweep_mode, sweep_values = ("gd", ()) if m.conventional else (m.key, tuple(sorted(values.items())))
    sw_regime, sw_subtype, sw_notes, sweep_edge = _sweep(tuple(a.tolist()), sweep_steps, seed, sweep_mode,
                                                         sweep_values)
    notes += [f"phase strip: {n}" for n in sw_notes]
    threshold_c = regimes.result_stability_edge(res) if not m.conventional else sweep_edge

    ge = res.group_elr_trace[0, 0].T  # (n, T')
    with np.errstate(divide="ignore", invalid="ignore"):
        total = 1.0 / np.sum(1.0 / ge, axis=0)
    t = res.trace_steps
    trace = {}
    trace["t_loss"], trace["loss"] = envelope(t, np.maximum(res.loss_trace[0, 0], LOSS_FLOOR * A), max_trace_points)
    trace["t_total"], trace["total_elr"] = envelope(t, total, max_trace_points)
    groups = [envelope(t, g, max_trace_points) for g in ge]
    trace["t_groups"] = np.array([g[0] for g in groups])
    trace["group_elrs"] = np.array([g[1] for g in groups])
    th = _theory(problem, elr, m, values, threshold_c)
    lyap = res.lyapunov is not None
    measured = {"regime": str(regime[0]), "subtype": str(subtype[0]),
                "lyapunov": float(res.lyapunov[0, 0]) if lyap else None,
                "lyapunov_angle": float(res.lyapunov_angle[0, 0]) if lyap else None,
                "mean_loss": float(res.mean_loss[0, 0]),
                "mean_cosine": float(res.mean_cosine[0, 0]), "effective_c": None, "mean_log1p_ess2": None}
    if m.conventional:
        measured["effective_c"] = float(res.hm_elr[0, 0] * A)
        measured["mean_log1p_ess2"] = np.asarray(res.mean_log1p_ess2[0, 0], dtype=float)
    marks = {"threshold": threshold_c, "instability": th["instability_c"], "crossover": th["crossover_c"],
             "point": elr * A}
    if m.conventional:
        marks.update(point=None, landing=th["landing_c"], effective=measured["effective_c"])
    strip = {"bands": _bands(a, threshold_c), "sweep_c": SWEEP_C, "sweep_regime": np.asarray(sw_regime),
             "sweep_subtype": np.asarray(sw_subtype), "sweep_steps": sweep_steps, "marks": marks}
    params = dict(alphas=a.tolist(), elr=elr, c=elr * A, steps=steps, burn_in=res.burn_in, seed=seed, mode=m.key,
                  record_every=record_every, **values)
    tail = _tail(problem, res, as_int(tail_steps, "tail_steps", minimum=1))
    return ExploreData(params, trace, tail, th, measured, strip, notes, time.perf_counter() - t0)


# --------------------------------------------------------------------------------------- readouts
def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, (list, tuple, np.ndarray)):
        return "(" + ", ".join(_fmt(x, digits) for x in np.asarray(v).tolist()) + ")"
    v = float(v)
    if not math.isfinite(v):
        return "–" if math.isnan(v) else ("∞" if v > 0 else "−∞")
    return f"{v:.{digits}g}".replace("-", "−")


def _multipliers_text(mults) -> str:
    if mults is None:
        return "no orbit (c ≤ 1)"
    mults = np.asarray(mults)
    swing = f"{_fmt(mults[0].real, 3)} (swing)"
    pairs = mults[1:]
    if pairs.size == 0:
        return swing
    arg = abs(float(np.angle(pairs[0])))
    return f"{swing}; {pairs.size // 2}× e^(±{_fmt(arg, 3)}i), |μ| = {_fmt(abs(pairs[0]), 6)}"


def verdict_text(data: ExploreData) -> str:
    """The measured verdict as the page prints it, e.g. ``chaotic equilibrium (chaotic)``."""
    m = data.measured
    text = REGIME_LABELS.get(m["regime"], m["regime"])
    return text + (f" ({m['subtype']})" if m["subtype"] else "")


def readout_rows(data: ExploreData) -> list:
    """The readouts as ``(section, label, value)`` text rows, in the page's order."""
    p, th, m = data.params, data.theory, data.measured
    mode = MODES[p["mode"]]
    rows = [("point", "η̃ (lr)" if mode.conventional else "η̃ (ELR)", _fmt(p["elr"])),
            ("point", "c = η̃Σα", _fmt(p["c"])),
            ("point", "steps (window: second half)", f"{p['steps']:,}")]
    thr = "threshold η̃*_SGD (c = k*)" if mode.key == "sgd" else "threshold η̃* (c = 1)"
    # under SGD the orbit's values are those of GD's orbit at the same ELR; with momentum, those of plain SGD
    orbit = ("theory (the orbit: GD's)" if mode.key == "sgd"
             else "theory (plain SGD, μ = 0)" if p.get("momentum") else "theory")
    rows += [("theory", thr, f"{_fmt(th['threshold_elr'])} (c = {_fmt(th['threshold_c'])})"),
             ("theory", "random-guess loss", _fmt(th["random_guess_loss"]))]
    if mode.conventional:
        rows += [(orbit, "landing c = 1/(1 − ηλ)", _fmt(th["landing_c"])),
                 (orbit, "F* on the orbit", _fmt(th["equilibrium_loss"])),
                 (orbit, "⟨log(1 + ESSᵢ²)⟩ law", _fmt(th["ess_law"]))]
    else:
        rows += [(orbit, "F* on the orbit", _fmt(th["equilibrium_loss"])),
                 (orbit, "cos* = 1/c", _fmt(th["equilibrium_cosine"]))]
    rows += [(orbit, "orbit angle φ*", _fmt(th["equilibrium_amplitude"])),
             (orbit, "orbit group ELRs η̃ᵢ*", _fmt(th["group_elrs"], 3))]
    if not mode.conventional:
        rows += [(orbit, "orbit multipliers per period", _multipliers_text(th["multipliers"]))]
    rows += [(orbit, "orbit unstable from (n = 2)", f"c = {_fmt(th['instability_c'])}"),
             ("measured", "regime", verdict_text(data)),
             ("measured", "Lyapunov exponent (per step)", _fmt(m["lyapunov"])),
             ("measured", "mean loss", _fmt(m["mean_loss"])),
             ("measured", "mean cosine", _fmt(m["mean_cosine"]))]
    if mode.conventional:
        rows += [("measured", "effective c (harmonic mean)", _fmt(m["effective_c"])),
                 ("measured", "⟨log(1 + ESSᵢ²)⟩", _fmt(m["mean_log1p_ess2"], 3))]
    return rows


# ---------------------------------------------------------------------------------------- warm-up
def kernel_variants() -> dict:
    """The kernel variant ``(lyapunov, sgd, weight_decay)`` each mode runs."""
    return {key: (True, key == "sgd", MODES[key].conventional) for key in MODES}


def warm_up(modes=tuple(MODES), progress=None) -> None:
    """Compile the kernels of ``modes`` and build the derived values the readouts use, so that an
    update afterwards costs only the run. ``progress(message)`` is told before each compilation."""
    from .. import _kernels

    for key in modes:
        if progress is not None and _kernels.needs_compiling(*kernel_variants()[key]):
            progress(f"compiling the kernel of {MODES[key].label} (once per machine; 15-90 s)")
        explore_data(steps=20, mode=key, tail_steps=2)
