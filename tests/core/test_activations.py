"""The φ registry: derivatives by finite differences, torch agrees with numpy, names are checked."""

from __future__ import annotations

import numpy as np
import pytest

from core import activations

X = np.linspace(-4.0, 4.0, 801) + 1e-3  # avoid sitting exactly on a kink


def _away_from(act, x, h):
    bps = np.array(act.breakpoints if act.bernoulli or act.name in ("elu", "selu") else ())
    if bps.size == 0:
        return np.ones_like(x, bool)
    return np.min(np.abs(x[:, None] - bps[None, :]), axis=1) > 5 * h


@pytest.mark.parametrize("name", activations.NAMES)
def test_derivatives_match_central_differences(name):
    act = activations.get(name)
    h = 1e-5
    ok = _away_from(act, X, h)
    d1 = (act.phi(X + h) - act.phi(X - h)) / (2 * h)
    d2 = (act.dphi(X + h) - act.dphi(X - h)) / (2 * h)
    np.testing.assert_allclose(act.dphi(X)[ok], d1[ok], atol=1e-6)
    np.testing.assert_allclose(act.d2phi(X)[ok], d2[ok], atol=1e-5)


@pytest.mark.parametrize("name", activations.NAMES)
def test_torch_version_agrees_with_numpy(name):
    import torch

    act = activations.get(name)
    t = act.torch(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(t, act.phi(X), rtol=1e-6, atol=1e-7)


def test_shifted_relu_takes_alpha_and_is_bernoulli():
    act = activations.get("shifted_relu", alpha=0.3)
    assert act.alpha == 0.3 and act.bernoulli and -0.3 in act.breakpoints
    assert act.phi(np.array([-1.0, 0.0]))[0] == pytest.approx(-0.3)
    assert set(np.unique(act.dphi(X) ** 2)) <= {0.0, 1.0}


def test_selu_constants_are_klambauers():
    act = activations.get("selu")
    assert act.phi(np.array([1.0]))[0] == pytest.approx(1.0507009873554805)


def test_unknown_name_is_refused_with_the_list_of_names():
    with pytest.raises(KeyError, match="known: linear, tanh"):
        activations.get("sine")


def test_resolve_passes_activations_through():
    act = activations.get("erf")
    assert activations.resolve(act) is act
    assert activations.resolve("relu").name == "relu"
