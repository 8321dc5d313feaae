"""The RAP prompt: the retrieved concepts (reference image + "Name: <name>, Info: <description>"), the query
image and the question, as one chat turn rendered in the model's own template.

Order: system text, then the references, then the query image and the question. The references come
first so that everything before the query image depends only on *which* concepts were retrieved (sorted
by name): a camera that keeps seeing the same household members reuses that whole prefix (vlm.py's
prefix cache) and pays only for the new image and question.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.perceive.images import DECODING
from edge_rap.types import Box, Concept, Image

#: mtmd's default media marker: where an image's tokens go in the rendered text.
MEDIA_MARKER = "<__media__>"
#: The longest question, the API's and `ask`'s (which took 10 000 characters the API refused): it goes into the
#: model's context whole, and 10 000 characters (some 2 500 tokens) beside the references' images is most of n_ctx 4096.
MAX_QUESTION = 2000
_SPLIT = "\x1eEDGE_RAP_QUERY\x1e"  # cut point between the cacheable prefix and the per-query suffix
_SURROGATE = re.compile("[\ud800-\udfff]")

SYSTEM = (
    "You are the personal visual assistant of a household. You know some of the household's own people, "
    "pets and things as personal concepts, each with its name in angle brackets. Call them only by "
    "the names given below, in angle brackets, and never give a name to anyone or anything else. If none of "
    "them is in the image, say so."
)
SYSTEM_NO_REFS = (
    "You are the personal visual assistant of a household. None of the household's own people, pets or "
    "things is known to be involved here, so do not call anyone or anything by a personal name."
)


class Task(str, Enum):
    CAPTION = "caption"
    DESCRIBE = "describe"
    VQA = "vqa"
    RECOGNIZE = "recognize"
    TEXT = "text"


INSTRUCTIONS = {
    Task.CAPTION: "Give a personalised caption of this image.",
    Task.DESCRIBE: "Give a detailed, personalised description of this image.",
}

_CAPTION = re.compile(r"\bcaption\b", re.I)
_DESCRIBE = re.compile(r"\b(describe|description|detail(ed|s)?)\b", re.I)
#: "Is there a dog ...?", "Can you see anyone ...?": asks about no one by name, so is no recognition question.
_NO_ONE = r"(?!\s+(there|a|an|any|anyone|anybody|anything|some|someone|somebody|something)\b)"
_RECOGNIZE = re.compile(
    rf"^\s*(is|are|can you (see|find)|do you see|do you recogni[sz]e)\b{_NO_ONE}.*\b(in|on)\s+(this|the)\s+"
    rf"(image|photo|picture|frame|shot)\b|^\s*(is|are){_NO_ONE}\s+(?:<[^<>\n]{{1,64}}>|[\w\-. ])+\s+"
    r"(here|there|present|visible)\b",
    re.I,
)


def check_question(question: str, limit: int = MAX_QUESTION) -> str:
    """`question`, refused in one line where it is over `limit` characters."""
    if len(question) > limit:
        raise EdgeRapError(f"question is {len(question)} characters; the limit is {limit}")
    return question


def classify(question: str, has_image: bool) -> Task:
    """Which RAP task a question is: no image = text-only; empty = caption."""
    if not has_image:
        return Task.TEXT
    q = question.strip()
    if not q or _CAPTION.search(q):
        return Task.CAPTION
    if _RECOGNIZE.search(q):
        return Task.RECOGNIZE
    if _DESCRIBE.search(q) and not q.rstrip().endswith("?"):
        return Task.DESCRIBE
    return Task.VQA


@dataclass(frozen=True)
class PromptImage:
    """An image in the prompt: a content key (what caches are keyed by) and its RGB pixels, loaded on demand."""

    key: str
    load: Callable[[], np.ndarray] = field(compare=False, repr=False)

    def rgb(self) -> np.ndarray:
        pixels = np.ascontiguousarray(self.load(), dtype=np.uint8)
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"image {self.key}: expected H x W x 3 pixels, got {pixels.shape}")
        return pixels


@dataclass(frozen=True)
class Reference:
    """A retrieved concept as the prompt shows it: name, description, and a reference photo (None = text only)."""

    concept: Concept
    image: PromptImage | None
    score: float | None = None
    box: Box | None = None


@dataclass(frozen=True)
class RapPrompt:
    """Everything the model is given for one question."""

    task: Task
    question: str
    references: tuple[Reference, ...]
    query: PromptImage | None
    query_size: tuple[int, int] | None = None
    text_only: bool = False  # references as names, descriptions and boxes only


@dataclass(frozen=True)
class RenderedPrompt:
    """The prompt as text for the model: a prefix (system + references) and the per-query suffix, each with
    the images its media markers stand for, in order."""

    prefix: str
    suffix: str
    prefix_images: tuple[PromptImage, ...]
    suffix_images: tuple[PromptImage, ...]
    prefix_key: str  # sha256 of the prefix text and its images' keys: what the prefix cache is keyed by


def image_key(data_sha256: str, box: Box | None = None) -> str:
    """Content key of a stored photo as shown: its file's sha256, how it is decoded (`images.DECODING`:
    encodings cached under another decoding must not match) and the region of it that is shown."""
    key = f"{data_sha256}:{DECODING}"
    return key if box is None else f"{key}@{','.join(map(str, box.as_list()))}"


def query_image(image: Image) -> PromptImage:
    pixels = image.pixels
    digest = hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()
    return PromptImage(f"px-{digest}", lambda: pixels)


def info_line(concept: Concept) -> str:
    info = concept.description.strip() or (f"a {concept.category}" if concept.category else "no description")
    return f"Name: <{concept.name}>, Info: {info}"


def _box_text(box: Box | None, size: tuple[int, int] | None) -> str | None:
    if box is None or size is None or box == Box(0, 0, *size):
        return None  # the whole image says nothing about where
    return f"[{box.x0}, {box.y0}, {box.x1}, {box.y1}]"


def build_prompt(task: Task, question: str, references: list[Reference], query: PromptImage | None,
                 query_size: tuple[int, int] | None = None, text_only: bool = False) -> RapPrompt:
    """References sorted by name: the prefix then depends only on the set of concepts."""
    refs = tuple(sorted(references, key=lambda r: (r.concept.name.lower(), r.concept.id)))
    if text_only:
        refs = tuple(Reference(r.concept, None, r.score, r.box) for r in refs)
    return RapPrompt(task, question, refs, query, query_size, text_only)


def user_text(prompt: RapPrompt, marker: str = MEDIA_MARKER,
              unspecial: Callable[[str], str] = lambda text: text) -> tuple[str, list[PromptImage], list[PromptImage]]:
    """The user turn with the split point marked, and the images of the prefix and of the suffix. `unspecial`
    breaks the model's control tokens in user-given text (`ChatTemplate.plain`)."""

    def _plain(text: str) -> str:
        """User-given text (a question, a name, a description) without the media marker or the split mark,
        which would move images or the cache boundary, without control tokens, which would end the turn, and
        without lone surrogates (the bytes of a terminal in another encoding, in a question), which no tokenizer
        can be given."""
        text = _SURROGATE.sub("\ufffd", text.replace(marker, " ").replace(_SPLIT, " "))
        return unspecial(text)

    lines: list[str] = []
    prefix_images: list[PromptImage] = []
    if prompt.references:
        lines.append("The household's concepts that may be relevant:" if prompt.query is None
                     else "The household's concepts that may be in the image:")
        for i, ref in enumerate(prompt.references, 1):
            if ref.image is not None:
                lines.append(f"{i}. {marker} {_plain(info_line(ref.concept))}")
                prefix_images.append(ref.image)
            else:
                lines.append(f"{i}. {_plain(info_line(ref.concept))}")
    lines.append(_SPLIT)
    suffix_images: list[PromptImage] = []
    if prompt.query is not None:
        lines.append(f"This is the image: {marker}")
        suffix_images.append(prompt.query)
        where = [(r.concept.name, _box_text(r.box, prompt.query_size)) for r in prompt.references]
        where = [(n, b) for n, b in where if b]
        if where:
            w, h = prompt.query_size
            lines.append(f"Where they were found (x0, y0, x1, y1 in pixels of the {w} x {h} image): "
                         + "; ".join(_plain(f"<{n}> {b}") for n, b in where) + ".")
    lines.append(INSTRUCTIONS.get(prompt.task) or _plain(prompt.question).strip())
    return "\n".join(lines), prefix_images, suffix_images


def render(prompt: RapPrompt, template, marker: str = MEDIA_MARKER) -> RenderedPrompt:
    """Render in the model's chat template (a chat.ChatTemplate) and cut at the query."""
    text, prefix_images, suffix_images = user_text(prompt, marker, template.plain)
    system = SYSTEM if prompt.references else SYSTEM_NO_REFS
    full = template.render(system, text, must_contain=(marker, _SPLIT))
    cut = full.index(_SPLIT)
    prefix, suffix = full[:cut], full[cut + len(_SPLIT):]
    if prefix.count(marker) != len(prefix_images) or suffix.count(marker) != len(suffix_images):
        raise EdgeRapError("the chat template moved images across the query boundary")
    digest = hashlib.sha256(prefix.encode())
    for image in prefix_images:
        digest.update(b"\0" + image.key.encode())
    return RenderedPrompt(prefix, suffix, tuple(prefix_images), tuple(suffix_images), digest.hexdigest())

