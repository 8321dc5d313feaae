"""Pixels in sRGB: a photo tagged with another colour space is converted before anything looks at it.

iPhones tag their photos Display P3, cameras often Adobe RGB, print files carry CMYK profiles; HEIF photos may
give their colour space as an `nclx` box (primaries and a transfer curve) instead of a profile.
Their numbers read as sRGB look washed out (P3, Adobe RGB) or wrong altogether (CMYK), while a camera's frames
and the embedder's training photos are sRGB: the same mug would be seen in other colours in its reference photo
and in the kitchen. A photo that is sRGB already (most JPEGs carry its profile) changes nothing, bit for bit."""

from __future__ import annotations

import functools
import io
import logging
import struct

import numpy as np

log = logging.getLogger(__name__)

#: Modes whose profile littlecms applies here; a profile on any other mode is left alone.
_CONVERTIBLE = {"RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB"}
#: A grid of colours: a profile that maps every one of them to within this many levels of itself is sRGB.
_SAME_LEVELS = 2
#: Profiles up to this size are kept with their transform (a camera's or a phone's: a few hundred bytes; a printer's
#: tables: a few MB); a larger one, which a PNG of 60 KB may unpack to (Pillow reads 64 MB), is built for its photo
#: alone: kept as the cache's key, eight uploads of it held 480 MB of the server's memory.
_CACHED_PROFILE_BYTES = 4 * 2**20

#: CIE xy of red, green and blue, and of the white point (D65), of colour spaces photos come in.
SRGB_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
DISPLAY_P3_PRIMARIES = ((0.68, 0.32), (0.265, 0.69), (0.15, 0.06))
D65 = (0.3127, 0.3290)
#: The sRGB transfer curve as ICC's parametric curve of type 3: (g, a, b, c, d).
SRGB_CURVE = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
#: nclx transfer characteristics (ISO/IEC 23091-2) whose pictures are shown through the sRGB curve: sRGB itself
#: and the BT.709 family (1, 6, 14, 15), as browsers show them. PQ and HLG (HDR) are left as they are.
_SRGB_LIKE_TRANSFERS = {1, 6, 13, 14, 15}
#: nclx colour primaries that are sRGB's (1) or unspecified (2): nothing to convert.
_SRGB_PRIMARY_CODES = {1, 2}
_D50_XYZ = (0.9642, 1.0, 0.8249)
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def to_srgb(pil):
    """The picture in sRGB: converted through its embedded ICC profile, or the colour space its `nclx` box names,
    where that is not sRGB; as it was where it has neither, an sRGB one, or one that cannot be read (a damaged
    profile is no reason to refuse the photo)."""
    profile = pil.info.get("icc_profile") or _nclx_profile(pil.info.get("nclx_profile"))
    out_mode = _CONVERTIBLE.get(pil.mode)
    if not profile or out_mode is None:
        return pil
    profile = bytes(profile)
    build = _transform if len(profile) <= _CACHED_PROFILE_BYTES else _transform.__wrapped__
    transform = build(profile, pil.mode, out_mode)
    if transform is None:
        return pil
    converted = transform.apply(pil)
    converted.info = {k: v for k, v in pil.info.items() if k not in ("icc_profile", "nclx_profile")}
    return converted


def _nclx_profile(nclx) -> bytes | None:
    """An ICC profile for the colour space a HEIF photo's `nclx` box gives (pillow-heif reads it with
    the primaries' xy), or None where it is sRGB's, unspecified or not one this converts."""
    if not isinstance(nclx, dict) or nclx.get("color_primaries") in _SRGB_PRIMARY_CODES \
            or nclx.get("transfer_characteristics") not in _SRGB_LIKE_TRANSFERS:
        return None
    try:
        primaries = tuple((float(nclx[f"color_primary_{c}_x"]), float(nclx[f"color_primary_{c}_y"]))
                          for c in ("red", "green", "blue"))
        white = (float(nclx["color_primary_white_x"]), float(nclx["color_primary_white_y"]))
        return display_profile(primaries, white, SRGB_CURVE)
    except (KeyError, TypeError, ValueError, ArithmeticError, np.linalg.LinAlgError):  # (a y of 0: no colour)
        return None


def display_profile(primaries, white=D65, curve: tuple[float, ...] = SRGB_CURVE, name: str = "edge-rap RGB") -> bytes:
    """An ICC v2 display profile (matrix and curves): the xy of red, green and blue, the white's xy, and one
    transfer curve for the three, ICC's parametric curve (g,) for a pure gamma or (g, a, b, c, d)."""
    colorants = _d50_colorants(primaries, white)
    curve_type = {1: 0, 5: 3}[len(curve)]
    curve_tag = b"para\0\0\0\0" + struct.pack(">HH", curve_type, 0) + b"".join(_s15(v) for v in curve)
    tags = [(b"desc", _text_description(name)), (b"wtpt", _xyz(*_D50_XYZ)), (b"rXYZ", _xyz(*colorants[:, 0])),
            (b"gXYZ", _xyz(*colorants[:, 1])), (b"bXYZ", _xyz(*colorants[:, 2])), (b"rTRC", curve_tag),
            (b"gTRC", curve_tag), (b"bTRC", curve_tag), (b"cprt", b"text\0\0\0\0none\0\0\0\0")]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    header = (struct.pack(">I", offset + len(body)) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ "
              + b"\0" * 12 + b"acsp" + b"\0" * 28 + b"".join(_s15(v) for v in _D50_XYZ) + b"\0" * 48)
    return header + struct.pack(">I", len(tags)) + table + body


def _d50_colorants(primaries, white) -> np.ndarray:
    """The XYZ of full red, green and blue (columns), adapted from the space's white to D50 (Bradford), as ICC
    profiles give them."""
    def xyz(x: float, y: float) -> np.ndarray:
        return np.array([x / y, 1.0, (1 - x - y) / y])

    corners = np.stack([xyz(*p) for p in primaries], axis=1)
    white_xyz = xyz(*white)
    to_xyz = corners * np.linalg.solve(corners, white_xyz)
    cone_ratio = (_BRADFORD @ np.array(_D50_XYZ)) / (_BRADFORD @ white_xyz)
    return np.linalg.inv(_BRADFORD) @ np.diag(cone_ratio) @ _BRADFORD @ to_xyz


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(float(value) * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(x) + _s15(y) + _s15(z)


def _text_description(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text + b"\0" * 78


@functools.cache
def _no_littlecms(error: str) -> None:
    """Said once: Pillow built without littlecms (some distributions' builds) reads photos as stored, as before
    there was any conversion, rather than refusing every tagged one (most JPEGs carry an sRGB profile)."""
    log.warning("colour profiles are not converted to sRGB: Pillow has no littlecms (%s)", error)


@functools.lru_cache(maxsize=8)
def _transform(profile: bytes, in_mode: str, out_mode: str):
    """littlecms's transform from this profile to sRGB, or None where the profile is sRGB or unusable.
    Cached: a camera or a phone tags every photo with the same few profiles (a large one is not: to_srgb)."""
    from PIL import Image as PILImage

    try:
        from PIL import ImageCms  # (Pillow 10+ imports it without littlecms, and fails at its first use)

        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        transform = ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), in_mode, out_mode,
                                            renderingIntent=ImageCms.Intent.PERCEPTUAL)
    except ImportError as e:
        _no_littlecms(str(e))
        return None
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None
    if in_mode in ("RGB", "RGBA"):
        levels = np.linspace(0, 255, 6, dtype=np.uint8)
        grid = np.stack(np.meshgrid(levels, levels, levels), axis=-1).reshape(1, -1, 3)
        if in_mode == "RGBA":
            grid = np.concatenate([grid, np.full(grid.shape[:2] + (1,), 255, np.uint8)], axis=-1)
        try:
            mapped = np.asarray(transform.apply(PILImage.fromarray(grid, in_mode)))
        except (ImageCms.PyCMSError, ValueError):
            return None
        if int(np.abs(mapped[..., :3].astype(np.int16) - grid[..., :3]).max()) <= _SAME_LEVELS:
            return None
    return transform
