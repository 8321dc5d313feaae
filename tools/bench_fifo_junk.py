"""What a FIFO writer's junk (bytes that are no video) costs the camera reading it, a round being one open
tried on its bytes. The writer is another process, so this process's CPU is the camera's alone. With
--back-to-back N instead: a shell's two writers one after the other, `cat a.y4m > p; cat b.avi > p` (60 frames each,
read in real time as `run` reads them), N times: the runs where b was read as a clip of its own (read as more of a's
raw video, it is lost).

  python tools/bench_fifo_junk.py [--seconds 20] [--rate-mb 0 (as fast as it is read)] [--back-to-back N]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from edge_rap.perceive.camera import Camera, parse_source

WRITER = """
import os, sys, time
block, rate = os.urandom(1 << 16), float(sys.argv[2])
with open(sys.argv[1], "wb", buffering=0) as pipe:
    sent, start = 0, time.monotonic()
    while True:
        if rate and sent > rate * (time.monotonic() - start):
            time.sleep(0.01)
            continue
        sent += pipe.write(block)
"""


def clip(path: Path, frames: int = 3) -> bytes:
    """An MJPG clip's bytes."""
    import cv2
    import numpy as np

    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (320, 240))
    for k in range(frames):
        out.write(np.full((240, 320, 3), 40 * k % 256, np.uint8))
    out.release()
    return path.read_bytes()


def y4m(frames: int) -> bytes:
    """A raw video (YUV4MPEG2) of `frames` 320x240 frames."""
    header = b"YUV4MPEG2 W320 H240 F30:1 Ip A1:1 C420jpeg\n"
    return header + b"".join(b"FRAME\n" + bytes([4 * k % 256]) * (320 * 240 * 3 // 2) for k in range(frames))


def back_to_back(work: Path) -> bool:
    """One run of two shell writers: whether the second one's 60 frames were read as its own clip."""
    (work / "a.y4m").write_bytes(y4m(60))
    clip(work / "b.avi", 60)
    pipe = work / "pipe"
    os.mkfifo(pipe)
    stop = threading.Event()
    camera = Camera(parse_source(f"pipe={pipe}"), stop).start()
    shell = subprocess.Popen(["sh", "-c", f"cat '{work / 'a.y4m'}' > '{pipe}'; cat '{work / 'b.avi'}' > '{pipe}'"])
    deadline = time.monotonic() + 30
    while camera.outages < 2 and not camera.finished.is_set() and time.monotonic() < deadline:
        camera.slot.take()
        time.sleep(0.02)
    stop.set()
    camera.join(5)
    shell.kill()
    shell.wait()
    pipe.unlink()
    return camera.frames_read == 120 and camera.outages == 2


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate-mb", type=float, default=0.0, help="the writer's MB/s (0: as fast as it is read)")
    parser.add_argument("--back-to-back", type=int, default=0, metavar="N", help="N runs of a shell's two writers")
    args = parser.parse_args()
    if args.back_to_back:
        with tempfile.TemporaryDirectory() as work:
            kept = sum(back_to_back(Path(work)) for _ in range(args.back_to_back))
        print(f"the second writer's clip kept in {kept} of {args.back_to_back} runs")
        return 0
    with tempfile.TemporaryDirectory() as work:
        pipe = Path(work) / "pipe"
        os.mkfifo(pipe)
        stop = threading.Event()
        camera = Camera(parse_source(f"pipe={pipe}"), stop)  # (frames left for newer ones)
        rounds, play = [], Camera._play

        def counted(self, *a):
            rounds.append(time.monotonic())
            return play(self, *a)

        Camera._play = counted
        camera.start()
        with open(pipe, "wb") as first:  # a good clip first: a first writer's junk is the source's error
            first.write(clip(Path(work) / "a.avi"))
        while not camera.outages and not camera.finished.is_set():
            time.sleep(0.05)
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(pipe), str(args.rate_mb * 1e6)],
                                  stderr=subprocess.DEVNULL)
        time.sleep(2.0)  # (the first rounds, imports and FFmpeg's first open, left out)
        before, cpu, start = len(rounds), cpu_s(), time.monotonic()
        time.sleep(args.seconds)
        n, used, wall = len(rounds) - before, cpu_s() - cpu, time.monotonic() - start
        writer.kill()
        writer.wait()
        stop.set()
        camera.join(5)
    print(f"{n} rounds in {wall:.1f} s ({n / wall:.1f}/s); CPU {used:.2f} s ({used / wall:.2f} cores); "
          f"{1000 * used / max(n, 1):.1f} ms CPU a round; error={camera.error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
