"""simulate(): many trajectories of projected gradient descent on the sphere, one result type."""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import _kernels as K
from . import _streams
from ._records import ResultType
from ._validate import (
    MAX_STEPS,
    as_elrs,
    as_int,
    as_lr_wd,
    as_momentum,
    as_seeds,
    as_sgd,
    as_steps_burn_in,
    as_threads,
    available_memory,
    check_memory,
)
from ._version import __version__
from .model import ToyProblem
from .regimes import CONVERGED_LOSS_TOL

__all__ = ["SimulationResult", "simulate", "simulate_conventional", "NonFiniteTrajectoryWarning", "seed_stats",
           "estimate_result_bytes", "available_memory", "check_memory"]


class NonFiniteTrajectoryWarning(RuntimeWarning):
    """Some trajectories left the finite numbers; they are excluded from statistics."""


def _version() -> str:
    return __version__


@dataclass(frozen=True, repr=False)
class SimulationResult(ResultType):
    """Statistics of a sweep of trajectories; arrays are indexed ``[elr, seed, ...]``.

    Statistics run over steps ``burn_in <= t < steps`` (``theta_0`` is the initial point).
    A trajectory that became non-finite has NaN in every field and is counted in
    ``nonfinite``.

    Attributes
    ----------
    mean_loss, std_loss, min_loss, max_loss : (K, S)
        Of ``F(theta_t)``. ``std_loss`` is the population standard deviation over time.
    mean_cosine : (K, S)
        Of ``cos angle(theta_t, theta_{t+1})``.
    mean_angle : (K, S)
        Of the angular update, computed as ``arctan(elr * g_t)``, which equals the arccos of
        the cosine but keeps full relative precision for tiny steps.
    mean_eff_grad_norm : (K, S)
        Of the effective gradient norm ``g_t = ||grad F(theta_t)|| ||theta_t||``.
    first_loss, final_loss : (K, S)
        ``F(theta_burn_in)`` and ``F(theta_steps)``.
    mean_group_elrs, final_group_elrs : (K, S, n)
        Group ELRs averaged over the window, and at ``theta_steps``.
    mean_group_shares : (K, S, n)
        Norm shares ``omega_i`` averaged over the window. ``elr / mean_group_shares`` is the
        harmonic time-mean of the group ELRs: unlike their arithmetic mean, it is not dominated
        by the rare steps at which a share is tiny (chaotic runs).
    final_theta : (K, S, 2n)
        ``theta_steps``.
    nonfinite : (K,)
        Number of seeds per ELR whose trajectory became non-finite.
    nonfinite_step : (K, S)
        The step at which each such trajectory first produced a non-finite update, -1 for
        finite ones.
    trace_steps : (T',) and loss_trace, cosine_trace (K, S, T'), group_elr_trace (K, S, T', n)
        Only with ``record_every > 0``: values at ``t = 0, r, 2r, ... < steps``.
    lyapunov : (K, S)
        Only with ``lyapunov=True``: the largest Lyapunov exponent (natural log per step) over
        the window, from the analytic tangent map on the tangent space of the sphere
        (2n - 1 intrinsic directions; the radial direction, which the dynamics ignores, never
        enters). The tangent vector warms up during the burn-in.
    lyapunov_angle : (K, S)
        Only with ``lyapunov=True``: the largest exponent along the angle directions with the
        norm-split directions factored out, ``max_i <log |d phi_i'/d phi_i|>``. At a minimum the
        norm-split directions are exactly neutral (multiplier 1, a manifold of minima), so
        ``lyapunov`` tends to 0 there while ``lyapunov_angle`` equals the log of the largest
        angle multiplier ``max_i log|1 - 2 elr_i alpha_i|`` (``theory.minimum_multipliers``).
    weight_decay : float or None
        None for training on the sphere; for conventional training (:func:`simulate_conventional`)
        the weight decay, and then ``elrs`` holds the learning rates, the group ELRs are those of
        the direction map, ``lr / ((1 - lr wd) r_i^2)``, and these fields are set:
    momentum : float or None
        Conventional training only: the heavy-ball coefficient (0: plain SGD).
    mean_elr, hm_elr : (K, S)
        Time mean and harmonic time mean of the total ELR of the direction map,
        ``lr / ((1 - lr wd) |theta|^2)``.
    mean_log1p_ess2 : (K, S, n)
        Time mean of ``log(1 + ESS_i^2)`` per group, ESS_i the group ELR of the direction map times
        the group's effective gradient norm (of the step taken: the batch gradient under SGD).
    frac_converged : (K, S)
        Share of window steps with ``F <= regimes.CONVERGED_LOSS_TOL * sum(alpha)``.
    quiet_phases : (K, S, n)
        Number of quiet phases of each group in the window (entries into ESS_i < 1e-3, where the
        angle is linearised at the minimum; a window that starts quiet counts one). Groups cycle
        independently, so ``(steps - burn_in) / quiet_phases`` is each group's period.
    final_norms : (K, S, n)
        Group norms ``r_i`` at ``theta_steps``.
    """

    alphas: np.ndarray
    elrs: np.ndarray
    seeds: np.ndarray
    steps: int
    burn_in: int
    record_every: int
    mean_loss: np.ndarray
    std_loss: np.ndarray
    min_loss: np.ndarray
    max_loss: np.ndarray
    mean_cosine: np.ndarray
    mean_angle: np.ndarray
    mean_eff_grad_norm: np.ndarray
    first_loss: np.ndarray
    final_loss: np.ndarray
    mean_group_elrs: np.ndarray
    mean_group_shares: np.ndarray
    final_group_elrs: np.ndarray
    final_theta: np.ndarray
    nonfinite: np.ndarray
    nonfinite_step: np.ndarray | None = None
    trace_steps: np.ndarray | None = None
    loss_trace: np.ndarray | None = None
    cosine_trace: np.ndarray | None = None
    group_elr_trace: np.ndarray | None = None
    lyapunov: np.ndarray | None = None
    lyapunov_angle: np.ndarray | None = None
    batch_size: int | None = None
    mask_prob: float = 1.0
    weight_decay: float | None = None
    momentum: float | None = None
    mean_elr: np.ndarray | None = None
    hm_elr: np.ndarray | None = None
    mean_log1p_ess2: np.ndarray | None = None
    frac_converged: np.ndarray | None = None
    quiet_phases: np.ndarray | None = None
    final_norms: np.ndarray | None = None
    version: str = field(default_factory=_version)

    _grid_fields = ("mean_loss", "std_loss", "min_loss", "max_loss", "mean_cosine", "mean_angle",
                    "mean_eff_grad_norm", "first_loss", "final_loss", "lyapunov", "lyapunov_angle", "nonfinite_step",
                    "mean_elr", "hm_elr", "frac_converged", "quiet_phases", "mean_group_elrs", "mean_group_shares",
                    "final_group_elrs", "mean_log1p_ess2", "final_norms")

    def summary_lines(self) -> list:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.nanmin(self.mean_loss), np.nanmax(self.mean_loss)
        mode = "GD" if self.batch_size is None else f"SGD b={self.batch_size}, p={self.mask_prob:g}"
        if self.weight_decay is not None:
            mode += f", conventional training with weight decay {self.weight_decay:g} (elrs are learning rates)"
        return [f"{self.elrs.size} ELRs in [{self.elrs.min():.3g}, {self.elrs.max():.3g}] x {self.seeds.size} seeds, "
                f"{mode}; mean loss in [{lo:.4g}, {hi:.4g}]; {int(np.sum(self.nonfinite))} non-finite runs"]

    @property
    def problem(self) -> ToyProblem:
        return ToyProblem(self.alphas)

    @property
    def shape(self) -> tuple[int, int]:
        """``(K, S)``: number of ELRs and of seeds."""
        return (self.elrs.size, self.seeds.size)


def seed_stats(arr):
    """Mean and standard deviation over seeds (axis 1) of a result array, ignoring the NaN of
    non-finite runs (NaN where no seed is finite)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(arr, axis=1), np.nanstd(arr, axis=1)


@contextlib.contextmanager
def _numba_threads(threads):
    import numba

    if threads is None:
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def _initial_state(problem: ToyProblem, elrs, seeds, init, project: bool = True):
    """Initial points of shape (K, S, 2n): on the unit sphere, or as given (``project=False``)."""
    K_, S_ = elrs.size, seeds.size
    if init is None:
        pts = problem.initial_points(seeds)
        return np.broadcast_to(pts, (K_, S_, problem.dim))
    arr = problem.check_points(init, name="init")
    if arr.shape == (problem.dim,):
        arr = np.broadcast_to(arr, (K_, S_, problem.dim))
    elif arr.shape != (K_, S_, problem.dim):
        raise ValueError(
            f"init must have shape ({problem.dim},) or (K, S, 2n) = ({K_}, {S_}, {problem.dim}), got {arr.shape}"
        )
    return arr / np.linalg.norm(arr, axis=-1, keepdims=True) if project else arr


def _tangent_vectors(problem: ToyProblem, seeds, theta0):
    """A unit tangent vector per trajectory, drawn from the seed (stream ``TANGENT``, separate
    from the initial point) and projected onto the tangent space of the sphere at theta0."""
    v = np.stack([_streams.rng(s, _streams.TANGENT).standard_normal(problem.dim) for s in seeds])
    v = np.broadcast_to(v, theta0.shape)
    v = v - theta0 * np.sum(v * theta0, axis=-1, keepdims=True)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def sgd_tables(batch_size: int, mask_prob: float):
    """Inverse-CDF tables of the number of examples, out of ``batch_size``, whose mask for a group
    is 1: ``(cdf, coef, mlo, mhi)`` with ``cdf[m] = P(M <= m)`` for M ~ Binomial(b, p),
    ``coef[m] = m / (b p)`` (the batch-mean weight factor), and the range ``[mlo, mhi)`` of
    comparisons whose outcome depends on the uniform number (below ``mlo`` the CDF is 0, from
    ``mhi`` on it exceeds the largest uniform ``1 - 2**-53``)."""
    from scipy.stats import binom

    m = np.arange(batch_size + 1)
    cdf = np.asarray(binom.cdf(m, batch_size, mask_prob), dtype=float)
    cdf[-1] = 1.0
    coef = m / (batch_size * mask_prob)
    mlo = int(np.count_nonzero(cdf[:-1] <= 0.0))
    mhi = int(np.count_nonzero(cdf[:-1] <= 1.0 - 2.0**-53))
    return cdf, coef, mlo, max(mlo, mhi)


def sgd_keys(seeds) -> np.ndarray:
    """Per-seed 64-bit keys of the SGD noise (stream ``SGD_NOISE``, separate from the streams of
    the initial point and the tangent vector)."""
    return np.array([_streams.seed_sequence(s, _streams.SGD_NOISE).generate_state(1, dtype=np.uint64)[0]
                     for s in seeds], dtype=np.uint64)


def estimate_result_bytes(n_trajectories: int, n_groups: int, steps: int, record_every: int = 0,
                          lyapunov: bool = False) -> int:
    """Bytes that :func:`simulate` (and merging its chunks) needs for ``n_trajectories``.

    Counted from the arrays it allocates per trajectory: the kernel's inputs and outputs (state,
    statistics, group means, final point, and conventional training's extra fields: 13n + 20
    doubles; the tangent vector adds 4n + 2), the
    traces when recording (``ceil(steps / record_every)`` records of 2 + n doubles), and a
    second copy of the result for merging chunks. Checked against tracemalloc in the tests.
    """
    n_rec = -(-int(steps) // int(record_every)) if record_every else 0
    per = 8 * (13 * n_groups + 20 + ((4 * n_groups + 2) if lyapunov else 0)) + 8 * n_rec * (2 + n_groups)
    return 2 * int(n_trajectories) * per


def simulate(problem: ToyProblem, elrs, steps, *, seeds=1, burn_in=0, init=None, record_every=0,
             threads=None, lyapunov=False, batch_size=None, mask_prob=1.0) -> SimulationResult:
    r"""Simulate projected GD on the unit sphere for every (ELR, seed) pair.

    Parameters
    ----------
    problem : ToyProblem
    elrs : float or sequence of float, shape (K,)
        Total effective learning rates; positive and finite.
    steps : int
        Number of steps, >= 1. The run produces ``theta_1 .. theta_steps``.
    seeds : int or sequence of int
        A count S (seeds ``0..S-1``) or explicit non-negative seeds. Seed ``s`` gives the
        same initial point at every ELR (:meth:`ToyProblem.initial_point`).
    burn_in : int
        Steps excluded from the statistics, ``0 <= burn_in < steps``.
    init : array, optional
        ``None`` (random from the seeds), one point of shape (2n,) for every trajectory, or
        shape (K, S, 2n). Points are projected to the unit sphere; every group must have a
        non-zero norm.
    record_every : int
        ``r > 0`` records traces at ``t = 0, r, 2r, ... < steps``; 0 records nothing, and
        then memory is O(trajectories).
    threads : int, optional
        Numba threads to use (default: Numba's setting). Results do not depend on it.
    lyapunov : bool
        Also compute the largest Lyapunov exponents (``lyapunov``, ``lyapunov_angle``) with the
        analytic Jacobian inside the kernel. Without it the kernel contains no tangent code.
    batch_size, mask_prob : int or None, float in (0, 1]
        Online mini-batch SGD (``docs/theory.md``, "Mini-batch SGD"): example j has group weights
        ``alpha_i m_ji / p`` with masks ``m_ji ~ Bernoulli(p)``; every step draws ``batch_size``
        fresh examples and descends the batch mean, i.e. group i gets weight
        ``alpha_i M_i / (b p)`` with ``M_i ~ Binomial(b, p)``. The noise of seed ``s`` is a pure
        function of ``(s, step, group)`` (a counter-based hash), so it is reproducible,
        independent of threads and of the rest of the sweep, and shared by all ELRs of a sweep.
        ``batch_size=None`` (default) is full-batch GD. Statistics are those of F itself (the
        expected loss); the cosine and angle are those of the step actually taken.

    Returns
    -------
    SimulationResult

    Notes
    -----
    One step is exactly :math:`\theta \leftarrow \theta - \tilde\eta\nabla F(\theta)`, then
    :math:`\theta \leftarrow \theta/\lVert\theta\rVert`, in float64.
    """
    if not isinstance(problem, ToyProblem):
        raise ValueError(f"problem must be a ToyProblem, got {type(problem).__name__}")
    return _simulate(problem, as_elrs(elrs), steps, seeds=seeds, burn_in=burn_in, init=init,
                     record_every=record_every, threads=threads, lyapunov=lyapunov, batch_size=batch_size,
                     mask_prob=mask_prob, weight_decay=None)


def simulate_conventional(problem: ToyProblem, lrs, weight_decay, steps, *, seeds=1, burn_in=0, init=None,
                          record_every=0, threads=None, lyapunov=False, batch_size=None,
                          mask_prob=1.0, momentum=0.0) -> SimulationResult:
    r"""Simulate conventional training: plain (S)GD with weight decay in the full space, no projection.

    One step is :math:`\theta \leftarrow (1-\eta\lambda)\theta - \eta\nabla F(\theta)` (in
    float64, with the faithful tiny-angle representation of the sphere's kernel); with
    ``batch_size`` the gradient is the masked batch gradient and the decay stays deterministic.
    With ``momentum`` :math:`\mu > 0`, PyTorch's SGD with momentum (no dampening, no Nesterov):
    :math:`v \leftarrow \mu v + \nabla F + \lambda\theta`, :math:`\theta \leftarrow \theta - \eta v`,
    with :math:`v_0 = 0`.

    Parameters
    ----------
    problem : ToyProblem
    lrs : float or sequence of float, shape (K,)
        Learning rates eta > 0.
    weight_decay : float
        lambda >= 0, with ``lr * weight_decay < 1`` for every learning rate.
    steps, seeds, burn_in, record_every, threads, lyapunov, batch_size, mask_prob
        As for :func:`simulate`. ``init`` is used as given (not projected): its norm is the
        initial norm, which sets the initial ELRs; by default the points of the seeds, of norm 1.
    momentum : float, optional
        :math:`\mu` in [0, 1) (default 0: plain SGD, the kernel without momentum). Momentum
        variants have no Lyapunov exponents.

    Returns
    -------
    SimulationResult
        ``elrs`` holds the learning rates and ``weight_decay`` is set; the group ELRs, the cosine,
        the angle and the effective gradient norm are those of the direction map (derivation 11),
        and ``mean_elr``, ``hm_elr``, ``mean_log1p_ess2``, ``frac_converged``, ``final_norms`` are
        filled. With ``lyapunov``, the exponent is that of the full map (no projection).
        With momentum, ESS_i (in ``mean_log1p_ess2`` and the quiet phases) is the tangent of the
        angle between consecutive points of group i, and the cosine and angle those of the whole
        point (for mu = 0 both are what the plain kernel computes); the ELRs are the direction
        map's, lr / ((1 - lr wd) r^2), as without momentum; ``momentum`` is recorded.
    """
    if not isinstance(problem, ToyProblem):
        raise ValueError(f"problem must be a ToyProblem, got {type(problem).__name__}")
    lrs, wd = as_lr_wd(lrs, weight_decay)
    mu = as_momentum(momentum)
    if mu and lyapunov:
        raise ValueError("lyapunov exponents are not available with momentum (the kernel has no tangent map for it)")
    return _simulate(problem, lrs, steps, seeds=seeds, burn_in=burn_in, init=init, record_every=record_every,
                     threads=threads, lyapunov=lyapunov, batch_size=batch_size, mask_prob=mask_prob,
                     weight_decay=wd, momentum=mu)


def _simulate(problem, elrs, steps, *, seeds, burn_in, init, record_every, threads, lyapunov, batch_size,
              mask_prob, weight_decay, momentum=0.0) -> SimulationResult:
    """The common body of :func:`simulate` and :func:`simulate_conventional`: validate, seed,
    allocate, call the kernel variant, assemble one result."""
    if not isinstance(problem, ToyProblem):
        raise ValueError(f"problem must be a ToyProblem, got {type(problem).__name__}")
    steps, burn_in = as_steps_burn_in(steps, burn_in)
    seeds = as_seeds(seeds)
    record_every = as_int(record_every, "record_every", minimum=0, maximum=MAX_STEPS)
    threads = as_threads(threads)
    if not isinstance(lyapunov, (bool, np.bool_)):
        raise ValueError(f"lyapunov must be True or False, got {lyapunov!r}")
    batch_size, mask_prob = as_sgd(batch_size, mask_prob)
    if steps * problem.n_groups >= 2**63:
        raise ValueError(f"steps times the number of groups must be below 2**63 (the SGD noise counter), got "
                         f"steps={steps}")
    check_memory(estimate_result_bytes(elrs.size * seeds.size, problem.n_groups, steps, record_every,
                                       bool(lyapunov)) // 2, "the simulation")
    wd = weight_decay is not None
    theta0 = _initial_state(problem, elrs, seeds, init, project=not wd)

    n = problem.n_groups
    K_, S_ = elrs.size, seeds.size
    M = K_ * S_
    # fresh writable C arrays whatever the caller's init was (a read-only or non-contiguous init would
    # otherwise be a new Numba signature: a second compilation of the variant, ~30 s)
    x0 = np.array(theta0[..., 0::2].reshape(M, n), dtype=float, order="C")
    y0 = np.array(theta0[..., 1::2].reshape(M, n), dtype=float, order="C")
    xe0 = np.zeros((M, n))
    traj_elrs = np.repeat(elrs, S_)

    n_rec = (steps + record_every - 1) // record_every if record_every > 0 else 0
    stats = np.empty((M, K.N_STATS))
    mean_gelr = np.empty((M, n))
    mean_share = np.empty((M, n))
    final_gelr = np.empty((M, n))
    fx = np.empty((M, n))
    fy = np.empty((M, n))
    fxe = np.empty((M, n))
    ltr = np.empty((M, n_rec))
    ctr = np.empty((M, n_rec))
    etr = np.empty((M, n_rec, n))
    if lyapunov:
        v0 = _tangent_vectors(problem, seeds, np.asarray(theta0)).reshape(M, 2 * n)
        vx0 = np.array(v0[:, 0::2], dtype=float, order="C")
        vy0 = np.array(v0[:, 1::2], dtype=float, order="C")
    else:
        vx0 = vy0 = np.empty((M, 0))
    lyap = np.full(M, np.nan)
    lyap_angle = np.full(M, np.nan)
    first_bad = np.empty(M)
    sgd = batch_size is not None
    if sgd:
        keys = np.repeat(sgd_keys(seeds)[None, :], K_, axis=0).reshape(M)
        cdf, _, mlo, mhi = sgd_tables(batch_size, mask_prob)
        bp = float(batch_size * mask_prob)  # the same product that sgd_tables divides by
    else:
        keys = np.zeros(M, dtype=np.uint64)
        cdf = np.ones(1)
        bp = 1.0
        mlo = mhi = 0
    less = np.empty((M, n if wd else 0))
    quiet = np.zeros((M, n if wd else 0))
    # the loss at which a step counts as "at the minimum" (regimes.CONVERGED_LOSS_TOL * sum(alpha))
    conv_tol = CONVERGED_LOSS_TOL * float(problem.alphas.sum())
    args = (np.ascontiguousarray(problem.alphas), traj_elrs, x0, y0, xe0, steps, burn_in, record_every,
            K.block_size(n), keys, cdf, bp, mlo, mhi, stats, mean_gelr, mean_share, final_gelr, fx, fy, fxe,
            ltr, ctr, etr, vx0, vy0, lyap, lyap_angle, first_bad, float(weight_decay or 0.0), conv_tol, less, quiet,
            float(momentum))
    with _numba_threads(threads):
        K.compiled(lyapunov, sgd, wd, args, momentum=momentum > 0)(*args)

    final_theta = np.empty((M, 2 * n))
    final_theta[:, 0::2] = np.ldexp(fx, -K.X_EXPONENT_STEP * fxe.astype(np.int64))
    final_theta[:, 1::2] = fy

    bad = ~(np.all(np.isfinite(stats), axis=1) & np.all(np.isfinite(final_theta), axis=1)
            & np.all(np.isfinite(mean_gelr), axis=1))
    if np.any(bad):
        for arr in (stats, mean_gelr, mean_share, final_gelr, final_theta, lyap, lyap_angle, less, quiet):
            arr[bad] = np.nan
        warnings.warn(
            f"{int(bad.sum())} of {M} trajectories became non-finite; they are excluded (NaN) from the statistics",
            NonFiniteTrajectoryWarning,
            stacklevel=2,
        )

    def per(col):
        return stats[:, col].reshape(K_, S_)

    traces = {}
    if lyapunov:
        traces.update(lyapunov=lyap.reshape(K_, S_), lyapunov_angle=lyap_angle.reshape(K_, S_))
    if record_every > 0:
        traces.update(
            trace_steps=np.arange(0, steps, record_every),
            loss_trace=ltr.reshape(K_, S_, n_rec),
            cosine_trace=ctr.reshape(K_, S_, n_rec),
            group_elr_trace=etr.reshape(K_, S_, n_rec, n),
        )
    if wd:
        fx_true = final_theta[:, 0::2]
        traces.update(
            weight_decay=float(weight_decay),
            momentum=float(momentum),
            mean_elr=per(K.S_MEAN_ELR),
            hm_elr=1.0 / per(K.S_MEAN_INV_ELR),
            mean_log1p_ess2=less.reshape(K_, S_, n),
            frac_converged=per(K.S_FRAC_CONV),
            quiet_phases=quiet.reshape(K_, S_, n),
            final_norms=np.sqrt(fx_true * fx_true + final_theta[:, 1::2] ** 2).reshape(K_, S_, n),
        )
    return SimulationResult(
        alphas=np.array(problem.alphas),
        elrs=elrs,
        seeds=seeds,
        steps=steps,
        burn_in=burn_in,
        record_every=record_every,
        mean_loss=per(K.S_MEAN_LOSS),
        std_loss=per(K.S_STD_LOSS),
        min_loss=per(K.S_MIN_LOSS),
        max_loss=per(K.S_MAX_LOSS),
        mean_cosine=per(K.S_MEAN_COS),
        mean_angle=per(K.S_MEAN_ANGLE),
        mean_eff_grad_norm=per(K.S_MEAN_GRAD),
        first_loss=per(K.S_FIRST_LOSS),
        final_loss=per(K.S_FINAL_LOSS),
        mean_group_elrs=mean_gelr.reshape(K_, S_, n),
        mean_group_shares=mean_share.reshape(K_, S_, n),
        final_group_elrs=final_gelr.reshape(K_, S_, n),
        final_theta=final_theta.reshape(K_, S_, 2 * n),
        nonfinite=bad.reshape(K_, S_).sum(axis=1),
        nonfinite_step=np.where(bad, first_bad, -1).astype(np.int64).reshape(K_, S_),
        batch_size=batch_size,
        mask_prob=mask_prob,
        **traces,
    )
