"""DANE (RFC 7672): TLSA matching and the check against an in-process STARTTLS server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from exporter.checks.dane import (
    DaneCheck,
    Tlsa,
    association_data,
    chain_matches,
    parse_tlsa,
    tlsa_record_for,
)
from exporter.dns import Outcome
from tests.fakes import FakeResolver
from tests.integration.pki import Leaf, TestCA
from tests.unit.helpers import context, run, target_for, value
from tests.unit.smtp_fake import FakeSmtp

MX = "mx.example.com"


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def leaf(ca: TestCA) -> Leaf:
    return ca.issue(MX)


def chain(leaf: Leaf) -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives.serialization import Encoding

    return (leaf.der, leaf.ca.public_bytes(Encoding.DER))


def test_parse_tlsa_reads_the_answer_format() -> None:
    assert parse_tlsa("3 1 1 ABCD") == Tlsa(3, 1, 1, bytes.fromhex("abcd"))
    assert parse_tlsa("3 1 1 zz") is None
    assert parse_tlsa("3 1") is None


@pytest.mark.parametrize("selector, mtype", [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)])
def test_dane_ee_matches_every_selector_and_matching_type(leaf: Leaf, selector: int,
                                                          mtype: int) -> None:
    record = Tlsa(3, selector, mtype, association_data(leaf.der, selector, mtype))
    assert chain_matches(record, chain(leaf), MX, time.time())
    wrong = Tlsa(3, selector, mtype, bytes(len(record.data)))
    assert not chain_matches(wrong, chain(leaf), MX, time.time())


def test_dane_ee_ignores_name_and_expiry(ca: TestCA) -> None:
    expired_other = ca.issue_expired("something.else.example")
    record = tlsa_record_for(expired_other.der)
    assert chain_matches(record, chain(expired_other), MX, time.time())


def test_dane_ta_matches_the_issuer_in_the_chain(ca: TestCA, leaf: Leaf) -> None:
    ca_der = chain(leaf)[1]
    record = Tlsa(2, 0, 1, association_data(ca_der, 0, 1))
    assert chain_matches(record, chain(leaf), MX, time.time())
    # The TA does not vouch for another name, nor for an expired leaf.
    assert not chain_matches(record, chain(leaf), "other.example.com", time.time())
    expired = ca.issue_expired(MX)
    assert not chain_matches(record, chain(expired), MX, time.time())
    # A TA record for the leaf itself is not a trust anchor above it.
    assert not chain_matches(Tlsa(2, 0, 1, association_data(leaf.der, 0, 1)), chain(leaf), MX,
                             time.time())


def test_dane_ta_refuses_a_chain_not_signed_by_the_anchor(ca: TestCA) -> None:
    other = TestCA("Other CA").issue(MX)
    ca_der = chain(ca.issue(MX))[1]
    record = Tlsa(2, 0, 1, association_data(ca_der, 0, 1))
    # Server sends its leaf from another CA but appends our CA certificate.
    assert not chain_matches(record, (other.der, ca_der), MX, time.time())


def test_pkix_usages_are_not_usable_for_smtp(leaf: Leaf) -> None:
    for usage in (0, 1):
        record = Tlsa(usage, 1, 1, association_data(leaf.der, 1, 1))
        assert not record.usable
        assert not chain_matches(record, chain(leaf), MX, time.time())


@pytest.fixture
async def server(leaf: Leaf, tmp_path: Path) -> AsyncIterator[FakeSmtp]:
    s = await FakeSmtp(tmp=tmp_path, leaf=leaf).start()
    yield s
    await s.stop()


async def dane_result(server: FakeSmtp, tlsa: object, authenticated: bool = True):  # type: ignore[no-untyped-def]
    res = FakeResolver({("example.com", "MX"): f"10 {MX}", (MX, "A"): "127.0.0.1",
                        (f"_{server.port}._tcp.{MX}", "TLSA"): tlsa},  # type: ignore[dict-item]
                       authenticated=authenticated)
    ctx = context(res, f"smtp: {{port: {server.port}, timeout: 2s}}\ndomains: [example.com]\n")
    check = DaneCheck()
    return await run(check, target_for(check, ctx.config, "example.com"), ctx)


async def test_validated_matching_tlsa_is_valid(server: FakeSmtp, leaf: Leaf) -> None:
    result = await dane_result(server, str(tlsa_record_for(leaf.der)))
    assert result.success, result.errors
    assert value(result, "deliverability_dane_valid", mx=MX) == 1


async def test_tlsa_for_another_key_is_invalid_and_the_fix_names_the_right_record(
    server: FakeSmtp, leaf: Leaf, ca: TestCA
) -> None:
    result = await dane_result(server, str(tlsa_record_for(ca.issue(MX).der)))
    assert value(result, "deliverability_dane_valid", mx=MX) == 0
    assert any(str(tlsa_record_for(leaf.der)) in f.fix for f in result.findings)


async def test_unvalidated_tlsa_is_invalid_without_connecting(server: FakeSmtp,
                                                             leaf: Leaf) -> None:
    result = await dane_result(server, str(tlsa_record_for(leaf.der)), authenticated=False)
    assert value(result, "deliverability_dane_valid", mx=MX) == 0
    await asyncio.sleep(0)
    assert server.connections == 0


async def test_no_tlsa_is_zero(server: FakeSmtp) -> None:
    result = await dane_result(server, [])
    assert result.success
    assert value(result, "deliverability_dane_valid", mx=MX) == 0


async def test_tlsa_servfail_fails_the_run(server: FakeSmtp) -> None:
    result = await dane_result(server, Outcome.SERVFAIL)
    assert not result.success and result.samples == ()
