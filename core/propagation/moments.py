"""Gaussian moments of φ, E_z[f(√q z)] and their slopes in ln q, by exact quadrature; the Mehler weights."""

from __future__ import annotations

import numpy as np

from core import activations, gaussian
from core.activations import Activation

Q_MIN = 1e-10
"""Variances below this count as the q → 0 limit for scale-free quantities."""
Q_MAX = 1e10
"""A fixed point beyond this counts as divergent (``inf``); q → ∞ limits are evaluated here."""
_QUAD_FAST = 24         # … for layer-by-layer trajectories drawn live, on [−8, 8] (see c_trajectory)
_Z_FAST = 8.0           # [−10, 10] wastes a fifth of the nodes where the mass is 1e-15: 100× the error
_QUAD = 48              # Gauss–Legendre nodes per piece (48: exact to rounding even on one unsplit piece)


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
