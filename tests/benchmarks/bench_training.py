"""Training-layer benchmarks (issue 8), CPU.

Targets: one digits epoch of the 64-128-128-10 MLP (batch 64) ≤ 60 ms (baseline: a hand-written torch loop
over the same batches, no records, no divergence checks); 8 optimisers × 20 epochs trained as one batched
model ≤ 5 s and ≥ 3× faster than the same 8 runs one after another with ``train`` in the same run; the GUI
thread never stalls > 50 ms while a training job streams records through the runner (baseline: the same
timer with nothing running).

Each timing row has a twin measured in process CPU time in the same runs: on a shared machine the wall time
also counts the time other processes hold the cores, the CPU time is what the work itself costs.
"""

from __future__ import annotations

import gc
import os
import statistics
import time

from tests.benchmarks.event_loop import max_timer_gap
from tests.benchmarks.harness import Row

OPTIMIZERS = ("gd", "sgd", "heavy_ball", "nesterov", "adagrad", "adagrad_norm", "rmsprop", "adam")
LRS = (0.5, 0.1, 0.05, 0.05, 0.01, 1.0, 1e-3, 1e-3)
EPOCHS = 20


def wall_and_cpu(fn, repeat: int, warmup: int = 1) -> tuple[float, float]:
    """Median wall and median process CPU seconds of ``fn()``: on a shared machine the CPU time is what the
    work itself costs, the wall time what it costs while other processes take the cores."""
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(repeat):
        gc.collect()
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def _epoch_rows() -> list[Row]:
    import torch
    import torch.nn.functional as F

    from core import data, nets, training

    digits = data.load("digits")
    model = nets.build(nets.DIGITS_MLP, seed=0)

    def ours():
        for _ in training.train(model, digits, optimizer="sgd", lr=0.05, epochs=1, batch_size=64, every=10_000):
            pass

    plain = nets.build(nets.DIGITS_MLP, seed=0)
    opt = torch.optim.SGD(plain.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(0)

    def hand_written():
        order = torch.randperm(digits.n_train, generator=g)
        for start in range(0, digits.n_train, 64):
            idx = order[start:start + 64]
            opt.zero_grad()
            F.cross_entropy(plain(digits.x_train[idx]), digits.y_train[idx]).backward()
            opt.step()

    t, t_cpu = (1000 * v for v in wall_and_cpu(ours, repeat=9))
    base, base_cpu = (1000 * v for v in wall_and_cpu(hand_written, repeat=9))
    name = "one digits epoch, 64-128-128-10 MLP, batch 64 (train, with test eval)"
    return [Row(name, t, "ms", "≤ 60 ms", t <= 60, "hand-written torch loop", base),
            Row(f"{name}, CPU time", t_cpu, "ms", "≤ 60 ms", t_cpu <= 60, "hand-written torch loop", base_cpu)]


def _batched_rows() -> list[Row]:
    from core import data, nets, training

    digits = data.load("digits")

    def batched():
        models = [nets.build(nets.DIGITS_MLP, seed=k) for k in range(8)]
        for _ in training.train_many(models, digits, optimizer=list(OPTIMIZERS), lr=list(LRS), seed=list(range(8)),
                                     epochs=EPOCHS, batch_size=64):
            pass

    def one_after_another():
        for k, (name, lr) in enumerate(zip(OPTIMIZERS, LRS, strict=True)):
            model = nets.build(nets.DIGITS_MLP, seed=k)
            for _ in training.train(model, digits, optimizer=name, lr=lr, seed=k, epochs=EPOCHS, batch_size=64):
                pass

    def compute_only():
        # The same 8 stacked forward and backward passes on batches of 64, nothing else (no optimiser
        # steps, records or checks): what the batched run could cost at best on this machine.
        import torch
        import torch.nn.functional as F

        spec = nets.DIGITS_MLP        # ReLU between its layers
        sizes = (spec.inputs, *spec.widths, spec.outputs)
        # He-scaled as the nets are: unscaled weights blow the logits up and the backward pass then runs on
        # denormal gradients, several times slower, which would raise this floor
        ws = [(torch.randn(8, o, i) * (2 / i) ** 0.5).requires_grad_() for i, o in zip(sizes[:-1], sizes[1:],
                                                                                       strict=True)]
        bs = [torch.zeros(8, 1, o, requires_grad=True) for o in sizes[1:]]
        x, y = digits.x_train, digits.y_train
        ticks = EPOCHS * -(-digits.n_train // 64)
        index = torch.randint(0, digits.n_train, (8, 64))
        for _ in range(ticks):
            h = x[index]
            for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
                h = torch.baddbmm(b, h, w.transpose(1, 2))
                h = torch.relu(h) if i < len(ws) - 1 else h
            loss = F.cross_entropy(h.reshape(-1, spec.outputs), y[index].reshape(-1))
            torch.autograd.grad(loss, ws + bs)

    many, many_cpu = wall_and_cpu(batched, repeat=3)
    alone, alone_cpu = wall_and_cpu(one_after_another, repeat=3)
    floor, _ = wall_and_cpu(compute_only, repeat=3)
    name = f"8 optimisers × {EPOCHS} digits epochs, batched (train_many)"
    return [
        Row(name, many, "s", "≤ 5 s", many <= 5, "8 train() runs one after another", alone),
        Row(f"{name}, CPU time", many_cpu, "s", "≤ 5 s", many_cpu <= 5, "8 train() runs, CPU time", alone_cpu),
        Row("batched speed-up over one after another", alone / many, "×", "≥ 3×", alone / many >= 3),
        Row("batched speed-up, CPU time", alone_cpu / many_cpu, "×", "≥ 3×", alone_cpu / many_cpu >= 3),
        Row("the batched passes alone (no steps, records, checks)", floor, "s", "", None,
            "the batched run", many),
        Row("ceiling on the speed-up these passes leave", alone / floor, "×", "", None),
    ]


def _gui_rows() -> list[Row]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from app.runner import Job, Runner
    from core import data, nets, training

    app = QApplication.instance() or QApplication([])
    digits = data.load("digits")
    runner = Runner()
    idle_end = time.monotonic() + 2.0
    idle = max_timer_gap(app, lambda: time.monotonic() < idle_end)
    seen = []
    model = nets.build(nets.DIGITS_MLP, seed=0)
    runner.submit(Job(key="bench:train", fn=training.train, args=(model, digits),
                      kwargs=dict(optimizer="adam", lr=1e-3, epochs=15, batch_size=64, every=5),
                      on_partial=seen.append, on_result=lambda r: None, label="train"))
    lag = max_timer_gap(app, lambda: runner.is_busy("bench:train"))
    runner.shutdown()
    return [Row(f"event-loop lag while training streams {len(seen)} records (max)", lag, "ms", "≤ 50 ms",
                lag <= 50, "same timer, nothing running", idle)]


def run() -> list[Row]:
    return [*_epoch_rows(), *_batched_rows(), *_gui_rows()]
