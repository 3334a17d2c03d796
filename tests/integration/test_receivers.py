"""Postmaster Tools and SNDS against a local HTTPS server that speaks their formats.

The server runs on 127.0.0.1 with a certificate from a throwaway CA for the
name ``receivers.test``; the checks find it through the project's resolver
(a fake one that maps the name to 127.0.0.1), verify it against
``tls.ca_file``, and get the fixtures in tests/fixtures back. Nothing here
reaches Google or Microsoft.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from exporter.checks.base import CheckContext, Result
from exporter.checks.postmaster import PostmasterCheck
from exporter.checks.snds import SndsCheck
from exporter.config import Config, parse_config_text
from exporter.dns import Outcome
from exporter.http_client import ProjectResolver
from exporter.scheduler import run_once
from tests.fakes import FakeResolver
from tests.integration.pki import TestCA

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HOST = "receivers.test"
SNDS_KEY = "11111111-2222-3333-4444-555555555555"
# 2026-12-01 12:00 UTC: the fixtures' newest day (11-29) is inside the window.
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()
DOMAIN_MODES = {
    "example.org": "data", "user.example.org": "data", "empty.example.org": "empty",
    "denied.example.org": "403", "quota.example.org": "429", "broken.example.org": "500",
    "revoked.example.org": "401", "paged.example.org": "paged",
}


def _fixture(path: str) -> bytes:
    return (FIXTURES / path).read_bytes()


def _b64d(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@dataclass
class FakeApis:
    """The state behind the fake Google and Microsoft endpoints."""

    sa_key: rsa.RSAPrivateKey
    token_url: str = ""
    issued: list[str] = field(default_factory=list)
    token_grants: list[str] = field(default_factory=list)
    queries: list[dict[str, object]] = field(default_factory=list)
    snds_requests: list[dict[str, str]] = field(default_factory=list)
    refuse_tokens: bool = False
    snds_latest: str = "snds/data.csv"
    snds_by_date: dict[str, str] = field(default_factory=dict)
    snds_html: bool = False

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = str(form.get("grant_type"))
        self.token_grants.append(grant)
        if self.refuse_tokens:
            return web.Response(status=400, content_type="application/json",
                                body=_fixture("postmaster/token_error_invalid_grant.json"))
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            head, claims, sig = str(form["assertion"]).split(".")
            # Verify like Google does: signature by the account's key, audience = this URL.
            self.sa_key.public_key().verify(_b64d(sig), f"{head}.{claims}".encode(),
                                            padding.PKCS1v15(), hashes.SHA256())
            body = json.loads(_b64d(claims))
            assert body["aud"] == self.token_url
            assert body["scope"] == "https://www.googleapis.com/auth/postmaster.traffic.readonly"
        elif grant == "refresh_token":
            assert (form["client_id"], form["client_secret"], form["refresh_token"]) == (
                "cid.apps.googleusercontent.com", "client-s3cret", "refresh-s3cret")
        else:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        token = f"ya29.test-token-{len(self.issued) + 1}"
        self.issued.append(token)
        return web.json_response({"access_token": token, "expires_in": 3599,
                                  "token_type": "Bearer"})

    def _authorised(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and auth[7:] in self.issued

    @staticmethod
    def _error(code: int) -> web.Response:
        return web.Response(status=code, content_type="application/json",
                            body=_fixture(f"postmaster/error_{code}.json"))

    async def domain_stats(self, request: web.Request) -> web.Response:
        domain = request.match_info["domain"]
        mode = DOMAIN_MODES.get(domain, "404")
        if mode == "401" or not self._authorised(request):
            return self._error(401)
        if mode in ("403", "429", "500"):
            return self._error(int(mode))
        if mode == "404":
            return web.json_response({"error": {"code": 404, "message": "Not found",
                                                "status": "NOT_FOUND"}}, status=404)
        body = await request.json()
        self.queries.append(body)
        if mode == "paged":
            # The fixture split over two pages, the second asked for by its token.
            stats = json.loads(_fixture("postmaster/domain_stats.json"))["domainStats"]
            if body.get("pageToken") == "page-2":
                return web.json_response({"domainStats": stats[4:]})
            return web.json_response({"domainStats": stats[:4], "nextPageToken": "page-2"})
        name = "domain_stats.json" if mode == "data" else "domain_stats_empty.json"
        return web.Response(content_type="application/json", body=_fixture(f"postmaster/{name}"))

    async def compliance(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error(401)
        return web.Response(content_type="application/json",
                            body=_fixture("postmaster/compliance_status.json"))

    async def snds_data(self, request: web.Request) -> web.Response:
        self.snds_requests.append(dict(request.query))
        if request.query.get("key") != SNDS_KEY:
            return web.Response(status=403, text="Access denied")
        if self.snds_html:
            return web.Response(content_type="text/html", body=_fixture("snds/data_bad_key.html"))
        day = request.query.get("date")
        path = self.snds_by_date.get(day, "snds/data_empty.csv") if day else self.snds_latest
        return web.Response(content_type="text/csv", body=_fixture(path))

    async def snds_status(self, request: web.Request) -> web.Response:
        if request.query.get("key") != SNDS_KEY:
            return web.Response(status=403, text="Access denied")
        return web.Response(content_type="text/csv", body=_fixture("snds/ip_status.csv"))


@dataclass
class Env:
    apis: FakeApis
    config: Config
    resolver: FakeResolver
    tmp: Path
    base: str

    def ctx(self, config: Config | None = None, resolver: FakeResolver | None = None
            ) -> CheckContext:
        return CheckContext(resolver=resolver or self.resolver, config=config or self.config,
                            log=logging.getLogger("test.receivers"))


def _write_credentials(tmp: Path, key: rsa.RSAPrivateKey) -> tuple[Path, Path]:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    sa = tmp / "service-account.json"
    sa.write_text(json.dumps({
        "type": "service_account", "project_id": "proj", "private_key_id": "abc123",
        "private_key": pem, "client_email": "exporter@proj.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token",
    }))
    user = tmp / "authorized-user.json"
    user.write_text(json.dumps({
        "type": "authorized_user", "client_id": "cid.apps.googleusercontent.com",
        "client_secret": "client-s3cret", "refresh_token": "refresh-s3cret",
    }))
    return sa, user


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    ca = TestCA()
    ca_file = ca.write(tmp_path / "ca.pem")
    chain, keyfile = ca.issue(HOST).write(tmp_path, "server")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(chain, keyfile)

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    apis = FakeApis(sa_key)
    app = web.Application()
    app.router.add_post("/token", apis.token)
    app.router.add_post("/v2/domains/{domain}/domainStats:query", apis.domain_stats)
    app.router.add_get("/v2/domains/{domain}/complianceStatus", apis.compliance)
    app.router.add_get("/snds/data.aspx", apis.snds_data)
    app.router.add_get("/snds/ipStatus.aspx", apis.snds_status)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    base = f"https://{HOST}:{port}"
    apis.token_url = f"{base}/token"

    sa, user = _write_credentials(tmp_path, sa_key)
    snds_key = tmp_path / "snds.key"
    snds_key.write_text(SNDS_KEY + "\n")
    domains = "\n".join(
        f"  - name: {d}\n"
        f"    postmaster: {{credentials_file: {user if d.startswith('user.') else sa}}}"
        for d in DOMAIN_MODES
    )
    config = parse_config_text(
        f"tls: {{ca_file: {ca_file}}}\n"
        f"postmaster: {{base_url: '{base}', token_url: '{base}/token'}}\n"
        f"snds: {{key_file: {snds_key}, base_url: '{base}/snds'}}\n"
        f"senders: [192.0.2.10, 192.0.2.11, 192.0.2.12, 192.0.2.33, 192.0.2.50]\n"
        f"domains:\n{domains}\n"
    )
    resolver = FakeResolver({(HOST, "A"): "127.0.0.1"})
    try:
        yield Env(apis, config, resolver, tmp_path, base)
    finally:
        await runner.cleanup()


def _value(result: Result, metric: str, **labels: str) -> float | None:
    want = tuple(sorted(labels.items()))
    return next((s.value for s in result.samples if s.metric == metric and s.labels == want),
                None)


async def _run_postmaster(env: Env, check: PostmasterCheck, domain: str,
                          ctx: CheckContext | None = None) -> Result:
    target = next(t for t in check.targets(env.config) if t.key == domain)
    return await run_once(check, target, ctx or env.ctx(), timeout=20)


def _no_secrets(result: Result, *secrets: str) -> None:
    text = " ".join([*result.errors, *(f"{x.title} {x.evidence} {x.fix}" for x in result.findings)])
    for secret in secrets:
        assert secret not in text


# --- Postmaster Tools ------------------------------------------------------------


async def test_service_account_run_exports_the_newest_day(env: Env) -> None:
    check = PostmasterCheck(clock=lambda: NOW)
    result = await _run_postmaster(env, check, "example.org")
    assert result.success, result.errors
    assert _value(result, "deliverability_gmail_spam_rate_ratio", domain="example.org") == \
        pytest.approx(0.0021)
    assert _value(result, "deliverability_gmail_data_date_timestamp_seconds",
                  domain="example.org") == datetime(2026, 11, 29, tzinfo=UTC).timestamp()
    assert _value(result, "deliverability_gmail_auth_success_ratio", domain="example.org",
                  method="dkim") == pytest.approx(0.97)
    assert _value(result, "deliverability_gmail_requirement_compliant", domain="example.org",
                  requirement="DMARC_ALIGNMENT") == 0.0
    assert env.apis.token_grants == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    [query] = env.apis.queries
    assert query["aggregationGranularity"] == "DAILY"
    assert query["timeQuery"] == {"dateRanges": {"dateRanges": [{
        "start": {"year": 2026, "month": 11, "day": 24},
        "end": {"year": 2026, "month": 12, "day": 1}}]}}


async def test_token_is_reused_until_it_expires(env: Env) -> None:
    now = [NOW]
    check = PostmasterCheck(clock=lambda: now[0])
    assert (await _run_postmaster(env, check, "example.org")).success
    assert (await _run_postmaster(env, check, "empty.example.org")).success  # same file
    assert len(env.apis.issued) == 1
    now[0] += 3600  # past expires_in
    assert (await _run_postmaster(env, check, "example.org")).success
    assert len(env.apis.issued) == 2


async def test_authorized_user_refresh_token_works(env: Env) -> None:
    result = await _run_postmaster(env, PostmasterCheck(clock=lambda: NOW), "user.example.org")
    assert result.success, result.errors
    assert env.apis.token_grants == ["refresh_token"]
    assert _value(result, "deliverability_gmail_encryption_ratio",
                  domain="user.example.org") == 1.0
    _no_secrets(result, "client-s3cret", "refresh-s3cret")


async def test_result_pages_are_followed_and_merged(env: Env) -> None:
    result = await _run_postmaster(env, PostmasterCheck(clock=lambda: NOW), "paged.example.org")
    assert result.success, result.errors
    assert [q.get("pageToken") for q in env.apis.queries] == [None, "page-2"]
    # spam_rate of 11-29 is on page 1, the delivery errors on page 2.
    assert _value(result, "deliverability_gmail_spam_rate_ratio", domain="paged.example.org") == \
        pytest.approx(0.0021)
    assert _value(result, "deliverability_gmail_delivery_error_ratio", domain="paged.example.org",
                  error_type="reject", error_reason="low_domain_reputation") == \
        pytest.approx(0.004)


async def test_empty_window_succeeds_without_samples(env: Env) -> None:
    result = await _run_postmaster(env, PostmasterCheck(clock=lambda: NOW), "empty.example.org")
    assert result.success, result.errors
    compliance = "deliverability_gmail_requirement_compliant"
    assert not [s for s in result.samples if s.metric != compliance]
    assert any("No Gmail statistics" in x.title for x in result.findings)


@pytest.mark.parametrize(("domain", "needle"), [
    ("denied.example.org", "HTTP 403 PERMISSION_DENIED"),
    ("quota.example.org", "HTTP 429 RESOURCE_EXHAUSTED"),
    ("broken.example.org", "HTTP 500 INTERNAL"),
])
async def test_api_errors_fail_the_run_with_the_reason(env: Env, domain: str, needle: str) -> None:
    result = await _run_postmaster(env, PostmasterCheck(clock=lambda: NOW), domain)
    assert not result.success
    assert result.samples == ()
    assert any(needle in e for e in result.errors), result.errors
    _no_secrets(result, *env.apis.issued)


async def test_refused_token_is_fetched_once_more_then_reported(env: Env) -> None:
    result = await _run_postmaster(env, PostmasterCheck(clock=lambda: NOW), "revoked.example.org")
    assert not result.success
    assert any("HTTP 401 UNAUTHENTICATED" in e for e in result.errors)
    assert len(env.apis.issued) == 2  # dropped the refused token and tried a fresh one
    _no_secrets(result, *env.apis.issued)


async def test_token_endpoint_refusal_fails_without_leaking_the_key(env: Env) -> None:
    env.apis.refuse_tokens = True
    result = await _run_postmaster(env, PostmasterCheck(clock=lambda: NOW), "example.org")
    assert not result.success
    assert any("invalid_grant" in e and "service-account.json" in e for e in result.errors)
    _no_secrets(result, "PRIVATE KEY", "client-s3cret")


async def test_certificate_not_from_a_trusted_ca_is_refused(env: Env) -> None:
    untrusted = parse_config_text(
        f"postmaster: {{base_url: '{env.base}', token_url: '{env.base}/token'}}\n"
        f"domains:\n  - name: example.org\n    postmaster: "
        f"{{credentials_file: {env.tmp / 'service-account.json'}}}\n")
    check = PostmasterCheck(clock=lambda: NOW)
    result = await _run_postmaster(env, check, "example.org", env.ctx(config=untrusted))
    assert not result.success
    assert any("TLS failed" in e for e in result.errors), result.errors
    assert env.apis.token_grants == []


async def test_unanswered_dns_fails_the_run_as_a_lookup_failure(env: Env) -> None:
    broken = FakeResolver({(HOST, "A"): Outcome.SERVFAIL})
    check = PostmasterCheck(clock=lambda: NOW)
    result = await _run_postmaster(env, check, "example.org", env.ctx(resolver=broken))
    assert not result.success
    assert result.errors[0].startswith("lookup failed"), result.errors
    assert (HOST, "A") in broken.asked


# --- SNDS -------------------------------------------------------------------------


async def _run_snds(env: Env) -> Result:
    check = SndsCheck(clock=lambda: NOW)
    [target] = check.targets(env.config)
    return await run_once(check, target, env.ctx(), timeout=20)


async def test_snds_exports_configured_ips_from_both_feeds(env: Env) -> None:
    result = await _run_snds(env)
    assert result.success, result.errors
    assert _value(result, "deliverability_snds_filter_result", ip="192.0.2.12") == 2
    assert _value(result, "deliverability_snds_blocked", ip="192.0.2.12") == 1
    assert _value(result, "deliverability_snds_blocked", ip="192.0.2.10") == 0
    assert _value(result, "deliverability_snds_blocked", ip="192.0.2.33") == 1
    assert _value(result, "deliverability_snds_trap_hits", ip="192.0.2.11") == 40
    assert _value(result, "deliverability_snds_complaint_rate_ratio", ip="192.0.2.11") == \
        pytest.approx(0.004)
    assert {dict(s.labels)["ip"] for s in result.samples} == {
        "192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.33"}
    _no_secrets(result, SNDS_KEY)


async def test_snds_empty_latest_day_falls_back_to_the_previous_day(env: Env) -> None:
    env.apis.snds_latest = "snds/data_empty.csv"
    env.apis.snds_by_date = {"112926": "snds/data.csv"}  # 2026-11-29, two days back (PST)
    result = await _run_snds(env)
    assert result.success, result.errors
    assert [r.get("date") for r in env.apis.snds_requests] == [None, "113026", "112926"]
    assert _value(result, "deliverability_snds_filter_result", ip="192.0.2.11") == 1


async def test_snds_no_data_at_all_is_not_an_error_and_not_zero(env: Env) -> None:
    env.apis.snds_latest = "snds/data_empty.csv"
    result = await _run_snds(env)
    assert result.success, result.errors
    assert _value(result, "deliverability_snds_filter_result", ip="192.0.2.10") is None
    # The blocked list still answers for the blocked ranges.
    assert {dict(s.labels)["ip"] for s in result.samples} == {"192.0.2.12", "192.0.2.33"}


@pytest.mark.parametrize("html", [False, True])
async def test_snds_bad_key_fails_without_showing_the_key(env: Env, html: bool) -> None:
    if html:
        env.apis.snds_html = True
    else:
        (env.tmp / "snds.key").write_text("wrong-key\n")
    result = await _run_snds(env)
    assert not result.success and result.samples == ()
    assert any("SNDS data feed" in e for e in result.errors), result.errors
    _no_secrets(result, SNDS_KEY, "wrong-key")


async def test_http_client_resolver_uses_the_project_resolver_for_both_families() -> None:
    resolver = FakeResolver({("dual.test", "A"): "127.0.0.1", ("dual.test", "AAAA"): "::1",
                             ("none.test", "TXT"): "x"})
    pr = ProjectResolver(resolver)
    got = await pr.resolve("dual.test", 443, socket.AF_UNSPEC)
    assert sorted((r["host"], r["family"]) for r in got) == [
        ("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)]
    assert [r["host"] for r in await pr.resolve("127.0.0.1", 443)] == ["127.0.0.1"]
    assert ("127.0.0.1", "A") not in resolver.asked  # a literal is not looked up
    with pytest.raises(OSError):
        await pr.resolve("none.test", 443, socket.AF_UNSPEC)  # NODATA for both: no address
