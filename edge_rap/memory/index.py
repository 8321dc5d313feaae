"""USearch indexes, one per embedding space: built by writers into new files, memory-mapped by readers.

The SQLite row of a space names its current index files: a base file and up to MAX_DELTAS delta files, each
a complete usearch file of the vectors one later commit added (so a `remember` writes its own vectors, not
the whole index again: 21 MB at 1000 concepts). A writer writes each new file whole (temp name, fsync,
rename) and then switches the row inside its transaction, so the swap is atomic and a killed writer leaves
either the old file list or the new one, never a half-written file in it. Forget, reindex and a remember
that finds the deltas too many or too large compact: one new base, built from SQLite, and no deltas.
Readers map every listed file, search them all and merge, and re-map when the row's generation changes or a mapped
file was changed in place or went away (another program, a pulled drive), or came back.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_rap.errors import DeviceError, NeedsReindex
from edge_rap.live_set import LiveSet
from edge_rap.memory.store import Store, disk_error
from edge_rap.memory.files import fsync_dir, index_digest, is_own_index
from edge_rap.perceive.embed import SpaceInfo

log = logging.getLogger(__name__)

MAX_DELTAS = 8  #: more delta files than this and a remember compacts (each is one more search per query)
DELTA_SHARE = 4  #: compact once the deltas together are more than 1/DELTA_SHARE of the base's size

#: Every reader's view in this process, so that a writer deleting index files to make room can have them let go.
_VIEWS: "LiveSet[IndexView]" = LiveSet()


def index_files(listed: str | None) -> list[str]:
    """The file names a space row's `index_file` lists, base first (space-separated: the names have no spaces)."""
    return listed.split() if listed else []


def _new_index(dim: int):
    from usearch.index import Index

    return Index(ndim=dim, metric="cos", dtype="f32", multi=True)


def digest(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _as_named(path: Path) -> bool:
    """Whether the bytes of `path` are those its name's digest says (yes for a name without one), False where
    it cannot be read."""
    expected = index_digest(path.name)
    try:
        return expected is None or digest(path.read_bytes()) == expected
    except OSError:
        return False


def _restore(path: Path, view: bool = False):
    """The index in `path`, or None where it is missing, unreadable or its bytes are not those its name's
    digest says (read once per file: a reader maps a file once per generation)."""
    from usearch.index import Index

    if not _as_named(path):
        return None
    try:
        return Index.restore(str(path), view=view)  # None for a missing file
    except Exception:  # an OSError reading it; usearch raises ValueError or RuntimeError for a damaged one
        return None


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):  # the error being reported matters more
        path.unlink(missing_ok=True)


def _safe(space: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", space)


def check_space(row: tuple, space: SpaceInfo) -> None:
    """Refuse a space row (model, fingerprint, dim, ...) whose vectors another model made than `space`'s."""
    if (row[1], row[2]) != (space.fingerprint, space.dim):
        raise NeedsReindex(
            f"the memory's {space.name!r} vectors were made by another model ({row[0]}, {row[2]} dims, "
            f"fingerprint {row[1][:12]}), not {space.model} ({space.fingerprint[:12]}): run `edge-rap reindex`"
        )


class IndexWriter:
    """Writes a space's next index file (a delta, or a compacted base) inside the caller's transaction."""

    def __init__(self, store: Store):
        self.store = store
        self.dir = store.root / "index"

    def ensure_space(self, db: sqlite3.Connection, space: SpaceInfo) -> None:
        """Create the space row, or refuse when it holds vectors of a different model."""
        row = self.store.space(space.name, db)
        if row is None:
            db.execute(
                "INSERT INTO spaces (name, model, fingerprint, dim, generation) VALUES (?, ?, ?, ?, 0)",
                (space.name, space.model, space.fingerprint, space.dim),
            )
        else:
            check_space(row, space)

    def collect_garbage(self, db: sqlite3.Connection) -> None:
        """Delete index files no space row names (superseded or left by a killed writer); call under the lock."""
        if not self.dir.exists():
            return
        live = {name for (listed,) in db.execute("SELECT index_file FROM spaces") for name in index_files(listed)}
        for path in self.dir.iterdir():
            if path.name not in live and is_own_index(path):  # never a file the memory did not write
                path.unlink(missing_ok=True)

    def drop_files(self, space: str, db: sqlite3.Connection) -> None:
        """Delete a space's current index files, leaving its row naming them (a full disk: the room they held
        goes to the database's commit). Readers find them missing and search the database's vectors instead
        until the next write lists new ones. Deleted first, then let go: a reader mapping them meanwhile is done
        before its view lets go (`let_go`), and one after finds them gone; let go first, it could map them again."""
        row = self.store.space(space, db)
        for name in index_files(row[4] if row else None):
            (self.dir / name).unlink(missing_ok=True)
        for view in _VIEWS.members():  # their room is freed once unmapped: `serve` and `run` map them to recognise
            if view.space == space and view.store.root == self.store.root:
                view.let_go()

    def write(self, db: sqlite3.Connection, space: str, added: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Write the next index of `space`: a delta file of `added` beside the current files, or (no `added`,
        or the deltas are due for compaction, or a listed file is missing or unreadable) a new base rebuilt
        from the database's vectors, which already hold `added`."""
        model, fingerprint, dim, generation, listed = self.store.space(space, db)
        files = index_files(listed)
        stem = f"{_safe(space)}-{generation + 1}"
        index = _new_index(dim)
        if added is not None and self._takes_a_delta(files):
            index.add(*added)
            files = files + [self._save(index, stem)]
        else:
            keys, vectors = self.store.vectors(space, db)
            if len(keys):
                index.add(keys, vectors)
            files = [self._save(index, stem)]
        db.execute("UPDATE spaces SET generation = ?, index_file = ? WHERE name = ?",
                   (generation + 1, " ".join(files), space))

    def _takes_a_delta(self, files: list[str]) -> bool:
        """Whether the next vectors go into a delta file beside `files` rather than into a compacted base."""
        if not files or len(files) > MAX_DELTAS:
            return False
        sizes = [_readable_size(self.dir / name) for name in files]
        if None in sizes:
            return False  # a missing or damaged file: the rebuild replaces it
        return sum(sizes[1:]) * DELTA_SHARE < sizes[0]

    def _save(self, index, stem: str) -> str:
        """Write `index` durably as `<stem>.<digest>.usearch`, and return that name: temp name, fsync, rename,
        fsync the folder. The bytes are written here, not by usearch, whose failure to write a file says nothing
        of why ("Failed to serialize into stream"): a full disk must be told as one, for `forget` to make room."""
        tmp = self.dir / (stem + ".usearch.tmp")
        try:
            self.dir.mkdir(exist_ok=True)
            data = index.save()
            name = f"{stem}.{digest(data)}.usearch"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(self.dir / name)
            fsync_dir(self.dir)
        except OSError as e:
            _discard(tmp)  # a part-written file: the room it took
            raise disk_error(e, self.store.root) from None
        except RuntimeError as e:  # usearch reports write failures as RuntimeError
            _discard(tmp)
            raise DeviceError(self.store.root, f"cannot write the index ({e}); nothing was changed") from None
        return name


def _readable_size(path: Path) -> int | None:
    """The size of an index file usearch can open (mapped, not read), or None."""
    try:
        return path.stat().st_size if _restore(path, view=True) is not None else None
    except OSError:
        return None


#: The coarsest timestamp step of the filesystems a memory lives on (FAT's 2 s; ext4's is a clock tick): a file
#: rewritten within it of its last change can keep the size and times it had ("racy git").
TIMESTAMP_STEP_NS = 2 * 10**9


@dataclass(slots=True)
class FileState:
    """A mapped file as it was mapped: what a change to it shows in (equal: the same file, unchanged)."""

    where: tuple[int, int]  # device and inode: another file renamed over it has others
    size: int
    times: tuple[int, int]  # last write and last inode change (`os.utime` back to the old times changes the latter)
    settled: bool = field(compare=False)  # its last change was a timestamp step before: a rewrite now moves its times

    def differs(self, now: "FileState") -> bool:
        return (now.size, now.times) != (self.size, self.times)


def _file_state(path: Path) -> FileState:
    """What a mapped file's change shows in; an OSError where it is gone or cannot be looked at."""
    found = path.stat()
    last_change = max(found.st_mtime_ns, found.st_ctime_ns)
    return FileState((found.st_dev, found.st_ino), found.st_size, (found.st_mtime_ns, found.st_ctime_ns),
                     time.time_ns() >= last_change + TIMESTAMP_STEP_NS)


def _state(path: Path) -> FileState | None:
    """`_file_state`, None where the file is gone or cannot be looked at."""
    try:
        return _file_state(path)
    except OSError:
        return None


@dataclass(frozen=True)
class Neighbour:
    concept_id: int
    score: float


class IndexView:
    """A reader's memory-mapped view of one space's index files, re-mapped whenever a writer lists new ones."""

    def __init__(self, store: Store, space: str, expected: SpaceInfo | None = None):
        """`expected`: the model the reader queries with; every new generation is checked against it, so a
        running reader never compares its queries with vectors another model made (a reindex meanwhile)."""
        self.store = store
        self.space = space
        self.expected = expected
        self.generation = -1
        self.indexes: list = []
        self._mapped: dict[Path, FileState] = {}  # each mapped file's state as it was mapped
        # the listed files the database's vectors stand in for, as they were then (None: gone, not looked at): one
        # changed since (its drive or folder back, a good copy put back) is mapped again, not left until a write
        self._unmapped: dict[Path, FileState | None] = {}
        self._refreshing = threading.Lock()  # (threads searching at once see a change once)
        _VIEWS.add(self)

    def let_go(self) -> None:
        """Unmap the files (a writer deleted them); the next search maps, or builds, what the row lists then. Waits
        for a refresh under way in another thread, which would keep what it is mapping after an unlocked let go. A
        search under way in another thread keeps its own indexes until it ends."""
        with self._refreshing:
            self._unmap()

    def _unmap(self) -> None:
        self.indexes, self.generation, self._mapped, self._unmapped = [], -1, {}, {}

    def _changed(self) -> dict[Path, bool]:
        """The mapped files to map again, each with whether its size changed: changed in place since mapped
        (truncated, rewritten by another process: a search read past a truncated file's end, a SIGBUS that killed
        the daemon without a line); gone or unreadable (a pulled drive: a page not yet read would be a SIGBUS too);
        or mapped too soon after its last change for its times to vouch for it, and now not the bytes its name's
        digest says (looked at once). One renamed over stays mapped whole: its old bytes, as its row lists them."""
        changed = {}
        for path, state in self._mapped.items():
            if (now := _state(path)) is None:
                changed[path] = False
                continue
            if now.where != state.where:
                continue
            if state.differs(now):
                changed[path] = now.size != state.size
            elif now.settled and not state.settled:  # (once: a rewrite from then on moves its times)
                if _as_named(path):
                    self._mapped[path] = now
                else:
                    changed[path] = False
        return changed

    def refresh(self) -> list:
        """Map the index files the space's row lists, when the row changed, or when one mapped changed under this
        process (mapped again, said once, by one of the threads searching). A missing, unreadable or damaged file
        makes the reader build one index from the database's vectors, with a warning, until the row or one of those
        files changes. Returns the indexes to search, taken under the lock: another thread's refresh lets go of
        `indexes` before it maps anew (a search that read them then found nothing)."""
        with self._refreshing:
            self._refresh()
            return self.indexes

    def _refresh(self) -> None:
        if changed := self._changed():  # (its times alone changed, `touch` or the same bytes copied over it, is
            # read again unsaid, as is one gone or unreadable: said below if its row still lists it; other bytes of
            # its size are said as damaged, below)
            if resized := [path.name for path, size in changed.items() if size]:
                log.warning("%s: index file %s changed while it was in use (truncated or rewritten by another "
                            "process?); read again", self.store.root, " ".join(resized))
            self._unmap()
        elif any(_state(path) != was for path, was in self._unmapped.items()):
            self._unmap()  # (its drive back: mapped again, unsaid)
        tried = None
        for _ in range(5):
            row = self.store.space(self.space)
            if row is None or row[4] is None:
                self.indexes, self.generation = [], -1
                return
            if row[3] == self.generation:
                return
            if row[3] == tried:
                break  # (the files it lists are bad, not swapped under us: not read again)
            tried = row[3]
            if self.expected is not None:
                check_space(row, self.expected)
            paths = [self.store.root / "index" / name for name in index_files(row[4])]
            states = {path: _state(path) for path in paths}  # (before mapping: a change meanwhile is seen)
            # (one that cannot be looked at cannot be watched: not mapped, and then none is read)
            bad = [path for path, state in states.items() if state is None]
            indexes = [] if bad else [_restore(path, view=True) for path in paths]
            bad += [path for path, index in zip(paths, indexes) if index is None]
            if not bad:
                self.indexes, self.generation, self._mapped = indexes, row[3], states
                return
            # swapped again under us (the row read again lists others), or missing, unreadable or damaged
        log.warning("%s: index file %s is missing, unreadable or damaged; searching the vectors in the database "
                    "instead (the next change to the memory, or `edge-rap reindex`, writes it again)", self.store.root,
                    " ".join(path.name for path in bad))
        keys, vectors = self.store.vectors(self.space)
        self.indexes, self._mapped, self._unmapped = [], {}, states
        if len(keys):
            self.indexes = [_new_index(vectors.shape[1])]
            self.indexes[0].add(keys, vectors)
        self.generation = row[3]

    def __len__(self) -> int:
        return sum(len(index) for index in self.refresh())

    def search(self, query: np.ndarray, count: int) -> list[Neighbour]:
        """Best score per concept among the nearest `count` vectors of all the files (exact scan for small
        files): each file's nearest `count`, merged, are the nearest `count` of them all."""
        keys, scores = [], []
        for index in self.refresh():
            size = len(index)
            if size:
                matches = index.search(query.astype(np.float32), count=min(count, size), exact=size <= 20_000)
                keys.append(np.asarray(matches.keys, dtype=np.int64))
                scores.append(1.0 - np.asarray(matches.distances, dtype=np.float64))
        if not keys:
            return []
        all_keys, all_scores = np.concatenate(keys), np.concatenate(scores)
        best: dict[int, float] = {}
        for i in np.argsort(-all_scores, kind="stable")[:count]:
            key, score = int(all_keys[i]), float(all_scores[i])
            if score > best.get(key, -2.0):
                best[key] = score
        return [Neighbour(k, s) for k, s in sorted(best.items(), key=lambda kv: -kv[1])]

    def grouped(self) -> tuple[np.ndarray, np.ndarray]:
        """Every vector of the mapped files with its concept id, grouped by concept in ascending id order (keys,
        vectors): read from the memory-mapped files, a fraction of the cost of reading them from SQLite."""
        keys, vectors = [], []
        for index in self.refresh():
            if len(index):
                ids = np.unique(np.asarray(index.keys[:], dtype=np.int64))
                groups = [np.atleast_2d(np.asarray(v, dtype=np.float32)) for v in index.get(ids)]
                keys.append(np.repeat(ids, [len(g) for g in groups]))
                vectors.extend(groups)
        if not keys:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        all_keys = np.concatenate(keys)
        order = np.argsort(all_keys, kind="stable")  # a concept's vectors from the base first, then each delta's
        return all_keys[order], np.concatenate(vectors)[order]
