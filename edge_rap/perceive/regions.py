"""Detector-free regional matching: where in the frame each remembered concept is, from one backbone pass.

The embedder's feature map of the whole frame (higher resolution than a crop's) is GeM-pooled over every
rectangle of feature cells (R-MAC in spirit, exhaustive thanks to integral images of f^p), each rectangle
is scored against every concept's reference vectors, and each concept keeps its best rectangle. The best
candidates are then confirmed by embedding their crops, as any query is, and their boxes refined by a small
search around them with crop embeddings (see retrieve.py, which owns the decisions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_rap.types import Box

#: The frame's longer side for the feature pass (14 cells of 32 px for EfficientNet-Lite0).
FEATURE_LONG_SIDE = 448
MIN_CELLS = 2
MAX_ASPECT = 3.0


@dataclass(frozen=True)
class Candidate:
    """A concept's best rectangle in the frame, by regional pooling (not yet confirmed by a crop)."""

    concept_id: int
    score: float
    box: Box


def _rectangles(h: int, w: int) -> np.ndarray:
    """All (y0, x0, y1, x1) rectangles of at least MIN_CELLS cells a side (or the whole side) and sane aspect."""
    rects = []
    for rh in range(min(MIN_CELLS, h), h + 1):
        for rw in range(min(MIN_CELLS, w), w + 1):
            if max(rh / rw, rw / rh) > MAX_ASPECT:
                continue
            for y in range(h - rh + 1):
                for x in range(w - rw + 1):
                    rects.append((y, x, y + rh, x + rw))
    return np.asarray(rects, dtype=np.int32)


def pooled_rectangles(features: np.ndarray, p: float) -> tuple[np.ndarray, np.ndarray]:
    """GeM vectors (L2-normalised) of every rectangle of a C x h x w feature map, and the rectangles."""
    c, h, w = features.shape
    powered = np.power(np.maximum(features, 1e-6), p).astype(np.float64)
    integral = np.zeros((c, h + 1, w + 1), dtype=np.float64)
    integral[:, 1:, 1:] = powered.cumsum(axis=1).cumsum(axis=2)
    rects = _rectangles(h, w)
    y0, x0, y1, x1 = rects.T
    sums = integral[:, y1, x1] - integral[:, y0, x1] - integral[:, y1, x0] + integral[:, y0, x0]
    area = ((y1 - y0) * (x1 - x0)).astype(np.float64)
    vectors = np.power(np.maximum(sums, 0.0) / area, 1.0 / p).T.astype(np.float32)  # float error can dip below 0
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors, rects


def best_rectangles(features: np.ndarray, p: float, keys: np.ndarray, references: np.ndarray,
                    image_size: tuple[int, int]) -> list[Candidate]:
    """Each concept's best-scoring rectangle, best concept first, boxes in the image's pixels."""
    vectors, rects = pooled_rectangles(features, p)
    scores = vectors @ references.T  # rectangles x reference vectors
    _, h, w = features.shape
    width, height = image_size
    out = []
    for concept_id in np.unique(keys):
        per_rect = scores[:, keys == concept_id].max(axis=1)
        i = int(per_rect.argmax())
        y0, x0, y1, x1 = rects[i]
        box = Box(int(x0 * width / w), int(y0 * height / h), int(round(x1 * width / w)), int(round(y1 * height / h)))
        out.append(Candidate(int(concept_id), float(per_rect[i]), box))
    return sorted(out, key=lambda c: -c.score)


def refinements(box: Box, image_size: tuple[int, int]) -> list[Box]:
    """The box and a few tighter or shifted variants to try with crop embeddings (regional boxes run large)."""
    width, height = image_size
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    out = []
    for scale in (1.0, 0.8, 0.65):
        bw, bh = box.width * scale, box.height * scale
        shifts = [(0.0, 0.0)] if scale == 1.0 else [(0, 0), (-0.12, 0), (0.12, 0), (0, -0.12), (0, 0.12)]
        for dx, dy in shifts:
            x = cx + dx * box.width
            y = cy + dy * box.height
            b = Box(int(max(0, x - bw / 2)), int(max(0, y - bh / 2)), int(min(width, x + bw / 2)), int(min(height, y + bh / 2)))
            if b.width >= 8 and b.height >= 8 and b not in out:
                out.append(b)
    return out
