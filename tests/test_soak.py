"""tools/soak.py's stand-ins fit what they stand in for: a soak that fails at its start measures nothing."""

from __future__ import annotations

import shutil
import wave

import pytest
from scenes import scene_file


def test_the_soaks_wav_microphone_is_opened_as_run_voice_opens_the_microphone(
    run, tmp_path, monkeypatch, import_tool
):
    # `run --voice` came to pass the microphone a `waiting` callback (systemd's watchdog): the soak's daemon,
    # its WAVs as the microphone, then died at its start with a TypeError, and the soak with it.
    pytest.importorskip("jellyfish", reason="the voice extra is not installed (pip install 'edge_rap[voice]')")
    import edge_rap.speech.asr
    import edge_rap.speech.audio
    import edge_rap.speech.vad

    soak = import_tool("soak")

    wavs = tmp_path / "wavs"
    wavs.mkdir()
    with wave.open(str(wavs / "01-quiet-0.5.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(2 * 8000))
    monkeypatch.setattr(soak.WavMicrophone, "folder", wavs)
    monkeypatch.setattr(edge_rap.speech.audio, "Microphone", soak.WavMicrophone)
    monkeypatch.setattr(edge_rap.speech.asr, "Transcriber", lambda *a, **k: None)  # (silence: never asked)
    monkeypatch.setattr(edge_rap.speech.vad, "SileroVad", lambda: lambda chunk: 0.0)
    photo = scene_file(tmp_path / "scene", 1)
    run("remember", "bo", photo)
    door = tmp_path / "door"
    door.mkdir()
    for k in range(2):
        shutil.copy(photo, door / f"{k:03d}.png")
    rc, _, err = run("run", "--source", door, "--mute", "--voice")
    assert rc == 0, err
