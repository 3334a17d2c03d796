"""What a benchmark process spends: its own peak memory, and the wall and CPU time of
one piece of work (stdlib only: the processes measured import it)."""

from __future__ import annotations

import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any


def peak_rss_mb() -> float:
    """This process's own peak RSS in MB: ``VmHWM``, which starts afresh at exec.

    ``ru_maxrss`` would carry over the peak of the process that forked this one
    (Linux keeps it across exec), so a small tool started by the harness would
    report the harness's memory. Without ``/proc``, ``ru_maxrss`` is all there is.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def timed(questions: int, outcomes: Counter[str],
                work: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    """Run ``work()`` (its tasks' creation included) and say what asking ``questions``
    cost: the rate, the ``outcomes`` it counted, CPU (every thread's) and peak RSS."""
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    await work()
    wall = time.perf_counter() - wall0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage.ru_utime + usage.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    return {
        "questions": questions,
        "wall_seconds": wall,
        "queries_per_second": questions / wall if wall else 0.0,
        "outcomes": dict(outcomes),
        "cpu_seconds": cpu,
        "cpu_us_per_query": cpu / questions * 1e6 if questions else 0.0,
        "peak_rss_mb": peak_rss_mb(),
    }
