"""Pictures for a person to check: an image with each recognised concept's box and name drawn on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.types import Image, Recognition

COLOURS = [(230, 57, 70), (42, 157, 143), (233, 196, 106), (69, 123, 157), (244, 162, 97), (131, 56, 236)]


def drawing_paths(sources: list[str], out_dir: Path) -> list[Path]:
    """out_dir/<stem>.jpg for each input, numbered where two inputs share a name (a/frame.png, b/frame.png)."""
    paths, taken = [], set()
    for source in sources:
        stem, k = Path(source).stem, 1
        name = stem
        while name in taken:
            name, k = f"{stem}-{k}", k + 1
        taken.add(name)
        paths.append(out_dir / f"{name}.jpg")
    return paths


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
        canvas.save(out, quality=90)
    except OSError as e:
        raise EdgeRapError(f"{out.parent}: cannot write the drawing ({e.strerror})") from None
    return out
