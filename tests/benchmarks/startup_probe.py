"""Run in a fresh process by bench_app: time from interpreter start to every theory plot of the Signal
Propagation tab painted (phase diagram, maps, through-depth lines, depth scales), and to simulation dots.

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


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import psutil
    from PySide6.QtWidgets import QApplication

    from app.window import MainWindow
    from tests.benchmarks.event_loop import heartbeat, wait_for_events

    app = QApplication.instance() or QApplication(sys.argv[:1])
    win = MainWindow(restore=False, tab="propagation")
    panel = win.panels["propagation"]
    win.show()
    theory = dots = None
    deadline = time.monotonic() + 120
    beat = heartbeat()
    while dots is None and time.monotonic() < deadline:
        wait_for_events(app)
        if theory is None and _has_data(panel.q_theory) and _has_data(panel.q_curve) \
                and _has_data(panel.xi_c_curve) and panel.phase_image.image is not None:
            app.processEvents()  # painted, not only handed to the plots
            theory = time.perf_counter() - T0
        if _has_data(panel.q_sim):
            app.processEvents()
            dots = time.perf_counter() - T0
    rss = psutil.Process().memory_info().rss / 2**20
    beat.stop()
    win.close()
    print(json.dumps({"theory_s": theory, "dots_s": dots, "rss_mb": rss}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
