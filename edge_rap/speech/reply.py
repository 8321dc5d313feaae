"""What to answer to a spoken question: names matched to the memory first, then one of four ways.

- A name that sounds like two concepts: ask which one was meant.
- "Where is X?" / "Is X home?": the current frame when X is in it, else the latest sighting in the event log
  ("I last saw <bo> on the den camera 4 minutes ago"); "Is anyone home?" / "Who was here today?" likewise, of the
  household's people and pets (who.py).
- A question about a concept that needs no image ("What colour is Bo's collar?"): text only.
- Anything else: retrieve + generate with the latest frame; the matched names are written <name> in the
  question, so the assistant retrieves them first, as RAP does with names in a question.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

from edge_rap.kinds import not_its_noun
from edge_rap.memory.store import name_key, straight_apostrophes
from edge_rap.speech.names import Heard, Names, heard_as, joined_apart, made_of, mark_names, match_names, spoken_form
from edge_rap.speech.sightings import ago_of, the_camera
from edge_rap.speech.who import SENTENCE_END, WhoQuestion, answer_who, asks_who
from edge_rap.types import Answer, Concept, Image, Recognition
from edge_rap.words import COMMON, FILLER, FILLERS

_WHERE = re.compile(r"\b(where('s| is| are|'re)?|home|around|is .{1,40}\b(here|back|in|there)|have you seen|"
                    r"did you see|when did you( last)? see|seen)\b"
                    # "Can you find Bo?", "Find Anya.", "I can't find Bo.": asked to find it (not "Did Bo find his
                    # ball?")
                    r"|(^|[,.!?]\s*|\b(you|me|us)\s+|\b(i|we)\s+(can'?t|cannot|can not|couldn'?t)\s+)"
                    r"(please\s+)?(find|locate)\b"
                    # "Is Bo outside?", "Has Anya left yet?", "Has Mochi gone out?": a question that ends there (not
                    # "Is Bo out of food?", "Has Bo gone out of his mind?")
                    r"|\b(is|are)\s.{1,40}\b(out|outside|away)" + SENTENCE_END +
                    r"|\b(did|has|have)\s.{1,40}\b(leave|left|gone(\s+(out|outside|for\s+a\s+walk))?)"
                    r"(\s+(yet|already|home))?" + SENTENCE_END, re.I)


def _asks_where(question: str) -> bool:
    """Whether `question` asks where something is (_WHERE), "I can’t find Bo" typed on a phone too."""
    return bool(_WHERE.search(straight_apostrophes(question)))


#: A word that starts a question, capitalised as whisper writes a sentence's first word
_ASKING_START = r"(?-i:Where|What|Who|When|Which|Why|How|Is|Are|Was|Were|Did|Do|Does|Has|Have|Can|Could|Will)\b"
#: Where a transcript's sentence ends, as who.SENTENCE_END has it, but not after a title ("Where is Dr. Bo?") nor
#: after an abbreviation with an inner dot ("Where was Bo at 5 p.m. yesterday?": "p.m.", "a.m.", "e.g.", "U.S."),
#: unless a capitalised question word follows it ("I saw Bo at 5 p.m. Where is Anya?"), nor after "etc." but before
#: a capital ("Are Bo, Anya etc. outside?"; "Where are the leashes etc. Bo needs one." asks nothing of <bo>)
_SENTENCE_BREAK = re.compile(r"(?<=[.?!])(?<!\bmr\.)(?<!\bmrs\.)(?<!\bms\.)(?<!\bdr\.)(?<!\bst\.)"
                             r"(?:(?<![^\W\d_]\.[^\W\d_]\.)(?<!\betc\.)\s+|(?<=\betc\.)\s+(?=(?-i:[A-Z]))"
                             r"|\s+(?=" + _ASKING_START + "))", re.I)


def _sentences(question: str) -> list[tuple[int, int]]:
    """The spans of the transcript's sentences: a question may be one of several (others' talk heard under it, or the
    user's own), and is about the names of its own sentence: "Is the milk out? Bo said so." asks nothing of <bo>."""
    cuts = [(m.start(), m.end()) for m in _SENTENCE_BREAK.finditer(question)]
    return list(zip([0] + [end for _, end in cuts], [start for start, _ in cuts] + [len(question)]))


#: Words that go on asking with another name ("Where is Bo? Also Anya.", "Plus Anya?"), besides common ones ("And").
_GOING_ON = frozenset("also plus either besides likewise".split())


#: A where question that names no one but points back ("I lost my keys. Where are they?"): it is about the names of
#: the last sentence before it that has any, as does one whether he, she or they left ("Max ate at 7 a.m. Has he
#: left?"). Not "Bo is barking. Is it out?", which may be of anything.
_WHERE_IS_THAT = re.compile(r"\b(where|have you seen)\b.*\b(it|they|them|he|she|him|her)\b"
                            r"|\b(has|have|did)\s+(he|she|they)\b", re.I)


def _asked_where(question: str, names: Names, concepts: list[Concept]) -> Names:
    """The names heard in a sentence that asks where (_asks_where), or that goes on asking it with names and common
    words alone ("Where is Anya? And Bo?", "Also Bo.", "Has Bo left? Well, has Max?": a filler, FILLERS, too), or
    that points back with "it", "they", "she"... to the last that has any (_WHERE_IS_THAT): "Where is Bo? Anya wants
    him." is about <bo>, and so is "Bo is hungry. Where is she?". `concepts`: those the names are of, a person's or
    an animal's read as `heard_names` reads them."""
    heard, asking, earlier = [], False, []
    for a, b in _sentences(question):
        own = _heard_in(question, a, b, names, concepts)
        rest = "".join(question[start:end] for start, end in zip([a] + [h.end for h in own],
                                                                  [h.start for h in own] + [b]))
        asking = _asks_where(question[a:b]) or asking and set(re.findall(r"[^\W\d_]+", rest.lower())) <= \
            COMMON | _GOING_ON | FILLERS
        meant = own or (earlier if _WHERE_IS_THAT.search(question[a:b]) else [])
        heard += [h for h in meant if h.name not in {n.name for n in heard}] if asking else []
        earlier = own or earlier
    return Names(heard, names.ambiguous)


def _heard_in(question: str, a: int, b: int, names: Names, concepts: list[Concept]) -> list[Heard]:
    """The names heard in the sentence from `a` to `b`, also those heard first in another one: match_names keeps a
    name said twice where it was first said ("I lost my keys. Where are my keys?" is about <keys>); heard as the
    whole question's were (`heard_names`: "Pepper is hungry. Where is the pepper?" asks of no dog <pepper>)."""
    own = [h for h in names.heard if a <= h.start < b]
    again = {h.name for h in names.heard if h not in own}
    own += [replace(h, start=h.start + a, end=h.end + a) for h in
            heard_names(question[a:b], [c for c in concepts if c.name in again]).heard] if again else []
    return sorted(own, key=lambda h: h.start)


def _asks_who_alone(question: str, names: Names) -> WhoQuestion | None:
    """The who question of a sentence that names no one ("Who is here? Is Bo coming?"); one that names someone asks
    about them ("Who is home, Bo?" says Bo's name to him)."""
    for a, b in _sentences(question):
        if not any(a <= h.start < b for h in names.heard) and (asked := asks_who(question[a:b])) is not None:
            return asked
    return None


#: What whisper writes for "home" after a name at the end of "Is Sora home?" (5 of 6 tries with three espeak-ng
#: voices): "home" there, and nowhere else ("Is Bo's bed foam?" has more than the name before it).
_HOME_SLIP = re.compile(r"\W*foam\W*", re.I)
_IS = re.compile(r"(?!.*\b(why|what|how|when|who|which)\b).*\b(is|are)\s+", re.I | re.S)  # not "why is Sora foam?"
# Words that say the question is about what the camera sees now, not about a concept's stored facts.
_VISUAL = re.compile(r"\b(see|seeing|look|looks|looking|here|this|that|these|those|now|doing|holding|wearing|"
                     r"table|floor|room|front|picture|image|camera|frame|show|in view)\b", re.I)


#: A question about the scene with no camera frame to look at (none has come yet, the camera is lost, or `listen`
#: was given no --image): said so, not "I don't know who or what you mean".
NO_FRAME = "I have no camera picture to look at right now."


@dataclass
class Reply:
    """The answer to one question and what it rests on. `mode`: "template" or "vlm" (the assistant), "events"
    (the event log or the current frame's recognition), "clarify" (which one did you mean?), "no_image" (a
    question about the scene with no picture to look at: no model would answer it otherwise)."""

    text: str
    mode: str
    names: list[str] = field(default_factory=list)
    question: str = ""  # as passed to the assistant, names marked
    ambiguous: list[list[str]] = field(default_factory=list)
    answer: Answer | None = None  # the assistant's, when it answered
    used_image: bool = False  # whether the frame given was looked at
    said: str = ""  # clarify: the words of the question that sounded like either name

    @property
    def cut(self) -> bool:
        """Whether the assistant's answer was cut by a stop (`LlamaVlm.stopping`): printed as such, never said."""
        return self.answer is not None and self.answer.stopped == "interrupted"


#: Words a reply to "Did you mean <bo> or <beau>?" may hold besides the name ("I meant Beau", "Bo, sorry"), and
#: a hesitation however it is spelled (FILLER: "Um", "Umm", "Hmm", "Erm", "Ah")
_CHOOSING = frozenset("i i'm meant mean said the one it it's is was that yes no sorry please thanks number".split())
_POINTING = re.compile(r"\b(?:the|that|this)\s+one\b")  # "that one": a choice, but by no number
_ORDINALS = {"first": 0, "second": 1, "third": 2, "former": 0, "latter": -1, "last": -1}


def needs_image(question: str, names: Names) -> bool:
    """A question naming a concept without pointing at the scene is about the concept itself."""
    return not names.heard or bool(_VISUAL.search(question))


def where_is(home, name: str, recognition: Recognition | None, now: float | None = None) -> str:
    """From the current frame when `name` is in it, else from its latest event."""
    from edge_rap.generate.narrate import where

    hit = next((h for h in (recognition.hits if recognition else []) if h.concept.name == name), None)
    if hit is not None:
        place = where(hit.box, recognition.size)
        return f"<{name}> is here{', ' + place if place else ''}."
    event = home.events.last_seen(name)
    if event is None:
        return f"I haven't seen <{name}> yet."
    when = ago_of(event.wall, time.time() if now is None else now)
    camera = the_camera(event.camera)
    if event.kind == "arrived":
        return f"<{name}> is on {camera} now: I saw <{name}> arrive {when}."
    return f"I last saw <{name}> on {camera} {when}."


def heard_names(question: str, concepts: list[Concept]) -> Names:
    """The concepts' names the question says (`heard_among`)."""
    return heard_among(question, {c.name: c.category for c in concepts})


def heard_among(said: str, categories: Mapping[str, str], within: bool = False) -> Names:
    """The names of `categories` (name -> category) that the words say (`match_names`), a person's or an animal's
    not in the ordinary word spelled so ("Pass the pepper.", "Forget the pepper." of a dog <pepper>), as a typed
    question's mentions are read: one rule for questions and commands."""
    return match_names(said, list(categories), within, living={n for n, c in categories.items() if not_its_noun(n, c)})


def from_memory(home, question: str, names: Names | None = None, image: Image | None = None,
                recognition: Recognition | None = None, now: float | None = None) -> Reply | None:
    """The answers that need no assistant: "Did you mean <bo> or <beau>?" for a name alike of two concepts,
    "where is X?" / "is X home?" from `image` or the sightings, and NO_FRAME for a question about the scene with
    no `image`; None for any other question. Every way of asking (a voice, the API, `edge-rap ask`) answers these
    alike. `names`: the question's, when already matched."""
    concepts = home.concepts()  # read once: a store's read
    everyone = [c.name for c in concepts]
    names = joined_apart(question, heard_names(question, concepts) if names is None else names, everyone)
    asked = _asked_where(question, names, concepts)
    kind, meant, plural = _of_category(question, concepts) if not asked.heard and _asks_where(question) \
        else ("", [], False)
    if names.ambiguous and not (plural and _only_in_kind(names, kind, meant)):
        return Reply(did_you_mean(names.ambiguous[0].names), "clarify", names.names, question,
                     [list(a.names) for a in names.ambiguous], said=names.ambiguous[0].words)
    who = None if asked.heard else _asks_who_alone(question, names)
    if who is not None:  # "is anyone home?", "who was here today?"
        if image is not None and recognition is None:
            recognition = home.recognize(image)
        text, about = answer_who(home, who, recognition, now)
        return Reply(text, "events", about, question, used_image=image is not None)
    if kind:
        if len(meant) > 1 and not plural:  # "the dog" of two: which? ("the dogs": both)
            return Reply(did_you_mean(meant), "clarify", [], question, [meant], said=kind)
        if meant:
            said_as = " and ".join(f"<{n}>" for n in meant)  # as written: <in>, <now>
            question = re.sub(rf"(?<!\w){re.escape(kind)}(?!\w)", lambda _: said_as, question,
                              count=1)  # where said, not in "doghouse"
            names = match_names(question, meant)
            asked = _asked_where(question, names, concepts)
    if _asks_home(question, names):
        asked = names
    if asked.heard:
        if image is not None and recognition is None:
            recognition = home.recognize(image)
        text = " ".join(where_is(home, n, recognition, now) for n in asked.names)
        return Reply(text, "events", asked.names, mark_names(question, asked), used_image=image is not None)
    if image is None and not names.heard and _VISUAL.search(question):  # "what do you see?" with no camera
        return Reply(NO_FRAME, "no_image", [], question, answer=Answer(NO_FRAME, "no_image", "vqa"))
    return None


def did_you_mean(options) -> str:
    """The question asked back of a name said like several concepts, for a question or a command to forget."""
    return "Did you mean " + ", ".join(f"<{n}>" for n in options[:-1]) + f" or <{options[-1]}>?"


#: What may follow a kind that is the one asked about: the question's end, or words that go on asking where it
#: is ("Where did the cat go?", "Is the dog in the garden?"), not a thing of its ("the dog food", "my cat's bowl").
_KIND_ENDS = (r"(?=\s*[,;]|\W*$|\s+(now|right|today|yet|lately|recently|this|last|at|in|on|out|inside|outside|"
              r"home|here|there|back|around|go|gone|went|got|been|hiding|sleeping|and|or)\b)")


def _of_category(question: str, concepts: list[Concept]) -> tuple[str, list[str], bool]:
    """ "Where is the cat?" names no concept but a kind of one: the words ("the cat"), the names of the concepts
    of that category (<luna>) and whether the kind was plural; a kind is said after "the", "my" or "our" ("is
    anyone home?" names none)."""
    for category in sorted({c.category for c in concepts if c.category.strip()}, key=len, reverse=True):
        found = re.search(rf"\b(the|my|our)\s+{re.escape(category)}(s?)\b{_KIND_ENDS}", question, re.I)
        if found:
            meant = sorted(c.name for c in concepts if c.category.lower() == category.lower())
            return found.group(0), meant, bool(found.group(2))
    return "", [], False


def _only_in_kind(names: Names, kind: str, meant: list[str]) -> bool:
    """Whether every name heard ambiguously is one of the kind asked about, in its words: "the dogs" of <dog2> and
    <dog6>, whose "dogs" sounds like either, asks about both."""
    return all(a.words in kind and set(a.names) <= set(meant) for a in names.ambiguous)


def _by_number(words: list[str], options: list[str]) -> str | None:
    """The one option whose number is the one number the answer says ("Six." or "number 6" to "Did you mean
    <dog2> or <dog6>?"), else None; "that one" says no number."""
    said = re.findall(r"[0-9]+", spoken_form(_POINTING.sub("", " ".join(words))))
    fitting = [n for n in options if re.findall(r"[0-9]+", spoken_form(n)) == said]
    return fitting[0] if len(said) == 1 and len(fitting) == 1 else None


def _asks_home(question: str, names: Names) -> bool:
    """ "Is Sora foam?": "Is Sora home?" as whisper often writes it."""
    return any(_IS.fullmatch(question[:h.start]) and _HOME_SLIP.fullmatch(question[h.end:]) for h in names.heard)


def as_answer(home, said: Reply) -> Answer:
    """A reply as the assistant's answers are given (`ask --json`, the API): the assistant's own, or one made
    of a sighting's or a clarifying question's text, naming the concepts it is about."""
    if said.answer is not None:
        return said.answer
    named = [c for c in (home.store.find(n) for n in said.names) if c is not None]
    return Answer(said.text, said.mode, "where" if said.mode == "events" else "clarify", named=named)


def reply(home, question: str, image: Image | None = None, recognition: Recognition | None = None,
          now: float | None = None, on_text: Callable[[str], None] | None = None) -> Reply:
    """Answer `question` (the words after the wake phrase). `recognition`: what the daemon already found in
    `image`; recognised here when missing and needed. `on_text`: the assistant's text as it is generated."""
    names = heard_names(question, home.concepts())
    known = from_memory(home, question, names, image, recognition, now)
    if known is not None:
        return known
    marked = mark_names(question, names)
    looks = image is not None and needs_image(question, names)
    if looks:
        answer = home.assistant.ask(marked, image, on_text=on_text, recognition=recognition)
    else:
        answer = home.assistant.ask(marked, on_text=on_text)
    # the names heard, not those the frame showed: `listen --json`'s "concepts" are what the question said
    return Reply(answer.text, answer.mode, names.names, marked, answer=answer, used_image=looks)


def clarified(asked: Reply, answer: str) -> str | None:
    """The question `asked` ("Did you mean <bo> or <beau>?") was about, with the name `answer` chose in place of
    the words that sounded like either ("Beau.", "I meant Bo", "the second one"); None when `answer` chooses
    none, or says more than a choice (a new question)."""
    options = asked.ambiguous[0]
    words = re.findall(r"[a-z0-9']+", answer.lower())
    picked = [_ORDINALS[w] for w in words if w in _ORDINALS]
    heard = match_names(answer, options)
    if len(heard.heard) == 1 and not heard.ambiguous and not picked:
        h = _widest(answer, heard.heard[0], options)
        name, rest = h.name, re.findall(r"[a-z0-9']+", (answer[:h.start] + answer[h.end:]).lower())
    elif len(picked) == 1 and not heard.names and picked[0] < len(options):
        name, rest = options[picked[0]], [w for w in words if w not in _ORDINALS]
    elif not picked and not heard.names and (numbered := _by_number(words, options)) is not None:
        name, rest = numbered, [w for w in spoken_form(" ".join(words)).split() if not w.isdigit()]
    else:
        return None
    if any(w not in _CHOOSING and not re.fullmatch(FILLER, w) for w in rest):
        return None
    said = re.search(rf"(?<!\w){re.escape(asked.said)}(?!\w)", asked.question)  # not the "F" of "Forget F."
    at = said.start() if said else asked.question.find(asked.said)  # "请问李小龙在哪里": no word boundary before it
    return asked.question[:at] + _unmistaken(name, options) + asked.question[at + len(asked.said):]


def _widest(answer: str, heard: Heard, options: list[str]) -> Heard:
    """The option the answer's words say that holds the name `heard` within it and more of those words, where no
    punctuation parts them: "Um Kulthum." of <umm_kulthum> and <kulthum> is whisper's "Um" for "Umm", where "Um,
    Kulthum." is a hesitation; it chose <kulthum> as its words spell it, and "Umm Kulthum." <umm_kulthum>."""
    for other in options:
        if other == heard.name or f" {heard_as(heard.name)} " not in f" {heard_as(other)} ":
            continue
        wider = match_names(answer, [other]).heard
        if wider and wider[0].start <= heard.start and heard.end <= wider[0].end and (wider[0].start, wider[0].end) \
                != (heard.start, heard.end) and not re.search(r"[^\w\s']", answer[wider[0].start:heard.start]):
            return wider[0]
    return heard


def _unmistaken(name: str, options: list[str]) -> str:
    """`name` as the question asked again says it: as said, or, where another option is written alike (a memory of
    before held <Zoe's mug> and <Zoe`s mug>) or said alike (<f> and <f'>, <dog6> and <dog_six>, <salt_and_pepper>
    and <salt> with <pepper>: `names.made_of`) or within it (a new <umm_kulthum> or <kulthum>), in <brackets> as
    spelled, which names that one alone (said, it was "Did you mean ...?" again, at every choice)."""
    alike = any(name_key(other) == name_key(name) or f" {heard_as(other)} " in f" {heard_as(name)} "
                for other in options if other != name) or bool(made_of(name, options))
    return f"<{name}>" if alike else spoken_form(name)
