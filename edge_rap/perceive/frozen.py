"""A camera that froze: its frames keep coming, every one the very same pixels.

A USB webcam whose driver wedged, an IP camera whose encoder hung, an RTSP relay that repeats its last frame: the
motion gate skips unchanged frames, so what was in view would stay "present" for good. A real sensor's noise
changes some pixel of every frame, but a decoded H.264 stream of a still scene repeats a frame exactly between
keyframes (skipped macroblocks), for a GOP: 1-4 s, 10 s or more from a "smart codec" IP camera. So frames count
as frozen only once the very same pixels came for longer than any GOP: FROZEN_S by default (a `run` setting).
"""

from __future__ import annotations

import zlib

import numpy as np

#: Seconds of the very same frame from a live camera, while something is in view, before it counts as frozen.
FROZEN_S = 30.0


def pixels_digest(pixels: np.ndarray) -> tuple:
    """A frame's exact pixels, told apart cheaply: its shape and the CRC-32 of its bytes (a 640x480 frame's in
    about 0.3 ms, a tenth of a strong hash's time; two frames that differ and share it are 1 in 4 billion)."""
    return pixels.shape, zlib.crc32(np.ascontiguousarray(pixels))


class SameFrames:
    """Since when one camera's frames have been the very same pixels, in the frames' own time."""

    def __init__(self):
        self._digest: tuple | None = None
        self._since = 0.0

    def clear(self) -> None:
        """Forget the frames so far: the next one starts anew."""
        self._digest = None

    def since(self, pixels: np.ndarray, time_s: float) -> float:
        """The time of the first of the frames up to this one that all have its pixels (its own, where it differs
        from the one before)."""
        digest = pixels_digest(pixels)
        if digest != self._digest:
            self._digest, self._since = digest, time_s
        return self._since
