"""A failure that repeats said once, and its end once: a disk full for a week, or an audio device busy for hours,
is two lines in a daemon's journal, not one at every line spoken or every arrival."""

from __future__ import annotations

import logging
import threading


class SaidOnce:
    """Each failing part (a name) said as it starts failing, and again as it works after."""

    def __init__(self, log: logging.Logger):
        self._log = log  # the caller's: the line names its module
        self._failing: set[str] = set()
        # a part may be told of from two threads at once (the daemon's lines said: the loop reports a superseded
        # arrival while the announcer reports its own): each saw it not failing yet, and both said so
        self._lock = threading.Lock()

    def __call__(self, part: str, failing: bool, warning: str, back: str) -> None:
        """`warning` when `part` starts failing, `back` when it works again; nothing while it stays as it was."""
        with self._lock:
            if failing != (part in self._failing):
                # the caller's line: its file and line in the log, and its kind where lines are rationed (a server's
                # request: serve/request_lines.py), not this one line for every part of every caller
                self._log.warning("%s", warning if failing else back, stacklevel=2)
                (self._failing.add if failing else self._failing.discard)(part)
