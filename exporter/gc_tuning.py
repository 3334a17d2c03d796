"""Garbage-collector settings for a long-running exporter with a large heap.

A blocklist cycle allocates millions of short-lived containers (futures,
answers, tuples) and reference counting frees nearly all of them: on the
10,000 IPs × 20 zones benchmark, CPython's default thresholds (700, 10, 10)
ran about 2,700 collections per cycle that found 406 cyclic objects in all,
yet took 6.7–7.6 s of a 16 s cycle, because every young collection also walks
what the thousands of runs in flight hold. A young collection every 50,000
allocations took that to about 1 s, every 100,000 to about 0.35 s (measured
with ``bench.dnsbl``; the second figure includes start-up).
Cycles are still collected, just in bigger, rarer batches.
"""

from __future__ import annotations

import gc

#: Allocations between young collections (CPython's default is 700).
YOUNG_THRESHOLD = 100_000
#: Young collections per middle one, middle collections per full one (defaults 10, 10).
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 100


def tune_for_long_runs() -> None:
    """Apply the thresholds, and exempt what exists now (modules, config) from collection."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
