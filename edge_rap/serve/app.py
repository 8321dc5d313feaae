"""The API's application: the routes behind the guards (token, body limit, headers), the household page at /,
and the OpenAPI schema at /openapi.json (public: it holds no secret, and every /api route in it says it needs
the bearer token)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from edge_rap.household import Household
from edge_rap.serve import problems
from edge_rap.serve.api import ANSWERS, EVERY, TOKEN, Limits, build_router
from edge_rap.serve.drain import Drain, InFlight
from edge_rap.serve.guard import AttemptLimit, AuthGuard, BodyLimit, SecurityHeaders, is_public
from edge_rap.serve.hosts import HostGuard, HostNames, host_names
from edge_rap.serve.log_budget import LogBudget
from edge_rap.serve.request_lines import Answering
from edge_rap.serve.routes import HeadToo
from edge_rap.serve.targets import RequestTarget
from edge_rap.serve.token import TokenKeeper
from edge_rap.serve.whole_file import WholeFile

STATIC = Path(__file__).parent / "static"
#: The page's files, by the only names they are served under.
PAGE = {"/": ("index.html", "text/html"), "/app.js": ("app.js", "text/javascript"),
        "/style.css": ("style.css", "text/css")}


def create_app(home: Household, stats: Callable[[], dict] | None = None, limits: Limits = Limits(),
               attempts: AttemptLimit = AttemptLimit(), latest: Callable[[], tuple | None] | None = None,
               hosts: HostNames | None = None) -> FastAPI:
    """The API for one household. `stats` and `latest`, when a daemon runs in this process, give its figures for
    /api/stats and its `here` camera's newest recognised frame (image, recognition) for /api/ask without a photo.
    `hosts`: the names it answers under (serve/hosts.py; those of a server bound to loopback when None).
    `app.state.in_flight` counts the requests being answered, for the server's stop to wait for them;
    `app.state.stopping`, the household's, is set by that stop (a VLM answer under way ends at its next token);
    `app.state.said` rations the log lines its requests cause, the layers' under it too (serve/request_lines.py), and
    its server's refusals' (serve/log_budget.py)."""
    hosts = hosts or host_names()  # a bad EDGE_RAP_SERVE_HOSTS is one line before anything is opened
    # a path with a trailing '/' is 404 (problems.py says the path without), not Starlette's redirect (307): a client
    # that follows one sends its PATCH's or upload's body again, and curl, which does not, got an empty answer.
    # No default_response_class: a route with a response_model is written by its schema (pydantic, in Rust), as
    # FastAPI does only for its own default; TextJSONResponse as the default took 4 times as long over 10,000 events,
    # wrote 0.00001 as 1e-05 and a figure not a number as a 500, not null (those routes' text holds no stray byte)
    app = FastAPI(title="edge-rap", version="1", docs_url=None, redoc_url=None, openapi_url="/openapi.json",
                  redirect_slashes=False)
    app.state.in_flight = InFlight()
    app.state.stopping = home.stopping
    app.state.said = LogBudget()
    home.store  # opened now, once, rather than by the first requests at the same time
    problems.install(app)
    router = build_router(home, limits, app.state.in_flight, app.state.said, stats, latest)
    app.include_router(router)
    for route, (file, media) in PAGE.items():
        app.router.add_api_route(route, _page_file(STATIC / file, media), methods=["GET"], include_in_schema=False,
                                 route_class_override=HeadToo)
    app.openapi = lambda: _schema(app, router)
    # each route by itself, with its methods, for a 405's Allow (FastAPI keeps an included router's apart)
    app.state.routes = [r for r in (*app.router.routes, *router.routes) if getattr(r, "methods", None)]
    app.add_middleware(BodyLimit, limit=limits.body_bytes, fields=limits.fields_bytes)
    app.add_middleware(AuthGuard, tokens=TokenKeeper(home.root), limit=attempts)
    # every request that reaches the household counted; one of a bad target or Host is said so first, stopping or not
    # (a 503 "try again" to a name the device does not answer to, or a target it never takes, would be tried again)
    app.add_middleware(Drain, in_flight=app.state.in_flight)
    app.add_middleware(HostGuard, names=hosts)  # before the token: a rebinding page's guesses lock no one out
    app.add_middleware(SecurityHeaders)
    # outside the others: they judge the path and Host an absolute-form target gives
    app.add_middleware(RequestTarget, methods={m for route in app.state.routes for m in problems.taken(route)},
                       hosts=hosts)
    app.add_middleware(Answering, said=app.state.said)  # outermost: every line said under a request is rationed
    return app


def _page_file(path: Path, media: str):
    def page() -> WholeFile:
        return WholeFile(path, media_type=media, headers={"Cache-Control": "no-cache"})

    return page


def _schema(app: FastAPI, router: APIRouter) -> dict:
    """FastAPI's schema with the bearer token declared on every /api operation but the public ones, and each
    operation's error statuses those its route answers (api.ANSWERS), not every one any route does."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        names = {(r.path_format, m.lower()): r.name for r in router.routes if isinstance(r, APIRoute)
                 for m in r.methods}
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                answered = {*EVERY, *ANSWERS[names[path, method]], *(() if is_public(path) else TOKEN)}
                operation["responses"] = {code: said for code, said in operation["responses"].items()
                                          if int(code) < 400 or int(code) == 507 or int(code) in answered}
                if not is_public(path):
                    operation["security"] = [{"bearer": []}]
        app.openapi_schema = schema
    return app.openapi_schema
