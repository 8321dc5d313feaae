"""The data that flows between the parts of edge_rap, as plain dataclasses."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edge_rap.output import quoted


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixels of the image it refers to (x1, y1 exclusive)."""

    x0: int
    y0: int
    x1: int
    y1: int

    def as_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @classmethod
    def parse(cls, text: str) -> "Box":
        from edge_rap.errors import EdgeRapError

        try:
            values = [float(v) for v in text.split(",")]
            if not all(math.isfinite(v) for v in values):  # int(round(inf)) raises OverflowError
                raise ValueError
            x0, y0, x1, y1 = (int(round(v)) for v in values)
        except ValueError:
            raise EdgeRapError(f"box {quoted(text)} is not x0,y0,x1,y1 in finite numbers") from None
        if min(x0, y0) < 0:
            raise EdgeRapError(f"box {quoted(text)} starts at a negative coordinate: boxes are in the photo's pixels, "
                               "from 0,0 at its top left")
        if x1 <= x0 or y1 <= y0:
            raise EdgeRapError(f"box {quoted(text)} is empty: x1 must be above x0 and y1 above y0")
        return cls(x0, y0, x1, y1)


@dataclass
class Image:
    """A decoded RGB image (H x W x 3, uint8), where it came from, and its reduction from the file's size."""

    pixels: np.ndarray
    source: str
    original_size: tuple[int, int] | None = None  # (width, height) in the file, when decoded reduced

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in the original file's pixels, the unit of every box."""
        return self.original_size or (int(self.pixels.shape[1]), int(self.pixels.shape[0]))

    @property
    def full_box(self) -> Box:
        return Box(0, 0, *self.size)


@dataclass(frozen=True)
class Region:
    """A place in an image a detector proposes: its box (the image's pixels), confidence and label."""

    box: Box
    score: float
    label: str = ""


@dataclass(frozen=True)
class Concept:
    """Something the household taught: a name, what it is, and how to describe it."""

    id: int
    name: str
    category: str
    description: str
    created: float
    updated: float
    views: int = 0


@dataclass(frozen=True)
class ReferenceView:
    """One stored reference photo of a concept (file named by content hash), optionally a region of it."""

    id: int
    concept_id: int
    image_sha256: str
    image_path: str
    box: Box | None


@dataclass(frozen=True)
class Hit:
    """A concept found in an image: its score, whether it passed its threshold, and where it is."""

    concept: Concept
    score: float
    threshold: float
    box: Box
    mentioned: bool = False

    @property
    def accepted(self) -> bool:
        return self.score >= self.threshold


@dataclass
class Recognition:
    """What retrieval found in one image: accepted hits first; empty means "none of my concepts"."""

    source: str
    size: tuple[int, int]
    hits: list[Hit] = field(default_factory=list)
    candidates: list[Hit] = field(default_factory=list)

    def by_score(self) -> list[Hit]:
        """The hits best first, as they are shown: `hits` keeps retrieval's order (people found by face first, the
        concepts only a crop found last), which a reader of a list takes for a ranking."""
        return sorted(self.hits, key=lambda h: -h.score)

    def to_json(self) -> dict:
        return {
            "image": self.source,
            "concepts": [
                {"name": h.concept.name, "score": round(h.score, 4), "box": h.box.as_list()} for h in self.by_score()
            ],
        }


@dataclass
class Answer:
    """What the assistant said about an image or a question, what it rests on, how it was made and how fast.

    `mode` is "vlm" (a vision-language model wrote `text`) or "template" (no model: retrieval and the stored
    descriptions filled a template); one from memory (speech/reply.py) says "events", "clarify" or "no_image";
    `concepts` are the retrieved hits it may name, `named` the concepts a text-only question named; `flagged` are names
    the model used that neither gave (removed from `text`)."""

    text: str
    mode: str
    task: str
    concepts: list[Hit] = field(default_factory=list)
    named: list[Concept] = field(default_factory=list)
    model: str | None = None
    device: str | None = None
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    n_tokens: int = 0
    flagged: list[str] = field(default_factory=list)
    verdict: dict | None = None  # recognition task: {"name", "present", "box", "model_says"}
    cache: dict = field(default_factory=dict)  # prefix/encoder cache hits of this answer
    note: str | None = None  # why template mode was used when a VLM was configured
    stopped: str | None = None  # with a VLM: "eos" (it ended), "length" (max_tokens), "context" (n_ctx full) or
    # "interrupted" (its process stopping)

    def to_json(self) -> dict:
        concepts = [{"name": h.concept.name, "score": round(h.score, 4), "box": h.box.as_list()} for h in self.concepts]
        seen = {h.concept.id for h in self.concepts}
        concepts += [{"name": c.name, "score": None, "box": None} for c in self.named if c.id not in seen]
        out = {"answer": self.text, "concepts": concepts, "mode": self.mode, "model": self.model,
               "ttft_s": None if self.ttft_s is None else round(self.ttft_s, 4),
               "tokens_per_s": None if self.tokens_per_s is None else round(self.tokens_per_s, 2),
               "task": self.task, "flagged": self.flagged, "device": self.device, "verdict": self.verdict,
               "note": self.note, "cache": self.cache or None,
               "stopped": self.stopped}  # every key in every mode: a script reads them
        return out


@dataclass
class Frame:
    """One picture from a camera: which camera, its number, and its source time (position in a file, or
    seconds since the source was opened for a live one)."""

    camera: str
    index: int
    time_s: float
    pixels: np.ndarray
    captured: float = 0.0  # time.monotonic() when it was read, for the source-to-decision lag

    def image(self) -> Image:
        return Image(self.pixels, f"{self.camera}#{self.index}")


@dataclass
class Event:
    """Something the daemon noticed: a concept arrived in or left a camera's view (`kind`), when (source time
    and wall clock), where, how sure, what was said about it and the snapshot kept of it."""

    kind: str  # "arrived" | "left"
    name: str
    camera: str
    time_s: float
    wall: float
    box: Box | None = None
    score: float | None = None
    said: str | None = None
    snapshot: str | None = None
    id: int | None = None
    concept_id: int | None = None  # the concept's id in the memory, where known (the log itself keeps names)

    def to_json(self) -> dict:
        """The same keys for every event (a "left" has no box, score or line: null), for a script to read."""
        return {"type": self.kind, "name": self.name, "camera": self.camera, "time_s": round(self.time_s, 3),
                "wall": round(self.wall, 3),
                "box": self.box.as_list() if self.box else None,
                "score": None if self.score is None else round(self.score, 4), "said": self.said,
                "snapshot": self.snapshot}
