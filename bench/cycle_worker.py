"""One exporter blocklist cycle in a process of its own, so its CPU and peak RSS are its own.

``python -m bench.cycle_worker CONFIG.json [--profile OUT.txt]`` builds an
:class:`~exporter.app.Exporter` with only the DNSBL check, starts it, waits
until every target finished its first run (``scheduler.ready()``), renders
``/metrics`` twice and prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import resource
import sys
import time
from pathlib import Path
from typing import Any

from bench.usage import peak_rss_mb
from exporter.app import Exporter
from exporter.checks.dnsbl import DnsblCheck
from exporter.config import build_config

#: Readiness is polled every 1 % of the time elapsed so far, within these bounds:
#: ``scheduler.ready()`` walks every job, so polling a 10,000-target cycle every
#: few milliseconds would itself cost a tenth of the CPU being measured.
_POLL_MIN, _POLL_MAX = 0.002, 0.05


def cpu_seconds() -> float:
    """This process's CPU time so far, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def count_series(body: bytes) -> int:
    """Sample lines of a text exposition (everything but comments and blank lines)."""
    return sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))


async def run_cycle(raw_config: dict[str, Any]) -> dict[str, Any]:
    config = build_config(raw_config, "<bench>")
    exporter = Exporter(config, checks=[DnsblCheck()])
    targets = len(exporter.scheduler.planned(config))
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    exporter.start()
    while not exporter.scheduler.ready():
        elapsed = time.perf_counter() - wall0
        await asyncio.sleep(min(_POLL_MAX, max(_POLL_MIN, elapsed / 100)))
    wall = time.perf_counter() - wall0
    cpu = cpu_seconds() - cpu0
    counts = dict(exporter.stats.counts)
    t = time.perf_counter()
    body = exporter.render_metrics()
    render_first = time.perf_counter() - t
    t = time.perf_counter()
    exporter.render_metrics()
    render_second = time.perf_counter() - t
    entries = exporter.store.snapshot()
    failed = [e for e in entries if not e.success]
    await exporter.stop()
    cached = counts.get("cached", 0)
    sent = sum(counts.values()) - cached
    return {
        "targets": targets,
        "wall_seconds": wall,
        "queries_sent": sent,
        "queries_cached": cached,
        "outcomes": counts,
        "queries_per_second": sent / wall if wall else 0.0,
        "cpu_seconds": cpu,
        "failed_runs": len(failed),
        "failure_examples": [f"{e.target}: {'; '.join(e.errors)[:200]}" for e in failed[:5]],
        "render_first_seconds": render_first,
        "render_second_seconds": render_second,
        "metrics_bytes": len(body),
        "series": count_series(body),
        "peak_rss_mb": peak_rss_mb(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("config", type=Path, help="the exporter config, as JSON")
    p.add_argument("--profile", type=Path, help="write a cProfile summary (top 40) here")
    args = p.parse_args(argv)
    raw = json.loads(args.config.read_text())
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    result = asyncio.run(run_cycle(raw))
    if profiler is not None and args.profile is not None:
        profiler.disable()
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(40)
        args.profile.write_text(text.getvalue())
        result["profiled"] = True  # cProfile slows everything: these numbers are not comparable
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
