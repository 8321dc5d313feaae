"""`make demo`'s job: the daemon watches a generated video of shipped photos and announces each concept as it
comes, never the object nobody taught, and writes what it says as WAV files when a voice is installed."""

from __future__ import annotations

import errno
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from edge_rap.cli import main
from edge_rap.daemon.scenario import household_scenario, is_whole, write_video
from edge_rap.errors import EdgeRapError
from edge_rap.eval.demo import CONCEPTS, IN_THE_VIDEO, LENGTH_S, UNKNOWN


def test_demo_announces_each_arrival_and_leaving_and_nothing_else(settings, capsys, tmp_path):
    assert main(["demo", "--memory", str(tmp_path / "mem")]) == 0
    out = capsys.readouterr().out
    arrived = re.findall(r"<(\w+)> arrived: I can see <\1>", out)
    left = re.findall(r"<(\w+)> left", out)
    assert arrived == [*IN_THE_VIDEO, IN_THE_VIDEO[0]]  # in order, the first one again when it returns; no coins
    assert sorted(left) == sorted(arrived)
    speech = settings.home / "demo" / "speech"
    if "spoken lines:" in out:
        assert len(list(speech.glob("*.wav"))) >= 1


def noise_photos() -> dict[str, np.ndarray]:
    """Photos for a short scenario of three concepts ("bo", "mug", "cat") and an unknown object ("coins")."""
    rng = np.random.default_rng(0)
    return {name: rng.integers(0, 256, (64, 64, 3), np.uint8) for name in ("bo", "mug", "cat", "coins")}


def test_a_video_the_disk_filled_under_is_refused_and_not_kept(tmp_path, monkeypatch):
    # on a full disk OpenCV only warned "Failed to write frame": camera.mp4 was kept cut short, and every later
    # `demo` reused it, "0 frames read", exit 0
    import cv2

    opened = cv2.VideoWriter

    class FillsAfterThree:
        def __init__(self, *args):
            self.writer, self.frames = opened(*args), 0

        def write(self, frame):
            self.frames += 1
            if self.frames <= 3:  # (then the disk is full: dropped, as OpenCV drops it)
                self.writer.write(frame)

        def __getattr__(self, name):
            return getattr(self.writer, name)

    monkeypatch.setattr(cv2, "VideoWriter", FillsAfterThree)
    photos = noise_photos()
    scenario, video = household_scenario(["bo", "mug", "cat"], "coins", 2.0), tmp_path / "camera.mp4"
    with pytest.raises(EdgeRapError, match="could not be written whole"):
        write_video(scenario, photos, photos["coins"], video)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert write_video(scenario, photos, photos["coins"], video) == video
    assert list(tmp_path.iterdir()) == [video]


#: A video written where files may grow to 20 kB (a full disk, in a process of its own), after OpenCV was imported.
FULL_DISK_VIDEO = """
import resource, signal, sys
from pathlib import Path
import cv2  # (imported long before the video, as by the demo: OpenCV had read its log level then)
import numpy as np
from edge_rap.daemon.scenario import household_scenario, write_video
from edge_rap.errors import EdgeRapError
photos = {n: np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8) for n in ("bo", "mug", "cat", "coins")}
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # (a write past the limit fails with EFBIG, as one on a full disk)
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    write_video(household_scenario(["bo", "mug", "cat"], "coins", 2.0), photos, photos["coins"], Path(sys.argv[1]))
except EdgeRapError as e:
    print(e, file=sys.stderr)
"""


def test_a_video_the_disk_filled_under_is_one_line_without_opencvs_and_ffmpegs_own(tmp_path):
    # Beside the demo's one line, OpenCV said "[ WARN:0@5.4] global cap_ffmpeg.cpp:219 write FFmpeg: Failed to
    # write frame" once a frame (540 lines), and FFmpeg "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55..] moov atom not found".
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}
    child = subprocess.run([sys.executable, "-c", FULL_DISK_VIDEO, str(tmp_path / "camera.mp4")], env=env,
                           cwd=Path(__file__).parents[1], stderr=subprocess.PIPE, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert child.stderr.splitlines() == [f"{tmp_path / 'camera.mp4'}: the video could not be written whole (is the "
                                         "disk full?); nothing was kept"]


def test_a_folder_named_as_the_video_is_one_line_and_no_partial_video_is_left(tmp_path):
    # found only by the rename at the end: IsADirectoryError in a traceback, camera.partial.mp4 left beside it
    photos = noise_photos()
    video = tmp_path / "camera.mp4"
    video.mkdir()
    with pytest.raises(EdgeRapError, match="is a folder, not a video file"):
        write_video(household_scenario(["bo", "mug", "cat"], "coins", 2.0), photos, photos["coins"], video)
    assert list(tmp_path.iterdir()) == [video]


def test_a_full_disk_while_the_demo_writes_its_photos_is_one_line_and_leaves_none_half_written(settings, capsys,
                                                                                               tmp_path, monkeypatch):
    from PIL import Image

    def fills(image, path, *args, **kwargs):
        Path(path).write_bytes(b"\x89PNG\r\n")  # (begun, then the disk was full)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", fills)
    assert main(["demo", "--memory", str(tmp_path / "mem")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edge-rap: ") and err.count("\n") == 1 and "No space left on device" in err, err
    assert list((settings.home / "demo" / "photos").iterdir()) == []


def test_a_video_an_older_demo_kept_cut_short_is_written_again_and_a_whole_one_reused(settings, capsys, tmp_path,
                                                                                     monkeypatch):
    # an older version kept camera.mp4 cut short by a full disk, and every later `demo` played it: "0 frames read",
    # exit 0
    from types import SimpleNamespace

    from edge_rap.daemon import service

    played = []
    monkeypatch.setattr(service, "run_daemon", lambda *args: played.append(args) or SimpleNamespace(
        frames_read=0, frames_processed=0, frames_gated=0, frames_dropped=0, source_errors={}))
    photos = noise_photos()
    video = write_video(household_scenario(["bo", "mug", "cat"], "coins", 2.0), photos, photos["coins"],
                        settings.home / "demo" / "camera.mp4")
    demo_scenario = household_scenario(list(IN_THE_VIDEO), UNKNOWN, LENGTH_S)
    assert not is_whole(video, demo_scenario)
    assert main(["demo", "--memory", str(tmp_path / "mem")]) == 0
    assert is_whole(video, demo_scenario) and sorted(video.parent.glob("camera*")) == [video]
    written = video.stat().st_ino
    assert main(["demo", "--memory", str(tmp_path / "mem")]) == 0
    assert video.stat().st_ino == written and len(played) == 2



def test_a_demo_whose_video_cannot_be_opened_is_one_line_and_exit_status_2(settings, capsys, caplog, tmp_path,
                                                                          monkeypatch):
    # "0 frames read", then "again: edge-rap run --source ..." and exit 0: `make demo` passed having watched nothing
    import threading

    import cv2

    opened = cv2.VideoCapture

    class Unopenable:
        def __init__(self, *args):
            pass

        def isOpened(self):
            return False

        def release(self):
            pass

    # (the demo's own check that its video is whole reads it in the main thread; the camera reads it in its own)
    monkeypatch.setattr(cv2, "VideoCapture", lambda *args: opened(*args) if threading.current_thread()
                        is threading.main_thread() else Unopenable())
    assert main(["demo", "--memory", str(tmp_path / "mem")]) == 2
    said = [r.getMessage() for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    assert len(said) == 1 and "cannot open as a video" in said[0], said
    out = capsys.readouterr().out
    assert "0 frames read" in out and "again:" not in out


def test_a_folder_where_the_demo_writes_a_photo_is_one_line(settings, capsys, tmp_path):
    # the cleanup of a photo not written tried to unlink the folder: "IsADirectoryError" in a traceback
    (settings.home / "demo" / "photos" / f"{CONCEPTS[0].name}.png").mkdir(parents=True)
    assert main(["demo", "--memory", str(tmp_path / "mem")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edge-rap: ") and err.count("\n") == 1 and "cannot write the demo's photo" in err, err
    assert (settings.home / "demo" / "photos" / f"{CONCEPTS[0].name}.png").is_dir()


def test_two_writers_of_one_video_at_once_each_write_their_own_partial_file(tmp_path, monkeypatch):
    # two `demo`s at once in one home shared camera.partial.mp4: the first renamed it while the second wrote it, and
    # the second said "could not be written whole (is the disk full?)"
    import cv2

    opened, photos = cv2.VideoWriter, noise_photos()
    scenario, video = household_scenario(["bo", "mug", "cat"], "coins", 2.0), tmp_path / "camera.mp4"

    class OtherWritesMeanwhile:
        def __init__(self, *args):
            self.writer, self.frames = opened(*args), 0

        def write(self, frame):
            self.frames += 1
            if self.frames == 3:  # (the other demo writes the whole video while this one is at its third frame)
                monkeypatch.setattr(cv2, "VideoWriter", opened)
                write_video(scenario, photos, photos["coins"], video)
            self.writer.write(frame)

        def __getattr__(self, name):
            return getattr(self.writer, name)

    monkeypatch.setattr(cv2, "VideoWriter", OtherWritesMeanwhile)
    assert write_video(scenario, photos, photos["coins"], video) == video
    assert is_whole(video, scenario) and list(tmp_path.iterdir()) == [video]


def test_a_partial_video_a_killed_demo_left_is_removed_by_the_next_and_a_running_ones_kept(tmp_path):
    # each writer's own partial file (camera.partial-<pid>-<hex>.mp4) was left for good by a demo killed outright
    from edge_rap.scratch import GRACE_S, hold

    scenario, video = household_scenario(["bo", "mug", "cat"], "coins", 1.0), tmp_path / "camera.mp4"
    photos = noise_photos()
    killed, running = tmp_path / "camera.partial-4242-00aa.mp4", tmp_path / "camera.partial-4243-00bb.mp4"
    for left in (killed, running):
        left.write_bytes(b"half a video")
        os.utime(left, (time.time() - 2 * GRACE_S,) * 2)
    held = os.open(running, os.O_RDONLY)
    hold(held)
    try:
        write_video(scenario, photos, photos["coins"], video)
    finally:
        os.close(held)
    assert sorted(tmp_path.iterdir()) == [video, running]


def test_a_write_that_fails_midway_leaves_no_partial_video(tmp_path, monkeypatch):
    photos = noise_photos()

    def fails(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr("edge_rap.daemon.scenario.render_frame", fails)
    with pytest.raises(KeyboardInterrupt):
        write_video(household_scenario(["bo", "mug", "cat"], "coins", 2.0), photos, photos["coins"],
                    tmp_path / "camera.mp4")
    assert list(tmp_path.iterdir()) == []
