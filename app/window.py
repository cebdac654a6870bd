"""MainWindow: the seven tabs, menus, presets, status bar, presentation mode and session restore."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from PySide6.QtCore import QEvent, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCursor, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app import __version__
from app import plots as plotting
from app.decks import Deck, read_deck
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
from app.progressive import progressive
from app.runner import Job, Runner, freeze_long_lived
from core.params import Params

#: A tab's first jobs wait (this long at most) for its plots' fits after the build: their workers and their
#: results' repaints would otherwise compete with the build's last paints (a first-switch stall 20–40 %
#: longer, measured on 2 cores).
FIRST_JOBS_WAIT_MS = 600
FIRST_JOBS_POLL_MS = 20

DEVICE_PROBE_DELAY_MS = 3000
#: The runner key of the imports made ahead of the other tabs' first show (after the device probe).
WARM_UP_JOB = "app:warm-up"
#: The keys a presenter's clicker sends, and the deck step each one takes.
DECK_KEYS = {Qt.Key.Key_PageDown: 1, Qt.Key.Key_Right: 1, Qt.Key.Key_PageUp: -1, Qt.Key.Key_Left: -1}
#: The window's size on a screen with room for it; smaller screens get it maximised.
PREFERRED_SIZE = (1500, 950)
#: Room left for the window manager's frame and title bar around the window.
FRAME_ALLOWANCE = (16, 48)
SETTINGS_ORG = "EdgeOfChaos"
SETTINGS_APP = "edge-of-chaos"


def settings() -> QSettings:
    """The app's settings (an INI file; tests point QSettings.setPath at a temporary folder)."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, SETTINGS_ORG, SETTINGS_APP)


def _device_description() -> str:
    from core import device

    return device.describe()


def _warm_up() -> int:
    """Import, in a worker while the first tab is looked at, every panel and engine module and what a
    first training step imports (``core.training.prepare``): an import holds the interpreter lock for
    stretches of 100–200 ms, which froze the window when a tab's first show or first job paid for it.
    Returns the number of modules now imported."""
    import importlib
    import pkgutil

    import core
    from app import panels
    from core.training import prepare

    for package in (panels, core):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            importlib.import_module(module.name)
    prepare()
    return len(sys.modules)


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
        self.fit_to_screen()
        self.runner = Runner(self)
        self.last_error = ""
        #: The IDX image and label files opened with File ▸ Open dataset… (kept by path, never copied).
        self.dataset_paths: tuple[str, str] | None = None
        self.dataset = None
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.tabs, 1)
        #: The current deck step's caption, under the plots (shown while a deck is open).
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        self.caption.setAccessibleName("deck caption")
        self.caption.setVisible(False)
        column.addWidget(self.caption)
        self.setCentralWidget(central)
        #: The open lecture deck (File ▸ Open deck…) and the index of the step on screen.
        self.deck: Deck | None = None
        self.deck_index = 0
        self.panels = _Panels(self)
        #: Whether the warm-up (every panel's and engine's import, in a worker) has finished.
        self.warmed_up = False
        #: Each panel's lecture presets, read once (reading all 44 files on every tab switch is a stall).
        self._presets: dict[str, list] = {}
        #: Parameters for panels not built yet (from a session or a parameter set), applied when built.
        self._waiting: dict[str, Params] = {}
        self._hosts: dict[str, QWidget] = {}
        self._building: set[str] = set()
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
            Job("app:device", _device_description, on_result=self._device_found, label="device")))

    def fit_to_screen(self, screen=None) -> None:
        """Open at the preferred size where the screen's available area has room for it (centred),
        maximised inside that area where it has not: a 1280×720 projector must show the whole window."""
        screen = screen or self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            self.resize(*PREFERRED_SIZE)
            return
        room = screen.availableGeometry()
        frame_w, frame_h = FRAME_ALLOWANCE
        width, height = min(PREFERRED_SIZE[0], room.width() - frame_w), min(PREFERRED_SIZE[1], room.height() - frame_h)
        self.resize(width, height)
        self.move(room.x() + (room.width() - width - frame_w) // 2, room.y() + (room.height() - height - frame_h) // 2)
        if (width, height) != PREFERRED_SIZE:
            self.setWindowState(self.windowState() | Qt.WindowState.WindowMaximized)

    def _build_panel(self, name: str) -> None:
        if name in self._building:
            raise RuntimeError(f"the {name} panel is being built")  # asked for by an event served meanwhile
        self._building.add(name)
        try:
            with progressive():  # the window keeps repainting and its timers run meanwhile
                panel = panel_class(name)(self.runner, params=self._waiting.pop(name, None))
        finally:
            self._building.discard(name)
        panel.message.connect(self.status_message)
        panel.set_controls_visible(self.controls_action.isChecked())
        self._hosts[name].layout().addWidget(panel)
        self.panels.built[name] = panel
        freeze_long_lived()

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
        self._action(file, "Export &animation…", lambda: self.export_animation(), "Ctrl+Shift+E")
        file.addSeparator()
        self._action(file, "Open data&set…", lambda: self.open_dataset())
        self._action(file, "Save &model…", lambda: self.save_model())
        self._action(file, "Open mode&l…", lambda: self.open_model())
        file.addSeparator()
        self._action(file, "Open &deck…", lambda: self.open_deck(), "Ctrl+Shift+D")
        self._action(file, "Close deck", lambda: self.close_deck())
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
        self.focus_action = self._action(view, "&Focus plot (double-click a plot)", self.toggle_focus, "Ctrl+F")
        self._action(view, "Back to all plots", self.unfocus, "Esc")
        self.controls_action = self._action(view, "Show &controls", self.set_controls_visible, "Ctrl+H",
                                            checkable=True)
        self.controls_action.setChecked(True)
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
        # Each in a turn of its own after the build: the panel's first jobs and draws, then its presets'
        # menu (a file read and a dozen actions), so that a tab's first show never holds the window long.
        if self.isVisible():
            QTimer.singleShot(0, self, lambda p=panel: self._first_refresh(p))
        else:  # the launch's first tab: its theory is what the window opens to, nothing is on screen yet
            self._first_refresh(panel)

    def _first_refresh(self, panel: Panel, waited_ms: int = 0) -> None:
        if plotting.fits_pending() and waited_ms < FIRST_JOBS_WAIT_MS and self.isVisible():
            QTimer.singleShot(FIRST_JOBS_POLL_MS, self,
                              lambda: self._first_refresh(panel, waited_ms + FIRST_JOBS_POLL_MS))
            return
        if panel.render_count == 0 and not panel.is_busy():
            # the first draws touch every plot: Qt would repaint them all in one pass
            plotting.paint_in_turns(panel.plots.values())
            panel.refresh()
        QTimer.singleShot(0, self, self._presets_of_current)

    def _presets_of_current(self) -> None:
        panel = self.panels.built.get(self.current_name())
        if panel is not None:  # else a panel is being built, and its own first show brings its presets
            self._rebuild_presets(panel)

    def _rebuild_presets(self, panel: Panel) -> None:
        self.presets_menu.clear()
        try:
            if panel.name not in self._presets:
                self._presets[panel.name] = presets(panel.name) if panel.Params.specs() else []
            items = self._presets[panel.name]
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

    def _device_found(self, text: str) -> None:
        self._set_device(text)
        self.runner.submit(Job(WARM_UP_JOB, _warm_up, on_result=self._warmed_up, label="warming up"))

    def _warmed_up(self, _modules: int) -> None:
        freeze_long_lived()
        self.warmed_up = True

    def _job_done(self, key: str, label: str, seconds: float, device: str) -> None:
        if key.startswith("app:"):
            return
        if device and self.device_label.text().endswith("detecting…"):
            self._set_device(device)
        where = f" on {device}" if device else ""
        self.timing_label.setText(f"{label}: {seconds * 1000:.0f} ms{where}")

    def _job_failed(self, key: str, label: str, message: str) -> None:
        if key == "app:dataset":
            return  # open_dataset reports its own refusal, saying what was kept
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

    # -- datasets and models ----------------------------------------------------------------------
    def open_dataset(self, images: str | None = None, labels: str | None = None, report=None) -> bool:
        """Open an MNIST-format IDX image file and its label file (read off the GUI thread). A bad file is
        reported naming the file and the problem, and the dataset open before stays. True once submitted."""
        if images is None:
            images, _ = QFileDialog.getOpenFileName(self, "Open dataset: the IDX image file", "",
                                                    "IDX image files (*idx3*);;All files (*)")
            if not images:
                return False
        if labels is None:
            labels, _ = QFileDialog.getOpenFileName(self, "Open dataset: the IDX label file",
                                                    str(Path(images).parent), "IDX label files (*idx1*);;All files (*)")
            if not labels:
                return False
        from core.data import open_idx

        report = report or self.report_error
        kept = f"Kept {Path(self.dataset_paths[0]).name}." if self.dataset_paths else "No dataset was opened."
        pair = (str(images), str(labels))

        def opened(dataset) -> None:
            self.dataset, self.dataset_paths = dataset, pair
            shape = "×".join(map(str, dataset.image_shape or (dataset.inputs,)))
            self.status_message(f"Opened {Path(pair[0]).name}: {dataset.n_train + dataset.n_test:,} images of "
                                f"{shape}, {dataset.classes} classes (dataset \"idx\")")

        self.runner.submit(Job("app:dataset", open_idx, args=pair, on_result=opened,
                               on_error=lambda text: report(f"Dataset refused — {text}. {kept}"),
                               label="open dataset"))
        return True

    def save_model(self, path: str | None = None) -> Path | None:
        """Save the current panel's trained network as .safetensors with its JSON spec."""
        from core import models

        panel = self.current_panel()
        trained = panel.trained_model()
        if trained is None:
            self.report_error(f"{panel.title} has no trained model to save.")
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save model", f"{panel.name}.safetensors",
                                                  "Models (*.safetensors)")
            if not path:
                return None
        try:
            out = models.save(path, trained)
        except OSError as err:
            self.report_error(f"Could not save {path}: {err.strerror or err}")
            return None
        self.status_message(f"Saved model {out}")
        return out

    def open_model(self, path: str | None = None) -> bool:
        """Give the current panel the network in a .safetensors model file; a refused file changes nothing."""
        from core import models

        panel = self.current_panel()
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Open model", "", "Models (*.safetensors)")
            if not path:
                return False
        current = panel.trained_model()
        try:
            trained = models.open(path, data_key=current.data_key if current is not None else None)
            panel.use_model(trained)
        except models.ModelFileError as err:
            self.report_error(f"Model refused — {err}. Nothing was changed.")
            return False
        self.status_message(f"Opened model {Path(path).name} in {panel.title}")
        return True

    def export_animation(self, path: str | None = None, param: str | None = None, start: float | None = None,
                         stop: float | None = None, frames: int = 60, plot: str | None = None,
                         theory_only: bool = True) -> Path | None:
        """Sweep one parameter of the current panel and write a GIF or MP4 of a plot or of the panel,
        with progress and Cancel; the panel's parameters are put back afterwards. Without arguments
        it asks for them."""
        from app import animate as anim

        panel = self.current_panel()
        if not panel.Params.specs() or not panel.plots:
            self.report_error(f"{panel.title} has nothing to animate yet.")
            return None
        if param is None:
            from app.animation_dialog import ask

            request = ask(self, panel)
            if request is None:
                return None
            path, param, start, stop, frames, plot, theory_only = request
        try:
            values = anim.check(panel.params, param, start, stop, frames, Path(path))
        except anim.AnimationError as err:
            self.report_error(f"Animation refused — {err}.")
            return None
        original = panel.params
        progress = QProgressDialog(f"Animating {param} from {start:g} to {stop:g}…", "Cancel", 0, len(values), self)
        progress.setWindowModality(Qt.WindowModality.WindowModal)
        progress.setMinimumDuration(300)
        try:
            count = anim.write(path, anim.frames(panel, param, values, plot, theory_only=theory_only),
                               progress=progress.setValue, cancelled=progress.wasCanceled)
        except (anim.AnimationError, OSError) as err:
            self.report_error(f"Could not write {path}: {err}")
            count = 0
        finally:
            progress.close()
            panel.load_params(original)
        if count == 0:
            self.status_message("Animation cancelled; nothing written")
            return None
        self.status_message(f"Wrote {count} frames to {path}")
        return Path(path)

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
            out = write_session(path, self.current_name(), self.all_params(), self.dataset_paths)
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
        if session.dataset is not None and session.dataset != self.dataset_paths:
            missing = [p for p in session.dataset if not Path(p).is_file()]
            if missing:
                self.status_message(f"The session's dataset is gone ({', '.join(Path(p).name for p in missing)} "
                                    "no longer exists): open it again with File ▸ Open dataset…")
            else:
                self.open_dataset(*session.dataset, report=self.status_message)

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
        store.setValue("session", json.dumps(session_document(self.current_name(), self.all_params(),
                                                              self.dataset_paths)))
        store.sync()

    # -- decks ----------------------------------------------------------------------------------
    def open_deck(self, path: str | None = None) -> bool:
        """Open a lecture deck and show its first step; a bad deck is refused, nothing changed."""
        if path is None:
            from app.decks import shipped

            start = str(shipped()[0].parent) if shipped() else ""
            path, _ = QFileDialog.getOpenFileName(self, "Open deck", start, "Decks (*.json)")
            if not path:
                return False
        try:
            deck = read_deck(path)
        except ParamFileError as err:
            self.report_error(f"Deck refused — {err}. Nothing was changed.")
            return False
        if self.deck is None:
            # The clicker's keys are caught app-wide only while a deck is open: a Python filter on every
            # event of the application is a cost each repaint and timer pays.
            QApplication.instance().installEventFilter(self)
        self.deck = deck
        self.show_step(0)
        return True

    def close_deck(self) -> None:
        if self.deck is not None:
            QApplication.instance().removeEventFilter(self)
        self.deck = None
        self.caption.setVisible(False)

    def show_step(self, index: int) -> None:
        """Show step ``index`` of the open deck: its panel, its parameters, its caption."""
        if self.deck is None:
            return
        index = max(0, min(index, len(self.deck.steps) - 1))
        step = self.deck.steps[index]
        self.deck_index = index
        panel = self.show_panel(step.panel)
        panel.load_params(step.params)
        self._show_caption()
        self.status_message(f"{self.deck.title} — step {index + 1} of {len(self.deck.steps)}")

    def _show_caption(self) -> None:
        if self.deck is None:
            return
        step = self.deck.steps[self.deck_index]
        size = 22 if plotting.style()["presentation"] else 13
        self.caption.setStyleSheet(f"font-size: {size}pt; padding: 4px 12px; background: palette(base);")
        self.caption.setText(f"<b>{self.deck_index + 1}/{len(self.deck.steps)}</b>&nbsp; {step.caption}")
        self.caption.setVisible(True)

    def next_step(self) -> None:
        if self.deck is not None:
            self.show_step(self.deck_index + 1)

    def previous_step(self) -> None:
        if self.deck is not None:
            self.show_step(self.deck_index - 1)

    def eventFilter(self, watched, event) -> bool:
        """With a deck open, PageDown/PageUp/→/← (what a presenter's clicker sends) step through it
        whichever widget of this window has the focus: a slider would otherwise take PageDown."""
        if self.deck is not None and event.type() == QEvent.Type.KeyPress and isinstance(watched, QWidget) \
                and watched.window() is self and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            step = DECK_KEYS.get(event.key())
            if step is not None:
                if not event.isAutoRepeat():
                    (self.next_step if step > 0 else self.previous_step)()
                return True
        return super().eventFilter(watched, event)

    # -- view -----------------------------------------------------------------------------------
    def set_presentation(self, on: bool) -> None:
        plotting.set_style(presentation=on)
        app = QApplication.instance()
        font = app.font()
        font.setPointSize(15 if on else 10)
        app.setFont(font)
        if on:
            if not self.isFullScreen():
                self._state_before_presentation = self.windowState()
                self._full_screen_where_seen()
            self.showFullScreen()
        else:
            self.setWindowState(getattr(self, "_state_before_presentation", Qt.WindowState.WindowNoState)
                                & ~Qt.WindowState.WindowFullScreen)
            self.show()
        self.presentation_action.setChecked(on)
        self._show_caption()

    def _full_screen_where_seen(self) -> None:
        # Full screen goes to the screen Qt has on record for the window, which can lag a move (one
        # made while maximised, say): presentation mode must fill the projector the window is seen on.
        handle = self.windowHandle()
        seen = QGuiApplication.screenAt(self.frameGeometry().center())
        if handle is not None and seen is not None and seen is not handle.screen():
            handle.setScreen(seen)

    def toggle_focus(self) -> None:
        """Enlarge the plot under the mouse (else the first plot) to the whole panel, or put it back."""
        panel = self.current_panel()
        if panel.focused_plot() is not None:
            panel.focus_plot(None)
            return
        under = QApplication.widgetAt(QCursor.pos())
        key = next((k for k, w in panel.plots.items() if under is not None and (under is w or w.isAncestorOf(under))),
                   next(iter(panel.plots), None))
        if key is not None:
            panel.focus_plot(key)

    def unfocus(self) -> None:
        if self.current_panel().focused_plot() is not None:
            self.current_panel().focus_plot(None)

    def set_controls_visible(self, on: bool) -> None:
        """Show or hide the control column of every panel (Ctrl+H): more room for the plots."""
        for panel in self.panels.built.values():
            panel.set_controls_visible(on)
        self.controls_action.setChecked(on)

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
        self.close_deck()
        self._remember_session()
        self.runner.shutdown()
        super().closeEvent(event)
