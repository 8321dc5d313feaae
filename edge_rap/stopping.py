"""The stop of a command that stops itself (`run`, `serve`): set by the first SIGINT, SIGTERM or SIGHUP
(cli._stop_on_signals). The stop then waits, bounded, for work under way (an upload being stored, up to 15 s);
a second signal ends those waits at once: each waiter gave `on_hurry` what ends its own. A second Ctrl-C did
nothing, and the terminal said nothing for 15 s."""

from __future__ import annotations

import threading
from typing import Callable


class Stop(threading.Event):
    """An Event set by the first signal; a later one hurries the stop (`hurried`, and each callback called)."""

    def __init__(self) -> None:
        super().__init__()
        self._guard = threading.Lock()
        self._hurry: list[Callable[[], None]] = []
        self.hurried = False

    def signalled(self) -> None:
        """A signal came: the first stops, a later one hurries the stop."""
        if not self.is_set():
            self.set()
            return
        with self._guard:
            self.hurried = True
            callbacks = list(self._hurry)
        for callback in callbacks:
            callback()

    def on_hurry(self, callback: Callable[[], None]) -> None:
        """Call `callback` when the stop is hurried (at once where it was already)."""
        with self._guard:
            self._hurry.append(callback)
            hurried = self.hurried
        if hurried:
            callback()


def when_hurried(stop: threading.Event, callback: Callable[[], None]) -> None:
    """`Stop.on_hurry` where `stop` is a signals' Stop; a plain Event (a caller in the same process, a test) is never
    hurried."""
    if isinstance(stop, Stop):
        stop.on_hurry(callback)
