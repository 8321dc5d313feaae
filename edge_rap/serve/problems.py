"""Every error the API answers is JSON `{"error": "..."}` with its status: one handler per kind of failure."""

from __future__ import annotations

import json
import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from python_multipart.exceptions import FormParserError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.routing import Match

from edge_rap.daemon.events import EventLogFull
from edge_rap.errors import DeviceError, EdgeRapError
from edge_rap.memory.store import DiskFullError, NameTakenError, UnknownConceptError
from edge_rap.serve.drain import shut_down
from edge_rap.serve.log_budget import LogBudget
from edge_rap.serve.paths import said_path, stray_slash
from edge_rap.serve.responses import TextJSONResponse
from edge_rap.serve.uploads import temp_folder_error

log = logging.getLogger(__name__)

#: The routes (by their functions' names) that take an upload and change nothing: a full temporary folder there is
#: not followed by "nothing was changed", which a read-only route never does.
READ_ONLY_ROUTES = {"recognize", "ask"}


class ApiError(EdgeRapError):
    """A request the API refuses, with its status (404 no such concept, 409 the name is taken, ...) and what a
    client may act on besides the message (`extra`: the faces to choose from; `headers`: Retry-After)."""

    def __init__(self, message: str, status: int, extra: dict | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.extra = extra or {}
        self.headers = headers


def error(status: int, message: str, headers: dict[str, str] | None = None,
          extra: dict | None = None) -> TextJSONResponse:
    return TextJSONResponse({"error": message, **(extra or {})}, status, headers=headers)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:300]


def for_client(exc: EdgeRapError, where: str, said: LogBudget, route: str) -> str:
    """What a client is told of an error met answering `where` (a request to `route`): the device's own trouble
    without its paths, which go to the log, rationed per route (a phone retrying a damaged photo's GET)."""
    if isinstance(exc, DeviceError):
        said.log(log, logging.WARNING, f"device trouble: {route}", "%s: %s", where, exc)
        return _one_line(exc.problem)
    return _one_line(exc)


def route_of(request: Request) -> str:
    """The route a request was answered by, as the code names it (/api/concepts/{name}): a log line's kind, never the
    path or method a client sent (a kind is kept for the server's life)."""
    return getattr(request.scope.get("route"), "path", "(no route)")


def _send_as_a_file(field: str) -> str:
    return f"send the photo as a file (curl -F {field}=@photo.jpg, with '@')"


#: Starlette's words for a form's text field over its limit (1 MB), which it answers 400 before any route sees it.
_TEXT_OVER_LIMIT = re.compile(r"Part exceeded maximum size of (\d+)KB\.")


def _text_over_limit(detail: object) -> str | None:
    """What a text field over Starlette's limit is said as: a photo sent as text (`curl -F photo=<bo.jpg`), for a
    photo of a phone's size, was 400 "Part exceeded maximum size of 1024KB." (one under 1 MB is 422 in words)."""
    match = _TEXT_OVER_LIMIT.fullmatch(str(detail))
    if match is None:
        return None
    return f"a text field over {match.group(1)} KB: a photo sent as text, not as a file? {_send_as_a_file('photo')}"


#: python-multipart's words for a form part over its limits, which Starlette answers 400 "Invalid multipart data.", as
#: it answers any body it cannot parse as a form: what each is said as (422: the form is sound, a part too large).
_PART_OVER_LIMITS = {
    "Maximum header size exceeded": "a form field's header is over 4 KiB (a file name thousands of characters long?): "
                                    "send the photo under a shorter name",
    "Maximum header count exceeded": "a form field has over 8 headers, more than the form's parser reads: send each "
                                     "field with its Content-Disposition and Content-Type alone (as curl -F does)",
}


def _unparsed_form(exc: BaseException) -> tuple[int, str] | None:
    """The status and words for a multipart body the form's parser refused (its error: the exception `exc` was
    raised from or while handling): a part over its limits, or a body that is no multipart form, with the parser's
    own words for where; None for any other 400."""
    under = exc.__cause__ or exc.__context__
    while under is not None and not isinstance(under, FormParserError):
        under = under.__cause__ or under.__context__
    if under is None:
        return None
    if str(under) in _PART_OVER_LIMITS:
        return 422, _PART_OVER_LIMITS[str(under)]
    return 400, _one_line(f"the body is no multipart form the parser can read ({under}): send the fields as "
                          "multipart/form-data (curl -F field=value, -F photo=@photo.jpg)")


def not_json(problem: Exception) -> str:
    """The 400 for a body that is not JSON, said alike where FastAPI parses it (PATCH) and where POST /api/ask
    parses its own (which said "the body is not JSON" alone): what the parser stopped at."""
    if isinstance(problem, UnicodeDecodeError):
        detail = f"not UTF-8 at byte {problem.start}"
    elif isinstance(problem, RecursionError):
        detail = "nested deeper than the parser reads"
    elif isinstance(problem, json.JSONDecodeError):
        detail = f"{problem.msg} at character {problem.pos}"
    else:  # (a number past Python's 4300 digits)
        detail = str(problem)
    return _one_line(f"the body is not JSON ({detail})")


def _unread_json(exc: HTTPException) -> str | None:
    """What a JSON body FastAPI could not decode is said as (the README's 400 for a body that is no JSON): bytes
    that are not UTF-8, or arrays nested past what Python parses, were 400 "There was an error parsing the body",
    which did not say it was the JSON; None for any other 400."""
    return not_json(exc.__cause__) if isinstance(exc.__cause__, (UnicodeDecodeError, RecursionError)) else None


def fieldless(request: Request) -> str:
    """What a JSON route's body without any of its fields is told (422, for no body as for `{}`): a PATCH of `{}` was
    a 200 that changed nothing, one without a body 422 "the request has no body" that named no field."""
    fields = request.scope["route"].body_field.field_info.annotation.model_fields
    return f"{request.method} {request.url.path} takes a JSON object with any of {', '.join(fields)}; none was sent"


def _not_json(exc: RequestValidationError) -> bool:
    return bool(exc.errors()) and exc.errors()[0].get("type") == "json_invalid"


def _validation(exc: RequestValidationError) -> str:
    """The first problem of a request that does not fit the schema, in one line (a body that is not JSON is
    said so, where pydantic's "1: JSON decode error" named only the character it stopped at)."""
    first = exc.errors()[0] if exc.errors() else {}
    loc = first.get("loc", ())
    if _not_json(exc):
        at = f" at character {loc[-1]}" if len(loc) > 1 else ""
        return _one_line(f"the body is not JSON ({first.get('ctx', {}).get('error', 'invalid')}{at})")
    where = ".".join(str(p) for p in loc if p != "body")
    if first.get("type") == "value_error" and "Expected UploadFile" in first.get("msg", ""):
        # `curl -F photo=<bo.jpg` (its bytes as text) or a form's text: "Value error, Expected UploadFile,
        # received: <class 'str'>" was FastAPI's own words
        field = next((p for p in loc if isinstance(p, str) and p != "body"), "photo")
        return f"{field}: text, not a file: {_send_as_a_file(field)}"
    if first.get("type") == "missing":  # a form's `name=` is no field to FastAPI: "name: Field required" was said
        return f"{where}: empty or not sent"
    if first.get("type") == "string_type" and isinstance(first.get("input"), UploadFile):
        # `curl -F name=@x.jpg`: "name: Input should be a valid string" was pydantic's own words
        return f"{where}: a file, not text: send it as text (curl -F {where}=..., without '@')"
    return _one_line(f"{where or 'request'}: {first.get('msg', 'invalid')}")


def taken(route) -> set[str]:
    """The methods a route takes: HEAD with GET (routes.HeadToo)."""
    return route.methods | ({"HEAD"} if "GET" in route.methods else set())


def _methods_allowed(request: Request) -> list[str]:
    """Every method the path takes, of all its routes: Starlette's 405 gave the first route's alone, `Allow: GET` for
    a PUT to /api/concepts, which takes POST too."""
    return sorted({m for route in request.app.state.routes if route.matches(request.scope)[0] == Match.PARTIAL
                   for m in taken(route)})


#: A method the server answers though no route takes it: `OPTIONS *` (serve/targets.py).
ANSWERED = {"OPTIONS"}


def _not_implemented(request: Request) -> TextJSONResponse | None:
    """501 for a method no route of the server takes (RFC 9110 9.1: one it does not implement, PUT, TRACE or FOO,
    on any path), with `Allow` where the path is a route's; None for one it implements (a route that does not take it
    is 405). Each was 405, as if another route of the server took it, and FOO on a path no route has, 404."""
    implemented = ANSWERED | {m for route in request.app.state.routes for m in taken(route)}
    if request.method in implemented:
        return None
    allowed = _methods_allowed(request)
    where = f"this route takes {', '.join(allowed)}" if allowed else f"it implements {', '.join(sorted(implemented))}"
    return error(501, f"{request.method[:20]} {said_path(request)}: a method this server does not implement ({where})",
                 {"Allow": ", ".join(allowed)} if allowed else None)


def _without_slash(request: Request) -> str | None:
    """The path without its trailing '/', where a route takes that path: said with the 404 of the one sent. Matched
    as decoded, as the router matched it (`request.url.path` has a '?' encoded: `a%2Fb%3Fc/` was a bare 404)."""
    path = request.scope["path"]
    if len(path) < 2 or not path.endswith("/"):
        return None
    scope = {**request.scope, "path": path.rstrip("/")}
    taken = any(route.matches(scope)[0] != Match.NONE for route in request.app.state.routes)
    return said_path(request).rstrip("/") if taken else None


def install(app: FastAPI) -> None:
    """The handlers; `app.state.in_flight` says when the server is stopping: a request that fails then, on the
    household closed under it, is told so (503), with no traceback in the log."""
    in_flight, budget = app.state.in_flight, app.state.said  # (`said`: a route's words)
    # the form's parser logs each fault it raises ("edge-rap: Expected boundary character 45, ..." in serve's log,
    # naming no request): said by `http_problem` instead, with the method and route
    logging.getLogger("python_multipart").setLevel(logging.ERROR)

    def device_trouble(request: Request, exc: DeviceError):
        """The device's trouble, not the request's: 507 for a full disk, else 503; its paths stay on the device."""
        problem = for_client(exc, f"{request.method} {request.url.path}", budget, route_of(request))
        if in_flight.closing:  # (the household closed under it)
            return error(503, *shut_down())
        return error(507 if isinstance(exc, (DiskFullError, EventLogFull)) else 503, problem)

    @app.exception_handler(HTTPException)
    async def http_problem(request: Request, exc: HTTPException):
        if isinstance(exc.__cause__, OSError):  # FastAPI's 400 "error parsing the body": the parser's temporary
            # files could not be written (the disk full), which is no fault of the request
            writes = getattr(request.scope.get("route"), "name", None) not in READ_ONLY_ROUTES
            return device_trouble(request, temp_folder_error(exc.__cause__, writes=writes))
        if exc.status_code in (404, 405) and (unknown := _not_implemented(request)) is not None:
            return unknown
        if exc.status_code == 405 and (allowed := _methods_allowed(request)):
            return error(405, f"{request.method} {said_path(request)}: a method this route does not take (it takes "
                         f"{', '.join(allowed)})", {"Allow": ", ".join(allowed)})
        if exc.status_code == 404 and stray_slash(request.scope):
            return error(404, f"{request.method} {said_path(request)}: no such route (an encoded '/', %2F, is part of "
                              "its segment, not a separator)")
        if exc.status_code == 404 and (bare := _without_slash(request)):
            return error(404, f"{request.method} {said_path(request)}: no such route; without its trailing '/': {bare}")
        if exc.status_code == 400 and (said := _text_over_limit(exc.detail)):
            return error(422, said)
        if exc.status_code == 400 and (unparsed := _unparsed_form(exc)) is not None:
            budget.log(log, logging.WARNING, "unreadable form", "%s %s: %s", request.method, request.url.path,
                       unparsed[1])
            return error(*unparsed)
        if exc.status_code == 400 and (said := _unread_json(exc)):
            return error(400, said)
        return error(exc.status_code, _one_line(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "missing" and tuple(first.get("loc", ())) == ("body",):  # no body at all
            return error(422, fieldless(request))
        return error(400 if _not_json(exc) else 422, _validation(exc))

    @app.exception_handler(EdgeRapError)
    async def refused(request: Request, exc: EdgeRapError):
        if isinstance(exc, DeviceError):
            return device_trouble(request, exc)
        # a concept another writer (the CLI, a daemon) forgot, renamed or took the name of meanwhile: the same
        # status as when this server sees it first
        status = 404 if isinstance(exc, UnknownConceptError) else 409 if isinstance(exc, NameTakenError) else 422
        return error(getattr(exc, "status", status), _one_line(exc), getattr(exc, "headers", None),
                     getattr(exc, "extra", None))

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception):
        if in_flight.closing:
            log.warning("%s %s: cut short by the shutdown (%s)", request.method, request.url.path, exc)
            return error(503, *shut_down())
        budget.log(log, logging.ERROR, f"failed: {route_of(request)}", "%s %s failed", request.method,
                   request.url.path, exc_info=exc)
        return error(500, "internal error (the server's log has the details)")
