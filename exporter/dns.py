"""The DNS layer every check talks to.

Checks see only the small :class:`Resolver` protocol and :class:`Answer`
values, so the transport behind it can change (a leaner datagram client for
provider-scale blocklist cycles) without touching any check, and unit tests
can hand checks a fake.

The rule this module exists to enforce: a lookup that got no answer
(timeout, SERVFAIL, REFUSED) is an *error*, never an empty answer. NXDOMAIN
and NODATA are answers.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeVar

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset

from exporter.flight import Flight, background, wait_all
from exporter.limiter import Limiter

if TYPE_CHECKING:
    from exporter.dns_wire import DatagramClient


class Outcome(StrEnum):
    OK = "ok"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    #: Not sent at all: the zone's query budget is spent (see exporter.budget).
    THROTTLED = "throttled"


#: Outcomes that are real answers from the DNS; everything else is a failure.
ANSWERED = frozenset({Outcome.OK, Outcome.NXDOMAIN, Outcome.NODATA})

#: Every value of the ``outcome`` label of ``deliverability_dns_queries_total``.
QUERY_OUTCOMES = ("ok", "nxdomain", "nodata", "servfail", "refused", "timeout", "cached")
#: Each outcome's label value: ``Outcome.value`` is a descriptor call, this a dict read.
_OUTCOME_LABELS = {outcome: outcome.value for outcome in Outcome}
#: Module constants: reading a member off the enum class goes through its metaclass.
_SERVFAIL, _REFUSED = Outcome.SERVFAIL, Outcome.REFUSED


def _type_name(rdtype: str) -> str:
    # One string object per type: ``"A".upper()`` is a new string, and 200,000
    # cached answers each holding their own copy were 10 MB.
    return rdtype if rdtype.isupper() else sys.intern(rdtype.upper())


def normalize_name(name: str) -> str:
    """Lower-case, without the trailing dot: the form names take everywhere here."""
    return name.strip().rstrip(".").lower()


class Answer(NamedTuple):
    """The outcome of one question, in plain text (immutable: cached answers are shared).

    A named tuple rather than a frozen dataclass: a blocklist cycle builds
    200,000 of them, and a frozen dataclass's ``__init__`` cost four times as much.

    ``records`` holds the RDATA of the asked type at the end of any CNAME
    chain, one string per record:

    - A, AAAA: the address in canonical form (``2001:db8::25``)
    - PTR, CNAME, NS: the target name, lower-case, no trailing dot
    - MX: ``"<preference> <exchange>"`` (exchange normalised; ``"0 "`` is null MX
      with exchange ``""``); see :func:`parse_mx`
    - TXT: the record's character-strings concatenated, decoded as UTF-8 with
      invalid bytes replaced (U+FFFD)
    - TLSA: ``"<usage> <selector> <mtype> <hex>"``
    - anything else: dnspython's presentation format
    """

    name: str
    rdtype: str
    outcome: Outcome
    records: tuple[str, ...] = ()
    ttl: int = 0
    #: The AD bit: the validating resolver says the data is DNSSEC-secure.
    authenticated: bool = False
    #: Where the CNAME chain ended; equal to ``name`` when there was none.
    canonical_name: str = ""
    #: Why the lookup failed, for logs ("timeout after 2 attempts to 127.0.0.1").
    detail: str = ""

    @property
    def answered(self) -> bool:
        return self.outcome in ANSWERED

    @property
    def is_cname(self) -> bool:
        return bool(self.canonical_name) and self.canonical_name != self.name

    def require(self) -> Answer:
        """Return self if the DNS answered, else raise :class:`LookupFailed`."""
        if not self.answered:
            raise LookupFailed(self)
        return self


class LookupFailed(Exception):
    """A lookup got no answer. Checks let it propagate: the run then fails."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        detail = f" ({answer.detail})" if answer.detail else ""
        super().__init__(f"{answer.rdtype} {answer.name}: {answer.outcome.value}{detail}")


class Resolver(Protocol):
    """What checks may ask of the DNS."""

    async def resolve(self, name: str, rdtype: str) -> Answer:
        """Ask one question. Never raises for DNS failures: see ``Answer.outcome``."""
        ...


async def resolve_fresh(resolver: Resolver, name: str, rdtype: str) -> Answer:
    """Ask past any cache when the resolver can (a verdict must not rest on stale data)."""
    fresh = getattr(resolver, "resolve_fresh", None)
    if fresh is None:
        return await resolver.resolve(name, rdtype)
    answer: Answer = await fresh(name, rdtype)
    return answer


T = TypeVar("T")


async def join_in_flight(pending: asyncio.Future[T]) -> T | None:
    """Wait for work someone else started; None when *they* were cancelled.

    Our own cancellation still propagates. The joiner then does the work itself,
    so one cancelled /probe cannot fail the background runs that joined it.
    """
    try:
        return await asyncio.shield(pending)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        return None


#: What a resolver's ``submit`` gives: the answer at once (cached), or its flight.
Asked = Answer | Flight[Answer]


async def settle(asked: Asked) -> Answer:
    """The answer behind ``submit``'s result (waiting cancels nothing for the others)."""
    return asked if isinstance(asked, Answer) else await asked.wait()


class Question(NamedTuple):
    """One question for :func:`resolve_all` (which takes plain tuples of the same shape
    too: a blocklist run builds twenty at a time, and a named tuple's ``__new__`` is a
    Python call)."""

    resolver: Resolver
    name: str
    rdtype: str
    #: The name's ``dns_wire.labels_wire``, when the asker has it cached (blocklist names
    #: are a cached address part and a cached zone part).
    labels: bytes | None = None


async def resolve_all(
        questions: Iterable[tuple[Resolver, str, str, bytes | None]]) -> list[Answer]:
    """Ask many questions at once; the answers in the same order.

    Resolvers with a ``submit`` method are asked without a coroutine per
    question and the caller wakes once, when the last answer lands: that is
    what lets a blocklist cycle ask 200,000 of them. Other resolvers (test
    fakes) get a task per question.
    """
    asked: list[Asked] = []
    for resolver, name, rdtype, labels in questions:
        submit = getattr(resolver, "submit", None)
        asked.append(submit(name, rdtype, labels=labels) if submit is not None
                     else Flight.of(resolver.resolve(name, rdtype)))
    await wait_all([a for a in asked if isinstance(a, Flight)])
    return [a if isinstance(a, Answer) else a.result() for a in asked]


def parse_mx(record: str) -> tuple[int, str]:
    """Split an MX record string from :class:`Answer` into (preference, exchange)."""
    pref, _, host = record.partition(" ")
    return int(pref), normalize_name(host)


def reverse_name(ip: str) -> str:
    """The PTR name of an address (``10.2.0.192.in-addr.arpa``)."""
    return ipaddress.ip_address(ip).reverse_pointer


# --------------------------------------------------------------------------
# The production resolver (dnspython transport, our cache and accounting)
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where questions go: a group of recursive servers (or a local mirror)."""

    nameservers: tuple[str, ...]
    port: int = 53


@dataclass(slots=True)
class QueryStats:
    """Per-outcome query counters, owned by the resolver (not module globals).

    A plain dict with every key present rather than a Counter: it is bumped for
    every question, and item assignment on a dict subclass costs three times as much.
    """

    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys((*_OUTCOME_LABELS.values(), "cached"), 0))


_MIN_NEGATIVE_TTL = 5
_MAX_TTL = 86400


def _record_text(rdata: object, rdtype: int) -> str:
    if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        return str(ipaddress.ip_address(rdata.address))  # type: ignore[attr-defined]
    if rdtype in (dns.rdatatype.PTR, dns.rdatatype.CNAME, dns.rdatatype.NS):
        return normalize_name(rdata.target.to_text())  # type: ignore[attr-defined]
    if rdtype == dns.rdatatype.MX:
        exchange = rdata.exchange  # type: ignore[attr-defined]
        host = "" if exchange == dns.name.root else normalize_name(exchange.to_text())
        return f"{rdata.preference} {host}"  # type: ignore[attr-defined]
    if rdtype == dns.rdatatype.TXT:
        raw: bytes = b"".join(rdata.strings)  # type: ignore[attr-defined]
        return raw.decode("utf-8", "replace")
    if rdtype == dns.rdatatype.TLSA:
        r = rdata
        return f"{r.usage} {r.selector} {r.mtype} {r.cert.hex()}"  # type: ignore[attr-defined]
    return str(rdata.to_text())  # type: ignore[attr-defined]


def answer_from_message(qname: str, rdtype_text: str, response: dns.message.Message) -> Answer:
    """Classify a response into an :class:`Answer` (shared by every transport)."""
    rcode = response.rcode()
    authenticated = bool(response.flags & dns.flags.AD)
    if rcode == dns.rcode.SERVFAIL:
        return Answer(qname, rdtype_text, Outcome.SERVFAIL, detail="SERVFAIL")
    if rcode == dns.rcode.REFUSED:
        return Answer(qname, rdtype_text, Outcome.REFUSED, detail="REFUSED")
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        # FORMERR, NOTIMP and friends: the server did not answer the question.
        return Answer(qname, rdtype_text, Outcome.SERVFAIL, detail=dns.rcode.to_text(rcode))
    rdtype = dns.rdatatype.from_text(rdtype_text)
    current = dns.name.from_text(qname)

    def find(name: dns.name.Name, wanted: int) -> dns.rrset.RRset | None:
        # Scan rather than Message.get_rrset: its index misses hand-built messages.
        for rrset in response.answer:
            if rrset.name == name and rrset.rdtype == wanted and rrset.rdclass == dns.rdataclass.IN:
                return rrset
        return None

    # Follow the CNAME chain inside the answer section (bounded: a loop ends).
    for _ in range(16):
        cname = find(current, dns.rdatatype.CNAME)
        if cname is None or rdtype == dns.rdatatype.CNAME:
            break
        current = cname[0].target  # type: ignore[attr-defined]
    canonical = normalize_name(current.to_text())
    rrsets = [r for r in response.answer
              if r.name == current and r.rdtype == rdtype and r.rdclass == dns.rdataclass.IN]
    if rrsets and any(len(r) for r in rrsets):
        records = tuple(sorted({_record_text(rd, rdtype) for r in rrsets for rd in r}))
        return Answer(
            qname, rdtype_text, Outcome.OK, records, min(min(r.ttl for r in rrsets), _MAX_TTL),
            authenticated, canonical,
        )
    negative_ttl = _negative_ttl(response)
    outcome = Outcome.NXDOMAIN if rcode == dns.rcode.NXDOMAIN else Outcome.NODATA
    return Answer(qname, rdtype_text, outcome, (), negative_ttl, authenticated, canonical)


def _negative_ttl(response: dns.message.Message) -> int:
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA:
            soa_min: int = rrset[0].minimum  # type: ignore[attr-defined]
            return max(_MIN_NEGATIVE_TTL, min(int(rrset.ttl), soa_min, _MAX_TTL))
    return _MIN_NEGATIVE_TTL * 6


def system_nameservers() -> tuple[str, ...]:
    """The nameservers from /etc/resolv.conf (the default when none are configured)."""
    try:
        return tuple(str(ns) for ns in dns.resolver.Resolver(configure=True).nameservers)
    except dns.resolver.NoResolverConfiguration:
        return ("127.0.0.1",)


class _Table:
    """The cached answers and the questions in flight for one record type at one
    upstream, by name.

    By name alone rather than by a (name, type, upstream) tuple: a string keeps
    its hash, a tuple is hashed anew on every probe, and a blocklist question is
    looked up six times. The 200,000 key tuples of a cycle were also 13 MB.
    """

    __slots__ = ("cache", "in_flight")

    def __init__(self) -> None:
        self.cache: dict[str, tuple[float, Answer]] = {}
        self.in_flight: dict[str, Flight[Answer]] = {}


@dataclass
class _Shared:
    """What every view of one resolver shares: cache, in-flight table, budget, stats."""

    stats: QueryStats
    #: Questions on the wire at once: the datagram client's window, and the
    #: limiter of the dnspython transport.
    max_in_flight: int
    limit: Limiter
    clock: Callable[[], float]
    transport: str
    #: By (record type, upstream number).
    tables: dict[tuple[str, int], _Table] = field(default_factory=dict)
    upstream_numbers: dict[Upstream, int] = field(default_factory=dict)
    clients: dict[int, DatagramClient] = field(default_factory=dict)


class _Asking(Flight[Answer]):
    """A question the resolver has sent: the flight its askers wait on and, being
    callable with the answer, the record the datagram client keeps while it is on
    the wire (``dns_wire.WireQuestion``), so sending one allocates nothing else."""

    __slots__ = ("attempt", "deadline", "packet", "qname", "question", "rdtype", "resolver",
                 "table")

    def __init__(self, resolver: DnsResolver, table: _Table, qname: str, rdtype: str) -> None:
        # Flight's fields set here rather than through super(): one call less for each
        # of a cycle's 200,000 questions.
        self._value = None
        self._error = None
        self._callbacks = []
        self.resolver = resolver
        self.table = table
        self.qname = qname
        self.rdtype = rdtype
        #: Tries spent before the one under way (the datagram client adds its timeouts,
        #: a SERVFAIL or REFUSED asked again adds one), so all tries stay ``attempts``.
        self.attempt = 0
        self.question = self.packet = b""
        self.deadline = 0.0

    def __call__(self, answer: Answer) -> None:
        resolver = self.resolver
        # A SERVFAIL or REFUSED may be passing (an upstream restarting): ask again before
        # calling it a failure, as the dnspython path does.
        outcome = answer.outcome
        if (outcome is _SERVFAIL or outcome is _REFUSED) \
                and self.attempt + 1 < resolver.attempts:
            self.attempt += 1
            resolver._start(self)
            return
        # DnsResolver._finish and Flight.finish, inline: this runs once per answer of a
        # cycle, and the three calls were a tenth of the answer's cost. Keep in step.
        table, qname = self.table, self.qname
        in_flight = table.in_flight
        if in_flight.get(qname) is self:
            del in_flight[qname]
        shared = resolver._shared
        shared.stats.counts[_OUTCOME_LABELS[outcome]] += 1
        if outcome in ANSWERED:
            table.cache[qname] = (shared.clock() + answer.ttl, answer)
        callbacks = self._callbacks
        if callbacks is None:
            return
        self._callbacks = None
        self._value = answer
        for callback in callbacks:
            callback(self)


#: ``submit_many`` reads the socket once per this many questions (about 0.2 ms of work).
_POLL_EVERY = 64


class DnsResolver:
    """Async resolver: TTL cache, in-flight coalescing, bounded concurrency.

    Failures are never cached: the next run asks again. Answers are cached for
    their TTL (negative answers for the SOA minimum), so a thousand domains
    whose SPF includes the same provider record cause one lookup per TTL.

    ``transport`` picks how questions travel: ``datagram`` (default) is the
    lean one-socket client of :mod:`exporter.dns_wire`, falling back to
    dnspython for what it does not read itself; ``dnspython`` uses dnspython
    for everything (kept as the reference and for benchmarks).
    """

    def __init__(
        self,
        upstream: Upstream,
        *,
        timeout: float = 2.0,
        attempts: int = 2,
        max_in_flight: int = 256,
        stats: QueryStats | None = None,
        clock: Callable[[], float] = time.monotonic,
        transport: str = "datagram",
        _shared: _Shared | None = None,
    ) -> None:
        self.upstream = upstream
        self.timeout = timeout
        self.attempts = attempts
        self._shared = _shared or _Shared(
            stats if stats is not None else QueryStats(), max_in_flight,
            Limiter(max_in_flight), clock, transport)
        numbers = self._shared.upstream_numbers
        self._upstream_number = numbers.setdefault(upstream, len(numbers))
        #: ``_client()``, once it has been called: looked up for every question sent.
        self._datagram: DatagramClient | None = None
        #: ``_table()`` by record type, for this view's upstream.
        self._tables: dict[str, _Table] = {}

    @property
    def stats(self) -> QueryStats:
        return self._shared.stats

    def for_upstream(self, upstream: Upstream) -> DnsResolver:
        """A resolver for other servers (a zone's local mirror) sharing cache and stats."""
        if upstream == self.upstream:
            return self
        return DnsResolver(upstream, timeout=self.timeout, attempts=self.attempts,
                           _shared=self._shared)

    def bulk_view(self) -> tuple[DnsResolver, str, dict[str, int] | None]:
        """What ``submit_many`` needs of an asker: this resolver, and nothing to count."""
        return self, "", None

    def would_send(self, name: str, rdtype: str, *, fresh: bool = False) -> bool:
        """False when the question would be answered from the cache or joined to one in
        flight (``fresh``: past the cache, but still joined, as ``submit`` does)."""
        return self._known(self._table(_type_name(rdtype)), normalize_name(name),
                           fresh) is None

    def _table(self, rdtype: str) -> _Table:
        table = self._tables.get(rdtype)
        if table is None:
            table = self._shared.tables.setdefault((rdtype, self._upstream_number), _Table())
            self._tables[rdtype] = table
        return table

    def _known(self, table: _Table, qname: str, fresh: bool) -> Asked | None:
        """The cached answer (unless ``fresh``) or the question in flight, if any
        (``submit_many`` repeats this inline: keep them in step)."""
        if not fresh:
            cached = table.cache.get(qname)
            if cached is not None:
                if cached[0] > self._shared.clock():
                    return cached[1]
                del table.cache[qname]
        return table.in_flight.get(qname)

    def prune(self) -> None:
        """Drop expired cache entries (called periodically)."""
        now = self._shared.clock()
        for table in self._shared.tables.values():
            cache = table.cache
            for qname in [q for q, (exp, _) in cache.items() if exp <= now]:
                del cache[qname]

    def close(self) -> None:
        # The clients stay known (each view caches its own): one asked again reopens its
        # socket, and a later close() closes it again.
        for client in self._shared.clients.values():
            client.close()

    async def resolve_fresh(self, name: str, rdtype: str) -> Answer:
        """Ask past the cache (joining a question in flight), and cache the new answer."""
        return await self.resolve(name, rdtype, fresh=True)

    async def resolve(self, name: str, rdtype: str, *, fresh: bool = False) -> Answer:
        return await settle(self.submit(name, rdtype, fresh=fresh))

    def submit(self, name: str, rdtype: str, *, fresh: bool = False,
               on_send: Callable[[], None] | None = None,
               labels: bytes | None = None) -> Asked:
        """Ask without a coroutine: the cached answer, or a flight shared by all who ask.

        No asker owns the flight: it is finished by the transport, so an asker
        that gives up (a /probe timing out) takes nothing from the others.
        ``fresh`` skips the cache but still joins a question already in flight.
        ``on_send`` is called when the question really goes out (for accounting).
        ``labels`` is the name's ``dns_wire.labels_wire`` when the asker has it cached.
        """
        # normalize_name and _type_name, inline: this runs for every question asked.
        qname = name.strip().rstrip(".")
        if not qname.islower():  # lower() copies even a lower-case name
            qname = qname.lower()
        if not rdtype.isupper():
            rdtype = sys.intern(rdtype.upper())
        table = self._tables.get(rdtype) or self._table(rdtype)
        known = self._known(table, qname, fresh)
        if known is not None:
            self._shared.stats.counts["cached"] += 1
            return known
        # ``submit_many`` repeats the rest inline: keep them in step.
        asking = _Asking(self, table, qname, rdtype)
        table.in_flight[qname] = asking
        if on_send is not None:
            on_send()
        self._start(asking, labels)
        return asking

    def submit_many(self, rdtype: str, names: Sequence[str], labels: Sequence[bytes | None],
                    keys: Sequence[str], sent: dict[str, int] | None) -> list[Asked]:
        """``submit`` for many questions of one type at once (a blocklist run's).

        The same cache, coalescing and accounting as ``submit``, for ``names`` already
        normalised (lower case, no trailing dot: ``normalize_name``), in one loop: a
        call chain per question was a fifth of a blocklist cycle's CPU. Nothing is
        asked past the cache. A question that really goes out adds one to
        ``sent[keys[i]]`` (a zone's query counter, as ``on_send`` would).
        """
        if not rdtype.isupper():
            rdtype = sys.intern(rdtype.upper())
        table = self._tables.get(rdtype) or self._table(rdtype)
        cache, in_flight = table.cache, table.in_flight
        shared = self._shared
        now = shared.clock()  # one reading for the batch: it is built in microseconds
        client = None
        if shared.transport == "datagram":
            client = self._datagram or self._client()
        asked: list[Asked] = []
        append = asked.append
        joined = 0
        for i, (name, wire, key) in enumerate(zip(names, labels, keys, strict=True)):
            if client is not None and not i % _POLL_EVERY:
                # Building hundreds of questions is a stretch in which the upstream
                # could run out of work: read its answers, send what they make room for.
                client.poll()
            # _known, inline
            cached = cache.get(name)
            if cached is not None:
                if cached[0] > now:
                    joined += 1
                    append(cached[1])
                    continue
                del cache[name]
            flying = in_flight.get(name)
            if flying is not None:
                joined += 1
                append(flying)
                continue
            # The rest of ``submit`` and ``_start``, inline: keep them in step.
            asking = _Asking(self, table, name, rdtype)
            in_flight[name] = asking
            if sent is not None:
                sent[key] = sent.get(key, 0) + 1
            if client is None or not client.send(asking, wire):
                self._start(asking, wire)
            append(asking)
        if joined:
            shared.stats.counts["cached"] += joined
        return asked

    def poll(self) -> None:
        """``DatagramClient.poll`` on this resolver's client, when it has one: for a
        long stretch of work between awaits, so that the upstream keeps getting questions."""
        if self._datagram is not None:
            self._datagram.poll()

    def _start(self, asking: _Asking, labels: bytes | None = None) -> None:
        # The client carries on counting the question's tries from ``asking.attempt``, so a
        # SERVFAIL asked again goes to the next server and the tries stay ``attempts`` in all.
        if self._shared.transport == "datagram" and (
                self._datagram or self._client()).send(asking, labels):
            return
        # dnspython's turn: the other transport, or a question the lean client cannot build.
        task = background(self._ask_dnspython_limited(asking.qname, asking.rdtype))
        task.add_done_callback(functools.partial(self._asked, asking))

    def _asked(self, asking: _Asking, task: asyncio.Future[Answer]) -> None:
        if task.cancelled():  # the loop is shutting down: an error, never "no record"
            self._finish(asking, Answer(asking.qname, asking.rdtype, Outcome.TIMEOUT,
                                        detail="the lookup was cancelled"))
        elif (error := task.exception()) is not None:  # a bug: every waiter sees it
            in_flight = asking.table.in_flight
            if in_flight.get(asking.qname) is asking:
                del in_flight[asking.qname]
            asking.fail(error)
        else:  # dnspython retried SERVFAIL and REFUSED itself
            self._finish(asking, task.result())

    def _finish(self, asking: _Asking, answer: Answer) -> None:
        # _Asking.__call__ does the same inline (the datagram path): keep them in step.
        table, qname = asking.table, asking.qname
        if table.in_flight.get(qname) is asking:
            del table.in_flight[qname]
        outcome = answer.outcome
        shared = self._shared
        shared.stats.counts[_OUTCOME_LABELS[outcome]] += 1
        if outcome in ANSWERED:
            table.cache[qname] = (shared.clock() + answer.ttl, answer)
        asking.finish(answer)

    def _client(self) -> DatagramClient:
        client = self._shared.clients.get(self._upstream_number)
        if client is None:
            # Imported here: dns_wire builds on this module's Answer and classifier.
            from exporter.dns_wire import DatagramClient

            client = DatagramClient(self.upstream.nameservers, self.upstream.port,
                                    self.timeout, self.attempts, self._shared.max_in_flight)
            self._shared.clients[self._upstream_number] = client
        self._datagram = client
        return client

    async def _ask_dnspython_limited(self, qname: str, rdtype: str) -> Answer:
        async with self._shared.limit:
            return await self._ask_dnspython(qname, rdtype)

    async def _ask_dnspython(self, qname: str, rdtype: str) -> Answer:
        try:
            query = dns.message.make_query(qname, rdtype, want_dnssec=False)
        except (dns.exception.DNSException, ValueError) as exc:
            # A name that cannot be put on the wire (label over 63 octets, ...).
            return Answer(qname, rdtype, Outcome.NXDOMAIN, detail=f"invalid name: {exc}")
        query.flags |= dns.flags.AD  # ask the validating resolver for the AD bit
        servers = list(self.upstream.nameservers)
        last_detail = "no nameservers"
        for attempt in range(self.attempts):
            server = servers[attempt % len(servers)]
            try:
                response, _ = await dns.asyncquery.udp_with_fallback(
                    query, server, timeout=self.timeout, port=self.upstream.port
                )
            except dns.exception.Timeout:
                last_detail = f"timeout after {attempt + 1} attempt(s), last to {server}"
                continue
            except (OSError, dns.exception.DNSException, EOFError) as exc:
                last_detail = f"{type(exc).__name__}: {exc} from {server}"
                # Connection refused answers at once: wait a little before retrying.
                await asyncio.sleep(min(self.timeout, 0.05 + random.random() * 0.1))
                continue
            answer = answer_from_message(qname, rdtype, response)
            retryable = answer.outcome in (Outcome.SERVFAIL, Outcome.REFUSED)
            if retryable and attempt + 1 < self.attempts:
                last_detail = f"{answer.detail} from {server}"
                continue
            return answer
        return Answer(qname, rdtype, Outcome.TIMEOUT, detail=last_detail)
