"""The running exporter: config, resolver, scheduler, store and collector, wired once.

No module-level state: everything a request or a run needs hangs off one
:class:`Exporter`, so tests can run several side by side.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from exporter.blocklists import effective_zones
from exporter.budget import ZoneBudget, ZoneResolver
from exporter.checks.base import Check, CheckContext
from exporter.collector import MetricsRenderer, ReloadState
from exporter.config import Config, ConfigError, load_config
from exporter.dns import DnsResolver, QueryStats, Resolver, Upstream, system_nameservers
from exporter.gc_tuning import tune_for_long_runs
from exporter.providers import PROVIDER_METRICS, provider_samples
from exporter.registry import all_checks
from exporter.scheduler import Scheduler
from exporter.store import Store

log = logging.getLogger("exporter")


def build_resolver(config: Config, stats: QueryStats) -> DnsResolver:
    rc = config.resolver
    upstream = Upstream(rc.nameservers or system_nameservers(), rc.port)
    return DnsResolver(upstream, timeout=rc.timeout, attempts=rc.attempts,
                       max_in_flight=rc.max_in_flight, stats=stats, transport=rc.transport)


def build_context(
    config: Config, resolver: DnsResolver, budgets: dict[str, ZoneBudget] | None = None,
    zone_sent: dict[str, int] | None = None,
) -> CheckContext:
    """Every blocklist zone gets its own resolver view: its mirror, its budget, its counter.

    ``budgets`` carries the budgets' state across reloads (a reload must not hand out a
    fresh daily quota); it is updated in place.
    """
    budgets = {} if budgets is None else budgets
    zone_sent = {} if zone_sent is None else zone_sent
    zone_resolvers: dict[str, Resolver] = {}
    for zone in effective_zones(config.dnsbl.zones, config.dnsbl.builtin):
        inner = resolver
        if zone.nameservers:
            inner = resolver.for_upstream(Upstream(zone.nameservers, zone.port))
        budget = None
        if zone.budget_per_second or zone.budget_per_day:
            budget = budgets.get(zone.zone)
            if budget is None or (budget.per_second, budget.per_day) != (
                    zone.budget_per_second, zone.budget_per_day):
                budget = ZoneBudget(zone.budget_per_second, zone.budget_per_day)
                if zone.zone in budgets:  # limits changed: keep what was spent today
                    budget.spent_today = budgets[zone.zone].spent_today
            budgets[zone.zone] = budget
        zone_resolvers[zone.zone] = ZoneResolver(zone.zone, inner, budget, zone_sent)
    return CheckContext(resolver=resolver, config=config, log=logging.getLogger("exporter.check"),
                        zone_resolvers=zone_resolvers)


@dataclass
class Exporter:
    config: Config
    config_path: str | None = None
    checks: Sequence[Check] = field(default_factory=all_checks)
    stats: QueryStats = field(default_factory=QueryStats)
    store: Store = field(default_factory=Store)
    reload_state: ReloadState = field(default_factory=ReloadState)
    #: ``--shard=I/N``: this replica checks the targets whose hash falls in shard I of N.
    shard: tuple[int, int] = (0, 1)

    def __post_init__(self) -> None:
        self.budgets: dict[str, ZoneBudget] = {}
        #: Questions sent, by zone (a plain dict: it is bumped for every one of them).
        self.zone_sent: dict[str, int] = {}
        self.resolver = build_resolver(self.config, self.stats)
        self.scheduler = Scheduler(self.checks, self.store, self._context(self.config),
                                   shard=self.shard)
        self.scheduler.apply(self.scheduler.context)
        self.reload_state.successful = True
        self.reload_state.last_success = time.time()
        self.renderer = MetricsRenderer(
            self.store, self.checks, self.stats, lambda: self.config, self.reload_state,
            lambda: dict(self.scheduler.overruns), lambda: dict(self.zone_sent),
            lambda: provider_samples(self.store, self.config), PROVIDER_METRICS)
        self._reload_lock = asyncio.Lock()
        self._maintenance: asyncio.Task[None] | None = None

    def _context(self, config: Config) -> CheckContext:
        return build_context(config, self.resolver, self.budgets, self.zone_sent)

    def render_metrics(self) -> bytes:
        return self.renderer.render()

    def start(self) -> None:
        tune_for_long_runs()
        self.scheduler.start()
        self._maintenance = asyncio.create_task(self._prune_cache(), name="cache-prune")

    async def stop(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
        await self.scheduler.stop()
        self.resolver.close()

    async def _prune_cache(self) -> None:
        while True:
            await asyncio.sleep(60)
            self.resolver.prune()

    async def reload(self) -> tuple[bool, str]:
        """Load the config file again; swap it in only when the whole of it is valid."""
        async with self._reload_lock:
            if self.config_path is None:
                return False, "no config file to reload (demo mode)"
            try:
                new = await asyncio.to_thread(load_config, self.config_path)
            except ConfigError as exc:
                self.reload_state.successful = False
                log.error("reload failed, keeping the running config:\n%s", exc)
                return False, str(exc)
            self.apply_config(new)
            return True, "reloaded"

    def apply_config(self, new: Config) -> None:
        if new.resolver != self.config.resolver:
            self.resolver.close()
            self.resolver = build_resolver(new, self.stats)
        self.config = new
        self.scheduler.apply(self._context(new))
        self.reload_state.successful = True
        self.reload_state.last_success = time.time()
        log.info("configuration loaded: %d check/target pairs", len(self.scheduler.planned(new)))
