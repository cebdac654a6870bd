"""Mode connectivity: a quadratic Bézier curve between two solutions, trained so the loss stays low along it.

θ(t) = (1 − t)² w_a + 2t(1 − t) θ + t² w_b, t ∈ [0, 1]; the bend θ is trained with t drawn uniformly at
every step (Garipov, Izmailov, Podoprikhin, Vetrov, Wilson, "Loss surfaces, mode connectivity, and fast
ensembling of DNNs", NeurIPS 2018, §3.2, arXiv:1802.10026). Along the curve θ(t) = w_a + c₁(t)(θ − w_a)
+ c₂(t)(w_b − w_a) with c₁ = 2t(1 − t), c₂ = t², so the curve is evaluated by the same batched evaluator
as the surfaces.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import functional_call

from core import device as devices
from core.landscape.directions import difference, parameters_of
from core.landscape.surfaces import data_arrays, evaluate, mean_loss

CURVE_POINTS = 61   # Garipov et al. evaluate 61 points along the curve


@dataclass(frozen=True)
class BezierFrame:
    step: int
    steps: int
    loss: float          # the training loss at this step's random t (a running mean)


@dataclass(frozen=True)
class Connection:
    """Losses (and accuracies) along the straight line and along the trained curve at the same t."""

    t: np.ndarray
    line_loss: np.ndarray
    curve_loss: np.ndarray
    line_accuracy: np.ndarray | None
    curve_accuracy: np.ndarray | None
    bend: list                      # θ, shaped like the parameters


def bezier_coefficients(t) -> np.ndarray:
    """(c₁, c₂) = (2t(1 − t), t²) per t: θ(t) = w_a + c₁ (θ − w_a) + c₂ (w_b − w_a)."""
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    return np.stack([2 * t * (1 - t), t * t], axis=1)


def train_bezier(model_a, model_b, data, *, steps: int = 400, lr: float = 1e-2, batch_size: int = 256,
                 seed: int = 0, every: int = 20, device=None) -> Iterator[BezierFrame | list]:
    """Train the bend θ of the Bézier curve from w_a to w_b (Garipov et al. 2018), starting at the midpoint.

    Adam on θ with mini-batches of the training set and one t ~ U(0, 1) per step. Yields a
    :class:`BezierFrame` every ``every`` steps, and the trained θ (a list of tensors) last. Closing the
    generator stops it within a step.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError("steps and batch size must be at least 1")
    dev = devices.resolve(device)
    work = copy.deepcopy(model_a).to(dev).eval()
    names = [n for n, _ in work.named_parameters()]
    w_a = [p.to(dev) for p in parameters_of(model_a)]
    w_b = [p.to(dev) for p in parameters_of(model_b)]
    if [p.shape for p in w_a] != [p.shape for p in w_b]:
        raise ValueError("the two solutions do not have the same parameter shapes")
    bend = [(0.5 * (a + b)).clone().requires_grad_(True) for a, b in zip(w_a, w_b, strict=True)]
    x, y = data_arrays(data, "train")
    x, y = x.to(dev), y.to(dev)
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(bend, lr=lr)
    window = []
    for step in range(1, steps + 1):
        t = float(torch.rand((), generator=gen))
        idx = torch.randint(0, x.shape[0], (min(batch_size, x.shape[0]),), generator=gen).to(dev)
        params = {n: (1 - t) ** 2 * a + 2 * t * (1 - t) * th + t * t * b
                  for n, a, th, b in zip(names, w_a, bend, w_b, strict=True)}
        loss = mean_loss(functional_call(work, params, (x[idx],)), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        window.append(float(loss.detach()))
        if step % every == 0 or step == steps:
            yield BezierFrame(step, steps, float(np.mean(window)))
            window.clear()
    yield [p.detach() for p in bend]


def connect(model_a, model_b, data, bend, t=None, *, split: str = "train", device=None) -> Connection:
    """Loss along the straight line (1 − t) w_a + t w_b and along the Bézier curve with bend θ, batched."""
    t = np.linspace(0.0, 1.0, CURVE_POINTS) if t is None else np.asarray(t, dtype=np.float64)
    line = evaluate(model_a, data, [difference(model_b, model_a)], t[:, None], split=split, device=device)
    w_a = parameters_of(model_a)
    to_bend = [b.to(a.device, a.dtype) - a for a, b in zip(w_a, bend, strict=True)]
    curve = evaluate(model_a, data, [to_bend, difference(model_b, model_a)], bezier_coefficients(t), split=split,
                     device=device)
    return Connection(t, line.loss, curve.loss, line.accuracy, curve.accuracy, bend)
