"""Depth & Sawtooth engine: why depth — Telgarsky's sawtooth, Yarotsky's x², linear regions, learnability.

Theory (THEORY.md §1) is numpy in float64 and never imports torch, so the theory plots cost nothing at
start-up. Real networks are torch ``nn.Sequential`` stacks of ``Linear``/``ReLU``; torch is imported
inside the functions that build or train them.

Conventions
-----------
A network given as *weights* is a sequence of ``(W, b)`` pairs, ``W`` of shape (out, in) as in
``torch.nn.Linear``, with a ReLU after every pair but the last. Every function that takes a model
accepts either such weights or a torch ``nn.Sequential`` of ``Linear``/``ReLU`` (``Identity`` and nested
``Sequential`` allowed).

Exact counting walks a segment: along a line the preactivation of every neuron is affine on each
current piece, so its sign change is one root; splitting every piece at every root, layer by layer,
gives the exact activation intervals (Hanin & Rolnick 2019; Serra et al. 2018). A sign change counts
only where the preactivation exceeds 1e−10 of its layer's largest value at both ends of a piece, and
roots closer than 1e−12 of the segment are one breakpoint, so the exact constructions (whose kinks
touch zero or coincide by design) are not split into slivers of rounding.

References
----------
- M. Telgarsky, "Representation benefits of deep feedforward networks", arXiv:1509.08101 (2015), Thm 1.1.
- D. Yarotsky, "Error bounds for approximations with deep ReLU networks", Neural Networks 94 (2017),
  arXiv:1610.01145: Prop. 2 (x²) and Prop. 3 (products).
- T. Serra, C. Tjandraatmadja, S. Ramalingam, "Bounding and counting linear regions of deep neural
  networks", ICML 2018.
- G. Montúfar, R. Pascanu, K. Cho, Y. Bengio, "On the number of linear regions of deep neural networks",
  NeurIPS 2014.
- B. Hanin, D. Rolnick, "Complexity of linear regions in deep networks", ICML 2019, and "Deep ReLU
  networks have surprisingly few activation patterns", NeurIPS 2019.
- M. Nye, A. Saxe, "Are efficient deep representations learnable?", ICLR 2018 workshop, arXiv:1807.06399.
  (Their experiments are parity with sigmoid nets and the FFT with linear nets; the sawtooth fits here
  transpose their Fig. 1 protocol — exact solution plus Gaussian noise, then train — to Telgarsky's net.)

Modules
-------
``constructions`` (sawtooth, Yarotsky), ``networks`` (weights and torch modules), ``pieces`` (exact pieces
on a segment; pieces against size), ``regions`` (2-D linear regions), ``learnability`` (the fits) and
``params`` (the panel's parameters). Everything public is re-exported here: use ``core.depth.X``.
"""

from core.depth.constructions import (
    MAX_DEPTH,
    MAX_M,
    product_error_bound,
    product_network,
    product_weights,
    sawtooth,
    sawtooth_network,
    sawtooth_param_count,
    sawtooth_vertices,
    sawtooth_weights,
    tent,
    yarotsky_error_bound,
    yarotsky_network,
    yarotsky_product,
    yarotsky_square,
    yarotsky_weights,
)
from core.depth.learnability import FIT_MAX_DEPTH, FitFrame, fit_from_init, fit_shallow_vs_deep
from core.depth.networks import Weights, as_module, random_relu_net, weights_of
from core.depth.params import DepthParams
from core.depth.pieces import (
    MAX_INTERVALS,
    Pieces,
    PiecesTheory,
    RandomPieces,
    count_linear_pieces,
    linear_pieces,
    pieces_theory,
    random_init_pieces,
)
from core.depth.regions import region_map

__all__ = [
    "MAX_DEPTH", "MAX_M", "FIT_MAX_DEPTH", "MAX_INTERVALS", "DepthParams", "Weights",
    "tent", "sawtooth", "sawtooth_vertices", "sawtooth_weights", "sawtooth_network", "sawtooth_param_count",
    "yarotsky_square", "yarotsky_error_bound", "yarotsky_weights", "yarotsky_network", "yarotsky_product",
    "product_error_bound", "product_weights", "product_network", "random_relu_net", "as_module", "weights_of",
    "Pieces", "linear_pieces", "count_linear_pieces", "PiecesTheory", "pieces_theory", "RandomPieces",
    "random_init_pieces", "region_map", "FitFrame", "fit_shallow_vs_deep", "fit_from_init",
]
