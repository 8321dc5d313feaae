"""A path is routed by its segments as the client encoded them: an encoded '/' (`%2F`) is part of its segment, not a
separator (RFC 3986 makes `a%2Fb` and `a/b` different paths). The server decodes the path before routing, and
`/api/concepts/a%2Fb` was routed as `a/b`, two segments (a bare "Not Found", where a name with a '\\' is refused in
words), `bo%2Fphotos` as the photos of <bo>, and `/api%2Fbackup` as `/api/backup`: a rule a proxy in front keeps
for `/api/backup` passed it by. A concept's name is the one segment that may hold one (it is refused as a name with
a '/' is); a path with one anywhere else is no route's."""

from __future__ import annotations

from urllib.parse import unquote, unquote_to_bytes

from starlette.requests import Request
from starlette.types import Scope

#: Where a concept's name is in a path (the segment after it); the routes on one name it `{name}`.
CONCEPTS = "/api/concepts/"
#: The index of a name's segment in a path split at '/' ("", "api", "concepts", NAME).
NAME_SEGMENT = 3


def _segments(scope: Scope) -> list[bytes]:
    return (scope.get("raw_path") or b"").split(b"/")


def _has_slash(segment: bytes) -> bool:
    return b"%2f" in segment.lower()


def encoded_name(scope: Scope) -> tuple[str, str] | None:
    """A concept's name whose segment holds an encoded '/', and the path with one segment in its place (to route
    by); None for any other path."""
    path, segments = scope["path"], _segments(scope)
    if not path.startswith(CONCEPTS) or len(segments) <= NAME_SEGMENT or not _has_slash(segments[NAME_SEGMENT]):
        return None
    name = unquote(segments[NAME_SEGMENT].decode("latin-1"))
    if not path.startswith(CONCEPTS + name):  # (a path changed since it was read: a 404's without its trailing '/')
        return None
    return name, CONCEPTS + "_" + path[len(CONCEPTS + name):]


def stray_slash(scope: Scope) -> bool:
    """Whether an encoded '/' is in a segment other than a concept's name: a path no route has."""
    named = scope["path"].startswith(CONCEPTS)
    return any(_has_slash(s) for k, s in enumerate(_segments(scope)) if k != NAME_SEGMENT or not named)


def said_path(request: Request) -> str:
    """The path as messages say it: decoded, but an encoded '/' as the client sent it (`POST
    /api/concepts/bo%2Fphotos` is no upload to <bo>'s photos), and '?', '#' and '\\' encoded, as `request.url.path`
    has them. Each segment decoded by itself: cut from the decoded path, a name with both was garbled (`a%2Fb%3Fc`
    said as `a%2Fb?cFc`)."""
    segments = _segments(request.scope)
    if not any(map(_has_slash, segments)):
        return request.url.path
    said = "/".join(unquote(s.decode("latin-1")).replace("/", "%2F") for s in segments)
    return said.replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")


def not_utf8(scope: Scope) -> str | None:
    """"path" or "query", where that part of the target is not UTF-8 once its %-escapes are decoded; None where both
    are. The server decodes them with U+FFFD for each byte it cannot read: `DELETE /api/concepts/%C3` forgot a concept
    named '\ufffd', and an older client's Latin-1 `caf%E9` was told "no concept named 'caf\ufffd'"."""
    for part, raw in (("path", scope.get("raw_path") or b""), ("query", scope.get("query_string") or b"")):
        try:
            unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return part
    return None
