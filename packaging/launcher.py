"""Frozen entry point of Edge of Chaos (PyInstaller runs this file; `edge-of-chaos` runs app.main:main)."""

import multiprocessing
import os
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen child process must stop here, not start another GUI
    os.environ.setdefault("QT_API", "pyside6")  # superqt goes through qtpy: name the one binding we ship
    if sys.platform == "win32":
        import torch  # noqa: F401  (torch before PySide6 on Windows, or c10.dll fails to load)
    from app.main import main

    sys.exit(main())
