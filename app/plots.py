"""Plot styling (theory = solid line, simulation = dots), themes, presentation mode, and export.

Every panel makes its plots here so that one switch (light/dark, presentation mode) restyles all
of them, and export writes each plot as PNG, SVG and CSV the same way.
"""

from __future__ import annotations

import csv
import math
import re
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import shiboken6
from pyqtgraph.exporters import CSVExporter, ImageExporter, SVGExporter
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtGui import QFont, QFontMetricsF, QPainter, QPen
from PySide6.QtWidgets import QGraphicsGridLayout, QGraphicsItem, QGraphicsTextItem

from app import pacing
from app.progressive import serve_events

# Okabe–Ito: distinguishable for colour-blind viewers and on a washed-out projector.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
THEMES = {
    "light": {"background": "#ffffff", "foreground": "#202020", "grid": 0.25, "ink": "#000000"},
    "dark": {"background": "#16181d", "foreground": "#e8e8e8", "grid": 0.3, "ink": "#ffffff"},
}
SIZES = {
    False: {"tick": 11, "label": 13, "title": 14, "line": 2.5, "dot": 8, "legend": 11},
    True: {"tick": 17, "label": 21, "title": 22, "line": 4.5, "dot": 13, "legend": 17},
}

_style = {"theme": "light", "presentation": False}
_plots: list[pg.PlotWidget] = []


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def ink() -> str:
    """The colour of the 'reference' lines (identity, bounds): black on light, white on dark."""
    return THEMES[_style["theme"]]["ink"]


def sizes() -> dict:
    return SIZES[_style["presentation"]]


def label_style() -> dict:
    """Keyword arguments for AxisItem.setLabel in the current theme and size."""
    return {"color": THEMES[_style["theme"]]["foreground"], "font-size": f"{sizes()['label']}pt"}


LEGEND_OFFSETS = {"top-right": (-10, 10), "top-left": (10, 10), "bottom-right": (-10, -10),
                  "bottom-left": (10, -10)}


def make_plot(title: str, x_label: str, y_label: str, *, x_units: str | None = None,
              y_units: str | None = None, log_x: bool = False, log_y: bool = False,
              legend: str | None = "top-right") -> pg.PlotWidget:
    """A styled plot widget; labels may use HTML (σ<sub>w</sub>); ``legend`` names its corner or is None."""
    serve_events()
    widget = _TurnTakingPlot(viewBox=_LazyMenuViewBox(), axisItems={"left": _LabelRoomAxis("left")})
    serve_events()
    widget.setMinimumSize(260, 200)
    item = widget.getPlotItem()
    item.eoc_title = title
    item.setLabel("bottom", x_label, units=x_units)
    item.setLabel("left", y_label, units=y_units)
    for side, text, units in (("bottom", x_label, x_units), ("left", y_label, y_units)):
        item.getAxis(side).eoc_label, item.getAxis(side).eoc_units = text, units or ""
    item.setLogMode(x=log_x, y=log_y)
    _readable_log_ticks(widget)
    item.showGrid(x=True, y=True)
    for name in ("bottom", "left"):
        axis = item.getAxis(name)
        axis.enableAutoSIPrefix(False)  # "c (x0.001)" confuses a lecture hall
        # An axis (with its grid) costs ~4 ms to paint; cached, a data change repaints in a blit.
        axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    if legend:
        _cached_legend(item.addLegend(offset=LEGEND_OFFSETS[legend]))
        item.legend.eoc_corner = legend
    _plots.append(widget)
    widget.destroyed.connect(lambda *_: _forget(widget))
    _apply(widget)
    # Titles, axis labels and the legend are fitted to the room the plot gets, after each resize.
    widget.eoc_fit_timer = timer = QTimer(widget)
    timer.setSingleShot(True)
    timer.timeout.connect(lambda: _queue_fit(widget))
    item.vb.sigResized.connect(lambda *_: schedule_fit(widget, full=True))
    return widget


class _LabelRoomAxis(pg.AxisItem):
    """A vertical axis as wide as its tick labels and its whole label: pyqtgraph gives the label 0.8 of
    its height (the text's box has margins), which a label wrapped onto two lines overruns, onto the tick
    labels."""

    #: pyqtgraph draws a vertical axis's label this far out of its box (AxisItem.resizeEvent's nudge).
    LABEL_NUDGE = 5

    def _updateWidth(self) -> None:
        # pyqtgraph's AxisItem._updateWidth with the whole label's height; its width set once, only when
        # it changes (each change re-lays the plot out and repaints its axes)
        if not self.isVisible():
            width = 0.0
        elif self.fixedWidth is not None:
            width = self.fixedWidth
        else:
            shown = self.style["showValues"]
            width = (self.textWidth if self.style["autoExpandTextSpace"] else self.style["tickTextWidth"]) \
                if shown else 0.0
            width += self.style["tickTextOffset"][0] if shown else 0
            width += max(0, self.style["tickLength"])
            if self.label.isVisible():
                width += max(0.8 * self.label.boundingRect().height(),
                             self.label.boundingRect().height() - self.LABEL_NUDGE + TICK_GAP)
        if width != self.maximumWidth() or width != self.minimumWidth():
            self.setMaximumWidth(width)
            self.setMinimumWidth(width)
        self.picture = None


#: Pixels between a vertical axis's label and its tick labels.
TICK_GAP = 2


class _TurnTakingPlot(pg.PlotWidget):
    """A plot that, shown together with others (a tab's or a page's first look, focus mode's way back),
    paints in a turn of the event loop of its own (:func:`paint_in_turns`): Qt paints every widget a show
    exposes in one pass, and the nine plots of a panel (10–50 ms each) would freeze the window for the sum."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A paint put off to a later turn leaves the plot's last picture on screen, not a blank flash:
        # Qt clears nothing under an opaque viewport (the view paints its whole background itself).
        self.viewport().setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.eoc_paints = 0
        self._painted_at = None

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not event.spontaneous():
            _take_turn(self)
        if getattr(self, "eoc_need_stale", False):
            schedule_fit(self, full=True)  # restyled or retitled while hidden: what it needs is unknown

    def hideEvent(self, event) -> None:
        super().hideEvent(event)
        self._painted_at = None     # another tab's pixels take its place on screen meanwhile

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.isVisible() and not event.spontaneous():
            _take_turn(self)    # a relayout resizes every plot of a grid, and Qt would repaint them in one pass
        # A plot item wider than its widget (a title that needed more room) keeps its view's size while
        # the widget grows to what it asked for, so the view's resize signal does not come
        if hasattr(self, "eoc_fit_timer") and event.size().width() != event.oldSize().width():
            schedule_fit(self, full=True)

    def paintEvent(self, event) -> None:
        # Qt paints a widget it shows even with its updates disabled: a held plot is painted when let go
        if self.updatesEnabled() and not _paint_waits_its_turn(self):
            self.eoc_paints += 1
            self._painted_at = self._place()
            super().paintEvent(event)
        elif self._painted_at != self._place():
            # nothing of it on screen there yet (shown, moved or resized): its background until its turn
            painter = QPainter(self.viewport())
            painter.fillRect(event.rect(), self.backgroundBrush())
            painter.end()

    def _place(self) -> tuple:
        viewport = self.viewport()
        return viewport.mapTo(viewport.window(), QPoint(0, 0)), viewport.size()


class _LazyMenuViewBox(pg.ViewBox):
    """A ViewBox whose right-click menu is made on the first right-click: made up front it is a fifth of
    the ~30 ms a plot costs, and a panel of nine plots would make nine menus nobody opened."""

    def __init__(self):
        super().__init__(enableMenu=False)
        self.state["enableMenu"] = True   # enabled, not made yet

    def getMenu(self, ev):
        if self.menu is None and self.menuEnabled():
            self._applyMenuEnabled()
        return self.menu

    def getContextMenus(self, event):
        return self.getMenu(event).actions() if self.menuEnabled() else []


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _tick_text(k: int, m: int, powers: bool = False) -> str:
    """m × 10^k as a lecture hall reads it: 0.02, 5, 300; 10⁻⁵ and 2·10⁶ beyond that, and on every
    label of an axis (``powers``) that reaches beyond it, so that one axis does not mix 0.01 with 10⁻⁵."""
    if -3 <= k <= 3 and not powers:
        return f"{m * 10.0 ** k:.{max(0, -k)}f}"
    if k == 0 and m == 1:
        return "1"
    power = "10" + str(k).translate(_SUPERSCRIPT)
    return power if m == 1 else f"{m}·{power}"


def log_ticks(lo: float, hi: float) -> list:
    """Ticks for a log axis showing log₁₀ values lo … hi: at most ~8 labelled decades; 2 and 5 (and 3)
    labelled too on short ranges, where pyqtgraph's own labels of 2 … 9 pile up."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [[], []]
    span = hi - lo
    step = max(1, math.ceil(span / 8))
    labelled = (1, 2, 3, 5) if span < 1.0 else (1, 2, 5) if span < 2.5 else (1,)
    major, minor = [], []
    powers = lo < -3 or hi >= 4
    for k in range(math.floor(lo), math.ceil(hi) + 1):
        for m in range(1, 10):
            v = k + math.log10(m)
            if not lo <= v <= hi:
                continue
            if m == 1 and k % step == 0 or m in labelled and m > 1:
                major.append((v, _tick_text(k, m, powers)))
            elif span < 6:
                minor.append((v, ""))
    return [major, minor]


def _readable_log_ticks(widget: pg.PlotWidget) -> None:
    """Re-tick each log axis of ``widget`` on every range change with :func:`log_ticks` (a linear axis
    keeps pyqtgraph's own ticks; an axis may be switched between the two later)."""
    item = widget.getPlotItem()
    view = item.getViewBox()

    def update(*_):
        for index, name in enumerate(("bottom", "left")):
            axis = item.getAxis(name)
            if axis.logMode:
                axis.setTicks(log_ticks(*view.viewRange()[index]))
                axis.eoc_log_ticks = True
            elif getattr(axis, "eoc_log_ticks", False):
                axis.setTicks(None)
                axis.eoc_log_ticks = False

    view.sigRangeChanged.connect(update)
    update()


def move_legend(widget: pg.PlotWidget, corner: str) -> None:
    """Prefer ``corner`` ("top-right", "bottom-left", …) for the legend; it still moves to a corner with
    less data under it when that one is crowded (:func:`place_legend`)."""
    legend = widget.getPlotItem().legend
    if legend is None:
        return
    legend.eoc_corner = corner
    _set_corner(legend, corner)
    place_legend(widget)


def _set_corner(legend: pg.LegendItem, corner: str) -> None:
    if getattr(legend, "eoc_outside", False):
        return
    offset = _corner_offset(corner)
    if tuple(legend.opts["offset"]) != offset or getattr(legend, "eoc_at", None) is None:
        legend.setOffset(offset)
    legend.eoc_at = corner


def _corner_offset(corner: str) -> tuple[float, float]:
    m = LEGEND_MARGIN[_style["presentation"]]
    dx, dy = LEGEND_OFFSETS[corner]
    return (math.copysign(m, dx), math.copysign(m, dy))


# -- fitting a plot to the room it gets -----------------------------------------------------------
#
# A projector at 1024×768 or a laptop at 1280×720 gives a plot a fraction of the room a 1920×1080 screen
# does, and text must not shrink: titles and axis labels wrap onto more lines, a legend takes more
# columns or wraps its labels, and it sits in the corner of its view with the least data under it.

LEGEND_MARGIN = {False: 6, True: 8}
#: How long the data must rest before the legend moves to the corner with the least data under it.
LEGEND_REST_MS = 300
#: The least height of a plot's view when its legend has to go under it.
MIN_VIEW_HEIGHT = 120
#: The most data points (lines sampled every 4 px) a legend may lie over in its view, a line's end grazing
#: its corner; where every corner has more, the legend goes in a row of its own under the plot.
COVER_TOLERANCE = 3
#: A legend may take this share of its view's height before it spreads into more columns.
LEGEND_HEIGHT_SHARE = 0.45
_measure_item: QGraphicsTextItem | None = None
#: Measured text sizes: wrapping tries the same lines again on every resize.
_measured: dict[tuple[str, float], tuple[float, float]] = {}


def _text_size(html: str, margin: float = 4.0) -> tuple[float, float]:
    """(width, height) in pixels of ``html`` as a pyqtgraph label draws it (with a text document
    ``margin``: Qt's 4 px, or a legend label's 1 px)."""
    global _measure_item
    key = (html, margin)
    size = _measured.get(key)
    if size is None:
        if _measure_item is None:
            _measure_item = QGraphicsTextItem()
        _measure_item.document().setDocumentMargin(margin)
        _measure_item.setHtml(html)
        rect = _measure_item.boundingRect()
        size = _measured[key] = (rect.width(), rect.height())
        if len(_measured) > 20_000:  # titles, labels and their wrapped lines: a few thousand at most
            _measured.clear()
    return size


def narrowest_wrap(text: str, points: float, max_lines: int = 3) -> str:
    """``text`` wrapped into at most ``max_lines`` lines with its widest line as narrow as it can be (the
    title a plot needs least room for): the narrowest width at which :func:`wrap_html`'s lines, given
    as many as they need, are no more than ``max_lines``. One word to a line would leave the rest of a
    long title on the last line, the widest of all."""
    def lines_at(width: float) -> int:
        return wrap_html(text, points, width, max_lines=10_000).count("<br>") + 1

    lo, hi = 1.0, _text_size(_span(text, points))[0]
    if lines_at(lo) <= max_lines:
        return wrap_html(text, points, lo, max_lines)
    while hi - lo > 2.0:  # a width at which the text takes max_lines lines or fewer lies in (lo, hi]
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if lines_at(mid) <= max_lines else (mid, hi)
    return wrap_html(text, points, hi, max_lines)


def _span(text: str, points: float) -> str:
    return f"<span style='font-size: {points}pt'>{text}</span>"


def wrap_html(text: str, points: float, width: float, max_lines: int = 3) -> str:
    """``text`` (HTML) with ``<br>`` between words so that each line is at most ``width`` pixels wide
    at ``points`` pt; as it is when it fits or when ``width`` is not known yet."""
    if width <= 0 or _text_size(_span(text, points))[0] <= width:
        return text
    # a relation ("η = 0.5") never breaks across lines
    text = re.sub(r" ([=≈≤≥<>→]) (?![^<]*>)", "\u00a0\\1\u00a0", text)
    words = re.split(r" (?![^<]*>)", text)
    lines: list[str] = []
    line = ""
    for word in words:
        trial = f"{line} {word}" if line else word
        if line and _text_size(_span(trial, points))[0] > width and len(lines) < max_lines - 1:
            lines.append(line)
            line = word
        else:
            line = trial
    lines.append(line)
    return "<br>".join(lines)


def fit(widget: pg.PlotWidget) -> None:
    """Wrap the title and axis labels to the plot's width and height, and fit the legend in its view."""
    item = widget.getPlotItem()
    if item is None:
        return
    legend = item.legend
    entries_changed = legend is not None and getattr(legend, "eoc_layout", (0, 0, len(legend.items)))[2] != \
        len(legend.items)
    if not getattr(widget, "eoc_fit_full", True) and not entries_changed:
        place_legend(widget)  # only the data changed
        return
    widget.eoc_fit_full = False
    room = column_room(widget)
    for _ in range(WRAP_ROUNDS):
        before = _wraps(item)
        _fit_vertical_labels(item)
        item.layout.activate()  # the axes as wide as their new labels make them
        room = column_room(widget)
        _fit_title(item, room)
        _fit_axis_label(item.getAxis("bottom"), room)
        if _wraps(item) == before:
            break
        item.layout.activate()  # the view as tall as the new title and x label leave it
    # A label that was wider before it wrapped has widened the plot item past its widget, and pyqtgraph
    # sets the item's geometry only when the widget is resized: give it the widget's room back.
    fit_legend(widget)
    need_w, need_h = plot_minimum(widget)
    need_w = _width_with_narrowest_title(widget, need_w)
    laid_out = widget.isVisible() and room > 40
    widget.eoc_need_stale = not laid_out
    if laid_out:
        widget.eoc_need = (need_w, need_h)  # the plot grid keeps at least this (see plot_grid)
    if laid_out and (need_w > widget.minimumWidth() or need_h > widget.minimumHeight()):
        # Wrapped to the last word, the plot still needs more room: the widget grows (the panel's
        # plot area scrolls) rather than cut the plot's edge off.
        widget.setMinimumSize(max(need_w, widget.minimumWidth()), max(need_h, widget.minimumHeight()))
        _check_overflow(widget)
    if abs(item.geometry().width() - widget.range.width()) > 0.5 or \
            abs(item.geometry().height() - widget.range.height()) > 0.5:
        item.setGeometry(widget.range)


#: Rounds of wrapping one fit takes at most to settle (two or three where a wrap changes the other's room).
WRAP_ROUNDS = 4


def _fit_vertical_labels(item) -> None:
    """Wrap the y label to the view's height, and each colour bar's label to the bar's."""
    _fit_axis_label(item.getAxis("left"), item.vb.height())
    for child in item.childItems():
        if isinstance(child, pg.ColorBarItem):
            axis = child.axis
            _style_colorbar_axis(axis)
            if axis.labelText and axis.labelText != getattr(axis, "eoc_label_shown", (None,))[0]:
                axis.eoc_label = axis.labelText
            _fit_axis_label(axis, child.height())
            _leave_room_for_end_ticks(item, child)


def _leave_room_for_end_ticks(item, bar: pg.ColorBarItem) -> None:
    """A colour bar's end tick labels (its range's ends) stand half a line past the bar's ends: where
    nothing is drawn under the view (no bottom axis) or over it (no title), they were cut at the plot's
    edge ("−0.10" under the adversarial digit's δ bar), so the bar keeps that half line clear."""
    half = math.ceil(QFontMetricsF(_font(sizes()["tick"])).height() / 2)
    top = 0 if item.titleLabel.isVisible() or item.getAxis("top").isVisible() else half
    bottom = 0 if item.getAxis("bottom").isVisible() else half
    left, old_top, right, old_bottom = bar.layout.getContentsMargins()
    if (old_top, old_bottom) != (top, bottom):
        bar.layout.setContentsMargins(left, top, right, bottom)


def _wraps(item) -> tuple:
    """How the title and the axis labels are wrapped now. The y label's wrap sets its axis's width, so
    the title's room; the title's lines set the view's height, so the y label's room: a fit must wrap
    the one after the other has settled, until neither changes. Wrapped both at once, against the room
    from before, a plot flipped between two layouts (one label wrapped, the other not) on every fit,
    a fit each turn of the event loop for ever."""
    axes = [item.getAxis("left"), item.getAxis("bottom")] + \
        [c.axis for c in item.childItems() if isinstance(c, pg.ColorBarItem)]
    return (getattr(item, "eoc_title_shown", None),) + tuple(getattr(a, "eoc_label_shown", None) for a in axes)


def lock_aspect(item) -> None:
    """One unit on x as long as one on y in ``item`` (a plot item), its axes' tick labels given the room
    the widest they have shown needs: with the aspect locked, a narrower y axis widens the view, which
    lengthens its y range, whose new tick labels ("-1.5" for "-1") widen the axis again; pyqtgraph's
    shrinking of an axis to narrower tick labels then flipped the plot between two widths on every paint
    (Depth's linear regions at 1920×1080 presentation, a fit each turn of the event loop for ever)."""
    item.setAspectLocked(True)
    for side in ("left", "bottom"):
        item.getAxis(side).setStyle(autoReduceTextSpace=False)


def _check_overflow(widget) -> None:
    """Tell the plot grid holding ``widget`` (app.plot_grid, found by duck typing: it imports this module)
    that a plot grew, so that it can take fewer columns rather than scroll sideways."""
    parent = widget.parentWidget()
    while parent is not None:
        check = getattr(parent, "eoc_check_overflow", None)
        if check is not None:
            check()
            return
        parent = parent.parentWidget()


def _width_with_narrowest_title(widget, width: int) -> int:
    """The width the plot needs with its title wrapped to the last word (three lines at most), not as
    wrapped for the room it has now (``width``): a title unwrapped in a wide cell must not hold the cell
    that wide when the grid would share the room out again."""
    item = widget.getPlotItem()
    label, shown = item.titleLabel, getattr(item, "eoc_title_shown", None)
    text = getattr(item, "eoc_title", "")
    if not text or shown is None or not label.isVisible():
        return width
    narrowest = narrowest_wrap(text, shown[1])
    if narrowest == shown[0]:
        return width
    label.setText(narrowest, color=shown[2], size=f"{shown[1]}pt")
    # the title is wrapped to its column's room less TITLE_MARGIN, and that room is the widget's width
    # less the axes and COLUMN_MARGIN: the narrowest title fits only with both margins to spare
    width = plot_minimum(widget)[0] + TITLE_MARGIN + COLUMN_MARGIN
    label.setText(shown[0], color=shown[2], size=f"{shown[1]}pt")
    return width


def plot_minimum(widget) -> tuple[int, int]:
    """The smallest (width, height) in pixels the plot's title, axes, labels and legend need."""
    item = widget.getPlotItem()
    need = item.effectiveSizeHint(pg.QtCore.Qt.SizeHint.MinimumSize)
    # With its legend in a row under it, the plot still needs a view to show its data in.
    view = MIN_VIEW_HEIGHT if getattr(item.legend, "eoc_outside", False) else 0
    return math.ceil(need.width()), math.ceil(need.height()) + view


#: Pixels a title keeps free of its column's room, and the column's room keeps free of the widget's width.
TITLE_MARGIN = 8
COLUMN_MARGIN = 4


def column_room(widget) -> float:
    """The width of the plot's view column (where the title and the x label go), in pixels: the
    widget's width less the vertical axes, not the plot item's, which a too-long title widens."""
    item = widget.getPlotItem()
    axes = sum(item.getAxis(side).width() for side in ("left", "right") if item.getAxis(side).isVisible())
    bars = sum(c.width() for c in item.childItems() if isinstance(c, pg.ColorBarItem))
    return widget.width() - axes - bars - COLUMN_MARGIN


def _fit_title(item, room: float | None = None) -> None:
    text = getattr(item, "eoc_title", "")
    label = item.titleLabel
    if not text:
        return
    points = sizes()["title"]
    wrapped = wrap_html(text, points, (item.vb.width() if room is None else room) - TITLE_MARGIN)
    fg = THEMES[_style["theme"]]["foreground"]
    if getattr(item, "eoc_title_shown", None) != (wrapped, points, fg):
        label.setText(wrapped, color=fg, size=f"{points}pt")
        item.eoc_title_shown = (wrapped, points, fg)
    height = math.ceil(label.item.boundingRect().height())
    label.setMaximumHeight(height)
    item.layout.setRowFixedHeight(0, height)


def _style_colorbar_axis(axis) -> None:
    """A colour bar's axis in the plots' tick font, and as wide as its tick labels and its label need:
    pyqtgraph fixes it at 45 px, where presentation mode's label lands on the tick labels."""
    s, fg = sizes(), THEMES[_style["theme"]]["foreground"]
    if getattr(axis, "eoc_styled", None) == (s["tick"], fg):
        return
    axis.eoc_styled = (s["tick"], fg)
    axis.setTickFont(_font(s["tick"]))
    axis.setTextPen(pg.mkPen(fg))
    axis.setStyle(tickTextOffset=6)
    axis.setWidth(None)  # ticks' width (measured as drawn) plus the label's height


def _fit_axis_label(axis, length: float) -> None:
    text = getattr(axis, "eoc_label", None)
    if not text or not axis.isVisible():
        return
    points = sizes()["label"]
    units = getattr(axis, "eoc_units", "")
    wrapped = wrap_html(f"{text} ({units})" if units else text, points, length - 8)
    fg = THEMES[_style["theme"]]["foreground"]
    if getattr(axis, "eoc_label_shown", None) != (wrapped, points, fg):
        axis.setLabel(wrapped, color=fg, **{"font-size": f"{points}pt"})
        axis.eoc_label_shown = (wrapped, points, fg)
        axis.resizeEvent()


def fit_legend(widget: pg.PlotWidget) -> None:
    """Lay the legend out in one or two columns (long labels wrapped) and in the corner of its view
    that leave the least data under it, the smaller box first; it must fit inside the view and cover no
    more than :data:`COVER_TOLERANCE` data points, or it goes in a row of its own under the plot."""
    item = widget.getPlotItem()
    legend = item.legend if item is not None else None
    if legend is None or not legend.items:
        return
    vb = item.vb
    w, h = vb.width(), vb.height()
    outside = getattr(legend, "eoc_outside", False)
    px, py = data_pixels(item)
    if outside:  # the view would have the legend's room back if the legend went inside
        h += legend.height() + item.layout.verticalSpacing()
        py = py * (h / max(vb.height(), 1.0))
    if w < 20 or h < 20:
        return
    m = LEGEND_MARGIN[_style["presentation"]]
    room_w, room_h = w - 2 * m, h - 2 * m
    options = []
    for columns in range(1, min(len(legend.items), 3) + 1):
        texts, (lw, lh) = _legend_plan(legend, columns, room_w)
        overflow = max(0.0, lw - room_w) + max(0.0, lh - room_h)
        for corner in LEGEND_OFFSETS:
            overlap = _count_under(px, py, corner, lw, lh, w, h, m)
            options.append(((overflow, overlap, lw * lh), columns, corner, texts, (lw, lh)))
    score, columns, corner, texts, size = min(options, key=lambda o: o[0])
    # Once under the plot, it stays there while the plot keeps its width and style: a fit after an axis
    # grew with new data would otherwise put it back, the next data push it out again, and each move
    # re-lays the whole grid out.
    here = (widget.width(), _style["presentation"])
    stays = outside and getattr(legend, "eoc_under_for", None) == here
    under = score[0] > 0 or score[1] > COVER_TOLERANCE or getattr(legend, "eoc_covering", False) or stays
    legend.eoc_covering = False
    legend.eoc_under_for = here if under else None
    if under:  # no room in the view, or data in every corner: under the plot, where it covers nothing
        columns = min(len(legend.items), 3)
        while columns > 1 and _legend_plan(legend, columns, room_w)[1][0] > room_w:
            columns -= 1
        texts, size = _legend_plan(legend, columns, room_w)
    points = sizes()["legend"]
    fg = THEMES[_style["theme"]]["foreground"]
    for (_sample, label), text in zip(legend.items, texts, strict=True):
        label.item.document().setDocumentMargin(LABEL_MARGIN)
        if getattr(label, "eoc_shown", None) != (text, points, fg):
            label.setText(text, color=fg, size=f"{points}pt")
            label.eoc_shown = (text, points, fg)
    _set_columns(legend, columns, size)
    _legend_outside(item, legend, under)
    if not under:
        _set_corner(legend, corner)


def _legend_outside(item, legend: pg.LegendItem, outside: bool) -> None:
    """Put the legend in a row of its own under the plot (``outside``), or back inside the view."""
    if outside == getattr(legend, "eoc_outside", False):
        return
    legend.eoc_outside = outside
    if outside:
        # Out of its anchor to the view first: pyqtgraph would keep moving it back over the view.
        anchored = getattr(legend, "_GraphicsWidgetAnchor__parent", None)
        if anchored is not None:
            try:
                anchored.geometryChanged.disconnect(legend._GraphicsWidgetAnchor__geometryChanged)
            except (RuntimeError, TypeError):
                pass
            legend._GraphicsWidgetAnchor__parent = None
        # (LegendItem.setParentItem would anchor it to the plot item's corner, over the title)
        pg.GraphicsWidget.setParentItem(legend, item)
        item.layout.addItem(legend, 4, 1, alignment=pg.QtCore.Qt.AlignmentFlag.AlignHCenter)
        item.layout.activate()
    else:
        item.layout.removeItem(legend)
        legend.setParentItem(item.vb)
        legend.eoc_at = None


def _resize_label_while_alive(label, event, resize=pg.LabelItem.resizeEvent) -> None:
    # A legend under its plot sits in the plot item's layout. When the window is torn down, Qt resizes
    # its labels after their text items are gone, and pyqtgraph's resizeEvent would touch the dead item:
    # a RuntimeError, which shiboken turns into a segfault when it comes at the interpreter's exit.
    if shiboken6.isValid(label.item):
        resize(label, event)


pg.LabelItem.resizeEvent = _resize_label_while_alive


def legend_inside_view(widget: pg.PlotWidget) -> bool:
    """Whether the legend sits in its view box (rather than in its own row under the plot)."""
    legend = widget.getPlotItem().legend
    return legend is not None and not getattr(legend, "eoc_outside", False)


#: A legend entry's line sample (pyqtgraph's ItemSample is 20 px) and the spacing around it.
SAMPLE_WIDTH = 20
LEGEND_PADDING = 8
#: The text margin of a legend label (Qt's default 4 px on each side wastes a legend's room).
LABEL_MARGIN = 1.0


def _legend_plan(legend: pg.LegendItem, columns: int, room: float) -> tuple[list[str], tuple[float, float]]:
    """The labels (wrapped where one column is too narrow) and the box size of the legend in ``columns``."""
    points = sizes()["legend"]
    spacing = legend.layout.horizontalSpacing()
    label_room = room / columns - SAMPLE_WIDTH - spacing - LEGEND_PADDING
    texts, dims = [], []
    for _sample, label in legend.items:
        full = getattr(label, "eoc_full", None)
        if full is None:
            full = label.eoc_full = label.text
        text = wrap_html(full, points, label_room, max_lines=2 if columns > 1 else 3)
        texts.append(text)
        dims.append(_text_size(_span(text, points), LABEL_MARGIN))
    rows = math.ceil(len(texts) / columns)
    col_w = [max((dims[i][0] for i in range(c, len(dims), columns)), default=0.0) for c in range(columns)]
    row_h = [max(max(dims[i][1], SAMPLE_WIDTH) for i in range(r * columns, min(len(dims), (r + 1) * columns)))
             for r in range(rows)]
    width = sum(SAMPLE_WIDTH + spacing + cw for cw in col_w) + spacing * (columns - 1) + LEGEND_PADDING
    return texts, (math.ceil(width), math.ceil(sum(row_h) + LEGEND_PADDING / 2))


def _count_under(px, py, corner: str, lw: float, lh: float, w: float, h: float, m: float) -> int:
    x0 = m if corner.endswith("left") else w - m - lw
    y0 = m if corner.startswith("top") else h - m - lh
    inside = (px >= x0 - 2) & (px <= x0 + lw + 2) & (py >= y0 - 2) & (py <= y0 + lh + 2)
    return int(np.count_nonzero(inside))


def _set_columns(legend: pg.LegendItem, columns: int, size: tuple[float, float]) -> None:
    """Lay the legend's entries out row by row in ``columns`` columns on a fresh grid, in a box of
    ``size``: pyqtgraph's setColumnCount keeps the old grid's empty columns (a wide, half-empty box)
    and sizes the box from its labels' stale geometry."""
    if getattr(legend, "eoc_layout", None) == (columns, size, len(legend.items)):
        return
    old = legend.layout
    grid = QGraphicsGridLayout()
    grid.setVerticalSpacing(0)
    grid.setHorizontalSpacing(old.horizontalSpacing())
    grid.setContentsMargins(LEGEND_PADDING / 2, LEGEND_PADDING / 4, LEGEND_PADDING / 2, LEGEND_PADDING / 4)
    for i in range(old.count() - 1, -1, -1):
        old.removeAt(i)
    for i, (sample, label) in enumerate(legend.items):
        row, col = divmod(i, columns)
        grid.addItem(sample, row, 2 * col, alignment=pg.QtCore.Qt.AlignmentFlag.AlignVCenter)
        grid.addItem(label, row, 2 * col + 1, alignment=pg.QtCore.Qt.AlignmentFlag.AlignVCenter
                     | pg.QtCore.Qt.AlignmentFlag.AlignLeft)
    legend.layout = grid
    legend.setLayout(grid)
    legend.columnCount = columns
    legend.rowCount = math.ceil(len(legend.items) / columns)
    legend.eoc_layout = (columns, size, len(legend.items))
    if not getattr(legend, "eoc_outside", False):  # (under the plot, the plot's layout places it)
        legend.setGeometry(0, 0, *size)
    legend.setMinimumSize(*size)
    legend.setMaximumSize(*size)


def place_legend(widget: pg.PlotWidget) -> None:
    """Move the legend to the corner of its view with the fewest data points (and line samples) under
    it; it stays where it is unless another corner has strictly fewer. Where every corner has more than
    :data:`COVER_TOLERANCE`, it goes under the plot."""
    item = widget.getPlotItem()
    legend = item.legend if item is not None else None
    if legend is None or not legend.items or getattr(legend, "eoc_outside", False):
        return
    vb = item.vb
    w, h = vb.width(), vb.height()
    if w < 20 or h < 20:
        return
    px, py = data_pixels(item)
    lw, lh = legend.width(), legend.height()
    m = LEGEND_MARGIN[_style["presentation"]]
    here = getattr(legend, "eoc_at", getattr(legend, "eoc_corner", "top-right"))
    preferred = getattr(legend, "eoc_corner", "top-right")
    order = [here, preferred] + [c for c in LEGEND_OFFSETS if c not in (here, preferred)]

    counts = {corner: _count_under(px, py, corner, lw, lh, w, h, m) for corner in order}
    best = min(order, key=lambda c: (counts[c], order.index(c)))
    if counts[best] > COVER_TOLERANCE:
        # The data now fill every corner: the full fit puts the legend under the plot, where it stays
        # until the plot is fitted again (resized or restyled), so that a slider's drag does not make the
        # view jump with each rest.
        legend.eoc_covering = True
        schedule_fit(widget, full=True)
        return
    if counts[best] < counts[here] or getattr(legend, "eoc_at", None) is None:
        _set_corner(legend, best)
    else:
        _set_corner(legend, here)


def legend_overlap(widget: pg.PlotWidget) -> int:
    """How many data points (lines sampled every few pixels) lie under the legend."""
    item = widget.getPlotItem()
    legend = item.legend
    if legend is None or not legend.items or not legend.isVisible() or getattr(legend, "eoc_outside", False):
        return 0
    px, py = data_pixels(item)
    rect = legend.mapRectToItem(item.vb, legend.boundingRect())
    inside = (px >= rect.left()) & (px <= rect.right()) & (py >= rect.top()) & (py <= rect.bottom())
    return int(np.count_nonzero(inside))


def data_pixels(item) -> tuple[np.ndarray, np.ndarray]:
    """Where the plot's data lie in its view box, in pixels: every point of dots, lines sampled every
    4 px, infinite lines across the view, texts (readouts, notes) as a 4-px grid over their boxes.
    Heatmaps are left out (they fill the view by design)."""
    vb = item.vb
    (x0, x1), (y0, y1) = vb.viewRange()
    w, h = vb.width(), vb.height()
    inverted = vb.state.get("yInverted", False)

    def to_px(x, y):
        x = (np.asarray(x, float) - x0) / ((x1 - x0) or 1.0) * w
        t = (np.asarray(y, float) - y0) / ((y1 - y0) or 1.0) * h
        return x, (t if inverted else h - t)

    xs, ys = [np.zeros(0)], [np.zeros(0)]
    for child in vb.addedItems:
        if not child.isVisible():
            continue
        if isinstance(child, pg.PlotDataItem):
            x, y = child.getData()
            if x is None or len(x) == 0:
                continue
            if len(x) == len(y) + 1:      # stepMode="center": x holds the bin edges
                x = (x[:-1] + x[1:]) / 2
            px, py = to_px(x, y)
            ok = np.isfinite(px) & np.isfinite(py)
            px, py = px[ok], py[ok]
            pen = child.opts.get("pen")
            if pen is not None and pg.mkPen(pen).style() != pg.QtCore.Qt.PenStyle.NoPen and px.size > 1:
                px, py = _densify(np.clip(px, -w, 2 * w), np.clip(py, -h, 2 * h))
        elif isinstance(child, pg.InfiniteLine):
            pos = child.value()
            t = np.linspace(0, 1, 200)
            if child.angle % 180 == 90:
                px, py = to_px(np.full(200, pos), y0 + t * (y1 - y0))
            elif child.angle % 180 == 0:
                px, py = to_px(x0 + t * (x1 - x0), np.full(200, pos))
            else:
                continue
        elif isinstance(child, pg.TextItem):      # a readout or a note: the legend must not hide it
            if not child.toPlainText().strip():
                continue
            rect = vb.mapRectFromScene(child.sceneBoundingRect()).intersected(pg.QtCore.QRectF(0, 0, w, h))
            if rect.isEmpty():
                continue
            gx, gy = np.meshgrid(np.arange(rect.left(), rect.right() + 1, 4.0),
                                 np.arange(rect.top(), rect.bottom() + 1, 4.0))
            px, py = gx.ravel(), gy.ravel()
        elif isinstance(child, pg.ScatterPlotItem | pg.TargetItem):
            pos = child.pos() if isinstance(child, pg.TargetItem) else None
            if pos is not None:
                px, py = to_px([pos.x()], [pos.y()])
            else:
                x, y = child.getData()
                px, py = to_px(x, y)
        else:
            continue
        xs.append(px)
        ys.append(py)
    return np.concatenate(xs), np.concatenate(ys)


def _densify(px: np.ndarray, py: np.ndarray, step: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Points along the polyline through (px, py), at most ``step`` pixels apart."""
    dx, dy = np.diff(px), np.diff(py)
    n = np.clip(np.ceil(np.hypot(dx, dy) / step), 1, 400).astype(int)
    seg = np.repeat(np.arange(dx.size), n)
    t = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) / np.repeat(n, n)
    return np.append(px[seg] + t * dx[seg], px[-1]), np.append(py[seg] + t * dy[seg], py[-1])


def _cached_legend(legend: pg.LegendItem) -> None:
    """Paint the legend (box, samples, labels) once and blit it while the curves under it change:
    otherwise it is redrawn with every data change of its plot (~2 ms each)."""
    add = legend.addItem

    def add_cached(item, name):
        add(item, name)
        _refresh_sample_on_first_data(item, legend.items[-1][0])
        stack = [legend]
        while stack:
            node = stack.pop()
            node.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
            stack += node.childItems()

    legend.addItem = add_cached
    legend.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


def _refresh_sample_on_first_data(item, sample) -> None:
    """A sample is drawn from its item's style, which a scatter only takes on with its first data: the
    cached picture would otherwise keep the grey default until something else invalidates it."""
    signal = getattr(item, "sigPlotChanged", None)
    if signal is None:
        return

    def first(*_):
        sample.update()
        signal.disconnect(first)

    signal.connect(first)


def _forget(widget) -> None:
    try:
        _plots.remove(widget)
    except ValueError:
        pass


def theory_line(plot: pg.PlotWidget, name: str | None, i: int = 0, *, dash: bool = False,
                width_scale: float = 1.0) -> pg.PlotDataItem:
    """A solid line: what the theory predicts."""
    serve_events()
    item = plot.plot([], [], name=name)
    item.eoc_role = ("line", i, dash, width_scale)
    _style_item(item)
    return item


def reference_line(plot: pg.PlotWidget, name: str | None = None) -> pg.PlotDataItem:
    """A thin dashed line in the ink colour (identity, bounds, rules of thumb)."""
    item = plot.plot([], [], name=name)
    item.eoc_role = ("reference",)
    _style_item(item)
    return item


def nice_bounds(lo: float, hi: float) -> tuple[float, float]:
    """[lo, hi] padded by 4 % and rounded outward to a multiple of a 1-2-5 step (a twentieth of the span)."""
    span = hi - lo
    if not span > 0:
        span = abs(hi) or 1.0
        lo, hi = lo - 0.5 * span, hi + 0.5 * span
    lo, hi = lo - 0.04 * span, hi + 0.04 * span
    raw = (hi - lo) / 20.0
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(k * mag for k in (1.0, 2.0, 5.0, 10.0) if k * mag >= raw * (1 - 1e-12))
    return math.floor(lo / step) * step, math.ceil(hi / step) * step


def span(*arrays) -> tuple[float, float]:
    """(min, max) over the finite values of ``arrays`` ((nan, nan) when there are none)."""
    values = [np.asarray(a, float).ravel() for a in arrays if a is not None]
    values = np.concatenate(values) if values else np.zeros(0)
    values = values[np.isfinite(values)]
    return (float(values.min()), float(values.max())) if values.size else (math.nan, math.nan)


def follow_range(widget: pg.PlotWidget, x: tuple[float, float] | None = None,
                 y: tuple[float, float] | None = None) -> None:
    """Keep the view on data spanning ``x`` and ``y`` (data coordinates, linear axes) without moving
    it on every small change.

    The view changes only when the data leave it or shrink to under a third of it, and then to
    rounded bounds: an axis (ticks, labels, grid) is the dearest thing to repaint, and pyqtgraph's
    auto-range would move every axis on every slider step. Once the user pans or zooms an axis it is
    left alone, until the plot's "A" button asks for auto-range again.
    """
    vb = widget.getPlotItem().getViewBox()
    follow = getattr(widget, "eoc_follow", None)
    if follow is None:
        follow = widget.eoc_follow = [True, True]

        def user_moved(mouse_enabled) -> None:
            for i, moved in enumerate(mouse_enabled[:2]):
                follow[i] = follow[i] and not moved

        vb.sigRangeChangedManually.connect(user_moved)
    current = vb.viewRange()
    update = {}
    for i, (name, want) in enumerate((("xRange", x), ("yRange", y))):
        if want is None:
            continue
        lo, hi = (float(v) for v in want)
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            continue
        auto = bool(vb.state["autoRange"][i])
        if not (follow[i] or auto):
            continue
        follow[i] = True
        c_lo, c_hi = current[i]
        inside = c_lo <= lo and hi <= c_hi and (c_hi - c_lo) <= 3.0 * max(hi - lo, 1e-12 * max(abs(hi), 1.0))
        if auto:
            update[name] = nice_bounds(lo, hi)
        elif not inside:
            # Room to spare on the side the data left by, so that the next small step stays inside.
            room = 0.2 * max(hi - lo, 1e-12 * max(abs(hi), 1.0))
            update[name] = nice_bounds(lo - room if lo < c_lo else lo, hi + room if hi > c_hi else hi)
    if update:
        vb.setRange(**update, padding=0, disableAutoRange=True)


def set_title(widget: pg.PlotWidget, text: str) -> None:
    """Change a plot's title in the current style; theme and presentation switches keep it."""
    item = widget.getPlotItem()
    if getattr(item, "eoc_title", None) == text:
        return
    item.eoc_title = text
    if text:
        item.titleLabel.setVisible(True)
        _fit_title(item)
        if item.titleLabel.minimumWidth() > column_room(widget):
            # even wrapped, the new title is wider than its plot: the plot must ask for more room
            schedule_fit(widget, full=True)
    else:
        item.setTitle(None)


def set_label(widget: pg.PlotWidget, side: str, text: str) -> None:
    """Change an axis label in the current style."""
    item = widget.getPlotItem()
    axis = item.getAxis(side)
    if getattr(axis, "eoc_label", axis.labelText) == text:
        return
    axis.eoc_label = text
    # (pyqtgraph centres an axis label only on resize, not when its text changes: _fit_axis_label does)
    _fit_axis_label(axis, item.vb.width() if side in ("bottom", "top") else item.vb.height())


def rename(widget: pg.PlotWidget, item, text: str) -> None:
    """Rename a plotted item in its legend and in the CSV export (which reads the item's name)."""
    item.opts["name"] = text
    legend = widget.getPlotItem().legend
    label = legend.getLabel(item) if legend is not None else None
    if label is not None and getattr(label, "eoc_full", label.text) != text:
        label.eoc_full = text
        label.eoc_shown = None
        label.setText(text, color=THEMES[_style["theme"]]["foreground"], size=f"{sizes()['legend']}pt")
        schedule_fit(widget, full=True)


#: The fits of one turn of the event loop stop once they have taken this long; the rest wait a turn.
FIT_BUDGET_S = 0.015
_fit_queue: dict[int, pg.PlotWidget] = {}
_fit_timer: list[QTimer] = []


def _queue_fit(widget: pg.PlotWidget) -> None:
    """Fit ``widget`` in a later turn of the event loop, a few plots per turn: a panel's plots all fitted
    in one turn (each ~10 ms of text layout) would freeze the window for a tenth of a second."""
    _fit_queue[id(widget)] = widget
    _start_once(_fit_timer, _run_fits, 0)


def _start_once(holder: list[QTimer], slot, ms: int) -> None:
    """Start the single-shot timer kept in ``holder`` (made on first use) unless it is already running."""
    if not holder:
        timer = QTimer()
        timer.setSingleShot(True)
        timer.timeout.connect(slot)
        holder.append(timer)
    if not holder[0].isActive():
        holder[0].start(ms)


def _run_fits() -> None:
    start = time.perf_counter()
    while _fit_queue:
        widget = _fit_queue.pop(next(iter(_fit_queue)))
        if shiboken6.isValid(widget) and widget.isVisible():
            fit(widget)
        elif shiboken6.isValid(widget):
            widget.eoc_need_stale = True    # hidden since it was queued: fitted when shown
        # the turn's budget counts what ran before the fits in it too (a paint, a result drawn)
        if pacing.turn_over(start, FIT_BUDGET_S):
            break
    if _fit_queue:
        _fit_timer[0].start(0)


#: Between one plot's turn to paint and the next: longer than the ~5 ms Qt waits between a repaint request
#: and the window's repaint, so that the plot released before has painted, alone, when the next is released.
PAINT_TURN_MS = 8
_held: list = []
_held_timer: list[QTimer] = []


def paint_in_turns(widgets) -> None:
    """Let the visible ``widgets``, whose data just changed, repaint one per turn of the event loop, the
    others' repaints held until their turn: Qt repaints every changed widget of a window in one pass, and
    six plots (each 10–80 ms while a worker thread competes for the interpreter lock) would freeze the
    window for the sum."""
    for w in widgets:
        if w.isVisible():
            _take_turn(w)


_turn_taken: list = [None]     # the plot that paints in this turn of the event loop


def _take_turn(widget) -> None:
    """Paint ``widget`` in this turn if no plot has yet, else hold it (updates off) until its own turn."""
    if _turn_taken[0] is widget:
        return      # its show and its first size, in one turn
    if not _held and _turn_taken[0] is None:
        _claim_turn(widget)
        return
    if widget not in _held:
        # set on the plot itself even where a parent has updates off for now (QStackedLayout switching a
        # page): a parent's setUpdatesEnabled(True) would otherwise let it paint with the rest
        widget.setUpdatesEnabled(False)
        _held.append(widget)
    _start_once(_held_timer, _release_one, PAINT_TURN_MS)


def _claim_turn(widget) -> None:
    """``widget`` paints in this turn of the event loop; the turn is free again in the next."""
    _turn_taken[0] = widget
    QTimer.singleShot(0, _next_turn)


def _next_turn() -> None:
    _turn_taken[0] = None
    _free_turn[0] = False


_free_turn: list = [False]     # every plot paints in this turn: a grab of the window follows


def _paint_waits_its_turn(widget) -> bool:
    """Whether ``widget``'s paint, come in a turn in which another plot has painted, is put off to a turn
    of its own (it is held, :func:`_take_turn`). Results drawn into several plots (or a relayout, or a
    show) make Qt repaint them all in one pass, each scene's update flushing the window's; plots that
    paint in 5–50 ms each would freeze the window for the sum."""
    if _free_turn[0] or _turn_taken[0] is widget:
        return False
    if _turn_taken[0] is None:
        _claim_turn(widget)
        return False
    _take_turn(widget)
    return True


#: The longest the next held plot waits for the one released before it to paint (a hidden one never does).
PAINT_WAIT_S = 0.05
_released: list = [None, 0.0, 0]    # the plot let go last, when, and how many times it had painted then


def _release_one(wait: bool = True) -> None:
    last, since, paints = _released
    if wait and last is not None and shiboken6.isValid(last) and last.isVisible() \
            and last.eoc_paints == paints and time.perf_counter() - since < PAINT_WAIT_S:
        # on a busy machine a repaint can take longer than PAINT_TURN_MS to come: the next waits for it
        _held_timer[0].start(PAINT_TURN_MS)
        return
    while _held:
        w = _held.pop(0)
        if shiboken6.isValid(w) and not w.updatesEnabled():
            _released[:] = [w, time.perf_counter(), w.eoc_paints]
            w.setUpdatesEnabled(True)       # queues its repaint
            break
    if _held:
        _held_timer[0].start(PAINT_TURN_MS)


def release_held() -> None:
    """Let every held plot repaint now, and every plot paint in this turn (before grabbing a window's
    pixels, which would skip held widgets and those whose turn had not come)."""
    while _held:
        _release_one(wait=False)
    if not _free_turn[0]:
        _free_turn[0] = True
        QTimer.singleShot(0, _next_turn)


def fits_pending() -> bool:
    """Whether a plot's fit is still to come: its own timer running, or queued, or the plot held from
    painting (:func:`paint_in_turns`; its first paint sizes its axes to their tick labels, which asks for one)."""
    return bool(_fit_queue) or bool(_held) or any(_fit_to_come(w) for w in _plots)


def full_fits_pending(widgets) -> bool:
    """Whether any of ``widgets`` has a full fit (titles, labels, legend layout: what it needs) to come;
    a legend's move after new data does not count (it changes no plot's size)."""
    return any(_fit_to_come(w, full_only=True) for w in widgets)


def _fit_to_come(widget, full_only: bool = False) -> bool:
    """Whether ``widget`` is queued for a fit or its fit timer runs (for a full fit, with ``full_only``)."""
    if not shiboken6.isValid(widget):
        return False
    timed = widget.eoc_fit_timer.isActive() and (not full_only or getattr(widget, "eoc_fit_full", True))
    return id(widget) in _fit_queue or timed


def schedule_fit(widget: pg.PlotWidget, full: bool = False) -> None:
    """Fit ``widget`` once the event loop is idle, calls in between coalescing: all of it
    (:func:`fit`) after a resize or a restyle (``full``), only the legend's corner after new data."""
    timer = getattr(widget, "eoc_fit_timer", None)
    if timer is not None:
        widget.eoc_fit_full = getattr(widget, "eoc_fit_full", True) or full
        if not widget.isVisible():
            # fitted when shown (showEvent): a hidden tab's plots, restyled, fitted to no room for ever
            # (each fit's relayout resized the view, whose resize asked for the next)
            widget.eoc_need_stale = True
            return
        # New data moves the legend once the slider rests: not on each of its steps.
        timer.start(0 if widget.eoc_fit_full else LEGEND_REST_MS)


def legend_key(plot: pg.PlotWidget, theory: str = "lines: theory", simulation: str = "dots: simulation"):
    """Neutral legend entries saying which marks are theory and which simulation, where colours
    are used for something else (layers, depths)."""
    line = plot.plot([], [], name=theory)
    line.eoc_role = ("key-line",)
    dots = plot.plot([], [], name=simulation)
    dots.eoc_role = ("key-dots",)
    _style_item(line)
    _style_item(dots)
    return line, dots


def sim_dots(plot: pg.PlotWidget, name: str | None, i: int = 0, *, errors: bool = True):
    """Dots: what a simulated torch network did; with error bars across networks."""
    serve_events()
    item = plot.plot([], [], name=name)
    item.eoc_role = ("dots", i)
    _style_item(item)
    bars = None
    if errors:
        bars = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), top=np.zeros(0), bottom=np.zeros(0), beam=0.0)
        bars.eoc_role = ("bars", i)
        plot.addItem(bars)
        _style_item(bars)
    return item, bars


def _style_item(item) -> None:
    role = getattr(item, "eoc_role", None)
    if role is None:
        return
    s = sizes()
    kind = role[0]
    if kind == "line":
        _, i, dash, scale = role
        pen = pg.mkPen(color(i), width=s["line"] * scale)
        if dash:
            pen.setStyle(pg.QtCore.Qt.PenStyle.DashLine)
        item.setPen(pen)
    elif kind == "key-line":
        item.setPen(pg.mkPen(THEMES[_style["theme"]]["foreground"], width=s["line"]))
    elif kind == "key-dots":
        item.setPen(None)
        item.setSymbol("o")
        item.setSymbolSize(s["dot"])
        item.setSymbolBrush(pg.mkBrush(THEMES[_style["theme"]]["foreground"]))
    elif kind == "reference":
        item.setPen(pg.mkPen(ink(), width=max(1.0, s["line"] * 0.5), style=pg.QtCore.Qt.PenStyle.DashLine))
    elif kind == "dots":
        i = role[1]
        item.setPen(None)
        item.setSymbol("o")
        item.setSymbolSize(s["dot"])
        item.setSymbolBrush(pg.mkBrush(color(i)))
        item.setSymbolPen(pg.mkPen(THEMES[_style["theme"]]["background"], width=1))
    elif kind == "bars":
        item.setOpts(pen=pg.mkPen(color(role[1]), width=max(1.0, s["line"] * 0.5)))
    elif kind == "note":
        size, muted = (role[1], role[2]) if len(role) > 1 else ("tick", False)
        item.setFont(_font(s[size]))
        item.fill = pg.mkBrush(THEMES[_style["theme"]]["background"] + "c0")
        item.setColor(MUTED if muted else THEMES[_style["theme"]]["foreground"])


#: The colour of a hint on an empty plot: readable on both themes.
MUTED = "#808080"


def note(plot: pg.PlotWidget | None, text: str = "", anchor=(0.5, 0.5), item=None, size: str = "tick",
         muted: bool = False, **add) -> pg.TextItem:
    """Text on a plot (a level's value, a marker's name, a readout, a hint) at the size of ``size``'s
    text ("tick", "legend", "label"), on a pale box that keeps it readable over a heat map; it grows with
    presentation mode like the rest of the plot (``muted``: grey, for a hint on an empty plot)."""
    serve_events()
    if item is None:
        item = pg.TextItem(text, anchor=anchor)
        plot.addItem(item, **add)
    item.eoc_role = ("note", size, muted)
    _style_item(item)
    return item


def color_bar(plot: pg.PlotWidget | pg.PlotItem, image: pg.ImageItem, values: tuple[float, float],
              colormap: str = "viridis", width: int = 16, label: str = "") -> pg.ColorBarItem:
    """A fixed (not draggable) colour bar for ``image``, at the right of ``plot``'s view.

    A ColorBarItem is a plot of its own (~25 ms to make on a slow machine): in a progressive build it is
    a step of its own, the event loop served before and after it.
    """
    serve_events()
    bar = pg.ColorBarItem(values=values, colorMap=pg.colormap.get(colormap), width=width, interactive=False,
                          label=label or None)
    bar.setImageItem(image, insert_in=plot.getPlotItem() if isinstance(plot, pg.PlotWidget) else plot)
    serve_events()
    return bar


def _apply(widget: pg.PlotWidget) -> None:
    theme = THEMES[_style["theme"]]
    s = sizes()
    widget.setBackground(theme["background"])
    item = widget.getPlotItem()
    fg = theme["foreground"]
    if getattr(item, "eoc_title", ""):
        item.titleLabel.setVisible(True)
        _fit_title(item)
    else:
        item.setTitle(getattr(item, "eoc_title", ""), color=fg, size=f"{s['title']}pt")
    tick_font = QFont()
    tick_font.setPointSize(s["tick"])
    for name in ("bottom", "left", "right", "top"):
        axis = item.getAxis(name)
        axis.setPen(pg.mkPen(fg))
        axis.setTextPen(pg.mkPen(fg))
        axis.setTickFont(tick_font)
        axis.label.setFont(_font(s["label"]))
        # Major ticks only: a quarter of the cost to repaint, and a cleaner grid from the back row.
        axis.setStyle(tickTextOffset=6, maxTickLevel=0)
        if getattr(axis, "eoc_label", None):
            _fit_axis_label(axis, item.vb.width() if name in ("bottom", "top") else item.vb.height())
        elif axis.labelText:
            axis.setLabel(axis.labelText, units=axis.labelUnits, color=fg, **{"font-size": f"{s['label']}pt"})
    item.showGrid(x=True, y=True, alpha=theme["grid"])
    legend = item.legend
    if legend is not None:
        legend.setLabelTextColor(fg)
        legend.setLabelTextSize(f"{s['legend']}pt")
        legend.setBrush(pg.mkBrush(theme["background"] + "d0"))
        legend.setPen(pg.mkPen(fg, width=0.5))
        for _sample, label in legend.items:
            label.setText(getattr(label, "eoc_full", label.text), color=fg, size=f"{s['legend']}pt")
            label.eoc_shown = None
        legend.updateSize()
        fit_legend(widget)
    for child in item.items:
        _style_item(child)
        if isinstance(child, pg.TargetItem) and child.label() is not None:
            _style_item(child.label())
    schedule_fit(widget, full=True)


def _font(points: int) -> QFont:
    f = QFont()
    f.setPointSize(points)
    return f


def set_style(theme: str | None = None, presentation: bool | None = None) -> None:
    """Switch the theme and/or presentation mode for every plot in the app."""
    if theme is not None:
        if theme not in THEMES:
            raise ValueError(f"unknown theme {theme!r}")
        _style["theme"] = theme
    if presentation is not None:
        _style["presentation"] = bool(presentation)
    for widget in list(_plots):
        if widget.getPlotItem() is None:  # closed (pyqtgraph drops the item on close)
            _forget(widget)
        else:
            _apply(widget)


def style() -> dict:
    return dict(_style)


# -- export ---------------------------------------------------------------------------------------

def export_plot(widget: pg.PlotWidget, directory: Path, stem: str, png_width: int = 1600) -> list[Path]:
    """Write ``stem.png`` (``png_width`` pixels wide), ``stem.svg`` and ``stem.csv`` into ``directory``.

    The CSV holds the plotted data (every curve's x and y; for a heatmap, the matrix with its axes).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    item = widget.getPlotItem()
    paths = [directory / f"{stem}.png", directory / f"{stem}.svg", directory / f"{stem}.csv"]
    png = ImageExporter(item)
    png.parameters()["width"] = int(png_width)
    with export_scale(widget, png_width):
        png.export(str(paths[0]))
    SVGExporter(item).export(str(paths[1]))
    images = [c for c in item.items if isinstance(c, pg.ImageItem) and c.image is not None]
    if images:
        _write_image_csv(images[0], paths[2])
    else:
        CSVExporter(item).export(str(paths[2]))
    return paths


@contextmanager
def export_scale(widget: pg.PlotWidget, png_width: int):
    """Widen every pen of the plot while it is exported ``png_width`` pixels wide, by the export's scale.

    The exporter scales the whole scene (text, dots) from the plot's size on screen to ``png_width``,
    but pyqtgraph's pens are cosmetic: without this a 3200-px PNG would have the 1600-px one's lines,
    half as thick relative to its text. Cached items are drawn afresh at the export's scale.
    """
    item = widget.getPlotItem()
    scale = png_width / max(1.0, item.sceneBoundingRect().width())
    restore = []
    # A cached item (the legend, the axes) would be blitted at its size on screen, not drawn at the
    # export's scale: a 3200-px PNG got a thumbnail of a legend.
    # So would an item that ignores the painter's scale (pyqtgraph's legend does, to keep its size on
    # screen when the view zooms).
    fixed = QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations
    for child in widget.scene().items():
        mode = child.cacheMode()
        if mode != QGraphicsItem.CacheMode.NoCache:
            restore.append((child.setCacheMode, mode))
            child.setCacheMode(QGraphicsItem.CacheMode.NoCache)
        if child.flags() & fixed and isinstance(child, pg.LegendItem):
            restore.append((lambda on, c=child: c.setFlag(fixed, on), True))
            child.setFlag(fixed, False)
    if abs(scale - 1.0) > 0.02:
        def widened(pen) -> QPen:
            wide = QPen(pen)
            wide.setWidthF(max(pen.widthF(), 1.0) * scale)
            return wide

        for child in list(item.vb.addedItems) + [item.getAxis(s) for s in ("left", "bottom", "right", "top")]:
            if isinstance(child, pg.PlotDataItem) and child.opts.get("pen") is not None:
                pen = pg.mkPen(child.opts["pen"])
                if pen.style() != pg.QtCore.Qt.PenStyle.NoPen:
                    restore.append((child.setPen, pen))
                    child.setPen(widened(pen))
            elif isinstance(child, pg.InfiniteLine | pg.AxisItem):
                pen = QPen(child.pen() if callable(child.pen) else child.pen)
                restore.append((child.setPen, pen))
                child.setPen(widened(pen))
            elif isinstance(child, pg.ErrorBarItem) and child.opts.get("pen") is not None:
                pen = pg.mkPen(child.opts["pen"])
                restore.append((lambda p, c=child: c.setOpts(pen=p), pen))
                child.setOpts(pen=widened(pen))
    try:
        yield scale
    finally:
        for setter, pen in reversed(restore):
            setter(pen)


def _write_image_csv(image: pg.ImageItem, path: Path) -> None:
    """A heatmap as CSV: first row the x coordinates, first column the y coordinates."""
    data = np.asarray(image.image, float)
    x = getattr(image, "eoc_x", np.arange(data.shape[0]))
    y = getattr(image, "eoc_y", np.arange(data.shape[1]))
    name = getattr(image, "eoc_name", "value")
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([f"{name} (rows: y, columns: x)"] + [f"{v:.10g}" for v in x])
        for j, yj in enumerate(y):
            writer.writerow([f"{yj:.10g}"] + [f"{v:.10g}" for v in data[:, j]])


def _close_bare_z(d: str) -> str:
    """Replace QtSvg's bare ``Z`` (Qt ≥ 6.11) by a line back to the subpath start.

    pyqtgraph 0.14.0's SVG exporter expects every path token to be ``x,y`` and fails on ``Z``
    (fixed upstream after 0.14.0). A line to the start point draws the same closed outline.
    """
    out, start = [], None
    for token in d.split():
        if token in ("Z", "z"):
            if start is not None:
                out.append(f"L{start}")
            continue
        if token[0] in "Mm":
            start = token[1:]
        out.append(token)
    return " ".join(out)


def _patch_svg_exporter() -> None:
    from pyqtgraph.exporters import SVGExporter as module_or_class

    module = __import__(module_or_class.__module__, fromlist=["correctCoordinates"])
    original = module.correctCoordinates
    if getattr(original, "eoc_patched", False):
        return

    def correct_coordinates(node, defs, item, options):
        for path in node.getElementsByTagName("path"):
            d = path.getAttribute("d")
            if re.search(r"(^|\s)[Zz](\s|$)", d):
                path.setAttribute("d", _close_bare_z(d))
        return original(node, defs, item, options)

    correct_coordinates.eoc_patched = True
    module.correctCoordinates = correct_coordinates


_patch_svg_exporter()
