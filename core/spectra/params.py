"""The parameters of the Jacobian Spectra panel, and the weight types and universality classes."""

from __future__ import annotations

from dataclasses import dataclass

from core import activations
from core.activations import NAMES, Activation
from core.params import Params, param

WEIGHTS = ("gaussian", "orthogonal")
UNIVERSALITY_CLASSES = ("bernoulli", "smooth")


@dataclass(frozen=True)
class SpectraParams(Params):
    """What the Jacobian Spectra panel lets the lecturer set (THEORY.md §3)."""

    phi: str = param("tanh", "φ", choices=NAMES, help="activation function")
    alpha: float = param(0.5, "α", lo=-2.0, hi=2.0, step=0.05, decimals=2,
                         help="shift of the shifted ReLU, φ(x) = max(0, x + α) − α")
    weights: str = param("orthogonal", "weights", choices=WEIGHTS,
                         help="W ~ N(0, σ_w²/N) entries, or σ_w × a Haar-random orthogonal matrix")
    sigma_w: float = param(1.05, "σ_w", lo=0.05, hi=4.0, step=0.01,
                           help="weight scale; χ = σ_w² E[φ'(h)²] = 1 is the critical line")
    # σ_b = 0.015 puts tanh at σ_w = 1.05 just inside the ordered phase (χ = 0.999) with a small q*:
    # the orthogonal net starts out near dynamical isometry, variance ≈ ¼ at L = 16
    sigma_b: float = param(0.015, "σ_b", lo=0.0, hi=2.0, step=0.005,
                           help="bias standard deviation; sets q*, and with it the spread of φ'(h)²")
    depth: int = param(16, "depth L", lo=1, hi=1024, step=1, scale="log", decimals=0)
    width: int = param(1000, "width N", lo=2, hi=4000, step=1, scale="log", decimals=0,
                       help="units per layer of the simulated network")
    seed: int = param(0, "seed", lo=0, hi=2**31 - 1, step=1, decimals=0)
    xscale: str = param("log", "x scale", choices=("linear", "log"))

    def activation(self) -> Activation:
        """φ as an Activation (α only matters for the shifted ReLU)."""
        return activations.get(self.phi, alpha=self.alpha) if self.phi == "shifted_relu" \
            else activations.get(self.phi)
