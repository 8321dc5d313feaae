"""`make demo`: the daemon on a camera video made from photos that ship inside pip packages.

Four concepts are remembered from one photo each (one of them a person); a 36 s video is made in which
three of them enter, move, leave, stand two at once and return beside an object nobody taught. The daemon
watches it in real time with the offline defaults, prints each announcement and writes the spoken lines
as WAV files. Everything stays in $EDGE_RAP_HOME/demo, to look at and to run again.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge_rap.config import Settings
from edge_rap.errors import EdgeRapError
from edge_rap.wording import counted


@dataclass(frozen=True)
class DemoConcept:
    name: str
    sample: str
    category: str
    description: str


CONCEPTS = (
    DemoConcept("chelsea", "chelsea", "cat", "our tabby cat, who sleeps on the radiator"),
    DemoConcept("mug", "coffee", "thing", "Dad's coffee cup with the saucer"),
    DemoConcept("rocket", "rocket", "thing", "the model rocket on Anya's shelf"),
    DemoConcept("grace", "grace_hopper", "person", "Grandma Grace, in her navy uniform"),
)
IN_THE_VIDEO = ("chelsea", "mug", "rocket")
UNKNOWN = "coins"
LENGTH_S = 36.0


def _voice_folder(folder: Path) -> tuple[Path | None, str]:
    """Where the spoken lines go, or None and why not."""
    from edge_rap.speech.tts import find_voice

    try:
        voice = find_voice()
    except EdgeRapError as e:
        return None, str(e)
    shutil.rmtree(folder, ignore_errors=True)
    return folder, f"spoken lines ({voice.name}) go to {folder}"


def _save_photo(image, path: Path) -> None:
    """A concept's photo written for the demo: a full or read-only disk is one line (it was a traceback), and no
    photo is left half-written."""
    try:
        image.save(path)
    except OSError as e:
        with contextlib.suppress(OSError):  # (a folder of its name is none to remove: said as "Is a directory")
            path.unlink(missing_ok=True)
        raise EdgeRapError(f"{path}: cannot write the demo's photo ({e.strerror or e})") from None


def run_demo(settings: Settings, memory: Path | None = None) -> int:
    from PIL import Image as PILImage

    from edge_rap.export.calibrate import sample_photo_bank
    from edge_rap.daemon.config import RunConfig
    from edge_rap.daemon.scenario import household_scenario, is_whole, write_video
    from edge_rap.daemon.service import run_daemon
    from edge_rap.household import Household

    started = time.perf_counter()
    folder = settings.home / "demo"
    memory = memory or folder / "memory"
    try:
        (folder / "photos").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgeRapError(f"{folder}: cannot write the demo there ({e.strerror or e})") from None
    bank = sample_photo_bank()
    with Household(settings, memory, prepare=True) as home:
        print(f"embedder: {home.memory.embedder.space.model}   memory: {memory}")
        for c in CONCEPTS:
            if home.store.find(c.name) is None:
                path = folder / "photos" / f"{c.name}.png"
                _save_photo(PILImage.fromarray(bank[c.sample]), path)
                t = time.perf_counter()
                home.memory.remember(c.name, [path], c.description, c.category)
                print(f"remembered <{c.name}> from one photo in {1000 * (time.perf_counter() - t):.0f} ms: "
                      f"{c.description}")
    photos = {c.name: bank[c.sample] for c in CONCEPTS} | {UNKNOWN: bank[UNKNOWN]}
    video = folder / "camera.mp4"
    scenario = household_scenario(list(IN_THE_VIDEO), UNKNOWN, LENGTH_S)
    if not is_whole(video, scenario):  # (one an older version kept cut short is written again)
        write_video(scenario, photos, bank["brick"], video)
    speech, note = _voice_folder(folder / "speech")
    print(f"watching {video} ({LENGTH_S:.0f} s: {', '.join(IN_THE_VIDEO)} come and go, and {UNKNOWN} nobody "
          f"taught); {note}\n")
    config = RunConfig(sources=(f"demo={video}",), cooldown=5.0, mute=speech is None,
                       speak_to=str(speech) if speech else None).check()
    summary = run_daemon(settings, config, threading.Event(), sys.stdout, memory)
    print(f"\n{summary.frames_read} frames read, {summary.frames_processed} recognised, {summary.frames_gated} "
          f"unchanged, {summary.frames_dropped} dropped as stale")
    if summary.source_errors:  # its line said why, as `run`'s do: a demo that watched nothing is no success
        return 2
    if speech is not None:
        print(f"spoken lines: {counted(len(list(speech.glob('*.wav'))), 'WAV file')} in {speech}")
    print(f"again: edge-rap run --source {video} --memory {memory}\ndone in {time.perf_counter() - started:.1f} s")
    return 0
