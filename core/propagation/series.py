"""The correlation kernel on many points at once: Mehler's series with a power-law tail split by parity.

For two Gaussians of variance q and correlation c, E[φ(u₁)φ(u₂)] = V(q) m(c) with the normalised kernel
m(c) = Σ_k w_k(q) c^k, w_k = a_k(q)²/V(q) ≥ 0, Σ_k w_k = 1 (Mehler's formula; Poole et al. 2016, SM).
The first K = 128 weights are kept; the rest, of mass T = 1 − Σ_{k<K} w_k, is the power-law tail of
:func:`core.propagation.tabulation._power_law_tail` (value and slope at c = 1 exact). At c < 0 the
even and odd orders of the tail enter with opposite signs, so the tail is split by parity: the even part
of φ, (φ(x) + φ(−x))/2, carries exactly the even orders, which fixes the even share of T and makes the
value at c = −1 exact too.

Accuracy (normalised kernel, absolute, measured against the exact bivariate quadrature over
c ∈ [−1, 1]): where T ≤ 1e-9 (tanh and erf for q ≲ 3, GELU for q ≲ 10) the series is exact to ~1e-12;
up to T = 3e-3 (tanh and erf up to q ≈ 50–70, hard tanh up to q ≈ 40; ReLU, shifted ReLU, ELU, GELU at
every q) the error stays below 6e-5 (hard tanh; ≤ 2e-5 for the smooth φ), largest near c = ±1. Beyond
T = 3e-3 (a bounded φ at large q, close to a step function, where the error would grow to 1e-3) the
series is not used: :func:`kernel` flags those points and the caller falls back to exact quadrature.
Weights at up to ``OWN_Q_MAX`` distinct variances are computed at each variance itself; beyond that
the activation's table (the same series on a (ln q, c) grid) is interpolated, which adds ≲ 1e-8.
"""

from __future__ import annotations

import numpy as np

from core.activations import Activation
from core.propagation.moments import _mehler_weights, _moment, _square
from core.propagation.phase import _lagrange4
from core.propagation.tabulation import (
    _TABLE_TERMS,
    _TAIL_EXPONENTS,
    _even_tail,
    _Key,
    _power_law_tail,
    _table,
)

OWN_Q_MAX = 16
"""Up to this many distinct variances the Mehler weights are computed at each one exactly."""
TAIL_MAX = 3e-3
"""Tail mass beyond which the series is not trusted (exact quadrature is used there instead)."""
TOLERANCE = 1e-4
"""What the series guarantees where it is used: |Δm(c)| ≤ 1e-4 (measured ≤ 6e-5)."""

_CHUNK = 4096           # points per block where each holds a row of weights (128) or of tail orders (160)
_TABLE_CHUNK = 65536    # points per block of the table lookups (a few numbers each)


def _rows_at(act: Activation, q: np.ndarray):
    """Weights (m, K), tail masses (m, E) and even tail mass (m,) at each variance q itself."""
    v = np.maximum(_moment(_square(act.phi), q, act.breakpoints), 1e-300)
    d = _moment(_square(act.dphi), q, act.breakpoints)
    w, T, P = _mehler_weights(act, q, _TABLE_TERMS, v, d)
    return w, _power_law_tail(T, P, _TABLE_TERMS), _even_tail(act, q, v, w, T)


def _stencil(x: np.ndarray, n: int):
    """Four consecutive nodes i0 … i0 + 3 (inside 0 … n − 1) around each x, and their cubic Lagrange weights."""
    i0 = np.clip(np.floor(x).astype(np.intp) - 1, 0, n - 4)
    return i0, _lagrange4(x - i0 - 1.0)


def _kernel_from_table(act: Activation, q: np.ndarray, c: np.ndarray):
    """m(c) by bicubic interpolation of the activation's table: in ln q (32 rows a decade) and in
    u = √(1 − |c|) (513 columns), the variable in which a kinked φ's (1 − c)^3/2 term is smooth. For
    c ≥ 0 the table holds s(c) − 1 with m = 1 − (1 − c) s, exact to rounding near c = 1; for c < 0 the even
    orders' part me gives m(c) = 2 me(|c|) − m(|c|). Also the largest tail mass of the four rows."""
    tab = _table(_Key(act))
    n, nu = tab.s1.shape
    if act.homogeneous:         # every row is the same scale-free kernel: one row, no interpolation in q
        rows, wq = np.full(q.shape, tab.i1 - 1), (0.0, 1.0, 0.0, 0.0)
    else:
        rows, wq = _stencil((np.log(q) - tab.x0) / tab.h, n)
    ac = np.abs(c)
    cols, wc = _stencil(np.sqrt(np.maximum(1.0 - ac, 0.0)) * (nu - 1), nu)
    s1 = np.zeros(c.shape)
    me = np.zeros(c.shape)
    for r in range(4):
        if act.homogeneous and r != 1:
            continue
        for k in range(4):
            wgt = wq[r] * wc[k]
            flat = (rows + r) * nu + cols + k
            s1 += wgt * np.take(tab.s1, flat)
            me += wgt * np.take(tab.me, flat)
    m_abs = 1.0 - (1.0 - ac) * (1.0 + s1)
    total = tab.tail.sum(axis=1)
    worst = np.max([total[rows + r] for r in range(4)], axis=0)
    return np.where(c >= 0.0, m_abs, 2.0 * me - m_abs), worst


def kernel(act: Activation, q: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """m(c) at variance q for flat arrays ``q`` (clipped to the table's range) and ``c`` ∈ [−1, 1].

    Returns the normalised kernel and a mask of the points where the series is trusted (tail mass ≤
    ``TAIL_MAX``); elsewhere the value is a rough one that the caller replaces by exact quadrature.
    For up to ``OWN_Q_MAX`` distinct variances and a few thousand points the series is summed at each
    variance; beyond, the activation's table (the same series on a grid, built once) is interpolated.
    """
    qk = np.ones_like(q) if act.homogeneous else q      # a homogeneous φ's normalised kernel is q-free
    uq, inverse = np.unique(qk, return_inverse=True) if c.size <= _CHUNK else (qk, None)
    if uq.size > OWN_Q_MAX:
        out = np.empty(c.shape)
        worst = np.empty(c.shape)
        for start in range(0, c.size, _TABLE_CHUNK):
            part = slice(start, start + _TABLE_CHUNK)
            out[part], worst[part] = _kernel_from_table(act, qk[part], c[part])
        return out, worst <= TAIL_MAX
    w, tail, even = _rows_at(act, uq)
    total = tail.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        even_share = np.where(total > 0.0, even / total, 0.0)
    out = np.empty(c.shape)
    log_e = _TAIL_EXPONENTS
    for start in range(0, c.size, _CHUNK):
        part = slice(start, start + _CHUNK)
        cc, rows = c[part], inverse[part]
        W = w[rows]
        m = W[:, -1].copy()
        for k in range(W.shape[1] - 2, -1, -1):
            m *= cc
            m += W[:, k]
        has_tail = total[rows] > 0.0
        if has_tail.any():
            ct, rt = cc[has_tail], rows[has_tail]
            with np.errstate(divide="ignore", under="ignore"):
                powers = np.exp(log_e[None, :] * np.log(np.abs(ct))[:, None])      # |c|^e, 0 at c = 0
            sign = np.where(ct >= 0.0, 1.0, -1.0)
            parity = even_share[rt] + sign * (1.0 - even_share[rt])
            m[has_tail] += parity * np.einsum("ij,ij->i", powers, tail[rt])
        out[part] = m
    return out, total[inverse] <= TAIL_MAX
