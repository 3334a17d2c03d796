"""The OpenSPF RFC 7208 test suite (rfc7208-tests.yml) against our check_host().

The path comes from ``RFC7208_SUITE`` (``.ci/run`` sets it). Each scenario's
zone data is served through the project's ``Resolver`` protocol by
:class:`SuiteResolver`, which answers the way :class:`exporter.dns.DnsResolver`
would from a real server holding those zones: records de-duplicated and in
canonical text, CNAME chains followed, a name that cannot be put on the wire
is NXDOMAIN, and ``TIMEOUT`` entries are timeouts (which must give
temperror). The record-list semantics (``NONE``, a bare ``TIMEOUT`` after
the asked type's records, SPF records also answering TXT unless the name has
TXT of its own) follow pyspf's own driver of this suite.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.exception
import dns.name
import pytest
import yaml

from exporter.checks.spf_eval import check_mail
from exporter.dns import Answer, Outcome, normalize_name

EXPECTED_TESTS = 203
SKIP_REASON = (
    "RFC7208_SUITE is not set (point it at rfc7208-tests.yml): "
    "the RFC 7208 conformance suite was NOT run"
)
_REPO = Path(__file__).resolve().parents[2]

#: One zone entry in suite order: (type, value), or ("TIMEOUT", None) for a bare TIMEOUT.
ZoneEntry = tuple[str, Any]


def _txt(value: Any) -> str:
    """A TXT/SPF value as our resolver would decode it from the wire."""
    text = "".join(value) if isinstance(value, list) else str(value)
    try:
        raw = text.encode("latin-1")  # the suite's \xNN escapes stand for octets
    except UnicodeEncodeError:
        raw = text.encode("utf-8")
    return raw.decode("utf-8", "replace")


def _entries(records: list[Any]) -> list[ZoneEntry]:
    entries: list[ZoneEntry] = []
    has_txt = any(isinstance(r, dict) and "TXT" in r for r in records)
    generated: list[ZoneEntry] = []
    for record in records:
        if record == "TIMEOUT":
            entries.append(("TIMEOUT", None))
            continue
        for rtype, value in record.items():
            if rtype == "SPF" and not has_txt and value != "NONE":
                generated.append(("TXT", value))
            if value != "NONE":
                entries.append((rtype, value))
            else:
                entries.append(("EXISTS", None))  # the name exists, without this type
    return entries + generated


class SuiteResolver:
    """Serves one scenario's ``zonedata`` through the ``Resolver`` protocol."""

    def __init__(self, zonedata: dict[str, list[Any]]) -> None:
        self.zones = {normalize_name(name): _entries(recs) for name, recs in zonedata.items()}
        self.asked: list[tuple[str, str]] = []

    async def resolve(self, name: str, rdtype: str) -> Answer:
        qname, qtype = normalize_name(name), rdtype.upper()
        self.asked.append((qname, qtype))
        try:
            dns.name.from_text(qname)
        except (dns.exception.DNSException, ValueError) as exc:
            # What DnsResolver does with a name it cannot put on the wire.
            return Answer(qname, qtype, Outcome.NXDOMAIN, detail=f"invalid name: {exc}")
        current = qname
        for _ in range(8):
            entries = self.zones.get(current)
            if entries is None:
                return Answer(qname, qtype, Outcome.NXDOMAIN, canonical_name=current)
            records: list[str] = []
            seen_type = False
            cname = ""
            for rtype, value in entries:
                if rtype == "TIMEOUT":
                    if not seen_type:
                        return Answer(qname, qtype, Outcome.TIMEOUT, detail="suite TIMEOUT")
                    break
                if rtype == "CNAME":
                    cname = normalize_name(str(value))
                if rtype != qtype:
                    continue
                seen_type = True
                if value == "TIMEOUT":
                    return Answer(qname, qtype, Outcome.TIMEOUT, detail="suite TIMEOUT")
                records.append(_record(qtype, value))
            if records:
                return Answer(
                    qname, qtype, Outcome.OK, tuple(sorted(set(records))), 300,
                    canonical_name=current,
                )
            if cname and qtype != "CNAME":
                current = cname
                continue
            return Answer(qname, qtype, Outcome.NODATA, canonical_name=current)
        # A CNAME loop: a recursive server gives up with SERVFAIL.
        return Answer(qname, qtype, Outcome.SERVFAIL, detail="CNAME loop")


def _record(rtype: str, value: Any) -> str:
    if rtype in ("A", "AAAA"):
        return str(ipaddress.ip_address(str(value)))
    if rtype == "MX":
        pref, host = value
        return f"{int(pref)} {normalize_name(str(host))}"
    if rtype in ("PTR", "CNAME"):
        return normalize_name(str(value))
    return _txt(value)


@dataclass(frozen=True)
class Case:
    id: str
    scenario: str
    zonedata: dict[str, list[Any]]
    helo: str
    host: str
    mailfrom: str
    results: tuple[str, ...]
    explanation: str | None


def _suite_path() -> Path | None:
    value = os.environ.get("RFC7208_SUITE")
    if not value:
        return None
    path = Path(value)
    if not path.is_absolute() and not path.exists():
        path = _REPO / value  # .ci/run gives it relative to the repository
    return path


def _load() -> list[Case]:
    path = _suite_path()
    if path is None:
        return []
    cases: list[Case] = []
    with open(path, encoding="utf-8") as f:
        for doc in yaml.safe_load_all(f):
            if not doc:
                continue
            for test_id, t in doc["tests"].items():
                result = t["result"]
                results = tuple(result) if isinstance(result, list) else (result,)
                cases.append(Case(
                    test_id, doc.get("description", ""), doc["zonedata"],
                    str(t["helo"]), str(t["host"]), str(t["mailfrom"]),
                    results, t.get("explanation"),
                ))
    return cases


CASES = _load()
needs_suite = pytest.mark.skipif(_suite_path() is None, reason=SKIP_REASON)


@needs_suite
def test_suite_is_complete() -> None:
    """A truncated or different suite file must not pass silently."""
    assert len(CASES) == EXPECTED_TESTS
    assert len({c.id for c in CASES}) == EXPECTED_TESTS


@needs_suite
@pytest.mark.parametrize(
    "case",
    CASES or [pytest.param(None, id="suite-not-loaded")],
    ids=lambda c: c.id if isinstance(c, Case) else "suite-not-loaded",
)
async def test_rfc7208(case: Case) -> None:
    resolver = SuiteResolver(case.zonedata)
    verdict = await check_mail(
        resolver, case.host, case.mailfrom, case.helo, default_explanation="DEFAULT"
    )
    assert verdict.result.value in case.results, (
        f"{case.scenario} / {case.id}: got {verdict.result.value} ({verdict.reason}), "
        f"expected {' or '.join(case.results)}"
    )
    if case.explanation is not None:
        assert verdict.explanation == case.explanation
