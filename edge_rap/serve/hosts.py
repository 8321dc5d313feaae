"""The names the API answers under, against DNS rebinding: a web page the household opens can point a name of its
own at the device's address, and its script then talks to the device as its own origin (the page, /api/health,
the schema, and wrong tokens enough to lock the household's browser out, which shares its address). The
browser still sends the page's name as Host, so only requests whose Host is an address, localhost, this
machine's name (and NAME.local), the name the server was bound to, or a name in EDGE_RAP_SERVE_HOSTS are
answered; the others are 421 with a line saying how to allow the name."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass

from edge_rap.errors import EdgeRapError
from edge_rap.output import quoted
from edge_rap.serve.guard import send_error

VARIABLE = "EDGE_RAP_SERVE_HOSTS"
#: A DNS name: labels of letters, digits and inner hyphens, dot-separated.
_NAME = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
#: What may follow a Host's name or address: nothing, or ':' and a port, digits or none (RFC 3986 3.2.3).
_PORT = re.compile(r"(?::[0-9]*)?")


@dataclass(frozen=True)
class HostNames:
    """The names (lower case, no port) the API answers under besides any IP address."""

    names: frozenset[str]

    def accepts(self, host: str) -> bool:
        name = bare_name(host)
        return name in self.names or is_address(name)

    def refusal(self, scope) -> tuple[int, str] | None:
        """The status and words for a request whose Host is a name the API does not answer under (421); None for one
        it does answer, or one without Host (HTTP/1.0, no browser). A Host that is no name or address at all (empty,
        `a b`, `me@robot.lan`, a name over DNS's 253 characters), or whose port is not digits, is 400 (RFC 9112 3.2):
        its 421 said to allow it in EDGE_RAP_SERVE_HOSTS, which refuses it."""
        host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), None)
        if host is None:
            return None
        ported = _PORT.fullmatch(_split(host)[1]) is not None  # (`127.0.0.1:abc` was answered)
        if ported and self.accepts(host):
            return None
        name = bare_name(host)  # judged whole: cut at 100 characters, a name cut at a dot was no name
        if not (ported and len(name) <= 253 and _NAME.fullmatch(name)):
            return 400, f"Host '{_as_sent(host[:100])}': not a host name or address"
        return 421, (f"this device does not answer to the name {name!r} (a web page may be using it to reach the "
                     f"device); to open it under that name, set {VARIABLE}={name} where `edge-rap serve` or "
                     "`run --serve` runs")


def host_names(bound: str = "127.0.0.1", allowed: tuple[str, ...] | None = None) -> HostNames:
    """localhost, this machine's names, `bound` (the --host it listens on) and `allowed`, else
    EDGE_RAP_SERVE_HOSTS's, which a bad entry makes one line, before anything serves."""
    names = {"localhost", *(configured() if allowed is None else map(_plain, allowed))}  # serve.json's, hand-edited
    machine = _plain(socket.gethostname())
    if machine:
        short = machine.split(".")[0]
        names |= {machine, short, f"{short}.local"}
    if _NAME.fullmatch(_plain(bound)):
        names.add(_plain(bound))
    return HostNames(frozenset(names))


def configured() -> list[str]:
    """EDGE_RAP_SERVE_HOSTS: comma-separated host names, checked."""
    names = [_plain(n) for n in os.environ.get(VARIABLE, "").split(",") if n.strip()]
    for name in names:
        if not _NAME.fullmatch(name) or is_address(name):
            raise EdgeRapError(f"{VARIABLE}: {quoted(name)} is not a host name (give names such as robot.lan, "
                               "comma-separated, without a port: an address is always answered)")
    return names


def _as_sent(host: str) -> str:
    """A Host as its client wrote it, for an answer's words: its bytes are read as Latin-1 (any byte a character, as
    names are compared), so `café.lan`, sent as UTF-8, was said 'cafÃ©.lan'. A byte that is not UTF-8, or a character
    that does not print, is escaped (`\\xe9`)."""
    text = host.encode("latin-1").decode("utf-8", "surrogateescape")
    return "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else c if c.isprintable()
                   else repr(c)[1:-1] for c in text)


def bare_name(host: str) -> str:
    """A Host header's name or address, without its port and brackets, in lower case."""
    return _plain(_split(host)[0])


def _split(host: str) -> tuple[str, str]:
    """A Host header's name or address (an IPv6 one without its brackets) and what follows it: its port."""
    host = host.strip()
    if host.startswith("["):  # [v6] or [v6]:port
        inside, _, after = host[1:].partition("]")
        return inside.replace("%25", "%"), after
    if host.count(":") == 1:
        name, colon, port = host.partition(":")
        return name, colon + port
    return host, ""


def _plain(name: str) -> str:
    """A host name as names are compared: DNS's are in any case, and "robot.lan." (rooted) is "robot.lan"."""
    return name.strip().lower().rstrip(".")


def is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostGuard:
    """421 for a request whose Host is a name the API does not answer under, 400 for no name (`HostNames.refusal`)."""

    def __init__(self, app, names: HostNames):
        self.app = app
        self.names = names

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or (refusal := self.names.refusal(scope)) is None:
            return await self.app(scope, receive, send)
        return await send_error(send, *refusal)
