"""Generated camera videos with known truth: photos slide into a scene, move, stay, leave and return.

`make demo`, the daemon's tests and tools/bench_daemon.py play them; the truth (who is visible when) is
what the daemon's announcements are checked against.
"""

from __future__ import annotations

import glob
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.perceive.camera import quiet_opencv
from edge_rap.scratch import hold, remove_unheld


@dataclass(frozen=True)
class Appearance:
    """A photo in view from `start_s` to `end_s`, sliding in from one side and out the other, moving from
    `x_from` to `x_to` (fractions of the frame) meanwhile, `width` of the frame wide."""

    name: str
    start_s: float
    end_s: float
    x_from: float
    x_to: float
    width: float = 0.35
    y: float = 0.5
    known: bool = True  # False: an object nobody taught, never to be announced
    photo: str = ""  # the key of the photo shown, when not `name` (another photo of the same thing)


@dataclass(frozen=True)
class Scenario:
    appearances: tuple[Appearance, ...]
    length_s: float
    size: tuple[int, int] = (640, 480)
    fps: float = 15.0
    slide_s: float = 0.4  # time to slide fully in or out

    def visible(self, time_s: float) -> list[Appearance]:
        return [a for a in self.appearances if a.start_s <= time_s < a.end_s]


def household_scenario(names: list[str], unknown: str, length_s: float = 60.0) -> Scenario:
    """Three concepts (first, second, third of `names`) and an unknown object: one enters, moves and leaves,
    two are in view at once, one returns beside the unknown object."""
    if len(names) < 3:
        raise EdgeRapError("the household scenario needs three concepts")
    a, b, c = names[:3]
    scale = length_s / 60.0
    return Scenario((
        Appearance(a, 4 * scale, 16 * scale, 0.15, 0.35),
        Appearance(b, 10 * scale, 24 * scale, 0.75, 0.65),
        Appearance(unknown, 28 * scale, 48 * scale, 0.8, 0.75, known=False),
        Appearance(c, 30 * scale, 40 * scale, 0.2, 0.3),
        Appearance(a, 44 * scale, 54 * scale, 0.3, 0.2),
    ), length_s)


def _place(frame: np.ndarray, photo: np.ndarray, centre_x: float, centre_y: float, width: int) -> None:
    import cv2

    height = max(8, round(photo.shape[0] * width / photo.shape[1]))
    height = min(height, frame.shape[0] - 4)
    small = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
    x0 = round(centre_x * frame.shape[1] - width / 2)
    y0 = round(centre_y * frame.shape[0] - height / 2)
    y0 = min(max(0, y0), frame.shape[0] - height)
    fx0, fx1 = max(0, x0), min(frame.shape[1], x0 + width)
    if fx1 > fx0:
        frame[y0:y0 + height, fx0:fx1] = small[:, fx0 - x0:fx1 - x0]


def render_frame(scenario: Scenario, photos: dict[str, np.ndarray], background: np.ndarray,
                 time_s: float) -> np.ndarray:
    """The scene at `time_s`: each visible photo at its place on its path, sliding at its edges."""
    frame = background.copy()
    for a in scenario.visible(time_s):
        progress = (time_s - a.start_s) / max(1e-6, a.end_s - a.start_s)
        x = a.x_from + (a.x_to - a.x_from) * progress
        width = round(a.width * scenario.size[0])
        half = a.width / 2
        entering = min(1.0, (time_s - a.start_s) / scenario.slide_s)
        leaving = min(1.0, (a.end_s - time_s) / scenario.slide_s)
        side = -1 if a.x_from < 0.5 else 1  # it comes in and goes out by its nearer side
        offset = (1 - min(entering, leaving)) * (half + (0.5 - abs(x - 0.5)))
        _place(frame, photos[a.photo or a.name], x + side * offset, a.y, width)
    return frame


def write_video(scenario: Scenario, photos: dict[str, np.ndarray], background: np.ndarray, path: Path) -> Path:
    """Render the scenario as an MP4 (RGB photos in, BGR frames written), as `path` only once it is whole: OpenCV
    only warns of a frame it could not write (a full disk), and the demo reused the video cut short for ever."""
    import cv2

    quiet_opencv()  # a full disk is said in one line below, not a line of OpenCV's for every frame it dropped
    if path.is_dir():  # (found only by the rename at the end, in a traceback, the partial video left)
        raise EdgeRapError(f"{path}: is a folder, not a video file; nothing was written")
    width, height = scenario.size
    background = cv2.resize(background, (width, height), interpolation=cv2.INTER_AREA)
    path.parent.mkdir(parents=True, exist_ok=True)
    # its own partial file: two demos at once in one home shared one, renamed by the first as the second wrote it
    # (the suffix chooses OpenCV's container)
    for left in path.parent.glob(f"{glob.escape(path.stem)}.partial-*{glob.escape(path.suffix)}"):
        remove_unheld(left)  # a demo killed outright left it (a running one holds its own)
    partial = path.with_name(f"{path.stem}.partial-{os.getpid()}-{secrets.token_hex(4)}{path.suffix}")
    try:
        held = os.open(partial, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError as e:
        raise EdgeRapError(f"{path}: cannot write a video here ({e.strerror}); nothing was written") from None
    hold(held)
    try:
        writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), scenario.fps, (width, height))
        if not writer.isOpened():
            raise EdgeRapError(f"{path}: cannot write a video here (OpenCV without an MP4 encoder)")
        try:
            for k in range(frame_count(scenario)):
                frame = render_frame(scenario, photos, background, k / scenario.fps)
                writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
        finally:
            writer.release()
        if not is_whole(partial, scenario):
            raise EdgeRapError(f"{path}: the video could not be written whole (is the disk full?); nothing was kept")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
        os.close(held)
    return path


def frame_count(scenario: Scenario) -> int:
    """The frames a video of `scenario` holds."""
    return round(scenario.length_s * scenario.fps)


def is_whole(path: Path, scenario: Scenario) -> bool:
    """Whether the video at `path` opens and holds every frame of `scenario`: one cut short (by a full disk under an
    older version, which kept it) or of another length is to be written again, not played as "0 frames read"."""
    import cv2

    if not path.is_file():
        return False
    written = cv2.VideoCapture(str(path))
    whole = written.isOpened() and round(written.get(cv2.CAP_PROP_FRAME_COUNT)) == frame_count(scenario)
    written.release()
    return whole


def truth(scenario: Scenario) -> list[dict]:
    """What should be announced: each known appearance's arrival and leaving, in source time."""
    return [{"name": a.name, "arrived_s": a.start_s, "left_s": a.end_s} for a in scenario.appearances if a.known]
