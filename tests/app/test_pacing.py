"""The GUI thread first: workers wait at core.pace.pace() while the event loop is held, never on the GUI
thread, never for long; results arriving together are drawn a few per turn, in order, and the runner
counts them as busy until drawn."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from app import pacing
from app.runner import Job, Runner
from core import pace


@pytest.fixture
def runner(qapp):
    r = Runner()
    yield r
    assert r.shutdown(10_000)


def _timed_pace_in_a_worker() -> float:
    took = []

    def work():
        t = time.perf_counter()
        pace.pace()
        took.append(time.perf_counter() - t)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(5)
    return took[0]


def test_pace_does_nothing_without_an_app():
    pace.install(None)
    t = time.perf_counter()
    for _ in range(10_000):
        pace.pace()
    assert time.perf_counter() - t < 0.5


def test_a_worker_waits_while_the_event_loop_is_held_but_never_long(runner, qtbot):
    release = threading.Event()
    runner.submit(Job("hold", release.wait, (10,)))      # a running job switches the pacer on
    try:
        qtbot.waitUntil(lambda: pace._hook is not None, timeout=5000)
        qtbot.wait(30)                                   # the event loop served: the stamp is fresh
        assert _timed_pace_in_a_worker() < pacing.BEHIND_S
        time.sleep(0.05)                                 # the GUI thread held, as by a long paint
        waited = _timed_pace_in_a_worker()
        assert pacing.MAX_WAIT_S * 0.8 <= waited < pacing.MAX_WAIT_S + 0.05, waited
        assert pacing.behind(0.04)
        t = time.perf_counter()
        pace.pace()                                      # on the GUI thread itself: no wait
        assert time.perf_counter() - t < 0.005
    finally:
        release.set()
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=5000)
    assert pace._hook is None and not pacing.behind(0.0), "the pacer stops with the last job"


def test_results_arriving_together_are_drawn_in_turns_in_order_and_count_as_busy(runner, qtbot):
    drawn, turns = [], []
    gate = threading.Event()

    def draw(value):
        drawn.append(value)
        turns.append(time.perf_counter())
        time.sleep(0.008)                    # a result's drawing: two fit the budget of one turn at most

    def parts():
        gate.wait(5)
        yield from range(6)

    runner.submit(Job("k", parts, on_partial=draw))
    gate.set()
    qtbot.waitUntil(lambda: len(drawn) >= 1, timeout=5000)
    assert runner.is_busy("k") or len(drawn) == 6
    qtbot.waitUntil(lambda: not runner.is_busy("k"), timeout=5000)
    assert drawn == list(range(6))


def test_the_interpreter_hands_its_lock_over_often_only_while_jobs_run(runner, qtbot):
    # a paint waits for the lock at each of its dozens of calls into Python; 5 ms turns made them a convoy
    idle = sys.getswitchinterval()
    release = threading.Event()
    runner.submit(Job("hold", release.wait, (10,)))
    try:
        qtbot.waitUntil(lambda: pace._hook is not None, timeout=5000)
        assert sys.getswitchinterval() == pytest.approx(pacing.SWITCH_INTERVAL_S)
    finally:
        release.set()
    qtbot.waitUntil(lambda: pace._hook is None, timeout=5000)
    assert sys.getswitchinterval() == pytest.approx(idle)
