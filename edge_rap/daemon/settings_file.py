"""`run --config`'s file edited while `run` runs: it is read once, at the start, so nothing changes until a restart.

Said once per edit, in the log and on `systemctl status`: a household that added a camera or changed the cooldown
in /etc/edge-rap/run.toml saw nothing happen, and was not told why. The file as it is now is checked as a restart
would read it, so that one a restart would refuse (the service then failing over and over) is said at once.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from edge_rap.daemon.config import checked_run_file
from edge_rap.errors import EdgeRapError
from edge_rap.userfiles import read_whole

log = logging.getLogger(__name__)


def _identity(path: Path) -> tuple[int, int, int] | None:
    """What tells one version of the file from another (an editor may write a new file in its place); None while
    it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def _content(path: Path) -> bytes | None:
    """The file's bytes, None while it cannot be read as `run` reads it (a pipe put in its place is not waited on)."""
    try:
        return read_whole(path, "a TOML settings file")
    except (OSError, EdgeRapError):
        return None


@dataclass
class SettingsFile:
    """The settings file `run` read, as it was when read."""

    path: Path
    seen: tuple[int, int, int] | None
    read: bytes | None  # its bytes as `run` read them: an edit undone is no edit
    looked: bytes | None  # its bytes at the last look: a file touched, or written again the same, is no new edit
    edited: bool = False  # since `run` read it
    refused: bool = False  # as it is now, by a restart: the status line must not tell to restart into a failure

    @classmethod
    def before_reading(cls, path: Path) -> SettingsFile:
        """Taken before `run` reads the file: an edit while it is read is said (at worst a restart not needed), not
        lost."""
        seen = _identity(path)  # (first: an edit between the two is a change of it at the first look)
        content = _content(path)
        return cls(path, seen, content, content)

    def look(self) -> None:
        """Say an edit since the last look, once, with whether a restart would take the file as it is now; and an
        edit undone, which no restart is needed for (the status line told to restart for ever)."""
        now = _identity(self.path)
        if now == self.seen:
            return
        self.seen, content = now, _content(self.path)
        if content == self.looked:
            return
        self.looked = content
        if content is not None and content == self.read:
            if self.edited:
                log.warning("%s is again as run read it at its start: no restart is needed", self.path)
            self.edited = self.refused = False
            return
        try:
            checked_run_file(self.path)
            verdict, refused = "restart run to use it (`systemctl restart edge-rap` for the service)", False
        except EdgeRapError as e:
            why = str(e).removeprefix(str(self.path)).removeprefix(":").strip()  # (named once, first)
            verdict, refused = f"a restart would refuse it as it is now: {why}", True
        self.edited, self.refused = True, refused  # together: the status line is made in systemd's thread
        log.warning("%s changed; run goes on with the settings it read at its start: %s", self.path, verdict)

    def status(self) -> str:
        """For the status line: the edit waiting for a restart (or one a restart would refuse), or nothing."""
        if not self.edited:
            return ""
        return f"; {self.path.name} changed: " + ("a restart would refuse it (see the log)" if self.refused
                                                  else "restart to use it")
