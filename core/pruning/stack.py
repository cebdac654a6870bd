"""K masked MLPs trained together as one batched model: stacked weights (K, out, in), stacked masks, bmm.

A density sweep (10 densities × 3 seeds = 30 networks) costs about as many Python steps as one network:
each layer is one batched matrix product over the K networks, and torch.optim.Adam on the stacked tensors
is exactly K independent Adams (it is elementwise). The loss is the sum over the networks of each one's
mean cross-entropy, so each network's gradient is its own. All K see the same mini-batch order, the one
``core.training.train`` draws for the same seed, so a stacked run equals K separate runs of the shared loop.

Each layer's effective weight is ``W ⊙ M`` (plus ``s · Dᵀ`` for a DCT-plus-sparse layer): gradients of
masked weights are zero, and the stored weights are re-zeroed after every step (RigL's dropped weights
still carry Adam momentum).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.pace import pace
from core.pruning.masking import dct_matrix, prunable

PHIS = {"relu": torch.relu, "tanh": torch.tanh}


class Stack:
    """K networks of the same layer sizes, as stacked tensors.

    Parameters
    ----------
    weights, biases : per layer, (K, out, in) and (K, out) tensors (copied).
    masks : per layer, (K, out, in) booleans (None: dense).
    dct : give each layer Price & Tanner's fixed DCT offset with a trainable scale per network.
    phi : the hidden activation (``relu`` or ``tanh``).
    """

    def __init__(self, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor],
                 masks: Sequence[torch.Tensor] | None = None, *, dct: bool = False, phi: str = "relu"):
        if phi not in PHIS:
            raise ValueError(f"stacked training supports φ in {sorted(PHIS)}, not {phi!r}")
        self.phi = phi
        self.weights = [w.detach().clone().float().requires_grad_(True) for w in weights]
        self.biases = [b.detach().clone().float().requires_grad_(True) for b in biases]
        K = self.weights[0].shape[0]
        self.masks = [(torch.ones_like(w) if m is None else m.to(w.device, torch.float32))
                      for w, m in zip(self.weights, masks or [None] * len(self.weights), strict=True)]
        self.offsets: list[torch.Tensor | None] = [None] * len(self.weights)
        self.scales: list[torch.Tensor | None] = [None] * len(self.weights)
        if dct:
            for i, w in enumerate(self.weights):
                out_f, in_f = w.shape[1:]
                self.offsets[i] = torch.tensor(dct_matrix(in_f, out_f).T, dtype=torch.float32, device=w.device)
                self.scales[i] = torch.ones(K, device=w.device, requires_grad=True)
        with torch.no_grad():
            for w, m in zip(self.weights, self.masks, strict=True):
                w.mul_(m)
        self._effective: list[torch.Tensor] = []

    # -- construction --------------------------------------------------------------------------------
    @classmethod
    def from_models(cls, models: Sequence[nn.Module], masks: Sequence[Sequence[torch.Tensor]] | None = None,
                    **kw) -> Stack:
        """Stack the ``nn.Linear`` layers of ``models`` (one mask list per model, or None)."""
        layers = [prunable(m) for m in models]
        weights = [torch.stack([ls[i].weight.detach() for ls in layers]) for i in range(len(layers[0]))]
        biases = [torch.stack([ls[i].bias.detach() for ls in layers]) for i in range(len(layers[0]))]
        stacked = None
        if masks is not None:
            stacked = [torch.stack([torch.as_tensor(ms[i]) for ms in masks]) for i in range(len(layers[0]))]
        return cls(weights, biases, stacked, **kw)

    @property
    def count(self) -> int:
        return self.weights[0].shape[0]

    @property
    def device(self) -> torch.device:
        return self.weights[0].device

    def parameters(self) -> list[torch.Tensor]:
        return self.weights + self.biases + [s for s in self.scales if s is not None]

    def effective(self, i: int) -> torch.Tensor:
        """Layer i's (K, out, in) weights as the networks use them: W ⊙ M (+ s Dᵀ)."""
        w = self.weights[i] * self.masks[i]
        if self.offsets[i] is not None:
            w = w + self.scales[i][:, None, None] * self.offsets[i]
        return w

    def forward(self, x: torch.Tensor, keep_effective: bool = False) -> torch.Tensor:
        """Logits (K, n, classes) of every network on the same inputs x (n, d)."""
        phi = PHIS[self.phi]
        h = x
        self._effective = []
        last = len(self.weights) - 1
        for i in range(len(self.weights)):
            w = self.effective(i)
            if keep_effective:
                w.retain_grad()
                self._effective.append(w)
            h = torch.matmul(h, w.transpose(1, 2)) + self.biases[i][:, None, :]
            if i < last:
                h = phi(h)
        return h

    def enforce(self) -> None:
        with torch.no_grad():
            for w, m in zip(self.weights, self.masks, strict=True):
                w.mul_(m)

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        """Test accuracy of each network, (K,)."""
        with torch.no_grad():
            logits = self.forward(x)
        return (logits.argmax(-1) == y[None, :]).float().mean(1).cpu().numpy()

    def snapshot(self) -> list[torch.Tensor]:
        """A copy of the weights and biases (for rewinding)."""
        return [t.detach().clone() for t in self.weights + self.biases]

    def network(self, k: int) -> nn.Sequential:
        """Network k as a plain ``nn.Sequential`` of ``nn.Linear`` and φ (its effective weights)."""
        modules: list[nn.Module] = []
        for i, w in enumerate(self.weights):
            out_f, in_f = w.shape[1:]
            layer = nn.Linear(in_f, out_f)
            with torch.no_grad():
                layer.weight.copy_(self.effective(i)[k])
                layer.bias.copy_(self.biases[i][k])
            modules.append(layer)
            if i < len(self.weights) - 1:
                modules.append(nn.ReLU() if self.phi == "relu" else nn.Tanh())
        return nn.Sequential(*modules).to(self.device)

    def layer_densities(self) -> np.ndarray:
        """(K, layers) fraction of trainable weights kept."""
        return np.stack([m.mean(dim=(1, 2)).cpu().numpy() for m in self.masks], axis=1)

    def densities(self) -> np.ndarray:
        """(K,) fraction of all Linear weights kept."""
        kept = sum(m.sum(dim=(1, 2)) for m in self.masks)
        return (kept / sum(m[0].numel() for m in self.masks)).cpu().numpy()


@dataclass(frozen=True)
class RiglSchedule:
    """RigL's drop/grow schedule (Evci et al. 2020, eq. 1): every ``interval`` steps until ``end``, drop
    the fraction α/2 (1 + cos(π t / end)) of each layer's active weights of smallest magnitude and grow as
    many of its inactive ones with the largest gradient magnitude."""

    interval: int = 100
    alpha: float = 0.3
    end: int = 0             # T_end; RigL stops updating at 75 % of training

    def fraction(self, step: int) -> float:
        if step >= self.end or step % self.interval:
            return 0.0
        return self.alpha / 2.0 * (1.0 + math.cos(math.pi * step / self.end))


def rigl_update(stack: Stack, fraction: float, optimizer: torch.optim.Optimizer | None = None) -> int:
    """One RigL connectivity update of every network of ``stack`` from its last backward pass.

    In each network and layer, drop the ``floor(fraction · active)`` active weights of smallest |w| and grow
    as many weights that were inactive before the drop, those with the largest |∂L/∂w| (so no weight is
    dropped and grown at once); grown weights start at zero with their Adam moments reset. Each layer
    keeps its count of non-zeros. Returns the number of connections moved.
    """
    moved = 0
    with torch.no_grad():
        for i, (w, m) in enumerate(zip(stack.weights, stack.masks, strict=True)):
            grad = stack._effective[i].grad
            state = optimizer.state.get(w, {}) if optimizer is not None else {}
            for k in range(stack.count):
                active = m[k].reshape(-1) > 0
                n_active = int(active.sum())
                n_move = min(math.floor(fraction * n_active), active.numel() - n_active)
                if n_move <= 0:
                    continue
                magnitude = w[k].reshape(-1).abs().masked_fill(~active, math.inf)
                drop = torch.topk(magnitude, n_move, largest=False).indices
                growth = grad[k].reshape(-1).abs().masked_fill(active, -math.inf)
                grow = torch.topk(growth, n_move).indices
                flat_m, flat_w = m[k].view(-1), w[k].view(-1)
                flat_m[drop] = 0.0
                flat_m[grow] = 1.0
                flat_w[drop] = 0.0
                flat_w[grow] = 0.0
                for name in ("exp_avg", "exp_avg_sq", "momentum_buffer"):
                    buf = state.get(name)
                    if buf is not None:
                        buf[k].view(-1)[grow] = 0.0
                moved += n_move
    return moved


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    step: int
    train_loss: np.ndarray        # (K,) mean over the epoch (at epoch 0: on the whole training set)
    test_accuracy: np.ndarray     # (K,)


def train_stack(stack: Stack, data, *, epochs: int, lr: float, batch_size: int = 64, seed: int = 0,
                rigl: RiglSchedule | None = None, snapshot_step: int | None = None, optimizer: str = "adam",
                momentum: float = 0.9) -> Iterator[EpochRecord]:
    """Train every network of ``stack`` in place with ``torch.optim.Adam(lr)`` (or ``SGD(lr, momentum)``
    for ``optimizer="sgd"``), yielding a record before training and after each epoch; closing the
    generator stops it within a step.

    ``rigl`` adds RigL's drop/grow updates; ``snapshot_step`` keeps the weights at that step in
    ``stack.rewind_point`` (step 0: the initialisation) for rewinding.
    """
    dev = stack.device
    x, y = data.x_train.to(dev), data.y_train.to(dev)
    xt, yt = data.x_test.to(dev), data.y_test.to(dev)
    n, K = x.shape[0], stack.count
    if optimizer == "adam":
        opt = torch.optim.Adam(stack.parameters(), lr=lr)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(stack.parameters(), lr=lr, momentum=momentum)
    else:
        raise ValueError(f"stacked training takes optimizer adam or sgd, not {optimizer!r}")
    generator = torch.Generator().manual_seed(int(seed))
    if rigl is not None and rigl.end == 0:
        rigl = RiglSchedule(rigl.interval, rigl.alpha, int(0.75 * epochs * math.ceil(n / batch_size)))
    with torch.no_grad():
        first = F.cross_entropy(stack.forward(x).reshape(K * n, -1), y.repeat(K), reduction="none")
    yield EpochRecord(0, 0, first.reshape(K, n).mean(1).cpu().numpy(), stack.accuracy(xt, yt))
    step = 0
    if snapshot_step == 0:
        stack.rewind_point = stack.snapshot()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=generator).to(dev)
        total = torch.zeros(K, device=dev)
        for start in range(0, n, batch_size):
            pace()
            index = order[start:start + batch_size]
            xb, yb = x[index], y[index]
            update = rigl is not None and rigl.fraction(step + 1) > 0
            logits = stack.forward(xb, keep_effective=update)
            per = F.cross_entropy(logits.reshape(K * xb.shape[0], -1), yb.repeat(K), reduction="none")
            per = per.reshape(K, -1).mean(1)
            opt.zero_grad(set_to_none=True)
            per.sum().backward()
            opt.step()
            step += 1
            if update:
                rigl_update(stack, rigl.fraction(step), opt)
            stack.enforce()
            total += per.detach() * xb.shape[0]
            if snapshot_step is not None and step == snapshot_step:
                stack.rewind_point = stack.snapshot()
        if not bool(torch.isfinite(total).all()):
            bad = int((~torch.isfinite(total)).nonzero()[0])
            raise FloatingPointError(f"network {bad} diverged in epoch {epoch} (loss not finite): lower η")
        yield EpochRecord(epoch, step, (total / n).cpu().numpy(), stack.accuracy(xt, yt))
