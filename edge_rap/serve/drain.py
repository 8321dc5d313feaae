"""Stopping the API without pulling the household from under a request: the requests in flight are counted, a
stop waits for them (bounded) before the household closes, and a request that comes once the stop began, or one
still running when the household closed, is answered 503, never with a traceback, and never left unanswered."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

from edge_rap.serve.guard import send_error

SHUTTING_DOWN = "the device is shutting down; try again when it is back"
#: Sent with every SHUTTING_DOWN: a 503 with Retry-After is worth retrying, one without is the device's own trouble
#: (a change perhaps done in part), which a client must not send again blindly.
BACK_SOON = {"Retry-After": "5"}


class Answer:
    """One request's way to its client: whether its answer has begun, and the server's loop it runs on, for the
    stop to answer it 503 itself; what the request sends after that is dropped."""

    def __init__(self, send):
        self._send = send
        self.loop = asyncio.get_running_loop()
        self.begun = False
        self._cut = False

    async def send(self, message) -> None:
        if not self._cut:
            self.begun = True
            await self._send(message)

    async def cut(self) -> bool:
        """Answer 503 now, where the request has not begun its answer (one that has is left to end); whether it did."""
        if self.begun:
            return False
        self.begun = self._cut = True
        await send_error(self._send, 503, SHUTTING_DOWN, BACK_SOON)
        return True


class InFlight:
    """The requests being answered, and whether the server is stopping."""

    def __init__(self):
        self._changed = threading.Condition()
        self._running: set[Answer] = set()
        self.closing = False

    def enter(self, answer: Answer) -> bool:
        """Count a request in; False once the stop began (it is to be refused)."""
        with self._changed:
            if self.closing:
                return False
            self._running.add(answer)
            return True

    def leave(self, answer: Answer) -> None:
        with self._changed:
            self._running.discard(answer)
            self._changed.notify_all()

    def close(self, timeout: float) -> int:
        """Refuse new requests and wait up to `timeout` for those in flight; how many are still running."""
        with self._changed:
            self.closing = True
            self._changed.wait_for(lambda: not self._running, timeout)
            return len(self._running)

    def cut(self, timeout: float = 1.0) -> tuple[int, int]:
        """Answer 503 each request still running that has not begun its answer, from the server's loop (within
        `timeout`): called once the household closed, before the process ends under them, which left their clients
        without an answer ("100 Continue", then an empty reply). How many were answered 503, and how many are still
        running, their answers begun (or their loop stuck)."""
        with self._changed:
            running = list(self._running)
        answered = 0
        for answer in running:
            try:
                answered += asyncio.run_coroutine_threadsafe(answer.cut(), answer.loop).result(timeout)
            except (concurrent.futures.TimeoutError, RuntimeError):  # the loop stuck or closed: nothing to answer by
                pass
        return answered, len(running) - answered


class Drain:
    """The outermost ASGI layer: every HTTP request counted in and out of `in_flight`, or refused with 503 once
    the server is stopping."""

    def __init__(self, app, in_flight: InFlight):
        self.app = app
        self.in_flight = in_flight

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        answer = Answer(send)
        if not self.in_flight.enter(answer):
            return await send_error(send, 503, SHUTTING_DOWN, BACK_SOON)
        try:
            return await self.app(scope, receive, answer.send)
        finally:
            self.in_flight.leave(answer)
