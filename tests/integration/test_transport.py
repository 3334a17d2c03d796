"""Transport security end to end: real Postfix, Knot (signed zones), unbound, an HTTPS server.

The exporter runs as a user runs it (``python -m exporter``) against unbound;
every MX and every ``mta-sts.`` host in the test zones is a loopback address:

- good.test (signed): mx1 → Postfix with a test-CA certificate for its name,
  TLSA 3 1 1 computed from that certificate, an enforce MTA-STS policy,
  TLS-RPT, BIMI with DMARC reject: everything valid.
- plain.test (unsigned): mx2 offers no STARTTLS, mx3 an expired certificate,
  mx4 refuses connections (a closed port); its MTA-STS policy misses MX hosts.
- bad.test (signed): mx5 presents a certificate for another name, and its
  TLSA record does not match; its MTA-STS policy URL redirects.
- screen.test: mx6 is behind postscreen, which greets with a multi-line
  ``220-`` banner and only lets clients that wait for its end through.
- bogus.test: unsigned, but unbound holds a trust anchor for it, so every
  answer is SERVFAIL (DNSSEC bogus).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from exporter.checks.dane import tlsa_record_for
from tests.integration.conftest import StackFactory
from tests.integration.exporter_proc import ExporterProcess
from tests.integration.https_server import HttpsServer, Response, policy
from tests.integration.pki import Leaf, TestCA
from tests.integration.postfix import Postfix, SmtpService, postfix_available
from tests.integration.stack import DnsStack, Zone, free_port, require_binaries

PATH = "/.well-known/mta-sts.txt"
BOGUS_ANCHOR = ("bogus.test. DS 12345 13 2 "
                "0000000000000000000000000000000000000000000000000000000000000000")

#: The checks of this issue, registered in the exporter if the registry lacks them
#: (the registry is another module's; this keeps the test honest either way).
TRANSPORT_CHECKS = (
    ("exporter.checks.smtp", "SmtpCheck"),
    ("exporter.checks.mta_sts", "MtaStsCheck"),
    ("exporter.checks.tlsrpt", "TlsRptCheck"),
    ("exporter.checks.dnssec", "DnssecCheck"),
    ("exporter.checks.dane", "DaneCheck"),
    ("exporter.checks.bimi", "BimiCheck"),
)

_LAUNCHER = f"""
import sys
import exporter.registry as registry
missing = tuple(c for c in {TRANSPORT_CHECKS!r} if c not in registry._CHECK_MODULES)
registry._CHECK_MODULES = registry._CHECK_MODULES + missing
from exporter.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


class TransportExporter(ExporterProcess):
    """``python -m exporter`` with the transport checks guaranteed to be registered."""

    @property
    def argv(self) -> list[str]:
        argv = super().argv
        assert argv[1:3] == ["-m", "exporter"]
        return [sys.executable, "-c", _LAUNCHER, *argv[3:]]


@dataclass
class Lab:
    stack: DnsStack
    postfix: Postfix
    https: HttpsServer
    ca_file: Path
    smtp_port: int
    leaves: dict[str, Leaf]


@pytest.fixture(scope="module")
def lab(make_stack: StackFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_binaries("postfix", "postconf")
    if not postfix_available():
        pytest.skip("Postfix daemons not found in /usr/lib/postfix/sbin")
    root = tmp_path_factory.mktemp("transport")
    ca = TestCA()
    ca_file = ca.write(root / "ca.pem")
    leaves = {
        "mx1.good.test": ca.issue("mx1.good.test"),
        "mx3.plain.test": ca.issue_expired("mx3.plain.test"),
        "mx5.bad.test": ca.issue("some-other-name.bad.test"),
        "mx6.screen.test": ca.issue("mx6.screen.test"),
    }
    smtp_port = free_port()
    other_key = ca.issue("mx5.bad.test")  # the TLSA of bad.test describes this, not mx5's
    zones = [
        Zone("good.test", f"""\
@                     MX   10 mx1
mx1                   A    127.0.0.2
_{smtp_port}._tcp.mx1 TLSA {tlsa_record_for(leaves["mx1.good.test"].der)}
_mta-sts              TXT  "v=STSv1; id=20261201"
mta-sts               A    127.0.0.10
_smtp._tls            TXT  "v=TLSRPTv1; rua=mailto:tlsrpt@good.test"
default._bimi         TXT  "v=BIMI1; l=https://good.test/logo.svg"
_dmarc                TXT  "v=DMARC1; p=reject; rua=mailto:dmarc@good.test"
""", signed=True),
        Zone("plain.test", """\
@              MX   10 mx2
@              MX   20 mx3
@              MX   30 mx4
mx2            A    127.0.0.3
mx3            A    127.0.0.4
mx4            A    127.0.0.5
_mta-sts       TXT  "v=STSv1; id=1"
mta-sts        A    127.0.0.10
default._bimi  TXT  "v=BIMI1; l=https://plain.test/logo.svg"
_dmarc         TXT  "v=DMARC1; p=none"
"""),
        Zone("bad.test", f"""\
@                     MX   10 mx5
mx5                   A    127.0.0.6
_{smtp_port}._tcp.mx5 TLSA {tlsa_record_for(other_key.der)}
_mta-sts              TXT  "v=STSv1; id=7"
mta-sts               A    127.0.0.10
_smtp._tls            TXT  "v=TLSRPTv1; rua=http://not-https.bad.test/"
""", signed=True),
        Zone("bogus.test", "@ MX 10 mx1.good.test.\n"),
        Zone("screen.test", "@ MX 10 mx6\nmx6 A 127.0.0.7\n"),
    ]
    stack = make_stack(zones=zones, extra_trust_anchors=[BOGUS_ANCHOR])
    postfix = Postfix(root / "postfix", smtp_port, [
        SmtpService("127.0.0.2", "mx1.good.test", leaves["mx1.good.test"]),
        SmtpService("127.0.0.3", "mx2.plain.test", None),
        SmtpService("127.0.0.4", "mx3.plain.test", leaves["mx3.plain.test"]),
        # 127.0.0.5 (mx4) has nothing listening: connections are refused.
        SmtpService("127.0.0.6", "mx5.bad.test", leaves["mx5.bad.test"]),
        SmtpService("127.0.0.7", "mx6.screen.test", leaves["mx6.screen.test"], postscreen=True),
    ])
    https = HttpsServer("127.0.0.10", free_port(), root / "https")
    for name in ("mta-sts.good.test", "mta-sts.plain.test", "mta-sts.bad.test"):
        https.host(name, ca.issue(name))
    https.route("mta-sts.good.test", PATH, policy("enforce", "mx1.good.test"))
    https.route("mta-sts.plain.test", PATH, policy("testing", "mx2.plain.test"))
    https.route("mta-sts.bad.test", PATH,
                Response(302, b"", headers={"Location": "https://elsewhere.bad.test/"}))
    postfix.start()
    try:
        https.start()
        try:
            yield Lab(stack, postfix, https, ca_file, smtp_port, leaves)
        finally:
            https.stop()
    finally:
        postfix.stop()
        print(f"--- postfix log ---\n{postfix.log()[-6000:]}")


def config(lab: Lab) -> str:
    return f"""\
resolver:
  nameservers: ["{lab.stack.resolver_host}"]
  port: {lab.stack.resolver_port}
  timeout: 2s
smtp:
  port: {lab.smtp_port}
  timeout: 5s
  helo: probe.exporter.test
tls:
  ca_file: {lab.ca_file}
mta_sts:
  port: {lab.https.port}
  timeout: 5s
scheduler:
  jitter: 0
domains:
  - good.test
  - plain.test
  - bad.test
  - screen.test
  - name: bogus.test
    smtp: false
"""


@pytest.fixture(scope="module")
def metrics(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterProcess]:
    proc = TransportExporter(config(lab), tmp_path_factory.mktemp("exporter"))
    proc.start()
    expected = [
        ("deliverability_smtp_up", {"mx": "mx4.plain.test"}),
        ("deliverability_smtp_up", {"mx": "mx5.bad.test"}),
        ("deliverability_smtp_up", {"mx": "mx1.good.test"}),
        ("deliverability_smtp_up", {"mx": "mx6.screen.test"}),
        ("deliverability_dane_valid", {"mx": "mx1.good.test"}),
        ("deliverability_dane_valid", {"mx": "mx5.bad.test"}),
        ("deliverability_mta_sts_valid", {"domain": "bad.test"}),
        ("deliverability_mta_sts_valid", {"domain": "plain.test"}),
        ("deliverability_mta_sts_valid", {"domain": "good.test"}),
        ("deliverability_bimi_valid", {"domain": "plain.test"}),
        ("deliverability_dnssec_valid", {"domain": "good.test"}),
        ("deliverability_check_success", {"check": "dnssec", "target": "bogus.test"}),
    ]

    def all_there() -> bool:
        m = proc.metrics()
        return all((n, frozenset(labels.items())) in m for n, labels in expected)

    try:
        proc.wait_for(all_there, timeout=60, what="every transport metric")
        yield proc
    finally:
        proc.kill()
        print(f"--- exporter log ---\n{proc.log[-20000:]}")


def test_good_mx_has_verified_starttls_with_its_certificate_expiry(
    metrics: ExporterProcess, lab: Lab
) -> None:
    mx = "mx1.good.test"
    assert metrics.value("deliverability_smtp_up", mx=mx) == 1
    assert metrics.value("deliverability_smtp_starttls", mx=mx) == 1
    assert metrics.value("deliverability_smtp_tls_cert_valid", mx=mx) == 1
    assert metrics.value("deliverability_smtp_tls_cert_expiry_timestamp_seconds",
                         mx=mx) == lab.leaves[mx].not_after
    assert metrics.value("deliverability_smtp_tls_version_info", mx=mx, version="TLSv1.3") == 1
    assert metrics.value("deliverability_check_success", check="smtp", target="good.test") == 1


def test_mx_without_starttls_is_up_but_not_encrypted(metrics: ExporterProcess) -> None:
    mx = "mx2.plain.test"
    assert metrics.value("deliverability_smtp_up", mx=mx) == 1
    assert metrics.value("deliverability_smtp_starttls", mx=mx) == 0
    assert metrics.value("deliverability_smtp_tls_cert_valid", mx=mx) == 0
    assert metrics.value("deliverability_smtp_tls_cert_expiry_timestamp_seconds", mx=mx) is None


def test_expired_certificate_is_invalid_and_its_past_expiry_is_reported(
    metrics: ExporterProcess, lab: Lab
) -> None:
    mx = "mx3.plain.test"
    assert metrics.value("deliverability_smtp_starttls", mx=mx) == 1
    assert metrics.value("deliverability_smtp_tls_cert_valid", mx=mx) == 0
    expiry = metrics.value("deliverability_smtp_tls_cert_expiry_timestamp_seconds", mx=mx)
    assert expiry == lab.leaves[mx].not_after


def test_wrong_name_certificate_is_invalid(metrics: ExporterProcess) -> None:
    mx = "mx5.bad.test"
    assert metrics.value("deliverability_smtp_up", mx=mx) == 1
    assert metrics.value("deliverability_smtp_starttls", mx=mx) == 1
    assert metrics.value("deliverability_smtp_tls_cert_valid", mx=mx) == 0


def test_refusing_mx_is_down_and_fails_the_run_with_the_reason_logged(
    metrics: ExporterProcess,
) -> None:
    assert metrics.value("deliverability_smtp_up", mx="mx4.plain.test") == 0
    assert metrics.value("deliverability_check_success", check="smtp", target="plain.test") == 0
    assert "127.0.0.5" in metrics.log and "refused" in metrics.log


def test_dane_matches_the_published_tlsa_and_rejects_a_mismatch(
    metrics: ExporterProcess,
) -> None:
    assert metrics.value("deliverability_dane_valid", mx="mx1.good.test") == 1
    assert metrics.value("deliverability_dane_valid", mx="mx5.bad.test") == 0
    # No TLSA at all in an unsigned zone.
    assert metrics.value("deliverability_dane_valid", mx="mx2.plain.test") == 0


def test_dnssec_signed_zones_validate_and_unsigned_do_not(metrics: ExporterProcess) -> None:
    assert metrics.value("deliverability_dnssec_valid", domain="good.test") == 1
    assert metrics.value("deliverability_dnssec_valid", domain="bad.test") == 1
    assert metrics.value("deliverability_dnssec_valid", domain="plain.test") == 0


def test_bogus_zone_fails_the_dnssec_run_without_a_sample(metrics: ExporterProcess) -> None:
    assert metrics.value("deliverability_check_success", check="dnssec",
                         target="bogus.test") == 0
    assert metrics.value("deliverability_dnssec_valid", domain="bogus.test") is None


def test_mta_sts_policies(metrics: ExporterProcess, lab: Lab) -> None:
    assert metrics.value("deliverability_mta_sts_mode", domain="good.test") == 2
    assert metrics.value("deliverability_mta_sts_valid", domain="good.test") == 1
    # testing, but mx3 and mx4 are not covered.
    assert metrics.value("deliverability_mta_sts_mode", domain="plain.test") == 1
    assert metrics.value("deliverability_mta_sts_valid", domain="plain.test") == 0
    # A redirect is not a policy.
    assert metrics.value("deliverability_mta_sts_mode", domain="bad.test") == -1
    assert metrics.value("deliverability_mta_sts_valid", domain="bad.test") == 0
    assert ("mta-sts.good.test", PATH) in lab.https.requests


def test_tlsrpt_and_bimi(metrics: ExporterProcess) -> None:
    assert metrics.value("deliverability_tlsrpt_valid", domain="good.test") == 1
    assert metrics.value("deliverability_tlsrpt_valid", domain="bad.test") == 0
    assert metrics.value("deliverability_tlsrpt_valid", domain="plain.test") == 0
    assert metrics.value("deliverability_bimi_valid", domain="good.test") == 1
    assert metrics.value("deliverability_bimi_valid", domain="plain.test") == 0


def test_the_probe_never_sent_mail(metrics: ExporterProcess, lab: Lab) -> None:
    log = lab.postfix.log()
    assert "starttls=1" in log
    assert "mail=" not in log and "rcpt=" not in log


def test_multiline_postscreen_greeting_is_waited_for(metrics: ExporterProcess,
                                                     lab: Lab) -> None:
    mx = "mx6.screen.test"
    assert metrics.value("deliverability_smtp_up", mx=mx) == 1
    assert metrics.value("deliverability_smtp_starttls", mx=mx) == 1
    assert metrics.value("deliverability_smtp_tls_cert_valid", mx=mx) == 1
    log = lab.postfix.log()
    # A probe waited for the whole 220- greeting (PASS NEW) and none talked early.
    assert "PASS NEW [127.0.0.1]" in log
    assert "PREGREET" not in log
