"""The trained-network pages: the heat maps draw what the engine streamed, the theory's depth scales over
them, and the Signal Propagation page trains, keeps, cancels and resumes its grids."""

from __future__ import annotations

import numpy as np
import pytest

from app.panels import trainability as TP
from app.panels.propagation import PropagationPanel
from app.runner import Runner
from core import trainability as T
from core.propagation import depth_scales
from tests.app.conftest import close_panel, open_panel

TINY = T.Budget(steps=6, width=6, batch_size=32, lr=0.01, columns=4, depths=(2, 4, 6))


@pytest.fixture(autouse=True)
def tiny_budgets(monkeypatch):
    for name in T.BUDGETS:
        monkeypatch.setitem(T.BUDGETS, name, TINY)
    T.clear_cache()
    yield
    T.clear_cache()


def _result(grid: T.Grid, accuracy: np.ndarray, done: np.ndarray) -> T.GridResult:
    shape = accuracy.shape
    return T.GridResult(grid, "digits", grid.columns(), np.array(grid.budget.depths), accuracy, np.zeros(shape),
                        np.zeros(shape, int), done, grid.xi_c(), 0.1, 1.0, "CPU")


def test_heat_map_shows_the_cells_streamed_so_far_under_the_depth_scales(qtbot):
    gp = TP.grid_plot("Trainability", "σ<sub>w</sub>²")
    qtbot.addWidget(gp.widget)
    grid = T.Grid(phi="tanh", sigma_b=0.05, budget=T.Budget(columns=4, depths=(10, 20, 30)))
    acc = np.full((3, 4), np.nan)
    acc[0] = [0.2, 0.5, 0.9, 0.8]
    TP.draw_grid(gp, _result(grid, acc, np.array([True, False, False])), TP.theory_curves(grid))
    image = gp.image.image
    assert image.shape == (4, 3)                                        # columns along x, depths along y
    np.testing.assert_array_equal(image[:, 0], acc[0])
    assert np.isnan(image[:, 1:]).all()                                 # not trained yet: transparent
    rect = gp.image.mapRectToParent(gp.image.boundingRect())
    x = grid.columns()
    dx = x[1] - x[0]
    assert rect.left() == pytest.approx(x[0] - dx / 2) and rect.right() == pytest.approx(x[-1] + dx / 2)
    assert rect.top() == pytest.approx(5.0) and rect.bottom() == pytest.approx(35.0)   # depths 10, 20, 30 ± 5
    xs, ys = gp.six_xi.getData()
    xi_x, xi = TP.theory_curves(grid)
    shown = np.isfinite(ys)
    # 6 ξ_c where it is inside the grid, nothing above it (the legend's room): Schoenholz et al.'s bound.
    np.testing.assert_allclose(ys[shown], 6 * xi[shown], rtol=1e-12)
    assert (6 * xi[~shown] > 35.0).all() and shown.any() and (~shown).any()
    # and the tabulated ξ_c agrees with the pointwise quadrature of core.propagation.depth_scales
    probe = np.array([0, len(xi_x) // 2, len(xi_x) - 1])
    exact = depth_scales(np.sqrt(xi_x[probe]), 0.05, "tanh")[1]
    np.testing.assert_allclose(xi[probe], exact, rtol=1e-3)
    vr = gp.widget.getPlotItem().getViewBox().viewRange()
    assert vr[1][0] == pytest.approx(5.0) and vr[1][1] > 35.0 * 1.2


def test_diverged_cells_are_marked_and_named_in_the_legend(qtbot):
    gp = TP.grid_plot("Noise", "keep probability p")
    qtbot.addWidget(gp.widget)
    grid = T.Grid(kind="noise", budget=TINY)
    acc = np.full((3, 4), 0.5)
    r = _result(grid, acc, np.array([True, True, True]))
    diverged = np.zeros((3, 4), int)
    diverged[2, 1] = 1
    r = T.GridResult(**{**r.__dict__, "diverged": diverged})
    TP.draw_grid(gp, r, TP.theory_curves(grid))
    x, y = gp.diverged.getData()
    assert list(x) == [grid.columns()[1]] and list(y) == [6]
    assert gp.widget.getPlotItem().legend.getLabel(gp.diverged) is not None


def test_propagation_trainability_row_trains_on_request_keeps_cancels_and_resumes(qtbot, tmp_path):
    panel, runner = open_panel(qtbot, PropagationPanel, width=60, depth=4, seeds=1)
    section = panel.trainability
    assert not runner.is_busy("propagation:trainability")     # nothing trains until asked
    assert section.hints["sigma_w"].isVisible()
    section.train_button.click()
    qtbot.waitUntil(lambda: all(k in section._results and section._results[k].complete for k in ("sigma_w", "noise")),
                    timeout=60_000)
    first = section._results["sigma_w"]
    assert np.isfinite(first.accuracy).all() and not section.hints["sigma_w"].isVisible()
    np.testing.assert_array_equal(section.plots["sigma_w"].image.image, first.accuracy.T)
    x, _ = section.collapse.dots["sigma_w"].getData()
    assert len(x) == np.isfinite(first.xi_c).sum() * len(first.depths)   # every cell with a finite ξ_c

    # (the grid's last partial is drawn before its worker has ended)
    qtbot.waitUntil(lambda: not runner.is_busy("propagation:trainability"), timeout=10_000)
    panel.set_params(depth=5)                                   # not what the grids depend on: nothing retrains
    assert not runner.is_busy("propagation:trainability")
    panel.set_params(sigma_b=0.3)                               # a new grid …
    qtbot.waitUntil(lambda: runner.is_busy("propagation:trainability"), timeout=5_000)
    qtbot.waitUntil(lambda: section._results.get("sigma_w") is not None
                    and section._results["sigma_w"].grid.sigma_b == 0.3 and section._results["sigma_w"].complete,
                    timeout=60_000)
    panel.set_params(sigma_b=0.05)                              # … and back: the kept grid, not retrained
    qtbot.waitUntil(lambda: section._results.get("sigma_w") is not None
                    and section._results["sigma_w"].grid.sigma_b == 0.05, timeout=10_000)
    np.testing.assert_array_equal(section._results["sigma_w"].accuracy, first.accuracy)
    assert section._results["sigma_w"].complete

    panel.set_params(phi="erf")                                 # cancel mid-grid, then resume
    qtbot.waitUntil(lambda: runner.is_busy("propagation:trainability"), timeout=5_000)
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=10_000)
    section.train()
    qtbot.waitUntil(lambda: section._results.get("sigma_w") is not None and section._results["sigma_w"].complete
                    and section._results["sigma_w"].grid.phi == "erf", timeout=60_000)

    paths = {p.name for p in panel.export(tmp_path)}
    assert {"propagation_trainability.png", "propagation_noise_depth.csv", "propagation_trainable_depth.svg"} <= paths
    head = (tmp_path / "propagation_trainability.csv").read_text().splitlines()[0]
    assert head.startswith('"test accuracy')
    close_panel(runner)


def test_a_panel_never_shown_trains_its_grids_before_it_draws(qtbot):
    """The CLI's render: no window, never shown, so the first refresh trains the quick grids."""
    runner = Runner()
    panel = PropagationPanel(runner)
    qtbot.addWidget(panel)
    panel.set_params(width=60, depth=4, seeds=1)
    section = panel.trainability
    assert section.budget_name() == TP.RENDER_BUDGET
    qtbot.waitUntil(lambda: not panel.is_busy() and panel.render_count > 0, timeout=60_000)
    assert all(section._results[k].complete for k in ("sigma_w", "noise"))
    close_panel(runner)


def test_spectra_learning_speed_row_trains_on_request_with_the_spectral_variance_in_the_legend(qtbot, monkeypatch):
    from app.panels.spectra import SpectraPanel

    panel, runner = open_panel(qtbot, SpectraPanel, depth=4, width=50)
    section = panel.learning_speed
    assert not runner.is_busy("spectra:learning_speed")        # nothing trains until asked
    section.steps = 20
    monkeypatch.setattr(TP, "SPEED_MIN_DEPTH", 4)
    section.train_button.click()
    qtbot.waitUntil(lambda: section._drawn is not None and not panel.is_busy(), timeout=60_000)
    legend = section.plot.widget.getPlotItem().legend
    runs = T.speed_runs()
    for i, run in enumerate(runs):
        x, y = section.plot.curves[i].getData()
        assert list(x) == [10, 20] and np.all(y > 0)          # a record every 10 steps
        text = legend.getLabel(section.plot.curves[i]).text
        assert text.startswith(run.label) and "σ²" in text
    # ReLU's spectrum: L (μ₂/μ₁² − 1 − s₁) = L with orthogonal weights, 2L with Gaussian ones (PSG 2017).
    assert "= 4," in legend.getLabel(section.plot.curves[2]).text
    assert "= 8," in legend.getLabel(section.plot.curves[3]).text
    panel.set_params(sigma_w=1.2)                               # not what the runs depend on
    assert not runner.is_busy("spectra:learning_speed")
    assert "learning_speed" in panel.plots
    close_panel(runner)
