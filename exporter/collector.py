"""Renders the store as Prometheus metrics. Never touches the network.

Everything here is read from results the scheduler already stored, so a
scrape is cheap and says so in its HELP texts. The text exposition is
written here rather than through prometheus_client's registry: each stored
result renders its own lines once (they are cached on the entry until the
next run replaces it), so a scrape of 250,000 series is mostly string
joining. prometheus_client still builds the /probe registries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import Metric

from exporter import __version__
from exporter.blocklists import delist_url, effective_zones
from exporter.checks.base import Check, MetricSpec, Sample
from exporter.config import Config
from exporter.dns import QUERY_OUTCOMES, QueryStats
from exporter.registry import all_metric_specs
from exporter.store import Entry, Store

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
    MetricSpec("deliverability_dnsbl_queries_total",
               "DNS questions sent for each blocklist zone (answers from the cache not counted): "
               "what you spend of the list operator's quota.", ("zone",)),
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


def escape_label(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def series_text(metric: str, labels: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels)
    return f"{metric}{{{inner}}}" if inner else metric


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _help_line(name: str, text: str, kind: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {name} {escaped}\n# TYPE {name} {kind}\n"


def _entry_text(entry: Entry) -> dict[str, str]:
    """An entry's exposition lines joined per metric, rendered once per stored result."""
    if entry.rendered is None:
        by_metric: dict[str, list[str]] = {}
        for s in entry.samples.values():
            by_metric.setdefault(s.metric, []).append(
                f"{series_text(s.metric, s.labels)} {format_value(s.value)}\n")
        entry.rendered = {m: "".join(lines) for m, lines in by_metric.items()}
    return entry.rendered


def _entry_series(entry: Entry) -> list[tuple[str, str, str]]:
    return [(s.metric, series_text(s.metric, s.labels), format_value(s.value))
            for s in entry.samples.values()]


@dataclass(eq=False)
class MetricsRenderer:
    store: Store
    checks: Sequence[Check]
    stats: QueryStats
    config: Callable[[], Config]
    reload: ReloadState = field(default_factory=ReloadState)
    overruns: Callable[[], dict[str, int]] = dict
    #: Queries sent per blocklist zone (counter), maintained by the zone resolvers.
    zone_queries: Callable[[], dict[str, int]] = dict
    #: Samples computed from the whole store (provider requirements) and their specs.
    derived: Callable[[], Iterable[Sample]] = tuple
    derived_specs: Sequence[MetricSpec] = ()
    #: The derived lines, kept until the store (or the config) changes.
    _derived_cache: tuple[tuple[int, int], list[tuple[str, str]]] | None = None

    def _derived_lines(self) -> list[tuple[str, str]]:
        stamp = (self.store.version, id(self.config()))
        if self._derived_cache is None or self._derived_cache[0] != stamp:
            lines = [(s.metric, f"{series_text(s.metric, s.labels)} {format_value(s.value)}\n")
                     for s in self.derived()]
            self._derived_cache = (stamp, lines)
        return self._derived_cache[1]

    def render(self) -> bytes:
        entries = sorted(self.store.snapshot(), key=lambda e: (e.check, e.target))
        out: list[str] = []
        success, duration, last = [], [], []
        chunks: dict[str, list[str]] = {}
        # Series that more than one target may report (non-exclusive entries): the newer
        # run wins. Exclusive entries (nearly all) are joined as pre-rendered text.
        shared: dict[str, dict[str, tuple[str, float]]] = {}
        for entry in entries:
            labels = series_text("", (("check", entry.check), ("target", entry.target)))
            success.append(f"deliverability_check_success{labels} "
                           f"{'1.0' if entry.success else '0.0'}\n")
            duration.append(f"deliverability_check_duration_seconds{labels} "
                            f"{format_value(entry.duration)}\n")
            if entry.last_success is not None:
                last.append(f"deliverability_check_last_success_timestamp_seconds{labels} "
                            f"{format_value(entry.last_success)}\n")
            if entry.exclusive:
                for metric, text in _entry_text(entry).items():
                    chunks.setdefault(metric, []).append(text)
                continue
            ts = entry.timestamp
            for metric, series, value in _entry_series(entry):
                family = shared.setdefault(metric, {})
                previous = family.get(series)
                if previous is None or previous[1] <= ts:
                    family[series] = (value, ts)
        for metric, line in self._derived_lines():
            chunks.setdefault(metric, []).append(line)
        for spec, lines in ((CORE_METRICS[0], success), (CORE_METRICS[1], duration),
                            (CORE_METRICS[2], last)):
            out.append(_help_line(spec.name, _help(spec), "gauge"))
            out.extend(lines)
        for spec in [*all_metric_specs(self.checks), *self.derived_specs]:
            out.append(_help_line(spec.name, _help(spec), "gauge"))
            out.extend(chunks.get(spec.name, ()))
            family = shared.get(spec.name, {})
            out.extend(f"{series} {value}\n" for series, (value, _) in sorted(family.items()))
        out.extend(self._process_lines())
        return "".join(out).encode()

    def _process_lines(self) -> Iterator[str]:
        config = self.config()

        def family(spec: MetricSpec, kind: str,
                   samples: Iterable[tuple[tuple[tuple[str, str], ...], float]]) -> str:
            lines = [_help_line(spec.name, spec.help, kind)]
            lines += [f"{series_text(spec.name, lbl)} {format_value(v)}\n" for lbl, v in samples]
            return "".join(lines)

        core = {spec.name: spec for spec in CORE_METRICS}
        yield family(core["deliverability_check_interval_seconds"], "gauge",
                     [((("check", c.name),), c.interval(config)) for c in self.checks])
        counts = self.overruns()
        yield family(core["deliverability_check_overruns_total"], "counter",
                     [((("check", c.name),), float(counts.get(c.name, 0))) for c in self.checks])
        yield family(core["deliverability_dns_queries_total"], "counter",
                     [((("outcome", o),), float(self.stats.counts.get(o, 0)))
                      for o in QUERY_OUTCOMES])
        zones = effective_zones(config.dnsbl.zones, config.dnsbl.builtin)
        sent = self.zone_queries()
        yield family(core["deliverability_dnsbl_queries_total"], "counter",
                     [((("zone", z.zone),), float(sent.get(z.zone, 0))) for z in zones])
        yield family(core["deliverability_dnsbl_zone_info"], "gauge",
                     [((("delist_url", delist_url(z.zone)), ("type", z.type), ("zone", z.zone)),
                       1.0) for z in zones])
        yield family(core["deliverability_build_info"], "gauge",
                     [((("version", __version__),), 1.0)])
        yield family(core["deliverability_config_last_reload_successful"], "gauge",
                     [((), 1.0 if self.reload.successful else 0.0)])
        yield family(core["deliverability_config_last_reload_success_timestamp_seconds"], "gauge",
                     [((), self.reload.last_success)])


def sample_families(
    specs: Sequence[MetricSpec],
    series: dict[str, dict[tuple[tuple[str, str], ...], float]],
    help_suffix: str = "",
) -> Iterator[Metric]:
    """One gauge family per spec (prometheus_client objects, for /probe registries)."""
    for spec in specs:
        family = Metric(spec.name, spec.help + help_suffix, "gauge")
        for label_pairs, value in sorted(series.get(spec.name, {}).items()):
            family.add_sample(spec.name, dict(label_pairs), value)
        yield family


def _help(spec: MetricSpec) -> str:
    return spec.help + CACHED
