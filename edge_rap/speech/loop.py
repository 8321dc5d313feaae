"""The voice loop beside the camera daemon: listens in its own thread (the microphone's callback feeds it),
answers questions after the wake phrase about the latest frame, and never touches the camera loop's thread.
Whisper runs on one thread by default, so the camera loop keeps a core on a small device."""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterable

import numpy as np

from edge_rap.speech.listen import Latest, Listener, Turn
from edge_rap.speech.wake import DEFAULT_WAKE

log = logging.getLogger(__name__)


class VoiceLoop:
    """`latest()`: the newest frame and its recognition, or None; `report(turn)`: each triggered turn (print it).
    `source`: audio chunks (default: the microphone); `asr_model`: as `asr.model_path` (auto: the largest pulled
    whisper, else tiny.en)."""

    def __init__(self, home, speaker, latest: Latest, report: Callable[[Turn], None], wake: str = DEFAULT_WAKE,
                 source: Iterable[np.ndarray] | None = None, threads: int = 1, asr_model: str = "auto"):
        from edge_rap.speech.asr import Transcriber
        from edge_rap.speech.audio import Microphone
        from edge_rap.speech.vad import SileroVad

        self.mic = Microphone() if source is None else None
        self.source = source if source is not None else self.mic.chunks()
        transcriber = Transcriber(asr_model, threads=threads, models=home.settings.models)
        self.listener = Listener(home, transcriber, SileroVad(), speaker, wake, latest)
        self.report = report
        self.turns = 0
        self._thread = threading.Thread(target=self._run, name="voice", daemon=True)

    def start(self) -> "VoiceLoop":
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop listening (the microphone closes; an answer being made finishes first, up to `timeout`)."""
        if self.mic is not None:
            self.mic.close()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            for turn in self.listener.turns(self.source):
                if turn.triggered:
                    self.turns += 1
                    self.report(turn)
        except Exception:  # the voice side failing never takes the cameras down
            log.exception("the voice loop stopped")
