"""Card-sized JPEGs of the memory's photos, each made once: the household page asks for every card's photo at
each visit, and each was decoded again under the device's one-at-a-time lock (about 30 ms a 12-megapixel photo:
300 cards held it for 9 s, while a question waited). A stored photo's path names its content, so a path and a
size always make the same bytes; the routes check that the photo is still the concept's before asking here, and
again after (it may have been forgotten meanwhile).

They are made one at a time under a lock of their own, not the model's: a first visit made every card's under
it (50 phone photos held it 1.8 s), and recognition and answers waited, though making one needs no model. One
at a time still bounds their memory: a photo no JPEG is decoded at its full size first."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from edge_rap.perceive.images import thumbnail_jpeg

MAX_BYTES = 16 * 2**20  # about 250 cards at a phone's size (66 KB at 480 px)


class Thumbnails:
    """The JPEGs made, least recently used out first past `max_bytes`."""

    def __init__(self, max_bytes: int = MAX_BYTES):
        self.max_bytes = max_bytes
        self._made: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # the cache's
        self.making = threading.Lock()  # held by `make`'s caller: one made at a time

    def cached(self, path: Path, size: int) -> bytes | None:
        """The JPEG made before for this photo and size, or None."""
        with self._lock:
            data = self._made.get((str(path), size))
            if data is not None:
                self._made.move_to_end((str(path), size))
            return data

    def make(self, path: Path, size: int) -> bytes:
        """The JPEG, made now (the caller holds `making`) and kept; or made by another request while this one
        waited for `making`."""
        if (data := self.cached(path, size)) is not None:
            return data
        data = thumbnail_jpeg(path, size)
        with self._lock:
            key = (str(path), size)
            if key not in self._made and len(data) <= self.max_bytes:
                self._made[key] = data
                self._bytes += len(data)
                while self._bytes > self.max_bytes:
                    self._bytes -= len(self._made.popitem(last=False)[1])
        return data
