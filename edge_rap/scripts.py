"""Where a word starts and ends in any script, for finding a name in a typed or heard question.

Python's `\\w` leaves out combining marks, so Hindi's vowel signs ("राहुल") and a decomposed "é" cut a word
apart; here they belong to it. Chinese, Japanese, Thai, Lao, Khmer and Myanmar write no space between words, and
Korean joins its particles to a name ("민수는": Minsu + topic marker), so in those scripts a name stands inside
a run of letters: a word may end at any of their characters.
"""

from __future__ import annotations

import functools
import re
import unicodedata

#: Scripts written without spaces between words (or, Hangul, with particles joined to names).
UNSPACED = ("\u0e00-\u0eff\u1000-\u109f\u1100-\u11ff\u1780-\u17ff\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf"
            "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f")
_UNSPACED = re.compile(f"[{UNSPACED}]")
_PIECES = re.compile(f"[{UNSPACED}]|[^{UNSPACED}]+")


def is_unspaced(ch: str) -> bool:
    """Whether `ch` is a letter of a script written without spaces between words."""
    return _UNSPACED.match(ch) is not None


def has_unspaced(text: str) -> bool:
    return _UNSPACED.search(text) is not None


def is_word_char(ch: str) -> bool:
    """A letter, a digit or a combining mark (Python's `str.isalnum` misses the marks)."""
    return ch.isalnum() or unicodedata.category(ch).startswith("M")


def joined(left: str, right: str) -> bool:
    """Whether two neighbouring characters are of one word, so that a name cannot end between them."""
    return (is_word_char(left) and is_word_char(right)
            and not is_unspaced(left) and not is_unspaced(right))


def pieces(word: str) -> list[tuple[str, int]]:
    """(piece, offset) of a word: each character of an unspaced script on its own, other runs whole ("Mochi在哪"
    -> "Mochi", "在", "哪"), so that a name is found as a run of pieces."""
    return [(m.group(0), m.start()) for m in _PIECES.finditer(word)]


@functools.cache
def marks() -> str:
    """The combining marks of Unicode's first two planes, as the body of a regular-expression class (built on
    first use, about 25 ms; the `re` module has no `\\p{M}`)."""
    ranges, start = [], None
    for cp in range(0x300, 0x20001):
        if cp < 0x20000 and unicodedata.category(chr(cp)).startswith("M"):
            start = cp if start is None else start
        elif start is not None:
            ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(cp - 1))}")
            start = None
    return "".join(ranges)
