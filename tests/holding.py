"""Another process with a memory open, as `serve` or `run` has it: what must leave such a memory alone is tested
with it."""

from __future__ import annotations

import subprocess
import sys
import tempfile
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
def held_open(memory: Path, *command: str) -> Iterator[subprocess.Popen]:
    """A process that has `memory` open until the block ends; `command` (`"edge-rap", "reindex"`): its command line
    as another process reads it in /proc, the script named as its first word (an installed command's is so), run by
    this Python, the memory its first argument."""
    with tempfile.TemporaryDirectory() as scripts:
        program = [sys.executable, "-c", _HOLDER]
        if command:
            program = [sys.executable, str(Path(scripts) / command[0])]
            Path(program[1]).write_text(_HOLDER)
        holder = subprocess.Popen([*program, str(memory), *command[1:]], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline() == "open\n"
            yield holder
        finally:
            holder.communicate("", timeout=30)
