"""The numpy contours against pyqtgraph's isocurve (the cell-by-cell walk they replace) and a circle."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest

from app.contours import lines, segments


def _points(x, y):
    ok = np.isfinite(x)
    return {(round(a, 9), round(b, 9)) for a, b in zip(x[ok], y[ok], strict=True)}


@pytest.mark.parametrize("quantile", [0.1, 0.35, 0.5, 0.9])
def test_the_points_are_isocurves_and_every_segment_joins_two_edges_of_one_cell(quantile):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((23, 17)).cumsum(0).cumsum(1) / 10      # rough, with saddles
    level = float(np.quantile(z, quantile)) + 1e-7      # not on a grid value: no degenerate corner
    x, y = segments(z, level)
    # pyqtgraph puts z[i, j] at the centre of pixel (i, j), i.e. at (i + ½, j + ½)
    theirs = [np.asarray(line, dtype=float) - 0.5 for line in pg.isocurve(z, level, connected=True)]
    ref = _points(np.concatenate([t[:, 0] for t in theirs]), np.concatenate([t[:, 1] for t in theirs]))
    assert _points(x, y) == ref
    ends = np.stack([x, y], axis=1).reshape(-1, 3, 2)[:, :2]
    assert np.all(np.floor(ends.min(1)) + 1 >= ends.max(1) - 1e-12)   # both ends on one cell


def test_a_circle_is_closed_and_on_the_radius_and_nans_carry_no_line():
    n = 101
    g = np.linspace(-1, 1, n)
    r = np.hypot(g[:, None], g[None, :])
    x, y = segments(r, 0.503)
    to = lambda u: -1 + 2 * u / (n - 1)     # noqa: E731 — index to coordinate
    radius = np.hypot(to(x), to(y))
    ok = np.isfinite(radius)
    assert np.abs(radius[ok] - 0.503).max() < 1e-3
    ends = _points(x, y)
    assert len(ends) * 2 == ok.sum()          # closed: each point ends exactly two segments
    r[40:60, :] = np.nan
    x, y = segments(r, 0.503)
    assert not np.any((x[np.isfinite(x)] > 40) & (x[np.isfinite(x)] < 59))


def test_levels_together_are_each_level_alone_including_levels_that_cut_nothing():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((31, 19)).cumsum(0).cumsum(1) / 10
    z[5:8, 3:6] = np.nan
    levels = [float(np.quantile(z[np.isfinite(z)], q)) + 1e-7 for q in (0.2, 0.5, 0.8)] + [1e9, -1e9]
    together = lines(z, levels)
    assert len(together) == len(levels)
    for level, (x, y) in zip(levels, together, strict=True):
        ax, ay = segments(z, level)
        assert _points(x, y) == _points(ax, ay)
        assert x.size == ax.size and y.size == ay.size
    assert together[-1][0].size == together[-2][0].size == 0
    assert lines(z, []) == []
