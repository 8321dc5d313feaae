"""`/api/stats` from a running daemon: per-stage median latency, frames per second and frame counts, read from
the daemon's own counters while it runs (edge-rap run --serve)."""

from __future__ import annotations

import statistics
import time
from typing import Callable

from edge_rap.daemon.loop import STAGES


def daemon_stats(daemon, started: float | None = None) -> Callable[[], dict]:
    """A `stats` callable for create_app: the daemon's figures now. `started` is time.monotonic() at its start."""
    began = time.monotonic() if started is None else started

    def now() -> dict:
        summary = daemon.summary
        elapsed = max(1e-6, time.monotonic() - began)
        stages = {}
        for stage in STAGES:
            samples = list(daemon.times.get(stage, ()))  # a copy: the loop appends meanwhile
            if samples:
                stages[stage] = round(statistics.median(samples), 2)
        return {"uptime_s": round(elapsed, 1), "fps": round(summary.frames_read / elapsed, 2),
                "frames_read": summary.frames_read, "frames_processed": summary.frames_processed,
                "frames_dropped": summary.frames_dropped, "stages_ms": stages}

    return now
