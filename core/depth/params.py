"""The parameters of the Depth & Sawtooth panel."""

from __future__ import annotations

from dataclasses import dataclass

from core.depth.constructions import MAX_DEPTH
from core.depth.learnability import FIT_MAX_DEPTH
from core.params import Params, param


@dataclass(frozen=True)
class DepthParams(Params):
    """Everything the Depth & Sawtooth panel lets the lecturer drag."""

    depth: int = param(4, "depth L", lo=1, hi=MAX_DEPTH, step=1,
                       help=f"Sawtooth depth. f_L has 2^L pieces of width 2^−L; beyond L = {MAX_DEPTH} a "
                            "piece is narrower than float64 can resolve, so deeper sawtooths are refused. "
                            f"The fitting experiments take L ≤ {FIT_MAX_DEPTH}.")
    m: int = param(3, "Yarotsky m", lo=1, hi=12, step=1,
                   help="Number of sawtooth terms in Yarotsky's x² (error 2^(−2m−2)).")
    width: int = param(16, "width", lo=1, hi=128, step=1,
                       help="Width of the random nets (region map, pieces).")
    region_depth: int = param(3, "region-map depth", lo=1, hi=12, step=1,
                              help="Hidden layers of the random net whose 2-D linear regions are drawn.")
    sigma_w: float = param(1.41, "σ_w", lo=0.05, hi=4.0, step=0.01, decimals=2,
                           help="Weight scale: W ~ N(0, σ_w²/fan_in).")
    sigma_b: float = param(0.1, "σ_b", lo=0.0, hi=2.0, step=0.01, decimals=2,
                           help="Bias scale: b ~ N(0, σ_b²).")
    seed: int = param(0, "seed", lo=0, hi=2**31 - 1, step=1)
    train_steps: int = param(2000, "training steps", lo=10, hi=50000, step=10)
    lr: float = param(1e-2, "learning rate", lo=1e-5, hi=1.0, scale="log", decimals=5)
    init: str = param("random", "init", choices=("random", "near_exact"),
                      help="Deep net's start: random (σ_w, σ_b) or the exact sawtooth weights plus noise.")
