"""The two caches that keep time-to-first-token low: encoded reference images, and the state after the prefix.

- EncoderCache: each reference image's projector output (mtmd's image embeddings), computed once per image
  and mmproj, kept in RAM and persisted as .npy files, so a restart does not re-encode the household.
- PrefixCache: the model's state (KV cache of one sequence) after system prompt + references, keyed by the
  rendered prefix and its images (so by the set of concepts), kept warm in RAM.

Both are keyed by content, never by name: a concept whose photo, name or description changes gets a new
key and the old entry is never used again (it ages out: the files on disk are kept within a byte budget, least
recently used out first); another model or mmproj file, or another llama-cpp-python (mtmd's image preprocessing
changes between releases), has another fingerprint, so another folder and other keys. A forgotten concept's
encodings are deleted with it (`forget_encodings`): they are derived from its photos.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("edge_rap.generate")

#: The encoder cache's folder in the model cache: one subfolder per fingerprint (of the mmproj and the llama.cpp).
ENCODINGS_FOLDER = "vlm-cache"
#: Bytes of encodings kept on disk, every fingerprint's folder together: a few hundred households' photos for a small
#: VLM (an encoding is tokens x embedding floats, 0.1-2 MB); the least recently used go first.
ENCODINGS_MAX_BYTES = 512 << 20
#: A temporary file older than this is one a killed writer left (an encoding is written in well under a second).
STALE_TEMPORARY_NS = 3600 * 10**9


def _encoding_file(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:40] + ".npy"


def forget_encodings(root: Path, keys: Iterable[str]) -> int:
    """Delete the encodings of these image keys under every mmproj's folder of `root`; how many were deleted.
    A file that cannot be deleted (a read-only model cache) is logged, not raised: the concept is forgotten."""
    names = {_encoding_file(key) for key in keys}
    deleted = 0
    try:
        folders = [f for f in root.iterdir() if f.is_dir()] if names and root.is_dir() else []
    except OSError as e:  # (raised, it stopped forget before the concept's events went)
        log.warning("encoder cache: cannot list %s (%s)", root, e.strerror or e)
        return 0
    for folder in folders:
        for name in names:
            try:
                (folder / name).unlink()
                deleted += 1
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("encoder cache: cannot delete %s (%s)", folder / name, e.strerror)
    return deleted


def file_fingerprint(path: Path, read_by: str = "") -> str:
    """A fast identity for a large model file: size, modification time and the sha256 of its first and last MiB.
    (The full sha256 is checked once, when `edge-rap models pull` installs the file.) `read_by`: the code whose
    results from the file are keyed by it, where another version's results differ."""
    st = path.stat()
    h = hashlib.sha256(f"{read_by}{st.st_size}:{st.st_mtime_ns}".encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        if st.st_size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            h.update(f.read(1 << 20))
    return h.hexdigest()


class EncoderCache:
    """Image embeddings by (mmproj fingerprint, image key): an LRU in RAM over .npy files on disk."""

    def __init__(self, folder: Path | None, fingerprint: str, max_items: int = 256,
                 max_bytes: int = ENCODINGS_MAX_BYTES):
        self.folder = folder / fingerprint[:16] if folder is not None else None
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._ram: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def _file(self, key: str) -> Path | None:
        if self.folder is None:
            return None
        return self.folder / _encoding_file(key)

    def get(self, key: str, size: int) -> np.ndarray | None:
        """The embedding of an image, if cached with the expected number of floats."""
        embd = self._ram.get(key)
        if embd is None:
            embd = self._read(key, size)
        if embd is None or embd.dtype != np.float32 or embd.size != size:
            self.misses += 1
            return None
        self._remember(key, embd)
        self.hits += 1
        return embd

    def _read(self, key: str, size: int) -> np.ndarray | None:
        """The encoding's file, if it is there and whole. One that is not (cut short, damaged, or of another number
        of floats) is deleted, so that the encoding made now takes its place: kept, `put` left it there, and it was
        read, refused and encoded again at every start."""
        path = self._file(key)
        if path is None or not path.exists():
            return None
        try:
            embd = np.load(path, allow_pickle=False)
        except FileNotFoundError:  # deleted meanwhile (forget, or another process keeping the budget)
            return None
        except (OSError, ValueError) as e:
            why = str(e)
        else:
            if embd.dtype == np.float32 and embd.size == size:
                with suppress(OSError):  # used now: the last to go when the folder is over its budget
                    os.utime(path)
                return embd
            why = f"{embd.size} {embd.dtype} values where {size} float32 were expected"
        log.warning("encoder cache: unusable %s (%s); encoding it again", path, why)
        with suppress(OSError):
            path.unlink()
        return None

    def put(self, key: str, embd: np.ndarray) -> None:
        embd = np.ascontiguousarray(embd, dtype=np.float32).ravel()
        self._remember(key, embd)
        path = self._file(key)
        if path is None or path.exists():
            return
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                np.save(f, embd, allow_pickle=False)
            tmp.replace(path)
        except OSError as e:  # a read-only or full disk costs speed, not answers
            log.warning("encoder cache: cannot write %s (%s); keeping it in memory only", path, e)
            with suppress(OSError):  # a half-written file on a full disk would take space at every start
                tmp.unlink(missing_ok=True)
            return
        self._keep_within_budget(keep=path)

    def _keep_within_budget(self, keep: Path) -> None:
        """Delete the least recently used encodings until the cache, every projector's folder together, is within
        `max_bytes` (never `keep`, the one just written): the folder of a projector or a llama.cpp no longer used is
        never written again, and was never pruned. A temporary file a killed writer left goes too. Run at each
        write, which is rare: once per new reference photo."""
        files = []
        root = self.folder.parent
        try:
            folders = [Path(entry.path) for entry in os.scandir(root) if entry.is_dir()]
        except OSError as e:  # the cache cleared by hand meanwhile: its budget is kept at the next write
            log.warning("encoder cache: cannot list %s (%s)", root, e.strerror)
            return
        stale = time.time_ns() - STALE_TEMPORARY_NS
        for folder in folders:
            try:
                entries = list(os.scandir(folder))
            except OSError:  # (deleted meanwhile: nothing of it to count)
                continue
            for entry in entries:
                with suppress(OSError):  # (each may be deleted meanwhile: by forget, by another process's budget)
                    stat = entry.stat()
                    if entry.name.endswith(".tmp") and stat.st_mtime_ns < stale:
                        os.unlink(entry.path)
                    elif entry.name.endswith(".npy") and entry.is_file():
                        files.append((stat.st_mtime_ns, stat.st_size, Path(entry.path)))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files, key=lambda f: f[0]):
            if total <= self.max_bytes:
                break
            if path != keep:
                with suppress(OSError):
                    path.unlink()
                    total -= size

    def _remember(self, key: str, embd: np.ndarray) -> None:
        self._ram[key] = embd
        self._ram.move_to_end(key)
        while len(self._ram) > self.max_items:
            self._ram.popitem(last=False)

    def clear(self) -> None:
        self._ram.clear()


@dataclass(frozen=True)
class PrefixState:
    """One sequence's saved state after a prefix, the position the suffix starts at, and the context's cells it
    takes (more than its positions where images take fewer positions than tokens: M-RoPE)."""

    key: str
    n_past: int
    n_cells: int
    state: bytes


class PrefixCache:
    """Saved prefix states, least recently used out first, within a byte budget."""

    def __init__(self, max_bytes: int = 512 << 20, max_items: int = 16):
        self.max_bytes = max_bytes
        self.max_items = max_items
        self._states: OrderedDict[str, PrefixState] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> PrefixState | None:
        state = self._states.get(key)
        if state is None:
            self.misses += 1
            return None
        self._states.move_to_end(key)
        self.hits += 1
        return state

    def put(self, state: PrefixState) -> None:
        if len(state.state) > self.max_bytes:
            return
        self._states[state.key] = state
        self._states.move_to_end(state.key)
        while len(self._states) > self.max_items or self.nbytes > self.max_bytes:
            self._states.popitem(last=False)

    @property
    def nbytes(self) -> int:
        return sum(len(s.state) for s in self._states.values())

    def __len__(self) -> int:
        return len(self._states)

    def clear(self) -> None:
        self._states.clear()
