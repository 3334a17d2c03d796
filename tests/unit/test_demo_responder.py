"""The --demo DNS responder and its bundled zones, queried over real loopback sockets."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config import ConfigError, parse_config_text
from exporter.demo import (
    DemoResponder,
    ZoneData,
    demo_config_text,
    load_demo_zones,
    respond,
    start_demo_responder,
)
from exporter.dns import DnsResolver, Outcome, Upstream, reverse_name

HOST = "127.0.0.1"
TIMEOUT = 2.0

# One parsed copy of the bundled data for the tests that need no sockets.
DEMO = ZoneData(load_demo_zones())


@pytest.fixture
async def responder() -> AsyncIterator[DemoResponder]:
    server = await start_demo_responder(HOST, 0)
    try:
        yield server
    finally:
        await server.stop()


async def ask(
    port: int, name: str, rdtype: str = "A", *, tcp: bool = False, payload: int | None = None
) -> dns.message.Message:
    if payload is None:
        query = dns.message.make_query(name, rdtype)
    else:
        query = dns.message.make_query(name, rdtype, use_edns=0, payload=payload)
    if tcp:
        return await dns.asyncquery.tcp(query, HOST, timeout=TIMEOUT, port=port)
    return await dns.asyncquery.udp(query, HOST, timeout=TIMEOUT, port=port)


def records(response: dns.message.Message, rdtype: str) -> list[str]:
    wanted = dns.rdatatype.from_text(rdtype)
    return sorted(rd.to_text() for rrset in response.answer if rrset.rdtype == wanted
                  for rd in rrset)


def txt(response: dns.message.Message) -> list[str]:
    return sorted(
        b"".join(rd.strings).decode() for rrset in response.answer  # type: ignore[attr-defined]
        if rrset.rdtype == dns.rdatatype.TXT for rd in rrset
    )


def soa_owner(response: dns.message.Message) -> str:
    soas = [r for r in response.authority if r.rdtype == dns.rdatatype.SOA]
    assert len(soas) == 1, response.to_text()
    return soas[0].name.to_text()


class _Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.put_nowait(data)


async def raw_udp(port: int, payload: bytes, wait: float) -> bytes | None:
    """Send raw bytes; the reply, or None if none came within ``wait`` seconds."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _Collector, remote_addr=(HOST, port)
    )
    try:
        transport.sendto(payload)
        try:
            return await asyncio.wait_for(protocol.received.get(), wait)
        except TimeoutError:
            return None
    finally:
        transport.close()


def zone_data(origin: str, text: str) -> ZoneData:
    return ZoneData([dns.zone.from_text(text, origin=origin, relativize=False)])


SOA = "@ 60 SOA ns.example. hostmaster.example. 1 3600 600 86400 30\n@ 60 NS ns.example.\n"


# --------------------------------------------------------------------------
# Transport: UDP, TCP, flags, truncation, garbage
# --------------------------------------------------------------------------


async def test_udp_and_tcp_answer_on_the_same_chosen_port(responder: DemoResponder) -> None:
    assert responder.port != 0
    over_udp = await ask(responder.port, "66.2.0.192.zen.bl.example")
    over_tcp = await ask(responder.port, "66.2.0.192.zen.bl.example", tcp=True)
    assert records(over_udp, "A") == records(over_tcp, "A") == ["127.0.0.2"]


async def test_two_responders_on_port_zero_get_different_ports() -> None:
    first = await start_demo_responder(HOST, 0)
    second = await start_demo_responder(HOST, 0)
    try:
        assert first.port != second.port
        assert records(await ask(second.port, "mail.shop.example"), "A") == ["192.0.2.10"]
    finally:
        await first.stop()
        await second.stop()


async def test_answers_like_a_recursive_resolver_ra_set_aa_clear(
    responder: DemoResponder,
) -> None:
    query = dns.message.make_query("mail.shop.example", "A")
    response = await dns.asyncquery.udp(query, HOST, timeout=TIMEOUT, port=responder.port)
    assert response.id == query.id
    assert response.flags & dns.flags.QR
    assert response.flags & dns.flags.RA
    assert response.flags & dns.flags.RD  # echoed from the query
    assert not response.flags & dns.flags.AA
    assert not response.flags & dns.flags.AD  # nothing here is DNSSEC-validated


async def test_letter_case_of_the_question_is_kept(responder: DemoResponder) -> None:
    response = await ask(responder.port, "MaIl.ShOp.ExAmPlE")
    assert response.answer[0].name.to_text() == "MaIl.ShOp.ExAmPlE."
    assert records(response, "A") == ["192.0.2.10"]


BIG_ZONE = SOA + "".join(f'big 60 TXT "{i:02d}{"x" * 98}"\n' for i in range(30))


async def test_udp_answer_too_big_sets_tc_and_tcp_gets_it_all() -> None:
    server = DemoResponder(HOST, 0, zone_data("big.example.", BIG_ZONE))
    await server.start()
    try:
        classic = await ask(server.port, "big.big.example", "TXT")
        assert classic.flags & dns.flags.TC
        assert classic.answer == []
        assert len(classic.to_wire()) <= 512

        small_edns = await ask(server.port, "big.big.example", "TXT", payload=1232)
        assert small_edns.flags & dns.flags.TC  # 30 x 100 octets do not fit in 1232 either

        over_tcp = await ask(server.port, "big.big.example", "TXT", tcp=True)
        assert not over_tcp.flags & dns.flags.TC
        assert len(txt(over_tcp)) == 30

        query = dns.message.make_query("big.big.example", "TXT")
        response, used_tcp = await dns.asyncquery.udp_with_fallback(
            query, HOST, timeout=TIMEOUT, port=server.port
        )
        assert used_tcp
        assert len(txt(response)) == 30
    finally:
        await server.stop()


async def test_edns_payload_size_lets_a_bigger_udp_answer_through() -> None:
    text = SOA + "".join(f'mid 60 TXT "{i:02d}{"y" * 98}"\n' for i in range(8))
    server = DemoResponder(HOST, 0, zone_data("mid.example.", text))
    await server.start()
    try:
        classic = await ask(server.port, "mid.mid.example", "TXT")
        assert classic.flags & dns.flags.TC
        edns = await ask(server.port, "mid.mid.example", "TXT", payload=4096)
        assert not edns.flags & dns.flags.TC
        assert len(txt(edns)) == 8
    finally:
        await server.stop()


async def test_demo_dkim_key_fits_a_classic_udp_answer(responder: DemoResponder) -> None:
    # The exporter's resolver asks without EDNS: the 2048-bit key must not
    # need TCP (it would still work, but slower).
    response = await ask(responder.port, "s2026._domainkey.shop.example", "TXT")
    assert not response.flags & dns.flags.TC
    assert txt(response)[0].startswith("v=DKIM1; k=rsa; p=MIIB")


async def test_garbage_udp_packets_are_ignored_and_service_continues(
    responder: DemoResponder,
) -> None:
    valid = dns.message.make_query("mail.shop.example", "A").to_wire()
    garbage = [
        b"",
        b"\x00",
        b"\xff" * 11,
        valid[:12],  # header claims a question that is not there
        valid[:-3],
        b"\x12\x34\x81\x80" + b"\x00" * 8,  # a response: never answered (no loops)
        bytes(range(256)) * 2,
    ]
    for packet in garbage:
        assert await raw_udp(responder.port, packet, 0.2) is None, packet
    answer = await raw_udp(responder.port, valid, TIMEOUT)
    assert answer is not None
    assert records(dns.message.from_wire(answer), "A") == ["192.0.2.10"]


async def test_garbage_on_tcp_closes_that_connection_only(responder: DemoResponder) -> None:
    reader, writer = await asyncio.open_connection(HOST, responder.port)
    try:
        writer.write(b"\x00\x05hello")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # hung up
    finally:
        writer.close()
        await writer.wait_closed()
    assert records(await ask(responder.port, "mail.shop.example", tcp=True), "A") == [
        "192.0.2.10"
    ]


async def test_tcp_answers_several_framed_queries_on_one_connection(
    responder: DemoResponder,
) -> None:
    names = ["mail.shop.example", "host66.isp.example", "mx1.shop.example"]
    queries = [dns.message.make_query(n, "A") for n in names]
    reader, writer = await asyncio.open_connection(HOST, responder.port)
    try:
        # Pipelined: all three sent before reading any answer (RFC 7766 6.2.1.1).
        for q in queries:
            wire = q.to_wire()
            writer.write(len(wire).to_bytes(2, "big") + wire)
        await writer.drain()
        got = []
        for _ in queries:
            size = int.from_bytes(await reader.readexactly(2), "big")
            got.append(dns.message.from_wire(await reader.readexactly(size)))
    finally:
        writer.close()
        await writer.wait_closed()
    assert [r.id for r in got] == [q.id for q in queries]
    assert [records(r, "A") for r in got] == [["192.0.2.10"], ["192.0.2.66"], ["127.0.0.1"]]


async def test_stop_closes_open_tcp_connections_and_frees_the_port() -> None:
    server = await start_demo_responder(HOST, 0)
    reader, writer = await asyncio.open_connection(HOST, server.port)
    await asyncio.wait_for(server.stop(), TIMEOUT)
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    writer.close()
    again = DemoResponder(HOST, server.port)
    await again.start()  # the same explicit port binds again: nothing leaked
    try:
        assert again.port == server.port
    finally:
        await again.stop()


def test_refuses_to_listen_anywhere_but_loopback() -> None:
    for host in ("0.0.0.0", "192.0.2.1", "::", "localhost"):
        with pytest.raises(ValueError, match="loopback"):
            DemoResponder(host, 0, DEMO)
    assert DemoResponder("::1", 0, DEMO).host == "::1"


def test_non_query_opcode_is_notimp_and_other_classes_and_transfers_refused() -> None:
    notify = dns.message.make_query("shop.example", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    chaos = dns.message.make_query("version.bind", "TXT", rdclass=dns.rdataclass.CH)
    axfr = dns.message.make_query("shop.example", "AXFR")
    expected = [(notify, dns.rcode.NOTIMP), (chaos, dns.rcode.REFUSED), (axfr, dns.rcode.REFUSED)]
    for query, rcode in expected:
        wire = respond(DEMO, query.to_wire(), udp=True)
        assert wire is not None
        assert dns.message.from_wire(wire).rcode() == rcode


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700))
def test_respond_never_raises_on_arbitrary_bytes(packet: bytes) -> None:
    respond(DEMO, packet, udp=True)


_VALID = dns.message.make_query("66.2.0.192.zen.bl.example", "TXT", use_edns=0).to_wire()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), max_size=6))
def test_respond_never_raises_on_corrupted_queries(edits: list[tuple[int, int]]) -> None:
    packet = bytearray(_VALID)
    for index, value in edits:
        packet[index] = value
    wire = respond(DEMO, bytes(packet), udp=True)
    if wire is not None:
        assert len(wire) <= 65535


# --------------------------------------------------------------------------
# DNS semantics: CNAME, negative answers, wildcards, refusal
# --------------------------------------------------------------------------


async def test_cname_is_chased_with_chain_and_target_in_the_answer(
    responder: DemoResponder,
) -> None:
    response = await ask(responder.port, "mail.legacy.example", "A")
    assert [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype)) for r in response.answer] == [
        ("mail.legacy.example.", "CNAME"),
        ("mx1.shop.example.", "A"),
    ]
    assert records(response, "A") == ["127.0.0.1"]
    only_cname = await ask(responder.port, "mail.legacy.example", "CNAME")
    assert records(only_cname, "CNAME") == ["mx1.shop.example."]
    assert records(only_cname, "A") == []


async def test_nxdomain_carries_the_zone_soa_with_the_negative_ttl(
    responder: DemoResponder,
) -> None:
    response = await ask(responder.port, "nothing-here.shop.example")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.answer == []
    assert soa_owner(response) == "shop.example."
    # RFC 2308: min(SOA TTL 60, MINIMUM 30).
    assert response.authority[0].ttl == 30


async def test_nodata_is_noerror_with_soa(responder: DemoResponder) -> None:
    response = await ask(responder.port, "shop.example", "AAAA")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []
    assert soa_owner(response) == "shop.example."


async def test_empty_non_terminals_are_nodata_not_nxdomain(responder: DemoResponder) -> None:
    for name, zone in [
        ("_domainkey.shop.example", "shop.example."),
        ("0.0.127.zen.bl.example", "zen.bl.example."),
        ("bl.example", "example."),  # exists because zen.bl.example does
    ]:
        response = await ask(responder.port, name, "TXT")
        assert response.rcode() == dns.rcode.NOERROR, name
        assert response.answer == []
        assert soa_owner(response) == zone


async def test_names_outside_the_bundled_zones_are_refused(responder: DemoResponder) -> None:
    for name in ("www.example.com", "com", ".", "arpa", "1.1.1.1.in-addr.arpa", "8.8.8.8"):
        response = await ask(responder.port, name)
        assert response.rcode() == dns.rcode.REFUSED, name
        assert response.answer == response.authority == []


def test_wildcard_matches_only_below_its_closest_encloser() -> None:
    data = zone_data("w.example.", SOA + "* 60 A 127.0.0.9\nx.y 60 A 127.0.0.10\n")
    origin = dns.name.from_text("w.example.")
    synthesized = data.resolve(dns.name.from_text("any.thing", origin), dns.rdatatype.A)
    assert synthesized.rcode == dns.rcode.NOERROR
    assert synthesized.answer[0].name == dns.name.from_text("any.thing.w.example.")
    assert [rd.to_text() for rd in synthesized.answer[0]] == ["127.0.0.9"]
    # y.w.example exists (empty non-terminal), so *.w.example does not cover z.y.
    below_existing = data.resolve(dns.name.from_text("z.y", origin), dns.rdatatype.A)
    assert below_existing.rcode == dns.rcode.NXDOMAIN
    assert data.resolve(dns.name.from_text("y", origin), dns.rdatatype.A).answer == ()
    # A synthesised name with another type: NODATA, not NXDOMAIN.
    nodata = data.resolve(dns.name.from_text("other", origin), dns.rdatatype.MX)
    assert nodata.rcode == dns.rcode.NOERROR
    assert nodata.answer == ()


def test_cname_loops_and_chains_leaving_the_data_are_servfail() -> None:
    data = zone_data(
        "c.example.",
        SOA + "a 60 CNAME b\nb 60 CNAME a\nout 60 CNAME www.example.com.\n"
        "gone 60 CNAME missing\n",
    )
    origin = dns.name.from_text("c.example.")
    for name in ("a", "out"):
        result = data.resolve(dns.name.from_text(name, origin), dns.rdatatype.A)
        assert result.rcode == dns.rcode.SERVFAIL, name
        assert result.answer == ()
    # A chain ending in a name that does not exist: NXDOMAIN, chain kept.
    gone = data.resolve(dns.name.from_text("gone", origin), dns.rdatatype.A)
    assert gone.rcode == dns.rcode.NXDOMAIN
    assert [r.rdtype for r in gone.answer] == [dns.rdatatype.CNAME]


def test_zone_data_refuses_the_same_zone_twice() -> None:
    zone = dns.zone.from_text(SOA, origin="d.example.", relativize=False)
    with pytest.raises(ValueError, match="twice"):
        ZoneData([zone, zone])


async def test_the_exporter_resolver_classifies_demo_answers(responder: DemoResponder) -> None:
    resolver = DnsResolver(Upstream((HOST,), responder.port), timeout=1.0, attempts=1)
    listed = await resolver.resolve("66.2.0.192.zen.bl.example", "A")
    assert (listed.outcome, listed.records) == (Outcome.OK, ("127.0.0.2",))
    chased = await resolver.resolve("mail.legacy.example", "A")
    assert chased.records == ("127.0.0.1",)
    assert chased.canonical_name == "mx1.shop.example"
    assert (await resolver.resolve("1.0.0.127.zen.bl.example", "A")).outcome == Outcome.NXDOMAIN
    assert (await resolver.resolve("shop.example", "AAAA")).outcome == Outcome.NODATA
    refused = await resolver.resolve("www.example.com", "A")
    assert refused.outcome == Outcome.REFUSED
    assert not refused.answered


# --------------------------------------------------------------------------
# The demo's facts: what each check will find
# --------------------------------------------------------------------------


async def test_zen_lists_192_0_2_66_with_code_and_reason(responder: DemoResponder) -> None:
    name = "66.2.0.192.zen.bl.example"
    assert records(await ask(responder.port, name), "A") == ["127.0.0.2"]
    assert txt(await ask(responder.port, name, "TXT")) == [
        "Demo listing: 192.0.2.66 sent spam to demo traps, see https://bl.example/lookup"
    ]
    clean = await ask(responder.port, "10.2.0.192.zen.bl.example")
    assert clean.rcode() == dns.rcode.NXDOMAIN


async def test_rbl_lists_the_ipv4_and_ipv6_sender_with_code_4(responder: DemoResponder) -> None:
    v6 = reverse_name("2001:db8::66").removesuffix(".ip6.arpa")
    for label in ("66.2.0.192", v6):
        response = await ask(responder.port, f"{label}.rbl.bl.example")
        assert records(response, "A") == ["127.0.0.4"], label
        assert txt(await ask(responder.port, f"{label}.rbl.bl.example", "TXT"))
    clean_v6 = reverse_name("2001:db8::10").removesuffix(".ip6.arpa")
    response = await ask(responder.port, f"{clean_v6}.rbl.bl.example")
    assert response.rcode() == dns.rcode.NXDOMAIN


async def test_ip_lists_have_rfc5782_test_entries(responder: DemoResponder) -> None:
    for zone in ("zen.bl.example", "rbl.bl.example"):
        assert records(await ask(responder.port, f"2.0.0.127.{zone}"), "A") == ["127.0.0.2"]
        assert txt(await ask(responder.port, f"2.0.0.127.{zone}", "TXT"))
        not_listed = await ask(responder.port, f"1.0.0.127.{zone}")
        assert not_listed.rcode() == dns.rcode.NXDOMAIN


async def test_domain_list_lists_spammy_and_its_test_entry_not_invalid(
    responder: DemoResponder,
) -> None:
    assert records(await ask(responder.port, "spammy.example.dbl.bl.example"), "A") == [
        "127.0.1.2"
    ]
    assert txt(await ask(responder.port, "spammy.example.dbl.bl.example", "TXT"))
    assert records(await ask(responder.port, "test.dbl.bl.example"), "A") == ["127.0.1.2"]
    for name in ("invalid.dbl.bl.example", "shop.example.dbl.bl.example"):
        assert (await ask(responder.port, name)).rcode() == dns.rcode.NXDOMAIN, name


async def test_broken_list_answers_an_error_code_to_everything(responder: DemoResponder) -> None:
    for label in ("2.0.0.127", "1.0.0.127", "10.2.0.192", "anything.at.all"):
        response = await ask(responder.port, f"{label}.broken.bl.example")
        assert records(response, "A") == ["127.255.255.254"], label


async def test_clean_sender_has_aligned_ptr_both_ways(responder: DemoResponder) -> None:
    for ip, rdtype in (("192.0.2.10", "A"), ("2001:db8::10", "AAAA")):
        ptr = await ask(responder.port, reverse_name(ip), "PTR")
        assert records(ptr, "PTR") == ["mail.shop.example."], ip
        forward = await ask(responder.port, "mail.shop.example", rdtype)
        assert ip in [str(ipaddress.ip_address(r)) for r in records(forward, rdtype)]


async def test_listed_sender_is_forward_confirmed_under_another_name(
    responder: DemoResponder,
) -> None:
    ptr = await ask(responder.port, reverse_name("192.0.2.66"), "PTR")
    assert records(ptr, "PTR") == ["host66.isp.example."]
    assert records(await ask(responder.port, "host66.isp.example"), "A") == ["192.0.2.66"]
    v6 = await ask(responder.port, reverse_name("2001:db8::66"), "PTR")
    assert records(v6, "PTR") == ["host66.isp.example."]
    assert records(await ask(responder.port, "host66.isp.example", "AAAA"), "AAAA") == [
        "2001:db8::66"
    ]


async def test_broken_ptr_points_at_a_name_that_does_not_exist(
    responder: DemoResponder,
) -> None:
    ptr = await ask(responder.port, reverse_name("192.0.2.77"), "PTR")
    assert records(ptr, "PTR") == ["mail.lost.example."]
    for rdtype in ("A", "AAAA"):
        forward = await ask(responder.port, "mail.lost.example", rdtype)
        # An answer (NXDOMAIN), not a refusal: FCrDNS is invalid, not unknown.
        assert forward.rcode() == dns.rcode.NXDOMAIN


async def test_sender_without_ptr_gets_nxdomain(responder: DemoResponder) -> None:
    response = await ask(responder.port, reverse_name("192.0.2.88"), "PTR")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert soa_owner(response) == "2.0.192.in-addr.arpa."


async def test_spf_records(responder: DemoResponder) -> None:
    def spf(resp: dns.message.Message) -> list[str]:
        return [t for t in txt(resp) if t.startswith("v=spf1")]

    assert spf(await ask(responder.port, "shop.example", "TXT")) == [
        "v=spf1 ip4:192.0.2.10 ip6:2001:db8::10 -all"
    ]
    legacy = spf(await ask(responder.port, "legacy.example", "TXT"))
    assert len(legacy) == 2
    assert "v=spf1 +all" in legacy


def _spf_lookups(domain: str, depth: int = 0) -> int:
    """RFC 7208 4.6.4 DNS-querying terms of a demo SPF record, includes followed."""
    assert depth < 10, "include loop in the demo data"
    result = DEMO.resolve(dns.name.from_text(domain), dns.rdatatype.TXT)
    texts = [b"".join(rd.strings).decode() for r in result.answer for rd in r]  # type: ignore[attr-defined]
    (record,) = [t for t in texts if t.startswith("v=spf1 ")]
    count = 0
    for term in record.split()[1:]:
        mechanism = term.lstrip("+-~?").split(":", 1)[0].split("=", 1)[0].split("/", 1)[0]
        if mechanism in ("include", "a", "mx", "ptr", "exists", "redirect"):
            count += 1
        if mechanism in ("include", "redirect"):
            count += _spf_lookups(term.split(":", 1)[-1].split("=", 1)[-1], depth + 1)
    return count


def test_heavy_spf_goes_over_the_ten_lookup_limit_and_shop_does_not() -> None:
    assert _spf_lookups("heavy.example") == 11
    assert _spf_lookups("shop.example") == 0
    assert _spf_lookups("news.shop.example") == 1


async def test_dkim_keys_good_weak_and_revoked(responder: DemoResponder) -> None:
    def key_bits(record: str) -> int:
        b64 = record.split("p=", 1)[1]
        key = load_der_public_key(base64.b64decode(b64))
        assert isinstance(key, rsa.RSAPublicKey)
        return key.key_size

    good = txt(await ask(responder.port, "s2026._domainkey.shop.example", "TXT"))
    weak = txt(await ask(responder.port, "old._domainkey.legacy.example", "TXT"))
    revoked = txt(await ask(responder.port, "gone._domainkey.legacy.example", "TXT"))
    assert key_bits(good[0]) == 2048
    assert key_bits(weak[0]) == 1024
    assert revoked == ["v=DKIM1; k=rsa; p="]


async def test_dmarc_policies_and_inheritance(responder: DemoResponder) -> None:
    assert txt(await ask(responder.port, "_dmarc.shop.example", "TXT")) == [
        "v=DMARC1; p=reject; rua=mailto:dmarc@shop.example"
    ]
    assert "p=none" in txt(await ask(responder.port, "_dmarc.legacy.example", "TXT"))[0]
    # news.shop.example has none of its own; the tree walk, up to the TLD,
    # gets answers all the way (never a refusal that would fail the check).
    for name in ("_dmarc.news.shop.example", "_dmarc.spammy.example", "_dmarc.example"):
        assert (await ask(responder.port, name, "TXT")).rcode() == dns.rcode.NXDOMAIN, name
    auth = await ask(responder.port, "legacy.example._report._dmarc.reports.example", "TXT")
    assert auth.rcode() == dns.rcode.NXDOMAIN


async def test_mx_hosts_are_loopback_and_legacy_mx_is_a_cname(responder: DemoResponder) -> None:
    assert records(await ask(responder.port, "shop.example", "MX"), "MX") == [
        "10 mx1.shop.example."
    ]
    assert records(await ask(responder.port, "mx1.shop.example"), "A") == ["127.0.0.1"]
    legacy_mx = records(await ask(responder.port, "legacy.example", "MX"), "MX")
    assert legacy_mx == ["10 mail.legacy.example."]
    assert records(await ask(responder.port, "mail.legacy.example", "CNAME"), "CNAME")


def _all_rrsets() -> list[dns.rrset.RRset]:
    found = []
    for zone in load_demo_zones():
        for name, rdataset in zone.iterate_rdatasets():
            found.append(dns.rrset.from_rdata_list(name, rdataset.ttl, list(rdataset)))
    return found


def test_demo_addresses_are_loopback_or_documentation_ranges_only() -> None:
    allowed = [ipaddress.ip_network(n) for n in ("127.0.0.0/8", "192.0.2.0/24", "2001:db8::/32")]
    addresses = [
        ipaddress.ip_address(rd.address)  # type: ignore[attr-defined]
        for rrset in _all_rrsets() if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
        for rd in rrset
    ]
    assert addresses
    for address in addresses:
        assert any(address in net for net in allowed), address


def test_every_mx_host_resolves_to_loopback_only() -> None:
    exchanges = {
        rd.exchange  # type: ignore[attr-defined]
        for rrset in _all_rrsets() if rrset.rdtype == dns.rdatatype.MX for rd in rrset
    }
    assert exchanges
    for exchange in exchanges:
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            result = DEMO.resolve(exchange, rdtype)
            for rrset in result.answer:
                if rrset.rdtype == rdtype:
                    for rd in rrset:
                        assert ipaddress.ip_address(rd.address).is_loopback, exchange  # type: ignore[attr-defined]


def test_every_demo_name_lives_under_example_or_the_documentation_reverse_zones() -> None:
    for origin in DEMO.origins:
        text = origin.to_text()
        assert text == "example." or text.endswith(
            (".example.", ".2.0.192.in-addr.arpa.", ".8.b.d.0.1.0.0.2.ip6.arpa.")
        ) or text in ("2.0.192.in-addr.arpa.", "8.b.d.0.1.0.0.2.ip6.arpa."), text


# --------------------------------------------------------------------------
# The demo config
# --------------------------------------------------------------------------


def test_demo_config_parses_and_points_at_the_responder() -> None:
    config = parse_config_text(demo_config_text(53535), "<demo>")
    assert config.resolver.nameservers == ("127.0.0.1",)
    assert config.resolver.port == 53535
    assert config.resolver.timeout == 1.0
    assert [(z.zone, z.type) for z in config.dnsbl.zones] == [
        ("zen.bl.example", "ip"),
        ("rbl.bl.example", "ip"),
        ("dbl.bl.example", "domain"),
        ("broken.bl.example", "ip"),
    ]
    assert not config.dnsbl.builtin
    for check in ("dnsbl", "ptr", "spf", "dkim", "dmarc", "mx"):
        assert 10.0 <= config.interval_of(check) <= 30.0, check
    assert {s.host or s.ip for s in config.senders} == {
        "mail.shop.example", "192.0.2.66", "2001:db8::66", "192.0.2.77", "192.0.2.88",
    }
    domains = {d.name: d for d in config.domains}
    assert set(domains) == {
        "shop.example", "news.shop.example", "legacy.example", "heavy.example", "spammy.example",
    }
    assert domains["shop.example"].dkim_selectors == ("s2026",)
    assert domains["legacy.example"].dkim_selectors == ("old", "gone")
    assert all(not d.smtp for d in config.domains)  # no SMTP server in the demo


def test_demo_config_names_are_all_answered_by_the_bundled_zones() -> None:
    config = parse_config_text(demo_config_text(5300))
    names = [z.zone for z in config.dnsbl.zones]
    names += [s.host for s in config.senders if s.host]
    names += [s.helo for s in config.senders if s.helo]
    names += [d.name for d in config.domains]
    names += [reverse_name(s.ip) for s in config.senders if s.ip]
    for name in names:
        assert DEMO.zone_for(dns.name.from_text(name)) is not None, name


def test_demo_config_text_takes_an_ipv6_loopback_and_rejects_bad_ports() -> None:
    config = parse_config_text(demo_config_text(5300, "::1"))
    assert config.resolver.nameservers == ("::1",)
    for port in (0, 70000):
        with pytest.raises(ValueError):
            demo_config_text(port)


def test_demo_config_is_strict_config() -> None:
    # The template is real config: a typo in it would be caught by the parser.
    with pytest.raises(ConfigError):
        parse_config_text(demo_config_text(5300) + "\nbogus_key: 1\n")
