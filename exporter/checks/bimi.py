"""BIMI: ``default._bimi.<domain>`` and its DMARC prerequisite.

``bimi_valid`` is 1 when receivers could show the logo: exactly one
``v=BIMI1`` record whose ``l=`` is an https URL (``a=``, when present, an
https URL too), and a DMARC policy of quarantine or reject at pct 100. A
declination record (``l=`` empty) is well formed but shows no logo, so it
reads 0 with an INFO finding. The logo and the VMC themselves are not fetched.

The DMARC prerequisite uses a minimal own lookup (``_dmarc.<domain>``, else
the nearest parent's record with its ``sp``), so this check does not depend
on the DMARC check's module; an unanswered DMARC lookup fails the run.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from exporter.checks.base import CheckContext, Findings, MetricSpec, Status, Target
from exporter.checks.common import single_record
from exporter.checks.dmarc import applied_policy, policy_name
from exporter.checks.dmarc_record import Policy
from exporter.config import Config

_BIMI_START = re.compile(r"^v=BIMI1\s*(;|$)")


def tags(text: str) -> dict[str, str]:
    """``k=v; k=v`` → dict; ValueError on a malformed or duplicate tag."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"malformed tag {part!r}")
        key = key.strip().lower()
        if key in out:
            raise ValueError(f"duplicate tag {key!r}")
        out[key] = value.strip()
    return out


def _https(url: str) -> bool:
    parsed = urllib.parse.urlsplit(url)
    return parsed.scheme == "https" and bool(parsed.hostname)


@dataclass(frozen=True, slots=True)
class BimiRecord:
    logo: str
    authority: str

    @property
    def declined(self) -> bool:
        return not self.logo and not self.authority


def parse_bimi(text: str) -> BimiRecord:
    if not _BIMI_START.match(text):
        raise ValueError("the record must start with v=BIMI1")
    t = tags(text)
    if t.get("v") != "BIMI1":
        raise ValueError("the record must start with v=BIMI1")
    if "l" not in t:
        raise ValueError("no l= tag")
    logo, authority = t["l"], t.get("a", "")
    # l= may list several comma-separated URLs in early drafts; each must be https.
    for url in filter(None, (u.strip() for u in logo.split(","))):
        if not _https(url):
            raise ValueError(f"l={url} is not an https URL")
    if authority and not _https(authority):
        raise ValueError(f"a={authority} is not an https URL")
    return BimiRecord(logo, authority)


class BimiCheck:
    name: ClassVar[str] = "bimi"
    metrics: ClassVar[Sequence[MetricSpec]] = (
        MetricSpec("deliverability_bimi_valid",
                   "1 when one valid BIMI record with an https logo URL exists and DMARC is "
                   "quarantine or reject at pct 100.", ("domain",)),
    )

    def targets(self, config: Config) -> list[Target]:
        return [Target(self.name, d.name) for d in config.domains]

    def interval(self, config: Config) -> float:
        return config.bimi.interval

    async def run(self, target: Target, ctx: CheckContext) -> Findings:
        f = Findings()
        domain = target.key
        qname = f"default._bimi.{domain}"
        fix = (f"Publish {qname}. IN TXT \"v=BIMI1; l=https://{domain}/logo.svg\" "
               "(an SVG Tiny PS logo; a= your VMC for Gmail).")
        text = await single_record(ctx.resolver, qname, _BIMI_START, f, domain=domain,
                                   what="BIMI", fix=fix)
        if text is None:
            f.add("deliverability_bimi_valid", 0, domain=domain)
            return f
        try:
            record = parse_bimi(text)
        except ValueError as exc:
            f.add("deliverability_bimi_valid", 0, domain=domain)
            f.note(Status.FAIL, f"{domain} BIMI record is invalid",
                   evidence=f"{text} ({exc})", fix=fix)
            return f
        if record.declined:
            f.add("deliverability_bimi_valid", 0, domain=domain)
            f.note(Status.INFO, f"{domain} declines BIMI", evidence=text)
            return f
        dmarc = await applied_policy(ctx.resolver, domain)
        if dmarc is None or dmarc.policy < Policy.QUARANTINE or dmarc.pct != 100:
            seen = (f"DMARC at _dmarc.{dmarc.source}: {dmarc.record}" if dmarc
                    else f"no DMARC record applies to {domain}")
            f.add("deliverability_bimi_valid", 0, domain=domain)
            f.note(Status.FAIL, f"{domain} BIMI needs DMARC quarantine or reject at pct 100",
                   evidence=f"{text}; {seen}",
                   fix=f"Publish _dmarc.{domain}. IN TXT \"v=DMARC1; p=quarantine; "
                       f"rua=mailto:dmarc@{domain}\" (no pct, or pct=100).")
            return f
        f.add("deliverability_bimi_valid", 1, domain=domain)
        f.note(Status.PASS, f"{domain} BIMI record valid",
               evidence=f"{text}; DMARC {policy_name(dmarc.policy)} "
                        f"at _dmarc.{dmarc.source}")
        return f
