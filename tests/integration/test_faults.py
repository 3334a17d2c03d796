"""Faults and hostile input against real servers on loopback (issue 6).

Every case asserts the three promises: the exporter keeps serving, no
unanswered lookup becomes a "listed", "missing" or "none", and memory stays
bounded. Knot serves the hostile zones (a 4 KB and a 64 KB TXT RRset,
non-UTF-8 bytes, CNAME and include loops, an include bomb, 1,000 MX
records); rbldnsd a blocklist that starts listing everything; a tiny
resolver of our own answers SERVFAIL and REFUSED; the stack's silent port
never answers.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from tests.integration.conftest import ExporterFactory, StackFactory
from tests.integration.exporter_proc import ExporterProcess, MetricKey
from tests.integration.probe_helpers import key, rss_kib, series
from tests.integration.stack import (
    STACK_BINARIES,
    Blocklist,
    DnsStack,
    Zone,
    free_port,
    require_binaries,
)

# --------------------------------------------------------------------------
# Hostile zones
# --------------------------------------------------------------------------

FILLER = "".join(chr(ord("a") + i % 26) for i in range(200))
BIG_TXT = "\n".join(f'@ TXT "{i:02d}{FILLER}"' for i in range(20))  # ~4.3 KB with the SPF
#: One TXT record of 250 character-strings of 255 octets: 64,000 octets of RDATA, as
#: big as a DNS message lets one record be.
HUGE_STRINGS = " ".join(f'"{chr(ord("A") + i % 26) * 255}"' for i in range(250))
BOMB_TOP = " ".join(f"include:i{i}.bomb.test" for i in range(10))
BOMB_MIDDLE = "\n".join(
    f'i{i} TXT "v=spf1 ' + " ".join(f"include:j{i}{j}.bomb.test" for j in range(10)) + ' -all"'
    for i in range(10))
BOMB_LEAVES = "\n".join(f'j{i}{j} TXT "v=spf1 ip4:192.0.2.{j} -all"'
                        for i in range(10) for j in range(10))
MX_COUNT = 1000

HOSTILE_ZONES = [
    Zone("big.test", f'@ TXT "v=spf1 ip4:192.0.2.10 -all"\n{BIG_TXT}\n'),
    Zone("huge.test", f'@ TXT "v=spf1 ip4:192.0.2.10 -all"\n@ TXT {HUGE_STRINGS}\n'),
    Zone("nonutf8.test", '@ TXT "v=spf1 ip4:192.0.2.10 \\255\\254 -all"\n'
                         '_dmarc TXT "v=DMARC1; p=reject; x=\\255\\254"\n'),
    Zone("loop.test", "a CNAME b\nb CNAME a\n_dmarc.a CNAME _dmarc.b\n_dmarc.b CNAME _dmarc.a\n"),
    Zone("spfloop.test", '@ TXT "v=spf1 include:other.spfloop.test -all"\n'
                         'other TXT "v=spf1 include:spfloop.test -all"\n'),
    Zone("bomb.test", f'@ TXT "v=spf1 {BOMB_TOP} -all"\n{BOMB_MIDDLE}\n{BOMB_LEAVES}\n'),
    Zone("mx1000.test", "\n".join(
        [f"@ MX 10 mx{i}" for i in range(MX_COUNT)]
        + [f"mx{i} A 192.0.2.{i % 250 + 1}" for i in range(MX_COUNT)]) + "\n"),
]
HOSTILE_DOMAINS = ["big.test", "huge.test", "nonutf8.test", "a.loop.test", "spfloop.test",
                   "bomb.test", "mx1000.test"]


def resolver_block(port: int, timeout: str = "1s", attempts: int = 2) -> str:
    return (f"resolver:\n  nameservers: ['127.0.0.1']\n  port: {port}\n"
            f"  timeout: {timeout}\n  attempts: {attempts}\n")


def domains_block(names: list[str]) -> str:
    return "domains:\n" + "".join(f"  - name: {n}\n    smtp: false\n" for n in names)


def hostile_config(stack: DnsStack, interval: str) -> str:
    return (resolver_block(stack.resolver_port)
            + "dnsbl:\n  zones: []\n"
            + "".join(f"{c}:\n  interval: {interval}\n" for c in ("spf", "dmarc", "mx", "dkim"))
            + domains_block(HOSTILE_DOMAINS))


@pytest.fixture(scope="module")
def hostile_stack(make_stack: StackFactory) -> DnsStack:
    return make_stack(zones=HOSTILE_ZONES)


@pytest.fixture(scope="module")
def hostile(
    hostile_stack: DnsStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExporterProcess]:
    proc = ExporterProcess(hostile_config(hostile_stack, "2s"),
                           tmp_path_factory.mktemp("hostile-exporter"))
    proc.start(timeout=60)
    yield proc
    proc.kill()
    print(f"--- hostile exporter log ---\n{proc.log[-20000:]}")


def metric(m: dict[MetricKey, float], name: str, **labels: str) -> float | None:
    return m.get((name, key(**labels)))


def success(m: dict[MetricKey, float], check: str, target: str) -> float | None:
    return metric(m, "deliverability_check_success", check=check, target=target)


def test_truncated_udp_answers_are_asked_again_over_tcp(
    hostile: ExporterProcess, hostile_stack: DnsStack
) -> None:
    # The precondition: over UDP at the exporter's 1232-byte EDNS size, unbound truncates.
    q = dns.message.make_query("big.test", "TXT", use_edns=0, payload=1232)
    r = dns.query.udp(q, "127.0.0.1", port=hostile_stack.resolver_port, timeout=3)
    assert r.flags & dns.flags.TC and not r.answer
    m = hostile.metrics()
    assert success(m, "spf", "big.test") == 1.0
    assert metric(m, "deliverability_spf_records", domain="big.test") == 1.0
    assert metric(m, "deliverability_spf_valid", domain="big.test") == 1.0


def test_a_64_kib_txt_record_is_read_whole(
    hostile: ExporterProcess, hostile_stack: DnsStack
) -> None:
    r = dns.query.tcp(dns.message.make_query("huge.test", "TXT"), "127.0.0.1",
                      port=hostile_stack.resolver_port, timeout=5)
    sizes = sorted(sum(len(s) for s in rd.strings) for rrset in r.answer for rd in rrset)
    assert sizes[-1] == 250 * 255  # the stack really serves it
    assert len(r.to_wire()) > 64000
    m = hostile.metrics()
    assert success(m, "spf", "huge.test") == 1.0
    assert metric(m, "deliverability_spf_records", domain="huge.test") == 1.0
    assert metric(m, "deliverability_spf_valid", domain="huge.test") == 1.0


def test_non_utf8_txt_bytes_are_an_invalid_record_not_a_missing_one(
    hostile: ExporterProcess,
) -> None:
    m = hostile.metrics()
    assert success(m, "spf", "nonutf8.test") == 1.0
    # The record is there (1) and unusable (non-ASCII is a permerror): not "no SPF".
    assert metric(m, "deliverability_spf_records", domain="nonutf8.test") == 1.0
    assert metric(m, "deliverability_spf_valid", domain="nonutf8.test") == 0.0
    assert success(m, "dmarc", "nonutf8.test") == 1.0
    assert metric(m, "deliverability_dmarc_records", domain="nonutf8.test") == 1.0
    assert metric(m, "deliverability_dmarc_policy", domain="nonutf8.test") == 2.0


def test_a_cname_loop_is_never_a_missing_record(
    hostile: ExporterProcess, hostile_stack: DnsStack
) -> None:
    # unbound gives up on the loop with SERVFAIL: an error, not "no such record".
    assert hostile_stack.query("a.loop.test", "TXT").rcode() == dns.rcode.SERVFAIL
    m = hostile.metrics()
    for check in ("spf", "dmarc", "mx"):
        assert success(m, check, "a.loop.test") == 0.0, check
    # Not spf_records 0, not dmarc_policy -1, not mx_hosts 0. (Names *below* the
    # CNAME, like _mta-sts.a.loop.test, do not exist: NXDOMAIN is their true answer.)
    assert hostile_stack.query("_mta-sts.a.loop.test", "TXT").rcode() == dns.rcode.NXDOMAIN
    verdicts = [(n, dict(labels)) for (n, labels), _ in m.items()
                if dict(labels).get("domain") == "a.loop.test"
                and n.startswith(("deliverability_spf_", "deliverability_dmarc_",
                                  "deliverability_mx_"))]
    assert verdicts == []
    assert hostile.running()


def test_an_spf_include_loop_is_reported_as_invalid(hostile: ExporterProcess) -> None:
    m = hostile.metrics()
    assert success(m, "spf", "spfloop.test") == 1.0
    assert metric(m, "deliverability_spf_records", domain="spfloop.test") == 1.0
    assert metric(m, "deliverability_spf_valid", domain="spfloop.test") == 0.0


def test_an_spf_include_bomb_is_cut_off_and_reported(hostile: ExporterProcess) -> None:
    m = hostile.metrics()
    assert success(m, "spf", "bomb.test") == 1.0
    assert metric(m, "deliverability_spf_valid", domain="bomb.test") == 0.0
    lookups = metric(m, "deliverability_spf_dns_lookups", domain="bomb.test")
    # 110 include terms exist; counting stops at the walk limit, not at the bottom.
    assert lookups is not None and 10 < lookups <= 60
    duration = metric(m, "deliverability_check_duration_seconds", check="spf", target="bomb.test")
    assert duration is not None and duration < 5


def test_a_domain_with_1000_mx_records(hostile: ExporterProcess) -> None:
    m = hostile.metrics()
    assert success(m, "mx", "mx1000.test") == 1.0
    assert metric(m, "deliverability_mx_hosts", domain="mx1000.test") == float(MX_COUNT)
    assert metric(m, "deliverability_mx_valid", domain="mx1000.test") == 1.0


def test_hostile_input_does_not_grow_memory_or_stop_the_exporter(
    hostile_stack: DnsStack, exporter: ExporterFactory
) -> None:
    # Runs every second on every hostile domain; answers expire in 5 s, so the
    # whole set is fetched again and again.
    proc = exporter(hostile_config(hostile_stack, "1s"), timeout=60)
    assert proc.proc is not None
    time.sleep(8)  # warm up: caches, first renders, allocator arenas
    baseline = rss_kib(proc.proc.pid)
    samples = []
    for _ in range(20):
        time.sleep(1)
        assert proc.get("/metrics")[0] == 200
        samples.append(rss_kib(proc.proc.pid))
    assert proc.running()
    m = proc.metrics()
    runs_ok = [success(m, "spf", d) for d in ("big.test", "huge.test", "bomb.test")]
    assert runs_ok == [1.0, 1.0, 1.0]
    # Bounded: twenty more cycles of everything add at most a few MiB.
    assert max(samples) - baseline < 24 * 1024, (baseline, samples)


# --------------------------------------------------------------------------
# The resolver down at start, then coming back
# --------------------------------------------------------------------------

LISTING = Blocklist("v4.bl.test", [("ip4set", ":127.0.0.2:Listed\n127.0.0.2\n192.0.2.99\n")])


def dnsbl_config(resolver_port: int, zones: str, senders: list[str], interval: str = "1s",
                 timeout: str = "300ms", extra: str = "") -> str:
    return (resolver_block(resolver_port, timeout) + f"dnsbl:\n  interval: {interval}\n"
            + f"  zones:\n{zones}" + f"ptr:\n  interval: {interval}\n"
            + "senders:\n" + "".join(f"  - ip: {ip}\n" for ip in senders) + extra)


def test_resolver_down_at_start_then_back(tmp_path: Path, exporter: ExporterFactory) -> None:
    require_binaries(*STACK_BINARIES)
    stack = DnsStack(tmp_path / "stack", blocklists=[LISTING])  # ports chosen, nothing running
    zones = "    - zone: v4.bl.test\n"
    proc = exporter(dnsbl_config(stack.resolver_port, zones, ["192.0.2.99", "192.0.2.10"]))
    seen: list[dict[MetricKey, float]] = []
    try:
        m = proc.metrics()
        seen.append(m)
        for target in ("192.0.2.99", "192.0.2.10", "v4.bl.test"):
            assert success(m, "dnsbl", target) == 0.0
        assert series(m, "deliverability_dnsbl_listed") == {}
        assert series(m, "deliverability_dnsbl_listings") == {}
        assert series(m, "deliverability_ptr_present") == {}
        stack.start()

        def recovered() -> bool:
            now = proc.metrics()
            seen.append(now)
            return all(success(now, "dnsbl", t) == 1.0
                       for t in ("192.0.2.99", "192.0.2.10", "v4.bl.test"))

        proc.wait_for(recovered, timeout=30, what="recovery once unbound runs")
        m = proc.metrics()
        assert series(m, "deliverability_dnsbl_listed") == {
            key(ip="192.0.2.99", zone="v4.bl.test"): 1.0,
            key(ip="192.0.2.10", zone="v4.bl.test"): 0.0}
        assert series(m, "deliverability_dnsbl_zone_healthy") == {key(zone="v4.bl.test"): 1.0}
    finally:
        stack.stop()
    # At no moment was the listed IP "not listed", or anything listed that is not.
    for snapshot in seen:
        assert metric(snapshot, "deliverability_dnsbl_listed", ip="192.0.2.99",
                      zone="v4.bl.test") in (None, 1.0)
        assert metric(snapshot, "deliverability_dnsbl_listed", ip="192.0.2.10",
                      zone="v4.bl.test") in (None, 0.0)
        assert metric(snapshot, "deliverability_dnsbl_listings", ip="192.0.2.99") in (None, 1.0)


# --------------------------------------------------------------------------
# SERVFAIL and REFUSED from a resolver of our own, timeouts from a silent one
# --------------------------------------------------------------------------


class RcodeServer:
    """A loopback DNS server (UDP and TCP) answering by name suffix with a fixed rcode.

    Names under no rule get NXDOMAIN with an SOA, so the exporter sees an
    ordinary, answered negative for everything else.
    """

    def __init__(self, rules: Mapping[str, dns.rcode.Rcode]) -> None:
        self.rules = {k.rstrip(".").lower(): v for k, v in rules.items()}
        self.port = free_port()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(16)
        self.queries: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve_udp, daemon=True),
                         threading.Thread(target=self._serve_tcp, daemon=True)]

    def __enter__(self) -> RcodeServer:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.udp.close()
        self.tcp.close()

    def answer(self, wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        qname = query.question[0].name.to_text().rstrip(".").lower()
        self.queries.append(qname)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        for suffix, rcode in self.rules.items():
            if qname == suffix or qname.endswith("." + suffix):
                response.set_rcode(rcode)
                return response.to_wire()
        response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(dns.rrset.from_text(
            ".", 5, "IN", "SOA", "localhost. hostmaster.localhost. 1 60 60 600 5"))
        return response.to_wire()

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                wire, addr = self.udp.recvfrom(65535)
            except OSError:
                return
            reply = self.answer(wire)
            if reply is not None:
                with contextlib.suppress(OSError):
                    self.udp.sendto(reply, addr)

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError, struct.error):
                conn.settimeout(5)
                (length,) = struct.unpack("!H", conn.recv(2))
                reply = self.answer(conn.recv(length))
                if reply is not None:
                    conn.sendall(struct.pack("!H", len(reply)) + reply)


def test_servfail_refused_and_timeouts_are_errors_never_answers(
    hostile_stack: DnsStack, exporter: ExporterFactory
) -> None:
    rules = {"servfail.test": dns.rcode.SERVFAIL, "refused.test": dns.rcode.REFUSED,
             "sf.bl.test": dns.rcode.SERVFAIL, "rf.bl.test": dns.rcode.REFUSED}
    with RcodeServer(rules) as server:
        zones = ("    - zone: sf.bl.test\n    - zone: rf.bl.test\n"
                 # Straight to the stack's silent port: every question times out.
                 f"    - {{zone: silent.bl.test, nameservers: ['127.0.0.1'], "
                 f"port: {hostile_stack.silent_port}}}\n")
        text = dnsbl_config(server.port, zones, ["192.0.2.99"], interval="2s",
                            extra=domains_block(["servfail.test", "refused.test"]))
        proc = exporter(text, timeout=60)
        m = proc.metrics()
        for zone in ("sf.bl.test", "rf.bl.test", "silent.bl.test"):
            assert success(m, "dnsbl", zone) == 0.0, zone
            assert metric(m, "deliverability_dnsbl_zone_healthy", zone=zone) == 0.0
        assert success(m, "dnsbl", "192.0.2.99") == 0.0
        assert series(m, "deliverability_dnsbl_listed") == {}
        assert series(m, "deliverability_dnsbl_listings") == {}
        for domain in ("servfail.test", "refused.test"):
            for check in ("spf", "dmarc", "mx"):
                assert success(m, check, domain) == 0.0, (check, domain)
            # No verdict from a failed lookup: not "no SPF", not "policy none", not "no MX".
            for name in ("deliverability_spf_records", "deliverability_spf_valid",
                         "deliverability_dmarc_policy", "deliverability_dmarc_records",
                         "deliverability_mx_hosts", "deliverability_mx_valid"):
                assert metric(m, name, domain=domain) is None, (name, domain)
        outcomes = {dict(k)["outcome"]: v
                    for k, v in series(m, "deliverability_dns_queries_total").items()}
        assert outcomes["servfail"] > 0 and outcomes["refused"] > 0 and outcomes["timeout"] > 0
        # The PTR zone is answered (NXDOMAIN): that check succeeds and says "no PTR".
        assert success(m, "ptr", "192.0.2.99") == 1.0
        assert metric(m, "deliverability_ptr_present", ip="192.0.2.99") == 0.0
        assert any(q.endswith("servfail.test") for q in server.queries)
        assert proc.running()


# --------------------------------------------------------------------------
# A blocklist that suddenly lists every address
# --------------------------------------------------------------------------

LIST_ALL = Blocklist("v4.bl.test", [("ip4set", ":127.0.0.2:Listed\n0.0.0.0/1\n128.0.0.0/1\n")])


def test_a_blocklist_listing_everything_is_unhealthy_not_a_page_per_sender(
    make_stack: StackFactory, exporter: ExporterFactory
) -> None:
    stack = make_stack(blocklists=[LISTING])
    senders = ["192.0.2.10", "192.0.2.20", "192.0.2.99"]
    proc = exporter(dnsbl_config(stack.resolver_port, "    - zone: v4.bl.test\n", senders))
    m = proc.metrics()
    assert metric(m, "deliverability_dnsbl_zone_healthy", zone="v4.bl.test") == 1.0
    assert metric(m, "deliverability_dnsbl_listed", ip="192.0.2.10", zone="v4.bl.test") == 0.0
    assert metric(m, "deliverability_dnsbl_listed", ip="192.0.2.99", zone="v4.bl.test") == 1.0

    stack.update_blocklist(LIST_ALL)
    proc.wait_for(lambda: proc.value("deliverability_dnsbl_zone_healthy", zone="v4.bl.test")
                  == 0.0, timeout=20, what="the zone flagged unhealthy")
    deadline = time.monotonic() + 6  # several cycles of 1 s
    while time.monotonic() < deadline:
        m = proc.metrics()
        for ip in senders:
            assert metric(m, "deliverability_dnsbl_listed", ip=ip, zone="v4.bl.test") in (
                None, 0.0, 1.0 if ip == "192.0.2.99" else 0.0)
            if ip != "192.0.2.99":
                assert metric(m, "deliverability_dnsbl_listings", ip=ip) in (None, 0.0), ip
        time.sleep(0.5)
    m = proc.metrics()
    # Settled: the unhealthy zone's word is not reported at all, and the runs succeed.
    assert series(m, "deliverability_dnsbl_listed") == {}
    assert series(m, "deliverability_dnsbl_listing_info") == {}
    for ip in senders:
        assert success(m, "dnsbl", ip) == 1.0
        assert metric(m, "deliverability_dnsbl_listings", ip=ip) == 0.0
    assert metric(m, "deliverability_dnsbl_zone_healthy", zone="v4.bl.test") == 0.0

    stack.update_blocklist(LISTING)

    def healthy_again() -> bool:
        now = proc.metrics()
        return all(metric(now, "deliverability_dnsbl_listed", ip=ip, zone="v4.bl.test")
                   is not None for ip in senders)

    proc.wait_for(healthy_again, timeout=20, what="every sender checked on the healthy zone")
    m = proc.metrics()
    assert series(m, "deliverability_dnsbl_listed") == {
        key(ip=ip, zone="v4.bl.test"): float(ip == "192.0.2.99") for ip in senders}


# --------------------------------------------------------------------------
# Overload: a run longer than its interval
# --------------------------------------------------------------------------


def test_runs_longer_than_the_interval_are_skipped_and_counted(
    hostile_stack: DnsStack, exporter: ExporterFactory
) -> None:
    zones = (f"    - {{zone: silent.bl.test, nameservers: ['127.0.0.1'], "
             f"port: {hostile_stack.silent_port}}}\n")
    # Each run waits 2 x 1.5 s for the silent zone; the interval is 1 s.
    text = dnsbl_config(hostile_stack.resolver_port, zones, ["192.0.2.10"], interval="1s",
                        timeout="1500ms")
    proc = exporter(text, timeout=60)

    def overruns() -> float:
        return proc.value("deliverability_check_overruns_total", check="dnsbl") or 0.0

    first = overruns()
    assert first >= 2  # two pairs (zone and sender), each skipped at least once
    started = time.monotonic()
    time.sleep(9)
    elapsed = time.monotonic() - started
    grown = overruns() - first
    # About two skipped slots per 3 s run per pair; never zero, never unbounded.
    assert 2 <= grown <= 2 * (elapsed + 1), grown
    m = proc.metrics()
    for target in ("silent.bl.test", "192.0.2.10"):
        duration = metric(m, "deliverability_check_duration_seconds", check="dnsbl",
                          target=target)
        # At least one 1.5 s attempt (a run may join a question already in flight).
        assert duration is not None and 1.4 <= duration < 4.5, (target, duration)
        assert success(m, "dnsbl", target) == 0.0
    # The skipped slots are not queued behind the run: scrapes stay instant.
    scrape_started = time.monotonic()
    assert proc.get("/metrics")[0] == 200
    assert time.monotonic() - scrape_started < 1.0
