"""What a category says a concept is: a person (its face registered), someone (an animal too), or a thing."""

from __future__ import annotations

from edge_rap.kinds import is_person
from edge_rap.speech.who import is_someone
from edge_rap.types import Concept


def test_a_person_is_told_by_the_rule_who_is_home_counts_by():
    # Before: is_person took the ten words alone, so `--category "little girl"` registered no face while "Is anyone
    # home?" counted her by her last word; the one rule now says both
    for person in ("little girl", "Old Man", "baby boy", "kids", "person"):
        assert is_person(person) and is_someone(Concept(1, "x", person, "", 0, 0, 1)), person
    for thing in ("toy soldier", "plastic baby", "toy-boy", "dog", "teddy bear", ""):
        assert not is_person(thing), thing
