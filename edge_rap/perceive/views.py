"""Several views of one reference photo (mirror, centre crops, mild colour change), as RAP's augmentation does."""

from __future__ import annotations

import numpy as np


def _centre_crop(pixels: np.ndarray, fraction: float) -> np.ndarray:
    h, w = pixels.shape[:2]
    ch, cw = max(4, int(h * fraction)), max(4, int(w * fraction))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return pixels[y0 : y0 + ch, x0 : x0 + cw]


def _colour(pixels: np.ndarray, gain: tuple[float, float, float], brightness: float) -> np.ndarray:
    out = pixels.astype(np.float32) * np.asarray(gain, np.float32) * brightness
    return np.clip(out, 0, 255).astype(np.uint8)


def augmented_views(pixels: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Named views of a reference photo; the first is always the photo itself."""
    mirrored = np.ascontiguousarray(pixels[:, ::-1])
    return [
        ("original", pixels),
        ("mirror", mirrored),
        ("crop80", _centre_crop(pixels, 0.8)),
        ("crop60", _centre_crop(pixels, 0.6)),
        ("mirror-crop80", _centre_crop(mirrored, 0.8)),
        ("warm", _colour(pixels, (1.08, 1.0, 0.9), 1.0)),
        ("dark", _colour(pixels, (1.0, 1.0, 1.0), 0.7)),
    ]
