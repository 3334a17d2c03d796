"""An in-process asyncio SMTP server for unit tests: banner, EHLO, STARTTLS, QUIT.

It records every command it got, so tests can assert the probe never sent
MAIL FROM.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.pki import Leaf


@dataclass
class FakeSmtp:
    banner: tuple[str, ...] = ("fake.example ESMTP",)
    banner_code: int = 220
    starttls_line: str | None = "STARTTLS"
    leaf: Leaf | None = None
    #: Seconds to wait before the banner (to provoke timeouts).
    banner_delay: float = 0.0
    commands: list[str] = field(default_factory=list)
    connections: int = 0
    server: asyncio.Server | None = None
    port: int = 0
    tmp: Path | None = None

    async def start(self, host: str = "127.0.0.1") -> FakeSmtp:
        self.server = await asyncio.start_server(self._handle, host, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def _server_context(self) -> ssl.SSLContext:
        assert self.leaf is not None and self.tmp is not None
        chain, key = self.leaf.write(self.tmp, f"fake{id(self)}")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(chain, key)
        return ctx

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            if self.banner_delay:
                await asyncio.sleep(self.banner_delay)
            lines = self.banner
            for i, text in enumerate(lines):
                sep = " " if i == len(lines) - 1 else "-"
                writer.write(f"{self.banner_code}{sep}{text}\r\n".encode())
            await writer.drain()
            while True:
                raw = await reader.readline()
                if not raw:
                    return
                line = raw.decode().strip()
                self.commands.append(line)
                verb = line.split(" ")[0].upper()
                if verb == "EHLO":
                    keywords = ["fake.example greets you", "PIPELINING", "SIZE 10240000"]
                    if self.starttls_line:
                        keywords.append(self.starttls_line)
                    keywords.append("8BITMIME")
                    for i, kw in enumerate(keywords):
                        sep = " " if i == len(keywords) - 1 else "-"
                        writer.write(f"250{sep}{kw}\r\n".encode())
                elif verb == "STARTTLS" and self.starttls_line:
                    writer.write(b"220 2.0.0 Ready to start TLS\r\n")
                    await writer.drain()
                    try:
                        await writer.start_tls(self._server_context())
                    except (ssl.SSLError, OSError):
                        return
                    continue
                elif verb == "QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    await writer.drain()
                    return
                else:
                    writer.write(b"502 5.5.2 Error: command not recognized\r\n")
                await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
