"""A failure said once, and its end once, however many threads tell of it."""

from __future__ import annotations

import logging
import threading

from edge_rap.said_once import SaidOnce


class Recorded(logging.Handler):
    """Keeps each line; at the first, another thread tells of the same failure while that line is being written."""

    def __init__(self, also: threading.Thread):
        super().__init__()
        self.lines: list[str] = []
        self.also = also

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if self.also.ident is None:  # (not started yet)
            self.also.start()
            self.also.join(1.0)  # (where it waits on the first, it goes on after)


def test_a_failure_two_threads_tell_of_at_once_is_said_once():
    # The daemon's lines said are recorded from two threads (a superseded arrival reported by the loop, the
    # announcer's own): each saw the part not failing yet, and the full disk was said twice.
    log = logging.getLogger("test_said_once")
    log.propagate = False
    said = SaidOnce(log)
    other = threading.Thread(target=said, args=("said", True, "disk full", "back"))
    handler = Recorded(other)
    log.addHandler(handler)
    try:
        said("said", True, "disk full", "back")
        other.join()
        said("said", False, "disk full", "back")
    finally:
        log.removeHandler(handler)
    assert handler.lines == ["disk full", "back"]
