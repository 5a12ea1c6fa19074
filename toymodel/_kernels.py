"""Numba kernels: the projected-gradient map on the sphere, many trajectories at once.

Kernels only: nothing is read or written except the arrays passed in, and every result goes
into an ``out`` array. :mod:`toymodel.simulate` validates, allocates and calls. Full-batch GD
draws no random numbers at all; mini-batch SGD evaluates a counter-based hash (SplitMix64's
output function) of ``(trajectory key, step, group)``, so its noise is a pure function of the
seed: reproducible, independent of threads and of the rest of the sweep.

Variants
--------
:func:`kernel` returns one of eight compiled variants, (GD | SGD) x (without | with Lyapunov
exponents) x (on the sphere | conventional training with weight decay), built by one factory from
the same inlined step; the flags are compile-time constants, so a variant contains no code for
what it does not compute. Each variant is
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
arithmetic it would be re-excited once its ELR grows (``docs/theory.md``, "Numerics"). The
kernel therefore stores ``x_i`` with an extra binary exponent: the true value is
``xs * 2**(-512*e)``. When ``|x_i| < 2**-300 |y_i|`` it is rescaled by ``2**512`` (exactly)
and ``e`` grows by one; it is scaled back once ``|xs| > 2**212 |y_i|``. While ``e > 0`` the
true ``x_i**2`` is below ``2**-600 y_i**2`` and thus below half an ulp of every sum it enters,
so using 0 for it in ``r_i^2``, the loss and the update of ``y_i`` gives exactly the result
that unbounded-exponent floating point would give; the linear update ``x <- x (1 - 2k)`` is
applied to ``xs`` exactly. Such a group contributes 0 to the reported loss (its true
contribution is below ``2**-600 alpha_i``).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import tempfile

import numba
import numpy as np
from numba import njit, prange

# exact powers of two for the extended exponent of x (see module docstring)
_BIG = 2.0 ** 512
_INV_BIG = 2.0 ** -512
_TINY_RATIO = 2.0 ** -300
_HUGE_RATIO = 2.0 ** 212
X_EXPONENT_STEP = 512
# tangent vectors are renormalised when their squared norm leaves [_RENORM_LO, _RENORM_HI];
# products of angle derivatives when they leave [_PA_LO, _PA_HI], checked every 4th step, so a
# single step's factor is clamped to [_MIN_FACTOR, _MAX_FACTOR] (the floor only matters when
# k cos 2phi hits 1/2 almost exactly, a super-stable step; the cap only beyond k ~ 1e40)
_RENORM_HI = 1e150
_RENORM_LO = 1e-150
_MIN_FACTOR = 1e-40
_MAX_FACTOR = 1e40
_PA_HI = 1e100
_PA_LO = 1e-100
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
# weight decay only (conventional training): time means of the total ELR of the direction map and of
# its inverse, and the share of window steps at the minimum
S_MEAN_ELR = 9
S_MEAN_INV_ELR = 10
S_FRAC_CONV = 11
N_STATS = 12
#: a group is in a quiet phase (its angle linearised at the minimum, derivation 14) while its ESS^2 is
#: below this (ESS < 1e-3)
QUIET_ESS2 = 1e-6

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
    """Trajectories per block: 64 lanes while a block's state (5 arrays of n x 64 doubles) fits
    in L2 (n <= 400), 32 beyond. Measured: 8 or 16 lanes are 3-4x slower per group-step
    (vector loops too short), 32 and 64 are equal up to n = 1000."""
    return 64 if n_groups <= 400 else 32


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
def _batch_weights(alphas, keys, cdf, bp, mlo, mhi, t, j0, m, AW, U):
    """Per-group weights of this step's mini-batch loss: alpha_i * M_i / (b p) with
    M_i ~ Binomial(b, p), drawn by inverse CDF from one hashed uniform per (trajectory, group).
    The CDF is non-decreasing, so the comparisons ``U >= cdf[q]`` hold for a prefix of q and the
    last one that holds selects the weight of the count, ``alpha_i * (M / bp)``, computed once
    per count (the same double as a per-lane division). Loops run over the trajectories innermost
    (``U`` is a scratch row), so they vectorise."""
    n = alphas.shape[0]
    # a view, so that the loop's index is a plain j >= 0: with keys[j0 + j] Numba's handling of
    # negative indices (j0 could be negative, for all LLVM knows) turned the load into a gather
    kb = keys[j0:j0 + m]
    for i in range(n):
        ctr = np.uint64(t) * np.uint64(n) + np.uint64(i)
        a = alphas[i]
        w0 = a * (float(mlo) / bp)
        for j in range(m):
            U[j] = uniform_hash(kb[j], ctr)
            AW[i, j] = w0
        for q in range(mlo, mhi):
            cq = cdf[q]
            wq = a * (float(q + 1) / bp)
            for j in range(m):
                AW[i, j] = wq if U[j] >= cq else AW[i, j]


@njit(cache=True, inline="always")
def _step_block(alphas, m, j0, collect, rec, r, lyap, sgd, wd, mom, st, ly, rc, cv, mm, r_t):
    """Advance the m trajectories of one block by one step, updating statistics in place.

    ``lyap`` and ``sgd`` are compile-time constants of a kernel variant, so a variant contains no
    code for what it does not compute; ``collect`` and ``rec`` only gate loops outside the hot
    group loop. The loss, gradient norm and statistics are those of F (weights ``alphas``); the
    step descends the batch loss (weights ``AW``) in SGD. Arrays come in tuples (state ``st``,
    tangent ``ly``, records ``rc``, momentum ``mm``) to keep calls short. ``mom`` (weight-decay
    variants only) is heavy-ball momentum in PyTorch's convention: u <- mu u + eta (grad + wd theta),
    theta <- theta - u, with u = eta v kept per coordinate (x's in the same scaled units as x).
    """
    X, Y, XE, AW, SINV, SR2, eta, nrm, g2, gb2, loss, ACC, FB = st
    UX, UY, DOT, ANG, mu = mm
    VX, VY, VN, IN, VN2, LV, PA, LA = ly
    record_every, ltr, ctr, etr = rc
    DEC, R2, R2G, LESS, COS, QN, QP, PL, conv_tol, WK, WS, WC = cv
    n = alphas.shape[0]
    # Recording happens in separate loops: stores into output arrays inside the hot loops
    # keep LLVM from vectorising them (measured: 4x slower).
    if rec:
        for i in range(n):
            for j in range(m):
                xt = X[i, j] if XE[i, j] == 0.0 else 0.0
                etr[j0 + j, r, i] = eta[j] / ((DEC[j] if wd else 1.0) * (xt * xt + Y[i, j] * Y[i, j]))
    for j in range(m):
        nrm[j] = 0.0
        g2[j] = 0.0
        gb2[j] = 0.0
        loss[j] = 0.0
        if wd:
            R2[j] = 0.0
        if mom:
            DOT[j] = 0.0
        if lyap:
            VN2[j] = 0.0
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
            # weight decay multiplies the point by DEC = 1 - lr * wd before the gradient step
            d = DEC[j] if wd else 1.0
            if mom:
                # the velocity takes lr (grad + wd theta) = (2k c2 + 1 - d) x, (1 - d - 2k s2) y
                ux = mu * UX[i, j] + (2.0 * k * c2 + (1.0 - d)) * xs
                uy = mu * UY[i, j] + ((1.0 - d) - 2.0 * k * s2) * y
                UX[i, j] = ux
                UY[i, j] = uy
                xns = xs - ux
                yn = y - uy
                xn = xns if XE[i, j] == 0.0 else 0.0
                X[i, j] = xns
                Y[i, j] = yn
                DOT[j] += xt * xn + y * yn
                # the group's turn: cross and dot of its old and new point (the ESS loop's tan)
                WK[i, j] = xt * yn - y * xn
                WS[i, j] = xt * xn + y * yn
            else:
                fx = d - 2.0 * k * c2
                yn = y * (d + 2.0 * k * s2)
                xn = xt * fx
                X[i, j] = xs * fx
                Y[i, j] = yn
            nrm[j] += xn * xn + yn * yn
            loss[j] += al * s2
            g2[j] += 4.0 * al * al * s2 * c2 * inv
            if sgd:
                gb2[j] += 4.0 * a * a * s2 * c2 * inv
            # accumulated at every step (cheap), reset when the window starts
            SINV[i, j] += inv
            if wd:
                R2[j] += x2 + y2
                R2G[i, j] = x2 + y2
                if not mom:
                    # kept for the ESS loop below (a branch on `collect` here, or the ESS work itself,
                    # kept LLVM from vectorising this loop)
                    WK[i, j] = k
                    WS[i, j] = s2
                    WC[i, j] = c2
            else:
                SR2[i, j] += x2 + y2
            if lyap:
                # tangent map, first half: du = (I - eta H) v with the group's Hessian
                # eta * Hessian = 2k [[c2 (c2 - 3 s2), -2 sc (c2 - s2)], [.., s2 (3 c2 - s2)]],
                # sc = x y / r^2
                q = 2.0 * k
                dcs = c2 - s2
                hxy = -2.0 * q * (xt * y * inv) * dcs
                # the previous step's du, projected onto the tangent space at theta_t and divided
                # by the previous step's norm (deferred to here to save a pass over the arrays)
                vx = (VX[i, j] - xt * VN[j]) * IN[j]
                vy = (VY[i, j] - y * VN[j]) * IN[j]
                VN2[j] += vx * vx + vy * vy
                VX[i, j] = d * vx - (q * c2 * (dcs - 2.0 * s2) * vx + hxy * vy)
                VY[i, j] = d * vy - (hxy * vx + q * s2 * (dcs + 2.0 * c2) * vy)
                # angle directions only: d phi'/d phi = 1 - 2k cos 2phi / (1 + (k sin 2phi)^2), with k the
                # group ELR of the direction map times alpha (k / DEC under weight decay)
                qd = q / d
                dphi = 1.0 - qd * dcs / (1.0 + qd * qd * s2 * c2)
                PA[i, j] *= min(max(abs(dphi), _MIN_FACTOR), _MAX_FACTOR)
    if wd and collect:
        for i in range(n):
            for j in range(m):
                if mom:
                    # ESS = tan of the group's turn (the step is not orthogonal to the point)
                    cr = WK[i, j]
                    dt = WS[i, j]
                    e2 = (cr * cr) / (dt * dt)
                else:
                    # ESS of the direction map: group ELR lr / (DEC r^2) times the group's gradient norm
                    kd = WK[i, j] / DEC[j]
                    e2 = 4.0 * kd * kd * WS[i, j] * WC[i, j]
                # sum of log(1 + ESS^2) as a running product, moved into LESS when it grows (a
                # log per group-step would cost more than the rest of the step; see _ess_product_check)
                PL[i, j] *= 1.0 + e2
                # quiet phases of the group: entries into ESS^2 < QUIET_ESS2
                qn = 1.0 if e2 < QUIET_ESS2 else 0.0
                QN[i, j] += qn * (1.0 - QP[i, j])
                QP[i, j] = qn
                # the group's norm share of the point before the step
                SR2[i, j] += R2G[i, j] / R2[j]
    for j in range(m):
        if wd:
            # no projection: the point keeps its new norm; cos = <theta, theta'> / (|theta||theta'|)
            # = DEC |theta| / |theta'| because the gradient is orthogonal to theta
            n2 = nrm[j]
            if mom:
                # the step is not orthogonal to theta: the cosine and angle from <theta, theta'>
                COS[j] = min(DOT[j] / math.sqrt(R2[j] * n2), 1.0)
                ANG[j] = math.atan2(math.sqrt(max(n2 * R2[j] - DOT[j] * DOT[j], 0.0)), DOT[j])
            else:
                COS[j] = min(DEC[j] * math.sqrt(R2[j] / n2), 1.0)
            fine = n2 > 0.0 and n2 < np.inf
            nrm[j] = 1.0
        else:
            nrm[j] = 1.0 / math.sqrt(nrm[j])
            # first step whose update is not finite (overflow, or a norm split out of range)
            fine = nrm[j] > 0.0 and nrm[j] < np.inf
            # cos = <theta_t, theta_t+1> = 1/N; a unit vector's update only gets longer, so
            # 1/N > 1 is rounding (tiny steps) and the cosine is capped at 1
            COS[j] = min(nrm[j], 1.0)
        FB[j] = FB[j] if (fine or FB[j] >= 0.0) else float(r_t)
        if lyap:
            VN[j] = 0.0
            IN[j] = nrm[j]
    if lyap:
        _tangent_renormalise(X, Y, XE, m, VX, VY, VN2, LV)
    if rec:
        for j in range(m):
            ltr[j0 + j, r] = loss[j]
            ctr[j0 + j, r] = COS[j]
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
            ACC[S_MEAN_COS, j] += COS[j]
            if wd:
                # the direction step: tangent eta |grad| / (DEC |theta|); effective gradient norm
                # |grad| |theta|; the total ELR of the direction map eta / (DEC |theta|^2)
                rn = math.sqrt(R2[j])
                if mom:
                    ACC[S_MEAN_ANGLE, j] += ANG[j]
                else:
                    ACC[S_MEAN_ANGLE, j] += atan_nonneg(eta[j] * gstep / (DEC[j] * rn))
                ACC[S_MEAN_GRAD, j] += gn * rn
                ACC[S_MEAN_ELR, j] += eta[j] / (DEC[j] * R2[j])
                ACC[S_MEAN_INV_ELR, j] += DEC[j] * R2[j] / eta[j]
                ACC[S_FRAC_CONV, j] += 1.0 if lj <= conv_tol else 0.0
            else:
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
            f = _BIG if down else (_INV_BIG if up else 1.0)
            X[i, j] = xs * f
            XE[i, j] = e + (1.0 if down else (-1.0 if up else 0.0))
            if mom:
                UX[i, j] *= f  # x's velocity is kept in x's scaled units
            Y[i, j] = y
            if lyap and not wd:
                # x' for the tangent projection: the true value (0 while x is rescaled)
                VN[j] += (xs if e == 0.0 else 0.0) * VX[i, j] + y * VY[i, j]
    if lyap and (r_t & 3) == 0:
        _angle_product_check(m, PA, LA)
    if wd and collect and (r_t & 3) == 0:
        _ess_product_check(m, PL, LESS)


@njit(cache=True, inline="always")
def _tangent_renormalise(X, Y, XE, m, VX, VY, VN2, LV):
    """Keep the tangent vector representable: ``VN2`` holds |v_t|^2 and ``VX, VY`` hold
    du = (I - eta H) v_t, which is linear in v_t, so rescaling du rescales v_t. Offenders are
    counted in a vectorisable loop and fixed one by one (rare)."""
    n = X.shape[0]
    bad = 0
    for j in range(m):
        v2 = VN2[j]
        bad += (v2 > _RENORM_HI) + (v2 < _RENORM_LO)
    if bad > 0:
        for j in range(m):
            v2 = VN2[j]
            if v2 < _COLLAPSED:
                # the Jacobian annihilated the tangent vector (a multiplier exactly 0, e.g. n = 1
                # at c = 1/2): count a contraction of _MIN_FACTOR and restart along the rotation of
                # group 1 (the restart takes the place of this step's du, so a map that annihilates
                # every vector is counted as _MIN_FACTOR every other step)
                LV[j] += math.log(_MIN_FACTOR)
                _rotation_of_group_1(X, Y, XE, j, VX, VY)
            elif v2 > _RENORM_HI or v2 < _RENORM_LO:
                nv = math.sqrt(v2)
                LV[j] += math.log(nv)
                for i in range(n):
                    VX[i, j] /= nv
                    VY[i, j] /= nv


@njit(cache=True, inline="always")
def _rotation_of_group_1(X, Y, XE, j, VX, VY):
    """Set lane j's tangent vector to the unit rotation of group 1 (tangent to the sphere)."""
    n = X.shape[0]
    xt = X[0, j] if XE[0, j] == 0.0 else 0.0
    r1 = math.sqrt(xt * xt + Y[0, j] * Y[0, j])
    for i in range(n):
        VX[i, j] = 0.0
        VY[i, j] = 0.0
    VX[0, j] = Y[0, j] / r1
    VY[0, j] = -xt / r1


@njit(cache=True, inline="always")
def _angle_product_check(m, PA, LA):
    """Move the products of angle derivatives into their log accumulators when they leave
    [_PA_LO, _PA_HI] (called every 4th step; per-step factors are clamped to 1e+-40)."""
    n = PA.shape[0]
    bad = 0
    for i in range(n):
        for j in range(m):
            pn = PA[i, j]
            bad += (pn > _PA_HI) + (pn < _PA_LO)
    if bad > 0:
        for i in range(n):
            for j in range(m):
                pn = PA[i, j]
                if pn > _PA_HI or pn < _PA_LO:
                    LA[i, j] += math.log(pn)
                    PA[i, j] = 1.0


@njit(cache=True, inline="always")
def _ess_product_check(m, PL, LESS):
    """Move the running products of 1 + ESS_i^2 into their log sums once they exceed 1e100 (checked
    every 4th step; one factor is at most 1 + ESS^2, so the product stays finite unless ESS > 1e50,
    where the log sum is exact anyway as soon as it is moved)."""
    n = PL.shape[0]
    bad = 0
    for i in range(n):
        for j in range(m):
            bad += PL[i, j] > _PA_HI
    if bad > 0:
        for i in range(n):
            for j in range(m):
                if PL[i, j] > _PA_HI:
                    LESS[i, j] += math.log(PL[i, j])
                    PL[i, j] = 1.0


@njit(cache=True, inline="always")
def _pending_tangent(X, Y, XE, m, VX, VY, VN, IN, VN2):
    """Apply the deferred projection to the stored du, leaving the tangent vector at the current
    point in ``VX, VY`` and its squared norm in ``VN2``."""
    n = X.shape[0]
    for j in range(m):
        VN2[j] = 0.0
    for i in range(n):
        for j in range(m):
            xt = X[i, j] if XE[i, j] == 0.0 else 0.0
            vx = (VX[i, j] - xt * VN[j]) * IN[j]
            vy = (VY[i, j] - Y[i, j] * VN[j]) * IN[j]
            VX[i, j] = vx
            VY[i, j] = vy
            VN2[j] += vx * vx + vy * vy
    for j in range(m):
        VN[j] = 0.0
        IN[j] = 1.0


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
def _start_window(alphas, m, lyap, st, ly, cv):
    """At t = burn_in: the loss at the window's start, fresh accumulators, and a unit tangent
    vector (it has warmed up during the burn-in)."""
    X, Y, XE, AW, SINV, SR2, eta, nrm, g2, gb2, loss, ACC, FB = st
    VX, VY, VN, IN, VN2, LV, PA, LA = ly
    LESS = cv[3]
    QN = cv[5]
    QP = cv[6]
    PL = cv[7]
    n = alphas.shape[0]
    _block_loss(alphas, X, Y, XE, m, loss)
    for j in range(m):
        for q in range(N_STATS):
            ACC[q, j] = 0.0
        ACC[S_FIRST_LOSS, j] = loss[j]
        ACC[S_MIN_LOSS, j] = np.inf
        ACC[S_MAX_LOSS, j] = -np.inf
        for i in range(n):
            SINV[i, j] = 0.0
            SR2[i, j] = 0.0
        for i in range(LESS.shape[0]):
            LESS[i, j] = 0.0
            PL[i, j] = 1.0
            QN[i, j] = 0.0
            QP[i, j] = 0.0
    if lyap:
        _pending_tangent(X, Y, XE, m, VX, VY, VN, IN, VN2)
        for j in range(m):
            if VN2[j] < _COLLAPSED:  # collapsed during the burn-in: restart along group 1
                _rotation_of_group_1(X, Y, XE, j, VX, VY)
                VN2[j] = 1.0
            nv = math.sqrt(VN2[j])
            LV[j] = 0.0
            for i in range(n):
                VX[i, j] /= nv
                VY[i, j] /= nv
                PA[i, j] = 1.0
                LA[i, j] = 0.0


def _make_kernel(LYAP: bool, SGD: bool, WD: bool, MOM: bool = False):
    """Build one compiled variant; ``LYAP``, ``SGD``, ``WD`` and ``MOM`` are frozen closure constants."""

    @njit(cache=True, parallel=True)
    def run(alphas, elrs, x0, y0, xe0, steps, burn_in, record_every, block, keys, cdf, bp, mlo, mhi,
            stats, mean_group_elrs, mean_group_shares, final_group_elrs, final_x, final_y, final_xe,
            loss_trace, cos_trace, elr_trace, vx0, vy0, lyap_out, lyap_angle_out, first_bad, weight_decay,
            conv_tol, mean_log1p_ess2, quiet_out, momentum):
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
            U = np.empty(m if SGD else 0)
            SINV = np.zeros((n, m))
            SR2 = np.zeros((n, m))
            eta = np.empty(m)
            nrm = np.empty(m)
            g2 = np.empty(m)
            gb2 = np.empty(m)
            loss = np.empty(m)
            ACC = np.zeros((N_STATS, m))
            FB = np.full(m, -1.0)
            nl = n if LYAP else 0
            VX = np.empty((nl, m))
            VY = np.empty((nl, m))
            VN = np.zeros(m)
            IN = np.ones(m)
            VN2 = np.empty(m)
            LV = np.zeros(m)
            PA = np.ones((nl, m))
            LA = np.zeros((nl, m))
            nw = n if WD else 0
            DEC = np.empty(m)
            R2 = np.empty(m)
            R2G = np.empty((nw, m))
            WK = np.empty((nw, m))  # k, s2, c2 of the step, for the ESS loop
            WS = np.empty((nw, m))
            WC = np.empty((nw, m))
            LESS = np.zeros((nw, m))
            PL = np.ones((nw, m))
            COS = np.empty(m)
            QN = np.zeros((nw, m))
            QP = np.zeros((nw, m))  # whether the group's previous window step was quiet
            nm = n if MOM else 0
            UX = np.zeros((nm, m))  # velocities times lr (momentum), x's in its scaled units
            UY = np.zeros((nm, m))
            DOT = np.empty(m if MOM else 0)
            ANG = np.empty(m if MOM else 0)
            for j in range(m):
                eta[j] = elrs[j0 + j]
                DEC[j] = 1.0 - elrs[j0 + j] * weight_decay
                for i in range(n):
                    X[i, j] = x0[j0 + j, i]
                    Y[i, j] = y0[j0 + j, i]
                    XE[i, j] = xe0[j0 + j, i]
                for i in range(nl):
                    VX[i, j] = vx0[j0 + j, i]
                    VY[i, j] = vy0[j0 + j, i]
            st = (X, Y, XE, AW, SINV, SR2, eta, nrm, g2, gb2, loss, ACC, FB)
            ly = (VX, VY, VN, IN, VN2, LV, PA, LA)
            rc = (record_every, loss_trace, cos_trace, elr_trace)
            cv = (DEC, R2, R2G, LESS, COS, QN, QP, PL, conv_tol, WK, WS, WC)
            mm = (UX, UY, DOT, ANG, momentum)
            # one loop, one inlined copy of the step (compile time); the tangent vector warms up
            # during the burn-in and every accumulator restarts at t = burn_in
            for t in range(steps):
                if t == burn_in:
                    _start_window(alphas, m, LYAP, st, ly, cv)
                rec = record_every > 0 and t % record_every == 0
                r = t // record_every if record_every > 0 else 0
                if SGD:
                    _batch_weights(alphas, keys, cdf, bp, mlo, mhi, t, j0, m, AW, U)
                _step_block(alphas, m, j0, t >= burn_in, rec, r, LYAP, SGD, WD, MOM, st, ly, rc, cv, mm, t)
            _block_loss(alphas, X, Y, XE, m, loss)
            if LYAP:
                _pending_tangent(X, Y, XE, m, VX, VY, VN, IN, VN2)
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
                stats[jj, S_MEAN_ELR] = ACC[S_MEAN_ELR, j] / T
                stats[jj, S_MEAN_INV_ELR] = ACC[S_MEAN_INV_ELR, j] / T
                stats[jj, S_FRAC_CONV] = ACC[S_FRAC_CONV, j] / T
                first_bad[jj] = FB[j]
                dj = DEC[j] if WD else 1.0
                for i in range(n):
                    mean_group_elrs[jj, i] = eta[j] * SINV[i, j] / (T * dj)
                    mean_group_shares[jj, i] = SR2[i, j] / T
                    xt = X[i, j] if XE[i, j] == 0.0 else 0.0
                    final_group_elrs[jj, i] = eta[j] / (dj * (xt * xt + Y[i, j] * Y[i, j]))
                    final_x[jj, i] = X[i, j]
                    final_y[jj, i] = Y[i, j]
                    final_xe[jj, i] = XE[i, j]
                for i in range(nw):
                    mean_log1p_ess2[jj, i] = (LESS[i, j] + math.log(PL[i, j])) / T
                    quiet_out[jj, i] = QN[i, j]
                if LYAP:
                    best = -np.inf
                    for i in range(nl):
                        best = max(best, (LA[i, j] + math.log(PA[i, j])) / T)
                    last = 0.5 * math.log(VN2[j]) if VN2[j] >= _COLLAPSED else math.log(_MIN_FACTOR)
                    lyap_out[jj] = (LV[j] + last) / T
                    lyap_angle_out[jj] = best

    return run


_VARIANTS = {(ly, sg, wd, False): _make_kernel(ly, sg, wd) for ly in (False, True) for sg in (False, True)
             for wd in (False, True)}
# heavy-ball momentum: conventional training only, without Lyapunov exponents
_VARIANTS.update({(False, sg, True, True): _make_kernel(False, sg, True, True) for sg in (False, True)})


def kernel(lyapunov: bool, sgd: bool, weight_decay: bool = False, momentum: bool = False):
    """The compiled variant for (lyapunov, sgd, weight_decay, momentum).

    Signature ``run(alphas, elrs, x0, y0, xe0, steps, burn_in, record_every, block, keys, cdf,
    bp, mlo, mhi, <outputs>, vx0, vy0, lyap_out, lyap_angle_out)``:

    * ``alphas`` (n,), ``elrs`` (M,), state ``x0, y0, xe0`` (M, n) on the unit sphere (``x``
      mantissa, ``y``, extra exponent of ``x``);
    * statistics over ``burn_in <= t < steps``, traces at ``t % record_every == 0``;
    * SGD: ``keys`` (M,) uint64 per-trajectory hash keys, ``cdf`` (b+1,) the Binomial(b, p)
      CDF, ``bp = b * p`` (a group's weight factor is ``M / bp``), and the range ``[mlo, mhi)``
      of comparisons that depend on the uniform (the count starts at ``mlo``); ignored by GD
      variants;
    * outputs ``stats`` (M, N_STATS), ``mean_group_elrs``, ``mean_group_shares``,
      ``final_group_elrs``, ``final_x``, ``final_y``, ``final_xe`` (M, n), ``loss_trace``,
      ``cos_trace`` (M, T'), ``elr_trace`` (M, T', n);
    * Lyapunov variants: ``vx0, vy0`` (M, n) unit tangent vector at the start; outputs
      ``lyap_out`` (largest exponent on the tangent space of the sphere) and
      ``lyap_angle_out`` (angle directions, norm split factored out), (M,);
    * ``first_bad`` (M,): the first step whose update was not finite, or -1;
    * ``weight_decay`` (float) and ``conv_tol`` (float): conventional training (weight-decay
      variants only): each step is theta <- (1 - lr wd) theta - lr grad F with no projection, and
      ``elrs`` holds the learning rates; the statistics then also hold the time means of the total
      ELR of the direction map and of its inverse and the share of window steps with loss <=
      ``conv_tol``; outputs ``mean_log1p_ess2`` (M, n), the time mean of log(1 + ESS_i^2), and
      ``quiet_out`` (M, n), the number of quiet phases of each group (entries into ESS_i^2 < QUIET_ESS2);
    * ``momentum`` (float): the heavy-ball coefficient mu of the momentum variants (PyTorch's SGD:
      v <- mu v + grad + wd theta, theta <- theta - lr v, no dampening, no Nesterov; v starts at 0);
      there ESS_i is the tangent of the angle between consecutive points of group i, the cosine
      and the angle are those of the whole point, and the ELRs are the direction map's
      lr / ((1 - lr wd) r^2) as without momentum. Ignored by the other variants.
    """
    key = (bool(lyapunov), bool(sgd), bool(weight_decay), bool(momentum))
    if key not in _VARIANTS:
        raise ValueError("momentum goes with weight decay (conventional training) and without Lyapunov exponents")
    return _VARIANTS[key]


@contextlib.contextmanager
def _interprocess_lock(name: str):
    """An exclusive lock shared by every process of this machine and this copy of the package
    (``fcntl.flock`` on a file in the temporary folder); a no-op where ``fcntl`` is missing."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: processes may compile a variant twice
        yield
        return
    tag = hashlib.sha256(os.path.abspath(__file__).encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"toymodel-{tag}-{name}.lock")
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def compiled(lyapunov: bool, sgd: bool, weight_decay: bool, args, momentum: bool = False):
    """The variant of :func:`kernel`, compiled for ``args`` (the call's arguments).

    The first compilation of a variant in a process holds an inter-process lock, so processes
    started together (pytest-xdist workers, a sweep's worker processes, Dask workers on one
    machine) compile each variant once: the others wait, then load it from Numba's on-disk cache
    instead of compiling it again. Nothing about the compiled code changes.
    """
    disp = kernel(lyapunov, sgd, weight_decay, momentum)
    if not disp.signatures:
        sig = tuple(numba.typeof(a) for a in args)
        flags = (lyapunov, sgd, weight_decay, momentum)
        with _interprocess_lock("".join(str(int(bool(f))) for f in flags)):
            disp.compile(sig)
    return disp


def needs_compiling(lyapunov: bool, sgd: bool, weight_decay: bool = False, momentum: bool = False) -> bool:
    """Whether the first call of this variant will compile it (nothing in this process and no
    up-to-date entry in Numba's on-disk cache): about 15 s, so jobs say so before it happens."""
    disp = kernel(lyapunov, sgd, weight_decay, momentum)
    if disp.signatures:
        return False
    try:
        return not disp._cache._cache_file._load_index()
    except Exception:  # noqa: BLE001 - Numba internals changed: no note rather than a failure
        return False
