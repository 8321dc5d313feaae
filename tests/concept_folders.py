"""The dataset `eval` reads, a folder per concept, as its tests make it (the `dataset` fixture), and a refusal
they stage: tests/test_eval_dataset.py reads it, tests/test_evaluate.py evaluates it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from photos import paste, photo, save_photo

CONCEPTS = ("chelsea", "astronaut", "coffee", "rocket", "grace_hopper")


def _views(name: str) -> list[np.ndarray]:
    img = photo(name)
    h, w = img.shape[:2]
    return [np.ascontiguousarray(img[h // 8 :, : w * 7 // 8][:, ::-1]), paste(photo("gravel"), img, 0.5, 0.3, 0.6)]


def concept_folders(root: Path) -> Path:
    """A folder per concept in `root`: `a.png` (the reference) and two other views, `b0.jpg` and `b1.jpg`."""
    for name in CONCEPTS:
        save_photo(root / name, name, filename="a.png")
        for k, view in enumerate(_views(name)):
            save_photo(root / name, name, view, filename=f"b{k}.jpg")
    return root


def refused_stat(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """A stat of any path ending in `name` refused, as of an entry in a folder this account may list but not search
    (root, which the tests run as, is never refused: the refusal is staged)."""
    stat = Path.stat

    def refused(path, *args, **kwargs):
        if f"/{path.as_posix()}".endswith(f"/{name}"):
            raise PermissionError(13, "Permission denied")
        return stat(path, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", refused)
