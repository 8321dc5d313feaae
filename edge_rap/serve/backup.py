"""`GET /api/backup`: a fresh backup of the memory for the phone to keep, as `edge-rap backup` writes it but never
with the API's token (a download is a copy off the device: it must not carry the key to the house).

`back_up()` writes a file (a partial one, fsynced, renamed): it is written into the process's own temporary folder
(edge_rap/scratch.py), opened, and unlinked at once. The open file keeps its bytes until they are sent, so nothing
stays behind however the download ends: sent, a client that left half-way, a server killed (the folder goes with
its process)."""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from edge_rap.daemon.backups import backup_name
from edge_rap.errors import DeviceError, EdgeRapError
from edge_rap.household import Household
from edge_rap.memory.backup import back_up
from edge_rap.memory.files import DATABASE
from edge_rap.memory.store import disk_error
from edge_rap.scratch import private_folder
from edge_rap.serve.problems import ApiError

log = logging.getLogger(__name__)

CHUNK = 1 << 20


@dataclass
class Download:
    name: str  # edge-rap-backup-<UTC stamp>.tar
    size: int
    file: BinaryIO  # unlinked already: closed, its bytes are gone

    def chunks(self) -> Iterator[bytes]:
        with self.file:
            while block := self.file.read(CHUNK):
                yield block


def fresh_backup(home: Household) -> Download:
    """A backup of the household's memory, open and already unlinked; 404 where it has no memory yet, the device's
    trouble (503, 507 a full temporary folder) where it cannot be written."""
    if not (home.root / DATABASE).exists():
        raise ApiError("no memory yet: nothing to back up (remember a concept first)", 404)
    folder = private_folder("backup")
    target = folder / backup_name(time.time())
    try:
        report = back_up(home.root, target, with_token=False)
        file = open(target, "rb")
    except EdgeRapError as e:
        written = e.__context__  # a write that failed, which back_up says in words: the device's trouble
        if isinstance(written, OSError) and not isinstance(e, DeviceError):
            raise disk_error(written, folder) from None
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for name in report.missing:
        log.warning("GET /api/backup: stored photo missing or damaged, not backed up: %s", name)
    return Download(target.name, os.fstat(file.fileno()).st_size, file)
