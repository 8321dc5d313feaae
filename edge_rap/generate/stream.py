"""Streaming: text pieces in, whole sentences out, for whatever speaks them (TTS wants sentences, not tokens)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

_END = re.compile(r"([.!?…]+[\"')\]]*|\n)(\s+|$)")
_ABBREV = re.compile(r"\b(e\.g|i\.e|etc|mr|mrs|ms|dr|vs|st|no)\.$", re.I)


@dataclass
class SentenceSplitter:
    """Calls `on_sentence` with each sentence as soon as it ends (and the rest at `flush`)."""

    on_sentence: Callable[[str], None]
    _buffer: str = ""
    sentences: list[str] = field(default_factory=list)

    def feed(self, piece: str) -> None:
        self._buffer += piece
        while True:
            cut = self._find_end()
            if cut is None:
                return
            sentence, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:].lstrip()
            self._emit(sentence)

    def _find_end(self) -> int | None:
        for m in _END.finditer(self._buffer):
            if m.end(2) == len(self._buffer) and not m.group(2):
                return None  # the punctuation may continue ("..." or a closing quote): wait for more
            head = self._buffer[:m.end(1)]
            if m.group(1) == "." and _ABBREV.search(head):
                continue
            if m.group(1) == "." and re.search(r"\d\.$", head) and re.match(r"\d", self._buffer[m.end():]):
                continue
            return m.end()
        return None

    def flush(self) -> None:
        rest, self._buffer = self._buffer.strip(), ""
        self._emit(rest)

    def _emit(self, sentence: str) -> None:
        if sentence:
            self.sentences.append(sentence)
            self.on_sentence(sentence)
