"""Pictures for a person to check: an image with each recognised concept's box and name drawn on it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.types import Image, Recognition

COLOURS = [(230, 57, 70), (42, 157, 143), (233, 196, 106), (69, 123, 157), (244, 162, 97), (131, 56, 236)]


#: The JPEG comment of a drawing: the mark of a file that a later `recognize --draw` may replace.
MARK = b"edge-rap recognize --draw"


def drawing_paths(sources: list[str], out_dir: Path) -> list[Path]:
    """out_dir/<stem>.jpg for each input, numbered where two inputs share a name (a/frame.png, b/frame.png) and
    where the name holds a file that is not an earlier drawing: `--draw` into the photos' own folder must never
    write over a photo (frame.jpg itself, or frame.jpg beside frame.png), only over the drawings it made before."""
    inputs = {Path(s).resolve() for s in sources if s}
    paths, taken = [], set()
    for source in sources:
        stem, k = Path(source).stem or "image", 1
        name = stem
        while name in taken or not _free(out_dir / f"{name}.jpg", inputs):
            name, k = f"{stem}-{k}", k + 1
        taken.add(name)
        paths.append(out_dir / f"{name}.jpg")
    return paths


def _free(path: Path, inputs: set[Path]) -> bool:
    """Whether a drawing may be written at `path`: nothing is there, or a drawing an earlier run wrote (never an
    input of this run, nor anything through a link)."""
    if path.resolve() in inputs:
        return False
    if not os.path.lexists(path):
        return True
    return is_drawing(path)


def is_drawing(path: Path) -> bool:
    """A plain file that `recognize --draw` wrote (its JPEG comment says so)."""
    from PIL import Image as PILImage

    if path.is_symlink() or not path.is_file():
        return False
    try:
        with PILImage.open(path) as pil:
            return pil.format == "JPEG" and pil.info.get("comment") == MARK
    except Exception:  # unreadable, not an image: not ours
        return False


def draw_recognition(image: Image, result: Recognition, out: Path) -> Path:
    """Write `out` (a JPEG): the image with the hits' boxes (in the file's pixels) and names."""
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont

    canvas = PILImage.fromarray(np.ascontiguousarray(image.pixels))
    sx, sy = canvas.width / image.size[0], canvas.height / image.size[1]
    pen = ImageDraw.Draw(canvas)
    width = max(2, canvas.width // 300)
    size = max(12, max(canvas.size) // 50)  # names readable on a phone's 4000-px photo as on a 640-px frame
    font = ImageFont.load_default(size=size)
    for k, hit in enumerate(result.hits):
        colour = COLOURS[k % len(COLOURS)]
        b = hit.box
        pen.rectangle([b.x0 * sx, b.y0 * sy, b.x1 * sx, b.y1 * sy], outline=colour, width=width)
        label = f"<{hit.concept.name}> {hit.score:.2f}"
        x, y = b.x0 * sx + width, max(0, b.y0 * sy - size - 2)
        pen.rectangle(pen.textbbox((x, y), label, font=font), fill=colour)
        pen.text((x, y), label, fill=(0, 0, 0), font=font)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        canvas.save(out, format="JPEG", quality=90, comment=MARK)
    except OSError as e:
        raise EdgeRapError(f"{out.parent}: cannot write the drawing ({e.strerror})") from None
    return out
