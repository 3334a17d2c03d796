"""The lean datagram client: same answers as dnspython, IDs matched with questions, retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.dns import Answer, DnsResolver, Outcome, Upstream, answer_from_message
from exporter.dns_wire import DatagramClient, labels_wire, parse_fast, question_wire

Handler = Callable[[bytes, dns.message.Message], list[bytes]]


class _Server(asyncio.DatagramProtocol):
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.received = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received += 1
        for reply in self.handler(data, dns.message.from_wire(data)):
            assert self.transport is not None
            self.transport.sendto(reply, addr)


@pytest.fixture
async def udp_server() -> AsyncIterator[Callable[[Handler], asyncio.Future[tuple[_Server, int]]]]:
    transports: list[asyncio.BaseTransport] = []

    async def make(handler: Handler) -> tuple[_Server, int]:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(
            lambda: _Server(handler), local_addr=("127.0.0.1", 0))
        transports.append(transport)
        return proto, transport.get_extra_info("sockname")[1]

    yield make  # type: ignore[misc]
    for t in transports:
        t.close()


async def ask(client: DatagramClient, qname: str, rdtype: str) -> Answer | None:
    """Submit and wait; None when only dnspython could put the question on the wire."""
    future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
    if not client.submit(qname, rdtype, future.set_result):
        return None
    return await future


def reply_a(query: dns.message.Message, address: str = "127.0.0.2") -> bytes:
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", address))
    return reply.to_wire()


def test_question_wire_matches_dnspython() -> None:
    wire = question_wire("2.0.0.127.zen.example", "A")
    query = dns.message.make_query("2.0.0.127.zen.example.", "A").to_wire()
    assert wire is not None and query[12:12 + len(wire)] == wire
    assert question_wire("bad..name", "A") is None
    assert question_wire("x" * 64 + ".example", "A") is None
    assert question_wire("caf\u00e9.example", "A") is None  # left to dnspython (IDNA)
    assert question_wire("x.example", "NAPTR") is None


label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)


@settings(max_examples=100, deadline=None)
@given(head=st.lists(label, min_size=1, max_size=6), tail=st.lists(label, min_size=1, max_size=6))
def test_joined_label_parts_are_the_whole_name(head: list[str], tail: list[str]) -> None:
    first, rest = labels_wire(".".join(head)), labels_wire(".".join(tail))
    assert first is not None and rest is not None
    name = ".".join(head + tail)
    assert question_wire(name, "A", first + rest) == question_wire(name, "A")
    assert question_wire(name, "A", b"\x01x" * 128) is None  # over 255 octets


@settings(max_examples=200, deadline=None)
@given(
    labels=st.lists(label, min_size=1, max_size=4),
    kind=st.sampled_from(["A", "TXT", "NXDOMAIN", "NODATA"]),
    values=st.lists(st.integers(0, 255), min_size=1, max_size=4),
    texts=st.lists(st.binary(max_size=300), min_size=1, max_size=3),
    ttl=st.integers(0, 100000),
    ad=st.booleans(),
)
def test_fast_parser_agrees_with_dnspython(labels: list[str], kind: str, values: list[int],
                                           texts: list[bytes], ttl: int, ad: bool) -> None:
    name = ".".join(labels) + ".bl.example"
    rdtype = "TXT" if kind == "TXT" else "A"
    query = dns.message.make_query(name, rdtype)
    reply = dns.message.make_response(query)
    if ad:
        reply.flags |= dns.flags.AD
    if kind == "A":
        reply.answer.append(dns.rrset.from_text(name + ".", ttl, "IN", "A",
                                                *[f"127.0.0.{v}" for v in values]))
    elif kind == "TXT":
        rrset = dns.rrset.RRset(dns.name.from_text(name), dns.rdataclass.IN, dns.rdatatype.TXT)
        for t in texts:
            chunks = [t[i:i + 255] for i in range(0, len(t), 255)] or [b""]
            rrset.add(dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks),
                      ttl)
        reply.answer.append(rrset)
    else:
        if kind == "NXDOMAIN":
            reply.set_rcode(dns.rcode.NXDOMAIN)
        reply.authority.append(dns.rrset.from_text(
            "bl.example.", ttl, "IN", "SOA", f"ns. host. 1 3600 600 86400 {ttl // 2}"))
    wire = reply.to_wire()
    qlen = len(question_wire(name, rdtype) or b"")
    fast = parse_fast(wire, qlen, name, rdtype, 16 if rdtype == "TXT" else 1)
    slow = answer_from_message(name, rdtype, dns.message.from_wire(wire))
    assert fast == slow


def test_cname_goes_to_the_full_parser() -> None:
    query = dns.message.make_query("x.example", "A")
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text("x.example.", 60, "IN", "CNAME", "y.example."))
    reply.answer.append(dns.rrset.from_text("y.example.", 60, "IN", "A", "192.0.2.1"))
    assert parse_fast(reply.to_wire(), len(question_wire("x.example", "A") or b""),
                      "x.example", "A", 1) is None


async def test_late_answer_to_another_question_with_same_id_is_ignored(udp_server) -> None:  # type: ignore[no-untyped-def]
    def handler(data: bytes, query: dns.message.Message) -> list[bytes]:
        # First a forged/late answer: same ID, different question; then the real one.
        other = dns.message.make_query("other.example", "A")
        other.id = query.id
        return [reply_a(other, "127.0.0.9"), reply_a(query, "127.0.0.2")]

    _, port = await udp_server(handler)
    client = DatagramClient(("127.0.0.1",), port, 1.0, 1)
    answer = await ask(client, "x.example", "A")
    client.close()
    assert answer is not None and answer.records == ("127.0.0.2",)


async def test_dropped_packet_is_retransmitted(udp_server) -> None:  # type: ignore[no-untyped-def]
    seen: list[int] = []

    def handler(data: bytes, query: dns.message.Message) -> list[bytes]:
        seen.append(query.id)
        return [] if len(seen) == 1 else [reply_a(query)]

    server, port = await udp_server(handler)
    client = DatagramClient(("127.0.0.1",), port, 0.1, 3)
    answer = await ask(client, "x.example", "A")
    client.close()
    assert answer is not None and answer.outcome is Outcome.OK
    assert server.received == 2


async def test_truncated_answer_is_asked_again_over_tcp(udp_server) -> None:  # type: ignore[no-untyped-def]
    async def tcp_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        length = int.from_bytes(await reader.readexactly(2), "big")
        query = dns.message.from_wire(await reader.readexactly(length))
        reply = dns.message.make_response(query)
        reply.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "TXT",
                                                '"' + "x" * 200 + '"', '"' + "y" * 200 + '"'))
        wire = reply.to_wire()
        writer.write(len(wire).to_bytes(2, "big") + wire)
        await writer.drain()
        writer.close()

    def handler(data: bytes, query: dns.message.Message) -> list[bytes]:
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.TC
        return [reply.to_wire()]

    _, port = await udp_server(handler)
    tcp = await asyncio.start_server(tcp_handler, "127.0.0.1", port)
    client = DatagramClient(("127.0.0.1",), port, 1.0, 1)
    answer = await ask(client, "big.example", "TXT")
    client.close()
    tcp.close()
    assert answer is not None and answer.outcome is Outcome.OK
    assert sorted(len(r) for r in answer.records) == [200, 200]


async def test_many_questions_in_flight_on_one_socket(udp_server) -> None:  # type: ignore[no-untyped-def]
    # The resolver's window (max_in_flight) keeps bursts within what a server can take.
    server, port = await udp_server(lambda data, q: [reply_a(q)])
    resolver = DnsResolver(Upstream(("127.0.0.1",), port), timeout=2.0, attempts=2,
                           max_in_flight=100)
    answers = await asyncio.gather(*(resolver.resolve(f"{i}.example", "A") for i in range(2000)))
    resolver.close()
    assert all(a.records == ("127.0.0.2",) for a in answers)
    assert server.received == 2000  # one socket, no retransmissions needed


async def test_window_bounds_questions_on_the_wire(udp_server) -> None:  # type: ignore[no-untyped-def]
    server, port = await udp_server(lambda data, q: [reply_a(q)])
    client = DatagramClient(("127.0.0.1",), port, 2.0, 2, window=10)
    answers: list[Answer] = []
    for i in range(100):
        assert client.submit(f"{i}.example", "A", answers.append)
    assert client.in_flight == 10  # the other 90 wait their turn, in order
    for _ in range(200):
        if len(answers) == 100:
            break
        await asyncio.sleep(0.01)
    client.close()
    assert len(answers) == 100 and all(a.outcome is Outcome.OK for a in answers)
    assert server.received == 100


async def test_one_sweep_times_out_many_questions(udp_server) -> None:  # type: ignore[no-untyped-def]
    server, port = await udp_server(lambda data, q: [])
    client = DatagramClient(("127.0.0.1",), port, 0.05, 2)
    answers = await asyncio.gather(*(ask(client, f"{i}.example", "A") for i in range(50)))
    client.close()
    assert all(a is not None and a.outcome is Outcome.TIMEOUT for a in answers)
    assert server.received == 100  # every question sent twice, then given up


async def test_closing_answers_open_questions_as_timeouts(udp_server) -> None:  # type: ignore[no-untyped-def]
    _, port = await udp_server(lambda data, q: [])
    client = DatagramClient(("127.0.0.1",), port, 5.0, 1, window=1)
    answers: list[Answer] = []
    client.submit("a.example", "A", answers.append)
    client.submit("b.example", "A", answers.append)  # still waiting for the window
    client.close()
    assert [(a.name, a.outcome) for a in answers] == [("a.example", Outcome.TIMEOUT),
                                                      ("b.example", Outcome.TIMEOUT)]


async def test_a_failing_callback_does_not_stall_the_questions_behind_it(udp_server) -> None:  # type: ignore[no-untyped-def]
    _, port = await udp_server(lambda data, q: [reply_a(q)])
    client = DatagramClient(("127.0.0.1",), port, 1.0, 1, window=1)
    answers: list[Answer] = []

    def broken(answer: Answer) -> None:
        raise RuntimeError("a bug in an asker")

    client.submit("a.example", "A", broken)
    client.submit("b.example", "A", answers.append)  # waits for a's slot in the window
    for _ in range(100):
        if answers:
            break
        await asyncio.sleep(0.01)
    client.close()
    assert [a.name for a in answers] == ["b.example"]


async def test_a_questions_go_without_edns_the_others_with_it(udp_server) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[str, int, bool]] = []

    def record(data: bytes, q: dns.message.Message) -> list[bytes]:
        seen.append((dns.rdatatype.to_text(q.question[0].rdtype), q.edns,
                     bool(q.flags & dns.flags.AD)))
        return [dns.message.make_response(q).to_wire()]

    _, port = await udp_server(record)
    client = DatagramClient(("127.0.0.1",), port, 1.0, 1)
    for rdtype in ("A", "TXT", "MX"):
        answer = await ask(client, "x.example", rdtype)
        assert answer is not None and answer.outcome is Outcome.NODATA
    client.close()
    # edns -1 is "no OPT record"; the AD bit is asked for either way.
    assert seen == [("A", -1, True), ("TXT", 0, True), ("MX", 0, True)]


async def test_a_refused_send_on_the_connected_socket_is_sent_again() -> None:
    # The socket is connected to its one server, so an ICMP "port unreachable" from an
    # earlier question is reported by the next send; that packet must still go out.
    import socket

    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    port = server.getsockname()[1]
    server.close()  # nobody listens there yet
    client = DatagramClient(("127.0.0.1",), port, 0.5, 1)
    answers: list[Answer] = []
    assert client.submit("a.example", "A", answers.append)  # refused: ICMP comes back
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", port))
    server.setblocking(False)
    # No await in between: the loop has not read the error, so this send reports it.
    assert client.submit("b.example", "A", answers.append)
    try:
        for _ in range(100):
            try:
                data, addr = server.recvfrom(4096)
                break
            except BlockingIOError:
                await asyncio.sleep(0.01)
        else:
            raise AssertionError("the second question never arrived")
        server.sendto(reply_a(dns.message.from_wire(data)), addr)
        for _ in range(100):
            if len(answers) == 2:
                break
            await asyncio.sleep(0.01)
    finally:
        client.close()
        server.close()
    assert sorted((a.name, a.outcome) for a in answers) == [("a.example", Outcome.TIMEOUT),
                                                            ("b.example", Outcome.OK)]


async def test_a_timeout_then_servfail_spends_attempts_in_all(udp_server) -> None:  # type: ignore[no-untyped-def]
    # The tries the client spends on timeouts count towards the resolver's SERVFAIL
    # retries: `attempts` questions at most, whatever the mix.
    def handler(data: bytes, q: dns.message.Message) -> list[bytes]:
        if server.received == 1:
            return []  # the first question is lost
        reply = dns.message.make_response(q)
        reply.set_rcode(dns.rcode.SERVFAIL)
        return [reply.to_wire()]

    server, port = await udp_server(handler)
    resolver = DnsResolver(Upstream(("127.0.0.1",), port), timeout=0.2, attempts=2)
    answer = await resolver.resolve("x.example", "A")
    resolver.close()
    assert answer.outcome is Outcome.SERVFAIL
    assert server.received == 2
