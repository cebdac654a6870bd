"""The trainability engine: batched runs equal separate plain-torch runs, grids stream, cancel and resume,
are repeatable, and the theory's depth scale separates networks that learn from those at chance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core import data as D
from core import trainability as T
from core.nets import NetSpec, build
from core.propagation import critical_sigma_w, depth_scales


@pytest.fixture(scope="module")
def digits():
    return D.load("digits")


@pytest.fixture(autouse=True)
def fresh_cache():
    T.clear_cache()
    yield
    T.clear_cache()


def _reference_run(model, data, *, steps, batch, lr, momentum, seed, noise=("none", 0.0), noise_seed=0):
    """One network trained alone by a plain torch loop: torch.optim.SGD on its nn.Linear layers, the batches
    of a torch.randperm per epoch (incomplete last batch dropped), noise ε on every hidden φ(h), drawn per
    step as one (hidden layers, batch, width) tensor from the network's own generator."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator().manual_seed(noise_seed)
    x, y = data.x_train, data.y_train
    n = x.shape[0]
    done = 0
    while done < steps:
        perm = torch.randperm(n, generator=gen)
        for i in range(n // batch):
            if done == steps:
                break
            idx = perm[i * batch:(i + 1) * batch]
            h = model.linears[0](x[idx])
            shape = (len(model.linears) - 1, batch, h.shape[1])
            kind, value = noise
            if kind == "dropout":
                eps = (torch.rand(shape, generator=noise_gen) < value).float() / value
            elif kind == "gaussian":
                eps = 1.0 + value * torch.randn(shape, generator=noise_gen)
            else:
                eps = torch.ones(shape)
            for layer, e in zip(model.linears[1:], eps, strict=True):
                h = layer(torch.tanh(h) * e)
            loss = torch.nn.functional.cross_entropy(h, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
    return model


def test_batched_networks_equal_separate_runs(digits):
    sigma_ws = (0.8, 1.2, 2.0)
    noises = (("none", 0.0), ("dropout", 0.7), ("gaussian", 0.4))
    specs = [NetSpec(64, (16, 16, 16), 10, phi="tanh", init="gaussian", sigma_w=s, sigma_b=0.1) for s in sigma_ws]
    stack = T.Stack.from_models([build(s, seed=3) for s in specs], "tanh", noises, noise_seeds=[11, 12, 13],
                                device="cpu")
    records = list(T.train_stack(stack, digits, steps=25, batch_size=32, lr=0.05, momentum=0.9, seed=5, every=10))
    assert [r.step for r in records] == [10, 20, 25]
    for k, spec in enumerate(specs):
        alone = _reference_run(build(spec, seed=3), digits, steps=25, batch=32, lr=0.05, momentum=0.9, seed=5,
                               noise=noises[k], noise_seed=11 + k)
        for i, layer in enumerate(alone.linears):
            torch.testing.assert_close(stack.weights[i][k].detach().t(), layer.weight.detach(), rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(stack.biases[i][k, 0].detach(), layer.bias.detach(), rtol=1e-4, atol=1e-5)
        with torch.no_grad():
            accuracy = (alone(digits.x_test).argmax(1) == digits.y_test).double().mean().item()
        assert records[-1].accuracy[k] == pytest.approx(accuracy, abs=1.5 / digits.n_test)


def test_noise_multipliers_have_the_theory_moments():
    """E ε = 1 and E ε² = μ₂ (1/p for dropout, 1 + s² for Gaussian), the μ₂ of core.propagation.noise_mu2."""
    w = torch.zeros(2, 4, 4)
    stack = T.Stack([w, w], [torch.zeros(2, 1, 4)] * 2, "relu", [("dropout", 0.6), ("gaussian", 0.8)], [1, 2])
    eps = stack._multiplier((1, 200_000, 1))[:, 0, :, 0].double()
    assert eps.mean(1).numpy() == pytest.approx([1.0, 1.0], abs=0.01)
    assert (eps**2).mean(1).numpy() == pytest.approx([1 / 0.6, 1 + 0.8**2], rel=0.01)


SMALL = T.Budget(steps=12, width=8, batch_size=32, lr=0.01, columns=4, depths=(1, 2, 3))


def _results(items):
    return [r for r in items if isinstance(r, T.GridResult)]


def test_grid_streams_every_depth_cancels_and_resumes_to_the_same_grid(digits):
    grid = T.Grid(phi="tanh", sigma_b=0.05, budget=SMALL, seed=1)
    full = _results(T.train_grid(grid, digits, every=4))
    assert [r.done.tolist() for r in full] == [[True, False, False], [True, True, False], [True, True, True]]
    assert full[-1].complete and np.isfinite(full[-1].accuracy).all()
    assert full[-1].accuracy.shape == (3, 4)
    for earlier, later in zip(full, full[1:], strict=False):   # a streamed row never changes afterwards
        rows = earlier.done
        np.testing.assert_array_equal(earlier.accuracy[rows], later.accuracy[rows])

    T.clear_cache()
    run = T.train_grid(grid, digits, every=4)
    first = next(r for r in run if isinstance(r, T.GridResult))
    next(run)                                   # the second depth has started …
    run.close()                                 # … and is cancelled
    assert first.done.tolist() == [True, False, False]
    resumed = T.train_grid(grid, digits, every=4)
    head = next(resumed)
    assert isinstance(head, T.GridResult) and head.done.tolist() == [True, False, False]   # from the cache, at once
    last = _results(resumed)[-1]
    np.testing.assert_array_equal(last.accuracy, full[-1].accuracy)    # seeded: the same grid as uninterrupted

    again = _results(T.train_grid(grid, digits))                      # finished: served whole from the cache
    assert len(again) == 1 and again[0].complete
    np.testing.assert_array_equal(again[0].accuracy, full[-1].accuracy)


def test_the_cache_key_holds_what_changes_the_grid(digits):
    base = T.Grid(phi="tanh", sigma_b=0.05, budget=SMALL)
    assert base.key(digits.key) != T.Grid(phi="tanh", sigma_b=0.06, budget=SMALL).key(digits.key)
    assert base.key(digits.key) != T.Grid(phi="erf", sigma_b=0.05, budget=SMALL).key(digits.key)
    assert base.key(digits.key) != base.key(D.load("digits", seed=1).key)
    assert base.key(digits.key) != T.Grid(phi="tanh", sigma_b=0.05, budget=T.BUDGETS["quick"]).key(digits.key)
    noisy = T.Grid(kind="noise", phi="tanh", sigma_b=0.05, budget=SMALL)
    # φ and σ_b are fixed for the noise grid (ReLU, σ_b = 0): the panel's φ or σ_b does not invalidate it.
    assert noisy.key(digits.key) == T.Grid(kind="noise", phi="erf", sigma_b=1.0, budget=SMALL).key(digits.key)


def test_depth_far_beyond_6_xi_c_is_at_chance_while_a_shallow_near_critical_net_learns(digits):
    budget = T.Budget(steps=150, width=32, batch_size=64, lr=1e-3, momentum=0.9, columns=4, depths=(4, 40))
    grid = T.Grid(phi="tanh", sigma_b=0.05, budget=budget)
    result = _results(T.train_grid(grid, digits))[-1]
    ordered = 0                                  # σ_w² ≈ 0.63: deep in the ordered phase
    near_critical = int(np.argmax(result.xi_c))
    assert 40 > 2.5 * 6 * result.xi_c[ordered]   # depth 40 is far beyond 6 ξ_c ≈ 13 layers
    assert result.accuracy[1, ordered] <= 0.2    # chance is 0.1
    assert 6 * result.xi_c[near_critical] > 100
    assert result.accuracy[0, near_critical] >= 0.6


def test_noise_grid_sits_at_the_critical_relu_initialisation():
    """Pretorius et al. 2018: (σ_w, σ_b) = (√(2/μ₂), 0): √(2p) for dropout, √(2/(1 + s²)) for Gaussian noise."""
    budget = T.Budget(columns=5, depths=(2,))
    drop = T.Grid(kind="noise", noise="dropout", budget=budget)
    p = drop.columns()
    np.testing.assert_allclose(drop.sigma_w(), np.sqrt(2 * p), rtol=1e-12)
    gauss = T.Grid(kind="noise", noise="gaussian", budget=budget)
    s = gauss.columns()
    np.testing.assert_allclose(gauss.sigma_w(), np.sqrt(2 / (1 + s**2)), rtol=1e-12)
    # Noise destroys the critical point: ξ_c is finite below p = 1 and grows as p → 1.
    xi = drop.xi_c()
    assert np.all(np.isfinite(xi[:-1])) and np.all(np.diff(xi[:-1]) > 0)
    np.testing.assert_allclose(xi, depth_scales(np.sqrt(2 * p), 0.0, "relu", 1 / p)[1])


def test_sigma_w_columns_bracket_the_critical_point():
    for phi, sb in (("tanh", 0.05), ("tanh", 1.0), ("relu", 0.0), ("erf", 0.3)):
        grid = T.Grid(phi=phi, sigma_b=sb)
        lo, hi = grid.columns()[[0, -1]]
        critical = float(critical_sigma_w(sb, phi)) ** 2
        assert lo < critical < hi and lo <= 1.0 and hi >= 4.0


def test_learning_speed_curves_and_the_spectral_variance_in_closed_form(digits):
    depth = 4
    runs = list(T.learning_speed(digits, depth=depth, width=12, steps=20, batch_size=32, seeds=2, every=5))
    last = runs[-1]
    assert last.done and not any(r.done for r in runs[:-1])
    assert last.loss.shape == (4, 4) and np.isfinite(last.loss).all()
    assert [r.label for r in last.runs] == ["tanh, orthogonal", "tanh, gaussian", "ReLU, orthogonal", "ReLU, gaussian"]
    # PSG 2017: σ²_JJᵀ = L (μ₂/μ₁² − 1 − s₁); ReLU has μ₂/μ₁² = 2, s₁ = 0 (orthogonal) or −1 (Gaussian).
    assert last.variance[2] == pytest.approx(depth, rel=1e-9)
    assert last.variance[3] == pytest.approx(2 * depth, rel=1e-9)
    # tanh at a small q* is close to isometry with orthogonal weights; Gaussian weights add L.
    assert last.variance[0] < 0.1 * depth
    assert last.variance[1] == pytest.approx(last.variance[0] + depth, rel=1e-6)
    assert 0.0 <= last.accuracy.min() and last.accuracy.max() <= 1.0


def test_bad_input_is_refused_with_a_message(digits):
    with pytest.raises(ValueError, match="steps"):
        T.Budget(steps=0)
    with pytest.raises(ValueError, match="depths"):
        T.Budget(depths=(4, 4))
    with pytest.raises(ValueError, match="kind"):
        T.Grid(kind="width")
    with pytest.raises(ValueError, match="noise"):
        T.Stack([torch.zeros(1, 2, 2)], [torch.zeros(1, 1, 2)], "tanh", [("salt", 0.5)])
    with pytest.raises(ValueError, match="regression"):
        next(T.train_grid(T.Grid(budget=SMALL), D.load("teacher")))


def test_a_diverging_network_is_reported_and_the_others_go_on(digits):
    specs = [NetSpec(64, (16,) * 6, 10, phi="relu", init="gaussian", sigma_w=s, sigma_b=0.0) for s in (1.4, 4.0)]
    stack = T.Stack.from_models([build(s, seed=0) for s in specs], "relu", device="cpu")
    last = list(T.train_stack(stack, digits, steps=30, batch_size=64, lr=0.5, momentum=0.9, seed=0))[-1]
    assert last.alive.tolist() == [True, False]   # σ_w = 4 through 6 ReLU layers: gains of 8⁶, and lr 0.5
    assert math.isfinite(last.accuracy[0]) and math.isnan(last.accuracy[1])
