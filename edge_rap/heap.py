"""The C heap of a process that runs for months: how glibc's malloc is told to give memory back."""

from __future__ import annotations


def steady_malloc() -> bool:
    """Keep a months-long process's heap from creeping: glibc raises its mmap threshold each time a large
    block (a camera frame) is freed, after which frames come from the heap and fragment it across the
    capture threads' arenas. A fixed threshold and two arenas keep RSS flat, and the regions onnxruntime's
    arena frees (models/sessions.py) go back to the system. Called by every process that opens a model; safe
    to call again. Whether glibc took it."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_mmap_threshold, m_arena_max = -3, -8
        return bool(libc.mallopt(m_mmap_threshold, 128 * 1024)) and bool(libc.mallopt(m_arena_max, 2))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
