"""`edge-rap run`: the daemon assembled from its settings, run until stopped, its events reported."""

from __future__ import annotations

import logging
import socket
import threading
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TextIO

from edge_rap.config import Settings, with_detector
from edge_rap.daemon.backups import BackupSchedule, ScheduledBackups
from edge_rap.daemon.config import RunConfig
from edge_rap.daemon.events import SnapshotPolicy, Snapshots
from edge_rap.daemon.loop import Daemon, DaemonOptions, Summary
from edge_rap.daemon.notify import Supervisor
from edge_rap.daemon.settings_file import SettingsFile
from edge_rap.daemon.shutdown import STOP_BUDGET_S, Part, stop_together
from edge_rap.daemon.track import VoteSettings
from edge_rap.household import Household
from edge_rap.output import json_line, quoted
from edge_rap.perceive.camera import camera_named, parse_sources, quiet_opencv
from edge_rap.perceive.gate import GateSettings
from edge_rap.scratch import remove_leftovers
from edge_rap.stopping import when_hurried
from edge_rap.types import Event

if TYPE_CHECKING:
    from edge_rap.serve.server import Tls

log = logging.getLogger(__name__)


def with_profile(config: RunConfig, profile) -> RunConfig:
    """The device profile fills what the command line and the settings file left unset."""
    return replace(config, max_width=config.max_width or profile.capture_width,
                   fps_cap=config.fps_cap or profile.capture_fps)


def options_of(config: RunConfig, rss_limit_mb: int = 0, events_keep_s: float = 0.0) -> DaemonOptions:
    specs = parse_sources(config.sources)
    names = [s.name for s in specs]
    refuse_same_names(names)
    return DaemonOptions(
        sources=specs, duration_s=config.duration, max_frames=config.max_frames,
        realtime=not config.as_fast_as_possible,
        votes=VoteSettings(confirm=config.confirm, window=max(config.confirm, VoteSettings.window),
                           leave_after_s=config.leave_after, cooldown_s=config.cooldown),
        gate=GateSettings(recheck_s=config.recheck), max_width=config.max_width, fps_cap=config.fps_cap,
        rss_limit_mb=rss_limit_mb, events_keep_s=events_keep_s, frozen_s=config.frozen_after,
        here=config.here and camera_named(config.here, names))


def refuse_same_names(names: list[str]) -> None:
    """Two cameras of one name are one line, and so are names that differ only in case: a person reads them as one
    camera, and a spoken answer ("on the porch camera") says them alike. Each keeps its spelling."""
    from edge_rap.errors import EdgeRapError

    seen: dict[str, str] = {}
    for name in names:
        other = seen.get(name.casefold())
        if other == name:
            raise EdgeRapError(f"camera name {quoted(name)} is used twice: name each source, --source NAME=SRC")
        if other is not None:
            raise EdgeRapError(f"camera names {quoted(other)} and {quoted(name)} differ only in case: give each "
                               "source a name of its own, --source NAME=SRC")
        seen[name.casefold()] = name


def printer(out: TextIO, as_json: bool) -> Callable[[Event], None]:
    """Prints events as they come, from any thread: JSON lines, or one human line each."""
    lock = threading.Lock()

    def report(event: Event) -> None:
        if as_json:
            line = json_line(event.to_json())
        elif event.kind == "arrived":
            said = f": {event.said}" if event.said else " (back within the cooldown)"
            line = f"[{event.camera} {event.time_s:7.2f}s] <{event.name}> arrived{said}"
        else:
            line = f"[{event.camera} {event.time_s:7.2f}s] <{event.name}> left"
        with lock:
            print(line, file=out, flush=True)

    return report


def serve_socket(config: RunConfig) -> socket.socket | None:
    """The companion API's port, bound before the memory opens (None without `serve`), as `edge-rap serve` binds
    it: a certificate it cannot read or a port in use is said before the models load, and leaves no new
    api-token in the memory."""
    if not config.serve:
        return None
    from edge_rap.daemon.config import serve_address
    from edge_rap.serve.server import bind, check_tls

    host, port = serve_address(config.serve)
    check_tls(_tls(config))
    return bind(host, port)


def _tls(config: RunConfig) -> Tls | None:
    """The certificate and key `serve` is given, if any (the server's imports wait until it is asked for)."""
    from edge_rap.serve.server import Tls

    return Tls(config.tls_cert, config.tls_key) if config.tls_cert else None


def serve_beside(home: Household, daemon: Daemon, config: RunConfig, sock: socket.socket):
    """The companion API (edge_rap/serve) from inside the daemon, on the same household, on `sock`
    (`serve_socket`): provisioning works while it watches, /api/stats reads the daemon's counters, and /api/ask
    without a photo looks at the newest frame of its `here` camera. Its event loop is a part systemd's watchdog
    waits for."""
    from edge_rap.daemon.config import serve_address
    from edge_rap.serve.app import create_app
    from edge_rap.serve.hosts import configured, host_names
    from edge_rap.serve.pairing import Listening, record
    from edge_rap.serve.server import start_server_thread, warn_if_open
    from edge_rap.serve.stats import daemon_stats

    host, port = serve_address(config.serve)
    tls = _tls(config)
    warning = warn_if_open(host, tls)
    if warning:
        log.warning("%s", warning)
    app = create_app(home, stats=daemon_stats(daemon), latest=lambda: daemon.latest, hosts=host_names(host))
    server = start_server_thread(app, host, port, tls, beat=daemon.supervisor.heartbeat("the companion API").beat,
                                 sock=sock)
    record(home.root, Listening(host, server.port, tls is not None, tuple(configured())))  # for `edge-rap pair`
    log.warning("serving the companion API at %s", server.url)
    return server


def listen_beside(home: Household, daemon: Daemon, speaker, config: RunConfig, out: TextIO):
    """Spoken questions from the microphone while watching (edge_rap/speech), answered about the newest
    recognised frame of the `here` camera, where the microphone is, in their own threads; the microphone opens
    now, so a missing one fails before the cameras start. The listener is a part systemd's watchdog waits for."""
    from edge_rap.speech.loop import VoiceLoop
    from edge_rap.speech.wake import DEFAULT_WAKE

    lock = threading.Lock()

    def report(turn) -> None:
        cut = turn.reply.cut  # by the stop: not said
        if config.json:
            line = json_line({"type": "answer", **turn.to_json(), "cut": cut})
        else:
            line = f"[voice] {turn.reply.text}" + (" [cut: stopping]" if cut else "")
        with lock:
            print(line, file=out, flush=True)

    return VoiceLoop(home, speaker, lambda: daemon.latest, report, wake=config.wake or DEFAULT_WAKE,
                     heartbeat=daemon.supervisor.heartbeat("the voice listener")).start()


def stop_parts(voice, server, speaker, requested: bool, budget_s: float = STOP_BUDGET_S,
               hurry: Callable[[Callable[[], None]], None] | None = None) -> list[str]:
    """Stop the voice listener (a question being transcribed or answered finishes first: its answer is cut at
    the next token, never spoken half), the companion API (the requests under way answered first) and the speaker
    (the line being said, then cut off), together within `budget_s`; when the sources ended (no stop was
    requested) the speaker's last lines are said first; `hurry`: as `stop_together` takes it. The names of those
    still running, each logged."""
    if speaker is not None and not requested:
        speaker.flush(15.0)
    parts = [Part("the voice listener", voice.stop)] if voice is not None else []
    if server is not None:
        from edge_rap.serve.server import JOIN_S

        # (5 + 10 + 1 s at most: within it; hurried, its waits given up: its server's 1 s, and what follows it)
        parts.append(Part("the companion API", lambda budget: server.stop(), hurried_s=JOIN_S + 1.0))
    if speaker is not None:
        parts.append(Part("the speaker", lambda budget: speaker.close(min(budget, 1.0)) or True))
    return stop_together(parts, budget_s, hurry=hurry)


def run_daemon(settings: Settings, config: RunConfig, stop: threading.Event, out: TextIO,
               memory: Path | None = None, settings_file: SettingsFile | None = None) -> Summary:
    """Open the household, run until `stop`, the end of the sources, or a limit; close everything (`stop`
    interrupts the VLM's answers too). The summary's `still_running`: the parts that did not stop in time.
    `settings_file`: the `--config` that `config` was read from, whose edits are said to wait for a restart."""
    quiet_opencv()  # before any thread starts
    remove_leftovers()
    profile = settings.profile
    log.info("device profile %s (%s)", profile.name, profile.reason)
    config = with_profile(config, profile)
    options = options_of(config, profile.rss_mb, profile.events_days * 86400)
    from edge_rap.speech.tts import open_speaker

    why_silent: list[str] = []  # said once the run starts: an error before then is its one line alone
    speaker = open_speaker(config.mute, config.speak_to, why_silent.append)
    try:
        with serve_socket(config) or nullcontext() as sock, Household(
                replace(settings, profile=with_detector(profile, config.detector)), memory,
                vlm=(config.vlm or "", config.mmproj or ""), stopping=stop) as home:
            _ = home.detector  # a detector that cannot be opened is said now, not at every frame
            _ = home.events  # one that cannot be made (a read-only memory): its one line, no warning before it
            snapshots = None
            if config.snapshots:
                snapshots = Snapshots(SnapshotPolicy(Path(config.snapshots), profile.snapshot_days * 86400,
                                                     profile.snapshot_count), memory=home.root)
            if home.vlm is None and home.vlm_note and not stop.is_set():  # (a stop that cut the load: said by the stop)
                log.warning("%s; announcing from the template", home.vlm_note)
            if not home.concepts():  # a new memory, or the default home before its first remember
                log.warning("%s holds no concept yet: nothing is announced until one is remembered (`edge-rap "
                            "remember`, the companion page, or a spoken \"remember this as ...\")", home.root)
            schedule = BackupSchedule.of(config.backup_to, config.backup_every, config.backup_keep)
            backups = ScheduledBackups(home.root, schedule) if schedule is not None else None
            daemon = Daemon(home, options, printer(out, config.json), speaker, snapshots,
                            supervisor=Supervisor.from_environment(), backups=backups, settings_file=settings_file)
            server = voice = None
            try:  # the microphone first: one that is missing fails before anything serves or watches
                voice = listen_beside(home, daemon, speaker, config, out) if config.voice else None
                server = serve_beside(home, daemon, config, sock) if sock is not None else None
                for note in why_silent:
                    log.warning(note)
                summary = daemon.run(stop)
            finally:  # before the household closes: nothing may answer from it after
                if server is not None:  # a second Ctrl-C: no more waiting for the requests under way
                    when_hurried(stop, server.in_flight.give_up)
                left = stop_parts(voice, server, speaker, stop.is_set(), hurry=lambda end: when_hurried(stop, end))
                speaker = None
            summary.still_running = left
        if server is not None:  # its requests still running answered 503, the household closed: before the process ends
            server.finish()
    finally:
        if speaker is not None:  # the household did not open
            speaker.close(1.0)
    return summary
