"""``python -m app.linux_check``: can Qt load its platform plugin here? If not, one line saying what to install.

On Linux, PySide6's xcb plugin needs system libraries that pip cannot install (libxcb-cursor0,
libxcb-icccm4, libxcb-keysyms1, …); without them Qt aborts with "could not load the Qt platform
plugin xcb" and a wall of text. ``make run`` runs this first. It imports no Qt: the libraries are
found with ``ldd`` (what the dynamic linker would resolve) and ``dlopen`` (for libxcb-cursor, which Qt
opens itself at start-up), then a throw-away process starts a QGuiApplication to confirm.
Exit status 0 when the GUI can start, 1 (after the one line) when it cannot.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

#: Libraries the xcb plugin opens at run time rather than links (ldd does not see them).
OPENED_AT_RUN_TIME = ("libxcb-cursor.so.0",)

#: soname → package, per package manager (Debian/Ubuntu, Fedora/RHEL, Arch).
PACKAGES = {
    "apt-get": {
        "libxcb-cursor.so.0": "libxcb-cursor0", "libxcb-icccm.so.4": "libxcb-icccm4",
        "libxcb-keysyms.so.1": "libxcb-keysyms1", "libxcb-image.so.0": "libxcb-image0",
        "libxcb-render-util.so.0": "libxcb-render-util0", "libxcb-xinerama.so.0": "libxcb-xinerama0",
        "libxcb-randr.so.0": "libxcb-randr0", "libxcb-shape.so.0": "libxcb-shape0",
        "libxcb-xfixes.so.0": "libxcb-xfixes0", "libxcb-xkb.so.1": "libxcb-xkb1",
        "libxcb-sync.so.1": "libxcb-sync1", "libxcb-shm.so.0": "libxcb-shm0",
        "libxcb-render.so.0": "libxcb-render0", "libxcb-xinput.so.0": "libxcb-xinput0",
        "libxcb.so.1": "libxcb1", "libX11-xcb.so.1": "libx11-xcb1",
        "libX11.so.6": "libx11-6", "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
        "libxkbcommon.so.0": "libxkbcommon0", "libEGL.so.1": "libegl1", "libGL.so.1": "libgl1",
        "libOpenGL.so.0": "libopengl0", "libfontconfig.so.1": "libfontconfig1",
        "libfreetype.so.6": "libfreetype6", "libdbus-1.so.3": "libdbus-1-3", "libglib-2.0.so.0": "libglib2.0-0",
        "libSM.so.6": "libsm6", "libICE.so.6": "libice6",
    },
    "dnf": {
        "libxcb-cursor.so.0": "xcb-util-cursor", "libxcb-icccm.so.4": "xcb-util-wm",
        "libxcb-keysyms.so.1": "xcb-util-keysyms", "libxcb-image.so.0": "xcb-util-image",
        "libxcb-render-util.so.0": "xcb-util-renderutil", "libxkbcommon-x11.so.0": "libxkbcommon-x11",
        "libEGL.so.1": "libglvnd-egl", "libGL.so.1": "libglvnd-glx", "libOpenGL.so.0": "libglvnd-opengl",
        "libfontconfig.so.1": "fontconfig", "libdbus-1.so.3": "dbus-libs",
    },
    "pacman": {
        "libxcb-cursor.so.0": "xcb-util-cursor", "libxcb-icccm.so.4": "xcb-util-wm",
        "libxcb-keysyms.so.1": "xcb-util-keysyms", "libxcb-image.so.0": "xcb-util-image",
        "libxcb-render-util.so.0": "xcb-util-renderutil", "libxkbcommon-x11.so.0": "libxkbcommon-x11",
        "libEGL.so.1": "libglvnd", "libGL.so.1": "libglvnd", "libOpenGL.so.0": "libglvnd",
        "libfontconfig.so.1": "fontconfig", "libdbus-1.so.3": "dbus",
    },
}
INSTALL = {"apt-get": "sudo apt-get install", "dnf": "sudo dnf install", "pacman": "sudo pacman -S"}


def qt_files() -> list[Path]:
    """The xcb platform plugin and the library behind it, in the installed PySide6."""
    import importlib.util

    spec = importlib.util.find_spec("PySide6")
    if spec is None or spec.origin is None:
        return []
    qt = Path(spec.origin).parent / "Qt"
    candidates = [qt / "plugins" / "platforms" / "libqxcb.so", *sorted((qt / "lib").glob("libQt6XcbQpa.so*"))]
    return [p for p in candidates if p.exists()][:2]


def not_found(ldd_output: str) -> list[str]:
    """The sonames ``ldd`` reported as "not found", in order, once each."""
    names = re.findall(r"^\s*(\S+)\s+=>\s+not found", ldd_output, flags=re.MULTILINE)
    return list(dict.fromkeys(names))


def missing_libraries(files: list[Path] | None = None) -> list[str]:
    """The system libraries the xcb plugin needs and cannot find."""
    missing: list[str] = []
    if shutil.which("ldd"):
        for path in qt_files() if files is None else files:
            out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=30).stdout
            missing += not_found(out)
    for name in OPENED_AT_RUN_TIME:
        try:
            ctypes.CDLL(name)
        except OSError:
            missing.append(name)
    return list(dict.fromkeys(missing))


def package_manager() -> str | None:
    return next((m for m in PACKAGES if shutil.which(m)), None)


def advice(missing: list[str], manager: str | None) -> str:
    """One line: what is missing and the command that installs it."""
    table = PACKAGES.get(manager or "", {})
    packages = list(dict.fromkeys(table.get(lib, lib) for lib in missing))
    head = f"Qt cannot load its xcb platform plugin: missing {', '.join(missing)}"
    if manager is not None and all(lib in table for lib in missing):
        return f"{head} — install them with: {INSTALL[manager]} {' '.join(packages)}"
    return f"{head} — install the system packages that provide them (on Debian/Ubuntu: " \
           f"sudo apt-get install {' '.join(PACKAGES['apt-get'].get(lib, lib) for lib in missing)})"


def probe() -> str:
    """Start a QGuiApplication in a throw-away process; '' when it started, else Qt's last words."""
    code = "from PySide6.QtGui import QGuiApplication; QGuiApplication([])"
    try:
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "Qt did not start within 60 s"
    if run.returncode == 0:
        return ""
    lines = [line.strip() for line in run.stderr.splitlines() if line.strip()]
    reason = next((line for line in lines if "platform plugin" in line), lines[-1] if lines else "")
    return reason or f"exit status {run.returncode}"


def check(environ=os.environ, platform: str = sys.platform) -> tuple[int, str]:
    """(exit status, message): 0 and '' when the GUI can start here."""
    if not platform.startswith("linux"):
        return 0, ""
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen and not chosen.startswith("xcb"):
        return 0, ""  # offscreen, wayland, vnc…: not the xcb plugin
    if not chosen and environ.get("WAYLAND_DISPLAY"):
        return 0, ""  # Qt 6 picks its wayland plugin, which needs none of xcb's libraries
    if not environ.get("DISPLAY"):
        return 1, ("no display to open a window on (DISPLAY is not set); run it from a desktop session, "
                   "or headless: edge-of-chaos render PANEL --out DIR")
    missing = missing_libraries()
    if missing:
        return 1, advice(missing, package_manager())
    reason = probe()
    if reason:
        return 1, f"Qt cannot start its platform plugin: {reason}"
    return 0, ""


def main() -> int:
    status, message = check()
    if message:
        print(f"edge-of-chaos: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
