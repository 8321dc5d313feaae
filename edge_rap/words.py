"""Words too common to be a name, and where one is that word rather than a name spelled so ("Where are Mum and
Dad?" names no <and>, a cat, but "Where is And?" does): one rule for the voice's matcher (speech/names.py) and a typed
question's mentions (retrieve/decide.py), which sit in layers that do not import each other. Pure: no I/O.
"""

from __future__ import annotations

import re

from edge_rap.kinds import is_alive

# An emoji, with its variation selector, joiners and skin tone: a word of its own ("Bo and 🐶")
EMOJI = r"(?:[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF][\uFE0F\u200D\U0001F3FB-\U0001F3FF]*)+"
# Text before a word that starts a sentence: its capital is the sentence's, not a name's ("Buy milk.")
SENTENCE_START = re.compile(r"(?:^|[.!?])[\W_]*$")
SENTENCE_START_WITHIN = re.compile(r"[.!?][\W_]*$")  # the same in words that go on a sentence: not at their start

# Words too common to be a misheard name: only an exact spelling of a name counts for them.
COMMON = frozenset("""
a about above after again all am an and any anyone anything are around as at away back be been before being
below between both but by can cannot could did do does doing done down each few for from get go goes going gone
got had has have having he her here hers him his home how i if in inside into is it its just kitchen know last
let like look me more most my near no nor not now of off on once one only or other our out outside over own
please put right room same saw see seen she should show so some something such table tell than that the their
them then there these they this those through to today too under until up very want was way we were what when
where which while who whom whose why will with would yes yet you your hey hi hello okay ok alright robot um uh er erm
hmm
""".split())
# Numbers said as words, compared as numerals: whisper writes "Dog 6" or "dog six" for the same words.
NUMBERS = {word: str(i) for i, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
NUMBERS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80",
                "ninety": "90", "hundred": "100"})
_WORDS_OF = {numeral: word for word, numeral in NUMBERS.items()}
FILLER = r"(?:u+m+|u+h+|e+r+m*|h*m+|a+h+|oh)"  # a hesitation, however long it is held: "um", "ummm", "uhh", "hmm"
# What follows a word that another word of its clause comes after: no ",.;:!?" before that one ("Bo and Max")
_WORD_AFTER = re.compile(rf"(?:[^\w,.;:!?&]|_)*?(?:[^\W_]|{EMOJI}|&)")
# An article, "some" or a possessive just before a word: the word is a noun, a thing's name ("the robot", "my table")
_DETERMINER = re.compile(r"\b(?:the|a|an|some|my|our|your|their)[^\w,.;:!?]+$", re.I)
# An article or "some" just before a word, no possessive: a person's or a pet's name there is the word ("the pepper"),
# where after a possessive it is still theirs ("my dad", "our bo")
_ARTICLE = re.compile(r"\b(?:the|a|an|some)[^\w,.;:!?]+$", re.I)
# Words that end a clause as themselves after another of its words: "Is Bo in?", "Is the TV on?", "Is anyone home?",
# and the adverbs of time among the common words: "Where is Bo now?", "Is Bo back yet?"
_PARTICLES = frozenset("in on out up off over down back away around inside outside home here there "
                       "now today again yet too then once".split())
# A possessive's ending after a word, or an "s" after numerals: a number so is a name, an owner's ("Where is 42's
# bowl?", "Seven's bowl", whisper's "42s bowl") or one with its "s" (<80's>: "Forget 80s.")
_ENDING_AFTER = re.compile(r"(?:['\u2019\u02bc`]s?|(?<=[0-9])s)(?![^\W_])", re.I)
# The word after a number in its clause: what it counts where a noun in the plural ("seven cups", "42 minutes"), a
# time's "o'clock", "am" or "pm" ("7 a.m."), else a word said of it ("Did 7 eat?", "Is 7 upstairs?"): whisper writes
# a pet <seven> as "7", as the names prompt spells it, and no capital tells that "7" apart from a count
_COUNTED = re.compile(r"(?:[^\w,.;:!?]|_)*(?:o['\u2019\u02bc`]?\s?clock|[ap]\.?m\b|(?P<word>[^\W\d_]+))\b"
                      r"(?!['\u2019\u02bc`])", re.I)
_PLURALS = frozenset("people children men women feet teeth mice geese sheep".split())  # and the nouns in "s"
# Units a number measures in the singular, a compound's first words: "my 7 year old" (whisper's "seven-year-old"),
# "a 7 minute walk"
_UNITS = frozenset("year month week day hour minute".split())
# Words in "s" said of a pet rather than counted by a number ("Is 7 upstairs?", "Is 42 yours?")
_NOT_PLURALS = frozenset("upstairs downstairs indoors outdoors always sometimes perhaps afterwards towards yours ours "
                         "theirs".split())
# Verbs in "s" said of a pet or a person, with more said after them: "7 likes fish", "Seven needs a bath" (but "I got 7
# likes." counts them)
_VERBS_IN_S = frozenset("likes loves hates wants needs eats sleeps seems sits stays knows barks purrs hides belongs "
                        "gets comes feels".split())
# What a name opening a sentence has after it, its capital then a name's, not the sentence's: nothing more in its
# clause ("Ben!", "Char, come here."), a possessive or a verb's ending ("Ben's bowl", "Char'll eat"), "and", "or" or
# "&" ("Ben and Char are out"), or a verb a subject takes ("Ben is hungry.", "Char ate.", "Ali barked"); not a word
# opening a sentence as itself before its object, its noun or a particle ("Bust it open.", "Tuck in your shirt.",
# "Chest pain", "Ever been to Paris?")
_NAME_OPENING = re.compile(r"(?:[^\w,.;:!?&'\u2019\u02bc`]|_)*(?:$|[,.;:!?&]|['\u2019\u02bc`]|(?P<word>[^\W\d_]+)\b)")
_SUBJECT_VERBS = frozenset("is was are were has had have does did do can could will would should shall may might must "
                           "and or ate went came ran got left sat slept saw took bit broke hid stole found knew made "
                           "said told looks goes plays runs lives misses smells sounds too also just still already "
                           "never always really".split()) | _VERBS_IN_S
# A word after it that asks where it is, ending the question: "Ben home?", "Char in?" ("Tuck in." is no question)
_WHERE_ASKED = frozenset("home here there in out back inside outside upstairs downstairs around okay ok".split())
_ASKED = re.compile(r"[^\w,.;:!?]*\?")
# What comes before a number that opens its clause, its subject: the text's start, a punctuation mark, or a word that
# opens a clause ("Bo and 7 sleeps upstairs", "I think seven wants out"); after another ("I got 7 likes on my post",
# "only 7 sleeps until Christmas") a word in "s" is what it counts
_SUBJECT_BEFORE = re.compile(r"(?:^|[,.;:!?]|\b(?:and|or|but|that|if|when|because|while|think|thought|guess|hope|know|"
                             r"knew|says|said))[^\w,.;:!?]*$", re.I)
# A word before a number, or after it, that makes it a time of day ("Dinner is at 7 tonight.", "Call me at seven", "Be
# home by 7", "7 tomorrow"): no pet <seven>, though "Is 7 at home?" and "Did 7 eat?" still name one
_TIME_BEFORE = re.compile(r"\b(?:at|by|until|till|around|before|after)[^\w,.;:!?]+$", re.I)
_TIME_AFTER = re.compile(r"(?:[^\w,.;:!?]|_)*(?:tonight|tomorrow)\b", re.I)
# Of those, the words that open a clause, whose subject a number with a verb in "s" after it is ("Wait until 7 gets
# home."), where "at", "by" and "around" open none ("Dinner by 7 seems fine." is a time)
_CLAUSE_TIME_BEFORE = re.compile(r"\b(?:until|till|before|after)[^\w,.;:!?]+$", re.I)
# A clause opened by a subject such as "whoever" or "anyone", whose own verb the verb in "s" after the number is: a
# time in it ("Whoever comes home after 7 gets no dessert.", "Anyone arriving after 7 gets a cold dinner.")
_INDEFINITE_OPENING = re.compile(r"(?:^|[,.;:!?])[^\w,.;:!?]*(?:whoever|whatever|anyone|anybody|anything|everyone|"
                                 r"everybody|everything|someone|somebody|nobody)\b[^,.;:!?]*$", re.I)
# What makes such a word before a number one of those it is said of, no time: a look, a point or a bark "at" it
# ("Look at Seven!", "Bo barked at 7"), a deed done "by" it ("Was the vase knocked over by 7?", "chewed by 7"), a
# place by it to sit, lie, stand or sleep ("Is Bo sitting by Seven?", where "Is Dad home by Seven?" asks a time, and
# so does a "be" before it: "The kids should be sleeping by seven.")
_NOT_TIME_BEFORE = re.compile(r"\b(?:(?:look|point|bark|growl|hiss|meow|yell|shout|laugh|peek)(?:s|es|ed|ing)?|"
                              r"(?:star|smil|wav|glar)(?:e|es|ed|ing))[^\w,.;:!?]+at[^\w,.;:!?]+$|"
                              r"(?:\b(?:[^\W\d_]+ed|eaten|bitten|broken|taken|stolen|torn)|"
                              r"(?<!\bbe\s)\b(?:sits?|sitting|sat|lie|lies|lying|lay|stands?|standing|stood|sleeps?|"
                              r"sleeping|slept))"
                              r"(?:[^\w,.;:!?]+(?:over|up|down|off|out|right))?[^\w,.;:!?]+by[^\w,.;:!?]+$", re.I)
# A request that something be done by a time ("Make sure Bo is lying down by seven.", "Be sure Bo sits by 7."): its
# "by" a deadline's, no place by a pet <seven>, where "Is Bo lying down by 7?" is one
_DEADLINE = re.compile(r"\b(?:make|makes|making|be)\s+sure\b[^,.;:!?]*\bby[^\w,.;:!?]+$", re.I)
# A thing's noun after an article or a possessive, then "is" or a verb like it: what the word after it, ending the
# sentence, says of that thing ("The road is rocky.", "My dog seems well."); not an "'s", a possessive's too ("Where
# is the dog's bowl?" is of a <bowl>)
_THING_IS = re.compile(r"\b(?:the|a|an|this|that|these|those|my|our|your|their|his|her|its)\s+(?:[^\W\d_]+\s+){0,2}"
                       r"[^\W\d_]+\s+(?P<verb>is|was|are|were|looks|looked|seems|seemed|feels|felt|sounds|sounded|"
                       r"became|becomes)\s+$", re.I)
# The verbs of those that may say who someone is, not only what they are like: "the dog is luna", typed in lower case
# as on a phone, names her, where "My dog seems well." says only how the dog is (no dog <well>)
_NAMING_VERBS = frozenset("is was are were".split())
# Words of a sentence's subject, besides a person's or an animal's category (`kinds.is_alive`: "the dog", "the man"),
# that say it is someone or their name: the word after "is" then names them ("The one by the door is luna.", "Her
# name is luna.", "My friend is bill.")
_SOMEONE = frozenset("one ones name names guy guys lady ladies friend friends neighbour neighbor visitor visitors "
                     "guest guests owner".split())
_CLAUSE_WORDS = re.compile(r"[^\W\d_]+")
_ENDS_SENTENCE = re.compile(r"[^\w,.;:!?]*(?:[.!?]|$)")
# A possessive pronoun just before a word, after another word of its clause: "Where is his ball?", "Is her bow red?"
# are of things, as "my ball" is (`after_owner`); opening the question it is whisper's "Is" ("his bow home?" is <bo>)
_OWNER = re.compile(r"[^\W_][^\w,.;:!?]+(?:his|her|its)[^\w,.;:!?]+$", re.I)
# A hyphen (as typed, or Unicode's two) joining a word to the one after it, or to the one before it
_HYPHEN_AFTER = re.compile(r"[-\u2010\u2011][^\W_]")
_HYPHEN_BEFORE = re.compile(r"[^\W_][-\u2010\u2011]$")
# A question asking how many: a number opening a sentence after it answers it, a count ("How many cups? One?")
_HOW_MANY = re.compile(r"\bhow\s+many\b", re.I)
HOW_MANY_WINDOW = 200  # characters before a number that such a question is looked for in
_WORD_BEFORE = re.compile(rf"(?:[^\W_]|{EMOJI})(?:[^\w,.;:!?]|_)*$")
# A comma, then the word a question or a request starts with: what follows a word that opens a sentence as itself
# ("Now, where is Bo?", "So, is Max home?", "Okay, forget Bo."), not a name
_QUESTION_AFTER = re.compile(r"[^\w,.;:!?]*,\s*(?:where|what|when|who|whose|which|why|how|is|are|was|were|has|have|"
                             r"had|did|does|do|can|could|will|would|tell|show|forget|remember)\b", re.I)
# Words a sentence opens with before its comma as a filler, however it goes on: "Well, where is he?" asks of no pet
# <well>, "So, has he eaten?" of no <so>, though "Bo, where is he?" asks of <bo> and "Then, is she home?" of <then>
FILLERS = frozenset("okay ok alright right well now so".split())
_MORE_FILLERS = rf"(?:[,.!?]?\s+(?:{'|'.join(sorted(FILLERS))}))"  # fillers said again: "Well, well", "Okay well"
# What follows such a filler as whisper writes it, where it wrote no comma, fillers said after it too: a sentence's
# end before a question ("Okay. Where is he?", "Well? Where is she?", a pause's "Well... Where is he?"), a question
# word straight after it ("Well where is he?", "Well well where is she?"), or another filler ("Well, okay. Where is
# he?")
_FILLER_AS_WRITTEN = re.compile(rf"{_MORE_FILLERS}*(?:[.!?]+\s+(?:where|what|when|who|whose|which|why|how|is|are|was|"
                                r"were|has|have|had|did|does|do|can|could|will|would|tell|show|forget|remember)\b|"
                                r"[^\w,.;:!?]+(?:where|what|when|who|whose|which|why|how)\b)|"
                                rf"{_MORE_FILLERS}+[,.!?]", re.I)
_ALL_BEFORE = re.compile(r"\ball[^\w,.;:!?]+$", re.I)  # before a "right": "alright" in two words ("all right")
# One or two words opening a sentence before the word that opens the question after its comma, each itself: "Okay so,
# where is Bo?", "Alright so, is Max home?" (a common word after another word of its clause was a name: <so>)
_OPENERS_BEFORE = re.compile(rf"(?:^|[,.;:!?])[^\w,.;:!?]*(?:(?:{'|'.join(sorted(FILLERS))}|oh|then|hey|{FILLER})"
                             r"[^\w,.;:!?]+){1,2}$", re.I)
# A he or she (him, her, his, hers) later in the sentence: the word opening it before its comma is who is asked about
# ("Then, is she home?" of a cat <then>, "Pepper, where is he?"), not a word opening the question, nor a filler
# (FILLERS). Looked for within 120 characters: to a sentence's end, each such word of a long one read on to it (0.4 s
# for 12,000 characters)
_HE_OR_SHE_AFTER = re.compile(r"[^.!?]{0,120}?\b(?:he|she|him|her|his|hers)\b", re.I)
# A holiday just before "Eve": the day before it, no one's name ("What are we doing on Christmas Eve?")
_HOLIDAY = re.compile(r"\b(?:christmas|xmas|new\s+year'?s|hallowe'?en|midsummer)[^\w,.;:!?]+$", re.I)


def is_common(word: str) -> bool:
    """Whether a word (lower case) is common or a hesitation: "Umm" is no <uma>, as "um" was none."""
    return word in COMMON or bool(re.fullmatch(FILLER, word))


def plain_word(word: str) -> bool:
    """Whether a word (lower case) is also said as itself, so that a name spelled so is a name only where used as one
    (`as_itself`): a common word, a number, or a sentence's opening filler ("Well, where is he?" of a pet <well>)."""
    return is_common(word) or is_number(word) or word in FILLERS


def is_number(word: str) -> bool:
    """Whether words (lower case) are a number, in numerals or said ("7", "seven", "forty two"): a name that is a
    number alone (a cat <seven>, <one>, <42>) is, as a common word's, a name only where used as one (`as_itself`:
    "Where is Seven?" and "Where is 42's bowl?", not "I see seven cups")."""
    return all(w.isdigit() or w in NUMBERS for w in re.split(r"[\s-]+", word))


def ten_and_unit(ten: str, unit: str) -> str | None:
    """The number a ten and a unit after it say, in numerals ("40", "2": "42"), or None where they are not so."""
    return ten[0] + unit if re.fullmatch(r"[2-9]0", ten) and re.fullmatch(r"[1-9]", unit) else None


def numeral(words: str) -> str | None:
    """The number words (lower case) say, in numerals: "7" and "seven" are "7", "forty two" and "forty-two" "42";
    None for words that are no number."""
    said = [NUMBERS.get(w, w) for w in re.split(r"[\s_\-.]+", words) if w]
    joined = ten_and_unit(*said) if len(said) == 2 else None
    said = [joined] if joined else said
    return said[0] if len(said) == 1 and said[0].isdigit() else None


def spellings(words: str) -> list[str]:
    """How a number (`numeral`'s words) is written, in numerals and in words ("7", "seven"; "42", "forty two"), as a
    typed question may write either, whisper's heard one numerals ("Did 7 eat?" of a cat <seven>); [] for words
    that are no number."""
    said = numeral(words)
    if said is None:
        return []
    if said in _WORDS_OF:
        return [said, _WORDS_OF[said]]
    ten, unit = said[:1] + "0", said[1:]
    return [said, f"{_WORDS_OF[ten]} {_WORDS_OF[unit]}"] if ten_and_unit(ten, unit) else [said]


def as_itself(text: str, start: int, end: int, within: bool = False) -> bool:
    """Whether the common word text[start:end] is that word, not a name spelled so (<and>, a cat; <the>):
    not where written as a name (capitalised within a sentence, or in <brackets>), nor with no word after it in its
    clause (but a particle or a word of time after one: "Is Bo in?" names no <in>, a dog, "Where is Bo now?" no
    <now>; or the word opening a question after its comma, one or two such words before it too: "Now, where is Bo?"
    and "Okay so, where is Bo?" no <now> nor <so>, though "Then, is she home?" asks of a cat <then>, the she of its
    sentence), nor after an article or a possessive (a noun: "Is the robot charging?" names <robot>, a toy). "Is Bo
    and Max home?", "And where is Bo?" and "Where is the ball?" named <and> and <the>; "Forget Bo and And.", "Where
    is And?" and "where is and" name <and>. The he or she of its sentence makes a word opening it alone the one
    asked about, not a filler (FILLERS: "Now, is she home?", "Well, where is he?") nor one of a filler pair ("Okay
    so, where is he?" names no <so>). A word joined by a hyphen is a
    compound's part ("my seven-year-old" names no <seven>). A name that is a number alone is that number only before a
    noun it counts (`_counts`: "I see seven cups" names no <seven>; "Did 7 eat?", "is seven home?", "7 likes fish" and
    "Where is 42's bowl?" do), or where it answers a "how many" just asked ("How many cups? One?"), or is a time of
    day (`_a_time`: "Call me at 7", "Dinner is at seven tonight"); "1" is read as "one" is. Questions typed to `ask`
    are read so too (retrieve's `mentioned_names`). `within`: as `speech.names.match_names`' own."""
    named = text[start].isupper() and not starts_sentence(text, start, within) or text[start - 1:start] == "<"
    word = text[start:end].lower()
    number = is_number(word) and word not in COMMON  # not "one", a pronoun too ("one of them", "which one")
    if named and text[start - 1:start] != "<" and is_number(word) and not _ENDING_AFTER.match(text, end) \
            and _time_after_word(text, start, end):
        return True  # in any case: whisper writes a <Seven> as the names prompt spells it ("Call me at Seven!")
    if named or number and _ENDING_AFTER.match(text, end):
        return False
    if _in_compound(text, start, end) or is_number(word) and (_answers_how_many(text, start, within)
                                                               or _a_time(text, start, end)):
        return True
    if number and word != "1":  # "1" is read as "one" is, whisper's numeral for it: "I see 1 cup.", "Where is 1?"
        return _counts(text, start, end)
    if after_article(text, start):
        return False
    if word == "right" and _ALL_BEFORE.search(text, _last_word_at(text, start), start):
        return True  # "all right", the word "alright" written in two: "All right, where is he?", "Is Bo all right?"
    word_before = bool(_WORD_BEFORE.search(text, _last_word_at(text, start), start))
    opening = not word_before or bool(_OPENERS_BEFORE.search(text, max(0, start - 40), start))
    filler = opening and bool(_QUESTION_AFTER.match(text, end)) and (
        word_before or word in FILLERS or not _HE_OR_SHE_AFTER.match(text, end)) or (
        opening and word in FILLERS and bool(_FILLER_AS_WRITTEN.match(text, end)))
    # a filler not common ("well") is only that: "Well is hungry." and "Is Bo well?" are of a pet <well>
    return filler or not (word in FILLERS and not is_common(word)) and (
        bool(_WORD_AFTER.match(text, end)) or word in _PARTICLES and word_before)


def _in_compound(text: str, start: int, end: int) -> bool:
    """Whether the word text[start:end] is joined by a hyphen to a word before or after it, a part of a compound,
    no name: "my seven-year-old" and "twenty-seven" name no <seven>."""
    return bool(_HYPHEN_AFTER.match(text, end) or _HYPHEN_BEFORE.search(text, max(0, start - 2), start))


def _a_time(text: str, start: int, end: int) -> bool:
    """Whether the number text[start:end] is a time of day: after "at", "by", "until", "around", "before" or
    "after", or before "tonight" or "tomorrow" ("Call me at 7", "7 tomorrow"; "a.m.", "pm" and "o'clock" after it
    are `_counts`'), no pet <seven>."""
    return _time_after_word(text, start, end) or bool(_TIME_AFTER.match(text, end))


def _time_after_word(text: str, start: int, end: int) -> bool:
    """Whether the number text[start:end] is a time by the word before it ("at", "by", "until"...), in any case:
    not where that word is one a look, a point or a deed is aimed at it by (`_NOT_TIME_BEFORE`: "Look at Seven!"),
    but a request's deadline (`_DEADLINE`: "Make sure Bo is lying down by seven."), nor where a verb in "s" follows
    it, a clause's subject ("until 7 gets home", "before 7 eats")."""
    return bool(_TIME_BEFORE.search(text, _last_word_at(text, start), start)) \
        and not (_NOT_TIME_BEFORE.search(text, max(0, start - 40), start)
                 and not _DEADLINE.search(text, max(0, start - 120), start)) \
        and not _subject_after_time(text, start, end)


def _subject_after_time(text: str, start: int, end: int) -> bool:
    """Whether the number text[start:end] is the subject of a clause that "until", "till", "before" or "after" opens,
    a verb in "s" after it ("until 7 gets home", "before 7 eats"): not after "at", "by" or "around" ("Dinner by 7
    seems fine."), nor in a clause whose subject "whoever" or "anyone" is, that verb its own ("Whoever comes home
    after 7 gets no dessert.")."""
    return _verb_after(text, end) and bool(_CLAUSE_TIME_BEFORE.search(text, _last_word_at(text, start), start)) \
        and not _INDEFINITE_OPENING.search(text, max(0, start - 120), start)


def _verb_after(text: str, end: int) -> bool:
    """Whether the word after the number ending at text[end] in its clause is a verb in "s" said of a pet or a
    person (`_VERBS_IN_S`: "7 likes fish", "until 7 gets home")."""
    m = _COUNTED.match(text, end)
    return m is not None and (m["word"] or "").lower() in _VERBS_IN_S


def _answers_how_many(text: str, start: int, within: bool) -> bool:
    """Whether the number at text[start] opens a sentence after one asking how many (HOW_MANY_WINDOW characters
    before it at most): it answers it, a count ("How many cups do you see? One?", "... Seven."), no pet <one>."""
    return starts_sentence(text, start, within) and bool(_HOW_MANY.search(text, max(0, start - HOW_MANY_WINDOW),
                                                                          start))


def _counts(text: str, start: int, end: int) -> bool:
    """Whether the number at text[start:end] counts the word after it in its clause (`_COUNTED`: "I see seven
    cups", "my two cats", "at 7 o'clock"), so it is that number, not a pet <seven> or <42>: before any other word, or
    none, the number is said as a name ("Did 7 eat?", "Is seven home?", "Where is 42?"), as it is before a verb in
    "s" with more said after it where it opens its clause ("7 likes fish"; "I got 7 likes on my post" counts), or
    after a time's word ("until 7 gets home", "before 7 eats")."""
    m = _COUNTED.match(text, end)
    if m is None:
        return False
    said = (m["word"] or "").lower()
    if _verb_after(text, end):  # a clause's subject; one a time's word opens needs nothing after its verb: "until 7
        # gets home", "before 7 eats" (`_a_time` none)
        return not (_subject_after_time(text, start, end) or _WORD_AFTER.match(text, m.end())
                    and _SUBJECT_BEFORE.search(text, _last_word_at(text, start), start))
    return not said or said in _PLURALS or said in _UNITS or (said.endswith("s") and not said.endswith(("ss", "us"))
                                            and not is_common(said) and said not in _NOT_PLURALS)


def as_noun(text: str, start: int, end: int) -> bool:
    """Whether the name of a person or an animal at text[start:end] is the ordinary word spelled so, a noun: after an
    article or "some" ("Pass the pepper.", "I see a rose"), as no one speaks of a dog or a friend, in any case (whisper
    writes "Pass the Pepper!", spelling the word as the names prompt spells the dog); "Did Pepper eat?" and "did
    pepper eat" name them, and so does a possessive, as one speaks of one's own ("Is my dad home?", "where is our
    bo"), and <brackets> ("Feed the <pepper>."); a thing's name is a noun there ("the mug")."""
    return text[start - 1:start] != "<" and bool(_ARTICLE.search(text, _last_word_at(text, start), start))


def opens_as_a_name(text: str, end: int) -> bool:
    """Whether a word opening a sentence that ends at text[end] is said as a name by what follows it (`_NAME_OPENING`):
    its capital a name's ("Char, come here.", "Ben is hungry.", "Ben's bowl", "Ben just left.", "Ali in?"), not only
    the sentence's ("Bust it open.", "Tuck in your shirt.", "Tuck in.")."""
    m = _NAME_OPENING.match(text, end)
    said = (m["word"] or "").lower() if m else ""
    return m is not None and (not said or said in _SUBJECT_VERBS or said.endswith("ed") and len(said) > 3
                              or said in _WHERE_ASKED and bool(_ASKED.match(text, m.end())))


def describes_a_thing(text: str, start: int, end: int) -> bool:
    """Whether the words text[start:end], in lower case and ending their sentence, follow a thing's noun and "is" (or
    "seems", "looks"...): what is said of that thing, a word such as an adjective ("The road is rocky.", "My dog seems
    well."), not a name spelled or said alike (a dog <rocky>, <well>); "Where is Rocky?", "Rocky is hungry." and "The
    dog is Rocky." name it, and so does "is" after someone (`_names_someone`: "the dog is rocky", "her name is luna",
    as a phone types them)."""
    if not (text[start:end].islower() and text[start - 1:start] != "<" and _ENDS_SENTENCE.match(text, end)):
        return False
    m = _THING_IS.search(text, max(0, start - 80), start)
    return m is not None and not (m["verb"].lower() in _NAMING_VERBS and _names_someone(text, m.start("verb")))


def _names_someone(text: str, verb: int) -> bool:
    """Whether the subject before the "is" at text[verb], from its clause's start, speaks of someone or of a name (a
    person's or an animal's category, `kinds.is_alive`, or `_SOMEONE`): "The dog is", "Her name is", and "The one by
    the door is", whose "door" ends a subject "one" opens."""
    opening = max(text.rfind(mark, 0, verb) for mark in ",.;:!?") + 1
    return any(w in _SOMEONE or is_alive(w) for w in map(str.lower, _CLAUSE_WORDS.findall(text, opening, verb)))


def after_owner(text: str, start: int) -> bool:
    """Whether the word at text[start] follows "his", "her" or "its" after another word ("Where is his ball?"): a noun,
    a thing of someone's, as after "my" (`after_article`), where a name only heard alike is that thing (no <bill>),
    but not where they open the question, whisper's "Is" ("his bow home" is <bo>); not read by `as_itself`, as "her"
    is also an object ("Did you see her today?" of a dog <today>)."""
    return bool(_OWNER.search(text, max(0, start - 40), start))


def after_article(text: str, start: int) -> bool:
    """Whether the word at text[start] follows an article, "some" or a possessive ("the ball", "my robot", "some
    pepper"): a noun, the name of a thing."""
    return bool(_DETERMINER.search(text, _last_word_at(text, start), start))


def starts_sentence(text: str, start: int, within: bool = False) -> bool:
    """Whether the word at text[start] starts a sentence, so that its capital is the sentence's ("Buy milk."), not
    a name's. `within`: the text goes on a sentence begun before it, so its first word starts none."""
    opening = SENTENCE_START_WITHIN if within else SENTENCE_START
    return bool(opening.search(text, _last_word_at(text, start), start))


def _last_word_at(text: str, start: int) -> int:
    """Where the last word before text[start] starts (its letters and digits, then what follows them up to `start`),
    else 0: the patterns read backwards from a word (SENTENCE_START, an article or a word before it) match within
    it, and searched from here rather than from the text's start they cost its length, not the whole text's (a
    12,000-character question took 0.3 s)."""
    at = start
    while at and not text[at - 1].isalnum():
        at -= 1
    while at and text[at - 1].isalnum():
        at -= 1
    return at


def a_day(text: str, start: int, end: int) -> bool:
    """Whether the word text[start:end] is "Eve" after a holiday's name, a day ("Christmas Eve", "New Year's Eve"),
    not the name <eve>."""
    return text[start:end].lower() == "eve" and bool(_HOLIDAY.search(text, max(0, start - 40), start))
