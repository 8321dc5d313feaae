"""The listening pipeline: chunks of 16 kHz audio -> silero VAD utterances -> whisper -> wake phrase -> reply ->
the Speaker, with barge-in (speech heard while the device talks stops it) and the timings of each turn.

A memory command ("remember this as Luna", "this is also Bo", "forget Bo": speech/intents.py) is asked back; the
next utterance, within `intents.CONFIRM_S` of audio and with or without the wake phrase, is its yes or no. There is
no echo cancellation: a line the device said lately (an answer, or the camera daemon's announcement) heard back
through the microphone, or a piece of it, is no utterance of the user's."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Iterator

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.speech import intents
from edge_rap.memory.files import memory_stamp
from edge_rap.speech.asr import Transcriber
from edge_rap.speech.audio import CHUNK, RATE
from edge_rap.speech.intents import Command
from edge_rap.speech.reply import Reply, clarified, reply
from edge_rap.speech.vad import Segmenter, SileroVad, Utterance
from edge_rap.speech.wake import after_wake
from edge_rap.types import Image, Recognition

log = logging.getLogger(__name__)

ARMED_S = 8.0  # after a bare "hey robot", the next utterance within this long is the question
LONGEST_S = 30.0  # whisper hears 30 s at most: push-to-talk speech is cut off this long after it started, and
# talk without a pause is split into utterances a little shorter (their pads fit the window)
ECHO_MATCH = 90.0  # rapidfuzz partial ratio (0-100) of two words or more to a line the device said: its echo

#: The stages a turn is timed by: every one is in `--json`'s "timings", null where it did not run (no answer).
TIMINGS = ("vad_ms", "asr_ms", "answer_ms", "speech_end_to_answer_start_ms")

#: The latest camera frame and, when the caller already has it, what was recognised in it.
Latest = Callable[[], "tuple[Image, Recognition | None] | None"]


class StillFrame:
    """`listen --image`: one frame, recognised when made (the models load before the question, not after it) and
    again only once the memory changed (a spoken "remember this as" or "forget", another process): a question
    about it costs no second recognition between the end of its speech and its answer."""

    def __init__(self, home, image: Image):
        self.home, self.image = home, image
        self._stamp = memory_stamp(home.root)
        self._recognition = home.recognize(image)

    def __call__(self) -> tuple[Image, Recognition]:
        stamp = memory_stamp(self.home.root)
        if stamp != self._stamp:
            self._stamp, self._recognition = stamp, self.home.recognize(self.image)
        return self.image, self._recognition


@dataclass
class Turn:
    """One utterance heard, and the answer when it was a question for us."""

    triggered: bool
    transcript: str
    reply: Reply | None = None
    timings: dict[str, float] = field(default_factory=dict)
    command: Command | None = None  # a memory command asked, done, cancelled or refused in this turn
    timed_out: bool = False  # push-to-talk: no speech started within the wait

    @property
    def asking(self) -> bool:
        """Whether this turn asked to confirm a command (the next utterance is its answer)."""
        return self.command is not None and self.command.state == "asked"

    @property
    def asking_back(self) -> bool:
        """Whether the next utterance may answer this turn: a command's yes or no, or which name was meant (of a
        question, or of a forget or an add refused as said like two names: "Forget F." of <f> and <f'>)."""
        return (self.asking or self.reply is not None and self.reply.mode == "clarify"
                or self.command is not None and self.command.ambiguous is not None)

    def to_json(self) -> dict:
        r = self.reply
        return {"triggered": self.triggered, "transcript": self.transcript, "concepts": r.names if r else [],
                "answer": r.text if r else None, "mode": r.mode if r else None,
                "command": self.command.to_json() if self.command else None,
                "timings": {k: round(self.timings[k], 1) if k in self.timings else None for k in TIMINGS},
                "timed_out": self.timed_out}


@dataclass
class Pending:
    """A command waiting for its yes: the frame it is about, and where in the audio it was asked."""

    command: Command
    image: Image | None
    recognition: Recognition | None
    asked_s: float  # the command utterance's end, seconds into the audio


@dataclass
class Clarifying:
    """A question answered "Did you mean <bo> or <beau>?": the next utterance may choose, without the wake phrase."""

    reply: Reply
    asked_s: float  # the question's end, seconds into the audio


class Listener:
    """Turns utterances into answers for one household. `speaker` None: answers are only returned (--mute)."""

    def __init__(self, home, transcriber: Transcriber, vad: SileroVad, speaker=None, wake: str | None = None,
                 latest: Latest | None = None, silence_ms: float = 400.0):
        self.home = home
        self.transcriber = transcriber
        self.speaker = speaker
        self.wake = wake
        self.latest = latest or (lambda: None)
        self.segmenter = Segmenter(vad, silence_ms=silence_ms, on_speech_start=self._speech_started,
                                   awaiting=lambda: self.pending is not None or self.clarifying is not None
                                   or self._command_first)
        self._started = False  # whether speech has started since `push_to_talk` began (or its wait began again)
        self._wait = (0, 0.0)  # push-to-talk: (from which chunk, how many seconds) to wait for speech to start
        self._chunk = 0  # push-to-talk: the chunk last heard
        self.pending: Pending | None = None  # a command asked back, waiting for the next utterance
        self.missed: Pending | None = None  # one that waited too long, as the utterance after it is heard
        self.clarifying: Clarifying | None = None  # a question asked back ("Did you mean ...?"), the same
        self._command_first = False  # a recording's push-to-talk: its first utterance is a command, answered after it

    def barge_in(self) -> None:
        """The user started speaking: stop the device talking."""
        if self.speaker is not None and not self.speaker.flush(0):
            self.speaker.interrupt()

    def _speech_started(self) -> None:
        self._started = True
        self.barge_in()

    def turns(self, chunks: Iterable[np.ndarray]) -> Iterator[Turn]:
        """Every utterance as a turn, triggered by the wake phrase (or by following a bare one closely); without
        a wake phrase every utterance is a question."""
        armed_until = 0.0  # seconds into the audio (a file is read faster than it plays)
        for utterance in self.segmenter.utterances(chunks, longest_s=LONGEST_S - 2):
            text, asr_ms = self._transcribe(utterance)
            if self._echo(text):
                continue
            if self._awaits(utterance):  # its yes or no: no wake phrase needed
                if intents.says_nothing(text):  # a hesitation, a noise: no answer, nor a question ("I don't know.")
                    yield Turn(False, text, timings={"vad_ms": utterance.vad_ms, "asr_ms": asr_ms})
                    continue
                heard = after_wake(text, self.wake) if self.wake else None
                if heard is None and utterance.start_s < armed_until:
                    heard = text  # what follows a bare wake phrase closely, as if said after it
                if heard is None or intents.is_answer(heard or text):  # "Yes, hey robot": the words before it
                    yield self._confirm(text, heard or text, utterance, asr_ms)
                    continue
                if heard:  # a new question: the command is not done (the wake phrase alone: still waiting)
                    yield self._confirm(text, "", utterance, asr_ms)
            elif self.missed and intents.is_yes((after_wake(text, self.wake) if self.wake else None) or text):
                self.pending = self.missed  # a yes too late: said so, not left unanswered as if it had been done
                yield self._confirm(text, "", utterance, asr_ms, late=True)
                continue
            if chosen := self._chosen(text, utterance):  # "Beau." to "Did you mean <bo> or <beau>?"
                yield self._answer(text, chosen, utterance, asr_ms)
                continue
            question = text if not self.wake else after_wake(text, self.wake)
            if question is None and utterance.start_s < armed_until and text:
                question = text
            if question is None or not question:
                armed_until = utterance.end_s + ARMED_S if question == "" else 0.0
                yield Turn(False, text, timings={"vad_ms": utterance.vad_ms, "asr_ms": asr_ms})
                continue
            armed_until = 0.0
            yield self._answer(text, question, utterance, asr_ms)

    def push_to_talk(self, chunks: Iterable[np.ndarray], first_only: bool = False,
                     wait_s: float | None = None) -> Turn:
        """All the speech in `chunks` (or only its first utterance, for a live microphone) is one question; a
        memory command's answer is the speech after it (the next utterance, for a microphone), as is the name chosen
        when a forget, an add or (on a microphone: a recording is one question) a question was asked back ("Did you
        mean <f> or <f'>?"). `wait_s`: give up
        when no speech has started within this many seconds of audio (a `timed_out` turn), cut speech off
        `LONGEST_S` after that, and give up on a command's yes or no `intents.CONFIRM_S` after it was asked; None
        waits as long as the chunks last (a recording)."""
        if wait_s is not None:
            chunks = self._within(chunks, wait_s)
        stream = self.segmenter.utterances(chunks)
        heard: dict[tuple[float, int], tuple[str, float]] = {}  # an utterance transcribed once, however often asked

        def transcribed(utterance: Utterance) -> tuple[str, float]:
            key = (utterance.start_s, len(utterance.samples))
            if key not in heard:
                heard[key] = self._transcribe(utterance)
            return heard[key]

        utterances: list[Utterance] = []
        try:
            for utterance in stream:
                utterances.append(utterance)
                if first_only:
                    break
                if len(utterances) == 1:  # a command's brisk "Yes." after it is kept as `turns` keeps it when asked
                    self._command_first = intents.looks_like_command(transcribed(utterance)[0])
        finally:
            self._command_first = False
        if not utterances:
            return Turn(False, "", timings={"vad_ms": self.segmenter.take_ms()},
                        timed_out=wait_s is not None and not self._started)
        whole = _joined(utterances)
        if len(whole.samples) > (LONGEST_S + 1) * RATE:  # said, or the answer would rest on words never heard
            log.warning("%.0f s of speech: only its first %.0f s were heard (a question is shorter; with --wake, "
                        "a question after the wake phrase is found in a longer recording)",
                        len(whole.samples) / RATE, LONGEST_S)
        text, asr_ms = transcribed(whole)
        if not text:
            return Turn(False, "", timings={"vad_ms": whole.vad_ms, "asr_ms": asr_ms})
        if len(utterances) > 1 and intents.looks_like_command(text):  # the command, then its answers
            whole, rest = self._split(utterances, transcribed)
            answers: Iterator[Utterance] = iter(rest)
            text, asr_ms = transcribed(whole)
        else:
            answers = stream
        turn = self._answer(text, text, whole, asr_ms)
        if turn.asking_back and not turn.asking:  # "Did you mean <f> or <f'>?", of a command or a question
            if wait_s is not None:
                self._wait, self._started = (self._chunk, intents.CONFIRM_S), False
            turn = self._choice(turn, answers, transcribed)
        if not turn.asking:
            return turn
        if wait_s is not None:  # its yes or no is waited for as long as `turns` waits: not a question's 30 s
            self._wait, self._started = (self._chunk, intents.CONFIRM_S), False
        for answer in answers:
            if not self._awaits(answer):
                break
            said, asr_ms = transcribed(answer)
            if not self._echo(said) and not intents.says_nothing(said):
                return self._confirm(f"{turn.transcript} {said}".strip(), said, answer, asr_ms)  # all its words
        return self.cancel(turn)

    def _split(self, utterances: list[Utterance], transcribed) -> tuple[Utterance, list[Utterance]]:
        """A recording's command and the answers after it: up to its first yes or no, so that a pause inside the
        command ("remember this as ... Teddy") does not end it, or up to the name chosen when it was asked back
        ("Forget F. The second one. Yes.": the choice, then its yes or no). The command is read from its
        utterances' own words, heard once each, not from theirs together (another whisper run for each)."""
        for k in range(1, len(utterances)):
            said = transcribed(utterances[k])[0]
            if intents.is_answer(said):
                return _joined(utterances[:k]), [_joined(utterances[k:])]
            if self._chooses(" ".join(transcribed(u)[0] for u in utterances[:k]), said):
                after = utterances[k + 1:]
                return _joined(utterances[:k]), [utterances[k], *([_joined(after)] if after else [])]
        return utterances[0], [_joined(utterances[1:])]

    def _chooses(self, command: str, said: str) -> bool:
        """Whether `said` chooses a name the words `command` would be asked back ("The second one." of "Forget F.",
        <f> and <f'> known)."""
        asked, line = intents.parse(command, *self._names())
        return asked is not None and asked.ambiguous is not None and clarified(_asked_back(asked, line, command),
                                                                               said) is not None

    def _choice(self, turn: Turn, answers: Iterable[Utterance], transcribed) -> Turn:
        """Push-to-talk: the command or question asked again of the name the speech after `turn` chose ("The second
        one."), as `turns` takes it; speech that chooses none is a question or command of its own, as in `turns`
        (a new question said meanwhile was dropped), but a bare yes or no; `turn` itself (its "Did you mean <f> or
        <f'>?") for that, or when none came within `intents.CONFIRM_S`. An invocation of its own could not tell
        <f> from <f'>."""
        for answer in answers:
            said, asr_ms = transcribed(answer)
            if self._echo(said) or intents.says_nothing(said):
                continue
            if chosen := self._chosen(said, answer):
                return self._answer(f"{turn.transcript} {said}", chosen, answer, asr_ms)
            return turn if intents.is_answer(said) else self._answer(said, said, answer, asr_ms)
        return turn

    def _echo(self, text: str) -> bool:
        """Whether `text` is one of the Speaker's recent lines (or a piece of it: speech cut it off, or a pause
        split it) heard back through the microphone; a word alone ("yes", "no") never is, nor what is longer than
        the line (a question that holds a short line, "I haven't seen Bo yet, where is he?")."""
        from rapidfuzz import fuzz

        heard = _words(text)
        lines = [_words(line) for line in (self.speaker.recent if self.speaker is not None else ())]
        return " " in heard and any(len(heard) <= len(line) + 2 and fuzz.partial_ratio(heard, line) >= ECHO_MATCH
                                    for line in lines)

    def _within(self, chunks: Iterable[np.ndarray], wait_s: float) -> Iterator[np.ndarray]:
        """`chunks` until `wait_s` seconds of them have passed without speech starting (or as many as `_wait` says
        since a command was asked back), or `LONGEST_S` after it started (counted in audio, which a microphone
        delivers at real time). Speech going on when the wait ends is waited for until it is heard long enough to be
        the user's (`_started`, at barge-in) or dropped as a click: a "No." begun in the wait's last moment counts."""
        self._started, self._wait = False, (0, wait_s)
        per_s, began = RATE / CHUNK, None
        for k, chunk in enumerate(chunks):
            self._chunk = k
            began = None if not self._started else k if began is None else began
            since, wait = self._wait
            if (k - since >= wait * per_s and not self.segmenter.speaking if began is None
                    else k - began >= LONGEST_S * per_s):
                return
            yield chunk

    def cancel(self, turn: Turn) -> Turn:
        """No answer came to the command `turn` asked (the audio ended): cancelled, and said so."""
        self.pending = None
        command = replace(turn.command, state="cancelled")
        line = f"I heard no answer, so I will not {command.doing}."
        self._speak(line)
        return Turn(True, turn.transcript, Reply(line, "command", _about(command), turn.transcript), turn.timings,
                    command)

    def _say(self, text: str, timeout: float = 30.0) -> float:
        """Hand the answer to the Speaker and wait only until its audio starts (not until it ends: speech heard
        meanwhile interrupts it); when that was."""
        return self.speaker.say(text, answer=True).wait_audio(timeout) or time.perf_counter()

    def _speak(self, text: str) -> float:
        return self._say(text) if self.speaker is not None else time.perf_counter()

    def _awaits(self, utterance: Utterance) -> bool:
        """Whether `utterance` answers a pending command; a pending one too old is dropped (`missed`, while this
        utterance is heard)."""
        self.missed = None
        if self.pending is not None and utterance.start_s - self.pending.asked_s > intents.CONFIRM_S:
            self.pending, self.missed = None, self.pending
        return self.pending is not None

    def _chosen(self, text: str, utterance: Utterance) -> str | None:
        """The question a "Did you mean ...?" was about, with the name `text` chose; None when there is no such
        question (or it is older than `intents.CONFIRM_S`) or `text` chooses none. Either way it is asked no more."""
        asked, self.clarifying = self.clarifying, None
        if asked is None or utterance.start_s - asked.asked_s > intents.CONFIRM_S:
            return None
        heard = after_wake(text, self.wake) if self.wake else None
        return clarified(asked.reply, text if heard is None else heard)

    def _names(self) -> tuple[list[str], dict[str, str]]:
        """The concepts' names, and each one's category (`intents.parse`: "Forget Bo the dog.")."""
        categories = {c.name: c.category for c in self.home.concepts()}
        return list(categories), categories

    def _transcribe(self, utterance: Utterance) -> tuple[str, float]:
        names = [c.name for c in self.home.concepts()]
        transcript = self.transcriber(utterance.samples, names, self.wake or "")
        return transcript.text, transcript.ms

    def _answer(self, text: str, question: str, utterance: Utterance, asr_ms: float) -> Turn:
        started = time.perf_counter()
        latest = self.latest()
        image, recognition = latest if latest is not None else (None, None)
        names, categories = self._names()
        command, line = intents.parse(question, names, categories)
        if command is not None and command.state == "asked" and command.action != "forget" and image is None:
            command, line = replace(command, state="refused"), intents.NO_FRAME  # a yes could do nothing
        if command is not None:  # `concepts` lists a remembered one, not a name misheard or still to be learnt, nor
            # the words asked back ("Did you mean <f> or <f'>?" is about neither yet), nor those refused as naming none
            about = [command.name] if command.named and command.name in names and command.ambiguous is None else []
            answer = Reply(line, "command", about, question)
            if command.state == "asked":
                self.pending = Pending(command, image, recognition, utterance.end_s)
            elif command.ambiguous is not None:  # "Forget F.", "This is also F." of <f> and <f'>: "the second one"
                self.clarifying = Clarifying(_asked_back(command, line, question), utterance.end_s)
        else:
            answer = self._reply(question, image, recognition)
            if answer.mode == "clarify":
                self.clarifying = Clarifying(answer, utterance.end_s)
        return self._said(Turn(True, text, answer, command=command), utterance, asr_ms, started)

    def _reply(self, question: str, image: Image | None, recognition: Recognition | None) -> Reply:
        """The answer; an error answering (the memory or event log unreadable, the VLM's context too small for the
        prompt) is said in one line, and the listener goes on: it ended `run --voice`'s listening for the rest of
        its run."""
        try:
            return reply(self.home, question, image, recognition)
        except EdgeRapError as e:
            log.warning("voice question %r: %s", question, e)
            return Reply(f"I can't answer that now: {intents.spoken_reason(e)}", "template", [], question)

    def _confirm(self, text: str, said: str, utterance: Utterance, asr_ms: float, late: bool = False) -> Turn:
        """The answer to the pending command: done on a yes, cancelled on anything else (or `late`)."""
        started = time.perf_counter()
        pending, self.pending = self.pending, None
        if intents.is_yes(said):
            command, line = intents.carry_out(self.home, pending.command, pending.image, pending.recognition)
        else:
            command = replace(pending.command, state="cancelled")
            line = f"I stopped waiting for a yes, so I did not {command.doing}." if late else \
                f"OK, I will not {command.doing}."
        answer = Reply(line, "command", _about(command), said)
        return self._said(Turn(True, text, answer, command=command), utterance, asr_ms, started)

    def _said(self, turn: Turn, utterance: Utterance, asr_ms: float, started: float) -> Turn:
        """Say the turn's answer (not one a stop cut: half an answer said is a wrong one); its timings."""
        answered = time.perf_counter()
        turn.timings = {"vad_ms": utterance.vad_ms, "asr_ms": asr_ms, "answer_ms": 1000 * (answered - started)}
        if turn.reply.cut:
            return turn
        start = self._speak(turn.reply.text)
        turn.timings["speech_end_to_answer_start_ms"] = 1000 * (start - utterance.ended_at)
        return turn


def _asked_back(command: Command, line: str, question: str) -> Reply:
    """A forget or add said like two names as the question asked back, which the next utterance may answer."""
    return Reply(line, "clarify", [], question, [list(command.ambiguous.names)], said=command.ambiguous.words)


def _about(command: Command) -> list[str]:
    """`--json`'s concepts for a command answered: the concept it is about, not a name never remembered (a
    remember cancelled, failed or too late), as when it was asked."""
    return [] if command.action == "remember" and command.state != "done" else [command.name]


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _joined(utterances: list[Utterance]) -> Utterance:
    """Several utterances as one (push-to-talk: a pause inside a question does not split it)."""
    last = utterances[-1]
    return Utterance(np.concatenate([u.samples for u in utterances]), utterances[0].start_s, last.end_s,
                     last.ended_at, sum(u.vad_ms for u in utterances))
