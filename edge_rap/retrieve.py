"""Retrieve: an image (and optionally a question) in, the household's concepts present out, with scores.

A concept is accepted when its best-view similarity clears its own threshold, calibrated against the
negative bank (mean + Z spreads), and it is not clearly beaten by another concept (within MARGIN of the
best). An empty answer means "none of my concepts". Names mentioned in a question come first, as in RAP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from edge_rap.memory.index import IndexView
from edge_rap.memory.store import Store
from edge_rap.perceive.embed import ImageEmbedder
from edge_rap.types import Box, Concept, Hit, Image, Recognition


@dataclass(frozen=True)
class RetrievalPolicy:
    """How scores become decisions; the defaults are documented in docs/RETRIEVAL.md."""

    top_k: int = 5
    z: float = 4.0  # threshold = negative-bank mean + z * spread, per concept
    floor: float = 0.5  # never accept below this similarity, whatever the calibration says
    margin: float = 0.05  # a concept this far below the best one is "clearly beaten"


def mentioned_names(question: str, concepts: list[Concept]) -> list[Concept]:
    """Concepts named in a question, as <name> or as a whole word, in order of first mention."""
    found = []
    lowered = question.lower()
    for concept in concepts:
        name = concept.name.lower()
        pattern = r"<\s*" + re.escape(name) + r"\s*>|(?<![\w<])" + re.escape(name) + r"(?![\w>])"
        match = re.search(pattern, lowered)
        if match:
            found.append((match.start(), concept))
    return [c for _, c in sorted(found, key=lambda t: t[0])]


class Retriever:
    """Scores every remembered concept against an image through the memory-mapped index."""

    def __init__(self, store: Store, embedder: ImageEmbedder, policy: RetrievalPolicy = RetrievalPolicy()):
        self.store = store
        self.embedder = embedder
        self.policy = policy
        self.view = IndexView(store, embedder.space.name)
        self._calibration: dict[int, tuple[float, float]] = {}
        self._calibration_generation = -2

    def threshold(self, concept_id: int) -> float:
        if self._calibration_generation != self.view.generation:
            self._calibration = self.store.calibration(self.embedder.space.name)
            self._calibration_generation = self.view.generation
        mean, std = self._calibration.get(concept_id, (self.policy.floor, 0.0))
        return max(self.policy.floor, mean + self.policy.z * std)

    def score_vectors(self, queries: np.ndarray) -> list[list[tuple[Concept, float]]]:
        """For each query vector, every concept with its best-view score, best first."""
        results = []
        total = len(self.view)
        for q in queries:
            neighbours = self.view.search(q, count=max(total, 1))
            concepts = self.store.concepts_by_id([n.concept_id for n in neighbours])
            results.append([(concepts[n.concept_id], n.score) for n in neighbours if n.concept_id in concepts])
        return results

    def recognize(self, image: Image, question: str = "") -> Recognition:
        query = self.embedder.embed([image.pixels])
        return self.decide(image, self.score_vectors(query)[0], question)

    def decide(self, image: Image, scored: list[tuple[Concept, float]], question: str = "") -> Recognition:
        box = image.full_box
        best = scored[0][1] if scored else 0.0
        candidates = [Hit(c, s, self.threshold(c.id), box) for c, s in scored]
        hits = [h for h in candidates if h.accepted and h.score >= best - self.policy.margin][: self.policy.top_k]
        if question:
            named = {c.id for c in mentioned_names(question, [h.concept for h in candidates])}
            for h in candidates:
                if h.concept.id in named and h not in hits:
                    hits.append(h)
            hits = [Hit(h.concept, h.score, h.threshold, h.box, h.concept.id in named) for h in hits]
            hits.sort(key=lambda h: (not h.mentioned, -h.score))
        return Recognition(image.source, (box.x1, box.y1), hits, candidates)
