"""The registry of activation functions φ with φ', φ'' in numpy (float64) and φ in torch.

Every engine taking ``phi`` accepts a registry name or an :class:`Activation`; :func:`resolve` does
the conversion. ``breakpoints`` lists the x where φ, φ' or φ'' is not smooth (or changes fast):
Gaussian quadrature splits its intervals there, which makes kinked φ (ReLU, hard tanh) exact to
rounding instead of slowly convergent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Array = np.ndarray

NAMES = ("linear", "tanh", "hard_tanh", "erf", "relu", "shifted_relu", "sigmoid", "softplus",
         "elu", "selu", "gelu", "swish")

LABELS = {
    "linear": "linear", "tanh": "tanh", "hard_tanh": "hard tanh", "erf": "erf", "relu": "ReLU",
    "shifted_relu": "shifted ReLU", "sigmoid": "sigmoid", "softplus": "softplus", "elu": "ELU",
    "selu": "SELU", "gelu": "GELU", "swish": "swish (SiLU)",
}

SELU_LAMBDA = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# scipy.special takes ~0.2 s to import; it is loaded the first time an activation that needs it is
# evaluated, not on the app's way to its first window.
def _erf(x: Array) -> Array:
    from scipy.special import erf

    return erf(x)


def expit(x: Array) -> Array:
    from scipy.special import expit as logistic

    return logistic(x)


def ndtr(x: Array) -> Array:
    from scipy.special import ndtr as normal_cdf

    return normal_cdf(x)


@dataclass(frozen=True)
class Activation:
    """φ with its first two derivatives (numpy, float64) and a torch version for simulation.

    Attributes
    ----------
    bernoulli : bool
        φ'(x)² only takes the values 0 and 1 (ReLU, shifted ReLU, hard tanh): the Bernoulli
        universality class of Pennington et al. 2018.
    homogeneous : bool
        φ(a x) = a φ(x) for a > 0 (linear, ReLU), so scale-free quantities (χ₁, c*) do not depend on q.
    """

    name: str
    phi: Callable[[Array], Array]
    dphi: Callable[[Array], Array]
    d2phi: Callable[[Array], Array]
    breakpoints: tuple[float, ...] = (-3.0, -1.0, 0.0, 1.0, 3.0)
    bernoulli: bool = False
    homogeneous: bool = False
    alpha: float = 0.0
    label: str = ""
    _torch: Callable | None = field(default=None, repr=False, compare=False)

    def torch(self, x):
        """φ applied to a torch tensor (torch is imported only when a simulation runs)."""
        return self._torch(x)

    def __str__(self) -> str:
        return self.label or self.name


def _relu_torch(x):
    return x.clamp_min(0)


def _torch_ops():
    import torch

    return torch


def _make(name: str, alpha: float) -> Activation:
    import_torch = _torch_ops
    if name == "linear":
        return Activation(name, lambda x: np.asarray(x, float), np.ones_like, np.zeros_like, (),
                          homogeneous=True, _torch=lambda x: x)
    if name == "tanh":
        return Activation(name, np.tanh, lambda x: 1 - np.tanh(x) ** 2,
                          lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2),
                          _torch=lambda x: import_torch().tanh(x))
    if name == "hard_tanh":
        return Activation(name, lambda x: np.clip(x, -1.0, 1.0),
                          lambda x: (np.abs(x) < 1).astype(float), np.zeros_like, (-1.0, 0.0, 1.0),
                          bernoulli=True, _torch=lambda x: x.clamp(-1.0, 1.0))
    if name == "erf":
        return Activation(name, _erf, lambda x: 2 / math.sqrt(math.pi) * np.exp(-np.square(x)),
                          lambda x: -4 * x / math.sqrt(math.pi) * np.exp(-np.square(x)),
                          _torch=lambda x: import_torch().erf(x))
    if name == "relu":
        return Activation(name, lambda x: np.maximum(x, 0.0), lambda x: (np.asarray(x) > 0).astype(float),
                          np.zeros_like, (0.0,), bernoulli=True, homogeneous=True, _torch=_relu_torch)
    if name == "shifted_relu":
        return Activation(name, lambda x: np.maximum(x + alpha, 0.0) - alpha,
                          lambda x: (np.asarray(x) > -alpha).astype(float), np.zeros_like,
                          (-alpha, 0.0), bernoulli=True, alpha=alpha,
                          _torch=lambda x: (x + alpha).clamp_min(0) - alpha)
    if name == "sigmoid":
        return Activation(name, expit, lambda x: expit(x) * (1 - expit(x)),
                          lambda x: expit(x) * (1 - expit(x)) * (1 - 2 * expit(x)),
                          _torch=lambda x: import_torch().sigmoid(x))
    if name == "softplus":
        return Activation(name, lambda x: np.logaddexp(0.0, x), expit,
                          lambda x: expit(x) * (1 - expit(x)),
                          _torch=lambda x: import_torch().nn.functional.softplus(x))
    if name == "elu":
        return Activation(name, lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
                          lambda x: np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0))),
                          lambda x: np.where(x > 0, 0.0, np.exp(np.minimum(x, 0.0))),
                          _torch=lambda x: import_torch().nn.functional.elu(x))
    if name == "selu":
        lam, a = SELU_LAMBDA, SELU_ALPHA
        return Activation(name, lambda x: lam * np.where(x > 0, x, a * np.expm1(np.minimum(x, 0.0))),
                          lambda x: lam * np.where(x > 0, 1.0, a * np.exp(np.minimum(x, 0.0))),
                          lambda x: lam * np.where(x > 0, 0.0, a * np.exp(np.minimum(x, 0.0))),
                          _torch=lambda x: import_torch().nn.functional.selu(x))
    if name == "gelu":
        def density(x):
            return _INV_SQRT_2PI * np.exp(-0.5 * np.square(x))
        return Activation(name, lambda x: x * ndtr(x), lambda x: ndtr(x) + x * density(x),
                          lambda x: density(x) * (2 - np.square(x)),
                          _torch=lambda x: import_torch().nn.functional.gelu(x))
    if name == "swish":
        def d2(x):
            s = expit(x)
            return s * (1 - s) * (2 + x * (1 - 2 * s))
        return Activation(name, lambda x: x * expit(x), lambda x: expit(x) * (1 + x * (1 - expit(x))), d2,
                          _torch=lambda x: import_torch().nn.functional.silu(x))
    raise KeyError(name)


def get(name: str, **kw) -> Activation:
    """The activation called ``name``; ``shifted_relu`` takes ``alpha`` (default 0.5).

    Raises
    ------
    KeyError
        With a message listing the known names.
    """
    if name not in NAMES:
        raise KeyError(f"unknown activation {name!r}; known: {', '.join(NAMES)}")
    alpha = float(kw.pop("alpha", 0.5))
    if kw:
        raise TypeError(f"unexpected options for {name}: {', '.join(kw)}")
    act = _make(name, alpha)
    label = LABELS[name] + (f" (α = {alpha:g})" if name == "shifted_relu" else "")
    return Activation(**{**act.__dict__, "label": label})


def resolve(phi: str | Activation, **kw) -> Activation:
    """A registry name or an Activation, as an Activation."""
    return phi if isinstance(phi, Activation) else get(phi, **kw)
