"""A throwaway certificate authority for tests: a CA and leaf certificates from it.

Valid, expired and wrong-name leaves for the SMTP probe, and leaves for the
MTA-STS HTTPS server. EC P-256 keys: quick to generate, accepted by Postfix
and by Python's ssl.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = dt.timedelta(days=1)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class Leaf:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self.key)

    @property
    def chain_pem(self) -> bytes:
        """Leaf then CA: what a server sends (so DANE-TA can match the CA)."""
        return self.cert_pem + self.ca.public_bytes(serialization.Encoding.PEM)

    @property
    def not_after(self) -> float:
        return self.cert.not_valid_after_utc.timestamp()

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write ``<stem>.chain.pem`` (leaf + CA) and ``<stem>.key.pem``; return both paths."""
        directory.mkdir(parents=True, exist_ok=True)
        chain = directory / f"{stem}.chain.pem"
        key = directory / f"{stem}.key.pem"
        chain.write_bytes(self.chain_pem)
        key.write_bytes(self.key_pem)
        key.chmod(0o600)
        return chain, key


class TestCA:
    """A self-signed root that issues leaves."""

    __test__ = False  # not a pytest test class

    def __init__(self, common_name: str = "Deliverability Exporter Test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = _now()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 3650 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.pem)
        return path

    def issue(
        self,
        *names: str,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> Leaf:
        """A server certificate for ``names`` (SAN dNSNames), valid now unless told otherwise."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        start = not_before or now - _DAY
        end = not_after or now + 90 * _DAY
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return Leaf(cert, key, self.cert)

    def issue_expired(self, *names: str) -> Leaf:
        now = _now()
        return self.issue(*names, not_before=now - 60 * _DAY, not_after=now - 2 * _DAY)
