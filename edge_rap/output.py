"""The command line's stdout, guarded: a write it cannot take (a full disk, an I/O error) is told apart from an
OSError of the command's own (its memory's disk, a model file), so the CLI can say it in one line."""

from __future__ import annotations

import codecs
import json
import re
from contextlib import contextmanager
from typing import Any, Iterator, TextIO


class OutputError(OSError):
    """stdout cannot take the output. An OSError still, so code that already survives a failed report of its
    own (the daemon's last events) goes on as before."""


@contextmanager
def _guard() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        raise  # a reader that left (`| head`): the CLI stops quietly on it, as other tools do
    except OSError as e:
        raise OutputError(e.errno, e.strerror or str(e)) from e


class GuardedOutput:
    """`stream` whose failed writes and flushes raise OutputError; everything else is the stream's own."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        with _guard():
            return self._stream.write(text)

    def flush(self) -> None:
        with _guard():
            self._stream.flush()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


#: A code point that is half of a UTF-16 pair: in a Python string, never a character of any text, but a byte of a
#: file name that is not UTF-8 (U+DC80-U+DCFF, as Python decodes such a name) or of a terminal in another encoding.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _as_escape(m: re.Match) -> str:
    code = ord(m[0])
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


#: In a repr: an escaped backslash (kept as it is) or a byte of a name that is not UTF-8 as repr writes it.
_REPR_BYTE = re.compile(r"\\\\|\\udc([89a-f][0-9a-f])")


def quoted(value: object) -> str:
    """repr(value) (a string quoted, its control characters escaped), but a byte of a name that is not UTF-8
    written `\\xff`, as `--json` writes it (json_line), not repr's `\\udcff`: a user sees one form."""
    return _REPR_BYTE.sub(lambda m: m[0] if m[1] is None else f"\\x{m[1]}", repr(value))


def shown(text: str) -> str:
    """A name or path from a file the user was given, as printed: as it is where every character prints, else
    quoted (`quoted`), so that it stays on its line and cannot send the terminal escape sequences or turn the text
    around (a RAP database's "<bo\\n>", "\\x1b[2J", "\\u202e")."""
    return text if text.isprintable() else quoted(text)


def _escape_bytes(error: UnicodeError) -> tuple[str, int]:
    """The streams' error handler: a byte of a name that is not UTF-8 written `\\xff`, as in `--json`; any other
    character the stream's encoding lacks (a Latin-1 console's "Zoë" is fine, an ASCII one's is not) as
    backslashreplace writes it."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    bad = _SURROGATE.sub(_as_escape, error.object[error.start:error.end])
    return bad.encode("ascii", "backslashreplace").decode("ascii"), error.end


#: The name of _escape_bytes as an error handler for TextIOWrapper.reconfigure(errors=...).
ESCAPE_BYTES = "edge_rap.escape_bytes"
codecs.register_error(ESCAPE_BYTES, _escape_bytes)


def text_only(value: Any) -> Any:
    """`value` with a byte of a name that is not UTF-8, in any string in it, written `\\xff` (json_line); every other
    character kept, control characters and line breaks too (JSON escapes them)."""
    if isinstance(value, str):
        return _SURROGATE.sub(_as_escape, value)
    if isinstance(value, dict):
        return {text_only(k): text_only(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [text_only(v) for v in value]
    return value


#: What json.dumps writes for a surrogate (a lone one, or half of a pair it writes for a character past U+FFFF), or
#: for a backslash before "ud8"-"udf": where its text has none, no string in the value held a surrogate.
_DUMPED_SURROGATE = re.compile(r"\\ud[89a-f]")


def json_line(value: Any) -> str:
    """`value` as one line of JSON for a `--json` output, every string in it text: a byte of a name that is not UTF-8
    is written as the four characters `\\xff` (its value in hex; any other surrogate as `\\udXXX`). json.dumps
    wrote it as the lone surrogate `"\\udcff"`, which I-JSON (RFC 7493) forbids: jq and Go read it as U+FFFD, losing
    which byte it was, and strict parsers (Rust's serde_json) refuse the line. The value is copied by text_only only
    where a string in it holds a surrogate: the copy took two thirds of `events --json`'s time. An emoji (past
    U+FFFF) dumps as a pair of `\\ud...` escapes, as two surrogates in a string do, which text_only rewrites: the dump
    without escapes, which writes every code point as it is, tells them apart, at a third of the copy's cost."""
    text = json.dumps(value)
    if _DUMPED_SURROGATE.search(text) and _SURROGATE.search(json.dumps(value, ensure_ascii=False)):
        return json.dumps(text_only(value))
    return text
