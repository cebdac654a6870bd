"""Models: ln x as an explicit function of one complex unknown (THEORY.md §3, S-transforms)."""

from __future__ import annotations

import cmath
import math

import numpy as np

from core.spectra.layer import _Law

_NAN = complex(math.nan, math.nan)


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
