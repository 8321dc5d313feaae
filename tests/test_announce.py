"""The announcer with a VLM when the memory changes while a line is written: a concept forgotten or renamed in
those seconds."""

from __future__ import annotations

from test_daemon_parts import frame, hit

from edge_rap.daemon.announce import Announcement, Announcer
from edge_rap.types import Answer, Concept, Event, Recognition

BO, MOCHI = Concept(1, "bo", "dog", "", 0.0, 0.0), Concept(2, "mochi", "cat", "", 0.0, 0.0)


def announced(while_written: dict[int, str]) -> tuple[list[Event], list[str]]:
    """What is reported and said of <bo>'s arrival, <mochi> in view, when the memory holds `while_written`
    (id -> name) from the moment the VLM starts writing "I can see <bo> by <mochi>."."""
    known, reported, said = {1: "bo", 2: "mochi"}, [], []

    class Changing:
        def ask(self, question, image, recognition=None):
            known.clear()
            known.update(while_written)
            return Answer("I can see <bo> by <mochi>.", "vlm", "caption")

    announcer = Announcer(reported.append, said.append, Changing(), known=lambda: dict(known))
    event = Event("arrived", "bo", "cam0", 0.0, 0.0, None, 0.7, "I can see <bo>.", concept_id=1)
    announcer.submit(Announcement([event], frame(0), Recognition("f0", (4, 4), [hit(BO), hit(MOCHI)])))
    assert announcer.flush(60)
    announcer.close(60)
    return reported, said


def test_a_line_whose_concept_was_forgotten_while_it_was_written_is_not_said():
    assert announced({2: "mochi"}) == ([], [])


def test_a_concept_renamed_while_its_line_was_written_is_said_and_reported_by_its_new_name():
    # Before: the VLM's line named <bo>, a name no command knew any more, in the speech and the log
    reported, said = announced({1: "beau", 2: "mochi"})
    assert [(e.name, e.said) for e in reported] == [("beau", "I can see <beau> by <mochi>.")]
    assert said == ["I can see <beau> by <mochi>."]


def test_two_concepts_that_swapped_names_meanwhile_are_swapped_once_in_the_line():
    reported, said = announced({1: "mochi", 2: "bo"})
    assert said == ["I can see <mochi> by <bo>."] and reported[0].name == "mochi"


def test_a_party_arriving_at_once_is_described_three_at_a_time_and_the_rest_named():
    # Before: twelve guests arriving in one frame were each described: 1437 characters, a minute and a half of
    # speech with every newer line, an answer too, waiting behind it
    from edge_rap.daemon.announce import DESCRIBED, template_line
    from edge_rap.types import Box, Hit

    about = "A friend from work who always brings cake."
    guests = [Hit(Concept(k, f"guest{k}", "person", about, 0.0, 0.0), 0.8, 0.6, Box(0, 0, 10, 10)) for k in range(12)]
    line = template_line(guests, (100, 100))
    assert line.count(about[:-1]) == DESCRIBED == 3
    assert line.endswith(" <guest3>, <guest4>, <guest5>, <guest6>, <guest7>, <guest8>, <guest9>, <guest10> and "
                         "<guest11> are here too.")
    assert template_line(guests[:4], (100, 100)).endswith(" <guest3> is here too.")
    assert template_line(guests[:1], (100, 100)) == f"I can see <guest0> on the left — {about}"
