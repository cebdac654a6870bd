"""Optimizers engine and panel: the playground, the momentum map, slider → plots, the GUI while training.

Targets (issue 8): 8 optimisers × 500 playground steps ≤ 10 ms; the 256² momentum map ≤ 30 ms; η slider →
every cheap plot rendered ≤ 50 ms median; the GUI never stalls > 50 ms while training. Baselines, in the same
run: torch.optim itself stepping the same 8 optimisers on the same surface (float64), and numpy's
``linalg.eigvals`` of the 2 × 256² heavy-ball iteration matrices.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from tests.benchmarks.event_loop import max_timer_gap, offscreen_app, settle
from tests.benchmarks.harness import Row, median_seconds

STEPS = 500


def _settings():
    from core.optimizers import playground as PG
    from core.optimizers.library import NAMES

    return [PG.Settings(n, 0.002 if n in ("gd", "sgd", "heavy_ball", "nesterov") else 0.02, 0.9, 0.1)
            for n in NAMES]


def _torch_baseline(surf, settings) -> None:
    import torch

    from core.optimizers import make

    coef = torch.tensor(surf.coef)
    ex = torch.arange(coef.shape[0], dtype=torch.float64)
    ey = torch.arange(coef.shape[1], dtype=torch.float64)
    for s in settings:
        p = torch.tensor([-1.2, 0.9], dtype=torch.float64, requires_grad=True)
        hyper = {"momentum": s.momentum} if s.name in ("heavy_ball", "nesterov") else {}
        if s.name == "adagrad_norm":
            hyper = {"b0": s.b0}
        opt = make(s.name, [p], lr=s.lr, **hyper)
        for _ in range(STEPS):
            opt.zero_grad()
            ((p[0] ** ex) @ coef @ (p[1] ** ey)).backward()
            opt.step()


def _engine_rows() -> list[Row]:
    from core.optimizers import playground as PG
    from core.optimizers import quadratic as Q

    surf = PG.surface("banana")
    settings = _settings()
    ours = median_seconds(lambda: PG.paths(surf, (-1.2, 0.9), settings, STEPS), repeat=15) * 1000
    base = median_seconds(lambda: _torch_baseline(surf, settings), repeat=3) * 1000
    mm = median_seconds(lambda: Q.momentum_map(0.01, 1.0, 256), repeat=15) * 1000

    def eig():
        a, b = np.meshgrid(np.linspace(4 / 256, 4, 256), np.linspace(0, 1, 256, endpoint=False))
        return [np.abs(np.linalg.eigvals(Q.iteration_matrix("heavy_ball", lam, a, b))).max(-1) for lam in (0.01, 1.0)]

    eig_ms = median_seconds(eig, repeat=5) * 1000
    return [
        Row("playground: 8 optimisers × 500 steps (banana)", ours, "ms", "≤ 10 ms", ours <= 10,
            "torch.optim, same 8 × 500 steps", base),
        Row("momentum map 256², closed-form 2×2 eigenvalues", mm, "ms", "≤ 30 ms", mm <= 30,
            "numpy linalg.eigvals", eig_ms),
    ]


def _panel_rows() -> list[Row]:
    app = offscreen_app()
    from app.panels.optimizers import OptimizersPanel, paths_job
    from app.runner import Runner

    runner = Runner()
    panel = OptimizersPanel(runner)
    panel.resize(1280, 720)
    panel.show()
    panel.set_params(steps=STEPS, **{f"show_{n}": True for n in ("sgd", "adagrad", "adagrad_norm", "rmsprop")})
    settle(app, panel, timeout=180.0)
    slider = panel.controls.controls["lr"].slider
    latencies = []
    for v in np.linspace(-1.5, 0.2, 21):
        marks: list[float] = []
        panel.rendered.connect(lambda m=marks: m.append(time.perf_counter()))
        t0 = time.perf_counter()
        slider.setValue(float(v))
        while (panel.is_busy() or not marks) and time.perf_counter() - t0 < 5:
            app.processEvents()
        app.processEvents()           # the repaint the new data asked for
        latencies.append(time.perf_counter() - t0)
        panel.rendered.disconnect()
        settle(app, panel, timeout=180.0)
    slider_ms = statistics.median(latencies) * 1000
    job_ms = median_seconds(lambda: paths_job(panel.params), repeat=9) * 1000
    rows = [Row("η slider → every cheap plot rendered (8 optimisers × 500 steps)", slider_ms, "ms", "≤ 50 ms",
                slider_ms <= 50, "the paths job alone", job_ms)]
    # the GUI while the networks page trains (8 optimisers, BN comparison, both sweeps)
    idle_end = time.monotonic() + 2.0
    idle = max_timer_gap(app, lambda: time.monotonic() < idle_end)
    panel.set_params(view="networks", train_steps=200, width=32, **{f"show_{n}": True for n in
                                                                    ("gd", "heavy_ball", "nesterov", "adam")})
    lag = max_timer_gap(app, panel.is_busy)
    rows.append(Row("GUI's longest stall while the networks page trains", lag, "ms", "≤ 50 ms", lag <= 50,
                    "the same timer with nothing running", idle))
    runner.shutdown()
    panel.close()
    return rows


def run() -> list[Row]:
    return _engine_rows() + _panel_rows()
