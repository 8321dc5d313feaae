"""What `restore --replace` leaves beside the memory folder: the memory it moved aside, and, from just before its
swap until it has moved back what is not the memory (the model cache, the demo, the API's token), a note of those.
Kept apart from restore itself, which is heavy to import: every command that opens a memory finishes a restore a
power cut stopped between those renames."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from edge_rap.memory.files import beside, fsync_dir
from edge_rap.scratch import is_unheld, unheld

ASIDE = ".before-restore-"  # <memory>.before-restore-20261205T081500Z (-2 after another of the same second)
RESTORING = ".restoring-"  # .<memory>.restoring-<pid>-<random>: the archive being read, beside the memory
#: In the memory moved aside, from just before the swap until what is not the memory has been moved back: the names
#: to move back (one a line), so that a restore killed between those renames is finished by the next command.
KEPT_NOTE = ".restore-keeps"


def moved_aside(root: Path) -> list[Path]:
    """The memories `restore` moved aside beside the memory folder `root`, kept until the household deletes them
    (where a restore was killed just before its exchange, the restored memory; on a file system without the
    exchange, killed between its two renames, the memory itself)."""
    root = Path(os.path.realpath(root))
    return [p for p in beside(root, re.escape(f"{root.name}{ASIDE}") + r"[0-9TZ-]+") if p.is_dir()]


def restoring_folders(root: Path) -> list[Path]:
    """The folders `.<name>.restoring-<pid>-<random>` beside the memory folder `root` that restores are writing, or
    that restores killed outright left (each holds an archive's files only, never the memory's)."""
    root = Path(os.path.realpath(root))  # (a link to the memory's folder: they are beside its target)
    return beside(root, re.escape(f".{root.name}{RESTORING}") + r"\d+(-\w+)?")


def restorer(folder: Path) -> int:
    """The pid of the restore that made `folder`, one of `restoring_folders`."""
    return int(folder.name.rsplit(RESTORING, 1)[1].split("-")[0])


def finish_killed_restore(root: Path) -> list[str]:
    """Move back what a restore killed after its swap left in the memory it moved aside (the model cache, the demo,
    the API's token: `KEPT_NOTE` names them), and drop a note a restore killed before its swap left in the memory;
    the names moved back. Nothing is done while a restore of `root` runs (its note, written just before its swap, is
    its own), or where this account may not (another account's memory: its refusal is said where it is opened)."""
    root = Path(os.path.realpath(root))
    if not os.path.exists(root / KEPT_NOTE) and not any(os.path.exists(p / KEPT_NOTE) for p in moved_aside(root)):
        return []
    if not all(is_unheld(p, grace_s=0) for p in restoring_folders(root)):  # (each held by its restore from its start)
        return []
    moved = []
    with unheld(root, grace_s=0) as no_restore_runs:  # (and the folder it put in place, until it ends)
        if not no_restore_runs:
            return []
        with contextlib.suppress(OSError):
            (root / KEPT_NOTE).unlink(missing_ok=True)
            for aside in moved_aside(root):
                note = aside / KEPT_NOTE
                if note.exists():
                    for name in filter(None, note.read_text().splitlines()):
                        if (aside / name).exists() and not (root / name).exists():
                            os.rename(aside / name, root / name)
                            moved.append(name)
                    note.unlink()
            fsync_dir(root)
    return moved
