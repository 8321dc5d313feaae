"""Views of an image: several of a reference photo (RAP's augmentation), several crops of a query image.

Measured on the dev sets (docs/BENCHMARKS.md): mirror and relit views of a reference are harmless and
help with the other side of an object; centre crops of the reference hurt (they match clutter), so they
are not used. A query is embedded whole and as a 3 x 3 grid of half-size crops, and each concept keeps its
best score, so that an object filling a quarter of the photo is still found; where dense matching also
places concepts, a 2 x 2 grid (the quadrants, the 3 x 3 grid's corners) suffices (retrieve/retriever.py)."""

from __future__ import annotations

import numpy as np

from edge_rap.types import Box


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


def query_view_boxes(size: tuple[int, int], grid: int = 3, fraction: float = 0.5) -> list[Box]:
    """The whole image, then a grid x grid of overlapping crops, each `fraction` of the width and height."""
    w, h = size
    cw, ch = max(4, int(w * fraction)), max(4, int(h * fraction))
    boxes = [Box(0, 0, w, h)]
    for y in np.linspace(0, h - ch, grid).astype(int):
        for x in np.linspace(0, w - cw, grid).astype(int):
            boxes.append(Box(int(x), int(y), int(x) + cw, int(y) + ch))
    return boxes


def query_views(pixels: np.ndarray, grid: int = 3, fraction: float = 0.5) -> list[np.ndarray]:
    """The query's views: the pixels of each of query_view_boxes."""
    h, w = pixels.shape[:2]
    return [pixels[b.y0 : b.y1, b.x0 : b.x1] for b in query_view_boxes((w, h), grid, fraction)]
