"""`edge-rap restore`: a backup (memory/backup.py) put back as the memory, verified whole before the memory is
touched. Nothing is extracted blindly: each member is one a backup writes (no absolute path, `..`, link or device),
written by this code into a new sibling folder and hashed as it goes; only when the manifest and every member agree
is that folder renamed into place (atomic on one file system), the memory there before moved aside whole."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import logging
import os
import re
import shutil
import sqlite3
import stat
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Callable, Iterable, Iterator

from edge_rap.daemon.events import EVENTS_DB, EventLog, EventLogError
from edge_rap.errors import EdgeRapError
from edge_rap.folders import file_in_the_way, is_mount_point, looping_link, reachable, refuse_unmounted, unplugged
from edge_rap.generate.interrupts import interrupts_held
from edge_rap.memory.access import account_name, refuse_unreadable
from edge_rap.memory.archive import MANIFEST, MAX_MANIFEST, NOT_RESTORED, SECRETS, Counts, Manifest, Member, \
    is_member_name, referred, stranger
from edge_rap.memory.aside import ASIDE, KEPT_NOTE, RESTORING, finish_killed_restore, restorer, restoring_folders
from edge_rap.memory.files import DATABASE, MEMORY_DATA, SQLITE_ROOM, foreign_entries, fsync_dir, not_a_folder, \
    stamped
from edge_rap.memory.holders import held_by, holder
from edge_rap.memory.store import SCHEMA_VERSION, disk_error, is_disk_full, is_escape, refuse_newer
from edge_rap.output import quoted
from edge_rap.scratch import hold, is_unheld, remove_unheld
from edge_rap.userfiles import kind_of, special_kind

log = logging.getLogger(__name__)

Progress = Callable[[Iterable], Iterable]
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2  # (linux/fcntl.h, linux/fs.h)


@dataclass(frozen=True)
class RestoreReport:
    memory: Path
    aside: Path | None  # where the memory there before was moved; None where there was none
    counts: Counts
    created: float  # when the backup was made (Unix seconds)
    #: A process that opened the memory between the last check and the swap, and goes on with the one moved aside
    #: (its pid; -1 where not said); None where none did.
    opened_meanwhile: int | None = None
    #: Whether the backup brought the companion API's token (`backup --with-token`), which replaced the device's.
    token: bool = False

    def to_json(self) -> dict:
        return {"memory": str(self.memory), "aside": str(self.aside) if self.aside else None, **self.counts.to_json(),
                "created": self.created, "token": self.token}


class _Refused(EdgeRapError):
    """The archive is not one to restore: said with its path, and that nothing was changed."""

    def __init__(self, archive: Path, why: str):
        super().__init__(f"{archive}: {why}; nothing was changed")


def restore(archive: Path, root: Path, replace: bool = False,
            progress: Progress = lambda items: items) -> RestoreReport:
    """Restore the backup `archive` as the memory at `root`: into an absent folder or one that holds no memory
    (the model cache, the demo and the API's token there stay, the token unless the backup brings its own); into
    one that holds a memory only with `replace`, which moves that memory aside whole first. Refused while another
    process has the memory open."""
    if not reachable(archive, Path.is_file):  # (a folder or a pipe was said to be "no such backup file")
        kind = "a folder" if archive.is_dir() else special_kind(archive.stat().st_mode) if archive.exists() else None
        if kind:
            raise EdgeRapError(f"{archive}: is {kind}, not a backup file")
        if (loop := looping_link(archive)) is not None:
            raise EdgeRapError(f"{loop}: a link that leads back to itself, not a backup file")
        raise EdgeRapError(f"{archive}: no such backup file{unplugged(archive)}")
    if (why := not_a_folder(root)) is not None:  # a file, a pipe; a link to a drive not mounted (not made on the SD)
        raise EdgeRapError(why)
    refuse_unmounted(root)  # (a new memory folder, made in a drive's empty mount point)
    began = time.time()
    root = Path(os.path.realpath(root))  # a link to the memory's folder elsewhere stays one: its target is restored
    _refuse_long_name(root)
    _refuse_target(root, replace)
    _refuse_unwritable(root)
    finish_killed_restore(root)
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        for killed in killed_restores(root):
            remove_unheld(killed, restorer(killed))
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}{RESTORING}{os.getpid()}-", dir=root.parent))
    except OSError as e:  # (a file where a folder above it should be was "(File exists)")
        if (blocking := file_in_the_way(root.parent)) is not None:
            raise EdgeRapError(f"{blocking}: is {kind_of(blocking)}, not a folder; nothing was changed") from None
        raise EdgeRapError(f"{root.parent}: cannot restore the memory there ({e.strerror}); nothing was changed") \
            from None
    held = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
    hold(held)  # (a restore killed outright leaves it: the next one removes it)
    noted = False  # (the note in the memory is this restore's once it writes it; before, another restore's may be)
    try:
        _refuse_restore_under_way(root, staging)
        _refuse_archive_more_than_free(archive, staging)
        manifest = _extract(archive, staging, progress)
        for name in NOT_RESTORED:  # (the device's own stays in place)
            (staging / name).unlink(missing_ok=True)
        if manifest.memory and Path(manifest.memory) != root:
            _disown_snapshots(staging / EVENTS_DB, manifest.memory, archive)
        for folder in [*(staging / "images").glob("*"), staging / "images", staging / "index", staging]:
            if folder.is_dir():
                fsync_dir(folder)
        _refuse_target(root, replace)  # (again: a memory put there meanwhile, by a restore whose rename into an absent
        # folder came as this one began, was moved aside by one not told --replace)
        noted = True
        kept = _note_kept(root, staging)
        _refuse_held(root)  # (again, the last thing before the swap: one may have started meanwhile)
        aside = _swap(staging, root, kept)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if noted:  # (a restore refused as another's is under way deleted that one's note, written just before its
            # swap, which then failed: "cannot put the restored memory in its place")
            with contextlib.suppress(OSError):  # (the note, with the memory, which is in its place again)
                (root / KEPT_NOTE).unlink(missing_ok=True)
        raise
    finally:
        os.close(held)
    _unwatched(root, began)
    late = next((pid for pid in map(holder, (aside / DATABASE, aside / EVENTS_DB)) if pid is not None), None) \
        if aside else None
    brought_token = any(name in manifest.files for name in SECRETS)
    return RestoreReport(root, aside, manifest.counts, manifest.created, late, token=brought_token)


def killed_restores(root: Path) -> list[Path]:
    """The folders `restoring_folders` that restores killed outright left, none a running restore writes (one whose
    restore runs no more is one at once)."""
    return [p for p in restoring_folders(root) if is_unheld(p, maker=restorer(p))]


def _refuse_target(root: Path, replace: bool) -> None:
    refuse_unreadable(root, ())
    if not root.exists():
        return
    if root.stat().st_uid != os.geteuid():  # (sudo edge-rap restore, for the service's memory)
        owner = account_name(root.stat().st_uid)
        raise EdgeRapError(f"{root}: the memory folder is {owner}'s, not this account's ({account_name(os.geteuid())})"
                           f": restored by this one, its files would be this one's, which {owner}'s `run` or `serve` "
                           f"could not write; run it as {owner} (sudo -u {owner} edge-rap restore ...); nothing was "
                           "changed")
    if is_mount_point(root):  # (a bind mount too: renaming it was "Device or resource busy")
        raise EdgeRapError(f"{root}: a mount point, which cannot be renamed: keep the memory in a folder inside the "
                           "drive (--memory) to restore into it; nothing was changed")
    foreign = foreign_entries(root)
    if foreign:
        raise EdgeRapError(f"{root}: not an edge-rap memory (it holds {', '.join(foreign[:3])}"
                           f"{', ...' if len(foreign) > 3 else ''}); restore into a memory, or an empty or new folder")
    if not replace and any(MEMORY_DATA.fullmatch(p.name) for p in root.iterdir()):
        raise EdgeRapError(f"{root}: holds a memory; nothing was changed (--replace moves it aside, to "
                           f"{root.name}{ASIDE}<time> beside it, and restores in its place)")
    _refuse_held(root)


def _refuse_long_name(root: Path) -> None:
    """A memory folder whose name leaves no room for the names restore gives beside it (the folder it reads the
    archive into, the memory moved aside where there is a folder to move): said before anything is read; the
    archive was read whole before "File name too long" came of the memory moved aside."""
    name = len(os.fsencode(root.name))
    extra = len(f"{ASIDE}20261205T081500Z-2") if root.exists() else \
        len(f".{RESTORING}{os.getpid()}-12345678")  # (mkdtemp's 8 random letters)
    limit = _name_max(root.parent)
    if name + extra > limit:
        raise EdgeRapError(f"{root}: its name is {name} bytes, and restore names folders beside it {extra} bytes "
                           f"longer, over the {limit} this file system takes: restore into a folder of a name of at "
                           f"most {limit - extra} bytes (or rename this one); nothing was changed")


def _name_max(folder: Path) -> int:
    """The longest name the file system of `folder` (or of the nearest folder above it there is) takes, in bytes."""
    for there in (folder, *folder.parents):
        with contextlib.suppress(OSError):
            return os.pathconf(there, "PC_NAME_MAX")
    return 255


def _refuse_held(root: Path) -> None:
    for name in (DATABASE, EVENTS_DB):
        pid = holder(root / name)
        if pid is not None:
            shown = f"pid {pid} ({held_by(pid)})" if pid > 0 else "another process"
            raise EdgeRapError(f"{root}: in use by {shown}: stop it or let it end first; nothing was changed")


def _refuse_unwritable(root: Path) -> None:
    """A memory folder this restore cannot write (`chmod a-w`, a read-only mount) is said before the archive is read,
    as the write just before the swap would say it: reading a large backup took minutes before that refusal. An
    unnamed file (O_TMPFILE where the file system has it) leaves nothing in the folder."""
    if not root.exists():
        return
    try:
        tempfile.TemporaryFile(dir=root).close()
    except OSError as e:
        raise disk_error(e, root) from None


def _refuse_restore_under_way(root: Path, staging: Path) -> None:
    """Another restore of `root` still reading its archive (its folder held, `staging` already this one's, so that of
    two starting at once at least one sees the other): two at once both succeeded, the first one's memory moved aside
    by the second."""
    for other in restoring_folders(root):
        if other != staging and not is_unheld(other, grace_s=0):
            raise EdgeRapError(f"{root}: a restore is under way (pid {restorer(other)}): wait for it to end; nothing "
                               "was changed")


def _unwatched(root: Path, began: float) -> None:
    """The restored event log's visits closed: the daemons that watched it (the backup made while `run` ran) watch
    it no more; one that began since the restore `began` watches the restored memory, and is left alone. Where they
    cannot be closed, it is said: the memory is restored all the same (a visit left open loses nothing)."""
    if not (root / EVENTS_DB).exists():
        return
    events = None
    try:
        events = EventLog(root)
        events.end_watches(began)
    except EventLogError as e:
        log.warning("%s; \"where is X?\" may say a concept is on a camera now until it is seen again", e)
    finally:
        if events is not None:
            events.close()


def _disown_snapshots(events: Path, source: str, archive: Path) -> None:
    """The snapshots a restored log names are files of the memory the backup was made of: its daemon wrote them, and
    the backup holds none. Restored into another folder of the same machine, the copy's `forget` and retention
    deleted them under the original, whose events then showed none. A copy elsewhere keeps its events without
    them; restored in the same place (`--replace`), they are its own again."""
    if not events.exists():
        return
    try:
        with contextlib.closing(sqlite3.connect(events)) as db, db:
            dropped = db.execute("UPDATE events SET snapshot = NULL WHERE snapshot IS NOT NULL").rowcount
    except sqlite3.Error as e:
        raise _unreadable(archive, events, e) from None
    if dropped:  # the folder quoted: a forged manifest's terminal escapes and line breaks reached the terminal
        log.warning("%s: the restored events show no snapshots: their files are those of the memory it was made of, "
                    "%s (its daemon wrote them), and the backup holds none", archive, quoted(source))


def _extract(archive: Path, staging: Path, progress: Progress) -> Manifest:
    """Write every member into `staging`, hashed, and check them against the manifest; the manifest."""
    found: dict[str, Member] = {}
    manifest: bytes | None = None
    made: set[Path] = set()  # the folders made for the members
    try:
        with tarfile.open(archive, "r|*", tarinfo=_Header) as tar:
            for info in progress(_read(tar)):
                name = info.name
                if not is_member_name(name):
                    raise _Refused(archive, f"holds {quoted(name)}, which no edge-rap backup holds: not one, or a "
                                            "forged one")
                if not info.isreg():
                    raise _Refused(archive, f"its member {quoted(name)} is a link, folder or device, not a file")
                if name in found or (name == MANIFEST and manifest is not None):
                    raise _Refused(archive, f"holds {quoted(name)} twice")
                source = tar.extractfile(info)
                if name == MANIFEST:
                    if info.size > MAX_MANIFEST:
                        raise _Refused(archive, f"its {MANIFEST} is {info.size} bytes: not a backup's")
                    manifest = source.read()
                else:
                    _refuse_more_than_free(f"the archive's {name}", info.size, staging)
                    if (folder := (staging / name).parent) not in made:  # (once a folder, not once a photo)
                        with _writing(staging):
                            folder.mkdir(parents=True, exist_ok=True)
                        made.add(folder)
                    found[name] = _write_member(source, staging / name, staging)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        if isinstance(e, PermissionError) and e.filename == str(archive):  # (root's backup, 0600, restored by `sudo
            # -u edge-rap` was said to be "not a backup archive, or a damaged or cut-short one")
            raise _Refused(archive, f"cannot be read by this account ({e.strerror}): not the archive's fault") \
                from None
        raise _Refused(archive, f"not a backup archive, or a damaged or cut-short one ({e})") from None
    if manifest is None:
        raise _Refused(archive, f"has no {MANIFEST}: not an edge-rap backup, or one cut short")
    parsed = Manifest.parse(manifest, archive)
    _check(archive, parsed, found, staging)
    return parsed


#: The most an extended header (pax, a GNU long name) may hold: a backup's are a few hundred bytes.
MAX_EXTENDED = 64 * 1024
_EXTENDED = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
             tarfile.GNUTYPE_LONGLINK)


class _Unread(tarfile.ReadError):
    """A header refused before tarfile reads it."""


class _Header(tarfile.TarInfo):
    """A member's header as tarfile reads it, but without what tarfile reads whole into memory however large it is
    declared: an extended header (a 4 MB archive declaring a 1 GB long name took 2 GB) and a sparse member's map."""

    def _proc_member(self, tar):
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise _Unread("a sparse member, which no backup holds")
        if self.type in _EXTENDED and self.size > MAX_EXTENDED:
            raise _Unread(f"an extended header of {self.size} bytes, which no backup holds")
        return super()._proc_member(tar)

    def _proc_gnusparse_10(self, next, pax_headers, tar):
        raise _Unread("a sparse member, which no backup holds")


def _read(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The archive's members, one at a time: tarfile keeps every member it has read (an archive of a million files
    would fill the device's memory), so those done with are let go."""
    while (info := tar.next()) is not None:
        yield info
        tar.members.clear()


def _check(archive: Path, manifest: Manifest, found: dict[str, Member], staging: Path) -> None:
    """The members are exactly those the manifest lists, each with its bytes; the memory's schema one this edge_rap
    knows."""
    if manifest.schema > SCHEMA_VERSION:
        raise _Refused(archive, f"made by a newer edge_rap (memory schema {manifest.schema}; this one knows "
                                f"{SCHEMA_VERSION}): upgrade edge_rap to restore it")
    extra = sorted(set(found) - set(manifest.files))
    if extra:
        raise _Refused(archive, f"holds {quoted(extra[0])}, which its manifest does not list")
    lacking = sorted(set(manifest.files) - set(found))
    if lacking:
        raise _Refused(archive, f"lacks {quoted(lacking[0])}, which its manifest lists (cut short?)")
    damaged = sorted(name for name, member in manifest.files.items() if found[name] != member)
    if damaged:
        raise _Refused(archive, f"{damaged[0]} is damaged: its bytes are not those its manifest lists")
    if DATABASE not in found:
        raise _Refused(archive, f"holds no {DATABASE}")
    for name in (DATABASE, EVENTS_DB):
        if name in found:
            _check_database(archive, staging / name)


def _check_database(archive: Path, path: Path) -> None:
    """A database SQLite can read, the memory's of a schema this edge_rap knows, with no trigger or view: edge_rap
    makes none, and a forged backup's would act at every later write (a trigger deleting what is remembered)."""
    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            made = db.execute("SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'view')").fetchone()
            if made is not None:
                raise _Refused(archive, f"its {path.name} holds a {made[0]} ({quoted(made[1])}), which edge_rap "
                                        "never makes: a forged backup")
            if path.name == DATABASE:
                refuse_newer(db, archive)
                _refuse_control_characters(archive, db)
                if strange := stranger(chain(*referred(db))):
                    raise _Refused(archive, f"its {DATABASE} refers to {quoted(strange)}, which is not a file of the "
                                            "memory's own: a forged backup")
    except sqlite3.Error as e:
        raise _unreadable(archive, path, e) from None


def _unreadable(archive: Path, path: Path, error: sqlite3.Error) -> EdgeRapError:
    """A restored database SQLite could not open or write: the archive's fault, unless the disk is full (it fitted,
    but not SQLite's -shm and -wal beside it: "disk I/O error", said as a damaged archive)."""
    if is_disk_full(error, path):
        return _not_written(path.parent, "No space left on device")
    return _Refused(archive, f"its {path.name} cannot be read ({error})")


def _refuse_control_characters(archive: Path, db: sqlite3.Connection) -> None:
    """A concept whose name, category or description holds a control character (a terminal escape, a line break),
    which edge_rap never stores: a forged backup's would reach the terminal as `concepts` printed it, and the log.
    A joiner is not one, even a stray one: descriptions stored in December 2026 before clean_text's second pass kept
    a joiner a dropped control character left at their end ("smile" + joiner + zero-width space), and their
    backups are genuine; nor is a character this Python's Unicode does not know (a newer Python's emoji)."""
    for texts in db.execute("SELECT name, category, description FROM concepts"):
        if any(is_escape(c) for text in texts for c in str(text)):
            raise _Refused(archive, f"its {DATABASE} holds a concept named {quoted(texts[0])} with a control character "
                                    "in its name or text, which edge_rap never stores: a forged backup")


def _refuse_archive_more_than_free(archive: Path, staging: Path) -> None:
    """What cannot fit said before the archive is read (a large one took minutes to fill the disk). Its files are
    weighed unless even the most a plain tar of its size can hold fits (a member per 512 bytes, each in whole blocks
    with a folder of its own): weighed only where its own size left 64 KiB to spare, 300 tiny photos, 4 KiB each on
    the disk and 1 KiB in the archive, were read before the disk filled. The manifest, at its end, tells it all in
    one read; the headers, read one by one, took most of a large archive off an SD card."""
    free = _writing_statvfs(staging)
    block, size = free.f_frsize or 4096, archive.stat().st_size
    if -(-size // 512) * 2 * block + SQLITE_ROOM > free.f_bavail * free.f_frsize:
        _refuse_more_than_free(*_needed(archive, block), staging)


def _needed(archive: Path, block: int) -> tuple[str, int]:
    """What restoring `archive` takes on the disk, and what it is said as: a plain tar's files, each in whole blocks
    of the file system, their folders, and the room SQLite needs beside a database it opens (the archive's own size,
    counted alone, held a header and padding per member that are never written, 740 bytes a photo; the -shm, which
    it left out, was said as a damaged archive), as its manifest lists them or, where it cannot be found at the end,
    its headers say; a compressed archive's own size, which cannot tell more unread."""
    files = _listed(archive)
    if files is None:
        try:
            with tarfile.open(archive, "r:", tarinfo=_Header) as tar:  # (headers only: the data between them skipped)
                files = [(info.name, info.size) for info in _read(tar) if info.isreg() and info.name != MANIFEST]
        except (tarfile.TarError, EOFError, OSError):  # compressed, cut short or damaged: its reading says which
            return "the archive", archive.stat().st_size
    size, folders, databases = 0, set(), False
    for name, length in files:
        size += -(-length // block) * block
        databases = databases or name in (DATABASE, EVENTS_DB)
        folder = name.rpartition("/")[0]  # (a backup's hundreds of folders, once each: a path made of each of
        if folder not in folders and _MEMBER_FOLDER.fullmatch(folder) and is_member_name(name):  # 25 000 names
            folders.add(folder)  # took half a restore's 0.9 s; a member's only, as before: a forged archive's
            # million folders are not kept in memory, nor is `images/ab/x.tmp`'s counted: refused as it is read)
    made = len(folders) + any(f != "index" for f in folders)  # (images/ above its ab/; not "", `staging`: made)
    return "the restored memory", size + made * block + (SQLITE_ROOM if databases else 0)  # (one at a time)


#: The folders a backup's members are written in (`is_member_name`'s): a photo's `images/ab/`, the index's.
_MEMBER_FOLDER = re.compile(r"images/[0-9a-f]{2}|index")

#: How much of a plain archive's end is read at a time for its manifest (a backup's of 10 000 photos is about
#: 1.5 MiB): a read more where all it held was text, a manifest's larger than that (22 000 photos' is over 4 MiB).
MANIFEST_TAIL = 4 * 1024 * 1024


def _listed(archive: Path) -> list[tuple[str, int]] | None:
    """The files and sizes the manifest lists, its header found in the archive's end (a plain tar's members start at
    multiples of 512 bytes; the last is followed by zeros alone), read `MANIFEST_TAIL` at a time back from it for as
    long as all read is text, up to the largest manifest; None where it is not there so (compressed, cut short, a
    manifest too large, or not one a backup writes): the headers are weighed then."""
    chunks: list[bytes] = []  # the end read, back to front
    zeros = True  # all read so far is the zeros that end the archive
    try:
        with open(archive, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            if end % 512:
                return None
            while (start := max(0, end - MANIFEST_TAIL)) < end:
                f.seek(start)
                chunk = f.read(end - start)
                chunks.append(chunk)
                if (at := _manifest_header(chunk)) is not None:
                    return _manifest_files(archive, b"".join([chunk[at:], *reversed(chunks[:-1])]))
                text = chunk.rstrip(b"\0") if zeros else chunk
                zeros = zeros and not text
                if b"\0" in text or sum(map(len, chunks)) > MAX_MANIFEST + 2 * tarfile.RECORDSIZE:
                    return None  # (no manifest's text: another member's bytes; or too long for one)
                end = start
    except OSError:
        return None
    return None


def _manifest_header(chunk: bytes) -> int | None:
    """Where in `chunk` (read at a multiple of 512) the manifest's header is, the last there; None where none is."""
    return next((at for at in range(len(chunk) - 512, -1, -512) if chunk.startswith(MANIFEST.encode() + b"\0", at)),
                None)


def _manifest_files(archive: Path, tail: bytes) -> list[tuple[str, int]] | None:
    """The files and sizes the manifest whose header begins `tail` lists, where all after it is its data and zeros."""
    try:
        info = tarfile.TarInfo.frombuf(tail[:512], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return None
    data, rest = tail[512:512 + info.size], tail[512 + info.size:]
    if not info.isreg() or info.size > MAX_MANIFEST or len(data) != info.size or rest.strip(b"\0"):
        return None  # (the reads go past MAX_MANIFEST by the zeros after it: one a little over is no backup's)
    try:
        return [(name, member.size) for name, member in Manifest.parse(data, archive).files.items()]
    except EdgeRapError:  # (said as the archive is read)
        return None


def _refuse_more_than_free(what: str, size: int, staging: Path) -> None:
    """What cannot fit is said before any of it is written: the whole archive before it is read (a large one took
    minutes to fill the disk), a member as it comes (one that declares terabytes, forged or damaged, filled the
    device's disk first; the disk may also fill meanwhile)."""
    free = _writing_statvfs(staging)
    room = free.f_bavail * free.f_frsize
    if size > room:
        raise EdgeRapError(f"{staging.parent}: {what} is {size} bytes, more than the {room} free there; nothing was "
                           "changed")


def _writing_statvfs(staging: Path) -> os.statvfs_result:
    with _writing(staging):
        return os.statvfs(staging)


def _write_member(source, path: Path, staging: Path) -> Member:
    """Copy one member to `path` (a new file in a folder made: nothing is written through a link), hashed and
    fsynced."""
    digest, size = hashlib.sha256(), 0
    with _writing(staging):
        out = open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), "wb")
    with out:
        for block in iter(lambda: source.read(1 << 20), b""):  # (the archive's errors: said as its own)
            digest.update(block)
            size += len(block)
            with _writing(staging):
                out.write(block)
        with _writing(staging):
            out.flush()
            os.fsync(out.fileno())
    return Member(size, digest.hexdigest())


@contextlib.contextmanager
def _writing(staging: Path) -> Iterator[None]:
    """A write into the new folder that fails (a full disk) is said as such, not as a damaged archive."""
    try:
        yield
    except OSError as e:
        raise _not_written(staging, e.strerror) from None


def _not_written(staging: Path, why: str) -> EdgeRapError:
    return EdgeRapError(f"{staging.parent}: cannot write the restored memory there ({why}); nothing was changed")


def _swap(staging: Path, root: Path, kept: list[str]) -> Path | None:
    """Put `staging` in `root`'s place; the memory there before moved aside whole (its path returned), what is not
    the memory (`kept`: the model cache, the demo, serve.json; the API's token where the backup brings none) kept in
    place. The two are exchanged in one step where the file system can: a restore killed (a power cut) between two
    renames left no memory at `root`, and the next command started an empty one there. A Ctrl-C is held over each step
    until the step is noted: one pressed during a rename came as it returned, unnoted, and the undo left the memory
    aside, or the model cache in the restored folder, which is deleted next."""
    if not root.exists():
        _rename(staging, root)
        fsync_dir(root.parent)
        return None
    os.chmod(staging, stat.S_IMODE(root.stat().st_mode))  # (a folder shared with a group stays so)
    aside = stamped(root, ASIDE)
    exchanged: bool | None = None  # None: not in place yet (nothing changed)
    moved: list[str] = []
    try:  # (the kept entries go in last: a restore killed before has them all aside, none in the restored folder)
        with interrupts_held():
            exchanged = _put_in_place(staging, aside, root)
        for name in kept:
            with interrupts_held():
                os.rename(aside / name, root / name)
                moved.append(name)
        (aside / KEPT_NOTE).unlink()
    except BaseException as e:  # (Ctrl-C too: the restored folder is removed next)
        if exchanged is None:
            raise
        with interrupts_held():
            _put_back(staging, aside, root, moved, exchanged)
        if not isinstance(e, OSError):
            raise
        raise _not_placed(root, e) from None
    fsync_dir(root.parent)
    if not any(aside.iterdir()):  # it held no memory: nothing to keep aside
        aside.rmdir()
        return None
    return aside


def _note_kept(root: Path, staging: Path) -> list[str]:
    """What is not the memory in the folder `root` and is not restored in `staging` (the model cache, the demo,
    serve.json, the token where the backup brings none): named in `KEPT_NOTE` there, on the disk before the swap (so
    that a note in the memory moved aside is always whole), for the next command to move back should this restore be
    killed before it does."""
    if not root.exists():
        return []
    kept = [p.name for p in root.iterdir()
            if not MEMORY_DATA.fullmatch(p.name) and not (staging / p.name).exists() and p.name != KEPT_NOTE]
    try:  # (the first write into the memory's folder: one made read-only, `chmod a-w`, was a traceback here)
        fd = os.open(root / KEPT_NOTE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, "".join(f"{name}\n" for name in kept).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(root)
    except OSError as e:
        raise disk_error(e, root) from None
    return kept


def _put_in_place(staging: Path, aside: Path, root: Path) -> bool:
    """Move the memory at `root` to `aside` and `staging` to `root`: in one step (True) or, on a file system without
    the exchange, two renames (a moment without a memory at `root`). Where it raises, nothing was changed."""
    _rename(staging, aside)  # (killed now: the memory as it was, the restored one beside it as if moved aside)
    try:
        exchanged = _exchange(aside, root)
    except OSError as e:
        os.rename(aside, staging)
        raise _not_placed(root, e) from None
    if exchanged:
        return True
    os.rename(aside, staging)
    _rename(root, aside)
    try:
        os.rename(staging, root)
    except OSError as e:
        os.rename(aside, root)
        raise _not_placed(root, e) from None
    return False


def _put_back(staging: Path, aside: Path, root: Path, moved: list[str], exchanged: bool) -> None:
    """Undo `_put_in_place` and the kept entries `moved` since: the memory at `root` again, the restored one at
    `staging`."""
    for name in moved:
        os.rename(root / name, aside / name)
    if exchanged:
        _exchange(aside, root)
        os.rename(aside, staging)
    else:
        os.rename(root, staging)
        os.rename(aside, root)


def _not_placed(root: Path, error: OSError) -> EdgeRapError:
    return EdgeRapError(f"{root}: cannot put the restored memory in its place ({error.strerror}); nothing was changed")


def _exchange(one: Path, other: Path) -> bool:
    """Swap two paths atomically (Linux's renameat2 with RENAME_EXCHANGE); False where this system, its C library
    or the file system (FAT, some network shares) cannot."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(one), _AT_FDCWD, os.fsencode(other), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(other))


def _rename(source: Path, target: Path) -> None:
    try:
        os.rename(source, target)
    except OSError as e:
        raise EdgeRapError(f"{source}: cannot move it to {target} ({e.strerror}: a mount point? the memory's folder "
                           "must be on the same file system as the folder it is in); nothing was changed") from None
