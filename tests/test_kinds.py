"""What a category says a concept is: a person (its face registered), someone (an animal too), or a thing."""

from __future__ import annotations

from edge_rap.kinds import is_person
from edge_rap.speech.who import is_someone, spoken_category
from edge_rap.types import Concept


def test_a_person_is_told_by_the_rule_who_is_home_counts_by():
    # Before: is_person took the ten words alone, so `--category "little girl"` registered no face while "Is anyone
    # home?" counted her by her last word; the one rule now says both
    for person in ("little girl", "Old Man", "baby boy", "person"):
        assert is_person(person) and is_someone(Concept(1, "x", person, "", 0, 0, 1)), person
    for thing in ("toy soldier", "plastic baby", "toy-boy", "dog", "teddy bear", ""):
        assert not is_person(thing), thing


def test_a_glass_frog_is_a_frog_and_a_glass_cat_a_thing():
    # Before: "glass" before an animal always made it a thing, so a pet glass frog (a frog species) was left out of
    # "Is anyone home?"; one made of glass still is a thing
    for animal in ("glass frog", "Glass Frogs", "glass lizard", "guinea pig"):
        assert is_someone(Concept(1, "x", animal, "", 0, 0, 1)), animal
    for thing in ("glass cat", "toy glass frog", "glass-bird"):
        assert not is_someone(Concept(1, "x", thing, "", 0, 0, 1)), thing


def test_a_spoken_animal_of_two_words_is_its_category_whole():
    # Before: "remember this as my guinea pig" stored the category "pig", "my glass frog" "frog", and "my bush baby"
    # none (a baby is a person's word): kinds knows them as animals of two words, as typed with --category; "my sea
    # lion" was a `lion`, and no one home; "our sea horse" a `horse` (a fish, kept as a pet as a goldfish is)
    for said, category in (("my guinea pig", "guinea pig"), ("my bush baby", "bush baby"),
                           ("our glass frog", "glass frog"), ("the guinea pigs", "guinea pigs"),
                           ("my sea lion", "sea lion"), ("the sea otters", "sea otters"),
                           ("our sea turtle", "sea turtle"), ("our sea horse", "sea horse")):
        assert spoken_category(said) == category, said
        assert is_someone(Concept(1, "x", category, "", 0, 0, 1)) and not is_person(category), said
    assert spoken_category("my toy guinea pig") == "toy guinea pig" and spoken_category("my baby") == ""


def test_a_thing_named_after_a_person_registers_no_face():
    # Before: "game boy", "snow man", "Spider-Man" were people by their last word, so `remember --category "game boy"`
    # of a console's photo was refused ("no face found") and `add-views` to one remembered before it too
    for thing in ("game boy", "snow man", "gingerbread man", "Spider-Man", "pac-man", "tin man", "action man"):
        assert not is_person(thing) and not is_someone(Concept(1, "x", thing, "", 0, 0, 1)), thing
        assert spoken_category(f"my {thing.lower()}") == thing.lower(), thing
    assert is_person("little girl") and is_person("old man")


def test_a_group_of_people_is_someone_home_but_no_face_to_register():
    # Before: "kids" and "girls" were people by the plural who-is-home counts, so `remember kids us.jpg --category
    # kids` of them together was refused "2 faces found: which face?", where it was remembered whole before
    for group in ("kids", "Girls", "little boys", "babies", "people"):
        assert is_someone(Concept(1, "x", group, "", 0, 0, 1)), group
        assert is_person(group) == (group == "people"), group  # "people" was one of the ten words alone


def test_a_bush_baby_is_an_animal_and_men_are_someone_home():
    # Before: "bush baby" was a person by its last word (its photo asked for a face), and "men", "women", "children"
    # were no one home, where "kids" were: their plurals are not made with an "s"
    for animal in ("bush baby", "Bush Babies", "little bush baby"):
        assert not is_person(animal) and is_someone(Concept(1, "x", animal, "", 0, 0, 1)), animal
    assert not is_someone(Concept(1, "x", "toy bush baby", "", 0, 0, 1))
    for group in ("men", "Women", "children", "little children"):
        assert is_someone(Concept(1, "x", group, "", 0, 0, 1)) and not is_person(group), group
    assert not is_someone(Concept(1, "x", "snow men", "", 0, 0, 1))


def test_the_readme_says_whom_is_anyone_home_counts_as_the_code_does():
    # README's list of a person's categories said "as 'Is anyone home?' counts people": it counts pets and concepts
    # of no category too, on purpose (a pet home is someone home; a person remembered without one is not left out)
    import re
    from pathlib import Path

    assert is_someone(Concept(1, "x", "dog", "", 0, 0, 1)) and is_someone(Concept(1, "x", "", "", 0, 0, 1))
    assert not is_someone(Concept(1, "x", "mug", "", 0, 0, 1))
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    text = " ".join(re.sub(r"\n\s*#", "\n", readme).split())  # the usage block's comments read as one text
    said = re.findall(r'"Is anyone home\?" counts ([^;]*)', text)
    assert said, "README no longer says whom it counts: keep this test with what it says"
    for counted in said:
        assert "pets" in counted and "no category" in counted, counted
