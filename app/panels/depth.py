"""Depth & Sawtooth: why depth (lecture 1) — Telgarsky's sawtooth, Yarotsky's x², linear regions, learnability.

Plots: the sawtooth f_L with its pieces coloured alternately; pieces against depth for the deep
construction, the best shallow net of the same size and random nets at init; Yarotsky's f_m against
x² and its error with the bound 2^(−2m−2); the 2-D activation regions of a random ReLU net; and, from
the Train button, a shallow and a deep net of equal size fitted to f_L, with their losses live.
"""

from __future__ import annotations

import colorsys
import math
import sys
import time
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg

from app import plots
from app.panels.base import Panel
from core import depth as D
from core.depth import DepthParams
from core.params import ParamError

SHOWN_LOG_PIECES = 6
"""Plot 1 draws at most 2^6 pieces: more are a solid block of colour at lecture-hall size. A deeper
sawtooth is shown on [0, 2^(6−L)], which holds the first 64 of its 2^L pieces, in the exact unit
u = 2^(L−6)·x (an x of 1e−13 is beyond what the plot's float transforms draw faithfully)."""

PIECES_MIN_DEPTH = 12          # plot 2 always spans depths 1…12, and up to L beyond
RANDOM_SAMPLES = 8             # random nets per depth in plot 2
COUNT_MAX_DEPTH = 16           # the torch sawtooth net's pieces are counted up to 2^16 of them
NET_DOTS = 33                  # torch-net samples drawn on plot 1
REGION_EXTENT = 1.0            # the region map covers [−1, 1]²
REGION_PREVIEW, REGION_FINAL = 128, 400
REGION_PREVIEW_BUDGET_S = 0.15  # draw a coarse map first when the final one would take longer
NET_DELAY_MS = 150             # torch constructions wait for the theory: dots follow lines
FIRST_NET_DELAY_MS = 1000      # …and, while torch is not yet imported, for the numpy plots too
WARM_IDLE_MS = 4000            # load the optimiser once the sliders have rested this long
FRAMES_PER_RUN = 60            # training frames per run, whatever the steps: each costs a repaint
MARKER_GREY = "#888888"        # the current-depth marker: visible on both plot themes

THEORY_KEYS = {"depth", "m"}
NET_KEYS = {"depth", "m"}
RANDOM_KEYS = {"width", "sigma_w", "sigma_b", "seed"}
REGION_KEYS = {"width", "region_depth", "sigma_w", "sigma_b", "seed"}
TRAIN_KEYS = {"depth", "train_steps", "lr", "seed", "init", "sigma_w", "sigma_b"}


def pieces_depths(depth: int) -> np.ndarray:
    """Depths on plot 2's axis: 1…12, or 1…L when L is deeper."""
    return np.arange(1, max(PIECES_MIN_DEPTH, depth) + 1)


def shown_window(depth: int) -> float:
    """Right end of the window plot 1 draws: 1, or 2^(6−L) once f_L has more than 2^6 pieces."""
    return 1.0 if depth <= SHOWN_LOG_PIECES else 2.0 ** (SHOWN_LOG_PIECES - depth)


def yarotsky_grid(m: int) -> np.ndarray:
    """A dyadic grid holding every node k/2^m and midpoint (k + ½)/2^m, so the plotted error peaks
    exactly at the bound."""
    return np.linspace(0.0, 1.0, 2 ** max(10, m + 2) + 1)


# -- jobs (run in worker threads: numpy and torch only) -------------------------------------------

@dataclass(frozen=True)
class TheoryResult:
    params: DepthParams
    saw_x: np.ndarray          # vertices of f_L on [0, window]: kinks k/2^L and the ends
    saw_y: np.ndarray
    window: float
    pieces: D.PiecesTheory
    nodes: np.ndarray          # k/2^m, where f_m interpolates x²
    f_nodes: np.ndarray
    grid: np.ndarray           # dyadic grid of [0, 1] for x² and the error
    square: np.ndarray
    error: np.ndarray          # f_m − x² on the grid
    bound: float               # 2^(−2m−2)
    target: tuple[np.ndarray, np.ndarray] | None   # f_L's polyline when it can be trained on


def theory_job(p: DepthParams) -> TheoryResult:
    window = shown_window(p.depth)
    saw_x, saw_y = D.sawtooth_vertices(p.depth, 0.0, window)
    nodes = np.linspace(0.0, 1.0, 2**p.m + 1)
    grid = yarotsky_grid(p.m)
    square = grid * grid
    target = D.sawtooth_vertices(p.depth) if p.depth <= D.FIT_MAX_DEPTH else None
    return TheoryResult(p, saw_x, saw_y, window, D.pieces_theory(pieces_depths(p.depth)), nodes,
                        D.yarotsky_square(nodes, p.m), grid, square, D.yarotsky_square(grid, p.m) - square,
                        D.yarotsky_error_bound(p.m), target)


@dataclass(frozen=True)
class NetResult:
    params: DepthParams
    saw_x: np.ndarray          # where the torch sawtooth net was evaluated
    saw_y: np.ndarray
    count: int | None          # its exact pieces on [0, 1] (None: too many to enumerate)
    yar_x: np.ndarray          # nodes and midpoints of Yarotsky's grid
    yar_error: np.ndarray      # the torch Yarotsky net's output minus x² there


def net_job(p: DepthParams) -> NetResult:
    """Evaluate the real torch constructions (float64): Telgarsky's net on plot 1, Yarotsky's on plot 3."""
    import torch

    window = shown_window(p.depth)
    # one random point per stratum: a regular comb of dots would alias with the teeth into a false wave
    strata = np.arange(NET_DOTS) + np.random.default_rng(5).uniform(0.0, 1.0, NET_DOTS)
    saw_x = window * strata / NET_DOTS
    net = D.sawtooth_network(p.depth)
    with torch.no_grad():
        saw_y = net(torch.as_tensor(saw_x[:, None])).numpy()[:, 0]
    count = D.count_linear_pieces(net) if p.depth <= COUNT_MAX_DEPTH else None
    cells = 2**p.m
    mids = (2 * np.unique(np.round(np.linspace(0, cells - 1, 17))) + 1) / (2 * cells)
    nodes = np.unique(np.round(np.linspace(0, cells, 17))) / cells
    yar_x = np.sort(np.concatenate([nodes, mids]))
    with torch.no_grad():
        f_m = D.yarotsky_network(p.m)(torch.as_tensor(yar_x[:, None])).numpy()[:, 0]
    return NetResult(p, saw_x, saw_y, count, yar_x, f_m - yar_x * yar_x)


def random_pieces_job(p: DepthParams) -> D.RandomPieces:
    return D.random_init_pieces(pieces_depths(p.depth), p.width, seed=p.seed, sigma_w=p.sigma_w,
                                sigma_b=p.sigma_b, samples=RANDOM_SAMPLES)


@dataclass(frozen=True)
class RegionResult:
    params: DepthParams
    ids: np.ndarray            # (x, y) region id per pixel, for a column-major ImageItem
    count: int
    lut: np.ndarray            # (count, 3) uint8 colour of each id
    final: bool


def region_colours(count: int, seed: int) -> np.ndarray:
    """Random, well-separated colours for ``count`` regions: a golden-ratio hue table, shuffled."""
    rng = np.random.default_rng((seed, 11))
    hues = (np.arange(count) * 0.6180339887498949 + rng.random()) % 1.0
    sat = 0.35 + 0.4 * rng.random(count)
    val = 0.75 + 0.22 * rng.random(count)
    rgb = np.array([colorsys.hsv_to_rgb(h, s, v) for h, s, v in zip(hues, sat, val, strict=True)])
    return (255 * rgb[rng.permutation(count)]).astype(np.uint8).reshape(count, 3)


def region_job(p: DepthParams):
    """The region map, with a coarse preview first when the full one would keep the lecturer waiting."""
    weights = D.random_relu_net(2, p.width, p.region_depth, p.sigma_w, p.sigma_b, seed=p.seed)

    def result(resolution: int, final: bool) -> RegionResult:
        ids, count = D.region_map(weights, REGION_EXTENT, resolution)
        return RegionResult(p, np.ascontiguousarray(ids.T), count, region_colours(count, p.seed), final)

    started = time.perf_counter()
    preview = result(REGION_PREVIEW, final=False)
    if (time.perf_counter() - started) * (REGION_FINAL / REGION_PREVIEW) ** 2 > REGION_PREVIEW_BUDGET_S:
        yield preview
    yield result(REGION_FINAL, final=True)


_optimiser_loaded = False   # process-wide, as the imports it stands for


def warm_job() -> None:
    """Build one Adam optimiser: its first construction imports torch._dynamo and sympy (seconds, much
    of it holding the GIL), which would otherwise stall the first Train and the GUI with it."""
    global _optimiser_loaded
    import torch

    weight = torch.zeros(1, requires_grad=True)
    torch.optim.Adam([weight], lr=1e-3)
    _optimiser_loaded = True


def train_job(p: DepthParams):
    """The engine's shallow-vs-deep fit, about FRAMES_PER_RUN frames (the engine pins each resumption to
    one torch thread itself)."""
    every = max(1, p.train_steps // FRAMES_PER_RUN)
    frames = D.fit_shallow_vs_deep(p.depth, p.train_steps, p.lr, p.seed, init=p.init, sigma_w=p.sigma_w,
                                   sigma_b=p.sigma_b, every=every)
    try:
        yield from frames
    finally:
        frames.close()


# -- the panel ------------------------------------------------------------------------------------

class DepthPanel(Panel):
    name = "depth"
    title = "Depth & Sawtooth"
    Params = DepthParams
    references = (
        ("Telgarsky 2015, Representation benefits of deep feedforward networks", "arXiv:1509.08101"),
        ("Yarotsky 2017, Error bounds for approximations with deep ReLU networks", "arXiv:1610.01145"),
        ("Montúfar, Pascanu, Cho, Bengio 2014, On the number of linear regions of deep neural networks",
         "arXiv:1402.1869"),
        ("Hanin & Rolnick 2019, Complexity of linear regions in deep networks", "arXiv:1901.09021"),
        ("Nye & Saxe 2018, Are efficient deep representations learnable?", "arXiv:1807.06399"),
    )

    def build(self) -> None:
        self._notices: dict[str, str] = {}
        self._last_frame: D.FitFrame | None = None
        self._pieces_top: dict[str, float] = {}
        self._theory_drawn: tuple[int, int] = (0, 0)   # (L, m) the theory plots show
        self._random_depths = 0                          # depths asked of the random-nets job
        self._build_sawtooth(0, 0)
        self._build_pieces(0, 1)
        self._build_regions(0, 2)
        self._build_yarotsky(1, 0)
        self._build_error(1, 1)
        self._build_losses(2, 2)
        self._build_fits(2, 0)
        self._empty_loss_range()
        for row, stretch in enumerate((5, 5, 4)):
            self.grid.setRowStretch(row, stretch)
        self.train_button = self.add_button(
            "Train", self.train, "Fit f_L with a shallow and a deep ReLU net of the same parameter count "
            "(full-batch Adam, the steps, learning rate and init set on the left)")

    def _build_sawtooth(self, row: int, col: int) -> None:
        plot = plots.make_plot("Sawtooth", "x", "f<sub>L</sub>(x)", legend="top-left")
        self.saw_even = plots.theory_line(plot, "f<sub>L</sub>, pieces in 2 colours", 0)
        self.saw_odd = plots.theory_line(plot, None, 1)
        self.saw_net, _ = plots.sim_dots(plot, "torch net", 2, errors=False)
        plot.getPlotItem().setYRange(-0.05, 1.7, padding=0)
        self.add_plot("sawtooth", plot, row, col)

    def _build_pieces(self, row: int, col: int) -> None:
        plot = plots.make_plot("Pieces vs depth", "depth L", "pieces on [0, 1]", log_y=True, legend="top-left")
        self.deep_line = plots.theory_line(plot, "deep: 2<sup>L</sup>", 0)
        self.shallow_line = plots.theory_line(plot, "shallow, same weights", 1)
        self.random_dots, _ = plots.sim_dots(plot, "random nets at init", 2, errors=False)
        # min–max over the nets as line pairs: an ErrorBarItem would ignore the log axis
        self.random_range = plots.theory_line(plot, "random nets: min–max", 2, width_scale=0.6)
        plot.getPlotItem().legend.removeItem(self.random_range)
        self.depth_marker = pg.InfiniteLine(angle=90, pen=pg.mkPen(MARKER_GREY, width=2,
                                                                   style=pg.QtCore.Qt.PenStyle.DashLine))
        plot.addItem(self.depth_marker)
        self.add_plot("pieces", plot, row, col)

    def _build_regions(self, row: int, col: int) -> None:
        plot = plots.make_plot("Linear regions", "x<sub>1</sub>", "x<sub>2</sub>", legend=None)
        self.region_image = pg.ImageItem(axisOrder="col-major")
        self.region_image.setZValue(10)  # above the grid lines
        self.region_image.eoc_name = "region id"
        plot.addItem(self.region_image)
        item = plot.getPlotItem()
        plots.lock_aspect(item)
        item.setRange(xRange=(-REGION_EXTENT, REGION_EXTENT), yRange=(-REGION_EXTENT, REGION_EXTENT), padding=0)
        self.add_plot("regions", plot, row, col, 2, 1)

    def _build_yarotsky(self, row: int, col: int) -> None:
        plot = plots.make_plot("Yarotsky's x²", "x", "value", legend="top-left")
        self.f_m_line = plots.theory_line(plot, "f<sub>m</sub> = x − Σ g<sub>s</sub>/4<sup>s</sup>", 0)
        self.square_line = plots.reference_line(plot, "x²")
        self.add_plot("yarotsky", plot, row, col)

    def _build_error(self, row: int, col: int) -> None:
        plot = plots.make_plot("Error", "x", "f<sub>m</sub>(x) − x²", legend="top-left")
        self.error_line = plots.theory_line(plot, "f<sub>m</sub> − x²", 0)
        self.bound_line = plots.reference_line(plot, "2<sup>−2m−2</sup>")
        self.error_net, _ = plots.sim_dots(plot, "torch net", 2, errors=False)
        plot.getPlotItem().legend.setColumnCount(2)
        self.add_plot("error", plot, row, col)

    def _build_fits(self, row: int, col: int) -> None:
        plot = plots.make_plot("Learnability", "x", "network output", legend="top-left")
        self.target_line = plots.theory_line(plot, "target f<sub>L</sub>", 5, width_scale=2.2)
        self.shallow_fit = plots.theory_line(plot, "trained: 1 hidden layer", 1)
        self.deep_fit = plots.theory_line(plot, "trained: deep, width 2", 2)
        plot.getPlotItem().legend.setColumnCount(3)
        plot.getPlotItem().setYRange(-0.08, 1.35, padding=0)
        self.add_plot("fits", plot, row, col, 1, 2)

    def _build_losses(self, row: int, col: int) -> None:
        plot = plots.make_plot("Training loss (MSE)", "Adam step", "MSE", log_y=True, legend="top-right")
        self.shallow_loss = plots.theory_line(plot, "1 hidden layer", 1)
        self.deep_loss = plots.theory_line(plot, "deep, width 2", 2)
        self.constant_loss = plots.reference_line(plot, "best constant (Var f<sub>L</sub>)")
        self.add_plot("losses", plot, row, col)

    # -- parameter handling ---------------------------------------------------------------------
    def set_params(self, **changes) -> None:
        """As :meth:`Panel.set_params`; a depth beyond float64's resolution is refused with the reason."""
        try:
            super().set_params(**changes)
        except ParamError as err:
            depth = changes.get("depth")
            if err.field == "depth" and isinstance(depth, int | float) and depth > D.MAX_DEPTH:
                self._notice("float", f"Depth L = {depth:g} refused: f_L has 2^L pieces of width 2^−L, and "
                             f"beyond L = {D.MAX_DEPTH} a piece spans fewer than {2 ** (53 - D.MAX_DEPTH)} "
                             "float64 numbers, too few to compute or draw it. Kept "
                             f"L = {self.params.depth}.")
            raise
        self._notice("float", "")

    def schedule(self, changed: set[str]) -> None:
        p = self.params
        submitted = False
        if changed & THEORY_KEYS:
            self.submit("theory", theory_job, p, on_result=self._draw_theory, label="theory")
            submitted = True
        if changed & NET_KEYS:
            # importing torch holds the GIL for seconds: let the first numpy plots land before it starts
            delay = NET_DELAY_MS if "torch" in sys.modules else FIRST_NET_DELAY_MS
            self.submit("net", net_job, p, on_result=self._draw_net, delay_ms=delay, label="torch constructions")
        if changed & RANDOM_KEYS or len(pieces_depths(p.depth)) != self._random_depths:
            self._random_depths = len(pieces_depths(p.depth))
            self.submit("random", random_pieces_job, p, on_result=self._draw_random, delay_ms=60,
                        label=f"pieces of random nets (width {p.width})")
            submitted = True
        if changed & REGION_KEYS:
            self.submit("regions", region_job, p, on_partial=self._draw_regions, delay_ms=30,
                        label=f"region map (width {p.width}, depth {p.region_depth})")
            submitted = True
        if changed & TRAIN_KEYS:
            self._training_stale()
        self._warm_optimiser()
        if not submitted:
            self.mark_rendered()

    def _notice(self, topic: str, text: str) -> None:
        self._notices[topic] = text
        self.show_notice(" ".join(t for t in self._notices.values() if t))

    # -- training -------------------------------------------------------------------------------
    @property
    def _train_key(self) -> str:
        return self.job_key("train")

    def refresh(self) -> None:
        """Recompute everything; computed on its own and never shown (``edge-of-chaos render depth``),
        the panel also trains the fits, seeded by the parameters, so the exported fits and losses are drawn.
        In the window (or shown), training waits for Train as before."""
        super().refresh()
        headless = self.window() is self and not self.isVisible()
        if headless and self.params.depth <= D.FIT_MAX_DEPTH and not self.runner.is_busy(self._train_key):
            self.train()

    def train(self) -> None:
        """Start (or restart) the shallow-vs-deep fit for the current parameters."""
        p = self.params
        if p.depth > D.FIT_MAX_DEPTH:
            self.message.emit(f"Training takes L ≤ {D.FIT_MAX_DEPTH}; lower the depth first.")
            return
        self._clear_training(f"training from {_init_words(p.init)}…")
        self.set_progress(0.0)
        self.submit("train", train_job, p, on_partial=self._draw_fit,
                    label=f"training (L = {p.depth}, {p.train_steps} steps)")

    def cancel(self) -> None:
        training = self.runner.is_busy(self._train_key)
        super().cancel()
        if training:
            self._training_stopped()

    def _training_stale(self) -> None:
        if self.runner.is_busy(self._train_key):
            self.runner.cancel(self._train_key)
        too_deep = self.params.depth > D.FIT_MAX_DEPTH
        self.train_button.setEnabled(not too_deep)
        self._clear_training(f"training takes L ≤ {D.FIT_MAX_DEPTH}" if too_deep else "press Train")

    def _clear_training(self, state: str) -> None:
        """Drop the curves of an earlier fit; ``state`` says what happens next (e.g. 'press Train').

        Touches only what is drawn: a slider move must not repaint empty plots before its theory lands.
        """
        if self._last_frame is not None:
            self._last_frame = None
            for item in (self.shallow_fit, self.deep_fit, self.shallow_loss, self.deep_loss, self.constant_loss):
                item.setData([], [])
            self._empty_loss_range()
        plots.set_title(self.plots["fits"], f"Learnability: {state}")
        self.set_progress(None)

    def _empty_loss_range(self) -> None:
        losses = self.plots["losses"].getPlotItem()
        losses.setXRange(0, self.params.train_steps, padding=0.02)
        losses.setYRange(-4.0, 0.0, padding=0)  # log10 of the MSE, until a run sets its own range

    def _training_stopped(self) -> None:
        self.set_progress(None)
        f = self._last_frame
        if f is None:
            self._clear_training("stopped: press Train")
        else:
            plots.set_title(self.plots["fits"], self._fit_title(f, f"stopped at step {f.step}"))

    # -- drawing --------------------------------------------------------------------------------
    def _draw_theory(self, r: TheoryResult) -> None:
        # redraw only the plots whose input moved: each repaint costs the next slider move its latency
        depth, m = self._theory_drawn
        if r.params.depth != depth:
            self._draw_sawtooth(r)
            self._draw_pieces_theory(r)
            self.target_line.setData(*(r.target if r.target is not None else ([], [])))
            self.saw_net.setData([], [])  # the torch net of the old L: back when net_job lands
            plots.rename(self.plots["sawtooth"], self.saw_net, "torch net")
        if r.params.m != m:
            self._draw_yarotsky(r)
            self.error_net.setData([], [])
        self._theory_drawn = (r.params.depth, r.params.m)
        self.mark_rendered()

    def _draw_sawtooth(self, r: TheoryResult) -> None:
        L = r.params.depth
        n = r.saw_x.size - 1
        u = r.saw_x / r.window  # exact: the window is a power of two
        for item, first in ((self.saw_even, 0), (self.saw_odd, 1)):
            starts = np.arange(first, n, 2)
            ends = np.stack([starts, starts + 1], axis=1).ravel()
            item.setData(u[ends], r.saw_y[ends], connect="pairs")
        plot = self.plots["sawtooth"]
        zoom = L - SHOWN_LOG_PIECES
        count = f" = {2**L:,}" if L <= 16 else ""
        plots.set_title(plot, f"f<sub>{L}</sub>: 2<sup>{L}</sup>{count} pieces")
        plots.set_label(plot, "bottom", f"x · 2<sup>{zoom}</sup>: the first {n} pieces" if zoom > 0 else "x")
        plot.getPlotItem().setXRange(0.0, 1.0, padding=0.02)

    def _draw_pieces_theory(self, r: TheoryResult) -> None:
        t = r.pieces
        self.depth_marker.setPos(r.params.depth)
        self.deep_line.setData(t.depths, t.deep)
        self._pieces_top["deep"] = float(t.deep.max())
        self.shallow_line.setData(t.depths, t.shallow)
        L = r.params.depth
        plots.set_title(self.plots["pieces"], f"2<sup>{L}</sup> deep vs {2 * L + 1} shallow")
        self.plots["pieces"].getPlotItem().setXRange(0.5, t.depths[-1] + 0.5, padding=0)
        self._fit_pieces_range()

    def _fit_pieces_range(self) -> None:
        """Log-y range from 1 to well above the highest count: the legend sits in the empty top left."""
        top = max(self._pieces_top.values())
        self.plots["pieces"].getPlotItem().setYRange(0.0, math.log10(top) * 1.6 + 0.3, padding=0)

    def _draw_yarotsky(self, r: TheoryResult) -> None:
        m = r.params.m
        self.f_m_line.setData(r.nodes, r.f_nodes)
        self.square_line.setData(r.grid, r.square)
        plots.set_title(self.plots["yarotsky"], f"Yarotsky: f<sub>{m}</sub> ≈ x²")
        self.error_line.setData(r.grid, r.error)
        self.bound_line.setData([0.0, 1.0], [r.bound, r.bound])
        plots.set_title(self.plots["error"], f"max |f<sub>{m}</sub> − x²| = 2<sup>−{2 * m + 2}</sup>")
        self.plots["error"].getPlotItem().setYRange(-0.05 * r.bound, 1.6 * r.bound, padding=0)

    def _draw_net(self, r: NetResult) -> None:
        self.saw_net.setData(r.saw_x / shown_window(r.params.depth), r.saw_y)
        if r.count is not None:
            plots.rename(self.plots["sawtooth"], self.saw_net, f"torch net: {r.count:,} pieces")
        else:
            plots.rename(self.plots["sawtooth"], self.saw_net, "torch net")
        self.error_net.setData(r.yar_x, r.yar_error)
        self.mark_rendered()

    def _warm_optimiser(self) -> None:
        """Load the optimiser ahead of the first Train, once the sliders have rested WARM_IDLE_MS (each
        call restarts the wait) and only while this tab is in view: the import would make a slider being
        dragged, or another tab starting up, stutter."""
        if _optimiser_loaded or not self.isVisible() or self.runner.is_busy(self._train_key):
            return
        self.submit("warm", warm_job, delay_ms=WARM_IDLE_MS, label="loading torch's optimiser")

    def _draw_random(self, r: D.RandomPieces) -> None:
        self.random_dots.setData(r.depths, r.mean)
        self._pieces_top["random"] = float(r.counts.max())
        lo, hi = r.counts.min(axis=1), r.counts.max(axis=1)
        self.random_range.setData(np.repeat(r.depths, 2), np.stack([lo, hi], axis=1).ravel().astype(float),
                                  connect="pairs")
        plots.rename(self.plots["pieces"], self.random_dots, f"random, width {r.width}")
        self._fit_pieces_range()
        self.mark_rendered()

    def _draw_regions(self, r: RegionResult) -> None:
        self.region_image.setImage(r.ids, levels=(0, r.count), lut=r.lut, autoLevels=False)
        side = 2 * REGION_EXTENT
        self.region_image.setRect(-REGION_EXTENT, -REGION_EXTENT, side, side)
        n = r.ids.shape[0]
        centres = -REGION_EXTENT + (np.arange(n) + 0.5) * side / n
        self.region_image.eoc_x = self.region_image.eoc_y = centres
        kind = "linear regions" if r.final else "regions (preview)"
        plots.set_title(self.plots["regions"], f"{r.count:,} {kind}")
        self.mark_rendered()

    def _draw_fit(self, f: D.FitFrame) -> None:
        self._last_frame = f
        self.shallow_fit.setData(f.x, f.prediction[0])
        self.deep_fit.setData(f.x, f.prediction[1])
        steps = np.arange(f.loss_history.shape[0])
        self.shallow_loss.setData(steps, f.loss_history[:, 0])
        self.deep_loss.setData(steps, f.loss_history[:, 1])
        self.constant_loss.setData([0, f.steps], [f.constant_loss, f.constant_loss])
        self._fit_loss_range(f)
        plots.set_title(self.plots["fits"], self._fit_title(f, "done" if f.done else "training"))
        self.set_progress(f.step / max(f.steps, 1))
        if f.done:
            self.set_progress(None)
        self.mark_rendered()

    def _fit_loss_range(self, f: D.FitFrame) -> None:
        """Log-y range around the losses with head-room on top, where the legend sits.

        Changed only when the losses leave it or fill less than half of it: a new range regenerates
        the axes, the dearest part of a frame's repaint.
        """
        values = np.append(f.loss_history[np.isfinite(f.loss_history) & (f.loss_history > 0)], f.constant_loss)
        lo, hi = math.log10(values.min()), math.log10(values.max())
        span = max(hi - lo, 0.3)
        losses = self.plots["losses"].getPlotItem()
        (x0, x1), (y0, y1) = losses.viewRange()
        if x1 < f.steps:
            losses.setXRange(0, f.steps, padding=0.02)
        if lo < y0 or hi > y1 - 0.5 * span or y1 - y0 > 3.5 * span:
            losses.setYRange(lo - 0.05 * span, hi + 0.7 * span, padding=0)

    def _fit_title(self, f: D.FitFrame, state: str) -> str:
        """E.g. 'random init, training: pieces shallow 9, deep 5 of 32' (the step is on the progress bar;
        a title that changed every frame would re-lay the plot out every frame)."""
        return (f"{_init_words(self.params.init)}, {state}: pieces shallow {f.pieces[0]}, deep {f.pieces[1]} "
                f"(target {2**self.params.depth})")


def _init_words(init: str) -> str:
    return "exact weights + noise" if init == "near_exact" else "random init"
