r"""Classify simulated runs into the three regimes of training on the sphere.

The criteria (``docs/theory.md``, "Regimes"), applied to each run (one ELR, one seed) from its measured
statistics and the derived quantities of :mod:`toymodel.theory`:

**convergence** -- the run goes to the minimum. Either its final loss is numerically zero,
``final_loss <= CONVERGED_LOSS_TOL * A`` (A = sum of alphas), or the minimum is linearly stable
at the run's final norm split and the run is on its way there: every group has
``alpha_i * elr_i(final) < 1`` (the derived stability condition of the minimum, multiplier
``1 - 2 elr_i alpha_i``) and the loss fell over the window (``final_loss < first_loss``).
The second clause covers tiny ELRs, where convergence takes ~1/elr steps: by the sum rule
``c = sum_i omega_i k_i``, all ``k_i < 1`` is only possible when ``c < 1``.

**divergence** -- indistinguishable from a random walk on the sphere: consecutive iterates
nearly orthogonal, ``|mean_cosine| <= RANDOM_WALK_COSINE_TOL``, and the loss at (or above) the
random-guess level, ``mean_loss >= (1 - RANDOM_WALK_LOSS_TOL) * random_guess`` (the toy's derived
A/2; for a network, the measured mean loss at random points of the sphere). The toy's loss never
exceeds that level by more than its fluctuations, so for it this is ``|mean_loss/(A/2) - 1|
<= tol``; a network can do worse than random guessing at very large ELRs, which is still
"nothing learned".

**chaotic_equilibrium** -- everything else: the loss stays at a positive level below the
random-guess level. Its subtype is ``periodic`` (the run sits on, or approaches, a periodic or
quasi-periodic orbit) or ``chaotic``. Without a Lyapunov exponent the subtype uses the loss
fluctuation: ``std_loss <= PERIODIC_STD_TOL * mean_loss`` is periodic (F is constant on the
equilibrium orbit). With an exponent (``simulate(..., lyapunov=True)``) the run is chaotic iff
``lyapunov > CHAOS_LYAPUNOV_TOL``.

Where the boundary is sharp in theory (convergence vs equilibrium at ``c = 1``) the criteria
reproduce it. Equilibrium vs divergence is a smooth crossover in the toy: the derived orbit has
cosine ``1/c`` and loss ``(A/2)(1 - 1/c)``, so it reaches the random-walk tolerances only at
``c >= 1/RANDOM_WALK_COSINE_TOL``; :func:`crossover_c` returns that value, which the phase
diagram draws as the criterion's boundary.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "REGIMES",
    "SUBTYPES",
    "CONVERGED_LOSS_TOL",
    "RANDOM_WALK_COSINE_TOL",
    "RANDOM_WALK_LOSS_TOL",
    "PERIODIC_STD_TOL",
    "CHAOS_LYAPUNOV_TOL",
    "NETWORK_CONVERGED_LOSS_FRACTION",
    "classify",
    "random_walk_like",
    "classify_runs",
    "classify_result",
    "result_stability_edge",
    "classify_elrs",
    "classify_result_elrs",
    "verdict_labels",
    "classify_training",
    "training_window",
    "crossover_c",
    "theory_regime",
    "landing",
]

REGIMES = ("convergence", "chaotic_equilibrium", "divergence")
SUBTYPES = ("periodic", "chaotic")

#: final loss / sum(alpha) at or below this counts as the minimum reached (float64 cannot do
#: much better for a sum of O(1) terms; a run at the minimum reaches exactly 0 or < 1e-300)
CONVERGED_LOSS_TOL = 1e-12
#: the absolute mean cosine at or below this counts as "consecutive iterates nearly orthogonal"
RANDOM_WALK_COSINE_TOL = 0.05
#: relative distance of the mean loss from the random-guess level A/2 allowed for divergence;
#: a 5% band, far above the sampling error of a time average (std sqrt(sum alpha^2/8) over
#: ~10^4 effectively independent steps is below 0.5% of A/2)
RANDOM_WALK_LOSS_TOL = 0.05
#: networks (toymodel.bridge): the loss on the sphere has no exact zero (the logits are
#: bounded), so a run counts as converged when its training loss stays below this fraction of
#: the random-guess level over the whole window and falls across it
NETWORK_CONVERGED_LOSS_FRACTION = 0.01
#: relative loss fluctuation below which an equilibrium run counts as periodic (no exponent);
#: F is constant on the equilibrium orbit, and random starts approach it with a wobble that
#: decays like 1/t (measured 1e-5 relative at 10^5 steps), while chaotic runs fluctuate by 10-50%
PERIODIC_STD_TOL = 1e-3
#: largest Lyapunov exponent (per step) above which a run counts as chaotic. Neutral directions
#: (the norm split at a minimum, the neutral pairs of the orbit) give exponents that decay like
#: log(t)/t; at the default horizons they are below 1e-4, while chaos gives 1e-2 or more.
CHAOS_LYAPUNOV_TOL = 1e-3
#: networks: share of the epochs (at the end) over which a training run is summarised and classified
TRAINING_WINDOW_FRACTION = 0.25
#: networks: fewest epochs in that window for the classification to mean anything: below it a run
#: that is still converging slowly cannot be told from one that fluctuates (a 5-epoch run labels
#: tiny ELRs "equilibrium")
MIN_WINDOW_EPOCHS = 5


def crossover_c() -> float:
    """The c = elr * sum(alpha) at which the derived orbit meets the random-walk criterion.

    The orbit's cosine is 1/c and its loss is (A/2)(1 - 1/c), so both tolerances are met iff
    ``1/c <= min(RANDOM_WALK_COSINE_TOL, RANDOM_WALK_LOSS_TOL)``.
    """
    return 1.0 / min(RANDOM_WALK_COSINE_TOL, RANDOM_WALK_LOSS_TOL)


def theory_regime(alphas, elrs, threshold_c: float | None = None) -> np.ndarray:
    """Regime that theory predicts for each ELR, by the same criteria: convergence below the
    derived threshold (``threshold_c`` in units of c; default GD's), the random-walk criterion
    from :func:`crossover_c` on, equilibrium in between."""
    from . import theory  # sympy only when a theory value is needed

    alphas = np.asarray(alphas, dtype=float)
    cc = np.asarray(elrs, dtype=float) * alphas.sum()
    if threshold_c is None:
        threshold_c = float(theory.derive_minimum_stability().results["threshold_c"])
    out = np.where(cc < threshold_c, "convergence",
                   np.where(cc >= crossover_c(), "divergence", "chaotic_equilibrium"))
    return out.astype(object)


def classify_runs(alphas, mean_loss, mean_cosine, std_loss, first_loss, final_loss, final_group_elrs,
                  lyapunov=None, k_edge=None):
    """Classify every run.

    Parameters
    ----------
    alphas : (n,)
    mean_loss, mean_cosine, std_loss, first_loss, final_loss : (K, S)
    final_group_elrs : (K, S, n)
    lyapunov : (K, S), optional
        Largest Lyapunov exponent; when given it decides the subtype.
    k_edge : float, optional
        Edge of the stable range of ``alpha_i * elr_i`` at the minimum: 1 for GD (default, from
        ``theory.derive_minimum_stability``), ``theory.sgd_stability_edge(b, p)`` for SGD.

    Returns
    -------
    regime, subtype : object arrays (K, S)
        ``subtype`` is ``"periodic"``/``"chaotic"`` for equilibrium runs and ``""`` otherwise.
        Runs with non-finite statistics get regime ``"nonfinite"``.
    """
    from . import theory  # sympy only when a theory value is needed

    alphas = np.asarray(alphas, dtype=float)
    A = alphas.sum()
    kmax = np.max(np.asarray(final_group_elrs) * alphas, axis=-1)
    if k_edge is None:
        k_edge = float(theory.derive_minimum_stability().results["k_edge"])
    with np.errstate(invalid="ignore"):
        converged = (np.asarray(final_loss) <= CONVERGED_LOSS_TOL * A) | (
            (kmax < k_edge) & (np.asarray(final_loss) < first_loss))
        if lyapunov is None:
            chaotic = np.asarray(std_loss) > PERIODIC_STD_TOL * np.asarray(mean_loss)
        else:
            chaotic = np.asarray(lyapunov) > CHAOS_LYAPUNOV_TOL
    finite = np.isfinite(mean_loss) & np.isfinite(mean_cosine) & np.isfinite(final_loss)
    return classify(mean_loss, mean_cosine, theory.random_guess_loss(alphas), converged, chaotic, finite)


def classify_result(result):
    """Classify every run of a :class:`toymodel.SimulationResult` (or anything with its fields).

    Convergence is judged against the stability edge of the minimum that applies to the run: GD's,
    or for mini-batch SGD (``result.batch_size`` set) ``theory.sgd_stability_edge(b, p)``. The
    subtype uses the Lyapunov exponent when the result has one. Returns ``(regime, subtype)``
    object arrays (K, S) as :func:`classify_runs`.
    """

    return classify_runs(result.alphas, result.mean_loss, result.mean_cosine, result.std_loss, result.first_loss,
                         result.final_loss, result.final_group_elrs, getattr(result, "lyapunov", None),
                         k_edge=result_stability_edge(result))


def result_stability_edge(result) -> float:
    """Edge of the stable range of ``alpha_i * elr_i`` at the minimum for the runs of ``result``,
    which is also their convergence threshold in units of c: GD's 1, or the SGD edge k*(b, p)."""
    from . import theory  # sympy only when a theory value is needed

    if getattr(result, "batch_size", None) is not None:
        return float(theory.sgd_stability_edge(result.batch_size, result.mask_prob))
    return float(theory.derive_minimum_stability().results["k_edge"])


def random_walk_like(mean_loss, mean_cosine, random_guess):
    """The divergence criterion: nearly orthogonal consecutive iterates and a loss at or above
    the random-guess level (within the tolerances)."""
    with np.errstate(invalid="ignore"):
        return (np.abs(mean_cosine) <= RANDOM_WALK_COSINE_TOL) & (
            np.asarray(mean_loss) >= (1.0 - RANDOM_WALK_LOSS_TOL) * np.asarray(random_guess))


def classify(mean_loss, mean_cosine, random_guess, converged, chaotic, finite=None, loss_criterion: bool = True):
    """The common core for any model: ``converged`` (boolean, from the model's own test of "the
    loss goes to the minimum") wins, then the random-walk criterion, else equilibrium with the
    subtype from ``chaotic``. Returns ``(regime, subtype)`` object arrays; runs that are not
    ``finite`` get ``"nonfinite"``. With ``loss_criterion=False`` the random-walk criterion is the
    cosine alone (see :func:`classify_training`)."""
    mean_loss = np.asarray(mean_loss, dtype=float)
    if finite is None:
        finite = np.isfinite(mean_loss) & np.isfinite(mean_cosine)
    if loss_criterion:
        walk = random_walk_like(mean_loss, mean_cosine, random_guess)
    else:
        with np.errstate(invalid="ignore"):
            walk = np.abs(np.asarray(mean_cosine, dtype=float)) <= RANDOM_WALK_COSINE_TOL
    regime = np.where(converged, "convergence", np.where(walk, "divergence", "chaotic_equilibrium"))
    regime = np.where(finite, regime, "nonfinite").astype(object)
    subtype = np.where(regime == "chaotic_equilibrium", np.where(chaotic, "chaotic", "periodic"), "").astype(object)
    return regime, subtype


def classify_elrs(regime, subtype):
    """Per-ELR verdicts from per-run ones: the most common regime over finite seeds.

    Returns ``(regime, subtype, fractions)`` with ``fractions[name]`` of shape (K,) for every
    regime and for the ``periodic``/``chaotic`` subtypes (as shares of all finite seeds).
    Ties go to the earlier regime in ``REGIMES``.
    """
    regime = np.asarray(regime, dtype=object)
    subtype = np.asarray(subtype, dtype=object)
    finite = regime != "nonfinite"
    n_fin = np.maximum(finite.sum(axis=1), 1)
    fr = {name: (regime == name).sum(axis=1) / n_fin for name in REGIMES}
    for name in SUBTYPES:
        fr[name] = (subtype == name).sum(axis=1) / n_fin
    counts = np.stack([fr[name] for name in REGIMES], axis=1)
    best = np.array(REGIMES, dtype=object)[np.argmax(counts, axis=1)]
    best = np.where(finite.any(axis=1), best, "nonfinite").astype(object)
    sub = np.where(best == "chaotic_equilibrium",
                   np.where(fr["chaotic"] > fr["periodic"], "chaotic", "periodic"), "").astype(object)
    return best, sub, fr


def classify_result_elrs(result):
    """Per-ELR verdicts of a result: :func:`classify_result` for every run, then the majority over
    seeds (:func:`classify_elrs`). Returns ``(regime, subtype, fractions)`` as :func:`classify_elrs`.

    The one classification of a sweep that the phase diagram (its table and ``--refine``) and the
    explorer (its current point and its phase strip) share.
    """
    return classify_elrs(*classify_result(result))


def verdict_labels(regime, subtype) -> list:
    """``"regime"`` or ``"regime/subtype"`` per entry: the verdict whose change marks a boundary."""
    return [r + ("/" + s if s else "") for r, s in zip(regime, subtype, strict=True)]


def training_window(epochs: int) -> slice:
    """The last ``TRAINING_WINDOW_FRACTION`` of ``epochs`` (at least two epochs)."""
    w = max(2, int(round(TRAINING_WINDOW_FRACTION * int(epochs))))
    return slice(max(0, int(epochs) - w), int(epochs))


def classify_training(train_loss, step_cosine, random_guess):
    """Classify network training runs from their per-epoch records over the window.

    ``train_loss`` and ``step_cosine`` have shape (..., W) (W epochs of the window), and
    ``random_guess`` broadcasts against (...). A run has converged when its loss stays below
    ``NETWORK_CONVERGED_LOSS_FRACTION`` of the random-guess level over the whole window and falls
    across it; it is chaotic when its loss fluctuates by more than ``PERIODIC_STD_TOL`` relative.
    A run is random-walk-like (divergence) when consecutive weights are nearly orthogonal,
    ``|cos| <= RANDOM_WALK_COSINE_TOL``: the cosine half of the toy's criterion only. On the toy's
    equilibrium orbit the two halves are the same condition (cos = 1/c and F = (A/2)(1 - 1/c),
    derivation 05: both tolerances are met from c = 20 on), but a diverging network is not at
    uniform random points of the sphere (its norm split runs away), so its loss need not come
    near the random-guess level measured at such points: on the ConvNet one seed in three (two at
    one ELR) failed the 5% loss band at every ELR from 0.18 to 10, with cosines of at most 0.008
    and test error at chance. Returns
    ``(regime, subtype)`` as :func:`classify`.
    """
    loss = np.asarray(train_loss, dtype=float)
    cos = np.asarray(step_cosine, dtype=float)
    mean_loss = loss.mean(axis=-1)
    rg = np.broadcast_to(np.asarray(random_guess, dtype=float), mean_loss.shape)
    with np.errstate(invalid="ignore"):
        converged = (loss.max(axis=-1) <= NETWORK_CONVERGED_LOSS_FRACTION * rg) & (loss[..., -1] < loss[..., 0])
        chaotic = loss.std(axis=-1) > PERIODIC_STD_TOL * mean_loss
    return classify(mean_loss, cos.mean(axis=-1), rg, converged, chaotic, loss_criterion=False)


def landing(elrs, mean_log1p_ess2, target):
    """Where a fixed-ELR sweep reaches the landing rule's target (derivation 16).

    The first crossing of ``target`` from below by the measured time mean of log(1 + ESS^2),
    interpolated linearly in log ELR between the two neighbouring sweep points that bracket it.

    Parameters
    ----------
    elrs : array_like, shape (K,)
        The sweep's ELRs, increasing.
    mean_log1p_ess2 : array_like, shape (K,)
        The sweep's time mean of log(1 + ESS^2) at each ELR (non-finite entries are skipped).
    target : float
        The value to reach, e.g. -2 log(1 - eta lambda) for plain SGD with weight decay.

    Returns
    -------
    elr : float
        The interpolated landing ELR.
    bracket : tuple of int
        ``(k, k + 1)``: the sweep points (indices into ``elrs``) between which it lies; equal
        indices when the target is met at a sweep point.

    Raises
    ------
    ValueError
        If the shapes differ, fewer than two points are finite, or the target lies outside the
        measured range (below the first finite value, or never reached).
    """
    e = np.asarray(elrs, dtype=float)
    m = np.asarray(mean_log1p_ess2, dtype=float)
    if e.ndim != 1 or e.shape != m.shape:
        raise ValueError(f"elrs and mean_log1p_ess2 must be 1-D of the same length, got {e.shape} and {m.shape}")
    idx = np.flatnonzero(np.isfinite(m) & np.isfinite(e) & (e > 0))
    if idx.size < 2:
        raise ValueError("the sweep needs at least two ELRs with a finite mean log(1 + ESS^2)")
    t = float(target)
    if not np.isfinite(t):
        raise ValueError(f"target must be finite, got {target!r}")
    if t < m[idx[0]]:
        raise ValueError(f"the target {t:.4g} is below the sweep's range (its smallest ELR {e[idx[0]]:.4g} already "
                         f"has {m[idx[0]]:.4g}): extend the sweep to smaller ELRs")
    for a, b in zip(idx[:-1], idx[1:], strict=True):
        if m[a] <= t <= m[b]:
            if m[b] == m[a]:
                return float(e[a]), (int(a), int(a))
            f = (t - m[a]) / (m[b] - m[a])
            return float(np.exp(np.log(e[a]) + f * (np.log(e[b]) - np.log(e[a])))), (int(a), int(b))
    raise ValueError(f"the target {t:.4g} is above the sweep's range (largest mean {np.max(m[idx]):.4g}): extend "
                     "the sweep to larger ELRs")
