"""Depth & Sawtooth engine against closed forms and brute force (THEORY.md §1).

Every expected value here comes from a formula or from an independent, slower computation (numpy
interpolation, autograd slopes on a dense grid, a hyperplane-arrangement count, per-pixel patterns
from torch), never from the engine itself. Tolerances are stated where they are not exact.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from core import depth as D
from core.params import ParamError

# ---------------------------------------------------------------------------------------------------------
# Import cost


def test_import_does_not_import_torch():
    code = "import sys, core.depth; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


# ---------------------------------------------------------------------------------------------------------
# Telgarsky's sawtooth


def _runs_of_slope(x: np.ndarray, y: np.ndarray) -> tuple[int, np.ndarray]:
    """Pieces of a polyline sampled on a grid whose every cell lies inside one piece: runs of equal slope."""
    slope = np.diff(y) / np.diff(x)
    return 1 + int(np.count_nonzero(slope[1:] != slope[:-1])), slope


@pytest.mark.parametrize("L", range(1, 13))
def test_sawtooth_has_two_to_the_L_pieces(L):
    # kinks sit at k/2^L, so on the dyadic grid k/2^(L+3) (exact in float64) no cell straddles one
    x = np.arange(2 ** (L + 3) + 1) / 2.0 ** (L + 3)
    y = D.sawtooth(x, L)
    pieces, slope = _runs_of_slope(x, y)
    assert pieces == 2**L
    assert set(np.unique(slope)) == {-(2.0**L), 2.0**L}
    k = np.arange(2**L + 1)
    np.testing.assert_array_equal(D.sawtooth(k / 2.0**L, L), k % 2)  # f_L(k/2^L) = k mod 2, exactly


@pytest.mark.parametrize("L", range(1, 13))
def test_sawtooth_network_has_exactly_two_to_the_L_pieces(L):
    net = D.sawtooth_network(L)
    assert D.count_linear_pieces(net) == 2**L
    assert sum(p.numel() for p in net.parameters()) == D.sawtooth_param_count(L) == 6 * L + 1
    widths = [m.out_features for m in net if isinstance(m, nn.Linear)]
    assert widths == [2] * L + [1]


def test_sawtooth_pieces_are_the_teeth():
    pieces = D.linear_pieces(D.sawtooth_weights(5))
    np.testing.assert_allclose(pieces.breaks, np.arange(33) / 32, rtol=0, atol=1e-15)
    np.testing.assert_allclose(pieces.slopes, 32.0 * (-1.0) ** np.arange(32), rtol=1e-12)


@pytest.mark.parametrize("L", [1, 2, 7, 12, 30, 50])
def test_sawtooth_network_computes_sawtooth_exactly(L):
    rng = np.random.default_rng(L)
    x = np.concatenate([np.arange(4097) / 4096, rng.random(4000)])
    with torch.no_grad():
        y = D.sawtooth_network(L)(torch.from_numpy(x[:, None]))[:, 0].numpy()
    # every product and sum in the net is exact in float64 (dyadic weights; Sterbenz for 2 − 2x)
    np.testing.assert_array_equal(y, D.sawtooth(x, L))


def test_sawtooth_beyond_float_resolution_is_refused():
    with pytest.raises(ValueError, match="float64"):
        D.sawtooth(0.3, D.MAX_DEPTH + 1)
    with pytest.raises(ValueError, match="float64"):
        D.sawtooth_vertices(51)
    with pytest.raises(ValueError, match="float64"):
        D.sawtooth_network(60)
    assert np.isfinite(D.sawtooth(0.3, D.MAX_DEPTH))
    with pytest.raises(ParamError) as err:
        D.DepthParams(depth=51)
    assert err.value.field == "depth"
    assert "float64" in D.DepthParams.spec("depth").help


def test_sawtooth_vertices_are_the_exact_polyline():
    x, y = D.sawtooth_vertices(3)
    np.testing.assert_array_equal(x, np.arange(9) / 8)
    np.testing.assert_array_equal(y, np.arange(9) % 2)
    with pytest.raises(ValueError, match="zoom in"):
        D.sawtooth_vertices(30)
    lo, hi = 0.3, 0.3 + 2.0**-22  # a window of L = 30 holding 2^8 kinks
    x, y = D.sawtooth_vertices(30, lo, hi)
    assert x[0] == lo and x[-1] == hi and np.all(np.diff(x) > 0)
    np.testing.assert_array_equal(y, D.sawtooth(x, 30))


# ---------------------------------------------------------------------------------------------------------
# Yarotsky


@pytest.mark.parametrize("m", range(1, 13))
def test_yarotsky_square_is_the_interpolant_with_error_two_to_minus_2m_minus_2(m):
    nodes = np.arange(2**m + 1) / 2.0**m
    np.testing.assert_allclose(D.yarotsky_square(nodes, m), nodes**2, rtol=0, atol=1e-15)
    mids = (np.arange(2**m) + 0.5) / 2.0**m
    bound = 2.0 ** (-2 * m - 2)
    assert abs(np.max(np.abs(D.yarotsky_square(mids, m) - mids**2)) - bound) <= 1e-12
    assert D.yarotsky_error_bound(m) == bound
    x = np.random.default_rng(m).random(20000)
    f = D.yarotsky_square(x, m)
    np.testing.assert_allclose(f, np.interp(x, nodes, nodes**2), rtol=0, atol=1e-14)
    assert np.all(f - x**2 <= bound + 1e-15) and np.all(f - x**2 >= -1e-15)  # one-sided: x² is convex


@pytest.mark.parametrize("m", [1, 3, 6, 10])
def test_yarotsky_network_computes_f_m_with_2_to_the_m_pieces(m):
    net = D.yarotsky_network(m)
    x = np.random.default_rng(m).random(5000)
    with torch.no_grad():
        y = net(torch.from_numpy(x[:, None]))[:, 0].numpy()
    np.testing.assert_allclose(y, D.yarotsky_square(x, m), rtol=0, atol=1e-12)
    # the interpolant of a strictly convex function on 2^m + 1 nodes: 2^m pieces, all slopes distinct
    assert D.count_linear_pieces(net) == 2**m


@pytest.mark.parametrize("m", [1, 2, 4, 6])
def test_product_network_is_within_its_bound(m):
    net = D.product_network(m)
    g = np.arange(2 ** (m + 2) + 1) / 2.0 ** (m + 2)
    X, Y = np.meshgrid(g, g)
    rand = np.random.default_rng(m).random((4000, 2))
    pts = np.vstack([np.column_stack([X.ravel(), Y.ravel()]), rand])
    with torch.no_grad():
        z = net(torch.from_numpy(pts))[:, 0].numpy()
    err = z - pts[:, 0] * pts[:, 1]
    bound = D.product_error_bound(m)
    assert bound == 2.0 ** (-2 * m - 1)
    assert err.max() <= bound + 1e-12 and err.min() >= -bound / 2 - 1e-12
    # attained at x = k/2^m, y = l/2^m with k + l odd, which the grid contains
    assert abs(err.max() - bound) <= 1e-12
    np.testing.assert_allclose(z, D.yarotsky_product(pts[:, 0], pts[:, 1], m), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------
# Exact piece counting


def _dense_pieces(model: nn.Module, lo: float, hi: float, n: int) -> int:
    """Brute force: autograd slope at n cell-centred points; a piece is a run of equal slopes.

    A piece no sample falls in is missed, so this can only undercount (adjacent distinct pieces of a
    continuous function have distinct slopes, so nothing is counted twice).
    """
    x = torch.linspace(lo, hi, n + 1, dtype=torch.float64)
    x = (0.5 * (x[1:] + x[:-1]))[:, None].requires_grad_(True)
    model(x).sum().backward()
    slope = x.grad[:, 0].numpy()
    tol = 1e-9 * np.abs(slope).max()
    return 1 + int(np.count_nonzero(np.abs(np.diff(slope)) > tol))


def _torch_net(widths: list[int], seed: int) -> nn.Sequential:
    """A net built directly with torch's default initialisation (not through the engine)."""
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        lin = nn.Linear(a, b, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.normal_(0.0, 1.5 / math.sqrt(a), generator=gen)
            lin.bias.normal_(0.0, 0.5, generator=gen)
        layers += [lin] + ([nn.ReLU()] if i < len(widths) - 2 else [])
    return nn.Sequential(*layers)


@pytest.mark.parametrize("widths", [[1, 5, 1], [1, 6, 6, 1], [1, 4, 4, 4, 1], [1, 8, 8, 8, 8, 1],
                                    [1, 16, 16, 16, 1]])
@pytest.mark.parametrize("seed", range(4))
def test_exact_pieces_agree_with_dense_sampling(widths, seed):
    net = _torch_net(widths, seed)
    exact = D.count_linear_pieces(net, -2.0, 2.0)
    assert _dense_pieces(net, -2.0, 2.0, 64) <= exact
    # 2^17 samples on a segment of length 4: every piece of these nets is wider than a few spacings
    assert _dense_pieces(net, -2.0, 2.0, 2**17) == exact


def test_one_hidden_layer_count_is_one_plus_kinks_inside():
    rng = np.random.default_rng(7)
    for _ in range(20):
        k = int(rng.integers(1, 30))
        W1, b1, W2 = rng.normal(size=(k, 1)), rng.normal(size=k), rng.normal(size=(1, k))
        kinks = -b1 / W1[:, 0]
        expected = 1 + int(np.count_nonzero((kinks > -1.0) & (kinks < 1.5)))
        assert D.count_linear_pieces(((W1, b1), (W2, np.zeros(1))), -1.0, 1.5) == expected


def test_a_neuron_that_does_not_reach_the_output_makes_no_piece():
    W1, b1 = np.array([[1.0], [1.0]]), np.array([-0.25, -0.5])
    W2 = np.array([[1.0, 0.0]])  # the second unit's kink at ½ is invisible in the output
    assert D.count_linear_pieces(((W1, b1), (W2, np.zeros(1)))) == 2


def test_count_refuses_what_it_cannot_count():
    with pytest.raises(ValueError, match="scalar"):
        D.count_linear_pieces(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)))
    with pytest.raises(TypeError, match="Tanh"):
        D.count_linear_pieces(nn.Sequential(nn.Linear(1, 3), nn.Tanh(), nn.Linear(3, 1)))
    with pytest.raises(ValueError, match="lo < hi"):
        D.count_linear_pieces(D.sawtooth_weights(2), 1.0, 0.0)


def test_random_init_pieces_respect_the_one_dimensional_bound():
    res = D.random_init_pieces([1, 2, 3, 5], width=6, seed=3, samples=5, lo=-1.0, hi=1.0)
    assert res.counts.shape == (4, 5) and res.counts.min() >= 1
    # along a line each relu layer of width w splits every piece into at most w + 1
    assert np.all(res.counts <= (6 + 1) ** res.depths[:, None])
    np.testing.assert_array_equal(res.n_params, [6 * 2 + (L - 1) * 42 + 7 for L in (1, 2, 3, 5)])
    np.testing.assert_allclose(res.mean, res.counts.mean(axis=1))


def test_pieces_theory_closed_forms():
    t = D.pieces_theory([1, 4, 10])
    np.testing.assert_array_equal(t.n_params, [7, 25, 61])
    np.testing.assert_array_equal(t.deep, [2, 16, 1024])
    np.testing.assert_array_equal(t.shallow, [3, 9, 21])  # k = 2L units, k + 1 pieces


# ---------------------------------------------------------------------------------------------------------
# Linear regions in 2-D


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = np.unique(np.column_stack([a.ravel(), b.ravel()]), axis=0)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


def _arrangement_regions(W: np.ndarray, b: np.ndarray, box: float) -> int:
    """Regions cut from the square [−box, box]² by the lines W_i·x + b_i = 0 in general position.

    Adding a line that crosses the (convex) square adds 1 + (its crossings with earlier lines inside
    the square) regions, so the count is 1 + #lines crossing + #intersection points inside.
    """
    corners = np.array(list(itertools.product([-box, box], repeat=2)))
    vals = corners @ W.T + b
    crossing = (vals.min(axis=0) < 0) & (vals.max(axis=0) > 0)
    inside = 0
    for i, j in itertools.combinations(np.flatnonzero(crossing), 2):
        p = np.linalg.solve(W[[i, j]], -b[[i, j]])
        inside += bool(np.all(np.abs(p) < box))
    return 1 + int(crossing.sum()) + inside


@pytest.mark.parametrize("seed", range(5))
def test_one_hidden_layer_regions_match_the_line_arrangement(seed):
    weights = D.random_relu_net(2, 7, 1, sigma_w=1.0, sigma_b=0.5, seed=seed)
    expected = _arrangement_regions(weights[0][0], weights[0][1], 1.0)
    ids, count = D.region_map(weights, 1.0, 1024, dtype="float64")
    assert count == expected
    assert ids.shape == (1024, 1024) and ids.dtype == np.int32 and set(np.unique(ids)) == set(range(count))
    assert D.region_map(weights, 1.0, 64)[1] <= expected  # coarse pixels can only miss regions


@pytest.mark.parametrize(("width", "depth", "seed"), [(4, 2, 0), (5, 3, 1), (3, 4, 2), (8, 2, 3)])
def test_region_map_matches_per_pixel_patterns_from_torch(width, depth, seed):
    weights = D.random_relu_net(2, width, depth, sigma_w=1.6, sigma_b=0.3, seed=seed)
    net = D.as_module(weights)
    n, box = 256, 1.5
    ids, count = D.region_map(net, (-box, box, -box, box), n, dtype="float64")
    c = -box + (np.arange(n) + 0.5) * (2 * box / n)
    pts = torch.from_numpy(np.column_stack([np.tile(c, n), np.repeat(c, n)]))
    signs, h = [], pts
    for layer in net:
        h = layer(h)
        if isinstance(layer, nn.Linear) and len(signs) < depth:
            signs.append((h > 0).numpy())
    patterns = np.concatenate(signs, axis=1)
    _, brute = np.unique(patterns, axis=0, return_inverse=True)
    assert count == brute.max() + 1
    assert _same_partition(ids, brute.reshape(n, n))


def test_float32_region_map_agrees_with_float64_but_for_boundary_pixels():
    weights = D.random_relu_net(2, 32, 6, sigma_w=1.41, sigma_b=0.1, seed=5)
    ids32, c32 = D.region_map(weights, 1.0, 256)
    ids64, c64 = D.region_map(weights, 1.0, 256, dtype="float64")
    pairs, first, counts = np.unique(np.column_stack([ids32.ravel(), ids64.ravel()]), axis=0,
                                     return_index=True, return_counts=True)
    # pixels whose float32 pattern differs from the float64 one: at most a few per thousand
    mismatched = len(pairs) - max(c32, c64)
    assert mismatched <= 0.002 * ids32.size
    assert abs(c32 - c64) <= 0.002 * c64


def test_region_map_in_threads_is_the_same_map():
    weights = D.random_relu_net(2, 12, 3, sigma_w=1.41, sigma_b=0.1, seed=2)
    ids1, c1 = D.region_map(weights, 1.0, 200)
    ids2, c2 = D.region_map(weights, 1.0, 200, threads=2)
    assert c1 == c2 and _same_partition(ids1, ids2)


def test_region_map_orientation_and_extent():
    # one unit, on where x > 0.25: the left 5 of 8 columns are one region, the right 3 the other
    weights = ((np.array([[1.0, 0.0]]), np.array([-0.25])), (np.array([[1.0]]), np.zeros(1)))
    ids, count = D.region_map(weights, (-1.0, 1.0, 0.0, 1.0), (2, 8))
    assert count == 2 and ids.shape == (2, 8)
    assert np.all(ids[:, :5] == ids[0, 0]) and np.all(ids[:, 5:] == ids[0, 7]) and ids[0, 0] != ids[0, 7]
    weights = ((np.array([[0.0, 1.0]]), np.array([-0.5])), (np.array([[1.0]]), np.zeros(1)))
    ids, _ = D.region_map(weights, (0.0, 1.0, 0.0, 1.0), (4, 3))
    assert np.all(ids[:2] == ids[0, 0]) and np.all(ids[2:] == ids[3, 0]) and ids[0, 0] != ids[3, 0]
    with pytest.raises(ValueError, match="2 inputs"):
        D.region_map(D.random_relu_net(3, 4, 2, 1.0, 0.1, 0), 1.0, 8)


def test_random_relu_net_has_the_stated_distribution():
    weights = D.random_relu_net(3, 400, 2, sigma_w=2.0, sigma_b=0.5, seed=1)
    assert [W.shape for W, _ in weights] == [(400, 3), (400, 400), (1, 400)]
    W = weights[1][0]
    assert abs(W.var() * 400 / 4.0 - 1) < 0.02  # 160 000 draws: relative sd of the variance 0.35 %
    b = np.concatenate([weights[0][1], weights[1][1]])
    assert abs(b.std() / 0.5 - 1) < 0.1
    again = D.random_relu_net(3, 400, 2, sigma_w=2.0, sigma_b=0.5, seed=1)
    assert all(np.array_equal(a[0], c[0]) for a, c in zip(weights, again, strict=True))


# ---------------------------------------------------------------------------------------------------------
# Fitting experiments


def test_shallow_vs_deep_can_be_stopped_and_reports_finite_losses():
    gen = D.fit_shallow_vs_deep(3, steps=200, lr=1e-2, seed=0, every=10, device="cpu")
    frames = [next(gen) for _ in range(3)]
    gen.close()  # cancelling is stopping the iteration
    with pytest.raises(StopIteration):
        next(gen)
    assert [f.step for f in frames] == [0, 10, 20]
    last = frames[-1]
    assert last.names == ("shallow", "deep") and last.n_params == (19, 19)  # 6L + 1 = 3k + 1, k = 2L
    assert last.loss_history.shape == (21, 2) and not last.loss_history.flags.writeable
    assert np.all(np.isfinite(last.loss_history)) and np.all(np.isfinite(last.prediction))
    np.testing.assert_array_equal(last.loss_history[20], last.loss)
    assert last.prediction.shape == (2, last.x.size) and not last.done
    np.testing.assert_array_equal(last.target, D.sawtooth(last.x, 3))
    assert last.constant_loss == pytest.approx(np.var(D.sawtooth(np.linspace(0, 1, 257), 3)))
    assert all(isinstance(p, int) and p >= 1 for p in last.pieces)


def test_near_exact_start_with_no_noise_is_the_sawtooth():
    frames = list(D.fit_from_init(4, "near_exact", steps=20, lr=1e-3, noise=0.0, every=10, device="cpu"))
    first = frames[0]
    assert first.names == ("near_exact",) and first.pieces == (16,)
    np.testing.assert_allclose(first.prediction[0], first.target, atol=1e-5)  # float32 training
    assert first.loss[0] < 1e-10
    assert [f.step for f in frames] == [0, 10, 20] and frames[-1].done


def test_fit_from_init_both_trains_the_two_starts_on_the_same_data():
    frames = list(D.fit_from_init(2, "both", steps=15, every=4, seed=1, device="cpu"))
    assert [f.step for f in frames] == [0, 4, 8, 12, 15]
    assert frames[-1].names == ("random", "near_exact") and frames[-1].n_params == (13, 13)
    history = frames[-1].loss_history
    assert np.all(np.isfinite(history)) and history.shape == (16, 2)
    for f in frames:  # a frame's history is never rewritten by later steps
        np.testing.assert_array_equal(f.loss_history, history[:f.step + 1])


def test_fitting_refuses_bad_requests():
    with pytest.raises(ValueError, match="depth"):
        next(D.fit_shallow_vs_deep(D.FIT_MAX_DEPTH + 1, steps=1))
    with pytest.raises(ValueError, match="init"):
        next(D.fit_from_init(3, "zeros", steps=1))
    with pytest.raises(ValueError, match="learning rate"):
        next(D.fit_from_init(3, steps=1, lr=0.0))


# ---------------------------------------------------------------------------------------------------------
# Parameters


def test_depth_params_declaration():
    p = D.DepthParams()
    assert (p.depth, p.m, p.width, p.region_depth, p.seed) == (4, 3, 16, 3, 0)
    assert (p.train_steps, p.init) == (2000, "random")
    assert (p.sigma_w, p.sigma_b, p.lr) == (1.41, 0.1, 1e-2)
    assert D.DepthParams.spec("sigma_w").label == "σ_w" and D.DepthParams.spec("lr").scale == "log"
    assert D.DepthParams.spec("init").choices == ("random", "near_exact")
    with pytest.raises(ParamError) as err:
        D.DepthParams.from_dict({"init": "exact"})
    assert err.value.field == "init"
    with pytest.raises(ParamError):
        p.replace(m=13)


def test_the_fits_train_on_one_torch_thread_and_give_the_callers_threads_back(monkeypatch):
    """The engine pins each resumption of its training loop to one intra-op thread (a width-2 net gains
    nothing from more) and restores the calling thread's setting before every frame it yields."""
    from core.depth import learnability

    inside = []
    count = learnability.count_linear_pieces

    def probe(net, *args):
        inside.append(torch.get_num_threads())       # called while each frame is built, inside the loop
        return count(net, *args)

    monkeypatch.setattr(learnability, "count_linear_pieces", probe)
    from core import device

    device.default()          # its one-time thread set-up must not land inside the measured window
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        between = [torch.get_num_threads() for _ in D.fit_shallow_vs_deep(3, steps=30, every=10, seed=1)]
    finally:
        torch.set_num_threads(before)
    assert set(inside) == {1} and len(inside) == 2 * 4       # 4 frames (steps 0, 10, 20, 30), 2 nets each
    assert between == [2, 2, 2, 2]
