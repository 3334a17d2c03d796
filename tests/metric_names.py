"""The metric names users' alerts and dashboards may rely on: the issues' tables.

Copied from the metric tables of issues 2 (core, blocklists, reverse DNS), 3
(SPF, DKIM, DMARC, MX), 4 (transport security) and 6 (reload, overruns), plus
the two the core exports for the rules (``deliverability_check_interval_seconds``
and ``deliverability_dnsbl_zone_info``). The alert-rule and dashboard tests
check every name they use against this list, so a typo or a renamed metric
fails a test instead of silently emptying a panel or disarming an alert.
"""

from __future__ import annotations

import re

DOCUMENTED_METRICS: frozenset[str] = frozenset({
    # issue 2: the core, blocklists, reverse DNS
    "deliverability_dnsbl_listed",
    "deliverability_dnsbl_domain_listed",
    "deliverability_dnsbl_listings",
    "deliverability_dnsbl_listing_info",
    "deliverability_dnsbl_zone_healthy",
    "deliverability_dnsbl_zone_info",
    "deliverability_ptr_present",
    "deliverability_fcrdns_valid",
    "deliverability_helo_aligned",
    "deliverability_ptr_info",
    "deliverability_check_success",
    "deliverability_check_duration_seconds",
    "deliverability_check_last_success_timestamp_seconds",
    "deliverability_check_interval_seconds",
    "deliverability_dns_queries_total",
    "deliverability_build_info",
    # issue 3: SPF, DKIM, DMARC, MX
    "deliverability_spf_records",
    "deliverability_spf_valid",
    "deliverability_spf_dns_lookups",
    "deliverability_spf_void_lookups",
    "deliverability_spf_authorized",
    "deliverability_spf_result_info",
    "deliverability_dkim_key_valid",
    "deliverability_dkim_key_bits",
    "deliverability_dkim_testing",
    "deliverability_dmarc_records",
    "deliverability_dmarc_valid",
    "deliverability_dmarc_policy",
    "deliverability_dmarc_subdomain_policy",
    "deliverability_dmarc_policy_inherited",
    "deliverability_dmarc_pct",
    "deliverability_dmarc_reporting",
    "deliverability_mx_hosts",
    "deliverability_mx_valid",
    # issue 4: transport security
    "deliverability_smtp_up",
    "deliverability_smtp_starttls",
    "deliverability_smtp_tls_cert_valid",
    "deliverability_smtp_tls_cert_expiry_timestamp_seconds",
    "deliverability_smtp_tls_version_info",
    "deliverability_mta_sts_mode",
    "deliverability_mta_sts_valid",
    "deliverability_tlsrpt_valid",
    "deliverability_dnssec_valid",
    "deliverability_dane_valid",
    "deliverability_bimi_valid",
    # issue 6: operability
    "deliverability_config_last_reload_successful",
    "deliverability_config_last_reload_success_timestamp_seconds",
    "deliverability_check_overruns_total",
})

#: Metrics Prometheus itself makes, which rules and panels may use as well.
PROMETHEUS_METRICS: frozenset[str] = frozenset({"up"})

_NAME = re.compile(r"\bdeliverability_[a-z0-9_]+\b")


def deliverability_names(text: str) -> set[str]:
    """Every ``deliverability_*`` identifier in a PromQL expression or template."""
    return set(_NAME.findall(text))
