"""Spoken memory commands with real audio (a real TTS, as in test_listen.py): "remember this as <name>" and
"forget <name>" are asked back and done only on a spoken yes, through the household's memory."""

from __future__ import annotations

import numpy as np
import pytest

from test_listen import listen, mixed, speak, write_wav  # (with the skips for a missing voice extra)

from edge_rap.speech.audio import RATE, Audio, chunks, read_wav

WAKE = "hey robot"
REMEMBER, FORGET, UNKNOWN = "Hey robot, remember this as Teddy", "Hey robot, forget Anya", "Hey robot, forget Gandalf"
ALSO = "Hey robot, this is also Bo"
YES, NO = "Yes", "No"


@pytest.fixture(scope="module")
def said(tmp_path_factory) -> dict[str, np.ndarray]:
    lines = [REMEMBER, FORGET, UNKNOWN, ALSO, YES, NO]
    out = speak(lines, tmp_path_factory.mktemp("commands"))
    return {line: read_wav(out / f"{line}.wav").samples for line in lines}


def conversation(said: dict[str, np.ndarray], *lines: str, seed: int = 0) -> Audio:
    """The lines one after another with a second and a half between them, under noise at 30 dB."""
    gap = np.zeros(int(1.5 * RATE), np.float32)
    speech = np.concatenate([x for line in lines for x in (said[line], gap)][:-1])
    return mixed(speech, seed, snr_db=30.0)


@pytest.fixture
def household(tmp_path, model_cache):
    """A writable household that remembers <anya> and <bo>; the frame a command is about."""
    from edge_rap.config import Profile, Settings
    from edge_rap.household import Household
    from edge_rap.perceive.images import read_image_file
    from photos import save_photo

    settings = Settings(home=tmp_path / "home", memory=tmp_path / "memory", models=model_cache, profile=Profile())
    home = Household(settings)
    for name, photo in {"anya": "astronaut", "bo": "rocket"}.items():
        home.remember(name, [save_photo(tmp_path / "photos", photo)], f"the household's {name}", "")
    frame = read_image_file(save_photo(tmp_path, "coffee")).image
    yield settings, home, frame
    home.close()


@pytest.fixture(scope="module")
def listening():
    from edge_rap.speech.asr import Transcriber
    from edge_rap.speech.vad import SileroVad

    return Transcriber(threads=2), SileroVad()


def turns(home, listening, frame, audio: Audio):
    from edge_rap.speech.listen import Listener

    listener = Listener(home, *listening, wake=WAKE, latest=lambda: (frame, None))
    return [t for t in listener.turns(chunks(audio)) if t.triggered]


def names(home) -> set[str]:
    return {c.name for c in home.concepts()}


def test_remember_this_on_a_spoken_yes_adds_the_frame(said, household, listening):
    _, home, frame = household
    asked, done = turns(home, listening, frame, conversation(said, REMEMBER, YES))
    assert asked.command.state == "asked" and asked.reply.text == "Shall I remember this as <teddy>? Say yes or no."
    assert (done.command.action, done.command.name, done.command.state) == ("remember", "teddy", "done")
    assert done.reply.text == "I will remember this as <teddy>."
    assert names(home) == {"anya", "bo", "teddy"}
    recognition = home.recognize(frame)  # the frame it was shown is now recognised as <teddy>
    assert [h.concept.name for h in recognition.hits][:1] == ["teddy"]


def test_a_spoken_no_adds_nothing(said, household, listening):
    _, home, frame = household
    asked, cancelled = turns(home, listening, frame, conversation(said, REMEMBER, NO, seed=1))
    assert asked.command.state == "asked" and cancelled.command.state == "cancelled"
    assert names(home) == {"anya", "bo"}


def test_another_photo_of_a_known_concept_on_a_spoken_yes(said, household, listening):
    _, home, frame = household
    views = home.store.get("bo").views
    assert "bo" not in [h.concept.name for h in home.recognize(frame).hits]
    asked, done = turns(home, listening, frame, conversation(said, ALSO, YES, seed=6))
    assert asked.reply.text == "Shall I add this as another photo of <bo>? Say yes or no.", asked.transcript
    assert (done.command.action, done.command.name, done.command.state) == ("add", "bo", "done")
    assert done.reply.text == "I added this as another photo of <bo>."
    assert names(home) == {"anya", "bo"} and home.store.get("bo").views == views + 1
    assert [h.concept.name for h in home.recognize(frame).hits][:1] == ["bo"]


def test_forget_on_a_spoken_yes_removes_the_concept(said, household, listening):
    _, home, frame = household
    asked, done = turns(home, listening, frame, conversation(said, FORGET, YES, seed=2))
    assert asked.reply.text == "Shall I forget <anya>? Say yes or no."
    assert (done.command.action, done.command.name, done.command.state) == ("forget", "anya", "done")
    assert names(home) == {"bo"}


def test_an_unknown_name_is_refused_and_the_yes_after_it_does_nothing(said, household, listening):
    _, home, frame = household
    heard = turns(home, listening, frame, conversation(said, UNKNOWN, YES, seed=3))
    command = heard[0].command
    assert command is not None and command.state == "refused", heard[0].transcript
    assert "nothing to forget" in heard[0].reply.text
    assert heard[0].reply.names == []  # no concept of that name: `concepts` in --json lists none
    assert all(t.command is None or t.command.state != "done" for t in heard)
    assert names(home) == {"anya", "bo"}


@pytest.fixture
def cli_env(household, monkeypatch):
    settings, home, _ = household
    home.close()  # the command line opens the memory itself
    monkeypatch.setenv("EDGE_RAP_MODELS", str(settings.models))
    monkeypatch.setenv("EDGE_RAP_HOME", str(settings.home))
    return settings


def test_cli_remember_with_its_yes_in_the_same_wav(said, cli_env, capsys, tmp_path):
    from photos import save_photo

    wav = write_wav(tmp_path / "c.wav", conversation(said, REMEMBER, YES, seed=4).samples, 22050)
    rc, out = listen(cli_env, capsys, "--wav", wav, "--wake", WAKE, "--image", save_photo(tmp_path, "coffee"),
                     "--json", "--mute")
    assert rc == 0 and out["triggered"] and out["mode"] == "command"
    assert out["command"] == {"action": "remember", "name": "teddy", "state": "done", "box": None,
                              "category": ""}  # a proper name: none
    rc, out = listen(cli_env, capsys, "--wav", write_wav(tmp_path / "f.wav", said[FORGET], 16000), "--json", "--mute")
    assert rc == 0 and out["command"]["state"] == "cancelled"  # push-to-talk, and no answer in the file
    from edge_rap.memory.store import Store

    store = Store(cli_env.memory, readonly=True)
    assert {c.name for c in store.concepts()} == {"anya", "bo", "teddy"}
    store.close()


def test_push_to_talk_takes_the_command_and_its_yes_from_one_recording(said, household, listening):
    from edge_rap.speech.listen import Listener

    _, home, frame = household
    listener = Listener(home, *listening, latest=lambda: (frame, None))  # no wake phrase: one recording
    turn = listener.push_to_talk(chunks(conversation(said, FORGET, YES, seed=5)))
    assert (turn.command.action, turn.command.name, turn.command.state) == ("forget", "anya", "done")
    words = turn.transcript.lower()  # the recording's words, the command's and its yes
    assert "forget" in words and words.rstrip(".!").endswith("yes"), turn.transcript
    assert names(home) == {"bo"}
