"""Regional matching's building blocks and the seeded composites `eval localize` scores on."""

from __future__ import annotations

import numpy as np
import pytest

from edge_rap.eval.composites import Layout, compose
from edge_rap.perceive.boxes import iou
from edge_rap.perceive.embed import gem_pool
from edge_rap.perceive.regions import (ReferenceCells, best_per_concept, connected_region, dense_candidates,
                                       distinct_boxes, pooled_boxes, unit_cells)
from edge_rap.types import Box


def test_dense_matching_places_a_concept_where_its_cells_are():
    rng = np.random.default_rng(0)
    frame = rng.uniform(0, 1, (32, 6, 8)).astype(np.float32)  # C x h x w
    reference = rng.uniform(0, 1, (32, 3, 2)).astype(np.float32)
    frame[:, 2:5, 5:7] = reference  # the concept fills cells rows 2-4, columns 5-6
    other = rng.uniform(0, 1, (32, 2, 2)).astype(np.float32)
    references = ReferenceCells.stack({9: unit_cells(other), 7: unit_cells(reference)})
    candidates = dense_candidates(frame, references, (800, 600))
    assert [c.concept_id for c in candidates] == [7, 9] and candidates[0].score > candidates[1].score
    # cells -> the image's pixels (100 px a cell); sub-cell boundaries come from the upsampled heat
    assert iou(candidates[0].boxes[0], Box(500, 200, 700, 500)) > 0.8
    assert dense_candidates(frame, references, (800, 600), limit=1)[0].concept_id == 7


def test_a_second_place_nearly_as_hot_as_the_first_is_proposed_too():
    # The hottest place can be a look-alike; the concept's own place, nearly as hot, must be cropped as well.
    rng = np.random.default_rng(0)
    frame = rng.uniform(0, 1, (32, 8, 12)).astype(np.float32)  # 100 px cells of a 1200 x 800 image
    reference = rng.uniform(0, 1, (32, 2, 2)).astype(np.float32)
    references = ReferenceCells.stack({7: unit_cells(reference)})
    frame[:, 1:3, 1:3] = reference
    for blur, proposed in ((0.2, True), (3.0, False)):  # the second place: a close copy, then a faint one
        frame[:, 5:7, 8:10] = reference + blur * rng.uniform(0, 1, reference.shape).astype(np.float32)
        boxes = dense_candidates(frame, references, (1200, 800), second=0.75)[0].boxes
        assert iou(boxes[0], Box(100, 100, 300, 300)) > 0.5
        assert any(iou(b, Box(800, 500, 1000, 700)) > 0.5 for b in boxes) == proposed
        assert not any(iou(b, Box(800, 500, 1000, 700)) > 0.5
                       for b in dense_candidates(frame, references, (1200, 800))[0].boxes)  # only when asked


def test_reference_cells_are_stacked_per_concept():
    stacked = ReferenceCells.stack({3: np.ones((2, 4), np.float32), 1: np.zeros((3, 4), np.float32)})
    assert stacked.ids.tolist() == [1, 3] and stacked.starts.tolist() == [0, 3, 5] and len(stacked) == 2
    assert stacked.cells[3:].sum() == 8


def test_connected_region_follows_neighbours_only():
    mask = np.array([[1, 1, 0, 1], [0, 1, 0, 1], [0, 1, 1, 0]], dtype=bool)
    region = connected_region(mask, (0, 0))
    assert region.sum() == 5 and not region[0, 3] and region[2, 2]


def _flood(mask: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """The plain cell-by-cell flood fill that connected_region must agree with."""
    region = np.zeros_like(mask)
    todo = [start] if mask[start] else []
    while todo:
        r, c = todo.pop()
        if 0 <= r < mask.shape[0] and 0 <= c < mask.shape[1] and mask[r, c] and not region[r, c]:
            region[r, c] = True
            todo += [(r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)]
    return region


def test_connected_region_agrees_with_a_flood_fill_on_random_masks():
    rng = np.random.default_rng(3)
    for trial in range(200):
        mask = rng.random((int(rng.integers(1, 30)), int(rng.integers(1, 30)))) < rng.uniform(0.2, 0.8)
        start = (int(rng.integers(mask.shape[0])), int(rng.integers(mask.shape[1])))
        assert (connected_region(mask, start) == _flood(mask, start)).all(), trial


def test_a_wide_box_close_to_the_tight_one_is_not_cropped_twice():
    tight = Box(100, 100, 200, 200)
    assert distinct_boxes([tight, Box(95, 95, 205, 205)]) == (tight,)  # IoU 0.83
    assert distinct_boxes([tight, Box(60, 60, 240, 240)]) == (tight, Box(60, 60, 240, 240))  # IoU 0.31
    assert distinct_boxes([tight, tight]) == (tight,)


def test_a_box_is_pooled_over_every_cell_it_covers():
    rng = np.random.default_rng(1)
    frame = rng.uniform(0, 1, (16, 6, 8)).astype(np.float32)  # 100 px cells of an 800 x 600 image
    inside = pooled_boxes(frame, [Box(250, 110, 400, 290), Box(0, 0, 800, 600), Box(790, 590, 800, 600)],
                          (800, 600), 3.0)
    expected = [gem_pool(frame[None, :, 1:3, 2:4], 3.0)[0], gem_pool(frame[None], 3.0)[0], frame[:, 5, 7]]
    for vector, pooled in zip(inside, expected):
        assert np.allclose(vector, pooled / np.linalg.norm(pooled), atol=1e-6)
    assert pooled_boxes(frame, [], (800, 600), 3.0).shape == (0, 16)


def test_a_regions_box_pools_its_own_cells_at_any_photo_size():
    # region_boxes rounds a region's edges to whole pixels; at a size that is no multiple of the cells (a
    # phone's 4032 x 3024) an edge on a cell boundary lands a fraction of a pixel across it.
    rng = np.random.default_rng(2)
    h, w = 15, 20
    frame = rng.uniform(0, 1, (8, h, w)).astype(np.float32)
    for width, height in ((4032, 3024), (1001, 751), (640, 480)):
        for _ in range(60):
            c0, r0 = int(rng.integers(w)), int(rng.integers(h))
            c1, r1 = int(rng.integers(c0 + 1, w + 1)), int(rng.integers(r0 + 1, h + 1))
            box = Box(int(c0 * width / w), int(r0 * height / h), int(round(c1 * width / w)),
                      int(round(r1 * height / h)))
            expected = gem_pool(frame[None, :, r0:r1, c0:c1], 3.0)[0]
            pooled = pooled_boxes(frame, [box], (width, height), 3.0)[0]
            assert np.allclose(pooled, expected / np.linalg.norm(expected), atol=1e-6), (width, box)


def test_best_per_concept_takes_each_concepts_best_reference():
    similarity = np.array([[0.1, 0.9, 0.3], [0.8, 0.2, 0.7]], np.float32)  # 2 vectors x 3 references
    ids, best = best_per_concept(similarity, np.array([5, 2, 5]))
    assert ids.tolist() == [2, 5] and np.allclose(best, [[0.9, 0.3], [0.2, 0.8]])


def test_iou():
    assert iou(Box(0, 0, 10, 10), Box(0, 0, 10, 10)) == 1.0
    assert iou(Box(0, 0, 10, 10), Box(5, 0, 15, 10)) == 50 / 150
    assert iou(Box(0, 0, 10, 10), Box(20, 20, 30, 30)) == 0.0


@pytest.mark.parametrize("layout", [Layout(), Layout((1280, 960), 0.2, 0.45)])
def test_composites_are_reproducible_and_boxes_do_not_overlap(layout):
    items = [(f"c{k}", np.full((120 + 10 * k, 100, 3), 40 * k, np.uint8)) for k in range(4)]
    background = np.zeros((300, 300, 3), np.uint8)
    a = compose(items, background, np.random.default_rng(3), layout)
    b = compose(items, background, np.random.default_rng(3), layout)
    assert np.array_equal(a.pixels, b.pixels) and a.placed == b.placed
    width, height = layout.frame
    assert a.pixels.shape == (height, width, 3) and len(a.placed) == 4
    for i, p in enumerate(a.placed):
        assert p.box.width <= layout.max_width * width + 1
        k = int(p.name[1:])
        assert (a.pixels[p.box.y0 + 2 : p.box.y1 - 2, p.box.x0 + 2 : p.box.x1 - 2] == 40 * k).all()  # pasted there
        assert all(iou(p.box, q.box) == 0 for q in a.placed[i + 1 :])
    if layout.min_width == 0.2:  # items this wide fit their cells whole: none is narrowed below the minimum
        assert all(p.box.width >= 0.2 * width - 1 for p in a.placed)


def test_composites_of_tiny_items_still_paste_something():
    items = [(f"c{k}", np.full((50, 40, 3), 40 * k, np.uint8)) for k in range(4)]
    frame = compose(items, np.zeros((64, 64, 3), np.uint8), np.random.default_rng(0), Layout((64, 64), 0.01, 0.02))
    assert all(p.box.width >= 8 and p.box.height >= 8 for p in frame.placed)


def test_a_broken_feature_map_gives_the_whole_frame_not_a_crash():
    references = ReferenceCells.stack({1: unit_cells(np.ones((8, 2, 2), np.float32))})
    candidates = dense_candidates(np.full((8, 3, 4), np.nan, np.float32), references, (400, 300))
    assert [c.boxes[0] for c in candidates] == [Box(0, 0, 400, 300)]
    assert dense_candidates(np.ones((8, 3, 4), np.float32), ReferenceCells.stack({}), (400, 300)) == []


def test_scaled_boxes_grow_about_their_centre_and_stay_in_the_frame():
    from edge_rap.perceive.boxes import scaled_box

    assert scaled_box(Box(100, 100, 200, 150), 1.6, (640, 480)) == Box(70, 85, 230, 165)
    assert scaled_box(Box(0, 400, 100, 480), 2.0, (640, 480)) == Box(0, 360, 150, 480)  # clipped at the edges
    assert scaled_box(Box(10, 10, 30, 30), 1.0, (640, 480)) == Box(10, 10, 30, 30)


def test_gem_pool_is_the_generalised_mean_for_whole_and_fractional_powers():
    features = np.random.default_rng(0).random((2, 16, 3, 4), dtype=np.float32)
    for p in (1.0, 3.0, 2.5):
        expected = np.mean(features.astype(np.float64) ** p, axis=(2, 3)) ** (1 / p)
        np.testing.assert_allclose(gem_pool(features, p), expected, rtol=1e-5)
