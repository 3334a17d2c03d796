"""An embedded DNS responder for ``--demo``: the bundled zones over UDP and TCP on loopback.

It behaves like the local recursive resolver the README tells users to run
(RA set, AA clear, CNAME chains followed), so the exporter talks to it through
its normal :class:`exporter.dns.DnsResolver` with nothing special-cased. It
never forwards: a name outside the bundled zones is REFUSED, so the demo
cannot send a packet anywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from typing import cast

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from exporter.demo.data import ZoneData, load_demo_zones

log = logging.getLogger(__name__)

#: RFC 1035: without EDNS a UDP answer must fit in 512 octets.
CLASSIC_UDP_SIZE = 512
#: What we advertise in our OPT record: the DNS Flag Day 2020 size.
OUR_UDP_PAYLOAD = 1232
TCP_MAX_SIZE = 65535
#: A TCP client that sends nothing for this long is dropped.
TCP_IDLE_SECONDS = 10.0
#: With port 0, how often to pick a new UDP port when its TCP twin is taken.
BIND_ATTEMPTS = 20

_REFUSED_TYPES = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})


def respond(data: ZoneData, wire: bytes, *, udp: bool) -> bytes | None:
    """The wire answer to one query, or None for a packet that gets no answer."""
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # any parse failure at all means garbage, which is ignored
        log.debug("ignoring an unparsable packet of %d octets", len(wire))
        return None
    # Never answer a response (that way lie loops) or a TSIG-signed query we
    # cannot sign back.
    if query.flags & dns.flags.QR or query.had_tsig:
        return None
    response = dns.message.make_response(
        query, recursion_available=True, our_payload=OUR_UDP_PAYLOAD
    )
    _fill(data, query, response)
    if not udp:
        limit = TCP_MAX_SIZE
    elif query.edns >= 0:
        limit = min(max(CLASSIC_UDP_SIZE, query.payload), TCP_MAX_SIZE)
    else:
        limit = CLASSIC_UDP_SIZE
    # Too big for the client's buffer: drop whole RRsets and set TC, so the
    # client retries over TCP (RFC 7766).
    return response.to_wire(max_size=limit, prefer_truncation=True)


def _fill(data: ZoneData, query: dns.message.Message, response: dns.message.Message) -> None:
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return
    question = query.question[0]
    if (
        question.rdclass != dns.rdataclass.IN
        or question.rdtype in _REFUSED_TYPES
        or (dns.rdatatype.is_metatype(question.rdtype) and question.rdtype != dns.rdatatype.ANY)
    ):
        response.set_rcode(dns.rcode.REFUSED)
        return
    resolution = data.resolve(question.name, question.rdtype)
    response.set_rcode(resolution.rcode)
    response.answer = list(resolution.answer)
    response.authority = list(resolution.authority)


def _require_loopback(host: str) -> str:
    # Listening anywhere else would make the demo an open (amplifying) responder.
    try:
        address = ipaddress.ip_address(host)
    except ValueError as exc:
        raise ValueError(f"demo responder host must be a loopback IP, got {host!r}") from exc
    if not address.is_loopback:
        raise ValueError(f"demo responder host must be a loopback IP, got {host!r}")
    return str(address)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, data: ZoneData) -> None:
        self._data = data
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # CPython's selector transport does not subclass DatagramTransport in
        # 3.11, but it is one: a datagram endpoint is what we asked for.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        answer = respond(self._data, data, udp=True)
        if answer is not None and self._transport is not None:
            self._transport.sendto(answer, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP "port unreachable" from a client that went away: nothing to do.
        log.debug("UDP error: %s", exc)


class DemoResponder:
    """Answers DNS over UDP and TCP on loopback from the bundled zones.

    As a recursive resolver would: RA set, AA clear. With ``port=0`` UDP and
    TCP share one free port, available as :attr:`port` after :meth:`start`.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, data: ZoneData | None = None
    ) -> None:
        self.host = _require_loopback(host)
        self.port = port
        self.data = data if data is not None else ZoneData(load_demo_zones())
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[asyncio.Task[object]] = set()

    async def start(self) -> None:
        if self._udp is not None:
            raise RuntimeError("demo responder already started")
        loop = asyncio.get_running_loop()
        attempts = BIND_ATTEMPTS if self.port == 0 else 1
        for attempt in range(attempts):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self.data), local_addr=(self.host, self.port)
            )
            port: int = udp.get_extra_info("sockname")[1]
            try:
                tcp = await asyncio.start_server(self._serve_tcp, self.host, port)
            except OSError:
                # The kernel picked a UDP port whose TCP twin is in use: try another.
                udp.close()
                if attempt + 1 == attempts:
                    raise
                continue
            self._udp, self._tcp, self.port = udp, tcp, port
            log.info("demo DNS responder listening on %s port %d (UDP and TCP)", self.host, port)
            return

    async def stop(self) -> None:
        udp, tcp = self._udp, self._tcp
        self._udp = self._tcp = None
        if udp is not None:
            udp.close()
        if tcp is not None:
            tcp.close()
        connections = list(self._connections)
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        if tcp is not None:
            await tcp.wait_closed()

    async def __aenter__(self) -> DemoResponder:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            while True:
                # RFC 1035 4.2.2: each message is preceded by its 2-octet length.
                header = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_SECONDS)
                size = int.from_bytes(header, "big")
                wire = await asyncio.wait_for(reader.readexactly(size), TCP_IDLE_SECONDS)
                answer = respond(self.data, wire, udp=False)
                if answer is None:
                    break  # garbage: this client is not speaking DNS, hang up
                writer.write(len(answer).to_bytes(2, "big") + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass  # the client hung up or went quiet: the normal end of a connection
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def start_demo_responder(host: str = "127.0.0.1", port: int = 0) -> DemoResponder:
    """Start a responder for the bundled demo zones; ``await responder.stop()`` ends it."""
    responder = DemoResponder(host, port)
    await responder.start()
    return responder
