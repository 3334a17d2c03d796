"""DNSSEC: do the domain's answers validate at the configured (validating) resolver?

The exporter does not validate itself: it reads the AD bit that a
validating resolver (unbound with a trust anchor, as the README advises) sets
on secure answers. The domain's SOA and MX answers (positive or a negative
NODATA/NXDOMAIN proof) must both carry it.

A validating resolver answers SERVFAIL for a bogus zone. That is a failed
lookup, so the run fails and no ``dnssec_valid`` sample is made from it (a
timeout would look the same), but a finding says that SERVFAIL is what
receivers see as well and that a broken signature is the likely cause.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import ClassVar

from exporter.checks.base import CheckContext, Findings, MetricSpec, Status, Target
from exporter.config import Config
from exporter.dns import Outcome

_TYPES = ("SOA", "MX")


class DnssecCheck:
    name: ClassVar[str] = "dnssec"
    metrics: ClassVar[Sequence[MetricSpec]] = (
        MetricSpec("deliverability_dnssec_valid",
                   "1 when the validating resolver marks the domain's SOA and MX answers "
                   "authenticated (AD bit).", ("domain",)),
    )

    def targets(self, config: Config) -> list[Target]:
        return [Target(self.name, d.name) for d in config.domains]

    def interval(self, config: Config) -> float:
        return config.dnssec.interval

    async def run(self, target: Target, ctx: CheckContext) -> Findings:
        f = Findings()
        domain = target.key
        answers = await asyncio.gather(*(ctx.resolver.resolve(domain, t) for t in _TYPES))
        failed = [a for a in answers if not a.answered]
        if failed:
            for a in failed:
                f.error(f"dnssec {a.rdtype} {domain}: {a.outcome.value}"
                        + (f" ({a.detail})" if a.detail else ""))
            if any(a.outcome is Outcome.SERVFAIL for a in failed):
                f.note(Status.FAIL, f"{domain} answers SERVFAIL: DNSSEC may be bogus",
                       evidence="; ".join(f"{a.rdtype} {domain}: SERVFAIL" for a in failed),
                       fix=f"Check the signatures and the DS record of {domain} (e.g. "
                           f"`delv {domain} SOA` or https://dnsviz.net/d/{domain}/); "
                           "validating receivers cannot resolve it either.")
            return f
        evidence = "; ".join(
            f"{a.rdtype} {a.outcome.value}{' AD' if a.authenticated else ' no AD'}"
            for a in answers)
        secure = all(a.authenticated for a in answers)
        f.add("deliverability_dnssec_valid", secure, domain=domain)
        if secure:
            f.note(Status.PASS, f"{domain} is DNSSEC-signed and validates", evidence=evidence)
        else:
            f.note(Status.WARN, f"{domain} answers are not DNSSEC-validated", evidence=evidence,
                   fix=f"Sign {domain} at its DNS host and publish the DS record at the "
                       "registrar; check the exporter's resolver validates (unbound with "
                       "auto-trust-anchor-file).")
        return f
