"""The main window end to end: tabs, menus, files, sessions, export, restore, shutdown."""

from __future__ import annotations

import json

import pytest
from PySide6.QtWidgets import QMenu

from app.panels import PANELS
from app.paramsets import read_session
from app.window import MainWindow, settings
from tests.app.conftest import wait_rendered

TABS = ["Depth & Sawtooth", "Signal Propagation", "Jacobian Spectra", "Optimizers", "Loss Landscape",
        "Pruning", "Robustness"]


def test_seven_tabs_in_the_mission_order(window):
    assert [window.tabs.tabText(i).replace("&&", "&") for i in range(window.tabs.count())] == TABS
    assert list(window.panels) == ["depth", "propagation", "spectra", "optimizers", "landscape", "pruning",
                                   "robustness"]


def test_every_tab_opens_and_unbuilt_ones_say_so(window, qtbot):
    for i, entry in enumerate(PANELS):
        window.tabs.setCurrentIndex(i)
        panel = window.panels[entry.name]
        # Opened means drawn; its long jobs (a training run, λ_max along 1,500 GD steps) are cancelled
        # rather than awaited, as when a lecturer moves on to the next tab.
        qtbot.waitUntil(lambda p=panel: p.render_count > 0, timeout=60_000)
        panel.cancel()
        if entry.module is None:
            assert panel.plots == {}
            texts = " ".join(w.text() for w in panel.findChildren(type(window.device_label)))
            assert "Not built yet" in texts


def test_the_device_probe_is_followed_by_the_warm_up_of_every_module(window, qtbot):
    import gc
    import pkgutil
    import sys

    import torch  # noqa: F401 — frozen once imported: the warm-up's own freeze is what is checked

    import core
    from app import panels
    from app.runner import _freeze_modules
    from app.window import WARM_UP_JOB
    from core import training
    _freeze_modules()
    window._device_found("cpu")
    assert window.device_label.text() == "device: cpu" and window.runner.is_busy(WARM_UP_JOB)
    assert not window.warmed_up
    alive = ["made before the warm-up ended"]          # a tracked object, as the imports' are
    qtbot.waitUntil(lambda: not window.runner.is_busy(WARM_UP_JOB), timeout=120_000)
    assert window.warmed_up
    # what lives by then lives as long as the app: out of the collector's generations, whose full
    # collections walk every object in them while every thread waits
    assert all(o is not alive for o in gc.get_objects())
    assert not window.last_error
    expected = [m.name for package in (panels, core)
                for m in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")]
    assert len(expected) > 40 and [m for m in expected if m not in sys.modules] == []
    assert training._prepared


def test_a_panel_built_on_its_first_show_is_kept_out_of_full_collections(window, qtbot):
    import gc

    assert "spectra" not in window.panels.built
    frozen = gc.get_freeze_count()
    panel = window.show_panel("spectra")
    assert gc.get_freeze_count() > frozen
    assert all(o is not panel for o in gc.get_objects())     # the collector's generations leave it alone


def test_a_tabs_first_jobs_wait_for_its_plots_fits_and_then_paint_in_turns(window, qtbot, monkeypatch):
    import time

    from app import plots
    from app import window as window_module

    pending = [True]
    monkeypatch.setattr(plots, "fits_pending", lambda: pending[0])
    held = []
    monkeypatch.setattr(plots, "paint_in_turns", lambda widgets: held.append(list(widgets)))
    panel = window.show_panel("pruning")
    qtbot.wait(150)                                   # the build's fits are still to come: no jobs yet
    assert panel.render_count == 0 and not panel.is_busy() and held == []
    pending[0] = False
    qtbot.waitUntil(lambda: panel.is_busy() or panel.render_count > 0, timeout=2000)
    assert held == [list(panel.plots.values())]       # the first draws' repaints are spread over turns
    # fits that never settle hold the first jobs back FIRST_JOBS_WAIT_MS at most
    pending[0] = True
    other = window.show_panel("robustness")
    start = time.monotonic()
    qtbot.waitUntil(lambda: other.is_busy() or other.render_count > 0, timeout=5000)
    waited = time.monotonic() - start
    assert window_module.FIRST_JOBS_WAIT_MS / 1000 <= waited + 0.05


def test_menus_have_the_promised_actions_with_shortcuts(window):
    actions = {}
    for menu in window.menuBar().findChildren(QMenu):
        for action in menu.actions():
            if action.text():
                actions[action.text().replace("&", "")] = action.shortcut().toString()
    for name in ["Open parameter set…", "Save parameter set…", "Export plots…", "Open session…",
                 "Save session…", "Quit", "Presentation mode", "Dark plot theme", "References for this panel",
                 "About Edge of Chaos"]:
        assert actions.get(name), f"{name} is missing or has no shortcut"
    assert actions["Presentation mode"] == "F11"


def test_presets_menu_lists_the_current_panels_presets_and_applies_them(window, qtbot):
    window.show_panel("propagation")
    # the menu is made a turn after the tab's first show (not in the turn that builds the panel)
    qtbot.waitUntil(lambda: any("Pretorius" in a.text() for a in window.presets_menu.actions()), timeout=5000)
    action = next(a for a in window.presets_menu.actions() if "dropout" in a.text())
    action.trigger()
    p = window.panels["propagation"].params
    assert (p.phi, p.noise, p.keep_prob) == ("relu", "dropout", 0.8)


def test_parameter_set_round_trip_through_the_menu_actions(window, tmp_path):
    panel = window.panels["propagation"]
    window.show_panel(panel.name)
    panel.set_params(sigma_w=2.2, phi="erf", depth=17)
    path = window.save_params(str(tmp_path / "set.json"))
    panel.set_params(sigma_w=1.0, phi="tanh")
    assert window.open_params(str(path))
    assert (panel.params.sigma_w, panel.params.phi, panel.params.depth) == (2.2, "erf", 17)


BAD_FILES = {
    "not_json.json": "{",
    "wrong_format.json": json.dumps({"format": "x", "version": 1}),
    "wrong_version.json": json.dumps({"format": "edge-of-chaos/params", "version": 2, "panel": "propagation",
                                      "params": {}}),
    "unknown_panel.json": json.dumps({"format": "edge-of-chaos/params", "version": 1, "panel": "nope",
                                      "params": {}}),
    "unknown_field.json": json.dumps({"format": "edge-of-chaos/params", "version": 1, "panel": "propagation",
                                      "params": {"sigma_w": 2.0, "bogus": 1}}),
    "wrong_type.json": json.dumps({"format": "edge-of-chaos/params", "version": 1, "panel": "propagation",
                                   "params": {"sigma_w": "two"}}),
    "out_of_range.json": json.dumps({"format": "edge-of-chaos/params", "version": 1, "panel": "propagation",
                                     "params": {"sigma_w": 2.0, "depth": 100000}}),
    "nan.json": '{"format": "edge-of-chaos/params", "version": 1, "panel": "propagation", '
                '"params": {"sigma_w": NaN}}',
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_parameter_files_are_refused_and_nothing_changes(window, tmp_path, name):
    panel = window.panels["propagation"]
    panel.set_params(sigma_w=1.7)
    before = panel.params
    path = tmp_path / name
    path.write_text(BAD_FILES[name])
    assert not window.open_params(str(path))
    assert panel.params == before
    assert "refused" in window.last_error and name in window.last_error


def test_bad_session_is_refused_and_nothing_changes(window, tmp_path):
    panel = window.panels["propagation"]
    before = panel.params
    path = tmp_path / "session.json"
    path.write_text(json.dumps({"format": "edge-of-chaos/session", "version": 1, "tab": "propagation",
                                "panels": {"propagation": {"sigma_w": 1.9}, "spectra": {"width": -5}}}))
    assert not window.open_session(str(path))
    assert panel.params == before
    assert "width" in window.last_error


def test_session_round_trip(window, tmp_path):
    window.panels["propagation"].set_params(sigma_b=0.7, noise="gaussian", noise_std=0.3)
    window.show_panel("propagation")
    path = window.save_session(str(tmp_path / "session.json"))
    session = read_session(path)
    assert session.tab == "propagation"
    window.panels["propagation"].set_params(sigma_b=0.1)
    window.tabs.setCurrentIndex(0)
    assert window.open_session(str(path))
    assert window.current_name() == "propagation"
    assert window.panels["propagation"].params.sigma_b == 0.7


def test_last_session_comes_back_on_restart(qtbot):
    first = MainWindow()
    qtbot.addWidget(first)
    first.panels["propagation"].set_params(sigma_w=2.75, phi="erf")
    first.show_panel("propagation")
    first.close()
    assert settings().value("session")
    second = MainWindow()
    qtbot.addWidget(second)
    assert second.current_name() == "propagation"
    assert (second.panels["propagation"].params.sigma_w, second.panels["propagation"].params.phi) == (2.75, "erf")
    second.close()


def test_a_corrupt_stored_session_is_ignored_not_fatal(qtbot):
    store = settings()
    store.setValue("session", '{"format": "edge-of-chaos/session", "version": 1, "tab": "nowhere"}')
    store.sync()
    win = MainWindow()
    qtbot.addWidget(win)
    assert win.current_name() == "depth"
    win.close()


def test_export_writes_png_svg_csv_and_the_parameter_set(window, qtbot, tmp_path):
    panel = window.panels["propagation"]
    window.show_panel(panel.name)
    panel.set_params(width=200, depth=8, seeds=2)
    wait_rendered(qtbot, panel)
    paths = window.export_plots(str(tmp_path), png_width=800)
    names = {p.name for p in paths}
    for key in panel.plots:
        for ext in ("png", "svg", "csv"):
            assert f"propagation_{key}.{ext}" in names
            assert (tmp_path / f"propagation_{key}.{ext}").stat().st_size > 100
    assert "<svg" in (tmp_path / "propagation_variance_map.svg").read_text()
    assert "propagation_params.json" in names


def test_presentation_mode_and_dark_theme_toggle(window):
    from app import plots

    window.set_presentation(True)
    assert plots.style()["presentation"] and window.isFullScreen()
    window.set_presentation(False)
    window.set_dark(True)
    assert plots.style()["theme"] == "dark"
    window.set_dark(False)


def test_status_bar_names_the_device_and_the_last_computation(window, qtbot):
    qtbot.waitUntil(lambda: "CPU" in window.device_label.text() or "CUDA" in window.device_label.text(),
                    timeout=30_000)
    panel = window.panels["propagation"]
    window.show_panel(panel.name)
    wait_rendered(qtbot, panel)
    qtbot.waitUntil(lambda: " ms" in window.timing_label.text(), timeout=10_000)


def test_only_the_shown_panel_is_built_at_start_and_others_on_first_use(qtbot):
    win = MainWindow(restore=False, tab="propagation")
    qtbot.addWidget(win)
    assert set(win.panels.built) == {"propagation"}
    win.tabs.setCurrentIndex(0)
    assert set(win.panels.built) == {"propagation", "depth"}
    assert win.current_panel() is win.panels["depth"]
    win.close()


def test_a_session_reaches_panels_not_built_yet_and_is_saved_back_unchanged(qtbot, tmp_path):
    path = tmp_path / "session.json"
    path.write_text(json.dumps({"format": "edge-of-chaos/session", "version": 1, "tab": "propagation",
                                "panels": {"propagation": {"sigma_w": 1.9}, "spectra": {"width": 300}}}))
    win = MainWindow(restore=False, tab="propagation")
    qtbot.addWidget(win)
    assert win.open_session(str(path))
    assert "spectra" not in win.panels.built
    saved = read_session(win.save_session(str(tmp_path / "again.json")))
    assert saved.params["spectra"].width == 300 and saved.params["propagation"].sigma_w == 1.9
    assert saved.params["depth"] == type(saved.params["depth"])()  # never opened: its defaults
    assert win.panels["spectra"].params.width == 300
    assert win.panels["spectra"].controls.controls["width"].edit.text() == "300"
    win.close()


def test_the_way_to_the_first_window_imports_neither_torch_nor_scipy():
    # torch (~1.5 s) and scipy's submodules (~0.5 s) load in workers, after the theory is drawn: on
    # the way to the first window they would put the launch over its two-second budget.
    import os
    import subprocess
    import sys

    code = ("import sys; from PySide6.QtWidgets import QApplication; app = QApplication([]); "
            "from app.window import MainWindow; w = MainWindow(restore=False, tab='propagation'); w.show(); "
            "app.processEvents(); print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'scipy', 'sympy'})); "
            "w.runner.shutdown()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
