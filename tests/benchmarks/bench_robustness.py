"""Robustness benchmarks (issue 11), CPU, on the digits test set (450 images), each against the naive way
measured in the same run, and the accuracies the panel shows, averaged over seeds.

Targets: ε slider → adversarial digit + FGSM and IBP-certified accuracy over the test set ≤ 50 ms;
PGD-20 over the test set ≤ 0.5 s; batched DeepFool over the test set ≤ 1 s and ≥ 10× faster than an
image-by-image loop; a 31 × 7 × 7 spatial grid over the test set ≤ 2 s (baseline: one grid_sample per
transform). Accuracies: standard, PGD-trained (ε 0.2) and IBP-trained (ε 0.1) DIGITS_MLP, 10 epochs
of Adam (the IBP net 20, as the panel trains it), seeds 0–2: clean / FGSM / PGD-20 / certified (IBP,
linear bounds) at ε = 0.05 … 0.3.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from core import data, nets
from core import robustness as R
from core.robustness import experiments as X
from tests.benchmarks.harness import Row, median_seconds

SEEDS = (0, 1, 2)
EPS = (0.05, 0.1, 0.2, 0.3)
EPOCHS = 10
RECIPES = {"standard": X.Recipe("standard", 0.0, EPOCHS), "adversarial": X.Recipe("adversarial", 0.2, EPOCHS),
           "ibp": X.Recipe("ibp", 0.1, 2 * EPOCHS)}


def _net(digits, kind: str, seed: int):
    trained = None
    for item in X.train_net(digits, nets.DIGITS_MLP, RECIPES[kind], seed=seed, device="cpu"):
        trained = item
    return trained.model


def _slider_frame(model, x, y, eps: float) -> None:
    """What one ε-slider move computes: the chosen digit's FGSM image and probabilities, and FGSM and
    IBP-certified accuracy over the test set."""
    X.attack_one(model, x, y, 0, "fgsm", eps, 1.0, with_test_set=True)


def _spatial_naive(model, x, y, angles, shifts) -> None:
    shape = (8, 8)
    imgs = x.view(-1, 1, 8, 8)
    with torch.no_grad():
        for a in angles:
            for dy in shifts:
                for dx in shifts:
                    theta = R.affine_thetas([a], [dx], [dy], shape).expand(len(x), 2, 3)
                    grid = F.affine_grid(theta, imgs.shape, align_corners=False)
                    moved = F.grid_sample(imgs, grid, align_corners=False).view(len(x), -1)
                    (model(moved).argmax(1) == y).float().mean()


def run() -> list[Row]:
    digits = data.load("digits")
    x, y = digits.x_test, digits.y_test
    model = _net(digits, "standard", 0)
    rows = []

    t = median_seconds(lambda: _slider_frame(model, x, y, 0.1), repeat=9)
    rows.append(Row("ε slider: digit + FGSM and IBP accuracy (450 images)", 1e3 * t, "ms", "≤ 50 ms", 1e3 * t <= 50))

    t = median_seconds(lambda: R.pgd(model, x, y, 0.1, steps=20), repeat=5)
    rows.append(Row("PGD-20 over the test set", 1e3 * t, "ms", "≤ 500 ms", 1e3 * t <= 500))

    t = median_seconds(lambda: R.certified_accuracy(model, x, y, 0.02, "crown"), repeat=3)
    rows.append(Row("linear-bound (CROWN) certified accuracy, test set", 1e3 * t, "ms"))

    batched = median_seconds(lambda: R.deepfool(model, x), repeat=3)
    t0 = time.perf_counter()
    for i in range(len(x)):
        R.deepfool(model, x[i:i + 1])
    loop = time.perf_counter() - t0
    rows.append(Row("DeepFool, batched over the test set", 1e3 * batched, "ms", "≤ 1000 ms, ≥ 10× loop",
                    1e3 * batched <= 1000 and loop / batched >= 10, "image-by-image loop", 1e3 * loop))

    angles, shifts = np.linspace(-30, 30, 31), np.arange(-3, 4)
    t = median_seconds(lambda: R.spatial(model, x, y, angles, shifts), repeat=3)
    t0 = time.perf_counter()
    _spatial_naive(model, x, y, angles, shifts)
    naive = time.perf_counter() - t0
    rows.append(Row("spatial grid 31×7×7 over the test set", 1e3 * t, "ms", "≤ 2000 ms", 1e3 * t <= 2000,
                    "grid_sample per transform", 1e3 * naive))

    # accuracies, averaged over seeds
    table = {}
    for kind in RECIPES:
        curves = [X.accuracy_curve(_net(digits, kind, s), x, y, EPS, pgd_steps=20, seed=s) for s in SEEDS]
        table[kind] = curves
        clean = np.mean([c.clean for c in curves])
        rows.append(Row(f"{kind}: clean accuracy (mean of {len(SEEDS)} seeds)", 100 * clean, "%"))
        for i, eps in enumerate(EPS):
            f, p, ibp, crown = (np.mean([getattr(c, k)[i] for c in curves]) for k in ("fgsm", "pgd", "ibp", "crown"))
            sd = np.std([c.pgd[i] for c in curves])
            rows.append(Row(f"{kind} ε={eps:g}: FGSM / PGD-20 (±sd) / IBP / linear", 100 * p, "%",
                            f"FGSM {100 * f:.1f}, PGD ±{100 * sd:.1f}, IBP {100 * ibp:.1f}, lin {100 * crown:.1f}"))
    std_pgd = np.mean([c.pgd for c in table["standard"]], axis=0)
    adv_pgd = np.mean([c.pgd for c in table["adversarial"]], axis=0)
    below = [i for i, v in enumerate(std_pgd) if v < 0.10]
    if below:
        i = below[0]
        rows.append(Row(f"standard < 10 % under PGD at ε = {EPS[i]:g}; adversarial there", 100 * adv_pgd[i], "%",
                        "well above 10 %", adv_pgd[i] > 0.2))
    return rows
