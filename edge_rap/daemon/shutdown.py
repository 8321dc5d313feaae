"""`run`'s parts stopped together, within one budget: their waits overlap rather than add up, so that a stop fits
systemd's TimeoutStopSec (tools/edge-rap.service argues the numbers)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)

#: The longest the parts are waited for once the frame loop ended (its frame finished, the event log flushed: 2 s
#: at most): the companion API's drain (5 s, and 10 s more for a change of the memory under way, then 1 s for its
#: server) and a line being said (1 s) fit in it, and a question being transcribed
#: by whisper when it fits (a 28 s question on one slow core does not: it is left, and the process exits under it
#: at once, exit 0). 2 + 20 s, then 2 s at most to close the memory (LlamaVlm.close), is 24 s: TimeoutStopSec=35.
STOP_BUDGET_S = 20.0


@dataclass(frozen=True)
class Part:
    """Something to stop: `stop(seconds)` asks it to end within them; whether it ended."""

    name: str
    stop: Callable[[float], bool]
    #: How long it is still waited for once the stop is hurried, where the hurry ends its own waits too (the companion
    #: API's server, 1 s): left at once, the memory closed and the process ended under its requests (500s, tracebacks).
    hurried_s: float = 0.0


def stop_together(parts: list[Part], budget_s: float = STOP_BUDGET_S,
                  clock: Callable[[], float] = time.monotonic,
                  hurry: Callable[[Callable[[], None]], None] | None = None) -> list[str]:
    """Ask every part to stop at once, each in a thread of its own, and wait for them until `budget_s` is spent,
    or until the stop is hurried (`hurry` is given what ends the wait: a second Ctrl-C; each part then waited for its
    `hurried_s` more); the names of those that did not end, each logged with what happened and when: a part whose
    own wait ended first (the companion API's 5 s for its requests and 1 s for its server, 6 s into a 20 s budget) was
    said to have had the whole budget. A failure to stop (any raise, SystemExit's too) is logged, and counts as not
    ended."""
    began = clock()
    ended: dict[str, tuple[bool, float]] = {}  # name -> (whether it ended, seconds into the stop its stop returned)
    over = threading.Event()  # every part's stop returned, or the stop hurried
    hurried: list[float] = []  # when, seconds into the stop

    def stop_one(part: Part) -> None:
        stopped = False
        try:
            stopped = part.stop(budget_s)
        except BaseException:  # (SystemExit, KeyboardInterrupt too: one left this thread unsaid, the part then said
            log.exception("%s did not stop cleanly", part.name)  # to have had the whole budget)
        ended[part.name] = (stopped, clock() - began)
        if len(ended) == len(parts):
            over.set()

    def hurrying() -> None:
        hurried.append(clock() - began)
        over.set()

    threads = [threading.Thread(target=stop_one, args=(p,), name=f"stopping {p.name}", daemon=True) for p in parts]
    for thread in threads:
        thread.start()
    if hurry is not None:
        hurry(hurrying)
    if parts:
        over.wait(max(0.0, began + budget_s - clock()))
    if hurried:
        at = clock()
        for part, thread in zip(parts, threads):
            thread.join(max(0.0, min(at + part.hurried_s, began + budget_s) - clock()))
    left = []
    for part in parts:
        stopped, after_s = ended.get(part.name, (False, None))
        if stopped:
            continue
        left.append(part.name)
        when = (f"its own stop ended, {after_s:.1f} s into the stop" if after_s is not None
                else f"the stop was hurried (a second signal), {hurried[0]:.1f} s into it" if hurried
                else f"the stop's {budget_s:g} s were spent")
        log.warning("%s had not stopped when %s: it goes down with the process", part.name, when)
    return left
