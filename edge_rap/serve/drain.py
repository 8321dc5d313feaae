"""Stopping the API without pulling the household from under a request: the requests in flight are counted, a
stop waits for them (bounded) before the household closes, and a request that comes once the stop began, or one
still running when the household closed, is answered 503, never with a traceback, and never left unanswered.

A change of the memory (an upload, a rename, a forget) is waited for longer: one that committed as the wait ended was
answered 503 "try again" (the household closed under what followed its commit), and the client, told nothing was done,
sent it again or told its user it failed. A change not begun once the stop began is refused (503, nothing done); one
under way is waited for until its answer is sent, up to `changes_s` more; one still running after that is answered
503 without Retry-After, saying that it may have been made."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from contextvars import ContextVar
from typing import Callable

from edge_rap.errors import EdgeRapError
from edge_rap.serve.guard import send_error
from edge_rap.wording import counted

log = logging.getLogger(__name__)

SHUTTING_DOWN = "the device is shutting down; try again when it is back"
#: Sent with every SHUTTING_DOWN: a 503 with Retry-After is worth retrying, one without is the device's own trouble
#: (a change perhaps done in part), which a client must not send again blindly.
BACK_SOON = {"Retry-After": "5"}
#: A change the household closed under once the stop's waits were spent: perhaps made, so not to be sent again blindly.
MAY_BE_DONE = ("the device shut down while making this change: it may have been made; look before sending it "
               "again")

#: The request this context answers (a route's thread runs in a copy of its context): the one a change is of.
_ANSWERING: ContextVar[Answer | None] = ContextVar("edge_rap_answering", default=None)


class ShuttingDown(EdgeRapError):
    """A change refused because the stop began before it did: nothing was done, worth sending again."""

    status = 503
    headers = BACK_SOON

    def __init__(self):
        super().__init__(SHUTTING_DOWN)


def shut_down() -> tuple[str, dict[str, str] | None]:
    """The 503's words and headers for the request this context answers, cut short by the shutdown."""
    return _cut_short(_ANSWERING.get())


def _cut_short(answer: Answer | None) -> tuple[str, dict[str, str] | None]:
    """A change's may have been made (no Retry-After); any other request is to be sent again."""
    return (MAY_BE_DONE, None) if answer is not None and answer.changing else (SHUTTING_DOWN, BACK_SOON)


class Answer:
    """One request's way to its client: whether its answer has begun, and the server's loop it runs on, for the
    stop to answer it 503 itself; what the request sends after that is dropped."""

    def __init__(self, send):
        self._send = send
        self.loop = asyncio.get_running_loop()
        self.begun = False
        self.changing = False  # its route began a change of the memory: the stop waits for its answer
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
        await send_error(self._send, 503, *_cut_short(self))
        return True


class InFlight:
    """The requests being answered, and whether the server is stopping."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._changed = threading.Condition()
        self._running: set[Answer] = set()
        self._clock = clock
        self._given_up = False  # the stop hurried (a second Ctrl-C): its waits end at once
        self.closing = False
        self.waited_s = 0.0  # how long the stop waited, as timed (its limits said "15 s" of one that ended in 1)

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

    def begin_change(self) -> None:
        """Called as a route begins to change the memory (its turn to write taken): the stop waits for its answer;
        refused (503, nothing done) where the stop began first."""
        with self._changed:
            if self.closing:
                raise ShuttingDown()
            if (answer := _ANSWERING.get()) is not None:
                answer.changing = True

    def close(self, timeout: float, changes_s: float = 0.0) -> int:
        """Refuse new requests and changes, wait up to `timeout` for those in flight, then up to `changes_s` more for
        the changes among them, unless `give_up` ends the waits; how many are still running. Any to wait for are
        said first: the stop was silent for up to 15 s."""

        def changes() -> int:
            return sum(answer.changing for answer in self._running)

        began = self._clock()
        with self._changed:
            self.closing = True
            if self._running and not self._given_up:
                changing = changes()
                log.warning("stopping: waiting up to %g s for %s under way%s; Ctrl-C again to stop now",
                            timeout + (changes_s if changing else 0.0), counted(len(self._running), "request"),
                            f" ({counted(changing, 'change')} of the memory)" if changing else "")
            self._changed.wait_for(lambda: self._given_up or not self._running, timeout)
            self._changed.wait_for(lambda: self._given_up or not changes(), changes_s)
            self.waited_s = self._clock() - began
            return len(self._running)

    def give_up(self) -> None:
        """End the stop's waits now (a second Ctrl-C): what is still running is answered as after them (`cut`). A
        change under way is cut at no worse a moment than the process's end: the memory commits whole or not at all."""
        with self._changed:
            self._given_up = True
            self._changed.notify_all()

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
    """The ASGI layer inside the target's and Host's checks: every HTTP request they let through counted in and out
    of `in_flight`, or refused with 503 once the server is stopping."""

    def __init__(self, app, in_flight: InFlight):
        self.app = app
        self.in_flight = in_flight

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        answer = Answer(send)
        _ANSWERING.set(answer)  # (the request's own task: no other request sees it)
        if not self.in_flight.enter(answer):
            return await send_error(send, 503, SHUTTING_DOWN, BACK_SOON)
        try:
            return await self.app(scope, receive, answer.send)
        finally:
            self.in_flight.leave(answer)
