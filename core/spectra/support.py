"""The real axis: gaps of the support and the spectral edges."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from core.spectra.models import _LayerModel, _Model


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
