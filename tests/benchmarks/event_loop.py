"""Event-loop lag: how long the GUI thread went without serving a 5 ms timer while something ran."""

from __future__ import annotations

import os
import time


def offscreen_app():
    """The QApplication of a benchmark run, offscreen unless a platform is already chosen."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication([])


def settle(app, panel, timeout: float = 120.0) -> None:
    """Until every job of ``panel`` is done and its drawing painted (so no earlier repaint is timed with
    the next move)."""
    end = time.monotonic() + timeout
    while (panel.is_busy() or panel.render_count == 0) and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.001)
    for _ in range(3):
        time.sleep(0.01)
        app.processEvents()


def wait_for_events(app) -> None:
    """Process events, sleeping until one comes as a real event loop does (a hot loop of
    processEvents would hold the interpreter lock and starve the worker threads it is timing)."""
    from PySide6.QtCore import QEventLoop

    app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)


def heartbeat(period_ms: int = 10):
    """A running timer, so that :func:`wait_for_events` always wakes up; keep a reference to it."""
    from PySide6.QtCore import QTimer

    timer = QTimer()
    timer.start(period_ms)
    return timer


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
        wait_for_events(app)
    timer.stop()
    return max(gaps) if gaps else 0.0
