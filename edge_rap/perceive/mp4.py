"""Why an MP4 or MOV file (ISO-BMFF, what phones record) cannot be opened as a video, read from its boxes.

OpenCV only says that it could not open the file; the two reasons a household meets most are a recording cut
short before its index (moov) was written, as a phone or camera that stopped, or a copy that did, leaves it, and
a file with sound alone (a voice memo, an .m4a)."""

from __future__ import annotations

import struct
from pathlib import Path

#: The largest index (moov box) read to look for a video track; a phone's is some hundred kilobytes.
MAX_INDEX_BYTES = 64 * 1024 * 1024


def _top_boxes(f) -> dict[bytes, tuple[int, int]]:
    """The file's top-level boxes: type -> (offset of its content, its length), the first of each type."""
    boxes: dict[bytes, tuple[int, int]] = {}
    offset = 0
    while header := f.read(8):
        if len(header) < 8:
            break
        size, kind = struct.unpack(">I4s", header)
        start = offset + 8
        if size == 1:  # a 64-bit size follows
            wide = f.read(8)
            if len(wide) < 8:
                break
            size, start = struct.unpack(">Q", wide)[0], start + 8
        elif size == 0:  # to the end of the file
            boxes.setdefault(kind, (start, -1))
            break
        if size < start - offset:
            break
        boxes.setdefault(kind, (start, size - (start - offset)))
        offset += size
        f.seek(offset)
    return boxes


def track_kinds(index: bytes) -> set[bytes]:
    """The kinds of the tracks an index holds: each track's `hdlr` box names it (vide, soun, text, meta...)."""
    kinds, at = set(), index.find(b"hdlr")
    while at >= 0:
        kinds.add(index[at + 12:at + 16])  # after the type: version and flags, pre_defined, then handler_type
        at = index.find(b"hdlr", at + 4)
    return kinds


def unopenable_reason(path: str | Path) -> str | None:
    """Why an MP4/MOV file cannot be read as a video, in words a user can act on; None where its boxes say
    nothing (not such a file, or one that looks whole)."""
    try:
        with open(path, "rb") as f:
            if f.read(8)[4:8] != b"ftyp":
                return None
            f.seek(0)
            boxes = _top_boxes(f)
            if b"moov" not in boxes:
                return ("an MP4/MOV file without its index (the moov box): a recording not finished (stopped, or "
                        "still being written) or a copy cut short; copy it again once it is whole")
            start, length = boxes[b"moov"]
            if not 0 < length <= MAX_INDEX_BYTES:
                return None
            f.seek(start)
            kinds = track_kinds(f.read(length))
    except OSError:
        return None
    if kinds and b"vide" not in kinds:
        return "a file with no video track" + (" (sound only)" if b"soun" in kinds else "")
    return None
