"""MTA-STS: record and policy parsing, MX matching, and the check against a local HTTPS server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.checks.mta_sts import MtaStsCheck, mx_matches, parse_policy, parse_record
from exporter.dns import Outcome
from tests.fakes import FakeResolver
from tests.integration.https_server import HttpsServer, Response, policy
from tests.integration.pki import TestCA
from tests.unit.helpers import context, run, target_for, value

D = "example.com"
HOST = f"mta-sts.{D}"
PATH = "/.well-known/mta-sts.txt"


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture
def https(ca: TestCA, tmp_path: Path) -> Iterator[HttpsServer]:
    server = HttpsServer("127.0.0.1", 0, tmp_path)
    server.host(HOST, ca.issue(HOST))
    server.start()
    yield server
    server.stop()


def resolver(**extra: object) -> FakeResolver:
    data: dict[tuple[str, str], object] = {
        (f"_mta-sts.{D}", "TXT"): "v=STSv1; id=20260101",
        (HOST, "A"): "127.0.0.1",
        (D, "MX"): ["10 mx1.example.com", "20 mx2.example.com"],
    }
    for k, v in extra.items():
        name, rdtype = k.rsplit("__", 1)
        data[(name.replace("_", "."), rdtype)] = v
    return FakeResolver(data)  # type: ignore[arg-type]


def cfg(ca: TestCA, tmp_path: Path, port: int) -> str:
    return (f"mta_sts: {{port: {port}, timeout: 3s}}\ntls: {{ca_file: "
            f"{ca.write(tmp_path / 'ca.pem')}}}\ndomains: [{D}]\n")


async def check(res: FakeResolver, ca: TestCA, tmp_path: Path, port: int) -> tuple[
        float | None, float | None, list[str]]:
    ctx = context(res, cfg(ca, tmp_path, port))
    c = MtaStsCheck()
    result = await run(c, target_for(c, ctx.config, D), ctx)
    if not result.success:
        return None, None, list(result.errors)
    return (value(result, "deliverability_mta_sts_mode", domain=D),
            value(result, "deliverability_mta_sts_valid", domain=D),
            [f"{f.title}: {f.evidence}" for f in result.findings])


def test_record_needs_version_first_and_a_valid_id() -> None:
    assert parse_record("v=STSv1; id=20260101T1").id == "20260101T1"
    with pytest.raises(ValueError):
        parse_record("id=1; v=STSv1")
    with pytest.raises(ValueError):
        parse_record("v=STSv1; id=not-alnum!")
    with pytest.raises(ValueError):
        parse_record("v=STSv1")


def test_policy_parses_crlf_and_lf_and_rejects_bad_max_age() -> None:
    p = parse_policy("version: STSv1\r\nmode: enforce\r\nmx: *.example.com\nmax_age: 86400\n")
    assert p.policy is not None
    assert (p.policy.mode, p.policy.max_age, p.policy.mx) == ("enforce", 86400,
                                                             ("*.example.com",))
    assert parse_policy("version: STSv1\nmode: enforce\nmx: a\nmax_age: 31557601\n").policy is None
    assert parse_policy("version: STSv1\nmode: enforce\nmax_age: 86400\n").policy is None
    assert parse_policy("version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n").policy is None
    # mode none needs no mx lines.
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 86400\n").policy is not None


def test_wildcard_matches_exactly_one_label() -> None:
    assert mx_matches("*.example.com", "mx1.example.com")
    assert not mx_matches("*.example.com", "a.b.example.com")
    assert not mx_matches("*.example.com", "example.com")
    assert mx_matches("MX1.example.com.", "mx1.example.com")


async def test_enforce_policy_covering_every_mx_is_valid(
    https: HttpsServer, ca: TestCA, tmp_path: Path
) -> None:
    https.route(HOST, PATH, policy("enforce", "*.example.com"))
    mode, valid, _ = await check(resolver(), ca, tmp_path, https.port)
    assert (mode, valid) == (2, 1)
    assert https.requests == [(HOST, PATH)]


async def test_policy_missing_an_mx_is_invalid_but_keeps_its_mode(
    https: HttpsServer, ca: TestCA, tmp_path: Path
) -> None:
    https.route(HOST, PATH, policy("testing", "mx1.example.com"))
    mode, valid, notes = await check(resolver(), ca, tmp_path, https.port)
    assert (mode, valid) == (1, 0)
    assert any("mx2.example.com" in n for n in notes)


async def test_no_record_is_no_policy_and_fetches_nothing(
    https: HttpsServer, ca: TestCA, tmp_path: Path
) -> None:
    res = resolver()
    res.data.pop((f"_mta-sts.{D}", "TXT"))
    mode, valid, _ = await check(res, ca, tmp_path, https.port)
    assert (mode, valid) == (-1, 0)
    assert https.requests == []


async def test_dns_timeout_on_the_record_fails_the_run(
    https: HttpsServer, ca: TestCA, tmp_path: Path
) -> None:
    res = resolver()
    res.set(f"_mta-sts.{D}", "TXT", Outcome.TIMEOUT)
    mode, valid, errors = await check(res, ca, tmp_path, https.port)
    assert mode is None and valid is None and errors


async def test_two_records_mean_no_policy(https: HttpsServer, ca: TestCA, tmp_path: Path) -> None:
    res = resolver()
    res.set(f"_mta-sts.{D}", "TXT", ["v=STSv1; id=1", "v=STSv1; id=2"])
    https.route(HOST, PATH, policy("enforce", "*.example.com"))
    assert (await check(res, ca, tmp_path, https.port))[:2] == (-1, 0)


@pytest.mark.parametrize(
    "response, reason",
    [
        (Response(301, b"", headers={"Location": "https://elsewhere/"}), "redirect"),
        (Response(404, b"nope"), "404"),
        (Response(200, b"version: STSv1\nmode: enforce\nmx: *.example.com\nmax_age: 1\n",
                  content_type="text/html"), "Content-Type"),
        (Response(200, b"x" * (65 * 1024)), "larger"),
    ],
)
async def test_bad_http_answers_are_invalid(
    https: HttpsServer, ca: TestCA, tmp_path: Path, response: Response, reason: str
) -> None:
    https.route(HOST, PATH, response)
    mode, valid, notes = await check(resolver(), ca, tmp_path, https.port)
    assert (mode, valid) == (-1, 0)
    assert any(reason in n for n in notes), notes


async def test_untrusted_certificate_is_invalid(tmp_path: Path) -> None:
    trusted, other = TestCA(), TestCA("Untrusted CA")
    server = HttpsServer("127.0.0.1", 0, tmp_path)
    server.host(HOST, other.issue(HOST))
    server.route(HOST, PATH, policy("enforce", "*.example.com"))
    server.start()
    try:
        mode, valid, notes = await check(resolver(), trusted, tmp_path, server.port)
    finally:
        server.stop()
    assert (mode, valid) == (-1, 0)
    assert any("certificate" in n for n in notes), notes
