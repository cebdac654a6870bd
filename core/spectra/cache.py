"""A small cache the GUI's worker threads share."""

from __future__ import annotations

import threading
from collections.abc import Callable


class _Cache:
    """A small first-in-first-out cache, safe to share between the GUI's worker threads.

    Each key is built once: a second thread asking for a key being built waits for that build (a lock
    per key) instead of repeating it, while other keys are looked up and built meanwhile.
    """

    def __init__(self, size: int = 64):
        self.size, self._items, self._lock = size, {}, threading.Lock()
        self._building: dict = {}

    def get(self, key, make: Callable):
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                return hit
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                hit = self._items.get(key)
            if hit is not None:
                return hit
            try:
                value = make()
            except BaseException:
                with self._lock:
                    self._building.pop(key, None)
                raise
            with self._lock:
                self._building.pop(key, None)      # with the store, so no third thread builds it again
                while len(self._items) >= self.size:
                    self._items.pop(next(iter(self._items)))
                return self._items.setdefault(key, value)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
