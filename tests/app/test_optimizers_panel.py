"""The Optimizers panel, driven as a lecturer would: both pages, drags, Train / Cancel, rapid slider moves.

Checks read what is plotted (the items' data and titles), and compare it with the engine's closed forms.
"""

from __future__ import annotations

import numpy as np
import pytest

import app.panels.optimizers as OP
from app.panels.optimizers import OptimizersPanel
from core.optimizers import playground as PG
from core.optimizers import quadratic as Q
from tests.app.conftest import close_panel, open_panel, type_value, wait_rendered

NETWORK = dict(data="moons", width=8, depth=2, train_steps=20, batch=32, show_gd=True, show_heavy_ball=False,
               show_nesterov=False, show_adam=True)


@pytest.fixture
def small_sweeps(monkeypatch):
    monkeypatch.setattr(OP, "SWEEP_B0", np.array([1e-4, 1e-2, 1.0, 1e2]))
    monkeypatch.setattr(OP, "LS_SIZE", (100, 10))
    monkeypatch.setattr(OP, "LS_STEPS", 60)
    monkeypatch.setattr(OP, "DIGITS_B0", np.array([1e-3, 1.0]))
    monkeypatch.setattr(OP, "DIGITS_EPOCHS", 1)


@pytest.fixture
def panel(qtbot):
    p, runner = open_panel(qtbot, OptimizersPanel, steps=200)
    yield p
    close_panel(runner)


def _data(item):
    """The data as set (``getData`` would give log10 of it on a log axis)."""
    x, y = item.xData, item.yData
    return (np.zeros(0), np.zeros(0)) if x is None else (np.asarray(x), np.asarray(y))


def test_every_quadratics_plot_renders_and_agrees_with_the_closed_forms(panel):
    assert set(panel.plots) >= {"playground", "path_loss", "momentum_map", "rates", "rate_kappa", "loss", "accuracy",
                                "sweep_least_squares", "sweep_digits", "bn_loss", "bn_spread"}
    assert not panel.error_banner.isVisible(), panel.error_banner.text()
    for n in panel.params.chosen:
        x, y = _data(panel.path_items[n])
        assert x.size == 201 and np.isfinite(x).all() and (x[0], y[0]) == (-1.4, 0.9)
    assert _data(panel.path_items["sgd"])[0].size == 0          # not ticked: not drawn
    assert panel.map_image.image is not None and panel.map_image.image.shape == (OP.MAP_SIZE, OP.MAP_SIZE)
    assert len(panel.contours.getData()[0]) > 100
    # κ = 100: the plotted rate lines have the closed-form slopes; the κ plot's lines are 1 − rate(κ)
    for n in OP.RATE_METHODS:
        x, y = _data(panel.error_lines[n])
        slope = (np.log(y[-1]) - np.log(y[0])) / (x[-1] - x[0])
        assert np.exp(slope) == pytest.approx(Q.rate(n, 100.0), rel=1e-9)
        kx, ky = _data(panel.kappa_lines[n])
        np.testing.assert_allclose(ky, 1 - Q.rate(n, kx), rtol=1e-12)
    star = panel.map_opt.getData()
    best = Q.tuned("heavy_ball", 0.01, 1.0)
    assert star[0][0] == pytest.approx(best["lr"]) and star[1][0] == pytest.approx(best["momentum"])


def test_dragging_the_start_point_redraws_the_paths_and_moves_the_sliders(qtbot, panel):
    before = panel.render_count
    panel.start_marker.setPos(0.5, -0.7)
    wait_rendered(qtbot, panel)
    assert panel.render_count > before
    assert (panel.params.start_x, panel.params.start_y) == (0.5, -0.7)
    assert panel.controls.controls["start_x"].edit.text() == "0.5"
    assert panel.controls.controls["start_y"].edit.text() == "-0.7"
    x, y = _data(panel.path_items["gd"])
    assert (x[0], y[0]) == (0.5, -0.7)


def test_dragging_the_map_marker_sets_eta_and_beta_and_redraws_heavy_ball(qtbot, panel):
    panel.map_marker.setPos(1.2, 0.55)
    wait_rendered(qtbot, panel)
    assert panel.params.lr == pytest.approx(1.2) and panel.params.momentum == pytest.approx(0.55)
    assert panel.controls.controls["lr"].edit.text() == "1.2"
    assert panel.controls.controls["momentum"].edit.text() == "0.55"
    surf = PG.surface("quadratic", 100.0, 30.0)
    want = PG.paths(surf, (-1.4, 0.9), [PG.Settings("heavy_ball", 1.2, 0.55)], 200).xy[0]
    x, y = _data(panel.path_items["heavy_ball"])
    np.testing.assert_allclose(np.column_stack([x, y]), want[:x.size], rtol=0, atol=1e-12)
    # and typing moves the marker back
    type_value(panel, "momentum", "0.3")
    wait_rendered(qtbot, panel)
    assert panel.map_marker.pos().y() == pytest.approx(0.3)


def test_tuned_settings_and_the_tune_button_use_polyaks_values(qtbot, panel):
    panel.set_params(tuned=True)
    wait_rendered(qtbot, panel)
    best = Q.tuned("heavy_ball", 0.01, 1.0)
    label = panel.plots["playground"].getPlotItem().legend.getLabel(panel.path_items["heavy_ball"]).text
    assert f"tuned α={best['lr']:.3g}" in label
    panel.tune_button.click()
    wait_rendered(qtbot, panel)
    assert panel.params.lr == pytest.approx(best["lr"], rel=1e-5) and not panel.params.tuned


def test_every_surface_draws_and_a_diverging_path_is_cut_with_a_note(qtbot, panel):
    for fn in ("banana", "beale", "saddle", "lessard", "quadratic"):
        panel.set_params(function=fn, lr=0.001)
        wait_rendered(qtbot, panel)
        assert not panel.error_banner.isVisible(), (fn, panel.error_banner.text())
        assert np.isfinite(_data(panel.path_items["gd"])[1]).all()
    panel.set_params(lr=5.0)            # GD at η = 5 > 2/L diverges on the quadratic
    wait_rendered(qtbot, panel)
    assert "GD diverged at step" in panel.banner.text()
    x, y = _data(panel.path_items["gd"])
    assert np.isfinite(x).all() and np.isfinite(y).all() and x.size < 201


def test_two_hundred_rapid_eta_changes_end_on_the_last_value(qtbot):
    p, runner = open_panel(qtbot, OptimizersPanel, steps=100)
    values = np.geomspace(0.01, 1.5, 200)
    for v in values:
        p.set_params(lr=float(v))
    wait_rendered(qtbot, p)
    assert p.params.lr == pytest.approx(values[-1])
    surf = PG.surface("quadratic", 100.0, 30.0)
    want = PG.paths(surf, (-1.4, 0.9), [PG.Settings("gd", float(values[-1]))], 100).xy[0]
    x, y = _data(p.path_items["gd"])
    np.testing.assert_allclose(np.column_stack([x, y]), want, rtol=0, atol=1e-12)
    close_panel(runner)
    assert runner.active_threads() == 0


def test_networks_page_trains_cancels_and_trains_again(qtbot, small_sweeps):
    p, runner = open_panel(qtbot, OptimizersPanel, timeout=120_000, view="networks", **NETWORK)
    try:
        assert p.pages.currentIndex() == 1
        for n in ("gd", "adam"):
            x, y = _data(p.loss_items[n])
            assert x.size >= 2 and x[-1] >= 20 and np.isfinite(y).all()
            assert _data(p.acc_items[n])[1].max() <= 1.0
        assert _data(p.loss_items["nesterov"])[0].size == 0
        for i in range(2):
            assert _data(p.bn_loss[i])[0].size >= 2
            assert _data(p.bn_spread[i])[0].size == NETWORK["depth"]
        # the least-squares sweep: AdaGrad-Norm finite everywhere, constant-step SGD diverged (crosses) at b₀ = 1e-4
        dots, _line, crosses = p.sweep_items[("ls", "adagrad_norm")]
        assert _data(dots)[0].size == 4
        assert _data(p.sweep_items[("ls", "sgd_constant")][2])[0].size >= 1
        assert np.isfinite(_data(p.sweep_items[("digits", "adagrad_norm")][0])[1]).all()
        # Train, Cancel at once, Train again: the curves come back, no thread is left
        p.set_params(train_steps=400)
        assert "Press Train" in p.plots["loss"].getPlotItem().titleLabel.text
        p.train_button.click()
        qtbot.waitUntil(lambda: p.runner.is_busy(p.job_key("networks")), timeout=5000)
        p.cancel()
        qtbot.waitUntil(lambda: not p.is_busy(), timeout=30_000)
        assert "Cancelled" in p.plots["loss"].getPlotItem().titleLabel.text
        p.set_params(train_steps=20)
        p.train_button.click()
        wait_rendered(qtbot, p, timeout=60_000)
        assert _data(p.loss_items["adam"])[0][-1] >= 20
    finally:
        close_panel(runner)


def test_a_diverging_network_run_stops_with_a_note_not_nan(qtbot, small_sweeps):
    """A deep linear net under GD at η = 10 blows up within a few steps; Adam beside it goes on."""
    p, runner = open_panel(qtbot, OptimizersPanel, timeout=120_000, view="networks",
                           **{**NETWORK, "phi": "linear", "net_lr": 10.0})
    try:
        assert "GD: diverged at step" in p.banner.text()
        x, y = _data(p.loss_items["gd"])
        assert np.isfinite(y).all() and x[-1] < 20
        assert _data(p.loss_items["adam"])[0][-1] >= 20
        assert "GD (diverged)" in p.plots["accuracy"].getPlotItem().legend.getLabel(p.acc_items["gd"]).text
    finally:
        close_panel(runner)


def test_export_writes_every_plot(qtbot, panel, tmp_path):
    paths = panel.export(tmp_path, png_width=400)
    names = {p.name for p in paths}
    for key in panel.plots:
        assert f"optimizers_{key}.png" in names


def test_the_presets_load_and_name_what_they_show():
    from app.paramsets import presets
    from core.optimizers.settings import OptimizersParams

    shipped = presets("optimizers")
    titles = {p.title for p in shipped}
    for want in ("Goh — momentum on the banana", "κ = 100: GD vs heavy ball vs Nesterov",
                 "Heavy ball fails off quadratics", "AdaGrad-Norm: no tuning", "SGD's noise floor",
                 "Batch norm rescues a deep tanh net"):
        assert want in titles
    for p in shipped:
        assert isinstance(p.params, OptimizersParams)


def test_a_new_function_starts_from_its_own_start_and_a_small_screen_reflows_the_plots(qtbot, panel):
    panel.set_params(function="beale", lr=0.001)
    wait_rendered(qtbot, panel)
    assert (panel.params.start_x, panel.params.start_y) == PG.surface("beale").start
    assert panel.start_marker.pos().x() == pytest.approx(1.0)
    panel.resize(1024, 768)
    qtbot.waitUntil(lambda: panel._page_columns == 2, timeout=5000)
    qtbot.wait(50)
    grid = panel._page_grids[0]
    positions = {k: grid.getItemPosition(grid.indexOf(panel.plots[k]))[:2] for k in ("playground", "momentum_map",
                                                                                     "path_loss", "rate_kappa")}
    assert positions == {"playground": (0, 0), "momentum_map": (0, 1), "path_loss": (1, 1), "rate_kappa": (2, 1)}
    if hasattr(panel, "plot_grid"):
        assert not panel.plot_grid.horizontalScrollBar().isVisible()
    panel.resize(1400, 900)
    qtbot.waitUntil(lambda: panel._page_columns == 3, timeout=5000)


class _DoubleClick:
    def double(self) -> bool:
        return True


def test_double_click_enlarges_a_plot_of_its_page_and_again_puts_it_back(qtbot, panel):
    """The pages are the panel's own grids: focus must enlarge the plot, not the whole page."""
    page = panel.pages.currentWidget()
    widget = panel.plots["momentum_map"]
    shown = {k for k, w in panel.plots.items() if w.isVisible()}
    widget.scene().sigMouseClicked.emit(_DoubleClick())
    assert panel.focused_plot() == "momentum_map"
    qtbot.waitUntil(lambda: widget.width() >= 0.95 * page.width() and widget.height() >= 0.9 * page.height())
    assert not any(w.isVisible() for k, w in panel.plots.items() if k != "momentum_map")
    widget.scene().sigMouseClicked.emit(_DoubleClick())
    assert panel.focused_plot() is None
    qtbot.waitUntil(lambda: {k for k, w in panel.plots.items() if w.isVisible()} == shown)
    qtbot.waitUntil(lambda: widget.width() < 0.6 * page.width())


@pytest.mark.parametrize("size", [(1000, 560), (1440, 780), (1560, 1000)])    # panels of 1280×720 and 1920×1080
def test_the_momentum_maps_labels_never_cover_one_another_or_the_axes_even_in_presentation_mode(qtbot, size):
    from app import plots

    plots.set_style(presentation=True)
    try:
        p, runner = open_panel(qtbot, OptimizersPanel, steps=200)
        p.resize(*size)           # text at presentation size
        qtbot.wait(300)
        p._draw_map(OP.map_job(p.params))
        texts = [t for t in (*p.map_iso_text, p.map_opt_text, p.map_edge_text, p.map_marker.label())
                 if t.toPlainText()]
        assert sum(t in p.map_iso_text for t in texts) >= 2            # some levels still labelled
        boxes = [t.sceneBoundingRect() for t in texts]
        for i, a in enumerate(boxes):
            assert not any(a.intersects(b) for b in boxes[i + 1:]), texts[i].toPlainText()
        inside = p.plots["momentum_map"].getPlotItem().vb.sceneBoundingRect()
        for t in p.map_iso_text:           # none over the axes and their tick labels
            assert not t.toPlainText() or inside.contains(t.sceneBoundingRect()), t.toPlainText()
        close_panel(runner)
    finally:
        plots.set_style(presentation=False)
