"""Test settings shared by every suite: offscreen Qt, settings in a temporary folder, no stray threads."""

from __future__ import annotations

import faulthandler
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("EDGE_OF_CHAOS_DEVICE", "cpu")
# Tables are built afresh in every test process; tests/core/test_disk_cache.py uses a folder of its own.
os.environ["EDGE_OF_CHAOS_CACHE"] = "off"
faulthandler.enable()
