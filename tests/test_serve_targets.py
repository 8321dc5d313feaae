"""A request's target in every form of RFC 9112 3.2 (absolute, asterisk, authority), and a path with an encoded '/'
outside a concept's name: each answered as the README says, on a live server (http.client sends a target as given)."""

from __future__ import annotations

import http.client
import json

import pytest
from photos import photo
from serve_support import fake_settings, live_server, photo_files, png


@pytest.fixture
def live(tmp_path):
    with live_server(fake_settings(tmp_path)) as server, server.client() as c:
        assert c.post("/api/concepts", data={"name": "bo"}, files=photo_files(png(photo("coffee")))).status_code == 201
        yield server


def ask(live, method: str, target: str, token: bool = True, host: str | None = None) -> tuple[int, dict, dict]:
    """The status, headers (lower-case names) and JSON body ({} for another) of `method target` as sent, on a connection of its own."""
    address = live.url.removeprefix("http://")
    conn = http.client.HTTPConnection(address, timeout=30)
    try:
        conn.putrequest(method, target, skip_host=host is not None)
        if host is not None:
            conn.putheader("Host", host)
        if token:
            conn.putheader("Authorization", f"Bearer {live.token}")
        conn.endheaders()
        answer = conn.getresponse()
        body, headers = answer.read(), {k.lower(): v for k, v in answer.getheaders()}
        return answer.status, headers, json.loads(body) if headers.get("content-type") == "application/json" else {}
    finally:
        conn.close()


def test_an_encoded_slash_outside_a_name_is_no_separator(live):
    """`/api/concepts%2Fbo` reached <bo>, `/api%2Fbackup` the backup: a rule a proxy in front keeps for the path with
    its '/' (RFC 3986: not the same path) was passed by. Now no route, as a name's segment holds its '/'."""
    for path in ("/api/concepts%2Fbo", "/api%2Fconcepts/bo", "/api/concepts%2fbo%2Fphotos",
                 "/api/concepts/bo/photos%2F1", "/api%2Fhealth", "/api%2Fbackup"):
        said = path.replace("%2f", "%2F")
        assert ask(live, "GET", path)[::2] == (404, {"error": f"GET {said}: no such route (an encoded '/', %2F, is "
                                                              "part of its segment, not a separator)"}), path
    assert ask(live, "POST", "/api%2Fconcepts", token=False)[0] == 401  # the token first, as on every /api path
    assert ask(live, "GET", "/api/concepts/bo")[0] == 200
