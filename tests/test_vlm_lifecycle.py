"""LlamaVlm frees what it allocated: on every failed init (a projector without vision, a chat template that
cannot be built) and on close(), which may be called twice. Uses the tiny random GGUF + mmproj."""

from __future__ import annotations


import pytest

llama_cpp = pytest.importorskip("llama_cpp")
pytest.importorskip("gguf")

import llama_cpp.mtmd_cpp as mtmd  # noqa: E402

from edge_rap.errors import EdgeRapError  # noqa: E402
from edge_rap.generate import vlm as vlm_module  # noqa: E402
from edge_rap.generate.vlm import LlamaVlm, VlmSpec  # noqa: E402




@pytest.fixture
def freed(monkeypatch) -> dict[str, int]:
    """How often the model was closed and projector contexts were freed. Llama.__del__ closes the model again
    when it is collected, so a model counts as freed once closed at least once while the error is held."""
    counts = {"llm": 0, "mtmd": 0}
    close, mtmd_free = llama_cpp.Llama.close, mtmd.mtmd_free

    def counted_close(self):
        counts["llm"] += 1
        close(self)

    def counted_free(ctx):
        counts["mtmd"] += 1
        mtmd_free(ctx)

    monkeypatch.setattr(llama_cpp.Llama, "close", counted_close)
    monkeypatch.setattr(mtmd, "mtmd_free", counted_free)
    return counts


def test_a_projector_without_vision_frees_its_context_and_the_model(tiny, freed, monkeypatch):
    monkeypatch.setattr(mtmd, "mtmd_support_vision", lambda ctx: False)
    with pytest.raises(EdgeRapError, match="no vision encoder") as error:  # holds the half-made object
        LlamaVlm(VlmSpec(tiny[0], tiny[1], "tiny", n_ctx=512))
    assert freed["llm"] >= 1 and freed["mtmd"] == 1, error


def test_a_template_that_cannot_be_built_frees_everything(tiny, freed, monkeypatch):
    def broken(*args, **kwargs):
        raise EdgeRapError("the chat template does not render")

    monkeypatch.setattr(vlm_module.ChatTemplate, "for_model", broken)
    with pytest.raises(EdgeRapError, match="does not render") as error:
        LlamaVlm(VlmSpec(tiny[0], tiny[1], "tiny", n_ctx=512))
    assert freed["llm"] >= 1 and freed["mtmd"] == 1, error


def test_close_frees_once_and_may_be_called_again(tiny, freed):
    vlm = LlamaVlm(VlmSpec(tiny[0], tiny[1], "tiny", n_ctx=512))
    vlm.close()
    vlm.close()
    assert freed["llm"] >= 1 and freed["mtmd"] == 1
    with pytest.raises(EdgeRapError, match="closed"):
        vlm.generate(None)
