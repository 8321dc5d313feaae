"""A small matrix/TRC ICC profile built in the test, for photos tagged with a colour space other than sRGB
(Pillow creates only sRGB, Lab and XYZ profiles itself)."""

from __future__ import annotations

import struct

#: Display P3's colorants adapted to D50, as Apple's profile gives them: the colour space of iPhone photos.
DISPLAY_P3 = ((0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419), (0.1571, 0.0666, 0.7841))
_D50 = (0.9642, 1.0, 0.8249)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def _desc(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return (b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text + b"\0" * 8
            + b"\0\0\0" + b"\0" * 67)


def rgb_profile(colorants=DISPLAY_P3, gamma: float = 2.2, name: str = "Test P3") -> bytes:
    """An ICC v2 display profile: three colorants (D50 XYZ of red, green, blue) and one gamma curve."""
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"
    tags = [(b"desc", _desc(name)), (b"wtpt", _xyz(*_D50)), (b"rXYZ", _xyz(*colorants[0])),
            (b"gXYZ", _xyz(*colorants[1])), (b"bXYZ", _xyz(*colorants[2])), (b"rTRC", curve), (b"gTRC", curve),
            (b"bTRC", curve), (b"cprt", b"text\0\0\0\0none\0\0\0\0")]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ " + b"\0" * 12 + b"acsp"
              + b"\0" * 24 + struct.pack(">I", 0) + _s15(_D50[0]) + _s15(_D50[1]) + _s15(_D50[2]) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body
