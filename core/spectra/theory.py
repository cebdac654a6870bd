"""Theory: the public functions (density, atoms, CDF, edges, support, moments, universality classes)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core import activations
from core.activations import Activation
from core.gaussian import expect
from core.spectra.layer import _layer, _q_star
from core.spectra.models import _UniversalModel
from core.spectra.params import UNIVERSALITY_CLASSES, WEIGHTS
from core.spectra.solve import _check_theory_args, _in_log, _Spectrum, _spectrum, _spectrum_cache


@dataclass(frozen=True)
class Atom:
    """A point mass of the eigenvalue law of JJᵀ: ``mass`` at ``location`` (ln of it with ``log=True``)."""

    location: float
    mass: float


def theory_density(x, phi: str | Activation, sigma_w: float, sigma_b: float, depth: int,
                   weights: str = "orthogonal", *, log: bool = False) -> np.ndarray:
    """Density of the continuous part of the eigenvalue law of JJᵀ at x, by free probability.

    ``S_{JJᵀ}(m) = [S_{WᵀW}(m) S_{D²}(m)]^L`` (Pennington, Schoenholz & Ganguli 2017, Sec. 2–3, and 2018,
    Sec. 3; THEORY.md §3), solved as described in the module docstring. Point masses (zero eigenvalues
    of ReLU-like nets, the top eigenvalue of orthogonal Bernoulli nets with L(1 − p) < 1) are *not* in
    this density; :func:`theory_atoms` returns them, and density plus atoms integrate to 1.

    Parameters
    ----------
    x : array_like
        Eigenvalues λ of JJᵀ (or ln λ with ``log=True``). λ ≤ 0 gives 0.
    phi : str or Activation
    sigma_w, sigma_b : float
        Weight scale (> 0) and bias standard deviation (≥ 0); q* is their fixed point.
    depth : int
        Number of layers L ≥ 1.
    weights : {"orthogonal", "gaussian"}
    log : bool
        Take and return everything in ln λ: the result is then the density of ln λ, λ ρ(λ). Use it
        where λ leaves the float64 range (χ^L beyond 10^±300 at large depth).

    Returns
    -------
    numpy.ndarray
        ρ(λ) ≥ 0, finite, same shape as x.

    Raises
    ------
    NoFixedPointError
        φ is not homogeneous and has no finite fixed point q* at these σ_w, σ_b.
    """
    ell, jac = _in_log(x, log)
    return _spectrum(phi, sigma_w, sigma_b, depth, weights).log_density(ell) * jac


def theory_atoms(phi: str | Activation, sigma_w: float, sigma_b: float, depth: int,
                 weights: str = "orthogonal", *, log: bool = False) -> tuple[Atom, ...]:
    """The point masses of the eigenvalue law of JJᵀ, which :func:`theory_density` leaves out.

    * At 0, mass ``P(φ'(h)² = 0)`` (1 − p for the Bernoulli class): J = W^L D^{L−1} ⋯ W^1 D^0 has the rank
      of one D — generic subspaces of dimension pN intersect the kernels trivially — so the zero
      eigenvalues are (1 − p)N at every depth, not 1 − p^L.
    * Orthogonal weights only: at σ_w^{2L} c^L, mass 1 − L(1 − P(φ'² = c)) when positive (Belinschi 2003
      for free multiplicative convolution), e.g. p ≥ 1 − 1/L for the Bernoulli class, or the linear
      network's single atom at σ_w^{2L}; L = 1 ELU/SELU have one at σ_w² φ'(0⁺)².

    Returns
    -------
    tuple of Atom
        ``location`` is λ (ln λ with ``log=True``; −inf for the atom at 0), ``mass`` its probability.
    """
    model = _spectrum(phi, sigma_w, sigma_b, depth, weights).model
    return tuple(Atom(loc if log else _exp(loc), mass) for loc, mass in model.atoms)


def theory_cdf(x, phi: str | Activation, sigma_w: float, sigma_b: float, depth: int,
               weights: str = "orthogonal", *, log: bool = False) -> np.ndarray:
    """P(λ ≤ x) under the theory law of the eigenvalues of JJᵀ, atoms included.

    The continuous part is integrated from the top edge down (600 nodes per interval of the support,
    crowded at its edges), so this is what a histogram's bin heights should be compared with: bin mass =
    CDF(right) − CDF(left), free of the spikes a point-sampled density shows at singular edges.
    """
    ell, _ = _in_log(x, log)
    return _spectrum(phi, sigma_w, sigma_b, depth, weights).cdf(ell)


def theory_edges(phi: str | Activation, sigma_w: float, sigma_b: float, depth: int,
                 weights: str = "orthogonal", *, log: bool = False) -> tuple[float, float]:
    """(λ_min, λ_max): the ends of the support of the eigenvalue law of JJᵀ, atoms included.

    λ_max is the largest eigenvalue of JJᵀ in the N → ∞ limit (the square of the largest singular
    value of J); it is the first local minimum of x(w) coming down from w = ∞ on the real axis (where
    dx/dw = 0 the square-root edge sits), or the limit at the end of that branch. λ_min is 0 when the
    support reaches 0 (Gaussian W, any atom at 0), else the matching local maximum.
    """
    lo, hi = _spectrum(phi, sigma_w, sigma_b, depth, weights).edges()
    return (lo, hi) if log else (_exp(lo), _exp(hi))


def theory_support(phi: str | Activation, sigma_w: float, sigma_b: float, depth: int,
                   weights: str = "orthogonal", *, log: bool = False) -> tuple[tuple[float, float], ...]:
    """The intervals (λ_lo, λ_hi) where :func:`theory_density` is positive, ascending (ln λ with
    ``log=True``; λ_lo = 0 where the density reaches down to 0). The gaps between them — e.g. between
    the continuous part and the top atom of an orthogonal Bernoulli net — carry no continuous mass."""
    support = _spectrum(phi, sigma_w, sigma_b, depth, weights).support
    return tuple((a, b) if log else (_exp(a), _exp(b)) for a, b in support)


def theory_moments(phi: str | Activation, sigma_w: float, sigma_b: float, depth: int,
                   weights: str = "orthogonal") -> tuple[float, float]:
    """Mean and variance of the eigenvalues of JJᵀ: (χ^L, L (μ₂/μ₁² − 1 − s₁) χ^{2L}).

    From the first two terms of the S-transform: ``S(m) = 1/m₁ + (m₁² − m₂)/m₁³ m + O(m²)`` for a law of
    moments m₁, m₂, and S-transforms multiply over the L free layers, each of mean χ = σ_w² μ₁ and
    normalised variance ``μ₂/μ₁² − 1 − s₁`` (s₁ = −1 for Gaussian W: Marchenko–Pastur has normalised
    variance 1; s₁ = 0 for orthogonal W). Normalised variances add under free products, so
    ``Var = L (μ₂/μ₁² − 1 − s₁) χ^{2L}``, which at χ = 1 is the PSG 2017 formula
    ``σ²_{JJᵀ} = L (μ₂/μ₁² − 1 − s₁)``. Values beyond the float64 range are inf (or 0).

    Arrays of ``sigma_w``, ``sigma_b`` and ``depth`` broadcast: the result is then a pair of arrays of
    their broadcast shape, NaN where φ has no fixed point q* (where a single point raises
    :class:`NoFixedPointError`). Up to 1024 distinct (σ_w, σ_b) each q* is solved as for one point;
    beyond, q* comes from :func:`core.propagation.q_star`'s tables (1e-6 relative, so χ^L to ~L·1e-6).
    """
    act = activations.resolve(phi)
    if any(np.ndim(v) for v in (sigma_w, sigma_b, depth)):
        return _moments_on_arrays(act, sigma_w, sigma_b, depth, weights)
    _check_theory_args(sigma_w, sigma_b, depth, weights)
    layer = _layer(act, float(sigma_w), float(sigma_b))
    if layer.mu1 <= 0.0:
        return 0.0, 0.0
    s1 = -1.0 if weights == "gaussian" else 0.0
    spread = max(layer.mu2 / layer.mu1**2 - 1.0 - s1, 0.0)
    log_chi = math.log(layer.chi)
    return _exp(depth * log_chi), depth * spread * _exp(2 * depth * log_chi)


_EXACT_PAIRS = 1024
_BLOCK = 8192


def _moments_on_arrays(act: Activation, sigma_w, sigma_b, depth, weights: str):
    sw, sb, L = np.broadcast_arrays(np.asarray(sigma_w, float), np.asarray(sigma_b, float), np.asarray(depth))
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    if not (np.all(np.isfinite(sw)) and np.all(sw > 0)):
        raise ValueError("σ_w must be positive and finite everywhere")
    if not (np.all(np.isfinite(sb)) and np.all(sb >= 0)):
        raise ValueError("σ_b must be ≥ 0 and finite everywhere")
    if not (np.all(L >= 1) and np.all(np.mod(L, 1) == 0)):
        raise ValueError("depth must be a whole number ≥ 1 everywhere")
    pairs, inverse = np.unique(np.stack([sw.ravel(), sb.ravel()], axis=1), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    q = _fixed_point_variances(act, pairs[:, 0], pairs[:, 1])
    mu1, mu2 = np.empty(q.size), np.empty(q.size)
    qk = np.where(np.isfinite(q), q, 1.0)
    for start in range(0, q.size, _BLOCK):
        part = slice(start, start + _BLOCK)
        mu1[part] = expect(lambda x: act.dphi(x) ** 2, qk[part], act.breakpoints, n=48)
        mu2[part] = expect(lambda x: act.dphi(x) ** 4, qk[part], act.breakpoints, n=48)
    s1 = -1.0 if weights == "gaussian" else 0.0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        spread = np.maximum(mu2 / mu1**2 - 1.0 - s1, 0.0)
        log_chi = np.log(pairs[:, 0] ** 2 * mu1)
        Lf = L.ravel().astype(float)
        mean = np.exp(Lf * log_chi[inverse])
        var = Lf * spread[inverse] * np.exp(2.0 * Lf * log_chi[inverse])
    dead = (mu1 <= 0.0)[inverse]
    mean, var = np.where(dead, 0.0, mean), np.where(dead, 0.0, var)
    none = ~np.isfinite(q)[inverse]
    return np.where(none, np.nan, mean).reshape(sw.shape), np.where(none, np.nan, var).reshape(sw.shape)


def _fixed_point_variances(act: Activation, sw: np.ndarray, sb: np.ndarray) -> np.ndarray:
    """q* as :func:`core.spectra.layer._effective_q` takes it (inf where there is none), per (σ_w, σ_b)."""
    if sw.size <= _EXACT_PAIRS:
        q = np.array([_q_star(act, float(a), float(b)) for a, b in zip(sw, sb, strict=True)])
    else:
        from core.propagation import q_star

        q = np.asarray(q_star(sw, sb, act), float)
    if act.homogeneous:
        q = np.where((q > 0.0) & np.isfinite(q), q, 1.0)
    return q


def universality_density(x, kind: str, sigma0_sq: float = 0.25, *, log: bool = False) -> np.ndarray:
    """The limiting eigenvalue densities of JJᵀ of the two universality classes (Pennington et al. 2018).

    Depth L → ∞ at criticality with the variance of the spectrum held at σ₀² (their Fig. 4, σ₀² = ¼):
    the per-layer normalised variance must fall like σ₀²/L, which the orthogonal nets of the paper reach
    by tuning the fixed point (q* → 0 for smooth φ; p → 1 for the Bernoulli class).

    * ``"bernoulli"``: each layer has ``S = p(1 + m)/(m + p)`` with σ_w² p = 1 and L(1 − p)/p = σ₀², so
      ``S^L → exp(−σ₀² m/(1 + m))``: every free cumulant of a Bernoulli(p) d is O(1 − p), and all of them
      survive the product. For σ₀² < 1 this law has a point mass 1 − σ₀² at e^{σ₀²} (the limit of the
      atom 1 − L(1 − p) at σ_w^{2L} of :func:`theory_atoms`), returned by :func:`universality_atoms`;
      the density here is its continuous part, on (0, e σ₀²] (the edge where dx/dm = 0, m = −1/(1 − σ₀²)).
    * ``"smooth"``: d = φ'(h)² concentrates at q* → 0 with normalised variance ~ q*², higher free
      cumulants ~ q*³ …, so only the variance survives: ``S^L → exp(−σ₀² m)`` (the free positive
      multiplicative Brownian motion at time σ₀², rescaled to mean 1).

    Both laws have mean 1 and variance σ₀²; they differ from the third moment on. No atoms.
    """
    ell, jac = _in_log(x, log)
    return _universal(kind, sigma0_sq).log_density(ell) * jac


def universality_atoms(kind: str, sigma0_sq: float = 0.25, *, log: bool = False) -> tuple[Atom, ...]:
    """The point masses of the limiting law: 1 − σ₀² at e^{σ₀²} for the Bernoulli class (σ₀² < 1)."""
    model = _universal(kind, sigma0_sq).model
    return tuple(Atom(loc if log else _exp(loc), mass) for loc, mass in model.atoms)


def universality_cdf(x, kind: str, sigma0_sq: float = 0.25, *, log: bool = False) -> np.ndarray:
    """P(λ ≤ x) under the limiting law, atoms included."""
    ell, _ = _in_log(x, log)
    return _universal(kind, sigma0_sq).cdf(ell)


def _universal(kind: str, sigma0_sq: float) -> _Spectrum:
    if kind not in UNIVERSALITY_CLASSES:
        raise ValueError(f"kind must be one of {', '.join(UNIVERSALITY_CLASSES)}, got {kind!r}")
    sigma0_sq = float(sigma0_sq)
    if not (math.isfinite(sigma0_sq) and sigma0_sq > 0):
        raise ValueError(f"σ₀² must be positive, got {sigma0_sq!r}")
    return _spectrum_cache.get(("universal", kind, sigma0_sq),
                               lambda: _Spectrum(_UniversalModel(kind, sigma0_sq)))


def _exp(v: float) -> float:
    if v > 709.78:
        return math.inf
    return math.exp(v) if v > -745.2 else 0.0
