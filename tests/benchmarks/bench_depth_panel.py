"""Depth & Sawtooth panel as a lecturer feels it: slider → plots 1–3 rendered, and the GUI while training.

Target (issue 4): the slider-to-rendered latency of plots 1–3 (sawtooth, pieces vs depth, Yarotsky)
≤ 30 ms median. Latency is the time from a slider's ``setValue`` to the panel's ``rendered`` signal
after the theory is drawn, and, in a second row, to the end of the repaint that follows it. The
baseline is the theory job itself, called directly (the numpy work, with no thread hop and no drawing).
"""

from __future__ import annotations

import statistics
import time

from tests.benchmarks.event_loop import max_timer_gap, offscreen_app, settle
from tests.benchmarks.harness import Row, median_seconds

REPEATS = 30


def _slider_latencies(app, panel, name: str, values: list[int]) -> tuple[list[float], list[float]]:
    """Seconds from ``setValue`` to ``rendered``, and to the end of the next repaint, per value."""
    slider = panel.controls.controls[name].slider
    to_signal, to_paint = [], []
    for value in values:
        done: list[float] = []
        panel.rendered.connect(lambda d=done: d.append(time.perf_counter()))
        t0 = time.perf_counter()
        slider.setValue(value)
        while not done and time.perf_counter() - t0 < 5:
            app.processEvents()
        app.processEvents()  # the repaint the new data asked for
        painted = time.perf_counter()
        panel.rendered.disconnect()
        to_signal.append(done[0] - t0 if done else 5.0)
        to_paint.append(painted - t0 if done else 5.0)
        settle(app, panel)
    return to_signal, to_paint


def _training_rows(app, panel) -> list[Row]:
    """GUI time spent drawing each training frame, and the event loop's lag while a fit runs, against
    the same timer's lag with nothing running (what the machine's own load costs)."""
    panel.set_params(depth=5, train_steps=600)
    settle(app, panel)
    idle_end = time.monotonic() + 3.0
    idle = max_timer_gap(app, lambda: time.monotonic() < idle_end)
    slot_ms: list[float] = []
    draw = panel._draw_fit

    def timed(frame):
        t0 = time.perf_counter()
        draw(frame)
        slot_ms.append((time.perf_counter() - t0) * 1000)

    panel._draw_fit = timed
    panel.train()
    lag = max_timer_gap(app, panel.is_busy)
    panel._draw_fit = draw
    worst = max(slot_ms) if slot_ms else 0.0
    return [
        Row(f"GUI time drawing a training frame (max of {len(slot_ms)})", worst, "ms", "≤ 50 ms", worst <= 50,
            "median", statistics.median(slot_ms) if slot_ms else None),
        Row("event-loop lag while training (max)", lag, "ms", "≤ 50 ms", lag <= 50,
            "same timer, nothing running", idle),
    ]


def run() -> list[Row]:
    app = offscreen_app()
    from app.panels.depth import DepthPanel, theory_job
    from app.runner import Runner
    from core.depth import DepthParams

    runner = Runner()
    panel = DepthPanel(runner)
    panel.resize(1500, 950)
    panel.show()
    panel.refresh()
    settle(app, panel)
    depths = [2 + i % 9 for i in range(REPEATS)]
    ms = [1 + (i * 5) % 12 for i in range(REPEATS)]
    depth_signal, depth_paint = _slider_latencies(app, panel, "depth", depths)
    m_signal, m_paint = _slider_latencies(app, panel, "m", ms)
    direct = median_seconds(lambda: theory_job(DepthParams(depth=10, m=12)), repeat=15)
    training = _training_rows(app, panel)
    runner.shutdown()

    def row(name: str, seconds: list[float], target: bool) -> Row:
        value = statistics.median(seconds) * 1000
        return Row(name, value, "ms", "≤ 30 ms" if target else "", value <= 30 if target else None,
                   "theory job alone", direct * 1000)

    return [
        row(f"depth slider → plots 1–3 rendered (median of {REPEATS})", depth_signal, True),
        row(f"m slider → plots 1–3 rendered (median of {REPEATS})", m_signal, True),
        row("depth slider → plots 1–3 repainted", depth_paint, False),
        row("m slider → plots 1–3 repainted", m_paint, False),
        *training,
    ]
