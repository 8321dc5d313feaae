"""The one exception type for errors a user can cause; the CLI prints its message on one line."""

from __future__ import annotations

from pathlib import Path


class EdgeRapError(Exception):
    """A problem with the user's input or environment, explained in one line (no traceback)."""


class DeviceError(EdgeRapError):
    """The device's own trouble, never a request's: a file or folder of its own (the memory, the event log) that
    cannot be opened, read or written (a damaged file, a full disk, a read-only or vanished folder). The message
    names `where` for the CLI and the logs; `problem` says it without the path, for the API's clients."""

    def __init__(self, where: Path, problem: str):
        super().__init__(f"{where}: {problem}")
        self.problem = problem


class PartlyDone(DeviceError):
    """A command whose main work is done, though a step after it failed on the device's own files: the problem
    says which, and how to finish it (a forgotten concept whose events the log could not remove)."""


class NeedsReindex(DeviceError):
    """A memory this edge_rap will not search as it is: an older version wrote it, or another model made its
    vectors. The device's state, not a request's fault (the API answers 503, without the memory's path); `edge-rap
    reindex` on the device mends it."""

    def __init__(self, problem: str, where: Path | None = None):
        EdgeRapError.__init__(self, f"{where}: {problem}" if where is not None else problem)
        self.problem = problem
