"""A PNG's packed chunks (colour profile, compressed text) weighed before Pillow opens it.

Pillow unpacks every iCCP, zTXt and compressed iTXt chunk as it reads a PNG's header, each up to the limit
`ready_pillow` sets (64 MB), and counts only some towards its total for text (an iCCP, a zTXt without a key, an iTXt
that is no UTF-8 not at all): an upload of 5 MB of such chunks, 64 MB of zeros each, cost half a minute of CPU before
its pixels were looked at. Here all of them together may unpack to no more than Pillow's total for text, found by
unpacking them once, in pieces, and stopping at that total: what Pillow then unpacks is bounded by it too.
"""

from __future__ import annotations

import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PIECE = 1 << 20


def overpacked(data: bytes) -> str | None:
    """Why the PNG `data` is not opened (its packed chunks unpack to more than Pillow's total for a PNG's text,
    MAX_TEXT_MEMORY, which all the text of a photo an editor wrote, XMP and its history, stays within), or None."""
    from PIL import PngImagePlugin

    limit = PngImagePlugin.MAX_TEXT_MEMORY
    if not unpacks_past(data, limit):
        return None
    return f"its colour profile and compressed text unpack to over {limit >> 20} MB (a PNG's limit); not read"


def unpacks_past(data: bytes, limit: int) -> bool:
    """Whether the packed chunks of the PNG `data` (anywhere in it: Pillow reads those after the pixels too) unpack
    to more than `limit` bytes in all; False for any other data, and where the chunks end early (Pillow says so)."""
    if not data.startswith(PNG_SIGNATURE):
        return False
    view, pos, left = memoryview(data), len(PNG_SIGNATURE), limit
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        start, pos = pos + 8, pos + 12 + length
        packed = _packed(data, kind, start, min(start + length, len(data)))
        if packed is not None:
            left -= _unpacked_size(view[packed:start + length], left + 1)
            if left < 0:
                return True
    return False


def _packed(data: bytes, kind: bytes, start: int, end: int) -> int | None:
    """Where the zlib stream of a chunk Pillow unpacks begins: after a name and its NUL, and the method byte (and,
    in an iTXt, the compression flag, method, language and translated keyword); None for any other chunk."""
    if kind not in (b"iCCP", b"zTXt", b"iTXt") or (name_end := data.find(b"\0", start, end)) < 0:
        return None
    if kind != b"iTXt":
        return name_end + 2
    if name_end + 3 > end or data[name_end + 1] == 0 or data[name_end + 2] != 0:
        return None  # (not compressed: nothing unpacked)
    language_end = data.find(b"\0", name_end + 3, end)
    keyword_end = data.find(b"\0", language_end + 1, end) if language_end >= 0 else -1
    return keyword_end + 1 if keyword_end >= 0 else None


def _unpacked_size(stream: memoryview, most: int) -> int:
    """How many bytes `stream` unpacks to, counted up to `most` (a piece at a time: never held whole); a damaged
    stream counts what came out of it before the damage."""
    unpacker, size = zlib.decompressobj(), 0
    try:
        while stream and size < most:
            size += len(unpacker.decompress(stream, min(_PIECE, most - size)))
            stream = memoryview(unpacker.unconsumed_tail)
            if unpacker.eof:
                break
    except zlib.error:
        pass
    return size
