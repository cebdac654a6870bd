"""Simulation: the Jacobian of a real torch network, layer by layer, and its eigenvalues."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from core import activations
from core import device as devices
from core.activations import Activation
from core.pace import pace
from core.spectra.layer import _effective_q
from core.spectra.solve import _check_theory_args
from core.spectra.theory import _exp


def jacobian_spectra(phi: str | Activation, sigma_w: float, sigma_b: float, depth: int, width: int,
                     weights: str = "orthogonal", seed: int = 0, device=None,
                     depths: Iterable[int] | None = None, *, log: bool = False, progress: bool = False
                     ) -> Iterator[tuple[int, np.ndarray] | Progress]:
    """Yield ``(l, eigenvalues of J_l J_lᵀ)`` at depths l = 1, 2, 4, …, L (or ``depths``) as J grows.

    The network: ``h^l = W^l φ(h^{l−1}) + b^l`` with W^l Gaussian N(0, σ_w²/N) or σ_w × Haar orthogonal
    (QR of a Gaussian matrix, signs of R's diagonal moved into Q: Mezzadri 2007), b^l ~ N(0, σ_b²), and
    h^0 ~ N(0, q*) per unit so every layer sits at the fixed point. ``J_l = W^l D^{l−1} J_{l−1}`` with
    D = diag φ'(h) (φ' by torch autograd through ``Activation.torch``), in float32 on ``device``.

    Numerics: orthogonal layers never form Q; ``ormqr`` applies the Householder reflectors from
    ``geqrf`` directly (half the flops of QR + matmul). J is rescaled to unit RMS after every layer and
    its log-scale kept apart, so χ^L far outside float32 neither overflows nor underflows; positively
    homogeneous φ (ReLU, linear) likewise keep h at unit RMS, scaling the biases to match, which is
    exact for them. The eigen-solve forms JJᵀ in float64 from the float32 J (BLAS ``syrk`` in blocks)
    and calls LAPACK's ``syevr`` in place: about 0.15 s at N = 1000, and eigenvalues accurate to
    1e-16 λ_max instead of float32's 1e-7 λ_max — a log-x histogram of a deep ReLU net spans many
    decades. The float32 product itself limits trust to λ ≳ 1e-12 λ_max; exact zeros (ReLU) come out
    near 1e-16 λ_max. Memory: J, one spare buffer and the Householder factors (factored in place) —
    three N × N float32 matrices — and at each eigen-solve J plus one N × N float64 matrix.

    Stopping the iteration cancels the computation. The same ``seed`` gives the same network whatever
    ``depths`` is, so ``jacobian_spectrum(…, depth=l)`` equals the spectrum yielded at l.

    Parameters
    ----------
    log : bool
        Yield ln λ (−inf for exact zeros) instead of λ; for spectra outside the float64 range.
    progress : bool
        Also yield a :class:`Progress` twice in every layer — once its weights are drawn (and, orthogonal,
        factored), once J has been multiplied by them — so that a caller can show how far the network has
        got and stop it (by closing the generator) within half a layer rather than only at the reported
        depths, which for a wide, deep net are minutes apart.

    Raises
    ------
    ValueError
        Bad arguments; :class:`NoFixedPointError` when φ has no finite q* (see :func:`theory_density`).
    """
    act = activations.resolve(phi)
    _check_theory_args(sigma_w, sigma_b, depth, weights)
    if not (isinstance(width, int | np.integer) and width >= 1):
        raise ValueError(f"width must be a whole number ≥ 1, got {width!r}")
    wanted = _depth_schedule(depth, depths)
    q_in = _effective_q(act, float(sigma_w), float(sigma_b))
    return _simulate(act, float(sigma_w), float(sigma_b), int(depth), int(width), weights, int(seed),
                     device, wanted, log, q_in, bool(progress))


def _depth_schedule(depth: int, depths: Iterable[int] | None) -> list[int]:
    if depths is None:
        out = {1 << k for k in range(depth.bit_length()) if (1 << k) <= depth}
        out.add(int(depth))
        return sorted(out)
    out = sorted({int(d) for d in depths})
    if not out or out[0] < 1 or out[-1] > depth:
        raise ValueError(f"depths must lie in [1, {depth}], got {out}")
    return out


@dataclass(frozen=True)
class Progress:
    """How far :func:`jacobian_spectra` has got: ``layer`` (1 … L) and the overall ``fraction`` (0 … 1)."""

    layer: int
    fraction: float


def _simulate(act, sigma_w, sigma_b, depth, width, weights, seed, device, wanted, log, q_in, progress):
    import torch

    dev = devices.resolve(device)
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    n = width
    h = torch.randn(n, generator=gen, device=dev).mul_(math.sqrt(q_in))
    # J, its spare buffer and the Householder factors are column-major (transposed views), the layout
    # LAPACK works in: torch then factors and applies them without copying N × N matrices around
    J = torch.eye(n, device=dev).T
    buf: torch.Tensor | None = None
    log_j = 0.0        # J_true = e^{log_j} J
    log_h = 0.0        # h_true = e^{log_h} h (homogeneous φ only)
    dead = False       # J is exactly zero
    wanted_set = set(wanted)
    for layer in range(1, depth + 1):
        pace()
        d = _dphi(act, h)
        x = act.torch(h)
        if buf is None:
            buf = torch.empty(n, n, device=dev).T
        if weights == "orthogonal":
            a = torch.randn(n, n, generator=gen, device=dev).T     # a Gaussian matrix's transpose is one
            tau = torch.empty(n, device=dev)
            torch.geqrf(a, out=(a, tau))                           # in place: no second N × N matrix
            if progress:
                yield Progress(layer, (layer - 0.5) / depth)
            sign = torch.sgn(torch.diagonal(a))
            sign[sign == 0] = 1.0
            J.mul_((sigma_w * sign * d)[:, None])
            torch.ormqr(a, tau, J, out=buf)
            h_new = torch.ormqr(a, tau, (sigma_w * sign * x)[:, None]).squeeze(1)
            del a, tau
        else:
            W = torch.randn(n, n, generator=gen, device=dev).T.mul_(sigma_w / math.sqrt(n))
            if progress:
                yield Progress(layer, (layer - 0.5) / depth)
            J.mul_(d[:, None])
            torch.mm(W, J, out=buf)
            h_new = W @ x
            del W
        b = torch.randn(n, generator=gen, device=dev)
        h = h_new + b.mul_(sigma_b * _exp(-log_h))
        J, buf = buf, J
        if not dead:
            r = float(torch.linalg.vector_norm(J)) / math.sqrt(n)
            if r > 0.0 and math.isfinite(r):
                J.div_(r)
                log_j += math.log(r)
            elif r == 0.0:
                dead = True
        if act.homogeneous:
            rh = float(torch.linalg.vector_norm(h)) / math.sqrt(n)
            if rh > 0.0 and math.isfinite(rh):
                h.div_(rh)
                log_h += math.log(rh)
        if progress:
            yield Progress(layer, layer / depth)
        if layer in wanted_set:
            buf = None      # the spare buffer is not needed while the eigen-solve holds its float64 copies
            yield layer, _eigenvalues(J, log_j, log, dead)


def _dphi(act: Activation, h):
    """φ'(h) of the network's own torch φ, by autograd (φ acts elementwise)."""
    import torch

    with torch.enable_grad():
        x = h.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(act.torch(x).sum(), x)
    return g


def _eigenvalues(J, log_scale: float, log: bool, dead: bool) -> np.ndarray:
    """Eigenvalues of e^{2 log_scale} J Jᵀ, ascending, from a float64 Gram matrix."""
    import torch
    from scipy import linalg
    from scipy.linalg.blas import dsyrk as _dsyrk

    n = J.shape[0]
    if dead:
        lam = np.zeros(n)
    elif J.device.type == "cpu":
        # JJᵀ accumulated in float64 by rank-256 updates (BLAS syrk, in place, lower triangle), so
        # no float64 copy of the whole J is ever held
        j = J.numpy()
        gram = np.zeros((n, n), order="F")
        for start in range(0, n, 256):
            block = np.asfortranarray(j[:, start:start + 256], dtype=np.float64)
            gram = _dsyrk(1.0, block, beta=1.0, c=gram, overwrite_c=1, lower=1)
        lam = linalg.eigvalsh(gram, lower=True, overwrite_a=True, check_finite=False, driver="evr")
    else:
        j64 = J.to(torch.float64)
        lam = torch.linalg.eigvalsh(j64 @ j64.T).cpu().numpy()
    lam = np.clip(lam, 0.0, None)
    if log:
        with np.errstate(divide="ignore"):
            return np.log(lam) + 2.0 * log_scale
    with np.errstate(over="ignore", under="ignore"):
        return lam * math.exp(2.0 * log_scale) if abs(2.0 * log_scale) < 700 else \
            np.exp(np.log(np.where(lam > 0, lam, 1.0)) + 2.0 * log_scale) * (lam > 0)


def jacobian_spectrum(phi: str | Activation, sigma_w: float, sigma_b: float, depth: int, width: int,
                      weights: str = "orthogonal", seed: int = 0, device=None, *,
                      log: bool = False) -> np.ndarray:
    """Eigenvalues of JJᵀ (ascending, float64, length ``width``) of one real depth-L network.

    J = ∂h^L/∂h^0 = W^L D^{L−1} ⋯ W^1 D^0 at an input at q*; see :func:`jacobian_spectra` for the
    network, the numerics and ``log``.
    """
    last = None
    for _, lam in jacobian_spectra(phi, sigma_w, sigma_b, depth, width, weights, seed, device,
                                   depths=(depth,), log=log):
        last = lam
    return last
