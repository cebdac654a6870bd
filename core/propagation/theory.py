"""The public mean-field theory: q_map, c_map, q*, χ₁, c*, the depth scales and the critical σ_w.

Every function broadcasts over its numeric arguments and stays memory-bounded on large inputs: the work
is done in blocks of points. Two paths, chosen by ``exact`` (default ``None``: the exact path for inputs
of at most ``EXACT_MAX`` points, the fast path above):

* **exact** — quadrature at every point's own values (Gauss–Legendre on pieces cut at φ's breakpoints,
  1-D for the variance, bivariate for the covariance): exact to ~1e-13. Per point it costs a few µs for
  q_map, but up to ~0.1 s for c* and ξ_c of a smooth φ (bivariate quadrature on ~150 000 nodes).
* **tables / series** — the fixed points from the activation's tables (those of :func:`phase_diagram`,
  built once per φ in ~0.5 s) and the correlation map from Mehler's series
  (:mod:`core.propagation.series`). What it guarantees, measured at random points of the 256 × 256
  (σ_w, σ_b) ∈ [0.05, 4] × [0, 2] plane against the exact path: q* and χ₁ to 1e-6 relative (≤ 2e-8
  seen), ξ_q to 1e-5 relative (≤ 2e-6 seen); c* to 2e-5 absolute for smooth φ and 2e-4 for kinked φ;
  the correlation map's slope F'(c*) = e^(−1/ξ_c) to 1e-5 absolute for smooth φ (ξ_c to 1e-3 relative)
  and 2e-3 for kinked φ (hard tanh, shifted ReLU, ELU near the critical line, where ξ_c itself is then
  only good to ~5 %; ask for ``exact=True`` there). c_map to 1e-4 absolute (the series' error, see
  :mod:`core.propagation.series`; points where the series is not trusted are computed exactly).
  256 × 256 points take ~0.1 s once the tables exist.

The NaN / inf conventions are the same on both paths: a divergent variance is ``inf``, a diverging
depth scale ``inf``, never NaN (NaN only where an argument is NaN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core import gaussian
from core.activations import Activation
from core.propagation import series
from core.propagation.fixed import _c_exact, _check_mu2, _Fixed, _fixed_exact, _flat, _q_star_exact, _variance, _xi
from core.propagation.moments import _QUAD, Q_MAX, Q_MIN, _act, _moment, _square
from core.propagation.phase import _c_grid, _fixed_grid, _fixed_points
from core.propagation.tabulation import _ctable, _Key, _moments, _table

EXACT_MAX = 1024
"""With ``exact=None``, inputs of at most this many points take the exact path, larger ones the fast one."""

_BLOCK_1D = 8192          # points per block of 1-D quadrature (≤ 300 nodes each)
_BLOCK_2D = 16            # points per block of bivariate quadrature (≤ 150 000 nodes each)
_BLOCK_FIXED = 2048       # points per block of the exact fixed-point solve


def _exact(exact, size: int) -> bool:
    return size <= EXACT_MAX if exact is None else bool(exact)


def q_map(q, sigma_w, sigma_b, phi, mu2=1.0) -> np.ndarray:
    """The variance map q ↦ σ_w² μ₂ E_z[φ(√q z)²] + σ_b².

    Poole et al. 2016, eq. 3 (the length map), with the noise factor μ₂ of Pretorius et al. 2018,
    Sec. 3 (THEORY.md §2). Broadcasts over all numeric arguments; q = inf maps to inf for an unbounded φ.
    Exact (1-D quadrature at every point, ~1e-15) at any size, in blocks of 8192 points (~0.3 s per 10⁵).
    """
    act = _act(phi)
    shape, (q, sw, sb, mu) = _flat(q, sigma_w, sigma_b, mu2)
    a = sw * sw * mu
    v = np.empty(q.shape)
    for start in range(0, q.size, _BLOCK_1D):
        part = slice(start, start + _BLOCK_1D)
        v[part] = _variance(act, q[part])
    with np.errstate(invalid="ignore", over="ignore"):
        out = np.where(a == 0.0, 0.0, a * v) + sb * sb
    return out.reshape(shape)


def c_map(c, q, sigma_w, sigma_b, phi, mu2=1.0, *, exact=None) -> np.ndarray:
    """The correlation map at variance q: c ↦ (σ_w² E[φ(u₁)φ(u₂)] + σ_b²) / (σ_w² μ₂ E[φ(u)²] + σ_b²).

    u₁, u₂ have variance q and correlation c (Poole et al. 2016, Sec. 2, the correlation map, for two
    inputs of equal variance). Independent noise does not enter the covariance, only the variance in
    the denominator (Pretorius et al. 2018, Sec. 3). The kernel is evaluated at q clipped to
    [Q_MIN, Q_MAX], the q → 0 and q → ∞ limits.

    ``exact``: bivariate quadrature at every point (exact to ~1e-13, ~5 ms per point for a smooth φ), or
    Mehler's series (to 1e-4 absolute, ~2 µs per point; variances shared between points are computed
    once), see the module notes; ``None`` takes the series above ``EXACT_MAX`` points.
    """
    act = _act(phi)
    shape, (c, q, sw, sb, mu) = _flat(c, q, sigma_w, sigma_b, mu2)
    if _exact(exact, c.size):
        out = np.empty(c.shape)
        for start in range(0, c.size, _BLOCK_2D):
            part = slice(start, start + _BLOCK_2D)
            out[part] = _c_map(c[part], q[part], sw[part], sb[part], act, mu[part], _QUAD)
        return out.reshape(shape)
    return _c_map_series(c, q, sw, sb, act, mu).reshape(shape)


def _c_map_series(c, q, sw, sb, act: Activation, mu, den=None) -> np.ndarray:
    """:func:`c_map` by Mehler's series, exact quadrature where the series is not trusted."""
    c = np.clip(c, -1.0, 1.0)
    qk = np.clip(np.where(np.isnan(q), 0.0, q), Q_MIN, Q_MAX)
    uq, inverse = np.unique(qk, return_inverse=True)
    v = np.empty(uq.shape)
    for start in range(0, uq.size, _BLOCK_1D):
        part = slice(start, start + _BLOCK_1D)
        v[part] = _moment(_square(act.phi), uq[part], act.breakpoints)
    v = v[inverse]
    m, trusted = series.kernel(act, qk, np.where(np.isnan(c), 0.0, c))
    num = sw * sw * v * m + sb * sb
    if den is None:
        den = sw * sw * mu * v + sb * sb
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0.0, num / den, c)
    out = np.where(np.isnan(c), np.nan, out)
    rest = np.flatnonzero(~trusted & ~np.isnan(c))
    for start in range(0, rest.size, _BLOCK_2D):
        part = rest[start:start + _BLOCK_2D]
        d = None if den is None else den[part]
        out[part] = _c_map(c[part], q[part], sw[part], sb[part], act, mu[part], _QUAD, d)
    return out


def _c_map(c, q, sw, sb, act: Activation, mu, nodes: int, den=None, z_max: float = gaussian.Z_MAX) -> np.ndarray:
    c = np.clip(c, -1.0, 1.0)
    qk = np.clip(np.where(np.isnan(q), 0.0, q), Q_MIN, Q_MAX)
    bp = act.breakpoints
    cov = gaussian.expect2(act.phi, act.phi, qk, qk, c, bp, bp, nodes, z_max)
    num = sw * sw * cov + sb * sb
    if den is None:
        den = sw * sw * mu * _moment(_square(act.phi), qk, bp) + sb * sb
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0.0, num / den, c)


def _fixed(act: Activation, sigma_w, sigma_b, mu2, exact, with_c: bool):
    """q*, χ₁, the q-map's slope, and (``with_c``) c* and ξ_c at the broadcast points, flat, by either path."""
    shape, (sw, sb, mu) = _flat(sigma_w, sigma_b, mu2)
    _check_mu2(mu)
    n = sw.size
    out = {k: np.empty(n) for k in ("q_star", "chi1", "slope_q") + (("c", "xi_c") if with_c else ())}
    if _exact(exact, n):
        for start in range(0, n, _BLOCK_FIXED):
            part = slice(start, start + _BLOCK_FIXED)
            _, fx = _fixed_exact(act, sw[part], sb[part], mu[part])
            _store(out, part, fx)
            if with_c:
                c, slope = _c_exact(act, fx)
                out["c"][part], out["xi_c"][part] = c, _xi(slope)
        return shape, out
    key = _Key(act)
    tab = _table(key)
    for m in np.unique(mu):
        idx = np.flatnonzero(mu == m)
        fx, i, t = _fixed_points(tab, sw[idx], sb[idx], float(m))
        _store(out, idx, fx)
        if with_c:
            out["c"][idx], out["xi_c"][idx] = _c_grid(_ctable(key, float(m)), tab, fx, i, t, m != 1.0)
    return shape, out


def _store(out: dict, where, fx: _Fixed) -> None:
    out["q_star"][where], out["chi1"][where], out["slope_q"][where] = fx.q_star, fx.chi1, fx.slope_q


def _nan_where_nan(values: np.ndarray, *args) -> np.ndarray:
    """NaN where an argument is NaN (the tables would give a number there), else the values."""
    bad = np.zeros(values.shape, bool)
    for a in args:
        bad |= np.isnan(np.broadcast_to(np.asarray(a, float), values.shape))
    return np.where(bad, np.nan, values) if bad.any() else values


def q_star(sigma_w, sigma_b, phi, mu2=1.0, *, exact=None) -> np.ndarray:
    """The fixed point q* of :func:`q_map` reached by iterating from large q.

    Poole et al. 2016, Sec. 2: the largest root of q = q_map(q), bracketed on a log-spaced grid and
    solved by Newton's method with exact quadrature. ``inf`` where the variance diverges (ReLU with
    σ_w² μ₂/2 > 1, linear with σ_w² μ₂ > 1, or a fixed point beyond ``Q_MAX``); 0 where it contracts
    to 0 (σ_b = 0, φ(0) = 0, χ₁ < 1 as q → 0). On the marginal line of a homogeneous φ with σ_b = 0
    (ReLU at σ_w = √(2/μ₂), linear at σ_w = 1/√μ₂) every q is a fixed point (qˡ = q¹ for all l); the
    value returned there is inf, the one reached from large q and the limit σ_b → 0⁺.

    ``exact``: see the module notes (above ``EXACT_MAX`` points: from the tables, to 1e-6 relative).
    """
    shape, out = _fixed(_act(phi), sigma_w, sigma_b, mu2, exact, False)
    return _nan_where_nan(out["q_star"].reshape(shape), sigma_w, sigma_b)


def chi1(sigma_w, sigma_b, phi, mu2=1.0, *, exact=None) -> np.ndarray:
    """χ₁ = σ_w² μ₂ E_z[φ'(√q* z)²], the factor by which squared gradients grow per layer.

    Poole et al. 2016, eq. 7 (μ₂ = 1: the slope of the correlation map at c = 1), and with noise
    Pretorius et al. 2018, Sec. 3, as in THEORY.md §2 (the backward pass is masked by the same noise).
    Evaluated at q* (limits at q* = 0 or ∞, see the module notes of :mod:`core.propagation`).

    ``exact``: see the module notes (above ``EXACT_MAX`` points: from the tables, to 1e-6 relative).
    """
    shape, out = _fixed(_act(phi), sigma_w, sigma_b, mu2, exact, False)
    return _nan_where_nan(out["chi1"].reshape(shape), sigma_w, sigma_b)


def c_star(sigma_w, sigma_b, phi, mu2=1.0, *, exact=None) -> np.ndarray:
    """The stable fixed point c* of :func:`c_map` at q*.

    Schoenholz et al. 2017, Sec. 3: without noise c* = 1 in the ordered phase (χ₁ < 1) and c* < 1 in
    the chaotic phase; with noise c* < 1 everywhere (Pretorius et al. 2018, Sec. 3).

    ``exact``: see the module notes (above ``EXACT_MAX`` points: from the tables, to 2e-5 absolute for
    smooth φ, 2e-4 for kinked φ).
    """
    shape, out = _fixed(_act(phi), sigma_w, sigma_b, mu2, exact, True)
    return _nan_where_nan(out["c"].reshape(shape), sigma_w, sigma_b)


@dataclass(frozen=True)
class FixedPoint:
    """q*, χ₁ and c* of one (σ_w, σ_b, φ, μ₂), arrays shaped like the broadcast arguments."""

    q_star: np.ndarray
    chi1: np.ndarray
    c_star: np.ndarray


def fixed_point(sigma_w, sigma_b, phi, mu2=1.0, *, exact=None) -> FixedPoint:
    """:func:`q_star`, :func:`chi1` and :func:`c_star` together, solving for q* once (``exact``: as there)."""
    shape, out = _fixed(_act(phi), sigma_w, sigma_b, mu2, exact, True)
    q, chi, c = (_nan_where_nan(out[k].reshape(shape), sigma_w, sigma_b) for k in ("q_star", "chi1", "c"))
    return FixedPoint(q, chi, c)


def depth_scales(sigma_w, sigma_b, phi, mu2=1.0, *, exact=None) -> tuple[np.ndarray, np.ndarray]:
    """The depth scales (ξ_q, ξ_c) over which the variance and the correlation approach q* and c*.

    Schoenholz et al. 2017, Sec. 3: ξ_q⁻¹ = −ln(σ_w² μ₂ (E[φ'²] + E[φ φ''])), the slope of the
    q-map at q*, and ξ_c⁻¹ = −ln(σ_w² E[φ'(u₁) φ'(u₂)]) at q*, c*, the slope of the c-map at c*. The
    q-map's slope is taken by differentiating the Gaussian density (Stein's lemma), so kinked φ need no
    φ''. ξ_c = inf on the critical line (wherever the slope is within 1e-9 of 1), ξ_q = inf where
    q* = inf. Networks are trainable to depths of about 6 ξ_c (Schoenholz et al. 2017, Fig. 6).

    ``exact``: see the module notes. Above ``EXACT_MAX`` points both come from the tables: ξ_q to 1e-5
    relative; the slope e^(−1/ξ_c) to 1e-5 absolute for smooth φ (ξ_c to 1e-3 relative), 2e-3 for kinked
    φ. 256 × 256 points in ~0.1 s; the exact path costs up to ~0.1 s per point.
    """
    shape, out = _fixed(_act(phi), sigma_w, sigma_b, mu2, exact, True)
    xi_q = np.where(np.isfinite(out["q_star"]), _xi(out["slope_q"]), np.inf)
    return (_nan_where_nan(xi_q.reshape(shape), sigma_w, sigma_b),
            _nan_where_nan(out["xi_c"].reshape(shape), sigma_w, sigma_b))


def critical_sigma_w(sigma_b, phi, mu2=1.0) -> np.ndarray:
    """The σ_w of the order-to-chaos transition, χ₁(σ_w, σ_b) = 1, for each σ_b.

    Poole et al. 2016, Fig. 2; with noise Pretorius et al. 2018, Sec. 3: for ReLU σ_w = √(2/μ₂) (and
    σ_b = 0), for tanh σ_w = 1 at σ_b = 0. The smallest σ_w in [0.01, 100] where χ₁ crosses 1: a scan
    of the tables brackets it, then the Illinois variant of regula falsi with exact quadrature
    (bracketed like Brent's method, and vectorised over σ_b) solves it until |χ₁ − 1| ≤ 1e-13 (σ_w to
    ~1e-13). inf where χ₁ stays below 1. Vectorised over σ_b: 1000 values in ~0.2 s.
    """
    act = _act(phi)
    shape, (sb, mu) = _flat(sigma_b, mu2)
    scan = np.geomspace(0.01, 100.0, 241)
    out = np.full(sb.size, np.inf)
    _check_mu2(mu)
    # the tables locate the crossing (χ₁ to ~1e-7), exact quadrature confirms the bracket; one phase
    # diagram per distinct μ₂ covers every σ_b (one row each)
    g = np.empty((sb.size, scan.size))
    tab = _table(_Key(act))
    for m in np.unique(mu):
        idx = np.flatnonzero(mu == m)
        ub, inverse = np.unique(sb[idx], return_inverse=True)
        g[idx] = _fixed_grid(tab, scan, ub, float(m))[0].chi1.reshape(ub.size, scan.size)[inverse] - 1.0
    up = (g[:, :-1] < 0.0) & (g[:, 1:] >= 0.0)
    rows = np.flatnonzero(up.any(axis=1))
    j = np.argmax(up[rows], axis=1)
    # σ_b = 0 with φ(0) = 0: the crossing is where the fixed point q* = 0 loses stability, χ₁ = σ_w² μ₂ φ'(0)²
    # = 1, in closed form. Beyond it χ₁ − 1 is second order in σ_w − σ₀, which no bracketing method
    # resolves to better than ~1e-7.
    d0 = float(act.dphi(np.zeros(1))[0])
    if not act.homogeneous and float(act.phi(np.zeros(1))[0]) == 0.0 and d0 != 0.0:
        s0 = 1.0 / (abs(d0) * np.sqrt(mu[rows]))
        closed = ((sb[rows] == 0.0) & (scan[np.maximum(j - 1, 0)] <= s0)
                  & (s0 <= scan[np.minimum(j + 2, scan.size - 1)]))
        out[rows[closed]] = s0[closed]
        rows, j = rows[~closed], j[~closed]
    # a tight bracket around the tables' crossing (linear in ln σ_w within the cell), else the wide one
    g0, g1 = g[rows, j], g[rows, j + 1]
    guess = np.exp(np.log(scan[j]) + np.log(scan[1] / scan[0]) * g0 / (g0 - g1))
    # one secant step on the tables' χ₁ close to it takes the guess from ~1e-4 to ~1e-7
    for m in np.unique(mu[rows]):
        k = np.flatnonzero(mu[rows] == m)
        pts = np.concatenate([guess[k] * (1.0 - 1e-3), guess[k] * (1.0 + 1e-3)])
        chi = _fixed_points(tab, pts, np.tile(sb[rows[k]], 2), float(m))[0].chi1 - 1.0
        c0, c1 = chi[:k.size], chi[k.size:]
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.log1p(2e-3 / (1.0 - 1e-3)) * c0 / (c0 - c1)
        better = np.isfinite(step) & (np.abs(step) < 0.01)
        guess[k] = np.where(better, guess[k] * (1.0 - 1e-3) * np.exp(np.where(better, step, 0.0)), guess[k])
    lo, hi = guess * (1.0 - 2e-6), guess * (1.0 + 2e-6)
    chi_lo, _ = _chi1_exact(act, lo, sb[rows], mu[rows])
    chi_hi, q_hi = _chi1_exact(act, hi, sb[rows], mu[rows])
    f_lo, f_hi = chi_lo - 1.0, chi_hi - 1.0
    wide = ~((f_lo < 0.0) & (f_hi >= 0.0))
    if wide.any():
        lo[wide], hi[wide] = scan[np.maximum(j[wide] - 1, 0)], scan[np.minimum(j[wide] + 2, scan.size - 1)]
        f_lo[wide] = _chi1_exact(act, lo[wide], sb[rows[wide]], mu[rows[wide]])[0] - 1.0
        chi_w, q_hi[wide] = _chi1_exact(act, hi[wide], sb[rows[wide]], mu[rows[wide]])
        f_hi[wide] = chi_w - 1.0
    bracketed = (f_lo < 0.0) & (f_hi >= 0.0)
    rows, lo, hi, f_lo, f_hi = rows[bracketed], lo[bracketed], hi[bracketed], f_lo[bracketed], f_hi[bracketed]
    q_last = q_hi[bracketed]
    x = hi.copy()
    active = np.arange(rows.size)
    for _ in range(100):
        a_lo, a_hi, g_lo, g_hi = lo[active], hi[active], f_lo[active], f_hi[active]
        new = np.where(g_hi == 0.0, a_hi, a_hi - g_hi * (a_hi - a_lo) / (g_hi - g_lo))
        chi, q_last[active] = _chi1_exact(act, new, sb[rows[active]], mu[rows[active]], q_last[active])
        f = chi - 1.0
        same = np.sign(f) == np.sign(g_hi)
        # Illinois: halve the stale end's value so that the bracket shrinks from both sides
        f_lo[active] = np.where(same, 0.5 * g_lo, g_hi)
        lo[active] = np.where(same, a_lo, a_hi)
        hi[active], f_hi[active] = new, f
        # |χ₁ − 1| ≤ 1e-13 is the quadrature's rounding; at σ_b = 0 (q* → 0) χ₁ is that flat near 1
        done = (np.abs(new - x[active]) <= 1e-15 * new) | (np.abs(f) <= 1e-13)
        x[active] = new
        active = active[~done]
        if active.size == 0:
            break
    out[rows] = x
    return out.reshape(shape)


def _chi1_exact(act: Activation, sigma_w, sigma_b, mu2, guess=None):
    """χ₁ by exact quadrature, and q* (for the next call's ``guess``): only what the σ_w search needs."""
    a = sigma_w * sigma_w * mu2
    tab = _moments(_Key(act))
    if act.homogeneous or a.size == 0:
        return a * tab.d1, np.ones_like(a)
    q = _q_star_exact(act, tab, a, sigma_b * sigma_b, guess)
    qk = np.clip(np.where(np.isfinite(q), q, Q_MAX), Q_MIN, Q_MAX)
    return a * _moment(_square(act.dphi), qk, act.breakpoints), q
