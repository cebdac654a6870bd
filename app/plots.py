"""Plot styling (theory = solid line, simulation = dots), themes, presentation mode, and export.

Every panel makes its plots here so that one switch (light/dark, presentation mode) restyles all
of them, and export writes each plot as PNG, SVG and CSV the same way.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from pyqtgraph.exporters import CSVExporter, ImageExporter, SVGExporter
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QGraphicsItem

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
    widget = pg.PlotWidget()
    widget.setMinimumSize(260, 200)
    item = widget.getPlotItem()
    item.eoc_title = title
    item.setLabel("bottom", x_label, units=x_units)
    item.setLabel("left", y_label, units=y_units)
    item.setLogMode(x=log_x, y=log_y)
    item.showGrid(x=True, y=True)
    for name in ("bottom", "left"):
        axis = item.getAxis(name)
        axis.enableAutoSIPrefix(False)  # "c (x0.001)" confuses a lecture hall
        # An axis (with its grid) costs ~4 ms to paint; cached, a data change repaints in a blit.
        axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    if legend:
        _cached_legend(item.addLegend(offset=LEGEND_OFFSETS[legend]))
    _plots.append(widget)
    widget.destroyed.connect(lambda *_: _forget(widget))
    _apply(widget)
    return widget


def move_legend(widget: pg.PlotWidget, corner: str) -> None:
    """Put the legend in ``corner`` ("top-right", "bottom-left", …) if it is not there already."""
    legend = widget.getPlotItem().legend
    offset = LEGEND_OFFSETS[corner]
    if legend is not None and tuple(legend.opts["offset"]) != offset:
        legend.setOffset(offset)


def _cached_legend(legend: pg.LegendItem) -> None:
    """Paint the legend (box, samples, labels) once and blit it while the curves under it change:
    otherwise it is redrawn with every data change of its plot (~2 ms each)."""
    add = legend.addItem

    def add_cached(item, name):
        add(item, name)
        stack = [legend]
        while stack:
            node = stack.pop()
            node.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
            stack += node.childItems()

    legend.addItem = add_cached
    legend.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


def _forget(widget) -> None:
    try:
        _plots.remove(widget)
    except ValueError:
        pass


def theory_line(plot: pg.PlotWidget, name: str | None, i: int = 0, *, dash: bool = False,
                width_scale: float = 1.0) -> pg.PlotDataItem:
    """A solid line: what the theory predicts."""
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
    item.setTitle(text, color=THEMES[_style["theme"]]["foreground"], size=f"{sizes()['title']}pt")


def set_label(widget: pg.PlotWidget, side: str, text: str) -> None:
    """Change an axis label in the current style."""
    axis = widget.getPlotItem().getAxis(side)
    if axis.labelText == text:
        return
    axis.setLabel(text, **label_style())
    axis.resizeEvent()  # pyqtgraph centres an axis label only on resize, not when its text changes


def rename(widget: pg.PlotWidget, item, text: str) -> None:
    """Rename a plotted item in its legend and in the CSV export (which reads the item's name)."""
    item.opts["name"] = text
    legend = widget.getPlotItem().legend
    label = legend.getLabel(item) if legend is not None else None
    if label is not None and label.text != text:
        label.setText(text, color=THEMES[_style["theme"]]["foreground"], size=f"{sizes()['legend']}pt")


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


def _apply(widget: pg.PlotWidget) -> None:
    theme = THEMES[_style["theme"]]
    s = sizes()
    widget.setBackground(theme["background"])
    item = widget.getPlotItem()
    fg = theme["foreground"]
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
        if axis.labelText:
            axis.setLabel(axis.labelText, units=axis.labelUnits, color=fg, **{"font-size": f"{s['label']}pt"})
    item.showGrid(x=True, y=True, alpha=theme["grid"])
    legend = item.legend
    if legend is not None:
        legend.setLabelTextColor(fg)
        legend.setLabelTextSize(f"{s['legend']}pt")
        legend.setBrush(pg.mkBrush(theme["background"] + "d0"))
        legend.setPen(pg.mkPen(fg, width=0.5))
        for _sample, label in legend.items:
            label.setText(label.text, color=fg, size=f"{s['legend']}pt")
    for child in item.items:
        _style_item(child)


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
    png.export(str(paths[0]))
    SVGExporter(item).export(str(paths[1]))
    images = [c for c in item.items if isinstance(c, pg.ImageItem) and c.image is not None]
    if images:
        _write_image_csv(images[0], paths[2])
    else:
        CSVExporter(item).export(str(paths[2]))
    return paths


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
