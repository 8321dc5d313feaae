"""The API's JSON: Starlette's JSONResponse (compact UTF-8, ensure_ascii=False), every string in it text."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from edge_rap.output import text_only


class TextJSONResponse(JSONResponse):
    """A byte of a name that is not UTF-8 (a memory under such an EDGE_RAP_HOME or model cache, named in an answer's
    note or an error) written `\\xff`, as `--json` writes it: its lone surrogate could not be encoded as UTF-8, and
    the request was a 500 (an SSE stream cut before its answer)."""

    def render(self, content: Any) -> bytes:
        return super().render(text_only(content))
