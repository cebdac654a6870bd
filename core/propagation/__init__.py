"""Signal Propagation: mean-field theory of deep random networks, and the real networks it describes.

Theory (numpy, float64): the variance map, the correlation map, their fixed points q*, c*, the slope
χ₁ and the depth scales ξ_q, ξ_c (Poole et al. 2016, arXiv 1606.05340; Schoenholz et al. 2017,
arXiv 1611.01232), with multiplicative noise of second moment μ₂ (Pretorius et al. 2018,
arXiv 1811.00293). Simulation (torch, float32, imported only when a simulation runs): real random
networks whose layer statistics are drawn as dots beside the theory's lines.

Conventions
-----------
* ``phi`` is a registry name or an :class:`~core.activations.Activation`; ``mu2`` = E ε² of the noise
  (1: none; dropout with keep probability p: 1/p; Gaussian N(1, s²): 1 + s²), see :func:`noise_mu2`.
* Every theory function broadcasts over numpy arrays of its numeric arguments and never returns NaN
  (unless an argument is NaN): a divergent variance is ``inf``, a diverging depth scale is ``inf``.
  Large inputs are computed in blocks (bounded memory) and, above ``EXACT_MAX`` points, from the tables
  and series: see :mod:`core.propagation.theory` for the accuracy of each path.
* Degenerate fixed points are limits. q* = 0 (σ_b = 0 and the variance contracts): scale-free
  quantities are the σ_b → 0⁺ limit, evaluated at q = ``Q_MIN``. q* = ∞ (unbounded φ, expanding): the
  q → ∞ limit, evaluated at q = ``Q_MAX``. A homogeneous φ (φ(a x) = a φ(x), a > 0: linear, ReLU) with
  σ_b = 0 has a correlation map that does not depend on q at all, so c* and ξ_c are those of that
  scale-free map (Pretorius et al. 2018, Sec. 3), whatever q* is.
* Layers: layer 0 is the input, q⁰ = ‖x‖²/N; q¹ = σ_w² q⁰ + σ_b² (the input is not passed through φ
  nor through the noise); qˡ = q_map(qˡ⁻¹) from layer 2 on (Poole et al. 2016, eq. 3). The
  correlation of two inputs follows the same pattern.

Modules
-------
``theory`` (the public functions, and which path — exact quadrature or the tables — serves an input of
a given size, with what accuracy), ``tabulation`` (the per-activation tables), ``phase`` (the phase
diagram, and the same lookups for scattered points), ``series`` (the correlation map by Mehler's series),
``fixed`` (fixed points by exact quadrature), ``moments`` (Gaussian moments of φ), ``layers``
(layer-by-layer trajectories), ``simulation`` (real torch networks) and ``params`` (the panel's
parameters). Everything public is re-exported here: use ``core.propagation.X``.
"""

from core import gaussian  # noqa: F401  (core.propagation.gaussian: the quadrature it is built on)
from core.propagation.layers import Trajectories, c_trajectory, grad_trajectory, q_trajectory, trajectories
from core.propagation.moments import Q_MAX, Q_MIN
from core.propagation.params import PropagationParams
from core.propagation.phase import PhaseDiagram, phase_diagram
from core.propagation.simulation import (
    NOISES,
    Progress,
    Simulation,
    gradient_density,
    noise_mu2,
    simulate,
    simulate_seeds,
    simulate_steps,
)
from core.propagation.tabulation import tables
from core.propagation.theory import (
    EXACT_MAX,
    FixedPoint,
    c_map,
    c_star,
    chi1,
    critical_sigma_w,
    depth_scales,
    fixed_point,
    q_map,
    q_star,
)

__all__ = [
    "Q_MIN", "Q_MAX", "EXACT_MAX", "NOISES", "q_map", "c_map", "q_star", "c_star", "chi1", "FixedPoint", "fixed_point",
    "depth_scales", "critical_sigma_w", "PhaseDiagram", "phase_diagram", "tables", "q_trajectory",
    "c_trajectory", "grad_trajectory", "Trajectories", "trajectories", "noise_mu2", "gradient_density",
    "Simulation", "Progress", "simulate", "simulate_steps", "simulate_seeds", "PropagationParams",
]

# Private helpers that tests and benchmarks reach for (quadrature orders, cache resets)
from core.propagation.moments import _QUAD, _QUAD_FAST, _Z_FAST  # noqa: E402, F401
from core.propagation.tabulation import _build_ctable, _build_moments, _build_table  # noqa: E402, F401
from core.propagation.theory import _c_map  # noqa: E402, F401
