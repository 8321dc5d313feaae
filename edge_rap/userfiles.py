"""Files a user names for edge-rap to read whole (a RAP database.json, a settings file, a device profile): only a
regular file of a size such a file has. /dev/zero was read until memory ran out (a MemoryError's traceback), and a
pipe waited for a writer."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from edge_rap.errors import EdgeRapError

#: The errors `Path.is_file` takes for "no" (no such file, a dangling link, a loop of links), not for a failure.
NOT_THERE = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)

#: More than any database.json or TOML file a household writes (RAP's own databases are kilobytes).
MAX_TEXT_BYTES = 64 << 20


def special_kind(mode: int) -> str | None:
    """What a file that is neither a regular file nor a folder is ("a pipe", "a socket", "a device"), else None."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return "a pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"


def kind_of(path: Path) -> str:
    """What `path`, which exists and is no folder, is, for a message: "a file", or a pipe's, socket's or device's
    kind (a pipe where a folder was named was said to be "a file")."""
    return special_kind(path.stat().st_mode) or "a file"


def read_whole(path: Path, what: str, limit: int = MAX_TEXT_BYTES) -> bytes:
    """The file's bytes. A pipe, socket or device, or a file over `limit`, is refused in one line naming `what` it
    was to be; an OSError (no such file, a folder) is the caller's to say."""
    kind = special_kind(path.stat().st_mode)
    if kind is not None:
        raise EdgeRapError(f"{path}: is {kind}, not {what}")
    with path.open("rb") as f:
        if os.fstat(f.fileno()).st_size > limit:
            raise EdgeRapError(f"{path}: over {limit >> 20} MiB, too large for {what}")
        chunks, size = [], 0  # (not read(limit + 1): that allocates the whole limit for a file of a few bytes)
        while chunk := f.read(1 << 16):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # (grown since: a file still written)
                raise EdgeRapError(f"{path}: over {limit >> 20} MiB, too large for {what}")
    return b"".join(chunks)
