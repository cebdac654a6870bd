"""The app as a user feels it: start-up, slider-to-rendered latency, event-loop lag, memory.

Start-up is measured in a fresh process (``python -m tests.benchmarks.startup_probe``) so that no
import is already warm; the baseline row is a bare ``import torch`` in a fresh process, which the
theory path must not wait for.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from tests.benchmarks.event_loop import heartbeat, max_timer_gap, wait_for_events
from tests.benchmarks.harness import Row, app_launches, fresh_json


def _startup_rows() -> list[Row]:
    _, runs = app_launches(3)
    torch_import = statistics.median(
        fresh_json([sys.executable, "-c", "import time, json; t=time.perf_counter(); import torch; "
                    "print(json.dumps({'s': time.perf_counter()-t}))"])["s"] for _ in range(3))
    theory = statistics.median(r["theory_s"] for r in runs)
    dots = statistics.median(r["dots_s"] for r in runs)
    rss = statistics.median(r["rss_mb"] for r in runs)
    return [
        Row("launch → window with theory plots (later launches, median of 3)", theory, "s", "≤ 2 s", theory <= 2.0,
            "bare `import torch`", torch_import),
        Row("launch → first simulation dots", dots, "s", "≤ 4 s", dots <= 4.0),
        Row("resident memory after start", rss, "MB", "≤ 600 MB", rss <= 600),
    ]


def _interactive_rows() -> list[Row]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from app.panels.propagation import PropagationPanel
    from app.runner import Runner

    app = QApplication.instance() or QApplication([])
    runner = Runner()
    panel = PropagationPanel(runner)
    panel.resize(1500, 950)
    panel.show()
    beat = heartbeat()

    def settle(timeout=120.0):
        end = time.monotonic() + timeout
        while (panel.is_busy() or panel.render_count == 0) and time.monotonic() < end:
            wait_for_events(app)

    panel.set_params(width=1000, depth=30, seeds=3)
    settle()
    # Slider → theory on screen: from the slider move to the moment every theory plot at the new value
    # has its data (the panel's `rendered`), and to the end of the repaint that shows it.
    theory_key = "propagation:theory"
    drawn, painted = [], []
    for i in range(40):
        value = 1.2 + 0.01 * (i % 20)
        done: list[float] = []
        panel.rendered.connect(lambda sink=done: sink.append(time.perf_counter()))
        t0 = time.perf_counter()
        panel.controls.controls["sigma_w"].slider.setValue(value)
        while (not done or runner.is_busy(theory_key)) and time.perf_counter() - t0 < 5:
            wait_for_events(app)
        app.processEvents()  # the repaints the new data asked for
        painted.append(time.perf_counter() - t0)
        panel.rendered.disconnect()
        drawn.append(done[-1] - t0 if done else 5.0)
        runner.cancel("propagation:simulation")
        settle()
    latency = statistics.median(drawn)
    on_screen = statistics.median(painted)

    # Event-loop lag while a simulation runs.
    panel.set_params(width=2000, depth=60, seeds=5)
    while not runner.is_busy("propagation:simulation"):
        wait_for_events(app)
    worst = max_timer_gap(app, lambda: runner.is_busy("propagation:simulation"))
    runner.shutdown()
    beat.stop()
    return [
        Row("slider → every theory plot has its data (median of 40)", latency * 1000, "ms", "≤ 50 ms",
            latency <= 0.05),
        Row("slider → … and repainted on screen (median of 40)", on_screen * 1000, "ms", "≤ 50 ms",
            on_screen <= 0.05),
        Row("event-loop lag during a 2000×60 simulation (max)", worst, "ms", "≤ 50 ms", worst <= 50,
            "timer period", 5.0),
    ]


def run() -> list[Row]:
    return _startup_rows() + _interactive_rows()
