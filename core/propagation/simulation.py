"""Simulation: real random networks (torch, float32, imported only when a simulation runs), the noise
models, and the histogram of back-propagated gradients a simulation is compared with.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from core import device as devices
from core import gaussian
from core.propagation.moments import _QUAD, Q_MAX, Q_MIN, _act, _moment, _square

NOISES = ("none", "dropout", "gaussian")
_YIELD_EVERY = 8              # layers between the progress reports (and chances to stop) of a simulation
_WEIGHT_BYTES = 512 * 2**20   # a simulation keeps its weights for the backward pass up to this size


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

    # no torch.no_grad() around this: the generator yields progress from inside, and grad mode is per
    # thread, so a consumer's own autograd would be off between partials (nothing here requires grad)
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
