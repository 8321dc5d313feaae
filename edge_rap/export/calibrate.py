"""The shipped similarity threshold of an embedder, from real photos that ship on PyPI (no evaluation data).

The bank is every sample photo bundled with scikit-image plus matplotlib's grace_hopper.jpg: twenty-odd
unrelated real photos. Each is queried (whole + crops, as a camera frame is) against every other one
remembered (with its augmented views); the threshold is the highest score two different photos reached.
Anything at or below it has been seen to happen between unrelated real photos, so "that is <bo>" needs
more. It is computed once when a model is exported and written into its manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_rap.errors import EdgeRapError
from edge_rap.perceive.embed import ImageEmbedder
from edge_rap.perceive.views import augmented_views, query_views

#: scikit-image's bundled sample photos (grey ones are used as grey RGB) and matplotlib's one photo.
SKIMAGE_SAMPLES = (
    "astronaut", "brick", "camera", "cell", "chelsea", "coffee", "coins", "colorwheel", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "logo", "moon", "page", "retina", "rocket",
)


@dataclass(frozen=True)
class Calibration:
    threshold: float
    bank: list[str]
    closest_pair: tuple[str, str]

    def to_json(self) -> dict:
        return {"threshold": round(self.threshold, 4), "bank": self.bank, "closest_pair": list(self.closest_pair),
                "method": "max over ordered pairs of distinct sample photos of best(query views x reference views)"}


def _rgb(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        array = (array * 255 if array.max() <= 1.0 else array).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.ascontiguousarray(array[..., :3])


def sample_photo_bank() -> dict[str, np.ndarray]:
    """The real sample photos shipped by scikit-image and matplotlib (installed with the export extra)."""
    try:
        import matplotlib.cbook
        from PIL import Image as PILImage
        from skimage import data
    except ImportError as e:
        raise EdgeRapError(f"calibration needs scikit-image and matplotlib ({e.name} missing): pip install "
                           "'edge_rap[export]'") from None
    bank = {name: _rgb(getattr(data, name)()) for name in SKIMAGE_SAMPLES}
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        bank["grace_hopper"] = np.asarray(PILImage.open(f).convert("RGB"))
    return bank


def calibrate_threshold(embedder: ImageEmbedder, bank: dict[str, np.ndarray] | None = None) -> Calibration:
    bank = bank or sample_photo_bank()
    queries = {n: embedder.embed(query_views(p)) for n, p in bank.items()}
    references = {n: embedder.embed([v for _, v in augmented_views(p)]) for n, p in bank.items()}
    best, pair = -1.0, ("", "")
    for a, q in queries.items():
        for b, r in references.items():
            if a != b:
                score = float((q @ r.T).max())
                if score > best:
                    best, pair = score, (a, b)
    return Calibration(best, sorted(bank), pair)


def write_calibrated_manifest(staged: Path, manifest: dict) -> dict:
    """Write an exported embedder's manifest, open the folder as the runtime will, and write the manifest again
    with the threshold calibrated on the sample photos (`manifest` gains its "calibration")."""
    from edge_rap.models.cache import Manifest, write_manifest
    from edge_rap.perceive.embed import OnnxImageEmbedder

    write_manifest(staged, manifest)
    manifest["calibration"] = calibrate_threshold(OnnxImageEmbedder(Manifest.load(staged), "cpu")).to_json()
    write_manifest(staged, manifest)
    return manifest
