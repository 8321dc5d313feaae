"""What a backup archive of a memory holds (`edge-rap backup`, `edge-rap restore`): which member names it may have,
and its manifest, so that the reader refuses anything the writer would never have written."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable

from edge_rap.daemon.events import EVENTS_DB
from edge_rap.errors import EdgeRapError
from edge_rap.memory.files import DATABASE, is_own_image, is_own_index

FORMAT = "edge-rap-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: The companion API's key to the house: only with `backup --with-token`.
SECRETS = ("api-token",)
#: Where `serve` listened, which `backup --with-token` wrote before 2026-12-05: read and checked, never restored. It
#: names another device's address (or a forged backup's own host, which `pair` showed in its link with the token).
NOT_RESTORED = ("serve.json",)
#: Files at the top of an archive besides the manifest.
TOP_FILES = (DATABASE, EVENTS_DB, *SECRETS, *NOT_RESTORED)
#: A manifest bigger than this is no manifest a backup writes (it is read whole).
MAX_MANIFEST = 64 * 1024 * 1024


def is_member_name(name: str) -> bool:
    """Whether `name` is a member a backup writes: the databases, the secrets, a photo `images/ab/<sha256>.ext` or
    an index file `index/<space>-<gen>.<digest>.usearch` (never a writer's temporary file), and the manifest. An
    absolute path, `..` or anything else is not: a restore never puts a file outside its folder."""
    path = PurePosixPath(name)
    if name != path.as_posix() or path.is_absolute() or ".." in path.parts or "\\" in name:
        return False
    if len(path.parts) == 1:
        return name in (MANIFEST, *TOP_FILES)
    if path.parts[0] == "images" and len(path.parts) == 3:
        return is_own_image(Path(name)) and not name.endswith(".tmp")
    if path.parts[0] == "index" and len(path.parts) == 2:
        return is_own_index(Path(name)) and not name.endswith(".tmp")
    return False


def referred(db: sqlite3.Connection) -> tuple[dict[str, str], list[str]]:
    """The members a memory's database refers to: its photos (name -> sha256) and its index files."""
    photos = {f"images/{rel}": sha for rel, sha in db.execute("SELECT DISTINCT image_file, image_sha256 FROM views")}
    index = [f"index/{name}" for (listed,) in db.execute("SELECT index_file FROM spaces WHERE index_file IS NOT NULL")
             for name in listed.split()]
    return photos, index


def stranger(names: Iterable[str]) -> str | None:
    """The first of `names` that is no member a backup holds, or None: a database that refers to `../x` is not one a
    memory wrote (a forged backup's: its writers would read and delete files through it)."""
    return next((name for name in names if not is_member_name(name)), None)


@dataclass(frozen=True)
class Counts:
    concepts: int
    views: int  # the concepts' photos (as `concepts` counts them), not their faces
    events: int

    def to_json(self) -> dict:
        return {"concepts": self.concepts, "views": self.views, "events": self.events}


@dataclass(frozen=True)
class Member:
    size: int
    sha256: str


@dataclass
class Manifest:
    """The archive's own description, its last member: every other member with its size and sha256."""

    edge_rap: str
    schema: int  # the memory's database's (PRAGMA user_version)
    created: float  # Unix seconds
    counts: Counts
    files: dict[str, Member] = field(default_factory=dict)
    #: The memory folder it was made of (its real path); "" in a backup made before this was written down.
    memory: str = ""

    def to_bytes(self) -> bytes:
        return json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "edge_rap": self.edge_rap,
                           "schema": self.schema, "created": self.created, "counts": self.counts.to_json(),
                           "files": {name: {"size": m.size, "sha256": m.sha256} for name, m in self.files.items()},
                           "memory": self.memory},
                          indent=1).encode()

    @classmethod
    def parse(cls, data: bytes, archive: Path) -> "Manifest":
        """The manifest in `data`; one of another program, or of a newer backup format, is refused in one line."""
        try:
            raw = json.loads(data)
            if raw.get("format") != FORMAT:
                raise ValueError("not an edge-rap backup's")
            if raw["version"] > FORMAT_VERSION:
                raise EdgeRapError(f"{archive}: made by a newer edge_rap (backup format {raw['version']}; this one "
                                   f"reads {FORMAT_VERSION}): upgrade edge_rap to restore it; nothing was changed")
            files = {str(name): Member(int(m["size"]), str(m["sha256"])) for name, m in raw["files"].items()}
            created = float(raw["created"])
            time.gmtime(created)  # a time (NaN, 1e300: restored, then a traceback where it was printed)
            return cls(str(raw["edge_rap"]), int(raw["schema"]), created,
                       Counts(**{k: int(raw["counts"][k]) for k in ("concepts", "views", "events")}), files,
                       str(raw.get("memory", "")))
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError, OSError) as e:
            raise EdgeRapError(f"{archive}: its {MANIFEST} cannot be read ({e}); not an edge-rap backup, or a "
                               "damaged one; nothing was changed") from None
        except RecursionError:  # a forged "[[[[...": json's parser recurses, and a traceback said it
            raise EdgeRapError(f"{archive}: its {MANIFEST} is nested too deeply to be a backup's; nothing was "
                               "changed") from None
