"""A worker thread with a queue one deep, where the newest item wins: what the speaker and the announcer
need so that nothing piles up behind slow speech or a slow model."""

from __future__ import annotations

import logging
import threading
from typing import Callable, Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class NewestWorker(Generic[T]):
    """Handles one item at a time in its own thread; an item submitted while another waits replaces it. An item
    `handle` raises on is logged and the thread goes on: one bad line must not silence a daemon for months."""

    def __init__(self, name: str, handle: Callable[[T], None]):
        self.name = name
        self._handle = handle
        self._pending: T | None = None
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T, keep: Callable[[T], bool] | None = None) -> T | None:
        """Queue `item` in place of the waiting item, unless `keep(waiting)` says the waiting one stays; the item
        that will never be handled (the one replaced, or `item` itself, also once closed), if any."""
        with self._cond:
            if self._closed or self._pending is not None and keep is not None and keep(self._pending):
                return item
            stale, self._pending = self._pending, item
            self._cond.notify_all()
        return stale

    def drop(self) -> T | None:
        """Remove the waiting item and return it."""
        with self._cond:
            stale, self._pending = self._pending, None
            self._cond.notify_all()
        return stale

    def flush(self, timeout: float) -> bool:
        """Wait until nothing waits and nothing is being handled; whether that came within `timeout`."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._busy, timeout)

    def close(self, timeout: float) -> T | None:
        """Stop after the item being handled (waiting up to `timeout`); the waiting item, never handled."""
        with self._cond:
            self._closed = True
            stale, self._pending = self._pending, None
            self._cond.notify_all()
        self._thread.join(timeout)
        return stale

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
                item, self._pending, self._busy = self._pending, None, True
            try:
                self._handle(item)
            except Exception:
                log.exception("the %s failed on one item, and goes on with the next", self.name)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
