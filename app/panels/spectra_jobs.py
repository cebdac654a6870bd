"""The Jacobian Spectra panel's jobs: what runs in worker threads (numpy, torch and core only, no Qt).

Each job turns a :class:`~core.spectra.SpectraParams` into small frozen results the panel draws
(:mod:`app.panels.spectra`): the free-probability law at several depths and its moments through depth
(:func:`theory_job`), the spectra of one real torch network as it deepens (:func:`simulation_job`), the
two universality classes (:func:`universality_job`) and the critical σ_w (:func:`critical_job`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from core import spectra as spec
from core.spectra import SpectraParams

LN10 = math.log(10.0)
FLOOR_DECADES = 12
#: The simulation forms J in float32, so eigenvalues below 10⁻¹² λ_max are round-off (core.spectra).
LN_FLOOR = FLOOR_DECADES * LN10
#: Singular values in [½, 2], i.e. eigenvalues of JJᵀ in [¼, 4]: "close to an isometry".
ISO_LN = (math.log(0.25), math.log(4.0))
MAX_SHOWN = 5
SIGMA0_SQ = 0.25
UNIVERSAL_X = np.unique(np.concatenate([np.linspace(0.0, 2.8, 421)[1:], np.geomspace(1e-4, 0.05, 40)]))


def depth_schedule(depth: int) -> list[int]:
    """The depths a simulation reports: 1, 2, 4, … and ``depth`` itself."""
    return sorted({1 << k for k in range(depth.bit_length()) if (1 << k) <= depth} | {depth})


def shown_depths(depth: int) -> list[int]:
    """Up to five of the reported depths, spread evenly in log depth, always the deepest. From L = 8 on,
    L = 1 is left out: its law is that of φ'(h)² itself, often a tall spike that would flatten every
    deeper curve on the common axis."""
    sched = depth_schedule(depth)
    if depth >= 8:
        sched = sched[1:]
    picks = np.unique(np.round(np.linspace(0, len(sched) - 1, min(len(sched), MAX_SHOWN))).astype(int))
    return [sched[i] for i in picks]


def theory_depths(depth: int) -> list[int]:
    """The depths the theory is drawn at through depth: the reported ones, and L = 2 when L = 1 (a line
    needs two points)."""
    return depth_schedule(max(depth, 2))

def theory_grid(lo: float, hi: float) -> np.ndarray:
    """Points in ln λ for a theory density whose support (atoms included) spans [lo, hi].

    Uniform in ln λ down to 10⁻¹² of the top (the simulation's float32 floor), uniform in λ over the top
    decades (for the linear view), and crowded geometrically at both edges, where inverse-square-root
    singularities sit (L = 1, orthogonal weights).
    """
    if not math.isfinite(hi):
        return np.zeros(0)
    bottom = max(lo, hi - LN_FLOOR)
    width = hi - bottom
    if not width > 0.0:
        return np.zeros(0)
    crowd = np.geomspace(1e-7, 0.3, 28) * width
    pad = 0.03 * width
    linear = hi + np.log(np.linspace(0.0, 1.0, 49)[1:])
    parts = [np.linspace(bottom, hi, 150), hi - crowd, [hi + pad], linear[linear > bottom]]
    if math.isfinite(lo) and lo >= bottom:
        parts += [lo + crowd, [lo - pad]]
    return np.unique(np.concatenate(parts))


def _cumulative(ell: np.ndarray, density: np.ndarray) -> np.ndarray:
    """Trapezoid cumulative integral of ``density`` over ``ell``, starting at 0."""
    if ell.size < 2:
        return np.zeros(ell.size)
    return np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(ell))])



@dataclass(frozen=True)
class MomentsTheory:
    """Mean and variance of the eigenvalues of JJᵀ for L = 1 … depth, both weight types."""

    params: SpectraParams
    depths: np.ndarray
    log10_mean: dict[str, np.ndarray]
    log10_var: dict[str, np.ndarray]


@dataclass(frozen=True)
class DepthTheory:
    """The free-probability law of the eigenvalues of JJᵀ at one depth.

    ``ell`` and ``density`` are ln λ and the density of ln λ (continuous part); ``atoms`` the point
    masses as (ln λ, mass), ln 0 = −inf; ``lo``, ``hi`` the ends of the support (ln λ, atoms included);
    ``below`` the mass under the drawn range (the atom at 0 and density below 10⁻¹² λ_max); ``iso`` the
    mass with λ in [¼, 4].
    """

    params: SpectraParams
    depth: int
    ell: np.ndarray
    density: np.ndarray
    atoms: tuple[tuple[float, float], ...]
    lo: float
    hi: float
    below: float
    iso: float

    @property
    def zero_mass(self) -> float:
        return sum(m for loc, m in self.atoms if math.isinf(loc))

    def finite_atoms(self) -> list[tuple[float, float]]:
        return [(loc, m) for loc, m in self.atoms if math.isfinite(loc)]


def moments_theory(p: SpectraParams) -> MomentsTheory:
    """χᴸ and L(μ₂/μ₁² − 1 − s₁)χ^{2L} (PSG 2017) for L = 1 … depth, Gaussian and orthogonal W."""
    act = p.activation()
    depths = np.arange(1, max(p.depth, 2) + 1)
    mean, var = {}, {}
    for weights in spec.WEIGHTS:
        rows = [spec.theory_moments(act, p.sigma_w, p.sigma_b, int(d), weights) for d in depths]
        mean[weights] = _log10(np.array([r[0] for r in rows]))
        var[weights] = _log10(np.array([r[1] for r in rows]))
    return MomentsTheory(p, depths, mean, var)


def depth_theory(p: SpectraParams, depth: int) -> DepthTheory:
    """The theory law at ``depth`` on :func:`theory_grid`, with its atoms, edges and summaries."""
    act = p.activation()
    args = (act, p.sigma_w, p.sigma_b, depth, p.weights)
    lo, hi = spec.theory_edges(*args, log=True)
    atoms = tuple((float(a.location), float(a.mass)) for a in spec.theory_atoms(*args, log=True))
    ell = theory_grid(lo, hi)
    density = np.nan_to_num(spec.theory_density(ell, *args, log=True), nan=0.0, posinf=0.0)
    cum = _cumulative(ell, density)
    drawn = float(cum[-1]) if cum.size else 0.0
    zero = sum(m for loc, m in atoms if math.isinf(loc))
    below = zero + max(0.0, 1.0 - sum(m for _, m in atoms) - drawn)
    iso = float(np.diff(np.interp(ISO_LN, ell, cum))[0]) if ell.size else 0.0
    iso += sum(m for loc, m in atoms if ISO_LN[0] <= loc <= ISO_LN[1])
    return DepthTheory(p, depth, ell, density, atoms, float(lo), float(hi), below, iso)


def theory_job(p: SpectraParams):
    """Moments at once, then the density at the shown depths, then at the other reported depths."""
    yield moments_theory(p)
    shown = shown_depths(p.depth)
    for depth in shown + [d for d in theory_depths(p.depth) if d not in shown]:
        yield depth_theory(p, depth)


@dataclass(frozen=True)
class SimStep:
    """Eigenvalues of J Jᵀ (ln λ, ascending) of the simulated network at one depth, with summaries."""

    params: SpectraParams
    depth: int
    ell: np.ndarray
    log10_mean: float
    log10_var: float
    iso: float
    device: str = ""   # where it ran; the runner puts it in the status bar

    @property
    def top(self) -> float:
        return float(self.ell[-1])

    def resolved(self) -> np.ndarray:
        """ln λ above the float32 floor, 10⁻¹² λ_max."""
        return self.ell[self.ell >= self.top - LN_FLOOR]

    @property
    def log10_sigma_max(self) -> float:
        return self.top / (2 * LN10)

    @property
    def log10_sigma_min(self) -> float:
        """log₁₀ of the smallest singular value; NaN where it is below the float32 floor."""
        return self.ell[0] / (2 * LN10) if self.ell[0] >= self.top - LN_FLOOR else math.nan


def sim_step(p: SpectraParams, depth: int, ell: np.ndarray, device: str = "") -> SimStep:
    """Summaries of one simulated spectrum (ln λ), in logs so that χᴸ far outside float64 is fine."""
    ell = np.sort(np.asarray(ell, float))
    top = ell[-1]
    if not math.isfinite(top):  # J is exactly zero (or overflowed): nothing to summarise
        return SimStep(p, depth, ell, -math.inf, -math.inf, 0.0, device)
    with np.errstate(under="ignore"):
        x = np.exp(ell - top)
    mean = x.mean()
    var = np.mean((x - mean) ** 2)
    with np.errstate(divide="ignore"):
        log10_mean = (math.log(mean) + top) / LN10 if mean > 0 else -math.inf
        log10_var = (math.log(var) + 2 * top) / LN10 if var > 0 else -math.inf
    iso = float(np.mean((ell >= ISO_LN[0]) & (ell <= ISO_LN[1])))
    return SimStep(p, depth, ell, log10_mean, log10_var, iso, device)


class Request:
    """One simulation request: a flag the panel raises to stop it between layers, and its progress.

    The runner stops a generator only at its next yield, and the job yields a result only at depths 1,
    2, 4, …: a wide net would run on for minutes after being superseded. The engine reports twice per
    layer (``jacobian_spectra(…, progress=True)``); :func:`simulation_job` calls :meth:`tick` at each
    report, which raises once the request is stale.
    """

    def __init__(self, depth: int, runner=None):
        self.depth = depth
        self.calls = 0
        self._stop = threading.Event()
        self._runner = runner

    def stop(self) -> None:
        self._stop.set()

    def stopped(self) -> bool:
        return self._stop.is_set() or (self._runner is not None and self._runner.closed)

    def tick(self) -> None:
        if self.stopped():
            raise StoppedError("superseded")
        self.calls += 1

    @property
    def fraction(self) -> float:
        return min(1.0, self.calls / (2.0 * self.depth))  # the engine reports twice a layer


class StoppedError(Exception):
    """A simulation stopped between layers because a newer request or Cancel made it stale."""


def simulation_job(p: SpectraParams, request: Request):
    """Spectra of one real torch network at depths 1, 2, 4, …, L, as the engine reaches them; stopped
    within half a layer once ``request`` is stale."""
    from core import device

    where = device.describe()
    steps = spec.jacobian_spectra(p.activation(), p.sigma_w, p.sigma_b, p.depth, p.width, p.weights, p.seed,
                                  depths=depth_schedule(p.depth), log=True, progress=True)
    try:
        for item in steps:
            if isinstance(item, spec.Progress):
                request.tick()
            else:
                depth, ell = item
                yield sim_step(p, depth, ell, where)
    finally:
        steps.close()


@dataclass(frozen=True)
class Universality:
    """The L → ∞ densities of the two classes at σ₀² = ¼ on UNIVERSAL_X, and their atoms (λ, mass)."""

    x: np.ndarray
    density: dict[str, np.ndarray]
    atoms: dict[str, tuple[tuple[float, float], ...]]


def universality_job() -> Universality:
    """Pennington et al. 2018: the Bernoulli and smooth classes' limiting laws at σ₀² = ¼."""
    dens, atoms = {}, {}
    for kind in spec.UNIVERSALITY_CLASSES:
        dens[kind] = spec.universality_density(UNIVERSAL_X, kind, SIGMA0_SQ)
        atoms[kind] = tuple((a.location, a.mass) for a in spec.universality_atoms(kind, SIGMA0_SQ))
    return Universality(UNIVERSAL_X, dens, atoms)


@dataclass(frozen=True)
class Critical:
    """σ_w on the critical line for ``params``' φ and σ_b, or None and why not."""

    params: SpectraParams
    sigma_w: float | None
    problem: str = ""


def critical_job(p: SpectraParams) -> Critical:
    """The search for χ = 1 (0.1–0.5 s: too slow for the GUI thread)."""
    try:
        return Critical(p, float(spec.critical_sigma_w(p.activation(), p.sigma_b)))
    except ValueError as err:
        return Critical(p, None, str(err))


def _log10(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), -np.inf)
