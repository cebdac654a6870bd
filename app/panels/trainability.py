"""Theory meets training: the plots of trained networks added to the Signal Propagation and Jacobian Spectra tabs.

* Signal Propagation ▸ Trainability (Schoenholz et al. 2017, Fig. 6): a heat map of test accuracy over
  (σ_w², depth L) at the panel's φ and σ_b, with 6 ξ_c and ξ_c drawn over it; and Noise limits depth
  (Pretorius et al. 2018): the same for noisy ReLU networks at their critical initialisation.
* Jacobian Spectra ▸ Learning speed (Pennington, Schoenholz, Ganguli 2017, Fig. 5): the training loss of
  deep critical tanh networks with orthogonal and Gaussian weights and of ReLU networks, the variance of
  each one's Jacobian spectrum in the legend.

Each tab gets a row of these plots under its own (its plot area scrolls where a small screen cannot show
every row at a readable size). Nothing trains until the lecturer presses the row's Train button, or a
headless ``render`` trains them at the small ``preview`` budget before it draws; grids stream in one depth
at a time and are kept by the engine's cache, so a parameter round trip or a cancel-and-resume retrains
nothing twice. The panels need only two hooks: make the section in ``build`` and pass ``schedule``'s
``changed`` to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel

from app import plots
from core import trainability as T

RENDER_BUDGET = "preview"
RENDER_SPEED_STEPS = 100
GRID_KEYS = {"phi", "alpha", "sigma_b", "noise", "seed"}
SPEED_KEYS = {"depth", "seed"}
SPEED_MIN_DEPTH = 32      # isometry's head start shows in deep nets (at L = 16 ReLU keeps up on digits)
SPEED_MAX_DEPTH = 64
XI_POINTS = 161
DEBOUNCE_MS = 300
TOP_ACCURACY = 1.45       # head-room above accuracy 1 for the legend
CHANCE_X = np.geomspace(0.01, 10.0, 13)   # the chance level tabulated along L / 6ξ_c (log axis)


def training_data():
    """The data the trained networks learn: the MNIST IDX files the user opened, else the 8×8 digits."""
    from core import data

    return data.opened_idx() or data.load("digits")


def opened_data_key() -> str:
    """The key of the opened IDX data, or "" for digits (known without loading anything)."""
    from core import data

    opened = data.opened_idx()
    return opened.key if opened is not None else ""


def same_data(result_key: str, opened_key: str) -> bool:
    """Whether a result trained on ``result_key`` is of the data in use now (``opened_key`` "" for digits)."""
    return result_key == opened_key if opened_key else not result_key.startswith("idx")


def data_words(key: str) -> str:
    return "MNIST (opened IDX files)" if key.startswith("idx") else "8×8 digits"


# -- jobs (worker threads: torch and numpy only) --------------------------------------------------

WARM_KEY = "trainability:warm"
WARM_DELAY_MS = 2000
_warmed = False     # process-wide, as the import it stands for


def warm_job() -> None:
    """Load the training data ahead of the first Train: core.data's first load imports scikit-learn, whose
    extension modules hold the interpreter lock (and so the GUI) for up to ~0.2 s."""
    global _warmed
    training_data()
    _warmed = True


def warm(panel) -> None:
    """Submit :func:`warm_job` once per process, straight to the runner (no panel waits for it)."""
    from app.runner import Job

    if not _warmed and not panel.runner.closed:
        panel.runner.submit(Job(key=WARM_KEY, fn=warm_job, label="loading the digits"))


def _warm_later(panel) -> None:
    """In the app's window (a panel with a parent), warm up a little after the panel first draws."""
    if panel.parent() is not None and not _warmed:
        QTimer.singleShot(WARM_DELAY_MS, panel, lambda: warm(panel))


@dataclass(frozen=True)
class GridItem:
    """One streamed item of a grid job: which grid (``kind``) and the engine's result or progress."""

    kind: str
    item: object
    theory: tuple[np.ndarray, np.ndarray]


def grids_job(grids: tuple[T.Grid, ...], device=None):
    """Train the grids one after the other, streaming their results (the engine skips cached depths)."""
    data = training_data()
    for grid in grids:
        theory = theory_curves(grid)
        for item in T.train_grid(grid, data, device=device):
            yield GridItem(grid.kind, item, theory)


def theory_curves(grid: T.Grid) -> tuple[np.ndarray, np.ndarray]:
    """ξ_c on a fine grid of the columns' axis, for the lines over the heat map."""
    from core.propagation import phase_diagram

    fine = T.Grid(**{**grid.__dict__, "budget": T.Budget(columns=XI_POINTS, depths=(1,))})
    x = fine.columns()
    if grid.kind == "sigma_w":   # the phase diagram's tables: ~100× faster than pointwise quadrature
        pd = phase_diagram(grid.activation, np.sqrt(x), np.array([grid.sigma_b]))
        return x, np.asarray(pd.xi_c, float).ravel()
    return x, fine.xi_c()


def speed_job(depth: int, seed: int, steps: int, device=None):
    return T.learning_speed(training_data(), depth=depth, steps=steps, seed=seed, device=device)


# -- plot builders ------------------------------------------------------------------------------

@dataclass
class GridPlot:
    widget: pg.PlotWidget
    image: pg.ImageItem
    colorbar: pg.ColorBarItem
    six_xi: pg.PlotDataItem
    xi: pg.PlotDataItem
    marker: pg.PlotDataItem
    diverged: pg.PlotDataItem


def grid_plot(title: str, x_label: str) -> GridPlot:
    """A heat map of test accuracy over (x, depth L) with the theory's depth scales drawn over it; the top of
    the view is left free of cells for the legend."""
    widget = plots.make_plot(title, x_label, "depth L", legend="top-left")
    widget.getPlotItem().legend.setColumnCount(3)
    image = pg.ImageItem(axisOrder="col-major")
    image.eoc_name = "test accuracy"
    widget.addItem(image)
    colorbar = plots.color_bar(widget, image, (0.0, 1.0))
    colorbar.axis.setLabel("accuracy", **plots.label_style())
    six_xi = plots.theory_line(widget, "6 ξ<sub>c</sub> (theory)", 1, width_scale=1.3)
    xi = plots.theory_line(widget, "ξ<sub>c</sub>", 1, dash=True)
    marker = widget.plot([], [], pen=None, symbol="+", symbolSize=22,
                         symbolPen=pg.mkPen("#000000", width=1.5), symbolBrush=pg.mkBrush("#ffffff"))
    marker.opts["name"] = "this panel's point"
    diverged = widget.plot([], [], pen=None, symbol="x", symbolSize=14, symbolPen=pg.mkPen("#D55E00", width=2),
                           symbolBrush=None)
    diverged.opts["name"] = "diverged (loss NaN)"
    return GridPlot(widget, image, colorbar, six_xi, xi, marker, diverged)


def theories_job(grids: tuple[T.Grid, ...]) -> dict:
    """The depth-scale lines of each grid, drawn before (and without) any training."""
    return {g.kind: (g, theory_curves(g)) for g in grids}


def draw_grid(gp: GridPlot, r: T.GridResult, theory: tuple[np.ndarray, np.ndarray]) -> None:
    """Put ``r``'s cells in the image (untrained cells transparent) and the depth scales over them."""
    x, d = r.columns, r.depths
    dx = (x[-1] - x[0]) / max(len(x) - 1, 1) or 1.0
    dd = (d[-1] - d[0]) / max(len(d) - 1, 1) or 1.0
    gp.image.setImage(np.asarray(r.accuracy, float).T, autoLevels=False, levels=(0.0, 1.0))
    gp.image.setRect(x[0] - dx / 2, d[0] - dd / 2, dx * len(x), dd * len(d))
    gp.image.eoc_x, gp.image.eoc_y = x, d
    draw_depth_scales(gp, x, d, theory)
    bad = np.argwhere((r.diverged > 0) & r.done[:, None])
    gp.diverged.setData(x[bad[:, 1]] if bad.size else [], d[bad[:, 0]] if bad.size else [])
    legend = gp.widget.getPlotItem().legend
    if bad.size and legend.getLabel(gp.diverged) is None:
        legend.addItem(gp.diverged, "× diverged (loss NaN)")


def draw_depth_scales(gp: GridPlot, x: np.ndarray, d: np.ndarray, theory: tuple[np.ndarray, np.ndarray]) -> None:
    """6 ξ_c and ξ_c over the grid's extent (columns ``x``, depths ``d``), and the view on that extent."""
    dx = (x[-1] - x[0]) / max(len(x) - 1, 1) or 1.0
    dd = (d[-1] - d[0]) / max(len(d) - 1, 1) or 1.0
    top = d[-1] + dd / 2
    xs, xi = theory
    for item, scale in ((gp.six_xi, 6.0), (gp.xi, 1.0)):
        # Drawn over the grid only: above it is the legend's room.
        y = np.where(scale * xi <= top, scale * xi, np.nan)
        item.setData(xs, y, connect="finite")
    plot_item = gp.widget.getPlotItem()
    bottom = d[0] - dd / 2
    plot_item.setRange(xRange=(x[0] - dx / 2, x[-1] + dx / 2), yRange=(bottom, top + 0.32 * (top - bottom)),
                       padding=0)


def set_marker(gp: GridPlot, x: float, depth: float, inside: bool) -> None:
    gp.marker.setData([x], [depth]) if inside else gp.marker.setData([], [])


@dataclass
class SpeedPlot:
    widget: pg.PlotWidget
    curves: list
    bands: list


LOSS_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


def speed_plot() -> SpeedPlot:
    widget = plots.make_plot("Learning speed at criticality (trained nets)", "SGD step",
                             "loss (cross-entropy)", log_y=True, legend="bottom-left")
    # Decades of a loss span little: label a 1-2-5 ladder rather than pyqtgraph's crowded minor ticks.
    widget.getPlotItem().getAxis("left").setTicks([[(math.log10(v), f"{v:g}") for v in LOSS_TICKS]])
    curves, bands = [], []
    for i, run in enumerate(T.speed_runs()):
        dots, bars = plots.sim_dots(widget, run.label, i)
        curves.append(dots)
        bands.append(bars)
    return SpeedPlot(widget, curves, bands)


def draw_speed(sp: SpeedPlot, r: T.SpeedResult) -> None:
    for i, run in enumerate(r.runs):
        y, sd = r.loss[i], r.loss_sd[i]
        ok = np.isfinite(y) & (y > 0)
        sp.curves[i].setData(r.steps[ok], y[ok])
        # Error bars in log10 units, as pyqtgraph draws them on a log axis.
        up = np.log10(y[ok] + sd[ok]) - np.log10(y[ok])
        down = np.log10(y[ok]) - np.log10(np.maximum(y[ok] - sd[ok], 1e-6 * y[ok]))
        sp.bands[i].setData(x=r.steps[ok], y=np.log10(y[ok]), top=up, bottom=down)
        var = r.variance[i]
        acc = "" if r.accuracy is None or not math.isfinite(r.accuracy[i]) else f", test acc {r.accuracy[i]:.0%}"
        plots.rename(sp.widget, sp.curves[i], f"{run.label}: σ²<sub>JJᵀ</sub> = {_short(var)}{acc}")
    plots.set_title(sp.widget, f"Learning speed of trained critical nets: L = {r.depth}, N = {r.width}")
    shown = r.loss[np.isfinite(r.loss) & (r.loss > 0)]
    if shown.size:
        lo, hi = math.log10(shown.min()), math.log10(shown.max())
        # Room below the curves for the legend (bottom-left, where the losses have not yet come down).
        sp.widget.getPlotItem().setYRange(lo - 0.6 * max(hi - lo, 0.3), hi + 0.05, padding=0)


def _short(v: float) -> str:
    if not math.isfinite(v):
        return "∞"
    return f"{v:.2g}" if v < 100 else f"{v:.3g}"


# -- the collapse plot --------------------------------------------------------------------------------

@dataclass
class CollapsePlot:
    widget: pg.PlotWidget
    dots: dict
    chance: pg.PlotDataItem


def collapse_plot() -> CollapsePlot:
    """Every trained cell's accuracy against L / 6ξ_c: if Schoenholz et al.'s bound holds, the cells fall
    to chance where this passes 1, whatever σ_w or the noise."""
    widget = plots.make_plot("Accuracy against L / 6 ξ<sub>c</sub>", "L / 6 ξ<sub>c</sub>", "test accuracy",
                             log_x=True, legend="top-right")
    widget.getPlotItem().legend.setColumnCount(2)
    dots = {"sigma_w": plots.sim_dots(widget, "σ<sub>w</sub> grid", 0, errors=False)[0],
            "noise": plots.sim_dots(widget, "noise grid", 2, errors=False)[0]}
    bound = plots.reference_line(widget, "L = 6 ξ<sub>c</sub>")
    bound.setData([1.0, 1.0], [0.0, 1.0])
    chance = plots.theory_line(widget, "chance", 6, dash=True, width_scale=0.6)
    chance.setData(CHANCE_X, np.full(CHANCE_X.size, 0.1))   # ten classes until a grid says otherwise
    widget.getPlotItem().setRange(xRange=(-2.0, 1.0), yRange=(0.0, TOP_ACCURACY), padding=0)
    return CollapsePlot(widget, dots, chance)


def draw_collapse(cp: CollapsePlot, results: dict) -> None:
    lo, hi = -2.0, 1.0
    for kind, dots in cp.dots.items():
        r = results.get(kind)
        if r is None:
            dots.setData([], [])
            continue
        with np.errstate(divide="ignore"):
            ratio = r.depths[:, None] / (6.0 * r.xi_c[None, :])
        ok = r.done[:, None] & np.isfinite(r.accuracy) & (ratio > 0) & np.isfinite(ratio)
        x, y = ratio[ok], r.accuracy[ok]
        dots.setData(x, y)
        if x.size:
            lo, hi = min(lo, math.floor(np.log10(x.min()))), max(hi, math.ceil(np.log10(x.max())))
        x_chance = np.geomspace(10.0**lo, 10.0**hi, CHANCE_X.size)
        cp.chance.setData(x_chance, np.full(x_chance.size, r.chance))
    cp.widget.getPlotItem().setRange(xRange=(lo, hi), yRange=(0.0, TOP_ACCURACY), padding=0)


def _headless(panel) -> bool:
    """A panel with no window that was never shown: the CLI's render, which must train before it draws."""
    return panel.parent() is None and not panel.isVisible() and not panel.testAttribute(
        pg.QtCore.Qt.WidgetAttribute.WA_WState_ExplicitShowHide)


def _hint(widget: pg.PlotWidget, text: str) -> pg.TextItem:
    """A line of text in the middle of an empty plot, saying how to fill it."""
    return plots.note(widget, text, size="label", muted=True, ignoreBounds=True)


class TrainabilitySection:
    """The trained-network row of the Signal Propagation panel: two heat maps and their collapse onto
    L / 6ξ_c, under the mean-field plots (the plot area scrolls to them where the screen is small).

    Nothing trains until the lecturer asks (the button, or a headless render); from then on a change of φ,
    σ_b, the noise, the seed or the budget retrains what it changed, and only that.
    """

    def __init__(self, panel, row: int = 3):
        self.panel = panel
        self._grids: dict[str, T.Grid] = {}
        self._results: dict[str, T.GridResult] = {}
        self._started = False
        self._headless_checked = False
        self.plots = {"sigma_w": grid_plot("Trainability (trained nets)", "σ<sub>w</sub>²"),
                      "noise": grid_plot("Noise limits depth (ReLU)", "keep probability p")}
        panel.add_plot("trainability", self.plots["sigma_w"].widget, row, 0)
        panel.add_plot("noise_depth", self.plots["noise"].widget, row, 1)
        self.collapse = collapse_plot()
        panel.add_plot("trainable_depth", self.collapse.widget, row, 2)
        self.hints = {kind: _hint(gp.widget, "press Train") for kind, gp in self.plots.items()}
        for kind in self.plots:
            self._place_hint(kind)
        form = QFormLayout()
        self.budget = QComboBox()
        for name, budget in T.BUDGETS.items():
            self.budget.addItem(budget_label(name, budget), name)
        self.budget.setCurrentIndex(list(T.BUDGETS).index("lecture"))
        self.budget.setAccessibleName("training budget")
        # As wide as the column allows, not as its longest item (which would widen the column past the
        # screen's third in presentation mode); the open list still shows each item whole.
        self.budget.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.budget.setMinimumContentsLength(12)
        self.budget.currentIndexChanged.connect(lambda _i: self._budget_changed())
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.addRow(QLabel("budget"), self.budget)
        panel.buttons.addLayout(form)
        self.train_button = panel.add_button(
            "Train the grids (trained nets)", self.train,
            "Train the networks of the two heat maps on digits (MNIST once opened); finished depths are kept, "
            "so a cancelled grid resumes where it stopped")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        panel.buttons.addWidget(self.status)

    # -- scheduling -----------------------------------------------------------------------------
    def budget_name(self) -> str:
        return self.budget.currentData()

    def wanted(self) -> dict[str, T.Grid]:
        p = self.panel.params
        budget = T.BUDGETS[self.budget_name()]
        noise = "gaussian" if p.noise == "gaussian" else "dropout"
        return {"sigma_w": T.Grid("sigma_w", p.phi, p.alpha, p.sigma_b, budget=budget, seed=p.seed),
                "noise": T.Grid("noise", noise=noise, budget=budget, seed=p.seed)}

    def schedule(self, changed: set[str]) -> None:
        """The panel's hook: retrain what ``changed`` invalidates, once training was asked for."""
        if not self._headless_checked:
            self._headless_checked = True
            if _headless(self.panel):
                self.budget.setCurrentIndex(list(T.BUDGETS).index(RENDER_BUDGET))
                self.train()
                return
            _warm_later(self.panel)
        self._update_marker()
        if changed & GRID_KEYS:
            self._submit_theory()
        if self._started and changed & GRID_KEYS:
            self.train(delay_ms=DEBOUNCE_MS)

    def _submit_theory(self) -> None:
        self.panel.submit("trainability_theory", theories_job, tuple(self.wanted().values()),
                          on_result=self._draw_theory, delay_ms=100, label="depth scales of the grids")

    def _draw_theory(self, theories: dict) -> None:
        for kind, (grid, theory) in theories.items():
            if kind in self._results or grid != self.wanted()[kind]:
                continue   # trained cells (with their own lines) are on screen, or the grid moved on
            self._clear(kind)
            draw_depth_scales(self.plots[kind], grid.columns(), np.array(grid.budget.depths), theory)
            self._place_hint(kind)
        self.panel.mark_rendered()

    def _budget_changed(self) -> None:
        self._submit_theory()
        if self._started:
            self.train()

    def train(self, delay_ms: int = 0) -> None:
        grids = self.wanted()
        self._started = True
        data_key = opened_data_key()
        for kind, grid in grids.items():
            old = self._results.get(kind)
            if self._grids.get(kind) != grid or (old is not None and not same_data(old.data_key, data_key)):
                self._grids[kind] = grid
                self._results.pop(kind, None)
                self._clear(kind)
        todo = tuple(g for g in grids.values() if not (g.kind in self._results and self._results[g.kind].complete))
        if not todo:
            self.panel.mark_rendered()
            return
        for kind in (g.kind for g in todo):
            self.hints[kind].setText("training…")
        self.status.setText(f"training {len(todo)} grid{'s' if len(todo) > 1 else ''} on "
                            f"{data_words(data_key)}…")
        self.panel.submit("trainability", grids_job, todo, on_partial=self._arrived, on_result=self._finished,
                          delay_ms=delay_ms, label="training the trainability grids")

    def _clear(self, kind: str) -> None:
        gp = self.plots[kind]
        gp.image.clear()
        gp.six_xi.setData([], [])
        gp.xi.setData([], [])
        gp.diverged.setData([], [])
        self.hints[kind].setVisible(True)
        draw_collapse(self.collapse, self._results)

    def _place_hint(self, kind: str) -> None:
        (x0, x1), (y0, y1) = self.plots[kind].widget.getPlotItem().getViewBox().viewRange()
        self.hints[kind].setPos((x0 + x1) / 2, (y0 + y1) / 2)

    # -- drawing ----------------------------------------------------------------------------------
    def _arrived(self, g: GridItem) -> None:
        if isinstance(g.item, T.Progress):
            self.panel.set_progress(g.item.fraction)
            return
        r: T.GridResult = g.item
        if self._grids.get(g.kind) != r.grid:
            return
        self._results[g.kind] = r
        gp = self.plots[g.kind]
        draw_grid(gp, r, g.theory)
        self.hints[g.kind].setVisible(False)
        if g.kind == "sigma_w":
            plots.set_title(gp.widget, f"Trainability: {r.grid.activation}, σ<sub>b</sub> = {r.grid.sigma_b:g}")
        else:
            label = "keep probability p" if r.grid.noise == "dropout" else "Gaussian noise s, ε ~ N(1, s²)"
            plots.set_label(gp.widget, "bottom", label)
            noise = "dropout" if r.grid.noise == "dropout" else "Gaussian ε"
            plots.set_title(gp.widget, f"Noise limits depth: ReLU, {noise}")
        draw_collapse(self.collapse, self._results)
        self._update_marker()
        done = sum(int(x.done.sum()) for x in self._results.values())
        total = sum(len(x.depths) for x in self._results.values())
        self.status.setText(f"{done} of {total} depths trained on {data_words(r.data_key)}, "
                            f"{r.grid.budget.steps} SGD steps each ({r.device}, {r.seconds:.0f} s). "
                            f"+ marks this panel's σ<sub>w</sub>², L.")
        self.panel.mark_rendered()

    def _finished(self, _last) -> None:
        self.panel.set_progress(None)
        self.panel.mark_rendered()

    def _update_marker(self) -> None:
        p = self.panel.params
        for kind, gp in self.plots.items():
            grid = self._grids.get(kind)
            if grid is None:
                continue
            x = grid.columns()
            d = grid.budget.depths
            if kind == "sigma_w":
                here = p.sigma_w**2
                ok = p.phi == grid.phi and p.noise == "none"
            else:
                here = p.keep_prob if grid.noise == "dropout" else p.noise_std
                ok = p.phi == "relu" and p.noise != "none"
            set_marker(gp, here, p.depth, ok and x[0] <= here <= x[-1] and p.depth <= d[-1] + 2)


def budget_label(name: str, b: T.Budget) -> str:
    nets = f" × {b.seeds}" if b.seeds > 1 else ""
    return f"{name} ({b.columns} × {len(b.depths)}{nets}, {b.steps} steps)"


class LearningSpeedSection:
    """The trained-network row of the Jacobian Spectra panel: training loss of critical deep nets."""

    def __init__(self, panel, row: int = 3, steps: int = 400):
        self.panel = panel
        self.steps = steps
        self._request: tuple | None = None
        self._drawn: tuple | None = None
        self._started = False
        self._headless_checked = False
        self.plot = speed_plot()
        panel.add_plot("learning_speed", self.plot.widget, row, 0, 1, 3)
        panel.grid.setRowStretch(row, 1)
        self.plot.widget.getPlotItem().setRange(xRange=(0, steps), yRange=(-1.5, 0.5), padding=0)
        self.hint = _hint(self.plot.widget, "press Train: learning speed")
        self.hint.setPos(steps / 2, -0.5)
        self.train_button = panel.add_button(
            "Train: learning speed (trained nets)", self.train,
            "Train deep critical tanh nets (orthogonal and Gaussian weights) and ReLU nets on digits, "
            "at this tab's depth L clamped to [32, 64]")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        panel.buttons.addWidget(self.status)

    def request(self) -> tuple[int, int, int]:
        p = self.panel.params
        return (max(SPEED_MIN_DEPTH, min(int(p.depth), SPEED_MAX_DEPTH)), int(p.seed), self.steps)

    def schedule(self, changed: set[str]) -> None:
        if not self._headless_checked:
            self._headless_checked = True
            if _headless(self.panel):
                self.steps = RENDER_SPEED_STEPS
                self.train()
                return
            _warm_later(self.panel)
        if self._started and changed & SPEED_KEYS:
            self.train(delay_ms=DEBOUNCE_MS)

    def train(self, delay_ms: int = 0) -> None:
        self._started = True
        req = self.request()
        if req == self._drawn:
            self.panel.mark_rendered()
            return
        self._request = req
        depth, seed, steps = req
        self.plot.widget.getPlotItem().setXRange(0, steps, padding=0.02)
        self.hint.setText("training…")
        self.status.setText(f"training {len(T.speed_runs())} kinds of net × 2 seeds, L = {depth}, on "
                            f"{data_words(opened_data_key())}…")
        self.panel.submit("learning_speed", speed_job, depth, seed, steps, on_partial=self._arrived,
                          delay_ms=delay_ms, label=f"learning speed (L = {depth})")

    def _arrived(self, r: T.SpeedResult) -> None:
        if self._request is None or r.depth != self._request[0]:
            return
        draw_speed(self.plot, r)
        self.hint.setVisible(False)
        self.panel.set_progress(r.steps[-1] / self._request[2] if len(r.steps) else None)
        if r.done:
            self._drawn = self._request
            self.status.setText(f"learning speed: {r.steps[-1]} steps at L = {r.depth} ({r.device})")
        self.panel.mark_rendered()
