"""A file sent whole, whatever Range the request asks for."""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import FileResponse
from starlette.types import Receive, Scope, Send


class WholeFile(FileResponse):
    """Starlette's FileResponse answers a Range with 206, or with a text/plain 416 or 400 that no route's schema
    lists and that is not the `{"error": ...}` of every other error; a photo or snapshot is small, and one stripped
    of where it was taken was sent whole anyway. So every request gets the file, 200, and no Accept-Ranges."""

    def __init__(self, path: Path, media_type: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(path, media_type=media_type, headers=headers)
        del self.headers["accept-ranges"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"range", b"if-range")]
        await super().__call__({**scope, "headers": headers}, receive, send)
