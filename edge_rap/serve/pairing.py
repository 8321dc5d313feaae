"""Pairing a phone or laptop: the URL to open (with the token in its fragment, which browsers never send to a
server or keep in its logs) and the same as a QR code for the terminal.

`serve` records where it listens in the memory folder, and the EDGE_RAP_SERVE_HOSTS names it answers under, so
that `pair`, run later in a shell without that variable (serve's is the service's), names the right address and
warns of no name the server answers."""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from edge_rap.serve.server import is_loopback

log = logging.getLogger(__name__)

SERVE_RECORD = "serve.json"
DEFAULT_PORT = 8765


@dataclass(frozen=True)
class Listening:
    host: str
    port: int
    tls: bool
    names: tuple[str, ...] | None = None  # EDGE_RAP_SERVE_HOSTS's, as `serve` read it (None: not recorded)


def record(memory: Path, where: Listening) -> None:
    """Note where the API listens, for `pair`; a record that cannot be written (a full disk) is said, not fatal:
    the server works, and `pair --host/--port` names the address."""
    path = memory / SERVE_RECORD
    fresh = path.with_suffix(".new")
    try:
        names = {} if where.names is None else {"serve_hosts": list(where.names)}
        fresh.write_text(json.dumps({"host": where.host, "port": where.port, "tls": where.tls, **names}))
        os.replace(fresh, path)
    except OSError as e:
        log.warning("cannot record where the API listens (%s): pair with `edge-rap pair --host %s --port %d`",
                    e.strerror, where.host, where.port)


def recorded(memory: Path) -> Listening:
    """Where `serve` last listened; loopback on the default port before it ever ran. A record of before its
    names were recorded has none (None: this shell's EDGE_RAP_SERVE_HOSTS is the guess)."""
    try:
        data = json.loads((memory / SERVE_RECORD).read_text())
        names = data.get("serve_hosts")
        return Listening(str(data["host"]), int(data["port"]), bool(data["tls"]),
                         tuple(map(str, names)) if isinstance(names, list) else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return Listening("127.0.0.1", DEFAULT_PORT, False)


def lan_address() -> str:
    """This machine's address on its network (the route out; nothing is sent); loopback when it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def page_url(where: Listening) -> str:
    """The address a phone opens: a wildcard bind is named by this machine's network address."""
    host = lan_address() if where.host in ("0.0.0.0", "::", "") else where.host
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if where.tls else 'http'}://{shown}:{where.port}/"


def pairing_link(url: str, token: str) -> str:
    return f"{url}#token={token}"


def terminal_qr(text: str, encoding: str | None = "utf-8", term: str | None = None) -> str:
    """A QR code drawn with block characters (two rows per line), quiet zone included; for a terminal whose
    encoding has no blocks (a Latin-1 console, `LANG=C` on an older system), in ANSI inverse-video spaces: the
    blocks were a UnicodeEncodeError's traceback there, and escaped they scan as nothing. A dumb terminal
    (TERM=dumb: an editor's shell, a log) draws no ANSI either (it printed the codes): a line says so."""
    import io

    import segno

    compact = _has_blocks(encoding)
    if term == "dumb" and not compact:
        return "(no QR code: this terminal draws neither block characters nor ANSI colours; open the url)\n"
    out = io.StringIO()
    segno.make(text, error="m").terminal(out=out, compact=compact)
    return out.getvalue()


def _has_blocks(encoding: str | None) -> bool:
    try:
        "\u2588\u2580\u2584".encode(encoding or "ascii")  # (the compact drawing's full, upper and lower blocks)
        return True
    except (LookupError, UnicodeEncodeError):
        return False


def answering(where: Listening, timeout: float = 0.5) -> bool:
    """Whether anything takes connections where `serve` listens (a wildcard bind: on this machine's loopback): a
    code shown while no server runs opened a page that never loads, on the phone, where nothing says why."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(where.host, where.host)
    try:
        with socket.create_connection((host, where.port), timeout=timeout):
            return True
    except OSError:
        return False


def reachable_note(where: Listening, listening: str) -> str | None:
    """Why a phone cannot open the link: the server (bound to `listening`) or the link's host is this machine's
    own loopback (`pair --host 127.0.0.1` beside a server on 0.0.0.0 was said to listen on this machine only)."""
    if is_loopback(listening):
        return "the server listens on this machine only; a phone needs `edge-rap serve --host 0.0.0.0`"
    if is_loopback(where.host):
        return f"{where.host} is this machine's own address, which a phone cannot open; pair without --host"
    return None
