"""Stopping the API without pulling the household from under a request: the requests in flight are counted, a
stop waits for them (bounded) before the household closes, and a request that comes once the stop began, or one
still running when the household closed, is answered 503, never with a traceback."""

from __future__ import annotations

import threading

from edge_rap.serve.guard import send_error

SHUTTING_DOWN = "the device is shutting down; try again when it is back"


class InFlight:
    """How many requests are being answered, and whether the server is stopping."""

    def __init__(self):
        self._changed = threading.Condition()
        self._count = 0
        self.closing = False

    def enter(self) -> bool:
        """Count a request in; False once the stop began (it is to be refused)."""
        with self._changed:
            if self.closing:
                return False
            self._count += 1
            return True

    def leave(self) -> None:
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    def close(self, timeout: float) -> int:
        """Refuse new requests and wait up to `timeout` for those in flight; how many are still running."""
        with self._changed:
            self.closing = True
            self._changed.wait_for(lambda: self._count == 0, timeout)
            return self._count


class Drain:
    """The outermost ASGI layer: every HTTP request counted in and out of `in_flight`, or refused with 503 once
    the server is stopping."""

    def __init__(self, app, in_flight: InFlight):
        self.app = app
        self.in_flight = in_flight

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if not self.in_flight.enter():
            return await send_error(send, 503, SHUTTING_DOWN)
        try:
            return await self.app(scope, receive, send)
        finally:
            self.in_flight.leave()
