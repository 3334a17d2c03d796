"""DMARC: which policy will a receiver apply to mail from this domain?

Under RFC 9989 rules (RFC 7489 records are read too: pct still counts, since
older receivers honour it). The domain's own record applies if it has
exactly one; otherwise the DNS Tree Walk finds its Organizational Domain's
record and the domain gets that record's sp (np if the domain does not
exist). Several records at the domain are all discarded (RFC 9989 §4.10
step 2): ``deliverability_dmarc_valid`` is then 0, and the walk goes on as
a receiver's would.

Reporting: every rua/ruf mailbox outside the policy's Organizational
Domain must be authorised by ``<policy-domain>._report._dmarc.<dest>``
(RFC 9990 §4, formerly RFC 7489 §7.1).

Any unanswered lookup fails the run (LookupFailed propagates): a walk with
a hole in it could have missed the record that applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from exporter.checks.base import CheckContext, Findings, MetricSpec, Status, Target
from exporter.checks.dmarc_record import NO_POLICY, DmarcRecord, Policy, ReportUri, is_dmarc_record
from exporter.checks.dmarc_walk import (
    Discovery,
    Walk,
    discover,
    domain_exists,
    org_domain_of,
    read_level,
    tree_walk,
)
from exporter.config import Config
from exporter.dns import Resolver

RECORDS = "deliverability_dmarc_records"
VALID = "deliverability_dmarc_valid"
POLICY = "deliverability_dmarc_policy"
SUBDOMAIN_POLICY = "deliverability_dmarc_subdomain_policy"
INHERITED = "deliverability_dmarc_policy_inherited"
PCT = "deliverability_dmarc_pct"
REPORTING = "deliverability_dmarc_reporting"

_NAMES = {NO_POLICY: "no policy", **{int(p): p.name.lower() for p in Policy}}


def policy_name(value: int) -> str:
    return _NAMES[value]


def example_record(domain: str) -> str:
    return f'_dmarc.{domain} TXT "v=DMARC1; p=reject; rua=mailto:dmarc-reports@{domain}"'


@dataclass(frozen=True, slots=True)
class Destination:
    uri: ReportUri
    tag: str
    external: bool
    authorised: bool
    auth_name: str


class DmarcCheck:
    name: ClassVar[str] = "dmarc"
    metrics: ClassVar[Sequence[MetricSpec]] = (
        MetricSpec(RECORDS, "Number of DMARC records (TXT v=DMARC1) at _dmarc.<domain> itself.",
                   ("domain",)),
        MetricSpec(VALID, "1 when the DMARC record that applies (own, else inherited) is a "
                   "single record without errors.", ("domain",)),
        MetricSpec(POLICY, "DMARC policy a receiver applies to the domain: -1 no valid policy, "
                   "0 none, 1 quarantine, 2 reject (t=y lowers it one step).", ("domain",)),
        MetricSpec(SUBDOMAIN_POLICY, "DMARC policy for existing subdomains without a record of "
                   "their own (sp, else p), same encoding.", ("domain",)),
        MetricSpec(INHERITED, "1 when the applied DMARC policy comes from the organisational "
                   "(or public suffix) domain's record.", ("domain",)),
        MetricSpec(PCT, "pct= of the applied DMARC record (0-100; 100 when absent; historic "
                   "in RFC 9989).", ("domain",)),
        MetricSpec(REPORTING, "1 when the applied DMARC record has a rua mailto: and every "
                   "external report destination is authorised.", ("domain",)),
    )

    def targets(self, config: Config) -> list[Target]:
        return [Target(self.name, d.name) for d in config.domains]

    def interval(self, config: Config) -> float:
        return config.dmarc.interval

    async def run(self, target: Target, ctx: CheckContext) -> Findings:
        findings = Findings()
        await evaluate(ctx.resolver, target.key, findings)
        return findings


@dataclass(frozen=True, slots=True)
class AppliedPolicy:
    """What a receiver applies to a domain: for checks that depend on DMARC (BIMI)."""

    policy: int  # NO_POLICY, 0 none, 1 quarantine, 2 reject
    pct: int
    source: str  # where the record was found
    record: str  # the record text


async def applied_policy(resolver: Resolver, domain: str) -> AppliedPolicy | None:
    """The policy a receiver applies to ``domain`` (RFC 9989 tree walk), None when none.

    Unanswered lookups raise LookupFailed, like everything here.
    """
    own = await read_level(resolver, domain)
    found = discover(domain, await tree_walk(resolver, domain, own))
    record = found.record
    if record is None:
        return None
    exists = True
    if found.inherited and record.tag("np") is not None:
        exists = await domain_exists(resolver, domain)
    policy = record.applied_policy(subdomain=found.inherited, exists=exists)
    return AppliedPolicy(policy, record.pct, found.source, record.text)


async def evaluate(resolver: Resolver, domain: str, findings: Findings) -> None:
    """Every DMARC sample and finding for one domain."""
    own = await read_level(resolver, domain)
    walk = await tree_walk(resolver, domain, own)
    found = discover(domain, walk)
    # Existing subdomains of the domain: the same walk, seen from one label below.
    sub = discover(f"_sub.{domain}", Walk(f"_sub.{domain}", walk.levels))
    findings.add(RECORDS, len(own.texts), domain=domain)
    _note_own(findings, domain, own.texts, own.all_texts)
    record = found.record
    if record is None:
        findings.add(VALID, 0, domain=domain)
        findings.add(POLICY, NO_POLICY, domain=domain)
        findings.add(SUBDOMAIN_POLICY, NO_POLICY, domain=domain)
        findings.add(INHERITED, 0, domain=domain)
        findings.add(REPORTING, 0, domain=domain)
        findings.note(
            Status.FAIL, f"No DMARC policy applies to {domain}",
            evidence=_walk_evidence(walk), fix=f"Publish {example_record(domain)}",
        )
        return
    exists = True
    if found.inherited and record.tag("np") is not None:
        exists = await domain_exists(resolver, domain)
    policy = record.applied_policy(subdomain=found.inherited, exists=exists)
    sub_record = sub.record
    sub_policy = sub_record.applied_policy(subdomain=True) if sub_record else NO_POLICY
    # Own records broken (several) make the domain's DMARC invalid even if a parent's applies.
    valid = record.valid and len(own.texts) <= 1
    findings.add(VALID, valid, domain=domain)
    findings.add(POLICY, policy, domain=domain)
    findings.add(SUBDOMAIN_POLICY, sub_policy, domain=domain)
    findings.add(INHERITED, found.inherited, domain=domain)
    findings.add(PCT, record.pct, domain=domain)
    destinations = await _destinations(resolver, found, record)
    reporting = any(u.usable for u in record.rua) and all(
        d.authorised for d in destinations if d.external
    )
    findings.add(REPORTING, reporting, domain=domain)
    _note_record(findings, found, record, policy, exists)
    _note_reporting(findings, found, record, destinations)


async def _destinations(
    resolver: Resolver, found: Discovery, record: DmarcRecord
) -> list[Destination]:
    out: list[Destination] = []
    seen: set[tuple[str, str]] = set()
    for tag, uris in (("rua", record.rua), ("ruf", record.ruf)):
        for uri in uris:
            if not uri.usable or (tag, uri.domain) in seen:
                continue
            seen.add((tag, uri.domain))
            external = await _is_external(resolver, found.org_domain, uri.domain)
            auth_name = f"{found.source}._report._dmarc.{uri.domain}"
            authorised = True
            if external:
                answer = (await resolver.resolve(auth_name, "TXT")).require()
                authorised = any(is_dmarc_record(t) for t in answer.records)
            out.append(Destination(uri, tag, external, authorised, auth_name))
    return out


async def _is_external(resolver: Resolver, policy_org: str, dest: str) -> bool:
    """RFC 9990 §4: external when the destination's Organizational Domain differs."""
    # An Organizational Domain is a suffix of its name: outside the tree, surely external.
    if dest != policy_org and not dest.endswith("." + policy_org):
        return True
    return await org_domain_of(resolver, dest) != policy_org


def _walk_evidence(walk: Walk) -> str:
    lines = []
    for level in walk.levels:
        shown = " | ".join(f'"{t}"' for t in level.all_texts) or "(no TXT record)"
        lines.append(f"_dmarc.{level.domain} TXT {shown}")
    return "\n".join(lines)


def _note_own(findings: Findings, domain: str, texts: tuple[str, ...],
              all_texts: tuple[str, ...]) -> None:
    name = f"_dmarc.{domain}"
    if len(texts) > 1:
        findings.note(
            Status.FAIL, f"{name} has {len(texts)} DMARC records: receivers discard them all",
            evidence="\n".join(f'{name} TXT "{t}"' for t in texts),
            fix=f"Keep exactly one, e.g. {example_record(domain)} (until then RFC 7489 "
                "receivers apply no DMARC policy, RFC 9989 ones the parent domain's).",
        )
    strays = [t for t in all_texts if t not in texts]
    for text in strays:
        if "dmarc1" in text.lower():
            findings.note(
                Status.FAIL, f"{name} has a TXT record that is not a valid DMARC record",
                evidence=f'{name} TXT "{text}"',
                fix="It must start exactly with v=DMARC1 (no leading space, DMARC1 upper-case).",
            )
        else:
            findings.note(
                Status.WARN, f"{name} has an unrelated TXT record", evidence=f'{name} TXT "{text}"',
                fix=f"Remove it: only the DMARC record belongs at {name}.",
            )


def _note_record(findings: Findings, found: Discovery, record: DmarcRecord, policy: int,
                 exists: bool) -> None:
    domain = found.domain
    evidence = f'_dmarc.{found.source} TXT "{record.text}"'
    for problem in record.errors:
        findings.note(Status.FAIL, f"DMARC record at _dmarc.{found.source}: {problem.message}",
                      evidence=evidence, fix=f"Correct the record, e.g. {example_record(domain)}")
    for problem in record.warnings:
        findings.note(Status.WARN, f"DMARC record at _dmarc.{found.source}: {problem.message}",
                      evidence=evidence, fix="Remove or correct the tag.")
    if found.inherited:
        which = "np (the domain does not exist)" if not exists else "sp, else p"
        findings.note(
            Status.INFO,
            f"{domain} has no DMARC record of its own: receivers apply the policy of "
            f"{found.source} ({which})", evidence=evidence,
            fix=f"To set a policy for {domain} itself, publish {example_record(domain)}",
        )
    if record.testing:
        findings.note(Status.WARN, "t=y: receivers apply the policy one step lower",
                      evidence=evidence, fix="Remove t=y once the reports look clean.")
    if record.pct < 100:
        findings.note(Status.WARN, f"pct={record.pct}: older receivers apply the policy to "
                      f"{record.pct}% of failing mail only", evidence=evidence,
                      fix="Remove pct= (historic in RFC 9989) or set pct=100.")
    if policy == NO_POLICY:
        findings.note(Status.FAIL, f"The DMARC record for {domain} gives no usable policy",
                      evidence=evidence, fix=f"Publish {example_record(domain)}")
    elif policy == Policy.NONE:
        findings.note(Status.WARN, f"DMARC policy for {domain} is none (monitoring only)",
                      evidence=evidence,
                      fix="When the aggregate reports show all your mail aligned, move to "
                          "p=quarantine, then p=reject.")
    else:
        findings.note(Status.PASS, f"DMARC policy for {domain} is {policy_name(policy)}",
                      evidence=evidence)


def _note_reporting(findings: Findings, found: Discovery, record: DmarcRecord,
                    destinations: list[Destination]) -> None:
    evidence = f'_dmarc.{found.source} TXT "{record.text}"'
    if not any(u.usable for u in record.rua):
        findings.note(Status.WARN, f"No aggregate reports requested for {found.domain}",
                      evidence=evidence,
                      fix=f"Add rua=mailto:dmarc-reports@{found.org_domain} to the record.")
    for d in destinations:
        if d.external and not d.authorised:
            findings.note(
                Status.FAIL,
                f"{d.tag} destination {d.uri.address} has not authorised reports about "
                f"{found.source}", evidence=f"{evidence}\n{d.auth_name} TXT: no v=DMARC1 record",
                fix=f'Ask {d.uri.domain} to publish {d.auth_name} TXT "v=DMARC1"',
            )
        elif d.external:
            findings.note(Status.PASS, f"{d.tag} destination {d.uri.address} is authorised",
                          evidence=f'{d.auth_name} TXT "v=DMARC1"')
