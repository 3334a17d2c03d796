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
from exporter.dns import Resolver, normalize_name


@dataclass(slots=True)
class OwnedMx:
    #: The domain's MX lookup (hosts with addresses), from :func:`lookup_mx`.
    mx: MxResult
    #: The hosts this domain's run reports on, in the order a sender tries them.
    owned: list[MxHost] = field(default_factory=list)
    #: Hosts reported under an earlier domain: host -> that domain.
    elsewhere: dict[str, str] = field(default_factory=dict)


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
        lookup_mx(resolver, domain),
        *(lookup_mx(resolver, d, addresses=False) for d in earlier),
    )
    result = OwnedMx(mine)
    for host in mine.delivery_hosts:
        owner = next((o.domain for o in others
                      if any(h.name == host.name for h in o.delivery_hosts)), None)
        if owner is None:
            result.owned.append(host)
        else:
            result.elsewhere[host.name] = owner
    return result
