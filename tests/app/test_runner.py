"""The runner: latest wins, stale results dropped, partial results, errors, cancel, clean shutdown."""

from __future__ import annotations

import threading
import time

import pytest

from app.runner import Job, Runner


@pytest.fixture
def runner(qapp):
    r = Runner()
    yield r
    assert r.shutdown(10_000)
    assert r.active_threads() == 0


def slow_square(x, delay=0.05):
    time.sleep(delay)
    return x * x


def counting(n, delay=0.01):
    for i in range(n):
        time.sleep(delay)
        yield i


def test_result_reaches_the_gui_thread(runner, qtbot):
    got = []
    main = threading.get_ident()
    runner.submit(Job("k", slow_square, (3,), on_result=lambda v: got.append((v, threading.get_ident()))))
    qtbot.waitUntil(lambda: bool(got), timeout=5000)
    assert got == [(9, main)]


def test_latest_wins_and_a_burst_costs_few_computations(runner, qtbot):
    calls, got = [], []

    def work(x):
        calls.append(x)
        time.sleep(0.03)
        return x

    for i in range(200):
        runner.submit(Job("k", work, (i,), on_result=got.append))
    qtbot.waitUntil(lambda: not runner.is_busy("k"), timeout=10_000)
    assert got == [199], "only the last request may be drawn"
    assert len(calls) <= 3, f"{len(calls)} computations for one burst"


def test_generator_partials_arrive_in_order_and_can_be_cancelled(runner, qtbot):
    parts = []
    runner.submit(Job("g", counting, (1000,), on_partial=parts.append))
    qtbot.waitUntil(lambda: len(parts) >= 5, timeout=5000)
    runner.cancel("g")
    qtbot.waitUntil(lambda: not runner.is_busy("g"), timeout=5000)
    n = len(parts)
    qtbot.wait(100)
    assert parts == list(range(n)) and n < 1000


def test_a_cancelled_job_inside_no_grad_leaves_its_thread_with_gradients_on(runner, qtbot):
    import torch

    runner._pool.setMaxThreadCount(1)       # the next job runs on the same pool thread

    def without_grad():
        with torch.no_grad():
            for i in range(10_000):
                time.sleep(0.005)
                yield i

    parts, seen = [], []
    runner.submit(Job("g", without_grad, on_partial=parts.append))
    qtbot.waitUntil(lambda: len(parts) >= 3, timeout=5000)
    runner.cancel("g")
    qtbot.waitUntil(lambda: not runner.is_busy("g"), timeout=5000)
    runner.submit(Job("next", torch.is_grad_enabled, on_result=seen.append))
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)
    assert seen == [True]


def test_errors_are_reported_not_raised_including_runtime_errors(runner, qtbot):
    errors = []

    def torch_like_failure():
        raise RuntimeError("CUDA out of memory while allocating 8 GiB\n  traceback line")
        yield  # pragma: no cover

    def value_error():
        raise ValueError("width must be positive")

    with qtbot.waitSignal(runner.failed, timeout=5000) as sig:
        runner.submit(Job("a", torch_like_failure, on_error=errors.append, label="sim"))
    assert sig.args[2] == "CUDA out of memory while allocating 8 GiB"
    runner.submit(Job("b", value_error, on_error=errors.append))
    qtbot.waitUntil(lambda: len(errors) == 2, timeout=5000)
    assert errors[1] == "width must be positive"


def test_debounced_jobs_run_once_after_the_burst(runner, qtbot):
    calls = []
    for i in range(20):
        runner.submit(Job("d", calls.append, (i,), delay_ms=80))
    qtbot.waitUntil(lambda: bool(calls), timeout=5000)
    qtbot.wait(150)
    assert calls == [19]


def test_long_jobs_announce_themselves_for_a_progress_bar(runner, qtbot):
    with qtbot.waitSignal(runner.long_running, timeout=5000, check_params_cb=lambda k, _l, on: on):
        runner.submit(Job("slow", slow_square, (2, 0.8), label="slow"))
    with qtbot.waitSignal(runner.long_running, timeout=5000, check_params_cb=lambda k, _l, on: not on):
        pass


def test_shutdown_stops_generators_promptly(qapp):
    r = Runner()
    r.submit(Job("g", counting, (100_000, 0.005)))
    time.sleep(0.1)
    t0 = time.perf_counter()
    assert r.shutdown(5000)
    assert time.perf_counter() - t0 < 1.0
    assert r.active_threads() == 0
