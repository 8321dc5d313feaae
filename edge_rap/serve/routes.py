"""How a request's URL is judged before its body: the routes' class. The query first (a parameter the route does not
take), then the concept the path names (its name one segment as the client encoded it: serve/paths.py), then the
body.

FastAPI reads a body before any dependency, so without this a PATCH of `{bad` to a name not there was 400 (not JSON),
a form the parser cannot read 400 too, and an upload to it was spooled whole (64 MiB) before its 404; and a query
parameter a route does not take was 422 on a GET or DELETE but 404 (no such concept) or 400 (the body) on a PATCH or
an upload: the same URL judged two ways."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from edge_rap.serve.paths import encoded_name, not_utf8, said_path, stray_slash
from edge_rap.serve.problems import ApiError


def known_query(request: Request) -> None:
    """Refuse a path or query that is not UTF-8 (400: paths.not_utf8), a query parameter the route does not take
    (422): `/api/events?nmae=bo` answered every event; and one sent twice, as a form field or JSON key is:
    `?name=bo&name=cat` answered cat's events alone."""
    if (part := not_utf8(request.scope)) is not None:
        sent = (request.scope.get("raw_path") or b"").decode("latin-1")[:200]
        raise ApiError(f"{request.method} {sent}: its {part} is not UTF-8 once its %-escapes are decoded "
                       "(percent-encode names as UTF-8, as a browser does)", 400)
    taken = [param.alias for param in request.scope["route"].dependant.query_params]
    unknown = sorted(set(request.query_params) - set(taken))
    if unknown:
        raise ApiError(f"{unknown[0]}: not a parameter of {request.method} {said_path(request)} (it takes "
                       f"{', '.join(taken) or 'none'})", 422)
    for key in taken:
        if (sent := len(request.query_params.getlist(key))) > 1:
            raise ApiError(f"{key}: sent {sent} times; {request.method} {said_path(request)} takes one", 422)


class HeadToo(APIRoute):
    """A route that answers GET answers HEAD (RFC 9110 9.3.2), with the same status and headers (its body dropped
    by the server): FastAPI's take GET alone, so HEAD was 405 on every route but the schema's, though `OPTIONS *`
    lists it. Matched as GET, HEAD is kept as the request's method: a route whose body costs (a backup) answers its
    headers without making it. Not in the schema: HEAD goes with every GET there."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        return super().matches(self._as_get(scope))

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._as_get(scope) is not scope:  # (Starlette's own check of the method: 405)
            return await self.app(scope, receive, send)
        await super().handle(scope, receive, send)

    def _as_get(self, scope: Scope) -> Scope:
        return {**scope, "method": "GET"} if scope["method"] == "HEAD" and "GET" in self.methods else scope


def url_first(find: Callable[[str], Any]) -> type[APIRoute]:
    """The routes' class; `find` looks a concept up by name, or raises (404, or 422 for a name that cannot be
    one)."""

    class UrlFirst(HeadToo):
        def matches(self, scope: Scope) -> tuple[Match, Scope]:
            if stray_slash(scope):  # (`/api%2Fconcepts` is no route: serve/paths.py)
                return Match.NONE, {}
            encoded = encoded_name(scope) if "name" in self.param_convertors else None
            if encoded is None:
                return super().matches(scope)
            match, child = super().matches({**scope, "path": encoded[1]})
            if match != Match.NONE:
                child["path_params"] = {**child["path_params"], "name": encoded[0]}
            return match, child

        def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
            handler = super().get_route_handler()
            if self.body_field is None:  # (the query judged by the router's dependency, as nothing is read)
                return handler

            async def url_first(request: Request) -> Response:
                known_query(request)
                if "name" in self.param_convertors:
                    await run_in_threadpool(find, request.path_params["name"])
                return await handler(request)

            return url_first

    return UrlFirst
