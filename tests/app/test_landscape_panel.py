"""Loss Landscape panel offscreen: every plot renders, sliders redraw, a click picks a point, long jobs show
progress and cancel, export writes every plot. The networks are shrunk (one-epoch recipes, tiny Hessian and
teacher–student nets) so the GUI is tested, not the science (tests/core/test_landscape.py does that)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPointF, Qt

from app.panels.landscape import LandscapePanel
from core import models, nets, training
from core.landscape import experiments as E
from tests.app.conftest import close_panel, open_panel, type_value, wait_rendered

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

PLOTS = ("surface", "slices", "sharp", "connect", "spectrum", "sharpness", "index")


@pytest.fixture(scope="module", autouse=True)
def tiny_experiments():
    """One set of tiny networks for the whole module (trained once, shared by the tests as by the plots)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _shrink(monkeypatch)
        yield


def _shrink(monkeypatch):
    # the shared digits net is core.models' (a recipe of its own here, so other modules' nets are not reused)
    monkeypatch.setattr(E, "SHARED_RECIPE", models.Recipe(lr=3e-3, epochs=2, batch_size=256))
    monkeypatch.setattr(E, "SMALL_BATCH", E.Recipe("sgd", 0.05, 1, 128))
    monkeypatch.setattr(E, "LARGE_BATCH", E.Recipe("sgd", 0.5, 2, None))
    monkeypatch.setattr(E, "DEEP_RECIPE", E.Recipe("adam", 1e-3, 1, 256))
    monkeypatch.setattr(E, "HESSIAN_RECIPE", E.Recipe("adam", 3e-3, 1, 256))
    monkeypatch.setattr(E, "HESSIAN_WIDTH", 3)
    monkeypatch.setattr(E, "TRAJECTORY_SNAPSHOTS", 6)
    monkeypatch.setattr(E, "PB_SEEDS", (0,))
    monkeypatch.setattr(E, "PB_RATIOS", (0.25, 0.5))
    monkeypatch.setattr(E, "PB_STEPS", 12)
    monkeypatch.setattr(E, "PB_CHECKPOINTS", 3)
    monkeypatch.setattr(E, "EOS_HIDDEN", 3)
    monkeypatch.setattr(E, "EOS_STEPS", 20)
    monkeypatch.setattr(E, "EOS_CHECKPOINTS", 3)
    monkeypatch.setattr(E, "_trained", {})
    monkeypatch.setattr(E, "_results", {})


def _finished(qtbot, panel, timeout=300_000):
    qtbot.waitUntil(lambda: not panel.is_busy() and all(_has_data(panel, k) for k in PLOTS), timeout=timeout)
    assert not panel.error_banner.isVisible(), panel.error_banner.text()


def _has_data(panel, key) -> bool:
    item = panel.plots[key].getPlotItem()
    for child in item.items:
        if hasattr(child, "image") and getattr(child, "image", None) is not None:
            return True
        if hasattr(child, "getData"):
            x, _ = child.getData()
            if x is not None and len(x) > 0 and child is not getattr(panel, "trained_point", None):
                return True
    return False


def test_every_plot_renders_and_exports(qtbot, tmp_path):
    panel, runner = open_panel(qtbot, LandscapePanel, timeout=300_000, bezier_steps=20, slq_vectors=2, resolution=11)
    try:
        _finished(qtbot, panel)
        image = panel.surface_image.image
        assert image.shape == (11, 11) and np.isfinite(image).all()
        # the trained model is the grid's centre and the surface's lowest point nearby
        assert panel._surface.alphas[5] == 0.0 and panel._surface.betas[5] == 0.0
        # λ_max at every checkpoint against the 2/η line, the legend saying which is which
        steps, lam = panel.sharpness_dots.getData()
        assert list(steps) == [0.0, 10.0, 20.0] and np.isfinite(lam).all()
        _, line = panel.threshold_line.getData()
        np.testing.assert_allclose(line, 2 / panel.params.gd_lr)
        labels = [label.text for _, label in panel.plots["sharpness"].getPlotItem().legend.items]
        assert any(t.startswith("theory: 2/η") for t in labels) and any(t.startswith("measured") for t in labels)
        written = panel.export(tmp_path)
        names = {p.name for p in written}
        for key in PLOTS:
            for ext in ("png", "svg", "csv"):
                assert f"landscape_{key}.{ext}" in names
        assert "landscape_params.json" in names
    finally:
        close_panel(runner)


def test_span_and_seed_redraw_and_bad_values_are_refused(qtbot):
    panel, runner = open_panel(qtbot, LandscapePanel, timeout=300_000, bezier_steps=20, slq_vectors=2, resolution=9)
    try:
        _finished(qtbot, panel)
        before = panel.surface_image.image.copy()
        type_value(panel, "span", "0.5")
        wait_rendered(qtbot, panel)
        qtbot.waitUntil(lambda: panel._surface is not None and panel._surface.alphas[-1] == 0.5, timeout=30_000)
        after_span = panel.surface_image.image.copy()
        assert not np.allclose(before, after_span)
        type_value(panel, "seed", "7")
        qtbot.waitUntil(lambda: not panel.is_busy() and not np.allclose(panel.surface_image.image, after_span),
                        timeout=120_000)
        type_value(panel, "gd_lr", "0.3")
        qtbot.waitUntil(lambda: not panel.is_busy() and panel.threshold_line.getData()[1][0] == pytest.approx(2 / 0.3),
                        timeout=120_000)
        type_value(panel, "span", "50")
        assert panel.params.span == 0.5
        assert "out of range" in panel.controls.message.text() and "Kept 0.5" in panel.controls.message.text()
        type_value(panel, "resolution", "8")
        assert panel.params.resolution == 9 and "even" in panel.controls.message.text()
        assert not panel.error_banner.isVisible(), panel.error_banner.text()
    finally:
        close_panel(runner)


def test_clicking_the_surface_picks_a_point(qtbot):
    panel, runner = open_panel(qtbot, LandscapePanel, timeout=300_000, bezier_steps=20, slq_vectors=2, resolution=9)
    try:
        _finished(qtbot, panel)
        widget = panel.plots["surface"]
        vb = widget.getPlotItem().vb
        scene_pos = vb.mapViewToScene(QPointF(0.4, -0.3))
        view_pos = widget.mapFromScene(scene_pos)
        qtbot.mouseClick(widget.viewport(), Qt.MouseButton.LeftButton, pos=view_pos)
        qtbot.waitUntil(lambda: getattr(panel, "picked", None) is not None, timeout=120_000)
        alpha, beta, loss, top = panel.picked
        assert alpha == pytest.approx(0.4, abs=0.05) and beta == pytest.approx(-0.3, abs=0.05)
        assert np.isfinite(loss) and loss > 0 and np.isfinite(top)
        assert "λ" in widget.getPlotItem().titleLabel.text
        assert not panel.error_banner.isVisible(), panel.error_banner.text()
    finally:
        close_panel(runner)


def test_long_jobs_show_progress_and_cancel(qtbot, monkeypatch):
    monkeypatch.setattr(E, "SHARED_RECIPE", models.Recipe(epochs=400, batch_size=32))   # minutes: cancel it
    from app.runner import Runner

    runner = Runner()
    panel = LandscapePanel(runner)
    qtbot.addWidget(panel)
    panel.resize(1280, 720)
    panel.show()
    try:
        panel.refresh()
        qtbot.waitUntil(lambda: panel.busy_box.isVisible(), timeout=10_000)
        qtbot.waitUntil(lambda: panel.progress.maximum() == 1000 and panel.progress.value() > 0, timeout=30_000)
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not panel.is_busy(), timeout=30_000)
        assert not panel.busy_box.isVisible()
    finally:
        close_panel(runner)


def _centre_loss(panel) -> float:
    r = panel._surface
    return float(r.loss[r.alphas.size // 2, r.betas.size // 2])


def test_the_surface_is_drawn_around_the_shared_digits_net(qtbot):
    panel, runner = open_panel(qtbot, LandscapePanel, timeout=300_000, bezier_steps=20, slq_vectors=2, resolution=9)
    try:
        _finished(qtbot, panel)
        shared = models.cached(E.digits(), nets.DIGITS_MLP, E.SHARED_RECIPE, 0)
        assert shared is not None and panel.trained_model() is shared
        used = E.run(E.main_net())
        assert used.model is not shared.model      # a copy: the shared net is never touched
        for p, q in zip(used.model.parameters(), shared.model.parameters(), strict=True):
            assert torch.equal(p, q)
        # the surface's centre (α = β = 0) is the shared net's training loss, float32 tolerance
        loss, _ = training.evaluate(shared.model, E.digits().x_train, E.digits().y_train)
        assert _centre_loss(panel) == pytest.approx(loss, rel=1e-4)
    finally:
        close_panel(runner)


def test_the_preview_frame_is_on_the_first_preview_samples_and_the_final_on_the_whole_split():
    frames = [f for f in E.surface_frames("digits MLP", "random", 0, "filter", 1.0, 23, preview=21)
              if isinstance(f, E.SurfaceResult)]
    n = E.digits().n_train
    assert [(f.alphas.size, f.samples, f.final) for f in frames] == [(21, min(E.PREVIEW_SAMPLES, n), False),
                                                                    (23, n, True)]


def test_replayed_training_path_ends_at_the_shared_net():
    shared = E.run(E.main_net())
    path = E.run(E.main_net(path=True))
    assert path.path_note == "" and len(path.snapshots) >= 3
    for p, q in zip(path.snapshots[-1], shared.model.parameters(), strict=True):
        torch.testing.assert_close(p, q.detach(), rtol=1e-5, atol=1e-6)


def test_a_saved_net_opened_again_redraws_and_a_foreign_one_is_refused(qtbot, tmp_path):
    panel, runner = open_panel(qtbot, LandscapePanel, timeout=300_000, bezier_steps=20, slq_vectors=2, resolution=9)
    try:
        _finished(qtbot, panel)
        shared = panel.trained_model()
        other = E.run(models.train_cached(E.digits(), nets.DIGITS_MLP, E.SHARED_RECIPE, seed=3))
        path = models.save(tmp_path / "seed3.safetensors", other)
        opened = models.open(path, data_key=E.digits().key)
        before = _centre_loss(panel)
        panel.use_model(opened)
        loss, _ = training.evaluate(opened.model, E.digits().x_train, E.digits().y_train)
        assert abs(loss - before) > 1e-4 * before          # the two nets differ, so a redraw is visible
        qtbot.waitUntil(lambda: not panel.is_busy() and _centre_loss(panel) == pytest.approx(loss, rel=1e-4),
                        timeout=120_000)
        assert panel.trained_model() is opened and shared is not opened
        assert not panel.error_banner.isVisible(), panel.error_banner.text()

        toy = models.Trained(nets.build(nets.NetSpec(2, (8,), 2)), nets.NetSpec(2, (8,), 2), models.Recipe(),
                             "moons(n=200)", 0)
        with pytest.raises(models.ModelFileError, match="not on the digits"):
            panel.use_model(toy)
        wrong = models.Trained(nets.build(nets.NetSpec(64, (8,), 3)), nets.NetSpec(64, (8,), 3), models.Recipe(),
                               E.digits().key, 0)
        with pytest.raises(models.ModelFileError, match="64 inputs to 3 outputs"):
            panel.use_model(wrong)
        assert panel.trained_model() is opened
    finally:
        close_panel(runner)
