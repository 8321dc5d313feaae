"""The default embedder: exported once, int8 close to fp32 and torch, normalised, batch-independent."""

from __future__ import annotations

import numpy as np
import pytest

from edge_rap.errors import EdgeRapError
from edge_rap.modelcache import Manifest, ModelCache
from edge_rap.perceive.embed import OnnxImageEmbedder
from edge_rap.runtime import choose_providers
from photos import photo

NAMES = ("chelsea", "astronaut", "coffee", "rocket", "brick")


def test_vectors_are_unit_length_and_independent_of_batching(embedder):
    images = [photo(n) for n in NAMES]
    together = embedder.embed(images)
    alone = np.concatenate([embedder.embed([img]) for img in images])
    assert together.shape == (5, 1280) and together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert np.allclose(together, alone, atol=1e-4)


def test_int8_agrees_with_fp32_and_with_the_torch_model(model_cache, embedder):
    from edge_rap.export.efficientnet import TorchEmbedder

    fp32 = OnnxImageEmbedder(ModelCache(model_cache).manifest("efficientnet-lite0-fp32"), "cpu")
    images = [photo(n) for n in NAMES]
    torch_vectors = TorchEmbedder().embed(images)
    assert np.allclose(fp32.embed(images), torch_vectors, atol=1e-3)  # the export is faithful
    cos = np.sum(embedder.embed(images) * torch_vectors, axis=1)
    assert cos.min() > 0.97  # quantisation moves vectors only a little
    assert embedder.space.name != fp32.space.name  # and so they live in different spaces


def test_manifest_records_files_calibration_and_licence(model_cache):
    manifest = ModelCache(model_cache).manifest("efficientnet-lite0-int8")
    manifest.verify()
    assert manifest.output == {"kind": "feature_map", "pooling": "gem", "gem_p": 3.0, "dim": 1280}
    assert "Apache" in manifest.licence and manifest.threshold is not None
    assert len(manifest.calibration["bank"]) >= 15


def test_a_tampered_model_file_is_refused(model_cache, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(model_cache / "efficientnet-lite0-int8", copy)
    onnx = next(copy.glob("*.onnx"))
    onnx.write_bytes(onnx.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(EdgeRapError, match="sha256"):
        Manifest.load(copy).verify()


def test_unknown_model_names_say_what_is_there(model_cache):
    with pytest.raises(EdgeRapError, match="efficientnet-lite0-int8"):
        ModelCache(model_cache).manifest("no-such-model")


def test_provider_choice_prefers_accelerators_and_always_has_the_cpu():
    assert choose_providers(["CUDAExecutionProvider", "CPUExecutionProvider"]) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers(["CUDAExecutionProvider", "CPUExecutionProvider"], "cpu") == ["CPUExecutionProvider"]
    with pytest.raises(EdgeRapError, match="not in this onnxruntime build"):
        choose_providers(["CPUExecutionProvider"], "tensorrt")
