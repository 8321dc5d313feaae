"""tools/bench_daemon.py's household video: the cases that reuse it measure the whole scene, never one cut short."""

from __future__ import annotations


import numpy as np
import pytest

from edge_rap.daemon.scenario import household_scenario, is_whole, write_video

@pytest.fixture
def bench(import_tool):
    return import_tool("bench_daemon")


def test_a_household_video_cut_short_is_written_again_and_a_whole_one_reused(bench, tmp_path, monkeypatch):
    # it was reused on exists() alone: a video a full disk or a stopped bench cut short was measured as the scene
    monkeypatch.setattr(bench, "household_scenario", lambda names, unknown, length_s: household_scenario(
        names, unknown, 2.0))  # (a short scene, written quickly)
    rng = np.random.default_rng(0)
    photos = {name: rng.integers(0, 256, (64, 64, 3), np.uint8) for name in ("chelsea", "mug", "rocket", "coins")}
    scenario = household_scenario(["chelsea", "mug", "rocket"], "coins", 2.0)
    short = household_scenario(["chelsea", "mug", "rocket"], "coins", 1.0)
    video = write_video(short, photos, photos["coins"], tmp_path / "household.mp4")
    assert bench.household_video(photos, photos["coins"], tmp_path) == video
    assert is_whole(video, scenario)
    written = video.stat().st_ino
    assert bench.household_video(photos, photos["coins"], tmp_path) == video
    assert video.stat().st_ino == written
