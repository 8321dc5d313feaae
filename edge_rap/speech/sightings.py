"""How a sighting is said: how long ago, and on which camera ("I last saw <bo> on the den camera 4 minutes ago")."""

from __future__ import annotations

import re

from edge_rap.wording import counted


UNITS = (("day", 86400), ("hour", 3600), ("minute", 60))


def ago(seconds: float) -> str:
    """"just now", "4 minutes ago", "2 hours ago", "3 days ago": to the nearest of the largest unit passed (1 h 55
    min is "2 hours ago", not "1 hour ago"; 23 h 40 min is "1 day ago")."""
    for k, (unit, size) in enumerate(UNITS):
        if seconds >= size:
            n = round(seconds / size)
            if k and n * size >= UNITS[k - 1][1]:
                unit, n = UNITS[k - 1][0], 1
            return f"{counted(n, unit)} ago"
    return "just now" if seconds < 10 else f"{int(seconds)} seconds ago"


def comparable(wall: float, now: float) -> bool:
    """Whether an event's time can be measured from now: not where it is not real (logged in the 1970 of a clock
    not set yet, while now is real) or ahead of now (a clock not set yet now, or set back). (Both in 1970: one
    clock, not set yet, timed them, and the difference holds.)"""
    from edge_rap.daemon.clock import STEP_S, plausible

    return wall <= now + STEP_S and (plausible(wall) or not plausible(now))


def ago_of(wall: float, now: float) -> str:
    """How long ago an event was; "a while ago" where that cannot be told (`comparable`), not "20000 days ago"
    nor a time to come."""
    return ago(now - wall) if comparable(wall, now) else "a while ago"


#: How the cameras `run` names camK (a source given no name) are said: "the cam0 camera" read aloud as "the cam
#: zero camera", and "on camera 0 4 minutes ago" as "camera zero four minutes ago".
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def the_camera(name: str) -> str:
    """A camera's name as said in a sentence: "den" is "the den camera", "garden cam" stays "the garden cam", and
    an unnamed source's cam0 is "the first camera"."""
    if (unnamed := re.fullmatch(r"cam(\d+)", name)) and int(unnamed[1]) < len(_ORDINALS):
        return f"the {_ORDINALS[int(unnamed[1])]} camera"
    return f"the {name}" if re.search(r"(cam|camera)$", name, re.I) else f"the {name} camera"
