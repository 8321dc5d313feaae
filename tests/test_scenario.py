"""Generated scenes: what is shown where and when (edge_rap/daemon/scenario.py)."""

from __future__ import annotations

import numpy as np

from edge_rap.daemon.scenario import Appearance, Scenario, render_frame


def test_an_appearance_shows_the_photo_it_names_and_its_own_by_default():
    red, blue = np.full((60, 60, 3), (255, 0, 0), np.uint8), np.full((60, 60, 3), (0, 0, 255), np.uint8)
    photos = {"mug": red, "mug@again": blue}
    scene = Scenario((Appearance("mug", 0.0, 10.0, 0.5, 0.5), Appearance("mug", 10.0, 20.0, 0.5, 0.5,
                                                                           photo="mug@again")), 20.0)
    background = np.zeros((480, 640, 3), np.uint8)
    first, again = (render_frame(scene, photos, background, t)[240, 320] for t in (5.0, 15.0))
    assert first.tolist() == [255, 0, 0] and again.tolist() == [0, 0, 255]  # another photo of the same thing
    assert [a.name for a in scene.visible(15.0)] == ["mug"]
