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
