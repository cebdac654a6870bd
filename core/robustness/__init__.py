"""Robustness (lectures 13–15): adversarial attacks, certificates, robust training and the sparsity link.

The public contract (ARCHITECTURE.md): :func:`fgsm`, :func:`pgd`, :func:`deepfool`, :func:`spatial`,
:func:`interval_bounds`, :func:`certified_accuracy`, :func:`lipschitz_bound`; adversarial inputs are
clamped to [0, 1] and bounds are over the box [x − ε, x + ε] ∩ [0, 1].
"""

from dataclasses import dataclass

from core.lazy import lazy_exports
from core.params import Params, param

_PARTS = {
    "attacks": ("DeepFoolResult", "RobustnessError", "SpatialResult", "affine_thetas", "check_eps", "deepfool",
                "fgsm", "pgd", "spatial", "transform_images", "transform_matrices"),
    "certificates": ("certified", "certified_accuracy", "input_box", "interval_bounds", "linear_bounds",
                     "lipschitz_bound", "lipschitz_radius", "margin_lower_bounds", "margins"),
}
__getattr__ = lazy_exports(__name__, _PARTS, globals())

ATTACKS = ("fgsm", "pgd", "pgd_l2", "deepfool")
NETS = ("standard", "adversarial", "ibp")
TOYS = ("moons", "spiral")
DENSITIES = (1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02)


@dataclass(frozen=True)
class RobustnessParams(Params):
    """What the Robustness panel lets the lecturer set."""

    attack: str = param("fgsm", "attack", choices=ATTACKS,
                        help="The attack drawn on the digit: FGSM, PGD (L∞), PGD (L2) or DeepFool (minimal L2).")
    eps: float = param(0.1, "ε (L∞)", lo=0.0, hi=0.5, step=0.01, decimals=2,
                       help="L∞ radius in pixel units (pixels are in [0, 1]) for FGSM, PGD and the certificates.")
    eps_l2: float = param(1.0, "ε₂ (L2)", lo=0.0, hi=4.0, step=0.05, decimals=2,
                          help="L2 radius of the PGD-L2 attack (the 8×8 cube's diameter is 8).")
    index: int = param(0, "test image", lo=0, hi=449, step=1,
                       help="Which digits test image is attacked (or click a thumbnail).")
    net: str = param("standard", "net", choices=NETS,
                     help="The digits net attacked in plots 1–4: standard, adversarially (PGD) or IBP trained.")
    pgd_steps: int = param(20, "PGD steps", lo=1, hi=200, step=1)
    restarts: int = param(1, "PGD restarts", lo=1, hi=10, step=1)
    eps_max: float = param(0.3, "ε range of the curves", lo=0.05, hi=0.5, step=0.01, decimals=2)
    train_eps: float = param(0.2, "ε of adversarial training", lo=0.01, hi=0.5, step=0.01, decimals=2,
                             help="Madry et al.'s PGD training radius (L∞).")
    ibp_eps: float = param(0.1, "ε of IBP training", lo=0.01, hi=0.5, step=0.01, decimals=2,
                           help="Gowal et al.'s IBP training radius, reached by a ramp over 25–75 % of training.")
    epochs: int = param(10, "training epochs", lo=1, hi=200, step=1,
                        help="Epochs of each digits net (Adam, lr 10⁻³, batch 64; the IBP net twice as many, "
                             "for its ε ramp); 10 is the digits net every panel shares.")
    angle_max: float = param(30.0, "rotation range ±", lo=0.0, hi=90.0, step=1.0, unit="°", decimals=0)
    shift_max: int = param(3, "translation range ±", lo=0, hi=4, step=1, unit="px")
    toy: str = param("moons", "2-D data", choices=TOYS)
    toy_x: float = param(0.5, "2-D point x₁", lo=0.0, hi=1.0, step=0.01, decimals=2,
                         help="The attacked point of plot 5 (or click the plot).")
    toy_y: float = param(0.5, "2-D point x₂", lo=0.0, hi=1.0, step=0.01, decimals=2)
    toy_eps: float = param(0.08, "2-D ε", lo=0.0, hi=0.3, step=0.01, decimals=2)
    sparse_eps: float = param(0.1, "ε of the sparsity plot", lo=0.0, hi=0.5, step=0.01, decimals=2)
    finetune_epochs: int = param(3, "fine-tuning after pruning", lo=0, hi=50, step=1,
                                 help="Epochs each pruned net retrains with its mask held (0: prune only).")
    seed: int = param(0, "seed", lo=0, hi=2**31 - 1, step=1)


__all__ = [
    "ATTACKS", "DENSITIES", "NETS", "RobustnessParams", "TOYS",
    "DeepFoolResult", "RobustnessError", "SpatialResult", "affine_thetas", "certified", "certified_accuracy",
    "check_eps", "deepfool", "fgsm", "input_box", "interval_bounds", "linear_bounds", "lipschitz_bound",
    "lipschitz_radius", "margin_lower_bounds", "margins", "pgd", "spatial", "transform_images",
    "transform_matrices",
]
