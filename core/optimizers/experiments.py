"""The training experiments of the Optimizers panel: AdaGrad-Norm's b₀ sweeps, optimisers on a real network,
and a deep net with and without batch normalisation. Generators: they yield partial results and stop when closed.

References
----------
- R. Ward, X. Wu, L. Bottou, "AdaGrad stepsizes: sharp convergence over nonconvex landscapes", ICML 2019,
  arXiv:1806.01811, §5 (Fig. 1: final loss against b₀ on least squares and on neural networks).
- S. Ioffe, C. Szegedy, "Batch normalization", ICML 2015, arXiv:1502.03167.
- X. Glorot, Y. Bengio, "Understanding the difficulty of training deep feedforward neural networks",
  AISTATS 2010 (per-layer histograms of activations).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

SWEEP_METHODS = ("adagrad_norm", "sgd_constant", "sgd_decay")
SWEEP_LABELS = {"adagrad_norm": "AdaGrad-Norm", "sgd_constant": "SGD η/b₀", "sgd_decay": "SGD η/(b₀√k)"}
DIVERGED = 1e30
"""A loss above this (or NaN/inf) counts as diverged: the run stops and is drawn as a cross, never as NaN."""


@dataclass(frozen=True)
class LeastSquares:
    """``F(w) = ‖Xw − y‖²/(2n)`` with a realisable target (min F = 0); ``L`` and ``mu``: the extreme
    eigenvalues of the Hessian XᵀX/n."""

    X: np.ndarray
    y: np.ndarray
    L: float
    mu: float

    def loss(self, w: np.ndarray) -> np.ndarray:
        r = self.X @ w - self.y[:, None] if w.ndim == 2 else self.X @ w - self.y
        return 0.5 * (r * r).mean(axis=0)


def least_squares_problem(n: int = 1000, d: int = 100, seed: int = 0) -> LeastSquares:
    """Ward et al. (2019) §5.1: X with N(0, 1) entries, y = Xw* for a Gaussian w*; L ≈ (1 + √(d/n))²."""
    if not (1 <= d <= n <= 100_000):
        raise ValueError(f"least squares: need 1 ≤ d ≤ n ≤ 100000, got n = {n}, d = {d}")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X @ rng.standard_normal(d)
    eig = np.linalg.eigvalsh(X.T @ X / n)
    return LeastSquares(X, y, float(eig[-1]), float(eig[0]))


@dataclass(frozen=True)
class SweepPartial:
    """Loss after ``step`` of ``steps`` for every b₀ and method; ``diverged[m][i]``: run i of m stopped."""

    b0: np.ndarray
    step: int
    steps: int
    loss: dict[str, np.ndarray]
    diverged: dict[str, np.ndarray]


def least_squares_sweep_iter(ls: LeastSquares, b0: Sequence[float], steps: int = 1000, eta: float = 1.0,
                             methods: Sequence[str] = SWEEP_METHODS, every: int = 100) -> Iterator[SweepPartial]:
    """Full-batch runs from w = 0 for every b₀ and method with torch.optim (float64, CPU), all stepped together.

    ``adagrad_norm``: :class:`AdaGradNorm` (η, b₀); ``sgd_constant``: ``torch.optim.SGD`` with lr η/b₀;
    ``sgd_decay``: the same times 1/√(k+1) (``LambdaLR``). The losses of all runs are summed and
    differentiated once (they share no parameter, so each gets its own gradient); each run keeps its own
    optimiser. Yields every ``every`` steps and at the end.
    """
    import torch

    from core.device import default
    from core.optimizers.library import make
    from core.training import schedule_factor

    default()                     # torch's thread count set as everywhere (spinning threads stall small work)
    b0 = np.asarray(b0, dtype=float)
    if b0.ndim != 1 or b0.size == 0 or np.any(~np.isfinite(b0)) or np.any(b0 <= 0):
        raise ValueError(f"b0: need positive finite values, got {b0!r}")
    unknown = [m for m in methods if m not in SWEEP_METHODS]
    if unknown:
        raise ValueError(f"method: unknown {unknown[0]!r}; choose from {', '.join(SWEEP_METHODS)}")
    X = torch.tensor(ls.X)
    y = torch.tensor(ls.y)
    runs = [(m, i) for m in methods for i in range(b0.size)]
    params = [torch.zeros(ls.X.shape[1], dtype=torch.float64, requires_grad=True) for _ in runs]
    opts, scheds = [], []
    for (m, i), p in zip(runs, params, strict=True):
        if m == "adagrad_norm":
            opt = make("adagrad_norm", [p], lr=eta, b0=float(b0[i]))
        else:
            opt = make("sgd", [p], lr=eta / float(b0[i]))
        opts.append(opt)
        scheds.append(torch.optim.lr_scheduler.LambdaLR(opt, schedule_factor("1/sqrt(k)", steps))
                      if m == "sgd_decay" else None)
    alive = np.ones(len(runs), dtype=bool)
    last = np.full(len(runs), np.inf)

    def partial(step: int) -> SweepPartial:
        loss = {m: np.array([last[r] for r, (mm, _) in enumerate(runs) if mm == m]) for m in methods}
        dead = {m: np.array([not alive[r] for r, (mm, _) in enumerate(runs) if mm == m]) for m in methods}
        return SweepPartial(b0, step, steps, loss, dead)

    for step in range(steps + 1):
        W = torch.stack(params, dim=1)
        losses = 0.5 * (X @ W - y[:, None]).pow(2).mean(0)
        values = losses.detach().numpy()
        bad = ~np.isfinite(values) | (values > DIVERGED)
        newly = alive & bad
        alive &= ~bad
        last[alive] = values[alive]
        last[newly] = np.inf
        if step % every == 0 or step == steps:
            yield partial(step)
        if step == steps or not alive.any():
            if step < steps:
                yield partial(steps)
            return
        for r in np.flatnonzero(alive):
            opts[r].zero_grad(set_to_none=True)
        losses[torch.as_tensor(alive)].sum().backward()
        for r in np.flatnonzero(alive):
            opts[r].step()
            if scheds[r] is not None:
                scheds[r].step()


def least_squares_sweep(ls: LeastSquares, b0, steps: int = 1000, eta: float = 1.0,
                        methods: Sequence[str] = SWEEP_METHODS) -> dict[str, np.ndarray]:
    """Final F for every b₀ and method (inf where the run diverged): the last of :func:`least_squares_sweep_iter`."""
    last = None
    for part in least_squares_sweep_iter(ls, b0, steps, eta, methods, every=steps):
        last = part
    return last.loss


# -- networks ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Curve:
    """One run's curve so far; ``note`` says why it stopped early (divergence), '' otherwise."""

    label: str
    step: np.ndarray
    train_loss: np.ndarray
    test_accuracy: np.ndarray
    note: str = ""
    done: bool = False


def _curve(label: str, records: list, note: str = "", done: bool = False) -> Curve:
    return Curve(label, np.array([r.step for r in records], dtype=float),
                 np.array([r.train_loss for r in records], dtype=float),
                 np.array([np.nan if r.test_accuracy is None else r.test_accuracy for r in records], dtype=float),
                 note, done)


def epochs_for(steps: int, n: int, batch: int | None) -> int:
    """Epochs that give at least ``steps`` optimiser steps on n examples (``batch`` None: full batch)."""
    per_epoch = 1 if not batch or batch >= n else math.ceil(n / batch)
    return max(1, math.ceil(steps / per_epoch))


@dataclass(frozen=True)
class Run:
    """One network run: ``train`` keyword arguments (optimizer, lr, batch_size, hyper…) and its label."""

    label: str
    optimizer: str
    lr: float
    batch_size: int | None
    hyper: dict = field(default_factory=dict)
    schedule: str = "constant"


def train_together(data, spec, runs: Sequence[Run], steps: int, *, seed: int = 0, every: int = 10,
                   device=None) -> Iterator[list[Curve]]:
    """Train one fresh copy of ``spec`` (same seed, same initial weights) per run for ``steps`` optimiser
    steps; yields every run's curve after each round of ``every`` steps.

    Without batch norm the runs are trained as ONE batched model (:func:`core.training.train_many`: one
    batched forward and backward pass for all of them, each keeping its own torch.optim optimiser), one
    batched model per batch size so that a full-batch run takes ``steps`` steps as the mini-batch runs do;
    with batch norm (per-model statistics) they are interleaved :func:`core.training.train` runs. Either way
    each run equals its own ``train`` run (to float rounding). A run whose loss becomes NaN/inf stops with a
    note naming the step; the others go on. Closing the generator stops all runs.
    """
    if spec.batch_norm:
        yield from _train_interleaved(data, spec, runs, steps, seed=seed, every=every, device=device)
    else:
        yield from _train_batched(data, spec, runs, steps, seed=seed, every=every, device=device)


def _train_batched(data, spec, runs: Sequence[Run], steps: int, *, seed: int, every: int, device):
    from core import nets, training

    n = data.n_train
    groups: dict[int, list[int]] = {}            # steps per epoch → the runs that take that many
    for k, run in enumerate(runs):
        full = run.optimizer == "gd" or not run.batch_size or run.batch_size >= n
        groups.setdefault(1 if full else math.ceil(n / run.batch_size), []).append(k)
    gens = []
    for ks in groups.values():
        group = [runs[k] for k in ks]
        sizes = [None if r.optimizer == "gd" else r.batch_size for r in group]
        epochs = max(epochs_for(steps, n, b) for b in sizes)
        models = [nets.build(spec, seed=seed, device=device) for _ in group]
        gens.append((ks, training.train_many(models, data, optimizer=[r.optimizer for r in group],
                                             lr=[r.lr for r in group], epochs=epochs, batch_size=sizes, seed=seed,
                                             every=every, schedule=group[0].schedule, device=device,
                                             hyper=[r.hyper for r in group])))
    records: list[list] = [[] for _ in runs]
    notes = ["" for _ in runs]
    done = [False for _ in runs]
    live = list(range(len(gens)))
    try:
        while live:
            for g in list(live):
                ks, gen = gens[g]
                rec = next(gen, None)
                if rec is not None:
                    gone = dict(rec.diverged)
                    for j, k in enumerate(ks):
                        if done[k]:
                            continue
                        if not rec.alive[j]:
                            done[k] = True
                            notes[k] = (f"diverged at step {gone.get(j, int(rec.step[j]))}: the loss became NaN "
                                        f"or infinite — the learning rate η = {runs[k].lr:g} is probably too large")
                            continue
                        records[k].append(_Point(int(rec.step[j]), float(rec.train_loss[j]),
                                                 None if rec.test_accuracy is None else float(rec.test_accuracy[j])))
                        done[k] = rec.step[j] >= steps
                if rec is None or all(done[k] for k in ks):
                    gen.close()
                    for k in ks:
                        done[k] = True
                    live.remove(g)
            yield [_curve(r.label, rec, n_, d) for r, rec, n_, d in zip(runs, records, notes, done, strict=True)]
    finally:
        for _, gen in gens:
            gen.close()


@dataclass(frozen=True)
class _Point:
    """One run's entries of a :class:`core.training.ManyRecord` (what :func:`_curve` reads)."""

    step: int
    train_loss: float
    test_accuracy: float | None


def _train_interleaved(data, spec, runs: Sequence[Run], steps: int, *, seed: int, every: int, device):
    from core import nets, training

    gens = []
    for run in runs:
        model = nets.build(spec, seed=seed, device=device)
        epochs = epochs_for(steps, data.n_train, run.batch_size)
        gens.append(training.train(model, data, optimizer=run.optimizer, lr=run.lr, epochs=epochs,
                                   batch_size=run.batch_size, seed=seed, every=every, schedule=run.schedule,
                                   device=device, **run.hyper))
    for records, notes, done in _in_turn(gens, steps):
        yield [_curve(r.label, rec, n, d) for r, rec, n, d in zip(runs, records, notes, done, strict=True)]


def _in_turn(gens, steps: int, on_record=None):
    """Advance each :func:`core.training.train` generator by one record in turn until every one has reached
    ``steps``, stopped or diverged; after each round yield ``(records, notes, done)`` (lists, one entry per
    generator; a diverged run's note is its message). ``on_record(i)`` runs after run ``i`` gets a record.
    Closing this generator closes them all."""
    from core import training

    records: list[list] = [[] for _ in gens]
    notes, done = [""] * len(gens), [False] * len(gens)
    try:
        while not all(done):
            for i, gen in enumerate(gens):
                if done[i]:
                    continue
                try:
                    rec = next(gen)
                    records[i].append(rec)
                    if on_record is not None:
                        on_record(i)
                    if rec.step >= steps:
                        done[i] = True
                        gen.close()
                except StopIteration:
                    done[i] = True
                except training.Diverged as err:
                    done[i] = True
                    notes[i] = str(err)
            yield records, notes, done
    finally:
        for gen in gens:
            gen.close()


def digits_sweep_iter(data, spec, b0: Sequence[float], *, eta: float = 1.0, epochs: int = 2, batch_size: int = 64,
                      seed: int = 0, methods: Sequence[str] = SWEEP_METHODS, device=None):
    """Ward et al.'s sweep on a network: final training loss against b₀ for each method (``SWEEP_METHODS``).

    Yields ``(method, index, final_loss)`` as each run ends; a diverged run gives ``inf``.
    """
    from core import nets, training

    for m in methods:
        for i, b in enumerate(b0):
            model = nets.build(spec, seed=seed, device=device)
            if m == "adagrad_norm":
                kw = dict(optimizer="adagrad_norm", lr=eta, b0=float(b))
            else:
                kw = dict(optimizer="sgd", lr=eta / float(b), schedule="1/sqrt(k)" if m == "sgd_decay" else "constant")
            gen = training.train(model, data, epochs=epochs, batch_size=batch_size, seed=seed, every=10_000,
                                 device=device, **kw)
            final = math.inf
            try:
                for rec in gen:
                    final = rec.train_loss
            except training.Diverged:
                final = math.inf
            finally:
                gen.close()
            if not math.isfinite(final) or final > DIVERGED:
                final = math.inf
            yield m, i, final


@dataclass(frozen=True)
class BNState:
    """The deep net without (index 0) and with (1) batch norm: curves, and the spread (standard deviation)
    of the pre-activations φ's input at every hidden layer, at step 0 and now."""

    curves: tuple[Curve, Curve]
    spread0: tuple[np.ndarray, np.ndarray]
    spread: tuple[np.ndarray, np.ndarray]
    step: tuple[int, int]


def preactivation_spread(model, x) -> np.ndarray:
    """Standard deviation over units and examples of φ's input at each hidden layer (after BN where present),
    with the batch statistics of ``x`` and without touching the running statistics."""
    import torch

    norms = list(model.norms)
    outputs: list = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach()))
             for m in (norms if norms else list(model.linears)[:-1])]
    saved = [bn.momentum for bn in norms]
    try:
        for bn in norms:
            bn.momentum = 0.0
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
        for bn, mom in zip(norms, saved, strict=True):
            bn.momentum = mom
    return np.array([float(o.float().std()) for o in outputs])


def batch_norm_experiment(data, spec, steps: int, *, optimizer: str = "sgd", lr: float = 0.05,
                          batch_size: int | None = 64, seed: int = 0, every: int = 10, probe: int = 256,
                          device=None, **hyper) -> Iterator[BNState]:
    """``spec`` trained with ``batch_norm`` off and on, from the same seed, interleaved; yields after each round."""
    import dataclasses

    from core import nets, training

    specs = (dataclasses.replace(spec, batch_norm=False), dataclasses.replace(spec, batch_norm=True))
    models = [nets.build(s, seed=seed, device=device) for s in specs]
    x = data.to(next(models[0].parameters()).device).x_test[:probe]
    spread0 = tuple(preactivation_spread(m, x) for m in models)
    spread = list(spread0)
    epochs = epochs_for(steps, data.n_train, batch_size)
    gens = [training.train(m, data, optimizer=optimizer, lr=lr, epochs=epochs, batch_size=batch_size, seed=seed,
                           every=every, device=device, **hyper) for m in models]
    labels = ("without batch norm", "with batch norm")

    def measure(i: int) -> None:
        spread[i] = preactivation_spread(models[i], x)

    for records, notes, done in _in_turn(gens, steps, on_record=measure):
        curves = tuple(_curve(labels[i], records[i], notes[i], done[i]) for i in range(2))
        yield BNState(curves, spread0, tuple(spread), tuple(int(r[-1].step) if r else 0 for r in records))
