"""The DNS layer: classification of responses, TTL cache, coalescing, failures never cached."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from exporter.budget import ZoneBudget, ZoneResolver
from exporter.dns import (
    DnsResolver,
    LookupFailed,
    Outcome,
    Question,
    Upstream,
    answer_from_message,
    parse_mx,
    resolve_all,
    reverse_name,
    settle,
)
from tests.fakes import FakeResolver
from tests.unit.loopback_dns import LoopbackServer


def response(qname: str, rdtype: str, rcode: dns.rcode.Rcode = dns.rcode.NOERROR,
             answers: tuple[tuple[str, str, str], ...] = (), soa: bool = False,
             ad: bool = False) -> dns.message.Message:
    query = dns.message.make_query(qname, rdtype)
    msg = dns.message.make_response(query)
    msg.set_rcode(rcode)
    if ad:
        msg.flags |= dns.flags.AD
    for name, atype, text in answers:
        msg.answer.append(dns.rrset.from_text(name, 300, "IN", atype, text))
    if soa:
        msg.authority.append(dns.rrset.from_text(
            "example.", 3600, "IN", "SOA", "ns. host. 1 3600 600 86400 120"))
    return msg


@pytest.mark.parametrize(
    ("rcode", "outcome"),
    [(dns.rcode.SERVFAIL, Outcome.SERVFAIL), (dns.rcode.REFUSED, Outcome.REFUSED),
     (dns.rcode.FORMERR, Outcome.SERVFAIL), (dns.rcode.NXDOMAIN, Outcome.NXDOMAIN),
     (dns.rcode.NOERROR, Outcome.NODATA)],
)
def test_rcodes_are_classified(rcode: dns.rcode.Rcode, outcome: Outcome) -> None:
    answer = answer_from_message("x.example", "A", response("x.example.", "A", rcode, soa=True))
    assert answer.outcome is outcome
    assert answer.answered is (outcome in (Outcome.NXDOMAIN, Outcome.NODATA))


def test_negative_ttl_comes_from_the_soa_minimum() -> None:
    answer = answer_from_message("x.example", "A",
                                 response("x.example.", "A", dns.rcode.NXDOMAIN, soa=True))
    assert answer.ttl == 120


def test_cname_chain_is_followed_and_reported() -> None:
    msg = response("mx.example.", "A", answers=(
        ("mx.example.", "CNAME", "real.example."), ("real.example.", "A", "192.0.2.1")))
    answer = answer_from_message("mx.example", "A", msg)
    assert answer.records == ("192.0.2.1",)
    assert answer.is_cname and answer.canonical_name == "real.example"


def test_record_formats() -> None:
    mx = answer_from_message("example", "MX", response("example.", "MX", answers=(
        ("example.", "MX", "10 MX1.Example."), ("example.", "MX", "0 ."))))
    assert sorted(parse_mx(r) for r in mx.records) == [(0, ""), (10, "mx1.example")]
    txt = answer_from_message("example", "TXT", response("example.", "TXT", answers=(
        ("example.", "TXT", '"v=spf1 " "-all"'), ("example.", "TXT", '"\\255bad"'))))
    assert "v=spf1 -all" in txt.records
    assert any("\ufffd" in r for r in txt.records)
    six = answer_from_message("h", "AAAA", response("h.", "AAAA", answers=(
        ("h.", "AAAA", "2001:DB8:0:0::25"),), ad=True))
    assert six.records == ("2001:db8::25",) and six.authenticated


def test_require_raises_for_failures_only() -> None:
    fail = answer_from_message("x", "A", response("x.", "A", dns.rcode.SERVFAIL))
    with pytest.raises(LookupFailed, match="A x: servfail"):
        fail.require()
    answer_from_message("x", "A", response("x.", "A", dns.rcode.NXDOMAIN)).require()


def test_reverse_names() -> None:
    assert reverse_name("192.0.2.10") == "10.2.0.192.in-addr.arpa"
    assert reverse_name("2001:db8::25").endswith(".8.b.d.0.1.0.0.2.ip6.arpa")


@pytest.fixture
async def server() -> AsyncIterator[Callable[..., LoopbackServer]]:
    transports: list[asyncio.BaseTransport] = []

    async def make(handler: Callable[[dns.message.Message], dns.message.Message | None]
                   ) -> tuple[LoopbackServer, int]:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(
            lambda: LoopbackServer(handler), local_addr=("127.0.0.1", 0))
        transports.append(transport)
        return proto, transport.get_extra_info("sockname")[1]

    yield make  # type: ignore[misc]
    for t in transports:
        t.close()


@pytest.fixture(params=["datagram", "dnspython"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def a_record(query: dns.message.Message) -> dns.message.Message:
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "127.0.0.2"))
    return reply


def servfail(query: dns.message.Message) -> dns.message.Message:
    reply = dns.message.make_response(query)
    reply.set_rcode(dns.rcode.SERVFAIL)
    return reply


async def test_identical_questions_are_coalesced_and_cached(server, transport: str) -> None:  # type: ignore[no-untyped-def]
    proto, port = await server(a_record)
    resolver = DnsResolver(Upstream(("127.0.0.1",), port), timeout=1, attempts=1,
                           transport=transport)
    answers = await asyncio.gather(*(resolver.resolve("x.example", "A") for _ in range(50)))
    assert all(a.records == ("127.0.0.2",) for a in answers)
    again = await resolver.resolve("X.Example.", "a")
    assert again.records == ("127.0.0.2",)
    assert proto.queries == ["x.example."]
    assert resolver.stats.counts["ok"] == 1 and resolver.stats.counts["cached"] == 50


async def test_timeouts_are_not_cached_and_are_counted(server, transport: str) -> None:  # type: ignore[no-untyped-def]
    proto, port = await server(lambda q: None)
    resolver = DnsResolver(Upstream(("127.0.0.1",), port), timeout=0.1, attempts=2,
                           transport=transport)
    first = await resolver.resolve("x.example", "A")
    second = await resolver.resolve("x.example", "A")
    assert first.outcome is second.outcome is Outcome.TIMEOUT
    assert len(proto.queries) == 4  # two attempts each, nothing cached
    assert resolver.stats.counts["timeout"] == 2


async def test_servfail_is_retried_then_reported(server, transport: str) -> None:  # type: ignore[no-untyped-def]
    proto, port = await server(servfail)
    resolver = DnsResolver(Upstream(("127.0.0.1",), port), timeout=0.5, attempts=3,
                           transport=transport)
    answer = await resolver.resolve("x.example", "A")
    assert answer.outcome is Outcome.SERVFAIL
    assert len(proto.queries) == 3


async def test_shared_cache_is_per_upstream(server, transport: str) -> None:  # type: ignore[no-untyped-def]
    proto_a, port_a = await server(a_record)
    proto_b, port_b = await server(a_record)
    resolver = DnsResolver(Upstream(("127.0.0.1",), port_a), timeout=1, attempts=1,
                           transport=transport)
    mirror = resolver.for_upstream(Upstream(("127.0.0.1",), port_b))
    await resolver.resolve("x.example", "A")
    await mirror.resolve("x.example", "A")
    assert len(proto_a.queries) == 1 and len(proto_b.queries) == 1
    assert mirror.stats is resolver.stats


async def test_answers_expire_per_record_type_and_prune_drops_them(server, transport: str) -> None:  # type: ignore[no-untyped-def]
    proto, port = await server(a_record)
    now = [100.0]
    resolver = DnsResolver(Upstream(("127.0.0.1",), port), timeout=1, attempts=1,
                           transport=transport, clock=lambda: now[0])
    await resolver.resolve("x.example", "A")
    await resolver.resolve("x.example", "TXT")  # the same name, its own entry
    await resolver.resolve("x.example", "A")
    assert proto.queries == ["x.example.", "x.example."]
    now[0] += 61  # past the 60 s TTL of both answers
    resolver.prune()
    assert all(not table.cache for table in resolver._shared.tables.values())
    await resolver.resolve("x.example", "A")
    assert len(proto.queries) == 3


async def test_cancelled_asker_does_not_cancel_those_who_joined_it(server, transport: str) -> None:  # type: ignore[no-untyped-def]
    _, port = await server(a_record)
    resolver = DnsResolver(Upstream(("127.0.0.1",), port), timeout=1, attempts=1,
                           transport=transport)
    slow_first = asyncio.ensure_future(resolver.resolve("x.example", "A"))
    await asyncio.sleep(0)  # the first asker is now in flight
    joined = asyncio.ensure_future(resolver.resolve("x.example", "A"))
    await asyncio.sleep(0)
    slow_first.cancel()
    answer = await joined
    assert answer.records == ("127.0.0.2",)
    assert slow_first.cancelled()


async def test_resolve_all_keeps_order_across_cached_joined_sent(server, transport: str) -> None:  # type: ignore[no-untyped-def]
    proto, port = await server(a_record)
    resolver = DnsResolver(Upstream(("127.0.0.1",), port), timeout=1, attempts=1,
                           transport=transport)
    await resolver.resolve("cached.example", "A")
    fake = FakeResolver({("fake.example", "A"): "192.0.2.1"})  # no submit: a task of its own
    answers = await resolve_all([Question(resolver, "new.example", "A"),
                                 Question(resolver, "cached.example", "A"),
                                 Question(fake, "fake.example", "A"),
                                 Question(resolver, "new.example", "A")])
    assert [a.name for a in answers] == ["new.example", "cached.example", "fake.example",
                                         "new.example"]
    assert answers[2].records == ("192.0.2.1",)
    assert proto.queries == ["cached.example.", "new.example."]  # the repeat joined the first


async def test_cancelled_batch_leaves_shared_questions_alone(server, transport: str) -> None:  # type: ignore[no-untyped-def]
    _, port = await server(a_record)
    resolver = DnsResolver(Upstream(("127.0.0.1",), port), timeout=1, attempts=1,
                           transport=transport)
    batch = asyncio.ensure_future(resolve_all([Question(resolver, f"{i}.example", "A")
                                               for i in range(5)]))
    await asyncio.sleep(0)
    other = asyncio.ensure_future(resolver.resolve("3.example", "A"))
    await asyncio.sleep(0)
    batch.cancel()
    assert (await other).records == ("127.0.0.2",)
    assert batch.cancelled()


async def test_fresh_questions_joining_one_in_flight_spend_budget_once(server) -> None:  # type: ignore[no-untyped-def]
    proto, port = await server(a_record)
    resolver = DnsResolver(Upstream(("127.0.0.1",), port), timeout=1, attempts=1)
    budget = ZoneBudget(per_day=10)
    sent: Counter[str] = Counter()
    zone = ZoneResolver("bl.example", resolver, budget, sent)
    answers = await asyncio.gather(*(zone.resolve_fresh("1.0.0.127.bl.example", "A")
                                     for _ in range(5)))
    assert all(a.outcome is Outcome.OK for a in answers)
    assert len(proto.queries) == 1
    assert budget.spent_today == 1 and sent["bl.example"] == 1


async def test_servfail_is_asked_again_of_the_next_server(server, transport: str) -> None:  # type: ignore[no-untyped-def]
    broken, port = await server(servfail)
    loop = asyncio.get_running_loop()
    transport_b, working = await loop.create_datagram_endpoint(
        lambda: LoopbackServer(a_record), local_addr=("127.0.0.2", port))
    try:
        resolver = DnsResolver(Upstream(("127.0.0.1", "127.0.0.2"), port), timeout=0.5,
                               attempts=3, transport=transport)
        answer = await resolver.resolve("x.example", "A")
        resolver.close()
    finally:
        transport_b.close()
    assert answer.outcome is Outcome.OK
    assert len(broken.queries) == 1 and len(working.queries) == 1


async def test_submit_many_caches_joins_and_counts_and_asks_again(server, transport: str) -> None:  # type: ignore[no-untyped-def]
    def handler(query: dns.message.Message) -> dns.message.Message:
        return servfail(query) if query.question[0].name.to_text() == "bad.example." \
            else a_record(query)

    proto, port = await server(handler)
    resolver = DnsResolver(Upstream(("127.0.0.1",), port), timeout=1, attempts=1,
                           transport=transport)
    await resolver.resolve("a.example", "A")
    sent: dict[str, int] = {}
    names = ["a.example", "b.example", "b.example", "bad.example"]
    asked = resolver.submit_many("A", names, [None] * 4, ["x", "y", "y", "z"], sent)
    answers = [await settle(a) for a in asked]
    assert [a.outcome for a in answers] == [Outcome.OK, Outcome.OK, Outcome.OK,
                                            Outcome.SERVFAIL]
    assert [a.name for a in answers] == names
    assert sent == {"y": 1, "z": 1}  # a.example was cached, the second b.example joined
    assert proto.queries.count("b.example.") == 1
    assert resolver.stats.counts["cached"] == 2
    again = resolver.submit_many("A", ["bad.example", "b.example"], [None, None], ["z", "y"],
                                 sent)
    assert [(await settle(a)).outcome for a in again] == [Outcome.SERVFAIL, Outcome.OK]
    assert sent == {"y": 1, "z": 2}  # the failure is asked again, the answer is cached


class _SlowNames(list[str]):
    """Query names that take a while to produce at one point: the stretch of work in
    which ``submit_many`` must not leave the upstream idle. At ``at`` it lets the
    (synchronous) upstream answer everything sent so far, as a real one would have."""

    def __init__(self, names: list[str], at: int, meanwhile: Callable[[], None]) -> None:
        super().__init__(names)
        self.at, self.meanwhile = at, meanwhile

    def __iter__(self):  # type: ignore[no-untyped-def]
        for i, name in enumerate(list.__iter__(self)):
            if i == self.at:
                self.meanwhile()
            yield name


def _answer_all(sock: socket.socket) -> int:
    """Answer (A 127.0.0.2) every question waiting on ``sock``; how many there were."""
    answered = 0
    while True:
        try:
            data, addr = sock.recvfrom(4096)
        except BlockingIOError:
            return answered
        sock.sendto(a_record(dns.message.from_wire(data)).to_wire(), addr)
        answered += 1


async def test_a_long_stretch_of_submitting_reads_answers_and_keeps_the_window_full() -> None:
    upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    upstream.bind(("127.0.0.1", 0))
    upstream.setblocking(False)
    resolver = DnsResolver(Upstream(("127.0.0.1",), upstream.getsockname()[1]), timeout=5,
                           attempts=1, max_in_flight=4)
    answered: list[int] = []

    def upstream_answers() -> None:
        time.sleep(0.05)  # the questions reach it
        answered.append(_answer_all(upstream))
        time.sleep(0.05)  # its answers come back

    names = [f"n{i}.example" for i in range(70)]
    try:
        # No await: without reading the socket inside submit_many, 4 questions would go
        # out and 66 wait until the loop came round.
        asked = resolver.submit_many("A", _SlowNames(names, 64, upstream_answers),
                                     [None] * 70, ["k"] * 70, None)
        assert answered == [4]
        assert [a.done() for a in asked[:4]] == [True] * 4  # type: ignore[union-attr]
        assert all(a.result().outcome is Outcome.OK for a in asked[:4])  # type: ignore[union-attr]
        time.sleep(0.05)
        assert _answer_all(upstream) == 4  # the window was refilled at once
        # A caller's own stretch can do the same.
        time.sleep(0.05)
        resolver.poll()
        assert sum(a.done() for a in asked) == 8  # type: ignore[union-attr]
    finally:
        resolver.close()
        upstream.close()
