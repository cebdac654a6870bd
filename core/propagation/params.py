"""The parameters of the Signal Propagation panel."""

from __future__ import annotations

from dataclasses import dataclass

from core import activations
from core.activations import NAMES, Activation
from core.params import Params, param
from core.propagation.simulation import NOISES, noise_mu2


@dataclass(frozen=True)
class PropagationParams(Params):
    """What the Signal Propagation panel lets the user set."""

    phi: str = param("tanh", "φ", choices=NAMES, help="activation function")
    alpha: float = param(0.5, "α", lo=-2.0, hi=2.0, step=0.05,
                         help="only for shifted ReLU: φ(x) = max(x + α, 0) − α")
    sigma_w: float = param(1.5, "σ_w", lo=0.05, hi=4.0, step=0.01, help="weight standard deviation × √N")
    sigma_b: float = param(0.05, "σ_b", lo=0.0, hi=2.0, step=0.01, help="bias standard deviation")
    depth: int = param(30, "depth L", lo=1, hi=200, step=1)
    width: int = param(1000, "width N", lo=10, hi=4000, step=10,
                       help="units per layer of the simulated networks")
    noise: str = param("none", "noise", choices=NOISES, help="multiplicative noise on the activations")
    keep_prob: float = param(0.8, "keep p", lo=0.05, hi=1.0, step=0.01, help="dropout keep probability")
    noise_std: float = param(0.5, "noise s", lo=0.0, hi=2.0, step=0.01, help="Gaussian noise ε ~ N(1, s²)")
    q0: float = param(1.0, "q⁰", lo=0.0, hi=20.0, step=0.1, help="input variance ‖x‖²/N")
    c0: float = param(0.5, "c⁰", lo=-1.0, hi=1.0, step=0.01, help="correlation of the two inputs")
    seeds: int = param(3, "networks", lo=1, hi=10, step=1, help="simulated networks, one dot each")
    seed: int = param(0, "seed", lo=0, hi=2**31 - 1, step=1)
    heatmap: str = param("xi_c", "heat map", choices=("xi_c", "log_chi1"),
                         help="ξ_c or log χ₁ over (σ_w, σ_b)")

    @property
    def mu2(self) -> float:
        """E[ε²] of the selected noise (:func:`noise_mu2`)."""
        return noise_mu2(self.noise, self.keep_prob, self.noise_std)

    @property
    def activation(self) -> Activation:
        """φ as an Activation (with α for the shifted ReLU)."""
        if self.phi == "shifted_relu":
            return activations.get(self.phi, alpha=self.alpha)
        return activations.get(self.phi)

    def simulation_kwargs(self) -> dict:
        """Keyword arguments of :func:`simulate_seeds` for these parameters (add ``device`` if wanted)."""
        return dict(phi=self.activation, sigma_w=self.sigma_w, sigma_b=self.sigma_b, depth=self.depth,
                    width=self.width, noise=self.noise, keep_prob=self.keep_prob, noise_std=self.noise_std,
                    q0=self.q0, c0=self.c0, seeds=self.seeds, seed=self.seed)
