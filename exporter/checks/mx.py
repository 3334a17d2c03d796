"""MX: where mail for a domain goes, and whether every host can be reached by name.

:func:`lookup_mx` is shared: the SMTP, MTA-STS and DANE checks need the same
host list (sorted by preference, with addresses), so it lives here once.

Choices, documented in docs/fragments/mx.md:

- A null MX (RFC 7505: exactly one ``0 .`` record) is a deliberate "this
  domain receives no mail": hosts 0, valid 1.
- No MX at all: senders fall back to the domain's own A/AAAA (RFC 5321
  §5.1, the implicit MX). That works by accident rather than by design, so
  hosts 0, valid 0, with a finding. The implicit host is still returned by
  :func:`lookup_mx` for the checks that connect to it.
- An exchange that is an IP literal is invalid (RFC 5321 §5.1: the exchange
  is a domain name), valid 0. An exchange that is a CNAME is a warning
  only: RFC 5321 §5.1 tolerates it and senders follow it, RFC 2181 §10.3
  says not to.
- A host whose A and AAAA are both NXDOMAIN/NODATA is invalid; a timeout
  on either fails the run (a partial address list is not an answer).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from exporter.checks.base import CheckContext, Findings, MetricSpec, Status, Target
from exporter.config import Config
from exporter.dns import Outcome, Resolver, normalize_name, parse_mx

HOSTS = "deliverability_mx_hosts"
VALID = "deliverability_mx_valid"


@dataclass(frozen=True, slots=True)
class MxHost:
    name: str
    preference: int
    #: A and AAAA addresses (A first); empty when the host does not resolve.
    addresses: tuple[str, ...] = ()
    #: The exchange is an IP address written as a name: not looked up.
    ip_literal: bool = False
    #: Where the CNAME chain of the exchange ended ("" when it is not a CNAME).
    cname_target: str = ""

    @property
    def resolves(self) -> bool:
        return bool(self.addresses)

    @property
    def ipv4(self) -> tuple[str, ...]:
        return tuple(a for a in self.addresses if ipaddress.ip_address(a).version == 4)

    @property
    def ipv6(self) -> tuple[str, ...]:
        return tuple(a for a in self.addresses if ipaddress.ip_address(a).version == 6)


@dataclass(frozen=True, slots=True)
class MxResult:
    domain: str
    #: The MX hosts, by preference then name (empty for null MX or no MX).
    hosts: tuple[MxHost, ...] = ()
    #: The MX records as received, for evidence.
    records: tuple[str, ...] = ()
    #: Exactly one ``0 .`` record (RFC 7505).
    null_mx: bool = False
    #: A ``.`` exchange next to other records, or with a preference other than 0.
    bad_null_mx: bool = False
    #: False when the MX lookup was NXDOMAIN: the domain does not exist.
    exists: bool = True
    #: No MX records: the domain itself, as senders would use it (RFC 5321 §5.1).
    implicit_host: MxHost | None = None

    @property
    def delivery_hosts(self) -> tuple[MxHost, ...]:
        """The hosts a sender would try, in order (the implicit MX when there is no MX)."""
        if self.hosts:
            return self.hosts
        return (self.implicit_host,) if self.implicit_host is not None else ()


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


async def resolve_host(resolver: Resolver, name: str, preference: int = 0) -> MxHost:
    """A host's addresses and CNAME status; raises LookupFailed if A or AAAA is unanswered."""
    if _is_ip(name):
        return MxHost(name, preference, ip_literal=True)
    a, aaaa = await asyncio.gather(resolver.resolve(name, "A"), resolver.resolve(name, "AAAA"))
    a.require()
    aaaa.require()
    cname = next((ans.canonical_name for ans in (a, aaaa) if ans.is_cname), "")
    return MxHost(name, preference, a.records + aaaa.records, cname_target=cname)


async def lookup_mx(resolver: Resolver, domain: str, *, addresses: bool = True) -> MxResult:
    """The MX hosts of ``domain`` with their addresses; raises LookupFailed if unanswered.

    ``addresses=False`` stops at the host names (MTA-STS matches names only; deciding
    which domain owns a shared MX host needs no addresses either).
    """
    domain = normalize_name(domain)
    answer = (await resolver.resolve(domain, "MX")).require()
    if answer.outcome is Outcome.NXDOMAIN:
        return MxResult(domain, exists=False)

    async def host_of(name: str, preference: int = 0) -> MxHost:
        if not addresses:
            return MxHost(name, preference, ip_literal=_is_ip(name))
        return await resolve_host(resolver, name, preference)

    if not answer.records:
        return MxResult(domain, implicit_host=await host_of(domain))
    parsed = sorted({parse_mx(r) for r in answer.records})
    nulls = [(p, h) for p, h in parsed if h == ""]
    if nulls:
        null_mx = len(parsed) == 1 and parsed[0][0] == 0
        return MxResult(domain, (), answer.records, null_mx=null_mx, bad_null_mx=not null_mx)
    # A host listed twice (two preferences) is one host, at its best preference.
    best: dict[str, int] = {}
    for pref, host in parsed:
        best.setdefault(host, pref)
    hosts = await asyncio.gather(*(host_of(h, p) for h, p in best.items()))
    return MxResult(domain, tuple(hosts), answer.records)


def is_valid(result: MxResult) -> bool:
    """1 for a null MX, or for MX hosts that all resolve and none an IP literal."""
    if result.null_mx:
        return True
    if not result.hosts:
        return False
    return all(h.resolves and not h.ip_literal for h in result.hosts)


class MxCheck:
    name: ClassVar[str] = "mx"
    metrics: ClassVar[Sequence[MetricSpec]] = (
        MetricSpec(HOSTS, "Number of MX hosts of the domain (0 for a null MX or no MX).",
                   ("domain",)),
        MetricSpec(VALID, "1 when every MX host resolves to an address and none is an IP "
                   "literal, or the domain has a null MX (RFC 7505); 0 with no MX.", ("domain",)),
    )

    def targets(self, config: Config) -> list[Target]:
        return [Target(self.name, d.name) for d in config.domains]

    def interval(self, config: Config) -> float:
        return config.mx.interval

    async def run(self, target: Target, ctx: CheckContext) -> Findings:
        findings = Findings()
        result = await lookup_mx(ctx.resolver, target.key)
        findings.add(HOSTS, len(result.hosts), domain=result.domain)
        findings.add(VALID, is_valid(result), domain=result.domain)
        note(findings, result)
        return findings


def _evidence(result: MxResult) -> str:
    return "\n".join(f"{result.domain} MX {r or '(empty)'}" for r in result.records)


def note(findings: Findings, result: MxResult) -> None:
    """Findings for people about one MX result."""
    d = result.domain
    if not result.exists:
        findings.note(Status.FAIL, f"{d} does not exist (NXDOMAIN)", evidence=f"{d} MX: nxdomain",
                      fix=f"Check the domain name in the config, or register and delegate {d}.")
        return
    if result.null_mx:
        findings.note(Status.PASS, f"{d} has a null MX: it receives no mail (RFC 7505)",
                      evidence=_evidence(result))
        return
    if result.bad_null_mx:
        findings.note(
            Status.FAIL, f"{d} mixes a null MX with other MX records", evidence=_evidence(result),
            fix=f'Either publish only "{d}. MX 0 ." (no mail accepted) or remove the "." record.',
        )
        return
    if not result.hosts:
        host = result.implicit_host
        addrs = ", ".join(host.addresses) if host and host.addresses else "no address"
        findings.note(
            Status.FAIL, f"{d} has no MX: receivers fall back to the A record",
            evidence=f"{d} MX: nodata; {d} A/AAAA: {addrs}",
            fix=f'Publish an MX ("{d}. MX 10 mail.{d}.") or a null MX ("{d}. MX 0 .") '
                "if the domain receives no mail.",
        )
        return
    evidence = _evidence(result)
    for h in result.hosts:
        if h.ip_literal:
            findings.note(
                Status.FAIL, f"MX {h.name} is an IP address, not a host name", evidence=evidence,
                fix=f"Publish mail.{d} A {h.name.strip('[]')} and point the MX at mail.{d}.",
            )
        elif not h.resolves:
            findings.note(Status.FAIL, f"MX host {h.name} has no A or AAAA record",
                          evidence=f"{evidence}\n{h.name} A/AAAA: none",
                          fix=f"Publish the address of {h.name}, or remove the MX record.")
        if h.cname_target:
            findings.note(
                Status.WARN, f"MX host {h.name} is a CNAME (to {h.cname_target})",
                evidence=f"{evidence}\n{h.name} CNAME {h.cname_target}",
                fix=f"Point the MX straight at {h.cname_target} (RFC 2181 §10.3).",
            )
    if is_valid(result):
        listing = ", ".join(f"{h.name} ({' '.join(h.addresses)})" for h in result.hosts)
        findings.note(Status.PASS, f"All {len(result.hosts)} MX hosts of {d} resolve",
                      evidence=listing)
