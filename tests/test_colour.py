"""Photos tagged with a colour profile are read in sRGB, as a camera's frames are."""

from __future__ import annotations

import io

import numpy as np
import pytest
from icc import DISPLAY_P3, rgb_profile

from edge_rap.perceive.images import decode_image

#: sRGB's colorants adapted to D50 (littlecms's built-in sRGB profile).
SRGB_D50 = np.array([(0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)]).T
COLOURS = [(200, 100, 50), (40, 160, 90), (90, 60, 210), (128, 128, 128), (250, 240, 20)]


def expected_srgb(rgb, gamma: float = 2.2) -> np.ndarray:
    """The colorimetry by hand: the profile's gamma and colorants to XYZ, then sRGB's inverse and its curve."""
    linear = (np.asarray(rgb, float) / 255) ** gamma
    xyz = np.array(DISPLAY_P3).T @ linear
    srgb = np.clip(np.linalg.solve(SRGB_D50, xyz), 0, 1)
    curved = np.where(srgb <= 0.0031308, 12.92 * srgb, 1.055 * srgb ** (1 / 2.4) - 0.055)
    return np.rint(curved * 255)


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
    that is 216, 93, 24 in sRGB), unlike the same thing in a camera's frame."""
    if fmt == "HEIF":  # an iPhone's own format: its profile comes through pillow-heif
        pytest.importorskip("pillow_heif", reason="pillow-heif is not installed").register_heif_opener()
    pixels = decode_image(encoded(patches(mode), mode, fmt, rgb_profile())).pixels.astype(int)
    tolerance = 2 if fmt == "PNG" else 4
    for i, colour in enumerate(COLOURS):
        seen = pixels[8, 16 * i + 8]
        assert np.abs(seen - expected_srgb(colour)).max() <= tolerance, (colour, seen, expected_srgb(colour))
    assert np.abs(pixels[8, 8] - (200, 100, 50)).max() > 10  # not as stored


def test_a_transparent_p3_cut_out_is_still_seen_on_white():
    rgba = patches("RGBA")
    rgba[:, :16, 3] = 0
    pixels = decode_image(encoded(rgba, "RGBA", "PNG", rgb_profile())).pixels
    assert (pixels[8, 8] == 255).all()
    assert np.abs(pixels[8, 24].astype(int) - expected_srgb(COLOURS[1])).max() <= 2


def test_an_srgb_photo_is_read_bit_for_bit_as_stored():
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    tagged = decode_image(encoded(noise, "RGB", "PNG", srgb)).pixels
    assert np.array_equal(tagged, noise)


@pytest.mark.parametrize("profile", [b"garbage" * 20, rgb_profile()[:100], b"\0" * 600])
def test_a_damaged_profile_leaves_the_photo_as_stored(profile):
    pixels = decode_image(encoded(patches(), "RGB", "PNG", profile)).pixels
    assert np.array_equal(pixels, patches())
