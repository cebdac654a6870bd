"""The Depth & Sawtooth panel, driven as a lecturer would: sliders, typing, Train, Cancel, export.

Every check reads what is plotted (the items' data, the image, the titles), not the engine's own
answers, so a drawing bug cannot hide behind a correct engine.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from app.panels.depth import SHOWN_LOG_PIECES, DepthPanel
from core.depth import DepthParams
from tests.app.conftest import close_panel, open_panel, type_value, wait_rendered

SMALL = dict(depth=4, m=3, width=8, region_depth=2, train_steps=200)


@pytest.fixture
def panel(qtbot):
    p, runner = open_panel(qtbot, DepthPanel, **SMALL)
    yield p
    close_panel(runner)


def _title(panel, key: str) -> str:
    return panel.plots[key].getPlotItem().titleLabel.text


def _plain(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html).replace(",", "")


def _n_points(item) -> int:
    x, _ = item.getData()
    return 0 if x is None else len(x)


def _sawtooth_pieces(panel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The plotted pieces, from both colour items: (left x, right x, slope), sorted along x."""
    segments = []
    for item in (panel.saw_even, panel.saw_odd):
        x, y = item.getData()
        x, y = np.asarray(x).reshape(-1, 2), np.asarray(y).reshape(-1, 2)
        segments.append(np.column_stack([x, (y[:, 1] - y[:, 0]) / (x[:, 1] - x[:, 0])]))
    seg = np.concatenate(segments)
    seg = seg[np.argsort(seg[:, 0])]
    return seg[:, 0], seg[:, 1], seg[:, 2]


def test_the_panel_renders_every_plot(panel):
    assert set(panel.plots) == {"sawtooth", "pieces", "regions", "yarotsky", "error", "fits", "losses"}
    assert len(panel.saw_even.getData()[0]) > 0 and len(panel.f_m_line.getData()[0]) > 0
    assert len(panel.deep_line.getData()[0]) == 12 and len(panel.random_dots.getData()[0]) == 12
    assert panel.region_image.image is not None
    assert "press Train" in _title(panel, "fits")
    assert not panel.error_banner.isVisible(), panel.error_banner.text()


@pytest.mark.parametrize("depth", [1, 3, SHOWN_LOG_PIECES])
def test_the_plotted_sawtooth_has_two_to_the_L_pieces(panel, qtbot, depth):
    panel.set_params(depth=depth)
    wait_rendered(qtbot, panel)
    left, right, slope = _sawtooth_pieces(panel)
    np.testing.assert_array_equal(left[1:], right[:-1])        # contiguous, no gap, no overlap
    assert (left[0], right[-1]) == (0.0, 1.0)
    pieces = 1 + np.count_nonzero(np.sign(slope[1:]) != np.sign(slope[:-1]))
    assert pieces == len(slope) == 2**depth
    np.testing.assert_array_equal(np.abs(slope), 2.0**depth)
    assert f"{2**depth} pieces" in _plain(_title(panel, "sawtooth"))


def test_a_deep_sawtooth_is_drawn_zoomed_and_says_so(panel, qtbot):
    depth = SHOWN_LOG_PIECES + 5
    panel.set_params(depth=depth)
    wait_rendered(qtbot, panel)
    left, right, slope = _sawtooth_pieces(panel)
    assert len(slope) == 2**SHOWN_LOG_PIECES and (left[0], right[-1]) == (0.0, 1.0)
    np.testing.assert_array_equal(np.abs(slope), 2.0**SHOWN_LOG_PIECES)   # in units of x·2^5
    assert f"{2**depth} pieces" in _plain(_title(panel, "sawtooth"))
    assert "x · 25" in _plain(panel.plots["sawtooth"].getPlotItem().getAxis("bottom").labelText)


def test_a_burst_of_slider_moves_ends_drawing_the_last_value(panel, qtbot):
    slider = panel.controls.controls["depth"].slider
    for value in [1 + i % 40 for i in range(120)] + [5]:
        slider.setValue(value)
    wait_rendered(qtbot, panel)
    assert panel.params.depth == 5
    assert len(_sawtooth_pieces(panel)[2]) == 32 and "32 pieces" in _plain(_title(panel, "sawtooth"))
    assert panel.depth_marker.value() == 5 and "32 pieces" in panel.saw_net.opts["name"]


@pytest.mark.parametrize("m", [1, 4, 9])
def test_yarotsky_error_peaks_exactly_at_the_bound(panel, qtbot, m):
    panel.set_params(m=m)
    wait_rendered(qtbot, panel)
    bound = 2.0 ** (-2 * m - 2)
    _, error = panel.error_line.getData()
    assert np.max(error) == pytest.approx(bound, rel=1e-12)
    assert np.min(error) >= -1e-15
    assert set(panel.bound_line.getData()[1]) == {bound}
    _, torch_error = panel.error_net.getData()
    assert np.max(torch_error) == pytest.approx(bound, rel=1e-9)


def test_region_count_in_the_title_matches_the_image(panel, qtbot):
    for changes in ({}, {"width": 12, "region_depth": 3}, {"sigma_b": 0.5, "seed": 3}):
        panel.set_params(**changes)
        wait_rendered(qtbot, panel)
        count = int(re.match(r"(\d+) linear regions", _plain(_title(panel, "regions"))).group(1))
        ids = panel.region_image.image
        assert ids.shape == (400, 400)
        assert np.unique(ids).size == count > 1
        assert panel.region_image.lut.shape == (count, 3)  # one colour per region


NEW_VALUES = {"depth": 6, "m": 5, "width": 10, "region_depth": 3, "sigma_w": 2.0, "sigma_b": 0.3, "seed": 7,
              "train_steps": 300, "lr": 0.003}


def test_every_numeric_control_redraws(panel, qtbot):
    numeric = {s.name for s in DepthParams.specs() if s.kind in (int, float)}
    assert numeric == set(NEW_VALUES)
    for name, new in NEW_VALUES.items():
        spec, control = DepthParams.spec(name), panel.controls.controls[name]
        with qtbot.waitSignal(panel.rendered, timeout=20_000):
            if control.slider is not None and spec.scale == "linear":
                control.slider.setValue(new)
            else:
                type_value(panel, name, str(new))
        assert getattr(panel.params, name) == pytest.approx(new), name
        wait_rendered(qtbot, panel)
        assert not panel.error_banner.isVisible(), panel.error_banner.text()


@pytest.mark.parametrize(("text", "words"), [("60", "out of range"), ("0", "out of range"),
                                              ("2.5", "whole number")])
def test_out_of_range_depth_is_refused_with_a_message(panel, text, words):
    before = panel.params
    box = type_value(panel, "depth", text)
    assert panel.params == before
    assert words in panel.controls.message.text() and "depth L" in panel.controls.message.text()
    assert box.text() == str(before.depth)
    if text == "60":
        assert panel.banner.isVisible() and "float64" in panel.banner.text()


def test_training_runs_cancels_mid_run_and_restarts(panel, qtbot):
    runner = panel.runner
    panel.set_params(depth=3, train_steps=20_000)
    wait_rendered(qtbot, panel)
    panel.train()
    qtbot.waitUntil(lambda: panel._last_frame is not None and panel._last_frame.step > 0, timeout=30_000)
    panel.cancel()
    qtbot.waitUntil(lambda: not runner.is_busy() and runner.active_threads() == 0, timeout=30_000)
    stopped = panel._last_frame.step
    assert 0 < stopped < 20_000 and "stopped" in _title(panel, "fits")
    qtbot.wait(200)
    assert panel._last_frame.step == stopped, "a cancelled run kept drawing"

    panel.set_params(train_steps=100)
    assert "press Train" in _title(panel, "fits") and _n_points(panel.deep_loss) == 0
    panel.train()
    qtbot.waitUntil(lambda: panel._last_frame is not None and panel._last_frame.done, timeout=60_000)
    wait_rendered(qtbot, panel)
    steps, loss = panel.deep_loss.getData()
    assert len(steps) == 101 and np.all(np.isfinite(loss))
    assert _n_points(panel.shallow_fit) == _n_points(panel.deep_fit) > _n_points(panel.target_line) == 2**3 + 1
    assert panel._last_frame.step == 100 and "done" in _title(panel, "fits")


def test_training_refuses_sawtooths_too_deep_to_fit(panel, qtbot):
    panel.set_params(depth=20)
    wait_rendered(qtbot, panel)
    assert not panel.train_button.isEnabled() and "L ≤ 12" in _title(panel, "fits")
    with qtbot.waitSignal(panel.message, timeout=1_000):
        panel.train()
    assert not panel.runner.is_busy("depth:train")


def test_export_writes_png_svg_and_csv_of_every_plot(panel, qtbot, tmp_path):
    panel.set_params(train_steps=20)
    panel.train()
    qtbot.waitUntil(lambda: panel._last_frame is not None and panel._last_frame.done, timeout=30_000)
    wait_rendered(qtbot, panel)
    paths = {p.name for p in panel.export(tmp_path, png_width=600)}
    for key in panel.plots:
        for ext in ("png", "svg", "csv"):
            assert f"depth_{key}.{ext}" in paths
            assert (tmp_path / f"depth_{key}.{ext}").stat().st_size > 100
    assert "region id" in (tmp_path / "depth_regions.csv").read_text().splitlines()[0]
    assert "<svg" in (tmp_path / "depth_sawtooth.svg").read_text()
    assert "depth_params.json" in paths
