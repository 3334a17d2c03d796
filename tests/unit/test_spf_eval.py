"""check_host() and the SPF record parser, against the fake resolver."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from exporter.checks.spf_eval import (
    SpfPermError,
    SpfResult,
    check_host,
    check_mail,
    is_spf_record,
    parse_record,
    valid_domain,
)
from exporter.dns import Outcome
from tests.fakes import Entry, FakeResolver

Zone = dict[tuple[str, str], Entry]

DOMAIN = "example.com"
SENDER = "postmaster@example.com"


async def result_of(
    zone: Mapping[tuple[str, str], Entry], ip: str = "192.0.2.10", domain: str = DOMAIN
) -> tuple[SpfResult, str, str]:
    verdict = await check_host(FakeResolver(zone), ip, domain, f"postmaster@{domain}")
    return verdict.result, verdict.explanation, verdict.reason


# -- record selection and syntax ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "spf"),
    [("v=spf1", True), ("v=spf1 -all", True), ("V=SPF1 -all", True), ("v=spf10", False),
     ("v=spf1-all", False), (" v=spf1 -all", False), ("spf2.0/pra -all", False)],
)
def test_record_selection_is_case_insensitive_and_needs_a_space(text: str, spf: bool) -> None:
    assert is_spf_record(text) is spf


@pytest.mark.parametrize(
    "text",
    [
        "v=spf1 ip4:192.0.2.1 -all moo",  # an error after the matching term still counts
        "v=spf1 ip4:192.0.2.300",
        "v=spf1 ip4:192.0.2.1/33",
        "v=spf1 ip4:192.0.2.1/024",
        "v=spf1 ip6:2001:db8::/129",
        "v=spf1 a:example",  # no top-level label
        "v=spf1 a:",
        "v=spf1 -all.",
        "v=spf1 redirect=a.example.com redirect=b.example.com",
        "v=spf1 exp=a.example.com exp=b.example.com",
        "v=spf1 include:%{x}.example.com",
        "v=spf1 exists:%{d0}.example.com",
        "v=spf1 a:ex%ample.com",
        "v=spf1 a:mail.example.com\tmx",
        "v=spf1 a:bücher.example",
        "v=spf1 redirect:example.net",
    ],
)
def test_syntax_errors_anywhere_are_permerror(text: str) -> None:
    with pytest.raises(SpfPermError):
        parse_record(text)


def test_parser_reads_dual_cidr_and_unknown_modifiers() -> None:
    record = parse_record("v=spf1 a:mail.example.com/24//64 mx/28 ?ptr moo.cow=x:y -all")
    a, mx, ptr, all_ = record.mechanisms
    assert (a.kind, a.cidr4, a.cidr6, a.domain and a.domain.text) == (
        "a", 24, 64, "mail.example.com"
    )
    assert (mx.cidr4, mx.cidr6, mx.domain) == (28, 128, None)
    assert (ptr.kind, ptr.qualifier) == ("ptr", "?")
    assert all_.result is SpfResult.FAIL
    assert record.other_modifiers == (("moo.cow", "x:y"),)


@pytest.mark.parametrize(
    ("name", "valid"),
    [("example.com", True), ("_spf.example.com.", True), ("localhost", False),
     ("a..example.com", False), ("[192.0.2.1]", False), ("x" * 64 + ".example.com", False)],
)
def test_initial_domain_must_be_a_multi_label_name(name: str, valid: bool) -> None:
    assert valid_domain(name) is valid


# -- results ------------------------------------------------------------------


async def test_ip4_network_match_passes_and_all_fails_others() -> None:
    zone = {(DOMAIN, "TXT"): "v=spf1 ip4:192.0.2.0/24 -all"}
    assert (await result_of(zone, "192.0.2.99"))[0] is SpfResult.PASS
    result, explanation, _ = await result_of(zone, "198.51.100.1")
    assert result is SpfResult.FAIL
    assert explanation == "SPF fail: 198.51.100.1 is not authorized to send mail for example.com"


@pytest.mark.parametrize(
    ("record", "expected"),
    [("v=spf1 ~all", SpfResult.SOFTFAIL), ("v=spf1 ?all", SpfResult.NEUTRAL),
     ("v=spf1", SpfResult.NEUTRAL), ("v=spf1 +all", SpfResult.PASS)],
)
async def test_qualifiers_give_their_results(record: str, expected: SpfResult) -> None:
    assert (await result_of({(DOMAIN, "TXT"): record}))[0] is expected


async def test_no_record_and_nxdomain_are_none_but_two_records_are_permerror() -> None:
    assert (await result_of({(DOMAIN, "TXT"): "google-site-verification=x"}))[0] is SpfResult.NONE
    assert (await result_of({}))[0] is SpfResult.NONE
    two = {(DOMAIN, "TXT"): ["v=spf1 -all", "v=spf1 +all"]}
    assert (await result_of(two))[0] is SpfResult.PERMERROR


@pytest.mark.parametrize("failure", [Outcome.TIMEOUT, Outcome.SERVFAIL, Outcome.REFUSED])
async def test_an_unanswered_record_lookup_is_temperror_not_none(failure: Outcome) -> None:
    result, _, reason = await result_of({(DOMAIN, "TXT"): failure})
    assert result is SpfResult.TEMPERROR
    assert failure.value in reason


async def test_timeouts_inside_terms_are_temperror() -> None:
    base = {(DOMAIN, "TXT"): "v=spf1 include:_spf.example.net a:mail.example.com -all"}
    include_timeout = {**base, ("_spf.example.net", "TXT"): Outcome.TIMEOUT}
    assert (await result_of(include_timeout))[0] is SpfResult.TEMPERROR
    a_timeout = {**base, ("_spf.example.net", "TXT"): "v=spf1 -all",
                 ("mail.example.com", "A"): Outcome.TIMEOUT}
    assert (await result_of(a_timeout))[0] is SpfResult.TEMPERROR


async def test_include_passes_only_on_inner_pass_and_missing_include_is_permerror() -> None:
    zone = {
        (DOMAIN, "TXT"): "v=spf1 include:_spf.example.net -all",
        ("_spf.example.net", "TXT"): "v=spf1 ip4:192.0.2.10 ~all",
    }
    result, _, reason = await result_of(zone)
    assert result is SpfResult.PASS
    assert "include:_spf.example.net" in reason and "ip4:192.0.2.10" in reason
    assert (await result_of(zone, "192.0.2.11"))[0] is SpfResult.FAIL
    missing = {(DOMAIN, "TXT"): "v=spf1 include:_spf.example.net -all"}
    assert (await result_of(missing))[0] is SpfResult.PERMERROR


async def test_a_and_mx_compare_with_cidr_lengths_per_family() -> None:
    zone = {
        (DOMAIN, "TXT"): "v=spf1 mx/24//64 -all",
        (DOMAIN, "MX"): ["10 mx1.example.com", "20 mx2.example.com"],
        ("mx1.example.com", "A"): "198.51.100.1",
        ("mx2.example.com", "A"): "192.0.2.1",
        ("mx2.example.com", "AAAA"): "2001:db8:1::1",
    }
    assert (await result_of(zone, "192.0.2.200"))[0] is SpfResult.PASS
    assert (await result_of(zone, "2001:db8:1::ffff"))[0] is SpfResult.PASS
    assert (await result_of(zone, "2001:db8:2::1"))[0] is SpfResult.FAIL


async def test_mx_with_more_than_ten_names_is_permerror() -> None:
    zone: Zone = {
        (DOMAIN, "TXT"): "v=spf1 mx -all",
        (DOMAIN, "MX"): [f"10 mx{i}.example.com" for i in range(11)],
    }
    assert (await result_of(zone))[0] is SpfResult.PERMERROR
    zone[(DOMAIN, "MX")] = [f"10 mx{i}.example.com" for i in range(10)]
    assert (await result_of(zone))[0] is SpfResult.FAIL


async def test_ten_dns_terms_evaluate_and_the_eleventh_is_permerror() -> None:
    ten = " ".join(f"a:h{i}.example.com" for i in range(10))
    zone: Zone = {(DOMAIN, "TXT"): f"v=spf1 {ten} -all"}
    for i in range(10):
        zone[(f"h{i}.example.com", "A")] = "198.51.100.1"
    verdict = await check_host(FakeResolver(zone), "192.0.2.10", DOMAIN, SENDER)
    assert (verdict.result, verdict.dns_lookups) == (SpfResult.FAIL, 10)
    zone[(DOMAIN, "TXT")] = f"v=spf1 {ten} a:h10.example.com -all"
    zone[("h10.example.com", "A")] = "198.51.100.1"
    verdict = await check_host(FakeResolver(zone), "192.0.2.10", DOMAIN, SENDER)
    assert verdict.result is SpfResult.PERMERROR
    assert "10" in verdict.reason


async def test_third_void_lookup_is_permerror() -> None:
    two = "v=spf1 a:gone1.example.com a:gone2.example.com ip4:192.0.2.10 -all"
    assert (await result_of({(DOMAIN, "TXT"): two}))[0] is SpfResult.PASS
    three = "v=spf1 a:gone1.example.com a:gone2.example.com exists:gone3.example.com -all"
    result, _, reason = await result_of({(DOMAIN, "TXT"): three})
    assert result is SpfResult.PERMERROR
    assert "void" in reason


async def test_include_loop_ends_in_permerror() -> None:
    zone = {
        (DOMAIN, "TXT"): "v=spf1 include:a.example.net -all",
        ("a.example.net", "TXT"): "v=spf1 include:example.com -all",
    }
    assert (await result_of(zone))[0] is SpfResult.PERMERROR


async def test_redirect_is_used_only_without_all_and_brings_its_explanation() -> None:
    zone = {
        (DOMAIN, "TXT"): "v=spf1 ip4:198.51.100.0/24 exp=why.example.com redirect=_spf.example.net",
        ("_spf.example.net", "TXT"): "v=spf1 -all exp=why.example.net",
        ("why.example.com", "TXT"): "mine",
        ("why.example.net", "TXT"): "%{i} is not one of ours (%{d})",
    }
    result, explanation, _ = await result_of(zone)
    assert result is SpfResult.FAIL
    assert explanation == "192.0.2.10 is not one of ours (_spf.example.net)"
    with_all = {**zone, (DOMAIN, "TXT"): "v=spf1 ?all redirect=_spf.example.net"}
    assert (await result_of(with_all))[0] is SpfResult.NEUTRAL
    gone = {(DOMAIN, "TXT"): "v=spf1 redirect=_spf.example.net"}
    assert (await result_of(gone))[0] is SpfResult.PERMERROR


async def test_explanation_failure_falls_back_to_the_default() -> None:
    zone = {(DOMAIN, "TXT"): "v=spf1 -all exp=why.example.com",
            ("why.example.com", "TXT"): Outcome.TIMEOUT}
    result, explanation, _ = await result_of(zone)
    assert result is SpfResult.FAIL
    assert explanation.startswith("SPF fail: 192.0.2.10")


async def test_macros_expand_reversed_truncated_and_url_escaped() -> None:
    zone = {
        (DOMAIN, "TXT"): "v=spf1 exists:%{ir}.%{l1r-}.%{d2}.bl.example.net -all exp=e.%{d}",
        ("10.2.0.192.jack.example.com.bl.example.net", "A"): "127.0.0.2",
        ("e.example.com", "TXT"): "see http://x.example/?s=%{S}&v=%{v}",
    }
    resolver = FakeResolver(zone)
    # l1r- : split the local part on "-", reverse, keep the right-most part.
    verdict = await check_host(resolver, "192.0.2.10", DOMAIN, "jack-jill@example.com")
    assert verdict.result is SpfResult.PASS  # ["jill", "jack"] -> "jack"
    verdict = await check_host(resolver, "192.0.2.10", DOMAIN, "jill-jack@example.com")
    assert verdict.result is SpfResult.FAIL  # ["jack", "jill"] -> "jill"
    assert verdict.explanation == "see http://x.example/?s=jill-jack%40example.com&v=in-addr"


async def test_ipv6_client_i_macro_is_nibbles_and_mapped_ipv4_acts_as_ipv4() -> None:
    zone = {
        (DOMAIN, "TXT"): "v=spf1 ip4:192.0.2.10 exists:%{ir}.%{v}.example.net -all",
        ("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.example.net", "A"):
            "127.0.0.2",
    }
    assert (await result_of(zone, "2001:db8::1"))[0] is SpfResult.PASS
    assert (await result_of(zone, "2001:db8::2"))[0] is SpfResult.FAIL
    assert (await result_of(zone, "::ffff:192.0.2.10"))[0] is SpfResult.PASS


async def test_ptr_matches_validated_names_and_a_ptr_timeout_is_no_match() -> None:
    zone: Zone = {
        (DOMAIN, "TXT"): "v=spf1 ptr -all",
        ("10.2.0.192.in-addr.arpa", "PTR"): ["mail.example.com", "fake.example.com"],
        ("mail.example.com", "A"): "192.0.2.10",
        ("fake.example.com", "A"): "198.51.100.1",
    }
    assert (await result_of(zone))[0] is SpfResult.PASS
    zone[("mail.example.com", "A")] = "198.51.100.2"  # no longer validates
    assert (await result_of(zone))[0] is SpfResult.FAIL
    zone[("10.2.0.192.in-addr.arpa", "PTR")] = Outcome.TIMEOUT
    assert (await result_of(zone))[0] is SpfResult.FAIL  # RFC 7208 5.5


async def test_check_mail_uses_helo_for_an_empty_mail_from() -> None:
    zone = {("mail.example.com", "TXT"): "v=spf1 ip4:192.0.2.10 -all"}
    verdict = await check_mail(FakeResolver(zone), "192.0.2.10", "", "mail.example.com")
    assert verdict.result is SpfResult.PASS
