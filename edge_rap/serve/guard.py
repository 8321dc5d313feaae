"""ASGI guards in front of every route: the bearer token (with failed attempts rate-limited) and the body limit.

A missing or wrong token, and a Content-Length over the limit, are refused from the request's head alone, before
any route runs or any of the body is read: an unauthenticated or oversized upload costs the device nothing. The body
limit then counts the body as the route reads it (a chunked one is refused once past the limit, the rest never read)
and watches a multipart form for its closing boundary (one cut off is refused before a route acts on what came),
dropping a preamble before its first boundary, which the form's parser refuses.
Authentication is by the Authorization header only (no cookies), so a page on another site cannot make the
household's browser act for it (no CSRF)."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass

from edge_rap.errors import DeviceError
from edge_rap.serve.log_budget import KIND
from edge_rap.serve.token import TokenKeeper

log = logging.getLogger(__name__)

#: Paths under /api that need no token.
PUBLIC = {"/api/health"}
#: And the paths one step under these, which carry their own credential: a backup's short-lived link (serve/backup.py).
PUBLIC_UNDER = ("/api/downloads/",)


def is_public(path: str) -> bool:
    """Whether an /api path needs no token (a schema's templated path too: `/api/downloads/{ticket}`)."""
    return path in PUBLIC or any(path.startswith(p) and path[len(p):] and "/" not in path[len(p):]
                                 for p in PUBLIC_UNDER)


def error_body(message: str) -> bytes:
    """An error's JSON as every answer has it (JSONResponse's: compact, UTF-8), for those answered before FastAPI
    (401, 421, 429 here; 400 and 503 on the connection): theirs had spaces and escaped every accent."""
    from edge_rap.serve.responses import TextJSONResponse  # (`pair`, `run` without --serve: no web framework)

    return TextJSONResponse({"error": message}).body


async def send_error(send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    body = error_body(message)
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store")]
    head += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class AttemptLimit:
    """At most `failures` wrong or missing tokens per client within `window_s`; then 429 until the window passes."""

    failures: int = 10
    window_s: float = 60.0


class FailureLimiter:
    """Failed attempts per client address, forgotten after the window (and bounded in number of clients)."""

    MAX_CLIENTS = 10_000

    def __init__(self, limit: AttemptLimit):
        self.limit = limit
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        seen = self._failures.get(client, deque())
        while seen and seen[0] <= now - self.limit.window_s:
            seen.popleft()
        return seen

    def retry_after(self, client: str) -> int:
        """Seconds until this client may try again; 0 when it may now."""
        now = time.monotonic()
        with self._lock:
            seen = self._recent(client, now)
            if len(seen) < self.limit.failures:
                return 0
            return max(1, math.ceil(seen[0] + self.limit.window_s - now))

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            if client not in self._failures and len(self._failures) >= self.MAX_CLIENTS:
                for stale in [c for c in self._failures if not self._recent(c, now)]:
                    del self._failures[stale]
                if len(self._failures) >= self.MAX_CLIENTS:  # a flood of addresses: the oldest goes
                    del self._failures[next(iter(self._failures))]
            self._failures.setdefault(client, deque()).append(now)


def _bearer(scope) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


class AuthGuard:
    """Every /api path but the public ones needs `Authorization: Bearer TOKEN`; a client that keeps sending
    wrong tokens is answered 429 with Retry-After, whatever it sends, until its window passes."""

    def __init__(self, app, tokens: TokenKeeper, limit: AttemptLimit = AttemptLimit()):
        self.app = app
        self.tokens = tokens
        self.limiter = FailureLimiter(limit)
        self._damaged: str | None = None  # the token file's problem last logged, to log it once

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/api" or path.startswith("/api/")) or is_public(path):
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("?", 0))[0]
        wait = self.limiter.retry_after(client)
        if wait:
            return await send_error(send, 429, f"too many failed attempts; try again in {wait} s",
                                    {"Retry-After": str(wait)})
        token = _bearer(scope)
        try:
            accepted = token is not None and self.tokens.check(token)
        except DeviceError as e:  # the token file cut short, unreadable or not a file, or the memory away: the
            if str(e) != self._damaged:  # device's fault, not the client's: each fault its own kind of line
                log.warning("%s", e, extra={KIND: (__name__, str(e))})  # (the device's words, none a client's)
                self._damaged = str(e)
            return await send_error(send, 503, e.problem)  # (what mends it, as `serve` says it at its start)
        if self._damaged is not None and token is not None:  # (one with no token read no file: it was not mended)
            log.warning("%s: the API token is read again", self.tokens.path)
            self._damaged = None
        if not accepted:
            if token is not None:  # a guess; a request with none guesses nothing (a web page the household's
                self.limiter.failed(client)  # browser visits can send those, to lock that browser out)
            why = "missing bearer token" if token is None else "wrong token"
            return await send_error(send, 401, f"{why} (edge-rap pair shows it)", {"WWW-Authenticate": "Bearer"})
        return await self.app(scope, receive, send)


class BodyLimit:
    """413 for a body over its limit: `limit` for a multipart form, the only body that carries photos; `fields` for
    any other (JSON, a urlencoded form), which holds a few fields of at most 2000 characters and takes many times
    its size in memory once parsed (a 62 MiB JSON array took 360 MB, sixteen sent at once 1.4 GB). From
    Content-Length before reading anything, else (chunked) as soon as the count passes it, the rest never read.
    And 400 for a multipart form that ends before its closing boundary (an upload cut off): the form's parser
    keeps the fields before the cut, so it was "photo: empty or not sent", or a concept made without the fields
    after it; found as the body is read, before any route acts on the form."""

    CLOSE = {"Connection": "close"}  # the rest of the body is never read: the connection cannot be reused
    CUT_OFF = "the form ends before its closing boundary (the upload cut off?); nothing was done: send it again"
    #: A DELETE's body is read by no route, so its forget ran at once: one that never came whole was then answered 408
    #: (400 at a half-close) by the connection while the forget, behind a long upload, went on to be done.
    DELETE_BODY = "a DELETE takes no body (RFC 9110 9.3.5): send it without one; nothing was done"

    def __init__(self, app, limit: int, fields: int):
        self.app = app
        self.limit = limit
        self.fields = fields

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        # every Content-Type the request gives: with two, the route reads the first, and a JSON body sent with a
        # second, multipart, one was held to the photos' limit
        types = [value for key, value in scope.get("headers", []) if key == b"content-type"]
        media = {value.split(b";")[0].strip().lower() for value in types}
        limit = self.limit if media == {b"multipart/form-data"} else self.fields
        refusal = f"request body over the limit of {_size(limit)}"
        if limit != self.limit:
            refusal += f" (only a multipart form, which carries photos, may take {_size(self.limit)})"
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                if not value.strip().isdigit():
                    return await send_error(send, 400, "bad Content-Length")
                if int(value) > limit:
                    return await send_error(send, 413, refusal, self.CLOSE)
        if scope.get("method") == "DELETE" and _has_body(scope):
            return await send_error(send, 400, self.DELETE_BODY, self.CLOSE)
        closing = _closing_delimiter(types[0]) if media == {b"multipart/form-data"} else None
        # a delimiter starts a line: the CRLF before the body's first, which may open it, is taken as read
        state: dict = {"read": 0, "refused": None, "started": False, "tail": b"\r\n", "cut": False,
                       "preamble": b"\r\n" if closing else None}

        async def counted():
            if state["cut"]:  # the parser read the whole body and found no fault of its own: said cut off
                state["refused"] = (400, self.CUT_OFF, None)
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                state["read"] += len(body)
                if state["read"] > limit:
                    state["refused"] = (413, refusal, self.CLOSE)
                    return {"type": "http.disconnect"}  # the route stops reading; its answer is replaced
                if state["preamble"] is not None:
                    message = {**message, "body": _past_preamble(state, body, closing[:-2], message)}
                if closing is not None and state["tail"] is not None:
                    seen = state["tail"] + message["body"]  # (the delimiter may span two chunks)
                    state["tail"] = None if closing in seen else seen[1 - len(closing):]
                    if state["tail"] is not None and not message.get("more_body") and state["read"]:
                        state["cut"] = True  # (its last piece read as if more came: the parser says its own faults)
                        return {**message, "more_body": True}
            return message

        async def guarded_send(message):
            if state["refused"] is not None:
                return
            state["started"] = True
            await send(message)

        try:
            await self.app(scope, counted, guarded_send)
        except Exception:
            if state["refused"] is None:
                raise
        if state["refused"] is not None and not state["started"]:
            await send_error(send, *state["refused"])


def _has_body(scope) -> bool:
    """Whether a request's head says a body follows (RFC 9112 6.3: a Transfer-Encoding, or a Content-Length above 0)."""
    return any(key == b"transfer-encoding" or (key == b"content-length" and int(value) > 0)
               for key, value in scope.get("headers", []))


def _past_preamble(state: dict, body: bytes, opening: bytes, message: dict) -> bytes:
    """The form's bytes from its first delimiter on: RFC 2046 lets a preamble come before it, to be ignored, which
    the form's parser refused ("Expected boundary character"). Nothing is passed on until the delimiter comes (a
    body without one is passed on as it ends, for the parser to say so); the preamble cannot hold the delimiter, at
    the start of a line, but may hold the boundary elsewhere in one ("see --BOUNDARY"), as the form's text may."""
    seen = state["preamble"] + body
    at = seen.find(opening)
    if at < 0 and message.get("more_body"):
        state["preamble"] = seen[1 - len(opening):]  # (the delimiter may span two chunks)
        return b""
    state["preamble"] = None
    if at < 0:  # what came, less the CRLF taken as read before it (with which the parser read no form as empty)
        return seen[max(len(seen) - state["read"], 0):]
    return seen[at + 2:]


def _closing_delimiter(content_type: bytes) -> bytes | None:
    """The line that ends a multipart body of this Content-Type (CRLF `--BOUNDARY--`: at the start of a line, as the
    form's parser finds it); None where it names no boundary (the form's parser says that)."""
    for parameter in content_type.split(b";")[1:]:
        key, _, value = parameter.strip().partition(b"=")
        if key.strip().lower() == b"boundary" and value.strip().strip(b'"'):
            return b"\r\n--" + value.strip().strip(b'"') + b"--"
    return None


def _size(limit: int) -> str:
    return f"{limit / 2**20:g} MiB" if limit >= 2**20 else f"{limit / 2**10:g} KiB"


class SecurityHeaders:
    """No sniffing, no framing, no referrer, no caching of API answers; the page may load only its own files."""

    HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
               (b"referrer-policy", b"no-referrer"),
               (b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; "
                                            b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'")]

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        await self.app(scope, receive, self.headed(scope, send))

    @classmethod
    def headed(cls, scope, send):
        """`send` adding the headers an answer lacks: for a layer outside this one that answers by itself
        (serve/targets.py: `OPTIONS *`, CONNECT, a target of no form)."""

        async def with_headers(message):
            if message["type"] == "http.response.start":
                names = {k for k, _ in message.get("headers", [])}
                extra = [h for h in cls.HEADERS if h[0] not in names]
                if scope.get("path", "").startswith("/api/") and b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return with_headers
