"""The SPF check: the domain's record, its lookup cost, and check_host() per sender.

Record analysis is static (no client IP): it walks the record and every
include/redirect it names, counting the DNS-querying terms a receiver may
have to evaluate (the worst case, every term reached) and the void lookups
among the names it can look up without an IP. Then ``check_host()``
(:mod:`exporter.checks.spf_eval`) runs for each configured sender address.

checkdmarc is not used here, deliberately: its ``query_spf_record`` turns
every DNS exception, a timeout included, into ``SPFRecordNotFound`` (its
issue #90); its parser stops counting at the 11th lookup by raising
``SPFTooManyDNSLookups``, and stops at the third void lookup likewise; its
DNS goes through module-level caches (``DNS_CACHE``, ``_include_cache``)
that ignore TTLs and our resolver; and routing it through an adapter means
faking dnspython's rdata objects, quoted TXT segments included. The parser
in :mod:`exporter.checks.spf_eval`, which passes all 203 tests of the RFC
7208 suite, serves both the analysis and the evaluation, so they cannot
disagree about what a record means.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from exporter.checks.base import CheckContext, Findings, MetricSpec, Status, Target
from exporter.checks.spf_eval import (
    MAX_DNS_TERMS,
    MAX_MX_NAMES,
    MAX_VOID_LOOKUPS,
    MacroString,
    Mechanism,
    SpfPermError,
    SpfRecord,
    SpfResult,
    SpfVerdict,
    check_host,
    parse_record,
    select_records,
)
from exporter.dns import Answer, LookupFailed, Outcome, Resolver, normalize_name

if TYPE_CHECKING:
    from exporter.config import Config

#: Stop walking includes once this many DNS-querying terms are counted: an
#: "include bomb" (every include naming ten more) must not cost thousands of
#: lookups. The count shown is then "at least" this.
WALK_LIMIT = 50


@dataclass(slots=True)
class TermCost:
    """What one term of the top-level record costs, nested terms included."""

    term: str
    lookups: int


@dataclass(slots=True)
class SpfAnalysis:
    domain: str
    #: Every TXT record at the domain that starts with v=spf1.
    records: list[str]
    record: SpfRecord | None = None
    parse_error: str = ""
    dns_lookups: int = 0
    void_lookups: int = 0
    #: Which lookups were void ("a:mail.example.com (A/AAAA: nxdomain)").
    voids: list[str] = field(default_factory=list)
    costs: list[TermCost] = field(default_factory=list)
    #: Include/redirect chains that come back to a domain already on the path.
    loops: list[str] = field(default_factory=list)
    #: Things that make receivers return permerror, found below the top record.
    problems: list[str] = field(default_factory=list)
    #: Where ``ptr`` is used, and where an ``all`` lets everyone through.
    ptr_terms: list[str] = field(default_factory=list)
    pass_all: list[str] = field(default_factory=list)
    neutral_all: list[str] = field(default_factory=list)
    #: True when the walk stopped at WALK_LIMIT (the count is a lower bound).
    truncated: bool = False

    @property
    def valid(self) -> bool:
        return (
            len(self.records) == 1
            and self.record is not None
            and not self.problems
            and not self.loops
            and self.dns_lookups <= MAX_DNS_TERMS
            and self.void_lookups <= MAX_VOID_LOOKUPS
        )


def _literal(spec: MacroString) -> str:
    """A macro-free domain-spec as a name ("%%"-style escapes already decoded)."""
    return normalize_name("".join(t for t in spec.tokens if isinstance(t, str)))


@dataclass(slots=True)
class _Walker:
    resolver: Resolver
    analysis: SpfAnalysis

    @property
    def stopped(self) -> bool:
        return self.analysis.dns_lookups >= WALK_LIMIT

    def void(self, what: str, answer: Answer) -> None:
        self.analysis.void_lookups += 1
        self.analysis.voids.append(f"{what} ({answer.rdtype}: {answer.outcome.value})")

    async def walk(
        self,
        domain: str,
        record: SpfRecord,
        path: tuple[str, ...],
        costs: list[TermCost] | None = None,
    ) -> int:
        """DNS-querying terms of ``record`` and everything it includes.

        ``costs`` (top level only) receives what each term costs with its nesting.
        """
        total = 0
        where = " > ".join(path)
        for mech in record.mechanisms:
            if mech.kind == "ptr":
                self.analysis.ptr_terms.append(f"{mech.text} in {domain}")
            if mech.kind == "all" and mech.qualifier == "+":
                self.analysis.pass_all.append(f"{mech.text} in {where}")
            if mech.kind == "all" and mech.qualifier == "?":
                self.analysis.neutral_all.append(f"{mech.text} in {where}")
            if not mech.queries_dns:
                continue
            cost = await self.term(domain, mech, path)
            total += cost
            if costs is not None:
                costs.append(TermCost(mech.text, cost))
        if record.redirect is not None and not record.has_all:
            self.analysis.dns_lookups += 1
            cost = 1
            if not record.redirect.has_macros:
                cost += await self.follow("redirect", _literal(record.redirect), path)
            total += cost
            if costs is not None:
                costs.append(TermCost(f"redirect={record.redirect.text}", cost))
        return total

    async def term(self, domain: str, mech: Mechanism, path: tuple[str, ...]) -> int:
        self.analysis.dns_lookups += 1
        if mech.domain is not None and mech.domain.has_macros:
            return 1  # depends on the sender: cannot be looked up ahead of time
        target = _literal(mech.domain) if mech.domain is not None else domain
        if mech.kind == "include":
            return 1 + await self.follow("include", target, path)
        if self.stopped:
            return 1
        if mech.kind == "a":
            answers = [
                (await self.resolver.resolve(target, t)).require() for t in ("A", "AAAA")
            ]
            if not any(a.records for a in answers):
                self.void(mech.text, answers[0])
        elif mech.kind == "mx":
            answer = (await self.resolver.resolve(target, "MX")).require()
            if not answer.records:
                self.void(mech.text, answer)
            elif len(answer.records) > MAX_MX_NAMES:
                self.analysis.problems.append(
                    f"{mech.text} in {domain}: {len(answer.records)} MX names, more than "
                    f"{MAX_MX_NAMES} (receivers return permerror)"
                )
        elif mech.kind == "exists":
            answer = (await self.resolver.resolve(target, "A")).require()
            if not answer.records:
                self.void(mech.text, answer)
        return 1

    async def follow(self, via: str, target: str, path: tuple[str, ...]) -> int:
        """Walk an include/redirect target; its cost (the term itself excluded)."""
        if target in path:
            self.analysis.loops.append(" > ".join((*path, target)))
            return 0
        if self.stopped:
            self.analysis.truncated = True
            return 0
        answer = (await self.resolver.resolve(target, "TXT")).require()
        texts = select_records(answer.records)
        if not texts:
            if answer.outcome != Outcome.OK or not answer.records:
                self.void(f"{via}:{target}", answer)
            self.analysis.problems.append(
                f"{via}:{target} has no SPF record (receivers return permerror)"
            )
            return 0
        if len(texts) > 1:
            self.analysis.problems.append(
                f"{via}:{target} has {len(texts)} SPF records (receivers return permerror)"
            )
            return 0
        try:
            record = parse_record(texts[0])
        except SpfPermError as exc:
            self.analysis.problems.append(f"{via}:{target}: {exc} in {texts[0]!r}")
            return 0
        return await self.walk(target, record, (*path, target))


async def analyze(resolver: Resolver, domain: str) -> SpfAnalysis:
    """The domain's SPF records and their static cost. Raises LookupFailed."""
    answer = (await resolver.resolve(domain, "TXT")).require()
    analysis = SpfAnalysis(domain, select_records(answer.records))
    if len(analysis.records) != 1:
        return analysis
    try:
        analysis.record = parse_record(analysis.records[0])
    except SpfPermError as exc:
        analysis.parse_error = str(exc)
        return analysis
    await _Walker(resolver, analysis).walk(domain, analysis.record, (domain,), analysis.costs)
    return analysis


# --------------------------------------------------------------------------
# Senders
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SenderAddress:
    address: str
    helo: str
    #: The configured sender this address came from (an IP, or a host name).
    sender: str


async def sender_addresses(
    resolver: Resolver, domain: str, sender: str, findings: Findings
) -> list[SenderAddress]:
    """A configured sender as addresses: an IP itself, a host its A and AAAA."""
    try:
        return [SenderAddress(str(ipaddress.ip_address(sender)), domain, sender)]
    except ValueError:
        pass
    host = normalize_name(sender)
    answers = [await resolver.resolve(host, t) for t in ("A", "AAAA")]
    failed = [a for a in answers if not a.answered]
    if failed:
        # No sample for this sender: its addresses are unknown, not absent.
        for a in failed:
            findings.error(f"sender {host}: {LookupFailed(a)}")
        return []
    addresses = [
        SenderAddress(str(ipaddress.ip_address(ip)), host, host)
        for a in answers for ip in a.records
    ]
    if not addresses:
        findings.note(
            Status.FAIL,
            f"Sender {host} has no A or AAAA record",
            evidence="; ".join(f"{a.rdtype} {host}: {a.outcome.value}" for a in answers),
            fix=f"publish the sending host's address ({host} A <ip>) or list its IP in senders",
        )
    return addresses


def _sender_term(sender: str) -> str:
    try:
        ip = ipaddress.ip_address(sender)
    except ValueError:
        return f"a:{normalize_name(sender)}"
    return f"ip{ip.version}:{ip}"


def suggested_record(
    record: SpfRecord | None, senders: Sequence[str], all_term: str | None = None
) -> str:
    """The record with the senders' terms added before its ``all`` (or a fresh one).

    ``all_term`` replaces the record's ``all`` (to suggest ``-all`` for ``+all``).
    """
    wanted = [_sender_term(s) for s in senders]
    if record is None:
        terms = wanted or ["mx"]
        return "v=spf1 " + " ".join([*terms, all_term or "-all"])
    terms = record.text[6:].split()
    present = {t.lower().lstrip("+") for t in terms}
    missing = [t for t in wanted if t.lower() not in present]
    for i, t in enumerate(terms):
        if t.lstrip("+-~?").lower() == "all":
            terms[i : i + 1] = [*missing, all_term or t]
            break
    else:
        terms.extend(missing)
    return "v=spf1 " + " ".join(terms)


# --------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------


class SpfCheck:
    name: ClassVar[str] = "spf"
    metrics: ClassVar[Sequence[MetricSpec]] = (
        MetricSpec(
            "deliverability_spf_records",
            "Number of TXT records starting with v=spf1 at the domain (exactly 1 is valid).",
            ("domain",),
        ),
        MetricSpec(
            "deliverability_spf_valid",
            "1 when the domain has exactly one SPF record, it and its includes parse, and it "
            "stays within 10 DNS-querying terms and 2 void lookups.",
            ("domain",),
        ),
        MetricSpec(
            "deliverability_spf_dns_lookups",
            "DNS-querying terms (include, a, mx, ptr, exists, redirect) in the SPF record, "
            "nested includes counted; the limit is 10, counting goes on past it (includes "
            "stop being followed at 50, so an include bomb reads at least 50).",
            ("domain",),
        ),
        MetricSpec(
            "deliverability_spf_void_lookups",
            "Lookups of the SPF record's terms that found nothing (NXDOMAIN or no records); "
            "the limit is 2.",
            ("domain",),
        ),
        MetricSpec(
            "deliverability_spf_authorized",
            "1 when SPF check_host() gives pass for the sender address and the domain.",
            ("domain", "ip"),
        ),
        MetricSpec(
            "deliverability_spf_result_info",
            "SPF check_host() result for the sender address (1 for the current result).",
            ("domain", "ip", "result"),
        ),
    )

    def targets(self, config: Config) -> list[Target]:
        return [Target("spf", d.name, (("senders", d.senders),)) for d in config.domains]

    def interval(self, config: Config) -> float:
        return config.spf.interval

    async def run(self, target: Target, ctx: CheckContext) -> Findings:
        domain = target.key
        senders_param = target.param("senders", ())
        senders = [str(s) for s in senders_param] if isinstance(senders_param, tuple) else []
        findings = Findings()
        analysis = await analyze(ctx.resolver, domain)  # LookupFailed: the run fails
        self._record_findings(analysis, senders, findings)
        addresses: list[SenderAddress] = []
        for sender in senders:
            addresses.extend(await sender_addresses(ctx.resolver, domain, sender, findings))
        addresses = list({a.address: a for a in addresses}.values())
        verdicts = await asyncio.gather(*(
            check_host(ctx.resolver, a.address, domain, f"postmaster@{domain}", a.helo)
            for a in addresses
        ))
        for addr, verdict in zip(addresses, verdicts, strict=True):
            self._sender_findings(analysis, addr, verdict, findings)
        return findings

    # -- record --------------------------------------------------------------

    def _record_findings(
        self, a: SpfAnalysis, senders: Sequence[str], findings: Findings
    ) -> None:
        d = a.domain
        findings.add("deliverability_spf_records", len(a.records), domain=d)
        findings.add("deliverability_spf_valid", a.valid, domain=d)
        suggestion = suggested_record(a.record, senders)
        if not a.records:
            findings.note(
                Status.FAIL, f"No SPF record at {d}",
                evidence=f"no TXT record at {d} starts with v=spf1",
                fix=f"publish exactly one TXT record at {d}: {suggested_record(None, senders)}",
            )
            findings.add("deliverability_spf_dns_lookups", 0, domain=d)
            findings.add("deliverability_spf_void_lookups", 0, domain=d)
            return
        if len(a.records) > 1:
            findings.note(
                Status.FAIL, f"{len(a.records)} SPF records at {d}: receivers return permerror",
                evidence="\n".join(a.records),
                fix=f"merge them into exactly one TXT record at {d}, e.g. "
                    f"{suggested_record(None, senders)}",
            )
            return
        record_text = a.records[0]
        if a.record is None:
            findings.note(
                Status.FAIL, f"The SPF record at {d} does not parse: {a.parse_error}",
                evidence=record_text,
                fix=f"publish a corrected record at {d}, e.g. {suggestion}",
            )
            return
        findings.add("deliverability_spf_dns_lookups", a.dns_lookups, domain=d)
        findings.add("deliverability_spf_void_lookups", a.void_lookups, domain=d)
        self._lookup_findings(a, record_text, findings)
        for problem in a.problems:
            findings.note(
                Status.FAIL, f"SPF for {d} has an error below the top record: {problem}",
                evidence=record_text,
                fix="fix or remove the named include/redirect",
            )
        for loop in a.loops:
            findings.note(
                Status.FAIL, f"SPF include/redirect loop: {loop}",
                evidence=record_text,
                fix="remove the include or redirect that points back to a domain on the path",
            )
        for term in a.ptr_terms:
            findings.note(
                Status.WARN, f"SPF uses the deprecated ptr mechanism ({term})",
                evidence=record_text,
                fix="replace ptr with ip4:/ip6: networks or a:<host> terms (RFC 7208 5.5: "
                    "do not use ptr)",
            )
        for term in a.pass_all:
            findings.note(
                Status.WARN, f"SPF {term}: every host on the internet passes",
                evidence=record_text,
                fix="end the record with -all (or ~all): "
                    f"{suggested_record(a.record, senders, '-all')}",
            )
        for term in a.neutral_all:
            findings.note(
                Status.WARN, f"SPF {term}: unlisted hosts get neutral, which protects nothing",
                evidence=record_text,
                fix="end the record with -all (or ~all): "
                    f"{suggested_record(a.record, senders, '-all')}",
            )
        if a.valid:
            findings.note(Status.PASS, f"SPF record at {d} is valid", evidence=record_text)

    def _lookup_findings(self, a: SpfAnalysis, record_text: str, findings: Findings) -> None:
        costs = ", ".join(f"{c.term} costs {c.lookups}" for c in a.costs) or "no lookups"
        at_least = "at least " if a.truncated else ""
        evidence = f"{record_text}\n{costs}"
        if a.dns_lookups > MAX_DNS_TERMS:
            nested = sorted(
                (c for c in a.costs if c.term.startswith(("include:", "redirect="))),
                key=lambda c: -c.lookups,
            )
            if nested:
                names = ", ".join(f"{c.term} ({c.lookups})" for c in nested)
                fix = (f"flatten or remove includes: {names} — replace them with the "
                       "ip4:/ip6: networks they publish, or drop services you no longer use")
            else:
                names = ", ".join(c.term for c in a.costs)
                fix = (f"replace lookup terms by the ip4:/ip6: networks they resolve to: "
                       f"{names}")
            findings.note(
                Status.FAIL,
                f"SPF for {a.domain} needs {at_least}{a.dns_lookups} DNS lookups "
                f"(limit {MAX_DNS_TERMS}): receivers return permerror",
                evidence=evidence,
                fix=fix,
            )
        else:
            findings.note(
                Status.INFO, f"SPF for {a.domain} needs {a.dns_lookups} of "
                f"{MAX_DNS_TERMS} DNS lookups", evidence=evidence,
            )
        if a.void_lookups > MAX_VOID_LOOKUPS:
            findings.note(
                Status.FAIL,
                f"SPF for {a.domain} has {a.void_lookups} void lookups "
                f"(limit {MAX_VOID_LOOKUPS}): receivers return permerror",
                evidence=f"{record_text}\nvoid: {', '.join(a.voids)}",
                fix=f"remove the terms whose names do not exist: {', '.join(a.voids)}",
            )
        elif a.voids:
            findings.note(
                Status.WARN, f"SPF for {a.domain} names hosts that do not resolve",
                evidence=f"{record_text}\nvoid: {', '.join(a.voids)}",
                fix=f"remove the terms: {', '.join(a.voids)}",
            )

    # -- senders ---------------------------------------------------------------

    def _sender_findings(
        self,
        a: SpfAnalysis,
        addr: SenderAddress,
        verdict: SpfVerdict,
        findings: Findings,
    ) -> None:
        d, ip = a.domain, addr.address
        who = ip if addr.sender == ip else f"{ip} ({addr.sender})"
        if verdict.result == SpfResult.TEMPERROR:
            # Not an answer: no authorized/result sample for this address.
            findings.error(f"SPF check_host for {ip}: temperror: {verdict.reason}")
            return
        findings.add("deliverability_spf_authorized", verdict.result == SpfResult.PASS,
                     domain=d, ip=ip)
        findings.add("deliverability_spf_result_info", 1, domain=d, ip=ip,
                     result=verdict.result.value)
        evidence = f"check_host({ip}, {d}, postmaster@{d}) = {verdict.result.value}: " \
                   f"{verdict.reason}"
        if verdict.result == SpfResult.PASS:
            findings.note(Status.PASS, f"SPF authorizes {who} for {d}", evidence=evidence)
            return
        # Suggest adding just this sender (a:host for a host, else its address).
        fix = f"authorize it: {suggested_record(a.record, [addr.sender])}"
        if verdict.result == SpfResult.PERMERROR:
            fix = f"fix the record so receivers can evaluate it: {verdict.reason}"
        findings.note(
            Status.FAIL, f"SPF does not authorize {who} for {d}: {verdict.result.value}",
            evidence=evidence, fix=fix,
        )
