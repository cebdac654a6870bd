"""The one benchmark harness: median timings, a baseline measured in the same run, a printed table.

A bench module ``tests/benchmarks/bench_*.py`` defines ``run() -> list[Row]``. ``make bench`` runs
them all (``python -m tests.benchmarks [name ...]``) and prints one table.
"""

from __future__ import annotations

import gc
import statistics
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
