"""Which torch device and dtype the simulations use: CUDA when torch sees it, else the CPU.

``EDGE_OF_CHAOS_DEVICE=cpu`` (or ``cuda``, ``cuda:1``) overrides the choice. Theory never runs here:
it is numpy in float64. Importing this module does not import torch; :func:`default` does.
"""

from __future__ import annotations

import os
from functools import lru_cache

SIM_DTYPE = "float32"


@lru_cache(maxsize=1)
def default():
    """The torch.device simulations run on unless a caller names another."""
    import torch

    _configure_threads(torch)
    wanted = os.environ.get("EDGE_OF_CHAOS_DEVICE", "").strip()
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve(device=None):
    """``device`` as a torch.device; None means :func:`default`."""
    import torch

    return default() if device is None else torch.device(device)


def describe(device=None) -> str:
    """A short human name: ``CPU (2 threads)`` or ``CUDA: NVIDIA H100 80GB HBM3``."""
    import torch

    dev = resolve(device)
    if dev.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(dev)}"
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads != 1 else ''})"


def _configure_threads(torch) -> None:
    """Leave one core to the GUI thread: on a 2-core machine torch's spinning OpenMP threads otherwise
    slow small networks 10× and stall the event loop. ``EDGE_OF_CHAOS_THREADS`` overrides."""
    wanted = os.environ.get("EDGE_OF_CHAOS_THREADS", "").strip()
    threads = int(wanted) if wanted.isdigit() and int(wanted) > 0 else max(1, (os.cpu_count() or 2) - 1)
    torch.set_num_threads(threads)
