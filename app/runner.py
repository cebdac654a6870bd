"""The one way work leaves the GUI thread.

Jobs are engine functions (plain or generators) run in superqt workers on a thread pool owned by the
runner. Per job key the latest request wins: a newer request supersedes the running one (a generator
is asked to stop at its next yield) and at most one request waits behind it, so a burst of 200
slider moves costs two computations, not 200. Results of superseded requests are dropped, never drawn.
"""

from __future__ import annotations

import gc
import inspect
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal
from superqt.utils import GeneratorWorker

from app import pacing
from app.pacing import Pacer

LONG_JOB_MS = 500
#: Results are drawn in turns of the event loop: the deliveries of one turn stop once the loop has been
#: held this long (see :mod:`app.pacing`), the rest wait for the next turn.
DELIVERY_BUDGET_S = 0.012


class JobError(Exception):
    """An engine failed; the message is what the user sees (never a traceback)."""


@dataclass
class Job:
    """A request: ``fn(*args, **kwargs)`` with callbacks that run on the GUI thread."""

    key: str
    fn: Callable
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    on_result: Callable[[Any], None] | None = None
    on_partial: Callable[[Any], None] | None = None
    on_error: Callable[[str], None] | None = None
    delay_ms: int = 0
    label: str = ""
    device: str = ""


def _as_generator(fn: Callable, args: tuple, kwargs: dict):
    """Run ``fn`` as a generator of partial results, its last value or return value being the result.

    Exceptions become JobError: superqt's generator worker treats a RuntimeError (which torch raises
    for ordinary failures) as a deleted worker and would swallow it without a finished signal.
    """
    out = None
    try:
        out = fn(*args, **kwargs)
        if inspect.isgenerator(out):
            last = None
            for last in out:
                yield ("partial", last)
            return last
        return out
    except GeneratorExit:
        raise
    except Exception as exc:
        raise JobError(_message(exc)) from exc
    finally:
        if inspect.isgenerator(out):
            out.close()


class _Worker(GeneratorWorker):
    """superqt's generator worker, whose generator is closed in the worker's own thread when the job ends
    or is cancelled (superqt leaves a cancelled one suspended): a job suspended inside ``with
    torch.no_grad()`` would otherwise leave the pool thread's (thread-local) grad mode off for every later
    job on it ("element 0 of tensors does not require grad")."""

    def work(self):
        try:
            return super().work()
        finally:
            self._gen.close()


def _message(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


_frozen: set[str] = set()


def _freeze_modules() -> None:
    """Exempt what is alive once the app (and later torch) has been imported from the cyclic garbage
    collector: torch's ~10⁵ long-lived objects otherwise make every full collection a ~150 ms pause
    of every thread, GUI included, in the middle of a simulation."""
    for name in ("app.window", "torch"):
        if name not in _frozen and name in sys.modules:
            _frozen.add(name)
            gc.freeze()


def freeze_long_lived() -> None:
    """Exempt everything alive now from the cyclic collector, after a stretch that made objects that live
    as long as the app (the warm-up's imports, a panel's widgets and plot items). The collector walks every
    object it tracks in each full collection, and it holds every thread meanwhile: after the warm-up's
    imports one collection during a tab's first show took 184 ms. What dies among the frozen (a build's
    few temporaries) is never collected: a bounded cost, paid once per panel."""
    gc.freeze()


class Runner(QObject):
    """Runs jobs off the GUI thread; latest wins per key; reports timings, errors and activity."""

    #: key, label, seconds, device — a job's final result was delivered.
    done = Signal(str, str, float, str)
    #: key, label, message.
    failed = Signal(str, str, str)
    #: key, label, running — emitted when a job has run longer than LONG_JOB_MS (True), and when the
    #: key's work ends, long or not, with nothing more pending (False).
    long_running = Signal(str, str, bool)

    def __init__(self, parent: QObject | None = None, max_threads: int = 4):
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._generation: dict[str, int] = {}
        self._pending: dict[str, tuple[int, Job]] = {}
        self._running: dict[str, GeneratorWorker] = {}
        self._timers: dict[str, QTimer] = {}
        self._long: set[str] = set()
        self._closed = False
        self._pacer = Pacer(self)
        #: What workers sent, drawn in order a few per turn: (key, callback).
        self._deliveries: deque[tuple[str, Callable[[], None]]] = deque()
        self._drain_timer = QTimer(self)
        self._drain_timer.setSingleShot(True)
        self._drain_timer.timeout.connect(self._drain)

    # -- requests -------------------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Ask for ``job``; any earlier request under the same key is superseded."""
        if self._closed:
            return
        gen = self._generation.get(job.key, 0) + 1
        self._generation[job.key] = gen
        self._pending[job.key] = (gen, job)
        if job.delay_ms > 0:
            timer = self._timers.get(job.key)
            if timer is None:
                timer = self._timers[job.key] = QTimer(self)
                timer.setSingleShot(True)
                timer.timeout.connect(lambda k=job.key: self._launch(k))
            timer.start(job.delay_ms)
        else:
            self._launch(job.key)

    def cancel(self, key: str) -> None:
        """Stop ``key``'s job; whatever it still produces is dropped."""
        self._generation[key] = self._generation.get(key, 0) + 1
        self._pending.pop(key, None)
        if key in self._timers:
            self._timers[key].stop()
        worker = self._running.get(key)
        if worker is not None:
            worker.quit()

    def is_busy(self, key: str | None = None) -> bool:
        """Whether ``key`` (or any job) is running, waiting or scheduled."""
        queued = {k for k, _ in self._deliveries}
        keys = [key] if key is not None else set(self._running) | set(self._pending) | queued
        return any(k in self._running or k in self._pending or k in queued for k in keys)

    def shutdown(self, msecs: int = 10_000) -> bool:
        """Stop every job and wait for the threads; True when all stopped in time."""
        self._closed = True
        self._pacer.set_active(False)
        for key in list(self._generation):
            self.cancel(key)
        return self._pool.waitForDone(msecs)

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` began: jobs that can stop between their own steps should."""
        return self._closed

    def active_threads(self) -> int:
        return self._pool.activeThreadCount()

    # -- machinery ------------------------------------------------------------------------------
    def _launch(self, key: str) -> None:
        running = self._running.get(key)
        if running is not None:
            running.quit()  # the pending request starts when this one finishes
            return
        if key not in self._pending:
            return
        gen, job = self._pending.pop(key)
        worker = _Worker(_as_generator, job.fn, job.args, job.kwargs)
        started = time.perf_counter()
        worker.yielded.connect(lambda item, g=gen, j=job: self._queue(key, lambda: self._on_partial(j, g, item)))
        worker.returned.connect(lambda value, g=gen, j=job, t=started:
                                self._queue(key, lambda: self._on_result(j, g, value, t)))
        worker.errored.connect(lambda exc, g=gen, j=job: self._queue(key, lambda: self._on_error(j, g, exc)))
        # in the same queue as what it sent, so that its end is handled after its last result is drawn
        worker.finished.connect(lambda w=worker: self._queue(key, lambda: self._on_finished(key, w)))
        self._running[key] = worker
        QTimer.singleShot(LONG_JOB_MS, self, lambda k=key, w=worker, j=job: self._mark_long(k, w, j))
        self._pacer.set_active(True)
        self._pool.start(worker)

    def _queue(self, key: str, deliver: Callable[[], None]) -> None:
        self._deliveries.append((key, deliver))
        if not self._drain_timer.isActive():
            self._drain_timer.start(0)

    def _drain(self) -> None:
        """Deliver what workers sent, in order, until the event loop has been held long enough this turn:
        results arriving together (a panel's first jobs) each draw in a turn of their own, and the
        window repaints and serves its timers between them."""
        start = time.perf_counter()
        while self._deliveries:
            _key, deliver = self._deliveries.popleft()
            deliver()       # once closed, results are dropped (_current) but each worker's end is handled
            if pacing.turn_over(start, DELIVERY_BUDGET_S):
                break
        if self._deliveries:
            self._drain_timer.start(0)

    def _current(self, job: Job, gen: int) -> bool:
        return not self._closed and self._generation.get(job.key) == gen

    def _on_partial(self, job: Job, gen: int, item: Any) -> None:
        if self._current(job, gen) and job.on_partial is not None:
            self._deliver(job, job.on_partial, item[1])

    def _on_result(self, job: Job, gen: int, value: Any, started: float) -> None:
        if not self._current(job, gen):
            return
        if job.on_result is not None and value is not None:
            if not self._deliver(job, job.on_result, value):
                return
        # A result that knows where it was computed (a Simulation's .device) says so in the status bar.
        device = getattr(value, "device", None) or job.device
        self.done.emit(job.key, job.label, time.perf_counter() - started, str(device))

    def _on_error(self, job: Job, gen: int, exc: BaseException) -> None:
        if not self._current(job, gen):
            return
        message = _message(exc)
        if job.on_error is not None:
            job.on_error(message)
        self.failed.emit(job.key, job.label, message)

    def _deliver(self, job: Job, callback: Callable, value: Any) -> bool:
        """Call a GUI-side callback; a drawing bug is reported like an engine error, not raised."""
        try:
            callback(value)
        except Exception as exc:  # noqa: BLE001 - shown to the user in the panel and status bar
            message = f"could not draw the result: {_message(exc)}"
            if job.on_error is not None:
                job.on_error(message)
            self.failed.emit(job.key, job.label, message)
            return False
        return True

    def _mark_long(self, key: str, worker: GeneratorWorker, job: Job) -> None:
        if self._running.get(key) is worker:
            self._long.add(key)
            self.long_running.emit(key, job.label, True)

    def _on_finished(self, key: str, worker: GeneratorWorker) -> None:
        _freeze_modules()
        if self._running.get(key) is worker:
            del self._running[key]
        self._pacer.set_active(bool(self._running) and not self._closed)
        if key not in self._pending:
            # said for a short job too: a panel that kept its busy box up for this one, when another
            # of its long jobs ended first, takes it down now
            self._long.discard(key)
            self.long_running.emit(key, "", False)
        timer = self._timers.get(key)
        if key in self._pending and not self._closed and (timer is None or not timer.isActive()):
            self._launch(key)
