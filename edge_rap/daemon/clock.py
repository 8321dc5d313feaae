"""The wall clock, watched against the steady one. A board with no clock battery boots in 1970, or at the time it
last saved, and NTP sets it minutes later: the daemon, which may run for months, sees the set as a step of the
wall clock against the steady one, and moves what it logged before with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

#: No edge-rap event happened before 2024 (the RAP paper's year): a clock, or an event's time, earlier is not set.
EARLIEST_WALL = 1704067200.0
#: A change of the wall clock against the steady one larger than this between two readings is the clock being set;
#: NTP's slewing moves it by milliseconds a second, and a step smaller changes no answer and no retention.
STEP_S = 60.0


def steady_now() -> float:
    """Seconds since boot, suspend included as the wall clock includes it (CLOCK_BOOTTIME, Linux): a device that
    sleeps is not a clock being set. Elsewhere the monotonic clock."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(boottime) if boottime is not None else time.monotonic()


@dataclass(frozen=True)
class Reading:
    wall: float  # the wall clock's Unix time
    step_s: float = 0.0  # how far the clock was set since the last reading (0: it was not)


class WallClock:
    """Reads the wall clock and says when it was set since the last reading."""

    def __init__(self, wall: Callable[[], float] = time.time, steady: Callable[[], float] = steady_now,
                 step_s: float = STEP_S):
        self._wall, self._steady, self.step_s = wall, steady, step_s
        self._offset: float | None = None  # wall minus steady at the last reading
        self._first: tuple[float, float] | None = None  # the first reading: the wall clock's time, and the steady one's

    def read(self) -> Reading:
        wall, steady = self._wall(), self._steady()
        offset, last = wall - steady, self._offset
        self._offset = offset
        if self._first is None:
            self._first = (wall, steady)
        if last is None or abs(offset - last) <= self.step_s:
            return Reading(wall)
        return Reading(wall, offset - last)

    def since_first(self) -> float | None:
        """The first reading's wall time plus the steady time since: what the clock would read now had it not been
        set meanwhile. None before a reading, or where the first one was not plausible (1970: setting it is right)."""
        if self._first is None or not plausible(self._first[0]):
            return None
        return self._first[0] + self._steady() - self._first[1]


def plausible(wall: float) -> bool:
    """Whether a wall time can be a real one of this device (not the 1970 of a clock not set yet)."""
    return wall >= EARLIEST_WALL
