"""Contour lines of a sampled function, by marching squares in numpy.

pyqtgraph's ``isocurve`` walks the grid cell by cell in Python: ~0.2 s for ten levels of a 200² grid,
all of it holding the interpreter lock, so a worker drawing contours stalls the GUI thread. Here every
cell of a level is handled at once; the lines come back as separate segments (drawn the same way).
"""

from __future__ import annotations

import numpy as np


def segments(z: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The ``z == level`` line of a grid ``z[i, j]`` as straight segments, in index coordinates (i, j).

    Marching squares with linear interpolation along each cell edge (the points pyqtgraph's
    ``isocurve`` puts on the line); a cell whose four corners alternate (a saddle) is split by the
    value at its centre, the mean of the corners. Edges touching a NaN carry no line.

    Returns
    -------
    x, y : ndarray
        ``[x₀, x₁, nan, x₀, x₁, nan, …]``: each segment's two ends then NaN, for
        ``setData(x, y, connect="finite")``.
    """
    z = np.asarray(z, dtype=float)
    if z.ndim != 2 or min(z.shape) < 2:
        return np.zeros(0), np.zeros(0)
    a, b, c, d = z[:-1, :-1], z[1:, :-1], z[1:, 1:], z[:-1, 1:]      # corners (i,j) (i+1,j) (i+1,j+1) (i,j+1)
    i, j = np.meshgrid(np.arange(z.shape[0] - 1, dtype=float), np.arange(z.shape[1] - 1, dtype=float),
                       indexing="ij")
    # the four edges: where each crosses the level and at which point
    edges = []
    for lo, hi, x0, y0, dx, dy in ((a, b, i, j, 1, 0), (b, c, i + 1, j, 0, 1), (d, c, i, j + 1, 1, 0),
                                   (a, d, i, j, 0, 1)):
        with np.errstate(invalid="ignore", divide="ignore"):
            crosses = np.isfinite(lo) & np.isfinite(hi) & ((lo > level) != (hi > level))
            t = np.where(crosses, (level - lo) / (hi - lo), 0.0)
        edges.append((crosses, x0 + dx * t, y0 + dy * t))
    count = sum(e[0].astype(int) for e in edges)
    xs, ys = [], []
    two = count == 2
    if two.any():
        first = np.full(two.shape, -1)
        second = np.full(two.shape, -1)
        for k, (crosses, _, _) in enumerate(edges):
            take = two & crosses
            second = np.where(take & (first >= 0), k, second)
            first = np.where(take & (first < 0), k, first)
        cells = np.flatnonzero(two)
        e1, e2 = first.ravel()[cells], second.ravel()[cells]
        px = np.stack([e[1].ravel()[cells] for e in edges])
        py = np.stack([e[2].ravel()[cells] for e in edges])
        n = np.arange(cells.size)
        xs.append((px[e1, n], px[e2, n]))
        ys.append((py[e1, n], py[e2, n]))
    four = count == 4
    if four.any():
        cells = np.flatnonzero(four)
        centre = (a + b + c + d).ravel()[cells] / 4 > level
        like_a = centre == (a.ravel()[cells] > level)
        px = [e[1].ravel()[cells] for e in edges]
        py = [e[2].ravel()[cells] for e in edges]
        # centre on a's side: corners b and d are cut off (bottom–right, top–left); else a and c
        for pick, pairs in ((like_a, ((0, 1), (2, 3))), (~like_a, ((0, 3), (1, 2)))):
            for e1, e2 in pairs:
                xs.append((px[e1][pick], px[e2][pick]))
                ys.append((py[e1][pick], py[e2][pick]))
    if not xs:
        return np.zeros(0), np.zeros(0)
    return _interleave(xs), _interleave(ys)


def _interleave(pairs) -> np.ndarray:
    starts = np.concatenate([p[0] for p in pairs])
    ends = np.concatenate([p[1] for p in pairs])
    return np.stack([starts, ends, np.full(starts.size, np.nan)], axis=1).ravel()
