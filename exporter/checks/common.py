"""Lookups several checks need."""

from __future__ import annotations

import asyncio

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
