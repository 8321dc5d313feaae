"""The listening pipeline: chunks of 16 kHz audio -> silero VAD utterances -> whisper -> wake phrase -> reply ->
the Speaker, with barge-in (speech heard while the device talks stops it) and the timings of each turn."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from edge_rap.speech.asr import Transcriber
from edge_rap.speech.reply import Reply, reply
from edge_rap.speech.vad import Segmenter, SileroVad, Utterance
from edge_rap.speech.wake import after_wake
from edge_rap.types import Image, Recognition

ARMED_S = 8.0  # after a bare "hey robot", the next utterance within this long is the question

#: The latest camera frame and, when the caller already has it, what was recognised in it.
Latest = Callable[[], "tuple[Image, Recognition | None] | None"]


@dataclass
class Turn:
    """One utterance heard, and the answer when it was a question for us."""

    triggered: bool
    transcript: str
    reply: Reply | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        r = self.reply
        return {"triggered": self.triggered, "transcript": self.transcript, "concepts": r.names if r else [],
                "answer": r.text if r else None, "mode": r.mode if r else None,
                "timings": {k: round(v, 1) for k, v in self.timings.items()}}


class Listener:
    """Turns utterances into answers for one household. `speaker` None: answers are only returned (--mute)."""

    def __init__(self, home, transcriber: Transcriber, vad: SileroVad, speaker=None, wake: str | None = None,
                 latest: Latest | None = None, silence_ms: float = 400.0):
        self.home = home
        self.transcriber = transcriber
        self.speaker = speaker
        self.wake = wake
        self.latest = latest or (lambda: None)
        self.segmenter = Segmenter(vad, silence_ms=silence_ms, on_speech_start=self.barge_in)
        self.interrupted = 0  # lines cut off by the user's speech

    def barge_in(self) -> None:
        """The user started speaking: stop the device talking."""
        if self.speaker is not None and not self.speaker.flush(0):
            self.speaker.interrupt()
            self.interrupted += 1

    def turns(self, chunks: Iterable[np.ndarray]) -> Iterator[Turn]:
        """Every utterance as a turn, triggered by the wake phrase (or by following a bare one closely); without
        a wake phrase every utterance is a question."""
        armed_until = 0.0
        for utterance in self.segmenter.utterances(chunks):
            text, asr_ms = self._transcribe(utterance)
            question = text if not self.wake else after_wake(text, self.wake)
            if question is None and time.perf_counter() < armed_until and text:
                question = text
            if question is None or not question:
                armed_until = time.perf_counter() + ARMED_S if question == "" else 0.0
                yield Turn(False, text, timings={"vad_ms": utterance.vad_ms, "asr_ms": asr_ms})
                continue
            armed_until = 0.0
            yield self._answer(text, question, utterance, asr_ms)

    def push_to_talk(self, chunks: Iterable[np.ndarray], first_only: bool = False) -> Turn:
        """All the speech in `chunks` (or only its first utterance, for a live microphone) is one question."""
        utterances: list[Utterance] = []
        for utterance in self.segmenter.utterances(chunks):
            utterances.append(utterance)
            if first_only:
                break
        if not utterances:
            return Turn(False, "", timings={"vad_ms": self.segmenter.take_ms()})
        last = utterances[-1]
        joined = Utterance(np.concatenate([u.samples for u in utterances]), utterances[0].start_s, last.end_s,
                           last.ended_at, sum(u.vad_ms for u in utterances))
        text, asr_ms = self._transcribe(joined)
        if not text:
            return Turn(False, "", timings={"vad_ms": joined.vad_ms, "asr_ms": asr_ms})
        return self._answer(text, text, joined, asr_ms)

    def _say(self, text: str, timeout: float = 30.0) -> float:
        """Hand the answer to the Speaker and wait only until its audio starts (not until it ends: speech heard
        meanwhile interrupts it); when that was."""
        self.speaker.audio_at = None
        self.speaker.say(text)
        deadline = time.perf_counter() + timeout
        while self.speaker.audio_at is None and not self.speaker.flush(0.005) and time.perf_counter() < deadline:
            pass
        return self.speaker.audio_at or time.perf_counter()

    def _transcribe(self, utterance: Utterance) -> tuple[str, float]:
        names = [c.name for c in self.home.concepts()]
        transcript = self.transcriber(utterance.samples, names, self.wake or "")
        return transcript.text, transcript.ms

    def _answer(self, text: str, question: str, utterance: Utterance, asr_ms: float) -> Turn:
        started = time.perf_counter()
        latest = self.latest()
        image, recognition = latest if latest is not None else (None, None)
        answer = reply(self.home, question, image, recognition)
        answered = time.perf_counter()
        timings = {"vad_ms": utterance.vad_ms, "asr_ms": asr_ms, "answer_ms": 1000 * (answered - started)}
        start = answered
        if self.speaker is not None:
            start = self._say(answer.text)
        timings["speech_end_to_answer_start_ms"] = 1000 * (start - utterance.ended_at)
        return Turn(True, text, answer, timings)
