"""What inotify says of a file open in this process (Linux): a FIFO's writes and each writer's close, queued as they
come. A writer's hang-up (POLLHUP) lasts only until the next writer opens, which a shell does at once
(`cat a > p; cat b > p`): looked for too late, the two writers' bytes were one stream. Where inotify is missing (not
Linux, no /proc, the watches' limit reached) `watch` gives None and nothing is told."""

from __future__ import annotations

import ctypes
import os
import struct

IN_MODIFY = 0x2  # (a write that put bytes in, queued as the write returns; a write that waits for room is one event)
IN_CLOSE_WRITE = 0x8
IN_OPEN = 0x20
IN_Q_OVERFLOW = 0x4000  # (events were lost)
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (of a name: none for a watched file)


class Watch:
    """The queue of one file's events; `fileno()` polls readable while events wait."""

    def __init__(self, inotify_fd: int):
        self._fd = inotify_fd

    def fileno(self) -> int:
        return self._fd

    def events(self) -> list[int]:
        """The masks of the events queued since the last call, oldest first."""
        masks = []
        while True:
            try:
                data = os.read(self._fd, 4096)
            except BlockingIOError:
                return masks
            offset = 0
            while offset < len(data):
                _, mask, _, size = _EVENT.unpack_from(data, offset)
                masks.append(mask)
                offset += _EVENT.size + size

    def close(self) -> None:
        os.close(self._fd)


def watch(fd: int, mask: int) -> Watch | None:
    """A watch on the file open as `fd` (its inode, whatever its path names now), or None where inotify cannot
    watch it."""
    try:
        libc = ctypes.CDLL(None)  # (the C library this process runs on: ctypes.util.find_library runs ldconfig)
        inotify_fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, AttributeError):  # (no inotify in this C library)
        return None
    if inotify_fd < 0:
        return None
    if libc.inotify_add_watch(inotify_fd, f"/proc/self/fd/{fd}".encode(), mask) < 0:
        os.close(inotify_fd)
        return None
    return Watch(inotify_fd)
