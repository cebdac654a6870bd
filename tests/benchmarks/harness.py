"""The one benchmark harness: median timings, a baseline measured in the same run, a printed table.

A bench module ``tests/benchmarks/bench_*.py`` defines ``run() -> list[Row]``. ``make bench`` runs
them all (``python -m tests.benchmarks [name ...]``) and prints one table.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Row:
    """One measurement; ``ratio`` is baseline / measured (how many times better than the baseline)."""

    name: str
    value: float
    unit: str = "ms"
    target: str = ""
    ok: bool | None = None
    baseline_name: str = ""
    baseline_value: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline_value is None or self.value == 0:
            return None
        return self.baseline_value / self.value


def fresh_json(cmd: list[str], **environ: str) -> dict:
    """Run ``cmd`` in a fresh process (offscreen Qt, nothing imported yet, ``environ`` added to its
    environment) and parse the JSON of its last line."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", **environ)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


#: A fresh process's path to a shown, painted window: the startup probe (the app's Signal Propagation
#: tab, every theory plot) and the floor under it, one pyqtgraph plot in a bare PySide6 window.
STARTUP_PROBE = [sys.executable, "-m", "tests.benchmarks.startup_probe"]
BARE_PLOT_PROBE = [sys.executable, "-c", (
    "import json, time; t = time.perf_counter()\n"
    "import numpy, pyqtgraph as pg\n"
    "from PySide6.QtWidgets import QApplication\n"
    "app = QApplication([]); w = pg.PlotWidget(title='bare'); w.plot(numpy.arange(10.0)); w.resize(1600, 900)\n"
    "w.show(); app.processEvents(); w.grab()\n"
    "print(json.dumps({'s': time.perf_counter() - t}))")]


def app_launches(later: int = 3) -> tuple[dict, list[dict]]:
    """The startup probe in fresh processes sharing a new, empty table cache: the first launch on a machine
    (which builds the tables and stores them, core.disk_cache) and ``later`` launches after it."""
    with tempfile.TemporaryDirectory(prefix="eoc_bench_cache_") as cache:
        first = fresh_json(STARTUP_PROBE, EDGE_OF_CHAOS_CACHE=cache)
        return first, [fresh_json(STARTUP_PROBE, EDGE_OF_CHAOS_CACHE=cache) for _ in range(later)]


def median_seconds(fn: Callable[[], object], repeat: int = 7, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeat`` runs after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def format_table(rows: list[Row]) -> str:
    head = ("benchmark", "measured", "target", "baseline (same run)", "ratio", "ok")
    lines = []
    for r in rows:
        base = f"{r.baseline_name}: {r.baseline_value:.4g} {r.unit}" if r.baseline_value is not None else ""
        ratio = f"{r.ratio:.1f}x" if r.ratio is not None else ""
        ok = "" if r.ok is None else ("yes" if r.ok else "NO")
        lines.append((r.name, f"{r.value:.4g} {r.unit}", r.target, base, ratio, ok))
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)
