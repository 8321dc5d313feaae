"""Import and export RAP's own database format: database.json with concept_dict {"<name>": {name, image, info,
category}}."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from edge_rap.errors import DeviceError, EdgeRapError
from edge_rap.folders import file_in_the_way, missing_folders, reachable, refuse_unmounted, remove_empty
from edge_rap.memory.memory import Memory
from edge_rap.memory.store import NameTakenError, Store, name_key
from edge_rap.types import Box, ReferenceView
from edge_rap.userfiles import kind_of, read_whole


#: The file a RAP database is: import-rap reads it, export-rap writes it, its photos in the folder beside it.
RAP_DATABASE = "database.json"


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # the image file does not exist
    failed: dict[str, str] = field(default_factory=dict)  # name -> one-line reason
    skipped: list[str] = field(default_factory=list)  # already in memory
    missing_photos: dict[str, list[str]] = field(default_factory=dict)  # imported name -> its photos not found

    def to_json(self) -> dict:
        return {"imported": self.imported, "missing": self.missing, "failed": self.failed, "skipped": self.skipped,
                "missing_photos": self.missing_photos}


@dataclass(frozen=True)
class RapEntry:
    name: str
    images: list[Path]
    description: str
    category: str
    box: Box | None = None  # edge_rap's extension: the region of the photos that was remembered
    boxes: list[Box | None] | None = None  # edge_rap's extension too: one region per photo, where they differ
    faces: list[Box | None] | None = None  # and a person's registered face per photo (None: none registered)
    problem: str = ""  # why this entry cannot be imported: reported by name, the other entries still are


def _paths(value, field_name: str) -> list[str]:
    """A RAP image field: one path, a list of paths, or nothing."""
    if value is None:
        return []
    paths = [value] if isinstance(value, str) else value
    if not (isinstance(paths, list) and all(isinstance(v, str) for v in paths)):
        raise EdgeRapError(f"its {field_name} is not a path or a list of paths")
    if any("\0" in v for v in paths):  # no file system has such a name; resolving it raises
        raise EdgeRapError(f"its {field_name} has a NUL character, which no file name can hold")
    return paths


def _box(value, what: str = "box") -> Box | None:
    """edge_rap's "box" (`what` it is: a "face box" of "faces"): [x0, y0, x1, y1] in finite pixel numbers, or
    nothing."""
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise EdgeRapError(f"its {what} {json.dumps(value)[:40]} is not [x0, y0, x1, y1]")
    return Box.parse(",".join(map(repr, value)))


def _per_image(value, field_name: str, images: list[str]) -> list[Box | None] | None:
    """edge_rap's "boxes" or "faces": one [x0, y0, x1, y1] or null per image (those with a path), or nothing."""
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == len(images)):
        raise EdgeRapError(f"its {field_name} are not one [x0, y0, x1, y1] or null per image ({len(images)})")
    return [_box(b, "face box" if field_name == "faces" else "box") for b, i in zip(value, images) if i]


def _text(value, field_name: str) -> str:
    """A text field: absent or null is empty; a number or a list is a problem, not its Python spelling."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise EdgeRapError(f"its {field_name} {json.dumps(value)[:40]} is not text")
    return value


def _entry(key: str, value, folder: Path) -> RapEntry:
    name = key.strip()
    name = name[1:-1] if name.startswith("<") and name.endswith(">") else name
    try:
        if not isinstance(value, dict):
            raise EdgeRapError("the entry is not an object")
        images = [*_paths(value.get("image"), "image"), *_paths(value.get("extra_images"), "extra_images")]
        boxes, faces = (_per_image(value.get(key), key, images) for key in ("boxes", "faces"))
        return RapEntry(name, [folder / i for i in images if i], _text(value.get("info"), "info"),
                        _text(value.get("category"), "category"), _box(value.get("box")), boxes, faces)
    except EdgeRapError as e:
        return RapEntry(name, [], "", "", problem=str(e))


def read_rap_database(path: Path) -> list[RapEntry]:
    """Entries of a RAP database.json; image paths are resolved against its folder. A malformed entry carries
    its problem; only a file that is not a RAP database at all is an error."""
    if reachable(path, Path.is_dir):  # (the folder export-rap wrote, given for its file)
        inside = (path / RAP_DATABASE).is_file()
        raise EdgeRapError(f"{path}: is a folder" + ("; give its database.json" if inside else
                                                      ", not a RAP database.json"))
    try:
        raw = json.loads(read_whole(path, "a RAP database.json").decode("utf-8-sig"))  # (a BOM: Windows Notepad)
    except FileNotFoundError:
        raise EdgeRapError(f"{path}: no such file") from None
    except RecursionError:
        raise EdgeRapError(f"{path}: not a readable RAP database.json (nested too deeply)") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise EdgeRapError(f"{path}: not a readable RAP database.json ({e})") from None
    concepts = raw.get("concept_dict") if isinstance(raw, dict) else None
    if not isinstance(concepts, dict):
        raise EdgeRapError(f"{path}: has no concept_dict (not a RAP database)")
    return [_entry(key, value, path.parent) for key, value in concepts.items()]


def _outside(image: Path, folder: Path) -> bool:
    """Whether an image lies outside the database's folder once `..` and symlinks are followed."""
    return not image.resolve().is_relative_to(folder.resolve())


def _there(image: Path, ask: Callable[[Path], bool]) -> bool:
    """`ask(image)` (Path.is_file, Path.is_dir), where a name longer than the file system takes is no such file:
    a photo the database names that cannot be here, said as a missing one, not the end of the import. One behind a
    folder this account may not search is an EdgeRapError saying so (`reachable`): its entry's failure."""
    try:
        return reachable(image, ask)
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:
            raise
        return False


def import_rap(memory: Memory, path: Path, progress: Callable[[Iterable], Iterable] = iter,
               allow_outside: bool = False, entries: list[RapEntry] | None = None) -> ImportReport:
    """Remember every entry whose images exist (one with some photos missing, with the others; the missing ones
    named); report the missing and the unusable by name (an entry naming a folder for an image: the database
    is wrong, not a photo lost since). Images outside
    the database's folder (absolute, `..`, symlinks) are refused unless `allow_outside`: a database from
    elsewhere must not pull arbitrary files of this machine into the memory, and later into an export.
    `entries`: the database as read_rap_database read it already (before a memory was made for it)."""
    report = ImportReport()
    existing = {name_key(c.name) for c in memory.concepts()}  # names said alike are one name
    for entry in progress(read_rap_database(path) if entries is None else entries):
        if entry.problem:
            report.failed[entry.name] = entry.problem
            continue
        if name_key(entry.name) in existing:  # remembered before, or by an entry above named alike ("Bo", "bo")
            report.skipped.append(entry.name)
            continue
        outside = [] if allow_outside else [p for p in entry.images if _outside(p, path.parent)]
        if outside:
            report.failed[entry.name] = (f"image {outside[0]} is outside the database's folder {path.parent} "
                                         "(--allow-outside imports it)")
            continue
        try:
            folder = next((p for p in entry.images if _there(p, Path.is_dir)), None)
        except EdgeRapError as e:  # (PermissionError, a traceback that ended the import: this entry's failure)
            report.failed[entry.name] = str(e)
            continue
        if folder is not None:  # not a missing image: one named wrong
            report.failed[entry.name] = f"{folder}: is a folder, not an image"
            continue
        boxes = entry.boxes if entry.boxes is not None else [entry.box] * len(entry.images)
        faces = entry.faces if entry.faces is not None else [None] * len(entry.images)
        present = [(p, b, f) for p, b, f in zip(entry.images, boxes, faces) if _there(p, Path.is_file)]
        if not present:
            report.missing.append(entry.name)
            continue
        try:
            memory.remember(entry.name, [p for p, _, _ in present], entry.description, entry.category,
                            boxes=[b for _, b, _ in present],
                            faces=[f for _, _, f in present] if entry.faces is not None else None)
            report.imported.append(entry.name)
            existing.add(name_key(entry.name))
            lost = [str(p) for p in entry.images if not _there(p, Path.is_file)]
            if lost:  # imported with the photos that are there; the others named, not passed over in silence
                report.missing_photos[entry.name] = lost
        except NameTakenError:  # taken by another writer meanwhile: a duplicate, as those found above
            report.skipped.append(entry.name)
        except EdgeRapError as e:
            if isinstance(e, DeviceError) and not report.imported:  # the memory cannot be written at all: said
                raise  # once, not as each entry's fault
            report.failed[entry.name] = str(e)
    return report


#: What an export writes at the top of its folder: an export may replace an earlier one, nothing else.
EXPORTED = {"database.json", "database"}
#: The name an export gives a photo in database/: _file_stem's slug and hash, a number after the first, the stored
#: photo's suffix (any an older edge_rap stored).
EXPORTED_PHOTO = re.compile(r"[A-Za-z0-9_-]*-[0-9a-f]{12}(-[0-9]+)?(\.[^.]+)?")
#: Files a Mac's Finder or Windows' Explorer writes into a folder the user opened: no user's, nor an export's.
OS_JUNK = {".ds_store", "thumbs.db", "desktop.ini"}


def _junk(path: Path) -> bool:
    """An OS's view settings or thumbnails: one beside an export stays, one in database/ goes with it."""
    return path.name.lower() in OS_JUNK and path.is_file()


def _file_stem(name: str) -> str:
    """A short file name for a concept: a readable ASCII slug and a hash of the whole name, bounded in length
    whatever the name (64 emoji are 256 bytes of UTF-8, beyond many file systems' 255) and never shared."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", unicodedata.normalize("NFKD", name)).strip("-")[:32] or "concept"
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def _check_export_folder(folder: Path) -> None:
    """An export goes into a new or empty folder, or replaces an earlier export; never through a symlink."""
    if reachable(folder, Path.is_symlink):  # (behind a folder this account may not search: one line)
        raise EdgeRapError(f"{folder}: is a symlink; export into a real folder")
    blocking = file_in_the_way(folder)  # (the OS says "Not a directory" for one above it: a pipe named as a folder)
    if blocking is not None:
        where = "" if blocking == folder else f"{blocking} "
        raise EdgeRapError(f"{folder}: {where}is {kind_of(blocking)}, not a folder")
    if not folder.exists():
        return
    entries = sorted(e for e in os.listdir(folder) if not _staging(folder / e) and not _junk(folder / e))
    earlier = (set(entries) <= EXPORTED and not any((folder / e).is_symlink() for e in entries)
               and (folder / "database.json").is_file() and (folder / "database").is_dir())
    if not entries:
        return
    if not earlier:
        raise EdgeRapError(f"{folder}: not empty and not an earlier export (it holds {_shown(entries)}); "
                           "export into a new or empty folder")
    try:
        foreign = sorted(p.name for p in (folder / "database").iterdir()
                         if not EXPORTED_PHOTO.fullmatch(p.name) and not _junk(p))
    except OSError as e:
        raise EdgeRapError(f"{folder / 'database'}: cannot list ({e.strerror})") from None
    if foreign:  # RAP's own database (its Anya.jpg), the one imported from: replaced whole, its photos were deleted
        raise EdgeRapError(f"{folder}: not an export this edge_rap replaces: its database/ holds {_shown(foreign)} "
                           "(a RAP database's photos, or an older edge_rap's export), which replacing it would delete; "
                           "export into another folder, or remove that one first")
    named = _named_elsewhere(folder)
    if named:  # a RAP database.json whose photos are elsewhere or gone, beside an empty database/: replaced unsaid
        raise EdgeRapError(f"{folder}: not an earlier export: its {RAP_DATABASE} {named}, which replacing it would "
                           "delete; export into a new or empty folder")


def _named_elsewhere(folder: Path) -> str:
    """What in folder/database.json no export writes (its photos are its own database/'s, named as it names
    them), said; empty where it is an export's."""
    try:
        entries = read_rap_database(folder / RAP_DATABASE)
    except EdgeRapError:
        return "is no RAP database an export wrote"
    own = folder / "database"
    other = [f"<{e.name}> ({e.problem})" for e in entries if e.problem] + [
        image.name for e in entries for image in e.images
        if image.parent != own or not EXPORTED_PHOTO.fullmatch(image.name)]
    return f"names what no export writes ({_shown(other)})" if other else ""


def _shown(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def _staging(path: Path) -> bool:
    """A staging folder an interrupted export left (removed by the next one)."""
    return path.name.startswith(".export-") and path.is_dir() and not path.is_symlink()


def _stored_photo(view: ReferenceView) -> bytes | None:
    """A stored photo's bytes, or None where the file is gone."""
    try:
        return Path(view.image_path).read_bytes()
    except FileNotFoundError:
        return None


def export_rap(store: Store, folder: Path, missing: list[str] | None = None) -> Path:
    """Write folder/database.json and folder/database/<slug>-<hash>[-k].<ext>, the layout RAP reads. The files
    are written into a fresh folder beside them and then swapped in, so no stale file of an earlier export
    stays and nothing is written through a link that was there. A stored photo gone from the memory's folder, or
    damaged (its bytes no longer those its name is the hash of), is left out (with its concept, where it was the
    only one) and named in `missing` as "<name>: path" (" (damaged)" after it): the export is how the rest is
    saved, and a damaged photo exported would fail the import it is kept for."""
    missing = [] if missing is None else missing
    _check_export_folder(folder)
    refuse_unmounted(folder)
    made = missing_folders(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=folder))
    except OSError as e:
        remove_empty(made)
        raise EdgeRapError(f"{folder}: cannot export ({e.strerror})") from None
    try:
        images_dir = staging / "database"
        images_dir.mkdir()
        concept_dict, path_to_concept = {}, {}
        for concept in store.concepts():
            views, kept = store.views(concept.id), []
            stem = _file_stem(concept.name)
            files = []
            for view in views:
                rel = f"{stem}{'' if not files else f'-{len(files)}'}{Path(view.image_path).suffix}"
                data = _stored_photo(view)
                if data is None:
                    missing.append(f"<{concept.name}>: {view.image_path}")
                    continue
                if hashlib.sha256(data).hexdigest() != view.image_sha256:  # its name is its hash: the bytes changed
                    missing.append(f"<{concept.name}>: {view.image_path} (damaged)")
                    continue
                (images_dir / rel).write_bytes(data)
                files.append(f"./database/{rel}")
                kept.append(view)
            if not files:
                continue
            views = kept
            key = f"<{concept.name}>"
            entry = {"name": concept.name, "image": files[0] if files else "", "info": concept.description,
                     "category": concept.category}
            boxes = {v.box for v in views}  # the remembered regions (--box), which RAP's own format lacks
            if len(boxes) == 1 and None not in boxes:
                entry["box"] = next(iter(boxes)).as_list()
            elif len(boxes) > 1:  # regions that differ from photo to photo: one per photo, in order
                entry["boxes"] = [v.box.as_list() if v.box else None for v in views]
            faces = {f.image_sha256: f.box for f in store.views(concept.id, kind="face")}
            if faces:  # a person's face per photo, null where none is registered (one that shows none, or several)
                entry["faces"] = [faces[v.image_sha256].as_list() if v.image_sha256 in faces else None for v in views]
            if len(files) > 1:
                entry["extra_images"] = files[1:]
            concept_dict[key] = entry
            for f in files[:1]:
                path_to_concept[f] = key
        (staging / "database.json").write_text(json.dumps(
            {"concept_dict": concept_dict, "path_to_concept": path_to_concept}, indent=2, ensure_ascii=False) + "\n",
            encoding="utf-8")
        earlier = staging / "earlier"  # the earlier export's photos, deleted with the staging folder
        if (folder / "database").exists():
            os.rename(folder / "database", earlier)
        try:
            os.rename(images_dir, folder / "database")
        except OSError:
            if earlier.exists():
                os.rename(earlier, folder / "database")
            raise
        os.replace(staging / "database.json", folder / "database.json")
        made = []  # (exported: the folders it made stay)
    except OSError as e:
        raise EdgeRapError(f"{folder}: cannot export ({e.strerror or e})") from None
    finally:
        for stale in [staging, *filter(_staging, folder.iterdir())]:
            shutil.rmtree(stale, ignore_errors=True)
        remove_empty(made)  # a failed export's folders, left empty (a full disk left a new, empty export folder)
    return folder / "database.json"
