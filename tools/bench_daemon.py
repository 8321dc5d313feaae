"""Benchmark `edge-rap run` on generated videos of the demo's real sample photos (docs/BENCHMARKS.md).

Cases (each a fresh daemon in this process, the `x86-cpu` profile, template mode, muted):
  household  a 60 s scene: three remembered concepts entering, moving, leaving, two at once, one returning
             beside an unknown object. Announcement latency in source time and in wall time (first visible
             frame to the line reported), leaving latency, per-stage medians, processed FPS while concepts
             are in view, source-to-decision lag, dropped frames.
  static     60 s of an unchanged 640x480 scene at 15 FPS with a remembered concept in view: CPU use (cores)
             after the first 10 s.
  soak       a long scene (default 600 s): RSS every 5 s; growth after the first minute.
  provision  the household scene twice with the API served from the daemon (`run --serve`): once alone, once
             while a companion adds a concept with one photo every 5 s; recognitions per second and the
             longest pause between two recognitions, in frames of the 15 FPS camera.
  sigterm    `edge-rap run` as a process, SIGTERM after its first announcement, 5 times: seconds to exit,
             exit status, and whether the events it printed are all in the log.

  python tools/bench_daemon.py [--cases household,static,soak] [--soak-s 600] [--work DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from edge_rap.config import load_settings
from edge_rap.daemon.loop import Daemon, DaemonOptions
from edge_rap.daemon.scenario import (
    Appearance,
    Scenario,
    household_scenario,
    is_whole,
    truth,
    write_video,
)
from edge_rap.daemon.track import VoteSettings
from edge_rap.household import Household
from edge_rap.perceive.camera import parse_source


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def prepare(work: Path):
    """The demo's concepts remembered in a fresh memory, and the photos to render."""
    from PIL import Image as PILImage

    from edge_rap.export.calibrate import sample_photo_bank
    from edge_rap.eval.demo import CONCEPTS

    bank = sample_photo_bank()
    photos = {c.name: bank[c.sample] for c in CONCEPTS} | {"coins": bank["coins"]}
    settings = load_settings(memory=str(work / "memory"), device="x86-cpu")
    with Household(settings) as home:
        for c in CONCEPTS:
            if home.store.find(c.name) is None:
                PILImage.fromarray(photos[c.name]).save(work / f"{c.name}.png")
                home.memory.remember(c.name, [work / f"{c.name}.png"], c.description, c.category)
    return settings, photos, bank["brick"]


def run(settings, video: Path, on_tick=None, tick_s: float = 5.0) -> tuple[list, object, float]:
    """Run the daemon on `video` in real time, as `edge-rap run` does; (reported events with their monotonic
    time, summary, start)."""
    reported = []
    with Household(settings) as home:
        home.retriever  # model loading is start-up, not the run
        options = DaemonOptions((parse_source(f"bench={video}"),), votes=VoteSettings(cooldown_s=5.0))
        daemon = Daemon(home, options, lambda e: reported.append((time.monotonic(), e)))
        stop, started = threading.Event(), time.monotonic()
        worker = threading.Thread(target=lambda: setattr(daemon, "result", daemon.run(stop)))
        worker.start()
        while worker.is_alive():
            worker.join(tick_s)
            if on_tick is not None:
                on_tick(time.monotonic() - started)
    return reported, daemon.result, started


def household_video(photos, background, work: Path) -> Path:
    """The household scene's video in `work`, written again unless whole: one cut short (a full disk, a bench
    stopped as it wrote) was kept on exists() alone and measured as the scene."""
    scenario, video = household_scenario(["chelsea", "mug", "rocket"], "coins", 60.0), work / "household.mp4"
    return video if is_whole(video, scenario) else write_video(scenario, photos, background, video)


def household(settings, photos, background, work: Path) -> dict:
    scenario = household_scenario(["chelsea", "mug", "rocket"], "coins", 60.0)
    video = write_video(scenario, photos, background, work / "household.mp4")
    expected = truth(scenario)
    reported, summary, started = run(settings, video)
    arrivals = [e for _, e in reported if e.kind == "arrived"]
    walls = [t for t, e in reported if e.kind == "arrived"]
    lefts = [e for _, e in reported if e.kind == "left"]
    rows = []
    for want in expected:
        got = next((k for k, e in enumerate(arrivals) if e.name == want["name"] and e.time_s >= want["arrived_s"]
                    and e.time_s < want["left_s"]), None)
        gone = next((e for e in lefts if e.name == want["name"] and e.time_s >= want["left_s"]), None)
        rows.append({"name": want["name"], "arrived_s": want["arrived_s"],
                     "announce_s": None if got is None else round(arrivals[got].time_s - want["arrived_s"], 2),
                     "announce_wall_s": None if got is None else round(walls[got] - started - want["arrived_s"], 2),
                     "left_after_s": None if gone is None else round(gone.time_s - want["left_s"], 2)})
    in_view = sum(a.end_s - a.start_s for a in scenario.appearances)  # upper bound of time with something in view
    return {"appearances": rows, "arrived_events": len(arrivals), "expected": len(expected),
            "extra_arrivals": len(arrivals) - sum(r["announce_s"] is not None for r in rows),
            "summary": summary.to_json(), "processed_fps": round(summary.frames_processed / scenario.length_s, 2),
            "in_view_s": in_view}


def static(settings, photos, background, work: Path) -> dict:
    scenario = Scenario((Appearance("chelsea", 0.0, 61.0, 0.4, 0.4),), 60.0)
    video = write_video(scenario, photos, background, work / "static.mp4")
    marks = {}

    def tick(elapsed: float) -> None:
        marks.setdefault("start" if elapsed >= 10 else "warm", (time.monotonic(), cpu_s()))
        marks["end"] = (time.monotonic(), cpu_s())

    _, summary, _ = run(settings, video, tick, 1.0)
    (t0, c0), (t1, c1) = marks["start"], marks["end"]
    return {"cores": round((c1 - c0) / (t1 - t0), 3), "window_s": round(t1 - t0, 1), "summary": summary.to_json()}


def soak(settings, photos, background, work: Path, length_s: float) -> dict:
    scenario = household_scenario(["chelsea", "mug", "rocket"], "coins", length_s)
    video = write_video(scenario, photos, background, work / "soak.mp4")
    samples = []
    _, summary, _ = run(settings, video, lambda elapsed: samples.append((round(elapsed), round(rss_mb(), 1))))
    after_minute = [mb for t, mb in samples if t >= 60]
    return {"rss_mb": samples, "growth_after_first_minute_mb": round(after_minute[-1] - after_minute[0], 1)
            if len(after_minute) > 1 else None, "summary": summary.to_json()}


def provision(settings, photos, background, work: Path, every_s: float = 5.0) -> dict:
    import io

    import httpx
    from PIL import Image as PILImage

    from edge_rap.daemon.config import RunConfig
    from edge_rap.daemon.service import serve_beside
    from edge_rap.serve.token import TOKEN_FILE

    video = household_video(photos, background, work)
    uploads = []
    for name in ("astronaut", "coffee", "rocket", "chelsea", "coins", "grace"):
        out = io.BytesIO()
        PILImage.fromarray(photos.get(name, background)).save(out, "JPEG", quality=92)
        uploads.append(out.getvalue())
    results = {}
    for label, adding in (("alone", False), ("provisioning", True)):
        with Household(settings) as home:
            home.retriever
            recognised = []
            inner = home.recognize

            def timed(image, inner=inner, recognised=recognised):
                result = inner(image)
                recognised.append(time.monotonic())
                return result

            home.recognize = timed
            options = DaemonOptions((parse_source(f"bench={video}"),), votes=VoteSettings(cooldown_s=5.0))
            daemon = Daemon(home, options, lambda e: None)
            server = serve_beside(home, daemon, RunConfig(sources=("x",), serve="127.0.0.1:0"))
            token = (home.root / TOKEN_FILE).read_text().strip()
            stop = threading.Event()
            worker = threading.Thread(target=lambda: setattr(daemon, "result", daemon.run(stop)))
            worker.start()
            added_ms = []
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as api:
                k = 0
                while worker.is_alive():
                    worker.join(every_s)
                    if adding and worker.is_alive():
                        started = time.perf_counter()
                        r = api.post("/api/concepts", data={"name": f"added{k}"},
                                     files=[("photo", (f"p{k}.jpg", uploads[k % len(uploads)], "image/jpeg"))])
                        added_ms.append(1000 * (time.perf_counter() - started))
                        assert r.status_code == 201, r.text
                        k += 1
                for name in [f"added{j}" for j in range(k)]:
                    api.delete(f"/api/concepts/{name}")
            server.stop(1.0)
            gaps = np.diff(recognised) if len(recognised) > 1 else np.zeros(1)
            results[label] = {"recognitions_per_s": round(len(recognised) / 60.0, 2),
                              "longest_pause_frames": int(round(gaps.max() * 15)),
                              "median_pause_frames": int(round(float(np.median(gaps)) * 15)),
                              "concepts_added": len(added_ms),
                              "add_ms_median": round(float(np.median(added_ms)), 1) if added_ms else None}
    return results


def sigterm(settings, photos, background, work: Path, runs: int = 5) -> dict:
    import os
    import shutil
    import signal
    import subprocess

    from edge_rap.daemon.events import EventLog

    video = household_video(photos, background, work)
    exits = []
    for k in range(runs):
        memory = work / f"sigterm-{k}"
        shutil.rmtree(memory, ignore_errors=True)
        shutil.copytree(settings.memory, memory, ignore=shutil.ignore_patterns("events.sqlite*"))
        proc = subprocess.Popen([sys.executable, "-m", "edge_rap", "run", "--source", str(video), "--memory",
                                 str(memory), "--json", "--mute"], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "EDGE_RAP_DEVICE": "x86-cpu"})
        printed = [json.loads(proc.stdout.readline())]
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rest = proc.stdout.read()
        status = proc.wait()
        took = time.monotonic() - sent
        printed += [json.loads(x) for x in rest.splitlines() if x.strip()]
        logged = len(EventLog(memory, readonly=True).query())
        exits.append({"exit_s": round(took, 2), "status": status,
                      "all_logged": logged == sum(e["type"] != "summary" for e in printed)})
    return {"runs": exits, "median_exit_s": sorted(e["exit_s"] for e in exits)[len(exits) // 2]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--cases", default="household,static,soak")
    parser.add_argument("--soak-s", type=float, default=600.0)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    work.mkdir(parents=True, exist_ok=True)
    settings, photos, background = prepare(work)
    results = {"machine": {"cores": __import__("os").cpu_count(), "python": sys.version.split()[0]}}
    for case in args.cases.split(","):
        if case == "soak":
            results[case] = soak(settings, photos, background, work, args.soak_s)
        else:
            cases = {"household": household, "static": static, "sigterm": sigterm, "provision": provision}
            results[case] = cases[case](settings, photos, background, work)
        print(json.dumps({case: results[case]}) if args.json else f"{case}: {json.dumps(results[case], indent=1)}",
              flush=True)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
