"""--web.config.file with real TLS: server and client certificates, bcrypt basic auth, headers.

A test CA made here issues the server's certificate (for 127.0.0.1) and a
client certificate; a second, untrusted CA issues an impostor's. The
exporter runs as a user runs it, and is spoken to over real TLS.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import ipaddress
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.integration.exporter_proc import REPO_ROOT, ExporterProcess
from tests.integration.stack import free_port

PASSWORD = "correct horse battery staple"
HEADERS = {"Strict-Transport-Security": "max-age=31536000",
           "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}
#: No senders or domains: the exporter needs no DNS to serve these endpoints.
EXPORTER_CONFIG = ("resolver:\n  nameservers: ['127.0.0.1']\n  port: 9\n  timeout: 100ms\n"
                   "dnsbl:\n  zones: []\n")


@dataclass
class Pair:
    cert: Path
    key: Path


class CA:
    """A self-signed root issuing EC P-256 leaves."""

    def __init__(self, name: str, directory: Path) -> None:
        self.dir = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.path = directory / f"{name.replace(' ', '_')}.ca.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, stem: str, common_name: str, *, server: bool) -> Pair:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False)
        )
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        pair = Pair(self.dir / f"{stem}.crt", self.dir / f"{stem}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pair.key.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        pair.key.chmod(0o600)
        return pair


@dataclass
class Pki:
    ca: CA
    server: Pair
    client: Pair
    impostor: Pair


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = CA("Exporter Test CA", d)
    rogue = CA("Rogue CA", d)
    return Pki(ca, ca.issue("server", "127.0.0.1", server=True),
               ca.issue("client", "prometheus", server=False),
               rogue.issue("impostor", "prometheus", server=False))


def hash_of(password: str) -> str:
    # Cost 4 keeps the test fast; the format is the same as htpasswd -B's.
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode().replace(
        "$2b$", "$2y$")


def web_config(pki: Pki, auth_type: str = "RequireAndVerifyClientCert",
               min_version: str = "TLS12") -> str:
    headers = "".join(f"    {k}: {v!r}\n" for k, v in HEADERS.items())
    return f"""\
tls_server_config:
  cert_file: {pki.server.cert}
  key_file: {pki.server.key}
  client_auth_type: {auth_type}
  client_ca_file: {pki.ca.path}
  min_version: {min_version}
basic_auth_users:
  prometheus: '{hash_of(PASSWORD)}'
  other: '{hash_of("other password")}'
http_server_config:
  headers:
{headers}"""


def client_context(pki: Pki, pair: Pair | None, max_version: ssl.TLSVersion | None = None
                   ) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca.path))
    if pair is not None:
        ctx.load_cert_chain(str(pair.cert), str(pair.key))
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def https(proc: ExporterProcess, ctx: ssl.SSLContext, path: str, *, method: str = "GET",
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPSConnection("127.0.0.1", proc.port, context=ctx, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode()
    finally:
        conn.close()


def refused(proc: ExporterProcess, ctx: ssl.SSLContext) -> bool:
    """True when no HTTP answer comes back over this TLS client context."""
    try:
        https(proc, ctx, "/metrics", headers=basic("prometheus", PASSWORD))
    except (ssl.SSLError, ConnectionError, http.client.HTTPException, OSError):
        return True
    return False


def start(tmp: Path, text: str, pki: Pki) -> ExporterProcess:
    path = tmp / "web.yml"
    path.write_text(text)
    proc = ExporterProcess(EXPORTER_CONFIG, tmp, ["--web.config.file", str(path)])
    proc.start(wait_ready=False)
    good = client_context(pki, pki.client)
    deadline = time.monotonic() + 20

    def up() -> bool:
        try:
            return https(proc, good, "/-/healthy", headers=basic("prometheus", PASSWORD))[0] == 200
        except (OSError, ssl.SSLError, http.client.HTTPException):
            return False

    while not up():
        if time.monotonic() > deadline or not proc.running():
            proc.kill()
            raise AssertionError(f"exporter with TLS did not come up\n{proc.log[-4000:]}")
        time.sleep(0.2)
    return proc


@pytest.fixture(scope="module")
def secure(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterProcess]:
    proc = start(tmp_path_factory.mktemp("tls-exporter"), web_config(pki), pki)
    yield proc
    proc.kill()
    print(f"--- tls exporter log ---\n{proc.log[-8000:]}")


def test_verified_client_with_the_right_password_gets_metrics_and_headers(
    secure: ExporterProcess, pki: Pki
) -> None:
    status, headers, body = https(secure, client_context(pki, pki.client), "/metrics",
                                  headers=basic("prometheus", PASSWORD))
    assert status == 200
    assert "deliverability_build_info" in body
    for name, value in HEADERS.items():
        assert headers[name.lower()] == value
    # Twice: the second answer comes from the verified-credentials cache, same result.
    assert https(secure, client_context(pki, pki.client), "/metrics",
                 headers=basic("prometheus", PASSWORD))[0] == 200


@pytest.mark.parametrize("auth", [
    basic("prometheus", "wrong"),
    basic("prometheus", PASSWORD + " "),
    basic("other", PASSWORD),             # a real user, someone else's password
    basic("nobody", PASSWORD),
    basic("prometheus", "x" * 100),       # longer than bcrypt's 72 bytes
    {"Authorization": "Basic !!!notbase64"},
    {"Authorization": "Bearer " + PASSWORD},
    {},
])
def test_wrong_or_missing_credentials_are_401(
    secure: ExporterProcess, pki: Pki, auth: dict[str, str]
) -> None:
    ctx = client_context(pki, pki.client)
    for path in ("/metrics", "/probe?target=good.test&module=x", "/", "/-/ready"):
        status, headers, body = https(secure, ctx, path, headers=auth)
        assert status == 401, (path, body)
        assert headers["www-authenticate"].startswith("Basic realm=")
        assert "deliverability" not in body
        assert headers["strict-transport-security"] == HEADERS["Strict-Transport-Security"]


def test_reload_needs_credentials_too(secure: ExporterProcess, pki: Pki) -> None:
    ctx = client_context(pki, pki.client)
    assert https(secure, ctx, "/-/reload", method="POST", headers=basic("x", "y"))[0] == 401
    stamp_line = [line for line in https(secure, ctx, "/metrics",
                                         headers=basic("prometheus", PASSWORD))[2].splitlines()
                  if line.startswith("deliverability_config_last_reload_success_timestamp")]
    status, _, body = https(secure, ctx, "/-/reload", method="POST",
                            headers=basic("other", "other password"))
    assert (status, body) == (200, "reloaded\n")
    after = [line for line in https(secure, ctx, "/metrics",
                                    headers=basic("prometheus", PASSWORD))[2].splitlines()
             if line.startswith("deliverability_config_last_reload_success_timestamp")]
    assert after != stamp_line


def test_scheme_name_is_case_insensitive(secure: ExporterProcess, pki: Pki) -> None:
    token = base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
    status, _, _ = https(secure, client_context(pki, pki.client), "/metrics",
                         headers={"Authorization": f"basic {token}"})
    assert status == 200


def test_not_found_pages_carry_the_headers(secure: ExporterProcess, pki: Pki) -> None:
    status, headers, _ = https(secure, client_context(pki, pki.client), "/nosuch",
                               headers=basic("prometheus", PASSWORD))
    assert status == 404
    assert headers["x-frame-options"] == "DENY"


def test_a_client_without_a_certificate_is_refused(secure: ExporterProcess, pki: Pki) -> None:
    assert refused(secure, client_context(pki, None))


def test_a_client_certificate_from_another_ca_is_refused(
    secure: ExporterProcess, pki: Pki
) -> None:
    assert refused(secure, client_context(pki, pki.impostor))
    # And the server's own certificate is what the client verified: a client that
    # trusts only the rogue CA refuses the server.
    ctx = ssl.create_default_context(cafile=str(pki.impostor.cert.parent / "Rogue_CA.ca.pem"))
    ctx.load_cert_chain(str(pki.client.cert), str(pki.client.key))
    assert refused(secure, ctx)


def test_plain_http_to_the_tls_port_gets_no_metrics(secure: ExporterProcess) -> None:
    try:
        status, _, body = secure.get("/metrics", timeout=5)
    except OSError:
        return
    assert status != 200 and "deliverability_build_info" not in body


def test_min_version_refuses_older_clients(pki: Pki, tmp_path: Path) -> None:
    proc = start(tmp_path, web_config(pki, "NoClientCert", "TLS13"), pki)
    try:
        assert refused(proc, client_context(pki, None, ssl.TLSVersion.TLSv1_2))
        status, _, _ = https(proc, client_context(pki, None), "/metrics",
                             headers=basic("prometheus", PASSWORD))
        assert status == 200  # NoClientCert: a TLS 1.3 client without a certificate is fine
    finally:
        proc.kill()


@pytest.mark.parametrize(("text", "problem"), [
    ("basic_auth_users:\n  bob: plaintext\n", "basic_auth_users.bob"),
    ("basic_auth_users:\n  bob: '$2y$10$short'\n", "basic_auth_users.bob"),
    ("http_server_config:\n  headers:\n    Set-Cookie: a=b\n",
     "http_server_config.headers.Set-Cookie"),
    ("http_server_config:\n  headers: [a, b]\n", "http_server_config.headers"),
    ("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n",
     "tls_server_config.cert_file"),
    ("tls_server_config: {cert_file: CERT, key_file: KEY, client_auth_type: "
     "RequireAndVerifyClientCert}\n", "tls_server_config.client_ca_file"),
    ("tls_server_config: {cert_file: CERT, key_file: KEY, min_version: TLS9}\n",
     "tls_server_config.min_version"),
    ("tls_server_cofig: {}\n", "tls_server_cofig: unknown key"),
])
def test_a_bad_web_config_stops_the_exporter_with_the_key_path(
    pki: Pki, tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "web.yml"
    path.write_text(text.replace("CERT", str(pki.server.cert)).replace("KEY", str(pki.server.key)))
    config = tmp_path / "config.yml"
    config.write_text(EXPORTER_CONFIG)
    res = subprocess.run(
        [sys.executable, "-m", "exporter", "--config.file", str(config),
         "--web.config.file", str(path), "--web.listen-address", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=30, cwd=REPO_ROOT)
    assert res.returncode == 1, res.stderr
    assert problem in res.stderr
