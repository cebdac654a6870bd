"""The plots' part of a panel: a grid that reflows to the room it gets, and a plot enlarged to fill it.

A panel lays its plots out for a large screen (three columns, three rows). On a 1024×768 projector, or
in presentation mode with its larger text, that grid would squeeze every plot below a readable size;
rather than shrink text, :class:`PlotGrid` keeps each cell at least :func:`min_cell` and reflows the
plots into as many columns as fit (in the panel's reading order, spans kept), scrolling vertically
when the rows do not fit. One plot can be *focused*: it then fills the whole area until put back.
"""

from __future__ import annotations

from dataclasses import dataclass

import shiboken6
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFrame, QGridLayout, QScrollArea, QVBoxLayout, QWidget

from app import plots as plotting

#: The smallest readable plot (width, height) in pixels, normal and presentation mode.
MIN_CELL = {False: (270, 230), True: (400, 320)}


#: How long after a layout (its plots' fits done) :meth:`PlotGrid.check_overflow` looks at its width.
OVERFLOW_CHECK_MS = 60


def min_cell() -> tuple[int, int]:
    return MIN_CELL[plotting.style()["presentation"]]


@dataclass
class Placed:
    widget: QWidget
    row: int
    col: int
    rowspan: int
    colspan: int


class PlotGrid(QScrollArea):
    """A scroll area around ``grid``; the panel keeps adding to ``grid`` as to any QGridLayout."""

    def __init__(self, grid: QGridLayout, parent: QWidget | None = None):
        super().__init__(parent)
        self.grid = grid
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidgetResizable(True)
        # Plots in a panel's own nested layouts (pages, columns) keep their readable size too: where
        # even one column of them is too wide, the area scrolls sideways rather than cut them.
        self.setHorizontalScrollBarPolicy(plotting.pg.QtCore.Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.body = QWidget()
        self.body.setLayout(grid)
        self.setWidget(self.body)
        self.focused: QWidget | None = None
        #: "grid" (the panel's own layout), "reflow k" or "focus": what is shown now.
        self.mode = "grid"
        self._placed: list[Placed] = []
        self._held: QWidget | None = None
        self._holder: QWidget | None = None
        #: Where each widget is in the grid now (the panel's layout or a reflow).
        self._positions: dict[int, tuple[int, int, int, int]] = {}
        self._rows = 0                    # rows of the arrangement shown
        self._stretch: tuple[dict[int, int], dict[int, int]] = ({}, {})
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.relayout)
        #: At most this many columns (None: the panel's own) since the last change of width: set when the
        #: plots' laid-out labels and legends turned out wider than the area (see :meth:`check_overflow`).
        self._cap: int | None = None
        self._width = -1
        self._overflow_timer = QTimer(self)
        self._overflow_timer.setSingleShot(True)
        self._overflow_timer.timeout.connect(self._check_overflow)
        # plots.fit asks for a check when a plot's labels made it need more room than it had
        self.eoc_check_overflow = self.check_overflow

    # -- what the panel put in the grid ---------------------------------------------------------
    def _take_stock(self) -> None:
        """Remember where the panel put each item (its own layout) the first time it is seen."""
        self._placed = [p for p in self._placed if shiboken6.isValid(p.widget)]
        known = {id(p.widget) for p in self._placed}
        fresh = []
        for i in range(self.grid.count()):
            widget = self.grid.itemAt(i).widget()  # (widgets only: a nested layout stays where it is)
            if widget is not None and id(widget) not in known:
                fresh.append(Placed(widget, *self.grid.getItemPosition(i)))
        if fresh:
            if not self._placed:
                rows, cols = self.grid.rowCount(), self.grid.columnCount()
                self._stretch = ({r: self.grid.rowStretch(r) for r in range(rows)},
                                 {c: self.grid.columnStretch(c) for c in range(cols)})
            self._placed += fresh

    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the panel's own layout."""
        self._take_stock()
        rows = max((p.row + p.rowspan for p in self._placed), default=0)
        cols = max((p.col + p.colspan for p in self._placed), default=0)
        return rows, cols

    # -- layout ---------------------------------------------------------------------------------
    def schedule(self) -> None:
        self._timer.start(0)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        # The area's own width, not the viewport's (whose resize also lands here): a reflow's extra row
        # brought the vertical scroll bar, the narrower viewport let go of the column cap, the panel's
        # own columns came back without the bar, and the grid flipped between the two every 60 ms.
        if self.width() != self._width:
            self._width = self.width()
            self._cap = None
        self.schedule()

    def check_overflow(self) -> None:
        """Soon (once the plots' fits of this turn are done), see whether the grid is wider than the area."""
        self._overflow_timer.start(OVERFLOW_CHECK_MS)

    def _check_overflow(self) -> None:
        """Where the plots' labels and legends, as laid out, make the grid wider than the area, take one
        column fewer (until the width changes) rather than scroll sideways."""
        if self.mode == "focus" or not self.isVisible():
            return
        # the plots' needs are not yet those of the current style or titles (while a panel streams
        # results its legends keep moving: those fits change no size and must not put this off for ever)
        if plotting.full_fits_pending(self.body.findChildren(plotting.pg.PlotWidget)):
            self.check_overflow()
            return
        self._readable_minimum()          # minimums from those needs, not from before a restyle
        self._fit_body_height()           # a plot grown taller (its legend gone under it) must not overlap the next row
        columns = self.columns_shown()
        if columns > 1 and self.body.minimumSizeHint().width() > self.viewport().width():
            self._cap = columns - 1
            self.relayout()

    def columns_shown(self) -> int:
        """Columns of plots on show: the panel's own, a reflow's, or 1 for a focused plot."""
        if self.mode == "focus":
            return 1
        return self.shape()[1] if self.mode == "grid" else int(self.mode.split()[1])

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.schedule()

    def columns_that_fit(self) -> int:
        """How many columns of readable plots fit the width (at least 1, at most the panel's own)."""
        _rows, cols = self.shape()
        spacing = self.grid.horizontalSpacing()
        width = self.viewport().width() if self.isVisible() else self.width()
        # A column is as wide as its widest single-column item needs (a plot whose labels cannot wrap
        # further, a panel's nested column of plots), and at least a readable plot.
        column = max([min_cell()[0]] + [p.widget.minimumSizeHint().width() for p in self._placed
                                        if p.colspan == 1 and not p.widget.isHidden()
                                        and not isinstance(p.widget, plotting.pg.PlotWidget)])
        return max(1, min(cols, self._cap or cols, (width + spacing) // (column + spacing)))

    def relayout(self) -> None:
        """Show the panel's layout if every cell gets a readable size; otherwise reflow."""
        self._take_stock()
        if not self._placed:
            return
        self._readable_minimum()
        cell = self._cell_of(self.focused) if self.focused is not None else None
        if cell is not None:
            self._hold(cell)
            self.mode = "focus"
            return
        self.focused = None
        self._release()
        rows, cols = self.shape()
        k = self.columns_that_fit()
        if k >= cols:
            self._arrange(self._placed, cols, original=True)
            self.mode = "grid"
        else:
            self._arrange(self._placed, k)
            self.mode = f"reflow {k}"
        self.check_overflow()

    def _readable_minimum(self) -> None:
        """Every plot under this area (nested ones included) at least :func:`min_cell`, the focused
        one excepted (it has the whole area)."""
        size = min_cell()
        for plot in self.body.findChildren(plotting.pg.PlotWidget):
            need = getattr(plot, "eoc_need", (0, 0))  # what its labels need wrapped to the last word
            want = need if plot is self.focused else (max(size[0], need[0]), max(size[1], need[1]))
            if (plot.minimumWidth(), plot.minimumHeight()) != want:
                plot.setMinimumSize(*want)

    def _hold(self, cell: QWidget) -> None:
        """Show ``cell`` alone, filling the area: it moves out of the grid into a page of its own (the
        grid and its stretches stay as the panel set them)."""
        if self._held is cell:
            return
        self._release()
        self.grid.removeWidget(cell)
        self.takeWidget()  # the grid's page, kept (takeWidget does not delete it)
        holder = QWidget()
        layout = QVBoxLayout(holder)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(cell)
        self._held, self._holder = cell, holder
        self.setWidget(holder)
        self.verticalScrollBar().setValue(0)

    def _release(self) -> None:
        """Put the held cell back where it was in the grid, and the grid back in the area."""
        cell, holder = self._held, self._holder
        if cell is None:
            return
        self._held = self._holder = None
        holder.layout().removeWidget(cell)
        self.takeWidget()
        holder.deleteLater()
        self.setWidget(self.body)
        placed = next((p for p in self._placed if p.widget is cell), None)
        if placed is not None and shiboken6.isValid(cell):
            pos = self._positions.get(id(cell), (placed.row, placed.col, placed.rowspan, placed.colspan))
            self.grid.addWidget(cell, *pos)
            cell.show()

    def _cell_of(self, widget: QWidget) -> QWidget | None:
        """The item of the grid that is or holds ``widget`` (a plot in a panel's nested layout)."""
        if not shiboken6.isValid(widget):
            return None
        return next((p.widget for p in self._placed if p.widget is widget or p.widget.isAncestorOf(widget)), None)

    def _arrange(self, placed: list[Placed], columns: int, original: bool = False) -> None:
        cells = [(p, p.row, p.col, p.rowspan, p.colspan) for p in placed] if original else pack(placed, columns)
        wanted = {id(p.widget): (r, c, rs, cs) for p, r, c, rs, cs in cells}
        self._positions = wanted
        current = {}
        for i in range(self.grid.count()):
            current[id(self.grid.itemAt(i).widget())] = self.grid.getItemPosition(i)
        if all(current.get(k) == v for k, v in wanted.items()):
            self._size_body(cells)
            return
        for p in self._placed:
            self.grid.removeWidget(p.widget)
        self._reset_stretch()
        for p, r, c, rs, cs in cells:
            self.grid.addWidget(p.widget, r, c, rs, cs)
        if original:
            for r, s in self._stretch[0].items():
                self.grid.setRowStretch(r, s)
            for c, s in self._stretch[1].items():
                self.grid.setColumnStretch(c, s)
            if not any(self.grid.columnStretch(c) for c in range(columns)):
                # no stretch set: Qt would give all the spare width to one column's expanding plots
                for c in range(columns):
                    self.grid.setColumnStretch(c, 1)
        else:
            n_rows = max((r + rs for _p, r, _c, rs, _cs in cells), default=1)
            for r in range(n_rows):
                self.grid.setRowStretch(r, 1)
            for c in range(columns):
                self.grid.setColumnStretch(c, 1)
        self._size_body(cells)
        for p in self._placed:
            if hasattr(p.widget, "getPlotItem"):
                plotting.schedule_fit(p.widget, full=True)

    def _reset_stretch(self) -> None:
        for r in range(self.grid.rowCount()):
            self.grid.setRowStretch(r, 0)
        for c in range(self.grid.columnCount()):
            self.grid.setColumnStretch(c, 0)

    def _size_body(self, cells) -> None:
        """Rows never get shorter than a readable plot: the area scrolls instead."""
        self._rows = max((r + rs for _p, r, _c, rs, _cs in cells), default=0)
        self._fit_body_height()

    def _fit_body_height(self) -> None:
        """The body as tall as its rows of readable plots, or as the grid's plots need (the area scrolls)."""
        n_rows = self._rows
        spacing = self.grid.verticalSpacing()
        margins = self.grid.contentsMargins()
        readable = n_rows * min_cell()[1] + max(0, n_rows - 1) * spacing + margins.top() + margins.bottom()
        # A cell taller than a plot (a panel's nested column of plots) keeps its own minimum too.
        self.body.setMinimumHeight(max(readable, self.grid.minimumSize().height()))

    # -- focus ----------------------------------------------------------------------------------
    def focus(self, widget: QWidget | None) -> None:
        """Enlarge ``widget`` to fill the area (None: put every plot back)."""
        self.focused = widget
        self.relayout()


def pack(placed: list[Placed], columns: int) -> list[tuple[Placed, int, int, int, int]]:
    """Place items in reading order (row, then column of the panel's layout) into ``columns`` columns,
    each at the first free cell where it fits, spans kept (a span wider than ``columns`` is cut)."""
    taken: set[tuple[int, int]] = set()
    out = []
    for p in sorted(placed, key=lambda p: (p.row, p.col)):
        cs = min(p.colspan, columns)
        rs = p.rowspan
        r = 0
        while True:
            spot = next((c for c in range(columns - cs + 1)
                         if all((r + i, c + j) not in taken for i in range(rs) for j in range(cs))), None)
            if spot is not None:
                break
            r += 1
        for i in range(rs):
            for j in range(cs):
                taken.add((r + i, spot + j))
        out.append((p, r, spot, rs, cs))
    return out
