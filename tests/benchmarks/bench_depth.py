"""Depth & Sawtooth benchmarks: the 2-D region map and exact piece counting, each against the naive way.

Targets (issue 4): a 512×512 region map of a width-32 depth-8 net ≤ 200 ms on CPU; exact pieces of a
width-64 depth-10 net ≤ 50 ms. Baselines are measured in the same run: a per-pixel Python loop (timed
on a subsample of pixels and scaled to the whole image), and dense sampling at 10⁶ points.
"""

from __future__ import annotations

import time

import numpy as np

from core import depth as D
from tests.benchmarks.harness import Row, median_seconds

SIGMA_W, SIGMA_B = 1.41, 0.1


def _per_pixel_loop(weights, n_pixels: int, side: int) -> float:
    """Seconds for the naive region map (each pixel forward on its own, its pattern a dict key), scaled
    from ``n_pixels`` random pixels to side² pixels."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1.0, 1.0, size=(n_pixels, 2))
    hidden = weights[:-1]
    t0 = time.perf_counter()
    ids: dict[bytes, int] = {}
    for p in pts:
        h, bits = p, []
        for W, b in hidden:
            z = W @ h + b
            bits.append(z > 0)
            h = np.maximum(z, 0.0)
        ids.setdefault(np.packbits(np.concatenate(bits)).tobytes(), len(ids))
    return (time.perf_counter() - t0) * side * side / n_pixels


def _dense_sampling(weights, n: int = 1_000_000, chunk: int = 65536) -> int:
    """The naive piece count: evaluate at n points, count slope changes (can miss narrow pieces)."""
    x = np.linspace(0.0, 1.0, n)
    y = np.empty(n)
    for s in range(0, n, chunk):
        h = x[s:s + chunk, None]
        for i, (W, b) in enumerate(weights):
            h = h @ W.T + b
            if i < len(weights) - 1:
                h = np.maximum(h, 0.0)
        y[s:s + chunk] = h[:, 0]
    slope = np.diff(y) / np.diff(x)
    return 1 + int(np.count_nonzero(np.abs(np.diff(slope)) > 1e-6 * np.abs(slope).max()))


def run() -> list[Row]:
    rows = []
    side = 512
    net = D.random_relu_net(2, 32, 8, SIGMA_W, SIGMA_B, seed=0)
    naive = _per_pixel_loop(net, 2048, side)
    for dtype in ("float32", "float64"):
        t = median_seconds(lambda dtype=dtype: D.region_map(net, 1.0, side, dtype=dtype), repeat=7)
        target = dtype == "float32"
        rows.append(Row(f"region map 512² w32 d8 ({dtype})", t * 1e3, "ms", "≤ 200 ms" if target else "",
                        t * 1e3 <= 200 if target else None, "per-pixel loop, scaled", naive * 1e3))

    net = D.random_relu_net(1, 64, 10, SIGMA_W, SIGMA_B, seed=0)
    t = median_seconds(lambda: D.count_linear_pieces(net), repeat=21, warmup=2)
    dense = median_seconds(lambda: _dense_sampling(net), repeat=1, warmup=0)  # ~80 GFLOP: once is plenty
    rows.append(Row("exact pieces w64 d10", t * 1e3, "ms", "≤ 50 ms", t * 1e3 <= 50,
                    "dense sampling 10⁶ pts", dense * 1e3))

    saw = D.sawtooth_weights(12)
    t = median_seconds(lambda: D.count_linear_pieces(saw), repeat=11)
    rows.append(Row("exact pieces sawtooth L=12 (4096)", t * 1e3, "ms"))
    t = median_seconds(lambda: D.random_init_pieces(range(1, 13), 16, samples=8), repeat=3)
    rows.append(Row("random-init pieces w16 L=1…12 ×8", t * 1e3, "ms"))
    return rows
