"""The exact constructions: Telgarsky's sawtooth and Yarotsky's x² and products, as functions and as ReLU
networks (THEORY.md §1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.depth.networks import as_module

MAX_DEPTH = 50
"""Deepest sawtooth evaluated. f_L has 2^L pieces of width 2^−L; near x = 1 float64 numbers are 2^−53
apart, so at L = 50 a piece still spans 8 of them and beyond it a sample no longer resolves a tooth."""

MAX_M = 24
"""Largest Yarotsky m: the error 2^(−2m−2) = 2^−50 is then at the float64 rounding of x² itself."""


def _check_depth(depth: int, name: str = "depth", limit: int = MAX_DEPTH) -> int:
    if isinstance(depth, bool) or int(depth) != depth:
        raise ValueError(f"{name} must be a whole number, got {depth!r}")
    depth = int(depth)
    if depth < 0:
        raise ValueError(f"{name} must be ≥ 0, got {depth}")
    if depth > limit:
        raise ValueError(
            f"{name} = {depth} is beyond the float64 limit {limit}: f_L has 2^L pieces of width 2^−L, "
            f"and beyond L = {limit} a piece spans fewer than {2 ** (53 - limit)} float64 numbers near "
            "x = 1 (spacing 2^−53), too few to sample or draw it")
    return depth


def tent(x) -> np.ndarray:
    """The tent map t(x) = 2 relu(x) − 4 relu(x − ½): 2x on [0, ½], 2 − 2x on [½, 1] (THEORY.md §1)."""
    x = np.asarray(x, dtype=np.float64)
    return 2.0 * np.maximum(x, 0.0) - 4.0 * np.maximum(x - 0.5, 0.0)


def sawtooth(x, depth: int) -> np.ndarray:
    """Telgarsky's sawtooth f_L = t∘…∘t (L times), exact in float64.

    f_L has 2^(L−1) teeth and exactly 2^L affine pieces on [0, 1], with kinks at k/2^L and
    f_L(k/2^L) = k mod 2 (Telgarsky 2015, Thm 1.1 and its proof). Every step is exact in float64:
    2x is, and 2 − 2x is for x ∈ [½, 1] (Sterbenz), so f_L(x) is the exact value at the float x.

    Parameters
    ----------
    x : array_like
        Points (any real; outside [0, 1] the relu formula applies).
    depth : int
        L, 0 ≤ L ≤ MAX_DEPTH (f_0 is the identity).

    Raises
    ------
    ValueError
        For L > MAX_DEPTH, where a piece is narrower than float64 resolves.
    """
    depth = _check_depth(depth)
    y = np.asarray(x, dtype=np.float64)
    for _ in range(depth):
        y = tent(y)
    return y


def sawtooth_vertices(depth: int, lo: float = 0.0, hi: float = 1.0,
                      max_vertices: int = 1 << 20) -> tuple[np.ndarray, np.ndarray]:
    """The exact polyline of f_L on [lo, hi] ⊆ [0, 1]: its kinks k/2^L (value k mod 2) and the two ends.

    Plot this, not f_L on a uniform grid: a grid coarser than 2^−L aliases the teeth into a wrong picture.

    Raises
    ------
    ValueError
        If L > MAX_DEPTH, the window is not inside [0, 1], or it holds more than ``max_vertices`` kinks
        (zoom in, or lower L).
    """
    depth = _check_depth(depth)
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"window [{lo}, {hi}] must satisfy 0 ≤ lo < hi ≤ 1")
    scale = 2.0**depth
    k0, k1 = math.ceil(lo * scale), math.floor(hi * scale)
    if k1 - k0 + 1 > max_vertices:
        raise ValueError(f"f_{depth} has {k1 - k0 + 1} kinks in [{lo:g}, {hi:g}], more than {max_vertices} "
                         "can be drawn: zoom in or lower the depth")
    k = np.arange(k0, k1 + 1, dtype=np.int64)
    x = k / scale
    y = (k % 2).astype(np.float64)
    if x.size == 0 or x[0] > lo:
        x, y = np.concatenate([[lo], x]), np.concatenate([sawtooth(lo, depth).reshape(1), y])
    if x[-1] < hi:
        x, y = np.concatenate([x, [hi]]), np.concatenate([y, sawtooth(hi, depth).reshape(1)])
    return x, y


def sawtooth_weights(depth: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Weights of the width-2 depth-L ReLU net computing f_L exactly (6L + 1 parameters).

    Hidden unit pair of layer ℓ: (relu(f_{ℓ−1}), relu(f_{ℓ−1} − ½)); the next preactivation is
    t(f_{ℓ−1}) = 2·first − 4·second, so the tent's output map folds into the next layer's input map.
    """
    depth = _check_depth(depth)
    if depth < 1:
        raise ValueError("the sawtooth network needs depth ≥ 1")
    fold = np.array([[2.0, -4.0], [2.0, -4.0]])
    layers = [(np.array([[1.0], [1.0]]), np.array([0.0, -0.5]))]
    layers += [(fold.copy(), np.array([0.0, -0.5])) for _ in range(depth - 1)]
    layers.append((np.array([[2.0, -4.0]]), np.array([0.0])))
    return tuple(layers)


def sawtooth_network(depth: int, dtype: str = "float64", device: Any = "cpu"):
    """Telgarsky's sawtooth as a real torch ``nn.Sequential`` (Linear(1,2), ReLU, …, Linear(2,1)), float64.

    Computes f_L exactly on [0, 1] (the products and sums are exact in float64, as in :func:`sawtooth`).
    """
    return as_module(sawtooth_weights(depth), dtype=dtype, device=device)


def sawtooth_param_count(depth: int) -> int:
    """Parameters of the width-2 sawtooth net: 4 + 6(L − 1) + 3 = 6L + 1."""
    return 6 * int(depth) + 1


# ---------------------------------------------------------------------------------------------------------
# Yarotsky's x² and products


def _check_m(m: int) -> int:
    if isinstance(m, bool) or int(m) != m or not 0 <= int(m) <= MAX_M:
        raise ValueError(f"Yarotsky m must be a whole number in [0, {MAX_M}] (error 2^(−2m−2) reaches "
                         f"float64 rounding beyond), got {m!r}")
    return int(m)


def yarotsky_square(x, m: int) -> np.ndarray:
    """f_m(x) = x − Σ_{s=1..m} g_s(x)/4^s, g_s the s-fold tent (Yarotsky 2017, Prop. 2).

    f_m is the piecewise-linear interpolant of x² at the 2^m + 1 points k/2^m of [0, 1], and
    max_{[0,1]} |f_m − x²| = 2^(−2m−2), attained at the midpoints (k + ½)/2^m. Since x² is convex,
    f_m ≥ x² everywhere on [0, 1] (the error is one-sided).
    """
    m = _check_m(m)
    x = np.asarray(x, dtype=np.float64)
    g, out = x, x.copy()
    for s in range(1, m + 1):
        g = tent(g)
        out = out - g / 4.0**s
    return out


def yarotsky_error_bound(m: int) -> float:
    """max_{[0,1]} |f_m(x) − x²| = 2^(−2m−2) (Yarotsky 2017, Prop. 2)."""
    return 2.0 ** (-2 * _check_m(m) - 2)


def yarotsky_weights(m: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """A width-3, m-hidden-layer ReLU net computing f_m exactly on [0, 1].

    Layer s carries (relu(g_{s−1}), relu(g_{s−1} − ½), relu(f_{s−1})) with g_0 = f_0 = x. The third unit
    is a pass-through: f_{s−1} ≥ x² ≥ 0 on [0, 1], so its relu is the identity there; then
    g_s = 2·first − 4·second and f_s = f_{s−1} − g_s/4^s are linear in the layer's outputs.
    """
    m = _check_m(m)
    if m < 1:
        raise ValueError("the Yarotsky network needs m ≥ 1")

    def step(s: int) -> np.ndarray:
        return np.array([-2.0, 4.0, 0.0]) / 4.0**s + np.array([0.0, 0.0, 1.0])

    bias = np.array([0.0, -0.5, 0.0])
    layers = [(np.array([[1.0], [1.0], [1.0]]), bias.copy())]
    for s in range(1, m):
        tent_rows = np.array([[2.0, -4.0, 0.0], [2.0, -4.0, 0.0]])
        layers.append((np.vstack([tent_rows, step(s)]), bias.copy()))
    layers.append((step(m)[None, :], np.array([0.0])))
    return tuple(layers)


def yarotsky_network(m: int, dtype: str = "float64", device: Any = "cpu"):
    """:func:`yarotsky_weights` as a torch ``nn.Sequential`` (input x ∈ [0, 1])."""
    return as_module(yarotsky_weights(m), dtype=dtype, device=device)


def yarotsky_product(x, y, m: int) -> np.ndarray:
    """xy ≈ 2 f_m((x+y)/2) − ½ f_m(x) − ½ f_m(y), from xy = ½((x+y)² − x² − y²) (Yarotsky 2017, Prop. 3).

    On x, y ∈ [0, 1] (so (x+y)/2 ∈ [0, 1] too) the error lies in [−2^(−2m−2), 2^(−2m−1)]: each f_m − z²
    is in [0, 2^(−2m−2)] (one-sided, x² convex), weighted +2, −½, −½. The bound 2^(−2m−1) is attained
    at x = k/2^m, y = l/2^m with k + l odd, where (x+y)/2 is a midpoint of the grid and x, y are nodes.
    """
    x, y = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
    return 2.0 * yarotsky_square(0.5 * (x + y), m) - 0.5 * yarotsky_square(x, m) - 0.5 * yarotsky_square(y, m)


def product_error_bound(m: int) -> float:
    """max_{x,y ∈ [0,1]} |yarotsky_product(x, y, m) − xy| = 2^(−2m−1) (see :func:`yarotsky_product`)."""
    return 2.0 * yarotsky_error_bound(m)


def product_weights(m: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """A width-9, m-hidden-layer ReLU net (inputs x, y ∈ [0, 1]) computing :func:`yarotsky_product`.

    Three Yarotsky squarers side by side (block-diagonal) on u = (x+y)/2, x and y; the first layer
    reads (u, x, y) = A·(x, y) and the output combines them with (2, −½, −½).
    """
    blocks = yarotsky_weights(m)
    read = np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]])
    combine = np.array([[2.0, -0.5, -0.5]])
    layers = []
    for i, (W, b) in enumerate(blocks):
        Wb = _block_diag([W] * 3)
        if i == 0:
            Wb = Wb @ read
        if i == len(blocks) - 1:
            Wb, bb = combine @ Wb, combine @ np.tile(b, 3)
        else:
            bb = np.tile(b, 3)
        layers.append((Wb, bb))
    return tuple(layers)


def product_network(m: int, dtype: str = "float64", device: Any = "cpu"):
    """:func:`product_weights` as a torch ``nn.Sequential``: input (N, 2) in [0, 1]², output (N, 1)."""
    return as_module(product_weights(m), dtype=dtype, device=device)


def _block_diag(mats: Sequence[np.ndarray]) -> np.ndarray:
    rows, cols = sum(a.shape[0] for a in mats), sum(a.shape[1] for a in mats)
    out = np.zeros((rows, cols))
    r = c = 0
    for a in mats:
        out[r:r + a.shape[0], c:c + a.shape[1]] = a
        r, c = r + a.shape[0], c + a.shape[1]
    return out
