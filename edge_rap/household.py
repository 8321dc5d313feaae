"""The household runtime: memory, embedder, retriever, detector, assistant and event log, opened once from the
settings and closed together. The CLI, the daemon, the server and the voice loop all use it.

Each part opens when first used, so metadata work (listing, renaming, forgetting, reading events) never
loads a model, and closing releases exactly what was opened.
"""

from __future__ import annotations

import logging
import os
import shlex
import sqlite3
import threading
from functools import cached_property, wraps
from pathlib import Path

from edge_rap.config import Settings
from edge_rap.errors import DeviceError, EdgeRapError, PartlyDone
from edge_rap.liveness import Turns
from edge_rap.memory.aside import finish_killed_restore
from edge_rap.output import quoted
from edge_rap.types import Concept, Image, Recognition
from edge_rap.wording import counted

log = logging.getLogger(__name__)

class _OneAtATime:
    """The assistant asked from one thread at a time: the announcer, the voice loop and the API share one VLM,
    and a llama.cpp context is not safe across threads. `turns.heartbeat`: whether the answer being made moves on
    (systemd's watchdog); a voice question waiting behind a long answer is no hang."""

    def __init__(self, inner):
        self._inner = inner
        self.turns = Turns("the assistant's answer")

    def ask(self, *args, **kwargs):
        with self.turns.turn():
            return self._inner.ask(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _part(open_it):
    """A part of the household, opened when first used and kept; never opened again once the household closed (a
    request still running then must not reopen the memory behind the closing server's back)."""

    @wraps(open_it)
    def opened(self):
        if self.closed:
            raise DeviceError(self.root, "the memory was closed")
        return open_it(self)

    return cached_property(opened)


def _beyond_its_header(path: Path) -> bool:
    """Whether the event log's file (or its -wal) at `path` may hold an event: not where absent or empty, nor where
    it is a database's first page alone, which a log's start on a full disk leaves (no table has its own page yet:
    `GET /api/events` under `serve` left one, and every `forget`, how the user makes room, was then refused as
    "cannot open the event log (the disk is full)"). Anything else, one damaged too, may: the log says why."""
    try:
        if not path.is_file():  # (a pipe there is no log, and its open would wait for a writer)
            return False
        with open(path, "rb") as f:
            head, size = f.read(100), os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        return False
    except OSError:
        return True
    if not path.name.endswith("-wal") and len(head) == 100 and head.startswith(b"SQLite format 3\0"):
        page = int.from_bytes(head[16:18], "big")
        return size > (65536 if page == 1 else page)
    return size > 0


class Household:
    """One household's runtime. Use as a context manager: `with Household(settings) as home: ...`."""

    def __init__(self, settings: Settings, memory: Path | None = None, readonly: bool = False,
                 vlm: tuple[str, str] = ("", ""), prepare: bool = False, stopping: threading.Event | None = None):
        """`prepare`: export a default embedder not exported yet when the memory opens (the commands that write:
        remember, add-views, import-rap, reindex, serve, the demo); otherwise (a reader, `run`) a missing model is
        a one-line error, never a hidden export. `stopping`: set when the command stops, it interrupts the VLM's
        answers (`LlamaVlm.stopping`). The detector is the profile's ([detector] model, which --detector replaces:
        config.with_detector), so that recognize, ask, serve and listen place concepts as `run` does."""
        self.settings = settings
        self.root = memory or settings.memory
        self.readonly = readonly
        self.vlm_files = vlm
        self.stopping = stopping or threading.Event()
        self.vlm_note: str | None = None
        self.prepare = prepare
        self.closed = False
        moved_back = finish_killed_restore(self.root)
        if moved_back:
            log.warning("%s: a restore was stopped before it moved %s back from the memory it moved aside: moved "
                        "back now", self.root, ", ".join(moved_back))

    def __enter__(self) -> "Household":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @_part
    def memory(self):
        """The memory with its embedder (loads the model)."""
        from edge_rap.app import open_embedder, open_memory

        embedder = open_embedder(self.settings, prepare=self.prepare)
        return open_memory(self.settings, embedder, self.root, readonly=self.readonly)

    @_part
    def store(self):
        """The concepts without any model: the memory's own store when it is open, else a store alone."""
        for opened in ("memory", "bare_memory"):
            if opened in self.__dict__:
                return self.__dict__[opened].store
        from edge_rap.memory.store import Store

        return Store(self.root, readonly=self.readonly)

    @_part
    def retriever(self):
        from edge_rap.app import open_retriever

        return open_retriever(self.memory, self.settings)

    @_part
    def detector(self):
        from edge_rap.app import open_detector

        name = self.settings.profile.detector
        return open_detector(self.settings, name) if name else None

    @_part
    def vlm(self):
        """The configured VLM, or None for template mode (`vlm_note` says why when one was configured)."""
        from edge_rap.generate.assistant import open_vlm

        vlm, self.vlm_note = open_vlm(self.settings, *self.vlm_files, stopping=self.stopping)
        return vlm

    @_part
    def assistant(self):
        from edge_rap.generate.assistant import Assistant, AskOptions

        # the household recognises a photo asked about as `recognize` does: with the detector's regions
        return _OneAtATime(Assistant(self.store, self, self.vlm, AskOptions.from_profile(self.settings.profile.vlm),
                                     self.vlm_note))

    @_part
    def events(self):
        from edge_rap.daemon.events import EventLog

        return EventLog(self.root, readonly=self.readonly)

    def take_events(self):
        """The event log, no longer the household's: its taker closes it (`events` prints from it once the memory
        is closed; one opened anew made a read-only folder's private copy of the log twice)."""
        events = self.events
        self.__dict__.pop("events", None)
        return events

    def vocabulary(self, adding: str | None = None) -> list[str] | None:
        """The detector's open vocabulary: the remembered concepts' categories, and where a concept has none (a
        pet remembered by voice under its own name), the detector's own vocabulary besides (None: every label of a
        fixed one). Narrowed to the others' categories alone, such a concept got no region: a YOLO export dropped
        every label but theirs, and a voice-remembered "my keys", the one category, left none at all. A category
        that a fixed detector has no label for ("keys" to a COCO YOLO) is one it cannot narrow to, as none.
        `adding`: the category of a concept about to be remembered ("" for none), as if it were: its region is
        looked for among its own kind (a voice's "my keys" with only a dog and a mug remembered, not among those)."""
        each = [c.category for c in self.store.concepts()] + ([] if adding is None else [adding])
        categories = {c for c in each if c}
        if not categories:
            return None
        labels = getattr(self.detector, "labels", None)  # a fixed detector's (YOLO); an open one (OWL) takes any word
        known = {label.lower() for label in labels} if labels else None
        if any(not c or (known is not None and c.lower() not in known) for c in each):
            own = getattr(self.detector, "default_vocabulary", None)
            return sorted(categories | set(own)) if own else None
        return sorted(categories)

    def recognize(self, image: Image) -> Recognition:
        """The concepts in `image`: per detector region where a detector was named, else by dense matching and
        crops (docs/RETRIEVAL.md)."""
        regions = self.detector.detect(image, self.vocabulary()) if self.detector is not None else None
        return self.retriever.recognize(image, regions=regions)

    def concepts(self) -> list[Concept]:
        return self.store.concepts()

    @_part
    def bare_memory(self):
        """The memory without an image embedder, for changes that need none (forget, rename, edit: an edit that
        makes a concept a person loads only the face models)."""
        from edge_rap.app import face_loader
        from edge_rap.memory.memory import Memory

        return Memory(self.root, readonly=self.readonly, faces=face_loader(self.settings))

    def _writer(self):
        return self.__dict__.get("memory") or self.bare_memory

    def forget(self, name: str) -> Concept:
        """Forget a concept: its vectors and photos (and the VLM's encodings of them), and its events and snapshots.
        Forgetting again a name whose concept is gone but whose events a failed log kept removes those events."""
        from edge_rap.memory.store import ChangedMeanwhileError, UnknownConceptError

        writer = self._writer()  # opened first: a memory that cannot be written says so, as for every change
        events = self._events_to_carry()
        known = writer.store.find(name)
        gone = self._kept_as_asked(name, known, events)
        encoded = self._encoding_keys(writer.store, known.id) if known and not gone else set()
        try:
            concept = gone or writer.forget(name)
        except ChangedMeanwhileError:
            raise  # renamed meanwhile: its events, under either name, are a living concept's
        except UnknownConceptError:
            concept = self._forgotten_with_events(name, events)
            if concept is None:
                raise
        self._forget_encodings(writer.store, encoded)
        try:
            removed = events.purge(concept.name) if events else 0
        except sqlite3.Error as e:  # the log failed in the moment since it was checked: say what was done, and not
            raise PartlyDone(events.path, f"its events could not be removed ({e}), though <{concept.name}> itself "
                             f"is forgotten (its photos and vectors are gone): forget <{concept.name}> again to "
                             "remove them") from None
        log.info("forgot <%s> and %s", concept.name, counted(removed, "event"))
        if gone and known:
            log.warning("<%s> is still remembered (only the events kept under <%s> are forgotten): forget <%s> by "
                        "that name", known.name, concept.name, known.name)
        self._say_copies(concept.name)
        return concept

    def _say_copies(self, name: str) -> None:
        """What edge_rap set aside beside the memory keeps every byte, and with them the forgotten concept: a damaged
        event log its events, a memory `restore --replace` moved aside its photos too. Said, with how to delete
        them, rather than leave a trace unsaid (or change a copy kept for its bytes' sake). The damaged logs' files
        are listed one by one: a glob per copy ("X*") also took the copy of the same second after it ("X-2"), whose
        own glob then found nothing ("No such file")."""
        from edge_rap.daemon.events import EVENTS_DB
        from edge_rap.daemon.log_damage import SIDES, damaged_copies
        from edge_rap.memory.aside import moved_aside

        damaged, moved = damaged_copies(self.root / EVENTS_DB), moved_aside(self.root)
        damaged_files = [f for c in damaged for f in (c.with_name(c.name + side) for side in SIDES) if f.exists()]
        for copies, what, hold, rm, files in (
                (damaged, "the damaged event log set aside", "name", "rm", damaged_files),
                (moved, "the memory a restore moved aside", "hold", "rm -r", moved)):
            if copies:
                log.warning("<%s> is forgotten, but %s at %s may still %s it: delete it (`%s %s`) once no longer "
                            "needed", name, what, " and ".join(map(str, copies)), hold, rm,
                            " ".join(shlex.quote(str(f)) for f in files))

    @staticmethod
    def _encoding_keys(store, concept_id: int | None = None) -> set[str]:
        """The VLM encoder cache's keys of a concept's photos as the prompt shows them (of every concept: None)."""
        from edge_rap.generate.prompt import image_key

        return {image_key(view.image_sha256, view.box) for view in store.views(concept_id)}

    def _forget_encodings(self, store, keys: set[str]) -> None:
        """A forgotten concept's photos, encoded by the VLM, go with them: they are derived from the photos. An
        encoding another concept still shows (the same photo and region) stays."""
        from edge_rap.generate.cache import ENCODINGS_FOLDER, forget_encodings

        if keys:
            forget_encodings(self.settings.models / ENCODINGS_FOLDER, keys - self._encoding_keys(store))

    def events_name(self, name: str) -> tuple[str, bool]:
        """The name whose events `events --name` and /api/events?name= list, and whether its concept is gone: a
        remembered one's as stored, else a forgotten one's whose events the log kept (its forget's log failed),
        found as `forget` finds them (the very spelling of a gone one's kept events before a remembered one only
        written alike); for neither, UnknownConceptError. The kept events were listed among all the others, but
        not by their name."""
        from edge_rap.memory.store import UnknownConceptError, validate_name

        known = self.store.find(name)
        gone = self._kept_as_asked(name, known, self.events)
        if known is not None and gone is None:
            return known.name, False
        gone = gone or self._forgotten_with_events(name, self.events)
        if gone is None:
            raise UnknownConceptError(f"no concept named {quoted(validate_name(name))}")
        return gone.name, True

    @staticmethod
    def _kept_as_asked(name: str, known: Concept | None, events) -> Concept | None:
        """The gone concept whose events a failed forget kept under the very spelling asked, where a remembered
        one (`known`) is only written alike: a memory of before "´" was an apostrophe held <Zoë's mug> beside
        <Zoë´s mug>, and "forget <Zoë's mug> again", as its failed forget says, forgot <Zoë´s mug>."""
        from edge_rap.memory.store import validate_name

        name = validate_name(name)
        if known is None or validate_name(known.name) == name or not events or not events.query(name=name, limit=1):
            return None
        return Concept(0, name, "", "", 0.0, 0.0)

    @staticmethod
    def _forgotten_with_events(name: str, events) -> Concept | None:
        """A concept no longer remembered whose events the log still holds (a forget whose log failed just
        after), as a concept of that name and nothing else; None where the log holds none by that name. The name
        is matched as every name is (name_key: "zoë’s mug" is <Zoë's Mug>), its exact spelling first; one alike of
        two gone concepts' (a memory of before held <Bo's ball> and <Bo´s ball>) is refused, as store.find refuses
        one alike of two remembered, rather than one's events removed and the other's kept unsaid."""
        from edge_rap.memory.store import name_key, validate_name

        name = validate_name(name)
        kept = [known for known in (events.names() if events else []) if name_key(known) == name_key(name)]
        if len(kept) > 1 and name not in kept:
            raise EdgeRapError(f"{quoted(name)} could be {' or '.join(map(quoted, kept))} (forgotten, their events "
                               "kept): give the name as stored")
        return Concept(0, name if name in kept else kept[0], "", "", 0.0, 0.0) if kept else None

    def remember(self, name: str, images: list, description: str = "", category: str = "", box=None) -> Concept:
        """Remember a concept, and say so when its photo looks to the model like the generated clutter that
        calibrates "none of mine": its own threshold is then held at the policy's ceiling, which only a copy
        of the photo clears (decide.concept_threshold)."""
        concept = self.memory.remember(name, images, description, category, box)
        mean, std = self.retriever.calibration(concept.id)
        policy = self.retriever.policy
        if mean + policy.z * std >= policy.ceiling:
            log.warning("<%s> looks to the model like ordinary clutter (its threshold would be %.2f; held at %.2f): "
                        "it will be recognised on little but copies of this photo; use a photo where it fills more "
                        "of the frame against a plain background", concept.name, mean + policy.z * std,
                        policy.ceiling)
        return concept

    def edit(self, name: str, description: str | None = None, category: str | None = None) -> Concept:
        """Change a description or category without loading the image model (a person's category loads the face
        models alone, to register the faces)."""
        return self._writer().edit(name, description, category)

    def rename(self, old: str, new: str) -> tuple[str, Concept]:
        """(the name as it was stored, the renamed concept); its events follow ("Bo" finds <bo>). A rename to the
        very name it has changes nothing (not even its `updated` time)."""
        from edge_rap.memory.store import validate_name

        concept = self.store.get(old)
        old = concept.name
        if validate_name(new) == old:
            return old, concept
        writer = self._writer()
        events = self._events_to_carry()
        concept = writer.rename(old, new)
        try:
            if events:
                events.rename(old, concept.name)
        except sqlite3.Error as e:  # renamed: exit 1, not 2 as if refused (the API's 422, with the log's path)
            from edge_rap.daemon.events import _no_room

            raise PartlyDone(events.path, f"its events stay under <{old}> ("
                             f"{'the disk is full' if _no_room(e, events.path) else e}), though <{old}> itself is "
                             f"renamed <{concept.name}>: rename <{concept.name}> to <{old}> and back again to carry "
                             "them along") from None
        return old, concept

    def _events_to_carry(self):
        """The event log a forget or rename must carry the concept's events along in, proven writable; None where
        no log was ever written: there is nothing to carry, and making one would take room that a full disk lacks
        (where forgetting is how the user makes room: the log's creation failed the forget)."""
        from edge_rap.daemon.events import EVENTS_DB

        written = _beyond_its_header(self.root / EVENTS_DB) or _beyond_its_header(self.root / f"{EVENTS_DB}-wal")
        if not written and "events" not in self.__dict__:
            return None
        self.events.require_writable()
        return self.events

    def close(self) -> None:
        """Close what was opened, newest first."""
        self.closed = True
        for part in ("events", "vlm", "bare_memory", "memory", "store"):
            thing = self.__dict__.pop(part, None)
            if thing is not None and hasattr(thing, "close"):
                thing.close()
