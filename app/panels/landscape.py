"""Loss Landscape: filter-normalised surfaces, slices, sharp and flat minima, mode connectivity, the Hessian
spectrum and Pennington & Bahri's index against loss — every curve measured on real trained torch nets.

Plots: (1) the 2-D loss surface around a trained net (random or PCA plane, with the training path), click a
point for its loss and top Hessian eigenvalue; (2) 1-D slices along filter-normalised directions and the
two linear interpolations; (3) slices of a small-batch and a large-batch minimum; (4) the straight line
against a trained Bézier curve between two solutions; (5) the exact Hessian spectrum under the SLQ density,
and λ_max along full-batch gradient descent against 2/η (Cohen et al. 2021); (6) the measured index of small
teacher–student nets against Pennington & Bahri's α(ε, φ).
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg

from app import contours, plots
from app.panels.base import Panel
from core.landscape import LandscapeParams

SURFACE_KEYS = {"model", "plane", "normalisation", "seed", "span", "resolution", "split", "deep_depth"}
SLICE_KEYS = {"seed", "normalisation", "span"}
SHARP_KEYS = {"seed", "normalisation", "span"}
CONNECT_KEYS = {"bezier_steps"}
SPECTRUM_KEYS = {"slq_vectors"}
SHARPNESS_KEYS = {"gd_lr"}
QUEUE_ORDER = ("slices", "connect", "spectrum", "sharpness", "sharp", "index")
CONTOURS = 8
NORM_WORDS = {"filter": "filter-normalised", "layer": "layer-normalised", "none": "raw"}
PREVIEW = 21
SURFACE_DELAY_MS = 60        # a slider burst costs the preview of its last value, not of every value


# -- jobs (worker threads: torch and numpy only) -----------------------------------------------------

def surface_job(p: LandscapeParams, loaded=None):
    from core.landscape import experiments as E

    yield from E.surface_frames(p.model, p.plane, p.seed, p.normalisation, p.span, p.resolution,
                                deep_depth=p.deep_depth, split=p.split, preview=PREVIEW, loaded=loaded)


def slices_job(p: LandscapeParams, loaded=None):
    from core.landscape import experiments as E

    yield from E.slices_job(p.seed, p.normalisation, p.span, loaded=loaded)


def sharp_job(p: LandscapeParams, loaded=None):
    from core.landscape import experiments as E

    yield from E.sharp_flat_job(p.seed, p.normalisation, p.span)


def connect_job(p: LandscapeParams, loaded=None):
    from core.landscape import experiments as E

    yield from E.connect_job(steps=p.bezier_steps, loaded=loaded)


def spectrum_job(p: LandscapeParams, loaded=None):
    from core.landscape import experiments as E

    yield from E.hessian_job(seed=p.seed, n_vectors=p.slq_vectors)


def sharpness_job(p: LandscapeParams, loaded=None):
    from core.landscape import experiments as E

    yield from E.sharpness_job(p.gd_lr)


def index_job(p: LandscapeParams, loaded=None):
    from core.landscape import experiments as E

    yield from E.index_job()


def click_job(p: LandscapeParams, alpha: float, beta: float, loaded=None):
    from core.landscape import experiments as E

    return E.point_curvature(p.model, p.plane, p.seed, p.normalisation, alpha, beta, p.deep_depth, loaded)


JOBS = {"slices": slices_job, "sharp": sharp_job, "connect": connect_job, "spectrum": spectrum_job,
        "sharpness": sharpness_job, "index": index_job}
LABELS = {"surface": "loss surface", "slices": "slices and interpolations", "sharp": "small vs large batch",
          "connect": "Bézier curve", "spectrum": "Hessian spectrum", "sharpness": "λ_max during training",
          "index": "index vs loss",
          "click": "Hessian at the clicked point"}


class LandscapePanel(Panel):
    name = "landscape"
    title = "Loss Landscape"
    Params = LandscapeParams
    references = (
        ("Li, Xu, Taylor, Studer, Goldstein 2018, Visualizing the loss landscape of neural nets", "arXiv:1712.09913"),
        ("Goodfellow, Vinyals, Saxe 2015, Qualitatively characterizing neural network optimization problems",
         "arXiv:1412.6544"),
        ("Keskar et al. 2017, On large-batch training for deep learning: generalization gap and sharp minima",
         "arXiv:1609.04836"),
        ("Garipov et al. 2018, Loss surfaces, mode connectivity, and fast ensembling of DNNs", "arXiv:1802.10026"),
        ("Draxler et al. 2018, Essentially no barriers in neural network energy landscape", "arXiv:1803.00885"),
        ("Pennington & Bahri 2017, Geometry of neural network loss surfaces via random matrix theory",
         "ICML 2017"),
        ("Ghorbani, Krishnan, Xiao 2019, An investigation into neural net optimization via Hessian eigenvalue "
         "density", "arXiv:1901.10159"),
        ("Yao, Gholami, Keutzer, Mahoney 2020, PyHessian", "arXiv:1912.07145"),
        ("Cohen, Kaur, Li, Kolter, Talwalkar 2021, Gradient descent on neural networks typically occurs at the "
         "edge of stability", "arXiv:2103.00065"),
    )

    def build(self) -> None:
        self._surface = None
        self._queue: list[str] = []
        self._running: str | None = None
        self._surface_started = False
        self._loaded = None          # a core.models.Trained opened by the user, else the shared digits net
        self._build_surface(0, 0)
        self._build_slices(0, 1)
        self._build_sharp(0, 2)
        self._build_connect(1, 0)
        self._build_spectrum(1, 1)
        self._build_sharpness(1, 2)
        self._build_index(2, 0)

    # -- plots ------------------------------------------------------------------------------------
    def _build_surface(self, row: int, col: int) -> None:
        plot = plots.make_plot("Loss surface", "α (direction 1)", "β (direction 2)", legend="top-left")
        self.surface_image = pg.ImageItem(axisOrder="col-major")
        self.surface_image.eoc_name = "loss"
        plot.addItem(self.surface_image)
        self.colorbar = plots.color_bar(plot, self.surface_image, (0, 1))
        self.colorbar.axis.enableAutoSIPrefix(False)   # "log10 loss (x0.001)" with ticks of ±500 misleads
        # in the image's pixel coordinates, like the image itself
        self.contours = pg.PlotCurveItem(pen=pg.mkPen("#ffffff", width=1.2), connect="finite")
        self.contours.setParentItem(self.surface_image)
        self.path_line = plot.plot([], [], pen=pg.mkPen("#E69F00", width=2.5),
                                   symbol="o", symbolSize=6, symbolBrush="#E69F00", symbolPen=None)
        self.trained_point = pg.ScatterPlotItem([0.0], [0.0], symbol="star", size=20, brush="#D55E00",
                                                pen=pg.mkPen("#ffffff", width=1.5), name="trained model")
        plot.addItem(self.trained_point)
        self.click_marker = pg.ScatterPlotItem([], [], symbol="+", size=22, pen=pg.mkPen("#ff2020", width=3))
        plot.addItem(self.click_marker)
        plot.scene().sigMouseClicked.connect(self._surface_clicked)
        self.add_plot("surface", plot, row, col)

    def _build_slices(self, row: int, col: int) -> None:
        plot = plots.make_plot("Slices and interpolations", "α along d, or t from θ<sub>a</sub> (0) to "
                               "θ<sub>b</sub> (1)", "loss", log_y=True, legend="top-right")
        self.slice_dots = []
        for k in range(4):
            dots, _ = plots.sim_dots(plot, "4 random slices" if k == 0 else None, 0, errors=False)
            self.slice_dots.append(dots)
        self.init_dots, _ = plots.sim_dots(plot, "init → solution", 1, errors=False)
        self.pair_dots, _ = plots.sim_dots(plot, "seed 0 → seed 1", 2, errors=False)
        self.add_plot("slices", plot, row, col)

    def _build_sharp(self, row: int, col: int) -> None:
        plot = plots.make_plot("Small batch vs large batch", "α along a filter-normalised d", "training loss",
                               log_y=True, legend="top-right")
        self.small_dots, _ = plots.sim_dots(plot, "small batch", 0, errors=False)
        self.large_dots, _ = plots.sim_dots(plot, "large batch", 1, errors=False)
        self.add_plot("sharp", plot, row, col)

    def _build_connect(self, row: int, col: int) -> None:
        plot = plots.make_plot("Mode connectivity", "t along the path θ<sub>a</sub> → θ<sub>b</sub>",
                               "training loss", log_y=True, legend="top-right")
        self.line_dots, _ = plots.sim_dots(plot, "straight line", 1, errors=False)
        self.curve_dots, _ = plots.sim_dots(plot, "trained Bézier curve", 2, errors=False)
        self.add_plot("connect", plot, row, col)

    def _build_spectrum(self, row: int, col: int) -> None:
        plot = plots.make_plot("Hessian spectrum", "eigenvalue λ", "density", log_y=True, legend="top-right")
        self.hist_dots, _ = plots.sim_dots(plot, "exact eigenvalues (histogram)", 0, errors=False)
        self.slq_line = plots.theory_line(plot, "SLQ density estimate", 1)
        self.extreme_dots, _ = plots.sim_dots(plot, "Lanczos top 5 / bottom 5", 3, errors=False)
        self.add_plot("spectrum", plot, row, col)

    def _build_sharpness(self, row: int, col: int) -> None:
        plot = plots.make_plot("Sharpness during gradient descent", "gradient-descent step",
                               "λ<sub>max</sub> of the Hessian", legend="bottom-right")
        self.threshold_line = plots.theory_line(plot, "theory: 2/η (stability edge)", 1)
        self.sharpness_dots, _ = plots.sim_dots(plot, "measured λ<sub>max</sub> (Lanczos)", 0, errors=False)
        self.add_plot("sharpness", plot, row, col)

    def _build_index(self, row: int, col: int) -> None:
        plot = plots.make_plot("Index vs loss", "loss ε = ½⟨(ŷ − y)²⟩ / Var y (dashed: ε<sub>c</sub>)",
                               "index α (fraction of λ &lt; 0)", legend="top-left")
        self.index_lines, self.index_dots, self.critical_lines = {}, {}, {}
        from core.landscape.experiments import PB_RATIOS

        plots.legend_key(plot, "lines: Pennington & Bahri", "dots: tanh nets")
        for i, ratio in enumerate(PB_RATIOS):
            self.index_lines[ratio] = plots.theory_line(plot, f"φ = {ratio:g}", i)
            self.index_dots[ratio], _ = plots.sim_dots(plot, None, i, errors=False)
            line = pg.InfiniteLine(angle=90, pen=pg.mkPen(plots.color(i), width=1.5,
                                                          style=pg.QtCore.Qt.PenStyle.DashLine))
            line.setVisible(False)
            plot.addItem(line)
            self.critical_lines[ratio] = line
        plot.getPlotItem().setYRange(0.0, 1.2, padding=0)   # the legend sits above the dots
        self.add_plot("index", plot, row, col, 1, 3)     # the last row: the whole width

    # -- the shared network ---------------------------------------------------------------------------
    def trained_model(self):
        """The digits net the surface is drawn around: the one opened by the user, else ``core.models``'
        shared one (None until it is trained)."""
        if self._loaded is not None:
            return self._loaded
        from core import models, nets
        from core.landscape import experiments as E

        return models.cached(E.digits(), nets.DIGITS_MLP, E.shared_recipe(), 0)

    def use_model(self, trained) -> None:
        """Draw the surface, slices and Bézier curve around ``trained`` (a digits classifier); a model for
        other data or of another shape is refused with ``core.models.ModelFileError``."""
        from core.landscape import experiments as E
        from core.models import ModelFileError

        data = E.digits()
        spec = trained.spec
        if trained.data_key != data.key:
            raise ModelFileError(f"{self.title}: that model was trained on {trained.data_key or 'unknown data'}, "
                                 f"not on the digits ({data.key})")
        if spec.inputs != data.inputs or spec.outputs != data.classes:
            raise ModelFileError(f"{self.title}: that model maps {spec.inputs} inputs to {spec.outputs} outputs; "
                                 f"the digits need {data.inputs} → {data.classes}")
        self._loaded = trained
        if self.params.model != "digits MLP":
            self.set_params(model="digits MLP")
        else:
            self._submit_surface()
        for key in ("slices", "connect"):
            if key not in self._queue:
                self._queue.append(key)
        self._queue.sort(key=QUEUE_ORDER.index)
        self._pump()

    # -- scheduling -------------------------------------------------------------------------------
    def schedule(self, changed: set[str]) -> None:
        if changed & SURFACE_KEYS:
            self._submit_surface()
        elif "log_loss" in changed and self._surface is not None:
            self._draw_surface(self._surface)
            self.mark_rendered()
        wanted = []
        if changed & SLICE_KEYS:
            wanted.append("slices")
        if changed & SHARP_KEYS:
            wanted.append("sharp")
        if changed & CONNECT_KEYS:
            wanted.append("connect")
        if changed & SPECTRUM_KEYS:
            wanted.append("spectrum")
        if changed & SHARPNESS_KEYS:
            wanted.append("sharpness")
        if len(changed) == len(self.Params.specs()):
            wanted.append("index")
        for key in wanted:
            if key not in self._queue:
                self._queue.append(key)
        self._queue.sort(key=QUEUE_ORDER.index)
        self._pump()

    def is_busy(self) -> bool:
        return super().is_busy() or bool(self._queue)

    def cancel(self) -> None:
        self._queue.clear()
        self._running = None
        super().cancel()

    def _submit_surface(self) -> None:
        self.click_marker.setData([], [])
        self.submit("surface", surface_job, self.params, self._loaded, on_partial=self._surface_partial,
                    on_result=self._surface_done, delay_ms=SURFACE_DELAY_MS if self._surface_started else 0,
                    label=LABELS["surface"], on_error=lambda _t: self._pump())
        self._surface_started = True

    def _pump(self) -> None:
        """Start the next queued plot's job once the surface (which trains the shared net) has drawn and
        nothing else of this panel's queue is running: on two cores, jobs one at a time finish soonest."""
        if self._running is not None or not self._queue or self._surface is None:
            return
        key = self._queue.pop(0)
        self._running = key
        self.submit(key, JOBS[key], self.params, self._loaded, on_partial=lambda v, k=key: self._partial(k, v),
                    on_result=lambda v, k=key: self._done(k, v), on_error=lambda _t, k=key: self._failed(k),
                    label=LABELS[key])

    def _partial(self, key: str, value) -> None:
        if isinstance(value, float):
            self.set_progress(value)
        elif key == "sharpness":        # the dots appear as gradient descent reaches each checkpoint
            self.set_progress(value.progress)
            self._draw_sharpness(value)
            self.mark_rendered()

    def _done(self, key: str, value) -> None:
        self._running = None
        self.set_progress(None)
        getattr(self, f"_draw_{key}")(value)
        _repaint_legend(self.plots[key])
        self.mark_rendered()
        self._pump()

    def _failed(self, key: str) -> None:
        self._running = None
        self._pump()

    # -- surface ----------------------------------------------------------------------------------
    def _surface_partial(self, value) -> None:
        if isinstance(value, float):
            self.set_progress(value)
            return
        self._surface = value
        self._draw_surface(value)
        _repaint_legend(self.plots["surface"])
        self.mark_rendered()
        self._pump()

    def _surface_done(self, value) -> None:
        self.set_progress(None)
        self._surface_partial(value)

    def _draw_surface(self, r) -> None:
        loss = np.array(r.loss, dtype=float)
        shown = np.log10(np.maximum(loss, 1e-12)) if self.params.log_loss else loss
        finite = shown[np.isfinite(shown)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1e-6
        image = np.where(np.isfinite(shown), shown, hi)
        self.surface_image.setImage(image, autoLevels=False, levels=(lo, hi))
        a, b = r.alphas, r.betas
        da, db = (a[1] - a[0]), (b[1] - b[0])
        self.surface_image.setRect(a[0] - da / 2, b[0] - db / 2, da * a.size, db * b.size)
        self.surface_image.eoc_x, self.surface_image.eoc_y = a, b
        self.surface_image.eoc_name = "log10 loss" if self.params.log_loss else "loss"
        self.colorbar.setLevels((lo, hi))
        self.colorbar.axis.setLabel("log<sub>10</sub> loss" if self.params.log_loss else "loss",
                                    **plots.label_style())
        lines = contours.lines(image, lo + (hi - lo) * (np.arange(CONTOURS) + 0.5) / CONTOURS)
        # value [i, j] is drawn at the centre of pixel (i, j)
        self.contours.setData(0.5 + np.concatenate([x for x, _ in lines]),
                              0.5 + np.concatenate([y for _, y in lines]), connect="finite")
        if r.path is not None:
            self.path_line.setData(r.path[:, 0], r.path[:, 1])
            plots.set_label(self.plots["surface"], "bottom", f"PCA direction 1 ({100 * r.explained[0]:.0f} % of the "
                            "path's variance)")
            plots.set_label(self.plots["surface"], "left", f"PCA direction 2 ({100 * r.explained[1]:.0f} %)")
        else:
            self.path_line.setData([], [])
            norm = NORM_WORDS[self.params.normalisation]
            plots.set_label(self.plots["surface"], "bottom", f"α along d<sub>1</sub> ({norm}, seed {self.params.seed})")
            plots.set_label(self.plots["surface"], "left", "β along d<sub>2</sub>")
        item = self.plots["surface"].getPlotItem()
        item.setRange(xRange=(a[0] - da / 2, a[-1] + da / 2), yRange=(b[0] - db / 2, b[-1] + db / 2), padding=0)
        size = f"{a.size}²" + ("" if r.final else f" preview ({r.samples} samples)")
        plots.set_title(self.plots["surface"], f"{self.params.model}, {size} in {r.seconds:.1f} s")
        self.show_notice(r.note)

    def _surface_clicked(self, ev) -> None:
        if ev.double() or self._surface is None:
            return
        vb = self.plots["surface"].getPlotItem().vb
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        pos = vb.mapSceneToView(ev.scenePos())
        self.pick_point(float(pos.x()), float(pos.y()))

    def pick_point(self, alpha: float, beta: float) -> None:
        """Show the loss and top Hessian eigenvalue at (α, β) of the current surface."""
        r = self._surface
        if r is None:
            return
        if not (r.alphas[0] <= alpha <= r.alphas[-1] and r.betas[0] <= beta <= r.betas[-1]):
            self.message.emit("Loss Landscape: that point is outside the surface")
            return
        self.click_marker.setData([alpha], [beta])
        self.submit("click", click_job, self.params, alpha, beta, self._loaded, on_result=self._draw_click,
                    label=LABELS["click"])

    def _draw_click(self, value) -> None:
        alpha, beta, loss, top = value
        self.picked = value
        plots.set_title(self.plots["surface"], f"({alpha:.2f}, {beta:.2f}): loss {loss:.3g}, "
                        f"λ<sub>max</sub> {top:.3g}")
        self.mark_rendered()

    # -- the other plots ----------------------------------------------------------------------------
    def _draw_slices(self, r) -> None:
        for dots, loss in zip(self.slice_dots, r.slices, strict=True):
            _set(dots, r.alphas, loss)
        _set(self.init_dots, r.t, r.init_to_solution)
        _set(self.pair_dots, r.t, r.solution_to_solution)
        barrier = float(np.nanmax(r.solution_to_solution[(r.t >= 0) & (r.t <= 1)]))
        plots.set_title(self.plots["slices"], f"Slices; seed-to-seed barrier {barrier:.2g}")
        _log_range(self.plots["slices"], r.slices, r.init_to_solution, r.solution_to_solution)

    def _draw_sharp(self, r) -> None:
        _set(self.small_dots, r.alphas, r.small.mean(0))
        _set(self.large_dots, r.alphas, r.large.mean(0))
        plots.rename(self.plots["sharp"], self.small_dots,
                     f"batch {r.small_batch}: test {100 * r.small_accuracy:.1f} %")
        plots.rename(self.plots["sharp"], self.large_dots,
                     f"batch {r.large_batch}: test {100 * r.large_accuracy:.1f} %")
        _log_range(self.plots["sharp"], r.small, r.large)

    def _draw_connect(self, r) -> None:
        _set(self.line_dots, r.t, r.line_loss)
        _set(self.curve_dots, r.t, r.curve_loss)
        plots.set_title(self.plots["connect"], f"Barrier: line {np.nanmax(r.line_loss):.2g}, "
                        f"Bézier {np.nanmax(r.curve_loss):.2g}")
        _log_range(self.plots["connect"], r.line_loss, r.curve_loss)

    def _draw_spectrum(self, r) -> None:
        eig = r.eigenvalues
        lo, hi = float(r.density.grid[0]), float(r.density.grid[-1])
        counts, edges = np.histogram(eig, bins=80, range=(lo, hi))
        centres = 0.5 * (edges[1:] + edges[:-1])
        dens = counts / (eig.size * (edges[1] - edges[0]))
        keep = dens > 0
        self.hist_dots.setData(centres[keep], dens[keep])
        floor = 0.3 / (eig.size * (edges[1] - edges[0]))
        self.slq_line.setData(r.density.grid, np.maximum(r.density.density, floor * 1e-2))
        ext = np.concatenate([r.top, r.bottom])
        self.extreme_dots.setData(ext, np.full(ext.size, floor))
        plots.set_title(self.plots["spectrum"], f"Hessian, {r.parameters:,} params: λ<sub>max</sub> {r.top[0]:.3g}, "
                        f"λ<sub>min</sub> {r.bottom[0]:.2g}")
        item = self.plots["spectrum"].getPlotItem()
        top = math.log10(max(float(dens.max()), float(r.density.density.max())))
        item.setYRange(math.floor(math.log10(floor)) - 0.3, math.ceil(top) + 2.0, padding=0)

    def _draw_sharpness(self, r) -> None:
        total = float(r.total)
        self.threshold_line.setData([0.0, total], [r.threshold, r.threshold])
        self.sharpness_dots.setData(r.steps.astype(float), r.sharpness)
        plots.rename(self.plots["sharpness"], self.threshold_line, f"theory: 2/η = {r.threshold:.3g} (η = {r.lr:g})")
        if r.diverged:
            title = f"Sharpness: diverged after step {int(r.steps[-1]) if r.steps.size else 0}"
        elif r.steps.size:
            title = f"Sharpness, {r.parameters:,}-param tanh net, full-batch GD: loss {r.loss[-1]:.3g}"
        else:
            title = "Sharpness during gradient descent"
        plots.set_title(self.plots["sharpness"], title)
        top = max([r.threshold, *r.sharpness.tolist()]) if r.sharpness.size else r.threshold
        item = self.plots["sharpness"].getPlotItem()
        item.setXRange(0.0, total, padding=0.02)
        item.setYRange(0.0, 1.1 * top, padding=0)

    def _draw_index(self, r) -> None:
        for ratio in r.ratios:
            self.index_lines[ratio].setData(r.theory_eps, r.theory[ratio])
            self.index_dots[ratio].setData(r.losses[ratio], r.indices[ratio])
            self.critical_lines[ratio].setPos(r.critical[ratio])
            self.critical_lines[ratio].setVisible(True)
        self.plots["index"].getPlotItem().setXRange(0.0, float(r.theory_eps[-1]), padding=0.02)
        plots.set_title(self.plots["index"], f"Index vs loss, {r.parameters}-param nets")


def _repaint_legend(widget) -> None:
    """Repaint the legend's samples: cached on their first paint, they otherwise keep the default colour the
    dots had before they were styled."""
    legend = widget.getPlotItem().legend
    for sample, _label in legend.items if legend is not None else ():
        sample.update()


def _log_range(widget, *arrays) -> None:
    """A log-y range of whole decades around the losses with two decades of head room, where the legend sits."""
    v = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays])
    v = v[np.isfinite(v) & (v > 0)]
    if v.size:
        lo, hi = math.floor(math.log10(v.min())), math.ceil(math.log10(v.max()))
        widget.getPlotItem().setYRange(lo - 0.1, hi + 1.2, padding=0)


def _set(item, x, y) -> None:
    """Dots at the finite, positive y (a log axis): masked overflows and zeros are left out."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & (y > 0)
    item.setData(x[keep], y[keep])
