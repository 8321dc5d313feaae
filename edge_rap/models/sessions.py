"""The one place that opens ONNX Runtime sessions and chooses their execution providers."""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from edge_rap.errors import EdgeRapError
from edge_rap.heap import steady_malloc
from edge_rap.liveness import long_call
from edge_rap.models.tensorrt import TENSORRT, put_engines_back, set_engines_aside, with_engine_cache
from edge_rap.output import quoted

log = logging.getLogger(__name__)

#: Preference order: TensorRT, then CUDA, then the CPU, which is always there.
PREFERRED_PROVIDERS = (TENSORRT, "CUDAExecutionProvider", "CPUExecutionProvider")


class ArenaTrim:
    """When the process's shared CPU arena hands its free regions back to the system: at the end of a run,
    at most once per `interval_s`. Untrimmed, the arena grows to the largest workload seen (a crop batch, a
    face pyramid, two concepts at once) and keeps it for good: a step in RSS at each new peak of a
    months-long process. Trimming after every run cost a fifth more time per run (the freed memory is
    faulted in again); every few seconds costs a few per cent at most (docs/BENCHMARKS.md, resident memory).
    A static scene's forced re-checks (every few seconds) are runs too, so an idle daemon is trimmed; a
    process that stops running models (`serve` between requests) keeps its last peak until its next run."""

    def __init__(self, interval_s: float = 5.0, clock=time.monotonic):
        self.interval_s = interval_s
        self.clock = clock
        self._last = clock()
        self._lock = threading.Lock()
        self._shrink = None

    def options(self):
        """RunOptions that shrink the CPU arena when a trim is due, else None."""
        with self._lock:
            now = self.clock()
            if now - self._last < self.interval_s:
                return None
            self._last = now
        if self._shrink is None:
            import onnxruntime as ort

            shrink = ort.RunOptions()
            shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
            self._shrink = shrink
        return self._shrink


#: One for the process, as the arena it trims is.
ARENA_TRIM = ArenaTrim()


@dataclass(frozen=True)
class Session:
    """An ONNX Runtime session and the provider that actually runs it."""

    inner: object
    provider: str
    path: Path
    trim: ArenaTrim = field(default=ARENA_TRIM, repr=False)

    def run(self, feeds: dict) -> list:
        return self.inner.run(None, feeds, self.trim.options())

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inner.get_inputs()]


SHORT_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": TENSORRT}


#: The wanted providers this onnxruntime lacks that were said: once a process, not at each of the models a command
#: loads (`ask --image` on x86-cuda's profile without CUDA said each of two five times, for the embedder and faces).
_MISSING_SAID: set[str] = set()


def choose_providers(available: list[str], wanted: str | tuple[str, ...] = "auto") -> list[str]:
    """Providers to try in order: "auto" = the best available first; else the wanted ones this onnxruntime
    has, in their order, each missing one logged as a warning once (never an error: the CPU is always last)."""
    if wanted == "auto":
        return [p for p in PREFERRED_PROVIDERS if p in available] or ["CPUExecutionProvider"]
    chosen = []
    for short in (wanted,) if isinstance(wanted, str) else wanted:
        name = SHORT_NAMES.get(short, short)
        if name in available:
            chosen.append(name)
        elif short not in _MISSING_SAID:
            _MISSING_SAID.add(short)
            log.warning("execution provider %s is not in this onnxruntime build (have: %s): falling back",
                        quoted(short), ", ".join(available))
    return [p for p in chosen if p != "CPUExecutionProvider"] + ["CPUExecutionProvider"]


_arena_lock = threading.Lock()
_arena_shared: bool | None = None


def share_cpu_arena() -> bool:
    """Register one CPU arena for every session of the process, growing by exactly what is asked
    (kSameAsRequested), so that a trim (ArenaTrim) can free whole regions: with the default power-of-two
    growth each session keeps its own arena and its weights share regions with its activations, which then
    never come free. Whether sessions can use it: an onnxruntime that refuses (an old or unusual build) keeps
    its per-session arenas, with a warning."""
    global _arena_shared
    import onnxruntime as ort

    with _arena_lock:
        if _arena_shared is None:
            steady_malloc()
            try:
                cpu = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
                same_as_requested = 1
                ort.create_and_register_allocator(cpu, ort.OrtArenaCfg(0, same_as_requested, -1, -1))
                _arena_shared = True
            except Exception as e:  # AttributeError on old builds, onnxruntime's own Fail otherwise
                log.warning("onnxruntime %s: no shared CPU arena (%s); each model keeps its own", ort.__version__,
                            str(e).splitlines()[0][:120])
                _arena_shared = False
        return _arena_shared


def load_failure(error: Exception) -> str:
    """onnxruntime's reason for refusing a model, without the path and its own source file and C++ function
    before it: cut to a line, those left out the reason itself ("Load model from /home/... failed:/onnxruntime_src/
    ...model.cc:181 onnxruntime::Model::Model(onnx::ModelProto&&, ...", not "Unsupported model IR version: 14")."""
    line = (str(error).splitlines() or [type(error).__name__])[0]
    line = re.sub(r"^.*?Load model from .*? failed:", "", line)
    line = re.sub(r"^/onnxruntime_src/\S+ [^(]*\([^)]*\) ", "", line)
    return line.strip()[:200]


def _create(path: Path, options, providers: list):
    import onnxruntime as ort

    with long_call(f"loading {path.name}"):  # (TensorRT builds an engine at a first load: minutes on a Jetson)
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)


def _on_tensorrt(path: Path, options, providers: list[str]):
    """A session with TensorRT first and its engine cache; built afresh once where it failed with cached engines
    (another TensorRT's or GPU's); None, said, where TensorRT cannot load the model at all."""
    try:
        return _create(path, options, with_engine_cache(providers, path))
    except Exception as e:
        failure = e
    aside = set_engines_aside(path)
    if aside is not None:
        try:
            session = _create(path, options, with_engine_cache(providers, path))
        except Exception as e:
            put_engines_back(aside, path)
            failure = e
        else:
            shutil.rmtree(aside, ignore_errors=True)
            log.warning("%s: TensorRT could not use its cached engine (%s); built it again", path.name,
                        load_failure(failure))
            return session
    log.warning("%s: TensorRT could not load it (%s); trying %s", path.name, load_failure(failure),
                ", ".join(p for p in providers if p != TENSORRT))
    return None


def open_session(path: Path, provider: str | tuple[str, ...] = "auto", threads: int = 0) -> Session:
    """Open an ONNX model with the best provider; log the choice and any fallback to the CPU."""
    import onnxruntime as ort

    providers = choose_providers(ort.get_available_providers(), provider or "auto")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No busy-waiting between runs: on a small device the camera loop and the VLM need those cycles.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # No memory pattern: onnxruntime keeps one planned block per distinct set of input shapes, and a camera
    # loop feeds many (crop batches, face pyramids, feature maps): the daemon's RSS grew 31 MB in 4 minutes
    # with it and stayed flat without it, at the same speed (docs/BENCHMARKS.md).
    options.enable_mem_pattern = False
    if share_cpu_arena():
        options.add_session_config_entry("session.use_env_allocators", "1")
    if threads:
        options.intra_op_num_threads = threads
    inner = _on_tensorrt(path, options, providers) if TENSORRT in providers else None
    if inner is None:
        providers = [p for p in providers if p != TENSORRT]
        try:
            inner = _create(path, options, providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise EdgeRapError(f"{path}: cannot load ONNX model ({load_failure(e)})") from None
    used = inner.get_providers()[0]
    if used != providers[0]:
        log.warning("%s: %s unavailable, fell back to %s", path.name, providers[0], used)
    else:
        log.info("%s: running on %s", path.name, used)
    # Without the shared arena each session trims its own: one trim for all would mostly land on the
    # session that runs most often (the voice loop's VAD).
    return Session(inner, used, path, ARENA_TRIM if _arena_shared else ArenaTrim())
