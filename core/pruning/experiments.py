"""The pruning experiments the panel streams, each a batched training of all its networks at once.

* :func:`lottery` — iterative magnitude pruning with rewinding (Frankle & Carbin 2019, arXiv 1803.03635;
  Frankle et al. 2020, arXiv 1912.05671), with its two controls trained beside the ticket every round:
  the same mask re-initialised at random, and a random mask with the ticket's layer densities;
* :func:`one_shot` — magnitude pruning of the trained dense nets at every density, then fine-tuning;
* :func:`at_init` — SNIP, GraSP, SynFlow or random masks at initialisation, then training;
* :func:`rigl` — RigL's dynamic sparse training from ERK (or uniform) densities, or the static baseline;
* :func:`dct_sparse` — DCT-plus-sparse networks at every density;
* :func:`sweep` — all of them, in the order the panel draws them;
* :func:`slider` — prune a trained dense net by magnitude at a density, no retraining, in milliseconds.

Generators yield :class:`Progress`, lists of :class:`Point` (one per network) and :class:`Curve`
(training curves of the lottery rounds); closing one stops it within a training step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from core.device import resolve
from core.pace import pace
from core.pruning.densities import check_density, erk_densities, uniform_densities
from core.pruning.masking import keep_top, layer_densities, masks, prunable, prune_at_init, scores
from core.pruning.stack import RiglSchedule, Stack, train_stack


@dataclass(frozen=True)
class Recipe:
    """How every network of a sweep is trained: Adam, ``epochs`` passes, mini-batches of ``batch_size``."""

    epochs: int = 15
    lr: float = 2e-3
    batch_size: int = 64


@dataclass(frozen=True)
class Point:
    method: str
    density: float          # fraction of all Linear weights kept (trainable ones for DCT + sparse)
    seed: int
    accuracy: float         # test accuracy after training
    layers: tuple           # per-layer densities


@dataclass(frozen=True)
class Curve:
    """Test accuracy per epoch, (seeds, epochs + 1), of one method at one lottery round."""

    method: str
    round: int
    density: float
    accuracy: np.ndarray


@dataclass(frozen=True)
class DenseNets:
    """The lottery's round 0: the trained dense nets, one per seed (what one-shot pruning starts from)."""

    stack: Stack


@dataclass(frozen=True)
class Progress:
    fraction: float
    text: str


def sweep_densities(points: int, lowest: float) -> np.ndarray:
    """``points`` log-spaced densities from 1 down to ``lowest``."""
    return np.geomspace(1.0, check_density(lowest, "lowest density"), int(points))


def init_models(spec, seeds: Sequence[int], device=None) -> list:
    """``core.nets.build(spec, seed)`` for each seed: the default digits MLP's own initialisation."""
    from core import nets

    return [nets.build(spec, seed=int(s), device=device) for s in seeds]


def _train(stack: Stack, data, recipe: Recipe, seed: int, label: str, lo: float, hi: float, **kw):
    """Train ``stack``, yielding Progress from ``lo`` to ``hi``; returns the list of EpochRecords."""
    records = []
    for record in train_stack(stack, data, epochs=recipe.epochs, lr=recipe.lr, batch_size=recipe.batch_size,
                              seed=seed, **kw):
        records.append(record)
        yield Progress(lo + (hi - lo) * record.epoch / recipe.epochs, f"{label}: epoch {record.epoch}")
    return records


def _points(method: str, stack: Stack, accuracy: np.ndarray, seeds: Sequence[int]) -> list[Point]:
    dens, layers = stack.densities(), stack.layer_densities()
    return [Point(method, float(dens[k]), int(seeds[k % len(seeds)]), float(accuracy[k]), tuple(layers[k]))
            for k in range(stack.count)]


def _stacked(models, mask_lists, **kw) -> Stack:
    return Stack.from_models(models, mask_lists, phi=models[0].spec.phi if hasattr(models[0], "spec") else "relu",
                             **kw)


def _round_density(r: int, rate: float, sizes: Sequence[int], output: str) -> float:
    """The overall density after r rounds of pruning ``rate`` of the remaining weights per round."""
    h = (1.0 - rate) ** r
    out = {"prune": h, "half": (1.0 - rate / 2.0) ** r, "dense": 1.0}[output]
    return (h * sum(sizes[:-1]) + out * sizes[-1]) / sum(sizes)


def lottery(data, spec, *, seeds: Sequence[int] = (0, 1, 2), recipe: Recipe = Recipe(), rounds: int = 10,
            rate: float = 0.2, rewind: int = 0, scope: str = "global", output: str = "prune",
            controls: bool = True, device=None) -> Iterator:
    """Iterative magnitude pruning with rewinding, trained for all seeds at once (Frankle & Carbin 2019).

    Round 0 trains the dense nets from their initialisation, keeping the weights of step ``rewind``.
    Each round then prunes ``rate`` of the remaining weights by magnitude (``output="half"``: the output
    layer at half that rate), rewinds the survivors to step ``rewind`` and retrains. With ``controls``,
    each round also trains the same mask from a fresh random initialisation ("reinit") and a random mask
    with the ticket's layer densities rewound to the same weights ("random_mask").

    Yields
    ------
    Progress, lists of Point (methods ``imp``, ``reinit``, ``random_mask``; round 0 as ``dense``) and
    Curve (the test accuracy per epoch of each method at each round).
    """
    seeds = [int(s) for s in seeds]
    dev = resolve(device)
    models = init_models(spec, seeds, dev)
    sizes = [layer.weight.numel() for layer in prunable(models[0])]
    S = len(seeds)
    ticket = _stacked(models, None)
    records = yield from _train(ticket, data, recipe, seeds[0], "lottery round 0 (dense)", 0.0, 1.0 / (rounds + 1),
                                snapshot_step=rewind)
    if not hasattr(ticket, "rewind_point"):
        raise ValueError(f"rewind step {rewind} is past the end of training ({records[-1].step} steps)")
    rewind_point = ticket.rewind_point
    L = len(sizes)
    yield _points("dense", ticket, records[-1].test_accuracy, seeds)
    yield DenseNets(ticket)
    yield Curve("imp", 0, 1.0, np.stack([r.test_accuracy for r in records], axis=1))
    current = [torch.ones_like(w, dtype=torch.bool) for w in ticket.weights]   # (S, out, in) per layer
    fresh = init_models(spec, [s + 7919 for s in seeds], dev)
    for r in range(1, rounds + 1):
        target = _round_density(r, rate, sizes, output)
        new = [[None] * L for _ in range(S)]
        random_masks = [[None] * L for _ in range(S)]
        for k in range(S):
            magnitude = [torch.where(current[i][k], ticket.weights[i][k].detach().abs(),
                                     torch.tensor(-math.inf)) for i in range(L)]
            new[k] = masks(magnitude, target, scope, output=output)
            g = torch.Generator().manual_seed(seeds[k] * 1000 + r)
            random_scores = [torch.rand(m.shape, generator=g) for m in new[k]]
            random_masks[k] = masks(random_scores, list(layer_densities(new[k])))
        current = [torch.stack([new[k][i] for k in range(S)]) for i in range(L)]
        rewound_w, rewound_b = rewind_point[:L], rewind_point[L:]
        weights, biases = list(rewound_w), list(rewound_b)
        mask_stack = list(current)
        methods = ["imp"]
        if controls:
            methods += ["reinit", "random_mask"]
            for i in range(L):
                fw = torch.stack([prunable(m)[i].weight.detach() for m in fresh])
                fb = torch.stack([prunable(m)[i].bias.detach() for m in fresh])
                rand = torch.stack([random_masks[k][i] for k in range(S)]).to(dev)
                weights[i] = torch.cat([rewound_w[i], fw, rewound_w[i]])
                biases[i] = torch.cat([rewound_b[i], fb, rewound_b[i]])
                mask_stack[i] = torch.cat([current[i], current[i], rand])
        stack = Stack(weights, biases, mask_stack, phi=ticket.phi)
        label = f"lottery round {r} (density {100 * target:.3g} %)"
        records = yield from _train(stack, data, recipe, seeds[0], label, r / (rounds + 1), (r + 1) / (rounds + 1))
        final = records[-1].test_accuracy
        curves = np.stack([rec.test_accuracy for rec in records], axis=1)
        for j, method in enumerate(methods):
            part = slice(j * S, (j + 1) * S)
            yield [Point(method, float(stack.densities()[k]), seeds[k - j * S], float(final[k]),
                         tuple(stack.layer_densities()[k])) for k in range(part.start, part.stop)]
            yield Curve(method, r, float(target), curves[part])
        ticket = Stack([w[:S] for w in stack.weights], [b[:S] for b in stack.biases], [m[:S] for m in stack.masks],
                       phi=ticket.phi)


def one_shot(trained: Stack, data, densities: Sequence[float], *, seeds: Sequence[int], recipe: Recipe = Recipe(),
             scope: str = "global", output: str = "prune", fine_tune: bool = True) -> Iterator:
    """Magnitude pruning of the trained dense nets ``trained`` (one per seed) at every density in one shot,
    then ``recipe.epochs`` epochs of fine-tuning of all of them at once (none with ``fine_tune=False``).
    Yields Progress and one list of Point (method ``magnitude`` or ``magnitude_noft``)."""
    S, L = trained.count, len(trained.weights)
    weights, biases, mask_stack = [[] for _ in range(L)], [[] for _ in range(L)], [[] for _ in range(L)]
    for d in densities:
        for k in range(S):
            keep = masks([trained.weights[i][k].detach().abs() for i in range(L)], float(d), scope, output=output)
            for i in range(L):
                weights[i].append(trained.weights[i][k].detach())
                biases[i].append(trained.biases[i][k].detach())
                mask_stack[i].append(keep[i])
    stack = Stack([torch.stack(w) for w in weights], [torch.stack(b) for b in biases],
                  [torch.stack(m) for m in mask_stack], phi=trained.phi)
    if not fine_tune:
        xt, yt = data.x_test.to(stack.device), data.y_test.to(stack.device)
        yield _points("magnitude_noft", stack, stack.accuracy(xt, yt), seeds)
        return
    records = yield from _train(stack, data, recipe, int(seeds[0]), "magnitude pruning + fine-tuning", 0.0, 1.0)
    yield _points("magnitude", stack, records[-1].test_accuracy, seeds)


def at_init(data, spec, method: str, densities: Sequence[float], *, seeds: Sequence[int] = (0, 1, 2),
            recipe: Recipe = Recipe(), scope: str = "global", output: str = "prune", data_seed: int | None = None,
            device=None) -> Iterator:
    """Prune at initialisation by ``method`` (``snip``, ``grasp``, ``synflow``, ``random``, ``magnitude``) at
    every density, then train all the networks together (one mini-batch order, from ``data_seed``, default
    the first seed). Yields Progress and one list of Point."""
    models = init_models(spec, seeds, resolve(device))
    per_model, mask_lists = [], []
    for d in densities:
        for k, model in enumerate(models):
            per_model.append(model)
            mask_lists.append(prune_at_init(model, method, float(d), data, int(seeds[k]), scope=scope, output=output))
        yield Progress(0.0, f"{method} masks at density {100 * d:.3g} %")
    stack = _stacked(per_model, mask_lists)
    order = int(seeds[0]) if data_seed is None else int(data_seed)
    records = yield from _train(stack, data, recipe, order, f"{method} at init", 0.0, 1.0)
    yield _points(method, stack, records[-1].test_accuracy, seeds)


def _random_masks(shapes, densities, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [keep_top(torch.rand(shape, generator=g), round(d * math.prod(shape)))
            for shape, d in zip(shapes, densities, strict=True)]


def rigl(data, spec, densities: Sequence[float], *, seeds: Sequence[int] = (0, 1, 2), recipe: Recipe = Recipe(),
         interval: int = 100, alpha: float = 0.3, layer_rule: str = "erk", static: bool = False,
         device=None) -> Iterator:
    """RigL (Evci et al. 2020): random masks at ERK (or uniform) layer densities, then every ``interval``
    steps drop/grow on the cosine schedule until 75 % of training; ``static=True`` is the static sparse
    baseline (the same masks, never updated). Yields Progress and one list of Point (``rigl`` or ``static``)."""
    models = init_models(spec, seeds, resolve(device))
    shapes = [tuple(layer.weight.shape) for layer in prunable(models[0])]
    rule = erk_densities if layer_rule == "erk" else uniform_densities
    per_model, mask_lists = [], []
    for d in densities:
        layer_d = rule(shapes, float(d))
        for k, model in enumerate(models):
            per_model.append(model)
            mask_lists.append(_random_masks(shapes, layer_d, int(seeds[k]) * 7 + 1))
    stack = _stacked(per_model, mask_lists)
    name = "static" if static else "rigl"
    schedule = None if static else RiglSchedule(interval=int(interval), alpha=float(alpha))
    records = yield from _train(stack, data, recipe, int(seeds[0]), "static sparse" if static else "RigL", 0.0, 1.0,
                                rigl=schedule)
    yield _points(name, stack, records[-1].test_accuracy, seeds)


def dct_sparse(data, spec, densities: Sequence[float], *, seeds: Sequence[int] = (0, 1, 2),
               recipe: Recipe = Recipe(), device=None) -> Iterator:
    """DCT-plus-sparse networks (Price & Tanner 2021): every layer s·Dᵀ + S ⊙ M with S zero at init on a
    random support of the given density in each layer. Yields Progress and one list of Point (``dct``)."""
    dev = resolve(device)
    sizes = spec.sizes if hasattr(spec, "sizes") else spec
    shapes = [(b, a) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    weights = [torch.zeros(len(densities) * len(seeds), *s, device=dev) for s in shapes]
    biases = [torch.zeros(len(densities) * len(seeds), s[0], device=dev) for s in shapes]
    mask_lists = []
    for d in densities:
        for s in seeds:
            mask_lists.append(_random_masks(shapes, uniform_densities(shapes, float(d)), int(s) * 13 + 5))
    stacked = [torch.stack([ms[i] for ms in mask_lists]) for i in range(len(shapes))]
    stack = Stack(weights, biases, stacked, dct=True, phi=getattr(spec, "phi", "relu"))
    records = yield from _train(stack, data, recipe, int(seeds[0]), "DCT + sparse", 0.0, 1.0)
    yield _points("dct", stack, records[-1].test_accuracy, seeds)


def sweep(data, spec, *, densities: Sequence[float], seeds: Sequence[int] = (0, 1, 2), recipe: Recipe = Recipe(),
          methods: Sequence[str] | None = None, rounds: int = 10, rate: float = 0.2, rewind: int = 0,
          scope: str = "global", output: str = "prune", rigl_interval: int = 100, rigl_alpha: float = 0.3,
          rigl_layers: str = "erk", device=None) -> Iterator:
    """Every method of the accuracy-against-density panel, each batched over densities and seeds, in the
    order they are drawn: dense and the lottery rounds (with their controls), one-shot magnitude pruning
    with fine-tuning, SNIP, GraSP, SynFlow, RigL and its static baseline, DCT + sparse.

    Yields what its parts yield, with Progress fractions spread over the whole sweep.
    """
    from core.pruning import METHODS

    chosen = list(METHODS) if methods is None else list(methods)
    for m in chosen:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    densities = [check_density(d) for d in densities]
    sparse = [d for d in densities if d < 1.0]
    stages = []
    trained: dict[str, Stack] = {}
    if {"imp", "reinit", "random_mask", "magnitude"} & set(chosen):
        controls = bool({"reinit", "random_mask"} & set(chosen))
        imp_rounds = rounds if {"imp", "reinit", "random_mask"} & set(chosen) else 0
        stages.append(("lottery", 1.0 + imp_rounds / 4, lambda: lottery(
            data, spec, seeds=seeds, recipe=recipe, rounds=imp_rounds, rate=rate, rewind=rewind, scope=scope,
            output=output, controls=controls, device=device)))
    if "magnitude" in chosen:
        stages.append(("magnitude", 1.0, lambda: one_shot(trained["dense"], data, sparse, seeds=seeds,
                                                           recipe=recipe, scope=scope, output=output)))
    for method in ("snip", "grasp", "synflow"):
        if method in chosen:
            stages.append((method, 1.0, lambda m=method: at_init(data, spec, m, sparse, seeds=seeds, recipe=recipe,
                                                                 scope=scope, output=output, device=device)))
    for name, static in (("rigl", False), ("static", True)):
        if name in chosen:
            stages.append((name, 1.0, lambda s=static: rigl(data, spec, sparse, seeds=seeds, recipe=recipe,
                                                            interval=rigl_interval, alpha=rigl_alpha,
                                                            layer_rule=rigl_layers, static=s, device=device)))
    if "dct" in chosen:
        stages.append(("dct", 1.0, lambda: dct_sparse(data, spec, sparse, seeds=seeds, recipe=recipe, device=device)))
    total = sum(w for _, w, _ in stages)
    done = 0.0
    for _name, weight, make in stages:
        for item in make():
            if isinstance(item, Progress):
                yield Progress((done + weight * item.fraction) / total, item.text)
            elif isinstance(item, DenseNets):
                trained["dense"] = item.stack
            else:
                yield item
        done += weight


@dataclass(frozen=True)
class SliderResult:
    """The trained dense net pruned by magnitude at ``density``, without retraining."""

    density: float
    accuracy: float
    layers: np.ndarray         # per-layer densities
    pixels: np.ndarray         # surviving first-layer weights per input (inputs,)
    unit: np.ndarray           # the chosen first-layer unit's incoming mask (inputs,)
    singular: np.ndarray       # singular values of the pruned second layer (first if only one)


def slider(weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor], x_test: torch.Tensor,
           y_test: torch.Tensor, density: float, *, scope: str = "global", output: str = "prune", unit: int = 0,
           phi: str = "relu") -> SliderResult:
    """Prune the trained weights by magnitude at ``density`` and evaluate at once (no copy of the model)."""
    pace()
    keep = masks([w.abs() for w in weights], density, scope, output=output)
    act = torch.relu if phi == "relu" else torch.tanh
    x_test, y_test = x_test.to(weights[0].device), y_test.to(weights[0].device)
    with torch.no_grad():
        h = x_test
        pruned = [w * m for w, m in zip(weights, keep, strict=True)]
        for i, (w, b) in enumerate(zip(pruned, biases, strict=True)):
            h = torch.nn.functional.linear(h, w, b)
            if i < len(pruned) - 1:
                h = act(h)
        accuracy = float((h.argmax(1) == y_test).float().mean())
        layer = pruned[1] if len(pruned) > 1 else pruned[0]
        # σ² = eigenvalues of WᵀW (float64): a tenth of an SVD's time, exact to ~1e-8 σ_max
        gram = layer.double().T @ layer.double()
        singular = np.sqrt(np.clip(torch.linalg.eigvalsh(gram).cpu().numpy()[::-1], 0.0, None))
    first = keep[0]
    return SliderResult(float(density), accuracy, layer_densities(keep), first.sum(0).cpu().numpy(),
                        first[min(unit, first.shape[0] - 1)].cpu().numpy().astype(float), singular)


def magnitude_curve(weights, biases, x_test, y_test, densities, **kw) -> np.ndarray:
    """Accuracy of the trained net pruned by magnitude at each density, no retraining."""
    return np.array([slider(weights, biases, x_test, y_test, float(d), **kw).accuracy for d in densities])


def layer_table(init_model, trained_weights, data, density: float, *, scope: str = "global",
                output: str = "prune", seed: int = 0) -> dict[str, list[torch.Tensor]]:
    """The masks at ``density`` of each way of choosing them: magnitude of the trained net, magnitude at
    init, SNIP, GraSP, SynFlow (100 rounds), random, and ERK's random masks."""
    out = {"magnitude": masks([w.abs() for w in trained_weights], density, scope, output=output)}
    out["init_magnitude"] = masks(scores(init_model, "magnitude"), density, scope, output=output)
    for method in ("snip", "grasp", "random"):
        out[method] = masks(scores(init_model, method, data, seed), density, scope, output=output)
    out["synflow"] = prune_at_init(init_model, "synflow", density, output=output)
    shapes = [tuple(layer.weight.shape) for layer in prunable(init_model)]
    out["erk"] = _random_masks(shapes, erk_densities(shapes, density), seed)
    return out


@dataclass(frozen=True)
class DenseNet:
    """A trained dense net and its initialisation (for pruning at init)."""

    init: torch.nn.Module
    weights: tuple              # trained (out, in) weights, per layer
    biases: tuple
    accuracy: float
    phi: str


def dense_net(data, spec, seed: int = 0, recipe=None, device=None) -> DenseNet:
    """The trained dense net every panel shares: ``core.models.train_cached(data, spec, recipe, seed)``
    (default ``core.models.Recipe()``: Adam, η = 1e-3, 10 epochs), its weights copied so the cached model is
    never touched, and its initialisation ``core.nets.build(spec, seed)`` (for pruning at init)."""
    from core import models, training

    trained = None
    for item in models.train_cached(data, spec, recipe or models.Recipe(), seed, device=device):
        if isinstance(item, models.Trained):
            trained = item
    model = trained.model
    layers = prunable(model)
    (init,) = init_models(spec, [seed], next(model.parameters()).device)
    _, accuracy = training.evaluate(model, data.x_test, data.y_test)
    return DenseNet(init, tuple(layer.weight.detach().clone() for layer in layers),
                    tuple(layer.bias.detach().clone() for layer in layers), float(accuracy), spec.phi)
