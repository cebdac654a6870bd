"""Exact linear pieces along a segment (the segment walk), and pieces against size: the deep
construction, the best shallow net and random nets at initialisation.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from core.depth.constructions import MAX_DEPTH
from core.depth.networks import _in_out_dims, _ops, _random_weights
from core.pace import pace

MAX_INTERVALS = 1 << 22
"""Segment-walk guard: more activation intervals than this is refused rather than exhausting memory."""

_ROOT_RTOL = 1e-10
_MERGE_TOL = 1e-12
_SLOPE_RTOL = 1e-9


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
        pace()
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
