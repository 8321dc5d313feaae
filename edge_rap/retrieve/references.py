"""The reference side of retrieval, read once per index generation: every reference vector with its concept
(from the memory-mapped index), and the dense-matching cells of the concepts a frame is compared with, read
when first asked for (stored when a concept was remembered; derived and kept only for photos of a memory
from before they were stored)."""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.perceive.images import crop, read_image_file
from edge_rap.memory.index import IndexView
from edge_rap.memory.store import Store
from edge_rap.perceive.embed import ImageEmbedder
from edge_rap.perceive.regions import ReferenceCells, reference_cells
from edge_rap.types import Box, ReferenceView
from edge_rap.wording import counted

log = logging.getLogger(__name__)


class References:
    """A reader's cache of the memory's reference vectors and cells, dropped when `view`'s generation moves.
    `hidden`: the concepts left out (the people found by their faces: the rest of their photo, clothes and a
    room, would otherwise outscore and so drop the things really in the frame, and then be dropped itself)."""

    def __init__(self, store: Store, embedder: ImageEmbedder, view: IndexView,
                 hidden: Callable[[], set[int]] = set):
        self.store = store
        self.embedder = embedder
        self.view = view
        self.hidden = hidden
        self._vectors: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros((0, 0), np.float32))
        self._vectors_generation: tuple[int, frozenset[int]] = (-2, frozenset())
        self._cells: dict[int, np.ndarray | None] = {}  # concept id -> its cells (None: no readable photo)
        self._derived: dict[tuple[str, Box | None], np.ndarray] = {}
        self._cells_generation = -2
        self._stacked: tuple[frozenset[int], ReferenceCells] | None = None  # the last answer (a daemon asks alike)

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Every reference vector with its concept id (keys, vectors), grouped by concept; none of `hidden`'s."""
        self.view.refresh()
        generation = (self.view.generation, frozenset(self.hidden()))
        if self._vectors_generation != generation:
            keys, vectors = self.view.grouped()
            if generation[1]:
                shown = ~np.isin(keys, list(generation[1]))
                keys, vectors = keys[shown], vectors[shown]
            self._vectors, self._vectors_generation = (keys, vectors), generation
        return self._vectors

    def cells(self, concept_ids: list[int] | None = None) -> ReferenceCells:
        """The reference feature-map cells (each photo at each reference side) of these concepts, or of every
        concept: only concepts with vectors in this embedder's space (others were remembered with another
        model) and a readable photo. Each concept's are read once per generation, when first asked for. A
        photo without stored cells (a memory from before they were stored) is derived once and kept by its
        content and box, and the log says that `edge-rap reindex` stores them. A mirror image's cells matched
        no better on the dev composites and doubled the cost."""
        keys, _ = self.vectors()
        if self._cells_generation != self.view.generation:
            self._cells, self._stacked, self._cells_generation = {}, None, self.view.generation
        in_space = set(keys.tolist())
        wanted = frozenset(in_space if concept_ids is None else in_space.intersection(concept_ids))
        if self._stacked is None or self._stacked[0] != wanted:
            missing = sorted(wanted.difference(self._cells))
            if missing:
                self._load(missing)
            self._stacked = wanted, ReferenceCells.stack({i: self._cells[i] for i in wanted
                                                          if self._cells[i] is not None})
        return self._stacked[1]

    def _load(self, concept_ids: list[int]) -> None:
        stored = self.store.cells(self.embedder.space.name, concept_ids)
        asked = set(concept_ids)
        per_concept: dict[int, list[np.ndarray]] = {i: [] for i in concept_ids}
        derived = 0
        views = self.store.views()
        kept = {(view.image_sha256, view.box) for view in views}  # a photo forgotten or replaced: its cells let go
        self._derived = {key: cells for key, cells in self._derived.items() if key in kept}
        for view in views:
            if view.concept_id not in asked:
                continue
            cells = stored.get(view.id)
            if cells is None:
                key = (view.image_sha256, view.box)
                cells = self._derived.get(key)
                if cells is None:  # (an unreadable photo is not counted: no reindex can store its cells)
                    cells = self._cells_of(view)
                    derived += cells is not None
                if cells is not None:
                    self._derived[key] = cells
            if cells is not None:
                per_concept[view.concept_id].append(cells)
        if derived:
            log.warning("%s no stored features and were derived now: run `edge-rap reindex --embedder %s` once to "
                        "store them", counted(derived, "reference photo has", "reference photos have"),
                        self.embedder.space.model)
        for i, parts in per_concept.items():
            self._cells[i] = np.concatenate(parts).astype(np.float32) if parts else None

    def _cells_of(self, view: ReferenceView) -> np.ndarray | None:
        """A stored photo's unit cells at every reference side; None when the photo is unreadable."""
        try:
            image = read_image_file(view.image_path).image
            pixels = crop(image, view.box).pixels if view.box else image.pixels
        except EdgeRapError as e:  # a stored photo gone missing, or its box outside it: that view cannot be placed
            log.warning("reference photo unreadable, not used for placing: %s", e)
            return None
        return reference_cells(self.embedder, pixels)
