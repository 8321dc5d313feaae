"""Whether this account may read a memory: one the daemon keeps as a system account (`edge-rap`) is not readable
by a person's own account, and a command run as them says so in one line, naming the owner, not a traceback."""

from __future__ import annotations

import errno
import os
import pwd
from pathlib import Path

from edge_rap.errors import DeviceError
from edge_rap.folders import looping_link


def refuse_unreadable(root: Path, names: tuple[str, ...]) -> None:
    """Raise a DeviceError where this account may not list the memory folder `root` or read one of its files
    `names` (those that are there). A folder or file not there yet is no refusal: the callers say that themselves.
    The files are asked about, never opened: closing a descriptor of a database drops every POSIX lock this process
    holds on it, its SQLite connections' too, and another process's last close then deletes the -wal they write on
    (their commits lost, the database damaged)."""
    for path in (root, *(root / name for name in names)):
        try:
            if path == root:
                os.scandir(path).close()
            elif path.exists() and not os.access(path, os.R_OK, effective_ids=True):
                raise PermissionError
        except (FileNotFoundError, NotADirectoryError):
            continue
        except PermissionError:
            owner = _owner(path)
            raise DeviceError(path, f"this account ({account_name(os.geteuid())}) may not read it: run the command as "
                                    f"the account that owns the memory, or with sudo -u {owner}") from None
        except OSError as e:  # (a traceback)
            if e.errno != errno.ELOOP or (loop := looping_link(path)) is None:
                raise
            raise DeviceError(loop, "a link that leads back to itself, not a memory folder (check --memory)") from None


def locked_too_long(folder: Path, error: Exception) -> bool:
    """Whether a reader's failed `mode=ro` is a lock held past the busy timeout in a folder this account may write:
    that is said, never a reason to read the database as immutable or copy it (the copy's close drops this process's
    locks on it, as above). Any other failure falls back as in a read-only folder: in one this account may write, a
    -shm it may not open (the daemon's account owns it, 0600, in a folder its group may write; a crashed writer of
    another account left it) fails as "unable to open database file", and a network mount's locking fails too."""
    return "is locked" in str(error) and os.access(folder, os.W_OK, effective_ids=True)


def _owner(path: Path) -> str:
    """The account that owns `path`, or its nearest folder this account may look at."""
    for candidate in (path, *path.parents):
        try:
            return account_name(candidate.stat().st_uid)
        except OSError:
            continue
    return "OWNER"


def account_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # an account the device does not name (a memory copied from another device)
        return str(uid)
