"""The log lines a client's bad requests cause, rationed: each refusal (bytes that are not HTTP, a head too large,
a connection over the limits, a request left unfinished) was one line, so a client looping bad requests grew the
log (journald's, a file on an SD card) without bound. Each kind may say `burst` lines at once and one more every
`every_s`; the lines left out are counted and said on the next line of that kind let through."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable


class LogBudget:
    """A token bucket of lines for each kind (a few, named by the code: never from what a client sent)."""

    def __init__(self, burst: int = 10, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.burst, self.every_s, self.clock = burst, every_s, clock
        self._kinds: dict[str, tuple[float, float, int]] = {}  # kind: (lines left, at when, lines left out since)
        self._lock = threading.Lock()  # (a server per thread in one process: the tests', `run --serve`'s)

    def log(self, logger: logging.Logger, level: int, kind: str, msg: str, *args) -> None:
        """`logger.log(level, msg, *args)` if `kind` has a line left, with how many were left out before it."""
        with self._lock:
            now = self.clock()
            left, then, dropped = self._kinds.get(kind, (float(self.burst), now, 0))
            left = min(float(self.burst), left + (now - then) / self.every_s)
            if left < 1:
                self._kinds[kind] = (left, now, dropped + 1)
                return
            self._kinds[kind] = (left - 1, now, 0)
        if dropped:
            msg += f" ({dropped} more like this not logged)"
        logger.log(level, msg, *args)
