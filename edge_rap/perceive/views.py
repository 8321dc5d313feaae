"""Views of an image: several of a reference photo (RAP's augmentation), several crops of a query image.

Measured on the dev sets (docs/BENCHMARKS.md): mirror and relit views of a reference are harmless and
help with the other side of an object; centre crops of the reference hurt (they match clutter), so they
are not used. A query is embedded whole and as a 3 x 3 grid of half-size crops, and each concept keeps its
best score, so that an object filling a quarter of the photo is still found."""

from __future__ import annotations

import numpy as np


def _colour(pixels: np.ndarray, gain: tuple[float, float, float], brightness: float) -> np.ndarray:
    out = pixels.astype(np.float32) * np.asarray(gain, np.float32) * brightness
    return np.clip(out, 0, 255).astype(np.uint8)


def augmented_views(pixels: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Named views of a reference photo; the first is always the photo itself."""
    mirrored = np.ascontiguousarray(pixels[:, ::-1])
    return [
        ("original", pixels),
        ("mirror", mirrored),
        ("warm", _colour(pixels, (1.08, 1.0, 0.9), 1.0)),
        ("dark", _colour(pixels, (1.0, 1.0, 1.0), 0.7)),
    ]


def query_views(pixels: np.ndarray, grid: int = 3, fraction: float = 0.5) -> list[np.ndarray]:
    """The whole image, then a grid x grid of overlapping crops, each `fraction` of the width and height."""
    h, w = pixels.shape[:2]
    ch, cw = max(4, int(h * fraction)), max(4, int(w * fraction))
    views = [pixels]
    for y in np.linspace(0, h - ch, grid).astype(int):
        for x in np.linspace(0, w - cw, grid).astype(int):
            views.append(pixels[y : y + ch, x : x + cw])
    return views
