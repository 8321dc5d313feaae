"""`run`'s stop: its parts asked to stop together, within one budget (edge_rap/daemon/shutdown.py)."""

from __future__ import annotations

import threading
import time

import pytest

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
    assert "whisper had not stopped when the stop's 0.05 s were spent" in caplog.text


def test_a_part_whose_own_wait_ends_first_is_said_when_not_as_the_whole_budget(caplog):
    # Before: the companion API, its 5 s for the requests and 1 s for its server spent, was said as "did not stop
    # within 20 s" (1.5 s after a SIGTERM, where its wait was 0.5 s), and its 503s logged after that line
    now = [100.0]

    def gives_up(budget: float) -> bool:
        now[0] += 6.0  # (its own wait, on the stop's clock)
        return False

    left = stop_together([Part("the companion API", gives_up), Part("the speaker", lambda budget: True)],
                         budget_s=20.0, clock=lambda: now[0])
    assert left == ["the companion API"]
    assert ("the companion API had not stopped when its own stop ended, 6.0 s into the stop: it goes down with "
            "the process") in caplog.text and "20 s" not in caplog.text and "speaker" not in caplog.text


def test_a_part_that_fails_to_stop_is_logged_and_named_and_the_others_still_stop(caplog):
    def fails(budget: float) -> bool:
        raise OSError("the sound card went away")

    stopped: list[str] = []
    left = stop_together([Part("the speaker", fails),
                          Part("the voice listener", lambda b: stopped.append("v") or True)])
    assert left == ["the speaker"] and stopped == ["v"] and "did not stop cleanly" in caplog.text
    assert "the speaker had not stopped when its own stop ended" in caplog.text


@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt()])
def test_a_part_whose_stop_raises_what_is_no_exception_is_said_as_such(caplog, raised):
    # Before: its thread ended with the raise unsaid (SystemExit silently), and the part was said to have had the
    # stop's whole budget ("the stop's 20 s were spent"), a few milliseconds into it
    def exits(budget: float) -> bool:
        raise raised

    left = stop_together([Part("the speaker", exits)], budget_s=20.0)
    assert left == ["the speaker"] and "the speaker did not stop cleanly" in caplog.text
    assert type(raised).__name__ in caplog.text and "20 s" not in caplog.text
    assert "the speaker had not stopped when its own stop ended" in caplog.text


def test_a_line_handed_to_a_closed_speaker_is_never_waited_for():
    # The speaker stops beside the voice listener: an answer handed to it once closed was waited for 30 s (its
    # audio never started), the whole stop budget.
    from edge_rap.newest import NewestWorker

    worker = NewestWorker("speaker", lambda line: None)
    worker.close(1.0)
    assert worker.submit("a late answer") == "a late answer"  # never handled: settled at once


def test_run_left_with_whisper_running_exits_0_at_once_not_through_the_exit_handlers(run, monkeypatch, settings):
    # Before: `run` returned, and the interpreter's exit (C++'s static destructors) aborted the process under
    # whisper's native threads: exit 134, and systemd marked the unit failed after a stop it asked for.
    import os

    from edge_rap.daemon import loop, service

    settings.memory.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(service, "run_daemon",
                        lambda *args, **kwargs: loop.Summary(still_running=["the voice listener"]))
    exits = []

    def exit_now(code: int) -> None:
        exits.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(os, "_exit", exit_now)
    with pytest.raises(SystemExit):
        run("run", "--source", "cam=/dev/null")
    assert exits == [0]


def test_an_arrival_line_the_stop_cut_is_reported_with_its_template_and_not_said():
    # Before: the VLM's greeting cut by the stop ("Hello <c0>, you") was printed and handed to the speaker.
    import numpy as np

    from edge_rap.daemon.announce import Announcement, Announcer
    from edge_rap.types import Answer, Event, Frame, Recognition

    class Stopping:
        def ask(self, question, image, recognition=None):
            return Answer("Hello <c0>, you", "vlm", "caption", stopped="interrupted")

    reported, said = [], []
    announcer = Announcer(reported.append, said.append, Stopping())
    frame = Frame("cam0", 0, 0.0, np.zeros((4, 4, 3), np.uint8))
    announcer.submit(Announcement([Event("arrived", "c0", "cam0", 0.0, 0.0, None, 0.7, "c0 arrived")], frame,
                                  Recognition("frame0", (4, 4))))
    assert announcer.flush(60)
    announcer.close(60)
    assert [(e.name, e.said) for e in reported] == [("c0", "c0 arrived")] and said == []


def test_a_second_signal_ends_the_stops_wait_at_once(caplog):
    # A second Ctrl-C did nothing: `run` waited its 20 s for a part still working (a question being transcribed, an
    # upload being stored), saying nothing
    from edge_rap.stopping import Stop

    stop, released = Stop(), threading.Event()
    stop.signalled()  # the first: the stop
    threading.Timer(0.1, stop.signalled).start()  # the second, as the stop waits
    try:
        left = stop_together([Part("whisper", lambda budget: released.wait(600) or True),
                              Part("the speaker", lambda budget: True)], budget_s=600, hurry=stop.on_hurry)
    finally:
        released.set()
    assert left == ["whisper"] and stop.hurried
    assert "whisper had not stopped when the stop was hurried (a second signal), " in caplog.text


def test_a_stop_hurried_before_a_waiter_asks_tells_it_at_once():
    from edge_rap.stopping import Stop

    stop, told = Stop(), []
    stop.on_hurry(lambda: told.append("early"))
    stop.signalled()
    assert stop.is_set() and told == [] and not stop.hurried  # the first signal stops; it does not hurry
    stop.signalled()
    stop.on_hurry(lambda: told.append("late"))
    assert told == ["early", "late"]


def test_a_part_whose_waits_the_hurry_ends_is_waited_for_its_end(caplog):
    # `run --serve`: a second Ctrl-C gave up the companion API's waits, and at once the wait for it, its server still
    # stopping (its 1 s): the memory closed and the process ended under its requests (two answered 500 "Internal
    # Server Error", tracebacks), and the stop's "3 requests still running ...: answered 503" was not said
    from edge_rap.stopping import Stop

    stop, given_up = Stop(), threading.Event()
    stop.signalled()
    stop.on_hurry(given_up.set)  # (the API's waits: InFlight.give_up)

    def api(budget: float) -> bool:
        stop.signalled()  # the second Ctrl-C, as it waits
        assert given_up.wait(60)
        time.sleep(0.2)  # its server's end, once its waits ended
        return True

    left = stop_together([Part("the companion API", api, hurried_s=60)], budget_s=600, hurry=stop.on_hurry)
    assert left == [] and "had not stopped" not in caplog.text, caplog.text
