"""The live objects of one kind in this process, listed from any thread: so that one part can reach the others'
(readers that must let go of a file, connections that must give up a read-only handle) without keeping them alive.
A WeakSet cannot be listed while another thread drops a member: the member's weakref callback takes it out of the
set without any lock of ours, and the listing failed ("Set changed size during iteration", met on Python 3.10 even
with adding and listing under one lock). So the set is a list of plain weak references (no callbacks), which only
adding and listing change, under one lock; the dead ones are let go as it grows."""

from __future__ import annotations

import threading
import weakref
from typing import Generic, TypeVar

T = TypeVar("T")


class LiveSet(Generic[T]):
    def __init__(self) -> None:
        self._refs: "list[weakref.ref[T]]" = []
        self._limit = 64  # the length at which the dead are let go: twice those alive then, so each add costs O(1)
        self._lock = threading.Lock()

    def add(self, member: T) -> None:
        with self._lock:
            self._refs.append(weakref.ref(member))
            if len(self._refs) > self._limit:
                self._refs = [ref for ref in self._refs if ref() is not None]
                self._limit = 2 * len(self._refs) + 64

    def members(self) -> list[T]:
        """Those alive now, as a list the caller may go through while others are added."""
        with self._lock:
            return [member for member in (ref() for ref in self._refs) if member is not None]
