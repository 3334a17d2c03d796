"""The baseline: dnspython's asyncresolver in a plain loop, bounded by a semaphore.

``python -m bench.baseline --port P --concurrency C NAMES.txt`` asks every name
(type A) of the file through ``dns.asyncresolver.Resolver`` pointed at the
benchmark's unbound and prints one JSON object: the rate, the outcomes, CPU
and peak RSS. This is what a straightforward Python exporter does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.resolver

from bench.usage import timed


async def run(names: list[str], port: int, concurrency: int, timeout: float) -> dict[str, Any]:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port
    resolver.lifetime = timeout
    resolver.cache = None  # every question in the list is distinct anyway
    limit = asyncio.Semaphore(concurrency)
    outcomes: Counter[str] = Counter()

    async def one(name: str) -> None:
        async with limit:
            try:
                await resolver.resolve(name, "A")
                outcomes["ok"] += 1
            except dns.resolver.NXDOMAIN:
                outcomes["nxdomain"] += 1
            except dns.resolver.NoAnswer:
                outcomes["nodata"] += 1
            except dns.resolver.LifetimeTimeout:
                outcomes["timeout"] += 1
            except dns.exception.DNSException as exc:
                outcomes[type(exc).__name__] += 1

    async def ask_all() -> None:
        await asyncio.gather(*(one(n) for n in names))

    return await timed(len(names), outcomes, ask_all)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("names", type=Path, help="one query name per line")
    p.add_argument("--port", type=int, required=True, help="the unbound port on 127.0.0.1")
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--timeout", type=float, default=5.0)
    args = p.parse_args(argv)
    names = [n for n in args.names.read_text().split() if n]
    result = asyncio.run(run(names, args.port, args.concurrency, args.timeout))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
