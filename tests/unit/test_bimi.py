"""BIMI: the record, https URLs, declination, and the DMARC prerequisite."""

from __future__ import annotations

import pytest

from exporter.checks.bimi import BimiCheck, parse_bimi
from exporter.dns import Outcome
from tests.fakes import FakeResolver
from tests.unit.helpers import context, run, target_for, value

D = "mail.example.com"
BIMI = f"default._bimi.{D}"
GOOD = "v=BIMI1; l=https://example.com/logo.svg; a=https://example.com/vmc.pem"


async def bimi_valid(data: dict[tuple[str, str], object]) -> tuple[bool, float | None]:
    res = FakeResolver(data)  # type: ignore[arg-type]
    ctx = context(res, f"domains: [{D}]\n")
    check = BimiCheck()
    result = await run(check, target_for(check, ctx.config, D), ctx)
    return result.success, value(result, "deliverability_bimi_valid", domain=D)


def test_logo_and_authority_must_be_https() -> None:
    assert parse_bimi(GOOD).logo == "https://example.com/logo.svg"
    for bad in ("v=BIMI1; l=http://example.com/logo.svg", "v=BIMI1; l=https://x/; a=ftp://y/",
                "v=BIMI1; a=https://x/vmc.pem", "l=https://x/; v=BIMI1"):
        with pytest.raises(ValueError):
            parse_bimi(bad)
    assert parse_bimi("v=BIMI1; l=; a=").declined


@pytest.mark.parametrize("dmarc, expected", [
    ("v=DMARC1; p=reject", 1),
    ("v=DMARC1; p=quarantine; pct=100", 1),
    ("v=DMARC1; p=quarantine; pct=50", 0),
    ("v=DMARC1; p=none", 0),
])
async def test_dmarc_policy_is_a_prerequisite(dmarc: str, expected: int) -> None:
    assert await bimi_valid({(BIMI, "TXT"): GOOD, (f"_dmarc.{D}", "TXT"): dmarc}) == (
        True, expected)


async def test_dmarc_inherited_from_the_parent_uses_sp() -> None:
    base = {(BIMI, "TXT"): GOOD, (D, "A"): "192.0.2.1"}
    assert await bimi_valid({**base, ("_dmarc.example.com", "TXT"):
                             "v=DMARC1; p=reject; sp=none"}) == (True, 0)
    assert await bimi_valid({**base, ("_dmarc.example.com", "TXT"):
                             "v=DMARC1; p=reject"}) == (True, 1)


async def test_no_dmarc_at_all_is_invalid() -> None:
    assert await bimi_valid({(BIMI, "TXT"): GOOD, (D, "A"): "192.0.2.1"}) == (True, 0)


async def test_declination_reads_zero() -> None:
    assert await bimi_valid({(BIMI, "TXT"): "v=BIMI1; l=; a=",
                             (f"_dmarc.{D}", "TXT"): "v=DMARC1; p=reject"}) == (True, 0)


async def test_no_record_reads_zero() -> None:
    assert await bimi_valid({(D, "A"): "192.0.2.1"}) == (True, 0)


async def test_dmarc_timeout_fails_the_run() -> None:
    assert await bimi_valid({(BIMI, "TXT"): GOOD,
                             (f"_dmarc.{D}", "TXT"): Outcome.TIMEOUT}) == (False, None)


async def test_bimi_servfail_fails_the_run() -> None:
    assert await bimi_valid({(BIMI, "TXT"): Outcome.SERVFAIL}) == (False, None)
