"""Jacobian Spectra: the singular values of a deep random network's input–output Jacobian (lecture 3).

Plots: the eigenvalue density of JJᵀ at several depths (simulated torch networks as dots, the
free-probability density as lines, shallow to deep by colour), the mean and variance of the spectrum
through depth for Gaussian and orthogonal weights, the largest and smallest singular values and the
share of singular values within [½, 2] through depth, and the two universality classes of
Pennington, Schoenholz & Ganguli 2018 (THEORY.md §3).

This module draws; the work it schedules (theory, simulation, universality, the critical σ_w) is in
:mod:`app.panels.spectra_jobs`, which needs no Qt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer

from app import plots
from app.panels.base import Panel
from app.panels.spectra_jobs import (
    FLOOR_DECADES,
    LN10,
    UNIVERSAL_X,
    Critical,
    DepthTheory,
    MomentsTheory,
    Request,
    SimStep,
    StoppedError,  # noqa: F401  (where callers found it before the split)
    Universality,
    _cumulative,
    critical_job,
    shown_depths,
    simulation_job,
    theory_depths,
    theory_job,
    universality_job,
)
from app.panels.trainability import LearningSpeedSection
from core import spectra as spec
from core.activations import LABELS as PHI_LABELS
from core.spectra import SpectraParams

#: A simulated eigenvalue this close (in ln λ) to a point mass of the theory belongs to it.
ATOM_TOL = 1e-4
#: Values further than this from 1 (in decades) do not fit a float64 plot and are left out.
MAX_DECADES = 300.0
#: Palette indices from cool (shallow) to warm (deep).
DEPTH_RAMP = (5, 0, 2, 4, 1)
UNIVERSAL_TOP = 1.8
UNIVERSAL_NAMES = {"bernoulli": "Bernoulli class", "smooth": "smooth class"}

THEORY_KEYS = {"phi", "alpha", "weights", "sigma_w", "sigma_b", "depth"}
SIM_KEYS = THEORY_KEYS | {"width", "seed"}


def depth_colour(index: int, count: int) -> int:
    """Palette index of the ``index``-th of ``count`` depths, spread over the cool-to-warm ramp."""
    if count <= 1:
        return DEPTH_RAMP[-1]
    return DEPTH_RAMP[round(index * (len(DEPTH_RAMP) - 1) / (count - 1))]


def _plottable(log10_values) -> np.ndarray:
    """Mask of values that fit a float64 plot (finite, within 10^±300)."""
    v = np.asarray(log10_values, float)
    return np.isfinite(v) & (np.abs(v) <= MAX_DECADES)


# -- the panel ------------------------------------------------------------------------------------

@dataclass
class DepthItems:
    """The marks of one depth on the spectrum plot: theory line, simulation dots, atom sticks."""

    line: pg.PlotDataItem
    dots: pg.PlotDataItem
    sticks: list


class SpectraPanel(Panel):
    name = "spectra"
    title = "Jacobian Spectra"
    Params = SpectraParams
    references = (
        ("Pennington, Schoenholz, Ganguli 2017, Resurrecting the sigmoid in deep learning through "
         "dynamical isometry: theory and practice", "arXiv:1711.04735"),
        ("Pennington, Schoenholz, Ganguli 2018, The emergence of spectral universality in deep networks",
         "arXiv:1802.09979"),
        ("Saxe, McClelland, Ganguli 2014, Exact solutions to the nonlinear dynamics of learning in deep "
         "linear neural networks", "arXiv:1312.6120"),
        ("Poole, Lahiri, Raghu, Sohl-Dickstein, Ganguli 2016, Exponential expressivity in deep neural "
         "networks through transient chaos", "arXiv:1606.05340"),
        ("Mezzadri 2007, How to generate random matrices from the classical compact groups",
         "arXiv:math-ph/0609050"),
        ("Belinschi 2003, The atoms of the free multiplicative convolution of two probability "
         "distributions", "arXiv:math/0211331"),
    )

    # -- construction ---------------------------------------------------------------------------
    def build(self) -> None:
        self._theory: dict[int, DepthTheory] = {}
        self._moments: MomentsTheory | None = None
        self._sims: dict[int, SimStep] = {}
        self._condition_shown = False   # whether the condition plots show anything (to clear)
        self._request: Request | None = None
        self._theory_steps = (0, 1)
        self._depth_items: dict[int, DepthItems] = {}
        self._log_x_drawn: tuple = ()
        self._universality: Universality | None = None

        sp = plots.make_plot("Spectrum of JJᵀ", "eigenvalue λ of JJᵀ", "density", legend="top-left")
        sp.getPlotItem().legend.setColumnCount(2)
        plots.legend_key(sp, "lines: theory", "dots: simulation")
        self.add_plot("spectrum", sp, 0, 0, 2, 2)

        self.moment_items = {}
        for col, weights in enumerate(spec.WEIGHTS):
            mp = plots.make_plot(_moments_title(weights, True), "depth L", "E[λ],  Var λ",
                                 log_x=True, log_y=True, legend="top-left")
            mp.getPlotItem().legend.setColumnCount(2)
            plots.legend_key(mp, "theory", "simulation")
            items = {"mean": plots.theory_line(mp, "mean E[λ] = χᴸ", 0),
                     "var": plots.theory_line(mp, "variance", 1),
                     "mean_sim": _csv_name(plots.sim_dots(mp, None, 0, errors=False)[0], "mean (simulation)"),
                     "var_sim": _csv_name(plots.sim_dots(mp, None, 1, errors=False)[0], "variance (simulation)")}
            self.moment_items[weights] = items
            self.add_plot(f"moments_{weights}", mp, 2, col)

        sv = plots.make_plot("Extreme singular values", "depth L", "singular value σ of J",
                             log_x=True, log_y=True, legend="top-left")
        sv.getPlotItem().legend.setColumnCount(2)
        plots.legend_key(sv, "theory", "simulation")
        self.sigma_max_line = plots.theory_line(sv, "σ<sub>max</sub>", 1)
        self.sigma_min_line = plots.theory_line(sv, "σ<sub>min</sub>", 0)
        self.sigma_max_edge = plots.theory_line(sv, "edge, N → ∞", 1, dash=True, width_scale=0.6)
        self.sigma_min_edge = _csv_name(plots.theory_line(sv, None, 0, dash=True, width_scale=0.6), "σ_min edge")
        _csv_name(self.sigma_max_edge, "σ_max edge")
        _csv_name(self.sigma_max_line, "σ_max (theory)")
        _csv_name(self.sigma_min_line, "σ_min (theory)")
        self.sigma_max_dots = _csv_name(plots.sim_dots(sv, None, 1, errors=False)[0], "σ_max (simulation)")
        self.sigma_min_dots = _csv_name(plots.sim_dots(sv, None, 0, errors=False)[0], "σ_min (simulation)")
        self.band = (_csv_name(plots.reference_line(sv, None), "σ = 1/2"),
                     _csv_name(plots.reference_line(sv, None), "σ = 2"))
        self.add_plot("singular_values", sv, 0, 2)

        fr = plots.make_plot("Share of σ in [½, 2]", "depth L", "fraction of singular values",
                             log_x=True, legend="bottom-left")
        self.iso_line = plots.theory_line(fr, "theory", 2)
        self.iso_dots, _ = plots.sim_dots(fr, "simulation", 2, errors=False)
        fr.getPlotItem().setYRange(0.0, 1.05, padding=0)
        self.add_plot("isometry", fr, 1, 2)

        un = plots.make_plot("Universality, L → ∞, σ₀² = ¼", "eigenvalue λ of JJᵀ",
                             "density ρ(λ)", legend="top-right")
        self.universal_lines = {kind: plots.theory_line(un, UNIVERSAL_NAMES[kind], 1 if kind == "bernoulli" else 0)
                                for kind in spec.UNIVERSALITY_CLASSES}
        self.universal_atom = plots.theory_line(un, "Bernoulli point mass", 1, dash=True)
        un.getPlotItem().setRange(xRange=(0.0, UNIVERSAL_X[-1]), yRange=(0.0, UNIVERSAL_TOP), padding=0)
        self.add_plot("universality", un, 2, 2)

        for col in range(3):
            self.grid.setColumnStretch(col, 1)
        for row in range(3):
            self.grid.setRowStretch(row, 1)

        self.critical_button = self.add_button(
            "Set critical σ_w (χ = 1)", self.set_critical,
            "σ_w on the order-to-chaos line χ = σ_w² E[φ'(h)²] = 1 at the current φ and σ_b")
        self._progress_timer = QTimer(self)
        self._progress_timer.setInterval(200)
        self._progress_timer.timeout.connect(self._poll_progress)
        # Trained networks (Pennington et al. 2017, Fig. 5): learning speed against the spectrum's width.
        self.learning_speed = LearningSpeedSection(self)
        # The curves of the first parameters, made here, where the window serves its event loop between
        # them (made by the first refresh they were one ~0.1 s stall).
        self._ensure_depth_items(shown_depths(self.params.depth))

    # -- parameter handling ---------------------------------------------------------------------
    def update_visibility(self) -> None:
        self.controls.set_visible("alpha", self.params.phi == "shifted_relu")

    def set_critical(self) -> None:
        """Put σ_w on the critical line; the search runs off the GUI thread (it takes ~0.1–0.5 s)."""
        self.submit("critical", critical_job, self.params, on_result=self._critical_arrived,
                    label="critical σ_w")

    def _critical_arrived(self, r: Critical) -> None:
        p = self.params
        if _phi_key(r.params) != _phi_key(p) or r.params.sigma_b != p.sigma_b:
            return  # φ or σ_b moved on while it ran
        lo, hi = p.spec("sigma_w").lo, p.spec("sigma_w").hi
        if r.sigma_w is None or not lo <= r.sigma_w <= hi:
            reason = r.problem or f"it is σ_w = {r.sigma_w:.4g}, outside [{lo:g}, {hi:g}]"
            self.show_notice(f"No critical σ_w to set for {p.activation()} at σ_b = {p.sigma_b:g}: {reason}.")
            return
        self.set_params(sigma_w=round(r.sigma_w, 6))
        self.show_notice(f"σ_w = {r.sigma_w:.4f} puts {p.activation()} on the critical line χ = 1 "
                         f"(σ_b = {p.sigma_b:g}).")

    def schedule(self, changed: set[str]) -> None:
        p = self.params
        if "alpha" in changed and p.phi != "shifted_relu":
            changed = changed - {"alpha"}  # α only shapes the shifted ReLU
        if changed - {"xscale"}:
            self.show_notice("")
        if self._universality is None:
            self.submit("universality", universality_job, on_result=self._draw_universality,
                        label="universality classes")
        self._title_universality()
        self._ensure_depth_items(shown_depths(p.depth))
        if changed & THEORY_KEYS:
            self._theory_steps = (0, 1 + len(theory_depths(p.depth)))
            self.submit("theory", theory_job, p, on_partial=self._theory_arrived,
                        on_result=self._theory_finished, label="theory (free probability)")
        if changed & SIM_KEYS:
            self._start_simulation(p)
        self._draw_spectrum()
        self._draw_moments()
        self._draw_condition()
        if not changed & SIM_KEYS and not changed & THEORY_KEYS:
            self.mark_rendered()
        self.learning_speed.schedule(changed)

    def _start_simulation(self, p: SpectraParams) -> None:
        if self._request is not None:
            self._request.stop()
        self._request = Request(p.depth, self.runner)
        self._sims = {}
        self.submit("simulation", simulation_job, p, self._request, on_partial=self._sim_arrived,
                    on_result=lambda _last: self._poll_progress(), delay_ms=150,
                    label=f"simulation (N = {p.width}, L = {p.depth})")
        self._progress_timer.start()

    def cancel(self) -> None:
        if self._request is not None:
            self._request.stop()
        super().cancel()

    def show_error(self, text: str) -> None:
        """An engine error: shown above the plots, which are cleared so no stale result stays up."""
        super().show_error(text)
        if text:
            self._theory, self._sims, self._moments = {}, {}, None
            self._draw_spectrum()
            self._draw_moments()
            self._draw_condition()

    def _poll_progress(self) -> None:
        parts = []
        if self.runner.is_busy(self.job_key("simulation")) and self._request is not None:
            parts.append(self._request.fraction)
        if self.runner.is_busy(self.job_key("theory")):
            done, total = self._theory_steps
            parts.append(done / total)
        if parts:
            self.set_progress(min(parts))
        else:
            self._progress_timer.stop()

    # -- results --------------------------------------------------------------------------------
    def _theory_arrived(self, r) -> None:
        # a result redraws most of the panel's plots: Qt would repaint all six in one pass (≈80 ms)
        plots.paint_in_turns(self.plots.values())
        done, total = self._theory_steps
        self._theory_steps = (done + 1, total)
        if isinstance(r, MomentsTheory):
            self._moments = r
            wanted = set(theory_depths(r.params.depth))
            self._theory = {d: t for d, t in self._theory.items() if d in wanted}
            self._draw_moments()
        else:
            self._theory[r.depth] = r
            if r.depth in self._depth_items:
                self._draw_spectrum()
            self._draw_condition()
        self.mark_rendered()

    def _theory_finished(self, _last) -> None:
        stale = [d for d, t in self._theory.items() if not _same(t.params, self.params, THEORY_KEYS)]
        for d in stale:
            del self._theory[d]
        if stale:
            self._draw_spectrum()
            self._draw_condition()
            self.mark_rendered()

    def _sim_arrived(self, s: SimStep) -> None:
        if not _same(s.params, self.params, SIM_KEYS):
            return
        self._sims[s.depth] = s
        plots.paint_in_turns(self.plots.values())
        if s.depth in self._depth_items:
            self._draw_spectrum()
        self._draw_moments()
        self._draw_condition()
        self._poll_progress()
        self.mark_rendered()

    # -- the spectrum ---------------------------------------------------------------------------
    def _ensure_depth_items(self, depths: list[int]) -> None:
        if sorted(self._depth_items) == depths:
            return
        plot = self.plots["spectrum"]
        legend = plot.getPlotItem().legend
        for items in self._depth_items.values():
            for item in (items.line, items.dots, *items.sticks):
                plot.removeItem(item)
                legend.removeItem(item)
        self._depth_items = {}
        for i, depth in enumerate(depths):
            colour = depth_colour(i, len(depths))
            line = plots.theory_line(plot, f"L = {depth}", colour)
            dots, _ = plots.sim_dots(plot, None, colour, errors=False)
            self._depth_items[depth] = DepthItems(line, dots, [])
        self._log_x_drawn = ()

    def _draw_spectrum(self) -> None:
        plot = self.plots["spectrum"]
        log_x = self.params.xscale == "log"
        if self._log_x_drawn != (log_x,):
            self._log_x_drawn = (log_x,)
            plot.getPlotItem().setLogMode(x=log_x, y=False)
            y_label = "density of log₁₀ λ" if log_x else "density ρ(λ)"
            plots.set_label(plot, "left", y_label)
            legend = plot.getPlotItem().legend
            corner = "top-left" if log_x else "top-right"
            anchor = (0, 0) if log_x else (1, 0)
            legend.anchor(itemPos=anchor, parentPos=anchor, offset=plots.LEGEND_OFFSETS[corner])
        spans, tops, zero = [], [], 0.0
        for depth, items in sorted(self._depth_items.items()):
            theory, sim = self._theory.get(depth), self._sims.get(depth)
            span, top = self._draw_depth(depth, items, theory, sim, log_x)
            if span is not None:
                spans.append(span)
            tops.append(top)
            if theory is not None:
                zero = max(zero, theory.zero_mass)
                plots.rename(plot, items.line, _depth_label(depth, theory, sim))
        y_top = 1.2 * max(tops + [0.0]) or 1.0
        for items in self._depth_items.values():
            for stick in items.sticks:
                x, h = stick.eoc_atom
                stick.setData([x, x], [0.0, h * 0.9 * y_top])
        title = "Spectrum of JJᵀ, shallow → deep" if len(self._depth_items) > 1 else "Spectrum of JJᵀ"
        if zero > 0:
            title = f"Spectrum of JJᵀ · point mass {_percent(zero)} at λ = 0, not drawn"
        plots.set_title(plot, title)
        self._set_spectrum_range(spans, y_top, log_x)

    def _draw_depth(self, depth: int, items: DepthItems, theory: DepthTheory | None, sim: SimStep | None,
                    log_x: bool) -> tuple[tuple[float, float] | None, float]:
        """Draw one depth; its bulk (ln λ, low and high) and the tallest bin average."""
        what = "density of log10 λ" if log_x else "density ρ(λ)"
        _csv_name(items.line, f"L = {depth} theory {what}")
        _csv_name(items.dots, f"L = {depth} simulation {what}")
        bulk: list[float] = []
        atoms = theory.finite_atoms() if theory is not None else []
        continuous = theory is not None and theory.ell.size > 1 and theory.density.any()
        if continuous:
            _set_curve(items.line, theory.ell, theory.density, log_x)
            bulk += [_bulk_low(theory.ell, theory.density), theory.hi]
        else:
            items.line.setData([], [])
        bulk += [loc for loc, _ in atoms]
        self._draw_sticks(depth, items, atoms)
        top, edges = 0.0, None
        if sim is not None:
            ell = sim.resolved()
            ell = ell[np.isfinite(ell)]
            for loc, _ in atoms:
                ell = ell[np.abs(ell - loc) > ATOM_TOL]
            edges = _bin_edges(ell, log_x)
            centres, heights = _histogram(ell, edges, sim.ell.size, log_x)
            items.dots.setData(10.0 ** centres if log_x else centres, heights)
            if ell.size:
                bulk += [float(np.quantile(ell, 0.002)), float(ell[-1])]
            top = _peak(heights, log_x)
        else:
            items.dots.setData([], [])
        if continuous:
            if edges is None:
                edges = _bin_edges(theory.ell[theory.density > 0], log_x)
            if edges is not None:
                top = max(top, _peak(_bin_average(theory, edges, log_x), log_x))
        bulk = [b for b in bulk if math.isfinite(b)]
        return ((min(bulk), max(bulk)) if bulk else None), top

    def _draw_sticks(self, depth: int, items: DepthItems, atoms: list[tuple[float, float]]) -> None:
        """Point masses as dashed sticks, height proportional to the mass (the legend gives it)."""
        plot = self.plots["spectrum"]
        while len(items.sticks) > len(atoms):
            plot.removeItem(items.sticks.pop())
        while len(items.sticks) < len(atoms):
            items.sticks.append(plots.theory_line(plot, None, items.line.eoc_role[1], dash=True,
                                                  width_scale=0.8))
        for stick, (loc, mass) in zip(items.sticks, atoms, strict=True):
            _csv_name(stick, f"L = {depth} point mass {mass:.4g}")
            if abs(loc) / LN10 > MAX_DECADES:
                stick.eoc_atom = (1.0, 0.0)
                continue
            stick.eoc_atom = (math.exp(loc), mass)

    def _set_spectrum_range(self, spans: list, y_top: float, log_x: bool) -> None:
        item = self.plots["spectrum"].getPlotItem()
        if spans:
            lo = min(s[0] for s in spans)
            hi = max(s[1] for s in spans)
            if log_x:
                pad = 0.05 * max(hi - lo, 0.5)
                lo, hi = (lo - pad) / LN10, (hi + pad) / LN10
                lo, hi = max(lo, -MAX_DECADES), min(hi, MAX_DECADES)
            else:
                lo, hi = 0.0, 1.04 * math.exp(min(hi, MAX_DECADES * LN10))
            item.setXRange(lo, hi, padding=0)
        # head-room above the tallest bin for the legend
        item.setYRange(0.0, y_top * 1.15, padding=0)

    # -- moments and the condition of J ---------------------------------------------------------
    def _draw_moments(self) -> None:
        m = self._moments
        for weights, items in self.moment_items.items():
            if m is not None:
                for key in ("mean", "var"):
                    y = (m.log10_mean if key == "mean" else m.log10_var)[weights]
                    ok = _plottable(y)
                    items[key].setData(m.depths[ok], 10.0 ** y[ok])
            else:
                items["mean"].setData([], [])
                items["var"].setData([], [])
            sims = [s for _, s in sorted(self._sims.items()) if s.params.weights == weights]
            for key, field in (("mean_sim", "log10_mean"), ("var_sim", "log10_var")):
                y = np.array([getattr(s, field) for s in sims])
                ok = _plottable(y)
                items[key].setData(np.array([s.depth for s in sims])[ok], 10.0 ** y[ok])
            plots.set_title(self.plots[f"moments_{weights}"], _moments_title(weights, weights == self.params.weights))
            _fit_log_y(self.plots[f"moments_{weights}"], [i.getOriginalDataset()[1] for i in items.values()])

    def _draw_condition(self) -> None:
        """σ_max, σ_min and the share in [½, 2] through depth. The theory lines are the classical
        locations of the largest and smallest of N eigenvalues (the law's 1 − ½/N and ½/N quantiles),
        which is what a width-N net shows; dashed, the N → ∞ edges of the support."""
        if not self._theory and not self._sims and not self._condition_shown:
            return  # nothing to draw and nothing to clear: a tab's first show needn't pay ~10 ms for it
        self._condition_shown = bool(self._theory or self._sims)
        theories = [t for _, t in sorted(self._theory.items())]
        depths = np.array([t.depth for t in theories], float)
        n = self.params.width
        for line, edge, q, ends in ((self.sigma_max_line, self.sigma_max_edge, 1 - 0.5 / n,
                                     [t.hi for t in theories]),
                                    (self.sigma_min_line, self.sigma_min_edge, 0.5 / n,
                                     [t.lo for t in theories])):
            y = np.array([classical_location(t, q) for t in theories]) / (2 * LN10)
            ok = _plottable(y)
            line.setData(depths[ok], 10.0 ** y[ok])
            y = np.array(ends) / (2 * LN10)
            ok = _plottable(y)
            edge.setData(depths[ok], 10.0 ** y[ok])
        self.iso_line.setData(depths, np.array([t.iso for t in theories]))
        sims = [s for _, s in sorted(self._sims.items())]
        sd = np.array([s.depth for s in sims], float)
        for dots, field in ((self.sigma_max_dots, "log10_sigma_max"), (self.sigma_min_dots, "log10_sigma_min")):
            y = np.array([getattr(s, field) for s in sims])
            ok = _plottable(y)
            dots.setData(sd[ok], 10.0 ** y[ok])
        self.iso_dots.setData(sd, np.array([s.iso for s in sims]))
        x_end = max(self.params.depth, 2)
        for line, level in zip(self.band, (0.5, 2.0), strict=True):
            line.setData([1.0, x_end], [level, level])
        _fit_log_y(self.plots["singular_values"],
                   [i.getOriginalDataset()[1] for i in (self.sigma_max_line, self.sigma_min_line, self.sigma_max_edge,
                                                        self.sigma_min_edge, self.sigma_max_dots,
                                                        self.sigma_min_dots)] + [[0.5, 2.0]], room=0.45)

    # -- universality ---------------------------------------------------------------------------
    def _draw_universality(self, u: Universality) -> None:
        self._universality = u
        for kind, line in self.universal_lines.items():
            line.setData(u.x, u.density[kind])
        (where, mass), = u.atoms["bernoulli"] or ((0.0, 0.0),)
        self.universal_atom.setData([where, where], [0.0, 0.9 * UNIVERSAL_TOP * mass])
        plots.rename(self.plots["universality"], self.universal_atom, f"its point mass, {_percent(mass)}")
        self.mark_rendered()

    def _title_universality(self) -> None:
        """Point at the class of the current φ in the legend (linear φ belongs to neither)."""
        act = self.params.activation()
        plot = self.plots["universality"]
        for kind, line in self.universal_lines.items():
            here = act.name != "linear" and act.bernoulli == (kind == "bernoulli")
            name = UNIVERSAL_NAMES[kind] + (f" ← {PHI_LABELS[act.name]}" if here else "")
            plots.rename(plot, line, name)


# -- drawing helpers ------------------------------------------------------------------------------

def classical_location(t: DepthTheory, q: float) -> float:
    """ln λ where the theory law's CDF reaches q (NaN below the drawn range: 0 or under the floor)."""
    finite = t.finite_atoms()
    if not t.ell.size:
        locs = sorted(finite)
        if not locs:
            return math.nan
        cdf = t.below + np.cumsum([m for _, m in locs])
        return locs[min(int(np.searchsorted(cdf, q)), len(locs) - 1)][0]
    cdf = t.below + _cumulative(t.ell, t.density)
    for loc, mass in finite:
        cdf = cdf + mass * (t.ell >= loc)
    if q <= t.below:
        return math.nan
    k = int(np.searchsorted(cdf, q))
    if k == 0:
        return float(t.ell[0])
    if k >= cdf.size:
        return t.hi
    a, b = cdf[k - 1], cdf[k]
    w = (q - a) / (b - a) if b > a else 1.0
    return float(t.ell[k - 1] + w * (t.ell[k] - t.ell[k - 1]))


def _moments_title(weights: str, simulated: bool) -> str:
    name = "Gaussian" if weights == "gaussian" else "orthogonal"
    return f"Moments · {name} W" + ("" if simulated else " (theory)")


def _fit_log_y(plot, series: list, room: float = 0.4) -> None:
    """Fit a log y axis to the data, leaving the top ``room`` of the height free for the legend."""
    values = [np.log10(np.asarray(y, float)) for y in series if y is not None and len(y)]
    values = [v[np.isfinite(v)] for v in values]
    values = np.concatenate(values) if values else np.zeros(0)
    if not values.size:
        return
    lo, hi = float(values.min()), float(values.max())
    span = max(hi - lo, 1.0)
    lo -= 0.05 * span
    plot.getPlotItem().setYRange(lo, lo + (hi + 0.05 * span - lo) / (1.0 - room), padding=0)


def _same(a: SpectraParams, b: SpectraParams, keys: set[str]) -> bool:
    """Whether ``a`` and ``b`` agree on ``keys`` (α counting only for the shifted ReLU)."""
    keys = keys - {"alpha"} if a.phi == b.phi != "shifted_relu" else keys
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def _phi_key(p: SpectraParams) -> tuple:
    """What fixes φ: its name, and α for the shifted ReLU."""
    return (p.phi, p.alpha) if p.phi == "shifted_relu" else (p.phi,)


def _csv_name(item, name: str):
    """Name a curve for the CSV export only: items made without a name stay out of the legend."""
    item.opts["name"] = name
    return item


def _depth_label(depth: int, theory: DepthTheory, sim: SimStep | None) -> str:
    """'L = 16', with its point masses away from 0 and the mass below the drawn range."""
    parts = [f"L = {depth}"]
    for loc, mass in theory.finite_atoms():
        if mass >= 0.005:
            text = f"{_percent(mass)} at λ = {math.exp(loc):.3g}" if abs(loc) < 690 else f"{_percent(mass)} atom"
            if sim is not None:
                text += f" (sim {_percent(np.mean(np.abs(sim.ell - loc) <= ATOM_TOL))})"
            parts.append(text)
    hidden = theory.below - theory.zero_mass
    if hidden >= 0.01:
        parts.append(f"{_percent(hidden)} below 10<sup>−{FLOOR_DECADES}</sup> λ<sub>max</sub>")
    return " · ".join(parts)


def _percent(share: float) -> str:
    """50%, 7.5%: one decimal below 10 %, where rounding would hide the value."""
    return f"{share:.1%}" if share < 0.1 else f"{share:.0%}"


def _set_curve(item, ell: np.ndarray, density: np.ndarray, log_x: bool) -> None:
    """The theory density of ln λ drawn as the density of log₁₀ λ (log x) or of λ (linear x)."""
    keep = _plottable(ell / LN10)
    ell, density = ell[keep], density[keep]
    lam = np.exp(ell)
    item.setData(lam, density * LN10 if log_x else density / lam)


def _bulk_low(ell: np.ndarray, density: np.ndarray) -> float:
    """ln λ below which only 0.2 % of the drawn theory mass lies (a long thin tail is not shown)."""
    cum = _cumulative(ell, density)
    if cum[-1] <= 0:
        return float(ell[0])
    return float(np.interp(0.002 * cum[-1], cum, ell))


def _to_u(ell, log_x: bool):
    """ln λ in the spectrum plot's own coordinate: log₁₀ λ (log x) or λ (linear x)."""
    with np.errstate(over="ignore"):
        return np.asarray(ell) / LN10 if log_x else np.exp(ell)


def _bin_edges(ell: np.ndarray, log_x: bool) -> np.ndarray | None:
    """Histogram bin edges (plot coordinate) for eigenvalues ``ell`` (ln λ): ~1.2 √N bins, 10 to 48,
    over the bulk (log x: from the 0.2 % quantile up; linear x: from 0 up)."""
    ell = ell[np.isfinite(ell)]
    if ell.size < 2 or abs(ell.max()) / LN10 > MAX_DECADES:
        return None
    n = int(np.clip(round(1.2 * math.sqrt(ell.size)), 10, 48))
    hi = float(_to_u(ell.max(), log_x))
    lo = float(_to_u(np.quantile(ell, 0.002), log_x)) if log_x else 0.0
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi + 1e-9 * max(1.0, abs(hi)), n + 1)


def _histogram(ell: np.ndarray, edges: np.ndarray | None, total: int, log_x: bool) -> tuple:
    """Bin centres (plot coordinate) and densities normalised by all ``total`` eigenvalues, so that
    the dots integrate to the share they hold, as the theory density does."""
    if edges is None:
        return np.zeros(0), np.zeros(0)
    counts, _ = np.histogram(_to_u(ell, log_x), bins=edges)
    return 0.5 * (edges[1:] + edges[:-1]), counts / (total * np.diff(edges))


def _bin_average(theory: DepthTheory, edges: np.ndarray, log_x: bool) -> np.ndarray:
    """The theory density averaged over each bin: what a histogram dot should show."""
    if theory.ell.size < 2:
        return np.zeros(edges.size - 1)
    cum = _cumulative(theory.ell, theory.density)
    with np.errstate(divide="ignore"):
        ell_edges = edges * LN10 if log_x else np.log(np.maximum(edges, 0.0))
    mass = np.diff(np.interp(ell_edges, theory.ell, cum, left=0.0, right=cum[-1]))
    return mass / np.diff(edges)


def _peak(heights: np.ndarray, log_x: bool) -> float:
    """The tallest bin; on a linear axis the bin at λ = 0 is left out, where ρ may diverge."""
    h = heights[1:] if not log_x else heights
    h = h[np.isfinite(h)]
    return float(h.max()) if h.size else 0.0
