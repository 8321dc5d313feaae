"""A request's target in every form of RFC 9112 3.2 (absolute, asterisk, authority), and a path with an encoded '/'
outside a concept's name: each answered as the README says, on a live server (http.client sends a target as given)."""

from __future__ import annotations

import http.client
import json

import pytest
from photos import photo
from serve_support import fake_settings, live_server, photo_files, png

from edge_rap.serve.guard import AttemptLimit


@pytest.fixture
def live(tmp_path):
    with live_server(fake_settings(tmp_path)) as server, server.client() as c:
        assert c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(photo("coffee")))).status_code == 201
        yield server


def ask(live, method: str, target: str, token: str | None = "own", host: str | None = None) -> tuple[int, dict, dict]:
    """The status, headers (lower-case names) and JSON body ({} for another) of `method target` as sent, on a connection
    of its own."""
    address = live.url.removeprefix("http://")
    conn = http.client.HTTPConnection(address, timeout=30)
    try:
        conn.putrequest(method, target, skip_host=host is not None)
        if host is not None:
            conn.putheader("Host", host)
        if token is not None:
            conn.putheader("Authorization", f"Bearer {live.token if token == 'own' else token}")
        conn.endheaders()
        answer = conn.getresponse()
        body, headers = answer.read(), {k.lower(): v for k, v in answer.getheaders()}
        return answer.status, headers, json.loads(body) if headers.get("content-type") == "application/json" else {}
    finally:
        conn.close()


def test_an_absolute_form_target_is_answered_as_its_path(live):
    """`GET http://HOST:PORT/api/health` was a bare 404 on every route: RFC 9112 3.2.2 says a server MUST accept it."""
    origin = live.url
    status, headers, body = ask(live, "GET", f"{origin}/api/concepts/bo", host="elsewhere.example")  # Host ignored
    assert (status, body["name"], headers["cache-control"]) == (200, "bo", "no-store")
    assert ask(live, "GET", f"{origin}/api/health", token=None)[:3:2] == (200, {"ok": True})
    assert ask(live, "GET", "HTTP://LOCALHOST:1/api/concepts")[0] == 200  # scheme and name in any case, any port
    assert ask(live, "GET", f"{origin}/api/concepts", token=None)[::2] == (
        401, {"error": "missing bearer token (edge-rap pair shows it)"})
    assert ask(live, "GET", f"{origin}/api/events?nmae=bo")[::2] == (
        422, {"error": "nmae: not a parameter of GET /api/events (it takes since, until, name)"})
    assert ask(live, "GET", f"{origin}/api/concepts/a%2Fb")[::2] == (
        422, {"error": "concept name 'a/b' has a character that is not allowed: '/'"})
    status, headers, _ = ask(live, "GET", origin)  # no path: "/", the page
    assert (status, headers["content-type"].split(";")[0]) == (200, "text/html")


def test_wrong_tokens_in_absolute_form_are_rate_limited_as_any(tmp_path):
    with live_server(fake_settings(tmp_path), attempts=AttemptLimit(failures=2, window_s=60)) as live:
        target = f"{live.url}/api/concepts"
        assert [ask(live, "GET", target, token="nope")[0] for _ in range(3)] == [401, 401, 429]
        assert ask(live, "GET", "/api/concepts")[0] == 429  # the same client, by its path too


def test_an_absolute_form_target_not_this_devices_is_refused(live):
    """Its authority is the request's Host (RFC 9112 3.2.2): a name the device does not answer to is 421 as such a
    Host is, another scheme than the connection's too (the device is no proxy); no host, or a user name, 400."""
    status, _, body = ask(live, "GET", "http://evil.example/api/concepts/bo", host="127.0.0.1")
    assert status == 421 and body["error"].startswith("this device does not answer to the name 'evil.example'"), body
    assert ask(live, "GET", "https://127.0.0.1/api/health")[::2] == (
        421, {"error": "GET https://127.0.0.1/api/health: this device serves http here, not https"})
    for target in ("http:///api/health", "http://me@127.0.0.1/api/health"):
        status, _, body = ask(live, "GET", target)
        assert status == 400 and body["error"].startswith(f"GET {target}: a URL with no host"), body


def test_an_encoded_slash_outside_a_name_is_no_separator(live):
    """`/api/concepts%2Fbo` reached <bo>, `/api%2Fbackup` the backup: a rule a proxy in front keeps for the path with
    its '/' (RFC 3986: not the same path) was passed by. Now no route, as a name's segment holds its '/'."""
    for path in ("/api/concepts%2Fbo", "/api%2Fconcepts/bo", "/api/concepts%2fbo%2Fphotos",
                 "/api/concepts/bo/photos%2F1", "/api%2Fhealth", "/api%2Fbackup"):
        said = path.replace("%2f", "%2F")
        assert ask(live, "GET", path)[::2] == (404, {"error": f"GET {said}: no such route (an encoded '/', %2F, is "
                                                              "part of its segment, not a separator)"}), path
    assert ask(live, "POST", "/api%2Fconcepts", token=None)[0] == 401  # the token first, as on every /api path
    assert ask(live, "GET", "/api/concepts/bo")[0] == 200


def test_the_asterisk_other_targets_and_connect(live):
    """`OPTIONS *` asks what the server takes: 204 with Allow (it was 404); `*` with another method, or a target of
    no form, 400; CONNECT, a proxy's, 501 (it was routed: 404, or 421 for the host it named), the connection kept."""
    status, headers, _ = ask(live, "OPTIONS", "*", token=None)
    assert (status, headers["allow"]) == (204, "DELETE, GET, HEAD, PATCH, POST")
    for method, target in (("GET", "*"), ("GET", "api/health")):
        assert ask(live, method, target)[::2] == (400, {"error": f"{method} {target}: not a request target this "
                                                                 "server reads (give a path, such as /api/health, "
                                                                 "or a whole http URL)"})
    address = live.url.removeprefix("http://")
    conn = http.client.HTTPConnection(address, timeout=30)
    try:
        for target in ("example.com:443", address):
            conn.request("CONNECT", target)
            answer = conn.getresponse()
            assert (answer.status, json.loads(answer.read())) == (501, {"error": "CONNECT: this device is no proxy"})
        conn.request("GET", "/api/health")  # the same connection
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def test_the_targets_own_answers_carry_the_security_headers(live):
    """`OPTIONS *`, CONNECT, a target of no form, a userinfo or another scheme are answered outside the layer that
    adds nosniff, DENY and the rest to every answer: they came without them."""
    address = live.url.removeprefix("http://")
    for method, target in (("OPTIONS", "*"), ("CONNECT", address), ("GET", "*"), ("GET", "api/health"),
                           ("GET", "http://me@127.0.0.1/api/health"), ("GET", "https://127.0.0.1/api/health")):
        status, headers, _ = ask(live, method, target)
        assert status in (204, 400, 421, 501), (method, target, status)
        assert (headers.get("x-content-type-options"), headers.get("x-frame-options"),
                headers.get("referrer-policy"), "frame-ancestors 'none'" in headers.get("content-security-policy", "")
                ) == ("nosniff", "DENY", "no-referrer", True), (method, target, headers)


def test_a_long_scheme_is_said_cut_short(live):
    """The 421 for another scheme said the target cut to 200 characters, then the scheme whole: a 12 KB error."""
    status, _, body = ask(live, "GET", "x" * 12_000 + "://127.0.0.1/api/health")
    assert status == 421 and len(body["error"]) < 500, len(body["error"])
    assert body["error"].endswith("this device serves http here, not " + "x" * 200)


def test_a_target_of_no_form_over_tls_names_a_whole_https_url(tmp_path):
    # the 400 said "give ... a whole http URL" on a TLS server, where an http URL is 421 (another scheme)
    import ssl

    from serve_support import self_signed

    with live_server(fake_settings(tmp_path), tls=self_signed(tmp_path)) as live:
        address = live.url.removeprefix("https://")
        conn = http.client.HTTPSConnection(address, timeout=30, context=ssl._create_unverified_context())
        try:
            conn.putrequest("GET", "api/health")
            conn.endheaders()
            answer = conn.getresponse()
            assert (answer.status, json.loads(answer.read())) == (400, {"error": "GET api/health: not a request target "
                                                                      "this server reads (give a path, such as "
                                                                      "/api/health, or a whole https URL)"})
        finally:
            conn.close()


def test_the_targets_own_answers_judge_the_host_first(live):
    """`OPTIONS *`, CONNECT and a target of no form were answered (204, 501, 400) before the Host was looked at, where
    every other request naming a host the device does not answer to is 421 (DNS rebinding): now 421 first too."""
    for method, target in (("OPTIONS", "*"), ("CONNECT", "example.com:443"), ("GET", "*"), ("GET", "api/health")):
        status, headers, body = ask(live, method, target, token=None, host="evil.example")
        assert status == 421 and body["error"].startswith("this device does not answer to the name 'evil.example'"), \
            (method, target, status, body)
        assert headers.get("x-frame-options") == "DENY", (method, target, headers)
        assert ask(live, method, target, token=None, host="127.0.0.1")[0] in (204, 400, 501), (method, target)
        assert ask(live, method, target, token=None, host="a b")[::2] == (
            400, {"error": "Host 'a b': not a host name or address"}), (method, target)


def test_a_method_the_server_does_not_implement_is_501_and_one_a_route_does_not_take_405(live):
    """RFC 9110 9.1: FOO, TRACE or PUT, which no route takes, were 405 as if another route took them (and FOO on a path
    no route has, 404); now 501, with `Allow` where the path is a route's. A method some route takes stays 405."""
    for method, target, allow in (("FOO", "/api/concepts", "GET, HEAD, POST"), ("PUT", "/api/health", "GET, HEAD"),
                                  ("TRACE", "/api/concepts/bo", "DELETE, GET, HEAD, PATCH"), ("FOO", "/nowhere", None)):
        status, headers, body = ask(live, method, target)
        assert (status, headers.get("allow")) == (501, allow), (method, target, status, headers)
        assert body["error"].startswith(f"{method} {target}: a method this server does not implement ("), body
        assert headers.get("x-content-type-options") == "nosniff", headers
    assert ask(live, "FOO", "/api/concepts", token=None)[0] == 401  # the token judged first, as on every /api path
    for method, target, allow in (("PATCH", "/api/concepts", "GET, HEAD, POST"),
                                  ("OPTIONS", "/api/health", "GET, HEAD")):
        status, headers, body = ask(live, method, target)
        assert (status, headers.get("allow")) == (405, allow), (method, target, status, headers)
        assert body == {"error": f"{method} {target}: a method this route does not take (it takes {allow})"}


def test_head_is_answered_wherever_get_is_with_its_status_and_headers_and_no_body(live):
    """RFC 9110 9.3.2: a server supports HEAD wherever it supports GET. It was 405 on every route but the schema's,
    though `OPTIONS *` lists HEAD: a client checking a photo, or the page, before fetching it was refused."""
    photo_url = ask(live, "GET", "/api/concepts/bo")[2]["photos"][0]["url"]
    for target, token in (("/", None), ("/app.js", None), ("/api/health", None), ("/api/concepts", "own"),
                          ("/api/concepts/bo", "own"), (photo_url, "own"), (f"{photo_url}?size=64", "own"),
                          ("/api/events?since=1d", "own"), ("/openapi.json", None), ("/api/concepts/nobody", "own"),
                          ("/api/concepts", None), (f"{live.url}/api/concepts", "own")):
        got, head = raw(live, "GET", target, token), raw(live, "HEAD", target, token)
        status = got.split(b"\r\n")[0]
        assert head == got.partition(b"\r\n\r\n")[0] + b"\r\n\r\n", (target, got[:300], head[:300])  # no body
        assert status.startswith(b"HTTP/1.1 200") or target in ("/api/concepts/nobody", "/api/concepts"), status
        assert b"x-content-type-options: nosniff" in head, head
    status, headers, _ = ask(live, "PATCH", "/api/concepts")
    assert (status, headers["allow"]) == (405, "GET, HEAD, POST")
    head = raw(live, "HEAD", "/api/backup/link", "own")  # a route without GET: 405, as any method it does not take
    assert head.startswith(b"HTTP/1.1 405") and b"\r\nallow: POST\r\n" in head and head.endswith(b"\r\n\r\n"), head


def raw(live, method: str, target: str, token: str | None) -> bytes:
    """All the server sends for `method target` (with `Connection: close`), its Date and a photo's ETag's time alike."""
    import re
    import socket

    host, port = live.url.removeprefix("http://").split(":")
    auth = f"Authorization: Bearer {live.token}\r\n" if token else ""
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n".encode())
        said = b""
        while chunk := s.recv(65536):
            said += chunk
    return re.sub(rb"\r\ndate: [^\r]*", b"", said)
