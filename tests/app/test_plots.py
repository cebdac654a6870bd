"""Plot helpers: rounded view bounds that follow the data without moving on every slider step."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
import pytest

from app import plots


@pytest.mark.parametrize("lo, hi", [(0.0, 1.0), (0.322, 0.501), (-1.0, 1.0), (3.0, 3.0), (1e-4, 7e-4), (-250, 12)])
def test_nice_bounds_contain_the_data_on_a_round_step(lo, hi):
    a, b = plots.nice_bounds(lo, hi)
    assert a < lo <= hi < b
    span = max(hi - lo, abs(hi) or 1.0)
    assert b - a <= 1.6 * span + 1e-12
    step = 10 ** math.floor(math.log10((b - a) / 20))
    for edge in (a, b):  # a multiple of 1, 2 or 5 times a power of ten
        assert any(abs(edge / (k * step) - round(edge / (k * step))) < 1e-9 for k in (1, 2, 5, 10))


def test_span_ignores_what_is_not_finite():
    assert plots.span([1.0, np.nan, 3.0], np.array([np.inf, -2.0])) == (-2.0, 3.0)
    assert all(math.isnan(v) for v in plots.span([np.nan]))


def _view(widget):
    return [tuple(r) for r in widget.getPlotItem().getViewBox().viewRange()]


def test_follow_range_moves_only_when_the_data_leave_or_shrink(qtbot):
    widget = plots.make_plot("t", "x", "y")
    qtbot.addWidget(widget)
    plots.follow_range(widget, x=(0.0, 10.0), y=(0.40, 0.50))
    first = _view(widget)
    assert first[1][0] < 0.40 and first[1][1] > 0.50
    plots.follow_range(widget, x=(0.0, 10.0), y=(0.41, 0.495))       # a small step: the view stays
    assert _view(widget) == first
    plots.follow_range(widget, x=(0.0, 10.0), y=(0.30, 0.50))        # leaves below: room to spare there
    moved = _view(widget)
    assert moved[1][0] < 0.30 - 0.01 and moved[0] == first[0]
    plots.follow_range(widget, x=(0.0, 10.0), y=(0.29, 0.50))        # the next step stays inside
    assert _view(widget) == moved
    plots.follow_range(widget, x=(0.0, 10.0), y=(0.49, 0.50))        # shrinks to a sliver: refit
    assert _view(widget)[1][1] - _view(widget)[1][0] < 0.1


def test_follow_range_leaves_a_user_zoom_alone_until_auto_range_is_asked_for(qtbot):
    widget = plots.make_plot("t", "x", "y")
    qtbot.addWidget(widget)
    plots.follow_range(widget, x=(0.0, 1.0), y=(0.0, 1.0))
    vb = widget.getPlotItem().getViewBox()
    vb.setRange(xRange=(0.2, 0.3), yRange=(0.2, 0.3), padding=0)
    vb.sigRangeChangedManually.emit([True, True])                   # what a mouse drag or wheel emits
    zoomed = _view(widget)
    plots.follow_range(widget, x=(0.0, 5.0), y=(0.0, 5.0))
    assert _view(widget) == zoomed
    vb.enableAutoRange()                                           # the plot's "A" button
    plots.follow_range(widget, x=(0.0, 5.0), y=(0.0, 5.0))
    x, y = _view(widget)
    assert x[0] <= 0.0 and x[1] >= 5.0 and y[1] >= 5.0


def test_a_cached_legend_sample_is_repainted_when_its_dots_first_get_data(qtbot):
    widget = plots.make_plot("t", "x", "y")
    qtbot.addWidget(widget)
    dots, _ = plots.sim_dots(widget, "dots: simulation")
    sample = widget.getPlotItem().legend.items[-1][0]
    calls = []
    sample.update = lambda *a: calls.append(a)
    dots.setData([0.0, 1.0], [1.0, 2.0])
    dots.setData([0.0, 1.0], [2.0, 3.0])
    assert len(calls) == 1                 # once, on the first data: later data changes keep the blit


def test_data_pixels_reads_step_histograms_by_their_bin_centres(qtbot):
    widget = plots.make_plot("t", "x", "y", legend=None)
    qtbot.addWidget(widget)
    widget.resize(400, 300)
    widget.plot(np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0]), stepMode="center")
    widget.getPlotItem().vb.setRange(xRange=(0, 2), yRange=(0, 2), padding=0)
    px, py = plots.data_pixels(widget.getPlotItem())
    assert px.size > 0 and np.all(np.isfinite(px)) and np.all(np.isfinite(py))


def _three_plots_in_a_row(qtbot, monkeypatch):
    """A window of three plots (not shown yet) and a log of the plots that really painted, each with the
    pass of the event loop it painted in (a held plot, or one whose turn has not come, is sent its paint
    event but paints nothing)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QHBoxLayout, QWidget

    # plots of earlier tests still waiting for their turn would hold these back too
    plots.release_held()
    qtbot.wait(2 * plots.PAINT_TURN_MS)

    class PaintLog:
        painted: list[tuple[int, int]] = []
        passes = [0]

    log = PaintLog()
    log.painted = []
    # a zero timer fires once per pass of the event loop: two paints that see one count came in one pass
    log.turns = QTimer()
    log.turns.timeout.connect(lambda: log.passes.__setitem__(0, log.passes[0] + 1))
    log.turns.start(0)
    paint = plots._TurnTakingPlot.paintEvent

    def logged_paint(plot, event):
        before = plot.eoc_paints
        paint(plot, event)
        if plot.eoc_paints > before and hasattr(plot, "eoc_index"):
            log.painted.append((plot.eoc_index, log.passes[0]))

    monkeypatch.setattr(plots._TurnTakingPlot, "paintEvent", logged_paint)
    window = QWidget()
    row = QHBoxLayout(window)
    widgets = [plots.make_plot(f"plot {i}", "x", "y") for i in range(3)]
    for i, w in enumerate(widgets):
        row.addWidget(w)
        w.eoc_index = i
    qtbot.addWidget(window)
    window.resize(900, 300)
    return window, widgets, log


def _first_paints(log) -> list[tuple[int, int]]:
    """Each plot's first real paint, in the order they came, with the pass of the event loop it came in."""
    firsts: dict[int, int] = {}
    for i, turn in log.painted:
        firsts.setdefault(i, turn)
    return list(firsts.items())


def _each_in_a_turn_of_its_own(firsts) -> bool:
    """No two plots first painted in one pass of the event loop."""
    return len({turn for _, turn in firsts}) == len(firsts)


def _settled_row(qtbot, monkeypatch):
    """Three plots in a row, shown, painted and fitted."""
    window, widgets, log = _three_plots_in_a_row(qtbot, monkeypatch)
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: all(w.updatesEnabled() for w in widgets) and not plots.fits_pending(), timeout=2000)
    qtbot.wait(4 * plots.PAINT_TURN_MS)
    log.painted.clear()
    return window, widgets, log


def _repaint_one_per_turn(qtbot, widgets, log) -> bool:
    """Wait for every plot to have repainted; whether each did in a pass of the event loop of its own."""
    qtbot.waitUntil(lambda: all(w.updatesEnabled() for w in widgets) and len(_first_paints(log)) == 3,
                    timeout=2000)
    return _each_in_a_turn_of_its_own(_first_paints(log))


def test_plots_shown_together_paint_one_per_turn(qtbot, monkeypatch):
    # a tab's first show: Qt would paint all of its plots in one pass
    window, widgets, log = _three_plots_in_a_row(qtbot, monkeypatch)
    window.show()
    assert [w.updatesEnabled() for w in widgets] == [True, False, False]
    qtbot.waitUntil(lambda: all(w.updatesEnabled() for w in widgets) and len(_first_paints(log)) == 3,
                    timeout=2000)
    firsts = _first_paints(log)
    assert [i for i, _ in firsts] == [0, 1, 2]
    assert _each_in_a_turn_of_its_own(firsts)
    qtbot.waitUntil(lambda: not plots.fits_pending(), timeout=2000)   # nothing left held


def test_plots_on_a_page_switched_to_paint_one_per_turn(qtbot, monkeypatch):
    # QStackedLayout turns the stack's updates off while it switches pages, so the page's plots are shown
    # with updates off: they must still be held, not painted together when the stack turns them back on
    from PySide6.QtWidgets import QLabel, QStackedWidget

    page, widgets, log = _three_plots_in_a_row(qtbot, monkeypatch)
    stack = QStackedWidget()
    stack.addWidget(QLabel("first page"))
    stack.addWidget(page)
    qtbot.addWidget(stack)
    stack.resize(900, 300)
    stack.show()
    qtbot.waitExposed(stack)
    qtbot.wait(4 * plots.PAINT_TURN_MS)
    stack.setCurrentIndex(1)
    assert [w.updatesEnabled() for w in widgets] == [True, False, False]
    qtbot.waitUntil(lambda: all(w.updatesEnabled() for w in widgets) and len(_first_paints(log)) == 3,
                    timeout=2000)
    firsts = _first_paints(log)
    assert [i for i, _ in firsts] == [0, 1, 2]
    assert _each_in_a_turn_of_its_own(firsts)


def test_plots_whose_data_changed_together_repaint_one_per_turn(qtbot, monkeypatch):
    window, widgets, log = _three_plots_in_a_row(qtbot, monkeypatch)
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: all(w.updatesEnabled() for w in widgets), timeout=2000)   # the first show's turns
    qtbot.wait(4 * plots.PAINT_TURN_MS)

    log.painted.clear()
    plots.paint_in_turns(widgets)
    for i, w in enumerate(widgets):
        w.plot([0.0, 1.0], [float(i), 2.0])
    assert [w.updatesEnabled() for w in widgets] == [True, False, False]
    qtbot.waitUntil(lambda: all(w.updatesEnabled() for w in widgets), timeout=2000)
    qtbot.wait(4 * plots.PAINT_TURN_MS)
    # each plot first repainted in its own turn, in order (the first at once, the held ones when let go)
    assert [i for i, _ in _first_paints(log)] == [0, 1, 2] and log.painted[0][0] == 0
    assert _each_in_a_turn_of_its_own(_first_paints(log))

    plots.paint_in_turns(widgets)
    plots.release_held()
    assert all(w.updatesEnabled() for w in widgets)


def test_plots_a_relayout_resized_together_repaint_one_per_turn(qtbot, monkeypatch):
    # the plot grid's reflow or its body's new height resizes every plot, which Qt repaints in one pass
    window, widgets, log = _settled_row(qtbot, monkeypatch)
    window.resize(1200, 420)
    assert _repaint_one_per_turn(qtbot, widgets, log)


def test_plots_whose_data_changed_in_one_pass_repaint_one_per_turn_unasked(qtbot, monkeypatch):
    # a result drawn into several plots, no paint_in_turns: each scene's update flushes the window's, and
    # Qt would repaint them all in one pass of the event loop
    window, widgets, log = _settled_row(qtbot, monkeypatch)
    for i, w in enumerate(widgets):
        w.plot([0.0, 1.0], [float(i), 2.0])
    assert _repaint_one_per_turn(qtbot, widgets, log)


def test_a_grab_after_release_held_paints_every_plot_at_once(qtbot, monkeypatch):
    window, widgets, log = _settled_row(qtbot, monkeypatch)
    for i, w in enumerate(widgets):
        w.plot([0.0, 1.0], [float(i), 2.0])
    plots.release_held()
    window.grab()
    assert sorted({i for i, _ in log.painted}) == [0, 1, 2]


LONG_TITLE = "Accuracy vs density · preview: 1 seed, 3 epochs · running, 19 nets"


def _widest_line(html: str, points: float) -> float:
    return max(plots._text_size(plots._span(line, points))[0] for line in html.split("<br>"))


def test_the_narrowest_wrap_of_a_title_is_the_narrowest_of_every_split_into_three_lines(qapp):
    points = 22
    words = LONG_TITLE.split(" ")
    best = math.inf
    for i in range(1, len(words) + 1):          # brute force: every split into one, two or three lines
        for j in range(i, len(words) + 1):
            lines = [" ".join(words[:i]), " ".join(words[i:j]), " ".join(words[j:])]
            best = min(best, _widest_line("<br>".join(line for line in lines if line), points))
    wrapped = plots.narrowest_wrap(LONG_TITLE, points)
    assert wrapped.count("<br>") <= 2
    assert wrapped.replace("<br>", " ") == LONG_TITLE
    assert best - 0.5 <= _widest_line(wrapped, points) <= best + 2.5       # (its search stops within 2 px)


def test_a_plot_retitled_while_hidden_asks_for_the_room_its_title_needs_when_shown(qtbot):
    widget = plots.make_plot("Accuracy", "x", "y")
    qtbot.addWidget(widget)
    widget.resize(300, 260)
    widget.show()
    qtbot.waitUntil(lambda: not plots.fits_pending() and hasattr(widget, "eoc_need"))
    before = widget.eoc_need
    widget.hide()
    plots.set_title(widget, LONG_TITLE)
    plots.schedule_fit(widget, full=True)               # as a restyle (presentation mode) does
    qtbot.waitUntil(lambda: not plots.fits_pending())
    assert widget.eoc_need == before                    # hidden: not laid out, nothing to measure
    widget.show()
    points = plots.sizes()["title"]
    title = _widest_line(plots.narrowest_wrap(LONG_TITLE, points), points)
    qtbot.waitUntil(lambda: widget.eoc_need[0] >= title, timeout=3000)
    assert widget.minimumWidth() >= title


def _plot_with_a_legend(qtbot, x, y):
    widget = plots.make_plot("t", "x", "y")
    qtbot.addWidget(widget)
    line = plots.theory_line(widget, "theory", 0)
    dots, _ = plots.sim_dots(widget, "simulation", 1, errors=False)
    line.setData(x, y)
    dots.setData(x, y)
    widget.getPlotItem().vb.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
    widget.getPlotItem().vb.disableAutoRange()
    widget.resize(480, 420)
    widget.show()
    qtbot.waitUntil(lambda: not plots.fits_pending() and hasattr(widget, "eoc_need"))
    return widget, line, dots


def _below_the_view(widget) -> bool:
    item = widget.getPlotItem()
    return item.legend.sceneBoundingRect().top() >= item.vb.sceneBoundingRect().bottom()


# dots and a line over the whole view: every corner has data in it
FILLED = np.meshgrid(np.linspace(0.01, 0.99, 25), np.linspace(0.01, 0.99, 25))
FILLED_X, FILLED_Y = FILLED[0].ravel(), FILLED[1].ravel()
CENTRE_X, CENTRE_Y = np.array([0.45, 0.5, 0.55]), np.array([0.5, 0.55, 0.5])


def test_a_legend_goes_under_its_plot_where_every_corner_of_the_view_has_data(qtbot):
    widget, _, _ = _plot_with_a_legend(qtbot, FILLED_X, FILLED_Y)
    assert not plots.legend_inside_view(widget)
    assert _below_the_view(widget)
    assert plots.legend_overlap(widget) == 0
    clear, _, _ = _plot_with_a_legend(qtbot, CENTRE_X, CENTRE_Y)       # a free corner: the legend stays in
    assert plots.legend_inside_view(clear)
    assert plots.legend_overlap(clear) == 0


def test_a_legend_goes_under_its_plot_once_new_data_fill_every_corner_and_comes_back_on_a_resize(qtbot):
    widget, line, dots = _plot_with_a_legend(qtbot, CENTRE_X, CENTRE_Y)
    assert plots.legend_inside_view(widget)
    line.setData(FILLED_X, FILLED_Y)
    dots.setData(FILLED_X, FILLED_Y)
    plots.schedule_fit(widget)                  # as a panel does with each result it draws
    qtbot.waitUntil(lambda: not plots.legend_inside_view(widget), timeout=3000)
    qtbot.waitUntil(lambda: not plots.fits_pending())
    assert _below_the_view(widget) and plots.legend_overlap(widget) == 0
    line.setData(CENTRE_X, CENTRE_Y)            # a slider's drag: the view must not jump with each rest
    dots.setData(CENTRE_X, CENTRE_Y)
    plots.schedule_fit(widget)
    qtbot.wait(2 * plots.LEGEND_REST_MS)
    assert not plots.legend_inside_view(widget)
    plots.schedule_fit(widget, full=True)       # as after an axis widened with new data: same width, same style
    qtbot.waitUntil(lambda: not plots.fits_pending())
    assert not plots.legend_inside_view(widget)  # (back and forth, each move re-lays the whole grid out)
    widget.resize(500, 420)                     # fitted again, the legend finds its free corner
    qtbot.waitUntil(lambda: plots.legend_inside_view(widget), timeout=3000)
    assert plots.legend_overlap(widget) == 0


def test_a_legend_keeps_clear_of_a_readout_written_on_the_plot(qtbot):
    widget, _, _ = _plot_with_a_legend(qtbot, CENTRE_X, CENTRE_Y)
    legend = widget.getPlotItem().legend
    assert legend.eoc_at == "top-right"         # where it goes when nothing is in its way
    readout = plots.note(widget, "d = 5 %: rank 117 of 128", anchor=(1, 0))
    readout.setPos(0.98, 0.98)
    plots.schedule_fit(widget, full=True)
    qtbot.waitUntil(lambda: not plots.fits_pending())
    assert plots.legend_inside_view(widget)
    assert not legend.sceneBoundingRect().intersects(readout.sceneBoundingRect())


def test_a_legend_label_resized_after_its_text_is_gone_does_nothing(qapp):
    # a window torn down at exit resizes a legend's labels after their texts: pyqtgraph's resizeEvent
    # then raised, which shiboken turned into a segfault
    import shiboken6

    label = pg.LabelItem("σ_max")
    shiboken6.delete(label.item)
    label.resizeEvent(None)


@pytest.mark.parametrize("panel_text", ["pruning readout", "trainability hint"])
def test_the_texts_panels_write_on_their_plots_grow_with_presentation_mode(qtbot, panel_text):
    from app.panels import pruning, trainability

    widget = plots.make_plot("t", "x", "y")
    qtbot.addWidget(widget)
    make, size = {"pruning readout": (lambda: pruning._readout(widget), "legend"),
                  "trainability hint": (lambda: trainability._hint(widget, "press Train"), "label")}[panel_text]
    text = make()
    assert text.textItem.font().pointSize() == plots.SIZES[False][size]
    try:
        plots.set_style(presentation=True)
        assert text.textItem.font().pointSize() == plots.SIZES[True][size]   # they kept their first size
    finally:
        plots.set_style(presentation=False)
    assert text.textItem.font().pointSize() == plots.SIZES[False][size]



def _surface_like_plot(qtbot):
    """Landscape's loss surface: a title, a y label and a colour bar, whose wraps decide each other's room."""
    widget = plots.make_plot("Loss surface", "α (direction 1)", "β (direction 2)", legend=None)
    qtbot.addWidget(widget)
    image = pg.ImageItem(np.zeros((4, 4)))
    widget.addItem(image)
    bar = pg.ColorBarItem(values=(0, 1), colorMap=pg.colormap.get("viridis"), width=16, interactive=False)
    bar.setImageItem(image, insert_in=widget.getPlotItem())
    widget.getPlotItem().vb.setRange(xRange=(-0.5, 0.5), yRange=(-0.5, 0.5), padding=0)   # ticks "-0.4"
    widget.setMinimumSize(1, 1)
    return widget


def _shown(item):
    return item.eoc_title_shown[0], item.getAxis("left").eoc_label_shown[0]


@pytest.mark.parametrize("start", ["y label wrapped", "title wrapped"])
def test_a_fit_leaves_the_title_and_the_y_label_wrapped_as_the_room_each_leaves_the_other_asks(qtbot, start):
    # the y label's lines set its axis's width, so the title's room; the title's lines set the view's
    # height, so the y label's room: both wrapped against the room from before, a 401×320 surface flipped
    # between two layouts on every fit (a fit each turn of the event loop, never settling)
    widget = _surface_like_plot(qtbot)
    item = widget.getPlotItem()
    widget.resize(401, 320)
    widget.show()
    try:
        plots.set_style(presentation=True)
        flips = []
        for width in range(380, 425, 3):
            widget.resize(width, 320)
            qtbot.waitUntil(lambda: not plots.fits_pending(), timeout=5000)
            if start == "y label wrapped":      # as left by the fit of a shorter view
                plots._fit_axis_label(item.getAxis("left"), 100.0)
                plots._fit_title(item, 10_000.0)
            else:                               # as left by the fit of a narrower column
                plots._fit_axis_label(item.getAxis("left"), 10_000.0)
                plots._fit_title(item, 100.0)
            item.layout.activate()
            plots.fit(widget)
            first = _shown(item)
            plots.fit(widget)
            if _shown(item) != first:
                flips.append(width)
        assert flips == []                      # fitted again, nothing changes
    finally:
        plots.set_style(presentation=False)



def test_an_aspect_locked_plot_settles_rather_than_flip_between_two_widths(qtbot):
    # Depth's linear regions: a narrower y axis widens the view, which lengthens the locked y range,
    # whose tick labels widen the axis again; with pyqtgraph shrinking axes to narrower tick labels the
    # plot flipped between two widths on every paint at these sizes (presentation mode)
    restless = []
    try:
        plots.set_style(presentation=True)
        for size in [(420, 600), (424, 600), (444, 669), (448, 669), (452, 700), (460, 700)]:
            widget = plots.make_plot("Linear regions", "x<sub>1</sub>", "x<sub>2</sub>", legend=None)
            qtbot.addWidget(widget)
            widget.addItem(pg.ImageItem(axisOrder="col-major"))
            item = widget.getPlotItem()
            plots.lock_aspect(item)
            item.setRange(xRange=(-1.0, 1.0), yRange=(-1.0, 1.0), padding=0)
            widget.setMinimumSize(1, 1)
            widget.resize(*size)
            widget.show()
            try:
                qtbot.waitUntil(lambda: not plots.fits_pending(), timeout=2000)
            except qtbot.TimeoutError:
                restless.append(size)
            widget.hide()
    finally:
        plots.set_style(presentation=False)
    assert restless == []


def test_a_hidden_plot_restyled_is_fitted_when_shown_and_then_rests(qtbot, monkeypatch):
    # presentation mode restyles every plot, those of hidden tabs too: fitted while hidden, each fit's
    # relayout resized the view and the resize asked for the next fit, for ever
    from PySide6.QtWidgets import QTabWidget

    tabs = QTabWidget()
    front, back = (plots.make_plot(f"{LONG_TITLE} {i}", "σ<sub>w</sub>", "y") for i in range(2))
    tabs.addTab(front, "front")
    tabs.addTab(back, "back")
    qtbot.addWidget(tabs)
    tabs.resize(700, 400)
    tabs.show()
    qtbot.waitExposed(tabs)
    qtbot.waitUntil(lambda: not plots.fits_pending(), timeout=3000)

    fitted = []
    fit = plots.fit
    monkeypatch.setattr(plots, "fit", lambda w: (fitted.append(w), fit(w)))
    try:
        plots.set_style(presentation=True)
        qtbot.waitUntil(lambda: front in fitted and not plots.fits_pending(), timeout=3000)
        qtbot.wait(200)
        assert back not in fitted and not plots.fits_pending()

        tabs.setCurrentWidget(back)
        qtbot.waitUntil(lambda: back in fitted and not plots.fits_pending(), timeout=3000)
        # fitted to its room in presentation sizes: its long title wrapped inside the plot's width
        assert back.getPlotItem().titleLabel.item.boundingRect().width() <= back.width()
        settled = len(fitted)
        qtbot.wait(300)
        assert len(fitted) == settled     # nothing asks for another fit once it is laid out
    finally:
        plots.set_style(presentation=False)
