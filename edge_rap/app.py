"""Wiring: builds the embedder, memory and retriever that a command needs from the settings."""

from __future__ import annotations

from pathlib import Path

from edge_rap.config import Settings
from edge_rap.memory.memory import Memory
from edge_rap.modelcache import ModelCache
from edge_rap.negatives import NegativeBank
from edge_rap.perceive.embed import ImageEmbedder, OnnxImageEmbedder
from edge_rap.retrieve import RetrievalPolicy, Retriever


def open_embedder(settings: Settings) -> ImageEmbedder:
    manifest = ModelCache(settings.models).manifest(settings.embedder)
    return OnnxImageEmbedder(manifest, settings.profile.provider)


def open_memory(settings: Settings, embedder: ImageEmbedder | None = None, memory: Path | None = None,
                readonly: bool = False) -> Memory:
    """The memory for writing, or for reading only (works on a read-only folder, and reads an absent one as empty)."""
    embedder = embedder or open_embedder(settings)
    return Memory(memory or settings.memory, embedder, NegativeBank(embedder, settings.models / "negatives"), readonly)


def open_retriever(memory: Memory, settings: Settings) -> Retriever:
    return Retriever(memory.store, memory.embedder, RetrievalPolicy(top_k=settings.profile.top_k))
