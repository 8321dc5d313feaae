"""TensorRT's engine cache: each model's engine is built once per model, onnxruntime and GPU, not at every start.

Without one, a Jetson builds every model's engine again each time the daemon starts (minutes each: the embedder at
the start, the face models at the first person seen). The engines live beside the model, in a folder per onnxruntime
version (an engine is that build's). One that TensorRT can no longer read (another JetPack, another GPU) makes the
session fail: the cache is cleared and built again once, and a model TensorRT cannot load at all runs on the next
provider, so that a TensorRT problem never costs the device a model that CUDA or the CPU can run.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

TENSORRT = "TensorrtExecutionProvider"


def engine_cache(model: Path) -> Path:
    """The folder of `model`'s TensorRT engines."""
    import onnxruntime as ort

    return model.parent / "tensorrt" / f"onnxruntime-{ort.__version__}"


def with_engine_cache(providers: list[str], model: Path) -> list:
    """`providers` as onnxruntime takes them: TensorRT's with its engine cache, where its folder can be made (a
    model cache on a read-only drive: TensorRT without one, said)."""
    if TENSORRT not in providers:
        return providers
    folder = engine_cache(model)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        log.warning("%s: no TensorRT engine cache (%s: %s); its engine is built at every start", model.name, folder,
                    e.strerror or e)
        return providers
    options = {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(folder)}
    return [(p, options) if p == TENSORRT else p for p in providers]


def clear_engine_cache(model: Path) -> bool:
    """Delete `model`'s cached engines (those of the models beside it too: they are built again); whether there
    were any."""
    folder = engine_cache(model)
    had = folder.is_dir() and any(folder.iterdir())
    shutil.rmtree(folder, ignore_errors=True)
    return had
