"""Which checks exist: the one place that names them.

Later checks join by being added to ``_CHECK_MODULES``; nothing else needs to
know about them.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from exporter.checks.base import Check, MetricSpec

#: (module, class) of every check, in the order a person works through them.
_CHECK_MODULES: tuple[tuple[str, str], ...] = (
    ("exporter.checks.dnsbl", "DnsblCheck"),
    ("exporter.checks.ptr", "PtrCheck"),
    ("exporter.checks.spf", "SpfCheck"),
    ("exporter.checks.dkim", "DkimCheck"),
    ("exporter.checks.dmarc", "DmarcCheck"),
    ("exporter.checks.mx", "MxCheck"),
    ("exporter.checks.smtp", "SmtpCheck"),
    ("exporter.checks.mta_sts", "MtaStsCheck"),
    ("exporter.checks.tlsrpt", "TlsRptCheck"),
    ("exporter.checks.dnssec", "DnssecCheck"),
    ("exporter.checks.dane", "DaneCheck"),
    ("exporter.checks.bimi", "BimiCheck"),
    ("exporter.checks.postmaster", "PostmasterCheck"),
    ("exporter.checks.snds", "SndsCheck"),
)


def all_checks() -> list[Check]:
    checks: list[Check] = []
    for module_name, class_name in _CHECK_MODULES:
        module = importlib.import_module(module_name)
        checks.append(getattr(module, class_name)())
    return checks


def all_metric_specs(checks: Sequence[Check]) -> list[MetricSpec]:
    specs: list[MetricSpec] = []
    seen: set[str] = set()
    for check in checks:
        for spec in check.metrics:
            if spec.name not in seen:
                seen.add(spec.name)
                specs.append(spec)
    return specs
