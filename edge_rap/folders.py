"""Output folders a user names (`--speak-to`, `--snapshots`): made, and proven writable, before a run starts.

A folder that exists but cannot be written (a read-only mount, another owner's folder) would otherwise be
found out at the first line spoken or the first arrival, minutes into a run that said nothing was wrong.
"""

from __future__ import annotations

import itertools
import os
import re
import tempfile
from pathlib import Path
from typing import Callable

from edge_rap.errors import EdgeRapError
from edge_rap.userfiles import kind_of


def writable_folder(path: Path, option: str) -> Path:
    """`path`, made if missing and checked by writing a file into it; one line naming `option` if not. One made
    here is its owner's alone (0700), as the memory folder is: it will hold pictures of the household and their
    names said aloud. One that exists keeps its mode; a missing one is not made in a drive's empty mount point."""
    blocking = file_in_the_way(path)
    if blocking == path:
        raise EdgeRapError(f"{option} {path}: is {kind_of(path)}, not a folder")
    if blocking is not None:
        raise EdgeRapError(f"{option} {path}: {blocking} is {kind_of(blocking)}, not a folder")
    refuse_unmounted(path, f"{option} ")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise EdgeRapError(f"{option} {path}: cannot write there ({e.strerror})") from None
    return path


def file_in_the_way(folder: Path) -> Path | None:
    """The file where `folder` or a folder above it should be (a photo's name taken for a folder's), if any: said as
    such, where the OS would say "Not a directory" or a folder missing."""
    above = next((p for p in (folder, *folder.parents) if reachable(p, Path.exists)), None)
    return above if above is not None and not above.is_dir() else None


def looping_link(path: Path) -> Path | None:
    """The link on `path` (it, or a folder above it) that leads back to itself, through others or not, or None: the
    OS says "Too many levels of symbolic links", and a path through it was said to be a link to nothing, or a
    traceback."""
    return next((p for p in (path, *path.parents) if _loops(p)), None)


def _loops(link: Path) -> bool:
    try:
        return link.is_symlink() and Path(os.path.realpath(link)).is_symlink()  # (realpath stops where a link loops)
    except OSError:  # (behind a folder this account may not search: `reachable` says so)
        return False


def reachable(path: Path, ask: Callable[[Path], bool]) -> bool:
    """`ask(path)` (Path.exists, Path.is_symlink), or one line where a folder on `path` may not be searched: those
    raise PermissionError there (not False), and a traceback was printed. (A name too long is the CLI's to say.)"""
    try:
        return ask(path)
    except PermissionError as e:
        raise EdgeRapError(f"{path}: cannot reach it ({e.strerror}: a folder on its path this account may not "
                           "search)") from None


#: Where drives are mounted by convention (a desktop's /media/USER/LABEL or /run/media/USER/LABEL, /mnt by hand):
#: a folder there that no drive is mounted on is one of the SD card's own.
MOUNT_ROOTS = (Path("/media"), Path("/mnt"), Path("/run/media"))


def unmounted(folder: Path) -> Path | None:
    """The root of MOUNT_ROOTS that `folder` (its links followed) is in where neither it nor any folder above it up
    to that root is a mount point: a drive's mount point, the drive not mounted; None elsewhere."""
    found = _unmounted_root(Path(os.path.realpath(folder)))
    return found[0] if found is not None else None


def unplugged(path: Path) -> str:
    """What a path named as there but not there says of its drive: " (no drive is mounted on <its folder>: a drive
    not mounted?)" where its folder is `unmounted`, else ""."""
    folder = Path(os.path.realpath(path)).parent  # (a link to the stick's file: the stick's folder)
    return f" (no drive is mounted on {folder}: a drive not mounted?)" if unmounted(folder) is not None else ""


def _unmounted_root(real: Path) -> tuple[Path, Path] | None:
    """`unmounted` of the resolved path `real`: its root as named and as resolved. A root that is itself a link
    (Fedora Atomic's /mnt -> var/mnt) is compared by where it leads, as `real` is."""
    for root in MOUNT_ROOTS:
        real_root = Path(os.path.realpath(root))
        if real_root == real or real_root in real.parents:
            on_path = [p for p in (real, *real.parents) if p == real_root or real_root in p.parents]
            return None if any(map(is_mount_point, on_path)) else (root, real_root)
    return None


def is_mount_point(folder: Path) -> bool:
    """Whether a drive is mounted on `folder`: os.path.ismount, or MOUNT_TABLE's word for a bind mount."""
    return os.path.ismount(folder) or Path(os.path.realpath(folder)) in _mounted()


#: The kernel's table of this process's mounts: a bind mount is listed there, though os.path.ismount misses one
#: of a folder on the same drive (same device, another inode: `mount --bind /home/pi/data /mnt/data`, fstab's bind).
MOUNT_TABLE = Path("/proc/self/mountinfo")


def _mounted() -> set[Path]:
    """The mount points MOUNT_TABLE lists (its octal escapes, \\040 for a space, undone); none where unread."""
    try:
        lines = MOUNT_TABLE.read_bytes().splitlines()
    except OSError:
        return set()
    points = (line.split(b" ")[4] for line in lines if line.count(b" ") >= 4)
    return {Path(os.fsdecode(re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]), p))) for p in points}


def refuse_unmounted(folder: Path, said: str = "") -> None:
    """One line (after `said`, an option's name) where `folder` is `unmounted` and either not there, to be made, or
    an empty folder right inside a root (/media/stick, /mnt/usb: a drive's mount point, by its place): a folder
    made or used there lies on the device's own card, hidden once the drive is mounted. A folder there that the
    user made (one deeper, or one that holds files) is used: a folder of the card on purpose."""
    there = reachable(folder, Path.exists)
    real = Path(os.path.realpath(folder))
    found = _unmounted_root(real)
    if found is None or there and not (real.parent == found[1] and _empty_folder(real)):
        return
    way_out = "name a folder made in it" if there else "make that folder first"
    raise EdgeRapError(f"{said}{os.path.abspath(folder)}: no drive is mounted there (a drive not mounted? {found[0]} "
                       f"is where drives are mounted); nothing was written (mount it, or {way_out} to write there "
                       "all the same)")


def _empty_folder(path: Path) -> bool:
    """Whether `path` is a folder that holds nothing; one that cannot be listed is not taken for empty."""
    try:
        return path.is_dir() and next(path.iterdir(), None) is None
    except OSError:
        return False


def missing_folders(folder: Path) -> list[Path]:
    """`folder` and the folders above it that are not there, deepest first: what making it creates, and all that a
    command that then fails may remove (an empty export folder was left on a full disk)."""
    missing = itertools.takewhile(lambda p: not p.exists() and not p.is_symlink(), (folder, *folder.parents))
    return [p for p in missing if p.name != ".."]  # ("new/../d": rmdir of "new/.." failed, and kept "new")


def remove_empty(folders: list[Path]) -> None:
    """Remove each of `folders` (deepest first) that is empty; one that holds anything stays, with those above it."""
    for made in folders:
        try:
            made.rmdir()
        except OSError:
            return
