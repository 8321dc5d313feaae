"""How much detail a reference needs (`MIN_SPREAD` in edge_rap/memory/memory.py, docs/BENCHMARKS.md): random
square crops of a dev set's photos (a folder per concept), as `--box` would give them, grouped by their spread (the
largest channel's standard deviation, as `require_detail` measures it), and how they match the other concepts'
crops, the regions a frame is searched in: the best cosine, and the share of them above the embedder's threshold.

  python tools/detail_spread.py DATASET [--crops 12] [--seed 0] [--embedder efficientnet-lite0-int8]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--crops", type=int, default=12, help="crops per photo (default 12)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embedder", default="efficientnet-lite0-int8")
    args = parser.parse_args()
    manifest = ModelCache(model_cache()).manifest(args.embedder)
    embedder = OnnxImageEmbedder(manifest, "cpu")
    made = crops(args.dataset, args.crops, args.seed)
    names = np.array([name for name, _ in made])
    spreads = np.array([p.reshape(-1, p.shape[-1]).std(axis=0).max() for _, p in made])
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
