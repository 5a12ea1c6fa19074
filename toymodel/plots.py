"""Every plot of the package (the only module that imports matplotlib).

Plots are a leaf: each function takes data that :mod:`toymodel.simulate`, the analyses and the
jobs have computed, and returns ``(fig, ax)`` (or ``(fig, axes)``); it never simulates. Curves
that theory gives are evaluated from :mod:`toymodel.theory`, never retyped. Pass ``ax=None`` (or
``axes=None``) for a new figure. :mod:`toymodel.figures` holds the recipes that compute the data
of every committed figure and the command that regenerates them.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import regimes, theory  # noqa: E402
from ._records import atomic_path  # noqa: E402

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
    "save_figure",
    "plot_phase_diagram",
    "plot_toy_loss",
    "plot_toy_group_elrs",
    "plot_conventional_phase",
    "plot_conventional_trajectories",
]

class Plot(NamedTuple):
    """What every plot function returns: the figure and its axes (one Axes or an array of them).
    It unpacks like a tuple: ``fig, ax = plot_toy_loss(result)``."""

    fig: object
    axes: object

    def save(self, path, fmt: str | None = None, dpi: int = 150) -> Path:
        """Save the figure atomically (see :func:`save_figure`) and close it."""
        return save_figure(self.fig, path, fmt, dpi)


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


def _fig_ax(ax, figsize):
    """``(fig, ax)``: a new figure unless an Axes is given."""
    if ax is None:
        return plt.subplots(figsize=figsize)
    return ax.figure, ax


def _c_axis(ax, A: float):
    """A secondary top axis showing c = elr * sum(alpha)."""
    sec = ax.secondary_xaxis("top", functions=(lambda e: e * A, lambda cc: cc / A))
    sec.set_xlabel(r"$c=\tilde\eta\sum_i\alpha_i$", fontsize=9)
    return sec


def _fmt_alphas(a) -> str:
    return "(" + ", ".join(f"{v:g}" for v in np.asarray(a, dtype=float)) + ")"


def _segments(labels):
    """Contiguous runs [(start, stop, label)] of a label sequence."""
    out = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            out.append((start, i, labels[start]))
            start = i
    return out


def _regime_bands(axes, elrs, regime, subtype, label_ax=None):
    """Shade contiguous regime ranges: edges half-way between grid points (in log space), and the
    outer edges at the first and last point, so bands never extend past the data."""
    elrs = np.asarray(elrs, dtype=float)
    lg = np.log(elrs)
    edges = np.exp(np.concatenate([[lg[0]], (lg[1:] + lg[:-1]) / 2, [lg[-1]]]))
    keys = [r + ("/chaotic" if s == "chaotic" else "") for r, s in zip(regime, subtype, strict=False)]
    for start, stop, key in _segments(keys):
        color = REGIME_COLORS.get(key, "#ffffff")
        for ax in axes:
            ax.axvspan(edges[start], edges[stop], color=color, lw=0, zorder=0)
    if label_ax is not None:
        for start, stop, reg in _segments(list(regime)):
            if stop - start < 3:  # too narrow to label
                continue
            mid = np.sqrt(edges[start] * edges[stop])
            label_ax.text(mid, 0.97, REGIME_LABELS.get(reg, reg), transform=label_ax.get_xaxis_transform(),
                          ha="center", va="top", fontsize=8, color="0.2", fontweight="bold")


def _legend_patches(regime=None, subtype=None):
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


def plot_phase_diagram(pd, axes=None):
    """The phase diagram: loss, cosine, group ELRs (and the Lyapunov exponent when present)
    against log ELR, with regime bands, theory curves, the threshold and the crossover criterion.

    Parameters
    ----------
    pd : :class:`toymodel.phase_diagram.PhaseDiagram`
    axes : sequence of Axes, optional
    """
    t = pd.table
    a = pd.alphas
    A = a.sum()
    elrs = np.asarray(t["elr"], dtype=float)
    has_lyap = "mean_lyapunov" in t
    n_panels = 4 if has_lyap else 3
    if axes is None:
        fig, axes = plt.subplots(n_panels, 1, figsize=(8.5, 2.7 * n_panels + 0.8), sharex=True)
    else:
        fig = axes[0].figure
    ax_l, ax_c, ax_g = axes[0], axes[1], axes[2]
    _regime_bands(axes, elrs, t["regime"], t["subtype"], label_ax=ax_l)
    thr = theory.threshold_elr(a)
    b_, p_ = pd.params.get("batch_size"), pd.params.get("mask_prob", 1.0)
    sgd_thr = theory.sgd_threshold_elr(a, b_, p_) if b_ is not None else None
    rg = theory.random_guess_loss(a)
    cross = regimes.crossover_c() / A
    fine = np.geomspace(elrs[0], elrs[-1], 800)
    for ax in axes:
        ax.axvline(thr, color="k", lw=1.2, zorder=3)
        if sgd_thr is not None:
            ax.axvline(sgd_thr, color="tab:green", lw=1.5, zorder=3)
        ax.axvline(cross, color="k", lw=1.0, ls=":", zorder=3)
        ax.set_xscale("log")

    # loss
    m, s = np.asarray(t["mean_loss"]), np.asarray(t["std_loss"])
    ax_l.fill_between(elrs, m - s, m + s, color="tab:blue", alpha=0.25, lw=0, label="± time std (seed mean)")
    ax_l.plot(elrs, m, ".", ms=3, color="tab:blue", label="simulated mean loss")
    ax_l.plot(fine, theory.equilibrium_loss(a, fine), color="k", lw=1.3,
              label=r"theory $F^*=\frac{A}{2}(1-\frac{1}{c})$")
    ax_l.axhline(rg, color="tab:red", ls="--", lw=1, label=f"random guess A/2 = {rg:g}")
    ax_l.axhspan(rg * (1 - regimes.RANDOM_WALK_LOSS_TOL), rg * (1 + regimes.RANDOM_WALK_LOSS_TOL), color="tab:red",
                 alpha=0.12, lw=0, label=f"criterion ±{regimes.RANDOM_WALK_LOSS_TOL:.0%}")
    ref = np.asarray(t["refined"], dtype=bool) if "refined" in t else np.zeros(elrs.size, bool)
    if ref.any():
        ax_l.plot(elrs[ref], m[ref], "o", ms=4.5, mfc="none", mec="k", mew=0.8,
                  label=f"bisection points (--refine {pd.params['refine']:g})")
        for b in pd.refinement["boundaries"]:
            for ax in axes:
                ax.axvspan(b["elr_lo"], b["elr_hi"], color="k", alpha=0.5, lw=0, zorder=2)
    ax_l.set_ylabel(r"time-averaged loss $F(\theta_t)$")
    ax_l.legend(fontsize=7, loc="center left", ncol=1, framealpha=0.9)

    # cosine
    ax_c.plot(elrs, t["mean_cosine"], ".", ms=3, color="tab:green", label="simulated")
    ax_c.plot(fine, theory.equilibrium_cosine(a, fine), color="k", lw=1.3, label=r"theory $\cos^*=1/c$")
    ax_c.axhspan(-regimes.RANDOM_WALK_COSINE_TOL, regimes.RANDOM_WALK_COSINE_TOL, color="tab:red", alpha=0.12, lw=0,
                 label=f"criterion |cos| ≤ {regimes.RANDOM_WALK_COSINE_TOL}")
    ax_c.set_ylabel(r"$\cos\angle(\theta_t,\theta_{t+1})$")
    ax_c.set_ylim(-0.1, 1.05)
    ax_c.legend(fontsize=7, loc="lower left", framealpha=0.9)

    # group ELRs
    n = a.size
    for i in range(n):
        col = GROUP_COLORS[i % len(GROUP_COLORS)]
        ax_g.plot(elrs, t[f"hm_group_elr_{i + 1}"], ".", ms=3, color=col, label=rf"$\tilde\eta_{{{i + 1}}}$ "
                                                                                rf"($\alpha$={a[i]:g})")
        ax_g.plot(fine, theory.equilibrium_group_elrs(a, fine)[:, i], "--", color=col, lw=1)
    ax_g.plot([], [], "k--", lw=1, label=r"theory $\tilde\eta A/\alpha_i$")
    ax_g.set_yscale("log")
    ax_g.set_ylabel("group ELR\n" + r"$\tilde\eta/\langle\omega_i\rangle_t$ (harmonic mean)", fontsize=9)
    ax_g.legend(fontsize=7, loc="upper left", ncol=2, framealpha=0.9)

    if has_lyap:
        ax_y = axes[3]
        lm, ls_ = np.asarray(t["mean_lyapunov"]), np.asarray(t["std_lyapunov"])
        ax_y.fill_between(elrs, lm - ls_, lm + ls_, color="tab:purple", alpha=0.25, lw=0)
        ax_y.plot(elrs, lm, ".", ms=3, color="tab:purple", label="largest exponent (seed mean ± std)")
        if ref.any():
            ax_y.plot(elrs[ref], lm[ref], "o", ms=4.5, mfc="none", mec="k", mew=0.8)
        if "mean_lyapunov_angle" in t:
            ax_y.plot(elrs, t["mean_lyapunov_angle"], ".", ms=2, color="0.5", label="angle directions only")
        ax_y.axhline(regimes.CHAOS_LYAPUNOV_TOL, color="tab:red", ls=":", lw=1, label="chaos criterion")
        ax_y.axvline(theory.orbit_instability_c() / A, color="tab:red", ls="--", lw=1,
                     label=r"orbit loses stability at c = $\sqrt{3}$ (derived for n = 2;" "\n"
                           "confirmed by simulation for unequal weights, n = 2-4: docs/chaos.md)")
        ax_y.axhline(0, color="k", lw=0.6)
        ax_y.set_yscale("symlog", linthresh=1e-3)
        ax_y.set_ylabel("largest Lyapunov exponent\nper step (natural log)", fontsize=9)
        ax_y.legend(fontsize=7, loc="center right", framealpha=0.9)

    axes[-1].set_xlabel(r"total effective learning rate $\tilde\eta$")
    _c_axis(ax_l, A)
    handles = _legend_patches(t["regime"], t["subtype"])
    from matplotlib.lines import Line2D

    if sgd_thr is not None:
        handles.append(Line2D([], [], color="tab:green", lw=1.5,
                              label=f"SGD threshold k*(b={b_}, p={p_:g})/Σα = {sgd_thr:.4g} (theory)"))
    handles += [Line2D([], [], color="k", lw=1.2,
                       label=f"{'GD ' if sgd_thr is not None else ''}threshold 1/Σα = {thr:.4g} (sharp, theory)"),
                Line2D([], [], color="k", lw=1, ls=":", label="equilibrium→divergence crossover c = "
                                                              f"{regimes.crossover_c():g} (criterion)")]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7, frameon=False, bbox_to_anchor=(0.5, 0.0))
    seeds = len(pd.params["seeds"])
    mode = f"SGD b = {b_}, p = {p_:g}" if b_ is not None else "full-batch GD"
    fig.suptitle(f"Toy model phase diagram, α = {_fmt_alphas(a)}, {mode}  ({len(elrs)} ELRs × {seeds} seeds, "
                 f"{pd.params['steps']:,} steps, burn-in {pd.params['burn_in']:,})", fontsize=10)
    fig.tight_layout(rect=(0, 0.008 * (1 + (len(handles) + 2) // 3), 1, 0.98))
    return Plot(fig, axes)


def plot_toy_loss(result, axes=None, floor: float = 1e-16):
    """F(theta_t) against t on log axes, one line per ELR, with the derived equilibrium levels.

    Two panels: the full range down to ``floor`` (values below it, where the loss has converged
    to numerical zero, are drawn at the floor) and a zoom on the equilibrium levels.
    """
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    else:
        fig = axes[0].figure
    a = result.alphas
    steps = result.trace_steps
    for ax, lo in zip(axes, (floor, 0.05), strict=False):
        for kq, e in enumerate(result.elrs):
            col = f"C{kq}"
            y = np.maximum(result.loss_trace[kq, 0], floor)
            ax.plot(steps, y, color=col, lw=0.9, label=rf"$\tilde\eta$ = {e:g} (c = {e * a.sum():.2g})")
            fl = theory.equilibrium_loss(a, e)
            if fl > 0:
                ax.axhline(fl, color=col, ls="--", lw=1.1)
        ax.axhline(theory.random_guess_loss(a), color="k", ls=":", lw=0.9, label="random guess A/2")
        ax.set_yscale("log")
        ax.set_ylim(lo / 2 if lo < 1e-3 else lo, 2 * a.sum())
        ax.set_xlabel("iteration t")
    axes[0].plot([], [], "k--", lw=1.1, label=r"theory $F^*=\frac{A}{2}(1-\frac{1}{c})$")
    axes[0].set_ylabel(r"loss $F(\theta_t)$")
    axes[0].set_title(f"full range (values below {floor:g} drawn at {floor:g})", fontsize=9)
    axes[1].set_title("zoom on the equilibrium levels", fontsize=9)
    axes[0].legend(fontsize=8, loc="center right")
    fig.suptitle(f"Toy model α = {_fmt_alphas(a)}, random start (seed {int(result.seeds[0])})", fontsize=10)
    fig.tight_layout()
    return Plot(fig, axes)


def plot_toy_group_elrs(result, axes=None):
    """Group ELRs eta_i(t): one row per ELR, one column per group, with dashed lines at the derived
    equilibrium values (for ELRs above the threshold)."""
    a = result.alphas
    n = a.size
    K_ = result.elrs.size
    if axes is None:
        fig, axes = plt.subplots(K_, n, figsize=(3.4 * n, 2.3 * K_ + 0.6), squeeze=False, sharex=True)
    else:
        fig = np.asarray(axes).flat[0].figure
    axes = np.asarray(axes).reshape(K_, n)
    steps = result.trace_steps
    for kq, e in enumerate(result.elrs):
        eq = theory.equilibrium_group_elrs(a, e)
        for i in range(n):
            ax = axes[kq, i]
            tr = result.group_elr_trace[kq, 0, :, i]
            ax.plot(steps, tr, color=f"C{kq}", lw=0.7)
            if np.all(np.isfinite(eq)):
                ax.axhline(eq[i], color="k", ls="--", lw=1.1)
                # the derived value as a small title of its own, where it cannot cover the data
                ax.set_title(rf"$\tilde\eta_{i + 1}^*$ = {eq[i]:.3g}", fontsize=8, loc="right", pad=2)
            if np.nanmax(tr) > 10 * np.nanmin(tr):  # a log axis only where the trace spans a decade
                ax.set_yscale("log")
            else:
                ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
                ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.3g"))
            if kq == 0:
                ax.set_title(rf"group {i + 1} ($\alpha_{i + 1}$ = {a[i]:g})", fontsize=9)
            if i == 0:
                ax.set_ylabel(rf"$\tilde\eta$ = {e:g} (c = {e * a.sum():.2g})" + "\n" + r"$\tilde\eta_i(t)$",
                              fontsize=9)
            if kq == K_ - 1:
                ax.set_xlabel("iteration t")
    fig.suptitle(f"Group ELRs of the toy model, α = {_fmt_alphas(a)}, seed {int(result.seeds[0])}; dashed: derived "
                 r"equilibrium $\tilde\eta A/\alpha_i$", fontsize=10)
    fig.tight_layout()
    return Plot(fig, axes)


REGIME_MAP_COLORS = {
    "convergence": "#4f8fd0",
    "chaotic_equilibrium/periodic": "#f5c26b",
    "chaotic_equilibrium/chaotic": "#d9542c",
    "divergence": "#9a9a9a",
    "nonfinite": "#000000",
}
ATTRACTOR_COLORS = {
    "minimum": "#4f8fd0",
    "equilibrium_orbit": "#f5c26b",
    "periodic": "#7cc47a",
    "quasi_periodic": "#a783c9",
    "chaotic": "#d9542c",
    "nonfinite": "#000000",
}


def _theory_c_lines(ax, A=None, labels=True, vertical=True):
    """Vertical lines at the derived special values of c (or of elr = c / A if A is given)."""
    scale = 1.0 if A is None else 1.0 / A
    lines = [(1.0, "k", "-", "threshold c = 1"),
             (theory.orbit_instability_c(), "tab:red", "--",
              r"orbit loses stability, c = $\sqrt{3}$ (derived for n = 2; confirmed by simulation)")]
    for cval, col, ls, lab in lines:
        ax.axvline(cval * scale, color=col, ls=ls, lw=1, label=lab if labels else None, zorder=3)


def plot_orbit_diagram(od, ax=None):
    """Loss samples against log ELR (every seed), with the derived orbit loss and special c."""
    fig, ax = _fig_ax(ax, (9, 5))
    a = od.alphas
    A = a.sum()
    K_, S_, W = od.loss.shape
    x = np.repeat(od.elrs, S_ * W)
    y = od.loss.reshape(-1)
    ax.plot(x, y, ",", color="tab:blue", alpha=0.35, rasterized=True)
    ax.plot([], [], ".", ms=3, color="tab:blue", label=f"F(θ_t), last {W} steps of each run ({S_} seeds)")
    fine = np.geomspace(od.elrs[0], od.elrs[-1], 800)
    ax.plot(fine, theory.equilibrium_loss(a, fine), color="tab:orange", lw=1.6,
            label=r"equilibrium orbit $F^*$ (theory)")
    ax.axhline(theory.random_guess_loss(a), color="tab:red", ls=":", lw=1, label="random guess A/2")
    _theory_c_lines(ax, A)
    ax.set_xscale("log")
    ax.set_xlabel(r"total ELR $\tilde\eta$")
    ax.set_ylabel(r"loss $F(\theta_t)$ after the transient")
    _c_axis(ax, A)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"Orbit diagram, α = {_fmt_alphas(a)}, {od.steps:,} steps per run", fontsize=10, pad=12)
    fig.tight_layout()
    return Plot(fig, ax)


def plot_lyapunov(result, ax=None, benettin=None):
    """Largest Lyapunov exponent against ELR with its spread over seeds, the exponent along the
    angle directions, and the derived values on the equilibrium orbit.

    ``result`` is a :class:`SimulationResult` computed with ``lyapunov=True``; ``benettin`` an
    optional list of :class:`toymodel.dynamics.BenettinResult` drawn as checks.
    """
    fig, ax = _fig_ax(ax, (9, 5))
    a = result.alphas
    A = a.sum()
    e = result.elrs
    lam = result.lyapunov
    with np.errstate(invalid="ignore"):
        q10, q50, q90 = np.nanpercentile(lam, [10, 50, 90], axis=1)
        qa = np.nanmedian(result.lyapunov_angle, axis=1)
    ax.fill_between(e, q10, q90, color="tab:purple", alpha=0.25, lw=0, label="largest exponent, 10-90% of seeds")
    ax.plot(e, q50, color="tab:purple", lw=1.2, label=r"largest exponent $\lambda_1$ (median)")
    ax.plot(e, qa, color="0.45", lw=1, label=r"angle directions only (median)")
    fine = np.geomspace(e[0], e[-1], 800)
    cc = fine * A
    above = cc > 1
    mu0 = np.array([theory.cycle_multipliers(a, x)[0].real for x in fine[above]])
    ax.plot(fine[above], 0.5 * np.log(mu0), "k--", lw=1,
            label=r"orbit theory, angle directions: $\frac{1}{2}\log\mu_0=\log|1-2/c^2|$")
    stable = above & (cc < theory.orbit_instability_c())
    ax.plot(fine[stable], np.zeros(stable.sum()), "k-", lw=2.2, alpha=0.6,
            label=r"orbit theory: $\lambda_1=0$ (neutral pairs $|\mu_\pm|=1$)")
    if benettin:
        ax.errorbar([b.elr for b in benettin], [b.exponent.mean() for b in benettin],
                    yerr=[3 * b.stderr.mean() / np.sqrt(b.exponent.size) + b.exponent.std() for b in benettin],
                    fmt="o", ms=4, color="tab:green", label="two-trajectory (Benettin) check")
    ax.axhline(regimes.CHAOS_LYAPUNOV_TOL, color="tab:red", ls=":", lw=1, label="chaos criterion")
    _theory_c_lines(ax, A)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel(r"total ELR $\tilde\eta$")
    ax.set_ylabel("Lyapunov exponent per step (natural log)")
    _c_axis(ax, A)
    ax.legend(fontsize=7, loc="lower right", framealpha=0.9)
    ax.set_title(f"Largest Lyapunov exponent, α = {_fmt_alphas(a)}, {result.seeds.size} seeds, "
                 f"window {result.steps - result.burn_in:,} steps", fontsize=10)
    fig.tight_layout()
    return Plot(fig, ax)


def plot_basins(basins, ax=None):
    """Stacked basin fractions against c, and the median time to reach the minimum/orbit."""
    fig, ax = _fig_ax(ax, (9, 5))
    a = basins[0].alphas
    A = a.sum()
    cs = np.array([b.elr * A for b in basins])
    names = list(basins[0].fractions)  # every attractor label (dynamics.ATTRACTORS) and "nonfinite"
    fr = np.array([[b.fractions[nm] for b in basins] for nm in names])
    keep = fr.sum(axis=1) > 0
    ax.stackplot(cs, fr[keep], labels=[nm.replace("_", " ") for nm, k_ in zip(names, keep, strict=False) if k_],
                 colors=[ATTRACTOR_COLORS[nm] for nm, k_ in zip(names, keep, strict=False) if k_], alpha=0.9)
    ax.set_xscale("log")
    ax.set_xlim(cs[0], cs[-1])
    ax.set_ylim(0, 1)
    from matplotlib.ticker import FormatStrFormatter
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_xlabel(r"$c=\tilde\eta\sum\alpha_i$")
    ax.set_ylabel("share of random starts")
    _theory_c_lines(ax, None)
    for q in (4, 3):
        cval = theory.resonance_c(q)
        lab = f"1:{q} resonance, c = {cval:.4g} (theory)"
        ax.axvline(cval, color="0.3", ls=":", lw=0.8)
        ax.text(cval * 1.01, 0.55, lab, transform=ax.get_xaxis_transform(), fontsize=7, ha="left", va="center",
                rotation=90, color="0.2")
    ax2 = ax.twinx()
    for nm, mk in (("minimum", "v"), ("equilibrium_orbit", "o")):
        t = np.array([b.median_reach_time(nm) for b in basins])
        ok = np.isfinite(t)
        if ok.any():
            ax2.plot(cs[ok], t[ok], mk, ms=3, color="k", label=f"median steps to reach the {nm.replace('_', ' ')}")
    ax2.set_yscale("log")
    ax2.set_ylabel("median steps to reach (black markers)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="lower left", framealpha=0.9)
    b0 = basins[0]
    ax.set_title(f"Basin fractions, α = {_fmt_alphas(a)}, {b0.seeds.size} random starts per c, {b0.steps:,} steps",
                 fontsize=10)
    fig.tight_layout()
    return Plot(fig, ax)


def _regime_codes(m):
    keys = list(REGIME_MAP_COLORS)
    code = np.zeros(m.regime.shape)
    for idx in np.ndindex(m.regime.shape):
        key = m.regime[idx] + ("/" + m.subtype[idx] if m.regime[idx] == "chaotic_equilibrium" else "")
        code[idx] = keys.index(key)
    return code, keys


def plot_regime_map(maps, axes=None):
    """Regime maps (one panel per :class:`toymodel.dynamics.RegimeMap`), coloured by regime and
    subtype, with the derived threshold, the orbit's loss of stability and the crossover."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    maps = list(maps)
    if axes is None:
        fig, axes = plt.subplots(1, len(maps), figsize=(6.2 * len(maps), 5.2), squeeze=False)
        axes = axes[0]
    else:
        fig = axes[0].figure
    cmap = ListedColormap(list(REGIME_MAP_COLORS.values()))
    for ax, m in zip(axes, maps, strict=False):
        code, keys = _regime_codes(m)
        lc = np.log(m.cs)
        xe = np.exp(np.concatenate([[lc[0] - (lc[1] - lc[0]) / 2], (lc[1:] + lc[:-1]) / 2,
                                    [lc[-1] + (lc[-1] - lc[-2]) / 2]]))
        if m.kind == "ratio":
            lr = np.log(m.rows)
            ye = np.exp(np.concatenate([[lr[0] - (lr[1] - lr[0]) / 2], (lr[1:] + lr[:-1]) / 2,
                                        [lr[-1] + (lr[-1] - lr[-2]) / 2]]))
        else:
            ye = np.concatenate([[m.rows[0] - 0.5], (m.rows[1:] + m.rows[:-1]) / 2, [m.rows[-1] + 0.5]])
        ax.pcolormesh(xe, ye, code, cmap=cmap, vmin=-0.5, vmax=len(keys) - 0.5, shading="flat", rasterized=True)
        ax.axvline(1.0, color="k", lw=1.5)
        ax.axvline(theory.orbit_instability_c(), color="w", ls="--", lw=1.3)
        ax.axvline(regimes.crossover_c(), color="k", ls=":", lw=1.2)
        ax.set_xscale("log")
        ax.set_xlabel(r"$c=\tilde\eta\sum\alpha_i$")
        if m.kind == "ratio":
            ax.set_yscale("log")
            ax.set_ylabel(r"$\alpha_2/\alpha_1$ (n = 2)")
            ax.set_title("n = 2 groups, α = (1, r)", fontsize=10)
        else:
            ax.set_ylabel("number of groups n (equal α = 1)")
            ax.set_title("n groups of equal weight", fontsize=10)
    handles = [Patch(color=REGIME_MAP_COLORS[k], label=k.replace("chaotic_equilibrium/", "equilibrium: ")) for k in
               REGIME_MAP_COLORS if k != "nonfinite"]
    from matplotlib.lines import Line2D

    handles += [Line2D([], [], color="k", lw=1.5, label="threshold c = 1 (theory)"),
                Line2D([], [], color="0.4", ls="--", lw=1.3, label=r"orbit loses stability, c = $\sqrt{3}$ (theory, n "
                                                                   r"= 2)"),
                Line2D([], [], color="k", ls=":", lw=1.2,
                       label=f"random-walk crossover c = {regimes.crossover_c():g} (criterion)")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    m0 = maps[0]
    fig.suptitle(f"Regime maps: majority of {m0.seeds.size} seeds per cell, {m0.steps:,} steps, subtype by the largest "
                 "Lyapunov exponent", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    return Plot(fig, axes)


def plot_sgd_threshold(bs, ps, ratio, sim=(), ax=None):
    """SGD/GD threshold ratio k*(b, p) against batch size, one curve per mask probability, with
    simulated convergence boundaries as points.

    ``ratio`` (P, B) is :func:`toymodel.theory.sgd_stability_edge` on the grid; ``sim`` a list of
    ``(b, p, simulated ratio)``.
    """
    fig, ax = _fig_ax(ax, (8, 5))
    bs = np.asarray(bs)
    for j, p in enumerate(ps):
        col = f"C{j}"
        ax.plot(bs, ratio[j], ".-", color=col, lw=1.2, ms=3, label=f"theory, p = {p:g} (integer b)")
        ax.plot(bs, theory.sgd_stability_edge_large_batch(bs, p), ":", color=col, lw=1)
        pts = [(b, r) for b, pp, r in sim if pp == p]
        if pts:
            ax.plot([b for b, _ in pts], [r for _, r in pts], "o", color=col, mfc="white", ms=6, mew=1.5,
                    label=f"simulated boundary, p = {p:g}")
    ax.plot([], [], "k:", lw=1, label="large-b expansion 1 + (1-p)/(bp)")
    ax.axhline(1.0, color="k", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("batch size b")
    ax.set_ylabel(r"threshold ratio SGD / GD $= k^*(b,p)$")
    ax.set_ylim(0, max(1.5, float(np.nanmax(ratio)) * 1.05))
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    ax.set_title("Convergence threshold of mini-batch SGD on the toy (independent of α)", fontsize=10)
    fig.tight_layout()
    return Plot(fig, ax)


def plot_bridge_regimes(bs, axes=None):
    """The network's sweep: final train loss, test error, effective gradient norm and the cosine
    of consecutive iterates against ELR, with the regime bands of the classification."""
    t = bs.table
    elrs = np.asarray(t["elr"], dtype=float)
    if axes is None:
        fig, axes = plt.subplots(4, 1, figsize=(8, 10.5), sharex=True)
    else:
        fig = axes[0].figure
    _regime_bands(axes, elrs, t["regime"], t["subtype"], label_ax=axes[0])
    rg = float(np.mean(bs.random_guess))

    def band(ax, name, color, label, log=True):
        m, s = np.asarray(t[name]), np.asarray(t[f"std_{name}"])
        ax.errorbar(elrs, m, yerr=s, fmt="o-", ms=3, lw=1, color=color, capsize=2, label=label)
        if log:
            ax.set_yscale("log")

    band(axes[0], "final_train_loss", "tab:blue", "final train loss (mean ± std over seeds)")
    axes[0].axhline(rg, color="tab:red", ls="--", lw=1, label=f"random-guess level (measured) {rg:.2f}")
    axes[0].set_ylabel("train loss")
    band(axes[1], "final_test_error", "tab:orange", "final test error", log=False)
    n_cls = int(bs.params.get("n_classes", 10))
    axes[1].axhline(1 - 1 / n_cls, color="tab:red", ls="--", lw=1, label=f"chance ({n_cls} classes)")
    axes[1].set_ylabel("test error")
    axes[2].plot(elrs, t["median_eff_grad_norm"], "o-", ms=3, lw=1, color="tab:green",
                 label=r"effective gradient norm $\|g\|\,\|\theta\|$ (median over the window, mean over seeds)")
    axes[2].set_yscale("log")
    axes[2].set_ylabel(r"$\tilde g$")
    band(axes[3], "mean_cosine", "tab:purple", r"cos$(\theta_t,\theta_{t+1})$ per step", log=False)
    band(axes[3], "epoch_cosine", "0.4", "cos between consecutive epochs", log=False)
    axes[3].axhspan(-regimes.RANDOM_WALK_COSINE_TOL, regimes.RANDOM_WALK_COSINE_TOL, color="tab:red", alpha=0.12,
                    lw=0, label=f"random-walk criterion |cos| ≤ {regimes.RANDOM_WALK_COSINE_TOL}")
    axes[3].set_ylabel("cosine")
    axes[3].set_xscale("log")
    axes[3].set_xlabel(r"total effective learning rate $\tilde\eta$")
    for ax in axes:
        ax.legend(fontsize=7, loc="best", framealpha=0.9)
    fig.legend(handles=_legend_patches(), loc="lower center", ncol=4, fontsize=7, frameon=False)
    p = bs.params
    fig.suptitle(f"{_bridge_model_name(p)}, trained on the sphere ({p.get('dtype', 'float64')}): "
                 f"{len(elrs)} ELRs × {len(p['seeds'])} seeds × {p['epochs']} epochs", fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 0.98))
    return Plot(fig, axes)


def plot_bridge_sharpness(bs, axes=None):
    """Sharpness against ELR with the regime bands: the tangent Hessian's top eigenvalue with the
    stability bound lambda_max = bound / elr (derivation 15), its trace, and elr x lambda_max."""
    bound = theory.sphere_stability_bound()
    t = bs.table
    elrs = np.asarray(t["elr"], dtype=float)
    if axes is None:
        fig, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    else:
        fig = axes[0].figure
    _regime_bands(axes, elrs, t["regime"], t["subtype"], label_ax=axes[0])
    top, s_top = np.asarray(t["sharpness_top"]), np.asarray(t["std_sharpness_top"])
    axes[0].errorbar(elrs, top, yerr=s_top, fmt="o-", ms=3, lw=1, color="tab:blue", capsize=2,
                     label=r"top eigenvalue $\lambda_{\max}$ of the tangent Hessian (mean ± std over seeds)")
    axes[0].plot(elrs, bound / elrs, "--", color="tab:red", lw=1,
                 label=rf"stability bound $\lambda_{{\max}} = {bound:g}/\tilde\eta$ (derivation 15)")
    axes[0].set_yscale("log")
    axes[0].set_ylabel(r"$\lambda_{\max}$")
    axes[0].set_ylim(max(top.min() / 5, 1e-6), max(top.max(), 1e-6) * 5)
    tr, s_tr = np.asarray(t["sharpness_trace"]), np.asarray(t["std_sharpness_trace"])
    axes[1].errorbar(elrs, np.abs(tr), yerr=s_tr, fmt="o-", ms=3, lw=1, color="tab:green", capsize=2,
                     label="|trace| (Hutchinson; bars: std over seeds)")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("trace")
    ex, s_ex = np.asarray(t["elr_x_sharpness"]), np.asarray(t["std_elr_x_sharpness"])
    axes[2].errorbar(elrs, ex, yerr=s_ex, fmt="o-", ms=3, lw=1, color="tab:purple", capsize=2,
                     label=r"$\tilde\eta\,\lambda_{\max}$")
    axes[2].axhline(bound, color="tab:red", ls="--", lw=1, label=f"bound {bound:g}: a stable minimum lies below")
    axes[2].set_yscale("log")
    axes[2].set_ylabel(r"$\tilde\eta\,\lambda_{\max}$")
    axes[2].set_xscale("log")
    axes[2].set_xlabel(r"total effective learning rate $\tilde\eta$")
    for ax in axes:
        ax.legend(fontsize=7, loc="best", framealpha=0.9)
    fig.legend(handles=_legend_patches(), loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.suptitle(f"{_bridge_model_name(bs.params)}: sharpness at the end of training (float64, tangent space)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 0.98))
    return Plot(fig, axes)


def plot_bridge_conventional(cs, bands=None, axes=None, show=(0, 3, 5, 8)):
    """Conventional training of a network: (top) the total ELR over training for a few values of
    eta*lambda (seed 0), over the fixed-ELR regime bands ``bands = (elrs, regimes, subtypes)`` of
    a sphere sweep drawn as horizontal bands; (middle) its harmonic mean over the window against
    eta*lambda with the same bands; (bottom) the per-channel law of derivation 12: every channel's
    time mean of log(1 + ESS^2) (seed 0) against -2 log(1 - eta lambda)."""
    if axes is None:
        fig, axes = plt.subplots(3, 1, figsize=(8, 10.5))
    else:
        fig = axes[0].figure
    t = cs.table
    lw = np.asarray(t["lr_wd"], dtype=float)

    def hbands(ax):
        if bands is None:
            return
        elrs, reg, sub = bands
        lg = np.log(elrs)
        edges = np.exp(np.concatenate([[lg[0]], (lg[1:] + lg[:-1]) / 2, [lg[-1]]]))
        keys = [r + ("/chaotic" if su == "chaotic" else "") for r, su in zip(reg, sub, strict=True)]
        for start, stop, key in _segments(keys):
            ax.axhspan(edges[start], edges[stop], color=REGIME_COLORS.get(key, "#ffffff"), lw=0, zorder=0)

    ax = axes[0]
    hbands(ax)
    cmap = plt.get_cmap("viridis")
    show = [k for k in show if k < len(cs.runs)]
    for j, k in enumerate(show):
        r = cs.runs[k][0]
        ax.plot(np.arange(1, len(r.total_elr) + 1), r.total_elr, "-", lw=1.2, color=cmap(j / max(1, len(show) - 1)),
                label=rf"$\eta\lambda$ = {r.lr_wd:.3g}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(r"total ELR $\eta/((1-\eta\lambda)\|\theta\|^2)$ (epoch mean)")
    ax.legend(fontsize=7, loc="best", framealpha=0.9)
    ax = axes[1]
    hbands(ax)
    ax.errorbar(lw, t["hm_elr"], yerr=t["std_hm_elr"], fmt="o-", ms=3, lw=1, color="k", capsize=2,
                label="harmonic mean of the total ELR over the window (mean ± std over seeds)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\eta\lambda$")
    ax.set_ylabel("effective ELR")
    ax.legend(fontsize=7, loc="best", framealpha=0.9)
    ax = axes[2]
    for k, row in enumerate(cs.runs):
        r = row[0]
        ax.plot(np.full(r.mean_log1p_ess2.size, lw[k]), r.mean_log1p_ess2, ".", ms=2, color="tab:blue", alpha=0.5,
                label="every channel, measured (seed 0)" if k == 0 else None)
    xx = np.geomspace(lw.min(), lw.max(), 100)
    ax.plot(xx, -2 * np.log1p(-xx), "-", color="tab:red", lw=1, label=r"law $-2\log(1-\eta\lambda)$ (derivation 12)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\eta\lambda$")
    ax.set_ylabel(r"time mean of $\log(1+\mathrm{ESS}_i^2)$")
    err = float(np.max(t["law_error"]))
    ax.set_title(f"with the boundary term the law holds on every channel to {err:.1e}", fontsize=8)
    ax.legend(fontsize=7, loc="best", framealpha=0.9)
    if bands is not None:
        fig.legend(handles=_legend_patches(), loc="lower center", ncol=4, fontsize=7, frameon=False,
                   title="bands: the fixed-ELR sweep's regimes at that ELR", title_fontsize=7)
    fig.suptitle(f"{_bridge_model_name(cs.params)}: conventional training (SGD, weight decay "
                 f"{cs.params['weight_decay']:g}, no projection)", fontsize=10)
    fig.tight_layout(rect=(0, 0.05 if bands is not None else 0, 1, 0.98))
    return Plot(fig, axes)


def plot_bridge_finetune(table, pretrain_table, params, axes=None):
    """Fine-tuning from every pre-training ELR: test error (top) and sharpness (bottom) after
    fine-tuning against the pre-training ELR (mean ± std over seeds), with the pre-training regime
    bands, the test error before fine-tuning, and the baselines (from scratch; conventional
    training fine-tuned) as horizontal lines with their seed spread."""
    if axes is None:
        fig, axes = plt.subplots(2, 1, figsize=(8, 8), sharex=True)
    else:
        fig = axes[0].figure
    pe = np.asarray(table["pretrain_elr"], dtype=float)
    elrs = np.unique(pe)
    _regime_bands(axes, np.asarray(pretrain_table["elr"], dtype=float), pretrain_table["regime"],
                  pretrain_table["subtype"], label_ax=axes[0])

    def stat(col):
        v = np.asarray(table[col], dtype=float)
        return np.array([v[pe == e].mean() for e in elrs]), np.array([v[pe == e].std() for e in elrs])

    m, s_ = stat("finetuned_test_error")
    axes[0].errorbar(elrs, m, yerr=s_, fmt="o-", ms=4, lw=1.2, color="tab:blue", capsize=2,
                     label=f"after fine-tuning ({params['finetune_epochs']} epochs at ELR {params['finetune_elr']:g})")
    m0, s0 = stat("pretrain_test_error")
    axes[0].errorbar(elrs, m0, yerr=s0, fmt=".:", ms=3, lw=0.8, color="0.4", capsize=1, label="before fine-tuning")
    for col, color, label in (("scratch_test_error", "tab:green",
                               f"from scratch at ELR {params['finetune_elr']:g}, {params['scratch_epochs']} epochs"),
                              ("conventional_test_error", "tab:red",
                               f"conventional (eta lambda {params['conventional_lr_wd']:g}) then fine-tuned")):
        v = np.asarray(table[col], dtype=float)
        axes[0].axhline(v.mean(), color=color, lw=1.2, label=f"{label}: {v.mean():.4f} ± {v.std():.4f}")
        axes[0].axhspan(v.mean() - v.std(), v.mean() + v.std(), color=color, alpha=0.12, lw=0)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("test error")
    m, s_ = stat("finetuned_sharpness")
    axes[1].errorbar(elrs, m, yerr=s_, fmt="o-", ms=4, lw=1.2, color="tab:purple", capsize=2,
                     label=r"$\lambda_{\max}$ of the tangent Hessian after fine-tuning")
    axes[1].axhline(2 / params["finetune_elr"], color="tab:red", ls="--", lw=1,
                    label=r"stability bound $2/\tilde\eta$ at the fine-tuning ELR")
    axes[1].set_yscale("log")
    axes[1].set_xscale("log")
    axes[1].set_ylabel(r"$\lambda_{\max}$")
    axes[1].set_xlabel(r"pre-training ELR $\tilde\eta$")
    for ax in axes:
        ax.legend(fontsize=7, loc="best", framealpha=0.9)
    fig.legend(handles=_legend_patches(), loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.suptitle(f"{_bridge_model_name(params)}: fine-tuning from every pre-training regime "
                 f"({len(params['seeds'])} seeds)", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.98))
    return Plot(fig, axes)


def _bridge_model_name(p) -> str:
    """E.g. "Scale-invariant MLP (64, 64, 64, 10) on digits" from a bridge sweep's parameters."""
    data = "digits" if not p.get("data") else str(p["data"]).replace("\\", "/").rsplit("/", 1)[-1]
    n_in, n_cls = p.get("input_dim", 64), p.get("n_classes", 10)
    if p.get("model", "mlp") == "convnet":
        w = int(p["width"])
        return f"Scale-invariant ConvNet ({w}, {2 * w}, {4 * w}, {8 * w} channels) on {data}"
    return f"Scale-invariant MLP {tuple([n_in] + list(p['hidden']) + [n_cls])} on {data}"


def plot_bridge_ess(bs, ax=None):
    """Per-channel ELR against per-channel effective gradient norm (window means, seed 0) for
    the ELRs classified as equilibrium, with lines of constant ESS (y = ESS / x). Equal ESS across
    channels puts an ELR's points on one such line."""
    fig, ax = _fig_ax(ax, (7.5, 6))
    w = bs.window
    t = bs.table
    eq = [k for k, r in enumerate(t["regime"]) if r == "chaotic_equilibrium"]
    conv = [k for k, r in enumerate(t["regime"]) if r == "convergence"]
    cmap = plt.get_cmap("viridis")
    xs_all, ys_all = [], []
    for j, k in enumerate(eq):
        run = bs.runs[k][0]
        x = run.channel_elr[w].mean(axis=0)
        y = run.channel_egn[w].mean(axis=0)
        ess = run.channel_ess[w].mean(axis=0)  # per-step ESS averaged, as in the CSV
        col = cmap(j / max(1, len(eq) - 1))
        ax.loglog(x, y, ".", ms=4, color=col,
                  label=rf"$\tilde\eta$ = {t['elr'][k]:.3g}: std log ESS = {np.std(np.log(ess)):.3f}")
        xs_all.append(x)
        ys_all.append(y)
    if conv:
        k = conv[-1]
        run = bs.runs[k][0]
        x = run.channel_elr[w].mean(axis=0)
        y = run.channel_egn[w].mean(axis=0)
        ess = run.channel_ess[w].mean(axis=0)
        ax.loglog(x, y, "x", ms=4, color="0.6", label=rf"convergence, $\tilde\eta$ = {t['elr'][k]:.3g}: "
                                                      rf"std log ESS = {np.std(np.log(ess)):.3f}")
        xs_all.append(x)
        ys_all.append(y)
    if xs_all:
        xx = np.concatenate(xs_all)
        yy = np.concatenate(ys_all)
        xl = np.geomspace(xx.min() / 2, xx.max() * 2, 50)
        for e in np.geomspace(1e-4, 1e2, 13):
            ax.loglog(xl, e / xl, ":", color="0.75", lw=0.8, zorder=0)
        ax.set_xlim(xl[0], xl[-1])
        ax.set_ylim(yy.min() / 2, yy.max() * 2)
        ax.plot([], [], ":", color="0.6", label=r"constant ESS $\tilde\eta_i\tilde g_i$ (one line per half decade)")
    ax.set_xlabel(r"channel ELR $\tilde\eta_i$")
    ax.set_ylabel(r"channel effective gradient norm $\tilde g_i$")
    ax.legend(fontsize=6.5, loc="lower left", framealpha=0.9)
    ax.set_title(f"{_bridge_model_name(bs.params)}\nper-channel ELR vs effective gradient norm (window means, "
                 "seed 0); equal ESS = on a dotted line", fontsize=9)
    fig.tight_layout()
    return Plot(fig, ax)


def _fixed_elr_bands(ax, lw_min, lw_max):
    """The sphere's regimes at the same c, mapped to eta*lambda by c = 1/(1 - eta lambda) (derivation
    13): equilibrium (orbit attracting) below c = sqrt 3, chaotic to the crossover, then divergence."""
    bounds = [lw_min, 1 - 1 / theory.orbit_instability_c(), 1 - 1 / regimes.crossover_c(), lw_max]
    keys = ["chaotic_equilibrium", "chaotic_equilibrium/chaotic", "divergence"]
    for lo, hi, key in zip(bounds[:-1], bounds[1:], keys, strict=True):
        if hi > lo:
            ax.axvspan(max(lo, lw_min), min(hi, lw_max), color=REGIME_COLORS[key], lw=0, zorder=0)


def plot_conventional_phase(cs, axes=None):
    """Conventional training against eta*lambda: time-averaged loss with the orbit's (A/2) eta lambda,
    the effective c (harmonic mean) with 1/(1 - eta lambda), the share of time converged, the mean
    log-ESS law, and the largest Lyapunov exponent; the bands are the sphere's regimes at the same c.

    Parameters
    ----------
    cs : :class:`toymodel.conventional.ConventionalSweep`
    """
    t = cs.table
    a = cs.alphas
    lw = np.asarray(t["lr_wd"], dtype=float)
    has_lyap = "mean_lyapunov" in t
    n_panels = 5 if has_lyap else 4
    if axes is None:
        fig, axes = plt.subplots(n_panels, 1, figsize=(8.5, 2.3 * n_panels + 1.0), sharex=True)
    else:
        fig = axes[0].figure
    for ax in axes:
        _fixed_elr_bands(ax, lw[0], lw[-1])
        ax.set_xscale("log")
    ax = axes[0]
    m, s = np.asarray(t["mean_loss"]), np.asarray(t["std_loss"])
    ax.fill_between(lw, np.maximum(m - s, 1e-12), m + s, color="tab:blue", alpha=0.2, lw=0,
                    label="± time std (seed mean)")
    ax.plot(lw, m, "o", ms=3, color="tab:blue", label="simulated time-averaged loss")
    ax.plot(lw, t["theory_loss"], "k-", lw=1.2, label=r"orbit $F^*=\frac{A}{2}\eta\lambda$ (theory)")
    ax.axhline(theory.random_guess_loss(a), color="tab:red", ls="--", lw=1, label="random guess A/2")
    ax.set_yscale("log")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7, loc="lower right", framealpha=0.9)
    ax = axes[1]
    ax.plot(lw, t["hm_c"], "o", ms=3, color="tab:green", label=r"effective $c = A\,\tilde\eta$ (harmonic time mean)")
    ax.plot(lw, t["theory_c"], "k-", lw=1.2, label=r"orbit $c=1/(1-\eta\lambda)$ (theory)")
    ax.axhline(1.0, color="k", lw=0.8, ls=":", label="sphere threshold c = 1")
    ax.set_yscale("log")
    ax.set_ylabel("effective c")
    ax.legend(fontsize=7, loc="upper left", framealpha=0.9)
    ax = axes[2]
    ax.plot(lw, t["frac_converged"], "o-", ms=3, lw=1, color="tab:purple", label="share of steps at the minimum")
    ax.plot(lw, t["periodic_behaviour"], "s", ms=3, color="0.4", label="share of seeds with periodic bursts")
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("share")
    ax.legend(fontsize=7, loc="upper right", framealpha=0.9)
    ax = axes[3]
    ax.plot(lw, t["mean_log1p_ess2"], "o", ms=3, color="tab:orange",
            label=r"$\langle\log(1+\mathrm{ESS}_i^2)\rangle$ (group and seed mean)")
    ax.plot(lw, t["theory_log1p_ess2"], "k-", lw=1.2, label=r"law $-2\log(1-\eta\lambda)$ (theory)")
    ax.set_yscale("log")
    ax.set_ylabel("mean log-ESS")
    ax.legend(fontsize=7, loc="upper left", framealpha=0.9)
    if has_lyap:
        ax = axes[4]
        ax.plot(lw, t["mean_lyapunov"], "o", ms=3, color="tab:purple", label="largest exponent (seed mean)")
        ax.axhline(regimes.CHAOS_LYAPUNOV_TOL, color="tab:red", ls=":", lw=1, label="chaos criterion")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_ylabel("largest Lyapunov exponent\nper step (natural log)", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", framealpha=0.9)
    axes[-1].set_xlabel(r"$\eta\lambda$ (learning rate × weight decay)")
    from matplotlib.patches import Patch

    cstar, cross = theory.orbit_instability_c(), regimes.crossover_c()
    handles = [Patch(color=REGIME_COLORS["chaotic_equilibrium"],
                     label=f"sphere at the same c: orbit attracts (c < {cstar:.4g})"),
               Patch(color=REGIME_COLORS["chaotic_equilibrium/chaotic"], label="sphere: chaotic equilibrium"),
               Patch(color=REGIME_COLORS["divergence"], label=f"sphere: divergence criterion (c ≥ {cross:g})")]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=7, frameon=False)
    p = cs.params
    fig.suptitle(f"Conventional training of the toy, α = {_fmt_alphas(a)}, weight decay {p['weight_decay']:g}: "
                 f"{len(lw)} values × {len(p['seeds'])} seeds, {p['steps']:,} steps", fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 0.98))
    return Plot(fig, axes)


def plot_conventional_trajectories(result, quiet, axes=None):
    """Loss and c(t) of one-group conventional runs at a few eta*lambda (one row each), with the derived
    quiet-phase lengths overlaid.

    Parameters
    ----------
    result : SimulationResult of :func:`toymodel.simulate_conventional` with ``record_every=1``
        (one group, so c(t) = k(t) = the group ELR of the direction map times alpha).
    quiet : list (one per learning rate) of ``(t_start, t_end_measured, t_end_derived)`` per quiet
        phase, the derived end from ``theory.conventional_quiet_steps``.
    """
    K_ = result.elrs.size
    if axes is None:
        fig, axes = plt.subplots(K_, 2, figsize=(11, 2.6 * K_ + 0.6), squeeze=False)
    else:
        fig = np.asarray(axes).flat[0].figure
    axes = np.asarray(axes).reshape(K_, 2)
    a = result.alphas
    steps = result.trace_steps
    wd = result.weight_decay
    for kq, lr_ in enumerate(result.elrs):
        loss = np.maximum(result.loss_trace[kq, 0], 1e-30)
        kk = result.group_elr_trace[kq, 0, :, 0] * a[0]
        axl, axk = axes[kq]
        axl.plot(steps, loss, color=f"C{kq}", lw=0.7)
        axl.axhline(theory.conventional_equilibrium_loss(a, lr_, wd), color="k", ls="--", lw=1,
                    label=r"orbit $F^*$ (theory)")
        axl.set_yscale("log")
        axl.set_ylabel(rf"$\eta\lambda$ = {lr_ * wd:g}" + "\nloss (floor 1e-30)", fontsize=9)
        axk.plot(steps, kk, color=f"C{kq}", lw=0.7, label="c(t) = k(t) (simulated)")
        axk.axhline(theory.conventional_equilibrium_c(lr_, wd), color="k", ls="--", lw=1, label="orbit c (theory)")
        axk.axhline(1.0, color="k", ls=":", lw=0.8)
        for i, (t0, _t_meas, t_pred) in enumerate(quiet[kq]):
            if t_pred - t0 < 20:  # too short to see
                continue
            # derived quiet phase: k grows by (1 - lr wd)^-2 per step from the measured k_a and the burst
            # comes after the derived length, at the derived k_b
            tt = np.arange(t0, int(np.ceil(t_pred)) + 1)
            axk.plot(tt, kk[t0] * (1 - lr_ * wd) ** (-2.0 * (tt - t0)), "--", color="tab:red", lw=1.2,
                     label="derived quiet phase: k_a (1-ηλ)^(-2t) up to the derived burst" if i == 0 else None)
        axk.set_yscale("log")
        axk.set_ylabel("c(t)")
    for ax in axes[-1]:
        ax.set_xlabel("iteration t")
    handles, labels = [], []
    for ax in axes[0]:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("Conventional training, one group (groups evolve independently under weight decay): periodic "
                 "convergence and bursts at small ηλ, circulation around the orbit at larger ηλ", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return Plot(fig, axes)
