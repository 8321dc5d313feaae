"""`run`'s stop: its parts asked to stop together, within one budget (edge_rap/daemon/shutdown.py)."""

from __future__ import annotations

import threading

from edge_rap.daemon.service import stop_parts
from edge_rap.daemon.shutdown import Part, stop_together


class Blocking:
    """A part whose stop waits until every part was asked to stop (or `patience_s` passed): stopped one after
    another, the first would end before the next is asked."""

    def __init__(self, name: str, said: list[str], everyone: threading.Barrier, patience_s: float = 2.0):
        self.name, self.said, self.everyone, self.patience_s = name, said, everyone, patience_s

    def _stop(self, _timeout: float = 0.0) -> bool:
        self.said.append(f"asked {self.name}")
        try:
            self.everyone.wait(self.patience_s)
        except threading.BrokenBarrierError:
            pass
        self.said.append(f"ended {self.name}")
        return True

    stop = close = _stop


def test_the_voice_listener_the_api_and_the_speaker_are_all_asked_to_stop_before_any_ends():
    said: list[str] = []
    everyone = threading.Barrier(3)
    voice, server, speaker = (Blocking(n, said, everyone) for n in ("voice", "server", "speaker"))
    assert stop_parts(voice, server, speaker, requested=True) == []
    asked = [i for i, s in enumerate(said) if s.startswith("asked")]
    ended = [i for i, s in enumerate(said) if s.startswith("ended")]
    assert len(asked) == len(ended) == 3 and max(asked) < min(ended), said


def test_a_part_that_does_not_end_within_the_budget_is_named_and_not_waited_for(caplog):
    released = threading.Event()
    try:
        left = stop_together([Part("whisper", lambda budget: released.wait(60) or True),
                              Part("the speaker", lambda budget: True)], budget_s=0.05)
    finally:
        released.set()
    assert left == ["whisper"]


def test_a_part_that_fails_to_stop_is_logged_and_named_and_the_others_still_stop(caplog):
    def fails(budget: float) -> bool:
        raise OSError("the sound card went away")

    stopped: list[str] = []
    left = stop_together([Part("the speaker", fails), Part("the voice listener", lambda b: stopped.append("v") or True)])
    assert left == ["the speaker"] and stopped == ["v"] and "did not stop cleanly" in caplog.text


def test_a_line_handed_to_a_closed_speaker_is_never_waited_for():
    # The speaker stops beside the voice listener: an answer handed to it once closed was waited for 30 s (its
    # audio never started), the whole stop budget.
    from edge_rap.newest import NewestWorker

    worker = NewestWorker("speaker", lambda line: None)
    worker.close(1.0)
    assert worker.submit("a late answer") == "a late answer"  # never handled: settled at once
