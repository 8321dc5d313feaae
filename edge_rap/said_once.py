"""A failure that repeats said once, and its end once: a disk full for a week, or an audio device busy for hours,
is two lines in a daemon's journal, not one at every line spoken or every arrival."""

from __future__ import annotations

import logging


class SaidOnce:
    """Each failing part (a name) said as it starts failing, and again as it works after."""

    def __init__(self, log: logging.Logger):
        self._log = log  # the caller's: the line names its module
        self._failing: set[str] = set()

    def __call__(self, part: str, failing: bool, warning: str, back: str) -> None:
        """`warning` when `part` starts failing, `back` when it works again; nothing while it stays as it was."""
        if failing != (part in self._failing):  # (changed in place: each part is one thread's, the set shared)
            self._log.warning("%s", warning if failing else back)
            (self._failing.add if failing else self._failing.discard)(part)
