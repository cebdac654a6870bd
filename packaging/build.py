"""Build the one-folder frozen app in dist/edge-of-chaos/ and smoke-run it.

Run by ``make package`` (which installs the ``package`` extra, i.e. PyInstaller, first)::

    .venv/bin/python packaging/build.py            # build, then smoke test
    .venv/bin/python packaging/build.py --clean    # the same, with PyInstaller's cache emptied first
    .venv/bin/python packaging/build.py --no-build # smoke-test the folder already in dist/
    .venv/bin/python packaging/build.py --gui      # also check that the GUI starts (offscreen)

The smoke test runs the frozen binary, not the source tree: ``--version`` must print the version from
pyproject.toml, and ``render propagation`` (offscreen, small parameter set) must write PNG, SVG and CSV
files. It reports the folder size and how long both commands took. Any failure exits non-zero with one
line that says which step failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "edge_of_chaos.spec"
NAME = "edge-of-chaos"
DIST = ROOT / "dist"
WORK = ROOT / "build" / "pyinstaller"
APP_DIR = DIST / NAME
EXE = APP_DIR / (NAME + (".exe" if sys.platform == "win32" else ""))

VERSION_TIMEOUT_S = 120
RENDER_TIMEOUT_S = 600
GUI_ALIVE_S = 20
SMOKE_PARAMS = {
    "format": "edge-of-chaos/params",
    "version": 1,
    "panel": "propagation",
    "params": {"width": 100, "depth": 5, "seeds": 1},
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class StepFailed(Exception):
    """One step of the build or the smoke test failed; the message says which and why."""


def project_version() -> str:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


def build(clean: bool) -> float:
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        raise StepFailed("PyInstaller is not installed: run `make package`, "
                         "or `.venv/bin/pip install -e '.[package]'`") from None
    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
           "--distpath", str(DIST), "--workpath", str(WORK), str(SPEC)]
    if clean:
        cmd.insert(3, "--clean")
    print(f"[build] {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if result.returncode != 0:
        raise StepFailed(f"PyInstaller exited with status {result.returncode} (see its output above)")
    if not EXE.is_file():
        raise StepFailed(f"PyInstaller finished but {EXE} is missing")
    print(f"[build] done in {seconds:.0f} s: {APP_DIR}", flush=True)
    return seconds


def folder_mb(path: Path) -> float:
    total = sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return total / 1e6


def smoke_env() -> dict[str, str]:
    """The frozen binary must stand on its own: no display, nothing from this checkout or the venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def run_frozen(args: list[str], cwd: Path, timeout: float,
               step: str) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    try:
        result = subprocess.run([str(EXE), *args], cwd=cwd, env=smoke_env(), capture_output=True,
                                text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"{step}: no answer within {timeout:.0f} s") from None
    seconds = time.perf_counter() - t0
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise StepFailed(f"{step}: exit status {result.returncode}\n{tail}")
    return result, seconds


def smoke_version(tmp: Path) -> float:
    expected = f"{NAME} {project_version()}"
    result, seconds = run_frozen(["--version"], tmp, VERSION_TIMEOUT_S, "--version")
    got = (result.stdout + result.stderr).strip()
    if got != expected:
        raise StepFailed(f"--version: printed {got!r}, expected {expected!r}")
    print(f"[smoke] --version -> {got!r} in {seconds:.2f} s", flush=True)
    return seconds


def smoke_render(tmp: Path) -> tuple[float, int]:
    params = tmp / "smoke-params.json"
    params.write_text(json.dumps(SMOKE_PARAMS, indent=2) + "\n", encoding="utf-8")
    out = tmp / "render"
    _, seconds = run_frozen(["render", "propagation", "--params", str(params), "--out", str(out)],
                            tmp, RENDER_TIMEOUT_S, "render propagation")
    files = sorted(p for p in out.rglob("*") if p.is_file()) if out.is_dir() else []
    by_kind = {ext: [p for p in files if p.suffix.lower() == ext] for ext in (".png", ".svg", ".csv")}
    missing = [ext for ext, found in by_kind.items() if not found]
    if missing:
        raise StepFailed(f"render propagation: no {', '.join(missing)} file written in {out} "
                         f"(found: {', '.join(p.name for p in files) or 'nothing'})")
    empty = [p.name for p in files if p.stat().st_size == 0]
    if empty:
        raise StepFailed(f"render propagation: empty files: {', '.join(empty)}")
    bad_png = [p.name for p in by_kind[".png"] if p.read_bytes()[:8] != PNG_MAGIC]
    if bad_png:
        raise StepFailed(f"render propagation: not a PNG: {', '.join(bad_png)}")
    bad_svg = [p.name for p in by_kind[".svg"] if b"<svg" not in p.read_bytes()[:4096]]
    if bad_svg:
        raise StepFailed(f"render propagation: not an SVG: {', '.join(bad_svg)}")
    counts = ", ".join(f"{len(v)} {k[1:].upper()}" for k, v in by_kind.items())
    print(f"[smoke] render propagation -> {len(files)} files ({counts}) in {seconds:.2f} s", flush=True)
    return seconds, len(files)


def smoke_gui(tmp: Path, seconds: float = GUI_ALIVE_S) -> None:
    """The GUI, offscreen, must still be running after ``seconds`` (an import error ends it at once)."""
    env = smoke_env()
    env["XDG_CONFIG_HOME"] = str(tmp / "config")  # QSettings: not the user's own
    proc = subprocess.Popen([str(EXE)], cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        out, _ = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        print(f"[smoke] GUI still running after {seconds:.0f} s (offscreen): ok", flush=True)
        return
    tail = "\n".join(out.strip().splitlines()[-25:])
    raise StepFailed(f"GUI: exited after less than {seconds:.0f} s with status {proc.returncode}\n{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="empty PyInstaller's cache before building")
    parser.add_argument("--no-build", action="store_true", help="only smoke-test the existing dist/ folder")
    parser.add_argument("--gui", action="store_true",
                        help=f"also start the GUI offscreen and check it is still up after {GUI_ALIVE_S} s")
    args = parser.parse_args(argv)
    try:
        build_s = None if args.no_build else build(args.clean)
        if not EXE.is_file():
            raise StepFailed(f"{EXE} does not exist: build first (`make package`)")
        with tempfile.TemporaryDirectory(prefix="eoc-smoke-") as tmp_name:
            tmp = Path(tmp_name)
            version_s = smoke_version(tmp)
            version_warm_s = smoke_version(tmp)
            render_s, n_files = smoke_render(tmp)
            if args.gui:
                smoke_gui(tmp)
        size = folder_mb(APP_DIR)
    except StepFailed as err:
        print(f"packaging/build.py: FAILED: {err}", file=sys.stderr)
        return 1
    print()
    print(f"Frozen app:        {APP_DIR}")
    print(f"Folder size:       {size:.0f} MB")
    if build_s is not None:
        print(f"Build time:        {build_s:.0f} s")
    print(f"--version:         {version_s:.2f} s (first run), {version_warm_s:.2f} s (again)")
    print(f"render propagation: {render_s:.2f} s ({n_files} files)")
    print("Smoke test passed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
