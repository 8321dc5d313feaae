"""Which remembered concepts a spoken question names, despite recognition errors ("mocha" for <mochi>), spoken
forms ("bow", "Bo" for <bo>; "red mug" for <red_mug>; "dog six" or "Dog 6" for <dog6>) and possessives ("Anya's
backpack").

Every run of words is compared with the stored names it is as long as (one word more or fewer), spelled (rapidfuzz's
ratio) and sounded (jellyfish's metaphone codes, compared the same way). A short name is also heard in its spelling with
the first consonant swapped for the nasal made at the same place, written as a name ("Mo" for <bo>, "Nan" for <dan>, but
not "men" for <ben>): whisper hears "Bo" as "Mo" in noise. A word spelled otherwise that sounds exactly like a name is
it only when written as a name too ("Beau" may be <bo>, "beau" is not, nor "Beau" starting a sentence), and a short
name's vowels count in its sound ("Bea" is another name, not <bo>); a word two letters or more shorter than a one-word
name that sounds otherwise is a word among its letters ("buy" is no <buddy>). A one-word name spelled otherwise is not
heard in a word after an article or a possessive, a thing, where the name is short and the word not written as a name,
shares no vowel with it or begins with it (or with it less a plural's "s" and a silent "e": "the ball" is no <bill>, "my
bow" no <bo>, "the sun" no <sunny>, "the rose" no <rosie>; "my Beau" is <bo>, "my mocha" <mochi>, "my mugs" <mug>). A
hesitation and its pause start no name ("Ah, Mo." is <mo>, "Ah Mo." <ah_mo>), nor is a holiday's "Eve" <eve>. Common
English words match a name only when spelled exactly, so "any" is not heard as <anya> nor "be" as <bo>, nor common words
together ("me a" as <mia>); a name that is a common word or a number alone is that word where used as one (`as_itself`:
"I see seven cups" names no <seven>, "Did 7 eat?" does). A run that scores about the same for two names, or that sounds
exactly like two names without being spelled as either, or is the spoken form of two names ("red_mug" and "Red Mug"), is
reported as ambiguous, so the caller can ask which one was meant. Pure functions: no model, no I/O.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Collection, Sequence

from edge_rap.memory.store import fold, name_key, spelled, straight_apostrophes
from edge_rap.scripts import has_unspaced, is_unspaced, marks, pieces
from edge_rap.words import (COMMON, EMOJI, FILLER, FILLERS, NUMBERS, a_day, after_article, after_owner, as_itself,
                             as_noun, describes_a_thing, is_common, opens_as_a_name, plain_word, starts_sentence,
                             ten_and_unit)

THRESHOLD = 75.0  # a run of words is this name when its score reaches this (0-100)
ALIKE = THRESHOLD - 0.5  # spelled otherwise but sounds the same: this name only when written as a name
# The sound lifts a spelling to a name only from this alike (0-100): metaphone drops vowels and writes "d" as "t", so
# "Dad's" sounded as <teddy> and "time" as <tom> at 50-57, while whisper's "macha" for <mochi> is 60 (BENCHMARKS.md)
LIFT = 60.0
TIE = 6.0  # two names within this of each other for the same words: ambiguous
JOINERS = str.maketrans("", "", "\uFE0F\u200D")  # a name is the same with or without them ("❤️", "❤")
# an apostrophe after a name, written ("F'", not the "'s" of "F's", nor the possessive's after an "s" before a word:
# "Chris' bag", whisper's "Chris's bag") or said ("F apostrophe", "F-prime")
APOSTROPHE_SAID = re.compile(r"'(?![^\W\d_])(?!(?<=s')\s+[^\W\d_])|[\s.-]+(?:apostrophe|prime)\b", re.I)
POSSESSIVE = re.compile(r"'s?$", re.I)  # in a text whose apostrophes are "'" (straight_apostrophes): "Bo's", "Chris'"
LETTERS_DIGITS = re.compile(r"(?<=[^\W\d_])(?=[0-9])|(?<=[0-9])(?=[^\W\d_])")
AMPERSAND = "&"  # said "and": "Salt & Pepper" is <salt_and_pepper>, and "Salt and Pepper" is <Salt & Pepper>
# The names of letters, as whisper writes one said alone: "em and em" is <M&M>, "ar and bee" <R&B>
LETTER_NAMES = {"ay": "a", "bee": "b", "cee": "c", "dee": "d", "ee": "e", "ef": "f", "eff": "f", "gee": "g",
                "aitch": "h", "haitch": "h", "jay": "j", "kay": "k", "el": "l", "ell": "l", "em": "m", "en": "n",
                "pee": "p", "cue": "q", "ar": "r", "es": "s", "ess": "s", "tee": "t", "vee": "v", "ex": "x", "wye": "y",
                "zed": "z", "zee": "z"}
# A stop and the nasal made at the same place (the lips, the tongue's tip): one heard for the other.
NASAL_PAIRS = (frozenset("bm"), frozenset("dn"))
# A few spellings of one vowel sound: "Beau" is <bo>'s, "Lee", "Lea", "Leah" and "Ky" <li>'s and <kai>'s, "Lew" <lou>'s
VOWEL_SPELLINGS = (("eau", "o"), ("ee", "i"), ("ea", "i"), ("ew", "u"), ("y", "i"))

@dataclass(frozen=True)
class Heard:
    """Words of the transcript taken for a stored name: where they are (character span, without a possessive's
    ending) and how sure (100 = spelled as stored)."""

    name: str
    words: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Ambiguous:
    """Words that sound like more than one stored name."""

    words: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class Names:
    heard: list[Heard]  # one per concept, in order of mention
    ambiguous: list[Ambiguous]

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.heard]


def spoken_form(name: str) -> str:
    """How a stored name is said: lower case, separators as spaces, a number apart and in numerals ("red_mug" ->
    "red mug", "dog6" and "dog_six" -> "dog 6")."""
    words = re.split(r"[\s_\-.]+", LETTERS_DIGITS.sub(" ", name).lower())
    numerals = _compounds([(NUMBERS.get(word, word), 0, 0) for word in words])  # "dog_six" is said as <dog6> is
    return " ".join(word for word, _, _ in numerals).strip()


def written_form(name: str) -> str:
    """How whisper should write a stored name: "red_mug" -> "Red Mug", "dog6" -> "Dog 6", "rc_car" -> "RC Car" (a
    word without a vowel is letters said one by one); a name with capitals of its own is kept as it is spelled."""
    if not name.islower():
        return name
    return " ".join(word.upper() if word.isalpha() and not set(word) & set("aeiouy") else word.capitalize()
                    for word in spoken_form(name).split())


def _similarity(said: str, name: str) -> float:
    """0-100: the better of the spelling's and, when both start alike and are spelled at least LIFT alike, the
    mean of spelling and sound; words that sound exactly like the name score at least ALIKE."""
    import jellyfish
    from rapidfuzz import fuzz

    spelled = fuzz.ratio(said, name)
    code_said, code_name = jellyfish.metaphone(said), jellyfish.metaphone(name)
    if not code_said or not code_name or code_said[0] != code_name[0]:
        return spelled
    sound = fuzz.ratio(code_said, code_name)
    return max(spelled, (spelled + sound) / 2 if spelled >= LIFT else 0.0, ALIKE if sound == 100 else 0.0)


def score(said: str, name: str, capital: bool = True, letters: bool = True, named: bool | None = None) -> float:
    """How much the words `said` (lower case, spaces between words) sound like the spoken name; `capital`:
    whether they were written with a capital, as a name (a nasal twin, "Mo" for "bo", counts only then); `letters`:
    a shorter word among the name's letters scores 0 (`_within_letters`), else as any other; `named`: whether that
    capital is a name's, not only a sentence's (`capital` where not given)."""
    if said == name or said.replace(" ", "") == name.replace(" ", ""):
        return 100.0
    if has_unspaced(name):
        return 0.0  # typed as stored or not at all: one character apart is another name ("李小龙", "李小明")
    if is_common(said) or len(said) < 2 or _numbers(said) and _numbers(said) != _numbers(name):
        return 0.0  # a number is heard as itself: "dog 3" is not <dog6> (but "dog" may be)
    if " " in said and _only_common(said, name):
        return 0.0  # common words together are themselves, not a name: "me a" is not <mia>, "did I" not <ted>,
        # "at 6" not <cat6> (but "the boss" is <the_boss>, and "my chai" is <mochi> misheard in noise)
    compact, target = said.replace(" ", ""), name.replace(" ", "")
    if len(target) <= 3 and (_sounds(compact) != _sounds(target) or _other_vowels(compact, target)):
        # a short name ("bo") only by its sound, its vowels too: "bow" and "Beau" yes, "boat" and "Bea" no; or its
        # nasal twin ("mo"): a candidate
        return THRESHOLD if capital and _nasal_twin(compact, target) else 0.0
    named = capital if named is None else named
    if letters and _within_letters(said, name, named):
        return 0.0
    # the name's start written as a name is a household's shortening: of two names ("Fran" of <frankie> and
    # <francesca>), asked which
    return max(_similarity(compact, target), THRESHOLD if named and _shortening(said, name) else 0.0)


def _shortening(said: str, name: str) -> bool:
    """Whether the word `said` is the start of the one-word `name`, three letters or more and not all of it: "Fran"
    of <frankie> and of <francesca>, "Ben" of <benji>."""
    return " " not in said + name and 3 <= len(said) < len(name) and name.startswith(said)


def _within_letters(said: str, name: str, capital: bool) -> bool:
    """Whether the word `said` is two letters or more shorter than the one-word `name` and sounds otherwise: a word
    of its own among the name's letters, which spelled it alike ("buy" scored 75 for <buddy>, "bust" 83 for
    <buster>), not the name misheard, which whisper writes whole; a short form said alike is still it ("Max" of
    <maxie>, "Bud" of <buddy>), and so is the name's start written as a name (`capital`): a household's shortening
    ("Ben" of <benji>, "Char" of <charlie>, "Ali" of <alice>); a sentence's capital is a name's only where what follows
    the word is (`words.opens_as_a_name`: "Char, come here.", not "Bust it open.")."""
    if capital and name.startswith(said):
        return False
    return " " not in said + name and len(said) + 2 <= len(name) and _sounds(said) != _sounds(name)


def _only_common(said: str, name: str) -> bool:
    """Whether every word of `said` but its numbers is a common word, and not one of the name's own unless the
    name is all common words: a name so made ("today", "up and down") is heard only as spelled, where `as_itself`
    reads it (in "Is Bo in today?" "in today" was <today> by spelling). A run with one other word is still
    compared: whisper writes "Mochi" as "my chai" in noise (four of the 350 questions of `tools/bench_listen.py
    names --choosing` were named only so), though "my keys" is then <max>."""
    letters = [w for w in said.split() if not w.isdigit()]
    own = [] if all(is_common(w) for w in name.split() if not w.isdigit()) else name.split()
    return bool(letters) and all(is_common(w) and w not in own for w in letters)


def _other_vowels(said: str, name: str) -> bool:
    """Whether `said` and a short `name` have vowels and share none. Metaphone drops vowels, so a name of three
    letters or fewer sounds as one or two consonants: "Bea" and "Bay" sounded exactly like <bo>, "Tim" like <tom>,
    "Cot" like <kit>, each another name or word; "Bow", "Beau", "Leigh", "Lee" for <li> share one with theirs."""
    ours, theirs = _vowels(said), _vowels(name)
    return bool(ours and theirs) and not ours & theirs


def _vowels(word: str) -> set[str]:
    """The vowels of a word, a few spellings of one sound written as it ("eau" as "o", "ee", "ea" and "y" as "i",
    "ew" as "u"): "Lea" and "Leah" are <li> as whisper may write it, "Bee" <bea>, and "Dean" no <dan>."""
    for spelling, vowel in VOWEL_SPELLINGS:
        word = word.replace(spelling, vowel)
    return set(word) & set("aeiou")


def _numbers(text: str) -> list[str]:
    return re.findall(r"[0-9]+", text)


def _nasal_twin(said: str, name: str) -> bool:
    """Whether `said` is `name` with its first letter swapped for the nasal of the same place, or back."""
    return len(said) == len(name) and said[1:] == name[1:] and frozenset(said[0] + name[0]) in NASAL_PAIRS


def _sounds(text: str) -> str:
    """The metaphone code of words said together."""
    import jellyfish

    return jellyfish.metaphone(text.replace(" ", ""))


@functools.cache
def _word_pattern() -> re.Pattern:
    """A word of any script with its combining marks (Hindi's vowel signs, macOS's decomposed "Jose\u0301"), or a
    run of emoji, or an "&" (read "and", as it is said): a typed question says "Théière", "राहुल", "李小龙" or "🐈" as
    stored; its apostrophes are "'" (straight_apostrophes: a phone keyboard's "’"; a "ʼ", which is a letter to a
    regular expression; a "`")."""
    return re.compile(rf"(?:[^\W_]|[{marks()}])+(?:'[^\W\d_]+)?|{EMOJI}|{AMPERSAND}")


def _words(text: str) -> list[tuple[str, int, int]]:
    """(word in lower case without a possessive ending, start, end of that part) for each word; in a script
    written without spaces each character is a word ("李小龙在哪里"), so that a name is found as a run of them."""
    out, straight = [], straight_apostrophes(text)
    for m in _word_pattern().finditer(straight):  # one character for one: spans are the text's
        word = m.group(0)
        for piece, offset in pieces(_stem(word)):
            start = m.start() + offset
            for part in LETTERS_DIGITS.split(piece):  # "Dog6" is two words, as "Dog 6"
                said = "and" if part == AMPERSAND else fold(part).translate(JOINERS)
                out.append((NUMBERS.get(said, said), start, start + len(part)))
                start += len(part)
    read = _said_and([w for w, _, _ in out])  # but an "'n" with no apostrophe after it, as <'n> is written
    return _compounds([(said if straight[start - 1:start] != "'" or straight[end:end + 1] == "'" else word, start, end)
                       for said, (word, start, end) in zip(read, out)])


def _said_and(words: list[str]) -> list[str]:
    """The words with an "n" between two words read "and", as it is said: "Rock 'n' Roll" is "Rock and Roll", in
    what is said and in a name (<rock_n_roll>), though "Jay N" keeps its letter."""
    return ["and" if word == "n" and 0 < k < len(words) - 1
            and all(len(w) > 1 and w.isalpha() and w != "and" for w in words[k - 1:k + 2:2]) else word
            for k, word in enumerate(words)]


def _by_length(forms: dict[str, str]) -> dict[int, list[str]]:
    """How many of `_words`' words may say each name ("red mug" 2, "李小龙" 3): one more or fewer ("tea pot" said
    "teapot"), but a name of a script written without spaces in as many as it has. A question's runs of words
    are compared with the names of their length only: a 45-character Chinese question is 45 words, and at 1000
    names each was compared with every name."""
    fitting: dict[int, list[str]] = {}
    for name, form in forms.items():
        n = sum(len(pieces(word)) for word in form.split())
        for m in (n,) if has_unspaced(form) else (n - 1, n, n + 1):
            fitting.setdefault(m, []).append(name)
    return fitting


def _compounds(words: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """(word, start, end) with a ten and a unit after it made one number: "twenty one" is 21, as in <dog21>."""
    out: list[tuple[str, int, int]] = []
    for word, start, end in words:
        if out and (number := ten_and_unit(out[-1][0], word)):
            out[-1] = (number, out[-1][1], end)
        else:
            out.append((word, start, end))
    return out


def _written_as(text: str, start: int, end: int, options: Collection[str]) -> str | None:
    """The one of `options` that text[start:end] is written in <brackets> as, spelled exactly, as `forget` takes it
    (`spelled`), or without a possessive after it inside them ("<Bo's>" where no <Bo's> is), or None: a memory of
    before the rules that make them one name may hold two said alike ("f" and "f'" too), and the exact spelling is
    the one meant."""
    left, right = text.rfind("<", 0, start), text.find(">", end)
    if left < 0 or right < 0 or ">" in text[left:start] or "<" in text[end:right]:
        return None
    written = text[left + 1:right].strip()
    cut = POSSESSIVE.search(straight_apostrophes(written))  # any apostrophe's ("<Bo’s>"), the name as spelled
    return spelled(written, options) or (spelled(written[:cut.start()], options) if cut else None)


def heard_as(name: str) -> str:
    """A name's spoken form folded as `_words` reads a transcript (as name_key: "ß" is <SS>): without joiners, nor
    an apostrophe that does not stand between letters ("f'" is said "f", "'n" is "n": a word has none at its ends, and
    a name with one there was never heard, not even typed <f'> or <'n>). Two names heard alike are told apart only in
    <brackets>, or by the apostrophe said ("F apostrophe": `_apostrophe_said`). A number's possessive ending is
    not heard either, as `_words` strips it from "2's": <80's> is said "80's". An "&" is said "and", as is an "n"
    between words (<rock_n_roll>)."""
    said = " ".join(fold(spoken_form(name)).replace(AMPERSAND, " and ").split())  # "M&S" is said "M and S"
    words = [POSSESSIVE.sub("", w) if w[:1].isdigit() else w for w in said.split(" ")]
    bare = [re.sub(r"'(?![^\W\d_])|(?<![^\W\d_])'", "", w.translate(JOINERS)) for w in words]
    # its "n" read as `_words` reads it, without its apostrophes ("Guns N' Roses"), but not an "'n" alone
    return " ".join(read if w[:1] != "'" or w[-1:] == "'" else b for w, b, read in zip(words, bare, _said_and(bare)))


def _forms(names: Sequence[str]) -> dict[str, str]:
    """Each name as a transcript's words are compared with it: `heard_as`, and a word's possessive ending dropped as
    `_words` drops it from the question's ("Bo's" is read "bo"), so that <Bo's> is heard, said or typed; where
    another name is said so (<bo> beside <Bo's>), it is kept, and "Bo's" is <bo>'s (<Bo's> only in brackets)."""
    forms = {name: heard_as(name) for name in names}
    bare = {name: " ".join(_stem(w) for w in form.split(" ")) for name, form in forms.items()}
    said = set(forms.values())
    return {name: bare[name] if bare[name] == form or bare[name] not in said else form for name, form in forms.items()}


def _stem(word: str) -> str:
    """A word without its possessive ending, as `_words` reads it: not "he's", but "2's", "Bo's", "Chris'"."""
    return POSSESSIVE.sub("", word) if len(word) > 3 or word[:1].isdigit() else word


def _apostrophes(name: str) -> tuple[bool, bool]:
    """Whether `name` starts and ends with an apostrophe (<'n>, <f'>), which `heard_as` does not hear."""
    straight = straight_apostrophes(name)
    return straight.startswith("'"), straight.endswith("'")


def _apostrophe_said(text: str, start: int, end: int) -> tuple[int | None, int | None]:
    """Where an apostrophe written just before text[start:end] starts ("'n"), and where one written or said just
    after it ends ("F'", "F apostrophe", "F prime": what a person says of <f'>); None for each not there. One
    starting an "'s" is a possessive's, not a name's."""
    straight = straight_apostrophes(text)
    after = APOSTROPHE_SAID.match(straight, end)
    return start - 1 if straight[start - 1:start] == "'" else None, after.end() if after else None


def match_names(text: str, names: Sequence[str], within: bool = False, living: Collection[str] = ()) -> Names:
    """The stored `names` the transcript `text` mentions, and the words that could be either of two names. `within`:
    `text` goes on a sentence begun before it (the name in "Forget Beau."), so its first capital is a name's.
    `living`: those of `names` that are a person's or an animal's (`kinds.is_alive`), not heard in the ordinary
    word spelled so (`as_noun`: "Pass the pepper." of a dog <pepper>)."""
    words = _words(text)
    owned = _possessives(text, words)
    forms = _forms(names)
    fitting = _by_length(forms)
    spaced = {name for name, form in forms.items() if not has_unspaced(form)}
    # the words after an article, each the ordinary word, no person's or animal's name, spelled so or only alike
    nouns = {k for k, (_, a, b) in enumerate(words) if as_noun(text, a, b)} if living else set()
    # the words said of a thing, in no name ("The road is rocky." names no <rocky>, nor its "is rocky" a <rocco>)
    said_of = {k for k, (_, a, b) in enumerate(words) if describes_a_thing(text, a, b)}
    # the fillers opening a question (`as_itself`), in no name but one of more words spelled with them (<oh_well>):
    # "Well, where is he?" names no <will>, as a typed one does not
    fillers = {k for k, (w, a, b) in enumerate(words) if w in FILLERS and as_itself(text, a, b, within)}
    candidates: list[tuple[float, int, int, str, bool, bool, bool]] = []  # score, first word, last word + 1, name,
    # may be it, heard with the possessive's "s" as its own ("Bo's" as "bos"), spelled so with its "'s" last
    among: dict[tuple[int, int], float] = {}  # a word among a name's letters: what it would have scored for it
    for i in range(len(words)):
        for j in range(i + 1, min(i + max(fitting, default=0), len(words)) + 1):
            said = " ".join(w for w, _, _ in words[i:j])
            if re.search("[<>]", text[words[i][1]:words[j - 1][2]]):
                break  # across a bracket: "<salt> and <pepper>" are two names, not <salt_and_pepper>
            if j - i > 1 and len(words[i][0]) > 1 and re.fullmatch(FILLER, words[i][0]) \
                    and re.search(r"[^\w\s']", text[words[i][2]:words[i + 1][1]]):
                break  # a hesitation and its pause, then a name: "Ah, Mo." is <mo>, where "Ah Mo." is <ah_mo> (but
                # "M. & M." is still <M&M>)
            if j - i == 1 and a_day(text, *words[i][1:]):
                break  # "Christmas Eve" is a day, no <eve>
            number_next = j < len(words) and words[j][0].isdigit()
            unspaced_only = all(len(w) == 1 and is_unspaced(w) for w, _, _ in words[i:j])
            for name in fitting.get(j - i, ()):
                form = forms[name]
                if unspaced_only and name in spaced:
                    continue  # not one letter in common ("李小龙在" and "mochi"): it would score 0
                if number_next and _numbers(form) and not _numbers(said):
                    continue  # "dog" of "dog 7" is not <dog2>: its number was said, and it is another
                if _loose_and(said, form) or _not_the_letters(said, form) or (
                        words[i][0] == form and plain_word(form)
                        and as_itself(text, *words[i][1:], within)) or (
                        j - i > 1 and plain_word(form)
                        and any(w == form and as_itself(text, a, b, within) for w, a, b in words[i:j])) or (
                        name in living and _as_noun(words, range(i, j), nouns, form)) or not said_of.isdisjoint(
                        range(i, j)) or any(k in fillers and (j - i == 1 or w not in form.split(" "))
                                            for k, (w, _, _) in enumerate(words[i:j], i)):
                    continue  # "and Pepper" of "Bo and Pepper" is no <salt_and_pepper>, nor "and me" <M&M>, nor
                    # "Tim and me" (its words no letters), nor the "and" of "Bo and Max" <and>, nor the "one" of "I
                    # see one cup" <one> (a number is itself as a common word is: heard as typed), nor "the pepper"
                    # or "the peppers", nor "the paper" (whisper's), a dog <pepper> (nor its words with others, "the
                    # pepper" alike), nor another's name in that word ("Pay the bill." of <Will>), nor a run of words
                    # holding such a word where it is itself ("Oh well, where is he?" of a dog <well>: "oh well")
                capital = text[words[i][1]].isupper()
                # a name's start written as a name ("Is Char home?", "Char, come here."), not a sentence's capital on
                # a word of its own ("Bust it open.", "Tuck in your shirt." of <Buster>, <Tucker>: `opens_as_a_name`)
                named = capital and (not starts_sentence(text, words[i][1], within)
                                     or opens_as_a_name(text, words[j - 1][2]))
                whole = _with_s(said, form, owned.get(j - 1), text)
                s, joined = max((score(said, form, capital, named=named), False),
                                (100.0 if whole is not None else 0.0, True))
                if s == 0 and _within_letters(said, form, named):
                    among[i, j] = max(among.get((i, j), 0.0), score(said, form, capital, letters=False))
                if s < 100 and _plural(text, words, i, j, form, owned):  # "Where's my mugs?" of <mug>, which
                    s, joined = max(s, _similarity(said, form)), False  # a short name's sound alone did not hear
                elif s < 100 and _a_thing(text, words, i, j, form, owned, capital):
                    continue
                if s >= ALIKE:  # words only alike in sound ("beau" for <bo>) are a name only written as one
                    # ("Beau"), else only another name's rival ("bow": <bo> or <beau>?)
                    named = s >= THRESHOLD or capital and not starts_sentence(text, words[i][1], within)
                    candidates.append((max(s, THRESHOLD), i, j, name, named, joined, whole is True))
    # a word among one name's letters is no other name it scores no better for than it did for that one: "Frances"
    # is no <francois> beside a <francesca>, nor "Zane" <sunny> beside a <zanele>
    candidates = [c for c in candidates if among.get((c[1], c[2]), 0.0) < ALIKE or c[0] - among[c[1], c[2]] > TIE]
    # at the same score the longer run ("dog 5" before "dog"), then a name spelled with its "'s" (<Bo's> before <bo>)
    candidates.sort(key=lambda c: (-c[0], c[1] - c[2], not c[6]))
    taken: set[int] = set()
    chosen: dict[str, Heard] = {}
    ambiguous: list[Ambiguous] = []
    for s, i, j, name, named, joined, spelled_so in candidates:
        if not named or taken & set(range(i, j)):
            continue
        exact = _written_as(text, words[i][1], words[j - 1][2], forms)
        if name in chosen and (exact is None or exact in chosen):
            continue  # said once more; but "<Bo's>" after <bo> names <Bo's>, which its words spell too
        said = " ".join(w for w, _, _ in words[i:j])
        rivals = [] if spelled_so else sorted({
            n for t, a, b, n, _, other, _ in candidates if a == i and b == j and n != name and n not in chosen
            # said alike: "red_mug" and "Red Mug", "teapot" and "tea pot", "dog_six" and "dog6"; "Bo's" of <bo> and
            # <bos>, each read as its own (but <Bo's>, spelled so: `_with_s`)
            and (name_key(n) == name_key(name) or forms[n] == forms[name] or other != joined and s - t <= TIE
                 or s < 100 and (s - t <= TIE or _sounds(forms[n]) == _sounds(forms[name]) == _sounds(said)
                                 or _shortening(said, forms[n]) and _shortening(said, forms[name])))})
        taken |= set(range(i, j))
        said = text[words[i][1]:words[j - 1][2]]
        if exact is not None and exact not in chosen:
            name, rivals = exact, []  # "<Zoe's mug>" of a memory of before that holds <Zoe´s mug> beside it; "<Bo's>"
            # beside <bo>, which its "Bo" spells exactly: the name in brackets as `ask` and `forget` take it
        around = _apostrophe_said(text, words[i][1], words[j - 1][2])
        told = [n for n in (name, *rivals) if _apostrophes(n) == (around[0] is not None, around[1] is not None)]
        if rivals and around != (None, None) and len(told) == 1:
            name, rivals = told[0], []  # "F apostrophe", "F'": <f'>, not <f>
        if rivals:
            ambiguous.append(Ambiguous(said, (name, *rivals)))
            continue
        start, end = (at if own and at is not None else word for at, own, word in
                      zip(around, _apostrophes(name), (words[i][1], owned[j - 1] if joined else words[j - 1][2])))
        taken |= {k for k in range(j, len(words)) if words[k][1] < end}  # the "apostrophe" said is the name's
        chosen[name] = Heard(name, text[start:end], start, end, round(s, 1))
    return Names(sorted(chosen.values(), key=lambda h: h.start), ambiguous)


def _a_thing(text: str, words: list[tuple[str, int, int]], i: int, j: int, form: str, owned: dict[int, int],
             capital: bool) -> bool:
    """Whether words[i:j], one word, follow an article or a possessive where the name `form` is one word too: a
    noun, a thing ("the ball", "Anya's ball", "my bow"), not a one-word name misheard ("the ball" was <bill>), where
    the name is short and the word not written as a name (its sound another word's: "bow" for <bo>, "key" for
    <kai>; "my Beau" is <bo>), shares no vowel with the word, or begins with it ("the sun" is no <sunny>); a name of
    more ("the dog" of <dog6>, "the red mud") is still heard so, and a longer one in another word of its vowels (a
    thing's name misheard or in the plural: "my mocha" for <mochi>, "the rumba" <roomba>, "my bikes" <bike>, "our
    Lunar" <luna>)."""
    said = words[i][0]
    return _one_word_after_determiner(text, words, i, j, form, owned) and (
        len(form) <= 3 and not capital or _other_vowels(said, form) or _begun_by(form, said))


def _one_word_after_determiner(text: str, words: list[tuple[str, int, int]], i: int, j: int, form: str,
                    owned: dict[int, int]) -> bool:
    """Whether words[i:j] are one word after an article or a possessive ("the ball", "Anya's ball", "his ball") and
    the name `form` is one word too: where a word may be a thing, not a name (`_a_thing`, `_plural`)."""
    return j - i == 1 and " " not in form and (after_article(text, words[i][1]) or after_owner(text, words[i][1])
                                               or i - 1 in owned)


def _begun_by(form: str, said: str) -> bool:
    """Whether the one-word name `form` begins with the word `said`, or with it less a plural's "s" and a silent
    "e", and is longer than the word in the singular: the name another word's pet form ("sunny" of "sun", "rosie" of
    "rose" and "roses"), the word a thing; not "bike" of "bikes", its plural."""
    word = said[:-1] if said.endswith("s") else said
    return form.startswith(said) or any(len(stem) > 1 and form.startswith(stem) and len(form) > len(word)
                                        for stem in (word, word[:-1] if word.endswith("e") else word))


def _plural(text: str, words: list[tuple[str, int, int]], i: int, j: int, form: str, owned: dict[int, int]) -> bool:
    """Whether words[i:j], one word after an article or a possessive, are the one-word name `form` with a plural's
    "s" or "es" ("my mugs" of <mug>, "the boxes" of <box>; but "the boss" is no <bos>): a thing's name said of it
    and others like it."""
    said = words[i][0]
    return _one_word_after_determiner(text, words, i, j, form, owned) and _plural_of(said, form) and not is_common(said)


def _as_noun(words: Sequence[tuple[str, int, int]], run: range, nouns: set[int], form: str) -> bool:
    """Whether the `run` of `words` holds a word after an article (`nouns`), so that a person's or an animal's name
    `form` said or spelled alike there is the ordinary word ("the paper", "the pepper" of a dog <pepper>), unless
    the article is the name's own, in its place in the run: after the name's words before it ("Winnie the Poo" of
    <winnie_the_pooh>), or opening both before the name's word spelled so ("The Rock" of <the_rock>, not "is the
    rocky" nor "the rocky road", an article, though said alike)."""
    own = form.split(" ")
    return any(k in nouns and not _own_article(words, run, k, own) for k in run)


def _own_article(words: Sequence[tuple[str, int, int]], run: range, k: int, own: list[str]) -> bool:
    """Whether the word before words[k], in the `run` said as a name of the words `own`, is that name's own article
    at its place in it, and, where it opens the name, words[k] is the name's next word spelled so."""
    at = k - 1 - run.start
    return 0 <= at < len(own) - 1 and words[k - 1][0] == own[at] and (at > 0 or words[k][0] == own[1])


def _plural_of(said: str, form: str) -> bool:
    """Whether the word `said` is the one-word name `form` with a plural's "s" or "es" ("mugs", "boxes"; not "boss"
    of <bos>)."""
    return said == form + "es" or said == form + "s" and not form.endswith("s")


def _loose_and(said: str, form: str) -> bool:
    """Whether words `said` start or end with an "and" (or "&") that the name's `form` does not: a list's word between
    names, not a name's; its three letters made "Bo and Pepper" name <salt_and_pepper> ("and Pepper"), "Tim and me"
    <M&M> and "Al and Bo" <A&W>. <and> itself, said "and", is heard."""
    first, last = said.split(" ")[0], said.split(" ")[-1]
    return first == "and" != form.split(" ")[0] or last == "and" != form.split(" ")[-1]


def _not_the_letters(said: str, form: str) -> bool:
    """Whether words `said` are not the letters of a name of letters joined by "and" (<M&M>, "m and m"; <R&B>): each
    must be its letter, or that letter's name ("em and em", "ar and bee"; the last one's plural, "M&Ms", too). By
    spelling alone, "Tim and me" and "Mum and me" were <M&M>, "Ron and Bea" <R&B>."""
    letters = form.split(" ")
    if not any(len(w) == 1 and w.isalpha() and "and" in letters[max(k - 1, 0):k + 2] for k, w in enumerate(letters)):
        return False
    words = said.split(" ")
    return len(words) != len(letters) or any(
        len(letter) == 1 and letter.isalpha() and _letter(word, last=k == len(words) - 1) != letter
        for k, (word, letter) in enumerate(zip(words, letters)))


def _letter(word: str, last: bool) -> str | None:
    """The letter a word says: itself, its name ("em"), or, last, its plural or possessive ("Ms", "M's")."""
    if len(word) == 1 or word in LETTER_NAMES:
        return LETTER_NAMES.get(word, word)
    return word[0] if last and word[1:] in ("s", "'s") and word not in COMMON else None


def made_of(name: str, names: Sequence[str]) -> list[str]:
    """The other names `name` is said as, joined by "and" (<salt_and_pepper> of <salt> and <pepper>): its words
    name it or them, and which is asked; [] where it is not made so."""
    form = heard_as(name)
    if " and " not in form:
        return []
    by_form = {heard_as(other): other for other in names if other != name}
    parts = [by_form.get(part) for part in form.split(" and ")]
    return [n for n in parts if n] if all(parts) else []


def joined_apart(text: str, found: Names, names: Sequence[str]) -> Names:
    """`found` with each name heard that is others joined by "and" (`made_of`) said like it and them: "Where are Salt
    and Pepper?" asks which of <salt_and_pepper>, <salt> and <pepper>; not where written in <brackets>, as a
    choice asks again."""
    heard, ambiguous = [], list(found.ambiguous)
    for h in found.heard:
        parts = [] if text[h.start - 1:h.start] == "<" else made_of(h.name, names)
        heard += [] if parts else [h]
        ambiguous += [Ambiguous(h.words, (h.name, *parts))] if parts else []
    return Names(heard, ambiguous)


#: Adverbs of time: what follows a name, not a thing of its ("Bo's now?", "Bo's today", "Forget Bo now.")
WHEN = r"(?:right|now|today|tonight|yesterday|again|still|lately|currently|already|yet)"
_WHEN_AFTER = re.compile(r"(?:\W*\b" + WHEN + r"\b)*\s*(?:$|[^\w\s'])", re.I)  # alone to the end of the clause


def _with_s(said: str, form: str, end: int | None, text: str) -> bool | None:
    """Whether words whose possessive ends at `end` (None: they have none) are spelled as `form` with their "s"
    ("Bo's" as <bos>): None where not. A guess at the "s" on a guess at a name named a concept in questions that named
    none ("the cat's bowl" <cass>, "Jo's" <jess>), so only the spelling counts. True where spelled so with the
    "'s" (<Bo's>, said so beside <bo>) and no word follows but adverbs of time (_WHEN_AFTER): "Where is Bo's?" and
    "Where is Bo's now?" name <Bo's> as "Forget Bo's." does, while "Bo's collar" is <bo>'s."""
    if end is not None and said + "'s" == form:
        return True if _WHEN_AFTER.match(text, end) else None
    return False if end is not None and said.replace(" ", "") + "s" == form.replace(" ", "") else None


def _possessives(text: str, words: list[tuple[str, int, int]]) -> dict[int, int]:
    """Where the "'s" after each word of letters whose possessive `_words` dropped ends, by the word's index: "Bo's"
    is also heard "bos", as whisper may write "Bos" said (<bos>); not a number's ("2's"), nor "Chris'", nor a common
    word's, a contraction ("Who's home?" is no <wes>, "What's that?" no <watts>)."""
    straight = straight_apostrophes(text)
    return {k: end + 2 for k, (word, _, end) in enumerate(words)
            if word.isalpha() and word not in COMMON and re.match(r"'s(?![^\W\d_])", straight[end:end + 3], re.I)}


def mark_names(text: str, names: Names) -> str:
    """The transcript with each heard name written <name>, as the assistant's retrieval finds names first."""
    for h in sorted(names.heard, key=lambda h: -h.start):
        start, end, after = h.start, h.end, straight_apostrophes(text[h.end:h.end + 3])
        close = re.match(r"(?:'s?)?>", after)
        if text[start - 1:start] == "<" and close:  # typed <bo> already: <bo>, not <<bo>>; "<Bo's>": <Bo>'s
            start, end = start - 1, end + close.end()
            ending = text[h.end:end - 1]  # a possessive inside the brackets, kept unless the name's own (<Bo's>)
        else:  # the name's own possessive said after the words heard ("Bo's" of <Bo's>, "the 80s"): not <Bo's>'s
            said = POSSESSIVE.search(straight_apostrophes(h.name)) and re.match(r"'?s?(?![^\W\d_])", after)
            ending, end = "", end + (said.end() if said else 0)
        own = straight_apostrophes(h.name).endswith(straight_apostrophes(ending))
        text = text[:start] + f"<{h.name}>" + ("" if own else ending) + text[end:]
    return text
