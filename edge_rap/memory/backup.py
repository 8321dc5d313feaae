"""`edge-rap backup`: one tar file holding a consistent copy of a memory, safe to make while `run` or `serve` write.

The databases are copied by SQLite's backup (one snapshot each, whatever is being committed). The photos and index
files are named by their content and never change once written, but the next writer deletes those no row refers to
any more: a file the snapshot needs that a writer deleted meanwhile is found missing, and a second snapshot is then
taken under the memory's write lock (writers wait, at most for that short second pass), which copies what the first
one lacked. The manifest, last, lists every other member with its sha256."""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import logging
import os
import re
import sqlite3
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from edge_rap import __version__
from edge_rap.daemon.events import EVENTS_DB, EventLog, EventLogError
from edge_rap.daemon.log_damage import check_intact, is_damage
from edge_rap.errors import DeviceError, EdgeRapError
from edge_rap.folders import file_in_the_way, looping_link, reachable, unmounted
from edge_rap.memory.archive import MANIFEST, SECRETS, Counts, Manifest, Member, referred, stranger
from edge_rap.memory.files import DATABASE, beside, fsync_dir, index_digest
from edge_rap.memory.store import BUSY_TIMEOUT_S, DiskFullError, Store, sqlite_error
from edge_rap.output import quoted
from edge_rap.scratch import hold, remove_unheld
from edge_rap.sqlite_threads import WalSnapshot
from edge_rap.userfiles import kind_of, special_kind

log = logging.getLogger(__name__)

Progress = Callable[[Iterable], Iterable]
PARTIAL = ".partial-"  # <FILE>.partial-<pid>: the backup being written


@dataclass
class BackupReport:
    path: Path
    bytes: int
    sha256: str
    counts: Counts
    missing: list[str] = field(default_factory=list)  # stored photos the memory refers to, missing or damaged
    log_damage: str | None = None  # what is damaged in the event log, left out (its name is in `missing` too)

    def to_json(self) -> dict:
        return {"path": str(self.path), "bytes": self.bytes, **self.counts.to_json(), "sha256": self.sha256,
                "missing": self.missing}


@dataclass(frozen=True)
class _Snapshot:
    """A copy of the memory's database and what it refers to."""
    database: Path
    schema: int
    concepts: int
    views: int
    photos: dict[str, str]  # member name -> the sha256 its bytes must have
    index: list[str]  # member names


def back_up(root: Path, target: Path, force: bool = False, with_token: bool = False,
            progress: Progress = lambda items: items, anywhere: bool = False) -> BackupReport:
    """Write the memory at `root` to the tar file `target` (gzip-compressed where its name ends in .gz or .tgz):
    first as `<target>.partial-<pid>` beside it, fsynced, then renamed. Without `with_token` the API's token stays
    out: a backup on a USB stick must not carry the key to the house. A link is followed: the backup replaces the
    file it names (a link to the stick's backup was itself replaced by the new one, on the SD card); a link on its
    path that leads nowhere is refused, and so, unless `anywhere`, is a folder where drives are mounted that none is
    mounted on (a stick not mounted: the backup went into its empty mount point, on the SD card)."""
    if (why := _dangling_link(target)) is not None:
        raise EdgeRapError(why)
    target = Path(os.path.realpath(target)) if target.is_symlink() else target
    if target.is_dir():  # (a drive's own folder, /media/stick, is no "drive not mounted" on the one above it)
        raise EdgeRapError(f"{target}: is a folder; name the backup file to write")
    if not anywhere and (where := unmounted(target.parent)) is not None:
        raise EdgeRapError(f"{os.path.abspath(target.parent)}: no drive is mounted there (a drive not mounted? {where} "
                           "is where drives are mounted); nothing was written (mount it, or --anywhere writes there "
                           "all the same)")
    _refuse_target(root, target, force)
    if not (root / DATABASE).exists():
        raise EdgeRapError(f"{root}: no memory to back up (no {DATABASE}; check --memory)")
    Store(root, readonly=True).close()  # another account's memory, or one that is no sound memory: one line, now
    remove_killed_partials(target)
    partial = target.with_name(f"{target.name}{PARTIAL}{os.getpid()}")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        raise _write_error(target, e) from None
    hold(fd)  # (a backup killed outright leaves it: the next one to `target` removes it)
    try:
        with os.fdopen(fd, "wb") as out:
            sink = Hashing(out)
            with _compressed(sink, target) as stream, \
                    tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                report = _write(root, _Members(tar), with_token, progress)
            out.flush()
            os.fsync(out.fileno())
        _refuse_existing(target, force)  # (made meanwhile by another)
        os.replace(partial, target)
        fsync_dir(target.parent)
    except BaseException as e:
        with contextlib.suppress(OSError):
            partial.unlink()
        if isinstance(e, OSError):
            raise _write_error(target, e) from None
        raise
    return BackupReport(target, sink.size, sink.hash.hexdigest(), report.counts, report.missing, report.log_damage)


def _dangling_link(target: Path) -> str | None:
    """Why a backup is not written through a link on `target`'s path that leads nowhere, as `restore --memory` says
    it: a link to a drive's mount point, the drive not mounted, put the backup on the device's own card, in the
    empty mount point, where the drive once mounted hides it."""
    link = next((p for p in (target, *target.parents)
                 if reachable(p, Path.is_symlink) and not reachable(p, Path.exists)), None)
    if link is None:
        return None
    if (loop := looping_link(link)) is not None:
        return f"{loop}: a link that leads back to itself; nothing was written"
    return (f"{link}: a link to {os.readlink(link)}, which is not there (a drive not mounted?); nothing was written "
            "(name a path without the link to write there)")


def remove_killed_partials(target: Path) -> list[Path]:
    """Remove the `<target>.partial-<pid>` files that backups killed outright (SIGKILL, a power cut) left beside
    `target`, never one a running backup writes; those removed."""
    return [p for p in beside(target, re.escape(target.name + PARTIAL) + r"\d+") if remove_unheld(p, writer(p))]


def writer(partial: Path) -> int:
    """The pid of the backup that writes, or wrote, `partial` (a `<FILE>.partial-<pid>`): one that runs no more left
    it, whatever its age (a backup killed on a full stick, and another started at once, found the stick full)."""
    return int(partial.name.rsplit(PARTIAL, 1)[1])


class Hashing:
    """A file-like sink that passes what is written on to `out` and keeps its sha256 and length."""

    def __init__(self, out) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.out.write(data)
        self.hash.update(data)
        self.size += len(data)
        return len(data)


#: The endings of other kinds of file than the tar (gzip-compressed or not) a backup is: `backup x.zip` wrote a
#: tar that every unzip refused.
OTHER_FORMATS = (".zip", ".7z", ".rar", ".bz2", ".tbz", ".tbz2", ".xz", ".txz", ".zst", ".tzst", ".lz4", ".lzma")


def _refuse_target(root: Path, target: Path, force: bool) -> None:
    if target.name.lower().endswith(OTHER_FORMATS):
        raise EdgeRapError(f"{target}: a backup is a tar file, not {target.suffix}: name it .tar, or .tar.gz or .tgz "
                           "(gzip-compressed); nothing was written")
    _refuse_existing(target, force)
    if not target.parent.is_dir():
        raise EdgeRapError(_no_folder(target.parent))
    if root.resolve() in target.resolve().parents:
        raise EdgeRapError(f"{target}: inside the memory folder it backs up; write it elsewhere (a file there would "
                           "make the folder no memory)")


def _refuse_existing(target: Path, force: bool) -> None:
    """An existing FILE is kept unless forced, and one that is no file (a drive's device, /dev/full, a pipe) even
    then: the rename put the backup in /dev's RAM in the device's place, said "backed up", and wrote no drive."""
    if target.exists() and (kind := special_kind(target.stat().st_mode)):
        raise EdgeRapError(f"{target}: is {kind}, not a file; a backup is written as a file (on a drive: a path in "
                           "the folder it is mounted on); nothing was written")
    if target.exists() and not force:
        raise EdgeRapError(f"{target}: already exists; nothing was written (--force replaces it)")


def _no_folder(folder: Path) -> str:
    """Why the backup's folder is not there: a file where a folder of its path should be (a photo's name taken for
    a folder's) is said as such, not as a folder missing."""
    above = file_in_the_way(folder)
    if above is not None:
        return f"{above}: is {kind_of(above)}, not a folder, so {folder} cannot hold the backup; nothing was written"
    return f"{folder}: no such folder for the backup"


def _compressed(sink: Hashing, target: Path):
    """What the tar is written to: gzip at its usual level 6 where the name ends in .gz or .tgz (tarfile's own
    gzip, level 9, took twice as long for 0.1 % less on photos), else the file itself."""
    if target.name.lower().endswith((".gz", ".tgz")):
        return gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=6)
    return contextlib.nullcontext(sink)


def _write_error(target: Path, e: OSError) -> EdgeRapError:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return EdgeRapError(f"{target}: the disk is full; no backup was written")
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return EdgeRapError(f"{target.parent}: not writable ({e.strerror}); no backup was written")
    if e.errno == errno.ENAMETOOLONG:  # (a name the file system takes, but not with the partial file's ending)
        return EdgeRapError(f"{target}: its name is too long for the partial file written first ({PARTIAL}<pid> after "
                            "it): name it shorter; no backup was written")
    return EdgeRapError(f"{target}: cannot write the backup ({e.strerror}); no backup was written")


class _Members:
    """The tar being written, and the manifest's entry of each member added."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.files: dict[str, Member] = {}
        self.now = time.time()

    def add_bytes(self, name: str, data: bytes) -> None:
        import io

        self._add(name, len(data), hashlib.sha256(data).hexdigest(), io.BytesIO(data))

    def add_file(self, name: str, path: Path) -> None:
        """A file too large to hold in memory (a database's copy): hashed, then streamed in."""
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
            size = f.tell()
            f.seek(0)
            self._add(name, size, digest.hexdigest(), f)

    def _add(self, name: str, size: int, sha256: str, data) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, int(self.now), 0o600
        self.tar.addfile(info, data)
        self.files[name] = Member(size, sha256)


@dataclass(frozen=True)
class _Written:
    counts: Counts
    missing: list[str]
    log_damage: str | None


def _write(root: Path, members: _Members, with_token: bool, progress: Progress) -> _Written:
    """Add every member, the manifest last."""
    missing: list[str] = []
    for locked in (False, True):
        with _write_lock(root) if locked else contextlib.nullcontext(), _memory_snapshot(root) as snap:
            missing = [name for name in progress([*snap.index, *snap.photos])
                       if name not in members.files and not _add_stored(root, members, name, snap.photos.get(name))]
            if missing and not locked:
                continue  # deleted by a writer since the snapshot: again, with writers kept waiting
            members.add_file(DATABASE, snap.database)
            break
    with _events_copy(root) as (events, count, log_damage):
        if events is not None:
            members.add_file(events.name, events)
    for name in SECRETS if with_token else ():
        with contextlib.suppress(FileNotFoundError):
            members.add_bytes(name, (root / name).read_bytes())
    counts = Counts(snap.concepts, snap.views, count)
    photos = [name for name in missing if name in snap.photos]
    for name in missing:
        if name not in snap.photos:  # derived from the database: the restored memory's next writer rebuilds it
            # (a line at each backup a phone asks for: rationed under the server, serve/request_lines.py)
            log.warning("%s: index file %s is missing or damaged and is left out of the backup", root, name)
    members.add_bytes(MANIFEST, Manifest(__version__, snap.schema, members.now, counts, dict(members.files),
                                         os.path.realpath(root)).to_bytes())
    return _Written(counts, photos + ([EVENTS_DB] if log_damage else []), log_damage)


def _add_stored(root: Path, members: _Members, name: str, sha256: str | None) -> bool:
    """Add the stored photo or index file `name` (a photo's bytes checked against their sha256, an index file's
    against its name's digest); whether it was there, whole."""
    try:
        data = (root / name).read_bytes()
    except OSError:
        return False
    digest = hashlib.sha256(data).hexdigest()
    expected = sha256 if sha256 is not None else index_digest(Path(name).name)
    if expected is not None and not digest.startswith(expected):
        return False
    members.add_bytes(name, data)
    return True


@contextlib.contextmanager
def _memory_snapshot(root: Path) -> Iterator[_Snapshot]:
    """The memory's database copied (SQLite's backup, through the project's read path: a read-only folder, another
    account's, an older schema), with the names of the files it refers to; removed afterwards."""
    copy = WalSnapshot(root / DATABASE, "backup")
    store = Store(root, readonly=True)
    try:
        try:
            path = copy.backup(store.db)
        except (OSError, sqlite3.Error) as e:
            full = getattr(e, "errno", None) == errno.ENOSPC or "disk is full" in str(e)  # (SQLite's SQLITE_FULL)
            raise (DiskFullError if full else DeviceError)(
                root / DATABASE, f"cannot copy it into {tempfile.gettempdir()} ({e}): make room there, or set TMPDIR"
            ) from None
        finally:
            store.close()
        with contextlib.closing(sqlite3.connect(path)) as db:
            photos, index = referred(db)
            schema = db.execute("PRAGMA user_version").fetchone()[0]
            concepts = db.execute("SELECT COUNT(*) FROM concepts").fetchone()[0]
            views = db.execute("SELECT COUNT(*) FROM views WHERE kind = 'photo'").fetchone()[0]
        strange = stranger([*photos, *index])
        if strange:
            raise DeviceError(root / DATABASE, f"refers to a file that is not the memory's own ({quoted(strange)}); "
                                               "nothing was backed up")
        yield _Snapshot(path, schema, concepts, views, photos, index)
    finally:
        copy.remove()


@contextlib.contextmanager
def _events_copy(root: Path) -> Iterator[tuple[Path | None, int, str | None]]:
    """The event log copied (SQLite's backup, while the daemon logs on) and its number of events; None where there is
    no log, or where it is damaged (a torn write: the memory is backed up without it), with what is damaged."""
    copy = WalSnapshot(root / EVENTS_DB, "backup")
    events = EventLog(root, readonly=True)
    try:
        damage = None
        try:
            path = events.copy(copy)
            if path is not None:
                with contextlib.closing(sqlite3.connect(path)) as db:
                    check_intact(db)  # (SQLite's backup copies damaged pages as they are)
        except EventLogError:
            damage = events.damage()  # (where it is not damage: said as the log's error, in one line)
            if damage is None:
                raise
        except sqlite3.DatabaseError as e:
            if not is_damage(e):
                raise EventLogError(events.path, f"cannot check its copy ({e})") from None
            damage = str(e)
        finally:
            events.close()
        if damage is not None:
            yield None, 0, damage
            return
        count = 0
        if path is not None:
            with contextlib.closing(sqlite3.connect(path)) as db:
                with contextlib.suppress(sqlite3.Error):  # (a log of before any event was logged)
                    count = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        yield path, count, None
    finally:
        copy.remove()


@contextlib.contextmanager
def _write_lock(root: Path) -> Iterator[None]:
    """The memory's write lock (SQLite's), so that no writer deletes a file while the second pass copies it; a
    folder no process may write (a read-only mount) needs none."""
    db = sqlite3.connect(root / DATABASE, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if "locked" in str(e):
                raise sqlite_error(e, root / DATABASE) from None
        yield
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.close()
