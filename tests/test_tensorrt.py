"""TensorRT's engine cache and its fallbacks, on an onnxruntime that pretends to have TensorRT and CUDA (this machine
has neither: what TensorRT itself does with the cache is not tested here)."""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort
import pytest

from edge_rap.errors import EdgeRapError
from edge_rap.models.sessions import open_session
from edge_rap.models.tensorrt import TENSORRT, engine_cache

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


class FakeSession:
    """Records what each session was asked for; fails where `refuses` says so."""

    asked: list[list] = []
    refuses = staticmethod(lambda providers: None)  # a reason to fail, or None

    def __init__(self, path: str, sess_options=None, providers=()):
        FakeSession.asked.append(list(providers))
        reason = FakeSession.refuses(list(providers))
        if reason:
            raise RuntimeError(reason)
        self.providers = [p[0] if isinstance(p, tuple) else p for p in providers]

    def get_providers(self) -> list[str]:
        return self.providers


@pytest.fixture
def model(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(ort, "get_available_providers", lambda: [TENSORRT, CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", FakeSession)
    monkeypatch.setattr(FakeSession, "asked", [])
    path = tmp_path / "models" / "embedder" / "model.onnx"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"onnx")
    return path


def test_tensorrt_keeps_its_engines_beside_the_model(model):
    # every start of the daemon built every engine again: minutes per model on a Jetson
    session = open_session(model)
    assert session.provider == TENSORRT
    (first, options), *rest = FakeSession.asked[0]
    folder = model.parent / "tensorrt" / f"onnxruntime-{ort.__version__}"
    assert first == TENSORRT and rest == [CUDA, CPU]
    assert options == {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(folder)}
    assert folder.is_dir() and engine_cache(model) == folder


def test_an_engine_tensorrt_cannot_read_is_built_again(model, monkeypatch, caplog):
    stale = engine_cache(model) / "TensorrtExecutionProvider_TRTKernel_graph_1.engine"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an engine of another TensorRT")
    monkeypatch.setattr(FakeSession, "refuses",
                        lambda providers: "could not deserialize engine" if stale.exists() else None)
    with caplog.at_level(logging.WARNING):
        assert open_session(model).provider == TENSORRT
    assert not stale.exists() and len(FakeSession.asked) == 2
    assert "could not use its cached engine (could not deserialize engine); building it again" in caplog.text


def test_a_model_tensorrt_cannot_load_runs_on_the_next_provider(model, monkeypatch, caplog):
    # a model TensorRT refused was refused altogether: the device lost a model CUDA or the CPU could run
    monkeypatch.setattr(FakeSession, "refuses",
                        lambda providers: "out of memory building the engine" if TENSORRT in str(providers) else None)
    with caplog.at_level(logging.WARNING):
        session = open_session(model)
    assert session.provider == CUDA and FakeSession.asked[-1] == [CUDA, CPU]
    assert len(FakeSession.asked) == 2  # no cache to clear: not tried twice
    assert "TensorRT could not load it (out of memory building the engine); trying CUDAExecutionProvider" in caplog.text


def test_a_model_no_provider_can_load_is_one_error(model, monkeypatch):
    monkeypatch.setattr(FakeSession, "refuses", lambda providers: "Unsupported model IR version: 14")
    with pytest.raises(EdgeRapError, match="cannot load ONNX model \\(Unsupported model IR version: 14\\)"):
        open_session(model)


def test_a_model_folder_that_cannot_take_a_cache_still_runs_on_tensorrt(model, caplog):
    (model.parent / "tensorrt").write_text("a file where the cache's folder goes")
    with caplog.at_level(logging.WARNING):
        assert open_session(model).provider == TENSORRT
    assert FakeSession.asked == [[TENSORRT, CUDA, CPU]]
    assert "no TensorRT engine cache" in caplog.text


def test_cpu_sessions_are_given_no_tensorrt_options(model):
    assert open_session(model, "cpu").provider == CPU
    assert FakeSession.asked == [[CPU]] and not (model.parent / "tensorrt").exists()
