"""A request's target in the forms of RFC 9112 3.2 besides a path (origin-form): the absolute form
(`GET http://device:8765/api/health`), which a server MUST accept and was a bare 404 on every route, is answered as
its path, with its authority for Host (which the RFC says to use instead): the same token, limits, routes and
errors, and 421 for a name the device does not answer to, as such a Host is, or for another scheme than the
connection's (the device is no proxy: it answers for itself alone). `OPTIONS *` is 204 with the methods the routes
take; `*` with any other method, or a target of no form, 400; CONNECT, a proxy's method, 501. Each of these is
answered only once its Host is one the device answers to, as every other request is (421 before it: DNS rebinding)."""

from __future__ import annotations

import re
from urllib.parse import unquote

from edge_rap.serve.guard import SecurityHeaders, send_error
from edge_rap.serve.hosts import HostNames

#: An absolute-form target (its query cut off by the server): scheme, authority, path.
_ABSOLUTE = re.compile(rb"([A-Za-z][A-Za-z0-9+.-]*)://([^/]*)(/.*)?", re.DOTALL)


class RequestTarget:
    """Every target turned into a path, or refused; `methods`: those the routes take, for `OPTIONS *`'s Allow;
    `hosts`: the names its own answers are given under (the path's are judged by HostGuard, inside)."""

    def __init__(self, app, methods: set[str], hosts: HostNames):
        self.app = app
        self.allow = ", ".join(sorted(methods))
        self.hosts = hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        raw, method = scope.get("raw_path") or b"", scope["method"]
        own = SecurityHeaders.headed(scope, send)  # its own answers, outside that layer: no sniffing, no framing
        if method != "CONNECT" and raw.startswith(b"/"):
            return await self.app(scope, receive, send)
        absolute = _ABSOLUTE.fullmatch(raw) if method != "CONNECT" else None
        if absolute is None:  # answered here, by its Host: a name not answered to is refused first, as on any path
            if (refusal := self.hosts.refusal(scope)) is not None:
                return await send_error(own, *refusal)
            if method == "CONNECT":
                return await send_error(own, 501, "CONNECT: this device is no proxy")
            if raw == b"*" and method == "OPTIONS":
                await own({"type": "http.response.start", "status": 204,
                           "headers": [(b"allow", self.allow.encode())]})
                return await own({"type": "http.response.body", "body": b""})
            return await send_error(own, 400, f"{method} {_said(raw)}: not a request target this server reads (give "
                                              f"a path, such as /api/health, or a whole {scope['scheme']} URL)")
        scheme, authority, path = absolute.groups()
        if not authority or b"@" in authority:  # (RFC 9110 4.2.1, 4.2.4: an empty host, and userinfo, are errors)
            return await send_error(own, 400, f"{method} {_said(raw)}: a URL with no host, or with a user name, "
                                              "is not one this server reads")
        if scheme.lower().decode() != scope["scheme"]:  # (the scheme cut as the target is: it may be 15 KiB)
            return await send_error(own, 421, f"{method} {_said(raw)}: this device serves {scope['scheme']} here, "
                                              f"not {_said(scheme.lower())}")
        path = path or b"/"
        headers = [(k, v) for k, v in scope["headers"] if k != b"host"] + [(b"host", authority)]
        origin = {**scope, "raw_path": path, "path": unquote(path.decode("latin-1")), "headers": headers}
        return await self.app(origin, receive, send)


def _said(raw: bytes) -> str:
    return raw.decode("latin-1")[:200]
