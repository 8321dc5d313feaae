"""Signs that a long-running part of a process makes progress (the frame loop, the voice listener, the companion
API's event loop), which systemd's watchdog is told of (edge_rap.daemon.notify). A part beats its `Heartbeat` where
its loop turns; the lower layers, which never know whether any heartbeat exists, say where their own work moves on
(`progress()`: a token generated, an utterance transcribed) and make a call that may rightly take minutes, loading a
model (TensorRT builds its engine the first time a model loads on a Jetson), inside `long_call`: a first face seen
at month three, or an answer generated at a few tokens a second on a CPU, must not be taken for a hang, and the
daemon restarted, every time.

Work that threads do in turn for several parts (the VLM: the announcer, the voice listener and the API ask it) is
`Turns`: a thread waiting for its turn counts as making progress while the thread whose turn it is does, so that
waiting behind a long answer is no hang and waiting behind a stuck one is.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Callable, Iterator

#: How long a long call may take before its part counts as stuck: as long as systemd waits for the daemon's start
#: (TimeoutStartSec in tools/edge-rap.service), where the same models load.
LONG_CALL_S = 600.0

_thread = threading.local()  # .part: the heartbeat the current thread beats; .turns: those of the Turns it holds


class Heartbeat:
    """One part's sign of progress: `beat()` where its loop turns (from the part's own thread); `retire()` when it
    ends by design (the voice loop after its microphone failed: the cameras go on without it)."""

    def __init__(self, name: str, clock: Callable[[], float]):
        self.name, self._clock = name, clock
        self.last = clock()
        self.idle = False  # nothing to wait for: retired, or work in turns that no thread holds
        self.busy_until: float | None = None  # the end of a long call's allowance
        self.busy_with = ""
        self.behind: Heartbeat | None = None  # the turns it waits for: fresh while they are

    def beat(self) -> None:
        self.refresh()
        _thread.part = self

    def refresh(self) -> None:
        """Count as fresh now, from any thread (the watchdog's start)."""
        self.last = self._clock()

    def retire(self) -> None:
        self.idle = True

    def fresh(self, now: float, interval_s: float) -> bool:
        """Whether the part has beaten within `interval_s`, is in a long call within its allowance, or waits for
        its turn at work that is fresh."""
        # Each attribute read once: the part's thread may end its long call or its wait between two reads, and a
        # None met here (TypeError) ended the thread that pings systemd, which then restarted a daemon that was well.
        busy_until, behind = self.busy_until, self.behind
        busy = busy_until is not None and now <= busy_until
        waiting = behind is not None and behind.fresh(now, interval_s)
        return self.idle or busy or waiting or now - self.last <= interval_s

    @contextlib.contextmanager
    def busy(self, what: str, up_to_s: float) -> Iterator[None]:
        outer = self.busy_until, self.busy_with  # (a long call inside another keeps the outer one's allowance)
        self.busy_until, self.busy_with = self._clock() + up_to_s, what
        try:
            yield
        finally:
            self.busy_until, self.busy_with = outer
            self.refresh()


def _counted() -> list[Heartbeat]:
    """The heartbeats the current thread's work counts for: its part's, and those of the turns it holds."""
    part = getattr(_thread, "part", None)
    return ([part] if part is not None else []) + getattr(_thread, "turns", [])


def progress() -> None:
    """The current thread's work moved on: where it counts for a part, or holds a turn, that is fresh now."""
    for heartbeat in _counted():
        heartbeat.refresh()


@contextlib.contextmanager
def long_call(what: str, up_to_s: float = LONG_CALL_S) -> Iterator[None]:
    """Make a call that may rightly take minutes (`what`: said if it takes longer than `up_to_s`); where the calling
    thread beats a heartbeat or holds a turn, that counts as fresh until the call returns or `up_to_s` has passed."""
    with contextlib.ExitStack() as calls:
        for heartbeat in _counted():
            calls.enter_context(heartbeat.busy(what, up_to_s))
        yield


class Turns:
    """Work done by one thread at a time for several parts: a lock, and a heartbeat (`name`) that is fresh while no
    thread holds it and, while one does, as long as the holder's work makes progress (`progress`, `long_call` in
    its thread). A part waiting for its turn is fresh while that heartbeat is."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic):
        self.heartbeat = Heartbeat(name, clock)
        self.heartbeat.idle = True
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        waiting = getattr(_thread, "part", None)
        if waiting is not None:
            waiting.behind = self.heartbeat
        try:
            self._lock.acquire()
        finally:
            if waiting is not None:
                waiting.behind = None
                waiting.refresh()  # its wait ended: the part moves on
        held = _thread.__dict__.setdefault("turns", [])
        self.heartbeat.refresh()
        self.heartbeat.idle = False
        held.append(self.heartbeat)
        try:
            yield
        finally:
            held.remove(self.heartbeat)
            self.heartbeat.idle = True
            self._lock.release()
