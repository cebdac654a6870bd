"""Networks from a frozen spec: MLPs of any widths, every φ of :mod:`core.activations`, five initialisations,
optional batch normalisation and residual blocks.

A :class:`NetSpec` is plain data (JSON through ``to_dict``/``from_dict``) so a trained model can be saved as
safetensors plus its spec and rebuilt exactly. :func:`build` makes an :class:`MLP` whose layers are plain
``nn.Linear`` (listed in order in ``model.linears``, the last one the output layer), so pruning and
certification read and mask them directly.

Initialisations (weights ``W`` of shape (N_out, N_in), biases ``b``):

- ``gaussian``: W ~ N(0, σ_w²/N_in), b ~ N(0, σ_b²), exactly the mean-field networks of the Signal
  Propagation panel (Poole et al. 2016; Schoenholz et al. 2017).
- ``critical``: the same with σ_w = ``core.propagation.critical_sigma_w(σ_b, φ)``, on the order-to-chaos
  line χ₁ = 1.
- ``glorot``: W ~ U(−a, a), a = √(6/(N_in + N_out)) (Glorot & Bengio 2010, eq. 16); b ~ N(0, σ_b²).
- ``he``: W ~ N(0, 2/N_in) (He et al. 2015, eq. 10); b ~ N(0, σ_b²).
- ``orthogonal``: W = σ_w·Q with Q a Haar-random (semi-)orthogonal matrix (Saxe et al. 2014; Pennington et
  al. 2017); b ~ N(0, σ_b²). For square layers the entries then have variance σ_w²/N_in as in gaussian.

Batch normalisation (Ioffe & Szegedy 2015) sits after each hidden affine map, before φ. A residual block
(He et al. 2016) adds a hidden layer's input to its output, h_l = h_{l−1} + φ(W_l h_{l−1} + b_l), wherever
that layer's input and output widths agree.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from core import activations

INITS = ("gaussian", "critical", "glorot", "he", "orthogonal")

MAX_LAYERS = 1000
BYTES = 4  # float32


class NetTooLarge(ValueError):
    """A spec whose weights or activations would not fit in memory; the message gives the size in GB."""


@dataclass(frozen=True)
class NetSpec:
    """An MLP ``inputs → widths… → outputs``.

    Parameters
    ----------
    inputs, outputs : int
        Input dimension d and number of outputs (classes, or 1 for regression).
    widths : tuple of int
        Hidden widths, in order; ``()`` is a linear model.
    phi : str
        A name in ``core.activations.NAMES``.
    init : str
        One of ``INITS`` (see the module docstring).
    sigma_w, sigma_b : float
        σ_w (gaussian and orthogonal; ignored by glorot, he and critical) and σ_b (every init).
    batch_norm, residual : bool
        Batch normalisation before each hidden φ; residual connections where widths agree.
    """

    inputs: int
    widths: tuple[int, ...]
    outputs: int
    phi: str = "relu"
    init: str = "he"
    sigma_w: float = 1.0
    sigma_b: float = 0.0
    batch_norm: bool = False
    residual: bool = False

    def __post_init__(self) -> None:
        def whole(name: str, value, lo: int = 1) -> int:
            if isinstance(value, bool) or not isinstance(value, int | float) or float(value) != int(value):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
            if int(value) < lo:
                raise ValueError(f"{name} must be ≥ {lo}, got {value}")
            return int(value)

        object.__setattr__(self, "inputs", whole("inputs", self.inputs))
        object.__setattr__(self, "outputs", whole("outputs", self.outputs))
        widths = (self.widths,) if isinstance(self.widths, int | float) else tuple(self.widths)
        if len(widths) > MAX_LAYERS:
            raise ValueError(f"{len(widths)} hidden layers: at most {MAX_LAYERS}")
        object.__setattr__(self, "widths", tuple(whole("width", w) for w in widths))
        if self.phi not in activations.NAMES:
            raise ValueError(f"unknown activation {self.phi!r}; known: {', '.join(activations.NAMES)}")
        if self.init not in INITS:
            raise ValueError(f"unknown initialisation {self.init!r}; known: {', '.join(INITS)}")
        for name in ("sigma_w", "sigma_b"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in ("batch_norm", "residual"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @property
    def sizes(self) -> tuple[int, ...]:
        """``(inputs, *widths, outputs)``."""
        return (self.inputs, *self.widths, self.outputs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (widths as a list)."""
        out = asdict(self)
        out["widths"] = list(self.widths)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetSpec:
        """The spec of :meth:`to_dict`; ValueError naming an unknown or missing field."""
        if not isinstance(d, dict):
            raise ValueError(f"a net spec is a JSON object, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown net spec field(s): {', '.join(sorted(unknown))}")
        missing = {"inputs", "widths", "outputs"} - set(d)
        if missing:
            raise ValueError(f"net spec lacks {', '.join(sorted(missing))}")
        widths = d["widths"]
        if not isinstance(widths, list | tuple):
            raise ValueError(f"widths must be a list of whole numbers, got {widths!r}")
        return cls(**{**d, "widths": tuple(widths)})

    def parameter_count(self) -> int:
        """Weights and biases (and batch-norm scales and shifts)."""
        sizes = self.sizes
        count = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        if self.batch_norm:
            count += 2 * sum(self.widths)
        return count

    def sigma_w_used(self) -> float:
        """The σ_w the initialisation uses: the critical one for ``init="critical"``."""
        if self.init == "critical":
            from core.propagation import critical_sigma_w

            value = float(critical_sigma_w(self.sigma_b, self.phi))
            if not math.isfinite(value):
                raise ValueError(f"{self.phi} has no order-to-chaos transition at σ_b = {self.sigma_b:g} "
                                 "(χ₁ < 1 for every σ_w): there is no critical initialisation")
            return value
        return self.sigma_w

    def memory_bytes(self, batch: int = 1) -> int:
        """Bytes to train this net on batches of ``batch``: weights, gradients and two optimiser moments
        (4 copies of the parameters) plus the activations kept for the backward pass."""
        activations_kept = batch * sum(self.sizes) * (3 if self.batch_norm else 2)
        return BYTES * (4 * self.parameter_count() + activations_kept)

    def check_fits(self, batch: int = 1, device=None) -> None:
        """Raise NetTooLarge, with the size in GB, if training on ``batch`` would not fit in memory."""
        need = self.memory_bytes(batch)
        have = available_bytes(device)
        if need > have:
            raise NetTooLarge(f"this network needs {need / 1e9:.1f} GB to train ({self.parameter_count():,} "
                              f"parameters, batch {batch}) but only {have / 1e9:.1f} GB of memory is available")


def available_bytes(device=None) -> int:
    """Half the memory of ``device`` (free GPU memory, or physical RAM): what one network may take."""
    from core.device import resolve

    dev = resolve(device)
    if dev.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(dev)
        return int(free) // 2
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 << 30
    return int(total) // 2


def _module_classes():
    import torch
    from torch import nn

    class MLP(nn.Module):
        """The network of a :class:`NetSpec`: ``linears`` (plain nn.Linear, output layer last), ``norms``
        (BatchNorm1d per hidden layer, or empty) and φ. ``forward(x)`` maps (n, inputs) to (n, outputs)."""

        def __init__(self, spec: NetSpec):
            super().__init__()
            self.spec = spec
            self.act = activations.get(spec.phi)
            sizes = spec.sizes
            self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
            self.norms = nn.ModuleList(nn.BatchNorm1d(w) for w in spec.widths) if spec.batch_norm else nn.ModuleList()
            self.skips = tuple(spec.residual and a == b for a, b in zip(sizes[:-2], sizes[1:-1], strict=True))

        @property
        def phi(self):
            """φ on torch tensors (ReLU as torch.relu: one fused kernel forward and backward)."""
            return torch.relu if self.spec.phi == "relu" else self.act.torch

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.features(x)[1]

        def features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
            """The post-activations of the hidden layers and the output logits."""
            phi = self.phi
            hidden = []
            h = x
            for i, skip in enumerate(self.skips):
                z = self.linears[i](h)
                if self.norms:
                    z = self.norms[i](z)
                h = h + phi(z) if skip else phi(z)
                hidden.append(h)
            return hidden, self.linears[-1](h)

        def extra_repr(self) -> str:
            return f"phi={self.spec.phi}, init={self.spec.init}"

    return MLP


_MLP = None


def mlp_class():
    """The torch ``nn.Module`` class of built networks (made on first use so importing this module does not
    import torch)."""
    global _MLP
    if _MLP is None:
        _MLP = _module_classes()
    return _MLP


def build(spec: NetSpec, seed: int = 0, device=None):
    """The network of ``spec``, initialised from ``seed`` (the same seed gives the same weights on any device).

    Raises
    ------
    NetTooLarge
        If its parameters would not fit in memory (the message gives the size in GB).
    ValueError
        ``init="critical"`` for a φ with no order-to-chaos transition at this σ_b.
    """
    import torch

    from core.device import resolve

    dev = resolve(device)
    spec.check_fits(1, dev)
    sigma_w = spec.sigma_w_used()
    generator = torch.Generator().manual_seed(int(seed))
    with torch.device("cpu"):
        model = mlp_class()(spec)
    with torch.no_grad():
        for layer in model.linears:
            fan_out, fan_in = layer.weight.shape
            w = layer.weight
            if spec.init in ("gaussian", "critical"):
                w.normal_(0.0, sigma_w / math.sqrt(fan_in), generator=generator)
            elif spec.init == "he":
                w.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
            elif spec.init == "glorot":
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                w.uniform_(-bound, bound, generator=generator)
            else:
                torch.nn.init.orthogonal_(w, gain=sigma_w, generator=generator)
            if spec.sigma_b > 0:
                layer.bias.normal_(0.0, spec.sigma_b, generator=generator)
            else:
                layer.bias.zero_()
    return model.to(dev)


def clone(model):
    """A fresh copy of a built network (same spec, same weights, buffers and device): train or prune the copy,
    never a cached model in place."""
    copy = mlp_class()(model.spec)
    copy.load_state_dict(model.state_dict())
    device = next(model.parameters()).device
    return copy.to(device)


DIGITS_MLP = NetSpec(64, (128, 128), 10)
"""The default digits network: 64 → 128 → 128 → 10, ReLU, He initialisation."""
