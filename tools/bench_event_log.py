"""Benchmark the daemon's event log after months of running (docs/BENCHMARKS.md, the daemon's section): a year of
a household's arrivals and leavings written through the library's own EventLog, then the size of the file and the
cost of what reads it: `events` (the newest 10,000), `events --since 1d`, `events --name`, "where is X?" (one
concept's last sighting) and "who was here today?" (every concept's), the log's check (a writer's open, the
daemon's hour), the daemon's hourly prune, the start's after a month switched off, and a page torn: the log set
aside and a new one started with the events still readable.

  python tools/bench_event_log.py [--days 365] [--per-day 1600] [--concepts 10] [--cameras 4] [--repeat 15] [--json]
                                 [--cli MEMORY]
  python tools/bench_event_log.py --events-json 300000 1000000 [--code CHECKOUT ...] [--runs 3] [--name-prefix TEXT]

1600 events a day is 10 concepts coming and going 20 times a day on each of 4 cameras. With `--cli`, a copy of
MEMORY (a memory with concepts, made by `remember`) gets the year under its own concepts' names, and the commands
are timed as a user runs them, each in a fresh process (median of 3), beside `edge-rap concepts` for the start-up.

With `--events-json`, the newest COUNT events of a log of whole days are listed by `edge-rap events --json --limit
COUNT` in a fresh process: seconds (median of --runs) and peak resident KB, once per `--code` checkout (a folder
holding edge_rap/: the code before a change beside the one after, in the same run; this one by default), and
whether every checkout printed the same bytes. `--name-prefix` starts each concept's name there (`'🐱 '`: a name
that holds an emoji, which json.dumps writes as a pair of `\\ud...` escapes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.timing import median_ms  # noqa: E402

from edge_rap.daemon.events import EventLog  # noqa: E402
from edge_rap.types import Box, Event  # noqa: E402


def write_year(log: EventLog, days: int, per_day: int, concepts: list[str], cameras: list[str], end: float) -> int:
    """`per_day` events a day for `days` days up to `end`, in order, pairs of an arrival and its leaving; each
    day's in one transaction (the daemon commits each event: this only makes the set-up fast)."""
    rng = random.Random(0)
    start = end - days * 86400.0
    db, count = log._db(), 0
    for day in range(days):
        walls = sorted(start + day * 86400.0 + rng.uniform(0, 86400.0) for _ in range(per_day // 2))
        db.execute("BEGIN")
        for wall in walls:
            name, camera = rng.choice(concepts), rng.choice(cameras)
            log.add(Event("arrived", name, camera, wall % 86400, wall, Box(100, 80, 260, 300), 0.81,
                          f"I can see <{name}> on the left.", None))
            log.add(Event("left", name, camera, wall % 86400 + 60, wall + 60))
            count += 2
        db.execute("COMMIT")
    return count


def measure_cli(memory: Path, days: int, per_day: int, n_cameras: int) -> dict:
    """The commands in fresh processes on a copy of `memory` holding a year of its concepts' events."""
    import shutil
    import subprocess

    from edge_rap.memory.store import Store

    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "memory"
        shutil.copytree(memory, copy, ignore=shutil.ignore_patterns("events.sqlite*", "models"))
        store = Store(copy, readonly=True)
        concepts = [c.name for c in store.concepts()]
        store.close()
        log = EventLog(copy)
        write_year(log, days, per_day, concepts, [f"cam{k}" for k in range(n_cameras)], time.time())
        log.close()
        name = concepts[0]
        commands = {
            "concepts (start-up alone)": ["concepts"],
            "events (newest 10,000)": ["events"],
            "events --since 1d": ["events", "--since", "1d"],
            f"events --name {name}": ["events", "--name", name],
            f'ask "Where is {name}?"': ["ask", f"Where is {name}?"],
            'ask "Who was here today?"': ["ask", "Who was here today?"],
        }
        costs = {}
        for what, args in commands.items():
            times = []
            for _ in range(3):
                started = time.perf_counter()
                subprocess.run([sys.executable, "-m", "edge_rap.cli", *args, "--memory", str(copy)], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times.append(time.perf_counter() - started)
            costs[what] = round(1000 * sorted(times)[1])
        return costs


def measure_events_json(counts: list[int], per_day: int, codes: list[Path], runs: int, prefix: str = "") -> dict:
    """`edge-rap events --json` listing the newest `count` events of a log, run by each checkout in `codes` in turn
    (a load that comes and goes falls on each alike): the median seconds, wall and CPU (user and system, less
    moved by other work on the machine), the peak resident KB (the process's own, from wait4), and whether every
    run of every checkout printed the same bytes."""
    result = {}
    with tempfile.TemporaryDirectory() as folder:
        for count in counts:
            memory = Path(folder) / f"memory{count}"
            log = EventLog(memory)
            written = write_year(log, -(-count // per_day), per_day, [f"{prefix}concept{k}" for k in range(10)],
                                 [f"cam{k}" for k in range(4)], time.time())
            log.close()
            runs_of: dict[Path, list[tuple[float, float, int, str]]] = {code: [] for code in codes}
            for _ in range(runs):
                for code in codes:
                    runs_of[code].append(list_events(code, memory, count, Path(folder)))
            by_code = {str(code): {"s": median(r[0] for r in rs), "cpu_s": median(r[1] for r in rs),
                                   "peak_kb": max(r[2] for r in rs)} for code, rs in runs_of.items()}
            printed = {r[3] for rs in runs_of.values() for r in rs}
            result[str(count)] = {"log_events": written, "same_bytes": len(printed) == 1, "by_code": by_code}
    return result


def median(values) -> float:
    ordered = sorted(values)
    return round(ordered[len(ordered) // 2], 2)


def list_events(code: Path, memory: Path, count: int, folder: Path) -> tuple[float, float, int, str]:
    """One `events --json --limit count` by the checkout `code`: wall and CPU seconds, peak KB, its output's hash."""
    import subprocess

    with open(folder / "out.json", "w+b") as out:
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "edge_rap.cli", "events", "--json", "--limit", str(count),
                                  "--memory", str(memory)], cwd=code, stdout=out, stderr=subprocess.PIPE,
                                 env={**os.environ, "EDGE_RAP_HOME": str(folder / "home")})
        _, status, usage = os.wait4(child.pid, 0)  # (its few lines of stderr fit the pipe)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"{code}: {child.stderr.read().decode(errors='replace')}")
        child.stderr.close()
        out.seek(0)
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, hashlib.file_digest(out, "sha256").hexdigest()


def measure(days: int, per_day: int, n_concepts: int, n_cameras: int, repeat: int) -> dict:
    from edge_rap.daemon.events import parse_since

    concepts = [f"concept{k}" for k in range(n_concepts)]
    cameras = [f"cam{k}" for k in range(n_cameras)]
    with tempfile.TemporaryDirectory() as folder:
        log = EventLog(Path(folder))
        end = time.time()
        started = time.perf_counter()
        count = write_year(log, days, per_day, concepts, cameras, end)
        written_s = time.perf_counter() - started
        log._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = sum(p.stat().st_size for p in Path(folder).iterdir())
        midnight = time.mktime(time.localtime(end)[:3] + (0, 0, 0, 0, 0, -1))
        reads = {
            "events (newest 10,000)": lambda: log.query(limit=10_001),
            "events --since 1d": lambda: log.query(parse_since("1d", end), limit=10_001),
            "events --since 1w": lambda: log.query(parse_since("1w", end), limit=10_001),
            "events --name concept0": lambda: log.query(name="concept0", limit=10_001),
            "events --since 1d --name concept0": lambda: log.query(parse_since("1d", end), "concept0", 10_001),
            "where is X (last sighting)": lambda: log.last_seen("concept0"),
            "who was here today (every concept's last sighting)":
                lambda: [e for n in concepts if (e := log.last_seen(n)) is not None and e.wall >= midnight],
        }
        costs = {what: round(median_ms(fn, repeat), 2) for what, fn in reads.items()}
        check_ms = median_ms(log.check, 3)  # SQLite's quick check: a writer's open, and the daemon's hour
        # The hourly prune a year on: the oldest hour goes (each concept's last sighting on each camera stays).
        pruned_hour = log.prune(end - days * 86400.0 + 3600.0)
        started = time.perf_counter()
        pruned_hour += log.prune(end - days * 86400.0 + 7200.0)
        prune_ms = 1000 * (time.perf_counter() - started)
        # The start's prune after a month switched off: the oldest month goes at once.
        started = time.perf_counter()
        month = log.prune(end - days * 86400.0 + 30 * 86400.0)
        month_ms = 1000 * (time.perf_counter() - started)
        log.close()
        damaged = set_aside_a_torn_log(Path(folder))
    return {"days": days, "events": count, "write_s": round(written_s, 1), "file_mb": round(size / 2**20, 1),
            "bytes_per_event": round(size / count), "reads_ms": costs, "check_ms": round(check_ms),
            "hourly_prune_ms": round(prune_ms, 1), "month_prune": {"events": month, "ms": round(month_ms)},
            "damaged": damaged}


def set_aside_a_torn_log(folder: Path) -> dict:
    """The log (closed) with one page of its events torn in the middle, as a power cut can leave it: the time the
    next writer's open takes to set it aside and start a new log with the events still readable, and how many."""
    page = 4096
    path = folder / "events.sqlite"
    data = path.read_bytes()
    before = EventLog(folder, readonly=True)
    held = before._db().execute("SELECT COUNT(*) FROM events").fetchone()[0]
    before.close()
    leaves = [k for k in range(1, len(data) // page) if data[k * page] == 0x0D]  # a table's leaf pages
    with open(path, "r+b") as f:
        f.seek(leaves[len(leaves) // 2] * page)
        f.write(b"\x00\x55" * (page // 2))
    started = time.perf_counter()
    log = EventLog(folder)
    seconds = time.perf_counter() - started
    kept = len(log.query(limit=2**62))
    log.close()
    return {"held": held, "kept": kept, "s": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=1600)
    parser.add_argument("--concepts", type=int, default=10)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--cli", type=Path, metavar="MEMORY", help="also time the commands on a copy of MEMORY")
    parser.add_argument("--events-json", type=int, nargs="+", metavar="COUNT",
                        help="only time `events --json` listing a log of each COUNT events whole")
    parser.add_argument("--code", type=Path, action="append", metavar="CHECKOUT",
                        help="a checkout to run --events-json with (repeatable; default this one)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each --events-json listing (median)")
    parser.add_argument("--name-prefix", default="", metavar="TEXT",
                        help="--events-json: each concept's name starts with TEXT (an emoji: '\U0001f431 ')")
    args = parser.parse_args()
    if args.events_json:
        codes = args.code or [Path(__file__).resolve().parents[1]]
        result = measure_events_json(args.events_json, args.per_day, codes, args.runs, args.name_prefix)
        print(json.dumps(result, indent=1))
        return
    result = measure(args.days, args.per_day, args.concepts, args.cameras, args.repeat)
    if args.cli:
        result["commands_ms"] = measure_cli(args.cli, args.days, args.per_day, args.cameras)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['events']} events over {result['days']} days: {result['file_mb']} MB "
          f"({result['bytes_per_event']} bytes an event), written in {result['write_s']} s")
    for what, ms in result["reads_ms"].items():
        print(f"  {what}: {ms} ms")
    print(f"  the log's check (a writer's open, the daemon's hour): {result['check_ms']} ms")
    print(f"  hourly prune: {result['hourly_prune_ms']} ms")
    print(f"  the start's prune after a month off: {result['month_prune']['events']} events in "
          f"{result['month_prune']['ms']} ms")
    damaged = result["damaged"]
    print(f"  a page torn: set aside and {damaged['kept']} of {damaged['held']} events carried into a new log in "
          f"{damaged['s']} s")
    for what, ms in result.get("commands_ms", {}).items():
        print(f"  edge-rap {what}: {ms} ms (a fresh process)")


if __name__ == "__main__":
    main()
