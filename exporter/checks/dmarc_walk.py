"""The RFC 9989 §4.10 DNS Tree Walk: which DMARC record applies to a domain.

RFC 9989 replaced the public suffix list with a walk up the DNS: query
``_dmarc`` at the domain, then at its parents label by label (at most eight
queries; long names skip to their 7-label suffix), stopping at a record
with ``psd=n`` or ``psd=y``. The Organizational Domain is chosen among the
records found (§4.10.2), and the policy that applies to a domain without a
record of its own is its Organizational Domain's, else its Public Suffix
Domain's (§4.10.1).

Every lookup goes through the project's resolver and must be answered: a
walk with a hole in it could miss the record that applies, so an
unanswered lookup raises :class:`exporter.dns.LookupFailed`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from exporter.checks.dmarc_record import DmarcRecord, Rfc, dmarc_texts, parse_dmarc
from exporter.dns import Outcome, Resolver, normalize_name

#: A walk never asks more than this many _dmarc names (RFC 9989 §4.10).
MAX_WALK_QUERIES = 8


@dataclass(frozen=True, slots=True)
class Level:
    """What ``_dmarc.<domain>`` held during a walk."""

    domain: str
    #: Every TXT string at the name that is a DMARC record.
    texts: tuple[str, ...]
    #: All TXT strings, for evidence (an SPF record at _dmarc, a typo'd version).
    all_texts: tuple[str, ...]

    @property
    def record(self) -> DmarcRecord | None:
        """The single DMARC record here; several are all discarded (RFC 9989 §4.10 step 2)."""
        return parse_dmarc(self.texts[0], Rfc.RFC9989) if len(self.texts) == 1 else None


@dataclass(frozen=True, slots=True)
class Walk:
    """The levels a walk visited, starting domain first."""

    start: str
    levels: tuple[Level, ...]

    def found(self) -> list[tuple[str, DmarcRecord]]:
        """(domain, record) for each level with exactly one DMARC record, longest first."""
        out: list[tuple[str, DmarcRecord]] = []
        for level in self.levels:
            record = level.record
            if record is not None:
                out.append((level.domain, record))
        return out


def walk_names(domain: str) -> list[str]:
    """The names a full walk from ``domain`` queries, in order (RFC 9989 §4.10 steps 3-7)."""
    labels = normalize_name(domain).split(".")
    # Up to 8 labels: start at the parent. More: skip to the 7-label suffix.
    first_parent = 1 if len(labels) <= MAX_WALK_QUERIES else len(labels) - 7
    return [".".join(labels)] + [".".join(labels[i:]) for i in range(first_parent, len(labels))]


async def read_level(resolver: Resolver, domain: str) -> Level:
    """The DMARC records at ``_dmarc.<domain>``; NXDOMAIN/NODATA is an empty level."""
    answer = (await resolver.resolve(f"_dmarc.{domain}", "TXT")).require()
    return Level(domain, tuple(dmarc_texts(list(answer.records))), answer.records)


async def tree_walk(resolver: Resolver, domain: str, first: Level | None = None) -> Walk:
    """Walk from ``domain`` up until a psd=n/psd=y record or the top-level domain.

    ``first`` is the already-read level of ``domain`` itself, to not ask twice.
    """
    names = walk_names(domain)
    levels = [first if first is not None else await read_level(resolver, names[0])]
    for name in names[1:]:
        record = levels[-1].record
        if record is not None and record.psd in ("y", "n"):
            break
        levels.append(await read_level(resolver, name))
    return Walk(names[0], tuple(levels))


def _child_toward(start: str, ancestor: str) -> str:
    """The name one label below ``ancestor`` on the way down to ``start``."""
    labels = start.split(".")
    depth = len(ancestor.split("."))
    return ".".join(labels[len(labels) - depth - 1:])


def organizational_domain(start: str, found: list[tuple[str, DmarcRecord]]) -> str:
    """RFC 9989 §4.10.2: choose the Organizational Domain among the records a walk found."""
    for domain, record in found:
        if record.psd == "n":
            return domain
        if record.psd == "y" and domain != start:
            return _child_toward(start, domain)
    if found:
        return found[-1][0]
    return start


@dataclass(frozen=True, slots=True)
class Discovery:
    """The record that applies to a domain and where it was found."""

    domain: str
    org_domain: str
    #: Where the applying record was found ("" when none applies).
    source: str = ""
    record: DmarcRecord | None = None

    @property
    def inherited(self) -> bool:
        return self.record is not None and self.source != self.domain


def discover(start: str, walk: Walk) -> Discovery:
    """RFC 9989 §4.10.1: own record, else the Organizational Domain's, else the PSD's.

    ``walk`` must have visited ``start``'s suffixes (a walk from ``start`` or
    from its parent, as for a name below a configured domain).
    """
    found = walk.found()
    org = organizational_domain(start, found)
    by_domain = dict(found)
    if start in by_domain:
        return Discovery(start, org, start, by_domain[start])
    if org in by_domain:
        return Discovery(start, org, org, by_domain[org])
    for domain, record in found:
        if record.psd == "y":
            return Discovery(start, org, domain, record)
    return Discovery(start, org)


async def org_domain_of(resolver: Resolver, name: str) -> str:
    """The Organizational Domain of any name (used for report destinations)."""
    walk = await tree_walk(resolver, name)
    return organizational_domain(normalize_name(name), walk.found())


async def domain_exists(resolver: Resolver, domain: str) -> bool:
    """RFC 9091 §2.1 / RFC 9989: a domain exists unless A, AAAA and MX are all NXDOMAIN/NODATA."""
    answers = await asyncio.gather(
        *(resolver.resolve(domain, t) for t in ("A", "AAAA", "MX"))
    )
    return any(a.require().outcome is Outcome.OK for a in answers)
