"""`GET /api/backup`: a fresh backup of the memory for the phone to keep, as `edge-rap backup` writes it but never
with the API's token (a download is a copy off the device: it must not carry the key to the house).

`back_up()` writes a file (a partial one, fsynced, renamed): it is written into the process's own temporary folder
(edge_rap/scratch.py), opened, and unlinked at once. The open file keeps its bytes until they are sent, so nothing
stays behind however the download ends: sent, a client that left half-way, a server killed (the folder goes with
its process). The file is closed as soon as a client leaves (not when the garbage collector gets to the stream),
and one download is made or sent at a time: a second meanwhile is refused (503), so the temporary folder (a RAM
disk on some boards) holds one backup however often the button is tapped.

`POST /api/backup/link` makes the same backup for a link the browser opens itself (`GET /api/downloads/<ticket>`,
no token: the ticket is the credential, random, and gone after LINK_S or at another download), so that the browser's
own download streams it to disk: the household page held a fetched backup whole in the phone's memory first."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import BinaryIO, Iterator

from edge_rap.daemon.backups import backup_name
from edge_rap.errors import DeviceError, EdgeRapError
from edge_rap.household import Household
from edge_rap.memory.backup import back_up
from edge_rap.daemon.events import EVENTS_DB
from edge_rap.memory.files import DATABASE, stored_files
from edge_rap.scratch import private_folder
from edge_rap.serve.log_budget import LogBudget
from edge_rap.serve.problems import ApiError
from edge_rap.serve.uploads import temp_folder_error
from edge_rap.wording import counted

log = logging.getLogger(__name__)

CHUNK = 1 << 20
#: Room a download's backup leaves on the temporary folder's drive: where that is the memory's own (the service's
#: private /tmp on the SD card), the device's own writes meanwhile (the event log, a photo remembered) need some.
HEADROOM = 64 << 20
#: In a download's name: a copy of one that a household drops into `run`'s backup folder is not one of its own files,
#: which it prunes.
DOWNLOAD_TAG = "-download"
#: The temporary folder's use, as its trouble says it.
MADE_IN = "where a download's backup is made"


class Download:
    """A backup's open, unlinked file, read by one request (`GET /api/backup`) or, behind a link, by each request
    that opens the link until it expires (a browser that hands a download to a manager of its own asks again). The
    file is closed, its bytes freed, once no request reads it and it can be read no more: at once after its one
    request, or once its link expired."""

    def __init__(self, name: str, size: int, file: BinaryIO, reusable: bool = False):
        self.name = name  # edge-rap-backup-<UTC stamp>-download.tar
        self.size = size
        self.file = file
        self.reusable = reusable
        self._readers = 0
        self._expired = False
        self._guard = threading.Lock()

    def reader(self) -> "Reader | None":
        """A request's reading of the file; None once it is closed (a link that expired meanwhile)."""
        with self._guard:
            if self.file.closed or self._expired:
                return None
            self._readers += 1
        return Reader(self)

    def expire(self) -> None:
        """No request may start reading it any more: closed now, or when the last one reading ends."""
        with self._guard:
            self._expired = True
            self._close_if_unread()

    def unread_link(self) -> bool:
        """Whether it is a link's that no request reads now (one `expire_if_unread` would expire)."""
        with self._guard:
            return self.reusable and self._readers == 0

    def expire_if_unread(self) -> bool:
        """`expire()` where no request reads it now; whether it expired."""
        with self._guard:
            if self._readers:
                return False
            self._expired = True
            self._close_if_unread()
            return True

    def _release(self, reader: "Reader") -> None:
        with self._guard:
            if reader.reading:
                reader.reading = False
                self._readers -= 1
                self._close_if_unread()

    def _close_if_unread(self) -> None:
        if self._readers == 0 and (self._expired or not self.reusable):
            self.file.close()


class Reader:
    """One request's pass over a download, at its own offset (pread: readers share the file)."""

    def __init__(self, download: Download):
        self.download = download
        self.reading = True  # (changed under the download's lock)

    def chunks(self) -> Iterator[bytes]:
        sent = 0
        try:
            while self.reading and sent < self.download.size:
                block = os.pread(self.download.file.fileno(), min(CHUNK, self.download.size - sent), sent)
                if not block:
                    break
                sent += len(block)
                if sent >= self.download.size:  # released before the last bytes go: a client that has them all
                    self.close()  # may ask for another download at once
                yield block
        finally:
            self.close()

    def close(self) -> None:
        """This request is done, whether or not it read it all (run after the response, a client that left too:
        not when the garbage collector gets to the stream)."""
        self.download._release(self)


class OneDownload:
    """The download being made or sent: another is refused while it lasts. A download counts until its file is
    closed, whoever closes it, so one the server never finished is not held against the next for ever."""

    def __init__(self, said: LogBudget) -> None:
        self.said = said  # the photos a backup left out: its log line, rationed
        self._guard = threading.Lock()
        self._making = False
        self._sending: Download | None = None

    def fresh(self, home: Household, reusable: bool = False) -> Download:
        """`fresh_backup(home, self.said, reusable)`, or 503 with Retry-After while another download is made or sent."""
        with self._guard:
            self._refuse_if_busy()
            self._making = True
        download = None
        try:
            download = fresh_backup(home, self.said, reusable)
            return download
        finally:
            with self._guard:
                self._making, self._sending = False, download

    def name_if_made(self, home: Household) -> str:
        """What a HEAD of `GET /api/backup` is told (RFC 9110 9.3.2): the error `fresh` would raise now, checked as it
        checks (another download 503, no memory 404, no room 507), else the name a backup made now has. None is made:
        seconds of work and the memory's size in the temporary folder, for an answer with no body."""
        with self._guard:
            self._refuse_if_busy(unread_links_expire=True)
        shutil.rmtree(_room_made(home), ignore_errors=True)
        return backup_name(time.time(), DOWNLOAD_TAG)

    def _refuse_if_busy(self, unread_links_expire: bool = False) -> None:
        """503 with Retry-After while another download is made or sent (called under the guard); a link's that no
        request reads not counted where it is to expire first (a GET's, which `DownloadLinks.expire_unread` does)."""
        sending = self._sending
        if self._making or (sending is not None and not sending.file.closed
                            and not (unread_links_expire and sending.unread_link())):
            raise ApiError("a backup is being downloaded already; try again once it is saved", 503,
                           headers={"Retry-After": "30"})


#: Seconds a backup's link may wait to be opened: the page opens it at once.
LINK_S = 60.0


class DownloadLinks:
    """Backups behind links: each link opens its backup for LINK_S, as often as it is asked for (a browser may ask
    again from a download manager of its own), then expires; its file is freed once the last request reading it
    ends. Another download expires those no request reads at once: a link the browser never opened (a blocked
    download), or one already saved, must not hold the next download off for the rest of its minute; one being read
    stays open (and the other download is refused while it is)."""

    def __init__(self) -> None:
        self.expires_s = LINK_S
        self._links: dict[str, Download] = {}
        self._guard = threading.Lock()

    def add(self, download: Download) -> str:
        """The ticket that opens `download`."""
        ticket = secrets.token_urlsafe(32)
        with self._guard:
            self._links[ticket] = download
        timer = threading.Timer(self.expires_s, self._expire, (ticket,))
        timer.daemon = True
        timer.start()
        return ticket

    def open(self, ticket: str) -> Reader | None:
        """A request's reading of the backup behind `ticket`; None for a ticket expired or never given."""
        with self._guard:
            download = self._links.get(ticket)
        return download.reader() if download is not None else None

    def expire_unread(self) -> None:
        with self._guard:
            self._links = {t: d for t, d in self._links.items() if not d.expire_if_unread()}

    def _expire(self, ticket: str) -> None:
        with self._guard:
            download = self._links.pop(ticket, None)
        if download is not None:
            download.expire()


#: How many of the photos a backup left out its log line names.
MISSING_SHOWN = 5


def fresh_backup(home: Household, said: LogBudget, reusable: bool = False) -> Download:
    """A backup of the household's memory, open and already unlinked; 404 where it has no memory yet, the device's
    trouble (503, 507 a full temporary folder) where it cannot be written. The stored photos it left out are one log
    line (rationed by `said`), not one each at every backup a phone asks for; the line back_up says for each index
    file it left out is rationed as every line a request causes (serve/request_lines.py)."""
    folder = _room_made(home)
    target = folder / backup_name(time.time(), DOWNLOAD_TAG)
    try:
        # (a scratch file, streamed to the phone)
        report = back_up(home.root, target, with_token=False, anywhere=True)
        file = open(target, "rb")
    except EdgeRapError as e:
        written = e.__context__  # a write that failed, which back_up says in words: the device's trouble
        if isinstance(written, OSError) and not isinstance(e, DeviceError):
            raise temp_folder_error(written, MADE_IN) from None  # (not "memory folder is not writable")
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if report.missing:
        shown = ", ".join(report.missing[:MISSING_SHOWN]) + (", ..." if len(report.missing) > MISSING_SHOWN else "")
        said.log(log, logging.WARNING, "backup: photos missing", "GET /api/backup: %s missing or damaged, not backed "
                 "up: %s", counted(len(report.missing), "stored photo"), shown)
    return Download(target.name, os.fstat(file.fileno()).st_size, file, reusable)


def _room_made(home: Household) -> Path:
    """The private temporary folder a backup of the household's memory is made in; 404 where it has no memory yet, the
    device's trouble (503; 507 where its drive lacks the room) where it cannot be."""
    if not (home.root / DATABASE).exists():
        raise ApiError("no memory yet: nothing to back up (remember a concept first)", 404)
    try:
        folder = private_folder("backup")
    except OSError as e:  # a read-only or removed TMPDIR: the device's trouble (503), not a 500
        raise temp_folder_error(e, MADE_IN) from None
    need, free = room_needed(home.root), shutil.disk_usage(folder).free
    if free < need:  # refused before the drive is filled to its last byte (a RAM disk: the device's memory)
        shutil.rmtree(folder, ignore_errors=True)
        raise ApiError(f"no room for a backup in the device's temporary folder: about {need >> 20} MB needed, "
                       f"{free >> 20} MB free (make room, or set TMPDIR to a folder on a drive with room)", 507)
    return folder


def room_needed(root: Path) -> int:
    """About what a backup of the memory at `root` takes in the temporary folder at its peak (its photos and index
    files, its databases twice: each is copied there before it goes into the archive), and the HEADROOM."""
    databases = [root / name for base in (DATABASE, EVENTS_DB) for name in (base, base + "-wal")]
    return sum(_size(p) for p in stored_files(root)) + 2 * sum(_size(p) for p in databases) + HEADROOM


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # (no -wal: nothing to count)
        return 0
