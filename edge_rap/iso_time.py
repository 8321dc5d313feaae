"""ISO 8601 date-times as a person or a program types them (`--since`, `--until`, the API's `since`), read by one
parser, so that the same text is the same time on every Python: 3.10's `datetime.fromisoformat` (a Jetson's
JetPack 6) reads only what `isoformat()` writes, and refused `T1000`, `+0100`, `10:00:00,5`, `.5`, `20261205`
and `Z`, all of which 3.11 to 3.13 read; none of them reads `T24:00`, ISO 8601's end of a day."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone

_DATE = (r"(?P<year>\d{4})(?P<dash>-?)(?:(?P<month>\d{2})(?P=dash)(?P<day>\d{2})"
         r"|W(?P<week>\d{2})(?:(?P=dash)(?P<weekday>[1-7]))?)")
_TIME = (r"(?P<hour>\d{2})(?:(?P<colon>:?)(?P<minute>\d{2})"
         r"(?:(?P=colon)(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?)?")
_ZONE = r"(?P<zone>[Zz]|(?P<sign>[+-])(?P<zh>\d{2})(?:(?P<zcolon>:?)(?P<zm>\d{2})(?:(?P=zcolon)(?P<zs>\d{2}))?)?)"
_DATE_TIME = re.compile(rf"{_DATE}(?:[Tt ]{_TIME})? ?{_ZONE}?", re.ASCII)  # `\d` of ASCII digits only, as 3.11


def read_iso(text: str) -> datetime:
    """The date-time `text` says: a date (`2026-12-05`, `20261205`, a week's `2026-W49-1`, `2026W491`, `2026-W49`),
    then, after `T` or a space, a time (`10`, `10:00`, `1000`, `10:00:00`, `100000`, fractions of a second after a
    `.` or a `,`, digits past the sixth dropped), then an offset (`Z`, `+01`, `+01:00`, `+0100`, `-05:30:15`).
    Naive without an offset; a date with one is that day's midnight there. `24:00` (`24`, `24:00:00.000`) is
    ISO 8601's end of the day, the next day's midnight, as a schedule's end is written (every Python refused it).
    ValueError for anything else (`24:00:01`; a fraction of an hour or a minute, which 3.11 read as one of a
    second: `10:30,5` as 10:30:00.5)."""
    match = _DATE_TIME.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an ISO date-time: {text!r}")
    at, days = _time(match)
    try:
        day = _date(match) + timedelta(days=days)
    except OverflowError:  # (9999-12-31T24:00)
        raise ValueError(f"past the last date: {text!r}") from None
    return datetime.combine(day, at, _zone(match))


def _date(match: re.Match) -> date:
    year = int(match["year"])
    if match["week"] is None:
        return date(year, int(match["month"]), int(match["day"]))
    return date.fromisocalendar(year, int(match["week"]), int(match["weekday"] or 1))


def _time(match: re.Match) -> tuple[time, int]:
    """The time of day, and the days it is after the date's: 1 for the end of the day, 24:00 and no more."""
    hour, minute, second = (int(match[part] or 0) for part in ("hour", "minute", "second"))
    if hour == 24 and minute == second == int(match["fraction"] or 0) == 0:
        return time(0), 1
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    return time(hour, minute, second, int(fraction)), 0


def _zone(match: re.Match) -> timezone | None:
    if match["zone"] is None:
        return None
    if match["sign"] is None:
        return timezone.utc
    minutes, seconds = int(match["zm"] or 0), int(match["zs"] or 0)
    if minutes > 59 or seconds > 59:
        raise ValueError(f"not an offset: {match['zone']!r}")
    offset = timedelta(hours=int(match["zh"]), minutes=minutes, seconds=seconds)
    return timezone(-offset if match["sign"] == "-" else offset)
