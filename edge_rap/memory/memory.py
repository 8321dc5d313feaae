"""The household's memory: remember, edit, rename and forget concepts, keeping store and index in step."""

from __future__ import annotations

import contextlib
import logging
import re
import time
import unicodedata
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable
from pathlib import Path

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.kinds import is_person
from edge_rap.memory.index import IndexView, IndexWriter
from edge_rap.memory.reindexed import Reindexed, UnreadablePhoto
from edge_rap.memory.store import ADD_INSTEAD, JOINERS, DiskFullError, Store, is_control, new_name
from edge_rap.output import quoted
from edge_rap.perceive.images import ImageFile, crop, decoded_size, read_image_file, require_croppable, scale_box
from edge_rap.perceive.embed import ImageEmbedder, SpaceInfo
from edge_rap.perceive.faces import FACE_SPACE, FaceChoiceError, FaceModels
from edge_rap.perceive.regions import reference_cells
from edge_rap.perceive.views import augmented_views
from edge_rap.sqlite_threads import truncate_wal
from edge_rap.types import Box, Concept, Image, ReferenceView

if TYPE_CHECKING:  # retrieval's, handed in: storage keeps the bank's statistics, not its rules
    from edge_rap.retrieve.negatives import NegativeBank

log = logging.getLogger(__name__)

MAX_DESCRIPTION = 2000
#: A reference photo (or its box) needs this many pixels per side, and this much spread of some colour channel
#: (0-255): a uniform or tiny photo holds nothing to recognise and matches unrelated photos instead. A box as plain
#: as a wall or a table top is refused too: under MIN_BOX_SPREAD (a JPEG's noise spreads 2-8) and under
#: PLAIN_SHARE of its photo's own spread, such a box matched other things' regions as often as a uniform one does
#: (docs/BENCHMARKS.md): at 2.0 it was taken, and then seen in the blank parts of every frame. A photo taken at
#: night spreads as little, whole or boxed, but its detail is dim, not missing: it matches its own thing, not others.
MIN_SIDE = 16
MIN_SPREAD = 2.0
MIN_BOX_SPREAD = 8.0
PLAIN_SHARE = 0.25


def _relative(image_path: str) -> str:
    """A stored photo's path relative to images/ (its two-character folder and file name)."""
    path = Path(image_path)
    return f"{path.parent.name}/{path.name}"


def detail_spread(pixels: np.ndarray) -> float:
    """The largest colour channel's standard deviation (0-255), of a sample: enough to tell a uniform photo."""
    step = max(1, min(pixels.shape[:2]) // 256)
    return float(pixels[::step, ::step].reshape(-1, pixels.shape[-1]).std(axis=0).max())


def require_detail(pixels: np.ndarray, what: str, size: tuple[int, int] | None = None,
                   photo: np.ndarray | None = None) -> None:
    """Refuse a featureless reference (uniform, or a few pixels), naming the photo and why; `size` is the
    file's (width, height) where it was decoded reduced, the size the user knows; `photo`: the whole photo that
    `pixels` are a box of, beside which a box may be plain (a table top in a photo, not a photo taken at night)."""
    h, w = pixels.shape[:2]
    if min(h, w) < MIN_SIDE:
        shown_w, shown_h = size or (w, h)
        raise EdgeRapError(f"{what} has no detail ({shown_w} x {shown_h} pixels; a reference needs {MIN_SIDE} "
                           "per side)")
    spread = detail_spread(pixels)
    plain = photo is not None and spread < MIN_BOX_SPREAD and spread < PLAIN_SHARE * detail_spread(photo)
    if spread < MIN_SPREAD or plain:
        raise EdgeRapError(f"{what} has no detail (uniform): it would match unrelated photos")


@dataclass(frozen=True)
class PreparedView:
    """A reference photo read, hashed and embedded (all views), ready to be written in one transaction."""

    file: ImageFile
    box: Box | None
    augments: list[str]
    vectors: np.ndarray
    face: Box | None = None  # the person's face, in the file's pixels
    face_vectors: np.ndarray | None = None  # the face and its mirror image, in the face space
    cells: np.ndarray | None = None  # its dense-matching cells, for embedders with a feature map
    whole_box: Box | None = None  # the box given, where it held the whole photo (`box` is then None)


#: A terminal escape sequence, whole (ECMA-48): CSI ("\x1b[31m"), a string (OSC "\x1b]0;title\x07", DCS, APC, ...)
#: to its terminator, or ESC and the characters that end one ("\x1b(B", "\x1bc"); 8-bit CSI and strings too. An
#: unterminated string keeps its text (its ESC and introducer dropped). Dropping only the ESC left "[31m" in the text.
#: A C1 control ends a string as ESC does (a terminal's parser aborts one there): it also keeps the match linear, where
#: each of 32,000 "\x90" (one 64 KiB PATCH) scanned to the end for a terminator, 12 s of the CPU.
TERMINAL_ESCAPE = re.compile(r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"
                             r"|(?:\x1b[]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x80-\x9f]*(?:\x07|\x1b\\|\x9c)"
                             r"|\x1b[\x21-\x2f]*[\x30-\x7e]")  # (not ESC and a space: "bo\x1b is" kept its "i")


def clean_text(text: str, what: str, limit: int) -> str:
    """One line of printable text: whitespace collapsed, terminal escape sequences and control characters dropped,
    but not the joiners an emoji sequence or a script needs ("👨‍👩‍👧", "ශ්‍රී": store.JOINERS). One of control
    characters only is refused, as a name is: it cleared the text, answered as a change. So is a lone surrogate, the
    byte a terminal in another encoding sent (Latin-1's "é"), as a name refuses it: dropped, "café" was "caf"."""
    given = text
    surrogate = next((c for c in text if unicodedata.category(c) == "Cs"), None)
    if surrogate is not None:
        raise EdgeRapError(f"{what} {_excerpt(given)} has a character that is not allowed: {quoted(surrogate)} "
                           "(not UTF-8: is the terminal set to UTF-8?)")
    text = " ".join(TERMINAL_ESCAPE.sub("", text).split())
    text = "".join(c for k, c in enumerate(text) if c in JOINERS or not is_control(text, k))
    text = "".join(c for k, c in enumerate(text) if not is_control(text, k))  # the joiners that left stray
    text = " ".join(text.split())  # the spaces those stood between ("\u200b \u200b" kept " ", "a \u200b b" two)
    if not text and given and not given.isspace():  # (white space alone, a no-break space too, clears it)
        raise EdgeRapError(f'{what} {_excerpt(given)} is only control characters (an empty one, "", clears it)')
    if len(text) > limit:
        raise EdgeRapError(f"{what} is {len(text)} characters; the limit is {limit}")
    return text


def _excerpt(given: str, most: int = 24) -> str:
    """Text refused, quoted in its error: its start, escaped, and its length where cut (64 KiB of "\x90" given to
    `edit --description` was quoted whole, a line of 180 KB)."""
    return quoted(given) if len(given) <= most else f"{quoted(given[:most])}… ({len(given)} characters)"


def distinct_views(prepared: list[PreparedView], name: str, held: set = frozenset()) -> list[PreparedView]:
    """The photos that are new views: one given twice, or already a view of the concept with the same box, would
    only repeat its vectors (`held`: the concept's (sha256, box) pairs). Said for each beside the new ones; none new
    is an error, said in its one line alone."""
    seen, kept, skipped = set(held), [], []
    for view in prepared:
        key = (view.file.sha256, view.box)
        (skipped if key in seen else kept).append(view)
        seen.add(key)
    if not kept:
        raise EdgeRapError(f"every photo given is already a view of <{name}>; nothing was changed")
    for view in skipped:
        log.warning("%s is already a view of <%s>: skipped", view.file.image.source, name)
    return kept


class Memory:
    """Concepts on disk (SQLite + images + USearch per space) and the embedder that makes their vectors."""

    def __init__(self, root: Path, embedder: ImageEmbedder | None = None, negatives: NegativeBank | None = None,
                 readonly: bool = False, faces: Callable[[], FaceModels | None] | None = None):
        self.root = root
        self._faces_loader = faces
        self._faces: FaceModels | None = None
        self.store = Store(root, readonly=readonly)
        self.embedder = embedder
        self.negatives = negatives
        self.writer = IndexWriter(self.store)

    def close(self) -> None:
        self.store.close()

    @property
    def faces(self) -> FaceModels | None:
        """The face models, loaded on first need (remembering a person), or None where they are not installed."""
        if self._faces is None and self._faces_loader is not None:
            self._faces = self._faces_loader()
            self._faces_loader = None
        return self._faces

    def _need_embedder(self) -> ImageEmbedder:
        if self.embedder is None:
            raise EdgeRapError("this operation needs an embedder")
        return self.embedder

    # --- reading ----------------------------------------------------------------------------------

    def concepts(self) -> list[Concept]:
        return self.store.concepts()

    def get(self, name: str) -> Concept:
        return self.store.get(name)

    def view(self) -> IndexView:
        """A reader's view of the current embedder's index, re-mapped when writers change it."""
        return IndexView(self.store, self._need_embedder().space.name, self._need_embedder().space)

    # --- writing ----------------------------------------------------------------------------------

    def prepare(self, path: str | Path, box: Box | None = None, person: bool = False,
                face: Box | None = None, like: np.ndarray | None = None) -> PreparedView:
        """Read and embed one reference photo (all its augmented views, and a person's face) before any write.
        `face`: where a person's face is (its box, as an export lists it), where not the one face of `box`;
        `like`: the person's registered faces, to find theirs among several."""
        file = read_image_file(path)
        given, box = box, _region_of(box, file.image.size)
        if person and box is None and face is None and like is not None:
            box = self._their_face(file.image, like)
        region = crop(file.image, box) if box else file.image
        require_detail(region.pixels, f"{path}" + (" (its box)" if box else ""), region.size,
                       file.image.pixels if box else None)
        views = augmented_views(region.pixels)
        vectors = self._need_embedder().embed([v for _, v in views])
        prepared = PreparedView(file, box, [name for name, _ in views], vectors, cells=self._cells(region.pixels),
                                whole_box=given if given is not None and box is None else None)
        if person and self.faces is not None:
            face, vectors = self._face(file.image, face or box, like)
            prepared = replace(prepared, face=face, face_vectors=vectors)
        return prepared

    def _cells(self, pixels: np.ndarray) -> np.ndarray | None:
        """A photo's dense-matching cells, stored with its vectors so that no reader re-derives them."""
        embedder = self._need_embedder()
        return reference_cells(embedder, pixels) if getattr(embedder, "has_feature_map", False) else None

    def _their_face(self, image: Image, like: np.ndarray) -> Box | None:
        """In a group photo added to someone known, their face (in the file's pixels) as the region of the view, as
        if its --box had been given: the whole group would be taken for them, and would be every other person's
        photo too, refused to each of them after the first. None for a photo of one face (kept whole)."""
        face = self.faces.theirs(image.pixels, like) if self.faces is not None else None
        return scale_box(face.box, decoded_size(image), image.size) if face is not None else None

    def _face(self, image: Image, box: Box | None, like: np.ndarray | None = None) -> tuple[Box, np.ndarray]:
        """The one face of a person's photo (or the one inside `box`, or the one clearly theirs of several when
        `like` holds their registered faces): its box in the file's pixels, and the vectors of it and of its
        mirror image."""
        decoded = decoded_size(image)
        face, vector = self.faces.one_face(image.pixels, image.source, box, image.size, like)
        return scale_box(face.box, decoded, image.size), self.faces.with_mirror(image.pixels, face, vector)

    def remember(self, name: str, images: list[str | Path], description: str = "", category: str = "",
                 box: Box | None = None, boxes: list[Box | None] | None = None,
                 faces: list[Box | None] | None = None) -> Concept:
        """A new concept from one or more photos; usable by every reader as soon as this returns. `box`: the
        region of every photo; `boxes`: one per photo instead (an import of views remembered with different
        regions). `faces`: for a person, each photo's registered face, None where none was (an import of a
        person whose photos include one with no face or several: `edit --category` leaves those out)."""
        name = new_name(name)
        description = clean_text(description, "description", MAX_DESCRIPTION)
        category = clean_text(category, "category", 64)
        if not images:
            raise EdgeRapError("remember needs at least one image")
        boxes = [box] * len(images) if boxes is None else boxes
        with_face = [is_person(category)] * len(images) if faces is None else [
            is_person(category) and f is not None for f in faces]
        faces = [None] * len(images) if faces is None else faces  # None given: the one face of each photo (or box)
        if not len(boxes) == len(faces) == len(images):
            raise ValueError(f"{len(boxes)} boxes and {len(faces)} faces for {len(images)} photos")
        self.store.refuse_taken(name, hint=ADD_INSTEAD)
        prepared = distinct_views([self.prepare(p, b, person, f) for p, b, person, f
                                   in zip(images, boxes, with_face, faces)], name)
        return self._commit(name, prepared, description, category, new=True)

    def remember_prepared(self, name: str, prepared: list[PreparedView], description: str, category: str) -> Concept:
        return self._commit(new_name(name), prepared, clean_text(description, "description", MAX_DESCRIPTION),
                            clean_text(category, "category", 64), new=True)

    def add_views(self, name: str, images: list[str | Path], box: Box | None = None) -> Concept:
        """More photos of a concept; in a person's photo that shows several people, the face that is clearly
        theirs (by their registered faces) is registered without asking. A photo given again whose stored copy
        cannot be read (deleted, damaged) is stored anew and replaces its view."""
        concept = self.store.get(name)
        person = is_person(concept.category)
        like = self.store.concept_vectors(concept.id, FACE_SPACE) if person else None
        prepared = [self.prepare(p, box, person, like=like) for p in images]
        given = {(p.file.sha256, p.box) for p in prepared}
        # a view whose stored photo is missing or damaged is not held: given again, the photo restores it
        held = {(v.image_sha256, v.box) for v in self.store.views(concept.id)
                if (v.image_sha256, v.box) not in given or _readable(v, {}) is not None}
        return self._commit(concept.name, distinct_views(prepared, concept.name, held), "", "", new=False)

    def _commit(self, name: str, prepared: list[PreparedView], description: str, category: str, new: bool) -> Concept:
        embedder = self._need_embedder()
        space = embedder.space
        self._load_negatives()
        fresh = [p for p in prepared if not self.store.has_image(p.file.sha256, p.file.suffix)]
        try:
            with self.store.transaction() as db:
                self.writer.collect_garbage(db)
                self.store.collect_images(db)
                self.writer.ensure_space(db, space)
                concept_id = self._write_concept(db, name, prepared, description, category, new, space.name)
        except BaseException:
            if fresh:  # the failure may have come with the commit itself: the photos it saved go
                with contextlib.suppress(EdgeRapError):  # tidying only: the next write collects them too
                    self._collect_files()
            raise
        return self.store.get_by_id(concept_id, name)  # (by name, a rename by another writer since would fail it)

    def _load_negatives(self) -> None:
        """Compute (or load) the negative bank before a write: never while holding the write lock."""
        if self.negatives is not None:
            self.negatives.vectors

    def _write_concept(self, db, name: str, prepared: list[PreparedView], description: str, category: str,
                       new: bool, space: str) -> int:
        if new:
            concept_id = self.store.insert_concept(db, name, category, description)
        else:
            concept_id = self.store.get(name).id
            db.execute("UPDATE concepts SET updated = ? WHERE id = ?", (time.time(), concept_id))
        faces, restored = [], False
        for p in prepared:
            owner = self.store.photo_owner(db, p.file.sha256, p.box)
            _refuse_photo_of_another(owner, concept_id, p)
            if owner is not None:  # its own view, whose stored photo could not be read (add_views): replaced
                self.store.delete_views_of_photo(db, concept_id, p.file.sha256, p.box, faces=p.face_vectors is not None)
                restored = True
            rel = self.store.save_image(p.file.data, p.file.sha256, p.file.suffix, overwrite=owner is not None)
            view_id = self.store.insert_view(db, concept_id, p.file.sha256, rel, p.box)
            self.store.insert_vectors(db, view_id, space, p.augments, p.vectors)
            if p.cells is not None:
                self.store.insert_cells(db, view_id, space, p.cells)
            if p.face_vectors is not None:  # the face is a view of its own, in the face space
                self.writer.ensure_space(db, self.faces.space)
                face_view = self.store.insert_view(db, concept_id, p.file.sha256, rel, p.face, kind="face")
                self.store.insert_vectors(db, face_view, self.faces.space.name, ["face", "face-mirror"], p.face_vectors)
                faces.append(p.face_vectors)
        if faces:  # (a replaced view's vectors are in the index files: rebuilt from the database without them)
            vectors = np.concatenate(faces)
            self.writer.write(db, self.faces.space.name,
                              added=None if restored else (np.full(len(vectors), concept_id, np.int64), vectors))
        if self.negatives is not None:
            vectors = self.store.concept_vectors_tx(db, concept_id, space)
            self.store.set_calibration(db, concept_id, space, *self.negatives.stats(vectors))
        keys = np.full(sum(len(p.vectors) for p in prepared), concept_id, dtype=np.int64)
        self.writer.write(db, space, added=None if restored else (keys, np.concatenate([p.vectors for p in prepared])))
        return concept_id

    def edit(self, name: str, description: str | None = None, category: str | None = None) -> Concept:
        """Change the description or category. A concept that becomes a person has the faces of its photos
        registered, as does a person without a face (remembered where the face models were not installed: found
        by the whole photo, clothes and room, for good) given a person's category again; one that stops being a
        person loses its face views."""
        concept = self.store.get(name)
        becomes_person = category is not None and is_person(category) and not is_person(concept.category)
        faceless = (category is not None and is_person(category) and is_person(concept.category)
                    and not self.store.views(concept.id, kind="face"))
        stops_being_person = category is not None and is_person(concept.category) and not is_person(category)
        faces = []
        if (becomes_person or faceless) and self.faces is not None:  # (the page sends the category with every edit:
            faces = self._faces_of(concept, required=becomes_person)  # a person with no face to find stays as is)
        with self.store.transaction() as db:
            # a value as it is stored changes nothing, not `updated` either: a client that sends the whole concept
            # back (the page sends the category with every edit) told a phone's sync that it had changed
            for column, given, longest in (("description", description, MAX_DESCRIPTION), ("category", category, 64)):
                if given is not None:
                    value = clean_text(given, column, longest)
                    db.execute(f"UPDATE concepts SET {column} = :value, updated = :now WHERE id = :id "
                               f"AND {column} IS NOT :value", {"value": value, "now": time.time(), "id": concept.id})
            if stops_being_person and self.store.space(FACE_SPACE, db):
                db.execute("DELETE FROM views WHERE concept_id = ? AND kind = 'face'", (concept.id,))
                self.writer.write(db, FACE_SPACE)
            if faces:
                self.writer.ensure_space(db, self.faces.space)
                for view, face, vectors in faces:
                    face_view = self.store.insert_view(db, concept.id, view.image_sha256,
                                                       _relative(view.image_path), face, kind="face")
                    self.store.insert_vectors(db, face_view, self.faces.space.name, ["face", "face-mirror"], vectors)
                vectors = np.concatenate([v for _, _, v in faces])
                self.writer.write(db, FACE_SPACE, added=(np.full(len(vectors), concept.id, np.int64), vectors))
        return self.store.get_by_id(concept.id, concept.name)  # the concept changed, whatever it is called now

    def _faces_of(self, concept: Concept, required: bool = True) -> list[tuple]:
        """(photo view, face box in the file's pixels, face + mirror vectors) of each of a concept's photos that
        shows one face. One that shows none or several, or cannot be read (missing, damaged), is left out and said:
        a box cannot be given to an existing photo, and a group photo (or one lost file) among a person's photos
        would otherwise keep it from ever becoming a person. None at all is an error where `required`."""
        out, left_out, unreadable = [], [], {}
        for k, view in enumerate(self.store.views(concept.id), 1):  # said as the user knows it, not its path
            shown = f"photo {k} of <{concept.name}>"
            image = _readable(view, unreadable)
            if image is None:
                left_out.append(f"{shown} cannot be read ({unreadable[view.id]})")
                continue
            try:
                out.append((view, *self._face(replace(image, source=shown), view.box)))
            except FaceChoiceError as e:
                left_out.append(e.found)
        if not out and required:
            raise EdgeRapError(f"{'; '.join(left_out)}: a person needs a photo that shows one face; nothing was "
                               f"changed (add one with add-views, then edit again)")
        for found in left_out:
            log.warning("%s: that photo's face is not registered (a person's photo needs one readable face)", found)
        return out

    def rename(self, old: str, new: str) -> Concept:
        concept = self.store.get(old)
        new = new_name(new)
        self.store.refuse_taken(new, owner=concept.id)  # before the lock: a clear error without waiting
        with self.store.transaction() as db:
            # under the lock, the concept must still be the one looked up: a writer that renamed (or forgot) it
            # meanwhile would otherwise have its name silently replaced, and the events follow neither rename
            self.store.require_named(db, concept)
            self.store.refuse_taken(new, db, owner=concept.id)  # and under it: another writer may have taken it
            db.execute("UPDATE concepts SET name = ?, updated = ? WHERE id = ?", (new, time.time(), concept.id))
        return self.store.get_by_id(concept.id, new)

    def forget(self, name: str) -> Concept:
        """Remove a concept, its vectors (every space's index is rebuilt without them) and its unshared images.
        Deleting must work on a full disk: it is how the user makes room."""
        concept = self.store.get(name)
        try:
            self._forget(concept)
        except DiskFullError:
            self._forget_on_a_full_disk(concept)
        truncate_wal(self.store.db)  # its rows' older page images must not stay readable there
        return concept

    def _forget(self, concept: Concept) -> None:
        with self.store.transaction() as db:
            # under the lock, still the concept looked up: one another writer renamed meanwhile is not forgotten
            # under its new name (its events, carried to that name, would outlive it)
            self.store.require_named(db, concept)
            self.writer.collect_garbage(db)
            self.store.collect_images(db)
            self.store.delete_concept(db, concept.id)
            for space in self.store.space_names():
                self.writer.write(db, space)
        self._collect_forgotten()  # its photos and the superseded index files (its vectors) go too

    def _forget_on_a_full_disk(self, concept: Concept) -> None:
        """The index files (rebuilt from the database at will) are deleted first and written again last: the
        room they held goes to the database's commit, and the room of the forgotten photos to the new files.
        Where even those do not fit, readers search the database's vectors until the next write."""
        with self.store.transaction() as db:
            self.store.require_named(db, concept)
            self.writer.collect_garbage(db)
            self.store.collect_images(db)
            for space in self.store.space_names():
                self.writer.drop_files(space, db)
            self.store.delete_concept(db, concept.id, zero_freed=False)
        self._collect_forgotten()
        try:
            with self.store.transaction() as db:
                for space in self.store.space_names():
                    self.writer.write(db, space)
        except DiskFullError:
            log.warning("%s: forgotten, but the disk is still too full to write the index again; recognition "
                        "searches the database meanwhile (the next change, or `edge-rap reindex`, writes it)",
                        self.root)

    def _collect_forgotten(self) -> None:
        """`_collect_files` once a forget is committed: the concept is forgotten whatever happens now, so a photo that
        cannot be deleted (its folder made read-only) is said as such, not "nothing was changed" (the concept gone,
        its events kept); the next change that can deletes it."""
        try:
            left = self._collect_files()
        except EdgeRapError as e:
            log.warning("forgotten, but its photos could not be deleted yet (%s): a later remember or forget deletes "
                        "them once it can", str(e).removesuffix("; nothing was changed"))
            return
        if left:
            path, e = left[0]
            log.warning("forgotten, but %s could not be deleted yet (%s: %s): a later remember or forget deletes "
                        "%s once it can", "a photo" if len(left) == 1 else f"{len(left)} photos", path.parent,
                        e.strerror, "it" if len(left) == 1 else "them")

    def _collect_files(self) -> list:
        """Delete the photos and index files no row names any more, under the lock (another writer may have
        come to use a photo a failed write saved); the photos whose folder forbids it are returned."""
        with self.store.transaction() as db:
            self.writer.collect_garbage(db)
            return self.store.collect_images(db)

    def reindex(self, progress=None) -> Reindexed:
        """Re-embed every stored reference photo with the current embedder into its own space, and every
        person's face with the current face model where it is installed. Photos are embedded outside the
        write lock; when views were remembered meanwhile, the lock is let go and they are embedded too
        (the last of three rounds embeds them under it). Under the lock, views forgotten meanwhile are left
        out, so a concurrent `remember` or `forget` is neither lost nor breaks the reindex. A photo that cannot
        be read (missing, damaged) is left out and said, and the rest reindexed: one file must not leave the
        whole household unrecognised; its view keeps its vectors only where this embedder made them."""
        embedder = self._need_embedder()
        self._load_negatives()
        photos: dict[int, tuple[list[str], np.ndarray, np.ndarray | None]] = {}
        faces: dict[int, tuple[list[str], np.ndarray]] = {}
        unreadable: dict[int, str] = {}  # view id: why its photo cannot be read

        def pending(views: list[ReferenceView], done: dict) -> list[ReferenceView]:
            return [v for v in views if v.id not in done and v.id not in unreadable]

        for round_ in range(3):
            self._embed_photos(pending(self.store.views(), photos), photos, unreadable,
                               progress if round_ == 0 else None)
            face_views = self.store.views(kind="face")
            if face_views and self.faces is not None:  # the face models load only where people are remembered
                self._embed_faces(pending(face_views, faces), faces, unreadable)
            with self.store.transaction() as db:
                views, face_views = self.store.views(), self.store.views(kind="face")
                with_faces = bool(face_views) and self.faces is not None
                new_views = pending(views, photos)
                new_faces = pending(face_views, faces) if with_faces else []
                if (new_views or new_faces) and round_ < 2:
                    continue  # nothing written: embed them outside the lock, then try again
                self._embed_photos(new_views, photos, unreadable)
                self._embed_faces(new_faces, faces, unreadable)
                self.writer.collect_garbage(db)
                unread = {v.id for v in views + (face_views if with_faces else []) if v.id in unreadable}
                self._replace_space(db, embedder.space, [(v.id, *photos[v.id][:2]) for v in views if v.id in photos],
                                    unread)
                for v in views:
                    if v.id in photos and photos[v.id][2] is not None:
                        self.store.insert_cells(db, v.id, embedder.space.name, photos[v.id][2])
                face_rows = [(v.id, *faces[v.id]) for v in face_views if v.id in faces] if with_faces else []
                if with_faces:
                    self._replace_space(db, self.faces.space, face_rows, unread)
                lost = self._unreadable_photos(views + (face_views if with_faces else []), unreadable)
                unrecognisable = self.store.unrecognisable(embedder.space.name, db)
                break
        return Reindexed(sum(v.id in photos for v in views), lost, unrecognisable, len(face_rows))

    def _unreadable_photos(self, views: list[ReferenceView], unreadable: dict[int, str]) -> list[UnreadablePhoto]:
        """Each concept's photo that could not be read, once (its photo view and its face view share the file)."""
        names = {c.id: c.name for c in self.store.concepts()}
        lost = {(v.concept_id, v.image_path): unreadable[v.id] for v in views if v.id in unreadable}
        return [UnreadablePhoto(names[concept_id], photo, problem) for (concept_id, photo), problem in lost.items()]

    def _embed_photos(self, views: list[ReferenceView], out: dict, unreadable: dict[int, str], progress=None) -> None:
        """Each photo view's augmented views embedded, and its cells, by view id; a photo that cannot be read
        goes into `unreadable` with why."""
        embedder = self._need_embedder()
        for view in (progress(views) if progress else views):
            image = _readable(view, unreadable)
            if image is None:
                continue
            region = crop(image, view.box).pixels if view.box else image.pixels
            pixels = augmented_views(region)
            out[view.id] = ([n for n, _ in pixels], embedder.embed([p for _, p in pixels]), self._cells(region))

    def _embed_faces(self, views: list[ReferenceView], out: dict, unreadable: dict[int, str]) -> None:
        """Each face view's face and its mirror image embedded with the face model, by view id."""
        for view in views:
            image = _readable(view, unreadable)
            if image is None:
                continue
            face = self.faces.registered(image.pixels, scale_box(view.box, image.size, decoded_size(image)))
            out[view.id] = (["face", "face-mirror"], self.faces.with_mirror(image.pixels, face))

    def _replace_space(self, db, space: SpaceInfo, rows: list[tuple[int, list[str], np.ndarray]],
                       unread: set[int]) -> None:
        """All of a space's vectors and cells replaced by `rows` (view id, augment names, vectors), made by
        `space`'s model. The views in `unread` (their photo could not be read) keep theirs where that model made
        them; another model's go with the rest (one space never mixes two models' vectors)."""
        existing = self.store.space(space.name, db)
        if existing and (existing[1], existing[2]) != (space.fingerprint, space.dim):
            for table in ("vectors", "cells", "calibration"):
                db.execute(f"DELETE FROM {table} WHERE space = ?", (space.name,))
            db.execute("UPDATE spaces SET model = ?, fingerprint = ?, dim = ? WHERE name = ?",
                       (space.model, space.fingerprint, space.dim, space.name))
        self.writer.ensure_space(db, space)
        db.execute("CREATE TEMP TABLE IF NOT EXISTS unread_views (id INTEGER PRIMARY KEY)")  # (any number of them:
        db.execute("DELETE FROM unread_views")  # a whole images/ folder lost is more than SQL's variables)
        db.executemany("INSERT INTO unread_views VALUES (?)", [(view_id,) for view_id in unread])
        for table in ("vectors", "cells"):
            db.execute(f"DELETE FROM {table} WHERE space = ? AND view_id NOT IN (SELECT id FROM unread_views)",
                       (space.name,))
        for view_id, augments, vectors in rows:
            self.store.insert_vectors(db, view_id, space.name, augments, vectors)
        if self.negatives and space == self._need_embedder().space:
            for concept in self.store.concepts():
                vecs = self.store.concept_vectors_tx(db, concept.id, space.name)
                if len(vecs):
                    self.store.set_calibration(db, concept.id, space.name, *self.negatives.stats(vecs))
        self.writer.write(db, space.name)


def _region_of(box: Box | None, size: tuple[int, int]) -> Box | None:
    """A --box clipped to the photo; one that holds the photo whole is the photo (no box): remembered whole by
    one concept and with --box 0,0,5000,5000 by another, the same pixels were two concepts, always tied."""
    if box is None:
        return None
    width, height = size
    clipped = Box(min(box.x0, width), min(box.y0, height), min(box.x1, width), min(box.y1, height))
    if clipped.width <= 0 or clipped.height <= 0:
        return box  # outside the photo: crop() says so
    return None if clipped == Box(0, 0, width, height) else clipped


def _refuse_photo_of_another(owner: tuple[int, str] | None, concept_id: int, view: PreparedView) -> None:
    """One photo (or one region of it) is one concept's: two concepts of the same pixels would always tie in
    recognition. Another region of it (two people in one group photo, given each their --box) is another view."""
    if owner is None or owner[0] == concept_id:
        return
    source, whole = view.file.image.source, view.whole_box
    what = (f"{source} (box {view.box.as_list()})" if view.box else
            f"{source}: its box {whole.as_list()} holds the whole photo, which" if whole else source)
    raise EdgeRapError(f"{what} is already a photo of <{owner[1]}>: two concepts of one photo would always tie: give "
                       f"{'a smaller box' if whole else 'the box'} of what else it shows (--box); nothing "
                       "was changed")


def _readable(view: ReferenceView, unreadable: dict[int, str]) -> Image | None:
    """A stored photo with the bytes it was stored with that holds its view's box, or None with why not noted under
    its view's id. Its name is its bytes' sha256 (in every version of the memory): one whose bytes changed (bit rot
    on an SD card still decodes, as a smeared block) would give a worse vector for good. A box partly outside is
    clipped, as `crop` does."""
    try:
        file = read_image_file(view.image_path)
        if file.sha256 != view.image_sha256:
            raise EdgeRapError(f"{view.image_path}: damaged (its bytes are no longer those it was stored with, whose "
                               "sha256 is its name)")
        if view.box is not None:
            require_croppable(file.image, view.box)
        return file.image
    except EdgeRapError as e:
        unreadable[view.id] = str(e)
        return None
