"""Depth & Sawtooth engine: why depth — Telgarsky's sawtooth, Yarotsky's x², linear regions, learnability.

Theory (THEORY.md §1) is numpy in float64 and never imports torch, so the theory plots cost nothing at
start-up. Real networks are torch ``nn.Sequential`` stacks of ``Linear``/``ReLU``; torch is imported
inside the functions that build or train them.

Conventions
-----------
A network given as *weights* is a sequence of ``(W, b)`` pairs, ``W`` of shape (out, in) as in
``torch.nn.Linear``, with a ReLU after every pair but the last. Every function that takes a model
accepts either such weights or a torch ``nn.Sequential`` of ``Linear``/``ReLU`` (``Identity`` and nested
``Sequential`` allowed).

Exact counting walks a segment: along a line the preactivation of every neuron is affine on each
current piece, so its sign change is one root; splitting every piece at every root, layer by layer,
gives the exact activation intervals (Hanin & Rolnick 2019; Serra et al. 2018). A sign change counts
only where the preactivation exceeds 1e−10 of its layer's largest value at both ends of a piece, and
roots closer than 1e−12 of the segment are one breakpoint, so the exact constructions (whose kinks
touch zero or coincide by design) are not split into slivers of rounding.

References
----------
- M. Telgarsky, "Representation benefits of deep feedforward networks", arXiv:1509.08101 (2015), Thm 1.1.
- D. Yarotsky, "Error bounds for approximations with deep ReLU networks", Neural Networks 94 (2017),
  arXiv:1610.01145: Prop. 2 (x²) and Prop. 3 (products).
- T. Serra, C. Tjandraatmadja, S. Ramalingam, "Bounding and counting linear regions of deep neural
  networks", ICML 2018.
- G. Montúfar, R. Pascanu, K. Cho, Y. Bengio, "On the number of linear regions of deep neural networks",
  NeurIPS 2014.
- B. Hanin, D. Rolnick, "Complexity of linear regions in deep networks", ICML 2019, and "Deep ReLU
  networks have surprisingly few activation patterns", NeurIPS 2019.
- M. Nye, A. Saxe, "Are efficient deep representations learnable?", ICLR 2018 workshop, arXiv:1807.06399.
  (Their experiments are parity with sigmoid nets and the FFT with linear nets; the sawtooth fits here
  transpose their Fig. 1 protocol — exact solution plus Gaussian noise, then train — to Telgarsky's net.)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.params import Params, param

MAX_DEPTH = 50
"""Deepest sawtooth evaluated. f_L has 2^L pieces of width 2^−L; near x = 1 float64 numbers are 2^−53
apart, so at L = 50 a piece still spans 8 of them and beyond it a sample no longer resolves a tooth."""

MAX_M = 24
"""Largest Yarotsky m: the error 2^(−2m−2) = 2^−50 is then at the float64 rounding of x² itself."""

FIT_MAX_DEPTH = 12
"""Deepest sawtooth the fitting experiments take as a target: 2^12 pieces need ≥ 2^15 training points."""

MAX_INTERVALS = 1 << 22
"""Segment-walk guard: more activation intervals than this is refused rather than exhausting memory."""

_ROOT_RTOL = 1e-10
_MERGE_TOL = 1e-12
_SLOPE_RTOL = 1e-9


# ---------------------------------------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True)
class DepthParams(Params):
    """Everything the Depth & Sawtooth panel lets the lecturer drag."""

    depth: int = param(4, "depth L", lo=1, hi=MAX_DEPTH, step=1,
                       help=f"Sawtooth depth. f_L has 2^L pieces of width 2^−L; beyond L = {MAX_DEPTH} a "
                            "piece is narrower than float64 can resolve, so deeper sawtooths are refused. "
                            f"The fitting experiments take L ≤ {FIT_MAX_DEPTH}.")
    m: int = param(3, "Yarotsky m", lo=1, hi=12, step=1,
                   help="Number of sawtooth terms in Yarotsky's x² (error 2^(−2m−2)).")
    width: int = param(16, "width", lo=1, hi=128, step=1,
                       help="Width of the random nets (region map, pieces).")
    region_depth: int = param(3, "region-map depth", lo=1, hi=12, step=1,
                              help="Hidden layers of the random net whose 2-D linear regions are drawn.")
    sigma_w: float = param(1.41, "σ_w", lo=0.05, hi=4.0, step=0.01, decimals=2,
                           help="Weight scale: W ~ N(0, σ_w²/fan_in).")
    sigma_b: float = param(0.1, "σ_b", lo=0.0, hi=2.0, step=0.01, decimals=2,
                           help="Bias scale: b ~ N(0, σ_b²).")
    seed: int = param(0, "seed", lo=0, hi=2**31 - 1, step=1)
    train_steps: int = param(2000, "training steps", lo=10, hi=50000, step=10)
    lr: float = param(1e-2, "learning rate", lo=1e-5, hi=1.0, scale="log", decimals=5)
    init: str = param("random", "init", choices=("random", "near_exact"),
                      help="Deep net's start: random (σ_w, σ_b) or the exact sawtooth weights plus noise.")


# ---------------------------------------------------------------------------------------------------------
# Telgarsky's sawtooth


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


# ---------------------------------------------------------------------------------------------------------
# Networks as weights, and torch modules


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


# ---------------------------------------------------------------------------------------------------------
# Exact segment walk: the activation intervals of a ReLU net along lines


_BLAS_ONE_THREAD = 250_000
"""OpenBLAS runs a product with m·n·k ≤ 65536·4 on the calling thread (interface/gemm.c); larger ones
wake its worker threads. On the 2-core development VM, with other work running, that made the small
products of these walks 5–25× slower than on one thread; :func:`_dot` keeps every product under the
threshold, which costs a few per cent at most and leaves the other core to the GUI's other workers."""


def _dot(x: np.ndarray, w: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """x @ w in row blocks that OpenBLAS computes on the calling thread (see ``_BLAS_ONE_THREAD``)."""
    if out is None:
        out = np.empty((x.shape[0], w.shape[1]), dtype=np.result_type(x, w))
    step = max(1, _BLAS_ONE_THREAD // max(1, w.shape[0] * w.shape[1]))
    for a in range(0, x.shape[0], step):
        np.matmul(x[a:a + step], w, out=out[a:a + step])
    return out


@dataclass(frozen=True)
class _Walk:
    """Activation intervals [t_lo, t_hi] of segment ``seg`` (t ∈ [0, 1]); the net's output there is
    ``slope·t + offset``."""

    seg: np.ndarray
    t_lo: np.ndarray
    t_hi: np.ndarray
    slope: np.ndarray
    offset: np.ndarray


def _walk_segments(ops: list, start: np.ndarray, direction: np.ndarray) -> _Walk:
    """The activation intervals and output maps of the segments start_k + t·direction_k, t ∈ [0, 1]."""
    *_, (_, final) = _walk_stages(ops, start, direction)
    return final


def _walk_stages(ops: list, start: np.ndarray, direction: np.ndarray) -> Iterator[tuple[bool, _Walk]]:
    """Walk segments through ``ops`` exactly, yielding (op is a relu, state) after every op.

    On each interval every quantity is affine in t, z = S t + I; ``A`` holds (S, I) stacked, shape
    (2, intervals, neurons). A relu splits intervals where a preactivation changes sign (see
    :func:`_split`), then masks S and I with the sign at each sub-interval's midpoint.
    """
    start = np.atleast_2d(np.asarray(start, np.float64))
    n_seg = start.shape[0]
    seg = np.arange(n_seg)
    t_lo, t_hi = np.zeros(n_seg), np.ones(n_seg)
    A = np.stack([np.broadcast_to(np.asarray(direction, np.float64), start.shape), start])
    if not ops:
        yield False, _Walk(seg, t_lo, t_hi, A[0], A[1])
    for op in ops:
        if op == "relu":
            parent, t_lo, t_hi = _split(seg, t_lo, t_hi, A)
            if parent is not None:
                seg, A = seg[parent], A[:, parent]
            on = A[0] * (0.5 * (t_lo + t_hi))[:, None]
            on += A[1]
            A *= on > 0.0
        else:
            W, b = op
            K = A.shape[1]
            A = _dot(A.reshape(2 * K, -1), np.ascontiguousarray(W.T)).reshape(2, K, -1)
            A[1] += b
        yield op == "relu", _Walk(seg, t_lo, t_hi, A[0], A[1])


def _split(seg: np.ndarray, t_lo: np.ndarray, t_hi: np.ndarray, A: np.ndarray
           ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Split every interval at the interior sign changes of its preactivations z = S t + I.

    z is continuous along a segment, so the value at an interval's right end is the next interval's
    left-end value; using that one number for both keeps neighbours consistent. A sign change counts
    only if z exceeds 1e−10 of the layer's largest |z| at both ends (so a kink of a construction that
    touches zero exactly at an existing breakpoint is not split again); its root is
    t = t_lo + (t_hi − t_lo)·z_lo/(z_lo − z_hi). Returns (parent of each new interval, or None when
    nothing split; new t_lo; new t_hi), intervals kept in order along each segment.
    """
    S, I = A[0], A[1]
    K = t_lo.size
    z_lo = S * t_lo[:, None]
    z_lo += I
    last = np.empty(K, dtype=bool)
    last[-1] = True
    np.not_equal(seg[1:], seg[:-1], out=last[:-1])
    z_hi = np.empty_like(z_lo)
    z_hi[:-1] = z_lo[1:]
    z_hi[last] = S[last] * t_hi[last, None] + I[last]
    r, j = np.nonzero(z_lo * z_hi < 0.0)
    if r.size == 0:
        return None, t_lo, t_hi
    tol = _ROOT_RTOL * max(z_lo.max(), -z_lo.min(), np.abs(z_hi[last]).max())
    zl, zh = z_lo[r, j], z_hi[r, j]
    real = (np.abs(zl) > tol) & (np.abs(zh) > tol)
    r, zl, zh = r[real], zl[real], zh[real]
    roots = t_lo[r] + (t_hi[r] - t_lo[r]) * (zl / (zl - zh))
    order = np.lexsort((roots, r))
    r, roots = r[order], roots[order]
    # coincident kinks (several neurons of a construction folding at one point) are one breakpoint
    new_interval = np.r_[True, r[1:] != r[:-1]] if r.size else np.zeros(0, bool)
    prev = np.where(new_interval, t_lo[r], np.r_[-np.inf, roots[:-1]])
    keep = (roots - prev > _MERGE_TOL) & (t_hi[r] - roots > _MERGE_TOL)
    r, roots = r[keep], roots[keep]
    if r.size == 0:
        return None, t_lo, t_hi
    n_roots = np.bincount(r, minlength=K)
    parent = np.repeat(np.arange(K), n_roots + 1)
    if parent.size > MAX_INTERVALS:
        raise ValueError(f"the network has more than {MAX_INTERVALS} linear pieces along the segment; "
                         "refusing to enumerate them")
    first_piece = np.cumsum(n_roots + 1) - (n_roots + 1)
    rank = np.arange(r.size) - (np.cumsum(n_roots) - n_roots)[r]
    pos = first_piece[r] + rank
    new_lo, new_hi = t_lo[parent], t_hi[parent]
    new_lo[pos + 1] = roots
    new_hi[pos] = roots
    return parent, new_lo, new_hi


# ---------------------------------------------------------------------------------------------------------
# Exact pieces of a scalar network on a segment


@dataclass(frozen=True)
class Pieces:
    """The maximal affine pieces of a scalar function on [lo, hi].

    ``breaks`` has one more entry than ``slopes``: piece j is [breaks[j], breaks[j+1]] where the
    function is ``slopes[j]·x + intercepts[j]``.
    """

    breaks: np.ndarray
    slopes: np.ndarray
    intercepts: np.ndarray

    @property
    def count(self) -> int:
        return int(self.slopes.size)


def linear_pieces(model, lo: float = 0.0, hi: float = 1.0) -> Pieces:
    """Exact affine pieces of a scalar-input scalar-output ReLU net on [lo, hi].

    Every neuron's breakpoints are collected layer by layer along the segment (see the module notes),
    not sampled. Adjacent activation intervals on which the output has the same slope (relative
    1e−9) are merged: the count is that of the *function's* pieces, the quantity Telgarsky's bound
    and the k + 1 bound for one hidden layer speak of. (A neuron can switch without changing the
    output, e.g. one whose outgoing weights are all zero; it makes no new piece.)

    Parameters
    ----------
    model : torch nn.Sequential of Linear/ReLU, or weights ((W, b), …)
    lo, hi : float
        The segment, lo < hi.
    """
    if not hi > lo:
        raise ValueError(f"need lo < hi, got [{lo}, {hi}]")
    ops = _ops(model)
    n_in, n_out = _in_out_dims(ops)
    if n_in != 1 or n_out != 1:
        raise ValueError(f"linear pieces need a scalar network (1 input, 1 output), got {n_in} → {n_out}")
    span = hi - lo
    walk = _walk_segments(ops, np.array([[lo]]), np.array([[span]]))
    return _merge_pieces(walk.t_lo, walk.t_hi, walk.slope[:, 0], walk.offset[:, 0], lo, span)


def _merge_pieces(t_lo, t_hi, s_t, i_t, lo, span) -> Pieces:
    """Pieces in x = lo + span·t, adjacent ones with equal slope merged (continuity makes them equal)."""
    slope = s_t / span
    scale = float(np.max(np.abs(slope))) if slope.size else 0.0
    jump = np.abs(np.diff(slope)) > _SLOPE_RTOL * np.maximum(np.abs(slope[1:]), np.abs(slope[:-1])) \
        + _MERGE_TOL * scale
    first = np.concatenate([[True], jump])
    x_lo = lo + span * t_lo[first]
    breaks = np.concatenate([x_lo, [lo + span * t_hi[-1]]])
    breaks[0] = lo
    intercept = i_t - s_t * lo / span
    return Pieces(breaks=breaks, slopes=slope[first], intercepts=intercept[first])


def count_linear_pieces(model, lo: float = 0.0, hi: float = 1.0) -> int:
    """Exact number of affine pieces of a scalar ReLU network on [lo, hi] (:func:`linear_pieces`).

    ``count_linear_pieces(sawtooth_network(L)) == 2**L``: adjacent teeth have slopes ±2^L, so no two
    pieces merge.
    """
    return linear_pieces(model, lo, hi).count


# ---------------------------------------------------------------------------------------------------------
# Linear regions in 2-D


_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 that spreads every input bit over the output."""
    z = z ^ (z >> np.uint64(30))
    z *= _MIX1
    z ^= z >> np.uint64(27)
    z *= _MIX2
    return z ^ (z >> np.uint64(31))


def _distinct_rows(bits: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense ids (0…n−1) of the distinct rows of a uint8 matrix, exactly.

    Rows are hashed to 64 bits; a row hashing like the previous one (neighbouring pixels of one region)
    joins its run, and only the runs' hashes are sorted. Every row is then compared with its run's
    first row and every run with its id's first run; only if two different rows ever shared a hash
    does it fall back to an exact sort of the rows.
    """
    n, width = bits.shape
    if n == 0:
        return np.zeros(0, np.intp), 0
    pad = (-width) % 8
    words = np.ascontiguousarray(np.pad(bits, ((0, 0), (0, pad))) if pad else bits).view(np.uint64)
    h = np.zeros(n, np.uint64)
    for j in range(words.shape[1]):
        h = _mix(h ^ words[:, j])
    head = np.empty(n, dtype=bool)
    head[0] = True
    np.not_equal(h[1:], h[:-1], out=head[1:])
    starts = np.flatnonzero(head)
    uniq, run_ids = np.unique(h[starts], return_inverse=True)
    first_run = np.empty(uniq.size, np.intp)
    first_run[run_ids[::-1]] = starts[::-1]
    exact = (np.array_equal(words[starts], words[first_run[run_ids]])
             and bool(np.all(head[1:] | (words[1:] == words[:-1]).all(axis=1))))
    if not exact:
        _, ids = np.unique(words, axis=0, return_inverse=True)
        ids = ids.reshape(-1)
        return ids, int(ids.max()) + 1
    return np.repeat(run_ids, np.diff(np.append(starts, n))), int(uniq.size)


def region_map(model_or_weights, extent: float | Sequence[float] = (-1.0, 1.0, -1.0, 1.0),
               resolution: int | tuple[int, int] = 512, dtype: str = "float32", threads: int = 1
               ) -> tuple[np.ndarray, int]:
    """The linear-region (activation-pattern) map of a 2-input ReLU net over a rectangle.

    Each pixel gets the id of the activation pattern (on/off of every hidden neuron) at its centre;
    two pixels share an id exactly when they share the pattern. With the pattern fixed the net is
    affine and every layer adds linear inequalities, so a pattern's region is a convex polytope and
    distinct ids are distinct linear regions (Hanin & Rolnick 2019; Serra et al. 2018).

    Parameters
    ----------
    model_or_weights : torch nn.Sequential (Linear, ReLU, …, Linear) with 2 inputs, or weights ((W, b), …)
    extent : (x_min, x_max, y_min, y_max), or a float e for the square [−e, e]²
    resolution : int or (rows, cols)
    dtype : "float32" (default, as every simulation) or "float64"
        Precision of the preactivations. In float32 a pixel centre within ~1e−6 (relative) of a region
        boundary may take its neighbour's pattern; float64 is exact up to rounding, ~1.6× slower.

    Returns
    -------
    ids : ndarray of int32, shape (rows, cols)
        ``ids[i, j]`` is the region of the pixel centred at x_j = x_min + (j + ½)Δx, y_i = y_min + (i + ½)Δy
        (row 0 at the bottom: draw with the origin in the lower-left). Ids are 0…count−1 in no
        particular order.
    count : int
        Regions containing a pixel centre: a lower bound on the regions in the rectangle, since one
        thinner than a pixel can be missed.
    """
    x0, x1, y0, y1 = _extent(extent)
    rows, cols = (resolution, resolution) if np.isscalar(resolution) else resolution
    rows, cols = int(rows), int(cols)
    if rows < 1 or cols < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    layers = weights_of(model_or_weights)
    if layers[0][0].shape[1] != 2:
        raise ValueError(f"region_map needs a network with 2 inputs, got {layers[0][0].shape[1]}")
    hidden = layers[:-1]
    x = x0 + (np.arange(cols) + 0.5) * (x1 - x0) / cols
    y = y0 + (np.arange(rows) + 0.5) * (y1 - y0) / rows
    points = np.column_stack([np.tile(x, rows), np.repeat(y, cols)])
    bits = _activation_bits(hidden, points, np.dtype(dtype), threads=threads)
    ids, count = _distinct_rows(bits)
    return ids.astype(np.int32).reshape(rows, cols), count


def _activation_bits(hidden: Weights, points: np.ndarray, dtype: np.dtype, chunk: int = 4096,
                     threads: int = 1) -> np.ndarray:
    """Packed signs of every hidden preactivation at each point (rows: points; bytes: layer by layer).

    Each layer is one product with the bias folded in as a column of ones, z = [h, 1]·[Wᵀ; b], then
    the sign bits are packed and h = z·(z > 0); chunks of ``chunk`` points stay in cache.
    """
    if not hidden:
        return np.zeros((points.shape[0], 1), np.uint8)
    widths = [W.shape[0] for W, _ in hidden]
    nbytes = [(w + 7) // 8 for w in widths]
    offsets = np.cumsum([0] + nbytes)
    augmented = [np.vstack([W.T, b[None, :]]).astype(dtype) for W, b in hidden]
    n_pts = points.shape[0]
    bits = np.empty((n_pts, offsets[-1]), np.uint8)
    wide = max(widths)

    def run(first: int, last: int) -> None:
        h = np.ones((chunk, max(wide, points.shape[1]) + 1), dtype)
        z = np.empty((chunk, wide), dtype)
        on = np.empty((chunk, wide), bool)
        for s in range(first, last, chunk):
            n = min(chunk, last - s)
            n_in = points.shape[1]
            h[:n, :n_in] = points[s:s + n]
            h[:n, n_in] = 1.0
            for k, Wa in enumerate(augmented):
                w = widths[k]
                zk, onk = z[:n, :w], on[:n, :w]
                _dot(h[:n, :n_in + 1], Wa, out=zk)
                np.greater(zk, 0.0, out=onk)
                # flat packing is several times faster and gives the same bytes when w is whole bytes
                packed = (np.packbits(onk, bitorder="little").reshape(n, -1) if w % 8 == 0
                          else np.packbits(onk, axis=1, bitorder="little"))
                bits[s:s + n, offsets[k]:offsets[k + 1]] = packed
                if k < len(augmented) - 1:
                    np.multiply(zk, onk, out=h[:n, :w])
                    h[:n, w] = 1.0
                    n_in = w

    threads = max(1, min(threads, n_pts // (4 * chunk)))
    if threads == 1:
        run(0, n_pts)
    else:
        share = -(-n_pts // threads // chunk) * chunk
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda a: run(a, min(n_pts, a + share)), range(0, n_pts, share)))
    return bits


def _extent(extent) -> tuple[float, float, float, float]:
    if np.isscalar(extent):
        e = float(extent)
        box = (-e, e, -e, e)
    else:
        box = tuple(float(v) for v in extent)
        if len(box) != 4:
            raise ValueError(f"extent must be (x_min, x_max, y_min, y_max) or a half-width, got {extent!r}")
    if not (box[1] > box[0] and box[3] > box[2]):
        raise ValueError(f"extent {box} is empty")
    return box


# ---------------------------------------------------------------------------------------------------------
# Pieces against size: the deep construction, the best shallow net, random nets at init


@dataclass(frozen=True)
class PiecesTheory:
    """Pieces on [0, 1] against depth L at the parameter count of the width-2 sawtooth net."""

    depths: np.ndarray
    n_params: np.ndarray
    deep: np.ndarray
    shallow: np.ndarray


def pieces_theory(depths) -> PiecesTheory:
    """2^L pieces from 6L + 1 parameters (deep), against ≤ k + 1 = 2L + 1 pieces for the one-hidden-layer
    net with the same 3k + 1 = 6L + 1 parameters (each hidden unit adds at most one kink; Telgarsky 2015)."""
    L = np.asarray(depths, dtype=np.int64)
    if L.size and (L.min() < 1 or L.max() > MAX_DEPTH):
        raise ValueError(f"depths must lie in [1, {MAX_DEPTH}]")
    n_params = 6 * L + 1
    shallow = ((n_params - 1) // 3 + 1).astype(float)
    return PiecesTheory(depths=L, n_params=n_params, deep=2.0**L, shallow=shallow)


@dataclass(frozen=True)
class RandomPieces:
    """Exact piece counts of random nets at initialisation: ``counts[i, s]`` for depth ``depths[i]``
    and sample s; ``n_params[i]`` is that net's parameter count."""

    depths: np.ndarray
    counts: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    n_params: np.ndarray
    width: int


def random_init_pieces(depths, width: int, seed: int = 0, sigma_w: float = math.sqrt(2.0),
                       sigma_b: float = 0.1, samples: int = 8, lo: float = 0.0,
                       hi: float = 1.0) -> RandomPieces:
    """Exact pieces on [lo, hi] of random scalar ReLU nets (W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²)).

    For each sample one stack of max(depths) hidden layers is drawn and walked once; the depth-L net is
    its first L layers plus a fresh random read-out, so every depth's net has the stated distribution
    (the depths of one sample are correlated, which only smooths the curve). Hanin & Rolnick (2019)
    predict counts growing roughly with the number of neurons, far below the 2^L of the construction.
    """
    L = np.unique(np.asarray(depths, dtype=np.int64))
    if L.size == 0 or L.min() < 1:
        raise ValueError("depths must be ≥ 1")
    if width < 1 or samples < 1 or not hi > lo:
        raise ValueError("need width ≥ 1, samples ≥ 1 and lo < hi")
    counts = np.zeros((L.size, samples), dtype=np.int64)
    row_of = {int(d): i for i, d in enumerate(L)}
    span = hi - lo
    for s in range(samples):
        rng = np.random.default_rng((seed, s))
        ops: list = []
        for W, b in _random_weights([1] + [width] * int(L.max()), sigma_w, sigma_b, rng):
            ops += [(W, b), "relu"]
        depth = 0
        for is_relu, walk in _walk_stages(ops, np.array([[lo]]), np.array([[span]])):
            if not is_relu:
                continue
            depth += 1
            W, b = _random_weights([width, 1], sigma_w, sigma_b, rng)[0]
            if depth in row_of:
                slope, offset = walk.slope @ W[0], walk.offset @ W[0] + b[0]
                counts[row_of[depth], s] = _merge_pieces(walk.t_lo, walk.t_hi, slope, offset, lo, span).count
    n_params = width * 2 + (L - 1) * (width * width + width) + width + 1
    return RandomPieces(depths=L, counts=counts, mean=counts.mean(axis=1), std=counts.std(axis=1),
                        n_params=n_params, width=int(width))


# ---------------------------------------------------------------------------------------------------------
# Learnability: fitting the sawtooth by gradient descent (Nye & Saxe 2018)


@dataclass(frozen=True)
class FitFrame:
    """One progress report of a fitting experiment.

    Attributes
    ----------
    step, steps : int
        Adam steps done so far, and planned.
    names : tuple of str
        The models, e.g. ("shallow", "deep") or ("random", "near_exact").
    n_params : tuple of int
        Parameters of each model.
    x, target : ndarray (G,)
        The plotting grid on [0, 1] (dyadic, so it holds every kink of f_L) and f_L on it.
    prediction : ndarray (len(names), G)
        Each model's output on ``x`` now.
    loss : ndarray (len(names),)
        Training MSE now.
    loss_history : ndarray (step + 1, len(names)), read-only
        Training MSE after 0, 1, …, step Adam steps (the frame's rows never change later).
    pieces : tuple of int
        Exact affine pieces of each model on [0, 1] now (:func:`count_linear_pieces`); f_L has 2^L.
    constant_loss : float
        The MSE of the best constant, Var f_L: a fit no better than this has learned nothing.
    device : str
        Where the models were trained.
    """

    step: int
    steps: int
    names: tuple[str, ...]
    n_params: tuple[int, ...]
    x: np.ndarray
    target: np.ndarray
    prediction: np.ndarray
    loss: np.ndarray
    loss_history: np.ndarray
    pieces: tuple[int, ...]
    constant_loss: float
    device: str

    @property
    def done(self) -> bool:
        return self.step >= self.steps


def _n_params(weights: Weights) -> int:
    return int(sum(W.size + b.size for W, b in weights))


def _near_exact(depth: int, width: int, noise: float, rng: np.random.Generator) -> Weights:
    """The exact sawtooth weights embedded in width ``width`` (extra units zero), every parameter plus
    N(0, noise²): the protocol of Nye & Saxe (2018, Fig. 1), hand-coded solution plus Gaussian noise."""
    layers = []
    for W, b in sawtooth_weights(depth):
        out = 1 if W.shape[0] == 1 else width
        inp = 1 if W.shape[1] == 1 else width
        Wp, bp = np.zeros((out, inp)), np.zeros(out)
        Wp[:W.shape[0], :W.shape[1]], bp[:b.size] = W, b
        layers.append((Wp + noise * rng.standard_normal(Wp.shape), bp + noise * rng.standard_normal(out)))
    return tuple(layers)


def _deep_init(depth: int, width: int, init: str, noise: float, sigma_w: float, sigma_b: float,
               seed: int) -> Weights:
    if init == "random":
        rng = np.random.default_rng((seed, 1))
        return _random_weights([1] + [width] * depth + [1], sigma_w, sigma_b, rng)
    if init == "near_exact":
        if width < 2:
            raise ValueError("the near-exact start needs width ≥ 2 (the sawtooth construction's width)")
        return _near_exact(depth, width, noise, np.random.default_rng((seed, 3)))
    raise ValueError(f"init must be 'random' or 'near_exact', got {init!r}")


def _check_fit(depth: int, steps: int, lr: float, every: int, noise: float) -> None:
    if isinstance(depth, bool) or int(depth) != depth or not 1 <= depth <= FIT_MAX_DEPTH:
        raise ValueError(f"fitting takes a sawtooth depth in [1, {FIT_MAX_DEPTH}], got {depth!r} "
                         f"(2^L pieces need ≥ 2^(L+3) training points)")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a whole number ≥ 0, got {steps!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning rate must be positive, got {lr!r}")
    if int(every) != every or every < 1:
        raise ValueError(f"every must be a whole number ≥ 1, got {every!r}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be ≥ 0, got {noise!r}")


def _train(models: dict[str, Weights], depth: int, steps: int, lr: float, every: int,
           n_train: int | None, device) -> Iterator[FitFrame]:
    """Full-batch Adam on the MSE to f_L at n_train equispaced points of [0, 1], float32 on ``device``.

    Yields a :class:`FitFrame` before the first step, every ``every`` steps, and after the last.
    """
    import torch

    from core.device import resolve

    dev = resolve(device)
    n_train = int(n_train) if n_train else max(256, 2 ** (depth + 3)) + 1
    x_train = np.linspace(0.0, 1.0, n_train)
    y_train = sawtooth(x_train, depth)
    x_plot = np.linspace(0.0, 1.0, 2 ** max(depth + 2, 10) + 1)
    target = sawtooth(x_plot, depth)

    def tensor(a: np.ndarray):
        return torch.tensor(a[:, None], dtype=torch.float32, device=dev)

    X, Y, XP = tensor(x_train), tensor(y_train), tensor(x_plot)
    x_plot.flags.writeable = target.flags.writeable = False
    names = tuple(models)
    nets = [as_module(w, dtype="float32", device=dev) for w in models.values()]
    opts = [torch.optim.Adam(net.parameters(), lr=lr) for net in nets]
    history = np.full((steps + 1, len(nets)), np.nan)
    started_from = torch.zeros((max(steps, 1), len(nets)), device=dev)
    n_params = tuple(_n_params(w) for w in models.values())
    constant_loss = float(np.var(y_train))
    copied = 0

    def frame(step: int) -> FitFrame:
        nonlocal copied
        with torch.no_grad():
            loss = torch.stack([torch.mean((net(X) - Y) ** 2) for net in nets]).cpu().numpy()
            pred = torch.stack([net(XP)[:, 0] for net in nets]).cpu().numpy().astype(np.float64)
        if step > copied + 1:  # rows up to ``copied`` are already out in earlier frames: never rewritten
            history[copied + 1:step] = started_from[copied + 1:step].cpu().numpy()
        history[step] = loss
        copied = step
        view = history[:step + 1]
        view.flags.writeable = False
        pieces = tuple(count_linear_pieces(net) for net in nets)
        return FitFrame(step=step, steps=steps, names=names, n_params=n_params, x=x_plot, target=target,
                        prediction=pred, loss=loss.astype(np.float64), loss_history=view, pieces=pieces,
                        constant_loss=constant_loss, device=str(dev))

    yield frame(0)
    for step in range(1, steps + 1):
        for i, (net, opt) in enumerate(zip(nets, opts, strict=True)):
            opt.zero_grad(set_to_none=True)
            loss = torch.mean((net(X) - Y) ** 2)
            loss.backward()
            opt.step()
            started_from[step - 1, i] = loss.detach()
        if step % every == 0 or step == steps:
            yield frame(step)


def fit_shallow_vs_deep(depth: int, steps: int = 2000, lr: float = 1e-2, seed: int = 0, *,
                        init: str = "random", noise: float = 0.1, deep_width: int = 2,
                        sigma_w: float = math.sqrt(2.0), sigma_b: float = 0.1, every: int = 20,
                        n_train: int | None = None, device=None) -> Iterator[FitFrame]:
    """Train a shallow and a deep ReLU net with the same parameter count to fit f_L on [0, 1].

    The deep net has ``depth`` hidden layers of ``deep_width`` (width 2: the sawtooth architecture,
    P = 6L + 1 parameters); the shallow one a single hidden layer of k = ⌊(P − 1)/3⌋ units (3k + 1 ≤ P
    parameters; equal for deep_width ≢ 1 mod 3). The shallow net can have at most k + 1 pieces against
    f_L's 2^L (Telgarsky 2015), so its best fit is poor by construction; whether the deep net's extra
    expressivity is *found* by Adam is what the experiment shows (Nye & Saxe 2018). Both start from
    W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²); with ``init="near_exact"`` the deep one starts instead at
    the exact construction plus N(0, noise²) on every parameter.

    Yields
    ------
    FitFrame
        names ("shallow", "deep"), every ``every`` Adam steps (full batch, MSE, float32 on ``device``).
        Stop iterating (or ``close()``) to cancel.
    """
    _check_fit(depth, steps, lr, every, noise)
    if deep_width < 1:
        raise ValueError("deep_width must be ≥ 1")
    deep = _deep_init(depth, deep_width, init, noise, sigma_w, sigma_b, seed)
    k = max(1, (_n_params(deep) - 1) // 3)
    shallow = _random_weights([1, k, 1], sigma_w, sigma_b, np.random.default_rng((seed, 2)))
    yield from _train({"shallow": shallow, "deep": deep}, depth, int(steps), lr, int(every), n_train, device)


def fit_from_init(depth: int, init: str = "random", steps: int = 2000, lr: float = 1e-2, seed: int = 0, *,
                  noise: float = 0.1, width: int = 2, sigma_w: float = math.sqrt(2.0), sigma_b: float = 0.1,
                  every: int = 20, n_train: int | None = None, device=None) -> Iterator[FitFrame]:
    """Train the deep width-``width`` net (``depth`` hidden layers) to fit f_L, from a chosen start.

    ``init``: "random" (W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²)), "near_exact" (Telgarsky's exact weights
    plus N(0, noise²) on every parameter), or "both" (the two side by side, same data and optimiser).
    Nye & Saxe (2018) found that gradient descent learns parity only from close to the hand-coded
    solution; this applies their protocol (exact weights plus Gaussian noise, Fig. 1) to the sawtooth
    and shows what Adam actually reaches (``pieces`` says how many of the 2^L teeth' pieces survive).

    Yields
    ------
    FitFrame
        names (init,) or ("random", "near_exact"), every ``every`` Adam steps.
    """
    _check_fit(depth, steps, lr, every, noise)
    inits = ("random", "near_exact") if init == "both" else (init,)
    models = {name: _deep_init(depth, width, name, noise, sigma_w, sigma_b, seed) for name in inits}
    yield from _train(models, depth, int(steps), lr, int(every), n_train, device)
