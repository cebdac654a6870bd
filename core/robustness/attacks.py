"""Adversarial attacks: FGSM, PGD (L∞ and L2), DeepFool and spatial grid search.

Every attack puts the model in eval mode for its duration (and restores the mode after), computes the
gradient with respect to the input only (the parameters' ``.grad`` is never touched), works under an
outer ``torch.no_grad`` (gradients are re-enabled inside), and returns inputs clamped to the data range
[0, 1]. Inputs are float ``(n, d)`` batches with pixels in [0, 1]; labels are int64 ``(n,)``.

References
----------
- I. Goodfellow, J. Shlens, C. Szegedy, "Explaining and harnessing adversarial examples", ICLR 2015,
  arXiv:1412.6572 (FGSM).
- A. Madry, A. Makelov, L. Schmidt, D. Tsipras, A. Vladu, "Towards deep learning models resistant to
  adversarial attacks", ICLR 2018, arXiv:1706.06083 (PGD, random start, restarts).
- S.-M. Moosavi-Dezfooli, A. Fawzi, P. Frossard, "DeepFool: a simple and accurate method to fool deep
  neural networks", CVPR 2016, arXiv:1511.04599 (Algorithm 2).
- L. Engstrom, B. Tran, D. Tsipras, L. Schmidt, A. Madry, "Exploring the landscape of spatial
  robustness", ICML 2019, arXiv:1712.02779 (rotation / translation grid search).
- H. Kim, "Torchattacks: a PyTorch repository for adversarial attacks", arXiv:2010.01950 (the
  reference definitions our tests transcribe).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

CHUNK = 4096          # examples per forward/backward: bounds memory on large inputs
NORMS = ("inf", "2")


class RobustnessError(ValueError):
    """Bad input to an attack or certificate (an ε out of range, a model without gradients, …)."""


# -- checks ---------------------------------------------------------------------------------------

def check_eps(eps, norm: str = "inf", dim: int | None = None, name: str = "ε") -> float:
    """``eps`` as a float, or RobustnessError naming the problem.

    The data range is [0, 1] per pixel, so an L∞ radius beyond 1 (or an L2 radius beyond √d, the
    diameter of the unit cube) only repeats the whole cube: refused as a likely unit mistake.
    """
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise RobustnessError(f"{name} must be a number, got {eps!r}") from None
    if math.isnan(value):
        raise RobustnessError(f"{name} is NaN; choose a radius in [0, 1]")
    if value < 0:
        raise RobustnessError(f"{name} = {value:g} is negative; a perturbation radius is ≥ 0")
    hi = 1.0 if norm == "inf" or dim is None else math.sqrt(dim)
    if value > hi:
        kind = "pixel range [0, 1]" if norm == "inf" else f"diameter √d = {hi:.3g} of the unit cube"
        raise RobustnessError(f"{name} = {value:g} is beyond the data range ({kind}): inputs are scaled "
                              "to [0, 1] (digits' 0–16 pixels are divided by 16), so pick ε in that scale")
    return value


def check_inputs(x: torch.Tensor, y: torch.Tensor | None = None) -> None:
    """Refuse inputs outside [0, 1] or non-finite, and labels that do not match them."""
    if not torch.is_tensor(x) or x.dim() != 2:
        raise RobustnessError(f"inputs must be a (n, d) tensor, got {getattr(x, 'shape', type(x).__name__)}")
    if x.numel() and not torch.isfinite(x).all():
        raise RobustnessError("inputs contain NaN or inf")
    if x.numel() and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
        raise RobustnessError(f"inputs lie in [{float(x.min()):.3g}, {float(x.max()):.3g}], not in the data "
                              "range [0, 1]: scale them first (digits' pixels are 0–16: divide by 16)")
    if y is not None and (y.dim() != 1 or y.shape[0] != x.shape[0]):
        raise RobustnessError(f"labels of shape {tuple(y.shape)} do not match {x.shape[0]} inputs")


def _check_norm(norm: str) -> str:
    norm = str(norm)
    if norm not in NORMS:
        raise RobustnessError(f"norm {norm!r} is not one of 'inf', '2'")
    return norm


@contextmanager
def evaluating(model: torch.nn.Module):
    """``model`` in eval mode with gradients enabled, its previous mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            yield model
    finally:
        model.train(was_training)


def device_of(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _forward(model, x: torch.Tensor) -> torch.Tensor:
    try:
        return model(x)
    except RuntimeError as err:
        raise RobustnessError(f"the model failed on a batch that needs gradients: {str(err).splitlines()[0]}"
                              ) from err


def input_gradient(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇ₓ of the summed cross-entropy, one row per example (summed, so no 1/n: signs and directions
    are those of each example's own loss). Raises RobustnessError when the model has no gradient."""
    x = x.detach().clone().requires_grad_(True)
    logits = _forward(model, x)
    if not logits.requires_grad:
        raise RobustnessError("the model's output has no gradient with respect to its input (is its forward "
                              "run under torch.no_grad, detached, or not torch at all?): gradient attacks "
                              "need one")
    loss = F.cross_entropy(logits, y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    if not torch.isfinite(grad).all():
        raise RobustnessError("the loss gradient is NaN or inf for some inputs")
    return grad


def _prepare(model, x, y):
    dev = device_of(model)
    x = torch.as_tensor(x).to(dev, torch.float32)
    check_inputs(x, None if y is None else torch.as_tensor(y))
    if y is not None:
        y = torch.as_tensor(y).to(dev, torch.long)
    return x, y


# -- FGSM and PGD ---------------------------------------------------------------------------------

def fgsm(model, x, y, eps) -> torch.Tensor:
    """Fast gradient sign method: ``clamp(x + ε sign ∇ₓ L(x, y), 0, 1)`` (Goodfellow et al. 2015, eq. 3).

    Parameters
    ----------
    model : torch.nn.Module mapping (n, d) inputs to (n, classes) logits.
    x : (n, d) inputs in [0, 1].   y : (n,) labels.   eps : L∞ radius in [0, 1].
    """
    eps = check_eps(eps)
    x, y = _prepare(model, x, y)
    out = torch.empty_like(x)
    with evaluating(model):
        for s in range(0, len(x), CHUNK):
            xs, ys = x[s:s + CHUNK], y[s:s + CHUNK]
            out[s:s + CHUNK] = (xs + eps * input_gradient(model, xs, ys).sign()).clamp(0.0, 1.0)
    return out


def _l2_rows(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))


def _random_start(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator) -> torch.Tensor:
    """A uniform point of the L∞ box, or a random direction at a uniform fraction of the L2 radius
    (torchattacks' PGD / PGDL2 random start), clamped to [0, 1]."""
    if norm == "inf":
        delta = (torch.rand(x.shape, generator=generator, device=x.device) * 2 - 1) * eps
    else:
        delta = torch.randn(x.shape, generator=generator, device=x.device)
        r = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), generator=generator, device=x.device)
        delta = delta * r / _l2_rows(delta).clamp_min(1e-12) * eps
    return (x + delta).clamp(0.0, 1.0)


def _pgd_run(model, x, y, eps, alpha, steps, norm, start) -> torch.Tensor:
    adv = start
    for _ in range(steps):
        grad = input_gradient(model, adv, y)
        if norm == "inf":
            adv = adv + alpha * grad.sign()
            adv = (x + (adv - x).clamp(-eps, eps)).clamp(0.0, 1.0)
        else:
            adv = adv + alpha * grad / (_l2_rows(grad) + 1e-10)
            delta = adv - x
            delta = delta * torch.clamp(eps / _l2_rows(delta).clamp_min(1e-12), max=1.0)
            adv = (x + delta).clamp(0.0, 1.0)
    return adv.detach()


def pgd(model, x, y, eps, alpha=None, steps: int = 20, norm: str = "inf", random_start: bool = True,
        seed: int = 0, restarts: int = 1) -> torch.Tensor:
    """Projected gradient descent on the loss (Madry et al. 2018, eq. 2.1): steps of size α along
    sign ∇ₓL (L∞) or ∇ₓL/‖∇ₓL‖₂ (L2), each followed by projection onto the ε-ball around x and
    clamping to [0, 1].

    Parameters
    ----------
    alpha : step size; default 2.5 ε / steps (Madry et al.'s rule: the walk can cross the ball).
    norm : "inf" or "2".
    random_start : start from a random point of the ball (uniform in the box; for L2 torchattacks'
        random direction at a uniform fraction of ε), drawn from ``seed``.
    restarts : independent random starts; an example keeps the first restart's point that fools the
        model (else the last restart's). Restart k always uses the same draw, whatever ``restarts`` is,
        so more restarts can only fool more examples.
    """
    norm = _check_norm(norm)
    x, y = _prepare(model, x, y)
    eps = check_eps(eps, norm, x.shape[1])
    steps = int(steps)
    if steps < 1:
        raise RobustnessError(f"PGD needs at least one step, got {steps}")
    alpha = 2.5 * eps / steps if alpha is None else float(alpha)
    if not math.isfinite(alpha) or alpha < 0:
        raise RobustnessError(f"step size α = {alpha} must be a finite number ≥ 0")
    restarts = max(1, int(restarts)) if random_start else 1
    out = x.clone()
    with evaluating(model):
        for s in range(0, len(x), CHUNK):
            xs, ys = x[s:s + CHUNK], y[s:s + CHUNK]
            best, fooled = None, None
            for r in range(restarts):
                if random_start:
                    g = torch.Generator(device=xs.device)
                    g.manual_seed(int(seed) * 1_000_003 + r * 7919 + s)
                    start = _random_start(xs, eps, norm, g)
                else:
                    start = xs.clone()
                adv = _pgd_run(model, xs, ys, eps, alpha, steps, norm, start)
                with torch.no_grad():
                    wrong = model(adv).argmax(1) != ys
                if best is None:
                    best, fooled = adv, wrong
                else:
                    take = wrong & ~fooled
                    best = torch.where(take[:, None], adv, best)
                    fooled = fooled | wrong
                if bool(fooled.all()):
                    break
            out[s:s + CHUNK] = best
    return out


# -- DeepFool -------------------------------------------------------------------------------------

class DeepFoolResult(NamedTuple):
    """``adversarial`` first (so ``x_adv, *_ = deepfool(...)`` reads naturally), then the extras."""

    adversarial: torch.Tensor     # (n, d) x + (1 + overshoot) r_tot, clamped to [0, 1]
    distance: torch.Tensor        # (n,) ‖x_adv − x‖₂
    steps: torch.Tensor           # (n,) iterations taken
    fooled: torch.Tensor          # (n,) bool: the prediction at x_adv differs from the one at x


def _all_logit_gradients(model, xa: torch.Tensor):
    """Logits (m, K) and their input gradients (m, K, d) in one vmapped backward pass."""
    xa = xa.detach().clone().requires_grad_(True)
    f = _forward(model, xa)
    if not f.requires_grad:
        raise RobustnessError("the model's output has no gradient with respect to its input: DeepFool "
                              "needs one")
    k = f.shape[1]
    eye = torch.eye(k, device=f.device, dtype=f.dtype)[:, None, :].expand(k, *f.shape)
    (grads,) = torch.autograd.grad(f, xa, grad_outputs=eye, is_grads_batched=True)
    return f.detach(), grads.transpose(0, 1)


def deepfool(model, x, steps: int = 50, overshoot: float = 0.02) -> DeepFoolResult:
    """DeepFool (Moosavi-Dezfooli et al. 2016, Algorithm 2), batched over the whole batch.

    At each iteration every example not yet fooled takes the minimal step to the nearest linearised
    boundary, ``r = |f'_l| w'_l / ‖w'_l‖²`` with ``l = argmin_{k ≠ k̂} |f'_k| / ‖w'_k‖``, where
    ``f'_k = f_k − f_k̂`` and ``w'_k = ∇f_k − ∇f_k̂``, and moves to ``clamp(x_i + (1 + overshoot) r, 0, 1)``
    (torchattacks' update). A pixel already at 0 or 1 cannot move further out, so the components of
    ``w'`` that push it there are dropped before the step is solved: the linearised step then lands
    on the boundary inside the data range instead of being clamped short of it (without this, most
    digits' black background eats the step and DeepFool stalls). For an affine binary classifier and
    an interior x one step lands exactly at ``x − f(x) w/‖w‖² · (1 + overshoot)``.
    """
    x, _ = _prepare(model, x, None)
    steps = int(steps)
    if steps < 1:
        raise RobustnessError(f"DeepFool needs at least one step, got {steps}")
    overshoot = float(overshoot)
    if not math.isfinite(overshoot) or overshoot < 0:
        raise RobustnessError(f"overshoot {overshoot} must be a finite number ≥ 0")
    n = len(x)
    adv = x.clone()
    taken = torch.zeros(n, dtype=torch.long, device=x.device)
    part_size = max(1, CHUNK // 8)
    with evaluating(model):
        with torch.no_grad():
            k0 = _predict(model, x)
        active = torch.ones(n, dtype=torch.bool, device=x.device)
        for _ in range(steps):
            idx = active.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            for s in range(0, idx.numel(), part_size):
                part = idx[s:s + part_size]
                xa = adv[part]
                f, grads = _all_logit_gradients(model, xa)
                own = k0[part]
                still = f.argmax(1) == own
                rows = torch.arange(len(part), device=x.device)
                f_rel = f - f[rows, own][:, None]
                w_rel = grads - grads[rows, own][:, None, :]
                blocked = ((xa <= 0)[:, None, :] & (w_rel < 0)) | ((xa >= 1)[:, None, :] & (w_rel > 0))
                w_rel = w_rel.masked_fill(blocked, 0.0)
                w_norm = w_rel.norm(dim=2)
                ratio = f_rel.abs() / w_norm.clamp_min(1e-12)
                ratio[rows, own] = math.inf
                nearest = ratio.argmin(1)
                w_l = w_rel[rows, nearest]
                r = (f_rel[rows, nearest].abs() / w_norm[rows, nearest].clamp_min(1e-12) ** 2)[:, None] * w_l
                move = part[still]
                adv[move] = (xa[still] + (1 + overshoot) * r[still]).clamp(0.0, 1.0)
                taken[move] += 1
                active[part[~still]] = False
        with torch.no_grad():
            final = _predict(model, adv)
    return DeepFoolResult(adv, (adv - x).norm(dim=1), taken, final != k0)


def _predict(model, x: torch.Tensor) -> torch.Tensor:
    if not len(x):
        return torch.zeros(0, dtype=torch.long, device=x.device)
    return torch.cat([model(x[s:s + CHUNK]).argmax(1) for s in range(0, len(x), CHUNK)])


# -- spatial --------------------------------------------------------------------------------------

def _image_shape(d: int, image_shape) -> tuple[int, int]:
    if image_shape is not None:
        h, w = (int(v) for v in image_shape)
    else:
        h = w = int(round(math.sqrt(d)))
    if h * w != d:
        raise RobustnessError(f"{d} inputs are not an image of shape {h}×{w}: pass image_shape")
    return h, w


def affine_thetas(angles, dx, dy, shape: tuple[int, int]) -> torch.Tensor:
    """(T, 2, 3) sampling matrices for affine_grid: content rotated by θ degrees counter-clockwise (as
    displayed, row 0 on top) about the image centre, then moved dx pixels right and dy pixels down."""
    h, w = shape
    a = torch.as_tensor(np.deg2rad(np.asarray(angles, np.float64)))
    c, s = torch.cos(a), torch.sin(a)
    tx = torch.as_tensor(np.asarray(dx, np.float64)) * 2.0 / w
    ty = torch.as_tensor(np.asarray(dy, np.float64)) * 2.0 / h
    # content p = R q + t with R = [[c, s], [−s, c]] in (x right, y down); sampling q = Rᵀ (p − t)
    theta = torch.stack([torch.stack([c, -s, -(c * tx - s * ty)], -1),
                         torch.stack([s, c, -(s * tx + c * ty)], -1)], -2)
    return theta.to(torch.float32)


def transform_matrices(thetas: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(T, d, d) matrices M with M @ image = grid_sample(image, affine_grid(θ)) (bilinear, zero padding,
    align_corners=False): grid_sample is linear in the image, so its columns are the transformed basis."""
    h, w = shape
    d = h * w
    basis = torch.eye(d, dtype=thetas.dtype, device=thetas.device).view(d, 1, h, w)
    t = thetas.shape[0]
    grid = F.affine_grid(thetas, (t, 1, h, w), align_corners=False)             # (T, h, w, 2)
    moved = F.grid_sample(basis.repeat(t, 1, 1, 1), grid.repeat_interleave(d, 0), mode="bilinear",
                          padding_mode="zeros", align_corners=False)             # (T·d, 1, h, w)
    return moved.view(t, d, d).transpose(1, 2)


def transform_images(x: torch.Tensor, angle: float, dx: float, dy: float, image_shape=None) -> torch.Tensor:
    """``x`` (n, d) rotated by ``angle`` degrees and shifted by (dx, dy) pixels (see affine_thetas)."""
    shape = _image_shape(x.shape[1], image_shape)
    m = transform_matrices(affine_thetas([angle], [dx], [dy], shape).to(x.device), shape)[0]
    return x @ m.T


class SpatialResult(NamedTuple):
    angles: np.ndarray        # (A,) degrees
    shifts: np.ndarray        # (S,) pixels
    accuracy: np.ndarray      # (A, S, S) accuracy at [angle, dy, dx]
    worst_accuracy: float     # fraction of examples correct under every transform of the grid
    worst_cell: tuple         # (angle, dx, dy) of the grid point with the lowest accuracy


def spatial(model, x, y, angles, shifts, image_shape=None) -> SpatialResult:
    """Grid search over rotations × translations (Engstrom et al. 2019): the accuracy at every grid
    point, and the worst-case accuracy (an example counts only if no grid point fools it)."""
    x, y = _prepare(model, x, y)
    angles = np.asarray(angles, np.float64).ravel()
    shifts = np.asarray(shifts, np.float64).ravel()
    if not (np.isfinite(angles).all() and np.isfinite(shifts).all()) or not angles.size or not shifts.size:
        raise RobustnessError("angles and shifts must be non-empty lists of finite numbers")
    shape = _image_shape(x.shape[1], image_shape)
    aa, yy, xx = np.meshgrid(angles, shifts, shifts, indexing="ij")
    thetas = affine_thetas(aa.ravel(), xx.ravel(), yy.ravel(), shape).to(x.device)
    correct_all = torch.ones(len(x), dtype=torch.bool, device=x.device)
    accuracy = np.empty(thetas.shape[0])
    per_chunk = max(1, 65536 // max(1, len(x)))
    model_was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for s in range(0, thetas.shape[0], per_chunk):
                mats = transform_matrices(thetas[s:s + per_chunk], shape)       # (t, d, d)
                moved = torch.einsum("tij,nj->tni", mats, x)                     # (t, n, d)
                pred = model(moved.reshape(-1, x.shape[1])).argmax(1).view(mats.shape[0], len(x))
                correct = pred == y
                accuracy[s:s + mats.shape[0]] = correct.float().mean(1).cpu().numpy()
                correct_all &= correct.all(0)
    finally:
        model.train(model_was)
    accuracy = accuracy.reshape(aa.shape)
    worst = np.unravel_index(int(np.argmin(accuracy)), accuracy.shape)
    return SpatialResult(angles, shifts, accuracy, float(correct_all.float().mean()) if len(x) else math.nan,
                         (float(angles[worst[0]]), float(shifts[worst[2]]), float(shifts[worst[1]])))
