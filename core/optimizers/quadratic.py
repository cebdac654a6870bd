"""Linear rates on the quadratic ``f(θ) = ½ θᵀAθ``, spectrum of A in [μ, L], κ = L/μ (THEORY.md §4).

On a quadratic GD, heavy ball and Nesterov are linear iterations; in A's eigenbasis each eigenvalue λ
is its own 2×2 (1×1 for GD) system and the rate is the largest spectral radius over the spectrum.
Heavy ball's root modulus depends on λ only through ``|1 + β − αλ|`` and grows with it, so over an
interval the radius is attained at μ or L: the map of plot 3 needs two 2×2 matrices per grid point,
whose eigenvalues are solved in closed form here (and checked against ``numpy.linalg.eigvals``).

References
----------
- B. T. Polyak, "Some methods of speeding up the convergence of iteration methods", USSR Comput. Math.
  Math. Phys. 4 (1964).
- Y. Nesterov, "Introductory lectures on convex optimization" (2004), §2.2.
- L. Lessard, B. Recht, A. Packard, "Analysis and design of optimization algorithms via integral
  quadratic constraints", SIAM J. Optim. 26 (2016), arXiv:1408.3595, §2.2 and §4.6.
- G. Goh, "Why momentum really works", Distill (2017), doi:10.23915/distill.00006.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.pace import pace

LINEAR = ("gd", "sgd", "heavy_ball", "nesterov")
"""The optimisers with a closed-form tuning and rate on a quadratic (sgd: the noise-free iteration)."""


def _check_spectrum(mu: float, L: float) -> None:
    if not (math.isfinite(mu) and math.isfinite(L) and 0 < mu <= L):
        raise ValueError(f"spectrum: need 0 < μ ≤ L (finite), got μ = {mu!r}, L = {L!r}")


def tuned(name: str, mu: float, L: float, *, nesterov_form: str = "quadratic") -> dict[str, float]:
    """The optimal ``lr`` (and ``momentum``) of ``name`` on a quadratic with Hessian spectrum in [μ, L].

    - gd / sgd: η = 2/(L + μ).
    - heavy_ball (Polyak 1964): α = 4/(√L + √μ)², β = ((√κ − 1)/(√κ + 1))².
    - nesterov, ``nesterov_form="quadratic"`` (Lessard et al. 2016, the best on quadratics):
      α = 4/(3L + μ), β = (√(3κ+1) − 2)/(√(3κ+1) + 2); ``"convex"`` (Nesterov 2004, the constants for
      any μ-strongly convex L-smooth f): α = 1/L, β = (√κ − 1)/(√κ + 1).

    Returns ``{"lr": …}`` or ``{"lr": …, "momentum": …}``, the keyword arguments of :func:`make`.

    Raises
    ------
    ValueError
        For an optimiser with no closed-form tuning, or a bad spectrum.
    """
    _check_spectrum(mu, L)
    kappa = L / mu
    if name in ("gd", "sgd"):
        return {"lr": 2.0 / (L + mu)}
    if name == "heavy_ball":
        r = (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)
        return {"lr": 4.0 / (math.sqrt(L) + math.sqrt(mu)) ** 2, "momentum": r * r}
    if name == "nesterov":
        if nesterov_form == "quadratic":
            s = math.sqrt(3 * kappa + 1)
            return {"lr": 4.0 / (3 * L + mu), "momentum": (s - 2) / (s + 2)}
        if nesterov_form == "convex":
            return {"lr": 1.0 / L, "momentum": (math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)}
        raise ValueError(f"nesterov_form: {nesterov_form!r} is not 'quadratic' or 'convex'")
    raise ValueError(f"optimizer: {name!r} has no closed-form tuning on a quadratic (those that do: "
                     f"{', '.join(LINEAR)})")


def rate(name: str, kappa, *, nesterov_form: str = "quadratic"):
    """The linear rate (per step, on the error) of ``name`` with :func:`tuned` settings at condition number κ.

    gd: (κ − 1)/(κ + 1); heavy_ball: (√κ − 1)/(√κ + 1); nesterov: 1 − 2/√(3κ + 1) (``"quadratic"``)
    or 1 − 1/√κ (``"convex"``). Broadcasts over array κ.
    """
    k = np.asarray(kappa, dtype=float)
    if np.any(~np.isfinite(k)) or np.any(k < 1):
        raise ValueError(f"kappa: need finite κ ≥ 1, got {kappa!r}")
    if name in ("gd", "sgd"):
        out = (k - 1) / (k + 1)
    elif name == "heavy_ball":
        out = (np.sqrt(k) - 1) / (np.sqrt(k) + 1)
    elif name == "nesterov":
        if nesterov_form == "quadratic":
            out = 1 - 2 / np.sqrt(3 * k + 1)
        elif nesterov_form == "convex":
            out = 1 - 1 / np.sqrt(k)
        else:
            raise ValueError(f"nesterov_form: {nesterov_form!r} is not 'quadratic' or 'convex'")
    else:
        raise ValueError(f"optimizer: {name!r} has no closed-form rate (those that do: {', '.join(LINEAR)})")
    return float(out) if out.ndim == 0 else out


# -- the iteration matrices --------------------------------------------------------------------------

def iteration_matrix(name: str, lam, lr, momentum=0.0) -> np.ndarray:
    """The 2×2 matrix T with ``(θ_{k+1}, θ_k) = T (θ_k, θ_{k−1})`` on the eigen-direction λ.

    heavy ball: ``[[1 + β − αλ, −β], [1, 0]]``; Nesterov (THEORY.md's form):
    ``[[(1 + β)(1 − αλ), −β(1 − αλ)], [1, 0]]``; GD is heavy ball with β = 0. Broadcasts; shape (…, 2, 2).
    """
    lam, lr, momentum = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (lam, lr, momentum)))
    t = np.empty(lam.shape + (2, 2))
    if name in ("gd", "sgd", "heavy_ball"):
        t[..., 0, 0] = 1 + momentum - lr * lam
        t[..., 0, 1] = -momentum
    elif name == "nesterov":
        t[..., 0, 0] = (1 + momentum) * (1 - lr * lam)
        t[..., 0, 1] = -momentum * (1 - lr * lam)
    else:
        raise ValueError(f"optimizer: {name!r} is not a linear iteration on a quadratic")
    t[..., 1, 0] = 1.0
    t[..., 1, 1] = 0.0
    return t


def root_modulus(trace, det):
    """Largest |z| over the roots of ``z² − trace·z + det`` (det ≥ 0), in closed form, broadcasting.

    Real roots (trace² ≥ 4det): (|trace| + √(trace² − 4det))/2; complex ones: √det.
    """
    trace = np.asarray(trace, dtype=float)
    det = np.asarray(det, dtype=float)
    disc = trace * trace - 4 * det
    real = (np.abs(trace) + np.sqrt(np.maximum(disc, 0.0))) / 2
    return np.where(disc >= 0, real, np.sqrt(np.maximum(det, 0.0)))


@dataclass(frozen=True)
class MomentumMap:
    """Heavy ball's rate over a grid of (α, β) on a quadratic with spectrum in [μ, L] (plot 3).

    ``rate[i, j]`` is the spectral radius at ``beta[i]``, ``alpha[j]``; ≥ 1 where it does not converge.
    ``alpha_opt``, ``beta_opt``, ``rate_opt``: Polyak's tuned point and its rate.
    """

    alpha: np.ndarray
    beta: np.ndarray
    rate: np.ndarray
    mu: float
    L: float
    alpha_opt: float
    beta_opt: float
    rate_opt: float


def heavy_ball_radius(alpha, beta, mu: float, L: float):
    """Spectral radius of heavy ball's iteration on a spectrum in [μ, L]: the larger over λ = μ and λ = L.

    Converges (radius < 1) iff 0 ≤ β < 1 and 0 < αλ < 2 + 2β for every λ (THEORY.md §4). Broadcasts.
    """
    alpha = np.asarray(alpha, dtype=float)
    beta = np.asarray(beta, dtype=float)
    return np.maximum(root_modulus(1 + beta - alpha * mu, beta), root_modulus(1 + beta - alpha * L, beta))


def momentum_map(mu: float, L: float, size: int = 256, alpha_max: float | None = None) -> MomentumMap:
    """Heavy ball's convergence rate over α ∈ (0, α_max] × β ∈ [0, 1) (Goh 2017's figure, for any κ).

    α_max defaults to 4/L, just past the largest stable step (2 + 2β)/L.
    """
    _check_spectrum(mu, L)
    if not 2 <= size <= 4096:
        raise ValueError(f"size: {size} is outside [2, 4096]")
    alpha_max = 4.0 / L if alpha_max is None else float(alpha_max)
    alpha = np.linspace(alpha_max / size, alpha_max, size)
    beta = np.linspace(0.0, 1.0, size, endpoint=False)
    radius = heavy_ball_radius(alpha[None, :], beta[:, None], mu, L)
    best = tuned("heavy_ball", mu, L)
    return MomentumMap(alpha, beta, radius, mu, L, best["lr"], best["momentum"], rate("heavy_ball", L / mu))


# -- measured rates ----------------------------------------------------------------------------------

def spectrum(n: int, mu: float, L: float) -> np.ndarray:
    """n eigenvalues from μ to L, both ends included, log-spaced (so every scale of κ is present)."""
    _check_spectrum(mu, L)
    if n < 2:
        raise ValueError(f"n: need at least 2 eigenvalues (μ and L), got {n}")
    return np.geomspace(mu, L, n)


def linear_errors(name: str, eigenvalues, steps: int, lr: float, momentum: float = 0.0, seed: int = 0):
    """‖θ_k‖ for k = 0…steps of GD / heavy ball / Nesterov on ``½ Σ λ_i θ_i²`` (minimum 0), float64.

    The iteration is torch.optim.SGD's, ``b_k = β b_{k−1} + λθ_k`` (b_{−1} = 0), ``θ_{k+1} = θ_k − α b_k``
    or, for Nesterov, ``θ_{k+1} = θ_k − α(λθ_k + β b_k)`` (torch's iterate, the look-ahead point), in A's
    eigenbasis: each eigen-direction's state ``(θ, b)`` is multiplied by a 2×2 matrix S at every step
    (the rates of every method here are rotation invariant). The steps go in chunks of c: with S¹ … S^c
    computed once, a chunk of states is one broadcast product with the state before it, about a
    thousand numpy calls for 20 000 steps instead of 10⁵ (a worker looping step by step holds the
    interpreter lock that the GUI thread is waiting for). The start is a seeded Gaussian vector of unit
    norm, so every eigen-direction is excited.
    """
    if name not in LINEAR:
        raise ValueError(f"optimizer: {name!r} is not a linear iteration on a quadratic")
    lam = np.asarray(eigenvalues, dtype=float).ravel()
    theta = np.random.default_rng(seed).standard_normal(lam.shape)
    theta /= np.linalg.norm(theta)
    a, b = lr * lam, momentum
    step = np.empty((lam.size, 2, 2))                       # S on (θ, b): b' = λθ + βb, then θ' from θ, b'
    step[:, 0, 0] = 1 - a * (1 + b) if name == "nesterov" else 1 - a
    step[:, 0, 1] = -lr * b * b if name == "nesterov" else -lr * b
    step[:, 1, 0] = lam
    step[:, 1, 1] = b
    # c ≈ √steps balances the c products that build the powers against the steps/c chunks; the powers are
    # built one step at a time, as the iteration is (doubling would be fewer calls, but heavy ball's
    # double root makes S non-normal and a product of two large powers loses digits)
    chunk = max(1, math.isqrt(max(steps - 1, 0)) + 1)
    powers = np.empty((chunk, lam.size, 2, 2))               # powers[j] = S^(j+1)
    out = np.empty(steps + 1)
    out[0] = 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        powers[0] = step
        for j in range(1, chunk):
            np.matmul(step, powers[j - 1], out=powers[j])
        theta_k, b_k = theta, np.zeros_like(theta)
        k = 0
        while k < steps:
            pace()
            m = min(chunk, steps - k)
            thetas = powers[:m, :, 0, 0] * theta_k + powers[:m, :, 0, 1] * b_k       # (m, n)
            out[k + 1:k + m + 1] = np.sqrt(np.square(thetas).sum(axis=1))
            theta_k, b_k = thetas[-1], powers[m - 1, :, 1, 0] * theta_k + powers[m - 1, :, 1, 1] * b_k
            k += m
    return out


def fit_rate(errors, repeated: bool = False, start: float = 0.5) -> float:
    """ρ from a least-squares fit of ``log e_k = a + k log ρ`` (``+ log k`` when ``repeated``: a double
    root decays like k ρ^k) over the last ``1 − start`` of the finite, positive errors."""
    e = np.asarray(errors, dtype=float)
    k = np.arange(e.size, dtype=float)
    ok = np.isfinite(e) & (e > 1e-280)
    k, e = k[ok], e[ok]
    k, e = k[int(start * k.size):], e[int(start * e.size):]
    k, e = k[k > 0], e[k > 0]
    if k.size < 3:
        raise ValueError("fit_rate: fewer than three usable errors")
    y = np.log(e) - (np.log(k) if repeated else 0.0)
    slope = np.polyfit(k, y, 1)[0]
    return float(math.exp(slope))


def steps_for(rho: float, decades: float = 12.0, lo: int = 50, hi: int = 100_000) -> int:
    """Enough steps for the error to fall ``decades`` decades at rate ρ (clipped to [lo, hi])."""
    if rho <= 0:
        return lo
    return int(min(hi, max(lo, math.ceil(decades * math.log(10) / -math.log(rho)))))
