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


def required_arguments(parser) -> list[str]:
    """Placeholders for what `parser` requires (a choice's first; a required command's first, with its own), so
    that an option can be parsed beside them."""
    argv: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            if action.required:
                name, sub = next(iter(action.choices.items()))
                argv += [name, *required_arguments(sub)]
        elif action.option_strings:
            argv += [action.option_strings[-1], "x"] if action.required else []
        elif action.nargs not in ("?", "*"):
            argv.append(next(iter(action.choices)) if action.choices else "x")
    return argv


def abbreviations_taken(parsers) -> list[str]:
    """Each parser's long options that an abbreviation (the name less its last letter) reaches: a script's
    `--verb` that a new `--verbatim` later makes ambiguous, or turns into another option."""
    taken = []
    for path, parser in parsers:
        names = {s for action in parser._actions for s in action.option_strings}
        for name in sorted(n for n in names if n.startswith("--") and len(n) > 4 and n != "--help"):
            if name[:-1] in names:
                continue
            try:
                _, unknown = parser.parse_known_args([name[:-1], *required_arguments(parser)])
            except SystemExit:
                unknown = []
            if unknown != [name[:-1]]:
                taken.append(f"{' '.join(path)} {name[:-1]}")
    return taken
