"""Template answers without a VLM: retrieval's hits and the stored descriptions, said plainly.

This is what `edge-rap ask` does where no vision-language model is configured (the embedded default). It
names exactly the concepts retrieval recognised, with their descriptions, and never pretends to have seen
more: answers carry mode "template" and the CLI labels them.
"""

from __future__ import annotations

import re

from edge_rap.generate.prompt import Task
from edge_rap.types import Box, Concept, Hit


def where(box: Box, size: tuple[int, int] | None) -> str:
    """"on the left" / "in the middle" / "on the right", or "" when the box is the whole image."""
    if size is None or box == Box(0, 0, *size) or size[0] <= 0:
        return ""
    centre = (box.x0 + box.x1) / 2 / size[0]
    return "on the left" if centre < 1 / 3 else ("on the right" if centre > 2 / 3 else "in the middle")


#: Characters of a description said where a concept is seen (an arrival, "is Bo here?"): its first sentence,
#: cut at a word within this. Said at every arrival, a 2000-character description took minutes of speech;
#: "tell me about Bo" says it whole.
BRIEF_CHARS = 120


def _about(concept: Concept, brief: bool = False) -> str:
    text = concept.description.strip()
    if brief:
        text = _first_sentence(text)
    text = text.rstrip(".。।")  # the line gives it its full stop
    if not text and concept.category:
        text = f"a {concept.category}"
    return f" — {text}" if text else ""


#: A full stop after these, after a single letter or after an initialism ("J.", "e.g.", "U.S.") ends no sentence:
#: "Mr. Whiskers, our grey cat." was said "Mr".
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "mt", "vs", "approx", "aka", "yrs"}
#: A sentence ends at a full stop, "!" or "?" and a space, at a line break, and right after the full stops of
#: scripts written without spaces between sentences (Chinese, Japanese) and the danda (Hindi).
_SENTENCE_END = re.compile(r"(?<=[.!?؟])\s+|(?<=[。！？।])\s*|\n")


def _abbreviation(word: str) -> bool:
    """Whether `word`, which ends in a full stop, is an abbreviation."""
    word = word.lstrip("(\"'“‘")[:-1]
    return word.lower() in _ABBREVIATIONS or len(word) == 1 or "." in word


def _ended(line: str) -> str:
    """The line with its full stop, unless a description at its end already ends it so: "Our puppy!" was said
    "I can see <bo> — Our puppy!."."""
    return line if line.endswith(("!", "?", "！", "？", "؟")) else line + "."


def _first_sentence(text: str) -> str:
    first = text
    for end in _SENTENCE_END.finditer(text):
        word = text[:end.start()].rsplit(None, 1)[-1]
        if "\n" in end.group() or not word.endswith(".") or not _abbreviation(word):
            first = text[:end.start()]
            break
    first = first.strip()
    if len(first) <= BRIEF_CHARS:
        return first
    cut = first[:BRIEF_CHARS].rsplit(None, 1)[0] if " " in first[:BRIEF_CHARS] else first[:BRIEF_CHARS]
    return cut.rstrip(",;:—-") + "…"


def listed(parts: list[str]) -> str:
    """"<a>, <b> and <c>"."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _seen(hit: Hit, size, first: bool) -> str:
    place = where(hit.box, size)
    place = f" {place}" if place else ""
    if first:
        return _ended(f"I can see <{hit.concept.name}>{place}{_about(hit.concept, brief=True)}")
    return _ended(f"<{hit.concept.name}> is here too{place}{_about(hit.concept, brief=True)}")


def narrate(task: Task, present: list[Hit], named: list[Concept], size: tuple[int, int] | None,
            known: list[Concept] = (), unknown: list[str] = ()) -> str:
    """The template answer. `present` are the hits retrieval decided are in the image; `named` the concepts
    the question names; `known` every remembered concept (for "I don't know that name"); `unknown` the names
    the question writes as <name> that no concept has."""
    seen = list(present)
    not_known = [f"I don't know anyone or anything called <{n}>." for n in unknown]
    if task in (Task.VQA, Task.DESCRIBE) and (unknown or named):
        # "What is <candle> doing?": first what is known of the ones asked about, then what is seen
        ids = {h.concept.id for h in seen}
        lead = not_known + [f"I don't see <{c.name}> in this image." for c in named if c.id not in ids]
        if lead:
            rest = narrate(task, present, [], size, known)
            if not seen:
                rest = "Nor any of the household's other concepts." if named else rest
            return " ".join([*lead, rest])
    if task is Task.TEXT:
        if not named:
            known = list(known)
            names = ", ".join(f"<{c.name}>" for c in known[:5])
            if len(known) > 5:  # a household of twenty must not think fifteen were forgotten
                names += f" and {len(known) - 5} more"
            return ("I don't know who or what you mean." +
                    (f" I know {names}." if names else " I haven't been taught anyone or anything yet."))
        parts = list(not_known)  # "What does <max> eat, and <bo>?": <max> is not passed over in silence
        for c in named:
            about = _about(c)[3:]
            parts.append(_ended(f"Here is what I was told about <{c.name}>: {about}") if about
                         else f"I know <{c.name}>, but I wasn't told anything about it.")
        return " ".join(parts) + " I can't say more without a vision-language model."
    if task is Task.RECOGNIZE:
        if not named:
            lead = "I don't know anyone or anything by that name."
            return lead + (" " + " ".join(_seen(h, size, i == 0) for i, h in enumerate(seen)) if seen
                           else " I don't see any of the household's concepts here.")
        parts = list(not_known)
        for c in named:
            hit = next((h for h in seen if h.concept.id == c.id), None)
            if hit is None:
                parts.append(f"No, I don't see <{c.name}> in this image.")
            else:
                place = where(hit.box, size)
                place = f", {place}" if place else ""
                parts.append(_ended(f"Yes, <{c.name}> is in this image{place}{_about(c, brief=True)}"))
        return " ".join(parts)
    if not seen:
        return "I don't see any of the household's concepts in this image."
    text = " ".join(_seen(h, size, i == 0) for i, h in enumerate(seen))
    if task is Task.VQA:
        text += " That is all I can say without a vision-language model."
    return text
