"""Renders the store as Prometheus metrics. Never touches the network.

Everything here is read from results the scheduler already stored, so a
scrape is cheap and says so in its HELP texts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.blocklists import delist_url, effective_zones
from exporter.checks.base import Check, MetricSpec
from exporter.config import Config
from exporter.dns import QUERY_OUTCOMES, QueryStats
from exporter.registry import all_metric_specs
from exporter.store import Store

CACHED = " (cached: from the last background run)"

CORE_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("deliverability_check_success",
               "1 when the last run of the check on the target got every answer it needed.",
               ("check", "target")),
    MetricSpec("deliverability_check_duration_seconds", "How long the last run took.",
               ("check", "target")),
    MetricSpec("deliverability_check_last_success_timestamp_seconds",
               "When the check last ran to completion on the target (Unix time).",
               ("check", "target")),
    MetricSpec("deliverability_check_interval_seconds",
               "The configured interval of each check.", ("check",)),
    MetricSpec("deliverability_check_overruns_total",
               "Runs skipped because the previous run took longer than the interval.",
               ("check",)),
    MetricSpec("deliverability_dns_queries_total",
               "DNS questions by outcome; cached counts answers served from the TTL cache "
               "or joined to an identical question in flight.", ("outcome",)),
    MetricSpec("deliverability_dnsbl_zone_info",
               "Each blocklist zone queried, its type and its lookup/removal page.",
               ("zone", "type", "delist_url")),
    MetricSpec("deliverability_build_info", "The exporter's version.", ("version",)),
    MetricSpec("deliverability_config_last_reload_successful",
               "1 when the last configuration (re)load succeeded.", ()),
    MetricSpec("deliverability_config_last_reload_success_timestamp_seconds",
               "When the configuration was last loaded successfully (Unix time).", ()),
)


@dataclass
class ReloadState:
    successful: bool = True
    last_success: float = 0.0


@dataclass(eq=False)
class StoreCollector(Collector):
    store: Store
    checks: Sequence[Check]
    stats: QueryStats
    config: Callable[[], Config]
    reload: ReloadState = field(default_factory=ReloadState)
    overruns: Callable[[], dict[str, int]] = dict

    def describe(self) -> Iterator[Metric]:
        return iter(())  # unchecked collector: families vary with config

    def collect(self) -> Iterator[Metric]:
        entries = sorted(self.store.snapshot(), key=lambda e: (e.check, e.target))
        success = GaugeMetricFamily(
            "deliverability_check_success", _help(CORE_METRICS[0]), labels=["check", "target"])
        duration = GaugeMetricFamily(
            "deliverability_check_duration_seconds", _help(CORE_METRICS[1]),
            labels=["check", "target"], unit="")
        last = GaugeMetricFamily(
            "deliverability_check_last_success_timestamp_seconds", _help(CORE_METRICS[2]),
            labels=["check", "target"])
        # Samples by metric; when two targets report the same series, the newer wins.
        series: dict[str, dict[tuple[tuple[str, str], ...], tuple[float, float]]] = {}
        for entry in entries:
            labels = [entry.check, entry.target]
            success.add_metric(labels, 1.0 if entry.success else 0.0)
            duration.add_metric(labels, entry.duration)
            if entry.last_success is not None:
                last.add_metric(labels, entry.last_success)
            for sample in entry.samples.values():
                per_metric = series.setdefault(sample.metric, {})
                previous = per_metric.get(sample.labels)
                if previous is None or previous[1] <= entry.timestamp:
                    per_metric[sample.labels] = (sample.value, entry.timestamp)
        yield success
        yield duration
        yield last
        flat = {name: {labels: v for labels, (v, _) in per.items()} for name, per in series.items()}
        yield from sample_families(all_metric_specs(self.checks), flat, CACHED)
        yield from self._process_metrics()

    def _process_metrics(self) -> Iterator[Metric]:
        config = self.config()
        interval = GaugeMetricFamily("deliverability_check_interval_seconds",
                                     CORE_METRICS[3].help, labels=["check"])
        for check in self.checks:
            interval.add_metric([check.name], check.interval(config))
        yield interval
        overruns = CounterMetricFamily("deliverability_check_overruns", CORE_METRICS[4].help,
                                       labels=["check"])
        counts = self.overruns()
        for check in self.checks:
            overruns.add_metric([check.name], float(counts.get(check.name, 0)))
        yield overruns
        queries = CounterMetricFamily("deliverability_dns_queries", CORE_METRICS[5].help,
                                      labels=["outcome"])
        for outcome in QUERY_OUTCOMES:
            queries.add_metric([outcome], float(self.stats.counts.get(outcome, 0)))
        yield queries
        zones = GaugeMetricFamily("deliverability_dnsbl_zone_info", CORE_METRICS[6].help,
                                  labels=["zone", "type", "delist_url"])
        for zone in effective_zones(config.dnsbl.zones, config.dnsbl.builtin):
            zones.add_metric([zone.zone, zone.type, delist_url(zone.zone)], 1.0)
        yield zones
        build = GaugeMetricFamily("deliverability_build_info", CORE_METRICS[7].help,
                                  labels=["version"])
        build.add_metric([__version__], 1.0)
        yield build
        yield GaugeMetricFamily("deliverability_config_last_reload_successful",
                                CORE_METRICS[8].help, value=1.0 if self.reload.successful else 0.0)
        yield GaugeMetricFamily("deliverability_config_last_reload_success_timestamp_seconds",
                                CORE_METRICS[9].help, value=self.reload.last_success)


def sample_families(
    specs: Sequence[MetricSpec],
    series: dict[str, dict[tuple[tuple[str, str], ...], float]],
    help_suffix: str = "",
) -> Iterator[Metric]:
    """One gauge family per spec, with the samples stored for it (label sets may differ)."""
    for spec in specs:
        family = Metric(spec.name, spec.help + help_suffix, "gauge")
        for label_pairs, value in sorted(series.get(spec.name, {}).items()):
            family.add_sample(spec.name, dict(label_pairs), value)
        yield family


def _help(spec: MetricSpec) -> str:
    return spec.help + CACHED
