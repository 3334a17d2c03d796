"""Reverse DNS the way receiving mail servers check it.

Gmail, Microsoft and most large receivers want three things of a sending IP:
a PTR record, forward confirmation (one of the PTR names has an A/AAAA record
containing the IP: FCrDNS), and a HELO name that is one of those names and
resolves back to the IP.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from typing import ClassVar

from exporter.checks.base import CheckContext, Findings, MetricSpec, Status, Target
from exporter.checks.common import sender_host_addresses
from exporter.config import Config
from exporter.dns import Resolver, reverse_name

PTR_PRESENT = "deliverability_ptr_present"
FCRDNS_VALID = "deliverability_fcrdns_valid"
HELO_ALIGNED = "deliverability_helo_aligned"
PTR_INFO = "deliverability_ptr_info"

#: Receivers stop following a PTR RRset after a handful of names (RFC 7208 §4.6.4 uses 10).
MAX_PTR_NAMES = 10


async def forward_addresses(resolver: Resolver, name: str, version: int) -> tuple[str, ...]:
    """The A (IPv4) or AAAA (IPv6) addresses of a name; raises LookupFailed if unanswered."""
    answer = (await resolver.resolve(name, "A" if version == 4 else "AAAA")).require()
    return answer.records


async def evaluate(resolver: Resolver, ip: str, helo: str, findings: Findings) -> None:
    """Record PTR, FCrDNS and HELO alignment for one IP."""
    version = ipaddress.ip_address(ip).version
    answer = (await resolver.resolve(reverse_name(ip), "PTR")).require()
    names = answer.records[:MAX_PTR_NAMES]
    findings.add(PTR_PRESENT, bool(names), ip=ip)
    for name in names:
        findings.add(PTR_INFO, 1, ip=ip, ptr=name)
    forward = await asyncio.gather(*(forward_addresses(resolver, n, version) for n in names))
    confirmed = [n for n, addrs in zip(names, forward, strict=True) if ip in addrs]
    findings.add(FCRDNS_VALID, bool(confirmed), ip=ip)
    if not names:
        findings.note(
            Status.FAIL, f"{ip} has no PTR record",
            evidence=f"{reverse_name(ip)} PTR: {answer.outcome.value}",
            fix=f"Ask whoever controls the IP (your hosting provider) to set the PTR of {ip} "
                f"to your mail server's name{f' ({helo})' if helo else ''}.",
        )
    elif not confirmed:
        findings.note(
            Status.FAIL, f"{ip}: PTR is not forward-confirmed",
            evidence=f"PTR {', '.join(names)}; none of them resolves to {ip}",
            fix=f"Publish {names[0]} {'A' if version == 4 else 'AAAA'} {ip}, or change the PTR "
                f"to a name that resolves to {ip}.",
        )
    else:
        findings.note(Status.PASS, f"{ip}: PTR {', '.join(confirmed)} is forward-confirmed")
    if not helo:
        findings.note(Status.INFO, f"{ip}: no HELO name configured, alignment not checked")
        return
    helo_addrs = await forward_addresses(resolver, helo, version)
    aligned = helo in names and ip in helo_addrs
    findings.add(HELO_ALIGNED, aligned, ip=ip, helo=helo)
    if aligned:
        findings.note(Status.PASS, f"{ip}: HELO {helo} matches the PTR and resolves back")
    else:
        why = []
        if helo not in names:
            why.append(f"PTR is {', '.join(names) or 'missing'}, not {helo}")
        if ip not in helo_addrs:
            why.append(f"{helo} resolves to {', '.join(helo_addrs) or 'nothing'}")
        findings.note(
            Status.FAIL, f"{ip}: HELO {helo} is not aligned", evidence="; ".join(why),
            fix=f"Make the server say HELO/EHLO with its PTR name, set the PTR of {ip} to "
                f"{helo}, and publish {helo} {'A' if version == 4 else 'AAAA'} {ip}.",
        )


class PtrCheck:
    name: ClassVar[str] = "ptr"
    metrics: ClassVar[Sequence[MetricSpec]] = (
        MetricSpec(PTR_PRESENT, "1 when the sending IP has a PTR record.", ("ip",)),
        MetricSpec(FCRDNS_VALID, "1 when a PTR name of the IP resolves back to the IP (FCrDNS).",
                   ("ip",)),
        MetricSpec(HELO_ALIGNED, "1 when the HELO name is one of the IP's PTR names and "
                   "resolves to the IP.", ("ip", "helo")),
        MetricSpec(PTR_INFO, "The PTR names of the sending IP (value always 1).", ("ip", "ptr")),
    )

    def targets(self, config: Config) -> list[Target]:
        targets: dict[str, Target] = {}
        for sender in config.senders:
            key = sender.ip or sender.host
            params: tuple[tuple[str, object], ...] = (
                ("kind", "ip" if sender.ip else "host"), ("helo", sender.helo_name),
            )
            targets.setdefault(key, Target(self.name, key, params))
        return list(targets.values())

    def interval(self, config: Config) -> float:
        return config.ptr.interval

    async def run(self, target: Target, ctx: CheckContext) -> Findings:
        findings = Findings()
        helo = str(target.param("helo", "") or "")
        if target.param("kind") == "host":
            addresses = await sender_host_addresses(ctx.resolver, target.key, ctx.config,
                                                    findings)
        else:
            addresses = [target.key]
        await asyncio.gather(*(evaluate(ctx.resolver, ip, helo, findings) for ip in addresses))
        return findings

