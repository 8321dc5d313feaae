"""The API's JSON: Starlette's JSONResponse (compact UTF-8, ensure_ascii=False), every string in it text."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from edge_rap.output import text_only


class TextJSONResponse(JSONResponse):
    """A byte of a name that is not UTF-8 (a memory under such an EDGE_RAP_HOME or model cache, named in an answer's
    note or an error) written `\\xff`, as `--json` writes it: its lone surrogate could not be encoded as UTF-8, and
    the request was a 500 (an SSE stream cut before its answer). That is all `text_only` changes, and nothing a client
    needs is lost by it: every character of text, a control character, the line breaks of a VLM's answer, an older
    memory's name with U+2028, is written as JSON writes it and read back the same; a lone surrogate is no character
    (no concept's name or description holds one: store.validate_name, memory.clean_text), only a byte of a path, which
    a client can but show (I-JSON forbids its escape, which strict parsers refuse, and U+FFFD would lose the byte)."""

    def render(self, content: Any) -> bytes:
        return super().render(text_only(content))


#: The characters besides CR and LF that a line splitter ends a line at (Python's str.splitlines, so httpx's
#: `iter_lines`) which JSON leaves raw in a string (it escapes those under U+0020): NEL, U+2028 and U+2029.
_LINE_ENDS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def sse_event(kind: str, data: Any) -> str:
    """One Server-Sent Event, `data` as TextJSONResponse writes it, its line one for any client: a VLM's U+2028 (or
    an older memory's name with one) written raw split it under httpx's `iter_lines`, and the client's json.loads
    failed on both halves. JSON's escape of the character reads back the same; such a character is in a string, the
    only place JSON's text holds one."""
    return f"event: {kind}\ndata: {TextJSONResponse(data).body.decode().translate(_LINE_ENDS)}\n\n"
