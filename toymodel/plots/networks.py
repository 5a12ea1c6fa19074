"""Plots of the bridge's networks (:mod:`toymodel.bridge`): regimes, per-channel ESS and sharpness of
the fixed-ELR sweep, conventional training and fine-tuning.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .. import regimes, theory
from .common import Plot, figure_and_axes, regime_bands, regime_legend_patches

__all__ = [
    "plot_bridge_regimes",
    "plot_bridge_ess",
    "plot_bridge_sharpness",
    "plot_bridge_conventional",
    "plot_bridge_finetune",
]


def _bridge_model_name(p) -> str:
    """E.g. "Scale-invariant MLP (64, 64, 64, 10) on digits" from a bridge sweep's parameters."""
    data = "digits" if not p.get("data") else str(p["data"]).replace("\\", "/").rsplit("/", 1)[-1]
    n_in, n_cls = p.get("input_dim", 64), p.get("n_classes", 10)
    if p.get("model", "mlp") == "convnet":
        w = int(p["width"])
        return f"Scale-invariant ConvNet ({w}, {2 * w}, {4 * w}, {8 * w} channels) on {data}"
    return f"Scale-invariant MLP {tuple([n_in] + list(p['hidden']) + [n_cls])} on {data}"


def plot_bridge_regimes(bs, axes=None):
    """The network's sweep: final train loss, test error, effective gradient norm and the cosine
    of consecutive iterates against ELR, with the regime bands of the classification."""
    t = bs.table
    elrs = np.asarray(t["elr"], dtype=float)
    fig, axes = figure_and_axes(axes, nrows=4, figsize=(8, 10.5), sharex=True)
    regime_bands(axes, elrs, t["regime"], t["subtype"], label_ax=axes[0])
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
    fig.legend(handles=regime_legend_patches(), loc="lower center", ncol=4, fontsize=7, frameon=False)
    p = bs.params
    fig.suptitle(f"{_bridge_model_name(p)}, trained on the sphere ({p.get('dtype', 'float64')}): "
                 f"{len(elrs)} ELRs × {len(p['seeds'])} seeds × {p['epochs']} epochs", fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 0.98))
    return Plot(fig, axes)


def plot_bridge_ess(bs, ax=None):
    """Per-channel ELR against per-channel effective gradient norm (window means, seed 0) for
    the ELRs classified as equilibrium, with lines of constant ESS (y = ESS / x). Equal ESS across
    channels puts an ELR's points on one such line."""
    fig, ax = figure_and_axes(ax, figsize=(7.5, 6))
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


def plot_bridge_sharpness(bs, axes=None):
    """Sharpness against ELR with the regime bands: the tangent Hessian's top eigenvalue with the
    stability bound lambda_max = bound / elr (``theory.sphere_stability_bound``, derivation 15), its
    trace, and elr x lambda_max."""
    bound = theory.sphere_stability_bound()
    t = bs.table
    elrs = np.asarray(t["elr"], dtype=float)
    fig, axes = figure_and_axes(axes, nrows=3, figsize=(8, 9), sharex=True)
    regime_bands(axes, elrs, t["regime"], t["subtype"], label_ax=axes[0])
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
    fig.legend(handles=regime_legend_patches(), loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.suptitle(f"{_bridge_model_name(bs.params)}: sharpness at the end of training (float64, tangent space)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 0.98))
    return Plot(fig, axes)


def plot_bridge_conventional(cs, bands=None, axes=None, show=(0, 3, 5, 8)):
    """Conventional training of a network: (top) the total ELR over training for a few values of
    eta*lambda (seed 0, the first momentum), over the fixed-ELR regime bands ``bands = (elrs,
    regimes, subtypes)`` of a sphere sweep drawn as horizontal bands; (middle) its harmonic mean over
    the window against eta*lambda, one curve per momentum, with the landing rule's predicted ELR
    (derivations 16, 17) when the sweep has it; (bottom) every channel's time mean of log(1 + ESS^2)
    (seed 0) against the law -2 log(1 - eta lambda) (derivation 12) and, with momentum, the orbit's
    -2 log(1 - eta lambda/(1 + mu)) (derivation 17)."""
    fig, axes = figure_and_axes(axes, nrows=3, figsize=(8, 10.5))
    t = cs.table
    lw = np.asarray(t["lr_wd"], dtype=float)
    mom = np.asarray(t.get("momentum", np.zeros(lw.size)), dtype=float)
    momenta = list(dict.fromkeys(mom.tolist()))
    colors = ["k", "tab:blue", "tab:green", "tab:purple"]

    def hbands(ax):
        if bands is not None:
            regime_bands([ax], *bands, horizontal=True)

    ax = axes[0]
    hbands(ax)
    cmap = plt.get_cmap("viridis")
    first = np.flatnonzero(mom == momenta[0])
    show = [first[k] for k in show if k < first.size]
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
    for i, m in enumerate(momenta):
        sel = mom == m
        col = colors[i % len(colors)]
        ax.errorbar(lw[sel], t["hm_elr"][sel], yerr=t["std_hm_elr"][sel], fmt="o-", ms=3, lw=1, color=col, capsize=2,
                    label=f"measured, μ = {m:g}: harmonic mean of the total ELR over the window")
        if "predicted_elr" in t:
            ax.plot(lw[sel], np.asarray(t["predicted_elr"], dtype=float)[sel], "x--", ms=6, lw=0.8, color=col,
                    label=f"predicted by the landing rule from the fixed-ELR sweep, μ = {m:g}")
        tr = np.asarray(t["regime"], dtype=object)[sel] == "transient"
        if np.any(tr):
            ax.plot(lw[sel][tr], t["hm_elr"][sel][tr], "s", mfc="none", ms=8, color="tab:red",
                    label="transient: window shorter than (1 + μ)/(2ηλ) steps" if i == 0 else None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\eta\lambda$")
    ax.set_ylabel("effective ELR")
    ax.legend(fontsize=6.5, loc="best", framealpha=0.9)
    ax = axes[2]
    for i, m in enumerate(momenta):
        col = colors[i % len(colors)] if m else "0.45"
        for n, k in enumerate(np.flatnonzero(mom == m)):
            r = cs.runs[k][0]
            ax.plot(np.full(r.mean_log1p_ess2.size, lw[k]), r.mean_log1p_ess2, ".", ms=2, color=col, alpha=0.5,
                    label=f"every channel, measured (seed 0), μ = {m:g}" if n == 0 else None)
    xx = np.geomspace(lw.min(), lw.max(), 100)
    wd = cs.params["weight_decay"]
    ax.plot(xx, theory.conventional_ess_law(xx / wd, wd), "-", color="tab:red", lw=1,
            label=r"law $-2\log(1-\eta\lambda)$ (derivation 12)")
    for m in momenta:
        if m:
            ax.plot(xx, theory.conventional_momentum_orbit(xx, m)["log1p_ess2"], "--", color="tab:orange", lw=1,
                    label=rf"orbit with momentum $-2\log(1-\eta\lambda/(1+\mu))$, μ = {m:g} (derivation 17)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\eta\lambda$")
    ax.set_ylabel(r"time mean of $\log(1+\mathrm{ESS}_i^2)$")
    plain = mom == 0
    if np.any(plain):
        err = float(np.max(np.asarray(t["law_error"])[plain]))
        ax.set_title(f"plain SGD: with the boundary term the law holds on every channel to {err:.1e}", fontsize=8)
    ax.legend(fontsize=6.5, loc="best", framealpha=0.9)
    if bands is not None:
        fig.legend(handles=regime_legend_patches(), loc="lower center", ncol=4, fontsize=7, frameon=False,
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
    fig, axes = figure_and_axes(axes, nrows=2, figsize=(8, 8), sharex=True)
    pe = np.asarray(table["pretrain_elr"], dtype=float)
    elrs = np.unique(pe)
    regime_bands(axes, np.asarray(pretrain_table["elr"], dtype=float), pretrain_table["regime"],
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
    bound = theory.sphere_stability_bound()
    axes[1].axhline(bound / params["finetune_elr"], color="tab:red", ls="--", lw=1,
                    label=rf"stability bound ${bound:g}/\tilde\eta$ at the fine-tuning ELR")
    axes[1].set_yscale("log")
    axes[1].set_xscale("log")
    axes[1].set_ylabel(r"$\lambda_{\max}$")
    axes[1].set_xlabel(r"pre-training ELR $\tilde\eta$")
    for ax in axes:
        ax.legend(fontsize=7, loc="best", framealpha=0.9)
    fig.legend(handles=regime_legend_patches(), loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.suptitle(f"{_bridge_model_name(params)}: fine-tuning from every pre-training regime "
                 f"({len(params['seeds'])} seeds)", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.98))
    return Plot(fig, axes)


def plot_bridge_periodic(pr: dict, axes=None):
    """Periodic behaviour of conventional training on a network: per value of ηλ (one column), the
    mini-batch loss of every step (top) and the total ELR (bottom), with each detected quiet phase's
    derived growth d^(-2t), d = 1 - ηλ (derivation 14), dashed from its start to its end.

    Parameters
    ----------
    pr : dict
        :func:`toymodel.bridge.conventional.compute_periodic`'s result.
    axes : array of matplotlib Axes, shape (2, K), optional

    Returns
    -------
    Plot
    """
    K = len(pr["runs"])
    fig, axes = figure_and_axes(axes, nrows=2, ncols=K, figsize=(4.2 * K, 6.5), sharex=False)
    axes = np.asarray(axes).reshape(2, K)
    for j, (lw, r) in enumerate(zip(pr["lr_wds"], pr["runs"], strict=True)):
        t = np.arange(r["loss"].size)
        axes[0, j].plot(t, r["loss"], lw=0.3, color="tab:blue")
        axes[0, j].set_yscale("log")
        first = [(a, b) for a, b, _ in r["phases"] if a == 0]
        later = [b - a for a, b, _ in r["phases"] if a > 0]
        axes[0, j].set_title(rf"$\eta\lambda$ = {lw:g}: "
                             + (f"first quiet phase to step {first[0][1]}; " if first else "")
                             + f"{len(later)} later" + (f" (longest {max(later)} steps)" if later else "")
                             + (f"\nmedian period {np.median(r['periods']):.0f} steps"
                                f" (× ηλ = {np.median(r['periods']) * lw:.2g})" if r["periods"].size else ""),
                             fontsize=8)
        axes[0, j].set_ylabel("mini-batch train loss")
        e = np.asarray(r["total_elr"])
        axes[1, j].plot(np.arange(e.size), e, lw=0.6, color="k", label="total ELR (measured)")
        rate = -2 * np.log1p(-lw)
        for n, (a, b, _) in enumerate(r["phases"]):
            tt = np.arange(a, b + 1)
            axes[1, j].plot(tt, e[a] * np.exp(rate * (tt - a)), "--", color="tab:red", lw=1,
                            label=r"quiet phase: $d^{-2t}$ (derivation 14)" if n == 0 else None)
        axes[1, j].set_yscale("log")
        axes[1, j].set_xlabel("step")
        axes[1, j].set_ylabel(r"total ELR $\eta/((1-\eta\lambda)\|\theta\|^2)$")
        axes[1, j].legend(fontsize=7, loc="best")
    fig.suptitle(f"{_bridge_model_name(pr['params'])}: SGD with weight decay {pr['weight_decay']:g}, no momentum, "
                 f"{pr['epochs']} epochs.\nQuiet phases (ESS² under a quarter of the law's, per epoch) grow the ELR "
                 "like $d^{-2t}$; periodic behaviour would repeat them", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return Plot(fig, axes)
