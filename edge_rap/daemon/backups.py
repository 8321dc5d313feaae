"""`run`'s scheduled backups (`backup-to`, `backup-every`, `backup-keep`): `back_up()` into a folder on a schedule,
in a thread of its own beside the frame loop, the newest N of its own files kept there.

A household's device runs for months and nobody runs a command: a USB stick pulled, full or read-only is warned of
once while it stays so, retried later, and never stops the daemon. When the last good backup was is read from the
newest file's name (`edge-rap-backup-<UTC stamp>.tar`), so it survives restarts and `doctor` can say it too. The
worker lowers its own priority (Linux's nice value is a thread's): the cameras' threads and the loop keep theirs."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

from edge_rap.daemon.clock import plausible, steady_now
from edge_rap.daemon.events import parse_duration
from edge_rap.errors import EdgeRapError
from edge_rap.folders import unmounted
from edge_rap.memory.backup import back_up, writer
from edge_rap.memory.files import DATABASE
from edge_rap.output import quoted
from edge_rap.scratch import remove_unheld
from edge_rap.wording import counted, noun

log = logging.getLogger(__name__)

PREFIX = "edge-rap-backup-"
STAMP = "%Y%m%dT%H%M%SZ"
#: The scheduler's own files, and only these: a backup written by hand into the same folder is never deleted.
OWN = re.compile(r"edge-rap-backup-(\d{8}T\d{6}Z)\.tar")
#: What back_up() leaves of one of them when killed outright (a power cut mid-backup): `<name>.partial-<pid>`.
OWN_PARTIAL = re.compile(r"edge-rap-backup-\d{8}T\d{6}Z\.tar\.partial-\d+")
DEFAULT_EVERY = "1d"
DEFAULT_KEEP = 7
#: The shortest period: a backup of a large memory takes a while, and a stick is written N times a period.
MIN_EVERY_S = 60.0
#: The first look at the schedule waits this long after the start: models load and cameras open first.
FIRST_S = 60.0
#: How often the worker looks at the schedule.
POLL_S = 60.0
#: A failed backup is tried again after this long, or after one period where that is shorter: a stick plugged
#: back in is used within the hour, and a full one is not written to in vain every minute.
RETRY_S = 3600.0
#: The worker's nice value above the process's.
NICER = 10


def backup_period(text: str) -> float:
    """`backup-every`'s seconds, or one line saying what it takes."""
    seconds = parse_duration(text)
    if seconds is None or seconds < MIN_EVERY_S:
        raise EdgeRapError(f"backup-every {quoted(text)}: use a period such as 12h, 1d or 1w (at least 1m)")
    return seconds


@dataclass(frozen=True)
class BackupSchedule:
    folder: Path
    every_s: float = 86400.0
    keep: int = DEFAULT_KEEP

    @classmethod
    def of(cls, folder: str | None, every: str | None, keep: int | None) -> "BackupSchedule | None":
        """The schedule the settings name (None: no `backup-to`)."""
        if folder is None:
            return None
        return cls(Path(folder).expanduser().absolute(), backup_period(every or DEFAULT_EVERY), keep or DEFAULT_KEEP)

    def target(self, wall: float) -> Path:
        return self.folder / backup_name(wall)


def backup_name(wall: float, tag: str = "") -> str:
    """`edge-rap-backup-<UTC stamp><tag>.tar`: the scheduler's files (no tag), and the API's download (a tag, so
    that one a household copies into the scheduler's folder is never pruned as its own)."""
    return f"{PREFIX}{time.strftime(STAMP, time.gmtime(wall))}{tag}.tar"


def own_backups(folder: Path) -> list[tuple[float, Path]]:
    """The scheduler's files in `folder`, newest first, with the time their names say (Unix seconds)."""
    found = []
    for entry in os.scandir(folder):
        match = OWN.fullmatch(entry.name)
        if match and entry.is_file(follow_symlinks=False):
            when = datetime.strptime(match.group(1), STAMP).replace(tzinfo=timezone.utc).timestamp()
            found.append((when, Path(entry.path)))
    return sorted(found, reverse=True)


def last_backup(folder: Path, now: float) -> float | None:
    """When the newest of the scheduler's files in `folder` was made; None where there is none (or no folder).
    One named after `now` (a clock wrongly ahead then, set back since) is not counted: no backup would be made
    until the clock caught up with it."""
    try:
        return _newest(folder, now)
    except OSError:
        return None


def _newest(folder: Path, now: float) -> float | None:
    return max((when for when, _ in _made_by_now(folder, now)), default=None)


def _made_by_now(folder: Path, now: float) -> list[tuple[float, Path]]:
    """The scheduler's files named at or before `now`, newest first: those named after it (a clock once wrongly
    ahead, or now wrongly behind) are neither counted nor pruned, so a fresh backup is never the one deleted."""
    return [(when, path) for when, path in own_backups(folder) if when <= now]


class Cancelled(BaseException):
    """The daemon is stopping: the backup in progress ends, its partial file removed (back_up's cleanup)."""


class ScheduledBackups:
    """Backs the memory at `root` up as `schedule` says, in its own thread from `start()` to `close()`."""

    def __init__(self, root: Path, schedule: BackupSchedule, wall: Callable[[], float] = time.time,
                 first_s: float = FIRST_S, poll_s: float = POLL_S, steady: Callable[[], float] = steady_now):
        """`wall`: the clock the schedule and the files' names follow; `steady`: the one a retry waits on (a clock
        set back after a failure must not put the retry off by as much)."""
        if root.resolve() == schedule.folder.resolve() or root.resolve() in schedule.folder.resolve().parents:
            raise EdgeRapError(f"backup-to {schedule.folder}: inside the memory folder it backs up; name a folder "
                               "on another drive")
        self.root, self.schedule, self._wall = root, schedule, wall
        self.first_s, self.poll_s = first_s, poll_s
        self._steady = steady
        self._retry_at = float("-inf")  # (steady) no backup is tried before this, after a failure
        self._failing: str | None = None  # the failure said, while it repeats
        self._on_memorys_drive = False  # said, while the folder stays on the memory's drive
        self._last: float | None = None  # (wall) the newest backup of its own the folder was last seen to have
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backups", daemon=True)

    def start(self) -> "ScheduledBackups":
        self._thread.start()
        return self

    def close(self, timeout: float) -> None:
        """Stop; a backup in progress ends at its next file, its partial file removed (waiting up to `timeout`: a
        database still being copied then is left to the process's exit)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def check(self) -> Path | None:
        """Write a backup where one is due and prune the old ones; the file written, if any. Never raises: a
        failure is said once while it repeats, and tried again later."""
        now = self._wall()
        if self._steady() < self._retry_at or not plausible(now):  # (a clock not set yet would name a backup of 1970)
            return None
        if not (self.root / DATABASE).exists():  # nothing remembered yet: nothing to keep, and nothing wrong
            return None
        if self._last is not None and self._last <= now < self._last + self.schedule.every_s:
            return None  # not due, the folder not listed: a USB disk that is not read every minute can spin down
        last = self._last = last_backup(self.schedule.folder, now)
        if last is not None and now - last < self.schedule.every_s:
            return None
        target = self.schedule.target(now)
        try:
            # (a folder on the memory's drive is warned of, and written: one there still outlives a damaged memory)
            report = back_up(self.root, target, progress=self._unless_stopping, anywhere=True)
        except Cancelled:
            return None
        except EdgeRapError as e:
            self._failed(str(e), str(e).replace(target.name, "*"))
            return None
        except Exception as e:  # the daemon goes on whatever a backup meets; the traceback goes to the log
            self._failed(f"{type(e).__name__}: {e}", type(e).__name__, exc_info=True)
            return None
        if report.missing:
            log.warning("%s: %s missing or damaged in the memory %s left out (`edge-rap backup` names them)", target,
                        counted(len(report.missing), "stored photo"), noun(len(report.missing), "was", "were"))
        if self._failing is not None:
            log.warning("backups are written to %s again", self.schedule.folder)
            self._failing = None
        self._last = now
        log.info("backed up the memory to %s (%d bytes)", target, report.bytes)
        self._say_if_on_the_memorys_drive()
        try:
            self._prune(now)
        except OSError as e:  # the backup is written all the same: no failure to retry
            log.warning("%s: its older backups could not be deleted (%s); %s was written", self.schedule.folder,
                        e.strerror or e, target.name)
        return target

    def _say_if_on_the_memorys_drive(self) -> None:
        """A folder on the memory's own drive is lost with it: most often a USB stick not mounted, whose mount point
        is then a folder on the SD card; so is one where drives are mounted that none is mounted on, the memory on a
        drive of its own (`backup` refuses it). Said once while it stays so; the backups go on (one there still
        outlives a damaged memory)."""
        risk = drive_risk(self.schedule.folder, self.root)
        if risk is not None and not self._on_memorys_drive:
            log.warning("%s %s (a USB stick not mounted?); name a folder on another drive (said once)",
                        self.schedule.folder, DRIVE_RISKS[risk])
        self._on_memorys_drive = risk is not None

    def _failed(self, why: str, kind: str, exc_info: bool = False) -> None:
        """Said once while the same failure repeats (a stick left out for a week is one line, not one an hour)."""
        retry_s = min(self.schedule.every_s, RETRY_S)
        self._retry_at = self._steady() + retry_s
        if kind != self._failing:
            log.warning("scheduled backup failed: %s (tried again every %s while it fails; said once)", why,
                        period(retry_s), exc_info=exc_info)
        self._failing = kind

    def _prune(self, now: float) -> None:
        """The newest `keep` of the scheduler's own files named by `now` stay, and the partial ones a backup killed
        outright left go (no process holds them: back_up() holds its own); nothing else in the folder is touched."""
        for _, path in _made_by_now(self.schedule.folder, now)[self.schedule.keep:]:
            path.unlink(missing_ok=True)
        for entry in os.scandir(self.schedule.folder):
            if OWN_PARTIAL.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                remove_unheld(Path(entry.path), writer(Path(entry.path)))

    def _unless_stopping(self, items: Iterable) -> Iterator:
        for item in items:
            if self._stop.is_set():
                raise Cancelled
            yield item

    def _run(self) -> None:
        lower_own_priority()
        wait = self.first_s
        while not self._stop.wait(wait):
            self.check()
            wait = self.poll_s


def lower_own_priority() -> None:
    """The calling thread's nice value raised by NICER, on Linux, where a thread has its own and setpriority takes
    its id. Elsewhere a thread's id is no process's (macOS, FreeBSD) or a small number that is another's (NetBSD's
    1, 2, ...), and the nice value is the whole process's: left alone."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError):
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + NICER))


#: What `drive_risk` finds, said by `run` (once) and `doctor` alike.
DRIVE_RISKS = {"same_drive": "is on the memory's own drive, lost with it",
               "unmounted": "is where no drive is mounted: its backups go onto the device's own card, hidden once one "
                            "is mounted"}


def drive_risk(folder: Path, root: Path) -> str | None:
    """Why backups into `folder` would not outlive the memory at `root`, a key of DRIVE_RISKS: "same_drive" (most
    often a USB stick not mounted, its mount point a folder on the memory's card), or "unmounted", a folder where
    drives are mounted that none is mounted on (`folders.unmounted`: the memory on a drive of its own); else None."""
    if on_memorys_drive(folder, root):
        return "same_drive"
    return "unmounted" if unmounted(folder) is not None else None


def on_memorys_drive(folder: Path, root: Path) -> bool:
    """Whether `folder` is on the file system that holds the memory at `root` (or would hold it: its nearest
    folder there, before the first concept); False where either cannot be looked at. A backup there is lost with
    the memory's drive."""
    try:
        drive = os.stat(folder).st_dev
        return drive == os.stat(next(p for p in (root, *root.parents) if p.exists())).st_dev
    except (OSError, StopIteration):
        return False


def period(seconds: float, rounded: bool = False) -> str:
    """3600 -> "1h"; 90 -> "90s" (`rounded`: "1m", in the largest unit it fills)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and (rounded or seconds % size == 0):
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def backup_state(schedule: BackupSchedule, now: float, root: Path) -> dict:
    """What `doctor` says of the schedule: the folder, the period, how many are kept, the last good backup's time
    and age (None: none yet), `stale` where that is older than two periods (or none is there), `problem` where the
    folder cannot be listed, and `same_drive` or `unmounted` (drive_risk) where its backups would not outlive the
    memory at `root`."""
    risk = drive_risk(schedule.folder, root)
    state = {"to": str(schedule.folder), "every_s": schedule.every_s, "keep": schedule.keep, "last": None,
             "age_s": None, "stale": True, "problem": None, "same_drive": risk == "same_drive",
             "unmounted": risk == "unmounted"}
    try:
        last = _newest(schedule.folder, now)
    except OSError as e:
        state["problem"] = f"{schedule.folder}: {e.strerror or e} (a drive not plugged in or not mounted?)"
        return state
    if last is not None:
        state.update(last=last, age_s=round(now - last), stale=now - last > 2 * schedule.every_s)
    return state
