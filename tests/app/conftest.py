"""pytest-qt fixtures: QSettings redirected, Qt warnings fail tests, every worker stopped afterwards."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, qapp):
    """Point the app's INI settings at a temporary folder so no test sees another's session."""
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    yield


@pytest.fixture(autouse=True)
def reset_plot_style():
    from app import plots

    yield
    plots.set_style(theme="light", presentation=False)


@pytest.fixture
def window(qtbot):
    """The real main window, shown offscreen; closed (session saved, workers stopped) afterwards."""
    from app.window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()
    assert win.runner.active_threads() == 0, "a worker thread outlived the window"


def wait_rendered(qtbot, panel, timeout=20_000):
    """Block until the panel has nothing left to compute and has drawn at least once."""
    qtbot.waitUntil(lambda: not panel.is_busy() and panel.render_count > 0, timeout=timeout)


def type_value(panel, name: str, text: str):
    """Type ``text`` into the box of control ``name`` and press Enter, as a user would; the box."""
    box = panel.controls.controls[name].edit
    box.setText(text)
    box.setModified(True)
    box.editingFinished.emit()
    return box


def open_panel(qtbot, panel_cls, timeout=60_000, **params):
    """A panel with its own runner, shown at lecture size and rendered once with ``params``.

    Returns (panel, runner); :func:`close_panel` stops it and checks that no worker outlives it.
    """
    from app.runner import Runner

    runner = Runner()
    panel = panel_cls(runner)
    # stopped when the test ends, passed or failed: a failed test's runner went on delivering results to
    # its deleted panel, and kept the pacer on, in the tests that came after it
    qtbot.addWidget(panel, before_close_func=lambda _panel: runner.shutdown(30_000))
    panel.resize(1400, 900)
    panel.show()
    panel.set_params(**params)
    wait_rendered(qtbot, panel, timeout=timeout)
    return panel, runner


def close_panel(runner, timeout_ms=30_000) -> None:
    assert runner.shutdown(timeout_ms), "workers did not stop"
    assert runner.active_threads() == 0
