"""K runs' optimisers stepping the rows of one ``(K, P)`` tensor together: row k is run k's parameters.

``core.training.train_many`` keeps K small networks as the rows of one tensor. One torch.optim optimiser per
row costs K Python calls of a dozen small kernels each per step, and on a CPU those calls, not the
arithmetic, are most of a step. Here the rows that share an update rule form one contiguous block and step
with one kernel per term of the rule, each run's η, β, ε, … one number where the block's rows share it
(torch.optim's scalar arithmetic exactly), else a ``(k, 1)`` column. The update of every row
is torch.optim's, term by term (``torch/optim/sgd.py``, ``adagrad.py``, ``rmsprop.py``, ``adam.py``, their
single-tensor paths) and our :class:`~core.optimizers.adagrad_norm.AdaGradNorm`'s; ``tests/core/
test_stacked_optimizers.py`` checks every rule against those classes, row by row. Settings no rule here
covers (RMSProp's momentum or centring, AMSGrad) step their row with the torch.optim optimiser itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import Any

RULES = {"gd": "sgd", "sgd": "sgd", "heavy_ball": "sgd", "nesterov": "sgd", "adagrad": "adagrad",
         "adagrad_norm": "adagrad_norm", "rmsprop": "rmsprop", "adam": "adam"}
"""The block rule of each optimiser name: plain SGD, heavy ball and Nesterov are one rule with per-row β."""


def rule(name: str, settings: dict[str, Any]) -> str | None:
    """The block rule that steps optimiser ``name`` with its resolved ``settings``, or None where only its
    torch.optim class does (RMSProp with momentum or centred, Adam's AMSGrad)."""
    if name == "rmsprop" and (settings["momentum"] or settings["centered"]):
        return None
    if name == "adam" and settings["amsgrad"]:
        return None
    return RULES[name]


class StackedOptimizers:
    """The optimisers of K runs over the rows of ``flat`` (``(K, P)``), whose gradient is ``grad``.

    Parameters
    ----------
    flat, grad : torch.Tensor
        ``(K, P)``; row k of ``grad`` is run k's gradient when :meth:`step` is called.
    names : sequence of str
        Each run's optimiser (``core.optimizers.NAMES``). Rows of one rule should be adjacent (sort the runs
        by :func:`rule`): each maximal run of adjacent rows with one rule is one block.
    settings : sequence of dict
        Each run's ``core.optimizers.resolve_hyper`` result (``lr`` included).

    Notes
    -----
    Per row, with ``d = g + λθ`` (weight decay λ) and t the step count:

    - SGD family: ``b ← βb + d``, ``θ ← θ − η b`` (plain SGD: β = 0, so b = d; heavy ball), and Nesterov's
      ``θ ← θ − η(d + βb)`` (``torch.optim.SGD``, dampening 0, the first buffer the first ``d``).
    - AdaGrad: ``s ← s + d²``, ``θ ← θ − η/(1 + (t−1)δ) · d/(√s + ε)`` (``torch.optim.Adagrad``).
    - AdaGrad-Norm: ``b² ← b² + ‖d‖²``, ``θ ← θ − η d/b`` (Ward, Wu & Bottou 2019, Alg. 1).
    - RMSProp: ``v ← ρv + (1 − ρ)d²``, ``θ ← θ − η d/(√v + ε)`` (``torch.optim.RMSprop``).
    - Adam: ``m ← m + (1 − β₁)(d − m)``, ``v ← β₂v + (1 − β₂)d²``,
      ``θ ← θ − η/(1 − β₁ᵗ) · m/(√v/√(1 − β₂ᵗ) + ε)`` (``torch.optim.Adam``, Kingma & Ba 2015, Alg. 1).
    """

    def __init__(self, flat, grad, names: Sequence[str], settings: Sequence[dict[str, Any]]):
        from core.optimizers.library import make

        self.flat, self.grad = flat, grad
        self.base_lrs = [float(s["lr"]) for s in settings]
        self.lrs = list(self.base_lrs)
        names, settings = list(names), list(settings)
        self.blocks: list[_Block] = []
        self.single: dict[int, Any] = {}        # row -> its own torch.optim optimiser
        start = 0
        for which, members in groupby(rule(n, s) for n, s in zip(names, settings, strict=True)):
            rows = range(start, start + len(list(members)))
            start = rows.stop
            if which is not None:
                self.blocks.append(_Block(which, slice(rows.start, rows.stop), flat, names, settings))
                continue
            for row in rows:
                view = flat[row]
                view.grad = grad[row]
                kw = {k: v for k, v in settings[row].items() if k != "lr"}
                self.single[row] = make(names[row], [view], lr=settings[row]["lr"], **kw)

    def set_lrs(self, lrs: Sequence[float]) -> None:
        """Each run's η for the next step (base η times a schedule's factor)."""
        self.lrs = [float(lr) for lr in lrs]
        for row, opt in self.single.items():
            opt.param_groups[0]["lr"] = self.lrs[row]

    def step(self) -> None:
        """One step of every run, each with row k of ``grad`` as its gradient."""
        import torch

        with torch.no_grad():
            for block in self.blocks:
                rows = block.rows
                block.step(self.flat[rows], self.grad[rows], coefficient(self.flat, self.lrs[rows]))
        for opt in self.single.values():
            opt.step()


def coefficient(like, values: Sequence[float]):
    """One number where every row has the same (the common case, and exactly torch.optim's scalar
    arithmetic), else a ``(k, 1)`` column of ``like``'s dtype and device."""
    first = values[0]
    if all(v == first for v in values):
        return float(first)
    return like.new_tensor([float(v) for v in values]).unsqueeze(1)


def _sub_(theta, t, c) -> None:
    """θ ← θ − c·t."""
    if isinstance(c, float):
        theta.add_(t, alpha=-c)
    else:
        theta.addcmul_(t, c, value=-1)


def _sub_ratio_(theta, a, b, c) -> None:
    """θ ← θ − c·a/b."""
    if isinstance(c, float):
        theta.addcdiv_(a, b, value=-c)
    else:
        theta.addcdiv_(a * c, b, value=-1)


def _add_product_(target, a, b, c) -> None:
    """target ← target + c·a·b."""
    if isinstance(c, float):
        target.addcmul_(a, b, value=c)
    else:
        target.addcmul_(a, b * c)


class _Block:
    """Adjacent rows with one update rule: their hyper-parameters as numbers or columns, their state
    ``(k, P)``. The arithmetic is torch.optim's single-tensor path, term by term."""

    def __init__(self, which: str, rows: slice, flat, names, settings):
        import torch

        self.rule, self.rows, self.t = which, rows, 0
        mine = settings[rows]
        shape = flat[rows].shape

        def hyper(key):
            return coefficient(flat, [s[key] for s in mine])

        def zeros():
            return torch.zeros(shape, dtype=flat.dtype, device=flat.device)

        self.decay = hyper("weight_decay")
        if which == "sgd":
            momentum = [float(s.get("momentum", 0.0)) for s in mine]
            nesterov = [n == "nesterov" for n in names[rows]]
            self.beta = coefficient(flat, momentum) if any(momentum) else None
            self.buffer = zeros() if any(momentum) else None
            # Nesterov steps along d + βb, the others along b (b = d where β = 0)
            self.along_d = coefficient(flat, [1.0 if n else 0.0 for n in nesterov])
            self.along_b = coefficient(flat, [m if n else 1.0 for m, n in zip(momentum, nesterov, strict=True)])
        elif which == "adagrad":
            start = hyper("initial_accumulator_value")
            self.sums = zeros().add_(start)
            self.eps, self.lr_decay = hyper("eps"), hyper("lr_decay")
        elif which == "adagrad_norm":
            b0 = hyper("b0")
            self.b2 = flat.new_full((shape[0], 1), b0 * b0) if isinstance(b0, float) else b0.square()
        elif which == "rmsprop":
            self.square_avg = zeros()
            self.alpha, self.eps = hyper("alpha"), hyper("eps")
        elif which == "adam":
            self.exp_avg, self.exp_avg_sq = zeros(), zeros()
            self.beta1 = [float(s["betas"][0]) for s in mine]
            self.beta2 = [float(s["betas"][1]) for s in mine]
            self.one_minus_beta1 = coefficient(flat, [1 - b for b in self.beta1])
            self.beta2_coefficient = coefficient(flat, self.beta2)
            self.one_minus_beta2 = coefficient(flat, [1 - b for b in self.beta2])
            self.eps = hyper("eps")

    def step(self, theta, g, lr) -> None:
        self.t += 1
        if not isinstance(self.decay, float):
            d = g.addcmul(theta, self.decay)
        else:
            d = g.add(theta, alpha=self.decay) if self.decay else g
        getattr(self, f"_{self.rule}")(theta, d, lr)

    def _sgd(self, theta, d, lr) -> None:
        if self.beta is None:
            _sub_(theta, d, lr)
            return
        self.buffer.mul_(self.beta).add_(d)
        if isinstance(self.along_d, float) and self.along_d == 0.0:    # heavy ball (and SGD rows): along b
            direction = self.buffer
        elif isinstance(self.along_d, float):                          # Nesterov: along d + βb
            direction = d.add(self.buffer, alpha=self.along_b) if isinstance(self.along_b, float) \
                else d.addcmul(self.buffer, self.along_b)
        else:
            direction = (self.buffer * self.along_b).addcmul_(d, self.along_d)
        _sub_(theta, direction, lr)

    def _adagrad(self, theta, d, lr) -> None:
        self.sums.addcmul_(d, d, value=1)
        std = self.sums.sqrt().add_(self.eps)
        _sub_ratio_(theta, d, std, lr / (1 + (self.t - 1) * self.lr_decay))

    def _adagrad_norm(self, theta, d, lr) -> None:
        self.b2.add_(d.square().sum(1, keepdim=True))
        _sub_(theta, d / self.b2.sqrt(), lr)

    def _rmsprop(self, theta, d, lr) -> None:
        self.square_avg.mul_(self.alpha)
        _add_product_(self.square_avg, d, d, 1 - self.alpha)
        avg = self.square_avg.sqrt().add_(self.eps)
        _sub_ratio_(theta, d, avg, lr)

    def _adam(self, theta, d, lr) -> None:
        t = self.t
        self.exp_avg.lerp_(d, self.one_minus_beta1)
        self.exp_avg_sq.mul_(self.beta2_coefficient)
        _add_product_(self.exp_avg_sq, d, d, self.one_minus_beta2)
        bias_correction1 = coefficient(theta, [1 - b ** t for b in self.beta1])
        root = coefficient(theta, [(1 - b ** t) ** 0.5 for b in self.beta2])
        denom = (self.exp_avg_sq.sqrt() / root).add_(self.eps)
        _sub_ratio_(theta, self.exp_avg, denom, lr / bias_correction1)
