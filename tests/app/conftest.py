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
