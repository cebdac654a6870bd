"""Scores, masks and masked layers: what gets pruned, and how it stays pruned.

* :func:`scores` — per-layer saliencies of a model's ``nn.Linear`` weights: magnitude, random, SNIP
  (Lee et al. 2019), GraSP (Wang et al. 2020), SynFlow (Tanaka et al. 2020);
* :func:`masks` — keep the top-scoring weights at a density, one global threshold or per layer, the
  output layer optionally at half the rate or dense;
* :func:`apply` — prune a model in place so that its masked weights stay exactly zero through any
  optimiser step (momentum, Adam, weight decay): the gradients of masked weights are zeroed as they are
  accumulated, the stored weights are zeroed before every forward, and :func:`step_hook` re-zeroes them
  after a step for optimisers whose state predates the mask;
* :func:`synflow_masks` — SynFlow's 100 data-free rounds at densities d^{t/T};
* :class:`DCTPlusSparse` — Price & Tanner's layer, ``y = s·x D + x (S ⊙ M)ᵀ + b``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.fft import dct
from torch import nn

from core.pruning.densities import PruningError, check_density

OUTPUT_CHOICES = ("prune", "half", "dense")
HALF_RATE = math.log(0.9) / math.log(0.8)
"""Output layer "at half the rate": 10 % a round where the others lose 20 % (Frankle & Carbin 2019), so its
density is h^γ when the others' is h, γ = ln 0.9 / ln 0.8."""
GRASP_TEMPERATURE = 200.0   # Wang et al.'s code divides the logits by T = 200 before the Hessian-gradient product
SAMPLE = 256                # training examples SNIP and GraSP score on (one minibatch, as in both papers)


def prunable(model: nn.Module) -> list[nn.Linear]:
    """The model's ``nn.Linear`` layers in order (``model.linears`` when it lists them).

    Raises
    ------
    PruningError
        If the model has no ``nn.Linear`` layer.
    """
    layers = list(getattr(model, "linears", None) or [m for m in model.modules() if isinstance(m, nn.Linear)])
    if not layers:
        raise PruningError(f"{type(model).__name__} has no nn.Linear layer to prune (pruning here works on "
                           "the weights of fully connected layers)")
    return layers


def _inputs(data, n: int, seed: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` training examples drawn without replacement from a Dataset or an ``(x, y)`` pair."""
    if data is None:
        raise PruningError("this score needs data (a Dataset or an (x, y) pair of tensors)")
    x, y = (data.x_train, data.y_train) if hasattr(data, "x_train") else data
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(x.shape[0], generator=g)[:n]
    return x[pick].to(device), y[pick].to(device)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def scores(model: nn.Module, method: str, data=None, seed: int = 0) -> list[torch.Tensor]:
    """Per-layer saliency of every ``nn.Linear`` weight; higher means keep.

    Parameters
    ----------
    model : the network (not modified; its current masks, if any, are respected).
    method : ``"magnitude"`` |w|; ``"random"`` uniform noise; ``"snip"`` |g ⊙ w| (Lee et al. 2019,
        arXiv 1810.02340, eq. 6); ``"grasp"`` w ⊙ Hg, the largest kept (Wang et al. 2020, arXiv 2002.07376,
        eq. 8: removing the largest −w ⊙ Hg); ``"synflow"`` |w ⊙ ∂R/∂w| with R = 1ᵀ(Π_l |W^l|)1 on |θ|
        (Tanaka et al. 2020, arXiv 2006.05467, eq. 2; one round — see :func:`synflow_masks`).
    data : a Dataset or ``(x, y)`` for SNIP and GraSP (a random minibatch of 256 training examples).
    seed : for ``random`` and for the minibatch.
    """
    layers = prunable(model)
    if method == "magnitude":
        return [layer.weight.detach().abs().clone() for layer in layers]
    if method == "random":
        g = torch.Generator().manual_seed(seed)
        return [torch.rand(layer.weight.shape, generator=g).to(layer.weight.device) for layer in layers]
    if method == "synflow":
        return _synflow_scores(model)
    if method in ("snip", "grasp"):
        net = copy.deepcopy(model).train()
        x, y = _inputs(data, SAMPLE, seed, _device(model))
        weights = [layer.weight for layer in prunable(net)]
        if method == "snip":
            loss = F.cross_entropy(net(x), y)
            grads = torch.autograd.grad(loss, weights)
            return [(g * w).detach().abs() for g, w in zip(grads, weights, strict=True)]
        loss = F.cross_entropy(net(x) / GRASP_TEMPERATURE, y)
        grads = torch.autograd.grad(loss, weights, create_graph=True)
        fixed = [g.detach() for g in grads]
        gHg = sum((g * f).sum() for g, f in zip(grads, fixed, strict=True))
        hg = torch.autograd.grad(gHg, weights)
        return [(w * h).detach() for w, h in zip(weights, hg, strict=True)]
    raise PruningError(f"unknown score {method!r}; choose from magnitude, random, snip, grasp, synflow")


def _synflow_scores(model: nn.Module) -> list[torch.Tensor]:
    """One SynFlow round in float64 on |θ| (eval mode, an all-ones input): R can overflow float32."""
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    layers = prunable(net)
    ones = torch.ones(1, layers[0].in_features, dtype=torch.float64, device=_device(net))
    R = net(ones).sum()
    grads = torch.autograd.grad(R, [layer.weight for layer in layers])
    return [(g * layer.weight).detach().abs().to(torch.float32) for g, layer in zip(grads, layers, strict=True)]


def keep_top(score: torch.Tensor, k: int) -> torch.Tensor:
    """A boolean mask of ``score``'s shape keeping exactly its ``k`` largest entries (NaN counts lowest)."""
    flat = torch.nan_to_num(score.reshape(-1).to(torch.float64), nan=-math.inf)
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=score.device)
    if k > 0:
        keep[torch.topk(flat, min(int(k), flat.numel()), sorted=False).indices] = True
    return keep.reshape(score.shape)


def _output_density(h: float, output: str) -> float:
    return {"prune": h, "half": h ** HALF_RATE, "dense": 1.0}[output]


def masks(scores: Sequence[torch.Tensor], density, scope: str = "global", *, output: str = "prune"
          ) -> list[torch.Tensor]:
    """Boolean masks keeping the highest scores at ``density`` of all the weights.

    Parameters
    ----------
    scores : one tensor per layer (from :func:`scores`).
    density : the overall fraction kept, in (0, 1]; or one density per layer (then ``scope`` and
        ``output`` are not used).
    scope : ``"global"`` — one threshold over the pruned layers (Frankle & Carbin's large nets; Lee et al.);
        ``"layer"`` — the same density in each pruned layer.
    output : ``"prune"`` the last layer like the others; ``"half"`` at half the rate (density h^γ,
        γ = ln 0.9/ln 0.8, when the others' is h); ``"dense"`` never pruned (open_lth).

    Every layer keeps round(density_l · size_l) weights, and the total is round(density · all).
    """
    sizes = [s.numel() for s in scores]
    if not isinstance(density, int | float):
        per_layer = [check_density(d, "layer density") for d in density]
        if len(per_layer) != len(scores):
            raise PruningError(f"{len(per_layer)} layer densities for {len(scores)} layers")
        return [keep_top(s, round(d * n)) for s, d, n in zip(scores, per_layer, sizes, strict=True)]
    d = check_density(density)
    if scope not in ("global", "layer"):
        raise PruningError(f"unknown scope {scope!r}; choose global or layer")
    if output not in OUTPUT_CHOICES:
        raise PruningError(f"unknown output-layer rule {output!r}; choose from {', '.join(OUTPUT_CHOICES)}")
    total = round(d * sum(sizes))
    pooled = scores if output == "prune" else scores[:-1]
    n_pool = sum(sizes[: len(pooled)])
    if output == "prune":
        k_pool, k_out = total, None
    else:
        n_out = sizes[-1]

        def kept_out(k: int) -> int:
            return round(n_out * _output_density(k / n_pool, output)) if n_pool else n_out

        if total - kept_out(0) < 0 and output == "dense":
            raise PruningError(f"density {d:g} keeps {total} weights, fewer than the {n_out} of the dense output "
                               f"layer: choose a density of at least {n_out / sum(sizes):.3g} or prune the output")
        lo, hi = 0, n_pool     # the largest k with k + kept_out(k) ≤ total (kept_out grows with k)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if mid + kept_out(mid) <= total:
                lo = mid
            else:
                hi = mid - 1
        k_pool, k_out = lo, min(n_out, total - lo)
    if scope == "layer":
        h = k_pool / n_pool if n_pool else 0.0
        out = [keep_top(s, round(h * s.numel())) for s in pooled]
    else:
        flat = torch.cat([s.reshape(-1).to(torch.float64) for s in pooled])
        keep = keep_top(flat, k_pool)
        out = [part.reshape(s.shape) for part, s in zip(torch.split(keep, sizes[: len(pooled)]), pooled,
                                                         strict=True)]
    if k_out is not None:
        out.append(keep_top(scores[-1], k_out))
    return out


def layer_densities(mask_list: Sequence[torch.Tensor]) -> np.ndarray:
    """The fraction of weights each mask keeps."""
    return np.array([float(m.float().mean()) for m in mask_list])


def _zero_masked(module: nn.Module, _args) -> None:
    """Forward pre-hook: the stored weights are the pruned ones, and their gradients are masked too."""
    weight = module.weight
    with torch.no_grad():
        weight.mul_(module.weight_mask)
    if not getattr(weight, "_eoc_masked_grad", False):
        def mask_grad(p: torch.Tensor, layer: nn.Module = module) -> None:
            p.grad.mul_(layer.weight_mask)

        weight.register_post_accumulate_grad_hook(mask_grad)
        weight._eoc_masked_grad = True


def apply(model: nn.Module, mask_list: Sequence[torch.Tensor]) -> nn.Module:
    """Prune ``model``'s ``nn.Linear`` weights in place by ``mask_list`` (True = kept); returns ``model``.

    Masked weights are set to zero and stay exactly zero through any optimiser step a user can take:
    their gradients are zeroed as they are accumulated (so SGD with momentum, Adam and weight decay,
    L2 or decoupled, see zero), the stored weights are re-zeroed before every forward, and
    :func:`step_hook` zeroes them after each step (for an optimiser whose momentum predates the mask).
    The mask is a non-persistent buffer ``weight_mask`` (copied by ``copy.deepcopy``, not saved in the
    ``state_dict``, so the pruned model loads into an unpruned one).
    """
    layers = prunable(model)
    if len(mask_list) != len(layers):
        raise PruningError(f"{len(mask_list)} masks for {len(layers)} Linear layers")
    for layer, mask in zip(layers, mask_list, strict=True):
        if tuple(mask.shape) != tuple(layer.weight.shape):
            raise PruningError(f"a mask of shape {tuple(mask.shape)} for a weight of shape "
                               f"{tuple(layer.weight.shape)}")
        m = mask.to(device=layer.weight.device, dtype=layer.weight.dtype)
        if hasattr(layer, "weight_mask"):
            layer.weight_mask = m
        else:
            layer.register_buffer("weight_mask", m, persistent=False)
            layer._eoc_hook = layer.register_forward_pre_hook(_zero_masked)
        _zero_masked(layer, ())
    return model


def enforce(model: nn.Module) -> None:
    """Zero every masked weight of ``model`` (after an optimiser step)."""
    with torch.no_grad():
        for layer in model.modules():
            mask = getattr(layer, "weight_mask", None)
            if mask is not None and isinstance(layer, nn.Linear):
                layer.weight.mul_(mask)


def step_hook(model: nn.Module, step: int) -> None:
    """For ``core.training.train(step_hook=…)``: re-zero the masked weights after every step."""
    enforce(model)


def current_masks(model: nn.Module) -> list[torch.Tensor] | None:
    """The boolean masks :func:`apply` set on ``model``, or None when it is not pruned."""
    found = [getattr(layer, "weight_mask", None) for layer in prunable(model)]
    return None if all(m is None for m in found) else [
        (m.bool() if m is not None else torch.ones_like(layer.weight, dtype=torch.bool))
        for m, layer in zip(found, prunable(model), strict=True)]


def remove(model: nn.Module) -> nn.Module:
    """Drop the masks (the pruned weights stay at zero but may now train)."""
    for layer in prunable(model):
        handle = getattr(layer, "_eoc_hook", None)
        if handle is not None:
            handle.remove()
            del layer._eoc_hook
        if "weight_mask" in layer._buffers:
            del layer._buffers["weight_mask"]
    return model


def synflow_masks(model: nn.Module, density: float, rounds: int = 100, *, output: str = "prune"
                  ) -> list[torch.Tensor]:
    """SynFlow's iterative, data-free pruning (Tanaka et al. 2020, Algorithm 1): ``rounds`` rounds of
    scoring |θ ⊙ ∂R/∂θ| on the masked net and keeping the top d^{t/T}, globally."""
    d = check_density(density)
    net = copy.deepcopy(model)
    remove(net)
    layers = prunable(net)
    originals = [layer.weight.detach().clone() for layer in layers]
    keep = [torch.ones_like(w, dtype=torch.bool) for w in originals]
    for t in range(1, rounds + 1):
        with torch.no_grad():
            for layer, w, m in zip(layers, originals, keep, strict=True):
                layer.weight.copy_(w * m)
        keep = masks(_synflow_scores(net), d ** (t / rounds), "global", output=output)
    return keep


def prune_at_init(model: nn.Module, method: str, density: float, data=None, seed: int = 0, *,
                  scope: str = "global", output: str = "prune") -> list[torch.Tensor]:
    """Masks for pruning at initialisation by ``method`` (SynFlow iteratively, the others in one shot)."""
    if method == "synflow":
        return synflow_masks(model, density, output=output)
    return masks(scores(model, method, data, seed), density, scope, output=output)


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Price & Tanner's fixed offset ``dct(eye(max(n_in, n_out)), norm="ortho")[:n_in, :n_out]``: rows (or
    columns) of an orthogonal matrix, so all its min(n_in, n_out) singular values are 1."""
    return dct(np.eye(max(n_in, n_out)), norm="ortho")[:n_in, :n_out]


class DCTPlusSparse(nn.Module):
    """A layer ``y = s · x D + x (S ⊙ M)ᵀ + b`` (Price & Tanner 2021, arXiv 2102.07655, §3).

    D is the fixed orthonormal DCT offset (:func:`dct_matrix`, a buffer), s a trainable scalar starting at
    1, S the trainable sparse part, zero at init on a random support M holding round(density · n_in n_out)
    entries, and b a bias (zero at init). At init the layer is exactly isometric: every singular value of
    its weight is 1, whatever the density.
    """

    def __init__(self, in_features: int, out_features: int, density: float, bias: bool = True, seed: int = 0):
        super().__init__()
        d = check_density(density)
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("offset", torch.tensor(dct_matrix(in_features, out_features), dtype=torch.float32))
        self.scale = nn.Parameter(torch.ones(()))
        self.weight = nn.Parameter(torch.zeros(out_features, in_features))
        g = torch.Generator().manual_seed(seed)
        n = in_features * out_features
        support = torch.zeros(n, dtype=torch.bool)
        support[torch.randperm(n, generator=g)[: round(d * n)]] = True
        self.register_buffer("weight_mask", support.reshape(out_features, in_features).float())
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def effective_weight(self) -> torch.Tensor:
        """The (out, in) matrix the layer multiplies by: s Dᵀ + S ⊙ M."""
        return self.scale * self.offset.T + self.weight * self.weight_mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight(), self.bias)

    def extra_repr(self) -> str:
        density = float(self.weight_mask.mean())
        return f"in_features={self.in_features}, out_features={self.out_features}, density={density:.4g}"
