"""SMTP probe of every MX host: banner, EHLO, STARTTLS, certificate (issue 4).

One target per domain with ``smtp: true``; its run probes every MX host the
domain owns (see :mod:`exporter.mx_hosts` for how shared MX hosts keep their
series unique) at every A and AAAA address. The contract labels samples by
``mx`` only, so the addresses of one host are combined, reporting the worst:

- ``smtp_up`` 1 only when every address answered banner and EHLO;
- ``smtp_starttls`` / ``smtp_tls_cert_valid`` 1 only when every address that
  answered did (no sample when none answered: nothing was learned);
- the expiry is the earliest ``notAfter`` seen, the version the oldest one.

An address that refuses, times out or rejects the greeting makes the run fail
(``check_success`` 0, the reason in the log) and sets ``smtp_up`` to 0.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from cryptography import x509

from exporter.checks.base import CheckContext, Findings, MetricSpec, Status, Target
from exporter.config import Config
from exporter.mx_hosts import owned_mx
from exporter.smtp_client import ProbeResult, SmtpProbeError, probe

#: Oldest first: the aggregate reports the worst version an address negotiated.
_VERSION_ORDER = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
_EXPIRY_WARN_SECONDS = 14 * 86400


def helo_name(configured: str) -> str:
    return configured or socket.getfqdn()


def version_rank(version: str) -> int:
    return _VERSION_ORDER.index(version) if version in _VERSION_ORDER else -1


@dataclass(frozen=True, slots=True)
class CertSummary:
    subject: str
    issuer: str
    not_after: float
    names: tuple[str, ...]

    def describe(self) -> str:
        when = datetime.fromtimestamp(self.not_after, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        names = ", ".join(self.names) or "none"
        return f"subject {self.subject}; issuer {self.issuer}; names {names}; notAfter {when}"


def summarize_cert(der: bytes) -> CertSummary:
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = tuple(san.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    return CertSummary(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_after=cert.not_valid_after_utc.timestamp(),
        names=names,
    )


async def _probe_address(
    host: str, address: str, ctx: CheckContext
) -> ProbeResult | SmtpProbeError:
    cfg = ctx.config.smtp
    try:
        return await probe(
            host, address, cfg.port, helo=helo_name(cfg.helo), timeout=cfg.timeout,
            ca_file=ctx.config.tls.ca_file,
        )
    except SmtpProbeError as exc:
        return exc


def _record_host(host: str, results: dict[str, ProbeResult | SmtpProbeError], f: Findings,
                 port: int) -> None:
    answered = {a: r for a, r in results.items() if isinstance(r, ProbeResult)}
    failed = {a: r for a, r in results.items() if isinstance(r, SmtpProbeError)}
    f.add("deliverability_smtp_up", not failed, mx=host)
    for address, exc in failed.items():
        f.error(f"smtp {host} [{address}]:{port}: {exc}")
        f.note(Status.FAIL, f"MX {host} [{address}] does not answer SMTP", evidence=str(exc),
               fix=f"Make {host} accept connections on port {port} from the Internet, "
                   "or remove it from the MX records.")
    if not answered:
        return
    no_tls = {a: r for a, r in answered.items() if r.tls is None}
    f.add("deliverability_smtp_starttls", not no_tls, mx=host)
    for address, r in no_tls.items():
        why = r.tls_error or "STARTTLS not advertised in the EHLO reply"
        f.note(Status.FAIL, f"MX {host} [{address}] offers no working STARTTLS",
               evidence=f"banner: {r.banner}; EHLO: {' / '.join(r.ehlo)}; {why}",
               fix=f"Enable STARTTLS on {host} (Postfix: smtpd_tls_security_level = may, "
                   "smtpd_tls_chain_files = <key and certificate chain for "
                   f"{host}>).")
    sessions = {a: r.tls for a, r in answered.items() if r.tls is not None}
    all_verified = not no_tls and all(s.verified for s in sessions.values())
    f.add("deliverability_smtp_tls_cert_valid", all_verified, mx=host)
    expiries: list[float] = []
    for address, s in sessions.items():
        cert = summarize_cert(s.leaf) if s.leaf else None
        if cert is not None:
            expiries.append(cert.not_after)
        evidence = f"{s.version}; " + (cert.describe() if cert else "no certificate")
        if s.verified:
            f.note(Status.PASS, f"MX {host} [{address}] STARTTLS with a valid certificate",
                   evidence=evidence)
        else:
            f.note(Status.FAIL, f"MX {host} [{address}] certificate does not verify",
                   evidence=f"{s.verify_error}; {evidence}",
                   fix=f"Install a certificate for {host} from a public CA (e.g. Let's "
                       "Encrypt) with the full chain, and renew it before it expires.")
    if expiries:
        earliest = min(expiries)
        f.add("deliverability_smtp_tls_cert_expiry_timestamp_seconds", earliest, mx=host)
        left = earliest - datetime.now(UTC).timestamp()
        if 0 < left < _EXPIRY_WARN_SECONDS:
            f.note(Status.WARN, f"MX {host} certificate expires in {left / 86400:.1f} days",
                   fix=f"Renew the certificate of {host}.")
    if sessions:
        worst = min((s.version for s in sessions.values()), key=version_rank)
        f.add("deliverability_smtp_tls_version_info", 1, mx=host, version=worst)
        if version_rank(worst) < version_rank("TLSv1.2"):
            f.note(Status.WARN, f"MX {host} negotiates {worst}",
                   fix=f"Enable TLS 1.2 and 1.3 on {host}; older versions are deprecated "
                       "(RFC 8996).")


class SmtpCheck:
    name: ClassVar[str] = "smtp"
    metrics: ClassVar[Sequence[MetricSpec]] = (
        MetricSpec("deliverability_smtp_up",
                   "1 when every address of the MX host answered the banner and EHLO.",
                   ("mx",)),
        MetricSpec("deliverability_smtp_starttls",
                   "1 when every answering address advertised STARTTLS and the handshake "
                   "succeeded.", ("mx",)),
        MetricSpec("deliverability_smtp_tls_cert_valid",
                   "1 when every answering address presented a certificate whose chain "
                   "verifies (system CAs plus tls.ca_file) and that matches the MX name.",
                   ("mx",)),
        MetricSpec("deliverability_smtp_tls_cert_expiry_timestamp_seconds",
                   "The earliest notAfter of the MX host's certificates, as a Unix time.",
                   ("mx",)),
        MetricSpec("deliverability_smtp_tls_version_info",
                   "1 for the oldest TLS version any address of the MX host negotiated.",
                   ("mx", "version")),
    )

    def targets(self, config: Config) -> list[Target]:
        return [Target(self.name, d.name) for d in config.domains if d.smtp]

    def interval(self, config: Config) -> float:
        return config.smtp.interval

    async def run(self, target: Target, ctx: CheckContext) -> Findings:
        f = Findings()
        owned = await owned_mx(ctx.resolver, ctx.config, target.key)
        mx = owned.mx
        if mx.null_mx or mx.bad_null_mx:
            f.note(Status.INFO, f"{target.key} has a null MX: it accepts no mail",
                   evidence="; ".join(mx.records))
            return f
        if not mx.exists:
            f.note(Status.FAIL, f"{target.key} does not exist (NXDOMAIN)",
                   fix=f"Publish MX records for {target.key}.")
            return f
        for host_name, owner in owned.elsewhere.items():
            f.note(Status.INFO, f"MX {host_name} is reported under {owner}",
                   evidence=f"{host_name} is also an MX host of {owner}, configured earlier; "
                            "its series appear once.")
        port = ctx.config.smtp.port
        # Every address of every host at once: a run takes one timeout, not one per address.
        pairs = [(h.name, a) for h in owned.owned for a in h.addresses]
        results = await asyncio.gather(*(_probe_address(h, a, ctx) for h, a in pairs))
        by_pair = dict(zip(pairs, results, strict=True))
        for host in owned.owned:
            if not host.addresses:
                f.add("deliverability_smtp_up", 0, mx=host.name)
                why = "is an IP address, not a host name" if host.ip_literal \
                    else "has no A or AAAA record"
                f.note(Status.FAIL, f"MX {host.name} {why}",
                       fix=f"Publish the addresses of {host.name}, or remove it from the MX "
                           "records.")
                continue
            _record_host(host.name, {a: by_pair[(host.name, a)] for a in host.addresses}, f,
                         port)
        return f
