"""Networks as weights ((W, b) pairs) and as torch modules: random ReLU nets, conversion both ways."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

Weights = tuple[tuple[np.ndarray, np.ndarray], ...]


def random_relu_net(in_dim: int, width: int, depth: int, sigma_w: float, sigma_b: float,
                    seed: int | Sequence[int] = 0, out_dim: int = 1) -> Weights:
    """Weights of a random ReLU MLP: ``depth`` hidden layers of ``width``, then a linear read-out.

    W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²) in every layer (THEORY.md notation). Returned as numpy
    float64 weights so the region map and piece counts need no torch; :func:`as_module` makes a
    torch net of them.
    """
    if min(in_dim, width, out_dim) < 1 or depth < 0:
        raise ValueError("in_dim, width and out_dim must be ≥ 1 and depth ≥ 0")
    sizes = [in_dim] + [width] * depth + [out_dim]
    return _random_weights(sizes, sigma_w, sigma_b, np.random.default_rng(seed))


def _random_weights(sizes: Sequence[int], sigma_w: float, sigma_b: float,
                    rng: np.random.Generator) -> Weights:
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        W = rng.normal(0.0, sigma_w / math.sqrt(fan_in), size=(fan_out, fan_in))
        b = rng.normal(0.0, sigma_b, size=fan_out) if sigma_b > 0 else np.zeros(fan_out)
        layers.append((W, b))
    return tuple(layers)


def as_module(weights: Weights, dtype: str = "float64", device: Any = "cpu"):
    """Torch ``nn.Sequential(Linear, ReLU, …, Linear)`` holding ``weights`` (ReLU between pairs)."""
    import torch
    from torch import nn

    tdtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    mods: list[nn.Module] = []
    for i, (W, b) in enumerate(weights):
        W = np.asarray(W, np.float64)
        lin = nn.Linear(W.shape[1], W.shape[0], dtype=tdtype, device=device)
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(W, dtype=tdtype))
            lin.bias.copy_(torch.as_tensor(np.asarray(b, np.float64), dtype=tdtype))
        mods.append(lin)
        if i < len(weights) - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def weights_of(model) -> Weights:
    """Float64 numpy weights of an ``nn.Sequential`` of Linear/ReLU that alternates as :func:`as_module`'s.

    Raises
    ------
    ValueError
        If the stack is not Linear, ReLU, Linear, …, Linear.
    """
    ops = _ops(model)
    pairs, expect_linear = [], True
    for op in ops:
        if expect_linear != (op != "relu"):
            raise ValueError("model is not an alternating Linear/ReLU stack ending in Linear")
        if op != "relu":
            pairs.append(op)
        expect_linear = not expect_linear
    if expect_linear:
        raise ValueError("model must end with a Linear layer")
    return tuple(pairs)


def _ops(model) -> list:
    """The model as a list of ops: ``(W, b)`` float64 pairs and the string ``"relu"``."""
    if isinstance(model, list | tuple):
        ops: list = []
        for i, (W, b) in enumerate(model):
            W = np.asarray(W, np.float64)
            ops.append((W, np.broadcast_to(np.asarray(b, np.float64), (W.shape[0],))))
            if i < len(model) - 1:
                ops.append("relu")
        return ops
    import torch
    from torch import nn

    out: list = []

    def walk(mod: nn.Module) -> None:
        if isinstance(mod, nn.Sequential):
            for child in mod:
                walk(child)
        elif isinstance(mod, nn.Linear):
            W = mod.weight.detach().to("cpu", torch.float64).numpy()
            b = (np.zeros(W.shape[0]) if mod.bias is None
                 else mod.bias.detach().to("cpu", torch.float64).numpy())
            out.append((W, b))
        elif isinstance(mod, nn.ReLU):
            out.append("relu")
        elif not isinstance(mod, nn.Identity):
            raise TypeError(f"only Linear/ReLU stacks are supported, got {type(mod).__name__}")

    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch nn.Sequential or a sequence of (W, b), got {type(model).__name__}")
    walk(model)
    return out


def _in_out_dims(ops: list) -> tuple[int, int]:
    linear = [op for op in ops if op != "relu"]
    if not linear:
        raise ValueError("the network has no Linear layer")
    return linear[0][0].shape[1], linear[-1][0].shape[0]
