"""Ask: retrieval's hits + the question -> the RAP prompt -> the VLM (or the templates) -> a checked Answer.

The one place the generate step is wired: which concepts go into the prompt (accepted hits and the ones
the question names, at most `max_references`), the name guard over the model's text, streaming to the
caller (pieces as produced, sentences as they end), and the recognition task's verdict, which rests on
retrieval's calibrated decision with the model's yes/no recorded beside it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Callable

from edge_rap.config import VlmProfile
from edge_rap.generate.names import NameGuard
from edge_rap.generate.narrate import narrate
from edge_rap.generate.prompt import (PromptImage, Reference, Task, build_prompt, classify, image_key, query_image,
                                      render)
from edge_rap.generate.stream import SentenceSplitter
from edge_rap.memory.store import Store
from edge_rap.retrieve import mentioned_names, unknown_names
from edge_rap.retrieve.decide import WRITTEN_NAME
from edge_rap.types import Answer, Concept, Hit, Image, Recognition

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AskOptions:
    max_tokens: int = 128
    max_references: int = 4
    text_references: bool = False  # names, descriptions and boxes only (smallest devices)
    temperature: float = 0.0

    @classmethod
    def from_profile(cls, vlm: VlmProfile) -> "AskOptions":
        return cls(vlm.max_tokens, vlm.max_references, vlm.references == "text")


def reference_image(store: Store, concept: Concept) -> PromptImage | None:
    """A concept's first intact reference photo (its region, if remembered with a box), decoded on demand. One
    whose photos are all gone from the memory's folder (restored without images/) or damaged (truncated, a bad
    sector) is described in words instead: one such file must not stop every answer about it (a damaged one failed
    each answer when the VLM came to decode it)."""
    view = next((v for v in store.views(concept.id) if store.photo_intact(v)), None)
    if view is None:
        log.warning("<%s> has no reference photo in the memory's folder, or none undamaged: described to the VLM in "
                    "words", concept.name)
        return None

    def load():
        from edge_rap.perceive.images import read_image_file

        return read_image_file(view.image_path, view.box).image.pixels

    return PromptImage(image_key(view.image_sha256, view.box), load)


def _model_says(text: str) -> str | None:
    m = re.match(r"\W*(yes|no)\b", text.strip(), re.I)
    return m.group(1).lower() if m else None


class Assistant:
    """Answers questions about an image, or about remembered concepts with no image."""

    def __init__(self, store: Store, retriever=None, vlm=None, options: AskOptions = AskOptions(),
                 note: str | None = None):
        self.store = store
        self.retriever = retriever  # what recognizes an image (a Retriever, or the Household with its detector)
        self.vlm = vlm  # edge_rap.generate.vlm.LlamaVlm, or None for template mode
        self.options = options
        self.note = note  # why there is no VLM although one was configured

    def ask(self, question: str, image: Image | None = None, on_text: Callable[[str], None] | None = None,
            on_sentence: Callable[[str], None] | None = None, recognition: Recognition | None = None) -> Answer:
        """`recognition`: what retrieval already found in `image` (the daemon has it), so it is not redone."""
        known = self.store.concepts()
        named = mentioned_names(question, known)
        present: list[Hit] = []  # what retrieval decided is in the image
        hits: list[Hit] = []  # those, and the concepts the question names, for the prompt
        size = None
        if image is not None:
            if self.retriever is None:
                raise ValueError("an Assistant without a retriever cannot answer about images")
            recognition = recognition or self.retriever.recognize(image)
            size = recognition.size
            ids = {c.id for c in named}
            present = [replace(h, mentioned=h.concept.id in ids) for h in recognition.hits]
            have = {h.concept.id for h in present}
            unfound: dict[int, Hit] = {}  # each named concept retrieval did not find, once: with a detector,
            for h in sorted(recognition.candidates, key=lambda h: -h.score):  # a candidate per region
                if h.concept.id in ids and h.concept.id not in have:
                    unfound.setdefault(h.concept.id, replace(h, mentioned=True))
            hits = sorted(present + list(unfound.values()), key=lambda h: (not h.mentioned, -h.score))
        task = classify(question, image is not None)
        if self.vlm is None:
            unknown = unknown_names(question, known)
            answer = self._template(task, present, named, size, known, unknown, on_text, on_sentence)
        else:
            answer = self._generate(task, question, image, present, hits, named, size, known, on_text, on_sentence)
        if task is Task.RECOGNIZE:
            answer.verdict = self._verdict(named, present, answer)
        return answer

    def _template(self, task, present, named, size, known, unknown, on_text, on_sentence) -> Answer:
        text = narrate(task, present, named, size, known, unknown)
        if on_text is not None:
            on_text(text)
        if on_sentence is not None:
            splitter = SentenceSplitter(on_sentence)
            splitter.feed(text)
            splitter.flush()
        return Answer(text, "template", task.value, present, named if task is Task.TEXT else [], note=self.note)

    def _generate(self, task, question, image, present, hits, named, size, known, on_text, on_sentence) -> Answer:
        vlm, opts = self.vlm, self.options
        text_refs = opts.text_references or not vlm.has_vision
        image_for = (lambda c: None) if text_refs else (lambda c: reference_image(self.store, c))
        if task is Task.TEXT:
            refs = [Reference(c, image_for(c)) for c in named[:opts.max_references]]
        else:
            found = {h.concept.id for h in present}  # a box only where retrieval found the concept
            refs = [Reference(h.concept, image_for(h.concept), h.score, h.box if h.concept.id in found else None)
                    for h in hits[:opts.max_references]]
        query = query_image(image) if image is not None else None
        prompt = build_prompt(task, question, refs, query, size, text_refs)
        rendered = render(prompt, vlm.template, vlm.marker)
        # the concepts given and every name the question wrote ("Is <max> here?" -> "I don't see <max>.")
        allowed = [r.concept.name for r in refs] + [c.name for c in named] + WRITTEN_NAME.findall(question)
        guard = NameGuard.of(allowed, [c.name for c in known])
        splitter = SentenceSplitter(on_sentence) if on_sentence is not None else None
        shown: list[str] = []

        def emit(safe: str) -> None:
            if not safe:
                return
            shown.append(safe)
            if on_text is not None:
                on_text(safe)
            if splitter is not None:
                splitter.feed(safe)

        generation = vlm.generate(rendered, lambda piece: emit(guard.feed(piece)), opts.max_tokens, opts.temperature)
        emit(guard.flush())
        if splitter is not None:
            splitter.flush()
        # concepts: what retrieval found, as in template mode (not a named one it did not find, given as a reference)
        return Answer("".join(shown).strip(), "vlm", task.value, present, named if task is Task.TEXT else [],
                      model=vlm.name, device=vlm.device, ttft_s=generation.ttft_s,
                      tokens_per_s=generation.tokens_per_s, n_tokens=generation.n_tokens, flagged=guard.flagged,
                      cache=generation.cache, stopped=generation.stopped)

    @staticmethod
    def _verdict(named: list[Concept], present: list[Hit], answer: Answer) -> dict | None:
        """Is <X> here? Retrieval's calibrated decision, with its box; the model's own yes/no beside it."""
        if not named:
            return None
        target = named[0]
        hit = next((h for h in present if h.concept.id == target.id), None)
        says = _model_says(answer.text) if answer.mode == "vlm" else None
        return {"name": target.name, "present": hit is not None, "box": hit.box.as_list() if hit else None,
                "score": round(hit.score, 4) if hit else None, "model_says": says,
                "agree": None if says is None else (says == "yes") == (hit is not None)}


#: --mmproj alone: a projector for no model, refused by every command that takes it.
MMPROJ_WITHOUT_VLM = "--mmproj goes with --vlm (the model it projects images for)"


def open_vlm(settings, model: str = "", mmproj: str = "", stopping=None):
    """(LlamaVlm or None, note). Files from --vlm/--mmproj, else the device profile's [vlm]. A VLM named on the
    command line must load; one named only by the profile falls back to template mode with a note saying why.
    `stopping`: as LlamaVlm takes it; one that cut the load (`run` or `serve` stopping) leaves no VLM, and a note
    for the answer in flight (`serve`'s request that began the load gets the template's, and is told why)."""
    from edge_rap.errors import EdgeRapError
    from edge_rap.models.vlm_registry import resolve

    cfg = settings.profile.vlm
    explicit = bool(model)
    name = model or cfg.model
    if not name:
        return None, None
    from edge_rap.generate.vlm import LlamaVlm, LoadStopped, VlmSpec

    try:
        files = resolve(settings.models, name, mmproj or ("" if explicit else cfg.mmproj))
        from edge_rap.generate.cache import ENCODINGS_FOLDER

        spec = VlmSpec(files.model, files.mmproj, files.name, cfg.n_gpu_layers, cfg.n_ctx, cfg.threads,
                       cache_dir=settings.models / ENCODINGS_FOLDER)
        return LlamaVlm(spec, stopping), None
    except LoadStopped as e:
        return None, f"no VLM loaded ({e})"
    except EdgeRapError as e:
        if explicit:
            raise
        return None, f"no VLM loaded ({e})"
