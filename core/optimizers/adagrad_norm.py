"""AdaGrad-Norm (Ward, Wu & Bottou 2019): one adaptive step size for the whole model, as a torch.optim.Optimizer.

References
----------
- R. Ward, X. Wu, L. Bottou, "AdaGrad stepsizes: sharp convergence over nonconvex landscapes",
  ICML 2019 / JMLR 21 (2020), arXiv:1806.01811, Algorithm 1 (AdaGrad-Norm).
"""

from __future__ import annotations

import math

import torch


class AdaGradNorm(torch.optim.Optimizer):
    r"""AdaGrad-Norm: ``b_{j+1}² = b_j² + ‖g_j‖²``, ``θ_{j+1} = θ_j − η g_j / b_{j+1}``.

    ``‖g_j‖`` is the norm of the gradient over **all** parameters of **all** groups together (one
    scalar ``b`` for the model, unlike AdaGrad's one per coordinate), Ward, Wu & Bottou (2019), Alg. 1.
    Each group uses its own ``lr`` (η), so a learning-rate schedule multiplies η as for any optimiser.

    Parameters
    ----------
    params
        Tensors or parameter groups, as for any ``torch.optim.Optimizer``.
    lr
        η, the step-size scale (the paper's η; 1 needs no tuning).
    b0
        The initial ``b_0 > 0``; the paper's point is that any value from 1e−4 to 10² works.
    weight_decay
        L2 penalty added to the gradient before the norm (0 in the paper).
    """

    def __init__(self, params, lr: float = 1.0, b0: float = 1e-2, weight_decay: float = 0.0):
        if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr: AdaGradNorm needs a finite η > 0, got {lr!r}")
        if not (isinstance(b0, int | float) and math.isfinite(b0) and b0 > 0):
            raise ValueError(f"b0: AdaGradNorm needs a finite b₀ > 0, got {b0!r}")
        if not (isinstance(weight_decay, int | float) and math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay: needs a finite value ≥ 0, got {weight_decay!r}")
        super().__init__(params, dict(lr=lr, b0=float(b0), weight_decay=weight_decay))

    def _gradients(self) -> list[tuple[dict, torch.Tensor, torch.Tensor]]:
        out = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("AdaGradNorm does not support sparse gradients")
                g = p.grad
                if group["weight_decay"]:
                    g = g.add(p.detach(), alpha=group["weight_decay"])
                out.append((group, p, g))
        return out

    @torch.no_grad()
    def step(self, closure=None):
        """One AdaGrad-Norm step; ``closure`` re-evaluates the loss, as in torch.optim."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grads = self._gradients()
        if not grads:
            return loss
        first = self.param_groups[0]["params"][0]    # holds the one b² of the whole model
        state = self.state[first]
        if "b2" not in state:
            b0 = self.param_groups[0]["b0"]
            state["b2"] = torch.tensor(b0 * b0, dtype=first.dtype, device=first.device)
            state["step"] = 0
        squared = torch.stack([g.pow(2).sum().to(state["b2"]) for _, _, g in grads]).sum()
        state["b2"] = state["b2"] + squared
        state["step"] += 1
        b = state["b2"].sqrt()
        for group, p, g in grads:
            p.sub_(g / b.to(p.dtype), alpha=group["lr"])
        return loss

    @property
    def b(self) -> float:
        """The current ``b_j`` (``b_0`` before the first step)."""
        state = self.state.get(self.param_groups[0]["params"][0], {})
        return float(state["b2"].sqrt()) if "b2" in state else self.param_groups[0]["b0"]
