"""Reading a DKIM key record (``<selector>._domainkey.<domain>`` TXT) without a message.

Pure functions, no DNS: the check hands in the TXT strings it got from the
resolver. We parse the tag-list ourselves and read the key with
``cryptography`` instead of dkimpy's ``evaluate_pk()``, because that one
raises on a revoked key (empty ``p=``) and ignores ``t=``, and both are
things a person monitoring the key needs to see.

Rules (RFC 6376 §3.6.1, RFC 8301, RFC 8463):

- ``v=`` is optional; if present it must be ``DKIM1`` and the first tag.
- ``k=`` defaults to ``rsa``; ``ed25519`` is the only other algorithm.
- ``p=`` is required; empty means the key was revoked.
- RSA keys are SubjectPublicKeyInfo DER, or PKCS#1 RSAPublicKey (erratum 3017).
  Under 1024 bits a verifier must not accept them (RFC 8301 §3.2); under
  2048 bits is only a warning.
- Ed25519 keys are the raw 32 bytes (RFC 8463 §4).
- ``h=`` restricts the hash algorithms; listing only sha1 makes the key
  unusable, since sha1 must not be used (RFC 8301 §3.1).
- A tag-list with a duplicate tag is invalid as a whole (RFC 6376 §3.2).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

#: RSA keys shorter than this must not be accepted (RFC 8301 §3.2).
MIN_RSA_BITS = 1024
#: RSA keys shorter than this draw a warning (RFC 8301 §3.2: signers SHOULD use 2048).
RECOMMENDED_RSA_BITS = 2048
ED25519_KEY_BYTES = 32

_TAG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_WSP = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class DkimKey:
    """What one key record says, and whether a verifier can use it."""

    record: str
    valid: bool
    #: "rsa", "ed25519", or the unsupported k= value; "" when the record could not be read.
    key_type: str = ""
    #: "spki" or "pkcs1" for RSA, "raw" for Ed25519; "" when no key was read.
    key_format: str = ""
    #: Key size in bits when a key was read (Ed25519: 256); None otherwise.
    bits: int | None = None
    #: Length of the decoded p= value in bytes, when it decoded.
    raw_len: int | None = None
    revoked: bool = False
    testing: bool = False
    #: Why the key is not usable (empty when valid).
    problems: tuple[str, ...] = ()
    #: Valid but worth fixing ("below 2048 recommended", "t=y testing mode").
    warnings: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = field(default=())

    def tag(self, name: str) -> str | None:
        for k, v in self.tags:
            if k == name:
                return v
        return None


def parse_tag_list(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Split an RFC 6376 §3.2 tag-list into (name, value) pairs and syntax problems."""
    tags: list[tuple[str, str]] = []
    problems: list[str] = []
    seen: set[str] = set()
    parts = text.split(";")
    # A trailing ";" is allowed: it leaves one empty part at the end.
    if parts and not parts[-1].strip():
        parts = parts[:-1]
    for part in parts:
        if not part.strip():
            problems.append("empty tag (two ';' in a row)")
            continue
        name, eq, value = part.partition("=")
        name = name.strip()
        if not eq or not _TAG_NAME.match(name):
            problems.append(f"malformed tag {part.strip()!r}")
            continue
        if name in seen:
            problems.append(f"duplicate tag {name}=")
        seen.add(name)
        tags.append((name, value.strip()))
    return tags, problems


def _decode_base64(value: str) -> bytes | None:
    compact = _WSP.sub("", value)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def _read_rsa(der: bytes) -> tuple[rsa.RSAPublicKey, str] | None:
    """The RSA key in ``der`` and its encoding ("spki" or "pkcs1"), or None."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError):
        return None
    if not isinstance(key, rsa.RSAPublicKey):
        return None
    # cryptography reads both encodings; re-encoding tells which one we got.
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, ("spki" if spki == der else "pkcs1")


@dataclass(slots=True)
class _KeyRead:
    key_type: str
    key_format: str = ""
    bits: int | None = None
    raw_len: int | None = None
    revoked: bool = False


def parse_key_record(record: str) -> DkimKey:
    """Classify one DKIM key record (its character-strings already concatenated)."""
    tags, syntax = parse_tag_list(record)
    values = dict(tags)
    problems = list(syntax)
    warnings: list[str] = []
    if "v" in values and (tags[0][0] != "v" or values["v"] != "DKIM1"):
        problems.append(
            f"incompatible version v={values['v']}" if values["v"] != "DKIM1"
            else "v=DKIM1 must be the first tag"
        )
    hashes = _flags(values.get("h", ""))
    if hashes and "sha256" not in hashes:
        problems.append(
            f"h={values['h']} allows only {':'.join(hashes)}; sha1 must not be used "
            "(RFC 8301), so no signature can verify"
        )
    services = _flags(values.get("s", ""))
    if services and "*" not in services and "email" not in services:
        problems.append(f"s={values['s']} excludes email")
    testing = "y" in _flags(values.get("t", ""))
    if testing:
        warnings.append("t=y testing mode: receivers may treat failures as unsigned")
    read = _read_key(values, problems, warnings)
    return DkimKey(
        record=record, valid=not problems, key_type=read.key_type, key_format=read.key_format,
        bits=read.bits, raw_len=read.raw_len, revoked=read.revoked, testing=testing,
        problems=tuple(problems), warnings=tuple(warnings), tags=tuple(tags),
    )


def _read_key(values: dict[str, str], problems: list[str], warnings: list[str]) -> _KeyRead:
    """Decode p= according to k=, appending to ``problems``/``warnings``."""
    read = _KeyRead(values.get("k", "rsa").strip().lower() or "rsa")
    if "p" not in values:
        problems.append("missing p= (the public key)")
        return read
    p_value = _WSP.sub("", values["p"])
    if not p_value:
        problems.append("key revoked (empty p=)")
        read.revoked = True
        return read
    der = _decode_base64(p_value)
    if der is None:
        problems.append("key syntax error: p= is not valid base64")
        return read
    read.raw_len = len(der)
    if read.key_type == "rsa":
        rsa_key = _read_rsa(der)
        if rsa_key is None:
            problems.append("key syntax error: p= is not an RSA public key (SPKI or PKCS#1)")
            return read
        key, read.key_format = rsa_key
        read.bits = key.key_size
        if read.bits < MIN_RSA_BITS:
            problems.append(
                f"RSA key of {read.bits} bits: under {MIN_RSA_BITS} bits must not be accepted "
                "(RFC 8301)"
            )
        elif read.bits < RECOMMENDED_RSA_BITS:
            warnings.append(f"{read.bits}-bit RSA key: below {RECOMMENDED_RSA_BITS} recommended")
        return read
    if read.key_type == "ed25519":
        if len(der) != ED25519_KEY_BYTES:
            problems.append(f"ed25519 key must be {ED25519_KEY_BYTES} bytes, p= has {len(der)}")
            return read
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(der)
        except ValueError:
            problems.append("key syntax error: not an Ed25519 public key")
            return read
        read.key_format, read.bits = "raw", 8 * len(der)
        return read
    problems.append(f"unsupported key type k={read.key_type}")
    return read


def _flags(value: str) -> list[str]:
    return [f.strip().lower() for f in value.split(":") if f.strip()]


@dataclass(frozen=True, slots=True)
class SelectorVerdict:
    """What the TXT RRset at one selector amounts to."""

    records: tuple[str, ...]
    #: The key a verifier would use; None when there is no single record.
    key: DkimKey | None
    valid: bool
    problem: str = ""


def evaluate_selector(records: Sequence[str]) -> SelectorVerdict:
    """Judge the whole TXT RRset at a selector (zero, one or several records).

    Several different records are undefined (RFC 6376 §3.6.2.2): a receiver
    may pick either, and go-msgauth fails them all, so we call them invalid.
    """
    distinct = tuple(dict.fromkeys(records))
    if not distinct:
        return SelectorVerdict((), None, False, "no key record")
    if len(distinct) > 1:
        return SelectorVerdict(
            distinct, None, False,
            f"multiple TXT RRs at selector ({len(distinct)} different records): "
            "a receiver may use either",
        )
    key = parse_key_record(distinct[0])
    return SelectorVerdict(distinct, key, key.valid, "; ".join(key.problems))
