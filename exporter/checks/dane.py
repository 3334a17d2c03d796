"""DANE for SMTP (RFC 7672): TLSA at ``_<port>._tcp.<mx>``, validated, matching the server.

The check is independent of the SMTP check: it does its own STARTTLS session
(non-verifying, since DANE does not depend on the Web PKI) to see the chain
the server presents now, so its result is a function of its own lookups and
connections only. Targets and the ownership of shared MX hosts are the SMTP
check's (:mod:`exporter.mx_hosts`), so ``dane_valid{mx}`` is unique.

Per RFC 7672 §3.1.3 only DANE-TA(2) and DANE-EE(3) are usable for SMTP; PKIX
usages 0 and 1 are ignored. ``dane_valid`` is 1 when the TLSA RRset exists,
is DNSSEC-validated (AD bit), and at every address the presented chain
matches at least one usable record.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from exporter.checks.base import CheckContext, Findings, MetricSpec, Status, Target
from exporter.checks.smtp import helo_name
from exporter.config import Config
from exporter.mx_hosts import owned_mx
from exporter.smtp_client import ProbeResult, SmtpProbeError, probe

USAGE_DANE_TA = 2
USAGE_DANE_EE = 3


@dataclass(frozen=True, slots=True)
class Tlsa:
    usage: int
    selector: int
    mtype: int
    data: bytes

    @property
    def usable(self) -> bool:
        return (self.usage in (USAGE_DANE_TA, USAGE_DANE_EE) and self.selector in (0, 1)
                and self.mtype in (0, 1, 2))

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()}"


def parse_tlsa(record: str) -> Tlsa | None:
    """``"3 1 1 ab12..."`` (the Answer format) → Tlsa, or None if malformed."""
    parts = record.split()
    if len(parts) < 4:
        return None
    try:
        usage, selector, mtype = (int(p) for p in parts[:3])
        data = bytes.fromhex("".join(parts[3:]))
    except ValueError:
        return None
    return Tlsa(usage, selector, mtype, data)


def association_data(cert_der: bytes, selector: int, mtype: int) -> bytes:
    """What a TLSA record with this selector and matching type holds for ``cert_der``."""
    if selector == 0:
        content = cert_der
    elif selector == 1:
        cert = x509.load_der_x509_certificate(cert_der)
        content = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    else:
        raise ValueError(f"unknown TLSA selector {selector}")
    if mtype == 0:
        return content
    if mtype == 1:
        return hashlib.sha256(content).digest()
    if mtype == 2:
        return hashlib.sha512(content).digest()
    raise ValueError(f"unknown TLSA matching type {mtype}")


def tlsa_record_for(cert_der: bytes) -> Tlsa:
    """The record we advise publishing: DANE-EE, SPKI, SHA-256 (survives renewals with the
    same key)."""
    return Tlsa(USAGE_DANE_EE, 1, 1, association_data(cert_der, 1, 1))


def name_matches(pattern: str, host: str) -> bool:
    """Certificate name matching: exact, or a ``*.`` wildcard for exactly one label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def _leaf_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return list(san.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        return [str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except Exception:  # InvalidSignature, unsupported key types, mismatched names
        return False
    return True


def chain_matches(record: Tlsa, chain: Sequence[bytes], host: str, now: float) -> bool:
    """Does the presented chain (leaf first) satisfy this one TLSA record?"""
    if not record.usable or not chain:
        return False
    if record.usage == USAGE_DANE_EE:
        # DANE-EE: only the leaf key/cert matters; names and dates are ignored (RFC 7672 §3.1.1).
        return association_data(chain[0], record.selector, record.mtype) == record.data
    # DANE-TA: a certificate the server sent above the leaf matches, the leaf chains
    # to it by signatures, the leaf is in date and carries the MX name (§3.1.2).
    certs = [x509.load_der_x509_certificate(d) for d in chain]
    leaf = certs[0]
    if not (leaf.not_valid_before_utc.timestamp() <= now <= leaf.not_valid_after_utc.timestamp()):
        return False
    if not any(name_matches(n, host) for n in _leaf_names(leaf)):
        return False
    current = leaf
    for der, cert in zip(chain[1:], certs[1:], strict=True):
        if not _issued_by(current, cert):
            return False
        if association_data(der, record.selector, record.mtype) == record.data:
            return True
        current = cert
    return False


def _now() -> float:
    return datetime.now(UTC).timestamp()


class DaneCheck:
    name: ClassVar[str] = "dane"
    metrics: ClassVar[Sequence[MetricSpec]] = (
        MetricSpec("deliverability_dane_valid",
                   "1 when the MX host's TLSA records exist, are DNSSEC-validated and match "
                   "the certificate chain every address presents.", ("mx",)),
    )

    def targets(self, config: Config) -> list[Target]:
        # DANE needs a STARTTLS session, so it follows the smtp setting of the domain.
        return [Target(self.name, d.name) for d in config.domains if d.smtp]

    def interval(self, config: Config) -> float:
        return config.dane.interval

    async def run(self, target: Target, ctx: CheckContext) -> Findings:
        f = Findings()
        owned = await owned_mx(ctx.resolver, ctx.config, target.key)
        for host, owner in owned.elsewhere.items():
            f.note(Status.INFO, f"DANE for MX {host} is reported under {owner}")
        await asyncio.gather(*(self._host(h.name, h.addresses, ctx, f) for h in owned.owned))
        return f

    async def _host(self, host: str, addresses: Sequence[str], ctx: CheckContext,
                    f: Findings) -> None:
        port = ctx.config.smtp.port
        qname = f"_{port}._tcp.{host}"
        answer = (await ctx.resolver.resolve(qname, "TLSA")).require()
        if not answer.records:
            f.add("deliverability_dane_valid", 0, mx=host)
            f.note(Status.INFO, f"MX {host} publishes no TLSA record",
                   evidence=f"{qname} TLSA: {answer.outcome.value}",
                   fix=f"Sign the zone of {host} with DNSSEC and publish {qname}. IN TLSA "
                       "3 1 1 <SHA-256 of the server's public key>.")
            return
        records = [r for r in (parse_tlsa(t) for t in answer.records) if r is not None]
        usable = [r for r in records if r.usable]
        seen = "; ".join(answer.records)
        if not answer.authenticated:
            f.add("deliverability_dane_valid", 0, mx=host)
            f.note(Status.FAIL, f"TLSA of MX {host} is not DNSSEC-validated",
                   evidence=f"{qname} TLSA {seen} (no AD bit from the validating resolver)",
                   fix=f"Sign the zone holding {qname} with DNSSEC and publish its DS record; "
                       "senders ignore unsigned TLSA records.")
            return
        if not usable:
            f.add("deliverability_dane_valid", 0, mx=host)
            f.note(Status.FAIL, f"MX {host} has no TLSA record usable for SMTP",
                   evidence=f"{qname} TLSA {seen}",
                   fix="Publish usage 3 (DANE-EE) or 2 (DANE-TA) records; usages 0 and 1 are "
                       "not used by SMTP (RFC 7672).")
            return
        if not addresses:
            f.note(Status.FAIL, f"MX {host} has no address to check DANE against")
            return
        cfg = ctx.config.smtp

        async def one(address: str) -> ProbeResult | SmtpProbeError:
            try:
                return await probe(host, address, port, helo=helo_name(cfg.helo),
                                   timeout=cfg.timeout, verify=False)
            except SmtpProbeError as exc:
                return exc

        results = await asyncio.gather(*(one(a) for a in addresses))
        failed = [(a, r) for a, r in zip(addresses, results, strict=True)
                  if isinstance(r, SmtpProbeError)]
        if failed:
            # Whether the server matches is unknown: no sample, the run fails.
            for address, exc in failed:
                f.error(f"dane {host} [{address}]:{port}: {exc}")
            return
        ok = True
        now = _now()
        for address, r in zip(addresses, results, strict=True):
            assert isinstance(r, ProbeResult)
            if r.tls is None or not r.tls.chain:
                ok = False
                f.note(Status.FAIL, f"MX {host} [{address}] publishes TLSA but offers no TLS",
                       evidence=r.tls_error or "STARTTLS not advertised",
                       fix=f"Enable STARTTLS on {host}: DANE senders will not deliver without it.")
                continue
            if any(chain_matches(rec, r.tls.chain, host, now) for rec in usable):
                f.note(Status.PASS, f"MX {host} [{address}] matches its TLSA records",
                       evidence=f"{qname} TLSA {seen}")
            else:
                ok = False
                f.note(Status.FAIL, f"MX {host} [{address}] does not match its TLSA records",
                       evidence=f"{qname} TLSA {seen}; the server's key gives "
                                f"{tlsa_record_for(r.tls.chain[0])}",
                       fix=f"Publish {qname}. IN TLSA {tlsa_record_for(r.tls.chain[0])} "
                           "(keep the old record until caches expire), or install the "
                           "certificate the records describe.")
        f.add("deliverability_dane_valid", ok, mx=host)
