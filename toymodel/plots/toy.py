"""Plots of the toy model on the sphere: the phase diagram, the loss and group ELRs over time (the
paper's toy figures), and the convergence threshold of mini-batch SGD.
"""

from __future__ import annotations

import matplotlib.ticker
import numpy as np

from .. import regimes, theory
from .common import GROUP_COLORS, Plot, c_axis, figure_and_axes, format_alphas, regime_bands, regime_legend_patches

__all__ = [
    "plot_phase_diagram",
    "plot_toy_loss",
    "plot_toy_group_elrs",
    "plot_sgd_threshold",
]


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
    fig, axes = figure_and_axes(axes, nrows=n_panels, figsize=(8.5, 2.7 * n_panels + 0.8), sharex=True)
    ax_l, ax_c, ax_g = axes[0], axes[1], axes[2]
    regime_bands(axes, elrs, t["regime"], t["subtype"], label_ax=ax_l)
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
    c_axis(ax_l, A)
    handles = regime_legend_patches(t["regime"], t["subtype"])
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
    fig.suptitle(f"Toy model phase diagram, α = {format_alphas(a)}, {mode}  ({len(elrs)} ELRs × {seeds} seeds, "
                 f"{pd.params['steps']:,} steps, burn-in {pd.params['burn_in']:,})", fontsize=10)
    fig.tight_layout(rect=(0, 0.008 * (1 + (len(handles) + 2) // 3), 1, 0.98))
    return Plot(fig, axes)


def plot_toy_loss(result, axes=None, floor: float = 1e-16):
    """F(theta_t) against t on log axes, one line per ELR, with the derived equilibrium levels.

    Two panels: the full range down to ``floor`` (values below it, where the loss has converged
    to numerical zero, are drawn at the floor) and a zoom on the equilibrium levels.
    """
    fig, axes = figure_and_axes(axes, ncols=2, figsize=(11, 4))
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
    fig.suptitle(f"Toy model α = {format_alphas(a)}, random start (seed {int(result.seeds[0])})", fontsize=10)
    fig.tight_layout()
    return Plot(fig, axes)


def plot_toy_group_elrs(result, axes=None):
    """Group ELRs eta_i(t): one row per ELR, one column per group, with dashed lines at the derived
    equilibrium values (for ELRs above the threshold)."""
    a = result.alphas
    n = a.size
    K_ = result.elrs.size
    fig, axes = figure_and_axes(axes, nrows=K_, ncols=n, figsize=(3.4 * n, 2.3 * K_ + 0.6), sharex=True)
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
    fig.suptitle(f"Group ELRs of the toy model, α = {format_alphas(a)}, seed {int(result.seeds[0])}; dashed: derived "
                 r"equilibrium $\tilde\eta A/\alpha_i$", fontsize=10)
    fig.tight_layout()
    return Plot(fig, axes)


def plot_sgd_threshold(bs, ps, ratio, sim=(), ax=None):
    """SGD/GD threshold ratio k*(b, p) against batch size, one curve per mask probability, with
    simulated convergence boundaries as points.

    ``ratio`` (P, B) is :func:`toymodel.theory.sgd_stability_edge` on the grid; ``sim`` a list of
    ``(b, p, simulated ratio)``.
    """
    fig, ax = figure_and_axes(ax, figsize=(8, 5))
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
    ax.axhline(theory.sgd_stability_edge(1, 1.0), color="k", lw=1)  # GD: the full batch, p = 1
    ax.set_xscale("log")
    ax.set_xlabel("batch size b")
    ax.set_ylabel(r"threshold ratio SGD / GD $= k^*(b,p)$")
    ax.set_ylim(0, max(1.5, float(np.nanmax(ratio)) * 1.05))
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    ax.set_title("Convergence threshold of mini-batch SGD on the toy (independent of α)", fontsize=10)
    fig.tight_layout()
    return Plot(fig, ax)
