"""Real sample photos that ship with scikit-image (installed with the export extra), for retrieval tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def photo(name: str) -> np.ndarray:
    return _bank()[name]


def side_by_side(*names: str) -> np.ndarray:
    """Bank photos at 300 x 300 each, left to right: a group photo (two people: two faces of one size)."""
    from PIL import Image

    return np.concatenate([np.asarray(Image.fromarray(photo(n)).resize((300, 300))) for n in names], axis=1)


def unseen_photos() -> dict[str, np.ndarray]:
    """Real photos that ship with scikit-image but are not in the calibration bank that sets the shipped
    threshold: "none of mine" is tested on photos that threshold never saw."""
    from skimage import data
    from skimage.color import gray2rgb

    left, right, _ = data.stereo_motorcycle()
    return {"motorcycle-left": left, "motorcycle-right": np.ascontiguousarray(right[:, ::-1]),
            "clock": gray2rgb(data.clock()), "text": gray2rgb(data.text())}


_cache: dict[str, np.ndarray] = {}


def _bank() -> dict[str, np.ndarray]:
    if not _cache:
        from edge_rap.export.calibrate import sample_photo_bank

        _cache.update(sample_photo_bank())
    return _cache


def save_photo(folder: Path, name: str, pixels: np.ndarray | None = None, filename: str | None = None) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (filename or f"{name}.png")
    Image.fromarray(photo(name) if pixels is None else pixels).save(path)
    return path


def paste(background: np.ndarray, item: np.ndarray, width_fraction: float, x: float, y: float) -> np.ndarray:
    """The item scaled to a fraction of a 640x480 frame's width, pasted at relative position (x, y)."""
    from PIL import Image

    bg = Image.fromarray(background).resize((640, 480))
    w = int(640 * width_fraction)
    h = min(470, int(item.shape[0] * w / item.shape[1]))
    small = Image.fromarray(item).resize((w, h))
    bg.paste(small, (int((640 - w) * x), int((480 - h) * y)))
    return np.asarray(bg)
