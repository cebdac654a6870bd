"""Signal Propagation: mean-field theory of deep random networks, and the real networks it describes.

Theory (numpy, float64): the variance map, the correlation map, their fixed points q*, c*, the slope
χ₁ and the depth scales ξ_q, ξ_c (Poole et al. 2016, arXiv 1606.05340; Schoenholz et al. 2017,
arXiv 1611.01232), with multiplicative noise of second moment μ₂ (Pretorius et al. 2018,
arXiv 1811.00293). Simulation (torch, float32, imported only when a simulation runs): real random
networks whose layer statistics are drawn as dots beside the theory's lines.

Conventions
-----------
* ``phi`` is a registry name or an :class:`~core.activations.Activation`; ``mu2`` = E ε² of the noise
  (1: none; dropout with keep probability p: 1/p; Gaussian N(1, s²): 1 + s²), see :func:`noise_mu2`.
* Every theory function broadcasts over numpy arrays of its numeric arguments and never returns NaN:
  a divergent variance is ``inf``, a diverging depth scale is ``inf``.
* Degenerate fixed points are limits. q* = 0 (σ_b = 0 and the variance contracts): scale-free
  quantities are the σ_b → 0⁺ limit, evaluated at q = ``Q_MIN``. q* = ∞ (unbounded φ, expanding): the
  q → ∞ limit, evaluated at q = ``Q_MAX``. A homogeneous φ (φ(a x) = a φ(x), a > 0: linear, ReLU) with
  σ_b = 0 has a correlation map that does not depend on q at all, so c* and ξ_c are those of that
  scale-free map (Pretorius et al. 2018, Sec. 3), whatever q* is.
* Layers: layer 0 is the input, q⁰ = ‖x‖²/N; q¹ = σ_w² q⁰ + σ_b² (the input is not passed through φ
  nor through the noise); qˡ = q_map(qˡ⁻¹) from layer 2 on (Poole et al. 2016, eq. 3). The
  correlation of two inputs follows the same pattern.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np

from core import activations, gaussian
from core import device as devices
from core.activations import NAMES, Activation
from core.params import Params, param

Q_MIN = 1e-10
"""Variances below this count as the q → 0 limit for scale-free quantities."""
Q_MAX = 1e10
"""A fixed point beyond this counts as divergent (``inf``); q → ∞ limits are evaluated here."""

NOISES = ("none", "dropout", "gaussian")

_PER_DECADE = 32        # table points per decade of q
_TABLE_TERMS = 128      # Mehler orders in the tables (plus a one-term tail model)
_EXACT_TERMS = 128      # Mehler orders the pointwise functions compute at each point's own q
_TABLE_LOCK = threading.RLock()
_MOMENTS_LOCK = threading.Lock()   # its own, so a slider's redraw never waits for a phase diagram's table
_QUAD_FAST = 24         # … for layer-by-layer trajectories drawn live, on [−8, 8] (see c_trajectory)
_Z_FAST = 8.0           # [−10, 10] wastes a fifth of the nodes where the mass is 1e-15: 100× the error
_QUAD = 48              # Gauss–Legendre nodes per piece (48: exact to rounding even on one unsplit piece)
_N_U = 513              # c = 1 − u², u uniform: the grid on which the correlation table is solved
_N_R = 513              # ρ (or ρ̃) grid of the correlation table
_NEWTON_TOL = 1e-13
_XI_ONE = 1e-9          # a fixed point whose slope is this close to 1 is marginal: ξ = inf
_YIELD_EVERY = 8              # layers between the progress reports (and chances to stop) of a simulation
_WEIGHT_BYTES = 512 * 2**20   # a simulation keeps its weights for the backward pass up to this size


# ----------------------------------------------------------------------------------------------------
# Gaussian moments of φ
# ----------------------------------------------------------------------------------------------------

def _act(phi: str | Activation) -> Activation:
    return activations.resolve(phi)


def _square(f):
    return lambda u: np.square(f(u))


def _moment(f, q, breakpoints) -> np.ndarray:
    """E_z[f(√q z)], exact to rounding for piecewise-smooth f."""
    return gaussian.expect(f, q, breakpoints, _QUAD)


def _moment_slope(f, q, breakpoints) -> np.ndarray:
    """d/d(ln q) of E_z[f(√q z)] = ½ E_z[(f(√q z) − f(0)) (z² − 1)].

    Differentiating the Gaussian density rather than f (Stein's lemma) needs no f' and so no delta
    functions where φ is kinked; subtracting f(0) removes the cancellation as q → 0.
    """
    q = np.asarray(q, float)
    f0 = float(f(np.zeros(1))[0])
    qq = q[..., None]
    return gaussian.expect(lambda u: 0.5 * (f(u) - f0) * (u * u / qq - 1.0), q, breakpoints, _QUAD)


def _unbounded(act: Activation) -> bool:
    return bool(np.max(np.abs(act.phi(np.array([-1e8, 1e8])))) > 1e4)


def _mehler_weights(act: Activation, q: np.ndarray, terms: int, v: np.ndarray, d: np.ndarray):
    """Normalised Mehler weights w_k = a_k(q)²/V(q), k < terms, with the tail model of :func:`_with_tail`.

    E[φ(u₁)φ(u₂)]/V = Σ_k w_k c^k for two variance-q Gaussians of correlation c (Mehler's formula;
    Poole et al. 2016, SM). The weights are non-negative: the normalised kernel m(c) is increasing
    and convex on [0, 1], with m(1) = 1.
    """
    a = gaussian.hermite_coefficients(act.phi, q, terms, act.breakpoints, n=72)
    w = a * a / v[..., None]
    return (w,) + _with_tail(w, q * d / v)


def _with_tail(w: np.ndarray, slope1: np.ndarray):
    """Tail model T c^p of the Mehler series beyond the weights ``w`` (…, K).

    T and p make the value (Σ w_k + T = 1) and the slope (Σ k w_k + T p = q E[φ'²]/V, Price's
    theorem) at c = 1 exact, so χ₁ and the order-to-chaos line never depend on the truncation.
    """
    K = w.shape[-1]
    tail = 1.0 - w.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (slope1 - w @ np.arange(K, dtype=float)) / tail
    keep = tail > 1e-13
    return np.where(keep, tail, 0.0), np.where(keep & np.isfinite(p), np.maximum(p, float(K)), float(K))


# ----------------------------------------------------------------------------------------------------
# Tables per activation: V(q), D(q) = E[φ'²], their slopes and the correlation kernel on a log-q grid
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Moments:
    """V(q), D(q) and their slopes on the log-q grid: all the pointwise fixed points need."""

    homogeneous: bool
    x0: float                 # ln Q_MIN
    h: float                  # grid step in ln q
    q: np.ndarray             # Q_MIN … Q_MAX, log-spaced
    v0: float                 # V(0) = φ(0)²
    V: np.ndarray             # E[φ(√q z)²]
    Vx: np.ndarray            # dV/d ln q
    D: np.ndarray             # E[φ'(√q z)²]
    Dx: np.ndarray            # dD/d ln q
    v1: float                 # V(1), D(1): all a homogeneous φ needs
    d1: float
    i1: int                   # the grid row of q = 1


@dataclass(frozen=True, eq=False)
class _Table(_Moments):
    """The moments plus the normalised correlation kernel on a grid of c, for the phase diagram."""

    c: np.ndarray             # (N_u,) c = 1 − u², u uniform on [0, 1]
    s1: np.ndarray            # (n, N_u) s(c) − 1, with s(c) = (1 − m(c))/(1 − c), m the normalised kernel
    sd: np.ndarray            # (n, N_u) s(c) − m'(c)
    dm: np.ndarray            # (n, N_u) m'(c)


class _Key:
    """Hashes an Activation by what defines it (registry name, α, breakpoints), not by identity.

    A custom Activation must therefore carry a name of its own.
    """

    def __init__(self, act: Activation):
        self.act = act
        self.key = (act.name, act.alpha, tuple(act.breakpoints), act.label)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Key) and self.key == other.key


_TAIL_EXPONENTS = np.geomspace(_TABLE_TERMS, 1e7, 160)      # orders standing for the series' tail


def _power_law_tail(T: np.ndarray, p: np.ndarray, K: int) -> np.ndarray:
    """Masses (n, len(_TAIL_EXPONENTS)) of a tail w_k ∝ k^−β, k ≥ K, of total T and mean order p.

    A kink in φ makes the Mehler weights decay like k^−5/2, so the kernel has a (1 − c)^3/2 term that
    no finite series (nor one term T c^p) follows near c = 1. A power law, binned on geometric orders,
    does; β is fitted per row so that mass and mean order match T and p (value and slope at c = 1
    exact, as for :func:`_with_tail`), by bisection on ln(β − 2).
    """
    e = _TAIL_EXPONENTS
    log_edges = np.log(np.r_[K - 0.5, np.sqrt(e[:-1] * e[1:]), 1e300] / K)
    out = np.zeros(T.shape + e.shape)
    rows = np.flatnonzero(T > 0)
    if rows.size == 0:
        return out

    def masses(beta):
        b = 1.0 - beta[:, None]
        with np.errstate(over="ignore", under="ignore"):
            return (np.exp(b * log_edges[:-1]) - np.exp(b * log_edges[1:])) / -b

    pr = p[rows]
    lo, hi = np.full(rows.size, math.log(1e-4)), np.full(rows.size, math.log(2000.0))
    for _ in range(36):
        mid = 0.5 * (lo + hi)
        m = masses(2.0 + np.exp(mid))
        too_heavy = (m @ e) / m.sum(axis=1) > pr            # mean order above p: a steeper decay
        lo, hi = np.where(too_heavy, mid, lo), np.where(too_heavy, hi, mid)
    m = masses(2.0 + np.exp(0.5 * (lo + hi)))
    out[rows] = T[rows, None] * m / m.sum(axis=1, keepdims=True)
    return out


def _kernel_on_grid(w: np.ndarray, tail: np.ndarray, c: np.ndarray):
    """s(c) − 1, s(c) − m'(c) and m'(c) for the normalised kernel m(c) = Σ_k w_k c^k + tail.

    With R_j = Σ_{k>j} w_k: s(c) − 1 = −w₀ + Σ_{j≥1} R_j c^j and s(c) − m'(c) = Σ_j (R_{j+1} − j w_{j+1}) c^j,
    sums of small terms without cancellation even where m is nearly the identity (small q).
    """
    n, K = w.shape
    R = np.zeros_like(w)
    R[:, :-1] = np.cumsum(w[:, :0:-1], axis=1)[:, ::-1]
    a_s = R.copy()
    a_s[:, 0] = -w[:, 0]
    j = np.arange(K)
    a_d = np.zeros_like(w)
    a_d[:, :-1] = R[:, 1:] - j[:-1] * w[:, 1:]
    powers = c[None, :] ** j[:, None]
    e = _TAIL_EXPONENTS[:, None]
    omc = 1.0 - c
    with np.errstate(divide="ignore", invalid="ignore"):
        lc = np.log(c)
        ce1 = np.exp((e - 1.0) * lc)                            # c^(e−1)
        s_e = np.where(omc > 0, -np.expm1(e * lc) / omc, e)      # (1 − c^e)/(1 − c)
        t_s1 = np.where(omc > 0, c * -np.expm1((e - 1.0) * lc) / omc, e - 1.0)
    t_sd = np.where(omc > 0, s_e - e * ce1, 0.0)
    s1 = a_s @ powers + tail @ t_s1
    sd = a_d @ powers + tail @ t_sd
    dm = (j[1:] * w[:, 1:]) @ powers[:-1] + tail @ (e * ce1)
    return s1, sd, dm


def _moments(key: _Key) -> _Moments:
    with _MOMENTS_LOCK:
        return _build_moments(key)


def _table(key: _Key) -> _Table:
    # Two workers asking for the same new φ at once (phase diagram and depth-scale curve) would
    # otherwise both spend half a second building it.
    with _TABLE_LOCK:
        return _build_table(key)


@lru_cache(maxsize=8)
def _build_moments(key: _Key) -> _Moments:
    act = key.act
    bp = act.breakpoints
    n = int(round(_PER_DECADE * math.log10(Q_MAX / Q_MIN))) + 1
    x = np.linspace(math.log(Q_MIN), math.log(Q_MAX), n)
    q = np.exp(x)
    with np.errstate(over="ignore", invalid="ignore"):
        V = np.maximum(_moment(_square(act.phi), q, bp), 1e-300)
        Vx = _moment_slope(_square(act.phi), q, bp)
        D = _moment(_square(act.dphi), q, bp)
        Dx = _moment_slope(_square(act.dphi), q, bp)
    i1 = int(round(-x[0] / (x[1] - x[0])))
    return _Moments(act.homogeneous, float(x[0]), float(x[1] - x[0]), q, float(act.phi(np.zeros(1))[0] ** 2),
                    V, Vx, D, Dx, float(V[i1]), float(D[i1]), i1)


@lru_cache(maxsize=8)
def _build_table(key: _Key) -> _Table:
    # The Mehler weights on 641 values of q are most of the ~0.3 s a new φ costs; the pointwise
    # functions (a slider's redraw) need only the moments and never wait for them.
    m = _moments(key)
    w, T, P = _mehler_weights(key.act, m.q, _TABLE_TERMS, m.V, m.D)
    u = np.linspace(0.0, 1.0, _N_U)
    c = 1.0 - u * u
    s1, sd, dm = _kernel_on_grid(w, _power_law_tail(T, P, _TABLE_TERMS), c)
    return _Table(**{f.name: getattr(m, f.name) for f in fields(_Moments)}, c=c, s1=s1, sd=sd, dm=dm)


def tables(phi: str | Activation, mu2: float = 1.0) -> None:
    """Build (once; cached per activation and α, and per μ₂) what :func:`phase_diagram` needs.

    About half a second for a new activation and a few tens of milliseconds for a new μ₂; the GUI may
    call it in a worker to warm up.
    """
    key = _Key(_act(phi))
    _ctable(key, float(mu2))


@dataclass(frozen=True, eq=False)
class _CTable:
    """The correlation fixed point c* and the slope F'(c*), tabulated over (ln q, r).

    At a fixed point q* the correlation map is F(c) = ρ + (1 − ρ) m(c)/μ₂ with ρ = σ_b²/q* (the
    bias's share of the variance) and m the normalised kernel. The fixed-point condition solves
    explicitly for ρ given c, so each row (a value of q) is computed on the grid of c of the
    :class:`_Table` and inverted (monotone: c* increases with ρ).

    Noise-free (μ₂ = 1): ρ(c) = 1 − 1/s(c), up to ρ_crit = 1 − 1/m'(1) at c = 1; beyond it c* = 1
    (ordered). The coordinate is r = ρ/ρ_crit, so the transition sits at r = 1 in every row and c*(r)
    is smooth even at small q, where the map is nearly the identity. Noisy (μ₂ > 1): c* < 1 for every
    ρ ∈ [0, 1] with no transition, and the coordinate is r = ρ itself.

    The slope F'(c*) = (1 − ρ) m'(c*)/μ₂ is kept as m'(c*)/μ₂, smooth in r, and multiplied by each
    point's own 1 − ρ; near 1 it is kept as 1 − F'(c*), for ξ_c = −1/ln F'(c*) near the critical line.
    """

    rho_crit: np.ndarray      # (n,); zero for the noisy tables
    CO: np.ndarray            # (n · N_r, 3): c*, m'(c*)/μ₂, 1 − F'(c*) at r = k/(N_r − 1), row i·N_r + k


def _ctable(key: _Key, mu2: float) -> _CTable:
    with _TABLE_LOCK:
        return _build_ctable(key, mu2)


@lru_cache(maxsize=8)
def _build_ctable(key: _Key, mu2: float) -> _CTable:
    tab = _build_table(key)
    c, s1, dm = tab.c, tab.s1, tab.dm
    n = s1.shape[0]
    s = 1.0 + s1
    with np.errstate(divide="ignore", invalid="ignore"):
        if mu2 == 1.0:
            rho = s1 / s
            rho_crit = rho[:, 0]
            r = rho / rho_crit[:, None]
            gap = tab.sd / s
        else:
            # ρ(c) = (μ₂c − m)/(μ₂ − m) with μ₂c − m = (μ₂ − 1)c + (1 − c)(s − 1), μ₂ − m = μ₂ − 1 + (1 − c)s
            rho_crit = np.zeros(n)
            omc = 1.0 - c
            r = ((mu2 - 1.0) * c + omc * s1) / (mu2 - 1.0 + omc * s)
            gap = 1.0 - (1.0 - r) * dm / mu2
    grid = np.linspace(0.0, 1.0, _N_R)
    CO = np.empty((n, _N_R, 3))
    CO[...] = (1.0, 1.0, 0.0)
    rows = np.flatnonzero(rho_crit > 0) if mu2 == 1.0 else range(n)
    for i in rows:
        x = np.maximum.accumulate(np.nan_to_num(r[i, ::-1], nan=-np.inf, posinf=np.inf))
        for col, y in enumerate((c, dm[i] / mu2, gap[i])):
            CO[i, :, col] = np.interp(grid, x, y[::-1])
    np.clip(CO[..., ::2], 0.0, 1.0, out=CO[..., ::2])
    return _CTable(np.maximum(np.nan_to_num(rho_crit), 0.0), CO.reshape(-1, 3))


# ----------------------------------------------------------------------------------------------------
# Fixed points, pointwise: bracketed on the tables, then solved with exact quadrature
# ----------------------------------------------------------------------------------------------------

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


def _q_star_exact(act: Activation, tab: _Moments, a: np.ndarray, sb2: np.ndarray) -> np.ndarray:
    """q* to rounding: bracketed on the table grid, then safeguarded Newton with exact quadrature."""
    lo, hi, slo, shi, div = _bracket_q_star(tab, a, sb2)
    out = np.full(a.shape, np.inf)
    ok = ~div
    lo, hi, slo, shi, aa, bb = lo[ok], hi[ok], slo[ok], shi[ok], a[ok], sb2[ok]
    x = np.where(slo == bb, lo, lo + (hi - lo) * np.clip((bb - slo) / (shi - slo), 0.0, 1.0))
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
        done = (np.abs(new - xa) <= 1e-15 * xa) | (hi[active] - lo[active] <= 1e-15 * hi[active]) | (f == 0)
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
    if idx.size:
        c[idx], slope[idx] = _polish_c(act, fx, idx, c[idx], V[inverse[idx]])
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


# ----------------------------------------------------------------------------------------------------
# Public theory, pointwise
# ----------------------------------------------------------------------------------------------------

def q_map(q, sigma_w, sigma_b, phi, mu2=1.0) -> np.ndarray:
    """The variance map q ↦ σ_w² μ₂ E_z[φ(√q z)²] + σ_b².

    Poole et al. 2016, eq. 3 (the length map), with the noise factor μ₂ of Pretorius et al. 2018,
    Sec. 3 (THEORY.md §2). Broadcasts over all numeric arguments; q = inf maps to inf for an unbounded φ.
    """
    act = _act(phi)
    shape, (q, sw, sb, mu) = _flat(q, sigma_w, sigma_b, mu2)
    a = sw * sw * mu
    v = _variance(act, q)
    with np.errstate(invalid="ignore", over="ignore"):
        out = np.where(a == 0.0, 0.0, a * v) + sb * sb
    return out.reshape(shape)


def c_map(c, q, sigma_w, sigma_b, phi, mu2=1.0) -> np.ndarray:
    """The correlation map at variance q: c ↦ (σ_w² E[φ(u₁)φ(u₂)] + σ_b²) / (σ_w² μ₂ E[φ(u)²] + σ_b²).

    u₁, u₂ have variance q and correlation c (Poole et al. 2016, Sec. 2, the correlation map, for two
    inputs of equal variance). Independent noise does not enter the covariance, only the variance in
    the denominator (Pretorius et al. 2018, Sec. 3). The kernel is evaluated at q clipped to
    [Q_MIN, Q_MAX], the q → 0 and q → ∞ limits.
    """
    act = _act(phi)
    shape, (c, q, sw, sb, mu) = _flat(c, q, sigma_w, sigma_b, mu2)
    return _c_map(c, q, sw, sb, act, mu, _QUAD).reshape(shape)


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


def q_star(sigma_w, sigma_b, phi, mu2=1.0) -> np.ndarray:
    """The fixed point q* of :func:`q_map` reached by iterating from large q.

    Poole et al. 2016, Sec. 2: the largest root of q = q_map(q), bracketed on a log-spaced grid and
    solved by Newton's method with exact quadrature. ``inf`` where the variance diverges (ReLU with
    σ_w² μ₂/2 > 1, linear with σ_w² μ₂ > 1, or a fixed point beyond ``Q_MAX``); 0 where it contracts
    to 0 (σ_b = 0, φ(0) = 0, χ₁ < 1 as q → 0). On the marginal line of a homogeneous φ with σ_b = 0
    (ReLU at σ_w = √(2/μ₂), linear at σ_w = 1/√μ₂) every q is a fixed point (qˡ = q¹ for all l); the
    value returned there is inf, the one reached from large q and the limit σ_b → 0⁺.
    """
    act = _act(phi)
    shape, fx = _fixed_exact(act, sigma_w, sigma_b, mu2)
    return fx.q_star.reshape(shape)


def chi1(sigma_w, sigma_b, phi, mu2=1.0) -> np.ndarray:
    """χ₁ = σ_w² μ₂ E_z[φ'(√q* z)²], the factor by which squared gradients grow per layer.

    Poole et al. 2016, eq. 7 (μ₂ = 1: the slope of the correlation map at c = 1), and with noise
    Pretorius et al. 2018, Sec. 3, as in THEORY.md §2 (the backward pass is masked by the same noise).
    Evaluated at q* (limits at q* = 0 or ∞, see the module notes).
    """
    act = _act(phi)
    shape, fx = _fixed_exact(act, sigma_w, sigma_b, mu2)
    return fx.chi1.reshape(shape)


def c_star(sigma_w, sigma_b, phi, mu2=1.0) -> np.ndarray:
    """The stable fixed point c* of :func:`c_map` at q*.

    Schoenholz et al. 2017, Sec. 3: without noise c* = 1 in the ordered phase (χ₁ < 1) and c* < 1 in
    the chaotic phase; with noise c* < 1 everywhere (Pretorius et al. 2018, Sec. 3).
    """
    act = _act(phi)
    shape, fx = _fixed_exact(act, sigma_w, sigma_b, mu2)
    return _c_exact(act, fx)[0].reshape(shape)


@dataclass(frozen=True)
class FixedPoint:
    """q*, χ₁ and c* of one (σ_w, σ_b, φ, μ₂), arrays shaped like the broadcast arguments."""

    q_star: np.ndarray
    chi1: np.ndarray
    c_star: np.ndarray


def fixed_point(sigma_w, sigma_b, phi, mu2=1.0) -> FixedPoint:
    """:func:`q_star`, :func:`chi1` and :func:`c_star` together, solving for q* once."""
    act = _act(phi)
    shape, fx = _fixed_exact(act, sigma_w, sigma_b, mu2)
    return FixedPoint(fx.q_star.reshape(shape), fx.chi1.reshape(shape), _c_exact(act, fx)[0].reshape(shape))


def depth_scales(sigma_w, sigma_b, phi, mu2=1.0) -> tuple[np.ndarray, np.ndarray]:
    """The depth scales (ξ_q, ξ_c) over which the variance and the correlation approach q* and c*.

    Schoenholz et al. 2017, Sec. 3: ξ_q⁻¹ = −ln(σ_w² μ₂ (E[φ'²] + E[φ φ''])), the slope of the
    q-map at q*, and ξ_c⁻¹ = −ln(σ_w² E[φ'(u₁) φ'(u₂)]) at q*, c*, the slope of the c-map at c*. The
    q-map's slope is taken by differentiating the Gaussian density (Stein's lemma), so kinked φ need no
    φ''. ξ_c = inf on the critical line (wherever the slope is within 1e-9 of 1), ξ_q = inf where
    q* = inf. Networks are trainable to depths of about 6 ξ_c (Schoenholz et al. 2017, Fig. 6).
    """
    act = _act(phi)
    shape, fx = _fixed_exact(act, sigma_w, sigma_b, mu2)
    _, slope = _c_exact(act, fx)
    xi_q = np.where(np.isfinite(fx.q_star), _xi(fx.slope_q), np.inf)
    return xi_q.reshape(shape), _xi(slope).reshape(shape)


def critical_sigma_w(sigma_b, phi, mu2=1.0) -> np.ndarray:
    """The σ_w of the order-to-chaos transition, χ₁(σ_w, σ_b) = 1, for each σ_b.

    Poole et al. 2016, Fig. 2; with noise Pretorius et al. 2018, Sec. 3: for ReLU σ_w = √(2/μ₂) (and
    σ_b = 0), for tanh σ_w = 1 at σ_b = 0. The smallest σ_w in [0.01, 100] where χ₁ crosses 1: a scan
    of the tables brackets it, then the Illinois variant of regula falsi with exact quadrature
    (bracketed like Brent's method, and vectorised over σ_b) solves it to rounding. inf where χ₁
    stays below 1.
    """
    act = _act(phi)
    shape, (sb, mu) = _flat(sigma_b, mu2)
    scan = np.geomspace(0.01, 100.0, 241)
    out = np.full(sb.size, np.inf)
    # the tables locate the crossing (χ₁ to ~1e-7), exact quadrature confirms the bracket
    g = np.array([phase_diagram(act, scan, [b], m).chi1[0] for b, m in zip(sb, mu, strict=True)]) - 1.0
    up = (g[:, :-1] < 0.0) & (g[:, 1:] >= 0.0)
    rows = np.flatnonzero(up.any(axis=1))
    j = np.argmax(up[rows], axis=1)
    lo, hi = scan[np.maximum(j - 1, 0)], scan[np.minimum(j + 2, scan.size - 1)]
    f_lo = chi1(lo, sb[rows], act, mu[rows]) - 1.0
    f_hi = chi1(hi, sb[rows], act, mu[rows]) - 1.0
    bracketed = (f_lo < 0.0) & (f_hi >= 0.0)
    rows, lo, hi, f_lo, f_hi = rows[bracketed], lo[bracketed], hi[bracketed], f_lo[bracketed], f_hi[bracketed]
    x = hi.copy()
    active = np.arange(rows.size)
    for _ in range(100):
        a_lo, a_hi, g_lo, g_hi = lo[active], hi[active], f_lo[active], f_hi[active]
        new = np.where(g_hi == 0.0, a_hi, a_hi - g_hi * (a_hi - a_lo) / (g_hi - g_lo))
        f = chi1(new, sb[rows[active]], act, mu[rows[active]]) - 1.0
        same = np.sign(f) == np.sign(g_hi)
        # Illinois: halve the stale end's value so that the bracket shrinks from both sides
        f_lo[active] = np.where(same, 0.5 * g_lo, g_hi)
        lo[active] = np.where(same, a_lo, a_hi)
        hi[active], f_hi[active] = new, f
        done = (np.abs(new - x[active]) <= 1e-15 * new) | (f == 0.0)
        x[active] = new
        active = active[~done]
        if active.size == 0:
            break
    out[rows] = x
    return out.reshape(shape)


# ----------------------------------------------------------------------------------------------------
# Phase diagram: every point of a (σ_b, σ_w) grid at once, from the tables
# ----------------------------------------------------------------------------------------------------

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
    n = tab.q.size
    qf = np.concatenate([[0.0], tab.q])
    vf = np.concatenate([[tab.v0], tab.V])
    vxf = np.concatenate([[0.0], tab.Vx])
    envelope = _suffix_min(qf - a[:, None] * vf)
    lo = np.empty((sb2.size, a.size), np.intp)
    for col in range(a.size):
        lo[:, col] = np.searchsorted(envelope[col], sb2, side="right")
    div = lo == n + 1
    lo = np.minimum(lo, n) - 1
    A, B = a[None, :], sb2[:, None]              # broadcast over (σ_b, σ_w) without copies
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
    A, B = a[None, :], sb2[:, None]
    shape = (sb2.size, a.size)
    if tab.homogeneous:
        av = np.broadcast_to(A * tab.v1, shape)
        q_star, rho = _homogeneous_fixed_point(av, B)
        qk, D, scale_free, slope_q = 1.0, tab.d1, tab.d1 / tab.v1, av
        i, t = np.full(shape, tab.i1), np.zeros(shape)
    else:
        q_star, i, t, vx = _q_star_grid(tab, a, sb2)
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


# ----------------------------------------------------------------------------------------------------
# Layer by layer
# ----------------------------------------------------------------------------------------------------

def q_trajectory(q0, sigma_w, sigma_b, phi, mu2=1.0, depth=30) -> np.ndarray:
    """The variances q⁰ … q^L of the pre-activations of layers 0 (the input) to L = ``depth``.

    q⁰ = ``q0`` = ‖x‖²/N, q¹ = σ_w² q⁰ + σ_b², qˡ = :func:`q_map`(qˡ⁻¹) for l ≥ 2 (Poole et al. 2016,
    eq. 3). Shape: the broadcast shape of the numeric arguments + (depth + 1,); ``inf`` from the layer
    where the variance overflows float64 on.
    """
    act = _act(phi)
    shape, (q, sw, sb, mu) = _flat(q0, sigma_w, sigma_b, mu2)
    _check_mu2(mu)
    return _q_layers(q, sw, sb, act, mu, depth).reshape(shape + (depth + 1,))


def c_trajectory(c0, q0, sigma_w, sigma_b, phi, mu2=1.0, depth=30) -> np.ndarray:
    """The correlations c⁰ … c^L between the pre-activations of two inputs of variance ``q0``.

    c⁰ = ``c0``, c¹ = (σ_w² q⁰ c⁰ + σ_b²)/q¹, cˡ = :func:`c_map`(cˡ⁻¹, qˡ⁻¹) for l ≥ 2 (Poole et al.
    2016, Sec. 2), the variances following :func:`q_trajectory`. Shape as for :func:`q_trajectory`.
    Each step uses 24 quadrature nodes per piece on z ∈ [−8, 8] so that a panel can redraw it while
    a slider moves: per layer the error in c is ≤ 2e-6 for |c| ≤ 0.9 and ≤ 5e-5 up to c = 0.999
    (hard tanh's kinks), far below the finite-width scatter it is compared with; in the chaotic phase
    the map's slope amplifies it along the layers.
    """
    act = _act(phi)
    shape, (c, q0_, sw, sb, mu) = _flat(c0, q0, sigma_w, sigma_b, mu2)
    _check_mu2(mu)
    qs = _q_layers(q0_, sw, sb, act, mu, depth)
    return _c_layers(c, q0_, qs, sw, sb, act, mu).reshape(shape + (depth + 1,))


def grad_trajectory(q0, sigma_w, sigma_b, phi, mu2=1.0, depth=30) -> np.ndarray:
    """Mean squared gradient of the output with respect to the pre-activations hˡ, l = 0 … L.

    Back-propagating a gradient of unit mean square from layer L, each step through a layer multiplies
    it by σ_w² μ₂ E[φ'(hˡ⁻¹)²] (Schoenholz et al. 2017, Sec. 4; Pretorius et al. 2018 with noise): at
    the fixed point, by χ₁. The last step, to the input x (entry 0), multiplies by σ_w² only (no φ,
    no noise). The forward variances follow :func:`q_trajectory`; entry L is 1. Glorot & Bengio
    (2010) Fig. 7 shows the same decay or growth in histograms.
    """
    act = _act(phi)
    shape, (q0_, sw, sb, mu) = _flat(q0, sigma_w, sigma_b, mu2)
    _check_mu2(mu)
    qs = _q_layers(q0_, sw, sb, act, mu, depth)
    return _grad_layers(qs, sw, act, mu).reshape(shape + (depth + 1,))


@dataclass(frozen=True)
class Trajectories:
    """q^l, c^l and the back-propagated gradient variance for l = 0 … L (one set of layers)."""

    q: np.ndarray
    c: np.ndarray
    grad: np.ndarray


def trajectories(q0, c0, sigma_w, sigma_b, phi, mu2=1.0, depth=30) -> Trajectories:
    """:func:`q_trajectory`, :func:`c_trajectory` and :func:`grad_trajectory` at one point at once,
    sharing the variances (what a panel redraws on every slider move)."""
    act = _act(phi)
    q0_, c_, sw, sb, mu = (np.array([float(v)]) for v in (q0, c0, sigma_w, sigma_b, mu2))
    _check_mu2(mu)
    qs = _q_layers(q0_, sw, sb, act, mu, depth)
    return Trajectories(qs[0], _c_layers(c_, q0_, qs, sw, sb, act, mu)[0], _grad_layers(qs, sw, act, mu)[0])


def _q_layers(q, sw, sb, act: Activation, mu, depth: int) -> np.ndarray:
    out = np.empty((q.size, depth + 1))
    out[:, 0] = q
    with np.errstate(over="ignore"):
        q = sw * sw * q + sb * sb
    for layer in range(1, depth + 1):
        out[:, layer] = q
        if layer < depth:
            q = q_map(q, sw, sb, act, mu)
    return out


def _c_layers(c, q0, qs, sw, sb, act: Activation, mu) -> np.ndarray:
    depth = qs.shape[1] - 1
    out = np.empty((c.size, depth + 1))
    out[:, 0] = c
    num = sw * sw * q0 * c + sb * sb
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(qs[:, 1] > 0.0, num / qs[:, 1], c)
    for layer in range(1, depth + 1):
        out[:, layer] = c
        if layer < depth:
            q = qs[:, layer]
            # Where q is inside the clip range of the kernel, the denominator q_map(q) is the next
            # layer's variance, already known.
            den = qs[:, layer + 1] if np.all((q >= Q_MIN) & (q <= Q_MAX)) else None
            c = _c_map(c, q, sw, sb, act, mu, _QUAD_FAST, den, _Z_FAST)
    return out


def _grad_layers(qs, sw, act: Activation, mu) -> np.ndarray:
    depth = qs.shape[1] - 1
    d = _moment(_square(act.dphi), np.clip(np.where(np.isnan(qs), 0.0, qs), Q_MIN, Q_MAX), act.breakpoints)
    factors = (sw * sw * mu)[:, None] * d[:, 1:depth]          # from layer l to l − 1, l = 2 … L
    out = np.ones((qs.shape[0], depth + 1))
    with np.errstate(over="ignore"):
        out[:, 1:depth] = np.cumprod(factors[:, ::-1], axis=1)[:, ::-1]
        out[:, 0] = out[:, 1] * sw * sw
    return out


# ----------------------------------------------------------------------------------------------------
# Simulation: real random networks (torch, float32)
# ----------------------------------------------------------------------------------------------------

def noise_mu2(noise: str = "none", keep_prob: float = 0.8, noise_std: float = 0.5) -> float:
    """μ₂ = E[ε²] of the multiplicative noise ε (E ε = 1): 1 without noise, 1/p for dropout with keep
    probability p (ε ∈ {0, 1/p}), 1 + s² for Gaussian ε ~ N(1, s²) (Pretorius et al. 2018, Sec. 2)."""
    if noise == "none":
        return 1.0
    if noise == "dropout":
        if not 0.0 < keep_prob <= 1.0:
            raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob}")
        return 1.0 / keep_prob
    if noise == "gaussian":
        return 1.0 + noise_std * noise_std
    raise ValueError(f"unknown noise {noise!r}; known: {', '.join(NOISES)}")


def _noise_atoms(noise: str, keep_prob: float, noise_std: float, nodes: int = 24):
    """Values and probabilities of the noise ε for expectations over it (quadrature for Gaussian ε)."""
    noise_mu2(noise, keep_prob, noise_std)
    if noise == "dropout":
        return np.array([1.0 / keep_prob, 0.0]), np.array([keep_prob, 1.0 - keep_prob])
    if noise == "gaussian":
        # Pieces split where ε changes sign: |ε| has a kink there that Gauss–Hermite would smear.
        z, w = gaussian._nodes(np.array([-1.0 / noise_std]), nodes)
        return 1.0 + noise_std * z, w / w.sum()
    return np.ones(1), np.ones(1)


def gradient_density(edges, grad_var: float, q: float, phi, noise: str = "none", keep_prob: float = 0.8,
                     noise_std: float = 0.5) -> np.ndarray:
    """The histogram, on bins with these ``edges``, of a back-propagated gradient δ = ε φ'(h) u:
    the probability of each bin over its width.

    Under the mean-field independence of the backward weights from the forward pass (Schoenholz et
    al. 2017, Sec. 4), u = (Wᵀδ⁺)_i ~ N(0, s²), h ~ N(0, q) and the noise ε (Pretorius et al. 2018) are
    independent, so δ is a Gaussian scale mixture, not a Gaussian: P(δ ≤ t) = E_{h,ε}[Φ(t / (s |ε φ'(h)|))]
    with s² = ``grad_var`` / (μ₂ E[φ'(h)²]), so that E[δ²] = ``grad_var``. Its density can be infinite
    at 0 (erf, tanh at large q), and δ = 0 exactly has mass where ε φ'(h) = 0 (ReLU for h < 0, dropped
    units): bin probabilities are finite in every case and are what a simulated histogram estimates.
    """
    act = _act(phi)
    edges = np.asarray(edges, float)
    eps, p_eps = _noise_atoms(noise, keep_prob, noise_std)
    qk = float(np.clip(q, Q_MIN, Q_MAX))
    d = float(_moment(_square(act.dphi), qk, act.breakpoints))
    if not (grad_var > 0 and math.isfinite(grad_var) and d > 0):
        return np.zeros(edges.size - 1)
    s = math.sqrt(grad_var / (float(p_eps @ (eps * eps)) * d))

    def cdf(u):  # E_ε P(δ ≤ edge | h = u), shape (edges, nodes); a point mass at 0 where ε φ'(u) = 0
        scale = s * np.abs(eps[:, None] * act.dphi(u)[None, :])
        t = edges[:, None, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(scale > 0, gaussian.normal_cdf(t / scale), np.where(t >= 0, 1.0, 0.0))
        return np.tensordot(p_eps, p, axes=(0, 1))

    return np.diff(gaussian.expect(cdf, qk, act.breakpoints, _QUAD)) / np.diff(edges)


@dataclass(frozen=True)
class Simulation:
    """Layer statistics of one simulated network (float32 on its device; float64 numpy here).

    Layer 0 is the input and layers 1 … L the pre-activations hˡ, aligned with :func:`q_trajectory`,
    :func:`c_trajectory` and :func:`grad_trajectory`. Where the float32 network overflowed the
    statistics are inf or NaN, and so is a correlation of zero vectors (q⁰ = 0).
    """

    seed: int
    q: np.ndarray               # (L+1,) mean of (hˡ)² over units and inputs; q[0] = ‖x‖²/N = q⁰
    c: np.ndarray               # (L+1,) correlation of the two inputs of a pair, mean over the pairs
    grad_norms: np.ndarray      # (L+1,) mean square of ∂(g·h^L)/∂hˡ (∂/∂x at l = 0), g ~ N(0, 1)
    sample_layers: np.ndarray   # (S,) the layers sampled below
    preact_samples: np.ndarray  # (S, n) values of hˡ at those layers (Glorot & Bengio 2010, Fig. 6)
    grad_samples: np.ndarray    # (S, n) values of ∂/∂hˡ at those layers (their Fig. 7)
    device: str
    seconds: float


def _layer_seed(seed: int, layer: int) -> int:
    return int(np.random.SeedSequence([seed, layer]).generate_state(1)[0])


def _input_pairs(torch, gen, pairs: int, width: int, q0: float, c0: float, dev):
    """2·pairs inputs of squared norm N q⁰ exactly, consecutive ones with correlation c⁰ exactly."""
    g = torch.randn(pairs, 2, width, generator=gen, device=dev, dtype=torch.float64)
    u1 = g[:, 0] / g[:, 0].norm(dim=1, keepdim=True)
    v = g[:, 1] - (g[:, 1] * u1).sum(dim=1, keepdim=True) * u1
    u2 = v / v.norm(dim=1, keepdim=True)
    scale = math.sqrt(width * q0)
    x2 = c0 * u1 + math.sqrt(max(1.0 - c0 * c0, 0.0)) * u2
    return (scale * torch.stack([u1, x2], dim=1)).reshape(2 * pairs, width).to(torch.float32)


@dataclass(frozen=True)
class Progress:
    """How far a running simulation has got (0 … 1); yielded between layers so that it can be stopped."""

    fraction: float


def simulate(phi, sigma_w, sigma_b, depth=30, width=1000, **options) -> Simulation:
    """One simulated network (see :func:`simulate_steps`), run to the end."""
    for item in simulate_steps(phi, sigma_w, sigma_b, depth, width, **options):
        if isinstance(item, Simulation):
            return item
    raise RuntimeError("the simulation ended without a result")  # unreachable: simulate_steps ends on one


def simulate_steps(phi, sigma_w, sigma_b, depth=30, width=1000, *, noise="none", keep_prob=0.8, noise_std=0.5,
                   q0=1.0, c0=0.5, pairs=16, seed=0, sample_layers=None, samples=4000, device=None
                   ) -> Iterator[Progress | Simulation]:
    """Propagate inputs forward and a random gradient backward through one random network.

    hˡ = Wˡ (φ(hˡ⁻¹) ⊙ εˡ⁻¹) + bˡ for l ≥ 2 and h¹ = W¹ x + b¹, with Wˡ_ij ~ N(0, σ_w²/N), bˡ_i ~ N(0, σ_b²)
    and multiplicative noise ε independent per unit and per input (``noise``: "none", "dropout" with
    keep probability ``keep_prob`` — ε ∈ {0, 1/p} — or "gaussian", ε ~ N(1, ``noise_std``²)), as in
    Poole et al. 2016 and Pretorius et al. 2018. The inputs are ``pairs`` pairs of vectors with
    ‖x‖²/N = ``q0`` and pair correlation ``c0``. The gradient of g·h^L, g ~ N(0, 1), is
    back-propagated (autograd through φ and the same noise masks) to every layer.

    Width N, depth L, float32 on ``core.device.resolve(device)``. Weights are drawn per layer from a
    seed derived from (``seed``, layer); beyond 512 MiB of weights they are drawn again for the
    backward pass instead of kept, so memory stays at the activations even at width 4000, depth 200.
    """
    import torch

    act = _act(phi)
    noise_mu2(noise, keep_prob, noise_std)
    if not -1.0 <= c0 <= 1.0 or q0 < 0.0:
        raise ValueError(f"need q0 ≥ 0 and −1 ≤ c0 ≤ 1, got q0 = {q0}, c0 = {c0}")
    if min(depth, width, pairs) < 1:
        raise ValueError(f"depth, width and pairs must be ≥ 1, got {depth}, {width}, {pairs}")
    start = time.perf_counter()
    dev = devices.resolve(device)
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(seed))
    N, L = int(width), int(depth)
    layers = _sample_layer_indices(L, sample_layers)

    kept: dict[int, object] = {}
    keep = 4 * N * N * L <= _WEIGHT_BYTES
    scale = sigma_w / math.sqrt(N)

    def weight(layer):
        if layer in kept:
            return kept.pop(layer)
        wgen = torch.Generator(device=dev)
        wgen.manual_seed(_layer_seed(int(seed), layer))
        # Standard normal; the σ_w/√N goes into the products (alpha=…), saving a pass over N² numbers.
        w = torch.randn(N, N, generator=wgen, device=dev)
        if keep:
            kept[layer] = w
        return w

    def noise_mask(shape):
        if noise == "dropout":
            return (torch.rand(shape, generator=gen, device=dev) < keep_prob).float() / keep_prob
        if noise == "gaussian":
            return 1.0 + noise_std * torch.randn(shape, generator=gen, device=dev)
        return None

    with torch.no_grad():
        x = _input_pairs(torch, gen, pairs, N, q0, c0, dev)
        hs, masks = [x], [None]
        a = x
        for layer in range(1, L + 1):
            if layer % _YIELD_EVERY == 0:
                yield Progress(0.5 * layer / L)
            bias = sigma_b * torch.randn(N, generator=gen, device=dev)
            h = torch.addmm(bias, a, weight(layer).T, alpha=scale)
            hs.append(h)
            if layer < L:
                mask = noise_mask(h.shape)
                masks.append(mask)
                a = act.torch(h) if mask is None else act.torch(h) * mask
        grads = [None] * (L + 1)
        grads[L] = torch.randn(h.shape, generator=gen, device=dev)
        for layer in range(L, 0, -1):
            if layer % _YIELD_EVERY == 0:
                yield Progress(1.0 - 0.5 * layer / L)
            back = torch.mm(grads[layer], weight(layer)).mul_(scale)
            if layer == 1:
                grads[0] = back
                break
            mask = masks[layer - 1]
            with torch.enable_grad():
                hh = hs[layer - 1].detach().requires_grad_(True)
                upstream = back if mask is None else back * mask
                # φ acts elementwise, so the vector-Jacobian product is the gradient of a scalar; with
                # a tensor grad_outputs torch imports sympy on first use (0.5 s, 30 MB).
                (grads[layer - 1],) = torch.autograd.grad((act.torch(hh) * upstream).sum(), hh)
        stats = torch.stack([torch.stack([(t * t).mean() for t in hs]),
                             torch.stack([_pair_correlation(t) for t in hs]),
                             torch.stack([(t * t).mean() for t in grads])]).double().cpu().numpy()
        pre = torch.stack([_strided(hs[k], samples) for k in layers]).cpu().numpy()
        grad = torch.stack([_strided(grads[k], samples) for k in layers]).cpu().numpy()
    yield Simulation(int(seed), stats[0], stats[1], stats[2], np.asarray(layers), pre, grad,
                     devices.describe(dev), time.perf_counter() - start)


def _pair_correlation(h):
    pairs = h.double().reshape(-1, 2, h.shape[1])
    dot = (pairs[:, 0] * pairs[:, 1]).sum(dim=1)
    return (dot / (pairs[:, 0].norm(dim=1) * pairs[:, 1].norm(dim=1))).mean()


def _strided(t, count: int):
    flat = t.reshape(-1)
    return flat[:: max(1, flat.numel() // count)][:count]


def _sample_layer_indices(depth: int, layers) -> list[int]:
    if layers is None:
        return sorted({int(round(v)) for v in np.linspace(1, depth, min(depth, 5))})
    out = sorted({int(v) for v in layers})
    if not out or out[0] < 0 or out[-1] > depth:
        raise ValueError(f"sample_layers must lie in 0 … {depth}, got {layers}")
    return out


def simulate_seeds(phi, sigma_w, sigma_b, depth=30, width=1000, *, seeds=3, seed=0, progress=False,
                   **options) -> Iterator[Simulation | Progress]:
    """One :func:`simulate` per seed ``seed``, ``seed + 1``, … as each finishes (stop iterating to cancel).

    With ``progress``, :class:`Progress` items (overall fraction) come in between, every few layers, so
    that a caller can show a bar and stop a wide, deep run mid-network. ``options`` are :func:`simulate`'s.
    """
    for k in range(int(seeds)):
        for item in simulate_steps(phi, sigma_w, sigma_b, depth, width, seed=int(seed) + k, **options):
            if isinstance(item, Simulation):
                yield item
            elif progress:
                yield Progress((k + item.fraction) / int(seeds))


# ----------------------------------------------------------------------------------------------------
# Parameters of the panel
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PropagationParams(Params):
    """What the Signal Propagation panel lets the user set."""

    phi: str = param("tanh", "φ", choices=NAMES, help="activation function")
    alpha: float = param(0.5, "α", lo=-2.0, hi=2.0, step=0.05,
                         help="only for shifted ReLU: φ(x) = max(x + α, 0) − α")
    sigma_w: float = param(1.5, "σ_w", lo=0.05, hi=4.0, step=0.01, help="weight standard deviation × √N")
    sigma_b: float = param(0.05, "σ_b", lo=0.0, hi=2.0, step=0.01, help="bias standard deviation")
    depth: int = param(30, "depth L", lo=1, hi=200, step=1)
    width: int = param(1000, "width N", lo=10, hi=4000, step=10,
                       help="units per layer of the simulated networks")
    noise: str = param("none", "noise", choices=NOISES, help="multiplicative noise on the activations")
    keep_prob: float = param(0.8, "keep p", lo=0.05, hi=1.0, step=0.01, help="dropout keep probability")
    noise_std: float = param(0.5, "noise s", lo=0.0, hi=2.0, step=0.01, help="Gaussian noise ε ~ N(1, s²)")
    q0: float = param(1.0, "q⁰", lo=0.0, hi=20.0, step=0.1, help="input variance ‖x‖²/N")
    c0: float = param(0.5, "c⁰", lo=-1.0, hi=1.0, step=0.01, help="correlation of the two inputs")
    seeds: int = param(3, "networks", lo=1, hi=10, step=1, help="simulated networks, one dot each")
    seed: int = param(0, "seed", lo=0, hi=2**31 - 1, step=1)
    heatmap: str = param("xi_c", "heat map", choices=("xi_c", "log_chi1"),
                         help="ξ_c or log χ₁ over (σ_w, σ_b)")

    @property
    def mu2(self) -> float:
        """E[ε²] of the selected noise (:func:`noise_mu2`)."""
        return noise_mu2(self.noise, self.keep_prob, self.noise_std)

    @property
    def activation(self) -> Activation:
        """φ as an Activation (with α for the shifted ReLU)."""
        if self.phi == "shifted_relu":
            return activations.get(self.phi, alpha=self.alpha)
        return activations.get(self.phi)

    def simulation_kwargs(self) -> dict:
        """Keyword arguments of :func:`simulate_seeds` for these parameters (add ``device`` if wanted)."""
        return dict(phi=self.activation, sigma_w=self.sigma_w, sigma_b=self.sigma_b, depth=self.depth,
                    width=self.width, noise=self.noise, keep_prob=self.keep_prob, noise_std=self.noise_std,
                    q0=self.q0, c0=self.c0, seeds=self.seeds, seed=self.seed)
