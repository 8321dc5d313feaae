"""What a concept's category says it is: a person (`remember` registers the face of its photo), an animal (someone,
for "is anyone home?"), or a thing made like one ("teddy bear", "plastic baby"). One rule for the faces and for
"who" alike: a category of several words is its last (`--category "little girl"` is a girl, "golden retriever" a
dog), unless the word just before it makes it a thing."""

from __future__ import annotations

import re

#: Categories whose concepts are people: remembering one registers the face of its photo.
PERSON_CATEGORIES = frozenset("person people human man woman child boy girl baby kid".split())
#: Breeds: the word before one names the breed ("toy poodle", "wheaten terrier"), not a thing made like it.
BREEDS = frozenset("labrador retriever collie spaniel terrier poodle beagle pug dachshund husky tabby".split())
#: Categories that make a concept someone ("who"), besides the person ones: a glass frog is a frog of its own
#: (Centrolenidae), not one made of glass, a sea lion no lion, and a sea horse (a fish) no horse.
ANIMAL_CATEGORIES = frozenset("""pet animal dog puppy pup doggy cat kitten kitty bird parrot budgie canary cockatiel
    rabbit bunny hamster gerbil guinea_pig bush_baby chinchilla ferret horse pony donkey goat sheep pig chicken hen duck
    fish goldfish turtle tortoise lizard gecko snake rat frog cow lamb hedgehog parakeet glass_frog glass_lizard
    glass_snake sea_lion sea_otter sea_turtle sea_horse seahorse""".split()) | BREEDS
#: Plurals of person words not made with an "s": "men" are someone home, as "kids" are.
IRREGULAR = {"men": "man", "women": "woman", "children": "child"}
#: Words that make the animal or person named after them a thing: a teddy bear, a rubber duck, a rocking horse; a
#: snow man, a gingerbread man, a game boy, a spider-man (a toy's photo shows no face to register).
MADE = frozenset("""toy teddy stuffed plush plushie soft cuddly rubber rocking wooden plastic ceramic porcelain china
    glass paper cardboard inflatable robot robotic clockwork lego fake hot snow gingerbread tin iron straw stick game
    pac spider action""".split())


def is_person(category: str) -> bool:
    """Whether a concept of this category is a person, by `is_of`: "girl", "little girl"; not "plastic baby", nor
    "kids": a group, whose photo shows several faces, is remembered whole, as one registers one face."""
    return is_of(category, PERSON_CATEGORIES, plural=False)


def not_its_noun(name: str, category: str) -> bool:
    """Whether a concept's name said as the ordinary word ("the pepper", `words.as_noun`) is not it: a person's or an
    animal's (`is_alive`), in a question and a command alike, unless that word is its own category's ("Forget the
    seahorse." of a seahorse <seahorse>)."""
    return is_alive(category) and _letters(name) != _letters(category)


def _letters(words: str) -> str:
    """The letters and digits of words in lower case: a name is its category's word however written ("Sea-Horse")."""
    return re.sub(r"[\W_]+", "", words.lower())


def is_alive(category: str) -> bool:
    """Whether a concept of this category is a person or an animal (`is_of`): its name is no ordinary word where
    used as one ("Pass the pepper." of a dog <pepper>: `words.as_noun`); a thing's, or one of no category, may be."""
    return is_of(category, PERSON_CATEGORIES | ANIMAL_CATEGORIES)


def is_of(category: str, kinds: frozenset[str], plural: bool = True) -> bool:
    """Whether `category` (any case) is one of `kinds`, in the plural too where `plural`: as a whole, its words
    joined ("guinea pig"), or by its last word ("dog toy" is a toy) or two (`animal`: a "bush baby" is no baby),
    unless the word before them makes it a thing (`made`)."""
    category = category.strip().lower()
    words = re.split(r"[\s_-]+", category)
    whole = (category.replace(" ", "_"),) + (() if made(words) else ("_".join(words[-animal(words):]),))
    return any((singular(w) if plural else {w}) & kinds for w in whole)


def made(words: list[str]) -> int:
    """How many words at the end name a thing made like an animal or a person ("teddy bear": 2, "toy guinea pig": 3;
    0 for none), as spoken and typed alike: only the word just before the animal makes it a thing ("soft-coated
    wheaten terrier", "teddy bear hamster" are animals), and never before a breed ("toy poodle" is a dog)."""
    last = animal(words)
    thing = len(words) > last and words[-last - 1] in MADE and not singular(words[-1]) & BREEDS
    return last + 1 if thing else 0


def animal(words: list[str]) -> int:
    """How many words at the end name the animal or person: 2 for an animal of two words ("guinea pig", "bush
    baby"), else 1."""
    return 2 if len(words) > 1 and singular("_".join(words[-2:])) & ANIMAL_CATEGORIES else 1


def singular(noun: str) -> set[str]:
    """A noun and what it may be the plural of: "the puppies", "the babies" and "the men" too, not only "the
    kittens"."""
    return {noun, IRREGULAR.get(noun, noun), noun.removesuffix("s"), noun.removesuffix("es"),
            noun[:-3] + "y" if noun.endswith("ies") else noun}
