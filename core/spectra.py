"""Jacobian Spectra: the singular values of a deep random network's input–output Jacobian (lecture 3).

Two sides, drawn together by the panel:

* **simulation** — :func:`jacobian_spectrum` / :func:`jacobian_spectra` build a real torch network,
  put its input at the fixed point q*, accumulate ``J = ∂h^L/∂h^0 = W^L D^{L−1} ⋯ W^1 D^0`` layer by
  layer (``D^l = diag φ'(h^l)``) and return the eigenvalues of ``JJᵀ``;
* **theory** — :func:`theory_density` (continuous part), :func:`theory_atoms` (point masses),
  :func:`theory_cdf`, :func:`theory_support`, :func:`theory_edges` and :func:`theory_moments` give the
  N → ∞ law of those eigenvalues by free probability (Pennington, Schoenholz & Ganguli 2017, arXiv
  1711.04735; 2018, arXiv 1802.09979; THEORY.md §3): the S-transforms of the L free factors ``WᵀW`` and
  ``D²`` multiply, ``S_{JJᵀ}(m) = [S_{WᵀW}(m) S_{D²}(m)]^L``. :func:`universality_density` and friends
  give the depth → ∞ limits of the two universality classes; :func:`critical_sigma_w` the χ = 1 line.
* Every theory function takes ``log=True`` to work in ln λ throughout: χ^L leaves the float64 range
  at large depth away from criticality (8^1024 for ReLU at σ_w = 4), ln λ never does.

How the density is solved
-------------------------
Write ``w = M_{D²}⁻¹(m)`` (the point where the M-transform of the law of ``d = φ'(h)²`` equals m), so
that ``S_{D²}(m) = (1 + m)/(m w)``. Then ``M_{JJᵀ}⁻¹(m) = (1 + m)/(m S_{JJᵀ}(m))`` becomes explicit in w::

    ln x = a ln(1 + m) + (L − 1) ln m + L ln w + L ln σ_w²,    m = M_{D²}(w),
    a = 1 (Gaussian W, S_{WᵀW} = 1/(σ_w²(1 + m)))   or   a = 1 − L (orthogonal W, S_{WᵀW} = 1/σ_w²).

For each eigenvalue x the engine solves this for w with ``ln x`` replaced by ``ln x + iθ`` (θ = 1e-9,
the THEORY.md "x + iε" taken relative to x, so one code path serves 10⁻³⁰⁰ and 10³⁰⁰ alike) and reads
off ``G(x) = (1 + m)/x``, ``ρ(x) = −Im G/π``. The logarithms are kept *unwrapped* (principal log of each
factor, never of the product): on the physical sheet the phases add up to exactly θ, so Newton cannot
land on one of the other L branches of the polynomial-like equation. Every solve is continued from a
point where the answer is known in closed form — the negative real axis, where everything is real and
monotone (bisection) — by rotating the phase θ from π down to 1e-9, then along x; points in the gaps
of the support (found beforehand on the real axis, where the extrema of x(w) are the spectral edges)
are exactly zero. Point masses are subtracted from G in closed form and reported by
:func:`theory_atoms`, so no spike ever appears in the density.

The law of d: Bernoulli-class φ (ReLU, shifted ReLU, hard tanh: φ'² ∈ {0, 1}) is two atoms, giving
``S_{D²}(m) = (1 + m)/(m + p)`` exactly (p = P(φ'(h)² = 1) at q*); linear φ (or q* = 0) one atom; smooth
φ a mixture of pieces with linear density, one per cell of a partition of z ∈ [−10, 10] on which
d(z) = φ'(√q* z)² is monotone (cells of Gaussian mass ≤ 1/48 and d-range ≤ 1/48 of the total; exact
mass and mean per cell), plus point masses where φ' is constant (ELU, SELU). Its M-transform is exact
in closed form (logarithms) for every complex w, the real axis included. The density it gives agrees
with a 1024-cell law's to within a few 1e-3 of its maximum (more at L = 1 with orthogonal W, where the
density is that of d itself and its inverse-square-root peaks are resolved to one cell).

Nothing here imports torch at module import; the simulation functions import it when called.
"""

from __future__ import annotations

import cmath
import math
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from core import activations
from core import device as devices
from core.activations import NAMES, Activation
from core.gaussian import Z_MAX, expect
from core.params import Params, param

# scipy's linalg, optimize and special load in ~0.5 s: they are imported where used (in the workers),
# not when the Jacobian Spectra tab is first opened.

WEIGHTS = ("gaussian", "orthogonal")
UNIVERSALITY_CLASSES = ("bernoulli", "smooth")

_NAN = complex(math.nan, math.nan)
THETA = 1e-9           # phase of the complex target ln x + iθ: the "ε" of THEORY.md, relative to x
_LAW_CELLS = 48        # a smooth law's cells carry ≤ 1/48 of the mass and ≤ 1/48 of the range of d


class _Cache:
    """A small first-in-first-out cache, safe to share between the GUI's worker threads."""

    def __init__(self, size: int = 64):
        self.size, self._items, self._lock = size, {}, threading.Lock()

    def get(self, key, make: Callable):
        with self._lock:
            hit = self._items.get(key)
        if hit is not None:
            return hit
        value = make()
        with self._lock:
            while len(self._items) >= self.size:
                self._items.pop(next(iter(self._items)))
            return self._items.setdefault(key, value)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# ---------------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SpectraParams(Params):
    """What the Jacobian Spectra panel lets the lecturer set (THEORY.md §3)."""

    phi: str = param("tanh", "φ", choices=NAMES, help="activation function")
    alpha: float = param(0.5, "α", lo=-2.0, hi=2.0, step=0.05, decimals=2,
                         help="shift of the shifted ReLU, φ(x) = max(0, x + α) − α")
    weights: str = param("orthogonal", "weights", choices=WEIGHTS,
                         help="W ~ N(0, σ_w²/N) entries, or σ_w × a Haar-random orthogonal matrix")
    sigma_w: float = param(1.05, "σ_w", lo=0.05, hi=4.0, step=0.01,
                           help="weight scale; χ = σ_w² E[φ'(h)²] = 1 is the critical line")
    # σ_b = 0.015 puts tanh at σ_w = 1.05 just inside the ordered phase (χ = 0.999) with a small q*:
    # the orthogonal net starts out near dynamical isometry, variance ≈ ¼ at L = 16
    sigma_b: float = param(0.015, "σ_b", lo=0.0, hi=2.0, step=0.005,
                           help="bias standard deviation; sets q*, and with it the spread of φ'(h)²")
    depth: int = param(16, "depth L", lo=1, hi=1024, step=1, scale="log", decimals=0)
    width: int = param(1000, "width N", lo=2, hi=4000, step=1, scale="log", decimals=0,
                       help="units per layer of the simulated network")
    seed: int = param(0, "seed", lo=0, hi=2**31 - 1, step=1, decimals=0)
    xscale: str = param("log", "x scale", choices=("linear", "log"))

    def activation(self) -> Activation:
        """φ as an Activation (α only matters for the shifted ReLU)."""
        return activations.get(self.phi, alpha=self.alpha) if self.phi == "shifted_relu" \
            else activations.get(self.phi)


@dataclass(frozen=True)
class Atom:
    """A point mass of the eigenvalue law of JJᵀ: ``mass`` at ``location`` (ln of it with ``log=True``)."""

    location: float
    mass: float


class NoFixedPointError(ValueError):
    """The preactivation variance grows without bound, so no input sits at a fixed point q*."""


# ---------------------------------------------------------------------------------------------------
# Mean-field statistics of one layer: q*, the law of d = φ'(h)², χ
# ---------------------------------------------------------------------------------------------------

_Q_GRID = np.concatenate([[0.0], np.logspace(-10.0, 10.0, 161)])


def _q_map(act: Activation, q, sigma_w: float, sigma_b: float):
    """The length map of Poole et al. 2016 (THEORY.md §2): q' = σ_w² E_z[φ(√q z)²] + σ_b²."""
    return sigma_w**2 * expect(lambda x: act.phi(x) ** 2, q, act.breakpoints) + sigma_b**2


def _q_star(act: Activation, sigma_w: float, sigma_b: float) -> float:
    """The fixed point of the variance map reached from a generic input: 0.0, a positive q*, or inf.

    Scans q on a log grid for the first place where q' − q turns from positive to non-positive (a
    stable crossing), then refines it with Brent's method. A q = 0 fixed point (φ(0) = 0, σ_b = 0) is
    returned when it is stable; ``inf`` when the variance grows for every q (unbounded φ, large σ_w).
    """
    from scipy import optimize

    g = _q_map(act, _Q_GRID, sigma_w, sigma_b) - _Q_GRID
    if g[0] <= 0.0 and g[1] <= 0.0:
        return 0.0
    down = np.nonzero((g[:-1] > 0.0) & (g[1:] <= 0.0))[0]
    if down.size == 0:
        return math.inf
    k = int(down[0])
    if g[k + 1] == 0.0:
        return float(_Q_GRID[k + 1])
    return float(optimize.brentq(lambda q: float(_q_map(act, q, sigma_w, sigma_b)) - q,
                                 _Q_GRID[k], _Q_GRID[k + 1], xtol=1e-300, rtol=1e-14))


def _effective_q(act: Activation, sigma_w: float, sigma_b: float) -> float:
    """q* where it is finite; for positively homogeneous φ (linear, ReLU) any q gives the same law of
    φ'(h)², so q = 1 stands in when q* is 0 or infinite. Non-homogeneous φ without a finite q* raise."""
    q = _q_star(act, sigma_w, sigma_b)
    if act.homogeneous and not 0.0 < q < math.inf:
        return 1.0
    if math.isinf(q):
        raise NoFixedPointError(
            f"no fixed point q*: with σ_w = {sigma_w:g}, σ_b = {sigma_b:g} the preactivation variance of a "
            f"{act} network grows without bound, so no input sits at q*; lower σ_w")
    return q


def _mu(act: Activation, q: float, k: int) -> float:
    """μ_k = E_z[φ'(√q z)^{2k}] (PSG 2017, Sec. 3)."""
    return float(expect(lambda x: act.dphi(x) ** (2 * k), q, act.breakpoints, n=48))


def _act_key(act: Activation) -> tuple:
    """Cache key of an activation: registry activations are fixed by name and α."""
    return act.name, act.alpha, act.label, act.bernoulli, act.homogeneous, act.breakpoints


_SERIES = (1 / 12, 1 / 80, 1 / 448, 1 / 2304)   # artanh(y)/y − 1 = Σ_k y^{2k}/(2k + 1), y = s/2


def _series(s2):
    """(2/s) artanh(s/2) − 1 for |s| < 0.1, to 1e-14: what (w − c) log((w − lo)/(w − hi))/h − 1 is."""
    k1, k2, k3, k4 = _SERIES
    return s2 * (k1 + s2 * (k2 + s2 * (k3 + s2 * k4)))


@dataclass(frozen=True)
class _Law:
    """The law of d = φ'(h)² as a mixture of point masses and pieces with linear density on [lo, hi].

    A piece of mass μ has density (μ/h)(1 + κ(d − c)) on [lo, hi], c its middle and h its width. Its
    M-transform ``E[d/(w − d)]`` is exact in closed form for every complex w (real axis included):
    ``μ[−1 + w g + κ w (v g − 1)]`` with v = w − c and ``g = log((w − lo)/(w − hi))/h``; an atom at c
    contributes ``μ c/(w − c)``. ``support`` lists the closed intervals that carry mass.
    """

    atom_at: np.ndarray
    atom_mass: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    mass: np.ndarray
    kappa: np.ndarray
    support: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        c, h = 0.5 * (self.lo + self.hi), self.hi - self.lo
        setattr_ = object.__setattr__
        setattr_(self, "_c", c)
        setattr_(self, "_h2", h * h)
        # complex copies, so that the dot products below run as complex BLAS without casting
        setattr_(self, "_m", self.mass.astype(complex))
        setattr_(self, "_mc", (self.mass * c).astype(complex))
        setattr_(self, "_mk", (self.mass * self.kappa).astype(complex))
        setattr_(self, "_atoms", list(zip(self.atom_at.tolist(), self.atom_mass.tolist(), strict=True)))
        with np.errstate(divide="ignore"):
            rows = [self.lo, self.hi, 1.0 / (self.hi - self.lo), 1.0 - self.kappa * c, self.kappa, self.mass,
                    self.mass * self.kappa]
        setattr_(self, "_pieces", np.array(rows, dtype=complex))

    def gaps(self) -> list[tuple[float, float]]:
        """Open intervals of (0, ∞) carrying no mass: where M is real on the real axis."""
        out, left = [], 0.0
        for a, b in self.support:
            if a > left:
                out.append((left, a))
            left = max(left, b)
        out.append((left, math.inf))
        return out

    # Per piece, with v = w − c, B = 1/v, s² = h²B², S = (2/s) artanh(s/2) − 1 and q₄ = (s²/4)/(1 − s²/4):
    #   G-part  (1 + S)B + κS,      m-part  (c + wS)B + κwS,
    #   dm/dw   (S − q₄)B − c(1 + q₄)B² + κS + κw(S − q₄)B,
    # by the series where |s| < 0.1 (far from w), by logarithms near w, where the series diverges.

    def evaluate(self, w) -> tuple:
        """(m, u, dm/dw) at each w, m = M(w), u = 1 + m = w G(w), summed without cancellation."""
        w = np.asarray(w, complex)
        wx = w[..., None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # elementwise products and sums: OpenBLAS's complex matrix-vector product is ~100× slower here
            g = 1.0 / (wx - self.atom_at)
            G = (g * self.atom_mass).sum(-1)
            m = (g * (self.atom_at * self.atom_mass)).sum(-1)
            dm = -(g * g * (self.atom_at * self.atom_mass)).sum(-1)
            if self.mass.size:
                mass, mc, mk = self.mass, self.mass * self._c, self.mass * self.kappa
                v = wx - self._c
                B = 1.0 / v
                s2 = self._h2 * B * B
                far = np.abs(s2) < 0.01
                s2 = np.where(far, s2, 0.0)
                B = np.where(far, B, 0.0)
                S = _series(s2)
                q4 = 0.25 * s2 / (1.0 - 0.25 * s2)
                A, AQ = S * B, (S - q4) * B
                Sk = (S * mk).sum(-1)
                G = G + ((B + A) * mass).sum(-1) + Sk
                m = m + (B * mc).sum(-1) + w * ((A * mass).sum(-1) + Sk)
                dm = dm + (AQ * mass - (1.0 + q4) * B * B * mc).sum(-1) + Sk + w * (AQ * mk).sum(-1)
                i, j = np.nonzero(~far)
                if i.size:
                    gn, mn, dn = self._near_pairs(wx[i, 0], j)
                    G = G + _sum_by(i, gn, w.size).reshape(w.shape)
                    m = m + _sum_by(i, mn, w.size).reshape(w.shape)
                    dm = dm + _sum_by(i, dn, w.size).reshape(w.shape)
        return m, w * G, dm

    def _near(self, w, j) -> tuple:
        """Exact contributions of pieces j to G, m, dm/dw at one w, by logarithms.

        With g = log((w − lo)/(w − hi))/h and α = 1 + κ(w − c), a piece of mass μ adds
        μ(αg − κ) to G, μ(wαg − 1 − κw) to m and μ(g(α + κw) − κ − wα/((w − lo)(w − hi))) to dm/dw.
        """
        lo, hi, inv_h, a0, k, mass, mk = self._pieces[:, j]
        a, b = w - lo, w - hi
        g = (np.log(a) - np.log(b)) * inv_h
        m_alpha = mass * (a0 + k * w)
        s_ag, s_kg, s_m, s_mk = m_alpha @ g, mk @ g, mass.sum(), mk.sum()
        return (s_ag - s_mk, w * (s_ag - s_mk) - s_m,
                s_ag + w * s_kg - s_mk - w * (m_alpha @ (1.0 / (a * b))))

    def _near_pairs(self, w, j) -> tuple:
        """:meth:`_near` for pairs (w[i], piece j[i]), unsummed."""
        lo, hi, inv_h, a0, k, mass, mk = self._pieces[:, j]
        a, b = w - lo, w - hi
        g = (np.log(a) - np.log(b)) * inv_h
        alpha = a0 + k * w
        return (mass * (alpha * g - k), mass * (w * alpha * g - 1.0 - k * w),
                mass * (g * (alpha + k * w) - k - w * alpha / (a * b)))

    def evaluate_scalar(self, w: complex) -> tuple[complex, complex, complex]:
        """:meth:`evaluate` at one w, with logarithms only for the pieces within 10 widths of w."""
        G = m = dm = 0.0
        for c, p in self._atoms:
            g = 1.0 / (w - c)
            G += p * g
            m += p * c * g
            dm -= p * c * g * g
        if not self.mass.size:
            return m, w * G, dm
        B = 1.0 / (w - self._c)
        s2 = self._h2 * B * B
        near = np.flatnonzero(np.abs(s2) >= 0.01)
        if near.size:
            s2[near] = 0.0
            B[near] = 0.0
            with np.errstate(all="ignore"):
                gn, mn, dn = self._near(w, near)
            G, m, dm = G + gn, m + mn, dm + dn
        S = _series(s2)
        q4 = 0.25 * s2 / (1.0 - 0.25 * s2)
        A = S * B
        AQ = A - q4 * B
        Sk = S @ self._mk
        Am = A @ self._m
        G += (B + A) @ self._m + Sk
        m += B @ self._mc + w * (Am + Sk)
        dm += AQ @ self._m - ((1.0 + q4) * B * B) @ self._mc + Sk + w * (AQ @ self._mk)
        return complex(m), complex(w * G), complex(dm)


def _sum_by(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Σ values grouped by index, for complex values."""
    return (np.bincount(index, weights=values.real, minlength=n)
            + 1j * np.bincount(index, weights=values.imag, minlength=n))


def _atoms_law(at: Iterable[float], mass: Iterable[float]) -> _Law:
    at, mass = np.asarray(list(at), float), np.asarray(list(mass), float)
    keep = mass > 0.0
    empty = np.zeros(0)
    support = tuple((float(c), float(c)) for c in np.unique(at[keep]))
    return _Law(at[keep], mass[keep], empty, empty, empty, empty, support)


def _smooth_law(act: Activation, q: float, mu1: float, cells: int = _LAW_CELLS) -> _Law:
    """The law of d(z) = φ'(√q z)², z ~ N(0, 1), one linear-density piece per cell of z.

    Cell edges: the kinks of φ', the extrema of d (zeros of φ'φ''), Gaussian quantiles; cells are split
    until each carries ≤ 1/cells of the mass and ≤ 1/cells of the range of d. On a cell d is monotone,
    so the cell's mass lies on [d(z_a), d(z_b)]; the piece there has the cell's exact mass and mean
    (8-point Gauss–Legendre in z; the slope of the density is clipped where the mean sits closer than
    h/6 to an end, and the continuous part rescaled by the ~1e-5 this loses), so the law's mean — hence the
    spectrum's mean χ^L — is exact, and the pieces tile the support with no artificial gaps. A cell
    where d is constant is a point mass (ELU, SELU).
    """
    from scipy import optimize, special

    s = math.sqrt(q)

    def d(z):
        return act.dphi(s * np.asarray(z, float)) ** 2

    fine = np.linspace(-Z_MAX, Z_MAX, 4001)
    df = d(fine)
    d_range = float(df.max() - df.min())
    slope = act.dphi(s * fine) * act.d2phi(s * fine)
    edges = [-Z_MAX, Z_MAX, *special.ndtri(np.arange(1, cells) / cells)]
    edges += [b / s for b in act.breakpoints if abs(b / s) < Z_MAX]
    for k in np.nonzero(np.sign(slope[:-1]) * np.sign(slope[1:]) < 0)[0]:
        f = lambda z: float(act.dphi(s * z) * act.d2phi(s * z))  # noqa: E731
        edges.append(optimize.brentq(f, fine[k], fine[k + 1], xtol=1e-14))
    z = np.unique(np.asarray(edges, float))
    for _ in range(30):
        za, zb = z[:-1], z[1:]
        mass = _gauss_mass(za, zb)
        nudge = np.minimum(1e-12 * np.maximum(1.0, np.abs(za)), 0.25 * (zb - za))
        da, db = d(za + nudge), d(zb - nudge)
        split = (mass > 1.0 / cells) | (np.abs(db - da) > d_range / cells)
        if not split.any():
            break
        z = np.unique(np.concatenate([z, 0.5 * (za[split] + zb[split])]))
    x, wx = np.polynomial.legendre.leggauss(8)
    half = 0.5 * (zb - za)[:, None]
    zn = 0.5 * (za + zb)[:, None] + half * x
    wn = half * wx * np.exp(-0.5 * zn * zn)
    mean = (wn * d(zn)).sum(1) / wn.sum(1)
    lo, hi = np.minimum(da, db), np.maximum(da, db)
    width = hi - lo
    point = width <= 1e-12 * np.maximum(hi, 1e-300)
    centre = 0.5 * (lo + hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = np.where(point, 0.0, 12.0 * (mean - centre) / width**2)
        kappa = np.clip(kappa, -2.0 / np.where(point, 1.0, width), 2.0 / np.where(point, 1.0, width))
    # where φ'² underflows to 0 far out in a tail (sigmoid: 1 − expit(x) = 0 for x > 37) a cell looks
    # like a point mass at 0; with a mass below 1e-9 it is dropped rather than reported as an atom
    point_at = np.where(point, mean, 0.0)
    drop = point & (point_at == 0.0) & (mass < 1e-9)
    keep = ~point & ~drop
    point &= ~drop
    at, atom_mass = _merge_atoms(point_at[point], mass[point])
    total = mass[~drop].sum()
    lo, hi, kappa, mass = lo[keep], hi[keep], kappa[keep], mass[keep] / total
    atom_mass = atom_mass / total
    # rescale the continuous part so that the law's mean is the exact μ₁ (the clipped slopes above
    # lose ~1e-5 of it); the atoms are exact as they are
    cont = mass @ (0.5 * (lo + hi) + kappa * (hi - lo) ** 2 / 12.0)
    scale = (mu1 - at @ atom_mass) / cont if cont > 0 else 1.0
    lo, hi, kappa = lo * scale, hi * scale, kappa / scale
    support = _merge_closed([(float(c), float(c)) for c in at] +
                            list(zip(lo.tolist(), hi.tolist(), strict=True)))
    return _Law(at, atom_mass, lo, hi, mass, kappa, support)


def _merge_atoms(at: np.ndarray, mass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Point masses at the same place (to 1e-12 relative) summed into one."""
    order = np.argsort(at)
    at, mass = at[order], mass[order]
    out_at: list[float] = []
    out_mass: list[float] = []
    for c, p in zip(at.tolist(), mass.tolist(), strict=True):
        if out_at and abs(c - out_at[-1]) <= 1e-12 * max(abs(c), 1e-300):
            out_mass[-1] += p
        else:
            out_at.append(c)
            out_mass.append(p)
    return np.asarray(out_at, float), np.asarray(out_mass, float)


def _merge_closed(intervals: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Union of closed intervals, touching ones (to 1e-9 of the largest end) merged."""
    tol = 1e-9 * max((b for _, b in intervals), default=1.0)
    out: list[list[float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1] + tol:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


def _gauss_mass(za: np.ndarray, zb: np.ndarray) -> np.ndarray:
    """P(za < z < zb) for z ~ N(0, 1), from the tail that keeps it accurate."""
    from scipy import special

    right = za > 0
    return np.where(right, special.ndtr(-za) - special.ndtr(-zb), special.ndtr(zb) - special.ndtr(za))


@dataclass(frozen=True)
class _Layer:
    """One layer's statistics at the fixed point: q*, μ₁, μ₂, χ = σ_w² μ₁ and the law of φ'(h)²."""

    q: float
    mu1: float
    mu2: float
    chi: float
    law: _Law


_layer_cache = _Cache()


def _layer(act: Activation, sigma_w: float, sigma_b: float) -> _Layer:
    return _layer_cache.get((_act_key(act), float(sigma_w), float(sigma_b)),
                            lambda: _make_layer(act, float(sigma_w), float(sigma_b)))


def _make_layer(act: Activation, sigma_w: float, sigma_b: float) -> _Layer:
    q = _effective_q(act, sigma_w, sigma_b)
    mu1, mu2 = _mu(act, q, 1), _mu(act, q, 2)
    if act.name == "linear" or q == 0.0:
        law = _atoms_law([float(act.dphi(np.array(0.0)) ** 2)], [1.0])
    elif act.bernoulli:
        law = _atoms_law([0.0, 1.0], [1.0 - mu1, mu1])
    else:
        law = _smooth_law(act, q, mu1)
    return _Layer(q, mu1, mu2, sigma_w**2 * mu1, law)


def critical_sigma_w(phi: str | Activation, sigma_b: float) -> float:
    """σ_w on the order-to-chaos line, χ = σ_w² E_z[φ'(√q* z)²] = 1 (Poole et al. 2016; THEORY.md §2).

    q* is the fixed point at that σ_w; for φ whose variance diverges before χ reaches 1, the q → ∞
    limit of χ is used. Searched on σ_w ∈ [0.01, 100]; the smallest crossing is returned.

    Raises
    ------
    ValueError
        If χ = 1 is not reached on that range, or only where q* diverges (softplus: χ < σ_w²/2 < 1
        wherever q* is finite). Sigmoid's σ_w ≈ 10 is found, though outside the panel's slider.
    """
    from scipy import optimize

    act = activations.resolve(phi)
    sigma_b = float(sigma_b)

    def log_chi(log_sw: float) -> float:
        sw = math.exp(log_sw)
        q = _q_star(act, sw, sigma_b)
        q = 1.0 if act.homogeneous and not 0.0 < q < math.inf else min(q, 1e10)
        mu1 = _mu(act, q, 1)
        return math.log(sw**2 * mu1) if mu1 > 0 else -math.inf

    grid = np.linspace(math.log(0.01), math.log(100.0), 81)
    vals = np.array([log_chi(t) for t in grid])
    up = np.nonzero((vals[:-1] < 0.0) & (vals[1:] >= 0.0))[0]
    if up.size == 0:
        raise ValueError(f"χ = 1 is not reached for {act} with σ_b = {sigma_b:g} and σ_w in [0.01, 100]")
    k = int(up[0])
    sw = math.exp(optimize.brentq(log_chi, grid[k], grid[k + 1], xtol=1e-13, rtol=1e-13))
    if not act.homogeneous and math.isinf(_q_star(act, sw, sigma_b)):
        raise ValueError(f"{act} has no critical point at σ_b = {sigma_b:g}: χ reaches 1 only as σ_w → "
                         f"{sw:.4g}, where the variance q* diverges")
    return sw


# ---------------------------------------------------------------------------------------------------
# Models: ln x as an explicit function of one complex unknown
# ---------------------------------------------------------------------------------------------------

class _Model:
    """ln x(v) on the physical sheet, for the unknown v of a free-probability fixed point.

    ``evaluate(v) -> (F, dF/dv, u, dm/dv)`` with F = ln x (unwrapped), u = 1 + m = x G(x).
    ``upper`` is the side of the real axis where the physical v lives (+1: w-unknowns, −1: m-unknowns).
    """

    upper: int = 1
    atoms: tuple[tuple[float, float], ...] = ()   # (ln location, mass); ln 0 = −inf
    poles: tuple[float, ...] = ()                 # real v where u is singular (besides v = 0)
    multiplicative = False                        # v varies like a power of x: predict ln v, not v

    def evaluate(self, v: complex) -> tuple[complex, complex, complex, complex]:
        raise NotImplementedError

    def evaluate_array(self, v: np.ndarray) -> tuple:
        raise NotImplementedError

    def segments(self) -> list[tuple[float, float]]:
        """Real intervals of v on which x(v) is real: candidates for gaps of the spectrum."""
        raise NotImplementedError

    def negative_axis(self, s: float) -> float:
        """Real v at which x = −(something increasing in s): the start of every continuation."""
        raise NotImplementedError

    def nudge(self, v):
        """v pushed off the real axis into the physical half-plane (by 1e-10 of its distance to the
        nearest singularity), so that principal logarithms pick the physical side."""
        dist = np.abs(v)
        for p in self.poles:
            dist = np.minimum(dist, np.abs(v - p))
        return v + self.upper * 1j * 1e-10 * dist

    def physical(self, v: complex, u: complex) -> bool:
        return u.imag <= 1e-9 * abs(u) and self.upper * v.imag >= -1e-9 * abs(v)

    def predict(self, v: complex, slope: complex, step: complex) -> complex:
        """First-order predictor of the solution ``step`` further along, slope = dv/dF at v."""
        if self.multiplicative and v != 0:
            z = step * slope / v
            return v * cmath.exp(complex(max(min(z.real, 50.0), -50.0), z.imag))
        return v + step * slope

    def step_tol(self, v: complex) -> float:
        """A Newton step this small has converged, its error O(step²) being ~1e-10 of the distance to
        the nearest singularity."""
        return 1e-5 * min((abs(v), *(abs(v - c) for c in self.poles)))


class _LayerModel(_Model):
    """L layers of σ_w W and D = diag φ'(h): unknown w = M_{D²}⁻¹(m) (see the module docstring)."""

    upper = 1
    multiplicative = True       # x ∝ w^L as w → 0: ln w is near-linear in ln x

    def __init__(self, law: _Law, depth: int, weights: str, sigma_w: float):
        self.law, self.L = law, int(depth)
        self.a = 1.0 if weights == "gaussian" else 1.0 - self.L
        self.c = self.L * math.log(sigma_w**2)
        atoms = []
        zero = float(law.atom_mass[law.atom_at == 0.0].sum())
        if zero > 0.0:
            atoms.append((-math.inf, zero))
        if weights == "orthogonal":
            # Belinschi 2003: μ⊠ν has an atom at ab ≠ 0 of mass μ{a} + ν{b} − 1 when positive; for L free
            # copies of σ_w² D² that is 1 − L(1 − mass), e.g. the rank-(1 − L(1 − p))N intersection of
            # L projections. Gaussian WᵀW has no atoms, so a Gaussian net has none but the one at 0.
            for c, p in zip(law.atom_at, law.atom_mass, strict=True):
                mass = 1.0 - self.L * (1.0 - p)
                if c > 0.0 and mass > 1e-12:
                    atoms.append((self.c + self.L * math.log(c), mass))
        self.atoms = tuple(atoms)
        self.poles = tuple(float(c) for c in law.atom_at if c != 0.0)

    def _f(self, m, u, dm, w, log):
        F = self.L * log(w) + self.c
        dF = self.L / w
        if self.a != 0.0:
            F = F + self.a * log(u)
            dF = dF + self.a / u * dm
        if self.L > 1:
            F = F + (self.L - 1) * log(m)
            dF = dF + (self.L - 1) / m * dm
        return F, dF

    def evaluate(self, v):
        m, u, dm = self.law.evaluate_scalar(v)
        try:
            F, dF = self._f(m, u, dm, v, cmath.log)
        except (ValueError, ZeroDivisionError):      # v or u at 0, beyond float64 resolution
            return _NAN, _NAN, _NAN, _NAN
        return F, dF, u, dm

    def evaluate_array(self, v):
        m, u, dm = self.law.evaluate(v)
        with np.errstate(divide="ignore", invalid="ignore"):
            F, dF = self._f(m, u, dm, v, np.log)
        return F, dF, u, dm

    def segments(self):
        return self.law.gaps()

    def negative_axis(self, s):
        return -math.exp(s)


class _UniversalModel(_Model):
    """The depth → ∞ limits at fixed variance σ₀² of the spectrum; the unknown is m itself."""

    upper = -1
    poles = (-1.0,)

    def __init__(self, kind: str, sigma0_sq: float):
        self.bernoulli = kind == "bernoulli"
        self.s2 = float(sigma0_sq)
        if self.bernoulli and self.s2 < 1.0:
            # S → e^{−σ₀²} as m → ∞: M has a pole at e^{σ₀²} with residue 1 − σ₀² — the limit of the
            # orthogonal Bernoulli nets' atom 1 − L(1 − p) at σ_w^{2L} = p^{−L} → e^{σ₀²}
            self.atoms = ((self.s2, 1.0 - self.s2),)

    def evaluate(self, m):
        u = 1.0 + m
        try:
            if self.bernoulli:
                return (cmath.log(u) - cmath.log(m) + self.s2 * m / u, 1 / u - 1 / m + self.s2 / (u * u),
                        u, 1.0)
            return cmath.log(u) - cmath.log(m) + self.s2 * m, 1 / u - 1 / m + self.s2, u, 1.0
        except (ValueError, ZeroDivisionError, OverflowError):
            return _NAN, _NAN, _NAN, _NAN

    def evaluate_array(self, m):
        u = 1.0 + m
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if self.bernoulli:
                F = np.log(u) - np.log(m) + self.s2 * m / u
                dF = 1 / u - 1 / m + self.s2 / (u * u)
            else:
                F = np.log(u) - np.log(m) + self.s2 * m
                dF = 1 / u - 1 / m + self.s2
        return F, dF, u, np.ones_like(m)

    def segments(self):
        return [(0.0, math.inf), (-math.inf, -1.0)]

    def negative_axis(self, s):
        return -1.0 / (1.0 + math.exp(s)) if s < 700 else -math.exp(-s)


# ---------------------------------------------------------------------------------------------------
# The real axis: gaps of the support and the spectral edges
# ---------------------------------------------------------------------------------------------------

def _scan_points(lo: float, hi: float, scale: float) -> np.ndarray:
    """Points of (lo, hi) crowding towards both ends, geometrically (edges sit near the ends)."""
    t = np.logspace(-13.0, 0.0, 48)[:-1]
    if math.isinf(hi) and math.isinf(lo):
        raise ValueError("a scan needs one finite end")
    if math.isinf(hi):
        return lo + scale * np.logspace(-13.0, 13.0, 130)
    if math.isinf(lo):
        return hi - scale * np.logspace(-13.0, 13.0, 130)[::-1]
    if lo == 0.0:
        left = hi * np.concatenate([np.logspace(-40.0, -13.5, 20), 0.5 * t])
    else:
        left = lo + (hi - lo) * 0.5 * t
    right = hi - (hi - lo) * 0.5 * t[::-1]
    return np.concatenate([left, [0.5 * (lo + hi)], right])


def _gaps(model: _Model) -> list[tuple[float, float]]:
    """Open intervals of ln x carrying no continuous density, from the real axis.

    Where v is real and x(v) real positive with dx/dm < 0, M_{JJᵀ} is real and decreasing at x: x lies
    in a gap. Each run of such points is a gap; where a run ends inside a segment, the end is a local
    extremum of x(v) — a spectral edge — refined by bounded minimisation; where it reaches the end of
    the segment, the edge is the limit of x there (0 or ∞ when x diverges).
    """
    out = []
    for lo, hi in model.segments():
        scale = max(abs(lo), 1.0) if math.isfinite(lo) else max(abs(hi), 1.0)
        if isinstance(model, _LayerModel):
            scale = max(abs(lo), float(np.max(np.abs(model.law.atom_at), initial=0.0)),
                        float(np.max(model.law.hi, initial=0.0)), 1e-300)
        nudge = _segment_nudge(model, lo, hi)

        def ell_at(v, nudge=nudge):
            return model.evaluate(complex(nudge(v)))[0].real

        v = _scan_points(lo, hi, scale)
        F, dF, _, dm = model.evaluate_array(nudge(v))
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = (dF / dm).real
        ok = np.isfinite(F) & (np.abs(F.imag) < 1e-6 * np.maximum(1.0, np.abs(F.real))) & (slope < 0.0)
        ell = F.real
        n = len(v)
        k = 0
        while k < n:
            if not ok[k]:
                k += 1
                continue
            j = k
            while j + 1 < n and ok[j + 1]:
                j += 1
            ends = []
            for idx, inward, outward, boundary in ((k, min(k + 1, n - 1), k - 1, lo),
                                                   (j, max(j - 1, 0), j + 1, hi)):
                if 0 <= outward < n:
                    a, b = sorted((v[outward], v[inward]))
                    ends.append(_extremum(ell_at, a, b, ell[idx], ell[inward]))
                else:
                    ends.append(_limit(ell_at, boundary, 1.0 if boundary == lo else -1.0, scale))
            out.append((min(ends), max(ends)))
            k = j + 1
    return _merge(out)


def _segment_nudge(model: _Model, lo: float, hi: float) -> Callable:
    """v ↦ v pushed into the physical half-plane by 1e-10 of its distance to 0 and to the segment's
    ends, so that principal logarithms pick the physical side even right next to a singularity."""
    def nudge(v):
        v = np.asarray(v, complex)
        dist = np.abs(v)
        for end in (lo, hi):
            if math.isfinite(end) and end != 0.0:
                dist = np.minimum(dist, np.abs(v - end))
        return v + model.upper * 1j * 1e-10 * dist
    return nudge


def _extremum(ell_at: Callable, a: float, b: float, ell_end: float, ell_in: float) -> float:
    """The local extremum of ln x(v) on [a, b] next to the end of a physical run."""
    from scipy import optimize

    sign = 1.0 if ell_end < ell_in else -1.0      # a minimum if the run rises away from this end
    res = optimize.minimize_scalar(lambda v: sign * ell_at(v), bounds=(a, b), method="bounded",
                                   options={"xatol": 1e-14 * max(abs(a), abs(b))})
    return sign * min(float(res.fun), sign * ell_end)


def _limit(ell_at: Callable, boundary: float, inward: float, scale: float) -> float:
    """lim ln x(v) as v → boundary from inside the segment: ±inf when it still moves by more than 1
    between distances 1e-11 and 1e-13 (relative), else its value at 1e-13."""
    if math.isinf(boundary):
        near, nearer = -inward * 1e11 * scale, -inward * 1e13 * scale
    else:
        size = abs(boundary) if boundary != 0.0 else scale
        near, nearer = boundary + inward * 1e-11 * size, boundary + inward * 1e-13 * size
    e1, e2 = ell_at(nearer), ell_at(near)
    if abs(e1 - e2) > 1.0:
        return math.inf if e1 > e2 else -math.inf
    return e1


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _support(gaps: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The complement of the gaps in (−∞, ∞): intervals of ln x carrying continuous density."""
    out, left = [], -math.inf
    for a, b in gaps:
        if a > left + 1e-8 * max(1.0, abs(a)):
            out.append((left, a))
        left = max(left, b)
    if math.isfinite(left):
        out.append((left, math.inf))
    return out


# ---------------------------------------------------------------------------------------------------
# The complex plane: continuation of the physical solution
# ---------------------------------------------------------------------------------------------------

def _newton(model: _Model, v: complex, target: complex, maxit: int = 24):
    """Damped Newton on F(v) = target; (v, u, dF/dv) at the solution, or None.

    Converged once the Newton step is below ``model.step_tol(v)``: the error after that step is
    O(step²), so it is taken without another evaluation, u moving along with it (du/dv = dm/dv).
    """
    F, dF, u, dm = model.evaluate(v)
    r = F - target
    floor = 1e-13 * (1.0 + abs(target.real))
    for _ in range(maxit):
        if dF == 0 or not (cmath.isfinite(r) and cmath.isfinite(dF)):
            return None
        step = r / dF
        if abs(step) <= model.step_tol(v) or abs(r) <= floor:
            vn, un = v - step, u - dm * step
            return (vn, un, dF) if model.physical(vn, un) else None
        for _ in range(8):
            vn = v - step
            Fn, dFn, un, dmn = model.evaluate(vn)
            rn = Fn - target
            if cmath.isfinite(rn) and abs(rn) < abs(r) and model.physical(vn, un):
                break
            step *= 0.5
        else:
            return None
        v, dF, u, dm, r = vn, dFn, un, dmn, rn
    return None


def _follow(model: _Model, v: complex, slope: complex, t0: complex, t1: complex, depth: int = 0,
            guess: complex | None = None):
    """Carry the solution v of F(v) = t0 to F(v) = t1: predictor (``guess``, else the tangent
    v + slope (t1 − t0), slope = 1/F'(v)) and Newton corrector, halving the step while the corrector
    wanders off the predictor — the sign of a jump to another solution."""
    pred = model.predict(v, slope, t1 - t0) if guess is None or not cmath.isfinite(guess) else guess
    res = _newton(model, pred, t1)
    if res is not None and abs(res[0] - pred) <= 0.5 * abs(pred - v) + 1e-12 * abs(v):
        return res
    if depth >= 14:
        return None
    mid = 0.5 * (t0 + t1)
    half = _follow(model, v, slope, t0, mid, depth + 1)
    if half is None:
        return None
    return _follow(model, half[0], _inverse(half[2]), mid, t1, depth + 1)


def _inverse(dF: complex) -> complex:
    """1/F', or 0 where F' vanishes or is infinite (the tangent predictor then stays put)."""
    return 1.0 / dF if dF != 0 and cmath.isfinite(dF) else 0.0


def _guess(model: _Model, prev2: tuple, prev: tuple, e: float) -> complex:
    """Cubic predictor at ln x = e through the last two solutions (ℓ, v, dv/dℓ): in v, or in ln v
    relative to the last one for multiplicative unknowns (a power law is then predicted exactly)."""
    (e0, v0, d0), (e1, v1, d1) = prev2, prev
    if not (model.multiplicative and v0 != 0 and v1 != 0):
        return _hermite(e0, v0, d0, e1, v1, d1, e)
    p = _hermite(e0, cmath.log(v0 / v1), d0 / v0, e1, 0.0, d1 / v1, e)
    return v1 * cmath.exp(complex(max(min(p.real, 50.0), -50.0), p.imag))


def _hermite(e0: float, w0: complex, d0: complex, e1: float, w1: complex, d1: complex, e: float) -> complex:
    """The cubic through (e0, w0) and (e1, w1) with slopes d0, d1, at e: a third-order predictor."""
    h = e1 - e0
    if h == 0:
        return w1 + (e - e1) * d1
    t = (e - e0) / h
    t2, t3 = t * t, t * t * t
    return ((2 * t3 - 3 * t2 + 1) * w0 + (t3 - 2 * t2 + t) * h * d0 + (3 * t2 - 2 * t3) * w1
            + (t3 - t2) * h * d1)


def _start(model: _Model, ell: float, theta: float):
    """The physical solution at ln x + iθ, continued from the negative real axis (phase π), where
    x(v) is real and monotone and the solution is found by bisection."""
    from scipy import optimize

    def f(s):
        return model.evaluate(complex(model.nudge(model.negative_axis(s))))[0].real - ell

    grid = np.linspace(-700.0, 700.0, 57)          # e^{±700}: v within the float64 range
    axis = np.array([model.negative_axis(t) for t in grid])
    with np.errstate(all="ignore"):
        fg = model.evaluate_array(model.nudge(axis.astype(complex)))[0].real - ell
    cross = np.nonzero(np.isfinite(fg[:-1]) & np.isfinite(fg[1:]) & (fg[:-1] <= 0) & (fg[1:] > 0))[0]
    if cross.size == 0:
        return None
    k = int(cross[0])
    s = optimize.brentq(f, grid[k], grid[k + 1], xtol=1e-14, rtol=1e-14)
    v = complex(model.nudge(model.negative_axis(s)))
    thetas = np.geomspace(math.pi * (1 - 1e-7), theta, 48)
    res = _newton(model, v, complex(ell, thetas[0]))
    if res is None:
        return None
    for t0, t1 in zip(thetas[:-1], thetas[1:], strict=True):
        res = _follow(model, res[0], _inverse(res[2]), complex(ell, t0), complex(ell, t1))
        if res is None:
            return None
    return res


def _detour(model: _Model, v, slope, ell0: float, ell1: float, theta: float, up: float = 0.5):
    """From ln x₀ + iθ to ln x₁ + iθ through ln x + i·up, away from the edges and atoms on the axis."""
    res = (v, None, 1.0 / slope if slope != 0 else math.inf)
    thetas = np.geomspace(theta, up, 40)
    for t0, t1 in zip(thetas[:-1], thetas[1:], strict=True):
        res = _follow(model, res[0], _inverse(res[2]), complex(ell0, t0), complex(ell0, t1))
        if res is None:
            return None
    n = max(1, int(math.ceil(abs(ell1 - ell0) / 0.25)))
    ells = np.linspace(ell0, ell1, n + 1)
    for e0, e1 in zip(ells[:-1], ells[1:], strict=True):
        res = _follow(model, res[0], _inverse(res[2]), complex(e0, up), complex(e1, up))
        if res is None:
            return None
    for t0, t1 in zip(thetas[::-1][:-1], thetas[::-1][1:], strict=True):
        res = _follow(model, res[0], _inverse(res[2]), complex(ell1, t0), complex(ell1, t1))
        if res is None:
            return None
    return res


def _solve(model: _Model, ell: np.ndarray, theta: float = THETA) -> np.ndarray:
    """u = 1 + m at ln x + iθ for each ln x of one interval of the support, continued from the top
    down (cubic predictor through the last two solutions); NaN where every fallback fails."""
    out = np.full(ell.shape, np.nan + 0j)
    order = np.argsort(-ell, kind="stable")
    prev = prev2 = None          # (ℓ, v, dv/dℓ) of the last two solutions
    last = (math.nan, None)      # (ℓ, u) of the last point solved
    for idx in order:
        e = float(ell[idx])
        if e == last[0]:
            out[idx] = last[1]
            continue
        res = None
        if prev is not None:
            pe, pv, pd = prev
            guess = _guess(model, prev2, prev, e) if prev2 is not None else None
            res = _follow(model, pv, pd, complex(pe, theta), complex(e, theta), guess=guess)
            if res is None:
                res = _detour(model, pv, pd, pe, e, theta)
        if res is None:
            prev2 = None
            res = _start(model, e, theta)
        if res is None:
            prev = prev2 = None
            last = (math.nan, None)
            continue
        out[idx] = res[1]
        last = (e, res[1])
        prev2, prev = prev, (e, res[0], _inverse(res[2]))
    return out


def _atom_part(model: _Model, ell: np.ndarray, theta: float) -> np.ndarray:
    """x G(x) of the point masses at x = e^{ℓ + iθ}: Σ mass/(1 − x_k/x)."""
    out = np.zeros(ell.shape, complex)
    for loc, mass in model.atoms:
        if math.isinf(loc):
            out += mass
        else:
            # mass/(1 − e^{loc − ℓ − iθ}), written in e^{ℓ − loc} below the atom so nothing overflows
            d = ell - loc
            r = np.exp(-np.abs(d) - 1j * theta * np.where(d >= 0, 1.0, -1.0))
            out += mass * np.where(d >= 0, 1.0, -r) / (1.0 - r)
    return out


class _Spectrum:
    """A model with its gaps found: the continuous density of ln x, its support and its atoms."""

    def __init__(self, model: _Model):
        self.model = model
        self.gaps = _gaps(model)
        self.support = _support(self.gaps)

    def log_density(self, ell: np.ndarray, theta: float = THETA) -> np.ndarray:
        """Density of ln λ of the continuous part: λ ρ(λ) = −Im(e^{−iθ}(xG − atoms))/π."""
        ell = np.asarray(ell, float)
        out = np.zeros(ell.shape)
        inside = np.zeros(ell.shape, bool)
        for a, b in self.support:
            inside |= (ell > a) & (ell < b)
        inside &= np.isfinite(ell)
        if not inside.any():
            return out
        e = ell[inside]
        u = np.zeros(e.shape, complex)
        for a, b in self.support:
            sel = (e > a) & (e < b)
            if sel.any():
                u[sel] = _solve(self.model, e[sel], theta)
        cont = u - _atom_part(self.model, e, theta)
        dens = -(np.exp(-1j * theta) * cont).imag / math.pi
        out[inside] = np.clip(np.nan_to_num(dens, nan=0.0), 0.0, None)
        return out

    def edges(self) -> tuple[float, float]:
        """ln of the smallest and largest points of the support, atoms included (−inf for 0)."""
        lows = [a for a, _ in self.support] + [loc for loc, _ in self.model.atoms]
        highs = [b for _, b in self.support] + [loc for loc, _ in self.model.atoms]
        return min(lows), max(highs)

    def cdf(self, ell: np.ndarray, points: int = 400) -> np.ndarray:
        """P(ln λ ≤ ℓ): one minus the atoms and the continuous mass above ℓ (integrated from the top edge
        down, so mass below the smallest ℓ asked for is never lost)."""
        ell = np.asarray(ell, float)
        above = np.zeros(ell.shape)
        finite = ell[np.isfinite(ell)]
        bottom = float(finite.min()) if finite.size else 0.0
        for a, b in self.support:
            lo = max(a, bottom - 1.0)
            if not lo < b:
                continue
            grid, weight = _quadrature(lo, b, points)
            psi = self.log_density(grid)
            f = psi * weight
            cum = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]))])
            mass_above = cum[-1] - _hermite_interp(ell, grid, cum, psi)
            above += np.where(ell < lo, cum[-1], np.where(ell >= b, 0.0, mass_above))   # ℓ < lo: lo = a
        for loc, mass in self.model.atoms:
            above += np.where(ell < loc, mass, 0.0)
        return np.clip(1.0 - above, 0.0, 1.0)


def _hermite_interp(x: np.ndarray, grid: np.ndarray, y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """y between the nodes by the cubic matching y and its derivative dy at both ends (clamped)."""
    i = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, grid.size - 2)
    h = grid[i + 1] - grid[i]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.clip(np.where(h > 0, (x - grid[i]) / h, 0.0), 0.0, 1.0)
    t2, t3 = t * t, t * t * t
    return ((2 * t3 - 3 * t2 + 1) * y[i] + (t3 - 2 * t2 + t) * h * dy[i] + (3 * t2 - 2 * t3) * y[i + 1]
            + (t3 - t2) * h * dy[i + 1])


def _quadrature(lo: float, hi: float, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes on [lo, hi] and the factor dℓ/dt at each, for the trapezoid rule in t (unit steps).

    Windows widen geometrically away from the top edge (8, 32, 128 … wide), where the mass of a wide
    spectrum sits on a scale of 1. In each window ℓ = p + (q − p) B(t), B the regularised incomplete
    beta function I_t(5, 5), crowds nodes at both ends as (1 − t)⁵: times dℓ/dt, even an
    inverse-square-root edge (L = 1, or L(1 − p) = 1) vanishes there like (1 − t)^{3/2}, and the
    trapezoid rule converges as n^{−5/2}.
    """
    from scipy import special

    cuts, width = [hi], 8.0
    while hi - width > lo:
        cuts.append(hi - width)
        width *= 4.0
    cuts.append(lo)
    grids, weights = [], []
    for k, (q, p) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
        n = points if k == 0 else points // 2
        t = np.linspace(0.0, 1.0, n)
        grid = p + (q - p) * special.betainc(5.0, 5.0, t)
        weight = (q - p) * 630.0 * (t * (1.0 - t)) ** 4 / (n - 1)
        if grids:
            grid, weight = grid[:-1], weight[:-1]     # the shared end point, where the weight is 0
        grids.append(grid)
        weights.append(weight)
    return np.concatenate(grids[::-1]), np.concatenate(weights[::-1])


_spectrum_cache = _Cache()


def _spectrum(phi, sigma_w: float, sigma_b: float, depth: int, weights: str) -> _Spectrum:
    act = activations.resolve(phi)
    _check_theory_args(sigma_w, sigma_b, depth, weights)

    def make():
        law = _layer(act, float(sigma_w), float(sigma_b)).law
        return _Spectrum(_LayerModel(law, int(depth), weights, float(sigma_w)))

    return _spectrum_cache.get((_act_key(act), float(sigma_w), float(sigma_b), int(depth), weights), make)


def _check_theory_args(sigma_w, sigma_b, depth, weights) -> None:
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    if not (isinstance(depth, int | np.integer) and depth >= 1):
        raise ValueError(f"depth must be a whole number ≥ 1, got {depth!r}")
    if not (math.isfinite(sigma_w) and sigma_w > 0):
        raise ValueError(f"σ_w must be positive, got {sigma_w!r}")
    if not (math.isfinite(sigma_b) and sigma_b >= 0):
        raise ValueError(f"σ_b must be ≥ 0, got {sigma_b!r}")


def _in_log(x, log: bool) -> tuple[np.ndarray, np.ndarray]:
    """ln x from x (or x itself when it already is ln x), and the Jacobian dℓ/dx (1 with log=True)."""
    x = np.asarray(x, float)
    if log:
        return x, np.ones_like(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        ell = np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), -np.inf)
        jac = np.where(x > 0, 1.0 / np.where(x > 0, x, 1.0), 0.0)
    return ell, jac


# ---------------------------------------------------------------------------------------------------
# Theory: public functions
# ---------------------------------------------------------------------------------------------------

def theory_density(x, phi: str | Activation, sigma_w: float, sigma_b: float, depth: int,
                   weights: str = "orthogonal", *, log: bool = False) -> np.ndarray:
    """Density of the continuous part of the eigenvalue law of JJᵀ at x, by free probability.

    ``S_{JJᵀ}(m) = [S_{WᵀW}(m) S_{D²}(m)]^L`` (Pennington, Schoenholz & Ganguli 2017, Sec. 2–3, and 2018,
    Sec. 3; THEORY.md §3), solved as described in the module docstring. Point masses (zero eigenvalues
    of ReLU-like nets, the top eigenvalue of orthogonal Bernoulli nets with L(1 − p) < 1) are *not* in
    this density; :func:`theory_atoms` returns them, and density plus atoms integrate to 1.

    Parameters
    ----------
    x : array_like
        Eigenvalues λ of JJᵀ (or ln λ with ``log=True``). λ ≤ 0 gives 0.
    phi : str or Activation
    sigma_w, sigma_b : float
        Weight scale (> 0) and bias standard deviation (≥ 0); q* is their fixed point.
    depth : int
        Number of layers L ≥ 1.
    weights : {"orthogonal", "gaussian"}
    log : bool
        Take and return everything in ln λ: the result is then the density of ln λ, λ ρ(λ). Use it
        where λ leaves the float64 range (χ^L beyond 10^±300 at large depth).

    Returns
    -------
    numpy.ndarray
        ρ(λ) ≥ 0, finite, same shape as x.

    Raises
    ------
    NoFixedPointError
        φ is not homogeneous and has no finite fixed point q* at these σ_w, σ_b.
    """
    ell, jac = _in_log(x, log)
    return _spectrum(phi, sigma_w, sigma_b, depth, weights).log_density(ell) * jac


def theory_atoms(phi: str | Activation, sigma_w: float, sigma_b: float, depth: int,
                 weights: str = "orthogonal", *, log: bool = False) -> tuple[Atom, ...]:
    """The point masses of the eigenvalue law of JJᵀ, which :func:`theory_density` leaves out.

    * At 0, mass ``P(φ'(h)² = 0)`` (1 − p for the Bernoulli class): J = W^L D^{L−1} ⋯ W^1 D^0 has the rank
      of one D — generic subspaces of dimension pN intersect the kernels trivially — so the zero
      eigenvalues are (1 − p)N at every depth, not 1 − p^L.
    * Orthogonal weights only: at σ_w^{2L} c^L, mass 1 − L(1 − P(φ'² = c)) when positive (Belinschi 2003
      for free multiplicative convolution), e.g. p ≥ 1 − 1/L for the Bernoulli class, or the linear
      network's single atom at σ_w^{2L}; L = 1 ELU/SELU have one at σ_w² φ'(0⁺)².

    Returns
    -------
    tuple of Atom
        ``location`` is λ (ln λ with ``log=True``; −inf for the atom at 0), ``mass`` its probability.
    """
    model = _spectrum(phi, sigma_w, sigma_b, depth, weights).model
    return tuple(Atom(loc if log else _exp(loc), mass) for loc, mass in model.atoms)


def theory_cdf(x, phi: str | Activation, sigma_w: float, sigma_b: float, depth: int,
               weights: str = "orthogonal", *, log: bool = False) -> np.ndarray:
    """P(λ ≤ x) under the theory law of the eigenvalues of JJᵀ, atoms included.

    The continuous part is integrated from the top edge down (600 nodes per interval of the support,
    crowded at its edges), so this is what a histogram's bin heights should be compared with: bin mass =
    CDF(right) − CDF(left), free of the spikes a point-sampled density shows at singular edges.
    """
    ell, _ = _in_log(x, log)
    return _spectrum(phi, sigma_w, sigma_b, depth, weights).cdf(ell)


def theory_edges(phi: str | Activation, sigma_w: float, sigma_b: float, depth: int,
                 weights: str = "orthogonal", *, log: bool = False) -> tuple[float, float]:
    """(λ_min, λ_max): the ends of the support of the eigenvalue law of JJᵀ, atoms included.

    λ_max is the largest eigenvalue of JJᵀ in the N → ∞ limit (the square of the largest singular
    value of J); it is the first local minimum of x(w) coming down from w = ∞ on the real axis (where
    dx/dw = 0 the square-root edge sits), or the limit at the end of that branch. λ_min is 0 when the
    support reaches 0 (Gaussian W, any atom at 0), else the matching local maximum.
    """
    lo, hi = _spectrum(phi, sigma_w, sigma_b, depth, weights).edges()
    return (lo, hi) if log else (_exp(lo), _exp(hi))


def theory_support(phi: str | Activation, sigma_w: float, sigma_b: float, depth: int,
                   weights: str = "orthogonal", *, log: bool = False) -> tuple[tuple[float, float], ...]:
    """The intervals (λ_lo, λ_hi) where :func:`theory_density` is positive, ascending (ln λ with
    ``log=True``; λ_lo = 0 where the density reaches down to 0). The gaps between them — e.g. between
    the continuous part and the top atom of an orthogonal Bernoulli net — carry no continuous mass."""
    support = _spectrum(phi, sigma_w, sigma_b, depth, weights).support
    return tuple((a, b) if log else (_exp(a), _exp(b)) for a, b in support)


def theory_moments(phi: str | Activation, sigma_w: float, sigma_b: float, depth: int,
                   weights: str = "orthogonal") -> tuple[float, float]:
    """Mean and variance of the eigenvalues of JJᵀ: (χ^L, L (μ₂/μ₁² − 1 − s₁) χ^{2L}).

    From the first two terms of the S-transform: ``S(m) = 1/m₁ + (m₁² − m₂)/m₁³ m + O(m²)`` for a law of
    moments m₁, m₂, and S-transforms multiply over the L free layers, each of mean χ = σ_w² μ₁ and
    normalised variance ``μ₂/μ₁² − 1 − s₁`` (s₁ = −1 for Gaussian W: Marchenko–Pastur has normalised
    variance 1; s₁ = 0 for orthogonal W). Normalised variances add under free products, so
    ``Var = L (μ₂/μ₁² − 1 − s₁) χ^{2L}``, which at χ = 1 is the PSG 2017 formula
    ``σ²_{JJᵀ} = L (μ₂/μ₁² − 1 − s₁)``. Values beyond the float64 range are inf (or 0).
    """
    act = activations.resolve(phi)
    _check_theory_args(sigma_w, sigma_b, depth, weights)
    layer = _layer(act, float(sigma_w), float(sigma_b))
    if layer.mu1 <= 0.0:
        return 0.0, 0.0
    s1 = -1.0 if weights == "gaussian" else 0.0
    spread = max(layer.mu2 / layer.mu1**2 - 1.0 - s1, 0.0)
    log_chi = math.log(layer.chi)
    return _exp(depth * log_chi), depth * spread * _exp(2 * depth * log_chi)


def universality_density(x, kind: str, sigma0_sq: float = 0.25, *, log: bool = False) -> np.ndarray:
    """The limiting eigenvalue densities of JJᵀ of the two universality classes (Pennington et al. 2018).

    Depth L → ∞ at criticality with the variance of the spectrum held at σ₀² (their Fig. 4, σ₀² = ¼):
    the per-layer normalised variance must fall like σ₀²/L, which the orthogonal nets of the paper reach
    by tuning the fixed point (q* → 0 for smooth φ; p → 1 for the Bernoulli class).

    * ``"bernoulli"``: each layer has ``S = p(1 + m)/(m + p)`` with σ_w² p = 1 and L(1 − p)/p = σ₀², so
      ``S^L → exp(−σ₀² m/(1 + m))``: every free cumulant of a Bernoulli(p) d is O(1 − p), and all of them
      survive the product. For σ₀² < 1 this law has a point mass 1 − σ₀² at e^{σ₀²} (the limit of the
      atom 1 − L(1 − p) at σ_w^{2L} of :func:`theory_atoms`), returned by :func:`universality_atoms`;
      the density here is its continuous part, on (0, e σ₀²] (the edge where dx/dm = 0, m = −1/(1 − σ₀²)).
    * ``"smooth"``: d = φ'(h)² concentrates at q* → 0 with normalised variance ~ q*², higher free
      cumulants ~ q*³ …, so only the variance survives: ``S^L → exp(−σ₀² m)`` (the free positive
      multiplicative Brownian motion at time σ₀², rescaled to mean 1).

    Both laws have mean 1 and variance σ₀²; they differ from the third moment on. No atoms.
    """
    ell, jac = _in_log(x, log)
    return _universal(kind, sigma0_sq).log_density(ell) * jac


def universality_atoms(kind: str, sigma0_sq: float = 0.25, *, log: bool = False) -> tuple[Atom, ...]:
    """The point masses of the limiting law: 1 − σ₀² at e^{σ₀²} for the Bernoulli class (σ₀² < 1)."""
    model = _universal(kind, sigma0_sq).model
    return tuple(Atom(loc if log else _exp(loc), mass) for loc, mass in model.atoms)


def universality_cdf(x, kind: str, sigma0_sq: float = 0.25, *, log: bool = False) -> np.ndarray:
    """P(λ ≤ x) under the limiting law, atoms included."""
    ell, _ = _in_log(x, log)
    return _universal(kind, sigma0_sq).cdf(ell)


def _universal(kind: str, sigma0_sq: float) -> _Spectrum:
    if kind not in UNIVERSALITY_CLASSES:
        raise ValueError(f"kind must be one of {', '.join(UNIVERSALITY_CLASSES)}, got {kind!r}")
    sigma0_sq = float(sigma0_sq)
    if not (math.isfinite(sigma0_sq) and sigma0_sq > 0):
        raise ValueError(f"σ₀² must be positive, got {sigma0_sq!r}")
    return _spectrum_cache.get(("universal", kind, sigma0_sq),
                               lambda: _Spectrum(_UniversalModel(kind, sigma0_sq)))


def _exp(v: float) -> float:
    if v > 709.78:
        return math.inf
    return math.exp(v) if v > -745.2 else 0.0


# ---------------------------------------------------------------------------------------------------
# Simulation: a real torch network
# ---------------------------------------------------------------------------------------------------

def jacobian_spectra(phi: str | Activation, sigma_w: float, sigma_b: float, depth: int, width: int,
                     weights: str = "orthogonal", seed: int = 0, device=None,
                     depths: Iterable[int] | None = None, *, log: bool = False
                     ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(l, eigenvalues of J_l J_lᵀ)`` at depths l = 1, 2, 4, …, L (or ``depths``) as J grows.

    The network: ``h^l = W^l φ(h^{l−1}) + b^l`` with W^l Gaussian N(0, σ_w²/N) or σ_w × Haar orthogonal
    (QR of a Gaussian matrix, signs of R's diagonal moved into Q: Mezzadri 2007), b^l ~ N(0, σ_b²), and
    h^0 ~ N(0, q*) per unit so every layer sits at the fixed point. ``J_l = W^l D^{l−1} J_{l−1}`` with
    D = diag φ'(h) (φ' by torch autograd through ``Activation.torch``), in float32 on ``device``.

    Numerics: orthogonal layers never form Q; ``ormqr`` applies the Householder reflectors from
    ``geqrf`` directly (half the flops of QR + matmul). J is rescaled to unit RMS after every layer and
    its log-scale kept apart, so χ^L far outside float32 neither overflows nor underflows; positively
    homogeneous φ (ReLU, linear) likewise keep h at unit RMS, scaling the biases to match, which is
    exact for them. The eigen-solve forms JJᵀ in float64 from the float32 J (BLAS ``syrk`` in blocks)
    and calls LAPACK's ``syevr`` in place: about 0.15 s at N = 1000, and eigenvalues accurate to
    1e-16 λ_max instead of float32's 1e-7 λ_max — a log-x histogram of a deep ReLU net spans many
    decades. The float32 product itself limits trust to λ ≳ 1e-12 λ_max; exact zeros (ReLU) come out
    near 1e-16 λ_max. Memory: J, one spare buffer and the Householder factors (factored in place) —
    three N × N float32 matrices — and at each eigen-solve J plus one N × N float64 matrix.

    Stopping the iteration cancels the computation. The same ``seed`` gives the same network whatever
    ``depths`` is, so ``jacobian_spectrum(…, depth=l)`` equals the spectrum yielded at l.

    Parameters
    ----------
    log : bool
        Yield ln λ (−inf for exact zeros) instead of λ; for spectra outside the float64 range.

    Raises
    ------
    ValueError
        Bad arguments; :class:`NoFixedPointError` when φ has no finite q* (see :func:`theory_density`).
    """
    act = activations.resolve(phi)
    _check_theory_args(sigma_w, sigma_b, depth, weights)
    if not (isinstance(width, int | np.integer) and width >= 1):
        raise ValueError(f"width must be a whole number ≥ 1, got {width!r}")
    wanted = _depth_schedule(depth, depths)
    q_in = _effective_q(act, float(sigma_w), float(sigma_b))
    return _simulate(act, float(sigma_w), float(sigma_b), int(depth), int(width), weights, int(seed),
                     device, wanted, log, q_in)


def _depth_schedule(depth: int, depths: Iterable[int] | None) -> list[int]:
    if depths is None:
        out = {1 << k for k in range(depth.bit_length()) if (1 << k) <= depth}
        out.add(int(depth))
        return sorted(out)
    out = sorted({int(d) for d in depths})
    if not out or out[0] < 1 or out[-1] > depth:
        raise ValueError(f"depths must lie in [1, {depth}], got {out}")
    return out


def _simulate(act, sigma_w, sigma_b, depth, width, weights, seed, device, wanted, log, q_in):
    import torch

    dev = devices.resolve(device)
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    n = width
    h = torch.randn(n, generator=gen, device=dev).mul_(math.sqrt(q_in))
    # J, its spare buffer and the Householder factors are column-major (transposed views), the layout
    # LAPACK works in: torch then factors and applies them without copying N × N matrices around
    J = torch.eye(n, device=dev).T
    buf: torch.Tensor | None = None
    log_j = 0.0        # J_true = e^{log_j} J
    log_h = 0.0        # h_true = e^{log_h} h (homogeneous φ only)
    dead = False       # J is exactly zero
    wanted_set = set(wanted)
    for layer in range(1, depth + 1):
        d = _dphi(act, h)
        x = act.torch(h)
        if buf is None:
            buf = torch.empty(n, n, device=dev).T
        if weights == "orthogonal":
            a = torch.randn(n, n, generator=gen, device=dev).T     # a Gaussian matrix's transpose is one
            tau = torch.empty(n, device=dev)
            torch.geqrf(a, out=(a, tau))                           # in place: no second N × N matrix
            sign = torch.sgn(torch.diagonal(a))
            sign[sign == 0] = 1.0
            J.mul_((sigma_w * sign * d)[:, None])
            torch.ormqr(a, tau, J, out=buf)
            h_new = torch.ormqr(a, tau, (sigma_w * sign * x)[:, None]).squeeze(1)
            del a, tau
        else:
            W = torch.randn(n, n, generator=gen, device=dev).T.mul_(sigma_w / math.sqrt(n))
            J.mul_(d[:, None])
            torch.mm(W, J, out=buf)
            h_new = W @ x
            del W
        b = torch.randn(n, generator=gen, device=dev)
        h = h_new + b.mul_(sigma_b * _exp(-log_h))
        J, buf = buf, J
        if not dead:
            r = float(torch.linalg.vector_norm(J)) / math.sqrt(n)
            if r > 0.0 and math.isfinite(r):
                J.div_(r)
                log_j += math.log(r)
            elif r == 0.0:
                dead = True
        if act.homogeneous:
            rh = float(torch.linalg.vector_norm(h)) / math.sqrt(n)
            if rh > 0.0 and math.isfinite(rh):
                h.div_(rh)
                log_h += math.log(rh)
        if layer in wanted_set:
            buf = None      # the spare buffer is not needed while the eigen-solve holds its float64 copies
            yield layer, _eigenvalues(J, log_j, log, dead)


def _dphi(act: Activation, h):
    """φ'(h) of the network's own torch φ, by autograd (φ acts elementwise)."""
    import torch

    with torch.enable_grad():
        x = h.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(act.torch(x).sum(), x)
    return g


def _eigenvalues(J, log_scale: float, log: bool, dead: bool) -> np.ndarray:
    """Eigenvalues of e^{2 log_scale} J Jᵀ, ascending, from a float64 Gram matrix."""
    import torch
    from scipy import linalg
    from scipy.linalg.blas import dsyrk as _dsyrk

    n = J.shape[0]
    if dead:
        lam = np.zeros(n)
    elif J.device.type == "cpu":
        # JJᵀ accumulated in float64 by rank-256 updates (BLAS syrk, in place, lower triangle), so
        # no float64 copy of the whole J is ever held
        j = J.numpy()
        gram = np.zeros((n, n), order="F")
        for start in range(0, n, 256):
            block = np.asfortranarray(j[:, start:start + 256], dtype=np.float64)
            gram = _dsyrk(1.0, block, beta=1.0, c=gram, overwrite_c=1, lower=1)
        lam = linalg.eigvalsh(gram, lower=True, overwrite_a=True, check_finite=False, driver="evr")
    else:
        j64 = J.to(torch.float64)
        lam = torch.linalg.eigvalsh(j64 @ j64.T).cpu().numpy()
    lam = np.clip(lam, 0.0, None)
    if log:
        with np.errstate(divide="ignore"):
            return np.log(lam) + 2.0 * log_scale
    with np.errstate(over="ignore", under="ignore"):
        return lam * math.exp(2.0 * log_scale) if abs(2.0 * log_scale) < 700 else \
            np.exp(np.log(np.where(lam > 0, lam, 1.0)) + 2.0 * log_scale) * (lam > 0)


def jacobian_spectrum(phi: str | Activation, sigma_w: float, sigma_b: float, depth: int, width: int,
                      weights: str = "orthogonal", seed: int = 0, device=None, *,
                      log: bool = False) -> np.ndarray:
    """Eigenvalues of JJᵀ (ascending, float64, length ``width``) of one real depth-L network.

    J = ∂h^L/∂h^0 = W^L D^{L−1} ⋯ W^1 D^0 at an input at q*; see :func:`jacobian_spectra` for the
    network, the numerics and ``log``.
    """
    last = None
    for _, lam in jacobian_spectra(phi, sigma_w, sigma_b, depth, width, weights, seed, device,
                                   depths=(depth,), log=log):
        last = lam
    return last


__all__ = [
    "WEIGHTS", "UNIVERSALITY_CLASSES", "SpectraParams", "Atom", "NoFixedPointError",
    "jacobian_spectrum", "jacobian_spectra", "theory_density", "theory_atoms", "theory_cdf",
    "theory_edges", "theory_support", "theory_moments", "critical_sigma_w",
    "universality_density", "universality_atoms", "universality_cdf",
]
