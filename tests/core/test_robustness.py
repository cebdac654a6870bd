"""core.robustness against closed forms (THEORY.md §7), torchattacks' definitions (transcribed below), brute
force (sampled balls, box corners, rolled and rotated images) and the sandwich certified ≤ PGD ≤ FGSM ≤ clean.

Nothing here compares the engine with itself: each check has an independent answer.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core import robustness as R
from core.robustness import experiments as X

TOL = 1e-5


def _mlp(sizes, seed=0):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()


@pytest.fixture(scope="module")
def digits():
    from core import data

    return data.load("digits")


@pytest.fixture(scope="module")
def nets(digits):
    """A standard and an adversarially trained digits MLP, short training (3 epochs, Adam)."""
    from core import nets as N

    out = {}
    for kind, eps in (("standard", 0.0), ("adversarial", 0.2)):
        trained = None
        for item in X.train_net(digits, N.DIGITS_MLP, X.Recipe(kind, eps, epochs=3), seed=0, device="cpu"):
            trained = item
        out[kind] = trained.model
    return out


# -- closed forms (THEORY.md §7) ------------------------------------------------------------------

def _linear_logit_model(d=12, seed=1):
    """Logits (z, 0) with z = wᵀx + b: a linear logit; with label 0 the loss −log σ(z) grows as z falls."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(d, 2)
    with torch.no_grad():
        model.weight.copy_(torch.cat([torch.randn(1, d, generator=g), torch.zeros(1, d)]))
        model.bias.copy_(torch.tensor([0.3, 0.0]))
    return model.eval()


def test_fgsm_moves_a_linear_logit_by_eps_times_the_l1_norm():
    model = _linear_logit_model()
    g = torch.Generator().manual_seed(2)
    x = 0.3 + 0.4 * torch.rand(20, 12, generator=g)       # interior: the clamp never acts at ε ≤ 0.3
    y = torch.zeros(20, dtype=torch.long)
    w = model.weight[0].detach()
    for eps in (0.0, 0.05, 0.2, 0.3):
        z0 = model(x)[:, 0]
        z1 = model(R.fgsm(model, x, y, eps))[:, 0]
        np.testing.assert_allclose((z0 - z1).detach().numpy(), eps * float(w.abs().sum()), atol=TOL)


@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_equals_fgsm_on_a_linear_logit(random_start):
    """The sign of the gradient never changes, so every PGD step walks to the same corner of the box."""
    model = _linear_logit_model()
    x = 0.3 + 0.4 * torch.rand(20, 12, generator=torch.Generator().manual_seed(3))
    y = torch.zeros(20, dtype=torch.long)
    eps = 0.1
    np.testing.assert_allclose(R.pgd(model, x, y, eps, steps=10, random_start=random_start).numpy(),
                               R.fgsm(model, x, y, eps).numpy(), atol=1e-6)


def test_deepfool_on_an_affine_binary_classifier_lands_on_the_boundary():
    """One step to x − f(x) w/‖w‖² · (1 + overshoot), ‖r‖ = |f|/‖w‖ · (1 + overshoot), for a whole batch."""
    g = torch.Generator().manual_seed(4)
    d, n, overshoot = 10, 32, 0.02
    model = nn.Linear(d, 2).eval()
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, d, generator=g))
        model.bias.zero_()
        w = model.weight[1] - model.weight[0]
        model.bias[1] = -0.5 * w.sum()              # the boundary f(x) = wᵀx + b = 0 through the centre
    w = (model.weight[1] - model.weight[0]).detach()
    x = 0.5 + 0.02 * torch.randn(n, d, generator=g)  # near it: the step stays inside [0, 1]
    f = (x @ w + (model.bias[1] - model.bias[0]).detach()).detach()
    out = R.deepfool(model, x, overshoot=overshoot)
    expected = x - (f / w.dot(w))[:, None] * w * (1 + overshoot)
    np.testing.assert_allclose(out.adversarial.numpy(), expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(out.distance.numpy(), (f.abs() / w.norm() * (1 + overshoot)).numpy(), rtol=1e-4)
    assert out.fooled.all() and (out.steps == 1).all()


# -- torchattacks' definitions, transcribed literally (torchattacks/attacks/fgsm.py, pgd.py, pgdl2.py) ----

def torchattacks_fgsm(model, images, labels, eps):
    images = images.clone().detach()
    images.requires_grad = True
    cost = nn.CrossEntropyLoss()(model(images), labels)
    grad = torch.autograd.grad(cost, images, retain_graph=False, create_graph=False)[0]
    adv_images = images + eps * grad.sign()
    return torch.clamp(adv_images, min=0, max=1).detach()


def torchattacks_pgd(model, images, labels, eps, alpha, steps):
    images = images.clone().detach()
    adv_images = images.clone().detach()         # random_start=False
    for _ in range(steps):
        adv_images.requires_grad = True
        cost = nn.CrossEntropyLoss()(model(adv_images), labels)
        grad = torch.autograd.grad(cost, adv_images, retain_graph=False, create_graph=False)[0]
        adv_images = adv_images.detach() + alpha * grad.sign()
        delta = torch.clamp(adv_images - images, min=-eps, max=eps)
        adv_images = torch.clamp(images + delta, min=0, max=1).detach()
    return adv_images


def torchattacks_pgdl2(model, images, labels, eps, alpha, steps, eps_for_division=1e-10):
    images = images.clone().detach()
    adv_images = images.clone().detach()         # random_start=False
    batch_size = len(images)
    for _ in range(steps):
        adv_images.requires_grad = True
        cost = nn.CrossEntropyLoss()(model(adv_images), labels)
        grad = torch.autograd.grad(cost, adv_images, retain_graph=False, create_graph=False)[0]
        grad_norms = torch.norm(grad.view(batch_size, -1), p=2, dim=1) + eps_for_division
        grad = grad / grad_norms.view(batch_size, 1)
        adv_images = adv_images.detach() + alpha * grad
        delta = adv_images - images
        delta_norms = torch.norm(delta.view(batch_size, -1), p=2, dim=1)
        factor = eps / delta_norms
        factor = torch.min(factor, torch.ones_like(delta_norms))
        delta = delta * factor.view(-1, 1)
        adv_images = torch.clamp(images + delta, min=0, max=1).detach()
    return adv_images


def _per_image(fn, model, x, y, *args):
    return torch.cat([fn(model, x[i:i + 1], y[i:i + 1], *args) for i in range(len(x))])


def test_fgsm_and_pgd_agree_with_torchattacks(digits):
    model = _mlp((64, 32, 32, 10), seed=5)
    x, y = digits.x_test[:20], digits.y_test[:20]
    eps = 0.1
    np.testing.assert_allclose(R.fgsm(model, x, y, eps).numpy(),
                               _per_image(torchattacks_fgsm, model, x, y, eps).numpy(), atol=1e-6)
    ours = R.pgd(model, x, y, eps, alpha=0.02, steps=10, random_start=False)
    np.testing.assert_allclose(ours.numpy(), _per_image(torchattacks_pgd, model, x, y, eps, 0.02, 10).numpy(),
                               atol=1e-6)
    ours = R.pgd(model, x, y, 1.0, alpha=0.2, steps=10, norm="2", random_start=False)
    np.testing.assert_allclose(ours.numpy(), _per_image(torchattacks_pgdl2, model, x, y, 1.0, 0.2, 10).numpy(),
                               atol=1e-6)


# -- certificates ---------------------------------------------------------------------------------

def _box_samples(x, eps, n, seed):
    g = torch.Generator().manual_seed(seed)
    lo, up = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    u = torch.rand(n, x.numel(), generator=g)
    u[: n // 10] = (u[: n // 10] > 0.5).float()      # a tenth of them at corners of the box
    return lo + u * (up - lo)


@pytest.mark.parametrize("eps", [0.02, 0.1, 0.3])
def test_ibp_and_linear_bounds_contain_ten_thousand_samples_of_each_ball(eps):
    model = _mlp((16, 32, 32, 5), seed=6)
    g = torch.Generator().manual_seed(7)
    x = torch.rand(4, 16, generator=g)
    with torch.no_grad():
        ibp_lo, ibp_up = R.interval_bounds(model, x, eps)
        lin_lo, lin_up = R.linear_bounds(model, x, eps)
        for i in range(len(x)):
            out = model(_box_samples(x[i], eps, 10_000, seed=i))
            for lo, up in ((ibp_lo, ibp_up), (lin_lo, lin_up)):
                assert (out >= lo[i] - TOL).all() and (out <= up[i] + TOL).all()
    assert (lin_lo >= ibp_lo - 1e-6).all() and (lin_up <= ibp_up + 1e-6).all()
    # and strictly tighter on the whole: CROWN's linear relaxation beats interval arithmetic on a random net
    assert float((lin_up - lin_lo).mean()) < 0.9 * float((ibp_up - ibp_lo).mean())


def test_bounds_at_eps_zero_are_the_forward_pass():
    model = _mlp((16, 32, 32, 5), seed=8)
    x = torch.rand(6, 16, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        out = model(x)
    with torch.no_grad():
        bounds = (R.interval_bounds(model, x, 0.0), R.linear_bounds(model, x, 0.0))
    for lo, up in bounds:
        np.testing.assert_allclose(lo.detach().numpy(), out.numpy(), atol=TOL)
        np.testing.assert_allclose(up.detach().numpy(), out.numpy(), atol=TOL)


def test_ibp_of_one_affine_layer_is_its_exact_range():
    """The range of an affine map over a box is attained at its corners: enumerate all 2^6 of them."""
    model = nn.Sequential(nn.Linear(6, 3)).eval()
    x = 0.2 + 0.6 * torch.rand(2, 6, generator=torch.Generator().manual_seed(10))
    eps = 0.15
    lo, up = R.interval_bounds(model, x, eps)
    corners = torch.tensor(list(itertools.product([-eps, eps], repeat=6)))
    with torch.no_grad():
        for i in range(2):
            out = model(x[i] + corners)
            np.testing.assert_allclose(lo[i].detach().numpy(), out.min(0).values.numpy(), atol=TOL)
            np.testing.assert_allclose(up[i].detach().numpy(), out.max(0).values.numpy(), atol=TOL)


def test_margin_bounds_are_sound_and_certification_implies_no_sampled_counterexample():
    model = _mlp((16, 24, 4), seed=11)
    x = torch.rand(8, 16, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        y = model(x).argmax(1)
    for method in ("ibp", "crown"):
        low = R.margin_lower_bounds(model, x, y, 0.05, method)
        with torch.no_grad():
            for i in range(len(x)):
                z = model(_box_samples(x[i], 0.05, 2000, seed=i))
                margins = z[:, y[i]:y[i] + 1] - z
                margins[:, y[i]] = math.inf
                assert (margins >= low[i] - TOL).all()


def test_lipschitz_bound_of_a_linear_map_is_its_largest_singular_value():
    model = nn.Sequential(nn.Linear(7, 5))
    expected = np.linalg.svd(model[0].weight.detach().double().numpy(), compute_uv=False)[0]
    assert R.lipschitz_bound(model) == pytest.approx(expected, rel=1e-9)
    deep = _mlp((7, 9, 5), seed=13)
    product = np.prod([np.linalg.svd(m.weight.detach().double().numpy(), compute_uv=False)[0]
                       for m in deep if isinstance(m, nn.Linear)])
    assert R.lipschitz_bound(deep) == pytest.approx(product, rel=1e-9)


# -- on digits: the sandwich, the gap between standard and adversarial training, gradient masking --------

EPS_GRID = (0.0, 0.05, 0.1, 0.2, 0.3)


def test_the_sandwich_holds_at_every_eps(nets, digits):
    x, y = digits.x_test[:100], digits.y_test[:100]
    for kind, model in nets.items():
        c = X.accuracy_curve(model, x, y, EPS_GRID, pgd_steps=10, kind=kind)
        assert (c.ibp <= c.crown + 1e-9).all(), kind
        assert (c.crown <= c.pgd + 1e-9).all(), (kind, c.crown, c.pgd)
        assert (c.pgd <= c.fgsm + 1e-9).all(), (kind, c.pgd, c.fgsm)
        assert (c.fgsm <= c.clean + 1e-9).all(), kind
        assert c.fgsm[0] == c.pgd[0] == c.crown[0] == c.ibp[0] == c.clean     # ε = 0: nothing moves


def test_pgd_breaks_a_standard_net_but_not_an_adversarially_trained_one(nets, digits):
    x, y = digits.x_test, digits.y_test
    std = X.accuracy_curve(nets["standard"], x, y, (0.2,), pgd_steps=20)
    adv = X.accuracy_curve(nets["adversarial"], x, y, (0.2,), pgd_steps=20)
    # 3 epochs (seconds): standard ≈ 2 %, adversarial ≈ 19 % at ε = 0.2; the benchmark trains longer and
    # reports the full curves averaged over seeds
    assert std.pgd[0] < 0.10, std.pgd
    assert adv.pgd[0] > 0.15 and adv.pgd[0] > 4 * std.pgd[0], (adv.pgd, std.pgd)
    assert adv.clean > 0.65


def test_no_gradient_masking(nets, digits):
    """PGD fools at least every example FGSM fools… nearly (≥), success reaches 100 % as ε grows, and more
    restarts never fool fewer examples."""
    x, y = digits.x_test[:150], digits.y_test[:150]
    model = nets["standard"]
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    for eps in (0.05, 0.1, 0.2):
        with torch.no_grad():
            fgsm_fooled = (model(R.fgsm(model, x, y, eps)).argmax(1) != y) & correct
            pgd_fooled = (model(R.pgd(model, x, y, eps, steps=20)).argmax(1) != y) & correct
        assert int(pgd_fooled.sum()) >= int(fgsm_fooled.sum())
    with torch.no_grad():
        assert (model(R.pgd(model, x, y, 0.5, steps=20)).argmax(1) != y).all()
        one = model(R.pgd(model, x, y, 0.08, steps=5, restarts=1)).argmax(1) != y
        three = model(R.pgd(model, x, y, 0.08, steps=5, restarts=3)).argmax(1) != y
    assert (three | ~one).all() and int(three.sum()) >= int(one.sum())


def test_lipschitz_radius_is_below_the_deepfool_distance(nets, digits):
    for kind, model in nets.items():
        r = X.minimal_perturbations(model, digits.x_test[:200], digits.y_test[:200], kind)
        assert r.fooled > 0.95
        assert (r.lipschitz <= r.deepfool + 1e-6).all()


# -- spatial --------------------------------------------------------------------------------------

def test_spatial_transforms_match_rolls_and_rot90(digits):
    img = digits.x_test[:3]
    np.testing.assert_allclose(R.transform_images(img, 0, 0, 0).numpy(), img.numpy(), atol=1e-6)
    grid = img.view(3, 8, 8)
    right = torch.zeros_like(grid)
    right[:, :, 2:] = grid[:, :, :-2]
    np.testing.assert_allclose(R.transform_images(img, 0, 2, 0).view(3, 8, 8).numpy(), right.numpy(), atol=1e-5)
    down = torch.zeros_like(grid)
    down[:, 1:, :] = grid[:, :-1, :]
    np.testing.assert_allclose(R.transform_images(img, 0, 0, 1).view(3, 8, 8).numpy(), down.numpy(), atol=1e-5)
    ccw = torch.rot90(grid, 1, dims=(1, 2))      # counter-clockwise as displayed
    np.testing.assert_allclose(R.transform_images(img, 90, 0, 0).view(3, 8, 8).numpy(), ccw.numpy(), atol=1e-5)


def test_spatial_grid_search(nets, digits):
    model = nets["standard"]
    x, y = digits.x_test[:100], digits.y_test[:100]
    r = R.spatial(model, x, y, np.linspace(-30, 30, 7), np.arange(-1, 2))
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
    assert r.accuracy.shape == (7, 3, 3)
    assert r.accuracy[3, 1, 1] == pytest.approx(clean)
    rotated = R.transform_images(x, -30, 1, -1)
    with torch.no_grad():
        assert r.accuracy[0, 0, 2] == pytest.approx(float((model(rotated).argmax(1) == y).float().mean()))
    assert r.worst_accuracy <= r.accuracy.min() + 1e-12
    angle, dx, dy = r.worst_cell
    assert r.accuracy.min() == r.accuracy[list(r.angles).index(angle), list(r.shifts).index(dy),
                                          list(r.shifts).index(dx)]


# -- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("eps", [-0.1, math.nan, 1.5, "a"])
def test_bad_eps_is_refused_with_a_message(eps):
    model = _mlp((4, 3), seed=0)
    x, y = torch.full((2, 4), 0.5), torch.zeros(2, dtype=torch.long)
    for call in (lambda: R.fgsm(model, x, y, eps), lambda: R.pgd(model, x, y, eps),
                 lambda: R.interval_bounds(model, x, eps), lambda: R.certified_accuracy(model, x, y, eps)):
        with pytest.raises(R.RobustnessError, match="ε"):
            call()


def test_l2_radius_beyond_the_cube_and_unscaled_pixels_are_refused():
    model = _mlp((4, 3), seed=0)
    y = torch.zeros(2, dtype=torch.long)
    with pytest.raises(R.RobustnessError, match="data range"):
        R.pgd(model, torch.full((2, 4), 0.5), y, 2.5, norm="2")
    with pytest.raises(R.RobustnessError, match="divide by 16"):
        R.fgsm(model, torch.full((2, 4), 16.0), y, 0.1)


class _NoGrad(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        with torch.no_grad():
            return self.lin(x)


def test_an_attack_on_a_model_without_gradients_says_so():
    x, y = torch.full((2, 4), 0.5), torch.zeros(2, dtype=torch.long)
    for call in (lambda m: R.fgsm(m, x, y, 0.1), lambda m: R.pgd(m, x, y, 0.1), lambda m: R.deepfool(m, x)):
        with pytest.raises(R.RobustnessError, match="no gradient"):
            call(_NoGrad())


def test_attacks_work_under_no_grad_restore_the_mode_and_leave_parameter_gradients_alone():
    model = _mlp((6, 8, 3), seed=1).train()
    x = torch.rand(5, 6, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(5, dtype=torch.long)
    free = R.fgsm(model, x, y, 0.1)
    with torch.no_grad():
        inside = R.fgsm(model, x, y, 0.1)
    np.testing.assert_array_equal(free.numpy(), inside.numpy())
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert free.min() >= 0 and free.max() <= 1


def test_certificates_refuse_what_they_cannot_read():
    with pytest.raises(R.RobustnessError, match="cannot bound"):
        R.interval_bounds(nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 2)), torch.rand(1, 4), 0.1)
    with pytest.raises(R.RobustnessError, match="ReLU"):
        R.linear_bounds(nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)), torch.rand(1, 4), 0.1)


# -- training, caching, files, sparsity -----------------------------------------------------------

def test_robust_nets_are_cached_apart_and_saved_with_their_recipe(nets, digits, tmp_path):
    from core import models
    from core import nets as N

    adv = X.cached_net(digits, N.DIGITS_MLP, X.Recipe("adversarial", 0.2, epochs=3), seed=0)
    std = X.cached_net(digits, N.DIGITS_MLP, X.Recipe("standard", 0.0, epochs=3), seed=0)
    assert adv is not None and std is not None and adv.model is not std.model
    assert std.recipe == models.Recipe(epochs=3)            # the shared digits net of every panel
    path = models.save(tmp_path / "adv.safetensors", adv)
    back = models.open(path)
    assert dict(back.recipe.hyper)["robust_training"] == "adversarial(eps=0.2,steps=7)"
    x = digits.x_test[:20]
    with torch.no_grad():
        np.testing.assert_allclose(back.model(x).numpy(), adv.model(x).numpy(), atol=1e-6)


def test_ibp_loss_ramps_and_bounds_the_clean_loss():
    from core.robustness.training import ibp_loss, ramp, worst_case_logits

    assert ramp(0, 100) == 0.0 and ramp(100, 100) == 1.0 and 0 < ramp(30, 100) < 1
    model = _mlp((16, 12, 4), seed=2)
    x = torch.rand(8, 16, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 4, (8,), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        z_hat = worst_case_logits(model, x, y, 0.05)
        clean = float(F.cross_entropy(model(x), y))
        assert float(F.cross_entropy(z_hat, y)) >= clean - 1e-6
    loss = ibp_loss(0.05, total_steps=10)
    values = [float(loss(model, x, y).detach()) for _ in range(10)]
    assert values[0] == pytest.approx(clean)     # before the ramp: the clean loss only
    assert values[-1] > values[0]


def test_sparsity_sweep_prunes_to_the_density(nets, digits):
    points = list(X.sparsity_sweep(nets["standard"], digits, (1.0, 0.1), 0.1, finetune_epochs=0, pgd_steps=3))
    assert [p.density for p in points] == [1.0, 0.1]
    assert points[1].clean <= points[0].clean + 0.05
    assert all(0 <= p.pgd <= p.clean for p in points)


def test_toy_picture_draws_real_attacks():
    r = X.toy_picture("moons", (0.5, 0.5), 0.08, resolution=40, pgd_steps=5)
    assert r.classes.shape == (40, 40) and r.accuracy > 0.9
    assert np.abs(r.pgd_path - r.point).max() <= 0.08 + 1e-6
    assert np.abs(r.fgsm[1] - r.point).max() == pytest.approx(0.08, abs=1e-6)
    assert len(r.deepfool_path) >= 2
