"""Mean-field statistics of one layer: q*, the law of d = φ'(h)², χ, and the critical σ_w."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from core import activations
from core.activations import Activation
from core.gaussian import Z_MAX, expect
from core.spectra.cache import _Cache

_LAW_CELLS = 48        # a smooth law's cells carry ≤ 1/48 of the mass and ≤ 1/48 of the range of d


class NoFixedPointError(ValueError):
    """The preactivation variance grows without bound, so no input sits at a fixed point q*."""

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


def critical_sigma_w(sigma_b, phi=None, mu2: float = 1.0) -> float:
    """σ_w on the order-to-chaos line, χ = σ_w² E_z[φ'(√q* z)²] = 1 (Poole et al. 2016; THEORY.md §2).

    q* is the fixed point at that σ_w; for φ whose variance diverges before χ reaches 1, the q → ∞
    limit of χ is used. Searched on σ_w ∈ [0.01, 100]; the smallest crossing is returned.

    Arguments in the order of :func:`core.propagation.critical_sigma_w`, ``(sigma_b, phi, mu2)``; the
    earlier ``(phi, sigma_b)`` is still understood. The spectra engine has no noise: ``mu2`` must be 1.

    Raises
    ------
    ValueError
        If χ = 1 is not reached on that range, or only where q* diverges (softplus: χ < σ_w²/2 < 1
        wherever q* is finite). Sigmoid's σ_w ≈ 10 is found, though outside the panel's slider.
    """
    from scipy import optimize

    if isinstance(sigma_b, str | Activation):     # the earlier order, (phi, sigma_b)
        sigma_b, phi = phi, sigma_b
    if phi is None:
        raise TypeError("critical_sigma_w needs σ_b and φ")
    if float(mu2) != 1.0:
        raise ValueError(f"the Jacobian spectra have no noise: mu2 must be 1, got {mu2}")
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
