"""Which random networks train: the theory of lectures 2–3 put to the test on real networks.

* **Trainability grids** (Schoenholz, Gilmer, Ganguli, Sohl-Dickstein 2017, "Deep information
  propagation", arXiv:1611.01232, Fig. 6): networks over a grid of (σ_w², depth L) at one φ and σ_b are
  trained for a fixed budget on digits and their test accuracy is compared with the depth scale ξ_c:
  networks train when L ≲ 6 ξ_c. :func:`train_grid` streams the grid one depth at a time.
* **Noise limits depth** (Pretorius, van Biljon, Kroon, Kamper 2018, arXiv:1811.00293): the same for
  ReLU networks with multiplicative noise (dropout with keep probability p, or Gaussian ε ~ N(1, s²)) at
  their critical initialisation σ_w = √(2/μ₂), σ_b = 0, where ξ_c stays finite (``kind="noise"``).
* **Learning speed** (Pennington, Schoenholz, Ganguli 2017, "Resurrecting the sigmoid", arXiv:1711.04735,
  Fig. 5): the training loss of deep critical tanh networks with orthogonal and Gaussian weights and of
  ReLU networks, beside the variance of their Jacobian spectra (:func:`learning_speed`).

All the networks of one depth have the same shape, so they train together as one stacked model
(:class:`Stack`): weights ``(K, n_in, n_out)``, one ``torch.baddbmm`` per layer for all K, the K mean
losses summed and differentiated once. SGD (with momentum) acts element by element, so each network's
slice follows exactly the steps it would take alone (``tests/core/test_trainability.py`` checks this
against separate plain-torch runs). The noise multiplies every hidden layer's output φ(h) during
training only (the input is not noised, as in the theory) and each network draws it from its own
generator, so a network's run does not depend on what it is stacked with.

Finished depths are kept in a lock-protected cache keyed by everything that changes them (the grid's
φ, σ_b, noise, columns, depths, budget, seed and the data's key): a grid asked for again, or resumed
after a cancel, trains only the depths it lacks.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from core import activations
from core.propagation import critical_sigma_w, depth_scales, noise_mu2

GRID_KINDS = ("sigma_w", "noise")
GRID_NOISES = ("dropout", "gaussian")
NOISE_KINDS = ("none", "dropout", "gaussian")
MAX_CACHED_ROWS = 512


# ---------------------------------------------------------------------------------------------------
# budgets and grids


@dataclass(frozen=True)
class Budget:
    """How much training every network of a grid gets, and the grid's shape.

    Parameters
    ----------
    steps : int
        SGD steps per network (mini-batches of ``batch_size``; an epoch is a seeded permutation of the
        training set, its last incomplete batch dropped).
    width : int
        Units per hidden layer.
    lr, momentum : float
        torch.optim.SGD's learning rate and momentum, the same for every cell (Schoenholz et al. used one
        SGD setting for the whole grid).
    columns : int
        Grid points along σ_w² (or the noise strength).
    depths : tuple of int
        Depths L (hidden layers), trained shallowest first.
    seeds : int
        Networks per cell (independent initialisations and noise); the cell shows their mean accuracy.
    """

    steps: int = 300
    width: int = 48
    batch_size: int = 64
    lr: float = 1e-3
    momentum: float = 0.9
    columns: int = 16
    depths: tuple[int, ...] = tuple(range(4, 49, 4))
    seeds: int = 1

    def __post_init__(self) -> None:
        for name in ("steps", "width", "batch_size", "columns", "seeds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"budget {name} must be a whole number ≥ 1, got {value!r}")
        depths = tuple(int(d) for d in self.depths)
        if not depths or min(depths) < 1 or len(set(depths)) != len(depths):
            raise ValueError(f"budget depths must be distinct whole numbers ≥ 1, got {self.depths!r}")
        object.__setattr__(self, "depths", tuple(sorted(depths)))
        for name in ("lr", "momentum"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"budget {name} must be a finite number ≥ 0, got {value!r}")


BUDGETS = {
    # What the headless render draws: a few seconds a grid.
    "preview": Budget(steps=100, width=24, columns=8, depths=tuple(range(4, 25, 4))),
    # A first look: 8 × 8 cells, ~15 s a grid on one idle CPU core.
    "quick": Budget(steps=150, width=32, columns=8, depths=tuple(range(4, 33, 4))),
    # The lecture's grid: 16 × 12 cells, ≤ 3 min on one CPU core (tests/benchmarks/bench_trainability.py).
    "lecture": Budget(),
    # Three networks per cell for steadier maps (3× the time).
    "averaged": Budget(seeds=3),
}


@dataclass(frozen=True)
class Grid:
    """A trainability grid: what is trained in each cell.

    ``kind="sigma_w"``: columns are σ_w² (evenly spaced, bracketing the critical σ_w² of φ at σ_b), every
    network uses φ, σ_b and no noise (Schoenholz et al. 2017, Fig. 6). ``kind="noise"``: ReLU networks
    at their critical initialisation σ_w = √(2/μ₂), σ_b = 0, with the noise ``noise`` whose strength the
    columns set: keep probability p ∈ [0.1, 1] for dropout, s ∈ [0, 1.5] for Gaussian ε ~ N(1, s²)
    (Pretorius et al. 2018).
    """

    kind: str = "sigma_w"
    phi: str = "tanh"
    alpha: float = 0.5
    sigma_b: float = 0.05
    noise: str = "dropout"
    budget: Budget = field(default_factory=Budget)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in GRID_KINDS:
            raise ValueError(f"grid kind must be one of {', '.join(GRID_KINDS)}, got {self.kind!r}")
        if self.phi not in activations.NAMES:
            raise ValueError(f"unknown activation {self.phi!r}")
        if self.noise not in GRID_NOISES:
            raise ValueError(f"grid noise must be one of {', '.join(GRID_NOISES)}, got {self.noise!r}")
        if not (math.isfinite(self.sigma_b) and self.sigma_b >= 0):
            raise ValueError(f"σ_b must be a finite number ≥ 0, got {self.sigma_b!r}")
        if self.kind == "noise":
            # The noise grid is defined by its noise alone: φ and σ_b are fixed, so a change of the
            # panel's φ or σ_b must not invalidate it.
            object.__setattr__(self, "phi", "relu")
            object.__setattr__(self, "sigma_b", 0.0)
        else:
            object.__setattr__(self, "noise", "dropout")   # unused without noise: equal grids compare equal
        if self.phi != "shifted_relu":
            object.__setattr__(self, "alpha", 0.5)

    @property
    def activation(self) -> activations.Activation:
        return activations.get(self.phi, alpha=self.alpha) if self.phi == "shifted_relu" else activations.get(self.phi)

    def columns(self) -> np.ndarray:
        """The grid's x values: σ_w², or the keep probability p, or the noise s."""
        n = self.budget.columns
        if self.kind == "noise":
            return np.linspace(0.1, 1.0, n) if self.noise == "dropout" else np.linspace(0.0, 1.5, n)
        return np.linspace(*self.sigma_w2_range(), n)

    def sigma_w2_range(self) -> tuple[float, float]:
        """[1, 4] as in Schoenholz et al. Fig. 6, widened to bracket the critical σ_w² of φ at σ_b."""
        return _sigma_w2_range(self.phi, self.alpha, self.sigma_b)

    def mu2(self) -> np.ndarray:
        """E ε² of the noise in each column (1 without noise)."""
        x = self.columns()
        if self.kind == "sigma_w":
            return np.ones_like(x)
        if self.noise == "dropout":
            return np.array([noise_mu2("dropout", keep_prob=float(p)) for p in x])
        return np.array([noise_mu2("gaussian", noise_std=float(s)) for s in x])

    def sigma_w(self) -> np.ndarray:
        """σ_w in each column: √(column) for σ_w² columns; √(2/μ₂) (critical ReLU) for the noise grid."""
        if self.kind == "sigma_w":
            return np.sqrt(self.columns())
        return np.sqrt(2.0 / self.mu2())

    def xi_c(self) -> np.ndarray:
        """The correlation depth scale ξ_c of each column (Schoenholz et al. 2017, eq. 9; with noise,
        Pretorius et al. 2018): inf where it diverges."""
        return np.asarray(depth_scales(self.sigma_w(), self.sigma_b, self.activation, self.mu2())[1], float)

    def noise_of_column(self, i: int) -> tuple[str, float]:
        if self.kind == "sigma_w":
            return "none", 0.0
        return self.noise, float(self.columns()[i])

    def key(self, data_key: str) -> tuple:
        return (self.kind, self.phi, self.alpha, round(self.sigma_b, 12), self.noise if self.kind == "noise" else "",
                self.budget, self.seed, data_key)


@lru_cache(maxsize=256)
def _sigma_w2_range(phi: str, alpha: float, sigma_b: float) -> tuple[float, float]:
    act = activations.get(phi, alpha=alpha) if phi == "shifted_relu" else activations.get(phi)
    crit = float(critical_sigma_w(sigma_b, act))
    if not math.isfinite(crit) or crit <= 0:
        return 1.0, 4.0
    c2 = crit * crit
    return min(1.0, 0.5 * c2), min(max(4.0, 2.5 * c2), 16.0)


@dataclass(frozen=True)
class Progress:
    """How far a running grid (or learning-speed run) has got, 0 … 1, between its streamed results."""

    fraction: float
    label: str = ""


@dataclass(frozen=True)
class GridResult:
    """The grid so far: ``accuracy[i, j]`` is the mean test accuracy at depth ``depths[i]`` and column
    ``columns[j]`` (NaN where not trained yet, or where every network of the cell diverged); ``done[i]``
    says whether depth i is finished; ``diverged[i, j]`` counts the cell's networks whose loss became
    NaN or inf."""

    grid: Grid
    data_key: str
    columns: np.ndarray
    depths: np.ndarray
    accuracy: np.ndarray
    accuracy_sd: np.ndarray
    diverged: np.ndarray
    done: np.ndarray
    xi_c: np.ndarray
    chance: float
    seconds: float
    device: str

    @property
    def complete(self) -> bool:
        return bool(self.done.all())


@dataclass(frozen=True)
class _Row:
    accuracy: np.ndarray      # (seeds, columns)
    diverged: np.ndarray      # (seeds, columns) bool
    seconds: float


_cache_lock = threading.Lock()
_rows: OrderedDict[tuple, _Row] = OrderedDict()


def cached_rows(grid: Grid, data_key: str) -> dict[int, _Row]:
    """The finished depths of ``grid`` on ``data_key`` held in the cache (depth → row)."""
    key = grid.key(data_key)
    with _cache_lock:
        return {d: _rows[key, d] for d in grid.budget.depths if (key, d) in _rows}


def _store(key: tuple, depth: int, row: _Row) -> None:
    with _cache_lock:
        _rows[key, depth] = row
        _rows.move_to_end((key, depth))
        while len(_rows) > MAX_CACHED_ROWS:
            _rows.popitem(last=False)


def clear_cache() -> None:
    """Forget every finished grid row."""
    with _cache_lock:
        _rows.clear()


# ---------------------------------------------------------------------------------------------------
# stacked networks


class Stack:
    """K fully connected networks of one shape as stacked tensors: ``weights[l]`` is ``(K, n_in, n_out)``
    (the transpose of nn.Linear's weight), ``biases[l]`` is ``(K, 1, n_out)``; the last layer is the
    linear read-out.

    ``phis`` gives each network's φ (one Activation for all, or K of them); ``noises`` each network's
    multiplicative noise ``(kind, value)`` with kind in ``none``, ``dropout`` (value = keep p) or
    ``gaussian`` (value = s), and ``noise_seeds`` the seed of its own noise generator.
    """

    def __init__(self, weights, biases, phis, noises=None, noise_seeds=None):
        self.weights = list(weights)
        self.biases = list(biases)
        k = self.weights[0].shape[0]
        self.k = k
        phis = [phis] * k if isinstance(phis, activations.Activation | str) else list(phis)
        if len(phis) != k:
            raise ValueError(f"{len(phis)} activations for {k} networks")
        phis = [activations.resolve(p) for p in phis]
        # Consecutive networks with one φ share one call per layer.
        self.groups: list[tuple[slice, activations.Activation]] = []
        start = 0
        for i in range(1, k + 1):
            if i == k or phis[i].label != phis[start].label or phis[i].name != phis[start].name:
                self.groups.append((slice(start, i), phis[start]))
                start = i
        self.noises = list(noises) if noises is not None else [("none", 0.0)] * k
        if len(self.noises) != k:
            raise ValueError(f"{len(self.noises)} noise settings for {k} networks")
        for kind, value in self.noises:
            if kind not in NOISE_KINDS:
                raise ValueError(f"unknown noise {kind!r}; known: {', '.join(NOISE_KINDS)}")
            if kind == "dropout" and not 0.0 < value <= 1.0:
                raise ValueError(f"dropout keep probability must be in (0, 1], got {value}")
            if kind == "gaussian" and not value >= 0.0:
                raise ValueError(f"Gaussian noise s must be ≥ 0, got {value}")
        self.noise_seeds = list(noise_seeds) if noise_seeds is not None else list(range(k))
        self._generators = None

    @classmethod
    def from_models(cls, models: Sequence, phis, noises=None, noise_seeds=None, device=None) -> Stack:
        """Stack networks built by :func:`core.nets.build` (their ``linears``), copied onto ``device``."""
        import torch

        from core.device import resolve

        dev = resolve(device)
        layers = len(models[0].linears)
        weights, biases = [], []
        with torch.no_grad():
            for i in range(layers):
                weights.append(torch.stack([m.linears[i].weight.detach().t() for m in models]).to(dev).contiguous())
                biases.append(torch.stack([m.linears[i].bias.detach()[None, :] for m in models]).to(dev).contiguous())
        for t in weights + biases:
            t.requires_grad_(True)
        return cls(weights, biases, phis, noises, noise_seeds)

    @property
    def parameters(self) -> list:
        return self.weights + self.biases

    @property
    def noisy(self) -> bool:
        quiet = {("dropout", 1.0), ("gaussian", 0.0)}
        return any(kind != "none" and (kind, value) not in quiet for kind, value in self.noises)

    def _phi(self, h):
        if len(self.groups) == 1:
            return self.groups[0][1].torch(h)
        import torch

        return torch.cat([phi.torch(h[s]) for s, phi in self.groups])

    def _multiplier(self, shape):
        """The noise ε of one step, ``(K, *shape)``: network k's from its own generator, drawn in one call
        (ones without noise); ``shape`` is (hidden layers, batch, width)."""
        import torch

        dev = self.weights[0].device
        if self._generators is None:
            self._generators = [torch.Generator(device=dev).manual_seed(int(s)) for s in self.noise_seeds]
        out = []
        for (kind, value), gen in zip(self.noises, self._generators, strict=True):
            if kind == "dropout":
                out.append((torch.rand(shape, generator=gen, device=dev) < value).to(torch.float32) / value)
            elif kind == "gaussian":
                out.append(1.0 + value * torch.randn(shape, generator=gen, device=dev))
            else:
                out.append(torch.ones(shape, device=dev))
        return torch.stack(out)

    def forward(self, x, noise: bool = False):
        """Logits ``(K, n, classes)`` of all K networks for inputs ``x`` ``(n, inputs)``; ``noise`` turns on
        the training-time multiplicative noise on every hidden layer's φ(h) (all layers' ε of a step are
        drawn at once, layer after layer in one tensor, from each network's own generator)."""
        import torch

        h = torch.matmul(x, self.weights[0]) + self.biases[0]
        eps = None
        if noise and self.noisy:
            eps = self._multiplier((len(self.weights) - 1, x.shape[0], h.shape[-1]))
        for i, (w, b) in enumerate(zip(self.weights[1:], self.biases[1:], strict=True)):
            a = self._phi(h)
            if eps is not None:
                a = a * eps[:, i]
            h = torch.baddbmm(b, a, w)
        return h

    def accuracy(self, x, y, chunk: int = 4096) -> np.ndarray:
        """Test accuracy of each network (noise off), NaN for a network whose logits are not finite."""
        import torch

        correct = torch.zeros(self.k, dtype=torch.float64, device=x.device)
        finite = torch.ones(self.k, dtype=torch.bool, device=x.device)
        with torch.no_grad():
            for i in range(0, x.shape[0], chunk):
                logits = self.forward(x[i:i + chunk])
                finite &= torch.isfinite(logits).all(dim=(1, 2))
                correct += (logits.argmax(-1) == y[i:i + chunk]).sum(1).double()
        acc = (correct / x.shape[0]).cpu().numpy()
        acc[~finite.cpu().numpy()] = np.nan
        return acc


@dataclass(frozen=True)
class StackRecord:
    """Where K stacked runs stand after ``step`` steps: ``train_loss`` (K,) is the mean mini-batch loss over
    the steps since the previous record; ``alive`` is False for a run whose loss became NaN or inf (its
    loss then stays NaN); ``accuracy`` (K,) is the test accuracy, on the final record only."""

    step: int
    train_loss: np.ndarray
    alive: np.ndarray
    accuracy: np.ndarray | None = None


def batches(n: int, batch_size: int, steps: int, seed: int) -> Iterator:
    """The mini-batch indices of ``steps`` steps: a torch.randperm of n from a generator seeded with
    ``seed`` per epoch, cut into batches of ``batch_size`` (an incomplete last batch is dropped)."""
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    batch = min(int(batch_size), n)
    per_epoch = n // batch
    step = 0
    while step < steps:
        perm = torch.randperm(n, generator=gen)
        for i in range(per_epoch):
            if step >= steps:
                return
            yield perm[i * batch:(i + 1) * batch]
            step += 1


def _sgd_step(params, velocity: list, lr: float, momentum: float) -> None:
    """One step of torch.optim.SGD's rule (no dampening, weight decay or Nesterov): v ← g on the first step,
    v ← μ v + g after, θ ← θ − η v. Written out because constructing the first torch.optim optimiser
    imports torch._dynamo, holding the interpreter lock (and so the GUI) for ~0.4 s; the tests check
    this against torch.optim.SGD itself."""
    for i, p in enumerate(params):
        g = p.grad
        if momentum:
            if velocity[i] is None:
                velocity[i] = g.clone()
            else:
                velocity[i].mul_(momentum).add_(g)
            g = velocity[i]
        p.add_(g, alpha=-lr)


def train_stack(stack: Stack, data, *, steps: int, batch_size: int = 64, lr: float = 1e-3, momentum: float = 0.9,
                seed: int = 0, every: int = 10) -> Iterator[StackRecord]:
    """Train all K networks of ``stack`` in place by SGD with momentum (torch.optim.SGD's update on the
    stacked tensors: it is element-wise, so each slice moves exactly as its network would alone), on the
    cross-entropy of ``data`` (a :class:`core.data.Dataset` on the stack's device).

    Yields a :class:`StackRecord` every ``every`` steps and a final one (with the test accuracy) after the
    last step; closing the generator stops it at its next record. A network whose loss becomes NaN or
    inf stops contributing (its gradient is zero from then on) and is reported dead; the others go on.
    """
    import torch
    import torch.nn.functional as F

    x, y = data.x_train, data.y_train
    params = stack.parameters
    velocity = [None] * len(params)
    alive = torch.ones(stack.k, dtype=torch.bool, device=x.device)
    total = torch.zeros(stack.k, dtype=torch.float64, device=x.device)
    since = 0
    for step, idx in enumerate(batches(x.shape[0], batch_size, steps, seed), start=1):
        idx = idx.to(x.device)
        logits = stack.forward(x[idx], noise=True)
        labels = y[idx].expand(stack.k, -1)
        losses = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(1)
        alive &= torch.isfinite(losses)
        for p in params:
            p.grad = None
        torch.where(alive, losses, torch.zeros_like(losses)).sum().backward()
        with torch.no_grad():
            if not bool(alive.all()):   # a dead net's NaN weights would put NaN in its own slice's gradient
                for p in params:
                    p.grad[~alive] = 0.0
            _sgd_step(params, velocity, lr, momentum)
        total += torch.where(alive, losses.detach().double(), torch.full_like(total, math.nan))
        since += 1
        if step % every == 0 and step < steps:
            yield StackRecord(step, (total / since).cpu().numpy(), alive.cpu().numpy())
            total.zero_()
            since = 0
    loss = (total / max(since, 1)).cpu().numpy()
    yield StackRecord(steps, loss, alive.cpu().numpy(), stack.accuracy(data.x_test, data.y_test))


# ---------------------------------------------------------------------------------------------------
# grids


def _grid_stack(grid: Grid, depth: int, device, inputs: int, classes: int) -> Stack:
    """All columns × seeds of one depth as one stack, initialised by :func:`core.nets.build` (gaussian
    init: W ~ N(0, σ_w²/N_in), b ~ N(0, σ_b²); the same seed draws the same normal numbers for every
    column, so neighbouring cells differ by σ_w only)."""
    from core.nets import NetSpec, build

    b = grid.budget
    sws = grid.sigma_w()
    models, noises, noise_seeds = [], [], []
    for s in range(b.seeds):
        for j, sw in enumerate(sws):
            spec = NetSpec(inputs, (b.width,) * depth, classes, phi=grid.phi, init="gaussian",
                           sigma_w=float(sw), sigma_b=grid.sigma_b)
            models.append(build(spec, seed=grid.seed * 1000 + s, device="cpu"))
            noises.append(grid.noise_of_column(j))
            noise_seeds.append(((grid.seed * 1000 + s) * 1000 + j) * 1000 + depth)
    return Stack.from_models(models, grid.activation, noises, noise_seeds, device=device)


def train_grid(grid: Grid, data, *, device=None, every: int = 10) -> Iterator[GridResult | Progress]:
    """Train ``grid`` on ``data`` depth by depth (all its columns and seeds at once), yielding a
    :class:`Progress` every ``every`` steps and the :class:`GridResult` so far after each depth; the last
    item is the complete grid. Depths already in the cache are not trained again (a cancelled grid
    resumes where it stopped). Closing the generator stops it within ``every`` steps.

    Raises
    ------
    ValueError
        ``data`` is not a classification dataset.
    """
    from core.device import describe, resolve

    if getattr(data, "classes", 0) <= 0:
        raise ValueError(f"trainability needs a classification dataset; {data.name} is regression")
    dev = resolve(device)
    b = grid.budget
    key = grid.key(data.key)
    columns = grid.columns()
    depths = np.array(b.depths)
    xi_c = grid.xi_c()
    shape = (len(depths), len(columns))
    acc, sd, div = np.full(shape, np.nan), np.full(shape, np.nan), np.zeros(shape, int)
    done = np.zeros(len(depths), bool)
    seconds = 0.0
    weights = depths + 1.0
    on_device = data.to(dev)

    def fill(i: int, row: _Row) -> None:
        acc[i], sd[i] = _mean_sd(row.accuracy, axis=0)
        div[i] = row.diverged.sum(0)
        done[i] = True

    def result() -> GridResult:
        return GridResult(grid, data.key, columns, depths, acc.copy(), sd.copy(), div.copy(), done.copy(), xi_c,
                          1.0 / data.classes, seconds, describe(dev))

    for i, row in ((i, r) for i, d in enumerate(depths) if (r := cached_rows(grid, data.key).get(int(d)))):
        fill(i, row)
        seconds += row.seconds
    if done.any():
        yield result()
    for i, depth in enumerate(depths):
        if done[i]:
            continue
        start = time.perf_counter()
        stack = _grid_stack(grid, int(depth), dev, data.inputs, data.classes)
        before = weights[done].sum()
        for record in train_stack(stack, on_device, steps=b.steps, batch_size=b.batch_size, lr=b.lr,
                                  momentum=b.momentum, seed=grid.seed * 1000 + int(depth), every=every):
            if record.accuracy is None:
                frac = (before + weights[i] * record.step / b.steps) / weights.sum()
                yield Progress(float(frac), f"L = {depth}: step {record.step} of {b.steps}")
                continue
            elapsed = time.perf_counter() - start
            row = _Row(record.accuracy.reshape(b.seeds, len(columns)),
                       ~record.alive.reshape(b.seeds, len(columns)), elapsed)
            _store(key, int(depth), row)
            fill(i, row)
            seconds += elapsed
            yield result()
    if not done.any():
        yield result()


# ---------------------------------------------------------------------------------------------------
# learning speed (Pennington, Schoenholz, Ganguli 2017, Fig. 5)


@dataclass(frozen=True)
class SpeedRun:
    """One curve of the learning-speed plot: φ, the weight distribution and the initialisation."""

    phi: str
    weights: str
    sigma_w: float
    sigma_b: float

    @property
    def label(self) -> str:
        return f"{activations.LABELS[self.phi]}, {self.weights}"


@lru_cache(maxsize=8)
def speed_runs(sigma_b_tanh: float = 0.015) -> tuple[SpeedRun, ...]:
    """The paper's comparison at criticality χ = 1: tanh with orthogonal and with Gaussian weights at a
    small q* (σ_b small, σ_w = critical σ_w of tanh at that σ_b), and ReLU (σ_w = √2, σ_b = 0) with each."""
    sw_tanh = float(critical_sigma_w(sigma_b_tanh, "tanh"))
    return (SpeedRun("tanh", "orthogonal", sw_tanh, sigma_b_tanh), SpeedRun("tanh", "gaussian", sw_tanh, sigma_b_tanh),
            SpeedRun("relu", "orthogonal", math.sqrt(2.0), 0.0), SpeedRun("relu", "gaussian", math.sqrt(2.0), 0.0))


@dataclass(frozen=True)
class SpeedResult:
    """Training-loss curves: ``loss[r]`` the mean over seeds of run r's mini-batch loss at ``steps``
    (``loss_sd`` their spread); ``variance[r]`` the variance of the eigenvalues of JJᵀ the theory gives
    (:func:`core.spectra.theory_moments`); ``accuracy[r]`` the final test accuracy (on the last result)."""

    runs: tuple[SpeedRun, ...]
    depth: int
    width: int
    steps: np.ndarray
    loss: np.ndarray
    loss_sd: np.ndarray
    variance: np.ndarray
    accuracy: np.ndarray | None
    done: bool
    device: str


def learning_speed(data, *, depth: int = 32, width: int = 64, steps: int = 400, batch_size: int = 64,
                   lr: float = 1e-3, momentum: float = 0.9, seeds: int = 2, seed: int = 0,
                   runs: Sequence[SpeedRun] | None = None, every: int = 10,
                   device=None) -> Iterator[SpeedResult]:
    """Train every run of :func:`speed_runs` (``seeds`` networks each, all stacked into one model) and
    yield the loss curves every ``every`` steps; the last result has ``done`` and the test accuracies."""
    from core.device import describe, resolve
    from core.nets import NetSpec, build
    from core.spectra import theory_moments

    if getattr(data, "classes", 0) <= 0:
        raise ValueError(f"learning speed needs a classification dataset; {data.name} is regression")
    dev = resolve(device)
    runs = tuple(runs) if runs is not None else speed_runs()
    models, phis = [], []
    for run in runs:
        for s in range(seeds):
            spec = NetSpec(data.inputs, (width,) * depth, data.classes, phi=run.phi, init=run.weights,
                           sigma_w=run.sigma_w, sigma_b=run.sigma_b)
            models.append(build(spec, seed=seed * 1000 + s, device="cpu"))
            phis.append(run.phi)
    stack = Stack.from_models(models, phis, device=dev)
    variance = np.array([theory_moments(r.phi, r.sigma_w, r.sigma_b, depth, weights=r.weights)[1] for r in runs])
    xs: list[int] = []
    curves: list[np.ndarray] = []

    def result(accuracy=None) -> SpeedResult:
        loss = np.array(curves).reshape(len(xs), len(runs), seeds).transpose(1, 0, 2)   # (runs, records, seeds)
        mean, spread = _mean_sd(loss, axis=2)
        acc = None if accuracy is None else _mean_sd(accuracy.reshape(len(runs), seeds), axis=1)[0]
        return SpeedResult(runs, depth, width, np.array(xs), mean, spread, variance, acc, accuracy is not None,
                           describe(dev))

    on_device = data.to(dev)
    for record in train_stack(stack, on_device, steps=steps, batch_size=batch_size, lr=lr, momentum=momentum,
                              seed=seed, every=every):
        xs.append(record.step)
        curves.append(record.train_loss)
        yield result(record.accuracy)


def _mean_sd(a: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over the finite entries along ``axis`` (NaN where there are none)."""
    ok = np.isfinite(a)
    count = ok.sum(axis)
    filled = np.where(ok, a, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis) / count
        var = np.where(ok, (a - np.expand_dims(mean, axis)) ** 2, 0.0).sum(axis) / count
    return np.where(count > 0, mean, np.nan), np.where(count > 0, np.sqrt(var), np.nan)


def with_budget(grid: Grid, name: str) -> Grid:
    """``grid`` with the named budget of :data:`BUDGETS`."""
    return replace(grid, budget=BUDGETS[name])
