"""The two caches that keep time-to-first-token low: encoded reference images, and the state after the prefix.

- EncoderCache: each reference image's projector output (mtmd's image embeddings), computed once per image
  and mmproj, kept in RAM and persisted as .npy files, so a restart does not re-encode the household.
- PrefixCache: the model's state (KV cache of one sequence) after system prompt + references, keyed by the
  rendered prefix and its images (so by the set of concepts), kept warm in RAM.

Both are keyed by content, never by name: a concept whose photo, name or description changes gets a new
key and the old entry is never used again (it ages out); another model or mmproj file has another
fingerprint, so another folder and other keys.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger("edge_rap.generate")


def file_fingerprint(path: Path) -> str:
    """A fast identity for a large model file: size, modification time and the sha256 of its first and last MiB.
    (The full sha256 is checked once, when `edge-rap models pull` installs the file.)"""
    st = path.stat()
    h = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        if st.st_size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            h.update(f.read(1 << 20))
    return h.hexdigest()


class EncoderCache:
    """Image embeddings by (mmproj fingerprint, image key): an LRU in RAM over .npy files on disk."""

    def __init__(self, folder: Path | None, fingerprint: str, max_items: int = 256):
        self.folder = folder / fingerprint[:16] if folder is not None else None
        self.max_items = max_items
        self._ram: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def _file(self, key: str) -> Path | None:
        if self.folder is None:
            return None
        return self.folder / (hashlib.sha256(key.encode()).hexdigest()[:40] + ".npy")

    def get(self, key: str, size: int) -> np.ndarray | None:
        """The embedding of an image, if cached with the expected number of floats."""
        embd = self._ram.get(key)
        if embd is None and (path := self._file(key)) is not None and path.exists():
            try:
                embd = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as e:
                log.warning("encoder cache: unreadable %s (%s); re-encoding", path, e)
                embd = None
        if embd is None or embd.dtype != np.float32 or embd.size != size:
            self.misses += 1
            return None
        self._remember(key, embd)
        self.hits += 1
        return embd

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

    def _remember(self, key: str, embd: np.ndarray) -> None:
        self._ram[key] = embd
        self._ram.move_to_end(key)
        while len(self._ram) > self.max_items:
            self._ram.popitem(last=False)

    def clear(self) -> None:
        self._ram.clear()


@dataclass(frozen=True)
class PrefixState:
    """One sequence's saved state after a prefix, and the position the suffix starts at."""

    key: str
    n_past: int
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
