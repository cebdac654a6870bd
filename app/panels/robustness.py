"""Robustness (lectures 13–15): adversarial digits, accuracy against ε with its certificates, minimal
perturbations, spatial attacks, a 2-D picture of the attacks and the link between sparsity and robustness.

Plots: (1) the chosen test digit, the perturbation (diverging colours) and the adversarial image, with a
strip of thumbnails to click and, under it, the class probabilities of both; (2) accuracy against ε —
clean, FGSM, PGD, certified by IBP and by CROWN-style linear bounds — for the chosen net, and PGD for the
other two; (3) DeepFool's L2 distances with the Lipschitz-certified radii below them; (4) accuracy over
rotations × translations; (5) a small net's decision regions on a 2-D set with a point's ε-box, the
FGSM / PGD / DeepFool steps and the first-layer ReLUs the box straddles; (6) robust accuracy and the
Lipschitz bound against density.

The three digits nets (standard, PGD-trained, IBP-trained) train on the first refresh, with progress and
Cancel; the standard one is the shared ``core.models`` digits net.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QFileDialog, QSizePolicy, QVBoxLayout, QWidget

from app import plots
from app.panels.base import Panel
from core.robustness import DENSITIES, NETS, RobustnessParams

NET_TITLES = {"standard": "standard", "adversarial": "adversarially trained (PGD)", "ibp": "IBP-trained"}
SHORT = {"standard": "standard", "adversarial": "PGD-trained", "ibp": "IBP-trained"}
NET_COLOURS = {"standard": 0, "adversarial": 1, "ibp": 2}
TRAIN_KEYS = {"epochs", "train_eps", "ibp_eps", "seed"}
DIGIT_KEYS = {"attack", "eps", "eps_l2", "index", "net", "pgd_steps", "restarts", "seed"}
CURVE_KEYS = {"eps_max", "pgd_steps", "restarts", "seed"}
SPATIAL_KEYS = {"net", "angle_max", "shift_max"}
TOY_KEYS = {"toy", "toy_x", "toy_y", "toy_eps", "pgd_steps", "seed"}
SPARSE_KEYS = {"sparse_eps", "finetune_epochs", "seed"}
CURVE_POINTS = 11
IBP_EPOCH_FACTOR = 2             # the IBP net trains twice as long: its ε ramp needs room
THUMBS = 10                      # thumbnails in the strip under the digit
GAP = 1.5                        # between the three big images (pixels of the 8×8 digit)
DIGIT_DELAY_MS = 0
HEAVY_DELAY_MS = 250


def _grey_lut() -> np.ndarray:
    """White (0) to black (1): digits drawn as ink on paper."""
    ramp = np.linspace(255, 0, 256).astype(np.uint8)
    return np.stack([ramp, ramp, ramp], 1)


def _outline(left: np.ndarray, right: np.ndarray, heights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A bar per (left, right, height) as one outline from y = 0 (x and y of equal length, to fill down to 0)."""
    x = np.stack([left, left, right, right], 1).ravel()
    y = np.stack([np.zeros_like(heights), heights, heights, np.zeros_like(heights)], 1).ravel()
    return x, y.astype(float)


def _bars(p: np.ndarray, offset: float, width: float = 0.38) -> tuple[np.ndarray, np.ndarray]:
    """A bar per class centred at k + offset."""
    left = np.arange(len(p), dtype=float) + offset - width / 2
    return _outline(left, left + width, np.asarray(p, float))


def _histogram(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    counts = np.histogram(np.clip(values, edges[0], edges[-1]), edges)[0]
    return _outline(edges[:-1], edges[1:], counts.astype(float))


# -- jobs (worker threads) ------------------------------------------------------------------------

def _digits():
    from core import data

    return data.load("digits")


def nets_job(p: RobustnessParams):
    """Train (or fetch) the three digits nets in turn: Progress records, then ("net", kind, Trained)."""
    from core import nets
    from core.robustness.experiments import Progress, Recipe, train_net

    data = _digits()
    recipes = {"standard": Recipe("standard", 0.0, p.epochs),
               "adversarial": Recipe("adversarial", p.train_eps, p.epochs),
               "ibp": Recipe("ibp", p.ibp_eps, IBP_EPOCH_FACTOR * p.epochs)}
    order = [p.net] + [k for k in NETS if k != p.net]
    for i, kind in enumerate(order):
        run = train_net(data, nets.DIGITS_MLP, recipes[kind], seed=p.seed)
        try:
            for item in run:
                if isinstance(item, Progress):
                    yield ("progress", kind, (i + item.fraction) / len(order), item.test_accuracy)
                else:
                    yield ("net", kind, item)
        finally:
            run.close()


def digit_job(model, p: RobustnessParams):
    from core.robustness.experiments import attack_one

    data = _digits()
    return attack_one(model, data.x_test, data.y_test, p.index, p.attack, p.eps, p.eps_l2, pgd_steps=p.pgd_steps,
                      restarts=p.restarts, seed=p.seed, with_test_set=True)


def curve_job(model, kind: str, p: RobustnessParams):
    from core.robustness.experiments import accuracy_curve

    data = _digits()
    return accuracy_curve(model, data.x_test, data.y_test, np.linspace(0.0, p.eps_max, CURVE_POINTS),
                          pgd_steps=p.pgd_steps, restarts=p.restarts, seed=p.seed, kind=kind)


def minimal_job(model, kind: str):
    from core.robustness.experiments import minimal_perturbations

    data = _digits()
    return minimal_perturbations(model, data.x_test, data.y_test, kind)


def spatial_job(model, kind: str, p: RobustnessParams):
    from core.robustness import spatial

    data = _digits()
    angles = np.linspace(-p.angle_max, p.angle_max, 31) if p.angle_max > 0 else np.zeros(1)
    shifts = np.arange(-p.shift_max, p.shift_max + 1, dtype=float)
    return kind, spatial(model, data.x_test, data.y_test, angles, shifts, image_shape=data.image_shape)


def toy_job(p: RobustnessParams):
    from core.robustness.experiments import toy_picture

    return toy_picture(p.toy, (p.toy_x, p.toy_y), p.toy_eps, seed=p.seed, pgd_steps=p.pgd_steps)


def sparsity_job(model, p: RobustnessParams):
    from core.robustness.experiments import sparsity_sweep

    yield from sparsity_sweep(model, _digits(), DENSITIES, p.sparse_eps, finetune_epochs=p.finetune_epochs,
                              seed=p.seed)


# -- the panel ------------------------------------------------------------------------------------

class RobustnessPanel(Panel):
    name = "robustness"
    title = "Robustness"
    Params = RobustnessParams
    references = (
        ("Goodfellow, Shlens, Szegedy 2015, Explaining and harnessing adversarial examples", "arXiv:1412.6572"),
        ("Madry et al. 2018, Towards deep learning models resistant to adversarial attacks", "arXiv:1706.06083"),
        ("Moosavi-Dezfooli, Fawzi, Frossard 2016, DeepFool", "arXiv:1511.04599"),
        ("Engstrom et al. 2019, Exploring the landscape of spatial robustness", "arXiv:1712.02779"),
        ("Gowal et al. 2018, On the effectiveness of interval bound propagation", "arXiv:1810.12715"),
        ("Zhang et al. 2018, Efficient neural network robustness certification (CROWN)", "arXiv:1811.00866"),
        ("Wong & Kolter 2018, Provable defenses via the convex outer adversarial polytope", "arXiv:1711.00851"),
        ("Tsuzuku, Sato, Sugiyama 2018, Lipschitz-margin training", "arXiv:1802.04034"),
        ("Guo et al. 2018, Sparse DNNs with improved adversarial robustness", "arXiv:1810.09619"),
    )

    def build(self) -> None:
        self._nets: dict[str, object] = {}
        self._curves: dict[str, object] = {}
        self._sparse: list = []
        self._thumb_start = -1
        self._build_digit()
        self._build_probabilities()
        self._build_accuracy()
        self._build_minimal()
        self._build_spatial()
        self._build_toy()
        self._build_sparsity()
        # two columns: the digit and its probabilities need a wide cell, and three columns of these
        # plots overflow a 1280-px projector
        for row in range(3):
            self.grid.setRowStretch(row, 1)
        for col in range(2):
            self.grid.setColumnStretch(col, 1)
        self.train_button = self.add_button("Train nets", self.retrain,
                                            "Train the three digits nets again (standard, PGD, IBP) with the "
                                            "epochs and ε on the left; Cancel stops it")
        self.save_button = self.add_button("Save net…", self.save_net,
                                           "Save the chosen net as .safetensors with its spec and recipe")

    # -- building -------------------------------------------------------------------------------
    def _build_digit(self) -> None:
        plot = plots.make_plot("Adversarial digit", "", "", legend=None)
        item = plot.getPlotItem()
        item.hideAxis("left")
        item.hideAxis("bottom")
        item.showGrid(x=False, y=False)
        plots.lock_aspect(item)
        item.invertY(True)
        item.setMouseEnabled(x=False, y=False)
        self.original_image = pg.ImageItem(axisOrder="row-major")
        self.delta_image = pg.ImageItem(axisOrder="row-major")
        self.adversarial_image = pg.ImageItem(axisOrder="row-major")
        self.thumb_image = pg.ImageItem(axisOrder="row-major")
        self.original_image.eoc_name = "original pixel"
        self._image_x = {self.original_image: 0.0, self.delta_image: 8 + GAP, self.adversarial_image: 16 + 2 * GAP}
        for img in self._image_x:
            plot.addItem(img)
        plot.addItem(self.thumb_image)
        self._thumb_width = (24 + 2 * GAP) / THUMBS
        self.thumb_box = pg.PlotDataItem([], [], pen=pg.mkPen("#D55E00", width=3))
        plot.addItem(self.thumb_box)
        self.digit_labels = []
        for x0 in (4.0, 12 + GAP, 20 + 2 * GAP):
            label = plots.note(plot, "", anchor=(0.5, 1.0))
            label.setPos(x0, -0.2)
            self.digit_labels.append(label)
        self.delta_bar = plots.color_bar(item, self.delta_image, (-0.1, 0.1), "CET-D1", 14, "δ (pixel units)")
        item.setRange(xRange=(-0.5, 24.5 + 2 * GAP), yRange=(-2.2, 8 + GAP + self._thumb_width + 0.3), padding=0)
        plot.scene().sigMouseClicked.connect(self._digit_clicked)
        self._digit_plot = plot

    def _build_probabilities(self) -> None:
        plot = plots.make_plot("Class probabilities", "class", "p(class)", legend="top-right")
        self.p_original = plot.plot([], [], fillLevel=0, name="original",
                                    pen=pg.mkPen(plots.color(0), width=1), brush=pg.mkBrush(plots.color(0)))
        self.p_adversarial = plot.plot([], [], fillLevel=0, name="adversarial",
                                       pen=pg.mkPen(plots.color(1), width=1), brush=pg.mkBrush(plots.color(1)))
        item = plot.getPlotItem()
        item.setRange(xRange=(-0.6, 9.6), yRange=(0, 1.35), padding=0)
        item.getAxis("bottom").setTicks([[(k, str(k)) for k in range(10)]])
        item.setMouseEnabled(x=False, y=False)
        # plot 1 is the digit over its class probabilities: one cell of the 2 × 3 grid
        cell = QWidget()
        column = QVBoxLayout(cell)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addWidget(self._digit_plot, 3)
        column.addWidget(plot, 2)
        for widget in (self._digit_plot, plot):
            widget.setMinimumSize(0, 0)
            widget.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        cell.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        # two plots stacked in one cell: each needs about a plot's readable height of its own
        cell.setMinimumHeight(400)
        self.grid.addWidget(cell, 0, 0)
        self.plots["digit"] = self._digit_plot
        self.plots["probabilities"] = plot
        self.plot_grid.schedule()

    def _build_accuracy(self) -> None:
        plot = plots.make_plot("Accuracy against ε", "ε (L∞, pixel units)", "accuracy (%)", legend="top-right")
        self.clean_line = plots.reference_line(plot, None)
        self.fgsm_dots, _ = plots.sim_dots(plot, "FGSM", 4, errors=False)
        self.pgd_dots, _ = plots.sim_dots(plot, "PGD", 0, errors=False)
        self.crown_line = plots.theory_line(plot, "certified, linear", 3)
        self.ibp_line = plots.theory_line(plot, "certified, IBP", 2)
        self.other_pgd = {}
        for kind, colour in zip(NETS, (5, 6, 1), strict=True):
            self.other_pgd[kind] = plots.theory_line(plot, None, colour, dash=True, width_scale=0.7)
        self.eps_marker = pg.InfiniteLine(angle=90, pen=pg.mkPen("#888888", width=2,
                                                                 style=pg.QtCore.Qt.PenStyle.DashLine))
        plot.addItem(self.eps_marker)
        plot.getPlotItem().setYRange(0, 105, padding=0)
        self.add_plot("accuracy", plot, 0, 1)

    def _build_minimal(self) -> None:
        plot = plots.make_plot("Minimal perturbations", "L2 distance ‖δ‖₂", "images", legend="top-right")
        self.deepfool_hist = plot.plot([], [], fillLevel=0, name="DeepFool ‖r‖₂",
                                       pen=pg.mkPen(plots.color(1), width=2), brush=pg.mkBrush(plots.color(1) + "90"))
        self.lipschitz_hist = plot.plot([], [], fillLevel=0, name="certified m/(√2 Lip)",
                                        pen=pg.mkPen(plots.color(0), width=2), brush=pg.mkBrush(plots.color(0) + "90"))
        self.add_plot("minimal", plot, 1, 0)

    def _build_spatial(self) -> None:
        plot = plots.make_plot("Spatial attack", "rotation θ (°)", "horizontal shift δx (px)", legend=None)
        self.spatial_image = pg.ImageItem(axisOrder="col-major")
        self.spatial_image.eoc_name = "accuracy at vertical shift 0"
        plot.addItem(self.spatial_image)
        self.spatial_bar = plots.color_bar(plot, self.spatial_image, (0, 100), width=14, label="accuracy (%)")
        self.worst_marker = pg.ScatterPlotItem([], [], symbol="x", size=22, pen=pg.mkPen("#D55E00", width=3),
                                               brush=pg.mkBrush("#D55E00"))
        plot.addItem(self.worst_marker)
        self.add_plot("spatial", plot, 1, 1)

    def _build_toy(self) -> None:
        plot = plots.make_plot("Attacks in 2-D", "x₁", "x₂", legend="bottom-left")
        item = plot.getPlotItem()
        self.toy_image = pg.ImageItem(axisOrder="col-major")
        self.toy_image.eoc_name = "predicted class"
        plot.addItem(self.toy_image)
        self.toy_points = pg.ScatterPlotItem([], [], size=5, pen=None)
        plot.addItem(self.toy_points)
        self.unstable_lines = plots.theory_line(plot, None, 6, width_scale=0.5)
        self.box_line = plots.theory_line(plot, None, 6, width_scale=1.0)
        self.fgsm_path = plots.theory_line(plot, "FGSM", 4, width_scale=1.2)
        self.pgd_path = plots.theory_line(plot, "PGD", 0, width_scale=1.2)
        self.deepfool_path = plots.theory_line(plot, "DeepFool", 3, width_scale=1.2)
        self.toy_ends = pg.ScatterPlotItem([], [], size=11, pen=pg.mkPen("#000000", width=1))
        plot.addItem(self.toy_ends)
        plots.lock_aspect(item)
        item.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.02)
        plot.scene().sigMouseClicked.connect(self._toy_clicked)
        self.add_plot("toy", plot, 2, 0)

    def _build_sparsity(self) -> None:
        plot = plots.make_plot("Sparsity and robustness", "density (fraction of weights kept)", "%", log_x=True,
                               legend="bottom-right")
        self.sparse_clean, _ = plots.sim_dots(plot, "clean", 0, errors=False)
        self.sparse_pgd, _ = plots.sim_dots(plot, "PGD", 1, errors=False)
        self.sparse_lip, _ = plots.sim_dots(plot, "Lip bound / dense", 2, errors=False)
        plot.getPlotItem().setXRange(math.log10(min(DENSITIES)) - 0.1, 0.05, padding=0)
        ticks = [(math.log10(d), f"{d:g}") for d in (1, 0.5, 0.2, 0.1, 0.05, 0.02)]
        plot.getPlotItem().getAxis("bottom").setTicks([ticks])
        self.add_plot("sparsity", plot, 2, 1)

    # -- scheduling -----------------------------------------------------------------------------
    def schedule(self, changed: set[str]) -> None:
        p = self.params
        if changed & TRAIN_KEYS:
            self._start_training()
        else:
            if changed & DIGIT_KEYS:
                self._submit_digit()
            if changed & CURVE_KEYS:
                for kind in self._nets:
                    self._submit_curve(kind)
            if changed & {"net"}:
                self._draw_curves()
                self._submit_minimal()
            if changed & SPATIAL_KEYS:
                self._submit_spatial()
            if changed & SPARSE_KEYS:
                self._submit_sparsity()
        if changed & TOY_KEYS:
            self.submit("toy", toy_job, p, on_result=self._draw_toy, delay_ms=20,
                        label=f"2-D attacks on {p.toy}")
        if not self._nets and not changed & (TRAIN_KEYS | TOY_KEYS):
            self.mark_rendered()

    def _start_training(self) -> None:
        self._nets.clear()
        self._curves.clear()
        self.set_progress(0.0)
        plots.set_title(self.plots["accuracy"], "Accuracy against ε: training the nets…")
        p = self.params
        self.submit("nets", nets_job, p, on_partial=self._on_training, on_result=self._trained,
                    label=f"training the digits nets ({p.epochs} epochs each)")

    def retrain(self) -> None:
        """Train the nets again after a Cancel (a finished net comes back from the cache at once: training
        is deterministic for a seed)."""
        self._start_training()

    def _model(self, kind: str | None = None):
        trained = self._nets.get(kind or self.params.net)
        return None if trained is None else trained.model

    def _submit_digit(self) -> None:
        model = self._model()
        if model is not None:
            self.submit("digit", digit_job, model, self.params, on_result=self._draw_digit, delay_ms=DIGIT_DELAY_MS,
                        label="attacking the digit")

    def _submit_curve(self, kind: str) -> None:
        self.submit(f"curve:{kind}", curve_job, self._model(kind), kind, self.params, on_result=self._curve_done,
                    delay_ms=HEAVY_DELAY_MS, label=f"accuracy against ε ({NET_TITLES[kind]})")

    def _submit_minimal(self) -> None:
        model = self._model()
        if model is not None:
            self.submit("minimal", minimal_job, model, self.params.net, on_result=self._draw_minimal,
                        delay_ms=HEAVY_DELAY_MS, label="DeepFool over the test set")

    def _submit_spatial(self) -> None:
        model = self._model()
        if model is not None:
            self.submit("spatial", spatial_job, model, self.params.net, self.params, on_result=self._draw_spatial,
                        delay_ms=HEAVY_DELAY_MS, label="rotations × translations")

    def _submit_sparsity(self) -> None:
        model = self._model("standard")
        if model is not None:
            self._sparse = []
            self.submit("sparsity", sparsity_job, model, self.params, on_partial=self._draw_sparsity,
                        delay_ms=HEAVY_DELAY_MS, label="pruning and attacking")

    # -- training results -----------------------------------------------------------------------
    def _on_training(self, item) -> None:
        if item[0] == "progress":
            _, kind, fraction, accuracy = item
            self.set_progress(fraction)
            plots.set_title(self.plots["accuracy"], f"training the {NET_TITLES[kind]} net: test accuracy "
                                                    f"{100 * accuracy:.0f} %")
            return
        _, kind, trained = item
        self._nets[kind] = trained
        self._submit_curve(kind)
        if kind == self.params.net:
            self._submit_digit()
            self._submit_minimal()
            self._submit_spatial()
        if kind == "standard":
            self._submit_sparsity()
        self.mark_rendered()

    def _trained(self, _last) -> None:
        self.set_progress(None)

    def cancel(self) -> None:
        training = self.runner.is_busy(self.job_key("nets"))
        super().cancel()
        self.set_progress(None)
        if training:
            done = ", ".join(NET_TITLES[k] for k in self._nets) or "none"
            plots.set_title(self.plots["accuracy"], f"training cancelled (trained: {done}): press Train nets")

    # -- drawing --------------------------------------------------------------------------------
    def _draw_digit(self, r) -> None:
        p = self.params
        self.original_image.setImage(r.original.reshape(8, 8), levels=(0, 1), lut=_grey_lut())
        self.adversarial_image.setImage(r.adversarial.reshape(8, 8), levels=(0, 1), lut=_grey_lut())
        delta = (r.adversarial - r.original).reshape(8, 8)
        scale = max(float(np.abs(delta).max()), 1e-3)
        self.delta_image.setImage(delta, levels=(-scale, scale))
        self.delta_bar.setLevels((-scale, scale))
        for img, x0 in self._image_x.items():
            img.setRect(x0, 0, 8, 8)
        k0, k1 = int(np.argmax(r.p_original)), int(np.argmax(r.p_adversarial))
        self.digit_labels[0].setText(f"{k0} ({100 * r.p_original[k0]:.0f} %)")
        self.digit_labels[1].setText(f"‖δ‖₂ {r.norm_l2:.2f}")
        self.digit_labels[2].setText(f"{k1} ({100 * r.p_adversarial[k1]:.0f} %)")
        fooled = "fooled" if k1 != r.label else "not fooled"
        names = {"fgsm": f"FGSM, ε = {p.eps:g}", "pgd": f"PGD-{p.pgd_steps}, ε = {p.eps:g}",
                 "pgd_l2": f"PGD-L2, ε₂ = {p.eps_l2:g}", "deepfool": "DeepFool"}
        cert = "IBP-certified at ε" if r.certified_ibp else "not IBP-certified at ε"
        plots.set_title(self.plots["digit"], f"{names[p.attack]}: {fooled}")
        self._digit_plot.setToolTip(f"test image #{r.index}, {NET_TITLES[p.net]} net; {cert}")
        self._draw_thumbs(r.index)
        self.eps_marker.setPos(p.eps)
        plots.set_label(self.plots["accuracy"], "bottom", f"ε (L∞): at {p.eps:g}, FGSM {100 * r.fgsm_accuracy:.0f} %, "
                                                          f"IBP {100 * r.ibp_accuracy:.0f} %")
        self.p_original.setData(*_bars(r.p_original, -0.2))
        self.p_adversarial.setData(*_bars(r.p_adversarial, 0.2))
        self.mark_rendered()

    def _draw_thumbs(self, index: int) -> None:
        data = _digits()
        start = min(max(0, index - THUMBS // 2), data.n_test - THUMBS)
        if start != self._thumb_start:
            self._thumb_start = start
            imgs = data.x_test[start:start + THUMBS].numpy().reshape(THUMBS, 8, 8)
            pad = np.zeros((THUMBS, 8, 1))
            strip = np.concatenate([np.concatenate([im, p], 1) for im, p in zip(imgs, pad, strict=True)], 1)
            self.thumb_image.setImage(strip, levels=(0, 1), lut=_grey_lut())
            self.thumb_image.setRect(0, 8 + GAP, 24 + 2 * GAP, self._thumb_width * 8 / 9)
        w = self._thumb_width
        x0, y0 = (index - start) * w, 8 + GAP
        self.thumb_box.setData([x0, x0 + w, x0 + w, x0, x0], [y0, y0, y0 + w * 8 / 9, y0 + w * 8 / 9, y0])

    def _digit_clicked(self, ev) -> None:
        if ev.double():
            return
        vb = self.plots["digit"].getPlotItem().vb
        pos = vb.mapSceneToView(ev.scenePos())
        if 8 + GAP <= pos.y() <= 8 + GAP + self._thumb_width and 0 <= pos.x() < THUMBS * self._thumb_width \
                and self._thumb_start >= 0:
            self.set_params(index=int(self._thumb_start + pos.x() // self._thumb_width))

    def _curve_done(self, curve) -> None:
        if curve.kind in self._nets:
            self._curves[curve.kind] = curve
            self._draw_curves()
            self.mark_rendered()

    def _draw_curves(self) -> None:
        kind = self.params.net
        widget = self.plots["accuracy"]
        for other, line in self.other_pgd.items():
            c = self._curves.get(other)
            if other == kind or c is None:
                line.setData([], [])
            else:
                line.setData(c.eps, 100 * c.pgd)
                line.opts["name"] = f"PGD, {SHORT[other]}"
        legend = widget.getPlotItem().legend
        for other, line in self.other_pgd.items():
            legend.removeItem(line)
            if other != kind and other in self._curves:
                legend.addItem(line, line.opts["name"])
        c = self._curves.get(kind)
        if c is None:
            for item in (self.clean_line, self.fgsm_dots, self.pgd_dots, self.crown_line, self.ibp_line):
                item.setData([], [])
            return
        self.clean_line.setData([c.eps[0], c.eps[-1]], [100 * c.clean] * 2)
        self.fgsm_dots.setData(c.eps, 100 * c.fgsm)
        self.pgd_dots.setData(c.eps, 100 * c.pgd)
        self.crown_line.setData(c.eps, 100 * c.crown)
        self.ibp_line.setData(c.eps, 100 * c.ibp)
        widget.getPlotItem().setXRange(0, float(c.eps[-1]), padding=0.02)
        plots.set_title(widget, f"{SHORT[kind]} net, clean {100 * c.clean:.0f} % (dashed)")

    def _draw_minimal(self, r) -> None:
        if r.kind != self.params.net:
            return
        hi = float(np.percentile(r.deepfool, 99)) if r.deepfool.size else 1.0
        edges = np.linspace(0.0, max(hi, 1e-3) * 1.05, 41)
        self.deepfool_hist.setData(*_histogram(r.deepfool, edges))
        self.lipschitz_hist.setData(*_histogram(r.lipschitz, edges))
        below = float(np.mean(r.lipschitz <= r.deepfool + 1e-6)) if r.deepfool.size else math.nan
        plots.set_title(self.plots["minimal"], f"Lip ≤ {r.lip:.3g}: radius ≤ DeepFool in {100 * below:.0f} %")
        self.plots["minimal"].getPlotItem().setXRange(0, edges[-1], padding=0.02)
        self.mark_rendered()

    def _draw_spatial(self, result) -> None:
        kind, r = result
        if kind != self.params.net:
            return
        acc = 100 * r.accuracy[:, len(r.shifts) // 2, :]     # (A, S) at no vertical shift
        self.spatial_image.setImage(acc, levels=(0, 100))
        self.spatial_image.eoc_x, self.spatial_image.eoc_y = r.angles, r.shifts
        da = (r.angles[1] - r.angles[0]) if len(r.angles) > 1 else 1.0
        ds = (r.shifts[1] - r.shifts[0]) if len(r.shifts) > 1 else 1.0
        self.spatial_image.setRect(r.angles[0] - da / 2, r.shifts[0] - ds / 2, da * len(r.angles), ds * len(r.shifts))
        angle, dx, dy = r.worst_cell
        self.worst_marker.setData([angle], [dx])
        worst = 100 * float(r.accuracy.min())
        plots.set_title(self.plots["spatial"], f"worst ✕ {worst:.0f} %: {angle:+.0f}°, ({dx:+.0f},{dy:+.0f}) px")
        item = self.plots["spatial"].getPlotItem()
        item.setRange(xRange=(r.angles[0] - da / 2, r.angles[-1] + da / 2),
                      yRange=(r.shifts[0] - ds / 2, r.shifts[-1] + ds / 2), padding=0)
        self.mark_rendered()

    def _draw_toy(self, r) -> None:
        lut = np.array([[200, 220, 245], [250, 215, 190], [205, 240, 215], [240, 210, 235]], np.uint8)
        self.toy_image.setImage(r.classes, levels=(0, len(lut) - 1), lut=lut, autoLevels=False)
        x0, x1, y0, y1 = r.extent
        self.toy_image.setRect(x0, y0, x1 - x0, y1 - y0)
        res = r.classes.shape[0]
        self.toy_image.eoc_x = self.toy_image.eoc_y = np.linspace(x0, x1, res)
        brushes = [pg.mkBrush(plots.color(int(c))) for c in r.labels]
        self.toy_points.setData(r.points[:, 0], r.points[:, 1], brush=brushes)
        px, py = r.point
        e = r.eps
        self.box_line.setData([px - e, px + e, px + e, px - e, px - e], [py - e, py - e, py + e, py + e, py - e])
        self.fgsm_path.setData(r.fgsm[:, 0], r.fgsm[:, 1])
        self.pgd_path.setData(r.pgd_path[:, 0], r.pgd_path[:, 1])
        self.deepfool_path.setData(r.deepfool_path[:, 0], r.deepfool_path[:, 1])
        ends = np.array([r.fgsm[-1], r.pgd_path[-1], r.deepfool_path[-1], r.point])
        self.toy_ends.setData(ends[:, 0], ends[:, 1], brush=[pg.mkBrush(plots.color(i)) for i in (4, 0, 3, 6)])
        self._draw_unstable(r)
        ibp = "certified" if r.ibp_margin > 0 else "not certified"
        crown = "certified" if r.crown_margin > 0 else "not certified"
        plots.set_title(self.plots["toy"], f"IBP: {ibp}, linear: {crown}")
        self.plots["toy"].setToolTip(f"black square: the ε-box (ε = {e:g}); thin lines: the {len(r.unstable)} "
                                     f"first-layer ReLUs whose IBP interval over the box contains 0; margin lower "
                                     f"bounds IBP {r.ibp_margin:.2f}, linear {r.crown_margin:.2f}; test accuracy "
                                     f"{100 * r.accuracy:.0f} %. Click to move the point.")
        self.mark_rendered()

    def _draw_unstable(self, r) -> None:
        """Each straddled ReLU's line w·x + b = 0 inside a window of 3ε around the point."""
        px, py = r.point
        half = max(3 * r.eps, 0.02)
        xs, ys = [], []
        for w1, w2, b in r.unstable:
            t = np.linspace(-half, half, 2)
            if abs(w2) >= abs(w1):
                lx = px + t
                ly = -(w1 * lx + b) / w2
            else:
                ly = py + t
                lx = -(w2 * ly + b) / w1
            xs += list(lx)
            ys += list(ly)
        self.unstable_lines.setData(np.array(xs), np.array(ys), connect="pairs")

    def _toy_clicked(self, ev) -> None:
        if ev.double():
            return
        vb = self.plots["toy"].getPlotItem().vb
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        pos = vb.mapSceneToView(ev.scenePos())
        x, y = float(pos.x()), float(pos.y())
        if 0 <= x <= 1 and 0 <= y <= 1:
            self.set_params(toy_x=round(x, 2), toy_y=round(y, 2))

    def _draw_sparsity(self, pt) -> None:
        self._sparse.append(pt)
        pts = sorted(self._sparse, key=lambda q: q.density)
        d = np.array([q.density for q in pts])
        dense = next((q.lipschitz for q in pts if q.density == 1.0), None)
        self.sparse_clean.setData(d, [100 * q.clean for q in pts])
        self.sparse_pgd.setData(d, [100 * q.pgd for q in pts])
        if dense is not None:
            self.sparse_lip.setData(d, [100 * q.lipschitz / dense for q in pts])
        plots.set_title(self.plots["sparsity"], f"Pruned by magnitude; PGD at ε = {self.params.sparse_eps:g}")
        top = max([100.0] + [100 * q.lipschitz / dense for q in pts] if dense else [100.0])
        self.plots["sparsity"].getPlotItem().setYRange(0, top * 1.1, padding=0)
        self.mark_rendered()

    # -- files ----------------------------------------------------------------------------------
    def save_net(self, path=None):
        """Save the chosen net (``core.models.save``): .safetensors with its spec and recipe; the path."""
        from core import models

        trained = self._nets.get(self.params.net)
        if trained is None:
            self.message.emit("Robustness: no trained net to save yet")
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save net", f"digits_{self.params.net}.safetensors",
                                                  "safetensors (*.safetensors)")
            if not path:
                return None
        try:
            written = models.save(path, trained)
        except (OSError, ValueError) as err:
            self.show_error(f"could not save the net: {err}")
            return None
        self.message.emit(f"Robustness: saved {written}")
        return written
