"""Benchmark `edge-rap backup` and `edge-rap restore` (docs/BENCHMARKS.md): a memory of every photo of a folder of
concepts (one subfolder each, all its photos remembered), backed up as .tar and .tar.gz and restored, medians.

  python tools/bench_backup.py --dataset DIR [--repeat 5] [--work DIR] [--json] [--beside-frames N]

--beside-frames N also times `recognize` on a 640 x 480 frame (one of the dataset's photos) with nothing else
running and beside `run`'s backup thread (daemon/backups.py, its own nice value raised) writing backups one after
the other, in turns: N frames each way per turn, `--repeat` turns; the medians per frame and the backups made.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from edge_rap.config import load_settings
from edge_rap.household import Household
from edge_rap.memory.backup import back_up
from edge_rap.memory.restore import restore

PHOTOS = {".jpg", ".jpeg", ".png", ".webp", ".heic"}


def build(memory: Path, dataset: Path) -> None:
    """Remember each subfolder's photos as one concept (skipped where the memory already has it)."""
    with Household(load_settings(memory=str(memory), device="x86-cpu"), prepare=True) as home:
        have = {c.name for c in home.concepts()}
        for folder in sorted(p for p in dataset.iterdir() if p.is_dir() and p.name not in have):
            photos = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in PHOTOS)
            home.remember(folder.name, photos, "", "")


def median_s(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def beside_backups(memory: Path, work: Path, frames: int, repeat: int) -> dict:
    """Per-frame `recognize` alone and while the scheduled backups' worker writes backups back to back."""
    import cv2

    from edge_rap.daemon.backups import BackupSchedule, ScheduledBackups
    from edge_rap.perceive.images import read_image_file
    from edge_rap.types import Image

    folder = work / "scheduled"
    ticks = iter(range(10**9))  # a clock a second on at every look: every look finds a backup due
    times: dict[str, list[float]] = {"alone": [], "beside_backups": []}
    made = 0
    with Household(load_settings(memory=str(memory), device="x86-cpu")) as home:
        photo = read_image_file(Path(home.store.views(home.concepts()[0].id)[0].image_path)).image
        frame = Image(cv2.resize(photo.pixels, (640, 480)), "frame")
        home.recognize(frame)  # warm
        for _ in range(repeat):
            for kind in times:
                backups = None
                if kind == "beside_backups":
                    folder.mkdir(exist_ok=True)
                    backups = ScheduledBackups(memory, BackupSchedule(folder, 0.0, 10**6),
                                               wall=lambda: 1.8e9 + next(ticks), first_s=0, poll_s=0).start()
                for _ in range(frames):
                    start = time.perf_counter()
                    home.recognize(frame)
                    times[kind].append(1000 * (time.perf_counter() - start))
                if backups is not None:
                    backups.close(60.0)
                    made += len(list(folder.glob("edge-rap-backup-*.tar")))
                    shutil.rmtree(folder)
    return {f"recognize_{k}_ms": round(statistics.median(v), 1) for k, v in times.items()} | {"backups_made": made,
            "frames_each_way": frames * repeat}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--dataset", required=True, type=Path, help="one subfolder of photos per concept")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each, the median reported (default 5)")
    parser.add_argument("--work", type=Path, help="where the memory and archives go (default a temporary folder)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    parser.add_argument("--beside-frames", type=int, default=0, metavar="N", help="also time recognize alone and "
                        "beside the scheduled backups' worker, N frames each way per turn")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-backup-"))
    memory = work / "memory"
    build(memory, args.dataset)
    result = {"memory_bytes": sum(p.stat().st_size for p in memory.rglob("*") if p.is_file())}
    for suffix in (".tar", ".tar.gz"):
        archive = work / f"house{suffix}"
        result[f"backup{suffix}_s"] = median_s(lambda: back_up(memory, archive, force=True), args.repeat)
        result[f"{suffix}_bytes"] = archive.stat().st_size

        def restored() -> None:
            shutil.rmtree(work / "restored", ignore_errors=True)
            restore(archive, work / "restored")

        result[f"restore{suffix}_s"] = median_s(restored, args.repeat)
    if args.beside_frames:
        result |= beside_backups(memory, work, args.beside_frames, args.repeat)
    result["concepts"] = restore(work / "house.tar", work / "restored", replace=True).counts.concepts
    shutil.rmtree(work / "restored", ignore_errors=True)
    for aside in work.glob("restored.before-restore-*"):
        shutil.rmtree(aside)
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}"
                                                         for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
