"""A tiny stand-in embedder: fast enough for tests of the memory's plumbing (threads, processes, files)
without loading a model. A photo's vector is its 8 x 8 thumbnail, centred and normalised."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edge_rap.memory.memory import Memory
from edge_rap.memory.store import Store
from edge_rap.perceive.embed import SpaceInfo, normalise


class FakeEmbedder:
    space = SpaceInfo("fake", "fake-thumbnail", "f" * 64, 192)

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        from PIL import Image

        thumbs = [np.asarray(Image.fromarray(p).resize((8, 8), Image.BILINEAR), np.float32).ravel() for p in images]
        return normalise([t - t.mean() for t in thumbs])


def fake_memory(root: Path, readonly: bool = False, negatives=None) -> Memory:
    return Memory(root, FakeEmbedder(), negatives, readonly=readonly)


def top_concept(memory: Memory, photo: Path) -> str | None:
    """The name of the concept whose vectors are nearest to the photo's own (whole-photo) vector."""
    from edge_rap.perceive.images import read_image_file

    query = memory.embedder.embed([read_image_file(photo).image.pixels])[0]
    hits = memory.view().search(query, 10)
    if not hits:
        return None
    return memory.store.concepts_by_id([hits[0].concept_id])[hits[0].concept_id].name


def agree_with_replaced_photo(store: Store, photo: Path) -> None:
    """A stored photo replaced by another (re-encoded, restored from elsewhere) with the database made to agree:
    its new bytes' sha256 recorded as its views' own, so that a reindex meets its boxes, not the changed bytes."""
    with store.transaction() as db:
        db.execute("UPDATE views SET image_sha256 = ? WHERE image_file = ?",
                   (hashlib.sha256(photo.read_bytes()).hexdigest(), f"{photo.parent.name}/{photo.name}"))
