"""A stand-in for `python -m piper` (tests/voices.py puts it first on PYTHONPATH): what it does is the voice
file's one word. `speak` writes each line as piper does, a sentence at a time into its own WAV of --output-dir
(Python's wave module making the header right after each sentence), then logs "Wrote PATH"; `once` does that
for one line and exits (a piper that dies); `slow` takes a millisecond a character; `deaf` reads no more after its first
line, and stays; `hang` reads and never answers. Every line read is kept in the voice file's `.heard` beside it. A
missing voice file fails as piper's does."""

import argparse
import logging
import os
import sys
import time
import wave
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("-m", "--model")
parser.add_argument("--output-dir")
args = parser.parse_args()
logging.basicConfig(level=logging.INFO)
model = Path(args.model)
if not model.exists():
    raise ValueError(f"Unable to find voice: {model} (use piper.download_voices)")
mode = model.read_text().strip()
for k, line in enumerate(sys.stdin):
    with model.with_suffix(".heard").open("a", encoding="utf-8") as heard:  # what it read, for a test to see
        heard.write(line)
    if mode == "hang":
        time.sleep(3600)
    if mode == "slow":  # a slow board: a millisecond a character
        time.sleep(len(line) / 1000)
    path = Path(args.output_dir) / f"{k}.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(16000)
        for n, sentence in enumerate(line.split(". ")):
            time.sleep(0.3 if n else 0)  # the next sentence comes later, the WAV looking whole meanwhile
            wav.writeframes(bytes(3200 * len(sentence.split())))
    if mode == "deaf":  # wedged after its first line: alive, reading no more (from before it says it wrote it)
        os.close(0)
    logging.getLogger("__main__").info("Wrote %s", path)
    if mode == "once":
        sys.exit(0)
    if mode == "deaf":
        time.sleep(3600)
