"""The Robustness panel driven as a lecturer would: the ε slider, picking a digit (index or thumbnail),
switching nets, typing bad values, training with progress and Cancel, export.

Checks read what is plotted (images, curves, titles), small and seeded: nets of one epoch.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from app.panels.robustness import THUMBS, RobustnessPanel
from tests.app.conftest import close_panel, open_panel, type_value, wait_rendered

SMALL = dict(epochs=1, pgd_steps=10, angle_max=10.0, shift_max=1, finetune_epochs=0)


@pytest.fixture
def panel(qtbot):
    p, runner = open_panel(qtbot, RobustnessPanel, timeout=120_000, **SMALL)
    yield p
    close_panel(runner)


def _title(panel, key: str) -> str:
    return re.sub(r"<[^>]+>", "", panel.plots[key].getPlotItem().titleLabel.text)


def _n(item) -> int:
    x, _ = item.getData()
    return 0 if x is None else len(x)


def test_every_plot_renders_and_exports(panel, tmp_path):
    assert set(panel.plots) == {"digit", "probabilities", "accuracy", "minimal", "spatial", "toy", "sparsity"}
    assert panel.original_image.image is not None and panel.delta_image.image is not None
    assert _n(panel.p_original) == 40 and _n(panel.p_adversarial) == 40
    assert _n(panel.pgd_dots) == 11 and _n(panel.crown_line) == 11 and _n(panel.ibp_line) == 11
    assert _n(panel.deepfool_hist) > 0 and _n(panel.lipschitz_hist) > 0
    assert panel.spatial_image.image.shape == (31, 3)
    assert panel.toy_image.image is not None and _n(panel.pgd_path) >= 2
    assert _n(panel.sparse_pgd) == 7
    assert not panel.error_banner.isVisible(), panel.error_banner.text()
    # the plotted sandwich: certified ≤ PGD ≤ FGSM ≤ clean at every ε
    _, fgsm = panel.fgsm_dots.getData()
    _, pgd = panel.pgd_dots.getData()
    _, crown = panel.crown_line.getData()
    _, ibp = panel.ibp_line.getData()
    _, clean = panel.clean_line.getData()
    assert (ibp <= crown + 1e-9).all() and (crown <= pgd + 1e-9).all()
    assert (pgd <= fgsm + 1e-9).all() and (fgsm <= clean[0] + 1e-9).all()
    paths = panel.export(tmp_path)
    names = {p.name for p in paths}
    for key in panel.plots:
        for ext in ("png", "svg", "csv"):
            assert f"robustness_{key}.{ext}" in names
    assert "robustness_params.json" in names
    assert all(p.stat().st_size > 0 for p in paths)


def test_the_eps_slider_redraws_the_adversarial_digit(panel, qtbot):
    for eps in (0.05, 0.2):
        panel.set_params(eps=eps)
        wait_rendered(qtbot, panel)
        delta = panel.delta_image.image
        assert np.abs(delta).max() == pytest.approx(eps, abs=1e-6)      # FGSM: every moved pixel by ±ε or less
        assert f"ε = {eps:g}" in _title(panel, "digit")
    panel.set_params(attack="deepfool")
    wait_rendered(qtbot, panel)
    assert "DeepFool: fooled" in _title(panel, "digit")
    before = _title(panel, "accuracy")
    panel.set_params(net="adversarial")
    wait_rendered(qtbot, panel)
    assert "PGD-trained net" in _title(panel, "accuracy") and before != _title(panel, "accuracy")
    for text in ("-0.1", "nan", "0.9"):                  # typed values the declaration refuses
        before = panel.params
        type_value(panel, "eps", text)
        assert panel.params == before
        assert "ε (L∞)" in panel.controls.message.text()


def test_picking_an_image_by_index_and_by_thumbnail(panel, qtbot):
    from core import data

    digits = data.load("digits")
    panel.set_params(index=7)
    wait_rendered(qtbot, panel)
    np.testing.assert_allclose(panel.original_image.image, digits.x_test[7].numpy().reshape(8, 8))
    # click the third thumbnail of the strip
    plot = panel.plots["digit"]
    vb = plot.getPlotItem().vb
    k = 2
    w = panel._thumb_width
    scene = vb.mapViewToScene(QPointF((k + 0.5) * w, 8 + 1.5 + 0.4 * w))
    pos = plot.mapFromScene(scene)
    expected = panel._thumb_start + k
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.waitUntil(lambda: panel.params.index == expected, timeout=5000)
    wait_rendered(qtbot, panel)
    np.testing.assert_allclose(panel.original_image.image, digits.x_test[expected].numpy().reshape(8, 8))
    assert 0 <= expected - panel._thumb_start < THUMBS


def test_training_shows_progress_cancels_and_saves(panel, qtbot, tmp_path):
    from core import models

    path = panel.save_net(tmp_path / "net.safetensors")
    assert models.open(path).spec.widths == (128, 128)
    panel.set_params(epochs=40, seed=3)          # not cached: trains for a while
    qtbot.waitUntil(lambda: panel.progress.value() > 0 or "training the" in _title(panel, "accuracy"),
                    timeout=60_000)
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.is_busy(), timeout=30_000)
    assert "cancelled" in _title(panel, "accuracy")
    qtbot.waitUntil(lambda: panel.runner.active_threads() == 0, timeout=10_000)
