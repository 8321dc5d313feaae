"""Ctrl-C, SIGTERM and SIGHUP: each ends a command the same way, and none is lost while llama.cpp works.

A command's cleanup on Ctrl-C is its `except BaseException` and `finally` blocks (eval empties a new --memory
again, backup removes its partial file, restore undoes its swap, a write rolls back). SIGTERM (`kill`, `timeout`,
a shutdown) and SIGHUP (its terminal or ssh session closed) end a process past all of them by default:
`stops_as_ctrl_c` makes them raise `Stopped`, a KeyboardInterrupt, where Ctrl-C raises its own.

llama.cpp and mtmd report through a log callback written in Python (vlm.py routes their lines to logging).
Python runs signal handlers between its own bytecodes, so a Ctrl-C pressed while the model loads or the
prompt is evaluated (hundreds of log lines; seconds with a real model's image encoder) raised its
KeyboardInterrupt inside that callback, where ctypes prints and drops it: the answer came anyway, exit 0.
`interrupts_held` holds it (and a SIGTERM or SIGHUP raised so) until the body returns; `interrupt_waiting` tells
native work that can end early (llama.cpp's abort callback, and its and mtmd's progress callbacks as they load: vlm.py)
that one is held, so that the body returns soon.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

#: The signals that stop a command as Ctrl-C does, besides SIGINT itself.
STOPPING = (signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised as Ctrl-C's KeyboardInterrupt is, so that the same cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


#: The signals the holds open now have noted, oldest first (the main thread's: only it runs Python's signal handlers).
_noted: list[int] = []


class _Arrivals:
    """The outermost hold's wakeup pipe: Python's C-level handler writes each held signal's number to it as the
    signal arrives, while the main thread, inside native code (llama.cpp evaluating a prompt), runs no Python
    handler until that returns; another thread reads it (vlm.py's watcher), so that the native work can be cut."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pipe: tuple[int, int] | None = None
        self.seen = False  # a held signal read from the pipe, not yet noted by its Python handler

    def open(self) -> int:
        """The write end, for signal.set_wakeup_fd."""
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        with self.lock:
            self.pipe, self.seen = (read, write), False
        return write

    def close(self) -> None:
        with self.lock:
            if self.pipe is not None:
                for fd in self.pipe:
                    os.close(fd)
            self.pipe, self.seen = None, False

    def came(self) -> bool:
        """Whether a held signal has arrived (read now, or before)."""
        with self.lock:
            if not self.seen and self.pipe is not None:
                try:
                    numbers = os.read(self.pipe[0], 512)
                except BlockingIOError:
                    numbers = b""
                self.seen = any(n in (signal.SIGINT, *STOPPING) for n in numbers)
            return self.seen


_arrivals = _Arrivals()


def interrupt_waiting() -> bool:
    """Whether a Ctrl-C, SIGTERM or SIGHUP is held now, to be raised when its hold ends; or has arrived while the
    main thread is inside native code and has not run its handler yet."""
    return bool(_noted) or _arrivals.came()


def _raise_stopped(signum: int, frame) -> None:
    raise Stopped(signum)


@contextmanager
def stops_as_ctrl_c() -> Iterator[None]:
    """Run the body with SIGTERM and SIGHUP raising Stopped; the handlers they had come back after. One ignored
    when it started (`nohup`) stays so. Off the main thread, where Python runs no signal handler, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in STOPPING}
    for sig, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(sig, _raise_stopped)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _put_back(handlers: dict) -> None:
    """Each handler back, then the Ctrl-C one of them raised meanwhile: signal.signal first runs a pending signal's
    handler (one put back just before), and where that raises it swaps nothing; left so, SIGTERM was only noted for
    ever after (`kill` ended nothing, and every later prompt was cut)."""
    raised: KeyboardInterrupt | None = None
    for sig, handler in handlers.items():
        while True:
            try:
                signal.signal(sig, handler)
                break
            except KeyboardInterrupt as e:
                raised = raised or e
    if raised is not None:
        raise raised


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Run the body with SIGINT (and SIGTERM and SIGHUP, where a Python handler takes them) only noted, then hand
    the first that came to the handler it had (KeyboardInterrupt by default). Off the main thread, where Python
    never runs signal handlers, and under SIG_IGN or SIG_DFL, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {sig: handler for sig in (signal.SIGINT, *STOPPING) if callable(handler := signal.getsignal(sig))}
    mine = len(_noted)  # (an enclosing hold's come before; this one's own are handed to its handler, the noting one)
    outermost = _arrivals.pipe is None
    wakeup = None
    # the handlers swapped in before the pipe is, and back after it is put away: a Ctrl-C between two bytecodes there
    # is only noted, where its own handler's raise lost the wakeup fd the hold found, or left the hold's (closed) one
    try:
        for sig in held:
            signal.signal(sig, lambda signum, frame: _noted.append(signum))
        if outermost:
            wakeup = signal.set_wakeup_fd(_arrivals.open(), warn_on_full_buffer=False)
        yield
    finally:
        if outermost:
            if wakeup is not None:
                signal.set_wakeup_fd(wakeup)
            _arrivals.close()
        _put_back(held)
        noted = _noted[mine:]
        del _noted[mine:]
        if noted:
            held[noted[0]](noted[0], None)
