"""Contour lines of a sampled function, by marching squares in numpy.

pyqtgraph's ``isocurve`` walks the grid cell by cell in Python: ~0.2 s for ten levels of a 200² grid,
all of it holding the interpreter lock, so a worker drawing contours stalls the GUI thread. Here every
cell of every level is handled at once (a few dozen numpy calls whatever the number of levels); the lines
come back as separate segments (drawn the same way).
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
    return lines(z, [level])[0]


def lines(z: np.ndarray, levels) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`segments` of ``z`` at each of ``levels``, computed together: one ``(x, y)`` per level."""
    z = np.asarray(z, dtype=float)
    levels = np.atleast_1d(np.asarray(levels, dtype=float))
    empty = [(np.zeros(0), np.zeros(0)) for _ in levels]
    if z.ndim != 2 or min(z.shape) < 2 or levels.size == 0:
        return empty
    ni, nj = z.shape[0] - 1, z.shape[1] - 1
    corners = (z[:-1, :-1], z[1:, :-1], z[1:, 1:], z[:-1, 1:])        # a (i,j), b (i+1,j), c (i+1,j+1), d (i,j+1)
    finite = [np.isfinite(v) for v in corners]
    with np.errstate(invalid="ignore"):
        above = [v[None] > levels[:, None, None] for v in corners]     # (levels, ni, nj)
    # the four edges as (from corner, to corner): a→b, b→c, d→c, a→d
    edges = ((0, 1), (1, 2), (3, 2), (0, 3))
    crosses = np.stack([(above[p] != above[q]) & finite[p] & finite[q] for p, q in edges])
    count = crosses.sum(0)
    two = np.flatnonzero(count == 2)
    four = np.flatnonzero(count == 4)
    cells = np.concatenate([two, four])
    if cells.size == 0:
        return empty
    level_of, cell = np.divmod(cells, ni * nj)
    ci, cj = np.divmod(cell, nj)
    value = [v.ravel()[cell] for v in corners]
    at = levels[level_of]
    # where each edge meets the level, for the chosen cells (edges that do not cross are never used)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = [(at - value[p]) / (value[q] - value[p]) for p, q in edges]
    px = np.stack([ci + t[0], ci + 1.0, ci + t[2], ci.astype(float)])
    py = np.stack([cj.astype(float), cj + t[1], cj + 1.0, cj + t[3]])
    n = np.arange(cells.size)
    hit = crosses.reshape(4, -1)[:, cells]
    # two crossings: the first and the last crossing edge of the cell
    first = np.argmax(hit, axis=0)
    last = 3 - np.argmax(hit[::-1], axis=0)
    pairs = [(first[:two.size], last[:two.size], n[:two.size])]
    if four.size:
        # a saddle: the centre on a's side cuts off corners b and d (edges 0–1, 2–3), else a and c (0–3, 1–2)
        m = n[two.size:]
        centre = sum(value)[m] / 4 > at[m]
        like_a = centre == (value[0][m] > at[m])
        for pick, (e1, e2) in ((like_a, (0, 1)), (like_a, (2, 3)), (~like_a, (0, 3)), (~like_a, (1, 2))):
            rows = m[pick]
            pairs.append((np.full(rows.size, e1), np.full(rows.size, e2), rows))
    e1 = np.concatenate([p[0] for p in pairs])
    e2 = np.concatenate([p[1] for p in pairs])
    rows = np.concatenate([p[2] for p in pairs])
    order = np.argsort(level_of[rows], kind="stable")
    e1, e2, rows = e1[order], e2[order], rows[order]
    nan = np.full(rows.size, np.nan)
    x = np.stack([px[e1, rows], px[e2, rows], nan], axis=1)
    y = np.stack([py[e1, rows], py[e2, rows], nan], axis=1)
    bounds = np.searchsorted(level_of[rows], np.arange(levels.size + 1))
    return [(x[lo:hi].ravel(), y[lo:hi].ravel()) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
