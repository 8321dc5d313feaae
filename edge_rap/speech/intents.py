"""Spoken memory commands: "remember this as <name>", "this is also <name>" and "forget <name>", each asked back
and done only on a yes.

The words are parsed here (pure), and the change goes through the same memory calls as `edge-rap remember`,
`add-views` and `forget`. A command is never done on the utterance that gave it: the device asks ("Shall I
remember this as <luna>? Say yes or no."), and only a yes in the next utterance does it; anything else, or
nothing within the time allowed, cancels. "Remember this as" a name already known (or said like one) offers to
add the frame as another photo of that concept: a second photo from another side is what recognises a thing
on new photos (docs/BENCHMARKS.md, two reference photos). What cannot be done (an unknown name, an unusable
one, no camera frame) is refused in one spoken line, and an error of the memory is said in one line too.
"""

from __future__ import annotations

import logging
import re
import tempfile
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Collection, Mapping

from edge_rap.errors import DeviceError, EdgeRapError, PartlyDone
from edge_rap.memory.store import APOSTROPHES, disk_error, name_key, straight_apostrophes
from edge_rap.perceive.faces import FaceChoiceError
from edge_rap.scratch import process_folder
from edge_rap.speech.names import WHEN, Ambiguous, Heard, Names, joined_apart
from edge_rap.speech.reply import did_you_mean, heard_among
from edge_rap.speech.who import spoken_category
from edge_rap.types import Box, Image, Recognition
from edge_rap.words import COMMON, FILLER, is_common

log = logging.getLogger(__name__)

CONFIRM_S = 10.0  # of audio from the end of the command to the start of its yes
MAX_NAME_WORDS = 3
NO_FRAME = "I have no camera frame to remember."
# what whisper writes for a noise it takes for speech (its training's subtitles): no one's answer ("Bye." is left a
# no: a user's way to decline, told at once that nothing was done)
_WHISPER_NOISE = r"(?:thank\W+you(?:\W+(?:so|very)\W+much)?|thanks(?:\W+for\W+watching)?|you)"
# a wake phrase said push-to-talk, "okay, ...", "um, ...", "thank you, ...", "can you please ..."
_LEAD = (r"^\W*(?:(?:hey|hi|ok|okay)\W+\w+\W+)?"
         r"(?:(?:ok|okay|so|now|and|alright|well|thanks|thank\W+you(?:\W+(?:so|very)\W+much)?|" + FILLER + r")\W+)*"
         r"(?:(?P<request>can|could|would|will)\W+you\W+)?(?:please\W+)?")
# "... as Teddy, please": not <teddy_please>
_NAME_END = r"(?:\W+(?:please|thanks|thank\W+you(?:\W+very\W+much)?))?\W*$"
# before a name: not an apostrophe that starts it ("Forget 'n." names <'n>, as "Where is 'n?" does)
_SEP = r"[^\w<]*[^\w<'" + re.escape("".join(map(chr, APOSTROPHES))) + "]"
# "as" is also what whisper writes as "has" or "and" (most of espeak-ng's voices, under the names prompt)
_REMEMBER = re.compile(_LEAD + r"(?:remember|learn|memori[sz]e)\W+(?:this|that|it|him|her)(?:\W+one)?\W+"
                       r"(?:as|is|has|and)" + _SEP + r"(?P<name>.+?)" + _NAME_END, re.I)
# a name in <brackets> is taken whole: "Forget <f'>." (a choice asked back) is not <f> and "'>.", nor "Forget the <f'>."
# ("Forget the F." asked back) "the <f'" and ">.", said like either
_NAME = _SEP + r"(?P<name>[^<>]*<[^<>]+>|.+?)"
# a hesitation in a command's name ("Forget um Bo.", "as, uhh, Pip"): not "ah", "oh" or "m", which may be a name's own
# ("Ah Ming", "Jay M")
_HESITATION = re.compile(r"(?<![\w'])(?P<word>u+m+|u+h+|e+r+m*|h+m+)(?![\w'])(?P<after>[^\w<]*)", re.I)
# of those, the spellings a name's first word has too (Arabic "Umm Kulthum", Korean "Um"): never "uh", "er", "hmm"
_NAME_LIKE_HESITATION = re.compile(r"umm?", re.I)
_FORGET_IT = r"forget\W+(?:about\W+)?(?:it|that)\b"  # "never mind" said first; not a no after a yes ("Yes, forget it")
# a name taken back as it is said, after a pause: "Bo, no.", "Bo, no, Max", "Luna, sorry, Lena", "Max, I mean Bo"
_TAKE_BACK_WORD = r"(?:no|nope|sorry|wait|never\W*mind|cancel|scratch\W+that|" + _FORGET_IT + ")"
_TAKE_BACK = re.compile(r"[,.;!?]\s*(?:(?:oh\s+)?" + _TAKE_BACK_WORD + r"(?:\s*(?:[,.;!?]+\s*|$)|\s+(?="
                        + _TAKE_BACK_WORD + r"\b))|i\W+mean\b(?!\W+it\b)\W*)+", re.I)  # "no, no", "no no", "oh wait"
_ONE_MORE = re.compile(r"\W*(?:(?:and|plus|also)\b|&)", re.I)  # after "sorry" or "wait": a name added, none taken back
_FORGET = re.compile(_LEAD + r"forget(?:[^\w<]+about)?" + _NAME + _NAME_END, re.I)
_ADD = (re.compile(_LEAD + r"(?:add\W+(?:this|that|it)\W+to|this\W+is\W+also|(?:this\W+is\W+)?another\W+"
                   r"(?:photo|picture)\W+of)" + _NAME + _NAME_END, re.I),
        re.compile(_LEAD + r"this\W+is" + _NAME + r"\W+(?:too|as\W+well)\W*$", re.I))
_TOO_AS_TWO = re.compile(_LEAD + r"this\W+is" + _NAME + r"\W*(?:2|\btwo)\W*$", re.I)  # whisper: "this is Bo2"
# a yes in a no's words, alone or after a yes; spaces only between them: "No, problem is, it's the cat" is a no
_NO_PROBLEM = r"no\s+(?:problem|worries)|not\s+a\s+problem"
_YES_WORD = (r"(?:yes|yeah|yep|yup|sure|ok|okay|correct|confirm(?:ed)?|do it|go ahead|please do|absolutely|definitely|"
             r"of course)")
_YES = re.compile(_LEAD + r"(?P<yes>" + _YES_WORD + "|" + _NO_PROBLEM + r")\b", re.I)
# a yes said after the command's name, in its utterance ("Forget Bo. Yes."): given before it was asked, no answer
_YES_SAID = re.compile(r"[,.;!?]\s*(?:(?:please\W+)?" + _YES_WORD + r"\b\W*)+$", re.I)
# the name said again after a yes, once or more ("Bo, yes Bo", "Bo, yes Bo, yes Bo"): that name, once
_YES_AGAIN = re.compile(r"(?P<name>.+?)(?:[,.;!?]\s*(?:" + _YES_WORD + r"\b\W*)+(?P=name)\W*)+", re.I)
_TITLE_DOT = re.compile(r"\b(?:mr|mrs|ms|mx|dr|st|prof)\.\s*$", re.I)  # "Dr. Okay": its dot ends no sentence
_NOTHING = re.compile(r"\W*(?:(?:" + FILLER + "|" + _WHISPER_NOISE + r")\W*)*", re.I)
# a no, first or after a yes's word ("yes, but wait", "OK, never mind")
_DECLINE = r"(?:no|not|don'?t|nope|cancel|stop|wait|never\W*mind)\b"
_NO = re.compile(r"\b" + _DECLINE, re.I)
# a no's words in a yes: "Yes, no problem", "Sure, why not?", "I don't mind" take nothing back
_NO_BUT_YES = re.compile(r"\b(?:" + _NO_PROBLEM + r"|why\W+not|"
                         r"(?:do\W*n[o']?t|wouldn'?t)\W+mind)\b", re.I)
# a goodbye is a no said first, or after a bare "okay" that only leads it ("Okay, bye"); after a yes ("Yes, bye"),
# its end
_BYE = r"(?:good\W*)?bye\b"
_BYE_NEXT = re.compile(r"\W*" + _BYE, re.I)
_NO_FIRST = re.compile(_LEAD + f"(?:{_DECLINE}|{_BYE}|{_FORGET_IT})", re.I)
_ARTICLES = {"the", "a", "an", "my", "our", "your"}
_OWNER = re.compile(r"^\W*(?:(?:my|our|your)\W+)+", re.I)
_POSSESSIVE_END = re.compile(r"'s\W*$", re.I)  # "Forget Bo's.": a possessive by habit, with nothing of Bo's named
_LIST = re.compile(r",|\band\b|&", re.I)  # between the names of a forget of several: "Bo, Max and Teddy"
_THING_OF = re.compile(r"'s?\s+[^\W\d_]", re.I)  # after a name: "Bo's bowl", "Chris' bag" name a thing of theirs
# a part of a forget's list that points at something else or at more ("Forget it, Bo.", "Bo and the others"): no noun
_ELSEWHERE = re.compile(r"\b(?:it|that|this|them|others?|all|rest|else|both|every\w*)\b", re.I)
# "Forget Bo now.", "Forget Bo, right now.", "Forget Bo for now." (not "I don't know 'Bo for'"), "Forget Mochi too.",
# "... as well.", "... also.", "Forget Max, I mean it."; all that follows a take-back: "Forget Bo, no, now."
_WHEN_END = re.compile(r"(?:(?:^|\W+)(?:(?:for\W+)?" + WHEN + r"|too|also|as\W+well|i\W+mean\W+it))+\W*$", re.I)
_INITIALS = re.compile(r"\b[A-Za-z](?:(?:\.\s*|-)[A-Za-z]\b)+\.?")  # "R.C.", "U. S. B.", "R-C": letters said one by one
_PATH_START = r"(?<![\w<])(?:~|\.{1,2})?/"
_LEADING_PATH = re.compile(r"^" + _PATH_START + r"\S*?: ")  # "/home/x/events.sqlite: cannot write ..."
_OS_FILE = re.compile(r":? ['\"]" + _PATH_START + r"[^'\"]*['\"]")  # "No space left on device: '/home/x/a.usearch'"
_PATH = re.compile(_PATH_START + r"[^\s()'\"]*[^\s()'\".,;:]")
_OPTION_HINT = re.compile(r"\s*\([^()]*--\w[^()]*\)")  # "(give --box of what else it shows)": a typed command's


@dataclass(frozen=True)
class Command:
    """A memory change heard. `state`: "asked" (waiting for a yes), "done", "cancelled", "refused", "failed"."""

    action: str  # "remember" | "add" (another photo of a known concept) | "forget"
    name: str  # the concept's name as stored (add, forget) or to be stored (remember)
    state: str = "asked"
    box: Box | None = None  # remember, add: the region of the frame kept; None for the whole frame
    category: str = ""  # remember: the category the name's words give (who.spoken_category)
    ambiguous: Ambiguous | None = None  # forget, add refused: the words said like two names; the next may choose
    named: bool = True  # False: a forget refused as naming no concept ("I don't know 'the pepper'" of a dog
    # <pepper>), or a remember refused ("Remember this as the pepper."), whose `name` is only its words' stored form,
    # not what it was taken to name

    @property
    def doing(self) -> str:
        """What the command does, as said: "remember this as <luna>", "add this to <bo>", "forget <bo>"."""
        return {"remember": "remember this as <{}>", "add": "add this to <{}>"}.get(self.action, "forget <{}>").format(
            self.name)

    def to_json(self) -> dict:
        """`listen --json`'s `command`; a remember's `category` too, or "my keys" was stored as `keys` unseen."""
        told = {"action": self.action, "name": self.name, "state": self.state,
                "box": self.box.as_list() if self.box else None}
        return {**told, "category": self.category} if self.action == "remember" else told


def looks_like_command(text: str) -> bool:
    """Whether the words start a memory command (before any name is checked)."""
    return any(pattern.match(text) for pattern in (_REMEMBER, _FORGET, *_ADD))


def stored_form(words: str) -> str:
    """The name a spoken name is stored under: "the Red Mug" -> "red_mug", "Zoë" -> "zoe" (not "zo"), "Bob's mug"
    -> "bobs_mug" (not <bob_s_mug>, said "bob s mug"), letters said one by one, as whisper writes them, one word: "R.C.
    car" -> "rc_car" (not <r_c_car>; "the U.S.B. stick" was refused as a name of too many words)."""
    folded = unicodedata.normalize("NFKD", words).encode("ascii", "ignore").decode()
    folded = _INITIALS.sub(lambda m: re.sub(r"[\W_]", "", m.group(0)), folded)
    parts = re.findall(r"[a-z0-9]+", folded.lower().replace("'", ""))
    while parts and parts[0] in _ARTICLES:
        parts = parts[1:]
    return "_".join(parts)


def parse(text: str, names: Collection[str], categories: Mapping[str, str] | None = None) -> tuple[Command | None, str]:
    """The command in `text` (the words after the wake phrase) and the line to say: the question to confirm,
    or a refusal (the command's state is then "refused"). (None, "") when `text` is no command. `categories`: each
    concept's, whose noun beside its name still names it whole ("Forget Bo the dog.")."""
    kinds = categories or {}
    names = {name: kinds.get(name, "") for name in names}  # a person's or an animal's not heard in a noun (`_heard`)
    if m := _REMEMBER.match(text):
        words, dropped = _meant(m.group("name"), names)
        if not words:
            return _taken_back("remember", dropped, names, kinds)
        if dropped and looks_like_command(words):  # "Luna, no, forget Bo": that command, said again
            return parse(words, names, kinds)
        words = re.sub(r"^as\W+", "", words, flags=re.I) if dropped else words  # "Luna, no, as Lena"
        name = stored_form(words)
        if not name or name.count("_") >= MAX_NAME_WORDS or all(w in COMMON or _HESITATION.fullmatch(w)
                                                                 for w in name.split("_")):
            # common words alone are no name but a slip: whisper wrote "Teddy" as "to be" (stored <to_be>), nor is a
            # hesitation however long ("Hmmm"); but "Oh" or "Ah" may be a name (not names.is_common, whose "oh" is one)
            return _naming_none("remember", name), f"I can't use {words!r} as a name."
        said = _OWNER.sub("", words)  # "my keys" is to be <keys>: not heard as <max>, as in a question
        known = _heard(said, names)
        if known.ambiguous:  # said like two concepts: the new one could not be told from either by voice
            alike = known.ambiguous[0].names[0]
            return _naming_none("remember", name), f"I already know <{alike}>: choose another name."
        if whole := _whole_name(said, known, kinds):  # a known name: another photo of it, or no
            return _add(whole, f"I already know <{whole}>. ")
        taken = [n for n in names if name_key(n) == name_key(name)]  # "the pepper", a noun, of a dog <pepper>
        if alike := known.names or taken:  # a name within it ("Bo's bowl") would be heard as that concept's
            return _naming_none("remember", name), f"I already know <{alike[0]}>: choose another name."
        # "umm kulthum": a hesitation, or a name's?
        if not dropped and (whole := _hesitant_start(m.group("name"), words)):
            return _asked_back("remember", whole, Names([], [Ambiguous(whole, (stored_form(whole), name))]))
        return (Command("remember", name, category=spoken_category(words)),
                f"Shall I remember this as <{name}>? Say yes or no.")
    if m := _FORGET.match(text):
        words, dropped = _meant(m.group("name"), names, kinds)
        if not words:
            return _taken_back("forget", dropped, names, kinds, m.group("name"))
        if dropped and looks_like_command(words):  # "Forget Bo, no, forget Max."
            return parse(words, names, kinds)
        words = _timeless(words, names, kinds)  # "Forget Bo now.": when, no more of a name
        known, said = _heard(words, names), straight_apostrophes(words)
        if known.ambiguous and _either_whole(said, known.ambiguous[0], kinds):  # (of <bo> and <bos>, "Bo's" as a
            # question hears it; "Bo's" of <Bo's> beside them is that one, spelled so); not "Bo's bowl", which neither
            # choice names
            return _asked_back("forget", words, known)
        name = _whole_name(words, known, kinds)  # "Forget Bo's bowl." is no <bo>; "Forget Bo's."
        if name is None and len(known.heard) > 1:
            if _named_beside_a_noun(words, known, kinds):  # "my teddy bear Max" of a <max> that is none
                return _asked_back("forget", words, Names([], [Ambiguous(words, tuple(known.names))]))
            return _one_at_a_time(words, names, kinds)  # "forget Bo and Anya": not "I don't know 'Bo and Anya'"
        if name is None and (bare := _POSSESSIVE_END.sub("", said)):  # is, to confirm
            name = _whole_name(bare, _heard(bare, names), kinds)
        name = name or _described_whole(words, known, kinds)  # "Bo, a dog", "Max the Labrador"
        if name is None and len(known.heard) == 1 and (noun := _described_as(words, known.heard[0])):
            return _naming_none("forget", stored_form(words)), _not_as(known.heard[0].name, noun, kinds)
        if name is None and known.heard and _list_cuts(words, names):  # "Bo and Zed": as "Bo, Max and Zed"
            return _one_at_a_time(words, names, kinds)
        if name is None:
            return _unknown(words)
        if apart := joined_apart(words, Names([h for h in known.heard if h.name == name], []), names).ambiguous:
            return _asked_back("forget", words, Names([], apart))  # "Salt and Pepper": <salt_and_pepper>, or?
        return _asked_to_forget(name)
    m = next((m for m in (pattern.match(text) for pattern in _ADD) if m), None) or _too_as_two(text, names)
    if m is None or text.rstrip().endswith("?") and not m.group("request"):  # "this is also Bo?" asks (tells
        # nothing); "could you add this to Bo?" asks for it
        return None, ""
    said, dropped = _meant(m.group("name"), names)
    if not said:  # "This is also Bo, no.": a "..., isn't it?" as whisper may write it, no command taken back
        return None, ""
    if dropped and looks_like_command(said):  # "This is also Bo, no, this is also Max."
        return parse(said, names, kinds)
    said = _timeless(said, names, kinds)  # "This is also Bo now.", as a forget
    known = _heard(said, names)
    if known.ambiguous and len(stored_form(said).split("_")) == 1:
        return _asked_back("add", said, known)
    # not "this is also not Bo", "this is Bo's too", "this is also Bo the cat"
    whole = _whole_name(said, known, kinds) or _described_whole(said, known, kinds)
    return _add(whole) if whole else (None, "")


def _meant(said: str, names: Mapping[str, str], listed: Mapping[str, str] | None = None) -> tuple[str, str]:
    """A command's name as meant, and the words last taken back: a yes said after it left out ("Bo. Yes.": asked
    all the same, not yet answered), hesitations too (`_fluent`), and after a name taken back what follows ("Bo, no,
    Max": Max); "" where nothing does ("Bo, no.", "Bo, no, now": nothing to do, not a <bo> asked or a <luna_no>
    remembered). `listed`: a forget's categories, whose words may list names: a take-back there takes back the last
    of them alone ("Bo, Max, no, Luna": Bo and Luna, not Bo left out unsaid)."""
    said = _fluent(_without_yes(said, names), names)
    parts = _TAKE_BACK.split(said)
    if len(parts) == 1 or _ONE_MORE.match(parts[-1]):  # "Bo, sorry, and Max": Max as well, not instead
        return said, ""
    if not stored_form(_WHEN_END.sub("", parts[-1])) and not _heard(parts[-1], names).heard:
        parts[-1] = ""  # "Bo, no, now", "Bo, no, I mean it": when or how sure, no name said instead
    meant, dropped = parts[0], ""
    for part in parts[1:]:
        kept, dropped = _last_apart(meant, names, listed) if listed is not None else ("", meant)
        meant = ", ".join(w for w in ("" if looks_like_command(part) else kept, part) if w)  # "..., no, forget Max"
    return meant, dropped


def _without_yes(said: str, names: Mapping[str, str]) -> str:
    """The words without a yes said after the name ("Bo. Yes.", "Bo, yes Bo"), but not one that is a name's word:
    heard in a known one's ("Forget Bo, Okay." of a dog <okay>: two names, refused as a list), or written as a name's,
    capitalised after a title ("Remember this as Dr. Okay.": <dr_okay>, not <dr>; but "Pip, Okay." is <pip>)."""
    if again := _YES_AGAIN.fullmatch(said):
        return again["name"]
    yes = _YES_SAID.search(said)
    if yes is None or not said[:yes.start()].strip():
        return said
    first = yes.start() + re.search(r"[^\W\d_]", said[yes.start():]).start()
    named = said[first].isupper() and _TITLE_DOT.search(said, 0, yes.start() + 1)
    heard = any(h.end > yes.start() for h in _heard(said, names).heard)
    return said if named or heard else said[:yes.start()]


def _fluent(said: str, names: Mapping[str, str]) -> str:
    """The words without their hesitations: one set off as a clause ("as, um, Pip", "Bo, um"), one written in lower
    case (whisper writes a name capitalised, "Umm Kulthum", "Mister Um", "Xiao Er", all kept whole) and one before a
    known name ("Forget Um Bo."); not one in a known name heard (<umm_ali> said "Umm Ali"), nor where they are all it
    says (<oh>, or "Um" refused as a name)."""
    held = [(h.start, h.end) for h in _heard(said, names).heard]
    free = [m for m in _HESITATION.finditer(said) if not any(a <= m.start() < b for a, b in held)]
    every = _without(said, free)
    plain = _without(said, [m for m in free if m.group("word").islower() or _set_off(said, m)])
    return next((words for words in ([every] if _heard(every, names).heard else []) + [plain] if stored_form(words)),
                said)


def _hesitant_start(said: str, meant: str) -> str | None:
    """The words of a new name, where they start with a word spelled as a hesitation that `_fluent` leaves out but
    their case cannot tell from a name's own: all in lower case, as whisper seldom writes a name ("umm kulthum":
    <umm_kulthum>, or <kulthum> after an "umm"?), the hesitation not set off by a comma and before a word of the name
    ("um my keys" is <keys>) and spelled as a name's word is ("uh pip" is <pip>: `_NAME_LIKE_HESITATION`); else
    None. Which one is meant is asked. `meant`: the name's words as `_meant` left them, the hesitation out (and a yes
    after them: "umm kulthum, yes" is no <umm_kulthum_yes>)."""
    first, meant = _HESITATION.match(said), meant.strip(" ,;:.!?")
    rest, at = meant.split(), said.find(meant, first.end() if first else 0)
    if (not first or first.group("after").strip() or not _NAME_LIKE_HESITATION.fullmatch(first.group("word"))
            or at != first.end() or said.lower() != said or "<" in said or not rest or is_common(rest[0])
            or len(rest) >= MAX_NAME_WORDS):
        return None
    return said[:at + len(meant)]


def _set_off(said: str, hesitation: re.Match) -> bool:
    """Whether a hesitation is a clause alone, between the words' ends or stops: ", um,", "um, Pip", "Pip, um"."""
    before = said[:hesitation.start()].rstrip()
    return ((not before or before[-1] in ",.;:!?") and
            (hesitation.end() == len(said) or bool(hesitation.group("after").strip())))


def _without(said: str, matches: list[re.Match]) -> str:
    """The words with the matched parts left out."""
    kept, at = [], 0
    for m in matches:
        kept, at = kept + [said[at:m.start()]], m.end()
    return "".join(kept) + said[at:]


def _last_apart(said: str, names: Mapping[str, str], categories: Mapping[str, str]) -> tuple[str, str]:
    """A forget's words before a take-back as the names it keeps and the last one, which it takes back: "Bo, Max" as
    Bo and Max; all as the last where they name one thing only ("Bo, the dog", "Salt and Pepper"), or "I mean it"."""
    said = _timeless(said, names, categories)
    named, unknown, _ = _named_apart(said, names, categories)
    cuts = [m for m in _list_cuts(said, names) if stored_form(said[:m.start()]) and stored_form(said[m.end():])]
    if len(named) + len(unknown) < 2 or not cuts:
        return "", said
    return said[:cuts[-1].start()].rstrip(" ,;"), said[cuts[-1].end():]


def _list_cuts(said: str, names: Mapping[str, str]) -> list[re.Match]:
    """Where a list of names to forget is cut ("Bo, Max and Teddy"): at each comma, "and" or "&" that is not inside
    a known name heard ("Bo and Salt and Pepper" of <salt_and_pepper>: <bo> and it, not 'Salt' or 'Pepper'), between
    its words: "Bo and Pepper" is cut, though "and Pepper" is heard like <salt_and_pepper>; nor at one that is a name
    heard, <and>, a cat ("Forget Bo and And.")."""
    held = [(h.start, h.end) for h in _heard(said, names).heard]
    return [m for m in _LIST.finditer(said)
            if not any(a < m.start() and m.end() < b or (a, b) == m.span() for a, b in held)]


def _taken_back(action: str, said: str, names: Mapping[str, str], categories: Mapping[str, str],
                whole: str = "") -> tuple[Command, str]:
    """A command whose name was taken back as it was said, refused: nothing is asked, and nothing done; one said again
    before it is the one refused ("Forget Bo, no, forget Max, no.": <max>, not <forget_max>). A take-back that is a
    concept's name in the `whole` words of a forget ("Forget Bo, no." of a dog <no>) is taken back all the same (a
    list of two would be refused too), and how to forget that one is said."""
    again = parse(said, names, categories)[0] if looks_like_command(said) else None
    said = _timeless(said, names, categories)  # "Luna, I mean it, no.": <luna>
    name = _whole_name(said, _heard(said, names), categories) or stored_form(said)
    command = replace(again, state="refused", ambiguous=None) if again else Command(action, name, "refused")
    named = [h.name for h in _heard(whole, names).heard if re.fullmatch(_TAKE_BACK_WORD, h.words, re.I)]
    also = f" To forget <{named[-1]}>, say forget <{named[-1]}>." if named and named[-1] != command.name else ""
    return command, f"OK, I will not {command.doing}.{also}"


def _heard(said: str, names: Mapping[str, str]) -> Names:
    """The names (name -> category) in a command's words, which follow its verb: "Beau" of "Forget Beau." is written
    as a name (<bo>, as "Where is Beau?" hears it), not capitalised as a sentence's first word; a person's or an
    animal's not in the ordinary word spelled so, as in a question ("Forget the pepper." of a dog <pepper>:
    `heard_among`); each command is asked before it is done."""
    return heard_among(said, names, within=True)


def _asked_to_forget(name: str) -> tuple[Command, str]:
    return Command("forget", name), f"Shall I forget <{name}>? Say yes or no."


def _unknown(said: str) -> tuple[Command, str]:
    """A forget of words that name no concept, refused as said."""
    return _naming_none("forget", stored_form(said)), f"I don't know {said!r}, so there is nothing to forget."


def _naming_none(action: str, name: str) -> Command:
    """A command refused as naming no concept, its `name` its words' stored form (which may be a concept's: "Forget
    the pepper." of a dog <pepper>, "Forget Bo's." of <bo>; "Remember this as the pepper.", whose "I already know
    <pepper>" asks for another name), not said to be about it."""
    return Command(action, name, "refused", named=False)


def _one_at_a_time(said: str, names: Mapping[str, str], categories: Mapping[str, str]) -> tuple[Command, str]:
    """A forget of several names refused, naming each known one to forget alone and the parts it does not know; as
    one unknown name where it knows none ("Bo's bowl and Max's bowl"), and asked where the rest only names the one
    again or says nothing ("Bo and the dog" of a dog, "Bo, please, now"), unless a part says more of it than its name
    ("the others, not Bo", "all but Bo, the dog": not <bo>, refused as said)."""
    named, unknown, loose = _named_apart(said, names, categories)
    if not named:
        return _unknown(said)
    if len(named) == 1 and (loose or not unknown):
        return _unknown(said) if loose else _asked_to_forget(named[0])
    unsaid = f" I don't know {' or '.join(map(repr, unknown))}." if unknown else ""
    return (_naming_none("forget", stored_form(said)),
            "I forget one at a time: say forget " + ", then forget ".join(f"<{n}>" for n in named) + "." + unsaid)


def _timeless(said: str, names: Mapping[str, str], categories: Mapping[str, str]) -> str:
    """The words of a forget or an add without the adverbs of time after them ("Bo now", "Bo, right now") or of one
    more ("Mochi too", "Mochi as well"): when or what else, not more of a name; kept where they name a concept whole
    with them (<mister_right>, "Mister Right")."""
    bare = _WHEN_END.sub("", said)
    if bare == said or not stored_form(bare) or _whole_name(said, _heard(said, names), categories):
        return said
    return bare


def _asked_back(action: str, said: str, known: Names) -> tuple[Command, str]:
    """A forget or add whose name was said like two concepts, refused with "Did you mean <f> or <f'>?": it carries
    the words, and the listener takes its next utterance ("the second one") as the choice, and the command again."""
    options = known.ambiguous[0]
    return Command(action, stored_form(said), "refused", ambiguous=options), did_you_mean(options.names)


def _too_as_two(text: str, names: Mapping[str, str]) -> re.Match | None:
    """"this is Bo too" as whisper writes it, "this is Bo2" or "this is Bo two"; not when the number is part of
    a known name ("this is dog 2" names <dog2>, and tells nothing)."""
    m = _TOO_AS_TWO.match(text)
    if m is None:
        return None
    said = text[m.start("name"):].rstrip(" .!")
    return None if _whole_name(said, _heard(said, names), {}) else m


def _whole_name(said: str, known: Names, categories: Mapping[str, str]) -> str | None:
    """The one concept `said` names with nothing else in it ("the red mug", "Bow" for <bo>) but its own category's
    noun ("Bo the dog", "my dog Bo" for <bo> of `categories` "dog"), else None: not "car keys", whose "car" alone is
    heard as <rc_car>, nor "Bo's bowl"."""
    if len(known.heard) > 1:  # "my teddy bear Max": <max>, a teddy bear, whose noun holds <teddy>'s name
        whole = {n for n in known.names if _whole_name(said, _heard(said, {n: categories.get(n, "")}), categories)}
        return whole.pop() if len(whole) == 1 else None
    if not known.heard:
        return None
    h = known.heard[0]
    rest = straight_apostrophes(said[h.end:])
    if straight_apostrophes(h.name).lower().endswith("'s"):  # <80's> said "80's" or "80s", <Bo's> typed "<Bo's>",
        rest = re.sub(r"^'?s(?!\w)", "", rest, flags=re.I)  # are heard as "80", "Bo": the "'s" after is the name's
    if kind := categories.get(h.name, "").strip():
        noun = re.compile(r"^\W*(?:(?:the|my|our|your)\W+)?" + r"\W+".join(map(re.escape, kind.split())) + r"\b",
                          re.I)
        lead = noun.match(said)  # the name heard in the noun, words after it: "my teddy bear Teddy" of <teddy>; not
        if lead and h.end <= lead.end() and re.search(r"\w", after := said[lead.end():]):  # "my mug" of <mug>, a mug
            return _whole_name(after, _heard(after, {h.name: ""}), {})
        before, rest = noun.sub("", said[:h.start], count=1), noun.sub("", rest, count=1)
    else:
        before = said[:h.start]
    return h.name if not stored_form(before) and not re.search(r"\w", rest) else None


def _either_whole(said: str, options: Ambiguous, categories: Mapping[str, str]) -> bool:
    """Whether one of the concepts the words were said like is named by them whole, as said or with their possessive
    dropped ("Bo's" of <bo>): asking which one is meant is of use only then."""
    bare = _POSSESSIVE_END.sub("", said)
    return any(_whole_name(w, _heard(w, {n: categories.get(n, "")}), categories)
               for n in options.names for w in {said, bare} if w)


def _named_beside_a_noun(said: str, known: Names, categories: Mapping[str, str]) -> bool:
    """Whether the words are a concept's category noun and the last name heard before it, or the first one and then
    that noun, its owner's or not ("my teddy bear Max", "Max the teddy bear", "Max's teddy bear" of a <teddy>, a teddy
    bear): one concept described, not two named, though the noun is not that one's own."""
    first, last = known.heard[0], known.heard[-1]
    after = re.sub(r"^'s?(?!\w)", "", straight_apostrophes(said[first.end:]))  # "Max's teddy bear": a teddy bear
    nouns = {stored_form(kind) for kind in categories.values()} - {""}
    noun_then_name = not stored_form(said[last.end:]) and stored_form(said[:last.start]) in nouns
    return noun_then_name or not stored_form(said[:first.start]) and stored_form(after) in nouns


def _named_apart(said: str, names: Mapping[str, str],
                 categories: Mapping[str, str]) -> tuple[list[str], list[str], bool]:
    """The concepts a list of them names, each once in order ("Bo, Max and Teddy": all three, not the first two),
    and its parts that name none, as said ("Bo, Max and Zed": Zed, not left out unsaid; "Bo's bowl", a thing of a
    known one, not <bo>); a part that is only the noun of the concept before it is that one said again ("Max, the
    teddy bear and Bo" of a <max> that is a teddy bear: <max> and <bo>, not the <teddy> heard in the noun), and one of
    common words or their nouns alone ("please", "the dogs") is none, but one pointing at another or more ("it", "the
    other dog", "all") is not known; and whether a part named one with other words
    than its name and no noun ("not Bo", "all but Bo"; not "Bo the cat")."""
    named: list[str] = []
    unknown: list[str] = []
    loose = False
    cuts = _list_cuts(said, names)
    for part in (said[a:b] for a, b in zip([0] + [m.end() for m in cuts], [m.start() for m in cuts] + [len(said)])):
        known = _heard(part, names)
        whole = _whole_name(part, known, categories)
        elsewhere = _ELSEWHERE.search(part) or len(named) == 1 and _more_of_its_kind(part, categories.get(named[0], ""))
        # "Bo and the other dog", "Bo and the dogs": not <bo>'s noun again
        if whole is None and named and not elsewhere and _of_its_kind(part, categories.get(named[-1], "")):
            continue
        if whole is None and len(known.heard) == 1 and _THING_OF.match(straight_apostrophes(part), known.heard[0].end):
            unknown.append(part.strip(" .!?"))  # "Bo's bowl": a thing of <bo>'s, no <bo>
            continue
        named += [n for n in ([whole] if whole else known.names) if n not in named]
        loose = loose or whole is None and len(known.heard) == 1 and not _described_as(part, known.heard[0])
        nouns = {w for n in named for w in stored_form(categories.get(n, "")).split("_")} | {""}
        described = all(_one_of(w, nouns) or is_common(w) for w in stored_form(part).split("_")) and not elsewhere
        unknown += [part.strip(" .!?")] if not known.heard and not described else []
    return named, unknown, loose


def _described_as(said: str, heard: Heard) -> str | None:
    """The noun a name is described with beside it, as said ("the dog" of "Teddy the dog", "my teddy bear" of "my
    teddy bear Bo", "the big old dog" of "Bo the big old dog"), where it is not the concept's own noun alone (else the
    name is whole): None for other words ("Bo's bowl", "Bo the cat and Zed")."""
    word = r"(?!(?:and|or)\b)[^\W\d_]+"  # not across a list's "and", "&" or ",": "Bo the cat & Zed" is two
    noun = r"(?:the|my|our|your|a|an)\W+" + word + r"(?:[^\w,&]+" + word + r"){0,3}"
    before, after = said[:heard.start], said[heard.end:]
    if m := re.fullmatch(r"[^\w&]*(" + noun + r")\W*", after) if not stored_form(before) else None:
        return m.group(1)
    m = re.fullmatch(r"\W*(" + noun + r")\W+", before) if not re.search(r"\w", after) else None
    return m.group(1) if m else None


def _described_whole(said: str, known: Names, categories: Mapping[str, str]) -> str | None:
    """The one concept heard, described beside its name as its own category ("Bo, a dog", "Max the Labrador" of a
    labrador retriever): a forget or an add of it; else None ("Bo the cat", which a forget refuses saying so)."""
    if len(known.heard) != 1 or not (noun := _described_as(said, known.heard[0])):
        return None
    return known.heard[0].name if _of_its_kind(noun, categories.get(known.heard[0].name, "")) else None


def _of_its_kind(noun: str, kind: str) -> bool:
    """Whether a noun said of a concept is its own category, or words of it, or their plural, after any article: "a
    dog" of a dog, "the Labrador" of a labrador retriever, "the bear" of a teddy bear, "the dogs" (not "I know <bo> as a
    dog, not as a dog"); after an article, with words before it that describe it ("the big old dog", "the black
    Labrador")."""
    said, own = stored_form(noun).split("_"), set(stored_form(kind).split("_"))
    if re.match(r"\W*(?:the|my|our|your|a|an)\W", noun, re.I):
        said = said[-1:]  # the last is the noun: "the dog bowl" is no dog
    return bool(kind.strip()) and all(_one_of(w, own) for w in said)


def _more_of_its_kind(noun: str, kind: str) -> bool:
    """Whether a noun is a concept's category in the plural ("the dogs" of a dog, "the big dogs"): in a list after
    that one alone, more of its kind, not it again ("Forget Bo and the dogs."); after two, said of both ("Bo and Max,
    the dogs"); beside the name with no list's word, that one described ("Bo, the dogs": `_described_whole`)."""
    return _of_its_kind(noun, kind) and stored_form(noun).split("_")[-1] not in stored_form(kind).split("_")


def _one_of(word: str, words: set[str]) -> bool:
    """Whether a word is one of `words`, or the plural of one ("dogs", "boxes"); "es" and "s" are no plural of
    nothing ("Forget em and es." asked of <em> and left out 'es' unsaid)."""
    stems = (word[:-1], word[:-2] if word[-2:] == "es" else "")
    return word in words or word[-1:] == "s" and any(stem and stem in words for stem in stems)


def _not_as(name: str, noun: str, categories: Mapping[str, str]) -> str:
    """Why a forget of a known name described otherwise is refused, and what to say instead."""
    kind = categories.get(name, "").strip()
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    known_as = f"<{name}> as {article} {kind}, not" if kind else f"<{name}>, but not"
    return f"I know {known_as} as {noun}: say forget <{name}> to forget it."


def _add(name: str, lead: str = "") -> tuple[Command, str]:
    return Command("add", name), f"{lead}Shall I add this as another photo of <{name}>? Say yes or no."


def is_answer(text: str) -> bool:
    """Whether `text` answers a yes-or-no question (starts with a yes or a no), rather than asking something new;
    its apostrophes as whisper writes them ("Don’t." typed on a phone is "Don't.")."""
    text = straight_apostrophes(text)
    return bool(_YES.match(text) or _NO_FIRST.match(text))


def says_nothing(text: str) -> bool:
    """Whether `text` has no word but a hesitation ("Um."), whisper's text for a noise ("Thank you.") or none at all
    (whisper's "" for a cough, a door): no answer to a yes-or-no question, which is waited for still."""
    return bool(_NOTHING.fullmatch(text))


def is_yes(text: str) -> bool:
    """A clear yes: starts with one and takes nothing back ("yes, but not now" is no; "Okay, bye" too, not "Yes,
    bye", nor "Sure, no problem"); "Yes, don’t" typed on a phone takes it back as "Yes, don't" does."""
    text = straight_apostrophes(text)
    yes = _YES.match(text)
    return bool(yes) and not _NO.search(_NO_BUT_YES.sub("", text)) and not (yes["yes"].lower() in ("ok", "okay")
                                                      and _BYE_NEXT.match(text, yes.end()))


def salient_region(home, image: Image, recognition: Recognition | None, adding: str | None = None) -> Box | None:
    """The most confident detector region that overlaps no recognised concept, in the frame's pixels; None (the
    whole frame) without a detector or when every region is taken. `adding`: the category of the concept to be
    remembered from it, which the detector looks for too (Household.vocabulary)."""
    from edge_rap.perceive.boxes import iou

    if home.detector is None:
        return None
    if recognition is None:
        recognition = home.recognize(image)
    taken = [h.box for h in recognition.hits]
    free = [r for r in home.detector.detect(image, home.vocabulary(adding)) if all(iou(r.box, b) < 0.3 for b in taken)]
    return max(free, key=lambda r: r.score).box if free else None


def region_of(command: Command, home, image: Image, recognition: Recognition | None) -> Box | None:
    """The part of the frame a command keeps: for another photo of a concept recognised in it, where it was
    found; otherwise the most salient region no concept holds (None: the whole frame)."""
    if command.action == "add":
        if recognition is None:
            recognition = home.recognize(image)
        found = [h.box for h in recognition.hits if h.concept.name == command.name]
        if found:
            return found[0]
    return salient_region(home, image, recognition, command.category if command.action == "remember" else None)


def carry_out(home, command: Command, image: Image | None, recognition: Recognition | None) -> tuple[Command, str]:
    """Do a confirmed command through the Household; the command as it ended and the line to say."""
    photo = None
    try:
        if command.action == "forget":
            concept = home.forget(command.name)
            return replace(command, state="done"), f"I forgot <{concept.name}>."
        if image is None:
            return replace(command, state="refused"), NO_FRAME
        box = region_of(command, home, image, recognition)
        with tempfile.TemporaryDirectory(prefix="remember-", dir=process_folder()) as tmp:
            photo, in_pixels = _save(image, Path(tmp) / "frame.png"), _in_pixels(box, image) if box else None
            if command.action == "add":
                concept = home.memory.add_views(command.name, [photo], in_pixels)
                return replace(command, state="done", box=box), f"I added this as another photo of <{concept.name}>."
            concept = home.remember(command.name, [photo], "", command.category, in_pixels)
        return replace(command, state="done", box=box), f"I will remember this as <{concept.name}>."
    except EdgeRapError as e:
        log.warning("voice %s <%s>: %s", command.action, command.name, e)  # whole: it says how to finish
        if isinstance(e, PartlyDone):  # forgotten, its events not: not "I couldn't forget"
            return replace(command, state="done"), f"I forgot <{command.name}>, but could not remove its events."
        why = spoken_reason(e, photo)
        return replace(command, state="failed"), f"I couldn't {command.action} <{command.name}>: {why}"


def spoken_reason(error: EdgeRapError, photo: Path | None = None) -> str:
    """Why a command failed, said to a listener: the frame by that name, not by its temporary file; a person's
    frame without one face said so, not with the boxes and option a typed command is asked for; no path read out
    (the log has the message whole): a device error's problem without its file, a leading "PATH: " and an OS
    error's file name dropped, any other path called the memory folder; advice in brackets on a command-line option
    left out."""
    if isinstance(error, FaceChoiceError):
        return "I see no face here." if error.count == 0 else f"I see {error.count} faces and cannot tell which."
    text = error.problem if isinstance(error, DeviceError) else str(error)  # its path may hold a space
    text = text.replace(str(photo), "this frame") if photo else text
    text = _OPTION_HINT.sub("", _OS_FILE.sub("", _LEADING_PATH.sub("", text)))
    return _PATH.sub("the memory folder", text)


def _save(image: Image, path: Path) -> Path:
    """The frame as a photo to remember; a temporary folder that cannot take it (a small /tmp full) is the
    device's trouble, said as the memory's own are: an OSError ended the voice listener."""
    from PIL import Image as PILImage

    try:
        PILImage.fromarray(image.pixels).save(path)
    except OSError as e:
        raise disk_error(e, path.parent) from None
    return path


def _in_pixels(box: Box, image: Image) -> Box:
    """A box in the frame's original size as a box in its decoded pixels (the photo saved)."""
    (w, h), (pw, ph) = image.size, (image.pixels.shape[1], image.pixels.shape[0])
    return Box(box.x0 * pw // w, box.y0 * ph // h, box.x1 * pw // w, box.y1 * ph // h)
