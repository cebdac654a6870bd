"""Loss surfaces: L(θ + α d₁ + β d₂) on a grid, interpolations and the training path's PCA plane.

Every point of a frame is one parameter set ``θ_p = base + Σ_k c_pk D_k``; all of them are evaluated
together as one batched computation, chunked so memory stays bounded — never a Python loop over points.

- A chain of ``nn.Linear`` and element-wise activations (``nn.Sequential``, the default nets) goes the
  fast way: each layer is one ``torch.baddbmm`` over the stacked weights of a chunk of points, and the
  first layer is exact by linearity, ``X(W + Σ c_k D_k)ᵀ = XWᵀ + Σ c_k XD_kᵀ``, so it costs one matmul
  per direction for the whole grid instead of one per point.
- Anything else (batch-norm, residual blocks, …) goes through ``torch.func.functional_call`` under
  ``torch.func.vmap`` over the stacked parameter sets.

Batch-norm models are evaluated in eval mode (the stored running statistics) or, with
``bn="recompute"``, with the statistics recomputed at every point over the whole evaluated set (Li et
al.'s code; Garipov et al. recompute them along the curve).

References: Li et al. 2018 (arXiv:1712.09913) §3–§4 and Fig. 9 (PCA of the trajectory); Goodfellow,
Vinyals, Saxe, "Qualitatively characterizing neural network optimization problems", ICLR 2015 (linear
interpolation).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core import device as devices
from core.landscape.directions import check_direction, difference, flatten, parameters_of, unflatten
from core.pace import pace

MAX_SPAN = 100.0          # |α|, |β| beyond this the weights are rescaled past anything meaningful
MAX_STEPS = 401           # per axis
CHUNK_BYTES = 3 << 20     # activations of one chunk of points (fast path): small enough to stay in cache
GROUP_BYTES = 8 << 20     # one group's per-point weights and logits (fast path)
VMAP_CHUNK_BYTES = 48 << 20
DATA_CHUNK = 4096         # samples per data chunk (eval-mode models only)
BN_MODES = ("eval", "recompute")
SPLITS = ("train", "test")

ELEMENTWISE = (torch.nn.ReLU, torch.nn.Tanh, torch.nn.Sigmoid, torch.nn.GELU, torch.nn.SiLU, torch.nn.ELU,
               torch.nn.LeakyReLU, torch.nn.Softplus, torch.nn.Hardtanh, torch.nn.Identity, torch.nn.Dropout)


@dataclass(frozen=True)
class Evaluation:
    """Loss (and accuracy) of P parameter sets; non-finite losses are NaN and counted in ``masked``."""

    loss: np.ndarray
    accuracy: np.ndarray | None
    masked: int
    seconds: float
    device: str


@dataclass(frozen=True)
class Surface:
    """A 1-D or 2-D slice. ``loss[i]`` (1-D) or ``loss[i, j]`` (2-D) is L(θ + alphas[i] d₁ + betas[j] d₂)."""

    alphas: np.ndarray
    betas: np.ndarray | None
    loss: np.ndarray
    accuracy: np.ndarray | None
    masked: int
    seconds: float
    device: str

    @property
    def note(self) -> str:
        """'' or a sentence saying how many points overflowed and were masked."""
        if not self.masked:
            return ""
        return (f"{self.masked} of {self.loss.size} points overflowed (loss not finite) and are masked: "
                "narrow the span")


# -- data ----------------------------------------------------------------------------------------------

def data_arrays(data, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of a Dataset's ``split`` or of an ``(x, y)`` pair."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    if hasattr(data, "x_train"):
        x, y = (data.x_train, data.y_train) if split == "train" else (data.x_test, data.y_test)
    else:
        try:
            x, y = data
        except (TypeError, ValueError):
            raise ValueError("data must be a Dataset or an (x, y) pair of tensors") from None
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"x has {x.shape[0]} samples and y {y.shape[0]}: they must match and not be empty")
    return x, y


def is_classification(y: torch.Tensor) -> bool:
    return not torch.is_floating_point(y)


def loss_sums(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per parameter set: the sum over samples of the loss and of correct predictions.

    ``out`` is (P, n, C). Cross-entropy for integer labels; squared error averaged over the C outputs for
    float targets (so the mean over samples is torch's ``mse_loss``).
    """
    p, n, c = out.shape
    if is_classification(y):
        # log-sum-exp by hand: 3× faster than cross_entropy's row-wise log_softmax for ten classes
        top = out.amax(-1, keepdim=True)
        lse = (out - top).exp_().sum(-1).log_() + top[..., 0]
        picked = out.gather(-1, y.expand(p, n).unsqueeze(-1))[..., 0]
        correct = (out.argmax(-1) == y).sum(1)
        return (lse - picked).sum(1), correct
    target = y.reshape(1, n, -1)
    return 0.5 * ((out - target) ** 2).sum(-1).sum(1), None


def mean_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss of one parameter set's outputs (n, C): cross-entropy, or ½ Σ_outputs (ŷ − y)² averaged over samples."""
    if is_classification(y):
        return F.cross_entropy(out, y)
    return 0.5 * (out - y.reshape(out.shape)).pow(2).sum(-1).mean()


# -- the batched evaluator ------------------------------------------------------------------------------

def linear_plan(model: torch.nn.Module):
    """The model as layers ``(weight index, bias index or None, post, skip)`` — h ← post(W h + b), or
    h ← h + post(W h + b) when ``skip`` — for a chain of Linear layers and element-wise activations
    (``nn.Sequential``) or a ``core.nets`` MLP without batch-norm; None for anything else.

    Indices are positions in ``named_parameters()``.
    """
    index = {id(p): i for i, (_, p) in enumerate(model.named_parameters())}
    if hasattr(model, "linears") and hasattr(model, "skips") and hasattr(model, "act"):   # core.nets.MLP
        if len(model.norms) or len(index) != 2 * len(model.linears):
            return None
        phi = INPLACE.get(getattr(model.act, "name", ""), model.act.torch)
        layers = []
        for i, lin in enumerate(model.linears):
            last = i == len(model.linears) - 1
            layers.append((index[id(lin.weight)], index[id(lin.bias)], None if last else phi,
                           False if last else bool(model.skips[i])))
        return layers
    if not isinstance(model, torch.nn.Sequential):
        return None
    flat: list = []

    def walk(seq) -> bool:
        for m in seq:
            if isinstance(m, torch.nn.Sequential):
                if not walk(m):
                    return False
            elif type(m) is torch.nn.Linear or isinstance(m, ELEMENTWISE) and not list(m.parameters()):
                flat.append(m)
            else:
                return False
        return True

    if not walk(model) or not flat or type(flat[0]) is not torch.nn.Linear:
        return None
    layers = []
    for m in flat:
        if type(m) is torch.nn.Linear:
            layers.append([index[id(m.weight)], None if m.bias is None else index[id(m.bias)], [], False])
        else:
            layers[-1][2].append(m)
    return [(w, b, _compose(post) if post else None, skip) for w, b, post, skip in layers]


# the fast path owns its intermediate tensors, so their activations may overwrite them
INPLACE = {"relu": torch.relu_, "tanh": torch.tanh_, "sigmoid": torch.sigmoid_}
_INPLACE_MODULES = {torch.nn.ReLU: torch.relu_, torch.nn.Tanh: torch.tanh_, torch.nn.Sigmoid: torch.sigmoid_}


def _compose(modules):
    if len(modules) == 1 and type(modules[0]) in _INPLACE_MODULES:
        return _INPLACE_MODULES[type(modules[0])]

    def post(h):
        for m in modules:
            h = m(h)
        return h
    return post


def _points_per_chunk(n: int, width: int, itemsize: int, budget: int = CHUNK_BYTES) -> int:
    return max(1, budget // max(1, n * width * itemsize))


def _combine(t: torch.Tensor, dirs: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """base + Σ_k coef[p, k] dirs[k], for a chunk of points: (p, *t.shape)."""
    return t + torch.tensordot(coef, dirs, dims=1)


class _Stack:
    """One parameter's base value and its K directions, to form it at many points: (P, *shape) by one
    addmm, or the base itself (broadcast) when every direction is zero there (filter-normalised biases)."""

    def __init__(self, base: torch.Tensor, dirs: list[torch.Tensor]):
        self.shape = tuple(base.shape)
        self.base = base
        self.moves = any(bool(d.any()) for d in dirs)
        self.flat_base = base.reshape(1, -1)
        self.flat_dirs = torch.stack([d.reshape(-1) for d in dirs]) if self.moves else None

    def at(self, coef: torch.Tensor) -> torch.Tensor:
        if not self.moves:
            return self.base.unsqueeze(0)
        return torch.addmm(self.flat_base, coef, self.flat_dirs).view(coef.shape[0], *self.shape)


_RANK_CACHE: dict = {}


def _class_sums(z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy sums and correct counts of logits laid out (P, C, n).

    Reductions over C with n contiguous vectorise where torch's ``argmax`` over that axis does not (it is
    10× slower than the whole loss), so the arg-max is the first class equal to the maximum, which is what
    ``argmax`` returns.
    """
    p, c, n = z.shape
    top = z.amax(1, keepdim=True)
    e = z - top
    rank = (c - torch.arange(c, device=z.device)).view(1, c, 1).to(torch.int16)
    first = c - (e.eq(0) * rank).amax(1)
    correct = (first == y).sum(1)
    lse = e.exp_().sum(1).log_().add_(top[:, 0])
    picked = z.gather(1, y.view(1, 1, n).expand(p, 1, n))[:, 0]
    return (lse - picked).sum(1, dtype=torch.float64), correct


def _plan_sums(plan, base, dirs, coef, x, y):
    """Loss and correct-count sums over (x, y) for every row of ``coef``, layer by layer as batched matmuls.

    The first layer is exact by linearity: its pre-activations at every point are ``[1, c] @ [XWᵀ + b;
    XD_kᵀ + d_k]``, one GEMM of inner size K + 1 per chunk, so X is multiplied by weights only K + 1 times for the
    whole grid. Later layers are ``bmm`` over the chunk's stacked weights (formed a group at a time by one
    addmm per parameter). Chunks are a few points (``CHUNK_BYTES`` of activations, cache-resident: bmm runs
    at ~1.5× the rate it has on chunks that spill to memory), written into buffers reused chunk to chunk;
    the last layer is laid out (points, classes, samples) so the loss reduces over classes along
    contiguous samples, once per group.
    """
    n = x.shape[0]
    k = len(dirs)
    dev, dtype = x.device, x.dtype
    w0, b0, post0, _ = plan[0]
    width0 = base[w0].shape[0]
    first = x @ base[w0].T
    along = torch.stack([x @ d[w0].T for d in dirs])          # (K, n, h): X D_kᵀ, once for the whole grid
    if b0 is not None:
        first += base[b0]
        along += torch.stack([d[b0] for d in dirs])[:, None, :]
    lifted = torch.cat([first.reshape(1, -1), along.reshape(k, -1)])   # [1, c] @ lifted: a chunk's first layer
    ones = torch.ones(coef.shape[0], 1, dtype=coef.dtype, device=coef.device)
    layers = [(_Stack(base[w], [d[w] for d in dirs]), None if b is None else _Stack(base[b], [d[b] for d in dirs]),
               post, skip) for w, b, post, skip in plan[1:]]
    widths = [width0] + [s.shape[0] for s, *_ in layers]
    classes = widths[-1]
    chunk = _points_per_chunk(n, max(widths), x.element_size())
    per_point = sum(s.base.numel() for s, *_ in layers) + classes * n
    group = max(chunk, min(coef.shape[0], GROUP_BYTES // (per_point * x.element_size())) // chunk * chunk)
    pool = [torch.empty(chunk * n * max(widths), dtype=dtype, device=dev) for _ in range(2)]
    logits = torch.empty(group, classes, n, dtype=dtype, device=dev)
    loss_sum = torch.empty(coef.shape[0], dtype=torch.float64, device=dev)
    correct = torch.zeros(coef.shape[0], dtype=torch.int64, device=dev)
    classify = is_classification(y)
    target = None if classify else y.reshape(n, -1).T.unsqueeze(0).to(dtype)
    for g in range(0, coef.shape[0], group):
        cg = coef[g:g + group]
        weights = [(s.at(cg), None if b is None else b.at(cg)) for s, b, *_ in layers]
        for s in range(0, cg.shape[0], chunk):
            pace()
            c = cg[s:s + chunk]
            p = c.shape[0]
            h = torch.mm(torch.cat([ones[:p], c], 1), lifted, out=pool[0][:p * n * width0].view(p, -1))
            h = h.view(p, n, width0)
            if post0 is not None:
                h = post0(h)
            if not layers:
                logits[s:s + p] = h.transpose(1, 2)
            # ReLU layers keep m = max(z, −b) and carry the bias b as an offset: relu(z + b) = m + b, and
            # the next layer's W(m + b) = Wm + Wb. That saves broadcasting b into every output (a pass over
            # the chunk's activations); the offset costs one (out × in) @ (in × 1) product per point.
            spare, offset = 1, None
            for i, ((stack, _b, post, skip), (w, b)) in enumerate(zip(layers, weights, strict=True)):
                w = w[s:s + p] if w.shape[0] > 1 else w.expand(p, *stack.shape)
                bias = None if b is None else (b[s:s + p] if b.shape[0] > 1 else b).unsqueeze(-1)  # (p|1, out, 1)
                if offset is not None:
                    carried = torch.bmm(w, offset.expand(p, -1, -1).transpose(1, 2))
                    bias = carried if bias is None else carried + bias
                if i == len(layers) - 1:
                    z = torch.bmm(w, h.transpose(1, 2), out=logits[s:s + p])
                    if bias is not None:
                        z += bias
                    break
                out = pool[spare][:p * n * stack.shape[0]].view(p, n, stack.shape[0])
                z = torch.bmm(h, w.transpose(1, 2), out=out)
                before = offset
                if post is torch.relu_ and not skip and bias is not None:
                    offset = bias.transpose(1, 2)                     # (p|1, 1, out)
                    torch.maximum(z, offset.neg(), out=z)
                else:
                    offset = None
                    if bias is not None:
                        z += bias.transpose(1, 2)
                    if post is not None:
                        z = post(z)
                    if skip:
                        z += h
                        if before is not None:
                            z += before
                h, spare = z, 1 - spare if z.data_ptr() == out.data_ptr() else spare
        z = logits[:cg.shape[0]]
        if layers and layers[-1][2] is not None:
            z = layers[-1][2](z)
        if classify:
            ls, cs = _class_sums(z, y)
            correct[g:g + group] = cs
        else:
            ls = 0.5 * (z - target).pow(2).sum((1, 2), dtype=torch.float64)
        loss_sum[g:g + group] = ls
    return loss_sum, correct


def _vmap_sums(model, names, base, dirs, coef, x, y):
    """As :func:`_plan_sums` for any module: functional_call under vmap over stacked parameter sets."""
    from torch.func import functional_call, vmap

    def outputs(*params):
        return functional_call(model, dict(zip(names, params, strict=True)), (x,))

    batched = vmap(outputs)
    width = max(max(int(np.prod(t.shape[:1])) for t in base), 1)
    chunk = _points_per_chunk(x.shape[0], width, x.element_size(), VMAP_CHUNK_BYTES)
    loss_sum = torch.empty(coef.shape[0], dtype=torch.float64, device=x.device)
    correct = torch.zeros(coef.shape[0], dtype=torch.int64, device=x.device)
    stacked = [torch.stack([d[i] for d in dirs]) for i in range(len(base))]
    for s in range(0, coef.shape[0], chunk):
        c = coef[s:s + chunk]
        out = batched(*[_combine(t, st, c) for t, st in zip(base, stacked, strict=True)])
        ls, cs = loss_sums(out, y)
        loss_sum[s:s + chunk] = ls.double()
        if cs is not None:
            correct[s:s + chunk] = cs
    return loss_sum, correct


def prepared(model: torch.nn.Module, bn: str, device) -> torch.nn.Module:
    """A private copy on ``device`` in eval mode; with ``bn="recompute"`` its batch-norm layers use the
    statistics of the batch they see (the whole evaluated set) instead of the running ones."""
    if bn not in BN_MODES:
        raise ValueError(f"batch-norm mode {bn!r} is not one of {', '.join(BN_MODES)}")
    work = copy.deepcopy(model).to(device)
    work.eval()
    if bn == "recompute":
        from torch.func import replace_all_batch_norm_modules_

        replace_all_batch_norm_modules_(work)
        for m in work.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.train()
    return work


def has_batch_norm(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def evaluate(model: torch.nn.Module, data, directions, coefficients, *, base=None, split: str = "train",
             bn: str = "eval", device=None, samples: int | None = None) -> Evaluation:
    """Loss and accuracy of every parameter set θ_p = base + Σ_k coefficients[p, k] directions[k].

    Parameters
    ----------
    model : torch.nn.Module
        Supplies the architecture and, unless ``base`` is given, the base point θ.
    data : Dataset or (x, y)
        The whole ``split`` is evaluated (memory bounded by chunking over points and samples).
    directions : sequence of directions
        K lists of tensors shaped like the parameters.
    coefficients : array (P, K)
    base : list of tensors, optional
    bn : {"eval", "recompute"}
    device : torch device, optional (CUDA when present)
    samples : int, optional
        Evaluate the split's first ``samples`` only (all when None or more): the splits are shuffled and
        stratified, so these are a random sample of it (the panel's quick preview).

    Returns
    -------
    Evaluation
        Mean loss per point (NaN where it is not finite, counted in ``masked``); accuracy for integer labels.
    """
    started = time.perf_counter()
    dev = devices.resolve(device)
    work = prepared(model, bn, dev)
    names = [n for n, _ in work.named_parameters()]
    params = parameters_of(work)
    dtype = params[0].dtype
    base = params if base is None else [t.to(dev, dtype) for t in check_direction(work, base)]
    dirs = [[t.to(dev, dtype) for t in check_direction(work, d)] for d in directions]
    coef = torch.as_tensor(np.asarray(coefficients, dtype=np.float64), dtype=dtype, device=dev)
    if coef.ndim != 2 or coef.shape[1] != len(dirs) or not torch.isfinite(coef).all():
        raise ValueError(f"coefficients must be a finite (points, {len(dirs)}) array, got shape {tuple(coef.shape)}")
    x, y = data_arrays(data, split)
    if samples is not None:
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be a positive whole number, got {samples!r}")
        x, y = x[:samples], y[:samples]
    x, y = x.to(dev, dtype), y.to(dev)
    plan = None if has_batch_norm(work) else linear_plan(work)
    data_chunk = x.shape[0] if bn == "recompute" and has_batch_norm(work) else DATA_CHUNK
    loss_sum = torch.zeros(coef.shape[0], dtype=torch.float64, device=dev)
    correct = torch.zeros(coef.shape[0], dtype=torch.int64, device=dev)
    with torch.no_grad():
        for s in range(0, x.shape[0], data_chunk):
            xc, yc = x[s:s + data_chunk], y[s:s + data_chunk]
            if plan is not None:
                ls, cs = _plan_sums(plan, base, dirs, coef, xc, yc)
            else:
                ls, cs = _vmap_sums(work, names, base, dirs, coef, xc, yc)
            loss_sum += ls
            correct += cs
    n = x.shape[0]
    loss = (loss_sum / n).cpu().numpy()
    bad = ~np.isfinite(loss)
    loss[bad] = np.nan
    accuracy = (correct.cpu().numpy() / n) if is_classification(y) else None
    if accuracy is not None:
        accuracy = np.where(bad, np.nan, accuracy)
    return Evaluation(loss, accuracy, int(bad.sum()), time.perf_counter() - started, devices.describe(dev))


# -- surfaces -------------------------------------------------------------------------------------------

def check_span(span) -> tuple[float, float]:
    """(lo, hi) with lo < hi, both finite and within ±MAX_SPAN, or ValueError saying what is wrong."""
    try:
        lo, hi = (float(v) for v in span)
    except (TypeError, ValueError):
        raise ValueError(f"span must be a pair (lo, hi) of numbers, got {span!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"span ({lo}, {hi}) must be finite")
    if not lo < hi:
        raise ValueError(f"span ({lo:g}, {hi:g}) must have lo < hi")
    if max(abs(lo), abs(hi)) > MAX_SPAN:
        raise ValueError(f"span ({lo:g}, {hi:g}) is beyond ±{MAX_SPAN:g}: the weights would be scaled past meaning")
    return lo, hi


def check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or not 2 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be a whole number from 2 to {MAX_STEPS}, got {steps!r}")
    return int(steps)


def as_directions(directions) -> list:
    """One direction (a list of tensors) or a list of one or two directions → a list of directions."""
    directions = list(directions)
    if directions and isinstance(directions[0], torch.Tensor):
        directions = [directions]
    if len(directions) not in (1, 2):
        raise ValueError(f"a surface takes 1 or 2 directions, got {len(directions)}")
    return directions


def evaluate_surface(model, data, directions, span=(-1.0, 1.0), steps: int = 51, *, span_y=None,
                     split: str = "train", bn: str = "eval", device=None, samples: int | None = None) -> Surface:
    """L(θ + α d₁) on ``steps`` points of ``span``, or L(θ + α d₁ + β d₂) on a ``steps`` × ``steps`` grid.

    Li et al. 2018, §3 (1-D plots) and eq. (1) (2-D contour plots). ``span_y`` (default ``span``) is the
    range of β. See :func:`evaluate` for ``data``, ``split``, ``bn``, ``device`` and ``samples``.
    """
    directions = as_directions(directions)
    lo, hi = check_span(span)
    steps = check_steps(steps)
    alphas = np.linspace(lo, hi, steps)
    if len(directions) == 1:
        e = evaluate(model, data, directions, alphas[:, None], split=split, bn=bn, device=device, samples=samples)
        return Surface(alphas, None, e.loss, e.accuracy, e.masked, e.seconds, e.device)
    ylo, yhi = check_span(span if span_y is None else span_y)
    betas = np.linspace(ylo, yhi, steps)
    grid = np.stack(np.meshgrid(alphas, betas, indexing="ij"), axis=-1).reshape(-1, 2)
    e = evaluate(model, data, directions, grid, split=split, bn=bn, device=device, samples=samples)
    shape = (steps, steps)
    acc = None if e.accuracy is None else e.accuracy.reshape(shape)
    return Surface(alphas, betas, e.loss.reshape(shape), acc, e.masked, e.seconds, e.device)


def surface(model, data, directions, span=(-1.0, 1.0), steps: int = 51, **kw) -> np.ndarray:
    """The loss surface as an array: 1-D for one direction, (steps, steps) for two (``[i, j]`` ↔ α_i, β_j).

    Points whose loss overflowed are masked (a ``numpy.ma.MaskedArray``). Keywords as
    :func:`evaluate_surface`.
    """
    s = evaluate_surface(model, data, directions, span, steps, **kw)
    return np.ma.masked_invalid(s.loss)


def interpolation(model_a, model_b, data, t, *, split: str = "train", bn: str = "eval", device=None) -> Evaluation:
    """Loss and accuracy along θ(t) = (1 − t) θ_a + t θ_b (Goodfellow et al. 2015), t any finite values."""
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    return evaluate(model_a, data, [difference(model_b, model_a)], t[:, None], split=split, bn=bn, device=device)


def interpolate(model_a, model_b, data, t, **kw) -> np.ndarray:
    """The loss along θ(t) = (1 − t) θ_a + t θ_b (Goodfellow, Vinyals & Saxe 2015); NaN where it overflows."""
    return interpolation(model_a, model_b, data, t, **kw).loss


# -- the trajectory's PCA plane -------------------------------------------------------------------------

@dataclass(frozen=True)
class TrajectoryPlane:
    """Li et al. Fig. 9: the two PCA directions of θ_i − θ_final, each point's coordinates and its distance."""

    directions: list            # two directions (unit vectors, shaped like the parameters)
    coords: np.ndarray          # (T, 2) projections of θ_i − θ_final
    distance: np.ndarray        # (T,) ‖θ_i − θ_final − its projection‖: how far the point is off the plane
    explained: np.ndarray       # (2,) fraction of the variance each direction explains


def trajectory_plane(snapshots, final=None) -> TrajectoryPlane:
    """PCA of a training trajectory (Li et al. 2018, §7 and Fig. 9).

    Parameters
    ----------
    snapshots : sequence of parameter lists (each shaped like ``model.parameters()``), in training order
    final : parameter list, optional
        The centre of the plane; default the last snapshot.

    The directions are the top-2 principal components of the centred matrix [θ_i − θ_final] (sklearn's PCA,
    as in Li et al.'s code); coordinates are projections of θ_i − θ_final, and ``distance`` what is left.
    """
    snapshots = list(snapshots)
    if len(snapshots) < 3:
        raise ValueError(f"a trajectory plane needs at least 3 snapshots, got {len(snapshots)}")
    like = snapshots[-1]
    flat = torch.stack([flatten(s).double().cpu() for s in snapshots])
    centre = flatten(final).double().cpu() if final is not None else flat[-1]
    m = flat - centre
    _, s, vt = torch.linalg.svd(m - m.mean(0), full_matrices=False)
    dirs = vt[:2]
    coords = m @ dirs.T
    distance = (m - coords @ dirs).norm(dim=1)
    explained = (s[:2] ** 2 / (s ** 2).sum()).numpy()
    out_dirs = [[t.to(like[0].device, like[0].dtype) for t in unflatten(d, like)] for d in dirs]
    return TrajectoryPlane(out_dirs, coords.numpy(), distance.numpy(), explained)
