"""`make demo`'s job: the daemon watches a generated video of shipped photos and announces each concept as it
comes, never the object nobody taught, and writes what it says as WAV files when a voice is installed."""

from __future__ import annotations

import re

from edge_rap.cli import main
from edge_rap.eval.demo import IN_THE_VIDEO


def test_demo_announces_each_arrival_and_leaving_and_nothing_else(settings, capsys, tmp_path):
    assert main(["demo", "--memory", str(tmp_path / "mem")]) == 0
    out = capsys.readouterr().out
    arrived = re.findall(r"<(\w+)> arrived: I can see <\1>", out)
    left = re.findall(r"<(\w+)> left", out)
    assert arrived == [*IN_THE_VIDEO, IN_THE_VIDEO[0]]  # in order, the first one again when it returns; no coins
    assert sorted(left) == sorted(arrived)
    speech = settings.home / "demo" / "speech"
    if "spoken lines:" in out:
        assert len(list(speech.glob("*.wav"))) >= 1
