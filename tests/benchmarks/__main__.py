"""``python -m tests.benchmarks [name ...]``: run every bench_*.py (or the named ones) and print a table."""

from __future__ import annotations

import importlib
import os
import pkgutil
import platform
import sys
import tempfile
import traceback
from pathlib import Path

from tests.benchmarks.harness import Row, format_table


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    # Every figure starts from no stored tables, not from whatever this machine's cache holds.
    cache = tempfile.TemporaryDirectory(prefix="eoc_bench_cache_")
    os.environ["EDGE_OF_CHAOS_CACHE"] = cache.name
    import torch

    from core import device

    device.default()                    # sets the app's torch thread count (one core left to the GUI)
    app_threads = torch.get_num_threads()
    rows: list[Row] = []
    failed = False
    for name in names:
        # a benchmark that takes every core (bench_landscape) must not leave it so for the ones after it
        torch.set_num_threads(app_threads)
        print(f"running {name} …", file=sys.stderr, flush=True)
        try:
            rows += importlib.import_module(f"tests.benchmarks.{name}").run()
        except Exception:
            traceback.print_exc()
            failed = True
    torch.set_num_threads(app_threads)
    cache.cleanup()
    print(f"\nmachine: {platform.processor() or platform.machine()}, {device.describe()}, torch {torch.__version__}")
    print(format_table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
