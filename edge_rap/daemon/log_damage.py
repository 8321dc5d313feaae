"""A damaged event log (a torn write, a power cut on an SD card) set aside with every byte, and the rows it still
gives read back: a daemon that runs for months, unattended, keeps logging instead of stopping on it at 3 am."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from edge_rap.memory.files import stamped
from edge_rap.scratch import process_folder

ASIDE = ".damaged-"  # events.sqlite.damaged-20261205T031500Z (-2 after another of the same second), -wal, -shm beside
SIDES = ("", "-wal", "-shm")


def is_damage(e: BaseException) -> bool:
    """Whether SQLite's error says the file is damaged (not busy, full or read-only, which pass): a header torn
    past its first bytes reads as "unsupported file format"."""
    text = str(e)
    return isinstance(e, sqlite3.DatabaseError) and any(
        words in text for words in ("malformed", "not a database", "unsupported file format"))


def check_intact(db: sqlite3.Connection) -> None:
    """Raise SQLite's own error for a damaged file where its quick check finds damage that no read met yet (pages
    of garbage read as rows of nothing); about 0.2 s for a year's log."""
    found = db.execute("PRAGMA quick_check(1)").fetchone()[0]
    if found != "ok":
        raise sqlite3.DatabaseError(f"database disk image is malformed: {' '.join(found.split())}")


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """The memory folder's lock between edge_rap processes while one makes the log or sets a damaged one aside: two
    (a daemon and a `forget`) finding it damaged at once must not set aside the new log the other just started.
    A file system that has no locks (an NFS share without its lock daemon, some FUSE mounts) goes without: that
    rare race is a lesser harm than a log no process can open."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
        yield
    finally:
        os.close(fd)  # (releases the lock)


def set_aside(path: Path) -> Path:
    """Move the log and its -wal and -shm to `<path>.damaged-<UTC stamp>` (and its -wal, -shm), never over a copy
    set aside before; the copy's path. Call under `folder_lock`."""
    aside = stamped(path, ASIDE, lambda aside: any(aside.with_name(aside.name + side).exists() for side in SIDES))
    for side in SIDES:
        with contextlib.suppress(FileNotFoundError):
            os.rename(path.with_name(path.name + side), aside.with_name(aside.name + side))
    return aside


def put_back(aside: Path, path: Path) -> None:
    """Undo `set_aside` where no new log could be started in its place (a full disk): the files begun at `path`
    (nothing committed) removed, and the copy moved back whole, to be set aside again, its rows salvaged, at the
    next write (a new log started empty later would hold none of them). Call under `folder_lock`."""
    for side in SIDES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path.with_name(path.name + side))
    for side in SIDES:
        with contextlib.suppress(FileNotFoundError):
            os.rename(aside.with_name(aside.name + side), path.with_name(path.name + side))


def damaged_copies(log: Path) -> list[Path]:
    """The damaged copies of the log at `log` set aside in its folder, oldest first (their -wal and -shm beside)."""
    if not log.parent.is_dir():
        return []
    return sorted(p for p in log.parent.iterdir()
                  if p.name.startswith(log.name + ASIDE) and not p.name.endswith(("-wal", "-shm")))


@dataclass(frozen=True)
class Salvage:
    """The rows a damaged log still gives, as its tables hold them (ids kept: the order of the events)."""

    events: list[tuple]  # id, kind, name, camera, time_s, wall, box, score, said, snapshot, watch
    watches: list[tuple]  # id, pid, identity, host, started, alive


EVENT_COLUMNS = "id, kind, name, camera, time_s, wall, box, score, said, snapshot"


def salvage(copy: Path) -> Salvage:
    """The rows of a damaged copy still readable, in id order, each one a row the log could have written (a damaged
    page can read as rows of nulls). Read from a private copy of it, as reading it in place could change it (its
    -wal merged in); nothing where that copy cannot be made (no room) or the file is no database at all."""
    with tempfile.TemporaryDirectory(prefix="salvage-", dir=process_folder()) as folder:  # (one killed: removed)
        private = Path(folder) / "events.sqlite"
        try:
            for side in ("", "-wal"):
                if copy.with_name(copy.name + side).exists():
                    shutil.copyfile(copy.with_name(copy.name + side), private.with_name(private.name + side))
        except OSError:
            return Salvage([], [])
        db = sqlite3.connect(private)
        try:
            columns = _readable(db, "SELECT name FROM pragma_table_info('events')", ())
            watch = "watch" if ("watch",) in columns else "NULL"
            events = _events_around_damage(db, f"SELECT {EVENT_COLUMNS}, {watch} FROM events WHERE id > ? ORDER BY id")
            watches = _readable(db, "SELECT id, pid, identity, host, started, alive FROM watches ORDER BY id", ())
            events = [r for r in events if valid_event(r[:10]) and (r[10] is None or type(r[10]) is int)]
            watches = [r for r in watches if _valid_watch(r)]
            return Salvage(sorted(_first_of_each_id(events)), _first_of_each_id(watches))
        finally:
            db.close()


def _events_around_damage(db: sqlite3.Connection, sql: str) -> list[tuple]:
    """The rows of `sql` (ids past `?`, in order) on both sides of damaged stretches: where a read stops at one, it
    starts again 1, 2, 4, ... ids past the furthest row read, up to the table's last id (read down its right edge).
    A read that gets no further than its start (it ends on a garbage row's id) moves on by the skip alone."""
    last = _readable(db, "SELECT MAX(id) FROM events", ())
    end = last[0][0] if last and type(last[0][0]) is int else None
    rows: list[tuple] = []
    after, skip = 0, 0
    while True:
        start, read, whole = after + skip, [], True
        try:
            for row in db.execute(sql, (start,)):
                read.append(row)
        except sqlite3.DatabaseError:
            whole = False
        rows += read
        furthest = max((r[0] for r in read if type(r[0]) is int), default=start)
        if furthest > start:
            after, skip = furthest, 0
        if whole or end is None or after + skip >= end:
            return rows
        skip = max(1, 2 * skip)


def _first_of_each_id(rows: list[tuple]) -> list[tuple]:
    """Each id's first row (a stale page, another page's rows in its place, repeats their ids: the new log takes
    an id once)."""
    first: dict[int, tuple] = {}
    for row in rows:
        first.setdefault(row[0], row)
    return list(first.values())


def _readable(db: sqlite3.Connection, sql: str, args: tuple) -> list[tuple]:
    """The rows of `sql` up to the first damage (or none, where the table cannot be read at all)."""
    rows = []
    try:
        for row in db.execute(sql, args):
            rows.append(row)
    except sqlite3.DatabaseError:
        pass
    return rows


def valid_event(row: tuple) -> bool:
    """Whether a row of `EVENT_COLUMNS` is one the log writes: a reader shows no "<None> None" of a damaged page.
    (About 1 µs a row: `events` reads 10 000.)"""
    id_, kind, name, camera, time_s, wall, box, score, said, snapshot = row
    return (type(id_) is int and (kind == "arrived" or kind == "left") and type(name) is str
            and type(camera) is str and _number(time_s) and _number(wall)
            and (box is None or (type(box) is str and BOX.fullmatch(box) is not None))
            and (score is None or _number(score)) and (said is None or type(said) is str)
            and (snapshot is None or type(snapshot) is str))


NUMBER = r"\s*-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\s*"
BOX = re.compile(rf"\[{NUMBER},{NUMBER},{NUMBER},{NUMBER}\]")  # a box's four numbers, as json.dumps writes them


def _valid_watch(row: tuple) -> bool:
    id_, pid, identity_, host, started, alive = row
    return (type(id_) is int and type(pid) is int and (identity_ is None or type(identity_) is str)
            and type(host) is str and _number(started) and _number(alive))


def _number(value) -> bool:
    return type(value) is float or type(value) is int
