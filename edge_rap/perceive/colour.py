"""Pixels in sRGB: a photo tagged with another colour profile is converted before anything looks at it.

iPhones tag their photos Display P3, cameras often Adobe RGB, print files carry CMYK profiles. Their numbers read
as sRGB look washed out (P3, Adobe RGB) or wrong altogether (CMYK), while a camera's frames and the embedder's
training photos are sRGB: the same mug would be seen in other colours in its reference photo and in the kitchen.
A profile that is sRGB already (most JPEGs carry one) changes nothing, bit for bit."""

from __future__ import annotations

import functools
import io

import numpy as np

#: Modes whose profile littlecms applies here; a profile on any other mode is left alone.
_CONVERTIBLE = {"RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB"}
#: A grid of colours: a profile that maps every one of them to within this many levels of itself is sRGB.
_SAME_LEVELS = 2


def to_srgb(pil):
    """The picture in sRGB: converted through its embedded ICC profile where it has one that is not sRGB;
    as it was where it has none, an sRGB one, or one that cannot be read (a damaged profile is no reason to
    refuse the photo)."""
    profile = pil.info.get("icc_profile")
    out_mode = _CONVERTIBLE.get(pil.mode)
    if not profile or out_mode is None:
        return pil
    transform = _transform(bytes(profile), pil.mode, out_mode)
    if transform is None:
        return pil
    converted = transform.apply(pil)
    converted.info = {k: v for k, v in pil.info.items() if k != "icc_profile"}
    return converted


@functools.lru_cache(maxsize=8)
def _transform(profile: bytes, in_mode: str, out_mode: str):
    """littlecms's transform from this profile to sRGB, or None where the profile is sRGB or unusable.
    Cached: a camera or a phone tags every photo with the same few profiles."""
    from PIL import Image as PILImage
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        transform = ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), in_mode, out_mode,
                                            renderingIntent=ImageCms.Intent.PERCEPTUAL)
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
