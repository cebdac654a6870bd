"""Jacobian Spectra: the singular values of a deep random network's input–output Jacobian (lecture 3).

Two sides, drawn together by the panel:

* **simulation** — :func:`jacobian_spectrum` / :func:`jacobian_spectra` build a real torch network,
  put its input at the fixed point q*, accumulate ``J = ∂h^L/∂h^0 = W^L D^{L−1} ⋯ W^1 D^0`` layer by
  layer (``D^l = diag φ'(h^l)``) and return the eigenvalues of ``JJᵀ``;
* **theory** — :func:`theory_density` (continuous part), :func:`theory_atoms` (point masses),
  :func:`theory_cdf`, :func:`theory_support`, :func:`theory_edges` and :func:`theory_moments` give the
  N → ∞ law of those eigenvalues by free probability (Pennington, Schoenholz & Ganguli 2017, arXiv
  1711.04735; 2018, arXiv 1802.09979; THEORY.md §3): the S-transforms of the L free factors ``WᵀW`` and
  ``D²`` multiply, ``S_{JJᵀ}(m) = [S_{WᵀW}(m) S_{D²}(m)]^L``. :func:`universality_density` and friends
  give the depth → ∞ limits of the two universality classes; :func:`critical_sigma_w` the χ = 1 line.
* Every theory function takes ``log=True`` to work in ln λ throughout: χ^L leaves the float64 range
  at large depth away from criticality (8^1024 for ReLU at σ_w = 4), ln λ never does.

How the density is solved
-------------------------
Write ``w = M_{D²}⁻¹(m)`` (the point where the M-transform of the law of ``d = φ'(h)²`` equals m), so
that ``S_{D²}(m) = (1 + m)/(m w)``. Then ``M_{JJᵀ}⁻¹(m) = (1 + m)/(m S_{JJᵀ}(m))`` becomes explicit in w::

    ln x = a ln(1 + m) + (L − 1) ln m + L ln w + L ln σ_w²,    m = M_{D²}(w),
    a = 1 (Gaussian W, S_{WᵀW} = 1/(σ_w²(1 + m)))   or   a = 1 − L (orthogonal W, S_{WᵀW} = 1/σ_w²).

For each eigenvalue x the engine solves this for w with ``ln x`` replaced by ``ln x + iθ`` (θ = 1e-9,
the THEORY.md "x + iε" taken relative to x, so one code path serves 10⁻³⁰⁰ and 10³⁰⁰ alike) and reads
off ``G(x) = (1 + m)/x``, ``ρ(x) = −Im G/π``. The logarithms are kept *unwrapped* (principal log of each
factor, never of the product): on the physical sheet the phases add up to exactly θ, so Newton cannot
land on one of the other L branches of the polynomial-like equation. Every solve is continued from a
point where the answer is known in closed form — the negative real axis, where everything is real and
monotone (bisection) — by rotating the phase θ from π down to 1e-9, then along x; points in the gaps
of the support (found beforehand on the real axis, where the extrema of x(w) are the spectral edges)
are exactly zero. Point masses are subtracted from G in closed form and reported by
:func:`theory_atoms`, so no spike ever appears in the density.

The law of d: Bernoulli-class φ (ReLU, shifted ReLU, hard tanh: φ'² ∈ {0, 1}) is two atoms, giving
``S_{D²}(m) = (1 + m)/(m + p)`` exactly (p = P(φ'(h)² = 1) at q*); linear φ (or q* = 0) one atom; smooth
φ a mixture of pieces with linear density, one per cell of a partition of z ∈ [−10, 10] on which
d(z) = φ'(√q* z)² is monotone (cells of Gaussian mass ≤ 1/48 and d-range ≤ 1/48 of the total; exact
mass and mean per cell), plus point masses where φ' is constant (ELU, SELU). Its M-transform is exact
in closed form (logarithms) for every complex w, the real axis included. The density it gives agrees
with a 1024-cell law's to within a few 1e-3 of its maximum (more at L = 1 with orthogonal W, where the
density is that of d itself and its inverse-square-root peaks are resolved to one cell).

Nothing here imports torch at module import; the simulation functions import it when called.

Modules
-------
``theory`` (the public theory functions), ``layer`` (the mean-field statistics of one layer and the law
of d), ``models`` (ln x as a function of one complex unknown), ``support`` (gaps and edges on the real
axis), ``solve`` (continuation in the complex plane, density and CDF, the cached spectra),
``simulation`` (real torch networks), ``params`` (the panel's parameters) and ``cache``. Everything
public is re-exported here: use ``core.spectra.X``.
"""

from core.spectra.layer import NoFixedPointError, critical_sigma_w
from core.spectra.params import UNIVERSALITY_CLASSES, WEIGHTS, SpectraParams
from core.spectra.simulation import Progress, jacobian_spectra, jacobian_spectrum
from core.spectra.solve import THETA
from core.spectra.theory import (
    Atom,
    theory_atoms,
    theory_cdf,
    theory_density,
    theory_edges,
    theory_moments,
    theory_support,
    universality_atoms,
    universality_cdf,
    universality_density,
)

__all__ = [
    "WEIGHTS", "UNIVERSALITY_CLASSES", "SpectraParams", "Atom", "NoFixedPointError",
    "jacobian_spectrum", "jacobian_spectra", "theory_density", "theory_atoms", "theory_cdf",
    "theory_edges", "theory_support", "theory_moments", "critical_sigma_w",
    "universality_density", "universality_atoms", "universality_cdf", "THETA", "Progress",
]

# Private caches that benchmarks clear
from core.spectra.layer import _layer_cache  # noqa: E402, F401
from core.spectra.solve import _spectrum_cache  # noqa: E402, F401
