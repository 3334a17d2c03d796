"""Gmail Postmaster Tools: what Gmail says about a domain's mail.

Uses the Postmaster Tools API **v2** (``gmailpostmastertools.googleapis.com``,
discovery revision 20260512): ``POST v2/domains/{domain}/domainStats:query``
for daily statistics and ``GET v2/domains/{domain}/complianceStatus`` for
the sender-requirements dashboard. v2 replaced v1's ``trafficStats`` (Google's
"Migrate to Postmaster Tools API v2" guide); v1 was shut down at the end of
2025 and with it Gmail stopped publishing domain and IP reputation. The two
reputation metrics of the issue are therefore declared but never emitted;
rejects *because of* low domain or IP reputation are still reported, as
delivery-error reasons ``low_domain_reputation`` and ``low_ip_reputation``.

The data is daily and arrives a day or two late. Each run asks for the last
:data:`LOOKBACK_DAYS` days and exports the newest day that has any data,
with its date, so an empty "today" neither fails the run nor shows zeros.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import quote

import aiohttp

from exporter.checks.base import CheckContext, Findings, MetricSpec, Status, Target
from exporter.google_auth import AuthError, TokenProvider
from exporter.http_client import HttpError, HttpResponse, open_session, request

if TYPE_CHECKING:
    from exporter.config import Config

#: How far back to look for the newest day with data.
LOOKBACK_DAYS = 7
#: Gmail's bulk-sender thresholds for the user-reported spam rate.
SPAM_RATE_WARN = 0.001
SPAM_RATE_LIMIT = 0.003
#: Bound on result pages (15 metrics x 8 days fits in one page of 200).
MAX_PAGES = 10

AUTH_METHODS = ("spf", "dkim", "dmarc")

#: Delivery-error (type, reason) pairs: the values the v2 DELIVERY_ERROR_RATE
#: filter accepts (StandardMetric enum description), so label values stay bounded.
DELIVERY_ERRORS: tuple[tuple[str, str], ...] = (
    *(("reject", r) for r in (
        "bad_attachment", "bad_or_missing_ptr_record", "ip_in_rbls", "low_domain_reputation",
        "low_ip_reputation", "spammy_content", "stamp_policy_error", "other",
    )),
    ("temp_fail", "anomalous_traffic_pattern"),
    ("temp_fail", "other"),
)

#: ComplianceRowData.requirement values (v2 enum), bounded label values.
REQUIREMENTS = (
    "SPF", "DKIM", "SPF_AND_DKIM", "DMARC_POLICY", "DMARC_ALIGNMENT", "MESSAGE_FORMATTING",
    "DNS_RECORDS", "ENCRYPTION", "USER_REPORTED_SPAM_RATE", "ONE_CLICK_UNSUBSCRIBE",
    "HONOR_UNSUBSCRIBE",
)

_REQUIREMENT_FIX = {
    "SPF": "Publish an SPF record that covers every sending IP.",
    "DKIM": "Sign all mail with DKIM and publish the selector's public key.",
    "SPF_AND_DKIM": "Bulk senders need both SPF and DKIM to pass.",
    "DMARC_POLICY": "Publish a DMARC record, at least v=DMARC1; p=none; rua=mailto:...",
    "DMARC_ALIGNMENT": "Make the From: domain align with the DKIM d= or the SPF domain.",
    "MESSAGE_FORMATTING": "Send RFC 5322-conformant messages (one From, Date, Message-ID).",
    "DNS_RECORDS": "Give every sending IP a PTR whose name resolves back to it (FCrDNS).",
    "ENCRYPTION": "Send to Gmail over TLS (smtp_tls_security_level = may or better).",
    "USER_REPORTED_SPAM_RATE": "Keep the user-reported spam rate below 0.3 % (aim under 0.1 %).",
    "ONE_CLICK_UNSUBSCRIBE": "Add List-Unsubscribe and List-Unsubscribe-Post (RFC 8058).",
    "HONOR_UNSUBSCRIBE": "Stop mailing recipients within two days of their unsubscribe.",
}


@dataclass(frozen=True, slots=True)
class _Query:
    """One MetricDefinition: our name for it, the standard metric and its filter."""

    name: str
    standard_metric: str
    filter: str = ""

    def definition(self) -> dict[str, object]:
        d: dict[str, object] = {
            "name": self.name, "baseMetric": {"standardMetric": self.standard_metric},
        }
        if self.filter:
            d["filter"] = self.filter
        return d


def _queries() -> tuple[_Query, ...]:
    qs = [_Query("spam_rate", "SPAM_RATE")]
    qs += [_Query(f"auth_{m}", "AUTH_SUCCESS_RATE", f'auth_type = "{m}"') for m in AUTH_METHODS]
    # "inbound" is mail arriving at Gmail: the domain's own outgoing mail.
    qs.append(_Query("tls_inbound", "TLS_ENCRYPTION_RATE", 'traffic_direction = "inbound"'))
    qs += [
        _Query(f"error_{t}_{r}", "DELIVERY_ERROR_RATE",
               f'error_type = "{t}" AND error_reason = "{r}"')
        for t, r in DELIVERY_ERRORS
    ]
    return tuple(qs)


QUERIES = _queries()


class ApiError(Exception):
    """The API answered with an error or with something that is not its format."""


def query_body(start: date, end: date, page_token: str = "") -> dict[str, object]:
    """The QueryDomainStatsRequest for every metric we export, daily, over [start, end]."""
    body: dict[str, object] = {
        "metricDefinitions": [q.definition() for q in QUERIES],
        "timeQuery": {"dateRanges": {"dateRanges": [
            {"start": _date_json(start), "end": _date_json(end)},
        ]}},
        "aggregationGranularity": "DAILY",
        "pageSize": 200,
    }
    if page_token:
        body["pageToken"] = page_token
    return body


def _date_json(d: date) -> dict[str, int]:
    return {"year": d.year, "month": d.month, "day": d.day}


def parse_domain_stats(payload: object) -> tuple[dict[date, dict[str, float]], str]:
    """QueryDomainStatsResponse → ({date: {metric name: value}}, nextPageToken).

    Entries for metrics we did not ask for, or without a date or a numeric
    value, are skipped; a body that is not the documented shape is ApiError.
    """
    if not isinstance(payload, dict):
        raise ApiError("domainStats:query answer is not a JSON object")
    stats = payload.get("domainStats", [])
    if not isinstance(stats, list):
        raise ApiError("domainStats:query answer has a non-list domainStats")
    known = {q.name for q in QUERIES}
    days: dict[date, dict[str, float]] = {}
    for entry in stats:
        if not isinstance(entry, dict):
            raise ApiError("domainStats:query answer has a non-object DomainStat")
        metric = entry.get("metric")
        day = _parse_date(entry.get("date"))
        value = _statistic_value(entry.get("value"))
        if metric not in known or day is None or value is None:
            continue
        assert isinstance(metric, str)
        days.setdefault(day, {})[metric] = value
    token = payload.get("nextPageToken", "")
    return days, token if isinstance(token, str) else ""


def _parse_date(raw: object) -> date | None:
    if not isinstance(raw, dict):
        return None
    try:
        return date(int(raw["year"]), int(raw["month"]), int(raw["day"]))
    except (KeyError, TypeError, ValueError):
        return None


def _statistic_value(raw: object) -> float | None:
    """StatisticValue: doubleValue / floatValue are numbers, intValue an int64 string."""
    if not isinstance(raw, dict):
        return None
    for key in ("doubleValue", "floatValue"):
        v = raw.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    v = raw.get("intValue")
    if isinstance(v, str | int) and not isinstance(v, bool):
        try:
            return float(int(v))
        except ValueError:
            return None
    return None


def parse_compliance(payload: object) -> dict[str, bool]:
    """DomainComplianceStatus → {requirement: compliant}; the subdomain's own data wins."""
    if not isinstance(payload, dict):
        raise ApiError("complianceStatus answer is not a JSON object")
    data = payload.get("subdomainComplianceData") or payload.get("complianceData") or {}
    if not isinstance(data, dict):
        raise ApiError("complianceStatus answer has a non-object complianceData")
    rows = data.get("rowData", [])
    if not isinstance(rows, list):
        raise ApiError("complianceStatus answer has a non-list rowData")
    result: dict[str, bool] = {}
    for row in rows:
        if not isinstance(row, dict):
            continue
        req = row.get("requirement")
        status = row.get("status")
        state = status.get("status") if isinstance(status, dict) else None
        if req in REQUIREMENTS and state in ("COMPLIANT", "NEEDS_WORK"):
            assert isinstance(req, str)
            result[req] = state == "COMPLIANT"
    return result


def _api_error(what: str, resp: HttpResponse) -> ApiError:
    """``HTTP 403 PERMISSION_DENIED: ...`` from a google.rpc.Status error body."""
    status_text = ""
    message = ""
    try:
        err = json.loads(resp.body).get("error", {})
        if isinstance(err, dict):
            status_text = str(err.get("status", ""))[:40]
            message = str(err.get("message", ""))[:200]
    except (ValueError, AttributeError):
        pass
    detail = f"HTTP {resp.status}"
    if status_text:
        detail += f" {status_text}"
    if message:
        detail += f": {message}"
    hint = {
        401: " (the access token was refused; it is fetched again on the next run)",
        403: " (is the domain verified and the account added as a user in Postmaster Tools?)",
        404: " (the domain is not registered in Postmaster Tools for this account)",
        429: " (quota exceeded; the next run retries)",
    }.get(resp.status, "")
    return ApiError(f"{what}: {detail}{hint}")


class PostmasterCheck:
    name: ClassVar[str] = "postmaster"
    metrics: ClassVar[Sequence[MetricSpec]] = (
        MetricSpec("deliverability_gmail_spam_rate_ratio",
                   "User-reported spam rate at Gmail on the newest day with data, 0-1 "
                   "(Postmaster Tools, daily).", ("domain",)),
        MetricSpec("deliverability_gmail_auth_success_ratio",
                   "Share of the domain's mail at Gmail that passed SPF, DKIM or DMARC "
                   "on the newest day with data.", ("domain", "method")),
        MetricSpec("deliverability_gmail_encryption_ratio",
                   "Share of the domain's mail that reached Gmail over TLS on the newest "
                   "day with data.", ("domain",)),
        MetricSpec("deliverability_gmail_delivery_error_ratio",
                   "Share of the domain's mail Gmail rejected (reject) or deferred (temp_fail), "
                   "by reason, on the newest day with data.",
                   ("domain", "error_type", "error_reason")),
        MetricSpec("deliverability_gmail_requirement_compliant",
                   "1 if Gmail's compliance dashboard says the sender requirement is met, "
                   "0 if it needs work.", ("domain", "requirement")),
        MetricSpec("deliverability_gmail_data_date_timestamp_seconds",
                   "Midnight UTC of the day the Gmail statistics describe.", ("domain",)),
        MetricSpec("deliverability_gmail_domain_reputation",
                   "Gmail domain reputation 0 bad, 1 low, 2 medium, 3 high. Never emitted: "
                   "Google retired reputation with Postmaster Tools API v1 (end of 2025).",
                   ("domain",)),
        MetricSpec("deliverability_gmail_ip_reputation",
                   "Gmail IP reputation 0 bad, 1 low, 2 medium, 3 high. Never emitted: "
                   "Google retired reputation with Postmaster Tools API v1 (end of 2025).",
                   ("domain", "ip")),
    )

    def __init__(
        self,
        tokens: TokenProvider | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Tokens outlive a run: one token endpoint call per hour, not per run.
        self._tokens = tokens if tokens is not None else TokenProvider(clock)
        self._clock = clock

    def targets(self, config: Config) -> list[Target]:
        return [
            Target(self.name, d.name, (("credentials_file", d.postmaster_credentials_file),))
            for d in config.domains
            if d.postmaster_credentials_file
        ]

    def interval(self, config: Config) -> float:
        # The data is daily; Google's quota is per project. Never more than hourly.
        return max(config.postmaster.interval, 3600.0)

    async def run(self, target: Target, ctx: CheckContext) -> Findings:
        f = Findings()
        domain = target.key
        creds = str(target.param("credentials_file", ""))
        pm = ctx.config.postmaster
        today = datetime.fromtimestamp(self._clock(), UTC).date()
        async with open_session(ctx.resolver, ctx.config.tls.ca_file) as session:
            try:
                days = await self._stats(session, pm.base_url, pm.token_url, creds, domain, today)
                compliance = await self._compliance(
                    session, pm.base_url, pm.token_url, creds, domain)
            except (AuthError, ApiError, HttpError) as exc:
                ctx.log.warning("postmaster %s: %s", domain, exc)
                f.error(str(exc))
                return f
        _record_stats(f, domain, days, today)
        _record_compliance(f, domain, compliance)
        return f

    async def _call(
        self, session: aiohttp.ClientSession, token_url: str, creds: str, what: str,
        method: str, url: str, body: object = None,
    ) -> object:
        """One authorised API call; a refused token is dropped and fetched once more."""
        for attempt in (1, 2):
            token = await self._tokens.token(session, creds, token_url)
            resp = await request(session, method, url, json=body, what=what,
                                 headers={"Authorization": f"Bearer {token}"})
            if resp.status == 401 and attempt == 1:
                self._tokens.forget(creds, token_url)
                continue
            if resp.status != 200:
                raise _api_error(what, resp)
            try:
                return json.loads(resp.body)
            except ValueError as exc:
                raise ApiError(f"{what}: answer is not JSON") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _stats(
        self, session: aiohttp.ClientSession, base_url: str, token_url: str, creds: str,
        domain: str, today: date,
    ) -> dict[date, dict[str, float]]:
        url = f"{base_url}/v2/domains/{quote(domain, safe='')}/domainStats:query"
        what = f"Postmaster Tools domainStats:query for {domain}"
        start = today - timedelta(days=LOOKBACK_DAYS)
        days: dict[date, dict[str, float]] = {}
        token = ""
        for _ in range(MAX_PAGES):
            payload = await self._call(session, token_url, creds, what, "POST", url,
                                       query_body(start, today, token))
            page, token = parse_domain_stats(payload)
            for day, values in page.items():
                days.setdefault(day, {}).update(values)
            if not token:
                break
        return days

    async def _compliance(
        self, session: aiohttp.ClientSession, base_url: str, token_url: str, creds: str,
        domain: str,
    ) -> dict[str, bool]:
        url = f"{base_url}/v2/domains/{quote(domain, safe='')}/complianceStatus"
        what = f"Postmaster Tools complianceStatus for {domain}"
        return parse_compliance(await self._call(session, token_url, creds, what, "GET", url))


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.2f} %"


def _record_stats(
    f: Findings, domain: str, days: dict[date, dict[str, float]], today: date
) -> None:
    if not days:
        f.note(Status.INFO, f"No Gmail statistics for {domain} in the last {LOOKBACK_DAYS} days",
               evidence=f"domainStats:query returned no data for "
                        f"{today - timedelta(days=LOOKBACK_DAYS)} to {today}",
               fix="Gmail publishes statistics only for days with enough mail from the domain "
                   "(a few hundred messages to Gmail users). Nothing to fix if volume is low.")
        return
    newest = max(days)
    values = days[newest]
    out_of_range = sorted(k for k, v in values.items() if not 0.0 <= v <= 1.0)
    if out_of_range:
        # Not a ratio: the format changed under us. Export nothing we cannot read.
        f.error(f"Postmaster Tools returned values outside 0-1 for {domain} on {newest}: "
                f"{', '.join(out_of_range)}")
        return
    stamp = datetime(newest.year, newest.month, newest.day, tzinfo=UTC).timestamp()
    f.add("deliverability_gmail_data_date_timestamp_seconds", stamp, domain=domain)
    spam = values.get("spam_rate")
    if spam is not None:
        f.add("deliverability_gmail_spam_rate_ratio", spam, domain=domain)
        evidence = f"user-reported spam rate {_pct(spam)} on {newest}"
        if spam > SPAM_RATE_LIMIT:
            f.note(Status.FAIL, f"Gmail spam rate of {domain} is above 0.3 %", evidence,
                   "Gmail rejects or junks bulk mail above 0.3 %. Stop mailing unengaged "
                   "recipients, honour unsubscribes at once, add one-click List-Unsubscribe.")
        elif spam > SPAM_RATE_WARN:
            f.note(Status.WARN, f"Gmail spam rate of {domain} is above 0.1 %", evidence,
                   "Keep the rate under 0.1 %: prune recipients who never open, "
                   "make unsubscribing easy, send only mail people asked for.")
        else:
            f.note(Status.PASS, f"Gmail spam rate of {domain} is below 0.1 %", evidence)
    for method in AUTH_METHODS:
        ratio = values.get(f"auth_{method}")
        if ratio is None:
            continue
        f.add("deliverability_gmail_auth_success_ratio", ratio, domain=domain, method=method)
        if ratio < 0.95:
            f.note(Status.WARN,
                   f"Only {_pct(ratio)} of {domain}'s mail passes {method.upper()} at Gmail",
                   f"{method} success ratio {ratio:.4f} on {newest}",
                   f"Find the sources that fail {method.upper()} in the DMARC aggregate reports "
                   "and add them to SPF / sign them with DKIM.")
    tls = values.get("tls_inbound")
    if tls is not None:
        f.add("deliverability_gmail_encryption_ratio", tls, domain=domain)
    for etype, reason in DELIVERY_ERRORS:
        ratio = values.get(f"error_{etype}_{reason}")
        if ratio is None:
            continue
        f.add("deliverability_gmail_delivery_error_ratio", ratio, domain=domain,
              error_type=etype, error_reason=reason)
        if ratio > 0 and reason in ("low_domain_reputation", "low_ip_reputation"):
            what = "domain" if reason == "low_domain_reputation" else "IP"
            f.note(Status.FAIL, f"Gmail rejects {domain}'s mail for low {what} reputation",
                   f"{etype} {reason} ratio {_pct(ratio)} on {newest}",
                   "Reputation follows the spam rate: cut volume to engaged recipients only "
                   "and ramp back up slowly once rejects stop.")


def _record_compliance(f: Findings, domain: str, compliance: dict[str, bool]) -> None:
    for requirement in REQUIREMENTS:
        ok = compliance.get(requirement)
        if ok is None:
            continue
        f.add("deliverability_gmail_requirement_compliant", ok, domain=domain,
              requirement=requirement)
        if not ok:
            f.note(Status.FAIL, f"Gmail says {domain} needs work on {requirement}",
                   f"complianceStatus {requirement}: NEEDS_WORK",
                   _REQUIREMENT_FIX.get(requirement, ""))
