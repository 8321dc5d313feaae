"""`make demo`'s job: concepts provisioned from shipped photos are recognised in new frames; coins are none."""

from __future__ import annotations

from edge_rap.cli import main


def test_demo_recognises_every_concept_frame_and_nothing_in_the_last(settings, capsys, tmp_path):
    assert main(["demo", "--memory", str(tmp_path / "mem")]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("  [template]")]
    expected = ["chelsea", "grace", "mug", "rocket", "chelsea"]
    assert len(lines) == 6
    for line, name in zip(lines, expected):
        assert line.startswith(f"  [template] I can see <{name}>") and line.count("<") == 1, line
    assert "don't see anyone or anything" in lines[-1]
