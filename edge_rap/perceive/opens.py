"""The video opens under way in this process. OpenCV's FFmpeg backend opens one source at a time (a lock held through
its probe of the stream), so a FIFO writer that stalls before its video opened keeps every other source's open
waiting; a FIFO's relay ends such a stall only while another open is under way (`crowded`): a lone writer slow to
send its first frame (a camera pipeline starting) keeps no one waiting, and is waited for."""

from __future__ import annotations

import threading
from contextlib import contextmanager

_lock = threading.Lock()
_under_way = 0


@contextmanager
def opening():
    """Counts the block, a VideoCapture's open, as under way."""
    global _under_way
    with _lock:
        _under_way += 1
    try:
        yield
    finally:
        with _lock:
            _under_way -= 1


def crowded() -> bool:
    """Whether more than one open is under way: the one OpenCV is in keeps the others waiting."""
    return _under_way > 1
