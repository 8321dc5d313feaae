"""`make demo`: provision concepts from photos that ship inside pip packages, then recognise them in new frames.

The frames are other views made from other photos (crops, mirror images, the concept pasted small onto a
different scene) and one frame with none of the concepts, so "none of mine" is shown too.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_rap.config import Settings
from edge_rap.types import Recognition


@dataclass(frozen=True)
class DemoConcept:
    name: str
    sample: str
    category: str
    description: str


CONCEPTS = (
    DemoConcept("chelsea", "chelsea", "cat", "our tabby cat, who sleeps on the radiator"),
    DemoConcept("grace", "grace_hopper", "person", "Grandma Grace, in her navy uniform"),
    DemoConcept("mug", "coffee", "thing", "Dad's coffee cup with the saucer"),
    DemoConcept("rocket", "rocket", "thing", "the model rocket on Anya's shelf"),
)


def _paste(background: np.ndarray, item: np.ndarray, width_fraction: float, where: tuple[float, float]) -> np.ndarray:
    from PIL import Image as PILImage

    bg = PILImage.fromarray(background).resize((640, 480))
    w = int(640 * width_fraction)
    h = max(8, int(item.shape[0] * w / item.shape[1]))
    small = PILImage.fromarray(item).resize((w, min(h, 470)))
    bg.paste(small, (int((640 - small.width) * where[0]), int((480 - small.height) * where[1])))
    return np.asarray(bg)


def demo_frames(bank: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """Frames that are not the remembered photos: crops, mirrors, composites, and one with nothing known."""
    cat, grace, mug, rocket = (bank[c.sample] for c in CONCEPTS)
    h, w = cat.shape[:2]
    return [
        ("cat, cropped and mirrored", np.ascontiguousarray(cat[h // 8 :, : w * 7 // 8][:, ::-1])),
        ("grace, pasted small onto the brick wall", _paste(bank["brick"], grace, 0.45, (0.8, 0.5))),
        ("mug, pasted onto the grass", _paste(bank["grass"], mug, 0.55, (0.2, 0.7))),
        ("rocket, pasted onto the gravel", _paste(bank["gravel"], rocket, 0.4, (0.5, 0.3))),
        ("cat, pasted onto the Hubble deep field", _paste(bank["hubble_deep_field"], cat, 0.5, (0.1, 0.9))),
        ("only the coins: none of ours", bank["coins"]),
    ]


def narrate(result: Recognition) -> str:
    """A personalised line from retrieval alone (the template mode, no language model)."""
    if not result.hits:
        return "I don't see anyone or anything I know."
    parts = [f"<{h.concept.name}> ({h.concept.description})" if h.concept.description else f"<{h.concept.name}>"
             for h in result.hits]
    return "I can see " + " and ".join(parts) + "."


def run_demo(settings: Settings, memory: Path | None = None) -> int:
    from edge_rap.app import open_embedder, open_memory, open_retriever
    from edge_rap.calibrate import sample_photo_bank
    from edge_rap.images import read_image_file

    started = time.perf_counter()
    embedder = open_embedder(settings)
    bank = sample_photo_bank()
    with tempfile.TemporaryDirectory(prefix="edge-rap-demo-") as tmp:
        mem = open_memory(settings, embedder, memory or Path(tmp) / "memory")
        print(f"embedder: {embedder.space.model}   memory: {mem.root}")
        photos = Path(tmp) / "photos"
        photos.mkdir()
        from PIL import Image as PILImage

        for c in CONCEPTS:
            path = photos / f"{c.name}.png"
            PILImage.fromarray(bank[c.sample]).save(path)
            if mem.store.find(c.name) is None:
                t = time.perf_counter()
                mem.remember(c.name, [path], c.description, c.category)
                print(f"remembered <{c.name}> from one photo in {1000 * (time.perf_counter() - t):.0f} ms: {c.description}")
        retriever = open_retriever(mem, settings)
        print()
        for k, (caption, pixels) in enumerate(demo_frames(bank), start=1):
            path = photos / f"frame{k}.jpg"
            PILImage.fromarray(pixels).save(path, quality=90)
            result = retriever.recognize(read_image_file(path).image)
            scores = ", ".join(f"{h.concept.name} {h.score:.2f} at {','.join(map(str, h.box.as_list()))}"
                               for h in result.hits) or "-"
            print(f"frame {k} ({caption}) [{scores}]\n  [template] {narrate(result)}")
        mem.close()
    print(f"\ndone in {time.perf_counter() - started:.1f} s")
    return 0
