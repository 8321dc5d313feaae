"""Signs that a long-running part of a process makes progress (the frame loop, the voice listener, the companion
API's event loop), which systemd's watchdog is told of (edge_rap.daemon.notify). A part beats its `Heartbeat` where
its loop turns; a call in it that may rightly take minutes, loading a model (TensorRT builds its engine the first
time a model loads on a Jetson), is made inside `long_call`, which the lower layers (models/sessions.py, the VLM,
whisper) use without knowing whether any heartbeat exists: a first face seen at month three must not be taken for a
hang, and the daemon restarted before the engine is built, every time.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator

#: How long a long call may take before its part counts as stuck: as long as systemd waits for the daemon's start
#: (TimeoutStartSec in tools/edge-rap.service), where the same models load.
LONG_CALL_S = 600.0

_thread = threading.local()  # the heartbeat the current thread beats, if any


class Heartbeat:
    """One part's sign of progress: `beat()` where its loop turns (from the part's own thread); `retire()` when it
    ends by design (the voice loop after its microphone failed: the cameras go on without it)."""

    def __init__(self, name: str, clock: Callable[[], float]):
        self.name, self._clock = name, clock
        self.last = clock()
        self.retired = False
        self.busy_until: float | None = None  # the end of a long call's allowance
        self.busy_with = ""

    def beat(self) -> None:
        self.refresh()
        _thread.heartbeat = self

    def refresh(self) -> None:
        """Count as fresh now, from any thread (the watchdog's start)."""
        self.last = self._clock()

    def retire(self) -> None:
        self.retired = True

    def fresh(self, now: float, interval_s: float) -> bool:
        """Whether the part has beaten within `interval_s`, or is in a long call within its allowance."""
        # Read once: the part's thread may end its long call between two reads, and a None met here (TypeError)
        # ended the thread that pings systemd, which then restarted a daemon that was well.
        busy_until = self.busy_until
        busy = busy_until is not None and now <= busy_until
        return self.retired or busy or now - self.last <= interval_s

    @contextlib.contextmanager
    def busy(self, what: str, up_to_s: float) -> Iterator[None]:
        outer = self.busy_until, self.busy_with  # (a long call inside another keeps the outer one's allowance)
        self.busy_until, self.busy_with = self._clock() + up_to_s, what
        try:
            yield
        finally:
            self.busy_until, self.busy_with = outer
            self.refresh()


@contextlib.contextmanager
def long_call(what: str, up_to_s: float = LONG_CALL_S) -> Iterator[None]:
    """Make a call that may rightly take minutes (`what`: said if it takes longer than `up_to_s`); where the calling
    thread beats a heartbeat, that part counts as fresh until the call returns or `up_to_s` has passed."""
    heartbeat = getattr(_thread, "heartbeat", None)
    if heartbeat is None:
        yield
        return
    with heartbeat.busy(what, up_to_s):
        yield
