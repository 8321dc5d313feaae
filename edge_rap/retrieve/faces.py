"""People by their faces: each face in a frame paired with at most one remembered person (decide.pair_faces)."""

from __future__ import annotations

from typing import Callable

from edge_rap.perceive.images import decoded_size, scale_box
from edge_rap.memory.index import IndexView, check_space
from edge_rap.memory.store import Store
from edge_rap.perceive.faces import FACE_SPACE, FaceModels
from edge_rap.retrieve.decide import pair_faces
from edge_rap.retrieve.policy import RetrievalPolicy
from edge_rap.types import Hit, Image


class FaceMatcher:
    """Finds remembered people by their faces; the face models load only where people are remembered."""

    def __init__(self, store: Store, models: Callable[[], FaceModels | None] | None, policy: RetrievalPolicy):
        self.store = store
        self._models = models
        self.policy = policy
        self.view = IndexView(store, FACE_SPACE)
        self._people: tuple[int, set[int]] = (-2, set())

    def people(self) -> set[int]:
        """The people remembered with a face, when faces can be matched here (the models load): they are found
        by their faces alone. Empty where the face models are missing: the whole-image views stand in. Read
        once per generation of the face space (every change of a face view writes it)."""
        if len(self.view) == 0 or self._models is None or self._models() is None:
            return set()
        if self._people[0] != self.view.generation:
            self._people = (self.view.generation, {view.concept_id for view in self.store.views(kind="face")})
        return self._people[1]

    def hits(self, image: Image) -> list[Hit]:
        """Each face with its best people (within the margin of its best match), paired best first, each face
        with one person and each person with one face, clearing the face threshold; boxes are the faces'."""
        if len(self.view) == 0 or self._models is None:
            return []
        models = self._models()
        if models is None:
            return []
        row = self.store.space(FACE_SPACE)
        if row is not None:
            check_space(row, models.space)
        faces, vectors = models.faces(image.pixels)
        pairs = []
        for face, vector in zip(faces, vectors):
            neighbours = self.view.search(vector, count=len(self.view))
            best = neighbours[0].score if neighbours else 0.0
            pairs += [(n.score, face, n.concept_id) for n in neighbours if n.score >= best - self.policy.margin]
        concepts = self.store.concepts_by_id([c for _, _, c in pairs])
        threshold = float(models.embedder.threshold)
        chosen = pair_faces([p for p in pairs if p[2] in concepts], threshold, key=lambda face: face.box)
        return [Hit(concepts[person], score, threshold, scale_box(face.box, decoded_size(image), image.size))
                for score, face, person in chosen]
