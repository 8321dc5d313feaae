"""The log lines a client's requests cause are rationed per kind (serve/log_budget.py): a phone app retrying a
request that fails, with the token or without, grew a months-long server's log a line (or a traceback) a request."""

from __future__ import annotations

import asyncio
import logging
import socket
from contextlib import contextmanager

import pytest
from scenes import scene
from serve_support import fake_settings, jpeg, live_server, photo_files, png, warnings_said

from edge_rap.generate.chat import GEMMA3_TEMPLATE, ChatTemplate
from edge_rap.generate.prompt import MEDIA_MARKER
from edge_rap.serve.token import TOKEN_FILE

BURST = 2  # the lines of a kind said at once in these tests; the clock stands still: no more come
TRIES = 5


@pytest.fixture
def rationed(monkeypatch, caplog):
    """Every server's budget `BURST` lines a kind (made by its app; by the server before that held its requests'
    too)."""
    from edge_rap.serve import app, server
    from edge_rap.serve.log_budget import LogBudget

    for module in (app, server):
        monkeypatch.setattr(module, "LogBudget", lambda: LogBudget(burst=BURST, every_s=60.0, clock=lambda: 0.0),
                            raising=False)
    return caplog


def _rationed(said: list[str], line: str) -> None:
    """`line` said `BURST` times, then the last of those left out with their count as the server stopped."""
    assert said == [line] * BURST + [f"{line} (the last of {TRIES - BURST} like this not logged, said as the server "
                                     "stops)"], said


def _raw(url: str, request: bytes) -> bytes:
    """The first line of the server's answer to `request`, sent on a connection of its own."""
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer.split(b"\r\n")[0]


@contextmanager
def _mug(tmp_path, **kwargs):
    """A server whose memory holds <mug> and its one photo (a JPEG); the client, the photo's URL and file."""
    with live_server(fake_settings(tmp_path), **kwargs) as live, live.client() as c:
        files = [("photo", ("p.jpg", jpeg(scene(1)), "image/jpeg"))]
        url = c.post("/api/concepts", data={"name": "mug"}, files=files).json()["photos"][0]["url"]
        yield c, url, next((tmp_path / "memory" / "images").rglob("*.jpg"))


def test_a_photo_damaged_since_asked_for_again_and_again(tmp_path, rationed):
    with _mug(tmp_path) as (c, url, path):
        path.write_bytes(path.read_bytes()[:300])
        for _ in range(TRIES):
            assert c.get(url, params={"size": 190}).status_code == 503
    said = warnings_said(rationed)
    assert said[0].startswith(f"GET {url}: ") and "cannot be read" in said[0]
    _rationed(said, said[0])


def test_a_form_the_parser_cannot_read_sent_again_and_again(tmp_path, rationed):
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        for _ in range(TRIES):
            r = c.post("/api/concepts", content=b"--xyz\r\nbad header\r\n\r\nx\r\n--xyz--\r\n",
                       headers={"Content-Type": "multipart/form-data; boundary=xyz"})
            assert r.status_code == 400
    _rationed(warnings_said(rationed), f"POST /api/concepts: {r.json()['error']}")


def test_a_request_that_fails_inside_again_and_again(tmp_path, rationed):
    def broken() -> dict:
        raise RuntimeError("a bug")

    uvicorn = logging.getLogger("uvicorn")  # (its lines reach no root: caught once the server configured it)
    try:
        with live_server(fake_settings(tmp_path), stats=broken) as live, live.client() as c:
            uvicorn.addHandler(rationed.handler)
            for _ in range(TRIES):  # (uvicorn closes the connection after a 500)
                assert c.get("/api/stats", headers={"Connection": "close"}).status_code == 500
    finally:
        uvicorn.removeHandler(rationed.handler)
    ours = [r.getMessage() for r in rationed.records if r.name == "edge_rap.serve.problems"]
    _rationed(ours, "GET /api/stats failed")
    uvicorn = [r.getMessage() for r in rationed.records if r.name == "uvicorn.error"]  # its own, after ours
    _rationed(uvicorn, "Exception in ASGI application")
    tracebacks = [r for r in rationed.records if r.exc_info]
    assert len(tracebacks) == 2 * BURST  # (the last lines, said as the server stops, hold none)


def test_a_streamed_answer_that_fails_again_and_again(tmp_path, rationed, monkeypatch):
    from edge_rap.serve import api

    def broken(*args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(api, "_household_answer", broken)
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        for _ in range(TRIES):
            r = c.post("/api/ask", data={"question": "where is bo?"}, headers={"Accept": "text/event-stream"})
            assert "event: error" in r.text
    _rationed(warnings_said(rationed), "POST /api/ask failed")


def test_backups_of_a_memory_missing_photos_asked_for_again_and_again(tmp_path, rationed):
    with _mug(tmp_path) as (c, _, path):
        c.post("/api/concepts/mug/photos", files=photo_files(png(scene(2))))
        for photo in (tmp_path / "memory" / "images").rglob("*.*"):
            photo.unlink()
        for _ in range(TRIES):
            assert c.get("/api/backup").status_code == 200
    said = warnings_said(rationed)
    assert said[0].startswith("GET /api/backup: 2 stored photos missing or damaged, not backed up: ")  # one line
    _rationed(said, said[0])


def test_backups_of_a_memory_missing_an_index_file_asked_for_again_and_again(tmp_path, rationed):
    """memory/backup.py said each index file it left out at every backup, a line a backup a phone asks for."""
    with _mug(tmp_path) as (c, _, _):
        index = sorted((tmp_path / "memory" / "index").iterdir())
        for file in index:
            file.unlink()
        for _ in range(TRIES):
            assert c.get("/api/backup").status_code == 200
    said = warnings_said(rationed)
    assert len(index) == 1 and said[0].endswith(f"index file index/{index[0].name} is missing or damaged and is left "
                                                "out of the backup")
    _rationed(said, said[0])


@pytest.mark.parametrize("upgrade", [b"h2c", b"websocket"])
def test_a_request_asking_for_an_upgrade_again_and_again(tmp_path, rationed, upgrade):
    """Each was a line, and uvicorn's advice to install a WebSocket library; one asking for a WebSocket, where a
    library for it was installed, was handed to the app as one, and was a 500 and a traceback (no token needed)."""
    request = (b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: " + upgrade +
               b"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    with live_server(fake_settings(tmp_path)) as live:
        for _ in range(TRIES):
            assert _raw(live.url, request) == b"HTTP/1.1 200 OK"
    _rationed(warnings_said(rationed),
              "answered a request from 127.0.0.1 as if it had no Upgrade header (no upgrade is served)")


def test_each_fault_h11_finds_has_its_own_lines(tmp_path, rationed):
    """Bytes that are not HTTP in a loop left out, as "more like this", the line for another client's request whose
    framing h11 refuses (two lengths): its words were never said."""
    garbage = b"GARBAGE\r\n\r\n"
    lengths = b"POST /api/concepts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef"
    with live_server(fake_settings(tmp_path)) as live:
        for request in [garbage] * TRIES + [lengths]:
            assert _raw(live.url, request) == b"HTTP/1.1 400 Bad Request"
    said = warnings_said(rationed)
    bad = "answered 400 to 127.0.0.1: not an HTTP request this server can read"
    last = f"{bad} (illegal request line) (the last of {TRIES - BURST} like this not logged, said as the server stops)"
    clash = f"{bad} (conflicting Content-Length headers)"
    assert said == [f"{bad} (illegal request line)"] * BURST + [clash, last], said


def test_a_photo_stored_before_uploaded_again_and_again(tmp_path, rationed):
    """memory.py said "already a view" at each upload holding a photo the concept has: a line a request, from a layer
    the server's budget was never threaded through. It named the upload by its temporary path, no one's to know,
    each another: it names it as the client sent it, the last left out too (said after the upload's end)."""
    with _mug(tmp_path) as (c, _, path):
        for k in range(TRIES):
            files = [*photo_files(png(scene(10 + k))), ("photo", ("again.jpg", path.read_bytes(), "image/jpeg"))]
            assert c.post("/api/concepts/mug/photos", files=files).status_code == 201
    _rationed(warnings_said(rationed), "photo 2 (again.jpg) is already a view of <mug>: skipped")


class _Sees:
    """A VLM that takes pictures, its reference photos too."""

    has_vision, name, device, template = True, "sees", "cpu", ChatTemplate("test", GEMMA3_TEMPLATE, "<bos>", "<eos>")
    marker = MEDIA_MARKER

    def generate(self, rendered, on_text, max_tokens, temperature):
        from edge_rap.generate.vlm import Generation

        on_text("It is <mug>.")
        return Generation("It is <mug>.", 4, 12, 0.01, None, {"prefix": "computed"}, "eos")

    def close(self):
        pass


def test_questions_about_a_concept_whose_photos_are_gone_again_and_again(tmp_path, rationed, monkeypatch):
    """The assistant said "no reference photo" at each question about it, answered or streamed (the stream's answer
    is made in a thread of its own, in the request's context)."""
    monkeypatch.setattr("edge_rap.generate.assistant.open_vlm", lambda *a, **k: (_Sees(), None))
    with _mug(tmp_path) as (c, _, path):
        path.unlink()
        for k in range(TRIES):
            streamed = {"Accept": "text/event-stream"} if k % 2 else {}
            r = c.post("/api/ask", data={"question": "What is <mug>?"}, headers=streamed)
            assert r.status_code == 200 and "It is <mug>." in r.text
    _rationed(warnings_said(rationed), "<mug> has no reference photo in the memory's folder, or none undamaged: "
                                       "described to the VLM in words")


def test_lines_said_outside_a_request_are_not_rationed_while_a_server_runs(tmp_path, rationed):
    """`run --serve`: the daemon's own lines, and a command's, are said each time, the server beside them or not."""
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        again = tmp_path / "again.png"
        again.write_bytes(png(scene(1)))
        assert c.post("/api/concepts", data={"name": "mug"}, files=photo_files(again.read_bytes())).status_code == 201
        for k in range(TRIES):
            fresh = tmp_path / f"new{k}.png"
            fresh.write_bytes(png(scene(10 + k)))
            live.home.memory.add_views("mug", [again, fresh])
    assert warnings_said(rationed) == [f"{again} is already a view of <mug>: skipped"] * TRIES


def test_each_fault_of_the_token_file_has_its_own_lines(tmp_path, rationed):
    """The guard says each fault of the token file from one line of code: a damaged token and a memory gone, the
    drive flapping, were one kind, and the one said last was left out for the other."""
    with live_server(fake_settings(tmp_path)) as live, live.client() as c:
        memory = tmp_path / "memory"
        for _ in range(TRIES):
            (memory / TOKEN_FILE).write_text("x\n")
            assert c.get("/api/concepts").status_code == 503
            memory.rename(tmp_path / "away")
            assert c.get("/api/concepts").status_code == 503
            (tmp_path / "away").rename(memory)
    damaged = f"{memory / TOKEN_FILE}: the API token is damaged; run `edge-rap pair --rotate` on the device"
    away = f"{memory}: the memory is not there (its drive unmounted or gone?); the device answers again when it is back"
    stops = f" (the last of {TRIES - BURST} like this not logged, said as the server stops)"
    assert sorted(warnings_said(rationed)) == sorted([damaged, away] * BURST + [damaged + stops, away + stops])


def test_the_lines_a_wrapper_says_are_its_callers_kinds(rationed):
    """`SaidOnce` says every part's failing and its end from one line of its own: under a request, the first part
    to fail rationed out the others' lines, and a failure's end."""
    from edge_rap.said_once import SaidOnce
    from edge_rap.serve import request_lines
    from edge_rap.serve.log_budget import LogBudget

    budget = LogBudget(burst=BURST, clock=lambda: 0.0)
    said = SaidOnce(logging.getLogger("edge_rap.test"))

    async def flapping(scope, receive, send) -> None:
        for _ in range(TRIES):
            said("disk", True, "disk full", "")
            said("disk", False, "", "disk written again")

    request_lines.attach()
    try:
        asyncio.run(request_lines.Answering(flapping, budget)({"type": "http"}, None, None))
        budget.say_left_out()
    finally:
        request_lines.detach()
    stops = f" (the last of {TRIES - BURST} like this not logged, said as the server stops)"
    assert warnings_said(rationed) == ["disk full", "disk written again"] * BURST + ["disk full" + stops,
                                                                                      "disk written again" + stops]


def test_a_line_whose_arguments_do_not_fit_it_is_left_to_logging_while_uploads_are_labelled():
    # Before (review of the labels): `Labelled` read each line's message while uploads were remembered, so a line
    # whose arguments do not fit its text raised into the code that logged it (a request answered 500) where logging
    # itself says "--- Logging error ---" and goes on
    import logging

    from edge_rap.serve.uploads import _LABELS, Labelled

    named = _LABELS.set({"/tmp/upload-1/photo-0.png": "photo 1 (mug.jpg)"})
    try:
        unfit = logging.LogRecord("edge_rap", logging.WARNING, __file__, 1, "%s and %s", ("one",), None)
        assert Labelled().filter(unfit) and (unfit.msg, unfit.args) == ("%s and %s", ("one",))
        fit = logging.LogRecord("edge_rap", logging.WARNING, __file__, 1, "%s is here", ("/tmp/upload-1/photo-0.png",),
                                None)
        assert Labelled().filter(fit) and fit.getMessage() == "photo 1 (mug.jpg) is here"
    finally:
        _LABELS.reset(named)


def test_a_traceback_of_an_upload_that_fails_inside_names_it_as_its_client_sent_it(tmp_path, caplog):
    # Before: the traceback of a failure no one expects while a photo was remembered, the server's own and uvicorn's
    # after it, named the upload by its temporary path, no one's to know: `Labelled` named it so in lines alone, said
    # while it was remembered, and the traceback is logged once the failure has left the upload's files
    tried = []

    def broken(name, paths, *rest):
        tried.extend(paths)
        raise RuntimeError(f"a bug reading {paths[0]}")

    uvicorn = logging.getLogger("uvicorn")  # (its lines reach no root: caught once the server configured it)
    try:
        with live_server(fake_settings(tmp_path)) as live, live.client() as c:
            uvicorn.addHandler(caplog.handler)
            live.home.memory.remember = broken
            files = [("photo", ("mug.png", png(scene(1)), "image/png"))]
            r = c.post("/api/concepts", data={"name": "mug"}, files=files, headers={"Connection": "close"})
            assert r.status_code == 500
    finally:
        uvicorn.removeHandler(caplog.handler)
    failures = [r for r in caplog.records if r.exc_info]
    assert [r.name for r in failures] == ["edge_rap.serve.problems", "uvicorn.error"]
    for record in failures:
        said = caplog.handler.format(record)
        assert "RuntimeError: a bug reading photo 1 (mug.png)" in said and str(tried[0]) not in said, said
