"""The daemon's parts on made-up inputs: presence voting, the motion gate, latest-frame slots, the settings
file, the event log, the speaker."""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import json
import mmap
import os
import pwd
import re
import select
import shutil
import socket
import sqlite3
import sys
import termios
import threading
import time
import wave
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from scenes import scene_file
from voices import WritingVoice

from edge_rap.daemon.config import load_run_file, run_config
from edge_rap.daemon.events import EventLog, SnapshotPolicy, Snapshots, parse_since
from edge_rap.daemon.track import Presence, VoteSettings
from edge_rap.errors import EdgeRapError
from edge_rap.perceive.camera import (Camera, LatestSlot, SourceSpec, VideoClock, hide_secrets, parse_source,
                                      parse_sources, source_names)
from edge_rap.perceive import camera as camera_module
from edge_rap.perceive import fifo_relay, inotify, opens
from edge_rap.perceive.gate import GateSettings, MotionGate
from edge_rap.types import Box, Concept, Event, Frame, Hit

BO = Concept(1, "bo", "dog", "our dog", 0.0, 0.0)
ANYA = Concept(2, "anya", "person", "", 0.0, 0.0)


def wait_until(check, what: str, timeout_s: float = 60.0) -> None:
    """Poll until `check()` holds: returns as soon as it does; a generous deadline, so a busy machine only waits
    longer, and the failure names what never happened."""
    end = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < end, f"{what} did not happen within {timeout_s:.0f} s"
        time.sleep(0.01)


def hit(concept: Concept, score: float = 0.7, threshold: float = 0.68) -> Hit:
    return Hit(concept, score, threshold, Box(0, 0, 10, 10))


# --- presence ------------------------------------------------------------------------------------------

def kinds(changes) -> list[tuple[str, str]]:
    return [(c.kind, c.name) for c in changes]


def test_a_concept_arrives_once_after_two_votes_and_leaves_after_its_absence():
    presence = Presence(VoteSettings(confirm=2, window=3, leave_after_s=1.5, cooldown_s=5))
    assert presence.update(0.0, [hit(BO)]) == []  # one frame is not yet a decision
    assert kinds(presence.update(0.5, [hit(BO)])) == [("arrived", "bo")]
    for t in (1.0, 1.5, 2.0):
        assert presence.update(t, [hit(BO)]) == []  # announced once, not every frame
    assert presence.update(2.5, []) == []
    assert presence.update(3.0, []) == []
    assert kinds(presence.update(3.5, [])) == [("left", "bo")]


def test_when_watching_ends_every_present_concept_leaves_and_nothing_else_is_said():
    presence = Presence(VoteSettings(confirm=2, window=3))
    presence.update(0.0, [hit(BO), hit(ANYA)])
    assert kinds(presence.update(0.5, [hit(BO)])) == [("arrived", "bo")]  # <anya>: one vote, never arrived
    assert [(c.kind, c.name, c.time_s) for c in presence.end(0.5)] == [("left", "bo", 0.5)]
    assert presence.present == [] and presence.update(1.0, []) == []


def test_one_stray_frame_is_voted_out_and_one_missed_frame_does_not_end_a_visit():
    presence = Presence(VoteSettings(confirm=2, window=3, leave_after_s=1.5))
    assert presence.update(0.0, [hit(ANYA)]) == []
    assert presence.update(0.5, []) == []
    assert presence.update(1.0, []) == []
    assert presence.update(1.5, []) == []  # never arrived, so never leaves
    presence.update(2.0, [hit(BO)])
    assert kinds(presence.update(2.5, [hit(BO)])) == [("arrived", "bo")]
    assert presence.update(3.0, []) == []  # a miss shorter than leave_after_s
    assert presence.update(3.5, [hit(BO)]) == []


def test_a_clear_hit_arrives_on_one_frame_and_a_refused_one_never_votes():
    presence = Presence(VoteSettings(confirm=2, sure_margin=0.05))
    assert kinds(presence.update(0.0, [hit(BO, 0.80, 0.70)])) == [("arrived", "bo")]
    for t in (0.5, 1.0, 1.5):
        assert ("arrived", "anya") not in kinds(presence.update(t, [hit(ANYA, 0.60, 0.70)]))  # refused: no vote


def test_an_unchanged_frame_keeps_what_was_seen_and_time_alone_ends_a_visit():
    presence = Presence(VoteSettings(confirm=2, leave_after_s=1.5))
    presence.update(0.0, [hit(BO)])
    presence.update(0.5, [hit(BO)])
    for t in np.arange(0.6, 10, 0.5):
        assert presence.update(float(t), None) == []  # the gate kept the scene: still there
    presence.update(10.0, [])
    assert presence.undecided  # one miss: the next frame is looked at, moving or not
    presence.update(10.5, [])
    assert not presence.undecided
    assert presence.update(11.0, None) == []
    assert kinds(presence.update(11.6, None)) == [("left", "bo")]


def test_one_miss_among_frames_recognised_seconds_apart_does_not_end_a_visit():
    """Several cameras, or a person remembered on a slow board: each camera's frames recognised 2 s apart, so one
    miss was already longer than leave_after_s (a leaving and a quiet arrival in the log for every miss)."""
    presence = Presence(VoteSettings(confirm=2, window=3, leave_after_s=1.5, cooldown_s=30))
    presence.update(0.0, [hit(BO)])
    assert kinds(presence.update(2.0, [hit(BO)])) == [("arrived", "bo")]
    assert presence.update(4.0, []) == []  # one miss
    for t in (6.0, 8.0, 10.0):
        assert presence.update(t, [hit(BO)]) == []
    assert presence.update(12.0, []) == []
    assert kinds(presence.update(14.0, [])) == [("left", "bo")]  # the second look agrees


def test_a_leave_after_of_zero_ends_a_visit_at_its_misses_not_while_it_is_seen():
    presence = Presence(VoteSettings(confirm=2, window=3, leave_after_s=0.0))
    presence.update(0.0, [hit(BO)])
    assert kinds(presence.update(0.2, [hit(BO)])) == [("arrived", "bo")]
    for t in (0.4, 0.6, 0.8):
        assert presence.update(t, [hit(BO)]) == [] and presence.update(t + 0.1, None) == []
    assert presence.update(1.0, []) == []
    assert kinds(presence.update(1.2, [])) == [("left", "bo")]


def test_a_return_within_the_cooldown_is_logged_but_not_announced():
    presence = Presence(VoteSettings(confirm=2, leave_after_s=1.0, cooldown_s=5))
    presence.update(0.0, [hit(BO)])
    presence.update(0.5, [hit(BO)])
    presence.update(1.0, [])
    assert kinds(presence.update(2.0, [])) == [("left", "bo")]
    presence.update(3.0, [hit(BO)])
    quiet = presence.update(3.5, [hit(BO)])
    assert kinds(quiet) == [("arrived", "bo")] and not quiet[0].announce
    presence.update(4.0, [])
    presence.update(5.0, [])
    presence.update(20.0, [hit(BO)])
    loud = presence.update(20.5, [hit(BO)])
    assert kinds(loud) == [("arrived", "bo")] and loud[0].announce


def test_forgotten_concepts_are_dropped_those_present_leaving():
    presence = Presence(VoteSettings(confirm=2))
    presence.update(0.0, [hit(BO)])
    assert presence.forget(keep=set(), time_s=0.5) == []  # seen once, never arrived: nothing to end
    presence.update(1.0, [hit(BO)])
    presence.update(1.5, [hit(BO)])
    assert [(c.kind, c.name, c.time_s) for c in presence.forget(keep=set(), time_s=2.0)] == [("left", "bo", 2.0)]
    assert presence.present == [] and presence.update(10.0, []) == []


# --- gate -------------------------------------------------------------------------------------------------

def scene(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (240, 320, 3), dtype=np.uint8)


def test_the_gate_passes_motion_and_due_rechecks_and_stops_an_unchanged_scene():
    gate = MotionGate(GateSettings(recheck_s=5.0))
    still = scene()
    assert gate.look(still, 0.0) == "moved"  # the first frame always
    assert {gate.look(still, t) for t in np.arange(0.1, 4.9, 0.1)} == {"still"}
    assert gate.look(still, 5.0) == "due"
    moved = still.copy()
    moved[60:180, 80:200] = 255 - moved[60:180, 80:200]
    assert gate.look(moved, 5.1) == "moved"


def test_a_whole_frame_change_resets_the_background():
    gate = MotionGate(GateSettings(recheck_s=0))
    dim = np.clip(scene(0).astype(int) // 2, 0, 255).astype(np.uint8)
    lit = np.clip(dim.astype(int) + 100, 0, 255).astype(np.uint8)
    gate.look(dim, 0.0)
    assert gate.changed_fraction(lit) > GateSettings.recalibrate_area  # the lights went on: all of it changed
    assert gate.changed_fraction(lit) < GateSettings.min_area  # taken as the new background at once


# --- capture ----------------------------------------------------------------------------------------------

def frame(index: int) -> Frame:
    return Frame("cam0", index, index / 15, np.zeros((4, 4, 3), np.uint8))


def test_a_slot_keeps_the_newest_frame_and_counts_the_dropped():
    slot, stop = LatestSlot(), threading.Event()
    for k in range(5):
        slot.put(frame(k), stop)
    assert slot.take().index == 4 and slot.dropped == 4
    assert slot.take() is None


def test_a_slot_wants_no_frame_while_its_consumer_works_on_the_last():
    slot, stop = LatestSlot(), threading.Event()
    assert slot.wanted
    slot.put(frame(0), stop)
    assert slot.wanted  # waiting, not yet taken: a newer frame may replace it
    slot.take()
    assert not slot.wanted  # taken: the consumer is busy with it
    slot.skip()
    assert slot.take() is None and slot.wanted and slot.dropped == 1  # it came back for more


def test_a_lossless_slot_makes_the_producer_wait():
    slot, stop = LatestSlot(lossless=True), threading.Event()
    slot.put(frame(0), stop)
    producer = threading.Thread(target=slot.put, args=(frame(1), stop))
    producer.start()
    time.sleep(0.3)
    assert producer.is_alive()  # waits for the consumer
    assert slot.take().index == 0
    producer.join(60)
    assert not producer.is_alive()
    assert slot.take().index == 1 and slot.dropped == 0


def test_sources_are_parsed_and_checked_before_anything_starts(tmp_path):
    assert parse_source("0").target == 0 and parse_source("0").kind == "device"
    assert parse_source("door=rtsp://10.0.0.2/live").name == "door"
    assert parse_source("rtsp://10.0.0.2/live?a=b").kind == "stream"
    assert parse_source(f"porch={tmp_path}").kind == "folder"
    with pytest.raises(EdgeRapError, match="no such file"):
        parse_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(EdgeRapError, match="camera name"):
        parse_source(f"bad name={tmp_path}")
    with pytest.raises(EdgeRapError, match=r"a camera device number is 0-9999 \(/dev/videoN\)"):
        parse_source("99999999999999999999")  # (was OpenCV's overload error, once the camera thread ran)
    # unnamed sources are camK by their place, never a name another source was given
    a, b, c = (str(tmp_path / name) for name in "abc")
    for folder in (a, b, c):
        os.mkdir(folder)
    assert [s.name for s in parse_sources([a, f"door={b}", c])] == ["cam0", "door", "cam2"]
    assert [s.name for s in parse_sources([f"cam1={a}", b, c])] == ["cam1", "cam2", "cam3"]


def test_one_fifo_file_or_device_given_twice_is_refused_however_it_is_spelled(tmp_path, monkeypatch, settings, run):
    # `--source A --source A` of a FIFO: two readers split its bytes, each camera a random share of the frames
    fifo = tmp_path / "cam.fifo"
    os.mkfifo(fifo)
    (tmp_path / "link").symlink_to(fifo)
    clip = tmp_path / "door.mp4"
    clip.write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    for first, second in ((str(fifo), str(fifo)), (str(fifo), "link"), (f"a={fifo}", f"b={tmp_path}/./cam.fifo"),
                          (str(clip), "door.mp4"), ("0", "/dev/video0"), ("7", "7")):
        with pytest.raises(EdgeRapError,
                           match=r"^cameras '\w+' and '\w+' both read '[^']+'( \(written '[^']+' too\))?: "
                           r"one file, FIFO or device is one camera$"):
            parse_sources([first, second])
    settings.memory.mkdir()
    rc, out, err = run("run", "--source", str(fifo), "--source", "link")  # (before any camera opens)
    assert (rc, out) == (2, "") and err == (f"edge-rap: cameras 'cam0' and 'cam1' both read '{fifo}' (written 'link' "
                                            "too): one file, FIFO or device is one camera\n")
    (tmp_path / "other.mp4").write_bytes(b"")  # two files, two streams, two folders: each its own camera
    (tmp_path / "sub").mkdir()
    assert len(parse_sources([str(clip), "other.mp4", "rtsp://cam/a", "rtsp://cam/b", "rtsp://cam:8554/a",
                              "http://cam/a?channel=1", "http://cam/a?channel=2", "http://cam/a?c=1&c=2",
                              "http://cam/a?c=2&c=1", str(tmp_path), "sub"])) == 11


@pytest.mark.parametrize("first, second, one", [
    ("http://cam/stream", "http://cam/stream", "stream"),
    ("http://cam/stream", "HTTP://CAM/stream/", "stream"),
    ("rtsp://cam/live", "rtsp://admin:secret@cam:554/live", "stream"),
    ("https://[FE80::1]/", "https://[fe80::1]:443", "stream"),
    ("http://cam/s?a=1&b=2", "http://admin:secret@cam/s?b=2&a=1", "stream"),
    ("http://cam/s?1&2", "http://cam/s?2&1", "stream"),
    ("rtsp://cam/live?a=1", "rtsp://admin:secret@cam/live?a=1&", "stream"),
    ("rtsp://cam/live", "rtsp://cam/live?", "stream"),
    ("http://cam/s?a=1&b=2", "http://cam/s?&a=1&&b=2", "stream"),
    ("{tmp}", "{tmp}/.", "folder"),
    ("{tmp}", "{tmp}/link", "folder"),
])
def test_one_stream_or_folder_given_twice_is_refused_however_it_is_spelled(tmp_path, first, second, one):
    # Before: a URL or a folder given twice was two cameras: every event of one camera said twice, under two names,
    # its work done twice (no camera setting tells two readers of one source apart)
    (tmp_path / "link").symlink_to(tmp_path)
    first, second = first.format(tmp=tmp_path), second.format(tmp=tmp_path)
    with pytest.raises(EdgeRapError) as refused:
        parse_sources([f"door={first}", f"porch={second}"])
    also = f" (written '{second.replace('secret', '***')}' too)" if first != second else ""
    assert str(refused.value) == f"cameras 'door' and 'porch' both read '{first}'{also}: one {one} is one camera"


def test_a_url_with_an_empty_query_field_is_refused_as_the_stream_it_names(settings, run):
    # Before: a trailing `&` (or `&&`) was another query, two cameras reading one stream: its every event said twice,
    # under two names
    settings.memory.mkdir()
    stream = "rtsp://admin:pw1234@127.0.0.1:9/live?ch=1"  # (refused at once where it is read: a run that ends)
    rc, out, err = run("run", "--source", f"door={stream}", "--source", f"porch={stream}&", "--duration", "1")
    assert (rc, out) == (2, "") and err == (
        "edge-rap: cameras 'door' and 'porch' both read 'rtsp://admin:***@127.0.0.1:9/live?ch=1' (written "
        "'rtsp://admin:***@127.0.0.1:9/live?ch=1&' too): one stream is one camera\n")


def test_a_url_pythons_parser_refuses_is_no_traceback_and_no_stream_another_is(settings, run):
    # Before: `http://[::1/x` (its IPv6 host's "]" forgotten) raised urlsplit's ValueError as the sources were
    # compared, a traceback, exit 1, given once too; and a port no number was its last digits alone: two hosts
    # written as IPv6 without brackets were one stream, refused
    settings.memory.mkdir()
    rc, out, err = run("run", "--source", "http://u:secret@[::1/x", "--source", "http://v:other@[::1/x")
    assert (rc, out) == (2, "") and err == ("edge-rap: cameras 'cam0' and 'cam1' both read 'http://u:***@[::1/x' "
                                            "(written 'http://v:***@[::1/x' too): one stream is one camera\n")
    assert len(parse_sources(["http://[::1/x", "http://cam/x", "rtsp://fe80::1:1/x", "rtsp://fe80::2:1/x",
                              "http://cam:99999/", "http://cam:99998/", "rtsp://[zz]/"])) == 7
    with pytest.raises(EdgeRapError, match="one stream is one camera"):
        parse_sources(["rtsp://FE80::1:1/x", "rtsp://a:b@fe80::1:1/x"])


def test_a_file_whose_name_holds_an_equals_sign_is_a_source(tmp_path):
    # `--source clips/door=1.mp4` was refused as "camera name 'clips/door'": a camera's export names files so.
    clip = tmp_path / "door=1.mp4"
    clip.write_bytes(b"")
    assert parse_source(str(clip)) == SourceSpec("cam0", str(clip))
    assert parse_sources([str(clip)]) == (SourceSpec("cam0", str(clip)),)
    assert parse_source(f"porch={clip}") == SourceSpec("porch", str(clip))
    with pytest.raises(EdgeRapError, match="camera name"):  # a name that is no file's is still a bad name
        parse_source(f"bad name={clip}")


def test_a_file_in_this_folder_named_as_a_camera_and_a_file_is_that_file(tmp_path, monkeypatch):
    # `--source door=1.mp4` of ./door=1.mp4 was read as camera "door" showing "1.mp4": "no such file or folder"
    monkeypatch.chdir(tmp_path)
    Path("door=1.mp4").write_bytes(b"")
    assert parse_source("door=1.mp4") == SourceSpec("cam0", "door=1.mp4")
    Path("1.mp4").write_bytes(b"")  # both read alike: the camera's name wins, as NAME=SRC says
    assert parse_source("door=1.mp4") == SourceSpec("door", "1.mp4")
    assert parse_source("door=0") == SourceSpec("door", 0)


def test_a_device_number_or_url_named_as_a_camera_stays_that_camera_beside_a_file_named_alike(tmp_path, monkeypatch):
    # a file ./door=0 took `--source door=0` from camera 0, and ./door=rtsp:/cam (a path's "//" is one "/")
    # `door=rtsp://cam` from its camera
    monkeypatch.chdir(tmp_path)
    Path("door=0").write_bytes(b"")
    Path("door=rtsp:").mkdir()
    Path("door=rtsp:", "cam").write_bytes(b"")
    assert parse_sources(["door=0", "porch=rtsp://cam"]) == (SourceSpec("door", 0), SourceSpec("porch", "rtsp://cam"))
    assert parse_sources(["door=rtsp://cam"]) == (SourceSpec("door", "rtsp://cam"),)
    assert parse_source("door=rtsp:/cam") == SourceSpec("cam0", "door=rtsp:/cam")  # a file: no URL, no number
    assert source_names(["door=0", "door=rtsp:/cam"]) == ["door", "cam1"]


def test_a_camera_that_cannot_be_opened_is_retried_until_stopped(caplog):
    stop = threading.Event()
    spec = parse_source("gone=rtsp://127.0.0.1:9/none")
    camera = Camera(spec, stop, backoff=(0.05, 0.1)).start()
    # Opening a stream takes OpenCV/FFmpeg a while on a busy machine: wait for two retries, not a fixed second.
    wait_until(lambda: sum("retrying" in r.getMessage() for r in caplog.records) >= 2, "a second retry")
    assert camera.error == "source 'rtsp://127.0.0.1:9/none': never opened"  # a run ending on --duration says so
    stop.set()
    wait_until(camera.finished.is_set, "the camera's end after stop")
    assert camera.frames_read == 0
    assert camera.error == "source 'rtsp://127.0.0.1:9/none': never opened"  # the run's exit status says so


def test_a_camera_named_by_its_device_file_is_retried_when_unplugged_not_ended_as_a_file(tmp_path, caplog):
    # `--source /dev/v4l/by-id/usb-...-video-index0` (the name a USB replug keeps) was read as a video file: unplugged,
    # it ended for good (the run exited 0, which systemd's Restart=on-failure does not restart); one unplugged at
    # the start was refused as "no such file or folder".
    assert parse_source("/dev/null").kind == "device" and parse_source("/dev/null").live  # (a character device)
    unplugged = parse_source("door=/dev/v4l/by-id/usb-edge-rap-test-video-index0")
    assert unplugged.kind == "device" and unplugged.live
    assert parse_source("/dev/video7").kind == "device"  # not plugged in (there is no video7 here)
    clip = tmp_path / "clip.mp4"
    clip.touch()
    assert parse_source(str(clip)).kind == "file"
    with pytest.raises(EdgeRapError, match="no such file"):  # a file gone from /dev/shm is no camera to wait for
        parse_source("/dev/shm/edge-rap-test-clip-not-there.mp4")
    stop = threading.Event()
    camera = Camera(unplugged, stop, backoff=(0.05, 0.1)).start()
    wait_until(lambda: sum("retrying" in r.getMessage() for r in caplog.records) >= 2, "a second retry")
    assert not camera.finished.is_set()
    stop.set()
    wait_until(camera.finished.is_set, "the camera's end after stop")


def test_a_camera_that_stays_unplugged_is_retried_quietly_and_its_return_is_said(monkeypatch, caplog):
    # A camera unplugged for a night wrote "cannot open ...; retrying in 10.0 s" every 10 s: thousands of lines.
    import cv2

    tries = []

    class Unplugged:
        def __init__(self, target):
            tries.append(target)

        def isOpened(self):
            return len(tries) > 12  # plugged back in at the 13th try

        def grab(self):
            self.grabbed = not getattr(self, "grabbed", False)
            return self.grabbed  # one frame, then lost again

        def retrieve(self):
            return True, np.zeros((48, 64, 3), np.uint8)

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", Unplugged)
    stop = threading.Event()
    camera = Camera(parse_source("door=rtsp://10.0.0.2/live"), stop, backoff=(0.001, 0.004)).start()
    wait_until(lambda: len(tries) > 14, "the camera's return and loss")
    stop.set()
    wait_until(camera.finished.is_set, "the camera's end after stop")
    said = [r.getMessage() for r in caplog.records]
    assert said[:4] == [f"camera door: cannot open rtsp://10.0.0.2/live; retrying in {s:g} s"
                        for s in (0.001, 0.002)] + [
        "camera door: cannot open rtsp://10.0.0.2/live; retrying every 0.004 s, quietly until it is back",
        "camera door: opened rtsp://10.0.0.2/live after 12 failed tries"]


def test_a_camera_that_opens_but_gives_no_frame_backs_off_like_one_that_cannot_open(monkeypatch, caplog):
    # A device another program holds can open and then give nothing: each open reset the wait, so the camera was
    # reopened every 0.5 s with a "stream lost" line and an outage each time, for as long as it lasted.
    import cv2

    tries = []

    class Busy:
        def __init__(self, target):
            tries.append(target)

        def isOpened(self):
            return True

        def grab(self):
            return False

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", Busy)
    stop = threading.Event()
    camera = Camera(parse_source("door=rtsp://10.0.0.2/live"), stop, backoff=(0.001, 0.004)).start()
    wait_until(lambda: len(tries) > 12, "a dozen tries")
    stop.set()
    wait_until(camera.finished.is_set, "the camera's end after stop")
    assert camera.outages == 0  # it never showed anything: nothing left its view
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"camera door: rtsp://10.0.0.2/live opened but gave no frame; retrying in {s:g} s" for s in (0.001, 0.002)] + [
        "camera door: rtsp://10.0.0.2/live opened but gave no frame; retrying every 0.004 s, quietly until it is back"]



@pytest.mark.parametrize("given, shown", [
    ("rtsp://admin:s3cret@10.0.0.2/live", "rtsp://admin:***@10.0.0.2/live"),
    ("rtsp://admin:p@ss:w0rd@10.0.0.2:554/live", "rtsp://admin:***@10.0.0.2:554/live"),
    ("http://10.0.0.3:88/cgi-bin/CGIProxy.fcgi?cmd=snapPicture2&usr=admin&pwd=s3cret",
     "http://10.0.0.3:88/cgi-bin/CGIProxy.fcgi?cmd=snapPicture2&usr=admin&pwd=***"),
    ("https://cam.lan/snap.jpg?api_key=s3cret#x", "https://cam.lan/snap.jpg?api_key=***#x")])
def test_a_streams_password_never_reaches_the_log_or_the_sources_error(monkeypatch, caplog, given, shown):
    # A camera's URL was logged whole, its password in a journal other accounts read and in run --json's errors
    import cv2

    class Never:
        def __init__(self, target):
            assert target == given  # (opened with its password, of course)

        def isOpened(self):
            return False

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", Never)
    stop = threading.Event()
    camera = Camera(parse_source(f"door={given}"), stop, backoff=(0.001, 0.002)).start()
    wait_until(lambda: len(caplog.records) >= 2, "the tries said")
    stop.set()
    wait_until(camera.finished.is_set, "the camera's end after stop")
    said = [r.getMessage() for r in caplog.records]
    assert f"camera door: cannot open {shown}; retrying in 0.001 s" in said
    assert camera.error == f"source {shown!r}: never opened"
    assert not any("s3cret" in line or "w0rd" in line for line in said)


def test_a_percent_encoded_password_is_hidden_as_the_backend_decoded_it_too():
    # "p%40ss" is the password "p@ss": a backend's error that quoted it decoded kept it whole
    url = "rtsp://admin:p%40ss%3Aw0rd@10.0.0.2/live?token=t%2Bk3n"
    assert (hide_secrets(f"no auth for p@ss:w0rd (token t+k3n) at {url}", url)
            == "no auth for *** (token ***) at rtsp://admin:***@10.0.0.2/live?token=***")


def test_a_query_secret_quoted_as_a_form_decodes_it_and_a_short_one_in_its_place_are_hidden():
    # "a+b" in a query is "a b", which unquote kept as "a+b": a backend quoting it decoded showed it; and a secret of
    # two characters was left wherever it stood, the URL's own place too (replacing "ab" everywhere garbles the text)
    url = "http://10.0.0.3/snap.jpg?usr=admin&pwd=a+b%21"
    assert hide_secrets("wrong password 'a b!' for http://10.0.0.3/snap.jpg?usr=admin&pwd=a b!", url) == (
        "wrong password '***' for http://10.0.0.3/snap.jpg?usr=admin&pwd=***")
    url = "rtsp://admin:ab@10.0.0.2/live?Token=cd"
    assert hide_secrets("about tab: 401 from rtsp://admin:ab@10.0.0.2:554 (token=cd, mytoken=cd, abcd)", url) == (
        "about tab: 401 from rtsp://admin:***@10.0.0.2:554 (token=***, mytoken=cd, abcd)")
    # a secret of spaces blanked every run of three spaces in the text (column alignment, an indented traceback)
    url = "http://10.0.0.3/snap.jpg?pwd=%20%20%20"
    assert hide_secrets("   File 'x.py', line 3:   pwd=   ", url) == "   File 'x.py', line 3:   pwd=***"


class FailingStream:
    """A live stream whose `fail`-th read raises what it is given (OpenCV's error from a backend mid-stream), once."""

    fail, error, opened = 5, None, 0

    def __init__(self, target):
        FailingStream.opened += 1
        self.reads = 0

    def isOpened(self):
        return True

    def grab(self):
        self.reads += 1
        if FailingStream.opened == 1 and self.reads == FailingStream.fail:
            raise FailingStream.error
        return True

    def retrieve(self):
        return True, np.zeros((48, 64, 3), np.uint8)

    def release(self):
        pass


def test_a_stream_whose_read_raises_in_opencv_is_reconnected_not_ended(monkeypatch, caplog):
    # A backend's error mid-stream ended the capture thread: with one camera the daemon stopped watching at once and
    # exited 0, so a service restarted on failure stayed down for good.
    import cv2

    monkeypatch.setattr(cv2, "VideoCapture", FailingStream)
    monkeypatch.setattr(FailingStream, "opened", 0)
    monkeypatch.setattr(FailingStream, "error", cv2.error("OpenCV(4.x) gstreamer: internal data stream error\n"))
    stop = threading.Event()
    camera = Camera(parse_source("door=rtsp://10.0.0.2/live"), stop, backoff=(0.001, 0.004)).start()
    wait_until(lambda: (FailingStream.opened > 1 and camera.frames_read > 10) or camera.finished.is_set(),
               "the reconnection")
    assert not camera.finished.is_set()
    stop.set()
    wait_until(camera.finished.is_set, "the camera's end after stop")
    assert camera.error is None and camera.outages == 1
    assert "camera door: stream lost (OpenCV(4.x) gstreamer: internal data stream error); reconnecting" in [
        r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("error", ["cv2", "other"])
def test_a_backends_error_quoting_the_url_keeps_its_password_hidden(monkeypatch, caplog, error):
    # The URL was shown without its password, but a backend's error that quoted it went into the log whole
    import cv2

    url = "rtsp://admin:s3cret@10.0.0.2/live?token=t0ken"
    text = f"OpenCV(4.x) could not read {url}: connection reset"
    monkeypatch.setattr(cv2, "VideoCapture", FailingStream)
    monkeypatch.setattr(FailingStream, "opened", 0)
    monkeypatch.setattr(FailingStream, "error", cv2.error(text) if error == "cv2" else ValueError(text))
    stop = threading.Event()
    camera = Camera(parse_source(f"door={url}"), stop, backoff=(0.001, 0.004)).start()
    wait_until(lambda: FailingStream.opened > 1 or camera.finished.is_set(), "the reconnection or the end")
    stop.set()
    wait_until(camera.finished.is_set, "the camera's end after stop")
    said = [r.getMessage() for r in caplog.records] + [camera.error or ""] + [caplog.text]
    assert any("rtsp://admin:***@10.0.0.2/live?token=***: connection reset" in line for line in said)
    assert not any("s3cret" in line or "t0ken" in line for line in said)


def test_a_capture_that_fails_unexpectedly_is_a_source_error_not_a_quiet_end(monkeypatch):
    # An exception no reader expects ended the thread with its error unset: the run exited 0, as if the source ended.
    import cv2

    monkeypatch.setattr(cv2, "VideoCapture", FailingStream)
    monkeypatch.setattr(FailingStream, "opened", 0)
    monkeypatch.setattr(FailingStream, "error", ValueError("a value no reader expects"))
    camera = Camera(parse_source("door=rtsp://10.0.0.2/live"), threading.Event()).start()
    wait_until(camera.finished.is_set, "the camera's end")
    assert camera.error == "source 'rtsp://10.0.0.2/live' failed: ValueError: a value no reader expects"


def write_clip(path, frames: int, fps: float = 15.0, codec: str = "mp4v") -> str:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, (320, 240))
    for k in range(frames):
        writer.write(scene(k))
    writer.release()
    return str(path)


def test_a_video_whose_name_is_not_utf8_is_read_not_a_crash(tmp_path):
    # `run --source cam\xf1.mp4` (a name from a Latin-1 disk) ended in a segmentation fault: OpenCV's binding cannot
    # encode Python's "\udcf1" and crashed in VideoCapture. In a process of its own, so that a crash fails this test
    import os
    import subprocess
    import sys

    clip = tmp_path / os.fsdecode(b"cam\xf1.mp4")
    os.rename(write_clip(tmp_path / "clip.mp4", 6), clip)  # (OpenCV's writer crashes on such a name too)
    read = ("import sys; from edge_rap.perceive.camera import _open_video\n"
            "capture = _open_video(sys.argv[1], None)\n"
            "frames = 0\n"
            "while capture.read()[0]: frames += 1\n"
            "print(capture.isOpened(), frames)")
    done = subprocess.run([sys.executable, "-c", read, str(clip)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert (done.returncode, done.stdout) == (0, "True 6\n"), done.stderr[-2000:]


class NeverBusySlot(LatestSlot):
    """A consumer that is always ready and keeps every frame handed on: what the frame-rate cap alone lets
    through, whatever this machine's speed (a real consumer that came back late would miss frames)."""

    def __init__(self):
        super().__init__()
        self.got = []

    @property
    def wanted(self) -> bool:
        return True

    def put(self, frame, stop) -> None:
        self.got.append(frame)


def test_a_video_is_handed_on_at_most_fps_cap_frames_a_second(tmp_path):
    stop = threading.Event()
    camera = Camera(parse_source(f"cam={write_clip(tmp_path / 'a.mp4', 24)}"), stop, fps_cap=5.0)
    camera.slot = NeverBusySlot()
    camera.start()
    wait_until(camera.finished.is_set, "the end of the clip")
    got = camera.slot.got
    times = [f.time_s for f in got]
    assert camera.frames_read == 24 and len(got) + camera.slot.dropped == 24
    assert 6 <= len(got) <= 8  # 1.6 s of video at 5 a second
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.2 - 1e-9
    assert got[0].pixels.shape == (240, 320, 3)


def test_a_busy_consumer_gets_no_frames_decoded_behind_its_back(tmp_path):
    stop = threading.Event()
    camera = Camera(parse_source(f"cam={write_clip(tmp_path / 'a.mp4', 15, fps=30.0)}"), stop).start()
    while camera.slot.take() is None:  # take one frame, then never come back
        camera.slot.wait(0.05)
    wait_until(camera.finished.is_set, "the end of the clip")
    assert camera.frames_read == 15
    assert camera.slot._frame is None and camera.slot.dropped == 14  # read, counted, never decoded or queued


def test_a_fifo_no_one_writes_to_keeps_no_other_camera_from_opening(tmp_path):
    # Before: OpenCV opens one source at a time, and its open of the FIFO waited for a writer for good: the clip
    # beside it never opened, and the run watched nothing
    os.mkfifo(tmp_path / "pipe")
    stop = threading.Event()
    pipe = Camera(parse_source(f"pipe={tmp_path / 'pipe'}"), stop).start()
    clip = Camera(parse_source(f"clip={write_clip(tmp_path / 'a.mp4', 5)}"), stop)
    clip.slot = NeverBusySlot()
    try:
        time.sleep(0.3)  # (the FIFO's wait begun first, as with `--source pipe --source a.mp4`)
        clip.start()
        wait_until(clip.finished.is_set, "the end of the clip", timeout_s=20)
        assert clip.error is None and clip.frames_read == 5 and not pipe.finished.is_set()
        stop.set()
        wait_until(pipe.finished.is_set, "the FIFO's wait to end at the stop")
        assert pipe.error == f"source {str(tmp_path / 'pipe')!r}: never opened"
    finally:
        stop.set()
        with contextlib.suppress(OSError):  # a reader still blocked in OpenCV's open is let go
            os.close(os.open(tmp_path / "pipe", os.O_WRONLY | os.O_NONBLOCK))


def test_a_clip_written_whole_into_a_fifo_before_opencv_opens_it_is_read(tmp_path):
    # Before: the FIFO waited for had a clip in it and no writer left (`cat clip.avi > pipe`, shorter than the
    # pipe's buffer), and OpenCV's open of the path waited for the next writer for good: no frame, never opened
    os.mkfifo(tmp_path / "pipe")
    clip = Path(write_clip(tmp_path / "a.avi", 3, codec="MJPG")).read_bytes()
    held = os.open(tmp_path / "pipe", os.O_RDONLY | os.O_NONBLOCK)  # (the pipe kept, and the writer let in)
    writer = os.open(tmp_path / "pipe", os.O_WRONLY | os.O_NONBLOCK)
    fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, 1 << 20)
    assert os.write(writer, clip) == len(clip)  # (all of it in the pipe's buffer: the writer need not wait)
    os.close(writer)
    stop = threading.Event()
    camera = Camera(parse_source(f"pipe={tmp_path / 'pipe'}"), stop)
    camera.slot = NeverBusySlot()
    try:
        camera.start()
        wait_until(lambda: camera.outages or camera.finished.is_set(), "the end of the clip in the FIFO", timeout_s=20)
        assert camera.error is None and camera.frames_read == 3  # (and the next writer waited for)
    finally:
        stop.set()
        os.close(held)
        with contextlib.suppress(OSError):  # a reader still blocked in OpenCV's open is let go
            os.close(os.open(tmp_path / "pipe", os.O_WRONLY | os.O_NONBLOCK))


def test_a_fifo_replaced_while_waited_for_is_read_as_what_its_path_names_now(tmp_path):
    # Before: the wait went on on the FIFO first opened, removed, which no writer could reach any more: a file put
    # in its place (or a FIFO made anew, rm then mkfifo) was never read
    os.mkfifo(tmp_path / "pipe")
    stop = threading.Event()
    camera = Camera(parse_source(f"pipe={tmp_path / 'pipe'}"), stop)
    camera.slot = NeverBusySlot()
    try:
        camera.start()
        time.sleep(0.3)  # (the wait begun)
        os.replace(write_clip(tmp_path / "a.avi", 3, codec="MJPG"), tmp_path / "pipe")
        wait_until(camera.finished.is_set, "the end of the file put in the FIFO's place", timeout_s=20)
        assert camera.error is None and camera.frames_read == 3
    finally:
        stop.set()


def fifo_camera(tmp_path: Path) -> tuple[Camera, threading.Event]:
    """A camera on a FIFO made at `tmp_path/pipe`, read as fast as it comes, every frame kept; and its stop."""
    os.mkfifo(tmp_path / "pipe")
    stop = threading.Event()
    camera = Camera(parse_source(f"pipe={tmp_path / 'pipe'}"), stop, realtime=False)
    camera.slot = NeverBusySlot()
    return camera, stop


def clip_bytes(tmp_path: Path) -> bytes:
    """A three-frame MJPG clip, as a recorder would write it into a FIFO."""
    return Path(write_clip(tmp_path / "a.avi", 3, codec="MJPG")).read_bytes()


def write_into(pipe: Path, data: bytes) -> None:
    """One writer's whole life: open (waiting for the camera's read end), write, close."""
    with open(pipe, "wb") as writer:
        writer.write(data)


@contextlib.contextmanager
def stalled_writer(pipe: Path, head: bytes):
    """A writer that sent `head` (a header's start), saw it read, and stalls until the block ends."""
    with open(pipe, "wb") as stalled:
        stalled.write(head)
        stalled.flush()
        waiting = array.array("i", [0])
        wait_until(lambda: fcntl.ioctl(stalled, termios.FIONREAD, waiting) == 0 and not waiting[0],
                   "the stalled writer's header being read")
        yield stalled


@contextlib.contextmanager
def started(camera: Camera, stop: threading.Event):
    """The camera reading until the block ends, whatever the test met there (its stop set then)."""
    camera.start()
    try:
        yield camera
    finally:
        stop.set()


def test_a_fifo_whose_writer_closes_and_comes_back_is_read_again(tmp_path):
    # Before: the source ended at the first writer's end of file: a recorder restarted later was never read
    camera, stop = fifo_camera(tmp_path)
    clip = clip_bytes(tmp_path)
    with started(camera, stop):
        write_into(tmp_path / "pipe", clip)
        wait_until(lambda: camera.outages or camera.finished.is_set(), "the first writer's end")
        assert not camera.finished.is_set() and camera.outages == 1 and camera.frames_read == 3
        write_into(tmp_path / "pipe", clip)
        wait_until(lambda: len(camera.slot.got) == 6, "the second writer's clip")  # (a frame is counted read before
        assert camera.error is None and not camera.finished.is_set()  # it is handed on)
        times = [f.time_s for f in camera.slot.got]
        assert len(times) == 6 and all(a < b for a, b in zip(times, times[1:]))  # (its time goes on)
        stop.set()
        wait_until(camera.finished.is_set, "the wait for a third writer to end at the stop")
        assert camera.error is None


@pytest.mark.parametrize("earlier_clip", [False, True])
def test_a_fifo_writer_stalled_mid_header_holds_no_stop(tmp_path, earlier_clip, caplog):
    # Before: FFmpeg's probe waited in a read no stop reaches, the camera's thread left running past the stop's join
    camera, stop = fifo_camera(tmp_path)
    clip = clip_bytes(tmp_path)
    with started(camera, stop):
        if earlier_clip:
            write_into(tmp_path / "pipe", clip)
            wait_until(lambda: camera.outages or camera.finished.is_set(), "the first writer's end")
        with stalled_writer(tmp_path / "pipe", clip[:200]):
            time.sleep(0.3)  # (FFmpeg in its read for the rest)
            stop.set()
            camera.join(10)
            assert camera.finished.is_set(), "the stop did not end the read"
        path = str(tmp_path / "pipe")
        assert camera.error == (None if earlier_clip else f"source {path!r}: never opened")
        assert ("never opened" in caplog.text) != earlier_clip  # (said as for a FIFO no one writes to)


def test_a_fifo_whose_first_writer_sends_junk_is_said_at_once(tmp_path):
    # Before: the reason looked for opened the FIFO again, which waited for a next writer (the source hung, a stop
    # could not end it) and then took that writer's first bytes
    camera, stop = fifo_camera(tmp_path)
    with started(camera, stop):
        write_into(tmp_path / "pipe", b"not a video\n" * 1000)
        wait_until(camera.finished.is_set, "the junk's end")
        assert camera.error == f"source {str(tmp_path / 'pipe')!r}: cannot open as a video"


def test_a_fifo_writer_that_sends_junk_after_a_clip_ends_no_source(tmp_path, monkeypatch):
    # Before: a next writer's bytes that were no video (a recorder killed mid-header) ended the source with an error
    # (the run exited 2 where it was the only one), and a good writer after it was killed by SIGPIPE. Then: it counted
    # an outage, and was said as a writer that closed, though it showed nothing
    camera, stop = fifo_camera(tmp_path)
    clip = clip_bytes(tmp_path)
    outages_as_opened, ended, play = [], [], Camera._play

    def play_counted(self, *args):
        outages_as_opened.append(self.outages)
        try:
            return play(self, *args)
        finally:
            ended.append(self.outages)

    monkeypatch.setattr(Camera, "_play", play_counted)
    with started(camera, stop):
        write_into(tmp_path / "pipe", clip)
        wait_until(lambda: camera.outages or camera.finished.is_set(), "the first writer's end")
        write_into(tmp_path / "pipe", b"not a video\n" * 1000)
        wait_until(lambda: len(ended) == 2 or camera.finished.is_set(), "the junk writer's end")
        assert not camera.finished.is_set(), camera.error
        write_into(tmp_path / "pipe", clip)
        wait_until(lambda: camera.frames_read == 6 or camera.finished.is_set(), "the third writer's clip")
        assert camera.frames_read == 6 and camera.error is None and not camera.finished.is_set()
        assert outages_as_opened == [0, 1, 1]  # the junk writer's end was no outage


def test_a_fifo_writer_that_comes_as_the_last_one_is_read_has_a_reader(tmp_path, monkeypatch):
    # Before: the last writer's read end was closed before the next wait opened its own: a writer that came between
    # (`cat a > pipe; cat b > pipe`) met no reader, its writes failing (EPIPE; `cat` killed by SIGPIPE). The writer's
    # close is counted (an outage) before the next wait: the test looked at `came` before that, failing now and then
    camera, stop = fifo_camera(tmp_path)
    clip, came, waited = clip_bytes(tmp_path), [], []
    await_writer = Camera._await_writer

    def next_writer_comes_first(self, path, *held):
        if self.frames_read and not waited:  # (the first writer's clip read): the next one opens at once
            with contextlib.suppress(OSError):  # (ENXIO: no reader)
                came.append(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            waited.append(True)
        return await_writer(self, path, *held)

    monkeypatch.setattr(Camera, "_await_writer", next_writer_comes_first)
    lost = Camera._lost
    monkeypatch.setattr(Camera, "_lost", lambda self: (lost(self), time.sleep(0.2)))  # (the next wait a while after)
    with started(camera, stop):
        write_into(tmp_path / "pipe", clip)
        wait_until(lambda: waited or camera.finished.is_set(), "the next wait after the first writer's end")
        assert len(came) == 1, "the next writer found no reader"
        os.set_blocking(came[0], True)
        os.write(came[0], clip)
        os.close(came[0])
        wait_until(lambda: camera.frames_read == 6 or camera.finished.is_set(), "the second writer's clip")
        assert camera.frames_read == 6 and camera.error is None


#: A raw video's header whole, its first frame not yet come: a camera pipeline (ffmpeg) that wrote it and waits for the
#: camera's first frame.
Y4M_HEADER = b"YUV4MPEG2 W64 H48 F30:1 Ip A1:1 C420jpeg\n"
Y4M_FRAME = b"FRAME\n" + bytes(64 * 48 * 3 // 2)


@pytest.mark.parametrize("whole_header", [False, True])
def test_a_fifo_writer_stalled_before_its_open_keeps_no_other_camera_from_opening(tmp_path, monkeypatch, caplog,
                                                                                  whole_header):
    # Before: FFmpeg's probe of the stalled header held OpenCV's open, which is one at a time, until the stop: a clip
    # given to another camera meanwhile was never read. A whole header cut so opened on it alone: no frame, nothing
    # said, the frames that came later read as junk
    monkeypatch.setattr(fifo_relay, "OPEN_STALL_S", 1.0)
    camera, stop = fifo_camera(tmp_path)
    clip = clip_bytes(tmp_path)
    other = Camera(parse_source(f"clip={tmp_path / 'a.avi'}"), stop)
    other.slot = NeverBusySlot()
    with started(camera, stop):
        with stalled_writer(tmp_path / "pipe", Y4M_HEADER if whole_header else clip[:200]):
            time.sleep(0.3)  # (FFmpeg's probe in its read for the rest)
            other.start()
            wait_until(other.finished.is_set, "the end of the clip beside the stalled FIFO", timeout_s=20)
            assert other.error is None and other.frames_read == 3
            wait_until(lambda: "before its video opened, while another source waited" in caplog.text, "the stall said")
            assert not camera.finished.is_set() and camera.outages == 0
        write_into(tmp_path / "pipe", clip)  # (the stalled writer gone, the next one is read)
        wait_until(lambda: camera.frames_read == 3 or camera.finished.is_set(), "the next writer's clip")
        assert camera.frames_read == 3 and camera.error is None


@pytest.mark.parametrize("told", [True, False])
def test_a_fifo_writer_cut_for_a_stall_is_said_once_however_long_it_streams(tmp_path, monkeypatch, caplog, told):
    # Before: its later bytes, its headerless frames, were said at every open tried ("cannot open as a video; waiting
    # for the FIFO's next writer", a line every second or two for as long as it streamed). A next writer's junk, after
    # it closed, is still said. Where inotify tells its close (`told`), its later bytes are not tried at all
    if not told:
        monkeypatch.setattr(inotify, "watch", lambda fd, mask: None)
    monkeypatch.setattr(fifo_relay, "OPEN_STALL_S", 0.3)
    camera, stop = fifo_camera(tmp_path)
    tries, play = [], Camera._play

    def counted_play(self, *args):
        tries.append(len(tries))
        return play(self, *args)

    monkeypatch.setattr(Camera, "_play", counted_play)
    with started(camera, stop):
        with stalled_writer(tmp_path / "pipe", Y4M_HEADER) as writer:
            with opens.opening():  # another source's open waiting: the stall is cut
                wait_until(lambda: "before its video opened" in caplog.text or camera.finished.is_set(), "the cut")
            os.set_blocking(writer.fileno(), False)
            deadline, sent = time.monotonic() + 60, 0
            while (sent < 1 << 21 if told else len(tries) < 4) and not camera.finished.is_set() and \
                    time.monotonic() < deadline:
                with contextlib.suppress(BlockingIOError):  # (its frames streamed while opens of them are tried)
                    sent += os.write(writer.fileno(), Y4M_FRAME)
                time.sleep(0.001)
            assert len(tries) == 1 if told else len(tries) >= 4, "the writer's later bytes tried as often as it needs"
        wait_until(lambda: not camera._writer_said or camera.finished.is_set(), "the writer's end seen")
        write_into(tmp_path / "pipe", b"not a video\n" * 1000)  # a next writer's junk
        wait_until(lambda: caplog.text.count("waiting for the FIFO's next writer") >= 2 or camera.finished.is_set(),
                   "the next writer's junk said")
        assert not camera.finished.is_set(), camera.error
    said = [r.getMessage() for r in caplog.records if "waiting for the FIFO's next writer" in r.getMessage()]
    assert len(said) == 2 and "before its video opened" in said[0] and "cannot open as a video" in said[1]


def test_a_refused_fifo_writers_flood_is_not_probed_again_and_the_next_clip_is_whole(tmp_path, monkeypatch):
    # Before: a junk writer's bytes were probed at every open tried, 44-51 ms of CPU each, 0.34 cores while it
    # flooded (tools/bench_fifo_junk.py). Its close told by inotify, its bytes are let go unprobed until it, exactly
    camera, stop = fifo_camera(tmp_path)
    clip, tries, play = clip_bytes(tmp_path), [], Camera._play

    def counted_play(self, *args):
        tries.append(len(tries))
        return play(self, *args)

    monkeypatch.setattr(Camera, "_play", counted_play)
    with started(camera, stop):
        write_into(tmp_path / "pipe", clip)
        wait_until(lambda: camera.outages or camera.finished.is_set(), "the first writer's end")
        with open(tmp_path / "pipe", "wb") as junk:
            for _ in range(64):  # (4 MiB, each 64 KiB written whole, waiting for room)
                junk.write(os.urandom(1 << 16))
        wait_until(lambda: not camera._writer_said or camera.finished.is_set(), "the junk writer's close told")
        assert len(tries) == 2 and not camera.finished.is_set(), camera.error
        write_into(tmp_path / "pipe", clip)
        wait_until(lambda: camera.outages == 2 or camera.finished.is_set(), "the next writer's clip")
        assert camera.frames_read == 6 and camera.error is None


def test_a_fifo_made_anew_while_a_refused_writer_hangs_on_the_old_one_is_read(tmp_path):
    # Before: a refused writer's bytes were let go until its close, the FIFO's path not looked at meanwhile: one that
    # hung, never closing, kept the source on the removed FIFO, the new one's writers meeting no reader for good
    camera, stop = fifo_camera(tmp_path)
    clip, pipe = clip_bytes(tmp_path), tmp_path / "pipe"
    with started(camera, stop):
        write_into(pipe, clip)
        wait_until(lambda: camera.outages or camera.finished.is_set(), "the first writer's end")
        with open(pipe, "wb") as hung:
            hung.write(b"not a video\n" * 100_000)  # (its bytes refused, it stays: let go until its close)
            hung.flush()
            wait_until(lambda: camera._writer_said or camera.finished.is_set(), "the hung writer refused")
            write_into_anew(pipe, clip, camera)
            wait_until(lambda: camera.frames_read == 6 or camera.finished.is_set(), "the new FIFO's clip")
            assert camera.frames_read == 6 and camera.error is None


def write_into_anew(pipe: Path, data: bytes, camera: Camera) -> None:
    """The FIFO made anew (rm, mkfifo), then a writer's whole life there once `camera` reads it."""
    pipe.unlink()
    os.mkfifo(pipe)
    writer = []

    def opened() -> bool:
        with contextlib.suppress(OSError):  # (ENXIO: no reader yet)
            writer.append(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        return bool(writer) or camera.finished.is_set()

    wait_until(opened, "a reader of the new FIFO", 20)
    os.set_blocking(writer[0], True)
    os.write(writer[0], data)
    os.close(writer[0])


@contextlib.contextmanager
def hung_writer(tmp_path: Path, monkeypatch, head):
    """A FIFO camera reading, its writer hung (HUNG_S made 0.3 s) after sending `head(clip)` of a three-frame clip:
    (the camera, the FIFO, the clip) until the block ends."""
    monkeypatch.setattr(fifo_relay, "HUNG_S", 0.3)
    camera, stop = fifo_camera(tmp_path)
    clip, pipe = clip_bytes(tmp_path), tmp_path / "pipe"
    with started(camera, stop), stalled_writer(pipe, head(clip)):
        yield camera, pipe, clip


def test_a_lone_fifo_writer_hung_mid_header_keeps_no_source_on_a_fifo_made_anew(tmp_path, monkeypatch, caplog):
    # Before: the probe of a lone writer's stalled header was waited out (a camera pipeline slow to start) with the
    # FIFO's path not looked at: made anew meanwhile, the source stayed on the old FIFO for good, the new one's writers
    # meeting no reader. The relay looks at the path while the writer sends nothing
    with hung_writer(tmp_path, monkeypatch, lambda clip: clip[:200]) as (camera, pipe, clip):
        write_into_anew(pipe, clip, camera)
        wait_until(lambda: camera.frames_read == 3 or camera.finished.is_set(), "the new FIFO's clip")
        assert camera.frames_read == 3 and camera.error is None
    assert "the FIFO was made anew while its writer sent nothing for 0.3 s before its video opened; waiting for the " \
           "FIFO's next writer" in caplog.text


@pytest.mark.parametrize("head, sent", [(lambda clip: clip[:200], "200 bytes"),
                                        (lambda clip: b"not a video\n" * 100, "1200 bytes")], ids=["header", "junk"])
def test_a_fifo_removed_while_its_lone_writer_hangs_mid_header_ends_saying_so(tmp_path, monkeypatch, caplog, head,
                                                                              sent):
    # Before: "no frame could be read (not a video or image OpenCV decodes)", of a header's start no one refused; then
    # "had sent only part of a header" of junk too (FFmpeg's probe waits for more of either, up to 1 MiB)
    with hung_writer(tmp_path, monkeypatch, head) as (camera, pipe, _):
        pipe.unlink()
        wait_until(camera.finished.is_set, "the source's end")
    assert camera.error == (f"source '{pipe}': the FIFO was removed while its writer sent nothing for 0.3 s, after "
                            f"{sent} from which no frame was read")
    assert said_by(camera, caplog) == [f"camera pipe: {camera.error}"]  # (once: no "waiting for the next writer" first)


def held_behind_another(monkeypatch) -> tuple[threading.Event, threading.Event]:
    """Every video's open held, as behind another source's (OpenCV opens one at a time: an unreachable URL's, for up
    to 30 s): `reached` set as one waits, the opens going on once `behind` is set."""
    reached, behind, open_video = threading.Event(), threading.Event(), camera_module._open_video

    def behind_another(*args):
        reached.set()
        behind.wait(60)
        return open_video(*args)

    monkeypatch.setattr(camera_module, "_open_video", behind_another)
    return reached, behind


@contextlib.contextmanager
def open_behind_another(tmp_path: Path, monkeypatch):
    """A camera on a FIFO whose writer came, its open waiting behind another source's (OpenCV opens one at a time:
    an unreachable URL's, for up to 30 s) until the block ends, the camera stopped then."""
    reached, behind = held_behind_another(monkeypatch)
    camera, stop = fifo_camera(tmp_path)
    pipe = tmp_path / "pipe"
    with started(camera, stop):
        write_into(pipe, clip_bytes(tmp_path))
        wait_until(reached.is_set, "the FIFO's open waiting behind another's")
        try:
            yield camera, pipe
        finally:
            stop.set()
            behind.set()
            wait_until(camera.finished.is_set, "the camera's end")


def test_a_fifo_removed_while_its_open_waits_behind_another_sources_is_said_removed(tmp_path, monkeypatch):
    # Before: "never opened", at the run's end (which reads it of a camera still opening) and at the camera's
    with open_behind_another(tmp_path, monkeypatch) as (camera, pipe):
        pipe.unlink()
        assert camera.error == f"source '{pipe}': removed before it opened"  # (as the run's end reads it)
    assert camera.error == f"source '{pipe}': removed before it opened"


def test_a_fifo_whose_path_cannot_be_looked_at_as_its_open_waits_is_said_so_not_removed(tmp_path, monkeypatch):
    # Before: "removed before it opened" whatever failed the look at its path (a folder on it made unsearchable,
    # EACCES; here a link to itself put in its place, ELOOP): only a path that names nothing is a FIFO removed
    with open_behind_another(tmp_path, monkeypatch) as (camera, pipe):
        pipe.unlink()
        pipe.symlink_to(pipe)
        assert camera.error == f"source '{pipe}': cannot be looked at ({os.strerror(errno.ELOOP)})"


def test_a_hung_writers_clip_queued_behind_another_sources_open_is_read_though_its_fifo_was_removed(
        tmp_path, monkeypatch, caplog):
    # Before: the writer's whole clip, relayed into the pipe while the FIFO's open waited behind another source's
    # (an unreachable URL's, up to 30 s), its writer hung, the FIFO removed meanwhile, was let go unread as the open
    # returned: "the FIFO was removed while its writer sent nothing for 0.3 s, after N bytes from which no frame was
    # read", the source's error (the README: "a header's start or junk"), though the open had them all
    reached, behind = held_behind_another(monkeypatch)
    one = Path(write_clip(tmp_path / "one.avi", 1, codec="MJPG")).read_bytes()  # (all in the relay's pipe: 48 KB)
    with hung_writer(tmp_path, monkeypatch, lambda clip: one) as (camera, pipe, _):
        wait_until(reached.is_set, "the FIFO's open waiting behind another's")
        pipe.unlink()
        wait_until(lambda: not any(t.name == "fifo-relay-pipe" for t in threading.enumerate()),
                   "the relay's end for the hung writer of a FIFO removed")
        behind.set()
        wait_until(camera.finished.is_set, "the source's end")
    assert camera.frames_read == 1 and camera.error is None
    assert said_by(camera, caplog) == [f"camera pipe: source '{pipe}': the FIFO was removed while its writer sent "
                                       "nothing for 0.3 s: its video left as a hung writer's; the source ends"]


def said_by(camera: Camera, caplog) -> list[str]:
    """The lines `camera`'s thread logged, oldest first."""
    return [r.getMessage() for r in caplog.records if r.threadName == f"capture-{camera.spec.name}"]


@pytest.mark.parametrize("opened", [False, True])
def test_a_fifo_removed_under_its_hung_writer_is_said_once_as_the_sources_end(tmp_path, monkeypatch, caplog, opened):
    # Before: "the FIFO was made anew or removed while its writer sent nothing for 3 s before its video opened; waiting
    # for the FIFO's next writer", then the source ended without a word; once its video opened, "made anew or
    # removed", its end not said
    monkeypatch.setattr(fifo_relay, "HUNG_S", 0.3)
    camera, stop = fifo_camera(tmp_path)
    clip, pipe = clip_bytes(tmp_path), tmp_path / "pipe"
    with started(camera, stop):
        if not opened:  # (a clip first: the source showed frames, its end is no error)
            write_into(pipe, clip)
            wait_until(lambda: camera.outages or camera.finished.is_set(), "the first writer's end")
        with stalled_writer(pipe, Y4M_HEADER + Y4M_FRAME * 2 if opened else clip[:200]):
            wait_until(lambda: camera.frames_read == 3 - opened or camera.finished.is_set(), "the frames sent read")
            pipe.unlink()
            wait_until(camera.finished.is_set, "the source's end, its FIFO removed")
    assert camera.error is None and camera.frames_read == 3 - opened
    where = ": its video left as a hung writer's" if opened else " before its video opened"
    assert said_by(camera, caplog) == [f"camera pipe: source '{pipe}': the FIFO was removed while its writer sent "
                                       f"nothing for 0.3 s{where}; the source ends"]


@pytest.mark.parametrize("what", ["folder", "file"])
def test_a_file_or_folder_put_in_a_fifos_place_under_its_hung_writer_is_said_as_it_is(tmp_path, monkeypatch, caplog,
                                                                                      what):
    # Before: "the FIFO was made anew while its writer sent nothing for 3 s before its video opened; waiting for the
    # FIFO's next writer", of a folder or a file, which was read next: no FIFO made, no writer waited for
    with hung_writer(tmp_path, monkeypatch, lambda clip: clip[:200]) as (camera, pipe, clip):
        pipe.unlink()
        pipe.mkdir() if what == "folder" else pipe.write_bytes(clip)
        wait_until(camera.finished.is_set, "the source's end")
    said = said_by(camera, caplog)
    assert said[0] == (f"camera pipe: source '{pipe}': the FIFO was replaced by a {what} while its writer sent nothing "
                       "for 0.3 s before its video opened; reading what its path names now")
    if what == "folder":
        assert camera.error == f"source '{pipe}': cannot open as a video"
        assert said[1:] == [f"camera pipe: {camera.error}"]
    else:
        assert camera.error is None and camera.frames_read == 3 and said[1:] == []


def test_a_fifo_writer_hung_mid_stream_keeps_no_source_on_a_fifo_made_anew(tmp_path, monkeypatch, caplog):
    # Before: a writer hung once its video opened (a camera pipeline frozen) kept the source on the old FIFO for good
    with hung_writer(tmp_path, monkeypatch, lambda _: Y4M_HEADER + Y4M_FRAME * 2) as (camera, pipe, clip):
        wait_until(lambda: camera.frames_read or camera.finished.is_set(), "the video opened")
        write_into_anew(pipe, clip, camera)
        wait_until(lambda: camera.frames_read == 5 or camera.finished.is_set(), "the new FIFO's clip")
        assert camera.frames_read == 5 and camera.error is None
    assert "the FIFO was made anew while its writer sent nothing for 0.3 s: its video left" in caplog.text
    assert "the FIFO's writer closed" not in caplog.text  # (it did not)


@pytest.mark.parametrize("opened", [False, True])
@pytest.mark.parametrize("removed", [True, False])
def test_a_live_fifo_writers_pause_cuts_none_of_its_video(tmp_path, monkeypatch, caplog, opened, removed):
    # Before: the relay looked at the FIFO's path whenever the FIFO was empty, as a live stream's is between frames
    # (and through FFmpeg's probe of a slow one): removed (or made anew) while a recorder streamed, its video was cut
    # at once, the recorder killed by EPIPE. A pause under HUNG_S is the stream's own; and one over it (a time-lapse's
    # 4 s between frames) on a FIFO whose path still names it is waited out, no hung writer said
    if not removed:
        monkeypatch.setattr(fifo_relay, "HUNG_S", 0.3)
    camera, stop = fifo_camera(tmp_path)
    video = Y4M_HEADER + Y4M_FRAME * 4
    head = len(Y4M_HEADER) + 2 * len(Y4M_FRAME) if opened else len(Y4M_HEADER) // 2
    with started(camera, stop):
        with stalled_writer(tmp_path / "pipe", video[:head]) as writer:
            if opened:
                wait_until(lambda: camera.frames_read or camera.finished.is_set(), "the video opened")
            if removed:
                (tmp_path / "pipe").unlink()
            time.sleep(0.5 if removed else 1.0)  # (the pause between two frames, the FIFO empty: over HUNG_S if kept)
            with contextlib.suppress(BrokenPipeError):
                writer.write(video[head:])
                writer.flush()
        if removed:
            wait_until(camera.finished.is_set, "the source's end, its FIFO removed")
        else:
            wait_until(lambda: camera.frames_read == 4 or camera.finished.is_set(), "the writer's whole video")
            assert not camera.finished.is_set()
        assert camera.frames_read == 4 and camera.error is None
    assert "made anew or removed" not in caplog.text


def test_a_stalled_fifo_writers_close_before_its_bytes_are_let_go_is_told(tmp_path, monkeypatch):
    # Before: the relay letting a refused writer's bytes go watched the FIFO from its own start: the writer's close
    # between the probe's relay and it went unseen, and the next writer's clip, come meanwhile (`cat cut > p; cat clip
    # > p`), was let go as the refused writer's bytes. One watch a read end, handed on, sees the close
    monkeypatch.setattr(fifo_relay, "OPEN_STALL_S", 0.3)
    camera, stop = fifo_camera(tmp_path)
    clip, pipe, stalled = clip_bytes(tmp_path), tmp_path / "pipe", []

    class NextWriterBetween(fifo_relay.FifoRelay):
        """The relay letting the stalled writer's bytes go, started once it closed and the next one wrote its clip."""

        def __init__(self, *args, discard: bool = False, **kwargs):
            if discard:
                os.close(stalled.pop())
                write_into(pipe, clip)
            super().__init__(*args, discard=discard, **kwargs)

    monkeypatch.setattr(camera_module, "FifoRelay", NextWriterBetween)
    with started(camera, stop):
        stalled.append(os.open(pipe, os.O_WRONLY))
        fcntl.fcntl(stalled[0], fcntl.F_SETPIPE_SZ, 1 << 20)  # (room for the next writer's whole clip)
        os.write(stalled[0], clip[:200])  # a header's start, then nothing
        with opens.opening():  # another source's open waiting: the stall is cut
            wait_until(lambda: not stalled or camera.finished.is_set(), "the stall cut")
        wait_until(lambda: camera.frames_read == 3 or camera.finished.is_set(), "the next writer's clip")
        assert camera.frames_read == 3 and camera.error is None


def test_a_fifo_writers_close_is_told_though_the_next_writer_opened_before_the_relay_looked(tmp_path, monkeypatch):
    # Before: the writer's hang-up, which lasts only until a next writer opens, was not looked for in time (a shell's
    # `cat a > p; cat b > p`): b's bytes were relayed as more of a's, its clip lost. inotify queues a's close
    os.mkfifo(tmp_path / "pipe")
    source = os.open(tmp_path / "pipe", os.O_RDONLY | os.O_NONBLOCK)
    first = os.open(tmp_path / "pipe", os.O_WRONLY)
    fcntl.fcntl(first, fcntl.F_SETPIPE_SZ, 1 << 20)
    a, b = os.urandom(300_000), os.urandom(50_000)
    os.write(first, a)
    hold, holding, poll = threading.Event(), threading.Event(), select.poll

    class Held:
        """A poller that, once `hold` is set, waits for the test before it looks: the relay slow to look."""

        def __init__(self):
            self.poller = poll()
            self.register, self.unregister = self.poller.register, self.poller.unregister

        def poll(self, *timeout):
            if hold.is_set():
                holding.set()
                wait_until(lambda: not hold.is_set(), "the test's writers")
            return self.poller.poll(*timeout)

    monkeypatch.setattr(select, "poll", Held)
    end = fifo_relay.WriterEnd.of(source)
    relay = fifo_relay.FifoRelay(source, threading.Event(), "pipe", end)
    try:
        wait_until(lambda: fifo_relay.unread(source) < len(a), "the relay's first read")
        hold.set()
        wait_until(holding.is_set, "the relay held")
        os.close(first)  # a's close, then b's whole life, before the relay looks again
        second = os.open(tmp_path / "pipe", os.O_WRONLY)
        os.write(second, b)
        os.close(second)
        hold.clear()
        taken = b""
        while chunk := os.read(relay.read_end, 1 << 16):
            taken += chunk
        assert taken == a and relay.writer_closed and fifo_relay.unread(source) == len(b)
    finally:
        hold.clear()
        relay.close()
        if end is not None:
            end.close()
        os.close(source)


def test_a_fifo_writers_bytes_left_counted_as_a_next_writer_opens_are_not_taken_as_its_own(tmp_path, monkeypatch):
    # Before: the FIFO's bytes were counted after its events were read: a close, then a next writer's open and first
    # bytes, coming between the two, had those bytes (its header) counted as the closed writer's, relayed as more of
    # its clip or let go with its junk (the next clip lost)
    os.mkfifo(tmp_path / "pipe")
    source = os.open(tmp_path / "pipe", os.O_RDONLY | os.O_NONBLOCK)
    first = os.open(tmp_path / "pipe", os.O_WRONLY)
    os.write(first, b"a" * 100)
    end = fifo_relay.WriterEnd.of(source)
    if end is None:
        pytest.skip("no inotify here")
    count, writers = fifo_relay.unread, []

    def next_writer_as_counted(fd):
        if not writers:  # the first writer closes, a next one opens and writes, as its bytes are counted
            os.close(first)
            writers.append(os.open(tmp_path / "pipe", os.O_WRONLY))
            os.write(writers[0], b"b" * 50)
        return count(fd)

    monkeypatch.setattr(fifo_relay, "unread", next_writer_as_counted)
    try:
        assert [end.left(), end.left()] == [None, None] and writers  # (which bytes are whose: not told)
    finally:
        end.close()
        os.close(writers[0]) if writers else os.close(first)
        os.close(source)


def watched_fifo(tmp_path: Path) -> tuple[int, fifo_relay.WriterEnd, int]:
    """A FIFO made at `tmp_path/pipe`: its read end (non-blocking), the watch of its writers (the test skipped where
    inotify cannot watch it) and a first writer's end."""
    os.mkfifo(tmp_path / "pipe")
    source = os.open(tmp_path / "pipe", os.O_RDONLY | os.O_NONBLOCK)
    end = fifo_relay.WriterEnd.of(source)
    if end is None:
        os.close(source)
        pytest.skip("no inotify here")
    return source, end, os.open(tmp_path / "pipe", os.O_WRONLY)


def let_blocked_write_end(source: int, end: fifo_relay.WriterEnd, writer: int, writing: threading.Thread) -> None:
    """The FIFO `watched_fifo` made let go: its watch closed, room made for the rest of a write `writing` that waits
    for it (which then returns), its writer's and read ends closed."""
    end.close()
    while writing.is_alive():
        with contextlib.suppress(BlockingIOError):
            os.read(source, 1 << 20)
        writing.join(0.05)
    os.close(writer)
    os.close(source)


def test_a_fifo_writers_last_bytes_left_as_its_open_is_refused_are_not_taken_as_the_next_writers(tmp_path,
                                                                                                  monkeypatch):
    # Before: a writer whose close was told (its last bytes counted in the FIFO), its open refused before they were
    # taken (FFmpeg's probe of junk gave up), was taken to stay: the next writer's clip, there at once (`cat junk > p;
    # cat clip > p`), was let go as its bytes until its close, the clip lost without a word
    source, end, first = watched_fifo(tmp_path)
    fcntl.fcntl(first, fcntl.F_SETPIPE_SZ, 1 << 20)
    told, left = [], fifo_relay.FifoRelay._writer_left  # (by inotify, or its hang-up where it closed before the watch)
    monkeypatch.setattr(fifo_relay.FifoRelay, "_writer_left", lambda *args: told.append(left(*args)) or told[-1])
    relay = fifo_relay.FifoRelay(source, threading.Event(), "pipe", end)  # (its reader, FFmpeg, takes nothing)
    try:
        fcntl.fcntl(relay.read_end, fcntl.F_SETPIPE_SZ, 4096)
        os.write(first, os.urandom(300_000))  # (our pipe's room and the chunk the relay holds: the rest stays)
        os.close(first)
        wait_until(lambda: told and told[-1] is not None, "the writer's close told")
        second = os.open(tmp_path / "pipe", os.O_WRONLY)
        os.write(second, b"next clip")
        relay.close()  # (the open refused)
        closed, relay = relay.writer_closed, None
        assert closed and fifo_relay.unread(source) == len(b"next clip")
        os.close(second)
    finally:
        if relay is not None:
            relay.close()
        end.close()
        os.close(source)


def test_a_fifo_writers_close_is_told_though_a_next_writers_whole_life_came_as_its_hang_up_was_looked_at(
        tmp_path, monkeypatch):
    # Before: inotify asked, the writer still there, then its hang-up looked at: a's close and b's whole life between
    # the two (`cat a > p; cat b > p`, the relay's thread kept off the CPU a moment) had a's hang-up counted with b's
    # bytes as a's last ones, b's clip relayed as more of a's. The close, queued before the hang-up shows, is asked
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    source = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
    first = os.open(pipe, os.O_WRONLY)
    fcntl.fcntl(first, fcntl.F_SETPIPE_SZ, 1 << 20)
    a, b, looked, hung_up = os.urandom(300_000), os.urandom(50_000), [], fifo_relay.hung_up
    os.write(first, a)

    def b_came_and_went_first(fd):
        if fd == source and not looked:  # (the relay's first look, inotify asked before it)
            looked.append(fd)
            os.close(first)
            second = os.open(pipe, os.O_WRONLY)
            os.write(second, b)
            os.close(second)
        return hung_up(fd)

    monkeypatch.setattr(fifo_relay, "hung_up", b_came_and_went_first)
    end = fifo_relay.WriterEnd.of(source)
    relay = fifo_relay.FifoRelay(source, threading.Event(), "pipe", end)
    try:
        taken = b""
        while chunk := os.read(relay.read_end, 1 << 16):
            taken += chunk
        assert looked and len(taken) == len(a) and taken == a and relay.writer_closed
        assert fifo_relay.unread(source) == len(b)
    finally:
        relay.close()
        if end is not None:
            end.close()
        os.close(source)


@pytest.mark.parametrize("failures", [1, 2])
def test_a_read_failing_as_a_closed_fifo_writers_last_bytes_are_let_go_costs_the_next_clip_nothing(tmp_path,
                                                                                                    monkeypatch,
                                                                                                    caplog, failures):
    # Before: a read failing (EIO) as the bytes a junk writer left were let go, its close told, had that close taken as
    # not told: the next relay waited for a close already taken, and let the next writer's clip, come meanwhile, go as
    # the junk writer's bytes. Those bytes not let go are let go before the next writer is waited for; where that
    # read fails too, they were read as the next writer's first (a spurious refusal, a frame): they are let go as the
    # next writer's bytes come, said once
    import cv2

    camera, stop = fifo_camera(tmp_path)
    clip, pipe = clip_bytes(tmp_path), tmp_path / "pipe"
    opens, told, failing, played, writers_done = [], [], [], [], threading.Event()
    open_video, read, left, play = camera_module._open_video, os.read, fifo_relay.FifoRelay._writer_left, Camera._play

    def junk_refused_once_the_writers_are_done(path, fifo):
        opens.append(path)
        if len(opens) != 2:
            return open_video(path, fifo)
        writers_done.wait(60)
        failing.extend([True] * failures)  # (the relay's next reads of the FIFO, letting the junk's last bytes go)
        return cv2.VideoCapture()  # (FFmpeg refusing the junk before it took all of it)

    def read_failing_once(fd, count):
        if failing and os.readlink(f"/proc/self/fd/{fd}") == str(pipe):
            failing.pop()
            raise OSError(errno.EIO, "Input/output error")
        return read(fd, count)

    def played_counted(self, *args):
        try:
            return play(self, *args)
        finally:
            played.append(self.frames_read)

    monkeypatch.setattr(camera_module, "_open_video", junk_refused_once_the_writers_are_done)
    monkeypatch.setattr(os, "read", read_failing_once)
    monkeypatch.setattr(fifo_relay.FifoRelay, "_writer_left", lambda *args: told.append(left(*args)) or told[-1])
    monkeypatch.setattr(Camera, "_play", played_counted)
    with started(camera, stop):
        write_into(pipe, clip)
        wait_until(lambda: camera.outages or camera.finished.is_set(), "the first writer's end")
        first = len(told)  # (what the relays told of the junk writer from here on)
        junk = os.open(pipe, os.O_WRONLY)
        fcntl.fcntl(junk, fcntl.F_SETPIPE_SZ, 1 << 20)  # (room for it and the next clip: its last bytes stay there)
        os.write(junk, os.urandom(300_000))
        os.close(junk)
        wait_until(lambda: any(told[first:]) or camera.finished.is_set(), "the junk writer's close told")
        write_into(pipe, clip)  # the next writer's whole life, behind the junk's last bytes
        writers_done.set()
        wait_until(lambda: len(played) == 3 or camera.finished.is_set(), "the next writer's clip played")
        assert played == [3, 3, 6] and camera.error is None and not failing
    assert [line for line in said_by(camera, caplog) if "could not be read" in line] == [
        f"camera pipe: source '{pipe}': the bytes the FIFO's last writer left could not be read; let go as the next "
        "writer's come"] * (failures - 1)


def test_a_fifo_made_anew_while_owed_bytes_keep_failing_to_read_is_read(tmp_path, monkeypatch):
    # Before: while the last writer's bytes its relay could not let go failed to read again and again, the wait for
    # the next writer went on on the old FIFO: one made anew at its path was never looked at, its writers meeting no
    # reader. Its path is looked at as it is where no bytes are owed
    camera, stop = fifo_camera(tmp_path)
    pipe = tmp_path / "pipe"
    held = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
    old_writer = os.open(pipe, os.O_WRONLY)
    os.write(old_writer, b"junk" * 250)  # (the bytes owed, first in the old FIFO, never read)
    os.close(old_writer)
    tries = []
    monkeypatch.setattr(fifo_relay, "let_go", lambda fd, count: tries.append(fd) or count)  # (every read failing)
    camera._owed, waited = 1000, []
    waiting = threading.Thread(target=lambda: waited.append(camera._await_writer(str(pipe), held)))
    waiting.start()
    try:
        wait_until(lambda: len(tries) >= 2, "a read of the owed bytes failing again", 20)
        pipe.unlink()
        os.mkfifo(pipe)
        writer = []

        def opened() -> bool:
            with contextlib.suppress(OSError):  # (ENXIO: no reader of the new FIFO yet)
                writer.append(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
            return bool(writer)

        wait_until(opened, "a reader of the new FIFO", 20)
        os.write(writer[0], b"clip")
        os.close(writer[0])
        waiting.join(20)
        assert waited and os.path.samestat(os.fstat(waited[0]), os.stat(pipe)) and camera._owed == 0
        assert os.read(waited[0], 10) == b"clip"
    finally:
        stop.set()
        waiting.join(10)
        for fd in waited:
            os.close(fd)
        os.close(held)


def test_a_stop_as_a_later_fifo_writers_junk_is_refused_is_no_source_error(tmp_path, monkeypatch):
    # Before: the stop coming as the junk's open failed (a writer killed, then SIGTERM) raised the junk's refusal as
    # the source's error: "cannot open as a video" in the summary's source_errors, exit 2, for a FIFO that showed its
    # clip; a stop ends the wait for a writer, as it ends any open
    camera, stop = fifo_camera(tmp_path)
    play = Camera._play

    def stopped_as_refused(self, *args):
        try:
            return play(self, *args)
        except EdgeRapError:
            stop.set()  # (the stop, as the refusal came)
            raise

    monkeypatch.setattr(Camera, "_play", stopped_as_refused)
    with started(camera, stop):
        write_into(tmp_path / "pipe", clip_bytes(tmp_path))
        wait_until(lambda: camera.outages or camera.finished.is_set(), "the first writer's end")
        write_into(tmp_path / "pipe", b"not a video\n" * 1000)
        wait_until(camera.finished.is_set, "the stop")
    assert camera.error is None and camera.frames_read == 3


#: A raw video of 32x32 frames: each frame (1542 bytes) under PIPE_BUF, so written whole or not at all.
Y4M_SMALL = b"YUV4MPEG2 W32 H32 F30:1 Ip A1:1 C420jpeg\n"
Y4M_SMALL_FRAME = b"FRAME\n" + bytes(32 * 32 * 3 // 2)


def test_a_fifo_writer_that_opens_after_the_last_one_left_is_its_own_clip(tmp_path, monkeypatch):
    # Before: a writer that opened while the last one's bytes were still in the FIFO (the camera behind) had its
    # bytes read as more of the last one's video: a second header in a raw video's stream, its clip lost
    camera, stop = fifo_camera(tmp_path)
    opened, reading, follow = threading.Event(), threading.Event(), Camera._follow

    def held_back(self, *args, **kwargs):  # (the first clip opened, its frames not read until let)
        opened.set()
        reading.wait(10)
        return follow(self, *args, **kwargs)

    monkeypatch.setattr(Camera, "_follow", held_back)
    with started(camera, stop):
        frames, refused = 0, 0
        with open(tmp_path / "pipe", "wb", buffering=0) as first:
            first.write(Y4M_SMALL)
            os.set_blocking(first.fileno(), False)
            while refused < 20:  # (its frames until the open returned and every pipe is full; a frame under
                if first.write(Y4M_SMALL_FRAME):  # PIPE_BUF is written whole or not at all: None)
                    frames += 1
                else:
                    refused = refused + 1 if opened.is_set() else 0
                    time.sleep(0.01)
        time.sleep(0.3)  # (its leaving seen) the next writer opens while its frames are still in the FIFO
        second = threading.Thread(target=write_into, args=(tmp_path / "pipe", Y4M_SMALL + Y4M_SMALL_FRAME * 3))
        second.start()
        time.sleep(0.3)
        reading.set()
        wait_until(lambda: camera.outages == 2 or camera.finished.is_set(), "the second writer's end")
        second.join(10)
        assert camera.frames_read == frames + 3 and camera.error is None


def test_a_fifo_writers_hang_up_is_looked_at_once_while_ffmpeg_takes_nothing(tmp_path, monkeypatch):
    # Before: a hang-up first seen as the relay looked for the writer's next bytes stayed in the poll that waits for
    # FFmpeg to take them: the hang-up, which stays, answered that poll at once, a core spun for as long as FFmpeg
    # took nothing (the relay's pipe full, a clip's last seconds read in real time)
    os.mkfifo(tmp_path / "pipe")
    source = os.open(tmp_path / "pipe", os.O_RDONLY | os.O_NONBLOCK)
    writer = os.open(tmp_path / "pipe", os.O_WRONLY)
    fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, 1 << 18)
    clip = os.urandom(200_000)  # (over two of the relay's reads: its pipe full for the second)
    os.write(writer, clip)
    os.close(writer)  # (gone before the relay's first look)
    hang_ups, poll = [], select.poll

    class Watched:
        """A poller whose answers with the FIFO's hang-up, where it waits for FFmpeg too, are kept."""

        def __init__(self):
            self.poller, self.fds = poll(), set()

        def register(self, fd, events=select.POLLIN | select.POLLPRI | select.POLLOUT):
            self.fds.add(fd)
            self.poller.register(fd, events)

        def unregister(self, fd):
            self.fds.discard(fd)
            self.poller.unregister(fd)

        def poll(self, *timeout):
            answer = self.poller.poll(*timeout)
            hang_ups.extend(fd for fd, e in answer if fd == source and e & select.POLLHUP and len(self.fds) > 1)
            return answer

    monkeypatch.setattr(select, "poll", Watched)
    end = fifo_relay.WriterEnd.of(source)
    relay = fifo_relay.FifoRelay(source, threading.Event(), "pipe", end)
    try:
        wait_until(lambda: fifo_relay.unread(source) < len(clip) - fifo_relay.CHUNK, "the relay's second read")
        time.sleep(0.3)  # (FFmpeg taking nothing meanwhile)
        taken = b""
        while chunk := os.read(relay.read_end, 1 << 16):
            taken += chunk
    finally:
        relay.close()
        if end is not None:
            end.close()
        os.close(source)
    assert taken == clip and relay.writer_closed and len(hang_ups) == 1


class StartingCamera:
    """A camera (`cam=5`) whose every open takes until `started` is set (a USB camera starting), then gives no
    frame; `opens` records each open's backend and whether it was counted as an open under way."""

    opens: list = []
    started = threading.Event()
    opened_by: tuple = ()

    def __init__(self, target, *api):
        StartingCamera.opens.append((api, opens._under_way))
        self.started.wait(10)

    def isOpened(self):
        return not self.opened_by or self.api in self.opened_by

    def grab(self):
        return False

    def release(self):
        pass


def fake_cameras(monkeypatch, opened_by: tuple = ()) -> None:
    """Device numbers opened as StartingCamera (opened by the backends `opened_by`, any where empty); files and
    pipes by OpenCV."""
    import cv2

    real = cv2.VideoCapture

    def capture(target, *api):
        if not isinstance(target, int):
            return real(target, *api)
        camera = StartingCamera(target, *api)
        camera.api = api[0] if api else cv2.CAP_ANY
        return camera

    monkeypatch.setattr(cv2, "VideoCapture", capture)
    monkeypatch.setattr(StartingCamera, "opens", [])
    monkeypatch.setattr(StartingCamera, "started", threading.Event())
    monkeypatch.setattr(StartingCamera, "opened_by", opened_by)


def test_a_camera_opened_by_v4l2_beside_a_stalled_fifo_writer_has_it_waited_for(tmp_path, monkeypatch, caplog):
    # Before: a camera's open counted as one under way, as a URL's: a FIFO writer slow to give its first frame was cut
    # (its video lost) while a USB camera beside it started, though V4L2 takes no lock of FFmpeg's: neither waited
    import cv2

    monkeypatch.setattr(fifo_relay, "OPEN_STALL_S", 0.3)
    fake_cameras(monkeypatch)
    camera, stop = fifo_camera(tmp_path)
    usb = Camera(parse_source("usb=5"), stop, backoff=(1.0, 1.0))
    with started(camera, stop):
        with stalled_writer(tmp_path / "pipe", Y4M_HEADER) as writer:
            usb.start()
            wait_until(lambda: StartingCamera.opens, "the camera's open")
            time.sleep(1.0)  # (over OPEN_STALL_S without a byte, the camera opening)
            StartingCamera.started.set()
            writer.write(Y4M_FRAME * 3)
        wait_until(lambda: camera.outages or camera.finished.is_set(), "the writer's end")
        assert camera.frames_read == 3 and "before its video opened" not in caplog.text
    assert StartingCamera.opens[0][0] == (cv2.CAP_V4L2,)  # (the FIFO's own open the one counted then)


def test_a_camera_v4l2_cannot_open_is_opened_as_opencv_chooses_counted(monkeypatch):
    # Another backend's camera (or FFmpeg's try of an unplugged one, which waits behind a stalled FIFO probe)
    import cv2

    fake_cameras(monkeypatch, opened_by=(cv2.CAP_ANY,))
    StartingCamera.started.set()
    stop = threading.Event()
    camera = Camera(parse_source("usb=5"), stop, backoff=(1.0, 1.0)).start()
    wait_until(lambda: len(StartingCamera.opens) >= 2, "the camera's opens")
    stop.set()
    wait_until(camera.finished.is_set, "the camera's end after stop")
    assert StartingCamera.opens[:2] == [((cv2.CAP_V4L2,), 0), ((), 1)]
    assert camera.error is None  # (it opened: no frame yet, retried)


def test_a_fifo_writer_that_pauses_after_the_open_is_waited_for(tmp_path, monkeypatch):
    # The stall that ends an open still pending ends nothing once the video opened: a pause is the stream's own
    monkeypatch.setattr(fifo_relay, "OPEN_STALL_S", 0.3)
    camera, stop = fifo_camera(tmp_path)
    with started(camera, stop):
        with open(tmp_path / "pipe", "wb", buffering=0) as writer:
            writer.write(Y4M_HEADER + Y4M_FRAME * 2)
            wait_until(lambda: camera.frames_read or camera.finished.is_set(), "the video opened")
            time.sleep(1.0)  # (over OPEN_STALL_S without a byte)
            writer.write(Y4M_FRAME * 2)
        wait_until(lambda: camera.outages or camera.finished.is_set(), "the writer's end")
        assert camera.frames_read == 4 and camera.error is None


@pytest.mark.parametrize("whole_header", [False, True])
def test_a_lone_fifo_writer_slow_to_send_its_first_frame_is_waited_for(tmp_path, monkeypatch, caplog, whole_header):
    # Before: its pipe was ended OPEN_STALL_S after its first bytes though no other source waited to open: a camera
    # pipeline that wrote its header and took seconds to give its first frame lost its whole video (opened on the
    # header alone, no frame, nothing said; its frames then read as the next writer's junk)
    monkeypatch.setattr(fifo_relay, "OPEN_STALL_S", 0.3)
    camera, stop = fifo_camera(tmp_path)
    video = Y4M_HEADER + Y4M_FRAME * 3 if whole_header else clip_bytes(tmp_path)
    head = len(Y4M_HEADER) if whole_header else 200
    with started(camera, stop):
        with stalled_writer(tmp_path / "pipe", video[:head]) as writer:
            time.sleep(1.0)  # (over OPEN_STALL_S without a byte, the open pending)
            writer.write(video[head:])
        wait_until(lambda: camera.outages or camera.finished.is_set(), "the writer's end")
        assert camera.frames_read == 3 and camera.error is None and "WARNING" not in caplog.text


def test_a_fifo_writer_slow_to_send_its_first_frame_while_its_open_waits_behind_another_is_not_cut(tmp_path,
                                                                                                   monkeypatch, caplog):
    # Before: its stall was cut while another open was under way, though that open held OpenCV's lock and this one
    # waited behind it (an unreachable URL's, 30 s): the cut hastened no one's open, and lost the writer's whole video
    # (its header taken, its frames read as the next writer's junk)
    monkeypatch.setattr(fifo_relay, "OPEN_STALL_S", 0.3)
    camera, stop = fifo_camera(tmp_path)
    lock_free, open_video, queued = threading.Event(), camera_module._open_video, []

    def behind_another(path, fifo):  # (OpenCV's lock held by the other open: this one waits, counted as under way)
        with opens.opening():
            queued.append(path)
            lock_free.wait(10)
        return open_video(path, fifo)

    monkeypatch.setattr(camera_module, "_open_video", behind_another)
    with started(camera, stop):
        with open(tmp_path / "pipe", "wb", buffering=0) as writer:
            with opens.opening():  # another source's open, holding the lock
                writer.write(Y4M_HEADER)
                wait_until(lambda: queued or camera.finished.is_set(), "the open queued")
                time.sleep(1.0)  # (over OPEN_STALL_S without a byte, another open under way)
                lock_free.set()
            writer.write(Y4M_FRAME * 3)  # (its first frames come once its header was read)
        wait_until(lambda: camera.outages or camera.finished.is_set(), "the writer's end")
        assert camera.frames_read == 3 and camera.error is None and "WARNING" not in caplog.text


@pytest.mark.parametrize("next_writer", [True, False])
def test_a_fifo_whose_first_writer_was_cut_and_that_the_stop_ends_is_said_never_opened(tmp_path, monkeypatch, caplog,
                                                                                      next_writer):
    # Before: its first writer cut for a stall, the stop ending the next one's open was said as that writer's junk:
    # "never opened; waiting for the FIFO's next writer", a warning; and one stopped while waiting for the next writer
    # was not said at all: its error kept (the summary's source_errors, exit 2), but the run's end says only those
    # still running then, and this one had ended at the stop
    camera, stop = fifo_camera(tmp_path)
    head, pipe = clip_bytes(tmp_path)[:200], tmp_path / "pipe"
    monkeypatch.setattr(fifo_relay, "OPEN_STALL_S", 0.3)
    with started(camera, stop):
        with opens.opening(), stalled_writer(pipe, head):  # another source's open waiting: the stall is cut
            wait_until(lambda: "before its video opened" in caplog.text or camera.finished.is_set(), "the cut")
        with stalled_writer(pipe, head) if next_writer else contextlib.nullcontext():  # (alone: waited for)
            time.sleep(0.3)
            stop.set()
            camera.join(10)
            assert camera.finished.is_set()
    path = str(tmp_path / "pipe")
    assert camera.error == f"source {path!r}: never opened"
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == camera_module.__name__]
    assert said[-1] == ("ERROR", f"camera pipe: source {path!r}: never opened")
    assert sum("waiting for the FIFO's next writer" in m for _, m in said) == 1


@pytest.mark.parametrize("fifo", [True, False])
def test_a_video_open_that_returns_after_the_stop_is_said_never_opened(tmp_path, monkeypatch, fifo):
    # Before: an open kept waiting (behind another source's: OpenCV opens one at a time) until after the stop opened
    # (a FIFO's on the bytes relayed till then): 0 frames and no error, as if the video had opened and shown nothing,
    # where one still opening at the run's end was said never opened. A file's was, until it too was said so
    stop = threading.Event()
    camera, stop = fifo_camera(tmp_path) if fifo else (
        Camera(parse_source(f"clip={write_clip(tmp_path / 'a.avi', 3, codec='MJPG')}"), stop, realtime=False), stop)
    open_video = camera_module._open_video

    def stopped_meanwhile(path, fifo):
        capture = open_video(path, fifo)
        stop.set()
        return capture

    monkeypatch.setattr(camera_module, "_open_video", stopped_meanwhile)
    with started(camera, stop):
        if fifo:
            with contextlib.suppress(BrokenPipeError):  # (the rest of the clip refused once the read end let go)
                write_into(tmp_path / "pipe", clip_bytes(tmp_path))
        wait_until(camera.finished.is_set, "the stop")
        path = tmp_path / ("pipe" if fifo else "a.avi")
        assert camera.frames_read == 0 and camera.error == f"source {str(path)!r}: never opened"


def test_a_fifo_removed_before_its_first_writer_is_said_removed(tmp_path):
    # Before: said as "cannot open as a video", as if its bytes were no video
    camera, stop = fifo_camera(tmp_path)
    with started(camera, stop):
        time.sleep(0.3)  # (the wait begun)
        os.remove(tmp_path / "pipe")
        wait_until(camera.finished.is_set, "the source's end")
        assert camera.error == f"source {str(tmp_path / 'pipe')!r}: removed before it opened"


def drain(camera) -> list:
    """Every frame a camera hands on, until it has finished."""
    got = []
    while not (camera.finished.is_set() and camera.slot._frame is None):
        f = camera.slot.take()
        if f is not None:
            got.append(f)
        camera.slot.wait(0.1)
    return got


def write_damaged_clip(path, damaged: int, frames: int = 20) -> Path:
    """A motion-JPEG AVI whose frame `damaged` is zeros (a bad sector, a copy that failed): OpenCV cannot grab it,
    and grabs the next."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    noise = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(noise.integers(0, 256, (48, 64, 3), dtype=np.uint8))  # noise: frames of some kilobytes
    writer.release()
    data = bytearray(path.read_bytes())
    movi = data.index(b"movi")
    chunks = [k for k in range(movi, data.index(b"idx1")) if data[k:k + 4] == b"00dc"]
    start = chunks[damaged] + 8  # past the chunk's tag and size
    data[start:start + 400] = bytes(400)  # its JPEG header and tables too
    path.write_bytes(bytes(data))
    return path


def test_a_damaged_frame_is_skipped_and_a_video_cut_short_is_said(tmp_path, caplog):
    # A video stopped, silently, at its first frame OpenCV could not grab: the rest was never watched.
    clip = write_damaged_clip(tmp_path / "damaged.avi", damaged=10)
    camera = Camera(parse_source(f"cam={clip}"), threading.Event(), realtime=False).start()
    got = drain(camera)
    assert [f.index for f in got] == [*range(10), *range(11, 20)] and camera.error is None
    assert "cam: source " + repr(str(clip)) + ": 1 damaged frame skipped" in caplog.text
    cut = tmp_path / "cut.avi"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])  # a copy that stopped halfway
    camera = Camera(parse_source(f"cut={cut}"), threading.Event(), realtime=False).start()
    assert len(drain(camera)) < 15 and camera.error is None
    assert f"cut: source {str(cut)!r} ended after {camera.frames_read} of the 20 frames it announces" in caplog.text


def test_a_damaged_or_cut_video_under_a_name_not_utf8_is_said_with_its_byte_as_json_writes_it(tmp_path, caplog):
    # the two warnings quoted the path as repr does, '\\udcff', where the source's errors (quoted) write '\\xff'
    clip = tmp_path / os.fsdecode(b"damaged\xff.avi")  # (written as another name: OpenCV's writer crashes on it)
    os.rename(write_damaged_clip(tmp_path / "damaged.avi", damaged=10), clip)
    drain(Camera(parse_source(f"cam={clip}"), threading.Event(), realtime=False).start())
    assert f"cam: source '{tmp_path}/damaged\\xff.avi': 1 damaged frame skipped" in caplog.text
    cut = tmp_path / os.fsdecode(b"cut\xfe.avi")
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    drain(Camera(parse_source(f"cut={cut}"), threading.Event(), realtime=False).start())
    assert f"cut: source '{tmp_path}/cut\\xfe.avi' ended after" in caplog.text and "\\udc" not in caplog.text


def write_variable_rate_clip(path, stamps_ms: list[int]) -> str:
    """An MP4 whose frames come at the given times: a phone slows its frame rate in dim light."""
    av = pytest.importorskip("av")
    from fractions import Fraction

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for k, ms in enumerate(stamps_ms):
            frame = av.VideoFrame.from_ndarray(scene(k), format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return str(path)


def test_a_variable_frame_rate_video_keeps_its_own_times(tmp_path):
    # A frame's time was its index over the header's frame rate: in a phone's video that slows down in dim light
    # the arrivals were logged seconds away from where they are in the video, and it was played at the wrong pace.
    stamps = [*range(0, 1000, 100), *range(1000, 6000, 500)]  # 10 frames a second, then 2
    clip = write_variable_rate_clip(tmp_path / "phone.mp4", stamps)
    got = drain(Camera(parse_source(f"cam={clip}"), threading.Event(), realtime=False).start())
    assert [round(f.time_s, 3) for f in got] == [ms / 1000 for ms in stamps]


def test_a_video_without_forward_timestamps_is_timed_by_its_frame_rate():
    clock = VideoClock(10.0)  # a raw H.264 stream (every timestamp 0), then two recordings joined (back to 0)
    assert [clock.time_s(k, s) for k, s in enumerate([0.0, 0.0, 0.0])] == [0.0, 0.1, 0.2]
    clock = VideoClock(10.0)
    assert [round(clock.time_s(k, s), 3) for k, s in enumerate([0.0, 0.5, 0.0, 0.1, 2.0])] == [0.0, 0.5, 0.6, 0.7, 2.0]


def test_a_video_that_cannot_be_opened_says_why(tmp_path):
    # Both were "cannot open as a video": a phone's recording copied halfway, and a voice memo given as a video.
    av = pytest.importorskip("av")
    clip = Path(write_clip(tmp_path / "whole.mp4", 15))
    cut = tmp_path / "IMG_0001.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])  # its index, written last, is missing
    with av.open(str(tmp_path / "memo.m4a"), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    errors = {}
    for path in (cut, tmp_path / "memo.m4a"):
        camera = Camera(parse_source(f"cam={path}"), threading.Event()).start()
        wait_until(camera.finished.is_set, "the camera's end")
        errors[path.name] = camera.error
    assert "cannot open as a video: an MP4/MOV file without its index (the moov box)" in errors["IMG_0001.mp4"]
    assert errors["memo.m4a"].endswith("cannot open as a video: a file with no video track (sound only)")


def test_a_folder_source_skips_unreadable_images(tmp_path, caplog):
    import cv2

    cv2.imwrite(str(tmp_path / "a.png"), scene())
    (tmp_path / "b.png").write_bytes(b"not an image")
    cv2.imwrite(str(tmp_path / "c.png"), scene(1))
    stop = threading.Event()
    got = drain(Camera(parse_source(f"cam={tmp_path}"), stop, realtime=False).start())
    assert [f.index for f in got] == [0, 2] and got[0].pixels.shape == (240, 320, 3)
    assert any("b.png" in r.getMessage() for r in caplog.records)


def test_a_photo_source_is_read_as_remember_reads_it(tmp_path, monkeypatch):
    # OpenCV read a photo given as a source as stored: a phone's photo came sideways, a cut-out's background
    # black, and a photo of any size was decoded whole.
    from PIL import Image

    stored = np.zeros((40, 60, 4), np.uint8)
    stored[:, 30:] = (20, 40, 160, 255)  # the thing on the right as stored, the cut-away left transparent
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: upright, the thing is at the bottom
    Image.fromarray(stored, "RGBA").save(tmp_path / "IMG_0001.png", exif=exif)
    got = drain(Camera(parse_source(f"cam={tmp_path / 'IMG_0001.png'}"), threading.Event(), realtime=False).start())
    assert len(got) == 1 and got[0].pixels.shape == (60, 40, 3)
    assert (got[0].pixels[0, 0] == 255).all() and (got[0].pixels[59, 0] == (20, 40, 160)).all()
    monkeypatch.setenv("EDGE_RAP_MAX_MEGAPIXELS", "0.001")
    camera = Camera(parse_source(f"cam={tmp_path / 'IMG_0001.png'}"), threading.Event()).start()
    wait_until(camera.finished.is_set, "the camera's end")
    assert "image is 60x40 (0 megapixels); the limit is 0.001" in camera.error
    os.mkfifo(tmp_path / "frames.jpg")  # a pipe, whatever its name, is a stream of frames OpenCV reads
    assert parse_source(str(tmp_path / "frames.jpg")).kind == "file"


def test_a_folder_source_leaves_hidden_files_alone(tmp_path, caplog):
    # A card of photos copied from a Mac holds a `._IMG_0001.JPG` sidecar for each: every one was warned of as
    # "not an image" and took a photo's turn.
    import cv2

    cv2.imwrite(str(tmp_path / "IMG_0001.JPG"), scene())
    (tmp_path / "._IMG_0001.JPG").write_bytes(b"\x00\x05\x16\x07 Mac OS X resource fork")
    got = drain(Camera(parse_source(f"cam={tmp_path}"), threading.Event(), realtime=False).start())
    assert [f.index for f in got] == [0] and "._IMG_0001.JPG" not in caplog.text


def test_a_folder_source_reads_as_remember_does_and_refuses_a_huge_photo(tmp_path, caplog, monkeypatch):
    # The pixel limit holds here too (a 400-megapixel file must not take the daemon's memory), and the frame
    # is RGB as every other source's.
    import cv2

    red = np.zeros((240, 320, 3), np.uint8)
    red[..., 2] = 255  # OpenCV writes BGR
    cv2.imwrite(str(tmp_path / "a.png"), red)
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((600, 800, 3), np.uint8))  # 0.48 megapixels
    monkeypatch.setenv("EDGE_RAP_MAX_MEGAPIXELS", "0.1")
    camera = Camera(parse_source(f"cam={tmp_path}"), threading.Event(), realtime=False).start()
    got = drain(camera)
    assert [f.index for f in got] == [0] and got[0].pixels[0, 0].tolist() == [255, 0, 0]
    assert any("b.png" in r.getMessage() and "megapixels" in r.getMessage() for r in caplog.records)
    assert camera.error is None


def test_a_folder_source_takes_every_format_remember_takes(tmp_path):
    # README: a folder's photos are read as `remember` reads them; a folder of a phone's HEIC photos included.
    from PIL import Image

    from edge_rap.perceive.images import _register_heif

    assert _register_heif()
    Image.fromarray(scene()).save(tmp_path / "a.heic", format="HEIF", quality=90)
    Image.fromarray(scene(1)).save(tmp_path / "b.tif")
    Image.fromarray(scene(2)).save(tmp_path / "c.jfif", format="JPEG")  # Windows' name for a saved JPEG
    Image.fromarray(scene(3)).save(tmp_path / "d.jpg_large", format="JPEG")  # a browser's: taken by its content
    (tmp_path / "e.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(100))  # no picture
    camera = Camera(parse_source(f"cam={tmp_path}"), threading.Event(), realtime=False).start()
    assert [f.index for f in drain(camera)] == [0, 1, 2, 3] and camera.error is None
    assert parse_source(f"cam={tmp_path / 'c.jfif'}").kind == "photo"  # upright, not OpenCV's reading as stored


def test_a_folder_that_disappears_ends_its_camera_with_one_reason(tmp_path, caplog):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(40):
        cv2.imwrite(str(folder / f"{k:04d}.png"), scene(k))
    # 2 photos a second: the rename below must come before the camera reaches the last photo, which at this rate
    # leaves it 19 s however slowly this thread runs (the camera stops at the next photo it tries after it).
    camera = Camera(parse_source(f"cam={folder}"), threading.Event(), folder_fps=2.0).start()
    while camera.slot.take() is None:
        camera.slot.wait(0.05)
    folder.rename(tmp_path / "elsewhere")  # at once, as an unmounted drive (rmtree would go file by file)
    got = drain(camera)
    assert len(got) < 39 and camera.error == f"source {str(folder)!r}: the folder is gone"
    assert not any("skipped" in r.getMessage() for r in caplog.records)  # not a line per photo


def test_a_file_or_folder_source_that_gives_no_frame_ends_with_its_reason(tmp_path, monkeypatch):
    (tmp_path / "text.mp4").write_text("not a video")
    (tmp_path / "text.jpg").write_text("not a photo")  # read as a photo, as `remember` reads it
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"not an image either")
    (tmp_path / "locked").mkdir()
    real_iterdir = Path.iterdir

    def iterdir(path):  # a folder it may not list (root is never refused, so the refusal is staged)
        if path.name == "locked":
            raise PermissionError(13, "Permission denied")
        return real_iterdir(path)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    for spec, reasons in ((parse_source(f"cam={tmp_path / 'text.mp4'}"), ("cannot open as a video",)),
                          (parse_source(f"cam={tmp_path / 'text.jpg'}"), ("text.jpg': not an image",)),
                          (parse_source(f"cam={tmp_path / 'photos'}"), ("none of its 1 images could be read",)),
                          (parse_source(f"cam={tmp_path / 'locked'}"),
                           ("cannot list the folder (Permission denied)",))):
        camera = Camera(spec, threading.Event(), realtime=False).start()
        assert drain(camera) == []
        assert any(reason in camera.error for reason in reasons), camera.error


def test_run_exits_2_when_a_source_could_not_be_read(tmp_path, settings, run, caplog):
    # A script or a service manager sees the failure; the reason is one logged line and in the summary.
    settings.memory.mkdir()  # a new, empty memory (a --memory that does not exist is refused)
    (tmp_path / "text.jpg").write_text("not a photo")
    rc, out, _ = run("run", "--source", str(tmp_path / "text.jpg"), "--json", "--mute")
    summary = json.loads(out.splitlines()[-1])
    said = summary["source_errors"]["cam0"]
    assert rc == 2 and summary["frames_read"] == 0 and said.startswith(f"source {str(tmp_path / 'text.jpg')!r}: ")
    assert any(said in r.getMessage() for r in caplog.records)


def test_run_on_a_memory_with_no_concept_says_it_has_nothing_to_announce(settings, run, caplog):
    # It watched for hours, silently: a new memory, or the default home before its first `remember`.
    settings.memory.mkdir()
    folder = settings.memory.parent / "frames"
    folder.mkdir()
    from PIL import Image

    Image.new("RGB", (64, 48)).save(folder / "0.png")
    rc, _, _ = run("run", "--source", str(folder), "--mute")
    assert rc == 0 and f"{settings.memory} holds no concept yet: nothing is announced until one is remembered" \
        in caplog.text


def test_run_on_a_new_memory_whose_event_log_cannot_be_made_says_that_alone(settings, run, caplog, monkeypatch):
    # a new memory in a read-only folder: "holds no concept yet: nothing is announced until one is remembered", then
    # the event log's refusal, the warning a fix no one could make there
    import errno

    from edge_rap.daemon import events

    def read_only(root: Path) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(root))

    settings.memory.mkdir()
    folder = settings.memory.parent / "frames"
    folder.mkdir()
    from PIL import Image

    Image.new("RGB", (64, 48)).save(folder / "0.png")
    monkeypatch.setattr(events, "private_folder", read_only)
    rc, _, err = run("run", "--source", str(folder), "--mute")
    assert rc == 2 and "cannot open the event log" in err
    assert "holds no concept yet" not in caplog.text + err


def test_a_cameras_frames_are_the_same_since_the_first_with_their_very_pixels():
    from edge_rap.perceive.frozen import SameFrames

    same, still = SameFrames(), np.full((48, 64, 3), 40, np.uint8)
    noisy = still.copy()
    noisy[47, 63, 2] = 41  # one grey level of one pixel: a sensor's noise
    assert [same.since(p, t) for t, p in enumerate([still, still.copy(), still, noisy, still, still])] == [
        0, 0, 0, 3, 4, 4]
    assert same.since(still[:24], 6) == 6  # another size is another frame


# --- settings file -----------------------------------------------------------------------------------------

def test_the_settings_file_is_checked_key_by_key(tmp_path):
    good = tmp_path / "run.toml"
    good.write_text('[daemon]\ncooldown = 10\nmute = true\n[[camera]]\nname = "door"\nsource = 0\n')
    assert load_run_file(good) == {"cooldown": 10.0, "mute": True, "sources": ("door=0",)}
    config = run_config({"cooldown": 3.0, "sources": None}, good)
    assert config.cooldown == 3.0 and config.sources == ("door=0",) and config.mute
    for text, named in [('[daemon]\ncoolDown = 1\n', "coolDown"), ('[daemon]\ncooldown = "5"\n', "cooldown"),
                        ('[daemon]\nmax_frames = true\n', "max_frames"), ('[deamon]\n', "deamon"),
                        ('[[camera]]\nsource = 0\nfps = 3\n', "fps"),
                        ('[daemon]\nspeak_to = ""\n', "speak_to is empty"),
                        ('[[camera]]\nname = "a=b"\nsource = 0\n', "without '='"),
                        ('[[camera]]\nname = ""\nsource = 0\n', "non-empty")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(EdgeRapError, match=named):
            run_config({}, bad)
    with pytest.raises(EdgeRapError, match="at least one --source"):
        run_config({}, None)
    speaking = tmp_path / "speaking.toml"
    speaking.write_text(f'[daemon]\nspeak_to = "{tmp_path / "said"}"\n[[camera]]\nsource = 0\n')
    muted = run_config({"mute": True}, speaking)  # the command line's --mute over the file's speak_to
    assert muted.mute and muted.speak_to is None
    good.write_text('[daemon]\nmute = true\n[[camera]]\nsource = 0\n')
    spoken = run_config({"speak_to": "out"}, good)  # and --speak-to over the file's mute
    assert spoken.speak_to == "out" and not spoken.mute
    bad.write_text('[daemon]\nduration = nan\n[[camera]]\nsource = 0\n')  # TOML has nan and inf
    with pytest.raises(EdgeRapError, match=r"duration must be a number, not nan \(leave it out"):
        run_config({}, bad)
    for given, said in (({"cooldown": float("inf")}, "cooldown must be a finite number, not inf$"),
                        ({"duration": float("inf")}, r"^duration must be a finite number, not inf \(leave it out"),
                        ({"recheck": float("nan")}, "recheck must be a number, not nan$"),
                        ({"wake": "hey robot"}, "--wake goes with --voice"),
                        ({"wake": "  ", "voice": True}, "--wake needs a phrase")):
        with pytest.raises(EdgeRapError, match=said):
            run_config({"sources": ("0",), **given}, None)


def test_how_long_a_frozen_cameras_frame_may_last_is_a_checked_setting(tmp_path):
    from edge_rap.daemon.service import options_of

    settings = tmp_path / "run.toml"
    settings.write_text("[daemon]\nfrozen-after = 120\n[[camera]]\nsource = 0\n")
    assert options_of(run_config({}, settings)).frozen_s == 120.0
    assert options_of(run_config({"sources": ("0",)}, None)).frozen_s == 30.0
    settings.write_text("[daemon]\nfrozen-after = -1\n[[camera]]\nsource = 0\n")
    with pytest.raises(EdgeRapError, match=f"^{re.escape(str(settings))}: frozen-after must be a number of 0 or more, "
                                           "not -1.0$"):  # the file named, where the value is
        run_config({}, settings)


def test_a_refusal_names_the_settings_file_where_its_values_earn_it(tmp_path):
    # `run --config F` said "cooldown must be ..." of the file's value without naming the file
    settings = tmp_path / "run.toml"
    settings.write_text('[daemon]\ncooldown = -1\nwake = "hey robot"\n[[camera]]\nsource = 0\n')
    named = f"^{re.escape(str(settings))}: "
    with pytest.raises(EdgeRapError, match=named + "cooldown must be a number of 0 or more, not -1.0$"):
        run_config({"voice": True}, settings)
    with pytest.raises(EdgeRapError, match=named + "--wake goes with --voice"):  # the file's wake, without voice
        run_config({"cooldown": 5.0}, settings)
    assert run_config({"cooldown": 5.0, "voice": True}, settings).wake == "hey robot"
    settings.write_text("[daemon]\ncooldown = 3\n[[camera]]\nsource = 0\n")
    for given, said in (({"wake": "hey robot"}, "--wake goes with --voice"), ({"max_frames": 0}, "max-frames must be")):
        with pytest.raises(EdgeRapError, match=f"^{said}"):  # the command line's own: no file named
            run_config(given, settings)
    settings.write_text("[daemon]\ncooldown = 3\n")
    with pytest.raises(EdgeRapError, match=named + "run needs at least one --source"):
        run_config({}, settings)


def test_doctor_names_the_run_option_that_a_settings_file_leans_on(run, tmp_path):
    # `run --config F --voice` took a file with a wake phrase; `doctor --config F` refused it, saying only "--wake
    # goes with --voice", of which it has no option: it refuses it still, as the service (`run --config F`) would
    settings = tmp_path / "run.toml"
    settings.write_text('[daemon]\nwake = "hey robot"\n[[camera]]\nsource = 0\n')
    rc, out, err = run("doctor", "--config", settings)
    assert rc == 2 and out == ""
    assert err == (f"edge-rap: {settings}: --wake goes with --voice (the phrase that starts a spoken question); the "
                   "service runs `run --config` alone, which refuses it: add voice = true to [daemon], or give run "
                   "--voice beside --config\n")
    assert run_config({"voice": True}, settings).voice


def test_the_camera_that_is_here_is_set_on_the_command_line_or_in_the_settings_file_and_checked(tmp_path, run):
    from edge_rap.daemon.service import options_of

    settings = tmp_path / "run.toml"
    cameras = '[[camera]]\nname = "robot"\nsource = 0\n[[camera]]\nname = "kitchen"\nsource = 1\n'
    settings.write_text(f'[daemon]\nvoice = true\nhere = "kitchen"\n{cameras}')
    assert options_of(run_config({}, settings)).here == "kitchen"
    assert options_of(run_config({"here": "robot"}, settings)).here == "robot"  # the command line's over the file's
    assert options_of(run_config({"sources": ("0",), "serve": "0"}, None)).here is None  # the daemon's first camera
    settings.write_text(f'[daemon]\nvoice = true\nhere = "hall"\n{cameras}')
    with pytest.raises(EdgeRapError, match=f"^{re.escape(str(settings))}: here 'hall' is none of the cameras "
                                           r"\(robot, kitchen\)$"):
        run_config({}, settings)
    with pytest.raises(EdgeRapError, match="^--here goes with --voice or --serve"):  # it would change nothing
        run_config({"sources": ("0",), "here": "cam0"}, None)
    rc, out, err = run("run", "--source", "den=0", "--source", "1", "--voice", "--here", "hall")
    assert (rc, out, err) == (2, "", "edge-rap: here 'hall' is none of the cameras (den, cam1)\n")
    # a camera's name in another case is that camera (two names alike but for case are refused), as spelled
    given = {"sources": ("den=0", "Kitchen=1"), "voice": True, "here": "kitchen"}
    assert options_of(run_config(given, None)).here == "Kitchen"
    settings.write_text(f'[daemon]\nvoice = true\nhere = "Kitchen"\n{cameras}')
    assert options_of(run_config({"sources": ("den=0", "kitchen=1")}, settings)).here == "kitchen"


def test_a_here_that_is_no_cameras_name_is_refused_not_folded_into_one():
    # `--here Straße` was the camera `strasse`, and the Kelvin sign's `Kelvin` was `kelvin`: names were compared by
    # Unicode's case folding, and a camera's name is ASCII
    from edge_rap.perceive.camera import camera_named

    for here in ("Straße", "\u212aelvin"):
        with pytest.raises(EdgeRapError, match=f"^here {here!r}: not a camera's name \\(1-32 letters, digits"):
            run_config({"sources": ("strasse=0", "kelvin=1"), "voice": True, "here": here}, None)
        assert camera_named(here, ["strasse", "kelvin"]) is None
    assert camera_named("KELVIN", ["strasse", "kelvin"]) == "kelvin"


def test_the_settings_files_here_goes_with_its_cameras_when_the_command_line_replaces_them(tmp_path):
    # The service's file names its cameras and which is here; `run --config run.toml --source clip.mp4` by hand, to
    # try a clip, was refused: "run.toml: here 'kitchen' is none of the cameras (cam0)".
    from edge_rap.daemon.service import options_of

    settings = tmp_path / "run.toml"
    cameras = '[[camera]]\nname = "robot"\nsource = 0\n[[camera]]\nname = "kitchen"\nsource = 1\n'
    settings.write_text(f'[daemon]\nvoice = true\nhere = "kitchen"\n{cameras}')
    assert options_of(run_config({"sources": ("den=0",)}, settings)).here is None  # the first of the command line's
    assert run_config({"sources": ("den=0", "kitchen=1")}, settings).here == "kitchen"  # one of them is so named
    settings.write_text('[daemon]\nvoice = true\nhere = "kitchen"\n')  # here of the command line's cameras
    with pytest.raises(EdgeRapError, match=f"^{re.escape(str(settings))}: here 'kitchen' is none of the cameras"):
        run_config({"sources": ("den=0",)}, settings)


def test_a_value_the_command_line_gives_wrong_is_not_blamed_on_the_settings_file_that_gives_its_partner(tmp_path):
    # `run --config run.toml --source den=0 --here hall`, the file giving `voice = true`: "run.toml: here 'hall' is
    # none of the cameras (den)", as if the file named hall (the command line's options alone, without the file's
    # voice, were refused for that, not for hall); likewise a --backup-every beside the file's backup-to.
    settings = tmp_path / "run.toml"
    settings.write_text('[daemon]\nvoice = true\nbackup-to = "/media/usb"\n')
    with pytest.raises(EdgeRapError, match=r"^here 'hall' is none of the cameras \(den\)$"):
        run_config({"sources": ("den=0",), "here": "hall"}, settings)
    with pytest.raises(EdgeRapError, match=r"^backup-every 'soon': use a period"):
        run_config({"sources": ("den=0",), "backup_every": "soon"}, settings)
    settings.write_text('[daemon]\nvoice = true\nhere = "hall"\n')  # the file's own value: named so
    with pytest.raises(EdgeRapError, match=f"^{re.escape(str(settings))}: here 'hall' is none of the cameras"):
        run_config({"sources": ("den=0",)}, settings)


def test_the_settings_file_takes_a_port_as_a_number_and_says_each_type_in_words(tmp_path):
    # `serve = 8765` is what one writes in TOML: it was refused as "wrong type (int; expected str | None)".
    settings = tmp_path / "run.toml"
    settings.write_text('[daemon]\nserve = 8765\n[[camera]]\nsource = 0\n')
    assert run_config({}, settings).serve == "8765"
    from edge_rap.daemon.config import serve_address

    assert serve_address("[::]:8765") == ("::", 8765) and serve_address("8765") == ("127.0.0.1", 8765)
    with pytest.raises(EdgeRapError, match="--serve 'my host': give a host name or address"):
        serve_address("my host:8765")
    with pytest.raises(EdgeRapError, match="--serve '300.1.1.1': not an IPv4 address"):  # (it bound nothing, later)
        serve_address("300.1.1.1:8765")
    with pytest.raises(EdgeRapError, match="--serve '8²': expected"):  # (a digit to isdigit, not to int: a traceback)
        serve_address("8²")
    for text, said in (('serve = true', "serve must be a [HOST:]PORT (a string or a port number), not true"),
                       ('cooldown = "5"', "cooldown must be a number, not '5'"),
                       ('max-frames = 2.5', "max-frames must be a whole number, not 2.5"),
                       ('mute = "yes"', "mute must be true or false, not 'yes'"),
                       ('snapshots = 3', "snapshots must be a string, not 3")):
        settings.write_text(f"[daemon]\n{text}\n")
        with pytest.raises(EdgeRapError, match=f"^{re.escape(str(settings))} \\[daemon\\]: {re.escape(said)}$"):
            load_run_file(settings)


def test_a_zero_on_the_command_line_is_given_not_left_out(tmp_path):
    # `--cooldown 0` (announce every return) is equal to False: it must not give way to the file's or the default.
    settings = tmp_path / "run.toml"
    settings.write_text("[daemon]\ncooldown = 10\n")
    assert run_config({"cooldown": 0.0, "sources": ["0"], "mute": False}, settings).cooldown == 0.0
    assert run_config({"cooldown": 0.0, "sources": ["0"]}, None).cooldown == 0.0
    assert run_config({"cooldown": None, "sources": ["0"]}, settings).cooldown == 10.0
    with pytest.raises(EdgeRapError, match="duration must be more than 0"):  # a run that watches nothing
        run_config({"duration": 0.0, "sources": ["0"]}, None)


def test_a_negative_duration_is_told_what_a_zero_is_told():
    # `--duration -5` was told "a number of 0 or more", and the 0 tried next "more than 0"
    with pytest.raises(EdgeRapError, match=r"^duration must be more than 0 seconds, not -5.0 \(leave it out"):
        run_config({"duration": -5.0, "sources": ["0"]}, None)


def test_an_unnamed_camera_of_the_settings_file_never_takes_another_cameras_name(tmp_path):
    # As on the command line (`--source cam1=A --source B`: B is cam2), not "cam1 is used twice".
    settings = tmp_path / "run.toml"
    settings.write_text('[[camera]]\nname = "cam1"\nsource = 0\n[[camera]]\nsource = 1\n[[camera]]\nsource = 2\n')
    assert load_run_file(settings)["sources"] == ("cam1=0", "cam2=1", "cam3=2")


def test_an_unknown_section_or_key_of_the_settings_file_is_quoted_where_it_would_not_print(tmp_path):
    # a section's name reached the terminal as written: its escape sequence and line break too
    settings = tmp_path / "run.toml"
    for text, said in (('["x\\u001b[2J\\nedge-rap: y"]\n', r"unknown section ['x\x1b[2J\nedge-rap: y'] (have"),
                       ('["dæmon"]\n', "unknown section [dæmon] (have"),
                       ('[daemon]\n"cool\\u0007" = 1\n', r"unknown key 'cool\x07' in [daemon]")):
        settings.write_text(text)
        with pytest.raises(EdgeRapError) as refused:
            load_run_file(settings)
        assert str(refused.value).startswith(f"{settings}: {said}")


def test_camera_names_that_differ_only_in_case_are_refused_and_an_unnamed_one_takes_neither():
    # `--source a=X --source A=Y` ran two cameras a person reads as one, said alike in a spoken answer
    from edge_rap.daemon.service import options_of

    with pytest.raises(EdgeRapError, match="^camera names 'door' and 'Door' differ only in case"):
        options_of(run_config({"sources": ["door=0", "Door=1"]}, None))
    with pytest.raises(EdgeRapError, match="^camera name 'door' is used twice"):
        options_of(run_config({"sources": ["door=0", "door=1"]}, None))
    with pytest.raises(EdgeRapError, match="^camera name 'door\\\\n': use 1-32 letters"):  # ("$" took it)
        options_of(run_config({"sources": ["door\n=0", "door=1"]}, None))
    specs = options_of(run_config({"sources": ["0", "CAM0=1", "Den=2"]}, None)).sources
    assert [s.name for s in specs] == ["cam1", "CAM0", "Den"]  # (each as spelled)


def test_the_lag_p95_is_a_value_never_below_the_median():
    from edge_rap.daemon.loop import median_and_p95

    assert median_and_p95([253.7, 228.1]) == {"median": 240.9, "p95": 253.7}
    assert median_and_p95(range(1, 21)) == {"median": 10.5, "p95": 19}
    assert median_and_p95([]) == {}


# --- event log ---------------------------------------------------------------------------------------------

def test_events_are_logged_read_back_and_purged_with_their_snapshots(tmp_path):
    log = EventLog(tmp_path)
    snaps = Snapshots(SnapshotPolicy(tmp_path / "snaps", max_count=10))
    path = snaps.save(scene(), Box(10, 10, 100, 100), "bo")
    log.add(Event("arrived", "bo", "cam0", 1.0, time.time() - 3600, Box(10, 10, 100, 100), 0.7, "hi", path))
    log.add(Event("arrived", "anya", "cam0", 2.0, time.time(), None, 0.8, "hello"))
    log.add(Event("left", "bo", "cam0", 3.0, time.time()))
    reader = EventLog(tmp_path, readonly=True)
    assert [e.name for e in reader.query()] == ["bo", "anya", "bo"]
    assert [e.kind for e in reader.query(since=time.time() - 60)] == ["arrived", "left"]
    assert reader.query(name="bo")[0].box == Box(10, 10, 100, 100)
    assert log.purge("bo") == 2
    assert [e.name for e in reader.query()] == ["anya"]
    assert not (tmp_path / "snaps").joinpath(path).exists()


def test_forget_takes_the_concept_out_of_the_lines_and_snapshots_of_others_it_was_seen_with(tmp_path):
    # Bo's arrival line named Anya with her description, and its snapshot showed her: both outlived her forget
    log = EventLog(tmp_path)
    snaps = Snapshots(SnapshotPolicy(tmp_path / "snaps", max_count=10))
    together = "I can see <bo> — our puppy. <anya> is here too — our daughter."
    shared = snaps.save(scene(), Box(10, 10, 100, 100), "bo")
    alone = snaps.save(scene(), Box(10, 10, 100, 100), "bo")
    log.add(Event("arrived", "anya", "den", 1.0, time.time(), None, 0.8, together))
    log.add(Event("arrived", "bo", "den", 1.0, time.time(), None, 0.8, together, shared))
    log.add(Event("arrived", "bo", "den", 9.0, time.time(), None, 0.8, "I can see <bo> — our <anya>'s dog.", alone))
    log.add(Event("left", "anya", "den", 15.0, time.time()))
    other = snaps.save(scene(), Box(10, 10, 100, 100), "bo")
    log.add(Event("arrived", "bo", "den", 20.0, time.time(), None, 0.8, "I can see <bo> by anya's bed.", other))
    assert log.purge("anya") == 2
    assert [(e.name, e.said, e.snapshot) for e in log.query()] == [
        ("bo", None, None), ("bo", None, None), ("bo", "I can see <bo> by anya's bed.", other)]  # a marked name only
    assert not Path(shared).exists() and not Path(alone).exists() and Path(other).exists()


def test_forget_takes_the_snapshots_of_others_taken_while_the_concept_was_there(tmp_path):
    # Bo's arrival while Anya sat in the den names Bo alone, but its snapshot shows her: it outlived her forget
    log = EventLog(tmp_path)
    snaps = Snapshots(SnapshotPolicy(tmp_path / "snaps", max_count=10))
    shot = {when: snaps.save(scene(), Box(10, 10, 100, 100), "bo") for when in (110.0, 120.0, 130.0, 210.0)}
    log.add(Event("arrived", "anya", "den", 0.0, 100.0))
    log.add(Event("arrived", "bo", "den", 10.0, 110.0, None, 0.8, "I can see <bo>.", shot[110.0]))
    log.add(Event("arrived", "bo", "porch", 20.0, 120.0, None, 0.8, "I can see <bo>.", shot[120.0]))  # elsewhere
    log.add(Event("left", "anya", "den", 25.0, 125.0))
    log.add(Event("arrived", "bo", "den", 30.0, 130.0, None, 0.8, "I can see <bo>.", shot[130.0]))  # she had gone
    log.add(Event("arrived", "anya", "den", 100.0, 200.0))  # back, and still there
    log.add(Event("arrived", "bo", "den", 110.0, 210.0, None, 0.8, None, shot[210.0]))
    assert log.purge("anya") == 3
    assert [(e.wall, e.said, e.snapshot) for e in log.query()] == [
        (110.0, "I can see <bo>.", None), (120.0, "I can see <bo>.", shot[120.0]),
        (130.0, "I can see <bo>.", shot[130.0]), (210.0, None, None)]
    assert [Path(shot[w]).exists() for w in sorted(shot)] == [False, True, True, False]


def test_a_rename_renames_the_concept_in_the_lines_said_too(tmp_path):
    # `events --name Möchi` showed "<Möchi> arrived: I can see <Mochi 🐱> ...": a name no command knew any more
    log = EventLog(tmp_path)
    together = "I can see <Mochi 🐱> — our cat. <bo> is here too."
    log.add(Event("arrived", "Mochi 🐱", "den", 1.0, time.time(), None, 0.8, together))
    log.add(Event("arrived", "bo", "den", 1.0, time.time(), None, 0.8, together))
    log.add(Event("arrived", "bo", "den", 9.0, time.time(), None, 0.8, "I can see <bo> by Mochi 🐱's bowl."))
    log.rename("Mochi 🐱", "Möchi")
    assert [(e.name, e.said) for e in log.query()] == [
        ("Möchi", "I can see <Möchi> — our cat. <bo> is here too."),
        ("bo", "I can see <Möchi> — our cat. <bo> is here too."),
        ("bo", "I can see <bo> by Mochi 🐱's bowl.")]  # only a name marked as one


def test_pruning_keeps_recent_events_and_each_concepts_last_sighting_on_each_camera(tmp_path):
    """A log that runs for years stays bounded, yet "where is Bo?" still finds Bo's last sighting, however old."""
    log = EventLog(tmp_path)
    snaps = Snapshots(SnapshotPolicy(tmp_path / "snaps", max_age_s=10**9, max_count=10))
    year = 365 * 86400.0
    now = time.time()
    old_snapshot = snaps.save(scene(), Box(10, 10, 100, 100), "anya")
    log.add(Event("arrived", "bo", "porch", 1.0, now - 2 * year))
    log.add(Event("left", "bo", "porch", 2.0, now - 2 * year + 60))  # bo's last on the porch: kept, its arrival too
    log.add(Event("arrived", "anya", "den", 3.0, now - 2 * year, snapshot=old_snapshot))
    log.add(Event("left", "anya", "den", 4.0, now - 2 * year + 60))
    log.add(Event("arrived", "anya", "den", 5.0, now - 60))  # recent: anya's older den events go
    log.add(Event("arrived", "mochi", "den", 6.0, now - 2 * year))  # mochi's only event: kept
    assert log.prune(now - year) == 2
    kept = [(e.kind, e.name, e.camera) for e in EventLog(tmp_path, readonly=True).query()]
    assert kept == [("arrived", "bo", "porch"), ("left", "bo", "porch"), ("arrived", "anya", "den"),
                    ("arrived", "mochi", "den")]
    assert not Path(old_snapshot).exists()  # a pruned event's snapshot goes with it
    assert log.prune(now - year) == 0
    assert EventLog(tmp_path / "never-written").prune(now) == 0


def test_pruning_drops_a_visits_arrival_and_leaving_together(tmp_path):
    # An arrival pruned before its leaving left a leaving of no start; a leaving pruned before its arrival (the clock
    # set back between them) left the visit open for good: "where is Bo?" said "on the porch camera now".
    log, now = EventLog(tmp_path), 10_000.0
    for kind, name, wall in (("arrived", "bo", 10.0), ("left", "bo", 20.0),  # a whole old visit: goes
                             ("arrived", "bo", 30.0), ("left", "bo", 9_000.0),  # its leaving is kept: its arrival too
                             ("arrived", "anya", 9_500.0), ("left", "anya", 40.0),  # the clock set back between
                             ("arrived", "anya", 9_600.0), ("left", "anya", 9_700.0),
                             ("arrived", "mochi", 50.0), ("left", "mochi", 60.0)):  # mochi's last visit: kept whole
        log.add(Event(kind, name, "porch", wall, wall))
    assert log.prune(now - 1000.0) == 2
    assert [(e.kind, e.name, e.wall) for e in log.query()] == [
        ("arrived", "bo", 30.0), ("left", "bo", 9_000.0), ("arrived", "anya", 9_500.0), ("left", "anya", 40.0),
        ("arrived", "anya", 9_600.0), ("left", "anya", 9_700.0), ("arrived", "mochi", 50.0), ("left", "mochi", 60.0)]


def test_the_hourly_prune_of_a_long_log_reads_the_old_events_not_the_whole_log(tmp_path):
    """The daemon prunes hourly in its loop, holding the log's write lock: on a log of a year's events it found each
    place's last sighting by reading every row (seconds on a Pi each hour: frames unread, and a `forget` from another
    process timed out on the lock). Counted in SQLite's steps, not seconds: a few for one old event of many."""
    log = EventLog(tmp_path)
    now = time.time()
    log.add(Event("left", "c0", "cam0", 0.0, now - 400 * 86400.0))  # a year old, and c0 was seen since
    log._db().executemany("INSERT INTO events (kind, name, camera, time_s, wall) VALUES (?, ?, ?, ?, ?)",
                          [("left", f"c{k % 30}", f"cam{k % 3}", float(k), now - 86400 + k) for k in range(20_000)])
    steps = []
    log._db().set_progress_handler(lambda: steps.append(1), 1000)
    assert log.prune(now - 365 * 86400.0) == 1
    assert len(steps) < 5  # reading every row takes hundreds of thousands
    log._db().set_progress_handler(None, 0)
    assert log.prune(now) == 20_000 - 30  # each of the 30 places keeps its last sighting


def test_an_old_event_is_found_by_its_id_and_an_empty_log_file_holds_no_events(tmp_path):
    """The API's snapshot of an event looks it up by id, beyond the newest that a query reads; an events.sqlite
    left empty by a first writer that died before making its tables reads as no events, not an error."""
    log = EventLog(tmp_path / "memory")
    first = log.add(Event("arrived", "bo", "cam0", 1.0, time.time(), snapshot="/snaps/1700000000000-0123abcd.jpg"))
    for k in range(5):
        log.add(Event("left", "bo", "cam0", 2.0 + k, time.time()))
    reader = EventLog(tmp_path / "memory", readonly=True)
    assert first.id not in [e.id for e in reader.query(limit=3)]
    assert reader.get(first.id).snapshot == first.snapshot and reader.get(10**6) is None
    assert reader.get(2**63) is None and reader.get(-(2**63) - 1) is None  # ids from a URL, beyond SQLite's integers
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "events.sqlite").touch()
    empty = EventLog(tmp_path / "empty", readonly=True)
    assert empty.query() == [] and empty.get(1) is None


def test_the_event_logs_connections_of_threads_that_ended_are_closed(tmp_path):
    # The API inside `run --serve` reads the log from worker threads that come and go; each left its connection
    # (the log and its -wal open) behind, until months later the daemon ran out of file descriptors.
    log = EventLog(tmp_path)
    log.add(Event("arrived", "bo", "cam0", 1.0, time.time()))

    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_files()
    for _ in range(50):
        reader = threading.Thread(target=log.query)
        reader.start()
        reader.join()
    assert open_files() - before <= 4  # the last thread's connection at most
    assert [e.name for e in log.query()] == ["bo"]
    log.close()
    assert open_files() < before


def test_a_damaged_event_log_says_to_its_reader_what_to_do(tmp_path):
    (tmp_path / "events.sqlite").write_bytes(b"\x07" * 4096)  # not a database (a writer sets it aside)
    with pytest.raises(EdgeRapError, match=r"damaged: `edge-rap run` \(a running one within the hour\), `forget` or "
                                           "`rename` sets it aside"):
        EventLog(tmp_path, readonly=True).query()


def test_an_event_log_that_cannot_be_made_says_why_in_words(tmp_path, monkeypatch):
    # `run` on a new memory in a read-only mount: "cannot open the event log ([Errno 30] Read-only file system:
    # '/media/ro/home')", Python's spelling of the error
    import errno

    from edge_rap.daemon import events

    def read_only(root: Path) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(root))

    monkeypatch.setattr(events, "private_folder", read_only)
    with pytest.raises(EdgeRapError) as refused:
        EventLog(tmp_path / "home")
    assert str(refused.value) == (f"{tmp_path / 'home' / 'events.sqlite'}: cannot open the event log "
                                  f"({os.strerror(errno.EROFS)})")


@pytest.mark.parametrize("folder", ["home#2", "what?", "50%41"])
def test_an_event_log_in_a_folder_whose_name_a_uri_would_misread_stays_in_it(tmp_path, folder):
    """The log was opened as the URI `file:PATH`: in a folder named "home#2" it was written to a file "home"
    beside it (two memories "home#1" and "home#2" shared one log), and in "50%41" it could not be opened."""
    root = tmp_path / folder
    log = EventLog(root)
    log.add(Event("arrived", "bo", "cam0", 1.0, time.time()))
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder]
    assert [e.name for e in EventLog(root, readonly=True).query()] == ["bo"]
    assert EventLog(root).purge("bo") == 1


def test_events_of_a_read_only_folder_are_read(tmp_path, monkeypatch, temp_folder):
    """A reader of a read-only folder (a memory mounted read-only, or copied from a device) cannot make the -shm
    that `mode=ro` needs: `edge-rap events` failed there ("unable to open database file") while `concepts` and
    `recognize` worked. Its commits still in a -wal are read from a private copy, removed when it closes."""
    import sqlite3

    from edge_rap.daemon import events

    log = EventLog(tmp_path)
    log.add(Event("arrived", "bo", "cam0", 1.0, time.time()))
    log.close()  # merged into events.sqlite
    keeper = sqlite3.connect(tmp_path / "events.sqlite")  # holds the -wal open: no merge when the writer closes
    keeper.execute("PRAGMA wal_autocheckpoint = 0")
    keeper.execute("SELECT COUNT(*) FROM events").fetchone()
    log = EventLog(tmp_path)
    log.add(Event("left", "bo", "cam0", 2.0, time.time()))
    log.close()
    connect = events._connect

    def no_shm(target, uri=False):  # as in a read-only folder, where SQLite cannot make the -shm
        if target.endswith("?mode=ro"):
            raise sqlite3.OperationalError("unable to open database file")
        return connect(target, uri)

    monkeypatch.setattr(events, "_connect", no_shm)
    try:
        reader = EventLog(tmp_path, readonly=True)
        assert [e.kind for e in reader.query()] == ["arrived", "left"]  # the commit still in the -wal too
        assert len(list(temp_folder.glob("edge-rap-*/*"))) == 1  # read from a private copy ...
        reader.close()
        assert list(temp_folder.glob("edge-rap-*/*")) == []
    finally:
        keeper.close()
    assert not (tmp_path / "events.sqlite-wal").exists()  # merged, all closed: the file is read as it is
    reader = EventLog(tmp_path, readonly=True)
    assert [e.kind for e in reader.query()] == ["arrived", "left"]
    reader.close()


def test_events_of_a_read_only_mount_are_read(tmp_path):
    import sys

    from readonly import run_read_only

    memory = tmp_path / "memory"
    memory.mkdir()
    log = EventLog(memory)
    log.add(Event("arrived", "bo", "cam0", 1.0, time.time()))
    log.close()  # its -wal and -shm go: the read-only folder holds events.sqlite alone
    out = tmp_path / "out.json"
    script = ("import sys, io, contextlib, json\nfrom pathlib import Path\nfrom edge_rap import cli\n"
              "from edge_rap.daemon.events import EventLog\nbuf = io.StringIO()\n"
              "with contextlib.redirect_stdout(buf):\n"
              "    rc = cli.main(['events', '--json', '--memory', sys.argv[1]])\n"
              "try:\n    EventLog(Path(sys.argv[1]))\n    writer = 'opened'\n"
              "except Exception as e:\n    writer = str(e)\n"
              "open(sys.argv[2], 'w').write(json.dumps({'rc': rc, 'out': buf.getvalue(), 'writer': writer}))\n")
    run_read_only(memory, [sys.executable, "-c", script, str(memory), str(out)], out)
    result = json.loads(out.read_text())
    assert result["rc"] == 0 and [e["name"] for e in json.loads(result["out"])] == ["bo"]
    assert result["writer"].endswith("the memory folder is not writable"), result  # (forget, rename): said so


def test_events_say_when_older_ones_were_left_out(tmp_path, monkeypatch, capsys):
    from edge_rap import cli

    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    log = EventLog(tmp_path / "memory")
    for k in range(5):
        log.add(Event("arrived", f"c{k}", "cam0", float(k), time.time()))
    capsys.readouterr()
    assert cli.main(["events", "--json", "--limit", "3", "--memory", str(tmp_path / "memory")]) == 0
    out, err = capsys.readouterr()
    assert [e["name"] for e in json.loads(out)] == ["c2", "c3", "c4"] and "newest 3 events shown" in err
    assert cli.main(["events", "--limit", "5", "--memory", str(tmp_path / "memory")]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 5 and err == ""
    assert cli.main(["events", "--limit", "1", "--memory", str(tmp_path / "memory")]) == 0
    assert "the newest 1 event shown," in capsys.readouterr().err  # not "1 events"
    log.add(Event("left", "c4", "cam0", 6.0, time.time()))
    assert cli.main(["events", "--json", "--limit", "2", "--memory", str(tmp_path / "memory")]) == 0
    keys = {"type", "name", "camera", "time_s", "wall", "box", "score", "said", "snapshot"}
    assert [set(e) for e in json.loads(capsys.readouterr().out)] == [keys, keys]  # "left" too: the same keys


def test_events_json_is_written_as_read_not_held_whole(tmp_path, monkeypatch):
    # `events --limit 1000000 --json` held every event, and then the whole text, in memory: 805 MB on a big log
    import tracemalloc

    from edge_rap import cli

    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    log, now = EventLog(tmp_path / "memory"), time.time()
    db = log._db()
    db.execute("BEGIN")
    for k in range(20_000):
        log.add(Event("arrived", f"c{k % 7}", "cam0", float(k), now - 20_000 + k, said=f"I can see <c{k % 7}>."))
    db.execute("COMMIT")
    log.close()
    with open(tmp_path / "out.json", "w") as out:
        monkeypatch.setattr("sys.stdout", out)
        tracemalloc.start()
        try:
            assert cli.main(["events", "--json", "--limit", "1000000", "--memory", str(tmp_path / "memory")]) == 0
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    events = json.loads((tmp_path / "out.json").read_text())
    assert len(events) == 20_000 and events[-1]["time_s"] == 19_999.0
    assert peak < 2_000_000, peak  # (held whole: 23 MB)


def test_events_whose_output_is_blocked_hold_no_read_of_the_log(tmp_path, monkeypatch):
    # `events | less` left open read the log through one statement held open while it printed: a running daemon's
    # -wal could not be merged and begun again (it grew by 19 KB an event), and `restore` found the memory held.
    # Each batch is read whole, the connection let go: every checkpoint while its output waits merges the -wal whole,
    # and the memory (read for --name) is closed
    from edge_rap import cli
    from edge_rap.daemon import events as events_module
    from edge_rap.memory.store import Store

    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(events_module, "BATCH", 50, raising=False)
    monkeypatch.setattr(cli, "JSON_BATCH", 5)  # (--json written 5 events at a time: a write that waits each)
    store = Store(tmp_path / "memory")
    with store.transaction():  # (the memory's database made: a concept's events are read for --name after it)
        pass
    store.close()
    log, now = EventLog(tmp_path / "memory"), time.time()
    for k in range(120):
        log.add(Event("arrived", f"c{k % 7}", "cam0", float(k), now - 120 + k, said=f"I can see <c{k % 7}>."))
    daemon, checks = log._db(), []

    def memory_open() -> bool:  # (the memory's database, which only `events` opens here: --name reads it)
        return any(os.readlink(f"/proc/self/fd/{fd}").endswith("memory.sqlite") for fd in os.listdir("/proc/self/fd")
                   if os.path.islink(f"/proc/self/fd/{fd}"))

    class Blocked:
        """A pager's pipe: each write waits while the daemon logs an event and merges its -wal."""
        def __init__(self, camera: str) -> None:
            self.camera, self.text = camera, ""

        def write(self, text: str) -> int:
            log.add(Event("left", "c3", self.camera, 1.0, time.time()))
            checks.append((daemon.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0], memory_open()))
            self.text += text
            return len(text)

        def flush(self) -> None:
            pass

    daemon.execute("PRAGMA busy_timeout = 0")
    for run, options in enumerate(([], ["--json"], ["--name", "c3", "--since", "1h"])):
        checks.clear()
        out = Blocked(f"meanwhile{run}")
        monkeypatch.setattr("sys.stdout", out)
        assert cli.main(["events", *options, "--memory", str(tmp_path / "memory")]) == 0
        assert len(checks) >= 18 and set(checks) == {(0, False)}, options  # (1: busy, a read under way; True: held)
        assert f"meanwhile{run}" not in out.text and "meanwhile" in str(log.query(limit=1))  # (not among them)
    log.close()


def test_events_that_meet_damage_partway_stop_there_their_json_list_unclosed_on_a_line_of_its_own(
        tmp_path, monkeypatch, capsys):
    # printed as read, the events before a damaged page are out by the time it is met: exit status 2, the list never
    # closed (no script's whole list), and its line ended (the error's line came on the end of the JSON)
    from edge_rap import cli
    from edge_rap.daemon import events as events_module

    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(events_module, "BATCH", 50, raising=False)
    log, now = EventLog(tmp_path / "memory"), time.time()
    for k in range(120):
        log.add(Event("arrived", "bo", "cam0", float(k), now - 120 + k, said="I can see <bo>."))
    first = [e.to_json() for e in log.query()[:50]]  # (ids 1 to 50: the first batch)
    log.close()
    monkeypatch.setattr(events_module, "valid_event", lambda row: row[0] != 70)  # (a torn page: rows of nulls)
    for options in (["--json"], []):
        code = cli.main(["events", *options, "--memory", str(tmp_path / "memory")])
        out, err = capsys.readouterr()
        assert code == 2 and err.count("\n") == 1
        assert "cannot read the event log (database disk image is malformed" in err
        if options:
            assert out == "[" + ", ".join(map(json.dumps, first)) + "\n"
        else:
            assert out.count("\n") == 50 and all(line.endswith("<bo> arrived: I can see <bo>.") for line in
                                                   out.splitlines())


def test_events_listed_from_a_log_replaced_meanwhile_stop_there(tmp_path, monkeypatch, capsys):
    # read a batch at a time, holding nothing between them: a restore (or a damaged log set aside) while the output
    # waited, and the next batches came from the other log, its events taken for the rest of this one's
    from edge_rap import cli
    from edge_rap.daemon import events as events_module

    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(events_module, "BATCH", 50, raising=False)
    for memory, name in (("memory", "bo"), ("restored", "mochi")):
        log = EventLog(tmp_path / memory)
        for k in range(120):
            log.add(Event("arrived", name, "cam0", float(k), time.time(), said=f"I can see <{name}>."))
        log.close()

    class Waiting:
        """A pager's pipe: while its first line waits, the memory is restored (its log another file)."""
        text = ""

        def write(self, text: str) -> int:
            if not self.text:
                os.replace(tmp_path / "restored" / "events.sqlite", tmp_path / "memory" / "events.sqlite")
            self.text += text
            return len(text)

        def flush(self) -> None:
            pass

    out = Waiting()
    monkeypatch.setattr("sys.stdout", out)
    assert cli.main(["events", "--memory", str(tmp_path / "memory")]) == 2
    err = capsys.readouterr().err
    assert "the event log was replaced while its events were listed" in err and err.count("\n") == 1, err
    assert out.text.count("\n") == 50 and "mochi" not in out.text


def test_events_json_is_the_list_json_dumps_writes(tmp_path, monkeypatch, capsys):
    # written as it is read, byte for byte what `print(json.dumps(events))` printed: none, one, and several
    from edge_rap import cli

    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    log = EventLog(tmp_path / "memory")
    for count in (0, 1, 3):
        while len(log.query()) < count:
            log.add(Event("arrived", "bo", "cam0", 1.0, time.time(), said="I can see <bo>."))
        capsys.readouterr()
        assert cli.main(["events", "--json", "--memory", str(tmp_path / "memory")]) == 0
        assert capsys.readouterr().out == json.dumps([e.to_json() for e in log.query()]) + "\n"


def test_events_show_an_old_name_holding_a_line_separator_on_its_line(tmp_path, monkeypatch, capsys):
    # a name of a memory from before U+2028 was refused broke `events`' line in two, as `concepts` no longer does
    from edge_rap import cli

    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    EventLog(tmp_path / "memory").add(Event("arrived", "tea\u2028pot", "cam0", 0.0, time.time(),
                                            said="I can see <tea\u2028pot>."))
    capsys.readouterr()
    assert cli.main(["events", "--memory", str(tmp_path / "memory")]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.endswith("[cam0] <'tea\\u2028pot'> arrived: 'I can see <tea\\u2028pot>.'")


def test_events_until_a_time_show_those_before_it(tmp_path, monkeypatch, capsys):
    # "what happened yesterday?": `events` had only --since, so a day's events came with every one after it
    from edge_rap import cli

    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    log, now = EventLog(tmp_path / "memory"), time.time()
    for name, hours_ago in (("two-days", 49), ("yesterday", 30), ("today", 1)):
        log.add(Event("arrived", name, "cam0", 0.0, now - hours_ago * 3600))

    def names(*argv: str) -> list[str]:
        capsys.readouterr()
        assert cli.main(["events", "--json", *argv, "--memory", str(tmp_path / "memory")]) == 0
        return [e["name"] for e in json.loads(capsys.readouterr().out)]

    assert names("--since", "2d", "--until", "1d") == ["yesterday"]
    assert names("--until", "1d") == ["two-days", "yesterday"]
    noon = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now - 2 * 3600))
    assert names("--until", noon) == ["two-days", "yesterday"]  # an ISO date-time, as --since takes
    for argv, said in ((["--until", "soon"], "--until 'soon': use 30s"),
                       (["--since", "1d", "--until", "2d"], "--until '2d' is not after --since '1d'")):
        assert cli.main(["events", *argv, "--memory", str(tmp_path / "memory")]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.startswith(f"edge-rap: {said}") and err.count("\n") == 1


def test_events_since_and_until_alike_are_refused_however_the_clock_moved(tmp_path, monkeypatch, capsys,
                                                                          ticking_parse_clock):
    # each read its own clock: `--since 1d --until 1d`, a moment apart, was "no events", not refused as swapped ones
    from edge_rap import cli

    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    EventLog(tmp_path / "memory").add(Event("arrived", "bo", "cam0", 0.0, time.time() - 86400))
    assert cli.main(["events", "--since", "1d", "--until", "1d", "--memory", str(tmp_path / "memory")]) == 2
    assert capsys.readouterr().err == "edge-rap: --until '1d' is not after --since '1d'\n"


def test_events_refuse_an_empty_name_and_take_any_limit(tmp_path, monkeypatch, capsys):
    # `--name "$UNSET"` listed every concept's events as if they were the one asked about; a limit past SQLite's
    # integers ended in a traceback.
    from edge_rap import cli

    monkeypatch.setenv("EDGE_RAP_HOME", str(tmp_path / "home"))
    log = EventLog(tmp_path / "memory")
    log.add(Event("arrived", "c0", "cam0", 0.0, time.time()))
    capsys.readouterr()
    assert cli.main(["events", "--name", "", "--memory", str(tmp_path / "memory")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "edge-rap: concept name is empty\n"
    assert cli.main(["events", "--json", "--limit", str(10**30), "--memory", str(tmp_path / "memory")]) == 0
    assert [e["name"] for e in json.loads(capsys.readouterr().out)] == ["c0"]


def test_a_relative_snapshots_folder_is_logged_whole_so_forget_finds_them_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = Snapshots(SnapshotPolicy(Path("snaps"))).save(scene(), None, "bo")
    EventLog(tmp_path / "memory").add(Event("arrived", "bo", "cam0", 1.0, time.time(), snapshot=path))
    monkeypatch.chdir(tmp_path / "memory")  # `edge-rap forget bo` run from another folder
    assert EventLog(tmp_path / "memory").purge("bo") == 1
    assert list((tmp_path / "snaps").iterdir()) == []


def test_visits_of_a_daemon_that_died_are_closed_at_its_last_sign_of_life(tmp_path):
    # SIGKILL or the OOM killer: no "left" was logged, and "is Bo home?" would say yes for ever after.
    import subprocess
    import sys

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    running = EventLog(tmp_path)  # another daemon, alive, on the same memory and a camera of the same name
    running.begin_watch()
    running.add(Event("arrived", "mochi", "porch", 1.0, 1020.0))
    died = EventLog(tmp_path)
    died.begin_watch()
    died.add(Event("arrived", "bo", "porch", 5.0, 1000.0))
    died.add(Event("arrived", "anya", "porch", 6.0, 1001.0))
    died.add(Event("left", "anya", "porch", 9.0, 1004.0))
    died.add(Event("arrived", "anya", "porch", 39.0, 1034.0))  # after its last sign of life
    died._db().execute("UPDATE watches SET pid = ?, alive = 1030.0 WHERE id = ?", (dead, died.watch))
    closed = EventLog(tmp_path).begin_watch()
    # anya's arrival is its last sign of life: bo, in view then too, had left at the beat before it
    assert sorted((e.kind, e.name, e.camera, e.time_s, e.wall) for e in closed) == [
        ("left", "anya", "porch", 39.0, 1034.0), ("left", "bo", "porch", 39.0, 1034.0)]
    assert [(e.kind, e.name) for e in EventLog(tmp_path, readonly=True).query(name="bo")][-1] == ("left", "bo")
    assert EventLog(tmp_path).begin_watch() == []  # closed once; the living daemon's <mochi> stays in view
    assert running._db().execute("SELECT COUNT(*) FROM watches WHERE pid = ?", (dead,)).fetchone() == (0,)
    running.end_watch()
    assert running._db().execute("SELECT COUNT(*) FROM watches WHERE pid = ?", (os.getpid(),)).fetchone() == (2,)


def test_visits_no_live_run_owns_are_closed_at_the_next_start_though_their_watch_has_no_row(tmp_path):
    # A run stopped cleanly with <bo>'s leaving never logged (let go while the disk was full): its row went as it
    # stopped, and no start closed the visit, nor one of a watch a restored log holds no row of; "where is Bo?" read
    # it as ended, but `events` and `forget` (every snapshot on the porch since "while Bo was there") did not.
    running = EventLog(tmp_path)  # another daemon, alive: its visit stays open
    running.begin_watch()
    running.add(Event("arrived", "mochi", "porch", 1.0, 1020.0))
    stopped = EventLog(tmp_path)
    stopped.begin_watch()
    stopped.add(Event("arrived", "bo", "porch", 5.0, 1000.0))
    stopped.add(Event("arrived", "anya", "den", 6.0, 1001.0))
    stopped.add(Event("left", "anya", "den", 9.0, 1004.0))  # its last event after bo's arrival
    stopped.end_watch()
    stopped._db().execute("INSERT INTO events (kind, name, camera, time_s, wall, watch) VALUES "
                          "('arrived', 'ben', 'den', 1.0, 1100.0, 999)")  # a watch of which the log has no row
    read = EventLog(tmp_path, readonly=True).last_seen("bo")
    closed = EventLog(tmp_path).begin_watch()
    assert sorted((e.kind, e.name, e.camera, e.time_s, e.wall) for e in closed) == [
        ("left", "ben", "den", 1.0, 1100.0), ("left", "bo", "porch", 9.0, 1004.0)]
    assert (read.kind, read.time_s, read.wall) == ("left", 9.0, 1004.0)  # as "where is Bo?" read it before
    assert EventLog(tmp_path).begin_watch() == []  # closed once
    assert EventLog(tmp_path, readonly=True).last_seen("mochi").kind == "arrived"


def test_where_is_reads_a_dead_daemons_visit_as_ended_at_its_newest_event_as_its_closing_will(tmp_path):
    # Before the next `run` closed the visit, "where is Bo?" ended it at the last beat, and the closing then moved
    # it to the arrival logged after that beat: the two said different times of one visit.
    import subprocess
    import sys

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    died = EventLog(tmp_path)
    died.begin_watch()
    died.add(Event("arrived", "bo", "porch", 5.0, 1000.0))
    died.add(Event("arrived", "anya", "porch", 39.0, 1034.0))  # after its last sign of life
    died._db().execute("UPDATE watches SET pid = ?, alive = 1030.0 WHERE id = ?", (dead, died.watch))
    read = EventLog(tmp_path, readonly=True).last_seen("bo")
    closed = {e.name: e for e in EventLog(tmp_path).begin_watch()}
    assert (read.kind, read.time_s, read.wall) == ("left", 39.0, 1034.0) == (
        closed["bo"].kind, closed["bo"].time_s, closed["bo"].wall)


def test_where_is_and_the_closing_agree_on_a_dead_daemons_visit_when_its_clock_was_set_back(tmp_path):
    # The closing took each place's newest event, of before the arrival too; "where is Bo?" every event logged after
    # it: with the clock set back while the daemon ran, the two ended one visit at different times.
    import subprocess
    import sys

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    for before, after in (([], [("arrived", "anya", "den", 45.0, 1040.0), ("left", "anya", "den", 46.0, 1010.0)]),
                          ([("arrived", "anya", "den", 1.0, 2000.0)], [])):  # (its clock set back after these)
        home = tmp_path / str(len(before))
        died = EventLog(home)
        died.begin_watch()
        for event in [*before, ("arrived", "bo", "porch", 5.0, 1000.0), *after]:
            died.add(Event(*event))
        died._db().execute("UPDATE watches SET pid = ?, alive = 1030.0 WHERE id = ?", (dead, died.watch))
        read = EventLog(home, readonly=True).last_seen("bo")
        closed = next(e for e in EventLog(home).begin_watch() if e.name == "bo")
        assert read.kind == closed.kind == "left" and (read.time_s, read.wall) == (closed.time_s, closed.wall), before
        assert closed.wall == max([1030.0] + [e[4] for e in after])  # (logged after it: the daemon lived then)


def test_a_watch_whose_pid_another_process_now_holds_is_dead(tmp_path):
    # After a reboot the service often gets its old pid again: the pid alone would keep the visit open for ever.
    log = EventLog(tmp_path)
    log.begin_watch()
    log.add(Event("arrived", "bo", "porch", 5.0, 1000.0))
    log._db().execute("UPDATE watches SET identity = 'another-boot:1', alive = 1010.0 WHERE id = ?", (log.watch,))
    closed = EventLog(tmp_path).begin_watch()
    assert [(e.kind, e.name, e.wall) for e in closed] == [("left", "bo", 1010.0)]


def test_daemons_starting_together_close_a_dead_ones_visits_once(tmp_path):
    import subprocess
    import sys

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    died = EventLog(tmp_path)
    died.begin_watch()
    for name in ("bo", "anya", "mochi"):
        died.add(Event("arrived", name, "porch", 5.0, 1000.0))
    died._db().execute("UPDATE watches SET pid = ?, identity = NULL WHERE id = ?", (dead, died.watch))
    logs = [EventLog(tmp_path) for _ in range(4)]
    start = threading.Barrier(len(logs))

    def begin(log):
        start.wait()
        log.begin_watch()

    workers = [threading.Thread(target=begin, args=(log,)) for log in logs]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    kinds = [e.kind for e in EventLog(tmp_path, readonly=True).query()]
    assert kinds.count("left") == 3


def test_processes_opening_an_event_log_of_before_at_once_all_open_it(tmp_path):
    import sqlite3

    for round_ in range(5):
        root = tmp_path / str(round_)
        root.mkdir()
        db = sqlite3.connect(root / "events.sqlite")
        db.executescript("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, "
                         "camera TEXT NOT NULL, time_s REAL NOT NULL, wall REAL NOT NULL, box TEXT, score REAL, "
                         "said TEXT, snapshot TEXT);")
        db.close()
        start, errors = threading.Barrier(4), []

        def open_it():
            start.wait()
            try:
                EventLog(root)
            except EdgeRapError as e:
                errors.append(str(e))

        workers = [threading.Thread(target=open_it) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert errors == []


def test_an_event_log_of_before_watches_takes_them(tmp_path):
    import sqlite3

    db = sqlite3.connect(tmp_path / "events.sqlite")
    db.executescript("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, camera "
                     "TEXT NOT NULL, time_s REAL NOT NULL, wall REAL NOT NULL, box TEXT, score REAL, said TEXT, "
                     "snapshot TEXT); INSERT INTO events (kind, name, camera, time_s, wall) VALUES "
                     "('arrived', 'bo', 'cam0', 1.0, 1.0);")
    db.close()
    log = EventLog(tmp_path)
    log.begin_watch()
    log.add(Event("arrived", "bo", "cam0", 2.0, 2.0))
    assert [e.kind for e in log.query()] == ["arrived", "left", "arrived"]  # its open visit closed first


def test_visits_an_edge_rap_of_before_watches_left_open_are_closed_at_its_last_event(tmp_path):
    # Its daemon logged no "left" when it stopped, nor a watch to close them by: after the upgrade "where is Bo?"
    # said "<bo> is on the cam0 camera now" for ever.
    import sqlite3

    db = sqlite3.connect(tmp_path / "events.sqlite")
    db.executescript("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, camera "
                     "TEXT NOT NULL, time_s REAL NOT NULL, wall REAL NOT NULL, box TEXT, score REAL, said TEXT, "
                     "snapshot TEXT); INSERT INTO events (kind, name, camera, time_s, wall) VALUES "
                     "('arrived', 'bo', 'cam0', 1.0, 100.0), ('arrived', 'anya', 'cam0', 5.0, 104.0), "
                     "('left', 'anya', 'cam0', 9.0, 108.0);")
    db.close()
    running = EventLog(tmp_path)
    closed = running.begin_watch()
    assert [(e.kind, e.name, e.camera, e.time_s, e.wall) for e in closed] == [("left", "bo", "cam0", 9.0, 108.0)]
    assert EventLog(tmp_path, readonly=True).last_seen("bo").kind == "left"
    running.add(Event("arrived", "mochi", "cam0", 1.0, 200.0))  # this version's daemon, alive: its visit stays open
    assert EventLog(tmp_path).begin_watch() == []  # closed once
    assert EventLog(tmp_path, readonly=True).last_seen("mochi").kind == "arrived"


def test_snapshots_are_kept_within_their_count(tmp_path):
    snaps = Snapshots(SnapshotPolicy(tmp_path, max_count=3))
    for _ in range(5):
        snaps.save(scene(), None, "x")
        time.sleep(0.002)
    assert len(list(tmp_path.glob("*.jpg"))) == 3


def test_the_wall_clock_says_when_it_was_set_not_when_ntp_slews_it():
    from edge_rap.daemon.clock import WallClock

    steady, wall = [0.0], [1000.0]
    clock = WallClock(wall=lambda: wall[0], steady=lambda: steady[0])
    steps = []
    for _ in range(1000):  # a day of readings, the clock slewed by 0.5 ms a second (NTP's most): 43 s in all
        steady[0] += 86.4
        wall[0] += 86.4 * 1.0005
        steps.append(clock.read().step_s)
    assert steps == [0.0] * 1000
    wall[0] += 1.78e9  # NTP sets a clock that booted in 1970
    assert clock.read().step_s == 1.78e9 and clock.read().step_s == 0.0


def test_new_snapshots_outlive_those_a_clock_once_ahead_named_in_the_future(tmp_path):
    """The count limit sorted by the time in the names: files named while the clock was ahead were kept, and past
    the limit each new snapshot was deleted right after it was written."""
    for k in range(3):
        (tmp_path / f"{2_200_000_000_000 + k:013d}-0123abcd.jpg").write_bytes(b"2039")
    snaps = Snapshots(SnapshotPolicy(tmp_path, max_count=3))
    written = [snaps.save(scene(), None, "bo") for _ in range(2)]
    assert sorted(p.name for p in tmp_path.glob("*.jpg")) == sorted(
        [Path(p).name for p in written] + ["2200000000002-0123abcd.jpg"])


def test_snapshots_taken_before_the_clock_is_set_are_aged_by_the_steady_clock(tmp_path):
    """A snapshot named in the 1970 of a board whose clock is not set yet was deleted as years old at the next
    save once NTP had set it, though its event was minutes old."""
    wall, steady = [10 * 86400.0], [100.0]
    snaps = Snapshots(SnapshotPolicy(tmp_path, max_age_s=3600.0), wall=lambda: wall[0], steady=lambda: steady[0])
    first = snaps.save(scene(), None, "bo")
    wall[0], steady[0] = time.time(), 160.0  # a minute later, the clock set
    second = snaps.save(scene(), None, "bo")
    assert Path(first).exists() and Path(second).exists()
    steady[0] += 3700.0  # an hour later
    snaps.prune()
    assert not Path(first).exists() and not Path(second).exists()


def test_snapshots_a_full_disk_refuses_are_warned_of_once_and_their_return_is_said(tmp_path, monkeypatch, caplog):
    # A daemon that runs for months on a disk that fills warned at every arrival until it was freed, and never said
    # that snapshots were written again.
    snaps = Snapshots(SnapshotPolicy(tmp_path))
    write = Path.write_bytes
    full = [True]

    def refusing(path, data):
        if full[0]:
            raise OSError(28, "No space left on device")
        return write(path, data)

    monkeypatch.setattr(Path, "write_bytes", refusing)
    assert [snaps.save(scene(), None, "bo") for _ in range(3)] == [None] * 3
    full[0] = False
    assert snaps.save(scene(), None, "bo") is not None and snaps.save(scene(), None, "mochi") is not None
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"snapshots not written to {tmp_path} (No space left on device); the events are logged "
                     "without them until it can be written", f"snapshots are written to {tmp_path} again"]
    assert len(list(tmp_path.glob("*.jpg"))) == 2


def test_since_takes_durations_and_dates():
    assert parse_since("10m", now=1000.0) == 400.0
    assert parse_since("2h", now=10_000.0) == 2800.0
    assert parse_since("1w", now=1_000_000.0) == 1_000_000.0 - 7 * 86400  # was refused: "what happened this week?"
    with pytest.raises(EdgeRapError, match="--since"):
        parse_since("yesterday")


def test_since_takes_a_utc_date_time_ending_in_z():
    """As a browser's toISOString writes it: refused on Python 3.10 (a Jetson's), whose fromisoformat has no `Z`."""
    noon = datetime(2026, 12, 5, 12, tzinfo=timezone.utc).timestamp()
    assert parse_since("2026-12-05T12:00:00Z") == noon
    assert parse_since("2026-12-05T12:00:00.000Z") == noon
    assert parse_since("2026-12-05T13:00:00+01:00") == noon


def test_a_date_with_an_offset_is_its_midnight_there_not_here(monkeypatch):
    # Python 3.11's fromisoformat reads `2026-12-05+00:00` as a naive date, its offset dropped: `--until 2026-12-05Z`
    # was the local midnight (5 hours off in New York), and 3.10 refused it (and 20261205 in any form)
    midnight = datetime(2026, 12, 5, tzinfo=timezone.utc).timestamp()
    with monkeypatch.context() as m:
        m.setenv("TZ", "EST5")  # (a POSIX rule: no tz database needed)
        time.tzset()
        try:
            for text in ("2026-12-05Z", "2026-12-05+00:00", "20261205Z"):
                assert parse_since(text) == midnight, text
            assert parse_since("2026-12-05+01:00") == midnight - 3600
            assert parse_since("2026-12-05") == midnight + 5 * 3600  # no offset: the local midnight, as before
            # a date without dashes, which 3.10's fromisoformat refused where 3.11's reads it
            assert parse_since("20261205") == midnight + 5 * 3600 and parse_since("20261205T01:00Z") == midnight + 3600
        finally:
            m.undo()
            time.tzset()



# (text, the time it is, in UTC) of forms Python 3.11 to 3.13's fromisoformat reads and 3.10's refused
ISO_FORMS = [
    ("2026-12-05T1000Z", (10, 0)), ("2026-12-05T100030Z", (10, 0, 30)), ("20261205T10:00Z", (10, 0)),
    ("2026-12-05T10:00+0100", (9, 0)), ("2026-12-05T10:00+01", (9, 0)), ("2026-12-05T10:00-0530", (15, 30)),
    ("2026-12-05T10:00+013030", (8, 29, 30)),
    ("2026-12-05T10:00:00,5Z", (10, 0, 0, 500_000)), ("2026-12-05T10:00:00.5Z", (10, 0, 0, 500_000)),
    ("2026-12-05T100000,25Z", (10, 0, 0, 250_000)), ("2026-12-05T10:00:00.1234567Z", (10, 0, 0, 123_456)),
    ("2026-12-05 10:00:00.123+00:00", (10, 0, 0, 123_000)),
]


@pytest.mark.parametrize("text,hms", ISO_FORMS)
def test_a_date_time_reads_the_same_on_every_python(text, hms):
    # Python 3.10's fromisoformat (a Jetson's) reads only what isoformat() writes: `T1000`, `+0100` and a comma
    # before a fraction were refused there, read on 3.11
    assert parse_since(text) == datetime(2026, 12, 5, *hms, tzinfo=timezone.utc).timestamp()


def test_a_week_date_reads_the_same_on_every_python():
    monday = datetime(2026, 11, 30, tzinfo=timezone.utc).timestamp()
    assert parse_since("2026-W49-1Z") == parse_since("2026W491Z") == parse_since("2026-W49Z") == monday
    assert parse_since("2026-W49-3T12:00Z") == monday + 2 * 86400 + 12 * 3600


@pytest.mark.parametrize("text", ["2026-12-05T10:30,5", "2026-12-05T10.5", "2026-12-05T10:00Z+01:00",
                                  "2026-12-05T10:0", "2026-12-05T100", "2026-12-05T25:00", "2026-12-05T10:00:60",
                                  "2026-12-05T10:00+24:00", "2026-12-05T10:00+01:60", "202612", "2026-1205",
                                  "2026-W54", "2026-12-05T10:00:00.", "10:00", "\uff12\uff10\uff12\uff16-12-05",
                                  "2026-12-05T24:00:01", "2026-12-05T24:01", "2026-12-05T24:00:00.0000001",
                                  "9999-12-31T24:00"])
def test_a_date_time_refused_is_refused_on_every_python(text):
    # a fraction of an hour or a minute was read on 3.11 as one of a second (`10:30,5` as 10:30:00.5); a time
    # after a `Z` read on 3.10 as the offset after it; digits other than ASCII's (fullwidth) refused as 3.11 did;
    # 24:00 is the end of a day, no later (the last day's has no next day)
    with pytest.raises(EdgeRapError, match="use 30s, 10m, 2h, 1d, 1w or an ISO date-time"):
        parse_since(text)


@pytest.mark.parametrize("text,day", [("2026-12-05T24:00Z", 6), ("2026-12-05T24:00:00Z", 6),
                                      ("2026-12-05T24:00:00.000Z", 6), ("20261205T2400Z", 6), ("2026-12-05T24Z", 6),
                                      ("2026-W49-6T24:00Z", 6), ("2026-12-31T24:00Z", 32)])
def test_24_00_is_the_end_of_a_day_the_next_days_midnight(text, day):
    # ISO 8601's end of a day, as a schedule's end is written (`--until 2026-12-05T24:00`): refused on every Python
    assert parse_since(text) == datetime(2026, 12, 1, tzinfo=timezone.utc).timestamp() + (day - 1) * 86400


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10's fromisoformat reads fewer forms")
@pytest.mark.parametrize("text", [text for text, _ in ISO_FORMS] + ["2026-12-05T10:00", "2026-12-05T10",
                                                                     "2026-W49-3T12:00", "2026-12-05"])
def test_a_date_time_reads_as_python_3_11s_fromisoformat_reads_it(text):
    from edge_rap.iso_time import read_iso

    assert read_iso(text) == datetime.fromisoformat(text)


# --- speaker -----------------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")
def test_the_speaker_writes_the_newest_lines_as_wavs(tmp_path):
    from edge_rap.speech.tts import EspeakVoice, Speaker

    speaker = Speaker(EspeakVoice(), tmp_path)
    for k in range(6):  # faster than it can speak: the newest waiting line wins
        speaker.say(f"line <number> {k}")
    assert speaker.flush(120)  # returns as soon as it has spoken: the deadline only has to be generous
    speaker.close()
    lines = [json.loads(x) for x in (tmp_path / "speech.jsonl").read_text().splitlines()]
    assert 1 <= len(lines) < 6 and lines[-1]["text"] == "line number 5"
    with wave.open(str(tmp_path / lines[-1]["wav"])) as w:
        assert w.getnframes() > w.getframerate() * 0.3  # a spoken line, not an empty file



def say_each(speaker, lines: list[str]) -> None:
    for text in lines:  # one at a time: a newer line would replace one still waiting
        speaker.say(text)
        assert speaker.flush(60)
    speaker.close()


def test_a_speak_to_folder_keeps_only_the_newest_wavs_and_their_index_lines(tmp_path, monkeypatch):
    from edge_rap.speech import tts

    monkeypatch.setattr(tts, "KEEP_WAVS", 3)
    say_each(tts.Speaker(WritingVoice(), tmp_path), [f"line {k}" for k in range(5)])
    assert sorted(p.name for p in tmp_path.glob("*.wav")) == ["00000003.wav", "00000004.wav", "00000005.wav"]
    index = [json.loads(x) for x in (tmp_path / "speech.jsonl").read_text().splitlines()]
    assert [(e["wav"], e["text"]) for e in index] == [("00000003.wav", "line 2"), ("00000004.wav", "line 3"),
                                                      ("00000005.wav", "line 4")]


def test_a_speak_to_folder_past_9999_lines_goes_on_after_its_last_number(tmp_path):
    from edge_rap.speech.tts import Speaker

    (tmp_path / "9999.wav").write_bytes(b"older")  # names of a version that numbered with four digits
    (tmp_path / "10000.wav").write_bytes(b"newest")
    say_each(Speaker(WritingVoice(), tmp_path), ["next"])
    assert (tmp_path / "10000.wav").read_bytes() == b"newest"  # not written over by a restart
    assert (tmp_path / "00010001.wav").read_bytes() == b"next"


class EspeakLikeVoice(WritingVoice):
    """Writes as espeak-ng does: into a folder that is gone it writes nothing, and still exits 0."""

    def write(self, text: str, wav) -> bool:
        if Path(wav).parent.is_dir():
            Path(wav).write_bytes(text.encode())
        return Path(wav).exists()


def test_a_speak_to_folder_removed_while_running_is_said_once_and_again_when_it_is_back(tmp_path, caplog):
    # Before: espeak-ng could not write into the removed folder and every later line was lost without a word.
    from edge_rap.speech.tts import Speaker

    folder = tmp_path / "said"
    speaker = Speaker(EspeakLikeVoice(), folder)
    speaker.say("first")
    assert speaker.flush(60)
    shutil.rmtree(folder)
    for text in ("second", "third"):
        speaker.say(text)
        assert speaker.flush(60)
    assert [r.getMessage() for r in caplog.records] == [
        f"--speak-to {folder}: spoken lines not written there (No such file or directory) until it can be written"]
    folder.mkdir()
    say_each(speaker, ["fourth"])
    assert caplog.records[-1].getMessage() == f"--speak-to {folder}: spoken lines are written there again"
    assert sorted(p.name for p in folder.iterdir()) == ["00000002.wav", "speech.jsonl"]
    assert (folder / "00000002.wav").read_bytes() == b"fourth"


def test_an_index_line_a_full_disk_cut_short_leaves_nothing_for_the_next_to_join(tmp_path, monkeypatch):
    # Half a line was left in speech.jsonl; the next line was appended to it, and neither could be read.
    import errno

    from edge_rap.speech import tts

    real_write, full = os.write, [False]

    def half_then_full(fd, data):
        if full[0] and data.endswith(b"\n"):
            real_write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(tts.os, "write", half_then_full)
    speaker = tts.Speaker(WritingVoice(), tmp_path)
    say_each_open = lambda text: (speaker.say(text), speaker.flush(60))  # noqa: E731
    say_each_open("first")
    full[0] = True
    say_each_open("second")
    full[0] = False
    say_each(speaker, ["third"])
    index = [json.loads(x) for x in (tmp_path / "speech.jsonl").read_text().splitlines()]
    assert [e["text"] for e in index] == ["first", "third"]
    assert sorted(p.name for p in tmp_path.glob("*.wav")) == ["00000001.wav", "00000002.wav"]


def test_a_voice_that_makes_no_audio_is_said(tmp_path, caplog):
    from edge_rap.speech.tts import Speaker

    class Silent(WritingVoice):
        def write(self, text: str, wav) -> bool:
            return False  # piper timed out, espeak-ng failed

    say_each(Speaker(Silent(), tmp_path), ["Bo is home"])
    assert [r.getMessage() for r in caplog.records] == ["speech failed (writing): it made no audio for 'Bo is home'"]
    assert not list(tmp_path.iterdir())


class HeldVoice:
    """A voice that holds its first line until released, so that later lines wait in the Speaker's queue."""

    name = "held"

    def __init__(self):
        self.release = threading.Event()
        self.began = threading.Event()
        self.lines = 0

    def write(self, text: str, wav) -> bool:
        self.lines += 1
        if self.lines == 1:
            self.began.set()
            assert self.release.wait(60)
        Path(wav).write_bytes(b"RIFF")
        return True

    def close(self) -> None:
        pass


def test_an_announcement_never_replaces_a_waiting_answer(tmp_path):
    """`run --voice`: someone asks "where is Bo?" while the device speaks; the answer waits, and the camera's
    next announcement must not take its place (it did: the newest line won, and the answer was never said)."""
    from edge_rap.speech.tts import Speaker

    voice = HeldVoice()
    speaker = Speaker(voice, tmp_path)
    speaker.say("Mochi arrived")
    assert voice.began.wait(60)  # being spoken
    answer = speaker.say("Bo is in the kitchen", answer=True)
    late = speaker.say("Anya arrived")
    assert late.wait_audio(0) is None and late.settled.is_set()  # given way: whoever waits for it is not kept
    newer = speaker.say("Bo is on the sofa", answer=True)  # a newer answer still replaces the waiting one
    assert answer.settled.is_set() and answer.audio_at is None
    voice.release.set()
    assert newer.wait_audio(60) is not None
    assert speaker.flush(60)
    speaker.close()
    said = [json.loads(x)["text"] for x in (tmp_path / "speech.jsonl").read_text().splitlines()]
    assert said == ["Mochi arrived", "Bo is on the sofa"]


def test_a_line_still_being_made_when_the_user_speaks_is_not_said(tmp_path):
    # barge-in: the user spoke while piper made a long answer (seconds); the answer was said once made, over them
    from edge_rap.speech.tts import Speaker

    voice = HeldVoice()
    speaker = Speaker(voice, tmp_path)
    old = speaker.say("Bo is on the sofa, and has been there since this morning.", answer=True)
    assert voice.began.wait(60)  # being made
    speaker.interrupt()
    voice.release.set()
    new = speaker.say("Mochi is in the garden.", answer=True)
    assert new.wait_audio(60) is not None and speaker.flush(60)
    speaker.close()
    assert old.settled.is_set() and old.audio_at is None
    said = [json.loads(x) for x in (tmp_path / "speech.jsonl").read_text().splitlines()]
    assert [s["text"] for s in said] == ["Mochi is in the garden."]
    assert sorted(p.name for p in tmp_path.glob("*.wav")) == [said[0]["wav"]]


def test_an_answer_replaces_a_waiting_announcement(tmp_path):
    from edge_rap.speech.tts import Speaker

    voice = HeldVoice()
    speaker = Speaker(voice, tmp_path)
    speaker.say("Mochi arrived")
    assert voice.began.wait(60)
    waiting = speaker.say("Anya arrived")
    answer = speaker.say("Bo is in the kitchen", answer=True)
    assert waiting.settled.is_set() and waiting.audio_at is None
    voice.release.set()
    assert answer.wait_audio(60) is not None
    speaker.close(60)
    said = [json.loads(x)["text"] for x in (tmp_path / "speech.jsonl").read_text().splitlines()]
    assert said == ["Mochi arrived", "Bo is in the kitchen"]

# --- announcer ---------------------------------------------------------------------------------------------

def test_a_slow_vlm_never_piles_up_announcements_and_loses_no_event():
    from edge_rap.daemon.announce import Announcement, Announcer
    from edge_rap.types import Answer, Recognition

    release, asked, reported, said = threading.Event(), threading.Event(), [], []

    class SlowAssistant:
        def ask(self, question, image, recognition=None):
            asked.set()
            assert release.wait(60)
            return Answer(f"vlm line for {recognition.source}", "vlm", "caption")

    announcer = Announcer(reported.append, said.append, SlowAssistant())

    def job(k: int) -> Announcement:
        event = Event("arrived", f"c{k}", "cam0", float(k), 0.0, None, 0.7, f"template {k}")
        return Announcement([event], frame(k), Recognition(f"frame{k}", (4, 4)))

    announcer.submit(job(0))  # being generated (once the announcer's thread has started on it)
    assert asked.wait(60)
    announcer.submit(job(1))  # waits ...
    announcer.submit(job(2))  # ... and is replaced: reported at once with its template line, not spoken
    assert [(e.name, e.said) for e in reported] == [("c1", "template 1")]
    release.set()
    assert announcer.flush(60)
    announcer.close(60)
    assert [(e.name, e.said) for e in reported] == [("c1", "template 1"), ("c0", "vlm line for frame0"),
                                                    ("c2", "vlm line for frame2")]
    assert said == ["vlm line for frame0", "vlm line for frame2"]


# --- doctor ------------------------------------------------------------------------------------------------

def test_doctor_reports_every_key_and_the_command_for_a_missing_model(settings, tmp_path, run):
    from edge_rap.daemon.doctor import doctor

    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "video0").write_text("")
    report = doctor(settings, root=tmp_path)
    assert set(report) == {"profile", "reason", "providers", "cuda", "model_cache", "models", "memory", "event_log",
                           "sources", "audio", "backups", "missing"}
    assert report["sources"] == [str(tmp_path / "dev" / "video0")] and report["cuda"]["driver"] is None
    assert report["providers"]["chosen"][-1] == "CPUExecutionProvider"
    empty = doctor(type(settings)(settings.home, settings.memory, tmp_path / "no-models", settings.profile))
    embedder = next(m for m in empty["models"] if m["role"] == "embedder")
    assert not embedder["present"] and embedder["get"] == "edge-rap models prepare"
    rc, out, _ = run("doctor", "--json")
    assert rc == 0 and json.loads(out)["profile"] and json.loads(out)["missing"] == []


def test_doctor_exits_1_when_the_device_cannot_recognise_and_0_when_only_optional_parts_are_missing(
        settings, tmp_path, run, monkeypatch):
    # It exited 0 without the profile's embedder: a script checking the device saw it as ready.
    rc, out, _ = run("doctor")  # the embedder there; the VLM, whisper or faces may be missing: optional
    assert rc == 0 and out.splitlines()[-1] == "ready to recognise (anything else missing is optional)"
    monkeypatch.setenv("EDGE_RAP_MODELS", str(tmp_path / "no-models"))
    rc, out, _ = run("doctor")
    assert rc == 1 and out.splitlines()[-1] == "cannot recognise: missing embedder efficientnet-lite0-int8"
    # where it was looked for: a household that moved EDGE_RAP_HOME has `make demo`'s models elsewhere
    assert f"model cache: {tmp_path / 'no-models'} (EDGE_RAP_MODELS, else $EDGE_RAP_HOME/models)" in out.splitlines()
    rc, out, _ = run("doctor", "--json")
    assert rc == 1 and json.loads(out)["missing"] == ["embedder efficientnet-lite0-int8"]


def test_doctor_says_when_other_accounts_can_read_the_memory(settings, run):
    # A memory an older edge_rap made is 0755 under the usual umask (new ones are 0700): any account on the device
    # could read the household's photos and sightings, and nothing said so
    settings.memory.mkdir(parents=True, exist_ok=True)
    settings.memory.chmod(0o755)
    rc, out, _ = run("doctor")
    assert rc == 0 and f"other accounts on the device can read it: chmod 700 {settings.memory}" in out
    assert json.loads(run("doctor", "--json")[1])["memory"]["readable_by_others"] is True
    settings.memory.chmod(0o700)
    rc, out, _ = run("doctor")
    assert rc == 0 and "other accounts" not in out
    assert json.loads(run("doctor", "--json")[1])["memory"]["readable_by_others"] is False


def test_doctor_on_a_read_only_mount_says_to_remount_not_only_chmod(settings, run, monkeypatch):
    # a memory folder on a read-only mount was told `chmod 700`, which fails there (EROFS)
    import types

    import edge_rap.daemon.doctor as doctor

    settings.memory.mkdir(parents=True, exist_ok=True)
    settings.memory.chmod(0o755)
    real_statvfs = os.statvfs

    def statvfs(path):
        found = real_statvfs(path)
        return types.SimpleNamespace(f_flag=found.f_flag | os.ST_RDONLY) if Path(path) == settings.memory else found

    monkeypatch.setattr(doctor.os, "statvfs", statvfs)
    rc, out, _ = run("doctor")
    line = next(x for x in out.splitlines() if x.startswith("memory:"))
    assert rc == 0 and "read-only (mounted read-only: remount it read-write, or keep the memory on another disk)" \
        in line and f"chmod 700 {settings.memory} once it is mounted read-write" in line, line
    memory = json.loads(run("doctor", "--json")[1])["memory"]
    assert memory["read_only"] is True and memory["read_only_mount"] is True


def test_doctor_finds_an_embedder_given_by_path_as_the_commands_that_load_it_do(settings, run, tmp_path, monkeypatch):
    # a relative folder with a manifest was said missing (looked for in the cache), a detector's folder present
    shutil.copytree(settings.models / "efficientnet-lite0-int8", tmp_path / "mine")
    (tmp_path / "det").mkdir()
    (tmp_path / "det" / "manifest.json").write_text(json.dumps({"name": "det", "role": "detector", "files": {}}))
    monkeypatch.chdir(tmp_path)
    for given, rc_wanted, said in (("./mine", 0, "(present)"), ("mine", 0, "(present)"),
                                   ("./det", 1, "model det is a detector, not an image embedder"),
                                   (str(tmp_path / "det"), 1, "model det is a detector, not an image embedder"),
                                   # its .onnx, not its folder: said as the commands say it, not "export it"
                                   (str(next((tmp_path / "mine").glob("*.onnx"))), 1, "a file, give its folder, ")):
        rc, out, _ = run("doctor", "--embedder", given)
        line = next(x for x in out.splitlines() if x.startswith("model embedder:"))
        assert rc == rc_wanted and said in line, (given, line)


def test_doctor_names_the_caches_folder_for_another_job_given_as_embedder(tmp_path, run, monkeypatch):
    # `--embedder facenet-vggface2` (or its folder) is named the face embedder by every command that recognises;
    # doctor alone said "missing: export it into the model cache (tools/export_clip.py, see README)"
    models = tmp_path / "models"
    (models / "facenet-vggface2").mkdir(parents=True)
    monkeypatch.setenv("EDGE_RAP_MODELS", str(models))
    for given in ("facenet-vggface2", str(models / "facenet-vggface2")):
        rc, out, _ = run("doctor", "--embedder", given)
        line = next(x for x in out.splitlines() if x.startswith("model embedder:"))
        assert rc == 1 and "'facenet-vggface2' in the model cache" in line and "is the face embedder" in line, line


def test_doctor_says_a_memory_it_cannot_write_is_refused_by_run_serve_and_pair(settings, run, monkeypatch):
    # a memory on a read-only mount: "ready to recognise", and nothing said of run, serve and pair refusing it
    import edge_rap.daemon.doctor as doctor

    settings.memory.mkdir(parents=True, exist_ok=True)
    real_access = os.access
    monkeypatch.setattr(doctor.os, "access", lambda path, mode: (mode != os.W_OK or Path(path) != settings.memory)
                        and real_access(path, mode))  # (root may write a folder whatever its mode)
    rc, out, _ = run("doctor")
    assert rc == 0 and "read-only: read by concepts" in out and "refused by run, serve, pair" in out
    assert json.loads(run("doctor", "--json")[1])["memory"]["read_only"] is True
    monkeypatch.setattr(doctor.os, "access", real_access)
    assert "read-only" not in run("doctor")[1]
    assert json.loads(run("doctor", "--json")[1])["memory"]["read_only"] is False


def test_doctor_says_a_memory_folder_that_is_not_one_and_gives_no_chmod_for_it(settings, tmp_path, capsys):
    # doctor --memory of a file, or of a folder of other files (a mistyped path), said "(none yet)" and advised
    # `chmod 700` of it; every other command refuses them as no memory
    from edge_rap import cli

    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a memory")
    documents = tmp_path / "documents"
    documents.mkdir(mode=0o755)
    (documents / "letter.txt").write_text("not a memory")
    for path, why in ((a_file, "is a file, not a memory folder"), (documents, "not an edge-rap memory")):
        path.chmod(0o755)
        capsys.readouterr()
        assert cli.main(["doctor", "--memory", str(path)]) == 1
        out = capsys.readouterr().out
        assert "none yet" not in out and "chmod" not in out and f"cannot recognise: {path}: {why}" in out
        assert cli.main(["doctor", "--memory", str(path), "--json"]) == 1
        memory = json.loads(capsys.readouterr().out)["memory"]
        assert why in memory["problem"] and memory["readable_by_others"] is False


def test_doctor_says_in_one_line_each_what_another_accounts_memory_keeps_from_it(settings, run, monkeypatch):
    # doctor run as a person on a memory the daemon keeps as its own account (`edge-rap`) stopped with a traceback
    # (PermissionError), the very trouble it is there to tell
    from refused import refuse_reading

    run("remember", "bo", scene_file(settings.home, 1))
    EventLog(settings.memory).close()  # (an event log too)
    owner = pwd.getpwuid(settings.memory.stat().st_uid).pw_name
    refuse_reading(monkeypatch, settings.memory)
    rc, out, _ = run("doctor")
    refusal = f"{settings.memory}: this account ({owner}) may not read it: run the command as the account that " \
              f"owns the memory, or with sudo -u {owner}"
    assert rc == 1 and out.splitlines()[-1] == f"cannot recognise: {refusal}"
    assert f"memory: {settings.memory} (cannot be read)" in out and f"event log: {refusal}" in out
    assert "model embedder: efficientnet-lite0-int8 (present)" in out  # the other sections still report
    for command in (("concepts",), ("events",), ("events", "--name", "bo")):
        rc, out, err = run(*command)
        assert (rc, out, err) == (2, "", f"edge-rap: {refusal}\n")


def test_doctor_says_an_event_log_another_account_keeps_from_it(settings, run, monkeypatch):
    # its own file, 0600 in a folder this account may list: the reader's copy of it stopped with a traceback
    from refused import refuse_reading

    run("remember", "bo", scene_file(settings.home, 1))
    EventLog(settings.memory).close()
    refuse_reading(monkeypatch, settings.memory, ("events.sqlite",))
    rc, out, _ = run("doctor")
    assert rc == 0 and f"event log: {settings.memory / 'events.sqlite'}: this account" in out
    assert f"memory: {settings.memory} (1 concept)" in out
    rc, _, err = run("events")
    assert rc == 2 and err.startswith(f"edge-rap: {settings.memory / 'events.sqlite'}: this account (")


def test_doctor_says_a_damaged_embedder_cannot_recognise(settings, model_cache, tmp_path):
    # "ready to recognise" with the int8 file cut short: every recognize then refused it
    from edge_rap.daemon.doctor import doctor, format_doctor

    cache = tmp_path / "models"
    shutil.copytree(model_cache / "efficientnet-lite0-int8", cache / "efficientnet-lite0-int8")
    onnx = next((cache / "efficientnet-lite0-int8").glob("*.onnx"))
    onnx.write_bytes(onnx.read_bytes()[:1000])
    report = doctor(type(settings)(settings.home, settings.memory, cache, settings.profile), root=tmp_path)
    assert report["missing"] == ["embedder efficientnet-lite0-int8 (damaged)"]
    embedder = next(m for m in report["models"] if m["role"] == "embedder")
    assert not embedder["present"] and "does not match its sha256" in embedder["damaged"]
    text = format_doctor(report).splitlines()
    assert "model embedder: efficientnet-lite0-int8 (damaged: edge-rap models prepare)" in text
    assert text[-1] == "cannot recognise: missing embedder efficientnet-lite0-int8 (damaged)"


def test_doctor_says_a_memory_that_needs_a_reindex_cannot_recognise(settings, tmp_path, run):
    # After an upgrade (a new export of the embedder, a memory of an older schema) doctor said "ready to
    # recognise" while every recognize refused the memory, saying to run `edge-rap reindex`.
    import sqlite3

    from edge_rap.memory.store import Store

    rc, out, _ = run("doctor")
    assert rc == 0 and f"memory: {settings.memory} (none yet)" in out.splitlines()
    store = Store(settings.memory)
    with store.transaction() as db:  # the space as an older export of the default made it
        db.execute("INSERT INTO spaces (name, model, fingerprint, dim, generation) VALUES "
                   "('efficientnet-lite0-int8', 'efficientnet-lite0-int8', ?, 1280, 0)", ("e6fa3773" * 8,))
    store.close()
    rc, out, _ = run("doctor")
    assert rc == 1 and f"memory: {settings.memory} (0 concepts)" in out.splitlines()
    assert out.splitlines()[-1].startswith("cannot recognise: the memory's 'efficientnet-lite0-int8' vectors were "
                                           "made by another model (efficientnet-lite0-int8, 1280 dims, fingerprint "
                                           "e6fa3773e6fa)") and out.endswith("run `edge-rap reindex`\n")
    db = sqlite3.connect(settings.memory / "memory.sqlite")
    db.execute("PRAGMA user_version = 2")
    db.close()
    rc, out, _ = run("doctor", "--json")  # an older schema is read as upgraded: the vectors are still another's
    memory = json.loads(out)["memory"]
    assert rc == 1 and memory["concepts"] == 0 and "made by another model" in memory["problem"]


def test_doctor_says_a_memory_another_embedder_made_cannot_recognise(settings, run):
    # Every recognize refuses it unless told that embedder; doctor said "ready to recognise"
    from edge_rap.memory.store import Store

    store = Store(settings.memory)
    with store.transaction() as db:
        db.execute("INSERT INTO spaces (name, model, fingerprint, dim, generation) VALUES "
                   "('clip-vit-b32', 'clip-vit-b32', ?, 512, 0)", ("ab" * 32,))
    store.close()
    rc, out, _ = run("doctor")
    assert rc == 1 and out.splitlines()[-1].startswith("cannot recognise: ")
    assert out.splitlines()[-1].endswith("the memory was made with clip-vit-b32, not efficientnet-lite0-int8: run "
                                         "`edge-rap reindex --embedder efficientnet-lite0-int8` to re-embed it, or "
                                         "use --embedder clip-vit-b32")


def test_doctor_says_a_memory_whose_faces_another_facenet_made_cannot_recognise(settings, tmp_path, run):
    # Every recognize refuses such a memory (its people are compared by face), as another embedder's.
    from edge_rap.daemon.doctor import faces_installed
    from edge_rap.memory.store import Store
    from edge_rap.perceive.faces import FACE_SPACE, facenet_graph, facenet_space

    if not faces_installed():
        pytest.skip("the face models are not installed (pip install 'edge_rap[faces]')")
    store = Store(settings.memory)
    with store.transaction() as db:
        db.execute("INSERT INTO spaces (name, model, fingerprint, dim, generation) VALUES (?, 'facenet-vggface2', ?, "
                   "512, 0)", (FACE_SPACE, facenet_space(facenet_graph()).fingerprint))
    rc, out, _ = run("doctor")
    assert rc == 0 and out.splitlines()[-1] == "ready to recognise (anything else missing is optional)"
    with store.transaction() as db:
        db.execute("UPDATE spaces SET fingerprint = ? WHERE name = ?", ("0" * 64, FACE_SPACE))
    store.close()
    rc, out, _ = run("doctor")
    assert rc == 1 and out.splitlines()[-1].startswith("cannot recognise: the memory's 'faces-facenet' vectors were "
                                                       "made by another model")


def test_doctor_says_the_default_embedder_is_an_older_export(settings, model_cache, tmp_path):
    # Still used (with a warning each start), but a household upgrading is told the two commands that renew it.
    from edge_rap.daemon.doctor import doctor, format_doctor

    cache = tmp_path / "models"
    shutil.copytree(model_cache / "efficientnet-lite0-int8", cache / "efficientnet-lite0-int8")
    manifest = cache / "efficientnet-lite0-int8" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "export_version": 4}))
    report = doctor(type(settings)(settings.home, settings.memory, cache, settings.profile), root=tmp_path)
    assert report["missing"] == [] and next(m for m in report["models"] if m["role"] == "embedder")["outdated"]
    assert "model embedder: efficientnet-lite0-int8 (present, an older export: run `edge-rap models prepare`, then " \
           "`edge-rap reindex`)" in format_doctor(report).splitlines()


@pytest.mark.parametrize("vlm, get", [
    ("smolvlm2-500m", "edge-rap models pull smolvlm2-500m"),  # a registry name: pulling it is the fix
    ("/nonexistent/x.gguf", "no such file: fix [vlm] model"),
    ("nosuch-vlm", "not a model `edge-rap models pull` knows"),
])
def test_doctor_suggests_a_fix_that_works_for_each_kind_of_missing_model(vlm, get, settings, tmp_path):
    from dataclasses import replace

    from edge_rap.daemon.doctor import doctor

    profile = replace(settings.profile, embedder="nosuch-embedder", vlm=replace(settings.profile.vlm, model=vlm))
    rows = {m["role"]: m for m in doctor(replace(settings, models=tmp_path / "no-models", profile=profile))["models"]}
    assert not rows["vlm"]["present"] and rows["vlm"]["get"].startswith(get)
    assert not rows["embedder"]["present"] and "models prepare" not in rows["embedder"]["get"]


def test_doctor_says_no_microphone_when_none_can_be_opened(settings, monkeypatch):
    # The package alone is not a microphone: without PortAudio or an input device `listen --mic` fails.
    import sys
    import types

    from edge_rap.daemon.doctor import doctor, format_doctor

    class PortAudioError(Exception):
        pass

    def no_input(device=None, kind=None):
        raise PortAudioError("Error querying device -1")

    fake = types.SimpleNamespace(query_devices=no_input, PortAudioError=PortAudioError)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    audio = doctor(settings)["audio"]
    assert audio["microphone"] is False
    assert audio["microphone_note"] == "no microphone: no audio input device (Error querying device -1)"
    assert "microphone input: no (no microphone: no audio input device" in format_doctor(doctor(settings))
    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(
        query_devices=lambda device=None, kind=None: {"default_samplerate": 48000.0}, PortAudioError=PortAudioError))
    assert doctor(settings)["audio"] == {**audio, "microphone": True, "microphone_note": None}


def test_piper_stays_running_between_lines_and_numbering_goes_on_in_the_same_folder(tmp_path):
    from edge_rap.speech.tts import Speaker, piper_voice

    voice = piper_voice()
    if voice is None:
        pytest.skip("piper not installed (pip install 'edge_rap[piper]')")
    speaker = Speaker(voice, tmp_path)
    speaker.say("first line")
    assert speaker.flush(120)
    process = voice._process
    speaker.say("second line")
    assert speaker.flush(120)
    assert voice._process is process and process.poll() is None  # one process, the voice loaded once
    speaker.close()
    assert process.poll() is not None  # closing the speaker ends it
    again = Speaker(voice, tmp_path)  # a second run into the same folder
    again.say("third line")
    assert again.flush(120)
    again.close()
    assert sorted(p.name for p in tmp_path.glob("*.wav")) == ["00000001.wav", "00000002.wav", "00000003.wav"]
    with wave.open(str(tmp_path / "00000003.wav")) as w:
        assert w.getnframes() > w.getframerate() * 0.3


def test_run_json_gives_every_event_the_same_keys():
    # a script reading `run --json` lines: a "left" (no box, score or line) and an arrival without --snapshots
    # have the keys an arrival with a snapshot has, null where they have none, as `events --json` gives them
    import io

    from edge_rap.daemon.service import printer

    out = io.StringIO()
    report = printer(out, as_json=True)
    report(Event("arrived", "bo", "cam0", 1.0, 1700000000.0, Box(1, 2, 30, 40), 0.8, "hello <bo>", "snaps/1.jpg"))
    report(Event("arrived", "bo", "cam0", 2.0, 1700000001.0, Box(1, 2, 30, 40), 0.8, "hello <bo>"))
    report(Event("left", "bo", "cam0", 3.0, 1700000002.25))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [set(e) for e in lines] == [{"type", "name", "camera", "time_s", "wall", "box", "score", "said",
                                        "snapshot"}] * 3  # `wall`, as `events --json` has it (it had none)
    assert lines[2] == {"type": "left", "name": "bo", "camera": "cam0", "time_s": 3.0, "wall": 1700000002.25,
                        "box": None, "score": None, "said": None, "snapshot": None}


def test_run_refuses_a_detector_it_cannot_open_before_any_frame(tmp_path):
    # `run --detector NAME` with no such model watched on: the error at every frame, nothing recognised, exit 0
    import io

    from serve_support import fake_settings

    from edge_rap.daemon.service import run_daemon

    (tmp_path / "frames").mkdir()
    config = run_config({"sources": [str(tmp_path / "frames")], "detector": "no-such-detector", "mute": True}, None)
    with pytest.raises(EdgeRapError, match="'no-such-detector' is not in the model cache"):
        run_daemon(fake_settings(tmp_path), config, threading.Event(), io.StringIO())


def test_a_folder_given_as_the_settings_file_is_said_so(tmp_path):
    """`run --config /etc/edge-rap/` said "[Errno 21] Is a directory": Python's words, not the user's mistake."""
    with pytest.raises(EdgeRapError) as e:
        load_run_file(tmp_path)
    assert str(e.value) == f"{tmp_path}: is a folder, not a TOML settings file"


def test_a_projector_without_its_model_is_refused_as_ask_and_listen_refuse_it(tmp_path):
    # `run --mmproj P.gguf` without --vlm was quietly ignored on a profile with no VLM: template lines, no word why
    with pytest.raises(EdgeRapError, match="^--mmproj goes with --vlm"):
        run_config({"mmproj": "p.gguf", "sources": ["0"]}, None)
    settings = tmp_path / "run.toml"
    settings.write_text('[daemon]\nvlm = "m.gguf"\n')  # the model from the file, its projector from the command line
    assert run_config({"mmproj": "p.gguf", "sources": ["0"]}, settings).mmproj == "p.gguf"


def test_tls_files_without_serve_are_refused_as_wake_without_voice_is():
    # `run --tls-cert C --tls-key K` without --serve watched on, the files not even looked at: no word that
    # nothing was served
    with pytest.raises(EdgeRapError, match=r"^--tls-cert and --tls-key go with --serve"):
        run_config({"tls_cert": "c.pem", "tls_key": "k.pem", "sources": ["0"]}, None)
    assert run_config({"tls_cert": "c.pem", "tls_key": "k.pem", "serve": "8765", "sources": ["0"]}, None).tls_cert


def _watched_by_a_dead_daemon(tmp_path, host: str | None = None, alive: float = 160.0) -> EventLog:
    """A log whose daemon logged Bo's arrival and was then killed (its process gone: another boot's identity; its
    last sign of life at `alive`), with no daemon started since to close the visit."""
    import socket
    import sqlite3

    log = EventLog(tmp_path)
    log.begin_watch()
    log.still_watching()
    log.add(Event("arrived", "bo", "cam0", 1.0, 100.0))
    db = sqlite3.connect(tmp_path / "events.sqlite")
    db.execute("UPDATE watches SET identity = 'another-boot:1', alive = ?, host = ?",
               (alive, host or socket.gethostname()))
    db.commit()
    db.close()
    return log


def test_a_visit_of_a_daemon_killed_since_is_not_said_to_go_on(tmp_path):
    # "where is Bo?" said "<bo> is on the cam0 camera now" until a daemon was started again, though nothing had
    # watched that camera since the daemon was killed.
    _watched_by_a_dead_daemon(tmp_path)
    seen = EventLog(tmp_path, readonly=True).last_seen("bo")
    assert (seen.kind, seen.camera, seen.wall) == ("left", "cam0", 160.0)  # at its last sign of life
    assert [e.kind for e in EventLog(tmp_path, readonly=True).query()] == ["arrived"]  # the log itself unchanged


def test_a_visit_of_a_running_daemon_or_of_another_hosts_goes_on(tmp_path):
    log = EventLog(tmp_path)
    log.begin_watch()
    log.add(Event("arrived", "bo", "cam0", 1.0, 100.0))
    assert EventLog(tmp_path, readonly=True).last_seen("bo").kind == "arrived"  # this process: running
    _watched_by_a_dead_daemon(tmp_path / "other", host="another-host", alive=time.time() - 60)
    assert EventLog(tmp_path / "other", readonly=True).last_seen("bo").kind == "arrived"  # its watch beat just now


def test_a_visit_of_another_hosts_daemon_whose_watch_fell_silent_loses_to_a_newer_sighting(tmp_path):
    # A daemon of another host (the memory on a shared drive) died with Bo's visit to cam0 open: this host cannot
    # ask whether its process runs, so "where is Bo?" said "<bo> is on the first camera now" for ever, over every
    # sighting since on the cameras of this host.
    from types import SimpleNamespace

    from edge_rap.daemon.events import SILENT_S
    from edge_rap.speech.reply import where_is

    said_at = time.time() - SILENT_S - 60  # its last sign of life
    _watched_by_a_dead_daemon(tmp_path, host="another-host", alive=said_at)
    home = SimpleNamespace(events=EventLog(tmp_path, readonly=True), concepts=lambda: [BO])
    assert where_is(home, "bo", None, now=said_at + 120) == "I last saw <bo> on the first camera 2 minutes ago."
    here = EventLog(tmp_path)
    here.begin_watch()  # (another host's watch is not this daemon's to close)
    here.add(Event("arrived", "bo", "den", 1.0, said_at + 60))
    here.add(Event("left", "bo", "den", 5.0, said_at + 65))
    assert where_is(home, "bo", None, now=said_at + 125) == "I last saw <bo> on the den camera 1 minute ago."
    assert [e.kind for e in EventLog(tmp_path, readonly=True).query(name="bo")] == ["arrived", "arrived", "left"]


def test_a_visit_ended_at_its_daemons_last_sign_of_life_is_the_latest_sighting_where_it_lasted_longest(tmp_path):
    # Bo walks from the den to the porch, whose daemon (another host's) logs the arrival before the den logs Bo
    # leaving, then dies with Bo still there: its visit ends at its last sign of life, two minutes after the den's
    # "left", yet "where is Bo?" named the den, whose "left" was logged after the porch's arrival.
    import sqlite3
    from types import SimpleNamespace

    from edge_rap.daemon.events import SILENT_S
    from edge_rap.speech.reply import where_is

    said_at = time.time() - SILENT_S - 60  # the porch daemon's last sign of life
    porch, den = EventLog(tmp_path), EventLog(tmp_path)
    porch.begin_watch()
    den.begin_watch()
    den.add(Event("arrived", "bo", "den", 1.0, said_at - 100))
    porch.add(Event("arrived", "bo", "porch", 1.0, said_at - 96))
    den.add(Event("left", "bo", "den", 5.0, said_at - 94))
    db = sqlite3.connect(tmp_path / "events.sqlite")
    db.execute("UPDATE watches SET host = 'another-host', alive = ? WHERE id = ?", (said_at, porch.watch))
    db.commit()
    db.close()
    home = SimpleNamespace(events=EventLog(tmp_path, readonly=True), concepts=lambda: [BO])
    assert where_is(home, "bo", None, now=said_at + 120) == "I last saw <bo> on the porch camera 2 minutes ago."


def test_of_the_events_logged_the_newest_is_the_latest_sighting_whatever_a_hosts_clock_says(tmp_path):
    # (A visit ended at its daemon's last sign of life is weighed by the time; the events logged keep the log's
    # order: the porch's host, an hour ahead, logged its "left" before the den's.)
    from types import SimpleNamespace

    from edge_rap.speech.reply import where_is

    log = EventLog(tmp_path)
    log.begin_watch()
    for camera, wall in (("porch", 4600.0), ("den", 1100.0)):
        log.add(Event("arrived", "bo", camera, 1.0, wall))
        log.add(Event("left", "bo", camera, 5.0, wall + 5))
    home = SimpleNamespace(events=log, concepts=lambda: [BO])
    assert where_is(home, "bo", None, now=1165.0) == "I last saw <bo> on the den camera 1 minute ago."


def test_a_visit_of_a_daemon_whose_process_cannot_be_told_from_its_pids_next_runs_while_its_watch_beats(tmp_path):
    # A watch registered where /proc gives no process identity (not Linux): after a power cut its pid may be another
    # process's, alive, and the visit went on for ever.
    import sqlite3

    from edge_rap.daemon.events import SILENT_S

    _watched_by_a_dead_daemon(tmp_path)
    for alive, kind in ((time.time() - 60, "arrived"), (time.time() - SILENT_S - 60, "left")):
        db = sqlite3.connect(tmp_path / "events.sqlite")
        db.execute("UPDATE watches SET identity = NULL, pid = ?, alive = ?", (os.getpid(), alive))
        db.commit()
        db.close()
        assert EventLog(tmp_path, readonly=True).last_seen("bo").kind == kind


def test_a_concept_that_walked_to_another_camera_is_said_to_be_there(tmp_path):
    # Bo walks from the den to the porch: both cameras see Bo at the door, and the den's "left" is logged after
    # the porch's arrival. "Where is Bo?" answered from the latest event, "I last saw <bo> on the den camera 10
    # minutes ago", and "is anyone home?" that nobody was, of Bo on the porch all along.
    from types import SimpleNamespace

    from edge_rap.speech.reply import where_is
    from edge_rap.speech.who import WhoQuestion, answer_who

    log = EventLog(tmp_path)
    log.begin_watch()
    log.add(Event("arrived", "bo", "den", 1.0, 1000.0))
    log.add(Event("arrived", "bo", "porch", 5.0, 1004.0))
    log.add(Event("left", "bo", "den", 5.5, 1005.5))
    home = SimpleNamespace(events=EventLog(tmp_path, readonly=True), concepts=lambda: [BO])
    assert where_is(home, "bo", None, now=1600.0) == ("<bo> is on the porch camera now: "
                                                      "I saw <bo> arrive 10 minutes ago.")
    assert answer_who(home, WhoQuestion(today=False), None, now=1600.0)[0] == "<bo> is on the porch camera now."
    log.add(Event("left", "bo", "porch", 9.0, 1700.0))  # gone from both: the latest sighting
    assert where_is(home, "bo", None, now=1760.0) == "I last saw <bo> on the porch camera 1 minute ago."


def test_a_visit_whose_watch_is_gone_ended_with_its_arrival(tmp_path):
    import sqlite3

    _watched_by_a_dead_daemon(tmp_path)
    db = sqlite3.connect(tmp_path / "events.sqlite")
    db.execute("DELETE FROM watches")
    db.commit()
    db.close()
    seen = EventLog(tmp_path, readonly=True).last_seen("bo")
    assert (seen.kind, seen.wall) == ("left", 100.0)


def test_an_event_log_opened_while_the_drive_was_read_only_takes_events_once_it_is_writable(tmp_path, monkeypatch):
    # A drive mounted back read-only, then read-write again: the daemon's connection, opened read-only by SQLite,
    # refused every event ("kept to log when it can be written") until `run` was restarted.
    import edge_rap.daemon.events as events

    EventLog(tmp_path).close()
    writable, real = [], events._connect

    def as_sqlite_opens_it(target, uri=False):  # read-only where the file cannot be written
        return real(target, uri) if writable else real(f"{Path(target).resolve().as_uri()}?mode=ro", uri=True)

    monkeypatch.setattr(events, "_connect", as_sqlite_opens_it)
    monkeypatch.setattr("edge_rap.sqlite_threads.os.access", lambda path, mode: bool(writable))
    log = EventLog(tmp_path)
    event = Event("arrived", "bo", "porch", 0.0, 1.0)
    with pytest.raises(EdgeRapError, match="readonly"):
        log.add(event)
    writable.append(True)  # remounted read-write
    log.add(event)
    assert [e.name for e in log.query()] == ["bo"]


def test_a_settings_file_edited_while_run_runs_is_said_to_wait_for_a_restart(tmp_path, caplog):
    # `run` reads --config once: a camera added to /etc/edge-rap/run.toml, or a new cooldown, changed nothing, and
    # nothing said so; an edit a restart would refuse (the service failing over and over) was found at the restart.
    from edge_rap.daemon.settings_file import SettingsFile

    path = tmp_path / "run.toml"
    path.write_text("[daemon]\ncooldown = 30\n")
    watched = SettingsFile.before_reading(path)
    watched.look()
    assert caplog.messages == [] and watched.status() == ""  # unchanged
    path.write_text("[daemon]\ncooldown = 120\n")  # (another size: two writes within a clock tick share a time)
    watched.look()
    watched.look()  # once per edit
    assert caplog.messages == [f"{path} changed; run goes on with the settings it read at its start: restart run to "
                               "use it (`systemctl restart edge-rap` for the service)"]
    assert watched.status() == "; run.toml changed: restart to use it"
    caplog.clear()
    path.write_text("[daemon]\ncooldwn = 60\n")
    watched.look()
    assert caplog.messages == [f"{path} changed; run goes on with the settings it read at its start: a restart would "
                               "refuse it as it is now: unknown key 'cooldwn' in [daemon]"]
    caplog.clear()
    path.write_text('[daemon]\ncooldown = 30\nconfirm = "two"\n')
    watched.look()
    assert caplog.messages[0].endswith("a restart would refuse it as it is now: [daemon]: confirm must be a whole "
                                       "number, not 'two'")


def test_the_status_line_does_not_tell_to_restart_into_a_settings_file_a_restart_would_refuse(tmp_path):
    # The file deleted or broken while run runs: the log said a restart would refuse it, while `systemctl status`
    # said "run.toml changed: restart to use it", and the restart it told of failed over and over.
    from edge_rap.daemon.settings_file import SettingsFile

    path = tmp_path / "run.toml"
    path.write_text("[daemon]\ncooldown = 30\n")
    watched = SettingsFile.before_reading(path)
    path.unlink()
    watched.look()
    assert watched.status() == "; run.toml changed: a restart would refuse it (see the log)"
    path.write_text("[daemon]\ncooldown = 120\n")  # mended
    watched.look()
    assert watched.status() == "; run.toml changed: restart to use it"


def test_a_settings_file_edit_undone_or_a_file_touched_needs_no_restart(tmp_path, caplog):
    # An edit undone (an editor's undo and save, a cooldown tried and put back) left "run.toml changed: restart to
    # use it" on the status line for ever; a file touched, or written again the same, was said as an edit.
    import os

    from edge_rap.daemon.settings_file import SettingsFile

    path = tmp_path / "run.toml"
    path.write_text("[daemon]\ncooldown = 30\n")
    watched = SettingsFile.before_reading(path)
    os.utime(path, ns=(1, 1))
    watched.look()
    assert caplog.messages == [] and watched.status() == ""
    path.write_text("[daemon]\ncooldown = 120\n")
    watched.look()
    assert watched.status() == "; run.toml changed: restart to use it"
    path.write_text("[daemon]\ncooldown = 120\n")  # saved again, unchanged
    os.utime(path, ns=(2, 2))
    watched.look()
    assert len(caplog.messages) == 1
    path.write_text("[daemon]\ncooldown = 30\n")  # put back
    watched.look()
    assert caplog.messages[1] == f"{path} is again as run read it at its start: no restart is needed"
    assert watched.status() == ""


def test_a_pipe_as_the_settings_file_is_not_waited_on(tmp_path):
    # Its bytes are compared to tell an edit: read as a file, a FIFO put in its place (or given as --config, which
    # `run` then refuses in one line) blocked the frame loop until something wrote into it.
    import os

    from edge_rap.daemon.settings_file import SettingsFile

    def unblocked(work):  # (a read that waits on the pipe is let go, and fails the test, not the whole run)
        done = []
        worker = threading.Thread(target=lambda: done.append(work()), daemon=True)
        worker.start()
        worker.join(10)
        if worker.is_alive():
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            worker.join()
            pytest.fail("the settings file's pipe was waited on")
        return done[0]

    path = tmp_path / "run.toml"
    os.mkfifo(path)
    assert unblocked(lambda: SettingsFile.before_reading(path)).read is None
    path.unlink()
    path.write_text("[daemon]\ncooldown = 30\n")
    watched = SettingsFile.before_reading(path)
    path.unlink()
    os.mkfifo(path)
    unblocked(watched.look)
    assert watched.status() == "; run.toml changed: a restart would refuse it (see the log)"


def test_a_settings_file_edited_as_run_reads_it_is_said(tmp_path, monkeypatch, caplog):
    # Its bytes were kept before its mtime, size and inode: an edit in between matched the version noted, and was
    # never said.
    from edge_rap.daemon import settings_file

    path = tmp_path / "run.toml"
    path.write_text("[daemon]\ncooldown = 30\n")
    read = settings_file._content

    def edited_as_read(p):
        content = read(p)
        p.write_text("[daemon]\ncooldown = 120\n")
        return content

    monkeypatch.setattr(settings_file, "_content", edited_as_read)
    watched = settings_file.SettingsFile.before_reading(path)
    monkeypatch.setattr(settings_file, "_content", read)
    watched.look()
    assert watched.status() == "; run.toml changed: restart to use it"


def test_an_event_logged_while_the_prune_runs_leaves_no_snapshot_that_no_event_names(tmp_path):
    """The prune read the snapshots of the events it would delete, then deleted the events in a second statement: an
    event logged between (by another process) at an old event's place made that one prunable, and it went without
    its snapshot's file, which no event named any more (`forget` never finds it). One transaction: the other writer
    waits for the prune (here it is refused at once, and logs after it)."""
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    old = snaps / "1600000000000-0123abcd.jpg"
    old.write_bytes(b"jpeg")
    log = EventLog(tmp_path / "memory")
    now = time.time()
    log.add(Event("left", "bo", "porch", 1.0, now - 400 * 86400.0, snapshot=str(old)))  # bo's only sighting: kept
    other = sqlite3.connect(str(log.path), timeout=0, isolation_level=None)
    waited = []

    def between(statement: str) -> None:
        if statement.startswith("DELETE FROM events"):  # another daemon logs bo on the porch now
            try:
                other.execute("INSERT INTO events (kind, name, camera, time_s, wall) VALUES "
                              "('arrived', 'bo', 'porch', 2.0, ?)", (now,))
            except sqlite3.OperationalError:  # (locked: it waits for the prune, and logs after it)
                waited.append(now)

    log._db().set_trace_callback(between)
    log.prune(now - 365 * 86400.0)
    log._db().set_trace_callback(None)
    for wall in waited:
        other.execute("INSERT INTO events (kind, name, camera, time_s, wall) VALUES "
                      "('arrived', 'bo', 'porch', 2.0, ?)", (wall,))
    named = {Path(e.snapshot) for e in log.query() if e.snapshot}
    assert set(snaps.iterdir()) == named


def test_a_start_closes_the_visits_of_another_hosts_daemon_silent_for_a_day_and_forgets_its_watch(tmp_path):
    # A memory on a shared drive moved from another device, whose run was killed there: its watch row and Bo's open
    # visit stayed for good (only this host's dead daemons were closed), the visit read as ended by every reader.
    gone = time.time() - 2 * 86400.0  # (ABANDONED_S: a day)
    _watched_by_a_dead_daemon(tmp_path, host="another-host", alive=gone)
    _watched_by_a_dead_daemon(tmp_path / "beats", host="another-host", alive=time.time() - 60)
    closed = EventLog(tmp_path).begin_watch()
    assert [(e.kind, e.name, e.camera, e.wall) for e in closed] == [("left", "bo", "cam0", gone)]
    assert EventLog(tmp_path, readonly=True)._rows("SELECT host FROM watches", ()) == [(socket.gethostname(),)]
    assert EventLog(tmp_path / "beats").begin_watch() == []  # its watch beat a minute ago: it may still run


def test_a_daemon_whose_watch_another_hosts_start_deleted_puts_it_back_at_its_next_beat(tmp_path):
    # Another host's daemon silent for a day (hung on its drive, or its clock behind) had its row deleted by a start
    # here; when it went on, its beats updated no row, and every visit it logged after read as ended at its arrival.
    hung = _watched_by_a_dead_daemon(tmp_path, host="another-host", alive=time.time() - 2 * 86400.0)
    EventLog(tmp_path).begin_watch()
    hung.still_watching()  # it goes on
    hung.add(Event("arrived", "mochi", "cam0", 2.0, time.time()))
    assert EventLog(tmp_path, readonly=True).last_seen("mochi").kind == "arrived"  # (its host's daemon runs)


@pytest.mark.parametrize("update", ["UPDATE events SET said = NULL", "UPDATE events SET snapshot = NULL"])
def test_an_event_logged_while_a_forget_runs_leaves_no_snapshot_that_no_event_names(tmp_path, update):
    """As the prune's: `forget` read the snapshots of the events that named the concept (or were taken during its
    visits), then cleared them in a second statement: an event another process logged between lost its snapshot's
    name, and the file, which shows the concept forgotten, stayed for good."""
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    log = EventLog(tmp_path / "memory")
    now = time.time()
    log.add(Event("arrived", "anya", "porch", 1.0, now - 60))  # her visit, still open
    other = sqlite3.connect(str(log.path), timeout=0, isolation_level=None)
    late = snaps / f"{int(now * 1000):013d}-0123abcd.jpg"
    late.write_bytes(b"jpeg")
    waited = []

    def between(statement: str) -> None:
        if statement.startswith(update) and not waited:  # another daemon logs bo beside her now
            waited.append(True)
            try:
                other.execute("INSERT INTO events (kind, name, camera, time_s, wall, said, snapshot) VALUES "
                              "('arrived', 'bo', 'porch', 2.0, ?, '<anya> is here too.', ?)", (now, str(late)))
                waited.append(False)
            except sqlite3.OperationalError:  # (locked: it logs after the forget's update)
                pass

    log._db().set_trace_callback(between)
    log.purge("anya")
    log._db().set_trace_callback(None)
    assert waited  # (the other writer came)
    if waited == [True]:
        other.execute("INSERT INTO events (kind, name, camera, time_s, wall, said, snapshot) VALUES "
                      "('arrived', 'bo', 'porch', 2.0, ?, '<anya> is here too.', ?)", (now, str(late)))
    named = {Path(e.snapshot) for e in log.query() if e.snapshot}
    assert set(snaps.iterdir()) == named


@pytest.mark.parametrize("b_writes", [False, True])
def test_a_fifo_writers_close_and_the_next_writers_open_told_in_one_batch_are_two_writers(tmp_path, b_writes):
    # Before: a's last write, its close and b's open told in one batch of events (`cat a > p; cat b > p`, the relay a
    # moment late to look) were taken as lost, which bytes are whose: b's clip was read as more of a's (4 of 10 runs
    # of tools/bench_fifo_junk.py --back-to-back 10). With no write told after the close, the FIFO's bytes are a's;
    # but a write of b's that waits for room has put its first bytes in, untold until it returns: a full FIFO, b's
    # open told, is still lost
    source, end, first = watched_fifo(tmp_path)
    size = fcntl.fcntl(first, fcntl.F_GETPIPE_SZ)
    writing = threading.Thread()  # (b's write, where it writes: set below)
    try:
        os.write(first, b"a" * 100)
        assert end.left() is None  # (there: its bytes counted)
        os.write(first, b"a" * 50)
        os.close(first)
        first = os.open(tmp_path / "pipe", os.O_WRONLY)  # b's open
        writing = threading.Thread(target=os.write, args=(first, b"b" * 2 * size))  # (waits for room: we read none)
        if b_writes:
            writing.start()
            wait_until(lambda: fifo_relay.unread(source) > size - mmap.PAGESIZE, "b's write filling the FIFO")
        assert (end.left(), end.lost) == ((None, True) if b_writes else (150, False))
    finally:
        let_blocked_write_end(source, end, first, writing)


@pytest.mark.parametrize("filled", [True, False])
def test_a_fifo_is_full_to_a_next_writers_write_by_its_pages_not_its_bytes(tmp_path, filled):
    # Before: a FIFO within two pages of its size was taken as full, a next writer's blocked write maybe among its
    # bytes, and one further from it as not: but full is in pages. a writing 2049 bytes a write (each a page of its
    # own) left 8 pages holding 16 KiB; b's blocked write filled the other 8, 32 KiB untold: the 48 KiB, a quarter
    # short of its 64, were counted as a's last, b's clip cut by 32 KiB (its header lost), a's given them as its own.
    # And a's last bytes filling all its pages but one, b's open told but no write, were taken as lost (b's clip read
    # as more of a's): they are counted
    source, end, first = watched_fifo(tmp_path)
    size = fcntl.fcntl(first, fcntl.F_GETPIPE_SZ)
    pages = size // mmap.PAGESIZE
    write, writes = (2049, pages // 2) if filled else (mmap.PAGESIZE, pages - 1)
    writing = threading.Thread()  # (b's write, where it waits for room: set below)
    try:
        os.write(first, b"a" * write)
        assert end.left() is None  # (there: its bytes counted)
        for _ in range(writes - 1):
            os.write(first, b"a" * write)
        os.close(first)
        first = os.open(tmp_path / "pipe", os.O_WRONLY)  # b's open
        if not filled:
            assert fifo_relay.unread(source) > size - 2 * mmap.PAGESIZE and not fifo_relay.full(source)
            assert (end.left(), end.lost) == (writes * write, False)
            return
        writing = threading.Thread(target=os.write, args=(first, b"b" * 2 * size))  # (waits for room: we read none)
        writing.start()
        wait_until(lambda: fifo_relay.unread(source) == writes * write + (pages - writes) * mmap.PAGESIZE,
                   "b's write filling the FIFO's pages a left")
        assert fifo_relay.unread(source) < size - 2 * mmap.PAGESIZE and fifo_relay.full(source)
        assert (end.left(), end.lost) == (None, True)
    finally:
        let_blocked_write_end(source, end, first, writing)


def test_a_fifo_whose_fullness_cannot_be_told_for_want_of_a_descriptor_is_taken_as_full(monkeypatch):
    # Before: no descriptor left for the pipe its pages are teed into raised out of the count of a writer's last
    # bytes, ending the relay's copy as though FFmpeg had closed its end
    def no_descriptor():
        raise OSError(errno.EMFILE, "Too many open files")

    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"a")
        monkeypatch.setattr(fifo_relay.os, "pipe", no_descriptor)
        assert fifo_relay.full(read_end)
    finally:
        monkeypatch.undo()
        os.close(read_end)
        os.close(write_end)


def test_a_fifo_removed_while_no_writer_is_on_it_is_said_once_as_the_sources_end(tmp_path, caplog):
    # Before: the source ended without a line saying why
    camera, stop = fifo_camera(tmp_path)
    clip, pipe = clip_bytes(tmp_path), tmp_path / "pipe"
    with started(camera, stop):
        write_into(pipe, clip)
        wait_until(lambda: camera.outages or camera.finished.is_set(), "the writer's end")
        pipe.unlink()
        wait_until(camera.finished.is_set, "the source's end, its FIFO removed")
    assert camera.error is None and camera.frames_read == 3
    assert said_by(camera, caplog) == [f"camera pipe: source '{pipe}': the FIFO was removed while no writer was on "
                                       "it; the source ends"]


@pytest.mark.parametrize("junk", [False, True])
def test_a_fifo_removed_before_any_frame_after_a_refusal_is_said_so_as_the_sources_error(tmp_path, monkeypatch,
                                                                                         caplog, junk):
    # Before: a first writer refused (cut for a stall while another source waited to open), then the FIFO removed as
    # its bytes were let go (or a next writer's junk refused, then the FIFO removed with no writer on it), ended the
    # source as "no frame could be read (not a video or image OpenCV decodes)": the removal, said nowhere
    monkeypatch.setattr(fifo_relay, "crowded", lambda: True)  # (another source's open under way)
    monkeypatch.setattr(fifo_relay, "OPEN_STALL_S", 0.3)
    camera, stop = fifo_camera(tmp_path)
    pipe = tmp_path / "pipe"
    with started(camera, stop):
        with open(pipe, "wb", buffering=0) as stalled:
            stalled.write(os.urandom(1000))
            wait_until(lambda: "before its video opened" in caplog.text or camera.finished.is_set(), "the stall")
            if not junk:
                pipe.unlink()
                wait_until(camera.finished.is_set, "the source's end, its FIFO removed")
        if junk:
            write_into(pipe, os.urandom(300_000))
            wait_until(lambda: "cannot open as a video" in caplog.text or camera.finished.is_set(), "the refusal")
            pipe.unlink()
            wait_until(camera.finished.is_set, "the source's end, its FIFO removed")
    removed = ("the FIFO was removed while no writer was on it" if junk
               else "the FIFO was removed as its writer's refused bytes were let go")
    assert camera.error == f"source '{pipe}': {removed}" and camera.frames_read == 0
    assert said_by(camera, caplog) == [
        f"camera pipe: source '{pipe}': the FIFO's writer sent no byte for 0.3 s before its video opened, while another"
        " source waited to open; waiting for the FIFO's next writer",
        *[f"camera pipe: source '{pipe}': cannot open as a video; waiting for the FIFO's next writer"] * junk,
        f"camera pipe: source '{pipe}': {removed}"]


def test_a_fifo_removed_as_a_refused_writers_bytes_are_let_go_is_said_once_after_its_refusal(tmp_path, caplog):
    # Before: the refusal was said ("waiting for the FIFO's next writer"), then the source ended without a word
    camera, stop = fifo_camera(tmp_path)
    clip, pipe, flooding = clip_bytes(tmp_path), tmp_path / "pipe", threading.Event()
    junk = os.urandom(1 << 16)

    def flood() -> None:  # a writer that stays, its junk refused
        with contextlib.suppress(BrokenPipeError), open(pipe, "wb", buffering=0) as writer:
            while not flooding.is_set():
                writer.write(junk)

    with started(camera, stop):
        write_into(pipe, clip)
        wait_until(lambda: camera.outages or camera.finished.is_set(), "the first writer's end")
        writer = threading.Thread(target=flood)
        writer.start()
        try:
            wait_until(lambda: "cannot open as a video" in caplog.text or camera.finished.is_set(), "the refusal")
            pipe.unlink()
            wait_until(camera.finished.is_set, "the source's end, its FIFO removed")
        finally:
            flooding.set()
            writer.join(10)
    assert camera.error is None and camera.frames_read == 3 and not writer.is_alive()
    assert said_by(camera, caplog) == [
        f"camera pipe: source '{pipe}': cannot open as a video; waiting for the FIFO's next writer",
        f"camera pipe: source '{pipe}': the FIFO was removed as its writer's refused bytes were let go;"
        " the source ends"]
