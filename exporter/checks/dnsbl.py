"""DNS blocklists (RFC 5782): is a sending IP or a domain listed, and can the list be trusted?

Three kinds of target share this check:

- a blocklist *zone*: its RFC 5782 test entries (127.0.0.2 listed, 127.0.0.1
  not; TEST listed and INVALID not for domain lists) say whether the list
  works at all;
- a sending *IP* (or a sender *host*, whose A/AAAA addresses are checked)
  against every IP zone;
- a *domain* against every domain zone.

Every IP and domain run re-asks the test entries itself. The shared resolver
coalesces and caches those questions, so that costs nothing, and it makes
each run self-contained: a zone that has started listing the whole Internet
is skipped in the very run that would otherwise page every sender.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import math
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple, cast

from exporter.blocklists import classify_code, delist_url, effective_zones, error_networks
from exporter.checks.base import (
    CheckContext,
    Findings,
    MetricSpec,
    Sample,
    Status,
    Target,
    label_pair,
)
from exporter.checks.common import sender_host_addresses
from exporter.config import Config, ZoneConfig
from exporter.dns import (
    Answer,
    DnsResolver,
    Outcome,
    Resolver,
    join_in_flight,
    resolve_all,
    resolve_fresh,
)
from exporter.dns_wire import labels_wire
from exporter.flight import Flight, wait_all

#: RFC 5782 §5: the entries every list must (not) list.
IP_TEST_LISTED = "127.0.0.2"
IP_TEST_NOT_LISTED = "127.0.0.1"
DOMAIN_TEST_LISTED = "test"
DOMAIN_TEST_NOT_LISTED = "invalid"

REASON_MAX = 200

LISTED = "deliverability_dnsbl_listed"
DOMAIN_LISTED = "deliverability_dnsbl_domain_listed"
LISTINGS = "deliverability_dnsbl_listings"
LISTING_INFO = "deliverability_dnsbl_listing_info"
ZONE_HEALTHY = "deliverability_dnsbl_zone_healthy"

KIND_ZONE, KIND_IP, KIND_HOST, KIND_DOMAIN = "zone", "ip", "host", "domain"


@functools.lru_cache(maxsize=131072)
def _query_prefix(item: str) -> str:
    """Reversed octets or nibbles of an IP, or the domain itself (memoised: every run of
    a sender asks every zone, and parsing the address each time was a fifth of a cycle)."""
    try:
        # The common case without ipaddress, whose parsing was 5 % of a first cycle:
        # inet_pton takes only dotted quads without leading zeros, so the text is canonical.
        socket.inet_pton(socket.AF_INET, item)
        return ".".join(reversed(item.split(".")))
    except OSError:
        pass
    try:
        addr = ipaddress.ip_address(item)
    except ValueError:
        return item
    # reverse_pointer gives "4.3.2.1.in-addr.arpa" / "...ip6.arpa": strip the suffix.
    return addr.reverse_pointer.rsplit(".", 2)[0]


def dnsbl_query_name(item: str, zone: str) -> str:
    """The name to ask: reversed octets or nibbles for an IP, the name itself for a domain."""
    return f"{_query_prefix(item)}.{zone}"


@functools.lru_cache(maxsize=131072)
def _wire_part(name: str) -> bytes | None:
    """``dns_wire.labels_wire``, memoised: a query name is an item's part and a zone's
    part joined, and every sender asks every zone (encoding whole names was a twelfth of
    a cycle's CPU)."""
    return labels_wire(name)


@dataclass(frozen=True, slots=True)
class ZoneVerdict:
    """What one zone said about one item, after classification."""

    zone: str
    answered: bool
    listed: bool = False
    codes: tuple[str, ...] = ()
    reason: str = ""
    #: Why the answer was not usable ("timeout", "error code 127.255.255.254").
    problem: str = ""
    #: The zone turned out to list everything while this answer was read.
    zone_unhealthy: bool = False


@functools.lru_cache(maxsize=1024)
def _not_listed(zone: str) -> ZoneVerdict:
    """The commonest verdict by far, one shared (immutable) value per zone."""
    return ZoneVerdict(zone, True, listed=False)


@dataclass(frozen=True, slots=True)
class ZoneHealth:
    zone: str
    healthy: bool
    answered: bool
    problem: str = ""
    #: How long the answers behind this verdict stay cached (0: not answered).
    ttl: float = 0.0


class HealthSnapshot(NamedTuple):
    """The verdicts of a list of zones, read from a :class:`HealthMemo` at once."""

    healths: tuple[ZoneHealth, ...]
    #: When the first of them expires.
    until: float
    #: The memo's generation when it was read: any change since makes it stale.
    generation: int


class HealthMemo:
    """A zone's health, reused for as long as the answers it was read from are cached.

    Every sender's run needs the health of every zone; the verdict is a pure
    function of two cached answers, so it is worked out once per TTL instead of
    once per (sender, zone), and runs that need it while it is being worked out
    wait for that one evaluation. Unanswered verdicts are not kept, like failed
    lookups: the next run asks again.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # By zone name, with the config it was read under: hashing the whole
        # ZoneConfig for every (sender, zone) was 2 % of a cycle. A reload that
        # changes the zone's settings gets a new verdict.
        self._known: dict[str, tuple[ZoneConfig, float, ZoneHealth]] = {}
        #: Bumped whenever a remembered verdict changes, so a snapshot can tell it is stale.
        self.generation = 0
        self._pending: dict[ZoneConfig, asyncio.Future[ZoneHealth]] = {}

    def known(self, zone: ZoneConfig) -> ZoneHealth | None:
        """The remembered verdict while it is fresh, without waiting for anything."""
        fresh = self._fresh(zone, self._clock())
        return None if fresh is None else fresh[1]

    def _fresh(self, zone: ZoneConfig, now: float) -> tuple[float, ZoneHealth] | None:
        """(expiry, verdict) while the verdict is fresh and was read under this config."""
        known = self._known.get(zone.zone)
        if known is None or known[1] <= now:
            return None
        config, expiry, health = known
        return (expiry, health) if config is zone or config == zone else None

    def snapshot(self, zones: Sequence[ZoneConfig]) -> HealthSnapshot | None:
        """Every zone's remembered verdict at once, valid until the first expires (and
        while ``generation`` stays); None unless every one of them is fresh."""
        now = self._clock()
        healths = []
        until = math.inf
        for zone in zones:
            fresh = self._fresh(zone, now)
            if fresh is None:
                return None
            healths.append(fresh[1])
            until = min(until, fresh[0])
        return HealthSnapshot(tuple(healths), until, self.generation)

    def still_valid(self, snapshot: HealthSnapshot) -> bool:
        return snapshot.generation == self.generation and self._clock() < snapshot.until

    async def get(self, resolver: Resolver, zone: ZoneConfig) -> ZoneHealth:
        known = self.known(zone)
        if known is not None:
            return known
        pending = self._pending.get(zone)
        if pending is not None:
            joined = await join_in_flight(pending)
            if joined is not None:
                return joined
            # The run evaluating it was cancelled (a /probe timing out): do it here.
        return await self.refresh(resolver, zone)

    def forget(self, zone: ZoneConfig) -> None:
        self._known.pop(zone.zone, None)
        self.generation += 1

    async def refresh(self, resolver: Resolver, zone: ZoneConfig) -> ZoneHealth:
        """Evaluate now (the zone's own target does, every cycle) and remember it."""
        future: asyncio.Future[ZoneHealth] = asyncio.get_running_loop().create_future()
        self._pending[zone] = future
        try:
            health = await zone_health(resolver, zone)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            if self._pending.get(zone) is future:
                del self._pending[zone]
        future.set_result(health)
        if health.answered and health.ttl > 0:
            self._known[zone.zone] = (zone, self._clock() + health.ttl, health)
        else:
            self._known.pop(zone.zone, None)
        self.generation += 1
        return health


async def _settle_all(asked: list[Answer | Flight[Answer]]) -> list[Answer]:
    """``submit_many``'s answers, once every one has landed (one wake-up for all)."""
    await wait_all([a for a in asked if not isinstance(a, Answer)])
    return [a if isinstance(a, Answer) else a.result() for a in asked]


def _resolver_for(zone: ZoneConfig, ctx: CheckContext) -> Resolver:
    return ctx.zone_resolvers.get(zone.zone, ctx.resolver)


@dataclass(slots=True)
class _ZonePlan:
    """What every run over one kind of item (IPs, domains) needs of each zone, worked
    out once per context rather than once per (item, zone): 200,000 of those a cycle."""

    ctx: CheckContext
    zones: list[ZoneConfig]
    resolvers: list[Resolver]
    #: Each zone name's ``labels_wire``, joined to an item's to make a query name.
    wires: list[bytes | None]
    #: ``label_pair("zone", ...)`` of each zone.
    pairs: list[tuple[str, str]]
    not_listed: list[ZoneVerdict]
    #: When every zone's questions go through one resolver's ``submit_many``: that
    #: resolver and the counters it bumps (each zone's under its own name).
    bulk: tuple[DnsResolver, dict[str, int] | None] | None = None
    #: Each zone's counter key for ``bulk``.
    keys: list[str] = field(default_factory=list)
    #: The zones' health as last read from the memo: one check per run, not one per zone.
    healths: HealthSnapshot | None = None

    @classmethod
    def build(cls, ctx: CheckContext, kind: str) -> _ZonePlan:
        zones = [z for z in effective_zones(ctx.config.dnsbl.zones, ctx.config.dnsbl.builtin)
                 if z.type == kind]
        resolvers = [_resolver_for(z, ctx) for z in zones]
        plan = cls(ctx, zones, resolvers, [_wire_part(z.zone) for z in zones],
                   [label_pair("zone", z.zone) for z in zones],
                   [_not_listed(z.zone) for z in zones])
        views: list[tuple[DnsResolver, str, dict[str, int] | None] | None] = [
            getattr(r, "bulk_view", lambda: None)() for r in resolvers]
        first = views[0] if views else None
        if first is not None and all(v is not None and v[0] is first[0] and v[2] is first[2]
                                     for v in views):
            plan.bulk = (first[0], first[2])
            plan.keys = [v[1] for v in views if v is not None]
        return plan

    def ask(self, prefixes: Sequence[str], asked: list[int]) -> Awaitable[list[Answer]]:
        """Every asked zone's A answer for each item's query-name part, item by item
        (``len(asked)`` answers per item), all handed to the resolver at once."""
        zones, wires = self.zones, self.wires
        names: list[str] = []
        labels: list[bytes | None] = []
        for prefix in prefixes:
            # dnsbl_query_name, with the item's part looked up once rather than per zone
            names += [f"{prefix}.{zones[i].zone}" for i in asked]
            prefix_wire = _wire_part(prefix)
            labels += [None if prefix_wire is None or (wire := wires[i]) is None
                       else prefix_wire + wire for i in asked]
        if self.bulk is None:
            resolvers = self.resolvers
            return resolve_all([(resolvers[i], name, "A", label) for i, name, label in zip(
                asked * len(prefixes), names, labels, strict=True)])
        resolver, sent = self.bulk
        keys = self.keys if len(asked) == len(zones) else [self.keys[i] for i in asked]
        return _settle_all(resolver.submit_many("A", names, labels, keys * len(prefixes), sent))


#: A batch's report reads the resolver's socket once per this many targets.
_REPORTS_PER_POLL = 4

#: Module constants: reading a member off the enum class goes through its metaclass.
_NXDOMAIN = Outcome.NXDOMAIN
#: ``Sample``'s own ``__new__`` is a Python function; the commonest sample is built
#: directly (all three fields: the assertion keeps the two in step).
_new_sample = tuple.__new__
assert len(Sample._fields) == 3


def unlisted_verdict(zone: ZoneConfig, answer: Answer) -> ZoneVerdict | None:
    """The verdict on an A answer that is not a listing; None when it is one (confirm it)."""
    if not answer.answered:
        return ZoneVerdict(zone.zone, False, problem=_describe(answer))
    if answer.outcome is not Outcome.OK:
        return _not_listed(zone.zone)
    errors = error_networks(zone)
    bad = [c for c in answer.records if not classify_code(c, errors)]
    if bad:
        return ZoneVerdict(zone.zone, False, problem=f"error code {', '.join(bad)}")
    return None


async def confirm_listing(resolver: Resolver, zone: ZoneConfig, item: str,
                          answer: Answer) -> ZoneVerdict:
    """A listing is rare and consequential: check the zone is sane, then read its reason.

    The zone's must-not-be-listed test entry is asked again, past the cache: a
    list that has just started listing everything must not page for every
    sender in the minutes its earlier (healthy) test answers stay cached.
    """
    negative = DOMAIN_TEST_NOT_LISTED if zone.type == "domain" else IP_TEST_NOT_LISTED
    control = await resolve_fresh(resolver, dnsbl_query_name(negative, zone.zone), "A")
    if not control.answered:
        return ZoneVerdict(zone.zone, False, problem=f"test entry {negative}: "
                                                     f"{_describe(control)}")
    if control.outcome is Outcome.OK:
        return ZoneVerdict(zone.zone, True, zone_unhealthy=True,
                           problem=f"lists the test entry {negative} (it lists everything)")
    txt = await resolver.resolve(dnsbl_query_name(item, zone.zone), "TXT")
    if not txt.answered:
        return ZoneVerdict(zone.zone, False, problem=f"TXT: {_describe(txt)}")
    reason = " | ".join(txt.records)[:REASON_MAX]
    return ZoneVerdict(zone.zone, True, listed=True, codes=answer.records, reason=reason)


async def zone_health(resolver: Resolver, zone: ZoneConfig) -> ZoneHealth:
    """RFC 5782 §5 test entries: the listed one must be listed, the other must not."""
    if zone.type == "domain":
        positive, negative = DOMAIN_TEST_LISTED, DOMAIN_TEST_NOT_LISTED
    else:
        positive, negative = IP_TEST_LISTED, IP_TEST_NOT_LISTED
    pos, neg = await asyncio.gather(
        resolver.resolve(dnsbl_query_name(positive, zone.zone), "A"),
        resolver.resolve(dnsbl_query_name(negative, zone.zone), "A"),
    )
    for answer in (pos, neg):
        if not answer.answered:
            return ZoneHealth(zone.zone, False, False, f"does not answer: {_describe(answer)}")
    ttl = float(min(pos.ttl, neg.ttl))
    errors = error_networks(zone)
    for answer in (pos, neg):
        bad = [c for c in answer.records if not classify_code(c, errors)]
        if bad:
            return ZoneHealth(zone.zone, False, True,
                              f"answers with error code {', '.join(bad)}", ttl)
    if neg.outcome is Outcome.OK:
        return ZoneHealth(
            zone.zone, False, True, f"lists the test entry {negative} (it lists everything)", ttl
        )
    if pos.outcome is not Outcome.OK:
        return ZoneHealth(zone.zone, False, True, f"does not list the test entry {positive}",
                          ttl)
    return ZoneHealth(zone.zone, True, True, ttl=ttl)


def _describe(answer: Answer) -> str:
    return f"{answer.outcome.value}" + (f" ({answer.detail})" if answer.detail else "")


class DnsblCheck:
    name: ClassVar[str] = "dnsbl"

    def __init__(self) -> None:
        self.health = HealthMemo()
        #: By item kind ("ip", "domain"): the last context's plan (a reload or a /probe
        #: brings a new context, and the plan is rebuilt for it).
        self._plans: dict[str, _ZonePlan] = {}

    metrics: ClassVar[Sequence[MetricSpec]] = (
        MetricSpec(LISTED, "1 when a healthy blocklist zone lists the sending IP, 0 when not.",
                   ("ip", "zone")),
        MetricSpec(DOMAIN_LISTED, "1 when a healthy domain blocklist zone lists the domain.",
                   ("domain", "zone")),
        MetricSpec(LISTINGS, "How many healthy blocklist zones list the sending IP.", ("ip",)),
        MetricSpec(LISTING_INFO, "1 while listed; code is the A answer, reason the TXT "
                   "(cut to 200 characters). Labelled ip or domain.",
                   ("ip", "domain", "zone", "code", "reason")),
        MetricSpec(ZONE_HEALTHY, "1 when the zone answers its RFC 5782 test entries correctly.",
                   ("zone",)),
    )

    def targets(self, config: Config) -> list[Target]:
        zones = effective_zones(config.dnsbl.zones, config.dnsbl.builtin)
        targets = [Target(self.name, z.zone, (("kind", KIND_ZONE),)) for z in zones]
        keys: dict[str, str] = {}
        for sender in config.senders:
            keys[sender.ip or sender.host] = KIND_IP if sender.ip else KIND_HOST
        for domain in config.domains:
            if domain.name in keys and keys[domain.name] == KIND_HOST:
                keys[domain.name] = f"{KIND_HOST}+{KIND_DOMAIN}"
            else:
                keys.setdefault(domain.name, KIND_DOMAIN)
        zone_names = {z.zone for z in zones}
        for key, kind in keys.items():
            if key in zone_names:
                continue  # already a zone target; a list zone is not a sender
            targets.append(Target(self.name, key, (("kind", kind),)))
        return targets

    def interval(self, config: Config) -> float:
        return config.dnsbl.interval

    #: Sending IPs and domains checked in one scheduler run. A run each cost more CPU
    #: than its twenty lookups (a task, a timeout, a wake-up, a plan and a health read).
    batch_size: ClassVar[int] = 16

    def batchable(self, target: Target) -> bool:
        return target.param("kind", KIND_IP) in (KIND_IP, KIND_DOMAIN)

    async def run_batch(self, targets: Sequence[Target],
                        ctx: CheckContext) -> list[Findings | Exception]:
        """``run`` for several sending IPs and domains, each kind's lookups asked together."""
        outcomes: list[Findings | Exception | None] = [None] * len(targets)

        async def run_kind(kind: str, label: str) -> None:
            numbers = [n for n, t in enumerate(targets) if t.param("kind", KIND_IP) == kind]
            if not numbers:
                return
            plan = self._plan(ctx, label)
            items = [targets[n].key for n in numbers]
            try:
                found = await self._verdicts(items, plan)
            except Exception as exc:  # a bug: this kind's targets fail, not the other's
                for n in numbers:
                    outcomes[n] = exc
                return
            # Working out the verdicts and the report of a batch is a stretch of a
            # millisecond or more: the socket is read after the verdicts and every few
            # targets, so the upstream is not left without questions meanwhile.
            poll = plan.bulk[0].poll if plan.bulk is not None else None
            for k, (n, item, (healths, verdicts)) in enumerate(
                    zip(numbers, items, found, strict=True)):
                if poll is not None and not k % _REPORTS_PER_POLL:
                    poll()
                findings = Findings()
                try:
                    self._report(item, label, plan, healths, verdicts, findings)
                except Exception as exc:  # a bug: this target's run fails, not its batch's
                    outcomes[n] = exc
                    continue
                outcomes[n] = findings

        await asyncio.gather(run_kind(KIND_IP, "ip"), run_kind(KIND_DOMAIN, "domain"))
        # Every batchable target is of one of the two kinds; anything else is a bug.
        return [outcome if outcome is not None else RuntimeError("not a batchable target")
                for outcome in outcomes]

    async def run(self, target: Target, ctx: CheckContext) -> Findings:
        findings = Findings()
        kind = str(target.param("kind", KIND_IP))
        if kind == KIND_ZONE:
            zones = effective_zones(ctx.config.dnsbl.zones, ctx.config.dnsbl.builtin)
            zone = next(z for z in zones if z.zone == target.key)
            await self._run_zone(zone, ctx, findings)
            return findings
        if KIND_HOST in kind:
            addresses = await sender_host_addresses(ctx.resolver, target.key, ctx.config,
                                                    findings)
            ip_plan = self._plan(ctx, "ip")
            await asyncio.gather(*(self._run_item(a, "ip", ip_plan, findings)
                                   for a in addresses))
        if kind == KIND_IP:
            await self._run_item(target.key, "ip", self._plan(ctx, "ip"), findings)
        if KIND_DOMAIN in kind:
            await self._run_item(target.key, "domain", self._plan(ctx, "domain"), findings)
        return findings

    def _plan(self, ctx: CheckContext, kind: str) -> _ZonePlan:
        if not ctx.reuse_shared:  # a /probe's own context: not kept, the scheduler's stays
            return _ZonePlan.build(ctx, kind)
        plan = self._plans.get(kind)
        if plan is None or plan.ctx is not ctx:
            plan = self._plans[kind] = _ZonePlan.build(ctx, kind)
        return plan

    async def _run_zone(self, zone: ZoneConfig, ctx: CheckContext, findings: Findings) -> None:
        health = await self.health.refresh(_resolver_for(zone, ctx), zone)
        findings.add(ZONE_HEALTHY, health.healthy, zone=zone.zone)
        if not health.answered:
            findings.error(f"zone {zone.zone} {health.problem}")
        if health.healthy:
            findings.note(Status.PASS, f"Blocklist {zone.zone} answers its test entries")
        else:
            findings.note(
                Status.FAIL, f"Blocklist {zone.zone} is unhealthy: {health.problem}",
                evidence=health.problem,
                fix="Query it through your own recursive resolver (unbound), not a public "
                    "one; check your subscription or mirror; remove dead lists.",
            )

    async def _verdicts(self, items: Sequence[str], plan: _ZonePlan,
                        ) -> list[tuple[list[ZoneHealth], list[ZoneVerdict | None]]]:
        """For each item, every zone's health and (for the healthy ones) its verdict.

        The common case is all in one step: zone health from the memo, one
        question per (item, zone) handed to the resolver at once (no coroutine
        each), and the answers mostly "not listed". Only listings take the slow path.
        """
        zones, resolvers = plan.zones, plan.resolvers
        healths = await self._healths(plan)
        asked = [i for i, health in enumerate(healths) if health.healthy]
        answers = await plan.ask([_query_prefix(item) for item in items], asked)
        found: list[tuple[list[ZoneHealth], list[ZoneVerdict | None]]] = []
        listings: list[tuple[int, int, Answer]] = []  # (item number, zone number, answer)
        width = len(asked)
        for n in range(len(items)):
            verdicts: list[ZoneVerdict | None] = [None] * len(zones)
            for i, answer in zip(asked, answers[n * width:(n + 1) * width], strict=True):
                if answer.outcome is _NXDOMAIN:  # by far the commonest answer
                    verdicts[i] = plan.not_listed[i]
                elif (verdict := unlisted_verdict(zones[i], answer)) is not None:
                    verdicts[i] = verdict
                else:
                    listings.append((n, i, answer))
            # One list for every item while nothing changes it (it is only read).
            found.append((healths, verdicts))
        if listings:
            confirmed = await asyncio.gather(*(
                confirm_listing(resolvers[i], zones[i], items[n], answer)
                for n, i, answer in listings))
            for (n, i, _), verdict in zip(listings, confirmed, strict=True):
                item_healths, verdicts = found[n]
                if verdict.zone_unhealthy:
                    self.health.forget(zones[i])
                    if item_healths is healths:
                        item_healths = list(healths)
                        found[n] = (item_healths, verdicts)
                    item_healths[i] = ZoneHealth(zones[i].zone, False, True, verdict.problem)
                else:
                    verdicts[i] = verdict
        return found

    async def _healths(self, plan: _ZonePlan) -> list[ZoneHealth]:
        zones, resolvers, ctx = plan.zones, plan.resolvers, plan.ctx
        if not ctx.reuse_shared:  # a /probe reads everything afresh
            return list(await asyncio.gather(*(
                zone_health(r, z) for r, z in zip(resolvers, zones, strict=True))))
        memo = self.health
        if plan.healths is None or not memo.still_valid(plan.healths):
            plan.healths = memo.snapshot(zones)
        if plan.healths is not None:
            return list(plan.healths.healths)
        known = [memo.known(zone) for zone in zones]
        missing = [i for i, health in enumerate(known) if health is None]
        if missing:
            found = await asyncio.gather(*(memo.get(resolvers[i], zones[i])
                                           for i in missing))
            for i, health in zip(missing, found, strict=True):
                known[i] = health
        return cast(list[ZoneHealth], known)  # every gap was filled above

    async def _run_item(self, item: str, label: str, plan: _ZonePlan,
                        findings: Findings) -> None:
        healths, verdicts = (await self._verdicts((item,), plan))[0]
        self._report(item, label, plan, healths, verdicts, findings)

    def _report(self, item: str, label: str, plan: _ZonePlan, healths: list[ZoneHealth],
                verdicts: list[ZoneVerdict | None], findings: Findings) -> None:
        listed_count = 0
        complete = True
        metric = LISTED if label == "ip" else DOMAIN_LISTED
        item_pair = label_pair(label, item)  # "ip" and "domain" sort before "zone"
        samples = findings.samples
        for health, verdict, zone_pair, not_listed in zip(healths, verdicts, plan.pairs,
                                                          plan.not_listed, strict=True):
            if verdict is not_listed:  # the commonest verdict: Findings.add_pairs, inline
                samples.append(_new_sample(Sample, (metric, (item_pair, zone_pair), 0.0)))
                continue
            if verdict is None:
                if not health.answered:
                    complete = False
                    findings.error(f"{item} on {health.zone}: zone {health.problem}")
                continue  # an unhealthy zone's word is not reported at all
            if not verdict.answered:
                complete = False
                findings.error(f"{item} on {verdict.zone}: {verdict.problem}")
                continue
            findings.add_pairs(metric, verdict.listed, (item_pair, zone_pair))
            if verdict.listed:
                listed_count += 1
                for code in verdict.codes:
                    findings.add(LISTING_INFO, 1, **{label: item}, zone=verdict.zone,
                                 code=code, reason=verdict.reason)
                url = delist_url(verdict.zone)
                findings.note(
                    Status.FAIL, f"{item} is listed on {verdict.zone}",
                    evidence=f"{dnsbl_query_name(item, verdict.zone)} A "
                             f"{', '.join(verdict.codes)}; TXT {verdict.reason!r}",
                    fix=(f"Find and stop the cause, then request removal at {url}" if url
                         else "Find and stop the cause, then request removal from the "
                              "list operator."),
                )
        if label == "ip" and complete:
            # Only a complete run knows the count; a partial one keeps the last good one.
            findings.add_pairs(LISTINGS, listed_count, (item_pair,))  # label is "ip" here
        if complete and listed_count == 0:
            findings.note(Status.PASS, f"{item} is not listed on any healthy zone")
