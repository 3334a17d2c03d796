"""TLS-RPT record validation (RFC 8460)."""

from __future__ import annotations

import pytest

from exporter.checks.tlsrpt import TlsRptCheck, parse_record
from exporter.dns import Outcome
from tests.fakes import FakeResolver
from tests.unit.helpers import context, run, target_for, value

D = "example.com"
Q = f"_smtp._tls.{D}"


async def valid_of(entry: object) -> tuple[bool, float | None]:
    res = FakeResolver({(Q, "TXT"): entry, (D, "A"): "192.0.2.1"})  # type: ignore[dict-item]
    ctx = context(res, f"domains: [{D}]\n")
    check = TlsRptCheck()
    result = await run(check, target_for(check, ctx.config, D), ctx)
    return result.success, value(result, "deliverability_tlsrpt_valid", domain=D)


def test_rua_accepts_mailto_and_https_lists() -> None:
    assert parse_record("v=TLSRPTv1; rua=mailto:tls@example.com,https://r.example.net/v1") == [
        "mailto:tls@example.com", "https://r.example.net/v1"]


@pytest.mark.parametrize("record", [
    "v=TLSRPTv1;",
    "v=TLSRPTv1; rua=http://insecure.example/",
    "v=TLSRPTv1; rua=mailto:not-an-address",
    "v=TLSRPTv1; rua=ftp://x.example/",
    "rua=mailto:a@example.com; v=TLSRPTv1",
])
def test_bad_records_are_refused(record: str) -> None:
    with pytest.raises(ValueError):
        parse_record(record)


async def test_one_valid_record_is_valid() -> None:
    assert await valid_of("v=TLSRPTv1; rua=mailto:tls@example.com") == (True, 1)


async def test_unrelated_txt_records_are_ignored() -> None:
    assert await valid_of(["v=TLSRPTv1; rua=mailto:tls@example.com", "hello"]) == (True, 1)


async def test_two_records_are_invalid() -> None:
    assert await valid_of(["v=TLSRPTv1; rua=mailto:a@example.com",
                           "v=TLSRPTv1; rua=mailto:b@example.com"]) == (True, 0)


async def test_no_record_is_an_answer_valid_zero() -> None:
    res = FakeResolver({(D, "A"): "192.0.2.1"})
    ctx = context(res, f"domains: [{D}]\n")
    check = TlsRptCheck()
    result = await run(check, target_for(check, ctx.config, D), ctx)
    assert result.success and value(result, "deliverability_tlsrpt_valid", domain=D) == 0


@pytest.mark.parametrize("outcome", [Outcome.TIMEOUT, Outcome.SERVFAIL, Outcome.REFUSED])
async def test_unanswered_lookup_fails_without_a_sample(outcome: Outcome) -> None:
    assert await valid_of(outcome) == (False, None)
