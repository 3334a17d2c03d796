"""``--web.config.file``: TLS, client certificates, basic auth and headers.

The format is the Prometheus exporter-toolkit's, so one file serves every
exporter on a host:

    tls_server_config: {cert_file, key_file, client_auth_type, client_ca_file, min_version}
    basic_auth_users: {name: bcrypt-hash}
    http_server_config: {headers: {Name: value}}
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import bcrypt
import yaml
from aiohttp import web
from aiohttp.typedefs import Middleware

from exporter.config import ConfigError

_BCRYPT_RE = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")

#: Compared against when the user name is unknown (cost 10, like htpasswd -B's default).
_UNKNOWN_USER_HASH = b"$2b$10$hFlbU6reyA4l4UjxwjAx1eUC96lTL7FZ5w/8k.sv9V26VUgmAJHwq"

CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3,
}
#: Headers exporter-toolkit lets users set; anything else is refused as a typo.
ALLOWED_HEADERS = (
    "Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options",
    "X-XSS-Protection", "Content-Security-Policy", "Referrer-Policy",
)


@dataclass(frozen=True)
class WebConfig:
    ssl_context: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


def load_web_config(path: str) -> WebConfig:
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([f"{path}: cannot load: {exc}"]) from exc
    problems: list[str] = []

    def problem(key: str, reason: str) -> None:
        problems.append(f"{path}: {key}: {reason}")

    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: expected a mapping"])
    for key in raw:
        if key not in ("tls_server_config", "basic_auth_users", "http_server_config"):
            problem(str(key), "unknown key")
    context = _tls_context(raw.get("tls_server_config"), problem)
    users: dict[str, bytes] = {}
    raw_users = raw.get("basic_auth_users") or {}
    if not isinstance(raw_users, dict):
        problem("basic_auth_users", "expected a mapping of user: bcrypt hash")
        raw_users = {}
    for user, hashed in raw_users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            problem(f"basic_auth_users.{user}", "expected a bcrypt hash ($2y$...)")
            continue
        if not _BCRYPT_RE.match(hashed):
            # Caught here, not as a 500 on the first request: bcrypt rejects a bad salt.
            problem(f"basic_auth_users.{user}", "not a well-formed bcrypt hash "
                    "($2y$<cost>$ and 53 characters of salt and hash)")
            continue
        users[str(user)] = hashed.encode()
    headers: dict[str, str] = {}
    http = raw.get("http_server_config") or {}
    if not isinstance(http, dict):
        problem("http_server_config", "expected a mapping")
        http = {}
    for key in http:
        if key != "headers":
            problem(f"http_server_config.{key}", "unknown key (this exporter supports headers)")
    raw_headers = http.get("headers") or {}
    if not isinstance(raw_headers, dict):
        problem("http_server_config.headers", "expected a mapping of header: value")
        raw_headers = {}
    for name, value in raw_headers.items():
        if name not in ALLOWED_HEADERS:
            problem(f"http_server_config.headers.{name}",
                    f"not an allowed header ({', '.join(ALLOWED_HEADERS)})")
        else:
            headers[name] = str(value)
    if problems:
        raise ConfigError(problems)
    return WebConfig(context, users, headers)


def _tls_context(raw: object, problem: Callable[[str, str], None]) -> ssl.SSLContext | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problem("tls_server_config", "expected a mapping")
        return None
    known = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version")
    for key in raw:
        if key not in known:
            problem(f"tls_server_config.{key}", "unknown key")
    cert, key = raw.get("cert_file"), raw.get("key_file")
    if not cert or not key:
        problem("tls_server_config", "cert_file and key_file are both required")
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    min_version = raw.get("min_version", "TLS12")
    if min_version not in TLS_VERSIONS:
        problem("tls_server_config.min_version", f"one of {', '.join(TLS_VERSIONS)}")
    else:
        context.minimum_version = TLS_VERSIONS[min_version]
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        problem("tls_server_config.cert_file", f"cannot load {cert} / {key}: {exc}")
    auth_type = raw.get("client_auth_type", "NoClientCert")
    if auth_type not in CLIENT_AUTH_TYPES:
        problem("tls_server_config.client_auth_type", f"one of {', '.join(CLIENT_AUTH_TYPES)}")
        return context
    context.verify_mode = CLIENT_AUTH_TYPES[auth_type]
    ca = raw.get("client_ca_file")
    if "Verify" in auth_type:
        if not ca:
            problem("tls_server_config.client_ca_file", f"required with {auth_type}")
        elif not os.access(str(ca), os.R_OK):
            problem("tls_server_config.client_ca_file", f"cannot read {ca}")
        else:
            context.load_verify_locations(cafile=str(ca))
    elif auth_type != "NoClientCert":
        # "Any" client certificate: Python can only ask for verified ones; trust the CA given.
        if ca:
            context.load_verify_locations(cafile=str(ca))
        else:
            problem("tls_server_config.client_ca_file",
                    f"{auth_type} needs client_ca_file here (Python verifies every client cert)")
    return context


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def middlewares(config: WebConfig) -> list[Middleware]:
    verified: set[bytes] = set()  # digests of credentials already checked (bcrypt is slow)

    @web.middleware
    async def auth_and_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        if config.users and not await _authorised(request, config.users, verified):
            response: web.StreamResponse = web.Response(
                status=401, text="Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="deliverability-exporter"'})
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                # aiohttp's own 404/405 are raised, not returned: they get the headers too.
                for name, value in config.headers.items():
                    exc.headers[name] = value
                raise
        for name, value in config.headers.items():
            response.headers[name] = value
        return response

    return [auth_and_headers]


async def _authorised(
    request: web.Request, users: Mapping[str, bytes], verified: set[bytes]
) -> bool:
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "basic":  # RFC 7617: the scheme name is case-insensitive
        return False
    try:
        user, _, password = base64.b64decode(credentials.strip(), validate=True).decode() \
            .partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    hashed = users.get(user)
    if hashed is None:
        # Spend the same bcrypt time as for a real user (as exporter-toolkit does), so the
        # answer time does not tell which user names exist.
        await asyncio.to_thread(bcrypt.checkpw, b"-", _UNKNOWN_USER_HASH)
        return False
    digest = hashlib.sha256(hashed + b"\0" + password.encode()).digest()
    if any(hmac.compare_digest(digest, v) for v in verified):
        return True
    # bcrypt takes a tenth of a second on purpose: keep it off the event loop.
    try:
        ok = await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed)
    except ValueError:  # bcrypt refuses passwords over 72 bytes: not these credentials
        return False
    if ok:
        verified.add(digest)
        return True
    return False
