"""Package names loaded from their modules on first use, so that importing an engine (for its Params)
does not import torch: start-up stays fast (tests/core/test_layering.py)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, parts: Mapping[str, tuple[str, ...]], namespace: dict) -> Callable[[str], object]:
    """A module ``__getattr__`` (PEP 562) for ``package``: a name listed under ``parts[module]`` is imported
    from ``package.module`` when first asked for, and kept in ``namespace`` (the package's globals)."""
    exports = {name: module for module, names in parts.items() for name in names}

    def __getattr__(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    return __getattr__
