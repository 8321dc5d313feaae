"""The speaking path when its parts fail, as they will over months in a household: a voice that raises, piper
that dies, hangs or is stopped mid-line, an audio device that is busy for hours and then back."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from edge_rap.newest import NewestWorker
from edge_rap.speech.tts import Speaker


class RaisingOnceVoice:
    """Raises what no one expected (a codec error, a bug) on its first line, then writes every line."""

    name = "raising"

    def __init__(self):
        self.lines = 0

    def write(self, text: str, wav) -> bool:
        self.lines += 1
        if self.lines == 1:
            raise UnicodeEncodeError("latin-1", text, 0, 1, "ordinal not in range(256)")
        Path(wav).write_bytes(text.encode())
        return True

    def close(self) -> None:
        pass


def test_a_line_the_voice_raises_on_does_not_silence_the_speaker_for_good(tmp_path, caplog):
    # Before: the exception ended the speaker's thread, and nothing was said again until a restart.
    speaker = Speaker(RaisingOnceVoice(), tmp_path)
    first = speaker.say("Łukasz arrived")
    assert first.wait_audio(60) is None and first.settled.is_set()
    second = speaker.say("Bo arrived")
    assert second.wait_audio(60) is not None
    speaker.close()
    said = [json.loads(x)["text"] for x in (tmp_path / "speech.jsonl").read_text().splitlines()]
    assert said == ["Bo arrived"]
    assert any("speaker" in r.getMessage() and r.exc_info for r in caplog.records)


def test_a_worker_goes_on_with_the_next_item_after_one_it_failed_on():
    handled, done = [], threading.Event()

    def handle(item: int) -> None:
        if item == 1:
            raise ValueError("bad item")
        handled.append(item)
        done.set()

    worker = NewestWorker("test", handle)
    worker.submit(1)
    assert worker.flush(60)
    worker.submit(2)
    assert done.wait(60) and worker.flush(60)
    worker.close(60)
    assert handled == [2]

