"""Blocklist runs in batches: the same verdicts as a run per IP, and the same accounting."""

from __future__ import annotations

from collections.abc import AsyncIterator

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from exporter.app import build_context
from exporter.budget import ZoneBudget
from exporter.checks.base import CheckContext, Findings, Target
from exporter.checks.dnsbl import DnsblCheck
from exporter.config import parse_config_text
from exporter.dns import DnsResolver, Outcome, QueryStats, Upstream
from exporter.scheduler import run_batch_once, run_once
from tests.fakes import FakeResolver
from tests.unit.helpers import context
from tests.unit.loopback_dns import LoopbackServer, serving

CONFIG = """
dnsbl:
  zones:
    - zone: bl.example
    - zone: two.example
senders: [192.0.2.99, 192.0.2.10, "2001:db8::99", 192.0.2.11]
"""
#: What the loopback blocklist lists (A 127.0.0.2, and a TXT reason).
LISTED = {"2.0.0.127.bl.example", "2.0.0.127.two.example", "99.2.0.192.bl.example",
          "10.2.0.192.two.example"}


def blocklist(query: dns.message.Message) -> dns.message.Message:
    question = query.question[0]
    name = question.name.to_text().rstrip(".")
    reply = dns.message.make_response(query)
    if name in LISTED:
        rdtype = dns.rdatatype.to_text(question.rdtype)
        text = "127.0.0.2" if rdtype == "A" else '"listed for testing"'
        reply.answer.append(dns.rrset.from_text(question.name, 60, "IN", rdtype, text))
    else:
        reply.set_rcode(dns.rcode.NXDOMAIN)
        zone = ".".join(name.split(".")[-2:]) + "."
        reply.authority.append(dns.rrset.from_text(
            zone, 60, "IN", "SOA", f"ns.{zone} hostmaster.{zone} 1 3600 600 86400 60"))
    return reply


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[LoopbackServer, int]]:
    async with serving(blocklist) as served:
        yield served


def ip_targets(check: DnsblCheck, ctx: CheckContext) -> list[Target]:
    return [t for t in check.targets(ctx.config) if t.param("kind") == "ip"]


def summary(findings: Findings | Exception) -> object:
    assert isinstance(findings, Findings), findings
    return (sorted(findings.samples), findings.errors,
            sorted((f.status, f.title) for f in findings.findings))


async def test_a_batch_reports_what_a_run_per_ip_or_domain_reports() -> None:
    r = FakeResolver()
    for zone in ("bl.example", "two.example"):
        r.set(f"2.0.0.127.{zone}", "A", "127.0.0.2")
    r.set("test.dbl.example", "A", "127.0.0.2")
    r.set("99.2.0.192.bl.example", "A", "127.0.0.2")
    r.set("99.2.0.192.bl.example", "TXT", "listed")
    r.set("spammy.example.dbl.example", "A", "127.0.1.2")
    r.set("spammy.example.dbl.example", "TXT", "spammy")
    r.set("11.2.0.192.two.example", "A", Outcome.TIMEOUT)  # its run fails; the others not
    ctx = context(r, CONFIG.replace("    - zone: two.example\n", "    - zone: two.example\n"
                                    "    - {zone: dbl.example, type: domain}\n")
                  + "domains: [spammy.example, clean.example]\n")
    check = DnsblCheck()
    targets = [t for t in check.targets(ctx.config) if check.batchable(t)]
    assert sorted(str(t.param("kind")) for t in targets) == ["domain"] * 2 + ["ip"] * 4
    assert not any(check.batchable(t) for t in check.targets(ctx.config)
                   if t.param("kind") == "zone")
    batched = await check.run_batch(targets, ctx)
    single = [await DnsblCheck().run(t, ctx) for t in targets]
    assert [summary(f) for f in batched] == [summary(f) for f in single]
    by_key = dict(zip((t.key for t in targets), batched, strict=True))
    assert isinstance(by_key["192.0.2.11"], Findings) and by_key["192.0.2.11"].errors
    assert isinstance(by_key["192.0.2.10"], Findings) and not by_key["192.0.2.10"].errors
    spammy = by_key["spammy.example"]
    assert isinstance(spammy, Findings) and (
        "deliverability_dnsbl_domain_listed",
        (("domain", "spammy.example"), ("zone", "dbl.example")), 1.0) in spammy.samples


def test_sender_hosts_are_run_alone() -> None:
    check = DnsblCheck()
    config = parse_config_text("dnsbl: {zones: [{zone: bl.example}]}\n"
                               "senders: [{host: mail.example.org}]\n")
    host = next(t for t in check.targets(config) if t.key == "mail.example.org")
    assert not check.batchable(host)  # its addresses are looked up first, in its own run


async def test_a_target_whose_report_breaks_fails_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    r = FakeResolver()
    for zone in ("bl.example", "two.example"):
        r.set(f"2.0.0.127.{zone}", "A", "127.0.0.2")
    ctx = context(r, CONFIG)
    check = DnsblCheck()
    report = DnsblCheck._report

    def broken(self: DnsblCheck, item: str, *args: object) -> None:
        if item == "192.0.2.10":
            raise RuntimeError("a bug")
        report(self, item, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(DnsblCheck, "_report", broken)
    results = await run_batch_once(check, ip_targets(check, ctx), ctx, 5)
    assert {r.target: r.success for r in results} == {
        "192.0.2.99": True, "192.0.2.10": False, "2001:db8::99": True, "192.0.2.11": True}
    failed = next(r for r in results if not r.success)
    assert failed.errors == ("internal error: RuntimeError: a bug",) and not failed.samples


@pytest.mark.parametrize("transport", ["datagram", "dnspython"])
async def test_a_batch_through_the_real_resolver_counts_and_caches_as_runs_do(
        upstream: tuple[LoopbackServer, int], transport: str) -> None:
    server, port = upstream
    config = parse_config_text(CONFIG)
    resolver = DnsResolver(Upstream(("127.0.0.1",), port), timeout=1, attempts=1,
                           stats=QueryStats(), transport=transport)
    zone_sent: dict[str, int] = {}
    ctx = build_context(config, resolver, zone_sent=zone_sent)
    check = DnsblCheck()
    targets = ip_targets(check, ctx)
    results = await run_batch_once(check, targets, ctx, 5)
    assert all(r.success for r in results), [r.errors for r in results]
    listed = {(dict(s.labels)["ip"], dict(s.labels)["zone"]): s.value for r in results
              for s in r.samples if s.metric == "deliverability_dnsbl_listed"}
    assert listed == {
        ("192.0.2.99", "bl.example"): 1, ("192.0.2.99", "two.example"): 0,
        ("192.0.2.10", "bl.example"): 0, ("192.0.2.10", "two.example"): 1,
        ("2001:db8::99", "bl.example"): 0, ("2001:db8::99", "two.example"): 0,
        ("192.0.2.11", "bl.example"): 0, ("192.0.2.11", "two.example"): 0}
    # Each zone's counter has every question sent to it (the listings' TXT and fresh
    # test-entry questions included).
    per_zone = {zone: sum(1 for q in server.queries if q.endswith(f".{zone}."))
                for zone in ("bl.example", "two.example")}
    assert zone_sent == per_zone
    # The same IPs again, a run each: every answer is cached; only the two listings'
    # must-not-be-listed test entries are asked again, past the cache, and counted.
    sent_before, cached_before = len(server.queries), resolver.stats.counts["cached"]
    again = [await run_once(check, t, ctx, 5) for t in targets]
    assert [sorted(r.samples) for r in again] == [sorted(r.samples) for r in results]
    assert sorted(server.queries[sent_before:]) == ["1.0.0.127.bl.example.",
                                                    "1.0.0.127.two.example."]
    assert zone_sent == {zone: count + 1 for zone, count in per_zone.items()}
    assert resolver.stats.counts["cached"] >= cached_before + 2 * len(targets)


async def test_a_zone_with_a_budget_spends_it_on_every_question_of_a_batch(
        upstream: tuple[LoopbackServer, int]) -> None:
    server, port = upstream
    config = parse_config_text(CONFIG.replace("- zone: bl.example",
                                              "- {zone: bl.example, budget: {per_day: 1000}}"))
    resolver = DnsResolver(Upstream(("127.0.0.1",), port), timeout=1, attempts=1)
    budgets: dict[str, ZoneBudget] = {}
    ctx = build_context(config, resolver, budgets=budgets)
    check = DnsblCheck()
    results = await run_batch_once(check, ip_targets(check, ctx), ctx, 5)
    assert all(r.success for r in results)
    asked = [q for q in server.queries if q.endswith(".bl.example.")]
    assert budgets["bl.example"].spent_today == len(asked) > 4


async def test_a_batch_reads_the_socket_while_it_reports(
        upstream: tuple[LoopbackServer, int], monkeypatch: pytest.MonkeyPatch) -> None:
    # The report of 16 targets is a stretch of a millisecond or more: the resolver's
    # answers are read every few targets so that its queue does not run dry meanwhile.
    _, port = upstream
    senders = [f"192.0.2.{n}" for n in range(20, 29)]
    config = parse_config_text(CONFIG.split("senders:")[0] + f"senders: {senders}\n")
    resolver = DnsResolver(Upstream(("127.0.0.1",), port), timeout=1, attempts=1)
    polls: list[int] = []
    monkeypatch.setattr(resolver, "poll", lambda: polls.append(1))
    ctx = build_context(config, resolver)
    check = DnsblCheck()
    results = await run_batch_once(check, ip_targets(check, ctx), ctx, 5)
    assert [r.success for r in results] == [True] * 9
    assert len(polls) == 3  # after the verdicts, then after the 4th and the 8th target
    resolver.close()
