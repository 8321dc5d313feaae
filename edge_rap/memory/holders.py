"""Whether another process has a memory open (`run`, `serve`, `listen`, a long `reindex`): `restore` must not swap
the folder under it. Every SQLite connection to a database in WAL mode holds a shared lock on one byte of its -shm
file (the "DMS" byte, 128) for as long as it is open; asking the kernel who would block an exclusive lock there
names such a process, without taking any lock or opening the database."""

from __future__ import annotations

import fcntl
import os
import re
import struct
from pathlib import Path

#: SQLite's unix VFS: the -shm byte every connection holds a shared lock on while open (UNIX_SHM_DMS).
_DMS = 128
#: struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid (native alignment).
_FLOCK = "hhqqi"
#: A program's name shown as it is (no escape, line break or space from another process's command line).
_PLAIN = re.compile(r"[\w.+-]{1,40}")


def holder(database: Path) -> int | None:
    """The pid of a process that has `database` open (through its -shm), or None where none has (or where that
    cannot be asked: no -shm, a file system without locks, a system other than Linux). Ask only where this process
    has no connection to it: its own are not seen, and closing the descriptor opened here would drop their POSIX
    locks on the file."""
    query = getattr(fcntl, "F_OFD_GETLK", None)  # (Linux's; another system's struct flock differs too)
    if query is None:
        return None
    try:
        fd = os.open(database.with_name(database.name + "-shm"), os.O_RDONLY)
    except OSError:
        return None
    try:
        asked = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, _DMS, 1, 0)
        found = struct.unpack(_FLOCK, fcntl.fcntl(fd, query, asked))
    except OSError:
        return None
    finally:
        os.close(fd)
    return (found[4] if found[4] > 0 else -1) if found[0] != fcntl.F_UNLCK else None


def held_by(pid: int) -> str:
    """What process `pid` is, to say what holds a memory: `edge-rap reindex` (its command), another program's name,
    or, where its command line cannot be read (gone, another pid namespace), what it may be: restore named only the
    daemons (`run`, `serve` or `listen`?) when a `reindex` or `remember` held it."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = [a for a in f.read().decode(errors="replace").split("\0") if a]
    except OSError:
        args = []
    argv = [os.path.basename(a) for a in args[:3]]
    start = next((i for i, a in enumerate(argv) if a in ("edge-rap", "edge_rap")), None)
    if start is not None:  # (the script, run by its interpreter, or `python -m edge_rap`; not a folder named so later)
        from edge_rap.cli import command_of

        command = command_of(args[start + 1:])  # (as given: a memory folder `--memory ~/demo` is not `demo`)
        return f"`edge-rap {command}`" if command else "`edge-rap`"
    if argv and _PLAIN.fullmatch(argv[0]):
        return argv[0]
    return "an edge-rap daemon or command that has it open, or another program"
