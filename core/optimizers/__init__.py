"""Optimizers engine (lecture 9): torch.optim by name, AdaGrad-Norm, tuned rates on quadratics, the playground.

- :mod:`~core.optimizers.library`: ``NAMES``, ``make`` (torch.optim's classes, the mapping documented there).
- :mod:`~core.optimizers.adagrad_norm`: ``AdaGradNorm``, a ``torch.optim.Optimizer`` (Ward, Wu & Bottou 2019).
- :mod:`~core.optimizers.stacked`: ``StackedOptimizers``, K runs' optimisers stepping the rows of one tensor
  (what ``core.training.train_many`` steps with), equal row by row to the classes above.
- :mod:`~core.optimizers.quadratic`: ``tuned``, ``rate``, iteration matrices, heavy ball's momentum map.
- :mod:`~core.optimizers.playground`: 2-D surfaces and optimiser paths, vectorised over optimisers.
- :mod:`~core.optimizers.experiments`: b₀ sweeps, optimisers on a real network, batch norm.
- :mod:`~core.optimizers.settings`: the panel's ``OptimizersParams``.

Importing this package does not import torch: :func:`make` imports it when called, and ``AdaGradNorm``
is loaded on first access.
"""

from __future__ import annotations

from core.optimizers.experiments import (
    LeastSquares,
    batch_norm_experiment,
    digits_sweep_iter,
    least_squares_problem,
    least_squares_sweep,
    least_squares_sweep_iter,
    train_together,
)
from core.optimizers.library import DEFAULT_LR, HYPER, LABELS, NAMES, make, resolve_hyper
from core.optimizers.playground import SURFACES, Settings, paths, surface
from core.optimizers.quadratic import heavy_ball_radius, iteration_matrix, momentum_map, rate, tuned
from core.optimizers.settings import OptimizersParams

__all__ = [
    "DEFAULT_LR", "HYPER", "LABELS", "NAMES", "SURFACES", "AdaGradNorm", "LeastSquares", "OptimizersParams",
    "Settings",
    "batch_norm_experiment", "digits_sweep_iter", "heavy_ball_radius", "iteration_matrix", "least_squares_problem",
    "least_squares_sweep", "least_squares_sweep_iter", "make", "momentum_map", "paths", "rate", "resolve_hyper",
    "surface", "train_together", "tuned",
]


def __getattr__(name: str):
    if name == "AdaGradNorm":
        from core.optimizers.adagrad_norm import AdaGradNorm

        return AdaGradNorm
    raise AttributeError(f"module 'core.optimizers' has no attribute {name!r}")
