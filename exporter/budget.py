"""Per-zone query budgets, so a free-tier user stays inside a list operator's quota.

Spamhaus and others bound free use by queries per day and per second. A zone
with a budget gets a token bucket (queries per second) and a daily count
(reset at midnight UTC). Only questions that would really be sent are
counted: cache hits and questions joined to one in flight cost nothing.
When the per-second budget is empty, lookups wait; when the daily one is
spent, they fail as THROTTLED, which checks treat like any unanswered
lookup: the run fails and the last good values stay. Never "not listed".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from exporter.dns import Answer, Asked, DnsResolver, Outcome, normalize_name, settle
from exporter.flight import Flight


@dataclass
class ZoneBudget:
    per_second: float = 0.0  # 0: unlimited
    per_day: int = 0  # 0: unlimited
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    tokens: float = field(init=False)
    last: float = field(init=False)
    day: int = field(init=False)
    spent_today: int = 0
    waited_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.tokens = max(1.0, self.per_second)
        self.last = self.clock()
        self.day = int(self.wall() // 86400)

    def exhausted(self) -> bool:
        self._roll_day()
        return bool(self.per_day) and self.spent_today >= self.per_day

    def _roll_day(self) -> None:
        today = int(self.wall() // 86400)
        if today != self.day:
            self.day, self.spent_today = today, 0

    def take(self) -> str | None:
        """Take one query's worth now: '' when granted, why not when the daily budget is
        spent, None when the per-second budget says wait (see ``acquire``)."""
        if self.exhausted():
            return (f"daily query budget of {self.per_day} spent; "
                    "lookups resume at 00:00 UTC")
        if self.per_second:
            now = self.clock()
            self.tokens = min(max(1.0, self.per_second),
                              self.tokens + (now - self.last) * self.per_second)
            self.last = now
            if self.tokens < 1.0:
                return None
            self.tokens -= 1.0
        self.spent_today += 1
        return ""

    async def acquire(self) -> str:
        """Take one query's worth, waiting for the per-second budget; '' or why not."""
        while True:
            problem = self.take()
            if problem is not None:
                return problem
            wait = (1.0 - self.tokens) / self.per_second
            self.waited_seconds += wait
            await asyncio.sleep(wait)


class ZoneResolver:
    """The resolver a blocklist zone's lookups go through: counts what is sent, spends budget."""

    def __init__(self, zone: str, inner: DnsResolver, budget: ZoneBudget | None,
                 sent: dict[str, int]) -> None:
        self.zone = zone
        self.inner = inner
        self.budget = budget
        self.sent = sent
        self._on_send = self._count  # bound once: it is handed over with every question

    async def resolve(self, name: str, rdtype: str, *, fresh: bool = False) -> Answer:
        return await settle(self.submit(name, rdtype, fresh=fresh))

    def bulk_view(self) -> tuple[DnsResolver, str, dict[str, int] | None] | None:
        """(resolver, counter key, counters) for ``DnsResolver.submit_many``, which counts
        what it sends as this view would; None when a budget must see every question."""
        return None if self.budget is not None else (self.inner, self.zone, self.sent)

    async def resolve_fresh(self, name: str, rdtype: str) -> Answer:
        return await self.resolve(name, rdtype, fresh=True)

    def submit(self, name: str, rdtype: str, *, fresh: bool = False,
               labels: bytes | None = None) -> Asked:
        """Like ``DnsResolver.submit``; a question that would really be sent spends budget."""
        if self.budget is None:  # only counting: the resolver says when it sends
            return self.inner.submit(name, rdtype, fresh=fresh, on_send=self._on_send,
                                     labels=labels)
        if self.inner.would_send(name, rdtype, fresh=fresh):
            problem = self.budget.take()
            if problem is None:  # the per-second budget says wait: a task may wait
                return Flight.of(self._after_wait(name, rdtype, fresh))
            if problem:
                return self._throttled(name, rdtype, problem)
            self._count()
        return self.inner.submit(name, rdtype, fresh=fresh, labels=labels)

    async def _after_wait(self, name: str, rdtype: str, fresh: bool) -> Answer:
        assert self.budget is not None
        problem = await self.budget.acquire()
        if problem:
            return self._throttled(name, rdtype, problem)
        self._count()
        return await self.inner.resolve(name, rdtype, fresh=fresh)

    def _count(self) -> None:
        sent = self.sent
        sent[self.zone] = sent.get(self.zone, 0) + 1

    def _throttled(self, name: str, rdtype: str, problem: str) -> Answer:
        return Answer(normalize_name(name), rdtype.upper(), Outcome.THROTTLED,
                      detail=f"{self.zone}: {problem}")
