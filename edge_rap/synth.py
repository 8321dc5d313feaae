"""Seeded procedural images: quantisation calibration, negative banks and backgrounds without any download."""

from __future__ import annotations

import numpy as np


def _smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """A smooth random colour field: a coarse random grid upsampled bilinearly."""
    from PIL import Image as PILImage

    coarse = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
    return np.asarray(PILImage.fromarray(coarse).resize((size, size), PILImage.BILINEAR), dtype=np.float32)


def synthetic_image(seed: int, size: int = 256) -> np.ndarray:
    """One RGB uint8 image: a smooth background with random shapes, stripes and noise, like clutter."""
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    base = _smooth_field(rng, size, int(rng.integers(2, 9)))
    if rng.random() < 0.5:  # stripes or checks, as on fabrics and floors
        period = int(rng.integers(4, 40))
        yy, xx = np.mgrid[0:size, 0:size]
        pattern = ((xx // period + (yy // period) * (rng.random() < 0.5)) % 2)[..., None]
        base = base * (0.6 + 0.4 * pattern)
    pil = PILImage.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(2, 12))):
        x0, y0 = rng.integers(-size // 4, size, 2)
        w, h = rng.integers(size // 16, size // 2, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = rng.integers(0, 3)
        box = [int(x0), int(y0), int(x0 + w), int(y0 + h)]
        if shape == 0:
            draw.ellipse(box, fill=colour)
        elif shape == 1:
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon([tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(3)], fill=colour)
    pil = pil.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 2.0))))
    noisy = np.asarray(pil, dtype=np.float32) + rng.normal(0, rng.uniform(0, 12), (size, size, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def synthetic_images(count: int, seed: int = 0, size: int = 256) -> list[np.ndarray]:
    return [synthetic_image(seed * 100_003 + i, size) for i in range(count)]
