"""The deduplication claim: N domains whose SPF includes one provider record → one lookup.

The SPF check runs for ``d0.bench.test`` … all at once through the exporter's
:class:`~exporter.dns.DnsResolver` (its TTL cache and in-flight coalescing),
wrapped in a resolver that counts, per question, how often a check *asked*
and how often the question was really *sent*. unbound's own counter
(``total.num.queries``) confirms what reached the resolver.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from bench.stack import PROVIDER_INCLUDE, BenchStack
from exporter.checks.base import CheckContext
from exporter.checks.spf import SpfCheck
from exporter.config import build_config
from exporter.dns import Answer, DnsResolver, Upstream, normalize_name
from exporter.scheduler import run_once


class CountingResolver:
    """Counts questions asked and questions sent (not answered by cache or a twin in flight)."""

    def __init__(self, inner: DnsResolver) -> None:
        self.inner = inner
        self.asked: Counter[tuple[str, str]] = Counter()
        self.sent: Counter[tuple[str, str]] = Counter()

    async def resolve(self, name: str, rdtype: str) -> Answer:
        key = (normalize_name(name), rdtype.upper())
        self.asked[key] += 1
        if self.inner.would_send(name, rdtype):
            self.sent[key] += 1
        return await self.inner.resolve(name, rdtype)


async def measure_dedup(stack: BenchStack, n_domains: int) -> dict[str, Any]:
    config = build_config({
        "resolver": {"nameservers": ["127.0.0.1"], "port": stack.resolver_port},
        "domains": [{"name": f"d{i}.bench.test", "smtp": False} for i in range(n_domains)],
    }, "<bench-spf>")
    inner = DnsResolver(Upstream(("127.0.0.1",), stack.resolver_port), max_in_flight=256)
    counting = CountingResolver(inner)
    ctx = CheckContext(resolver=counting, config=config, log=logging.getLogger("bench.spf"))
    check = SpfCheck()
    before = stack.unbound_stats().get("total.num.queries", 0.0)
    try:
        results = await asyncio.gather(*(run_once(check, t, ctx, 60.0)
                                         for t in check.targets(config)))
    finally:
        inner.close()
    after = stack.unbound_stats().get("total.num.queries", 0.0)
    include = (PROVIDER_INCLUDE, "TXT")
    valid = sum(1 for r in results for s in r.samples
                if s.metric == "deliverability_spf_valid" and s.value == 1)
    return {
        "domains": n_domains,
        "runs_successful": sum(1 for r in results if r.success),
        "spf_valid": valid,
        "include_asked": counting.asked[include],
        "include_sent": counting.sent[include],
        "questions_asked": sum(counting.asked.values()),
        "questions_sent": sum(counting.sent.values()),
        "unbound_queries": after - before,
    }
