"""MTA-STS (RFC 8461): the ``_mta-sts`` record, the HTTPS policy, and MX coverage.

``mta_sts_mode`` is what a sender without a cached policy would apply now:
-1 when there is no usable policy (no record, more than one record, or a
record whose policy cannot be fetched or parsed), else the policy's mode.
``mta_sts_valid`` is 1 only when record and policy are valid and, unless the
mode is ``none``, every MX host matches an ``mx:`` pattern.

A missing record (NXDOMAIN/NODATA) is an answer: mode -1, valid 0. An
unanswered lookup fails the run. A policy fetch that fails while the record
exists is not a failure of the run: that failure is exactly what sending
servers see, so it is reported as valid 0 with the reason in a finding.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from exporter.checks.base import CheckContext, Findings, MetricSpec, Status, Target
from exporter.checks.mx import lookup_mx
from exporter.config import Config
from exporter.https_fetch import FetchError, fetch

POLICY_PATH = "/.well-known/mta-sts.txt"
MAX_POLICY_BYTES = 64 * 1024
MAX_AGE_LIMIT = 31557600
MODES = {"none": 0, "testing": 1, "enforce": 2}
NO_POLICY = -1

_RECORD_START = re.compile(r"^v=STSv1\s*(;|$)")
_ID_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")


@dataclass(frozen=True, slots=True)
class StsRecord:
    id: str
    text: str


def parse_record(text: str) -> StsRecord:
    """Parse a ``v=STSv1; id=...`` record; ValueError says what is wrong."""
    if not _RECORD_START.match(text):
        raise ValueError("the record must start with v=STSv1")
    fields: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"malformed field {part!r}")
        key = key.strip()
        if key in fields:
            raise ValueError(f"duplicate field {key!r}")
        fields[key] = value.strip()
    if fields.get("v") != "STSv1":
        raise ValueError("the record must start with v=STSv1")
    record_id = fields.get("id")
    if record_id is None:
        raise ValueError("no id field")
    if not _ID_RE.match(record_id):
        raise ValueError(f"id {record_id!r} must be 1 to 32 letters and digits")
    return StsRecord(record_id, text)


@dataclass(frozen=True, slots=True)
class Policy:
    mode: str
    max_age: int
    mx: tuple[str, ...]


@dataclass(slots=True)
class PolicyParse:
    policy: Policy | None
    problems: list[str] = field(default_factory=list)


def parse_policy(text: str) -> PolicyParse:
    """Parse a policy file (RFC 8461 §3.2): ``key: value`` lines, LF or CRLF."""
    problems: list[str] = []
    values: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            problems.append(f"malformed line {line[:60]!r}")
            continue
        values.setdefault(key.strip(), []).append(value.strip())
    for key in ("version", "mode", "max_age"):
        if len(values.get(key, [])) > 1:
            problems.append(f"{key} given more than once")
    version = values.get("version", [""])[0]
    if version != "STSv1":
        problems.append(f"version must be STSv1, got {version!r}")
    mode = values.get("mode", [""])[0]
    if mode not in MODES:
        problems.append(f"mode must be enforce, testing or none, got {mode!r}")
    max_age_text = values.get("max_age", [""])[0]
    max_age = -1
    if max_age_text.isdigit() and len(max_age_text) <= 10:
        max_age = int(max_age_text)
    if not 0 <= max_age <= MAX_AGE_LIMIT:
        problems.append(f"max_age must be an integer from 0 to {MAX_AGE_LIMIT}, "
                        f"got {max_age_text!r}")
    patterns = tuple(p.lower().rstrip(".") for p in values.get("mx", []))
    if mode in ("enforce", "testing") and not patterns:
        problems.append(f"mode {mode} needs at least one mx line")
    if problems:
        return PolicyParse(None, problems)
    return PolicyParse(Policy(mode, max_age, patterns))


def mx_matches(pattern: str, host: str) -> bool:
    """An ``mx:`` pattern: exact, or ``*.example.com`` for exactly one more label (§4.1)."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


class MtaStsCheck:
    name: ClassVar[str] = "mta_sts"
    metrics: ClassVar[Sequence[MetricSpec]] = (
        MetricSpec("deliverability_mta_sts_mode",
                   "The MTA-STS mode a sender applies: -1 no usable policy, 0 none, 1 testing, "
                   "2 enforce.", ("domain",)),
        MetricSpec("deliverability_mta_sts_valid",
                   "1 when the _mta-sts record and the HTTPS policy are valid and the policy "
                   "covers every MX host.", ("domain",)),
    )

    def targets(self, config: Config) -> list[Target]:
        return [Target(self.name, d.name) for d in config.domains]

    def interval(self, config: Config) -> float:
        return config.mta_sts.interval

    async def run(self, target: Target, ctx: CheckContext) -> Findings:
        f = Findings()
        domain = target.key
        qname = f"_mta-sts.{domain}"
        answer = (await ctx.resolver.resolve(qname, "TXT")).require()
        # Records not starting with v=STSv1 are discarded (§3.1).
        records = [r for r in answer.records if _RECORD_START.match(r)]
        if not records:
            self._no_policy(f, domain)
            f.note(Status.INFO, f"{domain} publishes no MTA-STS policy",
                   evidence=f"{qname} TXT: {answer.outcome.value}",
                   fix=f"Publish {qname}. IN TXT \"v=STSv1; id=<YYYYMMDDnn>\" and serve "
                       f"https://mta-sts.{domain}{POLICY_PATH}.")
            return f
        if len(records) > 1:
            self._no_policy(f, domain)
            f.note(Status.FAIL, f"{domain} has {len(records)} MTA-STS records: senders ignore all",
                   evidence=" | ".join(records), fix=f"Keep exactly one v=STSv1 record at {qname}.")
            return f
        try:
            record = parse_record(records[0])
        except ValueError as exc:
            self._no_policy(f, domain)
            f.note(Status.FAIL, f"{domain} MTA-STS record is invalid", evidence=
                   f"{records[0]} ({exc})", fix=f"Publish {qname}. IN TXT \"v=STSv1; id=<id>\".")
            return f
        policy_host = f"mta-sts.{domain}"
        a, aaaa = await asyncio.gather(
            ctx.resolver.resolve(policy_host, "A"), ctx.resolver.resolve(policy_host, "AAAA")
        )
        addresses = [*a.require().records, *aaaa.require().records]
        url = f"https://{policy_host}{POLICY_PATH}"
        cfg = ctx.config.mta_sts
        try:
            result = await fetch(policy_host, addresses, cfg.port, POLICY_PATH,
                                 timeout=cfg.timeout, ca_file=ctx.config.tls.ca_file,
                                 max_bytes=MAX_POLICY_BYTES)
        except FetchError as exc:
            self._no_policy(f, domain)
            f.note(Status.FAIL, f"{domain} MTA-STS policy cannot be fetched",
                   evidence=f"record {record.text}; {url}: {exc}",
                   fix=f"Serve {url} over HTTPS with a valid certificate for {policy_host}.")
            return f
        problem = ""
        if 300 <= result.status < 400:
            problem = f"HTTP {result.status}: redirects are not allowed (RFC 8461 §3.3)"
        elif result.status != 200:
            problem = f"HTTP {result.status}"
        elif _media_type(result.content_type) != "text/plain":
            problem = f"Content-Type {result.content_type or 'missing'}, must be text/plain"
        parsed = PolicyParse(None)
        if not problem:
            parsed = parse_policy(result.body.decode("utf-8", "replace"))
            if parsed.policy is None:
                problem = "; ".join(parsed.problems)
        if parsed.policy is None:
            self._no_policy(f, domain)
            f.note(Status.FAIL, f"{domain} MTA-STS policy is invalid",
                   evidence=f"{url}: {problem}",
                   fix=f"Serve {url} with status 200, Content-Type text/plain and lines "
                       "version: STSv1, mode: enforce, mx: <each MX host>, max_age: 604800.")
            return f
        policy = parsed.policy
        f.add("deliverability_mta_sts_mode", MODES[policy.mode], domain=domain)
        mx_hosts = [h.name for h in
                    (await lookup_mx(ctx.resolver, domain, addresses=False)).delivery_hosts]
        uncovered = [h for h in mx_hosts if not any(mx_matches(p, h) for p in policy.mx)]
        evidence = (f"record {record.text}; policy mode {policy.mode}, max_age "
                    f"{policy.max_age}, mx {', '.join(policy.mx) or '-'}; "
                    f"MX hosts {', '.join(mx_hosts) or '-'}")
        if uncovered and policy.mode != "none":
            f.add("deliverability_mta_sts_valid", 0, domain=domain)
            f.note(Status.FAIL, f"{domain} MTA-STS policy does not cover MX "
                   f"{', '.join(uncovered)}", evidence=evidence,
                   fix=f"Add mx: {uncovered[0]} (one line per host) to {url} and change the id "
                       f"in {qname}.")
            return f
        f.add("deliverability_mta_sts_valid", 1, domain=domain)
        status = Status.PASS if policy.mode == "enforce" else Status.WARN
        title = f"{domain} MTA-STS policy valid, mode {policy.mode}"
        fix = "" if policy.mode == "enforce" else (
            f"When TLS-RPT reports are clean, change {url} to mode: enforce and update the id.")
        f.note(status, title, evidence=evidence, fix=fix)
        return f

    @staticmethod
    def _no_policy(f: Findings, domain: str) -> None:
        f.add("deliverability_mta_sts_mode", NO_POLICY, domain=domain)
        f.add("deliverability_mta_sts_valid", 0, domain=domain)
