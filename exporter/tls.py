"""TLS client contexts shared by the SMTP probe, the DANE check and the MTA-STS fetch.

Trust is the system's CA store plus ``tls.ca_file`` (an internal CA), the
way a sending MTA configured with extra anchors would see it. Contexts are
built once per CA file version: loading the system store reads hundreds of
certificates, which is not something to repeat on every probe.
"""

from __future__ import annotations

import contextlib
import functools
import os
import ssl


def verifying_context(ca_file: str = "") -> ssl.SSLContext:
    """A context that verifies the chain and the host name (SNI = the name given)."""
    return _verifying(ca_file, _mtime(ca_file))


def permissive_context() -> ssl.SSLContext:
    """A context that accepts any certificate and old protocol versions.

    Used only to *observe* what a server presents after verification failed,
    so expiry, version and DANE can still be reported on a bad chain. An
    opportunistic-TLS sender (Postfix ``may``) would also accept this.
    """
    return _permissive()


def _mtime(path: str) -> float:
    if not path:
        return 0.0
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


@functools.lru_cache(maxsize=8)
def _verifying(ca_file: str, _mtime: float) -> ssl.SSLContext:
    # _mtime is part of the cache key so an edited CA file is re-read.
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    return ctx


@functools.lru_cache(maxsize=1)
def _permissive() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # Observe servers stuck on TLS 1.0/1.1 instead of failing to talk to them.
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with contextlib.suppress(ssl.SSLError):  # depends on the OpenSSL build
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


def peer_chain_der(ssl_object: ssl.SSLObject) -> tuple[bytes, ...]:
    """The certificates the peer sent, leaf first, as DER.

    Python 3.13 has ``get_unverified_chain()`` publicly; 3.11 has it on the
    private ``_sslobj``. Without either, only the leaf is known, which is
    enough for DANE-EE but not DANE-TA.
    """
    getter = getattr(ssl_object, "get_unverified_chain", None)
    if getter is None:
        inner = getattr(ssl_object, "_sslobj", None)
        getter = getattr(inner, "get_unverified_chain", None)
    if getter is not None:
        try:
            chain = getter()
        except (ssl.SSLError, ValueError):
            chain = None
        if chain:
            return tuple(_to_der(c) for c in chain)
    leaf = ssl_object.getpeercert(binary_form=True)
    return (leaf,) if leaf else ()


def _to_der(cert: object) -> bytes:
    if isinstance(cert, bytes):
        return cert
    public_bytes = cert.public_bytes  # type: ignore[attr-defined]
    der: bytes = public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
    return der
