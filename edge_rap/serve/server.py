"""Running the API on uvicorn in a thread: for `edge-rap serve`, or beside the daemon
(`edge-rap run --serve`). The socket is bound before the server starts, so a port in use is one line at once."""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from edge_rap.errors import EdgeRapError
from edge_rap.open_files import more_open_files
from edge_rap.output import quoted
from edge_rap.serve import request_lines
from edge_rap.serve.drain import InFlight
from edge_rap.serve.hosts import is_address
from edge_rap.serve.log_budget import LogBudget
from edge_rap.wording import counted

if TYPE_CHECKING:  # (uvicorn is imported only to serve: `pair` and `run` without --serve never load it)
    from edge_rap.serve.patience import Patience

log = logging.getLogger(__name__)

#: How long a stop waits for the requests under way (an answer from a VLM takes seconds).
STOP_S = 5.0
#: How long it then waits for a change of the memory under way (serve/drain.py): 5 + 10 + 1 s fit `run`'s 20 s.
CHANGE_S = 10.0
#: How long it then waits for the server's thread to close its connections.
JOIN_S = 1.0


@dataclass(frozen=True)
class Tls:
    cert: str
    key: str


#: A host name, or an IPv4 or IPv6 address (with a zone): what a URL and a bind can take.
_HOST = re.compile(r"[A-Za-z0-9._:%-]+")
#: A host meant as an IPv4 address: numbers and dots, or a last label that is a number, decimal or hex (no DNS name
#: ends in one; a browser reads such a host as an address, and the resolver takes 1.2.3, 010.0.0.1, octal, and
#: 0x7f.1, hex, as other addresses).
_MEANT_AS_IPV4 = re.compile(r"[0-9.]+|(?:.*\.)?(?:[0-9]+|0[xX][0-9A-Fa-f]*)\.?")


def checked_host(host: str, option: str = "--host") -> str:
    """The host (an IPv6 address without the brackets a URL writes it in: [::1] is ::1, as `run --serve [::1]:8765`
    takes it), or one line: "a b" or "http://x" made a URL the phone could not open and a bind that failed with the
    resolver's words."""
    if host.startswith("[") and host.endswith("]") and ":" in host:
        host = host[1:-1]
    if not _HOST.fullmatch(host):
        raise EdgeRapError(f"{option} {quoted(host)}: give a host name or address, such as 0.0.0.0 or 192.168.1.20")
    if ":" not in host and _MEANT_AS_IPV4.fullmatch(host) and not is_address(host):  # 999.1.1.1, 127.1, 0x7f.1
        raise EdgeRapError(f"{option} {quoted(host)}: not an IPv4 address (four numbers of 0 to 255 without leading "
                           "zeros, such as 192.168.1.20)")
    return host


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or one line saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise EdgeRapError(f"--host {host}: {e.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise EdgeRapError(f"cannot listen on {host}:{port} ({e.strerror})") from None
    sock.setblocking(False)
    return sock


def warn_if_open(host: str, tls: Tls | None) -> str | None:
    """The warning for a server others can reach without TLS (the token would cross the network in clear)."""
    if is_loopback(host) or tls is not None:
        return None
    return (f"serving on {host} without TLS: the token and photos cross the network unencrypted; "
            "use --tls-cert/--tls-key, or keep it on a network you trust")


def _tls_problem(tls: Tls | None, error: Exception) -> str:
    """The one line for a certificate or key that could not be loaded, naming the file that cannot be read: ssl's
    own error ("[Errno 2] No such file or directory") names neither."""
    for option, path in (("--tls-cert", tls.cert), ("--tls-key", tls.key)) if tls else ():
        try:
            open(path, "rb").close()
        except OSError as e:
            return f"{option} {path}: cannot read it ({e.strerror})"
    return f"--tls-cert/--tls-key: {error}"


@contextmanager
def _reading_tls(tls: Tls | None):
    """Turns ssl's and open's errors on the certificate and key into one line."""
    import ssl

    try:
        yield
    except ssl.SSLError as e:
        raise EdgeRapError(f"--tls-cert/--tls-key: not a PEM certificate and its key, or a pair that does not "
                           f"match ({e.reason or e})") from None
    except (OSError, ValueError) as e:
        raise EdgeRapError(_tls_problem(tls, e)) from None


def check_tls(tls: Tls | None) -> None:
    """Reads the certificate and key as the server will (a bad one is one line): called before the memory is opened
    and its token written, and before the port is bound (a busy port hid the bad certificate)."""
    if tls is None:
        return
    import ssl

    with _reading_tls(tls):
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(tls.cert, tls.key)


def make_server(app, tls: Tls | None, patience: Patience | None = None, beat: Callable[[], None] | None = None,
                said: LogBudget | None = None):
    """The server, its certificate and key read (a bad one is one line, before anything says it serves); its
    connections limited and timed by `patience` (the defaults when None); `beat` called at each turn of its event
    loop (uvicorn's tick, every 0.1 s: systemd's watchdog); its refusals' log lines rationed by `said`. No WebSocket:
    the API has no such route, and uvicorn's, where a library for it was installed, handed the app a scope its
    middleware could not read (a traceback and a 500 for any client sending `Upgrade: websocket`, token or none)."""
    import uvicorn

    from edge_rap.serve.patience import Patience, loop_factory, protocol

    patience = patience or Patience()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=5,
                            http=protocol(patience, said or LogBudget()), loop=loop_factory(patience),
                            server_header=False, ws="none", h11_max_incomplete_event_size=patience.head_bytes,
                            ssl_certfile=tls.cert if tls else None, ssl_keyfile=tls.key if tls else None)
    with _reading_tls(tls):
        config.load()  # the certificate and key are read here
    server = uvicorn.Server(config)
    if beat is not None:
        server.on_tick = _beating(server.on_tick, beat)
    return server


def _beating(on_tick, beat: Callable[[], None]):
    """uvicorn's tick, beating first (uvicorn's own `callback_notify` is timed by the wall clock: a clock set back
    would silence it for as long)."""

    async def tick(counter: int) -> bool:
        beat()
        return await on_tick(counter)

    return tick


@dataclass
class ServerHandle:
    """A server running in its own thread; `stop()` ends it once the requests under way are answered."""

    url: str
    port: int
    server: object
    thread: threading.Thread
    in_flight: InFlight
    stopping: threading.Event  # the household's: an answer the VLM is making ends at its next token once set
    said: LogBudget  # its requests' and refusals' log lines: what it left out is said once it stopped
    late: tuple[int, float] = field(default=(0, 0.0), init=False)  # (requests still running after the stop's wait, it)

    def stop(self, timeout: float = STOP_S, *, changes: float = CHANGE_S) -> bool:
        """Refuse new requests (503), cut the VLM's answers under way short, wait up to `timeout` for the requests
        under way, and up to `changes` more for a change of the memory among them, then stop serving; whether it
        stopped. Only then may the household close: one still running after the wait is answered 503 by `finish`,
        once it closed, which says what became of them."""
        self.stopping.set()
        self.late = (self.in_flight.close(timeout, changes), self.in_flight.waited_s)
        self.server.should_exit = True
        self.thread.join(JOIN_S)
        self.said.say_left_out()
        return not self.thread.is_alive()

    def finish(self) -> None:
        """Once the household closed after `stop`: answer 503 each request still running that has not answered. It
        would fail on the household closed, but only once it reached it (one waiting for the model behind a 16-photo
        upload took longer than any wait), and the process ended under it first: the client got no answer, curl
        "100 Continue" and an empty reply, while the log said it was answered 503. The log says it once known:
        said as the wait ended, "answered 503" was wrong of one that finished with its 201 the next second."""
        late, waited = self.late
        answered, answering = self.in_flight.cut()
        if late:
            outcomes = ((answered, "answered 503"), (late - answered - answering, "finished"),
                        (answering, "still answering"))
            said = [(n, what) for n, what in outcomes if n]
            told = said[0][1] if len(said) == 1 else ", ".join(f"{n} {what}" for n, what in said)
            log.warning("%s still running after %.1f s: %s", counted(late, "request"), waited, told)


def _serve(server, sock: socket.socket) -> None:
    """Run `server` on `sock`, the lines its requests cause in the layers under it rationed meanwhile."""
    request_lines.attach()
    try:
        server.run(sockets=[sock])
    finally:
        request_lines.detach()


def start_server_thread(app, host: str = "127.0.0.1", port: int = 8765, tls: Tls | None = None,
                        patience: Patience | None = None, beat: Callable[[], None] | None = None,
                        sock: socket.socket | None = None) -> ServerHandle:
    """Serve `app` from a thread (port 0: any free port), on `sock` where the caller bound it already; returns once
    it accepts connections. `beat`: as `make_server` takes it. The certificate is read before the port is bound: a
    bad one is said whichever port. Its refusals' log lines are rationed with its requests' (`app.state.said`)."""
    more_open_files()
    said = app.state.said
    server = make_server(app, tls, patience, beat, said)
    sock = sock or bind(host, port)
    thread = threading.Thread(target=_serve, args=(server, sock), name="edge-rap-serve", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.01)
    if not server.started:
        raise EdgeRapError(f"the server on {host}:{port} did not start (see the log)")
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return ServerHandle(f"{'https' if tls else 'http'}://{shown}:{bound}", bound, server, thread,
                        app.state.in_flight, app.state.stopping, said)

