"""`edge-rap serve` and `edge-rap pair`: their arguments and what they do (cli.py calls `register`)."""

from __future__ import annotations

import os
import sys
from contextlib import closing
from typing import TYPE_CHECKING

from edge_rap.errors import EdgeRapError
from edge_rap.output import json_line, quoted

if TYPE_CHECKING:
    from edge_rap.serve.pairing import Listening


def cmd_serve(args) -> int:
    from edge_rap.app import check_embedder
    from edge_rap.daemon.notify import Supervisor
    from edge_rap.household import Household
    from edge_rap.scratch import remove_leftovers
    from edge_rap.serve.app import create_app
    from edge_rap.serve.hosts import configured, host_names
    from edge_rap.serve.pairing import DEFAULT_PORT, Listening, record
    from edge_rap.serve.server import Tls, bind, check_tls, checked_host, start_server_thread, warn_if_open
    from edge_rap.stopping import when_hurried

    if bool(args.tls_cert) != bool(args.tls_key):
        raise EdgeRapError("--tls-cert and --tls-key go together")
    tls = Tls(args.tls_cert, args.tls_key) if args.tls_cert else None
    check_tls(tls)  # before the memory's token is written and the port bound
    args.host = checked_host(args.host)
    from edge_rap.cli import _existing_memory, _settings

    settings = _settings(args)  # the profile's detector, or --detector's

    _existing_memory(args, settings)  # a mistyped --memory must not become a new memory serving a token
    check_embedder(settings, prepare=True)  # (loaded at the first request that needs it)
    hosts = host_names(args.host)  # a bad EDGE_RAP_SERVE_HOSTS is said before anything opens
    port = args.port if args.port is not None else DEFAULT_PORT
    sock = bind(args.host, port)  # a port in use is said before the models load and the memory is given a token
    remove_leftovers()
    with closing(sock), Household(settings, prepare=True) as home:
        _ = home.detector  # the detector, missing, is said now as `run` says it: not at every request
        app = create_app(home, hosts=hosts)
        warning = warn_if_open(args.host, tls)
        if warning:
            print(f"edge-rap: warning: {warning}", file=sys.stderr)
        # In a thread, stopped by our own signal handlers: uvicorn's, in the main thread, raise the signal again
        # once it has stopped, which killed the process (SIGTERM) before the memory was closed.
        supervisor = Supervisor.from_environment()  # systemd (Type=notify): ready, alive while the server's loop turns
        stop = args.stop  # (set by SIGTERM, SIGINT and SIGHUP since the command began: cli._stop_on_signals)
        if stop.is_set():  # while it started: served on, said "serving ... (Ctrl-C stops)" as its last line, then ended
            return 0
        server = start_server_thread(app, args.host, port, tls, beat=supervisor.heartbeat("the companion API").beat,
                                     sock=sock)
        when_hurried(stop, server.in_flight.give_up)  # a second Ctrl-C: no more waiting for the requests under way
        record(home.root, Listening(args.host, port, tls is not None, tuple(configured())))
        print(f"serving {home.root} on {server.url}/ (`edge-rap pair` shows the token; Ctrl-C stops)", flush=True)
        supervisor.ready(lambda: f"serving {home.root} on {server.url}/")
        while not stop.wait(1.0) and server.thread.is_alive():
            pass
        supervisor.stopping()
        server.stop()
        home.close()  # before the requests still running are answered 503: none may write after it
        server.finish()
        if not stop.is_set():
            raise EdgeRapError("the server stopped by itself (its log above says why)")
    return 0


def cmd_pair(args) -> int:
    from dataclasses import replace

    from edge_rap.serve.pairing import answering, page_url, pairing_link, reachable_note, recorded, terminal_qr
    from edge_rap.serve.server import checked_host
    from edge_rap.serve.token import ensure_token, rotate_token

    from edge_rap.cli import _existing_memory, _settings

    settings = _settings(args)
    _existing_memory(args, settings)  # a mistyped --memory must not become a folder holding a token
    memory = settings.memory
    where = recorded(memory)
    listening = where.host  # (asked whether it answers there: --host is the name a phone uses)
    if args.host:  # checked before the token is touched: a refused --host with --rotate unpaired every phone
        host = checked_host(args.host)
        _warn_if_not_answered(host, where)
        where = replace(where, host=host)
    token = rotate_token(memory) if args.rotate else ensure_token(memory)
    if args.port is not None:
        where = replace(where, port=args.port)
    url = page_url(where)
    if not answering(replace(where, host=listening)):
        print(f"edge-rap: warning: no server answers on port {where.port} now: start `edge-rap serve` (or `run "
              "--serve`) before the phone opens the page", file=sys.stderr)
    if args.json:
        print(json_line({"url": url, "token": token}))
        return 0
    print(terminal_qr(pairing_link(url, token), getattr(sys.stdout, "encoding", None), os.environ.get("TERM")))
    print(f"url:   {url}\ntoken: {token}")
    print("scan the code with the phone's camera to open the page with the token; "
          + ("the old token no longer works" if args.rotate else "`edge-rap pair --rotate` replaces the token"))
    note = reachable_note(where, listening)
    if note:
        print(f"note: {note}")
    return 0


def _warn_if_not_answered(host: str, served: Listening) -> None:
    """A name `serve` does not answer under (its own, localhost, EDGE_RAP_SERVE_HOSTS's as serve.json recorded
    them: the service's, which this shell may lack) made a QR code whose page the phone was refused, 421: said
    before the code is scanned."""
    from edge_rap.serve.hosts import host_names

    try:
        answered = host_names(served.host, served.names).accepts(host)
    except EdgeRapError as e:  # this shell's EDGE_RAP_SERVE_HOSTS, maybe not serve's: a warning, as the rest is
        print(f"edge-rap: warning: {e}", file=sys.stderr)
        return
    if not answered:
        print(f"edge-rap: warning: the server answers no request for {quoted(host)} (421): add it to "
              "EDGE_RAP_SERVE_HOSTS where `serve` runs, and restart it; or pair with its address", file=sys.stderr)


def _port(text: str) -> int:
    import argparse

    if not text.isdecimal() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"a port is 1 to 65535, not {quoted(text)}")
    return int(text)


def add_tls_options(p) -> None:
    """--tls-cert and --tls-key, as `serve` and `run --serve` take them."""
    p.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate (with --tls-key)")
    p.add_argument("--tls-key", metavar="PEM", help="the certificate's private key (with --tls-cert)")


def register(add) -> None:
    """Add `serve` and `pair` to the command line through cli.py's `add(name, func, help)`."""
    from edge_rap.cli import add_detector_option

    p = add("serve", cmd_serve, "serve the HTTP API and the household page (loopback unless --host says otherwise)")
    p.set_defaults(stops_itself=True)  # on SIGTERM and SIGHUP too (cli._stop_on_signals), exit 0
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all); "
                   "it answers under an address, localhost, this machine's name and the names in "
                   "$EDGE_RAP_SERVE_HOSTS (comma-separated, e.g. robot.lan)")
    p.add_argument("--port", type=_port, help="port (default 8765)")
    add_tls_options(p)
    add_detector_option(p, "for the photos asked about: ")
    p = add("pair", cmd_pair, "show the URL, token and a QR code for pairing a phone or the companion")
    p.add_argument("--json", action="store_true", help='print {"url": ..., "token": ...} only')
    p.add_argument("--rotate", action="store_true", help="issue a new token; the old one stops working at once")
    p.add_argument("--host", help="the address to show (default: where serve last listened); a name instead must "
                   "be one the server answers to (see serve --help; another is warned of)")
    p.add_argument("--port", type=_port, help="the port to show (default: where serve last listened, else 8765); "
                   "where no server answers on it now, a warning says so")
