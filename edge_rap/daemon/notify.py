"""Telling systemd how the daemon is (sd_notify(3), without libsystemd): ready once it really runs, a status line for
`systemctl status`, alive while every part of it makes progress, and stopping. Each message is one datagram on the
AF_UNIX socket $NOTIFY_SOCKET names (a path, or an abstract name written with a leading '@'); without it nothing is
sent and no thread starts.

The watchdog (WatchdogSec=, sd_watchdog_enabled(3)): each part that must not hang (the frame loop, the voice
listener, the companion API's event loop) beats its own `Heartbeat` (edge_rap.liveness) where its loop turns, the
assistant's answer (`liveness.Turns`) is fresh while it moves on, and WATCHDOG=1 is sent every half interval only
while each has beaten within the interval, is in a long call (a model loading) within its allowance, or waits for
its turn at an answer that moves on. A part stuck longer than that stops the pings,
and systemd restarts the daemon; a camera that is away is no hang (the loop goes on turning without its frames).
"""

from __future__ import annotations

import faulthandler
import logging
import os
import socket
import sys
import threading
import time
from typing import Callable, Mapping

from edge_rap.liveness import Heartbeat

log = logging.getLogger(__name__)

#: How often the status line is sent again (when it changed): `systemctl status` is read by a person.
STATUS_EVERY_S = 10.0
#: The longest a message may wait for room on the socket: a manager that does not read never holds the daemon up.
SEND_TIMEOUT_S = 1.0


def notify_address(value: str | None) -> str | None:
    """$NOTIFY_SOCKET as Python's AF_UNIX address: a path, or an abstract name ('@name' is NUL then the name);
    None where it is unset or of a kind not supported here (vsock:)."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    log.debug("NOTIFY_SOCKET=%s is neither a path nor an abstract socket: systemd is not told", value)
    return None


def watchdog_seconds(env: Mapping[str, str], pid: int) -> float | None:
    """The watchdog's interval systemd set for this process ($WATCHDOG_USEC, for the $WATCHDOG_PID given), or None."""
    usec, owner = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and owner != str(pid):  # another process's (one that started this one and did not unset it)
        return None
    return int(usec) / 1e6


class Notifier:
    """Sends state lines to the service manager; never raises: a socket that refuses them (systemd restarted:
    ECONNREFUSED, ENOENT) is said once at debug level while it does."""

    def __init__(self, address: str | None):
        self.address = address
        self._socket: socket.socket | None = None
        self._refused = False

    def send(self, *lines: str) -> None:
        if self.address is None:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.settimeout(SEND_TIMEOUT_S)
            self._socket.sendto("\n".join(lines).encode(), self.address)
        except OSError as e:
            if not self._refused:
                log.debug("systemd's notify socket %r refused a message (%s)", self.address, e)
            self._refused = True
            return
        self._refused = False

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class Supervisor:
    """What a long-running command tells systemd: `ready(status)` once it runs (the status line sent then and every
    STATUS_EVERY_S while it changes), WATCHDOG=1 every half interval while every heartbeat is fresh, and
    `stopping()` as it begins to stop. Without a notify socket every call does nothing."""

    def __init__(self, notifier: Notifier, watchdog_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.notifier, self.watchdog_s, self.clock = notifier, watchdog_s, clock
        self.heartbeats: list[Heartbeat] = []
        self._status: Callable[[], str] | None = None
        self._said_status: str | None = None
        self._ping_due = self._status_due = clock()
        self._stale: set[str] = set()  # the parts said to be stuck
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> Supervisor:
        return cls(Notifier(notify_address(env.get("NOTIFY_SOCKET"))), watchdog_seconds(env, os.getpid()))

    def heartbeat(self, name: str) -> Heartbeat:
        """A part the watchdog waits for."""
        return self.watch(Heartbeat(name, self.clock))

    def watch(self, heartbeat: Heartbeat) -> Heartbeat:
        """A heartbeat made elsewhere waited for too (the assistant's answers, `liveness.Turns`)."""
        self.heartbeats.append(heartbeat)
        return heartbeat

    def ready(self, status: Callable[[], str]) -> None:
        """READY=1 with the first status line; the pings and status updates start in a thread of their own, and
        every part counts as fresh from now (the watchdog starts here: loading the models before took its time)."""
        if self.notifier.address is None:
            return
        for heartbeat in self.heartbeats:
            heartbeat.refresh()
        self._status = status
        self.tick(ready=True)
        self._thread = threading.Thread(target=self._run, name="edge-rap-systemd", daemon=True)
        self._thread.start()

    def stopping(self) -> None:
        """STOPPING=1: no ping after it (systemd stops watching, and TimeoutStopSec= counts from here)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.notifier.send("STOPPING=1", "STATUS=stopping")
        self.notifier.close()

    def stale(self) -> list[str]:
        """The parts that have not beaten within the watchdog's interval."""
        now = self.clock()
        return [b.name for b in self.heartbeats if not b.fresh(now, self.watchdog_s or 0.0)]

    def tick(self, ready: bool = False) -> None:
        """One look: WATCHDOG=1 when due and every part is fresh (a stuck one said once, with every thread's stack
        on stderr for the bug report), and the status line when due and changed; in one datagram."""
        now, lines = self.clock(), ["READY=1"] if ready else []
        if self.watchdog_s and now >= self._ping_due:
            self._ping_due = now + self.watchdog_s / 2
            stale = self.stale()
            if not stale:
                lines.append("WATCHDOG=1")
            self._say_stale(set(stale))
        if self._status is not None and now >= self._status_due:
            self._status_due = now + STATUS_EVERY_S
            status = self._status()
            if status != self._said_status:
                self._said_status = status
                lines.append(f"STATUS={status}")
        if lines:
            self.notifier.send(*lines)

    def _say_stale(self, stale: set[str]) -> None:
        calls = {b.name: f" ({b.busy_with}, for longer than its allowance)" for b in self.heartbeats if b.busy_with}
        for name in sorted(stale - self._stale):
            log.error("%s has made no progress for over %g s%s: systemd's watchdog is no longer told the daemon is "
                      "alive, and restarts it; every thread's stack follows", name,
                      self.watchdog_s, calls.get(name, ""))
        if stale - self._stale and sys.__stderr__ is not None:
            faulthandler.dump_traceback(sys.__stderr__, all_threads=True)
        for name in sorted(self._stale - stale):
            log.warning("%s makes progress again: systemd's watchdog is told the daemon is alive", name)
        self._stale = stale

    def _run(self) -> None:
        while not self._stop.wait(max(0.0, self._next_due() - self.clock())):
            self.tick()

    def _next_due(self) -> float:
        return min(self._status_due, self._ping_due) if self.watchdog_s else self._status_due
