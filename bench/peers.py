"""The Python peers issue 7 names: aiodns in a plain loop, and pydnsbl's own checker.

    python -m bench.peers aiodns NAMES.txt --port P --concurrency C
    python -m bench.peers pydnsbl IPS.txt --zones z1.bench.test,z2.bench.test --port P ...

Each asks its questions (type A) of the benchmark's unbound on 127.0.0.1 and
prints one JSON object as ``bench.baseline`` does: the rate, the outcomes, CPU
(its resolver thread's included) and peak RSS, with the exporter's timeout and
tries in the benchmark (2 s, 3). ``aiodns`` (c-ares underneath)
asks every name of the file, bounded by a semaphore; ``pydnsbl`` checks every IP
of the file against every zone with ``DNSBLIpChecker`` the way its README shows,
with its own concurrency limit. Both come from ``bench/requirements.txt``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.usage import timed

#: c-ares error numbers (``aiodns.error.DNSError.args[0]``, ares.h) by outcome.
_ARES_OUTCOMES = {1: "nodata", 3: "servfail", 4: "nxdomain", 6: "refused",
                  11: "connection refused", 12: "timeout"}
#: The exporter's settings in the benchmark (``resolver.timeout: 2s``, ``attempts: 3``).
TIMEOUT, TRIES = 2.0, 3


def loopback_resolver(port: int, timeout: float, tries: int) -> Any:
    """An aiodns resolver that asks 127.0.0.1 on ``port`` and nothing else."""
    import aiodns

    resolver = aiodns.DNSResolver(nameservers=["127.0.0.1"], timeout=timeout, tries=tries,
                                  udp_port=port, tcp_port=port)
    if list(resolver.nameservers) != ["127.0.0.1"]:  # never a resolver from resolv.conf
        raise RuntimeError(f"aiodns would ask {resolver.nameservers}, not 127.0.0.1")
    return resolver


async def run_aiodns(names: list[str], port: int, concurrency: int,
                     timeout: float) -> dict[str, Any]:
    import aiodns.error

    resolver = loopback_resolver(port, timeout, TRIES)
    limit = asyncio.Semaphore(concurrency)
    outcomes: Counter[str] = Counter()

    async def one(name: str) -> None:
        async with limit:
            try:
                await resolver.query(name, "A")
                outcomes["ok"] += 1
            except aiodns.error.DNSError as exc:
                outcomes[_ARES_OUTCOMES.get(exc.args[0], f"error {exc.args[0]}")] += 1

    async def ask_all() -> None:
        await asyncio.gather(*(one(n) for n in names))

    return await timed(len(names), outcomes, ask_all)


def _pydnsbl_checker(zones: list[str], port: int, concurrency: int, timeout: float) -> Any:
    """pydnsbl's ``DNSBLIpChecker``, its resolver replaced by one that asks only the port."""
    import aiodns
    from pydnsbl import DNSBLIpChecker
    from pydnsbl.providers import Provider

    checker = DNSBLIpChecker(providers=[Provider(z) for z in zones], timeout=timeout,
                             tries=TRIES, concurrency=concurrency,
                             loop=asyncio.get_running_loop())
    # It builds its resolver from resolv.conf (it asks nothing yet) and asks every
    # question through ``_resolver``: if a release renamed that, replacing it would
    # silently leave the system's resolvers in place. Refuse to run instead.
    if not isinstance(getattr(checker, "_resolver", None), aiodns.DNSResolver):
        raise RuntimeError("this pydnsbl has no aiodns _resolver to point at the bench port")
    checker._resolver = loopback_resolver(port, timeout, TRIES)
    return checker


async def run_pydnsbl(ips: list[str], zones: list[str], port: int, concurrency: int,
                      timeout: float) -> dict[str, Any]:
    checker = _pydnsbl_checker(zones, port, concurrency, timeout)
    outcomes: Counter[str] = Counter()

    async def check_all() -> None:
        for result in await asyncio.gather(*(checker.check_async(ip) for ip in ips)):
            failed, listed = len(result.failed_providers), len(result.detected_by)
            outcomes["error"] += failed
            outcomes["ok"] += listed
            outcomes["nxdomain"] += len(result.providers) - failed - listed

    return await timed(len(ips) * len(zones), outcomes, check_all)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("peer", choices=("aiodns", "pydnsbl"))
    p.add_argument("items", type=Path, help="aiodns: query names; pydnsbl: IPs; one a line")
    p.add_argument("--zones", default="", help="pydnsbl: comma-separated zones")
    p.add_argument("--port", type=int, required=True, help="the unbound port on 127.0.0.1")
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--timeout", type=float, default=TIMEOUT,
                   help="seconds per try, %(default)s as the exporter's in the benchmark")
    args = p.parse_args(argv)
    items = [n for n in args.items.read_text().split() if n]
    if args.peer == "aiodns":
        work = run_aiodns(items, args.port, args.concurrency, args.timeout)
    else:
        zones = [z for z in args.zones.split(",") if z]
        if not zones:
            p.error("pydnsbl needs --zones")
        work = run_pydnsbl(items, zones, args.port, args.concurrency, args.timeout)
    json.dump(asyncio.run(work), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
