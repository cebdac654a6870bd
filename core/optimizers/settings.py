"""The Optimizers panel's parameters: one declaration for its controls, parameter files, CLI and validation."""

from __future__ import annotations

from dataclasses import dataclass

from core.nets import INITS
from core.optimizers.library import NAMES
from core.optimizers.playground import SURFACES
from core.params import Params, param
from core.training import SCHEDULES

VIEWS = ("quadratics", "networks")
DATASETS = ("digits", "moons", "circles", "xor", "spiral")
PHIS = ("relu", "tanh", "erf", "sigmoid", "gelu", "linear")
SHOW = tuple(f"show_{n}" for n in NAMES)
"""The optimiser check-boxes, one per name in NAMES."""


@dataclass(frozen=True)
class OptimizersParams(Params):
    view: str = param("quadratics", "plots", choices=VIEWS,
                      help="quadratics: playground, rates and momentum map; networks: real networks on data")
    function: str = param("quadratic", "function", choices=SURFACES, help="the 2-D surface of the playground")
    kappa: float = param(100.0, "κ", lo=1.0, hi=1e4, scale="log", decimals=1,
                         help="condition number L/μ of the quadratic (playground, rates, momentum map)")
    angle: float = param(30.0, "angle", lo=-90.0, hi=90.0, step=1.0, unit="°", decimals=1,
                         help="turn of the quadratic's eigenvectors in the playground")
    start_x: float = param(-1.4, "start x", lo=-5.0, hi=5.0, decimals=2, help="drag the start point on the playground")
    start_y: float = param(0.9, "start y", lo=-5.0, hi=5.0, decimals=2)
    show_gd: bool = param(True, "GD")
    show_sgd: bool = param(False, "SGD")
    show_heavy_ball: bool = param(True, "heavy ball")
    show_nesterov: bool = param(True, "Nesterov")
    show_adagrad: bool = param(False, "AdaGrad")
    show_adagrad_norm: bool = param(False, "AdaGrad-Norm")
    show_rmsprop: bool = param(False, "RMSProp")
    show_adam: bool = param(True, "Adam")
    tuned: bool = param(False, "tuned for [μ, L]",
                        help="GD, heavy ball and Nesterov at their optimal settings where the surface's Hessian "
                             "spectrum is known (quadratic, Lessard's); η and β otherwise")
    lr: float = param(0.5, "η", lo=1e-4, hi=10.0, scale="log",
                      help="step of GD, SGD, heavy ball (α) and Nesterov; the (α, β) marker of the momentum map")
    momentum: float = param(0.8, "β", lo=0.0, hi=0.999, step=0.001, help="momentum of heavy ball and Nesterov")
    lr_adaptive: float = param(0.05, "η adaptive", lo=1e-4, hi=10.0, scale="log",
                               help="step of AdaGrad, RMSProp and Adam")
    b0: float = param(0.1, "b₀", lo=1e-6, hi=1e3, scale="log", help="AdaGrad-Norm's initial b (its η is 1)")
    noise: float = param(0.0, "noise σ", lo=0.0, hi=10.0, step=0.01,
                         help="Gaussian gradient noise on every optimiser but GD (playground)")
    schedule: str = param("constant", "schedule", choices=SCHEDULES, help="η_k = η·s(k), playground and networks")
    steps: int = param(300, "steps", lo=10, hi=5000, help="playground steps")
    data: str = param("digits", "data", choices=DATASETS)
    width: int = param(64, "width", lo=4, hi=512)
    depth: int = param(2, "depth", lo=1, hi=30, help="hidden layers")
    phi: str = param("relu", "φ", choices=PHIS)
    init: str = param("he", "init", choices=INITS)
    sigma_w: float = param(1.0, "σ_w", lo=0.05, hi=4.0, step=0.01, help="σ_w of the gaussian and orthogonal inits")
    batch_norm: bool = param(False, "batch norm", help="BN in the network of the optimiser comparison")
    batch: int = param(64, "batch", lo=0, hi=4096, help="mini-batch size; 0 = full batch (GD always is)")
    net_lr: float = param(0.1, "η net", lo=1e-4, hi=10.0, scale="log",
                          help="step of GD, SGD, heavy ball and Nesterov on networks (and of the BN comparison)")
    net_lr_adaptive: float = param(1e-3, "η net adaptive", lo=1e-5, hi=1.0, scale="log",
                                   help="step of AdaGrad, RMSProp and Adam on networks")
    train_steps: int = param(300, "training steps", lo=10, hi=5000)
    seed: int = param(0, "seed", lo=0, hi=1_000_000)

    @property
    def chosen(self) -> tuple[str, ...]:
        """The optimisers whose check-boxes are on, in NAMES order."""
        return tuple(n for n in NAMES if getattr(self, f"show_{n}"))
