"""Issue 3's acceptance: SPF, DKIM, DMARC and MX through the real DNS stack.

Knot serves a good domain, a broken one (two SPF records, weak, tiny and
revoked DKIM keys, p=none, an MX that is a CNAME), one over the SPF lookup
limit, a softfail one and a subdomain inheriting its parent's policy; a
silent nameserver plays a domain whose lookups time out. unbound is the
resolver in between, and the exporter runs as a user runs it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.integration.conftest import StackFactory
from tests.integration.exporter_proc import ExporterProcess, MetricKey
from tests.integration.stack import DnsStack, Zone


def dkim_txt(bits: int) -> str:
    """A DKIM key record for a fresh RSA key, split into 255-octet strings for the zone file."""
    if bits >= 1024:
        public = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    else:
        # cryptography refuses to generate keys this weak; a weak modulus is enough to publish.
        modulus = (1 << (bits - 1)) | int.from_bytes(bytes(range(1, bits // 8)), "big") | 1
        public = rsa.RSAPublicNumbers(65537, modulus).public_key()
    spki = public.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)
    record = "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode()
    return " ".join(f'"{record[i:i + 250]}"' for i in range(0, len(record), 250))


ZONES = [
    Zone("good.test", f"""\
@            TXT  "v=spf1 ip4:192.0.2.10 -all"
@            MX   10 mx
mx           A    127.0.0.1
_dmarc       TXT  "v=DMARC1; p=reject; sp=quarantine; rua=mailto:dmarc@good.test"
s1._domainkey TXT {dkim_txt(2048)}
sub          A    127.0.0.1
"""),
    Zone("broken.test", f"""\
@            TXT  "v=spf1 ip4:192.0.2.10 -all"
@            TXT  "v=spf1 +all"
@            MX   10 alias
alias        CNAME mx
mx           A    127.0.0.1
_dmarc       TXT  "v=DMARC1; p=none"
weak._domainkey TXT {dkim_txt(1024)}
tiny._domainkey TXT {dkim_txt(512)}
gone._domainkey TXT "v=DKIM1; k=rsa; p="
"""),
    Zone("heavy.test", """\
@   TXT ( "v=spf1 mx include:i1.heavy.test include:i2.heavy.test include:i3.heavy.test"
          " include:i4.heavy.test include:i5.heavy.test -all" )
@   MX  10 mx
mx  A   127.0.0.1
i1  TXT "v=spf1 a -all"
i1  A   192.0.2.1
i2  TXT "v=spf1 a -all"
i2  A   192.0.2.2
i3  TXT "v=spf1 a -all"
i3  A   192.0.2.3
i4  TXT "v=spf1 a -all"
i4  A   192.0.2.4
i5  TXT "v=spf1 a -all"
i5  A   192.0.2.5
"""),
    Zone("soft.test", """\
@   TXT "v=spf1 ip4:192.0.2.10 ~all"
@   MX  0 .
"""),
]
SILENT = ["dead.test"]

CONFIG = """\
resolver:
  nameservers: ["{host}"]
  port: {port}
  timeout: 500ms
  attempts: 2
dnsbl: {{interval: 1h, zones: []}}
spf: {{interval: 3s}}
dkim: {{interval: 3s}}
dmarc: {{interval: 3s}}
mx: {{interval: 3s}}
domains:
  - {{name: good.test, dkim_selectors: [s1], senders: [192.0.2.10, 192.0.2.20], smtp: false}}
  - {{name: sub.good.test, smtp: false}}
  - {{name: broken.test, dkim_selectors: [weak, tiny, gone, missing], senders: [192.0.2.10],
      smtp: false}}
  - {{name: heavy.test, senders: [192.0.2.5], smtp: false}}
  - {{name: soft.test, senders: [192.0.2.20], smtp: false}}
  - {{name: dead.test, dkim_selectors: [s1], senders: [192.0.2.10], smtp: false}}
"""


@pytest.fixture(scope="module")
def auth_stack(make_stack: StackFactory) -> DnsStack:
    return make_stack(zones=ZONES, silent_zones=SILENT)


@pytest.fixture(scope="module")
def metrics(auth_stack: DnsStack, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[MetricKey, float]]:
    proc = ExporterProcess(CONFIG.format(host=auth_stack.resolver_host,
                                         port=auth_stack.resolver_port),
                           tmp_path_factory.mktemp("auth-exporter"))
    proc.start(wait_ready=True, timeout=60)
    try:
        yield proc.metrics()
    finally:
        proc.stop()


def value(m: dict[MetricKey, float], name: str, **labels: str) -> float | None:
    return m.get((name, frozenset(labels.items())))


def has_series(m: dict[MetricKey, float], name: str, **labels: str) -> bool:
    want = set(labels.items())
    return any(n == name and want <= set(lbl) for n, lbl in m)


def test_spf_records_validity_and_lookups(metrics: dict[MetricKey, float]) -> None:
    assert value(metrics, "deliverability_spf_records", domain="good.test") == 1
    assert value(metrics, "deliverability_spf_valid", domain="good.test") == 1
    assert value(metrics, "deliverability_spf_records", domain="broken.test") == 2
    assert value(metrics, "deliverability_spf_valid", domain="broken.test") == 0
    assert value(metrics, "deliverability_spf_dns_lookups", domain="heavy.test") == 11
    assert value(metrics, "deliverability_spf_valid", domain="heavy.test") == 0
    assert value(metrics, "deliverability_spf_dns_lookups", domain="good.test") == 0


def test_spf_check_host_for_each_sender(metrics: dict[MetricKey, float]) -> None:
    assert value(metrics, "deliverability_spf_authorized", domain="good.test",
                 ip="192.0.2.10") == 1
    assert value(metrics, "deliverability_spf_result_info", domain="good.test",
                 ip="192.0.2.10", result="pass") == 1
    assert value(metrics, "deliverability_spf_authorized", domain="good.test",
                 ip="192.0.2.20") == 0
    assert value(metrics, "deliverability_spf_result_info", domain="good.test",
                 ip="192.0.2.20", result="fail") == 1
    assert value(metrics, "deliverability_spf_result_info", domain="soft.test",
                 ip="192.0.2.20", result="softfail") == 1
    # 192.0.2.5 is only reached by the 11th lookup: receivers give permerror.
    assert value(metrics, "deliverability_spf_result_info", domain="heavy.test",
                 ip="192.0.2.5", result="permerror") == 1


def test_dkim_keys(metrics: dict[MetricKey, float]) -> None:
    assert value(metrics, "deliverability_dkim_key_valid", domain="good.test", selector="s1") == 1
    assert value(metrics, "deliverability_dkim_key_bits", domain="good.test", selector="s1") == 2048
    assert value(metrics, "deliverability_dkim_key_valid", domain="broken.test",
                 selector="weak") == 1
    assert value(metrics, "deliverability_dkim_key_bits", domain="broken.test",
                 selector="weak") == 1024
    assert value(metrics, "deliverability_dkim_key_valid", domain="broken.test",
                 selector="tiny") == 0
    assert value(metrics, "deliverability_dkim_key_bits", domain="broken.test",
                 selector="tiny") == 512
    for selector in ("gone", "missing"):  # revoked, and never published
        assert value(metrics, "deliverability_dkim_key_valid", domain="broken.test",
                     selector=selector) == 0
        assert not has_series(metrics, "deliverability_dkim_key_bits", domain="broken.test",
                              selector=selector)
    assert value(metrics, "deliverability_dkim_testing", domain="good.test", selector="s1") == 0


def test_dmarc_policies(metrics: dict[MetricKey, float]) -> None:
    assert value(metrics, "deliverability_dmarc_records", domain="good.test") == 1
    assert value(metrics, "deliverability_dmarc_valid", domain="good.test") == 1
    assert value(metrics, "deliverability_dmarc_policy", domain="good.test") == 2
    assert value(metrics, "deliverability_dmarc_subdomain_policy", domain="good.test") == 1
    assert value(metrics, "deliverability_dmarc_policy_inherited", domain="good.test") == 0
    assert value(metrics, "deliverability_dmarc_pct", domain="good.test") == 100
    assert value(metrics, "deliverability_dmarc_reporting", domain="good.test") == 1
    assert value(metrics, "deliverability_dmarc_policy", domain="broken.test") == 0
    assert value(metrics, "deliverability_dmarc_reporting", domain="broken.test") == 0
    # sub.good.test has no record: a receiver applies good.test's sp=quarantine.
    assert value(metrics, "deliverability_dmarc_records", domain="sub.good.test") == 0
    assert value(metrics, "deliverability_dmarc_policy", domain="sub.good.test") == 1
    assert value(metrics, "deliverability_dmarc_policy_inherited", domain="sub.good.test") == 1
    # No DMARC anywhere up the tree.
    assert value(metrics, "deliverability_dmarc_policy", domain="soft.test") == -1


def test_mx(metrics: dict[MetricKey, float]) -> None:
    assert value(metrics, "deliverability_mx_hosts", domain="good.test") == 1
    assert value(metrics, "deliverability_mx_valid", domain="good.test") == 1
    assert value(metrics, "deliverability_mx_hosts", domain="soft.test") == 0  # null MX
    assert value(metrics, "deliverability_mx_valid", domain="soft.test") == 1
    # An MX that is a CNAME is flagged in the findings but still resolves.
    assert value(metrics, "deliverability_mx_valid", domain="broken.test") == 1


def test_successful_checks(metrics: dict[MetricKey, float]) -> None:
    for check in ("spf", "dkim", "dmarc", "mx"):
        for domain in ("good.test", "broken.test"):
            assert value(metrics, "deliverability_check_success", check=check,
                         target=domain) == 1, (check, domain)


def test_timeouts_fail_the_checks_and_say_nothing(metrics: dict[MetricKey, float]) -> None:
    for check in ("spf", "dkim", "dmarc", "mx"):
        assert value(metrics, "deliverability_check_success", check=check,
                     target="dead.test") == 0, check
        assert not has_series(metrics, "deliverability_check_last_success_timestamp_seconds",
                              check=check, target="dead.test")
    for name in ("deliverability_spf_records", "deliverability_spf_valid",
                 "deliverability_spf_authorized", "deliverability_dmarc_policy",
                 "deliverability_dmarc_records", "deliverability_mx_hosts",
                 "deliverability_mx_valid"):
        assert not has_series(metrics, name, domain="dead.test"), name
    assert not has_series(metrics, "deliverability_dkim_key_valid", domain="dead.test")
