"""core.optimizers against torch.optim, the closed forms of THEORY.md §4, numpy's eigenvalues and Ward et al."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core import optimizers as O
from core.optimizers import playground as PG
from core.optimizers import quadratic as Q

torch.set_default_dtype(torch.float32)


# -- make -------------------------------------------------------------------------------------------------

def test_make_returns_torch_optim_classes_with_the_mapping_of_the_docstring():
    p = [torch.nn.Parameter(torch.zeros(3))]
    expected = {"gd": torch.optim.SGD, "sgd": torch.optim.SGD, "heavy_ball": torch.optim.SGD,
                "nesterov": torch.optim.SGD, "adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop,
                "adam": torch.optim.Adam}
    for name in O.NAMES:
        opt = O.make(name, p)
        assert isinstance(opt, torch.optim.Optimizer)
        if name in expected:
            assert type(opt) is expected[name]
    hb = O.make("heavy_ball", p, lr=0.1, beta=0.7).param_groups[0]
    assert (hb["momentum"], hb["dampening"], hb["nesterov"]) == (0.7, 0.0, False)
    assert O.make("nesterov", p, lr=0.1, momentum=0.5).param_groups[0]["nesterov"] is True
    assert type(O.make("adagrad_norm", p, b0=0.5)) is O.AdaGradNorm
    assert O.make("adam", p, beta1=0.8).param_groups[0]["betas"] == (0.8, 0.999)


@pytest.mark.parametrize("name, hyper, word", [
    ("sgdd", {}, "sgdd"), ("sgd", {"momentum": 0.9}, "momentum"), ("adam", {"b0": 1.0}, "b0"),
    ("heavy_ball", {"beta": 1.0}, "momentum"), ("nesterov", {"momentum": 0.0}, "momentum"),
    ("adam", {"lr": -1e-3}, "lr"), ("adam", {"lr": float("nan")}, "lr"), ("adagrad_norm", {"b0": 0.0}, "b0"),
    ("adam", {"betas": (0.9,)}, "betas"), ("rmsprop", {"centered": 1}, "centered"),
])
def test_make_refuses_bad_names_and_values_naming_them(name, hyper, word):
    with pytest.raises(ValueError, match=word):
        O.make(name, [torch.nn.Parameter(torch.zeros(2))], **hyper)


def test_importing_the_engine_does_not_import_torch():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys, core.optimizers; print('torch' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- AdaGrad-Norm -----------------------------------------------------------------------------------------

def test_adagrad_norm_equals_the_hand_written_update_in_float64():
    """Ward, Wu & Bottou (2019) Alg. 1: b² += ‖g‖² over ALL parameters, θ −= η g / b, to 1e−12."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 5))
    y = rng.standard_normal(40)
    w0, c0 = rng.standard_normal(5), rng.standard_normal(1)
    w = torch.tensor(w0, requires_grad=True)
    c = torch.tensor(c0, requires_grad=True)
    # two parameter groups with different η: b is still one scalar over both
    opt = O.AdaGradNorm([{"params": [w], "lr": 0.7}, {"params": [c], "lr": 0.3}], b0=0.05)
    X, Y = torch.tensor(x), torch.tensor(y)
    b2, ww, cc = 0.05 ** 2, w0.copy(), c0.copy()
    for _ in range(25):
        opt.zero_grad()
        loss = 0.5 * ((X @ w + c - Y) ** 2).mean()
        loss.backward()
        opt.step()
        r = x @ ww + cc - y
        gw, gc = x.T @ r / len(y), np.array([r.mean()])
        b2 += gw @ gw + gc @ gc
        ww, cc = ww - 0.7 * gw / math.sqrt(b2), cc - 0.3 * gc / math.sqrt(b2)
        np.testing.assert_allclose(w.detach().numpy(), ww, rtol=0, atol=1e-12)
        np.testing.assert_allclose(c.detach().numpy(), cc, rtol=0, atol=1e-12)
    assert opt.b == pytest.approx(math.sqrt(b2), rel=1e-12)
    # state survives a state_dict round trip
    fresh = O.AdaGradNorm([{"params": [w], "lr": 0.7}, {"params": [c], "lr": 0.3}], b0=0.05)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.b == pytest.approx(opt.b, rel=1e-15)


def test_adagrad_norm_converges_on_least_squares_where_constant_step_gd_diverges():
    """Ward et al. (2019), Fig. 1 protocol (smaller: n = 200, d = 20, 400 steps): AdaGrad-Norm with η = 1
    reaches F < 1e−10 for b₀ from 1e−4 to 1; GD with the constant step 1/b₀ diverges for b₀ < L/2."""
    ls = O.least_squares_problem(n=200, d=20, seed=0)
    b0 = np.array([1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    final = O.least_squares_sweep(ls, b0, steps=400, methods=("adagrad_norm", "sgd_constant"))
    assert np.all(final["adagrad_norm"] < 1e-10), final["adagrad_norm"]
    diverging = b0 < ls.L / 2
    assert diverging.sum() >= 3
    assert np.all(~np.isfinite(final["sgd_constant"][diverging]) | (final["sgd_constant"][diverging] > 1e3))
    assert final["sgd_constant"][-1] < 1e-6       # b₀ = 1 > L/2: step 1 < 2/L converges


# -- tuned settings and rates -----------------------------------------------------------------------------

def test_tuned_settings_and_rates_are_theory_md_numbers_at_kappa_100():
    hb = O.tuned("heavy_ball", 1.0, 100.0)
    assert hb["lr"] == pytest.approx(0.0330579, abs=5e-8)
    assert hb["momentum"] == pytest.approx(0.669421, abs=5e-7)
    assert O.tuned("gd", 1.0, 100.0)["lr"] == pytest.approx(2 / 101)
    assert O.rate("gd", 100) == pytest.approx(0.980198, abs=5e-7)
    assert O.rate("heavy_ball", 100) == pytest.approx(0.818182, abs=5e-7)
    assert O.rate("nesterov", 100, nesterov_form="convex") == pytest.approx(0.9, abs=1e-12)
    assert O.rate("nesterov", 100) == pytest.approx(1 - 2 / math.sqrt(301), abs=1e-12)
    with pytest.raises(ValueError, match="adam"):
        O.tuned("adam", 1, 10)


def _torch_errors(name, lam, steps, seed=0, **settings):
    """‖θ_k‖ under torch.optim itself (float64) on ½ Σ λᵢθᵢ²."""
    theta0 = np.random.default_rng(seed).standard_normal(lam.shape)
    p = torch.tensor(theta0 / np.linalg.norm(theta0), requires_grad=True)
    A = torch.tensor(lam)
    opt = O.make(name, [p], **settings)
    out = [1.0]
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * (A * p * p).sum()).backward()
        opt.step()
        out.append(float(p.detach().norm()))
    return np.array(out)


@pytest.mark.parametrize("kappa", [10.0, 100.0, 1000.0])
@pytest.mark.parametrize("name, form", [("gd", "quadratic"), ("heavy_ball", "quadratic"),
                                        ("nesterov", "quadratic"), ("nesterov", "convex")])
def test_measured_rates_of_torch_optim_at_tuned_settings_agree_with_rate(kappa, name, form):
    """torch.optim at ``tuned`` on a 30-dim quadratic, spectrum [1, κ]: the fitted rate within 1 % of ``rate``
    (fitting k ρᵏ for heavy ball and Nesterov, whose extreme roots are repeated)."""
    lam = Q.spectrum(30, 1.0, kappa)
    settings = Q.tuned(name, 1.0, kappa, nesterov_form=form)
    theory = Q.rate(name, kappa, nesterov_form=form)
    steps = Q.steps_for(theory, decades=12, hi=4000) if name == "gd" else Q.steps_for(theory, decades=40)
    errors = _torch_errors(name, lam, steps, **settings)
    measured = Q.fit_rate(errors, repeated=name != "gd")
    assert measured == pytest.approx(theory, rel=0.01)
    assert measured == pytest.approx(theory, rel=1e-3)     # in fact much closer
    # the numpy iteration the panel draws is torch.optim's, step for step
    mine = Q.linear_errors(name, lam, min(steps, 300), settings["lr"], settings.get("momentum", 0.0))
    np.testing.assert_allclose(mine, errors[:mine.size], rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("kappa", [10.0, 1e4])
@pytest.mark.parametrize("name", ["gd", "heavy_ball", "nesterov"])
def test_linear_errors_in_chunks_equal_the_step_by_step_iteration(kappa, name):
    """The chunked powers reproduce torch.optim.SGD's update, written out one step at a time in float64,
    over a whole panel-sized run (thousands of steps, down to errors of 1e-30): rtol 1e-6, where the
    rounding of the two ways parts at the decayed end."""
    lam = Q.spectrum(50, 1.0, kappa)
    t = Q.tuned(name, 1.0, kappa)
    lr, beta = t["lr"], t.get("momentum", 0.0)
    steps = Q.steps_for(Q.rate(name, kappa), decades=30, hi=5000)
    theta = np.random.default_rng(0).standard_normal(lam.shape)
    theta /= np.linalg.norm(theta)
    buf = np.zeros_like(theta)
    loop = [1.0]
    for _ in range(steps):
        g = lam * theta
        buf = beta * buf + g
        theta = theta - lr * (g + beta * buf if name == "nesterov" else buf)
        loop.append(float(np.linalg.norm(theta)))
    np.testing.assert_allclose(Q.linear_errors(name, lam, steps, lr, beta), loop, rtol=1e-6, atol=0)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9])
def test_heavy_ball_diverges_just_past_alpha_lambda_2_plus_2beta(beta):
    lam = np.array([1.0])
    edge = 2 + 2 * beta
    inside = _torch_errors("heavy_ball", lam, 600, lr=edge * 0.99, momentum=beta)
    outside = _torch_errors("heavy_ball", lam, 600, lr=edge * 1.01, momentum=beta)
    assert inside[-1] < 1e-3
    assert outside[-1] > 1e3
    assert Q.heavy_ball_radius(edge * 0.99, beta, 1.0, 1.0) < 1 < Q.heavy_ball_radius(edge * 1.01, beta, 1.0, 1.0)


def test_momentum_map_equals_numpys_eigenvalues_of_the_iteration_matrix():
    mu, L = 0.01, 1.0
    mm = Q.momentum_map(mu, L, size=64)
    a, b = np.meshgrid(mm.alpha, mm.beta)
    radius = np.maximum(*(np.abs(np.linalg.eigvals(Q.iteration_matrix("heavy_ball", lam, a, b))).max(-1)
                          for lam in (mu, L)))
    # double roots (on the critical-damping curves) are where eigvals is only √ε accurate
    np.testing.assert_allclose(mm.rate, radius, rtol=0, atol=2e-7)
    assert np.median(np.abs(mm.rate - radius)) < 1e-14
    # the optimum is Polyak's, and no grid point beats it
    assert mm.rate_opt == pytest.approx(Q.heavy_ball_radius(mm.alpha_opt, mm.beta_opt, mu, L), rel=1e-7)
    assert mm.rate.min() >= mm.rate_opt - 1e-12
    # intermediate eigenvalues never exceed the extremes (why two matrices per point suffice)
    lam_mid = np.linspace(mu, L, 17)[1:-1]
    mid = np.abs(np.linalg.eigvals(Q.iteration_matrix("heavy_ball", lam_mid[:, None, None], a, b))).max(-1).max(0)
    assert np.all(mid <= radius + 2e-7)


def test_torch_nesterov_obeys_the_characteristic_recurrence_of_theory_mds_nesterov_matrix():
    """torch's iterates (the look-ahead points θ̂ of THEORY.md's form) are a linear function of THEORY's state,
    so they satisfy z² = tr(T) z − det(T) of its iteration matrix T exactly (here with complex roots)."""
    lam, lr, beta = 0.3, 0.7, 0.6
    T = Q.iteration_matrix("nesterov", lam, lr, beta)
    p = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = O.make("nesterov", [p], lr=lr, momentum=beta)
    xs = [1.0]
    for _ in range(30):
        opt.zero_grad()
        (0.5 * lam * p * p).sum().backward()
        opt.step()
        xs.append(float(p.detach()))
    x = np.array(xs)
    np.testing.assert_allclose(x[2:], np.trace(T) * x[1:-1] - np.linalg.det(T) * x[:-2], rtol=0, atol=1e-14)
    assert np.trace(T) ** 2 < 4 * np.linalg.det(T)          # complex roots: modulus √det
    assert Q.root_modulus(np.trace(T), np.linalg.det(T)) == pytest.approx(np.abs(np.linalg.eigvals(T)).max())


# -- the playground is torch.optim ------------------------------------------------------------------------

def _torch_path(surf, start, name, steps, lr, noise=None, schedule="constant", **hyper):
    from core.training import schedule_factor

    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    coef = torch.tensor(surf.coef)
    opt = O.make(name, [p], lr=lr, **hyper)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule_factor(schedule, steps))
    out = [p.detach().clone().numpy()]
    for k in range(steps):
        opt.zero_grad()
        px = p[0] ** torch.arange(coef.shape[0], dtype=torch.float64)
        py = p[1] ** torch.arange(coef.shape[1], dtype=torch.float64)
        f = px @ coef @ py
        if surf.piecewise:
            t = torch.clamp(p[0] - 1, 0, 1)
            f = f - 24 / 25 * (0.5 * t * t + torch.clamp(p[0] - 2, min=0))
        f.backward()
        if noise is not None:
            p.grad += torch.tensor(noise[k])
        opt.step()
        sched.step()
        out.append(p.detach().clone().numpy())
    return np.array(out)


@pytest.mark.parametrize("fn", PG.SURFACES)
def test_hand_written_gradients_equal_the_surfaces_polynomials_and_finite_differences(fn):
    surf = PG.surface(fn, kappa=30.0, angle=25.0)
    pts = np.random.default_rng(1).uniform(-3, 3, (40, 2))
    hand = np.array([surf.grad2(float(x), float(y)) for x, y in pts])
    np.testing.assert_allclose(hand, surf.gradient(pts), rtol=1e-12, atol=1e-12)
    h = 1e-6
    fd = np.stack([(surf.value(pts[:, 0] + h, pts[:, 1]) - surf.value(pts[:, 0] - h, pts[:, 1])) / (2 * h),
                   (surf.value(pts[:, 0], pts[:, 1] + h) - surf.value(pts[:, 0], pts[:, 1] - h)) / (2 * h)], axis=1)
    np.testing.assert_allclose(hand, fd, rtol=1e-6, atol=1e-5)
    assert np.allclose(surf.grad2(*surf.minimum), 0.0, atol=1e-12)


@pytest.mark.parametrize("fn", PG.SURFACES)
def test_playground_paths_equal_torch_optim_in_float64(fn):
    surf = PG.surface(fn, kappa=30.0, angle=25.0)
    start = (0.4, 0.3) if fn != "lessard" else (2.5, 1.0)
    settings = [PG.Settings("gd", 0.02), PG.Settings("sgd", 0.02), PG.Settings("heavy_ball", 0.01, 0.8),
                PG.Settings("nesterov", 0.01, 0.7), PG.Settings("adagrad", 0.1),
                PG.Settings("adagrad_norm", 0.2, b0=0.3),
                PG.Settings("rmsprop", 0.01), PG.Settings("adam", 0.02)]
    if fn in ("banana", "beale"):      # steeper: smaller steps so that every path stays finite
        settings = [PG.Settings(s.name, s.lr / 10, s.momentum, s.b0) for s in settings]
    steps = 12
    got = PG.paths(surf, start, settings, steps, schedule="1/sqrt(k)")
    assert np.isfinite(got.xy).all()
    for k, s in enumerate(settings):
        hyper = {"momentum": s.momentum} if s.name in ("heavy_ball", "nesterov") else {}
        if s.name == "adagrad_norm":
            hyper = {"b0": s.b0}
        ref = _torch_path(surf, start, s.name, steps, s.lr, schedule="1/sqrt(k)", **hyper)
        np.testing.assert_allclose(got.xy[k], ref, rtol=0, atol=1e-10, err_msg=s.name)


def test_playground_noise_is_common_to_the_noisy_optimisers_and_gd_sees_none():
    surf = PG.surface("quadratic", kappa=10.0)
    settings = [PG.Settings("gd", 0.3, noisy=False), PG.Settings("sgd", 0.3), PG.Settings("adam", 0.05)]
    got = PG.paths(surf, (1.0, 0.5), settings, 10, noise=0.5, seed=3)
    xi = np.random.default_rng(3).standard_normal((10, 1, 2))[:, 0] * 0.5
    np.testing.assert_allclose(got.xy[0], _torch_path(surf, (1.0, 0.5), "gd", 10, 0.3), atol=1e-12)
    np.testing.assert_allclose(got.xy[1], _torch_path(surf, (1.0, 0.5), "sgd", 10, 0.3, noise=xi), atol=1e-12)
    np.testing.assert_allclose(got.xy[2], _torch_path(surf, (1.0, 0.5), "adam", 10, 0.05, noise=xi), atol=1e-12)


def test_sgd_noise_floor_and_decaying_steps():
    """Constant-step SGD stalls at a noise floor ∝ η σ²; the 1/√k schedule keeps descending below it."""
    surf = PG.surface("quadratic", kappa=4.0)
    settings = [PG.Settings("sgd", 0.5)]
    constant = PG.paths(surf, (1.0, 1.0), settings, 4000, noise=0.3, seed=0).loss[0]
    decaying = PG.paths(surf, (1.0, 1.0), settings, 4000, noise=0.3, seed=0, schedule="1/sqrt(k)").loss[0]
    floor = constant[2000:].mean()
    # per eigen-direction x ← (1 − ηλ)x − ησξ has stationary variance ησ²/(λ(2 − ηλ)), so
    # E f = Σᵢ ½λᵢ Var = (ησ²/2) Σᵢ 1/(2 − ηλᵢ)
    lam = np.array([1.0, 0.25])
    assert floor == pytest.approx(0.5 * 0.09 / 2 * np.sum(1 / (2 - 0.5 * lam)), rel=0.15)
    assert decaying[-500:].mean() < floor / 5


def test_playground_cuts_a_diverging_path_and_never_returns_nan_inside_it():
    surf = PG.surface("quadratic", kappa=10.0)
    got = PG.paths(surf, (1.0, 1.0), [PG.Settings("gd", 2.5), PG.Settings("gd", 0.5)], 2000)
    assert got.diverged[0] > 0 and got.diverged[1] == -1
    n = got.length[0]
    assert np.isfinite(got.xy[0, :n]).all() and np.isfinite(got.loss[0, :n]).all()
    assert got.length[1] == 2001


def test_heavy_ball_cycles_on_lessards_function_but_converges_on_its_quadratic_bounds():
    """Lessard, Recht & Packard (2016) §4.6: with Polyak's α, β for [μ, L] = [1, 25] (here scaled by 1/25)
    heavy ball does not converge on their strongly convex f, while GD does."""
    surf = PG.surface("lessard")
    mu, L = surf.spectrum
    t = O.tuned("heavy_ball", mu, L)
    got = PG.paths(surf, (3.3, 0.0), [PG.Settings("heavy_ball", t["lr"], t["momentum"]),
                                      PG.Settings("gd", O.tuned("gd", mu, L)["lr"])], 2000)
    assert got.loss[0, -200:].min() > 1e-2      # still cycling after 2000 steps
    assert got.loss[1, -1] < 1e-12
    quad = PG.surface("quadratic", kappa=25.0)
    on_quad = PG.paths(quad, (3.3, 0.0), [PG.Settings("heavy_ball", t["lr"], t["momentum"])], 400)
    assert on_quad.loss[0, -1] < 1e-20


def test_batch_norm_rescues_a_deep_tanh_net_at_a_small_sigma_w():
    """Glorot & Bengio (2010) / Ioffe & Szegedy (2015): at σ_w = 0.6 a 10-layer tanh net's pre-activations
    shrink layer by layer and SGD makes no progress from the chance loss ln 10; with BN every layer keeps
    unit spread and the same SGD learns."""
    from core.data import load
    from core.nets import NetSpec

    data = load("digits", seed=0)
    spec = NetSpec(64, (32,) * 10, 10, phi="tanh", init="gaussian", sigma_w=0.6)
    *_, last = O.batch_norm_experiment(data, spec, 60, lr=0.1, batch_size=64, seed=0, every=20)
    plain, bn = last.curves
    assert plain.done and bn.done and not plain.note and not bn.note
    assert plain.train_loss[-1] == pytest.approx(math.log(10), abs=0.02)
    assert bn.train_loss[-1] < 2.0
    assert last.spread0[0][-1] / last.spread0[0][0] < 0.1          # vanishing through depth without BN
    np.testing.assert_allclose(last.spread0[1], 1.0, atol=0.01)    # BN: unit spread at every layer


def test_train_together_equals_each_run_trained_alone():
    """The networks page trains its optimisers as one batched model (per batch size); every run's curve must
    be the curve of its own ``core.training.train`` run from the same initial weights (float32 rounding:
    1e-5 relative), and a run that diverges stops with a note while the others go on."""
    from core import nets, training
    from core.data import load
    from core.nets import NetSpec
    from core.optimizers.experiments import Run, epochs_for, train_together

    data = load("digits", seed=0)
    spec = NetSpec(64, (16,), 10, phi="tanh")
    runs = [Run("GD", "gd", 0.5, None), Run("SGD", "sgd", 0.1, 64),
            Run("Nesterov", "nesterov", 0.05, 64, {"momentum": 0.9}), Run("Adam", "adam", 3e-3, 64),
            Run("SGD, far too fast", "sgd", 1e36, 64)]
    steps, every = 24, 6
    *_, together = train_together(data, spec, runs, steps, seed=3, every=every)
    for run, curve in zip(runs[:4], together, strict=False):
        model = nets.build(spec, seed=3)
        alone = list(training.train(model, data, optimizer=run.optimizer, lr=run.lr, seed=3, every=every,
                                    epochs=epochs_for(steps, data.n_train, run.batch_size),
                                    batch_size=run.batch_size, **run.hyper))
        alone = [r for r in alone if r.step <= curve.step[-1]]
        assert curve.done and not curve.note
        np.testing.assert_array_equal(curve.step, [r.step for r in alone])
        np.testing.assert_allclose(curve.train_loss, [r.train_loss for r in alone], rtol=1e-5, err_msg=run.label)
        np.testing.assert_allclose(curve.test_accuracy, [r.test_accuracy for r in alone], atol=1e-9,
                                   err_msg=run.label)
    wild = together[4]
    assert "diverged at step" in wild.note and np.all(np.isfinite(wild.train_loss))
