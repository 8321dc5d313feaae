"""The concept store: SQLite (WAL) for concepts, views and vectors; reference images as content-hashed files."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import sqlite3
import tempfile
import time
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import Collection, Iterator

import numpy as np

from edge_rap.errors import DeviceError, EdgeRapError
from edge_rap.folders import file_in_the_way, remove_empty
from edge_rap.memory.access import locked_too_long, refuse_unreadable
from edge_rap.memory.files import (DATABASE, DATABASE_FILES, file_identity, fsync_dir, is_own_image, nearly_full,
                                   private_folder, refuse_what_is_not_a_sound_memory)
from edge_rap.output import quoted
from edge_rap.sqlite_threads import ThreadConnections, WalSnapshot
from edge_rap.types import Box, Concept, ReferenceView
from edge_rap.userfiles import kind_of

SCHEMA = """
CREATE TABLE IF NOT EXISTS concepts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    category TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS views (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    concept_id INTEGER NOT NULL REFERENCES concepts(id) ON DELETE CASCADE,
    image_sha256 TEXT NOT NULL,
    image_file TEXT NOT NULL,
    box TEXT,
    kind TEXT NOT NULL DEFAULT 'photo',  -- 'photo' (the whole photo or its --box) or 'face' (a person's face in it)
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS vectors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    view_id INTEGER NOT NULL REFERENCES views(id) ON DELETE CASCADE,
    space TEXT NOT NULL REFERENCES spaces(name),
    augment TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS vectors_by_space ON vectors(space, view_id);
CREATE INDEX IF NOT EXISTS views_by_concept ON views(concept_id);
CREATE TABLE IF NOT EXISTS spaces (
    name TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    dim INTEGER NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    index_file TEXT
);
CREATE TABLE IF NOT EXISTS cells (
    view_id INTEGER NOT NULL REFERENCES views(id) ON DELETE CASCADE,
    space TEXT NOT NULL REFERENCES spaces(name),
    rows INTEGER NOT NULL,
    data BLOB NOT NULL,  -- a photo's unit feature-map cells for dense matching: float16, rows x dim
    PRIMARY KEY (view_id, space)
);
CREATE TABLE IF NOT EXISTS calibration (
    concept_id INTEGER NOT NULL REFERENCES concepts(id) ON DELETE CASCADE,
    space TEXT NOT NULL REFERENCES spaces(name),
    negative_mean REAL NOT NULL,
    negative_std REAL NOT NULL,
    PRIMARY KEY (concept_id, space)
);
"""

log = logging.getLogger(__name__)

MAX_NAME = 64
#: How long a write waits for another process's write (a reindex, an import) before it gives up, in seconds.
BUSY_TIMEOUT_S = 30
SCHEMA_VERSION = 3  # 2: views.kind ('photo' or 'face'); 3: boxes in the upright photo's pixels (EXIF applied)


def rollback(db: sqlite3.Connection) -> None:
    """Roll back the open transaction, where SQLite has not already (it has after some errors, a full disk: a
    second ROLLBACK would replace that error by "cannot rollback - no transaction is active")."""
    if db.in_transaction:
        db.execute("ROLLBACK")


def create(db: sqlite3.Connection) -> None:
    """Create a new memory's tables and stamp its version in one transaction, so that a reader never sees a
    half-made database (tables without a version would read as a memory of an older edge_rap)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if not _has_tables(db):
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        rollback(db)
        raise


def refuse_newer(db: sqlite3.Connection, path: Path) -> None:
    """A memory written by a newer edge_rap (after a downgrade) is refused: this version would misread what the
    newer one changed (as boxes in another frame) and, writing, mix its own rows in."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise EdgeRapError(f"{path}: written by a newer edge_rap (schema {version}; this one knows {SCHEMA_VERSION}): "
                           "upgrade edge_rap to use it; nothing was changed")


def _has_tables(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'concepts'").fetchone() is not None


def migrate(db: sqlite3.Connection, images_dir: Path) -> None:
    """Bring a memory written by an earlier version of edge_rap up to SCHEMA_VERSION, in place."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version >= SCHEMA_VERSION:
        return
    columns = {row[1] for row in db.execute("PRAGMA table_info(views)")}
    if "kind" not in columns:
        db.execute("ALTER TABLE views ADD COLUMN kind TEXT NOT NULL DEFAULT 'photo'")
    db.execute("BEGIN IMMEDIATE")  # boxes and version together: a box must never be turned twice
    try:
        if version < 3:
            _turn_boxes_upright(db, images_dir)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        rollback(db)
        raise


def _turn_boxes_upright(db: sqlite3.Connection, images_dir: Path) -> None:
    """Boxes (--box, faces) were saved in a photo's stored pixels; photos are now read upright, so the boxes of
    photos with an EXIF orientation turn with them."""
    from edge_rap.perceive.images import stored_orientation, upright_box

    boxed = db.execute("SELECT id, image_file, box FROM views WHERE box IS NOT NULL").fetchall()
    for view_id, image_file, text in boxed:
        try:
            orientation, size = stored_orientation(images_dir / image_file)
        except EdgeRapError:  # a photo gone missing: its view is unusable either way
            continue
        if orientation != 1:
            box = upright_box(Box.parse(text), size, orientation)
            db.execute("UPDATE views SET box = ? WHERE id = ?", (",".join(map(str, box.as_list())), view_id))


def _box_text(box: Box | None) -> str | None:
    """A view's box as stored: "x0,y0,x1,y1", or NULL for the whole photo."""
    return ",".join(map(str, box.as_list())) if box else None


def _bare(name: str) -> str:
    """A name as typed, in NFC, without surrounding spaces or <>."""
    name = unicodedata.normalize("NFC", name).strip()
    return name[1:-1].strip() if name.startswith("<") and name.endswith(">") else name


def _spaced(name: str) -> str:
    """`name` as a name is stored: bare, each run of spaces of any kind (a no-break space too) one space."""
    return _bare(re.sub(" +", " ", "".join(" " if unicodedata.category(c) == "Zs" else c for c in name)))


def spellings(written: str) -> tuple[str, ...]:
    """The exact spellings a name written so (typed, or in a question's <brackets>) is looked up by, the first
    first: as given (a memory of before may hold "tea  pot" beside "tea pot"), then spaced as names are stored."""
    return tuple(dict.fromkeys((_bare(written), _spaced(written))))


def spelled(written: str, names: Collection[str]) -> str | None:
    """The one of `names` that `written` spells exactly, as `find` takes it (`spellings`), or None: of two names a
    memory of before holds alike, the one meant, in `forget`, a typed question and a transcript alike. Failing an
    exact spelling, the one name spelled so but for the apostrophes typed (APOSTROPHES: "<Bo’s>" of a phone is the
    <Bo's> beside <bo>); where a memory of before holds two such, neither. "f" never spells <f'>."""
    exact = next((s for s in spellings(written) if s in names), None)
    if exact is not None:
        return exact
    straight = {straight_apostrophes(s) for s in spellings(written)}
    alike = [n for n in names if straight_apostrophes(n) in straight]
    return alike[0] if len(alike) == 1 else None


#: Invisible characters that a name's letters may need: the zero-width joiner of emoji sequences ("👨‍👩‍👧") and of
#: scripts such as Sinhala ("ශ්‍රී"), and the non-joiner of Persian and Indic words. name_key drops them.
JOINERS = "\u200c\u200d"
#: What name_key drops (a pattern's character class): spaces, '_', '-' and '.' between words, the joiners, the
#: variation selectors that choose an emoji's look ("❤" and "❤️" are one name), and the dot above that case
#: folding leaves of a Turkish "İ" ("İstanbul" folds to "i̇stanbul": it was another name than "istanbul").
KEY_DROPS = r"\s_\-.\u200c\u200d\ufe0e\ufe0f\u0307"
#: The apostrophes a keyboard types for "'" (a phone's "’", a word processor's "‘" and "ʼ", the "´" and "`" some
#: European layouts put where "'" is, the Greek oxia U+1FFD that NFC makes "´", a prime "′"): name_key takes each for
#: it, so "Zoë's mug" typed on a laptop is the "Zoë’s mug" a phone remembered, not a second concept beside it. None
#: is a letter (a spacing "´" or "`" never combines in NFC text); letters that look alike stay letters: Hawaiian's
#: ʻokina "ʻ" (U+02BB), a transliteration's soft sign "ʹ" (U+02B9).
APOSTROPHES = str.maketrans("\u2019\u2018\u02bc\u00b4`\u1ffd\u2032", "'''''''")


def joining(text: str, k: int) -> bool:
    """Whether text[k] is a joiner between two visible characters (not at an end, beside a space or another)."""
    return (text[k] in JOINERS and 0 < k < len(text) - 1
            and not any(c in JOINERS or c.isspace() for c in (text[k - 1], text[k + 1])))


def is_escape(c: str) -> bool:
    """Whether c is a control or format character other than a joiner: a terminal escape, a line break, a
    right-to-left override, what no printed text may hold (a joiner, even a stray one, only joins). A character
    this Python's Unicode does not know is none: an emoji of a newer Unicode (🩷 is Unicode 15; Python 3.11 knows
    14, 3.10 13), which a memory made under a newer Python holds."""
    return unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") and c not in JOINERS


def is_unknown(c: str) -> bool:
    """Whether c is a character of a newer Unicode than this Python's (an emoji typed on a newer phone: 🩷 is
    Unicode 15, Python 3.11 knows 14), not one of the code points Unicode keeps as noncharacters for ever."""
    return unicodedata.category(c) == "Cn" and not (0xFDD0 <= ord(c) < 0xFDF0 or ord(c) & 0xFFFE == 0xFFFE)


def is_control(text: str, k: int) -> bool:
    """Whether text[k] is a control or format character (a terminal escape, a line break, a right-to-left override)
    other than a joiner between two visible characters: what no name or text of a concept holds. A character this
    Python's Unicode does not know is none (`is_unknown`): it was refused in a name and dropped from a description."""
    return unicodedata.category(text[k])[0] == "C" and not joining(text, k) and not is_unknown(text[k])


def validate_name(name: str) -> str:
    """A concept name: printable (a joiner between two characters aside), no path separators, at most 64
    characters; surrounding <> are dropped and a run of spaces of any kind (a no-break space too) is one space: two
    names must not print alike."""
    name = _spaced(name)
    if not name:
        raise EdgeRapError("concept name is empty")
    if len(name) > MAX_NAME:
        raise EdgeRapError(f"concept name is {len(name)} characters; the limit is {MAX_NAME}")
    bad = [c for k, c in enumerate(name)
           if c in "/\\<>" or is_control(name, k)]
    if bad:
        raise EdgeRapError(f"concept name {quoted(name)} has a character that is not allowed: {quoted(bad[0])}")
    if name in (".", ".."):
        raise EdgeRapError(f"concept name {quoted(name)} is not allowed")
    return name


def new_name(name: str) -> str:
    """A name for a concept to take (remember, rename): a valid name with a letter, a digit or a symbol such as an
    emoji in it. Punctuation alone ("?", "*", "...") is refused: a question's own "?" named <?>, the dots and
    dashes name_key drops leave nothing to tell "..." from "-", and a voice cannot say it. Only new names are
    held to this: a memory of before still finds and forgets such a name. So is a line or paragraph separator
    (U+2028, U+2029: a line break where the name is printed or logged), which validate_name and restore's
    is_escape let through: a memory or backup that took one before they were refused still loads, restores, finds,
    renames and forgets it."""
    name = validate_name(name)
    if breaks := [c for c in name if unicodedata.category(c) in ("Zl", "Zp")]:
        raise EdgeRapError(f"concept name {quoted(name)} has a character that is not allowed: {quoted(breaks[0])}")
    if not any(unicodedata.category(c)[0] in "LN" or unicodedata.category(c) == "So" or is_unknown(c) for c in name):
        raise EdgeRapError(f"concept name {quoted(name)} needs a letter, a digit or an emoji: punctuation alone "
                           "cannot be said or asked about")
    return name


#: What to do instead of remembering a name already taken: the same thing, or a different thing of that name.
ADD_INSTEAD = "use `edge-rap add-views` to add photos to it, or another name"


def reading_order(name: str) -> tuple[str, str]:
    """Names in the order a person reads a list: "Anya, bo, José", not capitals first as the bytes sort them."""
    return unicodedata.normalize("NFKC", name).casefold(), name


def name_key(name: str) -> str:
    """What makes two names one: a voice or a question cannot tell them apart when they differ only in case,
    in width ("ｂｏ"), in the spaces, '_', '-' and '.' between words ("Tea Pot", "teapot", "tea_pot"), or in
    what does not show (KEY_DROPS: joiners, an emoji's variation selector), or in the apostrophe typed."""
    return re.sub(f"[{KEY_DROPS}]+", "", fold(name))


def straight_apostrophes(text: str) -> str:
    """`text` with each apostrophe "'" (APOSTROPHES), one character for one: a place in it is that place in `text`,
    so what a question's patterns find there ("who's", "Bo's") is cut from the text as typed."""
    return text.translate(APOSTROPHES)


def fold(text: str) -> str:
    """Text in the form names are compared in (name_key, a question's mentions): NFKC, case folded, each
    apostrophe "'". Those are taken before NFKC, which splits "´" into a space and a combining accent that joins
    no letter, and after it, where it makes one ("ŉ" is "ʼn")."""
    return straight_apostrophes(unicodedata.normalize("NFKC", straight_apostrophes(text)).casefold())


class NameTakenError(EdgeRapError):
    """Another concept holds the name (in any case): the companion API answers 409."""


class UnknownConceptError(EdgeRapError):
    """No concept has the name (perhaps forgotten meanwhile by another writer): the companion API answers 404."""


class ChangedMeanwhileError(UnknownConceptError):
    """The concept looked up was renamed or forgotten by another writer before this one took the lock: what it
    asked of that name is not done to whatever the concept is called now."""


class DiskFullError(DeviceError):
    """The disk (or the database's size limit) is full: a delete may still succeed by freeing space first."""


def disk_error(e: OSError, where: Path) -> DeviceError:
    """Turn a write failure into the user's one-line explanation."""
    if e.errno == errno.ENOSPC:
        return DiskFullError(where, "disk is full; nothing was changed")
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return DeviceError(where, f"memory folder is not writable ({e.strerror}); nothing was changed")
    blocking = file_in_the_way(where) if e.errno == errno.ENOTDIR else None  # the OS: "Not a directory"
    if blocking is not None:
        return DeviceError(where, f"{blocking} is {kind_of(blocking)}, not a folder; nothing was changed")
    return DeviceError(where, f"cannot write ({e.strerror}); nothing was changed")


def is_disk_full(e: sqlite3.Error, where: Path) -> bool:
    """Whether SQLite's error is a full disk as it meets it: "database or disk is full", or "disk I/O error" where
    it could not make its -shm."""
    text = str(e)
    return "full" in text or ("disk I/O error" in text and nearly_full(where))


def sqlite_error(e: sqlite3.Error, where: Path) -> EdgeRapError:
    text = str(e)
    if is_disk_full(e, where):
        return DiskFullError(where, "disk is full; nothing was changed")
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return DeviceError(where, f"memory folder is not writable ({text}); nothing was changed")
    if "database is locked" in text:
        return DeviceError(where, f"another process has been changing the memory for {BUSY_TIMEOUT_S} s (a reindex, "
                                  "an import?); nothing was changed: try again when it is done")
    if isinstance(e, sqlite3.DatabaseError) and ("malformed" in text or "not a database" in text):
        return DeviceError(where, f"the memory's database is damaged ({text}); restore it from a backup")
    if isinstance(e, sqlite3.IntegrityError):  # a change that clashes with what is stored
        return EdgeRapError(f"{where}: database error ({text})")
    return DeviceError(where, f"database error ({text})")


class Store:
    """Concepts and their reference views and vectors in one SQLite database, images beside it.

    Each thread gets its own connection (`db`): one SQLite connection must not carry the transactions of
    several threads. A reader's connection never writes: it never migrates, and where the folder is
    read-only it still sees the commits in an unmerged -wal (see `_open_readonly`)."""

    def __init__(self, root: Path, readonly: bool = False):
        self.root = root
        self.readonly = readonly
        self.images_dir = root / "images"
        self.db_path = root / DATABASE
        # tagged with the database file's (device, inode) it reads; None: a stand-in for a memory not written yet
        self._connections: ThreadConnections[tuple[int, int] | None] = ThreadConnections(self.db_path)
        self._seen = False  # a database was opened: its file gone later is a memory away, never one to start anew
        self._lock = self._connections.lock
        self._snapshot = WalSnapshot(self.db_path, "snapshot")  # a reader's, see _open_readonly
        self._closed = False
        self._created = False  # the writer's first connection creates or migrates the database
        self._made_folders: set[Path] = set()  # images/xx/ made by save_image: removed if a failed write empties one
        refuse_unreadable(self.root, DATABASE_FILES)
        refuse_what_is_not_a_sound_memory(self.root)
        self.db  # opened (and for a writer of an existing memory migrated) now, so that errors show at once

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection. A stand-in for a memory not yet written (a reader's, or a writer's before
        its first write) is replaced as soon as the database appears (one stat per use until then)."""
        return self._connection(create=False)

    def _connection(self, create: bool) -> sqlite3.Connection:
        """This thread's connection; `create`: a real one, making a new memory's folder and database (a write).
        A new memory is made only at its first write, so that a command that fails before it (a bad photo or
        name) leaves no empty folder behind, which later commands would take for a memory (a mistyped --memory).

        The memory's drive may go and come back under a process that runs for months (a USB stick pulled, an
        NFS share or an SD card remounted): a database file gone since one was opened is a memory away, which is
        never started anew in its place (the empty mount point, hidden when the drive comes back); a connection
        reads on from the file it holds meanwhile (a lazily unmounted drive's open files still read), but a write
        or a new connection is refused, and a file found there again (mounted again) is opened at the next use."""
        db, opened = self._connections.mine() or (None, None)
        now = file_identity(self.db_path)
        if db is not None:
            if opened is not None and (now == opened or (now is None and not create)):
                return db
            if opened is None and not (create or now is not None):
                return db  # a stand-in while nothing is written
        if self._closed:
            raise DeviceError(self.root, "the memory was closed")
        if now is None and self._seen:
            raise DeviceError(self.root, f"the memory's database {DATABASE} is not there (its drive unmounted or "
                                         "gone?); nothing was changed")
        try:
            if self.readonly:
                new, pending = self._open_readonly()
            elif create or now is not None:
                new, pending = self._open_writer(), False
            else:
                new, pending = self._stand_in(), True
        except sqlite3.Error as e:
            raise sqlite_error(e, self.db_path) from None
        with self._lock:
            if self._closed:  # closed by another thread meanwhile
                new.close()
                raise DeviceError(self.root, "the memory was closed")
            if db is not None:
                db.close()
            self._connections.keep(new, None if pending else file_identity(self.db_path))
            self._seen = self._seen or not pending
        return new

    def _open_writer(self) -> sqlite3.Connection:
        try:
            private_folder(self.root)
            self.images_dir.mkdir(exist_ok=True)
        except OSError as e:
            raise disk_error(e, self.root) from None
        db = self._connect(self.db_path)
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            if not self._created:
                refuse_newer(db, self.db_path)
                create(db)
                db.executescript(SCHEMA)  # tables a memory of an older version lacks
                migrate(db, self.images_dir)
                self._created = True
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def _connect(target: Path | str, uri: bool = False) -> sqlite3.Connection:
        db = sqlite3.connect(target, uri=uri, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA foreign_keys = ON")
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        return db

    def _open_readonly(self) -> tuple[sqlite3.Connection, bool]:
        """A reader's connection, and whether it is an empty stand-in for a database not written yet.

        `mode=ro` sees every commit, also those still in the -wal, but needs the -shm file, which SQLite cannot
        create in a read-only folder, nor open where it is another account's (0600, in a folder this account's
        group may write). There, with no -wal (or an empty one) nothing is unmerged and
        `immutable=1` reads the whole memory; with a -wal but no -shm, the database and its -wal are copied
        into a private folder once and read there: a snapshot (nobody can write a read-only folder anyway)."""
        if not self.db_path.exists():
            return self._stand_in(), True
        wal = self.db_path.with_name(DATABASE + "-wal")
        uri = self.db_path.resolve().as_uri()
        try:
            db = self._connect(f"{uri}?mode=ro", uri=True)
            db.execute("SELECT 1 FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as e:
            if locked_too_long(self.root, e):  # (said: never copied while written)
                raise
            if wal.exists() and wal.stat().st_size > 0:
                db = self._connect(self._snapshot_copy())
            else:
                db = self._connect(f"{uri}?immutable=1", uri=True)
        if not _has_tables(db):  # an empty file, or a writer creating it right now
            db.close()
            return self._stand_in(), True
        try:
            refuse_newer(db, self.db_path)
        except EdgeRapError:
            db.close()
            raise
        version = db.execute("PRAGMA user_version").fetchone()[0]
        return (self._upgraded_copy(db, version) if version < SCHEMA_VERSION else db), False

    def _upgraded_copy(self, db: sqlite3.Connection, version: int) -> sqlite3.Connection:
        """A memory of an older schema read through a private copy that the writer's own migration brings up to
        date: a reader never changes the memory, and a read-only folder (a backup mounted read-only, a memory
        copied from another device to look at) could not take the upgrade anyway. The first command that changes
        the memory upgrades it in place. `db`: the reader's connection to it, closed here."""
        try:
            path = self._snapshot.backup(db)
        except (OSError, sqlite3.Error) as e:
            raise DeviceError(self.db_path, f"written by an older edge_rap (schema {version}); reading it needs an "
                                            f"upgraded copy in {tempfile.gettempdir()}, which could not be made ({e}): "
                                            "make room there (or set TMPDIR), or run any command that changes the "
                                            "memory (e.g. `edge-rap reindex`) where its folder is writable") from None
        finally:
            db.close()
        copy = self._connect(path)
        try:
            copy.executescript(SCHEMA)  # tables a memory of an older version lacks
            migrate(copy, self.images_dir)
        except BaseException:
            copy.close()
            raise
        return copy

    @staticmethod
    def _stand_in() -> sqlite3.Connection:
        db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        db.executescript(SCHEMA)
        return db

    def _snapshot_copy(self) -> Path:
        if not self._snapshot.made:
            log.warning("%s: an unmerged -wal and no -shm this account may use: reading a snapshot copy", self.root)
        return self._snapshot.path()

    def close(self) -> None:
        """Close every thread's connection (idempotent)."""
        with self._lock:
            self._closed = True
            self._connections.close_all()
        self._snapshot.remove()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write of this thread: everything inside commits together or not at all."""
        db = self._connection(create=True)
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise sqlite_error(e, self.db_path) from None
        try:
            yield db
            db.execute("COMMIT")
        except sqlite3.Error as e:
            rollback(db)
            raise sqlite_error(e, self.db_path) from None
        except OSError as e:  # a file beside the database (a photo, an index) could not be written or deleted
            rollback(db)
            raise disk_error(e, self.root) from None
        except BaseException:
            rollback(db)
            raise

    def _rows(self, sql: str, params: tuple | list = (), db: sqlite3.Connection | None = None) -> list[tuple]:
        """A query's rows; a damaged or unreadable database is a one-line error naming the file."""
        try:
            return (db or self.db).execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise sqlite_error(e, self.db_path) from None

    # --- images -----------------------------------------------------------------------------------

    def _image_path(self, sha256: str, suffix: str) -> Path:
        return self.images_dir / sha256[:2] / f"{sha256}{suffix}"

    @staticmethod
    def photo_intact(view: ReferenceView) -> bool:
        """Whether a view's stored photo is there with the bytes its name (their sha256) says: a truncated or
        damaged file is told without decoding it."""
        try:
            return hashlib.sha256(Path(view.image_path).read_bytes()).hexdigest() == view.image_sha256
        except OSError:
            return False

    def has_image(self, sha256: str, suffix: str) -> bool:
        return self._image_path(sha256, suffix).exists()

    def save_image(self, data: bytes, sha256: str, suffix: str, overwrite: bool = False) -> str:
        """Store image bytes under their content hash (temp file, fsync, rename); call inside a transaction
        so that garbage collection, which runs under the same lock, never sees it unreferenced. `overwrite`: a
        stored copy is written again (it was found damaged)."""
        path = self._image_path(sha256, suffix)
        rel = f"{path.parent.name}/{path.name}"
        if path.exists() and not overwrite:
            return rel
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        try:
            if not path.parent.exists():  # a new folder's entry must survive a power cut too
                path.parent.mkdir(exist_ok=True)
                self._made_folders.add(path.parent)
                fsync_dir(self.images_dir)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(path)
            fsync_dir(path.parent)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            self._remove_made(path.parent)
            raise disk_error(e, self.root) from None
        return rel

    def _remove_made(self, folder: Path) -> None:
        """An images/xx/ folder this store made, once empty: a full disk left them empty after a failed write."""
        if folder in self._made_folders:
            remove_empty([folder])
            if not folder.exists():
                self._made_folders.discard(folder)

    # --- concepts ---------------------------------------------------------------------------------

    _CONCEPT_SQL = (
        "SELECT c.id, c.name, c.category, c.description, c.created, c.updated, "
        "(SELECT COUNT(*) FROM views v WHERE v.concept_id = c.id AND v.kind = 'photo') FROM concepts c"
    )

    def concepts(self) -> list[Concept]:
        """In reading order (reading_order)."""
        rows = self._rows(self._CONCEPT_SQL)
        return sorted((Concept(*row) for row in rows), key=lambda c: reading_order(c.name))

    def concepts_by_id(self, ids: list[int]) -> dict[int, Concept]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._rows(self._CONCEPT_SQL + f" WHERE c.id IN ({marks})", [int(i) for i in ids])
        return {row[0]: Concept(*row) for row in rows}

    def find(self, name: str) -> Concept | None:
        """The concept of this name, in any case ("Bo" finds <bo>: names are one name in any case); in a memory
        made before that rule, where two names differ only in case, only the exact spelling finds one."""
        exact = spellings(name)
        name = validate_name(name)
        for spelling in exact:
            rows = self._rows(self._CONCEPT_SQL + " WHERE c.name = ?", (spelling,))
            if rows:
                return Concept(*rows[0])
        alike = [c for c in self.concepts() if name_key(c.name) == name_key(name)]
        if len(alike) > 1:
            raise EdgeRapError(f"{quoted(name)} could be {' or '.join(quoted(c.name) for c in alike)}: give the "
                               "name as stored")
        return alike[0] if alike else None

    def get(self, name: str) -> Concept:
        concept = self.find(name)
        if concept is None:
            raise UnknownConceptError(f"no concept named {quoted(validate_name(name))}")
        return concept

    def get_by_id(self, concept_id: int, name: str) -> Concept:
        """A concept by its id, as a write just left it (`name`: how it is named in the error, where another
        writer forgot it since)."""
        concept = self.concepts_by_id([concept_id]).get(concept_id)
        if concept is None:
            raise UnknownConceptError(f"no concept named {quoted(name)}")
        return concept

    def require_named(self, db: sqlite3.Connection, concept: Concept) -> None:
        """Under a write's lock: the concept still exists under the name it was looked up by."""
        row = db.execute("SELECT name FROM concepts WHERE id = ?", (concept.id,)).fetchone()
        if row is None:
            raise ChangedMeanwhileError(f"no concept named {quoted(concept.name)}: another writer forgot it meanwhile; "
                                        "nothing was changed")
        if row[0] != concept.name:
            raise ChangedMeanwhileError(f"no concept named {quoted(concept.name)}: another writer renamed it to "
                                        f"{quoted(row[0])} meanwhile; nothing was changed")

    def refuse_taken(self, name: str, db: sqlite3.Connection | None = None, owner: int | None = None,
                     hint: str = "") -> None:
        """A name another concept holds, also in another case or spacing ("Bo" beside "bo", "tea pot" beside
        "teapot"), is refused: a voice or a question could not tell the two apart (name_key). `owner`: the
        concept being renamed, which may change its case; `hint`: what to do instead, said whichever way the name
        is taken (the user who typed "Mochi" beside <mochi> needs it as much)."""
        key = name_key(name)
        for concept_id, other in self._rows("SELECT id, name FROM concepts", db=db):
            if concept_id != owner and name_key(other) == key:
                why = [] if other == name else [
                    "names that differ only in case, spacing, width or apostrophe are one name"]
                said = "; ".join(why + [hint] * bool(hint))
                raise NameTakenError(f"a concept named {quoted(name)} already exists"
                                     + (f" as {quoted(other)}" if why else "") + (f" ({said})" if said else ""))

    def insert_concept(self, db: sqlite3.Connection, name: str, category: str, description: str) -> int:
        self.refuse_taken(name, db, hint=ADD_INSTEAD)
        now = time.time()
        try:
            cur = db.execute(
                "INSERT INTO concepts (name, category, description, created, updated) VALUES (?, ?, ?, ?, ?)",
                (name, category, description, now, now),
            )
        except sqlite3.IntegrityError:
            raise NameTakenError(f"a concept named {quoted(name)} already exists") from None
        return int(cur.lastrowid)

    @staticmethod
    def delete_concept(db: sqlite3.Connection, concept_id: int, zero_freed: bool = True) -> None:
        """Delete a concept with its views, vectors and cells, the pages it frees overwritten with zeros (SQLite's
        secure_delete, on in Debian's build but not in every one): nothing of it stays readable in the file.
        `zero_freed=False` (a full disk): they are not, so that the commit needs room only for the pages it
        changes, half of what zeroing writes."""
        before = db.execute("PRAGMA secure_delete").fetchone()[0]
        db.execute(f"PRAGMA secure_delete = {'ON' if zero_freed else 'FAST'}")
        try:
            db.execute("DELETE FROM concepts WHERE id = ?", (concept_id,))
        finally:
            db.execute(f"PRAGMA secure_delete = {int(before)}")

    def insert_view(self, db: sqlite3.Connection, concept_id: int, sha256: str, image_file: str, box: Box | None,
                    kind: str = "photo") -> int:
        cur = db.execute(
            "INSERT INTO views (concept_id, image_sha256, image_file, box, kind, created) VALUES (?, ?, ?, ?, ?, ?)",
            (concept_id, sha256, image_file, _box_text(box), kind, time.time()),
        )
        return int(cur.lastrowid)

    @staticmethod
    def delete_views_of_photo(db: sqlite3.Connection, concept_id: int, sha256: str, box: Box | None,
                              faces: bool) -> None:
        """Delete a concept's photo view of this photo (this region of it), with its vectors and cells, and
        (`faces`) the face views of that photo."""
        db.execute("DELETE FROM views WHERE concept_id = ? AND image_sha256 = ? AND ((kind = 'photo' AND box IS ?) "
                   "OR (kind = 'face' AND ?))", (concept_id, sha256, _box_text(box), faces))

    def photo_owner(self, db: sqlite3.Connection, sha256: str, box: Box | None) -> tuple[int, str] | None:
        """(id, name) of a concept that has this photo (this region of it) as a view, or None."""
        row = db.execute("SELECT c.id, c.name FROM views v JOIN concepts c ON c.id = v.concept_id WHERE v.kind = "
                         "'photo' AND v.image_sha256 = ? AND v.box IS ?", (sha256, _box_text(box))).fetchone()
        return (row[0], row[1]) if row else None

    def insert_vectors(self, db: sqlite3.Connection, view_id: int, space: str,
                       augments: list[str], vectors: np.ndarray) -> None:
        db.executemany(
            "INSERT INTO vectors (view_id, space, augment, vector) VALUES (?, ?, ?, ?)",
            [(view_id, space, a, np.asarray(v, dtype=np.float32).tobytes()) for a, v in zip(augments, vectors)],
        )

    def insert_cells(self, db: sqlite3.Connection, view_id: int, space: str, cells: np.ndarray) -> None:
        db.execute("INSERT OR REPLACE INTO cells (view_id, space, rows, data) VALUES (?, ?, ?, ?)",
                   (view_id, space, len(cells), np.asarray(cells, dtype=np.float16).tobytes()))

    def cells(self, space: str, concept_ids: list[int]) -> dict[int, np.ndarray]:
        """The stored dense-matching cells (float16, rows x dim) of the photo views of these concepts in one
        space, by view id: only the concepts asked for, so that a reader of a large memory reads the few it
        compares a frame with. None for a memory from before they were stored (its reader computes them:
        `edge-rap reindex` stores them)."""
        if not concept_ids or not self._rows("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cells'"):
            return {}
        marks = ",".join("?" * len(concept_ids))
        rows = self._rows("SELECT c.view_id, c.rows, c.data FROM cells c JOIN views v ON v.id = c.view_id "
                          f"WHERE c.space = ? AND v.concept_id IN ({marks})", [space, *map(int, concept_ids)])
        return {view_id: np.frombuffer(data, dtype=np.float16).reshape(n, -1) for view_id, n, data in rows}

    def views(self, concept_id: int | None = None, kind: str = "photo") -> list[ReferenceView]:
        """A concept's (or every) reference view of one kind: 'photo' views, or the 'face' views of people."""
        sql = "SELECT id, concept_id, image_sha256, image_file, box FROM views WHERE kind = ?"
        rows = self._rows(sql + (" AND concept_id = ? ORDER BY id" if concept_id else " ORDER BY id"),
                          (kind, concept_id) if concept_id else (kind,))
        return [self._reference_view(*r) for r in rows]

    def _reference_view(self, view_id: int, concept_id: int, sha256: str, image_file: str,
                        box: str | None) -> ReferenceView:
        return ReferenceView(view_id, concept_id, sha256, str(self.images_dir / image_file),
                             Box.parse(box) if box else None)

    def vectors(self, space: str, db: sqlite3.Connection | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All (concept ids, vectors) of one space, straight from the database (the source of truth)."""
        rows = self._rows(
            "SELECT v.concept_id, x.vector FROM vectors x JOIN views v ON v.id = x.view_id WHERE x.space = ? "
            "ORDER BY x.id",
            (space,), db)
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        keys = np.array([r[0] for r in rows], dtype=np.int64)
        return keys, np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])

    def concept_vectors(self, concept_id: int, space: str) -> np.ndarray:
        return self.concept_vectors_tx(self.db, concept_id, space)

    def concept_vectors_tx(self, db: sqlite3.Connection, concept_id: int, space: str) -> np.ndarray:
        rows = db.execute(
            "SELECT x.vector FROM vectors x JOIN views v ON v.id = x.view_id WHERE v.concept_id = ? AND x.space = ?",
            (concept_id, space),
        ).fetchall()
        return np.stack([np.frombuffer(r[0], dtype=np.float32) for r in rows]) if rows else np.zeros((0, 0), np.float32)

    def image_files_in_use(self, db: sqlite3.Connection | None = None) -> set[str]:
        return {r[0] for r in self._rows("SELECT DISTINCT image_file FROM views", db=db)}

    def collect_images(self, db: sqlite3.Connection) -> list[tuple[Path, OSError]]:
        """Delete image files no view refers to (left by a failed or killed writer, or forgotten); call under the
        lock. Those whose folder forbids it (an images/xx/ made read-only) are returned with why and left for a later
        change: tidying them is no part of that change, which they refused ("memory folder is not writable; nothing
        was changed") to every remember and forget after a forget had left one."""
        in_use = self.image_files_in_use(db)
        left: list[tuple[Path, OSError]] = []
        for path in self.images_dir.glob("*/*"):
            if f"{path.parent.name}/{path.name}" not in in_use and is_own_image(path):  # never another's file
                try:
                    path.unlink(missing_ok=True)
                except OSError as e:
                    if e.errno not in (errno.EACCES, errno.EPERM):
                        raise
                    left.append((path, e))
                    continue
                self._remove_made(path.parent)  # (a failed write's photo: the commit found the disk full)
        return left

    # --- spaces -----------------------------------------------------------------------------------

    def space(self, name: str, db: sqlite3.Connection | None = None) -> tuple[str, str, int, int, str | None] | None:
        rows = self._rows("SELECT model, fingerprint, dim, generation, index_file FROM spaces WHERE name = ?",
                          (name,), db)
        return rows[0] if rows else None

    def photos_without(self, space: str) -> int:
        """How many photo views have no vectors in `space` but have some in another: remembered with another
        embedder since this space's last reindex, they are invisible to it."""
        return int(self._rows("SELECT COUNT(*) FROM views v WHERE v.kind = 'photo' AND NOT EXISTS (SELECT 1 FROM "
                              "vectors x WHERE x.view_id = v.id AND x.space = ?) AND EXISTS (SELECT 1 FROM vectors x "
                              "WHERE x.space IN (SELECT name FROM spaces) AND x.view_id = v.id)", (space,))[0][0])

    def unrecognisable(self, space: str | None = None, db: sqlite3.Connection | None = None) -> list[str]:
        """The names of the concepts that have no photo vectors in `space` (None: in any space), so that no
        recognition finds them: a reindex could read none of their photos. Their name, description and events
        stay; a photo added with add-views makes them recognisable again."""
        spaces = "x.space = ?" if space is not None else "x.space IN (SELECT name FROM spaces)"
        rows = self._rows("SELECT c.name FROM concepts c WHERE NOT EXISTS (SELECT 1 FROM views v JOIN vectors x ON "
                          f"x.view_id = v.id WHERE v.concept_id = c.id AND v.kind = 'photo' AND {spaces})",
                          (space,) if space is not None else (), db)
        return sorted((r[0] for r in rows), key=reading_order)

    def space_names(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT name FROM spaces ORDER BY name")]

    # --- calibration ------------------------------------------------------------------------------

    def set_calibration(self, db: sqlite3.Connection, concept_id: int, space: str, mean: float, std: float) -> None:
        db.execute(
            "INSERT OR REPLACE INTO calibration (concept_id, space, negative_mean, negative_std) VALUES (?, ?, ?, ?)",
            (concept_id, space, mean, std),
        )

    def calibration(self, space: str) -> dict[int, tuple[float, float]]:
        rows = self._rows("SELECT concept_id, negative_mean, negative_std FROM calibration WHERE space = ?", (space,))
        return {r[0]: (r[1], r[2]) for r in rows}
