"""Another account's memory: root reads every file whatever its mode, so the refusal is staged, at the calls a
reader's Python makes to reach a file (stat, list, open, access). SQLite opens its files itself: where a test needs
it, the staged refusal of the folder keeps any reader away from them before SQLite is reached."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest


def refuse_reading(monkeypatch: pytest.MonkeyPatch, folder: Path, names: tuple[str, ...] = ()) -> None:
    """This account may not read `folder` (another account's, 0700: not listed, nothing in it reached) or, given
    `names`, only those files in it."""
    folder = Path(os.path.abspath(folder))

    def refused(path, call: str) -> bool:
        if isinstance(path, int):  # a file descriptor, not a path
            return False
        p = Path(os.path.abspath(os.fsdecode(path)))
        if names:  # files of another account's in a folder this one may list: only opening them is refused
            return call == "open" and p.parent == folder and p.name in names
        return p == folder or folder in p.parents if call == "list" else folder in p.parents

    def guard(real, call: str):
        def guarded(path=".", *args, **kwargs):
            if refused(path, call):
                raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
            return real(path, *args, **kwargs)

        return guarded

    for call, name in (("stat", "stat"), ("open", "open"), ("open", "access"), ("list", "scandir"),
                       ("list", "listdir")):
        monkeypatch.setattr(os, name, guard(getattr(os, name), call))
