"""The complex plane: continuation of the physical solution, the density, its CDF and the cached spectra."""

from __future__ import annotations

import cmath
import math

import numpy as np

from core import activations
from core.pace import pace
from core.spectra.cache import _Cache
from core.spectra.layer import _act_key, _layer
from core.spectra.models import _LayerModel, _Model
from core.spectra.params import WEIGHTS
from core.spectra.support import _gaps, _support

DENSE_POINTS = 4096
"""More points than this in one interval of the support are interpolated from a fixed set of solved nodes."""
DENSE_NODES = 1200
THETA = 1e-9           # phase of the complex target ln x + iθ: the "ε" of THEORY.md, relative to x


def _newton(model: _Model, v: complex, target: complex, maxit: int = 24):
    """Damped Newton on F(v) = target; (v, u, dF/dv) at the solution, or None.

    Converged once the Newton step is below ``model.step_tol(v)``: the error after that step is
    O(step²), so it is taken without another evaluation, u moving along with it (du/dv = dm/dv).
    """
    F, dF, u, dm = model.evaluate(v)
    r = F - target
    floor = 1e-13 * (1.0 + abs(target.real))
    for _ in range(maxit):
        pace()
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
        pace()
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
        dens = np.zeros(e.shape)
        for a, b in self.support:
            sel = (e > a) & (e < b)
            if not sel.any():
                continue
            if np.count_nonzero(sel) > DENSE_POINTS:
                dens[sel] = self._interpolated(e[sel], a, b, theta)
            else:
                dens[sel] = self._solved(e[sel], theta)
        out[inside] = dens
        return out

    def _solved(self, e: np.ndarray, theta: float) -> np.ndarray:
        """The density of ln λ at each point by continuation (~1 ms a point)."""
        cont = _solve(self.model, e, theta) - _atom_part(self.model, e, theta)
        dens = -(np.exp(-1j * theta) * cont).imag / math.pi
        return np.clip(np.nan_to_num(dens, nan=0.0), 0.0, None)

    def _interpolated(self, e: np.ndarray, a: float, b: float, theta: float) -> np.ndarray:
        """The same for many points of one interval (a, b) of the support: solved on the nodes of
        :func:`_quadrature` (``DENSE_NODES`` in the top window, crowded at both edges as (1 − t)⁵, where a
        square-root or inverse-square-root edge sits), then interpolated monotonically (PCHIP) in ℓ.
        Agrees with :meth:`_solved` to 2e-3 of the density's maximum (measured ≤ 5e-4 for tanh, erf,
        ReLU and hard tanh, both weight types, L = 1 … 64), in ~1 s for any number of points."""
        from scipy.interpolate import PchipInterpolator

        lo = max(a, float(e.min()) - 1.0)
        grid, _ = _quadrature(lo, b, DENSE_NODES)
        grid = np.unique(grid)
        psi = self._solved(grid, theta)
        return np.clip(PchipInterpolator(grid, psi, extrapolate=True)(e), 0.0, None)

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
        # λ = 0 (ℓ = −inf) lies below every continuous mass, not only below the integrated window
        # [bottom − 1, b] (bottom: the smallest finite ℓ asked for): only an atom at 0 is at or below it.
        at_zero = sum(mass for loc, mass in self.model.atoms if loc == -math.inf)
        return np.where(ell == -math.inf, at_zero, np.clip(1.0 - above, 0.0, 1.0))


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
