"""The SMTP conversation a sending server has, up to STARTTLS, and no further.

Banner (multi-line ``220-`` greetings included, as postscreen sends), EHLO,
STARTTLS, the TLS handshake, QUIT. Never MAIL FROM: the probe must not be able
to send mail. The certificate is captured even when verification fails (a
second, non-verifying session), so expiry and DANE are reported on a bad chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from dataclasses import dataclass

from exporter.tls import peer_chain_der, permissive_context, verifying_context

#: Longest reply line accepted (RFC 5321 says 512; be lenient, but bounded).
_MAX_LINE = 4096
#: Most lines in one reply (an EHLO answer has a dozen).
_MAX_LINES = 100


class SmtpProbeError(Exception):
    """The server could not be talked to: refused, timed out, reset, or rejected us."""


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " / ".join(self.lines)


@dataclass(frozen=True, slots=True)
class TlsSession:
    """What one handshake showed."""

    version: str
    #: The peer's certificates as sent, leaf first (DER).
    chain: tuple[bytes, ...]
    #: True when the chain verified against the trust store and matched the name.
    verified: bool
    #: Why verification failed ("" when verified).
    verify_error: str = ""

    @property
    def leaf(self) -> bytes | None:
        return self.chain[0] if self.chain else None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    host: str
    address: str
    port: int
    banner: str
    ehlo: tuple[str, ...]
    starttls_offered: bool
    #: None when STARTTLS was not offered or no handshake succeeded.
    tls: TlsSession | None
    #: Why STARTTLS failed although offered ("" otherwise).
    tls_error: str = ""


def starttls_offered(ehlo_lines: tuple[str, ...]) -> bool:
    """``250-STARTTLS`` or ``250 STARTTLS`` (any case) among the EHLO keywords."""
    # The first line is the greeting ("mx.example.com Hello ..."), not a keyword.
    return any(line.strip().split(" ")[0].upper() == "STARTTLS" for line in ehlo_lines[1:])


async def _read_reply(reader: asyncio.StreamReader, timeout: float) -> Reply:
    lines: list[str] = []
    code = 0
    while len(lines) < _MAX_LINES:
        try:
            raw = await asyncio.wait_for(reader.readline(), timeout)
        except TimeoutError as exc:
            raise SmtpProbeError(f"timed out after {timeout:g}s waiting for a reply") from exc
        except ValueError as exc:  # line longer than the stream limit
            raise SmtpProbeError("reply line too long") from exc
        except OSError as exc:  # reset by the peer, and friends
            raise SmtpProbeError(f"connection lost: {_os_reason(exc)}") from exc
        if not raw:
            raise SmtpProbeError("connection closed by the server")
        if len(raw) > _MAX_LINE:
            raise SmtpProbeError("reply line too long")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if len(line) < 3 or not line[:3].isdigit():
            raise SmtpProbeError(f"not an SMTP reply: {line[:80]!r}")
        this_code = int(line[:3])
        if code and this_code != code:
            raise SmtpProbeError(f"inconsistent reply codes in {line[:80]!r}")
        code = this_code
        lines.append(line[4:])
        # "220-" continues the reply; "220 " (or a bare "220") ends it.
        if len(line) == 3 or line[3] != "-":
            return Reply(code, tuple(lines))
    raise SmtpProbeError("reply with too many lines")


async def _command(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str, timeout: float
) -> Reply:
    writer.write(line.encode("ascii") + b"\r\n")
    try:
        await asyncio.wait_for(writer.drain(), timeout)
    except TimeoutError as exc:
        raise SmtpProbeError(f"timed out sending {line.split()[0]}") from exc
    except OSError as exc:
        raise SmtpProbeError(f"sending {line.split()[0]} failed: {exc}") from exc
    return await _read_reply(reader, timeout)


async def _close(
    writer: asyncio.StreamWriter, reader: asyncio.StreamReader, timeout: float
) -> None:
    """Say QUIT and close; failures here change nothing about the result."""
    with contextlib.suppress(Exception):
        writer.write(b"QUIT\r\n")
        await asyncio.wait_for(writer.drain(), timeout)
        await asyncio.wait_for(reader.readline(), min(timeout, 2.0))
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), min(timeout, 2.0))


def _os_reason(exc: OSError) -> str:
    # asyncio's message ("Connect call failed (...)") hides the errno text people know.
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)


@dataclass(slots=True)
class _Session:
    banner: Reply
    ehlo: Reply
    tls: TlsSession | None
    tls_error: str
    cert_error: bool


async def _session(
    host: str, address: str, port: int, helo: str, timeout: float, ctx: ssl.SSLContext,
    verifying: bool,
) -> _Session:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port, limit=_MAX_LINE * 2), timeout
        )
    except TimeoutError as exc:
        raise SmtpProbeError(f"connect to {address} port {port} timed out after {timeout:g}s") \
            from exc
    except OSError as exc:
        raise SmtpProbeError(
            f"connect to {address} port {port} failed: {_os_reason(exc)}"
        ) from exc
    try:
        banner = await _read_reply(reader, timeout)
        if banner.code != 220:
            raise SmtpProbeError(f"greeting {banner.code} {banner.text}")
        ehlo = await _command(reader, writer, f"EHLO {helo}", timeout)
        if ehlo.code != 250:
            raise SmtpProbeError(f"EHLO answered {ehlo.code} {ehlo.text}")
        if not starttls_offered(ehlo.lines):
            await _close(writer, reader, timeout)
            return _Session(banner, ehlo, None, "", False)
        reply = await _command(reader, writer, "STARTTLS", timeout)
        if reply.code != 220:
            await _close(writer, reader, timeout)
            return _Session(banner, ehlo, None, f"STARTTLS answered {reply.code} {reply.text}",
                            False)
        try:
            await asyncio.wait_for(
                writer.start_tls(ctx, server_hostname=host), timeout
            )
        except ssl.SSLCertVerificationError as exc:
            writer.close()
            return _Session(banner, ehlo, None, exc.verify_message or str(exc), True)
        except TimeoutError:
            writer.close()
            return _Session(banner, ehlo, None, f"TLS handshake timed out after {timeout:g}s",
                            False)
        except (ssl.SSLError, OSError, ConnectionError) as exc:
            writer.close()
            return _Session(banner, ehlo, None, f"TLS handshake failed: {exc}", False)
        ssl_object = writer.get_extra_info("ssl_object")
        tls = TlsSession(
            version=str(ssl_object.version() or "unknown"),
            chain=peer_chain_der(ssl_object),
            verified=verifying,
        )
        await _close(writer, reader, timeout)
        return _Session(banner, ehlo, tls, "", False)
    except BaseException:
        writer.close()
        raise


async def probe(
    host: str, address: str, port: int, *, helo: str, timeout: float, ca_file: str = "",
    verify: bool = True,
) -> ProbeResult:
    """Probe one address of one MX host. Raises SmtpProbeError when it cannot be talked to.

    With ``verify`` the first handshake verifies chain and name (SNI = ``host``);
    if that fails, or the verifying handshake fails for another TLS reason
    (an old protocol), a second non-verifying session captures what the
    server presents. ``verify=False`` does only the non-verifying session
    (the DANE check, which does not depend on the Web PKI).
    """
    ctx = verifying_context(ca_file) if verify else permissive_context()
    first = await _session(host, address, port, helo, timeout, ctx, verify)
    tls, tls_error = first.tls, first.tls_error
    if verify and tls is None and tls_error:
        # Look again without verification, so expiry, version and DANE still work.
        try:
            second = await _session(host, address, port, helo, timeout, permissive_context(),
                                    False)
        except SmtpProbeError as exc:
            # The server did answer the first time: report that, not "down".
            second = _Session(first.banner, first.ehlo, None, f"{tls_error}; second look "
                              f"without verification failed: {exc}", False)
        if second.tls is not None:
            reason = tls_error if first.cert_error else f"verifying handshake failed: {tls_error}"
            tls = TlsSession(second.tls.version, second.tls.chain, False, reason)
            tls_error = ""
        else:
            tls_error = second.tls_error or tls_error
    return ProbeResult(
        host=host,
        address=address,
        port=port,
        banner=first.banner.text,
        ehlo=first.ehlo.lines,
        starttls_offered=starttls_offered(first.ehlo.lines),
        tls=tls,
        tls_error=tls_error,
    )
