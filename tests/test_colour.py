"""Photos tagged with a colour profile are read in sRGB, as a camera's frames are."""

from __future__ import annotations

import io

import numpy as np
import pytest

from edge_rap.perceive.colour import DISPLAY_P3_PRIMARIES, SRGB_PRIMARIES, display_profile
from edge_rap.perceive.images import decode_image

#: The D50 colorants (columns: red, green, blue) of Apple's Display P3 profile and of littlecms's sRGB.
DISPLAY_P3_D50 = np.array([(0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419), (0.1571, 0.0666, 0.7841)]).T
SRGB_D50 = np.array([(0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)]).T
COLOURS = [(200, 100, 50), (40, 160, 90), (90, 60, 210), (128, 128, 128), (250, 240, 20)]


def expected_srgb(rgb) -> np.ndarray:
    """The colorimetry by hand: Display P3's curve (sRGB's) and colorants to XYZ, then sRGB's inverse."""
    encoded = np.asarray(rgb, float) / 255
    linear = np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)
    srgb = np.clip(np.linalg.solve(SRGB_D50, DISPLAY_P3_D50 @ linear), 0, 1)
    curved = np.where(srgb <= 0.0031308, 12.92 * srgb, 1.055 * srgb ** (1 / 2.4) - 0.055)
    return np.rint(curved * 255)


def p3_profile() -> bytes:
    return display_profile(DISPLAY_P3_PRIMARIES)


def encoded(pixels: np.ndarray, mode: str, fmt: str, profile: bytes | None) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    extra = {"icc_profile": profile} if profile is not None else {}
    Image.fromarray(pixels, mode).save(out, fmt, **({"quality": 95} if fmt == "JPEG" else {}), **extra)
    return out.getvalue()


def patches(mode: str = "RGB") -> np.ndarray:
    pixels = np.zeros((16, 16 * len(COLOURS), len(mode)), np.uint8)
    for i, colour in enumerate(COLOURS):
        pixels[:, 16 * i:16 * (i + 1), :3] = colour
    if mode == "RGBA":
        pixels[..., 3] = 255
    return pixels


@pytest.mark.parametrize("mode, fmt", [("RGB", "PNG"), ("RGB", "JPEG"), ("RGBA", "PNG"), ("RGB", "HEIF")])
def test_a_display_p3_photo_is_read_in_srgb(mode, fmt):
    """An iPhone's photo is tagged Display P3: its numbers read as sRGB were washed out (200, 100, 50 for a colour
    that is 215, 93, 31 in sRGB), unlike the same thing in a camera's frame."""
    if fmt == "HEIF":  # an iPhone's own format: its profile comes through pillow-heif
        pytest.importorskip("pillow_heif", reason="pillow-heif is not installed").register_heif_opener()
    pixels = decode_image(encoded(patches(mode), mode, fmt, p3_profile())).pixels.astype(int)
    tolerance = 2 if fmt == "PNG" else 4
    for i, colour in enumerate(COLOURS):
        seen = pixels[8, 16 * i + 8]
        assert np.abs(seen - expected_srgb(colour)).max() <= tolerance, (colour, seen, expected_srgb(colour))
    assert np.abs(pixels[8, 8] - (200, 100, 50)).max() > 10  # not as stored


def test_a_transparent_p3_cut_out_is_still_seen_on_white():
    rgba = patches("RGBA")
    rgba[:, :16, 3] = 0
    pixels = decode_image(encoded(rgba, "RGBA", "PNG", p3_profile())).pixels
    assert (pixels[8, 8] == 255).all()
    assert np.abs(pixels[8, 24].astype(int) - expected_srgb(COLOURS[1])).max() <= 2


@pytest.mark.parametrize("maker", ["littlecms", "built"])
def test_an_srgb_photo_is_read_bit_for_bit_as_stored(maker):
    from PIL import ImageCms

    srgb = (ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes() if maker == "littlecms"
            else display_profile(SRGB_PRIMARIES))
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    tagged = decode_image(encoded(noise, "RGB", "PNG", srgb)).pixels
    assert np.array_equal(tagged, noise)


def heif_with_nclx(pixels: np.ndarray, primaries: int) -> bytes:
    from PIL import Image

    pytest.importorskip("pillow_heif", reason="pillow-heif is not installed").register_heif_opener()
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "HEIF", quality=95, nclx_profile={
        "color_primaries": primaries, "transfer_characteristics": 13, "matrix_coefficients": 6,
        "full_range_flag": 1})
    return out.getvalue()


def test_a_heif_photo_whose_nclx_box_says_display_p3_is_read_in_srgb():
    """HEIF and AVIF photos may name their colour space by an nclx box (primaries 12: Display P3) instead of an
    ICC profile."""
    pixels = decode_image(heif_with_nclx(patches(), primaries=12)).pixels.astype(int)
    for i, colour in enumerate(COLOURS):
        assert np.abs(pixels[8, 16 * i + 8] - expected_srgb(colour)).max() <= 4, colour
    as_srgb = decode_image(heif_with_nclx(patches(), primaries=1)).pixels.astype(int)
    assert np.abs(as_srgb[8, 8] - (200, 100, 50)).max() <= 4  # BT.709 primaries: sRGB's, left as they are


@pytest.mark.parametrize("profile", [b"garbage" * 20, p3_profile()[:100], b"\0" * 600])
def test_a_damaged_profile_leaves_the_photo_as_stored(profile):
    pixels = decode_image(encoded(patches(), "RGB", "PNG", profile)).pixels
    assert np.array_equal(pixels, patches())


@pytest.mark.parametrize("without", ["module", "core"])
def test_a_pillow_without_littlecms_reads_tagged_photos_as_stored(monkeypatch, caplog, without):
    # A Pillow built without littlecms (Pillow 10+ imports ImageCms then and fails at its first use) refused every
    # tagged photo with an ImportError, though most JPEGs carry an sRGB profile.
    import sys

    import PIL
    from PIL import ImageCms
    from PIL._util import DeferredError

    from edge_rap.perceive import colour

    if without == "module":
        monkeypatch.setitem(sys.modules, "PIL.ImageCms", None)  # (older Pillows: the import fails)
        monkeypatch.delattr(PIL, "ImageCms")
    else:
        monkeypatch.setattr(ImageCms, "core",
                            DeferredError.new(ImportError("The _imagingcms C module is not installed")))
    colour._transform.cache_clear()  # (transforms built with littlecms: not this test's)
    colour._no_littlecms.cache_clear()
    try:
        for profile in (p3_profile(), display_profile(SRGB_PRIMARIES)):
            assert np.array_equal(decode_image(encoded(patches(), "RGB", "PNG", profile)).pixels, patches())
    finally:
        colour._transform.cache_clear()  # (the transforms the test's Pillow cannot build: not the next test's)
        colour._no_littlecms.cache_clear()
    assert len([r for r in caplog.records if "Pillow has no littlecms" in r.getMessage()]) == 1  # said once


def test_an_nclx_box_of_primaries_unknown_to_the_reader_leaves_the_photo_as_stored():
    # A primaries code libheif does not know comes with every xy 0: the profile's maths divided by zero, and the
    # photo failed with a traceback.
    from PIL import Image

    from edge_rap.perceive.colour import to_srgb

    picture = Image.new("RGB", (4, 4), (200, 100, 50))
    picture.info["nclx_profile"] = {"color_primaries": 99, "transfer_characteristics": 13, **{
        f"color_primary_{c}_{axis}": 0.0 for c in ("red", "green", "blue", "white") for axis in "xy"}}
    assert to_srgb(picture).getpixel((0, 0)) == (200, 100, 50)


def test_a_png_whose_text_or_profile_unpacks_past_a_megabyte_is_read():
    """Pillow unpacks a PNG's text or colour profile up to 1 MB a chunk: past it (an editor's XMP and its history, a
    large profile), the photo was refused as corrupt, by the CLI and the API, its pixels sound."""
    from PIL import Image, PngImagePlugin

    from edge_rap.serve.uploads import sniff

    xmp = PngImagePlugin.PngInfo()
    xmp.add_text("XML:com.adobe.xmp", "<rdf:li/>" * (1 << 18), zip=True)  # 2.4 MB unpacked
    for profile, info in ((p3_profile() + bytes(2 << 20), None), (p3_profile(), xmp)):  # (a profile's tail: unread)
        out = io.BytesIO()
        Image.fromarray(patches()).save(out, "PNG", icc_profile=profile, pnginfo=info)
        assert len(out.getvalue()) < 100_000 and sniff(out.getvalue(), "photo.png").suffix == ".png"
        seen = decode_image(out.getvalue()).pixels[8, 8].astype(int)
        assert np.abs(seen - expected_srgb(COLOURS[0])).max() <= 2  # its profile read, not left out


def test_a_png_whose_packed_chunks_unpack_past_pillows_total_for_text_is_refused_unread(monkeypatch, tmp_path):
    """An upload of 5 MB of iCCP chunks, 64 MB of zeros each (or of zTXt without a key: Pillow counts neither towards
    its total for a PNG's text), cost half a minute of CPU in the upload check, Pillow unpacking each. All of a
    PNG's packed chunks together may unpack to that total (lowered here to 1 MB: the same rule, less to unpack).
    So may such a file in a folder listed (`IMG_0001`, no suffix: its header read) or a stored photo's orientation
    read: Pillow, opening it, unpacked them all, seconds a file."""
    import struct
    import zlib

    from PIL import Image, PngImagePlugin

    from edge_rap.errors import EdgeRapError
    from edge_rap.perceive.images import is_photo_file, stored_orientation
    from edge_rap.serve.uploads import UploadError, sniff

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    def photo(*chunks: tuple[bytes, bytes]) -> bytes:
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
                + b"".join(chunk(*c) for c in chunks) + chunk(b"IDAT", zlib.compress(bytes(4))) + chunk(b"IEND", b""))

    monkeypatch.setattr(PngImagePlugin, "MAX_TEXT_MEMORY", 1 << 20)
    packed = zlib.compress(bytes(600 << 10))
    for kind, body in ((b"iCCP", b"icc\0\0" + packed), (b"zTXt", b"\0\0" + packed), (b"iTXt", b"\0\1\0\0\0" + packed)):
        bomb = photo((kind, body), (kind, body))
        with pytest.raises(UploadError) as refused:
            sniff(bomb, "bomb.png")
        assert refused.value.status == 413 and str(refused.value) == "bomb.png: its colour profile and compressed " \
            "text unpack to over 1 MB (a PNG's limit); not read", kind
        with pytest.raises(EdgeRapError, match="its colour profile and compressed text unpack to over 1 MB"):
            decode_image(bomb, "bomb.png")
        assert sniff(photo((kind, body), (b"tEXt", b"k\0v")), "one.png").suffix == ".png"  # (one: within the total)
        (tmp_path / "IMG_0001").write_bytes(bomb)
        with pytest.raises(EdgeRapError, match="IMG_0001: its colour profile and compressed text unpack to over 1 MB"):
            stored_orientation(tmp_path / "IMG_0001")
        with monkeypatch.context() as unopened:  # a photo (reading it says why not), taken so without Pillow
            unopened.setattr(Image, "open", lambda *a, **k: pytest.fail("Pillow opened it"))
            assert is_photo_file(tmp_path / "IMG_0001"), kind


def test_a_large_colour_profile_is_not_kept_once_its_photo_is_read():
    """A PNG of 60 KB may carry a profile that unpacks to 60 MB (Pillow reads up to 64 MB): the transforms' cache
    kept each profile as its key, and eight such uploads held 480 MB of the server's memory. A large profile is still
    read (its photo converted), and let go."""
    import gc
    import tracemalloc

    photos = [encoded(patches(), "RGB", "PNG", p3_profile() + bytes([k + 1]) * (6 << 20)) for k in range(3)]
    assert all(len(photo) < 100_000 for photo in photos)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for photo in photos:
            seen = decode_image(photo).pixels[8, 8].astype(int)
            assert np.abs(seen - expected_srgb(COLOURS[0])).max() <= 2  # its profile read, not left out
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 6 << 20, f"{kept >> 20} MB kept after reading three photos"
