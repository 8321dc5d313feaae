"""The one place that opens ONNX Runtime sessions and chooses their execution providers."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from edge_rap.errors import EdgeRapError

log = logging.getLogger(__name__)

#: Preference order: TensorRT, then CUDA, then the CPU, which is always there.
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


@dataclass(frozen=True)
class Session:
    """An ONNX Runtime session and the provider that actually runs it."""

    inner: object
    provider: str
    path: Path

    def run(self, feeds: dict) -> list:
        return self.inner.run(None, feeds)

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inner.get_inputs()]


SHORT_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


def choose_providers(available: list[str], wanted: str | tuple[str, ...] = "auto") -> list[str]:
    """Providers to try in order: "auto" = the best available first; else the wanted ones this onnxruntime
    has, in their order, each missing one logged as a warning (never an error: the CPU is always last)."""
    if wanted == "auto":
        return [p for p in PREFERRED_PROVIDERS if p in available] or ["CPUExecutionProvider"]
    chosen = []
    for short in (wanted,) if isinstance(wanted, str) else wanted:
        name = SHORT_NAMES.get(short, short)
        if name in available:
            chosen.append(name)
        else:
            log.warning("execution provider %r is not in this onnxruntime build (have: %s): falling back", short,
                        ", ".join(available))
    return [p for p in chosen if p != "CPUExecutionProvider"] + ["CPUExecutionProvider"]


def open_session(path: Path, provider: str | tuple[str, ...] = "auto", threads: int = 0) -> Session:
    """Open an ONNX model with the best provider; log the choice and any fallback to the CPU."""
    import onnxruntime as ort

    providers = choose_providers(ort.get_available_providers(), provider or os.environ.get("EDGE_RAP_PROVIDER", "auto"))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No busy-waiting between runs: on a small device the camera loop and the VLM need those cycles.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # No memory pattern: onnxruntime keeps one planned block per distinct set of input shapes, and a camera
    # loop feeds many (crop batches, face pyramids, feature maps): the daemon's RSS grew 31 MB in 4 minutes
    # with it and stayed flat without it, at the same speed (docs/BENCHMARKS.md).
    options.enable_mem_pattern = False
    if threads:
        options.intra_op_num_threads = threads
    try:
        inner = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        raise EdgeRapError(f"{path}: cannot load ONNX model ({str(e).splitlines()[0][:160]})") from None
    used = inner.get_providers()[0]
    if used != providers[0]:
        log.warning("%s: %s unavailable, fell back to %s", path.name, providers[0], used)
    else:
        log.info("%s: running on %s", path.name, used)
    return Session(inner, used, path)
