"""The cheap gate: an unchanged scene costs a shrink and a difference, not a recognition.

Frigate's motion detector is the model: the frame shrunk to about 100 px high and blurred, a running-average
background, the absolute difference thresholded, and the changed contours' area compared with a minimum.
When most of the frame changes at once (lights, exposure, a camera moved) the background is taken afresh.
A re-check every few seconds catches what arrives too slowly to count as motion (the daemon makes it cheap:
one whole-frame embedding compared with the last one). How many frames a second reach the gate is the
camera's cap (perceive/camera.py), so frames it would not look at are never decoded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GateSettings:
    height: int = 100  # pixels the frame is shrunk to
    threshold: int = 25  # grey-level difference that counts as changed
    min_area: float = 0.004  # changed fraction of the frame that counts as motion
    recalibrate_area: float = 0.6  # changed fraction above which the background is taken afresh
    alpha: float = 0.2  # running average weight of the newest frame
    recheck_s: float = 5.0  # a frame is due for a re-check at least this often (0: never)


class MotionGate:
    """Says whether a frame is worth recognising: it moved, the scene was reset, or a re-check is due."""

    def __init__(self, settings: GateSettings = GateSettings()):
        self.settings = settings
        self._background: np.ndarray | None = None
        self._last_due = -1e9

    def _small(self, pixels: np.ndarray) -> np.ndarray:
        import cv2

        height = self.settings.height
        width = max(1, round(pixels.shape[1] * height / max(1, pixels.shape[0])))
        step = max(1, pixels.shape[0] // (2 * height))  # every step-th pixel first: a view, no copy, a quarter the work
        grey = cv2.cvtColor(cv2.resize(pixels[::step, ::step], (width, height), interpolation=cv2.INTER_AREA),
                            cv2.COLOR_RGB2GRAY)
        return cv2.GaussianBlur(grey, (3, 3), 0).astype(np.float32)

    def changed_fraction(self, pixels: np.ndarray) -> float:
        """The fraction of the shrunk frame in moving contours; updates the background."""
        import cv2

        small = self._small(pixels)
        if self._background is None or self._background.shape != small.shape:
            self._background = small
            return 1.0
        delta = cv2.absdiff(small, self._background)
        _, mask = cv2.threshold(delta, self.settings.threshold, 255, cv2.THRESH_BINARY)
        mask = cv2.dilate(mask.astype(np.uint8), None, iterations=1)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        area = sum(cv2.contourArea(c) for c in contours) / float(small.size)
        if area > self.settings.recalibrate_area:
            self._background = small
        else:
            cv2.accumulateWeighted(small, self._background, self.settings.alpha)
        return area

    def look(self, pixels: np.ndarray, time_s: float) -> str:
        """"moved" (recognise it; the first frame always), "due" (a re-check is due), or "still"."""
        if self.changed_fraction(pixels) >= self.settings.min_area:
            self._last_due = time_s
            return "moved"
        if self.settings.recheck_s > 0 and time_s - self._last_due >= self.settings.recheck_s:
            self._last_due = time_s
            return "due"
        return "still"
