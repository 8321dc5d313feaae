"""The voice loop beside the camera daemon: listens in its own thread (the microphone's callback feeds it),
answers questions after the wake phrase about the latest frame, and never touches the camera loop's thread.
Whisper runs on one thread by default, so the camera loop keeps a core on a small device.

Stopping waits for a turn being transcribed or answered: whisper runs in native code without the interpreter's
lock, and a process that exits normally under it is aborted ("terminate called without an active exception", exit
134), and the household it answers from must not be closed under it either. `run` waits within its stop budget
(daemon/shutdown.py), its VLM's answer cut at the next token meanwhile; past it, it exits with os._exit.

A turn that fails with an unexpected error (whisper's or onnxruntime's own) is logged whole, one with an
EdgeRapError (the memory's database locked a moment) in its one line, and listening goes on with the next
utterance, as one bad frame never stops the cameras: a daemon runs for months. An audio source that fails stops it,
and so do `FAILED_IN_A_ROW` failed turns with none answered between them: a voice side that cannot work; the
cameras go on."""

from __future__ import annotations

import inspect
import logging
import threading
import time
from typing import Callable, Iterable

import numpy as np

from edge_rap.liveness import Heartbeat
from edge_rap.errors import EdgeRapError
from edge_rap.speech.listen import Latest, Listener, Turn
from edge_rap.speech.wake import DEFAULT_WAKE

log = logging.getLogger(__name__)

STOP_S = 30.0  # the longest `stop` waits for a turn in progress (whisper on one slow core, a 28 s utterance)
FAILED_IN_A_ROW = 3  # unexpected failures of turns in a row, none answered between them, that stop the loop


class _Stopped(Exception):
    """The loop was stopped: raised through the segmenter, so that speech cut off by the stop is not heard."""


class VoiceLoop:
    """`latest()`: the newest frame and its recognition, or None; `report(turn)`: each triggered turn (print it).
    `source`: audio chunks (default: the microphone); `asr_model`: as `asr.model_path` (auto: the largest pulled
    whisper, else tiny.en); `heartbeat`: beaten at each chunk heard and each look for a microphone that went away,
    retired when the loop ends (systemd's watchdog, `run --voice`)."""

    def __init__(self, home, speaker, latest: Latest, report: Callable[[Turn], None], wake: str = DEFAULT_WAKE,
                 source: Iterable[np.ndarray] | None = None, threads: int = 1, asr_model: str = "auto",
                 heartbeat: Heartbeat | None = None):
        from edge_rap.speech.asr import Transcriber
        from edge_rap.speech.audio import Microphone
        from edge_rap.speech.vad import SileroVad

        self.heartbeat = heartbeat or Heartbeat("the voice listener", time.monotonic)
        # A microphone unplugged is listened to again when it is back.
        self.mic = Microphone(reopen=True, waiting=self.heartbeat.beat) if source is None else None
        self.source = source if source is not None else self.mic.chunks()
        transcriber = Transcriber(asr_model, threads=threads, models=home.settings.models)
        self.listener = Listener(home, transcriber, SileroVad(), speaker, wake, latest)
        self.report = report
        self.turns = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="voice", daemon=True)

    def start(self) -> "VoiceLoop":
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a source that ends (a recording) to be heard to its end; whether it was."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: float = STOP_S) -> bool:
        """Stop listening: the microphone closes, speech still open is dropped, and a turn being transcribed or
        answered finishes first (up to `timeout`); whether the loop has ended."""
        self._stop.set()
        if self.mic is not None:
            self.mic.close()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _heard(self) -> Iterable[np.ndarray]:
        """The source's chunks until `stop`; the source is closed then (the microphone's stream stops with it)."""
        try:
            for chunk in self.source:
                if self._stop.is_set():
                    raise _Stopped
                self.heartbeat.beat()
                yield chunk
            if self._stop.is_set():  # the microphone closed: what it cut off is no question
                raise _Stopped
        finally:
            getattr(self.source, "close", lambda: None)()

    def _run(self) -> None:
        heard = self._heard()  # one for the loop's life: listening again goes on where the failed turn left it
        failed = 0
        try:
            while True:
                try:
                    for turn in self.listener.turns(heard):
                        failed = 0
                        if turn.triggered:
                            self.turns += 1
                            self.report(turn)
                    return
                except _Stopped:
                    return
                except Exception as e:  # the voice side failing never takes the cameras down
                    failed += 1
                    source_failed = inspect.getgeneratorstate(heard) == inspect.GEN_CLOSED  # the microphone's own
                    stopped = source_failed or failed >= FAILED_IN_A_ROW
                    why = ("a voice turn failed; listening goes on" if not stopped else "the voice loop stopped"
                           if source_failed else f"the voice loop stopped: {failed} turns in a row failed")
                    if isinstance(e, EdgeRapError):  # explained in one line (a microphone that could not start)
                        log.error("%s: %s", why, e)
                    else:  # unexpected: logged whole
                        log.exception(why)
                    if stopped:
                        return
        finally:
            heard.close()
            self.heartbeat.retire()  # ended, not stuck
