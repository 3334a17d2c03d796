"""DNSSEC: the AD bit on the domain's answers, and SERVFAIL reported honestly."""

from __future__ import annotations

from exporter.checks.dnssec import DnssecCheck
from exporter.dns import Outcome
from tests.fakes import FakeResolver
from tests.unit.helpers import context, run, target_for, value

D = "example.com"
DATA = {(D, "SOA"): "ns.example.com. host.example.com. 1 3600 600 86400 300",
        (D, "MX"): "10 mx.example.com"}


async def result_for(res: FakeResolver):  # type: ignore[no-untyped-def]
    ctx = context(res, f"domains: [{D}]\n")
    check = DnssecCheck()
    return await run(check, target_for(check, ctx.config, D), ctx)


async def test_authenticated_answers_are_valid() -> None:
    result = await result_for(FakeResolver(DATA, authenticated=True))
    assert result.success
    assert value(result, "deliverability_dnssec_valid", domain=D) == 1


async def test_unsigned_answers_are_not_valid() -> None:
    result = await result_for(FakeResolver(DATA, authenticated=False))
    assert result.success
    assert value(result, "deliverability_dnssec_valid", domain=D) == 0


async def test_authenticated_nodata_counts_as_validated() -> None:
    # A domain with no MX: the NSEC proof of NODATA is authenticated too.
    result = await result_for(FakeResolver({(D, "SOA"): DATA[(D, "SOA")]}, authenticated=True))
    assert value(result, "deliverability_dnssec_valid", domain=D) == 1


async def test_servfail_fails_the_run_with_a_bogus_finding_and_no_sample() -> None:
    res = FakeResolver(DATA, authenticated=True)
    res.set(D, "SOA", Outcome.SERVFAIL)
    result = await result_for(res)
    assert not result.success
    assert value(result, "deliverability_dnssec_valid", domain=D) is None
    assert any("bogus" in f.title for f in result.findings)


async def test_timeout_fails_the_run_without_claiming_bogus() -> None:
    res = FakeResolver(DATA, authenticated=True)
    res.set(D, "MX", Outcome.TIMEOUT)
    result = await result_for(res)
    assert not result.success
    assert result.samples == ()
    assert not any("bogus" in f.title for f in result.findings)
