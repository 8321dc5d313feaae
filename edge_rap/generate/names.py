"""Names in an answer: only concepts that retrieval returned or the question named; an invented one is removed.

The prompt asks the model to write personal names in angle brackets (<bo>). A bracketed name that is not
allowed is replaced by REMOVED and reported in `flagged`; a bare word that is the name of another
remembered concept is kept (it may be an ordinary word, "mug") but flagged too. The guard works on a
stream: text is held back only while a "<..." is open, so tokens still reach the screen as they come.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from edge_rap.memory.store import name_key, straight_apostrophes

REMOVED = "[unrecognised]"
_BRACKETED = re.compile(r"<([^<>\n]{1,64})>")
_MAX_OPEN = 66  # a "<" with no ">" within this many characters is not a name
_MARKUP = {"br", "p", "b", "i", "u", "eos", "bos", "unk", "pad", "s", "end_of_turn", "start_of_turn",
           "start_of_image", "end_of_image", "image", "eot", "think"}


def _norm(name: str) -> str:
    return " ".join(name.strip().lower().split())


def _plain_key(name: str) -> str:
    """A name's key without its accents and emoji: how a model may write it ("<Zoe>" for <Zoë>, "<Mochi>" for
    <Mochi 🐱>). Its apostrophes are "'" first, as name_key takes them: NFKD splits a "´" typed for one into a
    space and an accent, which this drops ("<Zoe's mug>" was no <Zoë´s mug>)."""
    letters = unicodedata.normalize("NFKD", straight_apostrophes(name))
    return name_key("".join(c for c in letters if unicodedata.category(c) not in ("Mn", "So", "Sk")))


@dataclass
class NameGuard:
    """Feed model text in pieces; get back text that is safe to show."""

    allowed: set[str]  # name_key of each name the answer may use ("<tea pot>" is <teapot>)
    known: set[str] = field(default_factory=set)  # every remembered concept's name, as written in lower case
    flagged: list[str] = field(default_factory=list)
    plain: dict[str, str] = field(default_factory=dict)  # _plain_key -> the allowed name, where no other name has it
    _pending: str = ""
    _shown: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, allowed, known=()) -> "NameGuard":
        allowed = list(allowed)
        keys = {name_key(n) for n in allowed}
        plain = {}  # a known name not allowed here counts too: "<Zoe>" may be <Zoe>, who is not <Zoë>
        for name in allowed + [n for n in known if name_key(n) not in keys]:
            plain.setdefault(_plain_key(name), set()).add(name if name_key(name) in keys else None)
        return cls(keys, {_norm(n) for n in known},
                   plain={k: names.pop() for k, names in plain.items() if k and len(names) == 1 and None not in names})

    def feed(self, piece: str) -> str:
        text = self._pending + piece
        self._pending = ""
        out = []
        while text:
            start = text.find("<")
            if start < 0:
                out.append(text)
                break
            out.append(text[:start])
            end = text.find(">", start + 1)
            if end < 0:
                if len(text) - start < _MAX_OPEN and "\n" not in text[start:]:
                    self._pending = text[start:]  # maybe a name still arriving
                else:
                    out.append(text[start])
                    text = text[start + 1:]
                    continue
                break
            out.append(self._check(text[start:end + 1]))
            text = text[end + 1:]
        safe = "".join(out)
        self._shown.append(safe)
        return safe

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        rest = self._cut(rest)
        self._shown.append(rest)
        self._flag_bare("".join(self._shown))
        return rest

    def _cut(self, rest: str) -> str:
        """The "<..." an answer ended within (cut at max_tokens, a stop): kept where an allowed name begins so, else
        judged as the name written so far. Held back as a name still arriving, an invented "<Rex" was let out whole."""
        if not rest or any(key.startswith(name_key(rest[1:])) for key in self.allowed):
            return rest
        return REMOVED if self._check(rest + ">") == REMOVED else rest

    def _check(self, token: str) -> str:
        m = _BRACKETED.fullmatch(token)
        if not m:
            return token
        if name_key(m.group(1)) in self.allowed:
            return token
        if meant := self.plain.get(_plain_key(m.group(1))):
            return f"<{meant}>"  # the allowed name the model wrote without its accents or emoji
        name = _norm(m.group(1))
        if not re.fullmatch(r"\w(?:[\w\-' .]*\w)?", m.group(1)) or name in _MARKUP:
            return token  # not a name: maths ("x < 3 and y > 2"), markup, an emoticon
        self._flag(m.group(1).strip())
        return REMOVED

    def _flag_bare(self, text: str) -> None:
        plain = _BRACKETED.sub(" ", text).lower()
        for name in sorted(n for n in self.known if name_key(n) not in self.allowed):
            if re.search(r"(?<![\w<])" + re.escape(name) + r"(?![\w>])", plain):
                self._flag(name)

    def _flag(self, name: str) -> None:
        if _norm(name) not in {_norm(f) for f in self.flagged}:
            self.flagged.append(name)
