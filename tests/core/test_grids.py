"""The public functions of core.propagation and core.spectra on whole grids: right, bounded, conventional.

Each grid value is checked against an independent one at sampled points — the closed forms of THEORY.md
§2 (erf's arcsine kernel, ReLU's arc-cosine kernel) where they exist, else the exact per-point path
(``exact=True``, itself tested against closed forms and published numbers in test_propagation.py) —
within the tolerance the function's docstring states for its grid path.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from core import propagation as prop
from core import spectra

N = 300
rng = np.random.default_rng(12)


def _grid(sw=(0.05, 4.0), sb=(0.0, 2.0)):
    return np.meshgrid(np.linspace(*sw, N), np.linspace(*sb, N))


def _sample(k: int, size: int = N * N) -> np.ndarray:
    return rng.choice(size, k, replace=False)


def _erf_variance(q):
    return (2 / math.pi) * np.arcsin(2 * q / (1 + 2 * q))


def _erf_covariance(c, q):
    return (2 / math.pi) * np.arcsin(2 * q * c / (1 + 2 * q))


def _relu_covariance(c, q):
    return q / (2 * math.pi) * (np.sqrt(1 - c * c) + (math.pi - np.arccos(c)) * c)


# -- values on a 300 × 300 grid against the exact ones ---------------------------------------------

def test_depth_scales_on_a_grid_match_the_exact_path():
    sw, sb = _grid()
    xi_q, xi_c = prop.depth_scales(sw, sb, "tanh")
    assert xi_q.shape == xi_c.shape == (N, N)
    pick = _sample(6)
    exact_q, exact_c = prop.depth_scales(sw.flat[pick], sb.flat[pick], "tanh", exact=True)
    np.testing.assert_allclose(xi_q.flat[pick], exact_q, rtol=1e-5)
    # docstring: the slope e^(−1/ξ_c) to 1e-5 absolute for smooth φ
    np.testing.assert_allclose(np.exp(-1 / xi_c.flat[pick]), np.exp(-1 / exact_c), atol=1e-5)


def test_fixed_point_on_a_grid_with_noise_matches_the_exact_path():
    sw, sb = _grid()
    fp = prop.fixed_point(sw, sb, "tanh", 1.25)
    pick = _sample(6)
    exact = prop.fixed_point(sw.flat[pick], sb.flat[pick], "tanh", 1.25, exact=True)
    np.testing.assert_allclose(fp.q_star.flat[pick], exact.q_star, rtol=1e-6)
    np.testing.assert_allclose(fp.chi1.flat[pick], exact.chi1, rtol=1e-6)
    np.testing.assert_allclose(fp.c_star.flat[pick], exact.c_star, atol=2e-5)
    np.testing.assert_array_equal(prop.q_star(sw, sb, "tanh", 1.25), fp.q_star)
    np.testing.assert_array_equal(prop.chi1(sw, sb, "tanh", 1.25), fp.chi1)


def test_chi1_and_c_star_of_erf_on_a_grid_match_the_closed_forms():
    sw, sb = _grid((0.2, 3.0), (0.0, 1.5))
    fp = prop.fixed_point(sw, sb, "erf")
    q = fp.q_star
    # q* is a fixed point of the closed-form variance map, χ₁ = σ_w² (4/π)/√(1 + 4q*) (THEORY.md §2)
    np.testing.assert_allclose(q, sw**2 * _erf_variance(q) + sb**2, rtol=2e-6, atol=1e-12)
    np.testing.assert_allclose(fp.chi1, sw**2 * (4 / math.pi) / np.sqrt(1 + 4 * q), rtol=2e-6)
    # c* is a fixed point of the closed-form correlation map (where it is below 1: the chaotic phase)
    chaotic = fp.c_star < 1.0
    c = fp.c_star[chaotic]
    qq, w, b = q[chaotic], sw[chaotic], sb[chaotic]
    np.testing.assert_allclose(c, (w**2 * _erf_covariance(c, qq) + b**2) / qq, atol=2e-5)


def test_c_map_on_a_grid_matches_the_closed_forms():
    c, q = np.meshgrid(np.linspace(-1.0, 1.0, N), np.geomspace(1e-3, 20.0, N))
    for phi, cov, var in (("erf", _erf_covariance, _erf_variance), ("relu", _relu_covariance, lambda q: q / 2)):
        got = prop.c_map(c, q, 1.3, 0.2, phi)
        want = (1.69 * cov(c, q) + 0.04) / (1.69 * var(q) + 0.04)
        np.testing.assert_allclose(got, want, atol=1e-4, err_msg=phi)   # docstring: 1e-4 on the series path


def test_c_map_of_tanh_on_a_grid_matches_the_exact_path():
    c, q = np.meshgrid(np.linspace(-1.0, 1.0, N), np.geomspace(1e-3, 40.0, N))
    got = prop.c_map(c, q, 1.1, 0.3, "tanh")
    pick = _sample(8)
    exact = prop.c_map(c.flat[pick], q.flat[pick], 1.1, 0.3, "tanh", exact=True)
    np.testing.assert_allclose(got.flat[pick], exact, atol=1e-4)


def test_c_map_falls_back_to_quadrature_where_the_series_is_not_trusted():
    """tanh at q ≥ 150 is nearly a step: its Mehler tail is too heavy, so those points are exact."""
    c = np.linspace(-0.999, 0.999, 1100)
    q = np.where(np.arange(c.size) % 100 == 0, 300.0, 2.0)          # 11 points at q = 300
    got = prop.c_map(c, q, 1.1, 0.3, "tanh")
    heavy = np.flatnonzero(q == 300.0)
    exact = prop.c_map(c[heavy], q[heavy], 1.1, 0.3, "tanh", exact=True)
    np.testing.assert_allclose(got[heavy], exact, atol=1e-12)


def test_q_map_and_trajectories_on_a_grid_match_the_closed_forms():
    sw, sb = _grid((0.5, 2.5), (0.0, 1.0))
    q0 = 1.0
    np.testing.assert_allclose(prop.q_map(q0, sw, sb, "erf"), sw**2 * _erf_variance(q0) + sb**2, rtol=1e-12)
    small = (slice(None, None, 5), slice(None, None, 5))       # 3600 points: the fast path, 8 layers
    t = prop.trajectories(q0, 0.3, sw[small], sb[small], "erf", depth=8)
    assert t.q.shape == t.c.shape == t.grad.shape == sw[small].shape + (9,)
    q, c = np.full(sw[small].shape, q0), np.full(sw[small].shape, 0.3)
    w, b = sw[small], sb[small]
    c = (w**2 * q * c + b**2) / (w**2 * q + b**2)
    q = w**2 * q + b**2
    for layer in range(1, 8):
        np.testing.assert_allclose(t.q[..., layer], q, rtol=1e-12)
        np.testing.assert_allclose(t.c[..., layer], c, atol=1e-4 * layer)
        q_next = w**2 * _erf_variance(q) + b**2
        c = (w**2 * _erf_covariance(c, q) + b**2) / q_next
        q = q_next


def test_critical_sigma_w_over_many_biases_equals_one_at_a_time():
    sb = np.linspace(0.0, 2.0, 400)
    many = prop.critical_sigma_w(sb, "tanh")
    for k in (0, 7, 123, 399):
        assert many[k] == pytest.approx(float(prop.critical_sigma_w(sb[k], "tanh")), rel=1e-10)
    np.testing.assert_allclose(prop.chi1(many[1::57], sb[1::57], "tanh", exact=True), 1.0, atol=1e-12)


# -- memory ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["depth_scales", "c_map", "q_map"])
def test_memory_stays_bounded_on_a_hundred_thousand_points(name):
    n = 100_000
    sw, sb = rng.uniform(0.5, 3.0, n), rng.uniform(0.0, 1.0, n)
    prop.tables("tanh")
    call = {"depth_scales": lambda: prop.depth_scales(sw, sb, "tanh"),
            "c_map": lambda: prop.c_map(rng.uniform(-1, 1, n), rng.uniform(0.01, 10.0, n), sw, sb, "tanh"),
            "q_map": lambda: prop.q_map(rng.uniform(0.01, 10.0, n), sw, sb, "tanh")}[name]
    tracemalloc.start()
    try:
        call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 500 * 2**20, f"{name}: peak {peak / 2**20:.0f} MB"


# -- the NaN / inf conventions on grids ------------------------------------------------------------

def test_a_divergent_variance_is_inf_and_nothing_is_nan_on_a_grid():
    sw, sb = _grid((0.5, 2.5), (0.0, 1.0))
    for phi in ("relu", "linear", "tanh"):
        fp = prop.fixed_point(sw, sb, phi)
        xi_q, xi_c = prop.depth_scales(sw, sb, phi)
        for name, v in (("q*", fp.q_star), ("χ₁", fp.chi1), ("c*", fp.c_star), ("ξ_q", xi_q), ("ξ_c", xi_c)):
            assert not np.isnan(v).any(), f"{phi}: NaN in {name}"
        if phi == "relu":
            beyond = sw**2 / 2 > 1.0 + 1e-9
            assert np.all(np.isinf(fp.q_star[beyond])) and np.all(np.isinf(xi_q[beyond]))
            assert np.all(np.isfinite(fp.q_star[~beyond & (sb > 0)]))
        assert np.all(xi_c >= 0) and np.all((fp.c_star >= 0) & (fp.c_star <= 1))


def test_nan_arguments_give_nan_only_there():
    sw, sb = _grid((0.5, 2.5), (0.0, 1.0))
    sw = sw.copy()
    sw[3, 4] = np.nan
    q = prop.q_star(sw, sb, "tanh")
    assert np.isnan(q[3, 4]) and np.isnan(q).sum() == 1


# -- core.spectra ----------------------------------------------------------------------------------

def test_theory_density_on_a_hundred_thousand_points_matches_the_pointwise_solve():
    args = ("tanh", 1.05, 0.015, 16, "orthogonal")
    lo, hi = spectra.theory_edges(*args, log=True)
    ell = np.linspace(max(lo, hi - 28.0) - 0.5, hi + 0.5, 100_000)
    tracemalloc.start()
    try:
        dens = spectra.theory_density(ell, *args, log=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 500 * 2**20
    pick = _sample(12, ell.size)
    exact = np.array([spectra.theory_density(e, *args, log=True) for e in ell[pick]])
    # documented: to 2e-3 of the density's maximum
    assert np.max(np.abs(dens[pick] - exact)) <= 2e-3 * dens.max()


def test_theory_moments_on_a_grid_equal_the_scalar_calls():
    sw, sb = _grid((0.5, 2.0), (0.0, 1.0))
    mean, var = spectra.theory_moments("tanh", sw, sb, 8, "gaussian")
    assert mean.shape == var.shape == (N, N)
    for k in _sample(4):
        m, v = spectra.theory_moments("tanh", float(sw.flat[k]), float(sb.flat[k]), 8, "gaussian")
        assert mean.flat[k] == pytest.approx(m, rel=1e-5) and var.flat[k] == pytest.approx(v, rel=1e-5)


def test_theory_moments_mark_points_without_a_fixed_point_nan():
    mean, var = spectra.theory_moments("softplus", np.array([0.5, 3.0]), 0.1, 4)
    assert np.isfinite(mean[0]) and np.isnan(mean[1]) and np.isnan(var[1])
    with pytest.raises(spectra.NoFixedPointError):
        spectra.theory_moments("softplus", 3.0, 0.1, 4)
