"""Plots of conventional training of the toy (learning rate and weight decay, no projection): the
sweep of eta*lambda against the sphere's regimes at the same c, and single runs over time.
"""

from __future__ import annotations

import numpy as np

from .. import regimes, theory
from .common import REGIME_COLORS, Plot, figure_and_axes, format_alphas, threshold_c

__all__ = [
    "plot_conventional_phase",
    "plot_conventional_trajectories",
]


def _shade_sphere_regimes_at_the_same_c(ax, lw_min, lw_max):
    """Shade, over an eta*lambda axis from ``lw_min`` to ``lw_max``, the regimes that training on the
    sphere has at the c of the conventional orbit, c = 1/(1 - eta lambda) (derivation 13): equilibrium
    (orbit attracting) below c = sqrt 3, chaotic to the crossover, then divergence."""
    bounds = [lw_min, theory.conventional_lr_wd_at_c(theory.orbit_instability_c()),
              theory.conventional_lr_wd_at_c(regimes.crossover_c()), lw_max]
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
    fig, axes = figure_and_axes(axes, nrows=n_panels, figsize=(8.5, 2.3 * n_panels + 1.0), sharex=True)
    for ax in axes:
        _shade_sphere_regimes_at_the_same_c(ax, lw[0], lw[-1])
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
    ax.axhline(threshold_c(), color="k", lw=0.8, ls=":", label="sphere threshold c = 1")
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
    fig.suptitle(f"Conventional training of the toy, α = {format_alphas(a)}, weight decay {p['weight_decay']:g}: "
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
    fig, axes = figure_and_axes(axes, nrows=K_, ncols=2, figsize=(11, 2.6 * K_ + 0.6))
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
        axk.axhline(threshold_c(), color="k", ls=":", lw=0.8)
        for i, (t0, _t_meas, t_pred) in enumerate(quiet[kq]):
            if t_pred - t0 < 20:  # too short to see
                continue
            # derived quiet phase: at the minimum log k grows by -2 log(1 - lr wd) per step (derivations 12
            # and 14: the law's value) from the measured k_a, and the burst comes after the derived length,
            # at the derived k_b
            tt = np.arange(t0, int(np.ceil(t_pred)) + 1)
            growth = theory.conventional_ess_law(lr_, wd)
            axk.plot(tt, kk[t0] * np.exp(growth * (tt - t0)), "--", color="tab:red", lw=1.2,
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


def plot_conventional_momentum(lr_wds, momenta, mean_loss_over_a, mean_cosine, mean_log1p_ess2, axes=None):
    """Conventional training of the toy with momentum: time means over random starts against
    eta*lambda, one colour per momentum, with the orbit of derivation 17 (dashed: loss/A =
    eta lambda/(2(1 + mu)), cos = 1 - eta lambda/(1 + mu), log(1 + ESS^2) = -2 log(1 - eta lambda/(1 + mu)))
    and plain SGD's law -2 log(1 - eta lambda) (derivation 12, dotted).

    Parameters
    ----------
    lr_wds : array_like, shape (K,)
    momenta : sequence of float, shape (M,)
    mean_loss_over_a, mean_cosine, mean_log1p_ess2 : array_like, shape (M, K)
        Measured time means (loss divided by A = sum(alpha); log(1 + ESS^2) averaged over groups).
    axes : array of 3 matplotlib Axes, optional

    Returns
    -------
    Plot
    """
    fig, axes = figure_and_axes(axes, nrows=3, figsize=(8, 10), sharex=True)
    lw = np.asarray(lr_wds, dtype=float)
    xx = np.geomspace(lw.min(), lw.max(), 200)
    colors = ["k", "tab:blue", "tab:orange", "tab:green", "tab:purple"]
    panels = ((mean_loss_over_a, "loss_per_alpha", "time-mean loss / A"),
              (mean_cosine, "cos_step", r"time-mean $\cos(\theta_t,\theta_{t+1})$"),
              (mean_log1p_ess2, "log1p_ess2", r"time-mean $\log(1+\mathrm{ESS}_i^2)$"))
    for ax, (meas, key, ylabel) in zip(axes, panels, strict=True):
        meas = np.asarray(meas, dtype=float)
        for i, mu in enumerate(momenta):
            col = colors[i % len(colors)]
            ax.plot(lw, meas[i], "o", ms=3.5, color=col, label=f"measured, μ = {mu:g}")
            ax.plot(xx, theory.conventional_momentum_orbit(xx, mu)[key], "--", lw=1, color=col,
                    label=f"orbit (derivation 17), μ = {mu:g}")
        if key == "log1p_ess2":
            ax.plot(xx, theory.conventional_landing_target(xx), ":", lw=1.5, color="tab:red",
                    label=r"plain SGD's law $-2\log(1-\eta\lambda)$ (derivation 12)")
        ax.set_xscale("log")
        if key != "cos_step":
            ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=6.5, ncol=2, loc="best", framealpha=0.9)
    axes[-1].set_xlabel(r"$\eta\lambda$")
    fig.suptitle("The toy with heavy-ball momentum (PyTorch's SGD): measured time means against the orbit "
                 "(unstable for μ > 0)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return Plot(fig, axes)
