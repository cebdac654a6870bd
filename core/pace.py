"""Room for the GUI: long loops in worker threads call :func:`pace` between steps.

Python runs one thread at a time. A worker in a loop of small numpy or torch calls takes the interpreter
lock back after every call, and a GUI thread that asks for it waits a switch interval (5 ms) each time;
a plot's paint asks hundreds of times, so a paint of 20 ms took 150 ms while a theory job ran. The app
installs a hook that, called from a worker while the GUI thread has fallen behind, sleeps until it has
caught up (sleeping releases the lock); without a hook (scripts, notebooks, tests of the engines)
:func:`pace` does nothing.
"""

from __future__ import annotations

from collections.abc import Callable

_hook: Callable[[], None] | None = None


def install(hook: Callable[[], None] | None) -> None:
    """Make ``hook`` what :func:`pace` calls (``None``: nothing)."""
    global _hook
    _hook = hook


def pace() -> None:
    """A point where a long computation may let the GUI thread run first."""
    hook = _hook
    if hook is not None:
        hook()
