"""OAuth 2.0 access tokens for the Gmail Postmaster Tools API.

Two kinds of credentials file, both as Google issues them:

- ``"type": "service_account"`` (Cloud console → IAM → Service accounts →
  Keys → JSON): a self-signed RS256 JWT is exchanged for an access token,
  the "JWT bearer" flow of RFC 7523 as Google documents it in "Using OAuth
  2.0 for Server to Server Applications".
- ``"type": "authorized_user"`` (what ``gcloud auth application-default
  login`` or an OAuth consent flow writes): the refresh token is exchanged
  for an access token (RFC 6749 §6).

Tokens go to ``postmaster.token_url`` only (the file's own ``token_uri`` is
ignored, so all HTTP goes where the config says), and are cached until a
minute before they expire. Neither the credential nor the token ever
appears in a message, a log line or a repr.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from exporter.http_client import HttpError, request

#: Read-only access to traffic statistics (Postmaster Tools API v2).
SCOPE = "https://www.googleapis.com/auth/postmaster.traffic.readonly"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Refresh this long before the token's stated expiry (clock skew, slow runs).
EXPIRY_MARGIN = 60.0
#: Google issues tokens for at most an hour; also the JWT's lifetime.
ASSERTION_LIFETIME = 3600


class AuthError(Exception):
    """No access token: the message names the file and the reason, never secrets."""


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    client_email: str
    private_key_id: str
    private_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class AuthorizedUser:
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)


Credentials = ServiceAccount | AuthorizedUser


def parse_credentials(text: str, path: str) -> Credentials:
    """Decode a credentials file; errors name the file and the missing key only."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise AuthError(f"{path}: not a JSON credentials file") from exc
    if not isinstance(data, dict):
        raise AuthError(f"{path}: not a JSON credentials file")
    kind = data.get("type")
    if kind == "service_account":
        sa = ServiceAccount(
            client_email=_field(data, "client_email", path),
            private_key_id=str(data.get("private_key_id", "")),
            private_key=_field(data, "private_key", path),
        )
        _load_key(sa.private_key, path)  # fail at parse time, not on first use
        return sa
    if kind == "authorized_user":
        return AuthorizedUser(
            client_id=_field(data, "client_id", path),
            client_secret=_field(data, "client_secret", path),
            refresh_token=_field(data, "refresh_token", path),
        )
    raise AuthError(
        f"{path}: unsupported credentials type {str(kind)[:40]!r} "
        "(expected service_account or authorized_user)"
    )


def _field(data: dict[str, object], key: str, path: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise AuthError(f"{path}: missing {key}")
    return value


def _load_key(pem: str, path: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise AuthError(f"{path}: private_key is not an unencrypted PEM key") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise AuthError(f"{path}: private_key is not an RSA key (RS256 needs RSA)")
    return key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def service_account_assertion(
    sa: ServiceAccount, audience: str, now: float, scope: str = SCOPE, path: str = ""
) -> str:
    """The signed JWT a service account presents to the token endpoint."""
    header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
    if sa.private_key_id:
        header["kid"] = sa.private_key_id
    issued = int(now)
    claims = {
        "iss": sa.client_email,
        "scope": scope,
        "aud": audience,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
    }
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    key = _load_key(sa.private_key, path or sa.client_email)
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


def token_request_form(creds: Credentials, token_url: str, now: float, path: str) -> dict[str, str]:
    """The form body POSTed to the token endpoint for these credentials."""
    if isinstance(creds, ServiceAccount):
        return {
            "grant_type": JWT_BEARER,
            "assertion": service_account_assertion(creds, token_url, now, path=path),
        }
    return {
        "grant_type": "refresh_token",
        "client_id": creds.client_id,
        "client_secret": creds.client_secret,
        "refresh_token": creds.refresh_token,
    }


@dataclass(slots=True)
class _Cached:
    token: str = field(repr=False)
    expires_at: float


class TokenProvider:
    """Access tokens per credentials file, cached until shortly before expiry."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._cache: dict[tuple[str, str], _Cached] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def forget(self, path: str, token_url: str) -> None:
        """Drop a cached token (the API said 401: it was revoked or expired early)."""
        self._cache.pop((path, token_url), None)

    async def token(self, session: aiohttp.ClientSession, path: str, token_url: str) -> str:
        key = (path, token_url)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one refresh per file even when runs overlap
            cached = self._cache.get(key)
            if cached is not None and self._clock() < cached.expires_at - EXPIRY_MARGIN:
                return cached.token
            fresh = await self._fetch(session, path, token_url)
            self._cache[key] = fresh
            return fresh.token

    async def _fetch(self, session: aiohttp.ClientSession, path: str, token_url: str) -> _Cached:
        try:
            text = await asyncio.to_thread(_read, path)
        except OSError as exc:
            raise AuthError(f"cannot read credentials file {path}: {exc.strerror or exc}") from exc
        creds = parse_credentials(text, path)
        now = self._clock()
        form = token_request_form(creds, token_url, now, path)
        what = f"token endpoint {token_url}"
        try:
            resp = await request(session, "POST", token_url, data=form, what=what)
        except HttpError as exc:
            raise AuthError(str(exc)) from exc
        payload = _json_object(resp.body)
        if resp.status != 200:
            reason = _oauth_error(resp.status, payload)
            raise AuthError(f"{what} refused the credentials in {path}: {reason}")
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError(f"{what} answered without an access_token for {path}")
        lifetime = payload.get("expires_in", 3600)
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = 3600
        return _Cached(token, now + float(lifetime))


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _json_object(body: bytes) -> dict[str, object]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _oauth_error(status: int, payload: dict[str, object]) -> str:
    """``HTTP 400 invalid_grant: Invalid JWT Signature.`` from an RFC 6749 §5.2 error body."""
    code = payload.get("error")
    desc = payload.get("error_description")
    parts = [f"HTTP {status}"]
    if isinstance(code, str):
        parts.append(code[:60])
    text = " ".join(parts)
    if isinstance(desc, str) and desc:
        text += f": {desc[:200]}"
    return text
