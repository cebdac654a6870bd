"""Gaussian expectations against THEORY.md's closed forms and adaptive quadrature (scipy.integrate)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from core import activations, gaussian

Q = np.array([0.0, 0.05, 0.5, 1.0, 3.0, 20.0])


def _quad(f, q):
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    s = math.sqrt(q)
    return integrate.quad(lambda z: f(s * z) * pdf(z), -12, 12, points=[0.0], limit=400, epsabs=1e-13)[0]


def test_relu_second_moment_is_q_over_two():
    relu = activations.get("relu")
    np.testing.assert_allclose(gaussian.expect(lambda x: relu.phi(x) ** 2, Q, relu.breakpoints), Q / 2,
                               rtol=1e-12, atol=1e-15)


def test_erf_closed_forms():
    erf = activations.get("erf")
    v = gaussian.expect(lambda x: erf.phi(x) ** 2, Q, erf.breakpoints)
    d = gaussian.expect(lambda x: erf.dphi(x) ** 2, Q, erf.breakpoints)
    np.testing.assert_allclose(v, 2 / np.pi * np.arcsin(2 * Q / (1 + 2 * Q)), atol=1e-10)
    np.testing.assert_allclose(d, (4 / np.pi) / np.sqrt(1 + 4 * Q), rtol=1e-7)


@pytest.mark.parametrize("name", ["tanh", "hard_tanh", "sigmoid", "softplus", "elu", "selu", "gelu", "swish"])
def test_one_dimensional_expectations_match_adaptive_quadrature(name):
    act = activations.get(name)
    for q in (0.1, 1.0, 4.0):
        got = gaussian.expect(lambda x: act.phi(x) ** 2, q, act.breakpoints)
        want = _quad(lambda x: float(act.phi(np.array(x)) ** 2), q)
        assert got == pytest.approx(want, rel=1e-8, abs=1e-12)


def test_bivariate_relu_is_the_arc_cosine_kernel():
    relu = activations.get("relu")
    c = np.linspace(-0.999, 0.999, 41)
    q = 1.7
    got = gaussian.expect2(relu.phi, relu.phi, q, q, c, relu.breakpoints, relu.breakpoints)
    want = q / (2 * np.pi) * (np.sqrt(1 - c**2) + (np.pi - np.arccos(c)) * c)
    # Exact to rounding for |c| ≤ 0.99; at |c| → 1 the z₁-integrand steepens on the scale √(1−c²).
    inner = np.abs(c) <= 0.99
    np.testing.assert_allclose(got[inner], want[inner], atol=1e-12)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_bivariate_erf_closed_form_and_endpoints():
    erf = activations.get("erf")
    c = np.array([-1.0, -0.5, 0.0, 0.3, 0.9, 1.0])
    q = 0.8
    got = gaussian.expect2(erf.phi, erf.phi, q, q, c, erf.breakpoints, erf.breakpoints)
    np.testing.assert_allclose(got, 2 / np.pi * np.arcsin(2 * q * c / (1 + 2 * q)), atol=1e-7)


def test_mehler_series_reproduces_the_erf_kernel():
    erf = activations.get("erf")
    q = 0.6
    a = gaussian.hermite_coefficients(erf.phi, q, 40, erf.breakpoints)
    c = np.linspace(-1, 1, 11)
    series = (a**2 * c[:, None] ** np.arange(40)).sum(-1)
    np.testing.assert_allclose(series, 2 / np.pi * np.arcsin(2 * q * c / (1 + 2 * q)), atol=1e-10)


def test_relu_hermite_coefficients_closed_form_for_many_q_at_once():
    # E[relu(z) He_k(z)] = E[relu^(k)(z)] = He_{k-2}(0)/√(2π) for k ≥ 2 (Gaussian integration by parts);
    # a_0 = 1/√(2π), a_1 = 1/2; the √q scaling is homogeneity. Many q share the nodes: one matrix product.
    relu = activations.get("relu")
    q = np.array([0.3, 1.0, 2.5, 40.0])
    order = 24
    he0 = np.zeros(order)
    he0[0] = 1.0
    for n in range(2, order, 2):
        he0[n] = -(n - 1) * he0[n - 2]
    want = np.empty(order)
    want[0], want[1] = 1 / math.sqrt(2 * math.pi), 0.5
    want[2:] = [he0[k - 2] / math.sqrt(2 * math.pi * math.factorial(k)) for k in range(2, order)]
    got = gaussian.hermite_coefficients(relu.phi, q, order, relu.breakpoints)
    np.testing.assert_allclose(got, np.sqrt(q)[:, None] * want, atol=1e-10)


@pytest.mark.parametrize("name", ["tanh", "relu", "hard_tanh"])
def test_hermite_coefficients_of_an_array_of_q_match_one_q_at_a_time(name):
    act = activations.get(name)
    q = np.array([0.02, 0.7, 5.0, 300.0])
    together = gaussian.hermite_coefficients(act.phi, q, 64, act.breakpoints, n=40)
    alone = np.stack([gaussian.hermite_coefficients(act.phi, v, 64, act.breakpoints, n=40) for v in q])
    np.testing.assert_allclose(together, alone, rtol=1e-12, atol=1e-14)
