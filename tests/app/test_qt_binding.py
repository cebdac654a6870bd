"""The Qt binding we install must not leak references to None (PySide6 6.12.0 does, on Python < 3.12)."""

from __future__ import annotations

import sys

from PySide6 import QtGui


def test_void_calls_keep_the_reference_count_of_none(qapp):
    pen = QtGui.QPen()
    before = sys.getrefcount(None)
    for _ in range(5000):
        pen.setWidth(2)
        pen.setCosmetic(True)
    # Other threads may hold or drop a few references meanwhile; a leak would show -10000.
    assert abs(sys.getrefcount(None) - before) < 100
