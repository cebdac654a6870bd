"""What the Robustness panel streams: the trained nets, accuracy against ε, DeepFool distances against
Lipschitz radii, the spatial grid, the 2-D picture and the sparsity sweep.

Robust accuracy here is the fraction of test examples for which the attack finds no misclassified point
in the ball; the clean point is in the ball, so an example misclassified to begin with counts as fooled.
PGD's curve also keeps a point found at a smaller ε (it lies in every larger ball), so PGD's accuracy never
rises with ε; certified accuracy is only tried on examples certified at the smaller ε (the certified
sets of the balls are nested). FGSM is reported raw: its single step can miss at a larger ε.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.robustness import attacks as A
from core.robustness import certificates as C
from core.robustness.training import KINDS, adversarial_loss, ibp_loss

TOY_SPEC_WIDTHS = (32, 32)


# -- the nets -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recipe:
    """How a digits net of the panel is trained: ``kind`` standard / adversarial (PGD, Madry) / ibp (Gowal),
    Adam at ``lr`` for ``epochs`` epochs of mini-batches of ``batch_size``."""

    kind: str = "standard"
    eps: float = 0.2              # training radius (adversarial, IBP)
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    pgd_steps: int = 7

    def key(self) -> str:
        extra = f",steps={self.pgd_steps}" if self.kind == "adversarial" else ""
        return f"{self.kind}(eps={self.eps:g}{extra})"

    def shared(self):
        """The ``core.models.Recipe`` it is cached and saved under. A standard net is the shared cache's
        plain recipe (so every panel uses one digits net); a robust one carries its training in ``hyper``
        ("robust_training": e.g. "adversarial(eps=0.2,steps=7)"), which keeps it apart in the cache and
        says in a saved file how it was made."""
        from core import models

        hyper = () if self.kind == "standard" else (("robust_training", self.key()),)
        return models.Recipe(optimizer="adam", lr=self.lr, epochs=self.epochs, batch_size=self.batch_size,
                             hyper=hyper)


@dataclass(frozen=True)
class Progress:
    """A training record of one of the panel's nets."""

    kind: str
    fraction: float
    test_accuracy: float
    step: int


def cached_net(data, spec, recipe: Recipe, seed: int = 0):
    """The cached ``core.models.Trained`` of this recipe, or None."""
    from core import models

    return models.cached(data, spec, recipe.shared(), seed)


def train_net(data, spec, recipe: Recipe, seed: int = 0, device=None) -> Iterator:
    """Train (or fetch from ``core.models``' cache) one net; yields Progress records and finally the
    ``core.models.Trained``.

    The loop is ``core.training.train`` (Adam); a standard net goes through ``core.models.train_cached``, a
    robust one replaces the loss by ``loss_fn`` (PGD or IBP). Closing the generator stops training within
    a step and caches nothing.
    """
    from core import models, nets, training

    if recipe.kind not in KINDS:
        raise A.RobustnessError(f"unknown training {recipe.kind!r}; choose from {', '.join(KINDS)}")
    steps_per_epoch = math.ceil(data.n_train / recipe.batch_size)
    total = recipe.epochs * steps_per_epoch
    every = max(1, steps_per_epoch // 2)
    if recipe.kind == "standard":
        run = models.train_cached(data, spec, recipe.shared(), seed, device=device, every=every)
        try:
            for item in run:
                if isinstance(item, models.Trained):
                    yield item
                    return
                yield Progress(recipe.kind, item.step / total, float(item.test_accuracy), item.step)
        finally:
            run.close()
        return
    hit = cached_net(data, spec, recipe, seed)
    if hit is not None:
        yield hit
        return
    model = nets.build(spec, seed=seed, device=device)
    if recipe.kind == "adversarial":
        loss_fn = adversarial_loss(recipe.eps, steps=recipe.pgd_steps, seed=seed)
    else:
        loss_fn = ibp_loss(recipe.eps, total)
    history = []
    run = training.train(model, data, optimizer="adam", lr=recipe.lr, epochs=recipe.epochs,
                         batch_size=recipe.batch_size, seed=seed, every=every, device=device, loss_fn=loss_fn)
    try:
        for rec in run:
            history.append(rec)
            yield Progress(recipe.kind, rec.step / total, float(rec.test_accuracy), rec.step)
    finally:
        run.close()
    model.eval()
    yield models.remember(models.Trained(model, spec, recipe.shared(), data.key, int(seed), tuple(history)))


# -- accuracy against ε ---------------------------------------------------------------------------

@dataclass(frozen=True)
class AccuracyCurve:
    kind: str
    eps: np.ndarray
    clean: float
    fgsm: np.ndarray
    pgd: np.ndarray
    ibp: np.ndarray
    crown: np.ndarray


def _on_device(model, x, y):
    dev = A.device_of(model)
    return torch.as_tensor(x).to(dev, torch.float32), torch.as_tensor(y).to(dev, torch.long)


def _correct(model, x, y) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[s:s + A.CHUNK]).argmax(1) == y[s:s + A.CHUNK] for s in range(0, len(x), A.CHUNK)])


def accuracy_curve(model, x, y, eps_values, *, pgd_steps: int = 20, restarts: int = 1, seed: int = 0,
                   kind: str = "") -> AccuracyCurve:
    """Clean, FGSM, PGD, IBP-certified and CROWN-certified accuracy at each ε (see the module docstring)."""
    eps_values = np.asarray([A.check_eps(e) for e in np.atleast_1d(eps_values)])
    x, y = _on_device(model, x, y)
    model.eval()
    clean = _correct(model, x, y)
    pgd_ok = clean.clone()
    ibp_ok, crown_ok = clean.clone(), clean.clone()
    out = {k: np.empty(len(eps_values)) for k in ("fgsm", "pgd", "ibp", "crown")}
    for i, eps in enumerate(eps_values):
        eps = float(eps)
        out["fgsm"][i] = float((clean & _correct(model, A.fgsm(model, x, y, eps), y)).float().mean())
        idx = pgd_ok.nonzero().squeeze(1)
        if idx.numel() and eps > 0:
            adv = A.pgd(model, x[idx], y[idx], eps, steps=pgd_steps, restarts=restarts, seed=seed)
            pgd_ok[idx] = _correct(model, adv, y[idx])
        out["pgd"][i] = float(pgd_ok.float().mean())
        for ok, method in ((ibp_ok, "ibp"), (crown_ok, "crown")):
            idx = ok.nonzero().squeeze(1)
            if idx.numel():
                ok[idx] = C.certified(model, x[idx], y[idx], eps, method)
            out[method][i] = float(ok.float().mean())
    return AccuracyCurve(kind, eps_values, float(clean.float().mean()), **out)


# -- minimal perturbations ------------------------------------------------------------------------

@dataclass(frozen=True)
class MinimalPerturbations:
    kind: str
    deepfool: np.ndarray       # (n,) L2 distance DeepFool needed (fooled examples)
    lipschitz: np.ndarray      # (n,) certified L2 radius m/(√2 Lip) of the same examples
    lip: float                 # Π ‖W_l‖₂
    fooled: float              # fraction DeepFool fooled


def minimal_perturbations(model, x, y, kind: str = "", overshoot: float = 0.02) -> MinimalPerturbations:
    """DeepFool's L2 distances and the Lipschitz-certified radii below them (correctly classified examples)."""
    x, y = _on_device(model, x, y)
    clean = _correct(model, x, y)
    xs, ys = x[clean], y[clean]
    result = A.deepfool(model, xs, overshoot=overshoot)
    lip = C.lipschitz_bound(model)
    radius = C.lipschitz_radius(model, xs, ys, lip)
    fooled = result.fooled
    return MinimalPerturbations(kind, result.distance[fooled].cpu().numpy(), radius[fooled].cpu().numpy(), lip,
                                float(fooled.float().mean()) if len(fooled) else math.nan)


# -- one digit ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DigitAttack:
    index: int
    label: int
    original: np.ndarray        # (d,)
    adversarial: np.ndarray
    p_original: np.ndarray      # (classes,) softmax
    p_adversarial: np.ndarray
    norm_linf: float
    norm_l2: float
    certified_ibp: bool
    fgsm_accuracy: float = math.nan     # over the whole test set at ε (with_test_set)
    ibp_accuracy: float = math.nan


def attack_one(model, x, y, index: int, attack: str, eps: float, eps_l2: float, *, pgd_steps: int = 20,
               restarts: int = 1, seed: int = 0, with_test_set: bool = False) -> DigitAttack:
    """The chosen attack on test image ``index``: images, probabilities, perturbation norms, IBP certificate;
    with ``with_test_set`` also FGSM and IBP-certified accuracy over all of ``x`` at ε (what an ε-slider move
    redraws)."""
    if not 0 <= index < len(x):
        raise A.RobustnessError(f"image index {index} is outside the test set (0 … {len(x) - 1})")
    x, y = _on_device(model, x, y)
    xi, yi = x[index:index + 1], y[index:index + 1]
    if attack == "fgsm":
        adv = A.fgsm(model, xi, yi, eps)
    elif attack == "pgd":
        adv = A.pgd(model, xi, yi, eps, steps=pgd_steps, restarts=restarts, seed=seed)
    elif attack == "pgd_l2":
        adv = A.pgd(model, xi, yi, eps_l2, steps=pgd_steps, norm="2", restarts=restarts, seed=seed)
    elif attack == "deepfool":
        adv = A.deepfool(model, xi).adversarial
    else:
        raise A.RobustnessError(f"unknown attack {attack!r}")
    with torch.no_grad():
        p0, p1 = F.softmax(model(xi), 1)[0], F.softmax(model(adv), 1)[0]
    delta = (adv - xi)[0]
    fgsm_acc = ibp_acc = math.nan
    if with_test_set:
        clean = _correct(model, x, y)
        fgsm_acc = float((clean & _correct(model, A.fgsm(model, x, y, eps), y)).float().mean())
        ibp_acc = C.certified_accuracy(model, x, y, eps, "ibp")
    return DigitAttack(index, int(yi[0]), xi[0].cpu().numpy(), adv[0].cpu().numpy(), p0.cpu().numpy(),
                       p1.cpu().numpy(), float(delta.abs().max()), float(delta.norm()),
                       bool(C.certified(model, xi, yi, eps, "ibp")[0]), fgsm_acc, ibp_acc)


# -- sparsity -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SparsityPoint:
    density: float
    clean: float
    pgd: float
    lipschitz: float
    index: int
    total: int


def sparsity_sweep(model, data, densities, eps: float, *, finetune_epochs: int = 3, pgd_steps: int = 10,
                   seed: int = 0, device=None) -> Iterator[SparsityPoint]:
    """Global magnitude pruning (core.pruning) of a copy of ``model`` at each density, fine-tuned briefly with
    the mask held (core.training.train with core.pruning.step_hook), then its clean and PGD accuracy at ε
    and its Lipschitz bound Π ‖W_l‖₂ (Gopalakrishnan et al. 2018; Guo et al. 2018)."""
    from core import pruning, training

    eps = A.check_eps(eps)
    x, y = data.x_test, data.y_test
    densities = [float(d) for d in densities]
    for i, density in enumerate(densities):
        net = copy.deepcopy(model)
        if density < 1.0:
            pruning.apply(net, pruning.masks(pruning.scores(net, "magnitude"), density, scope="global"))
            if finetune_epochs > 0:
                for _ in training.train(net, data, optimizer="adam", lr=1e-3, epochs=finetune_epochs, batch_size=64,
                                        seed=seed, device=device, step_hook=pruning.step_hook,
                                        every=10 ** 9):
                    pass
        net.eval()
        x_dev, y_dev = x.to(A.device_of(net)), y.to(A.device_of(net))
        clean = _correct(net, x_dev, y_dev)
        adv = A.pgd(net, x_dev, y_dev, eps, steps=pgd_steps, seed=seed)
        robust = clean & _correct(net, adv, y_dev)
        yield SparsityPoint(density, float(clean.float().mean()), float(robust.float().mean()),
                            C.lipschitz_bound(net), i, len(densities))


# -- the 2-D picture ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ToyPicture:
    extent: tuple               # (x0, x1, y0, y1)
    classes: np.ndarray         # (res, res) predicted class on the grid, [ix, iy]
    points: np.ndarray          # (n, 2) training points
    labels: np.ndarray
    point: np.ndarray           # (2,)
    label: int
    eps: float
    fgsm: np.ndarray            # (2, 2) start → end
    pgd_path: np.ndarray        # (k, 2)
    deepfool_path: np.ndarray   # (k, 2)
    unstable: np.ndarray        # (m, 3) first-layer lines w·x + b = 0 whose IBP interval straddles 0
    ibp_margin: float           # lower bound of the worst margin over the box (> 0: certified)
    crown_margin: float
    accuracy: float


def toy_net(name: str, seed: int = 0, steps: int = 600):
    """A small ReLU net (2 → 32 → 32 → classes) trained full-batch with Adam on a 2-D toy set, cached in
    ``core.models``."""
    from core import data as D
    from core import models, nets

    data = D.load(name, seed=seed, n=400, noise=0.15 if name == "moons" else 0.1)
    spec = nets.NetSpec(2, TOY_SPEC_WIDTHS, data.classes)
    recipe = models.Recipe(optimizer="adam", lr=1e-2, epochs=steps, batch_size=None)
    trained = None
    for item in models.train_cached(data, spec, recipe, seed, device="cpu", every=10 ** 9):
        trained = item
    return trained.model, data


def _pgd_path(model, x, y, eps, steps):
    alpha = 2.5 * eps / steps
    path = [x.clone()]
    adv = x.clone()
    with A.evaluating(model):
        for _ in range(steps):
            adv = A._pgd_run(model, x, y, eps, alpha, 1, "inf", adv)
            path.append(adv.clone())
    return torch.cat(path)


def _deepfool_path(model, x, steps=20):
    path = [x.clone()]
    p = x
    for _ in range(steps):
        r = A.deepfool(model, p, steps=1)
        p = r.adversarial
        path.append(p.clone())
        if bool(r.fooled[0]) or int(r.steps[0]) == 0:
            break
    return torch.cat(path)


def toy_picture(name: str, point, eps: float, *, seed: int = 0, resolution: int = 160, pgd_steps: int = 10,
                model=None, data=None) -> ToyPicture:
    """Decision regions of the toy net, and for ``point`` its ε-box, the FGSM / PGD / DeepFool steps, the
    first-layer ReLUs whose IBP interval over the box straddles 0, and IBP's and CROWN's margin bounds.

    The toy sets live in [0, 1]² (core.data scales them), the data range the attacks clamp to.
    """
    if model is None:
        model, data = toy_net(name, seed)
    eps = A.check_eps(eps)
    x0, x1, y0, y1 = 0.0, 1.0, 0.0, 1.0
    gx = torch.linspace(x0, x1, resolution)
    grid = torch.stack(torch.meshgrid(gx, gx, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        classes = model(grid).argmax(1).reshape(resolution, resolution).numpy()
        p = torch.as_tensor(point, dtype=torch.float32).reshape(1, 2).clamp(0, 1)
        label = int(model(p).argmax(1)[0])
        accuracy = float((model(data.x_test).argmax(1) == data.y_test).float().mean())
    y = torch.tensor([label])
    fgsm_end = A.fgsm(model, p, y, eps)
    first = C.layers(model)[0]
    lo, up = C.input_box(p, eps)
    z_lo, z_up = C._affine_interval(lo, up, first.weight.detach(), first.bias.detach())
    straddle = ((z_lo < 0) & (z_up > 0))[0]
    lines = torch.cat([first.weight.detach(), first.bias.detach()[:, None]], 1)[straddle].numpy()
    with torch.no_grad():
        ibp = float(C.margin_lower_bounds(model, p, y, eps, "ibp").min())
        crown = float(C.margin_lower_bounds(model, p, y, eps, "crown").min())
    return ToyPicture((x0, x1, y0, y1), classes, data.x_train.numpy(), data.y_train.numpy(), p[0].numpy(), label,
                      eps, torch.cat([p, fgsm_end]).numpy(), _pgd_path(model, p, y, eps, pgd_steps).numpy(),
                      _deepfool_path(model, p).numpy(), lines, ibp, crown, accuracy)
