"""Query budgets and sharding: quotas are kept, spent budgets never read as "not listed"."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter

import pytest

from exporter.budget import ZoneBudget, ZoneResolver
from exporter.checks.dnsbl import DnsblCheck
from exporter.config import parse_config_text
from exporter.dns import Answer, Outcome
from exporter.flight import Flight
from exporter.scheduler import in_shard
from tests.fakes import FakeResolver
from tests.unit.helpers import context, run, target_for, values


class CountingFake(FakeResolver):
    """A fake that says which questions it would send (nothing is cached here)."""

    def would_send(self, name: str, rdtype: str, *, fresh: bool = False) -> bool:
        return True

    def submit(self, name: str, rdtype: str, *, fresh: bool = False,
               labels: bytes | None = None) -> Flight[Answer]:
        return Flight.of(self.resolve(name, rdtype))


async def test_daily_budget_spent_is_throttled_not_an_answer() -> None:
    wall = [86400.0 * 100]
    budget = ZoneBudget(per_day=3, wall=lambda: wall[0])
    fake = CountingFake({("2.0.0.127.bl.example", "A"): "127.0.0.2"})
    sent: Counter[str] = Counter()
    zone = ZoneResolver("bl.example", fake, budget, sent)  # type: ignore[arg-type]
    outcomes = [(await zone.resolve(f"{i}.bl.example", "A")).outcome for i in range(5)]
    assert outcomes[:3] == [Outcome.NXDOMAIN] * 3
    assert outcomes[3:] == [Outcome.THROTTLED] * 2
    assert sent["bl.example"] == 3
    wall[0] += 86400  # a new UTC day: the budget is back
    assert (await zone.resolve("9.bl.example", "A")).outcome is Outcome.NXDOMAIN


async def test_per_second_budget_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    slept: list[float] = []
    budget = ZoneBudget(per_second=2, clock=lambda: now[0])

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    # exporter.budget waits with asyncio.sleep: the fake advances the budget's clock.
    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    for _ in range(6):
        assert await budget.acquire() == ""
    monkeypatch.undo()
    assert now[0] >= 2.0  # 6 queries at 2/s after a burst of 2
    assert budget.waited_seconds == sum(slept)


async def test_throttled_zone_fails_the_run_and_reports_nothing() -> None:
    config_text = "dnsbl: {zones: [{zone: bl.example, budget: {per_day: 1}}]}\nsenders: [192.0.2.9]"
    fake = CountingFake({("2.0.0.127.bl.example", "A"): "127.0.0.2"})
    budget = ZoneBudget(per_day=1)
    zone = ZoneResolver("bl.example", fake, budget, Counter())  # type: ignore[arg-type]
    ctx = context(fake, config_text, zone_resolvers={"bl.example": zone})
    check = DnsblCheck()
    result = await run(check, target_for(check, ctx.config, "192.0.2.9"), ctx)
    assert not result.success
    assert any("budget" in e for e in result.errors)
    assert not values(result, "deliverability_dnsbl_listed")


def test_budget_config_is_validated() -> None:
    config = parse_config_text(
        "dnsbl: {zones: [{zone: z.example, budget: {per_second: 5, per_day: 1000}}]}")
    assert config.dnsbl.zones[0].budget_per_second == 5.0
    assert config.dnsbl.zones[0].budget_per_day == 1000


def test_shards_partition_targets_like_prometheus_hashmod() -> None:
    keys = [f"192.0.2.{i}" for i in range(200)] + [f"d{i}.example" for i in range(200)]
    owners = [[i for i in range(3) if in_shard(k, (i, 3))] for k in keys]
    assert all(len(o) == 1 for o in owners)  # every target in exactly one shard
    sizes = Counter(o[0] for o in owners)
    assert min(sizes.values()) > 80  # and spread evenly
    # Prometheus hashmod: the last 8 bytes of the MD5 as a big-endian uint64, mod N.
    key = "example.com"
    expected = int.from_bytes(hashlib.md5(key.encode()).digest()[8:], "big") % 4
    assert in_shard(key, (expected, 4))
    assert in_shard(key, (0, 1))
