"""CLIP through the real export path, with a tiny randomly initialised open_clip config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_rap.errors import EdgeRapError
from photos import photo, save_photo

open_clip = pytest.importorskip("open_clip")
CONFIG = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from edge_rap.export.clip import export_clip

    return export_clip("tiny-clip", None, tmp_path_factory.mktemp("clip"), name="tiny", config=CONFIG)


def test_export_writes_fp32_and_int8_encoders_that_agree(tiny_clip):
    from edge_rap.models.cache import Manifest
    from edge_rap.perceive.embed import OnnxImageEmbedder, OnnxTextEmbedder

    manifest = Manifest.load(tiny_clip.fp32)
    manifest.verify()
    assert manifest.output == {"kind": "embedding", "dim": 32} and manifest.text["context_length"] == 16
    image_embedder, text_embedder = OnnxImageEmbedder(manifest, "cpu"), OnnxTextEmbedder(manifest, "cpu")
    assert text_embedder.space == image_embedder.space  # text queries search the image space

    images = [photo(n) for n in ("chelsea", "coffee", "rocket")]
    fp32 = image_embedder.embed(images)
    int8 = OnnxImageEmbedder(Manifest.load(tiny_clip.int8), "cpu").embed(images)
    assert fp32.shape == (3, 32) and np.allclose(np.linalg.norm(fp32, axis=1), 1, atol=1e-5)
    assert np.sum(fp32 * int8, axis=1).min() > 0.9
    texts = text_embedder.embed_text(["a photo of a cat", "a red rocket"])
    assert texts.shape == (2, 32) and not np.allclose(texts[0], texts[1])
    assert Manifest.load(tiny_clip.int8).threshold is not None  # calibrated on the sample photos too


def test_export_matches_torch_on_the_same_weights(tmp_path):
    """Export a model whose weights we keep, then compare ONNX with torch on the same input."""
    import torch

    from edge_rap.export.clip import export_clip
    from edge_rap.models.cache import Manifest
    from edge_rap.perceive.embed import OnnxTextEmbedder

    torch.manual_seed(0)
    out = export_clip("tiny-clip", None, tmp_path, name="seeded", config=CONFIG, calibrate=False)
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-clip", pretrained=None).eval()
    tokens = open_clip.tokenizer.SimpleTokenizer(context_length=16)(["a photo of a dog"])
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1).numpy()
    got = OnnxTextEmbedder(Manifest.load(out.fp32), "cpu").embed_text(["a photo of a dog"])
    assert np.allclose(got, expected, atol=1e-4)


def test_selecting_clip_is_a_choice_and_spaces_never_mix(tiny_clip, tmp_path, settings, embedder):
    from edge_rap.app import open_memory
    from edge_rap.cli import main
    from edge_rap.export.clip import export_clip
    from edge_rap.perceive.embed import OnnxImageEmbedder
    from edge_rap.models.cache import Manifest

    ref = save_photo(tmp_path, "chelsea")
    memory = tmp_path / "mem"
    assert main(["remember", "cat", str(ref), "--memory", str(memory), "--embedder", str(tiny_clip.int8)]) == 0
    assert main(["remember", "mug", str(save_photo(tmp_path, "coffee")), "--memory", str(memory)]) == 0  # default space
    spaces = open_memory(settings, embedder, memory).store.space_names()
    assert spaces == sorted(["efficientnet-lite0-int8", "tiny-int8"])
    # Same space name, other weights: refused, with the way out named.
    other = export_clip("tiny-clip", None, tmp_path / "other", name="tiny", config=CONFIG, calibrate=False)
    clip_memory = open_memory(settings, OnnxImageEmbedder(Manifest.load(other.int8), "cpu"), memory)
    with pytest.raises(EdgeRapError, match="reindex"):
        clip_memory.remember("dog", [ref])
    assert clip_memory.reindex().views == 2  # re-embeds both stored photos into the new weights' space
    assert {c.name for c in clip_memory.concepts()} == {"cat", "mug"}


def test_offline_pretrained_download_gives_one_clear_error(tmp_path, monkeypatch):
    from edge_rap.export.clip import export_clip

    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # for anything that imports huggingface_hub from here on ...
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # ... which read it once at import
    with pytest.raises(EdgeRapError, match="model hub is reachable"):
        export_clip("ViT-B-32", "laion2b_s34b_b79k", tmp_path)
