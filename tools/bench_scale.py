"""Benchmark a large memory (docs/BENCHMARKS.md): `recognize` of one photo in a fresh process, and whether an
exact copy of a reference photo is ever lost, at N concepts; with --index-check instead, what the check of the
mapped index files before each search costs (a file truncated under a reader is read again, not a SIGBUS).

The concepts are distinct real photos: random crops, flips and colour shifts of the object and scene photos
among the scikit-image and matplotlib samples (one per concept; not the textures, whose crops are alike and
which the negative bank rightly refuses), remembered with the default embedder.

  python tools/bench_scale.py [--concepts 1000] [--copies 40] [--work DIR] [--json] [--index-check]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


SOURCES = ("astronaut", "camera", "chelsea", "coffee", "coins", "hubble_deep_field", "logo", "rocket", "grace_hopper",
           "retina", "colorwheel", "page")


def distinct_photos(count: int, seed: int = 0) -> list[np.ndarray]:
    from edge_rap.export.calibrate import sample_photo_bank

    rng = np.random.default_rng(seed)
    bank = [p for name, p in sample_photo_bank().items() if name in SOURCES]
    photos = []
    for k in range(count):
        base = bank[k % len(bank)]
        h, w = base.shape[:2]
        ch, cw = int(h * rng.uniform(0.35, 0.7)), int(w * rng.uniform(0.35, 0.7))
        y, x = rng.integers(0, h - ch), rng.integers(0, w - cw)
        photo = base[y:y + ch, x:x + cw].astype(np.float32)
        photo = photo * rng.uniform(0.7, 1.2, size=3) + rng.uniform(-25, 25, size=3)
        photo = np.clip(photo[:, ::-1] if rng.random() < 0.5 else photo, 0, 255).astype(np.uint8)
        photos.append(np.ascontiguousarray(photo))
    return photos


def build(memory_dir: Path, photos: list[np.ndarray], work: Path) -> float:
    """Remember every photo as its own concept; seconds per concept (median)."""
    from PIL import Image as PILImage

    from edge_rap.config import load_settings
    from edge_rap.household import Household

    settings = load_settings(memory=str(memory_dir), device="x86-cpu")
    times = []
    with Household(settings) as home:
        have = {c.name for c in home.concepts()}
        for k, photo in enumerate(photos):
            name = f"thing{k:04d}"
            path = work / "refs" / f"{name}.jpg"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                PILImage.fromarray(photo).save(path, quality=92)
            if name in have:
                continue
            started = time.perf_counter()
            home.memory.remember(name, [path], f"thing number {k}", "thing")
            times.append(time.perf_counter() - started)
            if k % 100 == 0:
                print(f"remembered {k + 1}/{len(photos)}", file=sys.stderr, flush=True)
    return statistics.median(times) if times else float("nan")


def recognize(memory_dir: Path, photo: Path) -> tuple[float, list[str]]:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "edge_rap", "recognize", str(photo), "--json", "--memory",
                          str(memory_dir), "--device", "x86-cpu"], capture_output=True, text=True, check=True,
                         env=os.environ)
    took = time.perf_counter() - started
    return took, [c["name"] for c in json.loads(out.stdout)["concepts"]]


def index_check(memory_dir: Path, repeat: int = 400) -> dict:
    """A search through a reader's view (as the daemon's) with the check of its mapped files and, in turns, one
    without it; the check alone; and the search that first looks at the bytes of files mapped within a timestamp step
    of their last change. Queries: stored vectors, slightly moved (a new photo of a remembered thing)."""
    from dataclasses import replace

    from edge_rap.config import load_settings
    from edge_rap.household import Household
    from timing import interleaved_median_ms, median_ms

    settings = load_settings(memory=str(memory_dir), device="x86-cpu")
    with Household(settings) as home:
        checked, unchecked = home.memory.view(), home.memory.view()
        unchecked._changed = dict  # (the search as it was: no file looked at)
        _, vectors = home.memory.store.vectors(checked.space)
        rng = np.random.default_rng(2)
        queries = vectors[rng.integers(0, len(vectors), 64)] + 0.01 * rng.standard_normal((64, vectors.shape[1]))
        turn = iter(range(10**9))
        with_check, without = interleaved_median_ms(lambda: checked.search(queries[next(turn) % 64], 10),
                                                    lambda: unchecked.search(queries[next(turn) % 64], 10), repeat)
        alone = median_ms(checked._changed, repeat)

        def settling() -> None:  # the first search once the step after the files' last change passed (`FileState`)
            checked._mapped = {path: replace(state, settled=False) for path, state in checked._mapped.items()}
            checked.search(queries[next(turn) % 64], 10)

        settle = median_ms(settling, 20)
        return {"vectors": len(vectors), "index_files": len(checked.indexes), "check_alone_us": round(1000 * alone, 1),
                "search_with_check_ms": round(with_check, 3), "search_without_check_ms": round(without, 3),
                "with_over_without": round(with_check / without, 3),
                "first_search_after_timestamp_step_ms": round(settle, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--concepts", type=int, default=1000)
    parser.add_argument("--copies", type=int, default=40)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--index-check", action="store_true", help="time the mapped files' check, not recognize")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    memory_dir = work / "memory"
    photos = distinct_photos(args.concepts)
    remember_s = build(memory_dir, photos, work)
    if args.index_check:
        report = {"concepts": args.concepts, **index_check(memory_dir)}
        print(json.dumps(report) if args.json else json.dumps(report, indent=1))
        return 0
    rng = np.random.default_rng(1)
    picks = rng.choice(args.concepts, size=min(args.copies, args.concepts), replace=False)
    times, lost = [], []
    for k in picks:
        took, names = recognize(memory_dir, work / "refs" / f"thing{k:04d}.jpg")
        times.append(took)
        if f"thing{k:04d}" not in names:
            lost.append(int(k))
    report = {"concepts": args.concepts, "remember_s_median": round(remember_s, 3),
              "recognize_fresh_process_s_median": round(statistics.median(times), 2),
              "recognize_fresh_process_s_max": round(max(times), 2), "exact_copies": len(picks),
              "exact_copies_lost": lost}
    print(json.dumps(report) if args.json else json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
