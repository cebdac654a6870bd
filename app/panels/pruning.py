"""Pruning and sparsity (lecture 4): lottery tickets, pruning at init, RigL and DCT + sparse on digits.

Plots (3 × 2): accuracy against density for every method (the sweep, streamed as each batch of networks
finishes, mean ± sd over seeds, the dense net as a band); the trained dense net pruned by magnitude at
the slider's density with no retraining; the layer densities each method gives at that density
(collapsed layers flagged); the first-layer mask as pictures; the winning ticket against its re-init and
a random mask, training curves at the chosen round; and the singular values of a sparse layer against a
DCT + sparse one.

Opening the tab (and ``edge-of-chaos render pruning``) trains a seeded preview of the sweep, 1 seed × 3 epochs
× 4 densities × 3 lottery rounds (31 networks, ~3 s of CPU; ~5 s with the shared dense net and the masks),
and says so in plot 1's title; the Run sweep button trains the full sweep as set (3 seeds × 10 epochs × 7
densities × 14 rounds by default, 255 networks).
The ``budget`` parameter ("automatic sweep") lets a preset ask for the full sweep by itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QFontMetrics

from app import plots
from app.panels.base import Panel
from core.pruning import PruningParams

METHOD_STYLE = {   # method: (legend name, palette index, symbol)
    "magnitude": ("magnitude + FT", 0, "o"),
    "imp": ("IMP ticket", 1, "o"),
    "reinit": ("re-init", 3, "o"),
    "random_mask": ("rand. mask", 6, "o"),
    "snip": ("SNIP", 2, "o"),
    "grasp": ("GraSP", 4, "o"),
    "synflow": ("SynFlow", 5, "o"),
    "rigl": ("RigL", 7, "o"),
    "static": ("static", 0, "s"),
    "dct": ("DCT+S", 1, "t"),
}
LAYER_METHODS = {   # plot 3's bars: masks at the chosen density
    "magnitude": ("trained |w|", 0),
    "init_magnitude": ("init |w|", 6),
    "snip": ("SNIP", 2),
    "grasp": ("GraSP", 4),
    "synflow": ("SynFlow", 5),
    "erk": ("ERK", 7),
}
SLIDER_KEYS = {"density", "scope", "output", "unit"}
LAYER_KEYS = {"density", "scope", "output"}
DENSE_KEYS = {"seed"}       # the slider's net is the shared one (core.models' default recipe)
SWEEP_KEYS = {"budget", "seeds", "epochs", "lr", "points", "lowest", "rounds", "prune_rate", "rewind", "scope",
              "output", "rigl_interval", "rigl_alpha", "rigl_densities", "seed"}
TRAINED_KEYS = tuple(sorted(SWEEP_KEYS - {"budget"}))   # what decides which networks a sweep trains
AUTO_DELAY_MS = 300             # a change restarts the automatic sweep once the controls are still
CURVE_DENSITIES = 31            # plot 2: the no-retraining curve at this many log-spaced densities
LOG_FLOOR = -4.0                # plot 3's bars start at density 10^-4
ACCURACY_FLOOR = -75.0          # plot 1's view goes this far below 0 %: room for the legend under the data
SV_FLOOR = 1e-4                 # plot 6: singular values below this are drawn at it (log axis)


def digits():
    from core import data

    return data.load("digits")


def spec():
    from core import nets

    return nets.DIGITS_MLP


def recipe(p: PruningParams):
    from core.pruning import Recipe

    return Recipe(epochs=p.epochs, lr=p.lr)


# -- jobs (worker threads) -----------------------------------------------------------------------------

@dataclass(frozen=True)
class DenseResult:
    params: PruningParams
    net: object                 # core.pruning.DenseNet
    curve_x: np.ndarray         # densities of the no-retraining curve
    curve_y: np.ndarray         # its test accuracy


def dense_job(p: PruningParams) -> DenseResult:
    from core import pruning as P

    data = digits()
    net = P.dense_net(data, spec(), p.seed)
    xs = np.geomspace(1.0, 1e-3, CURVE_DENSITIES)
    ys = P.magnitude_curve(net.weights, net.biases, data.x_test, data.y_test, xs, scope=p.scope, output=p.output,
                           phi=net.phi)
    return DenseResult(p, net, xs, ys)


def slider_job(net, p: PruningParams):
    from core import pruning as P

    data = digits()
    return P.slider(net.weights, net.biases, data.x_test, data.y_test, p.density, scope=p.scope, output=p.output,
                    unit=p.unit, phi=net.phi)


@dataclass(frozen=True)
class LayerResult:
    params: PruningParams
    densities: dict             # method -> per-layer densities
    first: dict                 # method -> first-layer boolean mask (out, in) as numpy
    random_sv: np.ndarray       # a random sparse He-scaled 128×128 layer's singular values


def layer_job(net, p: PruningParams) -> LayerResult:
    import torch

    from core import pruning as P

    table = P.layer_table(net.init, net.weights, digits(), p.density, scope=p.scope, output=p.output, seed=p.seed)
    g = torch.Generator().manual_seed(p.seed)
    n = 128
    support = P.keep_top(torch.rand(n, n, generator=g), max(1, round(p.density * n * n)))
    w = torch.randn(n, n, generator=g, dtype=torch.float64) * math.sqrt(2.0 / (p.density * n)) * support
    return LayerResult(p, {k: P.layer_densities(v) for k, v in table.items()},
                       {k: v[0].cpu().numpy() for k, v in table.items()}, torch.linalg.svdvals(w).numpy())


def steps_per_epoch() -> int:
    return math.ceil(len(digits().x_train) / recipe(PruningParams()).batch_size)


def sweep_params(p: PruningParams, budget: str) -> PruningParams:
    """What a sweep at ``budget`` ("preview" or "full") trains for the panel's parameters ``p``."""
    from core import pruning as P

    return P.budgeted(p, budget, steps_per_epoch())


def sweep_job(p: PruningParams):
    """The sweep of ``p`` exactly as given (the panel passes :func:`sweep_params`' result)."""
    from core import pruning as P

    densities = P.sweep_densities(p.points, p.lowest)
    yield from P.sweep(digits(), spec(), densities=densities, seeds=[p.seed + s for s in range(p.seeds)],
                       recipe=recipe(p), rounds=p.rounds, rate=p.prune_rate, rewind=p.rewind, scope=p.scope,
                       output=p.output, rigl_interval=p.rigl_interval, rigl_alpha=p.rigl_alpha,
                       rigl_layers=p.rigl_densities)


def _trained(q: PruningParams) -> tuple:
    return tuple(getattr(q, k) for k in TRAINED_KEYS)


def summarise(points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and sd of accuracy over seeds at each (rounded) density: (density, mean, sd), densest first."""
    groups: dict[float, list[float]] = {}
    for pt in points:
        groups.setdefault(round(pt.density, 6), []).append(pt.accuracy)
    d = np.array(sorted(groups, reverse=True))
    mean = np.array([np.mean(groups[k]) for k in d])
    sd = np.array([np.std(groups[k]) for k in d])
    return d, mean, sd


def _dots(plot, name, colour, errors=True):
    """plots.sim_dots whose legend sample shows its colour before the first data (pyqtgraph draws a
    PlotDataItem's sample from its scatter, styled only when data is set)."""
    dots, bars = plots.sim_dots(plot, name, colour, errors=errors)
    _style_sample(dots)
    return dots, bars


def _style_sample(dots) -> None:
    # one point, at once taken away. At (1, 1), finite on a log axis too: (0, 0) became NaN on the log
    # axes of "Layer 2 spectrum" and "Accuracy vs density", and pyqtgraph keeps a scatter's last points
    # when its data is emptied, so the hidden scatter's bounds (asked for by Qt) warned "All-NaN slice
    # encountered" (the CI failure of a window test); the scatter is emptied as well.
    dots.setData([1.0], [1.0])
    dots.setData([], [])
    dots.scatter.clear()


def _readout(plot, anchor=(0.5, 0)) -> pg.TextItem:
    """A text label inside the plot for what changes with every slider move: a title change would
    re-lay the whole plot out."""
    text = plots.note(plot, "", anchor=anchor, size="legend")
    text.setZValue(20)
    return text


def _density_ticks(item) -> None:
    item.getAxis("bottom").setTicks([[(2.0, "100"), (1.0, "10"), (0.0, "1"), (-1.0, "0.1")]])


def _room_for_tick_labels(axis, labels) -> None:
    """Widen a left axis for its text ticks now: pyqtgraph does it only when it paints them, and a headless
    render exports a panel that was never painted (its method names were cut off)."""
    font = axis.style.get("tickFont") or axis.font()
    metrics = QFontMetrics(font)
    axis._updateMaxTextSize(max(metrics.horizontalAdvance(label) for label in labels) + 2)


def _percent_ticks(item) -> None:
    """Ticks 0–100 % only: the space below 0 holds the legend."""
    item.getAxis("left").setTicks([[(v, str(v)) for v in range(0, 101, 20)]])


# -- the panel -----------------------------------------------------------------------------------------

class PruningPanel(Panel):
    name = "pruning"
    title = "Pruning"
    Params = PruningParams
    references = (
        ("Frankle & Carbin 2019, The lottery ticket hypothesis", "arXiv:1803.03635"),
        ("Frankle, Dziugaite, Roy & Carbin 2020, Linear mode connectivity and the lottery ticket hypothesis",
         "arXiv:1912.05671"),
        ("Lee, Ajanthan & Torr 2019, SNIP: single-shot network pruning", "arXiv:1810.02340"),
        ("Wang, Zhang & Grosse 2020, Picking winning tickets before training (GraSP)", "arXiv:2002.07376"),
        ("Tanaka, Kunin, Yamins & Ganguli 2020, Pruning neural networks without any data (SynFlow)",
         "arXiv:2006.05467"),
        ("Evci, Gale, Menick, Castro & Elsen 2020, Rigging the lottery (RigL)", "arXiv:1911.11134"),
        ("Price & Tanner 2021, Dense for the price of sparse (DCT plus sparse)", "arXiv:2102.07655"),
    )

    def build(self) -> None:
        self._dense: DenseResult | None = None
        self._layers: LayerResult | None = None
        self._slider = None
        self._points: dict[str, list] = {}
        self._curves: dict[tuple[str, int], object] = {}
        self._sweep_state = "not run"
        self._sweep_params: PruningParams | None = None    # what the shown (or running) sweep trains
        self.collapsed: list[str] = []
        self._build_accuracy(0, 0)
        self._build_layers(0, 2)
        self.grid.setRowStretch(0, 1)
        self.grid.setRowStretch(1, 1)
        self._build_masks(1, 0)
        self._build_ticket(1, 1)
        self._build_isometry(1, 2)
        self.sweep_button = self.add_button(
            "Run sweep", self.run_sweep, "Train the full sweep as set (every method at every density, all seeds "
            "at once per method) and stream the points into plot 1; opening the panel trains only a preview "
            "(see 'automatic sweep')")

    # -- plots ------------------------------------------------------------------------------------------
    def _density_axis(self, plot) -> None:
        item = plot.getPlotItem()
        item.invertX(True)
        item.setXRange(math.log10(100.0), math.log10(0.1), padding=0.06)
        _density_ticks(item)

    def _build_accuracy(self, row: int, col: int) -> None:
        plot = plots.make_plot("Accuracy vs density", "weights kept, d (%)", "test accuracy (%)", log_x=True,
                               legend="bottom-left")
        self._density_axis(plot)
        item = plot.getPlotItem()
        self.band_hi = plot.plot([], [], pen=None)
        self.band_lo = plot.plot([], [], pen=None)
        self.band = pg.FillBetweenItem(self.band_hi, self.band_lo, brush=pg.mkBrush(128, 128, 128, 70))
        plot.addItem(self.band)
        self.dense_line = plots.reference_line(plot, "dense±sd")
        self.method_dots = {}
        for method, (label, colour, symbol) in METHOD_STYLE.items():
            dots, bars = _dots(plot, label, colour)
            if symbol != "o":
                dots.setSymbol(symbol)
                _style_sample(dots)
            self.method_dots[method] = (dots, bars, symbol)
        # the instant slider: the trained dense net pruned by magnitude, never retrained
        self.instant_curve, _ = _dots(plot, "no retraining", 2, errors=False)
        self.instant_curve.setSymbol("d")
        _style_sample(self.instant_curve)
        # the slider's density: a dashed segment over 0–100 % only, so that the legend below 0 covers nothing
        self.instant_marker = plot.plot([], [], pen=pg.mkPen("#888888", width=2, style=pg.QtCore.Qt.PenStyle.DashLine))
        self.instant_text = _readout(plot, anchor=(0, 0.5))
        item.setYRange(ACCURACY_FLOOR, 106, padding=0)   # 0–100 % ticks; the legend sits below 0
        _percent_ticks(item)
        self.add_plot("accuracy", plot, row, col, 1, 2)

    def _build_layers(self, row: int, col: int) -> None:
        plot = plots.make_plot("Layer densities", "layer density (%)", "", legend="top-right")
        item = plot.getPlotItem()
        item.getAxis("bottom").setTicks([[(float(k), f"{10.0 ** k * 100:g}") for k in range(int(LOG_FLOOR) + 1, 1)]])
        item.getAxis("left").setTicks([[(i, label) for i, (label, _) in enumerate(LAYER_METHODS.values())]])
        _room_for_tick_labels(item.getAxis("left"), [label for label, _ in LAYER_METHODS.values()])
        item.setXRange(LOG_FLOOR, 2.8, padding=0)   # room right of 100 % for the legend
        # free rows: at the top for the legend, at the bottom for the readout
        item.setYRange(len(LAYER_METHODS) + 0.3, -2.1, padding=0)
        item.invertY(True)
        self.layer_bars = []
        for j, label in enumerate(("layer 1", "layer 2", "output")):
            bars = pg.BarGraphItem(x0=[], y=[], height=0.25, width=[], brush=plots.color(j),
                                   pen=pg.mkPen(plots.color(j)), name=label)
            plot.addItem(bars)
            self.layer_bars.append(bars)
        self.collapse_marks = pg.ScatterPlotItem(symbol="x", size=14, pen=pg.mkPen("#c0392b", width=3),
                                                 brush=pg.mkBrush("#c0392b"), name="collapsed")
        plot.addItem(self.collapse_marks)
        self.layer_text = _readout(plot, anchor=(0, 1))
        self.layer_text.setPos(LOG_FLOOR + 0.1, len(LAYER_METHODS) + 0.25)
        self.add_plot("layers", plot, row, col)

    def _build_masks(self, row: int, col: int) -> None:
        plot = plots.make_plot("Mask", "pixel column", "pixel row", legend=None)
        item = plot.getPlotItem()
        lut = pg.colormap.get("viridis").getLookupTable(nPts=256)
        self.pixel_image = pg.ImageItem(axisOrder="row-major")
        self.pixel_image.eoc_name = "kept first-layer weights per pixel"
        self.unit_image = pg.ImageItem(axisOrder="row-major")
        for image in (self.pixel_image, self.unit_image):
            image.setLookupTable(lut)
            plot.addItem(image)
        plots.lock_aspect(item)
        item.invertY(True)
        self.mask_text = _readout(plot, anchor=(0, 1))
        self._mask_shape = None
        self.add_plot("masks", plot, row, col)

    def _build_ticket(self, row: int, col: int) -> None:
        plot = plots.make_plot("Ticket vs re-init", "epoch", "test accuracy (%)", legend="bottom-right")
        self.ticket_dots = {}
        for method in ("imp", "reinit", "random_mask"):
            label, colour, _ = METHOD_STYLE[method]
            self.ticket_dots[method] = _dots(plot, label, colour)
        self.ticket_dense = plots.reference_line(plot, "dense, final")
        plot.getPlotItem().setYRange(-28, 102, padding=0)
        _percent_ticks(plot.getPlotItem())
        self.add_plot("ticket", plot, row, col)

    def _build_isometry(self, row: int, col: int) -> None:
        plot = plots.make_plot("Layer 2 spectrum", "rank / width", "singular value σ", log_y=True,
                               legend="top-right")
        self.dct_line = plots.theory_line(plot, "DCT+sparse at init", 2)
        self.random_sv, _ = _dots(plot, "random sparse", 1, errors=False)
        self.trained_sv, _ = _dots(plot, "trained, pruned", 0, errors=False)
        self.rank_text = _readout(plot, anchor=(0, 1))
        self._isometry_range = (0.0, 0.0)
        self._isometry_bottom = -4.0      # log10 of the bottom of the view
        plot.getPlotItem().setXRange(0, 1, padding=0.02)
        self.add_plot("isometry", plot, row, col)

    # -- scheduling -------------------------------------------------------------------------------------
    def schedule(self, changed: set[str]) -> None:
        p = self.params
        if changed & DENSE_KEYS or self._dense is None:
            self._dense = None
            self.submit("dense", dense_job, p, on_result=self._dense_ready, label="training the dense digits net")
        else:
            if changed & SLIDER_KEYS:
                self._submit_slider()
            if changed & LAYER_KEYS:
                self._submit_layers()
            if {"scope", "output"} & changed:
                self.submit("dense", dense_job, p, on_result=self._dense_ready, label="no-retraining curve")
            if "mask_method" in changed:
                self._draw_masks()
        if "ticket_round" in changed:
            self._draw_ticket()
        if changed & SWEEP_KEYS:
            self._auto_sweep(first=self._sweep_state == "not run")
        self.mark_rendered()

    def _submit_slider(self) -> None:
        if self._dense is not None:
            self.submit("slider", slider_job, self._dense.net, self.params, on_result=self._draw_slider,
                        label="magnitude pruning at the slider's density")

    def _submit_layers(self) -> None:
        if self._dense is not None:
            self.submit("layers", layer_job, self._dense.net, self.params, on_result=self._draw_layers, delay_ms=120,
                        label="masks of every method (SynFlow: 100 rounds)")

    def _dense_ready(self, r: DenseResult) -> None:
        self._dense = r
        pct = 100 * r.curve_x
        self.instant_curve.setData(pct, 100 * r.curve_y)
        self._submit_slider()
        self._submit_layers()
        self.mark_rendered()

    # -- the sweep --------------------------------------------------------------------------------------
    def run_sweep(self) -> None:
        """The Run sweep button: the full sweep of the current parameters, whatever ``budget`` says."""
        self._start_sweep(sweep_params(self.params, "full"))

    def _auto_sweep(self, first: bool) -> None:
        """On opening and after a change: the sweep at ``budget``, unless what is shown (or running) already
        trains exactly that, or is the full sweep of the current parameters."""
        p = self.params
        wanted = sweep_params(p, p.budget)
        if not first and self._sweep_params is not None and self._sweep_state in ("running", "done"):
            shown = _trained(self._sweep_params)
            if shown in (_trained(wanted), _trained(sweep_params(p, "full"))):
                self._draw_ticket()
                self._accuracy_title()
                return
        self._start_sweep(wanted, delay_ms=0 if first else AUTO_DELAY_MS)

    def _start_sweep(self, q: PruningParams, delay_ms: int = 0) -> None:
        self._points = {}
        self._curves = {}
        self._sweep_params = q
        self._sweep_state = "running"
        self._draw_accuracy()
        self._draw_ticket()
        self.set_progress(0.0)
        self.submit("sweep", sweep_job, q, on_partial=self._sweep_partial, on_result=self._sweep_done,
                    on_error=lambda _t: self._sweep_stopped("failed"), delay_ms=delay_ms,
                    label=f"density sweep ({self._budget_text()})")

    def is_preview(self) -> bool:
        """Whether plot 1 shows (or is training) less than the full sweep of the current parameters."""
        q = self._sweep_params
        return q is not None and _trained(q) != _trained(sweep_params(self.params, "full"))

    def cancel(self) -> None:
        running = self.runner.is_busy(self.job_key("sweep"))
        super().cancel()
        if running:
            self._sweep_stopped("cancelled")

    def _sweep_stopped(self, state: str) -> None:
        self._sweep_state = state
        self.set_progress(None)
        self._accuracy_title()

    def _sweep_partial(self, item) -> None:
        from core.pruning import Curve, Progress

        if isinstance(item, Progress):
            self.set_progress(item.fraction)
            self.progress.setFormat(item.text)
            return
        if isinstance(item, Curve):
            self._curves[(item.method, item.round)] = item
            if item.round in (self._shown_round(), 0):
                self._draw_ticket()
            return
        if isinstance(item, list) and item:
            self._points.setdefault(item[0].method, []).extend(item)
            self._draw_accuracy()
            self.mark_rendered()

    def _sweep_done(self, _last) -> None:
        self._sweep_stopped("done")
        self.mark_rendered()

    # -- drawing ----------------------------------------------------------------------------------------
    def _budget_text(self) -> str:
        """The budget of the shown sweep, e.g. 'preview: 1 seed, 3 epochs' (plot 5 names the lottery round)."""
        q = self._sweep_params
        if q is None:
            return "sweep"
        kind = "preview" if self.is_preview() else "full sweep"
        return f"{kind}: {q.seeds} seed{'s' * (q.seeds != 1)}, {q.epochs} epoch{'s' * (q.epochs != 1)}"

    def _accuracy_title(self) -> None:
        n = sum(len(v) for v in self._points.values())
        state = {"running": f"running, {n} nets", "done": f"{n} nets"}.get(self._sweep_state, self._sweep_state)
        plots.set_title(self.plots["accuracy"], f"Accuracy vs density · {self._budget_text()} · {state}")

    def _draw_accuracy(self) -> None:
        dense = self._points.get("dense", [])
        if dense:
            acc = 100 * np.array([pt.accuracy for pt in dense])
            m, s = acc.mean(), acc.std()
            self.band_hi.setData([0.05, 200.0], [m + s] * 2)
            self.band_lo.setData([0.05, 200.0], [m - s] * 2)
            self.dense_line.setData([0.05, 200.0], [m, m])
        else:
            for item in (self.band_hi, self.band_lo, self.dense_line):
                item.setData([], [])
        for method, (dots, bars, symbol) in self.method_dots.items():
            pts = self._points.get(method, [])
            if method == "imp" and dense:
                pts = dense + pts
            if not pts:
                dots.setData([], [])
                bars.setData(x=np.zeros(0), y=np.zeros(0), top=np.zeros(0), bottom=np.zeros(0))
                continue
            d, mean, sd = summarise(pts)
            dots.setData(100 * d, 100 * mean)
            dots.setSymbol(symbol)
            # the error bars do not follow the log axis: give them log10 positions
            bars.setData(x=np.log10(100 * d), y=100 * mean, top=100 * sd, bottom=100 * sd)
        self._accuracy_title()

    def _draw_slider(self, r) -> None:
        self._slider = r
        pct = 100 * r.density
        self.instant_marker.setData([pct, pct], [0.0, 100.0])
        self.instant_text.setText(f"d = {pct:.3g} %: {100 * r.accuracy:.1f} %\nno retraining")
        self.instant_text.setPos(math.log10(pct), 72.0)
        self._draw_bars()
        self._draw_masks()
        n = r.singular.size
        self.trained_sv.setData((np.arange(n) + 0.5) / n, np.maximum(r.singular, SV_FLOOR))
        if self.dct_line.xData is None or not len(self.dct_line.xData):
            self.dct_line.setData([0.0, 1.0], [1.0, 1.0])
        rank = int((r.singular > 1e-6 * max(r.singular.max(), 1e-30)).sum())
        self.rank_text.setText(f"d = {pct:.3g} %: rank {rank} of 128")
        self.rank_text.setPos(0.02, self._isometry_bottom)
        self._follow_isometry()
        self.mark_rendered()

    def _layer_table(self) -> dict:
        table = dict(self._layers.densities) if self._layers is not None else {}
        if self._slider is not None:
            table["magnitude"] = self._slider.layers
        return table

    def _draw_layers(self, r: LayerResult) -> None:
        self._layers = r
        self.random_sv.setData((np.arange(r.random_sv.size) + 0.5) / r.random_sv.size,
                               np.maximum(r.random_sv, SV_FLOOR))
        _room_for_tick_labels(self.plots["layers"].getPlotItem().getAxis("left"),
                              [label for label, _ in LAYER_METHODS.values()])
        self._draw_bars()
        self._draw_masks()
        self._follow_isometry()
        self.mark_rendered()

    def _draw_bars(self) -> None:
        """Bars per method (x), one per layer; a layer left with no weight gets a red ✕ at the bottom."""
        table = self._layer_table()
        methods = [m for m in LAYER_METHODS if m in table]
        xs_bad, names = [], []
        for j, bars in enumerate(self.layer_bars):
            x, top = [], []
            for m in methods:
                dens = table[m]
                if j >= len(dens):
                    continue
                i = list(LAYER_METHODS).index(m)
                offset = (j - (len(dens) - 1) / 2) * 0.27
                x.append(i + offset)
                top.append(math.log10(max(float(dens[j]), 10.0 ** LOG_FLOOR)))
                if dens[j] == 0:
                    xs_bad.append(i + offset)
                    names.append(LAYER_METHODS[m][0])
            bars.setOpts(y=np.array(x), width=np.array(top) - LOG_FLOOR, height=0.25, x0=LOG_FLOOR)
        self.collapse_marks.setData(x=[LOG_FLOOR + 0.2] * len(xs_bad), y=xs_bad)
        self.collapsed = sorted(set(names))
        pct = 100 * self.params.density
        self.layer_text.setText(f"d = {pct:.3g} %" + (f": {len(xs_bad)} ✕ collapsed" if xs_bad else ""))

    def _first_mask(self) -> np.ndarray | None:
        method = self.params.mask_method
        if method == "magnitude" and self._slider is not None:
            return None
        if self._layers is None or self._layers.params.density != self.params.density:
            return None
        return self._layers.first.get(method)

    def _draw_masks(self) -> None:
        shape = digits().image_shape or (8, 8)
        h, w = shape
        first = self._first_mask()
        if first is not None:
            pixels, unit = first.sum(0), first[min(self.params.unit, first.shape[0] - 1)].astype(float)
        elif self._slider is not None and self.params.mask_method == "magnitude":
            pixels, unit = self._slider.pixels, self._slider.unit
        else:
            return
        pixels = np.asarray(pixels, float)
        self.pixel_image.setImage(pixels.reshape(h, w), levels=(0, max(1.0, float(pixels.max()))))
        self.pixel_image.setRect(0, 0, w, h)
        self.unit_image.setImage(np.asarray(unit, float).reshape(h, w), levels=(0, 1))
        self.unit_image.setRect(w + 1.5, 0, w, h)
        self.pixel_image.eoc_x = np.arange(w) + 0.5
        self.pixel_image.eoc_y = np.arange(h) + 0.5
        kept = int(np.asarray(unit).sum())
        name = {"init_magnitude": "magnitude at init"}.get(self.params.mask_method, self.params.mask_method)
        plots.set_title(self.plots["masks"], f"Mask: {name}")
        plots.set_label(self.plots["masks"], "bottom", f"kept per pixel | unit {self.params.unit}")
        self.mask_text.setText(f"{kept} input{'' if kept == 1 else 's'}")
        self.mask_text.setPos(w + 1.5, -0.3)
        if self._mask_shape != (h, w):
            self._mask_shape = (h, w)
            self.plots["masks"].getPlotItem().setRange(xRange=(-0.5, 2 * w + 2), yRange=(-1.5, h + 0.5), padding=0)

    def _shown_round(self) -> int:
        """The lottery round plot 5 shows: the chosen one, or the sweep's last when it stops before it."""
        q = self._sweep_params
        return self.params.ticket_round if q is None else min(self.params.ticket_round, q.rounds)

    def _draw_ticket(self) -> None:
        r = self._shown_round()
        for method, (dots, bars) in self.ticket_dots.items():
            curve = self._curves.get((method, r))
            if curve is None:
                dots.setData([], [])
                bars.setData(x=np.zeros(0), y=np.zeros(0), top=np.zeros(0), bottom=np.zeros(0))
                continue
            acc = 100 * curve.accuracy
            epochs = np.arange(acc.shape[1], dtype=float)
            dots.setData(epochs, acc.mean(0))
            bars.setData(x=epochs, y=acc.mean(0), top=acc.std(0), bottom=acc.std(0))
        dense = self._curves.get(("imp", 0))
        if dense is not None:
            final = 100 * dense.accuracy[:, -1].mean()
            self.ticket_dense.setData([0, dense.accuracy.shape[1] - 1], [final, final])
        else:
            self.ticket_dense.setData([], [])
        curve = self._curves.get(("imp", r))
        if curve is not None:
            title = f"Round {r}: {100 * curve.density:.3g} %"
        else:
            title = f"Ticket, round {r}: not run"
        plots.set_title(self.plots["ticket"], title)
        q = self._sweep_params
        plots.set_label(self.plots["ticket"], "bottom", f"epoch · preview, {q.seeds} seed{'s' * (q.seeds != 1)}"
                        if self.is_preview() else "epoch")
        epochs = self._sweep_params.epochs if self._sweep_params is not None else self.params.epochs
        self.plots["ticket"].getPlotItem().setXRange(0, epochs, padding=0.03)

    def _follow_isometry(self) -> None:
        values = [1.0]
        for item in (self.random_sv, self.trained_sv):
            y = item.yData
            if y is not None and len(y):
                values += [float(np.min(y)), float(np.max(y))]
        lo, hi = math.log10(min(values)), math.log10(max(values))
        want = (math.floor(lo - 0.6), math.ceil(hi + 0.5 * (hi - lo + 0.2) + 0.2))
        if want != self._isometry_range:   # a new range regenerates the axes: only when the data need it
            self._isometry_range = want
            self._isometry_bottom = want[0] + 0.05
            self.plots["isometry"].getPlotItem().setYRange(*want, padding=0)
            self.rank_text.setPos(0.02, self._isometry_bottom)
