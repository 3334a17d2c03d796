"""Gmail Postmaster Tools: request shape, response parsing, what gets exported, auth."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from exporter.checks.base import Findings, Status
from exporter.checks.postmaster import (
    DELIVERY_ERRORS,
    QUERIES,
    ApiError,
    PostmasterCheck,
    _api_error,
    _record_compliance,
    _record_stats,
    parse_compliance,
    parse_domain_stats,
    query_body,
)
from exporter.config import parse_config_text
from exporter.google_auth import (
    JWT_BEARER,
    SCOPE,
    AuthError,
    AuthorizedUser,
    ServiceAccount,
    parse_credentials,
    service_account_assertion,
    token_request_form,
)
from exporter.http_client import HttpResponse

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "postmaster"
TODAY = date(2026, 12, 1)


def fixture(name: str) -> object:
    return json.loads((FIXTURES / name).read_text())


def samples(f: Findings, metric: str) -> dict[frozenset[tuple[str, str]], float]:
    return {frozenset(s.labels): s.value for s in f.samples if s.metric == metric}


def one(f: Findings, metric: str, **labels: str) -> float | None:
    return samples(f, metric).get(frozenset(labels.items()))


# --- the request ------------------------------------------------------------


def test_query_asks_every_exported_metric_daily_over_the_lookback_window() -> None:
    body = query_body(date(2026, 11, 24), TODAY)
    defs = body["metricDefinitions"]
    assert isinstance(defs, list)
    names = [d["name"] for d in defs]
    assert len(names) == len(set(names)) == 1 + 3 + 1 + len(DELIVERY_ERRORS)
    by_name = {d["name"]: d for d in defs}
    assert by_name["spam_rate"] == {"name": "spam_rate",
                                    "baseMetric": {"standardMetric": "SPAM_RATE"}}
    assert by_name["auth_dmarc"]["filter"] == 'auth_type = "dmarc"'
    assert by_name["tls_inbound"]["filter"] == 'traffic_direction = "inbound"'
    assert by_name["error_reject_ip_in_rbls"]["filter"] == (
        'error_type = "reject" AND error_reason = "ip_in_rbls"')
    assert body["aggregationGranularity"] == "DAILY"
    assert body["timeQuery"] == {"dateRanges": {"dateRanges": [{
        "start": {"year": 2026, "month": 11, "day": 24},
        "end": {"year": 2026, "month": 12, "day": 1}}]}}
    assert "pageToken" not in body
    assert query_body(TODAY, TODAY, "abc")["pageToken"] == "abc"


# --- parsing ----------------------------------------------------------------


def test_parse_groups_values_by_day_and_reads_float_and_int_values() -> None:
    days, token = parse_domain_stats(fixture("domain_stats.json"))
    assert token == ""
    assert set(days) == {date(2026, 11, 28), date(2026, 11, 29)}
    newest = days[date(2026, 11, 29)]
    assert newest["spam_rate"] == pytest.approx(0.0021)
    assert newest["error_temp_fail_anomalous_traffic_pattern"] == pytest.approx(0.012)
    days2, _ = parse_domain_stats({"domainStats": [
        {"metric": "spam_rate", "date": {"year": 2026, "month": 1, "day": 2},
         "value": {"intValue": "0"}},
        {"metric": "not_ours", "date": {"year": 2026, "month": 1, "day": 2},
         "value": {"doubleValue": 0.5}},
        {"metric": "auth_spf", "value": {"doubleValue": 0.5}},  # no date: OVERALL row
    ], "nextPageToken": "next"})
    assert days2 == {date(2026, 1, 2): {"spam_rate": 0.0}}


def test_empty_answer_is_no_days_not_an_error() -> None:
    assert parse_domain_stats(fixture("domain_stats_empty.json")) == ({}, "")


@pytest.mark.parametrize("payload", [[], "x", {"domainStats": {}}, {"domainStats": ["x"]}])
def test_answer_of_the_wrong_shape_is_an_api_error(payload: object) -> None:
    with pytest.raises(ApiError):
        parse_domain_stats(payload)


def test_compliance_keeps_known_verdicts_and_prefers_subdomain_data() -> None:
    result = parse_compliance(fixture("compliance_status.json"))
    assert result["SPF"] is True
    assert result["DMARC_ALIGNMENT"] is False
    assert "HONOR_UNSUBSCRIBE" not in result  # STATE_UNSPECIFIED says nothing
    sub = parse_compliance({
        "complianceData": {"rowData": [{"requirement": "SPF", "status": {"status": "COMPLIANT"}}]},
        "subdomainComplianceData": {"rowData": [
            {"requirement": "SPF", "status": {"status": "NEEDS_WORK"}}]},
    })
    assert sub == {"SPF": False}


# --- what is exported -------------------------------------------------------


def test_newest_day_is_exported_with_its_date() -> None:
    days, _ = parse_domain_stats(fixture("domain_stats.json"))
    f = Findings()
    _record_stats(f, "example.org", days, TODAY)
    assert not f.errors
    assert one(f, "deliverability_gmail_spam_rate_ratio", domain="example.org") == \
        pytest.approx(0.0021)
    assert one(f, "deliverability_gmail_data_date_timestamp_seconds", domain="example.org") == \
        datetime(2026, 11, 29, tzinfo=UTC).timestamp()
    assert samples(f, "deliverability_gmail_auth_success_ratio") == {
        frozenset({("domain", "example.org"), ("method", "spf")}): pytest.approx(0.998),
        frozenset({("domain", "example.org"), ("method", "dkim")}): pytest.approx(0.97),
        frozenset({("domain", "example.org"), ("method", "dmarc")}): pytest.approx(0.93),
    }
    assert one(f, "deliverability_gmail_encryption_ratio", domain="example.org") == 1.0
    errors = samples(f, "deliverability_gmail_delivery_error_ratio")
    # Only reasons Gmail reported: an absent reason is unknown, not zero.
    assert set(errors) == {
        frozenset({("domain", "example.org"), ("error_type", "reject"),
                   ("error_reason", "ip_in_rbls")}),
        frozenset({("domain", "example.org"), ("error_type", "reject"),
                   ("error_reason", "low_domain_reputation")}),
        frozenset({("domain", "example.org"), ("error_type", "temp_fail"),
                   ("error_reason", "anomalous_traffic_pattern")}),
    }
    titles = {(x.status, x.title) for x in f.findings}
    assert (Status.WARN, "Gmail spam rate of example.org is above 0.1 %") in titles
    assert (Status.FAIL, "Gmail rejects example.org's mail for low domain reputation") in titles
    assert any(x.status is Status.WARN and "DMARC" in x.title for x in f.findings)
    assert not samples(f, "deliverability_gmail_domain_reputation")


@pytest.mark.parametrize(("rate", "status"), [
    (0.0005, Status.PASS), (0.0015, Status.WARN), (0.0031, Status.FAIL)])
def test_spam_rate_verdict_follows_gmail_thresholds(rate: float, status: Status) -> None:
    f = Findings()
    _record_stats(f, "example.org", {date(2026, 11, 30): {"spam_rate": rate}}, TODAY)
    assert [x.status for x in f.findings if "spam rate" in x.title] == [status]


def test_no_data_in_the_window_exports_nothing_and_is_not_an_error() -> None:
    f = Findings()
    _record_stats(f, "example.org", {}, TODAY)
    assert f.samples == [] and f.errors == []
    assert [x.status for x in f.findings] == [Status.INFO]


def test_value_outside_zero_to_one_is_an_error_and_exports_nothing() -> None:
    f = Findings()
    _record_stats(f, "example.org", {date(2026, 11, 30): {"spam_rate": 12.5}}, TODAY)
    assert f.samples == []
    assert f.errors and "spam_rate" in f.errors[0]


def test_compliance_exports_one_and_zero_and_a_fix_for_needs_work() -> None:
    f = Findings()
    _record_compliance(f, "example.org", parse_compliance(fixture("compliance_status.json")))
    got = samples(f, "deliverability_gmail_requirement_compliant")
    assert got[frozenset({("domain", "example.org"), ("requirement", "SPF")})] == 1.0
    assert got[frozenset({("domain", "example.org"),
                          ("requirement", "ONE_CLICK_UNSUBSCRIBE")})] == 0.0
    fails = [x for x in f.findings if x.status is Status.FAIL]
    assert {x.title for x in fails} == {
        "Gmail says example.org needs work on DMARC_ALIGNMENT",
        "Gmail says example.org needs work on ONE_CLICK_UNSUBSCRIBE",
    }
    assert all(x.fix for x in fails)


@pytest.mark.parametrize(("code", "needle"), [
    (401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED"), (429, "RESOURCE_EXHAUSTED"),
    (500, "INTERNAL")])
def test_api_errors_name_the_status_and_the_reason(code: int, needle: str) -> None:
    body = (FIXTURES / f"error_{code}.json").read_bytes()
    err = _api_error("domainStats:query for example.org", HttpResponse(code, body, ""))
    assert f"HTTP {code} {needle}" in str(err)
    assert "example.org" in str(err)


# --- config -----------------------------------------------------------------


def test_one_target_per_domain_with_credentials_and_at_most_hourly(tmp_path: Path) -> None:
    creds = tmp_path / "sa.json"
    creds.write_text("{}")
    config = parse_config_text(
        f"domains:\n"
        f"  - name: example.org\n    postmaster: {{credentials_file: {creds}}}\n"
        f"  - name: other.example.org\n"
        f"postmaster: {{interval: 2h}}\n"
    )
    check = PostmasterCheck()
    targets = check.targets(config)
    assert [(t.check, t.key, t.param("credentials_file")) for t in targets] == [
        ("postmaster", "example.org", str(creds))]
    assert check.interval(config) == 7200.0


# --- credentials and tokens -------------------------------------------------


def _rsa_pem() -> tuple[str, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, key


def _b64d(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_service_account_assertion_is_a_verifiable_rs256_jwt() -> None:
    pem, key = _rsa_pem()
    sa = ServiceAccount("exporter@proj.iam.gserviceaccount.com", "kid1", pem)
    jwt = service_account_assertion(sa, "https://oauth2.googleapis.com/token", 1_700_000_000)
    head, claims, sig = jwt.split(".")
    assert json.loads(_b64d(head)) == {"alg": "RS256", "typ": "JWT", "kid": "kid1"}
    assert json.loads(_b64d(claims)) == {
        "iss": "exporter@proj.iam.gserviceaccount.com", "scope": SCOPE,
        "aud": "https://oauth2.googleapis.com/token",
        "iat": 1_700_000_000, "exp": 1_700_003_600,
    }
    key.public_key().verify(_b64d(sig), f"{head}.{claims}".encode(), padding.PKCS1v15(),
                            hashes.SHA256())  # raises if the signature is wrong


def test_token_forms_for_both_credential_types() -> None:
    pem, _ = _rsa_pem()
    form = token_request_form(ServiceAccount("a@b", "", pem), "https://t/token", 0, "f")
    assert form["grant_type"] == JWT_BEARER and form["assertion"].count(".") == 2
    user = AuthorizedUser("cid", "csecret", "rtoken")
    assert token_request_form(user, "https://t/token", 0, "f") == {
        "grant_type": "refresh_token", "client_id": "cid", "client_secret": "csecret",
        "refresh_token": "rtoken"}


def test_credentials_parse_both_types_and_never_show_secrets() -> None:
    pem, _ = _rsa_pem()
    sa = parse_credentials(json.dumps({"type": "service_account", "client_email": "a@b",
                                       "private_key": pem, "private_key_id": "k"}), "sa.json")
    assert isinstance(sa, ServiceAccount) and "PRIVATE" not in repr(sa)
    user = parse_credentials(json.dumps({"type": "authorized_user", "client_id": "cid",
                                         "client_secret": "s3cret", "refresh_token": "r3fresh"}),
                             "u.json")
    assert isinstance(user, AuthorizedUser)
    assert "s3cret" not in repr(user) and "r3fresh" not in repr(user)


@pytest.mark.parametrize(("text", "needle"), [
    ("not json", "not a JSON credentials file"),
    ('{"type": "external_account"}', "unsupported credentials type"),
    ('{"type": "authorized_user", "client_id": "x", "client_secret": "s3cret"}',
     "missing refresh_token"),
    ('{"type": "service_account", "client_email": "a@b", "private_key": "s3cret"}',
     "not an unencrypted PEM key"),
])
def test_bad_credentials_name_the_file_and_the_problem_not_the_secret(
    text: str, needle: str
) -> None:
    with pytest.raises(AuthError) as info:
        parse_credentials(text, "/etc/exporter/gpt.json")
    assert needle in str(info.value) and "/etc/exporter/gpt.json" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_queries_cover_every_delivery_error_pair_once() -> None:
    names = {q.name for q in QUERIES}
    assert all(f"error_{t}_{r}" in names for t, r in DELIVERY_ERRORS)
