"""One HTTPS GET the way an MTA-STS sender does it (RFC 8461 §3.3).

The host name is resolved through the project's resolver beforehand and the
addresses are handed to aiohttp through a fixed resolver, so aiohttp does no
DNS of its own. The certificate must verify for the host name (SNI and Host
are the name, the connection goes to the resolved address). Redirects are
not followed; the body is read up to a limit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from exporter.tls import verifying_context


class FetchError(Exception):
    """The resource could not be fetched (connect, TLS, timeout, too large)."""


@dataclass(frozen=True, slots=True)
class FetchResult:
    status: int
    content_type: str
    body: bytes
    #: The address that answered.
    address: str


class _FixedResolver(AbstractResolver):
    """Answers every name with the addresses resolved through the project's resolver."""

    def __init__(self, addresses: Sequence[str]) -> None:
        self._addresses = list(addresses)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results: list[ResolveResult] = []
        for address in self._addresses:
            fam = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
            results.append(ResolveResult(hostname=host, host=address, port=port, family=fam,
                                         proto=0, flags=socket.AI_NUMERICHOST))
        return results

    async def close(self) -> None:
        return None


async def fetch(
    host: str, addresses: Sequence[str], port: int, path: str, *, timeout: float,
    ca_file: str = "", max_bytes: int = 65536,
) -> FetchResult:
    """GET ``https://host:port/path`` from one of ``addresses``; raises FetchError."""
    if not addresses:
        raise FetchError(f"{host} has no address")
    last = "no address tried"
    for address in addresses:
        try:
            return await _fetch_one(host, address, port, path, timeout, ca_file, max_bytes)
        except FetchError as exc:
            last = str(exc)
    raise FetchError(last)


async def _fetch_one(
    host: str, address: str, port: int, path: str, timeout: float, ca_file: str,
    max_bytes: int,
) -> FetchResult:
    connector = aiohttp.TCPConnector(
        resolver=_FixedResolver([address]), ssl=verifying_context(ca_file), use_dns_cache=False,
        force_close=True,
    )
    authority = host if port == 443 else f"{host}:{port}"
    url = f"https://{authority}{path}"
    try:
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=timeout),
            trust_env=False,  # proxies from the environment would do their own DNS
        ) as session, session.get(
            url, allow_redirects=False, headers={"User-Agent": "deliverability-exporter"}
        ) as resp:
            body = b""
            # read(n) returns what has arrived, up to n: loop to the limit or the end.
            while len(body) <= max_bytes:
                chunk = await resp.content.read(max_bytes + 1 - len(body))
                if not chunk:
                    break
                body += chunk
            if len(body) > max_bytes:
                raise FetchError(f"{url}: body larger than {max_bytes} bytes")
            return FetchResult(resp.status, resp.headers.get("Content-Type", ""), body, address)
    except TimeoutError as exc:
        raise FetchError(f"{url} via {address}: timed out after {timeout:g}s") from exc
    except aiohttp.ClientConnectorCertificateError as exc:
        raise FetchError(f"{url} via {address}: certificate error: "
                         f"{exc.certificate_error}") from exc
    except aiohttp.ClientSSLError as exc:
        raise FetchError(f"{url} via {address}: TLS error: {exc}") from exc
    except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
        raise FetchError(f"{url} via {address}: {type(exc).__name__}: {exc}") from exc
