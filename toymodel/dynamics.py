"""Dynamics of the toy map beyond single runs: Jacobians, attractors, orbit diagrams, basins.

Keyword names follow :func:`toymodel.simulate` (``elrs``, ``steps``, ``burn_in``, ``seeds``,
``threads``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _streams, regimes, theory
from ._records import ResultType
from ._validate import as_elrs, as_int, as_positive_float, as_seeds, as_steps_burn_in
from .model import ToyProblem
from .simulate import seed_stats, simulate
from .sweep import SweepTask, run_sweeps

__all__ = ["intrinsic_coordinates", "from_intrinsic_coordinates", "map_jacobian_fd", "BenettinResult",
           "benettin_lyapunov", "OrbitDiagram", "orbit_diagram", "ATTRACTORS", "ORBIT_TOL", "PERIOD_TOL", "MAX_PERIOD",
           "identify_attractor", "AttractorScan", "attractor_scan", "BasinFractions", "basin_fractions", "RegimeMap",
           "regime_map", "convergence_boundary", "quiet_phases", "elr_bursts"]


def intrinsic_coordinates(problem: ToyProblem, theta) -> np.ndarray:
    r"""Coordinates ``(phi_1..phi_n, omega_1..omega_{n-1})`` of points on the sphere, (..., 2n-1).

    The angles and the free part of the norm split; ``omega_n = 1 - sum`` is implied.
    """
    phi, omega = problem.to_angle_split(theta)
    return np.concatenate([phi, omega[..., :-1]], axis=-1)


def from_intrinsic_coordinates(problem: ToyProblem, z) -> np.ndarray:
    """Inverse of :func:`intrinsic_coordinates` (points on the unit sphere)."""
    z = np.asarray(z, dtype=float)
    n = problem.n_groups
    phi = z[..., :n]
    om = z[..., n:]
    omega = np.concatenate([om, 1.0 - om.sum(axis=-1, keepdims=True)], axis=-1)
    return problem.from_angle_split(phi, omega)


def map_jacobian_fd(problem: ToyProblem, elr: float, theta, steps: int = 1, h: float = 1e-6) -> np.ndarray:
    r"""Central finite-difference Jacobian of ``steps`` iterations of the simulator's own map.

    The map is run by the Numba kernel (:func:`toymodel.simulate`); the Jacobian is taken in
    the intrinsic coordinates of :func:`intrinsic_coordinates`, so it is ``(2n-1, 2n-1)`` and
    has no direction the dynamics ignores.

    Notes
    -----
    Truncation error is :math:`O(h^2)` and rounding error :math:`O(\epsilon/h)`; with the
    default ``h = 1e-6`` both are around 1e-10 for O(1) derivatives.
    """
    if not isinstance(problem, ToyProblem):
        raise ValueError(f"problem must be a ToyProblem, got {type(problem).__name__}")
    elr = float(as_elrs(elr, "elr")[0])
    steps = as_int(steps, "steps", minimum=1)
    h = as_positive_float(h, "h")
    theta = problem.check_points(theta, "theta")
    if theta.shape != (problem.dim,):
        raise ValueError(f"theta must have shape ({problem.dim},), got {theta.shape}")
    z0 = intrinsic_coordinates(problem, theta / np.linalg.norm(theta))
    d = z0.size
    pts = np.concatenate([z0 + h * np.eye(d), z0 - h * np.eye(d)])
    init = from_intrinsic_coordinates(problem, pts)[:, None, :]
    res = simulate(problem, np.full(2 * d, elr), steps, init=init)
    zn = intrinsic_coordinates(problem, res.final_theta[:, 0, :])
    return ((zn[:d] - zn[d:]) / (2 * h)).T


# ------------------------------------------------------------------ Lyapunov (Benettin)
@dataclass(frozen=True, repr=False)
class BenettinResult(ResultType):
    """Two-trajectory estimate of the largest Lyapunov exponent, per seed."""

    elr: float
    seeds: np.ndarray
    steps: int
    burn_in: int
    separation: float
    exponent: np.ndarray  # (S,)
    stderr: np.ndarray  # (S,) standard error from block means

    def long_table(self) -> dict:
        return {"elr": np.full(self.seeds.size, self.elr), "seed": self.seeds, "exponent": self.exponent,
                "stderr": self.stderr}


def benettin_lyapunov(problem: ToyProblem, elr, steps, *, seeds=1, burn_in=0, separation: float = 1e-8,
                      blocks: int = 20) -> BenettinResult:
    r"""Largest Lyapunov exponent from two nearby trajectories (Benettin et al. 1980), in NumPy.

    A companion trajectory starts ``separation`` away along a random tangent direction; after
    every step of the NumPy map the separation's growth is logged and the companion is pulled
    back to distance ``separation`` along the current separation (then projected to the sphere).
    Independent of the kernel's tangent-space code, so the two can be compared.

    Returns per-seed exponents (mean log growth per step over the window) and their standard
    errors from ``blocks`` block means.
    """

    if not isinstance(problem, ToyProblem):
        raise ValueError(f"problem must be a ToyProblem, got {type(problem).__name__}")
    elr = float(as_elrs(elr, "elr")[0])
    steps, burn_in = as_steps_burn_in(steps, burn_in)
    seeds = as_seeds(seeds)
    separation = as_positive_float(separation, "separation")
    blocks = as_int(blocks, "blocks", minimum=2)
    th = problem.initial_points(seeds)
    rng = [_streams.rng(s, _streams.BENETTIN) for s in seeds]
    v = np.stack([g.standard_normal(problem.dim) for g in rng])
    v -= th * np.sum(v * th, axis=1, keepdims=True)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    comp = th + separation * v
    comp /= np.linalg.norm(comp, axis=1, keepdims=True)
    logs = np.zeros((steps - burn_in, seeds.size))
    for t in range(steps):
        th = problem.step(th, elr)
        comp = problem.step(comp, elr)
        d = comp - th
        dist = np.linalg.norm(d, axis=1)
        if t >= burn_in:
            logs[t - burn_in] = np.log(dist / separation)
        comp = th + d * (separation / dist)[:, None]
        comp /= np.linalg.norm(comp, axis=1, keepdims=True)
    T = logs.shape[0]
    nb = min(blocks, T)
    bm = np.array([blk.mean(axis=0) for blk in np.array_split(logs, nb)])
    return BenettinResult(elr, seeds, steps, burn_in, separation, logs.mean(axis=0),
                          bm.std(axis=0, ddof=1) / np.sqrt(nb))


# ------------------------------------------------------------------ orbit diagram
@dataclass(frozen=True, repr=False)
class OrbitDiagram(ResultType):
    """Post-transient loss samples: ``loss[k, s, :]`` are F(theta_t) for the last ``samples``
    steps of the run at ``elrs[k]`` from seed ``seeds[s]``."""

    alphas: np.ndarray
    elrs: np.ndarray
    seeds: np.ndarray
    steps: int
    samples: int
    loss: np.ndarray  # (K, S, samples)
    group_elrs: np.ndarray  # (K, S, samples, n)

    def long_table(self) -> dict:
        """One row per (ELR, seed, sample)."""
        K_, S_, W = self.loss.shape
        return {"elr": np.repeat(self.elrs, S_ * W), "seed": np.tile(np.repeat(self.seeds, W), K_),
                "sample": np.tile(np.arange(W), K_ * S_), "loss": self.loss.reshape(-1)}


def _two_phase(problem, elrs, steps, seeds, samples, threads, lyapunov=False, burn_in=0, record_every=0):
    """Run ``steps - samples`` steps (statistics as asked), then record every one of the last
    ``samples`` steps from where the first run ended."""

    steps = as_int(steps, "steps", minimum=2)
    samples = as_int(samples, "samples", minimum=1)
    if samples >= steps:
        raise ValueError(f"samples must be smaller than steps ({steps}), got {samples}")
    seeds = as_seeds(seeds)
    first = simulate(problem, elrs, steps - samples, seeds=seeds, burn_in=min(burn_in, steps - samples - 1),
                     threads=threads, lyapunov=lyapunov, record_every=record_every)
    ok = np.isfinite(first.final_theta).all(axis=-1)
    init = np.where(ok[..., None], first.final_theta, problem.initial_points(seeds)[None])
    last = simulate(problem, elrs, samples, seeds=seeds, init=init, record_every=1, threads=threads)
    return first, last, ok


def orbit_diagram(problem: ToyProblem, elrs, steps, *, seeds=1, samples: int = 200, threads=None) -> OrbitDiagram:
    """The sampled post-transient loss values per ELR (and per seed).

    Each run takes ``steps`` steps; the last ``samples`` of them are kept. Runs that became
    non-finite give NaN samples.
    """
    if not isinstance(problem, ToyProblem):
        raise ValueError(f"problem must be a ToyProblem, got {type(problem).__name__}")
    elrs = as_elrs(elrs)
    first, last, ok = _two_phase(problem, elrs, steps, seeds, samples, threads)
    loss = np.where(ok[..., None], last.loss_trace, np.nan)
    ge = np.where(ok[..., None, None], last.group_elr_trace, np.nan)
    return OrbitDiagram(np.array(problem.alphas), elrs, first.seeds, int(steps), int(samples), loss, ge)


# -------------------------------------------------------------- attractor labels
#: attractor labels, in the order they are tested
ATTRACTORS = ("minimum", "equilibrium_orbit", "periodic", "chaotic", "quasi_periodic")
#: relative distance (loss and every group ELR, over the whole sampled window) within which a
#: run counts as on the derived equilibrium orbit. Random starts approach the orbit only
#: algebraically (amplitude ~ t^-1/2: about 1% in the group ELRs after 10^5 steps), so the
#: tolerance is a few percent; coexisting attractors near c ~ 1.28 and sqrt 2 differ by >= 5%.
ORBIT_TOL = 0.05
#: relative tolerance for "the window repeats with period p" (loss and group ELRs)
PERIOD_TOL = 1e-6
#: longest period looked for
MAX_PERIOD = 64


def _periods(loss, ge, tol=PERIOD_TOL, max_period=MAX_PERIOD):
    """Smallest p <= max_period with loss[t+p] ~ loss[t] and ge[t+p] ~ ge[t] over the window,
    or 0. ``loss`` (R, W), ``ge`` (R, W, n)."""
    R, W = loss.shape
    out = np.zeros(R, dtype=np.int64)
    scale_l = np.abs(loss).max(axis=1) + 1e-300
    for p in range(1, min(max_period, W // 2) + 1):
        todo = out == 0
        if not todo.any():
            break
        dl = np.abs(loss[:, p:] - loss[:, :-p]).max(axis=1) / scale_l
        dg = np.abs(ge[:, p:] / ge[:, :-p] - 1).max(axis=(1, 2))
        hit = todo & (dl <= tol) & (dg <= tol)
        out[hit] = p
    return out


def identify_attractor(alphas, elr, loss_window, group_elr_window, lyapunov, final_loss):
    """Say which attractor each run ended on.

    Parameters
    ----------
    alphas : (n,)
    elr : float
    loss_window : (..., W) loss over the last W steps; group_elr_window : (..., W, n)
    lyapunov : (...) largest Lyapunov exponent over the run's window
    final_loss : (...)

    Returns
    -------
    labels : object array (...) from :data:`ATTRACTORS` or ``"nonfinite"``
    periods : int array (...): the period of a periodic window (1 for the equilibrium orbit,
        whose loss and group ELRs are constant), 0 otherwise

    Notes
    -----
    Tests, in order: ``minimum`` if the final loss is below ``CONVERGED_LOSS_TOL * sum(alpha)``;
    ``equilibrium_orbit`` if c > 1 and every loss and group ELR in the window is within
    :data:`ORBIT_TOL` (relative) of the derived orbit; ``periodic`` if the window repeats with a
    period p <= :data:`MAX_PERIOD` to :data:`PERIOD_TOL`; ``chaotic`` if the exponent exceeds
    ``CHAOS_LYAPUNOV_TOL``; ``quasi_periodic`` (bounded, exponent ~ 0, not periodic) otherwise.
    """

    alphas = np.asarray(alphas, dtype=float)
    loss = np.asarray(loss_window, dtype=float)
    ge = np.asarray(group_elr_window, dtype=float)
    shape = loss.shape[:-1]
    W = loss.shape[-1]
    loss2 = loss.reshape(-1, W)
    ge2 = ge.reshape(-1, W, alphas.size)
    lyap = np.asarray(lyapunov, dtype=float).reshape(-1)
    fl = np.asarray(final_loss, dtype=float).reshape(-1)
    labels = np.full(loss2.shape[0], "quasi_periodic", dtype=object)
    finite = np.isfinite(loss2).all(axis=1) & np.isfinite(ge2).all(axis=(1, 2)) & np.isfinite(fl)
    per = np.zeros(loss2.shape[0], dtype=np.int64)
    per[finite] = _periods(loss2[finite], ge2[finite])
    labels[per > 0] = "periodic"
    with np.errstate(invalid="ignore"):
        labels[(lyap > regimes.CHAOS_LYAPUNOV_TOL) & (per == 0)] = "chaotic"
        if elr * alphas.sum() > 1:
            f_star = theory.equilibrium_loss(alphas, elr)
            g_star = theory.equilibrium_group_elrs(alphas, elr)
            on = (np.abs(loss2 / f_star - 1).max(axis=1) <= ORBIT_TOL) & (
                np.abs(ge2 / g_star - 1).max(axis=(1, 2)) <= ORBIT_TOL)
            labels[on] = "equilibrium_orbit"
            per[on] = 1
        minimum = fl <= regimes.CONVERGED_LOSS_TOL * alphas.sum()
    labels[minimum] = "minimum"
    per[minimum] = 0
    labels[~finite] = "nonfinite"
    return labels.reshape(shape), per.reshape(shape)


# ------------------------------------------------------------------ basin fractions
@dataclass(frozen=True, repr=False)
class BasinFractions(ResultType):
    """Where random starts end up at one ELR.

    ``labels`` (S,) and ``periods`` (S,) per seed; ``fractions`` maps every label of
    :data:`ATTRACTORS` (and ``nonfinite``) to its share of the seeds (they sum to 1);
    ``reach_time`` (S,) is the first recorded step from which the run stays within tolerance
    of the minimum or of the equilibrium orbit (NaN for other attractors, which have no
    tolerance-defined neighbourhood); ``lyapunov`` (S,).
    """

    alphas: np.ndarray
    elr: float
    seeds: np.ndarray
    steps: int
    burn_in: int
    labels: np.ndarray
    periods: np.ndarray
    fractions: dict
    reach_time: np.ndarray
    lyapunov: np.ndarray

    def long_table(self) -> dict:
        S_ = self.seeds.size
        return {"elr": np.full(S_, self.elr), "seed": self.seeds, "label": self.labels, "period": self.periods,
                "reach_time": self.reach_time, "lyapunov": self.lyapunov}

    def summary_lines(self) -> list:
        return ["fractions: " + ", ".join(f"{k} {v:.2f}" for k, v in self.fractions.items() if v > 0)]

    def median_reach_time(self, label: str) -> float:
        sel = (self.labels == label) & np.isfinite(self.reach_time)
        return float(np.median(self.reach_time[sel])) if sel.any() else float("nan")


def _reach_times(alphas, elr, trace_steps, loss_trace, ge_trace, labels):
    """First recorded step after which the run stays near its attractor (minimum / orbit)."""

    alphas = np.asarray(alphas, dtype=float)
    out = np.full(labels.shape, np.nan)
    near = np.zeros(loss_trace.shape, dtype=bool)
    is_min = labels == "minimum"
    near[is_min] = loss_trace[is_min] <= regimes.CONVERGED_LOSS_TOL * alphas.sum()
    if elr * alphas.sum() > 1:
        is_orb = labels == "equilibrium_orbit"
        f_star = theory.equilibrium_loss(alphas, elr)
        g_star = theory.equilibrium_group_elrs(alphas, elr)
        near[is_orb] = (np.abs(loss_trace[is_orb] / f_star - 1) <= ORBIT_TOL) & (
            np.abs(ge_trace[is_orb] / g_star - 1).max(axis=-1) <= ORBIT_TOL)
    for idx in np.flatnonzero(is_min | (labels == "equilibrium_orbit")):
        row = near[idx]
        bad = np.flatnonzero(~row)
        first = 0 if bad.size == 0 else bad[-1] + 1
        if first < row.size:
            out[idx] = trace_steps[first]
    return out


@dataclass(frozen=True, repr=False)
class AttractorScan(ResultType):
    """Attractor labels of every run of an ELR x seed sweep (see :func:`attractor_scan`)."""

    alphas: np.ndarray
    elrs: np.ndarray
    seeds: np.ndarray
    steps: int
    burn_in: int
    labels: np.ndarray  # (K, S)
    periods: np.ndarray  # (K, S)
    reach_time: np.ndarray  # (K, S)
    lyapunov: np.ndarray  # (K, S)
    _grid_fields = ("labels", "periods", "reach_time", "lyapunov")

    def fractions(self) -> dict:
        """Share of seeds per label, one array (K,) per label of ATTRACTORS and ``nonfinite``."""
        return {nm: (self.labels == nm).mean(axis=1) for nm in ATTRACTORS + ("nonfinite",)}


def attractor_scan(problem: ToyProblem, elrs, steps, *, seeds=16, burn_in=None, window: int = 256,
                   records: int = 1000, threads=None) -> AttractorScan:
    """Which attractor every (ELR, seed) run ends on, and when it got there.

    Runs ``steps`` steps with the Lyapunov exponent over ``[burn_in, steps - window)`` (burn-in
    defaults to half the run) and the loss and group ELRs recorded about ``records`` times, then
    records every one of the last ``window`` steps and labels the run with
    :func:`identify_attractor`. ``reach_time`` is the first recorded step from which the run
    stays within tolerance of the minimum or of the equilibrium orbit (NaN for the other
    attractors, which have no tolerance-defined neighbourhood).
    """
    if not isinstance(problem, ToyProblem):
        raise ValueError(f"problem must be a ToyProblem, got {type(problem).__name__}")
    elrs = as_elrs(elrs)
    steps = as_int(steps, "steps", minimum=2)
    window = as_int(window, "window", minimum=2)
    records = as_int(records, "records", minimum=1)
    burn_in = steps // 2 if burn_in is None else as_int(burn_in, "burn_in", minimum=0)
    stride = max(1, (steps - window) // records)
    first, last, ok = _two_phase(problem, elrs, steps, seeds, window, threads, lyapunov=True, burn_in=burn_in,
                                 record_every=stride)
    loss_w = np.where(ok[..., None], last.loss_trace, np.nan)
    ge_w = np.where(ok[..., None, None], last.group_elr_trace, np.nan)
    labels = np.empty(ok.shape, dtype=object)
    periods = np.zeros(ok.shape, dtype=np.int64)
    reach = np.full(ok.shape, np.nan)
    for kq, e in enumerate(elrs):
        lab, per = identify_attractor(problem.alphas, e, loss_w[kq], ge_w[kq], first.lyapunov[kq], last.final_loss[kq])
        labels[kq] = np.where(ok[kq], lab, "nonfinite")
        periods[kq] = per
        reach[kq] = _reach_times(problem.alphas, e, first.trace_steps, first.loss_trace[kq], first.group_elr_trace[kq],
                                 labels[kq])
    return AttractorScan(np.array(problem.alphas), elrs, first.seeds, steps, min(burn_in, steps - window - 1), labels,
                         periods, reach, first.lyapunov)


def basin_fractions(problem: ToyProblem, elr, steps, *, seeds=256, burn_in=None, window: int = 256,
                    records: int = 1000, threads=None) -> BasinFractions:
    """Over many random starts, the share that reaches each attractor, and how long it took.

    Parameters
    ----------
    problem, elr, steps, seeds, threads : as :func:`toymodel.simulate` (one ELR).
    burn_in : steps before the Lyapunov window (default ``steps // 2``).
    window : the last ``window`` steps are recorded to identify the attractor
        (:func:`identify_attractor`).
    records : the loss and group ELRs are recorded about ``records`` times over the run to
        time the approach.
    """
    if np.ndim(elr) != 0:
        raise ValueError(f"elr must be a single ELR, got shape {np.shape(elr)}")
    scan = attractor_scan(problem, [elr], steps, seeds=seeds, burn_in=burn_in, window=window, records=records,
                          threads=threads)
    fr = {nm: float(v[0]) for nm, v in scan.fractions().items()}
    return BasinFractions(scan.alphas, float(scan.elrs[0]), scan.seeds, scan.steps, scan.burn_in, scan.labels[0],
                          scan.periods[0], fr, scan.reach_time[0], scan.lyapunov[0])


# ------------------------------------------------------------------ regime maps

@dataclass(frozen=True, repr=False)
class RegimeMap(ResultType):
    """Regimes on a grid of (row parameter, c = elr * sum(alpha)).

    ``rows`` are the values of the row parameter (``alpha_2/alpha_1`` for n = 2, or the number
    of groups n at equal alphas), ``cs`` the c values. ``regime`` and ``subtype`` (R, C) are the
    per-cell verdicts of :mod:`toymodel.regimes` (majority over seeds, subtype from the
    Lyapunov exponent); ``frac_chaotic`` (R, C) the share of seeds that are chaotic;
    ``lyapunov`` (R, C) the seed-mean largest exponent; ``alphas`` one weight vector per row.
    """

    kind: str
    rows: np.ndarray
    cs: np.ndarray
    alphas: tuple
    regime: np.ndarray
    subtype: np.ndarray
    frac_chaotic: np.ndarray
    lyapunov: np.ndarray
    steps: int
    burn_in: int
    seeds: np.ndarray

    def long_table(self) -> dict:
        """One row per cell (row parameter, c)."""
        R, C = self.regime.shape
        return {"row": np.repeat(self.rows, C), "c": np.tile(self.cs, R), "regime": self.regime.reshape(-1),
                "subtype": self.subtype.reshape(-1), "frac_chaotic": self.frac_chaotic.reshape(-1),
                "lyapunov": self.lyapunov.reshape(-1)}


def regime_map(kind: str, rows, cs, steps, *, seeds=4, burn_in=None, threads=None, progress=False,
               scheduler=None, dask_local=None) -> RegimeMap:
    """Classify runs over a grid of c and a second parameter.

    Parameters
    ----------
    kind : ``"ratio"`` (n = 2, alphas = (1, r) for r in ``rows``) or ``"groups"`` (n = r equal
        weights 1, for integer r in ``rows``).
    rows, cs : the grid; ELRs are ``c / sum(alpha)`` in each row.
    steps, seeds, burn_in, threads : as :func:`toymodel.simulate` (burn-in defaults to steps/2);
        every run computes its Lyapunov exponent, which decides periodic vs chaotic.
    scheduler, dask_local : run the chunks on a Dask cluster (see :mod:`toymodel.sweep`).
    """

    if kind not in ("ratio", "groups"):
        raise ValueError(f"kind must be 'ratio' or 'groups', got {kind!r}")
    rows = np.asarray(rows, dtype=float)
    cs = as_elrs(cs, "cs")
    steps = as_int(steps, "steps", minimum=2)
    burn_in = steps // 2 if burn_in is None else as_int(burn_in, "burn_in", minimum=0)
    seeds = as_seeds(seeds)
    if kind == "ratio":
        alphas = [(1.0, float(r)) for r in as_elrs(rows, "rows")]
    else:
        alphas = [(1.0,) * as_int(r, "rows", minimum=1) for r in rows]
    tasks = [SweepTask.make(a, cs / sum(a), seeds, steps=steps, burn_in=burn_in, lyapunov=True) for a in alphas]
    results = run_sweeps(tasks, threads=threads, progress=progress, desc=f"regime map ({kind})",
                         scheduler=scheduler, dask_local=dask_local)
    R, C = rows.size, cs.size
    regime = np.empty((R, C), dtype=object)
    subtype = np.empty((R, C), dtype=object)
    frac = np.empty((R, C))
    lyap = np.empty((R, C))
    for ri, res in enumerate(results):
        reg, sub = regimes.classify_result(res)
        best, bsub, fr = regimes.classify_elrs(reg, sub)
        regime[ri], subtype[ri], frac[ri] = best, bsub, fr["chaotic"]
        lyap[ri] = seed_stats(res.lyapunov)[0]
    return RegimeMap(kind, rows, cs, tuple(alphas), regime, subtype, frac, lyap, steps, burn_in, seeds)


# ------------------------------------------------------------------ convergence boundary
def convergence_boundary(problem: ToyProblem, cs, steps, *, seeds=8, window: int = 1000, batch_size=None,
                         mask_prob=1.0, threads=None):
    """Estimate where runs stop converging, by simulation.

    Runs every c in ``cs`` (ELR = c / sum(alpha)) with ``seeds`` random starts and classifies
    them with :mod:`toymodel.regimes` (for SGD against the SGD stability edge). Returns
    ``(c_boundary, converged_fraction)``: the c where the converged fraction first drops below
    1/2 (linear interpolation between grid points; NaN if it never does).
    """

    cs = as_elrs(cs, "cs")
    steps = as_int(steps, "steps", minimum=2)
    window = min(as_int(window, "window", minimum=1), steps - 1)
    res = simulate(problem, cs / problem.total_alpha, steps, seeds=seeds, burn_in=steps - window,
                   batch_size=batch_size, mask_prob=mask_prob, threads=threads)
    reg, _ = regimes.classify_result(res)
    frac = (reg == "convergence").mean(axis=1)
    below = np.flatnonzero(frac < 0.5)
    if below.size == 0:
        return float("nan"), frac
    i = int(below[0])
    if i == 0:
        return float(cs[0]), frac
    f0, f1 = frac[i - 1], frac[i]
    t = (f0 - 0.5) / (f0 - f1)
    return float(np.exp(np.log(cs[i - 1]) + t * (np.log(cs[i]) - np.log(cs[i - 1])))), frac


# ------------------------------------------------------------------ conventional training
def quiet_phases(ess, k, lr_value, weight_decay, threshold: float = 1e-3):
    """Quiet phases of a one-group conventional run: maximal stretches where the group's ESS stays
    below ``threshold`` (the angle is linearised, derivation 14). Returns ``[(t_start, t_end_measured,
    t_end_derived)]``, the derived end being ``t_start + theory.conventional_quiet_steps(k_a)`` with
    ``k_a = k[t_start]``. ``ess`` and ``k`` are the group's ESS and k = ELR * alpha per step."""
    small = np.asarray(ess) < threshold
    out = []
    t = 0
    T = small.size
    while t < T:
        if small[t] and (t == 0 or not small[t - 1]):
            u = t
            while u < T and small[u]:
                u += 1
            if t > 0 and u < T and 0 < k[t] < 1:  # complete phases only, entered below the edge
                pred = t + theory.conventional_quiet_steps(lr_value, weight_decay, float(k[t]))
                out.append((t, u, float(pred)))
            t = u
        else:
            t += 1
    return out


def elr_bursts(total_elr, lr_value, weight_decay, threshold: float = 1e-3, smooth: int = 1,
               relative: float | None = None, include_start: bool = False):
    """Quiet phases and bursts of conventional training read off its total ELR per step, for any
    model (a network as well as the toy).

    The total ELR of the direction map, eta/((1 - eta lambda) ‖θ‖²), changes per step by the
    factor 1/(d^2 (1 + ESS^2)) with ESS^2 the norm-weighted mean of the groups' ESS_i^2 and
    d = 1 - eta lambda (derivation 11), so each step's ESS^2 = (elr_t/elr_{t+1})/d^2 - 1 follows from
    the trace. A quiet phase is a maximal stretch with ESS < ``threshold``: there the ELR grows like
    d^(-2t) (derivation 14); a burst is the step where it ends.

    Parameters
    ----------
    total_elr : array_like, shape (T,)
        The total ELR before every step.
    lr_value, weight_decay : float
    threshold : float, optional
        The ESS below which a step is quiet (default 1e-3, the toy's ``QUIET_ESS2`` = 1e-6 for ESS^2).
    smooth : int, optional
        Average ESS^2 over this many steps first (default 1: none). Mini-batch noise makes a converged
        network's ESS flicker around any threshold; a window of a few dozen steps reads its phases.
    relative : float, optional
        Instead of ``threshold``: a step is quiet when its ESS^2 is below this fraction of the law's
        d^(-2) - 1, that is, when log ELR grows at least at about (1 - relative) times derivation 14's
        rate -2 log d. A network's mini-batch noise keeps ESS^2 well above any fixed 1e-6 while its
        ELR still grows at nearly the law's rate; ``relative=0.25`` reads such phases.
    include_start : bool, optional
        Also count a quiet phase that starts at the trace's first step (default False: only phases
        entered inside the trace). Conventional training from a fresh initialisation starts in one.

    Returns
    -------
    list of tuple
        ``(t_start, t_end, growth)`` of every complete quiet phase (entered and left inside the
        trace): its first and last step and its measured growth rate of log ELR per step, to compare
        with -2 log(1 - eta lambda).
    """
    e = np.asarray(total_elr, dtype=float)
    d = 1.0 - float(lr_value) * float(weight_decay)
    ess2 = e[:-1] / e[1:] / (d * d) - 1.0
    if smooth > 1:
        ess2 = np.convolve(ess2, np.ones(int(smooth)) / int(smooth), mode="same")
    if relative is not None:
        if not (np.isfinite(relative) and 0 < relative < 1):
            raise ValueError(f"relative must be in (0, 1), got {relative!r}")
        quiet = ess2 < float(relative) * (1.0 / (d * d) - 1.0)
    else:
        quiet = ess2 < threshold * threshold
    out = []
    t, T = 0, quiet.size
    while t < T:
        if quiet[t] and (t == 0 and include_start or t > 0 and not quiet[t - 1]):
            u = t
            while u < T and quiet[u]:
                u += 1
            if u < T and u - t >= max(2, int(smooth)):
                out.append((t, u, float((np.log(e[u]) - np.log(e[t])) / (u - t))))
            t = u
        else:
            t += 1
    return out
