"""TensorRT's engine cache: each model's engine is built once per model, onnxruntime and GPU, not at every start.

Without one, a Jetson builds every model's engine again each time the daemon starts (minutes each: the embedder at
the start, the face models at the first person seen). Each model's engines have a folder of their own in the model
cache, per onnxruntime version (an engine is that build's): the cache is what the service may write (a model shipped
inside a package, MTCNN's, is in a read-only site-packages), and a folder per model means one model's stale engine
clears no other's. TensorRT names an engine after the model's file name and graph, not its weights, so the folder
remembers which file it was built from (size, mtime) and is emptied for another: a model exported again must not run
on the old one's engine. One that TensorRT can no longer read (another JetPack, another GPU) makes the session fail:
the engines are set aside and built again once, deleted where that build works and put back where it fails too (the
GPU's memory taken: the engines were fine), and a model TensorRT cannot load at all runs on the next provider, so
that a TensorRT problem never costs the device a model that CUDA or the CPU can run.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

from edge_rap.config import model_cache

log = logging.getLogger(__name__)

TENSORRT = "TensorrtExecutionProvider"
#: In a model's engine folder: the model file its engines were built from.
BUILT_FROM = "built-from"


def engine_cache(model: Path) -> Path:
    """The folder of `model`'s TensorRT engines: its own, in the model cache."""
    import onnxruntime as ort

    model = model.resolve()
    where = hashlib.sha256(str(model).encode()).hexdigest()[:12]  # (two models of one name in different folders)
    return model_cache() / "tensorrt" / f"onnxruntime-{ort.__version__}" / f"{model.stem}-{where}"


def with_engine_cache(providers: list[str], model: Path) -> list:
    """`providers` as onnxruntime takes them: TensorRT's with its engine cache, where its folder can be written (a
    model cache on a read-only drive: TensorRT without one, said)."""
    if TENSORRT not in providers:
        return providers
    folder = engine_cache(model)
    try:
        _for_this_file(folder, model)
    except OSError as e:
        log.warning("%s: no TensorRT engine cache (%s: %s); its engine is built at every start", model.name, folder,
                    e.strerror or e)
        return providers
    options = {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(folder)}
    return [(p, options) if p == TENSORRT else p for p in providers]


def _for_this_file(folder: Path, model: Path) -> None:
    """`folder`, kept where its engines were built from `model`'s file as it is (read, even on a read-only drive),
    else emptied and made for it (which proves it writable: TensorRT would not say so)."""
    stat = model.stat()
    built_from = f"{stat.st_size} {stat.st_mtime_ns}\n"
    try:
        if (folder / BUILT_FROM).read_text() == built_from:
            return
    except OSError:
        pass
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / BUILT_FROM).write_text(built_from)
    _drop_other_versions(folder.parent)


def _drop_other_versions(version: Path) -> None:
    """The engines of the onnxruntime versions before this one (an upgrade's leftovers, which no build reads; each
    holds its model's weights), deleted as this version builds its first."""
    for other in version.parent.glob("onnxruntime-*"):
        if other != version and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)


def set_engines_aside(model: Path) -> Path | None:
    """Move `model`'s cached engines out of the way of a fresh build; where they went, or None where there are none
    (or they cannot be moved: a read-only cache)."""
    folder = engine_cache(model)
    try:
        if not any(p.name != BUILT_FROM for p in folder.iterdir()):
            return None
        aside = folder.with_name(folder.name + ".aside")
        shutil.rmtree(aside, ignore_errors=True)
        folder.rename(aside)
    except OSError:
        return None
    return aside


def put_engines_back(aside: Path, model: Path) -> None:
    """The engines set aside back in place: a fresh build failed too, so they were not the trouble (the GPU's memory
    taken, say), and the next start reads them rather than building them for minutes."""
    folder = engine_cache(model)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        aside.rename(folder)
    except OSError:
        shutil.rmtree(aside, ignore_errors=True)
