"""Layer by layer: the variances, correlations and gradient variances of layers 0 … L.

Broadcast over the numeric arguments and done in blocks of ``_BLOCK`` points, so memory stays bounded
(each point holds depth + 1 values per quantity, and its gradient needs a 1-D quadrature per layer).
Above ``EXACT_MAX`` points the correlation steps use Mehler's series instead of the 24-node bivariate
quadrature (see :func:`c_trajectory` for what each guarantees).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.activations import Activation
from core.propagation.fixed import _check_mu2, _flat
from core.propagation.moments import _QUAD_FAST, _Z_FAST, Q_MAX, Q_MIN, _act, _moment, _square
from core.propagation.theory import EXACT_MAX, _c_map, _c_map_series, q_map

_BLOCK = 1024        # points per block: (depth + 1) values each, and ~300 quadrature nodes per layer


def q_trajectory(q0, sigma_w, sigma_b, phi, mu2=1.0, depth=30) -> np.ndarray:
    """The variances q⁰ … q^L of the pre-activations of layers 0 (the input) to L = ``depth``.

    q⁰ = ``q0`` = ‖x‖²/N, q¹ = σ_w² q⁰ + σ_b², qˡ = :func:`q_map`(qˡ⁻¹) for l ≥ 2 (Poole et al. 2016,
    eq. 3). Shape: the broadcast shape of the numeric arguments + (depth + 1,); ``inf`` from the layer
    where the variance overflows float64 on.
    """
    act = _act(phi)
    shape, (q, sw, sb, mu) = _flat(q0, sigma_w, sigma_b, mu2)
    _check_mu2(mu)
    out = np.empty((q.size, depth + 1))
    for b in _blocks(q.size):
        out[b] = _q_layers(q[b], sw[b], sb[b], act, mu[b], depth)
    return out.reshape(shape + (depth + 1,))


def _blocks(n: int):
    return [slice(start, start + _BLOCK) for start in range(0, n, _BLOCK)]


def c_trajectory(c0, q0, sigma_w, sigma_b, phi, mu2=1.0, depth=30) -> np.ndarray:
    """The correlations c⁰ … c^L between the pre-activations of two inputs of variance ``q0``.

    c⁰ = ``c0``, c¹ = (σ_w² q⁰ c⁰ + σ_b²)/q¹, cˡ = :func:`c_map`(cˡ⁻¹, qˡ⁻¹) for l ≥ 2 (Poole et al.
    2016, Sec. 2), the variances following :func:`q_trajectory`. Shape as for :func:`q_trajectory`.
    Each step uses 24 quadrature nodes per piece on z ∈ [−8, 8] so that a panel can redraw it while
    a slider moves: per layer the error in c is ≤ 2e-6 for |c| ≤ 0.9 and ≤ 5e-5 up to c = 0.999
    (hard tanh's kinks), far below the finite-width scatter it is compared with; in the chaotic phase
    the map's slope amplifies it along the layers. Above ``EXACT_MAX`` points each step is Mehler's
    series instead (:func:`core.propagation.c_map`'s fast path: ≤ 1e-4 per layer, exact quadrature
    where the series is not trusted), ~2 µs per point and layer.
    """
    act = _act(phi)
    shape, (c, q0_, sw, sb, mu) = _flat(c0, q0, sigma_w, sigma_b, mu2)
    _check_mu2(mu)
    out = np.empty((c.size, depth + 1))
    fast = c.size > EXACT_MAX
    for b in _blocks(c.size):
        qs = _q_layers(q0_[b], sw[b], sb[b], act, mu[b], depth)
        out[b] = _c_layers(c[b], q0_[b], qs, sw[b], sb[b], act, mu[b], fast)
    return out.reshape(shape + (depth + 1,))


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
    out = np.empty((q0_.size, depth + 1))
    for b in _blocks(q0_.size):
        out[b] = _grad_layers(_q_layers(q0_[b], sw[b], sb[b], act, mu[b], depth), sw[b], act, mu[b])
    return out.reshape(shape + (depth + 1,))


@dataclass(frozen=True)
class Trajectories:
    """q^l, c^l and the back-propagated gradient variance for l = 0 … L, each shaped (…, depth + 1)."""

    q: np.ndarray
    c: np.ndarray
    grad: np.ndarray


def trajectories(q0, c0, sigma_w, sigma_b, phi, mu2=1.0, depth=30) -> Trajectories:
    """:func:`q_trajectory`, :func:`c_trajectory` and :func:`grad_trajectory` at once, sharing the
    variances (what a panel redraws on every slider move). Broadcasts like them: each array has the
    broadcast shape of the numeric arguments + (depth + 1,), so (depth + 1,) at one point."""
    act = _act(phi)
    shape, (q0_, c_, sw, sb, mu) = _flat(q0, c0, sigma_w, sigma_b, mu2)
    _check_mu2(mu)
    q, c, grad = (np.empty((q0_.size, depth + 1)) for _ in range(3))
    fast = c_.size > EXACT_MAX
    for b in _blocks(q0_.size):
        q[b] = _q_layers(q0_[b], sw[b], sb[b], act, mu[b], depth)
        c[b] = _c_layers(c_[b], q0_[b], q[b], sw[b], sb[b], act, mu[b], fast)
        grad[b] = _grad_layers(q[b], sw[b], act, mu[b])
    full = shape + (depth + 1,)
    return Trajectories(q.reshape(full), c.reshape(full), grad.reshape(full))


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


def _c_layers(c, q0, qs, sw, sb, act: Activation, mu, fast: bool = False) -> np.ndarray:
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
            if fast:
                c = _c_map_series(c, q, sw, sb, act, mu, den)
            else:
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
