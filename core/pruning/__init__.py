"""Pruning and sparsity (lecture 4; THEORY.md §6): magnitude pruning, lottery tickets, pruning at
initialisation (SNIP, GraSP, SynFlow), RigL and DCT-plus-sparse layers, on real data.

The package's parts:

* :mod:`core.pruning.densities` — ERK and uniform layer densities (numpy only);
* :mod:`core.pruning.masking` — scores, masks, :func:`apply` (masked weights stay exactly zero), SynFlow's
  iterative pruning at init, and the :class:`DCTPlusSparse` layer;
* :mod:`core.pruning.stack` — K masked MLPs trained together as one batched model (stacked weights, bmm),
  RigL's drop/grow step included;
* :mod:`core.pruning.experiments` — the generators the panel streams: :func:`lottery`, :func:`rigl`,
  :func:`sweep`, and the instant magnitude-pruning slider.

Importing this package does not import torch (start-up stays fast): the public names are loaded from
their modules on first use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.lazy import lazy_exports
from core.params import ParamError, Params, param

METHODS = ("magnitude", "imp", "reinit", "random_mask", "snip", "grasp", "synflow", "rigl", "static", "dct")
"""The methods of the accuracy-against-density sweep, in the order of the legend."""
INIT_METHODS = ("magnitude", "random", "snip", "grasp", "synflow")
"""Scores for pruning at initialisation (``magnitude`` at init is the layer-collapse strawman)."""

_PARTS = {
    "densities": ("erk_densities", "uniform_densities", "check_density", "PruningError"),
    "masking": ("prunable", "scores", "masks", "apply", "enforce", "step_hook", "remove", "current_masks",
                "layer_densities", "prune_at_init", "synflow_masks", "dct_matrix", "DCTPlusSparse", "keep_top"),
    "stack": ("Stack", "train_stack", "rigl_update", "RiglSchedule", "EpochRecord"),
    "experiments": ("Recipe", "Point", "Curve", "Progress", "DenseNets", "DenseNet", "SliderResult", "lottery",
                    "rigl", "sweep", "slider", "sweep_densities", "one_shot", "at_init", "dct_sparse", "dense_net",
                    "magnitude_curve", "layer_table"),
}
__getattr__ = lazy_exports(__name__, _PARTS, globals())


@dataclass(frozen=True)
class PruningParams(Params):
    """What the Pruning panel lets the lecturer set."""

    density: float = param(0.05, "density d", lo=0.001, hi=1.0, step=0.001, scale="log", decimals=4,
                           help="fraction of the weights kept (1 = dense); the slider prunes the trained net "
                                "by magnitude at once")
    mask_method: str = param("magnitude", "mask shown", choices=("magnitude", "synflow", "snip", "grasp",
                                                                 "random", "init_magnitude"),
                             help="whose mask the pictures show: magnitude pruning of the trained net, or a "
                                  "pruning-at-init score")
    unit: int = param(0, "hidden unit", lo=0, hi=1023, step=1, decimals=0,
                      help="the first-layer unit whose incoming mask is drawn")
    scope: str = param("global", "scope", choices=("global", "layer"),
                       help="one magnitude threshold for all layers, or the same density in every layer")
    output: str = param("prune", "output layer", choices=("prune", "half", "dense"),
                        help="prune the output layer like the others, at half the rate (Frankle & Carbin), or "
                             "keep it dense (open_lth)")
    budget: str = param("preview", "automatic sweep", choices=("preview", "full"),
                        help="what plot 1 trains by itself on opening and after a change: a preview (1 seed, "
                             "≤ 4 densities, ≤ 3 epochs, ≤ 3 lottery rounds; a few seconds) or the full sweep "
                             "as set; Run sweep always trains the full sweep")
    seeds: int = param(3, "seeds", lo=1, hi=8, step=1, decimals=0, help="networks per point (mean ± sd)")
    epochs: int = param(10, "epochs", lo=1, hi=200, step=1, scale="log", decimals=0,
                        help="training epochs of every sparse network (and of each lottery round)")
    lr: float = param(0.002, "learning rate η", lo=1e-5, hi=1.0, step=1e-4, scale="log", decimals=5,
                      help="Adam's step size for every run")
    points: int = param(7, "densities in the sweep", lo=2, hi=16, step=1, decimals=0,
                        help="log-spaced densities from 100 % down to the lowest")
    lowest: float = param(0.001, "lowest density", lo=0.0005, hi=0.5, step=0.0005, scale="log", decimals=4)
    rounds: int = param(14, "lottery rounds", lo=1, hi=30, step=1, decimals=0,
                        help="iterative magnitude pruning rounds (density 0.8^round at 20 % a round)")
    prune_rate: float = param(0.2, "pruned per round", lo=0.05, hi=0.9, step=0.05, decimals=2)
    rewind: int = param(0, "rewind to step k", lo=0, hi=2000, step=1, decimals=0,
                        help="survivors go back to their values at step k (0 = the initialisation)")
    ticket_round: int = param(13, "round shown", lo=0, hi=30, step=1, decimals=0,
                              help="the lottery round whose training curves plot 5 shows")
    rigl_interval: int = param(20, "RigL ΔT (steps)", lo=1, hi=1000, step=1, scale="log", decimals=0)
    rigl_alpha: float = param(0.3, "RigL α", lo=0.0, hi=1.0, step=0.05, decimals=2,
                              help="fraction of each layer's weights dropped and regrown, decayed by a cosine")
    rigl_densities: str = param("erk", "RigL layer densities", choices=("erk", "uniform"))
    seed: int = param(0, "seed", lo=0, hi=2**31 - 1, step=1, decimals=0)

    def check(self) -> None:
        if self.lowest >= 1.0 or not math.isfinite(self.lowest):
            raise ParamError("lowest", "must be below 1")
        if self.ticket_round > self.rounds:
            raise ParamError("ticket_round", f"round {self.ticket_round} is past the last round ({self.rounds})")


PREVIEW = {"seeds": 1, "points": 4, "epochs": 3, "rounds": 3}
"""The preview's caps: what the Pruning panel trains when it opens (about 30 networks, a few seconds of CPU)."""


def budgeted(p: PruningParams, budget: str, steps_per_epoch: int) -> PruningParams:
    """The parameters a sweep at ``budget`` trains: ``"full"`` is ``p`` itself; ``"preview"`` caps seeds,
    densities, epochs and lottery rounds at :data:`PREVIEW` (the densities stay log-spaced from 100 % down
    to ``p.lowest``; enough epochs are kept for ``steps_per_epoch``-step epochs to reach the rewind step),
    and shows the last round when ``p.ticket_round`` is past it."""
    if budget == "full":
        return p
    if budget != "preview":
        raise ValueError(f"budget must be 'preview' or 'full', not {budget!r}")
    rewind_epochs = math.ceil(p.rewind / max(1, int(steps_per_epoch)))
    epochs = min(p.epochs, max(PREVIEW["epochs"], rewind_epochs))
    rounds = min(p.rounds, PREVIEW["rounds"])
    return p.replace(seeds=min(p.seeds, PREVIEW["seeds"]), points=min(p.points, PREVIEW["points"]), epochs=epochs,
                     rounds=rounds, ticket_round=min(p.ticket_round, rounds))
