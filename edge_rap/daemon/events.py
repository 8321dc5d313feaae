"""The event log: who arrived and left, on which camera, when, and what was said; SQLite (WAL) in the memory
folder beside the concepts, with optional snapshots kept under limits of age and count.

Forgetting a concept removes its events and snapshots too: the household's privacy is part of the product.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import re
import socket
import sqlite3
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import numpy as np

from edge_rap.daemon.clock import plausible, steady_now
from edge_rap.daemon.log_damage import (EVENT_COLUMNS, Salvage, check_intact, damaged_copies, folder_lock,
                                        is_damage, put_back, salvage, set_aside, valid_event)
from edge_rap.daemon.snapshot_owner import claim
from edge_rap.errors import DeviceError, EdgeRapError
from edge_rap.folders import writable_folder
from edge_rap.iso_time import read_iso
from edge_rap.liveness import LONG_CALL_S
from edge_rap.memory.access import locked_too_long, refuse_unreadable
from edge_rap.memory.files import file_identity, memory_away, nearly_full, private_folder
from edge_rap.output import quoted
from edge_rap.said_once import SaidOnce
from edge_rap.sqlite_threads import ThreadConnections, WalSnapshot, truncate_wal
from edge_rap.types import Box, Event
from edge_rap.wording import counted

log = logging.getLogger(__name__)
T = TypeVar("T")

EVENTS_DB = "events.sqlite"
#: The log and its WAL: what a reader of it reads.
EVENTS_FILES = (EVENTS_DB, EVENTS_DB + "-wal")
SNAPSHOT_NAME = re.compile(r"^\d{13}-[0-9a-f]{8}\.jpg$")
#: SQLite's code for a full disk: sqlite3.SQLITE_FULL is Python 3.11's (on 3.10 its lookup failed every refused write)
SQLITE_FULL = 13
#: A snapshot named further ahead of a clock that is set was named by a clock once far ahead (`Snapshots.settled`).
AHEAD_S = 86400.0
#: A running daemon's watch beats every 10 s from its loop, which a call may rightly hold for up to LONG_CALL_S (a
#: model loading at the first person seen): a watch silent longer, a minute's clock difference between hosts
#: allowed, is of a daemon that no longer runs.
SILENT_S = LONG_CALL_S + 60.0
#: Another host's watch silent this long is of a daemon gone for good (killed, its host off, the memory's drive moved
#: to this device): any start closes its visits and deletes its row, as this host's dead ones'. A day, not
#: `SILENT_S`: a row deleted under a daemon that still runs (hung, or its clock far behind) would have its visits read
#: as ended while it watches.
ABANDONED_S = 86400.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    camera TEXT NOT NULL,
    time_s REAL NOT NULL,
    wall REAL NOT NULL,
    box TEXT,
    score REAL,
    said TEXT,
    snapshot TEXT
);
CREATE INDEX IF NOT EXISTS events_wall ON events (wall);
CREATE INDEX IF NOT EXISTS events_name ON events (name);
CREATE INDEX IF NOT EXISTS events_place ON events (name, camera);
CREATE TABLE IF NOT EXISTS watches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pid INTEGER NOT NULL,
    identity TEXT,
    host TEXT NOT NULL,
    started REAL NOT NULL,
    alive REAL NOT NULL
);
"""


#: A watch's newest wall time among the events it logged after event `id`: a later sign of life than its last beat
#: (a backup taken as <bo> arrived beside <mochi> had <mochi> leave at the beat a second before, as though the two
#: were never in view together). Only events logged after the arrival count: an older one timed later (the clock set
#: back since) is no sign that the daemon lived past it. (SQLite reads it down the `wall` index, or by the id range.)
_LIVED_AFTER = "SELECT MAX(wall) FROM events WHERE id > ? AND watch IS ?"

#: How many events `EventLog.newest` reads at once (a few hundred KB), each batch in a read of its own.
BATCH = 1000


class EventLogError(DeviceError):
    """The event log cannot be opened, read or written (a damaged file, a full disk, a read-only folder)."""


class EventLogFull(EventLogError):
    """The event log cannot take an event for want of room (SQLITE_FULL): deleting a file may make it, where waiting
    for a lock another process holds would not."""


@dataclass(frozen=True)
class SnapshotPolicy:
    folder: Path
    max_age_s: float = 7 * 24 * 3600.0
    max_count: int = 1000


def parse_duration(text: str) -> float | None:
    """Seconds from `30s`, `10m`, `2h`, `1d` or `1w` (`--since`, `backup-every`); None for any other text."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if match is None:
        return None
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}[match.group(2)]


def parse_since(text: str, now: float | None = None, option: str = "--since") -> float:
    """A wall-clock time from `30s`, `10m`, `2h`, `1d`, `1w` ago (what a household asks of a week), or an ISO
    date-time (`iso_time.read_iso`: the same on every Python, 3.10's fromisoformat, a Jetson's, refused `Z`,
    `20261205`, `T1000` and `+0100`); one in UTC may end in `Z`, as JavaScript's toISOString and `date -u +%FT%TZ`
    write it. A date with an offset is that day's midnight there (3.11 read `2026-12-07Z` as local midnight, its
    offset dropped). `option` names it in the error (`--until`)."""
    now = time.time() if now is None else now
    seconds = parse_duration(text)
    if seconds is not None:
        return now - seconds
    try:
        return read_iso(text).timestamp()
    except ValueError:
        raise EdgeRapError(f"{option} {quoted(text)}: use 30s, 10m, 2h, 1d, 1w or an ISO date-time") from None


class EventLog:
    """Appends events and reads them back; safe from several threads (one connection per thread)."""

    def __init__(self, root: Path, readonly: bool = False):
        self.path = root / EVENTS_DB
        self.readonly = readonly
        # each connection holds the log and its -wal; tagged with the generation it was opened in
        self._connections: ThreadConnections[int] = ThreadConnections(self.path)
        self._generation = 0  # one more each time the file is opened anew (reopen): older connections are stale
        self._lock = self._connections.lock
        self.watch: int | None = None  # this process's row in `watches` while it runs the daemon
        self._snapshot = WalSnapshot(self.path, "events")  # a reader's, in a read-only folder
        self._opened: tuple[int, int] | None = None  # the file's (device, inode) when the tables were made
        self._folder: tuple[int, int] | None = None  # the memory folder's (device, inode) then
        if not readonly:
            self._make_tables()

    def _make_tables(self) -> None:
        root = self.path.parent
        try:
            private_folder(root)
            with folder_lock(root):
                self._start()
            self._folder = file_identity(root)
        except (OSError, sqlite3.Error) as e:
            why = "the disk is full" if _no_room(e, self.path) else \
                e.strerror if isinstance(e, OSError) and e.strerror else e  # (not "[Errno 30] ...: 'path'")
            raise _refused(self.path, f"cannot open the event log ({why}){_damaged(e) or _read_only(root)}", e) \
                from None

    def _start(self, damaged: sqlite3.Error | None = None, met_in: int | None = None) -> None:
        """Open the log at its path, checked, with its tables (under the folder's lock). A damaged one (found so
        now, or `damaged` met in the file this log opened, generation `met_in`, while that file is still the one
        there) is set aside with every byte, and a new log started with the rows it still gives; one another
        process, or another thread of this one, set aside is followed."""
        if damaged is None:
            try:
                return self._tables(checked=True)
            except sqlite3.DatabaseError as e:
                if not is_damage(e):
                    raise
                damaged = e
        elif met_in != self._generation or file_identity(self.path) != self._opened:  # set aside meanwhile (by
            # another thread, or another process), or moved: follow
            self._renew()
            return self._tables()
        self._renew()  # every thread's connection to the damaged file is stale
        aside = set_aside(self.path)
        rescued = salvage(aside)
        try:
            self._tables(rescued=rescued)
        except (OSError, sqlite3.Error) as e:
            raise self._not_started(aside, damaged, e) from None
        log.warning("%s was damaged (%s): set aside as %s, every byte kept (its -wal and -shm beside it), and a new "
                    "event log started with the %s still readable in it", self.path, damaged, aside.name,
                    counted(len(rescued.events), "event"))

    def _not_started(self, aside: Path, damaged: sqlite3.Error, e: Exception) -> EventLogError:
        """What is said where the new log could not be started in the place of the damaged one set aside as `aside`
        (a full disk): the copy is put back, to be set aside at the next write (a failed `check` said "disk is
        full" alone, of a log set aside; a log started empty then held none of its rows)."""
        self._renew()  # (this thread's connection to the file begun in its place too)
        why = "the disk is full" if _no_room(e, self.path) else str(e)
        try:
            put_back(aside, self.path)
        except OSError as failed:
            return _refused(self.path, f"the event log was damaged ({damaged}): set aside as {aside.name}, every "
                            f"byte kept, but no new log could be started ({why}) nor the copy put back ({failed})", e)
        return _refused(self.path, f"the event log is damaged ({damaged}), and no new log could be started in its "
                        f"place ({why}): it is left as it was, to be set aside at the next write", e)

    def _tables(self, checked: bool = False, rescued: Salvage | None = None) -> None:
        """Make the log's tables where they are not (bring one of before up to date), with `rescued`'s rows; a log
        `checked` first where it holds anything (a damaged page that no read meets yet)."""
        db = self._db()
        if checked:
            check_intact(db)
        statements = [s for s in SCHEMA.split(";") if s.strip()]
        with _locked(db):  # two processes opening a new log, or one of before, at once: one changes it
            for statement in (s for s in statements if "CREATE TABLE" in s):
                db.execute(statement)
            # columns added since: the watches' identity too (a log of the first watches, 3 Dec 2026, had none:
            # `run` could not begin a watch in it, and `_never_reused` refused every writer its copy of the table)
            for table, column in (("events", "watch INTEGER"), ("watches", "identity TEXT")):
                if column.split()[0] not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
            if rescued is not None:  # before the indexes: a year's rows in 5 s, not 18
                db.executemany(f"INSERT INTO events ({EVENT_COLUMNS}, watch) VALUES ({', '.join('?' * 11)})",
                               rescued.events)
                db.executemany("INSERT INTO watches (id, pid, identity, host, started, alive) "
                               "VALUES (?, ?, ?, ?, ?, ?)", rescued.watches)
            _never_reused(db, rescued is not None)
            for statement in (s for s in statements if "CREATE TABLE" not in s):
                db.execute(statement)
        self._opened = file_identity(self.path)

    def _renew(self) -> None:
        """Every thread's connection is stale: each closes it at its next use, and opens the file now there (a
        connection is closed only by its own thread: another may be using it)."""
        with self._lock:
            self._generation += 1

    def _mended(self, work: Callable[[], T]) -> T:
        """`work` done in the log now at the path; where a writer meets a damaged log, done again in the new log
        started in its place (the daemon keeps logging; a reader says it is damaged)."""
        watch = self.watch
        if self.set_aside_elsewhere():  # a `forget` must not purge a copy set aside, nor a daemon log into it
            log.warning("%s was set aside as damaged by another process: events go on in the new log there",
                        self.path)
            self._follow()
            self._watch_again(watch)
        generation = self._generation  # the log `work` meets damage in: another thread may start a new one meanwhile
        try:
            return work()
        except sqlite3.DatabaseError as e:
            if self.readonly or not is_damage(e):
                raise
            try:
                with folder_lock(self.path.parent):
                    self._start(damaged=e, met_in=generation)
            except OSError as why:  # (a folder gone read-only): said as the damage it is, tried again next time
                raise sqlite3.DatabaseError(f"{e}; it could not be set aside ({why})") from None
            self._rejoin_watch()
            self._watch_again(watch)
        return work()

    def _rejoin_watch(self) -> None:
        """This daemon's watch, in a log started anew: its row where it did not come along, under the same id (its
        events carried over stay its own); where that id is another's, or the row cannot be written (a full disk),
        `watch` is None: the daemon begins anew (`_watch_again`)."""
        if self.watch is None:
            return
        db, now, pid = self._db(), time.time(), os.getpid()
        try:
            db.execute("INSERT OR IGNORE INTO watches (id, pid, identity, host, started, alive) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (self.watch, pid, _process_identity(pid), socket.gethostname(),
                                                     now, now))
            if db.execute("SELECT pid FROM watches WHERE id = ?", (self.watch,)).fetchone() != (pid,):
                self.watch = None
        except sqlite3.Error:  # (the id kept, its events went under one no row has: taken for a stopped run's)
            self.watch = None

    def _watch_again(self, lost: int | None) -> None:
        """A new watch for a daemon whose watch `lost` could not rejoin the log started anew, before the work done
        again there: an event logged with none was taken for an edge_rap's of before watches, and a later start
        closed its visit at the last such event, logging the "left" after newer events at its place. (Where the
        disk is full, it raises: the loop registers again before its next event, `_follow_log_file`.)"""
        if lost is not None and self.watch is None:
            self._begin_watch()

    def set_aside_elsewhere(self) -> bool:
        """Whether the file this writer opened was set aside as damaged since, by another process."""
        return (not self.readonly and file_identity(self.path) != self._opened
                and self._opened in {file_identity(copy) for copy in damaged_copies(self.path)})

    def _follow(self) -> None:
        """Go on in the log now at the path, this daemon's watch along (`watch` None where it cannot come)."""
        self._renew()
        self._make_tables()
        self._rejoin_watch()

    def replaced(self) -> bool:
        """Whether the file this log writes to was moved or deleted since it was opened (history cleared while a
        daemon runs, or a damaged log set aside by another process): its writes would go to a file no one reads."""
        return not self.readonly and file_identity(self.path) != self._opened

    def reopen(self) -> bool:
        """Use the log now at the path: the one found there (the memory's drive unmounted and mounted again; the
        new log another process started where it set a damaged one aside), or a new one where the old one is wholly
        gone (its -wal and -shm too); whether it did. This daemon's watch comes along (`watch` None where not).
        Where the old log's -wal or -shm is still there (only the file deleted, or it was moved), a new file would
        take them for its own and bring back what was deleted: nothing is done. Where the memory folder itself is
        gone or another (its drive unmounted: the empty mount point), no log is started in its place, which would
        hide the real one when the drive comes back: EventLogError, until then."""
        found = self.path.exists()
        if not found and any(self.path.with_name(EVENTS_DB + end).exists() for end in ("-wal", "-shm")):
            return False
        if not found and memory_away(self.path.parent, self._folder):
            raise EventLogError(self.path, "the memory folder is not there (its drive unmounted or gone?); events "
                                           "are not logged in its place")
        self._follow()
        return True

    def _db(self) -> sqlite3.Connection:
        db, generation = self._connections.mine() or (None, self._generation)
        if db is not None and generation != self._generation:  # the file was started anew: this one is stale
            db.close()
            db = None
        if db is None:
            if self.readonly:
                db = self._open_readonly()
            else:  # the path itself, never a URI made of it: a folder named "home#2" or "50%" is no URI
                db = _connect(str(self.path))
                try:
                    _into_wal(db)
                    db.execute("PRAGMA synchronous=NORMAL")
                except BaseException:
                    db.close()
                    raise
            with self._lock:
                self._connections.keep(db, self._generation)
        return db

    def _open_readonly(self) -> sqlite3.Connection:
        """A reader's connection. `mode=ro` sees every commit, those still in the -wal too, but needs the -shm,
        which SQLite cannot make in a read-only folder (a memory mounted read-only, or copied from a device), nor
        open where it is another account's: there, with nothing unmerged the file is read as it is (`immutable=1`), else
        a private copy of the log and its -wal, as the memory's own reader does (Store._open_readonly)."""
        refuse_unreadable(self.path.parent, EVENTS_FILES)  # (else its copy fails on it)
        uri = self.path.resolve().as_uri()  # (as_uri escapes what a URI reserves: '#', '?', '%')
        db = None
        try:
            db = _connect(f"{uri}?mode=ro", uri=True)
            db.execute("SELECT 1 FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError as e:
            if db is not None:
                db.close()
            if locked_too_long(self.path.parent, e):  # (said: never copied while written)
                raise
        wal = self.path.with_name(EVENTS_DB + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            return _connect(str(self._snapshot.path()))
        return _connect(f"{uri}?immutable=1", uri=True)

    def check(self) -> None:
        """SQLite's check of the whole log through a connection of its own (this one's cached pages would hide the
        damage under them); a damaged log is set aside and a new one started, as where a write meets it."""
        def whole() -> None:
            if self.path.exists():
                with contextlib.closing(_connect(str(self.path))) as db:
                    check_intact(db)

        try:
            self._mended(whole)
        except sqlite3.Error as e:
            raise EventLogError(self.path, f"cannot check the event log ({e})") from None

    def damage(self) -> str | None:
        """What SQLite's check finds damaged in the log (None: intact, or none yet), for `doctor`."""
        if not self.path.exists():
            return None
        try:
            check_intact(self._db())
        except sqlite3.DatabaseError as e:
            if not is_damage(e):
                raise EventLogError(self.path, f"cannot read the event log ({e})") from None
            return str(e)
        return None

    def copy(self, snapshot: WalSnapshot) -> Path | None:
        """A consistent copy of the log in `snapshot`'s private folder, made by SQLite's backup while a daemon goes
        on logging (`edge-rap backup`); None where there is no log yet."""
        if not self.path.exists():
            return None
        try:
            return self._mended(lambda: snapshot.backup(self._db()))
        except sqlite3.Error as e:
            raise EventLogError(self.path, f"cannot read the event log ({e}){_damaged(e)}") from None

    def damaged_copies(self) -> list[Path]:
        """The damaged logs set aside beside this one and still kept (they may name concepts forgotten since)."""
        return damaged_copies(self.path)

    def close(self) -> None:
        with self._lock:
            self._connections.close_all()
        self._snapshot.remove()

    def require_writable(self) -> None:
        """Refuse, before a change of the memory that the events must follow (forget, rename), when the log
        cannot be written. The lock is held only for the probe: a change waiting for a busy memory must not keep
        a running daemon from logging."""
        def probe() -> None:
            db = self._db()
            try:
                db.execute("BEGIN IMMEDIATE")  # succeeds on a read-only file too:
                db.execute("DELETE FROM events WHERE 0")  # a write that changes nothing fails there
            finally:
                if db.in_transaction:
                    db.execute("ROLLBACK")

        try:
            self._mended(probe)
        except sqlite3.Error as e:
            raise EventLogError(self.path, f"cannot write the event log ({e}){_read_only(self.path.parent)}; "
                                           "nothing was changed") from None

    def add(self, event: Event) -> Event:
        try:
            event.id = self._mended(lambda: self._insert(event, self.watch))
        except sqlite3.Error as e:
            raise _refused(self.path, f"cannot log the event ({e})", e) from None
        return event

    def _insert(self, event: Event, watch: int | None) -> int:
        return self._db().execute(
            "INSERT INTO events (kind, name, camera, time_s, wall, box, score, said, snapshot, watch) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event.kind, event.name, event.camera, event.time_s, event.wall,
             json.dumps(event.box.as_list()) if event.box else None, event.score, event.said, event.snapshot,
             watch)).lastrowid

    # --- watches: which daemon logged an arrival, so one that died (SIGKILL, OOM) has its visits closed ------

    def begin_watch(self) -> list[Event]:
        """Register this process as a daemon writing to the log; first close the visits of daemons of this host
        that died without closing theirs, and of another host's whose watch has been silent for `ABANDONED_S`, at
        their last sign of life, and those an edge_rap of before watches left open. Returns the "left" events so
        added."""
        try:
            return self._mended(self._begin_watch)
        except sqlite3.Error as e:
            raise _refused(self.path, f"cannot register the daemon in the event log ({e})", e) from None

    def _begin_watch(self) -> list[Event]:
        db = self._db()
        with _locked(db):  # two daemons starting together close a dead one's visits once
            now, host = time.time(), socket.gethostname()
            watches = db.execute("SELECT id, pid, identity, alive FROM watches WHERE host = ?", (host,)).fetchall()
            abandoned = db.execute("SELECT id, alive FROM watches WHERE host != ? AND alive < ?",
                                   (host, now - ABANDONED_S)).fetchall()
            closed = self._close_open(
                [(watch, alive) for watch, pid, process, alive in watches if not _process_alive(pid, process)]
                + abandoned)
            watch = db.execute(
                "INSERT INTO watches (pid, identity, host, started, alive) VALUES (?, ?, ?, ?, ?)",
                (os.getpid(), _process_identity(os.getpid()), host, now, now)).lastrowid
        self.watch = watch  # once committed: a full disk refuses the commit (the -wal cannot grow), and that id
        return closed  # kept, the run logged its events under a watch no row has (registered again never)

    def end_watches(self, before: float) -> list[Event]:
        """Close the visits of every daemon that began watching this log before the wall time `before`, at its last
        sign of life, and forget them: no daemon watches a log restored from a backup (one made while `run` ran, as
        the scheduled ones are), whose arrivals, of a daemon of another device or of one still running on the
        memory backed up, were "on the porch camera now" for ever. The "left" events so added."""
        def end() -> list[Event]:
            db = self._db()
            with _locked(db):
                return self._close_open(db.execute("SELECT id, alive FROM watches WHERE started < ?",
                                                   (before,)).fetchall())

        try:
            return self._mended(end)
        except sqlite3.Error as e:
            raise EventLogError(self.path, f"cannot close the visits of the daemons that watched it ({e})") from None

    def other_watches(self) -> list[tuple[int, float]]:
        """The other daemons of this host that watch this memory and still run: (pid, when each started)."""
        rows = self._rows("SELECT pid, identity, started FROM watches WHERE host = ? AND id IS NOT ?",
                          (socket.gethostname(), self.watch))
        return [(pid, started) for pid, identity, started in rows if _process_alive(pid, identity)]

    def still_watching(self) -> None:
        """A sign of life: where this process dies, its visits are closed at the last one. A row another host's start
        deleted (this daemon hung, or its clock behind, for `ABANDONED_S`) is put back under its id: its visits after
        were read as ended while it watched, and the next start closed them."""
        def beat() -> None:
            if not self._db().execute("UPDATE watches SET alive = ? WHERE id = ?", (time.time(), self.watch)).rowcount:
                self._rejoin_watch()  # (watch None where it cannot: the loop registers again before its next event)

        with contextlib.suppress(sqlite3.Error, EventLogError):  # (a log set aside elsewhere, not followed yet)
            self._mended(beat)

    def end_watch(self) -> None:
        with contextlib.suppress(sqlite3.Error, EventLogError):
            self._mended(lambda: self._db().execute("DELETE FROM watches WHERE id = ?", (self.watch,)))
        self.watch = None

    def _close_open(self, dead: list[tuple[int, float]]) -> list[Event]:
        """Close the visits still open that no running daemon will close, and delete the `dead` watches' rows: the
        "left" events so added. Only each place's newest event is read (`_open_arrivals`): a GROUP BY over a year's
        log, for each dead watch and for the events of no watch, held a start's write lock over 0.5 s at a year."""
        db, opened = self._db(), self._open_arrivals()
        closing = self._unwatched(opened) + self._rowless(opened)
        for watch, alive in dead:  # at its last sign of life after each arrival (`_LIVED_AFTER`), as "where is X?"
            closing += [(row, owner, alive) for row, owner in opened if owner == watch]  # reads it (`_ended`)
            db.execute("DELETE FROM watches WHERE id = ?", (watch,))
        return self._leave(closing)

    def _open_arrivals(self) -> list[tuple[tuple, int | None]]:
        """The visits open, as "where is X?" reads them: each place's newest event where it is an arrival, as
        ((id, kind, name, camera, time_s, wall), watch). The names and each one's cameras are stepped through the
        (name, camera) index, not a year's log read; an arrival with a later event at its place is no open visit
        (a "left" closing it was logged after the newer events there)."""
        db = self._db()
        names, name = [], db.execute("SELECT MIN(name) FROM events").fetchone()[0]
        while name is not None:
            names.append(name)
            name = db.execute("SELECT MIN(name) FROM events WHERE name > ?", (name,)).fetchone()[0]
        newest = [row for name in names for row in db.execute(_NEWEST_ON_EACH_CAMERA, {"name": name})]
        return [(row[:6], db.execute("SELECT watch FROM events WHERE id = ?", (row[0],)).fetchone()[0])
                for row in newest if row[1] == "arrived"]

    def _unwatched(self, opened: list[tuple[tuple, int | None]]) -> list[tuple[tuple, None, float]]:
        """Those of the visits `opened` without a watch, by an edge_rap of before watches (upgraded from, or rolled
        back to and back), with when each ends: its daemon logged no "left" when it stopped (before it did) or died,
        so "where is Bo?" would say "on the porch camera now" for ever. They end at the last event it logged, the
        latest it is known to have watched (read only where one is open); such a daemon still running beside this
        one is not told from a stopped one."""
        unwatched = [row for row, watch in opened if watch is None]
        if not unwatched:
            return []
        last = self._db().execute("SELECT MAX(wall) FROM events WHERE watch IS NULL").fetchone()[0]
        return [(row, None, last) for row in unwatched]

    def _rowless(self, opened: list[tuple[tuple, int | None]]) -> list[tuple[tuple, int, None]]:
        """Those of the visits `opened` whose watch has no row: a run that stopped cleanly (its row deleted) with a
        leaving the log never took (let go on a full disk), or one whose row a restored log lacks. A running daemon
        registers its watch before its first event and keeps the row until it stops (or rejoins with it a log
        started anew), so no live run owns them. Each visit ends at its watch's last event after it, else at its
        arrival, as "where is X?" reads it (`_ended`)."""
        watches = {row[0] for row in self._db().execute("SELECT id FROM watches")}
        return [(row, watch, None) for row, watch in opened if watch is not None and watch not in watches]

    def _leave(self, arrivals: list[tuple[tuple, int | None, float | None]]) -> list[Event]:
        """A "left" for each of these ((id, kind, name, camera, time_s, wall), watch, alive) arrivals, logged as its
        watch's, at the latest of `alive` (its last beat, where known), the last event it logged after the arrival,
        and the arrival itself (one after the last sign of life left when it was logged). They are logged in the
        order of their arrivals: "where is X?" reads the newest logged, and Bo, seen on the porch and then in the
        den by a run killed, was said to be on the porch once a start had closed both visits at its last beat."""
        arrivals = sorted(arrivals, key=lambda arrival: arrival[0][0])
        lived = [self._db().execute(_LIVED_AFTER, (row[0], watch)).fetchone()[0] for row, watch, _ in arrivals]
        ends = [max(t for t in (alive, later, row[5]) if t is not None)  # (all read before a "left" is added: one is
                for (row, _, alive), later in zip(arrivals, lived)]  # no sign of life)
        closed = []
        for ((_, _, name, camera, time_s, wall), watch, _), ended in zip(arrivals, ends):
            event = Event("left", name, camera, time_s + ended - wall, ended)
            event.id = self._insert(event, watch)
            closed.append(event)
        return closed

    def move(self, watch: int, seconds: float) -> int:
        """Move the wall times of every event `watch` logged by `seconds`: the clock was set while that daemon ran
        (NTP, minutes after a boot in 1970), and its events keep their spacing by the steady clock, anchored by the
        clock's latest setting. The number of events moved."""
        try:
            return self._mended(lambda: self._db().execute("UPDATE events SET wall = wall + ? WHERE watch = ?",
                                                           (seconds, watch)).rowcount)
        except sqlite3.Error as e:
            raise EventLogError(self.path, f"cannot move the events' times with the clock ({e})") from None

    def last_wall(self) -> float | None:
        """The wall time of the event logged last, None for none."""
        rows = self._rows("SELECT wall FROM events ORDER BY id DESC LIMIT 1", ())
        return rows[0][0] if rows else None

    def set_said(self, event: Event) -> None:
        """Record the line finally said for an event logged before it was generated."""
        try:
            self._mended(lambda: self._db().execute("UPDATE events SET said = ? WHERE id = ?", (event.said, event.id)))
        except sqlite3.Error as e:
            raise EventLogError(self.path, f"cannot record what was said ({e})") from None

    def query(self, since: float | None = None, name: str | None = None, limit: int = 10_000,
              until: float | None = None) -> list[Event]:
        """The newest `limit` events, oldest first, since a wall-clock time, before another and for one concept name
        when given. A limit past SQLite's integers (`--limit 10**30`) is all of them."""
        where, args = _where(since, until, name)
        sql = f"{_SELECT}{where} ORDER BY id DESC LIMIT ?"
        return [_event(row) for row in reversed(self._rows(sql, (*args, min(limit, 2**63 - 1)), valid_event))]

    def newest(self, since: float | None = None, name: str | None = None, limit: int = 10_000,
               until: float | None = None) -> tuple[bool, Iterator[Event]]:
        """`query`'s events read as they are used, `BATCH` at a time, not held (`events --limit 1000000 --json`
        peaked at 1.4 GB), and whether older ones were left out. The events logged after this call are not among
        them; one a damaged page made unreadable is said where it is met (EventLogError)."""
        where, args = _where(since, until, name)
        try:
            bounds = self._rows(f"SELECT (SELECT id FROM events{where} ORDER BY id DESC LIMIT 1 OFFSET ?), "
                                f"(SELECT max(id) FROM events{where})", (*args, min(limit, 2**63 - 1), *args))
        finally:
            self._let_go()
        older, newest = bounds[0] if bounds else (None, None)
        if newest is None:
            return older is not None, iter(())
        sql = f"{_SELECT}{where}{' AND' if where else ' WHERE'} id > ? AND id <= ? ORDER BY id LIMIT {BATCH}"
        return older is not None, self._batches(sql, args, -(2**63) if older is None else older, newest,
                                                file_identity(self.path))

    def _batches(self, sql: str, args: list, after: int, last: int, log: tuple[int, int] | None) -> Iterator[Event]:
        """The events of `sql` whose ids are after `after`, up to `last`, each batch read whole in a read of its
        own, this thread's connection let go after it: a reader whose output is blocked (`events | less` left open)
        holds nothing of the log. One read held open while the events were printed kept a running daemon's -wal
        from being merged and begun again: it grew by 19 KB an event for as long as the pager stayed open (and
        `restore` refused the memory, held). Each batch is read from the file `log` (its identity) that the
        first was, or the listing ends in an EventLogError: another log's events would go on from its ids."""
        while True:
            if file_identity(self.path) != log:
                raise EventLogError(self.path, "the event log was replaced while its events were listed (a restore, "
                                               "or a damaged log set aside): the later ones are not shown; list "
                                               "them again")
            try:
                rows = self._rows(sql, (*args, after, last), valid_event)
            finally:
                self._let_go()
            yield from map(_event, rows)
            if len(rows) < BATCH:
                return
            after = rows[-1][0]

    def _let_go(self) -> None:
        """Close this thread's connection (its next read opens one; a private copy of a read-only folder's log is
        kept): nothing of the log held, not even the -shm's lock that says it is open."""
        with self._lock:
            self._connections.close_mine()

    def names(self) -> list[str]:
        """The names the log holds events of, the latest seen first: a forgotten concept's events a failed log kept
        are found again by any spelling that names it (name_key), not only the one stored."""
        return [row[0] for row in self._rows("SELECT name FROM events GROUP BY name ORDER BY max(id) DESC", (),
                                             lambda row: isinstance(row[0], str))]

    def get(self, event_id: int) -> Event | None:
        """One event by its id, however old (not only among the newest that `query` reads); an id no SQLite
        integer can hold (from a URL) is no event."""
        if not -(2**63) <= event_id < 2**63:
            return None
        rows = self._rows(_SELECT + " WHERE id = ?", (event_id,), valid_event)
        return _event(rows[0]) if rows else None

    def _rows(self, sql: str, args: tuple | dict, valid: Callable[[tuple], bool] | None = None) -> list[tuple]:
        """A read's rows, each `valid` where given (a damaged page can read as rows of nulls); a log not there yet,
        or one whose first writer died before its tables were made (an empty file), holds no events; one of an
        edge_rap of before watches (read in a read-only folder, where its tables are not brought up to date) holds
        none."""
        if not self.path.exists():
            return []

        def read() -> list[tuple]:
            rows = self._db().execute(sql, args).fetchall()
            if valid is not None and not all(map(valid, rows)):
                raise sqlite3.DatabaseError("database disk image is malformed: rows no event log writes")
            return rows

        try:
            return self._mended(read)
        except sqlite3.Error as e:
            if str(e) in ("no such table: events", "no such table: watches", "no such column: e.watch"):
                return []
            raise _unreadable(self.path, e) from None

    def last_seen(self, name: str) -> Event | None:
        """Where `name` is, or was last seen (for "where is X?"): its latest arrival on a camera it has not left,
        else its latest event. Walking from the den to the porch, Bo is seen by both at the door, and the den's
        "left" is logged after the porch's arrival: its latest event alone said "I last saw <bo> on the den camera
        10 minutes ago" of Bo on the porch all along. An arrival whose daemon died since (killed, out of memory,
        the power cut) and has not been started again, or whose watch fell silent (another host's), is a "left" at its
        last sign of life: until a new daemon closed that visit, "where is Bo?" said "on the porch camera now" of a
        camera nobody watched, over every newer sighting elsewhere. With no visit open, the latest sighting is the
        newest event logged, or a visit so ended where its sign of life is later: it lasted until then, past the
        "left" another camera logged after its arrival (by the time, not the log's order, for that alone: the
        hosts sharing a log may not agree on the time)."""
        logged = [_event(row) for row in self._rows(_NEWEST_ON_EACH_CAMERA, {"name": name}, valid_event)]
        latest = [self._still_there(e) for e in logged]
        if not latest:
            return None
        open_visit = next((e for e in latest if e.kind == "arrived"), None)
        if open_visit is not None:
            return open_visit
        ended = [e for e, was in zip(latest, logged) if e is not was]
        return max([latest[0], *ended], key=lambda e: e.wall)

    def _still_there(self, event: Event) -> Event:
        """`event`, or a "left" at its daemon's last sign of life for an arrival whose daemon died since (`_ended`)."""
        if event.kind != "arrived" or (ended := self._ended(event.id)) is None:
            return event
        return Event("left", event.name, event.camera, event.time_s + max(0.0, ended - event.wall),
                     max(ended, event.wall), id=event.id)

    def _ended(self, event_id: int) -> float | None:
        """When the daemon that logged event `event_id` was last known to run, where it no longer does; None while
        it runs, or where that cannot be told (a daemon of an edge_rap of before watches). A daemon whose process
        cannot be asked (another host's: the memory on a shared drive; one of a system without /proc, whose pid
        a later process may have) runs while its watch beats: one silent for `SILENT_S` died (its host's power
        cut, or it was killed), and its open visit no longer beats every newer sighting elsewhere for ever."""
        rows = self._rows("SELECT w.pid, w.identity, w.host, w.alive, e.wall, e.watch FROM events e "
                          "LEFT JOIN watches w ON w.id = e.watch WHERE e.id = ? AND e.watch IS NOT NULL", (event_id,))
        if not rows:
            return None
        pid, identity, host, alive, wall, watch = rows[0]
        if pid is None:  # its watch is gone, and with it the daemon: it lived until its last event
            alive = wall
        else:
            this_host = host == socket.gethostname()
            died_here = this_host and not _process_alive(pid, identity)
            if not died_here and ((this_host and identity is not None) or time.time() - alive < SILENT_S):
                return None
        later = self._rows(_LIVED_AFTER, (event_id, watch))  # (as the next `run` closes the visit: `_leave`)
        return max(alive, later[0][0] or alive)

    def purge(self, name: str) -> int:
        """Delete every event about `name` and the snapshots they kept; the number of events removed. Where `name`
        was in view of another's event too, that event's snapshot goes, and its line where it names `name`: an
        arrival's line names those that arrived with it, with their descriptions, and its snapshot shows everyone
        on that camera then (forgetting Anya kept "<anya> is here too — our daughter." in Bo's events, and her in
        the snapshots of Bo's arrivals while she was there)."""
        return self._mended(lambda: self._purge(name)) if self.path.exists() else 0

    def _purge(self, name: str) -> int:
        db, mention = self._db(), (f"<{name}>",)
        db.execute("PRAGMA secure_delete = ON")  # (Debian's build's default, not every one's) nothing of it stays
        visits = self._visits(name)
        removed = self._delete("name = ?", (name,))
        with _locked(db):  # each read and its update in one transaction, as `_delete`'s: an event another process
            # logged between the two lost its snapshot's name, and the file, showing the concept forgotten, stayed
            shown = db.execute("SELECT snapshot FROM events WHERE instr(said, ?) > 0 AND snapshot IS NOT NULL",
                               mention).fetchall()
            db.execute("UPDATE events SET said = NULL, snapshot = NULL WHERE instr(said, ?) > 0", mention)
        self._unlink(shown)
        during = "camera = ? AND wall >= ? AND wall < ? AND snapshot IS NOT NULL"
        for visit in visits:
            with _locked(db):
                shown = db.execute(f"SELECT snapshot FROM events WHERE {during}", visit).fetchall()
                db.execute(f"UPDATE events SET snapshot = NULL WHERE {during}", visit)
            self._unlink(shown)
        truncate_wal(db)
        return removed

    def _visits(self, name: str) -> list[tuple[str, float, float]]:
        """(camera, arrived, left) of each of `name`'s visits, as wall times; one not closed lasts for ever."""
        opened: dict[str, float] = {}
        visits = []
        for kind, camera, wall in self._db().execute("SELECT kind, camera, wall FROM events WHERE name = ? "
                                                     "ORDER BY id", (name,)):
            if kind == "arrived":
                opened.setdefault(camera, wall)
            elif camera in opened:
                visits.append((camera, opened.pop(camera), wall))
        return visits + [(camera, wall, math.inf) for camera, wall in opened.items()]

    def prune(self, before: float) -> int:
        """Delete the events logged before the wall-clock time `before` (and their snapshots), except the newest
        of each concept on each camera, and a visit's arrival and leaving together: a log that runs for years stays
        bounded, "where is Bo?" still finds where Bo was last seen, however long ago, and no half-visit is left (an
        arrival kept without the leaving pruned before it, the clock set back between them, was a visit open for
        good; a leaving kept without its arrival, a visit of no start). The number of events removed."""
        try:
            # Each old event asks the index whether its place saw a later one, and an arrival or leaving the one
            # next to it there: the hourly prune reads the old events, not a year's log, while it holds the write
            # lock.
            return self._mended(lambda: self._delete(_PRUNED, {"before": before}))
        except sqlite3.Error as e:
            raise EventLogError(self.path, f"cannot prune the event log ({e})") from None

    def _delete(self, where: str, args: tuple | dict) -> int:
        if not self.path.exists():
            return 0
        db = self._db()
        with _locked(db):  # one transaction: an event logged between the read and the delete (another process's)
            # could add a row to those `where` takes, deleted with its snapshot's file left, named by no event
            snapshots = db.execute(f"SELECT snapshot FROM events WHERE {where} AND snapshot IS NOT NULL",
                                   args).fetchall()
            count = db.execute(f"DELETE FROM events WHERE {where}", args).rowcount
        self._unlink(snapshots)
        return count

    @staticmethod
    def _unlink(rows) -> None:
        """Delete the snapshots of these (snapshot,) rows, once their rows no longer point at them."""
        for path in [Path(r[0]) for r in rows]:
            if SNAPSHOT_NAME.match(path.name):  # only files the log itself wrote
                path.unlink(missing_ok=True)

    def unnamed(self, snapshots: list[Path]) -> list[Path]:
        """Those of these snapshot files that no event names (by the file's name: a run given its folder by another
        path, a link, named the same files), of those written since the first snapshot the log names (by the times
        in their names): an earlier one is not known to be this log's. Where another memory's run wrote to the
        folder first (its copy restored on this device, which disowns its snapshots; a new memory; this one's log
        started anew while its drive is away), every file the other's events named was deleted. The events from a
        day before the oldest file's time on are read down the time index; only where a file is named by none of
        them is every event read (one moved since by a clock set back may name it)."""
        first = self._rows("SELECT snapshot FROM events WHERE snapshot IS NOT NULL ORDER BY id LIMIT 1", (),
                           lambda row: isinstance(row[0], str))
        since = _stamp(Path(first[0][0])) if first else None
        if since is None:
            return []
        stamps = {p: stamp for p in snapshots if (stamp := _stamp(p)) is not None and stamp >= since}
        if not stamps:
            return []
        names = {p.name for p in stamps}
        unnamed = names - self._snapshot_names("wall >= ?", (min(stamps.values()) / 1000 - 86400.0,))
        if unnamed:
            unnamed -= self._snapshot_names("1", ())
        return [p for p in stamps if p.name in unnamed]

    def _snapshot_names(self, where: str, args: tuple) -> set[str]:
        """The names of the snapshot files the events `where` name."""
        return {os.path.basename(row[0]) for row in self._rows(
            f"SELECT snapshot FROM events WHERE {where} AND snapshot IS NOT NULL", args,
            lambda row: isinstance(row[0], str))}

    def rename(self, old: str, new: str) -> None:
        """Its events, and its name in every line said (an arrival's line names the others in view too): `events
        --name` showed "<Möchi> arrived: I can see <Mochi 🐱>...", a name no command knows any more."""
        if self.path.exists():
            self._mended(lambda: self._db().execute(
                "UPDATE events SET name = CASE WHEN name = ? THEN ? ELSE name END, said = replace(said, ?, ?) "
                "WHERE name = ? OR instr(said, ?) > 0", (old, new, f"<{old}>", f"<{new}>", old, f"<{old}>")))


#: What to do about a damaged log, said to a reader (which changes nothing).
LOG_FIX = ("`edge-rap run` (a running one within the hour), `forget` or `rename` sets it aside, every byte kept, and "
           "starts a new log with the events still readable in it")


def watching(root: Path) -> list[tuple[int, float]]:
    """The daemons of this host that watch the memory at `root` now: (pid, when each started); none where its log
    cannot be read (a command that only tells of them does not fail for it)."""
    if not (root / EVENTS_DB).exists():
        return []
    events = EventLog(root, readonly=True)
    try:
        return events.other_watches()
    except EdgeRapError:
        return []
    finally:
        events.close()


def _never_reused(db: sqlite3.Connection, rescued: bool) -> None:
    """A watch's id is never given twice, as the events it logged keep it: where a stopped run's id came again (a
    table of before, without AUTOINCREMENT, gives the highest id left plus one), the next run took every earlier
    run's events for its own, and a clock step in it moved them all, or a start closed their visits. A table of
    before is made anew with AUTOINCREMENT (an edge_rap of before inserts into it as it is), and the count of ids
    given starts past every id an event holds, as does that of a log started with the rows a damaged one gave."""
    made = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'watches'").fetchone()[0]
    if "AUTOINCREMENT" in made.upper() and not rescued:
        return
    if "AUTOINCREMENT" not in made.upper():
        db.execute("ALTER TABLE watches RENAME TO watches_before")
        db.execute(next(s for s in SCHEMA.split(";") if "TABLE IF NOT EXISTS watches" in s))
        db.execute("INSERT INTO watches SELECT id, pid, identity, host, started, alive FROM watches_before")
        db.execute("DROP TABLE watches_before")
    given = db.execute("SELECT MAX(watch) FROM events").fetchone()[0]
    if given is not None and not db.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'watches'",
                                            (given,)).rowcount:
        db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('watches', ?)", (given,))


def _refused(path: Path, problem: str, e: Exception) -> EventLogError:
    """A write the log refused, said as a full disk (`EventLogFull`) where SQLite found no room."""
    return (EventLogFull if _no_room(e, path) else EventLogError)(path, problem)


def _no_room(e: Exception, path: Path) -> bool:
    """Whether SQLite's error `e` at the log `path` is a full disk: said so (3.10 gives no code), or as the "disk
    I/O error" of a -shm it could not make."""
    text = str(e)
    return (getattr(e, "sqlite_errorcode", None) == SQLITE_FULL or "disk is full" in text
            or isinstance(e, OSError) and e.errno == errno.ENOSPC or "disk I/O error" in text and nearly_full(path))


def _stamp(snapshot: Path) -> int | None:
    """The time in a snapshot's name (ms since the epoch); None for a file the log did not write."""
    return int(snapshot.name[:13]) if SNAPSHOT_NAME.match(snapshot.name) else None


def _damaged(e: Exception) -> str:
    return f"; it is damaged: {LOG_FIX}" if is_damage(e) else ""


def _read_only(root: Path) -> str:
    """Where the log cannot be written because its folder cannot (a read-only mount), saying so."""
    return "; the memory folder is not writable" if root.is_dir() and not os.access(root, os.W_OK) else ""


#: The events a prune deletes (`EventLog.prune`), before the time :before: each one whose place saw a later one, but
#: not an arrival whose leaving (the next event there) stays, nor a leaving whose arrival (the one before) stays.
_PRUNED = (
    "wall < :before AND EXISTS (SELECT 1 FROM events AS later WHERE later.name = events.name "
    "AND later.camera = events.camera AND later.id > events.id) "
    "AND NOT EXISTS (SELECT 1 FROM events AS next WHERE events.kind = 'arrived' AND next.kind = 'left' AND next.id = "
    "(SELECT MIN(id) FROM events AS n WHERE n.name = events.name AND n.camera = events.camera AND n.id > events.id) "
    "AND (next.wall >= :before OR NOT EXISTS (SELECT 1 FROM events AS after WHERE after.name = next.name "
    "AND after.camera = next.camera AND after.id > next.id))) "
    "AND NOT EXISTS (SELECT 1 FROM events AS prev WHERE events.kind = 'left' AND prev.kind = 'arrived' "
    "AND prev.wall >= :before AND prev.id = (SELECT MAX(id) FROM events AS p WHERE p.name = events.name "
    "AND p.camera = events.camera AND p.id < events.id))")
_SELECT = "SELECT id, kind, name, camera, time_s, wall, box, score, said, snapshot FROM events"
#: A concept's newest event on each camera, newest first: the cameras stepped through the (name, camera) index
#: one by one, and each one's newest found there, so that a year's log is not read (0.02 ms, where a GROUP BY read
#: every event of the concept: 4 ms at a year of 10 concepts).
_NEWEST_ON_EACH_CAMERA = (
    "WITH RECURSIVE cameras(camera) AS (SELECT (SELECT MIN(camera) FROM events WHERE name = :name) UNION ALL "
    "SELECT (SELECT MIN(camera) FROM events WHERE name = :name AND camera > cameras.camera) FROM cameras "
    "WHERE cameras.camera IS NOT NULL) "
    + _SELECT + " WHERE id IN (SELECT (SELECT MAX(id) FROM events WHERE name = :name AND camera = cameras.camera) "
    "FROM cameras WHERE cameras.camera IS NOT NULL) ORDER BY id DESC")


def _where(since: float | None, until: float | None, name: str | None) -> tuple[str, list]:
    """The WHERE clause of `query`'s filters (empty for none), and its arguments."""
    where, args = [], []
    for clause, value in (("wall >= ?", since), ("wall < ?", until), ("name = ?", name)):
        if value is not None:
            where.append(clause)
            args.append(value)
    return (" WHERE " + " AND ".join(where) if where else ""), args


def _unreadable(path: Path, e: sqlite3.Error) -> EventLogError:
    return EventLogError(path, f"cannot read the event log ({e}){_damaged(e)}")


def _event(row: tuple) -> Event:
    id_, kind, name, camera, time_s, wall, box, score, said, snapshot = row
    return Event(kind, name, camera, time_s, wall, Box(*json.loads(box)) if box else None, score, said, snapshot, id_)


def _connect(target: str, uri: bool = False) -> sqlite3.Connection:
    return sqlite3.connect(target, uri=uri, timeout=10, isolation_level=None, check_same_thread=False)


def _into_wal(db: sqlite3.Connection, tries: int = 100) -> None:
    """Switch to WAL (a no-op once the file is in it). The switch needs the file to itself, and SQLite answers
    "locked" at once rather than wait when another connection opens it at that moment: try again, for up to
    about 10 s, as the busy timeout would."""
    for attempt in range(tries):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or attempt == tries - 1:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def _locked(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction that holds the log's lock from its start (a check and the write it decides)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _process_identity(pid: int) -> str | None:
    """The boot and the start time of process `pid` (Linux), which a reused pid does not share; None where
    /proc does not tell."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return f"{boot}:{fields[19]}"  # the 22nd field, starttime; the first two end at the ")"
    except (OSError, IndexError):
        return None


def _process_alive(pid: int, identity: str | None) -> bool:
    """Whether the process a watch was registered by still runs: its pid, and where known its identity."""
    if identity is not None and (now := _process_identity(pid)) is not None:
        return now == identity
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


class Snapshots:
    """Frames with the concept's box drawn, saved as JPEG, pruned by age and count. The files this run wrote are
    aged by the steady clock and counted in the order written, after those of before (ordered by the time in their
    names): a clock set while the daemon runs (NTP) neither ages the snapshots named before at once, nor keeps the
    files a clock once ahead named in the future over each new one."""

    def __init__(self, policy: SnapshotPolicy, wall: Callable[[], float] = time.time,
                 steady: Callable[[], float] = steady_now, memory: Path | None = None):
        # Logged paths are whole: `forget` run from another folder must still find (and delete) them.
        self.policy = replace(policy, folder=policy.folder.absolute())
        writable_folder(policy.folder, "--snapshots")
        #: From when (ms, as the files' names) the snapshots there are the memory at `memory`'s alone, the folder
        #: made its own (`snapshot_owner`); 0 for a folder of no memory named: every one taken for this log's.
        self.own_since_ms = 0
        self._wall, self._steady = wall, steady
        if memory is not None:
            # every file there counts, one named ahead too: the clock may be the one behind (a board without a clock
            # battery boots at the time it last saved), and another memory's snapshots, there first, were deleted
            # once it was set
            newest = max((int(p.name[:13]) + 1 for p in self.files()), default=0)
            self.own_since_ms = claim(self.policy.folder, memory, max(int(wall() * 1000), newest))
        self._said_once = SaidOnce(log)  # a save failing: said once, and again when one is written
        self._written: dict[Path, float] = {}  # this run's files still there, in the order written: when (steady)

    def save(self, pixels: np.ndarray, box: Box | None, label: str) -> str | None:
        import hashlib

        import cv2

        image = np.ascontiguousarray(pixels[:, :, ::-1])
        if box is not None:
            cv2.rectangle(image, (box.x0, box.y0), (box.x1 - 1, box.y1 - 1), (0, 200, 255), 2)
            cv2.putText(image, label, (box.x0 + 3, max(14, box.y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (0, 200, 255), 1, cv2.LINE_AA)
        stamp = int(self._wall() * 1000)
        path = self.policy.folder / f"{stamp:013d}-{hashlib.sha256(f'{label}{stamp}'.encode()).hexdigest()[:8]}.jpg"
        try:
            path.write_bytes(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
        except OSError as e:  # the disk filled up, the folder went: the event is logged without its snapshot
            self._said_once("save", True, f"snapshots not written to {path.parent} ({e.strerror}); the events are "
                            "logged without them until it can be written", "")
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            return None
        self._said_once("save", False, "", f"snapshots are written to {path.parent} again")
        self._written[path] = self._steady()
        self.prune()
        return str(path)

    def files(self) -> list[Path]:
        """The snapshots in the folder (the files the log writes, by their names)."""
        return [p for p in self.policy.folder.iterdir() if SNAPSHOT_NAME.match(p.name)]

    def settled(self) -> list[Path]:
        """The snapshots but those named over a day ahead of a clock that is set: a clock once far ahead named
        them, so their names do not say they were written since the folder became this memory's (the start leaves
        them). A clock not set yet (1970) is behind every name: each counts."""
        now = self._wall()
        if not plausible(now):
            return self.files()
        return [p for p in self.files() if int(p.name[:13]) <= (now + AHEAD_S) * 1000]

    def prune(self) -> None:
        there = set(self.files())
        self._written = {p: t for p, t in self._written.items() if p in there}  # (pruned with their events)
        before = sorted(there - self._written.keys())
        cutoff_ms = (self._wall() - self.policy.max_age_s) * 1000
        steady_cutoff = self._steady() - self.policy.max_age_s
        old = [p for p in before if int(p.name[:13]) < cutoff_ms]
        old += [p for p, written in self._written.items() if written < steady_cutoff]
        files = before + list(self._written)
        extra = files[: max(0, len(files) - self.policy.max_count)]
        for path in {*old, *extra}:
            path.unlink(missing_ok=True)
            self._written.pop(path, None)
