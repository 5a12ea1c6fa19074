"""Numba kernels: the projected-gradient map on the sphere, many trajectories at once.

Kernels only: no randomness is drawn here, nothing is read or written except the arrays
passed in, and every result goes into an ``out`` array. :mod:`toymodel.simulate` validates,
allocates and calls.

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
def _step_block(alphas, eta, X, Y, XE, m, nrm, g2, loss, SINV, SR2, collect, rec, ltr, ctr, etr, j0, r, ACC):
    """Advance the m trajectories of one block by one step, updating statistics in place."""
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
        loss[j] = 0.0
    for i in range(n):
        a = alphas[i]
        for j in range(m):
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
            loss[j] += a * s2
            g2[j] += 4.0 * a * a * s2 * c2 * inv
            if collect:
                SINV[i, j] += inv
                SR2[i, j] += x2 + y2
    for j in range(m):
        nrm[j] = 1.0 / math.sqrt(nrm[j])
    if rec:
        for j in range(m):
            ltr[j0 + j, r] = loss[j]
            ctr[j0 + j, r] = nrm[j]
    if collect:
        for j in range(m):
            gn = math.sqrt(g2[j])
            lj = loss[j]
            d = lj - ACC[S_FIRST_LOSS, j]
            ACC[S_MEAN_LOSS, j] += d
            ACC[S_STD_LOSS, j] += d * d
            ACC[S_MIN_LOSS, j] = min(ACC[S_MIN_LOSS, j], lj)
            ACC[S_MAX_LOSS, j] = max(ACC[S_MAX_LOSS, j], lj)
            ACC[S_MEAN_COS, j] += nrm[j]
            ACC[S_MEAN_ANGLE, j] += atan_nonneg(eta[j] * gn)
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


@njit(cache=True, inline="always")
def _block_loss(alphas, X, Y, XE, m, loss):
    n = alphas.shape[0]
    for j in range(m):
        loss[j] = 0.0
    for i in range(n):
        for j in range(m):
            xt = X[i, j] if XE[i, j] == 0.0 else 0.0
            loss[j] += alphas[i] * xt * xt / (xt * xt + Y[i, j] * Y[i, j])


@njit(cache=True, parallel=True)
def run_gd(alphas, elrs, x0, y0, xe0, steps, burn_in, record_every, block,
           stats, mean_group_elrs, mean_group_shares, final_group_elrs, final_x, final_y, final_xe,
           loss_trace, cos_trace, elr_trace):
    """Run M = elrs.size trajectories of full-batch projected GD on the unit sphere.

    Parameters
    ----------
    alphas : (n,) group weights.
    elrs : (M,) total ELR of each trajectory.
    x0, y0, xe0 : (M, n) initial state (``x`` mantissa, ``y``, extra exponent of ``x``);
        ``x0, y0`` must lie on the unit sphere.
    steps, burn_in, record_every : ints; statistics over ``burn_in <= t < steps``; traces at
        ``t % record_every == 0`` when ``record_every > 0``.
    block : trajectories per block.

    Outputs (written in place)
    --------------------------
    stats : (M, N_STATS), see the ``S_*`` column constants.
    mean_group_elrs, mean_group_shares, final_group_elrs : (M, n).
    final_x, final_y, final_xe : (M, n) final state.
    loss_trace, cos_trace : (M, T'); elr_trace : (M, T', n); T' may be 0.
    """
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
        SINV = np.zeros((n, m))
        SR2 = np.zeros((n, m))
        eta = np.empty(m)
        nrm = np.empty(m)
        g2 = np.empty(m)
        loss = np.empty(m)
        ACC = np.zeros((N_STATS, m))
        for j in range(m):
            eta[j] = elrs[j0 + j]
            for i in range(n):
                X[i, j] = x0[j0 + j, i]
                Y[i, j] = y0[j0 + j, i]
                XE[i, j] = xe0[j0 + j, i]
        for t in range(steps):
            if t == burn_in:
                _block_loss(alphas, X, Y, XE, m, loss)
                for j in range(m):
                    ACC[S_FIRST_LOSS, j] = loss[j]
                    ACC[S_MIN_LOSS, j] = np.inf
                    ACC[S_MAX_LOSS, j] = -np.inf
            rec = record_every > 0 and t % record_every == 0
            r = t // record_every if record_every > 0 else 0
            if t < burn_in:
                _step_block(alphas, eta, X, Y, XE, m, nrm, g2, loss, SINV, SR2, False, rec,
                            loss_trace, cos_trace, elr_trace, j0, r, ACC)
            else:
                _step_block(alphas, eta, X, Y, XE, m, nrm, g2, loss, SINV, SR2, True, rec,
                            loss_trace, cos_trace, elr_trace, j0, r, ACC)
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
