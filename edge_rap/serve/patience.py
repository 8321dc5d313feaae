"""The API's connections: those that keep the server waiting are closed, no one address may hold most of
them, and what uvicorn answers by itself (a connection over the limits, bytes that are not HTTP) is JSON too.

uvicorn waits for a request's head and body without end, and counts every open connection against its limit:
a phone whose Wi-Fi dropped mid-upload (no FIN ever comes) held its slot for ever, and a client on the LAN that
opened 64 sockets and sent nothing had every other request refused, the household's included, until it left. What
only the client waits on has a deadline that bytes do not put off: a request's head, and the rest of a body answered
already (401 without the token): one byte every few seconds (slowloris) re-armed the silence's deadline for ever, and a
few such clients, no token needed, held every connection. A body the server reads may come slowly, but not that slowly:
it must bring `Patience.progress` bytes in each `trickle_s`."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from dataclasses import dataclass
from typing import Callable

import h11
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol

from edge_rap.serve.guard import error_body
from edge_rap.serve.log_budget import LogBudget

log = logging.getLogger(__name__)

#: The bytes h11 quotes after its words for what is wrong ("illegal request line: bytearray(b'GARBAGE')").
_BYTES = re.compile(r":? ?bytearray\(.*\)$")
#: h11's words for a fault before what it quotes of the request (bytes, a length): each fault's own kind of log line
#: (bytes that are not HTTP in a loop left out a phone's "conflicting Content-Length headers" as "more like this").
_FAULT_WORDS = re.compile(r"[^:(]*")
#: What a request not all there when its client closed its side is told.
_HALF_CLOSED = "the client closed its side of the connection before its request was all there"
#: How long a refused connection may wait to send its request and be answered 503.
REFUSED_S = 2.0
#: The states h11 leaves a client in once its request is all there: DONE; MUST_CLOSE, that request its connection's
#: last (`Connection: close`, HTTP/1.0); MIGHT_SWITCH_PROTOCOL, one asking for an `Upgrade` (or a CONNECT), which its
#: answer refuses (no upgrade is served: RFC 9110 7.8 lets a server ignore the header and go on in HTTP/1.1).
_ALL_THERE = (h11.DONE, h11.MUST_CLOSE, h11.MIGHT_SWITCH_PROTOCOL)


@dataclass(frozen=True)
class Patience:
    """How long a client may leave its request unfinished without sending a byte; how long it may take over what
    nothing but itself waits on: a request's head (its line and headers, a few hundred bytes a browser sends at
    once) and the rest of a body the server has answered already; the bytes a body the server reads must bring in each
    `trickle_s` from its head's end (`progress`); how many bytes a head may hold (`head_bytes`, h11's own default); and
    how many connections the server keeps open: in all, and from one address (a browser opens 6, the companion 1).

    16 KiB in 30 s is 0.5 KiB/s on average, where a phone on a poor link uploads at 20 KiB/s: such a link that stalls
    for 20 s still brings 200 KiB in the 30 s, one that stalls for 29 s (a 30 s silence closes it) 20 KiB, and an old
    2G link at 5 KiB/s stalling 20 s 50 KiB. A client trickling a byte every few seconds brings tens of bytes, and one
    that keeps to the floor must spend the bandwidth of a slow link on each connection it holds."""

    idle_s: float = 30.0
    trickle_s: float = 30.0
    progress: int = 16 * 1024
    connections: int = 64
    per_client: int = 16
    head_bytes: int = 16 * 1024


def closing_answer(status: int, message: str) -> bytes:
    """A whole HTTP answer with the API's JSON error, the connection closed after it (503 says when to retry)."""
    body = error_body(message)
    reason = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large",
              503: "Service Unavailable"}[status]
    retry = "retry-after: 5\r\n" if status == 503 else ""
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"{retry}cache-control: no-store\r\nconnection: close\r\n\r\n")
    return head.encode() + body


def h11_header(message: h11.Response, name: bytes) -> bool:
    """Whether `message` holds a header `name` (lower case)."""
    return any(key == name for key, _ in message.headers)


class _OwnWords(logging.LoggerAdapter):
    """uvicorn's logger without its "Invalid HTTP request received.", said of any request h11 refuses, answered
    in JSON with what is wrong: the server's own line says that, and to whom, once; its errors rationed; its
    "Unsupported upgrade request."
    (an `Upgrade` header, answered as if not sent: any client may send one) said with the client, rationed, and
    without its advice to install a WebSocket library (the API serves none: server.make_server)."""

    def __init__(self, logger: logging.Logger, said: LogBudget, client: Callable[[], str | None]):
        super().__init__(logger)
        self.said, self.client = said, client

    @property
    def level(self) -> int:  # (uvicorn reads it for its trace lines)
        return self.logger.level

    def warning(self, msg, *args, **kwargs) -> None:
        if msg == "Unsupported upgrade request.":
            self.said.log(log, logging.WARNING, "upgrade", "answered a request from %s as if it had no Upgrade "
                          "header (no upgrade is served)", self.client())
        elif msg != "Invalid HTTP request received." and not msg.startswith("No supported WebSocket library"):
            super().warning(msg, *args, **kwargs)

    def error(self, msg, *args, exc_info=None, **kwargs) -> None:
        """Its errors ("Exception in ASGI application", after every 500 the API answers, with the traceback again)
        rationed, each its own kind (uvicorn's words, not a client's)."""
        msg = msg.rstrip("\n")  # ("Exception in ASGI application\n": the count said after it stood on a line alone)
        self.said.log(self.logger, logging.ERROR, f"uvicorn: {msg}", msg, *args, exc_info=exc_info)


def _head_size(request: h11.Request) -> int:
    """The bytes of a request's head as sent (the spaces around its values aside). h11 limits a head only while it is
    incomplete: one over `Patience.head_bytes` that came whole in one read (a long URL or cookie at once, as on a fast
    link) was taken, the same head in pieces 431."""
    line = len(request.method) + len(request.target) + len(b"  HTTP/1.1\r\n")
    return line + sum(len(name) + len(value) + len(b": \r\n") for name, value in request.headers.raw_items()) + 2


class _NotedFlow(FlowControl):
    """uvicorn's flow control, noting when the server stops reading (its buffer full, the app not reading yet): a
    client held back so is not slow."""

    held = False

    def pause_reading(self) -> None:
        self.held = True
        super().pause_reading()


class PatientProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on the client's silence while its request is unfinished
    (re-armed by every byte; a pause that is the server's own, its reading paused, does not count), one on its
    request's head from its first byte and on the rest of a body answered already (neither re-armed), a floor on
    the progress of a body the server reads (`Patience.progress` in each `trickle_s`, a window in which the server
    stopped reading not judged), and the connection limits of `Patience`, a
    connection over them answered 503 at its request (and not counted); its own errors in the API's JSON."""

    def __init__(self, *args, patience: Patience, said: LogBudget, **kwargs):
        super().__init__(*args, **kwargs)
        self.patience = patience
        self.said = said  # the server's lines for its refusals, rationed (shared by its connections)
        self._deadline = None
        self._trickle_deadline = None
        self._received = 0  # bytes from the client, all told
        self._window_from: int | None = None  # `_received` as the body's present window began; None: no body timed
        self._refusal: str | None = None
        self._half_closed = False  # the client closed its side, its request whole: answered, then closed
        self._fault: h11.RemoteProtocolError | None = None  # what h11 found wrong with the bytes, for the 400's words
        reading = self.conn.next_event

        def next_event():
            try:
                event = reading()
                if isinstance(event, h11.Request) and _head_size(event) > patience.head_bytes:
                    raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
                return event
            except h11.RemoteProtocolError as e:  # (uvicorn answers "Invalid HTTP request received." to any)
                self._fault = e
                raise

        self.conn.next_event = next_event
        # (uvicorn's line for a request h11 refuses: send_400_response says ours)
        self.logger = _OwnWords(self.logger, said, lambda: self.client and self.client[0])
        framed = self.conn._clean_up_response_headers_for_sending

        def head_unframed(response: h11.Response) -> h11.Response:
            """A HEAD's answer without a length (GET /api/backup's is known once the backup is made, which a HEAD
            does not make: RFC 9110 9.3.2 lets it be left out) claims no chunks either: h11 framed it as a GET
            without a length, "Transfer-Encoding: chunked", where the GET sends a Content-Length."""
            sent = framed(response)
            if self.conn._request_method != b"HEAD" or h11_header(response, b"content-length"):
                return sent
            return h11.Response(status_code=sent.status_code, reason=sent.reason, http_version=sent.http_version,
                                headers=[(k, v) for k, v in sent.headers if k != b"transfer-encoding"])

        self.conn._clean_up_response_headers_for_sending = head_unframed

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.flow = _NotedFlow(transport)
        address = self.client[0] if self.client else None
        kept = [c for c in self.connections if c is not self and getattr(c, "_refusal", None) is None]
        if len(kept) >= self.patience.connections:
            self._refusal = "the device is busy with other connections; try again in a moment"
        elif address is not None and sum(
                1 for c in kept if c.client and c.client[0] == address) >= self.patience.per_client:
            self._refusal = f"too many connections from {address}; close some and try again"
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            self.said.log(log, logging.WARNING, "refused", "refused a connection from %s: %s",
                         self.client and self.client[0], self._refusal)
            self.transport.write(closing_answer(503, self._refusal))
            self.transport.close()
            return
        self._arm()
        self._received += len(data)
        before = self.conn.their_state
        if before is h11.IDLE:  # a request's first bytes
            self._start_trickle_deadline()
        super().data_received(data)
        if self.conn.their_state is not before:  # its head, or a body, is all there
            self._end_trickle_deadline()
        self._time_the_body()

    def send_400_response(self, msg: str) -> None:
        """What is not HTTP at all is answered in JSON too, as every other error (uvicorn's was plain text), with what
        h11 found wrong; a head over `head_bytes` is 431, said so: it was "Invalid HTTP request received", as any."""
        fault = self._fault
        if fault is not None and fault.error_status_hint == 431:
            status, words = 431, (f"the request's head (its line and headers) is over "
                                  f"{self.patience.head_bytes // 1024} KiB: a URL or a header that long?")
            kind = "answered 431"
        else:
            why = _BYTES.sub("", " ".join(str(fault or "").split()))[:200] or msg.rstrip(".")
            status, words = 400, f"not an HTTP request this server can read ({why})"
            kind = f"answered 400: {_FAULT_WORDS.match(why).group()}"
        self.said.log(log, logging.WARNING, kind, "answered %d to %s: %s", status, self.client and self.client[0],
                      words)
        self.transport.write(closing_answer(status, words))
        self.transport.close()

    def on_response_complete(self) -> None:
        """Between requests uvicorn's keep-alive times the connection: the deadline the answered request armed,
        still running, closed it under a client about to send its next one (a pipelined one keeps its own). The head
        of a next request begun, sent with this one, is timed as a head: the keep-alive closed it after 5 s without a
        word (sent after the answer, it had 30 s, then 408)."""
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE:
            self._disarm()
            if self.conn.trailing_data[0] and not self.transport.is_closing():
                self._unset_keepalive_if_required()
                self._arm()
                self._start_trickle_deadline()
        elif self.conn.their_state is h11.SEND_BODY and self.conn.our_state is h11.DONE:  # answered before its body
            # came (401, 405): the rest of it is read and dropped, for a while, not for as long as it trickles in (not
            # the body of a next request, sent before this answer and read after it: that one is still to answer)
            self._end_trickle_deadline()
            self._start_trickle_deadline()
        self._time_the_body()
        if self._half_closed and self.conn.their_state not in _ALL_THERE:  # (a pipelined one is still to answer)
            self._give_up(_HALF_CLOSED, 400)

    def eof_received(self) -> bool:
        """The client closed its side of the connection (a half-close: `nc -N`, a proxy): a request sent whole is still
        answered, and the connection closed after it; one not all there is answered 400. uvicorn closed it at once:
        the answer was lost, an upload stored and its client told nothing. (asyncio keeps no TLS connection half
        open.) A request that is its connection's last (`Connection: close`, HTTP/1.0) is MUST_CLOSE once whole, not
        DONE: it was met as one not all there, and closed without a word; so was one with an `Upgrade` header
        (MIGHT_SWITCH_PROTOCOL), and a request pipelined after it was answered 400 in its place (`_ALL_THERE`)."""
        plain = self.transport.get_extra_info("sslcontext") is None
        whole = self.conn.their_state in _ALL_THERE
        if plain and whole and self.conn.our_state in (h11.SEND_RESPONSE, h11.SEND_BODY):
            self._half_closed = True
            return True  # (the transport stays open for the answer)
        self._give_up(_HALF_CLOSED, 400)
        return False

    def connection_lost(self, exc) -> None:
        self._disarm()
        self._end_trickle_deadline()
        super().connection_lost(exc)

    def _time_the_body(self) -> None:
        """A body the server reads (its request not answered yet) has its progress timed from its head's end, or from
        its first bytes read after the answer before it (a pipelined request's head is read then)."""
        if (self._trickle_deadline is None and self.conn.their_state is h11.SEND_BODY
                and self.conn.our_state is not h11.DONE):
            self._start_trickle_deadline(window_from=self._received)

    def _start_trickle_deadline(self, window_from: int | None = None) -> None:
        """A head's deadline, or a body answered already's (`window_from` None), else a window of a body's progress."""
        if self._trickle_deadline is None:
            self._window_from = window_from
            self.flow.held = self.flow.read_paused
            self._trickle_deadline = self.loop.call_later(self.patience.trickle_s, self._trickled)

    def _end_trickle_deadline(self) -> None:
        if self._trickle_deadline is not None:
            self._trickle_deadline.cancel()
            self._trickle_deadline = None

    def _trickled(self) -> None:
        """A head, or the rest of a body answered already, not all there `trickle_s` after it began: closed, however
        busily it trickles in. A body the server reads: closed where it brought less than `progress` bytes in the
        window just ended (unless the server held it back), else timed over the next."""
        self._trickle_deadline = None
        if self._window_from is not None:
            if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
                return
            brought = self._received - self._window_from
            if brought >= self.patience.progress or self.flow.held:
                self._start_trickle_deadline(window_from=self._received)
                return
            self.said.log(log, logging.INFO, "closed", "closed a connection from %s: the body of its request brought "
                         "%d bytes in %g s", self.client and self.client[0], brought, self.patience.trickle_s)
            self._give_up(f"the request's body brought {brought} bytes in {self.patience.trickle_s:g} s, under the "
                          f"{self.patience.progress} a body must bring in that time")
            return
        if not self.transport.is_closing() and self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            what = "its request's head" if self.conn.their_state is h11.IDLE else "the body of a request answered"
            self.said.log(log, logging.INFO, "closed", "closed a connection from %s: %s was not all there after %g s",
                         self.client and self.client[0], what, self.patience.trickle_s)
            self._give_up(f"{what} was not all there {self.patience.trickle_s:g} s after it began")

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _arm(self) -> None:
        """(Re)start the deadline; a refused connection's is short: it holds a socket and is owed one answer."""
        self._disarm()
        wait = self.patience.idle_s if self._refusal is None else min(self.patience.idle_s, REFUSED_S)
        self._deadline = self.loop.call_later(wait, self._waited)

    def _waited(self) -> None:
        """The client was silent for `idle_s`: closed if its request is unfinished (a head or a body owed)."""
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # the server is the one behind: the client is not to blame
            self._arm()
            return
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            self.said.log(log, logging.INFO, "closed", "closed a connection from %s: its request was unfinished and "
                         "it sent nothing for %g s", self.client and self.client[0], self.patience.idle_s)
            self._give_up(f"nothing came for {self.patience.idle_s:g} s of a request not all there (a body short of "
                          "its Content-Length, or a head without its blank line)")

    def _give_up(self, why: str, status: int = 408) -> None:
        """Close the connection; a request begun and not answered is told why first (`status`, in JSON): an upload that
        stopped short of its Content-Length was cut off without a word, its client left to guess (an idle connection,
        or one whose request was answered, is closed without one)."""
        begun = self.conn.their_state is h11.SEND_BODY or bool(self.conn.trailing_data[0])
        if begun and self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            if self.cycle is not None:  # what the route sends after this is dropped, as once the connection is lost
                self.cycle.disconnected = True
            self.transport.write(closing_answer(status, why))
        self.transport.close()


class PatientLoop(asyncio.SelectorEventLoop):
    """asyncio's loop, whose TLS servers give a client `handshake_s` to finish its handshake: asyncio's default, 60 s,
    is waited before any protocol sees the connection, so a client that connected and sent nothing held a file for a
    minute, however many it opened (uvicorn passes no timeout of its own)."""

    def __init__(self, handshake_s: float):
        super().__init__()
        self.handshake_s = handshake_s

    async def create_server(self, *args, **kwargs):
        if kwargs.get("ssl") is not None and kwargs.get("ssl_handshake_timeout") is None:
            kwargs["ssl_handshake_timeout"] = self.handshake_s
        return await super().create_server(*args, **kwargs)


def loop_factory(patience: Patience):
    """The event loop for uvicorn's `Config(loop=...)`: a handshake has the deadline of a request's head."""
    return functools.partial(PatientLoop, patience.trickle_s)


def protocol(patience: Patience, said: LogBudget):
    """The protocol factory for uvicorn's `Config(http=...)`: one server's connections, `said` their lines' budget."""
    return functools.partial(PatientProtocol, patience=patience, said=said)
