"""Regional matching's building blocks and the seeded composites `eval localize` scores on."""

from __future__ import annotations

import numpy as np

from edge_rap.composites import FRAME_SIZE, compose
from edge_rap.perceive.embed import gem_pool, normalise
from edge_rap.perceive.boxes import iou
from edge_rap.perceive.regions import pooled_rectangles, refinements
from edge_rap.types import Box


def test_every_rectangle_is_pooled_exactly_as_its_own_crop_of_the_map():
    rng = np.random.default_rng(0)
    features = rng.uniform(0, 3, (16, 5, 7)).astype(np.float32)
    vectors, rects = pooled_rectangles(features, 3.0)
    assert len(rects) == len({tuple(r) for r in rects})
    for i in rng.integers(0, len(rects), 25):
        y0, x0, y1, x1 = rects[i]
        expected = normalise(gem_pool(features[None, :, y0:y1, x0:x1], 3.0))[0]
        assert np.allclose(vectors[i], expected, atol=1e-4)
    assert (rects[:, 2] - rects[:, 0] >= 2).all() and (rects[:, 3] - rects[:, 1] >= 2).all()


def test_refinements_stay_inside_the_frame_and_start_with_the_box():
    box = Box(600, 400, 640, 480)
    variants = refinements(box, (640, 480))
    assert variants[0] == box and len(variants) > 3
    assert all(0 <= b.x0 < b.x1 <= 640 and 0 <= b.y0 < b.y1 <= 480 for b in variants)


def test_iou():
    assert iou(Box(0, 0, 10, 10), Box(0, 0, 10, 10)) == 1.0
    assert iou(Box(0, 0, 10, 10), Box(5, 0, 15, 10)) == 50 / 150
    assert iou(Box(0, 0, 10, 10), Box(20, 20, 30, 30)) == 0.0


def test_composites_are_reproducible_and_boxes_do_not_overlap():
    items = [(f"c{k}", np.full((120 + 10 * k, 100, 3), 40 * k, np.uint8)) for k in range(4)]
    background = np.zeros((300, 300, 3), np.uint8)
    a = compose(items, background, np.random.default_rng(3))
    b = compose(items, background, np.random.default_rng(3))
    assert np.array_equal(a.pixels, b.pixels) and a.placed == b.placed
    assert a.pixels.shape == (FRAME_SIZE[1], FRAME_SIZE[0], 3) and len(a.placed) == 4
    for i, p in enumerate(a.placed):
        assert p.box.width <= 0.6 * FRAME_SIZE[0] + 1
        k = int(p.name[1:])
        assert (a.pixels[p.box.y0 + 2 : p.box.y1 - 2, p.box.x0 + 2 : p.box.x1 - 2] == 40 * k).all()  # pasted there
        assert all(iou(p.box, q.box) == 0 for q in a.placed[i + 1 :])
