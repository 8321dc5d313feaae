"""README.md and docs/ against the code they describe: a route or an option added, renamed or dropped on one side
and not the other fails here, rather than sending a new user to a flag that is not there."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from edge_rap.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: A command as the docs show it, up to where a code span, a line, a comment or a shell's next command ends it.
COMMAND_END = r"[^`\n|;#&]*"


def _text(path: Path) -> str:
    return re.sub(r"\\\n\s*", " ", path.read_text(encoding="utf-8"))  # a command continued over lines is one


def _flags(args: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", args))


def _options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option a parser or its subcommands' parsers take (`models pull`'s under `models`)."""
    found: set[str] = set()
    for action in parser._actions:
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _options(sub)
    return found


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def documented_cli_flags() -> list[tuple[str, str, str]]:
    """(document, command, option) for every `--option` the docs give an `edge-rap COMMAND`."""
    found = []
    pattern = re.compile(r"edge-rap((?:\s+--?[\w-]+(?:\s+[^\s`-][^\s`]*)?)*)\s+([a-z][a-z-]*)(" + COMMAND_END + ")")
    commands = _commands()
    for path in DOCS:
        for m in pattern.finditer(_text(path)):
            if m.group(2) in commands:
                found += [(path.name, m.group(2), f) for f in sorted(_flags(m.group(1) + m.group(3)))]
    return found


def test_every_option_the_docs_give_a_command_is_one_it_takes():
    commands = _commands()
    top = _options(build_parser())
    shown = documented_cli_flags()
    assert len({(c, f) for _, c, f in shown}) > 50  # the pattern still finds the docs' commands
    wrong = [(doc, command, flag) for doc, command, flag in shown
             if flag not in _options(commands[command]) | top]
    assert not wrong


def documented_tool_flags() -> list[tuple[str, str, str]]:
    """(document, tool, option) for every `--option` the docs give a `tools/NAME.py`: a tool that runs another
    command (`tools/avx2_only.py .venv/bin/python ...`) has that command's options left to it."""
    found = []
    for path in DOCS:
        for m in re.finditer(r"tools/([a-z0-9_]+)\.py(" + COMMAND_END + ")", _text(path)):
            own = re.split(r"\s(?:\S*python\S*|\S+\.py)\b", m.group(2))[0]
            found += [(path.name, m.group(1), f) for f in sorted(_flags(own))]
    return found


def test_every_option_the_docs_give_a_tool_is_one_it_takes():
    shown = documented_tool_flags()
    assert {"bench_localize", "bench_retrieval", "companion"} <= {tool for _, tool, _ in shown}
    wrong = [(doc, tool, flag) for doc, tool, flag in shown
             if f'"{flag}"' not in (ROOT / "tools" / f"{tool}.py").read_text(encoding="utf-8")]
    assert not wrong


def _route(method: str, path: str) -> tuple[str, str]:
    """A route with its parameters unnamed: `{name}` in the code, `NAME` in the docs."""
    return method, re.sub(r"\{[^}]+\}|(?<=/)[A-Z]+(?=/|$)", "{}", path)


def test_the_readme_lists_every_api_route_and_no_other(tmp_path):
    pytest.importorskip("fastapi")
    from edge_rap.household import Household
    from edge_rap.serve.app import create_app
    from serve_support import fake_settings

    with Household(fake_settings(tmp_path)) as home:
        paths = create_app(home).openapi()["paths"]  # the schema's: every /api route, never the page's
        served = {_route(method.upper(), path) for path, methods in paths.items() for method in methods}
    listed = {_route(*m.groups()) for m in re.finditer(r"^(GET|POST|PATCH|PUT|DELETE) +(/api/\S+)",
                                                        (ROOT / "README.md").read_text(encoding="utf-8"), re.M)}
    assert served and listed == served


def test_the_schema_lists_the_statuses_the_readme_says_a_route_answers(tmp_path):
    """A client made from /openapi.json knew neither 421 nor 503, which the README says any route may answer (a host
    name it does not answer to; the device busy or its memory gone), nor 507 where a write or an upload meets a full
    disk: POST /api/concepts answered it, the schema listed it for the backup routes alone."""
    pytest.importorskip("fastapi")
    from edge_rap.household import Household
    from edge_rap.serve.app import create_app
    from serve_support import fake_settings

    with Household(fake_settings(tmp_path)) as home:
        paths = create_app(home).openapi()["paths"]
    statuses = {(method.upper(), path): set(op["responses"])
                for path, ops in paths.items() for method, op in ops.items()}
    assert all({"421", "503"} <= listed for listed in statuses.values()), statuses
    writes = {("POST", "/api/concepts"), ("PATCH", "/api/concepts/{name}"), ("DELETE", "/api/concepts/{name}"),
              ("POST", "/api/concepts/{name}/photos"), ("POST", "/api/recognize"), ("POST", "/api/ask"),
              ("GET", "/api/backup"), ("POST", "/api/backup/link"), ("GET", "/api/events"),
              ("GET", "/api/events/{event_id}/snapshot")}  # (the events': an event log not made yet, started)
    assert {route for route, listed in statuses.items() if "507" in listed} == writes
    # the README's "nothing was changed" only where the route writes: the schema said it of recognize and ask too
    said = {route: paths[route[1]][route[0].lower()]["responses"]["507"]["description"] for route in writes}
    change_the_memory = {("POST", "/api/concepts"), ("PATCH", "/api/concepts/{name}"),
                         ("DELETE", "/api/concepts/{name}"), ("POST", "/api/concepts/{name}/photos")}
    assert {route for route, text in said.items() if "nothing was changed" in text} == change_the_memory, said


def test_the_schema_lists_for_each_route_the_statuses_it_answers_not_every_routes(tmp_path):
    """Every status was listed on every route: a client made from the schema was told of a 409 from /api/health, a
    401 from the public download link and a 415 from GET /api/stats."""
    pytest.importorskip("fastapi")
    from edge_rap.household import Household
    from edge_rap.serve.app import create_app
    from edge_rap.serve.guard import is_public
    from serve_support import fake_settings

    with Household(fake_settings(tmp_path)) as home:
        paths = create_app(home).openapi()["paths"]
    statuses = {(method.upper(), path): {int(code) for code in op["responses"]}
                for path, ops in paths.items() for method, op in ops.items()}
    takes_a_body = {route for route in statuses if route[0] in ("POST", "PATCH") and "backup" not in route[1]}
    assert {route for route, listed in statuses.items() if 415 in listed} == takes_a_body
    assert {route for route, listed in statuses.items() if 409 in listed} == \
        {("POST", "/api/concepts"), ("PATCH", "/api/concepts/{name}")}
    assert {route for route, listed in statuses.items() if 401 in listed} == \
        {route for route in statuses if not is_public(route[1])}
    assert not {404} & (statuses["GET", "/api/health"] | statuses["GET", "/api/stats"] | statuses["POST", "/api/ask"])
    assert all({400, 413, 421, 422, 503} <= listed for listed in statuses.values()), statuses
