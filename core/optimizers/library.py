"""The optimisers by name: torch.optim's own classes wherever one exists, our AdaGradNorm otherwise.

============  =====================================================  ======================================
name          torch.optim                                            update (g = ∇f at the iterate)
============  =====================================================  ======================================
gd, sgd       ``SGD(lr=η)``                                          θ ← θ − η g (gd: full batch)
heavy_ball    ``SGD(lr=α, momentum=β)``                              b ← βb + g, θ ← θ − αb  (Polyak)
nesterov      ``SGD(lr=α, momentum=β, nesterov=True)``               b ← βb + g, θ ← θ − α(g + βb)
adagrad       ``Adagrad(lr=η)``                                      per coordinate, Duchi et al. 2011
adagrad_norm  :class:`core.optimizers.adagrad_norm.AdaGradNorm`      one scalar b over all parameters
rmsprop       ``RMSprop(lr=η, alpha=ρ)``                             Tieleman & Hinton 2012
adam          ``Adam(lr=η, betas=(β₁, β₂))``                         Kingma & Ba 2015, bias-corrected
============  =====================================================  ======================================

Heavy ball: with ``v = −αb`` torch's update is Polyak's ``θ_{k+1} = θ_k + β(θ_k − θ_{k−1}) − α∇f(θ_k)``
exactly (dampening 0, the first buffer is the first gradient, i.e. θ_{−1} = θ_0).

Nesterov: THEORY.md's form is ``θ̂_k = θ_k + β(θ_k − θ_{k−1})``, ``θ_{k+1} = θ̂_k − α∇f(θ̂_k)`` (Sutskever et
al. 2013). torch stores the *look-ahead* point: its iterate ``x_k`` is THEORY's ``θ̂_k`` and its buffer is
``−(θ_{k+1} − θ_k)/α``, so the two produce the same sequence of gradient points, the same losses at those
points and the same linear rate; only which of the two interleaved sequences is called "the parameters"
differs (torch's, θ̂, is where the gradient is taken).
"""

from __future__ import annotations

import math
from typing import Any

NAMES = ("gd", "sgd", "heavy_ball", "nesterov", "adagrad", "adagrad_norm", "rmsprop", "adam")

LABELS = {"gd": "GD", "sgd": "SGD", "heavy_ball": "heavy ball", "nesterov": "Nesterov", "adagrad": "AdaGrad",
          "adagrad_norm": "AdaGrad-Norm", "rmsprop": "RMSProp", "adam": "Adam"}

DEFAULT_LR = {"gd": 0.1, "sgd": 0.1, "heavy_ball": 0.01, "nesterov": 0.01, "adagrad": 0.01,
              "adagrad_norm": 1.0, "rmsprop": 0.01, "adam": 0.001}
"""η when ``make`` is given none: torch.optim's defaults for the adaptive methods, Ward et al.'s η = 1."""

HYPER = {
    "gd": {"weight_decay": 0.0},
    "sgd": {"weight_decay": 0.0},
    "heavy_ball": {"momentum": 0.9, "weight_decay": 0.0},
    "nesterov": {"momentum": 0.9, "weight_decay": 0.0},
    "adagrad": {"lr_decay": 0.0, "eps": 1e-10, "initial_accumulator_value": 0.0, "weight_decay": 0.0},
    "adagrad_norm": {"b0": 1e-2, "weight_decay": 0.0},
    "rmsprop": {"alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False, "weight_decay": 0.0},
    "adam": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False},
}
"""The hyper-parameters each name accepts, with their defaults (torch.optim's, β = 0.9 for momentum)."""

ALIASES = {"beta": "momentum", "beta1": "betas[0]", "beta2": "betas[1]"}
"""``beta`` is heavy ball's / Nesterov's β; ``beta1``/``beta2`` spell Adam's ``betas`` one at a time."""


def _finite(name: str, value: Any, *, lo: float = 0.0, lo_open: bool = False, hi: float | None = None,
            hi_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    value = float(value)
    if value < lo or (lo_open and value == lo) or (hi is not None and (value > hi or (hi_open and value == hi))):
        left = "(" if lo_open else "["
        right = "∞)" if hi is None else (f"{hi:g})" if hi_open else f"{hi:g}]")
        raise ValueError(f"{name}: {value:g} is outside {left}{lo:g}, {right}")
    return value


def resolve_hyper(name: str, lr: float | None = None, **hyper: Any) -> dict[str, Any]:
    """The full, checked keyword arguments of optimiser ``name`` (``lr`` included), defaults filled in.

    Raises
    ------
    ValueError
        Naming an unknown optimiser, an unknown hyper-parameter (with the known ones) or a bad value.
    """
    if name not in NAMES:
        raise ValueError(f"optimizer: unknown name {name!r}; choose from {', '.join(NAMES)}")
    allowed = HYPER[name]
    out: dict[str, Any] = dict(allowed)
    betas = list(out.get("betas", ()))
    for key, value in hyper.items():
        target = ALIASES.get(key, key)
        if target.startswith("betas[") and "betas" in allowed:
            betas[int(target[6])] = value
            continue
        if target not in allowed:
            known = sorted(set(allowed) | {a for a, t in ALIASES.items() if t.split("[")[0] in allowed})
            raise ValueError(f"{key}: not a hyper-parameter of {name} (it takes: lr, {', '.join(known)})")
        if target == "betas":
            if not isinstance(value, tuple | list) or len(value) != 2:
                raise ValueError(f"betas: expected two numbers (β₁, β₂), got {value!r}")
            betas = list(value)
            continue
        out[target] = value
    if "betas" in allowed:
        out["betas"] = (_finite("beta1", betas[0], hi=1.0, hi_open=True),
                        _finite("beta2", betas[1], hi=1.0, hi_open=True))
    out["lr"] = _finite("lr", DEFAULT_LR[name] if lr is None else lr, lo_open=True)
    for key in ("weight_decay", "eps", "lr_decay", "initial_accumulator_value"):
        if key in out:
            out[key] = _finite(key, out[key])
    if "momentum" in out:
        out["momentum"] = _finite("momentum", out["momentum"], lo_open=name == "nesterov", hi=1.0, hi_open=True)
    if "alpha" in out:
        out["alpha"] = _finite("alpha", out["alpha"], hi=1.0)
    if "b0" in out:
        out["b0"] = _finite("b0", out["b0"], lo_open=True)
    for key in ("centered", "amsgrad"):
        if key in out and not isinstance(out[key], bool):
            raise ValueError(f"{key}: expected true or false, got {out[key]!r}")
    return out


def make(name: str, params, lr: float | None = None, **hyper: Any):
    """A ``torch.optim.Optimizer`` for ``name`` over ``params`` (tensors, parameter groups or an ``nn.Module``).

    gd and sgd are the same class (``torch.optim.SGD``): "gd" means the caller feeds it full-batch
    gradients. heavy_ball and nesterov take ``momentum`` (alias ``beta``), β = 0.9 by default. See the
    module docstring for the exact mapping to torch.optim and THEORY.md §4.

    Parameters
    ----------
    name
        One of :data:`NAMES`.
    params
        What any torch optimiser takes, or a module (its ``parameters()``).
    lr
        η (α for the momentum methods); :data:`DEFAULT_LR` when None.
    **hyper
        The names in :data:`HYPER` for this optimiser (or the aliases in :data:`ALIASES`).

    Raises
    ------
    ValueError
        Naming an unknown optimiser, an unknown hyper-parameter, or a bad value.
    """
    import torch

    kw = resolve_hyper(name, lr, **hyper)
    if isinstance(params, torch.nn.Module):
        params = params.parameters()
    if name in ("gd", "sgd"):
        return torch.optim.SGD(params, **kw)
    if name == "heavy_ball":
        return torch.optim.SGD(params, dampening=0.0, nesterov=False, **kw)
    if name == "nesterov":
        return torch.optim.SGD(params, dampening=0.0, nesterov=True, **kw)
    if name == "adagrad":
        return torch.optim.Adagrad(params, **kw)
    if name == "adagrad_norm":
        from core.optimizers.adagrad_norm import AdaGradNorm

        return AdaGradNorm(params, **kw)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, **kw)
    return torch.optim.Adam(params, **kw)
