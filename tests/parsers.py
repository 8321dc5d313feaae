"""Walking a command line's argparse parsers, for the tests of its `--help` texts."""

from __future__ import annotations

import argparse


def every_parser(parser, path: tuple[str, ...]):
    """(command path, parser) for the top level, each command and each subcommand (`models pull`)."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from every_parser(sub, (*path, name))


def unexplained(parsers) -> tuple[list[str], list[str]]:
    """(options and arguments without a help text, those whose default the help text leaves unsaid)."""
    bare, default_unsaid = [], []
    for path, parser in parsers:
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            where = f"{' '.join(path)} {(action.option_strings or [action.dest])[-1]}"
            if not action.help:
                bare.append(where)
            elif not (action.default in (None, "", argparse.SUPPRESS) or action.default is False) \
                    and "default" not in action.help:  # (`is False`: a default of 0 is one to say)
                default_unsaid.append(where)
    return bare, default_unsaid
