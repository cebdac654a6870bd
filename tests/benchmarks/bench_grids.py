"""The theory engines at notebook scale: the public pointwise functions of core.propagation on whole grids.

Targets (issue 12), CPU, baselines measured in the same run:

* ``depth_scales`` over a 256 × 256 (σ_w, σ_b) tanh grid ≤ 1 s with peak memory ≤ 500 MB (tracemalloc:
  numpy's allocations are traced); baseline: the exact per-point path (``exact=True``) on a random
  subset, scaled to the grid.
* The 20-layer q/c iteration of a 16 × 16 (σ_w, σ_b) sweep through ``c_map`` / ``q_map`` for 10 inputs
  (45 pairs), erf and ReLU, ≥ 100× faster than the papers' per-point quadrature (Poole et al. 2016:
  Gauss–Hermite, 100 nodes in 1-D and 100 × 100 in 2-D, timed on a subset of the sweep and scaled).
  neural-tangents' NNGP kernels for Erf and Relu are the closed forms of THEORY.md §2 (arcsine and
  arc-cosine kernels), so agreement with neural-tangents to 1e-4 is checked against those closed forms,
  iterated through the same 20 layers. neural-tangents itself is not run here (JAX is not a dependency;
  the issue quotes 76–81 s for it on this sweep).
* ``critical_sigma_w`` over 1000 σ_b values ≤ 0.5 s; baseline: one call per σ_b (a subset, scaled).
"""

from __future__ import annotations

import math
import time
import tracemalloc

import numpy as np

from core import activations
from core import propagation as prop
from tests.benchmarks.harness import Row, median_seconds

N_SIDE = 256
SUBSET = 12
SWEEP = 16
LAYERS = 20
INPUTS = 10
GH_NODES = 100


def _depth_scales_rows() -> list[Row]:
    sw, sb = np.meshgrid(np.linspace(0.05, 4.0, N_SIDE), np.linspace(0.0, 2.0, N_SIDE))
    prop.tables("tanh")
    engine = median_seconds(lambda: prop.depth_scales(sw, sb, "tanh"), repeat=5, warmup=1)
    tracemalloc.start()
    xi_q, xi_c = prop.depth_scales(sw, sb, "tanh")
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    rng = np.random.default_rng(0)
    pick = rng.choice(sw.size, SUBSET, replace=False)
    t0 = time.perf_counter()
    exact_q, exact_c = prop.depth_scales(sw.flat[pick], sb.flat[pick], "tanh", exact=True)
    scaled = (time.perf_counter() - t0) / SUBSET * sw.size
    err = np.max(np.abs(xi_c.flat[pick] - exact_c) / exact_c)
    return [
        Row("depth_scales 256×256 tanh (tables warm)", engine * 1e3, "ms", "≤ 1000 ms", engine <= 1.0,
            f"exact per-point path ({SUBSET} random points, scaled to 256²)", scaled * 1e3),
        Row("  peak memory (tracemalloc)", peak, "MB", "≤ 500 MB", peak <= 500),
        Row("  vs the exact path on those points: max |Δξ_c|/ξ_c", err, "", "≤ 1e-3", err <= 1e-3),
    ]


def _inputs():
    """10 inputs of dimension 8 with ‖x‖²/d = 1, so every pair has the same q⁰ = 1: c⁰ = x_i·x_j/d."""
    x = np.random.default_rng(0).standard_normal((INPUTS, 8))
    x *= math.sqrt(8) / np.linalg.norm(x, axis=1, keepdims=True)
    iu = np.triu_indices(INPUTS, 1)
    return (x @ x.T / 8)[iu]


def _sweep():
    sw, sb = np.meshgrid(np.linspace(0.5, 2.5, SWEEP), np.linspace(0.0, 1.0, SWEEP))
    return sw.ravel(), sb.ravel()


def _engine_sweep(phi: str):
    """q^L and c^L of every (σ_w, σ_b, pair) through c_map and q_map, layer by layer."""
    sw, sb = _sweep()
    c0 = _inputs()
    SW, SB, C = (np.repeat(sw, c0.size), np.repeat(sb, c0.size), np.tile(c0, sw.size))
    q = sw * sw * 1.0 + sb * sb                    # layer 1 from q⁰ = 1: the input is not passed through φ
    c = (SW * SW * C + SB * SB) / np.repeat(q, c0.size)
    for _ in range(LAYERS - 1):
        c = prop.c_map(c, np.repeat(q, c0.size), SW, SB, phi)
        q = prop.q_map(q, sw, sb, phi)
    return q, c


def _closed_form_sweep(phi: str):
    """The same iteration with the closed-form kernels neural-tangents uses for Erf and Relu."""
    sw, sb = _sweep()
    c0 = _inputs()
    SW, SB, C = (np.repeat(sw, c0.size), np.repeat(sb, c0.size), np.tile(c0, sw.size))
    q = sw * sw + sb * sb
    c = (SW * SW * C + SB * SB) / np.repeat(q, c0.size)
    for _ in range(LAYERS - 1):
        Q = np.repeat(q, c0.size)
        if phi == "erf":
            var = (2 / math.pi) * np.arcsin(2 * q / (1 + 2 * q))
            cov = (2 / math.pi) * np.arcsin(2 * Q * c / (1 + 2 * Q))
        else:
            var = q / 2
            cc = np.clip(c, -1.0, 1.0)
            cov = Q / (2 * math.pi) * (np.sqrt(1 - cc * cc) + (math.pi - np.arccos(cc)) * cc)
        q_new = sw * sw * var + sb * sb
        c = (SW * SW * cov + SB * SB) / np.repeat(q_new, c0.size)
        q = q_new
    return q, c


def _papers_sweep(phi: str, points: int) -> float:
    """Seconds per (σ_w, σ_b) point of the papers' method: Gauss–Hermite quadrature per point and layer."""
    act = activations.get(phi)
    z, wz = np.polynomial.hermite_e.hermegauss(GH_NODES)
    wz = wz / wz.sum()
    z1, z2 = np.meshgrid(z, z, indexing="ij")
    w2 = np.outer(wz, wz)
    sw, sb = _sweep()
    c0 = _inputs()
    rng = np.random.default_rng(1)
    pick = rng.choice(sw.size, points, replace=False)
    t0 = time.perf_counter()
    for s_w, s_b in zip(sw[pick], sb[pick], strict=True):
        q = s_w * s_w + s_b * s_b
        cs = (s_w * s_w * c0 + s_b * s_b) / q
        for _ in range(LAYERS - 1):
            s = math.sqrt(q)
            f1 = act.phi(s * z1)
            new = []
            for c in cs:
                u2 = s * (c * z1 + math.sqrt(max(1.0 - c * c, 0.0)) * z2)
                new.append(s_w * s_w * np.sum(w2 * f1 * act.phi(u2)) + s_b * s_b)
            q = s_w * s_w * np.dot(wz, act.phi(s * z) ** 2) + s_b * s_b
            cs = np.array(new) / q
    return (time.perf_counter() - t0) / points


def _sweep_rows(phi: str) -> list[Row]:
    prop.tables(phi)
    engine = median_seconds(lambda: _engine_sweep(phi), repeat=3, warmup=1)
    q, c = _engine_sweep(phi)
    q_ref, c_ref = _closed_form_sweep(phi)
    err = max(float(np.max(np.abs(q - q_ref) / q_ref)), float(np.max(np.abs(c - c_ref))))
    papers = _papers_sweep(phi, 3) * SWEEP * SWEEP
    ratio = papers / engine
    label = {"erf": "erf", "relu": "ReLU"}[phi]
    return [
        Row(f"20-layer q/c sweep 16×16 (σ_w, σ_b) × 45 pairs, {label}, via c_map/q_map", engine * 1e3, "ms",
            "≥ 100x the papers' method", ratio >= 100, "papers' per-point Gauss–Hermite (3 points, scaled)",
            papers * 1e3),
        Row(f"  vs the closed-form NNGP kernel (neural-tangents' {label}): max |Δc|, |Δq|/q", err, "",
            "≤ 1e-4", err <= 1e-4),
    ]


def _critical_rows() -> list[Row]:
    sb = np.linspace(0.0, 2.0, 1000)
    prop.tables("tanh")
    engine = median_seconds(lambda: prop.critical_sigma_w(sb, "tanh"), repeat=3, warmup=1)
    t0 = time.perf_counter()
    for b in sb[::100]:
        prop.critical_sigma_w(b, "tanh")
    one_by_one = (time.perf_counter() - t0) / 10 * sb.size
    return [Row("critical_sigma_w over 1000 σ_b, tanh", engine * 1e3, "ms", "≤ 500 ms", engine <= 0.5,
                "one call per σ_b (10 of them, scaled)", one_by_one * 1e3)]


def run() -> list[Row]:
    rows = _depth_scales_rows()
    for phi in ("erf", "relu"):
        rows += _sweep_rows(phi)
    rows += _critical_rows()
    return rows
