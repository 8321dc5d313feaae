"""Audio in, in one place: a recording or a microphone, at any rate and channel count, becomes mono float32 at
16 kHz (what silero VAD and whisper both take), resampled once here and nowhere else.

WAV files are parsed here rather than with the `wave` module because Python 3.11's `wave` refuses float and
WAVE_FORMAT_EXTENSIBLE files, which recorders and sound editors write. Other recordings (a phone's M4A voice
memo, FLAC, MP3, Ogg) are decoded by PyAV, which faster-whisper already brings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import stat
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.wording import counted

log = logging.getLogger(__name__)

RATE = 16000
CHUNK = 512  # samples per chunk at 16 kHz (32 ms): silero VAD's window
MAX_WAV_S = 600.0  # the longest recording `listen --wav` takes: 10 minutes (a 30-minute one took 2 GB)
#: Audio whose peaks stay below this is raised to it: silero VAD heard nothing in a question recorded 45 dB below
#: full scale, and whisper wrote nothing for one at 35 dB below (docs/BENCHMARKS.md).
QUIET_PEAK = 0.1
MAX_GAIN = 100.0  # 40 dB at most
#: ... and never so far that the quietest stretch (a microphone's hiss, a room's hum) is raised above this RMS:
#: raised to speech level, hiss would keep the VAD and whisper busy and be written as words.
HISS_RMS = 0.003
RELEASE_S = 2.0  # a live stream's gain rises this long after a loud sound to half way (the level's half-life)
FLOOR_RISE_S = 10.0  # the quietest level a live stream has shown doubles in this long, to follow a new hum
#: How much microphone audio waits while the listener is busy (whisper on a slow core, a VLM's answer), and the
#: blocks it comes in: a queue of 256 blocks of the host's choosing (256 frames on some) held 1.4 s, and the
#: start of a question asked meanwhile was dropped.
MIC_BUFFER_S = 60.0
MIC_BLOCK_S = 0.02
#: A microphone that gives no block this long has stopped (unplugged); one to come back is looked for this often.
MIC_STALL_S, MIC_RETRY_S = 2.0, 1.0
#: How long a started stream may take to give its first block: a Bluetooth headset's link, a USB device waking
#: from suspend take seconds (counted as stopped at 2 s, such a device was said unplugged and back every 3 s).
MIC_FIRST_AUDIO_S = 10.0

_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


@dataclass(frozen=True)
class Audio:
    """Mono float32 samples in [-1, 1] at `rate`."""

    samples: np.ndarray
    rate: int = RATE

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate


def resample(samples: np.ndarray, rate: int, to: int = RATE) -> np.ndarray:
    """The one resampler (soxr, high quality)."""
    if rate == to:
        return samples.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(samples.astype(np.float32, copy=False), rate, to).astype(np.float32, copy=False)


class _Unsupported(ValueError):
    pass


def _decode(data: bytes, fmt: int, bits: int, channels: int) -> np.ndarray:
    if bits not in (8, 16, 24, 32, 64):
        raise _Unsupported(f"unsupported WAV encoding (format {fmt}, {bits} bits)")
    width = bits // 8
    usable = len(data) - len(data) % (width * channels)
    raw = np.frombuffer(data[:usable], dtype=np.uint8)
    if fmt == _FLOAT and bits in (32, 64):
        x = raw.view("<f4" if bits == 32 else "<f8").astype(np.float32)
        if not np.isfinite(x).all():  # a damaged file: whisper would hear ")))))" in it
            raise ValueError("float samples that are not numbers (NaN or infinite)")
    elif fmt == _PCM and bits == 8:
        x = (raw.astype(np.float32) - 128) / 128
    elif fmt == _PCM and bits in (16, 32):
        x = raw.view("<i2" if bits == 16 else "<i4").astype(np.float32) / float(2 ** (bits - 1))
    elif fmt == _PCM and bits == 24:
        b = raw.reshape(-1, 3).astype(np.int32)
        x = ((b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8).astype(np.float32) / float(2 ** 23)
    else:
        raise _Unsupported(f"unsupported WAV encoding (format {fmt}, {bits} bits)")
    return mono(x, channels)


def mono(interleaved: np.ndarray, channels: int) -> np.ndarray:
    """Interleaved channels as one: their mean, or the loudest channel where the mean is 12 dB below it, as when
    one channel is the other inverted (a laptop's two-microphone array, a balanced cable wired backwards), whose
    mean is silence."""
    if channels == 1:
        return interleaved
    frames = interleaved.reshape(-1, channels)
    if not len(frames):
        return frames.mean(axis=1)
    probe = frames[:: max(1, len(frames) // 2 ** 20)].astype(np.float64)  # a million frames tell the levels
    level, mixed = np.sqrt(np.mean(probe ** 2, axis=0)), np.sqrt(np.mean(probe.mean(axis=1) ** 2))
    if mixed >= 0.25 * level.max():
        return frames.mean(axis=1)
    return np.ascontiguousarray(frames[:, int(np.argmax(level))])


class UnsupportedWav(EdgeRapError):
    """A WAV whose encoding is not parsed here (A-law, mu-law, ADPCM): PyAV decodes those."""


class NoDecoder(EdgeRapError):
    """A recording whose audio PyAV has no decoder for (an unknown WAV format tag, 0 bits a sample)."""


def read_audio(path: Path, max_seconds: float = MAX_WAV_S) -> Audio:
    """A recording as mono 16 kHz: a WAV file parsed here, anything else (and a WAV in an encoding not parsed
    here) decoded by PyAV. A pipe or a device is refused: it is read more than once here, and PyAV waited for
    ever on a FIFO whose writer had gone."""
    try:
        if path.is_dir():  # (was "cannot read (Is a directory)"; a photo or settings file given so says this)
            raise EdgeRapError(f"{path}: is a folder, not a recording file")
        if not stat.S_ISREG(path.stat().st_mode):
            raise EdgeRapError(f"{path}: a pipe or a device, not a recording file: save the recording to a file "
                               "first (arecord -d 10 -f S16_LE -r 16000 question.wav)")
        with path.open("rb") as f:
            head = f.read(12)
    except OSError as e:
        raise EdgeRapError(f"{path}: cannot read ({e.strerror or e})") from None
    audio = _read_any(path, head, max_seconds)
    if not len(audio.samples):  # said as "heard no speech", as if the question had been too quiet
        raise EdgeRapError(f"{path}: no audio in it (a header with no samples: its recorder stopped before it "
                           "wrote any)")
    return audio


def _read_any(path: Path, head: bytes, max_seconds: float) -> Audio:
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        try:
            return read_wav(path, max_seconds)
        except UnsupportedWav as unparsed:
            try:
                return _read_other(path, max_seconds)
            except NoDecoder:  # an encoding nothing here decodes (a lying header): the WAV's own reason
                raise unparsed from None
    return _read_other(path, max_seconds)


def _too_long(path: Path, seconds: float, max_seconds: float) -> EdgeRapError:
    return EdgeRapError(f"{path}: {_span(seconds)} of audio; a question is at most {_span(max_seconds)} "
                        "(cut the recording)")


def _span(seconds: float) -> str:
    """10.4 minutes, 10 minutes, 45 s."""
    return f"{seconds / 60:.1f}".removesuffix(".0") + " minutes" if seconds >= 60 else f"{seconds:.0f} s"


def _usable(rate: int, channels: int) -> bool:
    return channels >= 1 and 1000 <= rate <= 384000


def _read_other(path: Path, max_seconds: float) -> Audio:
    """A recording in any container PyAV opens, as float samples at its own rate, then `resample`d. One over
    `max_seconds` is refused from its stated duration, or once that much has been decoded; a damaged packet is
    skipped, as a player does, and the rest is heard."""
    try:
        import av
    except ImportError:
        raise EdgeRapError(f"{path}: not a WAV file (other recordings need PyAV: pip install -e '.[voice]')") from None
    parts, damaged = [], 0
    try:
        with av.open(str(path)) as container:
            stream = next((s for s in container.streams if s.type == "audio"), None)
            if stream is None:
                raise EdgeRapError(f"{path}: no audio in it")
            if stream.codec_context is None:
                raise NoDecoder(f"{path}: not a recording that can be read (no decoder for its encoding)")
            rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
            if not _usable(rate, channels):
                raise EdgeRapError(f"{path}: not a recording that can be read ({channels} channels at {rate} Hz)")
            stated = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
            if stated > max_seconds:
                raise _too_long(path, stated, max_seconds)
            packed = av.AudioResampler(format="flt", layout=stream.codec_context.layout, rate=rate)  # no new rate
            total, limit = 0, max_seconds * rate * channels
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    damaged += 1
                    continue
                for out in (o for frame in frames for o in packed.resample(frame)):
                    parts.append(out.to_ndarray().reshape(-1))
                    total += len(parts[-1])
                if total > limit:
                    raise _too_long(path, total / rate / channels, max_seconds)
    except av.error.FFmpegError as e:
        raise EdgeRapError(f"{path}: not a recording that can be read ({e.strerror or type(e).__name__})") from None
    if damaged:
        log.warning("%s: %s skipped", path, counted(damaged, "damaged packet"))
        if not parts:
            raise EdgeRapError(f"{path}: not a recording that can be read (every packet is damaged)")
    x = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    x = mono(x[: len(x) - len(x) % channels], channels)
    if not np.isfinite(x).all():
        raise EdgeRapError(f"{path}: samples that are not numbers (NaN or infinite)")
    return Audio(resample(x, rate))


def read_wav(path: Path, max_seconds: float = MAX_WAV_S) -> Audio:
    """A WAV file (PCM 8/16/24/32-bit or float, any rate, any channels) as mono 16 kHz; one over `max_seconds`
    is refused from its header, before its samples are read (a long recording would take gigabytes)."""
    try:
        with path.open("rb") as f:
            length = os.fstat(f.fileno()).st_size
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                raise EdgeRapError(f"{path}: not a WAV file")
            where: dict[bytes, tuple[int, int]] = {}  # the first of each kind, in whatever order the file has them
            while not (b"fmt " in where and b"data" in where):
                header = f.read(8)
                if len(header) < 8:
                    break
                chunk, size = header[:4], struct.unpack("<I", header[4:])[0]
                if chunk == b"data" and size == 0 and not _chunk_follows(f, length):
                    size = length - f.tell()  # a recorder stopped before it wrote the size: to the end, as ffmpeg
                where.setdefault(chunk, (f.tell(), min(size, length - f.tell())))  # a streamed WAV says 2**32 - 1
                f.seek(size + size % 2, 1)
            if b"fmt " not in where:
                raise EdgeRapError(f"{path}: WAV without a format chunk")
            fmt = _read_at(f, *where[b"fmt "])
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
            if tag == _EXTENSIBLE:
                tag = struct.unpack("<H", fmt[24:26])[0]
            if b"data" not in where:
                raise EdgeRapError(f"{path}: WAV without a data chunk")
            if not _usable(rate, channels):
                raise ValueError(f"{channels} channels at {rate} Hz")
            seconds = where[b"data"][1] / (channels * max(1, bits // 8) * rate)
            if seconds > max_seconds:
                raise _too_long(path, seconds, max_seconds)
            data = _read_at(f, *where[b"data"])
        return Audio(resample(_decode(data, tag, bits, channels), rate))
    except OSError as e:
        raise EdgeRapError(f"{path}: cannot read ({e.strerror or e})") from None
    except struct.error:
        raise EdgeRapError(f"{path}: unreadable WAV (its header is cut short)") from None
    except _Unsupported as e:
        raise UnsupportedWav(f"{path}: unreadable WAV ({e})") from None
    except ValueError as e:
        raise EdgeRapError(f"{path}: unreadable WAV ({e})") from None


def _chunk_follows(f, length: int) -> bool:
    """Whether the file goes on with a chunk's header (or ends) at its position: an empty data chunk then, not
    one whose size was never written."""
    at = f.tell()
    header = f.read(8)
    f.seek(at)
    if len(header) < 8:
        return True
    return all(32 <= b < 127 for b in header[:4]) and struct.unpack("<I", header[4:])[0] <= length - at - 8


def _read_at(f, offset: int, size: int) -> bytes:
    f.seek(offset)
    return f.read(size)


def gain(peak: float, floor: float) -> float:
    """How much to raise audio whose loudest recent sample is `peak` and quietest stretch `floor` (RMS): to
    QUIET_PEAK, by at most MAX_GAIN, and never the floor past HISS_RMS; 1 for audio at a normal level."""
    if peak >= QUIET_PEAK or peak == 0.0:
        return 1.0
    return max(1.0, min(MAX_GAIN, QUIET_PEAK / peak, HISS_RMS / floor if floor > 0 else MAX_GAIN))


def _level(chunk: np.ndarray) -> float:
    """A chunk's RMS about its own mean: 0 for digital silence, even where the stream's mean is not."""
    return float(np.std(chunk, dtype=np.float64)) if len(chunk) else 0.0


def louder(audio: Audio) -> Audio:
    """A quiet recording raised (`gain`: its loudest sample about its mean, so that a cheap microphone's DC offset
    does not pass for loudness, and its quietest chunk that is not digital silence); any other unchanged."""
    x = audio.samples
    centred = x - np.float32(x.mean()) if len(x) else x
    peak = float(np.abs(centred).max()) if len(x) else 0.0
    levels = (_level(x[i:i + CHUNK]) for i in range(0, len(x) - CHUNK + 1, CHUNK))
    floor = min((level for level in levels if level > 0), default=0.0)  # digital silence is no hiss
    g = gain(peak, floor)
    return audio if g == 1.0 else Audio((centred * g).astype(np.float32), audio.rate)


def levelled(stream: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """A live stream's chunks raised as `louder` raises a recording. The peak is the loudest recent one, falling
    by half every RELEASE_S, and it counts each chunk before the chunk is raised, so a loud sound after silence is
    never pushed past QUIET_PEAK; it starts at QUIET_PEAK, so a stream at a normal level is left alone until it
    falls quiet: a pause of a few seconds, and a soft word after one, are raised as a quiet stream is. The floor
    is the quietest chunk yet that is not digital silence, rising to follow a new hum. The peak is measured about
    the stream's mean (a DC offset, followed over about a second), which a raised chunk loses; the floor about
    each chunk's own. The gain and the mean glide from one chunk's to the next (`_glided`): stepped at each
    chunk's edge, they put a click into the audio 31 times a second."""
    peak, floor, mean = QUIET_PEAK, None, None
    fall, rise = 0.5 ** (CHUNK / RATE / RELEASE_S), 2.0 ** (CHUNK / RATE / FLOOR_RISE_S)
    follow = CHUNK / RATE  # the mean's step toward each chunk's: a time constant of about a second
    before = (1.0, 0.0)  # the last chunk's gain and mean
    for chunk in stream:
        if not len(chunk):
            yield chunk
            continue
        mean = float(chunk.mean()) if mean is None else mean + follow * (float(chunk.mean()) - mean)
        peak = max(float(np.abs(chunk - np.float32(mean)).max()), peak * fall)
        if (level := _level(chunk)) > 0:  # digital silence (a device opening) would hold it at 0
            floor = level if floor is None else min(level, floor * rise)
        now = (gain(peak, floor or 0.0), mean)
        yield chunk if now[0] == before[0] == 1.0 else _glided(chunk, before, now)
        before = now


def _glided(chunk: np.ndarray, before: tuple[float, float], now: tuple[float, float]) -> np.ndarray:
    """`chunk` raised by a gain about a mean that go in a straight line from `before`'s (gain, mean) to `now`'s;
    a DC offset, kept while the gain is 1, goes the same way. A gain that falls (a loud sound) gets there before
    the first sample it would push past QUIET_PEAK, all at once when that is the first."""
    n = len(chunk)
    span = n
    while True:
        ramp = np.minimum(np.arange(1, n + 1, dtype=np.float32) / span, 1.0) if span else np.ones(n, np.float32)
        gains, means = (np.float32(a) + np.float32(b - a) * ramp for a, b in zip(before, now))
        raised = (chunk - means) * gains
        over = np.flatnonzero(np.abs(raised) > QUIET_PEAK * 1.00001)  # (not float32's last bit)
        if not len(over) or span == 0:
            break
        span = min(int(over[0]), span - 1)
    kept = np.float32(before[0] == 1.0) + np.float32((now[0] == 1.0) - (before[0] == 1.0)) * ramp
    return (raised + means * kept).astype(np.float32)


def chunks(audio: Audio, realtime: bool = False) -> Iterator[np.ndarray]:
    """The audio as VAD-sized chunks (the last one zero-padded); `realtime` paces them as a microphone would."""
    start = time.perf_counter()
    for k, i in enumerate(range(0, len(audio.samples), CHUNK)):
        piece = audio.samples[i:i + CHUNK]
        if len(piece) < CHUNK:
            piece = np.pad(piece, (0, CHUNK - len(piece)))
        if realtime:
            time.sleep(max(0.0, start + (k + 1) * CHUNK / RATE - time.perf_counter()))
        yield piece


def input_device(device: int | str | None = None):
    """(the sounddevice module, the input device's info), or one line on why there is no microphone: what
    `doctor` reports and what `listen --mic` and `run --voice` need."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:  # OSError: PortAudio missing
        raise EdgeRapError(f"no microphone support ({e}): pip install 'edge_rap[voice]' and the "
                           "libportaudio2 system package") from None
    try:
        return sd, sd.query_devices(device, "input")
    except (ValueError, sd.PortAudioError) as e:
        raise EdgeRapError(f"no microphone: no audio input device ({e})") from None


class Microphone:
    """The default input device through sounddevice, at its own rate, resampled to 16 kHz chunks as they come.

    A device that stops giving audio (unplugged, its driver gone: PortAudio ends the stream, or its callbacks
    stop) is said once; `reopen` (a daemon's) waits for it to come back and listens again, else it is an error.
    `waiting` is called at each look for it meanwhile: the listener is waiting then, not stuck (the watchdog)."""

    def __init__(self, device: int | str | None = None, reopen: bool = False,
                 waiting: Callable[[], None] = lambda: None):
        self.device, self.reopen, self.waiting = device, reopen, waiting
        self._sd, info = input_device(device)
        self._error = self._sd.PortAudioError
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=round(MIC_BUFFER_S / MIC_BLOCK_S))
        self._closed = threading.Event()
        self._open(info)

    def _open(self, info) -> None:
        """A stream on the device `info` describes (not started)."""
        import soxr

        self.rate = int(info["default_samplerate"])
        self.name = info.get("name") or "the input device"
        self._resampler = soxr.ResampleStream(self.rate, RATE, 1, dtype="float32")
        self._pending = np.zeros(0, np.float32)
        try:  # a device another program holds, or one unplugged since it was listed, fails here
            self._stream = self._sd.InputStream(device=self.device, channels=1, samplerate=self.rate,
                                                dtype="float32", blocksize=round(self.rate * MIC_BLOCK_S),
                                                callback=self._on_audio)
        except (self._error, ValueError) as e:
            raise self._cannot_open(e) from None

    def _cannot_open(self, e: Exception) -> EdgeRapError:
        return EdgeRapError(f"cannot open the microphone ({self.name}): {e}")

    def _on_audio(self, data, frames, when, status) -> None:
        self._heard_at, self._heard_any = time.monotonic(), True
        try:
            self._queue.put_nowait(data[:, 0].copy())
        except queue.Full:  # the listener fell behind: drop the oldest block rather than block the driver
            self._queue.get_nowait()
            self._queue.put_nowait(data[:, 0].copy())

    def chunks(self) -> Iterator[np.ndarray]:
        """16 kHz chunks until `close()`, a quiet microphone's raised (`levelled`)."""
        return levelled(self._chunks())

    def _chunks(self) -> Iterator[np.ndarray]:
        self._start()
        while True:
            yield from self._until_stopped()
            if self._closed.is_set():
                return
            if not self.reopen:
                raise EdgeRapError(f"the microphone ({self.name}) stopped giving audio (unplugged?)")
            log.warning("the microphone (%s) stopped giving audio (unplugged?); listening again when it is back",
                        self.name)
            if not self._reopened():
                return
            log.warning("the microphone (%s) is back: listening again", self.name)

    def _start(self) -> None:
        self._heard_at = time.monotonic()  # when the device last gave a block: none yet, and none is late yet
        self._heard_any = False
        try:
            self._stream.start()
        except self._error as e:
            self._stream.close()
            raise self._cannot_open(e) from None

    def _until_stopped(self) -> Iterator[np.ndarray]:
        """The stream's chunks until `close()`, or until it stops giving audio."""
        with self._stream:
            while not self._closed.is_set():
                try:
                    block = self._queue.get(timeout=0.1)
                except queue.Empty:
                    if not self._alive():
                        return
                    continue
                self._pending = np.concatenate([self._pending, self._resampler.resample_chunk(block)])
                while len(self._pending) >= CHUNK:
                    piece, self._pending = self._pending[:CHUNK], self._pending[CHUNK:]
                    yield piece

    def _alive(self) -> bool:
        """Whether the stream still runs and its blocks still come (PortAudio ends a stream whose device went;
        some hosts only stop calling back)."""
        try:
            active = self._stream.active
        except self._error:
            return False
        allowed = MIC_STALL_S if self._heard_any else MIC_FIRST_AUDIO_S
        return active and time.monotonic() - self._heard_at < allowed

    def _reopened(self) -> bool:
        """Wait for the device to come back (PortAudio's device list read again every MIC_RETRY_S) and start
        it; False when closed meanwhile."""
        while not self._closed.wait(MIC_RETRY_S):
            self.waiting()
            with contextlib.suppress(self._error, AttributeError):  # (its private API, in case it goes)
                self._sd._terminate()
                self._sd._initialize()
            try:
                _, info = input_device(self.device)
                self._open(info)
                self._start()
            except EdgeRapError:
                continue
            return True
        return False

    def close(self) -> None:
        self._closed.set()
