"""A stand-in for `python -m piper` (put first on PYTHONPATH): what it does is the voice file's one word.
`speak` writes each line into its own file of --output-dir and logs it as piper does; `once` does that for one
line and exits (a piper that dies); `hang` reads and never answers. A missing voice file fails as piper's does."""

import argparse
import logging
import sys
import time
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
for line in sys.stdin:
    if mode == "hang":
        time.sleep(3600)
    wav = Path(args.output_dir) / f"{time.monotonic_ns()}.wav"
    wav.write_bytes(line.strip().encode("utf-8"))
    logging.getLogger("__main__").info("Wrote %s", wav)
    if mode == "once":
        sys.exit(0)
