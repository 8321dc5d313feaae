"""The memory's own files on disk: what their names look like, so that cleanup never touches anything else,
and the durable rename that makes a written file survive a power cut."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import time
from pathlib import Path
from typing import Callable

from edge_rap.errors import DeviceError, EdgeRapError
from edge_rap.folders import looping_link, reachable
from edge_rap.userfiles import kind_of

DATABASE = "memory.sqlite"
#: The database and its WAL: what a reader of the memory reads.
DATABASE_FILES = (DATABASE, DATABASE + "-wal")
#: The memory itself at the top of its folder: the database (with WAL's files), its two folders, the daemon's event
#: log (and its damaged copies set aside, daemon/log_damage.py).
_MEMORY_DATA = (r"(memory|events)\.sqlite(-wal|-shm|-journal)?|events\.sqlite\.damaged-[0-9TZ-]+(-wal|-shm)?"
                r"|images|index")
MEMORY_DATA = re.compile(_MEMORY_DATA)
#: What a memory folder may hold at its top level: the memory, the API's token and address, and what the default
#: home beside it holds (the model cache, the demo); hidden files and a file system's lost+found are ignored.
OWN_TOP_LEVEL = re.compile(_MEMORY_DATA + r"|models|api-token|serve\.json|demo|\..*|lost\+found")
#: images/<first two hex digits>/<sha256><suffix>, and a writer's temporary file beside it.
_IMAGE = re.compile(r"(?P<sha>[0-9a-f]{64})(\.[A-Za-z0-9]{1,8})?(\.\d+\.tmp)?")
#: index/<space>-<generation>.<digest>.usearch (the digest: the first 16 hex digits of the file's sha256; none in a
#: memory of before), and a writer's temporary file beside it.
_INDEX = re.compile(r"[A-Za-z0-9_.-]+-\d+(\.(?P<digest>[0-9a-f]{16}))?\.usearch(\.tmp)?")


def is_own_image(path: Path) -> bool:
    """A file under images/ that a memory wrote: named by its content hash, in the folder of its first two digits."""
    match = _IMAGE.fullmatch(path.name)
    return bool(match) and path.parent.name == match.group("sha")[:2]


def is_own_index(path: Path) -> bool:
    return bool(_INDEX.fullmatch(path.name))


def index_digest(name: str) -> str | None:
    """The digest an index file's name carries, which its bytes must have (damage inside a file whose header is
    intact would otherwise go unseen: garbage vectors, or vectors under another concept's key)."""
    match = _INDEX.fullmatch(name)
    return match.group("digest") if match else None


def stored_files(root: Path) -> list[Path]:
    """The photos and index files a memory wrote under `root`."""
    images = [p for p in (root / "images").glob("*/*") if is_own_image(p)]
    index = [p for p in (root / "index").glob("*") if is_own_index(p)] if (root / "index").is_dir() else []
    return images + index


def foreign_entries(root: Path) -> list[str]:
    """Names at the top of `root` that no memory writes (a folder that holds them is not a memory)."""
    if not root.is_dir():
        return []
    try:
        return sorted(p.name for p in root.iterdir() if not OWN_TOP_LEVEL.fullmatch(p.name))
    except OSError as e:
        raise DeviceError(root, f"cannot list the memory folder ({e.strerror})") from None


def not_a_folder(path: Path) -> str | None:
    """Why `path`, named as a memory folder, can hold none: a file, or a link to nothing (its drive not mounted:
    read as an empty memory, and `remember` said "cannot write (File exists)")."""
    if (loop := looping_link(path)) is not None:
        return f"{loop}: a link that leads back to itself, not a memory folder (check --memory)"
    if reachable(path, Path.is_symlink) and not reachable(path, Path.exists):
        return (f"{path}: a link to {os.readlink(path)}, which is not there (a drive not mounted? else make that "
                "folder, or check --memory)")
    if path.exists() and not path.is_dir():
        return f"{path}: is {kind_of(path)}, not a memory folder (check --memory)"
    return None


def not_a_memory(path: Path) -> str | None:
    """Why `path`, named as a memory folder, is none (a file, a link to nothing; a folder of other files, without
    the database), so that nothing is read or made there as if it were; None for a memory, an empty folder or
    nothing there."""
    if (why := not_a_folder(path)) is not None:
        return why
    if not (path / DATABASE).exists() and foreign_entries(path):
        return f"{path}: not an edge-rap memory (no {DATABASE}; check --memory)"
    return None


def private_folder(path: Path) -> None:
    """Make the memory folder (and missing parents) if it is missing, readable by its owner only: the household's
    photos, sightings and API token are no other account's on the device. One that exists keeps its mode (a
    service's folder, a group the household chose)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


#: The room SQLite needs beside a database to open it for a write: its 32 KiB -shm, and the -wal's first pages.
SQLITE_ROOM = 64 * 1024


def nearly_full(where: Path) -> bool:
    """Whether the disk holding `where` has less room than SQLite needs to open a write (`SQLITE_ROOM`): SQLite
    says "disk I/O error", not "full", where it cannot make its -shm."""
    try:
        return shutil.disk_usage(where.parent).free < SQLITE_ROOM
    except OSError:
        return False


def file_identity(path: Path) -> tuple[int, int] | None:
    """A file's or folder's (device, inode), which another file put at its path (a drive mounted again, a file
    replaced) does not share; None where nothing is there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def memory_away(root: Path, seen: tuple[int, int] | None) -> bool:
    """Whether the memory folder once `seen` (its file_identity) is away: gone, or another folder in its place (the
    empty mount point of its drive, unmounted) that holds no memory's database. Nothing is made there: a file made
    in the mount point would be hidden by the drive when it is mounted again, and hide nothing that was lost."""
    return file_identity(root) != seen and not (root / DATABASE).exists()


def stamped(path: Path, infix: str, taken: Callable[[Path], bool] = Path.exists) -> Path:
    """`<path><infix><UTC stamp>` (`-2`, `-3` ... after one of the same second) that is not `taken`: where a file or
    folder is set or moved aside, never over one set aside before."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    names = (f"{path.name}{infix}{stamp}{'' if n == 1 else f'-{n}'}" for n in itertools.count(1))
    return next(aside for aside in map(path.with_name, names) if not taken(aside))


def beside(path: Path, pattern: str) -> list[Path]:
    """The entries in `path`'s folder whose names are `pattern` (a regular expression), sorted: what a command
    left there (a partial file, a folder set aside)."""
    try:
        return sorted(p for p in path.parent.iterdir() if re.fullmatch(pattern, p.name))
    except OSError:
        return []


def fsync_dir(path: Path) -> None:
    """Make a rename into `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def memory_stamp(root: Path) -> tuple:
    """Changes whenever a process, this one too, commits to the memory (SQLite's WAL and main file grow or move).
    An empty WAL is no commit: the first reader of a closed memory makes one."""
    stamp = []
    for name in (DATABASE, DATABASE + "-wal"):
        try:
            st = os.stat(root / name)
            stamp.append((st.st_mtime_ns, st.st_size, st.st_ino) if st.st_size or name == DATABASE else None)
        except OSError:
            stamp.append(None)
    return tuple(stamp)


def refuse_what_is_not_a_sound_memory(root: Path) -> None:
    """Before a writer creates or cleans anything, and before a reader answers "none of my concepts" (or a
    command hands out a token for it): a folder holding other files is not a memory, and a memory whose database
    is gone or empty while its photos remain must be restored, not started afresh (a writer's first cleanup
    would delete every photo) nor read as empty. A file is no memory folder either: `remember --memory notes.txt`
    was "cannot write (File exists)"."""
    if (why := not_a_folder(root)) is not None:
        raise EdgeRapError(why)
    database = root / DATABASE
    if database.exists() and database.stat().st_size > 0:
        return
    stored = stored_files(root)
    if stored:
        raise EdgeRapError(f"{root}: the memory's database {DATABASE} is missing or empty, but {len(stored)} stored "
                           f"files remain; nothing was touched (restore {DATABASE} from a backup, or move the folder "
                           "away)")
    foreign = foreign_entries(root)
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise EdgeRapError(f"{root}: not an edge-rap memory (it holds {shown}); use an empty or new folder")
