"""Jacobian Spectra engine: theory density speed, simulation overhead against a bare loop, peak memory.

* Theory: 400 log-spaced points over the support, caches cleared before every call (what a slider drag
  costs: q*, the law of φ'(h)², the gap scan and the solve), for one activation of each class.
* Simulation: a width-1000, depth-128 orthogonal tanh net on the CPU, against two bare loops timed in
  the same run, interleaved: the same linear algebra — per layer a Gaussian draw, ``geqrf``, the sign
  fix, the row scaling and ``ormqr`` (the engine's Haar-orthogonal product), then one float64 Gram
  (``syrk``) and ``syevr`` — so that ratio is the engine's own overhead (forward pass, φ' by autograd,
  rescaling, the generator); and the textbook loop (``torch.linalg.qr`` forming Q, ``Q @ J``, one
  ``eigvalsh``). On CUDA, when present, the engine is timed there too (target ≤ 1 s).
* Memory: peak resident set of a fresh process computing a width-2000 spectrum: the kernel's
  high-water mark VmHWM, reset to the current RSS just before the call (``/proc/self/clear_refs``),
  minus that RSS, in units of one N × N float32 matrix (16 MB); glibc's mmap threshold is fixed so
  that large blocks always come fresh from the kernel. tracemalloc cannot see torch's allocations; the
  high-water mark sees everything, LAPACK's workspace and the libraries' first-use buffers included.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time

import numpy as np

from core import spectra
from tests.benchmarks.harness import Row, median_seconds

WIDTH, DEPTH = 1000, 128
MEMORY_WIDTH, MEMORY_DEPTH = 2000, 8


def _theory_rows() -> list[Row]:
    rows = []
    for phi, sigma_b in (("relu", 0.0), ("tanh", spectra.SpectraParams().sigma_b)):
        sigma_w = spectra.critical_sigma_w(phi, sigma_b)
        for weights in ("gaussian", "orthogonal"):
            lo, hi = spectra.theory_edges(phi, sigma_w, sigma_b, 16, weights)
            x = np.geomspace(max(lo, hi * 1e-8), hi * 1.2, 400)

            def cold(x=x, sigma_w=sigma_w, weights=weights, phi=phi, sigma_b=sigma_b):
                spectra._spectrum_cache.clear()
                spectra._layer_cache.clear()
                return spectra.theory_density(x, phi, sigma_w, sigma_b, 16, weights)

            t = median_seconds(cold, repeat=7, warmup=1)
            rows.append(Row(f"theory density, 400 points, {phi} {weights} L=16 (cold)", t * 1e3, "ms",
                            "≤ 100 ms", t <= 0.1))
    return rows


def _bare_loop(width: int, depth: int, seed: int = 0) -> np.ndarray:
    """The engine's linear algebra alone: Haar-orthogonal products by geqrf + ormqr, one eigen-solve."""
    import torch
    from scipy import linalg
    from scipy.linalg.blas import dsyrk

    gen = torch.Generator().manual_seed(seed)
    J = torch.eye(width).T
    buf = torch.empty(width, width).T
    d = torch.ones(width)
    for _ in range(depth):
        a = torch.randn(width, width, generator=gen).T
        tau = torch.empty(width)
        torch.geqrf(a, out=(a, tau))
        sign = torch.sgn(torch.diagonal(a))
        J.mul_((sign * d)[:, None])
        torch.ormqr(a, tau, J, out=buf)
        J, buf = buf, J
    j = J.numpy()
    gram = np.zeros((width, width), order="F")
    for start in range(0, width, 256):
        block = np.asfortranarray(j[:, start:start + 256], dtype=np.float64)
        gram = dsyrk(1.0, block, beta=1.0, c=gram, overwrite_c=1, lower=1)
    return linalg.eigvalsh(gram, lower=True, overwrite_a=True, check_finite=False, driver="evr")


def _textbook_loop(width: int, depth: int, seed: int = 0) -> np.ndarray:
    """QR forming Q, the sign fix as a column scaling, Q @ J, one eigen-solve."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    J = torch.eye(width)
    for _ in range(depth):
        q, r = torch.linalg.qr(torch.randn(width, width, generator=gen))
        J = (q * torch.sgn(torch.diagonal(r))) @ J
    j64 = J.double()
    return torch.linalg.eigvalsh(j64 @ j64.T).numpy()


def _interleaved(fns: dict, repeat: dict) -> dict:
    """Median wall time of each function over ``repeat[name]`` runs, the runs interleaved so that load
    drifting on a shared machine hits all of them alike."""
    times: dict = {name: [] for name in fns}
    for round_ in range(max(repeat.values())):
        for name, fn in fns.items():
            if round_ < repeat[name]:
                gc.collect()
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def _simulation_rows() -> list[Row]:
    import torch

    sigma_b = spectra.SpectraParams().sigma_b
    sigma_w = spectra.critical_sigma_w("tanh", sigma_b)

    def engine(device="cpu"):
        return spectra.jacobian_spectrum("tanh", sigma_w, sigma_b, DEPTH, WIDTH, "orthogonal", 0, device)

    spectra.jacobian_spectrum("tanh", sigma_w, sigma_b, 2, WIDTH, "orthogonal", 0, "cpu")   # warm-up
    t = _interleaved({"engine": engine, "bare": lambda: _bare_loop(WIDTH, DEPTH),
                      "textbook": lambda: _textbook_loop(WIDTH, DEPTH)},
                     repeat={"engine": 3, "bare": 3, "textbook": 1})
    name = f"simulated spectrum N={WIDTH} L={DEPTH} orthogonal tanh, CPU {torch.get_num_threads()} threads"
    rows = [
        Row(name, t["engine"], "s", "≤ 1.2× bare loop", t["engine"] <= 1.2 * t["bare"],
            "bare loop, same kernels (geqrf+ormqr)", t["bare"]),
        Row(name, t["engine"], "s", "≤ 1.2× bare loop", t["engine"] <= 1.2 * t["textbook"],
            "bare loop, textbook (qr, Q @ J)", t["textbook"]),
    ]
    if torch.cuda.is_available():
        engine("cuda")
        torch.cuda.synchronize()
        t_gpu = median_seconds(lambda: engine("cuda"), repeat=3, warmup=0)
        rows.append(Row(f"simulated spectrum N={WIDTH} L={DEPTH} orthogonal tanh, "
                        f"{torch.cuda.get_device_name()}", t_gpu, "s", "≤ 1 s", t_gpu <= 1.0,
                        "CPU", t["engine"]))
    return rows


_MEMORY_PROBE = textwrap.dedent(f"""
    import json, re, resource
    from core import spectra

    def status(key):
        return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024

    spectra.jacobian_spectrum("tanh", 1.05, 0.015, 2, 64, "orthogonal", 0, "cpu")      # torch, LAPACK up
    try:
        with open("/proc/self/clear_refs", "w") as f:     # reset the high-water mark to the current RSS
            f.write("5")
        reset = True
    except OSError:
        reset = False
    before = status("VmRSS") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    spectra.jacobian_spectrum("tanh", 1.05, 0.015, {MEMORY_DEPTH}, {MEMORY_WIDTH}, "orthogonal", 0, "cpu")
    peak = status("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({{"before": before, "peak": peak, "reset": reset}}))
""")


def _memory_rows() -> list[Row]:
    # a fixed mmap threshold makes glibc take every large block from the kernel afresh and return it
    # when freed, so no reuse of heap kept from earlier hides an allocation from the RSS
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE], capture_output=True, text=True, check=True,
                         env=env)
    m = json.loads(out.stdout.strip().splitlines()[-1])
    rise = (m["peak"] - m["before"]) / (4 * MEMORY_WIDTH**2)
    how = "VmHWM − VmRSS" if m["reset"] else "ru_maxrss rise (lower bound)"
    return [Row(f"peak memory, N={MEMORY_WIDTH} (L={MEMORY_DEPTH}), N×N float32 matrices ({how})", rise,
                "× 4N² B", "≤ 5", rise <= 5.0)]


def run() -> list[Row]:
    return _theory_rows() + _simulation_rows() + _memory_rows()
