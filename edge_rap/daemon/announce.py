"""Announcements: the line said when concepts arrive, made off the recognition path.

Without a VLM the line is the template, made at once. With one, the RAP prompt (the concepts' references
and the newest frame) is answered in the announcer's own thread; one announcement waits at most, and a newer
one replaces it, its events reported with their template line and not spoken, so nothing piles up behind a
slow model.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from edge_rap.generate.narrate import listed, narrate
from edge_rap.generate.prompt import Task
from edge_rap.newest import NewestWorker
from edge_rap.types import Event, Frame, Hit, Recognition

log = logging.getLogger(__name__)


#: Arrivals of one frame that its line describes; the rest it names: twelve guests arriving together were
#: described for a minute and a half, every newer line (an answer too) waiting behind them.
DESCRIBED = 3


def template_line(hits: list[Hit], size: tuple[int, int]) -> str:
    """"I can see <bo> on the left — our Shiba Inu." for the concepts that just arrived."""
    line = narrate(Task.CAPTION, hits[:DESCRIBED], [], size)
    rest = [f"<{h.concept.name}>" for h in hits[DESCRIBED:]]
    return f"{line} {listed(rest)} {'is' if len(rest) == 1 else 'are'} here too." if rest else line


@dataclass
class Announcement:
    events: list[Event]  # the arrivals of one frame, `said` holding the template line
    frame: Frame
    recognition: Recognition
    done: bool = False  # reported (once: by the announcer's thread, or by close when that thread is late)


class Announcer:
    """Reports arrivals through `report` (print, log) and speaks them through `say`; with an `assistant`
    holding a VLM, generates the line first, in its own thread."""

    def __init__(self, report: Callable[[Event], None], say: Callable[[str], None] | None, assistant=None,
                 known: Callable[[], dict[int, str]] | None = None):
        """`known`: the concepts remembered now, id -> name; a generated line is not said, nor its events reported,
        when one of its concepts was forgotten while it was being written, and one renamed meanwhile takes its
        new name in the line and the events."""
        self.report = report
        self.say = say
        self.assistant = assistant
        self.known = known
        self.generate_ms: deque[float] = deque(maxlen=1024)
        self._lock = threading.Lock()
        self._current: Announcement | None = None  # being generated
        self._closed = False
        self._worker = NewestWorker("announcer", self._generate) if assistant is not None else None

    def submit(self, announcement: Announcement) -> None:
        if self._worker is None:
            self._finish(announcement)
            return
        stale = self._worker.submit(announcement)
        if stale is not None:  # superseded before it started: reported with its template line, not spoken
            self._report_all(stale)

    def flush(self, timeout: float) -> bool:
        """Wait until every announcement was generated and handed to the speaker."""
        return self._worker is None or self._worker.flush(timeout)

    def close(self, timeout: float = 1.0) -> None:
        """Stop after the line in progress (up to `timeout`); a waiting one is reported with its template, and so is
        the one in progress when it is not done by then: nothing is reported, nor said, after the run ended."""
        if self._worker is not None:
            stale = self._worker.close(timeout)
            if stale is not None:
                self._report_all(stale)
            with self._lock:
                self._closed = True
                late, self._current = self._current, None
            if late is not None:
                self._report_all(late)

    def _report_all(self, announcement: Announcement) -> bool:
        """Report its events, unless that was done already; whether they were reported now."""
        with self._lock:
            if announcement.done:
                return False
            announcement.done = True
        for event in announcement.events:
            self.report(event)
        return True

    def _finish(self, announcement: Announcement) -> None:
        if not self._follows_memory(announcement):
            with self._lock:
                announcement.done = True
            return
        if self._report_all(announcement) and self.say is not None and announcement.events:
            self.say(announcement.events[0].said)

    def _follows_memory(self, announcement: Announcement) -> bool:
        """The announcement made to follow what the memory says now: False where a concept of it was forgotten
        meanwhile (its line names it); a concept renamed meanwhile, one arriving or one in view, takes its new
        name (the VLM wrote the old one: said, and logged, a name no command knows any more)."""
        ids = [e.concept_id for e in announcement.events if e.concept_id is not None]
        if self.known is None or not ids:
            return True
        try:
            known = self.known()
        except Exception as e:  # the memory cannot be read: say the line rather than lose it
            log.warning("cannot check the concepts before announcing: %s", e)
            return True
        gone = [e.name for e in announcement.events if e.concept_id is not None and e.concept_id not in known]
        if gone:
            log.info("not announcing <%s>: forgotten while its line was written", ">, <".join(gone))
            return False
        named = {e.concept_id: e.name for e in announcement.events if e.concept_id is not None}
        named.update({h.concept.id: h.concept.name for h in announcement.recognition.hits})
        renamed = {old: known[cid] for cid, old in named.items() if cid in known and known[cid] != old}
        for event in announcement.events if renamed else ():
            event.name = renamed.get(event.name, event.name)
            if event.said:  # all at once: <bo> -> <beau> and <beau> -> <bo> swap them
                event.said = re.sub(r"<([^<>]+)>", lambda m: f"<{renamed.get(m.group(1), m.group(1))}>", event.said)
        return True

    def _generate(self, job: Announcement) -> None:
        with self._lock:
            if self._closed:
                return
            self._current = job
        started = time.perf_counter()
        cut = False
        try:
            answer = self.assistant.ask("", job.frame.image(), recognition=job.recognition)
            cut = answer.stopped == "interrupted"  # the run is stopping: half a line is neither said nor shown
            for event in job.events if not cut else ():
                event.said = answer.text
        except Exception as e:  # a failed generation keeps the template line, never stops the daemon
            log.warning("generation failed, template line used: %s", e)
        self.generate_ms.append(1000 * (time.perf_counter() - started))
        with self._lock:
            self._current = None
            if self._closed:  # too late: close reported it with its template line
                return
        if cut:  # reported with its template line, as close does, and not said
            self._report_all(job)
            return
        self._finish(job)
