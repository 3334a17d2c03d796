"""Blocklist lookups: names, answer classification, zone health, honest failures."""

from __future__ import annotations

import pytest

from exporter.blocklists import classify_code, error_networks
from exporter.checks.dnsbl import DnsblCheck, dnsbl_query_name
from exporter.config import ZoneConfig
from exporter.dns import Outcome
from tests.fakes import FakeResolver
from tests.unit.helpers import context, run, target_for, value, values

CONFIG = """
dnsbl:
  zones:
    - zone: bl.example
    - {zone: dbl.example, type: domain}
senders:
  - ip: 192.0.2.99
  - ip: 192.0.2.10
  - ip: "2001:db8::99"
  - host: mail.example.org
domains:
  - name: spammy.example
"""


def healthy_ip_zone(r: FakeResolver, zone: str) -> None:
    r.set(f"2.0.0.127.{zone}", "A", "127.0.0.2")
    r.set(f"2.0.0.127.{zone}", "TXT", "test entry")


def healthy_domain_zone(r: FakeResolver, zone: str) -> None:
    r.set(f"test.{zone}", "A", "127.0.0.2")


def test_query_names_follow_rfc5782() -> None:
    assert dnsbl_query_name("192.0.2.99", "bl.example") == "99.2.0.192.bl.example"
    six = dnsbl_query_name("2001:db8::99", "bl.example")
    assert six == "9.9.0.0." + "0.0.0.0." * 5 + "8.b.d.0.1.0.0.2.bl.example"
    assert dnsbl_query_name("spammy.example", "dbl.example") == "spammy.example.dbl.example"


@pytest.mark.parametrize(
    ("code", "listing"),
    [("127.0.0.2", True), ("127.0.0.10", True), ("127.255.255.254", False),
     ("127.255.255.0", False), ("10.0.0.1", False), ("192.0.2.1", False), ("junk", False)],
)
def test_answers_outside_loopback_or_in_error_range_are_errors(code: str, listing: bool) -> None:
    assert classify_code(code, ()) is listing


def test_known_error_codes_of_builtin_lists() -> None:
    dbl = error_networks(ZoneConfig("dbl.spamhaus.org", "domain"))
    assert not classify_code("127.0.1.255", dbl)
    assert classify_code("127.0.1.2", dbl)
    surbl = error_networks(ZoneConfig("multi.surbl.org", "domain"))
    assert not classify_code("127.0.0.1", surbl)
    custom = error_networks(ZoneConfig("x.example", error_codes=("127.0.0.5/32",)))
    assert not classify_code("127.0.0.5", custom)


async def test_listed_ip_gets_listing_reason_and_count() -> None:
    r = FakeResolver()
    healthy_ip_zone(r, "bl.example")
    healthy_domain_zone(r, "dbl.example")
    r.set("99.2.0.192.bl.example", "A", ["127.0.0.2", "127.0.0.4"])
    r.set("99.2.0.192.bl.example", "TXT", "Listed: " + "x" * 300)
    ctx = context(r, CONFIG)
    check = DnsblCheck()
    result = await run(check, target_for(check, ctx.config, "192.0.2.99"), ctx)
    assert result.success
    assert value(result, "deliverability_dnsbl_listed", ip="192.0.2.99", zone="bl.example") == 1
    assert value(result, "deliverability_dnsbl_listings", ip="192.0.2.99") == 1
    info = values(result, "deliverability_dnsbl_listing_info")
    assert len(info) == 2
    reasons = {dict(k)["reason"] for k in info}
    assert reasons == {("Listed: " + "x" * 300)[:200]}
    assert {dict(k)["code"] for k in info} == {"127.0.0.2", "127.0.0.4"}


async def test_clean_ip_is_zero_not_absent() -> None:
    r = FakeResolver()
    healthy_ip_zone(r, "bl.example")
    ctx = context(r, CONFIG)
    check = DnsblCheck()
    result = await run(check, target_for(check, ctx.config, "192.0.2.10"), ctx)
    assert result.success
    assert value(result, "deliverability_dnsbl_listed", ip="192.0.2.10", zone="bl.example") == 0
    assert value(result, "deliverability_dnsbl_listings", ip="192.0.2.10") == 0
    assert not values(result, "deliverability_dnsbl_listing_info")


async def test_timeout_is_a_failed_run_never_not_listed() -> None:
    r = FakeResolver()
    healthy_ip_zone(r, "bl.example")
    r.set("99.2.0.192.bl.example", "A", Outcome.TIMEOUT)
    ctx = context(r, CONFIG)
    check = DnsblCheck()
    result = await run(check, target_for(check, ctx.config, "192.0.2.99"), ctx)
    assert not result.success
    assert value(result, "deliverability_dnsbl_listed", ip="192.0.2.99", zone="bl.example") is None
    assert value(result, "deliverability_dnsbl_listings", ip="192.0.2.99") is None


@pytest.mark.parametrize("failure", [Outcome.SERVFAIL, Outcome.REFUSED, Outcome.TIMEOUT])
async def test_txt_failure_fails_the_run(failure: Outcome) -> None:
    r = FakeResolver()
    healthy_ip_zone(r, "bl.example")
    r.set("99.2.0.192.bl.example", "A", "127.0.0.2")
    r.set("99.2.0.192.bl.example", "TXT", failure)
    ctx = context(r, CONFIG)
    check = DnsblCheck()
    result = await run(check, target_for(check, ctx.config, "192.0.2.99"), ctx)
    assert not result.success
    assert not values(result, "deliverability_dnsbl_listing_info")


async def test_error_code_answer_is_not_a_listing() -> None:
    r = FakeResolver()
    healthy_ip_zone(r, "bl.example")
    r.set("99.2.0.192.bl.example", "A", "127.255.255.254")
    ctx = context(r, CONFIG)
    check = DnsblCheck()
    result = await run(check, target_for(check, ctx.config, "192.0.2.99"), ctx)
    assert not result.success
    assert value(result, "deliverability_dnsbl_listed", ip="192.0.2.99", zone="bl.example") is None


@pytest.mark.parametrize(
    "breakage",
    ["lists-everything", "error-codes", "misses-test-entry"],
)
async def test_unhealthy_zone_reports_nothing_for_targets(breakage: str) -> None:
    r = FakeResolver()
    if breakage == "lists-everything":
        healthy_ip_zone(r, "bl.example")
        r.set("1.0.0.127.bl.example", "A", "127.0.0.2")
    elif breakage == "error-codes":
        r.set("2.0.0.127.bl.example", "A", "127.255.255.254")
    r.set("99.2.0.192.bl.example", "A", "127.0.0.2")
    r.set("99.2.0.192.bl.example", "TXT", "listed")
    ctx = context(r, CONFIG)
    check = DnsblCheck()
    ip_result = await run(check, target_for(check, ctx.config, "192.0.2.99"), ctx)
    assert ip_result.success  # the zone answered: not this sender's failure
    assert not values(ip_result, "deliverability_dnsbl_listed")
    assert value(ip_result, "deliverability_dnsbl_listings", ip="192.0.2.99") == 0
    zone_result = await run(check, target_for(check, ctx.config, "bl.example"), ctx)
    assert zone_result.success
    assert value(zone_result, "deliverability_dnsbl_zone_healthy", zone="bl.example") == 0


async def test_silent_zone_is_unhealthy_and_fails_runs() -> None:
    r = FakeResolver()
    r.set("2.0.0.127.bl.example", "A", Outcome.TIMEOUT)
    ctx = context(r, CONFIG)
    check = DnsblCheck()
    zone_result = await run(check, target_for(check, ctx.config, "bl.example"), ctx)
    assert not zone_result.success
    assert value(zone_result, "deliverability_dnsbl_zone_healthy", zone="bl.example") == 0
    ip_result = await run(check, target_for(check, ctx.config, "192.0.2.10"), ctx)
    assert not ip_result.success
    assert not ip_result.samples


async def test_ipv6_sender_and_domain_listing() -> None:
    r = FakeResolver()
    healthy_ip_zone(r, "bl.example")
    healthy_domain_zone(r, "dbl.example")
    r.set(dnsbl_query_name("2001:db8::99", "bl.example"), "A", "127.0.0.3")
    r.set(dnsbl_query_name("2001:db8::99", "bl.example"), "TXT", "v6 listed")
    r.set("spammy.example.dbl.example", "A", "127.0.1.2")
    ctx = context(r, CONFIG)
    check = DnsblCheck()
    six = await run(check, target_for(check, ctx.config, "2001:db8::99"), ctx)
    assert value(six, "deliverability_dnsbl_listed", ip="2001:db8::99", zone="bl.example") == 1
    dom = await run(check, target_for(check, ctx.config, "spammy.example"), ctx)
    assert dom.success
    assert value(dom, "deliverability_dnsbl_domain_listed", domain="spammy.example",
                 zone="dbl.example") == 1
    assert value(dom, "deliverability_dnsbl_listing_info", domain="spammy.example",
                 zone="dbl.example", code="127.0.1.2", reason="") == 1


async def test_sender_host_checks_each_address() -> None:
    r = FakeResolver()
    healthy_ip_zone(r, "bl.example")
    r.set("mail.example.org", "A", "192.0.2.50")
    r.set("mail.example.org", "AAAA", "2001:db8::50")
    r.set("50.2.0.192.bl.example", "A", "127.0.0.2")
    ctx = context(r, CONFIG)
    check = DnsblCheck()
    result = await run(check, target_for(check, ctx.config, "mail.example.org"), ctx)
    assert value(result, "deliverability_dnsbl_listed", ip="192.0.2.50", zone="bl.example") == 1
    assert value(result, "deliverability_dnsbl_listed", ip="2001:db8::50", zone="bl.example") == 0


async def test_targets_cover_zones_senders_and_domains() -> None:
    ctx = context(FakeResolver(), CONFIG)
    keys = {t.key for t in DnsblCheck().targets(ctx.config)}
    assert keys == {"bl.example", "dbl.example", "192.0.2.99", "192.0.2.10", "2001:db8::99",
                    "mail.example.org", "spammy.example"}


async def test_zone_health_is_read_once_per_ttl_not_once_per_sender() -> None:
    r = FakeResolver()
    healthy_ip_zone(r, "bl.example")
    ctx = context(r, CONFIG)
    check = DnsblCheck()
    for ip in ("192.0.2.10", "192.0.2.99"):
        result = await run(check, target_for(check, ctx.config, ip), ctx)
        assert result.success
    health_questions = [q for q in r.asked if q[0].endswith(".0.0.127.bl.example")]
    assert len(health_questions) == 2  # 127.0.0.2 and 127.0.0.1, once


async def test_unanswered_zone_health_is_asked_again() -> None:
    r = FakeResolver()
    r.set("2.0.0.127.bl.example", "A", Outcome.TIMEOUT)
    ctx = context(r, CONFIG)
    check = DnsblCheck()
    for ip in ("192.0.2.10", "192.0.2.99"):
        assert not (await run(check, target_for(check, ctx.config, ip), ctx)).success
    assert r.asked.count(("2.0.0.127.bl.example", "A")) == 2


class SlowResolver(FakeResolver):
    async def resolve(self, name: str, rdtype: str):  # type: ignore[no-untyped-def]
        import asyncio

        await asyncio.sleep(0.01)
        return await super().resolve(name, rdtype)


async def test_concurrent_first_runs_share_one_zone_health_evaluation() -> None:
    import asyncio

    r = SlowResolver()
    healthy_ip_zone(r, "bl.example")
    senders = ", ".join(f"192.0.2.{i}" for i in range(1, 21))
    ctx = context(r, "dnsbl: {zones: [bl.example]}\nsenders: [" + senders + "]")
    check = DnsblCheck()
    targets = [t for t in check.targets(ctx.config) if t.key != "bl.example"]
    results = await asyncio.gather(*(run(check, t, ctx) for t in targets))
    assert all(res.success for res in results) and len(results) == 20
    health_questions = [q for q in r.asked if q[0].endswith(".0.0.127.bl.example")]
    assert len(health_questions) == 2


async def test_a_list_that_starts_listing_everything_is_caught_before_a_false_listing() -> None:
    r = FakeResolver()
    healthy_ip_zone(r, "bl.example")
    ctx = context(r, CONFIG)
    check = DnsblCheck()
    first = await run(check, target_for(check, ctx.config, "192.0.2.10"), ctx)
    assert value(first, "deliverability_dnsbl_listed", ip="192.0.2.10", zone="bl.example") == 0
    # The zone now lists everything, while its healthy verdict is still remembered.
    r.set("1.0.0.127.bl.example", "A", "127.0.0.2")
    r.set("10.2.0.192.bl.example", "A", "127.0.0.2")
    r.set("10.2.0.192.bl.example", "TXT", "everything is listed")
    second = await run(check, target_for(check, ctx.config, "192.0.2.10"), ctx)
    assert second.success
    assert not values(second, "deliverability_dnsbl_listed")
    assert not values(second, "deliverability_dnsbl_listing_info")
    assert value(second, "deliverability_dnsbl_listings", ip="192.0.2.10") == 0


async def test_a_zone_found_unhealthy_by_its_own_run_is_not_reported_by_the_next_sender() -> None:
    # Sender runs read every zone's health from one snapshot of the memo; the zone's
    # own run changing its verdict must make the next sender run read it again.
    r = FakeResolver()
    healthy_ip_zone(r, "bl.example")
    ctx = context(r, CONFIG)
    check = DnsblCheck()
    sender = target_for(check, ctx.config, "192.0.2.10")
    for _ in range(2):  # the second run reads the remembered health into a snapshot
        first = await run(check, sender, ctx)
        assert value(first, "deliverability_dnsbl_listed", ip="192.0.2.10",
                     zone="bl.example") == 0
    r.set("2.0.0.127.bl.example", "A", Outcome.NXDOMAIN)  # no longer lists its test entry
    zone_run = await run(check, target_for(check, ctx.config, "bl.example"), ctx)
    assert value(zone_run, "deliverability_dnsbl_zone_healthy", zone="bl.example") == 0
    second = await run(check, sender, ctx)
    assert second.success
    assert value(second, "deliverability_dnsbl_listed", ip="192.0.2.10", zone="bl.example") is None


async def test_a_zone_health_snapshot_ends_when_its_answers_expire() -> None:
    from exporter.checks.dnsbl import HealthMemo

    now = [1000.0]
    r = FakeResolver(ttl=60)
    healthy_ip_zone(r, "bl.example")
    ctx = context(r, CONFIG)
    check = DnsblCheck()
    check.health = HealthMemo(clock=lambda: now[0])
    sender = target_for(check, ctx.config, "192.0.2.10")
    for _ in range(2):  # the second run reads the remembered health into a snapshot
        assert (await run(check, sender, ctx)).success
    r.set("2.0.0.127.bl.example", "A", Outcome.NXDOMAIN)
    within = await run(check, sender, ctx)  # the healthy verdict is still fresh
    assert value(within, "deliverability_dnsbl_listed", ip="192.0.2.10", zone="bl.example") == 0
    now[0] += 61
    after = await run(check, sender, ctx)
    assert value(after, "deliverability_dnsbl_listed", ip="192.0.2.10", zone="bl.example") is None


def test_ipv4_query_names_without_ipaddress_match_the_reverse_pointer() -> None:
    import ipaddress

    from exporter.checks.dnsbl import _query_prefix

    for ip in ("192.0.2.1", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::ffff:192.0.2.1"):
        expected = ipaddress.ip_address(ip).reverse_pointer.rsplit(".", 2)[0]
        assert _query_prefix(ip) == expected
    # Not canonical dotted quads: not addresses to ipaddress either, so names as they are.
    for item in ("01.2.3.4", "1.2.3", "256.1.1.1", "mail.example"):
        assert _query_prefix(item) == item
