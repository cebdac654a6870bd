"""Signal Propagation: mean-field theory of deep random networks (lecture 2) beside a real torch net.

Plots: the (σ_w, σ_b) phase diagram with a draggable marker, the variance map with its cobweb, the
correlation map, q^l and c^l through depth (theory lines, simulated dots), Glorot-style histograms of
pre-activations and back-propagated gradients, and the depth scales ξ_q, ξ_c against σ_w.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer

from app import plots
from app.panels.base import Panel
from app.panels.trainability import TrainabilitySection
from app.progressive import building_progressively, progressive
from core import propagation as prop
from core.gaussian import mehler_kernel, normal_cdf
from core.propagation import PropagationParams

SIGMA_W_GRID = np.linspace(0.05, 4.0, 256)
SIGMA_B_GRID = np.linspace(0.0, 2.0, 256)
XI_SIGMA_W = np.linspace(0.05, 4.0, 240)
C_GRID = np.linspace(-1.0, 1.0, 201)
MAX_COBWEB_STEPS = 30
_PHASE_RECT = (SIGMA_W_GRID[0], SIGMA_B_GRID[0], SIGMA_W_GRID[-1] - SIGMA_W_GRID[0],
               SIGMA_B_GRID[-1] - SIGMA_B_GRID[0])
HIST_BINS = 41

PHASE_KEYS = {"phi", "alpha", "noise", "keep_prob", "noise_std", "heatmap"}
SCALE_KEYS = {"phi", "alpha", "noise", "keep_prob", "noise_std", "sigma_b", "depth"}
SIM_ONLY_KEYS = {"width", "seeds", "seed"}


def hist_layers(depth: int) -> list[int]:
    """Up to four layers spread through depth, always including the first and the last."""
    return sorted({1, max(1, depth // 3), max(1, (2 * depth) // 3), depth})


# -- jobs (run in worker threads: numpy and torch only) -------------------------------------------

@dataclass(frozen=True)
class PhaseResult:
    params: PropagationParams
    image: np.ndarray          # (len σ_w, len σ_b), ready for ImageItem
    critical_w: np.ndarray     # σ_w on the line χ₁ = 1, per σ_b (NaN where it leaves the box)
    label: str


def phase_job(p: PropagationParams) -> PhaseResult:
    pd = prop.phase_diagram(p.activation, SIGMA_W_GRID, SIGMA_B_GRID, p.mu2)
    chi = np.asarray(pd.chi1)  # rows σ_b, columns σ_w
    if p.heatmap == "log_chi1":
        with np.errstate(divide="ignore"):
            image = np.clip(np.log(chi), -3.0, 3.0)
        label = "ln χ₁"
    else:
        with np.errstate(divide="ignore"):
            image = np.clip(np.log10(np.asarray(pd.xi_c)), -1.0, 3.0)
        label = "log<sub>10</sub> ξ<sub>c</sub> (layers)"
    return PhaseResult(p, np.nan_to_num(image.T, nan=3.0, posinf=3.0), critical_line(chi), label)


def critical_line(chi: np.ndarray) -> np.ndarray:
    """σ_w where χ₁ crosses 1 along each σ_b row, by linear interpolation on the grid."""
    out = np.full(chi.shape[0], np.nan)
    for j, row in enumerate(chi):
        above = np.nonzero(row >= 1.0)[0]
        if above.size and above[0] > 0:
            k = above[0]
            a, b = row[k - 1], row[k]
            t = (1.0 - a) / (b - a) if np.isfinite(b) and b != a else 0.0
            out[j] = SIGMA_W_GRID[k - 1] + t * (SIGMA_W_GRID[k] - SIGMA_W_GRID[k - 1])
    return out


@dataclass(frozen=True)
class TheoryResult:
    """Everything drawn from the mean-field theory at the current point (not the phase diagram)."""

    params: PropagationParams
    q_axis: np.ndarray
    q_next: np.ndarray
    q_star: float
    cobweb: tuple[np.ndarray, np.ndarray]
    c_next: np.ndarray
    c_star: float
    chi1: float
    diverges: bool
    q_layers: np.ndarray       # q^l, l = 0 … L
    c_layers: np.ndarray
    grad_var: np.ndarray       # E[δ_l²] relative to the output layer, l = 0 … L
    grad_hist: dict            # layer → (bin centres, the histogram theory predicts for δ_l)


def theory_job(p: PropagationParams) -> TheoryResult:
    phi = p.activation
    sw, sb, mu2 = p.sigma_w, p.sigma_b, p.mu2
    fp = prop.fixed_point(sw, sb, phi, mu2)
    qs, chi, cs = float(fp.q_star), float(fp.chi1), float(fp.c_star)
    layers = prop.trajectories(p.q0, p.c0, sw, sb, phi, mu2, p.depth)
    q_web = layers.q[: MAX_COBWEB_STEPS + 2]
    finite = q_web[np.isfinite(q_web)]
    top = max(2.0 * qs if math.isfinite(qs) else 0.0, 1.5 * p.q0, 1.5 * float(finite.max(initial=0.0)), 1.0)
    top = min(top, 1e6)
    q_axis = np.linspace(0.0, top, 200)
    with np.errstate(over="ignore", invalid="ignore"):
        q_next = prop.q_map(q_axis, sw, sb, phi, mu2)
        c_next = c_map_curve(qs if math.isfinite(qs) and qs > 0 else max(p.q0, 1e-12), sw, sb, phi, mu2)
    # q¹ = σ_w² q⁰ + σ_b² is the first point on the q-map's axis; the cobweb climbs from (q¹, 0).
    steps = q_web[1:]
    ok = np.isfinite(steps) & (steps <= top)
    steps = steps[: steps.size if ok.all() else int(np.argmin(ok))]
    xs = np.repeat(steps, 2)[:-1]
    ys = np.concatenate([[0.0], np.repeat(steps[1:], 2)])[: xs.size]
    return TheoryResult(p, q_axis, q_next, qs, (xs, ys), c_next, cs, chi,
                        not math.isfinite(qs) or not np.all(np.isfinite(q_web)),
                        layers.q, layers.c, layers.grad, gradient_histograms(p, layers))


def gradient_histograms(p: PropagationParams, layers: prop.Trajectories) -> dict:
    """For each histogram layer, the mean-field histogram of δ_l on the bins the simulation uses
    (±4 standard deviations, HIST_BINS bins): a Gaussian scale mixture below the output layer
    (:func:`core.propagation.gradient_density`), N(0, 1) at the output, where δ_L is drawn."""
    out = {}
    for layer in hist_layers(p.depth):
        var = float(layers.grad[layer])
        if not (math.isfinite(var) and var > 0):
            out[layer] = (np.zeros(0), np.zeros(0))
            continue
        edges = np.linspace(-4.0, 4.0, HIST_BINS + 1) * math.sqrt(var)
        if layer == p.depth:
            density = np.diff(normal_cdf(edges / math.sqrt(var))) / np.diff(edges)
        else:
            density = prop.gradient_density(edges, var, float(layers.q[layer]), p.activation, p.noise,
                                            p.keep_prob, p.noise_std)
        out[layer] = (0.5 * (edges[1:] + edges[:-1]), density)
    return out


def c_map_curve(q: float, sigma_w: float, sigma_b: float, phi, mu2: float) -> np.ndarray:
    """The c-map on C_GRID at variance q, by the Mehler series (one 1-D quadrature for the whole curve).

    Agrees with :func:`core.propagation.c_map` to ~1e-3 even at q = 20 and far better at moderate q;
    the pointwise bivariate quadrature is exact but ~100× slower, too slow to follow a slider.
    """
    q = min(q, prop.Q_MAX)
    cov = mehler_kernel(phi.phi, q, C_GRID, breakpoints=phi.breakpoints)
    den = float(prop.q_map(q, sigma_w, sigma_b, phi, mu2))
    return (sigma_w**2 * cov + sigma_b**2) / den if den > 0 else C_GRID.copy()


@dataclass(frozen=True)
class ScalesResult:
    params: PropagationParams
    xi_q: np.ndarray
    xi_c: np.ndarray


def scales_job(p: PropagationParams) -> ScalesResult:
    pd = prop.phase_diagram(p.activation, XI_SIGMA_W, np.array([p.sigma_b]), p.mu2)
    return ScalesResult(p, np.asarray(pd.xi_q, float).ravel(), np.asarray(pd.xi_c, float).ravel())


@dataclass(frozen=True)
class SimulationSummary:
    """What the plots show of the networks simulated so far: means and spreads over the nets, and
    histogram densities of the sampled layers (computed in the worker, so that drawing is cheap)."""

    params: PropagationParams
    q_mean: np.ndarray
    q_sd: np.ndarray
    c_mean: np.ndarray
    c_sd: np.ndarray
    #: (field, layer) → (bin centres, density); field "pre" or "grad".
    hist: dict
    device: str


def simulation_job(p: PropagationParams):
    sims: list[prop.Simulation] = []
    for item in prop.simulate_seeds(**p.simulation_kwargs(), sample_layers=hist_layers(p.depth), progress=True):
        if isinstance(item, prop.Progress):
            yield item
        else:
            sims.append(item)
            yield summarize(p, sims)


def summarize(p: PropagationParams, sims: list[prop.Simulation]) -> SimulationSummary:
    q = np.array([s.q for s in sims])
    c = np.array([s.c for s in sims])
    hist = {}
    for field, attr in (("pre", "preact_samples"), ("grad", "grad_samples")):
        for layer in hist_layers(p.depth):
            rows = [getattr(s, attr)[list(s.sample_layers).index(layer)] for s in sims if layer in s.sample_layers]
            hist[field, layer] = histogram_density(np.concatenate(rows) if rows else np.zeros(0))
    return SimulationSummary(p, q.mean(0), q.std(0), c.mean(0), c.std(0), hist, sims[-1].device)


def histogram_density(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bin centres and densities over ±4 standard deviations (empty with fewer than 10 finite samples)."""
    samples = samples[np.isfinite(samples)]
    if samples.size < 10:
        return np.zeros(0), np.zeros(0)
    sd = samples.std() or 1.0
    density, edges = np.histogram(samples, bins=HIST_BINS, range=(-4 * sd, 4 * sd), density=True)
    return 0.5 * (edges[1:] + edges[:-1]), density


# -- the panel ------------------------------------------------------------------------------------

class PropagationPanel(Panel):
    name = "propagation"
    title = "Signal Propagation"
    Params = PropagationParams
    references = (
        ("Poole, Lahiri, Raghu, Sohl-Dickstein, Ganguli 2016, Exponential expressivity in deep neural "
         "networks through transient chaos", "arXiv:1606.05340"),
        ("Schoenholz, Gilmer, Ganguli, Sohl-Dickstein 2017, Deep information propagation", "arXiv:1611.01232"),
        ("Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward neural networks",
         "AISTATS 2010, PMLR 9:249–256"),
        ("He, Zhang, Ren, Sun 2015, Delving deep into rectifiers", "arXiv:1502.01852"),
        ("Pretorius, van Biljon, Kroon, Kamper 2018, Critical initialisation for deep signal propagation "
         "in noisy rectifier neural networks", "arXiv:1811.00293"),
        ("Murray, Abrol, Tanner 2021, Activation function design for deep networks", "arXiv:2105.07741"),
    )

    def build(self) -> None:
        self._sim: SimulationSummary | None = None
        self._theory_waiting: set[str] = set()
        self._simulation_wanted = False
        self._simulated_once = False
        self._first_simulation_waits = False

        phase = plots.make_plot("Phase diagram", "σ<sub>w</sub>", "σ<sub>b</sub>", legend="top-left")
        self.phase_image = pg.ImageItem(axisOrder="col-major")
        # Dragging the marker repaints this plot; a cached image is blitted instead of rescaled.
        self.phase_image.setCacheMode(pg.QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.phase_image.eoc_x, self.phase_image.eoc_y = SIGMA_W_GRID, SIGMA_B_GRID
        phase.addItem(self.phase_image)
        self.colorbar = plots.color_bar(phase, self.phase_image, (-1, 3))
        self.critical = plots.theory_line(phase, "order-to-chaos line χ₁ = 1", 6, width_scale=1.2)
        self.critical.eoc_role = ("reference",)
        self.marker = pg.TargetItem(pos=(self.params.sigma_w, self.params.sigma_b), size=18, movable=True,
                                    pen=pg.mkPen("#D55E00", width=3), label="drag me",
                                    # above right: σ_b usually sits near the map's bottom edge
                                    labelOpts={"color": "#D55E00", "offset": (12, 14)})
        self.marker.sigPositionChanged.connect(self._marker_moved)
        phase.addItem(self.marker)
        phase.getPlotItem().setRange(xRange=(SIGMA_W_GRID[0], SIGMA_W_GRID[-1]),
                                     yRange=(SIGMA_B_GRID[0], SIGMA_B_GRID[-1]), padding=0)
        self.add_plot("phase", phase, 0, 0, 2, 1)

        qmap = plots.make_plot("Variance map", "q<sup>l</sup>", "q<sup>l+1</sup>", legend="top-left")
        self.q_curve = plots.theory_line(qmap, "q-map (theory)", 0)
        self.q_identity = plots.reference_line(qmap, "identity")
        self.cobweb = plots.theory_line(qmap, "iterates from q⁰", 1, width_scale=0.6)
        self.q_fixed, _ = plots.sim_dots(qmap, "fixed point q*", 1, errors=False)
        self.add_plot("variance_map", qmap, 0, 1)

        cmap = plots.make_plot("Correlation map", "c<sup>l</sup>", "c<sup>l+1</sup>", legend="bottom-right")
        self.c_curve = plots.theory_line(cmap, "c-map (theory)", 0)
        self.c_identity = plots.reference_line(cmap, "identity")
        self.c_identity.setData([-1.0, 1.0], [-1.0, 1.0])
        self.c_slope = plots.theory_line(cmap, "slope χ₁ at c = 1", 3, dash=True, width_scale=0.8)
        self.c_fixed, _ = plots.sim_dots(cmap, "fixed point c*", 1, errors=False)
        plots.follow_range(cmap, x=(-1.0, 1.0), y=(-1.0, 1.0))
        self.add_plot("correlation_map", cmap, 0, 2)

        dq = plots.make_plot("Variance through depth", "layer l", "q<sup>l</sup>")
        self.q_theory = plots.theory_line(dq, "theory (mean field)", 0)
        self.q_sim, self.q_bars = plots.sim_dots(dq, "simulation (mean ± sd over nets)", 0)
        self.add_plot("variance_depth", dq, 1, 1)

        dc = plots.make_plot("Correlation through depth", "layer l", "c<sup>l</sup>")
        self.c_theory = plots.theory_line(dc, "theory (mean field)", 2)
        self.c_sim, self.c_bars = plots.sim_dots(dc, "simulation (mean ± sd over nets)", 2)
        self.add_plot("correlation_depth", dc, 1, 2)

        hp = plots.make_plot("Pre-activations by layer", "pre-activation h", "density")
        hg = plots.make_plot("Back-propagated gradients by layer", "∂/∂h<sup>l</sup> (unit variance at layer L)",
                             "density")
        self._hist_keys: dict = {}
        self.hist_pre: dict[int, tuple] = {}
        self.hist_grad: dict[int, tuple] = {}
        self.hist_plots = (hp, hg)
        self.add_plot("activations_hist", hp, 2, 0)
        self.add_plot("gradients_hist", hg, 2, 1)
        self._hist_items(self.hist_pre, hp, hist_layers(self.params.depth))  # here, not in the first refresh
        self._hist_items(self.hist_grad, hg, hist_layers(self.params.depth))

        xi = plots.make_plot("Depth scales", "σ<sub>w</sub>", "depth scale (layers)", log_y=True, legend="top-left")
        self.xi_q_curve = plots.theory_line(xi, "ξ_q (theory)", 4)
        self.xi_c_curve = plots.theory_line(xi, "ξ_c (theory)", 0)
        self.xi_6_curve = plots.theory_line(xi, "6 ξ_c: trainable depth", 0, dash=True)
        self.xi_depth = plots.reference_line(xi, "current depth L")
        self.xi_now = pg.InfiniteLine(angle=90, pen=pg.mkPen("#D55E00", width=2))
        xi.addItem(self.xi_now)
        self.add_plot("depth_scales", xi, 2, 2)

        self.add_button("Glorot init (σ_w = 1, σ_b = 0)", lambda: self.set_params(sigma_w=1.0, sigma_b=0.0),
                        "Glorot & Bengio 2010: Var W = 2/(n_in + n_out) = 1/N for square layers")
        self.add_button("He init (σ_w = √2, σ_b = 0)", lambda: self.set_params(sigma_w=math.sqrt(2), sigma_b=0.0),
                        "He et al. 2015: Var W = 2/n_in, critical for ReLU")
        self.add_button("Critical σ_w for this φ, σ_b and noise", self.set_critical,
                        "σ_w on the order-to-chaos line χ₁ = 1 at the current σ_b")
        # Trained networks (Schoenholz et al. Fig. 6, Pretorius et al.): a row of heat maps under the plots.
        # In the window (built as its tab is first shown) they come once the theory is on screen: three
        # more plots to make would stand between the launch and the first lines.
        self.trainability: TrainabilitySection | None = None
        if building_progressively():
            self._section_changed: set[str] = set()
        else:
            self.trainability = TrainabilitySection(self)

    # -- parameter handling ---------------------------------------------------------------------
    def update_visibility(self) -> None:
        p = self.params
        self.controls.set_visible("alpha", p.phi == "shifted_relu")
        self.controls.set_visible("keep_prob", p.noise == "dropout")
        self.controls.set_visible("noise_std", p.noise == "gaussian")

    def set_critical(self) -> None:
        p = self.params
        sw = float(prop.critical_sigma_w(p.sigma_b, p.activation, p.mu2))
        lo, hi = p.spec("sigma_w").lo, p.spec("sigma_w").hi
        if not math.isfinite(sw) or not lo <= sw <= hi:
            self.show_notice(f"No critical σ_w in [{lo:g}, {hi:g}] for {p.activation} at σ_b = {p.sigma_b:g}.")
            return
        self.set_params(sigma_w=round(sw, 4))

    def _marker_moved(self) -> None:
        pos = self.marker.pos()
        sw = float(np.clip(pos.x(), SIGMA_W_GRID[0], SIGMA_W_GRID[-1]))
        sb = float(np.clip(pos.y(), SIGMA_B_GRID[0], SIGMA_B_GRID[-1]))
        if (round(sw, 3), round(sb, 3)) != (round(self.params.sigma_w, 3), round(self.params.sigma_b, 3)):
            self.set_params(sigma_w=round(sw, 3), sigma_b=round(sb, 3))

    def schedule(self, changed: set[str]) -> None:
        p = self.params
        layers = hist_layers(p.depth)
        hp, hg = self.hist_plots
        self._hist_items(self.hist_pre, hp, layers)
        self._hist_items(self.hist_grad, hg, layers)
        theory_jobs = []
        if changed - SIM_ONLY_KEYS - {"heatmap"}:
            theory_jobs.append(("theory", theory_job, self._draw_theory, "theory"))
        if changed & PHASE_KEYS:
            theory_jobs.append(("phase", phase_job, self._draw_phase, "phase diagram"))
        if changed & SCALE_KEYS:
            theory_jobs.append(("scales", scales_job, self._draw_scales, "depth scales"))
        if changed - {"heatmap"}:
            self._clear_simulation()
            self._simulation_wanted = True
            # The simulation starts once the theory it changed is drawn: run together, they would share
            # one interpreter lock (and, at launch, torch's import) and the lines would come late.
            self.runner.cancel(self.job_key("simulation"))
        for key, job, draw, label in theory_jobs:
            self._theory_waiting.add(key)
            self.submit(key, job, p, on_result=partial(self._drew, key, draw),
                        on_error=lambda _text, k=key: self._theory_drawn(k), label=label)
        self._theory_drawn(None)
        if self.trainability is not None:
            self.trainability.schedule(changed)
        else:
            self._section_changed |= changed

    def _build_section(self) -> None:
        """Make the trainability row (deferred from :meth:`build`) and give it what changed meanwhile."""
        if self.trainability is not None:
            return
        with progressive():
            self.trainability = TrainabilitySection(self)
        # Its budget box and Train button join the control column once shown (a turn later).
        QTimer.singleShot(0, self, self._fit_side)
        changed, self._section_changed = self._section_changed, set()
        if self._scheduled_once:
            self.trainability.schedule(changed)

    def _clear_simulation(self) -> None:
        """Dots belong to the parameters they were simulated at: they go when those change (and
        the plots under them repaint faster while a slider moves)."""
        self._sim = None
        empty = np.zeros(0)
        for dots in (self.q_sim, self.c_sim, *(pair[1] for store in (self.hist_pre, self.hist_grad)
                                              for pair in store.values())):
            x, _ = dots.getData()
            if x is not None and len(x):
                dots.setData([], [])
        for bars in (self.q_bars, self.c_bars):
            if len(bars.opts["x"]):
                bars.setData(x=empty, y=empty, top=empty, bottom=empty)

    def is_busy(self) -> bool:
        # the first simulation waits for the theory's repaint (≤ 1 s, :meth:`when_painted`) with no job
        # running: the panel is not done until it has started
        return super().is_busy() or self._first_simulation_waits

    def cancel(self) -> None:
        self._theory_waiting.clear()
        self._simulation_wanted = self._first_simulation_waits = False
        super().cancel()

    def _drew(self, key: str, draw, result) -> None:
        draw(result)
        self._theory_drawn(key)

    def _theory_drawn(self, key: str | None) -> None:
        self._theory_waiting.discard(key)
        if self._simulation_wanted and not self._theory_waiting:
            self._simulation_wanted = False
            if self._simulated_once:
                self._submit_simulation(150)  # debounced while a slider moves
                return
            self._simulated_once = True
            # The first one (at launch) waits for the repaint that shows the theory (torch's import would
            # hold the interpreter lock through it), and so does the deferred trainability row.
            self._first_simulation_waits = True
            self.when_painted(self._after_first_paint)

    def _after_first_paint(self) -> None:
        self._build_section()
        if self._first_simulation_waits:  # not cancelled meanwhile
            self._first_simulation_waits = False
            self._submit_simulation(0)

    def _submit_simulation(self, delay_ms: int) -> None:
        p = self.params
        self.submit("simulation", simulation_job, p, on_partial=self._draw_simulation, delay_ms=delay_ms,
                    label=f"simulation (N = {p.width}, L = {p.depth})")

    # -- drawing --------------------------------------------------------------------------------
    def _draw_phase(self, r: PhaseResult) -> None:
        self.phase_image.setImage(r.image, autoLevels=False)
        self.phase_image.setRect(_PHASE_RECT)
        self.phase_image.eoc_name = "ln chi_1" if r.params.heatmap == "log_chi1" else "log10 xi_c (layers)"
        levels = (-3.0, 3.0) if r.params.heatmap == "log_chi1" else (-1.0, 3.0)
        self.colorbar.setLevels(levels)
        self.colorbar.setColorMap(pg.colormap.get("CET-D1" if r.params.heatmap == "log_chi1" else "viridis"))
        self.colorbar.axis.setLabel(r.label, **plots.label_style())
        ok = np.isfinite(r.critical_w)
        self.critical.setData(r.critical_w[ok], SIGMA_B_GRID[ok])
        self.mark_rendered()

    def _draw_theory(self, r: TheoryResult) -> None:
        p = r.params
        # Moved with the curves, not before them: one repaint per slider step, and none competing
        # with the computation for the interpreter lock.
        with pg.QtCore.QSignalBlocker(self.marker):
            self.marker.setPos(p.sigma_w, p.sigma_b)
        self.xi_now.setPos(p.sigma_w)
        finite = np.isfinite(r.q_next)
        self.q_curve.setData(r.q_axis[finite], r.q_next[finite])
        if self.q_identity.getData()[0] is None or self.q_identity.getData()[0][-1] != r.q_axis[-1]:
            self.q_identity.setData(r.q_axis[[0, -1]], r.q_axis[[0, -1]])
        self.cobweb.setData(*r.cobweb)
        if math.isfinite(r.q_star) and r.q_star <= r.q_axis[-1]:
            self.q_fixed.setData([r.q_star], [r.q_star])
        else:
            self.q_fixed.setData([], [])
        self.c_curve.setData(C_GRID, r.c_next)
        c_lo = 1.0 - 1.0 / max(r.chi1, 0.5) if math.isfinite(r.chi1) else 0.9
        self.c_slope.setData([max(c_lo, -1.0), 1.0], [1.0 + r.chi1 * (max(c_lo, -1.0) - 1.0), 1.0])
        self.c_fixed.setData([r.c_star], [r.c_star])
        top = r.q_axis[-1]
        plots.follow_range(self.plots["variance_map"], x=(0.0, top), y=(0.0, max(top, plots.span(r.q_next)[1])))
        if self.xi_depth.getData()[1] is None or self.xi_depth.getData()[1][0] != p.depth:
            self.xi_depth.setData(XI_SIGMA_W[[0, -1]], [p.depth, p.depth])
        if r.diverges:
            self.show_notice(f"The variance diverges: with {p.activation} at σ_w = {p.sigma_w:g}, "
                             f"σ_w²μ₂E[φ²]/q stays above 1, so q^l → ∞ (drawn up to where it is finite).")
        else:
            self.show_notice("")
        layers = np.arange(p.depth + 1)
        ok = np.isfinite(r.q_layers)
        self.q_theory.setData(layers[ok], r.q_layers[ok])
        self.c_theory.setData(layers, r.c_layers)
        self._draw_histogram_theory(r)
        self._fit_views()
        self.mark_rendered()

    def _draw_scales(self, r: ScalesResult) -> None:
        for curve, y in ((self.xi_q_curve, r.xi_q), (self.xi_c_curve, r.xi_c), (self.xi_6_curve, 6 * r.xi_c)):
            ok = np.isfinite(y) & (y > 0)
            curve.setData(XI_SIGMA_W[ok], np.minimum(y[ok], 1e4))
        self.mark_rendered()

    def _hist_items(self, store: dict, plot, layers: list[int]) -> None:
        if sorted(store) == layers:
            return
        for item in [i for pair in store.values() for i in pair] + list(self._hist_keys.pop(plot, ())):
            plot.removeItem(item)
        store.clear()
        plot.getPlotItem().legend.clear()
        self._hist_keys[plot] = plots.legend_key(plot, "theory", "simulation")
        plot.getPlotItem().legend.setColumnCount(2)
        for i, layer in enumerate(layers):
            line = plots.theory_line(plot, f"layer {layer}", i)
            dots, _ = plots.sim_dots(plot, None, i, errors=False)
            store[layer] = (line, dots)

    def _draw_histogram_theory(self, r: TheoryResult) -> None:
        for layer in hist_layers(r.params.depth):
            _gaussian_line(self.hist_pre[layer][0], r.q_layers[layer])
            self.hist_grad[layer][0].setData(*r.grad_hist[layer])

    def _fit_views(self) -> None:
        """Views that follow the theory and the simulations drawn for the current parameters."""
        depth = self.params.depth
        for widget, theory, field in ((self.plots["variance_depth"], self.q_theory, "q"),
                                      (self.plots["correlation_depth"], self.c_theory, "c")):
            y = theory.getData()[1]
            values = [y]
            if self._sim is not None:
                mean, sd = getattr(self._sim, f"{field}_mean"), getattr(self._sim, f"{field}_sd")
                values += [mean - sd, mean + sd]
            lo, hi = plots.span(*values)
            # The legend goes in a top corner with head-room above the data, or in a bottom one with
            # room below when the curve climbs to the top right (c^l → 1).
            rising = y is not None and len(y) > 1 and y[-1] > 0.5 * (lo + hi)
            plots.move_legend(widget, "bottom-right" if rising else "top-right")
            room = 0.4 * (hi - lo)
            plots.follow_range(widget, x=(0.0, depth), y=(lo - room, hi) if rising else (lo, hi + room))
        for widget, store in zip(self.hist_plots, (self.hist_pre, self.hist_grad), strict=True):
            data = [item.getData() for pair in store.values() for item in pair]
            # Head-room above the tallest curve keeps the legend off the data.
            plots.follow_range(widget, x=plots.span(*(x for x, _ in data)),
                               y=(0.0, 2.0 * max(plots.span(*(y for _, y in data))[1], 1e-12)))

    def _draw_simulation(self, sim: SimulationSummary | prop.Progress) -> None:
        if isinstance(sim, prop.Progress):
            self.set_progress(sim.fraction)
            return
        self._sim = sim
        layers = np.arange(sim.q_mean.size)
        for dots, bars, mean, sd in ((self.q_sim, self.q_bars, sim.q_mean, sim.q_sd),
                                     (self.c_sim, self.c_bars, sim.c_mean, sim.c_sd)):
            dots.setData(layers, mean)
            bars.setData(x=layers, y=mean, top=sd, bottom=sd)
        for field, store in (("pre", self.hist_pre), ("grad", self.hist_grad)):
            for layer, (_line, dots) in store.items():
                dots.setData(*sim.hist.get((field, layer), (np.zeros(0), np.zeros(0))))
        self._fit_views()
        self.mark_rendered()


def _gaussian_line(item, var: float) -> None:
    """Draw the N(0, var) density (nothing where the variance is not finite and positive)."""
    if not math.isfinite(var) or var <= 0:
        item.setData([], [])
        return
    sd = math.sqrt(var)
    x = np.linspace(-4 * sd, 4 * sd, 161)
    item.setData(x, np.exp(-0.5 * (x / sd) ** 2) / (sd * math.sqrt(2 * math.pi)))
