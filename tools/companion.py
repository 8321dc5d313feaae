#!/usr/bin/env python3
"""The edge-rap companion: teach the device from a laptop over its HTTP API (`edge-rap serve`).

A single file that needs only httpx (`pip install httpx`), so it can be copied anywhere:

    companion.py --url http://device:8765 --token T list
    companion.py ... add bo bo1.jpg bo2.jpg --description "our Shiba Inu" --category dog
    companion.py ... add-photos bo bo3.jpg   # more photos of a concept the device has
    companion.py ... add gran party.jpg --category person --box 310,40,420,170   # the face meant, of those listed
    companion.py ... rename bo "Bo the dog"
    companion.py ... forget bo
    companion.py ... sync PATH          # a RAP database.json, or a folder with one subfolder of photos per concept
                                        # (photos outside it refused unless --allow-outside)
    companion.py ... events --since 1d

`edge-rap pair --json` on the device prints the URL and token (EDGE_RAP_URL and EDGE_RAP_TOKEN work too).
`sync` is idempotent: a concept is added once (its folder matched in any case), a photo already there (same
bytes) is not sent again, and a changed description or category is patched (a folder without description.txt
or category.txt leaves the device's as they are; a concept another client made meanwhile is synced as one
the device held); it removes nothing, a photo or folder deleted here stays on the
device (`forget` takes a concept off); photos go in batches the device takes, and one it refuses is
reported without keeping the others out; so is a concept whose folder or entry cannot be read (reported as
failed). A missing image, a refused photo or a failed concept makes the exit status 1, as import-rap's (done in
part: `add` and `add-photos` then name the files the device took). A file given twice, or a copy of one, is sent
once, and said so. Connection errors, 408, 429 and 503 are retried with backoff (but not a change's 503 without
Retry-After: the device's own trouble, the change perhaps done in part, as its message says; a busy line or a device
shutting down sends Retry-After); a device that answered 503 and then went (stopped mid-upload) is said so, with
nothing of that request stored; errors are one line (output that cannot be written too; a reader that leaves early,
`| head`, ends it quietly, exit status 141).
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import re
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".avif", ".tif", ".tiff", ".gif", ".bmp"}


#: The most photos the device takes in one request (`Limits.photos` of edge_rap/serve/api.py); more go in batches.
PHOTOS_PER_REQUEST = 16


class CompanionError(Exception):
    """One line for the user; exit status 2. `status`: the HTTP status that refused the request, if one did;
    `unanswered`: an earlier try of it reached the device but its answer was lost, so the device may have done
    what the refusal says cannot be done again."""

    def __init__(self, message: str, status: int | None = None, unanswered: bool = False):
        super().__init__(message)
        self.status = status
        self.unanswered = unanswered


#: Connection errors raised before a request could reach the device: a retry cannot repeat what it did.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass
class Entry:
    """A concept to have on the device: its photos (those that exist) and the ones named but missing."""

    name: str
    photos: list[Path]
    description: str | None = ""  # None: not given (a folder without the text file), the device's is kept
    category: str | None = ""
    missing: list[Path] = field(default_factory=list)
    problem: str = ""  # why it cannot be synced (a field that is not a path, unreadable text): reported as failed
    box: str = ""  # x0,y0,x1,y1 of what the photos show (a person's face in a group photo), "" for all of them


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    patched: list[str] = field(default_factory=list)
    photos_added: int = 0
    missing: list[str] = field(default_factory=list)  # "name (file)" for each image that is not there
    refused: dict[str, str] = field(default_factory=dict)  # "name/file" -> why the device refused that photo
    given_twice: dict[str, str] = field(default_factory=dict)  # "name/file" -> "name/file" given first, sent once
    sent: list[str] = field(default_factory=list)  # "name/file" of each photo the device took
    failed: dict[str, str] = field(default_factory=dict)


def _done_in_part(method: str, response: httpx.Response) -> bool:
    """A change answered 503 without Retry-After: the device's own trouble, not a busy line, and perhaps a change done
    in part (a rename whose events could not follow: its answer says so, and how to finish it). Not retried: the retry
    of that rename was a 404 for the old name, "no concept named 'bo'", the rename done and its message lost."""
    return response.status_code == 503 and method != "GET" and "retry-after" not in response.headers


class Device:
    """The API with retries: connection errors and 429/503 are retried with exponential backoff, and 408: the device
    closed a request that did not all come in time (a stalled upload), nothing of it done."""

    def __init__(self, url: str, token: str, retries: int = 4, backoff_s: float = 0.5, timeout_s: float = 120):
        if not url.startswith(("http://", "https://")):
            raise CompanionError(f"--url {url!r}: give the device as http://HOST:PORT (or https://)")
        self.client = httpx.Client(base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"},
                                   timeout=timeout_s)
        self.retries = retries
        self.backoff_s = backoff_s

    def request(self, method: str, path: str, ok: tuple[int, ...] = (200, 201, 204), **kwargs) -> httpx.Response:
        attempt, unanswered, stopping = 0, False, ""
        while True:
            wait = self.backoff_s * 2 ** attempt
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.TransportError as e:
                if attempt == self.retries:
                    raise _unreached(self.client.base_url, e, stopping if not unanswered else "") from None
                unanswered = unanswered or not isinstance(e, NOT_SENT)
            else:
                if response.status_code in ok:
                    return response
                said = f"{method} {path}: {response.status_code} {_error_of(response)}"
                if (response.status_code not in (408, 429, 503) or attempt == self.retries
                        or _done_in_part(method, response)):
                    raise CompanionError(f"{said}{_hint(response)}", response.status_code, unanswered)
                stopping = said if response.status_code == 503 else ""
                wait = max(wait, float(response.headers.get("retry-after", 0) or 0))
            time.sleep(wait)
            attempt += 1

    def answer(self, method: str, path: str, **kwargs):
        """The JSON a request answers; an answer that is not the device's JSON (another server at --url) is
        one line."""
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise CompanionError(f"{method} {path}: the answer is not JSON: is --url an edge-rap device?") from None

    def concepts(self) -> dict[str, dict]:
        listed = self.answer("GET", "/api/concepts")
        if not (isinstance(listed, list) and all(isinstance(c, dict) and "name" in c for c in listed)):
            raise CompanionError("GET /api/concepts: not a list of concepts: is --url an edge-rap device?")
        return {c["name"]: c for c in listed}

    def add(self, entry: Entry) -> dict:
        files = [("photo", (p.name, p.read_bytes(), "application/octet-stream")) for p in entry.photos]
        data = {"name": entry.name, "description": entry.description or "", "category": entry.category or ""}
        try:
            return self.answer("POST", "/api/concepts", data=data | ({"box": entry.box} if entry.box else {}),
                               files=files)
        except CompanionError as e:  # 409: the name taken, perhaps by this very request
            return self._done_before(e, 409, entry.name, files)

    def add_photos(self, name: str, photos: list[Path], box: str = "") -> dict:
        files = [("photo", (p.name, p.read_bytes(), "application/octet-stream")) for p in photos]
        try:
            return self.answer("POST", f"{concept_path(name)}/photos",
                               data={"box": box} if box else None, files=files)
        except CompanionError as e:  # 422: every photo already held, perhaps since this very request
            return self._done_before(e, 422, name, files)

    def _done_before(self, error: CompanionError, status: int, name: str, files: list) -> dict:
        """The concept, when `error` (a retry's refusal) is what an earlier try whose answer was lost would cause
        and the device holds every photo sent; else `error` is raised."""
        if error.status != status or not error.unanswered:
            raise error
        try:
            concept = self.answer("GET", concept_path(name))
        except CompanionError:
            raise error from None
        held = {p["sha256"] for p in concept.get("photos", [])}
        if not {hashlib.sha256(blob).hexdigest() for _, (_, blob, _) in files} <= held:
            raise error
        return concept

    def patch(self, name: str, **change) -> dict:
        return self.answer("PATCH", concept_path(name), json=change)

    def rename(self, name: str, new: str) -> tuple[str, dict]:
        """Rename a concept: its name as the device spelt it (asked first, as `forget` asks), and the concept. A retry
        whose first try renamed it (its answer lost: the old name now 404) is done: the concept NEW names is the one
        asked about, made when it was (not one another client forgot meanwhile, while NEW named another)."""
        before = self.answer("GET", concept_path(name))
        name = before["name"]
        try:
            return name, self.answer("PATCH", concept_path(name), json={"name": new})
        except CompanionError as e:
            if not (e.status == 404 and e.unanswered):
                raise
            try:
                after = self.answer("GET", concept_path(new))
            except CompanionError:
                raise e from None
            if after.get("created") != before.get("created"):
                raise e from None
            return name, after

    def forget(self, name: str) -> str:
        """Forget a concept; its name as the device spells it (`forget 'BO '` printed "forgot <BO >" for <bo>):
        asked first, as the device's answer to a forget is empty."""
        name = self.answer("GET", concept_path(name))["name"]
        try:
            self.request("DELETE", concept_path(name))
        except CompanionError as e:
            if not (e.status == 404 and e.unanswered):  # (gone: an earlier try forgot it)
                raise
        return name


def _unreached(url, error: httpx.TransportError, refused: str) -> CompanionError:
    """The device could not be reached at the last try. `refused`: the 503 that earlier tries of this request were
    answered (the device stopping, SIGTERM mid-upload), where no try since reached it: that answer is what is said
    ("cannot reach ... Connection refused" lost it), and that the device stored nothing of the request (a 503 is
    answered before its write, or for a write the closed memory undid)."""
    if refused:
        return CompanionError(f"{refused}; then it stopped ({type(error).__name__}): nothing of this "
                              "request was stored", 503)
    return CompanionError(f"cannot reach {url} ({type(error).__name__}: {error})")


#: The API's form fields its errors name, as this script's options (the device tells a phone "the box field").
_OPTIONS = {"the box field": "--box"}


def concept_path(name: str) -> str:
    """A concept's route, its name percent-encoded; `.` and `..` too, which a URL reads as its folder or the one
    above: `forget .` was a traceback (GET /api/concepts/ answered the list), `add-photos ..` a 404 blaming --url."""
    return "/api/concepts/" + (name.replace(".", "%2E") if name in (".", "..") else quote(name, safe=""))


def _error_of(response: httpx.Response) -> str:
    try:
        error = str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase
    for field_name, option in _OPTIONS.items():
        error = error.replace(field_name, option)
    return error


def _hint(response: httpx.Response) -> str:
    """What a 404 for a route (not for a concept: "no concept named ...") most likely means."""
    if response.status_code != 404 or _error_of(response) not in ("Not Found", response.reason_phrase):
        return ""
    return " (is --url the device's address, e.g. http://10.0.0.5:8765, without /api?)"


def _clean(name: str) -> str:
    name = name.strip()
    return name[1:-1].strip() if name.startswith("<") and name.endswith(">") else name


def read_entries(path: Path, allow_outside: bool = False) -> list[Entry]:
    """A RAP database.json (concept_dict: {"<name>": {image, extra_images, info, category}}), or a folder with
    one subfolder of photos per concept (an optional description.txt and category.txt in each). A photo outside
    the database's folder (absolute, `..`, a symlink) is its concept's problem unless `allow_outside`, as
    `edge-rap import-rap` has it: a database from elsewhere must not send this machine's other files."""
    if path.is_dir():  # hidden folders (.thumbnails, a NAS's @eaDir) are not concepts
        if _is_rap_database(path / "database.json"):
            raise CompanionError(f"{path}: a RAP database, not a folder per concept (sync {path / 'database.json'})")
        return [_folder_entry(sub, None if allow_outside else path) for sub in sorted(path.iterdir())
                if sub.is_dir() and sub.name[0] not in ".@"]
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # (a BOM: Windows Notepad saved it)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:  # (RecursionError: "[[[[...")
        raise CompanionError(f"{path}: cannot read it as a RAP database.json ({e})") from None
    concepts = data.get("concept_dict") if isinstance(data, dict) else None
    if not isinstance(concepts, dict):
        raise CompanionError(f"{path}: not a RAP database (no concept_dict)")
    return [_database_entry(_clean(key), value, path.parent, allow_outside) for key, value in concepts.items()]


def _is_rap_database(file: Path) -> bool:
    """Whether a folder's database.json is RAP's, naming a photo in a folder not named for its concept (its
    `database/`), in any case or spacing (not <Red Mug>'s red_mug/): the folder given, that one was synced as a
    concept, `database`, with every photo, even of a single concept. The rule `edge-rap eval` keeps too (this file
    runs without edge_rap). Another database.json, or one naming each concept's photos in that concept's folder,
    leaves the folder synced a concept per folder."""
    try:
        entries = read_entries(file) if file.is_file() else []
    except CompanionError:
        return False
    return any(_key(p.parent.name) != _key(e.name) for e in entries for p in [*e.photos, *e.missing])


def _outside(photos: list[Path], folder: Path | None) -> str | None:
    """The problem of the first photo outside `folder` once `..` and symlinks are followed (None: none is, or no
    folder to keep to)."""
    photo = next((p for p in photos if folder and not p.resolve().is_relative_to(folder.resolve())), None)
    return photo and f"{photo} is outside {folder} (--allow-outside sends it)"


def _database_entry(name: str, value, folder: Path, allow_outside: bool = False) -> Entry:
    """One concept_dict entry; an image field that is not a path or a list of them is its problem, as is one
    outside `folder` unless `allow_outside`."""
    value = value if isinstance(value, dict) else {}
    images = []
    for field_name in ("image", "extra_images"):
        item = value.get(field_name)
        if not isinstance(item, (str, list, type(None))):
            return Entry(name, [], problem=f"its {field_name} is not a path or a list of paths")
        images += [item] if isinstance(item, str) else [i for i in item or [] if isinstance(i, str)]
    texts = {f: value.get(f) or "" for f in ("info", "category")}  # absent or null: empty, as import-rap reads it
    for field_name, text in texts.items():
        if not isinstance(text, str):
            return Entry(name, [], problem=f"its {field_name} {json.dumps(text)[:40]} is not text")
    files = [folder / i for i in images if i]
    outside = _outside(files, None if allow_outside else folder)
    if outside:
        return Entry(name, [], problem=outside)
    return Entry(name, [f for f in files if f.is_file()], texts["info"], texts["category"],
                 [f for f in files if not f.is_file()])


def _folder_entry(folder: Path, within: Path | None = None) -> Entry:
    """A concept folder's photos and texts; one that cannot be read, or a photo outside `within` (a symlink out of
    an unpacked download), carries its problem, so that the other folders are still synced."""
    def text(name: str) -> str | None:
        file = folder / name
        try:
            return file.read_text(encoding="utf-8").strip() if file.is_file() else None
        except UnicodeDecodeError:
            raise CompanionError(f"its {name} is not UTF-8 text") from None

    try:
        photos = sorted(p for p in folder.iterdir()
                        if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES and not p.name.startswith("."))
        outside = _outside(photos, within)
        if outside:
            return Entry(folder.name, [], problem=outside)
        return Entry(folder.name, photos, text("description.txt"), text("category.txt"))
    except CompanionError as e:
        return Entry(folder.name, [], problem=str(e))
    except OSError as e:
        return Entry(folder.name, [], problem=f"cannot read {e.filename} ({e.strerror})")


def _as_stored(text: str) -> str:
    """Text as the device keeps it (whitespace collapsed, control characters dropped): what to compare with."""
    return "".join(c for c in " ".join(text.split()) if unicodedata.category(c)[0] != "C")


def _key(name: str) -> str:
    """A name as the device compares names (edge_rap.memory.store.name_key; this script runs without the
    package): one name in any case, Unicode spelling (macOS writes folder names decomposed), width, spacing,
    apostrophe (a laptop's "Zoë's mug/", "Zoë´s mug/" or "Zoë`s mug/", is the "Zoë’s mug" a phone remembered) or
    joiners and emoji selectors."""
    apostrophes = str.maketrans("\u2019\u2018\u02bc\u00b4`\u1ffd\u2032", "'''''''")  # before NFKC too: it splits "´"
    folded = unicodedata.normalize("NFKC", name.translate(apostrophes)).casefold().translate(apostrophes)
    return re.sub(r"[\s_\-.\u200c\u200d\ufe0e\ufe0f\u0307]+", "", folded)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Progress:
    """A bar on stderr when it is a terminal; silent otherwise (logs and pipes get the summary only)."""

    def __init__(self, total: int, label: str):
        self.total, self.label, self.done = total, label, 0
        self.shown = sys.stderr.isatty()

    def step(self, what: str) -> None:
        self.done += 1
        if self.shown:
            filled = int(30 * self.done / max(1, self.total))
            print(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {what[:30]:30}",
                  end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.shown:
            print(file=sys.stderr)


def sync(device: Device, entries: list[Entry]) -> SyncReport:
    """Make the device hold every entry: add what is new, send photos it lacks, patch changed text."""
    report = SyncReport()
    have = device.concepts()
    alike: dict[str, list[str]] = {}
    for name in have:
        alike.setdefault(_key(name), []).append(name)
    progress = Progress(len(entries), "sync")
    for entry in entries:
        progress.step(entry.name)
        if entry.problem:
            report.failed[entry.name] = entry.problem
            continue
        report.missing += [f"{entry.name} ({m.name})" for m in entry.missing]
        try:
            _sync_one(device, entry, _on_device(entry.name, have, alike), report)
        except CompanionError as e:
            report.failed[entry.name] = str(e)
    progress.close()
    return report


def _on_device(name: str, have: dict[str, dict], alike: dict[str, list[str]]) -> dict | None:
    """The device's concept for a local name: its very name first, else the one name said alike (a device
    memory made before such names were one may hold two: then which is meant is not guessed)."""
    if name in have:
        return have[name]
    names = alike.get(_key(name), [])
    if len(names) > 1:
        raise CompanionError(f"the device holds {' and '.join(repr(n) for n in names)}: name the folder as one of them")
    return have[names[0]] if names else None


def _sync_one(device: Device, entry: Entry, current: dict | None, report: SyncReport) -> None:
    if current is None:
        current = _add_or_held(device, entry, report) if entry.photos else None
        if current is None:
            return
    name = current["name"]  # as the device spells it
    change = {k: v for k, v in (("description", entry.description), ("category", entry.category))
              if v is not None and _as_stored(v) != current[k]}
    if change:
        device.patch(name, **change)
        report.patched.append(entry.name)
    stored = {p["sha256"] for p in current["photos"]}
    fresh = [p for p in entry.photos if _sha256(p) not in stored]
    if fresh:
        send_photos(device, Entry(entry.name, []), fresh, report, new=False, to=name)  # reported by the folder's name


def _add_or_held(device: Device, entry: Entry, report: SyncReport, again: bool = False) -> dict | None:
    """Add a concept not listed: None once added, or the device's concept where another client made it since the
    list was read (409: two syncs at once), to be synced as held. One forgotten between that 409 and reading it
    (404) is added again, once: it is in the folder, so it is wanted (a rerun added it, after "failed")."""
    try:
        send_photos(device, entry, entry.photos, report, new=True)
        return None
    except CompanionError as e:
        if e.status != 409:
            raise
    try:
        return device.answer("GET", concept_path(entry.name))
    except CompanionError as e:
        if e.status != 404 or again:
            raise
    return _add_or_held(device, entry, report, again=True)


def send_photos(device: Device, entry: Entry, photos: list[Path], report: SyncReport, new: bool,
                to: str | None = None) -> dict | None:
    """Send photos (each file's bytes once) in batches the device takes, the first creating the concept when
    `new`, else added to the concept `to` (default: `entry`'s name, which names them in `report`). A batch refused
    for a photo (not an image, too large, no detail, over the body limit) is sent again one photo at a time, so one
    bad photo keeps no other out; each refused photo is in `report.refused`, one the device already holds is
    skipped, each taken in `report.sent`, even when a later batch fails. Returns the concept as the device last
    answered, or None when nothing was sent."""
    unique = _once(entry.name, photos, report)
    pending = [unique[i:i + PHOTOS_PER_REQUEST] for i in range(0, len(unique), PHOTOS_PER_REQUEST)]
    concept = None
    try:
        while pending:
            batch = pending.pop(0)
            try:
                if new and concept is None:
                    concept = device.add(Entry(entry.name, batch, entry.description, entry.category, box=entry.box))
                else:
                    concept = device.add_photos(concept["name"] if concept else to or entry.name, batch, entry.box)
            except CompanionError as e:
                why = str(e).split(f": {e.status} ", 1)[-1]
                held = why.startswith("every photo given is already a view")
                if e.status not in (413, 415, 422) or not (why.startswith("photo ") or held or e.status == 413):
                    raise  # about the concept (its name, its existence): the caller's to report
                if len(batch) > 1:
                    pending[:0] = [[p] for p in batch]
                elif not held:  # (the device's "nothing was changed" is of this photo's request alone)
                    why = _unlabelled(why, batch[0].name).removesuffix("; nothing was changed")
                    report.refused[f"{entry.name}/{batch[0].name}"] = why
                continue
            report.photos_added += len(batch)
            report.sent += [f"{entry.name}/{p.name}" for p in batch]
    finally:
        if new and concept is not None:
            report.added.append(entry.name)
    return concept


def _once(name: str, photos: list[Path], report: SyncReport) -> list[Path]:
    """Each file's bytes once: a file given twice, or a copy of one given, goes in `report.given_twice` (it was
    sent once silently)."""
    first: dict[str, Path] = {}
    for photo in photos:
        digest = _sha256(photo)
        if digest in first:
            report.given_twice[f"{name}/{photo.name}"] = f"{name}/{first[digest].name}"
        first.setdefault(digest, photo)
    return list(first.values())


def _unlabelled(why: str, name: str) -> str:
    """A one-photo request's refusal without the device's label for its photo: the report names the file, and
    "refused bo/c.jpg: photo 1 (c.jpg): corrupt ..." said "photo 1" of the third file given (sent alone, its
    batch refused). The name as the device read it may differ from the file's: httpx sends a '"' or a control
    character in it %-encoded (`q"t.jpg` was "refused bo/q"t.jpg: (q%22t.jpg): corrupt ...")."""
    for label in (f"photo 1 ({name})", "photo 1"):
        if why.startswith(label) and why[len(label):len(label) + 1] in (":", " "):
            if label == "photo 1" and why.startswith("photo 1 (") and "): " in why:
                return why.split("): ", 1)[1]  # (a name sent encoded)
            return why[len(label):].removeprefix(":").lstrip()
    return why


BOX_HELP = ("the region the photos show, in their pixels: for a person's photo with several faces, the face "
            "meant (the device's answer lists them)")


def build_parser() -> argparse.ArgumentParser:
    # options by their whole names only, as edge-rap takes them: an abbreviation a script used changed meaning, or
    # broke, when an option with the same start was added
    parser = argparse.ArgumentParser(prog="companion.py", description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--url", default=os.environ.get("EDGE_RAP_URL"),
                        help="the device, e.g. http://10.0.0.5:8765 (default $EDGE_RAP_URL)")
    parser.add_argument("--token", default=os.environ.get("EDGE_RAP_TOKEN"),
                        help="from `edge-rap pair` on the device (default $EDGE_RAP_TOKEN)")
    parser.add_argument("--retries", type=int, default=4, metavar="N",
                        help="retries of a request on connection errors, 408, 429 and 503 (default 4; a device that "
                        "answered 503, then went, is said to have stopped, nothing of that request stored)")
    json_help = "print JSON: the concept (add, add-photos: with the files \"sent\", \"refused\" and \"given_twice\"; " \
                "rename's with its \"old\" name), the concepts, the sync report, the events, or the name forgotten"
    parser.add_argument("--json", action="store_true", help=json_help)
    # --json after the command too, where edge-rap's own commands take it ("list --json" was a usage error)
    after = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    after.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=json_help)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, **more) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[after], allow_abbrev=False, **more)

    command("list", "the concepts on the device")
    for name, text in (("add", "add a concept with its photos"), ("add-photos", "more photos of a concept the "
                                                                               "device has")):
        p = command(name, text, description=text)
        p.add_argument("name", help="the concept's name" if name == "add" else "a concept the device has")
        p.add_argument("photos", nargs="+", type=Path, metavar="PHOTO", help="its photo(s)")
        if name == "add":
            p.add_argument("--description", default="", help="what it is, in a sentence")
            p.add_argument("--category", default="", help="e.g. person, dog, mug (a person's also registers the "
                           "face)")
        p.add_argument("--box", metavar="X0,Y0,X1,Y1", help=BOX_HELP)
    p = command("rename", "give a concept another name (its photos and sightings keep to it)")
    p.add_argument("name", help="a concept the device has")
    p.add_argument("new", metavar="NEW", help="its new name")
    command("forget", "forget a concept (its photos and sightings go too)").add_argument(
        "name", help="a concept the device has")
    p = command("sync", "a RAP database.json or a folder of concept folders")
    p.add_argument("path", type=Path, help="a RAP database.json, or a folder with one subfolder of photos per concept")
    p.add_argument("--allow-outside", action="store_true", help="send photos outside its folder too (absolute paths, "
                   "`..`, symlinks out of it), as import-rap's --allow-outside: refused by default, so that a database "
                   "from elsewhere cannot send this machine's other files")
    p = command("events", "who was seen, when")
    p.add_argument("--since", help="30s, 10m, 2h, 1d, 1w or an ISO date-time")
    p.add_argument("--until", help="as --since: only the events before then")
    p.add_argument("--name", help="only the events about this concept")
    return parser


class OutputError(OSError):
    """stdout cannot take the output (`> /dev/full`): told apart from an OSError of the command's own (a photo)."""


class GuardedOutput:
    """`stream` whose failed writes and flushes raise OutputError; a reader that left stays BrokenPipeError."""

    def __init__(self, stream):
        self._stream = stream

    def _guarded(self, call, *args):
        try:
            return call(*args)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(e.errno, e.strerror or str(e)) from e

    def write(self, text: str) -> int:
        return self._guarded(self._stream.write, text)

    def flush(self) -> None:
        self._guarded(self._stream.flush)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stdout = sys.stdout
    # a console not in UTF-8 (PYTHONIOENCODING=ascii, a Windows pipe's cp1252) writes what it lacks as escapes, as
    # edge-rap does: a name's emoji in `list` or `events` was a UnicodeEncodeError's traceback
    if callable(getattr(stdout, "reconfigure", None)):
        stdout.reconfigure(errors="backslashreplace")
    sys.stdout = output = GuardedOutput(stdout)
    try:
        token = _token(args.token or "")
        if not args.url or not token:
            raise CompanionError("--url and --token are needed (`edge-rap pair --json` on the device prints both)")
        # (add's NAME: the device's)
        options = ("box", "since", "until", "name") if args.command == "events" else ("box",)
        # "$UNSET": not the whole photo for the face meant, nor every event; a NAME in the path, no concept at all:
        # `forget ""` was "GET /api/concepts/: 307 Temporary Redirect", `add-photos ""` a 404 blaming --url
        named = {"NAME": args.name} if args.command in ("add-photos", "rename", "forget") else {}
        for option, value in {**{f"--{o}": getattr(args, o, None) for o in options}, **named}.items():
            if value is not None and not value.strip():
                raise CompanionError(f"{option} {value!r} is empty (an unset variable?)")
        _refuse_unsendable(args)
        code = _run(args, Device(args.url, token, retries=max(0, args.retries)))
        output.flush()  # a reader that left, or a full disk, shows here, not as a traceback at exit
        return code
    except CompanionError as e:
        print(f"companion: {_shown(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("companion: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`| head`): stop quietly, as other command-line tools do
        _drop_output(stdout)
        return 141
    except OutputError as e:
        print(f"companion: cannot write the output ({e.strerror})", file=sys.stderr)
        _drop_output(stdout)
        return 2
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:
            raise  # a bug: loudly
        # a path given longer than the file system takes: Path.is_file() raises for it (Python 3.11), as edge-rap
        print(f"companion: {_shown(str(e.filename or 'a path given'))}: {e.strerror}", file=sys.stderr)
        return 2
    finally:
        sys.stdout = stdout


def _drop_output(stdout) -> None:
    """Point stdout at /dev/null: nothing is left to fail when the interpreter flushes it at exit."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())


def _run(args, device: Device) -> int:
    if args.command == "list":
        concepts = list(device.concepts().values())
        if args.json:
            print(json.dumps(concepts))
        for c in [] if args.json else concepts:
            category = f" [{_shown(c['category'])}]" if c["category"] else ""
            about = f": {_shown(c['description'])}" if c["description"] else ""
            print(f"<{_shown(c['name'])}>{category} {_photos(c['views'])}{about}")
        if not concepts and not args.json:  # said, as `edge-rap concepts` says it: no output read as a failure
            print("no concepts remembered yet")
    elif args.command in ("add", "add-photos"):
        unsendable = [f"{p}: {why}" for p in args.photos if (why := _not_a_photo_file(p))]
        if unsendable:
            raise CompanionError("; ".join(unsendable))
        new = args.command == "add"
        entry = Entry(args.name, args.photos, getattr(args, "description", ""), getattr(args, "category", ""),
                      box=args.box or "")
        report = SyncReport()
        try:
            concept = send_photos(device, entry, args.photos, report, new=new)
        except CompanionError as e:
            if not report.sent:
                raise
            _print_photos(report, args.json, None, args.name)  # what earlier batches added: done in part
            print(f"companion: {_shown(str(e))}", file=sys.stderr)
            return 1
        if concept is None:
            refused = "; ".join(f"{k}: {v}" for k, v in report.refused.items())
            raise CompanionError(f"{refused}; nothing was changed" if refused
                                 else f"every photo given is already a photo of <{args.name}>")
        _print_photos(report, args.json, concept, args.name, "added" if new else "now")
        return 1 if report.refused else 0
    elif args.command == "rename":
        old, concept = device.rename(args.name, args.new)
        said = (f"renamed <{_shown(old)}> to <{_shown(concept['name'])}>" if old != concept["name"]
                else f"<{_shown(old)}> is already named so: nothing changed")  # (as `edge-rap rename` says it)
        print(json.dumps({"old": old, **concept}) if args.json else said)
    elif args.command == "forget":
        name = device.forget(args.name)
        print(json.dumps({"name": name}) if args.json else f"forgot <{_shown(name)}>")
    elif args.command == "sync":
        if not args.path.exists():
            raise CompanionError(f"{args.path}: no such file or folder")
        report = sync(device, read_entries(args.path, args.allow_outside))
        _print_report(report, args.json)
        return 1 if report.failed or report.refused or report.missing else 0  # as import-rap: what was not sent
    elif args.command == "events":
        params = {k: v for k, v in (("since", args.since), ("until", args.until), ("name", args.name)) if v}
        events = device.answer("GET", "/api/events", params=params)
        if args.json:
            print(json.dumps(events))
        for e in [] if args.json else events:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["wall"]))
            said = f": {_shown(e['said'])}" if e.get("said") else ""
            print(f"{when} [{_shown(e['camera'])}] <{_shown(e['name'])}> {e['type']}{said}")
        if not events and not args.json:  # as `edge-rap events` says it
            print("no events")
    return 0


def _not_a_photo_file(path: Path) -> str | None:
    """Why `path` cannot be sent as a photo, said as the device's own commands say it (a folder given for a photo
    was "no such photo", which it is not), or None."""
    if path.is_file():
        return None
    if path.is_dir():
        return "is a folder, not a photo"
    return "no such photo" if not path.exists() else "is a pipe, a socket or a device, not a photo file"


def _refuse_unsendable(args: argparse.Namespace) -> None:
    """A text argument that is no UTF-8 (a Latin-1 terminal's "é", a raw "\\x9b" byte: Python keeps it as a lone
    surrogate) cannot be sent: httpx raised UnicodeEncodeError, a traceback, not the one line of every error."""
    for value in [v for v in vars(args).values() if isinstance(v, str)]:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise CompanionError(f"{value!r} is not UTF-8 text (is the terminal set to UTF-8?)") from None


def _token(given: str) -> str:
    """The token as sent: a pasted one's surrounding spaces or line break dropped (they were "cannot reach the
    device", an illegal header value, with the token printed); one no header can carry (a letter not ASCII, a
    control character: a traceback) refused in one line that does not print it."""
    token = given.strip()
    if any(not (c.isascii() and c.isprintable()) for c in token):
        raise CompanionError("--token: not a device token, which is ASCII letters and digits (`edge-rap pair --json` "
                             "on the device prints it)")
    return token


def _shown(text: str) -> str:
    """Text from a folder, a database or the device (a memory older than its name rules, a device that is not
    ours) as printed: as it is where every character prints, else quoted with its control characters escaped, so
    that it stays on its line and sends the terminal no escape sequence."""
    return text if text.isprintable() else repr(text)


def _photos(n: int) -> str:
    """ "1 photo", "2 photos" (this script runs where edge_rap, and its wording module, is not installed)."""
    return f"{n} photo" if n == 1 else f"{n} photos"


def _print_photos(report: SyncReport, as_json: bool, concept: dict | None, name: str, done: str = "") -> None:
    """What add or add-photos did: the concept (JSON: with the files `sent`, `refused` and `given_twice`); where a
    photo was refused, or the request ended early, which files the device took; then what was not sent, on stderr."""
    def file(key: str) -> str:  # a report's "name/file" as the file given
        return key.removeprefix(f"{name}/")

    sent = [file(key) for key in report.sent]
    if as_json:
        print(json.dumps({**(concept or {}), "sent": sent, "refused": {file(k): v for k, v in report.refused.items()},
                          "given_twice": {file(k): file(v) for k, v in report.given_twice.items()}}))
    elif concept is not None:
        taken = f": sent {', '.join(map(_shown, sent))}" if report.refused else ""
        print(f"{done} <{_shown(concept['name'])}> ({_photos(concept['views'])}){taken}")
    else:
        print(f"sent {_photos(len(sent))} to <{_shown(name)}> before the error below: {', '.join(map(_shown, sent))}")
    _print_not_sent(report)


def _print_not_sent(report: SyncReport) -> None:
    """On stderr, as import-rap says it: each photo given twice (sent once), each refused."""
    for photo, first in report.given_twice.items():
        said = "given twice" if photo == first else f"the same photo as {_shown(first)}"
        print(f"not sent again: {_shown(photo)} ({said}: sent once)", file=sys.stderr)
    for photo, why in report.refused.items():
        print(f"refused {_shown(photo)}: {_shown(why)}", file=sys.stderr)


def _print_report(report: SyncReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.__dict__))
        return
    concepts = "concept" if len(report.added) == 1 else "concepts"
    print(f"added {len(report.added)} {concepts}, patched {len(report.patched)}, sent {_photos(report.photos_added)}")
    if report.missing:  # what was not sent on stderr, as import-rap says it: stdout is what was done
        print(f"missing images, not sent ({len(report.missing)}): {', '.join(map(_shown, report.missing))}",
              file=sys.stderr)
    _print_not_sent(report)
    for name, why in report.failed.items():
        print(f"failed <{_shown(name)}>: {_shown(why)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
