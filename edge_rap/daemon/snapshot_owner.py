"""Which memory a `--snapshots` folder is: a start deletes the snapshots there that its own log does not name (a run
killed between a picture and its event), so a folder two memories wrote to lost the other's, named by its events."""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

from edge_rap.errors import EdgeRapError
from edge_rap.memory.files import DATABASE, file_identity

MARKER = ".edge-rap-memory"

log = logging.getLogger(__name__)


def claim(folder: Path, memory: Path, since_ms: int) -> int:
    """Make `folder` the memory at `memory`'s, or find that it is: the time (ms since the epoch, as the snapshots'
    names) from which the snapshots there are this memory's alone. A folder of no memory yet (one an older edge_rap
    wrote, which another memory may have shared) is taken from `since_ms` on: none written before is deleted as
    unnamed. One whose memory is no longer where it was (moved to another device, deleted), or whose path holds
    another memory folder now (a drive swapped under one mount point, a restore, another device's memory of the same
    path on a shared folder), is taken anew so; one whose memory is still there is refused in one line. A marker
    that cannot be written (a full disk: the folder was checked writable) is said and the folder taken from
    `since_ms` for this run alone: a daemon must start on a full disk, and none of what is there already is
    deleted."""
    marker = folder / MARKER
    held = _read(marker)
    if held is not None:
        owner, since, which = held
        if file_identity(owner) == file_identity(memory):  # (by another path too: a link, the drive mounted elsewhere)
            if which == _which(memory):
                return since
        elif _still_there(owner):
            raise EdgeRapError(f"--snapshots {folder}: it holds the snapshots of the memory at {owner}, which this "
                               "memory's start would delete (those its own events do not name): give each memory a "
                               "folder of its own")
    partial = folder / f"{MARKER}.{os.getpid()}"
    try:
        partial.write_text(json.dumps({"memory": str(memory.absolute()), "since_ms": since_ms,
                                       "which": _which(memory)}))
        os.replace(partial, marker)
    except OSError as e:
        partial.unlink(missing_ok=True)
        log.warning("--snapshots %s: cannot write %s, which says whose it is (%s): only this run's snapshots there "
                    "are taken for this memory's", folder, MARKER, e.strerror)
    return since_ms


def _still_there(memory: Path) -> bool:
    """Whether a memory is at `memory`: one in a folder this account may not search (another account's: a run as
    root wrote the marker, and the service's account runs) may be, and is taken as there (Path.exists raised)."""
    try:
        return (memory / DATABASE).exists()
    except PermissionError:
        return True


def _which(memory: Path) -> list:
    """Which memory folder is at `memory` on which device: its path alone named the memory of any device of the same
    path (the systemd unit's /var/lib/edge-rap) on a shared folder, and one put in its place, whose start then
    deleted the other's snapshots, which its events named."""
    try:
        device = Path("/etc/machine-id").read_text().strip()
    except OSError:
        device = ""
    return [device or socket.gethostname(), *(file_identity(memory) or ())]


def _read(marker: Path) -> tuple[Path, int, list | None] | None:
    """The memory a marker names, since when, and which folder (`_which`; None in a marker of before: taken anew);
    None for none, or one no edge_rap wrote (taken anew)."""
    try:
        held = json.loads(marker.read_text())
        return Path(held["memory"]), int(held["since_ms"]), held.get("which")
    except (OSError, ValueError, TypeError, KeyError):
        return None
