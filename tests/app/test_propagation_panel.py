"""The Signal Propagation panel, driven as a user would: sliders, typing, dragging, bursts, closing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.panels.propagation import PropagationPanel
from app.runner import Runner
from core.activations import NAMES
from tests.app.conftest import close_panel, open_panel, type_value, wait_rendered

SMALL = dict(width=120, depth=6, seeds=1)


@pytest.fixture
def panel(qtbot):
    p, runner = open_panel(qtbot, PropagationPanel, **SMALL)
    yield p
    close_panel(runner)


def _relu_q_map(q, sw, sb):
    return sw**2 * q / 2 + sb**2  # THEORY.md §2: E[relu(√q z)²] = q/2


def test_dragging_sigma_w_rerenders_the_theory(panel, qtbot):
    panel.set_params(phi="relu", sigma_b=0.2)
    wait_rendered(qtbot, panel)
    slider = panel.controls.controls["sigma_w"].slider
    with qtbot.waitSignal(panel.rendered, timeout=10_000):
        slider.setValue(1.2)
    wait_rendered(qtbot, panel)
    assert panel.params.sigma_w == pytest.approx(1.2)
    x, y = panel.q_curve.getData()
    np.testing.assert_allclose(y, _relu_q_map(x, 1.2, 0.2), rtol=1e-9, atol=1e-12)


def test_typing_a_value_is_as_good_as_dragging(panel, qtbot):
    type_value(panel, "sigma_b", "0.35")
    assert panel.params.sigma_b == 0.35
    assert panel.controls.controls["sigma_b"].slider.value() == pytest.approx(0.35)


@pytest.mark.parametrize(("text", "words"), [("9", "out of range"), ("abc", "not a number"),
                                              ("nan", "finite"), ("-1", "out of range")])
def test_out_of_range_typing_is_refused_with_a_message(panel, text, words):
    before = panel.params
    box = type_value(panel, "sigma_w", text)
    assert panel.params == before
    assert words in panel.controls.message.text()
    assert "σ_w" in panel.controls.message.text()
    assert box.text() == f"{before.sigma_w:g}"


def test_dragging_the_phase_diagram_marker_moves_the_sliders(panel, qtbot):
    with qtbot.waitSignal(panel.rendered, timeout=10_000):
        panel.marker.setPos(2.5, 0.8)
    assert (panel.params.sigma_w, panel.params.sigma_b) == (2.5, 0.8)
    assert panel.controls.controls["sigma_w"].slider.value() == pytest.approx(2.5)
    assert panel.controls.controls["sigma_b"].edit.text() == "0.8"


def test_phase_diagram_marks_the_order_to_chaos_line(panel, qtbot):
    panel.set_params(phi="relu", noise="dropout", keep_prob=0.5)
    wait_rendered(qtbot, panel)
    x, y = panel.critical.getData()
    # Pretorius et al. 2018: noisy ReLU is critical at σ_w = √(2/μ₂) = √(2p) when σ_b = 0.
    assert y[0] == 0.0 and x[0] == pytest.approx(1.0, abs=0.02)


def test_divergent_variance_is_said_plainly(panel, qtbot):
    panel.set_params(phi="relu", sigma_w=1.8, sigma_b=0.0)
    wait_rendered(qtbot, panel)
    assert panel.banner.isVisible() and "diverges" in panel.banner.text()
    panel.set_params(sigma_w=1.2)
    wait_rendered(qtbot, panel)
    assert not panel.banner.isVisible()


def test_simulation_dots_follow_the_theory_lines(panel, qtbot):
    panel.set_params(phi="tanh", sigma_w=1.5, sigma_b=0.3, width=1000, depth=10, seeds=2, q0=1.0)
    wait_rendered(qtbot, panel, timeout=60_000)
    layers, q_sim = panel.q_sim.getData()
    _, q_theory = panel.q_theory.getData()
    assert len(layers) == 11
    np.testing.assert_allclose(q_sim[1:], q_theory[1:], rtol=0.1)


@pytest.mark.parametrize("phi", NAMES)
def test_every_activation_renders_without_error(panel, qtbot, phi):
    panel.set_params(phi=phi, sigma_w=1.6, sigma_b=0.2)
    wait_rendered(qtbot, panel, timeout=60_000)
    assert "could not" not in panel.banner.text(), panel.banner.text()
    x, y = panel.c_curve.getData()
    assert np.all(np.isfinite(y))


def test_two_hundred_rapid_slider_changes_end_matching_the_last_value(panel, qtbot):
    panel.set_params(phi="relu", sigma_b=0.1)
    wait_rendered(qtbot, panel)
    slider = panel.controls.controls["sigma_w"].slider
    values = np.linspace(0.5, 1.4, 200)
    for v in values:
        slider.setValue(float(v))
    wait_rendered(qtbot, panel, timeout=60_000)
    last = round(float(values[-1]), 3)
    assert panel.params.sigma_w == pytest.approx(last, abs=1e-3)
    x, y = panel.q_curve.getData()
    np.testing.assert_allclose(y, _relu_q_map(x, panel.params.sigma_w, 0.1), rtol=1e-9)
    assert panel.marker.pos().x() == pytest.approx(panel.params.sigma_w)


def test_critical_button_lands_on_chi1_equal_one(panel, qtbot):
    panel.set_params(phi="erf", sigma_b=0.0)
    panel.set_critical()
    assert panel.params.sigma_w == pytest.approx(math.sqrt(math.pi) / 2, abs=1e-3)


def test_closing_during_a_simulation_is_clean(qtbot):
    runner = Runner()
    p = PropagationPanel(runner)
    qtbot.addWidget(p)
    p.show()
    p.set_params(width=3000, depth=150, seeds=10)
    qtbot.waitUntil(lambda: runner.is_busy("propagation:simulation"), timeout=5_000)
    qtbot.wait(400)
    p.close()
    assert runner.shutdown(30_000)
    assert runner.active_threads() == 0


def test_dots_of_other_parameters_go_and_the_simulation_waits_for_the_theory(panel, qtbot):
    def points(item):
        x, _ = item.getData()
        return 0 if x is None else len(x)

    assert points(panel.q_sim) == SMALL["depth"] + 1
    order = []
    panel.runner.done.connect(lambda key, *_: order.append(key.split(":")[1]))
    panel.set_params(sigma_w=2.1)
    assert points(panel.q_sim) == points(panel.c_sim) == points(panel.hist_pre[1][1]) == 0
    wait_rendered(qtbot, panel)
    assert order.index("theory") < order.index("simulation")
    assert points(panel.q_sim) == SMALL["depth"] + 1 and points(panel.hist_grad[1][1]) > 0


def test_histogram_density_is_a_normalised_histogram():
    from app.panels.propagation import HIST_BINS, histogram_density

    samples = np.random.default_rng(0).normal(0.0, 2.0, 200_000)
    x, density = histogram_density(np.r_[samples, np.nan, np.inf])
    assert x.size == density.size == HIST_BINS
    width = x[1] - x[0]
    assert density.sum() * width == pytest.approx(1.0, abs=1e-12)  # normalised over ±4 sd
    gauss = np.exp(-0.5 * (x / 2.0) ** 2) / (2.0 * math.sqrt(2 * math.pi))
    # N(0, 4): ~15 000 samples in a central bin, so ~1 % noise; 3 % is three standard deviations.
    np.testing.assert_allclose(density, gauss, atol=0.03 * gauss.max())
    assert histogram_density(np.zeros(5))[0].size == 0
