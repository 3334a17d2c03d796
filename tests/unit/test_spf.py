"""The SPF check: record counting, lookup accounting, flags, senders, honest failures."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pytest

from exporter.checks.base import Check, CheckContext, Findings, Status, Target
from exporter.checks.spf import WALK_LIMIT, SpfCheck, analyze, suggested_record
from exporter.checks.spf_eval import parse_record
from exporter.config import Config, DomainConfig, parse_config_text
from exporter.dns import LookupFailed, Outcome
from tests.fakes import Entry, FakeResolver

DOMAIN = "example.com"


def ctx(resolver: FakeResolver) -> CheckContext:
    return CheckContext(resolver=resolver, config=Config(), log=logging.getLogger("test"))


async def run(
    zone: Mapping[tuple[str, str], Entry], senders: tuple[str, ...] = ()
) -> tuple[Findings, FakeResolver]:
    resolver = FakeResolver(zone)
    findings = await SpfCheck().run(Target("spf", DOMAIN, (("senders", senders),)), ctx(resolver))
    return findings, resolver


def values(findings: Findings) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {s.key: s.value for s in findings.samples}


def value(findings: Findings, metric: str, **labels: str) -> float | None:
    return values(findings).get((metric, tuple(sorted({"domain": DOMAIN, **labels}.items()))))


def titles(findings: Findings, status: Status) -> list[str]:
    return [f.title for f in findings.findings if f.status is status]


# -- targets -------------------------------------------------------------------


def test_one_target_per_domain_carries_its_senders() -> None:
    config = parse_config_text(
        "domains:\n"
        "  - {name: example.com, senders: [192.0.2.10, mail.example.com]}\n"
        "  - example.org\n"
        "spf: {interval: 30m}\n"
    )
    check: Check = SpfCheck()  # mypy: it satisfies the Check protocol
    assert check.targets(config) == [
        Target("spf", "example.com", (("senders", ("192.0.2.10", "mail.example.com")),)),
        Target("spf", "example.org", (("senders", ()),)),
    ]
    assert check.interval(config) == 1800.0
    assert {m.name for m in check.metrics} == {
        "deliverability_spf_records", "deliverability_spf_valid",
        "deliverability_spf_dns_lookups", "deliverability_spf_void_lookups",
        "deliverability_spf_authorized", "deliverability_spf_result_info",
    }


# -- records -------------------------------------------------------------------


async def test_no_record_is_zero_records_and_invalid_with_a_record_to_publish() -> None:
    findings, _ = await run({(DOMAIN, "TXT"): "google-site-verification=abc"}, ("192.0.2.10",))
    assert value(findings, "deliverability_spf_records") == 0
    assert value(findings, "deliverability_spf_valid") == 0
    assert not findings.errors
    fail = next(f for f in findings.findings if f.title.startswith("No SPF record"))
    assert "v=spf1 ip4:192.0.2.10 -all" in fail.fix


async def test_nxdomain_is_an_answer_zero_records() -> None:
    findings, _ = await run({})
    assert value(findings, "deliverability_spf_records") == 0
    assert value(findings, "deliverability_spf_valid") == 0


async def test_one_good_record_is_valid() -> None:
    findings, _ = await run({(DOMAIN, "TXT"): ["v=spf1 ip4:192.0.2.0/24 -all", "other"]})
    assert value(findings, "deliverability_spf_records") == 1
    assert value(findings, "deliverability_spf_valid") == 1
    assert value(findings, "deliverability_spf_dns_lookups") == 0
    assert value(findings, "deliverability_spf_void_lookups") == 0
    assert any("is valid" in t for t in titles(findings, Status.PASS))


async def test_two_records_are_counted_and_invalid() -> None:
    findings, _ = await run({(DOMAIN, "TXT"): ["v=spf1 -all", "V=SPF1 mx -all"]})
    assert value(findings, "deliverability_spf_records") == 2
    assert value(findings, "deliverability_spf_valid") == 0
    fail = next(f for f in findings.findings if "2 SPF records" in f.title)
    assert "v=spf1 -all" in fail.evidence and "V=SPF1 mx -all" in fail.evidence


async def test_a_record_that_does_not_parse_is_invalid() -> None:
    findings, _ = await run({(DOMAIN, "TXT"): "v=spf1 ip4:192.0.2.300 -all"})
    assert value(findings, "deliverability_spf_records") == 1
    assert value(findings, "deliverability_spf_valid") == 0
    assert any("does not parse" in t for t in titles(findings, Status.FAIL))


# -- lookup counting ------------------------------------------------------------


def _hosts(n: int, prefix: str = "h") -> dict[tuple[str, str], Entry]:
    return {(f"{prefix}{i}.example.com", "A"): "198.51.100.1" for i in range(n)}


async def test_nested_includes_and_redirect_are_counted_with_their_cost() -> None:
    zone: dict[tuple[str, str], Entry] = {
        (DOMAIN, "TXT"): "v=spf1 mx include:_a.example.net redirect=_r.example.net",
        (DOMAIN, "MX"): "10 mx.example.com",
        ("_a.example.net", "TXT"): "v=spf1 include:_b.example.net a:h0.example.com ~all",
        ("_b.example.net", "TXT"): "v=spf1 ip4:192.0.2.0/24 exists:h1.example.com ~all",
        ("_r.example.net", "TXT"): "v=spf1 a:h2.example.com -all",
        **_hosts(3),
    }
    analysis = await analyze(FakeResolver(zone), DOMAIN)
    # mx 1, include _a (1 + include _b (1 + exists 1) + a 1) = 4, redirect (1 + a 1) = 2
    assert analysis.dns_lookups == 7
    assert [(c.term, c.lookups) for c in analysis.costs] == [
        ("mx", 1), ("include:_a.example.net", 4), ("redirect=_r.example.net", 2)
    ]
    assert analysis.valid


@pytest.mark.parametrize(("terms", "valid"), [(10, 1), (11, 0), (15, 0)])
async def test_lookup_count_goes_past_the_limit(terms: int, valid: int) -> None:
    record = "v=spf1 " + " ".join(f"a:h{i}.example.com" for i in range(terms)) + " -all"
    findings, _ = await run({(DOMAIN, "TXT"): record, **_hosts(terms)})
    assert value(findings, "deliverability_spf_dns_lookups") == terms
    assert value(findings, "deliverability_spf_valid") == valid
    over = [f for f in findings.findings if "DNS lookups (limit 10)" in f.title]
    assert bool(over) is (terms > 10)
    if over:
        assert over[0].fix.startswith("replace lookup terms by the ip4:/ip6: networks")


async def test_over_the_limit_names_the_includes_to_flatten() -> None:
    zone: dict[tuple[str, str], Entry] = {
        (DOMAIN, "TXT"): "v=spf1 include:big.example.net include:small.example.net -all",
        ("big.example.net", "TXT"): "v=spf1 " + " ".join(
            f"a:h{i}.example.com" for i in range(9)) + " ~all",
        ("small.example.net", "TXT"): "v=spf1 a:h0.example.com ~all",
        **_hosts(9),
    }
    findings, _ = await run(zone)
    assert value(findings, "deliverability_spf_dns_lookups") == 12
    fail = next(f for f in findings.findings if "needs 12 DNS lookups" in f.title)
    assert "flatten or remove includes: include:big.example.net (10), " \
           "include:small.example.net (2)" in fail.fix
    assert "include:small.example.net costs 2" in fail.evidence


async def test_void_lookups_are_counted_against_two() -> None:
    record = "v=spf1 a:gone1.example.com mx:gone2.example.com exists:gone3.example.com -all"
    findings, _ = await run({(DOMAIN, "TXT"): record})
    assert value(findings, "deliverability_spf_void_lookups") == 3
    assert value(findings, "deliverability_spf_valid") == 0
    fail = next(f for f in findings.findings if "void lookups" in f.title)
    assert "a:gone1.example.com" in fail.fix and "exists:gone3.example.com" in fail.fix
    two, _ = await run({(DOMAIN, "TXT"): "v=spf1 a:gone1.example.com a:gone2.example.com -all"})
    assert value(two, "deliverability_spf_void_lookups") == 2
    assert value(two, "deliverability_spf_valid") == 1


async def test_include_loop_is_detected_and_ends() -> None:
    zone = {
        (DOMAIN, "TXT"): "v=spf1 include:a.example.net -all",
        ("a.example.net", "TXT"): "v=spf1 include:b.example.net ~all",
        ("b.example.net", "TXT"): "v=spf1 redirect=example.com",
    }
    findings, _ = await run(zone)
    assert value(findings, "deliverability_spf_valid") == 0
    loops = [t for t in titles(findings, Status.FAIL) if "loop" in t]
    assert loops == ["SPF include/redirect loop: example.com > a.example.net > "
                     "b.example.net > example.com"]


async def test_include_bomb_stops_walking() -> None:
    zone: dict[tuple[str, str], Entry] = {
        (DOMAIN, "TXT"): "v=spf1 " + " ".join(f"include:i{i}.bomb.example" for i in range(10))
    }
    # Every include names ten more, five levels deep: 111110 records if walked.
    for depth in range(5):
        for i in range(10 ** (depth + 1)):
            kids = " ".join(f"include:i{i * 10 + k}.d{depth + 1}.bomb.example" for k in range(10))
            zone[(f"i{i}.{f'd{depth}.' if depth else ''}bomb.example", "TXT")] = f"v=spf1 {kids}"
    findings, resolver = await run(zone)
    lookups = value(findings, "deliverability_spf_dns_lookups")
    # At least the limit; beyond it only terms of records already fetched are added.
    assert lookups is not None and WALK_LIMIT <= lookups <= 2 * WALK_LIMIT
    assert len(resolver.asked) < 2 * WALK_LIMIT
    assert any("at least" in t for t in titles(findings, Status.FAIL))


async def test_include_without_a_record_makes_the_domain_invalid() -> None:
    findings, _ = await run({(DOMAIN, "TXT"): "v=spf1 include:gone.example.net -all"})
    assert value(findings, "deliverability_spf_valid") == 0
    assert any("include:gone.example.net has no SPF record" in t
               for t in titles(findings, Status.FAIL))


async def test_include_that_does_not_parse_makes_the_domain_invalid() -> None:
    zone = {(DOMAIN, "TXT"): "v=spf1 include:bad.example.net -all",
            ("bad.example.net", "TXT"): "v=spf1 ip4:192.0.2.300 ~all"}
    findings, _ = await run(zone)
    assert value(findings, "deliverability_spf_valid") == 0
    problem = next(f for f in findings.findings if "below the top record" in f.title)
    assert "include:bad.example.net" in problem.title and "192.0.2.300" in problem.title


async def test_plus_all_inside_an_include_is_flagged_with_its_path() -> None:
    zone = {(DOMAIN, "TXT"): "v=spf1 include:open.example.net -all",
            ("open.example.net", "TXT"): "v=spf1 +all"}
    findings, _ = await run(zone)
    assert "SPF +all in example.com > open.example.net: every host on the internet passes" in (
        titles(findings, Status.WARN)
    )


# -- flags -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "needle"),
    [("v=spf1 mx +all", "+all"), ("v=spf1 mx all", "every host"),
     ("v=spf1 mx ?all", "?all"), ("v=spf1 ptr -all", "ptr")],
)
async def test_permissive_all_and_ptr_are_warned(record: str, needle: str) -> None:
    findings, _ = await run({(DOMAIN, "TXT"): record, (DOMAIN, "MX"): "10 mx.example.com",
                             ("mx.example.com", "A"): "192.0.2.1"})
    warns = [f for f in findings.findings if f.status is Status.WARN]
    assert any(needle in f.title for f in warns), warns
    if "all" in needle or "every host" in needle:
        assert any(f.fix.endswith("v=spf1 mx -all") for f in warns), warns


async def test_strict_all_is_not_warned() -> None:
    findings, _ = await run({(DOMAIN, "TXT"): "v=spf1 ip4:192.0.2.1 -all"})
    assert titles(findings, Status.WARN) == []


# -- honest failures -----------------------------------------------------------


@pytest.mark.parametrize("failure", [Outcome.TIMEOUT, Outcome.SERVFAIL])
async def test_record_lookup_failure_fails_the_run_with_no_record_values(failure: Outcome) -> None:
    resolver = FakeResolver({(DOMAIN, "TXT"): failure})
    with pytest.raises(LookupFailed):
        await SpfCheck().run(Target("spf", DOMAIN, (("senders", ("192.0.2.10",)),)), ctx(resolver))


async def test_include_timeout_fails_the_run() -> None:
    resolver = FakeResolver({(DOMAIN, "TXT"): "v=spf1 include:slow.example.net -all",
                             ("slow.example.net", "TXT"): Outcome.TIMEOUT})
    with pytest.raises(LookupFailed):
        await SpfCheck().run(Target("spf", DOMAIN, (("senders", ()),)), ctx(resolver))


async def test_temperror_for_a_sender_is_an_error_without_its_samples() -> None:
    # A macro term is looked up only by check_host (the static walk cannot expand
    # it), so the timeout hits the second sender's evaluation alone.
    zone = {(DOMAIN, "TXT"): "v=spf1 ip4:192.0.2.10 exists:%{i}.allow.example.com -all",
            ("198.51.100.7.allow.example.com", "A"): Outcome.TIMEOUT}
    findings, _ = await run(zone, ("192.0.2.10", "198.51.100.7"))
    assert value(findings, "deliverability_spf_valid") == 1
    assert value(findings, "deliverability_spf_authorized", ip="192.0.2.10") == 1
    assert value(findings, "deliverability_spf_authorized", ip="198.51.100.7") is None
    assert not any(s.metric.startswith("deliverability_spf_result")
                   and ("ip", "198.51.100.7") in s.labels for s in findings.samples)
    assert any("198.51.100.7" in e and "temperror" in e for e in findings.errors)


# -- senders -------------------------------------------------------------------


async def test_result_metrics_emit_only_the_current_result() -> None:
    zone = {(DOMAIN, "TXT"): "v=spf1 ip4:192.0.2.10 ~all"}
    findings, _ = await run(zone, ("192.0.2.10", "198.51.100.7"))
    assert value(findings, "deliverability_spf_authorized", ip="192.0.2.10") == 1
    assert value(findings, "deliverability_spf_authorized", ip="198.51.100.7") == 0
    infos = sorted(dict(s.labels)["ip"] + "=" + dict(s.labels)["result"]
                   for s in findings.samples if s.metric == "deliverability_spf_result_info")
    assert infos == ["192.0.2.10=pass", "198.51.100.7=softfail"]
    fail = next(f for f in findings.findings if "does not authorize 198.51.100.7" in f.title)
    assert fail.fix == "authorize it: v=spf1 ip4:192.0.2.10 ip4:198.51.100.7 ~all"


async def test_fix_for_an_unauthorized_host_adds_only_that_host() -> None:
    zone = {(DOMAIN, "TXT"): "v=spf1 mx ~all", (DOMAIN, "MX"): "10 mx.example.com",
            ("mx.example.com", "A"): "192.0.2.99", ("out.example.com", "A"): "192.0.2.7"}
    findings, _ = await run(zone, ("192.0.2.99", "out.example.com"))
    fail = next(f for f in findings.findings if f.status is Status.FAIL)
    assert fail.title == "SPF does not authorize 192.0.2.7 (out.example.com) for example.com: " \
                         "softfail"
    assert fail.fix == "authorize it: v=spf1 mx a:out.example.com ~all"


async def test_sender_host_is_checked_per_address_in_canonical_form() -> None:
    zone = {
        (DOMAIN, "TXT"): "v=spf1 a:mail.example.com -all",
        ("mail.example.com", "A"): "192.0.2.25",
        ("mail.example.com", "AAAA"): "2001:0db8:0000:0000:0000:0000:0000:0025",
    }
    findings, resolver = await run(zone, ("mail.example.com",))
    assert {("mail.example.com", "A"), ("mail.example.com", "AAAA")} <= set(resolver.asked)
    assert value(findings, "deliverability_spf_authorized", ip="192.0.2.25") == 1
    assert value(findings, "deliverability_spf_authorized", ip="2001:db8::25") == 1
    assert not findings.errors


async def test_sender_host_lookup_failure_is_an_error_not_absence() -> None:
    zone = {(DOMAIN, "TXT"): "v=spf1 ip4:192.0.2.10 -all",
            ("mail.example.com", "A"): Outcome.TIMEOUT,
            ("mail.example.com", "AAAA"): "2001:db8::25"}
    findings, _ = await run(zone, ("mail.example.com", "192.0.2.10"))
    assert any("mail.example.com" in e for e in findings.errors)
    assert value(findings, "deliverability_spf_authorized", ip="2001:db8::25") is None
    assert value(findings, "deliverability_spf_authorized", ip="192.0.2.10") == 1


async def test_sender_host_without_addresses_is_a_finding() -> None:
    findings, _ = await run({(DOMAIN, "TXT"): "v=spf1 -all"}, ("gone.example.com",))
    assert not findings.errors
    assert any("gone.example.com has no A or AAAA" in t for t in titles(findings, Status.FAIL))
    assert not [s for s in findings.samples if s.metric == "deliverability_spf_authorized"]


async def test_permerror_is_reported_for_every_sender() -> None:
    findings, _ = await run({(DOMAIN, "TXT"): ["v=spf1 -all", "v=spf1 +all"]}, ("192.0.2.10",))
    assert value(findings, "deliverability_spf_authorized", ip="192.0.2.10") == 0
    assert value(findings, "deliverability_spf_result_info", ip="192.0.2.10",
                 result="permerror") == 1


def test_suggested_record_inserts_missing_senders_before_all() -> None:
    record = parse_record("v=spf1 include:_spf.example.net ip4:192.0.2.10 ~all")
    assert suggested_record(record, ["192.0.2.10", "2001:db8::25", "mail.example.com"]) == (
        "v=spf1 include:_spf.example.net ip4:192.0.2.10 ip6:2001:db8::25 a:mail.example.com ~all"
    )
    assert suggested_record(None, []) == "v=spf1 mx -all"
    assert DomainConfig("x.example").senders == ()
