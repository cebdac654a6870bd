"""The GUI thread first: while it is behind, workers wait at :func:`core.pace.pace`, and the GUI's own
deferrable work (drawing results, fitting plots) waits a turn.

While any job runs, a 4 ms timer on the GUI thread stamps the time whenever it is served. The stamp's age
says how long the event loop has been held: by a paint, a panel's build, a chain of handlers served in
one pass, or the interpreter lock held by a worker.

- A worker calling ``pace()`` while the stamp is older than :data:`BEHIND_S` sleeps (which releases the
  lock) until the timer is served again, :data:`MAX_WAIT_S` at most, then runs on for :data:`MIN_RUN_S`
  before it waits again: a GUI thread blocked for long (a modal dialog, a test waiting on the pool)
  slows jobs by a bounded factor and never stops them.
- The GUI thread asks :func:`behind` before each deferrable step and leaves the rest to a later turn.
- While jobs run, the interpreter hands its lock over every :data:`SWITCH_INTERVAL_S` rather than every
  5 ms: a paint calls from Qt into Python dozens of times, each a wait for the lock a worker's Python
  holds, and six plots that repaint in 15 ms alone took 57 ms beside a busy worker (27 ms at 0.5 ms).
"""

from __future__ import annotations

import sys
import threading
import time

import shiboken6
from PySide6.QtCore import QObject, QTimer

from core import pace

PERIOD_MS = 4
BEHIND_S = 0.008
MAX_WAIT_S = 0.025
MIN_RUN_S = 0.010
NAP_S = 0.001
SWITCH_INTERVAL_S = 0.0005
_idle_switch_interval = [sys.getswitchinterval()]

_active: list[Pacer] = []


def behind(limit_s: float) -> bool:
    """Whether the event loop has been held for ``limit_s`` or longer (known only while jobs run; False
    otherwise)."""
    pacer = _newest()
    return pacer is not None and time.perf_counter() - pacer.stamp >= limit_s


def turn_over(start: float, budget_s: float) -> bool:
    """Whether a turn's deferrable work begun at ``start`` (``perf_counter``) should leave the rest to the
    next turn: it took ``budget_s``, or the event loop has been held that long with what ran before it."""
    return time.perf_counter() - start >= budget_s or behind(budget_s)


def _newest() -> Pacer | None:
    live = [p for p in _active if shiboken6.isValid(p)]
    return live[-1] if live else None


def _forget(pacer: Pacer) -> None:
    if pacer in _active:
        _active.remove(pacer)
        newest = _newest()
        pace.install(newest.wait_for_gui if newest is not None else None)
        if newest is None:
            sys.setswitchinterval(_idle_switch_interval[0])


class Pacer(QObject):
    """Stamps the GUI thread's progress while ``active`` and makes workers wait while it is behind."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._gui = threading.get_ident()
        self.stamp = time.perf_counter()
        self._local = threading.local()
        self._timer = QTimer(self)
        self._timer.setInterval(PERIOD_MS)
        self._timer.timeout.connect(self._beat)
        self._on = False
        # a runner deleted with jobs still running (a test's, a closed window's) takes its pacer along
        self.destroyed.connect(lambda *_: _forget(self))

    def set_active(self, active: bool) -> None:
        """Stamp while jobs run (a 4 ms timer costs nothing then); stop when the pool is idle."""
        if active and not self._on:
            self.stamp = time.perf_counter()
            self._on = True
            self._timer.start()
            if not _active:
                _idle_switch_interval[0] = sys.getswitchinterval()
                sys.setswitchinterval(SWITCH_INTERVAL_S)
            _active.append(self)
            pace.install(self.wait_for_gui)
        elif not active and self._on:
            self._on = False
            self._timer.stop()
            _forget(self)

    def _beat(self) -> None:
        self.stamp = time.perf_counter()

    def wait_for_gui(self) -> None:
        """Called by workers (a no-op on the GUI thread): sleep while the GUI thread is behind."""
        if threading.get_ident() == self._gui:
            return
        now = time.perf_counter()
        if now - self.stamp < BEHIND_S or now < getattr(self._local, "free_until", 0.0):
            return
        end = now + MAX_WAIT_S
        while time.perf_counter() - self.stamp >= BEHIND_S and time.perf_counter() < end and self._on:
            time.sleep(NAP_S)
        self._local.free_until = time.perf_counter() + MIN_RUN_S
