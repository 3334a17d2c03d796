"""Which MX hosts a transport check probes for a domain, and who owns their series.

The SMTP and DANE metrics are labelled by ``mx`` only (the contract), so two
configured domains that share an MX host would emit the same series twice.
Rule: an MX host's series belong to the *first* domain in config order (among
those with ``smtp: true``) whose MX set contains it; later domains skip it and
say so in a finding. Deciding needs the earlier domains' MX records: those
lookups are part of this run (cached, so cheap), and if one is unanswered the
run fails rather than guess.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from exporter.checks.mx import MxHost, MxResult, lookup_mx
from exporter.config import Config
from exporter.dns import Outcome, Resolver, normalize_name, parse_mx


@dataclass(frozen=True, slots=True)
class MxSet:
    domain: str
    #: Host names by preference (ties by name), duplicates removed.
    hosts: tuple[str, ...]
    #: RFC 7505 null MX ("0 ."): the domain accepts no mail.
    null: bool = False
    #: No MX records: mail goes to the domain's own address (RFC 5321 §5.1).
    implicit: bool = False


@dataclass(slots=True)
class OwnedMx:
    #: The domain's MX lookup (hosts with addresses), from :func:`lookup_mx`.
    mx: MxResult
    #: The hosts this domain's run reports on, in the order a sender tries them.
    owned: list[MxHost] = field(default_factory=list)
    #: Hosts reported under an earlier domain: host -> that domain.
    elsewhere: dict[str, str] = field(default_factory=dict)


async def mx_set(resolver: Resolver, domain: str) -> MxSet:
    """The MX host names of ``domain`` (no address lookups). Raises LookupFailed.

    Same hosts as ``lookup_mx(...).delivery_hosts``: the implicit MX when there
    are no MX records, nothing for NXDOMAIN or a null MX.
    """
    domain = normalize_name(domain)
    answer = (await resolver.resolve(domain, "MX")).require()
    if answer.outcome is Outcome.NXDOMAIN:
        return MxSet(domain, ())
    if not answer.records:
        return MxSet(domain, (domain,), implicit=True)
    parsed = sorted(parse_mx(r) for r in answer.records)
    if any(host == "" for _, host in parsed):
        return MxSet(domain, (), null=True)
    return MxSet(domain, tuple(dict.fromkeys(host for _, host in parsed)))


async def owned_mx(resolver: Resolver, config: Config, domain: str) -> OwnedMx:
    """This domain's MX hosts, split into those it reports and those an earlier domain does."""
    domain = normalize_name(domain)
    earlier: list[str] = []
    for d in config.domains:
        if d.name == domain:
            break
        if d.smtp:
            earlier.append(d.name)
    mine, *others = await asyncio.gather(
        lookup_mx(resolver, domain), *(mx_set(resolver, d) for d in earlier)
    )
    assert isinstance(mine, MxResult)
    result = OwnedMx(mine)
    for host in mine.delivery_hosts:
        owner = next((o.domain for o in others if isinstance(o, MxSet) and host.name in o.hosts),
                     None)
        if owner is None:
            result.owned.append(host)
        else:
            result.elsewhere[host.name] = owner
    return result
