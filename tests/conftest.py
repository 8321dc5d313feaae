"""Shared fixtures: one model cache per test session (the default embedder is exported once)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_rap.config import Profile, Settings


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def embedder(model_cache):
    from edge_rap.modelcache import ModelCache
    from edge_rap.perceive.embed import OnnxImageEmbedder

    return OnnxImageEmbedder(ModelCache(model_cache).manifest("efficientnet-lite0-int8"), "cpu")


@pytest.fixture
def settings(tmp_path, model_cache, monkeypatch) -> Settings:
    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EDGE_RAP_MODELS", str(model_cache))
    return Settings(home=tmp_path / "home", memory=tmp_path / "memory", models=model_cache, profile=Profile())


def write_image(path: Path, pixels: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(pixels).save(path)
    return path
