"""Another process with a memory open, as `serve` or `run` has it: what must leave such a memory alone is tested
with it."""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_HOLDER = """
import sys
from pathlib import Path
from edge_rap.memory.store import Store
store = Store(Path(sys.argv[1]), readonly=True)
store.concepts()
print("open", flush=True)
sys.stdin.read()
"""


@contextmanager
def held_open(memory: Path) -> Iterator[subprocess.Popen]:
    """A process that has `memory` open until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(memory)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "open\n"
        yield holder
    finally:
        holder.communicate("", timeout=30)
