"""`edge-rap run`'s settings: command-line options over a settings file's `[daemon]` and `[[camera]]`
entries over defaults, every key and type checked before anything starts."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path

from edge_rap.bounds import why_refused
from edge_rap.errors import EdgeRapError
from edge_rap.folders import reachable
from edge_rap.output import quoted, shown
from edge_rap.perceive.camera import NAME_PATTERN, camera_named, source_names, unnamed_camera
from edge_rap.perceive.frozen import FROZEN_S
from edge_rap.userfiles import read_whole

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class RunConfig:
    sources: tuple[str, ...] = ()
    duration: float | None = None
    max_frames: int | None = None
    json: bool = False
    mute: bool = False
    speak_to: str | None = None
    cooldown: float = 30.0
    snapshots: str | None = None
    vlm: str | None = None
    mmproj: str | None = None
    detector: str | None = None
    as_fast_as_possible: bool = False
    confirm: int = 2
    leave_after: float = 1.5
    recheck: float = 10.0
    frozen_after: float = FROZEN_S  # seconds of the very same frame from a live camera before it counts as frozen
    max_width: int = 0
    fps_cap: float = 0.0
    voice: bool = False  # listen for spoken questions on the microphone while watching
    wake: str | None = None  # the wake phrase (default "hey robot")
    here: str | None = None  # the camera whose frame "here" means to the voice and /api/ask (default: the first)
    serve: str | None = None  # [HOST:]PORT: the companion API from inside the daemon
    tls_cert: str | None = None
    tls_key: str | None = None
    backup_to: str | None = None  # a folder: the memory backed up into it on a schedule (daemon/backups.py)
    backup_every: str | None = None  # 12h, 1d, 1w (default 1d)
    backup_keep: int | None = None  # the newest N of its backups kept there (default 7)

    def check(self, sources: bool = True) -> "RunConfig":
        """Refuse what `run` cannot do with these settings; `sources`: whether cameras must be among them."""
        if sources and not self.sources:
            raise EdgeRapError("run needs at least one --source (or [[camera]] in --config)")
        if self.mute and self.speak_to:
            raise EdgeRapError("--mute and --speak-to exclude each other")
        if self.duration is not None and (why := why_refused(self.duration, positive=True, unit="seconds")):
            raise EdgeRapError(f"duration must be {why}, not {self.duration} (leave it out to watch until stopped)")
        for name in ("cooldown", "leave_after", "recheck", "frozen_after", "fps_cap"):
            value = getattr(self, name)
            if value is not None and (why := why_refused(value, positive=False, unit="seconds")):
                raise EdgeRapError(f"{name.replace('_', '-')} must be {why}, not {value}")
        if self.wake is not None and not self.wake.strip():
            raise EdgeRapError("--wake needs a phrase, such as 'hey robot'")
        if self.wake is not None:
            from edge_rap.speech.wake import check_wake

            check_wake(self.wake)
        for name in ("max_frames", "confirm", "backup_keep"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise EdgeRapError(f"{name.replace('_', '-')} must be 1 or more, not {value}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise EdgeRapError("--tls-cert and --tls-key go together")
        self._check_here()
        if self.serve is not None:
            from edge_rap.serve.hosts import configured

            serve_address(self.serve)
            configured()  # a bad EDGE_RAP_SERVE_HOSTS is said before anything opens
        if self.backup_every is not None:
            from edge_rap.daemon.backups import backup_period

            backup_period(self.backup_every)
        if self.max_width < 0:
            raise EdgeRapError(f"max-width must be 0 or more, not {self.max_width}")
        # last: `run_config` blames the settings file for a refusal that the command line's options alone do not
        # earn, and those alone lack the partners the file gives (`--here hall` beside its `voice = true`)
        self._check_partners()
        return self

    def _check_here(self) -> None:
        """Refuse a `here` that is no camera's name, or names none of the cameras (where they are given: `doctor
        --config` of a file whose cameras come on run's command line has none)."""
        if self.here is not None and not NAME_PATTERN.match(self.here):
            raise EdgeRapError(f"here {quoted(self.here)}: not a camera's name (1-32 letters, digits, '_' or '-')")
        names = source_names(self.sources)
        if self.here is not None and names and camera_named(self.here, names) is None:
            raise EdgeRapError(f"here {quoted(self.here)} is none of the cameras ({', '.join(names)})")

    def _check_partners(self) -> None:
        """Refuse an option without the one it goes with."""
        if self.wake is not None and not self.voice:
            raise PartnerMissing("--wake goes with --voice (the phrase that starts a spoken question)", "--voice",
                                 "voice = true")
        if self.here is not None and not (self.voice or self.serve is not None):
            raise PartnerMissing("--here goes with --voice or --serve (the questions it answers from that camera)",
                                 "--voice", "voice = true")
        if self.tls_cert and self.serve is None:
            raise PartnerMissing("--tls-cert and --tls-key go with --serve (the companion API they secure)", "--serve",
                                 "serve = PORT")
        if self.mmproj and not self.vlm:
            from edge_rap.generate.assistant import MMPROJ_WITHOUT_VLM

            raise PartnerMissing(MMPROJ_WITHOUT_VLM, "--vlm", "vlm = MODEL")
        if self.backup_to is None and (self.backup_every is not None or self.backup_keep is not None):
            raise PartnerMissing("backup-every and backup-keep go with backup-to (the folder the backups are written "
                                 "into)", "--backup-to", "backup-to = DIR")


class PartnerMissing(EdgeRapError):
    """An option without the one it goes with (`option`, `setting` in a settings file), which `run`'s command line
    may give where a settings file lacks it."""

    def __init__(self, message: str, option: str, setting: str) -> None:
        super().__init__(message)
        self.option, self.setting = option, setting


def serve_address(text: str) -> tuple[str, int]:
    """`[HOST:]PORT` (default host 127.0.0.1, loopback only; port 0: any free one) -> (host, port)."""
    host, _, port = text.rpartition(":")
    from edge_rap.serve.server import checked_host

    host = host or "127.0.0.1"
    if not port.isdecimal() or not 0 <= int(port) < 65536:
        raise EdgeRapError(f"--serve {quoted(text)}: expected [HOST:]PORT such as 8765 or 0.0.0.0:8765")
    return checked_host(host, "--serve"), int(port)


_TYPES = {f.name: f.type for f in fields(RunConfig)}
#: What a key of each type takes, as the error says it.
_KINDS = {"bool": "true or false", "int": "a whole number", "float": "a number", "str": "a string"}


def _typed(name: str, value, where: str, key: str):
    """The value if it has the option's type (an int is a fine float, a bool is never a number); `serve` also
    takes a port number, as TOML writes it. `key`: the option as the file spells it, for the message."""
    kind = next(k for k in _KINDS if k in _TYPES[name])
    if name == "serve" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, str)
        if ok and not value.strip():
            raise EdgeRapError(f"{where}: {key} is empty (leave the key out for the default)")
    if not ok:
        wanted = "a [HOST:]PORT (a string or a port number)" if name == "serve" else _KINDS[kind]
        shown = json.dumps(value) if isinstance(value, bool) else repr(value)
        raise EdgeRapError(f"{where}: {key} must be {wanted}, not {shown:.40}")
    return value


def load_run_file(path: Path) -> dict:
    """The `[daemon]` values and `[[camera]]` sources of a settings file, checked; unknown keys refused."""
    if reachable(path, Path.is_dir):  # (one behind a folder this account may not search: one line)
        raise EdgeRapError(f"{path}: is a folder, not a TOML settings file")
    try:
        raw = tomllib.loads(read_whole(path, "a TOML settings file").decode("utf-8"))
    except FileNotFoundError:
        raise EdgeRapError(f"{path}: no such settings file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise EdgeRapError(f"{path}: not a readable TOML settings file ({e})") from None
    unknown = set(raw) - {"daemon", "camera"}
    if unknown:
        raise EdgeRapError(f"{path}: unknown section [{shown(sorted(unknown)[0])}] (have [daemon] and [[camera]])")
    daemon = raw.get("daemon", {})
    if not isinstance(daemon, dict):
        raise EdgeRapError(f"{path}: [daemon] must be a table")
    values = {}
    for key, value in daemon.items():
        name = key.replace("-", "_")
        if name not in _TYPES or name == "sources":
            raise EdgeRapError(f"{path}: unknown key {quoted(key)} in [daemon]")
        values[name] = _typed(name, value, f"{path} [daemon]", key)
    cameras = raw.get("camera", [])
    if not isinstance(cameras, list) or not all(isinstance(c, dict) for c in cameras):
        raise EdgeRapError(f"{path}: cameras are [[camera]] entries with name and source")
    sources, used = [], {c["name"] for c in cameras if isinstance(c.get("name"), str)}
    for k, camera in enumerate(cameras):
        extra = set(camera) - {"name", "source"}
        if extra or not isinstance(camera.get("source"), (str, int)) or isinstance(camera.get("source"), bool):
            raise EdgeRapError(f"{path}: [[camera]] {k + 1} needs source (a string or a device number) and an "
                               f"optional name" + (f", not {quoted(sorted(extra)[0])}" if extra else ""))
        name = camera["name"] if "name" in camera else unnamed_camera(k, used)  # never another camera's name
        if not isinstance(name, str) or not name.strip() or "=" in name:
            raise EdgeRapError(f"{path}: [[camera]] {k + 1} name must be a non-empty string without '=', "
                               f"not {name!r:.40}")
        used.add(name)
        sources.append(f"{name}={camera['source']}")
    if sources:
        values["sources"] = tuple(sources)
    return values


def checked_run_file(path: Path) -> dict:
    """The settings file's values, checked as `run --config` alone checks them (the service), one refused naming the
    file: `doctor --config` said the schedule of a file that `run` then refused. Its cameras may come on run's
    command line; an option whose partner does (`wake` with `run --voice`) is refused as the service refuses it, the
    message naming that option too."""
    values = load_run_file(path)
    try:
        replace(RunConfig(), **values).check(sources=False)
    except PartnerMissing as e:
        raise EdgeRapError(f"{path}: {e}; the service runs `run --config` alone, which refuses it: add {e.setting} "
                           f"to [daemon], or give run {e.option} beside --config") from None
    except EdgeRapError as e:
        raise EdgeRapError(f"{path}: {e}") from None
    return values


def _refusal(config: RunConfig) -> str | None:
    """Why `check(sources=False)` refuses `config`, or None."""
    try:
        config.check(sources=False)
    except EdgeRapError as e:
        return str(e)
    return None


def run_config(cli: dict, path: Path | None) -> RunConfig:
    """The options given on the command line (None = not given) over the file's over the defaults. A refusal that
    the command line's options alone do not earn names the file: the value is its, or wants a partner there."""
    merged = load_run_file(path) if path else {}
    for given, overridden in (("mute", "speak_to"), ("speak_to", "mute")):  # the command line's choice wins
        if cli.get(given):
            merged.pop(overridden, None)
    # Not given: None, an unset flag (False), no --source. `v not in (None, False)` would also drop a 0 given
    # on purpose (`--cooldown 0` is equal to False), leaving the file's value or the default in its place.
    given = {k: v for k, v in cli.items() if v is not None and v is not False and v != () and v != []}
    replaced = "sources" in given and "sources" in merged
    if replaced and camera_named(merged.get("here") or "", source_names(given["sources"])) is None:
        merged.pop("here", None)  # it named one of the file's cameras, which the command line's replace
    merged.update(given)
    if "sources" in merged:
        merged["sources"] = tuple(merged["sources"])
    config = replace(RunConfig(), **merged)
    try:
        return config.check()
    except EdgeRapError as e:
        if path is None or _refusal(replace(RunConfig(), **given)) == str(e):
            raise
        raise EdgeRapError(f"{path}: {e}") from None
