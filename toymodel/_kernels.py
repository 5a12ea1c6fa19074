"""Numba kernels: the projected-gradient map on the sphere, many trajectories at once.

Kernels only: nothing is read or written except the arrays passed in, and every result goes
into an ``out`` array. :mod:`toymodel.simulate` validates, allocates and calls. Full-batch GD
draws no random numbers at all; mini-batch SGD evaluates a counter-based hash (SplitMix64's
output function) of ``(trajectory key, step, group)``, so its noise is a pure function of the
seed: reproducible, independent of threads and of the rest of the sweep.

Variants
--------
:func:`kernel` returns one of four compiled variants, (GD | SGD) x (without | with Lyapunov
exponents), built by one factory from the same inlined step; the flags are compile-time
constants, so a variant contains no code for what it does not compute. Each variant is
compiled on first use and cached on disk.

Layout
------
Trajectories are processed in blocks of ``block`` trajectories; inside a block the state is
stored group-major with the trajectory index innermost (``x[i, j]``), so the loops over ``j``
vectorise. Blocks are independent and run under ``prange``; each trajectory performs the same
floating-point operations whatever block, thread or sweep it belongs to, so results are
bit-identical for any thread count and do not change when trajectories are added.

Faithful tiny angles
--------------------
A converging group has ``x_i -> 0`` geometrically. In plain floating point ``x_i`` would
underflow to exactly zero, after which the group never moves again, although in exact
arithmetic it would be re-excited once its ELR grows (THEORY section 4, item 6; the reliability
issue). The kernel therefore stores ``x_i`` with an extra binary exponent: the true value is
``xs * 2**(-512*e)``. When ``|x_i| < 2**-300 |y_i|`` it is rescaled by ``2**512`` (exactly)
and ``e`` grows by one; it is scaled back once ``|xs| > 2**212 |y_i|``. While ``e > 0`` the
true ``x_i**2`` is below ``2**-600 y_i**2`` and thus below half an ulp of every sum it enters,
so using 0 for it in ``r_i^2``, the loss and the update of ``y_i`` gives exactly the result
that unbounded-exponent floating point would give; the linear update ``x <- x (1 - 2k)`` is
applied to ``xs`` exactly. Such a group contributes 0 to the reported loss (its true
contribution is below ``2**-600 alpha_i``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# exact powers of two for the extended exponent of x (see module docstring)
_BIG = 2.0 ** 512
_INV_BIG = 2.0 ** -512
_TINY_RATIO = 2.0 ** -300
_HUGE_RATIO = 2.0 ** 212
X_EXPONENT_STEP = 512
# tangent vectors and products of angle derivatives are renormalised when they leave
# [_RENORM_LO, _RENORM_HI]; a single step contracting by more than _MIN_FACTOR (only when
# k cos 2phi hits 1/2 almost exactly) is counted as _MIN_FACTOR, so the exponent stays finite
_RENORM_HI = 1e150
_RENORM_LO = 1e-150
_MIN_FACTOR = 1e-100
_COLLAPSED = 1e-300

# SplitMix64 constants (Steele, Lea & Flood 2014), used as a counter-based hash
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_U53 = 2.0 ** -53

# columns of the per-trajectory statistics array
S_MEAN_LOSS = 0
S_STD_LOSS = 1
S_MIN_LOSS = 2
S_MAX_LOSS = 3
S_MEAN_COS = 4
S_MEAN_ANGLE = 5
S_MEAN_GRAD = 6
S_FIRST_LOSS = 7
S_FINAL_LOSS = 8
N_STATS = 9

# Cephes atan coefficients (S. Moshier, Cephes Math Library, atan.c), accurate to ~1 ulp.
_T3P8 = 2.41421356237309504880  # tan(3 pi / 8)
_MOREBITS = 6.123233995736765886130e-17
_P0 = -8.750608600031904122785e-1
_P1 = -1.615753718733365076637e1
_P2 = -7.500855792314704667340e1
_P3 = -1.228866684490136173410e2
_P4 = -6.485021904942025371773e1
_Q0 = 2.485846490142306297962e1
_Q1 = 1.650270098316988542046e2
_Q2 = 4.328810604912902668951e2
_Q3 = 4.853903996359136964868e2
_Q4 = 1.945506571482613964425e2


@njit(cache=True, inline="always")
def atan_nonneg(x):
    """arctan(x) for x >= 0 without branches, so loops that call it vectorise.

    Same algorithm as Cephes ``atan`` (range reduction at tan(3pi/8) and 0.66, then a
    rational approximation); agrees with ``math.atan`` to a few ulp (tested).
    """
    big = x > _T3P8
    mid = x > 0.66
    num = -1.0 if big else (x - 1.0 if mid else x)
    den = x if big else (x + 1.0 if mid else 1.0)
    xr = num / den
    y0 = 0.5 * math.pi if big else (0.25 * math.pi if mid else 0.0)
    corr = _MOREBITS if big else (0.5 * _MOREBITS if mid else 0.0)
    z = xr * xr
    p = (((_P0 * z + _P1) * z + _P2) * z + _P3) * z + _P4
    q = ((((z + _Q0) * z + _Q1) * z + _Q2) * z + _Q3) * z + _Q4
    return y0 + ((xr * (z * p / q) + xr) + corr)


def block_size(n_groups: int) -> int:
    """Trajectories per block: a multiple of 8 keeping a block's state within L1/L2 cache."""
    b = (2048 // max(1, n_groups)) // 8 * 8
    return int(min(64, max(8, b)))


@njit(cache=True, inline="always")
def uniform_hash(key, counter):
    """A uniform number in [0, 1) from a 64-bit key and counter (SplitMix64 output function
    applied to ``key + (counter + 1) * gamma``: element ``counter`` of the SplitMix64 stream
    started at ``key``)."""
    z = key + (counter + np.uint64(1)) * _GAMMA
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    z = z ^ (z >> _S31)
    return float(z >> _S11) * _U53


@njit(cache=True, inline="always")
def _batch_weights(alphas, keys, cdf, coef, mlo, mhi, t, j0, m, AW):
    """Per-group weights of this step's mini-batch loss: alpha_i * M_i / (b p) with
    M_i ~ Binomial(b, p), drawn by inverse CDF from one hashed uniform per (trajectory, group)."""
    n = alphas.shape[0]
    for i in range(n):
        ctr = np.uint64(t) * np.uint64(n) + np.uint64(i)
        for j in range(m):
            u = uniform_hash(keys[j0 + j], ctr)
            cnt = mlo
            for q in range(mlo, mhi):
                cnt += 1 if u >= cdf[q] else 0
            AW[i, j] = alphas[i] * coef[cnt]


@njit(cache=True, inline="always")
def _step_block(alphas, m, j0, collect, rec, r, lyap, sgd, st, ly, rc):
    """Advance the m trajectories of one block by one step, updating statistics in place.

    ``collect``, ``rec``, ``lyap`` and ``sgd`` are constants after inlining, so a variant
    contains no code for what it does not compute. The loss, gradient norm and statistics are
    those of F (weights ``alphas``); the step descends the batch loss (weights ``AW``) in SGD.
    Arrays come in tuples (state ``st``, tangent ``ly``, records ``rc``) to keep calls short.
    """
    X, Y, XE, AW, SINV, SR2, eta, nrm, g2, gb2, loss, ACC = st
    VX, VY, VN, LV, PA, LA = ly
    record_every, ltr, ctr, etr = rc
    n = alphas.shape[0]
    # Recording happens in separate loops: stores into output arrays inside the hot loops
    # keep LLVM from vectorising them (measured: 4x slower).
    if rec:
        for i in range(n):
            for j in range(m):
                xt = X[i, j] if XE[i, j] == 0.0 else 0.0
                etr[j0 + j, r, i] = eta[j] / (xt * xt + Y[i, j] * Y[i, j])
    for j in range(m):
        nrm[j] = 0.0
        g2[j] = 0.0
        gb2[j] = 0.0
        loss[j] = 0.0
    for i in range(n):
        al = alphas[i]
        for j in range(m):
            a = AW[i, j] if sgd else al
            xs = X[i, j]
            y = Y[i, j]
            xt = xs if XE[i, j] == 0.0 else 0.0
            x2 = xt * xt
            y2 = y * y
            inv = 1.0 / (x2 + y2)
            c2 = y2 * inv
            s2 = x2 * inv
            k = eta[j] * a * inv
            fx = 1.0 - 2.0 * k * c2
            yn = y * (1.0 + 2.0 * k * s2)
            xn = xt * fx
            X[i, j] = xs * fx
            Y[i, j] = yn
            nrm[j] += xn * xn + yn * yn
            loss[j] += al * s2
            g2[j] += 4.0 * al * al * s2 * c2 * inv
            if sgd:
                gb2[j] += 4.0 * a * a * s2 * c2 * inv
            if collect:
                SINV[i, j] += inv
                SR2[i, j] += x2 + y2
            if lyap:
                # tangent map, first half: du = (I - eta H) v with the group's Hessian
                hxx = 2.0 * a * inv * c2 * (c2 - 3.0 * s2)
                hxy = 4.0 * a * inv * (xt * y * inv) * (s2 - c2)
                hyy = 2.0 * a * inv * s2 * (3.0 * c2 - s2)
                vx = VX[i, j]
                vy = VY[i, j]
                VX[i, j] = vx - eta[j] * (hxx * vx + hxy * vy)
                VY[i, j] = vy - eta[j] * (hxy * vx + hyy * vy)
                if collect:
                    # angle directions only: d phi'/d phi = 1 - 2k cos 2phi / (1 + (k sin 2phi)^2)
                    dphi = 1.0 - 2.0 * k * (c2 - s2) / (1.0 + 4.0 * k * k * s2 * c2)
                    PA[i, j] *= max(abs(dphi), _MIN_FACTOR)
    for j in range(m):
        nrm[j] = 1.0 / math.sqrt(nrm[j])
    if rec:
        for j in range(m):
            ltr[j0 + j, r] = loss[j]
            ctr[j0 + j, r] = nrm[j]
    if collect:
        for j in range(m):
            gn = math.sqrt(g2[j])
            gstep = math.sqrt(gb2[j]) if sgd else gn
            lj = loss[j]
            d = lj - ACC[S_FIRST_LOSS, j]
            ACC[S_MEAN_LOSS, j] += d
            ACC[S_STD_LOSS, j] += d * d
            ACC[S_MIN_LOSS, j] = min(ACC[S_MIN_LOSS, j], lj)
            ACC[S_MAX_LOSS, j] = max(ACC[S_MAX_LOSS, j], lj)
            ACC[S_MEAN_COS, j] += nrm[j]
            ACC[S_MEAN_ANGLE, j] += atan_nonneg(eta[j] * gstep)
            ACC[S_MEAN_GRAD, j] += gn
    for i in range(n):
        for j in range(m):
            sc = nrm[j]
            xs = X[i, j] * sc
            y = Y[i, j] * sc
            e = XE[i, j]
            ax = abs(xs)
            ay = abs(y)
            down = ax < _TINY_RATIO * ay
            up = (e > 0.0) and (ax > _HUGE_RATIO * ay)
            X[i, j] = xs * (_BIG if down else (_INV_BIG if up else 1.0))
            XE[i, j] = e + (1.0 if down else (-1.0 if up else 0.0))
            Y[i, j] = y
    if lyap:
        _tangent_project(X, Y, XE, m, nrm, VX, VY, VN, LV, PA, LA, collect)


@njit(cache=True, inline="always")
def _tangent_project(X, Y, XE, m, invn, VX, VY, VN, LV, PA, LA, collect):
    """Tangent map, second half: project du onto the tangent space at the new point and divide
    by the step's norm; renormalise rarely, accumulating the log of the stretch."""
    n = X.shape[0]
    for j in range(m):
        VN[j] = 0.0
    for i in range(n):
        for j in range(m):
            xt = X[i, j] if XE[i, j] == 0.0 else 0.0
            VN[j] += xt * VX[i, j] + Y[i, j] * VY[i, j]
    for i in range(n):
        for j in range(m):
            xt = X[i, j] if XE[i, j] == 0.0 else 0.0
            VX[i, j] = (VX[i, j] - xt * VN[j]) * invn[j]
            VY[i, j] = (VY[i, j] - Y[i, j] * VN[j]) * invn[j]
    for j in range(m):
        VN[j] = 0.0
    for i in range(n):
        for j in range(m):
            VN[j] += VX[i, j] * VX[i, j] + VY[i, j] * VY[i, j]
    for j in range(m):
        v2 = VN[j]
        if v2 < _COLLAPSED:
            # the Jacobian annihilated the tangent vector (a multiplier exactly 0, e.g. n = 1 at
            # c = 1/2): count a contraction of _MIN_FACTOR and restart along the rotation of group 1,
            # which is tangent to the sphere
            if collect:
                LV[j] += math.log(_MIN_FACTOR)
            xt = X[0, j] if XE[0, j] == 0.0 else 0.0
            r1 = math.sqrt(xt * xt + Y[0, j] * Y[0, j])
            for i in range(n):
                VX[i, j] = 0.0
                VY[i, j] = 0.0
            VX[0, j] = Y[0, j] / r1
            VY[0, j] = -xt / r1
        elif v2 > _RENORM_HI or v2 < _RENORM_LO:
            nv = math.sqrt(v2)
            if collect:
                LV[j] += math.log(nv)
            for i in range(n):
                VX[i, j] /= nv
                VY[i, j] /= nv
    if collect:
        for i in range(n):
            for j in range(m):
                p = PA[i, j]
                if p > _RENORM_HI or p < _RENORM_LO:
                    LA[i, j] += math.log(p)
                    PA[i, j] = 1.0


@njit(cache=True, inline="always")
def _block_loss(alphas, X, Y, XE, m, loss):
    n = alphas.shape[0]
    for j in range(m):
        loss[j] = 0.0
    for i in range(n):
        for j in range(m):
            xt = X[i, j] if XE[i, j] == 0.0 else 0.0
            loss[j] += alphas[i] * xt * xt / (xt * xt + Y[i, j] * Y[i, j])


@njit(cache=True, inline="always")
def _run_steps(t0, t1, collect, lyap, sgd, alphas, m, j0, st, ly, sg, rc):
    AW = st[3]
    keys, cdf, coef, mlo, mhi = sg
    record_every = rc[0]
    for t in range(t0, t1):
        rec = record_every > 0 and t % record_every == 0
        r = t // record_every if record_every > 0 else 0
        if sgd:
            _batch_weights(alphas, keys, cdf, coef, mlo, mhi, t, j0, m, AW)
        _step_block(alphas, m, j0, collect, rec, r, lyap, sgd, st, ly, rc)


def _make_kernel(LYAP: bool, SGD: bool):
    """Build one compiled variant; ``LYAP`` and ``SGD`` are frozen closure constants."""

    @njit(cache=True, parallel=True)
    def run(alphas, elrs, x0, y0, xe0, steps, burn_in, record_every, block, keys, cdf, coef, mlo, mhi,
            stats, mean_group_elrs, mean_group_shares, final_group_elrs, final_x, final_y, final_xe,
            loss_trace, cos_trace, elr_trace, vx0, vy0, lyap_out, lyap_angle_out):
        n = alphas.shape[0]
        M = elrs.shape[0]
        nblocks = (M + block - 1) // block
        T = steps - burn_in
        for b in prange(nblocks):
            j0 = b * block
            m = min(block, M - j0)
            X = np.empty((n, m))
            Y = np.empty((n, m))
            XE = np.empty((n, m))
            AW = np.empty((n if SGD else 0, m))
            SINV = np.zeros((n, m))
            SR2 = np.zeros((n, m))
            eta = np.empty(m)
            nrm = np.empty(m)
            g2 = np.empty(m)
            gb2 = np.empty(m)
            loss = np.empty(m)
            ACC = np.zeros((N_STATS, m))
            nl = n if LYAP else 0
            VX = np.empty((nl, m))
            VY = np.empty((nl, m))
            VN = np.empty(m)
            LV = np.zeros(m)
            PA = np.ones((nl, m))
            LA = np.zeros((nl, m))
            for j in range(m):
                eta[j] = elrs[j0 + j]
                for i in range(n):
                    X[i, j] = x0[j0 + j, i]
                    Y[i, j] = y0[j0 + j, i]
                    XE[i, j] = xe0[j0 + j, i]
                for i in range(nl):
                    VX[i, j] = vx0[j0 + j, i]
                    VY[i, j] = vy0[j0 + j, i]
            st = (X, Y, XE, AW, SINV, SR2, eta, nrm, g2, gb2, loss, ACC)
            ly = (VX, VY, VN, LV, PA, LA)
            sg = (keys, cdf, coef, mlo, mhi)
            rc = (record_every, loss_trace, cos_trace, elr_trace)
            # burn-in (the tangent vector warms up here), then the statistics window
            _run_steps(0, burn_in, False, LYAP, SGD, alphas, m, j0, st, ly, sg, rc)
            if LYAP:
                for j in range(m):
                    v2 = 0.0
                    for i in range(n):
                        v2 += VX[i, j] * VX[i, j] + VY[i, j] * VY[i, j]
                    nv = math.sqrt(v2)
                    for i in range(n):
                        VX[i, j] /= nv
                        VY[i, j] /= nv
            _block_loss(alphas, X, Y, XE, m, loss)
            for j in range(m):
                ACC[S_FIRST_LOSS, j] = loss[j]
                ACC[S_MIN_LOSS, j] = np.inf
                ACC[S_MAX_LOSS, j] = -np.inf
            _run_steps(burn_in, steps, True, LYAP, SGD, alphas, m, j0, st, ly, sg, rc)
            _block_loss(alphas, X, Y, XE, m, loss)
            for j in range(m):
                jj = j0 + j
                s_d = ACC[S_MEAN_LOSS, j] / T
                var = ACC[S_STD_LOSS, j] / T - s_d * s_d
                stats[jj, S_MEAN_LOSS] = ACC[S_FIRST_LOSS, j] + s_d
                stats[jj, S_STD_LOSS] = math.sqrt(var) if var > 0.0 else 0.0
                stats[jj, S_MIN_LOSS] = ACC[S_MIN_LOSS, j]
                stats[jj, S_MAX_LOSS] = ACC[S_MAX_LOSS, j]
                stats[jj, S_MEAN_COS] = ACC[S_MEAN_COS, j] / T
                stats[jj, S_MEAN_ANGLE] = ACC[S_MEAN_ANGLE, j] / T
                stats[jj, S_MEAN_GRAD] = ACC[S_MEAN_GRAD, j] / T
                stats[jj, S_FIRST_LOSS] = ACC[S_FIRST_LOSS, j]
                stats[jj, S_FINAL_LOSS] = loss[j]
                for i in range(n):
                    mean_group_elrs[jj, i] = eta[j] * SINV[i, j] / T
                    mean_group_shares[jj, i] = SR2[i, j] / T
                    xt = X[i, j] if XE[i, j] == 0.0 else 0.0
                    final_group_elrs[jj, i] = eta[j] / (xt * xt + Y[i, j] * Y[i, j])
                    final_x[jj, i] = X[i, j]
                    final_y[jj, i] = Y[i, j]
                    final_xe[jj, i] = XE[i, j]
                if LYAP:
                    v2 = 0.0
                    best = -np.inf
                    for i in range(nl):
                        v2 += VX[i, j] * VX[i, j] + VY[i, j] * VY[i, j]
                        best = max(best, (LA[i, j] + math.log(PA[i, j])) / T)
                    lyap_out[jj] = (LV[j] + 0.5 * math.log(v2)) / T
                    lyap_angle_out[jj] = best

    return run


_run_gd = _make_kernel(False, False)
_run_gd_lyap = _make_kernel(True, False)
_run_sgd = _make_kernel(False, True)
_run_sgd_lyap = _make_kernel(True, True)


def kernel(lyapunov: bool, sgd: bool):
    """The compiled variant for (lyapunov, sgd).

    Signature ``run(alphas, elrs, x0, y0, xe0, steps, burn_in, record_every, block, keys, cdf,
    coef, mlo, mhi, <outputs>, vx0, vy0, lyap_out, lyap_angle_out)``:

    * ``alphas`` (n,), ``elrs`` (M,), state ``x0, y0, xe0`` (M, n) on the unit sphere (``x``
      mantissa, ``y``, extra exponent of ``x``);
    * statistics over ``burn_in <= t < steps``, traces at ``t % record_every == 0``;
    * SGD: ``keys`` (M,) uint64 per-trajectory hash keys, ``cdf`` (b+1,) the Binomial(b, p)
      CDF, ``coef[m] = m / (b p)``, and the support ``[mlo, mhi)`` where the CDF is neither 0
      nor 1 (the count starts at ``mlo``); ignored by GD variants;
    * outputs ``stats`` (M, N_STATS), ``mean_group_elrs``, ``mean_group_shares``,
      ``final_group_elrs``, ``final_x``, ``final_y``, ``final_xe`` (M, n), ``loss_trace``,
      ``cos_trace`` (M, T'), ``elr_trace`` (M, T', n);
    * Lyapunov variants: ``vx0, vy0`` (M, n) unit tangent vector at the start; outputs
      ``lyap_out`` (largest exponent on the tangent space of the sphere) and
      ``lyap_angle_out`` (angle directions, norm split factored out), (M,).
    """
    return {(False, False): _run_gd, (True, False): _run_gd_lyap, (False, True): _run_sgd,
            (True, True): _run_sgd_lyap}[(bool(lyapunov), bool(sgd))]
