"""Wiring: builds the embedder, detector, face models, memory and retriever that a command needs from the settings."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from edge_rap.config import Settings
from edge_rap.errors import EdgeRapError, NeedsReindex
from edge_rap.memory.memory import Memory
from edge_rap.memory.store import Store
from edge_rap.models.cache import DEFAULT_EMBEDDERS, Manifest, ModelCache
from edge_rap.retrieve.negatives import NegativeBank
from edge_rap.perceive.detect import Detector
from edge_rap.perceive.embed import ImageEmbedder, OnnxImageEmbedder
from edge_rap.perceive.faces import FACE_SPACE, FaceModels
from edge_rap.retrieve import RetrievalPolicy, Retriever
from edge_rap.wording import counted, noun

log = logging.getLogger(__name__)


def open_embedder(settings: Settings, prepare: bool = False) -> ImageEmbedder:
    """The profile's embedder. With `prepare` (the first write, `make demo`), a default embedder not yet
    exported is exported first, under the cache's lock; otherwise a missing one is a one-line error."""
    cache = ModelCache(settings.models)
    if prepare:
        cache.ensure_default(settings.embedder)
    profile = settings.profile
    return OnnxImageEmbedder(embedder_manifest(settings), profile.provider, batch=profile.embed_batch,
                             threads=profile.threads)


def embedder_manifest(settings: Settings) -> Manifest:
    """The profile's embedder's manifest, found as every command finds it: one missing, a detector or the face
    model's folder given as --embedder is a one-line error (a detector's said so, not "has no image file")."""
    manifest = ModelCache(settings.models).manifest(settings.embedder, role="image_embedder")
    manifest.require_role("image_embedder")
    return manifest


def check_embedder(settings: Settings, prepare: bool = False) -> None:
    """Refuse an embedder that cannot be used before a long-running command binds its port or gives the memory a
    token, without loading it: `serve` opens the embedder when a request first needs it (metadata requests need
    none), and served on, answering every upload and recognition with this error. `prepare`: a default embedder
    not exported yet is not refused, since that first use exports it."""
    if not (prepare and settings.embedder in DEFAULT_EMBEDDERS):
        embedder_manifest(settings)


def open_detector(settings: Settings, name: str) -> Detector:
    """A detector from the model cache: OWL-ViT/OWLv2 (tools/export_detector.py) or a YOLO-style export."""
    manifest = ModelCache(settings.models).manifest(name, role="detector")
    if manifest.output.get("format") == "owlvit":
        from edge_rap.perceive.owl import OwlOnnxDetector

        return OwlOnnxDetector(manifest, settings.profile.provider, threads=settings.profile.threads)
    from edge_rap.perceive.detect import YoloOnnxDetector

    return YoloOnnxDetector(manifest, settings.profile.provider, threads=settings.profile.threads)


def face_loader(settings: Settings) -> Callable[[], FaceModels | None]:
    """Loads the face models when first needed; where they are not installed, people are remembered and
    recognised by their whole photo only, and the log says so."""

    def load() -> FaceModels | None:
        from edge_rap.perceive.faces import open_face_models

        try:
            return open_face_models(settings.profile.provider, settings.profile.min_face, settings.profile.threads,
                                    settings.models)
        except EdgeRapError as e:
            log.warning("faces unavailable (%s): people are matched by their whole photo only (once the face models "
                        "are installed, `edge-rap edit NAME --category person` registers a person's face)", e)
            return None

    return load


def open_memory(settings: Settings, embedder: ImageEmbedder | None = None, memory: Path | None = None,
                readonly: bool = False) -> Memory:
    """The memory for writing, or for reading only (works on a read-only folder, and reads an absent one as empty)."""
    embedder = embedder or open_embedder(settings, prepare=not readonly)
    return Memory(memory or settings.memory, embedder, NegativeBank(embedder, settings.models / "negatives"), readonly,
                  faces=face_loader(settings))


def check_embedder_matches(memory: Memory, settings: Settings) -> None:
    """A memory whose vectors another embedder made has none in this embedder's space: recognising with it would
    find nothing, silently. (Same space, other model: the Retriever's own fingerprint check refuses it.)"""
    space = memory.embedder.space.name
    refuse_another_embedders(memory.store, space, settings.embedder)
    unseen = memory.store.photos_without(space) if memory.store.space(space) is not None else 0
    if unseen:  # remembered with another embedder (spaces never mix): this one cannot see them; said
        them = noun(unseen, "it", "them")
        log.warning("%s remembered with another embedder and %s no %s vectors, so this recognition cannot "
                    "see %s: `edge-rap reindex --embedder %s` brings %s in",
                    counted(unseen, "photo was", "photos were"), noun(unseen, "has", "have"),
                    memory.embedder.space.model, them, settings.embedder, them)
    lost = memory.store.unrecognisable()  # no reindex could read their photos: another one would not either
    if lost:
        log.warning("%s cannot be recognised: the last reindex could read none of their photos (missing or "
                    "damaged); give each a photo with `edge-rap add-views NAME PHOTO`",
                    ", ".join(f"<{n}>" for n in lost))


def refuse_another_embedders(store: Store, space: str, embedder: str) -> None:
    """Refuse a memory that has no vectors in `space` (the embedder `embedder`'s) but has another embedder's."""
    if store.space(space) is not None:
        return
    others = [name for name in store.space_names() if name != FACE_SPACE]
    if others:
        model = store.space(others[0])[0]
        raise NeedsReindex(f"the memory was made with {model}, not {embedder}: run `edge-rap reindex "
                           f"--embedder {embedder}` to re-embed it, or use --embedder {model}", store.root)


def retrieval_policy(settings: Settings) -> RetrievalPolicy:
    """The device profile's retrieval settings (device_configs/*.toml, [retrieve])."""
    return RetrievalPolicy(top_k=settings.profile.top_k, max_candidates=settings.profile.max_candidates)


def open_retriever(memory: Memory, settings: Settings) -> Retriever:
    check_embedder_matches(memory, settings)
    return Retriever(memory.store, memory.embedder, retrieval_policy(settings), faces=lambda: memory.faces)
