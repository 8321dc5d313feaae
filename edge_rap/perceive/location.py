"""Where a photo was taken (a phone's EXIF GPS, an editor's XMP), which the companion API does not hand out. A
stored photo is kept as it came (its sha256 names it, and a backup restores it byte for byte), so a phone's
photo keeps the household's address in it; the copy the API sends a phone app or a web page leaves it out."""

from __future__ import annotations

import io
import struct
from pathlib import Path

from edge_rap.perceive.images import _image_bytes, decode_image, past_bomb_limit, ready_pillow

_GPS_IFD = 0x8825
_ORIENTATION = 0x0112
_EXIF = b"Exif\x00\x00"
_APP1, _SOS, _EOI = 0xE1, 0xDA, 0xD9
_STANDALONE = {0x01, *range(0xD0, 0xD9)}  # TEM, RST0-7 and SOI: a marker with no length after it (T.81 B.1.1.3)
_BAD_EXIF = (OSError, ValueError, SyntaxError, struct.error, KeyError, IndexError, TypeError)  # what Pillow raises


def without_location(path: Path) -> tuple[bytes, str] | None:
    """A stored photo's bytes without its location, and their content type; None where it holds none (it is sent
    as stored). A JPEG keeps its pixels' bytes, its EXIF cut to the orientation; another format is sent as an
    image of its upright pixels (a HEIC with GPS: a browser may show no HEIC anyway)."""
    data = _image_bytes(path)
    if data.startswith(b"\xff\xd8"):
        kept = _jpeg_without_location(data)
        return None if kept is None else (kept, "image/jpeg")
    return _upright_without_location(data, str(path))


def _jpeg_without_location(data: bytes) -> bytes | None:
    """The JPEG with each APP1 segment that locates it (EXIF with GPS, XMP naming GPS) cut down or left out, or
    None where none does. A marker that has no length (a restart marker before the scan, which libjpeg and Pillow
    pass over) is passed over as two bytes: its next two were read as one, and the EXIF after them sent as stored.
    Only the segments before the scan are read: the compressed pixels follow unchanged, up to the picture's end;
    what a phone appends after it (an MPO's other pictures, a motion photo's video, each with its own metadata) is
    left out too."""
    out, pos, changed = [data[:2]], 2, False
    while (pos := _marker(data, pos)) + 4 <= len(data) and data[pos + 1] not in (_SOS, _EOI):
        end = pos + 2 + (0 if data[pos + 1] in _STANDALONE else int.from_bytes(data[pos + 2:pos + 4], "big"))
        segment = data[pos:end]
        if data[pos + 1] == _APP1:
            body = segment[4:]
            kept = _exif_without_gps(body) if body.startswith(_EXIF) else (b"" if b"GPS" in body else body)
            if kept is not body:
                segment = _app1(kept) if kept else b""
                changed = True
        out.append(segment)
        pos = end
    if not changed:
        return None
    end = data.find(b"\xff\xd9", pos)  # the first EOI: the compressed data escapes every 0xFF it holds
    return b"".join(out) + (data[pos:] if end < 0 else data[pos:end + 2])


def _marker(data: bytes, pos: int) -> int:
    """Where the next marker starts from `pos`: bytes between segments that are none (a writer's junk) and the 0xFF
    fill a marker may have before it are passed over, as libjpeg and Pillow pass over them (an EXIF with GPS after
    them is read by every viewer, and was sent as stored); the end of `data` where no marker follows."""
    while (pos := data.find(b"\xff", pos)) >= 0 and pos + 1 < len(data):
        if data[pos + 1] not in (0x00, 0xFF):
            return pos
        pos += 1
    return len(data)


def _exif_without_gps(body: bytes) -> bytes:
    """An APP1 EXIF body as it is where it has no GPS; else one of the orientation alone (b"" where it is upright
    as stored, or the EXIF cannot be read: then nothing of it is sent)."""
    from PIL import Image as PILImage

    exif = PILImage.Exif()
    try:
        exif.load(body)
        if not exif.get_ifd(_GPS_IFD):
            return body
        orientation = int(exif.get(_ORIENTATION, 1))
    except _BAD_EXIF:
        return b""
    if orientation == 1:
        return b""
    upright = PILImage.Exif()
    upright[_ORIENTATION] = orientation
    raw = upright.tobytes()
    return raw if raw.startswith(_EXIF) else _EXIF + raw


def _app1(body: bytes) -> bytes:
    return b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body


def _upright_without_location(data: bytes, source: str) -> tuple[bytes, str] | None:
    """A photo of another format as an image of its upright pixels where its EXIF or XMP locates it, else None: a
    PNG of a PNG; of any other (an iPhone's HEIC, a WebP) a JPEG at quality 95: a 12-megapixel HEIC's in 1.0 s
    and 4 MB, where its PNG took 5.5 s and 14 MB (48 megapixels: 3.1 s and 10 MB, 17.7 s and 36 MB; BENCHMARKS.md),
    made on the device at every view of the photo."""
    from PIL import Image as PILImage

    ready_pillow()
    try:
        pil = PILImage.open(io.BytesIO(data))
    except PILImage.DecompressionBombError as e:  # a header damaged since, or a bomb: said, as a thumbnail's would be
        raise past_bomb_limit(source, e) from None
    except (OSError, SyntaxError, ValueError):  # damaged since it was stored: there is nothing to read a place from
        return None
    with pil:
        try:
            located = bool(pil.getexif().get_ifd(_GPS_IFD))
        except _BAD_EXIF:
            located = True  # cannot tell: sent without it
        xmp = pil.info.get("xmp") or pil.info.get("XML:com.adobe.xmp") or b""
        located = located or b"GPS" in (xmp.encode() if isinstance(xmp, str) else xmp)
        side, lossless = max(pil.size), pil.format == "PNG"
    if not located:
        return None
    form, options = ("PNG", {}) if lossless else ("JPEG", {"quality": 95})
    out = io.BytesIO()
    PILImage.fromarray(decode_image(data, source, max_side=side).pixels).save(out, form, **options)
    return out.getvalue(), f"image/{form.lower()}"
