"""USearch indexes, one per embedding space: built by writers into a new file, memory-mapped by readers.

The SQLite row of a space names its current index file; a writer writes a complete new file (temp name,
fsync, rename) and then switches the row inside its transaction, so the swap is atomic and a killed writer
leaves either the old index or the new one, never a half-written one. Readers re-map when the row changes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.memory.store import Store, disk_error
from edge_rap.memory.files import fsync_dir, is_own_index
from edge_rap.perceive.embed import SpaceInfo

log = logging.getLogger(__name__)


def _new_index(dim: int):
    from usearch.index import Index

    return Index(ndim=dim, metric="cos", dtype="f32", multi=True)


def _restore(path: Path, view: bool = False):
    """The index in `path`, or None where it is missing or unreadable."""
    from usearch.index import Index

    try:
        return Index.restore(str(path), view=view)  # None for a missing file
    except Exception:  # usearch raises ValueError or RuntimeError for a damaged one
        return None


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):  # the error being reported matters more
        path.unlink(missing_ok=True)


def _safe(space: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", space)


def check_space(row: tuple, space: SpaceInfo) -> None:
    """Refuse a space row (model, fingerprint, dim, ...) whose vectors another model made than `space`'s."""
    if (row[1], row[2]) != (space.fingerprint, space.dim):
        raise EdgeRapError(
            f"the memory's {space.name!r} vectors were made by another model ({row[0]}, {row[2]} dims, "
            f"fingerprint {row[1][:12]}), not {space.model} ({space.fingerprint[:12]}): run `edge-rap reindex`"
        )


class IndexWriter:
    """Writes a space's next index file inside the caller's transaction."""

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
        live = {r[0] for r in db.execute("SELECT index_file FROM spaces WHERE index_file IS NOT NULL")}
        for path in self.dir.iterdir():
            if path.name not in live and is_own_index(path):  # never a file the memory did not write
                path.unlink(missing_ok=True)

    def write(self, db: sqlite3.Connection, space: str, added: tuple[np.ndarray, np.ndarray] | None = None,
              make_room: bool = False) -> None:
        """Write the next index of `space`: the current one plus `added`, or rebuilt from the database.
        `make_room` (a full disk): delete the current file first. Until the commit, readers then find the
        file the row names missing and search the database's vectors instead (so does one after a crash)."""
        model, fingerprint, dim, generation, current = self.store.space(space, db)
        index = _restore(self.dir / current) if added is not None and current else None
        if index is None:
            index = _new_index(dim)
            keys, vectors = self.store.vectors(space, db)
            if len(keys):
                index.add(keys, vectors)
        else:
            index.add(*added)
        if make_room and current:
            (self.dir / current).unlink(missing_ok=True)
        name = f"{_safe(space)}-{generation + 1}.usearch"
        try:
            self.dir.mkdir(exist_ok=True)
            tmp = self.dir / (name + ".tmp")
            index.save(str(tmp))
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            tmp.replace(self.dir / name)
            fsync_dir(self.dir)
        except OSError as e:
            _discard(self.dir / (name + ".tmp"))  # a part-written file: the room it took
            raise disk_error(e, self.store.root) from None
        except RuntimeError as e:  # usearch reports write failures as RuntimeError
            _discard(self.dir / (name + ".tmp"))
            raise EdgeRapError(f"{self.store.root}: cannot write the index ({e}); nothing was changed") from None
        db.execute("UPDATE spaces SET generation = ?, index_file = ? WHERE name = ?", (generation + 1, name, space))


@dataclass(frozen=True)
class Neighbour:
    concept_id: int
    score: float


class IndexView:
    """A reader's memory-mapped view of one space's index, re-mapped whenever a writer swaps in a new one."""

    def __init__(self, store: Store, space: str, expected: SpaceInfo | None = None):
        """`expected`: the model the reader queries with; every new generation is checked against it, so a
        running reader never compares its queries with vectors another model made (a reindex meanwhile)."""
        self.store = store
        self.space = space
        self.expected = expected
        self.generation = -1
        self.index = None

    def refresh(self) -> None:
        """Map the index file the space's row names, when the row changed. A missing or unreadable file is
        replaced by an index built from the database's vectors, once per generation, with a warning."""
        for _ in range(5):
            row = self.store.space(self.space)
            if row is None or row[4] is None:
                self.index, self.generation = None, -1
                return
            if row[3] == self.generation:
                return
            if self.expected is not None:
                check_space(row, self.expected)
            index = _restore(self.store.root / "index" / row[4], view=True)
            if index is not None:
                self.index, self.generation = index, row[3]
                return
            # swapped again under us (read the row again), or missing or unreadable
        log.warning("%s: index file %s is missing or unreadable; searching the vectors in the database instead "
                    "(the next change to the memory, or `edge-rap reindex`, writes it again)", self.store.root, row[4])
        keys, vectors = self.store.vectors(self.space)
        self.index = _new_index(vectors.shape[1]) if len(keys) else None
        if self.index is not None:
            self.index.add(keys, vectors)
        self.generation = row[3]

    def __len__(self) -> int:
        self.refresh()
        return 0 if self.index is None else len(self.index)

    def search(self, query: np.ndarray, count: int) -> list[Neighbour]:
        """Best score per concept among the nearest `count` vectors (exact scan for small indexes)."""
        self.refresh()
        if self.index is None or len(self.index) == 0:
            return []
        size = len(self.index)
        matches = self.index.search(query.astype(np.float32), count=min(count, size), exact=size <= 20_000)
        best: dict[int, float] = {}
        for key, distance in zip(matches.keys, matches.distances):
            score = 1.0 - float(distance)
            if score > best.get(int(key), -2.0):
                best[int(key)] = score
        return [Neighbour(k, s) for k, s in sorted(best.items(), key=lambda kv: -kv[1])]

    def grouped(self) -> tuple[np.ndarray, np.ndarray]:
        """Every vector of the mapped index with its concept id, grouped by concept in ascending id order (keys,
        vectors): read from the memory-mapped file, a fraction of the cost of reading them from SQLite."""
        self.refresh()
        if self.index is None or len(self.index) == 0:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        ids = np.unique(np.asarray(self.index.keys[:], dtype=np.int64))
        groups = [np.atleast_2d(np.asarray(v, dtype=np.float32)) for v in self.index.get(ids)]
        keys = np.repeat(ids, [len(g) for g in groups])
        return keys, np.concatenate(groups)

    def vectors_of(self, concept_id: int) -> np.ndarray:
        self.refresh()
        if self.index is None:
            return np.zeros((0, 0), np.float32)
        got = self.index.get(concept_id)
        return np.zeros((0, 0), np.float32) if got is None else np.atleast_2d(np.asarray(got, dtype=np.float32))
