"""Trained models shared between panels, and saved as ``.safetensors`` files with their JSON spec (never pickle).

The cache is keyed by (data key, net spec, recipe, seed): the first panel that asks for a trained digits
network trains it with progress (:func:`train_cached` yields the training records), the others get the same
:class:`Trained` at once. A cached model is shared: copy it (``core.nets.clone``) before pruning or training.

A model file is safetensors (the weights, float32) whose metadata holds ``format = "edge-of-chaos/model"``,
``version = 1``, the spec, recipe, data key and seed as JSON. :func:`open` refuses, naming the problem, a file
that is not safetensors, that lacks that metadata, whose tensors are missing, extra, of the wrong shape for its
spec or not finite, or (given ``data_key``) that was trained on other data than the panel's.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.nets import NetSpec

FORMAT = "edge-of-chaos/model"
VERSION = 1
CACHE_SIZE = 32


class ModelFileError(ValueError):
    """A model file was refused; the message names the file and the problem."""


@dataclass(frozen=True)
class Recipe:
    """How a network is trained: ``core.training.train(model, data, optimizer=…, lr=…, epochs=…,
    batch_size=…, schedule=…, **dict(hyper))``. The default trains the digits MLP to ≥ 95 % test accuracy."""

    optimizer: str = "adam"
    lr: float = 1e-3
    epochs: int = 10
    batch_size: int | None = 64
    schedule: str = "constant"
    hyper: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        hyper = self.hyper.items() if isinstance(self.hyper, dict) else self.hyper
        object.__setattr__(self, "hyper", tuple(sorted((str(k), _hashable(v)) for k, v in hyper)))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hyper"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.hyper}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        if not isinstance(d, dict):
            raise ValueError(f"a recipe is a JSON object, got {type(d).__name__}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown recipe field(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    def train_kwargs(self) -> dict[str, Any]:
        return dict(optimizer=self.optimizer, lr=self.lr, epochs=self.epochs, batch_size=self.batch_size,
                    schedule=self.schedule, **dict(self.hyper))


def _hashable(value):
    return tuple(value) if isinstance(value, list | tuple) else value


@dataclass(frozen=True, eq=False)
class Trained:
    """A trained network with what made it: ``model`` (an ``nn.Module`` from ``core.nets.build``), its ``spec``,
    ``recipe``, the ``data_key`` of the Dataset it was trained on, ``seed`` and the training ``history``."""

    model: Any
    spec: NetSpec
    recipe: Recipe
    data_key: str
    seed: int
    history: tuple = field(default=(), repr=False)

    @property
    def test_accuracy(self) -> float | None:
        return self.history[-1].test_accuracy if self.history else None


_lock = threading.Lock()
_cache: OrderedDict[tuple, Trained] = OrderedDict()


def _key(data_key: str, spec: NetSpec, recipe: Recipe, seed: int) -> tuple:
    return (data_key, spec, recipe, int(seed))


def cached(data, spec: NetSpec, recipe: Recipe = Recipe(), seed: int = 0) -> Trained | None:
    """The cached Trained for (data, spec, recipe, seed), or None. ``data`` is a Dataset or its key."""
    key = _key(getattr(data, "key", data), spec, recipe, seed)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
        return hit


def remember(trained: Trained) -> Trained:
    """Put ``trained`` in the cache (the one already there for its key wins, so every panel shares one)."""
    key = _key(trained.data_key, trained.spec, trained.recipe, trained.seed)
    with _lock:
        kept = _cache.setdefault(key, trained)
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        return kept


def clear() -> None:
    """Forget every cached model."""
    with _lock:
        _cache.clear()


def train_cached(data, spec: NetSpec, recipe: Recipe = Recipe(), seed: int = 0, device=None,
                 every: int | None = None) -> Iterator:
    """Yield the TrainingRecords of training ``build(spec, seed)`` on ``data`` by ``recipe`` — nothing if that
    model is cached — and finally the :class:`Trained` (shared: do not modify it in place).

    Raises
    ------
    core.training.Diverged
        The recipe diverged; nothing is cached.
    """
    hit = cached(data, spec, recipe, seed)
    if hit is not None:
        yield hit
        return
    from core import nets, training

    model = nets.build(spec, seed=seed, device=device)
    history = []
    for record in training.train(model, data, seed=seed, device=device, every=every, **recipe.train_kwargs()):
        history.append(record)
        yield record
    model.eval()
    yield remember(Trained(model, spec, recipe, data.key, int(seed), tuple(history)))


# ---------------------------------------------------------------------------------------------------------
# files


def save(path, trained: Trained) -> Path:
    """Write ``trained`` as safetensors with its spec, recipe, data key and seed in the metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in trained.model.state_dict().items()
               if v.is_floating_point()}
    history = [asdict(r) for r in trained.history]
    metadata = {"format": FORMAT, "version": str(VERSION), "spec": json.dumps(trained.spec.to_dict()),
                "recipe": json.dumps(trained.recipe.to_dict()), "data_key": trained.data_key,
                "seed": str(int(trained.seed)), "history": json.dumps(history)}
    save_file(tensors, str(path), metadata=metadata)
    return path


def open(path, data_key: str | None = None, device=None) -> Trained:  # noqa: A001 - the contract's name
    """The Trained model in ``path``.

    Parameters
    ----------
    data_key : str, optional
        The key of the Dataset the caller works on: a model trained on other data is refused.

    Raises
    ------
    ModelFileError
        Naming the file and the problem: unreadable, not safetensors, not an Edge of Chaos model, a bad spec,
        tensors missing, extra, of the wrong shape or not finite, or trained on other data.
    """
    import torch
    from safetensors import safe_open

    from core import nets, training

    path = Path(path)
    name = path.name
    if not path.is_file():
        raise ModelFileError(f"{name}: no such file")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as err:  # safetensors raises its own SafetensorError, OSError, or ValueError on garbage
        text = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise ModelFileError(f"{name}: not a safetensors model file ({text})") from err
    if metadata.get("format") != FORMAT:
        raise ModelFileError(f"{name}: a safetensors file, but not an Edge of Chaos model (its metadata has no "
                             f"format \"{FORMAT}\")")
    if metadata.get("version") != str(VERSION):
        raise ModelFileError(f"{name}: model file version {metadata.get('version')!r}; "
                             f"this app reads version {VERSION}")
    try:
        spec = NetSpec.from_dict(json.loads(metadata["spec"]))
        recipe = Recipe.from_dict(json.loads(metadata.get("recipe", "{}")))
        seed = int(metadata.get("seed", "0"))
        history = tuple(training.TrainingRecord(**r) for r in json.loads(metadata.get("history", "[]")))
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{name}: its spec is unreadable ({err})") from err
    stored_key = metadata.get("data_key", "")
    if data_key is not None and stored_key != data_key:
        raise ModelFileError(f"{name}: trained on {stored_key or 'unknown data'}, not on this panel's data "
                             f"({data_key})")
    with torch.device("cpu"):
        model = nets.mlp_class()(spec)
    expected = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing:
        raise ModelFileError(f"{name}: tensors missing for its spec: {', '.join(missing[:4])}"
                             f"{' …' if len(missing) > 4 else ''}")
    if extra:
        raise ModelFileError(f"{name}: tensors its spec has no place for: {', '.join(extra[:4])}"
                             f"{' …' if len(extra) > 4 else ''}")
    for k, v in expected.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise ModelFileError(f"{name}: tensor {k} has shape {tuple(tensors[k].shape)}, its spec needs "
                                 f"{tuple(v.shape)}")
        if not bool(torch.isfinite(tensors[k]).all()):
            raise ModelFileError(f"{name}: tensor {k} holds NaN or infinite values")
    state = model.state_dict()
    state.update({k: tensors[k].to(state[k].dtype) for k in expected})
    model.load_state_dict(state)
    model.eval()
    from core.device import resolve

    return Trained(model.to(resolve(device)), spec, recipe, stored_key, seed, history)
