"""A stored photo's copy for the API leaves out where it was taken, however its JPEG lays out its segments."""

from __future__ import annotations

import io

import numpy as np
import pytest
from photos import photo
from PIL import Image

from edge_rap.perceive.location import without_location

GPS = {1: "N", 2: (52.0, 31.0, 12.34), 3: "E", 4: (13.0, 24.0, 5.6)}


def located_jpeg() -> bytes:
    """A phone's JPEG: JFIF, then an EXIF with GPS and the orientation of a photo stored on its side."""
    exif = Image.Exif()
    exif[0x0112], exif[0x8825] = 6, GPS
    out = io.BytesIO()
    Image.fromarray(photo("coffee")).save(out, "JPEG", exif=exif)
    return out.getvalue()


@pytest.mark.parametrize("between", [b"\xff", b"\xff\xff\xff", b"\x00\x00", b"\x00\xff\x00",
                                     b"\xff\xd0", b"\xff\xd7\xff\xd0"])
def test_an_exif_after_fill_junk_or_a_restart_marker_is_cut_too(tmp_path, between):
    """libjpeg and Pillow pass over the 0xFF fill a marker may have before it, bytes between segments that are no
    marker (a writer's junk), and a restart marker, which has no length, and read the EXIF after them: the copy
    sent kept its GPS (a restart marker's next two bytes were read as its length, and the EXIF skipped)."""
    data = located_jpeg()
    app1 = data.index(b"\xff\xe1")
    path = tmp_path / "phone.jpg"
    path.write_bytes(data[:app1] + between + data[app1:])
    assert Image.open(path).getexif().get_ifd(0x8825)  # (what a viewer reads from the stored file)
    sent, kind = without_location(path)
    shown = Image.open(io.BytesIO(sent))
    assert kind == "image/jpeg" and dict(shown.getexif()) == {0x0112: 6}  # still shown upright
    assert np.array_equal(np.asarray(shown), np.asarray(Image.open(path)))


def test_a_heic_with_gps_is_sent_as_an_upright_jpeg(tmp_path):
    """An iPhone's HEIC carries GPS by default: its copy was a PNG, 5.5 s and 14 MB for 12 megapixels (a JPEG at
    quality 95: 1.0 s and 4 MB), made anew at every view of the photo."""
    exif = Image.Exif()
    exif[0x0112], exif[0x8825] = 6, GPS
    path = tmp_path / "phone.heic"
    Image.fromarray(photo("coffee")).save(path, "HEIF", exif=exif.tobytes(), quality=90)
    sent, kind = without_location(path)
    shown = Image.open(io.BytesIO(sent))
    assert kind == "image/jpeg" and shown.format == "JPEG" and not shown.getexif().get_ifd(0x8825)
    upright = np.asarray(Image.fromarray(photo("coffee")).transpose(Image.Transpose.ROTATE_270), dtype=float)
    assert shown.size == photo("coffee").shape[:2] and np.abs(np.asarray(shown, dtype=float) - upright).mean() < 8


def test_a_photo_whose_header_claims_too_many_pixels_is_a_one_line_error_not_a_crash(tmp_path):
    """A stored PNG whose header was damaged since to claim 40000 x 40000 pixels: Pillow's bomb check raised its
    own error, which the API answered with a 500 instead of its one line (`cannot be read: ...`)."""
    import struct
    import zlib

    from edge_rap.errors import EdgeRapError

    out = io.BytesIO()
    Image.fromarray(photo("coffee")).save(out, "PNG")
    data = bytearray(out.getvalue())
    header = struct.pack(">II", 40000, 40000) + bytes(data[24:29])  # IHDR: width, height, then depth and the rest
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    path = tmp_path / "damaged.png"
    path.write_bytes(bytes(data))
    with pytest.raises(EdgeRapError, match="megapixels"):
        without_location(path)
