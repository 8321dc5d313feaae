"""The VLM backend: a GGUF language model + mmproj run by llama.cpp's multimodal library (mtmd) through
llama-cpp-python, on CUDA when the build and the device profile allow it, else on the CPU.

One generation: restore (or compute) the state after the prompt's prefix (system + references), evaluate
the suffix (query image + question), then sample tokens one by one and hand each piece of text to a
callback as it is produced. Reference images go through the encoder cache; the prefix through the prefix
cache (cache.py). Families mtmd supports: Gemma 3, Qwen2/2.5-VL, SmolVLM/Idefics3, LLaVA, MiniCPM-V,
Pixtral, InternVL, Phi-4-multimodal and more; Phi-3-V (the paper's small model) is not one of them.
"""

from __future__ import annotations

import codecs
import ctypes
import functools
import logging
import mmap
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.generate.cache import EncoderCache, PrefixCache, PrefixState, file_fingerprint
from edge_rap.generate.chat import ChatTemplate
from edge_rap.generate.interrupts import interrupt_waiting, interrupts_held
from edge_rap.generate.prompt import MEDIA_MARKER, PromptImage, RenderedPrompt
from edge_rap.liveness import long_call, progress
from edge_rap.models.file_formats import format_problem
from edge_rap.output import shown

log = logging.getLogger("edge_rap.generate")


@dataclass(frozen=True)
class VlmSpec:
    """Which files to load and how."""

    model: Path
    mmproj: Path | None = None  # None: a text-only GGUF (text questions and text references only)
    name: str = ""
    n_gpu_layers: int = 0  # -1 = all
    n_ctx: int = 4096
    threads: int = 0
    n_batch: int = 512
    cache_dir: Path | None = None  # where encoded reference images persist; None = RAM only
    seed: int = 0


@dataclass
class Generation:
    """One answer's raw text and timings."""

    text: str
    n_tokens: int
    prompt_tokens: int  # positions evaluated for this answer (prefix when not cached + suffix)
    ttft_s: float
    tokens_per_s: float | None
    cache: dict = field(default_factory=dict)
    stopped: str = "eos"  # "eos", "length", "context", or "interrupted" (`LlamaVlm.stopping` was set)
    first_logits: np.ndarray | None = None  # with keep_logits: the distribution the first token came from


def choose_device(n_gpu_layers: int) -> tuple[str, int, str]:
    """(device, layers to offload, why): CUDA only when asked for and the llama.cpp build can offload."""
    import llama_cpp

    if n_gpu_layers == 0:
        return "cpu", 0, "the device profile offloads no layers (n_gpu_layers = 0)"
    if not llama_cpp.llama_supports_gpu_offload():
        return "cpu", 0, ("this llama-cpp-python build cannot offload to a GPU (built without CUDA); "
                          "rebuild it with CMAKE_ARGS=-DGGML_CUDA=on to use the GPU")
    layers = "all" if n_gpu_layers < 0 else str(n_gpu_layers)
    return "cuda", n_gpu_layers, f"{layers} layers offloaded to the GPU"


def _not_a_projector(path: Path) -> str | None:
    """Why a GGUF file mtmd refused is no vision projector (a language model given as --mmproj: its error named
    "another model" or too little memory), or None where it says it is one or cannot be read."""
    from edge_rap.models.gguf_extent import Truncated, gguf_architecture

    try:
        architecture = gguf_architecture(Path(path))
    except (ImportError, ValueError, OSError, Truncated):
        return None
    if architecture in (None, "clip"):
        return None
    # the file's text: no escapes, one line
    return f"a language model ({shown(architecture)}), not a vision projector: give the model's mmproj file as --mmproj"


_LOG_CALLBACK = None
GGML_LOG_LEVEL_ERROR = 4  # ggml.h's numbering (llama_cpp/_logger.py's comment has an older one)
#: The first error lines llama.cpp logged since it was last cleared: why a load failed, in its own words.
_ERRORS: list[str] = []


def _quiet_logs(mtmd=None) -> None:
    """Route llama.cpp's and mtmd's log lines to Python logging (debug) instead of stderr, once per process."""
    global _LOG_CALLBACK
    import llama_cpp

    if _LOG_CALLBACK is None:
        @llama_cpp.llama_log_callback
        def callback(level, text, user_data):  # pragma: no cover - called from C
            if level == GGML_LOG_LEVEL_ERROR and len(_ERRORS) < 4:
                _ERRORS.append(text.decode("utf-8", "replace").strip())
            if log.isEnabledFor(logging.DEBUG):
                log.debug("llama.cpp: %s", text.decode("utf-8", "replace").rstrip())

        _LOG_CALLBACK = callback  # module-level: C keeps the pointer for the life of the process
        llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
    if mtmd is not None:
        mtmd.mtmd_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
        mtmd.mtmd_helper_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


#: The longest `close` waits for an answer being made (once stopping, cut at its next token, in its prompt at once;
#: not an image being encoded).
CLOSE_WAIT_S = 2.0


#: What llama_decode returns where its abort callback ended it (llama.h).
DECODE_ABORTED = 2
#: How often a prompt's evaluation looks for a stop to set its abort flag (`LlamaVlm._watch_for_a_stop`).
STOP_LOOK_S = 0.02


def _abort_when_set():
    """llama.cpp's abort callback as C code: libc's strlen over a flag of one byte and its NUL, which is 1 (true:
    abort) once the byte is set, and 0 before. llama.cpp asks it after each node of a graph; a callback written in
    Python waits for the GIL there, and a review measured a prompt 20-40 % slower with one while another thread ran
    Python (`run`'s camera loop). (strlen takes a pointer and returns a word; 0 or 1 in it is the same bool on the
    ABIs llama.cpp runs on.)"""
    import llama_cpp

    return ctypes.cast(ctypes.CDLL(None).strlen, llama_cpp.ggml_abort_callback)


class _Interrupted(Exception):
    """`stopping` was set, or a Ctrl-C (SIGTERM, SIGHUP) held, while llama.cpp evaluated: it ended there."""


class LoadStopped(Exception):
    """`stopping` was set, or a Ctrl-C (SIGTERM, SIGHUP) held, while the VLM loaded: its load was cut there, and
    what it had made freed. (A Ctrl-C's own KeyboardInterrupt is raised in its place as the load's hold ends.)"""


@functools.cache
def _llama_with_progress(llama_class: type) -> type:
    """`llama_class` (llama_cpp.Llama) taking `progress`, a llama_progress_callback that can end the load:
    llama-cpp-python 0.3.36 takes none, and makes its model_params and loads the model in one __init__, so the
    callback goes into the params as they are set."""

    class LlamaWithProgress(llama_class):
        def __init__(self, *args, progress, **kwargs):
            self._progress = progress
            super().__init__(*args, **kwargs)

        @property
        def model_params(self):
            return self.__dict__["model_params"]

        @model_params.setter
        def model_params(self, params) -> None:
            params.progress_callback = self._progress
            self.__dict__["model_params"] = params

    return LlamaWithProgress


#: How much of the model file `_read_ahead` reads between two looks for a stop: some 0.4 s from an SD card reading
#: 40 MB/s; a look costs microseconds.
READ_AHEAD_BYTES = 16 * 2**20


def _read_ahead(path: Path, look_for_a_stop: Callable[[], None]) -> None:
    """Bring the model file into the page cache a chunk at a time, calling `look_for_a_stop` after each (it raises
    to end the read: LoadStopped). llama.cpp maps the model with MAP_POPULATE, reading all of it inside one `mmap`
    call before it first asks its progress callback (gigabytes from an SD card: tens of seconds no stop could cut);
    found cached, that call is short. One byte a page is touched through a read-only map: its page faults read the
    file, nothing is copied. A file this cannot map is left to llama.cpp, which says what it says."""
    try:
        with open(path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as e:  # (ValueError: an empty file, or one past a 32-bit address space)
        log.debug("%s not read ahead: %s", path, e)
        return
    with mapped:
        pages = np.frombuffer(mapped, np.uint8)[::mmap.PAGESIZE]
        step = max(1, READ_AHEAD_BYTES // mmap.PAGESIZE)
        try:
            for start in range(0, len(pages), step):
                pages[start:start + step].max()
                look_for_a_stop()
        finally:
            del pages  # (the map cannot close while an array holds it)


def _llama_says() -> str:
    """llama.cpp's first error line since `_ERRORS` was cleared, as a parenthesis (-v shows INFO, not its log)."""
    return f" (llama.cpp: {_ERRORS[0]})" if _ERRORS else ""


class LlamaVlm:
    """A loaded GGUF VLM (or text model) with its caches; `generate` answers one rendered prompt. `stopping`: once
    set (the process is stopping), an answer ends at its next token, and its prompt's evaluation at once (llama.cpp's
    abort callback; an image being encoded, which mtmd cannot cut, is finished first), "interrupted": a stop must not
    wait for an answer a CPU makes at a few tokens a second, nor free the model under it. Set while the VLM loads, it
    ends the load at its next tensor or 16 MiB of the model file's read (LoadStopped): a model of gigabytes read from
    an SD card takes tens of seconds."""

    def __init__(self, spec: VlmSpec, stopping: threading.Event | None = None):
        self.stopping = stopping or threading.Event()
        self._answering = threading.Lock()  # held by `generate`: `close` never frees the model under it
        try:
            import llama_cpp
        except ImportError:
            raise EdgeRapError("the VLM needs llama-cpp-python: pip install 'edge_rap[vlm]' "
                               "(make install builds it portably)") from None
        self._llama_cpp = llama_cpp
        for what, path in (("model", spec.model), ("mmproj", spec.mmproj)):
            if path is not None and not Path(path).is_file():
                raise EdgeRapError(f"VLM {what} file {path} not found")
        self.spec = spec
        self.name = spec.name or Path(spec.model).stem
        self.llm = None  # what close() frees, set as each is made: a failed init frees what it made
        self.mtmd = None
        self.mctx = None
        self._batch = None
        self.device, layers, self.device_reason = choose_device(spec.n_gpu_layers)
        # a GPU the profile asks for and the build cannot use is said without -v: seconds a token otherwise puzzle
        log.log(logging.WARNING if layers != spec.n_gpu_layers else logging.INFO, "VLM %s on %s: %s", self.name,
                self.device, self.device_reason)
        _quiet_logs()
        try:
            with interrupts_held():  # llama.cpp logs through Python as it loads (interrupts.py)
                self._load_or_fall_back(spec, layers)
        except BaseException:
            self.close()
            raise

    def _load_or_fall_back(self, spec: VlmSpec, layers: int) -> None:
        """Load with `layers` offloaded; if the GPU side fails (its memory taken, on a Jetson by the camera's own
        models; a driver the build does not match), load again on the CPU rather than answer without a VLM."""
        try:
            self._load(spec, layers)
        except EdgeRapError as e:
            files = [Path(p) for p in (spec.model, spec.mmproj) if p is not None]
            if layers == 0 or any(format_problem(p, gguf=True) for p in files):
                raise  # (a file cut short or not a model fails on the CPU too: no GPU to blame)
            self.close()
            log.warning("the VLM %s did not load on the GPU (%s); loading it on the CPU", self.name, e)
            self.device, self.device_reason = "cpu", f"it did not load on the GPU ({e}), so on the CPU"
            self._load(spec, 0)

    def _load(self, spec: VlmSpec, layers: int) -> None:
        with long_call(f"loading the VLM {self.name}"):
            self._load_files(spec, layers)

    def _load_files(self, spec: VlmSpec, layers: int) -> None:
        llama_cpp = self._llama_cpp
        _ERRORS.clear()
        self._stop_the_load_if_asked()
        _read_ahead(Path(spec.model), self._stop_the_load_if_asked)
        try:
            self.llm = _llama_with_progress(llama_cpp.Llama)(
                model_path=str(spec.model), n_gpu_layers=layers, n_ctx=spec.n_ctx, n_batch=spec.n_batch,
                n_ubatch=spec.n_batch, n_threads=spec.threads or None, seed=spec.seed, verbose=False,
                # a full-size cache for sliding-window layers (Gemma 3): the prefix cache trims a sequence's tail and
                # restores saved states, which a window-sized cache cannot; 0.3.36's default, set so another keeps it
                swa_full=True, progress=llama_cpp.llama_progress_callback(self._load_goes_on),
            )
        except MemoryError:  # llama-cpp-python's own buffers (n_batch x vocabulary floats), where memory is capped
            raise EdgeRapError(f"not enough memory to load {spec.model} with a context of {spec.n_ctx} tokens: "
                               "a smaller model or quantisation, or a smaller [vlm] n_ctx") from None
        except ValueError as e:
            self._stop_the_load_if_asked()  # (llama.cpp's load ended by `_load_goes_on`: a NULL model, as a failure)
            # a cut-short or wrong file (a photo given as --vlm, whatever its name): say so rather than llama's words;
            # else llama's own first error ("insufficient memory (attempted to allocate 514.50 MB)")
            why = format_problem(Path(spec.model), gguf=True)
            raise EdgeRapError(f"llama.cpp cannot load {spec.model}: "
                               + (f"it is {why}" if why else f"{e}{_llama_says()}")) from None
        self.ctx = self.llm._ctx.ctx
        self._abort = _abort_when_set()
        self._abort_flag = (ctypes.c_ubyte * 2)()  # its byte set: what llama.cpp evaluates ends (`_abort`)
        self._cuttable = False  # whether a stop now cuts the prompt's evaluation (`_cut_by_a_stop`)
        self.model_ptr = self.llm._model.model
        self.vocab = self.llm._model.vocab
        self.n_ctx = llama_cpp.llama_n_ctx(self.ctx)
        self.n_embd_inp = llama_cpp.llama_model_n_embd_inp(self.model_ptr)
        fingerprint = file_fingerprint(Path(spec.model))
        if spec.mmproj is not None:
            self._stop_the_load_if_asked()
            self._init_mtmd(Path(spec.mmproj), layers != 0)
            fingerprint += file_fingerprint(Path(spec.mmproj))
            self.marker = self.mtmd.mtmd_default_marker().decode()
        else:
            self.marker = MEDIA_MARKER
        self.fingerprint = fingerprint
        bos = self._piece(llama_cpp.llama_vocab_bos(self.vocab), special=True)
        eos = self._piece(llama_cpp.llama_vocab_eos(self.vocab), special=True)
        self.template = ChatTemplate.for_model(self.llm.metadata, bos, eos, self.controls_in)
        # an encoding is the projector's output as this mtmd computes it: another release's image preprocessing
        # (resizing, slicing) gives other floats for the same photo, and answers other than encoding it now
        self.encoder_cache = EncoderCache(spec.cache_dir, file_fingerprint(
            Path(spec.mmproj), read_by=f"llama-cpp-python {llama_cpp.__version__}:") if spec.mmproj else fingerprint)
        self.prefix_cache = PrefixCache()
        self.use_encoder_cache = True
        self.use_prefix_cache = True
        self._live: tuple[str, int, int] | None = None  # (prefix key, n_past, its cells) held in the context now
        # cells of the context in use: a token takes one, though an image's tokens take fewer positions (n_past) in
        # M-RoPE models (Qwen2-VL, Qwen2.5-VL); what fills the context, so what its room is counted in
        self._filled = 0
        self._batch = llama_cpp.llama_batch_init(spec.n_batch, 0, 1)

    # -- set-up ------------------------------------------------------------------------------------------
    def _init_mtmd(self, mmproj: Path, use_gpu: bool) -> None:
        import llama_cpp.mtmd_cpp as mtmd

        self.mtmd = mtmd
        _quiet_logs(mtmd)
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.print_timings = False
        params.n_threads = self.spec.threads or max(1, self.llm.n_threads)
        params.warmup = False
        self._mtmd_progress = mtmd.mtmd_progress_callback(self._load_goes_on)  # (kept while mtmd may call it)
        params.progress_callback = self._mtmd_progress
        _ERRORS.clear()
        self.mctx = mtmd.mtmd_init_from_file(str(mmproj).encode(), self.model_ptr, params)
        if not self.mctx:
            self._stop_the_load_if_asked()
            if (why := format_problem(mmproj, gguf=True) or _not_a_projector(mmproj)) is not None:
                raise EdgeRapError(f"llama.cpp's mtmd cannot load the projector {mmproj}: it is {why}")
            raise EdgeRapError(f"llama.cpp's mtmd cannot load the projector {mmproj} for {self.spec.model} "
                               f"(a projector of another model, a family this llama.cpp does not support, or too "
                               f"little memory){_llama_says()}")
        if not mtmd.mtmd_support_vision(self.mctx):
            raise EdgeRapError(f"{mmproj} has no vision encoder (an audio-only projector?)")

    def _load_goes_on(self, progress: float, user_data) -> bool:
        """llama.cpp's and mtmd's progress callback, asked after each tensor they load (a few hundred times: a
        Python callback costs nothing there, unlike after each node of a graph): False, which ends the load and
        frees what it made, once a stop is asked. On the main thread a Ctrl-C is noted here by the load's hold."""
        return not self._stop_asked()

    def _stop_the_load_if_asked(self) -> None:
        """Raise LoadStopped where a stop is asked: before each file's load, and where one failed (cut by
        `_load_goes_on`, which the load's caller sees only as a failure)."""
        if self._stop_asked():
            raise LoadStopped(f"a stop came while the VLM {self.name} loaded")

    @property
    def has_vision(self) -> bool:
        return self.mctx is not None

    def close(self, timeout: float = CLOSE_WAIT_S) -> None:
        """Free the batch, the projector's context and the model (idempotent; also after a failed init); an answer
        still being made after `timeout` (an image being encoded, in mtmd: `stopping` cannot cut it) keeps
        them, for the process's exit to free, rather than crash under it."""
        if not self._answering.acquire(timeout=timeout):
            log.warning("the VLM is still evaluating a prompt: not freed under it")
            return
        try:
            self._free()
        finally:
            self._answering.release()

    def _free(self) -> None:
        if self._batch is not None:
            self._llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self.mctx is not None:
            self.mtmd.mtmd_free(self.mctx)
            self.mctx = None
        if self.llm is not None:
            self.llm.close()
            self.llm = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def invalidate(self) -> None:
        """Forget every cached state and encoding (in RAM; the files are keyed by content and stay valid)."""
        self.prefix_cache.clear()
        self.encoder_cache.clear()
        self._live = None

    def _stop_asked(self) -> bool:
        """Whether what llama.cpp evaluates now is to end at once: a stop, or a signal held while it works."""
        return self.stopping.is_set() or interrupt_waiting()

    @contextmanager
    def _cut_by_a_stop(self) -> Iterator[None]:
        """llama.cpp's abort callback set while a prompt is evaluated: the CPU backend asks it after each node of a
        graph (the CUDA backend does not), so that a decode under way ends within milliseconds of a stop, not when a
        prompt of minutes is in. The flag it reads is set by a thread that looks for a stop every STOP_LOOK_S, and
        before each batch and each part of the prompt (`_cut_here`). Not while tokens are generated: a token's
        decode is short, and the loop asks `stopping` between two."""
        lc = self._llama_cpp
        self._abort_flag[0] = 0
        done = threading.Event()
        watcher = threading.Thread(target=self._watch_for_a_stop, args=(done,), name="vlm stop", daemon=True)
        watcher.start()
        try:
            lc.llama_set_abort_callback(self.ctx, self._abort, ctypes.cast(self._abort_flag, ctypes.c_void_p))
            self._cuttable = True
            yield
        finally:
            self._cuttable = False
            lc.llama_set_abort_callback(self.ctx, lc.ggml_abort_callback(), None)  # (none: a NULL pointer)
            done.set()
            watcher.join()

    def _watch_for_a_stop(self, done: threading.Event) -> None:
        """Set the abort flag once a stop is asked, until `done`."""
        while not done.wait(STOP_LOOK_S):
            if self._stop_asked():
                self._abort_flag[0] = 1
                return

    def _cut_here(self) -> None:
        """Between two batches or parts of a prompt being evaluated: end it where a stop is asked (noted in the abort
        flag), without waiting for the watcher's next look."""
        if self._cuttable and self._stop_asked():
            self._abort_flag[0] = 1
            raise _Interrupted

    def _decode_failed(self, what: str, rc: int) -> Exception:
        """Why llama.cpp's decode returned `rc` (not 0): the abort flag ended it, or it failed. (The flag, not the
        stop: a signal another thread's hold noted may be no longer asked once the decode returns.)"""
        if rc == DECODE_ABORTED and self._abort_flag[0]:
            return _Interrupted()
        return EdgeRapError(f"llama.cpp failed to evaluate {what} ({rc})")

    # -- text helpers ------------------------------------------------------------------------------------
    def _piece(self, token: int, special: bool = False) -> str:
        return self._piece_bytes(token, special).decode("utf-8", "replace")

    def _piece_bytes(self, token: int, special: bool = False) -> bytes:
        if token < 0:  # LLAMA_TOKEN_NULL: a vocabulary without that token (no BOS); llama.cpp aborts the process on it
            return b""
        buf = ctypes.create_string_buffer(64)
        n = self._llama_cpp.llama_token_to_piece(self.vocab, token, buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._llama_cpp.llama_token_to_piece(self.vocab, token, buf, -n, 0, special)
        return buf.raw[:max(n, 0)]

    def controls_in(self, text: str) -> frozenset[str]:
        """The texts of the control tokens `text` spells, as the tokenizer with special tokens parsed finds them."""
        lc = self._llama_cpp
        control = lc.LLAMA_TOKEN_ATTR_CONTROL | lc.LLAMA_TOKEN_ATTR_UNKNOWN
        return frozenset(self._piece(t, special=True) for t in self.tokenize(text, add_special=False)
                         if lc.llama_vocab_get_attr(self.vocab, t) & control)

    def tokenize(self, text: str, add_special: bool) -> list[int]:
        return self.llm._model.tokenize(text.encode(), add_special, True)

    def _decode_tokens(self, tokens: list[int], n_past: int, logits_last: bool) -> int:
        lc = self._llama_cpp
        b = self._batch
        for start in range(0, len(tokens), self.spec.n_batch):
            part = tokens[start:start + self.spec.n_batch]
            b.n_tokens = len(part)
            for i, tok in enumerate(part):
                b.token[i] = tok
                b.pos[i] = n_past + start + i
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = 0
                b.logits[i] = 1 if (logits_last and start + i == len(tokens) - 1) else 0
            self._cut_here()
            if (rc := lc.llama_decode(self.ctx, b)) != 0:
                raise self._decode_failed("the prompt (context full?)", rc)
            self._filled += len(part)
            progress()  # (a batch of the prompt, or a token generated: an answer on a CPU takes minutes in all)
        return n_past + len(tokens)

    def _check_room(self, more: int) -> None:
        """Whether `more` tokens fit in the context after those in it."""
        if self._filled + more > self.n_ctx:
            raise EdgeRapError(f"the prompt needs {self._filled + more} tokens but the context holds {self.n_ctx}: "
                               "ask a shorter question, or use fewer references (the profile's [vlm] max_references), "
                               "text references (--text-references) or a larger [vlm] n_ctx")

    # -- evaluation --------------------------------------------------------------------------------------
    def _eval(self, text: str, images: tuple[PromptImage, ...], n_past: int, add_special: bool,
              logits_last: bool, cache_images: bool, stats: dict) -> int:
        """Evaluate text with media markers (and their images) from position n_past; the new n_past."""
        if not text and not images:
            return n_past
        if self.mctx is None:
            if images or self.marker in text:
                raise EdgeRapError(f"{self.name} has no projector (mmproj): it answers text-only questions with "
                                   "text references; give its mmproj to use images")
            tokens = self.tokenize(text, add_special)
            self._check_room(len(tokens))
            stats["prompt_tokens"] += len(tokens)
            return self._decode_tokens(tokens, n_past, logits_last)
        mtmd, lc = self.mtmd, self._llama_cpp
        bitmaps = []
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            for image in images:
                pixels = image.rgb()
                h, w = pixels.shape[:2]
                data = pixels.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
                bitmap = mtmd.mtmd_bitmap_init(w, h, data)
                if not bitmap:
                    raise EdgeRapError(f"mtmd refused an image of {w} x {h} pixels")
                bitmaps.append(bitmap)
            inp = mtmd.mtmd_input_text()
            raw = text.encode()
            inp.text, inp.text_len, inp.add_special, inp.parse_special = raw, len(raw), add_special, True
            arr = (mtmd.mtmd_bitmap_p_ctypes * max(1, len(bitmaps)))(*bitmaps)
            rc = mtmd.mtmd_tokenize(self.mctx, chunks, ctypes.byref(inp), arr, len(bitmaps))
            if rc != 0:
                raise EdgeRapError(f"mtmd could not tokenize the prompt ({rc}: images and markers do not match)")
            self._check_room(mtmd.mtmd_helper_get_n_tokens(chunks))
            n_chunks = mtmd.mtmd_input_chunks_size(chunks)
            image_index = 0
            new_n_past = lc.llama_pos(n_past)
            for i in range(n_chunks):
                self._cut_here()  # (an image's encoding cannot be cut: mtmd has no abort callback)
                chunk = mtmd.mtmd_input_chunks_get(chunks, i)
                # one call a part: an image, or the text between two, takes a minute or more on a CPU (a 7B model's
                # fallback), and a hang inside one is said after its allowance
                with long_call(f"evaluating part {i + 1} of the prompt"):
                    last = logits_last and i == n_chunks - 1
                    n_tokens = mtmd.mtmd_input_chunk_get_n_tokens(chunk)
                    stats["prompt_tokens"] += n_tokens
                    if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                        key = images[image_index].key
                        image_index += 1
                        embd = self._encoded(chunk, key, cache_images, stats)
                        self._cut_here()
                        rc = mtmd.mtmd_helper_decode_image_chunk(
                            self.mctx, self.ctx, chunk, embd.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                            n_past, 0, self.spec.n_batch, ctypes.byref(new_n_past),
                            mtmd.mtmd_helper_post_decode_callback(), None)
                        if last and rc == 0:  # an image never ends a prompt in practice; keep logits valid anyway
                            raise EdgeRapError("the prompt ends with an image: nothing to generate from")
                    else:
                        rc = mtmd.mtmd_helper_eval_chunk_single(self.mctx, self.ctx, chunk, n_past, 0,
                                                                self.spec.n_batch, last, ctypes.byref(new_n_past))
                    if rc != 0:
                        raise self._decode_failed(f"part {i + 1} of the prompt", rc)
                    n_past = new_n_past.value
                    self._filled += n_tokens
            return n_past
        finally:
            mtmd.mtmd_input_chunks_free(chunks)
            for bitmap in bitmaps:
                mtmd.mtmd_bitmap_free(bitmap)

    def _encoded(self, chunk, key: str, use_cache: bool, stats: dict) -> np.ndarray:
        """The projector's output for an image chunk: from the encoder cache, or encoded now."""
        mtmd = self.mtmd
        size = mtmd.mtmd_input_chunk_get_n_tokens(chunk) * self.n_embd_inp
        if use_cache:
            embd = self.encoder_cache.get(key, size)
            if embd is not None:
                stats["encoder_hits"] += 1
                return embd
        t0 = time.perf_counter()
        if mtmd.mtmd_encode_chunk(self.mctx, chunk) != 0:
            raise EdgeRapError("mtmd failed to encode an image")
        ptr = mtmd.mtmd_get_output_embd(self.mctx)
        embd = np.ctypeslib.as_array(ptr, shape=(size,)).copy()
        stats["encoded"] += 1
        stats["encode_s"] += time.perf_counter() - t0
        if use_cache:
            self.encoder_cache.put(key, embd)
        return embd

    def _prefix(self, prompt: RenderedPrompt, stats: dict) -> int:
        """Bring the context to the state after the prompt's prefix; the position the suffix starts at."""
        lc = self._llama_cpp
        mem = lc.llama_get_memory(self.ctx)
        key = self.fingerprint[:16] + prompt.prefix_key
        use = self.use_prefix_cache
        if use and self._live is not None and self._live[0] == key:
            if lc.llama_memory_seq_rm(mem, 0, self._live[1], -1):
                stats["prefix"] = "warm"
                self._filled = self._live[2]
                return self._live[1]
        self._live = None
        lc.llama_memory_clear(mem, True)
        self._filled = 0
        saved = self.prefix_cache.get(key) if use else None
        if saved is not None:
            buf = (ctypes.c_uint8 * len(saved.state)).from_buffer_copy(saved.state)
            if lc.llama_state_seq_set_data(self.ctx, buf, len(saved.state), 0) > 0:
                stats["prefix"] = "restored"
                self._live = (key, saved.n_past, saved.n_cells)
                self._filled = saved.n_cells
                return saved.n_past
            lc.llama_memory_clear(mem, True)
        n_past = self._eval(prompt.prefix, prompt.prefix_images, 0, add_special=not self._starts_with_bos(prompt),
                            logits_last=False, cache_images=self.use_encoder_cache, stats=stats)
        stats["prefix"] = "computed"
        if use:
            size = lc.llama_state_seq_get_size(self.ctx, 0)
            buf = (ctypes.c_uint8 * size)()
            written = lc.llama_state_seq_get_data(self.ctx, buf, size, 0)
            if written > 0:
                self.prefix_cache.put(PrefixState(key, n_past, self._filled, ctypes.string_at(buf, written)))
            self._live = (key, n_past, self._filled)
        return n_past

    def _starts_with_bos(self, prompt: RenderedPrompt) -> bool:
        bos = self.template.bos_token
        return bool(bos) and prompt.prefix.startswith(bos)

    # -- generation --------------------------------------------------------------------------------------
    def generate(self, prompt: RenderedPrompt, on_text: Callable[[str], None] | None = None,
                 max_tokens: int = 128, temperature: float = 0.0, keep_logits: bool = False) -> Generation:
        """Answer a rendered prompt; `on_text` gets each decoded piece as it is produced."""
        with self._answering:
            if self.llm is None:
                raise EdgeRapError("the VLM was closed")
            return self._generate(prompt, on_text, max_tokens, temperature, keep_logits)

    def _generate(self, prompt: RenderedPrompt, on_text: Callable[[str], None] | None, max_tokens: int,
                  temperature: float, keep_logits: bool) -> Generation:
        lc = self._llama_cpp
        stats = {"prefix": "none", "encoder_hits": 0, "encoded": 0, "encode_s": 0.0, "prompt_tokens": 0}
        t0 = time.perf_counter()
        try:
            if self.stopping.is_set():
                raise _Interrupted
            # llama.cpp and mtmd log through Python as they evaluate (interrupts.py)
            with interrupts_held(), self._cut_by_a_stop():
                n_past = self._prefix(prompt, stats)
                n_past = self._eval(prompt.suffix, prompt.suffix_images, n_past, add_special=False,
                                    logits_last=True, cache_images=False, stats=stats)
        except _Interrupted:
            self._live = None
            return Generation("", 0, stats["prompt_tokens"], time.perf_counter() - t0, None, stopped="interrupted")
        except BaseException:
            self._live = None  # the context holds a half-evaluated prompt
            raise
        first_logits = None
        if keep_logits:
            n_vocab = lc.llama_vocab_n_tokens(self.vocab)
            first_logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(self.ctx, -1), shape=(n_vocab,)).copy()
        sampler = self._sampler(temperature)
        # a character split across tokens is given whole; one the answer ends within (cut at max_tokens, a stop or
        # the context's end) is left out, not shown or said as U+FFFD
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []
        n_tokens, t_first, stopped = 0, None, "length"
        try:
            for _ in range(max_tokens):
                if self.stopping.is_set():
                    stopped = "interrupted"
                    break
                token = lc.llama_sampler_sample(sampler, self.ctx, -1)
                if t_first is None:
                    t_first = time.perf_counter()
                if lc.llama_vocab_is_eog(self.vocab, token):
                    stopped = "eos"
                    break
                n_tokens += 1
                text = decoder.decode(self._piece_bytes(token))
                if text:
                    pieces.append(text)
                    if on_text is not None:
                        on_text(text)
                if self._filled + 1 > self.n_ctx:
                    stopped = "context"
                    break
                with interrupts_held():
                    n_past = self._decode_tokens([token], n_past, logits_last=True)
        finally:
            lc.llama_sampler_free(sampler)
        t_end = time.perf_counter()
        t_first = t_first or t_end
        rate = (n_tokens - 1) / (t_end - t_first) if n_tokens > 1 and t_end > t_first else None
        cache = {"prefix": stats["prefix"], "encoder_hits": stats["encoder_hits"], "encoded": stats["encoded"]}
        return Generation("".join(pieces), n_tokens, stats["prompt_tokens"], t_first - t0, rate, cache, stopped,
                          first_logits)

    def _sampler(self, temperature: float):
        lc = self._llama_cpp
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        if temperature <= 0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
        else:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(40))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(0.95, 1))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(temperature))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(self.spec.seed))
        return chain

    def describe(self) -> str:
        return f"{self.name} on {self.device} ({self.device_reason})"
