"""Seeded multi-concept frames with known boxes: concept photos pasted onto backgrounds, for `eval localize`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_rap.types import Box



@dataclass(frozen=True)
class Layout:
    """How composites are built: the frame's size and each pasted photo's width as a fraction of the frame's.
    The default is the small camera frame; `Layout((1280, 960), 0.2, 0.45)` is a large one with large items."""

    frame: tuple[int, int] = (640, 480)
    min_width: float = 0.15
    max_width: float = 0.6


@dataclass(frozen=True)
class Placed:
    name: str
    box: Box


@dataclass
class Composite:
    """A frame, what was pasted where, and the concept whose photo is the background (if one is: it is in
    the frame, partly covered, so finding it is neither right nor wrong)."""

    pixels: np.ndarray
    placed: list[Placed]
    background: str | None = None


def compose(items: list[tuple[str, np.ndarray]], background: np.ndarray, rng: np.random.Generator,
            layout: Layout = Layout(), background_name: str | None = None) -> Composite:
    """Paste each item at the layout's share of the frame's width, one per cell of a shuffled grid, so none
    overlap."""
    import math

    from PIL import Image as PILImage

    width, height = layout.frame
    min_width, max_width = layout.min_width, layout.max_width
    frame = PILImage.fromarray(background).convert("RGB").resize(layout.frame, PILImage.BILINEAR)
    cols = max(1, math.ceil(math.sqrt(len(items))))
    rows = max(1, math.ceil(len(items) / cols))
    cell_w, cell_h = width // cols, height // rows
    cells = rng.permutation(cols * rows)
    placed: list[Placed] = []
    for (name, pixels), cell in zip(items, cells):
        top_width = min(max_width, cell_w / width)
        w = max(8, int(width * float(rng.uniform(min(min_width, top_width), top_width))))
        h = max(8, int(pixels.shape[0] * w / pixels.shape[1]))
        if h > cell_h:  # a tall item is narrowed to fit its cell
            w, h = max(8, int(w * cell_h / h)), cell_h
        cx, cy = (cell % cols) * cell_w, (cell // cols) * cell_h
        x, y = cx + int(rng.integers(0, cell_w - w + 1)), cy + int(rng.integers(0, cell_h - h + 1))
        frame.paste(PILImage.fromarray(pixels).resize((w, h), PILImage.BILINEAR), (x, y))
        placed.append(Placed(name, Box(x, y, x + w, y + h)))
    return Composite(np.asarray(frame), placed, background_name)


def backgrounds(count: int, seed: int) -> list[np.ndarray]:
    """Generated textures, and the shipped sample photos of scenes (none of anyone's concepts) when installed."""
    from edge_rap.synth import synthetic_images

    out = synthetic_images(count, seed=seed, size=640)
    try:
        from edge_rap.export.calibrate import sample_photo_bank

        bank = sample_photo_bank()
        out += [bank[n] for n in ("brick", "grass", "gravel", "hubble_deep_field", "moon", "page", "coins", "cell")]
    except Exception:  # scikit-image absent: textures only
        pass
    return out
