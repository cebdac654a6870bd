"""Run in a fresh process by bench_app: time from interpreter start to every theory plot of the Signal
Propagation tab painted (phase diagram, maps, through-depth lines, depth scales: the first paint of
each of their plots with the theory's data in it), and to simulation dots.

Prints one JSON line: ``{"theory_s": …, "dots_s": …, "rss_mb": …}``.
"""

from __future__ import annotations

import json
import os
import sys
import time

T0 = time.perf_counter()


def _has_data(item) -> bool:
    x, _ = item.getData()
    return x is not None and len(x) > 0


def _paint_clock(panel, ready: dict):
    """For each theory plot the time of its first real paint once ``ready[key]()`` (its theory drawn),
    whatever the probe's own loop was doing then (a paint put off to a later turn does not count); ``at``
    is the latest of them (every theory plot on screen), None until then."""
    from app import plots

    keys = {panel.plots[key]: key for key in ready}
    paint = plots._TurnTakingPlot.paintEvent

    class Clock:
        painted: dict = {}

        @property
        def at(self):
            return max(self.painted.values()) if len(self.painted) == len(ready) else None

    clock = Clock()

    def timed_paint(plot, event):
        before = getattr(plot, "eoc_paints", 0)
        paint(plot, event)
        key = keys.get(plot)
        if key is not None and getattr(plot, "eoc_paints", 0) > before and key not in clock.painted and ready[key]():
            clock.painted[key] = time.perf_counter() - T0

    plots._TurnTakingPlot.paintEvent = timed_paint
    return clock


def hall_screen() -> None:
    """An offscreen 1920×1080 screen, where the window opens at its own size (the default offscreen
    screen, 800×600, would show only the top row of plots)."""
    import tempfile

    if os.environ.get("QT_QPA_PLATFORM", "offscreen") == "offscreen":
        config = os.path.join(tempfile.mkdtemp(prefix="eoc_probe_"), "screen.json")
        with open(config, "w") as f:
            json.dump({"screens": [{"name": "hall", "x": 0, "y": 0, "width": 1920, "height": 1080,
                                    "logicalDpi": 96}]}, f)
        os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={config}"


def main() -> int:
    hall_screen()
    import psutil
    from PySide6.QtWidgets import QApplication

    from app.window import MainWindow
    from tests.benchmarks.event_loop import heartbeat, wait_for_events

    app = QApplication.instance() or QApplication(sys.argv[:1])
    win = MainWindow(restore=False, tab="propagation")
    panel = win.panels["propagation"]

    clock = _paint_clock(panel, {"phase": lambda: panel.phase_image.image is not None,
                                 "variance_map": lambda: _has_data(panel.q_curve),
                                 "variance_depth": lambda: _has_data(panel.q_theory),
                                 "depth_scales": lambda: _has_data(panel.xi_c_curve)})
    win.show()
    dots = None
    deadline = time.monotonic() + 120
    beat = heartbeat()
    while dots is None and time.monotonic() < deadline:
        wait_for_events(app)
        if _has_data(panel.q_sim):
            app.processEvents()
            dots = time.perf_counter() - T0
    rss = psutil.Process().memory_info().rss / 2**20
    beat.stop()
    win.close()
    print(json.dumps({"theory_s": clock.at, "dots_s": dots, "rss_mb": rss}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
