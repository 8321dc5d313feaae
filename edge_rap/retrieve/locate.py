"""Where each remembered concept is in a frame: dense matching proposes places, crops of them confirm.

The decisions themselves (one concept per place, which grown box wins) are pure functions in decide.py; this
module runs the model on the frame and its crops.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from edge_rap.perceive.images import crop, croppable
from edge_rap.memory.store import Store
from edge_rap.perceive.boxes import scaled_box
from edge_rap.perceive.embed import ImageEmbedder
from edge_rap.perceive.regions import FEATURE_LONG_SIDE, Candidate, best_per_concept, dense_candidates, pooled_boxes
from edge_rap.perceive.views import query_view_boxes
from edge_rap.retrieve.decide import Option, best_boxes, choose_grown, one_concept_per_place
from edge_rap.retrieve.policy import RetrievalPolicy
from edge_rap.retrieve.references import References
from edge_rap.types import Box, Hit, Image, Recognition


def best_views(image: Image, query: np.ndarray, grid: int, concept_ids: list[int], keys: np.ndarray,
               references: np.ndarray) -> dict[int, Box]:
    """For each concept, the query view (the whole image or a crop of the grid) where it scores best."""
    views = query_view_boxes(image.size, grid)
    if len(query) != len(views):
        raise ValueError(f"{len(query)} query vectors for a {grid} x {grid} grid of views")
    if not len(keys):  # every concept forgotten since the frame was scored (under a running daemon): none to place
        return {}
    similarity = query @ references.T
    return {i: views[int(similarity[:, keys == i].max(axis=1).argmax())] for i in concept_ids if (keys == i).any()}


class Locator:
    """Places concepts in frames with the embedder's feature map and crops (not CLIP: it has no map)."""

    def __init__(self, store: Store, embedder: ImageEmbedder, policy: RetrievalPolicy, references: References,
                 threshold: Callable[[int], float]):
        self.store = store
        self.embedder = embedder
        self.policy = policy
        self.references = references
        self.threshold = threshold

    def can_place(self, image: Image) -> bool:
        """Whether dense matching can place concepts in this image: an embedder with a feature map (not CLIP),
        an image of 32 px or more, concepts in this space (a concept whose photos are all unreadable is
        then not proposed)."""
        if min(image.pixels.shape[:2]) < 32 or not getattr(self.embedder, "has_feature_map", False):
            return False
        return bool(len(self.references.vectors()[0]))

    def propose(self, image: Image, query: np.ndarray | None = None, grid: int | None = None,
                among: list[int] | None = None) -> list[Candidate] | None:
        """Dense matching's likeliest concepts for this frame, each with its boxes; None where it cannot place
        (`can_place`). `query`: the frame's query-view vectors (with this `grid`, by default the policy's
        placing_query_grid), when the caller has them already. `among`: the concepts compared (the
        retriever's shortlist, `Retriever.shortlist`), by default every one."""
        if not self.can_place(image):
            return None
        frame = self.embedder.feature_map(image.pixels, FEATURE_LONG_SIDE)
        candidates = dense_candidates(frame, self.references.cells(among), image.size,
                                      limit=self.policy.max_candidates, second=self.policy.second_peak)
        grid = self.policy.placing_query_grid if grid is None else grid
        return self.contest(frame, image, self.sharpen(image, candidates, query, grid))

    def sharpen(self, image: Image, candidates: list[Candidate], query: np.ndarray | None,
                grid: int) -> list[Candidate]:
        """A candidate whose region spread over most of the frame says little (its reference photo's own
        background matched the frame's): it takes the query view (whole or a half-size crop of the grid)
        where the concept scores best instead. `query`: those views' vectors, when the caller has them."""
        full = image.size[0] * image.size[1]
        vague = [c for c in candidates if c.boxes[0].width * c.boxes[0].height > 0.5 * full]
        if not vague:
            return candidates
        if query is None:
            query = self.embedder.embed([crop(image, b).pixels for b in query_view_boxes(image.size, grid)])
        keys, references = self.references.vectors()
        best = best_views(image, query, grid, [c.concept_id for c in vague], keys, references)
        sharpened = {c.concept_id: Candidate(c.concept_id, c.score, (best[c.concept_id],)) for c in vague}
        return [sharpened.get(c.concept_id, c) for c in candidates]

    def contest(self, frame: np.ndarray, image: Image, candidates: list[Candidate]) -> list[Candidate]:
        """Mark the candidates whose tight box, pooled from the frame's feature map, matches another concept
        better than their own by `contested_margin`: a crop of it would almost surely be that concept's, and
        confirming costs one embedding a crop (on the dev composites a third of the crops, and no true
        concept; docs/BENCHMARKS.md)."""
        if not candidates:
            return candidates
        keys, references = self.references.vectors()
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
        concept (a tight box, and a wide one where it differs or a second place; `propose`, unless given), crops
        of them confirm: the concept keeps the box where it scores best of those it owns (a crop proposed for
        another concept included, where it clearly leads: `decide.best_boxes`), and must clear its thresholds and
        be that crop's best concept. All crops are embedded in one batch; contested proposals (`contest`) get none."""
        candidates = proposed if proposed is not None else self.propose(image) or []
        if not candidates:
            return Recognition(image.source, image.size, [], [])
        keys, references = self.references.vectors()
        concepts = self.store.concepts_by_id([c.concept_id for c in candidates])
        candidates = [c for c in candidates if c.concept_id in concepts and not c.contested]
        # a box of a few pixels (dense matching at a thumbnail's edge) holds nothing to confirm
        boxes = [(candidate, box) for candidate in candidates for box in candidate.boxes if croppable(image, box)]
        if not boxes:
            return Recognition(image.source, image.size, [], [])
        similarity = self.embedder.embed([crop(image, box).pixels for _, box in boxes]) @ references.T
        ids, per_concept = best_per_concept(similarity, keys)  # crops x concepts
        best = best_boxes([(candidate.concept_id, box) for candidate, box in boxes], ids, per_concept,
                          self.policy.claim_lead)
        concepts = self.store.concepts_by_id(list(best))
        best = self.grow(image, best, ids, keys, references)
        scored = [Hit(concepts[i], own, self.threshold(i), box) for i, (own, box, scores) in best.items()
                  if i in concepts and own >= scores.max()]  # a place another concept owns is not this one's
        return Recognition(image.source, image.size, one_concept_per_place(scored, self.policy),
                           sorted(scored, key=lambda h: -h.score))

    def grow(self, image: Image, best: dict[int, Option], ids: np.ndarray, keys: np.ndarray,
             references: np.ndarray) -> dict[int, Option]:
        """Promising boxes tried larger (`grow`), in one batch: dense matching's peak is often the most
        distinctive part of a thing, and a crop of the whole thing matches its reference better. Promising:
        within MARGIN of the concept's threshold and of the crop's best concept (clear losers cost nothing).
        Which box each keeps: decide.choose_grown."""
        margin = self.policy.margin
        promising = [i for i, (own, _, scores) in best.items()
                     if own >= self.threshold(i) - margin and own >= scores.max() - margin]
        tries = [(i, scaled_box(best[i][1], f, image.size)) for i in promising for f in self.policy.grow]
        tries = [(i, box) for i, box in tries if box != best[i][1]]
        if not tries:
            return best
        crops = self.embedder.embed([crop(image, b).pixels for _, b in tries])
        _, per_concept = best_per_concept(crops @ references.T, keys)
        options = {i: [best[i]] for i in promising}
        for (i, box), scores in zip(tries, per_concept):
            options[i].append((float(scores[ids == i][0]), box, scores))
        grown = dict(best)
        for i, tried in options.items():
            chosen = choose_grown(tried, self.threshold(i), self.policy.grow_tolerance)
            if chosen is not None:
                grown[i] = chosen
        return grown
