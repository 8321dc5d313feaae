"""A FIFO's bytes relayed into a pipe of our own that FFmpeg reads, so that a stop ends FFmpeg's read.

FFmpeg reading the FIFO itself waited in a read no stop reaches when the writer stalled (mid-header, mid-frame): it
reads its own duplicate of the read end (closing ours reaches nothing), and OpenCV's interrupt callback is a
timeout alone. The relay closes its pipe's write end at the stop, an end of file for FFmpeg at once.

OpenCV opens one source at a time: FFmpeg's probe of a writer that stalled mid-header held every other source's open
for as long as it stalled. Until the open returned, a writer that sends no byte for OPEN_STALL_S while another source's
open is under way (`opens.crowded`) has the pipe ended too, the probe failing on what came; a lone one is waited for (a
camera pipeline that wrote its header, then took seconds to give its first frame, was cut and its video lost). After
the open, a pause is the stream's own, waited out. A stall is cut only while FFmpeg has taken every byte relayed (its
probe in its read, holding the open): bytes still in the pipe are an open queued behind another's (an unreachable
URL's, up to 30 s), which the cut would not hasten, and whose writer's video it lost."""

from __future__ import annotations

import array
import ctypes
import errno
import fcntl
import os
import select
import termios
import threading
import time

from edge_rap.perceive import inotify
from edge_rap.perceive.opens import crowded

#: How often the relay, waiting for the writer's bytes or for FFmpeg to take them, looks at the stop (milliseconds).
LOOK_MS = 100
CHUNK = 1 << 16
#: Seconds without a byte from the writer after which an open still pending is ended, while another source's open
#: waits: a header comes in one go from a recorder that has its first frame, and a camera that takes a second or two
#: to give it is waited for; the other sources' opens wait this long at most behind a stalled one.
OPEN_STALL_S = 3.0
#: Seconds without a byte from the writer after which a FIFO made anew or removed is left (a writer hung, mid-header or
#: mid-stream, kept the source on the old FIFO, the new one's writers meeting no reader): a live stream's pause between
#: frames (a time-lapse's 2 s; FFmpeg's probe of a slow one takes several) is its own, its video not cut for a path
#: changed (looked at whenever the FIFO was empty, a live writer's stream was cut at once, the writer killed by EPIPE).
HUNG_S = 3.0


class FifoRelay:
    """Copies `source` (a FIFO's read end, left open) into `read_end` until the writer's end of file, the stop, or
    `close()`; `source` is read no more once close() returned, so its owner may close it then."""

    def __init__(self, source: int, stop: threading.Event, name: str, end: WriterEnd | None, discard: bool = False,
                 path: str | None = None):
        """`end`: the watch of `source`'s writers (None where inotify cannot watch it), made once for the read end
        and handed on from relay to relay on it, its owner's to close: a watch made at each relay missed a writer's
        close between two (a refused one's, the next writer's clip then let go as its junk). `discard`: the writer's
        bytes are read and let go until its close, told for certain, or until which of them are its cannot be told
        (no inotify, or a next writer's bytes may be among them). `path`: the FIFO's, looked at while the writer
        sends nothing for HUNG_S: made anew or removed, the copy ends (`replaced`), a hung writer no longer keeping
        the source on a FIFO no next writer can reach."""
        self.read_end, self._write_end = os.pipe()
        os.set_blocking(self._write_end, False)
        self._source, self._stop, self._done, self._discard = source, stop, threading.Event(), discard
        self._end, self._path = end, path
        self._opened = threading.Event()
        if discard:
            self._opened.set()  # (no open to cut a stall of)
        self.stalled = False  # the pipe was ended for a writer's stall before the open returned, another waiting
        self.replaced = False  # the pipe was ended, the writer silent for HUNG_S, `path` naming another file or none
        self.writer_closed = False  # the writer's end of file was read: the FIFO's next bytes are the next writer's
        self.owed = 0  # once writer_closed: its last bytes not let go (a read failed), still first in the FIFO
        self.relayed = 0  # the writer's bytes read so far (a hung writer's end says them)
        self._thread = threading.Thread(target=self._copy, name=f"fifo-relay-{name}", daemon=True)
        self._thread.start()

    def _ended(self) -> bool:
        return self._stop.is_set() or self._done.is_set()

    def _probed(self) -> bool:
        """Whether FFmpeg took every byte relayed so far: its open is in its read of our pipe, not queued behind
        another source's (an open still waiting for OpenCV's lock leaves them in the pipe). With no count of a
        pipe's bytes here, a stall is cut as before."""
        return not unread(self.read_end)

    def opened(self) -> None:
        """OpenCV's open returned: from now on the writer's pauses are its stream's, never an end."""
        self._opened.set()

    def _copy(self) -> None:
        end = self._end
        into, out = select.poll(), select.poll()
        into.register(self._source, select.POLLIN)
        out.register(self._write_end, select.POLLOUT)
        out.register(self._source, 0)  # (its writer's hang-up wakes a wait for FFmpeg too: its hang-up alone)
        for poller in (into, out) if end is not None else ():
            poller.register(end.fileno(), select.POLLIN)
        os.set_blocking(self._source, False)
        waiting_since = time.monotonic()  # for the writer's next byte (not for FFmpeg to take the last ones)
        left = None  # once the writer left: the bytes the FIFO still held then, its last (a next writer's follow)
        try:
            while not self._ended():
                if left is None:
                    left = self._writer_left(end, (into, out))
                if left == 0:  # the writer closed: the next writer's bytes are the next clip's, not this one's
                    self.writer_closed = True
                    return
                if left is None and self._discard and (end is None or end.lost):  # (whose bytes: not told)
                    return
                try:  # (read first: a FIFO whose writer left before its read end was opened never polls as hung up)
                    data = os.read(self._source, min(CHUNK, left or CHUNK))
                except BlockingIOError:  # a writer there, nothing written yet
                    if (not self._opened.is_set() and time.monotonic() - waiting_since >= OPEN_STALL_S
                            and crowded() and self._probed()):
                        self.stalled = True
                        return
                    if (self._path is not None and time.monotonic() - waiting_since >= HUNG_S
                            and replaced(self._path, self._source)):
                        self.replaced = True
                        return
                    into.poll(LOOK_MS)
                    continue
                if not data:  # (no writer, none since the read end was opened: what came was a writer's gone)
                    left = 0
                    continue
                self.relayed += len(data)
                if end is not None:
                    end.took(len(data))
                left = None if left is None else left - len(data)
                while data and not self._discard and not self._ended():
                    ready = dict(out.poll(LOOK_MS))
                    hang_up = ready.get(self._source, 0) & select.POLLHUP  # (once, however it was first seen: a
                    # hang-up stays, and left registered it answered every poll at once while FFmpeg took nothing)
                    if left is None and (hang_up or end is not None and end.fileno() in ready):
                        left = self._writer_left(end, (into, out))
                    if hang_up and left is not None:  # (else a next writer came: no hang-up till it leaves)
                        out.unregister(self._source)
                    if ready.get(self._write_end):
                        data = data[os.write(self._write_end, data):]
                waiting_since = time.monotonic()
        except OSError:  # FFmpeg closed its end (EPIPE: it took what it wanted, or refused the bytes)
            pass
        finally:
            if left and not self._stop.is_set():  # ended (FFmpeg done, or its open refused the bytes) after the
                self.owed = let_go(self._source, left)  # writer left: its last bytes are let go, not taken as the
                self.writer_closed = True  # next writer's first (a refused one's, let go with them till its close);
            os.close(self._write_end)  # its close told all the same where a read of them failed (`owed`): taken as
            # not told, the next relay waited for it, letting the next writer's clip go as its bytes

    def _writer_left(self, end: WriterEnd | None, pollers: tuple) -> int | None:
        """The bytes the FIFO still holds from the writer once it left: told by inotify (`end`), else by its
        hang-up seen now; None while it is there, or where which bytes are its cannot be told."""
        told = end is not None and not end.lost
        left = end.left() if told else None
        if left is None and hung_up(self._source):  # (its close is queued before its hang-up shows: asked again; a
            left = end.left() if told and not end.lost else None  # next writer's whole life between the two, a
            if left is None:  # shell's `cat a > p; cat b > p`, had b's bytes counted as a's last, relayed as its video)
                left = last_bytes(self._source)
        if told and (left is not None or end.lost):  # (its events no longer looked at: a next writer's woke every
            for poller in pollers:  # poll at once)
                poller.unregister(end.fileno())
        return left

    def wait(self, timeout: float | None = None) -> bool:
        """Until the copy ended (the writer's close, its bytes no longer told from a next writer's, or the stop), or
        `timeout` seconds passed: whether it ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def close(self) -> None:
        """End the copy (within LOOK_MS) and close the pipe: after FFmpeg let its end go."""
        self._done.set()
        self._thread.join()
        os.close(self.read_end)


class WriterEnd:
    """A FIFO writer's close as inotify tells it, and the bytes it left there: a hang-up (POLLHUP) lasts only until
    the next writer opens, which a shell does at once (`cat a > p; cat b > p`), but the close stays queued. Its bytes
    left are those the FIFO held after its last write (counted with no event between, its last write before the
    count), less those read since; where a next writer's open came before they were counted, which bytes are whose
    cannot be told (`lost`: as without inotify, its hang-up alone is looked for)."""

    MASK = inotify.IN_MODIFY | inotify.IN_CLOSE_WRITE | inotify.IN_OPEN

    def __init__(self, source: int, events: inotify.Watch):
        self._source, self._events = source, events
        self._held: int | None = None  # the writer's bytes in the FIFO: counted after its last write, less those read
        self.lost = False

    @classmethod
    def of(cls, source: int) -> WriterEnd | None:
        """The FIFO open as `source` watched, or None where inotify cannot watch it."""
        events = inotify.watch(source, cls.MASK)
        return None if events is None else cls(source, events)

    def fileno(self) -> int:
        return self._events.fileno()

    def took(self, count: int) -> None:
        """`count` bytes were read from the FIFO (more than were counted: its write put them in since)."""
        self._held = self._held - count if self._held is not None and count <= self._held else None

    def left(self) -> int | None:
        """The bytes the writer left in the FIFO, once it closed; None while it is there, or `lost`."""
        state, held = self._told(self._events.events(), self._held, True)
        if state == "there" and held is None:  # (its bytes not counted since its last write: counted now, then the
            count = unread(self._source)  # events since looked at: read before the count, a close and a next
            state, held = self._told(self._events.events(), count, False)  # writer's open and bytes just after
            # them were counted as its own, the next clip's header relayed as the last one's, or let go with junk)
        self.lost = state == "lost"
        self._held = held if state == "there" else None
        return held if state == "closed" else None

    def _told(self, masks: list[int], held: int | None, before: bool) -> tuple[str, int | None]:
        """What the events `masks` tell, `held` being the writer's bytes counted (`before` them all, or somewhere
        before the last): ("closed", the bytes it left), ("there", its bytes counted or None), or ("lost", None)."""
        for k, mask in enumerate(masks):
            last = k == len(masks) - 1
            if mask & inotify.IN_MODIFY:
                held = None
            elif not mask & inotify.IN_CLOSE_WRITE:  # another open (a second writer's), or events lost
                return "lost", None
            elif held is not None and (before or last):  # (a next writer's bytes come after its open, after the
                return "closed", held  # close: never among those counted before it)
            elif not _wrote(masks[k + 1:]):  # its last write came before its close, none since (a next writer's
                # open alone, as `cat a > p; cat b > p` gives it in one batch, was taken as lost: b's clip read as
                # more of a's): counted now
                return self._counted_after_close(any(m & inotify.IN_OPEN for m in masks[k + 1:]))
            else:
                return "lost", None
        return "there", held

    def _counted_after_close(self, opened: bool) -> tuple[str, int | None]:
        """The bytes a writer that closed after its last write left, counted now: ("closed", count) where no write
        is told after the count, nor, a next writer having opened (`opened`, or told now), may the FIFO be full: a
        write that waits for room has put its first bytes in, untold until it returns (`full`: in pages, not bytes:
        taken as full within two pages of its size, one a quarter short was not: a writer's 2049-byte writes, a page
        each, left 16 KiB in 8 pages, a next writer's blocked write 32 KiB in the other 8, all counted as its last;
        5000-byte writes, then a next writer's 26 KB at once, had b's first frame counted as a's in 2 runs of 12);
        else ("lost", None)."""
        count = unread(self._source)
        filled = full(self._source) if count else False  # (after the count: a write blocked since then makes it
        since = self._events.events()  # full, taken as lost; one that returned since is told)
        opened = opened or any(m & inotify.IN_OPEN for m in since)
        if count is None or _wrote(since) or opened and filled:
            return "lost", None
        return "closed", count

    def close(self) -> None:
        self._events.close()


def _wrote(masks: list[int]) -> bool:
    """Whether the events `masks` tell of a write, or of anything but writers' opens and closes (events lost)."""
    return any(m & ~(inotify.IN_OPEN | inotify.IN_CLOSE_WRITE) for m in masks)


def let_go(fd: int, count: int) -> int:
    """Read and drop `count` bytes from the FIFO open as `fd`, a writer's that left: those not let go, a read of
    them failing (they stay first in the FIFO), or 0."""
    try:
        while count > 0:
            data = os.read(fd, min(CHUNK, count))
            if not data:
                return 0
            count -= len(data)
    except OSError:
        pass
    return count


def replaced(path: str, fd: int) -> bool:
    """Whether `path` no longer names the file open as `fd`: a writer opens what the path names, never the FIFO
    waited on, which waited for good."""
    try:
        now, held = os.stat(path), os.fstat(fd)
    except OSError:
        return True
    return (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino)


def hung_up(fd: int) -> bool:
    """Whether the FIFO open as `fd` has no writer now, having had one since `fd` was opened (Linux's POLLHUP)."""
    poller = select.poll()
    poller.register(fd, 0)  # (a hang-up is reported whatever is asked for)
    return any(e & select.POLLHUP for _, e in poller.poll(0))


def last_bytes(fd: int) -> int | None:
    """The bytes the FIFO open as `fd` still holds from the writer that left it (its hang-up seen): counted, then
    its hang-up looked at again, so that no next writer's are among them; None where a next writer came before
    they were counted (which bytes are whose cannot be told: they are read as one writer's, as they always were)."""
    left = unread(fd)
    return left if left is not None and hung_up(fd) else None


def room(fd: int) -> int:
    """The bytes the pipe or FIFO open as `fd` holds at most (0 where it cannot be told)."""
    try:
        return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
    except OSError:
        return 0


_SPLICE_F_NONBLOCK = 2


def full(fd: int) -> bool:
    """Whether the pipe or FIFO open as `fd` is full, a write to it waiting for room (True where it cannot be told):
    full is every page of its room used, however few bytes each holds (each write's bytes go after the last one's
    where they fit, else into pages of their own), so its bytes cannot tell it. Its pages are teed (Linux's `tee`,
    each page of it one of ours, none read) into a pipe of our own with as many: full where ours has no page left."""
    size = room(fd)
    try:
        ours = os.pipe()
    except OSError:  # (no descriptor left)
        return True
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # (the C library this process runs on, as inotify's)
        libc.tee.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint]
        libc.tee.restype = ctypes.c_ssize_t
        if not size or fcntl.fcntl(ours[1], fcntl.F_SETPIPE_SZ, size) != size:  # (beyond pipe-max-size, the
            return True  # account's pipe pages spent)
        if libc.tee(fd, ours[1], size, _SPLICE_F_NONBLOCK) < 0:
            return ctypes.get_errno() != errno.EAGAIN  # (empty: never full)
        poller = select.poll()
        poller.register(ours[1], select.POLLOUT)
        return not poller.poll(0)
    except (OSError, AttributeError):  # (no tee in this C library)
        return True
    finally:
        os.close(ours[0])
        os.close(ours[1])


def unread(fd: int) -> int | None:
    """The bytes waiting in the pipe or FIFO open as `fd` (FIONREAD), or None where it cannot be told."""
    count = array.array("i", [0])
    try:
        fcntl.ioctl(fd, termios.FIONREAD, count)
    except OSError:
        return None
    return count[0]
