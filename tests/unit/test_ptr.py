"""Reverse DNS: PTR present, forward-confirmed, HELO aligned; failures stay failures."""

from __future__ import annotations

from exporter.checks.ptr import PtrCheck
from exporter.dns import Outcome
from tests.fakes import FakeResolver
from tests.unit.helpers import context, run, target_for, value, values

CONFIG = """
senders:
  - {ip: 192.0.2.10, helo: mail.example.org}
  - {ip: 192.0.2.20, helo: mail.example.org}
  - {ip: 192.0.2.30, helo: mail.example.org}
  - {ip: "2001:db8::25", helo: mail6.example.org}
  - {ip: 192.0.2.40}
"""


def zone() -> FakeResolver:
    r = FakeResolver()
    r.set("10.2.0.192.in-addr.arpa", "PTR", "mail.example.org")
    r.set("mail.example.org", "A", "192.0.2.10")
    r.set("20.2.0.192.in-addr.arpa", "PTR", "other.example.org")
    r.set("other.example.org", "A", "192.0.2.21")
    r.set("5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", "PTR",
          "mail6.example.org")
    r.set("mail6.example.org", "AAAA", "2001:db8::25")
    r.set("40.2.0.192.in-addr.arpa", "PTR", "h40.example.org")
    r.set("h40.example.org", "A", "192.0.2.40")
    return r


async def test_aligned_sender() -> None:
    ctx = context(zone(), CONFIG)
    check = PtrCheck()
    result = await run(check, target_for(check, ctx.config, "192.0.2.10"), ctx)
    assert result.success
    assert value(result, "deliverability_ptr_present", ip="192.0.2.10") == 1
    assert value(result, "deliverability_fcrdns_valid", ip="192.0.2.10") == 1
    assert value(result, "deliverability_helo_aligned", ip="192.0.2.10",
                 helo="mail.example.org") == 1
    assert value(result, "deliverability_ptr_info", ip="192.0.2.10", ptr="mail.example.org") == 1


async def test_ptr_not_forward_confirmed_and_helo_misaligned() -> None:
    ctx = context(zone(), CONFIG)
    check = PtrCheck()
    result = await run(check, target_for(check, ctx.config, "192.0.2.20"), ctx)
    assert result.success
    assert value(result, "deliverability_ptr_present", ip="192.0.2.20") == 1
    assert value(result, "deliverability_fcrdns_valid", ip="192.0.2.20") == 0
    assert value(result, "deliverability_helo_aligned", ip="192.0.2.20",
                 helo="mail.example.org") == 0


async def test_missing_ptr_is_zero_everywhere() -> None:
    ctx = context(zone(), CONFIG)
    check = PtrCheck()
    result = await run(check, target_for(check, ctx.config, "192.0.2.30"), ctx)
    assert result.success
    assert value(result, "deliverability_ptr_present", ip="192.0.2.30") == 0
    assert value(result, "deliverability_fcrdns_valid", ip="192.0.2.30") == 0
    assert not values(result, "deliverability_ptr_info")


async def test_ipv6_uses_aaaa() -> None:
    ctx = context(zone(), CONFIG)
    check = PtrCheck()
    result = await run(check, target_for(check, ctx.config, "2001:db8::25"), ctx)
    assert value(result, "deliverability_fcrdns_valid", ip="2001:db8::25") == 1
    assert value(result, "deliverability_helo_aligned", ip="2001:db8::25",
                 helo="mail6.example.org") == 1


async def test_no_helo_configured_emits_no_alignment() -> None:
    ctx = context(zone(), CONFIG)
    check = PtrCheck()
    result = await run(check, target_for(check, ctx.config, "192.0.2.40"), ctx)
    assert value(result, "deliverability_fcrdns_valid", ip="192.0.2.40") == 1
    assert not values(result, "deliverability_helo_aligned")


async def test_ptr_timeout_reports_nothing() -> None:
    r = zone()
    r.set("10.2.0.192.in-addr.arpa", "PTR", Outcome.TIMEOUT)
    ctx = context(r, CONFIG)
    check = PtrCheck()
    result = await run(check, target_for(check, ctx.config, "192.0.2.10"), ctx)
    assert not result.success
    assert not result.samples


async def test_forward_servfail_reports_nothing() -> None:
    r = zone()
    r.set("mail.example.org", "A", Outcome.SERVFAIL)
    ctx = context(r, CONFIG)
    check = PtrCheck()
    result = await run(check, target_for(check, ctx.config, "192.0.2.10"), ctx)
    assert not result.success
    assert not result.samples
