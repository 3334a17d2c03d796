"""/probe: run a module's checks on one target now, into a fresh registry.

The multi-target pattern of blackbox_exporter. It is also the one endpoint
that makes the exporter send traffic on someone else's behalf, so only
configured targets and the ``probe.allow`` suffixes and networks may be
probed, and every client is rate limited.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.checks.base import Check, CheckContext, Result, Target
from exporter.collector import sample_families
from exporter.config import (
    Config,
    DomainConfig,
    ModuleConfig,
    SenderConfig,
    canonical_ip,
    is_ip,
    valid_hostname,
)
from exporter.dns import Answer, Resolver, resolve_fresh
from exporter.registry import all_metric_specs
from exporter.scheduler import run_once

#: Leave this much of Prometheus' scrape timeout for the answer to travel back.
SCRAPE_TIMEOUT_MARGIN = 0.5


class ProbeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass
class RateLimiter:
    """A token bucket per client address; the table is bounded (oldest clients forgotten)."""

    rate: float
    burst: int
    max_clients: int = 10000
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def allow(self, client: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return allowed


class RecordingResolver:
    """Passes questions through and remembers them, for ``debug=true``."""

    def __init__(self, inner: Resolver, log: list[Answer] | None = None) -> None:
        self.inner = inner
        self.log: list[Answer] = [] if log is None else log

    async def resolve(self, name: str, rdtype: str) -> Answer:
        answer = await self.inner.resolve(name, rdtype)
        self.log.append(answer)
        return answer

    async def resolve_fresh(self, name: str, rdtype: str) -> Answer:
        answer = await resolve_fresh(self.inner, name, rdtype)
        self.log.append(answer)
        return answer


def normalize_target(text: str) -> str:
    text = text.strip()
    if not text:
        raise ProbeError(400, "target parameter is missing")
    try:
        return canonical_ip(text) if is_ip(text) else valid_hostname(text)
    except ValueError as exc:
        raise ProbeError(400, f"bad target: {exc}") from exc


def is_allowed(config: Config, target: str) -> bool:
    configured = {s.ip or s.host for s in config.senders} | {d.name for d in config.domains}
    if target in configured:
        return True
    for entry in config.probe.allow:
        if "/" in entry:
            if is_ip(target) and ipaddress.ip_address(target) in ipaddress.ip_network(entry):
                return True
        elif not is_ip(target) and (target == entry or target.endswith("." + entry)):
            return True
    return False


def probe_config(config: Config, module: ModuleConfig, target: str) -> Config:
    """The config a probe runs under: the target's own settings, or the module's defaults."""
    senders = [s for s in config.senders if target in (s.ip, s.host)]
    domains = [d for d in config.domains if d.name == target]
    if is_ip(target):
        senders = senders or [SenderConfig(ip=target, helo=module.helo)]
    else:
        domains = domains or [DomainConfig(name=target, dkim_selectors=module.dkim_selectors)]
    return dataclasses.replace(config, senders=tuple(senders), domains=tuple(domains))


@dataclass
class ProbeOutcome:
    success: bool
    duration: float
    results: list[Result]
    questions: list[Answer]


async def run_probe(
    checks: Sequence[Check], context: CheckContext, module: ModuleConfig, target: str,
    timeout: float,
) -> ProbeOutcome:
    config = probe_config(context.config, module, target)
    recorder = RecordingResolver(context.resolver)
    zone_resolvers: dict[str, Resolver] = {
        z: RecordingResolver(r, recorder.log) for z, r in context.zone_resolvers.items()}
    # A probe works everything out itself (zone health included), so its log shows why.
    ctx = dataclasses.replace(context, config=config, resolver=recorder,
                              zone_resolvers=zone_resolvers, reuse_shared=False)
    jobs: list[tuple[Check, Target]] = []
    for check in checks:
        if check.name not in module.checks:
            continue
        jobs.extend((check, t) for t in check.targets(config) if t.key == target)
    if not jobs:
        raise ProbeError(400, f"module {module.name} has nothing to check for {target}")
    started = time.perf_counter()
    results = list(await asyncio.gather(*(run_once(c, t, ctx, timeout) for c, t in jobs)))
    return ProbeOutcome(all(r.success for r in results), time.perf_counter() - started,
                        results, recorder.log)


class _ProbeCollector(Collector):
    def __init__(self, outcome: ProbeOutcome, checks: Sequence[Check]) -> None:
        self.outcome = outcome
        self.checks = checks

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("probe_success", "1 when every lookup of the probe was answered.",
                                value=1.0 if self.outcome.success else 0.0)
        yield GaugeMetricFamily("probe_duration_seconds", "How long the probe took.",
                                value=self.outcome.duration)
        success = GaugeMetricFamily("deliverability_check_success",
                                    "1 when the check got every answer it needed.",
                                    labels=["check", "target"])
        series: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for result in self.outcome.results:
            success.add_metric([result.check, result.target], 1.0 if result.success else 0.0)
            for sample in result.samples:
                series.setdefault(sample.metric, {})[sample.labels] = sample.value
        yield success
        # Only the families of the checks the module ran: a dnsbl probe is not a page of
        # empty SPF, DKIM and Postmaster families.
        ran = {r.check for r in self.outcome.results}
        yield from sample_families(all_metric_specs([c for c in self.checks if c.name in ran]),
                                   series)


def render_metrics(outcome: ProbeOutcome, checks: Sequence[Check]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ProbeCollector(outcome, checks))
    return generate_latest(registry)


def render_debug(outcome: ProbeOutcome, checks: Sequence[Check], target: str,
                 module: str) -> str:
    lines = [f"Probe of {target} with module {module}: "
             f"{'succeeded' if outcome.success else 'FAILED'} in {outcome.duration:.3f}s", ""]
    lines.append("DNS questions:")
    for a in outcome.questions:
        shown = ", ".join(a.records) if a.records else ""
        detail = f" ({a.detail})" if a.detail else ""
        lines.append(f"  {a.rdtype:5} {a.name} -> {a.outcome.value}{detail} {shown}".rstrip())
    for r in outcome.results:
        lines += ["", f"Check {r.check} on {r.target}: {'ok' if r.success else 'FAILED'} "
                  f"({r.duration:.3f}s)"]
        lines += [f"  error: {e}" for e in r.errors]
        for f in r.findings:
            lines.append(f"  [{f.status.value}] {f.title}")
            if f.evidence:
                lines.append(f"      evidence: {f.evidence}")
            if f.fix:
                lines.append(f"      fix: {f.fix}")
    lines += ["", "Metrics that would have been returned:", "",
              render_metrics(outcome, checks).decode()]
    return "\n".join(lines)


def probe_timeout(module: ModuleConfig, header: str | None) -> float:
    """The module's timeout, shortened to fit Prometheus' scrape timeout when it sends one."""
    timeout = module.timeout
    if header:
        try:
            scrape = float(header)
        except ValueError:
            scrape = 0.0
        if scrape > 0:
            timeout = min(timeout, max(0.1, scrape - SCRAPE_TIMEOUT_MARGIN))
    return timeout
