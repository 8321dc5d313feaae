"""Retrieval's decisions as pure functions over scores: which concepts are present, which box each keeps.

No model and no storage here: each function takes scores (with thresholds) and returns hits, so every rule is
tested on made-up numbers (tests/test_decide.py). The rules and their reasons: docs/RETRIEVAL.md.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import replace
from itertools import accumulate
from typing import Callable, Sequence, TypeVar

import numpy as np

from edge_rap.kinds import not_its_noun
from edge_rap.memory.store import KEY_DROPS, fold, name_key, spelled
from edge_rap.perceive.boxes import iou
from edge_rap.retrieve.policy import RetrievalPolicy
from edge_rap.scripts import joined
from edge_rap.types import Box, Concept, Hit
from edge_rap.words import a_day, as_itself, as_noun, describes_a_thing, is_number, plain_word, spellings

Face = TypeVar("Face")
#: A name written in a question as <name>.
WRITTEN_NAME = re.compile(r"<([^<>]{1,64})>")
#: What may stand between a name's letters where it is written alike (name_key drops it).
_DROPPED = re.compile(f"[{KEY_DROPS}]")

#: A tried box for one concept: its own score there, the box, and every concept's best score there.
Option = tuple[float, Box, np.ndarray]


def mentioned_names(question: str, concepts: list[Concept]) -> list[Concept]:
    """Concepts named in a question, as <name> or as a whole word, written alike (name_key: any case or width,
    with or without the spaces, '_', '-' and '.' between its letters: "Mr Whiskers" is <mr. whiskers>, "Tea Pot"
    <teapot>), in order of first mention. Where one name is written inside another ("tea pot" in "the tea pot",
    "小龙" in "李小龙在哪里"), only the longer is meant. Of two concepts written alike (a memory of before the rules
    that make them one name), one written <exactly> is the one meant, as `forget` takes it; written otherwise, both
    are. A name that is a common word (<and>, <the>) is that word where it is not written as one, as a voice
    question's (words.as_itself): "Where are Mum and Dad?" names no <and>."""
    folded = fold(question)  # as name_key folds a name
    bracketed: dict[str, int] = {}
    for m in WRITTEN_NAME.finditer(folded):
        bracketed.setdefault(name_key(m.group(1)), m.start())
    letters = _Letters(question, folded)
    keys = {name_key(c.name) for c in concepts}
    found, spans, at = [], [], {}
    for concept in sorted(concepts, key=lambda c: -len(name_key(c.name))):
        key, living = name_key(concept.name), not_its_noun(concept.name, concept.category)
        written = _written_keys(concept.name, keys)
        if (key, living) not in at:  # two written alike stand at one place: each is mentioned, not the first alone
            # not where another of them stands: "Where is Pepper?" is a dog <Pepper> and a jar <pepper> both
            theirs = {at.get((key, not living))}
            at[key, living] = letters.first(written, [s for s in spans if s not in theirs], living)
            spans += [at[key, living]] if at[key, living] else []
        span = at[key, living]
        starts = [s for s in (*map(bracketed.get, written), span and span[0]) if s is not None]
        if starts:
            found.append((min(starts), concept))
    return _exact_of_alike([c for _, c in sorted(found, key=lambda t: t[0])], question)


def _written_keys(name: str, others: set[str]) -> list[str]:
    """The keys a question may write `name` as (name_key's): its own, and a number's in the other way it is written
    where no other concept's key is so: "7" and "<7>" of <seven>, "forty two" of <42>."""
    key = name_key(name)
    return [key, *(k for k in map(name_key, spellings(fold(name))) if k not in others)]


def _exact_of_alike(concepts: list[Concept], question: str) -> list[Concept]:
    """`concepts` without those written alike to one the question writes in <brackets> spelled exactly."""
    names = {c.name for c in concepts}
    exact = {spelled(m.group(1), names) for m in WRITTEN_NAME.finditer(question)}
    keys = [name_key(c.name) for c in concepts if c.name in exact]
    meant = {name_key(c.name): c for c in concepts if c.name in exact and keys.count(name_key(c.name)) == 1}
    return [c for c in concepts if meant.get(name_key(c.name), c) is c]


class _Letters:
    """A folded question without what name_key drops, each letter's place in it kept: a name written alike is a
    plain substring here (a regular expression per concept took 0.2 s for 1000 concepts)."""

    def __init__(self, question: str, folded: str):
        self.question, self.folded = question, folded
        self.at = [i for i, ch in enumerate(folded) if not _DROPPED.fullmatch(ch)]
        self.text = "".join(folded[i] for i in self.at)
        self._folded_length = _folded_lengths(question, folded)

    def word(self, key: str, taken: list[tuple[int, int]], living: bool = False) -> tuple[int, int] | None:
        """(start, end) where `key` first stands as a whole word (not inside another word, nor in <brackets>, nor
        within a `taken` span, nor said of a thing, `words.describes_a_thing`: "The road is rocky."), or None. In a
        script written without spaces any character may end a word. `living`: the name of a person or an animal, not
        where it is an ordinary word (`words.as_noun`)."""
        i = self.text.find(key) if key else -1
        while i >= 0:
            start, end = self.at[i], self.at[i + len(key) - 1] + 1
            before = self.folded[start - 1] if start else " "
            after = self.folded[end] if end < len(self.folded) else " "
            if not (joined(before, self.folded[start]) or before in "_<" or joined(self.folded[end - 1], after)
                    or after in "_>" or any(a <= start and end <= b for a, b in taken)
                    or (plain_word(key) or is_number(self.folded[start:end]))  # as written: "forty-two"
                    and as_itself(self.question, self._original(start), self._original(end))
                    or key == "eve" and a_day(self.question, self._original(start), self._original(end))
                    or living and as_noun(self.question, self._original(start), self._original(end))
                    or describes_a_thing(self.question, self._original(start), self._original(end))):
                return start, end
            i = self.text.find(key, i + 1)
        return None

    def first(self, keys: list[str], taken: list[tuple[int, int]], living: bool) -> tuple[int, int] | None:
        """The first place where one of `keys` stands as a whole word (`word`): a number's name in numerals or in
        words, as a question may write either ("Did 7 eat?" of <seven>, "Where is forty-two?" of <42>)."""
        return min(filter(None, (self.word(key, taken, living) for key in dict.fromkeys(keys))), default=None)

    def _original(self, at: int) -> int:
        """Where the question has the folded text's place `at`: the shortest start that folds as long."""
        return bisect_left(range(len(self.question) + 1), at, key=self._folded_length)


def _folded_lengths(question: str, folded: str) -> Callable[[int], int]:
    """How long each start of the question folds: counted once per character where folding each alone gives
    the whole's fold (nothing composes nor reorders across characters; folding each start anew for every common
    word passed over took 1.7 s for a question of 12k characters), else folded anew."""
    each = [fold(ch) for ch in question]
    if "".join(each) == folded:
        return list(accumulate(map(len, each), initial=0)).__getitem__
    return lambda end: len(fold(question[:end]))


def unknown_names(question: str, concepts: list[Concept]) -> list[str]:
    """Names the question writes as <name> that no concept has (said alike): "What is <nobody> doing?"."""
    held = {k for c in concepts for k in _written_keys(c.name, set())}  # "<7>" of <seven> is known
    written = [m.strip() for m in WRITTEN_NAME.findall(question)]
    return list(dict.fromkeys(n for n in written if n and name_key(n) not in held))


def concept_threshold(space_threshold: float, negative_mean: float, negative_std: float,
                      policy: RetrievalPolicy) -> float:
    """A concept's threshold: the space's, or `z` spreads above its scores against the negative bank where
    that is higher, but the spreads never lift it above `ceiling`. The spread rule extrapolates the bank's tail; for a
    photo that resembles the generated clutter (a smooth colour gradient) it passed 1.0, which no photo can score, so
    the concept could never be recognised, not even on a copy of its own photo. At the ceiling (0.99) a copy
    still clears it: re-saved as JPEG at quality 90 or scaled to 90 %, the 4 photos of tests/photos.py's
    `unseen_photos` scored 0.991 to 0.998 against their originals."""
    return max(space_threshold, min(negative_mean + policy.z * negative_std, policy.ceiling))


def decide_scores(scored: list[tuple[Concept, float]], threshold: Callable[[int], float], box: Box,
                  policy: RetrievalPolicy, question: str = "") -> tuple[list[Hit], list[Hit]]:
    """(hits, candidates) of whole-image scores, best first: a concept is present when it clears its
    threshold and is not clearly beaten (within `margin` of the best), at most `top_k`; concepts the question
    names come first and are kept (marked `mentioned`)."""
    best = scored[0][1] if scored else 0.0
    candidates = [Hit(c, s, threshold(c.id), box) for c, s in scored]
    hits = [h for h in candidates if h.accepted and h.score >= best - policy.margin][: policy.top_k]
    if question:
        named = {c.id for c in mentioned_names(question, [h.concept for h in candidates])}
        hits += [h for h in candidates if h.concept.id in named and h not in hits]
        hits = [replace(h, mentioned=h.concept.id in named) for h in hits]
        hits.sort(key=lambda h: (not h.mentioned, -h.score))
    return hits, candidates


def merge_placements(whole: list[Hit], candidates: list[Hit], located: dict[int, Hit], judged: set[int],
                     policy: RetrievalPolicy) -> tuple[list[Hit], list[Hit], list[Hit]]:
    """Whole-image hits with the boxes dense matching found: (hits, those that kept the whole image's box,
    those of them not placed at all).

    A located box replaces the whole image's unless it scores clearly worse than the whole-image views did
    (a concept that fills the photo: dense matching found only a part of it). A hit dense matching judged
    (`judged`) but placed nowhere (`locate` kept no box for it: not proposed, contested, no crop it owns clearing
    its threshold, or its place taken by a stronger concept) is weak, uncorroborated evidence (most of the false
    hits in multi-concept frames, and in a camera's frames of unrelated things) and is dropped, unless the
    question names it, it clears its threshold by the margin, it beats every other concept by the margin (at 1000
    concepts, exact copies of reference photos were not among the few proposals), or it scores the `ceiling`,
    what only a copy of its photo scores (a smooth gradient's copy, among many crops of the same gradient, is
    neither proposed nor far ahead)."""
    def runner_up(hit: Hit) -> float:
        return max((c.score for c in candidates if c.concept.id != hit.concept.id), default=-1.0)

    hits, whole_box, unplaced = [], [], []
    for h in whole:
        place = located.get(h.concept.id)
        if place is not None and place.score >= h.score - policy.margin:
            hits.append(replace(h, box=place.box))
        elif (place is not None or h.concept.id not in judged or h.mentioned
              or h.score >= h.threshold + policy.margin or h.score >= runner_up(h) + policy.margin
              or h.score >= policy.ceiling):
            hits.append(h)
            whole_box.append(h)
            if place is None:
                unplaced.append(h)
    return hits, whole_box, unplaced


def add_crop_only(hits: list[Hit], located: dict[int, Hit], whole_box: list[Hit], policy: RetrievalPolicy) -> list[Hit]:
    """`hits` and the concepts only a crop found, except those far weaker than a whole-image hit that kept the
    whole image's box (the frame is a photo of that one, and the crop was a part of it)."""
    known = {h.concept.id for h in hits}
    return hits + [h for i, h in located.items()
                   if i not in known and all(u.score < h.score + policy.fills_frame for u in whole_box)]


def best_region_per_concept(candidates: list[Hit], top_k: int) -> list[Hit]:
    """Each region's best concept (`candidates`): accepted ones, each concept once, in its best region."""
    hits, seen = [], set()
    for hit in sorted(candidates, key=lambda h: -h.score):
        if hit.accepted and hit.concept.id not in seen:
            seen.add(hit.concept.id)
            hits.append(hit)
    return hits[:top_k]


def one_concept_per_place(scored: list[Hit], policy: RetrievalPolicy) -> list[Hit]:
    """Accepted hits, best first; a weaker concept on a place a kept one holds (IoU over `same_place_iou`) is
    dropped."""
    hits: list[Hit] = []
    for hit in sorted(scored, key=lambda h: -h.score):
        if hit.accepted and all(iou(hit.box, kept.box) <= policy.same_place_iou for kept in hits):
            hits.append(hit)
    return hits


def best_boxes(crops: list[tuple[int, Box]], ids: np.ndarray, per_concept: np.ndarray,
               lead: float) -> dict[int, Option]:
    """Each concept's box (score, box, the crop's scores for every concept): the highest-scoring crop it owns
    (no concept scores higher there) of those proposed for it and those proposed for another concept that it
    leads every other concept on by `lead`, else (owning none) its highest-scoring own proposal. A crop shows
    what it shows: dense matching's hottest place for one concept is often another thing (a dog's reference
    heats a cat), and a crop that clearly names that other thing places it, at no extra embedding."""
    owned: dict[int, Option] = {}
    proposed: dict[int, Option] = {}
    for (concept_id, box), scores in zip(crops, per_concept):
        mine = (float(scores[ids == concept_id][0]), box, scores)
        if concept_id not in proposed or mine[0] > proposed[concept_id][0]:
            proposed[concept_id] = mine
        order = np.argsort(-scores)
        winner = int(ids[order[0]])
        if winner == concept_id or len(order) < 2 or scores[order[0]] - scores[order[1]] >= lead:
            if winner not in owned or scores[order[0]] > owned[winner][0]:
                owned[winner] = (float(scores[order[0]]), box, scores)
    return {**proposed, **owned}


def choose_grown(options: Sequence[Option], threshold: float, tolerance: float) -> Option | None:
    """Of a concept's tried boxes, the largest that it owns (no other concept scores higher there) and scores
    within `tolerance` of its best owned box on, never one below its threshold where the best clears it (a
    part and the whole thing often score alike); None when it owns none."""
    owned = [o for o in options if o[0] >= o[2].max()]
    if not owned:
        return None
    winner = max(owned, key=lambda o: o[0])
    floor = winner[0] - tolerance
    if winner[0] >= threshold:
        floor = max(floor, threshold)
    return max((o for o in owned if o[0] >= floor), key=lambda o: o[1].width * o[1].height)


def pair_faces(pairs: list[tuple[float, Face, int]], threshold: float, key: Callable[[Face], object] = id
               ) -> list[tuple[float, Face, int]]:
    """(score, face, person) pairs chosen best first: each face with at most one person and each person with
    one face, each clearing the face threshold."""
    chosen, used_faces, used_people = [], set(), set()
    for score, face, person in sorted(pairs, key=lambda p: -p[0]):
        if score < threshold or key(face) in used_faces or person in used_people:
            continue
        used_faces.add(key(face))
        used_people.add(person)
        chosen.append((score, face, person))
    return chosen
