"""Layer densities: Erdős–Rényi–Kernel (RigL) and uniform; checks of a requested density. Numpy only."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


class PruningError(ValueError):
    """A pruning request was refused; the message names the problem."""


def check_density(density, name: str = "density") -> float:
    """``density`` as a float in (0, 1], or PruningError saying why not (0, negative, > 1, NaN)."""
    try:
        d = float(density)
    except (TypeError, ValueError):
        raise PruningError(f"{name} must be a number in (0, 1], got {density!r}") from None
    if not math.isfinite(d):
        raise PruningError(f"{name} must be a finite number in (0, 1], got {d}")
    if d <= 0.0:
        raise PruningError(f"{name} {d:g} keeps no weight: it must be above 0 (and at most 1)")
    if d > 1.0:
        raise PruningError(f"{name} {d:g} is above 1: a layer cannot keep more weights than it has")
    return d


def erk_densities(shapes: Sequence[Sequence[int]], density: float, *, power: float = 1.0) -> np.ndarray:
    """Erdős–Rényi–Kernel layer densities with ``density`` of all the weights kept overall.

    A layer of shape (n_1, …, n_k) gets density ε (Σ n_i / Π n_i)^power, one ε for all layers, so
    that the non-zeros total ``density · Σ_l Π n_i``. A layer whose density would exceed 1 is made
    dense and ε is re-solved over the others, the largest first, as RigL's code does (Evci et al. 2020,
    arXiv 1911.11134, §3 and ``sparse_utils.get_mask_random``).

    Parameters
    ----------
    shapes : the weight shapes, e.g. ``[(128, 64), (128, 128), (10, 128)]`` (order within a shape is free).
    density : the overall fraction of weights kept, in (0, 1].

    Returns
    -------
    numpy array of per-layer densities in (0, 1].
    """
    d = check_density(density)
    sizes = np.array([float(np.prod(s)) for s in shapes])
    if sizes.size == 0 or (sizes <= 0).any():
        raise PruningError("erk_densities needs at least one layer, each with at least one weight")
    raw = np.array([float(sum(s)) for s in shapes]) / sizes
    raw = raw ** power
    dense = np.zeros(sizes.size, bool)
    target = d * sizes.sum()
    while True:
        free = ~dense
        if not free.any():
            return np.ones(sizes.size)
        eps = (target - sizes[dense].sum()) / (raw[free] * sizes[free]).sum()
        out = np.where(dense, 1.0, eps * raw)
        if out[free].max() <= 1.0:
            return out
        dense[np.flatnonzero(free)[np.argmax(raw[free])]] = True


def uniform_densities(shapes: Sequence[Sequence[int]], density: float) -> np.ndarray:
    """The same density in every layer."""
    return np.full(len(shapes), check_density(density))
