"""Tables per activation on a log-q grid: V(q), D(q) = E[φ'²], their slopes, and the correlation kernel
and fixed point, built once (cached, lock-protected) for the phase diagram and the grid paths.

A registered activation's tables are also kept on disk (:mod:`core.disk_cache`): building them is most of
what a launch waits for before its first phase diagram, and they change only with the code that builds them.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np

from core import activations, disk_cache
from core.activations import Activation
from core.propagation.moments import Q_MAX, Q_MIN, _act, _mehler_weights, _moment, _moment_slope, _square

_PER_DECADE = 32        # table points per decade of q
_TABLE_TERMS = 128      # Mehler orders in the tables (plus a one-term tail model)
_TABLE_LOCK = threading.RLock()
_MOMENTS_LOCK = threading.Lock()   # its own, so a slider's redraw never waits for a phase diagram's table
_N_U = 513              # c = 1 − u², u uniform: the grid on which the correlation table is solved
_N_R = 513              # ρ (or ρ̃) grid of the correlation table


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
    w: np.ndarray             # (n, K) the normalised Mehler weights a_k(q)²/V(q), k < K
    tail: np.ndarray          # (n, len(_TAIL_EXPONENTS)) the power-law tail's masses on orders _TAIL_EXPONENTS
    tail_even: np.ndarray     # (n,) the tail's mass on even orders (see core.propagation.series)
    me: np.ndarray            # (n, N_u) the even orders' part of m(c) on the grid c: m(−c) = 2 me(c) − m(c)


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


_MOMENT_ARRAYS = ("q", "V", "Vx", "D", "Dx")
_MOMENT_SCALARS = ("homogeneous", "x0", "h", "v0", "v1", "d1", "i1")
_TABLE_ARRAYS = ("c", "s1", "sd", "dm", "w", "tail", "tail_even", "me")
_CTABLE_ARRAYS = ("rho_crit", "CO")
_SOURCES = ("core.activations", "core.gaussian", "core.propagation.moments", __name__)


def _registered(act: Activation) -> bool:
    """Whether ``act`` is the registry's own φ of that name (whose code the disk entry's fingerprint covers)."""
    try:
        ref = activations.get(act.name, **({"alpha": act.alpha} if act.name == "shifted_relu" else {}))
    except (KeyError, TypeError):
        return False
    code = [getattr(f, "__code__", f) for f in (act.phi, act.dphi, act.d2phi)]
    return code == [getattr(f, "__code__", f) for f in (ref.phi, ref.dphi, ref.d2phi)] and _Key(ref) == _Key(act)


@lru_cache(maxsize=16)
def _entry(key: _Key) -> tuple[str, str] | None:
    """(label, digest) of ``key``'s disk entry; None for a φ not from the registry (its code is not ours)."""
    if not _registered(key.act):
        return None
    digest = disk_cache.fingerprint(_SOURCES, key.key, _PER_DECADE, _TABLE_TERMS, _N_U, _N_R)
    label = key.act.name + (f"{key.act.alpha:g}" if key.act.name == "shifted_relu" else "")
    return None if digest is None else (label, digest)


def _stored(key: _Key, names: tuple[str, ...]):
    entry = _entry(key)
    return None if entry is None else disk_cache.read("tables", *entry, names)


@lru_cache(maxsize=8)
def _build_moments(key: _Key) -> _Moments:
    stored = _stored(key, _MOMENT_ARRAYS)
    if stored is not None:
        arrays, info = stored
        return _Moments(**arrays, **{k: info[k] for k in _MOMENT_SCALARS})
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
    stored = _stored(key, _TABLE_ARRAYS)
    if stored is not None:
        return _Table(**{f.name: getattr(m, f.name) for f in fields(_Moments)}, **stored[0])
    w, T, P = _mehler_weights(key.act, m.q, _TABLE_TERMS, m.V, m.D)
    u = np.linspace(0.0, 1.0, _N_U)
    c = 1.0 - u * u
    tail = _power_law_tail(T, P, _TABLE_TERMS)
    s1, sd, dm = _kernel_on_grid(w, tail, c)
    even = _even_tail(key.act, m.q, m.V, w, T)
    with np.errstate(divide="ignore"):
        tail_at_c = tail @ np.exp(_TAIL_EXPONENTS[:, None] * np.log(c)[None, :])     # Σ masses c^e
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(T > 0.0, even / T, 0.0)
    me = w[:, ::2] @ (c[None, :] ** np.arange(0, _TABLE_TERMS, 2)[:, None]) + share[:, None] * tail_at_c
    return _Table(**{f.name: getattr(m, f.name) for f in fields(_Moments)}, c=c, s1=s1, sd=sd, dm=dm, w=w,
                  tail=tail, tail_even=even, me=me)


def _even_tail(act: Activation, q: np.ndarray, v: np.ndarray, w: np.ndarray, T: np.ndarray) -> np.ndarray:
    """The tail's mass on even orders: E[φ_e(√q z)²]/V(q) − Σ_{even k < K} w_k, φ_e(x) = (φ(x) + φ(−x))/2.

    The even part of φ carries exactly the even Hermite orders, so this splits the tail T by parity; the
    odd share is T minus it. At c < 0 the two shares enter with opposite signs (c^k = ±|c|^k).
    """
    def even_square(u):
        return np.square(0.5 * (act.phi(u) + act.phi(-u)))

    bp = tuple(sorted(set(act.breakpoints) | {-b for b in act.breakpoints}))
    with np.errstate(over="ignore", invalid="ignore"):
        ve = _moment(even_square, q, bp) / v
    return np.clip(ve - w[:, ::2].sum(axis=1), 0.0, T)


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
    if mu2 == 1.0:
        stored = _stored(key, _CTABLE_ARRAYS)
        if stored is not None:
            return _CTable(**stored[0])
    tab = _build_table(key)
    ct = _solve_ctable(tab, mu2)
    entry = _entry(key)
    if mu2 == 1.0 and entry is not None:
        disk_cache.write("tables", *entry, {name: getattr(tab, name) for name in _MOMENT_ARRAYS + _TABLE_ARRAYS}
                         | {name: getattr(ct, name) for name in _CTABLE_ARRAYS},
                         {k: getattr(tab, k) for k in _MOMENT_SCALARS})
    return ct


def _solve_ctable(tab: _Table, mu2: float) -> _CTable:
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
