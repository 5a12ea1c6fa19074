"""Plots of the map's dynamics: the orbit diagram, Lyapunov exponents, basin fractions and regime maps
(the data from :mod:`toymodel.dynamics` and the simulator).
"""

from __future__ import annotations

import numpy as np

from .. import regimes, theory
from .common import Plot, c_axis, figure_and_axes, format_alphas, threshold_c

__all__ = [
    "REGIME_MAP_COLORS",
    "ATTRACTOR_COLORS",
    "plot_orbit_diagram",
    "plot_lyapunov",
    "plot_basins",
    "plot_regime_map",
]


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


def _theory_c_lines(ax, A=None, labels=True):
    """Vertical lines at the derived special values of c (or of elr = c / A if A is given)."""
    scale = 1.0 if A is None else 1.0 / A
    lines = [(threshold_c(), "k", "-", "threshold c = 1"),
             (theory.orbit_instability_c(), "tab:red", "--",
              r"orbit loses stability, c = $\sqrt{3}$ (derived for n = 2; confirmed by simulation)")]
    for cval, col, ls, lab in lines:
        ax.axvline(cval * scale, color=col, ls=ls, lw=1, label=lab if labels else None, zorder=3)


def plot_orbit_diagram(od, ax=None):
    """Loss samples against log ELR (every seed), with the derived orbit loss and special c."""
    fig, ax = figure_and_axes(ax, figsize=(9, 5))
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
    c_axis(ax, A)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"Orbit diagram, α = {format_alphas(a)}, {od.steps:,} steps per run", fontsize=10, pad=12)
    fig.tight_layout()
    return Plot(fig, ax)


def plot_lyapunov(result, ax=None, benettin=None):
    """Largest Lyapunov exponent against ELR with its spread over seeds, the exponent along the
    angle directions, and the derived values on the equilibrium orbit.

    ``result`` is a :class:`SimulationResult` computed with ``lyapunov=True``; ``benettin`` an
    optional list of :class:`toymodel.dynamics.BenettinResult` drawn as checks.
    """
    fig, ax = figure_and_axes(ax, figsize=(9, 5))
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
    c_axis(ax, A)
    ax.legend(fontsize=7, loc="lower right", framealpha=0.9)
    ax.set_title(f"Largest Lyapunov exponent, α = {format_alphas(a)}, {result.seeds.size} seeds, "
                 f"window {result.steps - result.burn_in:,} steps", fontsize=10)
    fig.tight_layout()
    return Plot(fig, ax)


def plot_basins(basins, ax=None):
    """Stacked basin fractions against c, and the median time to reach the minimum/orbit."""
    fig, ax = figure_and_axes(ax, figsize=(9, 5))
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
    ax.set_title(f"Basin fractions, α = {format_alphas(a)}, {b0.seeds.size} random starts per c, {b0.steps:,} steps",
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
    fig, axes = figure_and_axes(axes, ncols=len(maps), figsize=(6.2 * len(maps), 5.2))
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
        ax.axvline(threshold_c(), color="k", lw=1.5)
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
