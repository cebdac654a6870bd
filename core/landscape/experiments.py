"""The Loss Landscape panel's experiments: which networks are trained, how, and what is measured on them.

Every function here is a plain function or a generator of partial results (progress, then the answer),
run by the panel off the GUI thread; closing a generator cancels it. The main digits net (and its seed-1
twin) is ``core.models``' shared one — the Pruning and Robustness panels' network — copied, never modified;
the special nets (small/large batch, deep, Hessian, teacher–student) are kept in a lock-protected
in-process cache keyed by (data, spec, recipe, seed) so the panel's plots share them.
"""

from __future__ import annotations

import copy
import math
import threading
from dataclasses import dataclass

import numpy as np
import torch

from core.landscape import connectivity, curvature, random_matrix
from core.landscape.directions import parameters_of, random_direction
from core.landscape.surfaces import data_arrays, evaluate, evaluate_surface, interpolation, trajectory_plane

# -- recipes --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    optimizer: str = "adam"
    lr: float = 1e-3
    epochs: int = 30
    batch_size: int | None = 64


# the Pruning and Robustness panels' digits net (core.models' cache): the three panels share one network
SHARED_RECIPE = None          # None: core.models.Recipe(), the default
# Keskar et al.: the same net by SGD with a small and a large batch, each run to a similar training loss
SMALL_BATCH = Recipe("sgd", 0.05, 10, 32)
LARGE_BATCH = Recipe("sgd", 0.5, 100, None)
DEEP_RECIPE = Recipe("adam", 1e-3, 15, 128)
HESSIAN_RECIPE = Recipe("adam", 3e-3, 20, 128)
DEEP_WIDTH, HESSIAN_WIDTH = 32, 32
TRAJECTORY_SNAPSHOTS = 40
PB_RATIOS = (0.25, 0.5, 0.75)
PB_INPUTS, PB_HIDDEN = 8, 16
PB_SEEDS = (0, 1, 2)
PB_STEPS = 400
PB_CHECKPOINTS = 10

_lock = threading.Lock()
_trained: dict[tuple, Trained] = {}
_results: dict[tuple, object] = {}     # deterministic measurements (spectrum, index curves) by their inputs


def _memo(key: tuple, gen):
    """Drive ``gen`` (progress floats, then a result) unless ``key`` was computed before; remember the result."""
    with _lock:
        hit = _results.get(key)
    if hit is not None:
        yield hit
        return
    result = None
    for result in gen:
        if isinstance(result, float):
            yield result
    with _lock:
        _results[key] = result
    yield result


@dataclass(frozen=True)
class Trained:
    model: torch.nn.Module
    init: list                 # parameters at initialisation
    snapshots: list            # parameter lists along training (may be empty)
    test_accuracy: float | None
    train_loss: float
    path_note: str = ""        # why the snapshots may not end at ``model`` (a replayed path)


def digits():
    from core import data

    return data.load("digits")


def spec_digits(depth: int = 2, width: int = 128, residual: bool = False):
    """The digits MLP; deep ones with He init, or with skips and σ_w = 0.5 — He's σ_w = √2 doubles the
    variance at every residual block (h + φ(Wh)), 2^L overall, and a deep plain-ReLU residual net then
    does not train; at σ_w = 0.5 it grows by (1 + σ_w²/2) per block."""
    from core import nets

    if depth == 2 and width == 128 and not residual:
        return nets.DIGITS_MLP
    if residual:
        return nets.NetSpec(64, (width,) * depth, 10, residual=True, init="gaussian", sigma_w=0.5)
    return nets.NetSpec(64, (width,) * depth, 10)


def train(data, spec, recipe: Recipe, seed: int = 0, snapshots: int = 0):
    """Generator: progress fractions while the network trains (nothing if cached), then a :class:`Trained`.

    ``snapshots`` parameter lists are kept at evenly spaced steps (Li et al.'s trajectory plots).
    """
    from core import nets, training

    key = (data.key, spec, recipe, seed, snapshots)
    with _lock:
        hit = _trained.get(key)
    if hit is not None:
        yield hit
        return
    model = nets.build(spec, seed=seed, device="cpu")
    init = [p.clone() for p in parameters_of(model)]
    n = data.n_train
    batch = n if recipe.batch_size is None else min(recipe.batch_size, n)
    total = recipe.epochs * math.ceil(n / batch)
    every = max(1, total // snapshots) if snapshots else total + 1
    kept = [init] if snapshots else []

    def hook(m, step):
        if snapshots and step % every == 0:
            kept.append([p.detach().clone() for p in m.parameters()])

    record = None
    for record in training.train(model, data, optimizer=recipe.optimizer, lr=recipe.lr, epochs=recipe.epochs,
                                 batch_size=recipe.batch_size, seed=seed, device="cpu", step_hook=hook,
                                 every=max(1, total // 20)):
        yield record.step / total
    model.eval()
    loss, acc = training.evaluate(model, data.x_train, data.y_train)
    result = Trained(model, init, kept, record.test_accuracy if record else acc, loss)
    with _lock:
        _trained[key] = result
    yield result


def shared_recipe():
    from core import models

    return models.Recipe() if SHARED_RECIPE is None else SHARED_RECIPE


def main_net(loaded=None, path: bool = False, seed: int = 0):
    """Generator: progress, then a :class:`Trained` around the shared digits net of ``core.models`` (trained
    there, with ``core.models.Recipe()``, if nobody has yet) or around ``loaded`` (a ``core.models.Trained``).

    The shared network is copied, never modified. ``path=True`` also replays its recipe from its seed's
    initialisation to record :data:`TRAJECTORY_SNAPSHOTS` points of the training path (Li et al. Fig. 9).
    """
    from core import models, nets, training

    data = digits()
    t = loaded
    if t is None:
        recipe = shared_recipe()
        total = _steps(recipe, data.n_train)
        for item in models.train_cached(data, nets.DIGITS_MLP, recipe, seed):
            if isinstance(item, models.Trained):
                t = item
            else:
                yield (0.5 if path else 1.0) * min(1.0, item.step / total)
    key = ("main", t, path)
    with _lock:
        hit = _trained.get(key)
    if hit is not None:
        yield hit
        return
    model = copy.deepcopy(t.model).to("cpu").eval()
    init = [p.clone() for p in parameters_of(nets.build(t.spec, seed=t.seed, device="cpu"))]
    snapshots, note = [], ""
    if path:
        snapshots = yield from _replay(t, 0.5, 1.0)
        end = torch.cat([p.flatten() for p in snapshots[-1]])
        theta = torch.cat([p.flatten() for p in parameters_of(model)])
        gap = float((end - theta).norm() / theta.norm())
        if gap > 1e-3:
            note = (f"The replayed training path ends {100 * gap:.1f} % of ‖θ‖ away from this net (it was not "
                    "trained by its recipe on this machine): the plane is centred on the net.")
    loss, acc = training.evaluate(model, data.x_train, data.y_train)
    result = Trained(model, init, snapshots, t.test_accuracy if t.test_accuracy is not None else acc, loss, note)
    with _lock:
        _trained[key] = result
    yield result


def _steps(recipe, n: int) -> int:
    batch = n if recipe.batch_size is None else min(recipe.batch_size, n)
    return max(1, recipe.epochs * math.ceil(n / batch))


def _replay(t, lo: float, hi: float):
    """Yield progress in [lo, hi] while ``t``'s recipe retrains ``build(t.spec, t.seed)``; return the snapshots."""
    from core import nets, training

    data = digits()
    model = nets.build(t.spec, seed=t.seed, device="cpu")
    total = _steps(t.recipe, data.n_train)
    every = max(1, total // TRAJECTORY_SNAPSHOTS)
    kept = [[p.clone() for p in parameters_of(model)]]

    def hook(m, step):
        if step % every == 0 or step == total:
            kept.append([p.detach().clone() for p in m.parameters()])

    for record in training.train(model, data, seed=t.seed, device="cpu", step_hook=hook, every=max(1, total // 20),
                                 **t.recipe.train_kwargs()):
        yield lo + (hi - lo) * min(1.0, record.step / total)
    return kept


def run(gen):
    """The last value of a progress generator (for callers that do not show progress)."""
    last = None
    for item in gen:
        last = item
    return last


# -- surfaces -------------------------------------------------------------------------------------------

SURFACE_MODELS = ("digits MLP", "deep, skips", "deep, no skips")


@dataclass(frozen=True)
class SurfaceResult:
    alphas: np.ndarray
    betas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray | None
    path: np.ndarray | None      # (T, 2) the training path on the PCA plane
    path_distance: np.ndarray | None
    explained: np.ndarray | None
    note: str
    final: bool
    seconds: float
    device: str
    samples: int                 # of the split, evaluated at every point (the preview takes a first part)


#: The preview frame's loss is the mean over the split's first this-many samples (a random, stratified
#: part): the whole training set is 21 GFLOP at 21², ~0.35 s on the one core a 2-core machine gives torch.
PREVIEW_SAMPLES = 512


def plane(t: Trained, kind: str, seed: int, norm: str):
    """Two directions: random (seeds 2·seed, 2·seed + 1, normalised by ``norm``) or the path's PCA plane."""
    if kind == "PCA of the path":
        return trajectory_plane(t.snapshots, final=parameters_of(t.model))
    return [random_direction(t.model, 2 * seed, norm), random_direction(t.model, 2 * seed + 1, norm)]


def surface_frames(model_kind: str, plane_kind: str, seed: int, norm: str, span: float, steps: int,
                   deep_depth: int = 12, split: str = "train", preview: int = 21, loaded=None):
    """Generator: progress while training, a ``preview``² frame (on the split's first PREVIEW_SAMPLES samples)
    when the full one is larger, then the full one (on the whole split). ``loaded`` (a ``core.models.Trained``)
    replaces the shared digits net."""
    t = yield from _drive(surface_model_gen(model_kind, deep_depth, loaded, plane_kind == "PCA of the path"),
                          0.0, 1.0)
    data = digits()
    pl = plane(t, plane_kind, seed, norm)
    if plane_kind == "PCA of the path":
        dirs, path = pl.directions, pl.coords
        # the plane's axes are the path's extents, each centred on the final point
        lo = np.minimum(path.min(0), 0.0) - 0.25 * np.ptp(path, 0) - 1e-3
        hi = np.maximum(path.max(0), 0.0) + 0.25 * np.ptp(path, 0) + 1e-3
        spans = [(float(lo[0]) * span, float(hi[0]) * span), (float(lo[1]) * span, float(hi[1]) * span)]
        extra = (path, pl.distance, pl.explained)
    else:
        dirs = pl
        spans = [(-span, span)] * 2
        extra = (None, None, None)
    sizes = ([preview] if steps > preview else []) + [steps]
    everything = data_arrays(data, split)[0].shape[0]
    for s in sizes:
        samples = min(PREVIEW_SAMPLES, everything) if s != steps else everything
        r = evaluate_surface(t.model, data, dirs, spans[0], s, span_y=spans[1], split=split, samples=samples)
        note = " ".join(n for n in (r.note, t.path_note if extra[0] is not None else "") if n)
        yield SurfaceResult(r.alphas, r.betas, r.loss, r.accuracy, *extra, note, s == steps, r.seconds, r.device,
                            samples)


def surface_model_gen(kind: str, deep_depth: int, loaded=None, path: bool = True):
    data = digits()
    if kind == "digits MLP":
        return main_net(loaded, path)
    if kind not in SURFACE_MODELS:
        raise ValueError(f"model {kind!r} is not one of {', '.join(SURFACE_MODELS)}")
    spec = spec_digits(deep_depth, DEEP_WIDTH, residual=kind == "deep, skips")
    return train(data, spec, DEEP_RECIPE, 0, TRAJECTORY_SNAPSHOTS)


def _drive(gen, lo: float, hi: float):
    """Yield a train generator's progress scaled into [lo, hi]; return its Trained (use with ``yield from``)."""
    for item in gen:
        if isinstance(item, Trained):
            return item
        yield lo + (hi - lo) * item
    raise RuntimeError("training ended without a model")


# -- slices and interpolations --------------------------------------------------------------------------

@dataclass(frozen=True)
class Slices:
    alphas: np.ndarray
    slices: np.ndarray            # (directions, steps) losses along filter-normalised directions
    t: np.ndarray
    init_to_solution: np.ndarray
    solution_to_solution: np.ndarray
    seconds: float


def slices_job(seed: int, norm: str, span: float, count: int = 4, steps: int = 61, loaded=None):
    data = digits()
    a = yield from _drive(main_net(loaded), 0.0, 0.5)
    b = yield from _drive(main_net(seed=1), 0.5, 1.0)
    alphas = np.linspace(-span, span, steps)
    losses = []
    seconds = 0.0
    for k in range(count):
        e = evaluate(a.model, data, [random_direction(a.model, 100 + seed * count + k, norm)], alphas[:, None])
        losses.append(e.loss)
        seconds += e.seconds
    t = np.linspace(-0.5, 1.5, steps)
    init = copy.deepcopy(a.model)
    with torch.no_grad():
        for p, q in zip(init.parameters(), a.init, strict=True):
            p.copy_(q)
    i2s = interpolation(init, a.model, data, t)
    s2s = interpolation(a.model, b.model, data, t)
    yield Slices(alphas, np.array(losses), t, i2s.loss, s2s.loss, seconds + i2s.seconds + s2s.seconds)


# -- sharp and flat -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SharpFlat:
    alphas: np.ndarray
    small: np.ndarray             # (seeds, steps) slices of the small-batch minimum
    large: np.ndarray
    small_accuracy: float         # test accuracy, mean over seeds
    large_accuracy: float
    small_batch: int
    large_batch: int


def sharp_flat_job(seed: int, norm: str, span: float, seeds: int = 2, steps: int = 61):
    data = digits()
    spec = spec_digits()
    models = {}
    jobs = [(which, r, s) for which, r in (("small", SMALL_BATCH), ("large", LARGE_BATCH)) for s in range(seeds)]
    for i, (which, recipe, s) in enumerate(jobs):
        models[which, s] = yield from _drive(train(data, spec, recipe, 10 + s), i / len(jobs), (i + 1) / len(jobs))
    alphas = np.linspace(-span, span, steps)
    out = {}
    for which in ("small", "large"):
        rows = []
        for s in range(seeds):
            m = models[which, s].model
            rows.append(evaluate(m, data, [random_direction(m, 200 + seed, norm)], alphas[:, None]).loss)
        out[which] = np.array(rows)
    acc = {w: float(np.mean([models[w, s].test_accuracy for s in range(seeds)])) for w in ("small", "large")}
    yield SharpFlat(alphas, out["small"], out["large"], acc["small"], acc["large"], SMALL_BATCH.batch_size,
                    LARGE_BATCH.batch_size or data.n_train)


# -- mode connectivity ------------------------------------------------------------------------------------

def connect_job(steps: int = 400, seed: int = 0, loaded=None):
    data = digits()
    a = yield from _drive(main_net(loaded), 0.0, 0.3)
    b = yield from _drive(main_net(seed=1), 0.3, 0.6)
    bend = None
    for item in connectivity.train_bezier(a.model, b.model, data, steps=steps, seed=seed, device="cpu"):
        if isinstance(item, connectivity.BezierFrame):
            yield 0.6 + 0.4 * item.step / item.steps
        else:
            bend = item
    yield connectivity.connect(a.model, b.model, data, bend)


# -- Hessian spectrum -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Spectrum:
    eigenvalues: np.ndarray       # exact, ascending
    density: curvature.Density
    top: np.ndarray               # Lanczos, largest first
    bottom: np.ndarray            # Lanczos, smallest first
    parameters: int
    trace: float
    seconds: float


def hessian_job(seed: int = 0, k: int = 5, n_vectors: int = 8):
    """The exact spectrum, Lanczos extremes and SLQ density of a small trained digits MLP (memoised)."""
    key = ("spectrum", seed, k, n_vectors, HESSIAN_WIDTH, HESSIAN_RECIPE)
    yield from _memo(key, _hessian(seed, k, n_vectors))


def _hessian(seed: int, k: int, n_vectors: int):
    import time

    from core import nets

    data = digits()
    spec = nets.NetSpec(64, (HESSIAN_WIDTH,), 10)
    t = yield from _drive(train(data, spec, HESSIAN_RECIPE, 0), 0.0, 0.4)
    started = time.perf_counter()
    f = curvature.FlatLoss(t.model, data)
    h = torch.empty(f.dim, f.dim, dtype=torch.float64)
    eye = torch.eye(f.dim, dtype=torch.float64)
    op = f.operator()
    for s in range(0, f.dim, 64):
        h[s:s + 64] = op.many(eye[s:s + 64])
        yield 0.4 + 0.4 * min(1.0, (s + 64) / f.dim)
    h = 0.5 * (h + h.T)
    eig = torch.linalg.eigvalsh(h).numpy()
    yield 0.85
    top, bottom = curvature.extreme_eigenvalues(op, f.dim, k, both=True, seed=seed, tol=1e-8)
    yield 0.9
    # SLQ's products from the assembled Hessian: the same operator to rounding, and 80 batched backward
    # passes (~1.5 s on one core) cheaper
    dens = curvature.slq(op, f.dim, n_vectors=n_vectors, steps=80, seed=seed, matmat=lambda vs: vs @ h)
    yield Spectrum(eig, dens, top.values, bottom.values, f.dim, float(np.trace(h.numpy())),
                   time.perf_counter() - started)


# -- sharpness along gradient descent (edge of stability) -----------------------------------------------

# Cohen et al. 2021's setting at notebook scale: a small tanh net, full-batch gradient descent on the squared
# loss of one-hot targets (their main experiments use MSE: with cross-entropy λ_max falls again late in
# training as the margins grow).
EOS_HIDDEN = 32
EOS_STEPS = 1500
EOS_CHECKPOINTS = 41


def eos_spec():
    from core import nets

    return nets.NetSpec(64, (EOS_HIDDEN,), 10, phi="tanh", init="glorot")


def sharpness_job(lr: float, steps: int | None = None, checkpoints: int | None = None, seed: int = 0):
    """Generator of :class:`curvature.Sharpness` snapshots while a small digits net trains by full-batch
    gradient descent at learning rate ``lr`` (memoised: a repeated request yields the finished run)."""
    from core import nets

    steps = EOS_STEPS if steps is None else steps
    checkpoints = EOS_CHECKPOINTS if checkpoints is None else checkpoints
    spec = eos_spec()
    key = ("sharpness", float(lr), steps, checkpoints, seed, spec)
    with _lock:
        hit = _results.get(key)
    if hit is not None:
        yield hit
        return
    data = digits()
    targets = torch.nn.functional.one_hot(data.y_train, data.classes).double()
    model = nets.build(spec, seed=seed, device="cpu")
    last = None
    for last in curvature.sharpness_during_training(model, (data.x_train, targets), lr, steps,
                                                    checkpoints=checkpoints, seed=seed):
        yield last
    with _lock:
        _results[key] = last


def point_curvature(model_kind: str, plane_kind: str, seed: int, norm: str, alpha: float, beta: float,
                    deep_depth: int = 12, loaded=None):
    """Loss and top Hessian eigenvalue at θ + α d₁ + β d₂ of the current surface (a clicked point)."""
    t = run(surface_model_gen(model_kind, deep_depth, loaded, plane_kind == "PCA of the path"))
    pl = plane(t, plane_kind, seed, norm)
    dirs = pl.directions if plane_kind == "PCA of the path" else pl
    moved = copy.deepcopy(t.model)
    with torch.no_grad():
        for p, d1, d2 in zip(moved.parameters(), *dirs, strict=True):
            p.add_(alpha * d1 + beta * d2)
    data = digits()
    loss = float(evaluate(moved, data, [[torch.zeros_like(p) for p in moved.parameters()]], [[0.0]]).loss[0])
    f = curvature.FlatLoss(moved, data, dtype=torch.float32)
    top = curvature.extreme_eigenvalues(f.operator(), f.dim, 1, tol=1e-3, dtype=torch.float32)
    return alpha, beta, loss, float(top.values[0])


# -- Pennington & Bahri -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class IndexCurves:
    ratios: tuple
    losses: dict                  # ratio -> (points,) normalised loss ε = ½ mean (ŷ − y)² / Var y
    indices: dict                 # ratio -> (points,) measured index, mean over seeds
    index_std: dict
    theory_eps: np.ndarray
    theory: dict                  # ratio -> α(ε, φ) on theory_eps
    critical: dict                # ratio -> ε_c(φ)
    parameters: int


def pb_student_spec():
    from core import nets

    return nets.NetSpec(PB_INPUTS, (PB_HIDDEN,), 1, phi="tanh", init="glorot")


def index_job(ratios=None, seeds=None, steps: int | None = None, checkpoints: int | None = None):
    """Memoised :func:`index_curves` (the default arguments are the module's settings)."""
    ratios = tuple(PB_RATIOS if ratios is None else ratios)
    seeds = tuple(PB_SEEDS if seeds is None else seeds)
    steps = PB_STEPS if steps is None else steps
    checkpoints = PB_CHECKPOINTS if checkpoints is None else checkpoints
    yield from _memo(("index", ratios, seeds, steps, checkpoints), index_curves(ratios, seeds, steps, checkpoints))


def index_curves(ratios, seeds, steps: int, checkpoints: int):
    """The index of small teacher–student tanh nets at points along their (full-batch Adam) training, for
    several φ, against Pennington & Bahri's α(ε, φ). φ = parameters / training samples (one output).

    The paper measures critical points; these are points along training (near-critical only at the end).
    """
    from core import data as datasets
    from core import nets, training

    spec = pb_student_spec()
    params = sum(a * b + b for a, b in zip(spec.sizes[:-1], spec.sizes[1:], strict=True))
    at = set(np.unique(np.geomspace(1, steps, checkpoints).astype(int)).tolist()) | {0}
    losses, indices, spreads = {}, {}, {}
    total = len(ratios) * len(seeds)
    done = 0
    for ratio in ratios:
        n_train = int(round(params / ratio))
        per_seed_l, per_seed_i = [], []
        for seed in seeds:
            d = datasets.load("teacher", seed=seed, n=int(math.ceil(n_train / 0.75)), inputs=PB_INPUTS,
                              hidden=PB_HIDDEN)
            var = float(d.y_train.var())
            model = nets.build(spec, seed=seed, device="cpu")
            kept = [(0, copy.deepcopy(model))]

            def hook(m, step, kept=kept):
                if step in at:
                    kept.append((step, copy.deepcopy(m)))
            for _ in training.train(model, d, optimizer="adam", lr=1e-2, epochs=steps, batch_size=None, seed=seed,
                                    device="cpu", step_hook=hook, every=steps):
                pass
            ls, ix = [], []
            for _, m in kept:
                f = curvature.FlatLoss(m, d)
                ls.append(f.loss() / var)   # ½ mean (ŷ − y)² / Var y: ½ for the zero predictor, as in the paper
                ix.append(curvature.index(torch.linalg.eigvalsh(f.dense_hessian()).numpy()))
            per_seed_l.append(ls)
            per_seed_i.append(ix)
            done += 1
            yield done / total
        losses[ratio] = np.mean(per_seed_l, axis=0)
        indices[ratio] = np.mean(per_seed_i, axis=0)
        spreads[ratio] = np.std(per_seed_i, axis=0)
    top = max(float(np.max(v)) for v in losses.values())
    eps = np.linspace(0.0, max(0.5, 1.05 * top), 201)
    theory = {r: random_matrix.index_theory(eps, r) for r in ratios}
    critical = {r: random_matrix.critical_loss(r) for r in ratios}
    yield IndexCurves(tuple(ratios), losses, indices, spreads, eps, theory, critical, params)


