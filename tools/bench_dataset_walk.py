"""Benchmark the dataset walk `eval` begins with (docs/BENCHMARKS.md): `read_dataset` and `loose_photos` of a
synthetic dataset, a folder of `--concepts` concepts of `--photos` tiny photos each, timed in a fresh process once
per `--code` checkout (a folder holding edge_rap/: the code before a change beside the one after; this one by
default), the checkouts in turns, each its median of `--runs`, and its ratio to the first checkout's; and whether
every checkout read the same concepts and said the same lines.

  python tools/bench_dataset_walk.py [--concepts 2000] [--photos 5] [--runs 5] [--code CHECKOUT ...] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

#: Run by each checkout in a process of its own: one walk, its milliseconds and a hash of what it read and said.
_CHILD = """
import hashlib, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from edge_rap.eval.dataset import loose_photos, read_dataset
start = time.perf_counter()
concepts, loose = read_dataset(Path(sys.argv[2])), loose_photos(Path(sys.argv[2]))
took = 1000 * (time.perf_counter() - start)
print(took, hashlib.sha256(repr((concepts, loose)).encode()).hexdigest())
"""


def make_dataset(root: Path, concepts: int, photos: int) -> Path:
    """`concepts` folders of `photos` PNG files of 8x8 pixels each (taken for photos by their suffix)."""
    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 120, 40)).save(png, format="PNG")
    for c in range(concepts):
        folder = root / f"concept_{c:05d}"
        folder.mkdir(parents=True)
        for k in range(photos):
            (folder / f"{k}.png").write_bytes(png.getvalue())
    return root


def walk(code: Path, dataset: Path) -> tuple[float, str]:
    """One walk of `dataset` by the checkout `code`, in a fresh process: milliseconds, and the hash of its result."""
    done = subprocess.run([sys.executable, "-c", _CHILD, str(code), str(dataset)], capture_output=True, text=True,
                          cwd=code)
    if done.returncode:
        raise SystemExit(f"{code}: {done.stderr.strip()}")
    took, digest = done.stdout.split()
    return float(took), digest


def measure(codes: list[Path], concepts: int, photos: int, runs: int) -> dict:
    """Each checkout's median milliseconds (after one walk each not counted), its ratio to the first's, and whether
    all read the same."""
    with tempfile.TemporaryDirectory() as folder:
        dataset = make_dataset(Path(folder) / "dataset", concepts, photos)
        for code in codes:
            walk(code, dataset)
        times: dict[Path, list[float]] = {code: [] for code in codes}
        digests = set()
        for run in range(runs):
            for code in codes if run % 2 == 0 else codes[::-1]:
                took, digest = walk(code, dataset)
                times[code].append(took)
                digests.add(digest)
    first = statistics.median(times[codes[0]])
    return {"concepts": concepts, "photos_each": photos, "runs": runs, "same_result": len(digests) == 1,
            "by_code": {str(code): {"ms": round(statistics.median(t), 1),
                                    "ratio_to_first": round(statistics.median(t) / first, 3)}
                        for code, t in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--concepts", type=int, default=2000)
    parser.add_argument("--photos", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--code", type=Path, action="append", metavar="CHECKOUT")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    codes = [code.resolve() for code in args.code or [Path(__file__).resolve().parents[1]]]
    result = measure(codes, args.concepts, args.photos, args.runs)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.concepts} concepts x {args.photos} photos, median of {args.runs}; same result: "
          f"{result['same_result']}")
    for code, row in result["by_code"].items():
        print(f"  {code}: {row['ms']} ms ({row['ratio_to_first']}x the first)")


if __name__ == "__main__":
    main()
