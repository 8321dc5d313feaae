"""What the memory's database and the event log both need to share SQLite files between threads for months:
one connection per thread, and a reader's private copy of a database whose -wal a read-only folder holds."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Generic, TypeVar

from edge_rap.live_set import LiveSet
from edge_rap.scratch import private_folder

Tag = TypeVar("Tag")
log = logging.getLogger("edge_rap")


#: Every ThreadConnections of this process: those of one file give up their read-only connections together.
_ALL: "LiveSet[ThreadConnections]" = LiveSet()


def truncate_wal(db: sqlite3.Connection, wait_ms: int = 1000) -> None:
    """Merge the -wal into the database and cut it to nothing, after a delete that must not stay readable: the
    -wal keeps the page images of before the delete until they happen to be written over, for months under a
    daemon that holds the file open (a forgotten concept's name, description and sightings). Another
    connection in the middle of a read or a write for over `wait_ms` leaves it as it is (SQLite answers "busy" in
    the checkpoint's row, not as an error): what was deleted stays deleted, and a reader must not hold up a forget
    for long; nor does a checkpoint that fails (a full disk) undo it. Either is said: the -wal (or, under a reader
    of before the delete, the database's own pages) still holds what was deleted."""
    where = "the database"
    try:
        where = db.execute("PRAGMA database_list").fetchone()[2]
        waited = db.execute("PRAGMA busy_timeout").fetchone()[0]
        db.execute(f"PRAGMA busy_timeout = {wait_ms}")
        try:
            busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        finally:
            db.execute(f"PRAGMA busy_timeout = {int(waited)}")
        if not busy:
            return
        why = f"another connection was reading or writing it for over {wait_ms / 1000:g} s"
    except sqlite3.Error as e:
        why = str(e)
    log.warning("%s: what was deleted may stay readable in it or its -wal until written over, or until every program "
                "that has it open closes it (%s)", where, why)


class ThreadConnections(Generic[Tag]):
    """One connection per thread (a connection must not carry several threads' transactions), each with a tag
    its owner checks (a generation, the file it was opened on). A thread that ended has its connection closed when
    another thread stores one, so a server's worker threads, which come and go for months, never leave files open.

    SQLite opens a file read-only where it cannot be written then (its drive mounted back read-only, an SD card the
    kernel remounted so), and the connection stays read-only when the file can be written again: every write of a
    daemon that runs for months would fail until a restart. Once `database` can be written, the first thread to
    use such a connection gives up (closes) every thread's: SQLite shares a file's WAL index (-shm) between the
    connections of a process, read-only while any that opened it so remains, so a new one could not write either
    (those of every ThreadConnections of the file: a household opens its memory's database twice).
    (Another thread that was using its connection at that moment has that one query fail, once.)"""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.lock = threading.Lock()
        self._by_thread: dict[threading.Thread, tuple[sqlite3.Connection, Tag, bool]] = {}  # (.., writable then)
        _ALL.add(self)

    def mine(self) -> tuple[sqlite3.Connection, Tag] | None:
        """This thread's connection and its tag; None where it has none (or one opened read-only, given up)."""
        thread = threading.current_thread()
        kept = self._by_thread.get(thread)
        if kept is None:
            return None
        db, tag, writable = kept
        if not writable and os.access(self.database, os.W_OK):
            for keeper in [k for k in _ALL.members() if k.database == self.database]:  # (a memory opened twice too)
                keeper._give_up_read_only()
            return None
        return db, tag

    def _give_up_read_only(self) -> None:
        """Close every thread's connection that was opened read-only; their threads open new ones."""
        with self.lock:
            read_only = [t for t, (_, _, could) in self._by_thread.items() if not could]
            given_up = [self._by_thread.pop(t)[0] for t in read_only]
        for db in given_up:
            db.close()

    def keep(self, db: sqlite3.Connection, tag: Tag) -> None:
        """Store this thread's connection (call with `lock` held); the connections of threads that ended close."""
        for ended in [t for t in self._by_thread if not t.is_alive()]:
            self._by_thread.pop(ended)[0].close()
        self._by_thread[threading.current_thread()] = (db, tag, os.access(self.database, os.W_OK))

    def close_mine(self) -> None:
        """Close this thread's connection, if it has one (call with `lock` held)."""
        kept = self._by_thread.pop(threading.current_thread(), None)
        if kept is not None:
            kept[0].close()

    def close_all(self) -> None:
        """Close every thread's connection (call with `lock` held)."""
        for db, _, _ in self._by_thread.values():
            db.close()
        self._by_thread.clear()


class WalSnapshot:
    """A private copy of a database and its -wal, made once. `mode=ro` needs the -shm file, which SQLite cannot
    make in a read-only folder (a read-only mount, a copy from a device): with a -wal there, the commits it holds
    are read from this copy (nobody can write a read-only folder anyway). A copy can also be taken from an open
    connection (`backup`), for a reader that must change its copy (upgrade an older schema) and never the file."""

    def __init__(self, database: Path, kind: str):
        self.database = database
        self.kind = kind  # its folder's name in this process's (edge_rap/scratch.py)
        self._lock = threading.Lock()
        self._folder: Path | None = None

    @property
    def made(self) -> bool:
        return self._folder is not None

    def path(self) -> Path:
        """The copy's database file, copied at the first call."""
        def copy_files(folder: Path) -> None:
            for name in (self.database.name, self.database.name + "-wal"):
                shutil.copyfile(self.database.with_name(name), folder / name)

        return self._made(copy_files)

    def backup(self, db: sqlite3.Connection) -> Path:
        """The copy's database file, made at the first call (of this or `path`) from what `db` reads: SQLite's
        backup, one consistent snapshot wherever `db` reads it from (a -wal included)."""
        def back_up(folder: Path) -> None:
            copy = sqlite3.connect(folder / self.database.name)
            try:
                db.backup(copy)
            finally:
                copy.close()

        return self._made(back_up)

    def _made(self, fill: Callable[[Path], None]) -> Path:
        """The copy's database file: where none is made yet, a new private folder that `fill` fills; one that
        fails (a full temp folder) leaves no folder behind."""
        with self._lock:
            if self._folder is None:
                folder = private_folder(self.kind)
                try:
                    fill(folder)
                except BaseException:
                    shutil.rmtree(folder, ignore_errors=True)
                    raise
                self._folder = folder
            return self._folder / self.database.name

    def remove(self) -> None:
        with self._lock:
            if self._folder is not None:
                shutil.rmtree(self._folder, ignore_errors=True)
                self._folder = None
