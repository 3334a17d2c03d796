"""A tiny loopback DNS server for unit tests of the real resolver path."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import dns.message


class LoopbackServer(asyncio.DatagramProtocol):
    """A tiny loopback DNS server whose behaviour each test chooses."""

    def __init__(self, handler: Callable[[dns.message.Message], dns.message.Message | None]):
        self.handler = handler
        self.queries: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        self.queries.append(query.question[0].name.to_text())
        reply = self.handler(query)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply.to_wire(), addr)


@contextlib.asynccontextmanager
async def serving(handler: Callable[[dns.message.Message], dns.message.Message | None]
                  ) -> AsyncIterator[tuple[LoopbackServer, int]]:
    """A ``LoopbackServer`` on 127.0.0.1 and an ephemeral port, for the ``with`` block."""
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(
        lambda: LoopbackServer(handler), local_addr=("127.0.0.1", 0))
    try:
        yield server, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()
