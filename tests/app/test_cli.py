"""The command line: --version, headless render, and one clear line with exit status 2 on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ENV = dict(os.environ, QT_QPA_PLATFORM="offscreen")


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "app.main", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout)


def small_params(tmp_path, panel="propagation", **params):
    path = tmp_path / "small.json"
    path.write_text(json.dumps({"format": "edge-of-chaos/params", "version": 1, "panel": panel,
                                "params": params or {"width": 60, "depth": 4, "seeds": 1}}))
    return path


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip().startswith("edge-of-chaos ")


def test_render_writes_every_plot_and_the_parameter_set(tmp_path):
    out = run_cli("render", "propagation", "--params", str(small_params(tmp_path)), "--out", str(tmp_path / "o"),
                  "--png-width", "600")
    assert out.returncode == 0, out.stderr
    names = {p.name for p in (tmp_path / "o").iterdir()}
    for stem in ("phase", "variance_map", "correlation_map", "variance_depth", "correlation_depth",
                 "activations_hist", "gradients_hist", "depth_scales"):
        assert {f"propagation_{stem}.png", f"propagation_{stem}.svg", f"propagation_{stem}.csv"} <= names
    saved = json.loads((tmp_path / "o" / "propagation_params.json").read_text())
    assert saved["params"]["width"] == 60 and saved["panel"] == "propagation"
    csv_head = (tmp_path / "o" / "propagation_variance_depth.csv").read_text().splitlines()[0]
    assert "theory" in csv_head and "simulation" in csv_head


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("render", "telepathy"), "unknown panel 'telepathy'"),
        (("render", "propagation", "--params", "/nonexistent/x.json"), "no such file"),
        (("render", "propagation", "--png-width", "5"), "--png-width 5 is out of range"),
        (("render",), "required: panel"),
        (("frobnicate",), "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, words):
    out = run_cli(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_bad_parameter_file_is_refused_naming_the_field(tmp_path):
    path = small_params(tmp_path, sigma_w=-3.0)
    out = run_cli("render", "propagation", "--params", str(path), "--out", str(tmp_path))
    assert out.returncode == 2
    assert "propagation.sigma_w" in out.stderr and "out of range" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_parameters_for_another_panel_are_refused(tmp_path):
    path = small_params(tmp_path)
    out = run_cli("render", "spectra", "--params", str(path), "--out", str(tmp_path))
    assert out.returncode == 2 and "not 'spectra'" in out.stderr


def test_unwritable_output_folder_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = run_cli("render", "propagation", "--out", str(blocker / "sub"))
    assert out.returncode == 2 and "cannot create output folder" in out.stderr
