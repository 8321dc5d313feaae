"""The wake phrase, matched on the transcript: whisper writes "Hey robot", "Hey, Robot!" or "Hay robot", so the
phrase is compared word run by word run with a fuzzy ratio rather than as an exact string. No wake-word model
with real weights installs offline from PyPI, so the recogniser itself is the wake-word detector; silero VAD in
front of it keeps silence and noise from reaching it at all."""

from __future__ import annotations

import re
import unicodedata

from edge_rap.errors import EdgeRapError
from edge_rap.output import quoted

DEFAULT_WAKE = "hey robot"
WAKE_MATCH = 80.0  # rapidfuzz ratio (0-100) of a run of words to the phrase
LAST_WORD_BONUS = 6.0  # an utterance opening "A robot" for "hey robot" (75) counts; "hey there" (56) does not
_WORD = re.compile(r"[A-Za-z0-9']+")


def _folded(text: str) -> str:
    """`text` with its accents dropped ("Hé robot" -> "He robot"), one character for each, so that positions
    in it are positions in `text`."""
    return "".join(unicodedata.normalize("NFKD", c)[0] for c in text)


def check_wake(phrase: str, option: str = "--wake") -> str:
    """`phrase`, or one line on why it can never be heard: one with no word in Latin letters or digits ("!!!",
    "こんにちは") would have matched every utterance, so that all talk was answered."""
    if not _WORD.search(_folded(phrase)):
        raise EdgeRapError(f"{option} {quoted(phrase.strip())}: no word to listen for (the recogniser writes English: "
                           "use Latin letters, such as 'hey robot')")
    return phrase


def after_wake(text: str, phrase: str) -> str | None:
    """What was said after the wake phrase ("" when nothing), or None when the phrase was not said."""
    from rapidfuzz import fuzz

    target = " ".join(_WORD.findall(_folded(phrase).lower()))
    if not target:  # a phrase no one can say (`check_wake` refuses it): never heard, rather than always
        return None
    words = list(_WORD.finditer(_folded(text)))
    n = target.count(" ") + 1
    best, end = 0.0, None
    for i in range(len(words)):
        for size in {max(1, n - 1), n, n + 1}:
            run = words[i:i + size]
            if len(run) < size:
                continue
            said = " ".join(w.group(0).lower() for w in run)
            s = fuzz.ratio(said, target)
            if i == 0 and said.split()[-1] == target.split()[-1]:  # "A robot, ..." opening the utterance
                s += LAST_WORD_BONUS
            if s > best:
                best, end = s, run[-1].end()
    if best < WAKE_MATCH or end is None:
        return None
    return text[end:].lstrip(" ,.!?;:-").strip()
