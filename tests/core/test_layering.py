"""core/ never imports Qt, and importing the engines does not import torch (start-up must stay fast)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import core

ENGINES = sorted(m.name for m in pkgutil.iter_modules([str(Path(core.__file__).parent)]))


def _loaded_after_import(modules: list[str]) -> set[str]:
    code = ("import sys\n" + "".join(f"import core.{m}\n" for m in modules) +
            "print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_core_imports_no_qt_and_no_torch():
    loaded = _loaded_after_import(ENGINES)
    qt = {m for m in loaded if m.split(".")[0] in {"PySide6", "shiboken6", "pyqtgraph", "superqt", "qtpy", "app"}}
    assert not qt, f"core imported {sorted(qt)}"
    assert "torch" not in loaded, "importing core must not import torch (it costs ~1.8 s at start-up)"


def test_the_layering_check_itself_catches_a_qt_import(tmp_path):
    """Guard the guard: a module importing PySide6 shows up in the loaded set."""
    probe = tmp_path / "probe_mod.py"
    probe.write_text("import PySide6.QtCore\n")
    code = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import probe_mod; print('PySide6' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
