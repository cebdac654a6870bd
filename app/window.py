"""MainWindow: the seven tabs, menus, presets, status bar, presentation mode and session restore."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app import __version__
from app import plots as plotting
from app.panels import NAMES, PANELS, panel_class, params_class
from app.panels.base import Panel
from app.paramsets import (
    ParamFileError,
    Session,
    presets,
    read_params,
    read_session,
    session_document,
    session_from_document,
    write_params,
    write_session,
)
from app.runner import Job, Runner
from core.params import Params

DEVICE_PROBE_DELAY_MS = 3000
SETTINGS_ORG = "EdgeOfChaos"
SETTINGS_APP = "edge-of-chaos"


def settings() -> QSettings:
    """The app's settings (an INI file; tests point QSettings.setPath at a temporary folder)."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, SETTINGS_ORG, SETTINGS_APP)


def _device_description() -> str:
    from core import device

    return device.describe()


class _Panels(Mapping):
    """Every panel by name, built on first use: a lecture opens on one tab, and building all seven
    (~1 s of widgets) would sit between the launch and the first plot."""

    def __init__(self, window: MainWindow):
        self._window = window
        self.built: dict[str, Panel] = {}

    def __getitem__(self, name: str) -> Panel:
        if name not in self.built:
            if name not in NAMES:
                raise KeyError(name)
            self._window._build_panel(name)
        return self.built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(NAMES)

    def __len__(self) -> int:
        return len(NAMES)


class MainWindow(QMainWindow):
    """The application window; ``panels`` maps each panel name to its Panel (built when first shown
    or asked for)."""

    def __init__(self, restore: bool = True, tab: str | None = None):
        super().__init__()
        self.setWindowTitle("Edge of Chaos")
        self.resize(1500, 950)
        self.runner = Runner(self)
        self.last_error = ""
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.setCentralWidget(self.tabs)
        self.panels = _Panels(self)
        #: Parameters for panels not built yet (from a session or a parameter set), applied when built.
        self._waiting: dict[str, Params] = {}
        self._hosts: dict[str, QWidget] = {}
        for entry in PANELS:
            host = QWidget()
            host.eoc_panel = entry.name
            QVBoxLayout(host).setContentsMargins(0, 0, 0, 0)
            self._hosts[entry.name] = host
            self.tabs.addTab(host, entry.title.replace("&", "&&"))  # a bare & would make a mnemonic
        self._build_status_bar()
        self._build_menus()
        if restore:
            self._restore_session()
        if tab is not None:
            self.tabs.setCurrentWidget(self._hosts[tab])
        self.tabs.currentChanged.connect(self._tab_changed)
        self._tab_changed(self.tabs.currentIndex())
        # torch takes ~2 s to import: find the device only once the first plots are up.
        QTimer.singleShot(DEVICE_PROBE_DELAY_MS, self, lambda: self.runner.submit(
            Job("app:device", _device_description, on_result=self._set_device, label="device")))

    def _build_panel(self, name: str) -> None:
        panel = panel_class(name)(self.runner, params=self._waiting.pop(name, None))
        panel.message.connect(self.status_message)
        self._hosts[name].layout().addWidget(panel)
        self.panels.built[name] = panel

    def show_panel(self, name: str) -> Panel:
        """Bring panel ``name``'s tab to the front (building it if need be); the panel."""
        self.tabs.setCurrentWidget(self._hosts[name])
        return self.panels[name]

    # -- chrome ---------------------------------------------------------------------------------
    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.device_label = QLabel("device: detecting…")
        self.timing_label = QLabel("")
        bar.addPermanentWidget(self.timing_label)
        bar.addPermanentWidget(self.device_label)
        self.runner.done.connect(self._job_done)
        self.runner.failed.connect(self._job_failed)

    def _action(self, menu, text: str, slot, shortcut=None, checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        self._action(file, "&Open parameter set…", lambda: self.open_params(), QKeySequence.StandardKey.Open)
        self._action(file, "&Save parameter set…", lambda: self.save_params(), QKeySequence.StandardKey.Save)
        self._action(file, "&Export plots…", lambda: self.export_plots(), "Ctrl+E")
        file.addSeparator()
        self._action(file, "Open se&ssion…", lambda: self.open_session(), "Ctrl+Shift+O")
        self._action(file, "Save session…", lambda: self.save_session(), "Ctrl+Shift+S")
        file.addSeparator()
        self._action(file, "&Quit", self.close, "Ctrl+Q")

        self.presets_menu = bar.addMenu("&Presets")

        view = bar.addMenu("&View")
        self.presentation_action = self._action(view, "&Presentation mode", self.set_presentation, "F11",
                                                checkable=True)
        self.dark_action = self._action(view, "&Dark plot theme", self.set_dark, "Ctrl+D", checkable=True)
        view.addSeparator()
        self._action(view, "&Recompute this panel", lambda: self.current_panel().refresh(), "F5")

        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&References for this panel", self.show_references, "F1")
        self._action(help_menu, "&About Edge of Chaos", self.show_about, "Shift+F1")

    def current_panel(self) -> Panel:
        return self.panels[self.current_name()]

    def current_name(self) -> str:
        return self.tabs.currentWidget().eoc_panel

    def _tab_changed(self, index: int) -> None:
        host = self.tabs.widget(index)
        if host is None:
            return
        panel = self.panels[host.eoc_panel]
        if panel.render_count == 0 and not panel.is_busy():
            panel.refresh()
        self._rebuild_presets(panel)

    def _rebuild_presets(self, panel: Panel) -> None:
        self.presets_menu.clear()
        try:
            items = presets(panel.name) if panel.Params.specs() else []
        except ParamFileError as err:
            self.report_error(f"A shipped preset is broken: {err}")
            items = []
        if not items:
            action = self.presets_menu.addAction(f"No presets for {panel.title}")
            action.setEnabled(False)
            return
        for i, preset in enumerate(items):
            shortcut = f"Alt+{i + 1}" if i < 9 else None
            action = self._action(self.presets_menu, preset.title,
                                  lambda _=False, p=preset: self.apply_preset(p), shortcut)
            if preset.notes:
                action.setToolTip(preset.notes)
                action.setStatusTip(preset.notes)
        self.presets_menu.setToolTipsVisible(True)

    def apply_preset(self, preset) -> None:
        self.panels[preset.panel].load_params(preset.params)
        self.status_message(f"Preset: {preset.title}")

    # -- status ---------------------------------------------------------------------------------
    def status_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 8000)

    def report_error(self, text: str) -> None:
        """Tell the user, without a modal dialog that would block a lecture (or a test)."""
        self.last_error = text
        self.statusBar().showMessage(text, 15000)
        self._open_box(QMessageBox.Icon.Warning, "Edge of Chaos", text)

    def _open_box(self, icon, title: str, text: str) -> None:
        """A non-modal message box that deletes itself when closed."""
        box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, self)
        box.setTextFormat(Qt.TextFormat.RichText if text.startswith("<") else Qt.TextFormat.PlainText)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def _set_device(self, text: str) -> None:
        self.device_label.setText(f"device: {text}")

    def _job_done(self, key: str, label: str, seconds: float, device: str) -> None:
        if key.startswith("app:"):
            return
        if device and self.device_label.text().endswith("detecting…"):
            self._set_device(device)
        where = f" on {device}" if device else ""
        self.timing_label.setText(f"{label}: {seconds * 1000:.0f} ms{where}")

    def _job_failed(self, key: str, label: str, message: str) -> None:
        self.last_error = f"{label}: {message}"
        self.statusBar().showMessage(self.last_error, 15000)

    # -- files ----------------------------------------------------------------------------------
    def open_params(self, path: str | None = None) -> bool:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Open parameter set", "", "Parameter sets (*.json)")
            if not path:
                return False
        try:
            name, params = read_params(path)
        except ParamFileError as err:
            self.report_error(f"Parameter set refused — {err}. Nothing was changed.")
            return False
        panel = self.show_panel(name)
        panel.load_params(params)
        self.status_message(f"Loaded {Path(path).name} into {panel.title}")
        return True

    def save_params(self, path: str | None = None) -> Path | None:
        panel = self.current_panel()
        if not panel.Params.specs():
            self.report_error(f"{panel.title} has no parameters to save yet.")
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save parameter set", f"{panel.name}.json",
                                                  "Parameter sets (*.json)")
            if not path:
                return None
        try:
            out = write_params(path, panel.name, panel.params)
        except OSError as err:
            self.report_error(f"Could not save {path}: {err.strerror or err}")
            return None
        self.status_message(f"Saved {out}")
        return out

    def export_plots(self, directory: str | None = None, png_width: int | None = None) -> list[Path]:
        panel = self.current_panel()
        if directory is None:
            directory = QFileDialog.getExistingDirectory(self, f"Export {panel.title} plots to")
            if not directory:
                return []
        if png_width is None:
            png_width, ok = QInputDialog.getInt(self, "PNG resolution", "Width of each PNG in pixels:",
                                                1920, 400, 8000, 100)
            if not ok:
                return []
        try:
            paths = panel.export(directory, png_width)
        except OSError as err:
            self.report_error(f"Could not export to {directory}: {err.strerror or err}")
            return []
        self.status_message(f"Exported {len(paths)} files to {directory}")
        return paths

    def all_params(self) -> dict:
        """Each panel's parameters, without building a panel for it."""
        out = {}
        for name in NAMES:
            if name in self.panels.built:
                out[name] = self.panels.built[name].params
            elif name in self._waiting:
                out[name] = self._waiting[name]
            elif (cls := params_class(name)) is not None and cls.specs():
                out[name] = cls()
        return {name: p for name, p in out.items() if p.specs()}

    def save_session(self, path: str | None = None) -> Path | None:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save session", "session.json", "Sessions (*.json)")
            if not path:
                return None
        try:
            out = write_session(path, self.current_name(), self.all_params())
        except OSError as err:
            self.report_error(f"Could not save {path}: {err.strerror or err}")
            return None
        self.status_message(f"Saved session {out}")
        return out

    def open_session(self, path: str | None = None) -> bool:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Open session", "", "Sessions (*.json)")
            if not path:
                return False
        try:
            session = read_session(path)
        except ParamFileError as err:
            self.report_error(f"Session refused — {err}. Nothing was changed.")
            return False
        self.apply_session(session)
        return True

    def apply_session(self, session: Session) -> None:
        for name, params in session.params.items():
            if name in self.panels.built:
                self.panels.built[name].load_params(params)
            else:
                self._waiting[name] = params
        self.show_panel(session.tab)

    def _restore_session(self) -> None:
        text = settings().value("session", "")
        if not text:
            return
        try:
            self.apply_session(session_from_document(json.loads(text), "last session"))
        except (ParamFileError, ValueError, TypeError) as err:
            self.status_message(f"The last session could not be restored ({err}); starting fresh.")

    def _remember_session(self) -> None:
        store = settings()
        store.setValue("session", json.dumps(session_document(self.current_name(), self.all_params())))
        store.sync()

    # -- view -----------------------------------------------------------------------------------
    def set_presentation(self, on: bool) -> None:
        plotting.set_style(presentation=on)
        app = QApplication.instance()
        font = app.font()
        font.setPointSize(15 if on else 10)
        app.setFont(font)
        if on:
            self.showFullScreen()
        else:
            self.showNormal()
        self.presentation_action.setChecked(on)

    def set_dark(self, on: bool) -> None:
        plotting.set_style(theme="dark" if on else "light")
        self.dark_action.setChecked(on)

    def show_references(self) -> None:
        panel = self.current_panel()
        if panel.references:
            items = "".join(f"<li>{cite} — <i>{ident}</i></li>" for cite, ident in panel.references)
            text = f"<h3>{panel.title}</h3><ul>{items}</ul>"
        else:
            text = f"<h3>{panel.title}</h3><p>No references yet: this panel is not built.</p>"
        self._open_box(QMessageBox.Icon.Information, "References", text)

    def show_about(self) -> None:
        text = (f"<h3>Edge of Chaos {__version__}</h3><p>The theory of deep learning, live: theory as solid "
                "lines, real torch networks as dots. After Oxford's <i>Theories of Deep Learning</i> "
                "course.</p>")
        self._open_box(QMessageBox.Icon.Information, "About", text)

    # -- lifetime -------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        self._remember_session()
        self.runner.shutdown()
        super().closeEvent(event)
