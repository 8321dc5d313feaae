"""This process's own folder in the temporary folder, for the files it writes only to hand on (an uploaded photo,
the WAV piper is writing, a reader's copy of a database), and the removal of those a killed process left.

A process killed with SIGKILL (or by the OOM killer, or a power cut with /tmp on disk) runs no cleanup: a daemon
restarted after crashes for months filled /tmp with them, often a small tmpfs on a device. So every such file
lives in `$TMPDIR/edge-rap-pid<pid>-XXXXXXXX/`, a folder the process holds a shared flock on for its whole life.
The kernel drops the lock however the process ends; the next process that makes its own folder removes every
one it can lock exclusively. That never touches a live process's folder, whatever pid reuse or another pid
namespace sharing /tmp does to pids (the pid in the name is for a person reading /tmp), and systemd-tmpfiles'
age-based cleaning also skips a folder so locked, so a run of months keeps its own."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

#: `edge-rap-pid<pid>-` and mkdtemp's eight random characters.
_NAME = re.compile(r"edge-rap-pid\d+-[a-z0-9_]{8}")
#: A folder younger than this is left alone: its process may be between making it and locking it.
GRACE_S = 60.0


@dataclass
class _Held:
    folder: Path
    lock_fd: int
    pid: int


_held: _Held | None = None
_making = threading.Lock()


def process_folder() -> Path:
    """This process's folder, made (and the dead processes' removed) at the first call; made again where it was
    removed under a running process."""
    global _held
    with _making:
        if _held is None or _held.pid != os.getpid() or not _held.folder.is_dir():
            if _held is None:
                atexit.register(_remove_own)
            elif _held.pid == os.getpid():
                os.close(_held.lock_fd)
            remove_leftovers()
            folder = Path(tempfile.mkdtemp(prefix=f"edge-rap-pid{os.getpid()}-"))
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            hold(fd)  # (a file system without locks: no process can lock it to remove)
            _held = _Held(folder, fd, os.getpid())
        return _held.folder


def private_folder(kind: str) -> Path:
    """A new folder of this process's, named after what it holds (`piper-`, `upload-`); its maker removes it."""
    return Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=process_folder()))


def remove_leftovers(root: Path | None = None) -> list[Path]:
    """Remove the folders in the temporary folder (or `root`) that processes now dead left (none held locked, none
    changed in the last minute); the ones removed. A long-running command calls it as it starts, whatever it will
    make: a daemon that crashed with a question half-spoken is restarted by one that may never speak."""
    root = root if root is not None else Path(tempfile.gettempdir())
    removed = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        if _NAME.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False) and remove_unheld(Path(entry.path)):
            removed.append(Path(entry.path))
    return removed


def hold(fd: int) -> None:
    """Keep the file or folder open as `fd` from `remove_unheld` for as long as `fd` is open (a shared flock: the
    kernel drops it however the process ends). A file system without locks goes without."""
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_SH)


def alive(pid: int) -> bool:
    """Whether a process `pid` runs (another account's too); a zombie, killed and not yet reaped by its parent, runs
    no more: it holds nothing (a restore's launcher that had not waited for the one it killed left its folder to the
    next restore, as if it ran)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # (no pid is that large: a name's digits were a traceback)
        return False
    except PermissionError:  # another account's process
        pass
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:  # "pid (name) state ...": the name may hold ") "
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):  # (no /proc: not said, so not one)
        return False
    return state in (b"Z", b"X")


@contextlib.contextmanager
def unheld(path: Path, grace_s: float = GRACE_S, maker: int | None = None) -> Iterator[bool]:
    """Whether the file or folder at `path` is a dead process's: none holds it (`hold`) and it has not changed in
    the last `grace_s` (its maker may be between making and holding it), or its `maker` (the pid its name holds)
    runs no more (a restore killed outright left its folder, as large as the archive, to the restore started at
    once after it, and a full disk refused that one). Where so, no process can hold it until the block ends (an
    exclusive flock), so that it can be removed."""
    try:
        if time.time() - os.lstat(path).st_mtime < grace_s and (maker is None or alive(maker)):
            yield False
            return
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # gone meanwhile, another account's, or a link
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its process is alive (or another process is removing it)
            yield False
            return
        yield True
    finally:
        os.close(fd)


def is_unheld(path: Path, grace_s: float = GRACE_S, maker: int | None = None) -> bool:
    with unheld(path, grace_s, maker) as dead:
        return dead


def remove_unheld(path: Path, maker: int | None = None) -> bool:
    """Remove the file or folder at `path` where it is a dead process's (`unheld`); whether it was."""
    with unheld(path, maker=maker) as dead:
        if dead:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return dead


def _remove_own() -> None:
    if _held is not None and _held.pid == os.getpid():
        shutil.rmtree(_held.folder, ignore_errors=True)
