"""Stand-in voices for the Speaker's tests: no TTS installed, and each line's audio is its text."""

from __future__ import annotations

from pathlib import Path


class WritingVoice:
    """A voice that writes a few bytes for every line, at once."""

    name = "writing"

    def write(self, text: str, wav) -> bool:
        Path(wav).write_bytes(text.encode())
        return True

    def close(self) -> None:
        pass


FAKE_PIPER = Path(__file__).parent / "fake_piper"


def fake_piper(tmp_path: Path, monkeypatch, mode: str | None, voice=None):
    """A PiperVoice (or subclass `voice`) whose `python -m piper` is tests/fake_piper doing `mode`; None: its
    voice file is missing."""
    from edge_rap.speech.tts import PiperVoice

    monkeypatch.setenv("PYTHONPATH", str(FAKE_PIPER))
    model = tmp_path / f"{mode}.onnx"
    if mode is not None:
        model.write_text(mode)
    return (voice or PiperVoice)(model)
