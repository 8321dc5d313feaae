"""Voice activity: silero VAD's ONNX model (from the `silero-vad` package, found without importing it, since
its Python side imports torch) run through models.sessions.open_session, and a segmenter that turns its per-chunk
probabilities into utterances with a start and an end.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.speech.audio import CHUNK, RATE

CONTEXT = 64  # samples of the previous chunk the model sees before each chunk (what silero's own wrapper does)
OVERLAP_S = 2.0  # speech cut at `longest_s` goes on in the next utterance from this long before the cut


def silero_path() -> Path:
    """silero_vad.onnx inside the installed silero-vad package."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "data" / "silero_vad.onnx"
        if path.exists():
            return path
    raise EdgeRapError("silero VAD is not installed: pip install --no-deps silero-vad==6.2.3 "
                       "(--no-deps keeps torch out; only its ONNX file is used)")


class SileroVad:
    """Speech probability per 32 ms chunk at 16 kHz; the model's recurrent state is carried between calls."""

    def __init__(self, path: Path | None = None, provider: str = "cpu"):
        from edge_rap.models.sessions import open_session

        # One thread: a 32 ms chunk is too small to split, and the camera loop needs the other cores.
        self.session = open_session(path or silero_path(), provider, threads=1)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)

    def __call__(self, chunk: np.ndarray) -> float:
        x = np.concatenate([self._context, chunk.astype(np.float32, copy=False)])[None, :]
        out, self._state = self.session.run({"input": x, "state": self._state, "sr": np.array(RATE, np.int64)})
        self._context = x[0, -CONTEXT:]
        return float(out[0, 0])


@dataclass
class Utterance:
    """A stretch of speech: its samples (with a little padding), where it lies in the stream, and when its last
    voiced chunk reached the VAD on the wall clock (the end of speech the latency is measured from)."""

    samples: np.ndarray
    start_s: float
    end_s: float
    ended_at: float  # time.perf_counter() when the last voiced chunk was processed
    vad_ms: float = 0.0  # VAD time spent on the chunks of this utterance and the silence before it


@dataclass
class Segmenter:
    """Hysteresis over probabilities (silero's own defaults): speech starts at `threshold`, continues above
    `threshold - 0.15`, and ends after `silence_ms` below it; shorter than `min_speech_ms` is a click, dropped, but
    while `awaiting()` (a yes or no, or a choice, is waited for) only what is shorter than `barge_in_ms` is: a brisk
    "No." (espeak-ng at 260 words a minute: 190 ms) answers, and a knock kept then is heard by whisper as nothing."""

    vad: SileroVad
    threshold: float = 0.5
    silence_ms: float = 400.0
    min_speech_ms: float = 250.0
    pad_ms: float = 200.0
    barge_in_ms: float = 160.0  # a click (~100 ms) is not the user; a brisk "No." (espeak-ng: 190-220 ms) is
    on_speech_start: Callable[[], None] | None = None  # barge-in: called once speech has lasted barge_in_ms
    awaiting: Callable[[], bool] | None = None  # whether a short answer is waited for: kept from barge_in_ms on
    #: Whether speech is going on (from its first voiced chunk until it ends or is dropped as a click): a wait for
    #: speech to start sees it at once, not `barge_in_ms` later, when a wait ending meanwhile had lost it
    speaking: bool = field(default=False, init=False)
    _ms: float = field(default=0.0, init=False)
    _heard: int = field(default=0, init=False)  # chunks heard over its life: the clock of every utterance

    def utterances(self, chunks: Iterable[np.ndarray], longest_s: float | None = None) -> Iterator[Utterance]:
        """Utterances as they end; one still open when the chunks run out ends there. `longest_s`: speech that
        goes on longer (a television, talk without a pause) is cut there, and the next utterance starts
        `OVERLAP_S` before the cut, so that a phrase across it is heard whole in one of the two. Times run on from
        the last call's (the voice loop calls again after a failed turn): a command asked before it still stops
        waiting for its yes 10 s of audio later, not 10 s after the clock started again at 0."""
        pad = int(self.pad_ms / 1000 * RATE / CHUNK)
        hangover = max(1, int(self.silence_ms / 1000 * RATE / CHUNK))
        longest = int(longest_s * RATE / CHUNK) if longest_s else None
        overlap = int(OVERLAP_S * RATE / CHUNK)
        before: list[np.ndarray] = []
        voiced: list[np.ndarray] = []
        start = last = quiet = lead = 0
        ended_at = 0.0
        said = self.speaking = False  # said: whether on_speech_start was called for the speech going on
        for k, chunk in enumerate(chunks, self._heard):
            self._heard = k + 1
            t0 = time.perf_counter()
            p = self.vad(chunk)
            self._ms += 1000 * (time.perf_counter() - t0)
            if not voiced:
                if p >= self.threshold:
                    voiced, lead, self.speaking = before + [chunk], len(before), True
                    start, last, quiet, ended_at, said = k, k, 0, time.perf_counter(), False
                    said = self._speech_started(start, last, said)
                elif pad:
                    before = (before + [chunk])[-pad:]
                continue
            voiced.append(chunk)
            if p >= self.threshold - 0.15:
                last, quiet, ended_at = k, 0, time.perf_counter()
                said = self._speech_started(start, last, said)
                if longest is not None and len(voiced) >= longest:
                    utterance = self._close(voiced, start, k, ended_at)
                    voiced, lead, start = voiced[-overlap:], 0, k - overlap + 1
                    if utterance is not None:
                        yield utterance
                continue
            quiet += 1
            if quiet >= hangover:
                utterance = self._close(voiced[:lead + last - start + 1 + pad], start, last, ended_at)
                voiced, before, self.speaking = [], [], False
                if utterance is not None:
                    yield utterance
        if voiced:
            self.speaking = False
            utterance = self._close(voiced[:lead + last - start + 1 + pad], start, last, ended_at)
            if utterance is not None:
                yield utterance

    def _speech_started(self, start: int, last: int, said: bool) -> bool:
        """Calls on_speech_start once the speech from chunk `start` to `last` has lasted `barge_in_ms`: a click or a
        door does not cut the device off mid-sentence, but a one-word "Stop." or "No." shorter than `min_speech_ms`
        (224 ms in one of espeak-ng's voices) still does. Returns whether it was called."""
        if said or self.on_speech_start is None or not self._long_enough(start, last, self.barge_in_ms):
            return said
        self.on_speech_start()
        return True

    def _long_enough(self, start: int, last: int, ms: float) -> bool:
        return (last - start + 1) * CHUNK / RATE * 1000 >= ms

    def _close(self, voiced: list[np.ndarray], start: int, last: int, ended_at: float) -> Utterance | None:
        """`voiced`: the speech with up to `pad_ms` of audio either side."""
        shortest = self.barge_in_ms if self.awaiting is not None and self.awaiting() else self.min_speech_ms
        if not self._long_enough(start, last, shortest):
            return None
        return Utterance(np.concatenate(voiced), start * CHUNK / RATE, (last + 1) * CHUNK / RATE, ended_at,
                         self.take_ms())

    def take_ms(self) -> float:
        """VAD milliseconds spent since the last utterance (or the last call), reset."""
        ms, self._ms = self._ms, 0.0
        return ms
