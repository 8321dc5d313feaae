"""Import and export RAP's own database format: database.json with concept_dict {"<name>": {name, image, info, category}}."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from edge_rap.errors import EdgeRapError
from edge_rap.memory.memory import Memory
from edge_rap.types import Box


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # the image file does not exist
    failed: dict[str, str] = field(default_factory=dict)  # name -> one-line reason
    skipped: list[str] = field(default_factory=list)  # already in memory

    def to_json(self) -> dict:
        return {"imported": self.imported, "missing": self.missing, "failed": self.failed, "skipped": self.skipped}


@dataclass(frozen=True)
class RapEntry:
    name: str
    images: list[Path]
    description: str
    category: str
    box: Box | None = None  # edge_rap's extension: the region of the photos that was remembered


def _paths(value, key: str, field_name: str, path: Path) -> list[str]:
    """A RAP image field: one path, a list of paths, or nothing."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise EdgeRapError(f"{path}: entry {key!r} has a {field_name} that is not a path or a list of paths")


def read_rap_database(path: Path) -> list[RapEntry]:
    """Entries of a RAP database.json; image paths are resolved against its folder."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EdgeRapError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise EdgeRapError(f"{path}: not a readable RAP database.json ({e})") from None
    concepts = raw.get("concept_dict") if isinstance(raw, dict) else None
    if not isinstance(concepts, dict):
        raise EdgeRapError(f"{path}: has no concept_dict (not a RAP database)")
    entries = []
    for key, value in concepts.items():
        if not isinstance(value, dict):
            raise EdgeRapError(f"{path}: entry {key!r} is not an object")
        images = [*_paths(value.get("image"), key, "image", path),
                  *_paths(value.get("extra_images"), key, "extra_images", path)]
        name = key.strip()
        name = name[1:-1] if name.startswith("<") and name.endswith(">") else name
        box = value.get("box")
        entries.append(RapEntry(name, [path.parent / i for i in images if i], str(value.get("info", "")),
                                str(value.get("category", "")), Box.parse(",".join(map(str, box))) if box else None))
    return entries


def import_rap(memory: Memory, path: Path, progress: Callable[[Iterable], Iterable] = iter) -> ImportReport:
    """Remember every entry whose images exist; report the missing and the unusable by name."""
    report = ImportReport()
    existing = {c.name for c in memory.concepts()}
    for entry in progress(read_rap_database(path)):
        if entry.name in existing:
            report.skipped.append(entry.name)
            continue
        present = [p for p in entry.images if p.is_file()]
        if not present:
            report.missing.append(entry.name)
            continue
        try:
            memory.remember(entry.name, present, entry.description, entry.category, entry.box)
            report.imported.append(entry.name)
        except EdgeRapError as e:
            report.failed[entry.name] = str(e)
    return report


def export_rap(memory: Memory, folder: Path) -> Path:
    """Write folder/database.json and folder/database/<name>[-k].<ext>, the layout RAP reads."""
    images_dir = folder / "database"
    try:
        images_dir.mkdir(parents=True, exist_ok=True)
        concept_dict, path_to_concept = {}, {}
        for concept in memory.concepts():
            files = []
            for k, view in enumerate(memory.store.views(concept.id)):
                # The first view flat, as RAP lays it out; the others in <name>.views/, which no other
                # concept's files can collide with (every file name is the full concept name + a suffix).
                suffix = Path(view.image_path).suffix
                rel = f"{concept.name}{suffix}" if k == 0 else f"{concept.name}.views/{k}{suffix}"
                (images_dir / rel).parent.mkdir(exist_ok=True)
                shutil.copyfile(view.image_path, images_dir / rel)
                files.append(f"./database/{rel}")
            key = f"<{concept.name}>"
            entry = {"name": concept.name, "image": files[0] if files else "", "info": concept.description,
                     "category": concept.category}
            boxes = {v.box for v in memory.store.views(concept.id)}
            if len(boxes) == 1 and None not in boxes:  # the remembered region (--box), which RAP's own format lacks
                entry["box"] = next(iter(boxes)).as_list()
            if len(files) > 1:
                entry["extra_images"] = files[1:]
            concept_dict[key] = entry
            for f in files[:1]:
                path_to_concept[f] = key
        out = folder / "database.json"
        tmp = folder / "database.json.tmp"
        tmp.write_text(json.dumps({"concept_dict": concept_dict, "path_to_concept": path_to_concept}, indent=2,
                                  ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, out)
    except OSError as e:
        raise EdgeRapError(f"{folder}: cannot export ({e.strerror})") from None
    return out
