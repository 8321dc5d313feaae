"""Shared by the benchmark scripts: the median wall time of a call, after warm-up runs."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_ms(fn: Callable[[], object], repeat: int, warmup: int = 2) -> float:
    """Median milliseconds of `repeat` calls of fn, after `warmup` calls that are not counted."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)
