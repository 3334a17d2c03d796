"""The shared DKIM key-record vectors (dkim-key-vectors.yml) against our key reader.

The path comes from ``DKIM_VECTORS`` (CI sets it). Placeholders such as
``<valid>`` or ``<a>`` in a vector stand for "a valid RSA key"; each distinct
placeholder gets its own freshly generated 2048-bit key, so two-record
vectors really carry two different keys.
"""

from __future__ import annotations

import base64
import re
from functools import cache
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from exporter.checks.dkim_key import evaluate_selector
from tests.conformance.vectors import load_vectors, needs

EXPECTED_VECTORS = 15
_PLACEHOLDER = re.compile(r"<([^<>]+)>")


VECTORS = load_vectors("DKIM_VECTORS")
needs_vectors = needs("DKIM_VECTORS", "DKIM", "dkim-key-vectors.yml")


@cache
def _generated_key(name: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def _fill(text: str) -> str:
    return _PLACEHOLDER.sub(lambda m: _generated_key(m.group(1)), text)


def _records(vector: dict[str, Any]) -> list[str]:
    if "records" in vector:
        return [_fill(r) for r in vector["records"]]
    if "record_strings" in vector:
        # One RR of several character-strings: the DNS layer joins them with no separator.
        return ["".join(_fill(s) for s in vector["record_strings"])]
    return [_fill(vector["record"])]


@needs_vectors
def test_vector_file_has_the_expected_number_of_vectors() -> None:
    assert len(VECTORS) == EXPECTED_VECTORS


@needs_vectors
@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_key_vector(vector: dict[str, Any]) -> None:
    expect = vector["expect"]
    verdict = evaluate_selector(_records(vector))
    key = verdict.key
    # "unusable" (h=sha1 only) is a key a verifier must not use: not valid.
    assert verdict.valid is (expect["valid"] is True), (verdict.problem, key)
    if "key_type" in expect:
        assert key is not None and key.key_type == expect["key_type"]
    if "format" in expect:
        assert key is not None and key.key_format == expect["format"]
    if "bits" in expect:
        assert key is not None and key.bits == expect["bits"]
    if "raw_len" in expect:
        assert key is not None and key.raw_len == expect["raw_len"]
    if "health" in expect:
        wanted = expect["health"].removeprefix("warn:").strip()
        assert key is not None
        assert any(wanted in w for w in key.warnings), key.warnings
    if expect["valid"] is not True:
        # The reason's leading phrase ("key syntax error", "RFC 8301", ...) must be named.
        phrase = expect["reason"].split(" (")[0].split(":")[0].strip()
        assert phrase.lower() in verdict.problem.lower(), verdict.problem
    else:
        assert verdict.problem == ""
