"""The Signal Propagation engine against THEORY.md §2: closed forms written out here, brute-force
Monte Carlo, published numbers, and real simulated networks with tolerances from their finite width."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from core import activations
from core import propagation as prop
from core.activations import NAMES, get
from core.params import ParamError

# ---- closed forms (THEORY.md §2), written out independently of the engine -------------------------


def relu_cov(q, c):
    """E[relu(u₁) relu(u₂)] at equal variances q: the arc-cosine kernel (Cho & Saul 2009)."""
    return q / (2 * np.pi) * (np.sqrt(1 - c * c) + (np.pi - np.arccos(c)) * c)


def relu_dcov(c):
    """E[relu'(u₁) relu'(u₂)] = P(u₁ > 0, u₂ > 0)."""
    return (np.pi - np.arccos(c)) / (2 * np.pi)


def erf_var(q):
    return 2 / np.pi * np.arcsin(2 * q / (1 + 2 * q))


def erf_cov(q, c):
    return 2 / np.pi * np.arcsin(2 * q * c / (1 + 2 * q))


def erf_dvar(q):
    """E[erf'(√q z)²]."""
    return 4 / np.pi / np.sqrt(1 + 4 * q)


def erf_dcov(q, c):
    """E[erf'(u₁) erf'(u₂)] = (1/q) ∂/∂c E[erf(u₁) erf(u₂)] (Price's theorem)."""
    return 4 / np.pi / np.sqrt((1 + 2 * q) ** 2 - (2 * q * c) ** 2)


def erf_dvar_dq(q):
    """d/dq E[erf(√q z)²]."""
    return 4 / np.pi / ((1 + 2 * q) * np.sqrt(1 + 4 * q))


def erf_fixed_point(sw, sb, mu2=1.0):
    """q* and c* of erf (σ_b > 0) from the closed-form maps by Brent's method (V concave: one root)."""
    q = brentq(lambda q: sw**2 * mu2 * erf_var(q) + sb**2 - q, 0.0, 1e3, xtol=1e-15, rtol=1e-15)
    if mu2 == 1 and sw**2 * erf_dvar(q) <= 1:
        return q, 1.0                                   # ordered: c* = 1
    c = brentq(lambda c: (sw**2 * erf_cov(q, c) + sb**2) / q - c, 0.0, 1.0 - 1e-9, xtol=1e-15, rtol=1e-15)
    return q, c


@pytest.fixture
def one_torch_thread():
    """Small simulations run fastest on one intra-op thread (and avoid oversubscribing a busy CI box)."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- the maps -------------------------------------------------------------------------------------


def test_linear_q_map_is_affine():
    q = np.array([0.0, 0.3, 2.0, 7.5])[:, None]
    sw, sb, mu2 = np.array([0.5, 1.0, 2.0]), 0.4, np.array([1.0, 1.25, 3.0])
    expected = sw**2 * mu2 * q + sb**2
    np.testing.assert_allclose(prop.q_map(q, sw, sb, "linear", mu2), expected, rtol=1e-13)


def test_relu_q_map_and_arc_cosine_c_map():
    q = np.array([0.5, 3.0])[:, None]
    sw, sb, mu2 = 1.3, 0.2, 1.25
    np.testing.assert_allclose(prop.q_map(q, sw, sb, "relu", mu2), sw**2 * mu2 * q / 2 + sb**2, rtol=1e-13)
    c = np.linspace(-1.0, 1.0, 21)
    expected = (sw**2 * relu_cov(q, c) + sb**2) / (sw**2 * mu2 * q / 2 + sb**2)
    np.testing.assert_allclose(prop.c_map(c, q, sw, sb, "relu", mu2), expected, rtol=1e-12, atol=1e-14)


def test_relu_c_map_without_bias_is_scale_free():
    """At σ_b = 0 the ReLU correlation map depends neither on q nor on σ_w (Pretorius et al. 2018)."""
    c = np.linspace(-0.9, 1.0, 8)
    maps = [prop.c_map(c, q, sw, 0.0, "relu") for q in (1e-6, 1.0, 1e6) for sw in (0.5, 2.0)]
    for m in maps:
        np.testing.assert_allclose(m, relu_cov(1.0, c) / 0.5, rtol=1e-12, atol=1e-14)


def test_erf_maps_match_their_closed_forms():
    q = np.array([0.01, 0.7, 25.0])[:, None]
    c = np.array([-0.8, 0.0, 0.35, 0.999, 1.0])
    sw, sb, mu2 = 1.7, 0.3, 1.5
    expected = sw**2 * mu2 * erf_var(q) + sb**2
    np.testing.assert_allclose(prop.q_map(q, sw, sb, "erf", mu2), expected, rtol=1e-13)
    expected = (sw**2 * erf_cov(q, c) + sb**2) / (sw**2 * mu2 * erf_var(q) + sb**2)
    np.testing.assert_allclose(prop.c_map(c, q, sw, sb, "erf", mu2), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("q", "c", "sw", "sb"), [(0.6, 0.3, 1.2, 0.1), (4.0, 0.9, 2.5, 0.5)])
def test_tanh_maps_against_monte_carlo(q, c, sw, sb):
    """Brute force: 4·10⁶ Gaussian pairs; tolerance 5 standard errors of the estimate."""
    rng = np.random.default_rng(7)
    z1, z2 = rng.standard_normal((2, 4_000_000))
    u1 = math.sqrt(q) * z1
    u2 = math.sqrt(q) * (c * z1 + math.sqrt(1 - c * c) * z2)
    t1, t2 = np.tanh(u1), np.tanh(u2)
    var, cov = t1 * t1, t1 * t2
    q_mc = sw**2 * var.mean() + sb**2
    assert prop.q_map(q, sw, sb, "tanh") == pytest.approx(q_mc, abs=5 * sw**2 * var.std() / 2000)
    c_mc = (sw**2 * cov.mean() + sb**2) / q_mc
    c_err = sw**2 * (cov.std() + c_mc * var.std()) / 2000 / q_mc       # numerator's and denominator's
    assert prop.c_map(c, q, sw, sb, "tanh") == pytest.approx(c_mc, abs=5 * c_err)


# ---- fixed points, χ₁ and depth scales against closed forms ----------------------------------------


@pytest.mark.parametrize(("sw", "sb", "mu2"), [(0.7, 0.2, 1.0), (1.5, 0.05, 1.0), (2.5, 1.0, 1.0),
                                               (1.2, 0.3, 1.6), (3.0, 0.05, 2.0)])
def test_erf_fixed_point_chi1_and_depth_scales_match_closed_forms(sw, sb, mu2):
    q, c = erf_fixed_point(sw, sb, mu2)
    assert prop.q_star(sw, sb, "erf", mu2) == pytest.approx(q, rel=1e-11)
    assert prop.chi1(sw, sb, "erf", mu2) == pytest.approx(sw**2 * mu2 * erf_dvar(q), rel=1e-11)
    assert prop.c_star(sw, sb, "erf", mu2) == pytest.approx(c, abs=1e-10)
    xi_q, xi_c = prop.depth_scales(sw, sb, "erf", mu2)
    assert xi_q == pytest.approx(-1 / math.log(sw**2 * mu2 * erf_dvar_dq(q)), rel=1e-9)
    assert xi_c == pytest.approx(-1 / math.log(sw**2 * erf_dcov(q, c)), rel=1e-8)


def test_erf_and_relu_broadcast_over_grids():
    sw = np.array([0.5, 1.1, 2.0])
    sb = np.array([[0.1], [0.6]])
    q = prop.q_star(sw, sb, "erf")
    assert q.shape == (2, 3)
    expected = [[erf_fixed_point(w, b)[0] for w in sw] for b in sb[:, 0]]
    np.testing.assert_allclose(q, expected, rtol=1e-11)
    chi = prop.chi1(sw, sb, "relu", 1.5)
    np.testing.assert_allclose(chi, np.broadcast_to(sw**2 * 1.5 / 2, (2, 3)), rtol=1e-13)


def test_critical_sigma_w_published_values():
    assert prop.critical_sigma_w(0.0, "erf") == pytest.approx(math.sqrt(math.pi) / 2, rel=1e-8)
    assert prop.critical_sigma_w(0.0, "relu") == pytest.approx(math.sqrt(2), rel=1e-12)
    # Poole et al. 2016 / THEORY.md: tanh's order-to-chaos line, from adaptive quadrature
    tanh = prop.critical_sigma_w([0.0, 0.05, 0.3, 0.5], "tanh")
    np.testing.assert_allclose(tanh, [1.0, 1.1225, 1.3956, 1.5497], atol=1e-3)
    assert tanh[0] == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize(("mu2", "expected"), [(1 / 0.5, math.sqrt(2 * 0.5)), (1 / 0.8, math.sqrt(2 * 0.8)),
                                               (1 + 0.5**2, math.sqrt(2 / 1.25)), (1 + 1.0, 1.0)])
def test_pretorius_critical_point_of_noisy_relu(mu2, expected):
    """Dropout keep p: σ_w = √(2p); Gaussian noise N(1, s²): σ_w = √(2/(1 + s²)) (Pretorius et al. 2018)."""
    assert prop.critical_sigma_w(0.0, "relu", mu2) == pytest.approx(expected, rel=1e-12)
    assert prop.chi1(expected, 0.0, "relu", mu2) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("mu2", [1.25, 2.0, 5.0])
def test_noise_destroys_correlation_at_relu_criticality(mu2):
    """At (√(2/μ₂), 0) the map is c ↦ 2 E[relu relu](1, c)/μ₂, whose stable fixed point is below 1."""
    sw = math.sqrt(2 / mu2)
    c = brentq(lambda c: 2 * relu_cov(1.0, c) / mu2 - c, 0.0, 1.0 - 1e-15, xtol=1e-15)
    assert c < 1
    assert prop.c_star(sw, 0.0, "relu", mu2) == pytest.approx(c, abs=1e-10)
    _, xi_c = prop.depth_scales(sw, 0.0, "relu", mu2)
    assert xi_c == pytest.approx(-1 / math.log(2 * relu_dcov(c) / mu2), rel=1e-8)
    # without noise the same point keeps c* = 1 with a marginal slope: no finite depth scale
    assert prop.c_star(math.sqrt(2), 0.0, "relu") == 1.0
    assert prop.depth_scales(math.sqrt(2), 0.0, "relu")[1] == np.inf


def test_ordered_and_chaotic_tanh():
    assert prop.c_star(0.9, 0.3, "tanh") == 1.0
    chi = prop.chi1(0.9, 0.3, "tanh")
    assert chi < 1 and prop.depth_scales(0.9, 0.3, "tanh")[1] == pytest.approx(-1 / math.log(chi), rel=1e-12)
    # chaotic: c* < 1 is a fixed point of the correlation map at q* (bivariate quadrature checks it)
    for sw, sb in [(1.5, 0.05), (2.5, 1.0), (4.0, 0.0)]:
        q, c = prop.q_star(sw, sb, "tanh"), prop.c_star(sw, sb, "tanh")
        assert c < 1
        assert prop.c_map(c, q, sw, sb, "tanh") == pytest.approx(c, abs=1e-12)
        assert prop.q_map(q, sw, sb, "tanh") == pytest.approx(q, rel=1e-13)
    assert prop.c_star(4.0, 0.0, "tanh") == pytest.approx(0.0, abs=1e-12)     # odd φ, no bias


# ---- degenerate and divergent points --------------------------------------------------------------


def test_divergent_variances_are_inf():
    assert prop.q_star(2.0, 0.1, "relu") == np.inf
    assert prop.q_star(1.0, 0.5, "relu", 2.5) == np.inf                  # σ_w² μ₂ / 2 > 1
    assert prop.q_star(1.2, 0.5, "linear") == np.inf
    assert prop.q_star(1.0, 0.0, "linear") == np.inf                      # marginal: documented as inf
    assert prop.q_star(3.0, 0.2, "softplus") == np.inf
    assert prop.q_map(np.inf, 1.0, 0.1, "relu") == np.inf
    assert prop.q_map(np.inf, 1.0, 0.0, "tanh") == pytest.approx(1.0)   # a bounded φ saturates
    q = prop.q_trajectory(1.0, 4.0, 0.05, "relu", 1.0, 500)
    assert np.isfinite(q[300]) and np.isinf(q[-1])
    assert np.all(np.diff(q[np.isfinite(q)]) > 0) and np.all(np.isinf(q[np.argmax(np.isinf(q)):]))


def test_degenerate_points_are_limits():
    for sw in (0.5, 1.0, 2.0, 3.0):                 # q* ∈ {0, inf} yet χ₁ is defined
        assert prop.chi1(sw, 0.0, "relu", 1.5) == pytest.approx(sw**2 * 1.5 / 2, rel=1e-13)
        assert prop.c_star(sw, 0.0, "relu") == 1.0
    assert prop.q_star(0.5, 0.0, "relu") == 0.0
    # tanh without bias contracts to q* = 0; the scale-free quantities are the σ_b → 0⁺ limits
    assert prop.q_star(0.8, 0.0, "tanh") == 0.0
    assert prop.chi1(0.8, 0.0, "tanh") == pytest.approx(0.64, rel=1e-9)
    assert prop.chi1(0.8, 1e-6, "tanh") == pytest.approx(0.64, rel=1e-9)
    assert prop.depth_scales(0.8, 0.0, "tanh")[1] == pytest.approx(-1 / math.log(0.64), rel=1e-9)
    assert prop.depth_scales(1.0, 0.0, "tanh")[1] == np.inf                 # the critical point itself


def test_no_nan_anywhere():
    names = [*NAMES, get("shifted_relu", alpha=-1.5), get("shifted_relu", alpha=0.0)]
    sw = np.array([0.05, 1.0, 1.5, 4.0])[None, :, None]
    sb = np.array([0.0, 0.05, 2.0])[:, None, None]
    mu2 = np.array([1.0, 2.0])
    grid_w, grid_b = np.linspace(0.05, 4.0, 24), np.linspace(0.0, 2.0, 12)
    for phi in names:
        values = [prop.q_star(sw, sb, phi, mu2), prop.chi1(sw, sb, phi, mu2), prop.c_star(sw, sb, phi, mu2),
                  *prop.depth_scales(sw, sb, phi, mu2)]
        for m in (1.0, 20.0):
            pd = prop.phase_diagram(phi, grid_w, grid_b, m)
            values += [pd.chi1, pd.xi_c, pd.xi_q, pd.q_star, pd.c_star]
        values += [prop.q_trajectory(1.0, 4.0, 0.0, phi, 2.0, 100),
                   prop.c_trajectory(0.5, 0.0, 4.0, 0.0, phi, 2.0, 20),
                   prop.grad_trajectory(20.0, 0.05, 2.0, phi, 1.0, 20)]
        for v in values:
            assert not np.isnan(v).any(), phi
        c = values[2]
        assert np.all((c >= 0) & (c <= 1)), phi


# ---- the phase diagram ----------------------------------------------------------------------------


@pytest.mark.parametrize(("phi", "mu2", "c_tol", "slope_tol"), [
    ("tanh", 1.0, 2e-5, 1e-5), ("tanh", 1.5, 2e-5, 1e-5), ("erf", 1.0, 2e-5, 1e-5),
    ("gelu", 1.25, 2e-5, 1e-5), ("relu", 1.0, 1e-12, 1e-12), ("relu", 2.0, 1e-5, 1e-5),
    ("linear", 1.0, 1e-12, 1e-12), ("hard_tanh", 1.0, 1e-4, 1e-3), ("shifted_relu", 1.0, 1e-4, 1e-3),
    ("elu", 1.5, 1e-4, 1e-3)])
def test_phase_diagram_agrees_with_pointwise(phi, mu2, c_tol, slope_tol):
    """The grid interpolates tables (cubic in ln q on 32 points per decade, linear in ρ on 513 points,
    a Mehler series of 128 terms with a power-law tail) where the pointwise functions integrate
    exactly: q*, χ₁ and the variance map's slope e^(−1/ξ_q) agree to 1e-5, c* and the correlation
    map's slope F'(c*) = e^(−1/ξ_c) as stated (looser for kinked φ, whose kernel has a (1 − c)^3/2
    term near c = 1). The depth scales −1/ln(slope) amplify a slope's error near 1, where they
    diverge, so the slopes are compared."""
    sw = np.array([0.05, 0.6, 0.95, 1.2, 1.4, 1.6, 2.4, 4.0])
    sb = np.array([0.0, 0.02, 0.4, 2.0])
    pd = prop.phase_diagram(phi, sw, sb, mu2)
    assert pd.chi1.shape == (sb.size, sw.size)
    SW, SB = np.meshgrid(sw, sb)
    xi_q, xi_c = prop.depth_scales(SW, SB, phi, mu2)

    def close(grid, point, rtol, atol=0.0):
        both_inf = np.isinf(grid) & np.isinf(point) & (np.sign(grid) == np.sign(point))
        assert np.all(both_inf | np.isclose(grid, point, rtol=rtol, atol=atol)), (grid, point)

    close(pd.q_star, prop.q_star(SW, SB, phi, mu2), 1e-5, 1e-12)
    close(pd.chi1, prop.chi1(SW, SB, phi, mu2), 1e-5)
    close(np.exp(-1 / pd.xi_q), np.exp(-1 / xi_q), 0.0, 1e-5)
    close(pd.c_star, prop.c_star(SW, SB, phi, mu2), 0.0, c_tol)
    close(np.exp(-1 / pd.xi_c), np.exp(-1 / xi_c), 0.0, slope_tol)


# ---- trajectories ---------------------------------------------------------------------------------


def test_trajectories_of_linear_relu_and_erf_networks():
    depth, q0, sw, sb, mu2 = 12, 1.7, 0.9, 0.3, 1.2
    expected = [q0, sw**2 * q0 + sb**2]
    for _ in range(depth - 1):
        expected.append(sw**2 * mu2 * expected[-1] + sb**2)
    np.testing.assert_allclose(prop.q_trajectory(q0, sw, sb, "linear", mu2, depth), expected, rtol=1e-13)
    # ReLU without bias: q¹ = σ_w² q⁰, then ×σ_w² μ₂/2 per layer; c follows the arc-cosine map / μ₂
    q = prop.q_trajectory(q0, 1.3, 0.0, "relu", mu2, depth)
    np.testing.assert_allclose(q, q0 * 1.3**2 * (1.3**2 * mu2 / 2) ** np.maximum(np.arange(depth + 1) - 1, 0)
                               * np.r_[1 / 1.3**2, np.ones(depth)], rtol=1e-12)
    c = [0.2, 0.2]
    for _ in range(depth - 1):
        c.append(2 * relu_cov(1.0, c[-1]) / mu2)
    np.testing.assert_allclose(prop.c_trajectory(0.2, q0, 1.3, 0.0, "relu", mu2, depth), c, rtol=1e-12)
    # erf with bias, both maps in closed form
    sw, sb = 1.8, 0.4
    q, c = [q0, sw**2 * q0 + sb**2], [0.5, (sw**2 * q0 * 0.5 + sb**2) / (sw**2 * q0 + sb**2)]
    for _ in range(depth - 1):
        c.append((sw**2 * erf_cov(q[-1], c[-1]) + sb**2) / (sw**2 * mu2 * erf_var(q[-1]) + sb**2))
        q.append(sw**2 * mu2 * erf_var(q[-1]) + sb**2)
    np.testing.assert_allclose(prop.q_trajectory(q0, sw, sb, "erf", mu2, depth), q, rtol=1e-13)
    np.testing.assert_allclose(prop.c_trajectory(0.5, q0, sw, sb, "erf", mu2, depth), c, rtol=1e-12)
    g = prop.grad_trajectory(q0, sw, sb, "erf", mu2, depth)
    factors = np.r_[sw**2, sw**2 * mu2 * erf_dvar(np.array(q[1:depth]))]
    np.testing.assert_allclose(g, np.r_[np.cumprod(factors[::-1])[::-1], 1.0], rtol=1e-12)


# ---- simulation -----------------------------------------------------------------------------------


def _simulations(phi, sw, sb, depth, seeds=4, **options):
    sims = list(prop.simulate_seeds(phi, sw, sb, depth, 1000, seeds=seeds, device="cpu", **options))
    return sims, *(np.array([getattr(s, f) for s in sims]) for f in ("q", "c", "grad_norms"))


@pytest.mark.parametrize(("phi", "sw", "sb", "noise"), [
    ("tanh", 1.5, 0.05, "none"), ("tanh", 0.8, 0.3, "none"), ("erf", 2.5, 0.2, "gaussian"),
    ("tanh", 2.0, 0.1, "dropout")])
def test_simulation_follows_theory_at_width_1000(one_torch_thread, phi, sw, sb, noise):
    """A layer's mean square over N = 1000 units (shared weights and bias) fluctuates by about
    √(2/N) ≈ 4.5 % per network, and the errors propagate through the contracting maps (×≤ 2): over 4
    networks the mean is within 4·√2·4.5 %/√4 ≈ 13 % of qˡ. The deep-layer mean (layers 8 … L over 4
    networks, ~50 weakly dependent samples) is within 3 %. The pair correlation (16 pairs, 4
    networks) is within 0.05 at every layer, gradients within a factor e^±0.2."""
    depth, mu2 = 20, prop.noise_mu2(noise, 0.8, 0.5)
    sims, q, c, g = _simulations(phi, sw, sb, depth, noise=noise, keep_prob=0.8, noise_std=0.5, c0=0.5)
    q_th = prop.q_trajectory(1.0, sw, sb, phi, mu2, depth)
    np.testing.assert_allclose(q.mean(axis=0), q_th, rtol=0.13)
    assert q[:, 8:].mean() == pytest.approx(q_th[8:].mean(), rel=0.03)
    c_th = prop.c_trajectory(0.5, 1.0, sw, sb, phi, mu2, depth)
    np.testing.assert_allclose(c.mean(axis=0), c_th, atol=0.05)
    g_th = prop.grad_trajectory(1.0, sw, sb, phi, mu2, depth)
    np.testing.assert_allclose(np.log(g.mean(axis=0)), np.log(g_th), atol=0.2)
    assert q[:, 0] == pytest.approx(1.0, rel=1e-5) and c[:, 0] == pytest.approx(0.5, abs=1e-5)


@pytest.mark.parametrize(("sw", "sb", "noise"), [(0.8, 0.3, "none"), (2.0, 0.05, "none"),
                                                 (2.5, 0.05, "gaussian")])
def test_gradients_grow_or_shrink_per_layer_like_chi1(one_torch_thread, sw, sb, noise):
    """Deep in the network (qˡ ≈ q*) each layer multiplies the back-propagated squared gradient by χ₁:
    it vanishes in the ordered phase (χ₁ < 1) and explodes in the chaotic one (Schoenholz et al. 2017,
    Glorot & Bengio 2010 Fig. 7). Fitted over layers 6 … 20 of 4 networks: within 3 %."""
    depth, mu2 = 20, prop.noise_mu2(noise, 0.8, 0.5)
    _, _, _, g = _simulations("tanh", sw, sb, depth, noise=noise, noise_std=0.5)
    per_layer = math.exp(-np.polyfit(np.arange(6, depth + 1), np.log(g.mean(axis=0)[6:]), 1)[0])
    chi = float(prop.chi1(sw, sb, "tanh", mu2))
    assert per_layer == pytest.approx(chi, rel=0.03)
    assert (per_layer < 1) == (chi < 1)


def test_noise_limits_correlation_in_a_real_network(one_torch_thread):
    """Dropout at the Pretorius critical point: correlations decay towards c* < 1 in simulation too."""
    p = 0.8
    sw, mu2 = math.sqrt(2 * p), 1 / p
    _, _, c, _ = _simulations("relu", sw, 0.0, 30, noise="dropout", keep_prob=p, c0=0.9)
    theory = prop.c_trajectory(0.9, 1.0, sw, 0.0, "relu", mu2, 30)
    np.testing.assert_allclose(c.mean(axis=0), theory, atol=0.05)
    assert c.mean(axis=0)[-1] < 0.75
    assert theory[-1] == pytest.approx(prop.c_star(sw, 0.0, "relu", mu2), abs=0.05)


def test_simulation_outputs_and_seeds(one_torch_thread):
    gen = prop.simulate_seeds("relu", 1.4, 0.1, depth=6, width=64, seeds=3, seed=5, pairs=2, samples=50,
                              sample_layers=[0, 3, 6])
    first = next(gen)
    assert first.seed == 5 and first.q.shape == first.c.shape == first.grad_norms.shape == (7,)
    assert first.preact_samples.shape == first.grad_samples.shape == (3, 50)
    assert list(first.sample_layers) == [0, 3, 6] and first.seconds > 0 and "CPU" in first.device
    assert [s.seed for s in gen] == [6, 7]
    gen.close()                                        # the panel cancels by dropping the generator
    again = prop.simulate("relu", 1.4, 0.1, 6, 64, seed=5, pairs=2, samples=50, sample_layers=[0, 3, 6])
    np.testing.assert_array_equal(again.q, first.q)
    np.testing.assert_array_equal(again.grad_samples, first.grad_samples)
    assert not np.array_equal(prop.simulate("relu", 1.4, 0.1, 6, 64, seed=6, pairs=2).q, first.q)


# ---- bad input and parameters ---------------------------------------------------------------------


def test_bad_input_raises_clear_errors():
    with pytest.raises(KeyError, match="unknown activation 'tanhh'"):
        prop.q_star(1.0, 0.0, "tanhh")
    with pytest.raises(KeyError, match="unknown activation"):
        prop.phase_diagram("nope", [1.0], [0.0])
    with pytest.raises(ValueError, match="mu2"):
        prop.chi1(1.0, 0.0, "tanh", 0.5)
    with pytest.raises(ValueError, match="unknown noise"):
        prop.noise_mu2("salt")
    with pytest.raises(ValueError, match="c0"):
        prop.simulate("tanh", 1.0, 0.0, 2, 16, c0=1.5)


def test_params_declaration():
    p = prop.PropagationParams()
    labels = {s.name: s.label for s in p.specs()}
    assert list(labels) == ["phi", "alpha", "sigma_w", "sigma_b", "depth", "width", "noise", "keep_prob",
                            "noise_std", "q0", "c0", "seeds", "seed", "heatmap"]
    assert labels["sigma_w"] == "σ_w" and labels["q0"] == "q⁰" and labels["seeds"] == "networks"
    defaults = (p.phi, p.sigma_w, p.sigma_b, p.depth, p.width, p.seeds, p.heatmap)
    assert defaults == ("tanh", 1.5, 0.05, 30, 1000, 3, "xi_c")
    assert p.mu2 == 1.0
    assert p.replace(noise="dropout", keep_prob=0.5).mu2 == pytest.approx(2.0)
    assert p.replace(noise="gaussian", noise_std=0.5).mu2 == pytest.approx(1.25)
    assert p.replace(phi="shifted_relu", alpha=-0.3).activation.alpha == -0.3
    with pytest.raises(ParamError, match="phi"):
        p.replace(phi="tanhh")
    with pytest.raises(ParamError, match="sigma_w"):
        prop.PropagationParams.from_dict({"sigma_w": 5.0})
    kwargs = p.replace(depth=2, width=16, seeds=2).simulation_kwargs()
    assert [s.seed for s in prop.simulate_seeds(**kwargs, pairs=1)] == [0, 1]


@pytest.mark.parametrize("phi, sw, sb, mu2", [("tanh", 1.5, 0.05, 1.0), ("relu", 1.3, 0.2, 1.25),
                                              ("relu", 2.0, 0.1, 1.0), ("erf", 0.9, 0.3, 2.0)])
def test_fixed_point_and_trajectories_at_once_equal_the_separate_functions(phi, sw, sb, mu2):
    fp = prop.fixed_point(sw, sb, phi, mu2)
    assert float(fp.q_star) == pytest.approx(float(prop.q_star(sw, sb, phi, mu2)), rel=1e-14)
    assert float(fp.chi1) == pytest.approx(float(prop.chi1(sw, sb, phi, mu2)), rel=1e-14)
    assert float(fp.c_star) == pytest.approx(float(prop.c_star(sw, sb, phi, mu2)), rel=1e-14)
    layers = prop.trajectories(1.3, 0.4, sw, sb, phi, mu2, 25)
    np.testing.assert_allclose(layers.q, prop.q_trajectory(1.3, sw, sb, phi, mu2, 25), rtol=1e-14)
    np.testing.assert_allclose(layers.c, prop.c_trajectory(0.4, 1.3, sw, sb, phi, mu2, 25), rtol=1e-12)
    np.testing.assert_allclose(layers.grad, prop.grad_trajectory(1.3, sw, sb, phi, mu2, 25), rtol=1e-14)


def test_c_trajectory_of_relu_is_the_iterated_arc_cosine_map():
    sw, sb, q0, depth = 1.2, 0.3, 0.8, 12
    q = prop.q_trajectory(q0, sw, sb, "relu", 1.0, depth)
    c = [0.3, (sw * sw * q0 * 0.3 + sb * sb) / q[1]]
    for layer in range(1, depth):
        cl = c[-1]
        kernel = q[layer] / (2 * np.pi) * (np.sqrt(1 - cl * cl) + (np.pi - np.arccos(cl)) * cl)
        c.append((sw * sw * kernel + sb * sb) / q[layer + 1])
    # 24 nodes per piece for live redraws: ~1e-7 here as c → 0.985, where the kernel's kink steepens
    # (the docstring promises ≤ 1e-5 up to c = 0.999), rounding while c is moderate.
    got = prop.trajectories(q0, 0.3, sw, sb, "relu", 1.0, depth).c
    np.testing.assert_allclose(got, c, rtol=5e-7)
    np.testing.assert_allclose(got[:7], c[:7], rtol=1e-12)


@pytest.mark.parametrize("phi", ["tanh", "relu", "hard_tanh", "softplus", "gelu"])
def test_the_fast_c_map_step_agrees_with_fine_quadrature_even_as_c_approaches_one(phi):
    # Brute force: the 2-D quadrature at 96 nodes per piece on [−10, 10], one layer at a time (along a
    # trajectory a chaotic map amplifies any per-step error by its slope, up to χ₁ per layer).
    act = activations.get(phi)
    q, c = np.meshgrid([0.05, 1.0, 4.0, 30.0], [-0.9, 0.0, 0.5, 0.9, 0.99, 0.999])
    args = (q.ravel(), np.full(q.size, 2.5), np.full(q.size, 0.1), act, np.ones(q.size))
    fast = prop._c_map(c.ravel(), *args, prop._QUAD_FAST, None, prop._Z_FAST)
    fine = prop._c_map(c.ravel(), *args, 96)
    np.testing.assert_allclose(fast, fine, atol=5e-5)
    moderate = np.abs(c.ravel()) <= 0.9
    np.testing.assert_allclose(fast[moderate], fine[moderate], atol=2e-6)


@pytest.mark.parametrize("phi, noise", [("tanh", "none"), ("relu", "none"), ("relu", "dropout"),
                                        ("erf", "none"), ("tanh", "gaussian")])
def test_gradient_histogram_is_the_scale_mixture_a_brute_force_sample_gives(phi, noise):
    # Brute force: δ = ε φ'(h) u with h ~ N(0, q), u ~ N(0, s²), ε the noise, sampled 10⁶ times; the
    # predicted bin probabilities must sit within 5 binomial standard errors in every one of 41 bins.
    rng = np.random.default_rng(7)
    q, var, n = 2.0, 1.0, 1_000_000
    act = get(phi)
    h = rng.normal(0.0, math.sqrt(q), n)
    eps = {"none": np.ones(n), "dropout": np.where(rng.random(n) < 0.8, 1 / 0.8, 0.0),
           "gaussian": 1.0 + 0.5 * rng.normal(size=n)}[noise]
    mu2 = prop.noise_mu2(noise, 0.8, 0.5)
    d = float(np.mean(act.dphi(rng.normal(0.0, math.sqrt(q), 4_000_000)) ** 2))
    delta = eps * act.dphi(h) * rng.normal(0.0, math.sqrt(var / (mu2 * d)), n)
    edges = np.linspace(-4.0, 4.0, 42)
    counts, _ = np.histogram(delta, bins=edges)
    predicted = prop.gradient_density(edges, var, q, phi, noise, 0.8, 0.5) * np.diff(edges)
    se = np.sqrt(n * predicted * (1 - predicted))
    assert np.all(np.abs(counts - n * predicted) <= 5 * se + 3)
    if phi == "relu":  # half the units (and the dropped ones) pass exactly 0: the bin at 0 holds them
        centre = np.searchsorted(edges, 0.0) - 1
        assert predicted[centre] >= (1 - 0.8 * 0.5 if noise == "dropout" else 0.5)


def test_normal_cdf_table_matches_erfc():
    x = np.linspace(-12, 12, 10_001)
    exact = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x])
    np.testing.assert_allclose(prop.gaussian.normal_cdf(x), exact, atol=1e-6)


def test_the_simulation_generator_leaves_gradients_on_between_its_partials():
    import torch

    from core.propagation.simulation import simulate_steps

    states = [torch.is_grad_enabled() for _ in simulate_steps("tanh", 1.5, 0.1, depth=40, width=50)]
    assert len(states) > 2 and all(states)   # grad mode is per thread: a consumer's autograd must keep working
