"""The command line's stdout, guarded: a write it cannot take (a full disk, an I/O error) is told apart from an
OSError of the command's own (its memory's disk, a model file), so the CLI can say it in one line."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, TextIO


class OutputError(OSError):
    """stdout cannot take the output. An OSError still, so code that already survives a failed report of its
    own (the daemon's last events) goes on as before."""


@contextmanager
def _guard() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        raise  # a reader that left (`| head`): the CLI stops quietly on it, as other tools do
    except OSError as e:
        raise OutputError(e.errno, e.strerror or str(e)) from e


class GuardedOutput:
    """`stream` whose failed writes and flushes raise OutputError; everything else is the stream's own."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        with _guard():
            return self._stream.write(text)

    def flush(self) -> None:
        with _guard():
            self._stream.flush()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
