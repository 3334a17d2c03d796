"""DkimCheck and the key-record reader, on a fake resolver."""

from __future__ import annotations

import base64
import logging
from functools import cache

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from exporter.checks.base import CheckContext, Findings, Status, Target
from exporter.checks.dkim import KEY_BITS, KEY_VALID, TESTING, DkimCheck
from exporter.checks.dkim_key import evaluate_selector, parse_key_record, parse_tag_list
from exporter.config import Config, DomainConfig
from exporter.dns import Outcome
from tests.fakes import FakeResolver

# RFC 6376 App. C (1024 bits) and dkimpy's test key (512 bits): public sample keys.
KEY_1024 = (
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYtIxN2SnFCjx"
    "OCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6m"
    "cwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB"
)
KEY_512 = (
    "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBANmBe10IgY+u7h3enWTukkqtUD5PR52Tb/mPfjC0QJTocVBq6Za/PlzfV+P"
    "y92VaCak19F4WrbVTK5Gg5tW220MCAwEAAQ=="
)
DOMAIN = "example.com"


@cache
def rsa_key(bits: int = 2048, fmt: str = "spki", n: int = 0) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    form = (serialization.PublicFormat.SubjectPublicKeyInfo if fmt == "spki"
            else serialization.PublicFormat.PKCS1)
    return base64.b64encode(key.public_bytes(serialization.Encoding.DER, form)).decode()


def ed_key() -> str:
    raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw).decode()


def ctx(resolver: FakeResolver) -> CheckContext:
    return CheckContext(resolver=resolver, config=Config(), log=logging.getLogger("test"))


def target(*selectors: str) -> Target:
    return Target("dkim", DOMAIN, (("selectors", selectors),))


def values(findings: Findings) -> dict[tuple[str, str], float]:
    return {(s.metric, dict(s.labels)["selector"]): s.value for s in findings.samples}


async def run(data: dict[tuple[str, str], object], *selectors: str) -> Findings:
    resolver = FakeResolver(data)  # type: ignore[arg-type]
    return await DkimCheck().run(target(*selectors), ctx(resolver))


# --- targets ---------------------------------------------------------------


def test_domain_without_selectors_gets_no_target() -> None:
    config = Config(domains=(DomainConfig("a.example"), DomainConfig("b.example", ("s1", "s2"))))
    targets = DkimCheck().targets(config)
    assert targets == [Target("dkim", "b.example", (("selectors", ("s1", "s2")),))]


def test_interval_comes_from_dkim_config() -> None:
    assert DkimCheck().interval(Config()) == Config().dkim.interval


# --- the check -------------------------------------------------------------


async def test_strong_rsa_key_is_valid_with_its_size() -> None:
    f = await run({("s1._domainkey.example.com", "TXT"): f"v=DKIM1; k=rsa; p={rsa_key()}"}, "s1")
    assert values(f) == {(KEY_VALID, "s1"): 1, (KEY_BITS, "s1"): 2048, (TESTING, "s1"): 0}
    assert not f.errors
    assert [x.status for x in f.findings] == [Status.PASS]


async def test_selector_lookup_goes_through_the_resolver_at_the_selector_name() -> None:
    resolver = FakeResolver({})
    await DkimCheck().run(target("google", "s1.eu"), ctx(resolver))
    assert sorted(resolver.asked) == [("google._domainkey.example.com", "TXT"),
                                      ("s1.eu._domainkey.example.com", "TXT")]


@pytest.mark.parametrize("outcome", [Outcome.NXDOMAIN, Outcome.NODATA])
async def test_missing_key_is_invalid_and_has_no_bits(outcome: Outcome) -> None:
    data: dict[tuple[str, str], object] = {}
    if outcome is Outcome.NODATA:
        data[("s1._domainkey.example.com", "A")] = "192.0.2.1"
    f = await run(data, "s1")
    assert values(f) == {(KEY_VALID, "s1"): 0, (TESTING, "s1"): 0}
    assert not f.errors
    assert f.findings[0].status is Status.FAIL and "no key" in f.findings[0].title


@pytest.mark.parametrize("failure", [Outcome.TIMEOUT, Outcome.SERVFAIL, Outcome.REFUSED])
async def test_unanswered_selector_is_a_run_error_without_samples(failure: Outcome) -> None:
    f = await run({
        ("bad._domainkey.example.com", "TXT"): failure,
        ("good._domainkey.example.com", "TXT"): f"v=DKIM1; p={rsa_key()}",
    }, "bad", "good")
    assert f.errors and "bad._domainkey.example.com" in f.errors[0]
    assert all(sel == "good" for _, sel in values(f))
    assert values(f)[(KEY_VALID, "good")] == 1


async def test_revoked_key_is_invalid_and_has_no_bits() -> None:
    f = await run({("s1._domainkey.example.com", "TXT"): "v=DKIM1; p="}, "s1")
    assert values(f) == {(KEY_VALID, "s1"): 0, (TESTING, "s1"): 0}
    assert "revoked" in f.findings[0].title


async def test_512_bit_key_is_invalid_but_its_size_is_reported() -> None:
    f = await run({("s1._domainkey.example.com", "TXT"): f"k=rsa; p={KEY_512}"}, "s1")
    assert values(f)[(KEY_VALID, "s1")] == 0
    assert values(f)[(KEY_BITS, "s1")] == 512
    assert "2048-bit" in f.findings[0].fix


async def test_1024_bit_key_is_valid_with_a_warning() -> None:
    f = await run({("s1._domainkey.example.com", "TXT"): f"v=DKIM1; p={KEY_1024}"}, "s1")
    assert values(f)[(KEY_VALID, "s1")] == 1
    assert values(f)[(KEY_BITS, "s1")] == 1024
    assert [x.status for x in f.findings] == [Status.WARN, Status.PASS]


async def test_testing_flag_is_reported() -> None:
    f = await run({("s1._domainkey.example.com", "TXT"): f"v=DKIM1; t=y:s; p={rsa_key()}"}, "s1")
    assert values(f)[(TESTING, "s1")] == 1
    assert values(f)[(KEY_VALID, "s1")] == 1
    assert any("t=y" in x.title for x in f.findings)


async def test_two_different_records_are_invalid() -> None:
    f = await run({("s1._domainkey.example.com", "TXT"): [
        f"v=DKIM1; p={rsa_key()}", f"v=DKIM1; p={rsa_key(n=1)}"]}, "s1")
    assert values(f) == {(KEY_VALID, "s1"): 0, (TESTING, "s1"): 0}
    assert "multiple TXT RRs" in f.findings[0].title


async def test_identical_records_count_as_one() -> None:
    verdict = evaluate_selector([f"v=DKIM1; p={rsa_key()}"] * 2)
    assert verdict.valid and verdict.key is not None and verdict.key.bits == 2048


async def test_ed25519_key_is_valid_and_256_bits() -> None:
    f = await run({("s1._domainkey.example.com", "TXT"): f"v=DKIM1; k=ed25519; p={ed_key()}"},
                  "s1")
    assert values(f)[(KEY_VALID, "s1")] == 1
    assert values(f)[(KEY_BITS, "s1")] == 256


# --- the key reader ----------------------------------------------------------


def test_pkcs1_rsa_key_is_accepted_and_named() -> None:
    key = parse_key_record(f"v=DKIM1; p={rsa_key(fmt='pkcs1')}")
    assert key.valid and key.key_format == "pkcs1" and key.bits == 2048


def test_spki_rsa_key_is_named_spki() -> None:
    assert parse_key_record(f"p={rsa_key()}").key_format == "spki"


def test_whitespace_inside_p_is_ignored() -> None:
    k = rsa_key()
    key = parse_key_record(f"v=DKIM1; p={k[:40]} {k[40:80]}\t{k[80:]}")
    assert key.valid and key.bits == 2048


@pytest.mark.parametrize(("record", "problem"), [
    ("p={k}; v=DKIM1", "must be the first tag"),
    ("v=DKIM2; p={k}", "incompatible version"),
    ("v=DKIM1; h=sha1; p={k}", "sha1 must not be used"),
    ("v=DKIM1; k=dsa; p={k}", "unsupported key type"),
    ("v=DKIM1; p=!!!notbase64", "not valid base64"),
    ("v=DKIM1; k=ed25519; p={k}", "must be 32 bytes"),
    ("v=DKIM1; k=rsa", "missing p="),
    ("v=DKIM1; p={k}; p={k}", "duplicate tag"),
    ("v=DKIM1; s=tlsrpt; p={k}", "excludes email"),
    ("v=DKIM1; p=AAAA", "not an RSA public key"),
])
def test_unusable_key_records(record: str, problem: str) -> None:
    key = parse_key_record(record.format(k=rsa_key()))
    assert not key.valid
    assert any(problem in p for p in key.problems), key.problems


def test_h_with_sha256_and_service_star_are_fine() -> None:
    key = parse_key_record(f"v=DKIM1; h=sha1:sha256; s=*; p={rsa_key()}")
    assert key.valid and not key.problems


def test_ed25519_in_spki_form_is_not_an_rsa_key() -> None:
    spki = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = parse_key_record(f"p={base64.b64encode(spki).decode()}")
    assert not key.valid and key.bits is None


def test_tag_list_allows_trailing_semicolon_and_spaces() -> None:
    tags, problems = parse_tag_list(" v = DKIM1 ; p = abc ; ")
    assert tags == [("v", "DKIM1"), ("p", "abc")] and problems == []


async def test_sha1_only_key_gets_the_h_fix_not_a_new_key() -> None:
    f = await run({("s1._domainkey.example.com", "TXT"): f"v=DKIM1; h=sha1; p={rsa_key()}"}, "s1")
    assert values(f)[(KEY_VALID, "s1")] == 0
    assert values(f)[(KEY_BITS, "s1")] == 2048
    assert "Remove h=" in f.findings[0].fix
