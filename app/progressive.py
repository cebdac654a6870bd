"""Building a panel without freezing the window: while a tab shown the first time builds its panel, the
steps that make widgets (each control, each plot, each curve) first serve the event loop (timers and
repaints, not the user's input) when it has waited :data:`SERVE_EVERY_S`, so that a panel of nine plots
and twenty controls (~300 ms of widgets) never holds the window for more than a few tens of ms."""

from __future__ import annotations

import time
from contextlib import contextmanager

#: While building progressively, the event loop is served when this long has passed since it last was.
SERVE_EVERY_S = 0.01
_depth = [0]
_last_served = [0.0]


@contextmanager
def progressive():
    """Build what is made inside progressively (see the module docstring); nests."""
    _depth[0] += 1
    try:
        yield
    finally:
        _depth[0] -= 1


def building_progressively() -> bool:
    """Whether a panel is being built for a tab shown the first time (inside :func:`progressive`)."""
    return _depth[0] > 0


def serve_events() -> None:
    """A step of a progressive build: serve the event loop if it has waited long enough (else nothing)."""
    if _depth[0] and time.perf_counter() - _last_served[0] >= SERVE_EVERY_S:
        _process_events()
        _last_served[0] = time.perf_counter()


def _process_events() -> None:
    from PySide6.QtCore import QCoreApplication, QEventLoop

    if QCoreApplication.instance() is not None:
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
