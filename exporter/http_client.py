"""HTTPS for the receiver APIs (Google Postmaster Tools, Microsoft SNDS).

Three rules shape this module:

- Host names are resolved through the project's :class:`~exporter.dns.Resolver`,
  never by aiohttp's own resolver, so an unanswered lookup surfaces as
  :class:`~exporter.dns.LookupFailed` like everywhere else.
- Certificates are verified against the system CAs plus ``tls.ca_file``.
- No redirects, no proxies from the environment, and a size cap on bodies:
  requests go to the configured base URLs and nowhere else, and a URL that
  carries a secret (the SNDS key) is never handed to another host.

Errors are :class:`HttpError` with a message that never contains the URL's
query string, because that is where SNDS keeps its key.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from exporter.dns import Resolver
from exporter.tls import verifying_context

#: Largest body read from a receiver API; their answers are a few kilobytes.
MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_TIMEOUT = 30.0


class HttpError(Exception):
    """A request got no usable HTTP answer (connection, TLS, timeout, size)."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes
    content_type: str

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class ProjectResolver(AbstractResolver):
    """aiohttp's resolver interface on top of the project's Resolver.

    LookupFailed is not an OSError, so aiohttp lets it propagate unchanged
    and the check's run fails with the DNS reason.
    """

    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        literal = _ip_literal(host)
        if literal is not None:
            fam = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
            return [_result(host, str(literal), port, fam)]
        rdtypes: list[str] = []
        if family in (socket.AF_INET, socket.AF_UNSPEC):
            rdtypes.append("A")
        if family in (socket.AF_INET6, socket.AF_UNSPEC):
            rdtypes.append("AAAA")
        answers = await asyncio.gather(*(self._resolver.resolve(host, t) for t in rdtypes))
        results: list[ResolveResult] = []
        for answer in answers:
            answer.require()
            fam = socket.AF_INET6 if answer.rdtype == "AAAA" else socket.AF_INET
            results.extend(_result(host, addr, port, fam) for addr in answer.records)
        if not results:
            # An answered "no address": aiohttp turns OSError into a connect error.
            raise OSError(f"{host} has no A or AAAA record")
        return results

    async def close(self) -> None:
        return None


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _result(hostname: str, addr: str, port: int, family: int) -> ResolveResult:
    return ResolveResult(
        hostname=hostname, host=addr, port=port, family=family,
        proto=0, flags=socket.AI_NUMERICHOST,
    )


def open_session(
    resolver: Resolver, ca_file: str = "", timeout: float = DEFAULT_TIMEOUT
) -> aiohttp.ClientSession:
    """A session that resolves through ``resolver`` and trusts system CAs + ``ca_file``.

    Use as ``async with open_session(...) as session``; one per run is cheap
    at an hourly interval and leaves no connection state between runs.
    """
    connector = aiohttp.TCPConnector(
        resolver=ProjectResolver(resolver),
        ssl=verifying_context(ca_file),
        use_dns_cache=False,  # the project's resolver caches by TTL already
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        trust_env=False,
    )


async def request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    data: Mapping[str, str] | None = None,
    json: object = None,
    what: str = "",
) -> HttpResponse:
    """One request; any HTTP status is an answer, transport trouble is HttpError.

    ``what`` names the endpoint in error messages instead of the URL, whose
    query may hold a secret.
    """
    label = what or _redacted(url)
    try:
        async with session.request(
            method, url, params=params, headers=headers, data=data, json=json,
            allow_redirects=False,
        ) as resp:
            body = await resp.content.read(MAX_BODY_BYTES + 1)
            if len(body) > MAX_BODY_BYTES:
                raise HttpError(f"{label}: response larger than {MAX_BODY_BYTES} bytes")
            return HttpResponse(resp.status, body, resp.headers.get("Content-Type", ""))
    except TimeoutError as exc:
        raise HttpError(f"{label}: timed out") from exc
    except aiohttp.ClientSSLError as exc:
        raise HttpError(f"{label}: TLS failed: {_reason(exc)}") from exc
    except aiohttp.ClientConnectorError as exc:
        raise HttpError(f"{label}: cannot connect: {_reason(exc)}") from exc
    except aiohttp.ClientError as exc:
        # Other client errors may embed the full URL in str(exc): name the type only.
        raise HttpError(f"{label}: {type(exc).__name__}") from exc


def _reason(exc: aiohttp.ClientConnectorError) -> str:
    inner = exc.os_error
    return str(getattr(inner, "reason", None) or getattr(inner, "strerror", None) or inner)


def _redacted(url: str) -> str:
    """The URL without its query string (where keys and tokens travel)."""
    return url.split("?", 1)[0]
