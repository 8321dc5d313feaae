"""The daemon's loop: the newest frame of each camera through gate, recognition and presence, into events.

Capture threads keep only the newest frame (perceive/camera.py), so a loop slower than the cameras drops
stale frames instead of queueing them; arrivals go to the announcer (generation and speech in their own
threads). A concept remembered, edited or forgotten by another process shows at the next frame: the loop
watches the memory's files and lets the next frame of every camera through the gate.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from edge_rap.daemon.announce import Announcement, Announcer, template_line
from edge_rap.daemon.clock import Reading, WallClock, plausible
from edge_rap.daemon.events import EventLogFull
from edge_rap.daemon.notify import Notifier, Supervisor
from edge_rap.daemon.track import Change, Presence, VoteSettings
from edge_rap.errors import EdgeRapError
from edge_rap.liveness import LONG_CALL_S
from edge_rap.memory.aside import moved_aside
from edge_rap.memory.files import memory_stamp
from edge_rap.output import OutputError
from edge_rap.perceive.camera import Camera, SourceSpec
from edge_rap.perceive.frozen import FROZEN_S, SameFrames
from edge_rap.perceive.gate import GateSettings, MotionGate
from edge_rap.said_once import SaidOnce
from edge_rap.types import Event, Frame, Recognition
from edge_rap.wording import counted, noun

if TYPE_CHECKING:
    from edge_rap.daemon.backups import ScheduledBackups
    from edge_rap.daemon.settings_file import SettingsFile

log = logging.getLogger(__name__)

STAGES = ("capture", "gate", "embed", "retrieve", "track", "generate", "speak")
#: A re-checked still scene whose whole-frame vector is this close to the last re-check's did not change.
RECHECK_SAME = 0.97
#: Not stages but figures kept the same way: source-to-decision lag of recognised frames.
FIGURES = ("lag",)
#: How long the end of a run waits for the capture threads, all together, to leave their reads: a thread still
#: decoding inside OpenCV when the interpreter exits can abort the process, and a file's or folder's thread leaves
#: within a frame. One whose camera hangs (a stream that stopped answering, a FIFO with no writer) waits in OpenCV
#: for its own timeout: it is not waited for, so that SIGTERM still ends the run within 2 s.
JOIN_S = 1.0
#: Events the event log could not take (a full disk) kept, oldest first, to log when it can be written again;
#: past these, the first whole visits kept are let go (`_let_go`).
UNLOGGED_MAX = 10_000
#: How often the event log's retention is applied (and once at the start).
PRUNE_EVERY_S = 3600.0
#: A live camera that gives no frame for this long, with no error, has stalled (OpenCV's FFmpeg waits 30 s for a
#: stream that stopped sending, a GStreamer pipeline may wait for good): what it showed leaves then.
STALL_S = 10.0


@dataclass(frozen=True)
class DaemonOptions:
    sources: tuple[SourceSpec, ...]
    duration_s: float | None = None  # wall-clock seconds, then stop
    max_frames: int | None = None  # frames taken from the cameras, then stop
    realtime: bool = True  # files at their own frame rate (False: as fast as possible, every frame)
    votes: VoteSettings = VoteSettings()
    gate: GateSettings = GateSettings()
    max_width: int = 0  # frames wider are shrunk on capture (0: as captured)
    fps_cap: float = 0.0  # the profile's capture cap: frames per second kept at most (0: all)
    examine_fps: float = 5.0  # frames per second per camera the gate looks at, at most (0: all)
    folder_fps: float = 2.0  # a folder of images plays at this rate
    rss_limit_mb: int = 0  # warn when resident memory passes this (0: no limit)
    events_keep_s: float = 0.0  # events older than this are pruned, each concept's last sighting kept (0: none)
    stall_s: float = STALL_S  # a live camera that gives no frame this long while something is in view has stalled
    frozen_s: float = FROZEN_S  # a live camera whose frames stay the same this long while something is in view has
    # frozen (0: never)
    here: str | None = None  # the camera whose newest recognised frame answers "is Bo here?" (None: the first)


@dataclass
class Summary:
    frames_read: int = 0
    frames_processed: int = 0
    frames_gated: int = 0
    frames_dropped: int = 0
    frames_failed: int = 0
    stages_ms: dict = field(default_factory=dict)
    lag_ms: dict = field(default_factory=dict)  # source-to-decision lag of recognised frames: median, p95
    rss_mb: float = 0.0  # the most resident memory seen
    source_errors: dict = field(default_factory=dict)  # camera -> why its file or folder ended unread
    still_running: list[str] = field(default_factory=list)  # the parts `run` stopped that had not ended in time

    def to_json(self) -> dict:
        return {"type": "summary", "frames_read": self.frames_read, "frames_processed": self.frames_processed,
                "frames_gated": self.frames_gated, "frames_dropped": self.frames_dropped,
                "frames_failed": self.frames_failed, "stages_ms": self.stages_ms, "lag_ms": self.lag_ms,
                "rss_mb": round(self.rss_mb, 1), "source_errors": self.source_errors}


def median_and_p95(values) -> dict:
    """{"median", "p95"} of some milliseconds ({} for none); the 95th percentile by nearest rank, so it is one
    of the values and never below the median (with two values, the larger)."""
    ordered = sorted(values)
    if not ordered:
        return {}
    p95 = ordered[math.ceil(0.95 * len(ordered)) - 1]
    return {"median": round(statistics.median(ordered), 1), "p95": round(p95, 1)}


class TimedEmbedder:
    """The embedder, timed: the embed stage inside recognition (`spent_ms` adds up every call)."""

    def __init__(self, inner):
        self._inner = inner
        self.spent_ms = 0.0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def embed(self, images):
        started = time.perf_counter()
        try:
            return self._inner.embed(images)
        finally:
            self.spent_ms += 1000 * (time.perf_counter() - started)


def rss_mb() -> float:
    """This process's resident memory (Linux; 0 where /proc is not there)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def _votes_for(spec: SourceSpec, votes: VoteSettings) -> VoteSettings:
    """A photo given as the source is one frame: what it shows is decided on it, as a second look would see the
    same pixels (with `confirm` frames to wait for, its concepts were never announced unless by the sure margin)."""
    return replace(votes, confirm=1) if spec.kind == "photo" else votes


class Daemon:
    """Runs the cameras until stopped, out of frames, or out of time; reports events through `report`."""

    def __init__(self, household, options: DaemonOptions, report: Callable[[Event], None],
                 speaker=None, snapshots=None, clock: WallClock | None = None, supervisor: Supervisor | None = None,
                 backups: ScheduledBackups | None = None, settings_file: SettingsFile | None = None):
        """`speaker`: says announcements (edge_rap.speech.tts.Speaker), or None to only report them; `supervisor`:
        systemd, told when the cameras run, how they are, that the loop turns, and when it stops; `backups`: the
        scheduled backups, in their own thread while the cameras are watched; `settings_file`: `--config`'s,
        whose edits are said to wait for a restart."""
        self.household = household
        self.backups = backups
        self.settings_file = settings_file
        self.clock = clock or WallClock()
        self.options = options
        self.report = self._report
        self._out = report  # (the stream: print, --json)
        self.in_stream: set[tuple[str, int | None]] = set()  # (camera, concept id) whose arrival was reported, and
        # not yet its leaving: a concept forgotten while in view leaves the stream too
        self.snapshots = snapshots
        self.speaker = speaker
        self.times: dict[str, deque[float]] = {s: deque(maxlen=1024) for s in STAGES + FIGURES}
        retriever = household.retriever
        self.embedder = retriever.embedder = TimedEmbedder(retriever.embedder)
        self.announcer = Announcer(self._said_and_report if household.vlm else self.report,
                                   speaker.say if speaker else None,
                                   household.assistant if household.vlm else None,
                                   known=lambda: {c.id: c.name for c in household.concepts()})
        self.presence: dict[str, Presence] = {}
        self.gates: dict[str, MotionGate] = {}
        self.last: dict[str, Recognition] = {}
        self.rechecked: dict = {}  # camera -> the whole-frame vector of its last re-check
        self.last_time_s: dict[str, float] = {}  # camera -> its newest frame's source time
        # "Here" is where the voice's microphone is, the robot's own camera: not whichever camera moved last.
        self.here = options.here or (options.sources[0].name if options.sources else None)
        self.latest: tuple | None = None  # (`here`'s newest recognised frame's Image, its Recognition): voice, /api/ask
        self.summary = Summary()
        self.unlogged: deque[Event] = deque()  # events the log could not take yet, oldest first
        self.unlogged_dropped = 0  # the oldest of them, let go past UNLOGGED_MAX
        self._log_replaced = False  # the log's file was replaced in a way that cannot be followed (said once)
        self.in_view: dict[tuple, Event] = {}  # place -> its arrival logged, while its leaving is not
        self.carried: list[Event] = []  # those arrivals still to log again into a log started anew
        self._said_once = SaidOnce(log)  # what the log refuses (a full disk), events or the lines said: once each
        self.forgotten: set[int] = set()  # the ids of concepts seen forgotten (a memory never gives an id twice)
        self.failing: dict[str, tuple[str, int]] = {}  # camera -> the failure its frames repeat, and how many did
        self.stalled: dict[str, float] = {}  # camera -> when it last gave a frame (monotonic), while it is stalled
        self.same: dict[str, SameFrames] = {}  # live camera -> since when its frames have been the same
        self.frozen: dict[str, float] = {}  # camera -> the time of its frozen frame's first coming, while frozen
        self.left_before: dict[tuple[str, str], float] = {}  # (live camera, name) -> when a run before this one
        # last saw it leave there, within the cooldown
        self.supervisor = supervisor or Supervisor(Notifier(None))
        self.heartbeat = self.supervisor.heartbeat("the frame loop")
        if household.vlm:  # an answer that stops moving on (a driver call that never returns) silences the announcer
            self.supervisor.watch(household.assistant.turns.heartbeat)
        self.concept_count = 0  # for the status line
        self.frame_at: float | None = None  # when a camera last gave a frame (monotonic)

    def _said_and_report(self, event: Event) -> None:
        """An arrival announced: logged when it happened, with its template line; the line said (a VLM's) is
        recorded now. A log that cannot take it (a full disk) is said once while it fails, not at every arrival."""
        if event.id is not None:
            events, why = self.household.events, None
            try:
                events.set_said(event)
            except EdgeRapError as e:
                why = e
            self._said_once("said", why is not None, f"{why}; the log keeps the template lines of the arrivals "
                            "announced until it can be written", f"{events.path}: the lines said are logged again")
        self.report(event)

    def _report(self, event: Event) -> None:
        """Report an event (the announcer's thread too), keeping count of the visits the stream has open."""
        place = (event.camera, event.concept_id)
        if event.kind == "arrived":
            self.in_stream.add(place)
        else:
            self.in_stream.discard(place)
        self._out(event)

    def _forgotten_leave(self, events: list[Event]) -> None:
        """The leavings of concepts forgotten while in view: reported where the stream showed their arrival (a
        script following it would have them here for good), not logged (forget removed their visits from the log,
        and an arrival dropped as it was forgotten was never shown)."""
        for event in events:
            if (event.camera, event.concept_id) in self.in_stream:
                self.report(event)

    def _log_and_report(self, event: Event) -> None:
        for kept in self._log_all([event]):
            self.report(kept)

    def run(self, stop: threading.Event) -> Summary:
        closed = self.household.events.begin_watch()
        if not plausible(now := self._wall()):
            log.warning("the clock reads %s, so it is not set yet: events are logged at its time, and moved with it "
                        "when it is set (NTP)", _when(now))
        for pid, since in self.household.events.other_watches():
            log.warning("another edge-rap run (pid %d, since %s) watches this memory too: both log events here, and "
                        "a camera both open gives its frames to one", pid, _when(since))
        if self.snapshots is not None:
            self._remove_unnamed_snapshots()
        if closed:
            log.warning("closed %s an earlier run left open (it died, stopped with a leaving the log never took, or "
                        "was an older edge_rap: %s)",
                        counted(len(closed), "visit"), ", ".join(sorted({f"<{e.name}> on {e.camera}" for e in closed})))
        started = time.monotonic()
        ready = threading.Event()
        halt = threading.Event()  # the cameras' own stop: set when watching ends, however it ends
        caps = [c for c in (self.options.fps_cap, self.options.examine_fps) if c > 0]
        cameras = [Camera(spec, halt, realtime=self.options.realtime, max_width=self.options.max_width,
                          folder_fps=self.options.folder_fps, fps_cap=min(caps, default=0.0), ready=ready).start()
                   for spec in self.options.sources]
        for camera in cameras:
            self.presence[camera.spec.name] = Presence(_votes_for(camera.spec, self.options.votes))
            self.gates[camera.spec.name] = MotionGate(self.options.gate)
        self.same = {c.spec.name: SameFrames() for c in cameras if c.spec.live and self.options.frozen_s > 0}
        self.left_before = self._left_before_start(cameras)
        stamp, forced = memory_stamp(self.household.root), set()
        outages = {c.spec.name: 0 for c in cameras}
        next_check = next_prune = time.monotonic()
        next_log_check = next_prune + PRUNE_EVERY_S  # (checked as it opened)
        with contextlib.suppress(EdgeRapError):  # (a memory that cannot be read now says so at its first frame)
            self.concept_count = len(self.household.concepts())
        if self.backups is not None:
            self.backups.start()
        try:
            self.supervisor.ready(self.status)  # the models were loaded as the household opened; the cameras start
            while not stop.is_set():
                self.heartbeat.beat()  # every turn, with frames or without (a camera away is no hang)
                if time.monotonic() >= next_check:
                    self._wall()  # a clock set while nothing happens is followed before the next event, and said
                    self._check_memory()
                    self.household.events.still_watching()
                    self._log_unlogged()  # the log may take what it refused before
                    if self.settings_file is not None:
                        self.settings_file.look()
                    next_check = time.monotonic() + 10.0
                if time.monotonic() >= next_log_check:
                    self._check_log()
                    next_log_check = time.monotonic() + PRUNE_EVERY_S
                if time.monotonic() >= next_prune:
                    self._prune_events()
                    next_prune = time.monotonic() + PRUNE_EVERY_S
                if self.options.duration_s is not None and time.monotonic() - started >= self.options.duration_s:
                    break
                if self.options.max_frames is not None and self.summary.frames_read >= self.options.max_frames:
                    break
                ready.clear()
                lost = [c.spec.name for c in cameras if c.outages != outages[c.spec.name]]  # before the frames:
                outages = {c.spec.name: c.outages for c in cameras}  # a frame from before the loss comes with them
                lost += self._stalls(cameras)
                ended = [c.spec.name for c in cameras if c.finished.is_set()]  # (its last frame, too)
                if len(ended) == len(cameras):  # all of them: the run's end makes them leave, after the last lines
                    ended = []
                frames = [f for f in (c.slot.take() for c in cameras) if f is not None]
                if not frames:
                    self._sources_lost(lost, ended)
                    if all(c.finished.is_set() for c in cameras):
                        break
                    ready.wait(0.2)
                    continue
                self.frame_at = time.monotonic()
                now = memory_stamp(self.household.root)
                if now != stamp:  # another process changed the memory: look again at every camera
                    stamp, forced = now, {c.spec.name for c in cameras}
                    names = {c.id: c.name for c in self.household.concepts()}
                    self.concept_count = len(names)
                    for camera, presence in self.presence.items():
                        self._forgotten_leave(self._left(camera, presence.forget(set(names), self.last_time_s.get(
                            camera, 0.0))))
                        presence.rename(names)  # a renamed concept leaves under its new name
                self.summary.frames_dropped = sum(c.slot.dropped for c in cameras)  # live, for /api/stats
                froze = self._freezes(frames)
                for camera in (c for c in cameras if c.spec.name in froze):
                    camera.reopen()  # a new connection may give live frames again
                lost += froze
                for frame in frames:
                    self.summary.frames_read += 1
                    if frame.camera in self.frozen:  # the frozen frame is not looked at again
                        self.summary.frames_gated += 1
                        continue
                    self._step(frame, frame.camera in forced)
                    forced.discard(frame.camera)
                self._sources_lost(lost, ended)
        finally:
            self.supervisor.stopping()
            halt.set()  # a limit (--duration, --max-frames) ends the loop too: no capture thread outlives it
            if self.backups is not None:  # a backup in progress ends at its next file, its partial file removed;
                self.backups.close(0.0)  # waited for below, with the cameras
            if not stop.is_set():  # the sources ended: the last announcements are still made
                self.announcer.flush(30.0)
            self.announcer.close()
            leavings = [self._left(camera, presence.end(self.last_time_s.get(camera, 0.0)))
                        for camera, presence in self.presence.items()]  # at each camera's last frame
            last = self._log_all([e for events in leavings for e in events])
            if not self.unlogged:  # else the next start closes them
                self.household.events.end_watch()
            else:  # said to be kept: the end of the run must not drop them without a word
                self._without_snapshots()  # never to be named (a run killed instead: the next start deletes them)
                never = len(self.unlogged) + self.unlogged_dropped
                owed = self._left_open()
                log.error("%s: %s never logged (the event log refused %s to the end)%s", self.household.events.path,
                          counted(never, "event was", "events were"), noun(never, "it", "them"),
                          f"; the next run closes the {counted(owed, 'visit')} so left open in it, as after a kill"
                          if owed else "")
            try:
                for event in last:
                    self.report(event)
            except (BrokenPipeError, OutputError):  # the reader left, or the disk is full; the event log has them
                pass
            except OSError as e:  # never hide the cause of the stop
                log.warning("the last events could not be reported: %s", e)
            deadline = time.monotonic() + JOIN_S  # one wait for them all, not one per camera
            for camera in cameras:
                camera.join(max(0.0, deadline - time.monotonic()))
            if self.backups is not None:
                self.backups.close(max(0.0, deadline - time.monotonic()))
            self._finish(cameras)
        return self.summary

    def _remove_unnamed_snapshots(self) -> None:
        """Delete the snapshots no event names, written over LONG_CALL_S before this start (a run killed between a
        snapshot and its event's row; a log restored from before them): `forget` would never find them. The margin
        leaves another run's snapshot whose row is still to come (its loop held by a locked log) alone; a log that
        cannot be read deletes none, nor one beside a copy whose events may name them: a damaged log set aside
        (its events not all salvaged), a memory a restore moved aside (kept whole to go back to)."""
        folder = self.snapshots.policy.folder
        try:
            old = [p for p in self.snapshots.settled() if p.stat().st_mtime < time.time() - LONG_CALL_S
                   and int(p.name[:13]) >= self.snapshots.own_since_ms]  # (another memory's before: left)
            unnamed = self.household.events.unnamed(old) if old else []
        except (OSError, EdgeRapError) as e:
            log.warning("the snapshots no event names in %s were not looked for: %s", folder, e)
            return
        kept = [*self.household.events.damaged_copies(), *moved_aside(self.household.root)]  # (after the read:
        if unnamed and kept:  # a log it met damaged in was set aside by it)
            log.info("the snapshots no event names in %s were left: %s, kept beside the memory, may name them",
                     folder, " and ".join(map(str, kept)))
            return
        removed = 0
        for path in unnamed:
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
        if removed:
            log.warning("deleted %s in %s that no event names (a run was killed between a snapshot and its event, "
                        "or the log was restored from before them)", counted(removed, "snapshot"), folder)

    def status(self) -> str:
        """The line `systemctl status` shows: what is watched, and how long since a camera last gave a frame."""
        last = "no frame yet" if self.frame_at is None else f"last frame {time.monotonic() - self.frame_at:.1f} s ago"
        cameras, concepts = counted(len(self.options.sources), "camera"), counted(self.concept_count, "concept")
        edited = self.settings_file.status() if self.settings_file is not None else ""
        return f"watching {cameras}, {concepts}; {last}{edited}"

    def _left_before_start(self, cameras: list[Camera]) -> dict[tuple[str, str], float]:
        """What a run before this one saw leave a live camera within its cooldown (a restart: an upgrade, systemd
        after a crash): its return is logged but not announced again, as after a dropped stream, rather than
        greet everyone in the room at every restart. Files and folders are watched afresh each run."""
        now = self._wall()
        cooldown = {c.spec.name: self.presence[c.spec.name].settings.cooldown_s for c in cameras if c.spec.live}
        if not plausible(now) or not any(cooldown.values()):
            return {}
        try:
            events = self.household.events.query(since=now - max(cooldown.values()))
        except EdgeRapError as e:
            log.warning("%s", e)
            return {}
        return {(e.camera, e.name): e.wall for e in events
                if e.kind == "left" and e.camera in cooldown and now - e.wall < cooldown[e.camera]}

    def _sources_lost(self, cameras: list[str], ended: list[str]) -> None:
        """Live sources that dropped (they reconnect by themselves): what each showed leaves at its last frame,
        not when it comes back (a return within the cooldown is not announced again), and the scene after the
        reconnection is looked at afresh. Sources that `ended` (a file, a folder) while others go on: what each
        showed leaves at its last frame now, not when the run stops, months later beside a live camera. Every
        leaving is logged before any is reported."""
        events = [e for camera in cameras
                  for e in self._left(camera, self.presence[camera].interrupt(self.last_time_s.get(camera, 0.0)))]
        events += [e for camera in ended
                   for e in self._left(camera, self.presence[camera].end(self.last_time_s.get(camera, 0.0)))]
        for camera in cameras:
            self.gates[camera] = MotionGate(self.options.gate)
            self.rechecked.pop(camera, None)
        if self.here in {*cameras, *ended}:
            self.latest = None  # a question is not answered from a camera that no longer sees: "<bo> is here"
        for event in self._log_all(events):
            self.report(event)

    def _stalls(self, cameras: list[Camera]) -> list[str]:
        """The live cameras that stalled since the last look: no frame for `stall_s` and no error, while something
        was in view (a stream that stopped sending; a camera that failed is lost, not stalled). Each is said once,
        its return too: until then, "where is Bo?" would answer "on the den camera now" of a camera that sees
        nothing. The `here` camera's frame is let go so too, whatever was in view: "what is on the table?" was
        answered from a frame of hours ago."""
        now, stalled = time.monotonic(), []
        for camera in (c for c in cameras if c.spec.live and c.last_read is not None):
            name, last = camera.spec.name, camera.last_read
            if name == self.here and now - last >= self.options.stall_s:
                self.latest = None  # nothing in view to say left, but its last frame is no longer "here"
            if name in self.stalled:
                if last > self.stalled[name]:
                    log.warning("camera %s: frames again, after %.0f s without one", name,
                                last - self.stalled.pop(name))
                continue
            if now - last >= self.options.stall_s and self.presence[name].present:
                log.warning("camera %s: no frame for %.0f s with no error (the stream stalled): what it showed has "
                            "left", name, now - last)
                self.stalled[name] = last
                stalled.append(name)
        return stalled

    def _freezes(self, frames: list[Frame]) -> list[str]:
        """The live cameras that froze with these frames: they still come, but every one the same pixels, for
        `frozen_s` while something was in view (a wedged driver, a hung encoder, a relay repeating its last frame:
        the gate would let none through, and what was in view would stay for good). What it showed leaves, as at a
        stall; its frames are not looked at until they change again (on this connection or the one it is reopened
        on). Each is said once, its thaw too. A frame's pixels are told apart only while something is in view or the
        camera is frozen: nothing else can stay for good, and a 1080p frame's digest costs twice the gate's look."""
        froze = []
        for frame in (f for f in frames if f.camera in self.same):
            name = frame.camera
            if name not in self.frozen and not self.presence[name].present:
                self.same[name].clear()
                continue
            since = self.same[name].since(frame.pixels, frame.time_s)
            if name in self.frozen:
                if since != self.frozen[name]:
                    log.warning("camera %s: its frames change again, after %.0f s of the same one", name,
                                since - self.frozen.pop(name))
            elif frame.time_s - since >= self.options.frozen_s and self.presence[name].present:
                log.warning("camera %s: the same frame for %.0f s (the camera froze): what it showed has left; "
                            "reopening it", name, frame.time_s - since)
                self.frozen[name] = since
                froze.append(name)
        return froze

    def _wall(self) -> float:
        """The wall clock's time now, for an event; where it was set since the last reading (NTP), this run's
        events move with it first."""
        reading = self.clock.read()
        if reading.step_s:
            self._clock_set(reading)
        return reading.wall

    def _clock_set(self, reading: Reading) -> None:
        """This run's events, those logged and those kept to log, were timed by a clock that was off by the step
        (a board with no clock battery boots in 1970): they keep their spacing, at the clock's new time. Those
        already reported keep theirs; the line said here tells why the log's differ."""
        events, moved = self.household.events, len(self.unlogged)
        for event in self.unlogged:
            event.wall += reading.step_s
        if events.watch is not None:
            try:
                moved += events.move(events.watch, reading.step_s)
            except EdgeRapError as e:
                log.warning("%s", e)
        log.warning("the clock was set %+.0f s, to %s: the %s this run logged %s moved with it", reading.step_s,
                    _when(reading.wall), counted(moved, "event"), noun(moved, "is", "are"))

    def _left(self, camera: str, changes: list[Change]) -> list[Event]:
        wall = self._wall()
        return [Event("left", change.name, camera, change.time_s, wall, concept_id=change.concept_id)
                for change in changes]

    def _log_all(self, events: list[Event]) -> list[Event]:
        """Log the events, after any the log refused before, in order; the events to report: those of concepts
        still remembered, under their names of now. What the log cannot take (a full disk) is kept and logged when
        it can be (the next event, the next sign of life): a visit whose leaving was refused must not stay open in
        the log for good."""
        kept = self._of_remembered(events)
        self.unlogged.extend(kept)
        self._log_unlogged()
        return [e for e in kept if e.concept_id not in self.forgotten]  # (forgotten as they were logged)

    def _log_unlogged(self) -> bool:
        """Log the events kept; whether every one is logged now."""
        logged = []
        try:
            while self.unlogged:
                try:
                    self._follow_log_file()
                    self.household.events.add(self.unlogged[0])
                except EdgeRapError as e:
                    full = isinstance(e, EventLogFull)  # a lock held past the busy timeout passes: the snapshots
                    unshown = self._without_snapshots() if full else 0  # stay, named when their events are logged
                    self._said_once("log", True, f"{e}; events are kept to log when it can be written"
                                    f"{' (without their snapshots)' if self.snapshots and full else ''}", "")
                    if unshown:  # their room may be what the log needed; a lock held past the busy timeout is not
                        continue  # waited for twice (the loop stalled 20 s)
                    self._let_go()
                    return False
                logged.append(self.unlogged.popleft())
                if logged[-1].kind == "arrived":
                    self.in_view[_place(logged[-1])] = logged[-1]
                else:
                    self.in_view.pop(_place(logged[-1]), None)
        finally:
            self._follow_memory(logged)
        self._said_once("log", False, "", f"{self.household.events.path}: the event log takes events again; every "
                        "kept event is logged")
        return True

    def _let_go(self) -> None:
        """Past UNLOGGED_MAX kept, the first visits kept whole are let go, each an arrival with its leaving: never a
        leaving alone, whose arrival the log holds (that visit would stay open in it), nor an arrival whose leaving
        would be logged without it. What stays beside the whole visits is bounded: at most a leaving owed and an
        arrival still in view for each concept on each camera."""
        while len(self.unlogged) > UNLOGGED_MAX:
            opened: dict = {}  # place -> where its arrival is kept
            for index, event in enumerate(self.unlogged):
                if event.kind == "arrived":
                    opened.setdefault(_place(event), index)
                elif _place(event) in opened:
                    arrival = self.unlogged[opened[_place(event)]]
                    del self.unlogged[index]
                    del self.unlogged[opened[_place(event)]]
                    self._without_snapshots([arrival, event])  # (a lock keeps them: named by no event now)
                    self.unlogged_dropped += 2
                    break
            else:
                return

    def _left_open(self) -> int:
        """The visits the log holds open for want of a leaving it refused: the kept leavings whose arrivals were
        logged (not kept before them)."""
        arrived, owed = set(), 0
        for event in self.unlogged:
            key = _place(event)
            if event.kind == "arrived":
                arrived.add(key)
            elif key not in arrived:
                owed += 1
        return owed

    def _without_snapshots(self, events: Iterable[Event] | None = None) -> int:
        """Delete the snapshots of the events the log refused for want of room, that a run's end leaves unlogged, or
        `events` let go, and unlink them from those events (logged without them, when they can be); how many. On a
        full disk the pictures' room goes to the events; a run that stops before the log takes them, or a visit let
        go, leaves no picture that no event names, which `forget` would never find (a run killed leaves them to the
        next start's `_remove_unnamed_snapshots`). One that cannot be deleted (its drive gone read-only under the
        refused write) stays its event's, named by it when it is logged."""
        deleted = 0
        for event in (e for e in (self.unlogged if events is None else events) if e.snapshot is not None):
            try:
                Path(event.snapshot).unlink(missing_ok=True)
            except OSError:  # raised, it failed every frame after, each event unreported, and the run at its end
                continue
            event.snapshot = None
            deleted += 1
        return deleted

    def _follow_log_file(self) -> None:
        """A log moved or deleted while the daemon runs (history cleared), or found anew where the memory's drive
        was mounted again: the log at its path is used (a new one where none is), and this daemon registered in it,
        before the next event is logged. While the memory folder is away, reopen refuses (EventLogError): the
        events are kept meanwhile. (A damaged log set aside by another process is followed, and said, by the log
        itself, at its next use.)"""
        events = self.household.events
        if events.replaced() and not events.set_aside_elsewhere() and not self._log_replaced:
            found, aside = events.path.exists(), set(events.damaged_copies())
            if events.reopen():  # (a file found there that is no sound log is set aside, the log saying so first)
                damaged = bool(set(events.damaged_copies()) - aside)
                log.warning("%s was moved, deleted or mounted again: %s", events.path,
                            "the file found there was damaged, set aside, and a new event log started" if damaged
                            else "the event log found there is used" if found else "a new event log is started")
                # what is in view arrives again in a log without its arrival (new, or a file put in the log's place:
                # one no log is set aside as damaged): its leaving is never logged alone
                self.carried = self._of_remembered([e for e in self.in_view.values() if not self._held(e)])
            else:
                self._log_replaced = True  # said once; the old file takes the events until `run` restarts
                log.warning("%s was moved or deleted, but its -wal or -shm is still there: events go on into the "
                            "old file until `run` restarts (delete all three to start a new log now)", events.path)
        if events.watch is None:  # (again, where the new log refused it at first: a full disk)
            events.begin_watch()
        while self.carried:  # (under this daemon's watch; where the disk is full, the rest at the next event)
            events.add(self.carried[0])
            self.carried.pop(0)

    def _held(self, arrival: Event) -> bool:
        """Whether the log now at the path holds `arrival`, logged before: the same log, found again where its drive
        was mounted again (by its row's id, camera and source time: a name may have changed since, and a clock set
        moved its wall time)."""
        row = self.household.events.get(arrival.id) if arrival.id is not None else None
        return row is not None and (row.kind, row.camera, row.time_s) == (arrival.kind, arrival.camera, arrival.time_s)

    def _remembered(self) -> dict[int, str] | None:
        """The concepts remembered now, id to name; None when the memory cannot be read (nothing is dropped then:
        recognition, which made the events, read it a moment ago)."""
        try:
            return {c.id: c.name for c in self.household.concepts()}
        except EdgeRapError as e:
            log.warning("cannot check the concepts before logging their events: %s", e)
            return None

    def _of_remembered(self, events: list[Event]) -> list[Event]:
        """The events whose concepts are still remembered, under their names of now. A concept forgotten (by
        another process, the API, a voice command) while its frame was worked on leaves nothing behind: its events
        are neither logged nor reported, and their snapshots are deleted."""
        names = self._remembered() if events else None
        if names is None:
            return events
        kept = []
        for event in events:
            if event.concept_id is not None and event.concept_id not in names:
                self.forgotten.add(event.concept_id)
                log.info("not logging <%s> %s: it was forgotten", event.name, event.kind)
                if event.snapshot is not None:
                    Path(event.snapshot).unlink(missing_ok=True)
                continue
            if event.concept_id is not None:
                event.name = names[event.concept_id]
            kept.append(event)
        return kept

    def _follow_memory(self, logged: list[Event]) -> None:
        """After logging, what the memory says now: a forget or rename committed between the check before logging
        and the event's row purged or renamed its events before that row was there, so the row follows it here.
        (A change committed after this look is still to purge or rename, and finds the row.)"""
        names = self._remembered() if any(e.concept_id is not None for e in logged) else None
        if names is None:
            return
        for event in (e for e in logged if e.concept_id is not None):
            now = names.get(event.concept_id)
            if now == event.name:
                continue
            try:
                if now is None:
                    self.forgotten.add(event.concept_id)
                    self.household.events.purge(event.name)
                else:
                    self.household.events.rename(event.name, now)
                    event.name = now
            except (EdgeRapError, sqlite3.Error) as e:
                log.warning("%s: <%s>'s event could not follow the memory's change (%s)",
                            self.household.events.path, event.name, e)

    def _check_log(self) -> None:
        """The hourly check of the whole log: damage that no write met (the daemon's own pages cached, a torn -wal)
        is set aside within the hour, not logged into for months while every reader says it is damaged."""
        try:
            self.household.events.check()
        except EdgeRapError as e:
            log.warning("%s", e)

    def _prune_events(self) -> None:
        """The log's retention (the profile's [limits] events_days); a log that cannot be pruned now is warned of
        and tried again at the next prune."""
        if self.options.events_keep_s <= 0:
            return
        try:  # counted back from the earliest of the clock, the last event logged and the clock's first reading
            # plus the steady time since: a clock wrongly ahead at the start (a bad clock chip), or set wrongly ahead
            # while the daemon runs (this run's events move with it), takes no history with it
            now, last = self._wall(), self.household.events.last_wall()
            newest = min(t for t in (now, last, self.clock.since_first()) if t is not None)
            removed = self.household.events.prune(newest - self.options.events_keep_s)
        except EdgeRapError as e:
            log.warning("%s", e)
            return
        if removed:
            log.info("pruned %s older than %g days from the log", counted(removed, "event"),
                     self.options.events_keep_s / 86400)

    def _check_memory(self) -> None:
        now = rss_mb()
        if self.options.rss_limit_mb and now > self.options.rss_limit_mb >= self.summary.rss_mb:
            log.warning("resident memory %.0f MB passed the profile's limit of %d MB", now, self.options.rss_limit_mb)
        self.summary.rss_mb = max(self.summary.rss_mb, now)

    def _step(self, frame: Frame, forced: bool) -> None:
        """One frame; a frame that fails is counted and logged, never fatal."""
        try:
            t = time.perf_counter()
            seen = self.gates[frame.camera].look(frame.pixels, frame.time_s)
            if seen == "due":
                seen = "moved" if self._looks_changed(frame) else "still"
            passes = seen == "moved" or forced or self.presence[frame.camera].undecided
            self.times["gate"].append(1000 * (time.perf_counter() - t))
            hits = None
            if passes:
                t, embedded = time.perf_counter(), self.embedder.spent_ms
                try:
                    recognition = self.household.recognize(frame.image())
                except Exception:
                    self._saw_nothing(frame)
                    raise
                embed_ms = self.embedder.spent_ms - embedded
                self.times["embed"].append(embed_ms)
                self.times["retrieve"].append(1000 * (time.perf_counter() - t) - embed_ms)
                self.last[frame.camera] = recognition
                if frame.camera == self.here:  # one assignment: safe to read from another thread
                    self.latest = (frame.image(), recognition)
                hits = recognition.hits
                self.summary.frames_processed += 1
            else:
                self.summary.frames_gated += 1
            t = time.perf_counter()
            self.last_time_s[frame.camera] = frame.time_s
            changes = self.presence[frame.camera].update(frame.time_s, hits)
            self.times["track"].append(1000 * (time.perf_counter() - t))
            if passes and frame.captured:
                self.times["lag"].append(1000 * (time.monotonic() - frame.captured))
            if changes:
                self._announce(frame, changes)
            if passes:
                self._recovered(frame.camera)
        except EdgeRapError as e:
            self._failed(frame, str(e))
        except (BrokenPipeError, OutputError):  # the events cannot be written (`| head`, a full disk): not a bad frame
            raise
        except Exception as e:  # one bad frame never kills the loop; the traceback goes to the log
            self._failed(frame, f"failed ({type(e).__name__}: {e})", logging.ERROR)

    def _saw_nothing(self, frame: Frame) -> None:
        """A frame that could not be recognised saw nothing: while frames fail (the memory's drive pulled, a memory
        reindexed by a model this daemon does not run), what was in view leaves as it would unseen, rather than stay
        in the log for as long as they fail; one bad frame ends no visit (a leaving takes a second miss)."""
        self.last_time_s[frame.camera] = frame.time_s
        changes = self.presence[frame.camera].update(frame.time_s, [])
        if changes:
            self._announce(frame, changes)

    def _failed(self, frame: Frame, why: str, level: int = logging.WARNING) -> None:
        """A frame that failed: counted, and said once while its camera's frames fail the same way (a memory
        reindexed by a model this daemon does not run fails every recognised frame, for as long as it runs)."""
        self.summary.frames_failed += 1
        said, count = self.failing.get(frame.camera, (None, 0))
        self.failing[frame.camera] = (why, count + 1)
        if why != said:
            log.log(level, "camera %s frame %d: %s (said once while it repeats)", frame.camera, frame.index, why,
                    exc_info=level >= logging.ERROR)

    def _recovered(self, camera: str) -> None:
        """A frame recognised and its decisions made: where its camera's frames were failing, say that they are no
        more."""
        if camera in self.failing:
            log.warning("camera %s: frames are recognised again, after %d that failed", camera,
                        self.failing.pop(camera)[1])

    def _looks_changed(self, frame: Frame) -> bool:
        """The re-check of a still scene: one whole-frame embedding against the last re-check's. Whatever
        arrived too slowly to count as motion changes it; an unchanged scene costs one embedding. The first
        re-check, with no reference yet, is a recognition too: the scene since the start (or a reconnection) was
        recognised only while it moved, and a concept just under its threshold on those frames was never looked
        for again while it stood still (a scene that changed later differs from the reference and is recognised)."""
        vector = self.embedder.embed([frame.pixels])[0]
        previous, self.rechecked[frame.camera] = self.rechecked.get(frame.camera), vector
        return previous is None or float(previous @ vector) < RECHECK_SAME

    def _announce(self, frame: Frame, changes: list[Change]) -> None:
        wall = self._wall()
        for change in changes:
            if change.kind == "left":
                self._log_and_report(Event("left", change.name, frame.camera, change.time_s, wall,
                                           concept_id=change.concept_id))
        arrived = [c for c in changes if c.kind == "arrived"]
        if not arrived:
            return
        for change in arrived:
            left = self.left_before.pop((frame.camera, change.name), None)
            if left is not None and wall - left < self.presence[frame.camera].settings.cooldown_s:
                change.announce = False
        recognition = self.last[frame.camera]
        # The concepts forgotten while the frame was worked on are left out before the line names them.
        events = self._of_remembered([Event("arrived", c.name, frame.camera, c.time_s, wall, c.box, c.score,
                                            concept_id=c.concept_id) for c in arrived])
        loud = {c.concept_id for c in arrived if c.announce}
        by_id = {h.concept.id: h for h in recognition.hits}
        spoken = [by_id[e.concept_id] for e in events if e.concept_id in loud and e.concept_id in by_id]
        line = template_line(spoken, recognition.size) if spoken else None
        for event in events:
            event.said = line if event.concept_id in loud else None
            if self.snapshots:
                event.snapshot = self.snapshots.save(frame.pixels, event.box, event.name)
        # Logged now, in order with every leaving: a VLM's line takes seconds, and an arrival logged only then would
        # come after its own leaving (the log would say it is still there), or never, when the run stops first.
        events = self._log_all(events)
        for event in events:
            if event.said is None:
                self.report(event)
        said = [e for e in events if e.said is not None]
        if said:
            self.announcer.submit(Announcement(said, frame, recognition))

    def _finish(self, cameras: list[Camera]) -> None:
        errors = {c.spec.name: c.error for c in cameras}  # read once: one not opened yet is read from its path as it
        # stands, so a FIFO removed meanwhile was said "never opened" and "removed before it opened" in source_errors
        for camera in cameras:
            error = errors[camera.spec.name]
            if error and (camera.spec.live or not camera.finished.is_set()):  # (a file or folder that ended said
                # why when it happened; one still waiting to open, a FIFO with no writer, never did)
                log.error("camera %s: %s", camera.spec.name, error)
        self._check_memory()
        for camera in cameras:
            camera.slot.let_go()  # (a frame still waiting was read and never looked at: dropped)
        self.summary.frames_dropped = sum(c.slot.dropped for c in cameras)
        self.summary.source_errors = {name: error for name, error in errors.items() if error}
        self.times["capture"] = deque(ms for c in cameras for ms in c.read_ms)
        self.times["generate"] = self.announcer.generate_ms
        self.times["speak"] = self.speaker.stage_ms if self.speaker else deque()
        self.summary.stages_ms = {s: round(statistics.median(self.times[s]), 2) for s in STAGES if self.times[s]}
        self.summary.lag_ms = median_and_p95(self.times["lag"])


def _place(event: Event) -> tuple:
    """Whose visit of which camera an event is part of: a concept by its id, as one renamed meanwhile leaves under
    its new name."""
    return event.name if event.concept_id is None else event.concept_id, event.camera


def _when(wall: float) -> str:
    """A wall time as said in a log line: "2026-12-04 17:42:04"."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall))
