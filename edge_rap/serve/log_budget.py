"""The log lines a client's requests cause, rationed: each refusal (bytes that are not HTTP, a head too large,
a connection over the limits, a request left unfinished) and each request's failure (the device's trouble, a form
the parser cannot read, an internal error, a backup's missing photos, an Upgrade it ignores) was one line, so a
client looping bad requests, or a phone app retrying one, grew the log (journald's, a file on an SD card) without
bound. Each kind may say `burst` lines at once and one more every `every_s`; the lines left out are counted and said
on the next line of that kind let through, or as the server stops (`say_left_out`). The lines the layers under the
API say while a request is answered are rationed by the same budget (serve/request_lines.py)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Hashable

#: How a line left out is said later: given what to add to it (how many like it were left out).
Say = Callable[[str], None]
#: The record attribute of a line the budget has judged: True, let through; False, left out (serve/request_lines.py).
JUDGED = "edge_rap_rationed"
#: The record attribute naming a line's kind where its line of code says more than one (`extra={KIND: ...}`): a
#: line a wrapper says for its callers is theirs, and one line of code saying each of a few device faults is each's.
KIND = "edge_rap_kind"


class LogBudget:
    """A token bucket of lines for each kind (a few, named by the code: never from what a client sent)."""

    def __init__(self, burst: int = 10, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.burst, self.every_s, self.clock = burst, every_s, clock
        # kind: (lines left, at when, lines left out since the last logged, how to say the last of them)
        self._kinds: dict[Hashable, tuple[float, float, int, Say | None]] = {}
        self._lock = threading.Lock()  # (a server per thread in one process: the tests', `run --serve`'s)

    def admit(self, kind: Hashable, say_later: Say) -> str | None:
        """What to add to a line of `kind` that has a line left (how many were left out before it), or None: it is
        left out, counted, and `say_later` kept to say it as the last of them."""
        with self._lock:
            now = self.clock()
            left, then, dropped, _ = self._kinds.get(kind, (float(self.burst), now, 0, None))
            left = min(float(self.burst), left + (now - then) / self.every_s)
            if left < 1:
                self._kinds[kind] = (left, now, dropped + 1, say_later)
                return None
            self._kinds[kind] = (left - 1, now, 0, None)
        return f" ({dropped} more like this not logged)" if dropped else ""

    def log(self, logger: logging.Logger, level: int, kind: str, msg: str, *args,
            exc_info: BaseException | None = None) -> None:
        """`logger.log(level, msg, *args)` if `kind` has a line left, with how many were left out before it; its
        traceback (`exc_info`) only then: the last one left out is said without its own, not held till then."""
        def say(more: str, exc_info: BaseException | None = None) -> None:
            logger.log(level, msg + more, *args, exc_info=exc_info, extra={JUDGED: True})

        more = self.admit(kind, say)
        if more is not None:
            say(more, exc_info)

    def say_left_out(self) -> None:
        """The last line of each kind left out, with how many were: as the server stops, where no later line of its
        kind said them (a loop of bad requests that ended, then the server: its count was never said)."""
        with self._lock:
            left_out = [(say, dropped) for _, _, dropped, say in self._kinds.values() if say is not None]
            self._kinds = {kind: (left, then, 0, None) for kind, (left, then, _, _) in self._kinds.items()}
        for say, dropped in left_out:
            say(f" (the last of {dropped} like this not logged, said as the server stops)")
