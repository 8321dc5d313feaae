"""tools/bench_listen.py's held-out voices: a voice the machine lacks is skipped and said so, never measured as
another voice (flite given a voice it lacks says the line in its default voice, and exits 0)."""

from __future__ import annotations

import argparse
import sys

import pytest

@pytest.fixture
def bench(import_tool):
    return import_tool("bench_listen")


def test_a_voice_is_skipped_when_its_program_or_its_engines_list_lacks_it(bench, monkeypatch):
    assert bench.missing(bench.Voice("flite", "kal", ("no-such-synthesiser-here", "{wav}"))) == \
        "no-such-synthesiser-here not installed"
    # an engine whose list, as festival prints it, holds one voice
    monkeypatch.setitem(bench.LISTS, "festival", (["sh", "-c", "cat >/dev/null; echo '(ked_diphone kal_diphone)'"],
                                                  "(print (voice.list))"))
    assert bench.missing(bench.Voice("festival", "kal_diphone", ("sh",))) is None
    assert bench.missing(bench.Voice("festival", "kal", ("sh",))) == "festival has no voice kal"


def test_a_voice_says_the_line_as_its_argument_or_on_stdin(bench, tmp_path):
    line = "Hey robot, what colour is Anya's backpack"
    bench.Voice("x", "y", ("sh", "-c", 'printf %s "$1" > "$0"', "{wav}", "{line}")).say(line, tmp_path / "a")
    bench.Voice("x", "y", ("sh", "-c", 'cat > "$0"', "{wav}")).say(line, tmp_path / "b")
    assert (tmp_path / "a").read_text() == (tmp_path / "b").read_text() == line


def test_engines_are_checked_by_name(bench):
    assert bench.engines("espeak, flite") == ("espeak", "flite")
    with pytest.raises(argparse.ArgumentTypeError, match="not an engine: festvox"):
        bench.engines("espeak,festvox")
    with pytest.raises(argparse.ArgumentTypeError):
        bench.engines(",")


def test_the_choosing_set_says_nothing_in_a_held_out_voice(bench):
    assert {v.engine for v in bench.HELD_OUT.values()} == set(bench.ENGINES) - {"piper"}
    assert {v.argv for v in bench.CHOOSING.values()}.isdisjoint(v.argv for v in bench.HELD_OUT.values())


@pytest.mark.parametrize("argv, said", [
    (["latency", "--engines", "flite"], "only for `names` (latency's questions are said by piper"),
    (["--engines", "flite"], "only for `names`"),  # latency, the default
    (["names", "--choosing", "--engines", "flite"], "the choosing set's voices are fixed"),
    # names' own options to latency, and latency's to names: taken, and ignored
    (["latency", "--choosing"], "--choosing: only for `names`, not `latency`"),
    (["--beam", "3"], "--beam: only for `names`, not `latency`"),
    (["names", "--questions", "2"], "--questions: only for `latency`, not `names`"),
    (["names", "--questions", "0"], "--questions: only for `latency`, not `names`"),  # (0 was taken for none)
    (["latency", "--beam", "0"], "--beam: only for `names`, not `latency`"),
])
def test_an_option_where_it_is_not_used_is_refused_for_its_own_reason(bench, monkeypatch, capsys, argv, said):
    # `latency --engines flite` was told the choosing set's voices are fixed: it had not asked for that set
    monkeypatch.setattr(sys, "argv", ["bench_listen.py", *argv])
    with pytest.raises(SystemExit):
        bench.main()
    assert said in capsys.readouterr().err
