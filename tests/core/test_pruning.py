"""core.pruning against closed forms, brute force and torch's own optimisers (THEORY.md §6)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from torch import nn

from core import pruning as P
from core.pruning import PruningError
from core.pruning.masking import HALF_RATE


def tiny(seed=0, bias=True, sizes=(12, 16, 8, 3)):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def toy_data(n=96, d=12, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g)
    y = (x[:, :classes].argmax(1)).long()
    return x, y


# -- ERK ---------------------------------------------------------------------------------------------

def _erk_by_root_finding(shapes, density):
    """ERK from scratch: solve Σ min(1, ε r_l) n_l = d Σ n_l for ε with scipy (brentq)."""
    n = np.array([math.prod(s) for s in shapes], float)
    r = np.array([sum(s) for s in shapes], float) / n
    eps = brentq(lambda e: (np.minimum(1.0, e * r) * n).sum() - density * n.sum(), 1e-9, 1e9, xtol=1e-14)
    return np.minimum(1.0, eps * r)


@pytest.mark.parametrize(("sizes", "golden"), [
    ((64, 128, 128, 10), [0.8966, 0.9311, 0.5243]),
    ((784, 300, 100, 10), [0.9204, 0.7698, 0.0]),
])
def test_erk_matches_theory_golden_sparsities(sizes, golden):
    shapes = [(b, a) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    dens = P.erk_densities(shapes, 0.1)
    np.testing.assert_allclose(1 - dens, golden, atol=1e-3)
    np.testing.assert_allclose(dens, _erk_by_root_finding(shapes, 0.1), rtol=1e-9)
    n = np.array([a * b for a, b in shapes])
    assert abs((dens * n).sum() - 0.1 * n.sum()) < 1e-6


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan"), float("inf")])
def test_bad_densities_are_refused_with_a_message(bad):
    with pytest.raises(PruningError, match="density"):
        P.erk_densities([(4, 4)], bad)
    with pytest.raises(PruningError, match="density"):
        P.masks(P.scores(tiny(), "magnitude"), bad)


def test_a_model_without_linear_layers_is_refused():
    with pytest.raises(PruningError, match="no nn.Linear"):
        P.scores(nn.Sequential(nn.Conv1d(1, 1, 3), nn.ReLU()), "magnitude")


# -- masks -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("output", ["prune", "half", "dense"])
@pytest.mark.parametrize("density", [0.5, 0.2, 0.08])
def test_masks_hit_the_requested_density(scope, output, density):
    model = tiny()
    s = P.scores(model, "magnitude")
    sizes = [t.numel() for t in s]
    m = P.masks(s, density, scope, output=output)
    kept = [int(x.sum()) for x in m]
    assert abs(sum(kept) - round(density * sum(sizes))) <= len(sizes)
    if scope == "layer" and output == "prune":
        assert all(abs(k - density * n) <= 1 for k, n in zip(kept, sizes, strict=True))
    if output == "dense":
        assert kept[-1] == sizes[-1]
    if output == "half":   # output density ≈ h^(ln .9/ln .8) where the others keep h
        h = sum(kept[:-1]) / sum(sizes[:-1])
        assert abs(kept[-1] - sizes[-1] * h ** HALF_RATE) <= 1


def test_global_magnitude_keeps_exactly_the_largest_weights():
    model = tiny()
    s = P.scores(model, "magnitude")
    m = P.masks(s, 0.3)
    flat = torch.cat([t.reshape(-1) for t in s])
    kept = torch.cat([x.reshape(-1) for x in m])
    assert flat[kept].min() >= flat[~kept].max()


def test_per_layer_density_list():
    s = P.scores(tiny(), "random", seed=3)
    m = P.masks(s, [0.5, 0.25, 1.0])
    assert [int(x.sum()) for x in m] == [round(0.5 * 192), round(0.25 * 128), 24]


def test_dense_output_below_its_share_is_refused():
    with pytest.raises(PruningError, match="dense output"):
        P.masks(P.scores(tiny(), "magnitude"), 0.01, output="dense")


# -- masked weights stay zero ------------------------------------------------------------------------

@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
    lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2),
    lambda p: torch.optim.Adam(p, lr=1e-2),
    lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-2),
    lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    lambda p: torch.optim.RMSprop(p, lr=1e-3, momentum=0.5),
], ids=["sgd-momentum", "nesterov-wd", "adam", "adam-l2", "adamw", "rmsprop"])
def test_masked_weights_stay_exactly_zero_through_100_steps(make_opt):
    model = tiny()
    mask = P.masks(P.scores(model, "random", seed=1), 0.3)
    P.apply(model, mask)
    opt = make_opt(model.parameters())
    x, y = toy_data()
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for layer, m in zip(P.prunable(model), mask, strict=True):
        assert torch.count_nonzero(layer.weight[~m]) == 0
        assert torch.count_nonzero(layer.weight[m]) > 0.9 * m.sum()   # the kept ones did train


def test_masks_applied_mid_training_stay_zero_with_the_step_hook():
    """Momentum gathered before the mask would move masked weights; step_hook puts them back at zero."""
    model = tiny()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = toy_data()
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    mask = P.masks(P.scores(model, "magnitude"), 0.2)
    P.apply(model, mask)
    for step in range(20):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        P.step_hook(model, step)
    assert all(torch.count_nonzero(layer.weight[~m]) == 0 for layer, m in zip(P.prunable(model), mask, strict=True))


def test_a_deep_copy_of_a_pruned_model_stays_pruned():
    model = P.apply(tiny(), P.masks(P.scores(tiny(), "random"), 0.4))
    twin = copy.deepcopy(model)
    opt = torch.optim.Adam(twin.parameters(), lr=1e-2)
    x, y = toy_data()
    for _ in range(10):
        opt.zero_grad()
        nn.functional.cross_entropy(twin(x), y).backward()
        opt.step()
    masks = P.current_masks(twin)
    assert all(torch.count_nonzero(layer.weight[~m]) == 0 for layer, m in zip(P.prunable(twin), masks, strict=True))
    assert set(twin.state_dict()) == set(tiny().state_dict())   # still loads into an unpruned model


# -- scores ------------------------------------------------------------------------------------------

def test_synflow_conserves_R_in_every_layer_of_a_bias_free_net():
    """Tanaka et al. Theorem 2: each layer's scores sum to R = 1ᵀ(Π|W|)1; in, out flow equal per neuron."""
    model = tiny(bias=False)
    s = P.scores(model, "synflow")
    Ws = [layer.weight.detach().double().abs() for layer in P.prunable(model)]
    prod = Ws[0]
    for w in Ws[1:]:
        prod = w @ prod
    R = float(prod.sum())
    for layer_scores in s:
        assert abs(float(layer_scores.double().sum()) - R) <= 1e-5 * R
    for a, b in zip(s[:-1], s[1:], strict=True):   # neuron j of layer l: incoming = outgoing
        np.testing.assert_allclose(a.double().sum(1), b.double().sum(0), rtol=1e-5)


def test_snip_is_grad_times_weight_by_finite_differences():
    model = tiny()
    x, y = toy_data()
    s = P.scores(model, "snip", data=(x, y), seed=0)
    w = P.prunable(model)[1].weight
    i, j, h = 3, 5, 1e-3
    pick = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))[:256]
    xb, yb = x[pick], y[pick]
    with torch.no_grad():
        base = w[i, j].item()
        w[i, j] = base + h
        up = nn.functional.cross_entropy(model(xb), yb).item()
        w[i, j] = base - h
        down = nn.functional.cross_entropy(model(xb), yb).item()
        w[i, j] = base
    assert abs(float(s[1][i, j]) - abs((up - down) / (2 * h) * base)) < 1e-4


def test_grasp_is_weight_times_hessian_gradient():
    """θ ⊙ Hg against the Hessian built by torch.func.hessian on the flattened weights of a tiny net."""
    model = tiny(sizes=(4, 5, 3))
    x, y = toy_data(d=4)
    s = P.scores(model, "grasp", data=(x, y), seed=0)
    pick = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))[:256]
    xb, yb = x[pick], y[pick]
    l1, l2 = P.prunable(model)
    shapes = [l1.weight.shape, l2.weight.shape]
    flat = torch.cat([l1.weight.detach().reshape(-1), l2.weight.detach().reshape(-1)]).double()

    def loss(v):
        a, b = v[:20].reshape(shapes[0]), v[20:].reshape(shapes[1])
        h = torch.relu(xb.double() @ a.T + l1.bias.double())
        return nn.functional.cross_entropy((h @ b.T + l2.bias.double()) / 200.0, yb)

    v = flat.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(v), v, create_graph=True)
    H = torch.stack([torch.autograd.grad(g[i], v, retain_graph=True)[0] for i in range(v.numel())])
    hg = H.detach() @ g.detach()
    expect = (flat * hg).float()
    got = torch.cat([t.reshape(-1) for t in s])
    np.testing.assert_allclose(got.numpy(), expect.numpy(), rtol=1e-3, atol=1e-9)


def test_synflow_avoids_collapse_where_magnitude_at_init_empties_a_layer():
    """The digits MLP at 0.5 %: for seed 0 global magnitude at init empties the 128×10 output layer, SynFlow
    keeps every layer (over seeds 0–2 magnitude at init collapses in one, SNIP in none: bench_pruning)."""
    from core import nets

    model = nets.build(nets.NetSpec(64, (128, 128), 10), seed=0)
    mag = P.masks(P.scores(model, "magnitude"), 0.005)
    syn = P.synflow_masks(model, 0.005)
    assert min(int(m.sum()) for m in syn) > 0
    assert min(int(m.sum()) for m in mag) == 0


# -- RigL, DCT + sparse, the batched stack -----------------------------------------------------------

def test_rigl_keeps_counts_and_never_drops_and_grows_the_same_weight():
    torch.manual_seed(0)
    from core.pruning.stack import Stack, rigl_update

    weights = [torch.randn(2, 16, 12), torch.randn(2, 3, 16)]
    biases = [torch.zeros(2, 16), torch.zeros(2, 3)]
    masks = [torch.rand(2, 16, 12) < 0.3, torch.rand(2, 3, 16) < 0.5]
    stack = Stack(weights, biases, masks)
    x, y = toy_data()
    before = [m.clone() for m in stack.masks]
    logits = stack.forward(x, keep_effective=True)
    nn.functional.cross_entropy(logits.reshape(-1, 3), y.repeat(2)).backward()
    moved = rigl_update(stack, 0.3)
    assert moved > 0
    for old, new, w in zip(before, stack.masks, stack.weights, strict=True):
        assert torch.equal(old.sum(dim=(1, 2)), new.sum(dim=(1, 2)))
        dropped, grown = (old > 0) & (new == 0), (old == 0) & (new > 0)
        assert int(dropped.sum()) == int(grown.sum()) > 0
        assert not (dropped & grown).any()
        assert torch.count_nonzero(w[grown]) == 0


def test_dct_plus_sparse_is_isometric_at_init_at_any_density():
    for n_in, n_out, d in ((64, 128, 0.01), (128, 128, 0.0001), (128, 10, 0.5)):
        layer = P.DCTPlusSparse(n_in, n_out, d, seed=1)
        sv = torch.linalg.svdvals(layer.effective_weight().detach().double())
        np.testing.assert_allclose(sv.numpy(), 1.0, atol=1e-6)
        assert int(layer.weight_mask.sum()) == round(d * n_in * n_out)


def test_stacked_training_equals_separate_runs_of_the_shared_loop():
    """Three masked nets trained as one batched stack equal three runs of core.training.train (heavy ball).

    One epoch (22 steps): float32 sums in a batched product and a plain one differ in the last bits, and
    ReLU kinks amplify that over longer runs (to ~1e-3 after 2 epochs), as between any two BLAS kernels."""
    from core import data, nets, training

    ds = data.load("digits")
    spec = nets.NetSpec(64, (32,), 10)
    models = [nets.build(spec, seed=s) for s in range(3)]
    mask_lists = [P.masks(P.scores(m, "random", seed=s), d) for s, (m, d) in enumerate(zip(models, (0.5, 0.3, 0.2),
                                                                                           strict=True))]
    stack = P.Stack.from_models(models, mask_lists)
    list(P.train_stack(stack, ds, epochs=1, lr=0.01, seed=4, optimizer="sgd", momentum=0.9))
    for k, (model, m) in enumerate(zip(models, mask_lists, strict=True)):
        alone = P.apply(copy.deepcopy(model), m)
        list(training.train(alone, ds, optimizer="heavy_ball", lr=0.01, momentum=0.9, epochs=1, batch_size=64,
                            seed=4))
        for i, layer in enumerate(P.prunable(alone)):
            torch.testing.assert_close(stack.effective(i)[k].detach(), layer.weight.detach(), atol=1e-5, rtol=0)
        assert stack.accuracy(ds.x_test, ds.y_test)[k] == pytest.approx(training.evaluate(alone, ds.x_test,
                                                                                          ds.y_test)[1], abs=1e-6)


def _small_digits():
    from core import data, nets

    return data.load("digits"), nets.NetSpec(64, (32,), 10)


def test_a_batched_density_sweep_equals_separate_runs():
    ds, spec = _small_digits()
    recipe = P.Recipe(epochs=1)

    def points(densities):
        return [pt for item in P.at_init(ds, spec, "snip", densities, seeds=[0, 1], recipe=recipe)
                if isinstance(item, list) for pt in item]

    batched = points([0.5, 0.1])
    alone = points([0.5]) + points([0.1])
    assert [(p.density, p.seed) for p in batched] == [(p.density, p.seed) for p in alone]
    np.testing.assert_allclose([p.accuracy for p in batched], [p.accuracy for p in alone], atol=1e-6)


def test_lottery_prunes_20_percent_a_round_and_the_output_at_half_the_rate():
    ds, spec = _small_digits()
    got = {}
    for item in P.lottery(ds, spec, seeds=[0], recipe=P.Recipe(epochs=1), rounds=3, output="half", controls=True):
        if isinstance(item, list):
            for pt in item:
                got.setdefault(pt.method, []).append(pt.layers)
    assert len(got["imp"]) == 3 and got["reinit"] == got["imp"]        # the re-init control keeps the mask
    for r, layers in enumerate(got["imp"], start=1):
        assert abs(layers[0] - 0.8 ** r) <= 2 / (64 * 32) and abs(layers[1] - 0.9 ** r) <= 2 / 320
    for ticket, rand in zip(got["imp"], got["random_mask"], strict=True):   # same layer densities
        np.testing.assert_allclose(rand, ticket, atol=1.5 / 320)


def test_rigl_training_keeps_every_layers_erk_count():
    ds, spec = _small_digits()
    shapes = [(32, 64), (10, 32)]
    (pts,) = [item for item in P.rigl(ds, spec, [0.2], seeds=[0], recipe=P.Recipe(epochs=2), interval=5)
              if isinstance(item, list)]
    expect = P.erk_densities(shapes, 0.2)
    counts = np.array(pts[0].layers) * [64 * 32, 320]
    np.testing.assert_allclose(counts, np.round(expect * [64 * 32, 320]), atol=0.5)


# -- the preview budget (what the panel trains when it opens) ------------------------------------------

def test_the_preview_caps_the_budget_and_leaves_the_rest_as_set():
    p = P.PruningParams()
    q = P.budgeted(p, "preview", 22)
    assert (q.seeds, q.points, q.epochs, q.rounds, q.ticket_round) == (1, 4, 3, 3, 3)
    same = {k: v for k, v in p.to_dict().items() if k not in ("seeds", "points", "epochs", "rounds", "ticket_round")}
    assert {k: getattr(q, k) for k in same} == same
    assert P.budgeted(p, "full", 22) == p
    small = p.replace(seeds=1, points=2, epochs=1, rounds=1, ticket_round=1)
    assert P.budgeted(small, "preview", 22) == small              # already within the preview: the full sweep
    # the default sweep's 7 densities, 100 % … 0.1 %, contain the preview's 4 (every other one)
    full, part = P.sweep_densities(p.points, p.lowest), P.sweep_densities(q.points, q.lowest)
    np.testing.assert_allclose(part, full[::2], rtol=1e-12)
    with pytest.raises(ValueError, match="budget"):
        P.budgeted(p, "huge", 22)


def test_a_preview_with_rewinding_trains_long_enough_to_reach_the_rewind_step():
    """Rewinding to step 100 needs 5 epochs of 22 steps: the preview keeps them, and the real lottery runs."""
    ds, spec = _small_digits()
    steps = math.ceil(len(ds.x_train) / P.Recipe().batch_size)
    q = P.budgeted(P.PruningParams(rewind=100), "preview", steps)
    assert q.epochs == math.ceil(100 / steps) == 5
    items = list(P.lottery(ds, spec, seeds=[0], recipe=P.Recipe(epochs=q.epochs), rounds=1, rewind=q.rewind,
                           controls=False))
    assert sum(isinstance(item, list) for item in items) == 2   # dense, then the rewound ticket
    with pytest.raises(ValueError, match="rewind step 100"):
        list(P.lottery(ds, spec, seeds=[0], recipe=P.Recipe(epochs=3), rounds=1, rewind=100, controls=False))
