"""Linear regions of a ReLU net over a 2-D extent: activation patterns on a grid."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from core.depth.networks import Weights, weights_of
from core.depth.pieces import _dot
from core.pace import pace

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
            pace()
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
