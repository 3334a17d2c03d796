"""Shared by the issue 6 integration tests: HTTP with headers, metric parsing, RSS."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.exporter_proc import ExporterProcess, MetricKey

Labels = frozenset[tuple[str, str]]


def request(
    proc: ExporterProcess, path: str, *, method: str = "GET",
    headers: dict[str, str] | None = None, timeout: float = 30,
) -> tuple[int, dict[str, str], str]:
    """Like ExporterProcess.get, with a method and headers; 4xx/5xx are returned."""
    req = urllib.request.Request(proc.url + path, method=method, headers=headers or {},
                                 data=b"" if method in ("POST", "PUT") else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read().decode("utf-8", "replace")
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, body
    except urllib.error.HTTPError as err:
        body = err.read().decode("utf-8", "replace")
        return err.code, {k.lower(): v for k, v in err.headers.items()}, body


def parse_metrics(text: str) -> dict[MetricKey, float]:
    out: dict[MetricKey, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
    return out


def series(metrics: dict[MetricKey, float], name: str) -> dict[Labels, float]:
    return {labels: v for (n, labels), v in metrics.items() if n == name}


def key(**labels: str) -> Labels:
    return frozenset(labels.items())


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status (VmRSS, in KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def last_success(proc: ExporterProcess, check: str, target: str) -> float | None:
    return proc.value("deliverability_check_last_success_timestamp_seconds",
                      check=check, target=target)
