"""Connections that stall or crowd the API: a client silent in the middle of its request is closed, and one
address holding many connections keeps no one else out (a phone whose Wi-Fi dropped mid-upload; a client on
the LAN that opens sockets and sends nothing)."""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from contextlib import ExitStack

import httpx
import pytest
from scenes import scene
from serve_support import fake_settings, live_server, photo_files, png, self_signed

from edge_rap.serve.patience import Patience


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _silent(url: str, sent: bytes = b"", source: str = "127.0.0.1") -> socket.socket:
    """A connection that sends `sent` (perhaps nothing) and then waits."""
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(10)
    s.connect(_address(url))
    if sent:
        s.sendall(sent)
    return s


def _last_words(s: socket.socket) -> bytes | None:
    """What the server sent before it closed `s` (b"" for nothing); None where it did not close it."""
    said = b""
    try:
        while chunk := s.recv(4096):
            said += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return None
    return said


def _closed_by_server(s: socket.socket) -> bool:
    return _last_words(s) is not None


def _client(url: str, token: str, source: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10,
                        transport=httpx.HTTPTransport(local_address=source))


def test_one_address_holding_every_connection_keeps_no_one_else_out(tmp_path):
    """64 silent sockets from one address were the server's whole limit: every other request was answered a
    plain-text 503 until they left. Now that address alone is refused, in the API's JSON."""
    with live_server(fake_settings(tmp_path)) as live, ExitStack() as sockets:
        for _ in range(64):
            sockets.enter_context(_silent(live.url))
        with _client(live.url, live.token, "127.0.0.2") as other:
            assert other.get("/api/concepts").status_code == 200
        with _client(live.url, live.token, "127.0.0.1") as crowding:
            r = crowding.get("/api/concepts")
        assert r.status_code == 503 and r.headers["retry-after"]
        assert "too many connections from 127.0.0.1" in r.json()["error"]


def test_a_client_silent_in_the_middle_of_its_request_is_closed(tmp_path):
    """A head never finished, a body that stops short of its Content-Length, a connection that never sends:
    each is closed after `idle_s` of silence, its slot freed for the others; a request begun is told why (408, in
    JSON: an upload short of its Content-Length was cut off without a word), one never begun is not."""
    patience = Patience(idle_s=1.0, connections=3)
    with live_server(fake_settings(tmp_path), patience=patience) as live:
        head = (f"POST /api/concepts HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {live.token}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 5000\r\n\r\n--b\r\n").encode()
        stalled = [_silent(live.url), _silent(live.url, b"GET /api/concepts HTTP/1.1\r\nHost: 127.0.0.1\r\n"),
                   _silent(live.url, head)]
        try:
            with live.client() as c:
                assert c.get("/api/health").status_code == 503  # all three slots held
            said = [_last_words(s) for s in stalled]
            assert said[0] == b"", said
            for words in said[1:]:
                head, _, body = words.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and b"connection: close" in head, words
                assert json.loads(body) == {"error": "nothing came for 1 s of a request not all there (a body short "
                                                     "of its Content-Length, or a head without its blank line)"}
            with live.client() as c:
                assert c.get("/api/concepts").json() == []
        finally:
            for s in stalled:
                s.close()



def _closed_while_trickling(s: socket.socket) -> bool:
    """Whether the server closes `s` while a byte comes every 0.2 s for 20 s (each well within the silence's
    deadline): once the bytes stop, the silence's deadline would close it anyway."""
    for _ in range(100):
        time.sleep(0.2)
        try:
            s.sendall(b"a")
        except OSError:  # (reset: the server closed it)
            return True
    return False


@pytest.mark.parametrize("sent", [
    b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ",  # a head that never ends
    b"POST /api/concepts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
    b"Content-Length: 100000\r\n\r\n--b"])  # a body the server has answered (401: no token) before it came
def test_what_only_the_client_waits_on_is_closed_however_busily_it_trickles_in(tmp_path, sent):
    """Slowloris: a byte every so often re-armed the silence's deadline for ever, and a few addresses so trickling,
    no token needed, held every connection. A head, and the rest of a body answered already, have a deadline of their
    own, from their first byte."""
    with live_server(fake_settings(tmp_path), patience=Patience(idle_s=1.0, trickle_s=1.5)) as live:
        with _silent(live.url, sent) as s:
            assert _closed_while_trickling(s)
        with live.client() as c:
            assert c.get("/api/health").status_code == 200


def test_a_tls_handshake_not_made_in_time_is_closed(tmp_path):
    """asyncio waits 60 s for a TLS handshake, before the connection limits see the connection: one that connected and
    sent nothing (or a ClientHello's first bytes) held a file for a minute, however many such it opened. Now a
    handshake has the deadline of a request's head."""
    with live_server(fake_settings(tmp_path), patience=Patience(trickle_s=1.0), tls=self_signed(tmp_path)) as live:
        url = live.url.replace("https://", "http://")
        with _silent(url) as silent, _silent(url, b"\x16\x03\x01") as begun:
            assert _closed_by_server(silent) and _closed_by_server(begun)  # (within the sockets' 10 s, not 60 s)
        assert httpx.get(f"{live.url}/api/health", verify=False, timeout=60).json() == {"ok": True}


def test_the_body_of_a_request_sent_before_the_last_answer_may_take_its_time(tmp_path):
    """A request sent before the answer to the one before it (pipelined) is read once that answer is complete: its
    body, still coming then, was taken for the rest of a body answered already, and closed `trickle_s` after."""
    with live_server(fake_settings(tmp_path), patience=Patience(idle_s=1.0, trickle_s=1.0, progress=1)) as live:
        _with_bo(live)
        auth = f"Host: 127.0.0.1\r\nAuthorization: Bearer {live.token}\r\n".encode()
        first = b"GET /api/concepts HTTP/1.1\r\n" + auth + b"\r\n"
        body = b'{"description": "slow"}'
        second = (b"PATCH /api/concepts/bo HTTP/1.1\r\n" + auth + b"Content-Type: application/json\r\n"
                  + f"Content-Length: {len(body)}\r\n\r\n".encode())
        with _silent(live.url, first + second + body[:1]) as s:
            assert _answer(s).startswith(b"HTTP/1.1 200")
            for k in range(1, len(body)):  # 4.4 s in all, a byte every 0.2 s
                time.sleep(0.2)
                s.sendall(body[k:k + 1])
            assert _answer(s).startswith(b"HTTP/1.1 200")


def _with_bo(live) -> None:
    """The concept the slow PATCHes go to: to one not there, the answer (404) comes before the body is read."""
    with live.client() as c:
        assert c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(scene(1)))).status_code == 201


def _upload(url: str, token: str, pieces: int, size: int, every_s: float) -> tuple[socket.socket, bool]:
    """A request with the token whose body (JSON padded with spaces) comes as `pieces` pieces of `size` bytes, one
    `every_s` seconds; the socket and whether the server closed it before the whole body was sent."""
    body = b'{"description": "slow"'
    head = (f"PATCH /api/concepts/bo HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body) + pieces * size + 1}\r\n\r\n")
    s = _silent(url, head.encode() + body)
    for piece in [b" " * size] * pieces + [b"}"]:
        time.sleep(every_s)
        try:
            s.sendall(piece)
        except OSError:  # (reset: the server closed it)
            return s, True
    return s, False


def test_an_upload_with_the_token_that_trickles_in_is_closed_and_a_slow_one_is_not(tmp_path):
    """A body the server reads, with the token, had only the silence's deadline: a byte every few seconds held the
    connection for ever. It must bring `progress` bytes in each `trickle_s` (here 4 KiB in 2 s, for 16 KiB in 30 s);
    a slow link's upload, and one that stalls for most of a window, still does."""
    patience = Patience(idle_s=3.0, trickle_s=2.0, progress=4096)
    with live_server(fake_settings(tmp_path), patience=patience) as live:
        _with_bo(live)
        trickle, cut = _upload(live.url, live.token, pieces=50, size=1, every_s=0.2)
        trickle.close()
        assert cut  # while it still trickled: a byte every 0.2 s put the silence's deadline off
        slow, cut = _upload(live.url, live.token, pieces=12, size=2048, every_s=0.25)  # 8 KiB/s for 3 s
        with slow:
            assert not cut and _answer(slow).startswith(b"HTTP/1.1 200")  # (read whole)
        stalling, cut = _upload(live.url, live.token, pieces=4, size=8192, every_s=1.2)  # silent 1.2 s at a time
        with stalling:
            assert not cut and _answer(stalling).startswith(b"HTTP/1.1 200")


def test_a_body_the_server_itself_stopped_reading_is_not_taken_for_a_slow_one():
    """uvicorn stops reading a body while 64 KiB of it wait for the app (a request in line for the model): the client
    can bring nothing then, and a window in which it could not is not held against it."""
    import asyncio
    import threading

    from test_daemon_parts import wait_until

    from edge_rap.serve.server import bind, make_server

    async def late_reader(scope, receive, send):  # reads its body 3 windows after the request came
        await asyncio.sleep(3.0)
        size, more = 0, True
        while more:
            message = await receive()
            size, more = size + len(message.get("body", b"")), message.get("more_body", False)
        answer = str(size).encode()
        length = (b"content-length", b"%d" % len(answer))
        await send({"type": "http.response.start", "status": 200, "headers": [length]})
        await send({"type": "http.response.body", "body": answer})

    server = make_server(late_reader, None, Patience(idle_s=10.0, trickle_s=1.0, progress=1 << 20))
    listening = bind("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, "the server's start")
        body = b"a" * (2 << 20)  # (more than a window's progress, brought as soon as it is read)
        head = f"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        with socket.create_connection(listening.getsockname(), timeout=60) as s:
            s.sendall(head + body)
            assert _answer(s).startswith(b"HTTP/1.1 200")
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_slow_upload_and_a_slow_answer_are_not_cut_short(tmp_path, monkeypatch):
    """Only silence while the client owes bytes counts: a body that keeps coming, however slowly, and an answer
    the server takes its time over are both answered."""
    with live_server(fake_settings(tmp_path), patience=Patience(idle_s=0.6)) as live:
        listed = live.home.concepts
        monkeypatch.setattr(live.home, "concepts", lambda: time.sleep(0.9) or listed())
        with live.client() as c:
            assert c.get("/api/concepts").json() == []

        def trickle():
            yield b"{"
            for _ in range(4):
                time.sleep(0.2)
                yield b" "
            yield b'"description": "slow"}'

        with live.client() as c:
            r = c.patch("/api/concepts/bo", content=trickle(), headers={"Content-Type": "application/json"})
        assert r.status_code == 404 and "no concept named 'bo'" in r.json()["error"]


def _answer(s: socket.socket) -> bytes:
    """One whole answer read from `s` (its head and a body of its Content-Length); b"" when the server closed."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        if not (chunk := s.recv(4096)):
            return b""
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += s.recv(4096)
    return head


def test_a_kept_alive_connection_is_not_closed_by_the_deadline_of_the_request_it_has_answered(tmp_path, monkeypatch):
    """The deadline armed by a request's last byte outlived its answer: an answer given just before it left the
    connection idle between requests when it fell due, and it closed the connection uvicorn keeps alive for 5 s,
    under a client about to send its next request."""
    with live_server(fake_settings(tmp_path), patience=Patience(idle_s=1.0)) as live:
        listed = live.home.concepts
        monkeypatch.setattr(live.home, "concepts", lambda: time.sleep(0.5) or listed())
        request = (f"GET /api/concepts HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {live.token}\r\n"
                   "\r\n").encode()
        with _silent(live.url, request) as s:
            assert _answer(s).startswith(b"HTTP/1.1 200")
            time.sleep(0.8)  # past the first request's deadline, within the keep-alive
            s.sendall(request)
            assert _answer(s).startswith(b"HTTP/1.1 200")


def test_bytes_that_are_not_http_are_answered_400_in_json(tmp_path):
    with live_server(fake_settings(tmp_path)) as live, _silent(live.url, b"GARBAGE\r\n\r\n") as s:
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"content-type: application/json" in head
    assert json.loads(body) == {"error": "not an HTTP request this server can read (illegal request line)"}


@pytest.mark.parametrize("sent, status, error", [
    (b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000, 431,
     "the request's head (its line and headers) is over 16 KiB: a URL or a header that long?"),
    (b"POST /api/concepts HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\nabc", 400,
     "not an HTTP request this server can read (Only Transfer-Encoding: chunked is supported)"),
    (b"POST /api/concepts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef", 400,
     "not an HTTP request this server can read (conflicting Content-Length headers)")])
def test_a_request_http_cannot_take_is_told_what_is_wrong(tmp_path, sent, status, error, caplog):
    """Each was 400 "Invalid HTTP request received", uvicorn's words for anything h11 refuses: a head over 16 KiB (a
    cookie or URL that long), a Transfer-Encoding other than chunked, two lengths. The log said those words too, of
    each: it says what the client was told, once."""
    uvicorn = logging.getLogger("uvicorn.error")  # (configured by uvicorn not to reach the root's handlers)
    uvicorn.addHandler(caplog.handler)
    try:
        with live_server(fake_settings(tmp_path)) as live, _silent(live.url, sent) as s:
            head, _, body = _last_words(s).partition(b"\r\n\r\n")
    finally:
        uvicorn.removeHandler(caplog.handler)
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 %d %s" % (status, b"Request Header Fields Too Large" if status == 431
                                                           else b"Bad Request"), head
    assert json.loads(body) == {"error": error}
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert said == [f"answered {status} to 127.0.0.1: {error}"], said


def test_a_client_looping_bad_requests_is_logged_a_few_lines_then_counted(tmp_path, monkeypatch, caplog):
    """Each refusal was a line of its own: a client sending bytes that are not HTTP in a loop grew the log without
    bound. A few are said, then one a minute with how many were left out; another kind has its own lines; those left
    out since the last are said as the server stops (they were never said)."""
    from edge_rap.serve import app
    from edge_rap.serve.log_budget import LogBudget

    now = [0.0]
    monkeypatch.setattr(app, "LogBudget", lambda: LogBudget(burst=3, every_s=60.0, clock=lambda: now[0]))
    uvicorn = logging.getLogger("uvicorn.error")  # (configured by uvicorn not to reach the root's handlers)
    uvicorn.addHandler(caplog.handler)

    def sent(request: bytes, times: int) -> None:
        for _ in range(times):
            with _silent(live.url, request) as s:
                assert _last_words(s).startswith(b"HTTP/1.1 4")

    try:
        with live_server(fake_settings(tmp_path)) as live:
            sent(b"GARBAGE\r\n\r\n", 8)
            sent(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 1)
            now[0] += 30.0  # half a line's time
            sent(b"GARBAGE\r\n\r\n", 1)
            now[0] += 30.0
            sent(b"GARBAGE\r\n\r\n", 2)
    finally:
        uvicorn.removeHandler(caplog.handler)
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    bad = "answered 400 to 127.0.0.1: not an HTTP request this server can read (illegal request line)"
    assert said[:3] == [bad] * 3 and said[3].startswith("answered 431") and \
        said[4:] == [bad + " (6 more like this not logged)",
                     bad + " (the last of 1 like this not logged, said as the server stops)"], said


def test_a_log_budget_says_a_burst_then_one_line_each_while_and_what_it_left_out():
    from edge_rap.serve.log_budget import LogBudget

    now, lines = [100.0], []

    class Logger:
        def log(self, level, msg, *args, exc_info=None, extra=None):
            lines.append(msg % args)

    budget = LogBudget(burst=2, every_s=10.0, clock=lambda: now[0])
    for k in range(5):
        budget.log(Logger(), logging.WARNING, "a", "a%d", k)
    budget.log(Logger(), logging.WARNING, "b", "b%d", 0)  # its own budget
    now[0] += 25.0  # two lines' time, and a half
    for k in range(5, 9):
        budget.log(Logger(), logging.WARNING, "a", "a%d", k)
    now[0] += 1000.0  # long idle: back to the burst, no more
    for k in range(9, 13):
        budget.log(Logger(), logging.WARNING, "a", "a%d", k)
    assert lines == ["a0", "a1", "b0", "a5 (3 more like this not logged)", "a6", "a9 (2 more like this not logged)",
                     "a10"]


def test_a_log_budget_says_the_lines_it_left_out_last_as_the_server_stops():
    # a loop of bad requests that ended, then the server: how many were left out was never said
    from edge_rap.serve.log_budget import LogBudget

    lines = []

    class Logger:
        def log(self, level, msg, *args, exc_info=None, extra=None):
            lines.append((level, msg % args))

    budget = LogBudget(burst=1, every_s=60.0, clock=lambda: 0.0)
    for k in range(4):
        budget.log(Logger(), logging.WARNING, "a", "a%d", k)
    budget.log(Logger(), logging.INFO, "b", "b%d", 0)  # none of its kind left out: nothing more to say
    budget.say_left_out()
    budget.say_left_out()  # said once
    assert lines == [(logging.WARNING, "a0"), (logging.INFO, "b0"),
                     (logging.WARNING, "a3 (the last of 3 like this not logged, said as the server stops)")]


def test_a_head_over_its_limit_is_431_however_it_came(tmp_path):
    """h11 limits a head only while it is incomplete: one over 16 KiB that came whole in one read (a long URL or cookie
    sent at once, as on a fast link) was answered as any other, the same head in pieces 431. One under it is
    answered."""
    with live_server(fake_settings(tmp_path)) as live:
        said = {}
        for name, line, header in (("url", b"/api/health?x=" + b"a" * 20_000, b""),
                                   ("cookie", b"/api/health", b"Cookie: " + b"a=b; " * 4_000 + b"\r\n"),
                                   ("under", b"/api/health", b"X-Big: " + b"a" * 15_000 + b"\r\n")):
            sent = b"GET " + line + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header + b"Connection: close\r\n\r\n"
            with _silent(live.url, sent) as s:
                head, _, body = _last_words(s).partition(b"\r\n\r\n")
            said[name] = (head.split(b"\r\n")[0], json.loads(body))
    big = (b"HTTP/1.1 431 Request Header Fields Too Large",
           {"error": "the request's head (its line and headers) is over 16 KiB: a URL or a header that long?"})
    assert said == {"url": big, "cookie": big, "under": (b"HTTP/1.1 200 OK", {"ok": True})}, said


def test_a_client_that_closes_its_side_after_its_request_is_answered(tmp_path):
    """A client that half-closes once its request is sent (`nc -N`, a proxy) got no answer: the server closed at the
    client's FIN, and an upload so sent was stored, its client told nothing. Now it is answered, then closed; a request
    not all there at the FIN is 400, nothing stored."""
    import socket as sockets

    with live_server(fake_settings(tmp_path)) as live:
        form = (b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nbo\r\n'
                b'--b\r\nContent-Disposition: form-data; name="photo"; filename="bo.png"\r\n'
                b'Content-Type: image/png\r\n\r\n' + png(scene(1)) + b"\r\n--b--\r\n")
        said = []
        for length in (len(form), len(form) + 10):  # the whole form; a body 10 bytes short of its Content-Length
            head = (f"POST /api/concepts HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {live.token}\r\n"
                    f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {length}\r\n\r\n").encode()
            with _silent(live.url, head + form) as s:
                s.shutdown(sockets.SHUT_WR)
                said.append(_last_words(s))
        head, _, body = said[0].partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 201") and json.loads(body)["name"] == "bo", said[0]
        head, _, body = said[1].partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400") and json.loads(body) == {
            "error": "the client closed its side of the connection before its request was all there"}, said[1]
        with live.client() as c:
            assert [(k["name"], k["views"]) for k in c.get("/api/concepts").json()] == [("bo", 1)]


def test_a_client_that_closes_its_side_after_its_last_request_is_answered(tmp_path):
    """`printf 'GET ... Connection: close ...' | nc -N`, or an HTTP/1.0 client, half-closing: a request that is its
    connection's last (h11's MUST_CLOSE, not DONE) was met at the FIN as one not all there, and the connection closed
    without a word: an upload so sent stored, its client told nothing."""
    import socket as sockets

    form = (b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nbo\r\n--b\r\nContent-Disposition: form-data; '
            b'name="photo"; filename="bo.png"\r\nContent-Type: image/png\r\n\r\n' + png(scene(1)) + b"\r\n--b--\r\n")
    with live_server(fake_settings(tmp_path)) as live:
        upload = (f"POST /api/concepts HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {live.token}\r\n"
                  "Connection: close\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  f"Content-Length: {len(form)}\r\n\r\n").encode()
        said = []
        for sent in (b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                     b"GET /api/health HTTP/1.0\r\n\r\n", upload + form):
            with _silent(live.url, sent) as s:
                s.shutdown(sockets.SHUT_WR)
                said.append(_last_words(s).partition(b"\r\n\r\n"))
        assert [(head.split(b"\r\n")[0], json.loads(body).get("name")) for head, _, body in said] == [
            (b"HTTP/1.1 200 OK", None), (b"HTTP/1.1 200 OK", None), (b"HTTP/1.1 201 Created", "bo")], said


@pytest.mark.parametrize("half_close", [False, True])
def test_a_request_asking_for_an_upgrade_and_those_pipelined_after_it_are_each_answered(tmp_path, monkeypatch,
                                                                                         half_close):
    """No upgrade is served, so the `Upgrade` header is ignored (RFC 9110 7.8) and the connection goes on in HTTP/1.1:
    each request answered, in order. Half-closed while the first was being answered, an `Upgrade` request (h11's
    MIGHT_SWITCH_PROTOCOL) was met as one not all there: it got no answer, and a request pipelined after it was
    answered 400 in its place; a last request pipelined after any (`Connection: close`, HTTP/1.0, an `Upgrade`) was
    dropped without a word."""
    import socket as sockets

    from serve_support import hold_recognition

    from edge_rap.serve.patience import PatientProtocol

    upgrade = b"Connection: Upgrade\r\nUpgrade: h2c\r\n"
    health = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    last = health + b"Connection: close\r\n\r\n"
    # what is pipelined after the first request, and whether it ends the connection
    pipelined = [(b"", False), (health + b"\r\n", False), (last, True), (b"GET /api/health HTTP/1.0\r\n\r\n", True),
                 (health + upgrade + b"\r\n", False)]
    form = (b'--b\r\nContent-Disposition: form-data; name="photo"; filename="q.png"\r\nContent-Type: image/png\r\n\r\n'
            + png(scene(1)) + b"\r\n--b--\r\n")
    with live_server(fake_settings(tmp_path)) as live:
        _with_bo(live)
        _, release = hold_recognition(live, monkeypatch, most_s=10)
        closed = PatientProtocol.eof_received  # the first is answered once the server has met the client's FIN
        monkeypatch.setattr(PatientProtocol, "eof_received", lambda self: (closed(self), release.set())[0])
        said, expected = [], []
        for first in (b"", upgrade):
            head = (b"POST /api/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + live.token.encode()
                    + b"\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: " + str(len(form)).encode()
                    + b"\r\n" + first + b"\r\n")
            for after, ends in pipelined:
                if not half_close:  # (the connection, kept open, ended by a last request)
                    release.set()
                    after, ends = (after, ends) if ends else (after + last, True)
                else:
                    release.clear()
                with _silent(live.url, head + form + after) as s:
                    if half_close:
                        s.shutdown(sockets.SHUT_WR)
                    said.append(re.findall(rb"HTTP/1.1 (\d{3}) ", _last_words(s) or b""))
                expected.append([b"200"] * (1 + after.count(b" HTTP/1.")))
    assert said == expected, said


@pytest.mark.parametrize("upgrade", [b"", b"Connection: Upgrade\r\nUpgrade: h2c\r\n"])
def test_the_head_of_a_next_request_begun_with_one_answered_is_timed_as_a_head(tmp_path, upgrade):
    """The first bytes of a next request's head, pipelined in the same send as one the server answered, were left to
    uvicorn's keep-alive: the connection closed 5 s after the answer without a word, where the same bytes sent after
    it have a head's deadline, then a 408 that says why."""
    health = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    with live_server(fake_settings(tmp_path), patience=Patience(idle_s=1.0, trickle_s=1.0)) as live:
        with _silent(live.url, health + upgrade + b"\r\n" + health[:30]) as s:
            said = _last_words(s)
    assert re.findall(rb"HTTP/1.1 (\d{3}) ", said or b"") == [b"200", b"408"], said
    assert b"not all there" in said  # (its head's deadline, or the silence's)


def test_a_delete_with_a_body_is_refused_before_anything_is_done(tmp_path):
    """No route reads a DELETE's body, so a forget sent with one that never came whole ran at once: behind a long
    upload it waited its turn past the connection's deadline, was answered 408 (400 at a half-close), and was then
    done. A DELETE with a body is refused from its head (RFC 9110 9.3.5), whole or not, and nothing is forgotten."""
    from edge_rap.serve.guard import BodyLimit

    with live_server(fake_settings(tmp_path), patience=Patience(idle_s=2, trickle_s=2)) as live:
        _with_bo(live)
        said = []
        for framing, body in ((b"Content-Length: 10", b""), (b"Content-Length: 2", b"{}"),
                              (b"Transfer-Encoding: chunked", b"0\r\n\r\n")):
            head = (b"DELETE /api/concepts/bo HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                    + live.token.encode() + b"\r\n" + framing + b"\r\n\r\n")
            with _silent(live.url, head + body) as s:
                answer, _, text = (_last_words(s) or b"").partition(b"\r\n\r\n")
                said.append((answer.split(b"\r\n")[0], text and json.loads(text)))
        with live.client() as c:
            assert [k["name"] for k in c.get("/api/concepts").json()] == ["bo"], said
        assert said == [(b"HTTP/1.1 400 Bad Request", {"error": BodyLimit.DELETE_BODY})] * 3, said
        with live.client() as c:
            assert c.request("DELETE", "/api/concepts/bo", headers={"Content-Length": "0"}).status_code == 204
