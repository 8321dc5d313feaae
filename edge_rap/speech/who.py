""""Is anyone home?", "Who is here?", "Who was here today?": answered from the current frame and the sightings.

These name no concept, so the name matcher finds none and the assistant could only say "I don't know who or what
you mean". They are about the household's people and pets: concepts whose category says a person or an animal,
and those with no category (a person remembered without one must not be left out). A thing (a mug) is not "who".
"""

from __future__ import annotations

import re
import time
import unicodedata
from dataclasses import dataclass

from edge_rap.generate.narrate import listed
from edge_rap.kinds import PERSON_CATEGORIES, animal, is_alive, made, singular
from edge_rap.memory.store import straight_apostrophes
from edge_rap.speech.sightings import ago_of, comparable, the_camera
from edge_rap.types import Concept, Recognition
from edge_rap.words import is_number

#: Words for the household's people that a spoken name may be ("my mum"): someone, not a thing named by its noun.
_KIN = frozenset("""mum mom mummy mommy mother dad daddy father parent son daughter wife husband partner brother sister
    grandma grandpa granny grandad grandmother grandfather nan nana auntie aunt uncle cousin niece nephew friend
    neighbour neighbor nanny babysitter flatmate roommate lodger guest children boyfriend girlfriend fiance fiancee
    grandson granddaughter grandchild grandchildren grandkid grandparent stepmum stepmom stepdad stepson stepdaughter
    sibling twin toddler teen teenager family mate buddy pal bestie colleague housemate visitor carer""".split())
#: Words said before a name ("my aunt mary", whisper's "my Mr whiskers"): the name of someone, not a thing's noun.
_TITLES = frozenset("aunt auntie aunty uncle grandma grandpa granny grandad gran nan nana cousin mr mrs ms miss sir dr"
                    .split())
#: A name said as a noun: after "my", "our", "your", "the", "a", "an" or someone's ("Anya's backpack"), the rest as
#: whisper writes a common noun (no capital: not "my Luna"), a number in it too ("the cat 2"), after a brand at most
#: (a capital before a noun in lower case: "my Lego man" is the "lego man" typed, a thing; "our Aunt Mary" a name).
_AS_NOUN = re.compile(r"^\W*(?:(?:my|our|your|the|an?|[^\W\d_]+(?:'s|s'))\W+)+"
                      r"(?P<noun>(?:[A-Z][A-Za-z0-9]*[\s-]+(?=[a-z0-9]))?[a-z0-9][a-z0-9\s'-]*?)\W*$")

#: The rest of the question after "who is here" / "who was here": a time at most, and a word said to the device
#: ("is anyone home, robot?"); "who is in the kitchen?", "who was that?" and "who is in this picture?" ask
#: something else, of the frame or of the world.
#: Where a question ends: the text's end, or its sentence's, when someone else's talk, heard under it, follows
#: ("Who is here? So then we went to the market").
SENTENCE_END = r"\W*(?:$|(?<=[.?!])\s)"
_END = (r"(\s+yet|\s+(right\s+)?now|\s+at the moment|\s+(so far\s+)?today|\s+this (morning|afternoon|evening)"
        r"|\s+tonight)?(,\s*\w+)?" + SENTENCE_END)
_THERE = r"(home|here|around|back|in( the house)?)"
_NOW = re.compile(r"\b(who('s| is| are)( at)? " + _THERE + r"|((is|are) )?(any|some|every)(one|body)( at)? " + _THERE +
                  r"|where('s| is| are) every(one|body))" + _END, re.I)
#: "Everyone in!", "Everybody here!": without "is", a sentence of everyone that ends in "!" bids, and is no question.
#: One that ends in "." still asks: whisper writes espeak's "Everyone in?" and "Everyone in!" alike, "Everyone in.",
#: and a bidding answered with who is home costs less than a question left unanswered. "yet" always asks.
_EVERYONE_TOLD = re.compile(r"(?<!\bis )(?<!\bare )\bevery(one|body)(( at)? " + _THERE + r"|\s+(phone|foam))\b"
                            r"(?!.*\byet\b)[^?!]*!(?=\s|[^\w?]*$)", re.I)
#: "Anyone home?" as whisper writes it for some voices, "anyone phone?" (and "foam", as for "Is Sora home?"): taken so
#: only opening a sentence, after a wake phrase ("Hey robot anyone phone?", as said without --wake) at most, alone or
#: after "is"/"are" ("is there"), with no time but "now" ("Anyone phone this morning?" asks about a call, as "Did
#: anyone phone?" does), and not "It is someone phone." (whisper's "someone's phone").
_HOME_SLIP = re.compile(r"(^\W*((hey|hi|ok|okay)\W+\w+\W+)?|[.,!?]\s*)((is|are)\s+(there\s+)?)?"
                        r"(any|some|every)(one|body)\s+(phone|foam)(\s+(right\s+)?now|\s+at the moment)?(,\s*\w+)?"
                        + SENTENCE_END,
                        re.I)
_TODAY = re.compile(r"\b(who (was|were|came|has been|have you seen|did you see)|(did|have) you seen? "
                    r"(any|some)(one|body)|(any|some)(one|body) (came|come|been))"
                    r"(( at)? (home|here|around|back|in|by|over))?" + _END, re.I)


@dataclass(frozen=True)
class WhoQuestion:
    """What a question asks about the household: who is there now, or who was seen today."""

    today: bool


def asks_who(question: str) -> WhoQuestion | None:
    """The kind of "who" question, or None for any other; "Who’s home?" typed on a phone asks as "Who's home?"."""
    question = straight_apostrophes(question)
    if _TODAY.search(question):
        return WhoQuestion(today=True)
    told = [m.start() for m in _EVERYONE_TOLD.finditer(question)]  # a bidding unasks only its own sentence:
    # "Everyone in! Who is here?" asks
    for m in (*_NOW.finditer(question), *_HOME_SLIP.finditer(question)):
        if not any(m.start() <= start < m.end() for start in told):
            return WhoQuestion(today=False)
    return None


def is_someone(concept: Concept) -> bool:
    """A person or an animal by its category (`kinds.is_alive`: "our kittens", "golden retriever"; not "teddy
    bear"), or of no category: a person remembered without one must not be left out."""
    return not concept.category.strip() or is_alive(concept.category)


def spoken_category(said: str) -> str:
    """The category of a concept remembered by voice, from the words of its name ("remember this as my keys"):
    a name said as a noun ("my keys", "the red mug", "our dog") has that noun for a category, so that a thing is
    not counted as someone home, while an animal's noun still is; a person's noun ("my mum") and a proper name
    ("Luna": a pet's as likely as a person's) give none, as a concept remembered without `--category` has, which
    counts as someone. A person's category is never given by voice: it asks for a face the frame may not show."""
    folded = unicodedata.normalize("NFKD", straight_apostrophes(said)).encode("ascii", "ignore").decode()  # "café"
    m = _AS_NOUN.match(folded)
    # its last word but a number ("the cat two" is a cat, not a "two")
    words = [w for w in m["noun"].lower().replace("'", "").split() if not is_number(w)] if m else []
    if not words or set(words[:-1]) & _TITLES:  # "my Aunt mary" is a person's name, not a "mary"
        return ""
    if made_like := made(words):  # "my teddy bear": no bear; "the plastic baby": no one, as typed
        return " ".join(words[-made_like:])
    if (last := animal(words)) > 1:  # "my guinea pig", "my bush baby": the animal of two words, as typed
        return " ".join(words[-last:])
    return "" if singular(words[-1]) & (PERSON_CATEGORIES | _KIN) else words[-1]


def answer_who(home, asked: WhoQuestion, recognition: Recognition | None,
               now: float | None = None) -> tuple[str, list[str]]:
    """The answer's text and the names it is about."""
    now = time.time() if now is None else now
    someone = sorted((c.name for c in home.concepts() if is_someone(c)), key=str.casefold)
    if not someone:
        return "I don't know anyone yet.", []
    return (_seen_today if asked.today else _there_now)(home, someone, recognition, now)


def _there_now(home, someone: list[str], recognition: Recognition | None, now: float) -> tuple[str, list[str]]:
    hits = recognition.hits if recognition else []
    here = [h.concept.name for h in hits if h.accepted and h.concept.name in someone]
    latest = {n: home.events.last_seen(n) for n in someone if n not in here}
    elsewhere = {n: e for n, e in latest.items() if e is not None and e.kind == "arrived"}
    parts = [f"<{n}> is here" for n in here]
    parts += [f"<{n}> is on {the_camera(e.camera)}" for n, e in elsewhere.items()]
    if parts:
        return listed(parts) + " now.", here + list(elsewhere)
    gone = [e for e in latest.values() if e is not None]
    if not gone:
        return "I don't see anyone I know, and I haven't seen anyone yet.", []
    last = max(gone, key=lambda e: e.wall)
    return (f"I don't see anyone I know right now. I last saw <{last.name}> on {the_camera(last.camera)} "
            f"{ago_of(last.wall, now)}."), [last.name]


def _seen_today(home, someone: list[str], recognition: Recognition | None, now: float) -> tuple[str, list[str]]:
    """Seen today: in the frame, or a latest sighting since midnight (by the same clock: not one logged in 2026
    while the clock, not set yet, says 1970), or an arrival not yet left (a visit that began yesterday)."""
    midnight = time.mktime(time.localtime(now)[:3] + (0, 0, 0, 0, 0, -1))
    here = {h.concept.name for h in (recognition.hits if recognition else []) if h.accepted}
    latest = {n: home.events.last_seen(n) for n in someone if n not in here}
    seen = [n for n in someone if n in here or (latest[n] is not None and (
        latest[n].wall >= midnight and comparable(latest[n].wall, now) or latest[n].kind == "arrived"))]
    if not seen:
        return "I haven't seen anyone I know today.", []
    return "Today I saw " + listed([f"<{n}>" for n in seen]) + ".", seen
