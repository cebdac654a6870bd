"""The lecture hall: the window fits the projector's screen, every built panel shows every title, axis
label and legend whole at 1024×768, 1280×720, 1280×800 and 1920×1080 (and at device pixel ratio 2), in
normal and presentation mode; a plot can be enlarged and put back; the controls can be hidden; an
exported PNG twice as wide has text and lines twice as large.

The screen sizes need one fresh process each (Qt reads the offscreen screen when it starts):
tests/app/lecture_hall_probe.py measures there and reports in JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QImage

from app import plots
from app.panels import PANELS

SCREENS = [(1024, 768, 1.0), (1280, 720, 1.0), (1280, 800, 1.0), (1920, 1080, 1.0), (1280, 720, 2.0)]
ROOT = Path(__file__).resolve().parents[2]


def _name(screen) -> str:
    w, h, dpr = screen
    return f"{w}x{h}@{dpr:g}"


@pytest.fixture(scope="module")
def reports():
    """One probe process with the five screens side by side, the window opened on each in turn."""
    env = dict(os.environ)
    env.pop("QT_QPA_PLATFORM", None)
    run = subprocess.run([sys.executable, "-m", "tests.app.lecture_hall_probe", *map(_name, SCREENS)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    return {screen: found[_name(screen)] for screen in SCREENS}


@pytest.mark.parametrize("screen", SCREENS, ids=[_name(s) for s in SCREENS])
def test_every_built_panel_fits_the_screen_in_both_modes(reports, screen):
    report = reports[screen]
    w, h, dpr = screen
    assert report["screen"][2:] == [w, h] and report["dpr"] == dpr
    assert report["fits"], f"window {report['window']} leaves the screen's available area {report['screen']}"
    built = {e.name for e in PANELS if e.module is not None}
    assert {key.split(":")[1] for key in report["modes"]} == built  # every registered panel was measured
    assert report["problems"] == []


def test_a_small_projector_reflows_rather_than_shrinks(reports):
    small, large = reports[(1024, 768, 1.0)], reports[(1920, 1080, 1.0)]
    assert small["modes"]["presentation:propagation"].startswith("reflow")
    assert large["modes"]["normal:propagation"].startswith("grid")   # room enough: the panel's own grid
    x, y, width, height = large["window"]
    assert (width, height) < (1920, 1080)                            # not maximised on a large screen


def _plot_area(panel):
    return panel.plot_grid.viewport().rect()


def test_double_click_enlarges_a_plot_and_esc_puts_it_back(window, qtbot):
    panel = window.show_panel("propagation")
    qtbot.waitUntil(lambda: panel.plot_grid.mode != "focus" and panel.plots["variance_map"].isVisible())
    qtbot.waitUntil(lambda: not plots.fits_pending())   # the legend in its corner, not over the middle
    widget = panel.plots["variance_map"]
    shown = {k for k, w in panel.plots.items() if w.isVisible()}
    spot = widget.viewport().rect().center()
    qtbot.mouseDClick(widget.viewport(), Qt.MouseButton.LeftButton, pos=spot)
    qtbot.mouseRelease(widget.viewport(), Qt.MouseButton.LeftButton, pos=spot)  # pyqtgraph acts on the release
    qtbot.waitUntil(lambda: panel.focused_plot() == "variance_map")
    qtbot.waitUntil(lambda: panel.plot_grid.mode == "focus" and widget.width() >= 0.95 * _plot_area(panel).width())
    assert widget.height() >= 0.95 * _plot_area(panel).height()
    assert not any(w.isVisible() for k, w in panel.plots.items() if k != "variance_map")
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert panel.focused_plot() is None
    qtbot.waitUntil(lambda: {k for k, w in panel.plots.items() if w.isVisible()} == shown)
    assert widget.height() < _plot_area(panel).height() - 50

    # View ▸ Focus plot enlarges the plot under the mouse; again puts it back
    qtbot.mouseMove(panel.plots["phase"], QPoint(20, 20))
    window.focus_action.trigger()
    assert panel.focused_plot() == "phase"
    panel.plots["phase"].scene().sigMouseClicked.emit(_DoubleClick())
    assert panel.focused_plot() is None


class _DoubleClick:
    """What pyqtgraph's scene emits for a double-click (the part a panel reads)."""

    def double(self) -> bool:
        return True


def test_ctrl_h_hides_and_shows_the_controls(window, qtbot):
    panel = window.show_panel("propagation")
    qtbot.waitUntil(lambda: panel.side.isVisible())
    before = _plot_area(panel).width()
    qtbot.keyClick(window, Qt.Key.Key_H, Qt.KeyboardModifier.ControlModifier)
    assert panel.side.isHidden() and not window.controls_action.isChecked()
    qtbot.waitUntil(lambda: _plot_area(panel).width() > before + 200)
    other = window.show_panel("depth")                   # every panel, the ones built later too
    assert other.side.isHidden()
    qtbot.keyClick(window, Qt.Key.Key_H, Qt.KeyboardModifier.ControlModifier)
    assert not other.side.isHidden() and not panel.side.isHidden()


def _ink_box(image: QImage, rect) -> tuple[int, int]:
    """(width, height) in pixels of the dark marks inside ``rect`` of ``image``."""
    from app.animate import image_array

    pixels = image_array(image)[int(rect.top()):int(rect.bottom()), int(rect.left()):int(rect.right())]
    dark = pixels.max(axis=2) < 110
    rows, cols = np.nonzero(dark.any(axis=1))[0], np.nonzero(dark.any(axis=0))[0]
    return (int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)) if rows.size else (0, 0)


def test_a_png_twice_as_wide_has_text_and_lines_twice_as_large(qtbot, tmp_path):
    widget = plots.make_plot("Export", "x", "y")
    qtbot.addWidget(widget)
    widget.resize(640, 400)
    widget.show()
    line = plots.theory_line(widget, "theory line", 6)           # black, PALETTE[6]
    line.setData([0.0, 1.0], [0.5, 0.5])
    widget.getPlotItem().setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
    qtbot.waitUntil(lambda: widget.getPlotItem().legend.isVisible())
    qtbot.wait(50)
    item, legend = widget.getPlotItem(), widget.getPlotItem().legend
    sizes = {}
    for width in (1600, 3200):
        plots.export_plot(widget, tmp_path, f"w{width}", png_width=width)
        image = QImage(str(tmp_path / f"w{width}.png"))
        assert image.width() == width
        scale = width / item.sceneBoundingRect().width()
        label = legend.items[0][1]
        text = label.mapRectToScene(label.boundingRect())
        text = type(text)(text.left() * scale, text.top() * scale, text.width() * scale, text.height() * scale)
        column = image.width() // 2                               # the line, away from the legend
        ink = [QImage.pixelColor(image, column, y).value() < 110 for y in range(image.height())]
        sizes[width] = (_ink_box(image, text), sum(ink))
    (text_1600, line_1600), (text_3200, line_3200) = sizes[1600], sizes[3200]
    assert text_1600[1] > 5 and line_1600 >= 3
    assert text_3200[1] == pytest.approx(2 * text_1600[1], rel=0.15)
    assert text_3200[0] == pytest.approx(2 * text_1600[0], rel=0.1)
    assert line_3200 == pytest.approx(2 * line_1600, rel=0.25)


def test_a_plots_right_click_menu_is_made_on_the_first_right_click(qtbot):
    widget = plots.make_plot("Menu", "x", "y")
    qtbot.addWidget(widget)
    vb = widget.getPlotItem().vb
    assert vb.menu is None and vb.menuEnabled()                   # not made with the plot
    actions = [a.text() for a in vb.getContextMenus(None)]
    assert vb.menu is not None and "View All" in actions


def test_a_colour_bars_axis_makes_room_for_its_label_in_presentation_mode(qtbot):
    import pyqtgraph as pg

    widget = plots.make_plot("Heat map", "x", "y", legend=None)
    qtbot.addWidget(widget)
    image = pg.ImageItem(np.zeros((4, 4)))
    widget.addItem(image)
    bar = pg.ColorBarItem(values=(0, 1), colorMap=pg.colormap.get("viridis"), interactive=False)
    bar.setImageItem(image, insert_in=widget.getPlotItem())
    bar.axis.setLabel("log<sub>10</sub> ξ<sub>c</sub> (layers)")
    widget.resize(500, 400)
    widget.show()
    try:
        plots.set_style(presentation=True)
        plots.fit(widget)
        qtbot.waitUntil(lambda: not plots.fits_pending(), timeout=10_000)  # the restyle's fits, a few per turn
        axis = bar.axis
        assert axis.fixedWidth is None                             # pyqtgraph's 45 px let the label cover the ticks
        assert axis.style["tickFont"].pointSize() == plots.SIZES[True]["tick"]
        label = axis.label.mapRectToScene(axis.label.boundingRect())
        ticks_right = axis.mapRectToScene(axis.boundingRect()).left() + axis.style["tickTextOffset"][0] \
            + axis.textWidth
        assert label.left() >= ticks_right - 1                     # the label lies beyond the tick labels
    finally:
        plots.set_style(presentation=False)


def test_a_y_label_wrapped_onto_two_lines_lies_clear_of_the_tick_labels(qtbot):
    widget = plots.make_plot("2⁴ deep vs 9 shallow", "depth L", "pieces of the function on [0, 1]", log_y=True)
    qtbot.addWidget(widget)
    widget.plot(np.arange(1.0, 13.0), 2.0 ** np.arange(1.0, 13.0))
    widget.resize(560, 300)          # too short for the label on one line in presentation mode
    widget.show()
    try:
        plots.set_style(presentation=True)
        plots.fit(widget)
        qtbot.waitUntil(lambda: not plots.fits_pending(), timeout=10_000)
        axis = widget.getPlotItem().getAxis("left")
        assert "<br>" in axis.eoc_label_shown[0]                    # the case: wrapped
        label = axis.label.mapRectToScene(axis.label.boundingRect())
        # (the axis's bounding rect spans the grid lines across the view: its own box is its width)
        ticks_left = axis.mapToScene(QPointF(axis.width(), 0)).x() - axis.style["tickTextOffset"][0] - axis.textWidth
        margin = axis.label.document().documentMargin()             # the label's box has margins
        assert label.right() - margin <= ticks_left + 1              # the label ends before the tick labels begin
    finally:
        plots.set_style(presentation=False)


def test_cells_wider_than_their_share_take_fewer_columns_not_a_sideways_scroll(qtbot, monkeypatch):
    from PySide6.QtWidgets import QFrame, QGridLayout

    from app.plot_grid import OVERFLOW_CHECK_MS, PlotGrid

    layouts = []
    relayout = PlotGrid.relayout
    monkeypatch.setattr(PlotGrid, "relayout", lambda self: (layouts.append(self.mode), relayout(self)))
    grid = QGridLayout()
    cells = []
    for i in range(6):          # say, plots whose labels and legends, as laid out, need 400 px each
        cell = QFrame()
        cell.setMinimumSize(400, 120)
        cells.append(cell)
        grid.addWidget(cell, i // 3, i % 3)
    area = PlotGrid(grid)
    qtbot.addWidget(area)
    area.resize(1000, 700)      # three in a row need 1,200+ px
    area.show()
    qtbot.waitExposed(area)
    qtbot.waitUntil(lambda: area.mode == "reflow 2", timeout=3000)
    assert area.body.minimumSizeHint().width() <= area.viewport().width()
    # and it stays so: the reflow's third row brings a vertical scroll bar, whose narrower viewport let
    # go of the column cap, and the grid flipped between two and three columns every 60 ms
    qtbot.wait(2 * OVERFLOW_CHECK_MS)
    settled = len(layouts)
    qtbot.wait(5 * OVERFLOW_CHECK_MS)
    assert area.mode == "reflow 2" and len(layouts) == settled, layouts[settled:]
    area.resize(1400, 700)      # a wider area: the panel's own three columns again
    qtbot.waitUntil(lambda: area.mode == "grid", timeout=3000)
    assert area.body.minimumSizeHint().width() <= area.viewport().width()


def test_a_grid_takes_fewer_columns_even_while_a_plots_legend_keeps_moving_with_new_data(qtbot):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QFrame, QGridLayout

    from app.plot_grid import PlotGrid

    grid = QGridLayout()
    streaming = plots.make_plot("Accuracy", "ε", "accuracy (%)")
    grid.addWidget(streaming, 0, 0)
    for i in range(1, 6):
        cell = QFrame()
        cell.setMinimumSize(400, 120)
        grid.addWidget(cell, i // 3, i % 3)
    area = PlotGrid(grid)
    qtbot.addWidget(area)
    area.resize(1000, 700)
    new_data = QTimer()         # a training panel's results: each moves the legend once the data rest
    new_data.timeout.connect(lambda: plots.schedule_fit(streaming))
    new_data.start(50)
    try:
        area.show()
        qtbot.waitExposed(area)
        # the legend's move still to come as the grid reflows: the grid did not wait for the data to rest
        # (a full fit after each relayout can run between two results, so the two are checked together)
        qtbot.waitUntil(lambda: area.mode == "reflow 2" and plots.fits_pending(), timeout=3000)
    finally:
        new_data.stop()


def test_a_plot_grown_taller_after_the_layout_pushes_the_next_row_down_rather_than_under_it(qtbot):
    from PySide6.QtWidgets import QGridLayout

    from app.plot_grid import PlotGrid

    grid = QGridLayout()
    widgets = [plots.make_plot(f"plot {i}", "x", "y") for i in range(4)]
    for i, w in enumerate(widgets):
        grid.addWidget(w, i // 2, i % 2)
    area = PlotGrid(grid)
    qtbot.addWidget(area)
    area.resize(900, 560)
    area.show()
    qtbot.waitExposed(area)
    qtbot.waitUntil(lambda: not plots.fits_pending() and not area._overflow_timer.isActive(), timeout=3000)
    top, below = widgets[0], widgets[2]
    before = top.height()
    # data in every corner of the view, after the layout: the legend goes under the plot, which grows
    x, y = (g.ravel() for g in np.meshgrid(np.linspace(0, 1, 30), np.linspace(0, 1, 30)))
    for k in range(6):
        plots.theory_line(top, f"a long legend entry {k}", k).setData(x, y + k)
    plots.schedule_fit(top)
    qtbot.waitUntil(lambda: not plots.legend_inside_view(top), timeout=3000)
    qtbot.waitUntil(lambda: not plots.fits_pending() and not area._overflow_timer.isActive(), timeout=3000)
    assert top.height() > before
    assert below.geometry().top() >= top.geometry().bottom()          # not drawn over its legend
    assert top.getPlotItem().legend.sceneBoundingRect().bottom() <= top.height() + 1
    assert area.verticalScrollBar().maximum() > 0                       # the area scrolls to show it all
