"""Lookups several checks need."""

from __future__ import annotations

import asyncio
import re

from exporter.checks.base import Findings, Status
from exporter.config import Config
from exporter.dns import Resolver


def configured_ips(config: Config) -> frozenset[str]:
    return frozenset(s.ip for s in config.senders if s.ip)


async def sender_host_addresses(
    resolver: Resolver, host: str, config: Config, findings: Findings
) -> list[str]:
    """The addresses a sender-host run reports on.

    Addresses that are configured as senders of their own are left to their own
    target, and the run's series are marked shared: two hosts may resolve to the
    same address, and the collector must then show each series once.
    """
    findings.exclusive = False
    own = configured_ips(config)
    return [a for a in await host_addresses(resolver, host, findings) if a not in own]


async def host_addresses(resolver: Resolver, host: str, findings: Findings) -> list[str]:
    """A sender host's A and AAAA addresses; an unanswered lookup is an error."""
    answers = await asyncio.gather(resolver.resolve(host, "A"), resolver.resolve(host, "AAAA"))
    addresses: list[str] = []
    for answer in answers:
        answer.require()
        addresses.extend(answer.records)
    if not addresses:
        findings.note(Status.FAIL, f"Sender host {host} has no A or AAAA record",
                      fix=f"Publish the sending addresses of {host}.")
    return addresses


async def single_record(
    resolver: Resolver, qname: str, start: re.Pattern[str], findings: Findings, *,
    domain: str, what: str, fix: str,
) -> str | None:
    """The one TXT record at ``qname`` that starts with its version tag, or None.

    None comes with a finding: no record (INFO, with the record to publish) or
    several (FAIL: receivers use none of them). An unanswered lookup raises.
    """
    answer = (await resolver.resolve(qname, "TXT")).require()
    records = [r for r in answer.records if start.match(r)]
    if len(records) == 1:
        return records[0]
    if records:
        findings.note(Status.FAIL, f"{domain} has {len(records)} {what} records",
                      evidence=" | ".join(records), fix=f"Keep exactly one record at {qname}.")
    else:
        findings.note(Status.INFO, f"{domain} publishes no {what} record",
                      evidence=f"{qname} TXT: {answer.outcome.value}", fix=fix)
    return None
