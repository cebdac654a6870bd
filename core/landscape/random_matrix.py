"""Pennington & Bahri's random-matrix model of the Hessian at a critical point of loss ε.

H = H₀ + H₁: H₀ (the Gauss–Newton part) a Marchenko–Pastur law of ratio φ = parameters / (data × outputs),
R₀(z) = 1/(1 − φz); H₁ (the residual part) a Wigner semicircle of variance 2ε, R₁(z) = 2εz. Free additive
convolution adds R-transforms, so the Stieltjes transform G(z) = ∫ρ(λ)/(z − λ) dλ solves
z = R₀(G) + R₁(G) + 1/G, i.e. the cubic

    2εφ G³ − (φz + 2ε) G² + (z + φ − 1) G − 1 = 0,

and ρ(λ) = |Im G(λ)|/π on the support (where the cubic has a complex pair). The index α(ε, φ) is the mass
below 0, and the left edge of the support reaches 0 at the critical loss

    ε_c(φ) = [1 − 20φ − 8φ² + (1 + 8φ)^{3/2}] / 16

(ε_c(0) = 1/8, ε_c(1) = 0): below ε_c every critical point is a minimum, the landscape locally convex.
Above, α ≈ α₀(φ) |(ε − ε_c)/ε_c|^{3/2}.

Two φ's meet in this paper: ``ratio`` (called φ by Pennington & Bahri and here) is the parameter-to-data
ratio; the activation function is called ``activation`` wherever it appears in this package.

Reference: J. Pennington, Y. Bahri, "Geometry of neural network loss surfaces via random matrix theory",
ICML 2017, §3–§4 (eqs. 12–16 and Fig. 2).
"""

from __future__ import annotations

import numpy as np


def _check_ratio(phi) -> np.ndarray:
    phi = np.asarray(phi, dtype=np.float64)
    if not np.all(np.isfinite(phi)) or np.any(phi < 0):
        raise ValueError(f"the ratio φ = parameters/data must be ≥ 0 and finite, got {phi}")
    return phi


def critical_loss(phi):
    """ε_c(φ) = [1 − 20φ − 8φ² + (1 + 8φ)^{3/2}]/16 for 0 ≤ φ ≤ 1, and 0 for φ ≥ 1.

    For φ ≥ 1, H₀ has an atom of mass 1 − 1/φ at 0 which any ε > 0 spreads onto negative values, so no
    positive loss is free of negative eigenvalues; the formula's own value there is negative.
    Pennington & Bahri 2017, eq. (16); checked against the free convolution's edge in the tests.
    """
    phi = _check_ratio(phi)
    eps = (1.0 - 20.0 * phi - 8.0 * phi ** 2 + (1.0 + 8.0 * phi) ** 1.5) / 16.0
    eps = np.where(phi >= 1.0, 0.0, np.maximum(eps, 0.0))
    return float(eps) if eps.ndim == 0 else eps


def stieltjes(z, loss: float, phi: float) -> np.ndarray:
    """G(z) for real z (just above the axis): the root of the cubic with the most negative imaginary part.

    Off the support all three roots are real; the returned G is then real and the density zero.
    """
    z = np.atleast_1d(np.asarray(z, dtype=np.float64))
    eps = float(loss)
    coeffs = np.zeros((z.size, 4))
    coeffs[:, 0] = 2 * eps * phi
    coeffs[:, 1] = -(phi * z + 2 * eps)
    coeffs[:, 2] = z + phi - 1.0
    coeffs[:, 3] = -1.0
    roots = _cubic_roots(coeffs)
    pick = np.argmin(roots.imag, axis=1)
    return roots[np.arange(z.size), pick]


def _cubic_roots(c: np.ndarray) -> np.ndarray:
    """Roots of c₀x³ + c₁x² + c₂x + c₃ for each row (companion-matrix eigenvalues; lower degree if c₀ = 0)."""
    out = np.full((c.shape[0], 3), np.nan + 0j)
    lead = np.abs(c[:, 0]) > 1e-300
    if lead.any():
        a = c[lead, 1:] / c[lead, :1]
        comp = np.zeros((a.shape[0], 3, 3))
        comp[:, 0, :] = -a
        comp[:, 1, 0] = comp[:, 2, 1] = 1.0
        out[lead] = np.linalg.eigvals(comp)
    quad = ~lead & (np.abs(c[:, 1]) > 1e-300)
    if quad.any():   # ε = 0 or φ = 0: a quadratic
        a, b, cc = c[quad, 1], c[quad, 2], c[quad, 3]
        disc = np.sqrt((b * b - 4 * a * cc).astype(complex))
        out[quad, 0] = (-b + disc) / (2 * a)
        out[quad, 1] = (-b - disc) / (2 * a)
    return out


def spectral_density(x, loss: float, phi: float) -> np.ndarray:
    """ρ(λ) of MP(φ) ⊞ semicircle(2ε) at the points x (Pennington & Bahri 2017, eq. 12).

    For φ > 1 the atom of mass 1 − 1/φ at 0 is left out at ε = 0 (it is not a density).
    """
    phi = float(_check_ratio(phi))
    if loss < 0:
        raise ValueError(f"the loss ε must be ≥ 0, got {loss}")
    return np.abs(stieltjes(x, loss, phi).imag) / np.pi


def support(loss: float, phi: float) -> tuple[float, float]:
    """A bracket [lo, hi] holding the whole spectrum: MP's support plus the semicircle's radius."""
    r = 2.0 * np.sqrt(2.0 * loss)
    return min(0.0, (1 - np.sqrt(phi)) ** 2) - r - 1e-9, (1 + np.sqrt(phi)) ** 2 + r + 1e-9


def left_edge(loss: float, phi: float, points: int = 20001) -> float:
    """The smallest λ where the density is positive, to a grid spacing refined by bisection."""
    lo, hi = support(loss, phi)
    x = np.linspace(lo, hi, points)
    inside = spectral_density(x, loss, phi) > 1e-12
    if not inside.any():
        return float("nan")
    i = int(np.argmax(inside))
    a, b = x[max(i - 1, 0)], x[i]
    for _ in range(60):
        m = 0.5 * (a + b)
        if spectral_density(m, loss, phi)[0] > 1e-12:
            b = m
        else:
            a = m
    return float(b)


def index_theory(loss, phi, points: int = 4001) -> np.ndarray | float:
    """α(ε, φ): the fraction of negative eigenvalues of H₀ + H₁ (Pennington & Bahri 2017, eq. 13).

    ∫_{−∞}^0 ρ(λ) dλ by composite Simpson on a cosine-spaced grid from the spectrum's left bound to 0;
    zero for ε ≤ ε_c(φ). For φ > 1 the spread-out atom is included: it comes from the semicircle acting on
    the 1 − 1/φ zero modes, half of which turn negative.
    """
    from scipy.integrate import simpson

    phi = float(_check_ratio(phi))
    losses = np.atleast_1d(np.asarray(loss, dtype=np.float64))
    if np.any(losses < 0) or not np.all(np.isfinite(losses)):
        raise ValueError("the loss ε must be finite and ≥ 0")
    eps_c = critical_loss(phi)
    out = np.zeros(losses.size)
    for i, eps in enumerate(losses):
        if eps <= eps_c or eps == 0.0:
            continue
        lo, _ = support(eps, phi)
        # dense near 0 and the left edge, where the density has square-root ends
        u = np.linspace(0.0, 1.0, points)
        x = lo + (0.0 - lo) * (0.5 - 0.5 * np.cos(np.pi * u))
        out[i] = simpson(spectral_density(x, eps, phi), x=x)
    return float(out[0]) if np.ndim(loss) == 0 else out
