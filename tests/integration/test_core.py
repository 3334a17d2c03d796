"""Issue 2's acceptance: the exporter, run as a user runs it, against real DNS servers.

Knot serves the forward and reverse zones, rbldnsd the blocklists (one of
them refusing every query, one listing the whole Internet), a silent port
plays a dead blocklist, and unbound, stub-zoned to all of them, is the
resolver the exporter is configured with. Every metric of the issue's table
is asserted through ``/metrics`` with its exact value.
"""

from __future__ import annotations

import functools
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from exporter import __version__
from tests.integration.conftest import ExporterFactory, StackFactory
from tests.integration.exporter_proc import ExporterProcess, MetricKey
from tests.integration.stack import Blocklist, DnsStack, Zone, require_binaries, which

V4_REASON = "Listed for spam, see http://bl.test/lookup?ip=$"
#: Longer than 200 characters once served, to see the exporter cut it.
LONG_REASON = (
    "Listed since 2026-11-30 for mail to spam traps operated by the bl.test project; "
    "the listing expires seven days after the last hit. Fix the compromised account or "
    "script, then request removal at http://bl.test/remove - thank you"
)
DBL_REASON = "Domain seen in spam bodies"

BLOCKLISTS = [
    Blocklist("v4.bl.test", [("ip4set", f":127.0.0.2:{V4_REASON}\n192.0.2.99\n127.0.0.2\n")]),
    Blocklist(
        "v6.bl.test",
        [
            ("ip6trie", f"2001:db8::99 :127.0.0.3:{LONG_REASON}\n"),
            ("ip4set", ":127.0.0.2:RFC 5782 test entry\n127.0.0.2\n"),
        ],
    ),
    Blocklist("dbl.test", [("dnset", f"spammy.test :127.0.1.2:{DBL_REASON}\ntest\n")]),
    # "Query refused" for everything: an error code, never a listing.
    Blocklist(
        "refusing.bl.test",
        [
            ("ip4set", ":127.255.255.254:Query refused\n0.0.0.0/1\n128.0.0.0/1\n"),
            ("ip6trie", ":127.255.255.254:Query refused\n::/1\n8000::/1\n"),
        ],
    ),
    # A dead list that now lists every address, 127.0.0.1 included.
    Blocklist(
        "all.bl.test",
        [
            ("ip4set", ":127.0.0.2:Listed\n0.0.0.0/1\n128.0.0.0/1\n"),
            ("ip6trie", ":127.0.0.2:Listed\n::/1\n8000::/1\n"),
        ],
    ),
]
SILENT = ["dead.bl.test"]

ZONES = [
    Zone(
        "good.test",
        """\
mail   A    192.0.2.10
mail6  AAAA 2001:db8::25
listed A    192.0.2.99
""",
    ),
    Zone("broken.test", "mail A 192.0.2.21\n"),
    Zone(
        "2.0.192.in-addr.arpa",
        """\
10 PTR mail.good.test.
20 PTR mail.broken.test.
99 PTR listed.good.test.
""",
    ),
    Zone(
        "8.b.d.0.1.0.0.2.ip6.arpa",
        "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0 PTR mail6.good.test.\n",
    ),
]

IPS = ["192.0.2.10", "192.0.2.20", "192.0.2.30", "192.0.2.99", "2001:db8::25", "2001:db8::99"]
HEALTHY_IP_ZONES = ["v4.bl.test", "v6.bl.test"]
UNHEALTHY_ZONES = ["refusing.bl.test", "all.bl.test", "dead.bl.test"]
ZONE_NAMES = [*HEALTHY_IP_ZONES, "dbl.test", *UNHEALTHY_ZONES]
DOMAINS = ["spammy.test", "good.test"]


def config_text(stack: DnsStack, zones: str, senders: str, domains: str, interval: str) -> str:
    return f"""\
resolver:
  nameservers: ["{stack.resolver_host}"]
  port: {stack.resolver_port}
  timeout: 500ms
  attempts: 2
dnsbl:
  interval: {interval}
  zones:
{zones}
ptr:
  interval: {interval}
senders:
{senders}
domains:
{domains}
"""


CORE_ZONES = """\
    - zone: v4.bl.test
    - zone: v6.bl.test
    - zone: dbl.test
      type: domain
    - zone: refusing.bl.test
    - zone: all.bl.test
    - zone: dead.bl.test
"""
CORE_SENDERS = """\
  - host: mail.good.test
  - ip: 192.0.2.20
    helo: mail.broken.test
  - ip: 192.0.2.30
    helo: nothing.good.test
  - ip: 192.0.2.99
    helo: mail.good.test
  - ip: "2001:db8::25"
    helo: mail6.good.test
  - ip: "2001:0db8:0000::0099"
"""
# smtp: false: later issues' SMTP check would otherwise connect to the
# documentation addresses (192.0.2.x), and tests talk only to loopback.
CORE_DOMAINS = """\
  - name: spammy.test
    smtp: false
  - name: good.test
    smtp: false
"""


@pytest.fixture(scope="module")
def core_stack(make_stack: StackFactory) -> DnsStack:
    return make_stack(zones=ZONES, blocklists=BLOCKLISTS, silent_zones=SILENT)


def series(metrics: dict[MetricKey, float], name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in metrics.items() if n == name}


def key(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def served_txt(stack: DnsStack, name: str) -> str:
    """The TXT the blocklist really serves (rbldnsd may shorten long texts itself)."""
    msg = stack.query(name, "TXT")
    texts = [b"".join(rd.strings).decode() for rrset in msg.answer for rd in rrset]
    assert len(texts) == 1, texts
    return texts[0]


@pytest.fixture(scope="module")
def core(
    core_stack: DnsStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ExporterProcess, float, list[int]]]:
    """One exporter for the module's assertions; the /-/ready codes seen while starting."""
    text = config_text(core_stack, CORE_ZONES, CORE_SENDERS, CORE_DOMAINS, "5s")
    proc = ExporterProcess(text, tmp_path_factory.mktemp("core-exporter"))
    started = time.time()
    proc.start(wait_ready=False)
    ready_codes: list[int] = []

    def ready() -> bool:
        try:
            status, _, _ = proc.get("/-/ready")
        except OSError:
            return False
        ready_codes.append(status)
        return status == 200

    proc.wait_for(ready, timeout=30, what="/-/ready 200")
    # Two dnsbl cycles so every counter has moved and caches have been used.
    time.sleep(6)
    yield proc, started, ready_codes
    proc.kill()
    print(f"--- core exporter log ---\n{proc.log[-30000:]}")


def test_ready_only_after_every_first_run(core: tuple[ExporterProcess, float, list[int]]) -> None:
    proc, _, codes = core
    # The dead zone makes the first dnsbl runs take at least one resolver timeout
    # (2 x 500ms), so the server is up well before it may say ready.
    assert codes[-1] == 200
    assert 503 in codes, codes
    assert set(codes) <= {200, 503}
    assert proc.get("/-/healthy")[0] == 200


def test_landing_page_links_to_metrics(core: tuple[ExporterProcess, float, list[int]]) -> None:
    status, headers, body = core[0].get("/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert 'href="/metrics"' in body


def test_ip_listings_on_healthy_zones(core: tuple[ExporterProcess, float, list[int]]) -> None:
    m = core[0].metrics()
    listed = series(m, "deliverability_dnsbl_listed")
    expected = {
        key(ip=ip, zone=zone): float(
            (ip, zone) in {("192.0.2.99", "v4.bl.test"), ("2001:db8::99", "v6.bl.test")}
        )
        for ip in IPS
        for zone in HEALTHY_IP_ZONES
    }
    # Exactly these: no series at all for unhealthy zones (nothing they say is a listing).
    assert listed == expected


def test_no_listings_count_while_a_zone_does_not_answer(
    core: tuple[ExporterProcess, float, list[int]],
) -> None:
    # dead.bl.test never answers, so no run knows whether it lists the IP: a
    # count without it would turn an unanswered lookup into "not listed".
    # The exact counts are asserted where every zone answers (the next test).
    listings = series(core[0].metrics(), "deliverability_dnsbl_listings")
    assert listings == {}


def test_listing_info_carries_code_and_reason_cut_to_200(
    core: tuple[ExporterProcess, float, list[int]], core_stack: DnsStack
) -> None:
    nibbles = "9.9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
    long_served = served_txt(core_stack, f"{nibbles}.v6.bl.test")
    assert len(long_served) > 200, "the test data must exercise the cut"
    assert long_served.startswith(LONG_REASON[:150])
    info = series(core[0].metrics(), "deliverability_dnsbl_listing_info")
    assert info == {
        key(
            ip="192.0.2.99",
            zone="v4.bl.test",
            code="127.0.0.2",
            reason="Listed for spam, see http://bl.test/lookup?ip=192.0.2.99",
        ): 1.0,
        key(ip="2001:db8::99", zone="v6.bl.test", code="127.0.0.3", reason=long_served[:200]): 1.0,
        key(domain="spammy.test", zone="dbl.test", code="127.0.1.2", reason=DBL_REASON): 1.0,
    }


def test_domain_listings(core: tuple[ExporterProcess, float, list[int]]) -> None:
    domain_listed = series(core[0].metrics(), "deliverability_dnsbl_domain_listed")
    assert domain_listed == {
        key(domain="spammy.test", zone="dbl.test"): 1.0,
        key(domain="good.test", zone="dbl.test"): 0.0,
    }


def test_zone_health(core: tuple[ExporterProcess, float, list[int]]) -> None:
    healthy = series(core[0].metrics(), "deliverability_dnsbl_zone_healthy")
    assert healthy == {
        key(zone="v4.bl.test"): 1.0,
        key(zone="v6.bl.test"): 1.0,
        key(zone="dbl.test"): 1.0,
        key(zone="refusing.bl.test"): 0.0,  # answers 127.255.255.254: an error code
        key(zone="all.bl.test"): 0.0,  # lists 127.0.0.1
        key(zone="dead.bl.test"): 0.0,  # does not answer
    }


def test_reverse_dns(core: tuple[ExporterProcess, float, list[int]]) -> None:
    m = core[0].metrics()
    assert series(m, "deliverability_ptr_present") == {
        key(ip="192.0.2.10"): 1.0,
        key(ip="192.0.2.20"): 1.0,
        key(ip="192.0.2.30"): 0.0,  # no PTR
        key(ip="192.0.2.99"): 1.0,
        key(ip="2001:db8::25"): 1.0,
        key(ip="2001:db8::99"): 0.0,
    }
    assert series(m, "deliverability_fcrdns_valid") == {
        key(ip="192.0.2.10"): 1.0,
        key(ip="192.0.2.20"): 0.0,  # mail.broken.test is 192.0.2.21
        key(ip="192.0.2.30"): 0.0,
        key(ip="192.0.2.99"): 1.0,  # listed.good.test resolves back
        key(ip="2001:db8::25"): 1.0,
        key(ip="2001:db8::99"): 0.0,
    }
    assert series(m, "deliverability_helo_aligned") == {
        key(ip="192.0.2.10", helo="mail.good.test"): 1.0,  # HELO defaults to the host
        key(ip="192.0.2.20", helo="mail.broken.test"): 0.0,  # PTR matches, A does not
        key(ip="192.0.2.30", helo="nothing.good.test"): 0.0,
        key(ip="192.0.2.99", helo="mail.good.test"): 0.0,  # PTR is listed.good.test
        key(ip="2001:db8::25", helo="mail6.good.test"): 1.0,
        # 2001:db8::99 has no HELO configured: no series.
    }
    assert series(m, "deliverability_ptr_info") == {
        key(ip="192.0.2.10", ptr="mail.good.test"): 1.0,
        key(ip="192.0.2.20", ptr="mail.broken.test"): 1.0,
        key(ip="192.0.2.99", ptr="listed.good.test"): 1.0,
        key(ip="2001:db8::25", ptr="mail6.good.test"): 1.0,
    }


#: Every dnsbl run that asks the dead zone is incomplete; zone-test-only and
#: domain runs (only dbl.test) are not.
DNSBL_FAILING = {"dead.bl.test", "mail.good.test", *[ip for ip in IPS if ip != "192.0.2.10"]}
DNSBL_TARGETS = {*ZONE_NAMES, "mail.good.test", *DOMAINS, *DNSBL_FAILING}
ISSUE2 = ("dnsbl", "ptr")
PTR_TARGETS = {"mail.good.test", *[ip for ip in IPS if ip != "192.0.2.10"]}


def test_check_success_duration_and_last_success(
    core: tuple[ExporterProcess, float, list[int]],
) -> None:
    proc, started, _ = core
    # Issue 2's checks; later issues add theirs (for the domains) to the same metrics.
    m = {k: v for k, v in proc.metrics().items() if dict(k[1]).get("check", "dnsbl") in ISSUE2}
    now = time.time()
    success = series(m, "deliverability_check_success")
    expected = {key(check="dnsbl", target=t): float(t not in DNSBL_FAILING) for t in DNSBL_TARGETS}
    expected |= {key(check="ptr", target=t): 1.0 for t in PTR_TARGETS}
    assert success == expected
    duration = series(m, "deliverability_check_duration_seconds")
    assert set(duration) == set(expected)
    assert all(v > 0 for v in duration.values()), duration
    # Runs that asked the dead zone waited for at least one 500 ms timeout.
    assert duration[key(check="dnsbl", target="192.0.2.99")] >= 0.5
    last = series(m, "deliverability_check_last_success_timestamp_seconds")
    # Only pairs that ever succeeded have a last success, and it is recent.
    assert set(last) == {k for k, v in expected.items() if v == 1.0}
    assert all(started <= v <= now for v in last.values()), (started, now, last)


def test_dns_queries_by_outcome(core: tuple[ExporterProcess, float, list[int]]) -> None:
    queries = series(core[0].metrics(), "deliverability_dns_queries_total")
    outcomes = {dict(k)["outcome"]: v for k, v in queries.items()}
    assert set(outcomes) == {"ok", "nxdomain", "nodata", "servfail", "refused", "timeout", "cached"}
    assert outcomes["ok"] > 0  # listings, PTRs, addresses
    assert outcomes["nxdomain"] > 0  # not listed, no PTR for 192.0.2.30
    assert outcomes["nodata"] > 0  # mail.good.test has no AAAA
    assert outcomes["timeout"] > 0  # dead.bl.test
    assert outcomes["cached"] > 0  # test entries asked by every run share one lookup
    assert outcomes["refused"] == 0  # nothing here refuses (127.255.255.254 is an answer)


def test_build_info(core: tuple[ExporterProcess, float, list[int]]) -> None:
    assert series(core[0].metrics(), "deliverability_build_info") == {
        key(version=__version__): 1.0
    }


def test_metrics_help_says_cached(core: tuple[ExporterProcess, float, list[int]]) -> None:
    # The metrics of the issue's table are read from stored runs: HELP says so.
    families = [
        "deliverability_dnsbl_listed", "deliverability_dnsbl_domain_listed",
        "deliverability_dnsbl_listings", "deliverability_dnsbl_listing_info",
        "deliverability_dnsbl_zone_healthy", "deliverability_ptr_present",
        "deliverability_fcrdns_valid", "deliverability_helo_aligned", "deliverability_ptr_info",
        "deliverability_check_success", "deliverability_check_duration_seconds",
        "deliverability_check_last_success_timestamp_seconds",
    ]  # fmt: skip
    helps = {
        line.split()[2]: line
        for line in core[0].metrics_text().splitlines()
        if line.startswith("# HELP ")
    }
    missing = [f for f in families if f not in helps]
    assert not missing
    assert [helps[f] for f in families if "cached" not in helps[f].lower()] == []


def test_promtool_check_metrics_is_silent(core: tuple[ExporterProcess, float, list[int]]) -> None:
    require_binaries("promtool")
    promtool = which("promtool")
    assert promtool is not None
    body = core[0].metrics_text()
    res = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30
    )
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_sigterm_exits_cleanly_and_promptly(
    core_stack: DnsStack, exporter: ExporterFactory
) -> None:
    # Processes of their own: the module's exporter must keep serving the other tests.
    text = config_text(core_stack, CORE_ZONES, CORE_SENDERS, CORE_DOMAINS, "5s")
    # At several moments: amid the burst of first runs finishing (where a
    # swallowed cancellation would keep a run loop alive), and while lookups
    # to the dead zone are in flight (shutdown must not wait for them).
    for delay in (0.0, 0.05, 0.1, 0.15, 0.2, 0.7):
        proc = exporter(text, wait_ready=False)
        proc.wait_for(functools.partial(_serving, proc), what="/-/healthy")
        time.sleep(delay)
        started = time.monotonic()
        proc.signal(signal.SIGTERM)
        assert proc.stop(timeout=5) == 0, f"delay {delay}: {proc.log[-4000:]}"
        assert time.monotonic() - started < 5


def test_a_repeated_sigterm_does_not_cut_the_shutdown_short(
    core_stack: DnsStack, exporter: ExporterFactory
) -> None:
    # Supervisors repeat themselves; once shutdown has begun the process must still
    # exit 0, not die by the signal (asyncio restores its default action on close).
    text = config_text(core_stack, CORE_ZONES, CORE_SENDERS, CORE_DOMAINS, "5s")
    proc = exporter(text, wait_ready=False)
    proc.wait_for(functools.partial(_serving, proc), what="/-/healthy")
    assert proc.proc is not None
    for _ in range(200):  # every millisecond until it has gone
        proc.signal(signal.SIGTERM)
        try:
            proc.proc.wait(timeout=0.001)
            break
        except subprocess.TimeoutExpired:
            continue
    assert proc.stop(timeout=5) == 0, proc.log[-4000:]


def test_sigterm_stops_a_busy_scheduler(core_stack: DnsStack, exporter: ExporterFactory) -> None:
    # 150 targets at 100 ms: runs finish all the time, so SIGTERM nearly always
    # lands in the same loop iteration as some run's completion. A run loop
    # that loses its cancellation there (asyncio.wait_for on Python 3.11 does)
    # keeps the process alive forever; four tries catch that almost surely.
    senders = "\n".join(f"  - ip: 192.0.2.{i}" for i in range(100, 250))
    text = config_text(core_stack, "    - zone: v4.bl.test\n", senders, "  []", "100ms")
    for attempt in range(4):
        proc = exporter(text)
        time.sleep(0.3 + 0.1 * attempt)
        started = time.monotonic()
        proc.signal(signal.SIGTERM)
        assert proc.stop(timeout=5) == 0, f"attempt {attempt}: {proc.log[-3000:]}"
        assert time.monotonic() - started < 5


def _status(proc: ExporterProcess, path: str) -> int:
    try:
        return proc.get(path)[0]
    except OSError:
        return 0


def _serving(proc: ExporterProcess) -> bool:
    return _status(proc, "/-/healthy") == 200


# --------------------------------------------------------------------------
# A blocklist that stops answering: the last good values stay, marked stale
# --------------------------------------------------------------------------

FLAKY_ZONES = """\
    - zone: v4.bl.test
"""
FLAKY_SENDERS = """\
  - ip: 192.0.2.99
  - ip: 192.0.2.10
"""


def test_unanswered_lookups_keep_the_last_good_values(
    make_stack: StackFactory, exporter: ExporterFactory
) -> None:
    # A stack of its own: stopping its rbldnsd must not disturb the other tests.
    stack = make_stack(blocklists=[BLOCKLISTS[0]])
    proc = exporter(config_text(stack, FLAKY_ZONES, FLAKY_SENDERS, "  []", "2s"))

    def success(target: str) -> float | None:
        return proc.value("deliverability_check_success", check="dnsbl", target=target)

    def last_success(target: str) -> float | None:
        return proc.value(
            "deliverability_check_last_success_timestamp_seconds", check="dnsbl", target=target
        )

    listed = {"ip": "192.0.2.99", "zone": "v4.bl.test"}
    info = {**listed, "code": "127.0.0.2",
            "reason": "Listed for spam, see http://bl.test/lookup?ip=192.0.2.99"}  # fmt: skip
    m = proc.metrics()
    checks = {k: v for k, v in m.items() if dict(k[1]).get("check") in ("dnsbl", "ptr")}
    assert series(checks, "deliverability_check_success") == {
        key(check=c, target=t): 1.0
        for c, t in [("dnsbl", "v4.bl.test"), ("dnsbl", "192.0.2.99"), ("dnsbl", "192.0.2.10"),
                     ("ptr", "192.0.2.99"), ("ptr", "192.0.2.10")]
    }  # fmt: skip
    assert series(m, "deliverability_dnsbl_listed") == {
        key(**listed): 1.0,
        key(ip="192.0.2.10", zone="v4.bl.test"): 0.0,
    }
    # Every zone answered: the count of healthy zones listing each IP is known.
    assert series(m, "deliverability_dnsbl_listings") == {
        key(ip="192.0.2.99"): 1.0,
        key(ip="192.0.2.10"): 0.0,
    }
    assert series(m, "deliverability_dnsbl_listing_info") == {key(**info): 1.0}

    stack.stop_rbldnsd()
    # Runs may still succeed for a while from the exporter's TTL cache (5 s here).
    proc.wait_for(lambda: success("192.0.2.99") == 0.0, timeout=30, what="a failed run")
    failed_seen = time.time()
    proc.wait_for(lambda: success("192.0.2.10") == 0.0, timeout=30, what="a failed run")
    stale = last_success("192.0.2.99")
    assert stale is not None and stale <= failed_seen
    # Two more failed cycles: nothing learned before the outage is lost or changed.
    time.sleep(4.5)
    m = proc.metrics()
    assert m[("deliverability_check_success", key(check="dnsbl", target="192.0.2.99"))] == 0.0
    assert last_success("192.0.2.99") == stale
    assert m[("deliverability_dnsbl_listed", key(**listed))] == 1.0
    assert m[("deliverability_dnsbl_listed", key(ip="192.0.2.10", zone="v4.bl.test"))] == 0.0
    assert m[("deliverability_dnsbl_listings", key(ip="192.0.2.99"))] == 1.0
    assert m[("deliverability_dnsbl_listing_info", key(**info))] == 1.0
    outcomes = {
        dict(k)["outcome"]: v for k, v in series(m, "deliverability_dns_queries_total").items()
    }
    assert outcomes["timeout"] + outcomes["servfail"] > 0
    # RFC 5782: a list that does not answer its test entries is unhealthy.
    assert m[("deliverability_dnsbl_zone_healthy", key(zone="v4.bl.test"))] == 0.0
    assert m[("deliverability_check_success", key(check="dnsbl", target="v4.bl.test"))] == 0.0

    stack.start_rbldnsd()
    proc.wait_for(lambda: success("192.0.2.99") == 1.0, timeout=30, what="recovery")
    recovered = last_success("192.0.2.99")
    assert recovered is not None and recovered > stale
    assert proc.value("deliverability_dnsbl_listed", **listed) == 1.0
    # The gauge is the zone's own run (every interval): a sender's run may have read the
    # zone healthy again from the memo before it.
    proc.wait_for(lambda: proc.value("deliverability_dnsbl_zone_healthy", zone="v4.bl.test")
                  == 1.0, timeout=30, what="the zone healthy again")
