"""Event-loop lag: how long the GUI thread went without serving a 5 ms timer while something ran."""

from __future__ import annotations

import time


def max_timer_gap(app, busy) -> float:
    """The largest gap (ms) between ticks of a 5 ms timer while ``busy()`` holds (after it first does)."""
    from PySide6.QtCore import QElapsedTimer, QTimer

    gaps, clock = [], QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    def tick():
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(5)
    while busy():
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    return max(gaps) if gaps else 0.0
