"""Fixed points, pointwise: bracketed on the tables, then solved with exact quadrature."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core import gaussian
from core.activations import Activation
from core.propagation.moments import (
    _QUAD,
    Q_MAX,
    Q_MIN,
    _mehler_weights,
    _moment,
    _moment_slope,
    _square,
    _unbounded,
)
from core.propagation.tabulation import _Key, _Moments, _moments

_POLISH_CHUNK = 16      # points per block of bivariate quadrature (smooth φ: ~150 000 nodes per point)
_EXACT_TERMS = 128      # Mehler orders the pointwise functions compute at each point's own q
_NEWTON_TOL = 1e-13
_XI_ONE = 1e-9          # a fixed point whose slope is this close to 1 is marginal: ξ = inf


@dataclass(frozen=True)
class _Fixed:
    """Everything at the fixed point, as flat arrays over the points."""

    q_star: np.ndarray
    qk: np.ndarray          # the variance at which the scale-free quantities are evaluated
    chi1: np.ndarray
    slope_q: np.ndarray     # d q_map/dq at q*
    rho: np.ndarray         # σ_b²/q*: the bias's share of the fixed-point variance
    gamma: np.ndarray       # the correlation map is F(c) = ρ + γ m(c), γ = (1 − ρ)/μ₂
    lam1: np.ndarray        # F'(1)
    noisy: np.ndarray


def _flat(*args):
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in args))
    return arrays[0].shape, [np.array(a, dtype=float).reshape(-1) for a in arrays]


def _check_mu2(mu2: np.ndarray) -> None:
    if np.any(~(mu2 >= 1.0)) or np.any(~np.isfinite(mu2)):
        raise ValueError(f"mu2 = E[ε²] of noise with E[ε] = 1 must be a finite number ≥ 1, got {mu2}")


def _suffix_min(s: np.ndarray) -> np.ndarray:
    return np.minimum.accumulate(s[..., ::-1], axis=-1)[..., ::-1]


def _bracket_q_star(tab: _Moments, a: np.ndarray, sb2: np.ndarray):
    """Grid bracket [lo, hi] of the stable fixed point reached from large q; ``div`` where it diverges.

    With s(q) = q − a V(q), a = σ_w² μ₂, iterating q ↦ a V(q) + σ_b² from q = ∞ descends to the largest
    root of s(q) = σ_b²: the last grid point where the suffix minimum of s (over q' ≥ q) is ≤ σ_b².
    If even s(Q_MAX) ≤ σ_b² the variance diverges. The grid starts at q = 0, where s ≤ 0 ≤ σ_b².
    """
    qf = np.concatenate([[0.0], tab.q])
    vf = np.concatenate([[tab.v0], tab.V])
    s = qf - a[:, None] * vf
    j = np.sum(_suffix_min(s) <= sb2[:, None], axis=1)
    div = j == qf.size
    j = np.minimum(j, qf.size - 1)
    rows = np.arange(j.size)
    return qf[j - 1], qf[j], s[rows, j - 1], s[rows, j], div


def _q_star_exact(act: Activation, tab: _Moments, a: np.ndarray, sb2: np.ndarray, guess=None) -> np.ndarray:
    """q* to rounding: bracketed on the table grid, then safeguarded Newton with exact quadrature
    (started from ``guess`` where it lies in the bracket: a nearby point's q*, say)."""
    lo, hi, slo, shi, div = _bracket_q_star(tab, a, sb2)
    out = np.full(a.shape, np.inf)
    ok = ~div
    lo, hi, slo, shi, aa, bb = lo[ok], hi[ok], slo[ok], shi[ok], a[ok], sb2[ok]
    x = np.where(slo == bb, lo, lo + (hi - lo) * np.clip((bb - slo) / (shi - slo), 0.0, 1.0))
    if guess is not None:
        g = np.asarray(guess, float)[ok]
        x = np.where((slo != bb) & (g > lo) & (g < hi), g, x)
    f2 = _square(act.phi)
    active = np.flatnonzero(slo != bb)
    for _ in range(100):
        if active.size == 0:
            break
        xa = x[active]
        xs = np.maximum(xa, 1e-300)
        f = xa - aa[active] * _moment(f2, xa, act.breakpoints) - bb[active]
        fp = 1.0 - aa[active] * _moment_slope(f2, xs, act.breakpoints) / xs
        lo[active] = np.where(f <= 0, xa, lo[active])
        hi[active] = np.where(f > 0, xa, hi[active])
        with np.errstate(divide="ignore", invalid="ignore"):
            new = xa - f / fp
        inside = (new >= lo[active]) & (new <= hi[active])
        new = np.where(f == 0, xa, np.where(inside, new, 0.5 * (lo[active] + hi[active])))
        x[active] = new
        # |f| at its rounding also ends it: where the slope 1 − a V' is small (σ_b = 0 near the critical
        # σ_w) the steps would otherwise alternate on rounding noise for all 100 iterations
        done = ((np.abs(new - xa) <= 1e-15 * xa) | (hi[active] - lo[active] <= 1e-15 * hi[active])
                | (np.abs(f) <= 8e-16 * (xa + bb[active])))
        active = active[~done]
    out[ok] = x
    return out


def _fixed_exact(act: Activation, sigma_w, sigma_b, mu2):
    """The fixed point of every point of the broadcast (sigma_w, sigma_b, mu2), by exact quadrature."""
    shape, (sw, sb, mu) = _flat(sigma_w, sigma_b, mu2)
    _check_mu2(mu)
    tab = _moments(_Key(act))
    a = sw * sw * mu
    sb2 = sb * sb
    if act.homogeneous:
        av = a * tab.v1
        q_star, rho = _homogeneous_fixed_point(av, sb2)
        qk = np.ones_like(a)
        V, D, slope_q = np.full_like(a, tab.v1), np.full_like(a, tab.d1), av
    else:
        q_star = _q_star_exact(act, tab, a, sb2)
        finite = np.isfinite(q_star)
        qk = np.clip(np.where(finite, q_star, Q_MAX), Q_MIN, Q_MAX)
        V = _moment(_square(act.phi), qk, act.breakpoints)
        D = _moment(_square(act.dphi), qk, act.breakpoints)
        slope_q = a * _moment_slope(_square(act.phi), qk, act.breakpoints) / qk
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(q_star >= Q_MIN, sb2 / q_star, np.clip(1.0 - a * V / qk, 0.0, 1.0))
        rho = np.where(finite, rho, 0.0)
    lam1 = _lambda1(a * D, q_star, sb2, act.homogeneous, qk * D / V, mu)
    return shape, _Fixed(q_star, qk, a * D, slope_q, rho, (1.0 - rho) / mu, lam1, mu != 1.0)


def _homogeneous_fixed_point(av, sb2):
    """q* = σ_b²/(1 − σ_w² μ₂ V(1)) of a homogeneous φ, and ρ = σ_b²/q*.

    Within 1e-12 of the marginal line (σ_w² μ₂ V(1) = 1) the variance counts as divergent, so that
    ReLU at σ_w = √2 or linear at σ_w = 1 do not depend on the last bit of V(1); so does a q* beyond
    Q_MAX, as for every other φ.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        q_star = np.where(av < 1.0 - 1e-12, sb2 / (1.0 - av), np.inf)
    q_star = np.where(q_star > Q_MAX, np.inf, q_star)
    return q_star, np.where(np.isfinite(q_star) & (sb2 > 0), 1.0 - av, 0.0)


def _lambda1(chi, q_star, sb2, homogeneous: bool, scale_free, mu2):
    """λ₁ = F'(1), the correlation map's slope at c = 1.

    At a fixed point it is χ₁/μ₂ (the identity (1 − ρ) q*/V(q*) = σ_w² μ₂ keeps it well conditioned
    when σ_b² dominates q*). Where the map does not see σ_b it is the scale-free q E[φ'²]/(μ₂ V): for a
    homogeneous φ with σ_b = 0 exactly, and at q* = ∞ in the q → ∞ limit. That is exactly 1/μ₂ for
    every homogeneous or asymptotically piecewise-linear φ (all unbounded φ of the registry), which
    quadrature at q = 1 or Q_MAX misses by rounding or O(Q_MAX^−½): a value within 1e-3 of it is
    taken to be 1/μ₂ (without noise: c* = 1, marginal, ξ_c = inf).
    """
    free = ~np.isfinite(q_star) | (homogeneous & (sb2 == 0.0))
    limit = np.where(np.abs(scale_free - 1.0) < 1e-3, 1.0, scale_free)
    return np.where(free, limit / mu2, chi / mu2)


def _kernel(c, W, T, P):
    """m(c) = Σ_k W_k c^k + T c^P and m'(c) by Horner's rule; W has shape (K, points)."""
    v = W[-1] * np.ones_like(c)
    d = np.zeros_like(v)
    for k in range(W.shape[0] - 2, -1, -1):
        d = d * c + v
        v = v * c + W[k]
    with np.errstate(divide="ignore"):
        lc = np.log(c)
    return v + T * np.exp(P * lc), d + T * P * np.exp((P - 1.0) * lc)


def _newton_c(gam, rh, lam, T, P, W, deflated: bool, max_iter: int = 60):
    """c* by Newton's method, monotone from a safe start (see :func:`_solve_c`)."""
    if deflated:
        ks = np.arange(W.shape[0], dtype=float)
        curv = gam * (ks * (ks - 1.0) @ W + T * P * (P - 1.0))
        cur = np.clip(1.0 - 2.0 * (lam - 1.0) / curv, 0.0, 1.0)
    else:
        m0, _ = _kernel(np.zeros_like(gam), W, T, P)
        cur = np.clip(rh + gam * m0, 0.0, 1.0)
    for _ in range(max_iter):
        m, dm = _kernel(cur, W, T, P)
        F, dF = rh + gam * m, gam * dm
        with np.errstate(divide="ignore", invalid="ignore"):
            if deflated:
                one_minus = 1.0 - cur
                H = (F - cur) / one_minus
                new = np.clip(np.nan_to_num(cur - H * one_minus / (dF - 1.0 + H), nan=0.0), 0.0, cur)
            else:
                new = np.clip(np.nan_to_num(cur - (F - cur) / (dF - 1.0), nan=1.0), cur, 1.0)
        step = np.max(np.abs(new - cur), initial=0.0)
        cur = new
        if step <= _NEWTON_TOL:
            break
    return cur


def _solve_c(fx: _Fixed, W, T, P):
    """Stable fixed point c* of the correlation map F(c) = ρ + γ m(c) and the slope F'(c*).

    F is increasing and convex on [0, 1] (the Mehler weights are non-negative). Without noise F(1) = 1:
    where λ₁ = F'(1) ≤ 1, c* = 1 (ordered phase); elsewhere Newton's method on the deflated
    H(c) = (F(c) − c)/(1 − c), concave with a simple root even on the critical line, started right of
    the root by its tangent at c = 1, decreases monotonically to c*. With noise F(1) < 1, and Newton
    on F(c) − c from c = F(0) ≤ c* increases monotonically to the only root in [0, 1).
    """
    c = np.ones_like(fx.gamma)
    slope = fx.lam1.copy()
    for deflated, pick in ((True, ~fx.noisy & (fx.lam1 > 1.0)), (False, fx.noisy)):
        idx = np.flatnonzero(pick)
        if idx.size:
            c[idx] = _newton_c(fx.gamma[idx], fx.rho[idx], fx.lam1[idx], T[idx], P[idx], W[:, idx], deflated)
            slope[idx] = fx.gamma[idx] * _kernel(c[idx], W[:, idx], T[idx], P[idx])[1]
    return c, slope


def _c_exact(act: Activation, fx: _Fixed):
    """c* and F'(c*), with the Mehler weights computed at each point's own variance.

    Where the series needed its tail model (kinked φ, or a smooth φ at large q), Newton steps with the
    exact bivariate quadrature polish c* (the series is off by ~1e-5 at worst; each step squares that)
    and the slope is taken from that quadrature too.
    """
    uq, inverse = np.unique(fx.qk, return_inverse=True)
    V = _moment(_square(act.phi), uq, act.breakpoints)
    D = _moment(_square(act.dphi), uq, act.breakpoints)
    w, T, P = _mehler_weights(act, uq, _EXACT_TERMS, V, D)
    c, slope = _solve_c(fx, np.ascontiguousarray(w.T[:, inverse]), T[inverse], P[inverse])
    idx = np.flatnonzero((c < 1.0) & (T[inverse] > 0.0))
    for start in range(0, idx.size, _POLISH_CHUNK):     # ~1 MB of quadrature nodes per point
        part = idx[start:start + _POLISH_CHUNK]
        c[part], slope[part] = _polish_c(act, fx, part, c[part], V[inverse[part]])
    return c, slope


def _polish_c(act: Activation, fx: _Fixed, idx: np.ndarray, c: np.ndarray, v: np.ndarray):
    """Newton steps for c* with exact quadrature (deflated without noise), and F'(c*)."""
    q, rho, gam, noisy = fx.qk[idx], fx.rho[idx], fx.gamma[idx], fx.noisy[idx]
    bp = act.breakpoints

    def F_and_slope(cc):
        cov = gaussian.expect2(act.phi, act.phi, q, q, cc, bp, bp, _QUAD)
        dcov = gaussian.expect2(act.dphi, act.dphi, q, q, cc, bp, bp, _QUAD)
        return rho + gam * cov / v, gam * q * dcov / v

    for _ in range(3):
        F, dF = F_and_slope(c)
        with np.errstate(divide="ignore", invalid="ignore"):
            H = (F - c) / (1.0 - c)
            new = np.where(noisy, c - (F - c) / (dF - 1.0), c - H * (1.0 - c) / (dF - 1.0 + H))
        new = np.where(np.isfinite(new), np.clip(new, 0.0, 1.0), c)
        step = np.max(np.abs(new - c))
        c = new
        if step <= 1e-9:      # the next step would be ~1e-17: F'(c*) at the previous c is exact enough
            break
    return c, dF


def _xi(slope: np.ndarray) -> np.ndarray:
    """Depth scale −1/ln(slope) of a fixed point of that slope: inf at a marginal one, 0 at slope 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = -1.0 / np.log(slope)
    return np.where(slope >= 1.0 - _XI_ONE, np.inf, np.where(slope <= 0.0, 0.0, xi))


def _xi_from_gap(gap: np.ndarray) -> np.ndarray:
    """The same from 1 − slope (kept to full relative precision near the critical line)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = -1.0 / np.log1p(-np.minimum(gap, 1.0))
    return np.where(gap <= _XI_ONE, np.inf, xi)


def _variance(act: Activation, q: np.ndarray) -> np.ndarray:
    """V(q) = E_z[φ(√q z)²] for any q ≥ 0, inf included (a bounded φ's limit is taken at q = 1e300)."""
    finite = np.isfinite(q)
    with np.errstate(over="ignore", invalid="ignore"):
        v = _moment(_square(act.phi), np.where(finite, q, 1e300), act.breakpoints)
    return np.where(finite | (not _unbounded(act)), v, np.inf)
