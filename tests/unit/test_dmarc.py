"""DmarcCheck, the RFC 9989 tree walk and the record parser, on a fake resolver."""

from __future__ import annotations

import logging

import pytest

from exporter.checks.base import CheckContext, Findings, Status, Target
from exporter.checks.dmarc import (
    INHERITED,
    PCT,
    POLICY,
    RECORDS,
    REPORTING,
    SUBDOMAIN_POLICY,
    VALID,
    DmarcCheck,
)
from exporter.checks.dmarc_record import NO_POLICY, Rfc, parse_dmarc
from exporter.checks.dmarc_walk import walk_names
from exporter.config import Config, DomainConfig
from exporter.dns import LookupFailed, Outcome
from tests.fakes import FakeResolver

Data = dict[tuple[str, str], object]


def ctx(resolver: FakeResolver) -> CheckContext:
    return CheckContext(resolver=resolver, config=Config(), log=logging.getLogger("test"))


async def run(data: Data, domain: str = "example.com") -> tuple[Findings, FakeResolver]:
    resolver = FakeResolver(data)  # type: ignore[arg-type]
    return await DmarcCheck().run(Target("dmarc", domain), ctx(resolver)), resolver


def values(f: Findings) -> dict[str, float]:
    return {s.metric: s.value for s in f.samples}


def txt(name: str, *records: str) -> Data:
    return {(name, "TXT"): list(records)}


def test_every_domain_is_a_target() -> None:
    config = Config(domains=(DomainConfig("a.example"), DomainConfig("b.example")))
    assert [t.key for t in DmarcCheck().targets(config)] == ["a.example", "b.example"]


# --- own record ----------------------------------------------------------------


async def test_own_reject_record_with_internal_reports() -> None:
    f, _ = await run(txt("_dmarc.example.com",
                         "v=DMARC1; p=reject; rua=mailto:dmarc@example.com"))
    assert values(f) == {RECORDS: 1, VALID: 1, POLICY: 2, SUBDOMAIN_POLICY: 2, INHERITED: 0,
                         PCT: 100, REPORTING: 1}
    assert any(x.status is Status.PASS and "reject" in x.title for x in f.findings)


async def test_sp_sets_the_subdomain_policy() -> None:
    f, _ = await run(txt("_dmarc.example.com", "v=DMARC1; p=quarantine; sp=none"))
    assert values(f)[POLICY] == 1 and values(f)[SUBDOMAIN_POLICY] == 0


async def test_p_none_is_a_warning_with_the_way_forward() -> None:
    f, _ = await run(txt("_dmarc.example.com", "v=DMARC1; p=none; rua=mailto:d@example.com"))
    assert values(f)[POLICY] == 0
    warn = [x for x in f.findings if "monitoring only" in x.title]
    assert warn and warn[0].status is Status.WARN and "p=quarantine" in warn[0].fix


async def test_no_record_anywhere_is_no_policy_and_no_pct() -> None:
    f, resolver = await run({})
    assert values(f) == {RECORDS: 0, VALID: 0, POLICY: NO_POLICY, SUBDOMAIN_POLICY: NO_POLICY,
                         INHERITED: 0, REPORTING: 0}
    assert resolver.asked == [("_dmarc.example.com", "TXT"), ("_dmarc.com", "TXT")]
    assert '_dmarc.example.com TXT "v=DMARC1; p=reject' in f.findings[-1].fix


async def test_two_own_records_are_discarded() -> None:
    f, _ = await run(txt("_dmarc.example.com", "v=DMARC1; p=reject", "v=DMARC1; p=none"))
    assert values(f)[RECORDS] == 2
    assert values(f)[VALID] == 0 and values(f)[POLICY] == NO_POLICY
    assert any("receivers discard them all" in x.title for x in f.findings)


async def test_two_own_records_fall_through_to_the_parent_but_stay_invalid() -> None:
    f, _ = await run({
        **txt("_dmarc.mail.example.com", "v=DMARC1; p=none", "v=DMARC1; p=reject"),
        **txt("_dmarc.example.com", "v=DMARC1; p=reject; sp=quarantine"),
        ("mail.example.com", "A"): "192.0.2.1",
    }, "mail.example.com")
    assert values(f)[RECORDS] == 2 and values(f)[VALID] == 0
    assert values(f)[POLICY] == 1 and values(f)[INHERITED] == 1


async def test_non_dmarc_txt_at_dmarc_is_not_counted_but_reported() -> None:
    f, _ = await run(txt("_dmarc.example.com", "v=spf1 -all", " v=DMARC1; p=reject",
                         "v=DMARC1; p=reject"))
    assert values(f)[RECORDS] == 1 and values(f)[POLICY] == 2
    titles = [x.title for x in f.findings]
    assert any("unrelated TXT" in t for t in titles)
    assert any("not a valid DMARC record" in t for t in titles)


@pytest.mark.parametrize(("rua", "policy"), [("; rua=mailto:d@example.com", 0), ("", -1)])
async def test_invalid_p_is_none_only_with_a_valid_rua(rua: str, policy: int) -> None:
    f, _ = await run(txt("_dmarc.example.com", f"v=DMARC1; p=bogus{rua}"))
    assert values(f)[POLICY] == policy
    assert values(f)[VALID] == 0
    assert any("p=bogus" in x.title for x in f.findings)


async def test_testing_mode_lowers_the_policy_one_step() -> None:
    f, _ = await run(txt("_dmarc.example.com", "v=DMARC1; p=reject; sp=quarantine; t=y"))
    assert values(f)[POLICY] == 1 and values(f)[SUBDOMAIN_POLICY] == 0
    assert any("t=y" in x.title for x in f.findings)


async def test_pct_is_reported_and_flagged() -> None:
    f, _ = await run(txt("_dmarc.example.com", "v=DMARC1; p=reject; pct=25"))
    assert values(f)[PCT] == 25
    assert any("pct=25" in x.title for x in f.findings)


# --- reporting ---------------------------------------------------------------------


async def test_unauthorised_external_destination_fails_reporting() -> None:
    f, resolver = await run(txt("_dmarc.example.com",
                                "v=DMARC1; p=reject; rua=mailto:agg@reports.example.net"))
    assert values(f)[REPORTING] == 0
    assert ("example.com._report._dmarc.reports.example.net", "TXT") in resolver.asked
    fail = [x for x in f.findings if "has not authorised" in x.title]
    assert fail and 'example.com._report._dmarc.reports.example.net TXT "v=DMARC1"' in fail[0].fix


async def test_authorised_external_destination_passes_reporting() -> None:
    f, _ = await run({
        **txt("_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:agg@reports.example.net!10m"),
        **txt("example.com._report._dmarc.reports.example.net", "v=DMARC1"),
    })
    assert values(f)[REPORTING] == 1


async def test_no_rua_means_no_reporting() -> None:
    f, _ = await run(txt("_dmarc.example.com", "v=DMARC1; p=reject"))
    assert values(f)[REPORTING] == 0
    assert any("No aggregate reports" in x.title for x in f.findings)


async def test_destination_inside_the_org_domain_needs_no_authorisation() -> None:
    f, resolver = await run(txt("_dmarc.example.com",
                                "v=DMARC1; p=reject; rua=mailto:d@reports.example.com"))
    assert values(f)[REPORTING] == 1
    assert not any("_report._dmarc" in name for name, _ in resolver.asked)


async def test_destination_below_its_own_psd_n_is_external() -> None:
    f, _ = await run({
        **txt("_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:d@unit.example.com"),
        **txt("_dmarc.unit.example.com", "v=DMARC1; p=none; psd=n"),
    })
    assert values(f)[REPORTING] == 0


async def test_ruf_destinations_are_checked_too() -> None:
    f, _ = await run(txt("_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:d@example.com; "
                         "ruf=mailto:f@forensic.example.org"))
    assert values(f)[REPORTING] == 0


# --- inheritance and the tree walk -----------------------------------------------


async def test_subdomain_inherits_the_parents_sp() -> None:
    f, _ = await run({
        **txt("_dmarc.example.com", "v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@example.com"),
        ("mail.example.com", "A"): "192.0.2.1",
    }, "mail.example.com")
    assert values(f) == {RECORDS: 0, VALID: 1, POLICY: 1, SUBDOMAIN_POLICY: 1, INHERITED: 1,
                         PCT: 100, REPORTING: 1}
    assert any("no DMARC record of its own" in x.title for x in f.findings)


@pytest.mark.parametrize(("exists", "policy"), [(True, 0), (False, 2)])
async def test_np_applies_to_a_domain_that_does_not_exist(exists: bool, policy: int) -> None:
    data: Data = txt("_dmarc.example.com", "v=DMARC1; p=quarantine; sp=none; np=reject")
    if exists:
        data[("ghost.example.com", "MX")] = "10 mx.example.com"
    f, resolver = await run(data, "ghost.example.com")
    assert values(f)[POLICY] == policy
    assert ("ghost.example.com", "AAAA") in resolver.asked


async def test_existence_check_is_skipped_without_np() -> None:
    _, resolver = await run(txt("_dmarc.example.com", "v=DMARC1; p=reject"), "ghost.example.com")
    assert not any(t in ("A", "AAAA", "MX") for _, t in resolver.asked)


async def test_the_org_domain_is_the_shortest_record_not_the_nearest() -> None:
    f, _ = await run({
        **txt("_dmarc.mail.example.com", "v=DMARC1; p=none"),
        **txt("_dmarc.example.com", "v=DMARC1; p=reject"),
    }, "a.mail.example.com")
    assert values(f)[POLICY] == 2 and values(f)[INHERITED] == 1


async def test_psd_n_stops_the_walk_and_makes_the_org_domain() -> None:
    f, resolver = await run({
        **txt("_dmarc.unit.example.com", "v=DMARC1; p=quarantine; psd=n"),
        **txt("_dmarc.example.com", "v=DMARC1; p=reject"),
    }, "a.unit.example.com")
    assert values(f)[POLICY] == 1
    assert ("_dmarc.example.com", "TXT") not in resolver.asked


async def test_psd_y_record_applies_when_the_org_domain_has_none() -> None:
    f, _ = await run(txt("_dmarc.example", "v=DMARC1; p=reject; sp=quarantine; psd=y"),
                     "shop.example")
    assert values(f)[POLICY] == 1 and values(f)[INHERITED] == 1


async def test_own_record_below_the_org_domain_gets_the_org_subdomain_policy() -> None:
    f, _ = await run({
        **txt("_dmarc.mail.example.com", "v=DMARC1; p=reject"),
        **txt("_dmarc.example.com", "v=DMARC1; p=reject; sp=none"),
    }, "mail.example.com")
    assert values(f)[POLICY] == 2 and values(f)[INHERITED] == 0
    # A subdomain of mail.example.com gets the Organizational Domain's sp (RFC 9989 §4.10).
    assert values(f)[SUBDOMAIN_POLICY] == 0


async def test_long_names_are_walked_with_at_most_eight_queries() -> None:
    name = "a.b.c.d.e.f.g.h.i.j.mail.example.com"
    _, resolver = await run({}, name)
    asked = [n for n, _ in resolver.asked]
    assert asked == ["_dmarc." + n for n in walk_names(name)]
    assert len(asked) == 8


def test_walk_names_follow_the_rfc_example() -> None:
    assert walk_names("a.b.c.d.e.f.g.h.i.j.mail.example.com") == [
        "a.b.c.d.e.f.g.h.i.j.mail.example.com", "g.h.i.j.mail.example.com",
        "h.i.j.mail.example.com", "i.j.mail.example.com", "j.mail.example.com",
        "mail.example.com", "example.com", "com",
    ]
    assert walk_names("a.mail.example.com") == [
        "a.mail.example.com", "mail.example.com", "example.com", "com"]


# --- failures are never answers ----------------------------------------------------


@pytest.mark.parametrize("failure", [Outcome.TIMEOUT, Outcome.SERVFAIL, Outcome.REFUSED])
async def test_unanswered_own_lookup_fails_the_run(failure: Outcome) -> None:
    with pytest.raises(LookupFailed):
        await run({("_dmarc.example.com", "TXT"): failure})


async def test_unanswered_lookup_in_the_walk_fails_the_run() -> None:
    with pytest.raises(LookupFailed):
        await run({("_dmarc.example.com", "TXT"): Outcome.TIMEOUT}, "mail.example.com")


async def test_unanswered_authorisation_lookup_fails_the_run() -> None:
    with pytest.raises(LookupFailed):
        await run({
            **txt("_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:a@reports.example.net"),
            ("example.com._report._dmarc.reports.example.net", "TXT"): Outcome.TIMEOUT,
        })


async def test_unanswered_existence_lookup_fails_the_run() -> None:
    with pytest.raises(LookupFailed):
        await run({
            **txt("_dmarc.example.com", "v=DMARC1; p=reject; np=reject"),
            ("ghost.example.com", "MX"): Outcome.SERVFAIL,
        }, "ghost.example.com")


# --- parser details -----------------------------------------------------------------


def test_mailto_address_and_size_are_split() -> None:
    record = parse_dmarc("v=DMARC1; p=none; rua=mailto:Agg@Reports.Example.NET!10m, "
                         "mailto:x@example.com")
    assert [(u.address, u.domain, u.size) for u in record.rua] == [
        ("Agg@Reports.Example.NET", "reports.example.net", "10m"),
        ("x@example.com", "example.com", ""),
    ]


def test_historic_tags_are_warnings_under_9989_and_checked_under_7489() -> None:
    assert [p.code for p in parse_dmarc("v=DMARC1; p=none; ri=x").warnings] == ["removed-tag(ri)"]
    assert [p.code for p in parse_dmarc("v=DMARC1; p=none; ri=x", Rfc.RFC7489).errors] == [
        "bad-value(ri)"]


def test_np_defaults_to_sp_then_p() -> None:
    assert parse_dmarc("v=DMARC1; p=reject; sp=none").effective() == {
        "p": "reject", "sp": "none", "np": "none"}
    assert parse_dmarc("v=DMARC1; p=reject").applied_policy(subdomain=True, exists=False) == 2
