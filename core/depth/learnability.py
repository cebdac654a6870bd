"""Learnability: fitting the sawtooth by gradient descent (Nye & Saxe 2018), shallow against deep."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from core.depth.constructions import sawtooth, sawtooth_weights
from core.depth.networks import Weights, _random_weights, as_module
from core.depth.pieces import count_linear_pieces

FIT_MAX_DEPTH = 12
"""Deepest sawtooth the fitting experiments take as a target: 2^12 pieces need ≥ 2^15 training points."""


@dataclass(frozen=True)
class FitFrame:
    """One progress report of a fitting experiment.

    Attributes
    ----------
    step, steps : int
        Adam steps done so far, and planned.
    names : tuple of str
        The models, e.g. ("shallow", "deep") or ("random", "near_exact").
    n_params : tuple of int
        Parameters of each model.
    x, target : ndarray (G,)
        The plotting grid on [0, 1] (dyadic, so it holds every kink of f_L) and f_L on it.
    prediction : ndarray (len(names), G)
        Each model's output on ``x`` now.
    loss : ndarray (len(names),)
        Training MSE now.
    loss_history : ndarray (step + 1, len(names)), read-only
        Training MSE after 0, 1, …, step Adam steps (the frame's rows never change later).
    pieces : tuple of int
        Exact affine pieces of each model on [0, 1] now (:func:`count_linear_pieces`); f_L has 2^L.
    constant_loss : float
        The MSE of the best constant, Var f_L: a fit no better than this has learned nothing.
    device : str
        Where the models were trained.
    """

    step: int
    steps: int
    names: tuple[str, ...]
    n_params: tuple[int, ...]
    x: np.ndarray
    target: np.ndarray
    prediction: np.ndarray
    loss: np.ndarray
    loss_history: np.ndarray
    pieces: tuple[int, ...]
    constant_loss: float
    device: str

    @property
    def done(self) -> bool:
        return self.step >= self.steps


def _n_params(weights: Weights) -> int:
    return int(sum(W.size + b.size for W, b in weights))


def _near_exact(depth: int, width: int, noise: float, rng: np.random.Generator) -> Weights:
    """The exact sawtooth weights embedded in width ``width`` (extra units zero), every parameter plus
    N(0, noise²): the protocol of Nye & Saxe (2018, Fig. 1), hand-coded solution plus Gaussian noise."""
    layers = []
    for W, b in sawtooth_weights(depth):
        out = 1 if W.shape[0] == 1 else width
        inp = 1 if W.shape[1] == 1 else width
        Wp, bp = np.zeros((out, inp)), np.zeros(out)
        Wp[:W.shape[0], :W.shape[1]], bp[:b.size] = W, b
        layers.append((Wp + noise * rng.standard_normal(Wp.shape), bp + noise * rng.standard_normal(out)))
    return tuple(layers)


def _deep_init(depth: int, width: int, init: str, noise: float, sigma_w: float, sigma_b: float,
               seed: int) -> Weights:
    if init == "random":
        rng = np.random.default_rng((seed, 1))
        return _random_weights([1] + [width] * depth + [1], sigma_w, sigma_b, rng)
    if init == "near_exact":
        if width < 2:
            raise ValueError("the near-exact start needs width ≥ 2 (the sawtooth construction's width)")
        return _near_exact(depth, width, noise, np.random.default_rng((seed, 3)))
    raise ValueError(f"init must be 'random' or 'near_exact', got {init!r}")


def _check_fit(depth: int, steps: int, lr: float, every: int, noise: float) -> None:
    if isinstance(depth, bool) or int(depth) != depth or not 1 <= depth <= FIT_MAX_DEPTH:
        raise ValueError(f"fitting takes a sawtooth depth in [1, {FIT_MAX_DEPTH}], got {depth!r} "
                         f"(2^L pieces need ≥ 2^(L+3) training points)")
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a whole number ≥ 0, got {steps!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning rate must be positive, got {lr!r}")
    if int(every) != every or every < 1:
        raise ValueError(f"every must be a whole number ≥ 1, got {every!r}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be ≥ 0, got {noise!r}")


def _train(models: dict[str, Weights], depth: int, steps: int, lr: float, every: int,
           n_train: int | None, device) -> Iterator[FitFrame]:
    """Full-batch Adam on the MSE to f_L at n_train equispaced points of [0, 1], float32 on ``device``.

    Yields a :class:`FitFrame` before the first step, every ``every`` steps, and after the last.
    """
    import torch

    from core.device import resolve

    dev = resolve(device)
    n_train = int(n_train) if n_train else max(256, 2 ** (depth + 3)) + 1
    x_train = np.linspace(0.0, 1.0, n_train)
    y_train = sawtooth(x_train, depth)
    x_plot = np.linspace(0.0, 1.0, 2 ** max(depth + 2, 10) + 1)
    target = sawtooth(x_plot, depth)

    def tensor(a: np.ndarray):
        return torch.tensor(a[:, None], dtype=torch.float32, device=dev)

    X, Y, XP = tensor(x_train), tensor(y_train), tensor(x_plot)
    x_plot.flags.writeable = target.flags.writeable = False
    names = tuple(models)
    nets = [as_module(w, dtype="float32", device=dev) for w in models.values()]
    opts = [torch.optim.Adam(net.parameters(), lr=lr) for net in nets]
    history = np.full((steps + 1, len(nets)), np.nan)
    started_from = torch.zeros((max(steps, 1), len(nets)), device=dev)
    n_params = tuple(_n_params(w) for w in models.values())
    constant_loss = float(np.var(y_train))
    copied = 0

    def frame(step: int) -> FitFrame:
        nonlocal copied
        with torch.no_grad():
            loss = torch.stack([torch.mean((net(X) - Y) ** 2) for net in nets]).cpu().numpy()
            pred = torch.stack([net(XP)[:, 0] for net in nets]).cpu().numpy().astype(np.float64)
        if step > copied + 1:  # rows up to ``copied`` are already out in earlier frames: never rewritten
            history[copied + 1:step] = started_from[copied + 1:step].cpu().numpy()
        history[step] = loss
        copied = step
        view = history[:step + 1]
        view.flags.writeable = False
        pieces = tuple(count_linear_pieces(net) for net in nets)
        return FitFrame(step=step, steps=steps, names=names, n_params=n_params, x=x_plot, target=target,
                        prediction=pred, loss=loss.astype(np.float64), loss_history=view, pieces=pieces,
                        constant_loss=constant_loss, device=str(dev))

    with _one_torch_thread(torch):
        first = frame(0)
    yield first
    step = 0
    while step < steps:
        upto = min(steps, (step // every + 1) * every)
        # each resumption may come on another thread (the GUI's workers), and torch's thread count is
        # per calling thread: pinned here, between two frames, and put back before yielding
        with _one_torch_thread(torch):
            for s in range(step + 1, upto + 1):
                for i, (net, opt) in enumerate(zip(nets, opts, strict=True)):
                    opt.zero_grad(set_to_none=True)
                    loss = torch.mean((net(X) - Y) ** 2)
                    loss.backward()
                    opt.step()
                    started_from[s - 1, i] = loss.detach()
            out = frame(upto)
        step = upto
        yield out


@contextmanager
def _one_torch_thread(torch):
    """Nets of width ≤ 2 gain nothing from intra-op threads, and on a busy 2-core machine their barriers
    made each Adam step 20× slower (100 ms against 5 ms, measured in the Depth panel)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_shallow_vs_deep(depth: int, steps: int = 2000, lr: float = 1e-2, seed: int = 0, *,
                        init: str = "random", noise: float = 0.1, deep_width: int = 2,
                        sigma_w: float = math.sqrt(2.0), sigma_b: float = 0.1, every: int = 20,
                        n_train: int | None = None, device=None) -> Iterator[FitFrame]:
    """Train a shallow and a deep ReLU net with the same parameter count to fit f_L on [0, 1].

    The deep net has ``depth`` hidden layers of ``deep_width`` (width 2: the sawtooth architecture,
    P = 6L + 1 parameters); the shallow one a single hidden layer of k = ⌊(P − 1)/3⌋ units (3k + 1 ≤ P
    parameters; equal for deep_width ≢ 1 mod 3). The shallow net can have at most k + 1 pieces against
    f_L's 2^L (Telgarsky 2015), so its best fit is poor by construction; whether the deep net's extra
    expressivity is *found* by Adam is what the experiment shows (Nye & Saxe 2018). Both start from
    W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²); with ``init="near_exact"`` the deep one starts instead at
    the exact construction plus N(0, noise²) on every parameter.

    Yields
    ------
    FitFrame
        names ("shallow", "deep"), every ``every`` Adam steps (full batch, MSE, float32 on ``device``).
        Stop iterating (or ``close()``) to cancel.
    """
    _check_fit(depth, steps, lr, every, noise)
    if deep_width < 1:
        raise ValueError("deep_width must be ≥ 1")
    deep = _deep_init(depth, deep_width, init, noise, sigma_w, sigma_b, seed)
    k = max(1, (_n_params(deep) - 1) // 3)
    shallow = _random_weights([1, k, 1], sigma_w, sigma_b, np.random.default_rng((seed, 2)))
    yield from _train({"shallow": shallow, "deep": deep}, depth, int(steps), lr, int(every), n_train, device)


def fit_from_init(depth: int, init: str = "random", steps: int = 2000, lr: float = 1e-2, seed: int = 0, *,
                  noise: float = 0.1, width: int = 2, sigma_w: float = math.sqrt(2.0), sigma_b: float = 0.1,
                  every: int = 20, n_train: int | None = None, device=None) -> Iterator[FitFrame]:
    """Train the deep width-``width`` net (``depth`` hidden layers) to fit f_L, from a chosen start.

    ``init``: "random" (W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²)), "near_exact" (Telgarsky's exact weights
    plus N(0, noise²) on every parameter), or "both" (the two side by side, same data and optimiser).
    Nye & Saxe (2018) found that gradient descent learns parity only from close to the hand-coded
    solution; this applies their protocol (exact weights plus Gaussian noise, Fig. 1) to the sawtooth
    and shows what Adam actually reaches (``pieces`` says how many of the 2^L teeth' pieces survive).

    Yields
    ------
    FitFrame
        names (init,) or ("random", "near_exact"), every ``every`` Adam steps.
    """
    _check_fit(depth, steps, lr, every, noise)
    inits = ("random", "near_exact") if init == "both" else (init,)
    models = {name: _deep_init(depth, width, name, noise, sigma_w, sigma_b, seed) for name in inits}
    yield from _train(models, depth, int(steps), lr, int(every), n_train, device)
