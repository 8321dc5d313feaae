"""The line of requests waiting for the device's one-at-a-time work (a write, the model), bounded: each waits in
one of the server's few threads (40, shared by every route), so a line without end left none for the others. 45
photos sent at once had a health check from another phone wait 18 s, the household page with it."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from edge_rap.serve.problems import ApiError


class Line:
    """At most `limit` requests waiting for or holding the device's locks; one more is answered 503."""

    def __init__(self, limit: int):
        self.limit = limit
        self._count = 0
        self._guard = threading.Lock()

    @contextmanager
    def waiting_for(self, lock: threading.Lock) -> Iterator[None]:
        """Hold `lock`, counted in the line until it is released; 503 with Retry-After when the line is full."""
        with self._guard:
            if self._count >= self.limit:
                raise ApiError(f"the device is busy: {self._count} requests are waiting for it; try again in a "
                               "moment", 503, headers={"Retry-After": "5"})
            self._count += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                self._count -= 1
