"""Retrieve: an image (and optionally a question) in, the household's concepts present out, with scores.

A concept is accepted when its best score clears both the embedder's shipped threshold (calibrated on real
sample photos at export, edge_rap/calibrate.py) and its own (the generated negative bank's mean + Z spreads,
edge_rap/negatives.py), and it is not clearly beaten by another concept (within MARGIN of the best).
An empty answer means "none of my concepts". Names mentioned in a question come first, as in RAP.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.memory.index import IndexView, check_space
from edge_rap.memory.store import Store
from edge_rap.images import crop, decoded_size, read_image_file, scale_box
from edge_rap.perceive.embed import ImageEmbedder
from edge_rap.perceive.faces import FACE_SPACE, FaceModels
from edge_rap.perceive.boxes import iou, scaled_box
from edge_rap.perceive.regions import (FEATURE_LONG_SIDE, Candidate, ReferenceCells, best_per_concept,
                                       dense_candidates, pooled_boxes, reference_cells)
from edge_rap.perceive.views import query_view_boxes, query_views
from edge_rap.types import Box, Concept, Hit, Image, Recognition, ReferenceView, Region


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrievalPolicy:
    """How scores become decisions; the defaults are documented in docs/RETRIEVAL.md."""

    top_k: int = 5
    z: float = 4.0  # per-concept threshold = negative-bank mean + z * spread
    threshold: float | None = None  # the space's threshold; None = the embedder's calibrated one
    margin: float = 0.05  # a concept this far below the best one is "clearly beaten"
    max_candidates: int = 8  # concepts confirmed by crops per frame (the best by dense-matching score)
    same_place_iou: float = 0.5  # boxes overlapping more than this are the same place
    fills_frame: float = 0.2  # a whole-frame hit this far above a crop-only one: the frame is its photo
    query_grid: int = 3  # half-size crops per side embedded with the whole image (retrieval alone)
    placing_query_grid: int = 2  # the same where dense matching also places: its crops find the small ones
    contested_margin: float = 0.15  # a proposal whose pooled box matches another concept this much better: no crop
    grow: tuple[float, ...] = (1.3, 1.6)  # a placed box is tried this much larger too: dense peaks are parts
    grow_tolerance: float = 0.02  # the largest tried box within this of the best score is kept

#: Used only for a model exported without calibration (no sample photos were available).
UNCALIBRATED_THRESHOLD = 0.6


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

    def __init__(self, store: Store, embedder: ImageEmbedder, policy: RetrievalPolicy = RetrievalPolicy(),
                 faces: Callable[[], FaceModels | None] | None = None):
        self.store = store
        self._faces = faces
        self.face_view = IndexView(store, FACE_SPACE)
        self.embedder = embedder
        self.policy = policy
        shipped = getattr(embedder, "threshold", None)
        self.space_threshold = policy.threshold if policy.threshold is not None else (
            shipped if shipped is not None else UNCALIBRATED_THRESHOLD)
        self.view = IndexView(store, embedder.space.name, embedder.space)
        row = store.space(embedder.space.name)
        if row is not None:
            check_space(row, embedder.space)
        self._calibration: dict[int, tuple[float, float]] = {}
        self._reference_cache: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros((0, 0), np.float32))
        self._references_generation = -2
        self._cells = ReferenceCells.stack({})
        self._view_cells: dict[tuple[str, Box | None], np.ndarray] = {}
        self._cells_generation = -2
        self._calibration_generation = -2

    def threshold(self, concept_id: int) -> float:
        if self._calibration_generation != self.view.generation:
            self._calibration = self.store.calibration(self.embedder.space.name)
            self._calibration_generation = self.view.generation
        mean, std = self._calibration.get(concept_id, (self.space_threshold, 0.0))
        return max(self.space_threshold, mean + self.policy.z * std)

    def embed_query(self, image: Image, grid: int | None = None) -> np.ndarray:
        """The query's vectors: the whole image and a grid x grid of half-size crops (perceive/views.py), the
        policy's query_grid unless given."""
        return self.embedder.embed(query_views(image.pixels, self.policy.query_grid if grid is None else grid))

    def can_place(self, image: Image) -> bool:
        """Whether dense matching can place concepts in this image: an embedder with a feature map (not CLIP),
        an image of 32 px or more, concepts in this space with readable reference photos."""
        if min(image.pixels.shape[:2]) < 32 or not getattr(self.embedder, "has_feature_map", False):
            return False
        return bool(len(self._references()[0])) and bool(len(self._reference_cells()))

    def score(self, query: np.ndarray) -> list[tuple[Concept, float]]:
        """Every concept with its best score over the query's vectors and its own views, best first."""
        count = max(len(self.view), 1)
        best: dict[int, float] = {}
        for vector in np.atleast_2d(query):
            for n in self.view.search(vector, count=count):
                best[n.concept_id] = max(n.score, best.get(n.concept_id, -2.0))
        concepts = self.store.concepts_by_id(list(best))
        ranked = sorted(((concepts[i], s) for i, s in best.items() if i in concepts), key=lambda cs: -cs[1])
        return ranked

    def recognize(self, image: Image, question: str = "", regions: list[Region] | None = None) -> Recognition:
        """The concepts in an image. Without regions: the whole image and its crops against every concept
        decide, dense matching places (`locate`). A concept it places gets its own box; one only it finds is
        added, unless a far stronger whole-image hit kept the whole image's box (the frame is that one's
        photo and the crop was a part of it); the others keep the whole image's box, except that a concept
        within MARGIN of its threshold that dense matching judged but did not even propose is dropped unless
        the question names it (such weak, uncorroborated whole-image evidence was most of the false hits in
        multi-concept frames). With a detector's regions: each region's crop, as RAP does, one concept per
        region and one region per concept. Either way, people remembered by their face are found by it,
        with the face's box."""
        if regions is None:
            # Where dense matching places, its proposals' crops find the small concepts, and the whole image
            # with its quadrants decides as well as with nine crops (docs/BENCHMARKS.md) for half the views.
            grid = self.policy.placing_query_grid if self.can_place(image) else self.policy.query_grid
            query = self.embed_query(image, grid)
            result = self.decide(image, self.score(query), question)
            proposed = self.propose(image, query, grid)
            located = {h.concept.id: h for h in self.locate(image, proposed).hits}
            ranked = {c.concept_id for c in proposed or []}
            # Dense matching judged only concepts with reference cells (readable photos, an embedder with a map).
            judged = set(self._reference_cells().ids.tolist()) if proposed is not None else set()
            hits, whole_box, unplaced = [], [], []

            def runner_up(hit: Hit) -> float:
                """The best whole-image score of any other concept: a hit clearly above every other concept
                is no weak evidence, whether or not dense matching ranked it among its few proposals (at
                1000 concepts it often did not, and exact copies of reference photos were dropped)."""
                return max((c.score for c in result.candidates if c.concept.id != hit.concept.id), default=-1.0)

            for h in result.hits:
                place = located.get(h.concept.id)
                # A located box replaces the whole image's unless it scores clearly worse than the whole-image
                # views did (a concept that fills the photo: dense matching found only a part of it).
                if place is not None and place.score >= h.score - self.policy.margin:
                    hits.append(replace(h, box=place.box))
                elif (place is not None or h.concept.id in ranked or h.concept.id not in judged or h.mentioned
                      or h.score >= h.threshold + self.policy.margin or h.score >= runner_up(h) + self.policy.margin):
                    hits.append(h)
                    whole_box.append(h)
                    if place is None:
                        unplaced.append(h)
            if proposed is not None and unplaced:  # placeable, not placed: the view where it scores best (one
                # that filled the frame was placed on a part and keeps the whole image's box)
                keys, references = self._references()
                views = self._best_views(image, query, grid, [h.concept.id for h in unplaced], keys, references)
                hits = [replace(h, box=views.get(h.concept.id, h.box)) if h in unplaced else h for h in hits]
            # A concept only a crop found, far weaker than a whole-image hit that kept the whole image's box
            # (the frame is a photo of that one), was found in a part of it: dropped.
            known = {h.concept.id for h in hits}
            result.hits = hits + [h for i, h in located.items() if i not in known
                                  and all(u.score < h.score + self.policy.fills_frame for u in whole_box)]
        else:
            result = self.decide_regions(image, regions)
        by_face = self.face_hits(image)
        if by_face:
            named = {h.concept.id for h in by_face}
            result.hits = by_face + [h for h in result.hits if h.concept.id not in named]
        return result

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
        hits, seen = [], set()
        for hit in candidates:
            if hit.accepted and hit.concept.id not in seen:
                seen.add(hit.concept.id)
                hits.append(hit)
        return Recognition(image.source, image.size, hits[: self.policy.top_k], candidates)

    def face_hits(self, image: Image) -> list[Hit]:
        """Remembered people by their faces: each face paired with at most one person and each person with one
        face, best pairs first; a pair counts when it clears the face threshold and is its face's best match."""
        if len(self.face_view) == 0 or self._faces is None:
            return []
        models = self._faces()
        if models is None:
            return []
        row = self.store.space(FACE_SPACE)
        if row is not None:
            check_space(row, models.space)
        faces, vectors = models.faces(image.pixels)
        pairs = []
        for face, vector in zip(faces, vectors):
            neighbours = self.face_view.search(vector, count=len(self.face_view))
            best = neighbours[0].score if neighbours else 0.0
            pairs += [(n.score, face, n.concept_id) for n in neighbours if n.score >= best - self.policy.margin]
        concepts = self.store.concepts_by_id([c for _, _, c in pairs])
        threshold = float(models.embedder.threshold)
        hits, used_faces, used_people = [], set(), set()
        for score, face, concept_id in sorted(pairs, key=lambda p: -p[0]):
            if score < threshold or face.box in used_faces or concept_id in used_people or concept_id not in concepts:
                continue
            used_faces.add(face.box)
            used_people.add(concept_id)
            box = scale_box(face.box, decoded_size(image), image.size)
            hits.append(Hit(concepts[concept_id], score, threshold, box))
        return hits

    def _references(self) -> tuple[np.ndarray, np.ndarray]:
        """Every reference vector with its concept id, read once per index generation."""
        self.view.refresh()
        if self._references_generation != self.view.generation:
            self._reference_cache = self.store.vectors(self.embedder.space.name)
            self._references_generation = self.view.generation
        return self._reference_cache

    def _reference_cells(self) -> ReferenceCells:
        """Each concept's reference feature-map cells (its photos at each reference side), restacked when the
        memory changes. They are stored when a concept is remembered (one query here); a photo without them
        (a memory from before they were stored) is derived once and kept by its content and box, and the log
        says that `edge-rap reindex` stores them. Only concepts with vectors in this embedder's space (others
        were remembered with another model). A mirror image's cells matched no better on the dev composites
        and doubled the cost."""
        keys, _ = self._references()
        if self._cells_generation != self.view.generation:
            in_space = set(keys.tolist())
            stored = self.store.cells(self.embedder.space.name)
            per_concept: dict[int, list[np.ndarray]] = {}
            kept: dict[tuple[str, Box | None], np.ndarray] = {}
            derived = 0
            for view in self.store.views():
                if view.concept_id not in in_space:
                    continue
                cells = stored.get(view.id)
                if cells is None:
                    key = (view.image_sha256, view.box)
                    cells = self._view_cells.get(key)
                    if cells is None:
                        cells, derived = self._cells_of(view), derived + 1
                    if cells is not None:
                        kept[key] = cells
                if cells is not None:
                    per_concept.setdefault(view.concept_id, []).append(cells)
            if derived:
                log.warning("%d reference photo(s) have no stored features and were derived now: run `edge-rap "
                            "reindex` once to store them", derived)
            self._view_cells = kept
            self._cells = ReferenceCells.stack({k: np.concatenate(v) for k, v in per_concept.items()})
            self._cells_generation = self.view.generation
        return self._cells

    def _cells_of(self, view: ReferenceView) -> np.ndarray | None:
        """A stored photo's unit cells at every reference side; None when the photo is unreadable."""
        try:
            image = read_image_file(view.image_path).image
            pixels = crop(image, view.box).pixels if view.box else image.pixels
        except EdgeRapError as e:  # a stored photo gone missing, or its box outside it: that view cannot be placed
            log.warning("reference photo unreadable, not used for placing: %s", e)
            return None
        return reference_cells(self.embedder, pixels)

    def _sharpen(self, image: Image, candidates: list[Candidate], keys: np.ndarray, references: np.ndarray,
                 query: np.ndarray | None, grid: int) -> list[Candidate]:
        """A candidate whose region spread over most of the frame says little (its reference photo's own
        background matched the frame's): it takes the query view (whole or a half-size crop of the grid)
        where the concept scores best instead. `query`: those views' vectors, when the caller has them."""
        full = image.size[0] * image.size[1]
        vague = [c for c in candidates if c.boxes[0].width * c.boxes[0].height > 0.5 * full]
        if not vague:
            return candidates
        if query is None:
            query = self.embedder.embed([crop(image, b).pixels for b in query_view_boxes(image.size, grid)])
        best = self._best_views(image, query, grid, [c.concept_id for c in vague], keys, references)
        sharpened = {c.concept_id: Candidate(c.concept_id, c.score, (best[c.concept_id],)) for c in vague}
        return [sharpened.get(c.concept_id, c) for c in candidates]

    @staticmethod
    def _best_views(image: Image, query: np.ndarray, grid: int, concept_ids: list[int], keys: np.ndarray,
                    references: np.ndarray) -> dict[int, Box]:
        """For each concept, the query view (the whole image or a crop of the grid) where it scores best."""
        views = query_view_boxes(image.size, grid)
        if len(query) != len(views):
            raise ValueError(f"{len(query)} query vectors for a {grid} x {grid} grid of views")
        similarity = query @ references.T
        return {i: views[int(similarity[:, keys == i].max(axis=1).argmax())] for i in concept_ids if (keys == i).any()}

    def propose(self, image: Image, query: np.ndarray | None = None, grid: int | None = None) -> list[Candidate] | None:
        """Dense matching's likeliest concepts for this frame, each with its boxes; None where it cannot place
        (`can_place`). `query`: the frame's query-view vectors (`embed_query` with this `grid`, by default
        the policy's placing_query_grid), when the caller has them already."""
        if not self.can_place(image):
            return None
        keys, references = self._references()
        frame = self.embedder.feature_map(image.pixels, FEATURE_LONG_SIDE)
        candidates = dense_candidates(frame, self._reference_cells(), image.size, limit=self.policy.max_candidates)
        grid = self.policy.placing_query_grid if grid is None else grid
        return self._contest(frame, image, self._sharpen(image, candidates, keys, references, query, grid))

    def _contest(self, frame: np.ndarray, image: Image, candidates: list[Candidate]) -> list[Candidate]:
        """Mark the candidates whose tight box, pooled from the frame's feature map, matches another concept
        better than their own by `contested_margin`: a crop of it would almost surely be that concept's, and
        confirming costs one embedding a crop (on the dev composites a third of the crops, and no true
        concept; docs/BENCHMARKS.md)."""
        if not candidates:
            return candidates
        keys, references = self._references()
        pooled = pooled_boxes(frame, [c.boxes[0] for c in candidates], image.size,
                              float(getattr(self.embedder, "gem_p", 3.0)))
        ids, per_concept = best_per_concept(pooled @ references.T, keys)
        marked = []
        for candidate, scores in zip(candidates, per_concept):
            own = scores[ids == candidate.concept_id]
            others = scores[ids != candidate.concept_id]
            contested = bool(len(own) and len(others) and own[0] < others.max() - self.policy.contested_margin)
            marked.append(replace(candidate, contested=contested))
        return marked

    def locate(self, image: Image, proposed: list[Candidate] | None = None) -> Recognition:
        """Remembered concepts in the frame with their own boxes: dense local matching proposes places per
        concept (a tight box, and a wide one where it differs; `propose`, unless given), crops of them confirm:
        the concept keeps the box where it scores best, and must clear its thresholds and be that crop's best
        concept. All crops are embedded in one batch; contested proposals (`_contest`) get none. Embedders
        without a feature map (CLIP) locate nothing."""
        candidates = proposed if proposed is not None else self.propose(image) or []
        if not candidates:
            return Recognition(image.source, image.size, [], [])
        keys, references = self._references()
        concepts = self.store.concepts_by_id([c.concept_id for c in candidates])
        candidates = [c for c in candidates if c.concept_id in concepts and not c.contested]
        boxes = [(candidate, box) for candidate in candidates for box in candidate.boxes]
        if not boxes:
            return Recognition(image.source, image.size, [], [])
        similarity = self.embedder.embed([crop(image, box).pixels for _, box in boxes]) @ references.T
        ids, per_concept = best_per_concept(similarity, keys)  # crops x concepts
        best: dict[int, tuple[float, Box, np.ndarray]] = {}  # each candidate's box where it scores best
        for (candidate, box), scores in zip(boxes, per_concept):
            own = float(scores[ids == candidate.concept_id][0])
            if candidate.concept_id not in best or own > best[candidate.concept_id][0]:
                best[candidate.concept_id] = (own, box, scores)
        best = self._grow(image, best, ids, keys, references)
        scored = []
        for concept_id, (own, box, scores) in best.items():
            if own < scores.max():
                continue  # another concept owns this place
            scored.append(Hit(concepts[concept_id], own, self.threshold(concept_id), box))
        scored.sort(key=lambda h: -h.score)
        hits: list[Hit] = []
        for hit in scored:  # one concept per place: a weaker concept on a kept one's place is dropped
            if hit.accepted and all(iou(hit.box, kept.box) <= self.policy.same_place_iou for kept in hits):
                hits.append(hit)
        return Recognition(image.source, image.size, hits, scored)

    def _grow(self, image: Image, best: dict[int, tuple[float, Box, np.ndarray]], ids: np.ndarray, keys: np.ndarray,
              references: np.ndarray) -> dict[int, tuple[float, Box, np.ndarray]]:
        """Promising boxes tried larger (`grow`), in one batch: dense matching's peak is often the most
        distinctive part of a thing, and a crop of the whole thing matches its reference better. Promising:
        within MARGIN of the concept's threshold and of the crop's best concept (clear losers cost nothing).
        A concept keeps its largest box that it owns and scores within `grow_tolerance` of its best on (a
        part and the whole thing often score alike), never one below its threshold where the best clears it."""
        margin = self.policy.margin
        promising = [i for i, (own, _, scores) in best.items()
                     if own >= self.threshold(i) - margin and own >= scores.max() - margin]
        tries = [(i, scaled_box(best[i][1], f, image.size)) for i in promising for f in self.policy.grow]
        tries = [(i, box) for i, box in tries if box != best[i][1]]
        if not tries:
            return best
        _, per_concept = best_per_concept(self.embedder.embed([crop(image, b).pixels for _, b in tries]) @ references.T,
                                          keys)
        options = {i: [best[i]] for i in promising}
        for (i, box), scores in zip(tries, per_concept):
            options[i].append((float(scores[ids == i][0]), box, scores))
        grown = dict(best)
        for i, boxes in options.items():
            owned = [b for b in boxes if b[0] >= b[2].max()]  # a grown box that swallowed a neighbour is not its
            if not owned:
                continue
            winner = max(owned, key=lambda b: b[0])
            floor = winner[0] - self.policy.grow_tolerance
            if winner[0] >= self.threshold(i):  # never trade an accepted box for a refused one
                floor = max(floor, self.threshold(i))
            # the largest box that scores nearly as well as the best one
            grown[i] = max((b for b in owned if b[0] >= floor), key=lambda b: b[1].width * b[1].height)
        return grown

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
