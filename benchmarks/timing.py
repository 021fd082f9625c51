"""Timing helper shared by the benchmark scripts."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(
    fn: Callable[[], object], repeats: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    """The fastest of ``repeats`` timings of ``fn()`` in seconds of ``clock`` (default: wall
    time; ``time.process_time`` gives the CPU seconds of all the process's threads, which other
    load on a shared machine disturbs far less). The minimum filters out other CPU load."""
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times)
