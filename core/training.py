"""The one training loop: a generator of records, cancellable, divergence-aware, deterministic for a seed.

:func:`train` trains one model and yields a :class:`TrainingRecord` every ``every`` optimiser steps (and
before the first and after the last). Closing the generator stops it at once: the work between two
records is ``every`` steps, so a panel's Cancel lands within one record. A NaN or inf loss raises
:class:`Diverged`, whose message names the step and the likely cause; no NaN ever reaches a record.

:func:`train_many` trains K networks of one spec (different seeds, optimisers, learning rates) together as
ONE batched model: their weights are stacked into ``(K, out, in)`` tensors, all K forward passes are one
``torch.baddbmm`` per layer, the K losses are summed and differentiated once, and each run keeps its own
``torch.optim`` optimiser over views of the stacked storage, so its in-place step writes straight into
the batch. Every run draws its mini-batches from its own seed exactly as :func:`train` does, so a batched
run equals K separate runs (to rounding). A run that diverges is frozen and reported while the others go on.

The loss is the cross-entropy for classification and ``(2m)⁻¹ Σ (ĥ − y)²`` — the mean of ½(ĥ − y)² — for
regression (THEORY.md §4). An epoch is one pass over a seeded random partition of the training set into
mini-batches (the last one smaller when the batch size does not divide n); ``gd`` (or ``batch_size`` None or
0) means full-batch gradient descent, one step per epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.pace import pace

SCHEDULES = ("constant", "1/k", "1/sqrt(k)", "cosine")
LOSSES = ("cross_entropy", "mse")
MAX_EPOCHS = 100_000
EVAL_CHUNK = 8192


class Diverged(RuntimeError):
    """The loss became NaN or inf; ``step`` is the optimiser step whose loss it was (1-based)."""

    def __init__(self, step: int, message: str, index: int | None = None):
        self.step = step
        self.index = index
        super().__init__(message)


@dataclass(frozen=True)
class TrainingRecord:
    """Where a run stands after ``step`` optimiser steps.

    ``train_loss`` is the mean mini-batch loss over the steps since the previous record (the full training
    loss for the record before the first step); ``test_loss`` and ``test_accuracy`` are on the whole test
    set (``test_accuracy`` is None for regression); ``grad_norm`` is ‖∇L‖₂ of the last step's mini-batch;
    ``lr`` the step size then; ``epoch`` the passes over the data so far (fractional mid-epoch);
    ``seconds`` the wall time since training started.
    """

    step: int
    epoch: float
    train_loss: float
    test_loss: float
    test_accuracy: float | None
    grad_norm: float
    lr: float
    seconds: float


@dataclass(frozen=True)
class ManyRecord:
    """A record of K runs trained together: every array has length K (run k in position k).

    ``alive[k]`` is False once run k diverged; its entries then stay at their last finite values (plot only
    ``values[alive]``: no NaN ever reaches a plot), and ``diverged`` lists ``(k, step)`` for each such run.
    ``models`` is set on the final record only: the K trained networks as ordinary ``nn.Module`` s.
    """

    step: np.ndarray
    epoch: float
    train_loss: np.ndarray
    test_loss: np.ndarray
    test_accuracy: np.ndarray | None
    grad_norm: np.ndarray
    lr: np.ndarray
    seconds: float
    alive: np.ndarray
    diverged: tuple[tuple[int, int], ...] = ()
    models: tuple | None = None

    @property
    def final(self) -> bool:
        return self.models is not None


# ---------------------------------------------------------------------------------------------------------
# pieces shared by train and train_many


def schedule_factor(schedule: str, total_steps: int) -> Callable[[int], float]:
    """The multiplier of η after k steps (k = 0 for the first step): constant 1, 1/(k+1), 1/√(k+1), or the
    cosine ½(1 + cos(πk/T)) over the T = ``total_steps`` of the run (Loshchilov & Hutter 2017, no restarts).
    1/k satisfies Robbins–Monro's Σ η_k = ∞, Σ η_k² < ∞ (THEORY.md §4)."""
    if schedule == "constant":
        return lambda k: 1.0
    if schedule == "1/k":
        return lambda k: 1.0 / (k + 1.0)
    if schedule == "1/sqrt(k)":
        return lambda k: 1.0 / math.sqrt(k + 1.0)
    if schedule == "cosine":
        total = max(int(total_steps), 1)
        return lambda k: 0.5 * (1.0 + math.cos(math.pi * min(k, total) / total))
    raise ValueError(f"schedule: unknown {schedule!r}; choose from {', '.join(SCHEDULES)}")


def _check_run(epochs, batch_size, every, n: int, optimizer: str) -> tuple[int, int, int | None]:
    if isinstance(epochs, bool) or not isinstance(epochs, int | float) or float(epochs) != int(epochs):
        raise ValueError(f"epochs must be a whole number, got {epochs!r}")
    if not 0 <= int(epochs) <= MAX_EPOCHS:
        raise ValueError(f"epochs = {epochs} is out of range [0, {MAX_EPOCHS}]")
    full = optimizer == "gd" or batch_size is None or batch_size == 0
    if not full and (isinstance(batch_size, bool) or not isinstance(batch_size, int | float)
                     or float(batch_size) != int(batch_size) or batch_size < 0):
        raise ValueError(f"batch_size must be a whole number ≥ 1 (or None for full batch), got {batch_size!r}")
    batch = n if full else min(int(batch_size), n)
    if every is not None and (isinstance(every, bool) or not isinstance(every, int | float)
                              or float(every) != int(every) or every < 1):
        raise ValueError(f"every must be a whole number ≥ 1, got {every!r}")
    return int(epochs), batch, None if every is None else int(every)


def _default_every(steps_per_epoch: int) -> int:
    """One record per epoch, but at least one every 25 steps so Cancel and the curves stay live."""
    return max(1, min(steps_per_epoch, 25))


def _loss_function(loss, task: str):
    """``loss(output, y) -> scalar`` (mean over the batch) for a name, a callable or None (the task's default)."""
    import torch.nn.functional as F

    if callable(loss):
        return loss
    name = loss or ("cross_entropy" if task == "classification" else "mse")
    if name == "cross_entropy":
        if task != "classification":
            raise ValueError("loss: cross_entropy needs class labels; this dataset is a regression")
        return F.cross_entropy
    if name == "mse":
        if task == "classification":
            def mse_one_hot(out, y):
                target = F.one_hot(y, out.shape[-1]).to(out.dtype)
                return 0.5 * (out - target).pow(2).sum(-1).mean()
            return mse_one_hot
        return lambda out, y: 0.5 * (out - y).pow(2).sum(-1).mean()
    raise ValueError(f"loss: unknown {name!r}; choose from {', '.join(LOSSES)}")


def evaluate(model, x, y, loss=None, chunk: int = EVAL_CHUNK) -> tuple[float, float | None]:
    """``(mean loss, accuracy)`` of ``model`` on ``(x, y)`` in evaluation mode (batch-norm population
    statistics), in chunks; accuracy is the fraction of argmax hits, None for regression targets."""
    import torch

    task = "classification" if y.dtype == torch.int64 else "regression"
    fn = _loss_function(loss, task)
    was_training = model.training
    model.eval()
    total, hits, n = 0.0, 0, int(x.shape[0])
    try:
        with torch.no_grad():
            for start in range(0, n, chunk):
                out = model(x[start:start + chunk])
                yy = y[start:start + chunk]
                total += float(fn(out, yy)) * len(yy)
                if task == "classification":
                    hits += int((out.argmax(-1) == yy).sum())
    finally:
        model.train(was_training)
    n = max(n, 1)
    return total / n, (hits / n if task == "classification" else None)


def _diverged_message(step: int, value: float, lr: float, which: str = "the loss") -> str:
    what = "NaN" if math.isnan(value) else "infinite"
    return (f"diverged at step {step}: {which} became {what} — the learning rate η = {lr:g} is probably "
            "too large")


def _permutation(generator, n: int, device):
    import torch

    return torch.randperm(n, generator=generator).to(device)


def _grad_norm(params) -> float:
    import torch

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))))


# ---------------------------------------------------------------------------------------------------------
# one model


def train(model, data, *, optimizer: str = "sgd", lr: float | None = None, epochs: int = 10,
          batch_size: int | None = 64, seed: int = 0, every: int | None = None, schedule: str = "constant",
          device=None, loss=None, step_hook: Callable | None = None, loss_fn: Callable | None = None,
          **hyper: Any) -> Iterator[TrainingRecord]:
    """Train ``model`` in place on ``data``, yielding a :class:`TrainingRecord` every ``every`` steps.

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(n, inputs)`` to logits ``(n, classes)`` (or ``(n, 1)`` for regression); moved to ``device``.
    data : core.data.Dataset
    optimizer, lr, **hyper
        ``core.optimizers.make(optimizer, params, lr=lr, **hyper)``; ``lr`` None is that optimiser's default.
    epochs, batch_size
        Passes over the training set, and the mini-batch size (None or 0, or ``optimizer="gd"``: full batch).
    seed : int
        Seeds the mini-batch order (a torch.Generator, one permutation per epoch): the same seed, model and
        data give bit-for-bit the same run on the CPU.
    every : int, optional
        Steps between records (each one evaluates the test set); default one per epoch, at most 25 steps.
    schedule : str
        ``constant``, ``1/k``, ``1/sqrt(k)`` or ``cosine`` (torch.optim.lr_scheduler.LambdaLR, per step).
    loss : str or callable, optional
        ``cross_entropy`` (classification default), ``mse``, or ``loss(output, y) -> scalar``.
    step_hook : callable, optional
        ``step_hook(model, step)`` after every optimiser step (re-apply pruning masks, RigL, …).
    loss_fn : callable, optional
        ``loss_fn(model, x, y) -> scalar`` replaces the training loss (adversarial or IBP training); records
        still report the plain loss on the test set.

    Yields
    ------
    TrainingRecord
        Before the first step (step 0), every ``every`` steps and after the last step.

    Raises
    ------
    Diverged
        The loss of some step was NaN or inf; the message names the step ("diverged at step 37: …").
    """
    import torch

    from core.device import resolve
    from core.optimizers import make

    dev = resolve(device)
    data = data.to(dev)
    x, y = data.x_train, data.y_train
    n = data.n_train
    epochs, batch, every = _check_run(epochs, batch_size, every, n, optimizer)
    steps_per_epoch = math.ceil(n / batch)
    every = every or _default_every(steps_per_epoch)
    total_steps = epochs * steps_per_epoch
    spec = getattr(model, "spec", None)
    if spec is not None:
        spec.check_fits(batch, dev)
    criterion = _loss_function(loss, data.task)
    model.to(dev)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make(optimizer, params, lr=lr, **hyper)
    factor = schedule_factor(schedule, total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    generator = torch.Generator().manual_seed(int(seed))
    full = batch >= n
    started = time.perf_counter()

    def record(step: int, train_loss: float, grad_norm: float, used_lr: float) -> TrainingRecord:
        test_loss, accuracy = evaluate(model, data.x_test, data.y_test, loss)
        if not math.isfinite(test_loss):
            raise Diverged(step, _diverged_message(step, test_loss, used_lr, "the test loss"))
        return TrainingRecord(step=step, epoch=step / steps_per_epoch, train_loss=train_loss, test_loss=test_loss,
                              test_accuracy=accuracy, grad_norm=grad_norm, lr=used_lr,
                              seconds=time.perf_counter() - started)

    initial, _ = evaluate(model, x, y, loss)
    yield record(0, initial, 0.0, opt.param_groups[0]["lr"])
    step = 0
    window: list = []
    for _epoch in range(epochs):
        order = None if full else _permutation(generator, n, dev)
        for start in range(0, n, batch):
            if full:
                xb, yb = x, y
            else:
                index = order[start:start + batch]
                xb, yb = x[index], y[index]
            pace()
            opt.zero_grad(set_to_none=True)
            value = loss_fn(model, xb, yb) if loss_fn is not None else criterion(model(xb), yb)
            step += 1
            detached = value.detach()
            if not bool(torch.isfinite(detached)):
                raise Diverged(step, _diverged_message(step, float(detached), opt.param_groups[0]["lr"]))
            value.backward()
            used_lr = opt.param_groups[0]["lr"]
            opt.step()
            scheduler.step()
            if step_hook is not None:
                step_hook(model, step)
            window.append(detached)
            if step % every == 0 or step == total_steps:
                train_loss = float(torch.stack(window).mean())
                window.clear()
                yield record(step, train_loss, _grad_norm(params), used_lr)


# ---------------------------------------------------------------------------------------------------------
# K models as one batched model


def _per_run(name: str, value, k: int) -> list:
    """``value`` for each of ``k`` runs: a single value repeated, or a sequence of exactly ``k``."""
    if value is None or isinstance(value, int | float | str | dict):
        return [value] * k
    values = list(value)
    if len(values) != k:
        raise ValueError(f"{name}: {len(values)} values for {k} models")
    return values


class _Group:
    """Runs sharing a batch size. Their parameters live in one ``(K_g, P)`` tensor whose row k is run k's
    transposed weights and biases, layer after layer (each layer a view ``(K_g, in, out)`` of it), and their
    optimisers step its rows together (:class:`core.optimizers.stacked.StackedOptimizers`, the runs ordered
    so that rows of one update rule are adjacent). Transposed, because ``h @ Wᵀ``'s gradient with respect to
    ``Wᵀ`` comes out of autograd contiguous and goes into the stacked gradient in one copy; every optimiser
    here works entry by entry (AdaGrad-Norm on the whole norm), so the order of a row's entries changes
    nothing."""

    def __init__(self, runs, models, batch, n, device, optimizers, lrs, hypers, seeds, factors):
        import torch

        from core.optimizers import resolve_hyper
        from core.optimizers.stacked import StackedOptimizers, rule

        settings = {k: resolve_hyper(optimizers[k], lrs[k], **hypers[k]) for k in runs}
        runs = sorted(runs, key=lambda k: rule(optimizers[k], settings[k]) or "")
        self.runs = runs
        self.batch = batch
        self.full = batch >= n
        self.steps_per_epoch = math.ceil(n / batch)
        self.shapes = [tuple(lin.weight.shape) for lin in models[runs[0]].linears]
        with torch.no_grad():
            rows = [torch.cat([t.detach().reshape(-1) for lin in models[k].linears for t in (lin.weight.T, lin.bias)])
                    for k in runs]
            self.flat = torch.stack(rows).to(device)
        self.grad = torch.zeros_like(self.flat)
        self.optimizers = StackedOptimizers(self.flat, self.grad, [optimizers[k] for k in runs],
                                            [settings[k] for k in runs])
        self.factors = [factors[k] for k in runs]
        self.frozen: dict[int, Any] = {}        # row -> the parameters its run diverged at
        self.taken = 0
        self.generators = [torch.Generator().manual_seed(int(seeds[k])) for k in runs]
        self.order = None
        self.position = 0
        self.n = n
        self.device = device
        self.weights_t, self.biases = self.layers(self.flat)
        # the leaves autograd differentiates are views of ``flat``: no gradient ever goes through a slice
        self.leaves = [t.requires_grad_(True) for pair in zip(self.weights_t, self.biases, strict=True) for t in pair]

    def layers(self, flat):
        """Per-layer views ``(K_g, in, out)`` (the transposed weights) and ``(K_g, out)`` of a ``(K_g, P)``
        tensor."""
        k = flat.shape[0]
        weights_t, biases = [], []
        offset = 0
        for out, inp in self.shapes:
            weights_t.append(flat[:, offset:offset + out * inp].view(k, inp, out))
            offset += out * inp
            biases.append(flat[:, offset:offset + out])
            offset += out
        return weights_t, biases

    def set_lrs(self) -> None:
        """η_k for the next step: base η times the schedule's factor (what LambdaLR computes)."""
        self.optimizers.set_lrs([base * factor(self.taken)
                                 for base, factor in zip(self.optimizers.base_lrs, self.factors, strict=True)])

    def step(self) -> None:
        """Every run's optimiser step; a diverged run's row stays where it diverged."""
        self.optimizers.step()
        for row, theta in self.frozen.items():
            self.flat[row].copy_(theta)
        self.taken += 1

    def freeze(self, row: int) -> None:
        self.frozen[row] = self.flat[row].detach().clone()

    def forward(self, x, phi, skips):
        """Logits ``(K_g, B, outputs)`` of every run for inputs ``x`` of shape ``(K_g, B, d)`` or ``(B, d)``."""
        import torch

        h = x
        for i, skip in enumerate(skips):
            z = torch.baddbmm(self.biases[i].unsqueeze(1), h, self.weights_t[i]) if h.dim() == 3 \
                else torch.matmul(h, self.weights_t[i]) + self.biases[i].unsqueeze(1)
            h = h + phi(z) if skip else phi(z)
        if h.dim() == 2:
            return torch.matmul(h, self.weights_t[-1]) + self.biases[-1].unsqueeze(1)
        return torch.baddbmm(self.biases[-1].unsqueeze(1), h, self.weights_t[-1])

    def next_batch(self, x, y):
        import torch

        if self.full:
            return x, y.expand(len(self.runs), *y.shape)
        if self.position == 0:
            self.order = torch.stack([torch.randperm(self.n, generator=g) for g in self.generators]).to(self.device)
        index = self.order[:, self.position:self.position + self.batch]
        self.position += self.batch
        if self.position >= self.n:
            self.position = 0
        return x[index], y[index]

    def grad_norms(self):
        return self.grad.norm(dim=1)


def _stacked_losses(out, y, task: str):
    """Per-run mean loss ``(K,)`` of logits ``(K, B, C)`` (cross-entropy) or outputs ``(K, B, 1)`` (½ MSE)."""
    import torch.nn.functional as F

    if task == "classification":
        k, b, c = out.shape
        return F.cross_entropy(out.reshape(k * b, c), y.reshape(k * b), reduction="none").view(k, b).mean(1)
    return 0.5 * (out - y).pow(2).sum(-1).mean(-1)


def train_many(models, data, *, optimizer="sgd", lr=None, epochs: int = 10, batch_size=64, seed=0,
               every: int | None = None, schedule: str = "constant", device=None, loss=None, hyper=None,
               **common: Any) -> Iterator[ManyRecord]:
    """Train K networks of one spec together as one batched model; yield a :class:`ManyRecord` every ``every``
    steps. Equal, run by run, to K calls of :func:`train` with the same arguments (to float rounding).

    Parameters
    ----------
    models : sequence of nn.Module
        K networks from ``core.nets.build`` with the same spec and no batch norm; trained in place (their
        weights are written back when the generator finishes or is closed).
    optimizer, lr, seed, batch_size, hyper
        One value for all runs or a sequence of K (``hyper``: a dict or K dicts of optimiser
        hyper-parameters; ``**common`` go to every run). Runs with ``optimizer="gd"`` (or batch size None)
        take one full-batch step per epoch while the mini-batch runs take theirs; each run's mini-batch order
        comes from its own ``seed`` exactly as in :func:`train`.
    epochs, every, schedule, device, loss
        As in :func:`train` (``loss`` a name: ``cross_entropy`` or ``mse``). ``every`` counts steps of the runs
        with the most steps per epoch.

    Yields
    ------
    ManyRecord
        Arrays of length K, before the first step, every ``every`` steps and after the last; the final one
        carries the trained ``models``. A run whose loss turns NaN or inf is frozen there and listed in
        ``diverged`` as ``(k, step)``; the others go on.
    """
    import torch

    from core.device import resolve

    models = list(models)
    k_runs = len(models)
    if k_runs == 0:
        raise ValueError("train_many needs at least one model")
    spec = getattr(models[0], "spec", None)
    if spec is None or any(getattr(m, "spec", None) != spec for m in models):
        raise ValueError("train_many trains networks of one spec built by core.nets.build")
    if spec.batch_norm:
        raise ValueError("batch-norm networks keep per-model statistics: train them one at a time with train()")
    if callable(loss) or loss not in (None, *LOSSES):
        raise ValueError(f"loss: train_many takes a name, one of {', '.join(LOSSES)}")
    dev = resolve(device)
    data = data.to(dev)
    x, y, n = data.x_train, data.y_train, data.n_train
    if data.task == "classification" and loss == "mse":
        raise ValueError("loss: train_many's mse is for regression targets")
    optimizers = _per_run("optimizer", optimizer, k_runs)
    lrs = _per_run("lr", lr, k_runs)
    seeds = _per_run("seed", seed, k_runs)
    sizes = _per_run("batch_size", batch_size, k_runs)
    hypers = [{**common, **(h or {})} for h in _per_run("hyper", hyper, k_runs)]
    batches = []
    for k in range(k_runs):
        epochs, batch, every = _check_run(epochs, sizes[k], every, n, optimizers[k])
        batches.append(batch)
    spec.check_fits(max(batches) * k_runs, dev)
    phi = models[0].phi
    skips = models[0].skips
    groups: list[_Group] = []
    for batch in sorted(set(batches)):
        runs = [k for k in range(k_runs) if batches[k] == batch]
        total = epochs * math.ceil(n / batch)
        factors = {k: schedule_factor(schedule, total) for k in runs}
        groups.append(_Group(runs, models, batch, n, dev, optimizers, lrs, hypers, seeds, factors))
    ticks = max(g.steps_per_epoch for g in groups)
    every = every or _default_every(ticks)
    total_ticks = epochs * ticks
    steps = np.zeros(k_runs, dtype=np.int64)
    alive = np.ones(k_runs, dtype=bool)
    diverged: list[tuple[int, int]] = []
    last = {"train": np.zeros(k_runs), "test": np.zeros(k_runs), "acc": np.zeros(k_runs), "grad": np.zeros(k_runs),
            "lr": np.array([lr for g in groups for lr in g.optimizers.lrs])[_order(groups)]}
    window = [torch.zeros(len(g.runs), device=dev) for g in groups]
    counts = [0 for _ in groups]
    started = time.perf_counter()
    classification = data.task == "classification"

    def evaluate_all(xs, ys):
        """Per-run (loss, accuracy) on all of ``xs`` in chunks, as numpy arrays in run order."""
        loss_sum = np.zeros(k_runs)
        hits = np.zeros(k_runs)
        with torch.no_grad():
            for g in groups:
                for start in range(0, len(xs), EVAL_CHUNK):
                    xb, yb = xs[start:start + EVAL_CHUNK], ys[start:start + EVAL_CHUNK]
                    out = g.forward(xb, phi, skips)
                    yk = yb.expand(len(g.runs), *yb.shape)
                    loss_sum[g.runs] += (_stacked_losses(out, yk, data.task) * len(yb)).cpu().numpy()
                    if classification:
                        hits[g.runs] += (out.argmax(-1) == yb).sum(1).cpu().numpy()
        return loss_sum / len(xs), hits / len(xs)

    place = {k: (g, j) for g in groups for j, k in enumerate(g.runs)}

    def kill(k: int, at: int) -> None:
        alive[k] = False
        diverged.append((k, int(at)))
        g, j = place[k]
        g.freeze(j)

    def record(tick: int, initial: bool = False) -> ManyRecord:
        test_loss, accuracy = evaluate_all(data.x_test, data.y_test)
        if initial:
            train_loss, _ = evaluate_all(x, y)
        else:
            train_loss = last["train"].copy()
            for g, w, c in zip(groups, window, counts, strict=True):
                if c:
                    train_loss[g.runs] = w.cpu().numpy() / c
            for i in range(len(groups)):
                window[i].zero_()
                counts[i] = 0
        for k in range(k_runs):
            if alive[k] and not (math.isfinite(test_loss[k]) and math.isfinite(train_loss[k])):
                kill(k, steps[k])
        grad = last["grad"].copy()
        if not initial:
            for g in groups:
                grad[g.runs] = g.grad_norms().cpu().numpy()
        live = alive.copy()
        for name, values in (("train", train_loss), ("test", test_loss), ("acc", accuracy), ("grad", grad)):
            last[name] = np.where(live, values, last[name]) if not initial else values
        return ManyRecord(step=steps.copy(), epoch=tick / ticks, train_loss=last["train"].copy(),
                          test_loss=last["test"].copy(), test_accuracy=last["acc"].copy() if classification else None,
                          grad_norm=last["grad"].copy(), lr=last["lr"].copy(), seconds=time.perf_counter() - started,
                          alive=live, diverged=tuple(diverged))

    def step(gi: int, g: _Group) -> None:
        xb, yb = g.next_batch(x, y)
        losses = _stacked_losses(g.forward(xb, phi, skips), yb, data.task)
        grads = torch.autograd.grad(losses.sum(), g.leaves)
        # row k of the stacked gradient is run k's, layer after layer as in ``flat``: one contiguous write
        torch.cat([t.reshape(len(g.runs), -1) for t in grads], dim=1, out=g.grad)
        detached = losses.detach()
        finite = torch.isfinite(detached)
        steps[g.runs] += alive[g.runs]        # a frozen run's count stays at the step it diverged
        all_finite = bool(finite.all())
        if not all_finite:
            for j, ok in enumerate(finite.tolist()):
                if not ok and alive[g.runs[j]]:
                    kill(g.runs[j], steps[g.runs[j]])
        window[gi] += detached if all_finite else torch.where(finite, detached, torch.zeros_like(detached))
        counts[gi] += 1
        g.set_lrs()
        live = alive[g.runs]
        last["lr"][g.runs] = np.where(live, g.optimizers.lrs, last["lr"][g.runs])
        g.step()

    try:
        yield record(0, initial=True)
        for tick in range(1, total_ticks + 1):
            pace()
            within = (tick - 1) % ticks + 1
            for gi, g in enumerate(groups):
                if within * g.steps_per_epoch // ticks > (within - 1) * g.steps_per_epoch // ticks:
                    step(gi, g)
            if tick == total_ticks:
                break
            if tick % every == 0:
                yield record(tick)
        final = record(total_ticks)
        _write_back(groups, models)
        yield ManyRecord(**{**final.__dict__, "models": tuple(models)})
    finally:
        _write_back(groups, models)


def _order(groups) -> np.ndarray:
    """Positions, in group order, of runs 0 … K−1 (to put per-group lists back in run order)."""
    flat = [k for g in groups for k in g.runs]
    return np.argsort(flat)


def _write_back(groups, models) -> None:
    import torch

    with torch.no_grad():
        for g in groups:
            for j, k in enumerate(g.runs):
                for i, lin in enumerate(models[k].linears):
                    lin.weight.copy_(g.weights_t[i][j].T)
                    lin.bias.copy_(g.biases[i][j])


_prepared = False


def prepare() -> None:
    """Pay, once and ahead of time, what a panel's first training step would: torch.optim's first
    ``step()`` imports ``torch._dynamo`` (about 800 modules, ~1 s on two cores) and the digits come from
    scikit-learn's bundled CSV. Run in a worker while nobody is waiting (an import holds the interpreter
    lock for stretches of a few hundred ms, so a GUI would stutter if it happened during a Train)."""
    global _prepared
    if _prepared:
        return
    import torch

    from core.data import load

    load("digits")
    with torch.enable_grad():
        w = torch.zeros(2, requires_grad=True)
        opt = torch.optim.SGD([w], lr=0.0)
        w.sum().backward()
        opt.step()
    _prepared = True
