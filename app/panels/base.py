"""The Panel: a tab bound to one engine. Controls on the left, plots on the right.

Data flow (ARCHITECTURE.md): a control or a drag calls :meth:`Panel.set_params`, which makes a new
frozen Params and calls :meth:`Panel.schedule` with the names that changed. The subclass submits
jobs to the runner (cheap theory at once, heavy simulation debounced) and, when their results land on
the GUI thread, sets data on its existing plot items and calls :meth:`Panel.mark_rendered`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import shiboken6
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app import plots as plotting
from app.controls import ControlColumn
from app.plot_grid import PlotGrid
from app.runner import Job, Runner
from core.params import ParamError, Params


class Panel(QWidget):
    """Base class of every tab.

    Subclasses set ``name``, ``title``, ``Params``, ``references`` and implement :meth:`build`
    (make plots with :meth:`add_plot`, buttons with :meth:`add_button`) and :meth:`schedule`.
    """

    #: Emitted each time the plots catch up with the current params: first when the theory is
    #: drawn, again as simulation results land.
    rendered = Signal()
    #: A short message for the status bar (refusals, warnings).
    message = Signal(str)

    name = "panel"
    title = "Panel"
    Params: type[Params] = Params
    #: (citation, arXiv id or other identifier) shown in Help ▸ References.
    references: tuple[tuple[str, str], ...] = ()
    #: Parameters not shown as controls (set by drags or buttons only).
    hidden_params: tuple[str, ...] = ()

    def __init__(self, runner: Runner | None = None, parent: QWidget | None = None, params: Params | None = None):
        super().__init__(parent)
        self.runner = runner if runner is not None else Runner(self)
        self.params = params if params is not None else self.Params()
        self.plots: dict[str, object] = {}
        self._job_keys: set[str] = set()
        self._scheduled_once = False
        self.render_count = 0

        outer = QHBoxLayout(self)
        #: The control column (hidden and shown with :meth:`set_controls_visible`, Ctrl+H).
        self.side = QWidget()
        side = QVBoxLayout(self.side)
        side.setContentsMargins(0, 0, 0, 0)
        self.controls = ControlColumn(self.Params, self._on_control, hidden=self.hidden_params)
        self.buttons = QVBoxLayout()
        column = QWidget()
        column_layout = QVBoxLayout(column)
        column_layout.addWidget(self.controls)
        column_layout.addLayout(self.buttons)
        column_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(column)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(330)
        scroll.setMaximumWidth(420)
        self._side_scroll = scroll
        side.addWidget(scroll, 1)

        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        busy_row = QHBoxLayout()
        busy_row.addWidget(self.progress, 1)
        busy_row.addWidget(self.cancel_button)
        self.busy_box = QWidget()
        self.busy_box.setLayout(busy_row)
        self.busy_box.setVisible(False)
        side.addWidget(self.busy_box)
        outer.addWidget(self.side)

        right = QVBoxLayout()
        self.error_banner = self._make_banner("#c0392b", "panel error")
        self.banner = self._make_banner("#9a6700", "panel message")
        right.addWidget(self.error_banner)
        right.addWidget(self.banner)
        self.grid = QGridLayout()
        self.grid.setSpacing(6)
        self.grid.setContentsMargins(0, 0, 0, 0)
        #: The plots: the panel's grid reflowed to the room it gets, one plot focused at a time.
        self.plot_grid = PlotGrid(self.grid)
        right.addWidget(self.plot_grid, 1)
        outer.addLayout(right, 1)

        self.runner.long_running.connect(self._on_long_running)
        self.build()
        self.controls.set_values(self.params)
        self.update_visibility()
        self._fit_side()

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:  # presentation mode's larger text, once the controls have it
            QTimer.singleShot(0, self, self._fit_side)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        handle = self.window().windowHandle()
        if handle is not None and getattr(self, "_screen_watched", None) is not handle:
            # Moved to another screen (another width, another device pixel ratio): the column refits.
            self._screen_watched = handle
            handle.screenChanged.connect(lambda _screen: QTimer.singleShot(0, self, self._fit_side))

    def _fit_side(self) -> None:
        """The control column as wide as its controls want, up to a third of the screen (the plots
        need the rest): where that is too narrow, a control's box goes under its label."""
        scroll = self._side_scroll
        screen = self.screen()
        cap = max(300, min(560, int(0.34 * screen.availableGeometry().width()))) if screen is not None else 420
        form = getattr(self.controls, "form", None)
        column = scroll.widget()
        extra = scroll.verticalScrollBar().sizeHint().width() + 2 * scroll.frameWidth() + 4

        def wanted() -> int:
            # Measured from the controls as they are now (a font change has not reached the layouts'
            # cached hints yet): the widest of what the column shows.
            for layout in (form, column.layout()):
                if layout is not None:
                    layout.invalidate()
            return max(column.sizeHint().width(), column.minimumSizeHint().width()) + extra

        if form is not None:
            form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        want = wanted()
        if want > cap and form is not None:
            form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapAllRows)
            want = wanted()
        width = max(300, min(cap, want))
        scroll.setMinimumWidth(width)
        scroll.setMaximumWidth(max(width, min(cap, 420)))

    # -- for subclasses -------------------------------------------------------------------------
    def build(self) -> None:
        """Create plots and buttons."""

    def schedule(self, changed: set[str]) -> None:
        """Submit the jobs that ``changed`` parameters invalidate (all of them on first show)."""

    def update_visibility(self) -> None:
        """Show only the controls that matter for the current params (e.g. α for shifted ReLU)."""

    def add_plot(self, key: str, widget, row: int, col: int, rowspan: int = 1, colspan: int = 1):
        widget.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.grid.addWidget(widget, row, col, rowspan, colspan)
        self.plots[key] = widget
        scene = getattr(widget, "scene", None)
        if callable(scene) and hasattr(scene(), "sigMouseClicked"):
            scene().sigMouseClicked.connect(lambda ev, w=widget: ev.double() and self.toggle_focus(w))
        self.plot_grid.schedule()
        return widget

    # -- focus and room -------------------------------------------------------------------------
    def focused_plot(self) -> str | None:
        """The key of the plot enlarged to fill the panel, or None."""
        return next((k for k, w in self.plots.items() if w is self.plot_grid.focused), None)

    def focus_plot(self, key: str | None) -> None:
        """Enlarge plot ``key`` to the whole plot area (None: put every plot back)."""
        self.plot_grid.focus(self.plots[key] if key is not None else None)

    def toggle_focus(self, widget) -> None:
        self.plot_grid.focus(None if self.plot_grid.focused is widget else widget)

    def set_controls_visible(self, on: bool) -> None:
        """Show or hide the control column (the plots take its room)."""
        self.side.setVisible(on)

    def when_painted(self, fn: Callable[[], None], timeout_ms: int = 1000) -> None:
        """Call ``fn`` once the plots have been painted with what was just drawn: in the turn of the event
        loop after a plot's next repaint (at once in a later turn where nothing is shown to paint, and
        after ``timeout_ms`` at the latest). Work that would hold the interpreter lock (torch's import,
        a simulation) waits for it, so that the theory reaches the screen first."""
        shown = next((w.viewport() for w in self.plots.values()
                      if hasattr(w, "viewport") and w.isVisible()), None)
        if shown is None:
            QTimer.singleShot(0, self, fn)
            return
        _PaintWatch(shown, fn, timeout_ms, self)

    def add_button(self, text: str, slot: Callable[[], None], tip: str = "") -> QPushButton:
        button = QPushButton(text)
        button.clicked.connect(slot)
        if tip:
            button.setToolTip(tip)
        self.buttons.addWidget(button)
        return button

    def submit(self, key: str, fn: Callable, *args, on_result=None, on_partial=None, on_error=None,
               delay_ms: int = 0, label: str = "", device: str = "", **kwargs) -> None:
        """Run ``fn(*args, **kwargs)`` off the GUI thread under this panel's job ``key``; a failure
        is shown above the plots (and passed to ``on_error`` when given)."""
        full = self.job_key(key)
        self._job_keys.add(full)
        if on_error is not None:
            def failed(text: str, also=on_error) -> None:
                self.show_error(text)
                also(text)
        else:
            failed = self.show_error
        self.runner.submit(Job(key=full, fn=fn, args=args, kwargs=kwargs, on_result=on_result,
                               on_partial=on_partial, on_error=failed, delay_ms=delay_ms,
                               label=f"{self.title} · {label or key}", device=device))

    def job_key(self, key: str) -> str:
        """The runner's key for this panel's job ``key``."""
        return f"{self.name}:{key}"

    def mark_rendered(self) -> None:
        """Call after drawing results that belong to the current params."""
        self.render_count += 1
        for widget in self.plots.values():
            plotting.schedule_fit(widget)  # new data: the legend may have to move off it
        self.rendered.emit()

    @staticmethod
    def _make_banner(colour: str, name: str) -> QLabel:
        label = QLabel("")
        label.setWordWrap(True)
        label.setVisible(False)
        label.setAccessibleName(name)
        label.setStyleSheet(f"color: {colour}; font-weight: bold; font-size: 13pt;")
        return label

    def show_error(self, text: str) -> None:
        """An engine or drawing failure, shown above the plots until the parameters change."""
        self.error_banner.setText(text)
        self.error_banner.setVisible(bool(text))

    def show_notice(self, text: str) -> None:
        """A non-error message above the plots, e.g. 'the variance diverges'; '' hides it."""
        self.banner.setText(text)
        self.banner.setVisible(bool(text))

    # -- trained models (File ▸ Save model… / Open model…) -----------------------------------
    def trained_model(self):
        """The panel's current ``core.models.Trained``, or None (training panels override this)."""
        return None

    def use_model(self, trained) -> None:
        """Replace the panel's trained network by ``trained`` (a ``core.models.Trained``); raise
        ``core.models.ModelFileError`` naming the problem to refuse it (training panels override this)."""
        from core.models import ModelFileError

        raise ModelFileError(f"{self.title} has no model to replace")

    # -- parameters -----------------------------------------------------------------------------
    def set_params(self, **changes) -> None:
        """Apply ``changes``; raises ParamError (state untouched) when a value is refused."""
        new = self.params.replace(**changes)
        changed = {k for k in new.to_dict() if getattr(new, k) != getattr(self.params, k)}
        self.params = new
        self.controls.set_values(new)
        self.controls.clear_refusal()
        if not self._scheduled_once:
            self.update_visibility()
            self.refresh()
        elif changed:
            self.show_error("")
            self.update_visibility()
            self.schedule(changed)

    def load_params(self, params: Params) -> None:
        """Replace every parameter at once (a parameter set, a session, a preset)."""
        self.set_params(**params.to_dict())

    def refresh(self) -> None:
        """Recompute everything for the current params."""
        self._scheduled_once = True
        self.show_error("")
        self.schedule({s.name for s in self.Params.specs()})

    def _on_control(self, name: str, value) -> None:
        try:
            if isinstance(value, ParamError):
                raise value
            self.set_params(**{name: value})
        except ParamError as err:
            label = self.Params.spec(err.field).label if err.field in self.controls.controls else err.field
            text = f"{label}: {err.problem}. Kept {getattr(self.params, err.field, '')}."
            self.controls.show_refusal(text)
            self.controls.set_values(self.params)
            self.message.emit(text)

    # -- jobs -----------------------------------------------------------------------------------
    def is_busy(self) -> bool:
        return any(self.runner.is_busy(k) for k in self._job_keys)

    def cancel(self) -> None:
        for key in self._job_keys:
            self.runner.cancel(key)
        self.busy_box.setVisible(False)
        self.message.emit(f"{self.title}: cancelled")

    def _on_long_running(self, key: str, label: str, running: bool) -> None:
        if key not in self._job_keys:
            return
        if running:
            self.progress.setFormat(f"{label.split(' · ')[-1]}…")
        self.busy_box.setVisible(running or self.is_busy() and self.busy_box.isVisible())

    def set_progress(self, fraction: float | None) -> None:
        if fraction is None:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * max(0.0, min(1.0, fraction))))

    # -- export ---------------------------------------------------------------------------------
    def export(self, directory, png_width: int = 1600) -> list[Path]:
        """Every plot as PNG, SVG and CSV plus this panel's parameter set; the paths written."""
        from app.paramsets import params_document

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for key, widget in self.plots.items():
            written += plotting.export_plot(widget, directory, f"{self.name}_{key}", png_width)
        path = directory / f"{self.name}_params.json"
        path.write_text(json.dumps(params_document(self.name, self.params), indent=2, ensure_ascii=False))
        written.append(path)
        return written


class _PaintWatch(QObject):
    """Calls ``fn`` once, in the turn of the event loop after ``widget``'s next paint (or after ``timeout_ms``)."""

    def __init__(self, widget: QWidget, fn: Callable[[], None], timeout_ms: int, parent: QObject):
        super().__init__(parent)
        self._fn = fn
        self._widget = widget
        widget.installEventFilter(self)
        QTimer.singleShot(timeout_ms, self, self._fire)

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Paint:
            QTimer.singleShot(0, self, self._fire)   # after the paint (the rest of the window's repaint too)
        return False

    def _fire(self) -> None:
        if self._fn is None:
            return
        fn, self._fn = self._fn, None
        if shiboken6.isValid(self._widget):
            self._widget.removeEventFilter(self)
        self.deleteLater()
        fn()


class PlaceholderPanel(Panel):
    """A tab whose engine is not built yet: it says so, and draws no fake plot."""

    planned = ""

    def build(self) -> None:
        text = QLabel(f"<h2>{self.title}</h2><p><b>Not built yet.</b> {self.planned}</p>"
                      "<p>This tab shows no plot until its engine exists: nothing here is simulated or "
                      "made up.</p>")
        text.setWordWrap(True)
        text.setTextFormat(Qt.TextFormat.RichText)
        text.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.grid.addWidget(text, 0, 0)

    def schedule(self, changed: set[str]) -> None:
        self.mark_rendered()

    def export(self, directory, png_width: int = 1600) -> list[Path]:
        return []
