"""A concept's name in a path is one segment as the client encoded it, `/` (`%2F`) and all: the server decodes the
path before routing, and `/api/concepts/a%2Fb` was routed as `a/b`, two segments (a bare "Not Found", where a name
with a '\\' is refused in words), `bo%2Fphotos` as the photos of <bo>."""

from __future__ import annotations

from urllib.parse import unquote

from starlette.requests import Request
from starlette.types import Scope

#: Where a concept's name is in a path (the segment after it); the routes on one name it `{name}`.
CONCEPTS = "/api/concepts/"


def encoded_name(scope: Scope) -> tuple[str, str] | None:
    """A concept's name whose segment holds an encoded '/', and the path with one segment in its place (to route
    by); None for any other path."""
    raw, path = scope.get("raw_path") or b"", scope["path"]
    segments = raw.split(b"/")
    if not path.startswith(CONCEPTS) or len(segments) < 4 or b"%2f" not in segments[3].lower():
        return None
    name = unquote(segments[3].decode("latin-1"))
    if not path.startswith(CONCEPTS + name):  # (a path changed since it was read: a 404's without its trailing '/')
        return None
    return name, CONCEPTS + "_" + path[len(CONCEPTS + name):]


def said_path(request: Request) -> str:
    """The path as messages say it: decoded, but a name's '/' as the client sent it (`POST /api/concepts/bo%2Fphotos`
    is no upload to <bo>'s photos), and '?', '#' and '\\' encoded, as `request.url.path` has them. Cut from the
    decoded path: cut from that one, a name with both was garbled (`a%2Fb%3Fc` said as `a%2Fb?cFc`)."""
    encoded = encoded_name(request.scope)
    if encoded is None:
        return request.url.path
    name = encoded[0]
    said = name.replace("/", "%2F") + request.scope["path"][len(CONCEPTS + name):]
    return CONCEPTS + said.replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
