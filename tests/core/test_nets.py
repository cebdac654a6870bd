"""core.nets: initialisation statistics against their definitions, mean-field theory, BN, residual, specs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from core import nets, propagation
from core.nets import NetSpec


def weights(spec, seed=0):
    return [layer.weight.detach() for layer in nets.build(spec, seed=seed).linears]


def test_default_digits_mlp_has_plain_linear_layers():
    model = nets.build(nets.DIGITS_MLP)
    assert [type(m) for m in model.linears] == [torch.nn.Linear] * 3
    assert [tuple(m.weight.shape) for m in model.linears] == [(128, 64), (128, 128), (10, 128)]
    assert model(torch.rand(5, 64)).shape == (5, 10)
    assert nets.DIGITS_MLP.parameter_count() == sum(p.numel() for p in model.parameters()) == 26122


def test_gaussian_init_is_n_0_sigma_w2_over_fan_in():
    # 400 000 samples per layer: the sample std is within 0.5 % of σ_w/√N_in (±4.5 standard errors)
    spec = NetSpec(500, (800,), 10, init="gaussian", sigma_w=1.7, sigma_b=0.3)
    model = nets.build(spec, seed=4)
    w = model.linears[0].weight.detach()
    assert float(w.mean()) == pytest.approx(0.0, abs=5 * 1.7 / math.sqrt(500) / math.sqrt(w.numel()))
    assert float(w.std()) == pytest.approx(1.7 / math.sqrt(500), rel=0.005)
    b = torch.cat([layer.bias.detach() for layer in model.linears])
    assert float(b.std()) == pytest.approx(0.3, rel=0.1)


def test_he_and_glorot_follow_their_papers():
    he = weights(NetSpec(400, (1000,), 10, init="he"))[0]
    assert float(he.std()) == pytest.approx(math.sqrt(2 / 400), rel=0.005)
    glorot = weights(NetSpec(400, (1000,), 10, init="glorot"))[0]
    bound = math.sqrt(6 / 1400)
    assert float(glorot.abs().max()) <= bound
    assert float(glorot.abs().max()) > 0.999 * bound
    assert float(glorot.var()) == pytest.approx(2 / 1400, rel=0.01)     # var of U(−a, a) = a²/3


def test_orthogonal_rows_are_orthonormal_times_sigma_w():
    w = weights(NetSpec(60, (40, 60), 5, init="orthogonal", sigma_w=1.3))
    np.testing.assert_allclose((w[0] @ w[0].T).numpy(), 1.69 * np.eye(40), atol=1e-5)
    np.testing.assert_allclose((w[1].T @ w[1]).numpy(), 1.69 * np.eye(40), atol=1e-5)


def test_critical_init_uses_the_order_to_chaos_sigma_w():
    # ReLU at σ_b = 0: σ_w = √2 in closed form (Poole et al. 2016)
    spec = NetSpec(2000, (300,), 3, phi="relu", init="critical")
    assert spec.sigma_w_used() == pytest.approx(math.sqrt(2), rel=1e-9)
    assert float(weights(spec)[0].std()) == pytest.approx(math.sqrt(2 / 2000), rel=0.005)
    tanh = NetSpec(10, (10,), 2, phi="tanh", init="critical", sigma_b=0.3)
    assert tanh.sigma_w_used() == pytest.approx(float(propagation.critical_sigma_w(0.3, "tanh")), rel=1e-12)
    assert float(propagation.chi1(tanh.sigma_w_used(), 0.3, "tanh")) == pytest.approx(1.0, abs=1e-9)


def test_gaussian_net_propagates_variance_as_mean_field_theory_says():
    # Poole et al. 2016 eq. 3: the pre-activation variance of layer 2 is q_map(q¹); wide layers, many inputs
    spec = NetSpec(400, (2000, 2000), 1, phi="tanh", init="gaussian", sigma_w=1.5, sigma_b=0.2)
    model = nets.build(spec, seed=1)
    x = torch.randn(200, 400, generator=torch.Generator().manual_seed(0))
    q0 = float(x.pow(2).mean())
    with torch.no_grad():
        z2 = model.linears[1](torch.tanh(model.linears[0](x)))
    q1 = 1.5**2 * q0 + 0.2**2
    assert float(z2.pow(2).mean()) == pytest.approx(float(propagation.q_map(q1, 1.5, 0.2, "tanh")), rel=0.03)


def test_batch_norm_normalises_each_unit_before_phi():
    spec = NetSpec(10, (50,), 3, phi="tanh", init="gaussian", sigma_w=3.0, sigma_b=1.0, batch_norm=True)
    model = nets.build(spec).train()
    seen = {}
    model.norms[0].register_forward_hook(lambda m, i, o: seen.setdefault("z", o.detach()))
    model(torch.rand(256, 10))
    z = seen["z"]
    np.testing.assert_allclose(z.mean(0).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.var(0, unbiased=False).numpy(), 1.0, atol=1e-3)
    assert spec.parameter_count() == sum(p.numel() for p in model.parameters())


def test_residual_blocks_add_the_input_where_widths_agree():
    spec = NetSpec(6, (6, 6, 4), 2, phi="tanh", residual=True)
    model = nets.build(spec, seed=0)
    assert model.skips == (True, True, False)
    x = torch.rand(7, 6)
    lin = model.linears
    with torch.no_grad():
        h1 = x + torch.tanh(lin[0](x))
        h2 = h1 + torch.tanh(lin[1](h1))
        h3 = torch.tanh(lin[2](h2))
        torch.testing.assert_close(model(x), lin[3](h3), rtol=0, atol=0)


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = (nets.build(nets.DIGITS_MLP, seed=s) for s in (5, 5, 6))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.linears[0].weight, c.linears[0].weight)
    d = nets.clone(a)
    assert d is not a and all(torch.equal(p, q) for p, q in zip(a.parameters(), d.parameters(), strict=True))


def test_spec_round_trips_through_json_and_refuses_bad_fields():
    spec = NetSpec(64, (32, 16), 10, phi="gelu", init="orthogonal", sigma_w=1.2, sigma_b=0.05,
                   batch_norm=True, residual=True)
    assert NetSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(ValueError, match="unknown activation 'rectifier'"):
        NetSpec(2, (3,), 2, phi="rectifier")
    with pytest.raises(ValueError, match="unknown initialisation"):
        NetSpec(2, (3,), 2, init="xavier")
    with pytest.raises(ValueError, match="width must be ≥ 1"):
        NetSpec(2, (3, 0), 2)
    with pytest.raises(ValueError, match="sigma_w"):
        NetSpec(2, (3,), 2, sigma_w=float("nan"))
    with pytest.raises(ValueError, match="unknown net spec field"):
        NetSpec.from_dict({**spec.to_dict(), "dropout": 0.5})
    with pytest.raises(ValueError, match="lacks widths"):
        NetSpec.from_dict({"inputs": 2, "outputs": 2})


def test_critical_linear_net_is_the_isometry():
    # linear φ: χ₁ = σ_w², so the critical σ_w is exactly 1 whatever σ_b
    spec = NetSpec(3, (4,), 2, phi="linear", init="critical")
    assert spec.sigma_w_used() == pytest.approx(1.0, rel=1e-9)


def test_a_spec_too_big_for_memory_is_refused_with_its_size_in_gb():
    spec = NetSpec(1000, (200_000, 200_000), 10)
    with pytest.raises(nets.NetTooLarge, match=r"needs \d+\.\d GB"):
        nets.build(spec)
