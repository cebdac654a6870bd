"""Optimizers (lecture 9): GD, SGD, heavy ball, Nesterov, AdaGrad, AdaGrad-Norm, RMSProp and Adam.

Two pages (the "plots" control). Quadratics: the 2-D playground (paths of every chosen optimiser from a
start point the user drags), f − f* along those paths, heavy ball's momentum map over (α, β) with a
draggable marker, the error against step on an n-dimensional quadratic (torch.optim's iteration, dots)
against the closed-form rates (slopes, lines), and 1 − ρ against κ. Networks: every chosen optimiser on
real data (Train / Cancel), AdaGrad-Norm's b₀ sweeps on least squares and on the digits net (Ward, Wu &
Bottou), and a deep net at a poor init with and without batch norm.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QTimer
from PySide6.QtWidgets import QGridLayout, QSizePolicy, QStackedWidget, QWidget

from app import contours, plots
from app.panels.base import Panel
from core.optimizers import playground as PG
from core.optimizers import quadratic as Q
from core.optimizers.experiments import SWEEP_LABELS, SWEEP_METHODS
from core.optimizers.library import LABELS, NAMES
from core.optimizers.settings import SHOW, OptimizersParams

COLOURS = {name: i for i, name in enumerate(NAMES)}     # one colour per optimiser, on every plot
GRID_N = 200                    # contour grid of the playground, each way
COVER = 2.4                     # the contours cover a square this many times the surface's view
CONTOURS = 10
RATE_DIM = 50                   # dimension of the rates quadratic
RATE_METHODS = ("gd", "heavy_ball", "nesterov")
KAPPA_GRID = np.array([3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0])
MAP_SIZE = 256
SWEEP_COLOURS = (2, 1, 3)       # AdaGrad-Norm, SGD η/b₀, SGD η/(b₀√k)
MAP_LEVELS = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999)
SWEEP_B0 = np.logspace(-4, 2, 13)        # 6 decades, least squares
LS_SIZE, LS_STEPS = (1000, 100), 1000    # Ward et al. §5.1: n = 1000, d = 100, 1000 full-batch steps
DIGITS_B0 = np.logspace(-4, 2, 7)        # 6 decades, the digits net
DIGITS_SPEC = dict(inputs=64, widths=(32,), outputs=10)
DIGITS_EPOCHS = 3
BN_PROBE = 256
NET_FRAMES = 30                 # records per network run: each costs a test-set evaluation
FRAME_S = 0.2                   # the networks page redraws at most this often while training

PLAYGROUND_KEYS = {"function", "kappa", "angle", "start_x", "start_y", "tuned", "lr", "momentum", "lr_adaptive",
                   "b0", "noise", "schedule", "steps", "seed", *SHOW}
SURFACE_KEYS = {"function", "kappa", "angle"}
SPECTRUM_KEYS = {"function", "kappa"}
COMPARE_KEYS = {"data", "width", "depth", "phi", "init", "sigma_w", "batch_norm", "batch", "net_lr",
                "net_lr_adaptive", "schedule", "train_steps", "seed", "momentum", "b0", *SHOW}
BN_KEYS = {"data", "width", "depth", "phi", "init", "sigma_w", "batch", "net_lr", "train_steps", "seed"}
QUADRATIC_CONTROLS = ("function", "kappa", "angle", "start_x", "start_y", "tuned", "lr", "lr_adaptive", "noise",
                      "steps")
NETWORK_CONTROLS = ("data", "width", "depth", "phi", "init", "sigma_w", "batch_norm", "batch", "net_lr",
                    "net_lr_adaptive", "train_steps")


def spectrum_of(p: OptimizersParams) -> tuple[float, float]:
    """[μ, L] of the quadratic the rates and the map are drawn for: the surface's own where it has one
    (Lessard's: [1/25, 1]), else the κ-quadratic [1/κ, 1]."""
    if p.function == "lessard":
        return PG.surface("lessard").spectrum
    return 1.0 / p.kappa, 1.0


def playground_settings(p: OptimizersParams, surf: PG.Surface) -> list[PG.Settings]:
    """The chosen optimisers' settings: η and β from the sliders, or Polyak's / Lessard's tuning for
    GD, heavy ball and Nesterov where the surface's spectrum is known and ``tuned`` is on."""
    out = []
    for name in p.chosen:
        lr, beta = p.lr, p.momentum
        if name in ("adagrad", "rmsprop", "adam"):
            lr = p.lr_adaptive
        elif name == "adagrad_norm":
            lr = 1.0
        elif p.tuned and surf.spectrum is not None and name in Q.LINEAR:
            t = Q.tuned(name, *surf.spectrum)
            lr, beta = t["lr"], t.get("momentum", 0.0)
        out.append(PG.Settings(name, lr, beta, p.b0, noisy=name != "gd"))
    return out


# -- jobs (run in worker threads: numpy and torch only) -------------------------------------------

@dataclass(frozen=True)
class SurfaceResult:
    params: OptimizersParams
    box: tuple[float, float, float, float]       # what the image and contours cover
    view: tuple[float, float, float, float]      # what the plot is set to show (its aspect then widens it)
    image: np.ndarray            # log10(f − f* + floor) on the grid, column-major
    contour_x: np.ndarray        # all contour lines, NaN-separated
    contour_y: np.ndarray
    minimum: tuple[float, float]


def cover_box(view: tuple[float, float, float, float], factor: float = COVER):
    """A square about ``view``'s centre, ``factor`` times its longer side: the playground locks its aspect,
    so it shows more than ``view`` along one axis, by how much depending on the plot's shape."""
    x0, x1, y0, y1 = view
    side = factor * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return cx - side / 2, cx + side / 2, cy - side / 2, cy + side / 2


def surface_job(p: OptimizersParams) -> SurfaceResult:
    surf = PG.surface(p.function, p.kappa, p.angle)
    box = cover_box(surf.view)
    xs, ys = np.linspace(box[0], box[1], GRID_N), np.linspace(box[2], box[3], GRID_N)
    f = surf.value(xs[:, None], ys[None, :])
    gap = np.maximum(f - surf.f_min, 0.0)
    x0, x1, y0, y1 = surf.view
    inside = gap[(xs >= x0) & (xs <= x1)][:, (ys >= y0) & (ys <= y1)]
    top = float(inside.max())
    floor = max(top * 1e-6, 1e-12)
    levels = surf.f_min + np.geomspace(top * 1e-4, top * 0.6, CONTOURS)
    if p.function == "saddle":
        levels = np.concatenate([levels, [0.0]])
    lines = contours.lines(f, levels)
    sx, sy = xs[1] - xs[0], ys[1] - ys[0]
    cx = xs[0] + sx * np.concatenate([u for u, _ in lines])
    cy = ys[0] + sy * np.concatenate([v for _, v in lines])
    image = np.log10(np.minimum(gap, top * 10) + floor)
    return SurfaceResult(p, box, surf.view, image, cx, cy, surf.minimum)


@dataclass(frozen=True)
class PathsResult:
    params: OptimizersParams
    paths: PG.Paths
    settings: tuple[PG.Settings, ...]


def paths_job(p: OptimizersParams) -> PathsResult:
    surf = PG.surface(p.function, p.kappa, p.angle)
    settings = playground_settings(p, surf)
    return PathsResult(p, PG.paths(surf, (p.start_x, p.start_y), settings, p.steps, noise=p.noise,
                                   schedule=p.schedule, seed=p.seed), tuple(settings))


@dataclass(frozen=True)
class MapResult:
    map: Q.MomentumMap
    iso_x: np.ndarray                            # iso-rate lines in (αL, β), NaN-separated
    iso_y: np.ndarray
    labels: tuple[tuple[float, float, float], ...]   # (αL, β, ρ) where each line is labelled


#: Heights (β) at which an iso-rate line's label may sit on the momentum map.
LABEL_HEIGHTS = (0.12, 0.28, 0.44, 0.6, 0.76, 0.9)


def map_job(p: OptimizersParams) -> MapResult:
    m = Q.momentum_map(*spectrum_of(p), size=MAP_SIZE)
    a = m.alpha * m.L
    da, db = a[1] - a[0], m.beta[1] - m.beta[0]
    xs, ys, labels = [], [], []
    levels = [lv for lv in MAP_LEVELS if lv > m.rate_opt + 0.2 * (1 - m.rate_opt)][:4]
    for j, (level, (u, v)) in enumerate(zip(levels, contours.lines(m.rate.T, levels), strict=True)):
        x, y = a[0] + u * da, m.beta[0] + v * db
        xs.append(x)
        ys.append(y)
        if np.isfinite(x).any():
            # places for the line's label on its left branch: first at a height of its own (spread apart
            # level by level), then the others nearest to it, for the panel to take the first with room
            want = 0.12 + 0.16 * j
            left = np.isfinite(x) & (x < m.alpha_opt * m.L)
            pick = np.flatnonzero(left) if left.any() else np.flatnonzero(np.isfinite(x))
            for height in sorted(LABEL_HEIGHTS, key=lambda h: abs(h - want)):
                i = pick[int(np.argmin(np.abs(y[pick] - height)))]
                labels.append((float(x[i]), float(y[i]), level))
    iso_x = np.concatenate(xs) if xs else np.zeros(0)
    iso_y = np.concatenate(ys) if ys else np.zeros(0)
    return MapResult(m, iso_x, iso_y, tuple(labels))


@dataclass(frozen=True)
class RatesResult:
    params: OptimizersParams
    kappa: float
    steps: dict[str, np.ndarray]        # sampled step numbers (dots)
    errors: dict[str, np.ndarray]       # ‖θ_k‖/‖θ_0‖ there
    rate: dict[str, float]              # closed form
    measured: dict[str, float]          # fitted


def _measure(name: str, mu: float, L: float, decades: float = 30.0, cap: int = 20_000):
    t = Q.tuned(name, mu, L)
    rho = Q.rate(name, L / mu)
    steps = Q.steps_for(rho, decades=decades, hi=cap)
    errors = Q.linear_errors(name, Q.spectrum(RATE_DIM, mu, L), steps, t["lr"], t.get("momentum", 0.0))
    return rho, errors, Q.fit_rate(errors, repeated=name != "gd")


def rates_job(p: OptimizersParams) -> RatesResult:
    mu, L = spectrum_of(p)
    steps, errors, rate, measured = {}, {}, {}, {}
    for name in RATE_METHODS:
        rho, e, fit = _measure(name, mu, L)
        shown = min(e.size - 1, Q.steps_for(Q.rate("heavy_ball", L / mu), decades=14, hi=20_000))
        k = np.unique(np.linspace(0, shown, 36).astype(int))
        steps[name], errors[name], rate[name], measured[name] = k.astype(float), e[k], rho, fit
    return RatesResult(p, L / mu, steps, errors, rate, measured)


@dataclass(frozen=True)
class KappaResult:
    kappa: np.ndarray
    measured: dict[str, np.ndarray]


_kappa_cache: list[KappaResult] = []


def kappa_job() -> KappaResult:
    """1 − ρ measured at a grid of κ (it depends on nothing the user sets: computed once per process)."""
    if _kappa_cache:
        return _kappa_cache[0]
    out = {name: np.array([1.0 - _measure(name, 1.0 / k, 1.0, decades=8.0)[2] for k in KAPPA_GRID])
           for name in RATE_METHODS}
    result = KappaResult(KAPPA_GRID, out)
    _kappa_cache.append(result)
    return result


def _net_spec(p: OptimizersParams, data, batch_norm: bool):
    from core.nets import NetSpec

    return NetSpec(data.inputs, (p.width,) * p.depth, max(data.classes, 1), phi=p.phi, init=p.init,
                   sigma_w=p.sigma_w, batch_norm=batch_norm)


def _net_runs(p: OptimizersParams):
    from core.optimizers.experiments import Run

    runs = []
    for name in p.chosen:
        hyper = {}
        lr = p.net_lr
        if name in ("heavy_ball", "nesterov"):
            hyper = {"momentum": max(p.momentum, 1e-3) if name == "nesterov" else p.momentum}
        elif name in ("adagrad", "rmsprop", "adam"):
            lr = p.net_lr_adaptive
        elif name == "adagrad_norm":
            lr, hyper = 1.0, {"b0": p.b0}
        batch = None if name == "gd" or p.batch == 0 else p.batch
        runs.append(Run(LABELS[name], name, lr, batch, hyper, p.schedule))
    return runs


def compare_job(p: OptimizersParams):
    from core.data import load
    from core.optimizers.experiments import train_together

    data = load(p.data, seed=p.seed)
    spec = _net_spec(p, data, p.batch_norm)
    every = max(1, p.train_steps // NET_FRAMES)
    yield from train_together(data, spec, _net_runs(p), p.train_steps, seed=p.seed, every=every)


def bn_job(p: OptimizersParams):
    from core.data import load
    from core.optimizers.experiments import batch_norm_experiment

    data = load(p.data, seed=p.seed)
    spec = _net_spec(p, data, False)
    every = max(1, p.train_steps // NET_FRAMES)
    yield from batch_norm_experiment(data, spec, p.train_steps, lr=p.net_lr,
                                     batch_size=None if p.batch == 0 else p.batch, seed=p.seed, every=every,
                                     probe=BN_PROBE)


def prepare_training() -> None:
    from core.training import prepare

    prepare()


def networks_job(p: OptimizersParams, sweeps: bool = False):
    """The optimiser comparison and the batch-norm comparison in ONE worker, interleaved, then (when
    ``sweeps``) Ward et al.'s b₀ sweeps, yielding ``{"compare": curves, "bn": state}`` at most every FRAME_S
    and then the sweeps' partials: on a 2-core machine every extra Python thread training a small net
    takes the interpreter lock from the GUI thread."""
    yield from _compare_and_bn(p)
    if sweeps:
        for kind, value in sweeps_job(0):
            yield {kind: value}


def _compare_and_bn(p: OptimizersParams):
    gens = {"bn": bn_job(p)}
    if p.chosen:
        gens = {"compare": compare_job(p), **gens}
    latest: dict = {}
    shown = 0.0
    try:
        while gens:
            for tag in list(gens):
                try:
                    latest[tag] = next(gens[tag])
                except StopIteration:
                    del gens[tag]
                time.sleep(0)           # hand the interpreter lock to the GUI thread between records
            now = time.perf_counter()
            if now - shown >= FRAME_S or not gens:
                shown = now
                yield dict(latest)
    finally:
        for gen in gens.values():
            gen.close()


def sweeps_job(seed: int = 0):
    """Ward et al.'s two b₀ sweeps, one after the other: ``("ls", (L, SweepPartial))`` then
    ``("digits", {method: final losses})`` partials (NaN for runs not done yet)."""
    from core.data import load
    from core.nets import NetSpec
    from core.optimizers.experiments import digits_sweep_iter, least_squares_problem, least_squares_sweep_iter

    ls = least_squares_problem(*LS_SIZE, seed=0)
    for part in least_squares_sweep_iter(ls, SWEEP_B0, steps=LS_STEPS, every=max(1, LS_STEPS // 10)):
        yield "ls", (ls.L, part)
    data = load("digits", seed=seed)
    finals = {m: np.full(DIGITS_B0.size, np.nan) for m in SWEEP_METHODS}
    for m, i, loss in digits_sweep_iter(data, NetSpec(**DIGITS_SPEC), DIGITS_B0, epochs=DIGITS_EPOCHS, seed=seed):
        finals[m][i] = loss
        yield "digits", {k: v.copy() for k, v in finals.items()}


# -- the panel ------------------------------------------------------------------------------------

#: What draws each part of a networks frame, one per turn of the event loop.
FRAME_DRAWS = {"compare": ("_draw_compare_loss", "_draw_compare_accuracy"), "bn": ("_draw_bn",),
               "ls": ("_draw_ls_sweep",), "digits": ("_draw_digits_sweep",)}
#: The plots each part of a networks frame redraws.
FRAME_PLOTS = {"compare": ("loss", "accuracy"), "bn": ("bn_loss", "bn_spread"), "ls": ("sweep_least_squares",),
               "digits": ("sweep_digits",)}


class OptimizersPanel(Panel):
    name = "optimizers"
    title = "Optimizers"
    Params = OptimizersParams
    references = (
        ("Polyak 1964, Some methods of speeding up the convergence of iteration methods",
         "doi:10.1016/0041-5553(64)90137-5"),
        ("Lessard, Recht & Packard 2016, Analysis and design of optimization algorithms via IQCs", "arXiv:1408.3595"),
        ("Goh 2017, Why momentum really works (Distill)", "doi:10.23915/distill.00006"),
        ("Ward, Wu & Bottou 2019, AdaGrad stepsizes: sharp convergence over nonconvex landscapes", "arXiv:1806.01811"),
        ("Duchi, Hazan & Singer 2011, Adaptive subgradient methods", "JMLR 12:2121"),
        ("Kingma & Ba 2015, Adam: a method for stochastic optimization", "arXiv:1412.6980"),
        ("Ioffe & Szegedy 2015, Batch normalization", "arXiv:1502.03167"),
        ("Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward networks", "AISTATS 2010"),
    )

    def build(self) -> None:
        self._syncing = False
        self._stale_nets = True
        self.pages = QStackedWidget()
        self.pages.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.grid.addWidget(self.pages, 0, 0)
        self._page_grids = []
        self._page_cells: list[list] = [[], []]
        self._page_columns = 3
        for _ in range(2):
            page = QWidget()
            grid = QGridLayout(page)
            grid.setContentsMargins(0, 0, 0, 0)
            grid.setSpacing(6)
            self.pages.addWidget(page)
            self._page_grids.append(grid)
        self._build_playground()
        self._build_path_loss()
        self._build_map()
        self._build_errors()
        self._build_kappa()
        self._build_compare()
        self._build_sweeps()
        self._build_bn()
        for grid in self._page_grids:           # equal columns: each keeps PlotGrid's readable minimum at 1280
            for col in range(3):
                grid.setColumnStretch(col, 1)
        self._room = getattr(self, "plot_grid", None)
        self._room = self._room.viewport() if self._room is not None else self.pages
        self._room.installEventFilter(self)
        self.train_button = self.add_button(
            "Train", self.train, "Train every chosen optimiser on the chosen data and net, and the deep net "
            "with and without batch norm (networks page)")
        self.tune_button = self.add_button("Tune η, β for this κ (heavy ball)", self.tune_heavy_ball,
                        "Polyak's α = 4/(√L + √μ)², β = ((√κ − 1)/(√κ + 1))² on the momentum map")

    def _place(self, page: int, key: str, widget, row: int, col: int, rowspan: int = 1, colspan: int = 1):
        widget.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._page_grids[page].addWidget(widget, row, col, rowspan, colspan)
        self._page_cells[page].append((widget, row, col, rowspan, colspan))
        self.plots[key] = widget
        widget.scene().sigMouseClicked.connect(lambda ev, w=widget: ev.double() and self.toggle_focus(w))
        return widget

    # -- focus: the pages are this panel's own grids, so it enlarges a plot within its page ---------------
    _focused = None

    def focused_plot(self) -> str | None:
        return next((k for k, w in self.plots.items() if w is self._focused), None)

    def focus_plot(self, key: str | None) -> None:
        """Enlarge plot ``key`` to the whole page (None: put every plot back)."""
        from app.plot_grid import min_cell

        widget = self.plots[key] if key is not None else None
        self._focused = widget
        for page, (grid, cells) in enumerate(zip(self._page_grids, self._page_cells, strict=True)):
            mine = widget is not None and any(w is widget for w, *_ in cells)
            for w, *_ in cells:
                w.setVisible(widget is None or not mine or w is widget)
            if mine:
                self.pages.setCurrentIndex(page)
                for w, *_ in cells:
                    grid.removeWidget(w)
                grid.addWidget(widget, 0, 0)
                for i in range(6):
                    grid.setRowStretch(i, int(i == 0))
                    grid.setColumnStretch(i, int(i == 0))
                grid.parentWidget().setMinimumHeight(min_cell()[1])
        if widget is None:
            self._page_columns = 0          # lay the pages out again, heights included
            self._reflow_pages()

    def toggle_focus(self, widget) -> None:
        key = next((k for k, w in self.plots.items() if w is widget), None)
        self.focus_plot(None if widget is self._focused else key)

    # -- reflow -----------------------------------------------------------------------------------
    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Resize and obj is getattr(self, "_room", None):
            self._reflow_pages()
        return super().eventFilter(obj, event)

    def _reflow_pages(self) -> None:
        """Three columns where three readable plots fit, else fewer (reading order kept, rows scroll):
        the pages are this panel's own layout, which the plot area cannot reflow itself."""
        from app.plot_grid import min_cell

        cell_w, cell_h = min_cell()
        spacing = self._page_grids[0].horizontalSpacing()
        columns = int(max(1, min(3, (self._room.width() + spacing) // (cell_w + spacing))))
        if columns == self._page_columns:
            return
        self._page_columns = columns
        for grid, cells in zip(self._page_grids, self._page_cells, strict=True):
            for widget, *_ in cells:
                grid.removeWidget(widget)
            for c in range(3):
                grid.setColumnStretch(c, 1 if c < columns else 0)
            placed = cells if columns == 3 else _pack_cells(cells, columns)
            rows = 0
            for widget, r, c, rs, cs in placed:
                grid.addWidget(widget, r, c, rs, cs)
                rows = max(rows, r + rs)
            for r in range(6):
                grid.setRowStretch(r, 1 if r < rows else 0)
            grid.parentWidget().setMinimumHeight(rows * cell_h + (rows - 1) * spacing)

    # -- page 1 ---------------------------------------------------------------------------------
    def _build_playground(self) -> None:
        plot = plots.make_plot("Playground", "x", "y", legend="bottom-right")
        self.surface_image = pg.ImageItem(axisOrder="col-major")
        self.surface_image.setZValue(-10)
        self.surface_image.setLookupTable(_pale_lut())
        plot.addItem(self.surface_image)
        self.contours = plots.reference_line(plot, None)
        self.contours.setPen(pg.mkPen("#9a9a9a", width=1))
        self.path_items = {n: plots.theory_line(plot, None, COLOURS[n], width_scale=0.7) for n in NAMES}
        self.path_ends = pg.ScatterPlotItem(size=11, pen=pg.mkPen("w"))      # where each path is now
        plot.addItem(self.path_ends)
        self._end_brushes = {n: pg.mkBrush(plots.color(COLOURS[n])) for n in NAMES}
        self.minimum_mark = pg.ScatterPlotItem(size=16, symbol="star", brush=pg.mkBrush("#000000"))
        plot.addItem(self.minimum_mark)
        self.start_marker = pg.TargetItem(pos=(self.params.start_x, self.params.start_y), size=16, movable=True,
                                          pen=pg.mkPen("#000000", width=3), label="start: drag me",
                                          labelOpts={"color": "#000000", "offset": (12, -14)})
        self.start_marker.sigPositionChanged.connect(self._start_moved)
        plot.addItem(self.start_marker)
        plots.note(None, item=self.start_marker.label())
        plots.lock_aspect(plot.getPlotItem())
        self._place(0, "playground", plot, 0, 0, 2, 1)

    def _build_path_loss(self) -> None:
        plot = plots.make_plot("Paths' loss", "step k", "f − f*", log_y=True, legend=None)
        self.path_loss = {n: plots.theory_line(plot, None, COLOURS[n], width_scale=0.8) for n in NAMES}
        self._place(0, "path_loss", plot, 0, 2)

    def _build_map(self) -> None:
        plot = plots.make_plot("Heavy ball's rate ρ(α, β)", "α·L", "β", legend=None)
        self.map_image = pg.ImageItem(axisOrder="col-major")
        self.map_image.setCacheMode(pg.QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
        plot.addItem(self.map_image)
        self.map_lut = pg.colormap.get("viridis").getLookupTable(nPts=256)
        # iso-rate lines with their ρ written on them stand in for a colour bar (no room at 1280×720)
        self.map_iso = plots.reference_line(plot, None)
        self.map_iso.setPen(pg.mkPen("#ffffff", width=1.2))
        self.map_iso_text = [plots.note(plot) for _ in MAP_LEVELS]
        self.map_edge = plots.reference_line(plot, None)
        self.map_opt = pg.ScatterPlotItem(size=20, symbol="star", brush=pg.mkBrush("#ffffff"),
                                          pen=pg.mkPen("#000000", width=1.5))
        plot.addItem(self.map_opt)
        self.map_opt_text = plots.note(plot, anchor=(1.08, 0.5))
        self.map_edge_text = plots.note(plot, "diverges")
        self.map_marker = pg.TargetItem(pos=(self.params.lr, self.params.momentum), size=16, movable=True,
                                        pen=pg.mkPen("#D55E00", width=3), label="(η, β): drag me",
                                        labelOpts={"color": "#D55E00", "offset": (10, 10)})
        self.map_marker.sigPositionChanged.connect(self._map_marker_moved)
        plot.addItem(self.map_marker)
        plots.note(None, item=self.map_marker.label())
        plot.getPlotItem().setRange(xRange=(0, 4), yRange=(0, 1), padding=0)
        self._place(0, "momentum_map", plot, 0, 1)

    def _build_errors(self) -> None:
        plot = plots.make_plot("Rates", "step k", "‖θ<sub>k</sub> − θ*‖ / ‖θ<sub>0</sub> − θ*‖",
                               log_y=True, legend="top-right")
        self.error_lines, self.error_dots = {}, {}
        for n in RATE_METHODS:
            self.error_lines[n] = plots.theory_line(plot, LABELS[n], COLOURS[n])
            self.error_dots[n], _ = plots.sim_dots(plot, None, COLOURS[n], errors=False)
        key_line, _ = plots.legend_key(plot, "", "dots: torch.optim")
        plot.getPlotItem().legend.removeItem(key_line)
        self._place(0, "rates", plot, 1, 1)

    def _build_kappa(self) -> None:
        plot = plots.make_plot("Rate against κ", "κ = L/μ", "1 − ρ per step", log_x=True, log_y=True,
                               legend="bottom-left")
        self.kappa_lines, self.kappa_dots = {}, {}
        for n in RATE_METHODS:
            self.kappa_lines[n] = plots.theory_line(plot, LABELS[n], COLOURS[n])
            self.kappa_dots[n], _ = plots.sim_dots(plot, None, COLOURS[n], errors=False)
        plots.legend_key(plot, "lines: closed form", "dots: measured")
        dash = pg.QtCore.Qt.PenStyle.DashLine
        self.kappa_now = pg.InfiniteLine(angle=90, pen=pg.mkPen("#888888", width=2, style=dash))
        plot.addItem(self.kappa_now)
        plot.getPlotItem().setRange(xRange=(0, 4.35), yRange=(-7.5, 0.3), padding=0)
        k = np.geomspace(1.5, 2e4, 200)
        for n in RATE_METHODS:
            self.kappa_lines[n].setData(k, 1.0 - Q.rate(n, k))
        self._place(0, "rate_kappa", plot, 1, 2)

    # -- page 2 ---------------------------------------------------------------------------------
    def _build_compare(self) -> None:
        loss = plots.make_plot("Training loss", "step", "training loss", log_y=True, legend=None)
        acc = plots.make_plot("Test accuracy", "step", "test accuracy", legend="bottom-right")
        self.loss_items = {n: plots.theory_line(loss, None, COLOURS[n], width_scale=0.8) for n in NAMES}
        self.acc_items = {n: plots.theory_line(acc, None, COLOURS[n], width_scale=0.8) for n in NAMES}
        acc.getPlotItem().setYRange(0, 1, padding=0.02)
        self._place(1, "loss", loss, 0, 0)
        self._place(1, "accuracy", acc, 0, 1)

    def _build_sweeps(self) -> None:
        ls = plots.make_plot("Least squares: no tuning", "b₀", "final loss F", log_x=True, log_y=True,
                             legend="bottom-right")
        net = plots.make_plot("Digits net 64–32–10", "b₀   (× diverged)", "final training loss", log_x=True, log_y=True,
                              legend=None)
        self.sweep_items = {}
        for key, plot in (("ls", ls), ("digits", net)):
            for i, m in enumerate(SWEEP_METHODS):
                colour = SWEEP_COLOURS[i]
                dots, _ = plots.sim_dots(plot, None, colour, errors=False)
                line = plots.theory_line(plot, SWEEP_LABELS[m] if key == "ls" else None, colour, width_scale=0.5)
                # a PlotDataItem, not a ScatterPlotItem: only it follows the log axes
                crosses = plot.plot([], [], pen=None, symbol="x", symbolSize=14, symbolPen=None,
                                    symbolBrush=pg.mkBrush(plots.color(colour)))
                self.sweep_items[(key, m)] = (dots, line, crosses)
        self._place(1, "sweep_least_squares", ls, 0, 2)
        self._place(1, "sweep_digits", net, 1, 2)

    def _build_bn(self) -> None:
        loss = plots.make_plot("Deep net: batch norm", "step", "training loss", log_y=True, legend="top-right")
        spread = plots.make_plot("Pre-activation spread by layer", "hidden layer l", "std of φ's input",
                                 log_y=True, legend="bottom-left")
        self.bn_loss = [plots.theory_line(loss, "no BN", 6), plots.theory_line(loss, "BN", 3)]
        self.bn_spread = [plots.theory_line(spread, "no BN, now", 6), plots.theory_line(spread, "BN, now", 3)]
        self.bn_spread0 = [plots.theory_line(spread, "at init", 6, dash=True, width_scale=0.7),
                           plots.theory_line(spread, None, 3, dash=True, width_scale=0.7)]
        self._place(1, "bn_loss", loss, 1, 0)
        self._place(1, "bn_spread", spread, 1, 1)

    # -- parameters -----------------------------------------------------------------------------
    def update_visibility(self) -> None:
        p = self.params
        quad = p.view == "quadratics"
        self.pages.setCurrentIndex(0 if quad else 1)
        for i in range(self.pages.count()):       # the hidden page must not set the stack's minimum size
            policy = QSizePolicy.Policy.Expanding if i == self.pages.currentIndex() else QSizePolicy.Policy.Ignored
            self.pages.widget(i).setSizePolicy(policy, policy)
        self.pages.updateGeometry()
        for name in QUADRATIC_CONTROLS:
            self.controls.set_visible(name, quad)
        for name in NETWORK_CONTROLS:
            self.controls.set_visible(name, not quad)
        if quad:
            self.controls.set_visible("angle", p.function == "quadratic")
            self.controls.set_visible("kappa", p.function != "lessard")
        if hasattr(self, "train_button"):
            self.train_button.setVisible(not quad)
            self.tune_button.setVisible(quad)

    def set_params(self, **changes) -> None:
        """As :meth:`Panel.set_params`; a new function (without a start of its own) starts from its default."""
        fn = changes.get("function")
        if fn in PG.SURFACES and fn != self.params.function and not {"start_x", "start_y"} & set(changes):
            changes["start_x"], changes["start_y"] = PG.surface(fn).start
        super().set_params(**changes)

    def tune_heavy_ball(self) -> None:
        t = Q.tuned("heavy_ball", *spectrum_of(self.params))
        self.set_params(lr=float(f"{t['lr']:.6g}"), momentum=round(t["momentum"], 3), tuned=False)

    def _start_moved(self) -> None:
        if self._syncing:
            return
        pos = self.start_marker.pos()
        x = float(np.clip(pos.x(), -5, 5))
        y = float(np.clip(pos.y(), -5, 5))
        if (round(x, 2), round(y, 2)) != (round(self.params.start_x, 2), round(self.params.start_y, 2)):
            self.set_params(start_x=round(x, 2), start_y=round(y, 2))

    def _map_marker_moved(self) -> None:
        if self._syncing:
            return
        pos = self.map_marker.pos()
        lr = float(np.clip(pos.x() / spectrum_of(self.params)[1], 1e-4, 10.0))
        beta = float(np.clip(pos.y(), 0.0, 0.999))
        if (float(f"{lr:.3g}"), round(beta, 3)) != (float(f"{self.params.lr:.3g}"), round(self.params.momentum, 3)):
            self.set_params(lr=float(f"{lr:.4g}"), momentum=round(beta, 3), tuned=False)

    def _sync_markers(self) -> None:
        p = self.params
        self._syncing = True
        try:
            self.start_marker.setPos(p.start_x, p.start_y)
            self.map_marker.setPos(p.lr * spectrum_of(p)[1], p.momentum)
        finally:
            self._syncing = False

    def schedule(self, changed: set[str]) -> None:
        p = self.params
        self._sync_markers()
        submitted = False
        if changed & SURFACE_KEYS:
            self.submit("surface", surface_job, p, on_result=self._draw_surface, label="contours")
            submitted = True
        if changed & PLAYGROUND_KEYS:
            self.submit("paths", paths_job, p, on_result=self._draw_paths, label="optimiser paths")
            submitted = True
        if changed & SPECTRUM_KEYS:
            self.submit("map", map_job, p, on_result=self._draw_map, label="momentum map")
            self.submit("rates", rates_job, p, on_result=self._draw_rates, delay_ms=40, label="rates on a quadratic")
            if not _kappa_cache:
                self.submit("kappa", kappa_job, on_result=self._draw_kappa, delay_ms=80, label="rates against κ")
            else:
                self._draw_kappa(_kappa_cache[0])
            self.kappa_now.setPos(math.log10(spectrum_of(p)[1] / spectrum_of(p)[0]))
            submitted = True
        if changed & (COMPARE_KEYS | BN_KEYS):
            self._training_stale()
        if not self._prepared:
            # torch.optim's first step imports torch._dynamo (~1 s, holding the interpreter lock for
            # stretches): pay it while the quadratics page is looked at, not during the first Train.
            self._prepared = True
            self.submit("prepare", prepare_training, delay_ms=400, label="preparing training")
        if p.view == "networks":
            if not self._auto_trained:      # the first look at the page trains what it shows (and `render`)
                self._auto_trained = True
                self.train()
        if not submitted:
            self.mark_rendered()

    _auto_trained = False
    _prepared = False

    # -- training -------------------------------------------------------------------------------
    def train(self) -> None:
        """(Re)start the optimiser comparison and the batch-norm comparison for the current parameters."""
        p = self.params
        self._stale_nets = False
        self._runs_started += 1
        for item in (*self.loss_items.values(), *self.acc_items.values(), *self.bn_loss, *self.bn_spread,
                     *self.bn_spread0):
            item.setData([], [])
        if not p.chosen:
            self._set_notice("compare", "Tick at least one optimiser to train.")
        else:
            plots.set_title(self.plots["loss"], f"Loss on {p.data}…")
        plots.set_title(self.plots["bn_loss"], "Batch norm…")
        self.submit("networks", networks_job, p, not self._sweeps_done, on_partial=self._draw_networks,
                    label=f"{len(p.chosen)} optimisers and batch norm on {p.data}")

    def _draw_networks(self, frame: dict) -> None:
        """Draw a networks frame one part per turn of the event loop (a part's first drawing, with its
        legend, is 20–40 ms while the training worker competes for the interpreter lock)."""
        plots.paint_in_turns([self.plots[key] for part in frame for key in FRAME_PLOTS.get(part, ())])
        steps = [(part, draw) for part in FRAME_PLOTS if part in frame for draw in FRAME_DRAWS[part]]
        self._draw_parts(frame, steps, self._runs_started)

    def _draw_parts(self, frame: dict, steps: list[tuple[str, str]], run: int) -> None:
        if run != self._runs_started:       # a part left over from a run since restarted or cancelled
            return
        (part, draw), rest = steps[0], steps[1:]
        getattr(self, draw)(frame[part])
        if rest:
            QTimer.singleShot(0, self, lambda: self._draw_parts(frame, rest, run))

    #: Counts the networks runs started and stopped, so that a frame's parts still to draw know theirs.
    _runs_started = 0

    def _training_stale(self) -> None:
        if self.runner.is_busy(self.job_key("networks")):
            self.runner.cancel(self.job_key("networks"))
        self._runs_started += 1
        self._stale_nets = True
        plots.set_title(self.plots["loss"], "Press Train")
        plots.set_title(self.plots["bn_loss"], "Press Train")

    def cancel(self) -> None:
        super().cancel()
        self._runs_started += 1
        plots.set_title(self.plots["loss"], "Cancelled")
        plots.set_title(self.plots["bn_loss"], "Cancelled")

    #: Ward et al.'s sweeps depend on nothing the user sets: they follow the first training run (and any
    #: later one, until they have finished once).
    _sweeps_done = False

    # -- drawing --------------------------------------------------------------------------------
    def _draw_surface(self, r: SurfaceResult) -> None:
        b0, b1, c0, c1 = r.box
        self.surface_image.setImage(r.image, autoLevels=True)
        self.surface_image.setRect(b0, c0, b1 - b0, c1 - c0)
        x0, x1, y0, y1 = r.view
        self.contours.setData(r.contour_x, r.contour_y, connect="finite")
        self.minimum_mark.setData([r.minimum[0]], [r.minimum[1]])
        self.plots["playground"].getPlotItem().setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        plots.set_title(self.plots["playground"], _surface_title(r.params))
        self.mark_rendered()

    def _draw_paths(self, r: PathsResult) -> None:
        P = r.paths
        notes = []
        drawn = set()
        ends = []
        for k, s in enumerate(r.settings):
            n = s.name
            drawn.add(n)
            length = int(P.length[k])
            xy = P.xy[k, :length]
            self.path_items[n].setData(xy[:, 0], xy[:, 1])
            ends.append((xy[-1, 0], xy[-1, 1], self._end_brushes[n]))
            loss = np.maximum(P.loss[k, :length], 1e-300)
            keep = loss > 1e-32
            steps = np.arange(length)
            self.path_loss[n].setData(steps[keep], loss[keep])
            if P.diverged[k] >= 0:
                notes.append(f"{LABELS[n]} diverged at step {int(P.diverged[k])}")
            _legend_entry(self.plots["playground"], self.path_items[n], _settings_label(s, r.params))
        for n in NAMES:
            if n not in drawn:
                _legend_entry(self.plots["playground"], self.path_items[n], None)
                self.path_items[n].setData([], [])
                self.path_loss[n].setData([], [])
        self.path_ends.setData([e[0] for e in ends], [e[1] for e in ends], brush=[e[2] for e in ends])
        self._set_notice("paths", "; ".join(notes) + ("." if notes else ""))
        self.plots["path_loss"].getPlotItem().setXRange(0, r.params.steps, padding=0.02)
        _fit_log_range(self.plots["path_loss"], [np.maximum(P.loss, 1e-32)])
        plots.set_title(self.plots["playground"], _surface_title(r.params))
        self.mark_rendered()

    def _draw_map(self, r: MapResult) -> None:
        m = r.map
        img = np.where(m.rate < 1, np.log10(np.maximum(1 - m.rate, 1e-6)), np.nan)
        lo = float(np.nanmin(img)) if np.isfinite(img).any() else -3.0
        self.map_image.setImage(img.T, autoLevels=False, levels=(lo, float(np.nanmax(img))), lut=self.map_lut)
        self.map_image.eoc_name = "log10(1 - rho)"
        self.map_iso.setData(r.iso_x, r.iso_y, connect="finite")
        L = m.L
        self.plots["momentum_map"].getPlotItem().setRange(xRange=(0, 4), yRange=(0, 1), padding=0)
        self.map_opt_text.setText(f"Polyak: ρ = {m.rate_opt:.3f}")
        self.map_opt_text.setPos(m.alpha_opt * L, m.beta_opt)
        self.map_edge_text.setPos(3.4, 0.2)
        self._label_levels(r.labels)
        a0, a1 = m.alpha[0] * L, m.alpha[-1] * L
        da = (a1 - a0) / (m.alpha.size - 1)
        self.map_image.setRect(a0 - da / 2, 0.0, a1 - a0 + da, 1.0)
        beta = np.linspace(0, 1, 50)
        self.map_edge.setData(2 + 2 * beta, beta)
        self.map_opt.setData([m.alpha_opt * L], [m.beta_opt])
        plots.set_title(self.plots["momentum_map"], f"Heavy ball, κ = {L / m.mu:.4g}")
        self.mark_rendered()

    def _label_levels(self, labels) -> None:
        """Write ρ on its iso-rate line where the label lies inside the map and covers no other text on it, as
        drawn now (the text grows with presentation mode while the map does not): a level that finds no room
        stays unlabelled."""
        view = self.plots["momentum_map"].getPlotItem().vb
        laid_out = view.width() > 20
        inside = view.sceneBoundingRect()
        taken = [t.sceneBoundingRect() for t in (self.map_opt_text, self.map_edge_text, self.map_marker.label())]
        kept: list = []
        done: set = set()
        for x, y, level in labels:       # each level's places, its own height first
            if len(kept) == len(self.map_iso_text):
                break
            if level in done or not laid_out and any(abs(x - k[0]) / 4 + abs(y - k[1]) <= 0.14 for k in kept):
                continue      # (not yet laid out: a tenth of the map from every other label)
            t = self.map_iso_text[len(kept)]
            t.setText(f"ρ = {level:g}")
            t.setPos(x, y)
            box = t.sceneBoundingRect()
            if laid_out and (not inside.contains(box) or any(box.intersects(other) for other in taken)):
                continue      # over another text or over the axes
            taken.append(box)
            kept.append((x, y))
            done.add(level)
        for t in self.map_iso_text[len(kept):]:
            t.setText("")

    def _draw_rates(self, r: RatesResult) -> None:
        for n in RATE_METHODS:
            k, e = r.steps[n], r.errors[n]
            ok = e > 0
            self.error_dots[n].setData(k[ok], e[ok])
            anchor = k[ok][-1], e[ok][-1]
            kk = np.array([0.0, k[-1]])
            self.error_lines[n].setData(kk, anchor[1] * r.rate[n] ** (kk - anchor[0]))
        plot = self.plots["rates"]
        for n in RATE_METHODS:
            plots.rename(plot, self.error_lines[n], f"{LABELS[n]} ρ={r.rate[n]:.3f}")
        plots.set_title(plot, f"Rates, κ = {r.kappa:.4g}")
        plot.getPlotItem().setXRange(0, max(r.steps[n][-1] for n in RATE_METHODS), padding=0.02)
        lows = [np.log10(r.errors[n][r.errors[n] > 0].min()) for n in RATE_METHODS]
        lo = max(min(lows), -16) - 0.5
        plot.getPlotItem().setYRange(lo, 0.6 - 0.55 * lo, padding=0)   # head-room for the legend
        self.mark_rendered()

    def _draw_kappa(self, r: KappaResult) -> None:
        for n in RATE_METHODS:
            self.kappa_dots[n].setData(r.kappa, r.measured[n])
        self.mark_rendered()

    def _draw_compare_loss(self, curves) -> None:
        p = self.params
        notes = []
        top = 0
        for c, name in zip(curves, p.chosen, strict=False):
            ok = np.isfinite(c.train_loss) & (c.train_loss > 0)
            self.loss_items[name].setData(c.step[ok], c.train_loss[ok])
            if c.note:
                notes.append(f"{c.label}: {c.note}")
            top = max(top, c.step[-1] if c.step.size else 0)
        for n in NAMES:
            if n not in p.chosen:
                self.loss_items[n].setData([], [])
        _fit_log_range(self.plots["loss"], [c.train_loss for c in curves])
        self._set_notice("compare", "; ".join(notes))
        done = all(c.done for c in curves)
        plots.set_title(self.plots["loss"], f"Loss on {p.data}" + ("" if done else "…"))
        self.plots["loss"].getPlotItem().setXRange(0, p.train_steps, padding=0.02)
        self.set_progress(min(top / max(p.train_steps, 1), 1.0))
        self.mark_rendered()

    def _draw_compare_accuracy(self, curves) -> None:
        p = self.params
        for c, name in zip(curves, p.chosen, strict=False):
            okc = np.isfinite(c.test_accuracy)
            self.acc_items[name].setData(c.step[okc], c.test_accuracy[okc])
            label = LABELS[name] + (" (diverged)" if c.note else "")
            _legend_entry(self.plots["accuracy"], self.acc_items[name], label)
        for n in NAMES:
            if n not in p.chosen:
                self.acc_items[n].setData([], [])
                _legend_entry(self.plots["accuracy"], self.acc_items[n], None)
        self.plots["accuracy"].getPlotItem().setXRange(0, p.train_steps, padding=0.02)
        self.mark_rendered()

    def _draw_ls_sweep(self, item) -> None:
        L, part = item
        for i, m in enumerate(SWEEP_METHODS):     # crosses a little apart, so that none hides another
            dots, line, crosses = self.sweep_items[("ls", m)]
            _draw_sweep(dots, line, crosses, part.b0, part.loss[m], top=1e3 * 10.0 ** (1.5 * i))
        plot = self.plots["sweep_least_squares"]
        state = "" if part.step == part.steps else f" (step {part.step})"
        plots.set_title(plot, f"Least squares{state}")
        plots.set_label(plot, "bottom", f"b₀   (L = {L:.2f})")
        plot.getPlotItem().setRange(xRange=(-4.3, 2.3), yRange=(-18, 16), padding=0)   # legend above 1e7
        self.mark_rendered()

    def _draw_digits_sweep(self, finals) -> None:
        for i, m in enumerate(SWEEP_METHODS):
            dots, line, crosses = self.sweep_items[("digits", m)]
            _draw_sweep(dots, line, crosses, DIGITS_B0, finals[m], top=_sweep_top(finals) * 10.0 ** (0.5 * i))
        plots.set_title(self.plots["sweep_digits"], f"Digits net, {DIGITS_EPOCHS} epochs")
        _fit_log_range(self.plots["sweep_digits"], [[_sweep_top(finals)], *finals.values()], x=(-4.3, 2.3))
        if not any(np.isnan(v).any() for v in finals.values()):
            self._sweeps_done = True
        self.mark_rendered()

    def _draw_bn(self, s) -> None:
        notes = []
        for i in range(2):
            c = s.curves[i]
            ok = np.isfinite(c.train_loss) & (c.train_loss > 0)
            self.bn_loss[i].setData(c.step[ok], c.train_loss[ok])
            layers = np.arange(1, s.spread[i].size + 1)
            self.bn_spread[i].setData(layers, np.maximum(s.spread[i], 1e-12))
            self.bn_spread0[i].setData(layers, np.maximum(s.spread0[i], 1e-12))
            if c.note:
                notes.append(f"{c.label}: {c.note}")
        self._set_notice("bn", "; ".join(notes))
        done = all(c.done for c in s.curves)
        p = self.params
        plots.set_title(self.plots["bn_loss"], f"Depth {p.depth}, {p.phi}" + ("" if done else "…"))
        plots.set_title(self.plots["bn_spread"], "Spread by layer" + ("" if done else "…"))
        self.plots["bn_loss"].getPlotItem().setXRange(0, p.train_steps, padding=0.02)
        _fit_log_range(self.plots["bn_loss"], [c.train_loss for c in s.curves])
        _fit_log_range(self.plots["bn_spread"], [*s.spread, *s.spread0], x=(0.8, len(s.spread[0]) + 0.2))
        self.mark_rendered()

    def _set_notice(self, topic: str, text: str) -> None:
        notes = getattr(self, "_notices", {})
        notes[topic] = text
        self._notices = notes
        self.show_notice(" ".join(t for t in notes.values() if t))


def _pack_cells(cells, columns: int):
    """``(widget, row, col, rowspan, colspan)`` cells packed as the plot area packs its own
    (:func:`app.plot_grid.pack`); in one column a tall plot is one row like the others."""
    from app.plot_grid import Placed, pack

    placed = [Placed(w, r, c, rs if columns > 1 else 1, cs) for w, r, c, rs, cs in cells]
    return [(p.widget, r, c, rs, cs) for p, r, c, rs, cs in pack(placed, columns)]


def _legend_entry(widget, item, name: str | None) -> None:
    """Show ``item`` in the legend as ``name``, or take it out (None): only chosen optimisers are listed."""
    legend = widget.getPlotItem().legend
    present = legend.getLabel(item) is not None
    if name is None:
        if present:
            legend.removeItem(item)
            plots.schedule_fit(widget, full=True)
    elif present:
        plots.rename(widget, item, name)
    else:
        item.opts["name"] = name
        legend.addItem(item, name)
        plots.rename(widget, item, name)
        plots.schedule_fit(widget, full=True)


def _fit_log_range(widget, arrays, x=None, min_decades: float = 3.0) -> None:
    """A log-y range over the finite positive values, at least ``min_decades`` tall (short ranges make
    pyqtgraph label every minor tick)."""
    values = np.concatenate([np.asarray(a, float).ravel() for a in arrays]) if arrays else np.zeros(0)
    values = values[np.isfinite(values) & (values > 0)]
    item = widget.getPlotItem()
    if x is not None:
        item.setXRange(*x, padding=0)
    if not values.size:
        return
    lo, hi = math.log10(values.min()), math.log10(values.max())
    (_x0, _x1), (y0, y1) = item.viewRange()
    span = max(hi - lo, min_decades)
    auto = bool(item.vb.state["autoRange"][1])
    if auto or lo < y0 or hi > y1 or (y1 - y0) > 2.5 * span:     # a new range re-lays the axes: only when needed
        pad = max(0.0, min_decades - (hi - lo)) / 2
        item.setYRange(lo - pad - 0.1, hi + pad + 0.3, padding=0)


def _sweep_top(finals: dict) -> float:
    """Where the crosses of diverged runs go: a decade above the largest finite final loss."""
    values = np.concatenate([np.asarray(v, float) for v in finals.values()])
    values = values[np.isfinite(values) & (values > 0)]
    return float(values.max()) * 10 if values.size else 10.0


def _draw_sweep(dots, line, crosses, b0, loss, top: float) -> None:
    """Finite final losses as dots joined by a thin line; diverged runs as crosses at the top."""
    loss = np.asarray(loss, dtype=float)
    done = ~np.isnan(loss)
    ok = done & np.isfinite(loss)
    shown = np.maximum(loss[ok], 1e-30)
    dots.setData(b0[ok], shown)
    line.setData(b0[ok], shown)
    bad = done & ~np.isfinite(loss)
    crosses.setData(b0[bad], np.full(int(bad.sum()), top))
    crosses.eoc_name = "diverged"


def _surface_title(p: OptimizersParams) -> str:
    if p.function == "quadratic":
        return f"κ = {p.kappa:.4g}, angle {p.angle:.0f}°" + ("" if p.tuned else f", η = {p.lr:.3g}")
    return {"banana": "Goh's banana", "beale": "Beale's function", "saddle": "Saddle ½x² − ½y² + ¼y⁴",
            "lessard": "Lessard et al. 2016"}[p.function]


def _settings_label(s: PG.Settings, p: OptimizersParams) -> str:
    """The legend name of a path: its settings only where they are not the sliders' (tuned, AdaGrad-Norm's
    η = 1), so that a slider move does not re-lay the legend out."""
    name = LABELS[s.name]
    if s.name == "adagrad_norm":
        return f"{name} (η = 1)"
    tuned = s.name in Q.LINEAR and (s.lr != p.lr or s.momentum != p.momentum and s.name != "gd")
    if not tuned:
        return name
    if s.name in ("heavy_ball", "nesterov"):
        return f"{name}, tuned α={s.lr:.3g} β={s.momentum:.3g}"
    return f"{name}, tuned η={s.lr:.3g}"


def _pale_lut() -> np.ndarray:
    """A light colour map for the surface under the contours: paths stay the boldest thing drawn."""
    t = np.linspace(0, 1, 256)[:, None]
    low = np.array([[214, 230, 245]])
    high = np.array([[255, 250, 235]])
    return (low + (high - low) * t).astype(np.uint8)
