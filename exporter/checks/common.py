"""Lookups several checks need."""

from __future__ import annotations

import asyncio

from exporter.checks.base import Findings, Status
from exporter.dns import Resolver


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
