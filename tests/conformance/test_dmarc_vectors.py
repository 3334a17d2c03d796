"""The shared DMARC record vectors (dmarc-record-vectors.yml), under both rule sets.

The path comes from ``DMARC_VECTORS`` (CI sets it). Each vector gives a
verdict per RFC: ``valid``, ``invalid`` (not a policy: ignored), ``error:<codes>``
or ``warn:<codes>``, with free-text commentary in a trailing " (...)". The
codes are the parser's ``Problem.code`` values. A vector with no verdict for
one RFC is checked only under the other. The Mail::DMARC value lists are
checked tag by tag under the RFCs that define the tag, and the Internet.nl
scoring vectors through the policy a receiver applies.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from exporter.checks.dmarc_record import (
    NO_POLICY,
    DmarcRecord,
    Policy,
    Rfc,
    parse_dmarc,
    policy_record,
)
from tests.conformance.vectors import load_vectors, needs

EXPECTED_VECTORS = 43
_COMMENT = re.compile(r"\s+\([^()]*\)$")


VECTORS = load_vectors("DMARC_VECTORS")
needs_vectors = needs("DMARC_VECTORS", "DMARC", "dmarc-record-vectors.yml")

#: Tags that exist only under one rule set (historic in RFC 9989, or new in it).
_TAG_RFCS = {
    "pct": (Rfc.RFC7489,), "rf": (Rfc.RFC7489,), "ri": (Rfc.RFC7489,),
    "psd": (Rfc.RFC9989,), "t": (Rfc.RFC9989,),
}


def _verdict(text: str) -> tuple[str, list[str]]:
    """``"warn:a,b (note)"`` → ("warn", ["a", "b"])."""
    text = _COMMENT.sub("", str(text).strip())
    kind, _, codes = text.partition(":")
    return kind.strip(), [c.strip() for c in codes.split(",") if c.strip()]


def _codes(problems: tuple[Any, ...]) -> list[str]:
    return [p.code for p in problems]


def _check_verdict(vector: dict[str, Any], rfc: Rfc) -> None:
    kind, codes = _verdict(vector[rfc.value])
    if "multiple" in vector:
        record = policy_record(vector["multiple"], rfc)
        assert kind == "invalid"
        assert record is None, "several DMARC records must all be discarded"
        return
    record = parse_dmarc(vector["record"], rfc)
    if kind == "invalid":
        assert not record.is_dmarc
        assert policy_record([vector["record"]], rfc) is None
        assert record.applied_policy() == NO_POLICY
    elif kind == "valid":
        assert record.is_dmarc and not record.errors, record.errors
        assert record.applied_policy() != NO_POLICY
    elif kind == "warn":
        assert record.is_dmarc and not record.errors, record.errors
        for code in codes:
            assert code in _codes(record.warnings), record.warnings
        assert record.applied_policy() != NO_POLICY
    elif kind == "error":
        assert record.is_dmarc
        for code in codes:
            assert code in _codes(record.errors), record.errors
    else:
        pytest.fail(f"unknown verdict {vector[rfc.value]!r}")


def _check_values(tag: str, value: object, rfc: Rfc, good: bool) -> None:
    text = str(value)
    if tag == "v":
        record = parse_dmarc(f"v={text}; p=none", rfc)
        assert record.is_dmarc is good
        return
    line = f"v=DMARC1; p={text}" if tag == "p" else f"v=DMARC1; p=none; {tag}={text}"
    record = parse_dmarc(line, rfc)
    assert record.is_dmarc
    if good:
        assert not record.errors, (line, rfc, record.errors)
        assert record.applied_policy() != NO_POLICY
    else:
        flagged = [p for p in (*record.errors, *record.warnings) if p.tag == tag]
        assert flagged, (line, rfc, "bad value not flagged")


def _internet_nl(record: DmarcRecord) -> str:
    """Internet.nl's mail-test score: enforcing for the domain and its subdomains."""
    if not record.valid:
        return "parse error"
    enforcing = min(record.applied_policy(), record.applied_policy(subdomain=True))
    return "sufficient" if enforcing >= Policy.QUARANTINE else "partial"


@needs_vectors
def test_vector_file_has_the_expected_number_of_vectors() -> None:
    assert len(VECTORS) == EXPECTED_VECTORS


@needs_vectors
@pytest.mark.parametrize(
    "vector", VECTORS, ids=[f"{i:02d}-{v['src']}" for i, v in enumerate(VECTORS)]
)
def test_record_vector(vector: dict[str, Any]) -> None:
    checked = 0
    for rfc in Rfc:
        if rfc.value in vector:
            _check_verdict(vector, rfc)
            checked += 1
            if "effective" in vector:
                eff = parse_dmarc(vector["record"], rfc).effective()
                for k, v in vector["effective"].items():
                    assert eff.get(k) == v, (rfc, eff)
    if "effective9989" in vector:
        eff = parse_dmarc(vector["record"], Rfc.RFC9989).effective()
        for k, v in vector["effective9989"].items():
            assert eff.get(k) == v, eff
        checked += 1
    for key, good in (("good_values", True), ("bad_values", False)):
        for tag, values in vector.get(key, {}).items():
            for value in values:
                for rfc in _TAG_RFCS.get(tag, tuple(Rfc)):
                    _check_values(tag, value, rfc, good)
                    checked += 1
    if "internet_nl" in vector:
        expected = _COMMENT.sub("", str(vector["internet_nl"])).split()[0]
        if expected == "parse":
            expected = "parse error"
        assert _internet_nl(parse_dmarc(vector["record"], Rfc.RFC9989)) == expected
        checked += 1
    assert checked, "vector has nothing this test knows how to check"
