"""Detector-free localisation: where in the frame each remembered concept is, from one backbone pass.

Dense local matching: every cell of the frame's feature map (one pass, longer side 448 px, 32 px cells) is
compared with every cell of a concept's reference feature maps (the photo and its mirror image); a cell's
heat is its best cosine. The concept's candidate box is the connected region of cells around the hottest
one whose heat is within REGION_DROP of it; the candidate's score is the region's mean heat. Crops of the
best candidates are then confirmed against every concept as any query is (retrieve.py owns decisions).

Measured on the dev composites (docs/BENCHMARKS.md) against pooling every rectangle of the map (R-MAC
style), which ranked and placed concepts worse at five times the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_rap.types import Box

#: The frame's longer side for the feature pass, and the reference photo's.
FEATURE_LONG_SIDE = 448
REFERENCE_LONG_SIDE = 224
#: Cells whose heat is within this of the hottest cell (and connected to it) make the candidate's region.
REGION_DROP = 0.2


@dataclass(frozen=True)
class Candidate:
    """A concept's most likely place in the frame, by dense matching (not yet confirmed by a crop)."""

    concept_id: int
    score: float
    box: Box


def unit_cells(features: np.ndarray) -> np.ndarray:
    """A C x h x w feature map as h*w L2-normalised cell vectors (row-major)."""
    cells = features.reshape(features.shape[0], -1).T
    return cells / np.maximum(np.linalg.norm(cells, axis=1, keepdims=True), 1e-9)


def connected_region(mask: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """The 4-connected cells of `mask` reachable from `start`."""
    region = np.zeros_like(mask)
    stack = [start]
    h, w = mask.shape
    while stack:
        y, x = stack.pop()
        if 0 <= y < h and 0 <= x < w and mask[y, x] and not region[y, x]:
            region[y, x] = True
            stack += [(y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)]
    return region


def dense_candidates(frame: np.ndarray, references: dict[int, np.ndarray], image_size: tuple[int, int],
                     drop: float = REGION_DROP) -> list[Candidate]:
    """Each concept's candidate from a C x h x w frame feature map and its reference cells, best first."""
    _, h, w = frame.shape
    cells = unit_cells(frame)
    width, height = image_size
    out = []
    for concept_id, reference in references.items():
        heat = (cells @ reference.T).max(axis=1).reshape(h, w)
        peak = np.unravel_index(int(heat.argmax()), heat.shape)
        region = connected_region(heat >= heat[peak] - drop, peak)
        ys, xs = np.nonzero(region)
        box = Box(int(xs.min() * width / w), int(ys.min() * height / h),
                  int(round((xs.max() + 1) * width / w)), int(round((ys.max() + 1) * height / h)))
        out.append(Candidate(concept_id, float(heat[region].mean()), box))
    return sorted(out, key=lambda c: -c.score)


def grown(box: Box, factor: float, image_size: tuple[int, int]) -> Box:
    """The box scaled about its centre, clipped to the image (cell-sized regions often cut an object's rim)."""
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    w, h = box.width * factor / 2, box.height * factor / 2
    return Box(int(max(0, cx - w)), int(max(0, cy - h)), int(min(image_size[0], cx + w)), int(min(image_size[1], cy + h)))
