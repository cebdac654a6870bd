"""Loss Landscape engine against brute force, exact linear algebra, closed forms and the papers' definitions.

Tolerances: surfaces in float32 agree with point-by-point torch evaluation to 1e-5 (relative); Hessian work
is float64, where Lanczos must match LAPACK's eigvalsh to 1e-6 relative.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core import landscape as L
from core.landscape import connectivity, curvature, random_matrix, surfaces
from core.landscape.directions import random_direction

# torch's forward-mode AD (Hessian-vector products) loads its jvp decompositions with torch.jit.script on
# first use, which warns about its own deprecation
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _data(n=200, d=8, classes=4, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g, dtype=dtype)
    y = torch.randint(0, classes, (n,), generator=g)
    return x, y


def _mlp(sizes, act=torch.nn.ReLU, bias=True, seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(a, b, bias=bias))
        if i < len(sizes) - 2:
            layers.append(act())
    return torch.nn.Sequential(*layers).to(dtype)


def _moved(model, directions, coefs):
    out = copy.deepcopy(model)
    with torch.no_grad():
        for k, c in enumerate(coefs):
            for p, d in zip(out.parameters(), directions[k], strict=True):
                p.add_(c * d)
    return out


def _loop_surface(model, x, y, directions, alphas, betas):
    """Point-by-point: one forward pass per grid point (the baseline the batched surface must equal)."""
    out = np.empty((alphas.size, betas.size))
    with torch.no_grad():
        for i, a in enumerate(alphas):
            for j, b in enumerate(betas):
                m = _moved(model, directions, (a, b))
                out[i, j] = float(F.cross_entropy(m(x), y))
    return out


# -- directions -------------------------------------------------------------------------------------------

def test_filter_normalised_rows_have_the_weights_norms_and_biases_are_zero():
    model = _mlp((8, 16, 12, 4))
    d = L.filter_normalized_direction(model, seed=3)
    assert [t.shape for t in d] == [p.shape for p in model.parameters()]
    for (name, p), t in zip(model.named_parameters(), d, strict=True):
        if p.dim() == 1:
            assert torch.count_nonzero(t) == 0, name
        else:
            np.testing.assert_allclose(t.norm(dim=1).numpy(), p.detach().norm(dim=1).numpy(), rtol=1e-6)


def test_layer_normalised_and_seeded_directions():
    model = _mlp((8, 16, 4))
    d = random_direction(model, seed=5, norm="layer")
    for p, t in zip(model.parameters(), d, strict=True):
        if p.dim() > 1:
            assert float(t.norm()) == pytest.approx(float(p.detach().norm()), rel=1e-6)
    again = random_direction(model, seed=5, norm="layer")
    assert all(torch.equal(a, b) for a, b in zip(d, again, strict=True))
    other = random_direction(model, seed=6, norm="layer")
    assert not torch.equal(d[0], other[0])
    with pytest.raises(ValueError, match="normalisation"):
        random_direction(model, norm="bogus")


def _rescaled(model, layer: int, c):
    """c·W_l (rows), W_{l+1}/c (columns): the same function for a bias-free ReLU net (c > 0)."""
    out = copy.deepcopy(model)
    linears = [m for m in out if isinstance(m, torch.nn.Linear)]
    c = torch.as_tensor(c, dtype=torch.float32)
    with torch.no_grad():
        linears[layer].weight.mul_(c.reshape(-1, 1) if c.dim() else c)
        linears[layer + 1].weight.div_(c.reshape(1, -1) if c.dim() else c)
    return out


def test_rescaling_a_layer_leaves_the_filter_normalised_surface_unchanged_but_not_the_raw_one():
    x, y = _data()
    model = _mlp((8, 16, 16, 4), bias=False)
    scaled = _rescaled(model, 0, 5.0)
    with torch.no_grad():
        assert torch.allclose(model(x), scaled(x), rtol=1e-5, atol=1e-6)   # the same function
    kw = dict(span=(-1, 1), steps=9)
    filt = [L.surface(m, (x, y), [L.filter_normalized_direction(m, 1), L.filter_normalized_direction(m, 2)], **kw)
            for m in (model, scaled)]
    np.testing.assert_allclose(filt[1], filt[0], rtol=1e-5)
    raw = [L.surface(m, (x, y), [random_direction(m, 1, "none"), random_direction(m, 2, "none")], **kw)
           for m in (model, scaled)]
    assert np.max(np.abs(raw[1] - raw[0]) / raw[0]) > 1e-2


def test_per_neuron_rescaling_changes_the_next_layers_normalised_direction():
    """THEORY.md §5 says a per-neuron rescaling (different c_i per neuron) leaves the filter-normalised surface
    exactly unchanged. It does not: the next layer's rows change norm non-uniformly, so its direction is not
    the rescaled one. Layer l's part is exactly equivariant; the exact invariance holds for one c per layer."""
    x, y = _data()
    model = _mlp((8, 16, 16, 4), bias=False)
    c = torch.linspace(0.3, 3.0, 16)
    scaled = _rescaled(model, 0, c)
    d, d_scaled = L.filter_normalized_direction(model, 1), L.filter_normalized_direction(scaled, 1)
    torch.testing.assert_close(d_scaled[0], d[0] * c[:, None], rtol=1e-5, atol=1e-7)   # rows of layer l: exact
    assert not torch.allclose(d_scaled[1], d[1] / c[None, :], rtol=1e-3)               # columns of layer l+1: no
    s0 = L.surface(model, (x, y), [d], span=(-1, 1), steps=9)
    s1 = L.surface(scaled, (x, y), [d_scaled], span=(-1, 1), steps=9)
    assert np.max(np.abs(s1 - s0) / s0) > 1e-4


# -- surfaces ---------------------------------------------------------------------------------------------

def test_batched_surface_equals_point_by_point_evaluation():
    x, y = _data()
    model = _mlp((8, 16, 16, 4), act=torch.nn.Tanh)
    dirs = [L.filter_normalized_direction(model, 1), L.filter_normalized_direction(model, 2)]
    s = L.evaluate_surface(model, (x, y), dirs, span=(-1.5, 1.5), steps=7)
    assert s.loss.shape == (7, 7)
    np.testing.assert_allclose(s.loss, _loop_surface(model, x, y, dirs, s.alphas, s.betas), rtol=1e-5)


def test_surface_on_the_first_samples_equals_the_loop_over_those_samples():
    # the panel's preview: the split's first ``samples`` only, exactly as the loop over them
    x, y = _data(n=300)
    model = _mlp((8, 16, 16, 4))
    dirs = [L.filter_normalized_direction(model, 1), L.filter_normalized_direction(model, 2)]
    part = L.evaluate_surface(model, (x, y), dirs, span=(-1, 1), steps=5, samples=120)
    np.testing.assert_allclose(part.loss, _loop_surface(model, x[:120], y[:120], dirs, part.alphas, part.betas),
                               rtol=1e-5)
    whole = L.evaluate_surface(model, (x, y), dirs, span=(-1, 1), steps=5, samples=10_000)
    np.testing.assert_allclose(whole.loss, _loop_surface(model, x, y, dirs, whole.alphas, whole.betas), rtol=1e-5)
    assert np.abs(part.loss - whole.loss).max() > 1e-4       # a part of the data is not the whole
    for bad in (0, -5, 2.5, True, "100"):
        with pytest.raises(ValueError, match="samples"):
            L.evaluate_surface(model, (x, y), dirs, steps=3, samples=bad)


def test_generic_vmap_path_equals_the_fast_path_and_the_loop():
    class Wrapped(torch.nn.Module):     # not a chain the fast path knows: goes through functional_call + vmap
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    x, y = _data()
    model = _mlp((8, 12, 4))
    wrapped = Wrapped(model)
    assert surfaces.linear_plan(model) is not None and surfaces.linear_plan(wrapped) is None
    dirs = [L.filter_normalized_direction(model, 1), L.filter_normalized_direction(model, 2)]
    fast = L.evaluate_surface(model, (x, y), dirs, steps=5)
    generic = L.evaluate_surface(wrapped, (x, y), dirs, steps=5)
    np.testing.assert_allclose(generic.loss, fast.loss, rtol=1e-5)
    np.testing.assert_allclose(generic.accuracy, fast.accuracy)
    np.testing.assert_allclose(fast.loss, _loop_surface(model, x, y, dirs, fast.alphas, fast.betas), rtol=1e-5)
    # accuracy at the centre is the model's own
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).float().mean())
    assert fast.accuracy[2, 2] == pytest.approx(acc)


def test_core_nets_mlp_with_skips_on_the_fast_path():
    from core import nets

    x, y = _data(d=6)
    model = nets.build(nets.NetSpec(6, (10, 10, 10), 4, residual=True), seed=0)
    assert surfaces.linear_plan(model) is not None
    d = [L.filter_normalized_direction(model, 4)]
    s = L.evaluate_surface(model, (x, y), d, span=(-1, 1), steps=5)
    with torch.no_grad():
        want = [float(F.cross_entropy(_moved(model, d, (a,))(x), y)) for a in s.alphas]
    np.testing.assert_allclose(s.loss, want, rtol=1e-5)


def test_batch_norm_eval_and_recomputed_statistics():
    x, y = _data()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 12), torch.nn.BatchNorm1d(12), torch.nn.ReLU(),
                                torch.nn.Linear(12, 4))
    model.train()
    with torch.no_grad():
        model(x)             # running statistics that differ from the batch's
    d = [L.filter_normalized_direction(model, 1)]
    coef = np.array([[0.0], [0.7]])
    ev = surfaces.evaluate(model, (x, y), d, coef, bn="eval")
    rc = surfaces.evaluate(model, (x, y), d, coef, bn="recompute")
    for i, a in enumerate(coef[:, 0]):
        m = _moved(model, d, (a,))
        with torch.no_grad():
            m.eval()
            assert ev.loss[i] == pytest.approx(float(F.cross_entropy(m(x), y)), rel=1e-5)
            m.train()
            assert rc.loss[i] == pytest.approx(float(F.cross_entropy(m(x), y)), rel=1e-5)
    assert abs(ev.loss[0] - rc.loss[0]) > 1e-4
    # the model handed in is untouched (its running statistics and its mode)
    assert model.training


def test_regression_loss_is_half_squared_error():
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(50, 3, generator=g), torch.randn(50, 1, generator=g)
    model = _mlp((3, 5, 1))
    s = L.evaluate_surface(model, (x, y), [L.filter_normalized_direction(model)], steps=3)
    with torch.no_grad():
        assert s.loss[1] == pytest.approx(float(0.5 * ((model(x) - y) ** 2).mean()), rel=1e-5)
    assert s.accuracy is None


def test_interpolation_is_linear_in_parameters():
    x, y = _data()
    a, b = _mlp((8, 12, 4), seed=0), _mlp((8, 12, 4), seed=1)
    t = np.array([-0.5, 0.0, 0.3, 1.0, 1.5])
    got = L.interpolate(a, b, (x, y), t)
    for ti, g in zip(t, got, strict=True):
        m = copy.deepcopy(a)
        with torch.no_grad():
            for p, pa, pb in zip(m.parameters(), a.parameters(), b.parameters(), strict=True):
                p.copy_((1 - ti) * pa + ti * pb)
            assert g == pytest.approx(float(F.cross_entropy(m(x), y)), rel=1e-5)


def test_bad_input_is_refused_with_a_message():
    x, y = _data()
    model = _mlp((8, 12, 4))
    d = L.filter_normalized_direction(model)
    with pytest.raises(ValueError, match="lo < hi"):
        L.surface(model, (x, y), [d], span=(1, -1))
    with pytest.raises(ValueError, match="beyond"):
        L.surface(model, (x, y), [d], span=(-1e4, 1))
    with pytest.raises(ValueError, match="finite"):
        L.surface(model, (x, y), [d], span=(float("nan"), 1))
    with pytest.raises(ValueError, match="steps"):
        L.surface(model, (x, y), [d], steps=1)
    with pytest.raises(ValueError, match="steps"):
        L.surface(model, (x, y), [d], steps=100_000)
    with pytest.raises(ValueError, match="1 or 2 directions"):
        L.surface(model, (x, y), [d, d, d])
    with pytest.raises(ValueError, match="shape"):
        L.surface(model, (x, y), [[t.reshape(1, -1) for t in d]])
    with pytest.raises(ValueError, match="tensors"):
        L.surface(model, (x, y), [d[:1]])
    with pytest.raises(ValueError, match="NaN"):
        L.surface(model, (x, y), [[t * float("nan") for t in d]])


def test_an_overflowing_surface_masks_those_points_and_says_so():
    x, y = _data()
    model = _mlp((8, 12, 4))
    d = [torch.full_like(p, 1e37) if p.dim() > 1 else torch.zeros_like(p) for p in model.parameters()]
    s = L.evaluate_surface(model, (x, y), [d], span=(-1, 1), steps=5)
    assert np.isfinite(s.loss[2])            # α = 0 is the model itself
    # α > 0 drives the logits to inf (α < 0 only silences the ReLUs)
    assert s.masked == np.isnan(s.loss).sum() >= 2 and np.isnan(s.loss[-1]) and "masked" in s.note
    assert np.isnan(s.accuracy[-1])
    masked = L.surface(model, (x, y), [d], span=(-1, 1), steps=5)
    assert isinstance(masked, np.ma.MaskedArray) and masked.mask[-1] and not masked.mask[2]


def test_trajectory_plane_recovers_a_planar_path():
    model = _mlp((4, 3, 2))
    base = [p.detach().clone() for p in model.parameters()]
    u = random_direction(model, 1, "none")
    v = random_direction(model, 2, "none")
    s = np.linspace(0, 1, 12)
    snaps = [[b + float(np.cos(3 * t)) * du + float(t * t) * dv for b, du, dv in zip(base, u, v, strict=True)]
             for t in s]
    plane = L.trajectory_plane(snaps)
    assert plane.distance.max() < 1e-5 * max(1.0, np.abs(plane.coords).max())
    assert plane.explained.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.allclose(plane.coords[-1], 0.0)
    # an off-plane kick is measured exactly
    kicked = snaps[:-2] + [[t + 0.1 * w for t, w in zip(snaps[-2], random_direction(model, 9, "none"), strict=True)]]
    kicked.append(snaps[-1])
    assert L.trajectory_plane(kicked).distance[-2] > 1e-3


# -- Hessian ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_problem():
    """A trained 2,035-parameter tanh MLP on 256 digits, float64 (fit enough to have a mixed-sign spectrum)."""
    from core import data

    ds = data.load("digits")
    x, y = ds.x_train[:256].double(), ds.y_train[:256]
    model = _mlp((64, 27, 10), act=torch.nn.Tanh, dtype=torch.float64)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    h = L.hessian(model, (x, y))
    eig = torch.linalg.eigvalsh(torch.from_numpy(h)).numpy()
    return model, (x, y), h, eig


def test_exact_hessian_matches_torch_func_hessian():
    from torch.func import hessian as func_hessian

    x, y = _data(n=40, d=3, classes=3, dtype=torch.float64)
    model = _mlp((3, 4, 3), act=torch.nn.Tanh, dtype=torch.float64)
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    loss = _cross_entropy_of_flat(model, x, y)
    np.testing.assert_allclose(L.hessian(model, (x, y), chunk=7), func_hessian(loss)(theta).numpy(), atol=1e-12)


def test_lanczos_extremes_match_eigvalsh(small_problem):
    model, data, _, eig = small_problem
    assert 2000 <= eig.size <= 5000
    assert eig[0] < 0 < eig[-1]
    top = L.hessian_eigenvalues(model, data, k=5, which="top")
    bottom = L.hessian_eigenvalues(model, data, k=5, which="bottom")
    np.testing.assert_allclose(top, eig[::-1][:5], rtol=1e-6)
    np.testing.assert_allclose(bottom, eig[:5], rtol=1e-6)
    assert curvature.index(eig) == pytest.approx(np.mean(eig < -1e-7 * np.abs(eig).max()))


def test_power_iteration_baseline_finds_the_largest_magnitudes(small_problem):
    model, data, _, eig = small_problem
    f = curvature.FlatLoss(model, data)
    power = curvature.power_iteration(f.hvp, f.dim, k=2, tol=1e-10, max_iter=3000)
    by_magnitude = eig[np.argsort(-np.abs(eig))][:2]
    np.testing.assert_allclose(power.values, by_magnitude, rtol=1e-4)


def test_slq_density_integrates_to_one_and_its_mean_is_the_trace(small_problem):
    model, data, h, eig = small_problem
    dens = L.hessian_density(model, data, n_vectors=8, steps=40, seed=1)
    assert np.trapezoid(dens.density, dens.grid) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(dens.weights.sum(1), 1.0, atol=1e-10)
    exact = np.trace(h) / h.shape[0]
    # SLQ's mean is Hutchinson's estimator with the same (unit) vectors: within 3 standard errors of it
    err = dens.vector_means.std(ddof=1) / np.sqrt(dens.vector_means.size)
    assert abs(dens.mean - exact) <= 3 * err
    assert dens.grid[0] <= eig[0] and dens.grid[-1] >= eig[-1] * (1 - 1e-6)
    trace, trace_err = L.hessian_trace(model, data, n_vectors=20, seed=2)
    assert abs(trace - np.trace(h)) <= 3.5 * trace_err


def test_slq_in_float32_gives_the_float64_density(small_problem):
    model, data, _, _ = small_problem
    single = L.hessian_density(model, data, n_vectors=4, steps=30, seed=3, dtype=torch.float32)
    double = L.hessian_density(model, data, n_vectors=4, steps=30, seed=3)
    # the same Gauss rules: float32 products move the extreme nodes and the mean by ~1e-6 of the spread
    spread = double.nodes.max() - double.nodes.min()
    for a, b in ((single.nodes.min(), double.nodes.min()), (single.nodes.max(), double.nodes.max()),
                 (single.mean, double.mean)):
        assert abs(a - b) <= 1e-4 * spread


def test_seeded_results_repeat(small_problem):
    model, data, _, _ = small_problem
    a = L.hessian_density(model, data, n_vectors=2, steps=20, seed=4)
    b = L.hessian_density(model, data, n_vectors=2, steps=20, seed=4)
    np.testing.assert_array_equal(a.density, b.density)
    x, y = _data()
    m = _mlp((8, 12, 4))
    s1 = L.surface(m, (x, y), [L.filter_normalized_direction(m, 3), L.filter_normalized_direction(m, 4)], steps=5)
    s2 = L.surface(m, (x, y), [L.filter_normalized_direction(m, 3), L.filter_normalized_direction(m, 4)], steps=5)
    np.testing.assert_array_equal(s1, s2)


def test_exact_hessian_refuses_large_models():
    model = _mlp((100, 80, 10))
    with pytest.raises(ValueError, match="exact Hessian"):
        L.hessian(model, _data(d=100, classes=10))


# -- Pennington & Bahri ---------------------------------------------------------------------------------

@pytest.mark.parametrize("phi", [0.0, 0.1, 0.5, 0.8])
def test_critical_loss_is_where_the_free_convolutions_left_edge_crosses_zero(phi):
    eps_c = L.critical_loss(phi)
    assert eps_c == pytest.approx((1 - 20 * phi - 8 * phi**2 + (1 + 8 * phi) ** 1.5) / 16, rel=1e-12)
    assert random_matrix.left_edge(eps_c * 0.98, phi) > 0
    assert random_matrix.left_edge(eps_c * 1.02, phi) < 0
    assert L.index_theory(eps_c * 0.98, phi) == 0.0
    assert L.index_theory(eps_c * 1.2, phi) > 0.0


def test_critical_loss_values_and_limits():
    assert L.critical_loss(0.0) == pytest.approx(1 / 8)
    assert L.critical_loss(0.5) == pytest.approx(0.011271, abs=1e-6)
    assert L.critical_loss(1.0) == 0.0 and L.critical_loss(2.0) == 0.0
    with pytest.raises(ValueError, match="ratio"):
        L.critical_loss(-0.1)


def test_free_convolution_density_is_a_density_with_the_right_moments():
    x = np.linspace(-2, 6, 40001)
    for eps, phi in ((0.05, 0.5), (0.2, 0.25)):
        rho = L.spectral_density(x, eps, phi)
        assert np.trapezoid(rho, x) == pytest.approx(1.0, abs=1e-4)
        # the mean adds (1 + 0); the variance adds: φ (Marchenko–Pastur) + 2ε (semicircle)
        mean = np.trapezoid(x * rho, x)
        assert mean == pytest.approx(1.0, abs=1e-4)
        assert np.trapezoid((x - mean) ** 2 * rho, x) == pytest.approx(phi + 2 * eps, abs=1e-3)
    # ε = 0 is Marchenko–Pastur itself
    mp = L.spectral_density(x, 0.0, 0.5)
    lo, hi = (1 - np.sqrt(0.5)) ** 2, (1 + np.sqrt(0.5)) ** 2
    inside = (x > lo) & (x < hi)
    xi = x[inside]
    want = np.sqrt((hi - xi) * (xi - lo)) / (2 * np.pi * 0.5 * xi)
    np.testing.assert_allclose(mp[inside], want, atol=1e-8)


def test_index_grows_as_the_three_halves_power_above_the_critical_loss():
    phi = 0.5
    eps_c = L.critical_loss(phi)
    d = np.array([0.02, 0.04]) * eps_c
    a = L.index_theory(eps_c + d, phi, points=40001)
    slope = np.log(a[1] / a[0]) / np.log(d[1] / d[0])
    assert slope == pytest.approx(1.5, abs=0.08)


# -- mode connectivity ------------------------------------------------------------------------------------

def test_bezier_curve_between_two_digit_solutions_is_lower_than_the_line():
    from core import data, nets, training

    ds = data.load("digits")
    spec = nets.NetSpec(64, (32,), 10)
    models = []
    for seed in (0, 1):
        m = nets.build(spec, seed=seed, device="cpu")
        for _ in training.train(m, ds, optimizer="adam", lr=3e-3, epochs=12, batch_size=128, seed=seed,
                                device="cpu", every=1000):
            pass
        models.append(m)
    bend = None
    for item in connectivity.train_bezier(*models, ds, steps=150, lr=1e-2, seed=0, device="cpu"):
        if isinstance(item, list):
            bend = item
    c = connectivity.connect(*models, ds, bend)
    assert c.t.size == 61 and c.line_loss[0] == pytest.approx(c.curve_loss[0], rel=1e-5)
    assert np.max(c.curve_loss) < np.max(c.line_loss)
    assert c.curve_loss[-1] == pytest.approx(c.line_loss[-1], rel=1e-5)


# -- sharpness along training (Cohen et al. 2021) -----------------------------------------------------------

def _last(gen):
    return list(gen)[-1]


def _flat_theta(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _exact_top(model, x, y):
    """λ_max of torch.func.hessian of the full-batch cross-entropy, by LAPACK."""
    from torch.func import hessian as func_hessian

    return float(torch.linalg.eigvalsh(func_hessian(_cross_entropy_of_flat(model, x, y))(_flat_theta(model)))[-1])


def _cross_entropy_of_flat(model, x, y):
    """θ ↦ the full-batch cross-entropy of ``model`` with its parameters read from the flat vector θ
    (torch.func.functional_call: the model itself is not touched)."""
    from torch.func import functional_call

    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]

    def loss(t):
        parts, s = [], 0
        for sh in shapes:
            k = int(np.prod(sh))
            parts.append(t[s:s + k].reshape(sh))
            s += k
        return F.cross_entropy(functional_call(model, dict(zip(names, parts, strict=True)), (x,)), y)

    return loss


def test_sharpness_along_gradient_descent_is_the_exact_hessians_top_eigenvalue():
    x, y = _data(n=60, d=5, classes=3, dtype=torch.float64)
    model = _mlp((5, 7, 3), act=torch.nn.Tanh, dtype=torch.float64)
    lr, steps = 0.8, 30
    r = _last(L.sharpness_during_training(model, (x, y), lr, steps, checkpoints=4))
    assert r.steps.tolist() == [0, 10, 20, 30] and not r.diverged and r.threshold == pytest.approx(2 / lr)
    # the reference: torch.optim.SGD on the full batch, the exact Hessian at the same steps
    ref = copy.deepcopy(model)
    opt = torch.optim.SGD(ref.parameters(), lr=lr)
    want, want_loss = [], []
    for step in range(steps + 1):
        if step in r.steps:
            want.append(_exact_top(ref, x, y))
            with torch.no_grad():
                want_loss.append(float(F.cross_entropy(ref(x), y)))
        opt.zero_grad()
        F.cross_entropy(ref(x), y).backward()
        opt.step()
    np.testing.assert_allclose(r.sharpness, want, rtol=1e-6)
    np.testing.assert_allclose(r.loss, want_loss, rtol=1e-10)
    # the model handed in is untouched
    np.testing.assert_array_equal(_flat_theta(model), _flat_theta(_mlp((5, 7, 3), act=torch.nn.Tanh,
                                                                         dtype=torch.float64)))


def test_sharpness_of_least_squares_and_the_two_over_eta_stability_edge():
    """A linear model with ½‖ŷ − y‖² has the constant Hessian (1/n) X̃ᵀX̃ ⊗ I (X̃ = [X, 1]): gradient descent is
    stable exactly when η < 2/λ_max (Cohen et al. 2021, eq. 1)."""
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(40, 3, generator=g, dtype=torch.float64), torch.randn(40, 2, generator=g, dtype=torch.float64)
    model = torch.nn.Linear(3, 2).double()
    xt = torch.cat([x, torch.ones(40, 1, dtype=torch.float64)], 1)
    lam = float(torch.linalg.eigvalsh(xt.T @ xt / 40)[-1])
    stable = _last(L.sharpness_during_training(model, (x, y), 0.95 * 2 / lam, 200, checkpoints=3))
    np.testing.assert_allclose(stable.sharpness, lam, rtol=1e-9)
    assert stable.loss[-1] < stable.loss[0]
    unstable = _last(L.sharpness_during_training(model, (x, y), 1.05 * 2 / lam, 400, checkpoints=3))
    assert unstable.loss[-1] > 10 * unstable.loss[0] and not unstable.diverged
    frames = list(L.sharpness_during_training(model, (x, y), 3 * 2 / lam, 2000, checkpoints=3))
    assert frames[-1].diverged and frames[-1].steps.tolist() == [0] and frames[-1].progress == 1.0
    assert len(frames) == 2 and frames[0].progress == 0.0 and not frames[0].diverged
    # mini-batches: with the whole set as the batch, SGD is gradient descent
    gd = _last(L.sharpness_during_training(model, (x, y), 0.1, 20, checkpoints=3))
    sgd = _last(L.sharpness_during_training(model, (x, y), 0.1, 20, checkpoints=3, batch_size=40))
    np.testing.assert_allclose(sgd.loss, gd.loss, rtol=1e-12)
    with pytest.raises(ValueError, match="learning rate"):
        _last(L.sharpness_during_training(model, (x, y), -1.0, 10))
    with pytest.raises(ValueError, match="checkpoints"):
        _last(L.sharpness_during_training(model, (x, y), 0.1, 3, checkpoints=9))
    with pytest.raises(ValueError, match="batch_size"):
        _last(L.sharpness_during_training(model, (x, y), 0.1, 3, batch_size=41))
