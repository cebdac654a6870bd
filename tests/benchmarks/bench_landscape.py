"""Loss Landscape benchmarks, each against a baseline measured in the same run.

Targets (issue 9, CPU): a 51×51 full-training-set surface of the default digits MLP ≤ 2 s, at ≥ 30 % of the
FLOP rate of a plain torch.mm doing the same number of FLOPs; a 21×21 preview (on the panel's preview
samples) ≤ 250 ms; the top-5 Hessian eigenvalues ≤ 0.3 s and faster than power iteration with deflation at
the same tolerance; the exact spectrum of a ≤ 5k-parameter MLP ≤ 5 s; an SLQ density ≤ 1 s. Baselines: a
point-by-point loop (one forward pass per grid point, timed on a subsample of points and scaled), torch.mm,
power iteration, one Lanczos run per SLQ vector. All timings use every CPU core torch is allowed; the
surfaces are also timed at the app's thread count (it leaves one core to the GUI thread).
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F

from core import data, nets
from core.landscape import curvature
from core.landscape.directions import filter_normalized_direction
from core.landscape.experiments import PREVIEW_SAMPLES
from core.landscape.surfaces import evaluate_surface
from tests.benchmarks.harness import Row, median_seconds


def _surface_flops(model, n: int, points: int, directions: int = 2) -> float:
    """FLOPs the batched surface executes: every layer but the first as one matmul per point, the first as
    one matmul per direction (exact by linearity) plus a (directions)-term combination per point."""
    linears = list(model.linears)
    first = linears[0]
    per_point = sum(2 * n * m.in_features * m.out_features for m in linears[1:])
    once = (directions + 1) * 2 * n * first.in_features * first.out_features
    return points * (per_point + 2 * directions * n * first.out_features) + once


def _mm_seconds(flops: float) -> float:
    """A plain torch.mm doing ``flops`` FLOPs as (1347·16 × 128) @ (128 × 128) products."""
    a, b = torch.rand(1347 * 16, 128), torch.rand(128, 128)
    per = 2 * a.shape[0] * 128 * 128
    reps = max(1, int(round(flops / per)))
    out = torch.empty(a.shape[0], 128)

    def run():
        for _ in range(reps):
            torch.mm(a, b, out=out)

    return median_seconds(run, repeat=3) * flops / (reps * per)


def _loop_seconds(model, ds, dirs, points: int, total: int) -> float:
    """Point-by-point: move a copy of the weights, one forward pass over the training set per point."""
    m = copy.deepcopy(model)
    base = [p.detach().clone() for p in model.parameters()]
    rng = np.random.default_rng(0)
    coefs = rng.uniform(-1, 1, size=(points, 2))
    t0 = time.perf_counter()
    with torch.no_grad():
        for a, b in coefs:
            for p, p0, d1, d2 in zip(m.parameters(), base, *dirs, strict=True):
                p.copy_(p0 + a * d1 + b * d2)
            F.cross_entropy(m(ds.x_train), ds.y_train)
    return (time.perf_counter() - t0) * total / points


def run() -> list[Row]:
    import os

    from core import device

    device.default()            # its first call sets the app's thread count; the benchmark then takes every core
    app_threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    ds = data.load("digits")
    model = nets.build(nets.DIGITS_MLP, seed=0, device="cpu")
    dirs = [filter_normalized_direction(model, 1), filter_normalized_direction(model, 2)]
    n = ds.n_train

    def surface_at(threads: int, steps: int, samples: int | None, repeat: int) -> float:
        torch.set_num_threads(threads)
        try:
            return median_seconds(lambda: evaluate_surface(model, ds, dirs, steps=steps, device="cpu",
                                                           samples=samples), repeat=repeat)
        finally:
            torch.set_num_threads(os.cpu_count() or 1)

    big = surface_at(os.cpu_count() or 1, 51, None, 3)
    loop = _loop_seconds(model, ds, dirs, 150, 51 * 51)
    rows.append(Row("surface 51² digits MLP, 1347 samples", big, "s", "≤ 2 s", big <= 2.0,
                    "point-by-point loop, scaled", loop))
    flops = _surface_flops(model, n, 51 * 51)
    mm = _mm_seconds(flops)
    rate, mm_rate = flops / big / 1e9, flops / mm / 1e9
    rows.append(Row("surface FLOP rate (executed FLOPs)", rate, "GFLOP/s", "≥ 30 % of torch.mm",
                    rate >= 0.3 * mm_rate, "torch.mm, same FLOPs", mm_rate))
    big_at_app = surface_at(app_threads, 51, None, 3)
    rows.append(Row(f"surface 51² at the app's {app_threads} torch thread(s)", big_at_app, "s", "≤ 2 s",
                    big_at_app <= 2.0, "point-by-point loop, scaled", loop))
    # as the panel's preview: the training split's first PREVIEW_SAMPLES samples
    preview = surface_at(os.cpu_count() or 1, 21, PREVIEW_SAMPLES, 5)
    loop_21 = _loop_seconds(model, ds, dirs, 60, 21 * 21) * PREVIEW_SAMPLES / n
    rows.append(Row(f"surface 21² preview ({PREVIEW_SAMPLES} of {n} samples, as the panel)", preview * 1e3, "ms",
                    "≤ 250 ms", preview <= 0.25, "point-by-point loop, scaled", loop_21 * 1e3))
    at_app = surface_at(app_threads, 21, PREVIEW_SAMPLES, 5)
    rows.append(Row(f"surface 21² preview at the app's {app_threads} torch thread(s)", at_app * 1e3, "ms",
                    "≤ 250 ms", at_app <= 0.25, "point-by-point loop, scaled", loop_21 * 1e3))

    # Hessian of the default digits MLP (26,122 parameters), full training set, float32
    # (each timing builds its Hessian operator, the kept gradient graph, inside the timed region)
    f = curvature.FlatLoss(model, ds, dtype=torch.float32, device="cpu")
    tol = 1e-4
    f.operator()(torch.ones(f.dim))   # warm autograd

    def lanczos():
        return curvature.extreme_eigenvalues(f.operator(), f.dim, 5, tol=tol, dtype=torch.float32, device="cpu")

    lz = median_seconds(lanczos, repeat=3)
    matvecs = lanczos().matvecs
    t0 = time.perf_counter()
    power = curvature.power_iteration(f.operator(), f.dim, 5, tol=tol, dtype=torch.float32, device="cpu")
    pw = time.perf_counter() - t0
    rows.append(Row(f"top-5 Hessian eigenvalues, Lanczos ({matvecs} Hv)", lz, "s", "≤ 0.3 s, < power",
                    lz <= 0.3 and lz < pw, f"power iteration + deflation ({power.matvecs} Hv)", pw))

    # a 2,410-parameter MLP: exact spectrum, and the SLQ density
    small = nets.build(nets.NetSpec(64, (32,), 10), seed=0, device="cpu")
    exact = median_seconds(lambda: curvature.exact_spectrum(small, ds, device="cpu"), repeat=1, warmup=1)
    rows.append(Row("exact Hessian spectrum, 2,410 params", exact, "s", "≤ 5 s", exact <= 5.0))
    # the density in float32, as PyHessian computes it: a stochastic estimate needs no float64 products
    # (tests/core/test_landscape.py checks it against float64)
    g = curvature.FlatLoss(small, ds, device="cpu", dtype=torch.float32)

    def block_slq():
        op = g.operator()
        return curvature.slq(op, g.dim, n_vectors=8, steps=80, matmat=op.many, device="cpu", dtype=torch.float32)

    block = median_seconds(block_slq, repeat=3)
    seq = median_seconds(lambda: curvature.slq(g.operator(), g.dim, n_vectors=8, steps=80, device="cpu",
                                               dtype=torch.float32), repeat=1, warmup=0)
    rows.append(Row("SLQ density 8×80, 2,410 params, float32", block, "s", "≤ 1 s", block <= 1.0,
                    "one Lanczos run per vector", seq))
    return rows
