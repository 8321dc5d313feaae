"""Retrieve: an image (and optionally a question) in, the household's concepts present out, with scores.

A concept is accepted when its best score clears both the embedder's shipped threshold (calibrated on real
sample photos at export, edge_rap/export/calibrate.py) and its own (the generated negative bank's mean + Z spreads,
edge_rap/retrieve/negatives.py), and it is not clearly beaten by another concept (within MARGIN of the best).
An empty answer means "none of my concepts". Names mentioned in a question come first, as in RAP.

The Retriever scores against the reference vectors of the memory-mapped index and joins the parts:
decide.py (the rules, pure), locate.py (placing), faces.py (people), references.py (the reference side, read
once per generation).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from edge_rap.perceive.images import crop
from edge_rap.memory.index import IndexView, check_space
from edge_rap.memory.store import Store
from edge_rap.perceive.embed import ImageEmbedder
from edge_rap.perceive.faces import FaceModels
from edge_rap.perceive.regions import Candidate, best_per_concept
from edge_rap.perceive.views import query_views
from edge_rap.retrieve.decide import (add_crop_only, best_region_per_concept, concept_threshold, decide_scores,
                                      merge_placements)
from edge_rap.retrieve.faces import FaceMatcher
from edge_rap.retrieve.locate import Locator, best_views
from edge_rap.retrieve.policy import UNCALIBRATED_THRESHOLD, RetrievalPolicy
from edge_rap.retrieve.references import References
from edge_rap.types import Concept, Hit, Image, Recognition, Region


class Retriever:
    """Scores every remembered concept against an image, with the vectors of the memory-mapped index."""

    def __init__(self, store: Store, embedder: ImageEmbedder, policy: RetrievalPolicy = RetrievalPolicy(),
                 faces: Callable[[], FaceModels | None] | None = None):
        self.store = store
        self.embedder = embedder
        self.policy = policy
        shipped = getattr(embedder, "threshold", None)
        self.space_threshold = policy.threshold if policy.threshold is not None else (
            shipped if shipped is not None else UNCALIBRATED_THRESHOLD)
        self.view = IndexView(store, embedder.space.name, embedder.space)
        row = store.space(embedder.space.name)
        if row is not None:
            check_space(row, embedder.space)
        # People remembered with a face are found by a face matching theirs, never by the rest of a photo: a
        # person's photo is mostly clothes and background, which matched a sky and a toy car (a review's).
        self.faces = FaceMatcher(store, faces, policy)
        self.references = References(store, embedder, self.view, hidden=self.faces.people)
        self.locator = Locator(store, embedder, policy, self.references, self.threshold)
        self._calibration: dict[int, tuple[float, float]] = {}
        self._calibration_generation = -2

    @property
    def embedder(self) -> ImageEmbedder:
        return self._embedder

    @embedder.setter
    def embedder(self, embedder: ImageEmbedder) -> None:
        """Also the embedder its parts use (the daemon times it)."""
        self._embedder = embedder
        for part in ("references", "locator"):
            if part in self.__dict__:
                self.__dict__[part].embedder = embedder

    def threshold(self, concept_id: int) -> float:
        mean, std = self.calibration(concept_id)
        return concept_threshold(self.space_threshold, mean, std, self.policy)

    def calibration(self, concept_id: int) -> tuple[float, float]:
        """The concept's scores against the negative bank (mean, spread), read once per generation."""
        if self._calibration_generation != self.view.generation:
            self._calibration = self.store.calibration(self.embedder.space.name)
            self._calibration_generation = self.view.generation
        return self._calibration.get(concept_id, (self.space_threshold, 0.0))

    def embed_query(self, image: Image, grid: int | None = None) -> np.ndarray:
        """The query's vectors: the whole image and a grid x grid of half-size crops (perceive/views.py), the
        policy's query_grid unless given."""
        return self.embedder.embed(query_views(image.pixels, self.policy.query_grid if grid is None else grid))

    def can_place(self, image: Image) -> bool:
        return self.locator.can_place(image)

    def propose(self, image: Image, query: np.ndarray | None = None, grid: int | None = None,
                among: list[int] | None = None) -> list[Candidate] | None:
        return self.locator.propose(image, query, grid, among)

    def locate(self, image: Image, proposed: list[Candidate] | None = None) -> Recognition:
        return self.locator.locate(image, proposed)

    def face_hits(self, image: Image) -> list[Hit]:
        return self.faces.hits(image)

    def score(self, query: np.ndarray) -> list[tuple[Concept, float]]:
        """Every concept with its best score over the query's vectors and its own views, best first: one
        product with every reference vector (exact; each query vector asked the index for all of them, which
        at 1000 concepts took ten times as long)."""
        keys, references = self.references.vectors()
        if not len(keys):
            return []
        ids, best = best_per_concept(np.atleast_2d(query).astype(np.float32) @ references.T, keys)
        concepts = self.store.concepts_by_id(ids.tolist())
        scored = [(concepts[i], float(s)) for i, s in zip(ids.tolist(), best.max(axis=0)) if i in concepts]
        return sorted(scored, key=lambda cs: -cs[1])

    def decide(self, image: Image, scored: list[tuple[Concept, float]], question: str = "") -> Recognition:
        """Whole-image decisions (decide.decide_scores), every hit with the whole image's box."""
        hits, candidates = decide_scores(scored, self.threshold, image.full_box, self.policy, question)
        return Recognition(image.source, image.size, hits, candidates)

    def recognize(self, image: Image, question: str = "", regions: list[Region] | None = None) -> Recognition:
        """The concepts in an image. Without regions: the whole image and its crops against every concept
        decide, dense matching places (`locate`), and decide.merge_placements joins the two; a concept found
        by the whole image but not placed takes the query view where it scores best. With a detector's
        regions: each region's crop, as RAP does, one concept per region and one region per concept. Either
        way, people remembered by their face are found by it, with the face's box."""
        if regions is None:
            # Where dense matching places, its proposals' crops find the small concepts, and the whole image
            # with its quadrants decides as well as with nine crops (docs/BENCHMARKS.md) for half the views.
            grid = self.policy.placing_query_grid if self.can_place(image) else self.policy.query_grid
            query = self.embed_query(image, grid)
            result = self.decide(image, self.score(query), question)
            among = self.shortlist(result)
            proposed = self.propose(image, query, grid, among)
            located = {h.concept.id: h for h in self.locate(image, proposed).hits}
            # Dense matching judged only concepts with reference cells (readable photos, an embedder with a map).
            judged = set(self.references.cells(among).ids.tolist()) if proposed is not None else set()
            hits, whole_box, unplaced = merge_placements(result.hits, result.candidates, located, judged,
                                                         self.policy)
            if proposed is not None and unplaced:  # placeable, not placed: the view where it scores best (one
                # that filled the frame was placed on a part and keeps the whole image's box)
                keys, references = self.references.vectors()
                views = best_views(image, query, grid, [h.concept.id for h in unplaced], keys, references)
                hits = [replace(h, box=views.get(h.concept.id, h.box)) if h in unplaced else h for h in hits]
            result.hits = add_crop_only(hits, located, whole_box, self.policy)
        else:
            result = self.decide_regions(image, regions)
        result.hits = self.face_hits(image) + result.hits  # the people found by face: the rest never saw them
        return result

    def shortlist(self, whole: Recognition) -> list[int]:
        """The concepts dense matching compares the frame with: every hit of the whole-image decision, and the
        `dense_shortlist` best by the query views' scores. A memory of up to that many concepts is compared
        whole; a large one costs what that many do, in reading cells and in matching them (at 1000 concepts
        these were most of a fresh `recognize`: docs/BENCHMARKS.md)."""
        ranked = [h.concept.id for h in whole.candidates[: self.policy.dense_shortlist]]
        return ranked + [h.concept.id for h in whole.hits if h.concept.id not in ranked]

    def decide_regions(self, image: Image, regions: list[Region]) -> Recognition:
        """Each region's crop scored against every concept; a region names its best concept when that clears
        the thresholds; a concept found in several regions keeps its best."""
        if not regions:
            return Recognition(image.source, image.size, [], [])
        vectors = self.embedder.embed([crop(image, r.box).pixels for r in regions])
        candidates = []
        for region, vector in zip(regions, vectors):
            scored = self.score(vector)
            if scored:
                concept, score = scored[0]
                candidates.append(Hit(concept, score, self.threshold(concept.id), region.box))
        candidates.sort(key=lambda h: -h.score)
        return Recognition(image.source, image.size, best_region_per_concept(candidates, self.policy.top_k),
                           candidates)
