"""How much detail a reference needs (`MIN_SPREAD` in edge_rap/memory/memory.py, docs/BENCHMARKS.md): random
square crops of a dev set's photos (a folder per concept), as `--box` would give them, grouped by their spread (the
largest channel's standard deviation, as `require_detail` measures it), and how they match the other concepts'
crops, the regions a frame is searched in: the best cosine, and the share of them above the embedder's threshold.

  python tools/detail_spread.py DATASET [--crops 12] [--seed 0] [--embedder efficientnet-lite0-int8]
  python tools/detail_spread.py DATASET --dark 0.12   # whole photos as at night: how they match (MIN_SPREAD)
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from edge_rap.config import model_cache
from edge_rap.models.cache import ModelCache
from edge_rap.perceive.embed import OnnxImageEmbedder
from edge_rap.perceive.images import read_image_file

BANDS = [(0, 2), (2, 4), (4, 8), (8, 12), (12, 20), (20, 40), (40, 256)]


def crops(dataset: Path, per_photo: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """(concept, pixels) of `per_photo` random squares, 48 px to half the shorter side, of each photo."""
    rng = np.random.default_rng(seed)
    made = []
    for folder in sorted(p for p in dataset.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
            pixels = read_image_file(path).image.pixels
            h, w = pixels.shape[:2]
            for _ in range(per_photo):
                side = int(rng.integers(48, min(h, w) // 2))
                y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
                made.append((folder.name, pixels[y:y + side, x:x + side]))
    return made


def dark(dataset: Path, light: float, seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(concept, photo, the photo with `light` of its light, sensor noise and JPEG) of each photo: taken at night."""
    rng = np.random.default_rng(seed)
    made = []
    for folder in sorted(p for p in dataset.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
            pixels = read_image_file(path).image.pixels
            dim = np.clip(pixels * light + rng.normal(0, 1.0, pixels.shape), 0, 255).astype(np.uint8)
            saved = io.BytesIO()
            Image.fromarray(dim).save(saved, "JPEG", quality=85)
            made.append((folder.name, pixels, np.asarray(Image.open(saved).convert("RGB"))))
    return made


def spread(pixels: np.ndarray) -> float:
    """The largest channel's standard deviation, as `require_detail` measures it."""
    return float(pixels.reshape(-1, pixels.shape[-1]).std(axis=0).max())


def report_dark(embedder: OnnxImageEmbedder, threshold: float, dataset: Path, light: float, seed: int) -> None:
    """Each dim photo against the others as they were: its own concept's best cosine, and another's."""
    made = dark(dataset, light, seed)
    names = np.array([name for name, _, _ in made])
    bright = np.concatenate([embedder.embed([p]) for _, p, _ in made])
    rows = []
    for k, (name, _, dim) in enumerate(made):
        cosines = bright @ embedder.embed([dim])[0]
        own = cosines[(names == name) & (np.arange(len(made)) != k)].max()
        rows.append((spread(dim), own, cosines[names != name].max()))
    table = np.array(rows)
    for low, high in [(0, 2), (2, 8), (8, 256)]:
        band = table[(table[:, 0] >= low) & (table[:, 0] < high)]
        if len(band):
            print(f"light {light} spread {low}-{high}: photos {len(band)}   median best cosine to its own concept "
                  f"{np.median(band[:, 1]):.3f}, to another {np.median(band[:, 2]):.3f}   share with another above "
                  f"the threshold {np.mean(band[:, 2] > threshold):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--crops", type=int, default=12, help="crops per photo (default 12)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embedder", default="efficientnet-lite0-int8")
    parser.add_argument("--dark", type=float, help="whole photos with this share of their light instead of crops")
    args = parser.parse_args()
    manifest = ModelCache(model_cache()).manifest(args.embedder)
    embedder = OnnxImageEmbedder(manifest, "cpu")
    if args.dark:
        report_dark(embedder, manifest.threshold, args.dataset, args.dark, args.seed)
        return
    made = crops(args.dataset, args.crops, args.seed)
    names = np.array([name for name, _ in made])
    spreads = np.array([spread(p) for _, p in made])
    vectors = np.concatenate([embedder.embed([p]) for _, p in made])
    cosines = vectors @ vectors.T
    best = np.array([cosines[k][names != names[k]].max() for k in range(len(made))])
    above = np.array([(cosines[k][names != names[k]] > manifest.threshold).mean() for k in range(len(made))])
    print(f"{args.embedder}: {len(made)} crops, threshold {manifest.threshold}")
    for low, high in BANDS:
        band = (spreads >= low) & (spreads < high)
        if band.any():
            print(f"spread {low:>3}-{high:<3} crops {band.sum():4d}   median best cosine to another concept's crop "
                  f"{np.median(best[band]):.3f}   share of them above the threshold {above[band].mean():.3f}")


if __name__ == "__main__":
    main()
