"""Trainability grids as a lecturer meets them (issue 13).

Targets: the 16 × 12 trainability grid (the "lecture" budget: 300 SGD steps per net, width 48, depths
4 … 48) trained in ≤ 3 min on the CPU, its first cells on screen ≤ 5 s after Train is pressed, and the
GUI never without its event loop for more than 50 ms meanwhile. Measured through the real panel
(offscreen), from the press of its "Train the grids" button. Baselines, measured in the same run: the
event loop's lag with nothing running, and the 16 networks of one depth trained one after the other
instead of as one stacked model. On a machine with CUDA the grid is timed there too.
"""

from __future__ import annotations

import time

from tests.benchmarks.event_loop import heartbeat, max_timer_gap, offscreen_app, wait_for_events
from tests.benchmarks.harness import Row

GRID_TARGET_S = 180.0
FIRST_CELLS_TARGET_S = 5.0
LAG_TARGET_MS = 50.0


def _panel_rows(app) -> list[Row]:
    from app.panels import trainability as TP
    from app.panels.propagation import PropagationPanel
    from app.runner import Runner
    from core import trainability as T

    T.clear_cache()
    runner = Runner()
    panel = PropagationPanel(runner)
    panel.resize(1280, 720)
    panel.show()
    beat = heartbeat()
    panel.set_params(width=200, depth=20, seeds=1)
    end = time.monotonic() + 120
    while (panel.is_busy() or panel.render_count == 0) and time.monotonic() < end:
        wait_for_events(app)
    # As the app's window does a moment after the panel first draws: load the digits (scikit-learn's
    # import holds the interpreter lock ~0.2 s) before anyone presses Train.
    TP.warm(panel)
    while runner.is_busy(TP.WARM_KEY) and time.monotonic() < end:
        wait_for_events(app)
    idle_end = time.monotonic() + 3.0
    idle = max_timer_gap(app, lambda: time.monotonic() < idle_end)

    section = panel.trainability
    first: list[float] = []
    done: list[float] = []
    t0 = time.perf_counter()

    def watch():
        r = section._results.get("sigma_w")
        if r is not None and not first:
            first.append(time.perf_counter() - t0)
        if r is not None and r.complete and not done:
            done.append(time.perf_counter() - t0)
        return not done and time.perf_counter() - t0 < 1200

    section.budget.setCurrentIndex(list(T.BUDGETS).index("lecture"))
    section.train_button.click()
    lag = max_timer_gap(app, watch)
    result = section._results.get("sigma_w")
    device = result.device if result is not None else "?"
    runner.shutdown()
    beat.stop()
    total = done[0] if done else float("inf")
    first_s = first[0] if first else float("inf")
    return [
        Row(f"16 × 12 trainability grid, Train pressed → complete ({device})", total, "s", "≤ 180 s",
            total <= GRID_TARGET_S),
        Row("… first cells on screen", first_s, "s", "≤ 5 s", first_s <= FIRST_CELLS_TARGET_S),
        Row("event-loop lag while the grid trains (max)", lag, "ms", "≤ 50 ms", lag <= LAG_TARGET_MS,
            "same timer, nothing running", idle),
    ]


def _batching_row() -> Row:
    """One depth's 16 nets as one stacked model, against the same 16 trained one at a time."""
    from core import data as D
    from core import trainability as T

    data = D.load("digits")
    budget = T.Budget(steps=100, depths=(12,))
    grid = T.Grid(budget=budget)

    def stacked():
        T.clear_cache()
        for _ in T.train_grid(grid, data):
            pass

    def one_by_one():
        stack = T._grid_stack(grid, 12, "cpu", data.inputs, data.classes)
        for k in range(stack.k):
            alone = T.Stack([w[k:k + 1].detach().clone().requires_grad_() for w in stack.weights],
                            [b[k:k + 1].detach().clone().requires_grad_() for b in stack.biases], grid.activation)
            for _ in T.train_stack(alone, data, steps=budget.steps, batch_size=budget.batch_size, lr=budget.lr,
                                   momentum=budget.momentum):
                pass

    t = time.perf_counter()
    stacked()
    batched = time.perf_counter() - t
    t = time.perf_counter()
    one_by_one()
    separate = time.perf_counter() - t
    return Row("one depth (L = 12, 16 nets, 100 steps), stacked", batched, "s", "", None,
               "16 nets one at a time", separate)


def _cuda_row() -> list[Row]:
    import torch

    if not torch.cuda.is_available():
        return []
    from core import data as D
    from core import trainability as T

    T.clear_cache()
    t = time.perf_counter()
    for _ in T.train_grid(T.Grid(budget=T.BUDGETS["lecture"]), D.load("digits"), device="cuda"):
        pass
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    return [Row(f"16 × 12 trainability grid on {torch.cuda.get_device_name()}", seconds, "s", "≤ 180 s",
                seconds <= GRID_TARGET_S)]


def run() -> list[Row]:
    app = offscreen_app()
    rows = _panel_rows(app)
    rows.append(_batching_row())
    rows += _cuda_row()
    return rows
