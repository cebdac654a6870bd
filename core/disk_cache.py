"""Arrays kept on disk between launches (safetensors, never pickle): what is slow to compute and never changes.

The folder is ``$EDGE_OF_CHAOS_CACHE`` if set (``off`` disables the cache), else
``$XDG_CACHE_HOME/edge-of-chaos``, else ``~/.cache/edge-of-chaos``. An entry is named by a fingerprint of
everything that computed it (see :func:`fingerprint`), so a changed formula or library never reads an old
entry; an entry that cannot be read is treated as absent and written again. Nothing here raises: a cache
that cannot be used only costs the time of computing again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

_FORMAT = "edge-of-chaos/cache-1"


def directory() -> Path | None:
    """The cache folder, or None where the cache is switched off."""
    wanted = os.environ.get("EDGE_OF_CHAOS_CACHE", "").strip()
    if wanted.lower() == "off":
        return None
    if wanted:
        return Path(wanted).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "edge-of-chaos"


def fingerprint(modules: Iterable[str], *parts: object) -> str | None:
    """A digest of the named modules' source files, numpy's version and ``parts``.

    In a frozen build (PyInstaller, no sources) the executable itself stands for the sources. None where
    neither can be read: then nothing is cached.
    """
    h = hashlib.sha256(repr((np.__version__, parts)).encode())
    try:
        if getattr(sys, "frozen", False):
            st = os.stat(sys.executable)
            h.update(f"{sys.executable}:{st.st_size}:{st.st_mtime_ns}".encode())
        else:
            for name in modules:
                h.update(Path(sys.modules[name].__file__).read_bytes())
    except (OSError, KeyError, TypeError):
        return None
    return h.hexdigest()[:24]


def _path(kind: str, label: str, digest: str) -> Path | None:
    root = directory()
    return None if root is None else root / kind / f"{label}-{digest}.safetensors"


def read(kind: str, label: str, digest: str, names: Iterable[str]) -> tuple[dict[str, np.ndarray], dict] | None:
    """The arrays ``names`` and the JSON metadata of an entry, or None where it is absent or unreadable."""
    path = _path(kind, label, digest)
    if path is None or not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            if meta.get("format") != _FORMAT or meta.get("digest") != digest:
                return None
            arrays = {name: f.get_tensor(name) for name in names}
        return arrays, json.loads(meta.get("info", "{}"))
    except Exception:  # noqa: BLE001 — a damaged entry (truncated, foreign, missing a tensor) is a miss
        return None


def write(kind: str, label: str, digest: str, arrays: dict[str, np.ndarray], info: dict) -> bool:
    """Store an entry atomically (a reader sees the old file or the whole new one); False where it cannot."""
    path = _path(kind, label, digest)
    if path is None:
        return False
    try:
        from safetensors.numpy import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.stem, suffix=".part", dir=path.parent)
        os.close(fd)
        try:
            save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, tmp,
                      metadata={"format": _FORMAT, "digest": digest, "info": json.dumps(info)})
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return True
    except Exception:  # noqa: BLE001 — a read-only or full disk only means computing again next launch
        return False
