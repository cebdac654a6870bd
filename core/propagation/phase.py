"""The phase diagram: every point of a (σ_b, σ_w) grid at once, from the tables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.propagation.fixed import (
    _check_mu2,
    _Fixed,
    _homogeneous_fixed_point,
    _lambda1,
    _suffix_min,
    _xi,
    _xi_from_gap,
)
from core.propagation.moments import Q_MIN, _act
from core.propagation.tabulation import _N_R, _CTable, _ctable, _Key, _Table, _table

_POINT_CHUNK = 4096     # points per block where each point needs a row over the whole q grid (641 values)


@dataclass(frozen=True)
class PhaseDiagram:
    """Fixed-point quantities on the grid ``sigma_b`` × ``sigma_w``.

    Every 2-D array has shape (len(sigma_b), len(sigma_w)): row i is σ_b = sigma_b[i] and column j is
    σ_w = sigma_w[j] (the order of ``np.meshgrid(sigma_w, sigma_b)``: an image with σ_w along x).
    """

    phi: str
    mu2: float
    sigma_w: np.ndarray
    sigma_b: np.ndarray
    chi1: np.ndarray
    xi_c: np.ndarray
    xi_q: np.ndarray
    q_star: np.ndarray
    c_star: np.ndarray


def _lagrange4(t):
    """Weights of the rows i−1, i, i+1, i+2 for cubic interpolation at i + t."""
    tm, tp, t2 = t - 1.0, t + 1.0, t - 2.0
    return (-t * tm * t2 / 6.0, tp * tm * t2 / 2.0, -tp * t * t2 / 2.0, tp * t * tm / 6.0)


def _rows4(values, n, i, weights):
    return sum(wgt * values[np.clip(i + r, 0, n - 1)] for r, wgt in zip(range(-1, 3), weights, strict=True))


def _q_star_grid(tab: _Table, a: np.ndarray, sb2: np.ndarray):
    """q* for every pair (σ_b², a = σ_w² μ₂), with its table cell.

    The bracket is that of :func:`_bracket_q_star`, found by one ``searchsorted`` per σ_w column. In
    the bracketing cell ln q is the inverse of s(ln q) = q − a V(q): a cubic Hermite interpolant from
    the values and slopes of s at the cell's ends (slopes clipped for a monotone inverse), refined by
    one Newton step on the cubic Hermite interpolant of V. Returns, shaped (σ_b, σ_w), q*, the cell
    (i, t) of ln q* (of Q_MIN below it, of Q_MAX where q* = inf) and dV/d ln q there.
    """
    qf = np.concatenate([[0.0], tab.q])
    vf = np.concatenate([[tab.v0], tab.V])
    envelope = _suffix_min(qf - a[:, None] * vf)
    lo = np.empty((sb2.size, a.size), np.intp)
    for col in range(a.size):
        lo[:, col] = np.searchsorted(envelope[col], sb2, side="right")
    return _q_star_cells(tab, lo, a[None, :], sb2[:, None])      # broadcast over (σ_b, σ_w) without copies


def _q_star_points(tab: _Table, a: np.ndarray, sb2: np.ndarray):
    """:func:`_q_star_grid` for flat arrays of points (a_k, σ_b,k²) rather than a grid.

    The bracket is the count of grid points where the suffix minimum of s(q) = q − a V(q) is ≤ σ_b²:
    one envelope per distinct a (``_POINT_CHUNK`` of them at a time, so memory stays at a few tens of
    MB), searched for every point of that a by a vectorised bisection.
    """
    qf = np.concatenate([[0.0], tab.q])
    vf = np.concatenate([[tab.v0], tab.V])
    ua, inverse = np.unique(a, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(0, ua.size + _POINT_CHUNK, _POINT_CHUNK))
    lo = np.empty(a.size, np.intp)
    steps = int(np.ceil(np.log2(qf.size + 1)))
    for k, start in enumerate(range(0, ua.size, _POINT_CHUNK)):
        envelope = _suffix_min(qf - ua[start:start + _POINT_CHUNK, None] * vf)
        pts = order[bounds[k]:bounds[k + 1]]
        row, b = inverse[pts] - start, sb2[pts]
        left, right = np.zeros(pts.size, np.intp), np.full(pts.size, qf.size)
        for _ in range(steps):        # left = the number of envelope values ≤ σ_b² (it is non-decreasing)
            mid = (left + right) // 2
            go = envelope[row, np.minimum(mid, qf.size - 1)] <= b
            go &= mid < right
            left = np.where(go, mid + 1, left)
            right = np.where(go, right, mid)
        lo[pts] = left
    return _q_star_cells(tab, lo, a, sb2)


def _q_star_cells(tab: _Table, lo: np.ndarray, A: np.ndarray, B: np.ndarray):
    """q* inside each bracketing cell (see :func:`_q_star_grid`); ``lo`` counts the grid points below."""
    n = tab.q.size
    qf = np.concatenate([[0.0], tab.q])
    vf = np.concatenate([[tab.v0], tab.V])
    vxf = np.concatenate([[0.0], tab.Vx])
    div = lo == n + 1
    lo = np.minimum(lo, n) - 1
    q0, q1 = qf[lo], qf[lo + 1]
    v0, v1 = vf[lo], vf[lo + 1]
    dv0, dv1 = vxf[lo], vxf[lo + 1]
    s0 = q0 - A * v0
    span = (q1 - A * v1) - s0
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.minimum(np.maximum((B - s0) / span, 0.0), 1.0)
        m0 = np.minimum(np.maximum(span / (tab.h * (q0 - A * dv0)), 0.0), 3.0)
        m1 = np.minimum(np.maximum(span / (tab.h * (q1 - A * dv1)), 0.0), 3.0)
    m0[np.isnan(m0)] = 1.0
    m1[np.isnan(m1)] = 1.0
    s2 = sigma * sigma
    s3 = s2 * sigma
    t = (s3 - 2 * s2 + sigma) * m0 + (3 * s2 - 2 * s3) + (s3 - s2) * m1
    # one Newton step on q(t) − a V(t) − σ_b² with V cubic Hermite in the cell
    h = tab.h
    t2 = t * t
    t3 = t2 * t
    hx0, hx1 = h * dv0, h * dv1
    V = (2 * t3 - 3 * t2 + 1) * v0 + (t3 - 2 * t2 + t) * hx0 + (3 * t2 - 2 * t3) * v1 + (t3 - t2) * hx1
    dV = (6 * t2 - 6 * t) * (v0 - v1) + (3 * t2 - 4 * t + 1) * hx0 + (3 * t2 - 2 * t) * hx1
    i = np.maximum(lo - 1, 0)
    qt = np.exp(tab.x0 + h * (i + t))
    with np.errstate(divide="ignore", invalid="ignore"):
        step = (qt - A * V - B) / (h * qt - A * dV)
    step[~np.isfinite(step)] = 0.0
    t = np.minimum(np.maximum(t - step, 0.0), 1.0)
    near0 = lo == 0
    q = np.exp(tab.x0 + h * (i + t))
    q[near0] = Q_MIN * sigma[near0]
    q[div] = np.inf
    t[near0] = 0.0
    i[div], t[div] = n - 2, 1.0
    vx = dV / h
    vx[near0] = tab.Vx[0]
    vx[div] = tab.Vx[-1]
    return q, i, t, vx


def _fixed_grid(tab: _Table, sigma_w: np.ndarray, sigma_b: np.ndarray, mu2: float):
    """:class:`_Fixed` on the grid (flat, row-major (σ_b, σ_w)) from the tables, with the cells (i, t)."""
    a = sigma_w * sigma_w * mu2
    sb2 = sigma_b * sigma_b
    cells = None if tab.homogeneous else _q_star_grid(tab, a, sb2)
    return _fixed_from_tables(tab, a[None, :], sb2[:, None], (sb2.size, a.size), mu2, cells)


def _fixed_points(tab: _Table, sigma_w: np.ndarray, sigma_b: np.ndarray, mu2: float):
    """:class:`_Fixed` at flat arrays of points (σ_w,k, σ_b,k) from the tables, with the cells (i, t)."""
    a = sigma_w * sigma_w * mu2
    sb2 = sigma_b * sigma_b
    cells = None if tab.homogeneous else _q_star_points(tab, a, sb2)
    return _fixed_from_tables(tab, a, sb2, a.shape, mu2, cells)


def _fixed_from_tables(tab: _Table, A: np.ndarray, B: np.ndarray, shape: tuple, mu2: float, cells):
    if tab.homogeneous:
        av = np.broadcast_to(A * tab.v1, shape)
        q_star, rho = _homogeneous_fixed_point(av, B)
        qk, D, scale_free, slope_q = 1.0, tab.d1, tab.d1 / tab.v1, av
        i, t = np.full(shape, tab.i1), np.zeros(shape)
    else:
        q_star, i, t, vx = cells
        t2 = t * t
        t3 = t2 * t
        D = ((2 * t3 - 3 * t2 + 1) * tab.D[i] + (t3 - 2 * t2 + t) * (tab.h * tab.Dx[i])
             + (3 * t2 - 2 * t3) * tab.D[i + 1] + (t3 - t2) * (tab.h * tab.Dx[i + 1]))
        qk = np.exp(tab.x0 + tab.h * (i + t))
        slope_q = A * vx / qk
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = B / q_star
        small = q_star < Q_MIN
        rho[small] = np.clip(1.0 - np.broadcast_to(A, shape)[small] * tab.V[0] / Q_MIN, 0.0, 1.0)
        scale_free = tab.q[-1] * tab.D[-1] / tab.V[-1]        # only used where q* = inf
    chi = np.broadcast_to(A * D, shape)
    lam1 = _lambda1(chi, q_star, B, tab.homogeneous, scale_free, mu2)
    flat = [np.ravel(np.broadcast_to(v, shape)) for v in (q_star, qk, chi, slope_q, rho, lam1, i, t)]
    q_star, qk, chi, slope_q, rho, lam1, i, t = flat
    fx = _Fixed(q_star, qk, chi, slope_q, rho, (1.0 - rho) / mu2, lam1, np.full(rho.shape, mu2 != 1.0))
    return fx, i, t


def _c_grid(ct: _CTable, tab: _Table, fx: _Fixed, i, t, noisy: bool):
    """c* and ξ_c from the correlation table: without noise, ordered points have c* = 1 and
    ξ_c = −1/ln λ₁; the others, and all points with noise, are looked up (cubic in ln q, linear in r).

    Ordered means ρ ≥ ρ_crit(q*), equivalent to λ₁ ≤ 1 but well conditioned where q* is small and
    λ₁ − 1 = O(q*²); for a homogeneous φ (ρ_crit = 0 up to rounding) and at q* = ∞ it means λ₁ ≤ 1.
    """
    n = tab.q.size
    c = np.ones(fx.rho.shape)
    xi_c = _xi(fx.lam1)
    if noisy:
        idx = np.arange(c.size)
        r = fx.rho
    elif tab.homogeneous:
        idx = np.flatnonzero(fx.lam1 > 1.0)
        r = np.zeros(idx.size)          # λ₁ > 1 needs ρ = 0 here (σ_b = 0 or q* = ∞): no bias share
    else:
        rc = _rows4(ct.rho_crit, n, i, _lagrange4(t))
        idx = np.flatnonzero((fx.rho < rc) & (np.isfinite(fx.q_star) | (fx.lam1 > 1.0)))
        r = fx.rho[idx] / rc[idx]
    if idx.size == 0:
        return c, xi_c
    v = np.minimum(np.maximum(r, 0.0), 1.0) * (_N_R - 1)
    k = np.minimum(v.astype(np.intp), _N_R - 2)
    f = (v - k)[:, None]
    ii = i[idx]
    acc = np.zeros((k.size, 3))
    for r_off, wgt in zip(range(-1, 3), _lagrange4(t[idx]), strict=True):
        base = np.minimum(np.maximum(ii + r_off, 0), n - 1) * _N_R + k
        lo = np.take(ct.CO, base, axis=0)
        hi = np.take(ct.CO, base + 1, axis=0)
        hi -= lo
        hi *= f
        hi += lo
        hi *= wgt[:, None]
        acc += hi
    c[idx] = np.minimum(np.maximum(acc[:, 0], 0.0), 1.0)
    slope = (1.0 - fx.rho[idx]) * acc[:, 1]
    xi_c[idx] = np.where(slope < 0.5, _xi(slope), _xi_from_gap(acc[:, 2]))
    return c, xi_c


def phase_diagram(phi, sigma_w, sigma_b, mu2=1.0) -> PhaseDiagram:
    """χ₁, ξ_c, ξ_q, q* and c* on the grid of the 1-D arrays ``sigma_b`` × ``sigma_w`` (rows × columns).

    The order-to-chaos diagram of Poole et al. 2016 (Fig. 2) and Schoenholz et al. 2017 (Fig. 1), with
    noise as in Pretorius et al. 2018. From cached tables per activation (and per μ₂ for the
    correlation, built once by :func:`tables`, about half a second): q* from the largest root of
    q − σ_w² μ₂ V(q) = σ_b², bracketed per σ_w column and inverted by cubic Hermite interpolation;
    c* and ξ_c from a table of the correlation fixed point over (ln q, ρ = σ_b²/q*). Agrees with the
    pointwise functions to ~1e-7 (1e-6 at worst) in q* and χ₁; for smooth φ to 2e-5 in c* and 1e-5 in
    the correlation map's slope F'(c*) = e^(−1/ξ_c), for kinked φ to 1e-4 and 1e-3 (their kernel has a
    (1 − c)^3/2 term near c = 1). 256 × 256 points take 10–20 ms on two cores once the tables exist.

    Returns
    -------
    PhaseDiagram
        Arrays of shape (len(sigma_b), len(sigma_w)).
    """
    act = _act(phi)
    key = _Key(act)
    tab = _table(key)
    sw = np.atleast_1d(np.asarray(sigma_w, dtype=float)).ravel()
    sb = np.atleast_1d(np.asarray(sigma_b, dtype=float)).ravel()
    mu2 = float(mu2)
    _check_mu2(np.array([mu2]))
    fx, i, t = _fixed_grid(tab, sw, sb, mu2)
    c, xi_c = _c_grid(_ctable(key, mu2), tab, fx, i, t, mu2 != 1.0)
    xi_q = np.where(np.isfinite(fx.q_star), _xi(fx.slope_q), np.inf)
    shape = (sb.size, sw.size)
    grids = (a.reshape(shape) for a in (fx.chi1, xi_c, xi_q, fx.q_star, c))
    return PhaseDiagram(act.name, mu2, sw, sb, *grids)
