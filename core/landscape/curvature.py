"""The Hessian of the training loss: exact for small nets, extreme eigenvalues by Lanczos, the spectral
density by stochastic Lanczos quadrature, the trace by Hutchinson, and the index.

Everything is built on the Hessian-vector product ``Hv = ∇_θ (∇L(θ) · v)`` (reverse-over-reverse with
``torch.func.grad``: forward-mode AD's first use loads its decompositions through TorchScript, seconds of
start-up the reverse form does not pay), over the whole training set: mini-batch estimates of the
spectrum vary up to 10× between runs (PyHessian issue #5), so the loss here is always the full-batch one.

- Lanczos with full reorthogonalisation (two passes of classical Gram–Schmidt): without it the Krylov
  basis loses orthogonality once a Ritz value converges and "ghost" copies of it appear.
- SLQ (Ubaru, Chen & Saad 2017; Ghorbani, Krishnan & Xiao 2019, "An investigation into neural net
  optimization via Hessian eigenvalue density"): for random unit vectors v the Lanczos tridiagonal
  T = S Θ Sᵀ gives nodes θ_i and weights τ_i² = S_{1i}², and ρ(λ) ≈ mean_v Σ_i τ_i² g_σ(λ − θ_i).
- Hutchinson: tr H = E[vᵀHv] for Rademacher v.
- Power iteration with deflation (PyHessian's method) is kept as the baseline the benchmark beats.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import functional_call, grad, vmap

from core import device as devices
from core.landscape.directions import flatten, parameters_of, unflatten
from core.landscape.surfaces import data_arrays, mean_loss

MAX_EXACT = 6000        # parameters: the exact Hessian is P² float64 numbers (288 MB at 6000)
DATA_CHUNK = 8192
BATCH_ROWS = 8          # vectors per batched Hessian-vector product (HessianOperator.many)
WHICH = ("top", "bottom")


class FlatLoss:
    """The full-batch loss as a function of one flat parameter vector, with its gradient and Hessian-vector
    products. ``theta`` is the model's parameters flattened; ``dim`` their number."""

    def __init__(self, model: torch.nn.Module, data, *, split: str = "train", dtype=torch.float64, device=None):
        dev = devices.resolve(device)
        self.model = copy.deepcopy(model).to(dev, dtype).eval()
        self.names = [n for n, _ in self.model.named_parameters()]
        self.like = parameters_of(self.model)
        self.theta = flatten(self.like).clone()
        self.dim = self.theta.numel()
        x, y = data_arrays(data, split)
        x, y = x.to(dev, dtype), y.to(dev)
        if torch.is_floating_point(y):
            y = y.to(dtype)
        n = x.shape[0]
        self.chunks = [(x[s:s + DATA_CHUNK], y[s:s + DATA_CHUNK], min(DATA_CHUNK, n - s) / n)
                       for s in range(0, n, DATA_CHUNK)]
        self.hvp_count = 0
        self.device, self.dtype = dev, dtype

    def _loss(self, theta, x, y):
        params = dict(zip(self.names, unflatten(theta, self.like), strict=True))
        return mean_loss(functional_call(self.model, params, (x,)), y)

    def loss(self, theta=None) -> float:
        theta = self.theta if theta is None else theta
        with torch.no_grad():
            return float(sum(w * self._loss(theta, x, y) for x, y, w in self.chunks))

    def hvp(self, v: torch.Tensor, theta=None) -> torch.Tensor:
        """H v at ``theta`` (default the model's parameters), full batch."""
        theta = self.theta if theta is None else theta
        self.hvp_count += 1
        out = torch.zeros_like(v)
        for x, y, w in self.chunks:
            out += w * self._hvp(theta, v, x, y)
        return out

    def _hvp(self, theta, v, x, y):
        g = grad(lambda t: self._loss(t, x, y))
        return grad(lambda t: torch.dot(g(t), v))(theta)

    def hvp_many(self, vs: torch.Tensor, theta=None) -> torch.Tensor:
        """H V for the rows of V (one vmap over them)."""
        theta = self.theta if theta is None else theta
        self.hvp_count += vs.shape[0]
        out = torch.zeros_like(vs)
        for x, y, w in self.chunks:
            out += w * vmap(lambda v, x=x, y=y: self._hvp(theta, v, x, y))(vs)
        return out

    def operator(self, theta=None) -> HessianOperator:
        """H at ``theta`` as an operator whose products reuse one gradient graph (see :class:`HessianOperator`)."""
        return HessianOperator(self, self.theta if theta is None else theta)

    def gradient(self, theta=None) -> torch.Tensor:
        theta = self.theta if theta is None else theta
        return sum(w * grad(lambda t, x=x, y=y: self._loss(t, x, y))(theta) for x, y, w in self.chunks)

    def dense_hessian(self, theta=None, chunk: int = 256) -> torch.Tensor:
        """The exact (P, P) Hessian at ``theta``, symmetrised (columns by batched Hessian-vector products)."""
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        op = self.operator(theta)
        h = torch.cat([op.many(eye[s:s + chunk]) for s in range(0, self.dim, chunk)])
        return 0.5 * (h + h.T)


class HessianOperator:
    """v ↦ H v at a fixed θ by double backward through a kept graph of ∇L(θ) (Pearlmutter 1994): the forward
    pass and the first backward are paid once, each product is one backward pass through that graph — about a
    third of a fresh Hessian-vector product, which Lanczos, SLQ and the exact Hessian's columns repeat
    at the same θ hundreds of times."""

    def __init__(self, f: FlatLoss, theta: torch.Tensor):
        self.f = f
        self.theta = theta.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            self.g = sum(w * torch.autograd.grad(f._loss(self.theta, x, y), self.theta, create_graph=True)[0]
                         for x, y, w in f.chunks)

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        self.f.hvp_count += 1
        with torch.enable_grad():
            return torch.autograd.grad(self.g, self.theta, grad_outputs=v, retain_graph=True)[0]

    def many(self, vs: torch.Tensor) -> torch.Tensor:
        """H V for the rows of V: batched backward passes, ``BATCH_ROWS`` rows each (a wider batch's
        intermediates leave the cache: 64 rows cost 10× what 8 do, per row)."""
        self.f.hvp_count += vs.shape[0]
        with torch.enable_grad():
            return torch.cat([torch.autograd.grad(self.g, self.theta, grad_outputs=vs[s:s + BATCH_ROWS],
                                                  retain_graph=True, is_grads_batched=True)[0]
                              for s in range(0, vs.shape[0], BATCH_ROWS)])


def _flat(model, data, split, dtype, device) -> FlatLoss:
    return FlatLoss(model, data, split=split, dtype=dtype, device=device)


# -- exact ------------------------------------------------------------------------------------------------

def hessian(model: torch.nn.Module, data, *, split: str = "train", dtype=torch.float64, device=None,
            chunk: int = 64) -> np.ndarray:
    """The exact Hessian ∂²L/∂θ∂θ of the full-batch loss, (P, P), symmetrised, in ``named_parameters`` order.

    Columns are Hessian-vector products with the basis vectors, ``chunk`` at a time under vmap (the same
    numbers as ``torch.func.hessian``, with memory bounded). Refused beyond MAX_EXACT parameters.
    """
    f = _flat(model, data, split, dtype, None if device is None else device)
    if f.dim > MAX_EXACT:
        raise ValueError(f"the exact Hessian of {f.dim:,} parameters would hold {f.dim ** 2 * 8 / 2**30:.1f} GiB; "
                         f"it is computed up to {MAX_EXACT:,} parameters — use hessian_eigenvalues or "
                         "hessian_density for this model")
    h = torch.empty(f.dim, f.dim, dtype=dtype, device=f.device)
    eye = torch.eye(f.dim, dtype=dtype, device=f.device)
    op = f.operator()
    for s in range(0, f.dim, chunk):
        h[s:s + chunk] = op.many(eye[s:s + chunk])
    h = 0.5 * (h + h.T)
    return h.cpu().numpy()


def exact_spectrum(model, data, **kw) -> np.ndarray:
    """All eigenvalues of the exact Hessian, ascending (LAPACK's symmetric solver via ``torch.linalg.eigvalsh``,
    which shares torch's threads instead of competing with them)."""
    return torch.linalg.eigvalsh(torch.from_numpy(hessian(model, data, **kw))).numpy()


def index(eigenvalues, rtol: float = 1e-7) -> float:
    """The index α: the fraction of eigenvalues below −rtol·max|λ| (Pennington & Bahri 2017, §2).

    The small threshold keeps the exact zero modes of symmetric networks (rounding makes them ±1e−16)
    out of the count.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    scale = np.abs(lam).max() if lam.size else 0.0
    return float(np.count_nonzero(lam < -rtol * scale) / max(lam.size, 1))


# -- Lanczos ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tridiagonal:
    alpha: np.ndarray     # diagonal of T (m,)
    beta: np.ndarray      # off-diagonal (m − 1,)
    last_beta: float      # β_m, the residual norm after the last step
    basis: torch.Tensor | None   # Q (m, P), kept when asked


def lanczos(matvec, v0: torch.Tensor, steps: int, keep_basis: bool = False, check=None) -> Tridiagonal:
    """Lanczos tridiagonalisation of a symmetric operator with full reorthogonalisation.

    Parameters
    ----------
    matvec : callable v ↦ H v
    v0 : start vector (any norm)
    steps : the most Krylov vectors
    check : callable (alpha, beta, last_beta) -> bool, optional
        Called after each step; True stops early (e.g. when the wanted Ritz values converged).
    """
    dim = v0.numel()
    steps = min(int(steps), dim)
    q = torch.empty(steps, dim, dtype=v0.dtype, device=v0.device)
    q[0] = v0 / v0.norm()
    alpha, beta = [], []
    last = 0.0
    for j in range(steps):
        w = matvec(q[j])
        a = torch.dot(w, q[j])
        alpha.append(float(a))
        basis = q[:j + 1]
        for _ in range(2):   # twice is enough (Kahan–Parlett "twice is enough")
            w = w - basis.T @ (basis @ w)
        b = float(w.norm())
        last = b
        if check is not None and check(np.array(alpha), np.array(beta), b):
            q = q[:j + 1]
            break
        if j + 1 == steps:
            break
        if b <= 1e-12 * max(1.0, max(abs(x) for x in alpha)):   # an invariant subspace: T is exact
            q = q[:j + 1]
            break
        beta.append(b)
        q[j + 1] = w / b
    return Tridiagonal(np.array(alpha), np.array(beta), last, q if keep_basis else None)


def ritz(alpha: np.ndarray, beta: np.ndarray):
    """Eigenvalues (ascending) and eigenvectors of the tridiagonal T."""
    from scipy.linalg import eigh_tridiagonal

    if alpha.size == 1:
        return alpha.copy(), np.ones((1, 1))
    return eigh_tridiagonal(alpha, beta)


@dataclass(frozen=True)
class Eigen:
    values: np.ndarray        # the k eigenvalues, largest first ("top") or smallest first ("bottom")
    matvecs: int              # Hessian-vector products used
    converged: bool


def extreme_eigenvalues(matvec, dim: int, k: int = 5, which: str = "top", *, tol: float = 1e-8,
                        max_steps: int | None = None, seed: int = 0, dtype=torch.float64, device=None,
                        both: bool = False) -> Eigen | tuple[Eigen, Eigen]:
    """The k largest (or smallest) eigenvalues of a symmetric operator by Lanczos.

    Stops when every wanted Ritz value θ_i has residual |β_m s_{m,i}| ≤ tol · max(|θ_i|, 10⁻³ ‖T‖) (a bound
    on ‖Hy − θy‖ for the Ritz vector y; the eigenvalue error is then of order its square over the gap).
    With ``both`` the k top and k bottom come from one run.
    """
    if which not in WHICH:
        raise ValueError(f"which must be one of {', '.join(WHICH)}, got {which!r}")
    if not 1 <= k <= dim:
        raise ValueError(f"k must be between 1 and the {dim} parameters, got {k}")
    max_steps = min(dim, max_steps or max(20 * k, 300))
    gen = torch.Generator().manual_seed(int(seed))
    v0 = torch.randn(dim, generator=gen, dtype=torch.float64).to(devices.resolve(device), dtype)
    count = [0]

    def counted(v):
        count[0] += 1
        return matvec(v)

    def wanted(theta):
        return [theta[-k:][::-1], theta[:k]] if both else [theta[-k:][::-1] if which == "top" else theta[:k]]

    def converged(alpha, beta, last):
        m = alpha.size
        if m < min(dim, 2 * k + 2) and m < dim:
            return False
        theta, s = ritz(alpha, beta)
        bound = np.abs(last * s[-1, :])
        scale = 1e-3 * np.abs(theta).max()
        idx = np.argsort(theta)
        picks = np.concatenate([idx[-k:], idx[:k]]) if both else (idx[-k:] if which == "top" else idx[:k])
        return bool(np.all(bound[picks] <= tol * np.maximum(np.abs(theta[picks]), scale)))

    t = lanczos(counted, v0, max_steps, check=converged)
    theta, _ = ritz(t.alpha, t.beta)
    done = converged(t.alpha, t.beta, t.last_beta) or t.alpha.size == dim
    if both:
        top, bottom = wanted(theta)
        return Eigen(top, count[0], done), Eigen(bottom, count[0], done)
    return Eigen(wanted(theta)[0], count[0], done)


def power_iteration(matvec, dim: int, k: int = 5, *, tol: float = 1e-8, max_iter: int = 1000, seed: int = 0,
                    dtype=torch.float64, device=None) -> Eigen:
    """The k largest-|λ| eigenvalues by power iteration with deflation (PyHessian's ``eigenvalues``); the
    baseline Lanczos is measured against. Each eigenvalue stops when its relative change is below ``tol``."""
    gen = torch.Generator().manual_seed(int(seed))
    dev = devices.resolve(device)
    values, vectors, count, ok = [], [], 0, True
    for _ in range(k):
        v = torch.randn(dim, generator=gen, dtype=torch.float64).to(dev, dtype)
        v /= v.norm()
        lam = None
        for _ in range(max_iter):
            hv = matvec(v)
            count += 1
            for lj, vj in zip(values, vectors, strict=True):
                hv = hv - lj * torch.dot(vj, v) * vj
            new = float(torch.dot(hv, v))
            v = hv / hv.norm()
            if lam is not None and abs(new - lam) <= tol * abs(lam):
                lam = new
                break
            lam = new
        else:
            ok = False
        values.append(lam)
        vectors.append(v)
    return Eigen(np.array(values), count, ok)


def hessian_eigenvalues(model: torch.nn.Module, data, k: int = 5, which: str = "top", *, tol: float = 1e-8,
                        split: str = "train", dtype=torch.float64, device=None, seed: int = 0) -> np.ndarray:
    """The k largest ("top") or smallest ("bottom") eigenvalues of the full-batch Hessian, by Lanczos on
    Hessian-vector products with full reorthogonalisation. Top values come largest first, bottom values
    smallest first."""
    f = _flat(model, data, split, dtype, device)
    return extreme_eigenvalues(f.operator(), f.dim, k, which, tol=tol, seed=seed, dtype=dtype, device=f.device).values


# -- trace and density ----------------------------------------------------------------------------------

def _rademacher(n: int, dim: int, seed: int, dtype, device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(int(seed))
    return (torch.randint(0, 2, (n, dim), generator=gen) * 2 - 1).to(device, dtype)


def hessian_trace(model: torch.nn.Module, data, n_vectors: int = 100, *, seed: int = 0, split: str = "train",
                  dtype=torch.float64, device=None) -> tuple[float, float]:
    """Hutchinson's estimate of tr H, mean of vᵀHv over Rademacher v, and its standard error."""
    f = _flat(model, data, split, dtype, device)
    vs = _rademacher(n_vectors, f.dim, seed, dtype, f.device)
    quad = (f.operator().many(vs) * vs).sum(1).cpu().numpy()
    return float(quad.mean()), float(quad.std(ddof=1) / math.sqrt(n_vectors)) if n_vectors > 1 else math.inf


@dataclass(frozen=True)
class Density:
    """SLQ spectral density: ``density`` on ``grid`` (integrates to 1), from per-vector nodes and weights."""

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray       # (n_vectors, m) Ritz values
    weights: np.ndarray     # (n_vectors, m) squared first components, each row sums to 1
    sigma: float
    dim: int

    @property
    def mean(self) -> float:
        """Σ τ² θ averaged over the vectors: the SLQ estimate of tr H / P."""
        return float((self.nodes * self.weights).sum(1).mean())

    @property
    def vector_means(self) -> np.ndarray:
        """vᵀHv of each (unit) start vector: Hutchinson's terms, divided by P."""
        return (self.nodes * self.weights).sum(1)


def slq(matvec, dim: int, *, n_vectors: int = 8, steps: int = 80, sigma: float | None = None, points: int = 1000,
        seed: int = 0, dtype=torch.float64, device=None, matmat=None) -> Density:
    """Stochastic Lanczos quadrature of a symmetric operator (Ghorbani et al. 2019, §2; PyHessian's density).

    Each Rademacher start vector (normalised) gives a Gauss quadrature rule with nodes θ_i and weights
    τ_i²; the density is their Gaussian-broadened average. ``sigma`` defaults to 1 % of the spread. With
    ``matmat`` (V ↦ HV for the rows of V) the n_vectors Lanczos runs advance together, one batched
    product per step.
    """
    dev = devices.resolve(device)
    vs = _rademacher(n_vectors, dim, seed, dtype, dev)
    m = min(steps, dim)
    if matmat is not None:
        runs = _block_lanczos_runs(matmat, vs, m)
    else:
        runs = [lanczos(matvec, v, m) for v in vs]
    nodes, weights = [], []
    for t in runs:
        theta, s = ritz(t.alpha, t.beta)
        pad = m - theta.size      # an early invariant subspace: pad with zero-weight nodes
        nodes.append(np.pad(theta, (0, pad), constant_values=theta[-1]))
        weights.append(np.pad(s[0] ** 2, (0, pad)))
    nodes, weights = np.array(nodes), np.array(weights)
    lo, hi = nodes.min(), nodes.max()
    spread = max(hi - lo, 1e-12 * max(1.0, abs(hi)))
    sigma = 0.01 * spread if sigma is None else float(sigma)
    grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, points)
    density = np.zeros(points)
    for row_nodes, row_weights in zip(nodes, weights, strict=True):
        z = (grid[:, None] - row_nodes[None, :]) / sigma
        density += (np.exp(-0.5 * z * z) * row_weights[None, :]).sum(1)
    density /= n_vectors * sigma * math.sqrt(2 * math.pi)
    return Density(grid, density, nodes, weights, sigma, dim)


def _block_lanczos_runs(matmat, vs: torch.Tensor, steps: int) -> list[Tridiagonal]:
    """Independent Lanczos runs (full reorthogonalisation each) from the rows of ``vs``, advanced together."""
    r, dim = vs.shape
    q = torch.zeros(r, steps, dim, dtype=vs.dtype, device=vs.device)
    q[:, 0] = vs / vs.norm(dim=1, keepdim=True)
    alpha = np.zeros((r, steps))
    beta = np.zeros((r, steps))
    alive = np.ones(r, dtype=bool)
    length = np.full(r, steps)
    for j in range(steps):
        w = matmat(q[:, j])
        a = (w * q[:, j]).sum(1)
        alpha[:, j] = a.cpu().numpy()
        basis = q[:, :j + 1]
        for _ in range(2):
            w = w - torch.einsum("rkd,rk->rd", basis, torch.einsum("rkd,rd->rk", basis, w))
        b = w.norm(dim=1).cpu().numpy()
        if j + 1 == steps:
            break
        stop = alive & (b <= 1e-12 * np.maximum(1.0, np.abs(alpha[:, :j + 1]).max(1)))
        length[stop] = j + 1
        alive &= ~stop
        beta[:, j] = b
        safe = torch.as_tensor(np.where(alive, b, 1.0), dtype=w.dtype, device=w.device)
        q[:, j + 1] = torch.where(torch.as_tensor(alive, device=w.device)[:, None], w / safe[:, None], 0.0)
    return [Tridiagonal(alpha[i, :length[i]], beta[i, :length[i] - 1], 0.0, None) for i in range(r)]


def hessian_density(model: torch.nn.Module, data, *, n_vectors: int = 8, steps: int = 80,
                    sigma: float | None = None, points: int = 1000, seed: int = 0, split: str = "train",
                    dtype=torch.float64, device=None) -> Density:
    """The Hessian's spectral density by stochastic Lanczos quadrature; see :func:`slq`."""
    f = _flat(model, data, split, dtype, device)
    op = f.operator()
    return slq(op, f.dim, n_vectors=n_vectors, steps=steps, sigma=sigma, points=points, seed=seed,
               dtype=dtype, device=f.device, matmat=op.many)


# -- sharpness along training (edge of stability) ---------------------------------------------------------

@dataclass(frozen=True)
class Sharpness:
    """λ_max of the full-batch Hessian at checkpoints of a gradient-descent run at learning rate ``lr``."""

    steps: np.ndarray          # (checkpoints,) updates done before each measurement (0: the initial point)
    sharpness: np.ndarray      # (checkpoints,) λ_max there, by Lanczos
    loss: np.ndarray           # (checkpoints,) full-batch training loss there
    lr: float
    batch_size: int | None     # None: full-batch gradient descent
    parameters: int
    matvecs: int               # Hessian-vector products spent on all the λ_max
    total: int                 # the updates asked for
    diverged: bool = False     # the loss overflowed: the checkpoints stop before ``total``

    @property
    def progress(self) -> float:
        """The fraction of the run measured so far."""
        return 1.0 if self.diverged or not self.steps.size else float(self.steps[-1] / self.total)

    @property
    def threshold(self) -> float:
        """2/η: where gradient descent on the local quadratic model stops being stable (Cohen et al. 2021)."""
        return 2.0 / self.lr


def sharpness_during_training(model: torch.nn.Module, data, lr: float, steps: int, *, checkpoints: int | None = None,
                              batch_size: int | None = None, seed: int = 0, tol: float = 1e-7,
                              split: str = "train", dtype=torch.float64, device=None):
    """Train by gradient descent at learning rate η and measure the sharpness λ_max along the way.

    Cohen, Kaur, Li, Kolter & Talwalkar 2021, "Gradient descent on neural networks typically occurs at the
    edge of stability" (ICLR 2021, arXiv:2103.00065), §3: under full-batch gradient descent the top
    eigenvalue of the training loss's Hessian rises ("progressive sharpening") until it reaches 2/η — the
    largest curvature at which θ ← θ − η∇L is stable on a quadratic (eq. 1: |1 − ηλ| ≤ 1) — and then
    hovers just above it while the loss keeps falling, non-monotonically. With mini-batches (SGD) it
    settles below 2/η (their §6 / Appendix).

    Parameters
    ----------
    model : torch.nn.Module
        The starting point (copied, never modified).
    data : Dataset or (x, y)
        The loss is the mean over the whole ``split`` (cross-entropy for integer labels, ½ squared error
        for float targets); λ_max is always that full-batch loss's.
    lr : float
        The learning rate η > 0.
    steps : int
        Updates θ ← θ − η ∇L_B(θ); B is the whole split, or with ``batch_size`` a mini-batch of a seeded
        permutation, epoch by epoch.
    checkpoints : int, optional
        Measurements of λ_max, evenly spaced over [0, steps] (step 0 is the starting point); default
        min(25, steps + 1).
    tol : float
        Lanczos stops when the top Ritz value's residual is below ``tol`` · λ (its error is then of
        order tol² λ²/gap; see :func:`extreme_eigenvalues`).

    Yields
    ------
    Sharpness
        After each checkpoint, the measurements so far (``progress`` says how far the run is); the last
        one holds every checkpoint, or those up to the last finite loss with ``diverged`` set.
    """
    if isinstance(lr, bool) or not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"the learning rate must be a positive number, got {lr!r}")
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise ValueError(f"steps must be a whole number ≥ 1, got {steps!r}")
    checkpoints = min(25, steps + 1) if checkpoints is None else checkpoints
    if not isinstance(checkpoints, int | np.integer) or not 2 <= checkpoints <= steps + 1:
        raise ValueError(f"checkpoints must be a whole number from 2 to steps + 1 = {steps + 1}, got {checkpoints!r}")
    f = _flat(model, data, split, dtype, device)
    x, y = data_arrays(data, split)
    x, y = x.to(f.device, dtype), y.to(f.device)
    if torch.is_floating_point(y):
        y = y.to(dtype)
    n = x.shape[0]
    if batch_size is not None and not 1 <= int(batch_size) <= n:
        raise ValueError(f"batch_size must be between 1 and the {n} samples, got {batch_size!r}")
    at = set(np.linspace(0, steps, int(checkpoints)).round().astype(int).tolist())
    gen = torch.Generator().manual_seed(int(seed))
    theta = f.theta.clone()
    order, cursor = None, n
    measured, losses, sharp, matvecs, diverged = [], [], [], 0, False

    def snapshot(stopped: bool = False) -> Sharpness:
        return Sharpness(np.array(measured, dtype=int), np.array(sharp), np.array(losses), float(lr),
                         None if batch_size is None else int(batch_size), f.dim, matvecs, int(steps), stopped)

    for step in range(steps + 1):
        if step in at:
            loss = f.loss(theta)
            if not math.isfinite(loss):
                diverged = True
                break
            top = extreme_eigenvalues(f.operator(theta), f.dim, 1, "top", tol=tol, seed=seed + step, dtype=dtype,
                                      device=f.device)
            measured.append(step)
            sharp.append(float(top.values[0]))
            losses.append(loss)
            matvecs += top.matvecs
            yield snapshot()
        if step == steps:
            break
        if batch_size is None:
            g = f.gradient(theta)
        else:
            if cursor + int(batch_size) > n:
                order, cursor = torch.randperm(n, generator=gen).to(f.device), 0
            idx = order[cursor:cursor + int(batch_size)]
            cursor += int(batch_size)
            g = grad(lambda t, i=idx: f._loss(t, x[i], y[i]))(theta)
        theta = theta - lr * g
        if not bool(torch.isfinite(theta).all()):
            diverged = True
            break
    if diverged:
        yield snapshot(True)
