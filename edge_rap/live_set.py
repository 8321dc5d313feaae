"""The live objects of one kind in this process, listed from any thread: so that one part can reach the others'
(readers that must let go of a file, connections that must give up a read-only handle) without keeping them alive.
A bare WeakSet listed while another thread adds to it fails ("Set changed size during iteration"); here adding and
listing take one lock."""

from __future__ import annotations

import threading
import weakref
from typing import Generic, TypeVar

T = TypeVar("T")


class LiveSet(Generic[T]):
    def __init__(self) -> None:
        self._members: "weakref.WeakSet[T]" = weakref.WeakSet()
        self._lock = threading.Lock()

    def add(self, member: T) -> None:
        with self._lock:
            self._members.add(member)

    def members(self) -> list[T]:
        """Those alive now, as a list the caller may go through while others are added."""
        with self._lock:
            return list(self._members)
