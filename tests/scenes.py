"""Test images made with numpy/Pillow: photo-like synthetic scenes (distinct from the negative bank's
clutter generator, so that each is recognised as itself) and flat noise that is none of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def scene(seed: int, width: int = 256, height: int = 256) -> np.ndarray:
    """A smooth two-colour gradient with a wave texture, a few ring targets and some text."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(10_000 + seed)
    yy, xx = np.mgrid[0:height, 0:width]
    yy, xx = yy / height, xx / width
    c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = c1 * (1 - yy[..., None]) + c2 * yy[..., None]
    fx, fy = rng.uniform(2, 20, 2)
    img += 40 * np.sin(2 * np.pi * (fx * xx + fy * yy) + rng.uniform(0, 6.28))[..., None] * rng.uniform(-1, 1, 3)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    size = min(width, height)
    for k in range(int(rng.integers(3, 7))):
        cx, cy = int(rng.integers(20, width - 20)), int(rng.integers(20, height - 20))
        r = int(rng.integers(size // 25, size // 4))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        for j in range(r, 0, -max(2, r // 5)):
            draw.ellipse([cx - j, cy - j, cx + j, cy + j], outline=colour, width=2)
        draw.text((cx, cy), "abc"[k % 3] * 3, fill=tuple(255 - v for v in colour))
    return np.asarray(pil)


def noise(seed: int = 0, size: int = 256) -> np.ndarray:
    """Uniform RGB noise: unrelated to every scene."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def save(path: Path, pixels: np.ndarray, **kw) -> Path:
    from PIL import Image

    Image.fromarray(pixels).save(path, **kw)
    return path


def scene_file(folder: Path, seed: int, suffix: str = ".png", **kw) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return save(folder / f"scene{seed}{suffix}", scene(seed, **kw))
