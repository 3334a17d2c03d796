"""/probe against real servers: what is probed, what is refused, how fast, how often.

Knot serves the domains, rbldnsd a blocklist, a silent port a zone that never
answers, and unbound (stub-zoned to all three) is the exporter's resolver.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.conftest import ExporterFactory, StackFactory
from tests.integration.exporter_proc import ExporterProcess
from tests.integration.probe_helpers import key, parse_metrics, request, series
from tests.integration.stack import Blocklist, DnsStack, Zone

ZONES = [
    Zone("good.test", """\
@      TXT  "v=spf1 ip4:192.0.2.10 -all"
_dmarc TXT  "v=DMARC1; p=reject; rua=mailto:dmarc@good.test"
mail   A    192.0.2.10
"""),
    Zone("allowed.test", """\
sub        TXT "v=spf1 ip4:198.51.100.0/24 ~all"
_dmarc.sub TXT "v=DMARC1; p=quarantine"
"""),
    Zone("other.test", '@ TXT "v=spf1 -all"\n'),
]
BLOCKLISTS = [Blocklist("v4.bl.test", [("ip4set", ":127.0.0.2:Listed\n127.0.0.2\n"
                                                  "192.0.2.99\n198.51.100.7\n")])]
SILENT = ["silent.test"]


def config(stack: DnsStack, rate: float = 1000, burst: int = 100000) -> str:
    return f"""\
resolver:
  nameservers: ["127.0.0.1"]
  port: {stack.resolver_port}
  timeout: 2s
  attempts: 2
dnsbl:
  interval: 1h
  zones: [{{zone: v4.bl.test}}]
senders:
  - ip: 192.0.2.99
domains:
  - name: good.test
    smtp: false
modules:
  blocklists: {{checks: [dnsbl]}}
  auth: {{checks: [spf, dmarc]}}
probe:
  allow: ["allowed.test", "silent.test", "198.51.100.0/24"]
  rate: {rate}
  burst: {burst}
"""


@pytest.fixture(scope="module")
def stack(make_stack: StackFactory) -> DnsStack:
    return make_stack(zones=ZONES, blocklists=BLOCKLISTS, silent_zones=SILENT)


@pytest.fixture(scope="module")
def proc(stack: DnsStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterProcess]:
    p = ExporterProcess(config(stack), tmp_path_factory.mktemp("probe-exporter"))
    p.start()
    yield p
    p.kill()
    print(f"--- probe exporter log ---\n{p.log[-20000:]}")


def probe(proc: ExporterProcess, query: str, **kw: object) -> tuple[int, dict[str, str], str]:
    return request(proc, f"/probe?{query}", **kw)  # type: ignore[arg-type]


def dns_queries_sent(proc: ExporterProcess) -> float:
    m = series(proc.metrics(), "deliverability_dns_queries_total")
    return sum(v for labels, v in m.items() if dict(labels)["outcome"] != "cached")


def test_probe_of_a_configured_ip_reports_its_listing(proc: ExporterProcess) -> None:
    status, headers, body = probe(proc, "target=192.0.2.99&module=blocklists")
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain")
    m = parse_metrics(body)
    assert m[("probe_success", key())] == 1.0
    assert 0 < m[("probe_duration_seconds", key())] < 5
    assert series(m, "deliverability_dnsbl_listed") == {key(ip="192.0.2.99", zone="v4.bl.test"): 1}
    assert series(m, "deliverability_dnsbl_listings") == {key(ip="192.0.2.99"): 1.0}
    assert series(m, "deliverability_check_success") == {
        key(check="dnsbl", target="192.0.2.99"): 1.0}
    # The module names dnsbl only: not even the empty families of the other checks.
    assert "deliverability_spf" not in body and "deliverability_ptr" not in body


def test_probe_of_a_configured_domain_runs_the_module_checks(proc: ExporterProcess) -> None:
    status, _, body = probe(proc, "target=good.test&module=auth")
    assert status == 200, body
    m = parse_metrics(body)
    assert m[("probe_success", key())] == 1.0
    assert m[("deliverability_spf_valid", key(domain="good.test"))] == 1.0
    assert m[("deliverability_spf_records", key(domain="good.test"))] == 1.0
    assert m[("deliverability_dmarc_policy", key(domain="good.test"))] == 2.0  # reject
    assert m[("deliverability_dmarc_valid", key(domain="good.test"))] == 1.0
    assert series(m, "deliverability_check_success") == {
        key(check="spf", target="good.test"): 1.0, key(check="dmarc", target="good.test"): 1.0}


def test_probe_of_a_domain_under_an_allowed_suffix(proc: ExporterProcess) -> None:
    status, _, body = probe(proc, "target=SUB.allowed.test.&module=auth")
    assert status == 200, body
    m = parse_metrics(body)
    assert m[("probe_success", key())] == 1.0
    assert m[("deliverability_spf_valid", key(domain="sub.allowed.test"))] == 1.0
    assert m[("deliverability_dmarc_policy", key(domain="sub.allowed.test"))] == 1.0


def test_probe_of_ips_in_an_allowed_network(proc: ExporterProcess) -> None:
    for ip, listed in (("198.51.100.7", 1.0), ("198.51.100.8", 0.0)):
        status, _, body = probe(proc, f"target={ip}&module=blocklists")
        assert status == 200, body
        m = parse_metrics(body)
        assert m[("probe_success", key())] == 1.0
        assert series(m, "deliverability_dnsbl_listed") == {key(ip=ip, zone="v4.bl.test"): listed}


@pytest.mark.parametrize("target", [
    "other.test",            # served by the test DNS, but neither configured nor allowed
    "evilallowed.test",      # a suffix match must be on a label boundary
    "allowed.test.evil.test",
    "203.0.113.5",
    "198.51.101.7",
    "2001:db8::1",
])
def test_probe_of_anything_else_is_forbidden_and_sends_nothing(
    proc: ExporterProcess, target: str
) -> None:
    before = dns_queries_sent(proc)
    for module in ("auth", "blocklists"):
        status, _, body = probe(proc, f"target={target}&module={module}")
        assert status == 403, body
        assert "not configured" in body
    assert dns_queries_sent(proc) == before


@pytest.mark.parametrize(("query", "text"), [
    ("target=good.test&module=nosuch", "unknown module 'nosuch'"),
    ("target=good.test", "unknown module ''"),
    ("target=a..b&module=auth", "bad target"),
    ("target=&module=auth", "target parameter is missing"),
    ("target=-bad-.test&module=auth", "bad target"),
])
def test_probe_with_a_bad_module_or_target_is_a_bad_request(
    proc: ExporterProcess, query: str, text: str
) -> None:
    status, _, body = probe(proc, query)
    assert status == 400, body
    assert text in body


def test_probe_module_with_nothing_to_check_is_a_bad_request(proc: ExporterProcess) -> None:
    # SPF and DMARC are checks of domains: an IP gives the module nothing to run.
    status, _, body = probe(proc, "target=192.0.2.99&module=auth")
    assert status == 400, body
    assert "nothing to check" in body


def test_probe_debug_shows_the_dns_questions_and_findings(proc: ExporterProcess) -> None:
    status, headers, body = probe(proc, "target=192.0.2.99&module=blocklists&debug=true")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert "Probe of 192.0.2.99 with module blocklists: succeeded" in body
    assert "DNS questions:" in body
    lines = body.splitlines()
    # The listing lookup and the RFC 5782 health lookups, with their outcomes.
    assert any(line.split()[:4] == ["A", "99.2.0.192.v4.bl.test", "->", "ok"] for line in lines)
    assert any(line.split()[:4] == ["TXT", "99.2.0.192.v4.bl.test", "->", "ok"] for line in lines)
    assert any(line.split()[:4] == ["A", "1.0.0.127.v4.bl.test", "->", "nxdomain"]
               for line in lines)
    assert "Check dnsbl on 192.0.2.99: ok" in body
    assert "  [fail] 192.0.2.99 is listed on v4.bl.test" in lines
    assert "      evidence: 99.2.0.192.v4.bl.test A 127.0.0.2; TXT 'Listed'" in lines
    assert 'deliverability_dnsbl_listed{ip="192.0.2.99",zone="v4.bl.test"} 1.0' in body


def test_scrape_timeout_header_cuts_a_probe_of_a_silent_zone(proc: ExporterProcess) -> None:
    started = time.monotonic()
    status, _, body = probe(proc, "target=x.silent.test&module=auth",
                            headers={"X-Prometheus-Scrape-Timeout-Seconds": "2"})
    elapsed = time.monotonic() - started
    assert status == 200, body
    m = parse_metrics(body)
    assert m[("probe_success", key())] == 0.0
    # 2 s minus the 0.5 s margin: the probe gave up at 1.5 s, well before the
    # resolver's own 2 x 2 s would have.
    assert 1.4 <= m[("probe_duration_seconds", key())] < 1.9
    assert 1.4 <= elapsed < 2.5
    # Nothing learned from an unanswered lookup: no SPF or DMARC verdict at all.
    assert series(m, "deliverability_spf_valid") == {}
    assert series(m, "deliverability_dmarc_policy") == {}
    assert series(m, "deliverability_check_success") == {
        key(check="spf", target="x.silent.test"): 0.0,
        key(check="dmarc", target="x.silent.test"): 0.0}


def test_probes_do_not_touch_the_background_results(proc: ExporterProcess) -> None:
    probe(proc, "target=x.silent.test&module=auth",
          headers={"X-Prometheus-Scrape-Timeout-Seconds": "1"})
    m = proc.metrics()
    targets = {dict(labels)["target"] for labels in series(m, "deliverability_check_success")}
    assert "x.silent.test" not in targets
    assert "198.51.100.7" not in targets
    assert m[("deliverability_dnsbl_listed", key(ip="192.0.2.99", zone="v4.bl.test"))] == 1.0


def test_each_client_is_rate_limited_after_its_burst(
    stack: DnsStack, exporter: ExporterFactory
) -> None:
    limited = exporter(config(stack, rate=0.05, burst=3))
    codes = [probe(limited, "target=192.0.2.99&module=blocklists")[0] for _ in range(3)]
    assert codes == [200, 200, 200]
    status, headers, body = probe(limited, "target=192.0.2.99&module=blocklists")
    assert status == 429, body
    assert headers["retry-after"] == "1"
    # Refused requests spend tokens too: a client cannot hammer the 403 path either.
    assert probe(limited, "target=other.test&module=auth")[0] == 429
    # /metrics is not rate limited.
    assert limited.get("/metrics")[0] == 200
