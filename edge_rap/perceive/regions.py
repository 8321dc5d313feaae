"""Detector-free localisation: where in the frame each remembered concept is, from one backbone pass.

Dense local matching: every cell of the frame's feature map (one pass, longer side 640 px, 32 px cells)
is compared with every cell of a concept's reference feature maps (each photo at two sizes, so a concept
far away or near matches at its own scale); a cell's heat is its best cosine. Concepts are ranked by their
peak heat. A candidate's boxes are connected regions around the peak of its heat map, upsampled UPSAMPLE
times (sub-cell boundaries), where the heat stands above the frame's typical heat (its median) by at least
a level of the peak's height: a tight box (the level of REGION_LEVELS[0], whose mean heat is the
candidate's score) and a wide one (a photo's plain background matches weakly, so the tight box can miss
it). Crops of the best candidates' boxes are then confirmed against every concept as any query is
(retrieve/ owns decisions, grows boxes that nearly pass and keeps the best).

Measured on the dev composites (docs/BENCHMARKS.md) against pooling every rectangle of the map (R-MAC
style), which ranked and placed concepts worse at five times the cost, and against a fixed drop below the
peak, which placed them worse (the heat's level differs from frame to frame). The frame's side matters
most: a concept pasted at 15-60 % of a 640-px frame's width is already small, and a pass at a smaller side
shrinks it further below the embedder's input size (320 px for the default). For the same reason the reference sides are
small (96 and 160 px: a concept across a room); one that fills the frame is found by the whole-image views instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_rap.perceive.boxes import iou
from edge_rap.types import Box

#: The frame's longer side for the feature pass, and the reference photo's (one feature map per side).
FEATURE_LONG_SIDE = 640
REFERENCE_LONG_SIDES = (96, 160)
#: A region is the heat above median + level * (peak - median), connected to the peak: tight, then wide.
REGION_LEVELS = (0.5, 0.3)
#: The heat map is bilinearly upsampled this many times before the region is cut out of it.
UPSAMPLE = 4
#: A wide box overlapping the tight one at least this much is not cropped too: its crop scores about the same
#: (on the dev composites it changed no recall and saved a quarter of the crops; docs/BENCHMARKS.md).
DISTINCT_BOX_IOU = 0.7


@dataclass(frozen=True)
class Candidate:
    """A concept's most likely place in the frame, by dense matching (not yet confirmed by a crop): its boxes,
    tight first, each distinct from the ones before it (`distinct_boxes`). `contested`: the frame's features
    over its tight box match another concept clearly better, so no crop of it is worth embedding."""

    concept_id: int
    score: float
    boxes: tuple[Box, ...]
    contested: bool = False


@dataclass(frozen=True)
class ReferenceCells:
    """Every concept's unit reference cells stacked in one matrix (one product per frame), rows grouped by
    concept: concept `ids[i]` owns rows `starts[i]` to `starts[i + 1]`."""

    ids: np.ndarray
    starts: np.ndarray
    cells: np.ndarray

    @classmethod
    def stack(cls, per_concept: dict[int, np.ndarray]) -> "ReferenceCells":
        ids = np.array(sorted(per_concept), dtype=np.int64)
        sizes = [len(per_concept[i]) for i in ids]
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        dim = next(iter(per_concept.values())).shape[1] if per_concept else 0
        cells = np.concatenate([per_concept[i] for i in ids]) if per_concept else np.zeros((0, dim), np.float32)
        return cls(ids, starts, np.ascontiguousarray(cells, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.ids)


def reference_cells(embedder, pixels: np.ndarray) -> np.ndarray:
    """A reference photo's unit cells at every reference side, rounded to float16: what the memory stores
    when a concept is remembered, so a computed and a stored copy match the same way."""
    cells = np.concatenate([unit_cells(embedder.feature_map(pixels, side)) for side in REFERENCE_LONG_SIDES])
    return cells.astype(np.float16).astype(np.float32)


def unit_cells(features: np.ndarray) -> np.ndarray:
    """A C x h x w feature map as h*w L2-normalised cell vectors (row-major)."""
    cells = features.reshape(features.shape[0], -1).T
    return cells / np.maximum(np.linalg.norm(cells, axis=1, keepdims=True), 1e-9)


def connected_region(mask: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """The 4-connected cells of `mask` reachable from `start`, found over each row's runs of True cells (a
    few dozen on a heat map, where growing the region cell by cell took a loop per cell of its radius)."""
    region = np.zeros_like(mask, dtype=bool)
    if not mask[start]:
        return region
    start = (start[0] % mask.shape[0], start[1] % mask.shape[1])  # numpy's meaning of a negative index
    edges = np.diff(np.pad(mask.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    rows, starts = np.nonzero(edges == 1)
    ends = np.nonzero(edges == -1)[1]  # row-major order: the i-th end closes the i-th start
    first = np.searchsorted(rows, np.arange(mask.shape[0] + 1))  # row r's runs: first[r] to first[r + 1]
    row, col = start
    seed = first[row] + int(np.searchsorted(starts[first[row]:first[row + 1]], col, side="right")) - 1
    seen, todo = {seed}, [seed]
    while todo:
        run = todo.pop()
        r = rows[run]
        region[r, starts[run]:ends[run]] = True
        for near in (r - 1, r + 1):
            if 0 <= near < mask.shape[0]:
                for other in range(first[near], first[near + 1]):  # runs sharing a column touch
                    if other not in seen and starts[other] < ends[run] and ends[other] > starts[run]:
                        seen.add(other)
                        todo.append(other)
    return region


def distinct_boxes(boxes: list[Box], limit: float = DISTINCT_BOX_IOU) -> tuple[Box, ...]:
    """The boxes in order, without those overlapping an earlier one by `limit` IoU or more."""
    kept: list[Box] = []
    for box in boxes:
        if box not in kept and all(iou(box, other) < limit for other in kept):  # (an empty box has no IoU)
            kept.append(box)
    return tuple(kept)


def pooled_boxes(frame: np.ndarray, boxes: list[Box], image_size: tuple[int, int], p: float) -> np.ndarray:
    """Each box's unit vector pooled (GeM, as the embedder pools a crop) over the frame's feature-map cells it
    covers by more than a pixel: roughly what a crop of it would give, for no backbone pass. (A region's box
    edges are rounded to whole pixels, so an edge on a cell boundary may cross it by a fraction of one.)"""
    from edge_rap.perceive.embed import gem_pool, normalise

    _, h, w = frame.shape
    width, height = image_size
    vectors = []
    for box in boxes:
        x0 = min(w - 1, max(0, int((box.x0 + 1) * w / width)))
        y0 = min(h - 1, max(0, int((box.y0 + 1) * h / height)))
        x1 = max(x0 + 1, min(w, int(np.ceil((box.x1 - 1) * w / width))))
        y1 = max(y0 + 1, min(h, int(np.ceil((box.y1 - 1) * h / height))))
        vectors.append(gem_pool(frame[None, :, y0:y1, x0:x1], p)[0])
    return normalise(np.stack(vectors)) if vectors else np.zeros((0, frame.shape[0]), np.float32)


def best_per_concept(similarity: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectors x reference vectors (owned by concept `keys`) -> the concept ids and each vector's best score
    per concept (vectors x concepts)."""
    order = np.argsort(keys, kind="stable")
    ids, starts = np.unique(keys[order], return_index=True)
    if not len(ids):
        return ids, np.zeros((len(similarity), 0), similarity.dtype)
    return ids, np.maximum.reduceat(similarity[:, order], starts, axis=1)


def heat_maps(frame: np.ndarray, references: ReferenceCells) -> np.ndarray:
    """concepts x h x w: each frame cell's best cosine with each concept's reference cells."""
    _, h, w = frame.shape
    if not len(references):
        return np.zeros((0, h, w), np.float32)
    similarity = unit_cells(frame).astype(np.float32) @ references.cells.T  # cells x reference cells
    heat = np.maximum.reduceat(similarity, references.starts[:-1], axis=1).T.reshape(-1, h, w)
    return np.nan_to_num(heat, nan=-1.0)  # a broken feature map must not break the regions


def region_boxes(heat: np.ndarray, image_size: tuple[int, int], levels: tuple[float, ...] = REGION_LEVELS,
                 upsample: int = UPSAMPLE, second: float | None = None) -> tuple[list[Box], float]:
    """The boxes (in image pixels) of the hot regions around the heat map's peak, one per level; and the first
    region's mean heat. Where a second peak outside the widest region stands at least `second` as high over the
    median as the first, the tight region around it replaces the wide box (the hottest place is often another
    thing that looks alike: RetrievalPolicy.second_peak; in place of the wide box, the crops cost the same)."""
    from PIL import Image as PILImage

    h, w = heat.shape
    fine = np.asarray(PILImage.fromarray(heat.astype(np.float32), "F").resize((w * upsample, h * upsample),
                                                                              PILImage.BILINEAR))
    peak = np.unravel_index(int(fine.argmax()), fine.shape)
    typical = float(np.median(fine))
    boxes, scores, regions = [], [], []
    for level in levels:
        region = connected_region(fine >= typical + level * (fine[peak] - typical), peak)
        regions.append(region)
        boxes.append(_box_of(region, image_size))
        scores.append(float(fine[region].mean()))
    if second is not None:  # the hottest place outside the widest region, when nearly as hot as the peak
        rest = np.where(regions[-1], typical, fine)
        other = np.unravel_index(int(rest.argmax()), rest.shape)
        if rest[other] - typical >= second * (fine[peak] - typical) > 0:
            boxes = boxes[:1] + [_box_of(connected_region(rest >= typical + levels[0] * (rest[other] - typical),
                                                          other), image_size)]
    return boxes, scores[0]


def _box_of(region: np.ndarray, image_size: tuple[int, int]) -> Box:
    """A region of the upsampled heat map as a box in image pixels."""
    ys, xs = np.nonzero(region)
    fh, fw = region.shape
    width, height = image_size
    return Box(int(xs.min() * width / fw), int(ys.min() * height / fh),
               int(round((xs.max() + 1) * width / fw)), int(round((ys.max() + 1) * height / fh)))


def dense_candidates(frame: np.ndarray, references: ReferenceCells, image_size: tuple[int, int],
                     limit: int | None = None, levels: tuple[float, ...] = REGION_LEVELS,
                     second: float | None = None) -> list[Candidate]:
    """The `limit` concepts with the hottest peaks, each with its regions' boxes (and a second place's, see
    `region_boxes`), best first (by the tight region's mean heat)."""
    if not len(references):
        return []
    heat = heat_maps(frame, references)
    order = np.argsort(-heat.reshape(len(heat), -1).max(axis=1), kind="stable")[:limit]
    out = []
    for i in order:
        boxes, score = region_boxes(heat[i], image_size, levels, second=second)
        out.append(Candidate(int(references.ids[i]), score, distinct_boxes(boxes)))
    return sorted(out, key=lambda c: -c.score)

