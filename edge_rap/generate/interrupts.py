"""Ctrl-C while llama.cpp works: held until it returns, then raised, not lost.

llama.cpp and mtmd report through a log callback written in Python (vlm.py routes their lines to logging).
Python runs signal handlers between its own bytecodes, so a Ctrl-C pressed while the model loads or the
prompt is evaluated (hundreds of log lines; seconds with a real model's image encoder) raised its
KeyboardInterrupt inside that callback, where ctypes prints and drops it: the answer came anyway, exit 0.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Run the body with SIGINT only noted, then hand it to the handler it had (KeyboardInterrupt by default).
    Off the main thread, where Python never runs signal handlers, and under SIG_IGN or SIG_DFL, nothing changes."""
    if threading.current_thread() is not threading.main_thread() or not callable(signal.getsignal(signal.SIGINT)):
        yield
        return
    noted: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if noted:
            previous(signal.SIGINT, None)
