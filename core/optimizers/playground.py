"""The 2-D playground: optimiser paths on small test functions.

Every path is torch.optim's update written out (tests check a few steps of each against torch.optim
itself in float64 to 1e−10), so the fast path is the library. A path is a loop over plain Python floats
with the surface's gradient written by hand: for two coordinates that is ~20× faster than numpy, whose
per-call cost (~1 µs, several times more on a loaded machine) would dominate the ~30 arithmetic
operations of a step. The polynomial coefficients of each surface (``Surface.coef``) serve the contours
and the tests, which check the hand-written gradients against them.

Surfaces
--------
- ``quadratic``: ½ θᵀAθ, eigenvalues 1 and 1/κ, eigenbasis turned by an angle.
- ``banana``: (1 − x)² + 20(3y − x²)² (Goh 2017's momentum figure).
- ``beale``: (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)², minimum at (3, ½).
- ``saddle``: ½x² − ½y² + ¼y⁴: a saddle at 0, minima at (0, ±1).
- ``lessard``: the strongly convex, L-smooth f of Lessard, Recht & Packard (2016, §4.6), μ = 1, L = 25,
  scaled by 1/25 (so L = 1 like the quadratic), plus ½y²/25. Heavy ball with Polyak's tuned α, β for
  [μ, L] cycles on it instead of converging.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.optimizers.library import NAMES

SURFACES = ("quadratic", "banana", "beale", "saddle", "lessard")
LABELS = {"quadratic": "quadratic (κ, angle)", "banana": "Goh's banana", "beale": "Beale", "saddle": "saddle",
          "lessard": "Lessard's counter-example"}
BOUND = 1e6
"""A path further than this from the origin has diverged: it is cut there, with a note."""

ADAM_BETAS = (0.9, 0.999)
EPS = {"adagrad": 1e-10, "rmsprop": 1e-8, "adam": 1e-8}
RMSPROP_ALPHA = 0.99


def _poly_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Product of two polynomials in x, y given as coefficient matrices c[i, j] of xⁱyʲ."""
    out = np.zeros((a.shape[0] + b.shape[0] - 1, a.shape[1] + b.shape[1] - 1))
    for (i, j), c in np.ndenumerate(a):
        if c:
            out[i:i + b.shape[0], j:j + b.shape[1]] += c * b
    return out


def _poly(terms: dict[tuple[int, int], float]) -> np.ndarray:
    shape = (max(i for i, _ in terms) + 1, max(j for _, j in terms) + 1)
    out = np.zeros(shape)
    for (i, j), c in terms.items():
        out[i, j] += c
    return out


def _add(*polys: np.ndarray) -> np.ndarray:
    shape = tuple(max(p.shape[a] for p in polys) for a in (0, 1))
    out = np.zeros(shape)
    for p in polys:
        out[:p.shape[0], :p.shape[1]] += p
    return out


@dataclass(frozen=True)
class Surface:
    """A 2-D test function: polynomial ``coef`` (c[i, j] of xⁱyʲ) plus, for Lessard's, a piecewise term."""

    name: str
    coef: np.ndarray
    minimum: tuple[float, float]
    view: tuple[float, float, float, float]     # x0, x1, y0, y1
    start: tuple[float, float]
    spectrum: tuple[float, float] | None = None  # [μ, L] of the Hessian where known (tuned settings)
    piecewise: bool = False
    grad2: object = None                         # (x, y) -> (∂f/∂x, ∂f/∂y) on Python floats

    @property
    def f_min(self) -> float:
        return float(self.value(np.array([self.minimum[0]]), np.array([self.minimum[1]]))[0])

    def value(self, x, y) -> np.ndarray:
        """f at points (x, y) of equal (or broadcasting) shape: Horner's rule in y, then in x."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        out = 0.0
        for row in self.coef[::-1]:
            inner = 0.0
            for c in row[::-1]:
                inner = inner * y + c
            out = out * x + inner
        out = np.broadcast_to(out, np.broadcast_shapes(x.shape, y.shape)).astype(float)
        if self.piecewise:
            out = out + _lessard_extra(x)
        return out

    def gradient_coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """Coefficient matrices of ∂f/∂x and ∂f/∂y on the same (padded) monomial basis as ``coef``."""
        c = self.coef
        dx = np.zeros_like(c)
        dy = np.zeros_like(c)
        dx[:-1, :] = c[1:, :] * np.arange(1, c.shape[0])[:, None]
        dy[:, :-1] = c[:, 1:] * np.arange(1, c.shape[1])[None, :]
        return dx, dy

    def gradient(self, points) -> np.ndarray:
        """∇f at points of shape (…, 2)."""
        p = np.asarray(points, dtype=float)
        dx, dy = self.gradient_coefficients()
        px = p[..., :1] ** np.arange(self.coef.shape[0])
        py = p[..., 1:] ** np.arange(self.coef.shape[1])
        g = np.stack([np.einsum("...i,ij,...j->...", px, d, py) for d in (dx, dy)], axis=-1)
        if self.piecewise:
            g[..., 0] += _lessard_extra_grad(p[..., 0])
        return g


# Lessard et al. (2016) eq. (4.13), over 25 (so L = 1): h(x) = x²/2 for x < 1, then x²/50 + 24x/25 − 12/25
# on [1, 2), x²/2 − 24x/25 + 36/25 beyond. Written as x²/2 − (24/25)·r(x), r piecewise quadratic; the
# polynomial part carries x²/2 and the piecewise part −(24/25)·r.
def _lessard_extra(x):
    t = np.clip(x - 1.0, 0.0, 1.0)
    # ∫ of clip(s − 1, 0, 1) ds from 1 to x: t²/2 on [1, 2], then ½ + (x − 2) beyond
    integral = 0.5 * t * t + np.maximum(x - 2.0, 0.0)
    return -(24.0 / 25.0) * integral


def _lessard_extra_grad(x):
    return -(24.0 / 25.0) * np.clip(x - 1.0, 0.0, 1.0)


def _banana_grad(x, y):
    t = 3.0 * y - x * x
    return -2.0 * (1.0 - x) - 80.0 * x * t, 120.0 * t


def _beale_grad(x, y):
    y2 = y * y
    y3 = y2 * y
    t1 = 1.5 - x + x * y
    t2 = 2.25 - x + x * y2
    t3 = 2.625 - x + x * y3
    return (2.0 * (t1 * (y - 1.0) + t2 * (y2 - 1.0) + t3 * (y3 - 1.0)),
            2.0 * x * (t1 + 2.0 * y * t2 + 3.0 * y2 * t3))


def _lessard_grad(x, y):
    return x - (24.0 / 25.0) * min(max(x - 1.0, 0.0), 1.0), y / 25.0


def surface(name: str, kappa: float = 10.0, angle: float = 0.0) -> Surface:
    """The playground surface ``name`` (one of :data:`SURFACES`); κ and angle (degrees) shape the quadratic."""
    if name == "quadratic":
        if not (math.isfinite(kappa) and kappa >= 1):
            raise ValueError(f"kappa: need a finite κ ≥ 1, got {kappa!r}")
        t = math.radians(angle)
        c, s = math.cos(t), math.sin(t)
        mu = 1.0 / kappa
        # A = R diag(1, μ) Rᵀ with R the rotation by t
        a11, a12, a22 = c * c + mu * s * s, c * s * (1 - mu), s * s + mu * c * c
        coef = _poly({(2, 0): a11 / 2, (1, 1): a12, (0, 2): a22 / 2})

        def grad2(x, y):
            return a11 * x + a12 * y, a12 * x + a22 * y
        return Surface(name, coef, (0.0, 0.0), (-1.6, 1.6, -1.2, 1.2), (-1.4, 0.9), (mu, 1.0), grad2=grad2)
    if name == "banana":
        inner = _poly({(0, 1): 3.0, (2, 0): -1.0})
        coef = _add(_poly_mul(_poly({(0, 0): 1.0, (1, 0): -1.0}), _poly({(0, 0): 1.0, (1, 0): -1.0})),
                    20.0 * _poly_mul(inner, inner))
        return Surface(name, coef, (1.0, 1.0 / 3.0), (-1.5, 1.7, -0.6, 1.2), (-1.2, 0.9), grad2=_banana_grad)
    if name == "beale":
        parts = []
        for a, p in ((1.5, 1), (2.25, 2), (2.625, 3)):
            inner = _poly({(0, 0): a, (1, 0): -1.0, (1, p): 1.0})
            parts.append(_poly_mul(inner, inner))
        return Surface(name, _add(*parts), (3.0, 0.5), (-4.5, 4.5, -4.5, 4.5), (1.0, 1.5), grad2=_beale_grad)
    if name == "saddle":
        coef = _poly({(2, 0): 0.5, (0, 2): -0.5, (0, 4): 0.25})
        return Surface(name, coef, (0.0, 1.0), (-2.0, 2.0, -1.8, 1.8), (1.8, 0.02),
                       grad2=lambda x, y: (x, y * y * y - y))
    if name == "lessard":
        coef = _poly({(2, 0): 0.5, (0, 2): 0.5 / 25.0})
        return Surface(name, coef, (0.0, 0.0), (-4.0, 4.0, -3.0, 3.0), (3.3, 2.0), (1.0 / 25.0, 1.0),
                       piecewise=True, grad2=_lessard_grad)
    raise ValueError(f"function: unknown {name!r}; choose from {', '.join(SURFACES)}")


@dataclass(frozen=True)
class Settings:
    """The hyper-parameters of one playground optimiser (torch.optim's names)."""

    name: str
    lr: float
    momentum: float = 0.0
    b0: float = 0.1
    noisy: bool = True


@dataclass(frozen=True)
class Paths:
    """K optimiser paths: ``xy[k, :length[k]]`` are finite points, ``loss[k, :length[k]]`` = f − f* there.

    ``diverged[k]`` is the step at which path k left the bound (−1 when it did not).
    """

    names: tuple[str, ...]
    xy: np.ndarray
    loss: np.ndarray
    length: np.ndarray
    diverged: np.ndarray


def _path(grad2, x: float, y: float, s: Settings, lr: list, noise: list | None, xs: list, ys: list) -> int:
    """Fill ``xs``/``ys`` (length steps + 1) with one optimiser's path; the number of finite points kept.

    The updates are torch.optim's (SGD; SGD with momentum, dampening 0; Nesterov as torch writes it;
    Adagrad; RMSprop; Adam with bias correction) and Ward et al.'s AdaGrad-Norm, step for step. One loop
    per rule: a branch inside the loop would cost as much as the arithmetic.
    """
    sqrt = math.sqrt
    n, beta = s.name, s.momentum
    xs[0], ys[0] = x, y
    zero = [(0.0, 0.0)] * len(lr)
    noise = zero if noise is None else noise
    k = 0
    if n in ("gd", "sgd"):
        for k, (a, (nx, ny)) in enumerate(zip(lr, noise, strict=True)):
            gx, gy = grad2(x, y)
            x -= a * (gx + nx)
            y -= a * (gy + ny)
            if not (abs(x) <= BOUND and abs(y) <= BOUND):     # NaN fails too
                return k + 1
            xs[k + 1], ys[k + 1] = x, y
    elif n in ("heavy_ball", "nesterov"):
        bx = by = 0.0
        look = n == "nesterov"
        for k, (a, (nx, ny)) in enumerate(zip(lr, noise, strict=True)):
            gx, gy = grad2(x, y)
            gx += nx
            gy += ny
            bx = beta * bx + gx
            by = beta * by + gy
            if look:
                x -= a * (gx + beta * bx)
                y -= a * (gy + beta * by)
            else:
                x -= a * bx
                y -= a * by
            if not (abs(x) <= BOUND and abs(y) <= BOUND):
                return k + 1
            xs[k + 1], ys[k + 1] = x, y
    elif n in ("adagrad", "rmsprop"):
        keep, new = (1.0, 1.0) if n == "adagrad" else (RMSPROP_ALPHA, 1.0 - RMSPROP_ALPHA)
        eps = EPS[n]
        vx = vy = 0.0
        for k, (a, (nx, ny)) in enumerate(zip(lr, noise, strict=True)):
            gx, gy = grad2(x, y)
            gx += nx
            gy += ny
            vx = keep * vx + new * gx * gx
            vy = keep * vy + new * gy * gy
            x -= a * gx / (sqrt(vx) + eps)
            y -= a * gy / (sqrt(vy) + eps)
            if not (abs(x) <= BOUND and abs(y) <= BOUND):
                return k + 1
            xs[k + 1], ys[k + 1] = x, y
    elif n == "adam":
        b1, b2 = ADAM_BETAS
        eps = EPS[n]
        mx = my = vx = vy = 0.0
        for k, (a, (nx, ny)) in enumerate(zip(lr, noise, strict=True)):
            gx, gy = grad2(x, y)
            gx += nx
            gy += ny
            mx += (1.0 - b1) * (gx - mx)          # torch's lerp
            my += (1.0 - b1) * (gy - my)
            vx = b2 * vx + (1.0 - b2) * gx * gx
            vy = b2 * vy + (1.0 - b2) * gy * gy
            c2 = sqrt(1.0 - b2 ** (k + 1))
            step = a / (1.0 - b1 ** (k + 1))
            x -= step * mx / (sqrt(vx) / c2 + eps)
            y -= step * my / (sqrt(vy) / c2 + eps)
            if not (abs(x) <= BOUND and abs(y) <= BOUND):
                return k + 1
            xs[k + 1], ys[k + 1] = x, y
    elif n == "adagrad_norm":
        b2 = s.b0 * s.b0
        for k, (a, (nx, ny)) in enumerate(zip(lr, noise, strict=True)):
            gx, gy = grad2(x, y)
            gx += nx
            gy += ny
            b2 += gx * gx + gy * gy
            b = sqrt(b2)
            x -= a * gx / b
            y -= a * gy / b
            if not (abs(x) <= BOUND and abs(y) <= BOUND):
                return k + 1
            xs[k + 1], ys[k + 1] = x, y
    else:
        raise ValueError(f"optimizer: unknown name {n!r}; choose from {', '.join(NAMES)}")
    return len(lr) + 1


def paths(surf: Surface, start: Sequence[float], settings: Sequence[Settings], steps: int, *,
          noise: float = 0.0, schedule: str = "constant", seed: int = 0) -> Paths:
    """The paths of every optimiser in ``settings`` from ``start`` on ``surf``, ``steps`` steps each.

    Parameters
    ----------
    noise
        σ of Gaussian gradient noise ``g + σξ`` (ξ ~ N(0, I), the same draws for every noisy optimiser:
        common random numbers make the comparison fair); optimisers with ``noisy=False`` (GD) see none.
    schedule
        η_k = η · ``core.training.schedule_factor(schedule, steps)(k)``, the training layer's definition.

    A path that leaves |x|, |y| ≤ ``BOUND`` (or turns NaN) is cut there: ``length`` counts its finite
    points, ``diverged`` is the step it left at (−1 when it did not), and ``xy`` is NaN beyond.
    """
    from core.training import schedule_factor

    steps = int(steps)
    if not 1 <= steps <= 1_000_000:
        raise ValueError(f"steps: {steps} is outside [1, 1000000]")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise: need a finite σ ≥ 0, got {noise!r}")
    x0, y0 = (float(v) for v in start)
    if not (math.isfinite(x0) and math.isfinite(y0)):
        raise ValueError(f"start: need finite coordinates, got {start!r}")
    factor = schedule_factor(schedule, steps)
    schedule_k = [factor(k) for k in range(steps)]
    xi = (np.random.default_rng(seed).standard_normal((steps, 2)) * noise).tolist() if noise > 0 else None
    K = len(settings)
    xy = np.full((K, steps + 1, 2), np.nan)
    length = np.zeros(K, dtype=int)
    diverged = np.full(K, -1, dtype=int)
    for r, s in enumerate(settings):
        xs, ys = [math.nan] * (steps + 1), [math.nan] * (steps + 1)
        lr = [s.lr * f for f in schedule_k]
        n = _path(surf.grad2, x0, y0, s, lr, xi if s.noisy else None, xs, ys)
        length[r] = n
        if n <= steps:
            diverged[r] = n
        xy[r, :, 0] = xs
        xy[r, :, 1] = ys
    loss = np.full((K, steps + 1), np.nan)
    ok = np.isfinite(xy).all(axis=2)
    loss[ok] = surf.value(xy[..., 0][ok], xy[..., 1][ok]) - surf.f_min
    return Paths(tuple(s.name for s in settings), xy, loss, length, diverged)
