"""The process's limit on open files: raised for the companion API's connections, and given back to the programs it
starts (piper, espeak-ng, the audio player), which would otherwise inherit the raised one.

systemd's advice, which this follows: a program that needs many files raises its own soft limit, and its children get
the one it started with (1024 under systemd), since a program that uses select() fails on a descriptor past 1023, and
one that closes every descriptor up to its limit at start makes 64 times the calls."""

from __future__ import annotations

import logging
import resource
import subprocess

log = logging.getLogger(__name__)

#: The open files the server asks for (its soft limit raised to this, or to the hard limit where that is lower).
OPEN_FILES = 65536

_started_with: int | None = None  # the soft limit before this process raised it; None: never raised


def more_open_files() -> None:
    """Raise the soft limit on open files towards the hard one: at systemd's default of 1024, a client on the network
    that opened a thousand connections and sent nothing (a TLS handshake is waited for 30 s, before the connection
    limits see it) left the server no file to accept anyone with (systemd's advice: a program that does not use
    select() raises its own soft limit). OPEN_FILES is many times what the connection limits keep open."""
    global _started_with
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as e:  # (a container's own cap): the server works, with fewer connections
            log.warning("cannot raise the limit on open files from %d to %d (%s)", soft, wanted, e)
            return
        if _started_with is None:
            _started_with = soft


class Child(subprocess.Popen):
    """A program started as subprocess.Popen starts it, given back the soft limit on open files this process started
    with. It is set on the child by prlimit(2) as soon as it runs: subprocess has no way to set it between fork and
    exec but `preexec_fn`, Python run in a forked copy of a process with threads, which may deadlock. So for the
    instant between its start and that call the program has the raised limit: one that reads it later (piper, once
    its voice is loaded; espeak-ng and a player, at their first line) has the one this process started with. A system
    without prlimit (macOS) leaves it the raised one, as before."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if _started_with is None or not hasattr(resource, "prlimit"):
            return
        try:
            resource.prlimit(self.pid, resource.RLIMIT_NOFILE,
                             (_started_with, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        except (ProcessLookupError, PermissionError):  # (ended already; or a set-uid program, which is not ours)
            pass
