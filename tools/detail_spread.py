"""How much detail a reference needs (`MIN_SPREAD`, `MIN_BOX_SPREAD` and `PLAIN_SHARE` in
edge_rap/memory/memory.py, docs/BENCHMARKS.md): random square crops of a dev set's photos (a folder per concept),
as `--box` would give them, grouped by their spread (the largest channel's standard deviation, as
`require_detail` measures it) and by whether that is under PLAIN_SHARE of their photo's ("plain": a table top in
a photo), and how they match the other concepts' crops, the regions a frame is searched in: the best cosine, and
the share of them above the embedder's threshold. With --dark, the same of the photos as taken at night (that share
of their light, sensor noise and JPEG), and how the whole dim photos match the photos as they were.

  python tools/detail_spread.py DATASET [--crops 12] [--seed 0] [--embedder efficientnet-lite0-int8] [--dark 0.12]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from edge_rap.config import model_cache
from edge_rap.memory.memory import PLAIN_SHARE, detail_spread
from edge_rap.models.cache import ModelCache
from edge_rap.perceive.embed import OnnxImageEmbedder
from edge_rap.perceive.images import read_image_file

BANDS = [(0, 2), (2, 4), (4, 8), (8, 12), (12, 20), (20, 40), (40, 256)]


def photos(dataset: Path) -> list[tuple[str, np.ndarray]]:
    """(concept, pixels) of each photo, a folder per concept."""
    return [(folder.name, read_image_file(path).image.pixels)
            for folder in sorted(p for p in dataset.iterdir() if p.is_dir() and not p.name.startswith("."))
            for path in sorted(p for p in folder.iterdir() if not p.name.startswith("."))]


def at_night(pixels: np.ndarray, light: float, rng: np.random.Generator) -> np.ndarray:
    """The photo with `light` of its light, a sensor's noise and a JPEG's loss."""
    dim = np.clip(pixels * light + rng.normal(0, 1.0, pixels.shape), 0, 255).astype(np.uint8)
    saved = io.BytesIO()
    Image.fromarray(dim).save(saved, "JPEG", quality=85)
    return np.asarray(Image.open(saved).convert("RGB"))


def crops(taken: list[tuple[str, np.ndarray]], per_photo: int, rng: np.random.Generator
          ) -> list[tuple[str, np.ndarray, bool]]:
    """(concept, pixels, plain) of `per_photo` random squares, 48 px to half the shorter side, of each photo."""
    made = []
    for name, pixels in taken:
        h, w = pixels.shape[:2]
        whole = detail_spread(pixels)
        for _ in range(per_photo):
            side = int(rng.integers(48, min(h, w) // 2))
            y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
            crop = pixels[y:y + side, x:x + side]
            made.append((name, crop, detail_spread(crop) < PLAIN_SHARE * whole))
    return made


def report_crops(title: str, made: list[tuple[str, np.ndarray, bool]], vectors: np.ndarray, names: np.ndarray,
                 others: np.ndarray, threshold: float) -> None:
    """Each crop against `others` (the vectors of the bright photos' crops, of `names`), by spread and plainness."""
    spreads = np.array([detail_spread(p) for _, p, _ in made])
    plain = np.array([flag for _, _, flag in made])
    cosines = [others[names != name] @ vectors[k] for k, (name, _, _) in enumerate(made)]
    best = np.array([c.max() for c in cosines])
    above = np.array([(c > threshold).mean() for c in cosines])
    print(title)
    for low, high in BANDS:
        for is_plain in (True, False):
            band = (spreads >= low) & (spreads < high) & (plain == is_plain)
            if band.any():
                print(f"spread {low:>3}-{high:<3} {'plain' if is_plain else 'other'} crops {band.sum():4d}   median "
                      f"best cosine to another concept's crop {np.median(best[band]):.3f}   share of them above the "
                      f"threshold {above[band].mean():.3f}")


def report_dark_photos(embedder: OnnxImageEmbedder, taken: list[tuple[str, np.ndarray]], dim: list[np.ndarray],
                       threshold: float) -> None:
    """Each dim photo against the others as they were: its own concept's best cosine, and another's."""
    names = np.array([name for name, _ in taken])
    bright = np.concatenate([embedder.embed([p]) for _, p in taken])
    rows = []
    for k, pixels in enumerate(dim):
        cosines = bright @ embedder.embed([pixels])[0]
        own = cosines[(names == names[k]) & (np.arange(len(taken)) != k)].max()
        rows.append((detail_spread(pixels), own, cosines[names != names[k]].max()))
    table = np.array(rows)
    for low, high in [(0, 2), (2, 8), (8, 256)]:
        band = table[(table[:, 0] >= low) & (table[:, 0] < high)]
        if len(band):
            print(f"whole dim photos, spread {low}-{high}: {len(band)}   median best cosine to its own concept "
                  f"{np.median(band[:, 1]):.3f}, to another {np.median(band[:, 2]):.3f}   share with another above "
                  f"the threshold {np.mean(band[:, 2] > threshold):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--crops", type=int, default=12, help="crops per photo (default 12)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embedder", default="efficientnet-lite0-int8")
    parser.add_argument("--dark", type=float, help="also the photos with this share of their light (at night)")
    args = parser.parse_args()
    manifest = ModelCache(model_cache()).manifest(args.embedder)
    embedder = OnnxImageEmbedder(manifest, "cpu")
    rng = np.random.default_rng(args.seed)
    taken = photos(args.dataset)
    made = crops(taken, args.crops, rng)
    names = np.array([name for name, _, _ in made])
    vectors = np.concatenate([embedder.embed([p]) for _, p, _ in made])
    print(f"{args.embedder}: {len(made)} crops, threshold {manifest.threshold}, plain: under {PLAIN_SHARE} of "
          "the photo's spread")
    report_crops("crops of the photos", made, vectors, names, vectors, manifest.threshold)
    if args.dark:
        dim = [at_night(pixels, args.dark, rng) for _, pixels in taken]
        dark = crops([(name, pixels) for (name, _), pixels in zip(taken, dim)], args.crops, rng)
        dark_vectors = np.concatenate([embedder.embed([p]) for _, p, _ in dark])
        report_crops(f"crops of the photos with {args.dark} of their light", dark, dark_vectors, names, vectors,
                     manifest.threshold)
        report_dark_photos(embedder, taken, dim, manifest.threshold)


if __name__ == "__main__":
    main()
