"""Loss Landscape engine (THEORY.md §5): filter-normalised surfaces, interpolations, mode connectivity,
the Hessian's spectrum and Pennington & Bahri's index against loss."""

from dataclasses import dataclass

from core.lazy import lazy_exports
from core.params import ParamError, Params, param

# The contract names, imported on first use: importing the package (for its Params) must not import torch.
_PARTS = {
    "directions": ("filter_normalized_direction", "random_direction"),
    "curvature": ("exact_spectrum", "hessian", "hessian_density", "hessian_eigenvalues", "hessian_trace", "index",
                   "sharpness_during_training"),
    "random_matrix": ("critical_loss", "index_theory", "spectral_density"),
    "surfaces": ("evaluate", "evaluate_surface", "interpolate", "interpolation", "surface", "trajectory_plane"),
}

__all__ = sorted(n for names in _PARTS.values() for n in names) + ["LandscapeParams"]


__getattr__ = lazy_exports(__name__, _PARTS, globals())


# -- the panel's parameters ------------------------------------------------------------------------------

SURFACE_MODELS = ("digits MLP", "deep, skips", "deep, no skips")
PLANES = ("random", "PCA of the path")
NORMALISATIONS = ("filter", "layer", "none")


@dataclass(frozen=True)
class LandscapeParams(Params):
    """Everything the Loss Landscape panel lets the lecturer set."""

    model: str = param("digits MLP", "surface of", choices=SURFACE_MODELS,
                       help="The trained digits MLP (64-128-128-10), or a deep width-32 net with or without "
                            "skip connections (Li et al. Fig. 5: skips smooth the landscape).")
    plane: str = param("random", "plane", choices=PLANES,
                       help="Two random directions, or the top-2 PCA directions of the training path "
                            "(Li et al. Fig. 9), which shows the path itself.")
    normalisation: str = param("filter", "normalisation", choices=NORMALISATIONS,
                               help="filter: each neuron's direction scaled to its weights' norm (Li et al.); "
                                    "layer: each layer's; none: raw Gaussian directions.")
    seed: int = param(0, "direction seed", lo=0, hi=9999, step=1,
                      help="Seeds the random directions: the same seed draws the same surface.")
    span: float = param(1.0, "span", lo=0.05, hi=10.0, step=0.05, decimals=2,
                        help="The surface covers α, β ∈ [−span, span] (times the path's extent on the PCA plane).")
    resolution: int = param(41, "resolution", lo=5, hi=101, step=2,
                            help="Grid points per axis of the surface (a 21×21 preview comes first).")
    log_loss: bool = param(True, "log₁₀ loss", help="Colour the surface by log₁₀ of the loss.")
    split: str = param("train", "evaluated on", choices=("train", "test"),
                       help="The whole training set (as Li et al.) or the test set.")
    deep_depth: int = param(12, "deep net depth", lo=2, hi=30, step=1,
                            help="Hidden layers of the deep nets with and without skips.")
    bezier_steps: int = param(400, "Bézier training steps", lo=20, hi=4000, step=20,
                              help="Adam steps training the bend of the curve between two solutions.")
    slq_vectors: int = param(8, "SLQ vectors", lo=1, hi=64, step=1,
                             help="Random start vectors of stochastic Lanczos quadrature.")
    gd_lr: float = param(0.15, "GD learning rate η", lo=0.01, hi=0.5, step=0.01, decimals=2,
                         help="Full-batch gradient descent's step for the sharpness plot: λ_max of a small "
                              "tanh net rises to 2/η and hovers there (Cohen et al. 2021, edge of stability).")

    def check(self) -> None:
        if self.resolution % 2 == 0:
            raise ParamError("resolution", f"{self.resolution} is even: an odd count puts a grid point on the "
                                           "trained model")
