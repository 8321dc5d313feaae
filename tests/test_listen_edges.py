"""The voice side's edges, found by trying it as a user: wake phrases no one can say, a microphone that cannot be
opened, a daemon stopped while whisper works, a command with no frame to act on, `listen --wav --wake`'s JSON,
a WAV whose recorder never wrote its size, and push-to-talk speech longer than whisper hears. Whisper and silero
are stood in for (a scripted transcriber, a VAD that hears any loud chunk), so that only the logic around them
is tested, quickly."""

from __future__ import annotations

import json
import struct
import sys
import threading
import time
import types

import numpy as np
import pytest

pytest.importorskip("rapidfuzz", reason="the voice extra is not installed (pip install 'edge_rap[voice]')")
pytest.importorskip("jellyfish", reason="the voice extra is not installed (pip install 'edge_rap[voice]')")

from voices import fake_piper  # noqa: E402

from edge_rap.errors import EdgeRapError  # noqa: E402
from edge_rap.speech.asr import Transcript  # noqa: E402
from edge_rap.speech.audio import CHUNK, RATE  # noqa: E402


def loud(seconds: float) -> np.ndarray:
    """A stretch the stand-in VAD takes for speech."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.float32)


def pieces(*parts: np.ndarray):
    x = np.concatenate(parts)
    x = np.pad(x, (0, -len(x) % CHUNK))
    return [x[i:i + CHUNK] for i in range(0, len(x), CHUNK)]


class Scripted:
    """Stands in for the Transcriber: says the next of `texts` for each utterance, taking `delay` s to."""

    def __init__(self, *texts: str, delay: float = 0.0):
        self.texts, self.delay, self.heard = list(texts), delay, []
        self.working = threading.Event()

    def __call__(self, samples, names=(), hint="") -> Transcript:
        self.working.set()
        time.sleep(self.delay)
        self.heard.append(len(samples) / RATE)
        return Transcript(self.texts.pop(0) if self.texts else "", 1.0, len(samples) / RATE, 0.0)


def vad(chunk) -> float:
    """Stands in for silero: any loud chunk is speech."""
    return float(np.abs(chunk).max() > 0.05)


class Home:
    """The household as the listener uses it: a few concepts, no models."""

    def __init__(self, *names: str):
        self.names = names
        self.events = types.SimpleNamespace(last_seen=lambda name: None)
        self.assistant = types.SimpleNamespace(
            ask=lambda question, *_, **__: types.SimpleNamespace(text="I don't know.", mode="template", concepts=[],
                                                                 stopped="eos"))

    def concepts(self):
        return [types.SimpleNamespace(name=n, category="") for n in self.names]


# --- the wake phrase -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("phrase", ["!!!", "...", "こんにちは ロボット", "привет робот", "-"])
def test_a_wake_phrase_with_no_word_to_hear_is_refused_not_matched_by_everything(phrase):
    # Before: after_wake found no word in the phrase and took every utterance as the question, so `listen --wake
    # '!!!'` and `run --voice --wake '!!!'` answered all talk in the room.
    from edge_rap.daemon.config import run_config
    from edge_rap.speech.wake import after_wake, check_wake

    assert after_wake("I think it is going to rain later today.", phrase) is None
    with pytest.raises(EdgeRapError, match="no word to listen for"):
        check_wake(phrase)
    with pytest.raises(EdgeRapError, match="--wake .*: no word to listen for"):
        run_config({"sources": ("0",), "voice": True, "wake": phrase}, None)


def test_an_accented_wake_phrase_is_heard_as_whisper_writes_it():
    from edge_rap.speech.wake import after_wake, check_wake

    assert check_wake("Hé robot") == "Hé robot"
    assert after_wake("He robot, where is Bo?", "Hé robot") == "where is Bo?"
    assert after_wake("Hé robot, où est Bo?", "hey robot") == "où est Bo?"  # positions kept in the transcript


def test_cli_listen_refuses_a_wake_phrase_with_no_word_and_a_negative_timeout(settings, capsys, tmp_path):
    from edge_rap import cli

    wav = tmp_path / "q.wav"
    wav.write_bytes(b"RIFF" + struct.pack("<I", 36) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, RATE, 2 * RATE,
                                                                               2, 16) + b"data" + struct.pack("<I", 0))
    settings.memory.mkdir(parents=True)
    rc = cli.main(["listen", "--wav", str(wav), "--wake", "?!", "--mute", "--memory", str(settings.memory)])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and err.count("\n") == 1 and "--wake '?!': no word to listen for" in err
    for wait in ("-5", "nan"):  # before: waited forever, as --timeout 0 does
        rc = cli.main(["listen", "--mic", "--timeout", wait, "--mute", "--memory", str(settings.memory)])
        out, err = capsys.readouterr()
        assert rc == 2 and out == "" and err.count("\n") == 1
        assert err == f"edge-rap: --timeout must be 0 (wait forever) or more seconds, not {wait}\n"


def test_listen_stopped_by_sigterm_cuts_its_answer_instead_of_saying_it_out(settings, capsys, monkeypatch,
                                                                             stop_signal):
    # Before: a SIGTERM (`kill`) now takes Ctrl-C's way, whose cleanup then waited up to a minute for the queued
    # answer to be said: a `kill` reaches no player or piper, as Ctrl-C's SIGINT does the terminal's whole group.
    import signal

    import edge_rap.speech.asr
    import edge_rap.speech.audio
    import edge_rap.speech.tts
    import edge_rap.speech.vad
    from edge_rap import cli

    ended = []

    class Speaker:
        def flush(self, timeout):
            ended.append("flush")
            return True

        def close(self, timeout=1.0):
            ended.append("close")

    class Microphone:
        def chunks(self):
            stop_signal(signal.SIGTERM)
            yield from pieces(quiet(0.1))

        def close(self):
            ended.append("microphone")

    monkeypatch.setattr(edge_rap.speech.asr, "Transcriber", lambda *a, **k: Scripted())
    monkeypatch.setattr(edge_rap.speech.vad, "SileroVad", lambda: vad)
    monkeypatch.setattr(edge_rap.speech.audio, "Microphone", Microphone)
    monkeypatch.setattr(edge_rap.speech.tts, "open_speaker", lambda *a: Speaker())
    settings.memory.mkdir(parents=True)
    rc = cli.main(["listen", "--mic", "--memory", str(settings.memory)])
    assert (rc, capsys.readouterr().err) == (143, "edge-rap: stopped by SIGTERM\n")
    assert ended == ["microphone", "close"]


# --- the microphone -------------------------------------------------------------------------------------------

class PortAudioError(Exception):
    pass


def fake_sounddevice(monkeypatch, fails_at: str):
    class InputStream:
        def __init__(self, callback, **_):
            if fails_at == "open":
                raise PortAudioError("Error opening InputStream: Device unavailable [PaErrorCode -9985]")
            self.closed = False

        def start(self):
            if fails_at == "start":
                raise PortAudioError("Error starting stream: Device or resource busy [ALSA error -16]")

        def close(self):
            self.closed = True

        def __enter__(self):
            self.start()
            return self

        def __exit__(self, *_):
            return False

    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(
        query_devices=lambda device=None, kind=None: {"name": "USB mic", "default_samplerate": 16000.0},
        InputStream=InputStream, PortAudioError=PortAudioError))


@pytest.mark.parametrize("fails_at, said", [("open", "Device unavailable"), ("start", "Device or resource busy")])
def test_a_microphone_that_cannot_be_opened_is_one_line(monkeypatch, fails_at, said):
    # Before: sounddevice's PortAudioError (a busy device, one unplugged since it was listed) came out of
    # `listen --mic` as a traceback, and out of `run --voice`'s voice thread as another.
    pytest.importorskip("soxr", reason="the voice extra is not installed (pip install 'edge_rap[voice]')")
    from edge_rap.speech.audio import Microphone

    fake_sounddevice(monkeypatch, fails_at)
    with pytest.raises(EdgeRapError, match=f"cannot open the microphone \\(USB mic\\): .*{said}"):
        next(Microphone().chunks())


def test_no_input_device_is_said_to_be_no_microphone(monkeypatch):
    # Before: "edge-rap: no input device: Error querying device -1" (PortAudio installed, no microphone: a
    # headless board), which names no microphone (tests/test_daemon.py expects one named).
    from edge_rap.speech.audio import Microphone

    def no_input(device=None, kind=None):
        raise PortAudioError("Error querying device -1")

    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(query_devices=no_input,
                                                                           PortAudioError=PortAudioError))
    with pytest.raises(EdgeRapError, match=r"^no microphone: no audio input device \(Error querying device"):
        Microphone()


def test_the_voice_loop_says_in_one_line_why_it_stopped(monkeypatch, caplog):
    pytest.importorskip("soxr", reason="the voice extra is not installed (pip install 'edge_rap[voice]')")
    from edge_rap.speech import loop

    fake_sounddevice(monkeypatch, "start")
    voice = voice_loop(monkeypatch, Scripted(), source=None)
    voice.start()
    assert voice.stop(5.0)
    records = [r for r in caplog.records if "voice loop stopped" in r.getMessage()]
    assert len(records) == 1 and records[0].exc_info is None and "Device or resource busy" in records[0].getMessage()
    assert loop.log.name == "edge_rap.speech.loop"


# --- stopping the daemon's voice loop ------------------------------------------------------------------------------

def voice_loop(monkeypatch, transcriber, source, heartbeat=None, speaker=None, home=None):
    import edge_rap.speech.asr
    import edge_rap.speech.vad
    from edge_rap.speech.loop import VoiceLoop

    monkeypatch.setattr(edge_rap.speech.asr, "Transcriber", lambda *a, **k: transcriber)
    monkeypatch.setattr(edge_rap.speech.vad, "SileroVad", lambda: vad)
    home = home or Home("bo")
    home.settings = types.SimpleNamespace(models=None)
    reported = []
    voice = VoiceLoop(home, speaker, lambda: None, reported.append, source=source, heartbeat=heartbeat)
    voice.reported = reported
    return voice


def test_stopping_the_voice_loop_waits_for_whisper_and_hears_nothing_more(monkeypatch):
    # Before: `run` gave the voice thread 1 s and went on to close the household and exit; a process exiting
    # while whisper ran in that thread was aborted (exit 134, "terminate called without an active exception")
    # or crashed (139). And a source that is not the microphone was never stopped at all.
    closed = []

    def source():
        try:
            yield from pieces(quiet(0.5), loud(1.0), quiet(1.0))  # one utterance, ended
            while True:  # then speech that has not ended when the loop is stopped
                yield pieces(loud(0.1))[0]
                time.sleep(0.002)
        finally:
            closed.append(True)

    transcriber = Scripted("Hey robot, is Bo home?", "Hey robot, where is", delay=1.0)
    voice = voice_loop(monkeypatch, transcriber, source())
    voice.start()
    assert transcriber.working.wait(10)  # whisper is at work on the first utterance
    assert voice.stop(timeout=10.0)  # it has ended when stop returns ...
    assert not voice._thread.is_alive() and closed == [True]  # ... its source closed (a microphone stops with it)
    assert len(transcriber.heard) == 1  # the speech cut off by the stop was not transcribed
    assert voice.turns == 1 and voice.reported[0].transcript == "Hey robot, is Bo home?"


def test_a_stop_cuts_the_vlms_answer_to_a_spoken_question_at_its_next_token_and_it_is_not_said(monkeypatch, tiny):
    # Before: `run`'s stop waited up to 30 s for the voice loop while the VLM went on answering (on a CPU, a few
    # tokens a second), then exited under llama.cpp; a slower answer was said after the stop, or half of it.
    from edge_rap.generate.assistant import Assistant
    from edge_rap.generate.vlm import LlamaVlm, VlmSpec

    stopping, started = threading.Event(), threading.Event()
    before, after = [], []
    with LlamaVlm(VlmSpec(tiny[0], tiny[1], "tiny", n_ctx=2048), stopping) as vlm:
        answering = vlm.generate

        def generate(prompt, on_text=None, *args, **kwargs):
            def piece(text: str) -> None:
                (after if stopping.is_set() else before).append(text)
                started.set()
                stopping.wait(10)  # a slow CPU: the first token is still the newest when the stop comes
                on_text(text)
            return answering(prompt, piece, *args, **kwargs)

        monkeypatch.setattr(vlm, "generate", generate)
        room = Room()
        voice = voice_loop(monkeypatch, Scripted("Hey robot, tell me a story."),
                           iter(pieces(quiet(0.5), loud(1.0), quiet(1.0)) + pieces(quiet(1.0)) * 30), speaker=room)
        voice.listener.home.assistant = Assistant(types.SimpleNamespace(concepts=lambda: []), None, vlm)
        voice.start()
        assert started.wait(60)  # the VLM is answering the question
        stopping.set()  # what `run` does first when it stops (the household's `stopping` is its stop)
        assert voice.stop(timeout=10.0)
    turn, = voice.reported
    answer = turn.reply.answer
    assert answer.stopped == "interrupted" and turn.reply.cut
    assert len(before) == 1 and after == [] and answer.n_tokens == 1  # no token made after the stop
    assert room.said == []  # half an answer is not said


def test_the_voice_loop_checks_in_at_each_chunk_and_is_waited_for_no_more_once_it_ended(monkeypatch):
    # systemd's watchdog (`run --voice`): the listener is one of the parts that must each make progress
    from edge_rap.liveness import Heartbeat

    turns = iter(range(1, 1000))  # a clock that moves one tick a reading
    heartbeat = Heartbeat("the voice listener", lambda: next(turns))
    audio = pieces(quiet(0.5), loud(1.0), quiet(1.0))
    voice = voice_loop(monkeypatch, Scripted("Hey robot, is Bo home?"), iter(audio), heartbeat)
    assert not heartbeat.idle
    voice.start()
    assert voice.wait(30)  # the recording heard to its end
    assert heartbeat.last == 1 + len(audio) and heartbeat.idle



class Failing(Scripted):
    """Whisper failing with its own error (not an EdgeRapError) on the utterances numbered in `fails`; or with
    `error`."""

    def __init__(self, *texts: str, fails: set[int], error: Exception | None = None):
        super().__init__(*texts)
        self.fails, self.calls = fails, 0
        self.error = error or RuntimeError("CUDA failed with error out of memory")

    def __call__(self, samples, names=(), hint="") -> Transcript:
        self.calls += 1
        if self.calls in self.fails:
            raise self.error
        return super().__call__(samples, names, hint)


def test_a_turn_that_fails_unexpectedly_is_logged_and_the_next_question_answered(monkeypatch, caplog):
    # Before: whisper's (or onnxruntime's) own error on one utterance ended `run --voice`'s listening for the rest
    # of the run, which may be months; the cameras went on deaf.
    closed = []

    def source():
        try:
            yield from pieces(quiet(0.5), loud(1.0), quiet(1.0), loud(1.0), quiet(1.0))
        finally:
            closed.append(True)

    voice = voice_loop(monkeypatch, Failing("Hey robot, is Bo home?", fails={1}), source())
    voice.start()
    assert voice.wait(30)
    assert [t.transcript for t in voice.reported] == ["Hey robot, is Bo home?"]  # the second utterance answered
    failed = [r for r in caplog.records if "voice turn failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is not None  # logged whole: an unexpected error's trace
    assert closed == [True]


def test_a_turn_that_fails_with_a_device_error_is_said_in_one_line_and_the_next_question_answered(monkeypatch,
                                                                                                    caplog):
    # Before: an EdgeRapError of a turn's own (the memory's database locked a moment as its names were read for
    # whisper's prompt) was taken for a microphone that could not start: listening ended for the rest of the run
    from pathlib import Path

    from edge_rap.errors import DeviceError

    locked = DeviceError(Path("/m/memory.sqlite"), "cannot read the memory (database is locked)")
    source = iter(pieces(quiet(0.5), loud(1.0), quiet(1.0), loud(1.0), quiet(1.0)))
    voice = voice_loop(monkeypatch, Failing("Hey robot, is Bo home?", fails={1}, error=locked), source)
    voice.start()
    assert voice.wait(30)
    assert [t.transcript for t in voice.reported] == ["Hey robot, is Bo home?"]
    failed = [r for r in caplog.records if "voice turn failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is None and "database is locked" in failed[0].getMessage()


def test_turns_that_fail_in_a_row_stop_the_voice_loop_and_close_its_source(monkeypatch, caplog):
    from edge_rap.speech.loop import FAILED_IN_A_ROW

    closed = []

    def source():
        try:
            yield from pieces(*[part for _ in range(FAILED_IN_A_ROW + 2) for part in (quiet(0.5), loud(1.0))])
            while True:  # a microphone: it never ends by itself
                yield pieces(quiet(0.1))[0]
        finally:
            closed.append(True)

    transcriber = Failing("Hey robot, is Bo home?", fails=set(range(1, 100)))
    voice = voice_loop(monkeypatch, transcriber, source())
    voice.start()
    assert voice.wait(30)  # ended by itself: whisper cannot work
    assert transcriber.calls == FAILED_IN_A_ROW and voice.reported == [] and closed == [True]
    assert [r.getMessage() for r in caplog.records if "voice loop stopped" in r.getMessage()] == [
        f"the voice loop stopped: {FAILED_IN_A_ROW} turns in a row failed"]


def test_a_command_asked_before_a_failed_turn_still_stops_waiting_after_its_time(monkeypatch):
    # Before: listening went on after the failed turn with the audio's clock back at 0 s, so a command asked before
    # it waited for its yes far past its 10 s: a "Yes." said 30 s later, to anyone, forgot <bo>
    home = Forgetful("bo")
    transcriber = Failing("Hey robot, forget Bo.", "Yes.", fails={2})
    source = iter(pieces(quiet(0.5), loud(1.0), quiet(30.0), loud(1.0), quiet(1.0), loud(1.0), quiet(1.0)))
    voice = voice_loop(monkeypatch, transcriber, source, home=home)
    voice.start()
    assert voice.wait(30)
    assert [t.command.state for t in voice.reported] == ["asked", "cancelled"] and home.forgotten == []
    assert voice.reported[-1].reply.text == "I stopped waiting for a yes, so I did not forget <bo>."


# --- a command with no frame --------------------------------------------------------------------------------------

@pytest.mark.parametrize("said, action", [("Hey robot, remember this as Teddy.", "remember"),
                                          ("Hey robot, this is also Bo.", "add")])
def test_a_command_that_needs_a_frame_is_refused_at_once_without_one(said, action):
    # Before: the device asked "Shall I remember this as <teddy>? Say yes or no." and, on the yes, said "I have no
    # camera frame to remember": the user was asked for a yes that could do nothing.
    from edge_rap.speech.intents import NO_FRAME
    from edge_rap.speech.listen import Listener

    listener = Listener(Home("bo"), Scripted(said), vad, wake="hey robot")
    turn, = listener.turns(iter(pieces(loud(1.0), quiet(1.0))))
    assert turn.command.action == action and turn.command.state == "refused" and not turn.asking
    assert turn.reply.text == NO_FRAME and listener.pending is None
    forget, = Listener(Home("bo"), Scripted("Hey robot, forget Bo."), vad, wake="hey robot").turns(
        iter(pieces(loud(1.0), quiet(1.0))))
    assert forget.asking  # forgetting needs no frame


# --- the device's own voice heard back ---------------------------------------------------------------------------

class Room:
    """A loudspeaker in the room: what the device says starts at once (and the microphone hears it: the script)."""

    def __init__(self):
        self.said, self.recent = [], ()

    def say(self, text, answer=False):
        from edge_rap.speech.tts import spoken

        self.said.append(text)
        self.recent = (*self.recent[-2:], spoken(text))
        return types.SimpleNamespace(wait_audio=lambda timeout: time.perf_counter())

    def flush(self, timeout):
        return True

    def interrupt(self):
        pass


class Forgetful(Home):
    def __init__(self, *names: str):
        super().__init__(*names)
        self.forgotten = []

    def forget(self, name):
        self.forgotten.append(name)
        return types.SimpleNamespace(name=name)


@pytest.mark.parametrize("echo", ["Shall I forget Bo? Say yes or no.", "Shall I", "Say yes or no."])
def test_the_devices_own_question_heard_back_is_not_its_answer(echo):
    # No echo cancellation: the microphone hears the loudspeaker ask "Shall I forget <bo>? Say yes or no." (or a
    # piece of it). Before, that was the answer, not a yes: every spoken command was cancelled on such a device.
    from edge_rap.speech.listen import Listener

    home, room = Forgetful("bo"), Room()
    heard = Scripted("Hey robot, forget Bo.", echo, "Yes.")
    said = [t for t in Listener(home, heard, vad, room, wake="hey robot").turns(
        iter(pieces(loud(1.0), quiet(1.0), loud(1.0), quiet(1.0), loud(0.5), quiet(1.0)))) if t.triggered]
    assert [t.command.state for t in said] == ["asked", "done"] and home.forgotten == ["bo"]
    home, room = Forgetful("bo"), Room()  # push-to-talk on the microphone: the next utterance is the answer
    turn = Listener(home, Scripted("Forget Bo.", echo, "Yes."), vad, room).push_to_talk(
        iter(pieces(loud(1.0), quiet(1.0), loud(1.0), quiet(1.0), loud(0.5), quiet(1.0))), first_only=True)
    assert turn.command.state == "done" and home.forgotten == ["bo"] and room.said[-1] == "I forgot <bo>."



@pytest.mark.parametrize("then", ["No.", "Hey robot, no.", None])  # None: the audio ends
def test_a_remember_not_done_names_no_concept(then):
    # Before: "concepts": ["teddy"] once the yes was not given, though no <teddy> was ever remembered (asked, it
    # listed none). Another photo of a known one, not given, is still about it.
    from edge_rap.speech.listen import Listener

    for said, about in (("Hey robot, remember this as Teddy.", []), ("Hey robot, remember this as Bo.", ["bo"])):
        listener = Listener(Home("bo"), Scripted(said, then or ""), vad, wake="hey robot",
                            latest=lambda: (object(), None))
        talk = [loud(1.0), quiet(1.0)] * (2 if then else 1)
        turns = [t for t in listener.turns(iter(pieces(*talk))) if t.triggered]
        turn = turns[-1] if then else listener.cancel(turns[-1])
        assert turn.command.state == "cancelled" and turn.reply.names == about, said

@pytest.mark.parametrize("wait_s", [10.0, float("inf")])  # --timeout 10 (the default), --timeout 0 (forever)
def test_push_to_talk_gives_up_on_a_yes_ten_seconds_after_asking(wait_s):
    # Before: `listen --mic` said "I heard no answer" only 30 s after the command began (the question's own limit),
    # and with --timeout 0 never: it listened on until someone spoke.
    from edge_rap.speech.intents import CONFIRM_S
    from edge_rap.speech.listen import Listener

    heard = []

    def microphone():  # the command, then a room that stays quiet
        for chunk in pieces(loud(1.0), quiet(1.0)):
            heard.append(chunk)
            yield chunk
        while True:
            heard.append(np.zeros(CHUNK, np.float32))
            yield heard[-1]

    home = Forgetful("bo")
    turn = Listener(home, Scripted("Forget Bo."), vad).push_to_talk(microphone(), first_only=True, wait_s=wait_s)
    assert turn.command.state == "cancelled" and home.forgotten == []
    assert len(heard) * CHUNK / RATE < 1.0 + CONFIRM_S + 1.0  # the command, 10 s, and the VAD's pause
    heard.clear()  # a choice asked back ("Did you mean <f> or <f'>?") is waited for as long
    home = Forgetful("f", "f'")
    turn = Listener(home, Scripted("Forget F."), vad).push_to_talk(microphone(), first_only=True, wait_s=wait_s)
    assert turn.command.ambiguous is not None and turn.reply.text == "Did you mean <f> or <f'>?"
    assert len(heard) * CHUNK / RATE < 1.0 + CONFIRM_S + 1.0


def test_a_brisk_yes_or_no_or_choice_shorter_than_min_speech_is_heard_while_awaited():
    # Before: an answer shorter than min_speech_ms (250 ms; espeak-ng's "No." at 260 words a minute: 190 ms) was
    # dropped as a click, so the command waited on and was cancelled unanswered, and the choice was never made.
    # As long a sound when nothing is awaited is still no utterance (a knock is not a question).
    from edge_rap.speech.listen import Listener

    brisk = loud(0.2)  # above barge_in_ms (160), below min_speech_ms (250)
    home = Forgetful("bo")
    turn = Listener(home, Scripted("Forget Bo.", "Yes."), vad, Room()).push_to_talk(
        iter(pieces(loud(1.0), quiet(1.0), brisk, quiet(1.0))), first_only=True, wait_s=10.0)
    assert (turn.command.state, turn.transcript, home.forgotten) == ("done", "Forget Bo. Yes.", ["bo"])
    turn = Listener(Home("bo", "beau"), Scripted("Where is bow?", "Beau."), vad, Room()).push_to_talk(
        iter(pieces(loud(1.0), quiet(1.0), brisk, quiet(1.0))), first_only=True, wait_s=10.0)
    assert (turn.reply.names, turn.transcript) == (["beau"], "Where is bow? Beau.")
    listener = Listener(Home("bo"), Scripted("Where is Bo?", "Where is Bo?"), vad)
    assert [t.transcript for t in listener.turns(iter(pieces(brisk, quiet(1.0), loud(1.0), quiet(1.0))))] == \
        ["Where is Bo?"]


def test_a_recordings_brisk_yes_after_its_command_is_heard_but_not_after_a_question():
    # Before: a recording's utterances were all cut before its command was read, so a yes shorter than min_speech_ms
    # (espeak-ng's "Yes." at 380 words a minute) was dropped as a click and the forget cancelled unanswered
    from edge_rap.speech.listen import Listener

    brisk = loud(0.2)  # above barge_in_ms (160), below min_speech_ms (250)
    home = Forgetful("bo")
    said = Scripted("Forget Bo.", "Forget Bo. Yes.", "Yes.")  # the command, then both together, then the yes alone
    turn = Listener(home, said, vad).push_to_talk(iter(pieces(loud(1.0), quiet(1.0), brisk, quiet(1.0))))
    assert (turn.command.state, turn.transcript, home.forgotten) == ("done", "Forget Bo. Yes.", ["bo"])
    turn = Listener(Home("bo"), Scripted("Where is Bo?", "Anya."), vad).push_to_talk(
        iter(pieces(loud(1.0), quiet(1.0), brisk, quiet(1.0))))
    assert turn.transcript == "Where is Bo?"  # nothing awaited: as long a sound is still a click

def test_a_yes_said_with_the_command_is_not_its_answer():
    # Before: "Forget Bo. Yes." said as one utterance (no pause for the question) said "I don't know 'Bo. Yes', so
    # there is nothing to forget", "Remember this as Pip, yes." asked to remember <pip_yes> and "This is also Bo. Yes."
    # went to the assistant as a question. Now each is asked, and a yes said before the device asked is no answer: a
    # recording with nothing after it cancels, a microphone waits for the next utterance
    from edge_rap.speech.intents import parse
    from edge_rap.speech.listen import Listener

    for said, line in (("Forget Bo. Yes.", "Shall I forget <bo>? Say yes or no."),
                       ("Remember this as Pip, yes.", "Shall I remember this as <pip>? Say yes or no."),
                       ("This is also Bo. Yes, do it.", "Shall I add this as another photo of <bo>? Say yes or no.")):
        command, told = parse(said, ["bo"])
        assert (command.state, told) == ("asked", line), said
    home, room = Forgetful("bo"), Room()
    turn = Listener(home, Scripted("Forget Bo. Yes."), vad, room).push_to_talk(iter(pieces(loud(1.0), quiet(1.0))))
    assert turn.command.state == "cancelled" and home.forgotten == []
    assert room.said == ["Shall I forget <bo>? Say yes or no.", "I heard no answer, so I will not forget <bo>."]
    home = Forgetful("bo")  # on a microphone, the yes after the question
    turn = Listener(home, Scripted("Forget Bo. Yes.", "Yes."), vad, Room()).push_to_talk(
        iter(pieces(loud(1.0), quiet(1.0), loud(0.5), quiet(1.0))), first_only=True)
    assert turn.command.state == "done" and home.forgotten == ["bo"]


def test_push_to_talk_hears_speech_that_starts_just_before_its_wait_ends():
    # Before: the wait saw speech only at barge-in, `barge_in_ms` after it started: a question or a "No." begun in
    # the wait's last 160 ms was cut off there and the turn timed out. A click then is still no speech.
    from edge_rap.speech.listen import Listener

    wait_s = 2.0
    late = quiet(wait_s - 0.07)  # speech starts 2-3 chunks before the wait ends
    turn = Listener(Home("anya"), Scripted("Where is Anya?"), vad).push_to_talk(
        iter(pieces(late, loud(1.0), quiet(1.0))), first_only=True, wait_s=wait_s)
    assert (turn.timed_out, turn.transcript, turn.reply.names) == (False, "Where is Anya?", ["anya"])
    heard = []

    def clicked():  # a click just before the wait ends, then a room that stays quiet
        for chunk in pieces(late, loud(0.05)):
            heard.append(chunk)
            yield chunk
        while True:
            heard.append(np.zeros(CHUNK, np.float32))
            yield heard[-1]

    turn = Listener(Home("anya"), Scripted("Where is Anya?"), vad).push_to_talk(clicked(), first_only=True,
                                                                                  wait_s=wait_s)
    assert turn.timed_out and turn.transcript == "" and len(heard) * CHUNK / RATE < wait_s + 1.0


def test_an_announcement_heard_back_while_a_command_waits_is_not_its_answer():
    # the camera daemon shares the loudspeaker: "<mochi> arrived" said while "forget Bo" waited for its yes was
    # taken as the answer, and cancelled it
    from edge_rap.speech.listen import Listener

    home, room = Forgetful("bo", "mochi"), Room()
    listener = Listener(home, Scripted("Hey robot, forget Bo.", "Mochi arrived. I can see Mochi.", "Yes."), vad, room,
                        wake="hey robot")
    turns = listener.turns(iter(pieces(loud(1.0), quiet(1.0), loud(1.0), quiet(1.0), loud(0.5), quiet(1.0))))
    asked = next(t for t in turns if t.triggered)
    room.say("<mochi> arrived: I can see <mochi>.")  # the daemon, while the yes is awaited
    said = [asked] + [t for t in turns if t.triggered]
    assert [t.command.state for t in said] == ["asked", "done"] and home.forgotten == ["bo"]


def test_the_speaker_remembers_its_last_lines_as_spoken(tmp_path):
    from edge_rap.speech.tts import RECENT, Speaker

    voice = types.SimpleNamespace(name="mute", write=lambda text, wav: False, close=lambda: None)
    speaker = Speaker(voice, tmp_path / "said")
    for k in range(RECENT + 1):
        speaker.say(f"<red_mug> {k}", answer=True)
    assert speaker.recent == tuple(f"red mug {k}" for k in range(1, RECENT + 1))
    speaker.close()


@pytest.mark.parametrize("text, said", [
    ("<dog10> is by <red_mug>.", "dog 10 is by red mug."),  # piper said "dogton"
    ("**<bo>** is *on the sofa* 🐱😀.", "bo is on the sofa."),  # voices read "asterisk", "grinning face"
    ("## Where\n- <bo>: the sofa\n* 2 * 3 is 6 👍🏽", "Where bo: the sofa 2 * 3 is 6"),
    ("See https://www.example.com/pets?id=3, or `http://x.org/a`.", "See example.com, or x.org."),
    ("I can see <🐈>.", "I can see cat."),  # a name of emoji alone was left out: "I can see."
    ("<👨\u200d👩\u200d👧> arrived, by <Mochi 🐱>.", "man woman girl arrived, by mochi."),
    ("<bo>\x00 is home\x1b.", "bo is home."),  # piper ended on a control character (wave.Error: no audio)
])
def test_a_voice_reads_names_as_said_and_no_markdown_emoji_or_link(text, said):
    from edge_rap.speech.tts import spoken

    assert spoken(text) == said


def test_a_line_with_nothing_to_say_is_not_handed_to_the_voice(tmp_path):
    # piper given an empty line wrote nothing, and the Speaker waited a minute for it (a turn, 30 s); "..." ended it
    from edge_rap.speech.tts import Speaker

    given = []
    voice = types.SimpleNamespace(name="listing", write=lambda text, wav: given.append(text) or False,
                                  close=lambda: None)
    speaker = Speaker(voice, tmp_path / "said")
    nothing = []
    # piper ended on "_" (wave.Error: no audio); one at a time: a newer line replaces one still waiting
    for text in ("", "😀", "...", "_", "<bo> is here."):
        nothing.append(speaker.say(text, answer=True))
        assert speaker.flush(60)
    speaker.close()
    nothing.pop()
    assert given == ["bo is here."] and all(line.settled.is_set() and line.audio_at is None for line in nothing)


def test_piper_hands_over_a_line_once_all_its_sentences_are_written(tmp_path, monkeypatch):
    # Before: a WAV was taken once its header matched its size, which Python's wave module makes true after each
    # sentence: a long answer was played to the end of its first sentence.
    import wave

    voice = fake_piper(tmp_path, monkeypatch, "speak")
    try:
        for k, text in enumerate(["Bo is on the sofa. Mochi is in the garden. The mug is on the table.", "Hello."]):
            assert voice.write(text, tmp_path / f"{k}.wav")
            with wave.open(str(tmp_path / f"{k}.wav")) as said:
                assert said.getnframes() == 1600 * len(text.split())
    finally:
        voice.close()


def test_a_question_that_holds_a_short_line_of_the_devices_is_no_echo():
    from edge_rap.speech.listen import Listener

    room = Room()
    room.say("I haven't seen <bo> yet.")
    said = [t for t in Listener(Home("bo"), Scripted("Hey robot, I haven't seen Bo yet today, where is Bo?"), vad, room,
                                wake="hey robot").turns(iter(pieces(loud(1.0), quiet(1.0)))) if t.triggered]
    assert len(said) == 1 and said[0].reply.names == ["bo"]


@pytest.mark.parametrize("answer", ["No.", "Yes yes.", "Yes, forget Bo."])
def test_an_answer_like_the_question_is_still_an_answer(answer):
    from edge_rap.speech.listen import Listener

    home = Forgetful("bo")
    said = [t for t in Listener(home, Scripted("Hey robot, forget Bo.", answer), vad, Room(), wake="hey robot").turns(
        iter(pieces(loud(1.0), quiet(1.0), loud(1.0), quiet(1.0)))) if t.triggered]
    assert len(said) == 2 and said[1].command.state == ("cancelled" if answer == "No." else "done")


@pytest.mark.parametrize("then, states", [
    ("Hey robot, where is Bo?", ["asked", "cancelled", None]),
    ("Hey robot, forget Bo.", ["asked", "cancelled", "asked"]),
    ("Hey robot, no.", ["asked", "cancelled"]), ("Hey robot, yes.", ["asked", "done"]),
    ("Where is Bo?", ["asked", "cancelled"]),  # no wake phrase: an answer, and not a yes
    ("Hey robot, forget it.", ["asked", "cancelled"]),  # a no (before: also "I don't know 'it'", said over it)
])
def test_a_new_question_while_a_command_waits_for_its_yes_is_answered(then, states):
    # Before: "Hey robot, where is Bo?" said instead of a yes cancelled the command and was never answered
    from edge_rap.speech.listen import Listener

    home = Forgetful("bo")
    said = [t for t in Listener(home, Scripted("Hey robot, forget Bo.", then), vad, Room(), wake="hey robot").turns(
        iter(pieces(loud(1.0), quiet(1.0), loud(1.0), quiet(1.0)))) if t.triggered]
    assert [t.command.state if t.command else None for t in said] == states
    if states[-1] is None:
        assert said[-1].reply.mode == "events" and said[-1].reply.names == ["bo"]


@pytest.mark.parametrize("then, states", [
    (("Hey robot.", "Yes."), ["asked", "done"]), (("", "Yes."), ["asked", "done"]),
    (("Um.", "Yes."), ["asked", "done"]),
    (("Yes, hey robot.",), ["asked", "done"]), (("Um, yes.",), ["asked", "done"]),
    (("Absolutely.",), ["asked", "done"]),
    (("Hey robot.", "Where is Bo?"), ["asked", "cancelled", None]),  # a new question after the phrase alone
    (("Thank you.", "Yes."), ["asked", "done"]), ((" you", "Yes."), ["asked", "done"]),  # whisper's words for noise
    (("Thanks for watching!", "Yes."), ["asked", "done"]), (("Bye.",), ["asked", "cancelled"]),  # a user's no
    (("Thank you, yes.",), ["asked", "done"]), (("Thank you so much, yes please.",), ["asked", "done"]),
])
def test_a_wake_phrase_alone_noise_or_a_hesitation_is_no_answer_to_a_command(then, states):
    # Before: the wake phrase alone ("Hey robot." ... "Yes."), a noise whisper wrote as nothing or an "Um." while
    # the device waited for the yes cancelled the command, and the yes after it went unheard; so did "Yes, hey
    # robot." (the words after the phrase, none, were taken for the answer); so did "Thank you." and the other
    # texts whisper writes for a noise it takes for speech
    from edge_rap.speech.listen import Listener

    home = Forgetful("bo")
    said = [t for t in Listener(home, Scripted("Hey robot, forget Bo.", *then), vad, Room(), wake="hey robot").turns(
        iter(pieces(*[part for _ in range(1 + len(then)) for part in (loud(1.0), quiet(1.0))]))) if t.triggered]
    assert [t.command.state if t.command else None for t in said] == states
    assert home.forgotten == (["bo"] if "done" in states else [])
    if states[-1] is None:
        assert said[-1].reply.mode == "events" and said[-1].reply.names == ["bo"]
    home = Forgetful("bo")  # push-to-talk on the microphone: the noise is not its answer either
    turn = Listener(home, Scripted("Forget Bo.", "", "Yes."), vad, Room()).push_to_talk(
        iter(pieces(loud(1.0), quiet(1.0), loud(0.5), quiet(1.0), loud(0.5), quiet(1.0))), first_only=True)
    assert turn.command.state == "done" and home.forgotten == ["bo"]


@pytest.mark.parametrize("late, states", [("Yes.", ["asked", "cancelled"]), ("Hey robot, yes.", ["asked", "cancelled"]),
                                          ("No.", ["asked"]), ("Hey robot, where is Bo?", ["asked", None])])
def test_a_yes_after_the_command_stopped_waiting_is_told_so(late, states):
    # Before: `run --voice` dropped the command 10 s after asking without a word, and a yes after that went
    # unanswered: the user was left thinking <bo> forgotten
    from edge_rap.speech.listen import Listener

    home = Forgetful("bo")
    said = [t for t in Listener(home, Scripted("Hey robot, forget Bo.", late), vad, Room(), wake="hey robot").turns(
        iter(pieces(loud(1.0), quiet(12.0), loud(1.0), quiet(1.0)))) if t.triggered]
    assert [t.command.state if t.command else None for t in said] == states and home.forgotten == []
    if states[-1] == "cancelled":
        assert said[-1].reply.text == "I stopped waiting for a yes, so I did not forget <bo>."


def test_a_memory_that_cannot_be_read_is_said_and_the_next_question_still_heard():
    # Before: a DeviceError answering (the event log unreadable) ended `turns`, and `run --voice` stopped listening
    # for the rest of its run: "the voice loop stopped: ..." in the log, and every later question unheard
    from pathlib import Path

    from edge_rap.errors import DeviceError
    from edge_rap.speech.listen import Listener

    home, failing = Home("bo"), [False, True]  # (popped from the end: the first question fails)

    def last_seen(name):
        if failing.pop():
            # a memory folder whose path has a space: the device read out "the memory folder rap/events.sqlite"
            raise DeviceError(Path("/home/anna/edge rap/events.sqlite"), "cannot read the event log (disk I/O error)")

    home.events.last_seen = last_seen
    said = [t for t in Listener(home, Scripted("Hey robot, where is Bo?", "Hey robot, where is Bo?"), vad, Room(),
                                wake="hey robot").turns(iter(pieces(loud(1.0), quiet(1.0), loud(1.0), quiet(1.0))))]
    assert [t.reply.text for t in said] == ["I can't answer that now: cannot read the event log (disk I/O error)",
                                            "I haven't seen <bo> yet."]


def test_an_answer_the_vlm_fails_is_said_and_the_next_question_still_heard():
    # Before: an EdgeRapError of the assistant's (a prompt longer than the VLM's context, mtmd failing an image)
    # ended `turns`, and `run --voice` stopped listening for the rest of its run, as a DeviceError once did
    from edge_rap.speech.listen import Listener

    home, failing = Home("bo"), [False, True]
    answered = home.assistant.ask

    def ask(question, *args, **kwargs):
        if failing.pop():
            raise EdgeRapError("the prompt needs 5000 tokens but the context holds 4096")
        return answered(question, *args, **kwargs)

    home.assistant.ask = ask
    said = [t for t in Listener(home, Scripted("Hey robot, what is Bo doing?", "Hey robot, what is Bo doing?"), vad,
                                Room(), wake="hey robot").turns(iter(pieces(loud(1.0), quiet(1.0), loud(1.0),
                                                                            quiet(1.0))))]
    assert [t.reply.text for t in said] == ["I can't answer that now: the prompt needs 5000 tokens but the context "
                                            "holds 4096", "I don't know."]


def test_push_to_talk_keeps_a_command_with_a_pause_in_it_whole_up_to_its_yes():
    # Before: a recording's first utterance alone was the command: "Forget ... Bo. Yes." asked the assistant about
    # "Forget", and the yes was never heard
    from edge_rap.speech.listen import Listener

    parts = [(1.0, "Forget"), (2.0, "Bo."), (0.5, "Yes.")]
    audio = pieces(*[x for seconds, _ in parts for x in (loud(seconds), quiet(1.0))])
    home = Forgetful("bo")
    sizes = [len(u.samples) for u in Listener(home, Scripted(), vad).segmenter.utterances(iter(audio))]
    words = {sum(sizes[i:j]): " ".join(w for _, w in parts[i:j]) for i in range(3) for j in range(i + 1, 4)}

    def transcribe(samples, names=(), hint=""):  # the words of whichever utterances these samples are
        return Transcript(words[len(samples)], 1.0, len(samples) / RATE, 0.0)

    turn = Listener(home, transcribe, vad, Room()).push_to_talk(iter(audio))
    assert (turn.command.state, turn.transcript, home.forgotten) == ("done", "Forget Bo. Yes.", ["bo"])


def test_a_hesitation_while_a_command_waits_for_its_yes_is_not_answered_as_a_question():
    # without a wake phrase every utterance is a question: "Um." while the device waited for the yes was answered
    # "I don't know." aloud, between "Shall I forget <bo>?" and the yes it still waited for
    from edge_rap.speech.listen import Listener

    home = Forgetful("bo")
    turns = list(Listener(home, Scripted("Forget Bo.", "Um.", "Yes."), vad, Room()).turns(
        iter(pieces(*[part for _ in range(3) for part in (loud(1.0), quiet(1.0))]))))
    assert [(t.transcript, t.command.state if t.command else None) for t in turns if t.triggered] == [
        ("Forget Bo.", "asked"), ("Yes.", "done")]
    assert home.forgotten == ["bo"]


def test_a_spoken_forget_of_a_name_and_its_category_forgets_that_concept():
    # Before: the listener told `intents.parse` no category: "Forget Bo the dog." of <bo>, a dog, was unknown
    from edge_rap.speech.listen import Listener

    home = Forgetful("bo", "anya")
    home.concepts = lambda: [types.SimpleNamespace(name="bo", category="dog"),
                             types.SimpleNamespace(name="anya", category="")]
    turns = list(Listener(home, Scripted("Forget Bo the dog.", "Yes."), vad, Room()).turns(
        iter(pieces(*[part for _ in range(2) for part in (loud(1.0), quiet(1.0))]))))
    assert [t.command and t.command.state for t in turns if t.triggered] == ["asked", "done"]
    assert home.forgotten == ["bo"]


# --- push-to-talk longer than whisper hears ----------------------------------------------------------------------

def test_push_to_talk_longer_than_whisper_hears_says_so(caplog):
    from edge_rap.speech.listen import Listener

    talk = [part for _ in range(8) for part in (loud(4.5), quiet(1.0))]  # 36 s of speech in pauses
    said = Scripted("So then", "So then we went to the market.")  # its first utterance (a command?), then all of it
    turn = Listener(Home("bo"), said, vad).push_to_talk(iter(pieces(*talk)))
    assert turn.triggered
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "only its first 30 s were heard" in warned[0], warned
    caplog.clear()
    Listener(Home("bo"), Scripted("Where is Bo?"), vad).push_to_talk(iter(pieces(*talk[:10])))
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # 22.5 s: all of it heard


# --- "Did you mean <bo> or <beau>?" and its answer -----------------------------------------------------------------

@pytest.mark.parametrize("answer, meant", [("Beau.", "beau"), ("Hey robot, I meant Bo.", "bo"),
                                           ("The second one.", "beau")])
def test_the_name_chosen_after_did_you_mean_answers_the_question(answer, meant):
    # Before: the device asked "Did you mean <bo> or <beau>?", and "Beau." was not for it (no wake phrase), nor was
    # "Hey robot, I meant Bo." the question: it went to the assistant as a question of its own.
    from edge_rap.speech.listen import Listener

    turns = Listener(Home("bo", "beau"), Scripted("Hey robot, where is bow?", answer), vad, wake="hey robot").turns(
        iter(pieces(loud(1.0), quiet(1.0), loud(1.0), quiet(1.0))))
    said = [t for t in turns if t.triggered]
    assert [t.reply.mode for t in said] == ["clarify", "events"] and said[0].asking_back
    assert said[1].reply.names == [meant] and said[1].reply.text == f"I haven't seen <{meant}> yet."


@pytest.mark.parametrize("names, asked, answer, meant", [
    (("f", "f'"), "Forget F.", "The second one.", "f'"), (("f", "f'"), "Forget F.", "The first one.", "f"),
    (("dog_six", "dog6"), "Forget dog six.", "The first one.", "dog_six"),
    (("bo", "beau"), "Please forget about bow.", "Beau.", "beau")])
def test_the_name_chosen_after_a_forget_asked_back_is_forgotten(names, asked, answer, meant):
    # Before: of <f> and <f'> (or <dog_six> and <dog6>), said alike, "Forget F." always answered "Did you mean <f> or
    # <f'>? Say forget and the name again.", and no answer chose: neither could be forgotten by voice
    from edge_rap.speech.listen import Listener

    home = Forgetful(*names)
    turns = [t for t in Listener(home, Scripted(asked, answer, "Yes."), vad, Room()).turns(
        iter(pieces(*[part for _ in range(3) for part in (loud(1.0), quiet(1.0))]))) if t.triggered]
    assert [t.command.state for t in turns] == ["refused", "asked", "done"] and home.forgotten == [meant]
    assert turns[0].reply.text == f"Did you mean <{names[0]}> or <{names[1]}>?"


@pytest.mark.parametrize("asked, answer, meant", [
    ("This is also F.", "The second one.", "f'"), ("This is F too.", "The first one.", "f"),
    ("Add this to F, please.", "F apostrophe.", "f'"), ("Another photo of F.", "The first one.", "f")])
def test_the_name_chosen_after_an_add_asked_back_is_asked_to_add(asked, answer, meant):
    # Before: of <f> and <f'>, "This is also F." answered "Did you mean <f> or <f'>? Say it again with the name." and
    # took no answer: said again it was the same, so no photo could be added to either by voice ("Forget F." chose)
    from edge_rap.speech.listen import Listener

    turns = [t for t in Listener(Home("f", "f'"), Scripted(asked, answer), vad, Room(),
                                 latest=lambda: (object(), None)).turns(
        iter(pieces(*[part for _ in range(2) for part in (loud(1.0), quiet(1.0))]))) if t.triggered]
    assert [(t.command.action, t.command.state) for t in turns] == [("add", "refused"), ("add", "asked")]
    assert turns[0].reply.text == "Did you mean <f> or <f'>?" and turns[1].command.name == meant


@pytest.mark.parametrize("asked, answer, then, state", [("Forget F.", "The second one.", "Yes.", "done"),
                                                         ("This is also F.", "The first one.", "No.", "cancelled"),
                                                         ("Forget the F.", "The second one.", "Yes.", "done"),
                                                         ("Add this to my F.", "The first one.", "No.", "cancelled")])
def test_push_to_talk_on_the_microphone_takes_the_name_chosen_after_a_command_asked_back(asked, answer, then, state):
    # Before: push-to-talk ended on "Did you mean <f> or <f'>?", and a new invocation, "Forget F." again, was asked
    # the same: <f> could not be forgotten nor added to by voice without a wake phrase; and of "Forget the F." (as
    # whisper writes "Forget F." often) the choice, "Forget the <f'>.", lost its ">" and was asked back again
    from edge_rap.speech.listen import Listener

    home = Forgetful("f", "f'")
    turn = Listener(home, Scripted(asked, answer, then), vad, Room(), latest=lambda: (object(), None)).push_to_talk(
        iter(pieces(*[part for _ in range(3) for part in (loud(1.0), quiet(1.0))])), first_only=True, wait_s=10.0)
    meant = "f'" if "second" in answer else "f"
    assert (turn.command.name, turn.command.state, turn.transcript) == (meant, state, f"{asked} {answer} {then}")
    assert home.forgotten == ([meant] if state == "done" else [])


@pytest.mark.parametrize("answer, meant", [("Beau.", "beau"), ("The first one.", "bo")])
def test_push_to_talk_on_the_microphone_takes_the_name_chosen_after_a_question_asked_back(answer, meant):
    # Before: push-to-talk on the microphone ended on "Did you mean <bo> or <beau>?" of a question, with no answer
    # possible (a new invocation, "Beau.", was a question of its own), while a command asked back took the choice
    from edge_rap.speech.listen import Listener

    turn = Listener(Home("bo", "beau"), Scripted("Where is bow?", answer), vad, Room()).push_to_talk(
        iter(pieces(*[part for _ in range(2) for part in (loud(1.0), quiet(1.0))])), first_only=True, wait_s=10.0)
    assert (turn.reply.mode, turn.reply.names, turn.transcript) == ("events", [meant], f"Where is bow? {answer}")
    assert turn.reply.text == f"I haven't seen <{meant}> yet."


def test_push_to_talk_on_the_microphone_answers_a_new_question_said_after_one_asked_back():
    # "Where is bow?" -> "Did you mean <bo> or <beau>?" -> "Is Anya home?": the new question was dropped and the
    # turn was the old one's "Did you mean ...?" again (a bare yes or no still ends on it)
    from edge_rap.speech.listen import Listener

    audio = [part for _ in range(2) for part in (loud(1.0), quiet(1.0))]
    turn = Listener(Home("bo", "beau", "anya"), Scripted("Where is bow?", "Where is Anya?"), vad, Room()).push_to_talk(
        iter(pieces(*audio)), first_only=True, wait_s=10.0)
    assert (turn.reply.names, turn.transcript) == (["anya"], "Where is Anya?")
    turn = Listener(Home("bo", "beau"), Scripted("Where is bow?", "Yes."), vad, Room()).push_to_talk(
        iter(pieces(*audio)), first_only=True, wait_s=10.0)
    assert (turn.reply.mode, turn.transcript) == ("clarify", "Where is bow?")


@pytest.mark.parametrize("then, state", [(("The second one.", "Yes."), "done"), (("The second one.",), "cancelled"),
                                         (("Yes.",), "refused")])
def test_push_to_talk_takes_the_name_chosen_and_its_yes_from_one_recording(then, state):
    # Before: "Forget F. The second one. Yes." in one recording was the command "Forget F. The second one." up to
    # its yes, and a recording never answered "Did you mean <f> or <f'>?"
    from edge_rap.speech.listen import Listener

    parts = [(1.0, "Forget F."), *zip((2.0, 0.5), then)]
    audio = pieces(*[x for seconds, _ in parts for x in (loud(seconds), quiet(1.0))])
    home = Forgetful("f", "f'")
    sizes = [len(u.samples) for u in Listener(home, Scripted(), vad).segmenter.utterances(iter(audio))]
    words = {sum(sizes[i:j]): " ".join(w for _, w in parts[i:j]) for i in range(len(parts))
             for j in range(i + 1, len(parts) + 1)}

    def transcribe(samples, names=(), hint=""):  # the words of whichever utterances these samples are
        return Transcript(words[len(samples)], 1.0, len(samples) / RATE, 0.0)

    turn = Listener(home, transcribe, vad, Room()).push_to_talk(iter(audio))
    assert turn.command.state == state and home.forgotten == (["f'"] if state == "done" else [])
    assert turn.command.name == ("f" if state == "refused" else "f'")  # refused: asked back, as the words said


@pytest.mark.parametrize("names, asked", [(("f", "f'"), "This is also F."), (("dog_six", "dog6"), "Forget dog six.")])
def test_a_command_asked_back_names_no_concept_yet(names, asked):
    # Before: "Did you mean <f> or <f'>?" of "This is also F." had `--json` "concepts": ["f"] (its words' stored form,
    # which is one of the two), as if it were about <f>; a question asked back names neither
    from edge_rap.speech.listen import Listener

    turn = next(t for t in Listener(Home(*names), Scripted(asked), vad, Room(), latest=lambda: (object(), None)).turns(
        iter(pieces(loud(1.0), quiet(1.0)))) if t.triggered)
    assert turn.command.state == "refused" and turn.reply.text.startswith("Did you mean")
    assert turn.to_json()["concepts"] == []


@pytest.mark.parametrize("said, about", [("Forget the pepper.", []), ("Forget Pepper.", ["pepper"]),
                                         ("Remember this as the pepper.", [])])
def test_a_command_refused_as_naming_no_concept_lists_none(said, about):
    # Before: "Forget the pepper." of a dog <pepper>, refused as "I don't know 'the pepper'", had `--json` "concepts":
    # ["pepper"] (its words' stored form, which is the dog's name), as if it were about the dog; and so did "Remember
    # this as the pepper." (issue 13), refused as "I already know <pepper>: choose another name."
    from edge_rap.speech.listen import Listener

    class Dogs(Home):
        def concepts(self):
            return [types.SimpleNamespace(name=n, category="dog") for n in self.names]

    turn = next(t for t in Listener(Dogs("pepper"), Scripted(said), vad, Room()).turns(
        iter(pieces(loud(1.0), quiet(1.0)))) if t.triggered)
    assert turn.command.state == ("refused" if not about else "asked"), turn.reply.text
    assert turn.to_json()["concepts"] == about


def test_the_name_chosen_replaces_the_words_said_not_the_same_letters_before_them():
    # Before: "Find F." of <f> and <f'> and "the second one" asked "<f'>ind F.": the first "F" of the question
    from edge_rap.speech.reply import Reply, clarified

    asked = Reply("Did you mean <f> or <f'>?", "clarify", [], "Find F.", [["f", "f'"]], said="F")
    assert clarified(asked, "the second one") == "Find <f'>."


@pytest.mark.parametrize("answer, meant", [("Six.", "dog6"), ("Number two, please.", "dog2"), ("The 6.", "dog6")])
def test_the_number_alone_chooses_between_numbered_names(answer, meant):
    # Before: "Did you mean <dog2> or <dog6>?" answered "Six." chose neither: the answer went to the assistant as
    # a question of its own, and the one asked was dropped. Their number is what tells those two apart.
    from edge_rap.speech.listen import Listener

    turns = Listener(Home("dog2", "dog6"), Scripted("Hey robot, where is the dog?", answer), vad,
                     wake="hey robot").turns(iter(pieces(loud(1.0), quiet(1.0), loud(1.0), quiet(1.0))))
    said = [t for t in turns if t.triggered]
    assert [t.reply.mode for t in said] == ["clarify", "events"] and said[1].reply.names == [meant]


@pytest.mark.parametrize("answer", ["Seven.", "Six or two?", "Twenty six."])
def test_a_number_of_neither_numbered_name_chooses_none(answer):
    from edge_rap.speech.reply import Reply, clarified

    asked = Reply("Did you mean <dog2> or <dog6>?", "clarify", [], "where is the dog?", [["dog2", "dog6"]],
                  said="the dog")
    assert clarified(asked, answer) is None


@pytest.mark.parametrize("answer, meant", [("That one.", None), ("Yes, this one.", None), ("The one.", None),
                                           ("One.", "dog 1"), ("Number one.", "dog 1")])
def test_that_one_is_no_number_to_choose_a_numbered_name_by(answer, meant):
    # Before: "That one." to "Did you mean <dog1> or <dog2>?" chose <dog1> by its "one"
    from edge_rap.speech.reply import Reply, clarified

    asked = Reply("Did you mean <dog1> or <dog2>?", "clarify", [], "where is the dog?", [["dog1", "dog2"]],
                  said="the dog")
    assert clarified(asked, answer) == (meant and f"where is {meant}?")


@pytest.mark.parametrize("then", ["Hey robot, what colour is Beau's collar?", "Mochi ate it.", "Beau."])
def test_after_did_you_mean_a_new_question_or_chatter_is_no_choice(then):
    from edge_rap.speech.listen import Listener

    script = Scripted("Hey robot, where is bow?", "So that was that.", "Beau.") if then == "Beau." else \
        Scripted("Hey robot, where is bow?", then)
    turns = Listener(Home("bo", "beau"), script, vad, wake="hey robot").turns(
        iter(pieces(*[part for _ in range(3) for part in (loud(1.0), quiet(1.0))])))
    said = [t for t in turns if t.triggered][1:]
    if then.startswith("Hey robot"):  # answered as itself: the assistant's, not "where is" Beau
        assert [t.reply.mode for t in said] == ["template"]
    else:  # chatter, or a name said after other words: the question is asked no more
        assert said == []


def test_cli_wake_did_you_mean_and_the_name_from_one_wav_print_one_answer(scripted_cli, capsys, tmp_path):
    from edge_rap.household import Household
    from photos import save_photo

    settings, script = scripted_cli
    with Household(settings) as home:
        home.remember("beau", [save_photo(settings.memory.parent / "photos", "coffee")], "", "")
    script.texts = ["Hey robot, where is bow?", "Beau."]
    wav = write_wav(tmp_path / "q.wav", np.concatenate([loud(1.0), quiet(1.0), loud(0.5), quiet(1.0)]))
    out = listen_json(settings, capsys, wav, "--wake", "hey robot")
    assert out["transcript"] == "Hey robot, where is bow? Beau." and out["concepts"] == ["beau"]
    assert out["mode"] == "events" and out["answer"] == "I haven't seen <beau> yet."
    script.texts = ["Hey robot, where is bow?"]  # the file ends: the question asked back is the answer
    wav = write_wav(tmp_path / "q.wav", np.concatenate([loud(1.0), quiet(1.0)]))
    assert listen_json(settings, capsys, wav, "--wake", "hey robot")["answer"] == "Did you mean <bo> or <beau>?"


@pytest.mark.parametrize("asked, done", [("Hey robot, forget F.", "forget"), ("Hey robot, this is also F.", "add")])
def test_cli_wake_command_asked_back_takes_the_name_and_its_yes_from_one_wav(scripted_cli, capsys, tmp_path, asked,
                                                                             done):
    # Before: of <f> and <f'>, `listen --wav --wake` printed "Did you mean <f> or <f'>?" and ended: the file's "The
    # second one." and "Yes." were never heard, though the listener (as `run --voice`'s) takes them
    from edge_rap.household import Household
    from edge_rap.memory.store import Store
    from photos import save_photo

    settings, script = scripted_cli
    with Household(settings) as home:
        home.remember("f", [save_photo(settings.memory.parent / "photos", "coffee")], "", "")
        home.remember("f'", [save_photo(settings.memory.parent / "photos", "brick")], "", "")
    script.texts = [asked, "The second one.", "Yes."]
    wav = write_wav(tmp_path / "q.wav", np.concatenate([part for _ in range(3) for part in (loud(1.0), quiet(1.0))]))
    out = listen_json(settings, capsys, wav, "--wake", "hey robot",
                      "--image", str(save_photo(tmp_path, "camera")))
    assert out["transcript"] == f"{asked} The second one. Yes."
    assert out["command"] == {"action": done, "name": "f'", "state": "done", "box": None}
    store = Store(settings.memory, readonly=True)
    concepts = {c.name: c for c in store.concepts()}
    store.close()
    assert {n: c.views for n, c in concepts.items()} == ({"bo": 1, "f": 1} if done == "forget" else
                                                          {"bo": 1, "f": 1, "f'": 2})


# --- listen --wav --wake: its JSON ----------------------------------------------------------------------------

@pytest.fixture
def scripted_cli(monkeypatch, settings):
    """`listen` with the transcriber scripted and the stand-in VAD; a memory that remembers <bo>."""
    import edge_rap.speech.asr
    import edge_rap.speech.vad
    from edge_rap.household import Household
    from photos import save_photo

    with Household(settings) as home:
        home.remember("bo", [save_photo(settings.memory.parent / "photos", "rocket")], "", "")
    script = Scripted()
    monkeypatch.setattr(edge_rap.speech.asr, "Transcriber", lambda *a, **k: script)
    monkeypatch.setattr(edge_rap.speech.vad, "SileroVad", lambda: vad)
    return settings, script


def listen_json(settings, capsys, wav, *argv) -> dict:
    from edge_rap import cli

    capsys.readouterr()
    rc = cli.main(["listen", "--wav", str(wav), "--json", "--mute", *argv, "--memory", str(settings.memory)])
    out, err = capsys.readouterr()
    assert rc == 0 and "Traceback" not in err, err
    return json.loads(out)


def write_wav(path, samples: np.ndarray):
    data = (samples * 32767).astype("<i2").tobytes()
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " +
                     struct.pack("<IHHIIHH", 16, 1, 1, RATE, 2 * RATE, 2, 16) + b"data" + struct.pack("<I", len(data))
                     + data)
    return path


def test_cli_wake_command_and_its_yes_from_one_wav_print_both_words(scripted_cli, capsys, tmp_path):
    # Before: the object printed had "transcript": "Yes." only (push-to-talk prints both, as README says).
    settings, script = scripted_cli
    script.texts = ["Hey robot, forget Bo.", "Yes."]
    wav = write_wav(tmp_path / "q.wav", np.concatenate([loud(1.0), quiet(1.0), loud(0.5), quiet(1.0)]))
    out = listen_json(settings, capsys, wav, "--wake", "hey robot")
    assert out["transcript"] == "Hey robot, forget Bo. Yes."
    assert out["command"] == {"action": "forget", "name": "bo", "state": "done", "box": None}


@pytest.mark.parametrize("said, wake", [([], None), (["So then we went to the market."], "hey robot"),
                                        (["Where is Bo?"], None), (["Where is Bob?"], None),
                                        (["Forget Bo.", "No."], None), (["Hey robot, forget Bob."], "hey robot")])
def test_cli_json_has_the_same_keys_of_the_same_types_in_every_outcome(scripted_cli, capsys, tmp_path, said, wake):
    # Before: "timed_out" was there only when true, so a script reading it failed on every answer
    settings, script = scripted_cli
    script.texts = list(said)
    parts = [part for _ in said for part in (loud(1.0), quiet(1.0))] or [quiet(1.0)]
    out = listen_json(settings, capsys, write_wav(tmp_path / "q.wav", np.concatenate(parts)),
                      *(["--wake", wake] if wake else []))
    assert list(out) == ["triggered", "transcript", "concepts", "answer", "mode", "command", "timings", "timed_out"]
    assert isinstance(out["triggered"], bool) and isinstance(out["transcript"], str)
    assert isinstance(out["concepts"], list) and isinstance(out["timings"], dict) and out["timed_out"] is False
    # the four timings in every outcome (before: an untriggered object had only vad_ms and asr_ms, so
    # `out["timings"]["speech_end_to_answer_start_ms"]` raised KeyError); null where that stage did not run
    assert list(out["timings"]) == ["vad_ms", "asr_ms", "answer_ms", "speech_end_to_answer_start_ms"]
    assert all(v is None or isinstance(v, float) for v in out["timings"].values())
    assert out["answer"] is None if not out["triggered"] else isinstance(out["answer"], str)
    assert out["command"] is None or set(out["command"]) == {"action", "name", "state", "box"}


def test_cli_wake_json_not_triggered_keeps_its_timings(scripted_cli, capsys, tmp_path):
    # Before: "timings": {} (push-to-talk's untriggered object has vad_ms and asr_ms).
    settings, script = scripted_cli
    script.texts = ["I think it is going to rain.", "Later today."]
    wav = write_wav(tmp_path / "c.wav", np.concatenate([loud(1.0), quiet(1.0), loud(1.0), quiet(1.0)]))
    out = listen_json(settings, capsys, wav, "--wake", "hey robot")
    assert out["triggered"] is False and out["transcript"] == "I think it is going to rain. Later today."
    timings = out["timings"]
    assert timings["asr_ms"] == 2.0 and timings["vad_ms"] is not None
    assert timings["answer_ms"] is None and timings["speech_end_to_answer_start_ms"] is None  # no answer
    silence = write_wav(tmp_path / "s.wav", quiet(2.0))
    out = listen_json(settings, capsys, silence, "--wake", "hey robot")
    assert out["transcript"] == "" and out["timings"]["vad_ms"] is not None and out["timings"]["answer_ms"] is None
    assert out["timings"]["asr_ms"] is None  # whisper never ran (before: 0.0; push-to-talk's silence says null)
    assert listen_json(settings, capsys, silence)["timings"]["asr_ms"] is None


# --- a WAV whose recorder stopped before writing its size ----------------------------------------------------

def test_a_wav_whose_data_size_was_never_written_is_read_to_its_end(tmp_path):
    # A recorder writes its header first with sizes of 0 and fills them in when it stops: one that crashed, ran
    # out of battery or was killed leaves "data" with size 0 and its samples after it. Before: "heard no speech"
    # (ffmpeg, and so PyAV, reads such a file to its end).
    from edge_rap.speech.audio import read_wav

    tone = loud(1.0)
    whole = write_wav(tmp_path / "whole.wav", tone).read_bytes()
    at = whole.index(b"data") + 4
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole[:4] + struct.pack("<I", 36) + whole[8:at] + struct.pack("<I", 0) + whole[at + 4:])
    assert read_wav(cut).seconds == pytest.approx(1.0)
    assert np.array_equal(read_wav(cut).samples, read_wav(tmp_path / "whole.wav").samples)
    empty = tmp_path / "empty.wav"  # an empty data chunk, and another chunk after it: empty still
    empty.write_bytes(whole[:at] + struct.pack("<I", 0) + b"LIST" + struct.pack("<I", 4) + b"INFO")
    assert read_wav(empty).seconds == 0.0


@pytest.mark.parametrize("name", ["header_only.wav", "empty.flac"])
def test_a_recording_with_no_samples_is_one_line_not_heard_no_speech(tmp_path, name):
    # A recorder that stopped before writing any sample leaves a 44-byte WAV: before, "heard no speech" (exit 0),
    # as if the question had been too quiet.
    from edge_rap.speech.audio import read_audio

    path = tmp_path / name
    if name.endswith(".wav"):
        path.write_bytes(write_wav(tmp_path / "a.wav", loud(0.1)).read_bytes()[:44])
    else:
        pytest.importorskip("av")
        from recordings import encode

        encode(path, np.zeros((0, 1)), 16000, "flac")
    with pytest.raises(EdgeRapError, match=r"no audio in it \(a header with no samples: its recorder stopped"):
        read_audio(path)


def test_an_answer_a_stop_cut_is_printed_as_not_said_not_a_key_error(capsys):
    # before: the plain print read the end-of-speech-to-answer time, which a cut answer (never said) has not
    from edge_rap.speech.commands import _print
    from edge_rap.speech.listen import Turn
    from edge_rap.speech.reply import Reply
    from edge_rap.types import Answer

    answer = Answer("<bo> is on the", "vlm", "question", stopped="interrupted")
    turn = Turn(True, "where is bo", Reply(answer.text, "vlm", ["bo"], answer=answer),
                timings={"vad_ms": 3.0, "asr_ms": 200.0, "answer_ms": 40.0})
    _print(turn, as_json=False)
    assert capsys.readouterr().out.splitlines()[-1] == "(vlm; asr 200 ms, answer 40 ms, not said)"
    _print(turn, as_json=True)
    assert json.loads(capsys.readouterr().out)["timings"]["speech_end_to_answer_start_ms"] is None
