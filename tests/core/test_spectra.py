"""Jacobian Spectra engine against closed forms, independent quadrature and real networks.

Every reference value is computed here, from its own formula: Marchenko–Pastur and its CDF,
Fuss–Catalan numbers, the moments of an S-transform by Lagrange inversion, μ_k and q* by
scipy.integrate.quad, counts of eigenvalues of simulated networks. The engine's density is integrated
by double-exponential quadrature written here, not by the engine's own CDF.
"""

from __future__ import annotations

import math
from math import comb, factorial

import numpy as np
import pytest
from scipy import integrate, optimize, special

from core import spectra
from core.activations import NAMES, get
from core.params import ParamError
from core.spectra import Atom, SpectraParams

SQRT2 = math.sqrt(2.0)


# -- helpers: quadrature and mean-field quantities, computed independently of the engine -------------

def _de_nodes(a: float, b: float, h: float = 1 / 48) -> tuple[np.ndarray, np.ndarray]:
    """Double-exponential nodes and weights on (a, b); a = −inf gives exp-sinh in b − ℓ ∈ (0, 450): below
    e^{−450} λ_max the mass of these spectra is below e^{−450/(L+1)}, nothing at the depths used here."""
    if math.isinf(a):
        t = np.arange(-3.5, 2.07, h)
        y = np.exp(0.5 * np.pi * np.sinh(t))
        return b - y, h * 0.5 * np.pi * np.cosh(t) * y
    t = np.arange(-3.2, 3.2 + h / 2, h)
    s = 0.5 * np.pi * np.sinh(t)
    half = 0.5 * (b - a)
    left = 2.0 / (1.0 + np.exp(-2.0 * s))        # 1 + tanh(s), without cancellation for s ≪ 0
    return a + half * left, h * half * 0.5 * np.pi * np.cosh(t) / np.cosh(s) ** 2


def _log_moments(density, lo: float, hi: float, kmax: int) -> np.ndarray:
    """∫ λ^k ρ(λ) dλ = ∫ e^{kℓ} ψ(ℓ) dℓ (ψ the density of ℓ = ln λ) for k = 0 … kmax."""
    ell, w = _de_nodes(lo, hi)
    psi = density(ell)
    assert np.all(np.isfinite(psi)) and np.all(psi >= 0)
    return np.array([np.sum(w * psi * np.exp(k * ell)) for k in range(kmax + 1)])


def _theory_moments_by_integration(phi, sigma_w, sigma_b, depth, weights, kmax=3):
    """Moments of the theory law: the density integrated over each interval of its support (the
    quadrature needs the edges as end points), plus the atoms."""
    out = np.zeros(kmax + 1)
    for lo, hi in spectra.theory_support(phi, sigma_w, sigma_b, depth, weights, log=True):
        def psi(ell):
            return spectra.theory_density(ell, phi, sigma_w, sigma_b, depth, weights, log=True)
        out += _log_moments(psi, lo, hi, kmax)
    for a in spectra.theory_atoms(phi, sigma_w, sigma_b, depth, weights, log=True):
        out += a.mass * np.array([math.exp(k * a.location) if k else 1.0 for k in range(kmax + 1)])
    return out


def _gauss(f, breaks=()):
    """E_z[f(z)], z ~ N(0, 1), by adaptive quadrature split at the kinks of f."""
    pts = sorted({-12.0, 12.0, *[b for b in breaks if abs(b) < 12]})
    def density(z):
        return f(z) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return sum(integrate.quad(density, a, b, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
               for a, b in zip(pts[:-1], pts[1:], strict=True))


def _q_star(phi, sigma_w, sigma_b, kinks=()):
    """The fixed point of q = σ_w² E[φ(√q z)²] + σ_b² (σ_b > 0), by Brent's method."""
    def g(q):
        s = math.sqrt(q)
        return sigma_w**2 * _gauss(lambda z: phi(s * z) ** 2, [k / s for k in kinks]) + sigma_b**2 - q
    return optimize.brentq(g, 1e-8, 1e3, xtol=1e-15, rtol=1e-14)


def _mu(dphi, q, k, kinks=()):
    s = math.sqrt(q)
    return _gauss(lambda z: dphi(s * z) ** (2 * k), [b / s for b in kinks])


def _critical(phi, dphi, sigma_b, kinks=()):
    """σ_w with σ_w² μ₁(q*(σ_w)) = 1."""
    def chi_minus_one(sw):
        return sw**2 * _mu(dphi, _q_star(phi, sw, sigma_b, kinks), 1, kinks) - 1.0
    return optimize.brentq(chi_minus_one, 0.5, 3.0, xtol=1e-14, rtol=1e-13)


def _tanh(x):
    return math.tanh(x)


def _dtanh(x):
    return 1.0 - math.tanh(x) ** 2


def _erf(x):
    return math.erf(x)


def _derf(x):
    return 2.0 / math.sqrt(math.pi) * math.exp(-x * x)


def _ks_distance(eigs, phi, sigma_w, sigma_b, depth, weights):
    """sup |F_empirical − F_theory| on 3000 log-spaced x from 1e-8 to 1e3 times the mean, leaving out
    x within 1e-4 (relative) of a theory atom: there the float32 network's copies of the atom sit a
    rounding error to one side or the other. Below 1e-8 × mean the float32 product cannot resolve
    eigenvalues (its exact zeros come out near 1e-16 λ_max), so both CDFs are compared from there up."""
    mean = spectra.theory_moments(phi, sigma_w, sigma_b, depth, weights)[0]
    x = np.geomspace(1e-8 * mean, 1e3 * mean, 3000)
    for a in spectra.theory_atoms(phi, sigma_w, sigma_b, depth, weights):
        if a.location > 0:
            x = x[np.abs(x / a.location - 1.0) > 1e-4]
    theory = spectra.theory_cdf(x, phi, sigma_w, sigma_b, depth, weights)
    empirical = np.searchsorted(np.sort(eigs), x, side="right") / eigs.size
    return float(np.max(np.abs(theory - empirical)))


def _lagrange_moments(phi_series, kmax: int) -> list[float]:
    """Moments m_k = [m^{k−1}] φ(m)^k / k of the law whose S-transform is (1 + m)/φ(m) (Lagrange
    inversion of χ(m) = m/φ(m), the inverse of the moment series Σ m_k z^k); φ as a coefficient list."""
    out = []
    for k in range(1, kmax + 1):
        power = np.array([1.0])
        for _ in range(k):
            power = np.convolve(power, phi_series)[:k]
        out.append(power[k - 1] / k if power.size >= k else 0.0)
    return out


def _exp_series(c: np.ndarray, n: int) -> np.ndarray:
    """Coefficients of exp(Σ c_j m^j) (c_0 = 0) up to m^{n−1}."""
    out = np.zeros(n)
    out[0] = 1.0
    term = out.copy()
    for j in range(1, n):
        term = np.convolve(term, c[:n])[:n] / j
        out += term
    return out


# -- closed forms -----------------------------------------------------------------------------------

def test_linear_gaussian_depth_one_is_marchenko_pastur():
    x = np.concatenate([np.linspace(1e-4, 3.9999, 301), [1e-9, 3.999999, 4.000001, 5.0, 100.0]])
    rho = spectra.theory_density(x, "linear", 1.0, 0.0, 1, "gaussian")
    mp = np.where(x < 4, np.sqrt(np.clip(x * (4 - x), 0, None)) / (2 * np.pi * x), 0.0)
    np.testing.assert_allclose(rho, mp, rtol=1e-8, atol=1e-8)
    assert spectra.theory_atoms("linear", 1.0, 0.0, 1, "gaussian") == ()
    assert spectra.theory_edges("linear", 1.0, 0.0, 1, "gaussian") == pytest.approx((0.0, 4.0), abs=1e-12)


def test_cdf_of_marchenko_pastur():
    """∫₀ˣ √(t(4 − t))/(2πt) dt = (2/π)(φ + sin φ cos φ), φ = arcsin(√x/2)."""
    x = np.array([1e-6, 0.01, 0.5, 1.0, 2.0, 3.0, 3.99, 4.0, 7.0])
    phi = np.arcsin(np.sqrt(np.clip(x, 0, 4)) / 2)
    exact = 2 / np.pi * (phi + np.sin(phi) * np.cos(phi))
    np.testing.assert_allclose(spectra.theory_cdf(x, "linear", 1.0, 0.0, 1, "gaussian"), exact, atol=2e-5)


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_linear_gaussian_theory_moments_are_fuss_catalan(depth):
    """E[λ^k] = C((L+1)k, k)/(Lk + 1), by integrating the theory density; the edge (L+1)^{L+1}/L^L."""
    fuss = [comb((depth + 1) * k, k) / (depth * k + 1) for k in range(5)]
    got = _theory_moments_by_integration("linear", 1.0, 0.0, depth, "gaussian", kmax=4)
    np.testing.assert_allclose(got, fuss, rtol=2e-6)
    edge = (depth + 1) ** (depth + 1) / depth**depth
    assert spectra.theory_edges("linear", 1.0, 0.0, depth, "gaussian")[1] == pytest.approx(edge, rel=1e-9)


@pytest.mark.parametrize(("depth", "seed"), [(2, 0), (3, 1)])
def test_linear_gaussian_network_moments_are_fuss_catalan(depth, seed):
    """Width 1000: the k-th moment of the empirical spectrum within 1.5%, 3%, 6% (k = 1, 2, 3) — about
    four standard deviations of a width-1000 net's moments over seeds (0.3%, 0.7%, 1.4%)."""
    eigs = spectra.jacobian_spectrum("linear", 1.0, 0.0, depth, 1000, "gaussian", seed)
    for k, tol in ((1, 0.015), (2, 0.03), (3, 0.06)):
        fuss = comb((depth + 1) * k, k) / (depth * k + 1)
        assert np.mean(eigs**k) == pytest.approx(fuss, rel=tol)


@pytest.mark.parametrize("sigma_w", [0.7, 1.0, 1.3])
def test_linear_orthogonal_is_a_point_mass(sigma_w):
    depth = 5
    atom = sigma_w ** (2 * depth)
    assert spectra.theory_atoms("linear", sigma_w, 0.3, depth, "orthogonal") == \
        (Atom(pytest.approx(atom), 1.0),)
    x = atom * np.array([0.5, 0.999, 1.0, 1.001, 2.0])
    assert np.all(spectra.theory_density(x, "linear", sigma_w, 0.3, depth, "orthogonal") == 0.0)
    eigs = spectra.jacobian_spectrum("linear", sigma_w, 0.3, depth, 300, "orthogonal", 0)
    np.testing.assert_allclose(eigs, atom, rtol=1e-5)
    assert spectra.theory_moments("linear", sigma_w, 0.3, depth, "orthogonal") == (pytest.approx(atom), 0.0)


# -- the variance formula ----------------------------------------------------------------------------

CRITICAL_CASES = [
    ("tanh", _tanh, _dtanh, 0.3, ()),
    ("erf", _erf, _derf, 0.2, ()),
]


@pytest.mark.parametrize("weights", ["gaussian", "orthogonal"])
@pytest.mark.parametrize(("name", "phi", "dphi", "sigma_b", "kinks"), CRITICAL_CASES)
def test_variance_at_criticality_smooth(name, phi, dphi, sigma_b, kinks, weights):
    """σ²_{JJᵀ} = L (μ₂/μ₁² − 1 − s₁), μ_k = E[φ'(√q* z)^{2k}] by quad at the critical q*."""
    sw = _critical(phi, dphi, sigma_b)
    q = _q_star(phi, sw, sigma_b)
    mu1, mu2 = _mu(dphi, q, 1), _mu(dphi, q, 2)
    s1 = -1.0 if weights == "gaussian" else 0.0
    for depth in (1, 7, 64):
        mean, var = spectra.theory_moments(name, sw, sigma_b, depth, weights)
        assert mean == pytest.approx(1.0, abs=1e-8)
        assert var == pytest.approx(depth * (mu2 / mu1**2 - 1 - s1), rel=1e-7)


@pytest.mark.parametrize(("weights", "s1"), [("gaussian", -1.0), ("orthogonal", 0.0)])
def test_variance_at_criticality_relu(weights, s1):
    """ReLU: φ'² is Bernoulli(½), μ₁ = μ₂ = ½, so μ₂/μ₁² = 2 and σ²_{JJᵀ} = L(1 − s₁) at σ_w = √2.
    (The engine's μ₁ comes from Gauss–Legendre quadrature, good to ~1e-14; χ^1000 multiplies that.)"""
    for depth in (1, 10, 1000):
        assert spectra.theory_moments("relu", SQRT2, 0.0, depth, weights) == \
            (pytest.approx(1.0, rel=1e-9), pytest.approx(depth * (1 - s1), rel=1e-9))


@pytest.mark.parametrize("alpha", [0.3, 1.0])
def test_shifted_relu_orthogonal_variance(alpha):
    """(1 − p)/p · L with p = ½ erfc(−α/√(2q*)), at the σ_w where σ_w² p = 1."""
    act = get("shifted_relu", alpha=alpha)
    sigma_b = 0.1

    def p_of(sw):
        q = _q_star(lambda x: max(x + alpha, 0.0) - alpha, sw, sigma_b, (-alpha,))
        return 0.5 * special.erfc(-alpha / math.sqrt(2 * q))

    sw = optimize.brentq(lambda s: s * s * p_of(s) - 1.0, 1.0, 1.4, xtol=1e-14)
    p = p_of(sw)
    assert spectra.critical_sigma_w(act, sigma_b) == pytest.approx(sw, rel=1e-9)
    for depth in (1, 8, 100):
        mean, var = spectra.theory_moments(act, sw, sigma_b, depth, "orthogonal")
        assert mean == pytest.approx(1.0, abs=1e-8)
        assert var == pytest.approx(depth * (1 - p) / p, rel=1e-7)


@pytest.mark.parametrize(("phi", "sigma_b", "weights", "depth"), [
    ("tanh", 0.3, "orthogonal", 4), ("tanh", 0.3, "gaussian", 3), ("erf", 0.2, "orthogonal", 16),
    ("relu", 0.0, "gaussian", 4), ("hard_tanh", 0.2, "orthogonal", 6),
])
def test_density_moments_match_the_moment_formula(phi, sigma_b, weights, depth):
    """Mass, mean and variance of the theory density (plus atoms), integrated here, against
    theory_moments' closed form: two different computations of the same law must agree."""
    sw = spectra.critical_sigma_w(phi, sigma_b) * 1.02        # off criticality: χ^L ≠ 1 is checked too
    m = _theory_moments_by_integration(phi, sw, sigma_b, depth, weights, kmax=2)
    mean, var = spectra.theory_moments(phi, sw, sigma_b, depth, weights)
    assert m[0] == pytest.approx(1.0, abs=1e-5)
    assert m[1] == pytest.approx(mean, rel=1e-5)
    assert m[2] - m[1] ** 2 == pytest.approx(var, rel=1e-4)


def test_critical_sigma_w_matches_theory_md():
    assert spectra.critical_sigma_w("relu", 0.0) == pytest.approx(SQRT2, rel=1e-10)
    assert spectra.critical_sigma_w("relu", 0.7) == pytest.approx(SQRT2, rel=1e-10)
    assert spectra.critical_sigma_w("linear", 0.0) == pytest.approx(1.0, rel=1e-10)
    assert spectra.critical_sigma_w("erf", 0.0) == pytest.approx(math.sqrt(math.pi) / 2, rel=1e-8)
    assert spectra.critical_sigma_w("tanh", 0.0) == pytest.approx(1.0, rel=1e-8)
    for sigma_b, sw in ((0.05, 1.1225), (0.3, 1.3956), (0.5, 1.5497)):
        assert spectra.critical_sigma_w("tanh", sigma_b) == pytest.approx(sw, abs=1e-3)
    assert spectra.critical_sigma_w("tanh", 0.3) == pytest.approx(_critical(_tanh, _dtanh, 0.3), rel=1e-9)
    with pytest.raises(ValueError, match="softplus"):
        spectra.critical_sigma_w("softplus", 0.1)


# -- point masses ------------------------------------------------------------------------------------

@pytest.mark.parametrize("weights", ["gaussian", "orthogonal"])
def test_relu_zero_eigenvalues_are_half_at_every_depth(weights):
    """rank J = rank of one D (generic subspaces), so the zero atom is 1 − p = ½, not 1 − p^L."""
    for depth in (1, 3, 20):
        atoms = spectra.theory_atoms("relu", SQRT2, 0.0, depth, weights)
        assert atoms[0] == Atom(0.0, pytest.approx(0.5, abs=1e-12))
    eigs = spectra.jacobian_spectrum("relu", SQRT2, 0.0, 3, 1000, weights, 3)
    zero = np.mean(eigs < 1e-10 * eigs.max())
    # rank J = min over layers of Binomial(1000, ½) counts: ≈ 0.5 + 0.016 × E[max of 3 normals] ≈ 0.514
    assert 0.5 <= zero <= 0.56


def test_orthogonal_bernoulli_top_atom():
    """Hard tanh, orthogonal: singular values exactly σ_w^L on the intersection of the L active
    subspaces, of dimension (1 − L(1 − p))N (Belinschi 2003 for the free product)."""
    sigma_w, sigma_b, depth = 1.05, 0.1, 4
    q = _q_star(lambda x: min(max(x, -1.0), 1.0), sigma_w, sigma_b, (-1.0, 1.0))
    p = math.erf(1 / math.sqrt(2 * q))
    atoms = spectra.theory_atoms("hard_tanh", sigma_w, sigma_b, depth, "orthogonal")
    assert atoms[0] == Atom(0.0, pytest.approx(1 - p, rel=1e-10))
    top = sigma_w ** (2 * depth)
    assert atoms[1] == Atom(pytest.approx(top, rel=1e-12), pytest.approx(1 - depth * (1 - p)))
    assert spectra.theory_edges("hard_tanh", sigma_w, sigma_b, depth, "orthogonal")[1] == \
        pytest.approx(sigma_w ** (2 * depth), rel=1e-9)
    eigs = spectra.jacobian_spectrum("hard_tanh", sigma_w, sigma_b, depth, 1000, "orthogonal", 0)
    at_top = np.mean(np.abs(eigs / sigma_w ** (2 * depth) - 1) < 1e-4)
    # 1 − Σ_l (1 − p_l) with p_l ~ Binomial(1000, p)/1000: standard deviation ≈ √(L p(1 − p)/1000)
    assert at_top == pytest.approx(1 - depth * (1 - p), abs=4 * math.sqrt(depth * p * (1 - p) / 1000))


# -- every activation, and the real networks ---------------------------------------------------------

@pytest.mark.parametrize("weights", ["gaussian", "orthogonal"])
@pytest.mark.parametrize("name", NAMES)
def test_every_activation_gives_a_finite_nonnegative_density_of_mass_one(name, weights):
    params = SpectraParams(phi=name, weights=weights)
    phi = params.activation()
    for sigma_w, depth in ((params.sigma_w, params.depth), (0.6, 3)):
        lo, hi = spectra.theory_edges(phi, sigma_w, params.sigma_b, depth, weights, log=True)
        ell = np.linspace(hi - 40, hi + 1, 500)
        psi = spectra.theory_density(ell, phi, sigma_w, params.sigma_b, depth, weights, log=True)
        assert np.all(np.isfinite(psi)) and np.all(psi >= 0)
        x = np.exp(ell)
        rho = spectra.theory_density(x, phi, sigma_w, params.sigma_b, depth, weights)
        np.testing.assert_allclose(rho * x, psi, rtol=1e-6, atol=1e-9 * psi.max())
        if depth == 3:
            mass = _theory_moments_by_integration(phi, sigma_w, params.sigma_b, depth, weights, kmax=0)[0]
            assert mass == pytest.approx(1.0, abs=1e-4)
    for a in spectra.theory_atoms(phi, params.sigma_w, params.sigma_b, params.depth, weights):
        assert 0 < a.mass <= 1 and a.location >= 0


SIMULATED = [
    ("tanh", 0.1, "orthogonal", 6, 0.05),
    ("erf", 0.3, "gaussian", 2, 0.05),
    ("elu", 0.1, "orthogonal", 2, 0.05),
    ("relu", 0.0, "gaussian", 4, 0.05),
    ("hard_tanh", 0.2, "orthogonal", 4, 0.07),
    ("linear", 0.0, "gaussian", 1, 0.02),
]


@pytest.mark.parametrize(("phi", "sigma_b", "weights", "depth", "tol"), SIMULATED)
def test_simulated_network_matches_theory(phi, sigma_b, weights, depth, tol):
    """Kolmogorov–Smirnov-type distance between a width-1000 network's spectrum and the theory CDF.

    Tolerances: linear (Marchenko–Pastur) 0.02. Smooth φ 0.05 — the law of φ'(h)² is sampled by 1000
    units per layer: its empirical CDF is off by up to ~0.8/√1000 ≈ 0.025, and its mean by ~2%, which
    rescales the whole spectrum by ~2%·√L (seeds 0–2 of the tanh case give 0.010, 0.033, 0.011).
    Bernoulli φ 0.05 — the zero eigenvalues number N minus the smallest of L Binomial(N, p) counts,
    1 − p + O(√(log L / N)); orthogonal hard tanh 0.07 — its top atom holds 1 − Σ_l (1 − p_l) of the
    spectrum, whose standard deviation √(L p(1 − p)/N) is 0.016 here.
    """
    sw = spectra.critical_sigma_w(phi, sigma_b)
    eigs = spectra.jacobian_spectrum(phi, sw, sigma_b, depth, 1000, weights, 1)
    assert _ks_distance(eigs, phi, sw, sigma_b, depth, weights) <= tol


def test_generator_yields_growing_depths_and_matches_the_single_spectrum():
    gen = spectra.jacobian_spectra("tanh", 1.1, 0.1, 10, 64, "orthogonal", 7)
    got = list(gen)
    assert [d for d, _ in got] == [1, 2, 4, 8, 10]
    assert all(e.shape == (64,) and np.all(np.diff(e) >= 0) for _, e in got)
    for index, depth in ((-1, 10), (2, 4)):
        alone = spectra.jacobian_spectrum("tanh", 1.1, 0.1, depth, 64, "orthogonal", 7)
        np.testing.assert_array_equal(got[index][1], alone)
    logs = dict(spectra.jacobian_spectra("tanh", 1.1, 0.1, 10, 64, "orthogonal", 7, depths=[3, 10], log=True))
    assert sorted(logs) == [3, 10]
    np.testing.assert_allclose(np.exp(logs[10]), got[-1][1], rtol=1e-12)
    stopped = spectra.jacobian_spectra("relu", SQRT2, 0.0, 1000, 64, "gaussian")
    assert next(stopped)[0] == 1
    stopped.close()                      # cancelling: the remaining 999 layers are never computed


def test_extreme_scales_stay_finite_in_log_mode():
    """ReLU with σ_b = 0 is homogeneous: the same draws at σ_w and at √2 give J's exactly (σ_w/√2)^L
    apart, so ln λ shifts by L ln(σ_w²/2) — checked on the eigenvalues float32 resolves (within e^{−20}
    of the largest). At L = 400 the theory's χ^L = 8^400 and 0.005^400 leave float64; ln λ does not."""
    depth = 60
    base = spectra.jacobian_spectrum("relu", SQRT2, 0.0, depth, 64, "gaussian", 0, log=True)
    top = base >= base[-1] - 20
    for sigma_w in (4.0, 0.1):
        shift = depth * math.log(sigma_w**2 / 2)
        logs = spectra.jacobian_spectrum("relu", sigma_w, 0.0, depth, 64, "gaussian", 0, log=True)
        np.testing.assert_allclose(logs[top] - shift, base[top], atol=1e-3)
    hi_base = spectra.theory_edges("relu", SQRT2, 0.0, 400, "gaussian", log=True)[1]
    for sigma_w, mean in ((4.0, math.inf), (0.1, 0.0)):
        shift = 400 * math.log(sigma_w**2 / 2)
        hi = spectra.theory_edges("relu", sigma_w, 0.0, 400, "gaussian", log=True)[1]
        assert hi == pytest.approx(hi_base + shift, abs=1e-9 * abs(shift))
        ell = np.linspace(hi - 300, hi - 1e-6, 50)
        psi = spectra.theory_density(ell, "relu", sigma_w, 0.0, 400, "gaussian", log=True)
        same = spectra.theory_density(ell - shift, "relu", SQRT2, 0.0, 400, "gaussian", log=True)
        np.testing.assert_allclose(psi, same, rtol=1e-6)
        assert spectra.theory_moments("relu", sigma_w, 0.0, 400, "gaussian")[0] == mean


# -- universality ------------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma0_sq", [0.25, 0.6])
def test_universal_limits_have_the_moments_of_their_s_transforms(sigma0_sq):
    """Smooth: S = e^{−σ₀² m}, so φ(m) = (1 + m) e^{σ₀² m}; Bernoulli: S = e^{−σ₀² m/(1 + m)}, with an
    atom 1 − σ₀² at e^{σ₀²} and its continuous part on (0, e σ₀²]. Supports from dx/dm = 0 in closed
    form: smooth σ₀² m² + σ₀² m − 1 = 0; Bernoulli m = −1/(1 − σ₀²)."""
    n = 5
    one_plus_m = np.array([1.0, 1.0] + [0.0] * (n - 2))
    smooth = np.convolve(one_plus_m, np.array([sigma0_sq**j / factorial(j) for j in range(n)]))[:n]
    ratio = np.array([0.0] + [(-1.0) ** (j + 1) for j in range(1, n)])          # m/(1 + m)
    bern = np.convolve(one_plus_m, _exp_series(sigma0_sq * ratio, n))[:n]

    def ln_x(m):
        return math.log((1 + m) / m) + sigma0_sq * m

    root = math.sqrt(1 + 4 / sigma0_sq)
    supports = {"smooth": (ln_x((-1 - root) / 2), ln_x((-1 + root) / 2)),
                "bernoulli": (-math.inf, 1.0 + math.log(sigma0_sq))}
    for kind, series in (("smooth", smooth), ("bernoulli", bern)):
        lo, hi = supports[kind]
        got = _log_moments(lambda e, kind=kind: spectra.universality_density(e, kind, sigma0_sq, log=True),
                           lo, hi, 4)
        for a in spectra.universality_atoms(kind, sigma0_sq, log=True):
            got += a.mass * np.exp(np.arange(5) * a.location)
        np.testing.assert_allclose(got[1:], _lagrange_moments(series, 4), rtol=1e-5)
        assert spectra.universality_density(np.exp([lo - 0.01, hi + 0.01]), kind, sigma0_sq)[1] == 0.0
    assert spectra.universality_atoms("bernoulli", sigma0_sq) == \
        (Atom(pytest.approx(math.exp(sigma0_sq)), pytest.approx(1 - sigma0_sq)),)
    assert spectra.universality_atoms("smooth", sigma0_sq) == ()


def test_deep_hard_tanh_nets_approach_the_bernoulli_limit():
    """Orthogonal hard-tanh nets tuned as in Pennington et al. 2018: p = P(|h| < 1) = L/(L + σ₀²) sets q*,
    σ_w = 1/√p makes χ = 1, σ_b closes the fixed point; then L(1 − p)/p = σ₀² at every depth. Below the
    limit's top atom, their CDF converges to the limit's as L grows."""
    sigma0_sq = 0.25
    x = np.geomspace(0.02, 0.6, 50)
    limit = spectra.universality_cdf(x, "bernoulli", sigma0_sq)
    gaps = []
    for depth in (4, 16, 64):
        p = depth / (depth + sigma0_sq)
        q = 0.5 / special.erfinv(p) ** 2
        sw = 1 / math.sqrt(p)
        s = math.sqrt(q)
        sb = math.sqrt(q - sw**2 * _gauss(lambda z, s=s: min(max(s * z, -1.0), 1.0) ** 2, (-1 / s, 1 / s)))
        assert spectra.theory_moments("hard_tanh", sw, sb, depth, "orthogonal") == \
            (pytest.approx(1.0, abs=1e-7), pytest.approx(sigma0_sq, rel=1e-5))
        gaps.append(np.max(np.abs(spectra.theory_cdf(x, "hard_tanh", sw, sb, depth, "orthogonal") - limit)))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.01


# -- parameters and refusals -------------------------------------------------------------------------

def test_params_declaration_and_refusals():
    p = SpectraParams()
    assert p.phi == "tanh" and p.weights == "orthogonal" and p.xscale == "log"
    assert abs(spectra.critical_sigma_w("tanh", p.sigma_b) / p.sigma_w - 1) < 0.05     # critical-ish
    assert SpectraParams.spec("sigma_w").label == "σ_w" and SpectraParams.spec("phi").choices == NAMES
    for field, value, words in (("sigma_w", 0.0, "out of range"), ("width", 0, "out of range"),
                                ("depth", 10**6, "out of range"), ("weights", "uniform", "not one of")):
        with pytest.raises(ParamError, match=words) as info:
            p.replace(**{field: value})
        assert info.value.field == field
    assert SpectraParams(phi="shifted_relu", alpha=-0.5).activation().alpha == -0.5


def test_bad_arguments_are_refused_with_a_message():
    with pytest.raises(ValueError, match="width"):
        spectra.jacobian_spectrum("tanh", 1.0, 0.0, 3, 0)
    with pytest.raises(ValueError, match="weights"):
        spectra.theory_density([1.0], "tanh", 1.0, 0.0, 3, "uniform")
    with pytest.raises(ValueError, match="σ_w"):
        spectra.theory_moments("tanh", 0.0, 0.0, 3)
    with pytest.raises(ValueError, match="depth"):
        list(spectra.jacobian_spectra("tanh", 1.0, 0.0, 3, 8, depths=[5]))
    with pytest.raises(spectra.NoFixedPointError, match="grows without bound"):
        spectra.theory_density([1.0], "elu", 3.0, 0.1, 3)


# -- per-layer progress, λ = 0, the shared caches (issue 12) --------------------------------------------

def test_jacobian_spectra_reports_progress_twice_a_layer_and_the_spectra_do_not_change():
    plain = list(spectra.jacobian_spectra("tanh", 1.05, 0.015, 6, 48, seed=3, depths=[2, 6]))
    items = list(spectra.jacobian_spectra("tanh", 1.05, 0.015, 6, 48, seed=3, depths=[2, 6], progress=True))
    reports = [i for i in items if isinstance(i, spectra.Progress)]
    results = [i for i in items if not isinstance(i, spectra.Progress)]
    assert [r.layer for r in reports] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [d for d, _ in results] == [2, 6]
    for (_, a), (_, b) in zip(plain, results, strict=True):
        np.testing.assert_array_equal(a, b)
    # the spectrum at L = 2 comes after layer 2's reports and before layer 3's
    assert isinstance(items[4], tuple) and items[4][0] == 2


def test_closing_jacobian_spectra_between_reports_stops_it_mid_network():
    steps = spectra.jacobian_spectra("tanh", 1.0, 0.0, 50, 64, depths=[50], progress=True)
    seen = [next(steps) for _ in range(5)]
    steps.close()
    assert all(isinstance(s, spectra.Progress) for s in seen) and seen[-1].layer == 3
    with pytest.raises(StopIteration):
        next(steps)


@pytest.mark.parametrize(("phi", "sigma_w", "sigma_b", "weights"), [
    ("tanh", 1.0, 0.1, "gaussian"), ("tanh", 1.05, 0.015, "orthogonal"), ("relu", 1.414, 0.0, "gaussian"),
    ("hard_tanh", 1.1, 0.1, "orthogonal")])
def test_the_cdf_at_zero_is_the_mass_of_the_atom_at_zero(phi, sigma_w, sigma_b, weights):
    """P(λ ≤ 0) = P(λ = 0): no continuous mass lies at or below 0, whatever other points are asked."""
    at_zero = sum(a.mass for a in spectra.theory_atoms(phi, sigma_w, sigma_b, 4, weights) if a.location == 0.0)
    for x in ([0.0], [0.0, 1e-3], [0.0, 0.5, 2.0]):
        assert spectra.theory_cdf(x, phi, sigma_w, sigma_b, 4, weights)[0] == pytest.approx(at_zero, abs=1e-12)


def test_a_cache_key_asked_for_by_many_threads_at_once_is_built_once():
    import threading
    import time

    from core.spectra.cache import _Cache

    cache, builds, results = _Cache(), [], []

    def make():
        builds.append(1)
        time.sleep(0.05)
        return object()

    threads = [threading.Thread(target=lambda: results.append(cache.get("k", make))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len({id(r) for r in results}) == 1


def test_critical_sigma_w_takes_the_argument_order_of_the_contract():
    """ARCHITECTURE.md: ``critical_sigma_w(sigma_b, phi, mu2)`` everywhere; the earlier (phi, σ_b) still works."""
    assert spectra.critical_sigma_w(0.3, "tanh") == spectra.critical_sigma_w("tanh", 0.3)
    assert spectra.critical_sigma_w(0.3, "tanh", 1.0) == pytest.approx(1.3956, abs=1e-3)    # THEORY.md §2
    with pytest.raises(ValueError, match="mu2"):
        spectra.critical_sigma_w(0.3, "tanh", 1.25)
