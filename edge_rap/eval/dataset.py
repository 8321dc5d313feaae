"""A dataset as `edge-rap eval` reads it: a folder per concept, its photos (the first remembered, the others asked
about), and what it leaves out said a line each (photos in folders inside a concept's, counted to a bound; folders
that cannot be listed; links to other concepts' folders; photos beside the concepts' folders)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Container

from edge_rap.errors import EdgeRapError
from edge_rap.folders import reachable
from edge_rap.memory.rapdb import RAP_DATABASE, read_rap_database
from edge_rap.memory.store import name_key, validate_name
from edge_rap.output import quoted
from edge_rap.perceive.images import is_photo_file, unread_photo
from edge_rap.userfiles import NOT_THERE, special_kind
from edge_rap.wording import counted


@dataclass(frozen=True)
class ConceptFolder:
    name: str
    references: list[Path]  # the photos remembered (the first in sorted order, or the first N)
    queries: list[Path]
    unread: list[str] = field(default_factory=list)  # photos not read here (JPEG XL, RAW), each with what it is


#: Folders that systems add beside a dataset's: a zip made on a Mac (`__MACOSX/`, its `._` sidecars), a Synology
#: share's thumbnails, a Windows drive's, an ext4 drive's `lost+found`. None is a concept.
_SYSTEM_FOLDERS = {"__MACOSX", "@eaDir", "System Volume Information", "$RECYCLE.BIN", "lost+found"}


def _hidden(name: str) -> bool:
    """An entry a listing leaves out: a hidden one (`.DS_Store`, the `._photo.jpg` sidecars macOS leaves on other
    disks, `.thumbnails/`), one of which sorted first would become a concept's reference; or one of _SYSTEM_FOLDERS."""
    return name.startswith(".") or name in _SYSTEM_FOLDERS


def _entries(folder: Path) -> list[Path]:
    """The folder's entries, the `_hidden` aside."""
    try:
        return sorted(p for p in folder.iterdir() if not _hidden(p.name))
    except OSError as e:
        raise EdgeRapError(f"{folder}: cannot list ({e.strerror})") from None


def _looked_at(path: Path) -> os.stat_result | None:
    """The entry's stat, its links followed, or None where `Path.is_dir` is False for want of one (a dangling link,
    a loop of links); one line where it cannot be looked at: in a folder this account may list but not search (mode
    r without x) Python raises PermissionError, and a traceback ended the evaluation."""
    try:
        return path.stat()
    except OSError as e:
        if e.errno in NOT_THERE:
            return None
        raise EdgeRapError(f"{path}: cannot look at it ({e.strerror})") from None


def _is_folder(path: Path) -> bool:
    return (status := _looked_at(path)) is not None and stat.S_ISDIR(status.st_mode)


@dataclass(frozen=True)
class _Listing:
    """A folder's entries, the `_hidden` aside, in name order, each looked at once: a dataset of 2000 concepts had
    each concept's folder listed 4 times and each photo in it looked at as often."""

    folders: list[Path]
    files: list[tuple[Path, os.stat_result | None]]  # the other entries, each with its stat (None: `_looked_at`)
    not_opened: list[str]  # the pipes, sockets and devices, or links to them, a line each

    def photos(self) -> list[Path]:
        """The files taken for photos. One that cannot be read (a dangling link, no permission) is kept: reading it
        fails and says so under skipped_images, where dropping it here would say nothing."""
        return [path for path, status in self.files if is_photo_file(path, status)]

    def unread(self) -> list[str]:
        """The photos not read here (JPEG XL, RAW), a line each with what it is."""
        return [f"{path}: {kind}, which is not read here (convert it to JPEG)" for path, _ in self.files
                if (kind := unread_photo(path))]


def _listing(folder: Path) -> _Listing:
    """The folder listed once. A pipe, socket or device is never opened (a pipe waits for a writer, for ever), nor
    taken for a photo (a pipe named `a.jpg`, sorted first, was a concept's reference, and the concept left out)."""
    folders, files, special = [], [], []
    for path in _entries(folder):
        status = _looked_at(path)
        if status is not None and stat.S_ISDIR(status.st_mode):
            folders.append(path)
        elif status is not None and (kind := special_kind(status.st_mode)):
            special.append(_not_opened_line(str(path), kind))
        else:
            files.append((path, status))
    return _Listing(folders, files, special)


def image_files(folder: Path) -> list[Path]:
    """The folder's photos (`_Listing.photos`)."""
    return _listing(folder).photos()


def not_opened(folder: Path) -> list[str]:
    """The pipes, sockets and devices among the folder's entries, or links to them, a line each (`_listing`)."""
    return _listing(folder).not_opened


def _not_opened_line(path: str, kind: str) -> str:
    return f"{path}: {kind}, not a photo (not opened)"


def _special(path: Path | os.DirEntry) -> str | None:
    """What an entry is where it leads, if a pipe, a socket or a device; None for any other, and for one that
    cannot be looked at (a dangling link, no permission: reading it says why)."""
    try:
        return special_kind(path.stat().st_mode)
    except OSError:
        return None


def _concept_name(folder: Path) -> str:
    """The name the memory stores for this folder (so that answers compare with it), or the folder's own name
    when it is not a valid concept name: remembering it then fails and says why."""
    try:
        return validate_name(folder.name)
    except EdgeRapError:
        return folder.name


def read_dataset(folder: Path, references: int = 1) -> list[ConceptFolder]:
    """One subfolder per concept: its first `references` images (sorted) are remembered, the others are queries.
    A subfolder without one is kept, with none, so that leaving it out is said (`remember_references`). A folder
    given one level too high is refused, naming the folders to give: one whose subfolders hold no photo, or where
    as many of them or more hold folders of photos as hold photos (`../data` beside a folder of group photos: that
    one was evaluated as the only concept, the datasets beside it said as concepts without a photo). A RAP database
    (import-rap's) is refused too, naming the command that reads it."""
    if not reachable(folder, Path.is_dir):  # (one behind a folder this account may not search: one line)
        raise EdgeRapError(f"{folder}: not a folder")
    entries = _entries(folder)  # (first: one that cannot be listed is said so, not as its database.json unreachable)
    if _is_rap_database(folder):  # evaluated, its photos' folder was one concept named `database`
        raise EdgeRapError(f"{folder}: a RAP database, not a folder per concept (`edge-rap import-rap "
                           f"{folder / RAP_DATABASE}` remembers it)")
    subs = [sub for sub in entries if _is_folder(sub)]
    read = [_concept_folder(sub, references) for sub in subs]
    reals = [os.path.realpath(sub) for sub in subs]
    known = _Known({real: c.name for real, (c, _) in zip(reals, read) if c.references},
                   {real: c.name for real, (c, inner) in zip(reals, read) if inner is not None})
    concepts = [replace(c, unread=c.unread + _inner_folders(sub, real, inner, known)) if inner is not None else c
                for sub, real, (c, inner) in zip(subs, reals, read)]
    with_photos = sum(1 for c in concepts if c.references)
    holders = [sub for sub, c in zip(subs, concepts) if not c.references and _holds_concepts(sub)]
    if not with_photos:
        raise EdgeRapError(f"{folder}: no concept subfolders with images{_one_level_down(holders)}")
    if len(holders) >= with_photos:  # (a tie too: `../data` beside one dataset evaluated the group photos alone)
        raise EdgeRapError(f"{folder}: one level too high? {len(holders)} of its {counted(len(subs), 'folder')} "
                           f"{'holds' if len(holders) == 1 else 'hold'} folders of photos, not photos"
                           f"{_one_level_down(holders)}")
    return concepts


def loose_photos(folder: Path) -> list[str]:
    """The photos beside the concepts' folders, in none: a concept's photo copied to where its folder was meant to
    be (`cp cat.jpg dataset/cat`) left that concept out unsaid. Said in skipped_images; other files (a README,
    RAP's database.json, CREDITS.txt) are a dataset's own; a pipe, socket or device there too (`not_opened`)."""
    listing = _listing(folder)
    return [f"{p}: a photo beside the concept folders, in none of them (left out)" for p in listing.photos()] + \
        listing.not_opened


def _is_rap_database(folder: Path) -> bool:
    """Whether the folder is a RAP database: its database.json is RAP's and names a photo in a folder not named for
    its concept, in any case or spacing (RAP's `database/`, read as one concept, `database`, even with a single
    concept in it; not <Grace Hopper>'s grace_hopper/). The rule tools/companion.py keeps too. A database.json of
    anything else, or one naming each concept's photos in that concept's folder, beside them, leaves a folder per
    concept evaluated: refused by the file's name alone, it was pointed to import-rap, which said it was no RAP
    database."""
    if not reachable(folder / RAP_DATABASE, Path.is_file):  # (a folder listed, not searched: one line)
        return False
    try:
        entries = read_rap_database(folder / RAP_DATABASE)
    except EdgeRapError:
        return False
    return any(name_key(image.parent.name) != name_key(entry.name) for entry in entries for image in entry.images)


def _concept_folder(sub: Path, references: int) -> tuple[ConceptFolder, list[Path] | None]:
    """A concept's folder: its photos, and those not read here, and the folders in it (looked through once every
    concept's photos are known: `_inner_folders`), None where it cannot be listed (another account's, on a shared
    drive): it has no photo and says why, for one such folder must not end the whole evaluation."""
    try:
        listing = _listing(sub)
        files = listing.photos()
    except EdgeRapError as e:
        return ConceptFolder(_concept_name(sub), [], [], [str(e)]), None
    unread = listing.unread() + listing.not_opened
    return ConceptFolder(_concept_name(sub), files[:references], files[references:], unread), listing.folders


#: The entries the count of the folders inside a concept's folder looks at, at most, all of them together: a link
#: to a large tree of something else (`lib -> /usr/lib`, 73 000 entries) was walked whole, 19 s before the
#: evaluation began, and each of several links had as many.
WALK_LIMIT = 10_000


@dataclass
class _Known:
    """What the count of the folders inside concepts' folders knows of the dataset, by where folders lead: the
    concepts whose photos are read (-> their names: a link to one with none, or that cannot be listed, was said as
    one whose photos are read as that concept's), those whose inner folders are counted (-> their names), and each
    folder counted whole so far (-> the folder or link it was counted as)."""

    read: dict[str, str]
    listed: dict[str, str]
    counted: dict[str, Path] = field(default_factory=dict)


def _inner_folders(folder: Path, here: str, inner: list[Path], known: _Known) -> list[str]:
    """What the folders `inner` in `folder` (which leads `here`) leave out, a line each: those that hold photos, at
    any depth (an `edited/` a phone's export made, `2023/summer/`), with how many (their photos were left out
    unsaid, those two or more folders down even once the first were said; counted, not read), and those that
    cannot be listed (mode 000 or 111: passed over unsaid, photos or none). A link to the folder of a concept whose
    photos are `known` read is said as one: its photos are read, as that concept's (they were said as this one's,
    not read); so is a link to a folder inside the folder of a `known` listed one, whose count says its photos:
    they were counted under both; and a link to a folder counted already, or to one inside it, under this concept
    or another (`a -> b -> ../rocket/.cache`, a hidden folder rocket's count passes over: counted under each link,
    and under each concept linking to a folder outside the dataset; one whose count was cut short is no count of
    it: a link into it was said as counted, its photos nowhere). None is a link to `folder` itself, to a folder
    above it (`loop -> .`: its photos are read, and were said as not read; `up -> ..`, `root -> /`: the other
    concepts' photos were counted as not read, or the whole disk walked) or to a folder inside it (`alias ->
    edited`: counted twice). The folders are looked through to WALK_LIMIT entries in all: the one where they end
    says so, and one line counts those after it, not walked (they were passed over unsaid)."""
    lines, left, passed = [], WALK_LIMIT, 0
    for sub in inner:
        real = os.path.realpath(sub)
        link = real != os.path.join(here, sub.name)  # (known without a second look at it)
        if Path(here).is_relative_to(real):
            continue
        if (other := known.read.get(real)) is not None:
            lines.append(f"{sub}: a link to the folder of another concept, {quoted(other)} (its photos are read "
                         "as that concept's, not as this one's)")
            continue
        if link and (holder := _holder(Path(real), known.listed)) is not None:
            if holder != here:
                lines.append(f"{sub}: a link to a folder inside the folder of another concept, "
                             f"{quoted(known.listed[holder])} (its photos are counted as that concept's, not as this "
                             "one's)")
            continue
        if link and (first := _counted_as(Path(real), known.counted)) is not None:
            lines.append(f"{sub}: a link to a folder counted already, as {first} (its photos are counted once)")
            continue
        if not left:
            passed += 1
            continue
        walk = _photos_in(sub, left)
        left -= walk.seen
        if not walk.cut:  # (one cut short is no count of what a later link leads to: walked to that one's bound)
            known.counted[real] = sub
        if walk.photos or walk.cut:
            lines.append(_counted_line(sub, real if link else None, walk))
        lines += _not_opened_in(sub, walk.special)
        lines += [f"{path}: a folder inside a concept's folder that cannot be listed ({reason}): any photos in it "
                  "not read" for path, reason in walk.unlisted]
    if passed:
        lines.append(f"{folder}: {counted(passed, 'more folder')} in it not looked through ({_bound()})")
    return lines


def _bound() -> str:
    return f"the folders in a concept's folder are counted to {WALK_LIMIT} entries in all"


#: The pipes, sockets and devices a folder inside a concept's names, at most, the others counted: a link to /proc
#: named each process's fd/ (its terminal, its pipes), some 200 lines in skipped_images, ahead of any other.
NAMED_NOT_OPENED = 3


def _not_opened_in(sub: Path, special: list[tuple[str, str]]) -> list[str]:
    """The pipes, sockets and devices the count of the folder `sub` found, a line each for the first
    NAMED_NOT_OPENED, and one that counts the others."""
    found = sorted(special)
    lines = [_not_opened_line(path, kind) for path, kind in found[:NAMED_NOT_OPENED]]
    if (more := len(found) - NAMED_NOT_OPENED) > 0:
        lines.append(f"{sub}: {counted(more, 'more pipe, socket or device', 'more pipes, sockets or devices')} in "
                     "it, not photos (not opened)")
    return lines


def _counted_line(sub: Path, leads: str | None, walk: _Walk) -> str:
    """The line of a folder with photos, or of one whose count was cut short (with where it `leads`, if a link: a
    mistaken link is the likely reason for a tree that large)."""
    limit = f"looked through no further: {_bound()}"
    where = f"{sub} (a link to {leads})" if walk.cut and leads else str(sub)
    if not walk.photos:
        return f"{where}: a folder inside a concept's folder, no photo among the entries looked at ({limit})"
    more = f" or more ({limit})" if walk.cut else ""
    return (f"{where}: a folder of {counted(walk.photos, 'photo')}{more} inside a concept's folder, not read (move "
            "them up into it)")


def _holder(path: Path, folders: Container[str]) -> str | None:
    """Which of `folders` (where folders lead) holds the folder `path` (where a link leads), the nearest, inside it
    and through no `_hidden` folder (their count looks there, as it does not in `.cache/`); None where none does.
    Its folders above looked up, not every concept's folder compared: a dataset of 2000 concepts, each with a link
    into another's, took 50 s, not 2."""
    for folder in path.parents:
        if str(folder) in folders:
            return None if any(_hidden(part) for part in path.relative_to(folder).parts) else str(folder)
    return None


def _counted_as(path: Path, counted: dict[str, Path]) -> Path | None:
    """The folder or link whose count took in the folder `path` already (the same folder, or one holding it: `a ->
    /data`, then `b -> /data/2023`), if any."""
    holder = str(path) if str(path) in counted else _holder(path, counted)
    return counted[holder] if holder is not None else None


@dataclass
class _Walk:
    """What `_photos_in` found in a folder."""

    photos: int = 0
    unlisted: list[tuple[str, str]] = field(default_factory=list)  # each folder that could not be listed, and why
    special: list[tuple[str, str]] = field(default_factory=list)  # each pipe, socket or device, and which
    seen: int = 0  # the entries looked at
    cut: bool = False  # as many entries looked at as it was given, the others not


def _photos_in(folder: Path, limit: int) -> _Walk:
    """The photos in `folder` and every folder inside it, the first `limit` entries at most (the `_hidden`
    aside; a link to a folder not followed: one back up would loop; an entry that cannot be looked at is none; a
    pipe, socket or device never opened), and the folders that could not be listed. Walked one folder after
    another, not by os.walk: Python 3.11's recursed a call a folder, and a tree a thousand deep was a
    RecursionError's traceback."""
    walk, left = _Walk(), [str(folder)]
    while left and not walk.cut:
        path = left.pop()
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    if _hidden(entry.name):
                        continue
                    if walk.seen == limit:
                        walk.cut = True
                        break
                    walk.seen += 1
                    if _answered(entry.is_dir):  # (an entry's kind, as the listing gave it: no stat but a link's)
                        if not entry.is_symlink():
                            left.append(entry.path)
                    elif not _answered(entry.is_file) and (kind := _special(entry)):
                        walk.special.append((entry.path, kind))
                    else:
                        walk.photos += _is_photo(Path(entry.path))
        except OSError as e:
            walk.unlisted.append((path, e.strerror or type(e).__name__))
    return walk


def _answered(ask: Callable[[], bool]) -> bool:
    """`ask()` (an os.DirEntry's is_dir, is_file), False where the entry cannot be looked at, as os.walk takes it."""
    try:
        return ask()
    except OSError:
        return False


def _is_photo(path: Path) -> bool:
    try:
        return is_photo_file(path)
    except OSError:  # (one without a photo's suffix, in a folder listed but not searched)
        return False


def _holds_concepts(folder: Path) -> bool:
    """Whether a folder holds concepts' folders (two with a photo: one is a concept's photos kept in a folder of
    their own, `dog/images/`, which is no dataset to give); False where any cannot be listed."""
    try:
        return sum(1 for d in _listing(folder).folders if image_files(d)) >= 2
    except EdgeRapError:
        return False


def _one_level_down(holders: list[Path]) -> str:
    """Where a dataset given one folder too high (an unzipped archive's own folder; `train/` and `test/`) may be:
    its subfolders that hold concept folders (`holders`), named for the error."""
    if not holders:
        return ""
    if len(holders) == 1:
        return f" ({quoted(holders[0].name)} holds a folder per concept: give it as --dataset)"
    names = ", ".join(quoted(h.name) for h in holders[:-1]) + f" and {quoted(holders[-1].name)}"
    return f" ({names} hold a folder per concept each: give one as --dataset)"
