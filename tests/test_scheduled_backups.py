"""`run`'s scheduled backups: made on a (fake) clock into a folder, the newest N of its own kept, other files left
alone, a folder that is missing warned of once and retried, and the frame loop never waiting for a backup."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pytest
from fakes import fake_memory
from readonly import run_read_only
from scenes import scene_file
from test_daemon import run_scripted

from edge_rap.daemon import backups as backups_module
from edge_rap.daemon.backups import BackupSchedule, ScheduledBackups, backup_name, last_backup, own_backups
from edge_rap.daemon.config import run_config
from edge_rap.errors import EdgeRapError
from edge_rap.memory.files import DATABASE
from edge_rap.memory.restore import restore
from edge_rap.serve.backup import DOWNLOAD_TAG

DAY = 86400.0
START = 1.8e9  # 2027-01-15 08:00 UTC


class FakeClock:
    def __init__(self, now: float = START):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def memory(tmp_path) -> Path:
    """A memory of one concept (a stand-in embedder: no model)."""
    root = tmp_path / "memory"
    memory = fake_memory(root)
    memory.remember("bo", [scene_file(tmp_path / "photos", 1)], "our dog", "dog")
    memory.close()
    return root


def scheduled(memory: Path, folder: Path, clock: FakeClock, every_s: float = DAY, keep: int = 3,
              steady: Callable[[], float] | None = None) -> ScheduledBackups:
    return ScheduledBackups(memory, BackupSchedule(folder, every_s, keep), wall=clock, steady=steady or clock)


def test_a_backup_is_made_when_due_and_the_newest_n_of_its_own_are_kept(memory, tmp_path):
    stick, clock = tmp_path / "stick", FakeClock()
    stick.mkdir()
    (stick / "mine.tar").write_bytes(b"a backup made by hand")
    (stick / "edge-rap-backup-notes.txt").write_text("not one of its own")
    backups = scheduled(memory, stick, clock, keep=3)
    first = backups.check()
    assert first == stick / "edge-rap-backup-20270115T080000Z.tar"  # none there: the first look makes one
    clock.now += DAY - 1
    assert backups.check() is None  # not due yet
    made = [first]
    for _ in range(4):
        clock.now += DAY
        made.append(backups.check())
    assert [p for _, p in own_backups(stick)] == made[::-1][:3]  # the newest three, newest first
    assert (stick / "mine.tar").read_bytes() == b"a backup made by hand"
    assert (stick / "edge-rap-backup-notes.txt").exists()
    assert last_backup(stick, clock.now) == clock.now
    restored = restore(made[-1], tmp_path / "restored")  # what `restore` accepts
    assert restored.counts.concepts == 1


def test_a_downloaded_backup_copied_into_the_folder_is_never_pruned(memory, tmp_path):
    # the phone's download was named as the scheduler names its own: copied onto the stick, it was deleted as theirs
    stick, clock = tmp_path / "stick", FakeClock()
    stick.mkdir()
    copied = stick / backup_name(START - DAY, DOWNLOAD_TAG)
    copied.write_bytes(b"a backup downloaded to the phone")
    backups = scheduled(memory, stick, clock, keep=1)
    for _ in range(3):
        assert backups.check() is not None
        clock.now += DAY
    assert copied.exists() and len(own_backups(stick)) == 1


def test_the_folder_is_listed_once_a_period_not_at_every_look(memory, tmp_path, monkeypatch):
    # the worker listed the stick at every look, once a minute, so a USB disk never spun down
    stick, clock = tmp_path / "stick", FakeClock()
    stick.mkdir()
    listed = []
    scandir = os.scandir
    monkeypatch.setattr(backups_module.os, "scandir",  # (os's own: a folder's descriptor may be listed elsewhere)
                        lambda path: listed.append(path) or scandir(path))
    backups = scheduled(memory, stick, clock, keep=3)
    assert backups.check() is not None
    listed.clear()
    for _ in range(24 * 60 - 1):  # a look a minute until the next is due
        clock.now += 60
        assert backups.check() is None
    assert str(stick) not in map(str, listed)
    clock.now += 60
    assert backups.check() is not None and str(stick) in map(str, listed)


def test_a_partial_backup_a_power_cut_left_is_removed_and_one_being_written_is_not(memory, tmp_path):
    # a partial file was removed only once unchanged for an hour: a stick kept a dead backup's half for that long,
    # and a live one on a stick too slow to change it in an hour would have gone; back_up() holds its own (a flock)
    from edge_rap.scratch import hold

    stick = tmp_path / "stick"
    stick.mkdir()
    dead, live, other = stick / "edge-rap-backup-20270101T080000Z.tar.partial-4242", \
        stick / "edge-rap-backup-20270115T075959Z.tar.partial-4343", stick / "mine.tar.partial-4242"
    for path in (dead, live, other):
        path.write_bytes(b"half a backup")
        os.utime(path, (time.time() - 120,) * 2)  # past the minute a maker may take to hold what it made
    with open(live, "rb") as writing:
        hold(writing.fileno())  # a backup still writing it
        assert scheduled(memory, stick, FakeClock()).check() is not None
    assert not dead.exists() and live.exists() and other.exists()


def test_a_restart_counts_from_the_newest_backup_in_the_folder(memory, tmp_path):
    stick, clock = tmp_path / "stick", FakeClock()
    stick.mkdir()
    assert scheduled(memory, stick, clock).check() is not None
    clock.now += DAY / 2
    assert scheduled(memory, stick, clock).check() is None  # a new process: the file's name says when
    clock.now += DAY / 2
    assert scheduled(memory, stick, clock).check() is not None


def test_a_backup_named_after_now_does_not_hold_the_schedule_back(memory, tmp_path):
    stick, clock = tmp_path / "stick", FakeClock()
    stick.mkdir()
    ahead = BackupSchedule(stick).target(START + 30 * DAY)  # made while the clock was a month ahead, set back since
    ahead.write_bytes(b"")
    assert scheduled(memory, stick, clock).check() is not None


def test_backups_named_after_now_neither_prune_the_new_one_nor_make_one_every_minute(memory, tmp_path):
    """A clock a year ahead once (set back since) left files named after now: the fresh backup is kept, the next
    is made a period later, and those files are left to a person (they may be the real ones)."""
    stick, clock = tmp_path / "stick", FakeClock()
    stick.mkdir()
    ahead = [BackupSchedule(stick).target(START + 365 * DAY + n * DAY) for n in range(2)]
    for path in ahead:
        path.write_bytes(b"")
    backups = scheduled(memory, stick, clock, keep=1)
    made = backups.check()
    assert made is not None and made.exists()
    clock.now += 60  # the next look
    assert backups.check() is None
    clock.now += DAY
    newer = backups.check()
    assert newer is not None and newer.exists() and not made.exists()  # keep=1 of those named at or before now
    assert all(path.exists() for path in ahead)


def test_a_missing_folder_is_warned_of_once_retried_and_its_return_said(memory, tmp_path, caplog):
    stick, clock = tmp_path / "stick", FakeClock()
    backups = scheduled(memory, stick, clock, every_s=DAY)
    caplog.set_level(logging.WARNING, "edge_rap.daemon.backups")
    for _ in range(5):
        assert backups.check() is None
        clock.now += 3600  # the retry interval: each of these is a real try
    failed = [r.getMessage() for r in caplog.records]
    assert len(failed) == 1 and "no such folder" in failed[0] and str(stick) in failed[0], failed
    stick.mkdir()  # the stick plugged in again
    assert backups.check() is not None
    said = [r.getMessage() for r in caplog.records if "own drive" not in r.getMessage()]  # (tmp_path: one drive)
    assert "written to" in said[-1] and len(said) == 2


def test_a_folder_on_the_memorys_own_drive_is_warned_of_once_and_still_written(memory, tmp_path, caplog):
    """A stick not mounted: its mount point is a folder on the SD card, lost with the memory."""
    stick, clock = tmp_path / "stick", FakeClock()
    stick.mkdir()
    assert os.stat(stick).st_dev == os.stat(memory).st_dev
    backups = scheduled(memory, stick, clock)
    caplog.set_level(logging.WARNING, "edge_rap.daemon.backups")
    for _ in range(3):
        assert backups.check() is not None
        clock.now += DAY
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "memory's own drive" in said[0] and str(stick) in said[0], said


def test_a_folder_no_drive_is_mounted_on_is_warned_of_once_though_the_memory_is_on_a_drive_of_its_own(
        memory, tmp_path, monkeypatch, caplog):
    """backup-to /media/stick/backups, the stick not mounted and the memory on a USB disk: each backup went onto the
    SD card, into the stick's empty mount point, hidden once it is mounted, and nothing was said (`backup` refuses
    it). The mount table and the drives are played."""
    from edge_rap import folders
    from edge_rap.daemon import backups as scheduler

    media, clock = tmp_path / "media", FakeClock()
    stick = media / "stick" / "backups"
    stick.mkdir(parents=True)
    monkeypatch.setattr(folders, "MOUNT_ROOTS", (media,))
    monkeypatch.setattr(os.path, "ismount", lambda p: False)
    monkeypatch.setattr(scheduler, "on_memorys_drive", lambda folder, root: False)
    backups = scheduled(memory, stick, clock)
    caplog.set_level(logging.WARNING, "edge_rap.daemon.backups")
    for _ in range(3):
        assert backups.check() is not None  # (written all the same, as on the memory's drive)
        clock.now += DAY
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "no drive is mounted" in said[0] and str(stick) in said[0], said


def test_a_stick_failing_mid_write_leaves_no_partial_file_is_said_once_and_retried(memory, tmp_path, monkeypatch,
                                                                                    caplog):
    """EIO as the stick is pulled while the backup is flushed to it."""
    stick, clock = tmp_path / "stick", FakeClock()
    stick.mkdir()
    real_fsync = os.fsync

    def pulled(fd):
        raise OSError(5, "Input/output error")

    backups = scheduled(memory, stick, clock)
    caplog.set_level(logging.WARNING, "edge_rap.daemon.backups")
    monkeypatch.setattr(os, "fsync", pulled)
    for _ in range(2):
        assert backups.check() is None and list(stick.iterdir()) == []
        clock.now += 3600
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert backups.check() is not None
    said = [r.getMessage() for r in caplog.records if "own drive" not in r.getMessage()]
    assert len(said) == 2 and "Input/output error" in said[0] and "written to" in said[1], said


def test_old_backups_that_cannot_be_deleted_do_not_make_a_written_one_a_failure(memory, tmp_path, monkeypatch,
                                                                                caplog):
    stick, clock = tmp_path / "stick", FakeClock()
    stick.mkdir()
    backups = scheduled(memory, stick, clock, keep=1)
    first = backups.check()
    clock.now += DAY
    caplog.set_level(logging.WARNING, "edge_rap.daemon.backups")

    def refused(self, missing_ok=False):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "unlink", refused)
    second = backups.check()
    assert second is not None and second.exists() and first.exists()
    said = [r.getMessage() for r in caplog.records if "own drive" not in r.getMessage()]
    assert len(said) == 1 and "could not be deleted" in said[0] and "failed" not in said[0], said


def test_a_memory_with_nothing_remembered_yet_is_not_backed_up_and_nothing_is_said(tmp_path, caplog):
    stick, clock = tmp_path / "stick", FakeClock()
    stick.mkdir()
    caplog.set_level(logging.WARNING, "edge_rap.daemon.backups")
    assert scheduled(tmp_path / "new-memory", stick, clock).check() is None
    assert caplog.records == [] and list(stick.iterdir()) == []


def test_a_read_only_folder_is_warned_of_once_and_left_empty(memory, tmp_path):
    stick, done = tmp_path / "stick", tmp_path / "done"
    stick.mkdir()
    script = f"""
import json, logging
from pathlib import Path
from edge_rap.daemon.backups import BackupSchedule, ScheduledBackups
said, clock = [], [{START}]
handler = logging.Handler()
handler.emit = lambda record: said.append(record.getMessage())
logging.getLogger("edge_rap.daemon.backups").addHandler(handler)
backups = ScheduledBackups(Path({str(memory)!r}), BackupSchedule(Path({str(stick)!r})), wall=lambda: clock[0],
                           steady=lambda: clock[0])
made = []
for _ in range(3):
    made.append(str(backups.check()))
    clock[0] += 3600
Path({str(done)!r}).write_text(json.dumps({{"made": made, "said": said}}))
"""
    run_read_only(stick, [sys.executable, "-c", script], done)
    ran = json.loads(done.read_text())
    assert ran["made"] == ["None"] * 3 and len(ran["said"]) == 1 and "not writable" in ran["said"][0], ran
    assert list(stick.iterdir()) == []


def test_no_backup_is_named_after_a_clock_not_set_yet(memory, tmp_path):
    stick, clock = tmp_path / "stick", FakeClock(1e6)  # a board without a clock battery, before NTP: 1970
    stick.mkdir()
    backups = scheduled(memory, stick, clock)
    assert backups.check() is None and list(stick.iterdir()) == []
    clock.now = START  # set
    assert backups.check() == stick / "edge-rap-backup-20270115T080000Z.tar"


def test_a_failure_is_not_tried_again_before_the_retry_interval(memory, tmp_path, monkeypatch):
    stick, clock, tries = tmp_path / "stick", FakeClock(), []
    real = backups_module.back_up

    def counted(*args, **kwargs):
        tries.append(clock.now)
        return real(*args, **kwargs)

    monkeypatch.setattr(backups_module, "back_up", counted)
    backups = scheduled(memory, stick, clock)
    backups.check()
    clock.now += 3599
    backups.check()  # a full stick is not written to in vain at every look
    clock.now += 1
    backups.check()
    assert tries == [START, START + 3600]


def test_a_failure_while_the_clock_was_ahead_does_not_hold_backups_back_once_it_is_set_back(memory, tmp_path):
    """The retry waits an hour of the steady clock: a clock a year ahead at the failure, set back by NTP since,
    would otherwise have no backup tried for a year."""
    stick, clock, steady = tmp_path / "stick", FakeClock(START + 365 * DAY), FakeClock(0.0)
    backups = scheduled(memory, stick, clock, steady=steady)
    assert backups.check() is None  # the stick not plugged in yet
    stick.mkdir()
    clock.now, steady.now = START + 3600, 3600.0  # an hour later, the clock set back a year
    assert backups.check() == stick / "edge-rap-backup-20270115T090000Z.tar"


def test_the_frame_loop_goes_on_while_a_backup_is_in_progress(tmp_path, monkeypatch):
    started, release, ended, seen_while_held = threading.Event(), threading.Event(), threading.Event(), []

    def held(*args, **kwargs):
        started.set()
        release.wait(30)  # (a loop that waited for the backup would see it end after these 30 s)
        ended.set()
        raise EdgeRapError("released")

    monkeypatch.setattr(backups_module, "back_up", held)
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / DATABASE).touch()  # (a memory to back up, as far as the schedule looks)
    backups = ScheduledBackups(tmp_path / "memory", BackupSchedule(tmp_path / "stick"), first_s=0)
    from test_daemon import ScriptedHousehold

    recognize = ScriptedHousehold.recognize

    def recognize_while_held(self, image):
        assert started.wait(30), "no backup started"
        seen_while_held.append(not ended.is_set())
        return recognize(self, image)

    monkeypatch.setattr(ScriptedHousehold, "recognize", recognize_while_held)
    values = [40, 255, 255, 255, 40, 40, 40, 255, 255]
    try:
        events, summary, _ = run_scripted(tmp_path, values, backups=backups)
    finally:
        release.set()
    assert summary.frames_read == len(values) and seen_while_held and all(seen_while_held)
    assert [e.kind for e in events] == ["arrived", "left", "arrived", "left"]


def test_the_backup_thread_lowers_its_own_priority_only(memory, tmp_path, monkeypatch):
    priorities = []
    real = backups_module.back_up

    def noted(*args, **kwargs):
        priorities.append(os.getpriority(os.PRIO_PROCESS, 0))  # on Linux: the calling thread's
        return real(*args, **kwargs)

    monkeypatch.setattr(backups_module, "back_up", noted)
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    backups = ScheduledBackups(memory, BackupSchedule(tmp_path / "stick"), first_s=0, poll_s=3600)
    (tmp_path / "stick").mkdir()
    backups.start()
    deadline = time.monotonic() + 60
    while not own_backups(tmp_path / "stick") and time.monotonic() < deadline:
        time.sleep(0.01)
    backups.close(60.0)
    assert priorities == [min(19, mine + backups_module.NICER)]
    assert os.getpriority(os.PRIO_PROCESS, 0) == mine


def test_no_other_process_is_reniced_where_a_thread_id_is_not_linuxs(monkeypatch):
    """NetBSD's thread ids are 1, 2, ...: setpriority(PRIO_PROCESS, 2) there would renice process 2."""
    calls = []
    monkeypatch.setattr(os, "setpriority", lambda *args: calls.append(args))
    monkeypatch.setattr(sys, "platform", "netbsd10")
    backups_module.lower_own_priority()
    monkeypatch.setattr(sys, "platform", "linux")
    backups_module.lower_own_priority()
    assert [(which, who) for which, who, _ in calls] == [(os.PRIO_PROCESS, threading.get_native_id())]


def test_stopping_ends_a_backup_in_progress_without_a_partial_file(memory, tmp_path, monkeypatch):
    stick = tmp_path / "stick"
    stick.mkdir()
    backups = scheduled(memory, stick, FakeClock())
    stop_at_first = backups._unless_stopping

    def stopping(items):
        backups._stop.set()  # the daemon stops as the first file is copied
        return stop_at_first(items)

    monkeypatch.setattr(backups, "_unless_stopping", stopping)
    assert backups.check() is None
    assert list(stick.iterdir()) == []


@pytest.mark.parametrize("settings, words", [
    ({"backup_every": "1d"}, "go with backup-to"),
    ({"backup_to": "/media/usb/robot", "backup_every": "daily"}, "12h, 1d or 1w"),
    ({"backup_to": "/media/usb/robot", "backup_every": "30s"}, "at least 1m"),
    ({"backup_to": "/media/usb/robot", "backup_keep": 0}, "backup-keep must be 1 or more"),
])
def test_bad_backup_settings_are_refused_before_anything_starts(settings, words):
    with pytest.raises(EdgeRapError, match=words):
        run_config({"sources": ["0"], **settings}, None)


def test_the_settings_file_names_the_schedule(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('[daemon]\nbackup-to = "/media/usb/robot"\nbackup-every = "12h"\nbackup-keep = 3\n')
    config = run_config({"sources": ["0"]}, toml)
    assert BackupSchedule.of(config.backup_to, config.backup_every, config.backup_keep) == \
        BackupSchedule(Path("/media/usb/robot"), 12 * 3600, 3)
    defaults = run_config({"sources": ["0"], "backup_to": "/media/usb/robot"}, None)
    assert BackupSchedule.of(defaults.backup_to, defaults.backup_every, defaults.backup_keep) == \
        BackupSchedule(Path("/media/usb/robot"), DAY, 7)


def test_a_backup_folder_inside_the_memory_is_refused_at_the_start(memory):
    with pytest.raises(EdgeRapError, match="inside the memory folder"):
        ScheduledBackups(memory, BackupSchedule(memory / "backups"))


def test_doctor_says_the_schedule_and_warns_of_a_last_backup_older_than_two_periods(run, tmp_path):
    stick, toml = tmp_path / "stick", tmp_path / "run.toml"
    toml.write_text(f'[daemon]\nbackup-to = "{stick}"\nbackup-every = "1d"\nbackup-keep = 3\n')

    def line() -> str:
        rc, out, _ = run("doctor", "--config", str(toml))
        return next(k for k in out.splitlines() if k.startswith("backups: "))

    assert "cannot be read" in line() and "plugged in" in line()
    stick.mkdir()  # (in tmp_path, as the memory: on its drive)
    assert line().endswith("none there yet (`run` makes the first a minute after it starts); that folder is on the "
                           "memory's own drive, lost with it (a USB stick not mounted?)")
    schedule = BackupSchedule(stick)
    schedule.target(time.time() - 3 * DAY).write_bytes(b"")
    assert line().startswith(f"backups: every 1d into {stick}, the newest 3 kept; the last 3d ago: older than two "
                             "periods")
    schedule.target(time.time() - 3600).write_bytes(b"")
    assert line() == f"backups: every 1d into {stick}, the newest 3 kept; the last 1h ago; that folder is on the " \
        "memory's own drive, lost with it (a USB stick not mounted?)"
    rc, out, _ = run("doctor", "--json", "--config", str(toml))
    state = json.loads(out)["backups"]
    assert state["age_s"] == pytest.approx(3600, abs=60) and state["stale"] is False and state["keep"] == 3
    assert state["same_drive"] is True
    assert json.loads(run("doctor", "--json")[1])["backups"] is None  # no settings file: nothing to say


def test_doctor_says_a_backup_folder_no_drive_is_mounted_on_as_run_warns_of_it(run, tmp_path, monkeypatch):
    # backup-to /media/stick/backups, the stick not mounted, the memory on a drive of its own: `run` warned of it,
    # doctor said nothing. The mount table and the drives are played.
    from edge_rap import folders
    from edge_rap.daemon import backups as scheduler

    media, toml = tmp_path / "media", tmp_path / "run.toml"
    stick = media / "stick" / "backups"
    stick.mkdir(parents=True)
    toml.write_text(f'[daemon]\nbackup-to = "{stick}"\n')
    mounted: set[Path] = set()
    monkeypatch.setattr(folders, "MOUNT_ROOTS", (media,))
    monkeypatch.setattr(os.path, "ismount", lambda p: Path(p) in mounted)
    monkeypatch.setattr(scheduler, "on_memorys_drive", lambda folder, root: False)

    def said() -> tuple[str, dict]:
        line = next(k for k in run("doctor", "--config", str(toml))[1].splitlines() if k.startswith("backups: "))
        return line, json.loads(run("doctor", "--json", "--config", str(toml))[1])["backups"]

    line, state = said()
    assert line.endswith("(`run` makes the first a minute after it starts); that folder is where no drive is mounted: "
                         "its backups go onto the device's own card, hidden once one is mounted (a USB stick not "
                         "mounted?)"), line
    assert state["unmounted"] is True and state["same_drive"] is False
    mounted.add(media / "stick")
    line, state = said()
    assert line.endswith("starts)") and state["unmounted"] is False, line


@pytest.mark.parametrize("daemon, said", [("backup-keep = 0", "backup-keep must be 1 or more, not 0"),
                                          ("duration = -5", "duration must be more than 0 seconds, not -5"),
                                          ("backup-every = \"1d\"", "backup-every and backup-keep go with backup-to")])
def test_doctor_refuses_a_settings_file_run_would_refuse_naming_it(run, tmp_path, daemon, said):
    # doctor --config said "every 1d ..., the newest 7 kept" of a file whose backup-keep = 0 `run` refused
    toml = tmp_path / "run.toml"
    toml.write_text(f'[daemon]\nbackup-to = "{tmp_path / "stick"}"\n{daemon}\n'
                    if "backup-to" not in said else f"[daemon]\n{daemon}\n")
    rc, out, err = run("doctor", "--config", str(toml))
    assert rc == 2 and out == "" and err.startswith(f"edge-rap: {toml}: {said}") and err.count("\n") == 1
