"""Shared by the benchmark scripts: the median wall time of a call, after warm-up runs; two calls compared in
turns, so that a shared machine's slow spells fall on both."""

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


def interleaved_median_ms(a: Callable[[], object], b: Callable[[], object], repeat: int,
                          warmup: int = 2) -> tuple[float, float]:
    """Median milliseconds of `repeat` calls each of a and b, run in turns (a b, b a, ...)."""
    for _ in range(warmup):
        a(), b()
    times: dict[int, list[float]] = {0: [], 1: []}
    for i in range(repeat):
        for k in ((0, 1) if i % 2 == 0 else (1, 0)):
            start = time.perf_counter()
            (a, b)[k]()
            times[k].append(time.perf_counter() - start)
    return 1000 * statistics.median(times[0]), 1000 * statistics.median(times[1])


def round_robin_ms(fns: list[Callable[[], object]], repeat: int, warmup: int = 2) -> list[list[float]]:
    """Milliseconds of `repeat` rounds in which every fn runs once, in an order shuffled (seeded) per round:
    several variants compared on a shared machine, each round's ratios taken under the same load."""
    import random

    for _ in range(warmup):
        for fn in fns:
            fn()
    order, rounds = list(range(len(fns))), []
    shuffle = random.Random(0).shuffle
    for _ in range(repeat):
        shuffle(order)
        times = [0.0] * len(fns)
        for k in order:
            start = time.perf_counter()
            fns[k]()
            times[k] = 1000 * (time.perf_counter() - start)
        rounds.append(times)
    return rounds
