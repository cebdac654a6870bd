"""Event-loop lag: how long the GUI thread went without serving a 5 ms timer while something ran."""

from __future__ import annotations


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
