"""Cameras: one capture thread per source that keeps only the newest frame, so processing never lags behind.

A source is a camera index, a video file, a photo, an RTSP/HTTP URL or a folder of images. Video files are delivered
at their own frame rate, as a camera would deliver them (or as fast as they are taken, for batch work); a
live source that drops is reopened with backoff and a log line, never crashing the process.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import select
import stat
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, unquote_plus, urlsplit

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.folders import reachable
from edge_rap.output import quoted
from edge_rap.perceive import fifo_relay
from edge_rap.perceive.fifo_relay import FifoRelay, WriterEnd, hung_up, replaced
from edge_rap.perceive.images import IMAGE_SUFFIXES, is_photo_file, read_image_file
from edge_rap.perceive.mp4 import unopenable_reason
from edge_rap.perceive.opens import opening
from edge_rap.types import Frame
from edge_rap.wording import counted

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}\Z")  # (\Z: "$" took "door" and a newline, printed as "door")
#: Frames in a row a video file may fail to give before it is taken to have ended: OpenCV fails to grab a damaged
#: frame and grabs the next one after it, so a bad frame must not end the file.
DAMAGED_RUN_MAX = 30
#: How often a FIFO waited for (no writer yet) looks at the stop, in milliseconds.
FIFO_LOOK_MS = 200


#: A file source with one of these suffixes is a photo, read as `remember` reads it; a GIF plays as a video.
PHOTO_SOURCE_SUFFIXES = IMAGE_SUFFIXES - {".gif"}


@dataclass(frozen=True)
class SourceSpec:
    """A camera's name and what to open: an int (device index), a device file, a URL, a file or a folder."""

    name: str
    target: int | str

    @property
    def kind(self) -> str:
        if isinstance(self.target, int):
            return "device"
        if "://" in self.target:
            return "stream"
        path = Path(self.target)
        if is_device_path(path):
            return "device"
        if path.is_dir():
            return "folder"
        # (a pipe stays OpenCV's, whatever its name: a photo is read whole from a regular file)
        return "photo" if path.suffix.lower() in PHOTO_SOURCE_SUFFIXES and path.is_file() else "file"

    @property
    def live(self) -> bool:
        return self.kind in ("device", "stream")

    @property
    def shown(self) -> int | str:
        """The target as logs and messages show it: a URL without its password or a query's secret."""
        return shown_source(self.target)


#: The query values a still-image URL carries a secret in (a Foscam's `pwd=`, a `token=`, an `api_key=`).
_SECRET_QUERY = re.compile(r"(?i)([?&][a-z0-9_.-]*(?:pass|pwd|token|secret|key|auth|sig)[a-z0-9_.-]*=)[^&#]*")


def shown_source(target: int | str) -> int | str:
    """A source as it is written into logs and messages: a URL's password (rtsp://admin:PASSWORD@cam/) and secret
    query values as ***, which a journal other accounts read and `run --json`'s source errors carried."""
    if not isinstance(target, str) or "://" not in target:
        return target
    scheme, user, host, tail = _url_parts(target)
    netloc = f"{user.partition(':')[0]}:***@{host}" if ":" in user else f"{user}@{host}" if user else host
    return f"{scheme}://{netloc}{_SECRET_QUERY.sub(lambda m: m.group(1) + '***', tail)}"


def hide_secrets(text: str, target: int | str) -> str:
    """`text` (a backend's error, which may quote the URL it was given, whole or in part) with the source's
    password and secret query values as ***, as `shown_source` writes the URL itself; each also as the backend may
    have decoded it ("p%40ss" is the password "p@ss"; "a+b" in a query is "a b"). A secret of one or two characters is
    hidden only where it stands as the URL's part (`admin:ab@`, `pwd=ab`): replaced everywhere, it garbled the text
    ("about" as "***out") and hid little. So is one of spaces and at most two other characters."""
    if not isinstance(target, str) or "://" not in target:
        return text
    text = text.replace(target, str(shown_source(target)))
    for part, secret in sorted(_secret_parts(target), key=lambda found: len(found[1]), reverse=True):
        if len(secret.strip()) > 2:  # (of spaces: every run of spaces in the text was hidden, an indent, a column)
            text = text.replace(secret, "***")
        text = re.sub(part + re.escape(secret) + r"(?![\w%+~-])", lambda m: m.group(1) + "***", text)
    return text


def _secret_parts(url: str) -> set[tuple[str, str]]:
    """The secrets of `url`, each with the pattern of what stands before it there (its user and a colon, its query
    name and an equals sign) and in each form a backend may quote it: as written, and decoded (a query's value as a
    form's, "+" a space too)."""
    _, user, _, tail = _url_parts(url)
    name, colon, password = user.partition(":")
    found = {(f"({re.escape(name)}:)", p) for p in {password, unquote(password)}} if colon and password else set()
    for m in _SECRET_QUERY.finditer(tail):
        value, key = m.group(0)[len(m.group(1)):], re.escape(m.group(1)[1:])  # (the key without its ? or &)
        found |= {(rf"(?<![\w.-])((?i:{key}))", v) for v in {value, unquote(value), unquote_plus(value)} if v}
    return found


def _url_parts(url: str) -> tuple[str, str, str, str]:
    """scheme, user (with its password), host, and the rest (path, query, fragment) of `url`."""
    scheme, _, rest = url.partition("://")
    netloc, tail = re.match(r"([^/?#]*)(.*)", rest, re.S).groups()
    user, _, host = netloc.rpartition("@")  # (rpartition: a password may hold an unescaped @)
    return scheme, user, host, tail


def is_device_path(path: Path) -> bool:
    """A camera named by its device file (`/dev/video0`, or the name a USB replug keeps:
    `/dev/v4l/by-id/usb-...-video-index0`), there or not: unplugged, it is retried as a camera is, not read as a
    file that ended."""
    camera_name = path.is_absolute() and (path.parts[1:3] == ("dev", "v4l") or (
        len(path.parts) == 3 and path.parts[1] == "dev" and path.name.startswith("video")))
    return path.is_char_device() or (camera_name and not path.exists())


def _split_source(text: str) -> tuple[str | None, str]:
    """`NAME=SRC` -> (NAME, SRC); `SRC` (a URL's own "=" included, or a file's: `clips/door=1.mp4`, where what
    comes before it is no camera name, or `door=1.mp4` in this folder, where what comes after it names no source)
    -> (None, SRC)."""
    name, sep, target = text.partition("=")
    if not sep or "://" in name or (not (NAME_PATTERN.match(name) and _names_source(target)) and Path(text).exists()):
        return None, text
    return name, target


def _names_source(target: str) -> bool:
    """Whether `target` is a source without looking further: a device number or a URL (`door=0` is camera 0 where
    a file ./door=0 exists too, as it was before such a file was read), or a file, folder or device there."""
    return target.isdigit() or "://" in target or Path(target).exists()


def unnamed_camera(k: int, used: set[str]) -> str:
    """The name of the k-th source when it has none: camK, or the next camN no other source is called (in any case:
    CAM0 and cam0 are one camera's name to a person)."""
    taken = {name.casefold() for name in used}
    return next(f"cam{j}" for j in itertools.count(k) if f"cam{j}" not in taken)


def source_names(texts: list[str] | tuple[str, ...]) -> list[str]:
    """The cameras' names, nothing opened or checked: the k-th, unnamed, is called camK, or the next camN that no
    other source is called (`cam1=A B C`: B is cam2 and C cam3)."""
    used = {name for name, _ in map(_split_source, texts) if name}
    names = []
    for k, text in enumerate(texts):
        name = _split_source(text)[0] or unnamed_camera(k, used)
        used.add(name)
        names.append(name)
    return names


def camera_named(name: str, names: list[str]) -> str | None:
    """The one of the cameras' `names` that `name` is, written in any case (`--here Door` is `door`: two names
    that differ only in case are refused), or None. Names are ASCII: one that is not is none (Unicode's case
    folding made `Straße` the camera `strasse`)."""
    if not NAME_PATTERN.match(name):
        return None
    return next((n for n in names if n.lower() == name.lower()), None)


def parse_sources(texts: list[str] | tuple[str, ...]) -> tuple[SourceSpec, ...]:
    """Several sources, named as `source_names` names them; one source given twice is refused."""
    specs = tuple(parse_source(text, name) for text, name in zip(texts, source_names(texts)))
    refuse_same_targets(specs)
    return specs


#: What a camera given twice is, by its source's kind, as the refusal says it.
_ONE = {"stream": "one stream", "folder": "one folder"}


def refuse_same_targets(specs: tuple[SourceSpec, ...]) -> None:
    """Two cameras that read one source are refused, however it is spelled: a file, FIFO, device or folder
    through a symlink or another path (`0` and /dev/video0 too), a URL with its host in another case, its default
    port, a trailing slash or another account (`_stream_identity`). Two readers of a FIFO split its bytes between
    them, each a random share of the frames, and a device opens once; a stream or a folder read twice is one
    camera's every event said twice, its work done twice, under two names (no camera setting tells them apart)."""
    seen: dict[tuple, SourceSpec] = {}
    for spec in specs:
        key = _stream_identity(spec.target) if spec.kind == "stream" else _file_identity(spec.target)
        if (other := seen.get(key)) is not None:
            also = f" (written {quoted(spec.shown)} too)" if spec.shown != other.shown else ""
            raise EdgeRapError(f"cameras {quoted(other.name)} and {quoted(spec.name)} both read "
                               f"{quoted(str(other.shown))}{also}: "
                               f"{_ONE.get(spec.kind, 'one file, FIFO or device')} is one camera")
        seen[key] = spec


#: The port a URL's scheme connects to where the URL names none.
_DEFAULT_PORTS = {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322, "rtmp": 1935}


def _stream_identity(url: str) -> tuple:
    """What a URL reads: its scheme and host in any case, its port (the scheme's default where none is named), its
    path without a trailing slash, and its query's fields in any order (`?channel=2` is another stream, `?a=1&b=2` the
    one `?b=2&a=1` names: a server reads them by name; one name's values kept in their order), empty ones aside (a
    trailing `&` or `?`, `&&`: no field, another name for the stream); its account aside.
    One Python's parser refuses (`http://[::1/x`, a port out of range or no number) is its host and port and the
    rest as written: its backend says it cannot open it (it was a traceback; its port's last digits alone made
    `http://fe80::1:1/` and `http://fe80::2:1/` one stream)."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        return ("url", scheme, parts.hostname, parts.port or _DEFAULT_PORTS.get(scheme), parts.path.rstrip("/"),
                tuple(sorted(filter(None, parts.query.split("&")), key=lambda field: field.partition("=")[0])))
    except ValueError:
        scheme, _, host, tail = _url_parts(url)
        return ("url", scheme.lower(), host.lower(), tail)


def _file_identity(target: int | str) -> tuple:
    """What `target` opens: its file's device and inode where it exists, else its resolved path."""
    path = Path(f"/dev/video{target}") if isinstance(target, int) else Path(target)
    try:
        found = path.stat()
    except (OSError, ValueError):  # (not there: an unplugged camera's name, a path too long)
        return ("path", os.path.realpath(path))
    return ("inode", found.st_dev, found.st_ino)


#: The largest camera device number taken (/dev/video0-9999): a longer number was OpenCV's overload error.
MAX_DEVICE = 9999


def parse_source(text: str, default_name: str = "cam0") -> SourceSpec:
    """`SRC` or `NAME=SRC`; a missing file or folder is refused here, before any thread starts."""
    name, target = _split_source(text)
    name = default_name if name is None else name
    if not NAME_PATTERN.match(name):
        raise EdgeRapError(f"camera name {quoted(name)}: use 1-32 letters, digits, '_' or '-'")
    if not target:
        raise EdgeRapError(f"source {quoted(text)} names no camera, file, folder or URL")
    if target.isdigit():
        if int(target) > MAX_DEVICE:
            raise EdgeRapError(f"source {quoted(target)}: a camera device number is 0-{MAX_DEVICE} (/dev/videoN)")
        return SourceSpec(name, int(target))
    if "://" not in target and not reachable(Path(target), Path.exists) and not is_device_path(Path(target)):
        raise EdgeRapError(f"source {quoted(target)}: no such file or folder")
    return SourceSpec(name, target)


class WriterStalled(EdgeRapError):
    """A FIFO's writer sent no byte for OPEN_STALL_S before its video opened, while another source waited to open,
    or for HUNG_S while the FIFO was made anew (the next writer is waited for) or a file put in its place (read)."""


class FifoRemoved(EdgeRapError):
    """A FIFO was removed while its writer sent nothing for HUNG_S, while no writer was on it, or as a refused
    writer's bytes were let go: the source ends, said once as it does (it was said to wait for the FIFO's next writer
    first, then to end; or not at all)."""


def _mode(path: str) -> int | None:
    """The mode of the file `path` names now (a link followed), or None where it names none."""
    try:
        return os.stat(path).st_mode
    except (OSError, ValueError):
        return None


def _left_hung(path: str, when: str) -> WriterStalled | FifoRemoved:
    """A FIFO's writer left, silent for HUNG_S, its path naming another file (`when` saying where it was): the FIFO
    made anew, the next writer is waited for; a file or folder put in its place, read as what the path names (it was
    said to be the FIFO made anew, its next writer waited for); or none, removed, the source ends."""
    mode = _mode(path)  # (as the wait for the next writer takes it)
    what = ("removed" if mode is None else "made anew" if stat.S_ISFIFO(mode)
            else f"replaced by a {'folder' if stat.S_ISDIR(mode) else 'file'}")
    return (FifoRemoved if mode is None else WriterStalled)(
        f"source {quoted(path)}: the FIFO was {what} while its writer sent nothing for {fifo_relay.HUNG_S:g} s{when}")


class LatestSlot:
    """Holds at most one frame: a newer frame replaces one not yet taken (counted as dropped). With
    `lossless`, the producer waits instead, so batch work sees every frame."""

    def __init__(self, lossless: bool = False):
        self._frame: Frame | None = None
        self._cond = threading.Condition()
        self._busy = False  # the consumer took a frame and has not come back for another yet
        self.lossless = lossless
        self.dropped = 0
        self.closed = False

    @property
    def wanted(self) -> bool:
        """Whether a new frame would be looked at: not while the consumer works on the last one it took (it
        would only be replaced, stale, before the consumer came back)."""
        return self.lossless or not self._busy

    def skip(self) -> None:
        """Count a frame that was read but not handed on."""
        with self._cond:
            self.dropped += 1

    def put(self, frame: Frame, stop: threading.Event) -> None:
        with self._cond:
            while self.lossless and self._frame is not None and not stop.is_set():
                self._cond.wait(0.1)
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify_all()

    def take(self) -> Frame | None:
        """The newest frame, or None when none came since the last take."""
        with self._cond:
            frame, self._frame = self._frame, None
            self._busy = frame is not None
            self._cond.notify_all()
            return frame

    def let_go(self) -> None:
        """Count a frame still waiting as dropped, and let it go: the run stops without looking at it. So every
        frame handed on is either taken or dropped (an early stop said "0 frames read" with it counted nowhere)."""
        with self._cond:
            if self._frame is not None:
                self._frame = None
                self.dropped += 1

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wait(self, timeout: float) -> None:
        """Until a frame is waiting, the slot is closed, or `timeout` passes."""
        with self._cond:
            if self._frame is None and not self.closed:
                self._cond.wait(timeout)


class VideoClock:
    """A video file's frame times: its own timestamps where they run forward (a phone's video slows its frame
    rate in dim light, where a frame's index over the header's rate was seconds off), else the frame's place
    after the last one at the header's rate (a raw stream has none; a joined recording's restart at 0)."""

    def __init__(self, fps: float, start_s: float = 0.0, first_index: int = 0):
        """`start_s`, `first_index`: where the video starts in its source's time and count (a FIFO's next writer's
        clip goes on after the last one's: its own time starts at 0 again)."""
        self.fps = fps
        self.start_s = start_s
        self.first_index = first_index
        self._last: tuple[int, float] | None = None  # the last frame's index and time, in the video's own time

    def time_s(self, index: int, stamp_s: float) -> float:
        """The time of frame `index`, whose timestamp (OpenCV's position) is `stamp_s`."""
        if math.isfinite(stamp_s) and stamp_s >= 0 and (self._last is None or stamp_s > self._last[1]):
            time_s = stamp_s
        elif self._last is None:
            time_s = (index - self.first_index) / self.fps
        else:
            time_s = self._last[1] + (index - self._last[0]) / self.fps
        self._last = (index, time_s)
        return self.start_s + time_s


def _fit(pixels: np.ndarray, max_width: int, bgr: bool = True) -> np.ndarray:
    """BGR from OpenCV to RGB (`bgr`), shrunk to `max_width` (0: as captured). cvtColor, not a reversed-stride
    copy: numpy's copy of `[:, :, ::-1]` costs about 2 ms a 640x480 frame here, cvtColor a tenth of that."""
    import cv2

    if max_width and pixels.shape[1] > max_width:
        height = max(1, round(pixels.shape[0] * max_width / pixels.shape[1]))
        pixels = cv2.resize(pixels, (max_width, height), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB) if bgr else np.ascontiguousarray(pixels)


def _one_line(e: Exception) -> str:
    """An exception's text on one line (OpenCV's end in a newline, some span several)."""
    return " ".join(str(e).split())


def quiet_opencv() -> None:
    """FFmpeg's and OpenCV's own lines ("moov atom not found", "[ WARN:0@1.2] can't open camera", a "Failed to
    write frame" for each frame of a video written on a full disk) would stand beside ours, which say what failed
    in one line; OpenCV's errors still show, and the environment can turn either back on. FFmpeg's level is read
    from the environment at the first video the process opens or writes; OpenCV reads its own only as it is
    imported, so it is set on OpenCV's logger (a demo imported it long before its video). `run` calls this before
    it starts any thread (setting the environment while other threads read it is a race)."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    if "OPENCV_LOG_LEVEL" not in os.environ:
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def _open_video(path: str, fifo: int | None):
    """OpenCV's capture of a video file, or of the FIFO waited for a writer: read through the pipe `fifo` its
    read end is relayed into (FFmpeg's pipe:N; FifoRelay), not opened again by path. An open by path waits for a
    writer that is there now: one that wrote a short clip and closed before OpenCV's open (the clip waiting in the
    pipe) left the run watching nothing for good, OpenCV's lock held, every other source kept from opening."""
    import cv2

    with opening():
        if fifo is None or not cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
            if not _utf8(path):
                return _open_by_descriptor(cv2, path)
            return cv2.VideoCapture(path)
        os.set_blocking(fifo, True)
        return cv2.VideoCapture(f"pipe:{fifo}", cv2.CAP_FFMPEG)


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _open_by_descriptor(cv2, path: str):
    """A video whose name is not UTF-8 (`cam\\xf1.mp4`, Python's "\\udcf1"), opened as /proc/self/fd/N: OpenCV's
    binding cannot encode that name and crashed the process (SIGSEGV) in VideoCapture. O_NONBLOCK: a FIFO opens at
    once here, and waits for its writer in OpenCV's own open, as by its name."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return cv2.VideoCapture()  # not opened: said as any video that does not open
    try:
        return cv2.VideoCapture(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _open_live(spec: SourceSpec):
    """OpenCV's capture of a camera or stream. A camera is opened by V4L2 first, not counted as an open under way
    (`opens.crowded`): V4L2 takes no lock of FFmpeg's, neither waiting behind a FIFO writer's stalled probe nor
    keeping it waiting, and counted so it had such a writer cut (its video lost) while it opened beside it; by its
    device file, FFmpeg was tried first, waiting behind the stalled probe. Where V4L2 cannot open it (unplugged,
    another backend's camera), OpenCV's own choice follows, counted: its FFmpeg try waits behind the probe."""
    import cv2

    if spec.kind == "device" and cv2.videoio_registry.hasBackend(cv2.CAP_V4L2):
        capture = cv2.VideoCapture(spec.target, cv2.CAP_V4L2)
        if capture.isOpened():
            return capture
        capture.release()
    with opening():
        return cv2.VideoCapture(spec.target)


class Camera:
    """Reads one source in its own thread into a LatestSlot; counts what it read and how long reading took."""

    def __init__(self, spec: SourceSpec, stop: threading.Event, *, realtime: bool = True, max_width: int = 0,
                 folder_fps: float = 2.0, fps_cap: float = 0.0, backoff: tuple[float, float] = (0.5, 10.0),
                 ready: threading.Event | None = None):
        """`fps_cap`: frames handed on per second of source time at most (0: all; batch work gets all).
        `ready` is set whenever a frame is waiting or the camera finished, to wake the loop."""
        self.spec = spec
        self.stop = stop
        self.realtime = realtime
        self.max_width = max_width
        self.folder_fps = folder_fps
        self.fps_cap = fps_cap
        self.backoff = backoff
        self.slot = LatestSlot(lossless=not realtime and not spec.live)
        self.frames_read = 0
        self.frames_delivered = 0
        self.read_ms: deque[float] = deque(maxlen=1024)
        self.finished = threading.Event()
        self.ready = ready or threading.Event()
        self._failed: str | None = None  # why the source ended in error (`error`)
        self._unopened = False  # its video or stream has not opened yet: `error` says it never did
        self.outages = 0  # times a live source was lost after it had opened, or a FIFO's writer that showed frames
        # closed (the daemon ends its visits then)
        self.damaged = 0  # frames of a video file that could not be grabbed, skipped
        self.last_read: float | None = None  # when a frame was last grabbed (monotonic): a stall shows in it
        self.last_time_s = 0.0  # the source time of the frame last grabbed (a FIFO's next clip goes on after it)
        self._reopen = threading.Event()  # a live source's connection is to be opened again (it froze)
        self._writer_stays = False  # the FIFO's writer the last open read from was not seen to close (`_play`)
        self._writer_said = False  # the bytes of the writer on the FIFO were refused, said: its next ones are not
        self._writer_hung: int | None = None  # the bytes the last writer sent before it was left, hung on a FIFO made
        # anew or removed (said): its video, or bytes no video opened from yet (a header's start, or junk); None if not
        self._writers: WriterEnd | None = None  # the watch of the FIFO's read end now waited on (`_watched`)
        self._owed = 0  # the last writer's bytes, its close told, that its relay could not let go (FifoRelay.owed)
        self._next_s = 0.0  # source time before which no frame is handed on (fps_cap)
        self._thread = threading.Thread(target=self._run, name=f"capture-{spec.name}", daemon=True)

    def start(self) -> "Camera":
        quiet_opencv()
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def error(self) -> str | None:
        """Why the source failed, or None; until it opened, that it never did, as things stand when asked: a file or
        FIFO whose path names nothing now was removed before it opened (the run's end asks it of a FIFO whose open
        waits behind another source's, an unreachable URL's, for up to 30 s: one removed meanwhile was "never
        opened"); one whose path cannot be looked at says why (a folder on it made unsearchable, EACCES, was said
        removed too)."""
        if self._failed is not None or not self._unopened:
            return self._failed
        if not self.spec.live:
            try:
                os.stat(self.spec.target)
            except (FileNotFoundError, NotADirectoryError):
                return f"source {quoted(self.spec.shown)}: removed before it opened"
            except OSError as e:
                return f"source {quoted(self.spec.shown)}: cannot be looked at ({e.strerror})"
        return f"source {quoted(self.spec.shown)}: never opened"

    def reopen(self) -> None:
        """Have a live source's connection closed and opened again, at once: a camera that froze (a USB webcam's
        wedged stream, an IP camera's hung session) may give live frames again on a new one."""
        self._reopen.set()

    def _run(self) -> None:
        try:
            if self.spec.kind == "folder":
                self._read_folder()
            elif self.spec.kind == "photo":
                self._read_photo_source()
            elif self.spec.live:
                self._read_live()
            else:
                self._read_video(self.spec.target)
        except EdgeRapError as e:
            self._failed = str(e)
            log.error("camera %s: %s", self.spec.name, e)
        except Exception as e:  # a failure no reader expects: a source error (the run exits 2, a service restarts),
            # never an end that looks like the source's own
            self._failed = (f"source {quoted(self.spec.shown)} failed: {type(e).__name__}: "
                            f"{hide_secrets(_one_line(e), self.spec.target)}")
            trace = "".join(traceback.format_exception(e)).rstrip()  # (its last line quotes the error as raised)
            log.error("camera %s: %s\n%s", self.spec.name, self.error, hide_secrets(trace, self.spec.target))
        finally:
            self.finished.set()
            self.slot.close()
            self.ready.set()

    def _due(self, time_s: float, started: float) -> bool:
        """Wait for a file's frame to be due on its own clock (unless running as fast as possible); whether it
        should be decoded and handed on, or only counted as dropped."""
        self.frames_read += 1
        if self.realtime and not self.spec.live:
            delay = started + time_s - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
        if self.slot.lossless:
            return True
        if (self.fps_cap and time_s < self._next_s) or not self.slot.wanted:
            self.slot.skip()
            return False
        self._next_s = time_s + (1 / self.fps_cap if self.fps_cap else 0.0)
        return True

    def _deliver(self, pixels: np.ndarray, index: int, time_s: float, read_ms: float, came: float,
                 bgr: bool = True) -> None:
        """`came`: when the frame was there to be read (monotonic), the start of its source-to-decision lag."""
        self.read_ms.append(read_ms)
        self.frames_delivered += 1
        frame = Frame(self.spec.name, index, time_s, _fit(pixels, self.max_width, bgr), came)
        self.slot.put(frame, self.stop)
        self.ready.set()

    def _follow(self, capture, started: float, clock: VideoClock | None, skips: int = 0,
                first: Callable[[], None] | None = None) -> None:
        """Read `capture` until it ends or stops: a frame's time is a file's `clock`, or the time it came
        (live). `skips`: frames in a row that may fail to be grabbed and are skipped (a file's damaged ones; more
        is its end). `first` is called at the first frame grabbed."""
        import cv2

        index = self.frames_read  # a live source's count goes on across reconnections
        failed = 0  # grabs that failed in a row
        while not self.stop.is_set() and not self._reopen.is_set():
            t = time.perf_counter()
            if not capture.grab():
                failed += 1
                if failed > skips:
                    return
                index += 1  # the damaged frame keeps its place in the video's time
                continue
            self.last_read = time.monotonic()
            if first is not None:
                first()
                first = None
            self.damaged, failed = self.damaged + failed, 0
            grab_ms = 1000 * (time.perf_counter() - t)
            time_s = (clock.time_s(index, capture.get(cv2.CAP_PROP_POS_MSEC) / 1000) if clock
                      else time.monotonic() - started)
            self.last_time_s = time_s
            if self._due(time_s, started):
                came, t = time.monotonic(), time.perf_counter()
                ok, pixels = capture.retrieve()
                if ok:
                    self._deliver(pixels, index, time_s, grab_ms + 1000 * (time.perf_counter() - t), came)
            index += 1

    def _lost(self) -> None:
        """A live source that gave frames is lost: the loop is woken, and what was in view leaves now, not at the
        reconnection."""
        self.outages += 1
        self.ready.set()

    def _await_writer(self, path: str, held: int | None = None) -> int | None:
        """A FIFO's read end, held open once it has something to read; None for another file, or one gone (OpenCV
        says why it cannot open it). OpenCV opens one source at a time: a FIFO no one writes to, opened by it, kept
        every other camera from opening for as long as no writer came. Here the wait holds no lock of OpenCV's,
        and a stop ends it, the FIFO never opened. `held`: the last writer's read end, still open: a hang-up there
        (no writer, one having been) says that writer left, its refusal not to be kept from the next one's."""
        try:
            while True:
                if not stat.S_ISFIFO(os.stat(path).st_mode):
                    return None
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                if held is not None and hung_up(held):  # (it left before `fd` opened: `fd` sees no hang-up for it)
                    self._writer_said = False
                poller = select.poll()
                poller.register(fd, select.POLLIN)
                while not self.stop.is_set():
                    events = poller.poll(FIFO_LOOK_MS)
                    if any(e & select.POLLIN for _, e in events):
                        if not self._let_owed_go(fd, held):
                            return fd
                        if not replaced(path, fd):  # (a read of the owed bytes failing again: the path looked at
                            continue  # all the same, else a FIFO made anew meanwhile was never read)
                    if events or replaced(path, fd):  # a writer came and went without a byte: wait for the next;
                        self._writer_said = False  # the FIFO made anew (rm, mkfifo) or a file put in its place: what
                        break  # the path names now; either way, the next bytes are another writer's
                os.close(fd)
                if self.stop.is_set():
                    raise EdgeRapError(f"source {quoted(path)}: never opened")
        except OSError:
            return None

    def _let_owed_go(self, fd: int, held: int | None) -> bool:
        """Let the last writer's bytes its relay and the camera failed to let go (`_owed`, first in the FIFO open as
        `held`) go from `fd`, the FIFO's read end now waited on, once it has bytes; whether any were owed (read as
        the next writer's first, they were a spurious refusal, or a frame). A FIFO made anew holds none of them; a
        read of them failing again is tried after FIFO_LOOK_MS."""
        if not self._owed:
            return False
        if held is None or not os.path.samestat(os.fstat(fd), os.fstat(held)):
            self._owed = 0
            return True
        self._owed = fifo_relay.let_go(fd, self._owed)
        if self._owed:
            self.stop.wait(FIFO_LOOK_MS / 1000)
        return True

    def _read_video(self, path: str) -> None:
        """A video file to its end; a FIFO's clip, then each next writer's, until the path is no FIFO: a writer
        that closes and comes back later (a recorder restarted) is read again, what it showed leaving meanwhile."""
        self._unopened = True  # until it opens: a FIFO no one writes to waits here
        waited = self._watched(self._await_writer(path))
        if waited is None and not os.path.lexists(path):  # (a FIFO removed while waited for: not "no video")
            raise EdgeRapError(self.error)  # (removed before it opened, or not looked at)
        shown = self.frames_read  # the frames read before this writer's: one that showed none (junk, a stall before
        try:  # a whole header) is no outage, and its end is said by its warning, not as a writer's that closed
            try:
                announced, fps = self._play(path, waited)
            except WriterStalled as e:
                self._refused(e, path, waited)
                announced, fps = 0, 15.0
            while waited is not None and not self.stop.is_set():
                if self.frames_read > shown:
                    self._lost()  # (what it showed leaves at its last frame, not at the next writer's first)
                    if self._writer_hung is None:
                        log.info("camera %s: the FIFO's writer closed; waiting for the next", self.spec.name)
                shown = self.frames_read
                held, waited = waited, None  # open until the next wait's read end is: a writer that came between
                self._owed = fifo_relay.let_go(held, self._owed)  # (tried once more: else read as the next writer's)
                if self._owed:  # (failed again: let go as the next writer's bytes come, `_await_writer`)
                    log.warning("camera %s: source %s: the bytes the FIFO's last writer left could not be read; let go "
                                "as the next writer's come", self.spec.name, quoted(path))
                try:  # met no reader, its writes failing (EPIPE, a shell's `cat` killed by SIGPIPE)
                    waited = self._watched(self._await_writer(path, held))
                except EdgeRapError:  # stopped while waiting: one whose writers showed no video (the first cut for
                    if self._unopened:  # a stall) never opened, and is said so as it ends (said at the run's end only
                        raise  # while still running then)
                    return
                finally:
                    os.close(held)
                if waited is None and not os.path.exists(path):  # (a FIFO removed: the source ends, said)
                    raise FifoRemoved(f"source {quoted(path)}: the FIFO was removed while no writer was on it")
                try:
                    announced, fps = self._play(path, waited, self.last_time_s + 1 / fps)
                    self._writer_said = False
                except EdgeRapError as e:  # a writer's junk (a recorder killed mid-header) ends no FIFO: the next
                    if waited is None or isinstance(e, FifoRemoved):  # writer is read; a file put in the FIFO's
                        raise  # place ends where it is unreadable
                    if self.stop.is_set():  # a stop ends an open, or came as its junk was refused: the FIFO never
                        if self._unopened:  # opened (said), or it ends as one that showed its video, no junk's error
                            raise EdgeRapError(self.error) from None
                        break
                    self._refused(e, path, waited)
        except FifoRemoved as e:  # (its end, said: no next writer waited for; without a frame read, the source's error)
            if not self.frames_read and self._writer_hung is None:  # (after its writers' refusals: it was said as "no
                raise  # frame could be read")
            if self.frames_read:
                log.warning("camera %s: %s; the source ends", self.spec.name, e)
            announced, fps = 0, 15.0
        finally:
            self._watched(None)
            if waited is not None:
                os.close(waited)
        if self.stop.is_set():
            return
        if not self.frames_read and self._writer_hung is not None:  # (no video refused: FFmpeg's probe waits for
            # more of a header's start or of junk alike, up to 1 MiB, so which it was is not said)
            raise EdgeRapError(f"source {quoted(path)}: the FIFO was removed while its writer sent nothing for "
                               f"{fifo_relay.HUNG_S:g} s, after {counted(self._writer_hung, 'byte')} from which no "
                               "frame was read")
        if not self.frames_read:
            raise EdgeRapError(f"source {quoted(path)}: no frame could be read (not a video or image OpenCV decodes)")
        if self.damaged:
            log.warning("camera %s: source %s: %s skipped", self.spec.name, quoted(path),
                        counted(self.damaged, "damaged frame"))
        if self.frames_read + self.damaged < announced - fps:  # over a second short: not a header's rounding
            log.warning("camera %s: source %s ended after %d of the %d frames it announces (cut short?)",
                        self.spec.name, quoted(path), self.frames_read, announced)

    def _watched(self, fifo: int | None) -> int | None:
        """`fifo`, a FIFO's read end just waited for (or None), its writers' events watched from now on, once for
        every relay on it (the last read end's watch closed): a watch made at each relay missed a refused writer's
        close between the probe's relay and the one letting its bytes go, the next writer's clip let go with them."""
        if self._writers is not None:
            self._writers.close()
        self._writers = None if fifo is None else WriterEnd.of(fifo)
        return fifo

    def _refused(self, e: EdgeRapError, path: str, fifo: int) -> None:
        """Say that a FIFO writer's bytes could not open, once a writer: one cut for a stall, then streaming its
        headerless frames, was said again at every open tried, a line every second or two for as long as it
        streamed. A writer is taken to stay until its end of file is read or the FIFO is seen with no writer.
        One that stays has its later bytes let go unprobed until its close, where inotify tells it (`fifo`, the
        FIFO's read end): each probe of a flood of junk took 44-51 ms of CPU, 0.34 cores while it flooded; where
        its close cannot be told from a next writer's bytes, they are tried as before; nor past the FIFO's `path`
        made anew (rm, mkfifo) or removed: a writer that stayed, hung, kept the source on the old FIFO, the new one's
        writers meeting no reader."""
        if not self._writer_said:  # (a file put in the FIFO's place is read next, no writer waited for)
            mode = _mode(path)
            then = ("reading what its path names now" if mode is not None and not stat.S_ISFIFO(mode)
                    else "waiting for the FIFO's next writer")
            log.warning("camera %s: %s; %s", self.spec.name, e, then)
        self._writer_said = self._writer_stays
        if self._writer_stays:
            skip = FifoRelay(fifo, self.stop, self.spec.name, self._writers, discard=True)
            while not skip.wait(FIFO_LOOK_MS / 1000):
                if replaced(path, fifo):  # (what the path names now is another FIFO's: its writers said anew)
                    break
            skip.close()
            self._owed = skip.owed
            self._writer_stays = self._writer_said = not skip.writer_closed and not replaced(path, fifo)
            if _mode(path) is None and not self.stop.is_set():  # (said after its refusal, as the source's end)
                raise FifoRemoved(f"source {quoted(path)}: the FIFO was removed as its writer's refused bytes were "
                                  "let go")

    def _play(self, path: str, waited: int | None, start_s: float = 0.0) -> tuple[int, float]:
        """Read one video (a file, or a FIFO's read end `waited`, through a relay a stop ends) to its end, its times
        from `start_s` on; the frames its header announces and its frame rate. `_writer_stays`: whether the writer
        whose bytes it read may still be on the FIFO (its end of file not read), its next bytes its own."""
        import cv2

        self._writer_stays, self._writer_hung = False, None
        relay = (FifoRelay(waited, self.stop, self.spec.name, self._writers, path=path)
                 if waited is not None and cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG) else None)
        try:
            capture = _open_video(path, relay.read_end if relay else None)
            if relay is not None:
                relay.opened()
            stalled = relay is not None and relay.stalled  # (its probe cut: opened, maybe, on a whole header alone,
            # its frames to come read as the next writer's junk; a FIFO made anew or removed has no next writer of
            # its own, and what was relayed, a whole clip queued behind another source's open, is read, `_follow`)
            if not capture.isOpened() or stalled or self.stop.is_set():
                capture.release()
                if self.stop.is_set():  # (a stalled writer's header, cut by the stop, no fault of the video's; or an
                    # open that returned after it, a FIFO's on the bytes relayed till then, a file's kept waiting behind
                    # another source's open: its video had not opened by the stop, as one still opening at the end)
                    if self._unopened:  # (the first writer's: the FIFO never opened, said as one no one writes to)
                        raise EdgeRapError(self.error)
                    return 0, 15.0
                if relay is not None and relay.replaced:
                    self._writer_hung = relay.relayed
                    raise _left_hung(path, " before its video opened")
                if stalled:
                    raise WriterStalled(f"source {quoted(path)}: the FIFO's writer sent no byte for "
                                        f"{fifo_relay.OPEN_STALL_S:g} s before its video opened, while another "
                                        "source waited to open")
                # (a FIFO's is not looked into: that open waited for the next writer, then took its clip's first bytes)
                reason = unopenable_reason(path) if waited is None else None
                raise EdgeRapError(f"source {quoted(path)}: cannot open as a video" + (f": {reason}" if reason else ""))
            self._unopened = False
            fps = capture.get(cv2.CAP_PROP_FPS) or 15.0
            fps = fps if 0 < fps <= 240 else 15.0
            announced = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)  # from the header: 0 or less when unknown
            try:
                self._follow(capture, time.monotonic() - start_s, VideoClock(fps, start_s, self.frames_read),
                             skips=DAMAGED_RUN_MAX)
            finally:
                capture.release()
            if relay is not None and relay.replaced:  # (its end said so, not as a writer's close)
                self._writer_hung = relay.relayed
                left = _left_hung(path, ": its video left as a hung writer's")
                if isinstance(left, FifoRemoved):
                    raise left
                log.warning("camera %s: %s", self.spec.name, left)
        finally:
            if relay is not None:
                relay.close()
                self._writer_stays, self._owed = not relay.writer_closed, relay.owed
        return announced, fps

    def _read_photo(self, path: Path, index: int, started: float) -> None:
        """A photo, read as `remember` reads it (upright, on white, refused over the pixel limit before decoding: a
        400-megapixel file must not take the daemon's memory), handed on as frame `index` of a folder's rate."""
        if not self._due(index / self.folder_fps, started):
            return
        came, t = time.monotonic(), time.perf_counter()
        pixels = read_image_file(path).image.pixels
        self._deliver(pixels, index, index / self.folder_fps, 1000 * (time.perf_counter() - t), came, bgr=False)

    def _read_photo_source(self) -> None:
        """A photo given as the source: one frame (OpenCV would read it as stored, sideways from a phone)."""
        try:
            self._read_photo(Path(self.spec.target), 0, time.monotonic())
        except EdgeRapError as e:  # said as every source's error is: "source 'PATH': why"
            why = str(e).removeprefix(f"{self.spec.target}: ")
            raise EdgeRapError(f"source {quoted(self.spec.target)}: {why}") from None

    def _read_folder(self) -> None:
        """The folder's photos in name order, each read as a photo source is; one that cannot be read is skipped
        with a warning, a folder of which none can be read is an error."""
        try:  # every format `remember` takes: a folder of a phone's HEIC photos is a source too
            files = sorted(p for p in Path(self.spec.target).iterdir() if is_photo_file(p))
        except OSError as e:
            raise EdgeRapError(f"source {quoted(self.spec.target)}: cannot list the folder ({e.strerror})") from None
        if not files:
            raise EdgeRapError(f"source {quoted(self.spec.target)}: no images in the folder")
        started, failed = time.monotonic(), 0
        for index, path in enumerate(files):
            if self.stop.is_set():
                return
            try:
                self._read_photo(path, index, started)
            except EdgeRapError as e:
                if not Path(self.spec.target).is_dir():  # not one photo: the whole folder went away
                    raise EdgeRapError(f"source {quoted(self.spec.target)}: the folder is gone") from None
                log.warning("camera %s: %s, skipped", self.spec.name, e)
                failed += 1
        if failed and not self.frames_delivered:  # (photos skipped by the frame-rate cap were never tried)
            raise EdgeRapError(f"source {quoted(self.spec.target)}: none of its {len(files)} images could be read")

    def _read_live(self) -> None:
        """Open, read until it fails, reopen with doubling backoff: an unplugged camera, one that opens but gives
        no frame (another program holds it) or a dropped stream is logged and retried until stopped. Once the
        backoff is at its longest the retries are quiet (a camera unplugged for a night must not write a line every
        10 s), and the return is said at its first frame. A source that gives one frame a connection (a camera's
        still-image URL) is read again at the capture rate, not lost at every frame; it is lost when it cannot be
        read again."""
        import cv2

        started, wait, failed, quiet = time.monotonic(), self.backoff[0], 0, False
        polled, poll_s = False, 1 / self.fps_cap if self.fps_cap else self.backoff[0]
        self._unopened = True  # until it opens: a run ending any way says so
        while not self.stop.is_set():
            capture = _open_live(self.spec)
            if capture.isOpened():
                self._unopened = False
                if not polled:
                    log.info("camera %s: opened %s", self.spec.name, self.spec.shown)
                back = (lambda n=failed: log.warning("camera %s: opened %s after %d failed tries", self.spec.name,
                                                     self.spec.shown, n)) if failed else None
                before, reason = self.frames_read, ""
                try:
                    self._follow(capture, started, None, first=back)
                except cv2.error as e:  # a backend's failure mid-stream (GStreamer, a frame it cannot convert): the
                    # stream is lost, the camera is still there
                    reason = f" ({hide_secrets(_one_line(e), self.spec.target)})"
                finally:
                    capture.release()
                if self.stop.is_set():
                    break
                if self._reopen.is_set():  # asked for (it froze): no loss, and no wait
                    self._reopen.clear()
                    continue
                if self.frames_read > before:  # it gave frames: the next outage starts from the shortest wait
                    wait, failed, quiet = self.backoff[0], 0, False
                    if self.frames_read == before + 1 and not reason:  # one frame, then its end: a still image
                        if not polled:
                            log.warning("camera %s: %s gives one frame a connection (a still image): it is read "
                                        "again every %g s", self.spec.name, self.spec.shown, poll_s)
                        polled = True
                        self.stop.wait(poll_s)
                        continue
                    polled = False
                    log.warning("camera %s: stream lost%s; reconnecting", self.spec.name, reason)
                    self._lost()
                    self.stop.wait(wait)
                    continue
                trouble = f"{self.spec.shown} opened but gave no frame"
            else:
                trouble = f"cannot open {self.spec.shown}"
            if polled:  # the still image cannot be read again: what it showed leaves at its last frame
                polled = False
                self._lost()
            failed += 1
            if wait < self.backoff[1]:
                log.warning("camera %s: %s; retrying in %g s", self.spec.name, trouble, wait)
            elif not quiet:
                log.warning("camera %s: %s; retrying every %g s, quietly until it is back", self.spec.name, trouble,
                            wait)
                quiet = True
            self.stop.wait(wait)
            wait = min(wait * 2, self.backoff[1])
